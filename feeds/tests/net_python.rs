//! The connection against an independent WebSocket implementation: the Python `websockets`
//! package (feeds/tests/py/ws_server.py, started here on loopback port 0 and killed at the end).
//! Covers data messages of every length class, fragmented messages, server pings, our masked
//! frames (echoed back), a server-initiated close followed by reconnection and resubscription,
//! a dropped TCP connection, staleness, an oversized message and a session rejection.
//!
//! Needs `python3` with `pip install websockets`; fails (never skips) without it.

mod net_support;

use std::time::Duration;

use keel_feeds::net::{BackoffConfig, ConnError, ConnState, ConnectionConfig, FeedLoop, Jitter};
use keel_feeds::{DisconnectReason, EventBody, InstrumentId, MarketEvent};
use net_support::*;
use serde_json::json;

fn config(url: &str) -> ConnectionConfig {
    let mut cfg = ConnectionConfig::new(url).unwrap();
    cfg.backoff = BackoffConfig {
        base: Duration::from_millis(50),
        cap: Duration::from_millis(200),
        jitter: Jitter::Full,
        reset_after: Duration::from_secs(60),
    };
    cfg.connect_timeout = Duration::from_secs(5);
    cfg
}

#[test]
fn messages_fragments_pings_close_and_resubscription() {
    let server = PyServer::start(&json!({
        "connections": [
            [
                {"wait_recv": 1},
                {"send": "hello"},
                {"send": "m".repeat(300)},
                {"fragments": ["frag-", "ment", "ed \u{e9}"]},
                {"large": 70000},
                {"send_binary_hex": "00ff10"},
                {"ping": "p1"},
                {"send": "ask:42"},
                {"wait_recv": 2},
                {"close": 1001, "reason": "bye"}
            ],
            [
                {"wait_recv": 1},
                {"send_prev_close": true},
                {"send": "second"}
            ]
        ]
    }));
    let mut feed = FeedLoop::new().unwrap();
    let (session, seen) = RecordingSession::new();
    let idx = feed.add(config(&server.url()), Box::new(session)).unwrap();
    assert_eq!(idx, 0);
    let mut events: Vec<MarketEvent> = Vec::new();
    drive_until_seen(
        &mut feed,
        &mut events,
        &seen,
        "the second connection's message",
        |s| s.count("second") == 1,
    );

    let s = seen.lock().unwrap();
    let texts = s.texts();
    // First connection, in order; our subscription and reply came back through the server's
    // decoder, so our masking and framing are right.
    let first: Vec<&str> = texts.iter().take(9).map(String::as_str).collect();
    assert_eq!(first[0], "echo:subscribe#1");
    assert_eq!(first[1], "hello");
    assert_eq!(first[2], "m".repeat(300));
    assert_eq!(first[3], "frag-mented \u{e9}");
    assert_eq!(first[4].len(), 70000);
    assert!(first[4].bytes().all(|b| b == b'x'));
    assert_eq!(s.messages[5], vec![0x00, 0xff, 0x10]);
    assert_eq!(first[6], "pong-ok:p1", "the server got our pong");
    assert_eq!(first[7], "ask:42");
    assert_eq!(first[8], "echo:answer:42", "a reply queued from on_message");
    // Second connection: on_open ran again and resubscribed.
    assert_eq!(s.opens, 2);
    assert_eq!(s.count("echo:subscribe#2"), 1);
    assert_eq!(
        s.count("prev-close:1001"),
        1,
        "we answered the close with its code: {texts:?}"
    );
    assert_eq!(texts.last().map(String::as_str), Some("second"));
    // Receive timestamps are real and ordered.
    assert!(s.recv_ts.windows(2).all(|w| w[0] <= w[1]));
    assert!(s.recv_ts[0] > 1_600_000_000_000_000_000);
    drop(s);

    assert_eq!(
        connection_events(&events),
        vec![
            EventBody::Connected,
            EventBody::Disconnected {
                reason: DisconnectReason::PeerClosed
            },
            EventBody::Reconnected { attempts: 1 },
        ]
    );
    let failure = feed.last_failure(0).unwrap();
    assert!(
        matches!(failure.error, ConnError::PeerClosed { code: Some(1001) }),
        "{failure}"
    );
    assert!(failure.to_string().contains("127.0.0.1"), "{failure}");
    // Every event carries the connection index; session events keep their fields.
    assert!(events.iter().all(|e| e.conn == 0));
    let data: Vec<&MarketEvent> = events
        .iter()
        .filter(|e| matches!(e.body, EventBody::Index { .. }))
        .collect();
    assert!(data.len() >= 10);
    assert!(data.iter().all(|e| e.instrument == InstrumentId(7)));
    assert_eq!(feed.state(0), Some(ConnState::Open));
    let stats = feed.stats(0).unwrap();
    assert_eq!((stats.opens, stats.pings), (2, 1));

    feed.shutdown(&mut |ev| events.push(ev));
    assert_eq!(feed.state(0), Some(ConnState::Stopped));
    assert_eq!(
        events.last().map(|e| e.body),
        Some(EventBody::Disconnected {
            reason: DisconnectReason::Shutdown
        })
    );
}

#[test]
fn dropped_connection_reconnects_with_backoff() {
    let server = PyServer::start(&json!({
        "connections": [
            [{"wait_recv": 1}, {"send": "a"}, {"sleep": 0.1}, {"drop": true}],
            [{"wait_recv": 1}, {"send": "b"}]
        ]
    }));
    let mut feed = FeedLoop::new().unwrap();
    let (session, seen) = RecordingSession::new();
    feed.add(config(&server.url()), Box::new(session)).unwrap();
    let mut events = Vec::new();
    drive_until_seen(&mut feed, &mut events, &seen, "message b", |s| {
        s.count("b") == 1
    });
    let conn = connection_events(&events);
    assert_eq!(conn.len(), 3, "{conn:?}");
    assert_eq!(conn[0], EventBody::Connected);
    assert!(
        matches!(
            conn[1],
            EventBody::Disconnected {
                reason: DisconnectReason::PeerClosed
            }
        ),
        "{conn:?}"
    );
    assert!(matches!(conn[2], EventBody::Reconnected { attempts } if attempts >= 1));
    let s = seen.lock().unwrap();
    assert_eq!(s.opens, 2);
    assert_eq!(
        s.texts(),
        ["echo:subscribe#1", "a", "echo:subscribe#2", "b"]
    );
}

#[test]
fn silent_server_is_stale() {
    let server = PyServer::start(&json!({
        "connections": [[{"wait_recv": 1}, {"send": "only"}, {"silent": true}]],
        "default": [{"wait_recv": 1}, {"send": "back"}]
    }));
    let mut feed = FeedLoop::new().unwrap();
    let (session, seen) = RecordingSession::new();
    let mut cfg = config(&server.url());
    cfg.stale_after = Some(Duration::from_millis(400));
    feed.add(cfg, Box::new(session)).unwrap();
    let mut events = Vec::new();
    drive_until_seen(
        &mut feed,
        &mut events,
        &seen,
        "message after staleness",
        |s| s.count("back") == 1,
    );
    assert_eq!(
        connection_events(&events)[..2],
        [
            EventBody::Connected,
            EventBody::Disconnected {
                reason: DisconnectReason::Stale
            }
        ]
    );
    assert!(seen.lock().unwrap().timers >= 2, "on_timer runs while open");
}

#[test]
fn oversized_message_is_a_protocol_error() {
    let server = PyServer::start(&json!({
        "connections": [[{"send": "small"}, {"large": 5000}]],
        "default": [{"silent": true}]
    }));
    let mut feed = FeedLoop::new().unwrap();
    let (session, seen) = RecordingSession::new();
    let mut cfg = config(&server.url());
    cfg.max_message_size = 1000;
    feed.add(cfg, Box::new(session)).unwrap();
    let mut events = Vec::new();
    drive_until(&mut feed, &mut events, "Disconnected", |ev| {
        connection_events(ev).len() >= 2
    });
    assert_eq!(
        connection_events(&events)[1],
        EventBody::Disconnected {
            reason: DisconnectReason::Protocol
        }
    );
    let failure = feed.last_failure(0).unwrap().to_string();
    assert!(
        failure.contains("exceeds the maximum of 1000 bytes"),
        "{failure}"
    );
    assert_eq!(seen.lock().unwrap().count("small"), 1);
}

#[test]
fn session_rejection_drops_the_connection() {
    let server = PyServer::start(&json!({
        "connections": [[{"send": "reject"}]],
        "default": [{"silent": true}]
    }));
    let mut feed = FeedLoop::new().unwrap();
    let (session, _seen) = RecordingSession::new();
    feed.add(config(&server.url()), Box::new(session)).unwrap();
    let mut events = Vec::new();
    drive_until(&mut feed, &mut events, "Reconnected", |ev| {
        connection_events(ev).len() >= 3
    });
    assert_eq!(
        connection_events(&events),
        [
            EventBody::Connected,
            EventBody::Disconnected {
                reason: DisconnectReason::Rejected
            },
            EventBody::Reconnected { attempts: 1 },
        ]
    );
}
