//! Hedge policy. This first policy is a delta band, so that the loop closes: when the book's
//! coin delta, counting hedges in flight, is further than `band` from `target`, hedge back to
//! the target with the hedge instrument (a perpetual). The policy issue replaces it with
//! cost-aware triggers (HEDGING.md).
//!
//! Owns nothing but its settings; [`DeltaBand::decide`] is a pure function of its inputs:
//! deterministic, never allocates.
//!
//! [`triggers`] holds issue #5's hedge triggers (band, time, vol-band, Whalley-Wilmott,
//! Zakamouline, cost-versus-risk), used by `keel backtest`.

pub mod triggers;

pub mod construct;
pub mod lp;

use keel_feeds::event::Side;

pub mod cost;

/// How the hedge instrument trades.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HedgeSpec {
    /// Inverse (amount in USD, Deribit's BTC-PERPETUAL) or linear (amount in coin).
    pub inverse: bool,
    /// Amount step (Deribit perpetual: 10 USD).
    pub lot: f64,
    /// Smallest amount.
    pub min_amount: f64,
    /// Largest amount of one order, in coin (`--<venue>-max-order`); `f64::INFINITY` for none.
    pub max_order_coin: f64,
}

/// A hedge the policy wants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HedgeOrder {
    /// Buy or sell.
    pub side: Side,
    /// Amount, venue unit (> 0, a multiple of the lot).
    pub amount: f64,
    /// Coin delta it adds when filled (signed).
    pub coin_delta: f64,
}

/// The delta band.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeltaBand {
    /// Target coin delta.
    pub target: f64,
    /// Half-width of the band, coin (> 0).
    pub band: f64,
}

impl DeltaBand {
    /// The hedge that brings `delta + in_flight` back to the target, if it is outside the band
    /// and the rounded size is at least one lot; `price` is the hedge instrument's reference
    /// price (quote currency per coin).
    pub fn decide(
        &self,
        delta: f64,
        in_flight: f64,
        price: f64,
        spec: &HedgeSpec,
    ) -> Option<HedgeOrder> {
        let exposure = delta + in_flight;
        let off = exposure - self.target;
        if !off.is_finite() || off.abs() <= self.band || !crate::market::is_pos(price) {
            return None;
        }
        spec.order_for(-off, price)
    }
}

impl HedgeSpec {
    /// The order that changes the hedge by `want_coin` (coin, signed), in the instrument's
    /// unit, rounded to the lot and capped at `max_order_coin` (never past it by rounding up);
    /// `None` below one lot or the minimum size, or without a usable price.
    pub fn order_for(&self, want_coin: f64, price: f64) -> Option<HedgeOrder> {
        if !want_coin.is_finite() || !crate::market::is_pos(price) {
            return None;
        }
        let want_coin = want_coin.clamp(-self.max_order_coin, self.max_order_coin);
        let raw = if self.inverse {
            want_coin * price
        } else {
            want_coin
        };
        let lot = if self.lot > 0.0 { self.lot } else { 1.0 };
        let mut amount = (raw.abs() / lot).round() * lot;
        let cap = if self.inverse {
            self.max_order_coin * price
        } else {
            self.max_order_coin
        };
        while amount > cap && amount >= lot {
            amount -= lot;
        }
        if amount < self.min_amount.max(lot) || amount <= 0.0 {
            return None;
        }
        let coin = if self.inverse { amount / price } else { amount };
        let (side, coin_delta) = if want_coin > 0.0 {
            (Side::Buy, coin)
        } else {
            (Side::Sell, -coin)
        };
        Some(HedgeOrder {
            side,
            amount,
            coin_delta,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERP: HedgeSpec = HedgeSpec {
        inverse: true,
        lot: 10.0,
        min_amount: 10.0,
        max_order_coin: f64::INFINITY,
    };

    #[test]
    fn inside_the_band_nothing_outside_back_to_target() {
        let p = DeltaBand {
            target: 0.0,
            band: 1.0,
        };
        assert_eq!(p.decide(0.99, 0.0, 100_000.0, &PERP), None);
        assert_eq!(p.decide(-1.0, 0.0, 100_000.0, &PERP), None);
        let h = p.decide(2.5, 0.0, 100_000.0, &PERP).unwrap();
        assert_eq!(h.side, Side::Sell);
        assert_eq!(h.amount, 250_000.0);
        assert!((h.coin_delta + 2.5).abs() < 1e-12);
        let h = p.decide(-1.23456, 0.0, 100_000.0, &PERP).unwrap();
        assert_eq!((h.side, h.amount), (Side::Buy, 123_460.0));
    }

    #[test]
    fn hedges_in_flight_count() {
        let p = DeltaBand {
            target: 0.0,
            band: 1.0,
        };
        // 2.5 long with a 2.5 sell in flight: nothing more.
        assert_eq!(p.decide(2.5, -2.5, 100_000.0, &PERP), None);
        let h = p.decide(2.5, -1.0, 100_000.0, &PERP).unwrap();
        assert!((h.coin_delta + 1.5).abs() < 1e-12);
    }

    #[test]
    fn max_order_caps_and_bad_prices_refuse() {
        let p = DeltaBand {
            target: 0.5,
            band: 0.1,
        };
        let spec = HedgeSpec {
            max_order_coin: 0.3,
            ..PERP
        };
        let h = p.decide(-1.0, 0.0, 100_000.0, &spec).unwrap();
        assert_eq!((h.side, h.amount), (Side::Buy, 30_000.0));
        assert_eq!(p.decide(-1.0, 0.0, f64::NAN, &spec), None);
        assert_eq!(p.decide(f64::NAN, 0.0, 100_000.0, &spec), None);
        // Less than a lot: nothing.
        let tiny = DeltaBand {
            target: 0.0,
            band: 1e-6,
        };
        assert_eq!(tiny.decide(1e-5, 0.0, 100_000.0, &PERP), None);
        let linear = HedgeSpec {
            inverse: false,
            lot: 0.001,
            min_amount: 0.001,
            max_order_coin: 10.0,
        };
        let h = p.decide(1.2, 0.0, 100_000.0, &linear).unwrap();
        assert_eq!(h.side, Side::Sell);
        assert!((h.amount - 0.7).abs() < 1e-9);
    }
}
