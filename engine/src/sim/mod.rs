//! Deterministic market simulation for the backtest and the simulated venue: seeded random
//! numbers ([`SimRng`]), price-path models of the underlying ([`Gbm`], [`MertonJump`],
//! [`Heston`] behind [`MarketModel`], stepped by [`PricePath`]) and volatility smiles per expiry
//! ([`SviSlice`], [`VolSurface`]).
//!
//! Owns only models and their arithmetic. Never reads a clock, never uses system entropy and
//! never allocates while stepping: everything is a function of its parameters and seed, so a
//! backtest or a simulated venue run can be replayed exactly. Units follow DESIGN.md (years,
//! decimal volatilities and rates).

pub mod models;
pub mod rng;
pub mod smile;

pub use models::{Gbm, Heston, MarketModel, MertonJump, ModelError, PathPoint, PricePath, Step};
pub use rng::SimRng;
pub use smile::{MIN_T, SmileError, SviSlice, VolSurface};
