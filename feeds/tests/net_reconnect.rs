//! Reconnection with backoff: the server (tungstenite on a thread) drops the connection, stays
//! away for a while (connections refused), then comes back on the same port. Expect one
//! `Disconnected`, several spaced attempts, `on_open` again and `Reconnected { attempts }`.
//! Also: connect timeout against a listener that never answers the handshake.

mod net_support;

use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use keel_feeds::net::{BackoffConfig, ConnError, ConnectionConfig, FeedLoop, Jitter};
use keel_feeds::{DisconnectReason, EventBody};
use net_support::*;
use tungstenite::Message;

#[test]
fn server_drop_then_outage_then_reconnect() {
    let (listener, port) = bind_loopback();
    let (tx, rx) = mpsc::channel::<String>();
    let outage = Duration::from_millis(600);
    let server = thread::spawn(move || {
        // First life: one connection, dropped without a close frame.
        let (tcp, _) = listener.accept().unwrap();
        let mut ws = tungstenite::accept(tcp).unwrap();
        let sub = ws.read().unwrap().to_string();
        ws.send(Message::text("one")).unwrap();
        drop(ws);
        drop(listener);
        // The outage: the port bound but not listening, so the client's attempts are refused.
        // (Left free, a connect to it could take that very port as its own source and connect
        // to itself — TCP simultaneous open — since it is in the ephemeral range.)
        let refusing = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        refusing.set_reuse_address(true).expect("SO_REUSEADDR");
        refusing
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
            .expect("the port held through the outage");
        let down_at = Instant::now();
        thread::sleep(outage);
        drop(refusing);
        // Second life on the same port (std sets SO_REUSEADDR).
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let (tcp, _) = listener.accept().unwrap();
        let up_after = down_at.elapsed();
        let mut ws = tungstenite::accept(tcp).unwrap();
        let sub2 = ws.read().unwrap().to_string();
        ws.send(Message::text("two")).unwrap();
        tx.send(format!("{sub} {sub2} {}", up_after.as_millis()))
            .unwrap();
        // Until the client goes away.
        while ws.read().is_ok() {}
    });

    let mut cfg = ConnectionConfig::new(&format!("ws://127.0.0.1:{port}/")).unwrap();
    cfg.backoff = BackoffConfig {
        base: Duration::from_millis(40),
        cap: Duration::from_millis(160),
        jitter: Jitter::Equal,
        reset_after: Duration::from_secs(60),
    };
    let mut feed = FeedLoop::new().unwrap();
    let (session, seen) = RecordingSession::new();
    feed.add(cfg, Box::new(session)).unwrap();
    let mut events = Vec::new();
    let start = Instant::now();
    drive_until_seen(&mut feed, &mut events, &seen, "message two", |s| {
        s.count("two") == 1
    });

    let conn = connection_events(&events);
    assert_eq!(conn.len(), 3, "{conn:?}");
    assert_eq!(conn[0], EventBody::Connected);
    assert_eq!(
        conn[1],
        EventBody::Disconnected {
            reason: DisconnectReason::PeerClosed
        }
    );
    let EventBody::Reconnected { attempts } = conn[2] else {
        panic!("{conn:?}")
    };
    // `attempts` counts the successful one too. 600 ms away with delays of 20-40, 40-80,
    // 80-160, then 80-160 ms: 4 to 9 refused attempts (fewer allowed for a starved test
    // thread); without the delays it would be one per 20 ms poll, about 30.
    assert!((3..=12).contains(&attempts), "attempts {attempts}");
    let stats = feed.stats(0).unwrap();
    assert_eq!(stats.attempts, 1 + u64::from(attempts));
    assert_eq!(stats.opens, 2);
    assert_eq!(stats.failures, u64::from(attempts)); // the drop, then attempts-1 refusals
    assert!(matches!(
        feed.last_failure(0).unwrap().error,
        ConnError::Connect { .. }
    ));
    let s = seen.lock().unwrap();
    assert_eq!(s.opens, 2);
    assert_eq!(s.texts(), ["one", "two"]);
    drop(s);
    let report = rx.recv_timeout(TIMEOUT).unwrap();
    assert!(report.starts_with("subscribe#1 subscribe#2 "), "{report}");
    assert!(start.elapsed() >= outage);
    feed.shutdown(&mut |ev| events.push(ev));
    server.join().unwrap();
}

#[test]
fn handshake_that_never_answers_times_out() {
    // Accepts TCP (the kernel does, from the backlog) but never answers the upgrade.
    let (listener, port) = bind_loopback();
    let mut cfg = ConnectionConfig::new(&format!("ws://127.0.0.1:{port}/")).unwrap();
    cfg.connect_timeout = Duration::from_millis(300);
    let mut feed = FeedLoop::new().unwrap();
    let (session, _seen) = RecordingSession::new();
    feed.add(cfg, Box::new(session)).unwrap();
    let mut events = Vec::new();
    drive_until(&mut feed, &mut events, "Disconnected", |ev| {
        !connection_events(ev).is_empty()
    });
    assert_eq!(
        connection_events(&events),
        [EventBody::Disconnected {
            reason: DisconnectReason::ConnectFailed
        }]
    );
    let failure = feed.last_failure(0).unwrap();
    assert!(
        matches!(failure.error, ConnError::ConnectTimeout(d) if d == Duration::from_millis(300)),
        "{failure}"
    );
    drop(listener);
}

#[test]
fn bad_handshake_answer_is_named() {
    let (listener, port) = bind_loopback();
    thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut tcp, _) = listener.accept().unwrap();
        let mut buf = [0u8; 2048];
        let _ = tcp.read(&mut buf);
        let _ = tcp.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
        thread::sleep(Duration::from_millis(500));
    });
    let cfg = ConnectionConfig::new(&format!("ws://127.0.0.1:{port}/private")).unwrap();
    let mut feed = FeedLoop::new().unwrap();
    let (session, _seen) = RecordingSession::new();
    feed.add(cfg, Box::new(session)).unwrap();
    let mut events = Vec::new();
    drive_until(&mut feed, &mut events, "Disconnected", |ev| {
        !connection_events(ev).is_empty()
    });
    let failure = feed.last_failure(0).unwrap().to_string();
    assert!(
        failure.contains("/private")
            && failure.contains("expected status 101")
            && failure.contains("403"),
        "{failure}"
    );
}
