//! The keep-alive client allocates nothing per request or response on http:// (DESIGN.md,
//! "Rules of the hot path"): a counting global allocator, armed on the test thread only, sees
//! zero allocations while 200 requests (pipelined four at a time, Content-Length and chunked
//! replies) go to the Python `http.server` (feeds/tests/py/http_server.py) and come back.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keel_feeds::net::{HttpEvent, HttpPool, KeepAliveConfig};

struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    if ARMED.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
    }
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

#[test]
fn no_allocation_per_request_or_response() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/http_server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 must be installed to run the network tests");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().expect("http_server.py prints its port");

    let mut pool = HttpPool::new().unwrap();
    pool.add(KeepAliveConfig::new(&format!("http://127.0.0.1:{port}/")).unwrap())
        .unwrap();
    let (mut ok, mut bad, mut body_bytes) = (0u64, 0u64, 0usize);
    let mut on = |ev: HttpEvent<'_>| match ev {
        HttpEvent::Response(r) if r.status == 200 => {
            ok += 1;
            body_bytes += r.body.len();
        }
        HttpEvent::Up { .. } => {}
        _ => bad += 1,
    };
    assert!(pool.warm_up(Duration::from_secs(10), &mut on).unwrap());
    let echo = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\n{\"id\":1234567}";
    let chunked =
        b"POST /chunked HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\n{\"id\":1234567}";

    let start = Instant::now();
    ARMED.with(|a| a.set(true));
    let mut sent = 0u64;
    while sent < 200 {
        for i in 0..4 {
            let req: &[u8] = if i % 2 == 0 { echo } else { chunked };
            pool.send(0, req, &mut on).unwrap();
        }
        sent += 4;
        while pool.conn(0).unwrap().in_flight() > 0 && start.elapsed() < Duration::from_secs(30) {
            pool.run_once(Duration::from_millis(20), &mut on).unwrap();
        }
    }
    ARMED.with(|a| a.set(false));
    let allocs = ALLOCS.with(Cell::get);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!((ok, bad), (200, 0), "all answered on one warm connection");
    assert!(body_bytes > 200 * 14);
    assert_eq!(
        allocs, 0,
        "allocations while sending and receiving 200 requests"
    );
    assert_eq!(pool.conn(0).unwrap().stats().opens, 1);
}
