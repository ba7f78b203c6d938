//! One feed loop serving several connections, and several loops on several threads, against a
//! loopback tungstenite server; `run_until` stops on its flag and shuts its connections down.

mod net_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use keel_feeds::net::{ConnectionConfig, FeedLoop};
use keel_feeds::{DisconnectReason, EventBody, MarketEvent};
use net_support::*;
use tungstenite::Message;

/// Accepts connections forever; each gets `per_conn` messages naming its subscription.
fn spawn_server(per_conn: usize) -> u16 {
    let (listener, port) = bind_loopback();
    thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { return };
            thread::spawn(move || {
                let Ok(mut ws) = tungstenite::accept(tcp) else {
                    return;
                };
                let Ok(sub) = ws.read() else { return };
                for i in 0..per_conn {
                    if ws.send(Message::text(format!("{sub}/{i}"))).is_err() {
                        return;
                    }
                }
                while ws.read().is_ok() {}
            });
        }
    });
    port
}

fn data_events(events: &[MarketEvent], conn: u8) -> usize {
    events
        .iter()
        .filter(|e| e.conn == conn && matches!(e.body, EventBody::Index { .. }))
        .count()
}

#[test]
fn one_loop_several_connections_and_a_second_loop_on_its_thread() {
    let port = spawn_server(5);
    let url = format!("ws://127.0.0.1:{port}/");

    // A second loop on its own thread, stopped by a flag.
    let stop = Arc::new(AtomicBool::new(false));
    let (other_session, other_seen) = RecordingSession::new();
    let other = {
        let (url, stop) = (url.clone(), stop.clone());
        thread::spawn(move || {
            let mut feed = FeedLoop::new().unwrap();
            feed.add(
                ConnectionConfig::new(&url).unwrap(),
                Box::new(other_session),
            )
            .unwrap();
            let mut events = Vec::new();
            feed.run_until(&stop, &mut |ev| events.push(ev)).unwrap();
            events
        })
    };

    let mut feed = FeedLoop::new().unwrap();
    let mut seens = Vec::new();
    for i in 0..3 {
        let (session, seen) = RecordingSession::new();
        let idx = feed
            .add(ConnectionConfig::new(&url).unwrap(), Box::new(session))
            .unwrap();
        assert_eq!(idx, i);
        seens.push(seen);
    }
    let mut events = Vec::new();
    drive_until(
        &mut feed,
        &mut events,
        "5 messages on each connection",
        |ev| (0..3).all(|c| data_events(ev, c) == 5),
    );
    for c in 0..3u8 {
        let connected: Vec<_> = events
            .iter()
            .filter(|e| e.conn == c && e.body == EventBody::Connected)
            .collect();
        assert_eq!(connected.len(), 1, "conn {c}");
    }
    for seen in &seens {
        let texts = seen.lock().unwrap().texts();
        assert_eq!(texts.len(), 5);
        assert_eq!(texts[4], "subscribe#1/4");
    }

    let waiting = Instant::now();
    while other_seen.lock().unwrap().messages.len() < 5 {
        assert!(waiting.elapsed() < TIMEOUT, "the other loop's messages");
        thread::sleep(Duration::from_millis(10));
    }
    let start = Instant::now();
    stop.store(true, Ordering::Release);
    let other_events = other.join().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "run_until noticed the flag"
    );
    assert_eq!(data_events(&other_events, 0), 5);
    assert_eq!(other_events[0].body, EventBody::Connected);
    assert_eq!(
        other_events.last().map(|e| e.body),
        Some(EventBody::Disconnected {
            reason: DisconnectReason::Shutdown
        })
    );
    feed.shutdown(&mut |ev| events.push(ev));
    let shutdowns = events
        .iter()
        .filter(|e| {
            e.body
                == EventBody::Disconnected {
                    reason: DisconnectReason::Shutdown,
                }
        })
        .count();
    assert_eq!(shutdowns, 3);
}
