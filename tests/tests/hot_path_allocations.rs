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
}
static ARMED: AtomicBool = AtomicBool::new(false);
/// The tests share the counter: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

fn count(size: usize) {
    if ARMED.load(Ordering::Relaxed) && ON_TILE.try_with(Cell::get).unwrap_or(false) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size as u64, Ordering::Relaxed);
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

#[test]
fn feed_pricer_exec_do_not_allocate_after_start_up() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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
    cfg.deribit.rate_limit = Some(200);
    cfg.status_every = Duration::ZERO;
    cfg.dev = true;
    let wrap = |t: Box<dyn Tile>| -> Box<dyn Tile> { Box::new(OnTile(t)) };
    let wrap_ref: TileWrap<'_> = &wrap;
    let run = start(&cfg, Some(wrap_ref)).expect("pipeline starts");
    let p = run.pricer();
    let ticks = || p.ticks.load(Ordering::Relaxed);
    let fills = || p.fills.load(Ordering::Relaxed) + p.rejects.load(Ordering::Relaxed);
    wait_for(
        "warm-up (a fill back, 20k ticks)",
        Duration::from_secs(60),
        || fills() >= 1 && ticks() >= 20_000,
    );
    let (t0, f0) = (ticks(), fills());
    ARMED.store(true, Ordering::SeqCst);
    wait_for(
        "100k armed ticks and a fill",
        Duration::from_secs(120),
        || ticks() >= t0 + 100_000 && fills() > f0,
    );
    ARMED.store(false, Ordering::SeqCst);
    let (t1, f1) = (ticks(), fills());
    let summary = run.finish().expect("clean shutdown");
    let n = ALLOCS.load(Ordering::SeqCst);
    assert_eq!(
        n,
        0,
        "{n} allocations ({} bytes) on feed/pricer/exec threads over {} ticks and {} hedge outcomes",
        BYTES.load(Ordering::SeqCst),
        t1 - t0,
        f1 - f0
    );
    assert!(summary.reprices_full + summary.reprices_spot > 0);
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
        block_time: Duration::from_secs(3_600),
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
            assert!(t0.elapsed() < Duration::from_secs(10), "no fill");
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
    ARMED.store(false, Ordering::SeqCst);
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
