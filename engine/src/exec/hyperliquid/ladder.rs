//! A Hyperliquid ladder: on each side, IOC limit orders of `lot·2^i` coin (i < rungs), each
//! signed ahead of time with its voiding `noop` at one nonce ([`super::PresignedPair`]), priced
//! `slippage` through the mid it was signed at (buys above, sells below: marketable while the
//! market stays within that band). Nonces are millisecond timestamps, unique and increasing
//! per signer, as Hyperliquid requires.
//!
//! Owns the signed bodies. Built by the signer thread (allocates, signs); read by the exec
//! tile ([`HlLadder::pick`]: no allocation).

use keel_feeds::event::Side;

use super::{
    HyperliquidError, LimitWire, Network, OrderTypeWire, OrderWire, Tif, decimal_wire, presign,
};
use crate::exec::evm::EvmSigner;

/// Most rungs per side.
pub const MAX_RUNGS: u8 = 24;

/// What a ladder is made of.
#[derive(Clone, Debug, PartialEq)]
pub struct HlLadderSpec {
    /// The perpetual's asset index (BTC 0, ETH 1 on Hyperliquid mainnet).
    pub asset: u32,
    /// Smallest rung, coin (a multiple of `10^-sz_decimals`).
    pub lot: f64,
    /// Rungs per side (1..=[`MAX_RUNGS`]); rung i is `lot·2^i`.
    pub rungs: u8,
    /// The coin's size decimals (BTC 5): sizes are rounded to them, prices to at most
    /// `6 − sz_decimals` decimals and 5 significant figures (integers always allowed).
    pub sz_decimals: u32,
    /// How far through the mid the limit price goes, fraction (0.005 = 0.5 %).
    pub slippage: f64,
    /// The network signed for.
    pub network: Network,
}

impl HlLadderSpec {
    /// Checks the spec (names the bad field).
    pub fn validate(&self) -> Result<(), HyperliquidError> {
        let bad = |what: &str| Err(HyperliquidError::Action(what.to_string()));
        if !(1..=MAX_RUNGS).contains(&self.rungs) {
            return bad("rungs must be 1..=24");
        }
        if self.sz_decimals > 6 {
            return bad("size decimals must be at most 6");
        }
        let unit = 10f64.powi(-(self.sz_decimals as i32));
        let units = self.lot / unit;
        if !(self.lot.is_finite() && self.lot > 0.0) || (units - units.round()).abs() > 1e-6 {
            return bad("lot must be a positive multiple of the coin's size step");
        }
        if !(self.slippage.is_finite() && self.slippage > 0.0 && self.slippage < 0.5) {
            return bad("slippage must be between 0 and 0.5");
        }
        Ok(())
    }

    /// Rung `i`'s size, coin.
    pub fn size(&self, i: u8) -> f64 {
        round_to(
            self.lot * f64::from(1u32 << i),
            self.sz_decimals as i32,
            false,
        )
    }
}

/// `x` rounded to `decimals` (down, or up with `up`), by the nearest representable step.
fn round_to(x: f64, decimals: i32, up: bool) -> f64 {
    let f = 10f64.powi(decimals);
    let scaled = x * f;
    // A value already on the grid (within float noise) stays.
    let r = scaled.round();
    let v = if (scaled - r).abs() < 1e-9 * scaled.abs().max(1.0) {
        r
    } else if up {
        scaled.ceil()
    } else {
        scaled.floor()
    };
    v / f
}

/// A limit price on Hyperliquid's grid: 5 significant figures, at most `6 − sz_decimals`
/// decimals, integers always allowed; rounded up for a buy (`up`), down for a sell.
pub fn round_price(px: f64, sz_decimals: u32, up: bool) -> f64 {
    let digits = px.abs().log10().floor() as i32 + 1;
    let decimals = (5 - digits).min(6 - sz_decimals as i32).max(0);
    round_to(px, decimals, up)
}

/// One signed rung.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HlRung {
    /// Buy or sell.
    pub side: Side,
    /// Size, coin, as `f64` bits (the struct stays `Eq`).
    size_bits: u64,
    /// Limit price bits.
    limit_bits: u64,
    /// The nonce (ms timestamp) the order and its noop share.
    pub nonce: u64,
    /// The order's `/exchange` body.
    pub order_body: Vec<u8>,
    /// The noop's `/exchange` body.
    pub noop_body: Vec<u8>,
    /// The order's client order id (`0x` + 32 hex digits).
    pub cloid: String,
}

impl HlRung {
    /// Size, coin.
    pub fn size(&self) -> f64 {
        f64::from_bits(self.size_bits)
    }
    /// Limit price.
    pub fn limit(&self) -> f64 {
        f64::from_bits(self.limit_bits)
    }
}

/// Both sides' rungs, signed at one time around one mid.
#[derive(Clone, Debug, PartialEq)]
pub struct HlLadder {
    /// Increases with every ladder the signer publishes.
    pub generation: u64,
    /// The mid the limits were set from.
    pub mid: f64,
    /// The lowest nonce of the ladder (ms; the signing time or just after).
    pub first_nonce: u64,
    /// Buys (rung i at index i), then sells (at `rungs + i`).
    pub rungs: Vec<HlRung>,
}

impl HlLadder {
    /// Signs every rung: nonces `first_nonce ..` in order (buys then sells).
    pub fn build(
        spec: &HlLadderSpec,
        signer: &EvmSigner,
        mid: f64,
        first_nonce: u64,
        generation: u64,
    ) -> Result<Self, HyperliquidError> {
        spec.validate()?;
        if !(mid.is_finite() && mid > 0.0) {
            return Err(HyperliquidError::Number(mid));
        }
        let mut rungs = Vec::with_capacity(2 * spec.rungs as usize);
        let mut nonce = first_nonce;
        for side in [Side::Buy, Side::Sell] {
            let buy = side == Side::Buy;
            let limit = round_price(
                if buy {
                    mid * (1.0 + spec.slippage)
                } else {
                    mid * (1.0 - spec.slippage)
                },
                spec.sz_decimals,
                buy,
            );
            for i in 0..spec.rungs {
                let size = spec.size(i);
                let cloid = format!("0x{nonce:016x}{:016x}", generation << 8 | u64::from(i));
                let order = OrderWire {
                    a: spec.asset,
                    b: buy,
                    p: decimal_wire(limit)?,
                    s: decimal_wire(size)?,
                    r: false,
                    t: OrderTypeWire {
                        limit: LimitWire { tif: Tif::Ioc },
                    },
                    c: Some(cloid.clone()),
                };
                let pair = presign(signer, order, nonce, spec.network)?;
                rungs.push(HlRung {
                    side,
                    size_bits: size.to_bits(),
                    limit_bits: limit.to_bits(),
                    nonce,
                    order_body: pair.order.body,
                    noop_body: pair.noop.body,
                    cloid,
                });
                nonce += 1;
            }
        }
        Ok(Self {
            generation,
            mid,
            first_nonce,
            rungs,
        })
    }

    /// The last nonce the ladder uses.
    pub fn last_nonce(&self) -> u64 {
        self.rungs.last().map_or(self.first_nonce, |r| r.nonce)
    }

    /// The rung on `side` nearest `amount` without exceeding it (the largest that fits), as an
    /// index into [`Self::rungs`]; `None` when even the smallest is larger.
    #[inline]
    pub fn pick(&self, side: Side, amount: f64) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for (k, r) in self.rungs.iter().enumerate() {
            let s = r.size();
            if r.side == side && s <= amount * (1.0 + 1e-9) && best.is_none_or(|(_, b)| s > b) {
                best = Some((k, s));
            }
        }
        best.map(|(k, _)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec() -> HlLadderSpec {
        HlLadderSpec {
            asset: 0,
            lot: 0.001,
            rungs: 4,
            sz_decimals: 5,
            slippage: 0.01,
            network: Network::Mainnet,
        }
    }

    #[test]
    fn prices_follow_the_grid() {
        assert_eq!(round_price(100_123.4, 5, true), 100_124.0);
        assert_eq!(round_price(100_123.4, 5, false), 100_123.0);
        assert_eq!(round_price(1_234.567, 5, true), 1_234.6);
        assert_eq!(round_price(1_234.567, 2, false), 1_234.5);
        assert_eq!(round_price(0.123456, 0, true), 0.12346);
        assert_eq!(round_price(37_000.0, 5, true), 37_000.0);
    }

    #[test]
    fn rungs_are_signed_at_increasing_nonces_and_picked_without_exceeding() {
        let key = EvmSigner::from_hex(&format!("0x{}", "44".repeat(32)), "t").unwrap();
        let l = HlLadder::build(&spec(), &key, 100_000.0, 1_700_000_000_000, 3).unwrap();
        assert_eq!(l.rungs.len(), 8);
        assert_eq!(l.last_nonce(), 1_700_000_000_007);
        for w in l.rungs.windows(2) {
            assert_eq!(w[1].nonce, w[0].nonce + 1);
        }
        assert_eq!(l.rungs[0].limit(), 101_000.0);
        assert_eq!(l.rungs[4].limit(), 99_000.0);
        assert_eq!(
            l.rungs[..4].iter().map(HlRung::size).collect::<Vec<_>>(),
            [0.001, 0.002, 0.004, 0.008]
        );
        let body: serde_json::Value = serde_json::from_slice(&l.rungs[5].order_body).unwrap();
        let o = &body["action"]["orders"][0];
        assert_eq!(
            (o["b"].as_bool(), o["s"].as_str(), o["p"].as_str()),
            (Some(false), Some("0.002"), Some("99000"))
        );
        assert_eq!(o["t"]["limit"]["tif"], "Ioc");
        assert_eq!(o["c"].as_str().unwrap().len(), 34);
        let noop: serde_json::Value = serde_json::from_slice(&l.rungs[5].noop_body).unwrap();
        assert_eq!(noop["nonce"], body["nonce"]);
        assert_eq!(l.pick(Side::Buy, 0.005), Some(2));
        assert_eq!(l.pick(Side::Sell, 0.004), Some(6));
        assert_eq!(l.pick(Side::Sell, 1.0), Some(7));
        assert_eq!(l.pick(Side::Buy, 0.0009), None);
        let mut bad = spec();
        bad.lot = 0.0000015;
        assert!(HlLadder::build(&bad, &key, 1.0, 1, 1).is_err());
        assert!(HlLadder::build(&spec(), &key, f64::NAN, 1, 1).is_err());
    }
}
