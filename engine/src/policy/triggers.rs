//! Hedge triggers (issue #5): when to rebalance the delta hedge of an options position, and to
//! what. A policy is a list of [`Trigger`]s; it hedges when any of them fires.
//!
//! Owns the trigger rules, their spec syntax ([`Trigger`]'s `FromStr`, [`parse_policy`]) and
//! the little state they keep between decisions ([`TriggerState`]). [`decide`] is a pure
//! function of (triggers, state, [`HedgeContext`]): deterministic and allocation-free, so the
//! backtest and the live pricer can call it per tick. It never prices anything except the
//! Zakamouline target, which reprices the context's legs with the scalar kernel
//! ([`crate::greeks::price_row`]) at the modified volatility.
//!
//! Conventions (HEDGING.md): the hedge is held in units of the underlying; the position's delta
//! and gamma are net of quantity (a written call has negative delta and gamma); the delta
//! target of the hedge is h* = −(position delta), so a written call is hedged long. Every band
//! below is a half-width around h*, in underlying units.
//!
//! | spec | fires when | trades to |
//! | --- | --- | --- |
//! | `band:DELTA` | \|h − h*\| > DELTA | h* |
//! | `time:INTERVAL` | INTERVAL years since the last hedge (or no hedge yet) | h* |
//! | `vol-band:BASE[:HALFLIFE]` | \|h − h*\| > BASE·σ̂/σ (σ̂ realised, EWMA) | h* |
//! | `ww:GAMMA` | \|h − h*\| > H (Whalley-Wilmott) | the nearest band edge |
//! | `zak:GAMMA` | \|h − h*_m\| > H0 + Hw (Zakamouline) | the nearest band edge |
//! | `cost:GAMMA` | ½·γ·ΔVar > κ·\|h* − h\|·S + fixed cost | h* |
//! | `every:N` | on every N-th decision (bench setting) | h*, and at least one lot (see below) |
//!
//! INTERVAL and HALFLIFE are years, or a number with a unit: `w` (1/52 year), `d` (1/365),
//! `h` (1/8760), `y` (1).
//!
//! `every:N` is for benchmarks (`keel-bench e2e`): it keeps hedge decisions frequent enough to
//! measure tick-to-trade however little the market moves. It fires on every N-th decision
//! (counted by [`decide`]) and trades to h*; when the hedge already sits on h*, the live pricer
//! still sends one lot toward h* (see [`TriggerState::every_fired`]), so every N-th repriced
//! tick goes through the risk gate and the exec path with a real order.
//!
//! When several triggers fire at once, the proposal closest to h* wins (the one that removes
//! the most delta risk); every hedge, whichever trigger made it, restarts the `time:` clock.

use core::fmt;
use core::str::FromStr;

use crate::greeks::{MAX_SIGMA, MIN_SIGMA, OptionRow, price_row};

/// One year in weeks, days and hours, for the INTERVAL units.
const WEEKS_PER_YEAR: f64 = 52.0;
const DAYS_PER_YEAR: f64 = 365.0;
const HOURS_PER_YEAR: f64 = 8760.0;

/// The default half-life of the realised-vol EWMA of `vol-band:` (one week).
pub const DEFAULT_HALFLIFE: f64 = 1.0 / WEEKS_PER_YEAR;

/// Zakamouline (2006) constants (HEDGING.md).
const ZAK_HW: f64 = 1.12;
const ZAK_HW_LAMBDA: f64 = 0.31;
const ZAK_HW_TAU: f64 = 0.05;
const ZAK_K: f64 = 4.76;
const ZAK_K_LAMBDA: f64 = 0.78;
const ZAK_K_TAU: f64 = -0.02;
const ZAK_K_GAMMA: f64 = 0.15;
/// The long-position modified variance σ²(1 + K) is floored at this fraction of σ² (K can
/// reach −1 for large costs or aversions, where the approximation has left its domain).
const ZAK_MIN_VAR_FACTOR: f64 = 1e-4;

/// One hedge trigger. Parameters are validated by [`Trigger::from_str`]; build variants by
/// hand only with finite, positive values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trigger {
    /// `band:DELTA`: a fixed band of half-width `delta` (underlying units) around h*; outside
    /// it, trade to h*.
    Band {
        /// Half-width, underlying units (> 0).
        delta: f64,
    },
    /// `time:INTERVAL`: trade to h* when at least `interval` years have passed since the last
    /// hedge, or when nothing has been hedged yet (the opening hedge).
    Time {
        /// Years between hedges (> 0).
        interval: f64,
    },
    /// `vol-band:BASE[:HALFLIFE]`: a band of half-width `base`·σ̂/σ around h*, σ̂ the
    /// realised volatility and σ the pricing volatility; outside it, trade to h*.
    ///
    /// σ̂² is an EWMA of the path's squared log returns per year: on each decision after the
    /// first, with r = ln(S/S_prev) and δt = t − t_prev > 0,
    /// w = 2^(−δt/halflife) and σ̂² ← w·σ̂² + (1 − w)·r²/δt; it starts at σ² (so the band
    /// starts at `base`), and a decision with δt ≤ 0 leaves it unchanged. The mean of the
    /// log return is not removed (it is O(δt), negligible against r² at hedging frequencies).
    VolBand {
        /// Half-width when realised equals pricing vol, underlying units (> 0).
        base: f64,
        /// Half-life of the EWMA weights, years (> 0).
        halflife: f64,
    },
    /// `ww:GAMMA`: the Whalley-Wilmott (1997) band H = (3·e^{−rτ}·κ·S·Γ²/(2γ))^{1/3} around
    /// h*, Γ the position's net gamma, κ the one-way proportional cost, γ = `aversion`;
    /// outside it, trade to the nearest band edge.
    WhalleyWilmott {
        /// Absolute risk aversion γ (> 0).
        aversion: f64,
    },
    /// `zak:GAMMA`: Zakamouline (2006). The band is centred on h*_m = −Δ(σ_m), the position's
    /// delta at the modified volatility σ_m, with half-width H0 + Hw:
    /// H0 = λ/(γ·S·σ²·τ), Hw = 1.12·λ^0.31·τ^0.05·(e^{−rτ}/σ)^0.25·(|Γ|/γ)^0.5,
    /// K = −4.76·λ^0.78·τ^−0.02·(e^{−rτ}/σ)^0.25·(γ·S²·|Γ|)^0.15 (K ≤ 0),
    /// σ_m² = σ²(1 − K) when the position is short gamma (a writer), σ²(1 + K) when long
    /// gamma (floored at 1e-4·σ²); λ = κ one-way, Γ the net gamma. Outside the band, trade to
    /// its nearest edge.
    ///
    /// Sign for long positions: the writer's vol is raised and the holder's lowered, the
    /// direction of Leland's adjustment (HEDGING.md) and the reading of the two public
    /// implementations we checked (see the module's tests); Zakamouline's paper itself could
    /// not be consulted.
    Zakamouline {
        /// Absolute risk aversion γ (> 0).
        aversion: f64,
    },
    /// `cost:GAMMA`: predictive cost versus risk. With m = h − h* the hedge's mismatch, the
    /// P&L of the hedged position over the horizon δ (years to the next decision) is
    /// m·δS + ½Γ·δS² − (carry terms) with δS ≈ S·σ·√δ·Z, so its variance is
    /// m²·S²·σ²·δ + ½·Γ²·S⁴·σ⁴·δ² (the cross term is E\[Z³\] = 0). Trading to h* sets m = 0 and
    /// leaves the gamma term alone, so it reduces the variance by ΔVar = m²·S²·σ²·δ. A
    /// mean-variance hedger with aversion γ values that at ½·γ·ΔVar (the certainty-equivalent
    /// gain of exponential utility for normal P&L); the trade costs κ·|m|·S plus the fixed cost.
    /// Fire when ½·γ·m²·S²·σ²·δ > κ·|m|·S + fixed, i.e. (fixed = 0) when
    /// |m| > 2κ/(γ·S·σ²·δ), and trade to h*.
    CostRisk {
        /// Absolute risk aversion γ (> 0).
        aversion: f64,
    },
    /// `every:N`: fire on every N-th decision and trade to h* (a bench setting; see the
    /// module's doc).
    Every {
        /// Decisions per hedge (≥ 1).
        decisions: u64,
    },
}

/// A trigger or policy spec that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad hedge trigger '{spec}': {reason}; the forms are {FORMS}")]
pub struct TriggerParseError {
    /// The spec as given.
    pub spec: String,
    /// What was wrong with it.
    pub reason: String,
}

/// The accepted trigger forms, for error messages and help text.
pub const FORMS: &str = "band:DELTA, time:INTERVAL, vol-band:BASE[:HALFLIFE], ww:GAMMA, \
                         zak:GAMMA, cost:GAMMA, every:N (INTERVAL and HALFLIFE in years or with a unit: \
                         1w, 1d, 1h; several joined with '+' hedge when any fires)";

fn parse_err(spec: &str, reason: impl Into<String>) -> TriggerParseError {
    TriggerParseError {
        spec: spec.to_string(),
        reason: reason.into(),
    }
}

/// A positive finite number.
fn positive(spec: &str, name: &str, s: &str) -> Result<f64, TriggerParseError> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(parse_err(
            spec,
            format!("{name} must be a positive number, got '{s}'"),
        )),
    }
}

/// Years from `0.02`, `1w`, `2d`, `4h`, `1y`.
fn years(spec: &str, name: &str, s: &str) -> Result<f64, TriggerParseError> {
    let s = s.trim();
    let (num, per_year) = match s.char_indices().last() {
        Some((i, 'w')) => (&s[..i], WEEKS_PER_YEAR),
        Some((i, 'd')) => (&s[..i], DAYS_PER_YEAR),
        Some((i, 'h')) => (&s[..i], HOURS_PER_YEAR),
        Some((i, 'y')) => (&s[..i], 1.0),
        _ => (s, 1.0),
    };
    match num.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x / per_year),
        _ => Err(parse_err(
            spec,
            format!(
                "{name} must be a positive number of years or a number with a unit \
                 (w, d, h), got '{s}'"
            ),
        )),
    }
}

impl FromStr for Trigger {
    type Err = TriggerParseError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut parts = spec.trim().split(':');
        let kind = parts.next().unwrap_or("");
        let args: [Option<&str>; 3] = [parts.next(), parts.next(), parts.next()];
        let arity = |min: usize, max: usize| -> Result<(), TriggerParseError> {
            let n = args.iter().flatten().count();
            if n < min || n > max || args[2].is_some() && max < 3 {
                Err(parse_err(
                    spec,
                    if n < min {
                        "missing parameter".to_string()
                    } else {
                        "too many parameters".to_string()
                    },
                ))
            } else {
                Ok(())
            }
        };
        let first = args[0].unwrap_or("");
        match kind {
            "band" => {
                arity(1, 1)?;
                Ok(Trigger::Band {
                    delta: positive(spec, "DELTA", first)?,
                })
            }
            "time" => {
                arity(1, 1)?;
                Ok(Trigger::Time {
                    interval: years(spec, "INTERVAL", first)?,
                })
            }
            "vol-band" => {
                arity(1, 2)?;
                Ok(Trigger::VolBand {
                    base: positive(spec, "BASE", first)?,
                    halflife: match args[1] {
                        Some(h) => years(spec, "HALFLIFE", h)?,
                        None => DEFAULT_HALFLIFE,
                    },
                })
            }
            "ww" => {
                arity(1, 1)?;
                Ok(Trigger::WhalleyWilmott {
                    aversion: positive(spec, "GAMMA", first)?,
                })
            }
            "zak" => {
                arity(1, 1)?;
                Ok(Trigger::Zakamouline {
                    aversion: positive(spec, "GAMMA", first)?,
                })
            }
            "every" => {
                arity(1, 1)?;
                match first.parse::<u64>() {
                    Ok(n) if n >= 1 => Ok(Trigger::Every { decisions: n }),
                    _ => Err(parse_err(
                        spec,
                        format!("N must be a whole number ≥ 1 (got '{first}')"),
                    )),
                }
            }
            "cost" => {
                arity(1, 1)?;
                Ok(Trigger::CostRisk {
                    aversion: positive(spec, "GAMMA", first)?,
                })
            }
            "" => Err(parse_err(spec, "empty trigger")),
            other => Err(parse_err(spec, format!("unknown trigger kind '{other}'"))),
        }
    }
}

impl fmt::Display for Trigger {
    /// The canonical spec (durations in years), which parses back to the same trigger.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Trigger::Band { delta } => write!(f, "band:{delta}"),
            Trigger::Time { interval } => write!(f, "time:{interval}"),
            Trigger::VolBand { base, halflife } => write!(f, "vol-band:{base}:{halflife}"),
            Trigger::WhalleyWilmott { aversion } => write!(f, "ww:{aversion}"),
            Trigger::Zakamouline { aversion } => write!(f, "zak:{aversion}"),
            Trigger::CostRisk { aversion } => write!(f, "cost:{aversion}"),
            Trigger::Every { decisions } => write!(f, "every:{decisions}"),
        }
    }
}

impl Trigger {
    /// The spec keyword (`band`, `time`, `vol-band`, `ww`, `zak`, `cost`): a policy family.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Band { .. } => "band",
            Trigger::Time { .. } => "time",
            Trigger::VolBand { .. } => "vol-band",
            Trigger::WhalleyWilmott { .. } => "ww",
            Trigger::Zakamouline { .. } => "zak",
            Trigger::CostRisk { .. } => "cost",
            Trigger::Every { .. } => "every",
        }
    }
}

/// Reads a policy: one or more trigger specs joined with `+` (`ww:1`, `band:0.1+time:1w`).
pub fn parse_policy(spec: &str) -> Result<Vec<Trigger>, TriggerParseError> {
    if spec.trim().is_empty() {
        return Err(parse_err(spec, "empty policy"));
    }
    spec.split('+').map(str::parse).collect()
}

/// One option leg of the position, for triggers that reprice (Zakamouline's modified-vol
/// delta): the row at the current spot and time to expiry, and its signed quantity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PositionLeg {
    /// The option at the current spot and τ (BSM or Black-76); rows must be valid
    /// ([`crate::greeks::validate`]); an expired row (t ≤ 0) contributes its intrinsic delta.
    pub row: OptionRow,
    /// Signed quantity (negative = written).
    pub qty: f64,
}

/// What a trigger sees at one decision. All Greeks are the position's, net of quantity.
#[derive(Clone, Copy, Debug)]
pub struct HedgeContext<'a> {
    /// Time of the decision, years (any origin; only differences are used).
    pub t: f64,
    /// Spot of the underlying.
    pub spot: f64,
    /// Years to expiry (for a book: a representative τ, e.g. |Γ|-weighted).
    pub tau: f64,
    /// Continuously compounded rate.
    pub rate: f64,
    /// Continuous yield of the underlying.
    pub yield_: f64,
    /// Pricing volatility.
    pub sigma: f64,
    /// The position's delta (underlying units); the hedge target is its negative.
    pub position_delta: f64,
    /// The position's gamma.
    pub gamma: f64,
    /// The position's vanna (d delta / d sigma), used by `zak:` only when `legs` is empty.
    pub vanna: f64,
    /// The hedge held now, underlying units.
    pub hedge: f64,
    /// One-way proportional cost of trading the hedge (10 bps = 0.001).
    pub kappa: f64,
    /// Fixed cost per hedge trade, quote currency.
    pub fixed_cost: f64,
    /// Years to the next decision (`cost:`'s horizon).
    pub horizon: f64,
    /// The position's legs at the current spot and τ (`zak:` reprices them); may be empty.
    pub legs: &'a [PositionLeg],
}

impl HedgeContext<'_> {
    /// The delta target h* = −(position delta).
    pub fn target(&self) -> f64 {
        -self.position_delta
    }
}

/// What the triggers remember between decisions: the last hedge's time, the last observed
/// spot and time, and one realised-variance EWMA per `vol-band:` trigger.
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerState {
    last_hedge_t: Option<f64>,
    last_obs: Option<(f64, f64)>,
    ewma_var: Vec<f64>,
    decisions: u64,
    every_fired: bool,
}

impl TriggerState {
    /// A fresh state for `triggers` (allocates once; [`decide`] never does).
    pub fn new(triggers: &[Trigger]) -> Self {
        Self {
            last_hedge_t: None,
            last_obs: None,
            ewma_var: vec![f64::NAN; triggers.len()],
            decisions: 0,
            every_fired: false,
        }
    }

    /// Back to fresh, keeping the storage (for the next path of a backtest).
    pub fn reset(&mut self) {
        self.last_hedge_t = None;
        self.last_obs = None;
        self.ewma_var.fill(f64::NAN);
        self.decisions = 0;
        self.every_fired = false;
    }

    /// Whether an `every:N` trigger fired at the last decision (then the caller trades even
    /// when h* is within a lot of the hedge: one lot toward h*).
    pub fn every_fired(&self) -> bool {
        self.every_fired
    }

    /// Time of the last hedge, if any.
    pub fn last_hedge_t(&self) -> Option<f64> {
        self.last_hedge_t
    }

    /// Realised volatility of the `i`-th trigger's EWMA (NaN before its first decision or if
    /// trigger `i` is not a `vol-band:`).
    pub fn realised_vol(&self, i: usize) -> f64 {
        self.ewma_var.get(i).copied().unwrap_or(f64::NAN).sqrt()
    }
}

/// The Whalley-Wilmott half-width H = (3·e^{−rτ}·κ·S·Γ²/(2γ))^{1/3} (HEDGING.md).
pub fn ww_half_width(ctx: &HedgeContext<'_>, aversion: f64) -> f64 {
    let disc = (-ctx.rate * ctx.tau.max(0.0)).exp();
    (3.0 * disc * ctx.kappa * ctx.spot * ctx.gamma * ctx.gamma / (2.0 * aversion)).cbrt()
}

/// Zakamouline's band for the position: (centre h*_m, half-width H0 + Hw, σ_m).
pub fn zak_band(ctx: &HedgeContext<'_>, aversion: f64) -> (f64, f64, f64) {
    let (lambda, s, sigma, g) = (ctx.kappa, ctx.spot, ctx.sigma, aversion);
    let tau = ctx.tau.max(1e-12);
    let abs_gamma = ctx.gamma.abs();
    let e_sig = ((-ctx.rate * tau).exp() / sigma).powf(0.25);
    let h0 = lambda / (g * s * sigma * sigma * tau);
    let hw =
        ZAK_HW * lambda.powf(ZAK_HW_LAMBDA) * tau.powf(ZAK_HW_TAU) * e_sig * (abs_gamma / g).sqrt();
    let k = -ZAK_K
        * lambda.powf(ZAK_K_LAMBDA)
        * tau.powf(ZAK_K_TAU)
        * e_sig
        * (g * s * s * abs_gamma).powf(ZAK_K_GAMMA);
    let var_factor = if ctx.gamma < 0.0 {
        1.0 - k
    } else {
        (1.0 + k).max(ZAK_MIN_VAR_FACTOR)
    };
    let sigma_m = (sigma * var_factor.sqrt()).clamp(MIN_SIGMA, MAX_SIGMA);
    let delta_m = if ctx.legs.is_empty() {
        // First order in the vol shift when the legs are not available.
        ctx.position_delta + ctx.vanna * (sigma_m - sigma)
    } else {
        ctx.legs
            .iter()
            .map(|l| {
                let row = OptionRow {
                    sigma: sigma_m,
                    ..l.row
                };
                l.qty * price_row(&row).delta
            })
            .sum()
    };
    (-delta_m, h0 + hw, sigma_m)
}

/// Clamps `hedge` into [centre − half, centre + half]: the nearest band edge, or None inside.
fn to_band_edge(hedge: f64, centre: f64, half: f64) -> Option<f64> {
    if !(half.is_finite() && half >= 0.0) {
        return None;
    }
    if hedge > centre + half {
        Some(centre + half)
    } else if hedge < centre - half {
        Some(centre - half)
    } else {
        None
    }
}

/// One trigger's proposal, or None.
fn propose(
    trigger: &Trigger,
    ewma_var: f64,
    last_hedge_t: Option<f64>,
    decisions: u64,
    ctx: &HedgeContext<'_>,
) -> Option<f64> {
    let target = ctx.target();
    let off = (ctx.hedge - target).abs();
    match *trigger {
        Trigger::Band { delta } => (off > delta).then_some(target),
        Trigger::Time { interval } => match last_hedge_t {
            None => Some(target),
            // A relative tolerance so that a grid of k·interval fires on every k-th point.
            Some(last) => (ctx.t - last >= interval * (1.0 - 1e-9)).then_some(target),
        },
        Trigger::VolBand { base, .. } => {
            let ratio = ewma_var.sqrt() / ctx.sigma;
            let half = if ratio.is_finite() {
                base * ratio
            } else {
                base
            };
            (off > half).then_some(target)
        }
        Trigger::WhalleyWilmott { aversion } => {
            to_band_edge(ctx.hedge, target, ww_half_width(ctx, aversion))
        }
        Trigger::Zakamouline { aversion } => {
            let (centre, half, _) = zak_band(ctx, aversion);
            to_band_edge(ctx.hedge, centre, half)
        }
        Trigger::CostRisk { aversion } => {
            let h = ctx.horizon.max(0.0);
            let risk = 0.5 * aversion * off * off * ctx.spot * ctx.spot * ctx.sigma * ctx.sigma * h;
            let cost = ctx.kappa * off * ctx.spot + ctx.fixed_cost;
            (off > 0.0 && risk > cost).then_some(target)
        }
        Trigger::Every { decisions: n } => decisions.is_multiple_of(n.max(1)).then_some(target),
    }
}

/// Runs a policy at one decision: updates `state` with the observation (spot, t), asks every
/// trigger, and returns the new hedge position (underlying units) if any fires, else None.
/// When several fire, the proposal closest to h* wins. A proposal equal to the current hedge
/// (within 1e-12 relative) is no trade. Never allocates.
pub fn decide(
    triggers: &[Trigger],
    state: &mut TriggerState,
    ctx: &HedgeContext<'_>,
) -> Option<f64> {
    // Realised variance, per vol-band trigger.
    let obs = state.last_obs;
    for (i, trig) in triggers.iter().enumerate() {
        if let Trigger::VolBand { halflife, .. } = *trig {
            let Some(v) = state.ewma_var.get_mut(i) else {
                continue;
            };
            if v.is_nan() {
                *v = ctx.sigma * ctx.sigma;
            }
            if let Some((t_prev, s_prev)) = obs {
                let dt = ctx.t - t_prev;
                if dt > 0.0 && s_prev > 0.0 && ctx.spot > 0.0 {
                    let r = (ctx.spot / s_prev).ln();
                    let w = (-dt / halflife * core::f64::consts::LN_2).exp();
                    *v = w * *v + (1.0 - w) * r * r / dt;
                }
            }
        }
    }
    state.last_obs = Some((ctx.t, ctx.spot));
    state.decisions += 1;
    state.every_fired = false;

    let target = ctx.target();
    let mut best: Option<f64> = None;
    for (i, trig) in triggers.iter().enumerate() {
        let ewma = state.ewma_var.get(i).copied().unwrap_or(f64::NAN);
        let p = propose(trig, ewma, state.last_hedge_t, state.decisions, ctx);
        if p.is_some() && matches!(trig, Trigger::Every { .. }) {
            state.every_fired = true;
        }
        if let Some(p) = p
            && p.is_finite()
            && best.is_none_or(|b| (p - target).abs() < (b - target).abs())
        {
            best = Some(p);
        }
    }
    let new = best?;
    state.last_hedge_t = Some(ctx.t);
    let scale = 1.0 + ctx.hedge.abs() + target.abs();
    ((new - ctx.hedge).abs() > 1e-12 * scale).then_some(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::greeks::{OptionKind, greeks_one};

    /// One written call at spot `s`.
    fn written(s: f64, k: f64, tau: f64, sigma: f64, r: f64) -> [PositionLeg; 1] {
        [PositionLeg {
            row: OptionRow::bsm(OptionKind::Call, s, k, tau, r, 0.0, sigma),
            qty: -1.0,
        }]
    }

    /// The context of `legs` (all at one spot, τ, r and σ), hedge `h`, one-way cost κ.
    fn ctx_of(legs: &[PositionLeg], h: f64, kappa: f64) -> HedgeContext<'_> {
        let row = legs[0].row;
        let (mut d, mut g, mut v) = (0.0, 0.0, 0.0);
        for l in legs {
            let x = greeks_one(&l.row).unwrap();
            d += l.qty * x.delta;
            g += l.qty * x.gamma;
            v += l.qty * x.vanna;
        }
        HedgeContext {
            t: 0.0,
            spot: row.s,
            tau: row.t,
            rate: row.r,
            yield_: 0.0,
            sigma: row.sigma,
            position_delta: d,
            gamma: g,
            vanna: v,
            hedge: h,
            kappa,
            fixed_cost: 0.0,
            horizon: 1.0 / 365.0,
            legs,
        }
    }

    fn one(spec: &str) -> Vec<Trigger> {
        parse_policy(spec).unwrap()
    }

    #[test]
    fn specs_parse_with_units_and_print_back() {
        assert_eq!(one("band:0.1"), [Trigger::Band { delta: 0.1 }]);
        assert_eq!(
            one("time:1w"),
            [Trigger::Time {
                interval: 1.0 / 52.0
            }]
        );
        assert_eq!(
            one("time:1d"),
            [Trigger::Time {
                interval: 1.0 / 365.0
            }]
        );
        assert_eq!(
            one("time:4h"),
            [Trigger::Time {
                interval: 4.0 / 8760.0
            }]
        );
        assert_eq!(one("time:0.25"), [Trigger::Time { interval: 0.25 }]);
        assert_eq!(
            one("vol-band:0.05"),
            [Trigger::VolBand {
                base: 0.05,
                halflife: DEFAULT_HALFLIFE
            }]
        );
        assert_eq!(
            one("vol-band:0.05:2d"),
            [Trigger::VolBand {
                base: 0.05,
                halflife: 2.0 / 365.0
            }]
        );
        assert_eq!(
            one("ww:1+time:1w"),
            [
                Trigger::WhalleyWilmott { aversion: 1.0 },
                Trigger::Time {
                    interval: 1.0 / 52.0
                }
            ]
        );
        assert_eq!(one("zak:2"), [Trigger::Zakamouline { aversion: 2.0 }]);
        assert_eq!(one("cost:3"), [Trigger::CostRisk { aversion: 3.0 }]);
        for t in one("band:0.1+time:1d+vol-band:0.2:1w+ww:1+zak:0.5+cost:2") {
            assert_eq!(t.to_string().parse::<Trigger>().unwrap(), t);
        }
    }

    #[test]
    fn bad_specs_name_the_spec_and_list_the_forms() {
        for (spec, why) in [
            ("band", "missing parameter"),
            ("band:-1", "DELTA must be a positive number"),
            ("band:x", "DELTA must be a positive number"),
            ("band:1:2", "too many parameters"),
            ("time:0", "INTERVAL must be"),
            ("time:1m", "INTERVAL must be"),
            ("vol-band:0.1:2:3", "too many parameters"),
            ("ww:nan", "GAMMA must be"),
            ("zak:inf", "GAMMA must be"),
            ("gamma:1", "unknown trigger kind 'gamma'"),
            ("", "empty policy"),
            ("ww:1+", "empty trigger"),
        ] {
            let e = parse_policy(spec).unwrap_err().to_string();
            assert!(e.contains(why), "{spec}: {e}");
            assert!(e.contains("band:DELTA") && e.contains("zak:GAMMA"), "{e}");
        }
        let e = parse_policy("band:-1").unwrap_err().to_string();
        assert!(e.starts_with("bad hedge trigger 'band:-1'"), "{e}");
    }

    #[test]
    fn band_trades_to_target_outside_only() {
        let trig = one("band:0.1");
        let mut st = TriggerState::new(&trig);
        let legs = written(100.0, 100.0, 0.5, 0.2, 0.0);
        let ctx = ctx_of(&legs, 0.0, 0.0);
        let target = ctx.target();
        assert!(target > 0.5, "a written ATM call is hedged long ({target})");
        assert_eq!(decide(&trig, &mut st, &ctx), Some(target));
        let inside = HedgeContext {
            hedge: target - 0.099,
            ..ctx
        };
        assert_eq!(decide(&trig, &mut st, &inside), None);
        let above = HedgeContext {
            hedge: target + 0.1001,
            ..ctx
        };
        assert_eq!(decide(&trig, &mut st, &above), Some(target));
    }

    #[test]
    fn every_fires_on_every_nth_decision_even_on_the_target() {
        let trig = one("every:3");
        assert_eq!(trig, [Trigger::Every { decisions: 3 }]);
        assert_eq!(trig[0].to_string(), "every:3");
        for bad in ["every:0", "every:1.5", "every:-2", "every:"] {
            assert!(parse_policy(bad).is_err(), "{bad}");
        }
        let mut st = TriggerState::new(&trig);
        let legs = written(100.0, 100.0, 0.5, 0.2, 0.0);
        let off = ctx_of(&legs, 0.3, 0.0);
        let fired: Vec<bool> = (0..6)
            .map(|_| decide(&trig, &mut st, &off).is_some())
            .collect();
        assert_eq!(fired, [false, false, true, false, false, true]);
        // On the target: no trade from `decide`, but `every_fired` tells the caller to send
        // its one lot.
        let on = HedgeContext {
            hedge: off.target(),
            ..off
        };
        let flags: Vec<(bool, bool)> = (0..3)
            .map(|_| (decide(&trig, &mut st, &on).is_some(), st.every_fired()))
            .collect();
        assert_eq!(flags, [(false, false), (false, false), (false, true)]);
        st.reset();
        assert!(!st.every_fired());
    }

    #[test]
    fn time_fires_at_open_then_every_interval_since_the_last_hedge() {
        let trig = one("time:1w");
        let mut st = TriggerState::new(&trig);
        let legs = written(100.0, 100.0, 0.5, 0.2, 0.0);
        let base = ctx_of(&legs, 0.3, 0.0);
        let at = |t: f64| HedgeContext { t, ..base };
        // Opening hedge.
        assert_eq!(decide(&trig, &mut st, &at(0.0)), Some(base.target()));
        assert_eq!(st.last_hedge_t(), Some(0.0));
        // A grid of 1/104 years: every second point.
        let dt = 1.0 / 104.0;
        let fired: Vec<bool> = (1..=6)
            .map(|i| decide(&trig, &mut st, &at(i as f64 * dt)).is_some())
            .collect();
        assert_eq!(fired, [false, true, false, true, false, true]);
        // At the target already: the clock restarts but there is no trade.
        let mut st = TriggerState::new(&trig);
        let on = HedgeContext {
            hedge: base.target(),
            ..base
        };
        assert_eq!(decide(&trig, &mut st, &on), None);
        assert_eq!(st.last_hedge_t(), Some(0.0));
    }

    #[test]
    fn vol_band_follows_the_documented_ewma() {
        let trig = one("vol-band:0.1:1d");
        let mut st = TriggerState::new(&trig);
        let legs = written(100.0, 100.0, 0.5, 0.2, 0.0);
        let base = ctx_of(&legs, 0.0, 0.0);
        let target = base.target();
        // First decision: σ̂ = σ, band 0.1; hedge 0.09 off: nothing.
        let c0 = HedgeContext {
            hedge: target - 0.09,
            ..base
        };
        assert_eq!(decide(&trig, &mut st, &c0), None);
        assert!((st.realised_vol(0) - 0.2).abs() < 1e-15);
        // One day later a 3 % move: w = 2^-1 = 0.5, σ̂² = 0.5·0.04 + 0.5·ln(1.03)²·365.
        let dt = 1.0 / 365.0;
        let c1 = HedgeContext {
            t: dt,
            spot: 103.0,
            ..c0
        };
        let r = 1.03f64.ln();
        let var = 0.5 * 0.04 + 0.5 * r * r / dt;
        // The band widened to 0.1·σ̂/σ > 0.09: still nothing.
        assert_eq!(decide(&trig, &mut st, &c1), None);
        assert!((st.realised_vol(0) - var.sqrt()).abs() < 1e-12);
        assert!(var.sqrt() > 0.2);
        // Ten quiet days: σ̂ falls far below σ, the band shrinks below 0.09 and it fires.
        let mut fired = None;
        for i in 2..12 {
            let c = HedgeContext {
                t: i as f64 * dt,
                spot: 103.0,
                ..c0
            };
            fired = fired.or(decide(&trig, &mut st, &c));
        }
        assert_eq!(fired, Some(target));
        assert!(st.realised_vol(0) < 0.2 * 0.9);
    }

    /// pfhedge's WhalleyWilmott doc-test (HEDGING.md): K = 1, τ = 0.1, σ = 0.2, c = 1e-5,
    /// a = 1, previous hedge 0.5, r = 0.
    #[test]
    fn whalley_wilmott_matches_pfhedge() {
        let trig = one("ww:1");
        let log_m = [-0.05, -0.01, 0.0, 0.01, 0.05];
        let deltas = [0.2239, 0.4497, 0.5126, 0.5752, 0.7945];
        let hedges = [0.2946, 0.5000, 0.5000, 0.5000, 0.7284];
        for ((lm, d), h) in log_m.iter().zip(deltas).zip(hedges) {
            let legs = written(f64::exp(*lm), 1.0, 0.1, 0.2, 0.0);
            let ctx = ctx_of(&legs, 0.5, 1e-5);
            assert!(
                (ctx.target() - d).abs() < 5e-5,
                "delta {} vs {d}",
                ctx.target()
            );
            let mut st = TriggerState::new(&trig);
            let got = decide(&trig, &mut st, &ctx).unwrap_or(0.5);
            assert!((got - h).abs() < 5e-5, "log-moneyness {lm}: {got} vs {h}");
        }
    }

    #[test]
    fn zakamouline_band_and_modified_vol() {
        let (s, k, tau, sigma, r, kappa, g) = (100.0, 100.0, 0.25, 0.2, 0.01, 0.001, 0.5);
        let legs = written(s, k, tau, sigma, r);
        let ctx = ctx_of(&legs, 0.0, kappa);
        let gam = ctx.gamma.abs();
        // By hand from HEDGING.md.
        let e = ((-r * tau).exp() / sigma).powf(0.25);
        let h0 = kappa / (g * s * sigma * sigma * tau);
        let hw = 1.12 * kappa.powf(0.31) * tau.powf(0.05) * e * (gam / g).sqrt();
        let kk = -4.76 * kappa.powf(0.78) * tau.powf(-0.02) * e * (g * s * s * gam).powf(0.15);
        assert!(kk < 0.0);
        let (centre, half, sigma_m) = zak_band(&ctx, g);
        assert!((half - (h0 + hw)).abs() < 1e-12);
        // The writer's vol is raised: σ_m² = σ²(1 − K).
        assert!((sigma_m - sigma * (1.0 - kk).sqrt()).abs() < 1e-12);
        let d_m = greeks_one(&OptionRow::bsm(
            OptionKind::Call,
            s,
            k,
            tau,
            r,
            0.0,
            sigma_m,
        ))
        .unwrap()
        .delta;
        assert!((centre - d_m).abs() < 1e-12);
        // Trade from 0 to the lower edge.
        let trig = one("zak:0.5");
        let mut st = TriggerState::new(&trig);
        let got = decide(&trig, &mut st, &ctx).unwrap();
        assert!((got - (centre - half)).abs() < 1e-12);
        // The holder's vol is lowered: σ_m² = σ²(1 + K); hedge short.
        let long_legs = [PositionLeg {
            qty: 1.0,
            ..legs[0]
        }];
        let long = HedgeContext {
            position_delta: -ctx.position_delta,
            gamma: gam,
            vanna: -ctx.vanna,
            legs: &long_legs,
            ..ctx
        };
        let (c_long, half_long, sm_long) = zak_band(&long, g);
        assert!((sm_long - sigma * (1.0 + kk).sqrt()).abs() < 1e-12);
        assert!((half_long - half).abs() < 1e-15);
        let d_long = greeks_one(&OptionRow::bsm(
            OptionKind::Call,
            s,
            k,
            tau,
            r,
            0.0,
            sm_long,
        ))
        .unwrap()
        .delta;
        assert!((c_long + d_long).abs() < 1e-12);
        // Without legs the first-order fallback is close to the repriced centre.
        let no_legs = HedgeContext { legs: &[], ..ctx };
        let (c_fo, _, _) = zak_band(&no_legs, g);
        assert!((c_fo - centre).abs() < 2e-3, "{c_fo} vs {centre}");
    }

    #[test]
    fn cost_trigger_fires_exactly_past_its_threshold() {
        let trig = one("cost:2");
        let legs = written(100.0, 100.0, 0.5, 0.2, 0.0);
        let mut ctx = ctx_of(&legs, 0.0, 0.001);
        ctx.horizon = 1.0 / 52.0;
        // |m| > 2κ/(γ·S·σ²·δ) = 0.002/(2·100·0.04/52) = 0.013.
        let m_star = 2.0 * 0.001 / (2.0 * 100.0 * 0.04 * ctx.horizon);
        assert!((m_star - 0.013).abs() < 1e-12);
        let target = ctx.target();
        let mut st = TriggerState::new(&trig);
        let c = HedgeContext {
            hedge: target + 0.99 * m_star,
            ..ctx
        };
        assert_eq!(decide(&trig, &mut st, &c), None);
        let c = HedgeContext {
            hedge: target - 1.01 * m_star,
            ..ctx
        };
        assert_eq!(decide(&trig, &mut st, &c), Some(target));
        // A fixed cost raises the threshold: ½γm²S²σ²δ > κ|m|S + F.
        let f = 0.01;
        let c = HedgeContext {
            hedge: target - 1.01 * m_star,
            fixed_cost: f,
            ..ctx
        };
        assert_eq!(decide(&trig, &mut st, &c), None);
        let a = 0.5 * 2.0 * 100.0 * 100.0 * 0.04 * ctx.horizon;
        let m_f = (0.1 + (0.01 + 4.0 * a * f).sqrt()) / (2.0 * a);
        let c = HedgeContext {
            hedge: target - 1.001 * m_f,
            fixed_cost: f,
            ..ctx
        };
        assert_eq!(decide(&trig, &mut st, &c), Some(target));
        let c = HedgeContext {
            hedge: target - 0.999 * m_f,
            fixed_cost: f,
            ..ctx
        };
        assert_eq!(decide(&trig, &mut st, &c), None);
    }

    #[test]
    fn combined_policy_takes_the_proposal_closest_to_target() {
        // ww trades to the edge, band to the centre: when both fire, the centre wins.
        let trig = one("ww:1+band:0.3");
        let legs = written(100.0, 100.0, 0.5, 0.2, 0.0);
        let ctx = ctx_of(&legs, 0.0, 0.001);
        let target = ctx.target();
        let mut st = TriggerState::new(&trig);
        assert_eq!(decide(&trig, &mut st, &ctx), Some(target));
        // Only ww fires: to the edge.
        let h = ww_half_width(&ctx, 1.0);
        assert!(h < 0.2, "{h}");
        let c = HedgeContext {
            hedge: target - 0.2,
            ..ctx
        };
        let got = decide(&trig, &mut st, &c).unwrap();
        assert!((got - (target - h)).abs() < 1e-12);
    }
}
