//! The hedging backtest behind `keel backtest`: runs hedge policies ([`crate::policy::triggers`])
//! over simulated or recorded price paths, pricing the position at every step with the engine's
//! own kernel ([`crate::greeks::greeks_one`], the scalar twin of the SIMD kernel), and reports
//! the distribution of the cost of writing and hedging it.
//!
//! Owns the simulation loop, the accounting and the statistics. Deterministic: path `i` draws
//! from its own seed (derived from the run's seed and `i`), paths run in parallel (rayon) in
//! fixed chunks whose statistics are merged in chunk order, so a report is the same for a seed
//! whatever the thread count. Allocates per chunk of paths, never per step. Every policy sees
//! the same paths (common random numbers), so policies compare without sampling noise between
//! them.
//!
//! # The simulation
//!
//! - Grid: T = the last expiry; a model path has n = ⌈T·`steps_per_year`⌉ equal steps
//!   t_j = j·T/n; a recorded path uses its own rows up to the first one at or after T. The
//!   policy decides at t_0 (the opening hedge: time triggers fire there, band triggers fire if
//!   the zero hedge is outside their band) and at every t_j < T, with the position priced
//!   at (S_j, τ = expiry − t_j, `rate`, `yield_`, σ), σ the pricing vol (the recorded path's
//!   `vol` column if it has one).
//! - Hedge trades go through a cash account that starts at 0 (the premium is not in it) and
//!   grows by e^{r·δt} per step; the hedge earns its yield, h·S_{j−1}·(e^{q·δt} − 1) per step.
//!   A trade of x units at S pays x·S plus the fee κ·|x|·S + `fixed_fee`, κ = `cost_bps`/10⁴.
//! - Settlement: a leg settles at the first grid time at or after its expiry, physically
//!   against the hedge: an exercised call of signed quantity q adds q units to the hedge and
//!   pays q·K, an exercised put removes q units and receives q·K (no fee). At T whatever hedge
//!   is left is sold at S_T (with its fee).
//! - cost_fv = −(final cash), the cost of writing and hedging the position at T; cost_pv =
//!   cost_fv·e^{−rT}. For a written option it is positive and its mean tends to the option's
//!   value as hedging gets finer; for a long position it is negative.
//!
//! # The report ([`PolicyReport`])
//!
//! `option_value` = |Σ qty·BS value| at t_0; `mean_cost_pv`, `std_cost_pv` (sample s.d., 0 for
//! one path) over paths; `performance` = std_cost_pv / option_value; `cost_fv` with a single
//! path; `mean_trades` (policy rebalances, the opening one included; not the final sale or
//! settlement), `mean_turnover` (units of underlying traded, the final sale included),
//! `mean_fees` (fees, PV at t_0).

mod input;

use core::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::greeks::{MAX_RATE, MAX_SIGMA, MIN_SIGMA, OptionKind, OptionRow, greeks_one};
use crate::policy::triggers::{
    HedgeContext, PositionLeg, Trigger, TriggerParseError, TriggerState, decide, parse_policy,
};
use crate::sim::{Gbm, Heston, MertonJump, ModelError, PricePath, SimRng};

pub use input::{RecordedPath, parse_book};

/// Paths per parallel work item (fixed, so results do not depend on the thread count).
const CHUNK: u64 = 64;
/// Longest grid accepted, steps.
pub const MAX_STEPS: usize = 1_000_000;

/// Why a backtest could not run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BacktestError {
    /// A line of an input file (path or book) is wrong.
    #[error("{what}{}: {reason}", line_suffix(*.line))]
    Input {
        /// `path` or `book`.
        what: &'static str,
        /// 1-based line, 0 for the file as a whole.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A setting is out of its domain; `field` is the `keel backtest` flag's name without
    /// its dashes.
    #[error("{field} = {value}: {expected}")]
    Config {
        /// The setting.
        field: &'static str,
        /// The value given.
        value: String,
        /// The allowed range, in words.
        expected: &'static str,
    },
    /// A model parameter is out of its domain.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A policy spec could not be read.
    #[error(transparent)]
    Policy(#[from] TriggerParseError),
    /// The kernel refused an option on the path (e.g. the spot left the kernel's range).
    #[error("pricing at t = {t} years, spot {spot}: {reason}")]
    Pricing {
        /// Time on the path.
        t: f64,
        /// Spot there.
        spot: f64,
        /// The kernel's error.
        reason: String,
    },
}

fn line_suffix(line: usize) -> String {
    if line > 0 {
        format!(" line {line}")
    } else {
        String::new()
    }
}

fn config_err(field: &'static str, value: f64, expected: &'static str) -> BacktestError {
    BacktestError::Config {
        field,
        value: value.to_string(),
        expected,
    }
}

/// One option of the position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Leg {
    /// Call or put (European).
    pub kind: OptionKind,
    /// Strike (> 0).
    pub strike: f64,
    /// Years from the start to expiry (> 0).
    pub expiry: f64,
    /// Signed quantity (negative = written; not 0).
    pub qty: f64,
}

impl Leg {
    /// Checks the leg's fields; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        if !(self.strike.is_finite() && self.strike > 0.0) {
            return Err(format!("strike {} must be a positive number", self.strike));
        }
        if !(self.expiry.is_finite() && self.expiry > 0.0 && self.expiry <= 100.0) {
            return Err(format!(
                "expiry_years {} must be in (0, 100] years",
                self.expiry
            ));
        }
        if !(self.qty.is_finite() && self.qty != 0.0) {
            return Err(format!("qty {} must be a non-zero number", self.qty));
        }
        Ok(())
    }
}

/// The market the paths come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Market {
    /// Geometric Brownian motion with drift `mu` and volatility `sigma`.
    Gbm {
        /// Drift per year.
        mu: f64,
        /// Volatility of the path (the hedger prices with [`BacktestConfig::pricing_vol`]).
        sigma: f64,
    },
    /// Merton's jump-diffusion (compensated drift; [`MertonJump`]).
    Jump {
        /// Drift per year.
        mu: f64,
        /// Diffusion volatility.
        sigma: f64,
        /// Jumps per year.
        intensity: f64,
        /// Mean log-jump.
        jump_mean: f64,
        /// Log-jump s.d.
        jump_sd: f64,
    },
    /// Heston's stochastic volatility ([`Heston`]).
    Heston {
        /// Drift per year.
        mu: f64,
        /// Initial variance.
        v0: f64,
        /// Mean-reversion speed.
        kappa: f64,
        /// Long-run variance.
        theta: f64,
        /// Vol of variance.
        xi: f64,
        /// Correlation of spot and variance shocks.
        rho: f64,
    },
    /// One recorded path (its first spot is S_0; `paths` and `spot` are not used).
    Path(RecordedPath),
}

/// A named policy: its spec as given and its triggers.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// The spec, e.g. `ww:1` or `band:0.1+time:1w`.
    pub spec: String,
    /// The parsed triggers.
    pub triggers: Vec<Trigger>,
}

impl FromStr for Policy {
    type Err = TriggerParseError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        Ok(Self {
            spec: spec.trim().to_string(),
            triggers: parse_policy(spec)?,
        })
    }
}

impl Policy {
    /// The policy's family: its trigger kinds joined with `+` (`time`, `ww`, `band+time`).
    pub fn family(&self) -> String {
        let kinds: Vec<&str> = self.triggers.iter().map(Trigger::kind).collect();
        kinds.join("+")
    }
}

/// Everything a backtest needs.
#[derive(Clone, Debug, PartialEq)]
pub struct BacktestConfig {
    /// Where the paths come from.
    pub market: Market,
    /// S_0 of model paths.
    pub spot: f64,
    /// Continuously compounded rate (cash account, pricing, discounting).
    pub rate: f64,
    /// Continuous yield of the underlying (pricing and the hedge's income).
    pub yield_: f64,
    /// The hedger's pricing volatility (unless a recorded path carries its own).
    pub pricing_vol: f64,
    /// The position.
    pub legs: Vec<Leg>,
    /// Number of model paths.
    pub paths: u64,
    /// Seed of the run; path i uses a seed derived from (seed, i).
    pub seed: u64,
    /// Decision steps per year for model paths.
    pub steps_per_year: f64,
    /// Proportional cost per trade, basis points of notional (one way).
    pub cost_bps: f64,
    /// Fixed cost per hedge trade, quote currency.
    pub fixed_fee: f64,
    /// The policies to compare.
    pub policies: Vec<Policy>,
}

/// One policy's results.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyReport {
    /// The policy's spec.
    pub policy: String,
    /// Its family ([`Policy::family`]).
    pub family: String,
    /// Paths simulated.
    pub paths: u64,
    /// Decision times per path (grid points before T).
    pub steps: usize,
    /// |BS value of the position| at t_0.
    pub option_value: f64,
    /// Mean over paths of the cost of writing and hedging, PV at t_0.
    pub mean_cost_pv: f64,
    /// Its sample standard deviation (0 for one path).
    pub std_cost_pv: f64,
    /// std_cost_pv / option_value.
    pub performance: f64,
    /// The cost at T (future value), with a single path.
    pub cost_fv: Option<f64>,
    /// Mean number of policy rebalances (the opening hedge included).
    pub mean_trades: f64,
    /// Mean units of underlying traded (the final sale included).
    pub mean_turnover: f64,
    /// Mean fees, PV at t_0.
    pub mean_fees: f64,
}

/// The validated, shared setup of a run.
struct Setup<'a> {
    cfg: &'a BacktestConfig,
    /// Grid times t_0 = 0 < … < t_n.
    times: Vec<f64>,
    /// Per leg: the grid index at which it settles.
    settle: Vec<usize>,
    kappa: f64,
}

/// The path generator of a model market.
#[derive(Clone, Copy)]
enum Model {
    Gbm(Gbm),
    Jump(MertonJump),
    Heston(Heston),
}

impl Model {
    fn fill(&self, seed: u64, dt: f64, spots: &mut [f64]) -> Result<(), ModelError> {
        fn go<M: crate::sim::MarketModel>(
            m: M,
            seed: u64,
            dt: f64,
            spots: &mut [f64],
        ) -> Result<(), ModelError> {
            let mut p = PricePath::new(m, seed, dt)?;
            for s in spots.iter_mut().skip(1) {
                *s = p.advance().spot;
            }
            Ok(())
        }
        match *self {
            Model::Gbm(m) => go(m, seed, dt, spots),
            Model::Jump(m) => go(m, seed, dt, spots),
            Model::Heston(m) => go(m, seed, dt, spots),
        }
    }
}

/// One policy's running state on one path.
struct PolicyPath {
    state: TriggerState,
    hedge: f64,
    cash: f64,
    fees_pv: f64,
    trades: u32,
    turnover: f64,
}

/// Running statistics of one policy over some paths (Welford; merged with Chan's formula).
#[derive(Clone, Copy, Debug, Default)]
struct Acc {
    n: u64,
    mean: f64,
    m2: f64,
    trades: f64,
    turnover: f64,
    fees: f64,
    last_fv: f64,
}

impl Acc {
    fn push(&mut self, cost_pv: f64, cost_fv: f64, p: &PolicyPath) {
        self.n += 1;
        let d = cost_pv - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (cost_pv - self.mean);
        self.trades += f64::from(p.trades);
        self.turnover += p.turnover;
        self.fees += p.fees_pv;
        self.last_fv = cost_fv;
    }

    fn merge(&mut self, b: &Acc) {
        if b.n == 0 {
            return;
        }
        let n = self.n + b.n;
        let d = b.mean - self.mean;
        self.mean += d * b.n as f64 / n as f64;
        self.m2 += b.m2 + d * d * self.n as f64 * b.n as f64 / n as f64;
        self.n = n;
        self.trades += b.trades;
        self.turnover += b.turnover;
        self.fees += b.fees;
        self.last_fv = b.last_fv;
    }
}

/// Per-worker buffers, reused across the paths of a chunk.
struct Scratch {
    spots: Vec<f64>,
    legs: Vec<PositionLeg>,
    policies: Vec<PolicyPath>,
}

impl Scratch {
    fn new(setup: &Setup<'_>) -> Self {
        Self {
            spots: vec![0.0; setup.times.len()],
            legs: Vec::with_capacity(setup.cfg.legs.len()),
            policies: setup
                .cfg
                .policies
                .iter()
                .map(|p| PolicyPath {
                    state: TriggerState::new(&p.triggers),
                    hedge: 0.0,
                    cash: 0.0,
                    fees_pv: 0.0,
                    trades: 0,
                    turnover: 0.0,
                })
                .collect(),
        }
    }
}

/// The seed of path `i` of a run seeded `seed`.
pub fn path_seed(seed: u64, i: u64) -> u64 {
    SimRng::stream(seed, i).next_u64()
}

/// Runs the backtest; `progress`, if given, is increased by the number of paths done as
/// chunks finish (for a progress bar on another thread).
pub fn run(
    cfg: &BacktestConfig,
    progress: Option<&AtomicU64>,
) -> Result<Vec<PolicyReport>, BacktestError> {
    let setup = validate(cfg)?;
    let n = setup.times.len() - 1;
    let (s0, sigma0) = match &cfg.market {
        Market::Path(p) => (p.spots()[0], p.vols().map_or(cfg.pricing_vol, |v| v[0])),
        _ => (cfg.spot, cfg.pricing_vol),
    };
    let mut v0 = 0.0;
    for leg in &cfg.legs {
        let row = OptionRow::bsm(
            leg.kind, s0, leg.strike, leg.expiry, cfg.rate, cfg.yield_, sigma0,
        );
        v0 += leg.qty * price(&row, 0.0)?.price;
    }
    let option_value = v0.abs();

    let accs: Vec<Acc> = match &cfg.market {
        Market::Path(p) => {
            let mut scratch = Scratch::new(&setup);
            scratch.spots.copy_from_slice(&p.spots()[..=n]);
            let vols = p.vols().map(|v| &v[..=n]);
            let mut accs = vec![Acc::default(); cfg.policies.len()];
            run_path(&setup, &mut scratch, vols, &mut accs)?;
            if let Some(c) = progress {
                c.fetch_add(1, Ordering::Relaxed);
            }
            accs
        }
        market => {
            let model = build_model(market, cfg.spot)?;
            let dt = setup.times[n] / n as f64;
            let chunks = cfg.paths.div_ceil(CHUNK);
            let per_chunk: Vec<Result<Vec<Acc>, BacktestError>> = (0..chunks)
                .into_par_iter()
                .map(|c| {
                    let mut scratch = Scratch::new(&setup);
                    scratch.spots[0] = cfg.spot;
                    let mut accs = vec![Acc::default(); cfg.policies.len()];
                    let end = ((c + 1) * CHUNK).min(cfg.paths);
                    for i in c * CHUNK..end {
                        model.fill(path_seed(cfg.seed, i), dt, &mut scratch.spots)?;
                        run_path(&setup, &mut scratch, None, &mut accs)?;
                    }
                    if let Some(p) = progress {
                        p.fetch_add(end - c * CHUNK, Ordering::Relaxed);
                    }
                    Ok(accs)
                })
                .collect();
            let mut total = vec![Acc::default(); cfg.policies.len()];
            for chunk in per_chunk {
                for (t, a) in total.iter_mut().zip(chunk?) {
                    t.merge(&a);
                }
            }
            total
        }
    };

    Ok(cfg
        .policies
        .iter()
        .zip(accs)
        .map(|(p, a)| {
            let nf = a.n as f64;
            let std = if a.n > 1 {
                (a.m2 / (nf - 1.0)).max(0.0).sqrt()
            } else {
                0.0
            };
            PolicyReport {
                policy: p.spec.clone(),
                family: p.family(),
                paths: a.n,
                steps: n,
                option_value,
                mean_cost_pv: a.mean,
                std_cost_pv: std,
                performance: std / option_value,
                cost_fv: (a.n == 1).then_some(a.last_fv),
                mean_trades: a.trades / nf,
                mean_turnover: a.turnover / nf,
                mean_fees: a.fees / nf,
            }
        })
        .collect())
}

fn price(row: &OptionRow, t: f64) -> Result<crate::greeks::GreekValues, BacktestError> {
    greeks_one(row).map_err(|e| BacktestError::Pricing {
        t,
        spot: row.s,
        reason: e.to_string(),
    })
}

fn build_model(market: &Market, spot: f64) -> Result<Model, BacktestError> {
    Ok(match *market {
        Market::Gbm { mu, sigma } => Model::Gbm(Gbm::new(spot, mu, sigma)?),
        Market::Jump {
            mu,
            sigma,
            intensity,
            jump_mean,
            jump_sd,
        } => Model::Jump(MertonJump::new(
            spot, mu, sigma, intensity, jump_mean, jump_sd,
        )?),
        Market::Heston {
            mu,
            v0,
            kappa,
            theta,
            xi,
            rho,
        } => Model::Heston(Heston::new(spot, v0, mu, kappa, theta, xi, rho)?),
        Market::Path(_) => unreachable!("recorded paths are not generated"),
    })
}

/// Checks the configuration and lays out the grid.
fn validate(cfg: &BacktestConfig) -> Result<Setup<'_>, BacktestError> {
    if cfg.legs.is_empty() {
        return Err(BacktestError::Config {
            field: "option",
            value: "none".into(),
            expected: "give one option (--option, --strike, --expiry) or a --book",
        });
    }
    for leg in &cfg.legs {
        leg.check().map_err(|reason| BacktestError::Input {
            what: "position",
            line: 0,
            reason,
        })?;
    }
    if cfg.policies.is_empty() {
        return Err(BacktestError::Config {
            field: "policy",
            value: "none".into(),
            expected: "give at least one --policy",
        });
    }
    let in_range = |x: f64, lo: f64, hi: f64| x.is_finite() && x >= lo && x <= hi;
    if !in_range(cfg.rate, -MAX_RATE, MAX_RATE) {
        return Err(config_err("rate", cfg.rate, "must be in [-1, 1]"));
    }
    if !in_range(cfg.yield_, -MAX_RATE, MAX_RATE) {
        return Err(config_err("yield", cfg.yield_, "must be in [-1, 1]"));
    }
    if !in_range(cfg.pricing_vol, MIN_SIGMA, MAX_SIGMA) {
        return Err(config_err("vol", cfg.pricing_vol, "must be in (0, 5]"));
    }
    if !in_range(cfg.cost_bps, 0.0, 10_000.0) {
        return Err(config_err(
            "cost-bps",
            cfg.cost_bps,
            "must be in [0, 10000]",
        ));
    }
    if !(cfg.fixed_fee.is_finite() && cfg.fixed_fee >= 0.0) {
        return Err(config_err("fixed-fee", cfg.fixed_fee, "must be >= 0"));
    }
    let horizon = cfg.legs.iter().map(|l| l.expiry).fold(0.0, f64::max);
    let times: Vec<f64> = match &cfg.market {
        Market::Path(p) => {
            let t = p.times();
            let Some(last) = t.iter().position(|&x| x >= horizon * (1.0 - 1e-12)) else {
                return Err(BacktestError::Input {
                    what: "path",
                    line: 0,
                    reason: format!(
                        "ends {} years after its first row, before the last expiry ({horizon} years)",
                        t[t.len() - 1]
                    ),
                });
            };
            t[..=last].to_vec()
        }
        _ => {
            if !(cfg.spot.is_finite() && cfg.spot > 0.0) {
                return Err(config_err("spot", cfg.spot, "must be > 0"));
            }
            if cfg.paths == 0 {
                return Err(config_err("paths", 0.0, "must be >= 1"));
            }
            if !(cfg.steps_per_year.is_finite() && cfg.steps_per_year > 0.0) {
                return Err(config_err(
                    "steps-per-year",
                    cfg.steps_per_year,
                    "must be > 0",
                ));
            }
            let steps = (horizon * cfg.steps_per_year * (1.0 - 1e-12))
                .ceil()
                .max(1.0);
            if steps > MAX_STEPS as f64 {
                return Err(config_err(
                    "steps-per-year",
                    cfg.steps_per_year,
                    "gives more than 1,000,000 steps to the last expiry",
                ));
            }
            let n = steps as usize;
            (0..=n).map(|j| horizon * j as f64 / n as f64).collect()
        }
    };
    if times.len() - 1 > MAX_STEPS {
        return Err(BacktestError::Input {
            what: "path",
            line: 0,
            reason: "has more than 1,000,000 steps to the last expiry".into(),
        });
    }
    let settle = cfg
        .legs
        .iter()
        .map(|l| {
            times
                .iter()
                .skip(1)
                .position(|&t| t >= l.expiry * (1.0 - 1e-12))
                .map_or(times.len() - 1, |j| j + 1)
        })
        .collect();
    Ok(Setup {
        cfg,
        times,
        settle,
        kappa: cfg.cost_bps * 1e-4,
    })
}

/// Simulates every policy on the path in `scratch.spots` (pricing vols `vols`, or the
/// constant pricing vol) and adds each policy's outcome to `accs`.
fn run_path(
    setup: &Setup<'_>,
    scratch: &mut Scratch,
    vols: Option<&[f64]>,
    accs: &mut [Acc],
) -> Result<(), BacktestError> {
    let cfg = setup.cfg;
    let (r, q, kappa) = (cfg.rate, cfg.yield_, setup.kappa);
    let times = &setup.times;
    let n = times.len() - 1;
    let Scratch {
        spots,
        legs,
        policies,
    } = scratch;
    for p in policies.iter_mut() {
        p.state.reset();
        p.hedge = 0.0;
        p.cash = 0.0;
        p.fees_pv = 0.0;
        p.trades = 0;
        p.turnover = 0.0;
    }
    for j in 0..=n {
        let (t, s) = (times[j], spots[j]);
        if j > 0 {
            let dt = t - times[j - 1];
            let growth = (r * dt).exp();
            let income = spots[j - 1] * (q * dt).exp_m1();
            for p in policies.iter_mut() {
                p.cash = p.cash * growth + p.hedge * income;
            }
            // Physical settlement against the hedge.
            for (leg, &at) in cfg.legs.iter().zip(&setup.settle) {
                let exercised = match leg.kind {
                    OptionKind::Call => s > leg.strike,
                    OptionKind::Put => s < leg.strike,
                };
                if at != j || !exercised {
                    continue;
                }
                let units = match leg.kind {
                    OptionKind::Call => leg.qty,
                    OptionKind::Put => -leg.qty,
                };
                for p in policies.iter_mut() {
                    p.hedge += units;
                    p.cash -= units * leg.strike;
                }
            }
        }
        if j == n {
            // Sell what is left.
            let disc = (-r * t).exp();
            for p in policies.iter_mut() {
                let x = p.hedge.abs();
                if x > 0.0 {
                    let fee = kappa * x * s + cfg.fixed_fee;
                    p.cash += p.hedge * s - fee;
                    p.fees_pv += fee * disc;
                    p.turnover += x;
                    p.hedge = 0.0;
                }
            }
            break;
        }
        // The position at (t, S).
        let sigma = vols.map_or(cfg.pricing_vol, |v| v[j]);
        legs.clear();
        let (mut delta, mut gamma, mut vanna) = (0.0, 0.0, 0.0);
        let (mut tau_w, mut w, mut tau_min) = (0.0, 0.0, f64::INFINITY);
        for (leg, &at) in cfg.legs.iter().zip(&setup.settle) {
            if at <= j {
                continue;
            }
            let tau = leg.expiry - t;
            let row = OptionRow::bsm(leg.kind, s, leg.strike, tau, r, q, sigma);
            let g = price(&row, t)?;
            delta += leg.qty * g.delta;
            gamma += leg.qty * g.gamma;
            vanna += leg.qty * g.vanna;
            let wi = (leg.qty * g.gamma).abs();
            tau_w += wi * tau;
            w += wi;
            tau_min = tau_min.min(tau);
            legs.push(PositionLeg { row, qty: leg.qty });
        }
        let tau = if w > 0.0 {
            tau_w / w
        } else if tau_min.is_finite() {
            tau_min
        } else {
            0.0
        };
        let disc = (-r * t).exp();
        for (p, pol) in policies.iter_mut().zip(&cfg.policies) {
            let ctx = HedgeContext {
                t,
                spot: s,
                tau,
                rate: r,
                yield_: q,
                sigma,
                position_delta: delta,
                gamma,
                vanna,
                hedge: p.hedge,
                kappa,
                fixed_cost: cfg.fixed_fee,
                horizon: times[j + 1] - t,
                legs: &legs[..],
            };
            if let Some(h) = decide(&pol.triggers, &mut p.state, &ctx) {
                let x = h - p.hedge;
                let fee = kappa * x.abs() * s + cfg.fixed_fee;
                p.cash -= x * s + fee;
                p.fees_pv += fee * disc;
                p.trades += 1;
                p.turnover += x.abs();
                p.hedge = h;
            }
        }
    }
    let disc_t = (-r * times[n]).exp();
    for (a, p) in accs.iter_mut().zip(policies.iter()) {
        let cost_fv = -p.cash;
        a.push(cost_fv * disc_t, cost_fv, p);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(policies: &[&str], paths: u64, steps_per_year: f64) -> BacktestConfig {
        BacktestConfig {
            market: Market::Gbm {
                mu: 0.05,
                sigma: 0.2,
            },
            spot: 100.0,
            rate: 0.01,
            yield_: 0.0,
            pricing_vol: 0.2,
            legs: vec![Leg {
                kind: OptionKind::Call,
                strike: 100.0,
                expiry: 0.25,
                qty: -1.0,
            }],
            paths,
            seed: 7,
            steps_per_year,
            cost_bps: 10.0,
            fixed_fee: 0.0,
            policies: policies.iter().map(|p| p.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn same_seed_same_report_whatever_the_threads() {
        let c = cfg(&["time:1d", "ww:1", "vol-band:0.05"], 300, 365.0);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| run(&c, None).unwrap());
        let two = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
            .install(|| run(&c, None).unwrap());
        assert_eq!(one, two);
        let other = run(
            &BacktestConfig {
                seed: 8,
                ..c.clone()
            },
            None,
        )
        .unwrap();
        assert_ne!(one[0].mean_cost_pv, other[0].mean_cost_pv);
        let progress = AtomicU64::new(0);
        run(&c, Some(&progress)).unwrap();
        assert_eq!(progress.load(Ordering::Relaxed), 300);
    }

    #[test]
    fn grid_and_reports_are_shaped_as_documented() {
        let c = cfg(&["time:1w"], 1, 52.0);
        let r = run(&c, None).unwrap();
        assert_eq!(r[0].steps, 13);
        assert_eq!(r[0].mean_trades, 13.0);
        assert!(r[0].cost_fv.is_some());
        assert_eq!(r[0].std_cost_pv, 0.0);
        assert_eq!(r[0].family, "time");
        let r = run(&cfg(&["time:1w"], 2, 52.0), None).unwrap();
        assert!(r[0].cost_fv.is_none());
    }

    #[test]
    fn jump_model_without_jumps_is_gbm_and_flat_heston_is_close() {
        let c = cfg(&["ww:1", "time:1w"], 2_000, 52.0);
        let gbm = run(&c, None).unwrap();
        let jump = BacktestConfig {
            market: Market::Jump {
                mu: 0.05,
                sigma: 0.2,
                intensity: 0.0,
                jump_mean: -0.1,
                jump_sd: 0.1,
            },
            ..c.clone()
        };
        assert_eq!(run(&jump, None).unwrap(), gbm);
        // ξ = 0 and v0 = θ = σ²: the same law as GBM (other draws, so only close).
        let heston = BacktestConfig {
            market: Market::Heston {
                mu: 0.05,
                v0: 0.04,
                kappa: 2.0,
                theta: 0.04,
                xi: 0.0,
                rho: 0.0,
            },
            ..c
        };
        for (h, g) in run(&heston, None).unwrap().iter().zip(&gbm) {
            assert!(
                (h.std_cost_pv / g.std_cost_pv - 1.0).abs() < 0.1,
                "{h:?} {g:?}"
            );
            assert!((h.mean_fees / g.mean_fees - 1.0).abs() < 0.1, "{h:?} {g:?}");
        }
    }

    #[test]
    fn bad_settings_name_their_field() {
        let mut c = cfg(&["ww:1"], 10, 52.0);
        c.steps_per_year = 0.0;
        assert!(
            run(&c, None)
                .unwrap_err()
                .to_string()
                .contains("steps-per-year")
        );
        let mut c = cfg(&["ww:1"], 10, 52.0);
        c.cost_bps = -1.0;
        assert!(run(&c, None).unwrap_err().to_string().contains("cost-bps"));
        let mut c = cfg(&["ww:1"], 10, 52.0);
        c.market = Market::Gbm {
            mu: 0.0,
            sigma: -0.2,
        };
        assert!(run(&c, None).unwrap_err().to_string().contains("sigma"));
        let mut c = cfg(&["ww:1"], 10, 52.0);
        c.market = Market::Path(RecordedPath::from_csv("0,100\n0.1,101\n").unwrap());
        let e = run(&c, None).unwrap_err().to_string();
        assert!(e.contains("before the last expiry"), "{e}");
    }
}
