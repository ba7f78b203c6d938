//! DESIGN.md "Rules of the hot path": no heap allocation after start-up. Drives at least 100k
//! ticks from keel-sim (in-process, loopback WebSocket) through the real feed → pricer → exec
//! tiles, with hedges going to keel-sim's order endpoint and fills coming back, and counts every
//! allocation made on those tiles' threads once they are warm. keel-sim's own threads and the
//! telemetry tile are not counted (they are not on the hot path).
//!
//! Warm-up: until the first fill has come back and 20k ticks went through (read buffers grow to
//! the largest message, the order connection is open). Then counting is armed for 100k ticks.
//!
//! The EVM exec path (decision → pre-signed rung → requests on four warm keep-alive
//! connections → replies raced → fill) is counted the same way on its own thread, against
//! keel-sim's node and builders, with the ladder signer on its own (uncounted) thread. The two
//! tests take turns (one global counter).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keel_engine::pipeline::{Tile, TileError};
use keel_tools::run::{TileWrap, start};
use keel_tools::run_config::RunConfig;

struct Counting;

thread_local! {
    static ON_TILE: Cell<bool> = const { Cell::new(false) };
    /// Every allocation of this thread, armed or not (the venue hot-path tests read it around
    /// the calls they check, on their own thread: independent of the pipeline test's flags).
    static THREAD_ALLOCS: Cell<u64> = const { Cell::new(0) };
}
static ARMED: AtomicBool = AtomicBool::new(false);
/// The tests share the counter: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
static ALLOCS: AtomicU64 = AtomicU64::new(0);
/// `KEEL_ALLOC_TRACE=1`: print a backtrace of every counted allocation (read before arming:
/// reading the environment allocates).
static TRACE: AtomicBool = AtomicBool::new(false);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set while the tracer prints: its own allocations are not the hot path's.
    static PRINTING: Cell<bool> = const { Cell::new(false) };
}

fn count(size: usize) {
    let _ = THREAD_ALLOCS.try_with(|c| c.set(c.get() + 1));
    if ARMED.load(Ordering::Relaxed) && ON_TILE.try_with(Cell::get).unwrap_or(false) {
        if PRINTING.try_with(Cell::get).unwrap_or(true) {
            return;
        }
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size as u64, Ordering::Relaxed);
        if TRACE.load(Ordering::Relaxed) {
            let _ = PRINTING.try_with(|c| c.set(true));
            let bt = std::backtrace::Backtrace::force_capture();
            let t = std::thread::current();
            eprintln!("counted allocation of {size} B on {:?}:\n{bt}", t.name());
            let _ = PRINTING.try_with(|c| c.set(false));
        }
    }
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        count(l.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        count(new);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, new) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Marks its thread as a hot-path thread once the tile is initialised.
struct OnTile(Box<dyn Tile>);

impl Tile for OnTile {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn init(&mut self) -> Result<(), TileError> {
        self.0.init()?;
        ON_TILE.with(|c| c.set(true));
        Ok(())
    }
    fn step(&mut self) -> bool {
        self.0.step()
    }
    fn teardown(&mut self) {
        ON_TILE.with(|c| c.set(false));
        self.0.teardown();
    }
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `keel run`'s pipeline on the embedded venue with every tile marked ([`OnTile`]): orders at
/// up to 200/s, no status line, pinning failures tolerated.
fn start_marked(mut cfg: RunConfig) -> keel_tools::run::Running {
    cfg.deribit.rate_limit = Some(200);
    cfg.status_every = Duration::ZERO;
    cfg.dev = true;
    let wrap = |t: Box<dyn Tile>| -> Box<dyn Tile> { Box::new(OnTile(t)) };
    let wrap_ref: TileWrap<'_> = &wrap;
    start(&cfg, Some(wrap_ref)).expect("pipeline starts")
}

/// Counts the marked threads' allocations while `what` comes true (within `limit`).
/// Disarms when dropped, so a test that fails while armed (a timeout) does not leave the
/// counter armed for the tests after it.
struct Disarm;

impl Drop for Disarm {
    fn drop(&mut self) {
        ARMED.store(false, Ordering::SeqCst);
    }
}

fn armed_until(what: &str, limit: Duration, ok: impl FnMut() -> bool) {
    let _disarm = Disarm;
    ARMED.store(true, Ordering::SeqCst);
    wait_for(what, limit, ok);
}

#[test]
fn feed_pricer_exec_do_not_allocate_after_start_up() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    TRACE.store(
        std::env::var_os("KEEL_ALLOC_TRACE").is_some_and(|v| v == "1"),
        Ordering::SeqCst,
    );
    // The counter counts: an allocation on a marked thread while armed is seen.
    ON_TILE.with(|c| c.set(true));
    ARMED.store(true, Ordering::SeqCst);
    let probe = std::hint::black_box(vec![1u8; 64]);
    ARMED.store(false, Ordering::SeqCst);
    ON_TILE.with(|c| c.set(false));
    drop(probe);
    assert!(
        ALLOCS.swap(0, Ordering::SeqCst) >= 1,
        "the counting allocator sees allocations"
    );
    BYTES.store(0, Ordering::SeqCst);

    let mut cfg = RunConfig::defaults();
    // 4,000 listed options on 100 ms tickers: about 40k ticks/s.
    cfg.sim.options = 4_000;
    cfg.sim.rate = 0;
    cfg.delta_band = 0.001;
    // Tight gamma/vega bands: option legs (the candidate solve) run on the hot path too.
    cfg.vega_band = Some(0.05);
    cfg.gamma_band = Some(0.00005);
    // And per-expiry vega bands: the bucket LP runs on the hot path too.
    cfg.vega_bucket_band = Some(0.02);
    // An alternative hedge venue: the all-in venue choice and the exec router run too.
    cfg.alt_hedges = vec![("binance".into(), "BTCUSDT".into())];
    let run = start_marked(cfg);
    let p = run.pricer();
    let ticks = || p.ticks.load(Ordering::Relaxed);
    let fills = || p.fills.load(Ordering::Relaxed) + p.rejects.load(Ordering::Relaxed);
    wait_for(
        "warm-up (a fill back, 20k ticks)",
        // A liveness bound, not a speed check: generous for a loaded 2-core machine.
        Duration::from_secs(180),
        || fills() >= 1 && ticks() >= 20_000,
    );
    let (t0, f0) = (ticks(), fills());
    let snapshots = || p.depth_snapshots.load(Ordering::Relaxed);
    let s0 = snapshots();
    armed_until(
        "100k armed ticks and a fill",
        Duration::from_secs(120),
        || ticks() >= t0 + 100_000 && fills() > f0,
    );
    let (t1, f1, s1) = (ticks(), fills(), snapshots());
    let summary = run.finish().expect("clean shutdown");
    let n = ALLOCS.load(Ordering::SeqCst);
    assert_eq!(
        n,
        0,
        "{n} allocations ({} bytes) on feed/pricer/exec threads over {} ticks and {} hedge outcomes \
         (book snapshots while armed {}, book levels lost {}, conflation dropped {}, order \
         disconnects {}, sim {:?}; rerun with KEEL_ALLOC_TRACE=1 -- --nocapture for where)",
        BYTES.load(Ordering::SeqCst),
        t1 - t0,
        f1 - f0,
        s1 - s0,
        summary.book_levels_lost,
        summary.conflation_dropped,
        summary.order_disconnects,
        summary.sim_orders
    );
    assert!(summary.reprices_full + summary.reprices_spot > 0);
}

/// Runs `cfg` with every tile marked, waits for one hedge on the venue `hedges` counts and its
/// outcome, then counts allocations over five more and their outcomes; returns the summary.
fn five_armed_hedges(
    cfg: RunConfig,
    venue: &str,
    hedges: fn(&keel_engine::pipeline::pricer::PricerStats) -> u64,
) -> keel_tools::run::Summary {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    BYTES.store(0, Ordering::SeqCst);
    ALLOCS.store(0, Ordering::SeqCst);
    let run = start_marked(cfg);
    let p = run.pricer();
    let sent = || hedges(p);
    let fills = || p.fills.load(Ordering::Relaxed) + p.rejects.load(Ordering::Relaxed);
    wait_for(
        &format!("warm-up (a hedge on {venue} back)"),
        Duration::from_secs(60),
        || sent() >= 1 && fills() >= 1,
    );
    let (h0, f0) = (sent(), fills());
    armed_until(
        &format!("five armed hedges on {venue} and their outcomes"),
        Duration::from_secs(120),
        || sent() >= h0 + 5 && fills() >= f0 + 5,
    );
    let summary = run.finish().expect("clean shutdown");
    let n = ALLOCS.load(Ordering::SeqCst);
    assert_eq!(
        n,
        0,
        "{n} allocations ({} bytes) on feed/pricer/exec threads with hedges on {venue}",
        BYTES.load(Ordering::SeqCst),
    );
    summary
}

#[test]
fn on_chain_hedges_do_not_allocate_after_start_up() {
    let mut cfg = RunConfig::defaults();
    cfg.sim.options = 1_000;
    cfg.delta_band = 0.002;
    // The on-chain venue, cheapest by far (no DEX fee, gas at 0.001 gwei): the chain head
    // feed, the venue choice with gas, the router and the EVM exec tile (rung pick, copies on
    // three keep-alive routes, replies raced) all run armed. The signer thread is not a tile:
    // it signs off the hot path and may allocate.
    cfg.alt_hedges = vec![("evm".into(), String::new())];
    cfg.deribit.fee_bps = 50.0;
    cfg.evm.fee_bps = 0.0;
    cfg.evm.priority_fee_gwei = 0.0;
    cfg.evm.sim_base_fee_gwei = 0.001;
    cfg.evm.sim_block_time = Duration::from_millis(100);
    let summary = five_armed_hedges(cfg, "the chain", |p| {
        p.chain_venue_hedges.load(Ordering::Relaxed)
    });
    assert!(summary.evm.expect("on-chain report").won >= 5);
}

#[test]
fn hyperliquid_hedges_do_not_allocate_after_start_up() {
    let mut cfg = RunConfig::defaults();
    cfg.sim.options = 1_000;
    cfg.delta_band = 0.002;
    // Hyperliquid, cheapest by far (no fee): its l2Book feed (whole-book snapshots into the
    // depth book), the venue choice, the router and the Hyperliquid exec session (ladder swap,
    // rung pick, the slot's post rendered, the reply parsed) all run armed. The signer thread is
    // not a tile: it signs off the hot path and may allocate.
    cfg.alt_hedges = vec![("hyperliquid".into(), String::new())];
    cfg.deribit.fee_bps = 50.0;
    cfg.hyperliquid.fee_bps = 0.0;
    let summary = five_armed_hedges(cfg, "Hyperliquid", |p| {
        p.alt_venue_hedges.load(Ordering::Relaxed)
    });
    assert!(summary.alt_venue_hedges >= 5);
}

/// Allocations made on this thread while `f` runs.
fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = THREAD_ALLOCS.with(Cell::get);
    f();
    THREAD_ALLOCS.with(Cell::get) - before
}

mod venues {
    use super::allocations_in;

    use keel_engine::exec::binance::{
        BinanceCredentials, BinanceOrderConfig, BinanceOrders, Fields, HmacSigner, RequestTemplate,
    };
    use keel_engine::exec::evm::EvmSigner;
    use keel_engine::exec::hyperliquid::{
        HlCommand, HyperliquidOrders, LimitWire, Network, OrderTypeWire, OrderWire, Tif, presign,
    };
    use keel_engine::exec::{Fill, HedgeIntent};
    use keel_engine::pipeline::ring::ring;
    use keel_engine::pipeline::telemetry::TickTrace;
    use keel_feeds::event::{Side, Venue};
    use keel_feeds::instrument::InstrumentId;
    use keel_feeds::net::ws::FrameEncoder;
    use keel_feeds::net::{Outbox, Session};

    fn intent(id: u64) -> HedgeIntent {
        HedgeIntent {
            trace: TickTrace::default(),
            id,
            amount: 0.012,
            ref_price: 100_000.0,
            coin_delta: 0.012,
            instrument: InstrumentId(0),
            side: if id.is_multiple_of(2) {
                Side::Buy
            } else {
                Side::Sell
            },
            venue: Venue::Binance,
        }
    }

    /// Binance: the order.place template filled and HMAC-signed, by itself and through the
    /// session's poll (intent popped, request rendered, framed into the outbox).
    #[test]
    fn binance_template_fill_and_hmac_do_not_allocate() {
        // The per-thread count sees allocations.
        assert!(allocations_in(|| drop(std::hint::black_box(vec![1u8; 64]))) >= 1);
        let signer = HmacSigner::new(b"secret0123456789");
        let t = RequestTemplate::market_order("apiKey", "BTCUSDT", Side::Buy, 5000, 3).unwrap();
        let mut buf = Vec::with_capacity(t.max_len());
        let mut fill = |i: u64| {
            t.fill(
                &Fields {
                    client_order_id: b"k5eed-123456789",
                    quantity: 0.001 * (i % 97 + 1) as f64,
                    price: f64::NAN,
                    timestamp_ms: 1_700_000_000_000 + i,
                },
                &signer,
                &mut buf,
            )
            .unwrap();
        };
        fill(0);
        assert_eq!(allocations_in(|| (1..2_000).for_each(&mut fill)), 0);

        let (mut ip, ic) = ring::<HedgeIntent>(64).unwrap();
        let (fp, mut fc) = ring::<Fill>(64).unwrap();
        let creds = BinanceCredentials::new("apiKey", b"secret0123456789", "test").unwrap();
        let mut s = BinanceOrders::new(
            ic,
            fp,
            &creds,
            BinanceOrderConfig {
                symbol: "BTCUSDT".into(),
                qty_decimals: 3,
                recv_window_ms: 5000,
                run_tag: 0x5eed,
                timeout_ns: u64::MAX / 4,
            },
        )
        .unwrap();
        let mut enc = FrameEncoder::new();
        let mut out_buf = Vec::with_capacity(64 << 10);
        // Warm-up order (first use of every buffer); replies are formatted outside the measured
        // part: only the poll, the write and the reply parse count.
        ip.push(intent(0)).unwrap();
        assert!(s.poll_outgoing(&mut Outbox::new(&mut enc, &mut out_buf)));
        s.on_flushed(1);
        let r0 = r#"{"id":"k5eed-0","status":200,"result":{"status":"FILLED","executedQty":"0.012","avgPrice":"100000.5"}}"#;
        s.on_message(
            r0.as_bytes(),
            0,
            &mut Outbox::new(&mut enc, &mut out_buf),
            &mut |_| {},
        )
        .unwrap();
        fc.pop().unwrap();
        for k in 1..200u64 {
            let reply = format!(
                r#"{{"id":"k5eed-{k}","status":200,"result":{{"status":"FILLED","executedQty":"0.012","avgPrice":"100000.5"}}}}"#
            );
            let n = allocations_in(|| {
                ip.push(intent(k)).unwrap();
                out_buf.clear();
                let mut out = Outbox::new(&mut enc, &mut out_buf);
                assert!(s.poll_outgoing(&mut out));
                s.on_flushed(k);
                s.on_message(
                    reply.as_bytes(),
                    0,
                    &mut Outbox::new(&mut enc, &mut out_buf),
                    &mut |_| {},
                )
                .unwrap();
                assert!(fc.pop().is_some());
            });
            assert_eq!(n, 0, "order {k}");
        }
    }

    /// Hyperliquid: firing a pre-signed action (and its noop) copies ready bytes into the
    /// outbox; the reply parse does not allocate either.
    #[test]
    fn sending_a_presigned_hyperliquid_action_does_not_allocate() {
        let key = EvmSigner::from_hex(&format!("0x{}", "42".repeat(32)), "test").unwrap();
        let ladder = (0..64u64)
            .map(|k| {
                let order = OrderWire {
                    a: 0,
                    b: true,
                    p: "100000".into(),
                    s: "0.012".into(),
                    r: false,
                    t: OrderTypeWire {
                        limit: LimitWire { tif: Tif::Ioc },
                    },
                    c: None,
                };
                (
                    intent(k),
                    presign(&key, order, 1_800_000_000_000 + k, Network::Mainnet).unwrap(),
                )
            })
            .collect();
        let (mut cp, cc) = ring::<HlCommand>(64).unwrap();
        let (fp, mut fc) = ring::<Fill>(64).unwrap();
        let mut s = HyperliquidOrders::new(cc, fp, ladder, u64::MAX / 4);
        let mut enc = FrameEncoder::new();
        let mut out_buf = Vec::with_capacity(64 << 10);
        let replies: Vec<String> = (0..64u64)
            .map(|k| {
                format!(
                    r#"{{"channel":"post","data":{{"id":{},"response":{{"type":"action","payload":{{"status":"ok","response":{{"type":"order","data":{{"statuses":[{{"filled":{{"totalSz":"0.012","avgPx":"100000.5","oid":{k}}}}}]}}}}}}}}}}}}"#,
                    2 * k
                )
            })
            .collect();
        let noop_ok = r#"{"channel":"post","data":{"id":1,"response":{"type":"action","payload":{"status":"ok","response":{"type":"default"}}}}}"#;
        for k in 0..64u32 {
            let n = allocations_in(|| {
                cp.push(HlCommand {
                    entry: k,
                    void: false,
                })
                .unwrap();
                out_buf.clear();
                let mut out = Outbox::new(&mut enc, &mut out_buf);
                assert!(s.poll_outgoing(&mut out));
                s.on_flushed(1);
                s.on_message(
                    replies[k as usize].as_bytes(),
                    0,
                    &mut Outbox::new(&mut enc, &mut out_buf),
                    &mut |_| {},
                )
                .unwrap();
                assert!(fc.pop().is_some());
                if k == 0 {
                    cp.push(HlCommand {
                        entry: 0,
                        void: true,
                    })
                    .unwrap();
                    let mut out = Outbox::new(&mut enc, &mut out_buf);
                    assert!(s.poll_outgoing(&mut out));
                    s.on_message(
                        noop_ok.as_bytes(),
                        0,
                        &mut Outbox::new(&mut enc, &mut out_buf),
                        &mut |_| {},
                    )
                    .unwrap();
                }
            });
            assert_eq!(n, 0, "entry {k}");
        }
        assert_eq!(s.counters().voided, 1);
    }
}

mod evm_common;

#[test]
fn evm_exec_path_does_not_allocate_after_start_up() {
    use evm_common::*;
    use keel_engine::exec::FillStatus;
    use keel_engine::pipeline::StopFlag;
    use keel_feeds::event::Side;
    use keel_tools::sim::node::NodeConfig;

    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let node = node(NodeConfig {
        builders: 3,
        block_time: Duration::from_millis(250),
        ..NodeConfig::default()
    });
    let routes = routes(&node);
    let (mut signer, shelf) = signer(&routes, 3);
    first_step(&mut signer);
    let stop = StopFlag::new();
    let signer_thread = signer.spawn(stop.clone()).expect("signer thread");
    let mut exec = exec(&routes, shelf.clone(), &exec_config(Duration::from_secs(2)));

    // One decision, waiting first for a fresh ladder (the signer thread re-signs).
    let one = |exec: &mut keel_engine::exec::evm::exec::EvmExec, id: u64| -> FillStatus {
        let t0 = Instant::now();
        loop {
            assert!(t0.elapsed() < Duration::from_secs(10), "no fresh ladder");
            exec.poll(Duration::from_micros(100));
            let Some(n) = exec.next_nonce() else {
                break;
            };
            let g = shelf.ladder(n);
            if g.as_ref().is_some_and(|l| l.nonce == n && !l.is_fired()) {
                break;
            }
        }
        let side = if id.is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        };
        let _ = exec.decide(&intent(id, side, 0.01 * (1 + id % 4) as f64));
        loop {
            assert!(t0.elapsed() < Duration::from_secs(30), "no fill");
            if let Some(f) = exec.pop_fill() {
                return f.status;
            }
            exec.poll(Duration::from_micros(100));
        }
    };
    for id in 1..=200 {
        one(&mut exec, id);
    }
    ON_TILE.with(|c| c.set(true));
    ALLOCS.store(0, Ordering::SeqCst);
    let disarm = Disarm;
    ARMED.store(true, Ordering::SeqCst);
    drop(std::hint::black_box(vec![1u8; 64]));
    assert_eq!(
        ALLOCS.swap(0, Ordering::SeqCst),
        1,
        "this thread is counted"
    );
    BYTES.store(0, Ordering::SeqCst);
    let mut filled = 0;
    for id in 201..=2_200 {
        if one(&mut exec, id) == FillStatus::Filled {
            filled += 1;
        }
    }
    drop(disarm);
    ON_TILE.with(|c| c.set(false));
    stop.stop();
    signer_thread.join().expect("signer thread");
    let n = ALLOCS.load(Ordering::SeqCst);
    assert_eq!(
        n,
        0,
        "{n} allocations ({} bytes) on the EVM exec thread over 2,000 decisions",
        BYTES.load(Ordering::SeqCst)
    );
    assert!(filled > 1_900, "{filled} of 2,000 decisions filled");
}
