//! keel-sim's Binance endpoints (`/ws`, `/ws/<stream>`, `/stream?streams=`) seen by an
//! independent client: SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS, USDⓈ-M futures event formats
//! with numbers as strings, the combined-stream wrapper and error replies.

mod sim_common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sim_common::*;

/// A Binance string-number field.
fn sn(v: &Value, key: &str) -> f64 {
    let s = v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} must be a string in {v}"));
    s.parse()
        .unwrap_or_else(|e| panic!("{key} = {s:?} is not a number: {e}"))
}

fn check_event(e: &Value, depth_u: &mut Option<u64>) -> &'static str {
    assert_eq!(e["s"], "BTCUSDT", "{e}");
    assert!(e["sim_send_ns"].as_u64().unwrap().abs_diff(now_ns()) < 60_000_000_000);
    match e["e"].as_str().expect("futures events carry e") {
        "bookTicker" => {
            let (b, a) = (sn(e, "b"), sn(e, "a"));
            assert!(b > 0.0 && b < a, "{e}");
            assert!(sn(e, "B") > 0.0 && sn(e, "A") > 0.0);
            assert!(e["E"].as_u64().unwrap().abs_diff(now_ms()) < 60_000);
            assert!(e["T"].is_u64() && e["u"].is_u64());
            "bookTicker"
        }
        "aggTrade" => {
            assert!(sn(e, "p") > 0.0 && sn(e, "q") > 0.0);
            assert!(e["f"].as_u64().unwrap() <= e["l"].as_u64().unwrap());
            assert!(e["m"].is_boolean() && e["a"].is_u64() && e["T"].is_u64());
            "aggTrade"
        }
        "depthUpdate" => {
            let (first, last, pu) = (
                e["U"].as_u64().unwrap(),
                e["u"].as_u64().unwrap(),
                e["pu"].as_u64().unwrap(),
            );
            assert!(first <= last);
            if let Some(prev) = *depth_u {
                assert_eq!(pu, prev, "pu must equal the previous u");
            }
            *depth_u = Some(last);
            for side in ["b", "a"] {
                for l in e[side].as_array().unwrap() {
                    let px: f64 = l[0].as_str().unwrap().parse().unwrap();
                    let qty: f64 = l[1].as_str().unwrap().parse().unwrap();
                    assert!(px > 0.0 && qty >= 0.0);
                }
            }
            "depthUpdate"
        }
        "markPriceUpdate" => {
            let (p, i) = (sn(e, "p"), sn(e, "i"));
            assert!((p / i - 1.0).abs() < 0.01);
            sn(e, "r");
            sn(e, "P");
            assert!(e["T"].as_u64().unwrap() > now_ms() - 60_000);
            "markPriceUpdate"
        }
        other => panic!("unexpected event {other}"),
    }
}

#[test]
fn raw_streams_after_subscribe() {
    let sim = start(|c| c.rate = 2_000);
    let mut ws = connect(&sim.binance_url());
    let streams = [
        "btcusdt@bookTicker",
        "btcusdt@aggTrade",
        "btcusdt@depth@100ms",
        "btcusdt@markPrice@1s",
    ];
    send(
        &mut ws,
        &json!({"method": "SUBSCRIBE", "params": streams, "id": 1}).to_string(),
    );
    let r = wait_for(&mut ws, PATIENCE, |v| v.get("id").is_some());
    assert_eq!(r, json!({"result": null, "id": 1}));
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut depth_u = None;
    let until = Instant::now() + PATIENCE * 2;
    while kinds.len() < 4 || kinds.values().any(|&n| n < 2) {
        assert!(Instant::now() < until, "saw only {kinds:?}");
        let e = next_json(&mut ws, PATIENCE);
        assert!(e.get("stream").is_none(), "raw streams are not wrapped");
        *kinds.entry(check_event(&e, &mut depth_u)).or_default() += 1;
    }
    send(
        &mut ws,
        &json!({"method": "LIST_SUBSCRIPTIONS", "id": 2}).to_string(),
    );
    let r = wait_for(&mut ws, PATIENCE, |v| v.get("id") == Some(&json!(2)));
    assert_eq!(r["result"].as_array().unwrap().len(), 4);
    // Unsubscribe everything: the stream stops.
    send(
        &mut ws,
        &json!({"method": "UNSUBSCRIBE", "params": streams, "id": 3}).to_string(),
    );
    wait_for(&mut ws, PATIENCE, |v| v.get("id") == Some(&json!(3)));
    let quiet_from = Instant::now();
    while quiet_from.elapsed() < Duration::from_millis(500) {
        if let Got::Text(t) = read_one(&mut ws) {
            panic!("message after UNSUBSCRIBE: {t}");
        }
    }
}

#[test]
fn combined_streams_are_wrapped() {
    let sim = start(|c| c.rate = 2_000);
    let url = format!(
        "ws://{}/stream?streams=btcusdt@bookTicker/btcusdt@aggTrade",
        sim.addr()
    );
    let mut ws = connect(&url);
    let mut seen = BTreeMap::new();
    let mut depth_u = None;
    while seen.len() < 2 {
        let v = next_json(&mut ws, PATIENCE);
        let stream = v["stream"]
            .as_str()
            .expect("combined messages name their stream");
        let kind = check_event(&v["data"], &mut depth_u);
        let expected = match stream {
            "btcusdt@bookTicker" => "bookTicker",
            "btcusdt@aggTrade" => "aggTrade",
            other => panic!("stream {other}"),
        };
        assert_eq!(kind, expected);
        seen.insert(stream.to_string(), ());
    }
    // SUBSCRIBE on a combined connection adds a wrapped stream too.
    send(
        &mut ws,
        &json!({"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 5}).to_string(),
    );
    wait_for(&mut ws, PATIENCE, |v| v.get("id") == Some(&json!(5)));
    let v = wait_for(&mut ws, PATIENCE, |v| v["stream"] == "btcusdt@depth@100ms");
    assert_eq!(v["data"]["e"], "depthUpdate");
}

#[test]
fn stream_in_the_path_starts_at_once() {
    let sim = start(|c| c.rate = 1_000);
    let mut ws = connect(&format!("ws://{}/ws/btcusdt@bookTicker", sim.addr()));
    let v = next_json(&mut ws, PATIENCE);
    assert_eq!(v["e"], "bookTicker");
    // An invalid stream in the URL is refused at the handshake.
    let tcp = std::net::TcpStream::connect(sim.addr()).unwrap();
    let url = format!("ws://{}/ws/ethusdt@kline_1m", sim.addr());
    assert!(tungstenite::client(url.as_str(), tcp).is_err());
}

#[test]
fn bad_requests_get_binance_errors() {
    let sim = start(|_| {});
    let mut ws = connect(&sim.binance_url());
    send(
        &mut ws,
        &json!({"method": "SUBSCRIBE", "params": ["ethusdt@bookTicker"], "id": 1}).to_string(),
    );
    let r = next_json(&mut ws, PATIENCE);
    assert_eq!(r["error"]["code"], 2, "{r}");
    assert_eq!(r["id"], 1);
    send(&mut ws, &json!({"method": "FLY", "id": 2}).to_string());
    let r = next_json(&mut ws, PATIENCE);
    assert_eq!(r["error"]["code"], 2, "{r}");
    send(&mut ws, "{not json");
    let r = next_json(&mut ws, PATIENCE);
    assert_eq!(r["error"]["code"], 3, "{r}");
    send(
        &mut ws,
        &json!({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 4}).to_string(),
    );
    let r = wait_for(&mut ws, PATIENCE, |v| v.get("id") == Some(&json!(4)));
    assert_eq!(r["result"], Value::Null);
    let e = wait_for(&mut ws, PATIENCE, |v| v["e"] == "bookTicker");
    assert!(sn(&e, "b") > 0.0);
}
