//! Implied volatility from an option price, for venues that publish prices rather than vols.
//!
//! Uses Jäckel's "Let's Be Rational" through the `implied-vol` crate on the undiscounted Black
//! price: BSM rows are moved to their forward F = S·e^{(r−q)τ} and the premium undiscounted by
//! e^{rτ}. A price outside the no-arbitrage bounds is reported per option with the bound it
//! broke; no NaN is ever returned.

use super::batch::{InvalidRow, MAX_SIGMA, Model, OptionKind, OptionRow, validate};
use implied_vol::{DefaultSpecialFn, ImpliedBlackVolatility};
use thiserror::Error;

/// Why no implied volatility exists for a price.
#[derive(Debug, Error, Clone, Copy, PartialEq)]
pub enum IvError {
    /// An input was NaN, infinite, or a price/strike/spot not > 0.
    #[error("invalid input: {field} = {value}")]
    Invalid {
        /// Which input.
        field: &'static str,
        /// Its value.
        value: f64,
    },
    /// The option has expired (τ ≤ 0): its price carries no volatility.
    #[error("expired option (t = {t}): no implied volatility")]
    Expired {
        /// Time to expiry given.
        t: f64,
    },
    /// Price at or below the discounted intrinsic value (no time value to explain).
    #[error("price {price} is at or below the lower no-arbitrage bound {bound}")]
    BelowLowerBound {
        /// Price given.
        price: f64,
        /// Discounted intrinsic value.
        bound: f64,
    },
    /// Price at or above the upper bound (S·e^{−qτ} for a call, K·e^{−rτ} for a put).
    #[error("price {price} is at or above the upper no-arbitrage bound {bound}")]
    AboveUpperBound {
        /// Price given.
        price: f64,
        /// The bound.
        bound: f64,
    },
    /// The solved volatility exceeds what the kernel accepts.
    #[error("implied volatility {sigma} exceeds the supported maximum {max}")]
    TooHigh {
        /// The solution.
        sigma: f64,
        /// [`MAX_SIGMA`].
        max: f64,
    },
    /// The solver found no root (should not happen inside the bounds).
    #[error("solver found no volatility for price {price}")]
    NoSolution {
        /// Price given.
        price: f64,
    },
}

/// The implied volatility of `row` (its `sigma` is ignored) at premium `price`.
pub fn implied_vol(row: &OptionRow, price: f64) -> Result<f64, IvError> {
    for (field, value) in [("price", price), ("s", row.s), ("k", row.k)] {
        if !value.is_finite() || value <= 0.0 {
            return Err(IvError::Invalid { field, value });
        }
    }
    for (field, value) in [("t", row.t), ("r", row.r), ("q", row.q)] {
        if !value.is_finite() {
            return Err(IvError::Invalid { field, value });
        }
    }
    if row.t <= 0.0 {
        return Err(IvError::Expired { t: row.t });
    }
    // The same domain as the kernel's (a valid placeholder vol stands in for the unknown one).
    validate(0, &OptionRow { sigma: 0.2, ..*row }).map_err(|e| match e {
        InvalidRow::NotFinite { field, value, .. }
        | InvalidRow::NotPositive { field, value, .. }
        | InvalidRow::OutOfRange { field, value, .. } => IvError::Invalid { field, value },
    })?;
    let df = (-row.r * row.t).exp();
    let forward = match row.model {
        Model::Bsm => row.forward(),
        Model::Black76 => row.s,
    };
    let is_call = row.kind == OptionKind::Call;
    let undiscounted = price / df;
    let (intrinsic, upper) = if is_call {
        ((forward - row.k).max(0.0), forward)
    } else {
        ((row.k - forward).max(0.0), row.k)
    };
    if undiscounted <= intrinsic {
        return Err(IvError::BelowLowerBound {
            price,
            bound: intrinsic * df,
        });
    }
    if undiscounted >= upper {
        return Err(IvError::AboveUpperBound {
            price,
            bound: upper * df,
        });
    }
    let sigma = ImpliedBlackVolatility::builder()
        .option_price(undiscounted)
        .forward(forward)
        .strike(row.k)
        .expiry(row.t)
        .is_call(is_call)
        .build()
        .and_then(|iv| iv.calculate::<DefaultSpecialFn>())
        .filter(|s| s.is_finite() && *s > 0.0)
        .ok_or(IvError::NoSolution { price })?;
    if sigma > MAX_SIGMA {
        return Err(IvError::TooHigh {
            sigma,
            max: MAX_SIGMA,
        });
    }
    Ok(sigma)
}

/// Batch form: `out[i]` is the implied vol of `rows[i]` at `prices[i]`, or why there is none.
pub fn implied_vols(rows: &[OptionRow], prices: &[f64], out: &mut [Result<f64, IvError>]) {
    assert!(
        rows.len() == prices.len() && rows.len() == out.len(),
        "one price and one output slot per row"
    );
    for ((row, &p), o) in rows.iter().zip(prices).zip(out.iter_mut()) {
        *o = implied_vol(row, p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::greeks::greeks_one;

    #[test]
    fn round_trips_through_the_kernel() {
        for (kind, model, s, k, t, r, q, sigma) in [
            (
                OptionKind::Call,
                Model::Bsm,
                100.0,
                120.0,
                0.5,
                0.03,
                0.01,
                0.25,
            ),
            (
                OptionKind::Put,
                Model::Bsm,
                100.0,
                80.0,
                0.1,
                -0.01,
                0.02,
                0.9,
            ),
            (
                OptionKind::Put,
                Model::Black76,
                61_000.0,
                70_000.0,
                0.08,
                0.0,
                0.0,
                0.8,
            ),
            (
                OptionKind::Call,
                Model::Black76,
                61_000.0,
                30_000.0,
                2.0,
                0.05,
                0.05,
                4.0,
            ),
        ] {
            let row = OptionRow {
                kind,
                model,
                s,
                k,
                t,
                r,
                q: if model == Model::Black76 { r } else { q },
                sigma,
            };
            let price = greeks_one(&row).unwrap().price;
            let iv = implied_vol(&row, price).unwrap();
            assert!((iv - sigma).abs() < 1e-9 * sigma.max(1.0), "{row:?}: {iv}");
        }
    }

    #[test]
    fn reports_prices_outside_the_bounds() {
        let row = OptionRow::bsm(OptionKind::Call, 100.0, 90.0, 1.0, 0.05, 0.0, 0.2);
        assert!(matches!(
            implied_vol(&row, 5.0),
            Err(IvError::BelowLowerBound { .. })
        ));
        assert!(matches!(
            implied_vol(&row, 100.5),
            Err(IvError::AboveUpperBound { .. })
        ));
        assert!(matches!(
            implied_vol(&row, f64::NAN),
            Err(IvError::Invalid { field: "price", .. })
        ));
        let far = OptionRow { t: 1e9, ..row };
        assert!(matches!(
            implied_vol(&far, 10.0),
            Err(IvError::Invalid { field: "t", .. })
        ));
        let expired = OptionRow { t: 0.0, ..row };
        assert!(matches!(
            implied_vol(&expired, 10.0),
            Err(IvError::Expired { .. })
        ));
        let mut out = [Ok(0.0); 2];
        implied_vols(&[row, row], &[20.0, -1.0], &mut out);
        assert!(out[0].is_ok());
        assert!(matches!(out[1], Err(IvError::Invalid { .. })));
    }
}
