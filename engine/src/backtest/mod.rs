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
//!
//! # Gamma and vega hedging with options ([`OptionHedge`])
//!
//! A policy with `hedge_options` set also trades listed options ([`HedgeOption`]) at every
//! decision time, before its delta decision: the Γ and ν of the whole position (book + the
//! hedge options it holds, per 1.00 of vol, in position units) go to
//! [`crate::policy::construct::solve`] — the live engine's construction — with bands
//! 0 ± `gamma_band` and 0 ± `vega_band` (an absent band is infinitely wide) and candidates the
//! hedge options not yet expired, lot 0.1 contract, at most `max_contracts` per order. The cost of
//! trading one contract, either way, is `cost_bps`/10⁴ of its model price plus `spread_vol`
//! times its vega (a half-spread in vol); premium and cost go through the cash account. The
//! delta the options add is hedged with the underlying in the same decision (fees as any
//! hedge trade; not counted in `mean_trades`), then the delta policy hedges the whole position
//! (its Δ, Γ, vanna and legs include the hedge options). A hedge option expiring by T settles physically against the hedge like a leg of
//! the book; one expiring after T is sold back at T at its model value less the same cost.
//! `mean_option_cost` (PV) and `mean_option_trades` (decisions that traded options) report it;
//! `mean_cost_pv` includes it.
//!
//! # Marks (`mark_model_vol`)
//!
//! By default every option is priced at the constant pricing vol. With `mark_model_vol` on a
//! model market, each option is marked at the path's instantaneous vol √v_j (Heston; the
//! constant σ for GBM and the diffusion σ for jumps), floored at 1 %: a flat smile and term
//! structure that move with the variance, so vega matters. (A recorded path with a vol column
//! is always marked at that column.) Not modelled: the Heston smile and the term structure of
//! implied vol (a 2-month option is marked at the same √v as a 1-month one).

mod input;

use core::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::greeks::{
    GreekValues, MAX_RATE, MAX_SIGMA, MIN_SIGMA, OptionKind, OptionRow, greeks_one,
};
use crate::policy::construct::{self, Band, BucketBand, Candidate};
use crate::policy::lp::LpWorkspace;
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
    /// Also hedge gamma and vega with [`BacktestConfig::option_hedge`].
    pub hedge_options: bool,
}

impl FromStr for Policy {
    type Err = TriggerParseError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        Ok(Self {
            spec: spec.trim().to_string(),
            triggers: parse_policy(spec)?,
            hedge_options: false,
        })
    }
}

impl Policy {
    /// The policy's family: its trigger kinds joined with `+` (`time`, `ww`, `band+time`),
    /// with ` +gv` when it hedges gamma and vega with options.
    pub fn family(&self) -> String {
        let kinds: Vec<&str> = self.triggers.iter().map(Trigger::kind).collect();
        let f = kinds.join("+");
        if self.hedge_options { f + " +gv" } else { f }
    }

    /// The name in reports: the spec, with ` +gv` when it hedges with options.
    pub fn name(&self) -> String {
        if self.hedge_options {
            format!("{} +gv", self.spec)
        } else {
            self.spec.clone()
        }
    }

    /// The same policy hedging gamma and vega with options too.
    pub fn with_options(&self) -> Self {
        Self {
            hedge_options: true,
            ..self.clone()
        }
    }
}

/// An option a policy may trade for gamma and vega.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HedgeOption {
    /// Call or put (European).
    pub kind: OptionKind,
    /// Strike (> 0).
    pub strike: f64,
    /// Years from the start to expiry (> 0).
    pub expiry: f64,
}

/// Gamma/vega hedging with options (see the module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct OptionHedge {
    /// The options that may be traded.
    pub options: Vec<HedgeOption>,
    /// Half-width of the gamma band around 0 (position units), `None` = gamma not hedged.
    pub gamma_band: Option<f64>,
    /// Half-width of the vega band around 0 (per 1.00 of vol), `None` = vega not hedged.
    pub vega_band: Option<f64>,
    /// Cost of trading an option, basis points of its model price, one way.
    pub cost_bps: f64,
    /// Half-spread in vol (0.005 = half a vol point): costs this times the option's vega.
    pub spread_vol: f64,
    /// Largest order of one hedge option per decision, contracts (the construction finds
    /// nothing, and the position stays outside its bands, when more would be needed).
    pub max_contracts: f64,
    /// Half-width of the band around 0 of each expiry bucket's vega (per 1.00 of vol), `None`
    /// = buckets not hedged one by one (see the module doc).
    pub bucket_vega_band: Option<f64>,
}

/// Lot and smallest order of a hedge option, contracts.
const OPTION_LOT: f64 = 0.1;
/// Floor of the model-vol mark.
const MIN_MARK_VOL: f64 = 0.01;

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
    /// Options for the policies with `hedge_options` set.
    pub option_hedge: Option<OptionHedge>,
    /// Mark options at the model's instantaneous vol (see the module doc).
    pub mark_model_vol: bool,
    /// Term structure of the model-vol marks' moves: an option τ years from expiry moves
    /// (τ_ref / max(τ, τ_min))^β times the instantaneous vol's move (τ_ref one month, τ_min one
    /// week); 0 = every expiry moves alike (see the module doc).
    pub vol_term_beta: f64,
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
    /// Mean cost of the option hedges (spread and fees, PV at t_0).
    pub mean_option_cost: f64,
    /// Mean number of decisions that traded options.
    pub mean_option_trades: f64,
    /// Mean over paths of the largest |vega| of one expiry bucket after a decision (book and
    /// hedge options, per 1.00 of vol, position units).
    pub mean_max_bucket_vega: f64,
}

/// The validated, shared setup of a run.
struct Setup<'a> {
    cfg: &'a BacktestConfig,
    /// Grid times t_0 = 0 < … < t_n.
    times: Vec<f64>,
    /// Per leg: the grid index at which it settles.
    settle: Vec<usize>,
    /// Per hedge option: the grid index at which it settles, `usize::MAX` if after T.
    hedge_settle: Vec<usize>,
    /// Expiry bucket of each leg and of each hedge option (distinct expiries, in order).
    leg_bucket: Vec<u16>,
    hedge_bucket: Vec<u16>,
    /// Number of buckets.
    buckets: usize,
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
    /// Fills `spots[1..]` and, if given, the model-vol marks `vols[..]` (√v, floored).
    fn fill(
        &self,
        seed: u64,
        dt: f64,
        spots: &mut [f64],
        vols: Option<&mut [f64]>,
    ) -> Result<(), ModelError> {
        fn mark(v: f64) -> f64 {
            v.max(0.0).sqrt().clamp(MIN_MARK_VOL, MAX_SIGMA)
        }
        fn go<M: crate::sim::MarketModel>(
            m: M,
            seed: u64,
            dt: f64,
            spots: &mut [f64],
            vols: Option<&mut [f64]>,
        ) -> Result<(), ModelError> {
            let v0 = m.variance();
            let mut p = PricePath::new(m, seed, dt)?;
            match vols {
                Some(vols) => {
                    vols[0] = mark(v0);
                    for (s, v) in spots.iter_mut().zip(vols.iter_mut()).skip(1) {
                        let x = p.advance();
                        *s = x.spot;
                        *v = mark(x.variance);
                    }
                }
                None => {
                    for s in spots.iter_mut().skip(1) {
                        *s = p.advance().spot;
                    }
                }
            }
            Ok(())
        }
        match *self {
            Model::Gbm(m) => go(m, seed, dt, spots, vols),
            Model::Jump(m) => go(m, seed, dt, spots, vols),
            Model::Heston(m) => go(m, seed, dt, spots, vols),
        }
    }

    fn variance(&self) -> f64 {
        use crate::sim::MarketModel;
        match self {
            Model::Gbm(m) => m.variance(),
            Model::Jump(m) => m.variance(),
            Model::Heston(m) => m.variance(),
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
    /// Contracts held of each hedge option.
    held: Vec<f64>,
    opt_cost_pv: f64,
    opt_trades: u32,
    /// Largest |bucket vega| after a decision on this path.
    max_bucket_vega: f64,
}

impl PolicyPath {
    fn reset(&mut self) {
        self.max_bucket_vega = 0.0;
        self.state.reset();
        self.hedge = 0.0;
        self.cash = 0.0;
        self.fees_pv = 0.0;
        self.trades = 0;
        self.turnover = 0.0;
        self.held.iter_mut().for_each(|h| *h = 0.0);
        self.opt_cost_pv = 0.0;
        self.opt_trades = 0;
    }
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
    opt_cost: f64,
    opt_trades: f64,
    max_bucket_vega: f64,
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
        self.opt_cost += p.opt_cost_pv;
        self.opt_trades += f64::from(p.opt_trades);
        self.max_bucket_vega += p.max_bucket_vega;
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
        self.opt_cost += b.opt_cost;
        self.opt_trades += b.opt_trades;
        self.max_bucket_vega += b.max_bucket_vega;
        self.last_fv = b.last_fv;
    }
}

/// Per-worker buffers, reused across the paths of a chunk.
struct Scratch {
    spots: Vec<f64>,
    /// Model-vol marks (with `mark_model_vol` on a model market).
    vols: Vec<f64>,
    legs: Vec<PositionLeg>,
    policies: Vec<PolicyPath>,
    /// Per hedge option at the current step: its row and Greeks per contract (`None` once
    /// settled).
    hedge_rows: Vec<Option<(OptionRow, GreekValues)>>,
    candidates: Vec<Candidate>,
    /// Per bucket: the book's vega at the current step; per candidate: its bucket; the bands
    /// of one decision; the LP's workspace (per-bucket bands only).
    bucket_vega: Vec<f64>,
    cand_bucket: Vec<u16>,
    bucket_bands: Vec<BucketBand>,
    lp: Option<Box<LpWorkspace>>,
    /// One policy's bucket vegas, and its copy of the candidates (costs it may close).
    pol_bucket: Vec<f64>,
    pol_cands: Vec<Candidate>,
}

impl Scratch {
    fn new(setup: &Setup<'_>) -> Self {
        let n_hedge = setup
            .cfg
            .option_hedge
            .as_ref()
            .map_or(0, |h| h.options.len());
        Self {
            spots: vec![0.0; setup.times.len()],
            vols: if setup.cfg.mark_model_vol {
                vec![0.0; setup.times.len()]
            } else {
                Vec::new()
            },
            legs: Vec::with_capacity(setup.cfg.legs.len() + n_hedge),
            hedge_rows: vec![None; n_hedge],
            candidates: Vec::with_capacity(n_hedge),
            bucket_vega: vec![0.0; setup.buckets],
            pol_bucket: vec![0.0; setup.buckets],
            pol_cands: Vec::with_capacity(n_hedge),
            cand_bucket: Vec::with_capacity(n_hedge),
            bucket_bands: Vec::with_capacity(setup.buckets),
            lp: setup
                .cfg
                .option_hedge
                .as_ref()
                .and_then(|h| h.bucket_vega_band)
                .map(|_| Box::new(LpWorkspace::new())),
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
                    held: vec![0.0; n_hedge],
                    opt_cost_pv: 0.0,
                    opt_trades: 0,
                    max_bucket_vega: 0.0,
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
    let model = match &cfg.market {
        Market::Path(_) => None,
        market => Some(build_model(market, cfg.spot)?),
    };
    let (s0, sigma0) = match (&cfg.market, &model) {
        (Market::Path(p), _) => (p.spots()[0], p.vols().map_or(cfg.pricing_vol, |v| v[0])),
        (_, Some(m)) if cfg.mark_model_vol => (
            cfg.spot,
            m.variance().max(0.0).sqrt().clamp(MIN_MARK_VOL, MAX_SIGMA),
        ),
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
        _ => {
            let model = model.expect("built above for model markets");
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
                        let Scratch { spots, vols, .. } = &mut scratch;
                        let marks = cfg.mark_model_vol.then_some(&mut vols[..]);
                        model.fill(path_seed(cfg.seed, i), dt, spots, marks)?;
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
                policy: p.name(),
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
                mean_option_cost: a.opt_cost / nf,
                mean_option_trades: a.opt_trades / nf,
                mean_max_bucket_vega: a.max_bucket_vega / nf,
            }
        })
        .collect())
}

fn price(row: &OptionRow, t: f64) -> Result<GreekValues, BacktestError> {
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
    let settle_of = |expiry: f64| {
        times
            .iter()
            .skip(1)
            .position(|&t| t >= expiry * (1.0 - 1e-12))
            .map(|j| j + 1)
    };
    let mut hedge_settle = Vec::new();
    if let Some(h) = &cfg.option_hedge {
        for o in &h.options {
            Leg {
                kind: o.kind,
                strike: o.strike,
                expiry: o.expiry,
                qty: 1.0,
            }
            .check()
            .map_err(|reason| BacktestError::Input {
                what: "hedge-option",
                line: 0,
                reason,
            })?;
            hedge_settle.push(settle_of(o.expiry).unwrap_or(usize::MAX));
        }
        for (field, band) in [
            ("gamma-band", h.gamma_band),
            ("vega-band", h.vega_band),
            ("vega-bucket-band", h.bucket_vega_band),
        ] {
            if let Some(b) = band
                && !(b.is_finite() && b > 0.0)
            {
                return Err(config_err(field, b, "must be > 0"));
            }
        }
        if h.gamma_band.is_none() && h.vega_band.is_none() && h.bucket_vega_band.is_none() {
            return Err(BacktestError::Config {
                field: "gamma-band",
                value: "none".into(),
                expected: "option hedging needs --gamma-band, --vega-band or --vega-bucket-band",
            });
        }
        if !in_range(h.cost_bps, 0.0, 10_000.0) {
            return Err(config_err(
                "option-cost-bps",
                h.cost_bps,
                "must be in [0, 10000]",
            ));
        }
        if !(h.max_contracts.is_finite() && h.max_contracts >= OPTION_LOT) {
            return Err(config_err("option-max", h.max_contracts, "must be >= 0.1"));
        }
        if !in_range(h.spread_vol, 0.0, 1.0) {
            return Err(config_err(
                "option-spread-vol",
                h.spread_vol,
                "must be in [0, 1]",
            ));
        }
    }
    if cfg.policies.iter().any(|p| p.hedge_options)
        && cfg
            .option_hedge
            .as_ref()
            .is_none_or(|h| h.options.is_empty())
    {
        return Err(BacktestError::Config {
            field: "hedge-option",
            value: "none".into(),
            expected: "a policy hedging with options needs at least one --hedge-option",
        });
    }
    if !in_range(cfg.vol_term_beta, 0.0, 2.0) {
        return Err(config_err(
            "vol-term-beta",
            cfg.vol_term_beta,
            "must be in [0, 2]",
        ));
    }
    // Expiry buckets: the distinct expiries of the legs and the hedge options.
    let hedge_expiries: Vec<f64> = cfg
        .option_hedge
        .as_ref()
        .map_or(Vec::new(), |h| h.options.iter().map(|o| o.expiry).collect());
    let mut expiries: Vec<f64> = cfg
        .legs
        .iter()
        .map(|l| l.expiry)
        .chain(hedge_expiries.iter().copied())
        .collect();
    expiries.sort_by(f64::total_cmp);
    expiries.dedup_by(|a, b| (*a - *b).abs() <= 1e-9 * b.abs().max(1e-9));
    let bucket_of = |e: f64| {
        expiries
            .iter()
            .position(|&x| (x - e).abs() <= 1e-9 * x.abs().max(1e-9))
            .unwrap_or(0) as u16
    };
    if expiries.len() > usize::from(u16::MAX) {
        return Err(config_err(
            "expiry",
            expiries.len() as f64,
            "at most 65,535 distinct expiries",
        ));
    }
    Ok(Setup {
        cfg,
        times,
        settle,
        hedge_settle,
        leg_bucket: cfg.legs.iter().map(|l| bucket_of(l.expiry)).collect(),
        hedge_bucket: hedge_expiries.iter().map(|&e| bucket_of(e)).collect(),
        buckets: expiries.len(),
        kappa: cfg.cost_bps * 1e-4,
    })
}

/// Simulates every policy on the path in `scratch.spots` (pricing vols `vols`, else the
/// model-vol marks in `scratch.vols` with `mark_model_vol`, else the constant pricing vol) and
/// adds each policy's outcome to `accs`.
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
        vols: marks,
        legs,
        policies,
        hedge_rows,
        candidates,
        bucket_vega,
        cand_bucket,
        bucket_bands,
        lp,
        pol_bucket,
        pol_cands,
    } = scratch;
    let model_marks = cfg.mark_model_vol && !matches!(cfg.market, Market::Path(_));
    let vols = vols.or(model_marks.then_some(&marks[..]));
    let hedge = cfg.option_hedge.as_ref();
    let hedge_options: &[HedgeOption] = hedge.map_or(&[], |h| &h.options[..]);
    let any_options = cfg.policies.iter().any(|p| p.hedge_options);
    for p in policies.iter_mut() {
        p.reset();
    }
    let beta = if model_marks { cfg.vol_term_beta } else { 0.0 };
    for j in 0..=n {
        let (t, s) = (times[j], spots[j]);
        let sigma = vols.map_or(cfg.pricing_vol, |v| v[j]);
        let sigma0 = vols.map_or(cfg.pricing_vol, |v| v[0]);
        // The mark of an option `tau` years from expiry (the term structure of the move).
        let mark = |tau: f64| {
            if beta == 0.0 {
                sigma
            } else {
                term_mark(sigma0, sigma, tau, beta)
            }
        };
        let disc = (-r * t).exp();
        if j > 0 {
            let dt = t - times[j - 1];
            let growth = (r * dt).exp();
            let income = spots[j - 1] * (q * dt).exp_m1();
            for p in policies.iter_mut() {
                p.cash = p.cash * growth + p.hedge * income;
            }
            // Physical settlement against the hedge: the book's legs, then the hedge options.
            let exercised = |kind: OptionKind, strike: f64| match kind {
                OptionKind::Call => s > strike,
                OptionKind::Put => s < strike,
            };
            let delivered = |kind: OptionKind, qty: f64| match kind {
                OptionKind::Call => qty,
                OptionKind::Put => -qty,
            };
            for (leg, &at) in cfg.legs.iter().zip(&setup.settle) {
                if at != j || !exercised(leg.kind, leg.strike) {
                    continue;
                }
                let units = delivered(leg.kind, leg.qty);
                for p in policies.iter_mut() {
                    p.hedge += units;
                    p.cash -= units * leg.strike;
                }
            }
            for (i, (o, &at)) in hedge_options.iter().zip(&setup.hedge_settle).enumerate() {
                if at != j {
                    continue;
                }
                let itm = exercised(o.kind, o.strike);
                for p in policies.iter_mut() {
                    if itm {
                        let units = delivered(o.kind, p.held[i]);
                        p.hedge += units;
                        p.cash -= units * o.strike;
                    }
                    p.held[i] = 0.0;
                }
            }
        }
        // Hedge options alive at t: rows and Greeks per contract.
        if any_options {
            for (i, (o, &at)) in hedge_options.iter().zip(&setup.hedge_settle).enumerate() {
                hedge_rows[i] = if at > j {
                    let tau = o.expiry - t;
                    let row = OptionRow::bsm(o.kind, s, o.strike, tau, r, q, mark(tau));
                    Some((row, price(&row, t)?))
                } else {
                    None
                };
            }
        }
        if j == n {
            // Sell back the hedge options that outlive T, then what is left of the hedge.
            for p in policies.iter_mut() {
                for (i, h) in hedge_rows.iter().enumerate() {
                    let x = p.held[i];
                    if let (Some((_, g)), Some(oh)) = (h, hedge)
                        && x != 0.0
                    {
                        let cost = option_cost(oh, g) * x.abs();
                        p.cash += x * g.price - cost;
                        p.opt_cost_pv += cost * disc;
                        p.held[i] = 0.0;
                    }
                }
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
        // The book at (t, S).
        legs.clear();
        let (mut delta, mut gamma, mut vanna, mut vega) = (0.0, 0.0, 0.0, 0.0);
        let (mut tau_w, mut w, mut tau_min) = (0.0, 0.0, f64::INFINITY);
        bucket_vega.iter_mut().for_each(|v| *v = 0.0);
        for (k, (leg, &at)) in cfg.legs.iter().zip(&setup.settle).enumerate() {
            if at <= j {
                continue;
            }
            let tau = leg.expiry - t;
            let row = OptionRow::bsm(leg.kind, s, leg.strike, tau, r, q, mark(tau));
            let g = price(&row, t)?;
            bucket_vega[setup.leg_bucket[k] as usize] += leg.qty * g.vega;
            delta += leg.qty * g.delta;
            gamma += leg.qty * g.gamma;
            vanna += leg.qty * g.vanna;
            vega += leg.qty * g.vega;
            let wi = (leg.qty * g.gamma).abs();
            tau_w += wi * tau;
            w += wi;
            tau_min = tau_min.min(tau);
            legs.push(PositionLeg { row, qty: leg.qty });
        }
        let book_legs = legs.len();
        let tau = if w > 0.0 {
            tau_w / w
        } else if tau_min.is_finite() {
            tau_min
        } else {
            0.0
        };
        if any_options && let Some(oh) = hedge {
            candidates.clear();
            cand_bucket.clear();
            for (i, h) in hedge_rows.iter().enumerate() {
                if let Some((_, g)) = h {
                    candidates.push(candidate(i, g, option_cost(oh, g), oh.max_contracts));
                    cand_bucket.push(setup.hedge_bucket[i]);
                }
            }
        }
        for (p, pol) in policies.iter_mut().zip(&cfg.policies) {
            let (mut delta, mut gamma, mut vanna, mut vega) = (delta, gamma, vanna, vega);
            legs.truncate(book_legs);
            pol_bucket.copy_from_slice(bucket_vega);
            if pol.hedge_options
                && let Some(oh) = hedge
            {
                for (i, h) in hedge_rows.iter().enumerate() {
                    if let Some((_, g)) = h {
                        let x = p.held[i];
                        delta += x * g.delta;
                        gamma += x * g.gamma;
                        vanna += x * g.vanna;
                        vega += x * g.vega;
                        pol_bucket[setup.hedge_bucket[i] as usize] += x * g.vega;
                    }
                }
                let sol = match (oh.bucket_vega_band, lp.as_deref_mut()) {
                    (Some(b), Some(ws)) => {
                        pol_cands.clear();
                        pol_cands.extend_from_slice(candidates);
                        bucket_trade(
                            oh,
                            b,
                            (gamma, vega),
                            pol_bucket,
                            pol_cands,
                            cand_bucket,
                            bucket_bands,
                            ws,
                        )
                    }
                    _ => option_trade(oh, gamma, vega, candidates),
                };
                if let Some(sol) = sol {
                    for l in &sol.legs[..sol.n] {
                        let c = &candidates[l.candidate];
                        let i = c.id.0 as usize;
                        let Some((_, g)) = &hedge_rows[i] else {
                            continue;
                        };
                        let cost = option_cost(oh, g) * l.qty.abs();
                        p.cash -= l.qty * g.price + cost;
                        p.opt_cost_pv += cost * disc;
                        p.held[i] += l.qty;
                        delta += l.qty * g.delta;
                        gamma += l.qty * g.gamma;
                        vanna += l.qty * g.vanna;
                        pol_bucket[setup.hedge_bucket[i] as usize] += l.qty * g.vega;
                    }
                    p.opt_trades += 1;
                    // The delta the options add is hedged in the same decision.
                    let x = -sol.delta_added;
                    let fee = kappa * x.abs() * s + cfg.fixed_fee;
                    p.cash -= x * s + fee;
                    p.fees_pv += fee * disc;
                    p.turnover += x.abs();
                    p.hedge += x;
                }
                for (i, h) in hedge_rows.iter().enumerate() {
                    if let Some((row, _)) = h
                        && p.held[i] != 0.0
                    {
                        legs.push(PositionLeg {
                            row: *row,
                            qty: p.held[i],
                        });
                    }
                }
            }
            let worst = pol_bucket.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            p.max_bucket_vega = p.max_bucket_vega.max(worst);
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

/// Cost of trading one contract of a hedge option either way: `cost_bps` of its price plus
/// `spread_vol` times its vega.
fn option_cost(h: &OptionHedge, g: &GreekValues) -> f64 {
    h.cost_bps * 1e-4 * g.price.abs() + h.spread_vol * g.vega.abs()
}

/// The construction candidate for hedge option `i` with Greeks `g` per contract.
fn candidate(i: usize, g: &GreekValues, cost: f64, max_size: f64) -> Candidate {
    Candidate {
        id: keel_feeds::instrument::InstrumentId(i as u32),
        delta: g.delta,
        gamma: g.gamma,
        vega: g.vega,
        cost_buy: cost,
        cost_sell: cost,
        lot: OPTION_LOT,
        min_size: OPTION_LOT,
        max_size,
    }
}

/// Month and week, years: the reference and the floor of the marks' term structure.
const TERM_REF_YEARS: f64 = 1.0 / 12.0;
const TERM_MIN_YEARS: f64 = 7.0 / 365.0;

/// The mark of an option `tau` years from expiry when the instantaneous vol moved from `s0` to
/// `s`: s0 + (s − s0)·(τ_ref / max(τ, τ_min))^β, floored and capped like every mark.
fn term_mark(s0: f64, s: f64, tau: f64, beta: f64) -> f64 {
    let m = (TERM_REF_YEARS / tau.max(TERM_MIN_YEARS)).powf(beta);
    (s0 + (s - s0) * m).clamp(MIN_MARK_VOL, MAX_SIGMA)
}

/// One option-hedge decision with a band on each expiry bucket's vega too: the live engine's
/// per-bucket construction ([`construct::solve_bands`]) over the buckets the candidates can trade
/// in (out-of-band ones first, then by |vega|, at most [`construct::MAX_BUCKETS`]; a candidate
/// whose bucket is left out cannot trade).
#[allow(clippy::too_many_arguments)]
fn bucket_trade(
    h: &OptionHedge,
    band: f64,
    (gamma, vega): (f64, f64),
    bucket_vega: &[f64],
    cands: &mut [Candidate],
    cand_bucket: &[u16],
    bands: &mut Vec<BucketBand>,
    ws: &mut LpWorkspace,
) -> Option<construct::Solution> {
    let b = Band {
        target: 0.0,
        half_width: band,
    };
    bands.clear();
    for (e, &v) in bucket_vega.iter().enumerate() {
        if cand_bucket.iter().any(|&x| x as usize == e) {
            bands.push(BucketBand {
                bucket: e as u16,
                vega: v,
                band: b,
            });
        }
    }
    bands.sort_unstable_by(|a, b| {
        let out = |x: &BucketBand| !x.band.contains_value(x.vega);
        out(b)
            .cmp(&out(a))
            .then(b.vega.abs().total_cmp(&a.vega.abs()))
    });
    bands.truncate(construct::MAX_BUCKETS);
    for (c, &e) in cands.iter_mut().zip(cand_bucket) {
        if !bands.iter().any(|b| b.bucket == e) {
            c.cost_buy = f64::INFINITY;
            c.cost_sell = f64::INFINITY;
        }
    }
    let wide = |x: Option<f64>| Band {
        target: 0.0,
        half_width: x.unwrap_or(f64::INFINITY),
    };
    construct::solve_bands(
        ws,
        gamma,
        vega,
        &wide(h.gamma_band),
        &wide(h.vega_band),
        bands,
        cands,
        cand_bucket,
    )
}

/// One option-hedge decision: the live construction ([`construct::solve`]) on the position's
/// Γ and ν with the hedge's bands around 0 (an absent band is infinitely wide).
pub fn option_trade(
    h: &OptionHedge,
    gamma: f64,
    vega: f64,
    candidates: &[Candidate],
) -> Option<construct::Solution> {
    let band = |b: Option<f64>| Band {
        target: 0.0,
        half_width: b.unwrap_or(f64::INFINITY),
    };
    construct::solve(
        gamma,
        vega,
        &band(h.gamma_band),
        &band(h.vega_band),
        candidates,
    )
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
            option_hedge: None,
            mark_model_vol: false,
            vol_term_beta: 0.0,
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

    fn straddle_cfg(paths: u64, options: &[(OptionKind, f64, f64)]) -> BacktestConfig {
        let leg = |kind| Leg {
            kind,
            strike: 100.0,
            expiry: 1.0 / 12.0,
            qty: -10.0,
        };
        let time: Policy = "time:1d".parse().unwrap();
        BacktestConfig {
            market: Market::Heston {
                mu: 0.0,
                v0: 0.04,
                kappa: 2.0,
                theta: 0.04,
                xi: 0.5,
                rho: -0.7,
            },
            spot: 100.0,
            rate: 0.0,
            yield_: 0.0,
            pricing_vol: 0.2,
            legs: vec![leg(OptionKind::Call), leg(OptionKind::Put)],
            paths,
            seed: 3,
            steps_per_year: 365.0,
            cost_bps: 5.0,
            fixed_fee: 0.0,
            policies: vec![time.clone(), time.with_options()],
            option_hedge: Some(OptionHedge {
                options: options
                    .iter()
                    .map(|&(kind, strike, expiry)| HedgeOption {
                        kind,
                        strike,
                        expiry,
                    })
                    .collect(),
                gamma_band: Some(0.2),
                vega_band: Some(20.0),
                cost_bps: 0.0,
                spread_vol: 0.005,
                bucket_vega_band: None,
                max_contracts: 1e6,
            }),
            mark_model_vol: true,
            vol_term_beta: 0.0,
        }
    }

    #[test]
    fn one_option_decision_lands_the_straddle_inside_both_bands() {
        // A written 1-month straddle at t_0 and a strip without its strike: no single option
        // fixes both Greeks, so the construction needs a near and a far option.
        let (s, sigma) = (100.0, 0.2);
        let greeks = |kind, k: f64, tau: f64| {
            greeks_one(&OptionRow::bsm(kind, s, k, tau, 0.0, 0.0, sigma)).unwrap()
        };
        let m1 = 1.0 / 12.0;
        let (c, p) = (
            greeks(OptionKind::Call, 100.0, m1),
            greeks(OptionKind::Put, 100.0, m1),
        );
        let (gamma, vega) = (-10.0 * (c.gamma + p.gamma), -10.0 * (c.vega + p.vega));
        let strip = [
            (OptionKind::Call, 105.0, m1),
            (OptionKind::Put, 95.0, m1),
            (OptionKind::Call, 100.0, 2.0 * m1),
            (OptionKind::Put, 90.0, 2.0 * m1),
        ];
        let h = straddle_cfg(1, &strip).option_hedge.unwrap();
        let cands: Vec<Candidate> = strip
            .iter()
            .enumerate()
            .map(|(i, &(kind, k, tau))| {
                let g = greeks(kind, k, tau);
                candidate(i, &g, option_cost(&h, &g), h.max_contracts)
            })
            .collect();
        assert!(gamma.abs() > 1.0 && vega.abs() > 200.0, "{gamma} {vega}");
        let sol = option_trade(&h, gamma, vega, &cands).expect("a feasible trade");
        // Reprice what was bought and add it to the book.
        let (mut g_after, mut v_after) = (gamma, vega);
        for l in &sol.legs[..sol.n] {
            let (kind, k, tau) = strip[l.candidate];
            let g = greeks(kind, k, tau);
            g_after += l.qty * g.gamma;
            v_after += l.qty * g.vega;
            assert!(l.qty > 0.0, "buys back gamma and vega: {sol:?}");
        }
        assert!(g_after.abs() <= 0.2 * (1.0 + 1e-9), "{g_after} {sol:?}");
        assert!(v_after.abs() <= 20.0 * (1.0 + 1e-9), "{v_after} {sol:?}");
        assert!((g_after - sol.gamma_after).abs() < 1e-9);
        // Inside the bands already: nothing to do.
        assert!(option_trade(&h, 0.1, -10.0, &cands).is_none());
    }

    /// Short 10 one-month straddles, long three-month ones for the same total vega: flat in
    /// total vega, not in each expiry. Hedge options: the ATM call and put of both expiries.
    fn calendar_cfg(paths: u64, beta: f64, bucket_band: Option<f64>) -> BacktestConfig {
        let (m1, m3) = (1.0 / 12.0, 3.0 / 12.0);
        let leg = |kind, expiry, qty| Leg {
            kind,
            strike: 100.0,
            expiry,
            qty,
        };
        // ATM vega grows like √τ: 10/√3 three-month straddles carry the vega of 10 one-month.
        let far = 10.0 / 3f64.sqrt();
        let mut c = straddle_cfg(
            paths,
            &[
                (OptionKind::Call, 100.0, m1),
                (OptionKind::Put, 100.0, m1),
                (OptionKind::Call, 100.0, m3),
                (OptionKind::Put, 100.0, m3),
            ],
        );
        c.legs = vec![
            leg(OptionKind::Call, m1, -10.0),
            leg(OptionKind::Put, m1, -10.0),
            leg(OptionKind::Call, m3, far),
            leg(OptionKind::Put, m3, far),
        ];
        c.vol_term_beta = beta;
        let h = c.option_hedge.as_mut().unwrap();
        h.gamma_band = None;
        h.vega_band = Some(20.0);
        h.bucket_vega_band = bucket_band;
        c
    }

    #[test]
    fn bucket_vega_bands_hedge_a_calendar_that_total_vega_calls_flat() {
        // Near expiries move more than far ones (β = 0.5): the calendar's P&L follows the
        // instantaneous vol although its total vega is 0.
        let total = run(&calendar_cfg(300, 0.5, None), None).unwrap();
        let bucket = run(&calendar_cfg(300, 0.5, Some(20.0)), None).unwrap();
        let (delta, total_gv) = (&total[0], &total[1]);
        let bucket_gv = &bucket[1];
        // Same paths for the delta-only policy either way.
        assert_eq!(&bucket[0], delta);
        // The total-vega band sees nothing to do at t_0; the bucket bands flatten each expiry.
        assert!(
            bucket_gv.mean_max_bucket_vega < 0.3 * total_gv.mean_max_bucket_vega,
            "{total_gv:?} {bucket_gv:?}"
        );
        assert!(
            bucket_gv.std_cost_pv < 0.5 * total_gv.std_cost_pv,
            "bucket bands: {bucket_gv:?}\ntotal band: {total_gv:?}"
        );
        assert!(bucket_gv.mean_option_trades >= 1.0 && bucket_gv.mean_option_cost > 0.0);
        // A term structure needs model marks; β out of range is refused by name.
        let mut c = calendar_cfg(10, 3.0, Some(20.0));
        c.vol_term_beta = 3.0;
        assert!(
            run(&c, None)
                .unwrap_err()
                .to_string()
                .contains("vol-term-beta")
        );
        let c = calendar_cfg(10, 0.5, Some(-1.0));
        assert!(
            run(&c, None)
                .unwrap_err()
                .to_string()
                .contains("vega-bucket-band")
        );
    }

    #[test]
    fn term_marks_move_near_expiries_more() {
        let m = |tau| term_mark(0.2, 0.3, tau, 0.5);
        assert!(
            (m(1.0 / 12.0) - 0.3).abs() < 1e-12,
            "one month moves like the instantaneous"
        );
        assert!(
            (m(1.0 / 3.0) - (0.2 + 0.1 * 0.5)).abs() < 1e-12,
            "four months: half"
        );
        assert_eq!(m(1.0 / 365.0), m(7.0 / 365.0), "floored at a week");
        assert_eq!(term_mark(0.2, 0.3, 0.5, 0.0), 0.3, "β = 0: all alike");
        assert_eq!(term_mark(0.2, 0.001, 1.0 / 365.0, 2.0), MIN_MARK_VOL);
    }

    #[test]
    fn option_hedging_cuts_the_straddle_std_under_heston() {
        let m1 = 1.0 / 12.0;
        let strip = [
            (OptionKind::Call, 100.0, m1),
            (OptionKind::Put, 100.0, m1),
            (OptionKind::Call, 110.0, m1),
            (OptionKind::Put, 90.0, m1),
            (OptionKind::Call, 100.0, 2.0 * m1),
            (OptionKind::Put, 90.0, 2.0 * m1),
        ];
        let c = straddle_cfg(300, &strip);
        let r = run(&c, None).unwrap();
        let (delta, gv) = (&r[0], &r[1]);
        assert_eq!(gv.policy, "time:1d +gv");
        assert!(gv.std_cost_pv < 0.5 * delta.std_cost_pv, "{delta:?} {gv:?}");
        assert!(gv.mean_option_cost > 0.0 && gv.mean_option_trades >= 1.0);
        assert_eq!(delta.mean_option_cost, 0.0);
        // The delta-only policy is not affected by the option hedge's presence.
        let alone = BacktestConfig {
            policies: vec![c.policies[0].clone()],
            option_hedge: None,
            ..c.clone()
        };
        assert_eq!(&run(&alone, None).unwrap()[0], delta);
        // A policy hedging with options needs options.
        let none = BacktestConfig {
            option_hedge: None,
            ..c
        };
        assert!(
            run(&none, None)
                .unwrap_err()
                .to_string()
                .contains("hedge-option")
        );
    }
}
