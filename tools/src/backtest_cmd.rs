//! `keel backtest`: hedges an option (or a book) with one or more policies over simulated or
//! recorded price paths and reports the cost of writing and hedging it, per policy; optionally
//! draws the risk/cost frontier as an SVG.
//!
//! The simulation is [`keel_engine::backtest`]; this module parses and checks the flags (every
//! bad value is reported naming its flag), reads the path and book files, shows a progress bar
//! on a terminal for long runs, and prints a table, JSON lines or the plot.

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use keel_engine::backtest::{
    BacktestConfig, BacktestError, HedgeOption, Leg, Market, OptionHedge, Policy, PolicyReport,
    RecordedPath, parse_book,
};
use keel_engine::greeks::OptionKind;
use keel_engine::sim::ModelError;

/// `keel backtest --help`, above the flags.
pub const LONG_ABOUT: &str = "\
Hedge an option (or a book) with one or more policies over simulated or recorded price paths,
and report per policy the cost of writing and hedging it (PV at the start): its mean and
standard deviation over paths, std/option value, trades, turnover and fees.

Paths: --model gbm | jump (Merton) | heston, --paths N of them, seeded per path from --seed
(the same report for a seed whatever the thread count), --steps-per-year decision times per
year; or --model path --path-file F, one recorded path (CSV t_years,spot[,vol]; a vol column
is the pricing vol at each row). The hedger prices with --vol (or --pricing-vol) throughout.

Position: --option call|put --strike K --expiry T --qty Q (negative = written; default one
written call), or --book F (CSV kind,strike,expiry_years,qty, one option per row).

Policies (--policy, repeatable; triggers joined with '+' hedge when any fires):
  band:DELTA          |hedge - target| > DELTA units -> trade to the delta target
  time:INTERVAL       every INTERVAL (years, or 1w, 1d, 1h) -> target
  vol-band:BASE[:HL]  band BASE * realised vol (EWMA, half-life HL, default 1w) / pricing vol
  ww:GAMMA            Whalley-Wilmott band for risk aversion GAMMA -> nearest band edge
  zak:GAMMA           Zakamouline band around the modified-vol delta -> nearest band edge
  cost:GAMMA          trade when 0.5*GAMMA*(variance removed to the next decision) > its cost

Accounting: hedge trades through a cash account at --rate, fees --cost-bps of notional (plus
--fixed-fee per trade), the hedge earns --yield, options settle physically against the hedge
at expiry and the rest of the hedge is sold.

Gamma/vega hedging: with --gamma-band and/or --vega-band (half-widths around 0, position units,
vega per 1.00 of vol) and --hedge-option KIND:STRIKE:EXPIRY (repeatable), every policy is run
twice on the same paths: delta only, and 'SPEC +gv', which first brings the position's gamma
and vega inside the bands with the cheapest single option or pair (the live engine's
construction; lot 0.1, at most --option-max per order), paying --option-cost-bps of the option price plus --option-spread-vol
times its vega per contract, then delta-hedges the whole position. --vega-bucket-band also keeps
each expiry's vega inside its band (the live engine's linear programme over the buckets; the
table's max_bucket_vega is the mean over paths of the largest |vega| of one expiry after a
decision). Hedge options expiring
after the book are sold back at its last expiry at model value less the same cost.
--mark-vol model marks every option at the path's instantaneous vol (Heston: sqrt(v)), so
volatility moves show in the P&L; --vol-term-beta B makes near expiries move more than far ones
(a move of the instantaneous vol times (1 month / max(tau, 1 week))^B).";

/// `keel backtest --help`, below the flags.
pub const AFTER_HELP: &str = "\
Examples:
  keel backtest --vol 0.2 --expiry 0.25 --cost-bps 10 --policy time:1d --policy ww:1
  keel backtest --model jump --jump-intensity 5 --policy zak:2 --policy band:0.1+time:1w --json
  keel backtest --model path --path-file btc.csv --strike 60000 --expiry 0.1 --policy ww:0.01
  keel backtest --cost-bps 10 --policy time:1d --policy time:1w --policy ww:1 --plot f.svg
  keel backtest --model heston --mark-vol model --book straddle.csv --policy time:1d \
    --gamma-band 0.2 --vega-band 2 --hedge-option call:100:0.1667 --hedge-option put:90:0.1667";

/// Paths · steps · policies above which a terminal gets a progress bar.
const LONG_RUN: f64 = 5e6;

/// Arguments of `keel backtest`.
#[derive(Args, Debug, Clone)]
pub struct BacktestArgs {
    /// Market model of the paths.
    #[arg(long, value_enum, default_value_t = ModelArg::Gbm)]
    pub model: ModelArg,
    /// Recorded path for --model path: CSV t_years,spot[,vol] (optional header).
    #[arg(long, value_name = "FILE")]
    pub path_file: Option<PathBuf>,
    /// Spot at the start (model paths).
    #[arg(
        long,
        value_name = "S0",
        default_value_t = 100.0,
        allow_negative_numbers = true
    )]
    pub spot: f64,
    /// Drift of the underlying per year (model paths).
    #[arg(
        long,
        value_name = "MU",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub drift: f64,
    /// Volatility of the paths (GBM, jump diffusion) and the hedger's pricing vol.
    #[arg(
        long,
        value_name = "SIGMA",
        default_value_t = 0.2,
        allow_negative_numbers = true
    )]
    pub vol: f64,
    /// The hedger's pricing vol, if not --vol (e.g. Leland's adjusted vol).
    #[arg(long, value_name = "SIGMA", allow_negative_numbers = true)]
    pub pricing_vol: Option<f64>,
    /// Continuously compounded rate.
    #[arg(
        long,
        value_name = "R",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub rate: f64,
    /// Continuous yield of the underlying.
    #[arg(
        long = "yield",
        value_name = "Q",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub yield_: f64,
    /// Number of model paths.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub paths: u64,
    /// Seed of the run (path i uses a seed derived from it and i).
    #[arg(long, value_name = "X", default_value_t = 1)]
    pub seed: u64,
    /// Decision times per year (model paths).
    #[arg(
        long,
        value_name = "M",
        default_value_t = 365.0,
        allow_negative_numbers = true
    )]
    pub steps_per_year: f64,
    /// Proportional cost per trade, basis points of notional, one way.
    #[arg(
        long,
        value_name = "C",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub cost_bps: f64,
    /// Fixed cost per hedge trade, quote currency.
    #[arg(
        long,
        value_name = "F",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub fixed_fee: f64,
    /// Jumps per year (--model jump).
    #[arg(
        long,
        value_name = "LAMBDA",
        default_value_t = 5.0,
        allow_negative_numbers = true
    )]
    pub jump_intensity: f64,
    /// Mean log jump (--model jump).
    #[arg(long, value_name = "MJ", default_value_t = -0.02, allow_negative_numbers = true)]
    pub jump_mean: f64,
    /// Standard deviation of the log jump (--model jump).
    #[arg(
        long,
        value_name = "SJ",
        default_value_t = 0.05,
        allow_negative_numbers = true
    )]
    pub jump_sd: f64,
    /// Mean-reversion speed of the variance (--model heston).
    #[arg(
        long,
        value_name = "K",
        default_value_t = 2.0,
        allow_negative_numbers = true
    )]
    pub kappa: f64,
    /// Long-run variance (--model heston; default --vol squared).
    #[arg(long, value_name = "THETA", allow_negative_numbers = true)]
    pub theta: Option<f64>,
    /// Volatility of the variance (--model heston).
    #[arg(
        long,
        value_name = "XI",
        default_value_t = 0.5,
        allow_negative_numbers = true
    )]
    pub vol_of_vol: f64,
    /// Correlation of spot and variance (--model heston).
    #[arg(long, value_name = "RHO", default_value_t = -0.7, allow_negative_numbers = true)]
    pub rho: f64,
    /// Initial variance (--model heston; default --vol squared).
    #[arg(long, value_name = "V0", allow_negative_numbers = true)]
    pub v0: Option<f64>,
    /// Option kind.
    #[arg(long = "option", value_enum, default_value_t = KindArg::Call, conflicts_with = "book")]
    pub kind: KindArg,
    /// Strike (default: the spot, at the money).
    #[arg(
        long,
        value_name = "K",
        conflicts_with = "book",
        allow_negative_numbers = true
    )]
    pub strike: Option<f64>,
    /// Years to expiry.
    #[arg(
        long,
        value_name = "T",
        default_value_t = 0.25,
        allow_negative_numbers = true,
        conflicts_with = "book"
    )]
    pub expiry: f64,
    /// Signed quantity (negative = written).
    #[arg(long, value_name = "Q", default_value_t = -1.0, allow_negative_numbers = true, conflicts_with = "book")]
    pub qty: f64,
    /// A book instead of one option: CSV kind,strike,expiry_years,qty (optional header).
    #[arg(long, value_name = "FILE")]
    pub book: Option<PathBuf>,
    /// A hedge policy (repeatable), e.g. ww:1, time:1d, band:0.1+time:1w.
    #[arg(long = "policy", value_name = "SPEC", required = true, value_parser = parse_policy_arg)]
    pub policies: Vec<Policy>,
    /// Print one JSON object per policy (one line each) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Draw the risk/cost frontier (x mean fees, y std of cost) as an SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// An option that may be traded for gamma and vega: KIND:STRIKE:EXPIRY_YEARS (repeatable).
    #[arg(long = "hedge-option", value_name = "KIND:K:T", value_parser = parse_hedge_option)]
    pub hedge_options: Vec<HedgeOption>,
    /// Gamma band half-width around 0 (position units); runs each policy also with options.
    #[arg(long, value_name = "G", allow_negative_numbers = true)]
    pub gamma_band: Option<f64>,
    /// Vega band half-width around 0 (per 1.00 of vol, position units).
    #[arg(long, value_name = "V", allow_negative_numbers = true)]
    pub vega_band: Option<f64>,
    /// Band half-width around 0 of each expiry bucket's vega (per 1.00 of vol, position
    /// units): the options solve becomes the live engine's linear programme over the buckets.
    #[arg(long, value_name = "V", allow_negative_numbers = true)]
    pub vega_bucket_band: Option<f64>,
    /// With --mark-vol model: an option τ years from expiry moves (1 month / max(τ, 1 week))^B
    /// times the instantaneous vol's move (near expiries move more) [default: 0, all alike].
    #[arg(
        long,
        value_name = "B",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub vol_term_beta: f64,
    /// Cost of trading a hedge option, basis points of its price, one way.
    #[arg(
        long,
        value_name = "C",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub option_cost_bps: f64,
    /// Half-spread of a hedge option in vol (0.005 = half a vol point): costs this times vega.
    #[arg(
        long,
        value_name = "V",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub option_spread_vol: f64,
    /// Largest order of one hedge option per decision, contracts [default: the book's size,
    /// Σ|qty| of its options — an unbounded order can run away where the marks are extreme].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub option_max: Option<f64>,
    /// What options are marked at: the constant pricing vol, or the model's instantaneous vol.
    #[arg(long, value_enum, default_value_t = MarkArg::Pricing)]
    pub mark_vol: MarkArg,
}

/// The vol options are marked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MarkArg {
    /// The constant --vol / --pricing-vol (or a recorded path's vol column).
    Pricing,
    /// The path's instantaneous vol (Heston sqrt(v)), floored at 1 %.
    Model,
}

/// `call:100:0.25` → a hedge option.
pub fn parse_hedge_option(s: &str) -> Result<HedgeOption, String> {
    let parts: Vec<&str> = s.split(':').map(str::trim).collect();
    let [kind, k, t] = parts[..] else {
        return Err(format!("expected KIND:STRIKE:EXPIRY_YEARS, got '{s}'"));
    };
    let kind = match kind.to_ascii_lowercase().as_str() {
        "call" | "c" => OptionKind::Call,
        "put" | "p" => OptionKind::Put,
        other => return Err(format!("kind '{other}' must be call or put")),
    };
    let num = |x: &str, what: &str| {
        x.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0)
            .ok_or_else(|| format!("{what} '{x}' must be a positive number"))
    };
    Ok(HedgeOption {
        kind,
        strike: num(k, "strike")?,
        expiry: num(t, "expiry")?,
    })
}

fn parse_policy_arg(s: &str) -> Result<Policy, String> {
    s.parse()
        .map_err(|e: keel_engine::policy::triggers::TriggerParseError| e.to_string())
}

/// The market model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelArg {
    /// Geometric Brownian motion.
    Gbm,
    /// Merton jump-diffusion.
    Jump,
    /// Heston stochastic volatility.
    Heston,
    /// A recorded path (--path-file).
    Path,
}

impl ModelArg {
    fn name(self) -> &'static str {
        match self {
            ModelArg::Gbm => "gbm",
            ModelArg::Jump => "jump",
            ModelArg::Heston => "heston",
            ModelArg::Path => "path",
        }
    }
}

/// Call or put.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// A call.
    Call,
    /// A put.
    Put,
}

/// Runs `keel backtest`.
pub fn run(args: &BacktestArgs) -> Result<()> {
    let cfg = config(args)?;
    let started = Instant::now();
    let reports = run_with_progress(&cfg).map_err(|e| flag_error(e, args))?;
    let elapsed = started.elapsed();
    if let Some(path) = &args.plot {
        let title = format!(
            "{} paths, {} bps: risk/cost frontier",
            args.model.name(),
            ryu::Buffer::new().format(args.cost_bps)
        );
        plot_frontier(path, &title, &reports)
            .with_context(|| format!("writing --plot {}", path.display()))?;
    }
    let mut out = String::new();
    if args.json {
        for r in &reports {
            writeln!(out, "{}", json(args, r, elapsed)).expect("write to a String");
        }
    } else {
        table(&mut out, args, &reports, elapsed);
    }
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing standard output")
}

/// The engine's configuration from the flags; errors name the flag.
pub fn config(args: &BacktestArgs) -> Result<BacktestConfig> {
    let finite = |flag: &str, x: f64| -> Result<f64> {
        if x.is_finite() {
            Ok(x)
        } else {
            bail!("--{flag} must be a finite number, got {x}")
        }
    };
    for (flag, x) in [
        ("spot", args.spot),
        ("drift", args.drift),
        ("vol", args.vol),
        ("rate", args.rate),
        ("yield", args.yield_),
        ("steps-per-year", args.steps_per_year),
        ("cost-bps", args.cost_bps),
        ("fixed-fee", args.fixed_fee),
        ("expiry", args.expiry),
        ("qty", args.qty),
        ("option-cost-bps", args.option_cost_bps),
        ("option-spread-vol", args.option_spread_vol),
        ("option-max", args.option_max.unwrap_or(1.0)),
    ] {
        finite(flag, x)?;
    }
    let market = match args.model {
        ModelArg::Gbm => Market::Gbm {
            mu: args.drift,
            sigma: args.vol,
        },
        ModelArg::Jump => Market::Jump {
            mu: args.drift,
            sigma: args.vol,
            intensity: args.jump_intensity,
            jump_mean: args.jump_mean,
            jump_sd: args.jump_sd,
        },
        ModelArg::Heston => Market::Heston {
            mu: args.drift,
            v0: args.v0.unwrap_or(args.vol * args.vol),
            kappa: args.kappa,
            theta: args.theta.unwrap_or(args.vol * args.vol),
            xi: args.vol_of_vol,
            rho: args.rho,
        },
        ModelArg::Path => {
            let Some(file) = &args.path_file else {
                bail!("--model path needs --path-file FILE (CSV t_years,spot[,vol])");
            };
            let text = read(file, "--path-file")?;
            Market::Path(
                RecordedPath::from_csv(&text)
                    .with_context(|| format!("--path-file {}", file.display()))?,
            )
        }
    };
    if args.path_file.is_some() && args.model != ModelArg::Path {
        bail!("--path-file is only used with --model path");
    }
    let legs = match &args.book {
        Some(file) => {
            let text = read(file, "--book")?;
            parse_book(&text).with_context(|| format!("--book {}", file.display()))?
        }
        None => {
            let spot = match &market {
                Market::Path(p) => p.spots()[0],
                _ => args.spot,
            };
            let leg = Leg {
                kind: match args.kind {
                    KindArg::Call => OptionKind::Call,
                    KindArg::Put => OptionKind::Put,
                },
                strike: args.strike.unwrap_or(spot),
                expiry: args.expiry,
                qty: args.qty,
            };
            // "strike -1 must be ..." becomes "--strike -1: must be ...".
            leg.check().map_err(|e| {
                let e = e.replacen("expiry_years", "expiry", 1);
                let mut words = e.splitn(3, ' ');
                let (flag, value, why) = (
                    words.next().unwrap_or(""),
                    words.next().unwrap_or(""),
                    words.next().unwrap_or(""),
                );
                anyhow!("--{flag} {value}: {why}")
            })?;
            vec![leg]
        }
    };
    let banded =
        args.gamma_band.is_some() || args.vega_band.is_some() || args.vega_bucket_band.is_some();
    if banded && args.hedge_options.is_empty() {
        bail!(
            "--gamma-band/--vega-band/--vega-bucket-band need at least one --hedge-option KIND:STRIKE:EXPIRY"
        );
    }
    if !banded && !args.hedge_options.is_empty() {
        bail!("--hedge-option needs --gamma-band, --vega-band and/or --vega-bucket-band");
    }
    if args.vol_term_beta != 0.0 && args.mark_vol != MarkArg::Model {
        bail!(
            "--vol-term-beta {}: shapes the model-vol marks' moves; needs --mark-vol model",
            args.vol_term_beta
        );
    }
    let option_hedge = banded.then(|| OptionHedge {
        options: args.hedge_options.clone(),
        gamma_band: args.gamma_band,
        vega_band: args.vega_band,
        bucket_vega_band: args.vega_bucket_band,
        cost_bps: args.option_cost_bps,
        spread_vol: args.option_spread_vol,
        max_contracts: args
            .option_max
            .unwrap_or_else(|| legs.iter().map(|l| l.qty.abs()).sum::<f64>().max(0.1)),
    });
    let mut policies = args.policies.clone();
    if banded {
        policies = policies
            .iter()
            .flat_map(|p| [p.clone(), p.with_options()])
            .collect();
    }
    Ok(BacktestConfig {
        market,
        spot: args.spot,
        rate: args.rate,
        yield_: args.yield_,
        pricing_vol: args.pricing_vol.unwrap_or(args.vol),
        legs,
        paths: args.paths,
        seed: args.seed,
        steps_per_year: args.steps_per_year,
        cost_bps: args.cost_bps,
        fixed_fee: args.fixed_fee,
        policies,
        option_hedge,
        mark_model_vol: args.mark_vol == MarkArg::Model,
        vol_term_beta: args.vol_term_beta,
    })
}

fn read(file: &Path, flag: &str) -> Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("{flag} {}", file.display()))
}

/// The engine's error in the words of the flags.
fn flag_error(e: BacktestError, args: &BacktestArgs) -> anyhow::Error {
    match e {
        BacktestError::Config {
            field,
            value,
            expected,
        } => {
            let field = match field {
                "vol" if args.pricing_vol.is_some() => "pricing-vol",
                f => f,
            };
            anyhow!("--{field} {value}: {expected}")
        }
        BacktestError::Model(m) => {
            let (param, value, why) = match &m {
                ModelError::NotFinite { param, value, .. } => (*param, *value, "must be finite"),
                ModelError::OutOfRange {
                    param,
                    value,
                    expected,
                    ..
                } => (*param, *value, *expected),
            };
            let flag = match param {
                "spot" => "spot",
                "mu" => "drift",
                "sigma" => "vol",
                "lambda" => "jump-intensity",
                "jump_mean" => "jump-mean",
                "jump_sd" => "jump-sd",
                "v0" => "v0",
                "kappa" => "kappa",
                "theta" => "theta",
                "xi" => "vol-of-vol",
                "rho" => "rho",
                _ => return anyhow!(m),
            };
            anyhow!("--{flag} {value}: out of range, {why}")
        }
        BacktestError::Input { what: "path", .. } => {
            anyhow!("--path-file: {e}")
        }
        other => anyhow!(other),
    }
}

/// Runs the engine, drawing a progress bar on standard error when it is a terminal and the
/// run is long.
fn run_with_progress(cfg: &BacktestConfig) -> Result<Vec<PolicyReport>, BacktestError> {
    let paths = match cfg.market {
        Market::Path(_) => 1,
        _ => cfg.paths,
    };
    let horizon = cfg.legs.iter().map(|l| l.expiry).fold(0.0, f64::max);
    let work = paths as f64 * horizon * cfg.steps_per_year * cfg.policies.len() as f64;
    if !(io::stderr().is_terminal() && work > LONG_RUN) {
        return keel_engine::backtest::run(cfg, None);
    }
    let done = AtomicU64::new(0);
    let finished = AtomicBool::new(false);
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            let r = keel_engine::backtest::run(cfg, Some(&done));
            finished.store(true, Ordering::Release);
            r
        });
        let bar = indicatif::ProgressBar::new(paths);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} paths ({eta} left)",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        while !finished.load(Ordering::Acquire) {
            bar.set_position(done.load(Ordering::Relaxed));
            std::thread::sleep(Duration::from_millis(100));
        }
        bar.finish_and_clear();
        match worker.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

fn json(args: &BacktestArgs, r: &PolicyReport, elapsed: Duration) -> serde_json::Value {
    serde_json::json!({
        "policy": r.policy,
        "family": r.family,
        "model": args.model.name(),
        "paths": r.paths,
        "steps": r.steps,
        "seed": args.seed,
        "cost_bps": args.cost_bps,
        "option_value": r.option_value,
        "mean_cost_pv": r.mean_cost_pv,
        "std_cost_pv": r.std_cost_pv,
        "performance": r.performance,
        "cost_fv": r.cost_fv,
        "mean_trades": r.mean_trades,
        "mean_turnover": r.mean_turnover,
        "mean_fees": r.mean_fees,
        "mean_option_cost": r.mean_option_cost,
        "mean_option_trades": r.mean_option_trades,
        "mean_max_bucket_vega": r.mean_max_bucket_vega,
        "seconds": elapsed.as_secs_f64(),
    })
}

fn table(out: &mut String, args: &BacktestArgs, reports: &[PolicyReport], elapsed: Duration) {
    let Some(first) = reports.first() else {
        return;
    };
    let _ = writeln!(
        out,
        "keel backtest: {} model, {} path{}, {} steps, {} bps; option value {:.6}; {:.2} s",
        args.model.name(),
        first.paths,
        if first.paths == 1 { "" } else { "s" },
        first.steps,
        ryu::Buffer::new().format(args.cost_bps),
        first.option_value,
        elapsed.as_secs_f64()
    );
    let w = reports
        .iter()
        .map(|r| r.policy.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let single = first.cost_fv.is_some();
    let opts =
        args.gamma_band.is_some() || args.vega_band.is_some() || args.vega_bucket_band.is_some();
    let _ = writeln!(
        out,
        "{:<w$}  {:>12}  {:>12}  {:>11}  {:>9}  {:>11}  {:>10}{}{}",
        "policy",
        "mean_cost_pv",
        "std_cost_pv",
        "performance",
        "trades",
        "turnover",
        "fees",
        if opts {
            "    opt_cost  opt_trades  max_bucket_vega"
        } else {
            ""
        },
        if single { "       cost_fv" } else { "" }
    );
    for r in reports {
        let _ = write!(
            out,
            "{:<w$}  {:>12.6}  {:>12.6}  {:>11.5}  {:>9.2}  {:>11.4}  {:>10.6}",
            r.policy,
            r.mean_cost_pv,
            r.std_cost_pv,
            r.performance,
            r.mean_trades,
            r.mean_turnover,
            r.mean_fees
        );
        if opts {
            let _ = write!(
                out,
                "  {:>10.6}  {:>10.2}  {:>15.4}",
                r.mean_option_cost, r.mean_option_trades, r.mean_max_bucket_vega
            );
        }
        if let Some(fv) = r.cost_fv {
            let _ = write!(out, "  {fv:>12.6}");
        }
        out.push('\n');
    }
    if opts {
        compare_option_hedging(out, reports);
    }
    compare_frontiers(out, reports);
}

/// Per policy, the `+gv` run against the delta-only run: std reduction, extra trading cost
/// (fees + option costs) and change of the mean cost of writing and hedging.
pub fn option_hedging_gains(reports: &[PolicyReport]) -> Vec<(String, f64, f64, f64)> {
    reports
        .chunks(2)
        .filter(|p| p.len() == 2)
        .map(|p| {
            let (d, g) = (&p[0], &p[1]);
            let costs = |r: &PolicyReport| r.mean_fees + r.mean_option_cost;
            (
                d.policy.clone(),
                1.0 - g.std_cost_pv / d.std_cost_pv,
                costs(g) - costs(d),
                g.mean_cost_pv - d.mean_cost_pv,
            )
        })
        .collect()
}

fn compare_option_hedging(out: &mut String, reports: &[PolicyReport]) {
    let _ = writeln!(out, "\ngamma/vega hedging against delta only (same paths):");
    for (p, cut, extra, mean) in option_hedging_gains(reports) {
        let _ = writeln!(
            out,
            "  {p:<24} std {:+.1} %, fees + option costs {extra:+.6}, mean cost {mean:+.6} (PV)",
            -100.0 * cut
        );
    }
}

/// For each cost-aware family, the fees at which its frontier reaches the std of each
/// time-based policy (linear interpolation between its points, sorted by fees).
pub fn frontier_savings(reports: &[PolicyReport]) -> Vec<(String, String, f64, f64)> {
    let mut out = Vec::new();
    let families = families(reports);
    let Some((_, times)) = families.iter().find(|(f, _)| f == "time") else {
        return out;
    };
    for (fam, pts) in families.iter().filter(|(f, _)| f != "time") {
        for t in times {
            if let Some(fees) = fees_at_std(pts, t.std_cost_pv) {
                out.push((fam.clone(), t.policy.clone(), t.mean_fees, fees));
            }
        }
    }
    out
}

fn compare_frontiers(out: &mut String, reports: &[PolicyReport]) {
    let rows = frontier_savings(reports);
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nfees at which each family reaches a time policy's std:"
    );
    for (fam, policy, time_fees, fees) in rows {
        let _ = writeln!(
            out,
            "  {fam:<10} matches {policy:<24} fees {fees:>10.6} vs {time_fees:>10.6} ({:+.1} %)",
            100.0 * (fees / time_fees - 1.0)
        );
    }
}

/// Policies grouped by family, each group sorted by mean fees.
fn families(reports: &[PolicyReport]) -> Vec<(String, Vec<&PolicyReport>)> {
    let mut fams: Vec<(String, Vec<&PolicyReport>)> = Vec::new();
    for r in reports {
        match fams.iter_mut().find(|(f, _)| *f == r.family) {
            Some((_, v)) => v.push(r),
            None => fams.push((r.family.clone(), vec![r])),
        }
    }
    for (_, v) in &mut fams {
        v.sort_by(|a, b| a.mean_fees.total_cmp(&b.mean_fees));
    }
    fams
}

/// Fees at which the piecewise-linear frontier `pts` (sorted by fees) first reaches `std`.
fn fees_at_std(pts: &[&PolicyReport], std: f64) -> Option<f64> {
    for w in pts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let (lo, hi) = (
            a.std_cost_pv.min(b.std_cost_pv),
            a.std_cost_pv.max(b.std_cost_pv),
        );
        if (lo..=hi).contains(&std) && hi > lo {
            let f = (std - a.std_cost_pv) / (b.std_cost_pv - a.std_cost_pv);
            return Some(a.mean_fees + f * (b.mean_fees - a.mean_fees));
        }
    }
    pts.iter()
        .find(|p| p.std_cost_pv == std)
        .map(|p| p.mean_fees)
}

/// Line colours of the first families (distinct on white, then plotters' palette).
const FAMILY_COLORS: [plotters::style::RGBColor; 6] = [
    plotters::style::RGBColor(200, 30, 45),
    plotters::style::RGBColor(20, 130, 60),
    plotters::style::RGBColor(40, 80, 190),
    plotters::style::RGBColor(230, 120, 20),
    plotters::style::RGBColor(130, 50, 160),
    plotters::style::RGBColor(90, 90, 90),
];

/// Draws the frontier: one line with points per family, x mean fees, y std of cost.
pub fn plot_frontier(path: &Path, title: &str, reports: &[PolicyReport]) -> Result<()> {
    use plotters::prelude::*;
    let fams = families(reports);
    let xs = reports.iter().map(|r| r.mean_fees);
    let ys = reports.iter().map(|r| r.std_cost_pv);
    let (x0, x1) = (
        xs.clone().fold(f64::INFINITY, f64::min),
        xs.fold(0.0, f64::max),
    );
    let (y0, y1) = (
        ys.clone().fold(f64::INFINITY, f64::min),
        ys.fold(0.0, f64::max),
    );
    let pad = |lo: f64, hi: f64| {
        let d = (hi - lo).max(1e-9 * hi.abs().max(1.0)) * 0.08;
        ((lo - d).max(0.0), hi + d)
    };
    let (x0, x1) = pad(x0, x1);
    let (y0, y1) = pad(y0, y1);
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    let draw = |e: &dyn std::fmt::Display| anyhow!("drawing: {e}");
    root.fill(&WHITE).map_err(|e| draw(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| draw(&e))?;
    chart
        .configure_mesh()
        .x_desc("mean fees (PV)")
        .y_desc("std of hedging cost (PV)")
        .draw()
        .map_err(|e| draw(&e))?;
    for (i, (fam, pts)) in fams.iter().enumerate() {
        let color = FAMILY_COLORS
            .get(i)
            .map_or_else(|| Palette99::pick(i).to_rgba(), |c| c.to_rgba());
        let line: Vec<(f64, f64)> = pts.iter().map(|p| (p.mean_fees, p.std_cost_pv)).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(|e| draw(&e))?
            .label(fam.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                line.iter()
                    .map(|&(x, y)| Circle::new((x, y), 4, color.filled())),
            )
            .map_err(|e| draw(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| draw(&e))?;
    root.present().map_err(|e| draw(&e))?;
    Ok(())
}
