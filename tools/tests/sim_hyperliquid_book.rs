//! keel-sim's Hyperliquid WebSocket (`/hyperliquid/ws`) market data seen by an independent
//! client: `l2Book` subscription of BTC (whole books, bids falling and asks rising, touch
//! uncrossed), parsed by Keel's own parser too; `ping` → `pong`; bad subscriptions refused;
//! unsubscribe stops the stream.

mod sim_common;

use std::time::Duration;

use keel_feeds::session::register;
use keel_feeds::venues::HyperliquidParser;
use keel_feeds::{EventBody, Instruments, Venue};
use serde_json::Value;
use sim_common::*;

fn px(l: &Value, k: &str) -> f64 {
    l[k].as_str()
        .expect("string number")
        .parse()
        .expect("number")
}

#[test]
fn l2_book_streams_whole_books_and_pings_are_answered() {
    let sim = start(|_| {});
    let mut ws = connect(&sim.hyperliquid_ws_url());
    send(
        &mut ws,
        r#"{"method":"subscribe","subscription":{"type":"l2Book","coin":"ETH"}}"#,
    );
    let e = wait_for(&mut ws, Duration::from_secs(5), |v| v["channel"] == "error");
    assert!(e["data"].as_str().unwrap().contains("l2Book"), "{e}");
    send(
        &mut ws,
        r#"{"method":"subscribe","subscription":{"type":"l2Book","coin":"BTC"}}"#,
    );
    let ack = wait_for(&mut ws, Duration::from_secs(5), |v| {
        v["channel"] == "subscriptionResponse"
    });
    assert_eq!(ack["data"]["subscription"]["coin"], "BTC");
    let mut reg = Instruments::new();
    let id = register(&mut reg, Venue::Hyperliquid, "BTC", false);
    let mut parser = HyperliquidParser::new(&reg);
    for _ in 0..3 {
        let b = wait_for(&mut ws, Duration::from_secs(5), |v| {
            v["channel"] == "l2Book"
        });
        let d = &b["data"];
        assert_eq!(d["coin"], "BTC");
        assert!(d["time"].as_u64().unwrap().abs_diff(now_ms()) < 60_000);
        let levels = d["levels"].as_array().unwrap();
        assert_eq!(levels.len(), 2);
        let (bids, asks) = (levels[0].as_array().unwrap(), levels[1].as_array().unwrap());
        assert!(!bids.is_empty() && bids.len() <= 20 && !asks.is_empty() && asks.len() <= 20);
        for w in bids.windows(2) {
            assert!(px(&w[0], "px") > px(&w[1], "px"), "{b}");
        }
        for w in asks.windows(2) {
            assert!(px(&w[0], "px") < px(&w[1], "px"), "{b}");
        }
        assert!(px(&bids[0], "px") < px(&asks[0], "px"));
        // Keel's parser reads it: the touch, then every level as a snapshot.
        let text = b.to_string();
        let mut evs = Vec::new();
        parser
            .parse(text.as_bytes(), 1, &mut |e| evs.push(e))
            .expect("keel parses keel-sim's l2Book");
        assert_eq!(evs.len(), 1 + bids.len() + asks.len());
        assert!(evs.iter().all(|e| e.instrument == id));
        assert!(
            matches!(evs[0].body, EventBody::Quote { bid, ask, .. } if bid == px(&bids[0], "px") && ask == px(&asks[0], "px"))
        );
    }
    send(&mut ws, r#"{"method":"ping"}"#);
    wait_for(&mut ws, Duration::from_secs(5), |v| v["channel"] == "pong");
    send(
        &mut ws,
        r#"{"method":"unsubscribe","subscription":{"type":"l2Book","coin":"BTC"}}"#,
    );
    wait_for(&mut ws, Duration::from_secs(5), |v| {
        v["channel"] == "subscriptionResponse" && v["data"]["method"] == "unsubscribe"
    });
    // Nothing after the books already queued.
    std::thread::sleep(Duration::from_millis(300));
    let mut books_after = 0;
    let until = std::time::Instant::now() + Duration::from_millis(800);
    while std::time::Instant::now() < until {
        if let Got::Text(t) = read_one(&mut ws)
            && t.contains("\"l2Book\"")
        {
            books_after += 1;
        }
    }
    assert!(books_after <= 1, "{books_after} books after unsubscribing");
}
