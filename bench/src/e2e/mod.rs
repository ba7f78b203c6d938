//! `keel-bench e2e`: end-to-end tick-to-trade on loopback, Keel's real pipeline beside a
//! conventional stack, on the same simulated venue.
//!
//! keel-sim (in-process, bench stream mode: every ticker paced by `--rate` alone) streams
//! Deribit-format tickers stamped with `sim_send_ns`. Keel runs `keel run`'s own pipeline
//! ([`keel_tools::run::start_on`]: feed tile → pricer repricing the whole chain → risk gate and
//! policy → exec tile) with the bench trigger `every:N`, so every N-th decision sends a real
//! `private/buy|sell` to keel-sim's order endpoint. The rival ([`rival`]) opens its own
//! connections to the same venue and does the conventional thing. Both are measured the same
//! way: tick-to-trade from the tick's receipt to the order's bytes written, and wire-to-wire
//! from keel-sim's send stamp carried in the tick to keel-sim's receipt of the order
//! ([`keel_tools::sim::SimHandle::order_receipts`]).
//!
//! Owns: the bench's orchestration, its sweeps and its output. Start-up and reporting code: it
//! allocates freely; nothing here runs on Keel's hot path.

mod anatomy;
mod keel;
mod report;
mod rival;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use keel_tools::sim::{SimConfig, SimHandle, SimVenue};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Print one JSON object (`keel`, `conventional`, `speedup_p50`, ...) instead of the table.
    #[arg(long)]
    json: bool,
    /// Seconds each stack is measured (after the warm-up).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    duration: f64,
    /// Seconds at the start whose samples are discarded (connections, first marks, caches).
    #[arg(long, default_value_t = 2.0, value_name = "SECS")]
    warmup: f64,
    /// Tick rate keel-sim streams on each connection, messages per second.
    #[arg(long, default_value_t = 10_000, value_name = "MSGS")]
    rate: u64,
    /// Options listed by keel-sim: the book Keel (and the rival) reprice on every tick.
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    options: usize,
    /// Hedge on every N-th decision (Keel: the `every:N` trigger; rival: every N-th reprice).
    #[arg(long, default_value_t = 10, value_name = "N")]
    every: u64,
    /// Keel's topology: `fused` (feed and pricer on one thread), `single` (feed, pricer and
    /// exec on one thread) or `dedicated` (a thread per tile) [default: fused below 4 cores].
    #[arg(long, value_name = "dedicated|fused|single")]
    topology: Option<String>,
    /// Keel's pins, as `keel run --pin` (e.g. `feed=0,pricer=1,exec=0`); none by default.
    #[arg(long, value_name = "SPEC")]
    pin: Option<String>,
    /// Keel's wait strategies, as `keel run --wait` [default: spin-yield, telemetry park].
    #[arg(long, value_name = "SPEC")]
    wait: Option<String>,
    /// Keel's `--reprice`: `f32` (hedge Greeks in f32x16, summed in f64) or `f64` (every Greek
    /// in f64) [default: keel run's, f32].
    #[arg(long, value_name = "f32|f64")]
    reprice: Option<String>,
    /// Keel's `--stale-after` (market data older than this holds hedging) [default: keel run's,
    /// 2 s]. Large books at modest rates refresh each option rarely on one round-robin stream:
    /// the book sweep raises it so the guard does not hold every hedge.
    #[arg(long, value_name = "DURATION")]
    stale_after: Option<String>,
    /// When the conventional stack runs: beside Keel on the same stream (`concurrent`),
    /// on a fresh stream after Keel (`after`: the two never share the CPU), or not at all.
    #[arg(long, value_enum, default_value_t = RivalMode::Concurrent)]
    rival: RivalMode,
    /// Directory for the percentile distributions (.hgrm) and the plot.
    #[arg(long, default_value = "target/e2e", value_name = "DIR")]
    out: PathBuf,
    /// Also write the latency plot here (the README embeds docs/e2e_latency.svg).
    #[arg(long, value_name = "FILE.svg")]
    svg: Option<PathBuf>,
    /// Sweep Keel alone over book sizes (`--books`) or tick rates (`--rates`) instead of the
    /// side-by-side run: saturation and conflation per point; or `send`: the send stage's parts
    /// (Keel's encode, then `write(2)` on loopback with a receiver that sleeps between looks,
    /// one blocked in `read(2)`, one busy-polling), 20,000 samples each.
    #[arg(long, value_enum)]
    sweep: Option<Sweep>,
    /// Book sizes of `--sweep book`.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000,100000")]
    books: Vec<usize>,
    /// Tick rates of `--sweep rate`, messages per second.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,50000,100000")]
    rates: Vec<u64>,
    /// Seed of keel-sim's market and of the sample book.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl Args {
    /// The reprice precision Keel runs with (keel run's default when not given).
    fn reprice_name(&self) -> &str {
        self.reprice.as_deref().unwrap_or("f32")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum RivalMode {
    Concurrent,
    After,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Sweep {
    Book,
    Rate,
    Send,
}

/// Whole traces kept of Keel's sent hedges (far more than a run sends at `--every` ≥ 1 and
/// keel-sim's round trip).
const HEDGE_LOG: usize = 1 << 20;

pub fn run(a: &Args) -> Result<()> {
    let ok = a.duration > 0.0 && a.duration.is_finite() && a.warmup >= 0.0 && a.warmup.is_finite();
    if !ok {
        bail!("--duration must be > 0 and --warmup ≥ 0 seconds");
    }
    if a.every == 0 {
        bail!("--every must be at least 1");
    }
    let machine = report::Machine::detect();
    match a.sweep {
        None => {
            let r = side_by_side(a)?;
            let files = report::write_files(&a.out, a.svg.as_deref(), &r, a, &machine)?;
            if a.json {
                println!("{}", report::json(&r, &machine, a, &files));
            } else {
                print!("{}", report::table(&r, &machine, a, &files));
            }
        }
        Some(Sweep::Send) => anatomy::run(20_000)?,
        Some(s) => {
            let points: Vec<(usize, u64)> = match s {
                Sweep::Book => a.books.iter().map(|&b| (b, a.rate)).collect(),
                Sweep::Rate => a.rates.iter().map(|&r| (a.options, r)).collect(),
                Sweep::Send => Vec::new(),
            };
            let mut rows = Vec::new();
            for (options, rate) in points {
                if !a.json {
                    eprintln!("e2e sweep: {options} options at {rate} msg/s ...");
                }
                let sim = start_sim(a, options, rate)?;
                let (k, _) = keel::run(a, &sim, false)?;
                let k = keel::joined(k, &sim);
                rows.push(report::SweepRow {
                    options,
                    rate,
                    keel: k,
                });
            }
            if a.json {
                println!("{}", report::sweep_json(&rows, &machine, a));
            } else {
                print!("{}", report::sweep_table(&rows, &machine, a));
            }
        }
    }
    Ok(())
}

/// What one side-by-side run measured.
pub struct Results {
    pub keel: keel::KeelRun,
    pub rival: Option<rival::RivalRun>,
}

fn side_by_side(a: &Args) -> Result<Results> {
    let sim = start_sim(a, a.options, a.rate)?;
    let (mut keel, mut rival) = keel::run(a, &sim, a.rival == RivalMode::Concurrent)?;
    if a.rival == RivalMode::After {
        let warm_from_ns = keel_feeds::clock::now_ns() + secs(a.warmup).as_nanos() as u64;
        let end = std::time::Instant::now() + secs(a.warmup + a.duration);
        rival = Some(rival::run(a, &sim.deribit_url(), warm_from_ns, end)?);
    }
    let receipts = sim.order_receipts();
    keel.join_receipts(&receipts);
    if let Some(r) = rival.as_mut() {
        r.join_receipts(&receipts);
    }
    Ok(Results { keel, rival })
}

fn start_sim(a: &Args, options: usize, rate: u64) -> Result<SimHandle> {
    SimVenue::start(SimConfig {
        seed: a.seed,
        rate,
        options,
        rate_only: true,
        ..SimConfig::default()
    })
    .context("starting keel-sim")
}

fn secs(x: f64) -> Duration {
    Duration::from_secs_f64(x)
}
