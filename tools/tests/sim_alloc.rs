//! keel-sim allocates nothing per streamed message once warmed up: a counting global allocator
//! sees (almost) no allocation while thousands of messages flow to two raw-TCP clients (one
//! Deribit, one Binance combined), with fragmentation, delay, malformed messages and pings on.
//! The clients read into a stack buffer and so allocate nothing themselves.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keel_tools::sim::{Faults, SimConfig, SimVenue};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Handshake by hand, then send one masked text frame; returns the non-blocking socket.
fn open(addr: SocketAddr, path: &str, request: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    if !request.is_empty() {
        let p = request.as_bytes();
        let mask = [1u8, 2, 3, 4];
        let mut f = vec![0x81u8];
        if p.len() < 126 {
            f.push(0x80 | p.len() as u8);
        } else {
            f.push(0x80 | 126);
            f.extend_from_slice(&(p.len() as u16).to_be_bytes());
        }
        f.extend_from_slice(&mask);
        f.extend(p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        tcp.write_all(&f).unwrap();
    }
    tcp.set_nonblocking(true).unwrap();
    tcp
}

#[test]
fn streaming_does_not_allocate_per_message() {
    let sim = SimVenue::start(SimConfig {
        rate: 10_000,
        options: 100,
        tick: Duration::from_millis(20),
        faults: Faults {
            fragments: 3,
            delay: Some(Duration::from_millis(30)),
            malformed_rate: 0.05,
            ping_every: Some(Duration::from_millis(50)),
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .unwrap();
    let names: Vec<String> = sim.chain().options[..10]
        .iter()
        .map(|o| format!("\"ticker.{}.raw\"", o.name))
        .collect();
    let book = &sim.chain().options[3].name;
    let deribit_req = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"public/subscribe","params":{{"channels":[{},"book.{book}.raw","book.BTC-PERPETUAL.raw","ticker.BTC-PERPETUAL.raw","deribit_price_index.btc_usd","markprice.options.btc_usd"]}}}}"#,
        names.join(",")
    );
    let mut clients = [
        open(sim.addr(), "/ws/api/v2", &deribit_req),
        open(
            sim.addr(),
            "/stream?streams=btcusdt@bookTicker/btcusdt@aggTrade/btcusdt@depth@100ms/btcusdt@markPrice@1s",
            "",
        ),
    ];
    let mut buf = [0u8; 65536];
    let mut pump = |clients: &mut [TcpStream; 2], for_how_long: Duration| {
        let until = Instant::now() + for_how_long;
        while Instant::now() < until {
            let mut idle = true;
            for c in clients.iter_mut() {
                match c.read(&mut buf) {
                    Ok(0) => panic!("server closed"),
                    Ok(_) => idle = false,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
            if idle {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    };
    // Warm up: buffers grow, the delay queue fills, every channel has sent.
    pump(&mut clients, Duration::from_millis(1_500));
    let m0 = sim.stats().messages;
    let a0 = ALLOCS.load(Ordering::Relaxed);
    pump(&mut clients, Duration::from_millis(1_500));
    let allocs = ALLOCS.load(Ordering::Relaxed) - a0;
    let messages = sim.stats().messages - m0;
    eprintln!("{messages} messages, {allocs} allocations");
    assert!(messages >= 5_000, "only {messages} messages flowed");
    assert!(
        allocs * 1000 < messages,
        "{allocs} allocations for {messages} messages"
    );
}
