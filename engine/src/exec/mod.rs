//! Execution: the hedge intents the policy sends, the fills that come back, and the exec tile
//! that turns one into the other (DESIGN.md "Data flow": exec thread).
//!
//! Owns the order connections and the orders in flight. This first exec tile sends
//! Deribit-format `private/buy` / `private/sell` market orders over one warm WebSocket
//! ([`deribit::DeribitOrders`]) — to keel-sim's order endpoint, or to Deribit itself once keys
//! and `--live` are given — or, in a dry run against real venues, fills on paper at the
//! intent's reference price ([`PaperExec`]). On chain, [`evm::exec::EvmExecTile`] races
//! pre-signed ladders to RPC nodes and block builders ([`race::RaceBook`]). On Hyperliquid,
//! [`hyperliquid::HyperliquidExec`] fires pre-signed order actions kept fresh by a signer thread.
//!
//! Never allocates per order (requests are formatted into a buffer reserved at start-up), never
//! drops a fill (the fill edge never drops: a full ring is retried, never overwritten), and never
//! forgets an order whose fate is unknown: after a reconnect or a timeout it asks the venue by
//! its label, and until then the exposure stays counted as in flight.

pub mod binance;
pub mod deribit;
pub mod evm;
pub mod hyperliquid;
pub mod race;
pub mod router;
mod tile;

pub use tile::{ExecCounters, ExecTile, OrderSession, PaperExec};

use keel_feeds::event::{Side, Venue};
use keel_feeds::instrument::InstrumentId;

use crate::pipeline::telemetry::TickTrace;

/// A decision to hedge: what to trade, how much, and the delta it is meant to remove.
/// Fixed size, `Copy`; carries the trace of the tick that caused it.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HedgeIntent {
    /// Stage timestamps of the originating tick.
    pub trace: TickTrace,
    /// Unique per run (also the JSON-RPC id and, with the run tag, the order label).
    pub id: u64,
    /// Amount in the venue's unit, > 0: USD for an inverse perpetual (Deribit's
    /// BTC-PERPETUAL), coin for a linear perpetual (Binance's BTCUSDT, Hyperliquid's BTC: the
    /// Hyperliquid exec fires the ladder's rung nearest the amount without exceeding it) and for the on-chain
    /// venue (`Venue::Ethereum`: the size of the pre-signed rung, in coin of the underlying;
    /// the ladder maps it to the token's integer amount).
    pub amount: f64,
    /// Price the decision assumed (mid), quote currency; paper fills use it.
    pub ref_price: f64,
    /// Delta the hedge adds when filled in full, coin (signed).
    pub coin_delta: f64,
    /// What to trade.
    pub instrument: InstrumentId,
    /// Buy or sell.
    pub side: Side,
    /// Where. `Venue::Ethereum` is the on-chain venue (a DEX swap raced to RPC nodes and
    /// block builders by `evm::exec::EvmExecTile`); the same venue id names the chain-head feed.
    /// `Venue::Hyperliquid`: pre-signed actions over Hyperliquid's WebSocket `post` channel
    /// (`hyperliquid::HyperliquidExec`).
    pub venue: Venue,
}

/// How an order ended.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillStatus {
    /// Filled in full.
    Filled = 1,
    /// Partly filled; the rest is cancelled or will not fill (market order).
    Partial = 2,
    /// Refused by the venue (nothing filled).
    Rejected = 3,
    /// Filled on paper (dry run against real venues).
    Paper = 4,
    /// The venue has no order with this label (it never arrived): nothing filled.
    NotFound = 5,
    /// An earlier `Filled` fill undone: a block builder accepted the on-chain hedge's bundle
    /// but no block included it (its target block passed and the chain's nonce did not move).
    /// `filled` is minus the earlier fill and `price` its price; the intent is no longer in
    /// flight (its first fill released it), so this one is applied on its own.
    Lost = 6,
}

/// The outcome of one intent. Fixed size, `Copy`; carries the trace through `sent_ns`.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fill {
    /// Stage timestamps of the originating tick, `sent_ns` set.
    pub trace: TickTrace,
    /// The intent's id.
    pub intent_id: u64,
    /// Filled amount, venue unit, signed (buy > 0).
    pub filled: f64,
    /// Average fill price (NaN when nothing filled).
    pub price: f64,
    /// The intent's whole coin delta (what was counted in flight).
    pub intent_coin_delta: f64,
    /// Local time the outcome was known, ns.
    pub done_ns: u64,
    /// The instrument.
    pub instrument: InstrumentId,
    /// The venue's error code when rejected (0 otherwise); at or below −1000 the exec side
    /// refused the decision before sending anything (the EVM exec's `Refusal::code`).
    pub error_code: i32,
    /// The outcome.
    pub status: FillStatus,
}

impl Fill {
    /// The coin delta actually added: the intent's delta scaled by the filled fraction.
    pub fn coin_delta(&self, intent_amount: f64) -> f64 {
        if intent_amount > 0.0 {
            self.intent_coin_delta * (self.filled.abs() / intent_amount).min(1.0)
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_two_cache_lines_at_most() {
        assert_eq!(core::mem::size_of::<HedgeIntent>(), 128);
        assert_eq!(core::mem::align_of::<HedgeIntent>(), 64);
        assert_eq!(core::mem::size_of::<Fill>(), 128);
        assert_eq!(core::mem::align_of::<Fill>(), 64);
    }
}
