//! Keel's side: `keel run`'s real pipeline ([`keel_tools::run::start_on`]) on the bench's
//! keel-sim, hedging with the `every:N` trigger through the real risk gate and exec tile; the
//! whole trace of every sent hedge comes back from the telemetry tile's hedge log.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use clap::Parser;
use keel_engine::pipeline::TickTrace;
use keel_feeds::clock;
use keel_tools::run::{Summary, start_on};
use keel_tools::run_config::{RunArgs, resolve};
use keel_tools::sim::{OrderReceipt, SimHandle};

use super::rival::{self, RivalRun};
use super::{Args, HEDGE_LOG, secs};

/// `keel run`'s flags, parsed as the CLI parses them.
#[derive(Parser)]
#[command(name = "keel-run")]
struct RunCli {
    #[command(flatten)]
    run: RunArgs,
}

/// What Keel did in one run.
pub struct KeelRun {
    /// Every sent hedge's trace, in `sent_ns` order (warm-up included; see `warm_from_ns`).
    pub traces: Vec<TickTrace>,
    /// keel-sim's receipt of each trace's order (`None`: not matched).
    pub receipts: Vec<Option<u64>>,
    /// Samples whose tick arrived before this are warm-up (discarded).
    pub warm_from_ns: u64,
    /// `keel run`'s summary of the run.
    pub summary: Summary,
    /// Receipts of Keel's orders that no trace matched.
    pub unmatched_receipts: usize,
}

impl KeelRun {
    /// The traces measured (after the warm-up), with their receipts.
    pub fn measured(&self) -> impl Iterator<Item = (&TickTrace, Option<u64>)> {
        self.traces
            .iter()
            .zip(self.receipts.iter().copied())
            .filter(|(t, _)| t.recv_ns >= self.warm_from_ns)
    }

    /// Matches keel-sim's receipts of Keel's orders (every label but the rival's) with the
    /// traces, in order: the pricer sends no hedge while one is in flight, so Keel's k-th
    /// order written is keel-sim's k-th Keel order read; a receipt before a trace's write
    /// belongs to no trace (an order whose trace was lost) and is skipped.
    pub fn join_receipts(&mut self, all: &[OrderReceipt]) {
        let mut mine: Vec<u64> = all
            .iter()
            .filter(|r| !r.label.starts_with(rival::LABEL_PREFIX))
            .map(|r| r.recv_ns)
            .collect();
        mine.sort_unstable();
        self.receipts = vec![None; self.traces.len()];
        let mut j = 0;
        let mut skipped = 0;
        for (i, t) in self.traces.iter().enumerate() {
            while j < mine.len() && mine[j] < t.sent_ns {
                j += 1;
                skipped += 1;
            }
            if j < mine.len() {
                self.receipts[i] = Some(mine[j]);
                j += 1;
            }
        }
        self.unmatched_receipts = skipped + (mine.len() - j);
    }
}

/// `keel run`'s configuration for the bench: the `every:N` trigger, limits opened wide enough
/// for a hedge every N decisions (the risk gate still checks every order), no status line.
fn config(a: &Args) -> Result<keel_tools::run_config::RunConfig> {
    let mut argv: Vec<String> = [
        "keel-run",
        "--policy",
        &format!("every:{}", a.every),
        "--max-hedges-per-min",
        "1000000",
        "--deribit-rate-limit",
        "1000000",
        "--max-consecutive-rejects",
        "1000",
        "--status-every",
        "0s",
        "--sim-seed",
        &a.seed.to_string(),
        "--dev",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (flag, v) in [
        ("--topology", &a.topology),
        ("--pin", &a.pin),
        ("--wait", &a.wait),
        ("--stale-after", &a.stale_after),
        ("--reprice", &a.reprice),
    ] {
        if let Some(v) = v {
            argv.push(flag.to_string());
            argv.push(v.clone());
        }
    }
    let cli = RunCli::try_parse_from(&argv).map_err(|e| anyhow!("keel run flags: {e}"))?;
    resolve(&cli.run)
}

/// Runs Keel on `sim` for the warm-up and the duration; with `with_rival`, the conventional
/// stack runs at the same time on its own connections to the same venue.
pub fn run(a: &Args, sim: &SimHandle, with_rival: bool) -> Result<(KeelRun, Option<RivalRun>)> {
    let cfg = config(a)?;
    let running = start_on(&cfg, sim, None, HEDGE_LOG).context("starting Keel's pipeline")?;
    let telemetry = running.telemetry().clone();
    let warm_from_ns = clock::now_ns() + secs(a.warmup).as_nanos() as u64;
    let end = Instant::now() + secs(a.warmup + a.duration);
    let url = sim.deribit_url();
    let (summary, rival) = std::thread::scope(|s| -> Result<(Summary, Option<RivalRun>)> {
        let rival = with_rival.then(|| s.spawn(|| rival::run(a, &url, warm_from_ns, end)));
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        let summary = running.finish()?;
        let rival = match rival {
            Some(h) => Some(
                h.join()
                    .map_err(|_| anyhow!("the conventional stack's thread panicked"))??,
            ),
            None => None,
        };
        Ok((summary, rival))
    })?;
    let mut traces = telemetry.hedge_traces();
    traces.sort_unstable_by_key(|t| t.sent_ns);
    let n = traces.len();
    Ok((
        KeelRun {
            traces,
            receipts: vec![None; n],
            warm_from_ns,
            summary,
            unmatched_receipts: 0,
        },
        rival,
    ))
}

/// Joins receipts for a Keel-only run (the sweeps).
pub fn joined(mut k: KeelRun, sim: &SimHandle) -> KeelRun {
    k.join_receipts(&sim.order_receipts());
    k
}
