//! keel-sim's stream rate: a modest configured rate is roughly achieved (loose bounds, never
//! tight timing), and an ignored bench measures the maximum per-connection rate:
//! `cargo test --release -p keel-tools --test sim_rate -- --ignored --nocapture`.

mod sim_common;

use std::time::{Duration, Instant};

use serde_json::json;
use sim_common::*;
use tungstenite::Message;

/// Subscribes to `n` raw option tickers.
fn subscribe_raw_tickers(ws: &mut Ws, names: &[String]) {
    let channels: Vec<String> = names.iter().map(|n| format!("ticker.{n}.raw")).collect();
    let r = rpc(ws, 1, "public/subscribe", json!({ "channels": channels }));
    assert_eq!(r["result"].as_array().unwrap().len(), names.len());
}

/// Counts text messages for `window` after `warmup`; every 1000th is parsed and checked.
fn count(ws: &mut Ws, warmup: Duration, window: Duration) -> u64 {
    let start = Instant::now();
    let mut n = 0u64;
    let mut counting = false;
    let mut window_start = start;
    loop {
        let now = Instant::now();
        if !counting && now.duration_since(start) >= warmup {
            counting = true;
            window_start = now;
        }
        if counting && now.duration_since(window_start) >= window {
            return n;
        }
        match ws.read() {
            Ok(Message::Text(t)) => {
                if counting {
                    n += 1;
                    if n % 1000 == 1 {
                        let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                        assert_eq!(v["method"], "subscription");
                    }
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("connection failed: {e}"),
        }
    }
}

#[test]
fn configured_rate_is_roughly_achieved() {
    let rate = 20_000;
    let sim = start(|c| c.rate = rate);
    let names: Vec<String> = sim.chain().options[..10]
        .iter()
        .map(|o| o.name.clone())
        .collect();
    let mut ws = connect(&sim.deribit_url());
    subscribe_raw_tickers(&mut ws, &names);
    let window = Duration::from_secs(3);
    let n = count(&mut ws, Duration::from_millis(500), window);
    let achieved = n as f64 / window.as_secs_f64();
    eprintln!("requested {rate}/s, received {achieved:.0}/s");
    assert!(
        achieved >= 0.5 * rate as f64,
        "only {achieved:.0}/s of {rate}/s"
    );
    // The token bucket never lets a connection run far above its rate.
    assert!(
        achieved <= 1.5 * rate as f64,
        "{achieved:.0}/s exceeds {rate}/s"
    );
}

#[test]
fn interval_channels_are_capped_per_channel() {
    // Two 100 ms channels at a high rate: about 10 messages per second each, not the rate.
    let sim = start(|c| c.rate = 50_000);
    let mut ws = connect(&sim.deribit_url());
    let chans = json!(["ticker.BTC-PERPETUAL.100ms", "deribit_price_index.btc_usd"]);
    rpc(&mut ws, 1, "public/subscribe", json!({ "channels": chans }));
    let n = count(&mut ws, Duration::from_millis(200), Duration::from_secs(2));
    assert!(
        n <= 2 * 2 * 10 + 10,
        "{n} messages in 2 s from two 100 ms channels"
    );
    assert!(n >= 10, "{n}");
}

/// The maximum rate one connection reaches, for the report (release build).
#[test]
#[ignore = "a benchmark: run in release with --ignored --nocapture"]
fn max_rate_bench() {
    for (rate, subs) in [(200_000u64, 100usize), (0, 100), (0, 1)] {
        let sim = start(|c| {
            c.rate = rate;
            c.options = 1_000;
            c.tick = Duration::from_millis(10);
        });
        let names: Vec<String> = sim.chain().options[..subs]
            .iter()
            .map(|o| o.name.clone())
            .collect();
        let mut ws = connect(&sim.deribit_url());
        subscribe_raw_tickers(&mut ws, &names);
        let window = Duration::from_secs(3);
        let n = count(&mut ws, Duration::from_millis(500), window);
        let s = sim.stats();
        eprintln!(
            "rate {} ({} raw option tickers): received {:.0} msgs/s, {:.1} MB/s on the wire",
            if rate == 0 {
                "unlimited".to_string()
            } else {
                format!("{rate}/s")
            },
            subs,
            n as f64 / window.as_secs_f64(),
            s.bytes as f64 / (window.as_secs_f64() + 0.5) / 1e6,
        );
        if rate > 0 {
            assert!(n as f64 / window.as_secs_f64() >= 0.5 * rate as f64);
        }
    }
}
