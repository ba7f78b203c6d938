//! The backtest against theory (HEDGING.md): the discrete-hedging error of Kamal & Derman,
//! convergence of the mean hedging cost to the option's value, pfhedge's Whalley-Wilmott
//! vector, Leland's adjusted volatility, and the accounting to the cent on a hand-computed
//! three-step path. Monte Carlo tolerances are several standard errors wide; no timing.

use keel_engine::backtest::{BacktestConfig, Leg, Market, PolicyReport, RecordedPath, run};
use keel_engine::greeks::{OptionKind, OptionRow, greeks_one};
use keel_engine::policy::triggers::{
    HedgeContext, PositionLeg, TriggerState, decide, parse_policy,
};

const S0: f64 = 100.0;
const SIGMA: f64 = 0.2;

fn written_call(expiry: f64) -> Vec<Leg> {
    vec![Leg {
        kind: OptionKind::Call,
        strike: S0,
        expiry,
        qty: -1.0,
    }]
}

/// A GBM run of `policies` (no drift), the written ATM call of expiry `t`.
fn gbm(
    t: f64,
    steps: u32,
    paths: u64,
    rate: f64,
    yield_: f64,
    cost_bps: f64,
    policies: &[String],
) -> BacktestConfig {
    BacktestConfig {
        market: Market::Gbm {
            mu: 0.0,
            sigma: SIGMA,
        },
        spot: S0,
        rate,
        yield_,
        pricing_vol: SIGMA,
        legs: written_call(t),
        paths,
        seed: 2024,
        steps_per_year: f64::from(steps) / t,
        cost_bps,
        fixed_fee: 0.0,
        policies: policies.iter().map(|p| p.parse().unwrap()).collect(),
        option_hedge: None,
        mark_model_vol: false,
        vol_term_beta: 0.0,
    }
}

fn one(cfg: &BacktestConfig) -> PolicyReport {
    run(cfg, None).unwrap().remove(0)
}

fn bs(t: f64, r: f64, q: f64, sigma: f64) -> keel_engine::greeks::GreekValues {
    greeks_one(&OptionRow::bsm(OptionKind::Call, S0, S0, t, r, q, sigma)).unwrap()
}

/// Kamal & Derman: std ≈ √(π/4)·σ·vega/√N at the money with r = 0, and std·√N roughly
/// constant. The formula is asymptotic: this Monte Carlo (and an independent plain-Python one,
/// 200k paths) finds it 7.8 % high at N = 4 and 4.8 % high at N = 13 (HEDGING.md: "about 9 %"
/// and "within 5 %"), so N = 13 is checked against 6 % (the true gap is too close to 5 % for a
/// sampling tolerance), N ≥ 26 against 5 %, and the gap must shrink as N grows.
#[test]
fn discrete_hedging_error_matches_kamal_derman() {
    let t = 1.0;
    let vega = bs(t, 0.0, 0.0, SIGMA).vega;
    let mut ratios = Vec::new();
    let mut scaled = Vec::new();
    for n in [4u32, 13, 26, 52, 104] {
        let policy = format!("time:{}", t / f64::from(n));
        let r = one(&gbm(t, n, 40_000, 0.0, 0.0, 0.0, &[policy]));
        // A hedge already at its target (a delta saturated at 0 or 1) is no trade.
        assert!(r.mean_trades <= f64::from(n) && r.mean_trades > 0.98 * f64::from(n));
        let theory = (std::f64::consts::PI / 4.0).sqrt() * SIGMA * vega / f64::from(n).sqrt();
        let ratio = r.std_cost_pv / theory;
        eprintln!(
            "N = {n}: std {:.4}, theory {theory:.4}, ratio {ratio:.4}",
            r.std_cost_pv
        );
        let tol = match n {
            4 => 0.12,
            13 => 0.06,
            _ => 0.05,
        };
        assert!((ratio - 1.0).abs() < tol, "N = {n}: ratio {ratio}");
        ratios.push(ratio);
        scaled.push(r.std_cost_pv * f64::from(n).sqrt());
    }
    assert!(ratios.windows(2).all(|w| w[0] < w[1]), "{ratios:?}");
    assert!(ratios[4] > 0.97, "{ratios:?}");
    let (lo, hi) = scaled[1..]
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
    assert!(hi / lo < 1.05, "std·√N {scaled:?}");
}

/// The mean cost of writing and delta-hedging converges to the BS value (with carry: r and q
/// both non-zero, so interest and the hedge's yield are exercised), and its s.d. falls.
#[test]
fn mean_hedging_cost_tends_to_the_option_value() {
    let (t, r, q) = (0.5, 0.05, 0.02);
    let value = bs(t, r, q, SIGMA).price;
    let mut prev_std = f64::INFINITY;
    for n in [4u32, 16, 64, 256] {
        let rep = one(&gbm(
            t,
            n,
            8_000,
            r,
            q,
            0.0,
            &[format!("time:{}", t / f64::from(n))],
        ));
        assert!((rep.option_value - value).abs() < 1e-12);
        let se = rep.std_cost_pv / (rep.paths as f64).sqrt();
        let err = rep.mean_cost_pv - value;
        eprintln!(
            "N = {n}: mean {:.4} vs {value:.4} (s.e. {se:.4}), std {:.4}",
            rep.mean_cost_pv, rep.std_cost_pv
        );
        assert!(err.abs() < 4.0 * se + 0.002 * value, "N = {n}: {err}");
        assert!(rep.std_cost_pv < prev_std);
        prev_std = rep.std_cost_pv;
    }
    assert!(prev_std < 0.06 * value, "{prev_std}");
}

/// pfhedge's WhalleyWilmott doc-test through the public API (HEDGING.md): K = 1, τ = 0.1,
/// σ = 0.2, c = 1e-5, a = 1, previous hedge 0.5.
#[test]
fn whalley_wilmott_reproduces_the_pfhedge_vector() {
    let policy = parse_policy("ww:1").unwrap();
    let expected = [0.2946, 0.5000, 0.5000, 0.5000, 0.7284];
    for (lm, want) in [-0.05f64, -0.01, 0.0, 0.01, 0.05].iter().zip(expected) {
        let row = OptionRow::bsm(OptionKind::Call, lm.exp(), 1.0, 0.1, 0.0, 0.0, 0.2);
        let g = greeks_one(&row).unwrap();
        let legs = [PositionLeg { row, qty: -1.0 }];
        let ctx = HedgeContext {
            t: 0.0,
            spot: row.s,
            tau: 0.1,
            rate: 0.0,
            yield_: 0.0,
            sigma: 0.2,
            position_delta: -g.delta,
            gamma: -g.gamma,
            vanna: -g.vanna,
            hedge: 0.5,
            kappa: 1e-5,
            fixed_cost: 0.0,
            horizon: 0.001,
            legs: &legs,
        };
        let mut st = TriggerState::new(&policy);
        let got = decide(&policy, &mut st, &ctx).unwrap_or(0.5);
        assert!((got - want).abs() < 5e-5, "{lm}: {got} vs {want}");
    }
}

/// Leland (1985): hedging a written call every δt with σ_L² = σ²(1 + √(2/π)·k/(σ√δt)),
/// k = 2κ the round-trip cost, costs on average the BS value at σ_L: the rebalancing fees are
/// in it, not the opening purchase (Leland's replication starts from the hedge in place), so
/// that fee, κ·Δ(σ_L)·S_0, is taken out. A k = κ slip would land 0.5 away.
#[test]
fn leland_adjusted_volatility_prices_the_costs() {
    let (t, n, kappa) = (1.0, 52u32, 0.005);
    let dt = t / f64::from(n);
    let le = (2.0 / std::f64::consts::PI).sqrt() * (2.0 * kappa) / (SIGMA * dt.sqrt());
    let sigma_l = SIGMA * (1.0 + le).sqrt();
    let mut cfg = gbm(t, n, 20_000, 0.0, 0.0, kappa * 1e4, &[format!("time:{dt}")]);
    cfg.pricing_vol = sigma_l;
    let rep = one(&cfg);
    let leland = bs(t, 0.0, 0.0, sigma_l).price;
    let se = rep.std_cost_pv / (rep.paths as f64).sqrt();
    eprintln!(
        "σ_L {sigma_l:.4}: mean cost {:.4} (s.e. {se:.4}, fees {:.4}) vs BS(σ_L) {leland:.4}, BS(σ) {:.4}",
        rep.mean_cost_pv,
        rep.mean_fees,
        bs(t, 0.0, 0.0, SIGMA).price
    );
    let opening_fee = kappa * bs(t, 0.0, 0.0, sigma_l).delta * S0;
    let rebalancing = rep.mean_cost_pv - opening_fee;
    assert!(
        (rebalancing - leland).abs() < 0.01 * leland,
        "{rebalancing} vs {leland}"
    );
    let wrong_k = bs(t, 0.0, 0.0, SIGMA * (1.0 + le / 2.0).sqrt()).price;
    assert!((rebalancing - wrong_k).abs() > 10.0 * se);
    // The adjusted hedge has the smaller error: the costs are hedged too.
    let plain = one(&gbm(
        t,
        n,
        20_000,
        0.0,
        0.0,
        kappa * 1e4,
        &[format!("time:{dt}")],
    ));
    assert!(
        rep.std_cost_pv < plain.std_cost_pv,
        "{} vs {}",
        rep.std_cost_pv,
        plain.std_cost_pv
    );
}

/// The accounting to the cent on a recorded three-step path, with interest, a proportional
/// and a fixed fee, and physical settlement of an exercised written call.
#[test]
fn three_step_path_is_exact() {
    let (r, sigma, k, kappa, fixed) = (0.04, 0.25, 100.0, 0.001, 0.01);
    let dt = 1.0 / 12.0;
    let spots = [100.0, 103.0, 98.0, 105.0];
    let times = [0.0, dt, 2.0 * dt, 3.0 * dt];
    let path = RecordedPath::new(times.to_vec(), spots.to_vec(), None).unwrap();
    let cfg = BacktestConfig {
        market: Market::Path(path),
        spot: 0.0,
        rate: r,
        yield_: 0.0,
        pricing_vol: sigma,
        legs: vec![Leg {
            kind: OptionKind::Call,
            strike: k,
            expiry: 3.0 * dt,
            qty: -1.0,
        }],
        paths: 1,
        seed: 0,
        steps_per_year: 1.0,
        cost_bps: 10.0,
        fixed_fee: fixed,
        policies: vec!["time:1d".parse().unwrap()],
        option_hedge: None,
        mark_model_vol: false,
        vol_term_beta: 0.0,
    };
    let rep = one(&cfg);

    // The deltas the hedger sees (the kernel's, τ = 3, 2, 1 months).
    let delta = |j: usize| {
        greeks_one(&OptionRow::bsm(
            OptionKind::Call,
            spots[j],
            k,
            3.0 * dt - times[j],
            r,
            0.0,
            sigma,
        ))
        .unwrap()
        .delta
    };
    let (d0, d1, d2) = (delta(0), delta(1), delta(2));
    let fee = |units: f64, s: f64| kappa * units.abs() * s + fixed;
    let g = (r * dt).exp();
    // t0: buy d0 at 100.
    let mut cash = -d0 * 100.0 - fee(d0, 100.0);
    let mut fees_pv = fee(d0, 100.0);
    // t1: a month of interest, then buy d1 − d0 at 103.
    cash = cash * g - (d1 - d0) * 103.0 - fee(d1 - d0, 103.0);
    fees_pv += fee(d1 - d0, 103.0) * (-r * dt).exp();
    // t2: interest, then trade d2 − d1 at 98.
    cash = cash * g - (d2 - d1) * 98.0 - fee(d2 - d1, 98.0);
    fees_pv += fee(d2 - d1, 98.0) * (-r * 2.0 * dt).exp();
    // t3: interest; 105 > 100, the call is exercised: deliver 1 unit, receive 100; the rest,
    // d2 − 1 units (short), is bought back at 105.
    cash = cash * g + 100.0;
    let rest = d2 - 1.0;
    cash += rest * 105.0 - fee(rest, 105.0);
    fees_pv += fee(rest, 105.0) * (-r * 3.0 * dt).exp();
    let cost_fv = -cash;
    let cost_pv = cost_fv * (-r * 3.0 * dt).exp();

    assert_eq!(rep.steps, 3);
    assert_eq!(rep.mean_trades, 3.0);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs());
    assert!(
        close(rep.cost_fv.unwrap(), cost_fv),
        "{:?} vs {cost_fv}",
        rep.cost_fv
    );
    assert!(
        close(rep.mean_cost_pv, cost_pv),
        "{} vs {cost_pv}",
        rep.mean_cost_pv
    );
    assert!(
        close(rep.mean_fees, fees_pv),
        "{} vs {fees_pv}",
        rep.mean_fees
    );
    let turnover = d0 + (d1 - d0).abs() + (d2 - d1).abs() + rest.abs();
    assert!(close(rep.mean_turnover, turnover));
    assert!(close(rep.option_value, bs_value(k, 3.0 * dt, r, sigma)));
    assert_eq!(rep.std_cost_pv, 0.0);
    // Sanity of the hand arithmetic: writing the call and hedging it costs about its value.
    assert!(
        (cost_pv - rep.option_value).abs() < 1.5,
        "{cost_pv} vs {}",
        rep.option_value
    );
}

fn bs_value(k: f64, t: f64, r: f64, sigma: f64) -> f64 {
    greeks_one(&OptionRow::bsm(OptionKind::Call, S0, k, t, r, 0.0, sigma))
        .unwrap()
        .price
}
