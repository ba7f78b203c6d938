//! `keel-bench ring`: one-way hop latency (p50/p99/p99.9) and throughput of Keel's SPSC ring
//! beside `crossbeam_queue::ArrayQueue`, `crossbeam_channel::bounded` and
//! `std::sync::mpsc::sync_channel`, between two threads pinned to two different cores, in one
//! process, with the same message, capacity and method for all four.
//!
//! Latency: the producer sends one message `--gap-ns` after the previous one (busy-waiting
//! between sends, so the queue is almost always empty and the figure is the hop, not queueing), stamping it with the
//! clock just before the send attempt that succeeds; the consumer busy-polls and records
//! now − stamp into an HDR histogram. The clock is the TSC (`rdtsc`, calibrated against
//! `Instant`) when the CPU says it is constant and non-stop, else `Instant` from a shared epoch;
//! the output names the one used and what one read costs (included once in every figure).
//! Throughput: `--messages` sent unpaced as fast as the queue takes them, in messages per second.
//! The implementations run round-robin for `--rounds` rounds (latency samples add up, throughput
//! is the median of the rounds), and each round also measures the floor: one cache line bounced
//! between the two cores.

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use keel_engine::pipeline::{Consumer, Producer, available_cores, ring};
use serde::Serialize;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Flags of `keel-bench ring`.
#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object keyed by implementation instead of the table.
    #[arg(long)]
    json: bool,
    /// Messages per measurement: paced latency samples, and unpaced messages per throughput run.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    messages: u64,
    /// Message size in bytes: 8, 64 or 128 (the size of a MarketEvent, the feed → pricer edge).
    #[arg(long, default_value_t = 128, value_name = "BYTES")]
    bytes: usize,
    /// Pause between paced sends, in ns.
    #[arg(long, default_value_t = 1_000, value_name = "NS")]
    gap_ns: u64,
    /// Capacity of every queue.
    #[arg(long, default_value_t = 1024)]
    capacity: usize,
    /// Rounds: every implementation runs once per round, round-robin; latency samples add up
    /// over the rounds (`--messages` in all), throughput is the median of the rounds.
    #[arg(long, default_value_t = 5)]
    rounds: u64,
}

/// Discarded latency samples at the start of each run (caches, page faults, frequency).
const WARMUP: u64 = 20_000;

/// A message of `8 * (1 + W)` bytes: the send stamp, then payload words.
#[derive(Clone, Copy)]
#[repr(C)]
struct Msg<const W: usize> {
    stamp: u64,
    words: [u64; W],
}

const STOP: u64 = u64::MAX;

// ---------------------------------------------------------------------------------------------
// The clock

#[derive(Clone, Copy)]
enum Clock {
    /// TSC ticks, `ns_per_tick` from a calibration against `Instant`.
    #[cfg(target_arch = "x86_64")]
    Tsc { ns_per_tick: f64 },
    /// ns since a shared `Instant`.
    Instant(Instant),
}

impl Clock {
    fn pick() -> Clock {
        #[cfg(target_arch = "x86_64")]
        {
            let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
            if flags.contains(" constant_tsc") && flags.contains(" nonstop_tsc") {
                let (t0, i0) = (rdtsc(), Instant::now());
                std::thread::sleep(Duration::from_millis(100));
                let (t1, i1) = (rdtsc(), Instant::now());
                let ns = (i1 - i0).as_nanos() as f64;
                let ticks = t1.wrapping_sub(t0) as f64;
                if ticks > 0.0 {
                    return Clock::Tsc {
                        ns_per_tick: ns / ticks,
                    };
                }
            }
        }
        Clock::Instant(Instant::now())
    }

    #[inline(always)]
    fn now(&self) -> u64 {
        match self {
            #[cfg(target_arch = "x86_64")]
            Clock::Tsc { .. } => rdtsc(),
            Clock::Instant(epoch) => epoch.elapsed().as_nanos() as u64,
        }
    }

    /// A difference of two `now()` readings, in ns; `None` if `end` is before `start` (TSC skew
    /// between cores).
    #[inline(always)]
    fn ns_between(&self, start: u64, end: u64) -> Option<u64> {
        let d = end.checked_sub(start)?;
        Some(match self {
            #[cfg(target_arch = "x86_64")]
            Clock::Tsc { ns_per_tick } => (d as f64 * ns_per_tick) as u64,
            Clock::Instant(_) => d,
        })
    }

    fn describe(&self) -> String {
        match self {
            #[cfg(target_arch = "x86_64")]
            Clock::Tsc { ns_per_tick } => format!(
                "rdtsc (invariant TSC, {:.3} GHz calibrated against Instant over 100 ms)",
                1.0 / ns_per_tick
            ),
            Clock::Instant(_) => "std::time::Instant from a shared epoch".to_string(),
        }
    }

    /// Mean cost of one `now()` in ns.
    fn read_cost_ns(&self) -> f64 {
        let n = 1_000_000u32;
        let t = Instant::now();
        let mut x = 0u64;
        for _ in 0..n {
            x = x.wrapping_add(black_box(self.now()));
        }
        black_box(x);
        t.elapsed().as_nanos() as f64 / f64::from(n)
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn rdtsc() -> u64 {
    // SAFETY: RDTSC is available on every x86-64 CPU and has no memory effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

// ---------------------------------------------------------------------------------------------
// The four queues behind one pair of traits (monomorphised: no dynamic dispatch in the loops)

trait Tx<M>: Send {
    fn try_send(&mut self, m: M) -> bool;
}
trait Rx<M>: Send {
    fn try_recv(&mut self) -> Option<M>;
}

impl<M: Copy + Send> Tx<M> for Producer<M> {
    #[inline(always)]
    fn try_send(&mut self, m: M) -> bool {
        self.push(m).is_ok()
    }
}
impl<M: Copy + Send> Rx<M> for Consumer<M> {
    #[inline(always)]
    fn try_recv(&mut self) -> Option<M> {
        self.pop()
    }
}

struct ArrayQ<M>(Arc<crossbeam_queue::ArrayQueue<M>>);
impl<M: Send> Tx<M> for ArrayQ<M> {
    #[inline(always)]
    fn try_send(&mut self, m: M) -> bool {
        self.0.push(m).is_ok()
    }
}
impl<M: Send> Rx<M> for ArrayQ<M> {
    #[inline(always)]
    fn try_recv(&mut self) -> Option<M> {
        self.0.pop()
    }
}

impl<M: Send> Tx<M> for crossbeam_channel::Sender<M> {
    #[inline(always)]
    fn try_send(&mut self, m: M) -> bool {
        crossbeam_channel::Sender::try_send(self, m).is_ok()
    }
}
impl<M: Send> Rx<M> for crossbeam_channel::Receiver<M> {
    #[inline(always)]
    fn try_recv(&mut self) -> Option<M> {
        crossbeam_channel::Receiver::try_recv(self).ok()
    }
}

impl<M: Send> Tx<M> for std::sync::mpsc::SyncSender<M> {
    #[inline(always)]
    fn try_send(&mut self, m: M) -> bool {
        std::sync::mpsc::SyncSender::try_send(self, m).is_ok()
    }
}
impl<M: Send> Rx<M> for std::sync::mpsc::Receiver<M> {
    #[inline(always)]
    fn try_recv(&mut self) -> Option<M> {
        std::sync::mpsc::Receiver::try_recv(self).ok()
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring

/// Where the two threads run.
#[derive(Clone, Copy, Serialize)]
struct Cores {
    producer: Option<usize>,
    consumer: Option<usize>,
}

/// Pins the calling thread; false if it could not.
fn pin(core: Option<usize>) -> bool {
    core.is_some_and(|id| core_affinity::set_for_current(core_affinity::CoreId { id }))
}

#[derive(Clone, Copy, Default, Serialize)]
struct Figure {
    p50_ns: u64,
    p99_ns: u64,
    p999_ns: u64,
    max_ns: u64,
    msgs_per_sec: f64,
    /// Latency samples whose receive stamp was before the send stamp (clock skew), left out.
    #[serde(skip_serializing_if = "is_zero")]
    negative_samples: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Outcome of one two-thread run: whether both threads pinned.
struct Pinned {
    producer: bool,
    consumer: bool,
}

fn latency<T, R, const W: usize>(
    (mut tx, mut rx): (T, R),
    hist: &mut Histogram<u64>,
    clock: Clock,
    cores: Cores,
    n: u64,
    gap_ns: u64,
) -> Result<(u64, Pinned)>
where
    T: Tx<Msg<W>>,
    R: Rx<Msg<W>>,
{
    let gap = match clock {
        #[cfg(target_arch = "x86_64")]
        Clock::Tsc { ns_per_tick } => (gap_ns as f64 / ns_per_tick) as u64,
        Clock::Instant(_) => gap_ns,
    };
    // Each end moves into its thread, so its private indices live on that thread's stack (the
    // two handles side by side in this frame would share a cache line).
    let ready = &Barrier::new(2);
    std::thread::scope(|s| {
        let consumer = s.spawn(move || {
            let pinned = pin(cores.consumer);
            ready.wait();
            let (mut seen, mut negative) = (0u64, 0u64);
            loop {
                let Some(m) = rx.try_recv() else {
                    core::hint::spin_loop();
                    continue;
                };
                let now = clock.now();
                if m.stamp == STOP {
                    break;
                }
                seen += 1;
                if seen > WARMUP {
                    match clock.ns_between(m.stamp, now) {
                        Some(ns) => hist.saturating_record(ns),
                        None => negative += 1,
                    }
                }
            }
            (negative, pinned)
        });
        let producer = s.spawn(move || {
            let pinned = pin(cores.producer);
            ready.wait();
            let mut m = Msg::<W> {
                stamp: 0,
                words: [7; W],
            };
            // Each send waits `gap` after the previous one succeeded (not on a fixed schedule):
            // after a preemption the producer does not burst to catch up, so the figure stays
            // the hop and not the queueing behind a stall.
            let mut next = clock.now();
            for i in 0..WARMUP + n {
                while clock.now() < next {
                    core::hint::spin_loop();
                }
                if W > 0 {
                    m.words[0] = i;
                }
                loop {
                    m.stamp = clock.now();
                    if tx.try_send(m) {
                        break;
                    }
                    core::hint::spin_loop();
                }
                next = m.stamp.wrapping_add(gap);
            }
            m.stamp = STOP;
            while !tx.try_send(m) {
                core::hint::spin_loop();
            }
            pinned
        });
        let p = producer
            .join()
            .map_err(|_| anyhow::anyhow!("producer thread panicked"))?;
        let (negative, c) = consumer
            .join()
            .map_err(|_| anyhow::anyhow!("consumer thread panicked"))?;
        Ok((
            negative,
            Pinned {
                producer: p,
                consumer: c,
            },
        ))
    })
}

/// Messages per second of one unpaced run of `n` messages.
fn throughput<T, R, const W: usize>((mut tx, mut rx): (T, R), cores: Cores, n: u64) -> Result<f64>
where
    T: Tx<Msg<W>>,
    R: Rx<Msg<W>>,
{
    let ready = &Barrier::new(2);
    std::thread::scope(|s| {
        let consumer = s.spawn(move || {
            pin(cores.consumer);
            ready.wait();
            let t0 = Instant::now();
            let mut sum = 0u64;
            let mut got = 0u64;
            while got < n {
                if let Some(m) = rx.try_recv() {
                    sum = sum.wrapping_add(m.stamp);
                    got += 1;
                } else {
                    core::hint::spin_loop();
                }
            }
            black_box(sum);
            t0.elapsed()
        });
        let producer = s.spawn(move || {
            pin(cores.producer);
            ready.wait();
            let mut m = Msg::<W> {
                stamp: 0,
                words: [7; W],
            };
            for i in 0..n {
                m.stamp = i;
                while !tx.try_send(m) {
                    core::hint::spin_loop();
                }
            }
        });
        producer
            .join()
            .map_err(|_| anyhow::anyhow!("producer thread panicked"))?;
        let took = consumer
            .join()
            .map_err(|_| anyhow::anyhow!("consumer thread panicked"))?;
        Ok(n as f64 / took.as_secs_f64())
    })
}

/// The hardware floor: half the round trip of one cache line bounced between the two cores
/// (each side waits for the other's write, then writes). Timed on one core only, so clock skew
/// between cores does not enter. Records the one-way estimates into `hist`.
fn cache_line_floor(clock: Clock, cores: Cores, n: u64, hist: &mut Histogram<u64>) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    #[repr(align(128))]
    struct Line(AtomicU64);
    let line = Line(AtomicU64::new(0));
    let line = &line.0;
    let ready = Barrier::new(2);
    let rounds = n.max(1_000);
    std::thread::scope(|s| {
        let echo = s.spawn(|| {
            pin(cores.consumer);
            ready.wait();
            for i in 0..rounds {
                while line.load(Ordering::Acquire) != 2 * i + 1 {
                    core::hint::spin_loop();
                }
                line.store(2 * i + 2, Ordering::Release);
            }
        });
        pin(cores.producer);
        ready.wait();
        for i in 0..rounds {
            let t0 = clock.now();
            line.store(2 * i + 1, Ordering::Release);
            while line.load(Ordering::Acquire) != 2 * i + 2 {
                core::hint::spin_loop();
            }
            if let Some(rtt) = clock.ns_between(t0, clock.now()) {
                hist.saturating_record(rtt / 2);
            }
        }
        echo.join()
            .map_err(|_| anyhow::anyhow!("echo thread panicked"))
    })
}

/// What one implementation has gathered over the rounds.
struct Tally {
    hist: Histogram<u64>,
    negative: u64,
    throughput: Vec<f64>,
    pinned: bool,
}

impl Tally {
    fn new() -> Result<Self> {
        Ok(Self {
            hist: Histogram::new_with_bounds(1, 10_000_000_000, 3)
                .context("latency histogram bounds")?,
            negative: 0,
            throughput: Vec::new(),
            pinned: true,
        })
    }

    fn figure(&mut self) -> Figure {
        self.throughput.sort_by(f64::total_cmp);
        Figure {
            p50_ns: self.hist.value_at_quantile(0.50),
            p99_ns: self.hist.value_at_quantile(0.99),
            p999_ns: self.hist.value_at_quantile(0.999),
            max_ns: self.hist.max(),
            msgs_per_sec: self
                .throughput
                .get(self.throughput.len() / 2)
                .copied()
                .unwrap_or(0.0),
            negative_samples: self.negative,
        }
    }
}

/// One round of one implementation: `n` paced latency samples and one unpaced throughput run of
/// `throughput_n` messages, each on a fresh (sender, receiver) pair from `make`.
#[allow(clippy::too_many_arguments)]
fn measure_round<T, R, const W: usize>(
    make: impl Fn() -> Result<(T, R)>,
    tally: &mut Tally,
    clock: Clock,
    cores: Cores,
    n: u64,
    throughput_n: u64,
    gap_ns: u64,
) -> Result<()>
where
    T: Tx<Msg<W>>,
    R: Rx<Msg<W>>,
{
    let (negative, pinned) = latency::<T, R, W>(make()?, &mut tally.hist, clock, cores, n, gap_ns)?;
    tally.negative += negative;
    tally.pinned &= pinned.producer && pinned.consumer;
    tally
        .throughput
        .push(throughput::<T, R, W>(make()?, cores, throughput_n)?);
    Ok(())
}

#[derive(Serialize)]
struct Machine {
    cpu: String,
    available_cores: Vec<usize>,
    producer_core: Option<usize>,
    consumer_core: Option<usize>,
    pinned: bool,
    clock: String,
    clock_read_ns: f64,
    /// Half the round trip of one cache line between the two cores (p50): the floor of any
    /// one-way hop on this machine.
    cache_line_one_way_ns: u64,
    /// /proc/loadavg (1, 5, 15 min) when the run ended: above the core count means other jobs
    /// shared the two cores and the figures include their preemptions.
    load_average: String,
}

#[derive(Serialize)]
struct Report {
    machine: Machine,
    message_bytes: usize,
    capacity: usize,
    messages: u64,
    gap_ns: u64,
    rounds: u64,
    #[serde(flatten)]
    figures: BTreeMap<&'static str, Figure>,
}

const IMPLS: [(&str, &str); 4] = [
    ("keel", "keel ring (SPSC)"),
    ("crossbeam_arrayqueue", "crossbeam ArrayQueue"),
    ("crossbeam_channel", "crossbeam_channel::bounded"),
    ("std_mpsc", "std::sync::mpsc::sync_channel"),
];

/// Runs every implementation `a.rounds` times, round-robin, so that a change in the machine's
/// state (another job, the hypervisor moving a vCPU) falls on all of them alike; measures the
/// cache-line floor in every round too.
fn run_all<const W: usize>(
    clock: Clock,
    cores: Cores,
    a: &Args,
) -> Result<(BTreeMap<&'static str, Figure>, bool, u64)> {
    let cap = a.capacity;
    let per_round = a.messages.div_ceil(a.rounds);
    let mut tallies = IMPLS
        .iter()
        .map(|_| Tally::new())
        .collect::<Result<Vec<_>>>()?;
    let mut floor = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3)
        .context("floor histogram bounds")?;
    for _ in 0..a.rounds {
        cache_line_floor(clock, cores, per_round / 4, &mut floor)?;
        for ((key, _), tally) in IMPLS.iter().zip(&mut tallies) {
            let (n, tn, gap) = (per_round, a.messages, a.gap_ns);
            match *key {
                "keel" => measure_round::<_, _, W>(
                    || Ok(ring::<Msg<W>>(cap)?),
                    tally,
                    clock,
                    cores,
                    n,
                    tn,
                    gap,
                )?,
                "crossbeam_arrayqueue" => measure_round::<_, _, W>(
                    || {
                        let q = Arc::new(crossbeam_queue::ArrayQueue::<Msg<W>>::new(cap));
                        Ok((ArrayQ(Arc::clone(&q)), ArrayQ(q)))
                    },
                    tally,
                    clock,
                    cores,
                    n,
                    tn,
                    gap,
                )?,
                "crossbeam_channel" => measure_round::<_, _, W>(
                    || Ok(crossbeam_channel::bounded::<Msg<W>>(cap)),
                    tally,
                    clock,
                    cores,
                    n,
                    tn,
                    gap,
                )?,
                _ => measure_round::<_, _, W>(
                    || Ok(std::sync::mpsc::sync_channel::<Msg<W>>(cap)),
                    tally,
                    clock,
                    cores,
                    n,
                    tn,
                    gap,
                )?,
            }
        }
    }
    let pinned = tallies.iter().all(|t| t.pinned);
    let figures = IMPLS
        .iter()
        .zip(&mut tallies)
        .map(|((key, _), t)| (*key, t.figure()))
        .collect();
    Ok((figures, pinned, floor.value_at_quantile(0.5)))
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Runs the bench as the flags say.
pub fn run(a: &Args) -> Result<()> {
    if a.messages == 0 {
        bail!("--messages 0: measure at least one message");
    }
    if a.capacity == 0 || a.capacity > 1 << 20 || !a.capacity.is_power_of_two() {
        bail!(
            "--capacity {}: use a power of two from 2 to 1048576 (Keel's ring rounds up; the \
             rivals would not, so the comparison would be unequal)",
            a.capacity
        );
    }
    let available = available_cores();
    let cores = Cores {
        producer: available.first().copied(),
        consumer: available.get(1).copied(),
    };
    if a.rounds == 0 {
        bail!("--rounds 0: run at least one round");
    }
    let clock = Clock::pick();
    let (figures, pinned, floor) = match a.bytes {
        8 => run_all::<0>(clock, cores, a)?,
        64 => run_all::<7>(clock, cores, a)?,
        128 => run_all::<15>(clock, cores, a)?,
        other => bail!("--bytes {other}: choose 8, 64 or 128"),
    };
    let report = Report {
        machine: Machine {
            cpu: cpu_name(),
            available_cores: available.clone(),
            producer_core: cores.producer,
            consumer_core: cores.consumer,
            pinned,
            clock: clock.describe(),
            clock_read_ns: clock.read_cost_ns(),
            cache_line_one_way_ns: floor,
            load_average: std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|_| "unknown".into()),
        },
        message_bytes: a.bytes,
        capacity: a.capacity,
        messages: a.messages,
        gap_ns: a.gap_ns,
        rounds: a.rounds,
        figures,
    };
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    print_table(&report);
    Ok(())
}

fn print_table(r: &Report) {
    let m = &r.machine;
    let core = |c: Option<usize>| c.map_or_else(|| "unpinned".to_string(), |c| c.to_string());
    println!(
        "keel-bench ring — one-way hop, {}-byte messages, capacity {}, {} messages, {}",
        r.message_bytes, r.capacity, r.messages, m.cpu
    );
    println!(
        "producer on core {}, consumer on core {}{}",
        core(m.producer_core),
        core(m.consumer_core),
        if m.pinned {
            String::new()
        } else {
            format!(
                " — PINNING FAILED or fewer than 2 cores (available: {:?}): threads ran unpinned",
                m.available_cores
            )
        }
    );
    println!(
        "clock: {}; one read costs {:.1} ns (included once in each latency); paced one send per {} ns",
        m.clock, m.clock_read_ns, r.gap_ns
    );
    println!(
        "hardware floor: one cache line between the two cores takes {} ns one way (p50, half a round trip); load average {}",
        m.cache_line_one_way_ns, m.load_average
    );
    println!(
        "{:<32} {:>8} {:>8} {:>9} {:>10} {:>12} {:>10}",
        "implementation", "p50 ns", "p99 ns", "p99.9 ns", "max ns", "M msgs/s", "p50 vs keel"
    );
    let keel = r.figures.get("keel").copied().unwrap_or_default();
    for (key, label) in IMPLS {
        let Some(f) = r.figures.get(key) else {
            continue;
        };
        println!(
            "{:<32} {:>8} {:>8} {:>9} {:>10} {:>12.1} {:>9.1}x",
            label,
            f.p50_ns,
            f.p99_ns,
            f.p999_ns,
            f.max_ns,
            f.msgs_per_sec / 1e6,
            f.p50_ns as f64 / keel.p50_ns.max(1) as f64,
        );
        if f.negative_samples > 0 {
            println!(
                "{:<32} ({} samples had the receive stamp before the send stamp and were left out)",
                "", f.negative_samples
            );
        }
    }
}
