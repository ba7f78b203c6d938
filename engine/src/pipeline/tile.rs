//! Tiles: a pipeline stage is a [`Tile`] with a lifecycle (`init`, `step`, `teardown`), and
//! [`spawn`] runs one or more tiles on one OS thread, pinned to a core (gattaca-com/flux
//! `tile/mod.rs`). A fused topology is several tiles in one `spawn`.
//!
//! Owns: the thread, its pinning, its [`Waiter`] and the run loop. The loop itself never
//! allocates, locks or logs; all formatting happens at start-up (thread name, pin warning) or
//! after the loop (errors).
//!
//! Failure of one thread stops the pipeline: if pinning fails under [`PinPolicy::Required`], a
//! tile's `init` fails, or a tile panics, the thread raises the shared [`StopFlag`] so the other
//! stages wind down instead of hedging on a half-built pipeline, and [`TileThread::join`] reports
//! the tile by name.

use super::PipelineError;
use super::wait::{WaitStrategy, Waiter};
use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// Why a tile could not start (returned by [`Tile::init`]). Start-up only, so it may carry a
/// message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TileError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl TileError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// A message and the error that caused it.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl From<String> for TileError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for TileError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

impl From<std::io::Error> for TileError {
    fn from(e: std::io::Error) -> Self {
        Self::with_source(e.to_string(), e)
    }
}

/// One pipeline stage. Owns its state (rings, books, sockets); talks to other tiles only
/// through rings.
pub trait Tile: Send {
    /// A short name for thread names, logs and errors (`feed`, `pricer`, `exec`, `telemetry`).
    fn name(&self) -> &'static str;

    /// Called once on the tile's own thread, after pinning and before the first `step`
    /// (allocate, warm caches, connect). Tiles of one thread are initialised in order.
    fn init(&mut self) -> Result<(), TileError> {
        Ok(())
    }

    /// One unit of work; returns true if it did something (the thread waits only after a round
    /// in which no tile did). Must not block: a fused thread steps its other tiles in between.
    fn step(&mut self) -> bool;

    /// Called once on the tile's thread after the stop flag is seen, in reverse order of init.
    fn teardown(&mut self) {}
}

impl std::fmt::Debug for dyn Tile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tile({})", self.name())
    }
}

/// The pipeline's shared stop signal. Cloned into every thread; any clone can stop all.
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }

    #[inline]
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Where and how one tile thread runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileSpec {
    /// The core to pin the thread to; `None` leaves it to the scheduler.
    pub core: Option<usize>,
    /// What the thread does after a round with no work.
    pub wait: WaitStrategy,
}

/// What to do when pinning fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinPolicy {
    /// A production run: the thread does not run its tiles; `join` returns the error.
    Required,
    /// `--dev`: print one warning line naming the tiles and the core, and run unpinned.
    WarnOnly,
}

/// A running tile thread. Dropping it detaches the thread (raise the stop flag and
/// [`join`](Self::join) to get the tiles back).
#[derive(Debug)]
pub struct TileThread {
    names: String,
    pinned: Option<usize>,
    handle: JoinHandle<Result<Vec<Box<dyn Tile>>, PipelineError>>,
}

impl TileThread {
    /// The core the thread was actually pinned to (`None` if unpinned or pinning failed).
    pub fn pinned_core(&self) -> Option<usize> {
        self.pinned
    }

    /// The tiles' names joined with `+` (also the thread's name).
    pub fn names(&self) -> &str {
        &self.names
    }

    /// True once the thread has returned (stopped, failed or panicked).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the thread; gives the tiles back after their teardown, or the error (pin
    /// failure, a tile's init error, a tile's panic) naming the tile.
    pub fn join(self) -> Result<Vec<Box<dyn Tile>>, PipelineError> {
        match self.handle.join() {
            Ok(r) => r,
            // The run loop catches tile panics itself; this is a panic outside a tile.
            Err(payload) => Err(PipelineError::TilePanicked {
                tile: self.names,
                message: panic_message(payload.as_ref()),
            }),
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Pins the calling thread to `core`; false if the core does not exist or the OS refused.
fn pin_current(core: usize) -> bool {
    let exists = core_affinity::get_core_ids().is_some_and(|ids| ids.iter().any(|c| c.id == core));
    exists && core_affinity::set_for_current(core_affinity::CoreId { id: core })
}

/// Spawns one OS thread named after the tiles (`feed+pricer`), pins it to `spec.core` (if
/// any), runs `init` on every tile in order, then loops: step each tile in order; if none did
/// work, `Waiter::idle`, else `Waiter::reset`; until `stop` is raised; then `teardown` in
/// reverse order. [`TileThread::join`] returns the tiles.
///
/// Returns once the thread has pinned (or failed to), so [`TileThread::pinned_core`] is exact;
/// it does not wait for `init`. Errors here only if `tiles` is empty or the OS cannot start a
/// thread; pin, init and panic failures come from `join` (and raise `stop`).
pub fn spawn(
    tiles: Vec<Box<dyn Tile>>,
    spec: TileSpec,
    pin: PinPolicy,
    stop: StopFlag,
) -> Result<TileThread, PipelineError> {
    if tiles.is_empty() {
        return Err(PipelineError::NoTiles);
    }
    let names = tiles.iter().map(|t| t.name()).collect::<Vec<_>>().join("+");
    let (pinned_tx, pinned_rx) = std::sync::mpsc::sync_channel::<Option<usize>>(1);
    let thread_names = names.clone();
    let handle = std::thread::Builder::new()
        .name(names.clone())
        .spawn(move || {
            let pinned = match spec.core {
                None => None,
                Some(core) if pin_current(core) => Some(core),
                Some(core) => {
                    if pin == PinPolicy::Required {
                        let _ = pinned_tx.send(None);
                        stop.stop();
                        return Err(PipelineError::PinFailed {
                            tiles: thread_names,
                            core,
                        });
                    }
                    eprintln!(
                        "warning: tiles {thread_names}: could not pin to core {core}; running unpinned (--dev)"
                    );
                    None
                }
            };
            let _ = pinned_tx.send(pinned);
            run(tiles, spec.wait, &stop)
        })
        .map_err(|source| PipelineError::Spawn {
            tiles: names.clone(),
            source,
        })?;
    // The thread sends before doing anything else; a closed channel means it died first.
    let pinned = pinned_rx.recv().ok().flatten();
    Ok(TileThread {
        names,
        pinned,
        handle,
    })
}

/// The tile thread's life after pinning.
fn run(
    mut tiles: Vec<Box<dyn Tile>>,
    wait: WaitStrategy,
    stop: &StopFlag,
) -> Result<Vec<Box<dyn Tile>>, PipelineError> {
    // Index of the tile being called, to name it if it panics.
    let mut current = 0usize;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        for i in 0..tiles.len() {
            current = i;
            if let Err(source) = tiles[i].init() {
                stop.stop();
                for t in tiles[..i].iter_mut().rev() {
                    t.teardown();
                }
                return Err(PipelineError::TileInit {
                    tile: tiles[i].name(),
                    source,
                });
            }
        }
        let mut waiter = Waiter::new(wait);
        while !stop.is_stopped() {
            let mut worked = false;
            for (i, t) in tiles.iter_mut().enumerate() {
                current = i;
                worked |= t.step();
            }
            if worked {
                waiter.reset();
            } else {
                waiter.idle();
            }
        }
        for (i, t) in tiles.iter_mut().enumerate().rev() {
            current = i;
            t.teardown();
        }
        Ok(())
    }));
    match outcome {
        Ok(Ok(())) => Ok(tiles),
        Ok(Err(e)) => Err(e),
        Err(payload) => {
            stop.stop();
            Err(PipelineError::TilePanicked {
                tile: tiles
                    .get(current)
                    .map_or_else(|| "?".to_string(), |t| t.name().to_string()),
                message: panic_message(payload.as_ref()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records its lifecycle into a shared log; stops the flag after `stop_after` steps.
    struct Probe {
        name: &'static str,
        log: Arc<Mutex<Vec<String>>>,
        steps: u64,
        stop_after: Option<(u64, StopFlag)>,
        fail_init: bool,
        panic_at: Option<u64>,
    }

    impl Probe {
        fn new(name: &'static str, log: &Arc<Mutex<Vec<String>>>) -> Self {
            Self {
                name,
                log: Arc::clone(log),
                steps: 0,
                stop_after: None,
                fail_init: false,
                panic_at: None,
            }
        }
    }

    impl Tile for Probe {
        fn name(&self) -> &'static str {
            self.name
        }
        fn init(&mut self) -> Result<(), TileError> {
            self.log.lock().unwrap().push(format!("init {}", self.name));
            if self.fail_init {
                return Err(TileError::new("no venue"));
            }
            Ok(())
        }
        fn step(&mut self) -> bool {
            self.steps += 1;
            if self.panic_at == Some(self.steps) {
                panic!("boom at {}", self.steps);
            }
            if let Some((n, stop)) = &self.stop_after
                && self.steps >= *n
            {
                stop.stop();
            }
            self.steps.is_multiple_of(2)
        }
        fn teardown(&mut self) {
            self.log
                .lock()
                .unwrap()
                .push(format!("teardown {}", self.name));
        }
    }

    fn spec() -> TileSpec {
        TileSpec {
            core: None,
            wait: WaitStrategy::SpinYield,
        }
    }

    #[test]
    fn fused_tiles_run_in_order_and_come_back_after_teardown() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = StopFlag::new();
        let mut a = Probe::new("feed", &log);
        a.stop_after = Some((1000, stop.clone()));
        let b = Probe::new("pricer", &log);
        let t = spawn(
            vec![Box::new(a), Box::new(b)],
            spec(),
            PinPolicy::Required,
            stop.clone(),
        )
        .unwrap();
        assert_eq!(t.names(), "feed+pricer");
        assert_eq!(t.pinned_core(), None);
        let tiles = t.join().unwrap();
        assert_eq!(tiles.len(), 2);
        assert_eq!(tiles[0].name(), "feed");
        assert!(stop.is_stopped());
        assert_eq!(
            *log.lock().unwrap(),
            [
                "init feed",
                "init pricer",
                "teardown pricer",
                "teardown feed"
            ]
        );
    }

    #[test]
    fn external_stop_ends_the_loop() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = StopFlag::new();
        let t = spawn(
            vec![Box::new(Probe::new("exec", &log))],
            TileSpec {
                core: None,
                wait: WaitStrategy::Park,
            },
            PinPolicy::Required,
            stop.clone(),
        )
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        stop.stop();
        assert_eq!(t.join().unwrap().len(), 1);
    }

    #[test]
    fn init_failure_names_the_tile_tears_down_the_earlier_ones_and_stops_all() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = StopFlag::new();
        let a = Probe::new("feed", &log);
        let mut b = Probe::new("pricer", &log);
        b.fail_init = true;
        let c = Probe::new("exec", &log);
        let t = spawn(
            vec![Box::new(a), Box::new(b), Box::new(c)],
            spec(),
            PinPolicy::Required,
            stop.clone(),
        )
        .unwrap();
        let e = t.join().unwrap_err();
        assert!(
            matches!(e, PipelineError::TileInit { tile: "pricer", .. }),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("pricer") && e.to_string().contains("no venue"),
            "{e}"
        );
        assert!(stop.is_stopped());
        assert_eq!(
            *log.lock().unwrap(),
            ["init feed", "init pricer", "teardown feed"]
        );
    }

    #[test]
    fn a_panicking_tile_is_named_and_stops_all() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = StopFlag::new();
        let a = Probe::new("feed", &log);
        let mut b = Probe::new("pricer", &log);
        b.panic_at = Some(10);
        let t = spawn(
            vec![Box::new(a), Box::new(b)],
            spec(),
            PinPolicy::Required,
            stop.clone(),
        )
        .unwrap();
        let e = t.join().unwrap_err();
        match &e {
            PipelineError::TilePanicked { tile, message } => {
                assert_eq!(tile, "pricer");
                assert!(message.contains("boom at 10"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(stop.is_stopped());
    }

    #[test]
    fn pin_to_a_missing_core_fails_when_required() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = StopFlag::new();
        let t = spawn(
            vec![Box::new(Probe::new("feed", &log))],
            TileSpec {
                core: Some(100_000),
                wait: WaitStrategy::Spin,
            },
            PinPolicy::Required,
            stop.clone(),
        )
        .unwrap();
        assert_eq!(t.pinned_core(), None);
        let e = t.join().unwrap_err();
        assert!(
            matches!(e, PipelineError::PinFailed { core: 100_000, .. }),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(msg.contains("feed") && msg.contains("100000"), "{msg}");
        assert!(log.lock().unwrap().is_empty(), "tiles must not run");
        assert!(stop.is_stopped());
    }

    #[test]
    fn pin_failure_is_a_warning_in_dev() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = StopFlag::new();
        let mut p = Probe::new("feed", &log);
        p.stop_after = Some((10, stop.clone()));
        let t = spawn(
            vec![Box::new(p)],
            TileSpec {
                core: Some(100_000),
                wait: WaitStrategy::Spin,
            },
            PinPolicy::WarnOnly,
            stop,
        )
        .unwrap();
        assert_eq!(t.pinned_core(), None);
        assert_eq!(t.join().unwrap().len(), 1);
    }

    #[test]
    fn pins_to_an_available_core() {
        let Some(core) = crate::pipeline::topology::available_cores().last().copied() else {
            return; // affinity not supported here (e.g. under Miri)
        };
        let stop = StopFlag::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut p = Probe::new("feed", &log);
        p.stop_after = Some((10, stop.clone()));
        let t = spawn(
            vec![Box::new(p)],
            TileSpec {
                core: Some(core),
                wait: WaitStrategy::SpinYield,
            },
            PinPolicy::Required,
            stop,
        )
        .unwrap();
        assert_eq!(t.pinned_core(), Some(core));
        t.join().unwrap();
    }

    #[test]
    fn no_tiles_is_an_error() {
        let e = spawn(Vec::new(), spec(), PinPolicy::Required, StopFlag::new()).unwrap_err();
        assert!(matches!(e, PipelineError::NoTiles));
    }
}
