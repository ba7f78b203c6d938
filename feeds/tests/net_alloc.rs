//! The streaming path allocates nothing per message (DESIGN.md, "Rules of the hot path"): a
//! counting global allocator, armed on the feed thread only, sees zero allocations while the
//! loop reads, decodes and delivers thousands of messages (with server pings answered and
//! fragmented messages reassembled) from a loopback tungstenite server, once the buffers have
//! grown during a warm-up.

mod net_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::thread;
use std::time::{Duration, Instant};

use keel_feeds::net::{ConnectionConfig, FeedLoop, Outbox, Session};
use keel_feeds::{DisconnectReason, EventBody, InstrumentId, MarketEvent, Venue};
use tungstenite::Message;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::{Frame, FrameHeader};

struct Counting;

// Both the flag and the count are per thread: the tests in this file run in parallel, each
// measuring its own feed thread (a shared count once mixed the TLS test's allocations in).
thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    if ARMED.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
    }
}

fn allocs_here() -> u64 {
    ALLOCS.with(Cell::get)
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counts messages; emits one event per message; sends a request every 500 messages and "go"
/// after `go_at` (the server holds the rest until then, so the warm-up cannot swallow the
/// measured part); allocates nothing.
struct CountingSession {
    messages: u64,
    go_at: u64,
}

impl Session for CountingSession {
    fn venue(&self) -> Venue {
        Venue::Binance
    }
    fn on_open(&mut self, out: &mut Outbox<'_>) {
        out.send_text(b"{\"method\":\"SUBSCRIBE\",\"params\":[\"btcusdt@bookTicker\"],\"id\":1}");
    }
    fn on_message(
        &mut self,
        payload: &[u8],
        recv_ts_ns: u64,
        out: &mut Outbox<'_>,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<(), DisconnectReason> {
        self.messages += 1;
        if self.messages.is_multiple_of(500) {
            out.send_text(b"{\"method\":\"LIST_SUBSCRIPTIONS\",\"id\":2}");
        }
        if self.messages == self.go_at {
            out.send_text(b"go");
        }
        emit(MarketEvent {
            exchange_ts_ns: 0,
            recv_ts_ns,
            instrument: InstrumentId(1),
            venue: Venue::Binance,
            conn: 0,
            body: EventBody::Index {
                price: payload.len() as f64,
            },
        });
        Ok(())
    }
}

const WARMUP: u64 = 1_000;

fn wait_for_go<S: std::io::Read + std::io::Write>(ws: &mut tungstenite::WebSocket<S>) {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) if t.as_str() == "go" => return,
            Ok(_) => {}
            Err(e) => panic!("client went away before go: {e}"),
        }
    }
}
const MEASURED: u64 = 20_000;

#[test]
fn streaming_path_allocates_nothing_per_message() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let total = WARMUP + MEASURED;
    let server = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut ws = tungstenite::accept(tcp).unwrap();
        let _sub = ws.read().unwrap();
        // A ~450-byte ticker-like message, a fragmented message every 100, a ping every 250.
        let body = format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"subscription\",\"params\":{{\"channel\":\"ticker.BTC-27DEC24-100000-C.100ms\",\"data\":{{\"timestamp\":1700000000000,\"best_bid_price\":0.0415,\"best_ask_price\":0.0425,\"mark_iv\":55.1,\"pad\":\"{}\"}}}}}}",
            "p".repeat(250)
        );
        for i in 0..total {
            if i == WARMUP {
                ws.flush().unwrap();
                wait_for_go(&mut ws);
            }
            if i % 100 == 50 {
                let (a, b) = body.as_bytes().split_at(100);
                for (fin, op, part) in [
                    (false, OpCode::Data(Data::Text), a),
                    (true, OpCode::Data(Data::Continue), b),
                ] {
                    let header = FrameHeader {
                        is_final: fin,
                        opcode: op,
                        ..FrameHeader::default()
                    };
                    ws.write(Message::Frame(Frame::from_payload(
                        header,
                        part.to_vec().into(),
                    )))
                    .unwrap();
                }
            } else {
                ws.write(Message::text(body.clone())).unwrap();
            }
            if i % 250 == 0 {
                ws.write(Message::Ping(b"hb".to_vec().into())).unwrap();
            }
            if i % 64 == 0 {
                ws.flush().unwrap();
            }
        }
        ws.flush().unwrap();
        // Drain the client's pongs and requests until it closes.
        while ws.read().is_ok() {}
    });

    let mut cfg = ConnectionConfig::new(&format!("ws://127.0.0.1:{port}/ws")).unwrap();
    cfg.stale_after = Some(Duration::from_secs(10));
    let mut feed = FeedLoop::new().unwrap();
    feed.add(
        cfg,
        Box::new(CountingSession {
            messages: 0,
            go_at: WARMUP,
        }),
    )
    .unwrap();

    let mut events = 0u64;
    let mut emit = |ev: MarketEvent| {
        if matches!(ev.body, EventBody::Index { .. }) {
            events += 1;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let delivered = |feed: &FeedLoop| feed.stats(0).map_or(0, |s| s.messages);
    while delivered(&feed) < WARMUP {
        assert!(
            Instant::now() < deadline,
            "warm-up timed out: {:?}",
            feed.last_failure(0)
        );
        feed.run_once(Duration::from_millis(10), &mut emit).unwrap();
    }
    let start = Instant::now();
    let before = delivered(&feed);
    ARMED.with(|a| a.set(true));
    while delivered(&feed) < total && Instant::now() < deadline {
        feed.run_once(Duration::from_millis(10), &mut emit).unwrap();
    }
    ARMED.with(|a| a.set(false));
    let elapsed = start.elapsed();
    let allocs = allocs_here();
    let measured = delivered(&feed) - before;
    assert_eq!(
        delivered(&feed),
        total,
        "all messages delivered: {:?}",
        feed.last_failure(0)
    );
    assert_eq!(
        allocs, 0,
        "{allocs} allocations on the feed thread over {measured} messages"
    );
    // The counter works: one armed allocation is seen.
    ARMED.with(|a| a.set(true));
    let probe = std::hint::black_box(Box::new([0u8; 64]));
    ARMED.with(|a| a.set(false));
    drop(probe);
    assert_eq!(allocs_here(), 1, "the counting allocator counts");
    let stats = feed.stats(0).unwrap();
    assert_eq!(stats.pings, total.div_ceil(250));
    assert_eq!(stats.opens, 1);
    eprintln!(
        "net_alloc: {measured} messages in {elapsed:?} ({:.0} ns/message wall time with the in-process server, debug build), 0 allocations",
        elapsed.as_nanos() as f64 / measured as f64
    );
    feed.shutdown(&mut emit);
    server.join().unwrap();
    assert_eq!(events, total);
}

/// wss:// costs what rustls 0.23 allocates per TLS record (one plaintext buffer per record
/// received); Keel's own code adds nothing. Measured and bounded here so a regression shows.
#[test]
fn tls_streaming_allocates_only_inside_rustls() {
    let pki = net_support::TestPki::new("alloc");
    let (listener, port) = net_support::bind_loopback();
    let server_config = pki.server_config.clone();
    let n: u64 = 3_000;
    let server = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(server_config).unwrap();
        let mut ws = tungstenite::accept(rustls::StreamOwned::new(conn, tcp)).unwrap();
        let _sub = ws.read().unwrap();
        let body = "t".repeat(450);
        for i in 0..n {
            if i == 500 {
                ws.flush().unwrap();
                wait_for_go(&mut ws);
            }
            ws.write(Message::text(body.clone())).unwrap();
            if i % 16 == 0 {
                ws.flush().unwrap();
            }
        }
        ws.flush().unwrap();
        while ws.read().is_ok() {}
    });
    let mut cfg = ConnectionConfig::new(&format!("wss://127.0.0.1:{port}/")).unwrap();
    cfg.ca_file = Some(pki.ca_file.clone());
    let mut feed = FeedLoop::new().unwrap();
    feed.add(
        cfg,
        Box::new(CountingSession {
            messages: 0,
            go_at: 500,
        }),
    )
    .unwrap();
    let mut emit = |_: MarketEvent| {};
    let deadline = Instant::now() + Duration::from_secs(20);
    let delivered = |feed: &FeedLoop| feed.stats(0).map_or(0, |s| s.messages);
    while delivered(&feed) < 500 {
        assert!(
            Instant::now() < deadline,
            "warm-up timed out: {:?}",
            feed.last_failure(0)
        );
        feed.run_once(Duration::from_millis(10), &mut emit).unwrap();
    }
    let before = delivered(&feed);
    let allocs_before = allocs_here();
    ARMED.with(|a| a.set(true));
    while delivered(&feed) < n && Instant::now() < deadline {
        feed.run_once(Duration::from_millis(10), &mut emit).unwrap();
    }
    ARMED.with(|a| a.set(false));
    let measured = delivered(&feed) - before;
    let allocs = allocs_here() - allocs_before;
    assert_eq!(delivered(&feed), n, "{:?}", feed.last_failure(0));
    let per_message = allocs as f64 / measured as f64;
    eprintln!(
        "net_alloc (wss): {allocs} allocations over {measured} messages ({per_message:.2} per message, inside rustls)"
    );
    // About one per TLS record; a record holds one or more messages.
    assert!(
        per_message <= 1.0,
        "{per_message} allocations per message over TLS"
    );
    feed.shutdown(&mut emit);
    server.join().unwrap();
}

/// A reconnection on ws:// allocates nothing either (after the first one, which grows the
/// address list): the failure record shares the URL, an IP literal needs no lookup, the
/// handshake's key and expected answer are fixed arrays and the `Host` header is formed once.
/// The server drops the connection three times; the second and third reconnections are
/// counted, from the failure to the first message on the new connection.
#[test]
fn a_reconnection_allocates_nothing() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    const SESSIONS: u64 = 4;
    const PER_SESSION: u64 = 200;
    let server = thread::spawn(move || {
        for _ in 0..SESSIONS {
            let (tcp, _) = listener.accept().unwrap();
            let mut ws = tungstenite::accept(tcp).unwrap();
            let _sub = ws.read().unwrap();
            for _ in 0..PER_SESSION {
                ws.write(Message::text("{\"tick\":1}")).unwrap();
            }
            ws.flush().unwrap();
            // Dropped without a close frame: the client sees the peer go away.
        }
    });
    let mut cfg = ConnectionConfig::new(&format!("ws://127.0.0.1:{port}/ws")).unwrap();
    cfg.stale_after = Some(Duration::from_secs(10));
    cfg.backoff = keel_feeds::net::BackoffConfig {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(5),
        jitter: keel_feeds::net::Jitter::Full,
        reset_after: Duration::from_secs(60),
    };
    let mut feed = FeedLoop::new().unwrap();
    feed.add(
        cfg,
        Box::new(CountingSession {
            messages: 0,
            go_at: u64::MAX,
        }),
    )
    .unwrap();
    let mut emit = |_: MarketEvent| {};
    let deadline = Instant::now() + Duration::from_secs(20);
    let delivered = |feed: &FeedLoop| feed.stats(0).map_or(0, |s| s.messages);
    let opens = |feed: &FeedLoop| feed.stats(0).map_or(0, |s| s.opens);
    // Warm-up: the first session and the first reconnection.
    while delivered(&feed) < 2 * PER_SESSION {
        assert!(
            Instant::now() < deadline,
            "warm-up timed out: {:?}",
            feed.last_failure(0)
        );
        feed.run_once(Duration::from_millis(5), &mut emit).unwrap();
    }
    assert_eq!(opens(&feed), 2);
    let before = allocs_here();
    ARMED.with(|a| a.set(true));
    while delivered(&feed) < SESSIONS * PER_SESSION && Instant::now() < deadline {
        feed.run_once(Duration::from_millis(5), &mut emit).unwrap();
    }
    ARMED.with(|a| a.set(false));
    let allocs = allocs_here() - before;
    assert_eq!(
        (delivered(&feed), opens(&feed)),
        (SESSIONS * PER_SESSION, SESSIONS),
        "{:?}",
        feed.last_failure(0)
    );
    assert_eq!(allocs, 0, "{allocs} allocations over two reconnections");
    feed.shutdown(&mut emit);
    server.join().unwrap();
}
