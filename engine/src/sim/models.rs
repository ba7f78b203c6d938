//! Price-path models for the underlying: geometric Brownian motion, Merton jump-diffusion and
//! Heston stochastic volatility, each stepped by `dt` years with a caller-owned [`SimRng`].
//!
//! Owns the models' state and their discretisation. Never allocates, never reads a clock and
//! never draws from anything but the [`SimRng`] it is handed, so a path is a pure function of
//! (model, seed, dt sequence). Units are DESIGN.md's: time in years, volatilities and rates as
//! decimals per year.

use super::rng::SimRng;

/// A model parameter that is out of its domain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// The parameter is NaN or infinite.
    #[error("{model}: {param} must be finite, got {value}")]
    NotFinite {
        /// Which model.
        model: &'static str,
        /// Which parameter.
        param: &'static str,
        /// The value given.
        value: f64,
    },
    /// The parameter is outside its allowed range.
    #[error("{model}: {param} = {value} is out of range: {expected}")]
    OutOfRange {
        /// Which model.
        model: &'static str,
        /// Which parameter.
        param: &'static str,
        /// The value given.
        value: f64,
        /// The allowed range, in words.
        expected: &'static str,
    },
}

fn finite(model: &'static str, param: &'static str, value: f64) -> Result<f64, ModelError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(ModelError::NotFinite {
            model,
            param,
            value,
        })
    }
}

fn check(
    model: &'static str,
    param: &'static str,
    value: f64,
    ok: bool,
    expected: &'static str,
) -> Result<f64, ModelError> {
    finite(model, param, value)?;
    if ok {
        Ok(value)
    } else {
        Err(ModelError::OutOfRange {
            model,
            param,
            value,
            expected,
        })
    }
}

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// The spot after the step.
    pub spot: f64,
    /// ln(S_after / S_before).
    pub log_return: f64,
    /// Jumps that occurred during the step (0 for diffusion-only models).
    pub jumps: u32,
}

/// A model of the underlying that can be stepped forward in time.
pub trait MarketModel {
    /// The current spot.
    fn spot(&self) -> f64;
    /// The current instantaneous variance of log-returns per year (σ² for GBM and Merton's
    /// diffusion part; v_t for Heston).
    fn variance(&self) -> f64;
    /// Advances the model by `dt` years, drawing from `rng`. A `dt` that is ≤ 0 or not finite
    /// leaves the state unchanged and draws nothing.
    fn step(&mut self, dt: f64, rng: &mut SimRng) -> Step;
}

/// Geometric Brownian motion: dS/S = μ dt + σ dW, stepped exactly
/// (S ← S·exp((μ − σ²/2)dt + σ√dt Z)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gbm {
    spot: f64,
    mu: f64,
    sigma: f64,
}

impl Gbm {
    /// A GBM starting at `spot` (> 0) with drift `mu` and volatility `sigma` (≥ 0, ≤ 10).
    pub fn new(spot: f64, mu: f64, sigma: f64) -> Result<Self, ModelError> {
        const M: &str = "gbm";
        check(M, "spot", spot, spot > 0.0, "> 0")?;
        check(M, "mu", mu, mu.abs() <= 10.0, "|mu| <= 10")?;
        check(
            M,
            "sigma",
            sigma,
            (0.0..=10.0).contains(&sigma),
            "0 <= sigma <= 10",
        )?;
        Ok(Self { spot, mu, sigma })
    }

    /// Drift μ per year.
    pub fn mu(&self) -> f64 {
        self.mu
    }

    /// Volatility σ per √year.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }
}

impl MarketModel for Gbm {
    fn spot(&self) -> f64 {
        self.spot
    }

    fn variance(&self) -> f64 {
        self.sigma * self.sigma
    }

    fn step(&mut self, dt: f64, rng: &mut SimRng) -> Step {
        if !(dt > 0.0 && dt.is_finite()) {
            return Step {
                spot: self.spot,
                log_return: 0.0,
                jumps: 0,
            };
        }
        let z = rng.normal();
        let r = (self.mu - 0.5 * self.sigma * self.sigma) * dt + self.sigma * dt.sqrt() * z;
        self.spot *= r.exp();
        Step {
            spot: self.spot,
            log_return: r,
            jumps: 0,
        }
    }
}

/// Merton's jump-diffusion: GBM plus compound Poisson jumps of the log-price, with intensity
/// λ per year and jump sizes Y ~ N(μ_J, σ_J²) in log terms. The drift is compensated
/// (μ − λκ with κ = E[e^Y] − 1), so E\[S_t\] = S_0·e^{μt} as for GBM.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MertonJump {
    gbm: Gbm,
    lambda: f64,
    jump_mean: f64,
    jump_sd: f64,
    kappa: f64,
}

impl MertonJump {
    /// A jump-diffusion: `spot`, `mu` and `sigma` as [`Gbm::new`]; `lambda` jumps per year
    /// (0 ..= 1e6), log-jump mean `jump_mean` (|·| ≤ 5) and s.d. `jump_sd` (0 ..= 5).
    pub fn new(
        spot: f64,
        mu: f64,
        sigma: f64,
        lambda: f64,
        jump_mean: f64,
        jump_sd: f64,
    ) -> Result<Self, ModelError> {
        const M: &str = "merton";
        let gbm = Gbm::new(spot, mu, sigma)?;
        check(
            M,
            "lambda",
            lambda,
            (0.0..=1e6).contains(&lambda),
            "0 <= lambda <= 1e6",
        )?;
        check(
            M,
            "jump_mean",
            jump_mean,
            jump_mean.abs() <= 5.0,
            "|jump_mean| <= 5",
        )?;
        check(
            M,
            "jump_sd",
            jump_sd,
            (0.0..=5.0).contains(&jump_sd),
            "0 <= jump_sd <= 5",
        )?;
        let kappa = (jump_mean + 0.5 * jump_sd * jump_sd).exp() - 1.0;
        Ok(Self {
            gbm,
            lambda,
            jump_mean,
            jump_sd,
            kappa,
        })
    }

    /// Jump intensity λ per year.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// Mean μ_J of a log-jump.
    pub fn jump_mean(&self) -> f64 {
        self.jump_mean
    }

    /// Standard deviation σ_J of a log-jump.
    pub fn jump_sd(&self) -> f64 {
        self.jump_sd
    }

    /// The diffusion part.
    pub fn diffusion(&self) -> &Gbm {
        &self.gbm
    }

    /// Annualised variance of log-returns including jumps: σ² + λ(μ_J² + σ_J²).
    pub fn total_variance(&self) -> f64 {
        self.gbm.variance() + self.lambda * (self.jump_mean.powi(2) + self.jump_sd.powi(2))
    }
}

impl MarketModel for MertonJump {
    fn spot(&self) -> f64 {
        self.gbm.spot
    }

    fn variance(&self) -> f64 {
        self.gbm.variance()
    }

    fn step(&mut self, dt: f64, rng: &mut SimRng) -> Step {
        if !(dt > 0.0 && dt.is_finite()) {
            return self.gbm.step(dt, rng);
        }
        let g = &mut self.gbm;
        let z = rng.normal();
        let mut r = (g.mu - self.lambda * self.kappa - 0.5 * g.sigma * g.sigma) * dt
            + g.sigma * dt.sqrt() * z;
        let n = rng.poisson(self.lambda * dt);
        if n > 0 {
            // The sum of n log-normal jump exponents is N(n·μ_J, n·σ_J²).
            let nf = n as f64;
            r += nf * self.jump_mean + nf.sqrt() * self.jump_sd * rng.normal();
        }
        g.spot *= r.exp();
        Step {
            spot: g.spot,
            log_return: r,
            jumps: n.min(u64::from(u32::MAX)) as u32,
        }
    }
}

/// Heston's stochastic volatility: dS/S = μ dt + √v dW₁, dv = κ(θ − v)dt + ξ√v dW₂,
/// d⟨W₁,W₂⟩ = ρ dt, discretised by full-truncation Euler (Lord, Koekkoek and van Dijk, 2010):
/// v⁺ = max(v, 0) in drift and diffusion, log-price stepped with v⁺, so the variance may dip
/// below zero between steps but the price never sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Heston {
    spot: f64,
    v: f64,
    mu: f64,
    kappa: f64,
    theta: f64,
    xi: f64,
    rho: f64,
    rho_c: f64,
}

impl Heston {
    /// A Heston model: `spot` > 0, initial variance `v0` ≥ 0, drift `mu`, mean-reversion speed
    /// `kappa` ≥ 0, long-run variance `theta` ≥ 0, vol of variance `xi` ≥ 0 and correlation
    /// `rho` in [−1, 1]. Variances are per year (v = σ², so 0.36 for 60 % vol).
    pub fn new(
        spot: f64,
        v0: f64,
        mu: f64,
        kappa: f64,
        theta: f64,
        xi: f64,
        rho: f64,
    ) -> Result<Self, ModelError> {
        const M: &str = "heston";
        check(M, "spot", spot, spot > 0.0, "> 0")?;
        check(M, "v0", v0, (0.0..=100.0).contains(&v0), "0 <= v0 <= 100")?;
        check(M, "mu", mu, mu.abs() <= 10.0, "|mu| <= 10")?;
        check(
            M,
            "kappa",
            kappa,
            (0.0..=1000.0).contains(&kappa),
            "0 <= kappa <= 1000",
        )?;
        check(
            M,
            "theta",
            theta,
            (0.0..=100.0).contains(&theta),
            "0 <= theta <= 100",
        )?;
        check(M, "xi", xi, (0.0..=100.0).contains(&xi), "0 <= xi <= 100")?;
        check(M, "rho", rho, (-1.0..=1.0).contains(&rho), "-1 <= rho <= 1")?;
        Ok(Self {
            spot,
            v: v0,
            mu,
            kappa,
            theta,
            xi,
            rho,
            rho_c: (1.0 - rho * rho).max(0.0).sqrt(),
        })
    }

    /// True when 2κθ ≥ ξ² (the Feller condition: the exact variance process stays positive).
    pub fn feller(&self) -> bool {
        2.0 * self.kappa * self.theta >= self.xi * self.xi
    }

    /// The long-run variance θ.
    pub fn theta(&self) -> f64 {
        self.theta
    }

    /// Mean-reversion speed κ.
    pub fn kappa(&self) -> f64 {
        self.kappa
    }

    /// The raw variance state (may be slightly negative under full truncation).
    pub fn raw_variance(&self) -> f64 {
        self.v
    }
}

impl MarketModel for Heston {
    fn spot(&self) -> f64 {
        self.spot
    }

    fn variance(&self) -> f64 {
        self.v.max(0.0)
    }

    fn step(&mut self, dt: f64, rng: &mut SimRng) -> Step {
        if !(dt > 0.0 && dt.is_finite()) {
            return Step {
                spot: self.spot,
                log_return: 0.0,
                jumps: 0,
            };
        }
        let z1 = rng.normal();
        let z2 = self.rho * z1 + self.rho_c * rng.normal();
        let vp = self.v.max(0.0);
        let sd = (vp * dt).sqrt();
        let r = (self.mu - 0.5 * vp) * dt + sd * z1;
        self.v += self.kappa * (self.theta - vp) * dt + self.xi * sd * z2;
        self.spot *= r.exp();
        Step {
            spot: self.spot,
            log_return: r,
            jumps: 0,
        }
    }
}

/// One point of a [`PricePath`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathPoint {
    /// Time since the path's start, years.
    pub t: f64,
    /// Spot at `t`.
    pub spot: f64,
    /// Instantaneous variance at `t` (per year).
    pub variance: f64,
    /// ln of the step's gross return.
    pub log_return: f64,
    /// Jumps during the step.
    pub jumps: u32,
}

/// A model stepped on a fixed grid with its own seeded generator: an endless iterator of
/// [`PathPoint`]s, the same for the same (model, seed, dt).
#[derive(Clone, Debug)]
pub struct PricePath<M: MarketModel> {
    model: M,
    rng: SimRng,
    dt: f64,
    t: f64,
    steps: u64,
}

impl<M: MarketModel> PricePath<M> {
    /// A path of `model` with steps of `dt` years (finite, > 0) drawing from `SimRng::new(seed)`.
    pub fn new(model: M, seed: u64, dt: f64) -> Result<Self, ModelError> {
        check("path", "dt", dt, dt > 0.0, "> 0 years")?;
        Ok(Self {
            model,
            rng: SimRng::new(seed),
            dt,
            t: 0.0,
            steps: 0,
        })
    }

    /// The step, years.
    pub fn dt(&self) -> f64 {
        self.dt
    }

    /// Time since the start, years (steps × dt, computed without accumulated rounding).
    pub fn t(&self) -> f64 {
        self.t
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The model (its current state).
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The generator, e.g. to draw per-step noise for quantities outside the model.
    pub fn rng_mut(&mut self) -> &mut SimRng {
        &mut self.rng
    }

    /// Advances one step.
    pub fn advance(&mut self) -> PathPoint {
        let s = self.model.step(self.dt, &mut self.rng);
        self.steps += 1;
        self.t = self.steps as f64 * self.dt;
        PathPoint {
            t: self.t,
            spot: s.spot,
            variance: self.model.variance(),
            log_return: s.log_return,
            jumps: s.jumps,
        }
    }
}

impl<M: MarketModel> Iterator for PricePath<M> {
    type Item = PathPoint;

    fn next(&mut self) -> Option<PathPoint> {
        Some(self.advance())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sample mean and variance of `n` log-returns of a path.
    fn log_return_moments<M: MarketModel>(path: &mut PricePath<M>, n: usize) -> (f64, f64, u64) {
        let (mut s, mut s2, mut jumps) = (0.0, 0.0, 0u64);
        for p in path.take(n) {
            s += p.log_return;
            s2 += p.log_return * p.log_return;
            jumps += u64::from(p.jumps);
        }
        let nf = n as f64;
        let m = s / nf;
        (m, s2 / nf - m * m, jumps)
    }

    #[test]
    fn gbm_log_returns_have_the_model_moments() {
        let (mu, sigma, dt) = (0.05, 0.6, 1.0 / 365.0);
        let mut p = PricePath::new(Gbm::new(100.0, mu, sigma).unwrap(), 1, dt).unwrap();
        let n = 200_000;
        let (m, v, jumps) = log_return_moments(&mut p, n);
        let nf = n as f64;
        let var = sigma * sigma * dt;
        let mean = (mu - 0.5 * sigma * sigma) * dt;
        // 5 standard errors: of the mean √(var/n), of the variance var·√(2/n).
        assert!(
            (m - mean).abs() < 5.0 * (var / nf).sqrt(),
            "mean {m} vs {mean}"
        );
        assert!(
            (v - var).abs() < 5.0 * var * (2.0 / nf).sqrt(),
            "var {v} vs {var}"
        );
        assert_eq!(jumps, 0);
        assert!((p.t() - nf * dt).abs() < 1e-9);
    }

    #[test]
    fn merton_jump_count_and_variance_match_the_model() {
        let (mu, sigma, lambda, jm, js) = (0.0, 0.5, 20.0, -0.05, 0.1);
        let dt = 1.0 / 365.0;
        let model = MertonJump::new(100.0, mu, sigma, lambda, jm, js).unwrap();
        let total_var = model.total_variance();
        let mut p = PricePath::new(model, 2, dt).unwrap();
        let n = 200_000;
        let (m, v, jumps) = log_return_moments(&mut p, n);
        let nf = n as f64;
        // Jump count ~ Poisson(λ·n·dt).
        let expected_jumps = lambda * nf * dt;
        assert!(
            (jumps as f64 - expected_jumps).abs() < 5.0 * expected_jumps.sqrt(),
            "{jumps} jumps, expected {expected_jumps}"
        );
        // Log-return mean (μ − λκ − σ²/2)dt + λ·dt·μ_J and variance (σ² + λ(μ_J²+σ_J²))dt.
        let kappa = (jm + 0.5 * js * js).exp() - 1.0;
        let mean = (mu - lambda * kappa - 0.5 * sigma * sigma) * dt + lambda * dt * jm;
        let var = total_var * dt;
        assert!(
            (m - mean).abs() < 5.0 * (var / nf).sqrt(),
            "mean {m} vs {mean}"
        );
        // The variance estimator's s.d. needs the fourth moment; with jumps, use a generous
        // 5 % band (the s.e. here is about 0.5 %).
        assert!((v - var).abs() < 0.05 * var, "var {v} vs {var}");
    }

    #[test]
    fn merton_drift_is_compensated() {
        // E[S_T] = S_0·e^{μT} across paths, jumps included.
        let model = MertonJump::new(100.0, 0.1, 0.3, 5.0, -0.1, 0.15).unwrap();
        let (paths, steps, dt) = (20_000, 50, 1.0 / 100.0);
        let (mut s, mut s2) = (0.0, 0.0);
        for i in 0..paths {
            let mut p = PricePath::new(model, 1000 + i, dt).unwrap();
            let st = p.nth(steps - 1).unwrap().spot;
            s += st;
            s2 += st * st;
        }
        let nf = paths as f64;
        let mean = s / nf;
        let sd = (s2 / nf - mean * mean).sqrt();
        let expected = 100.0 * (0.1 * steps as f64 * dt).exp();
        assert!(
            (mean - expected).abs() < 5.0 * sd / nf.sqrt(),
            "E[S_T] {mean} vs {expected}"
        );
    }

    #[test]
    fn heston_variance_mean_reverts_to_theta() {
        // Start far from θ; E[v_t] = θ + (v0 − θ)(1 − κ·dt)^n for the Euler scheme while the
        // truncation does not bind (Feller holds with a wide margin here).
        let (v0, kappa, theta, xi) = (0.64, 3.0, 0.16, 0.3);
        let model = Heston::new(100.0, v0, 0.0, kappa, theta, xi, -0.5).unwrap();
        assert!(model.feller());
        let (paths, steps, dt) = (4_000, 100, 1.0 / 200.0);
        let mut at_half = 0.0;
        let mut at_end = 0.0;
        for i in 0..paths {
            let mut p = PricePath::new(model, 500 + i, dt).unwrap();
            at_half += p.nth(steps / 2 - 1).unwrap().variance;
            at_end += p.nth(steps / 2 - 1).unwrap().variance;
        }
        let nf = paths as f64;
        let expect = |n: i32| theta + (v0 - theta) * (1.0 - kappa * dt).powi(n);
        let (e_half, e_end) = (expect(steps as i32 / 2), expect(steps as i32));
        // The s.d. of v_t is below ξ·√(θ/(2κ))·… ≈ 0.09; its mean's s.e. ≈ 0.0015.
        assert!(
            (at_half / nf - e_half).abs() < 0.01,
            "{} vs {e_half}",
            at_half / nf
        );
        assert!(
            (at_end / nf - e_end).abs() < 0.01,
            "{} vs {e_end}",
            at_end / nf
        );
        assert!(e_end < 0.5 * (v0 + theta), "the test must see reversion");
        // Long run: the time average of one path's variance is near θ.
        let mut p = PricePath::new(model, 9, dt).unwrap();
        let n = 100_000;
        let avg = p.by_ref().take(n).map(|x| x.variance).sum::<f64>() / n as f64;
        assert!((avg - theta).abs() < 0.02, "long-run {avg} vs {theta}");
    }

    #[test]
    fn heston_log_return_correlates_with_variance_moves() {
        let model = Heston::new(100.0, 0.2, 0.0, 2.0, 0.2, 0.5, -0.7).unwrap();
        let mut p = PricePath::new(model, 4, 1.0 / 365.0).unwrap();
        let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
        let mut prev_v = p.model().raw_variance();
        for _ in 0..50_000 {
            let pt = p.advance();
            let dv = p.model().raw_variance() - prev_v;
            prev_v = p.model().raw_variance();
            sxy += pt.log_return * dv;
            sxx += pt.log_return * pt.log_return;
            syy += dv * dv;
        }
        let corr = sxy / (sxx * syy).sqrt();
        assert!((corr + 0.7).abs() < 0.05, "corr {corr}");
    }

    #[test]
    fn paths_are_deterministic_for_a_seed() {
        let m = MertonJump::new(50_000.0, 0.0, 0.6, 50.0, 0.0, 0.05).unwrap();
        let a: Vec<PathPoint> = PricePath::new(m, 77, 1e-4).unwrap().take(1000).collect();
        let b: Vec<PathPoint> = PricePath::new(m, 77, 1e-4).unwrap().take(1000).collect();
        let c: Vec<PathPoint> = PricePath::new(m, 78, 1e-4).unwrap().take(1000).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let h = Heston::new(100.0, 0.1, 0.0, 1.0, 0.1, 0.4, -0.3).unwrap();
        let a: Vec<PathPoint> = PricePath::new(h, 5, 1e-3).unwrap().take(1000).collect();
        let b: Vec<PathPoint> = PricePath::new(h, 5, 1e-3).unwrap().take(1000).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn bad_parameters_are_rejected_with_their_name() {
        let e = Gbm::new(-1.0, 0.0, 0.2).unwrap_err();
        assert!(e.to_string().contains("spot"), "{e}");
        let e = Gbm::new(1.0, 0.0, f64::NAN).unwrap_err();
        assert!(matches!(e, ModelError::NotFinite { param: "sigma", .. }));
        assert!(MertonJump::new(1.0, 0.0, 0.2, -1.0, 0.0, 0.1).is_err());
        assert!(Heston::new(1.0, 0.1, 0.0, 1.0, 0.1, 0.2, 1.5).is_err());
        assert!(PricePath::new(Gbm::new(1.0, 0.0, 0.1).unwrap(), 1, 0.0).is_err());
    }

    #[test]
    fn zero_or_bad_dt_does_not_move_or_draw() {
        let mut g = Gbm::new(100.0, 0.0, 0.5).unwrap();
        let mut rng = SimRng::new(1);
        let before = rng.clone();
        for dt in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let s = g.step(dt, &mut rng);
            assert_eq!(s.spot, 100.0);
        }
        assert_eq!(rng, before);
    }
}
