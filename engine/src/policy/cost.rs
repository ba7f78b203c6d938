//! Cost model: what a hedge costs, all in, in USD, per venue and instrument — fees, slippage
//! against the live book, gas on chain at the predicted next base fee, and a latency charge —
//! and which of several venues is cheapest (HEDGING.md: a hedge is worth sending only if its
//! risk reduction exceeds these costs).
//!
//! Owns nothing but settings ([`VenueCost`]); every function is a pure function of its inputs:
//! deterministic, never allocates (book levels are borrowed slices), never panics on input from
//! outside (bad numbers are [`CostError`]s naming the input).
//!
//! The four terms, each in USD and ≥ 0 except fees (maker rebates) and slippage (a stale mid):
//! - **fees**: [`FeeRule::Notional`] — bps of the traded notional (perpetuals, futures, spot);
//!   [`FeeRule::OptionUnderlying`] — Deribit's option rule: per contract, `rate` × the underlying
//!   (0.03 % of it) capped at `cap_of_premium` × the option's price (12.5 %) — per fill price, so
//!   a walk over several levels sums the fee level by level;
//! - **slippage**: the order walked through the levels of the side it takes, best first: the
//!   average fill price against the mid, as USD ([`walk_book`]); not enough depth is an error;
//! - **gas** (on-chain venues): `gas_units` × (next base fee + priority fee), the next base fee
//!   from the latest chain head by the EIP-1559 rule in integer arithmetic exactly as the EIP
//!   specifies ([`next_base_fee`]), converted at the given ETH price;
//! - **latency**: `factor` × σ × S × √(latency in years) × |coin delta| — the size of the
//!   underlying's move over the venue's latency, as a charge for the price the order will meet
//!   not being the one it was decided on. With σ·S·√τ the standard deviation of the move
//!   (Brownian, no drift), `factor` = √(2/π) ≈ 0.80 ([`DEFAULT_LATENCY_FACTOR`]) makes it the
//!   expected absolute move; a venue whose fills are adversely selected can be given more, a
//!   venue where latency does not matter 0. In a driftless model the expected *signed* move is
//!   zero: this term is a risk charge that makes slower venues lose ties, not an expected loss.

use keel_feeds::event::{Side, Venue};

/// EIP-1559: target = gas limit / this.
pub const ELASTICITY_MULTIPLIER: u64 = 2;
/// EIP-1559: the base fee changes by at most 1/this per block.
pub const BASE_FEE_MAX_CHANGE_DENOMINATOR: u128 = 8;
/// Wei in one ether.
pub const WEI_PER_ETH: f64 = 1e18;
/// Nanoseconds in a year (ACT/365, DESIGN.md units).
pub const YEAR_NS: f64 = 31_536_000_000_000_000.0;
/// √(2/π): the expected absolute value of a standard normal.
pub const DEFAULT_LATENCY_FACTOR: f64 = 0.797_884_560_802_865_4;

/// Whether the order adds liquidity (rests) or takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liquidity {
    /// Rests in the book: maker fee, no slippage (assumed filled at the mid).
    Maker,
    /// Crosses the spread: taker fee, walks the book.
    Taker,
}

/// One price level: price in the instrument's quote unit, size in its size unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Level {
    /// Price.
    pub price: f64,
    /// Size (> 0).
    pub size: f64,
}

/// How an instrument counts size and price.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Contract {
    /// Size in contracts of `multiplier` coin; price per coin in the quote unit (USD for a
    /// linear perpetual; BTC for a Deribit option, with `quote_usd` = the index). Options: 1.
    Linear {
        /// Coin per contract.
        multiplier: f64,
    },
    /// Size in USD of face value; price in USD per coin (Deribit's BTC-PERPETUAL).
    Inverse,
}

/// A fee schedule. Rates may be negative (rebates).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FeeRule {
    /// Basis points of the traded notional in USD.
    Notional {
        /// Maker fee, bps.
        maker_bps: f64,
        /// Taker fee, bps.
        taker_bps: f64,
    },
    /// Per contract: min(rate × underlying in USD × multiplier, cap × the option's price in USD
    /// per contract) — Deribit's options.
    OptionUnderlying {
        /// Maker rate, fraction of the underlying.
        maker_rate: f64,
        /// Taker rate, fraction of the underlying.
        taker_rate: f64,
        /// Cap, fraction of the option's price.
        cap_of_premium: f64,
    },
}

impl FeeRule {
    /// Deribit BTC and ETH options (maker and taker): 0.03 % of the underlying per contract,
    /// never more than 12.5 % of the option's price (Deribit's fee page).
    pub const DERIBIT_OPTION: Self = FeeRule::OptionUnderlying {
        maker_rate: 0.0003,
        taker_rate: 0.0003,
        cap_of_premium: 0.125,
    };
    /// Deribit BTC and ETH futures and perpetuals: maker 0.00 %, taker 0.05 %.
    pub const DERIBIT_PERPETUAL: Self = FeeRule::Notional {
        maker_bps: 0.0,
        taker_bps: 5.0,
    };

    /// Fee in USD for `qty` (size unit) filled at `price` (quote unit).
    pub fn fee_usd(
        &self,
        liquidity: Liquidity,
        contract: Contract,
        qty: f64,
        price: f64,
        quote_usd: f64,
        underlying_usd: f64,
    ) -> f64 {
        let maker = liquidity == Liquidity::Maker;
        match *self {
            FeeRule::Notional {
                maker_bps,
                taker_bps,
            } => {
                let bps = if maker { maker_bps } else { taker_bps };
                notional_usd(contract, qty, price, quote_usd) * bps * 1e-4
            }
            FeeRule::OptionUnderlying {
                maker_rate,
                taker_rate,
                cap_of_premium,
            } => {
                let rate = if maker { maker_rate } else { taker_rate };
                let m = match contract {
                    Contract::Linear { multiplier } => multiplier,
                    Contract::Inverse => 1.0,
                };
                let per_contract =
                    (rate * underlying_usd * m).min(cap_of_premium * price * quote_usd * m);
                per_contract * qty
            }
        }
    }
}

/// USD notional of `qty` at `price`.
fn notional_usd(contract: Contract, qty: f64, price: f64, quote_usd: f64) -> f64 {
    match contract {
        Contract::Linear { multiplier } => qty * multiplier * price * quote_usd,
        Contract::Inverse => qty,
    }
}

/// Gas settings of an on-chain venue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GasSpec {
    /// Gas the hedge transaction uses.
    pub gas_units: u64,
    /// Priority fee (tip) per gas, wei.
    pub priority_fee_wei: u64,
}

/// The latest chain head (from `EventBody::ChainHead`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// Its base fee per gas, wei.
    pub base_fee_wei: u64,
    /// Gas used.
    pub gas_used: u64,
    /// Gas limit.
    pub gas_limit: u64,
}

/// A venue and instrument's cost settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VenueCost {
    /// The venue.
    pub venue: Venue,
    /// How the instrument counts size and price.
    pub contract: Contract,
    /// Its fees.
    pub fee: FeeRule,
    /// Decision-to-fill latency, ns.
    pub latency_ns: u64,
    /// Multiplier of σ·S·√τ (see the module doc; [`DEFAULT_LATENCY_FACTOR`]).
    pub latency_factor: f64,
    /// Gas, for on-chain venues.
    pub gas: Option<GasSpec>,
}

/// The market an order meets on one venue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostQuery<'a> {
    /// Buy or sell.
    pub side: Side,
    /// Size, in the instrument's size unit (> 0).
    pub qty: f64,
    /// The levels the order takes, best first: asks for a buy, bids for a sell.
    pub levels: &'a [Level],
    /// Mid, quote unit.
    pub mid: f64,
    /// USD per quote unit (1 for USD-quoted; the index for coin-quoted options).
    pub quote_usd: f64,
    /// The underlying's price, USD.
    pub underlying_usd: f64,
    /// The underlying's volatility (decimal, per year) for the latency term.
    pub sigma: f64,
    /// The order's coin delta (`HedgeIntent::coin_delta`), for the latency term.
    pub coin_delta: f64,
    /// Maker or taker.
    pub liquidity: Liquidity,
    /// The latest chain head (on-chain venues).
    pub chain: Option<ChainHead>,
    /// ETH price, USD (on-chain venues).
    pub eth_usd: f64,
}

/// An all-in cost, USD.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CostBreakdown {
    /// Exchange fees (negative: a rebate).
    pub fees: f64,
    /// Average fill price against the mid, times the size.
    pub slippage: f64,
    /// Gas at the predicted next base fee plus the priority fee.
    pub gas: f64,
    /// The latency charge.
    pub latency: f64,
    /// The sum.
    pub total: f64,
}

/// Why a cost cannot be computed.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum CostError {
    /// An input is not a usable number.
    #[error("cost input {field} = {value} is not usable")]
    BadInput {
        /// Which input.
        field: &'static str,
        /// Its value.
        value: f64,
    },
    /// The book has less than the order's size on the side it takes.
    #[error("not enough depth: {wanted} wanted, {available} in the book")]
    NotEnoughDepth {
        /// The order's size.
        wanted: f64,
        /// All the levels' sizes.
        available: f64,
    },
    /// The levels are not best first (asks rising, bids falling), or one is not a price and a
    /// positive size.
    #[error("book level {level} is out of order or not a price and a positive size")]
    BadLevel {
        /// Its index.
        level: usize,
    },
    /// A chain head the EIP-1559 rule cannot use (gas used above the limit, or a limit below 2).
    #[error("chain head with gas used {gas_used} and limit {gas_limit} is not valid")]
    BadChainHead {
        /// Gas used.
        gas_used: u64,
        /// Gas limit.
        gas_limit: u64,
    },
    /// An on-chain venue without a chain head.
    #[error("no chain head yet for an on-chain venue")]
    NoChainHead,
}

/// The base fee per gas of the block after `head`, wei, by EIP-1559's rule in its integer
/// arithmetic (floor divisions in its order; 128-bit intermediates, so no overflow):
///
/// ```text
/// target = gas_limit // 2
/// used == target: base
/// used >  target: base + max(base * (used - target) // target // 8, 1)
/// used <  target: base -     base * (target - used) // target // 8
/// ```
pub fn next_base_fee(head: &ChainHead) -> Result<u128, CostError> {
    let target = head.gas_limit / ELASTICITY_MULTIPLIER;
    if target == 0 || head.gas_used > head.gas_limit {
        return Err(CostError::BadChainHead {
            gas_used: head.gas_used,
            gas_limit: head.gas_limit,
        });
    }
    let base = u128::from(head.base_fee_wei);
    let used = u128::from(head.gas_used);
    let target = u128::from(target);
    Ok(match used.cmp(&target) {
        core::cmp::Ordering::Equal => base,
        core::cmp::Ordering::Greater => {
            let delta = base * (used - target) / target / BASE_FEE_MAX_CHANGE_DENOMINATOR;
            base + delta.max(1)
        }
        core::cmp::Ordering::Less => {
            base - base * (target - used) / target / BASE_FEE_MAX_CHANGE_DENOMINATOR
        }
    })
}

/// Gas of one transaction at the next block's predicted base fee.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GasQuote {
    /// Predicted base fee of the next block, wei per gas.
    pub base_fee_wei: u128,
    /// Base fee + priority fee, wei per gas.
    pub fee_per_gas_wei: u128,
    /// Total, wei.
    pub total_wei: u128,
    /// Total, ETH.
    pub eth: f64,
    /// Total, USD.
    pub usd: f64,
}

/// Gas for `spec` after `head`, priced at `eth_usd`.
pub fn gas_quote(spec: &GasSpec, head: &ChainHead, eth_usd: f64) -> Result<GasQuote, CostError> {
    if !(eth_usd.is_finite() && eth_usd > 0.0) {
        return Err(CostError::BadInput {
            field: "eth_usd",
            value: eth_usd,
        });
    }
    let base = next_base_fee(head)?;
    let per_gas = base + u128::from(spec.priority_fee_wei);
    let total = per_gas * u128::from(spec.gas_units);
    let eth = total as f64 / WEI_PER_ETH;
    Ok(GasQuote {
        base_fee_wei: base,
        fee_per_gas_wei: per_gas,
        total_wei: total,
        eth,
        usd: eth * eth_usd,
    })
}

/// An order walked through the book.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BookWalk {
    /// Average fill price, quote unit (volume-weighted; for an inverse contract the harmonic
    /// mean, the price at which the USD face buys the same coin).
    pub avg_price: f64,
    /// The last (worst) level's price reached.
    pub worst_price: f64,
    /// Levels touched.
    pub levels: u32,
    /// Slippage against the mid, USD: linear Σ qᵢ·m·(pᵢ − mid)·quote_usd for a buy (mid − pᵢ for
    /// a sell); inverse Σ qᵢ·(1 − mid/pᵢ) for a buy (mid/pᵢ − 1 for a sell).
    pub slippage_usd: f64,
}

fn finite_pos(field: &'static str, value: f64) -> Result<f64, CostError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(CostError::BadInput { field, value })
    }
}

/// Walks `qty` through `levels` (the side the order takes, best first) against `mid`, calling
/// `each(qty_i, price_i)` per fill.
fn walk(
    side: Side,
    contract: Contract,
    qty: f64,
    levels: &[Level],
    mid: f64,
    quote_usd: f64,
    mut each: impl FnMut(f64, f64),
) -> Result<BookWalk, CostError> {
    finite_pos("qty", qty)?;
    finite_pos("mid", mid)?;
    finite_pos("quote_usd", quote_usd)?;
    if let Contract::Linear { multiplier } = contract {
        finite_pos("multiplier", multiplier)?;
    }
    let sign = match side {
        Side::Buy => 1.0,
        Side::Sell => -1.0,
    };
    let mut left = qty;
    let mut qp = 0.0; // Σ q·p (linear) or Σ q/p (inverse)
    let mut slip = 0.0;
    let mut worst = f64::NAN;
    let mut used = 0u32;
    let mut available = 0.0;
    for (i, l) in levels.iter().enumerate() {
        let sorted = i == 0 || (l.price - levels[i - 1].price) * sign > 0.0;
        if !(l.price.is_finite() && l.price > 0.0 && l.size.is_finite() && l.size > 0.0 && sorted) {
            return Err(CostError::BadLevel { level: i });
        }
        available += l.size;
        if left <= 0.0 {
            continue;
        }
        let q = left.min(l.size);
        left -= q;
        used += 1;
        worst = l.price;
        each(q, l.price);
        match contract {
            Contract::Linear { multiplier } => {
                qp += q * l.price;
                slip += sign * q * multiplier * (l.price - mid) * quote_usd;
            }
            Contract::Inverse => {
                qp += q / l.price;
                slip += sign * q * (1.0 - mid / l.price);
            }
        }
    }
    // What is left after rounding is not missing depth.
    if left > qty * 1e-12 {
        return Err(CostError::NotEnoughDepth {
            wanted: qty,
            available,
        });
    }
    let filled = qty - left.max(0.0);
    let avg_price = match contract {
        Contract::Linear { .. } => qp / filled,
        Contract::Inverse => filled / qp,
    };
    Ok(BookWalk {
        avg_price,
        worst_price: worst,
        levels: used,
        slippage_usd: slip,
    })
}

/// Walks an order of `qty` through `levels` (best first: asks for a buy, bids for a sell):
/// average and worst price, levels used, and the slippage against `mid` in USD.
pub fn walk_book(
    side: Side,
    contract: Contract,
    qty: f64,
    levels: &[Level],
    mid: f64,
    quote_usd: f64,
) -> Result<BookWalk, CostError> {
    walk(side, contract, qty, levels, mid, quote_usd, |_, _| {})
}

/// Fees, slippage, gas and latency of the order `q` on `venue`, in USD.
pub fn all_in_cost(venue: &VenueCost, q: &CostQuery<'_>) -> Result<CostBreakdown, CostError> {
    finite_pos("underlying_usd", q.underlying_usd)?;
    if !(q.sigma.is_finite() && q.sigma >= 0.0) {
        return Err(CostError::BadInput {
            field: "sigma",
            value: q.sigma,
        });
    }
    if !q.coin_delta.is_finite() {
        return Err(CostError::BadInput {
            field: "coin_delta",
            value: q.coin_delta,
        });
    }
    if !(venue.latency_factor.is_finite() && venue.latency_factor >= 0.0) {
        return Err(CostError::BadInput {
            field: "latency_factor",
            value: venue.latency_factor,
        });
    }
    let (fees, slippage) = match q.liquidity {
        Liquidity::Maker => {
            finite_pos("qty", q.qty)?;
            finite_pos("mid", q.mid)?;
            finite_pos("quote_usd", q.quote_usd)?;
            let fee = venue.fee.fee_usd(
                Liquidity::Maker,
                venue.contract,
                q.qty,
                q.mid,
                q.quote_usd,
                q.underlying_usd,
            );
            (fee, 0.0)
        }
        Liquidity::Taker => {
            let mut fees = 0.0;
            let w = walk(
                q.side,
                venue.contract,
                q.qty,
                q.levels,
                q.mid,
                q.quote_usd,
                |qty, price| {
                    fees += venue.fee.fee_usd(
                        Liquidity::Taker,
                        venue.contract,
                        qty,
                        price,
                        q.quote_usd,
                        q.underlying_usd,
                    );
                },
            )?;
            (fees, w.slippage_usd)
        }
    };
    let gas = match (venue.gas, q.chain) {
        (None, _) => 0.0,
        (Some(_), None) => return Err(CostError::NoChainHead),
        (Some(spec), Some(head)) => gas_quote(&spec, &head, q.eth_usd)?.usd,
    };
    let latency = latency_cost_usd(
        venue.latency_factor,
        q.sigma,
        q.underlying_usd,
        venue.latency_ns,
        q.coin_delta,
    );
    Ok(CostBreakdown {
        fees,
        slippage,
        gas,
        latency,
        total: fees + slippage + gas + latency,
    })
}

/// The latency charge: `factor` × σ × S × √(latency_ns / year) × |coin delta|, USD.
pub fn latency_cost_usd(
    factor: f64,
    sigma: f64,
    underlying_usd: f64,
    latency_ns: u64,
    coin_delta: f64,
) -> f64 {
    factor * sigma * underlying_usd * (latency_ns as f64 / YEAR_NS).sqrt() * coin_delta.abs()
}

/// One venue to compare.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate<'a> {
    /// The venue's settings.
    pub venue: &'a VenueCost,
    /// The order and market there.
    pub query: CostQuery<'a>,
}

/// The cheapest of several candidates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cheapest {
    /// Its index among the candidates.
    pub index: usize,
    /// Its venue.
    pub venue: Venue,
    /// Its cost.
    pub cost: CostBreakdown,
    /// Candidates that could not be costed (not enough depth, no chain head, bad input).
    pub skipped: u32,
}

/// The candidate with the lowest total cost (the first one on a tie, so the caller's order is
/// the preference); `None` if none could be costed.
pub fn cheapest(candidates: &[Candidate<'_>]) -> Option<Cheapest> {
    let mut best: Option<Cheapest> = None;
    let mut skipped = 0;
    for (index, c) in candidates.iter().enumerate() {
        match all_in_cost(c.venue, &c.query) {
            Ok(cost) => {
                if best.is_none_or(|b| cost.total < b.cost.total) {
                    best = Some(Cheapest {
                        index,
                        venue: c.venue.venue,
                        cost,
                        skipped: 0,
                    });
                }
            }
            Err(_) => skipped += 1,
        }
    }
    best.map(|b| Cheapest { skipped, ..b })
}

#[cfg(test)]
mod tests;
