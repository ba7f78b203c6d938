//! The SIMD batch Greeks kernel: prices and Greeks of a whole book per call.
//!
//! Owns: the SoA book layout ([`BookInputs`], [`GreeksColumns`], [`SpotCache`]), the kernel
//! written once over [`Lanes`] and instantiated for `f64x8` (AVX-512), `f64x4` (AVX2),
//! `f32x16` (single-precision hedge Greeks, summed in f64 by [`GreeksColumns::weighted_sum`]) and
//! plain `f64` (the scalar twin, the oracle in tests), its vector math, implied volatility, and
//! the inverse (coin-premium) conversion applied at the edge. Also the per-tick hedge-Greeks
//! path ([`HedgeBook`], [`reprice_hedge`]): price, delta, gamma and vega only, on `f32x16`, from
//! per-row terms computed in f64 and rounded, with d1's numerator carried as an f64-computed
//! reference plus a per-expiry log-move (the pricer's `--reprice f32`; its bound against f64 on
//! a 1,000-option book is stated on `book::Reprice`).
//!
//! Must never: allocate or fail while repricing (validation happens once, in the builder), or let
//! a NaN into the book. Units are those of DESIGN.md: vega and volga per 1.00 of vol, theta per
//! calendar year, rho per 1.00 of rate.
//!
//! Accuracy: the f64 paths meet the QuantLib fixtures' rule max(1e-8·|x|, 1e-10·max(S,K)); the
//! f32 path (hedge Greeks) meets |error| ≤ 2e-5·|x| + 1e-6·(the Greek's scale) plus the effect
//! of rounding its inputs to f32 (a shift of d1 by 3e-7·(1 + |ln S/K|)/(σ√τ)) on delta, gamma,
//! vega and theta — asserted in `engine/tests/reference.rs` and stated in README.md.

mod batch;
pub mod iv;
mod kernel;
pub mod lanes;
pub mod math;

pub use batch::{
    BookInputs, Column, Element, GreekValues, GreeksColumns, InvalidRow, MAX_CARRY, MAX_PRICE,
    MAX_RATE, MAX_SIGMA, MAX_T, MIN_PRICE, MIN_SIGMA, Model, Num, OptionKind, OptionRow, PAD,
    padded, validate,
};
pub use kernel::{
    D_BIG, HedgeBook, HedgeColumns, SD_MIN, SpotCache, StaleCache, price_row, reprice_full,
    reprice_hedge, reprice_spot,
};
pub use lanes::Lanes;

/// The widest f64 vector this build can use: `f64x8` where AVX-512F is enabled at compile time
/// (the workspace builds with `target-cpu=native`), else `f64x4`.
#[cfg(target_feature = "avx512f")]
pub type WideF64 = wide::f64x8;
/// The widest f64 vector this build can use: `f64x8` where AVX-512F is enabled at compile time
/// (the workspace builds with `target-cpu=native`), else `f64x4`.
#[cfg(not(target_feature = "avx512f"))]
pub type WideF64 = wide::f64x4;
/// The f32 vector for hedge Greeks.
pub type WideF32 = wide::f32x16;

/// Validates and prices one option with the scalar twin ([`price_row`]); never allocates.
pub fn greeks_one(row: &OptionRow) -> Result<GreekValues, InvalidRow> {
    validate(0, row)?;
    Ok(price_row(row))
}

/// Converts one option's quote-currency values to a coin-premium (inverse) option's, for a
/// venue such as Deribit whose premium is paid in the underlying coin; `forward` is the forward
/// F of the option's expiry (not the index).
///
/// With V the quote-currency price: price = V/F (coin); delta = Δ − V/F, the coin exposure per
/// unit of underlying (Deribit's "net transaction delta", HEDGING.md); gamma = d(delta)/dF =
/// Γ − (Δ − V/F)/F; vega, theta, rho and volga are divided by F (coin per unit of each
/// variable, F held); vanna = d(delta)/dσ = vanna − vega/F.
pub fn to_coin(g: &GreekValues, forward: f64) -> GreekValues {
    let inv_f = 1.0 / forward;
    let price = g.price * inv_f;
    let delta = g.delta - price;
    GreekValues {
        price,
        delta,
        gamma: g.gamma - delta * inv_f,
        vega: g.vega * inv_f,
        theta: g.theta * inv_f,
        rho: g.rho * inv_f,
        vanna: g.vanna - g.vega * inv_f,
        volga: g.volga * inv_f,
    }
}
