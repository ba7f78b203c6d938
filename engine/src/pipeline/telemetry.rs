//! Stage latencies, measured without side tables and recorded off the hot path.
//!
//! The origin timestamp rides with the message (gattaca-com/flux `internal_message.rs`): every
//! message derived from a tick (event → reprice → intent → send) carries a [`TickTrace`], each
//! stage stamping its own field with `keel_feeds::clock::now_ns`. The last stage to touch a
//! trace pushes it (a 56-byte `Copy`) on a ring to the [`TelemetryTile`], which records the stage
//! differences into preallocated HDR histograms and publishes a [`LatencySummary`].
//!
//! Owns: the histograms and the published summaries. Must never: allocate while recording
//! (histograms are sized at [`Telemetry::new`], values outside 1 ns .. 60 s saturate), or slow
//! the hot path: hot-path stages only push traces (and should `push`, dropping a trace when the
//! telemetry ring is full, never wait). The one lock here, the published summary's
//! `Mutex`, is taken by the telemetry thread every `publish_every` and by readers of the
//! [`TelemetryHandle`] — never by a hot-path stage.

use super::ring::Consumer;
use super::tile::Tile;
use hdrhistogram::Histogram;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The timestamps one tick collects on its way through the pipeline, in ns on the
/// `keel_feeds::clock::now_ns` clock; 0 means the stage was not reached.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickTrace {
    /// The socket read that brought the tick (the origin).
    pub recv_ns: u64,
    /// The venue parser produced the `MarketEvent`.
    pub parsed_ns: u64,
    /// The pricer took the event off the feed ring.
    pub dequeued_ns: u64,
    /// The book was repriced with it.
    pub priced_ns: u64,
    /// Risk and policy decided (a hedge intent, or nothing).
    pub decided_ns: u64,
    /// The hedge bytes were written to the first venue.
    pub sent_ns: u64,
    /// The venue's time of the tick (`MarketEvent::exchange_ts_ns`; keel-sim's send time at ns
    /// precision), kept beside the local ones for wire-to-wire latency; 0 if unknown.
    pub venue_ns: u64,
}

impl TickTrace {
    /// A trace that starts at a socket read at `recv_ns`.
    pub fn received(recv_ns: u64) -> Self {
        Self {
            recv_ns,
            ..Self::default()
        }
    }

    /// The two timestamps that bound `stage` (start, end).
    #[inline]
    pub fn bounds(&self, stage: Stage) -> (u64, u64) {
        match stage {
            Stage::ReadParse => (self.recv_ns, self.parsed_ns),
            Stage::RingHop => (self.parsed_ns, self.dequeued_ns),
            Stage::Reprice => (self.dequeued_ns, self.priced_ns),
            Stage::Decide => (self.priced_ns, self.decided_ns),
            Stage::Send => (self.decided_ns, self.sent_ns),
            Stage::TickToTrade => (self.recv_ns, self.sent_ns),
        }
    }

    /// The duration of `stage` in ns, if both ends were stamped and are in order.
    #[inline]
    pub fn latency(&self, stage: Stage) -> Option<u64> {
        let (start, end) = self.bounds(stage);
        (start != 0 && end != 0 && end >= start).then(|| end - start)
    }
}

/// A measured span of the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Stage {
    /// parsed − recv: frame decode and venue parse.
    ReadParse,
    /// dequeued − parsed: the feed → pricer ring hop (and any wait in it).
    RingHop,
    /// priced − dequeued: market state update and the whole-book reprice.
    Reprice,
    /// decided − priced: aggregation, risk and policy.
    Decide,
    /// sent − decided: the intent ring hop, ladder pick and the socket write.
    Send,
    /// sent − recv: the whole path.
    TickToTrade,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Self::ReadParse,
        Self::RingHop,
        Self::Reprice,
        Self::Decide,
        Self::Send,
        Self::TickToTrade,
    ];

    /// The name used in tables and JSON keys.
    pub fn name(self) -> &'static str {
        match self {
            Self::ReadParse => "read_parse",
            Self::RingHop => "ring_hop",
            Self::Reprice => "reprice",
            Self::Decide => "decide",
            Self::Send => "send",
            Self::TickToTrade => "tick_to_trade",
        }
    }
}

/// The distribution of one stage's latency, in ns.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
}

/// Percentiles of every stage, indexed by `Stage as usize`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LatencySummary {
    pub stages: [Percentiles; 6],
}

impl LatencySummary {
    pub fn get(&self, stage: Stage) -> Percentiles {
        self.stages[stage as usize]
    }
}

/// Highest value the histograms hold: 60 s (larger values saturate to it).
const HIGHEST_NS: u64 = 60_000_000_000;

/// One HDR histogram per [`Stage`], 1 ns .. 60 s at 3 significant figures, allocated here.
#[derive(Clone, Debug)]
pub struct Telemetry {
    stages: [Histogram<u64>; 6],
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    pub fn new() -> Self {
        Self {
            stages: std::array::from_fn(|_| {
                // 1 ns .. 60 s at 3 significant figures is a valid configuration, so this cannot
                // fail; auto-resize stays off, so recording never allocates.
                Histogram::new_with_bounds(1, HIGHEST_NS, 3)
                    .expect("1 ns .. 60 s, 3 significant figures is a valid histogram")
            }),
        }
    }

    /// Records every stage of `t` whose both ends are stamped and in order. Never allocates.
    #[inline]
    pub fn record(&mut self, t: &TickTrace) {
        for stage in Stage::ALL {
            if let Some(ns) = t.latency(stage) {
                self.stages[stage as usize].saturating_record(ns);
            }
        }
    }

    /// Percentiles of everything recorded since `new` or the last `reset`.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            stages: std::array::from_fn(|i| {
                let h = &self.stages[i];
                if h.is_empty() {
                    return Percentiles::default();
                }
                Percentiles {
                    count: h.len(),
                    p50_ns: h.value_at_quantile(0.50),
                    p90_ns: h.value_at_quantile(0.90),
                    p99_ns: h.value_at_quantile(0.99),
                    p999_ns: h.value_at_quantile(0.999),
                    max_ns: h.max(),
                }
            }),
        }
    }

    /// Forgets everything recorded (keeps the allocation).
    pub fn reset(&mut self) {
        for h in &mut self.stages {
            h.reset();
        }
    }
}

/// What the telemetry thread last published.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Published {
    /// Since the tile started.
    total: LatencySummary,
    /// Over the last complete `publish_every` window.
    window: LatencySummary,
    /// How many times it has published.
    publications: u64,
}

/// Reads the telemetry thread's published summaries from any thread (takes a lock, briefly;
/// for status displays and the end-of-run summary, never for hot-path stages).
#[derive(Clone, Debug)]
pub struct TelemetryHandle {
    shared: Arc<Mutex<Published>>,
    hedges: Arc<Mutex<Vec<TickTrace>>>,
}

fn lock(m: &Mutex<Published>) -> MutexGuard<'_, Published> {
    // A panic while holding this lock can only have interrupted a plain copy: the value is fine.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl TelemetryHandle {
    /// Percentiles over everything recorded since the tile started, as of the last publication.
    pub fn latest(&self) -> LatencySummary {
        lock(&self.shared).total
    }

    /// Percentiles over the last complete publication window only.
    pub fn since_last(&self) -> LatencySummary {
        lock(&self.shared).window
    }

    /// How many summaries have been published (one per `publish_every`, one at teardown).
    pub fn publications(&self) -> u64 {
        lock(&self.shared).publications
    }

    /// Every trace that reached a socket write (`sent_ns` set), in arrival order, up to the
    /// capacity given to [`TelemetryTile::with_hedge_log`]; filled at teardown (empty before,
    /// or without a log). The end-to-end bench joins them with the venue's receipt times.
    pub fn hedge_traces(&self) -> Vec<TickTrace> {
        self.hedges
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Traces drained per input per step, so one busy input cannot starve the others or delay a
/// publication for long.
pub const DRAIN_PER_STEP: usize = 256;

/// The telemetry stage: drains [`TickTrace`]s from its input rings, records them, and publishes
/// summaries every `publish_every` and at teardown.
pub struct TelemetryTile {
    inputs: Vec<Consumer<TickTrace>>,
    total: Telemetry,
    window: Telemetry,
    publish_every: Duration,
    next_publish: Instant,
    publications: u64,
    shared: Arc<Mutex<Published>>,
    /// Traces of sent hedges, kept whole (capacity fixed by `with_hedge_log`; never grows).
    hedge_log: Vec<TickTrace>,
    hedges: Arc<Mutex<Vec<TickTrace>>>,
}

impl TelemetryTile {
    pub fn new(
        inputs: Vec<Consumer<TickTrace>>,
        publish_every: Duration,
    ) -> (Self, TelemetryHandle) {
        let shared = Arc::new(Mutex::new(Published::default()));
        let tile = Self {
            inputs,
            total: Telemetry::new(),
            window: Telemetry::new(),
            publish_every,
            next_publish: Instant::now() + publish_every,
            publications: 0,
            shared: Arc::clone(&shared),
            hedge_log: Vec::new(),
            hedges: Arc::new(Mutex::new(Vec::new())),
        };
        let hedges = Arc::clone(&tile.hedges);
        (tile, TelemetryHandle { shared, hedges })
    }

    /// Also keeps the whole trace of the first `capacity` sent hedges (allocated here; once
    /// full, later ones are only recorded in the histograms), for
    /// [`TelemetryHandle::hedge_traces`].
    pub fn with_hedge_log(mut self, capacity: usize) -> Self {
        self.hedge_log = Vec::with_capacity(capacity);
        self
    }

    /// Records one trace (and logs it if it is a sent hedge and the log has room).
    #[inline]
    fn take(&mut self, t: &TickTrace) {
        self.total.record(t);
        self.window.record(t);
        if t.sent_ns != 0 && self.hedge_log.len() < self.hedge_log.capacity() {
            self.hedge_log.push(*t);
        }
    }

    /// The cumulative recorder (for a final report read after `join`).
    pub fn telemetry(&self) -> &Telemetry {
        &self.total
    }

    fn publish(&mut self) {
        self.publications += 1;
        let published = Published {
            total: self.total.summary(),
            window: self.window.summary(),
            publications: self.publications,
        };
        self.window.reset();
        *lock(&self.shared) = published;
    }
}

impl Tile for TelemetryTile {
    fn name(&self) -> &'static str {
        "telemetry"
    }

    fn init(&mut self) -> Result<(), super::TileError> {
        self.next_publish = Instant::now() + self.publish_every;
        Ok(())
    }

    fn step(&mut self) -> bool {
        let mut worked = false;
        for i in 0..self.inputs.len() {
            for _ in 0..DRAIN_PER_STEP {
                let Some(t) = self.inputs[i].pop() else {
                    break;
                };
                self.take(&t);
                worked = true;
            }
        }
        let now = Instant::now();
        if now >= self.next_publish {
            self.publish();
            self.next_publish = now + self.publish_every;
            worked = true;
        }
        worked
    }

    fn teardown(&mut self) {
        // Whatever is still in the rings was measured; record it before the last publication.
        for i in 0..self.inputs.len() {
            while let Some(t) = self.inputs[i].pop() {
                self.take(&t);
            }
        }
        self.publish();
        if !self.hedge_log.is_empty() {
            *self
                .hedges
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = self.hedge_log.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ring::ring;
    use crate::pipeline::tile::{PinPolicy, StopFlag, TileSpec, spawn};
    use crate::pipeline::wait::WaitStrategy;

    fn full_trace(base: u64, step: u64) -> TickTrace {
        TickTrace {
            recv_ns: base,
            parsed_ns: base + step,
            dequeued_ns: base + 2 * step,
            priced_ns: base + 3 * step,
            decided_ns: base + 4 * step,
            sent_ns: base + 5 * step,
            venue_ns: 0,
        }
    }

    #[test]
    fn stage_names() {
        let names: Vec<_> = Stage::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "read_parse",
                "ring_hop",
                "reprice",
                "decide",
                "send",
                "tick_to_trade"
            ]
        );
        for (i, s) in Stage::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
    }

    #[test]
    fn records_each_stage_from_its_two_stamps() {
        let mut tel = Telemetry::new();
        tel.record(&full_trace(1_000_000, 100));
        let s = tel.summary();
        for stage in &Stage::ALL[..5] {
            let p = s.get(*stage);
            assert_eq!(p.count, 1, "{stage:?}");
            assert_eq!(p.p50_ns, 100, "{stage:?}");
            assert_eq!(p.max_ns, 100, "{stage:?}");
        }
        assert_eq!(s.get(Stage::TickToTrade).p50_ns, 500);
    }

    #[test]
    fn skips_unreached_and_out_of_order_stages() {
        let mut tel = Telemetry::new();
        // A tick that was priced but did not lead to a hedge.
        let mut t = full_trace(1_000, 10);
        t.decided_ns = 0;
        t.sent_ns = 0;
        tel.record(&t);
        // A clock step backwards between parse and dequeue.
        let mut u = full_trace(5_000, 10);
        u.dequeued_ns = u.parsed_ns - 1;
        tel.record(&u);
        let s = tel.summary();
        assert_eq!(s.get(Stage::ReadParse).count, 2);
        assert_eq!(s.get(Stage::RingHop).count, 1);
        assert_eq!(s.get(Stage::Reprice).count, 2);
        assert_eq!(s.get(Stage::Decide).count, 1);
        assert_eq!(s.get(Stage::Send).count, 1);
        assert_eq!(s.get(Stage::TickToTrade).count, 1);
        assert_eq!(TickTrace::default().latency(Stage::TickToTrade), None);
        assert_eq!(TickTrace::received(5).recv_ns, 5);
    }

    #[test]
    fn percentiles_and_saturation() {
        let mut tel = Telemetry::new();
        for i in 1..=1000u64 {
            tel.record(&TickTrace {
                recv_ns: 1,
                parsed_ns: 1 + i,
                ..TickTrace::default()
            });
        }
        let p = tel.summary().get(Stage::ReadParse);
        assert_eq!(p.count, 1000);
        assert!((499..=501).contains(&p.p50_ns), "{p:?}");
        assert!((899..=901).contains(&p.p90_ns), "{p:?}");
        assert!((989..=991).contains(&p.p99_ns), "{p:?}");
        assert!((998..=1000).contains(&p.p999_ns), "{p:?}");
        assert_eq!(p.max_ns, 1000);
        // Beyond 60 s saturates instead of failing.
        tel.record(&TickTrace {
            recv_ns: 1,
            parsed_ns: 1 + 3600 * 1_000_000_000,
            ..TickTrace::default()
        });
        let p = tel.summary().get(Stage::ReadParse);
        assert_eq!(p.count, 1001);
        assert!(p.max_ns >= HIGHEST_NS / 1000 * 999 && p.max_ns <= HIGHEST_NS * 1001 / 1000);
        tel.reset();
        assert_eq!(tel.summary(), LatencySummary::default());
    }

    #[test]
    fn tile_drains_every_input_and_publishes_at_teardown() {
        let (mut p1, c1) = ring::<TickTrace>(1024).unwrap();
        let (mut p2, c2) = ring::<TickTrace>(1024).unwrap();
        let (tile, handle) = TelemetryTile::new(vec![c1, c2], Duration::from_secs(3600));
        for i in 0..600 {
            p1.push(full_trace(1_000 + i, 10)).unwrap();
        }
        for i in 0..400 {
            p2.push(full_trace(9_000 + i, 20)).unwrap();
        }
        let stop = StopFlag::new();
        let t = spawn(
            vec![Box::new(tile)],
            TileSpec {
                core: None,
                wait: WaitStrategy::Park,
            },
            PinPolicy::WarnOnly,
            stop.clone(),
        )
        .unwrap();
        stop.stop();
        t.join().unwrap();
        assert!(handle.publications() >= 1);
        let s = handle.latest();
        let rp = s.get(Stage::ReadParse);
        assert_eq!(rp.count, 1000);
        assert_eq!(rp.p50_ns, 10);
        assert_eq!(rp.max_ns, 20);
        assert_eq!(s.get(Stage::TickToTrade).count, 1000);
        assert_eq!(handle.since_last().get(Stage::ReadParse).count, 1000);
    }

    #[test]
    fn tile_publishes_on_its_period() {
        let (mut p, c) = ring::<TickTrace>(16).unwrap();
        let (mut tile, handle) = TelemetryTile::new(vec![c], Duration::ZERO);
        tile.init().unwrap();
        p.push(full_trace(100, 1)).unwrap();
        assert!(tile.step());
        assert_eq!(handle.publications(), 1);
        assert_eq!(handle.latest().get(Stage::ReadParse).count, 1);
        assert_eq!(handle.since_last().get(Stage::ReadParse).count, 1);
        p.push(full_trace(200, 1)).unwrap();
        tile.step();
        assert_eq!(handle.latest().get(Stage::ReadParse).count, 2);
        assert_eq!(handle.since_last().get(Stage::ReadParse).count, 1);
        assert_eq!(tile.telemetry().summary().get(Stage::ReadParse).count, 2);
    }
}
