//! Binance depth books end to end: keel-sim's REST depth snapshot (plain HTTP/1.1 on the
//! WebSocket port, venue-wide update ids) and Keel's Binance session (feed loop, depth stream,
//! REST snapshot fetched off the feed thread, buffered updates applied after it) recovering from
//! the gaps keel-sim injects with `--gap-every-msgs`.

mod sim_common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use keel_feeds::net::{ConnectionConfig, FeedLoop, http_request};
use keel_feeds::session::{VenueSession, register};
use keel_feeds::venues::BinanceMarket;
use keel_feeds::{EventBody, Instruments, MarketEvent, Side, Venue};
use serde_json::{Value, json};
use sim_common::*;

fn get(url: &str) -> (u16, Value) {
    let (status, body) =
        http_request(url, "GET", None, &[], None, Duration::from_secs(10)).expect("request");
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
    (status, v)
}

#[test]
fn rest_depth_snapshot_shares_the_streams_update_ids() {
    let sim = start(|_| {});
    let base = format!("http://{}", sim.addr());
    let (status, snap) = get(&format!("{base}/fapi/v1/depth?symbol=BTCUSDT&limit=1000"));
    assert_eq!(status, 200, "{snap}");
    let last = snap["lastUpdateId"].as_u64().expect("lastUpdateId");
    assert!(snap["E"].is_u64() && snap["T"].is_u64(), "{snap}");
    for (side, better) in [("bids", 1.0), ("asks", -1.0)] {
        let levels = snap[side].as_array().unwrap();
        assert!(!levels.is_empty(), "{snap}");
        let px: Vec<f64> = levels
            .iter()
            .map(|l| l[0].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(
            px.windows(2).all(|w| (w[0] - w[1]) * better > 0.0),
            "best first: {px:?}"
        );
        assert!(
            levels.iter().all(|l| l[1].as_str().is_some()),
            "quantities are strings"
        );
    }
    let (status, spot) = get(&format!("{base}/api/v3/depth?symbol=BTCUSDT&limit=5"));
    assert_eq!(status, 200);
    assert!(spot.get("E").is_none() && spot["lastUpdateId"].as_u64() >= Some(last));
    let (status, err) = get(&format!("{base}/fapi/v1/depth?symbol=ETHUSDT"));
    assert_eq!(
        (status, &err),
        (400, &json!({"code": -1121, "msg": "Invalid symbol."}))
    );
    let (status, err) = get(&format!("{base}/fapi/v1/depth?symbol=BTCUSDT&limit=7"));
    assert_eq!((status, err["code"].as_i64()), (400, Some(-1130)));
    let (status, _) = get(&format!("{base}/fapi/v1/depth"));
    assert_eq!(status, 400);

    // The stream continues the snapshot's sequence: a subscription opened after it sees an
    // event that straddles or follows lastUpdateId, with pu chaining from then on.
    let mut ws = connect(&sim.binance_url());
    send(
        &mut ws,
        &json!({"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 1}).to_string(),
    );
    let mut prev_u = None;
    for _ in 0..5 {
        let e = wait_for(&mut ws, PATIENCE, |v| v["e"] == "depthUpdate");
        let (first, u, pu) = (
            e["U"].as_u64().unwrap(),
            e["u"].as_u64().unwrap(),
            e["pu"].as_u64().unwrap(),
        );
        assert!(
            u >= last,
            "the stream is not behind the snapshot: {u} < {last}"
        );
        assert_eq!(first, pu + 1);
        if let Some(p) = prev_u {
            assert_eq!(pu, p);
        }
        prev_u = Some(u);
    }
}

/// What the session emitted for the book, in order.
#[derive(Debug, Clone, Copy)]
enum BookEv {
    Snapshot { seq: u64 },
    Update { seq: u64 },
    Gap,
}

#[test]
fn the_binance_session_resnapshots_after_injected_gaps() {
    let sim = start(|c| {
        c.faults.gap_every_msgs = Some(6);
        c.tick = Duration::from_millis(20);
    });
    let mut reg = Instruments::new();
    let id = register(&mut reg, Venue::Binance, "BTCUSDT", false);
    let session = VenueSession::binance_builder(&reg, BinanceMarket::UsdmFutures)
        .depth(true)
        .ws_url(&sim.binance_url())
        .build()
        .expect("session builds");
    let mut feed = FeedLoop::new().unwrap();
    let cfg = ConnectionConfig::new(&sim.binance_url()).unwrap();
    feed.add(cfg, Box::new(session)).unwrap();

    let mut evs: Vec<BookEv> = Vec::new();
    // The book as the events describe it, rebuilt on every snapshot.
    let mut book: BTreeMap<(bool, i64), f64> = BTreeMap::new();
    let mut on_event = |ev: MarketEvent, evs: &mut Vec<BookEv>| {
        if ev.instrument != id {
            return;
        }
        match ev.body {
            EventBody::BookLevel {
                price,
                size,
                side,
                snapshot,
                first,
                seq,
                ..
            } => {
                if snapshot && first {
                    book.clear();
                    evs.push(BookEv::Snapshot { seq });
                } else if !snapshot && first {
                    evs.push(BookEv::Update { seq });
                }
                if price.is_finite() {
                    let k = (side == Side::Buy, (price * 100.0).round() as i64);
                    if size == 0.0 {
                        book.remove(&k);
                    } else {
                        book.insert(k, size);
                    }
                }
            }
            EventBody::SequenceGap { .. } => evs.push(BookEv::Gap),
            _ => {}
        }
    };
    // Run until two gaps have each been followed by a snapshot and updates (generous: debug
    // build, two loaded cores).
    let until = Instant::now() + Duration::from_secs(60);
    let recovered = |evs: &[BookEv]| {
        let mut gaps_recovered = 0;
        let mut after_gap = None;
        for e in evs {
            match e {
                BookEv::Gap => after_gap = Some(0),
                BookEv::Snapshot { .. } if after_gap == Some(0) => after_gap = Some(1),
                BookEv::Update { .. } if after_gap == Some(1) => {
                    gaps_recovered += 1;
                    after_gap = None;
                }
                _ => {}
            }
        }
        gaps_recovered
    };
    let mut batch: Vec<MarketEvent> = Vec::new();
    while Instant::now() < until && recovered(&evs) < 2 {
        feed.run_once(Duration::from_millis(50), &mut |ev| batch.push(ev))
            .unwrap();
        for ev in batch.drain(..) {
            on_event(ev, &mut evs);
        }
    }
    feed.shutdown(&mut |_| {});
    eprintln!("book events: {evs:?}");
    assert!(
        recovered(&evs) >= 2,
        "the book did not recover from two gaps within 60 s: {evs:?}"
    );
    // The book starts from a snapshot, never from an update.
    let first_book = evs.iter().find(|e| !matches!(e, BookEv::Gap));
    assert!(
        matches!(first_book, Some(BookEv::Snapshot { .. })),
        "{evs:?}"
    );
    // No update is applied across a gap: after a gap, the next book event is a snapshot.
    for w in evs.windows(2) {
        if let [BookEv::Gap, next] = w {
            assert!(
                matches!(next, BookEv::Snapshot { .. } | BookEv::Gap),
                "{evs:?}"
            );
        }
    }
    // Updates after a snapshot carry increasing ids at or after it.
    let mut floor = 0;
    for e in &evs {
        match *e {
            BookEv::Snapshot { seq } => floor = seq,
            BookEv::Update { seq } => {
                assert!(
                    seq >= floor,
                    "update {seq} before its snapshot {floor}: {evs:?}"
                );
                floor = seq;
            }
            BookEv::Gap => {}
        }
    }
    // A non-empty book with bids below asks.
    let best_bid = book.keys().filter(|k| k.0).map(|k| k.1).max();
    let best_ask = book.keys().filter(|k| !k.0).map(|k| k.1).min();
    assert!(
        matches!((best_bid, best_ask), (Some(b), Some(a)) if b < a),
        "{book:?}"
    );
}
