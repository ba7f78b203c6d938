//! `keel-bench e2e --sweep send`: what the "intent ring + encode + socket write" stage is made
//! of, measured piece by piece on this machine.
//!
//! 1. Keel's own encode: the exec tile's real order session ([`DeribitOrders`]) taking one
//!    intent off its ring and writing the masked WebSocket frame of `private/buy` into the
//!    connection's buffer (`Session::poll_outgoing`, no socket).
//! 2. `write(2)` of that frame on a loopback TCP connection (`TCP_NODELAY`), one write at a
//!    time with a pause between, with three receivers:
//!    - keel-sim's way: a non-blocking socket read by a thread that sleeps between looks (the
//!      order endpoint of `keel-sim`): nobody waits on the socket, so the write wakes nobody;
//!    - a thread blocked in `read(2)` (a receiver asleep on the socket: the write wakes it);
//!    - a thread busy-polling a non-blocking `read(2)` (never asleep).
//!
//! On loopback the sender's `write(2)` also runs the receiver's side of TCP (the softirq of
//! the loopback device runs in the sender's context) and any wake-up of a thread waiting on the
//! socket; across a NIC the write returns once the packet is queued to the device.
//!
//! Start-up and reporting code: allocates freely.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use keel_engine::exec::HedgeIntent;
use keel_engine::exec::deribit::DeribitOrders;
use keel_engine::pipeline::TickTrace;
use keel_engine::pipeline::ring::ring;
use keel_feeds::clock;
use keel_feeds::event::{Side, Venue};
use keel_feeds::instrument::InstrumentId;
use keel_feeds::net::ws::FrameEncoder;
use keel_feeds::net::{Outbox, Session};

/// Orders a fresh session takes before its in-flight table would be full (it holds 64).
const PER_SESSION: usize = 60;

/// p50 / p90 / p99 of `v` (ns), sorted in place.
fn pcts(v: &mut [u64]) -> [u64; 3] {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    [at(0.5), at(0.9), at(0.99)]
}

/// Keel's encode: ns per `poll_outgoing` that takes one intent and frames it, and the frame.
fn encode(samples: usize) -> Result<(Vec<u64>, Vec<u8>)> {
    let names = vec!["BTC-PERPETUAL".to_string()];
    let mut out = Vec::with_capacity(samples);
    let mut frame = Vec::new();
    let mut encoder = FrameEncoder::new();
    let mut buf = Vec::with_capacity(4096);
    let mut id = 1u64;
    while out.len() < samples {
        let (mut tx, rx) = ring::<HedgeIntent>(64).map_err(|e| anyhow!("{e}"))?;
        let (fill_tx, _fill_rx) = ring(64).map_err(|e| anyhow!("{e}"))?;
        let mut s = DeribitOrders::new(rx, fill_tx, names.clone(), 1, 1_000_000_000, None);
        for _ in 0..PER_SESSION {
            let intent = HedgeIntent {
                trace: TickTrace::received(1),
                id,
                amount: 10.0 * (1 + id % 7) as f64,
                ref_price: 60_000.0,
                coin_delta: 0.001,
                instrument: InstrumentId(0),
                side: if id.is_multiple_of(2) {
                    Side::Buy
                } else {
                    Side::Sell
                },
                venue: Venue::Deribit,
            };
            id += 1;
            if tx.push(intent).is_err() {
                return Err(anyhow!("intent ring full"));
            }
            buf.clear();
            let t0 = clock::now_ns();
            let wrote = s.poll_outgoing(&mut Outbox::new(&mut encoder, &mut buf));
            let t1 = clock::now_ns();
            if !wrote {
                return Err(anyhow!("the order session wrote nothing"));
            }
            s.on_flushed(t1);
            out.push(t1 - t0);
            if frame.is_empty() {
                frame = buf.clone();
            }
        }
    }
    Ok((out, frame))
}

/// How the receiving end of the loopback connection reads.
#[derive(Clone, Copy)]
enum Receiver {
    /// keel-sim's order endpoint: non-blocking reads, sleeping between looks.
    SleepsBetweenLooks,
    /// Blocked in `read(2)` on the socket.
    BlockedInRead,
    /// Spinning on a non-blocking `read(2)`.
    BusyPolls,
}

/// ns per `write(2)` of `frame` on a loopback connection read by `rx`, writes `gap` apart.
fn writes(frame: &[u8], rx: Receiver, samples: usize, gap: Duration) -> Result<Vec<u64>> {
    let listener = TcpListener::bind("127.0.0.1:0").context("loopback listener")?;
    let addr = listener.local_addr()?;
    let mut tx = TcpStream::connect(addr).context("loopback connect")?;
    tx.set_nodelay(true)?;
    let (mut sock, _) = listener.accept()?;
    sock.set_nodelay(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        match rx {
            Receiver::SleepsBetweenLooks | Receiver::BusyPolls => sock.set_nonblocking(true)?,
            Receiver::BlockedInRead => sock.set_read_timeout(Some(Duration::from_millis(50)))?,
        }
        std::thread::spawn(move || {
            let mut b = vec![0u8; 1 << 16];
            while !stop.load(Ordering::Relaxed) {
                match sock.read(&mut b) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(_) => {
                        if let Receiver::SleepsBetweenLooks = rx {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                    }
                }
            }
        })
    };
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples + 100 {
        let until = Instant::now() + gap;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        let t0 = clock::now_ns();
        tx.write_all(frame)?;
        let t1 = clock::now_ns();
        if i >= 100 {
            out.push(t1 - t0);
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(tx);
    reader
        .join()
        .map_err(|_| anyhow!("the loopback reader panicked"))?;
    Ok(out)
}

/// Runs the experiment and prints its table.
pub fn run(samples: usize) -> Result<()> {
    let (mut enc, frame) = encode(samples)?;
    let e = pcts(&mut enc);
    let gap = Duration::from_micros(50);
    let rows = [
        (
            "write(2), receiver sleeps between looks (keel-sim's order endpoint)",
            Receiver::SleepsBetweenLooks,
        ),
        (
            "write(2), receiver blocked in read(2) (woken by each write)",
            Receiver::BlockedInRead,
        ),
        (
            "write(2), receiver busy-polls read(2) (never asleep)",
            Receiver::BusyPolls,
        ),
    ];
    println!(
        "keel-bench e2e --sweep send: the send stage's parts, {samples} samples each; loopback \
         TCP, one {}-byte order frame per write, writes {} µs apart",
        frame.len(),
        gap.as_micros()
    );
    println!("{:<72} {:>9} {:>9} {:>9}", "part", "p50", "p90", "p99");
    let show = |name: &str, p: [u64; 3]| {
        println!(
            "{:<72} {:>6.2} µs {:>6.2} µs {:>6.2} µs",
            name,
            p[0] as f64 / 1e3,
            p[1] as f64 / 1e3,
            p[2] as f64 / 1e3
        );
    };
    show(
        "Keel encode: intent off the ring → JSON → masked frame (DeribitOrders)",
        e,
    );
    for (name, rx) in rows {
        let mut w = writes(&frame, rx, samples, gap)?;
        show(name, pcts(&mut w));
    }
    Ok(())
}
