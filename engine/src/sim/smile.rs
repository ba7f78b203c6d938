//! Volatility smiles for simulated markets: one raw-SVI slice per expiry (Gatheral 2004) and a
//! [`VolSurface`] that builds those slices from an ATM term structure and a few shape numbers,
//! used to set each simulated option's mark implied volatility.
//!
//! Owns the smile parameterisation only. Never allocates, never fails once built (validation
//! happens in the constructors), and never returns a NaN or negative volatility for finite
//! inputs. Log-moneyness is k = ln(K/F) on the expiry's forward; time in years.

/// A smile parameter out of its domain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SmileError {
    /// The parameter is NaN or infinite.
    #[error("smile: {param} must be finite, got {value}")]
    NotFinite {
        /// Which parameter.
        param: &'static str,
        /// The value given.
        value: f64,
    },
    /// The parameter is outside its allowed range.
    #[error("smile: {param} = {value} is out of range: {expected}")]
    OutOfRange {
        /// Which parameter.
        param: &'static str,
        /// The value given.
        value: f64,
        /// The allowed range, in words.
        expected: &'static str,
    },
}

fn check(
    param: &'static str,
    value: f64,
    ok: bool,
    expected: &'static str,
) -> Result<f64, SmileError> {
    if !value.is_finite() {
        return Err(SmileError::NotFinite { param, value });
    }
    if ok {
        Ok(value)
    } else {
        Err(SmileError::OutOfRange {
            param,
            value,
            expected,
        })
    }
}

/// Shortest time to expiry used for a volatility, years (one minute): the total variance of an
/// expiring option is divided by at least this.
pub const MIN_T: f64 = 60.0 / 31_536_000.0;

/// One expiry's smile in raw SVI form: total implied variance
/// w(k) = a + b·(ρ(k − m) + √((k − m)² + σ²)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SviSlice {
    a: f64,
    b: f64,
    rho: f64,
    m: f64,
    sigma: f64,
}

impl SviSlice {
    /// A raw-SVI slice. Requires b ≥ 0, |ρ| < 1, σ > 0, a + bσ√(1−ρ²) ≥ 0 (the total variance
    /// is never negative) and b(1 + |ρ|) ≤ 2 (Lee's moment bound on the wings' slopes).
    pub fn new(a: f64, b: f64, rho: f64, m: f64, sigma: f64) -> Result<Self, SmileError> {
        check("a", a, true, "")?;
        check("b", b, b >= 0.0, "b >= 0")?;
        check("rho", rho, rho.abs() < 1.0, "|rho| < 1")?;
        check("m", m, m.abs() <= 10.0, "|m| <= 10")?;
        check("sigma", sigma, sigma > 0.0, "sigma > 0")?;
        let min_w = a + b * sigma * (1.0 - rho * rho).sqrt();
        check(
            "a",
            a,
            min_w >= 0.0,
            "a + b*sigma*sqrt(1-rho^2) >= 0 (total variance never negative)",
        )?;
        check(
            "b",
            b,
            b * (1.0 + rho.abs()) <= 2.0,
            "b*(1+|rho|) <= 2 (Lee)",
        )?;
        Ok(Self {
            a,
            b,
            rho,
            m,
            sigma,
        })
    }

    /// Total implied variance w(k) = σ_iv(k)²·T at log-moneyness `k` (never negative).
    #[inline]
    pub fn total_variance(&self, k: f64) -> f64 {
        let x = k - self.m;
        (self.a + self.b * (self.rho * x + (x * x + self.sigma * self.sigma).sqrt())).max(0.0)
    }

    /// Implied volatility at log-moneyness `k` for time to expiry `t` years (clamped to at
    /// least [`MIN_T`]).
    #[inline]
    pub fn implied_vol(&self, k: f64, t: f64) -> f64 {
        (self.total_variance(k) / t.max(MIN_T)).sqrt()
    }
}

/// A volatility surface for a simulated market: an ATM volatility term structure
/// σ_atm(T) = σ_long + (σ_short − σ_long)·e^{−T/τ} and, per expiry, an SVI slice centred at
/// the money (m = 0) with b = wing·σ_atm(T)·√T, σ_svi = width·√T and correlation ρ (the skew's
/// sign), so that skew decays like 1/√T and curvature like 1/T, as in listed crypto and equity
/// option markets. `a` is set so that the ATM volatility is exactly σ_atm(T); b is capped at
/// Lee's bound for very long expiries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VolSurface {
    atm_short: f64,
    atm_long: f64,
    tau: f64,
    rho: f64,
    wing: f64,
    width: f64,
    /// A multiplicative shift of every volatility (1.0 = none), for vol shocks.
    level: f64,
}

impl VolSurface {
    /// A surface with ATM vol `atm_short` at T → 0 and `atm_long` at T → ∞ (0.01 ..= 5), term
    /// decay `tau` years (> 0), skew correlation `rho` (|ρ| < 1), `wing` (0 ..= 5) and `width`
    /// (> 0, ≤ 5).
    pub fn new(
        atm_short: f64,
        atm_long: f64,
        tau: f64,
        rho: f64,
        wing: f64,
        width: f64,
    ) -> Result<Self, SmileError> {
        check(
            "atm_short",
            atm_short,
            (0.01..=5.0).contains(&atm_short),
            "0.01..=5",
        )?;
        check(
            "atm_long",
            atm_long,
            (0.01..=5.0).contains(&atm_long),
            "0.01..=5",
        )?;
        check(
            "tau",
            tau,
            tau > 0.0 && tau <= 100.0,
            "0 < tau <= 100 years",
        )?;
        check("rho", rho, rho.abs() < 1.0, "|rho| < 1")?;
        check("wing", wing, (0.0..=5.0).contains(&wing), "0..=5")?;
        check(
            "width",
            width,
            width > 0.0 && width <= 5.0,
            "0 < width <= 5",
        )?;
        // a + bσ√(1−ρ²) ≥ 0 ⇔ σ_atm² ≥ wing·width·σ_atm·(1 − √(1−ρ²)) for every T: check it at
        // the lowest ATM vol (b only shrinks when capped).
        let lowest = atm_short.min(atm_long);
        let need = wing * width * (1.0 - (1.0 - rho * rho).sqrt());
        check(
            "wing",
            wing,
            lowest >= need,
            "wing*width*(1-sqrt(1-rho^2)) <= the lowest ATM vol (smile would go negative)",
        )?;
        Ok(Self {
            atm_short,
            atm_long,
            tau,
            rho,
            wing,
            width,
            level: 1.0,
        })
    }

    /// A crypto-like surface around `atm` (the long-run ATM vol): short end at 0.9·atm, decay
    /// 0.25 y, mild put skew (ρ = −0.15), wing 0.8, width 0.25.
    pub fn crypto(atm: f64) -> Result<Self, SmileError> {
        Self::new(0.9 * atm, atm, 0.25, -0.15, 0.8, 0.25)
    }

    /// The same surface with every volatility multiplied by `level` (0.05 ..= 20), e.g. for a
    /// volatility shock.
    pub fn with_level(mut self, level: f64) -> Result<Self, SmileError> {
        check("level", level, (0.05..=20.0).contains(&level), "0.05..=20")?;
        self.level = level;
        Ok(self)
    }

    /// ATM volatility at time to expiry `t` years.
    #[inline]
    pub fn atm_vol(&self, t: f64) -> f64 {
        let t = t.max(0.0);
        (self.atm_long + (self.atm_short - self.atm_long) * (-t / self.tau).exp()) * self.level
    }

    /// The SVI slice of expiry `t` years (clamped to at least [`MIN_T`]), level included: the
    /// level-1 slice's a and b times level², so every volatility scales by exactly `level`
    /// unless b reaches Lee's bound (then b is capped and a keeps the ATM volatility exact).
    pub fn slice(&self, t: f64) -> SviSlice {
        let t = t.max(MIN_T);
        let atm = self.atm_vol(t) / self.level;
        let st = t.sqrt();
        let l2 = self.level * self.level;
        let sigma = self.width * st;
        let b0 = self.wing * atm * st;
        let (a, b) = ((atm * atm * t - b0 * sigma) * l2, b0 * l2);
        let lee = 2.0 / (1.0 + self.rho.abs()) * (1.0 - 1e-12);
        let (a, b) = if b > lee {
            (atm * atm * l2 * t - lee * sigma, lee)
        } else {
            (a, b)
        };
        // Valid by construction (`new` checked σ_atm ≥ wing·width·(1 − √(1−ρ²)), which keeps
        // a + bσ√(1−ρ²) ≥ 0 at any level and any cap), so this never fails.
        SviSlice {
            a,
            b,
            rho: self.rho,
            m: 0.0,
            sigma,
        }
    }

    /// Implied volatility for log-moneyness `k` = ln(K/F) and time `t` years.
    #[inline]
    pub fn implied_vol(&self, k: f64, t: f64) -> f64 {
        self.slice(t).implied_vol(k, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atm_vol_follows_the_term_structure() {
        let s = VolSurface::new(0.5, 0.7, 0.5, -0.2, 0.8, 0.25).unwrap();
        for t in [1.0 / 365.0, 0.1, 0.5, 1.0, 3.0] {
            let atm = s.atm_vol(t);
            assert!((s.implied_vol(0.0, t) - atm).abs() < 1e-12, "t {t}");
            let expected = 0.7 - 0.2 * (-t / 0.5f64).exp();
            assert!((atm - expected).abs() < 1e-12);
        }
        assert!(s.atm_vol(0.01) < s.atm_vol(2.0));
    }

    #[test]
    fn smile_has_skew_and_curvature() {
        let s = VolSurface::crypto(0.6).unwrap();
        let t = 0.25;
        let atm = s.implied_vol(0.0, t);
        let put_wing = s.implied_vol(-0.3, t);
        let call_wing = s.implied_vol(0.3, t);
        assert!(
            put_wing > atm && call_wing > atm,
            "{put_wing} {atm} {call_wing}"
        );
        assert!(put_wing > call_wing, "ρ < 0 gives put skew");
        // Short expiries are more curved in k than long ones.
        let curv = |t: f64| s.implied_vol(0.1, t) + s.implied_vol(-0.1, t) - 2.0 * s.atm_vol(t);
        assert!(curv(7.0 / 365.0) > curv(1.0));
    }

    #[test]
    fn slices_are_valid_svi_everywhere() {
        let s = VolSurface::crypto(0.8).unwrap();
        for t in [MIN_T, 1.0 / 365.0, 0.1, 1.0, 10.0, 100.0] {
            let sl = s.slice(t);
            let checked = SviSlice::new(sl.a, sl.b, sl.rho, sl.m, sl.sigma);
            assert!(checked.is_ok(), "t {t}: {checked:?}");
            for k in [-3.0, -1.0, -0.1, 0.0, 0.1, 1.0, 3.0] {
                let v = sl.implied_vol(k, t);
                assert!(v.is_finite() && v > 0.0, "t {t} k {k}: {v}");
            }
        }
    }

    #[test]
    fn level_scales_every_vol() {
        let s = VolSurface::crypto(0.6).unwrap();
        let up = s.with_level(1.5).unwrap();
        for (k, t) in [(0.0, 0.1), (-0.2, 0.5), (0.4, 1.0)] {
            assert!((up.implied_vol(k, t) / s.implied_vol(k, t) - 1.5).abs() < 1e-12);
        }
        assert!(s.with_level(0.0).is_err());
    }

    #[test]
    fn bad_parameters_are_rejected() {
        assert!(SviSlice::new(0.01, -0.1, 0.0, 0.0, 0.1).is_err());
        assert!(SviSlice::new(0.01, 0.1, 1.0, 0.0, 0.1).is_err());
        assert!(SviSlice::new(-1.0, 0.1, 0.0, 0.0, 0.1).is_err());
        assert!(SviSlice::new(0.01, 1.9, 0.5, 0.0, 0.1).is_err());
        let e = VolSurface::new(f64::NAN, 0.5, 1.0, 0.0, 1.0, 0.2).unwrap_err();
        assert!(e.to_string().contains("atm_short"), "{e}");
        assert!(VolSurface::new(0.5, 0.5, 1.0, -0.99, 5.0, 5.0).is_err());
    }
}
