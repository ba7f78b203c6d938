//! The fixed-size market event every venue parser produces and every ring carries
//! (DESIGN.md "Data flow"): `Copy`, 128 bytes, 64-byte aligned, no pointers.
//!
//! Prices keep the venue's quote unit (coin for inverse options; the unit is recorded on the
//! instrument, see [`crate::instrument`]); volatilities are decimals (0.551, never 55.1);
//! sizes are in the venue's contract units. A field the venue did not send is `f64::NAN`
//! (never 0, which is a real price). Timestamps are nanoseconds: `exchange_ts_ns` is the
//! venue's clock (Unix epoch), `recv_ts_ns` the local clock at socket read ([`crate::clock`]).

use crate::instrument::InstrumentId;

/// Which venue's protocol produced an event.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Venue {
    /// Deribit JSON-RPC 2.0 over WebSocket (and keel-sim speaking it).
    Deribit = 1,
    /// Binance spot and USDⓈ-M futures streams (and keel-sim speaking them).
    Binance = 2,
    /// OKX v5 public WebSocket.
    Okx = 3,
    /// Bybit v5 public WebSocket.
    Bybit = 4,
    /// An Ethereum JSON-RPC node (eth_subscribe newHeads).
    Ethereum = 5,
    /// Hyperliquid's perpetuals: the `l2Book` WebSocket subscription (and keel-sim speaking
    /// it); orders are signed actions (`keel_engine::exec::hyperliquid`).
    Hyperliquid = 6,
}

impl Venue {
    /// Lower-case name, as on the command line (`--venue deribit`).
    pub fn name(self) -> &'static str {
        match self {
            Venue::Deribit => "deribit",
            Venue::Binance => "binance",
            Venue::Okx => "okx",
            Venue::Bybit => "bybit",
            Venue::Ethereum => "eth",
            Venue::Hyperliquid => "hyperliquid",
        }
    }
}

/// Side of a book level or the aggressor of a trade.
#[repr(i8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Bid / buyer.
    Buy = 1,
    /// Ask / seller.
    Sell = -1,
}

/// An option's venue ticker (Deribit `ticker.*`, OKX `opt-summary` + `tickers`, Bybit option
/// `tickers`). Prices in the venue's quote unit, vols as decimals, absent fields NaN.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptionTicker {
    /// Best bid price.
    pub bid: f64,
    /// Best bid size.
    pub bid_size: f64,
    /// Best ask price.
    pub ask: f64,
    /// Best ask size.
    pub ask_size: f64,
    /// The venue's mark price.
    pub mark: f64,
    /// Mark implied volatility (decimal).
    pub mark_iv: f64,
    /// Bid implied volatility (decimal).
    pub bid_iv: f64,
    /// Ask implied volatility (decimal).
    pub ask_iv: f64,
    /// The forward/underlying the venue prices this option on (Deribit `underlying_price`).
    pub underlying: f64,
    /// The index price.
    pub index: f64,
}

/// The venue's own published Greeks for an option, kept as a cross-check (USD Black-76 Greeks
/// as the venue defines them: Deribit vega per vol point, theta per day).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VenueGreeks {
    /// Delta.
    pub delta: f64,
    /// Gamma.
    pub gamma: f64,
    /// Vega.
    pub vega: f64,
    /// Theta.
    pub theta: f64,
    /// Rho.
    pub rho: f64,
}

/// What an event says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EventBody {
    /// Best bid and offer (Binance `bookTicker`, OKX/Bybit linear tickers, Deribit perpetual
    /// ticker, Deribit `quote`).
    Quote {
        /// Best bid price.
        bid: f64,
        /// Best bid size.
        bid_size: f64,
        /// Best ask price.
        ask: f64,
        /// Best ask size.
        ask_size: f64,
    },
    /// An option ticker.
    OptionTicker(OptionTicker),
    /// The venue's Greeks for an option (emitted right after its `OptionTicker`, same
    /// timestamps).
    VenueGreeks(VenueGreeks),
    /// A mark price (Deribit `markprice.options`, Binance `markPrice`): `iv` NaN where the
    /// venue gives none, `index` and `funding_rate` NaN where absent.
    Mark {
        /// Mark price.
        mark: f64,
        /// Mark implied volatility (decimal).
        iv: f64,
        /// Index price.
        index: f64,
        /// Funding rate (perpetuals), decimal per funding interval.
        funding_rate: f64,
    },
    /// An index price (Deribit `deribit_price_index`, OKX `index-tickers`).
    Index {
        /// Index price.
        price: f64,
    },
    /// One aggregated trade (Binance `aggTrade`, Deribit `trades`).
    Trade {
        /// Price.
        price: f64,
        /// Quantity.
        qty: f64,
        /// Aggressor side.
        side: Side,
        /// The venue's trade id.
        trade_id: u64,
    },
    /// One price level of an order book update; `size` 0 deletes the level. A message with
    /// several levels emits one event each; `first`/`last` mark the message's bounds and
    /// `snapshot` says the levels replace the book.
    BookLevel {
        /// Price.
        price: f64,
        /// Size at that price after the update (0 = level removed).
        size: f64,
        /// Bid or ask.
        side: Side,
        /// The levels replace the whole book (snapshot) rather than update it.
        snapshot: bool,
        /// First level of its message.
        first: bool,
        /// Last level of its message.
        last: bool,
        /// The venue's sequence number of the message (Deribit change_id, Binance `u`).
        seq: u64,
    },
    /// The venue's update numbering skipped: the book for `instrument` is unreliable until a
    /// new snapshot (which the connection requests at once).
    SequenceGap {
        /// The sequence number expected (the previous message's).
        expected: u64,
        /// What the message said it follows.
        got: u64,
    },
    /// An Ethereum chain head (eth_subscribe newHeads), for gas prediction.
    ChainHead {
        /// Block number.
        number: u64,
        /// Base fee per gas, in wei.
        base_fee_wei: u64,
        /// Gas used.
        gas_used: u64,
        /// Gas limit.
        gas_limit: u64,
        /// Block timestamp, seconds.
        timestamp_s: u64,
    },
    /// The connection is up and subscribed (first time).
    Connected,
    /// The connection failed or went stale: data from it must stop driving hedges at once.
    Disconnected {
        /// Why, as a small code.
        reason: DisconnectReason,
    },
    /// The connection is back, resubscribed; books need their new snapshots.
    Reconnected {
        /// Reconnection attempts it took.
        attempts: u32,
    },
    /// One subscription (this instrument's ticker or book; [`InstrumentId::NONE`] for a
    /// subscription without an instrument) has been silent longer than its limit while its
    /// connection stays up: stop hedging on it at once. Emitted once per silence.
    Stale {
        /// Local time ([`crate::clock::now_ns`]) of its last data, or of the start of the
        /// wait when none came since the (re)connection.
        since_ns: u64,
    },
    /// Data flows again on a subscription reported [`EventBody::Stale`] (emitted just before
    /// that data).
    Fresh,
}

/// Why a connection dropped.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The peer closed the TCP connection or sent a WebSocket close.
    PeerClosed,
    /// A socket, TLS or WebSocket protocol error.
    Protocol,
    /// No message (or no heartbeat reply) within the staleness limit.
    Stale,
    /// The connect or handshake failed or timed out.
    ConnectFailed,
    /// The venue rejected the subscription or authentication.
    Rejected,
    /// Shut down on request.
    Shutdown,
}

/// One normalised market event.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MarketEvent {
    /// The venue's timestamp of the data, ns since the Unix epoch (0 if the venue sent none).
    pub exchange_ts_ns: u64,
    /// Local clock at socket read, ns ([`crate::clock::now_ns`]).
    pub recv_ts_ns: u64,
    /// The instrument, or [`InstrumentId::NONE`] for connection and chain events.
    pub instrument: InstrumentId,
    /// The venue whose protocol carried it.
    pub venue: Venue,
    /// The connection it came from (index in its feed thread), for connection events and
    /// staleness per source.
    pub conn: u8,
    /// What happened.
    pub body: EventBody,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_is_two_cache_lines() {
        assert_eq!(core::mem::size_of::<MarketEvent>(), 128);
        assert_eq!(core::mem::align_of::<MarketEvent>(), 64);
    }
}
