//! Venue parsers: one WebSocket text payload in, fixed-size [`MarketEvent`]s out through a
//! callback, plus what the message was ([`Parsed`]) so the session can answer heartbeats, follow
//! acknowledgements and resnapshot books after a sequence gap. Also the request builders each
//! venue needs (subscribe, heartbeat replies), writing into a caller's buffer.
//!
//! Owns the venues' message formats and their normalisation into the units of
//! [`crate::event`]: prices in the venue's quote unit, volatilities as decimals (Deribit's
//! `mark_iv` 45.43 → 0.4543), timestamps in ns. Knows nothing of sockets (see [`crate::net`]).
//!
//! Must never allocate per message after construction (events are staged in a buffer
//! allocated once; instrument lookups hash the borrowed symbol once), never panic on any input,
//! and never let one bad message disturb the next: a malformed message is an `Err` naming the
//! venue, the problem, the byte offset and the message's first bytes, and is counted in
//! [`ParserStats::malformed`]; a message for an instrument not in the registry is counted in
//! [`ParserStats::unknown_instruments`] and is not an error.
//!
//! Every message is all-or-nothing: its events are staged and handed to `emit` only once the
//! whole payload has parsed, so a cut or corrupted message emits nothing and changes no
//! sequence state. Messages with more events than the staging buffer ([`STAGED_EVENTS`]: large
//! book snapshots, `markprice.options`) are parsed twice, once to validate and once to emit.
//!
//! Conventions shared by the venues:
//! - a side the venue reports empty (price 0 with size 0, or price `null`/`""`) has price NaN,
//!   size 0, and NaN implied volatility;
//! - `exchange_ts_ns` is the venue's time of the data (Deribit `timestamp`, Binance `T` where
//!   the event has one and `E` otherwise, OKX/Bybit `ts`), 0 when the message has none;
//! - book levels carry `first`/`last` flags over one message; an empty snapshot is a single
//!   level with price NaN and size 0 (`first` and `last` set) so that the consumer clears the
//!   book.

pub mod binance;
pub mod bybit;
pub mod deribit;
pub mod ethereum;
pub mod hyperliquid;
pub mod json;
pub mod okx;

use crate::event::{EventBody, MarketEvent, Venue};
use crate::instrument::{Instrument, InstrumentId, InstrumentKind, Instruments};
use core::fmt;
use json::JsonError;
use rustc_hash::FxHashMap;
use thiserror::Error;

pub use binance::{BinanceMarket, BinanceParser};
pub use bybit::BybitParser;
pub use deribit::{DeribitParser, OptionName};
pub use ethereum::EthereumParser;
pub use hyperliquid::HyperliquidParser;
pub use okx::OkxParser;

/// Events a message may stage before it is parsed a second time to emit directly.
pub const STAGED_EVENTS: usize = 64;

/// Bytes of a rejected message kept in its [`ParseError`].
pub const PREFIX_LEN: usize = 64;

/// What a message was, after its events (if any) went to `emit`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Parsed<'a> {
    /// Market data: `count` events emitted (0 when every instrument was unknown).
    Events {
        /// Events emitted.
        count: u32,
    },
    /// A book update did not follow the last one applied: a [`EventBody::SequenceGap`] was
    /// emitted and the instrument's book updates are dropped until a new snapshot, which the
    /// session should request now (resubscribe, or a REST snapshot for Binance).
    Gap {
        /// The instrument whose book is unreliable.
        instrument: InstrumentId,
    },
    /// A book update dropped because the instrument's book waits for a snapshot (after a gap)
    /// or because it is older than the snapshot (Binance).
    BookSkipped {
        /// The instrument.
        instrument: InstrumentId,
    },
    /// A request's result or a subscription acknowledgement; `result` is the venue's result,
    /// raw: the JSON of Deribit's, Ethereum's and Binance's `result` and of OKX's `arg`, and
    /// the text of Bybit's `op` (`subscribe`).
    Ack {
        /// The request id echoed, when the venue echoes a numeric one.
        id: Option<u64>,
        /// Raw JSON bytes of the result.
        result: &'a [u8],
    },
    /// The venue asks for a heartbeat reply now (Deribit `test_request`: send `public/test`).
    HeartbeatRequest,
    /// A heartbeat that needs no reply.
    Heartbeat,
    /// The venue's answer to our ping.
    Pong,
    /// An error response (rejected request or subscription).
    Error {
        /// The request id echoed, if any.
        id: Option<u64>,
        /// The venue's error code (0 if it sent none).
        code: i64,
        /// The venue's message, raw (escapes not decoded).
        message: &'a [u8],
    },
    /// A notice from the venue (OKX `notice`: e.g. the connection closes soon for an upgrade).
    Notice {
        /// The venue's code.
        code: i64,
        /// The venue's message, raw.
        message: &'a [u8],
    },
    /// A well-formed message of a channel, event or method this parser does not handle.
    UnknownChannel {
        /// Its channel, topic, event type or method, raw.
        channel: &'a [u8],
    },
}

/// Counters of one parser, since construction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParserStats {
    /// Messages given to `parse`.
    pub messages: u64,
    /// Events emitted.
    pub events: u64,
    /// Instruments (entries of a message) not in the registry, skipped.
    pub unknown_instruments: u64,
    /// Messages rejected with a [`ParseError`].
    pub malformed: u64,
    /// Sequence gaps detected.
    pub gaps: u64,
    /// Book updates dropped while waiting for a snapshot, or older than it.
    pub book_skipped: u64,
    /// Acknowledgements, heartbeats, pongs, errors and notices.
    pub control: u64,
    /// Messages of channels this parser does not handle.
    pub unknown_channels: u64,
}

/// The first bytes of a rejected message, copied (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    bytes: [u8; PREFIX_LEN],
    len: u8,
}

impl Prefix {
    /// Copies the first [`PREFIX_LEN`] bytes of `payload`.
    pub fn of(payload: &[u8]) -> Self {
        let mut bytes = [0u8; PREFIX_LEN];
        let n = payload.len().min(PREFIX_LEN);
        if let (Some(dst), Some(src)) = (bytes.get_mut(..n), payload.get(..n)) {
            dst.copy_from_slice(src);
        }
        Self {
            bytes,
            len: n as u8,
        }
    }

    /// The bytes kept.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_bytes().escape_ascii())
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.as_bytes().escape_ascii())
    }
}

/// What was wrong with a message, beyond JSON syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Problem {
    /// The JSON itself (syntax, a value of the wrong type, a number out of range).
    #[error(transparent)]
    Json(#[from] JsonError),
    /// A field the message kind requires is absent.
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// A field is present with a value the venue does not define.
    #[error("field `{field}` has an unexpected value at byte {at}")]
    BadValue {
        /// The field.
        field: &'static str,
        /// Byte offset of the value.
        at: u32,
    },
    /// A timestamp that does not fit in u64 nanoseconds.
    #[error("timestamp `{0}` out of range")]
    TimestampRange(&'static str),
    /// The venue answered a start-up request with an error.
    #[error("the venue answered with error {code}")]
    VenueError {
        /// The venue's error code.
        code: i64,
    },
}

/// A message a parser rejected: the venue, what was wrong and the message's first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("{} message rejected: {problem} (message starts \"{prefix}\")", venue.name())]
pub struct ParseError {
    /// The venue whose parser rejected it.
    pub venue: Venue,
    /// What was wrong.
    pub problem: Problem,
    /// The message's first bytes.
    pub prefix: Prefix,
}

impl ParseError {
    /// An error for `payload`.
    pub fn new(venue: Venue, problem: Problem, payload: &[u8]) -> Self {
        Self {
            venue,
            problem,
            prefix: Prefix::of(payload),
        }
    }
}

/// What every venue parser offers, for sessions and benches that hold any of them.
pub trait VenueParser: Send {
    /// The venue whose messages it parses.
    fn venue(&self) -> Venue;

    /// Parses one complete WebSocket payload; events go to `emit` only if it parses whole.
    fn parse<'a>(
        &mut self,
        payload: &'a [u8],
        recv_ts_ns: u64,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<Parsed<'a>, ParseError>;

    /// Counters since construction.
    fn stats(&self) -> ParserStats;

    /// Forgets every book's sequence state (after a reconnection the new subscription starts
    /// with snapshots). Parsers without books have nothing to forget.
    fn reset_books(&mut self) {}

    /// Marks `instrument`'s book as waiting for a REST snapshot that the session is fetching:
    /// its updates are dropped ([`Parsed::BookSkipped`]) without a gap event until
    /// [`apply_book_snapshot`](Self::apply_book_snapshot). Only Binance books start from REST
    /// snapshots; for other parsers this does nothing.
    fn await_book_snapshot(&mut self, instrument: InstrumentId) {
        let _ = instrument;
    }

    /// Applies a REST book snapshot for `symbol` (Binance `GET /fapi/v1/depth`,
    /// `/api/v3/depth`): emits its levels as a snapshot and sequences later updates from it.
    /// Parsers without REST snapshots emit nothing and answer `Events { count: 0 }`.
    fn apply_book_snapshot<'a>(
        &mut self,
        symbol: &[u8],
        payload: &'a [u8],
        recv_ts_ns: u64,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<Parsed<'a>, ParseError> {
        let _ = (symbol, payload, recv_ts_ns, emit);
        Ok(Parsed::Events { count: 0 })
    }
}

/// The [`VenueParser`] impl of a parser whose inherent `parse` and `stats` field already do the
/// work (every venue's), so the forwarding is written once; `reset_books` for those with books.
macro_rules! impl_venue_parser {
    ($ty:ty $(, $reset:ident)? $(; $($extra:item)*)?) => {
        impl $crate::venues::VenueParser for $ty {
            fn venue(&self) -> $crate::event::Venue {
                VENUE
            }

            fn parse<'a>(
                &mut self,
                payload: &'a [u8],
                recv_ts_ns: u64,
                emit: &mut dyn FnMut($crate::event::MarketEvent),
            ) -> Result<$crate::venues::Parsed<'a>, $crate::venues::ParseError> {
                <$ty>::parse(self, payload, recv_ts_ns, emit)
            }

            fn stats(&self) -> $crate::venues::ParserStats {
                self.stats
            }

            $(
                fn $reset(&mut self) {
                    <$ty>::$reset(self);
                }
            )?

            $($($extra)*)?
        }
    };
}
pub(crate) use impl_venue_parser;

/// A venue's symbols resolved to ids and kinds, built once; lookups hash the borrowed bytes
/// once and never allocate.
#[derive(Clone, Debug, Default)]
pub(crate) struct SymbolTable {
    map: FxHashMap<Box<[u8]>, (InstrumentId, InstrumentKind)>,
    /// One past the highest id in the table: sizes per-instrument state tables.
    id_bound: usize,
}

impl SymbolTable {
    /// The instruments of `venue` that `keep` accepts.
    pub(crate) fn build(
        instruments: &Instruments,
        venue: Venue,
        keep: impl Fn(&Instrument) -> bool,
    ) -> Self {
        let mut map = FxHashMap::default();
        let mut id_bound = 0;
        for (id, inst) in instruments.iter() {
            if inst.venue == venue && keep(inst) {
                map.insert(inst.name.as_bytes().into(), (id, inst.kind));
                id_bound = id_bound.max(id.0 as usize + 1);
            }
        }
        Self { map, id_bound }
    }

    #[inline]
    pub(crate) fn get(&self, name: &[u8]) -> Option<(InstrumentId, InstrumentKind)> {
        self.map.get(name).copied()
    }

    pub(crate) fn id_bound(&self) -> usize {
        self.id_bound
    }
}

/// Where a parse pass puts its events: the staging buffer (first pass) or `emit` directly
/// (second pass of a message too large to stage).
pub(crate) trait Sink {
    fn push(&mut self, ev: MarketEvent);
    /// An entry for an instrument not in the registry.
    fn unknown(&mut self);
}

/// The staging buffer, allocated once with room for [`STAGED_EVENTS`].
pub(crate) struct Staged {
    events: Vec<MarketEvent>,
    overflow: bool,
    unknown: u32,
}

impl Staged {
    pub(crate) fn new() -> Self {
        Self {
            events: Vec::with_capacity(STAGED_EVENTS),
            overflow: false,
            unknown: 0,
        }
    }

    #[inline]
    pub(crate) fn clear(&mut self) {
        self.events.clear();
        self.overflow = false;
        self.unknown = 0;
    }

    /// True when more events came than fit: nothing must be emitted from the buffer.
    #[inline]
    pub(crate) fn overflowed(&self) -> bool {
        self.overflow
    }

    #[inline]
    pub(crate) fn unknown_count(&self) -> u32 {
        self.unknown
    }

    #[inline]
    pub(crate) fn events_mut(&mut self) -> &mut [MarketEvent] {
        &mut self.events
    }

    /// Hands every staged event to `emit`; returns how many.
    #[inline]
    pub(crate) fn flush(&mut self, emit: &mut dyn FnMut(MarketEvent)) -> u32 {
        for ev in &self.events {
            emit(*ev);
        }
        self.events.len() as u32
    }
}

impl Sink for Staged {
    #[inline]
    fn push(&mut self, ev: MarketEvent) {
        if self.events.len() < STAGED_EVENTS {
            self.events.push(ev);
        } else {
            self.overflow = true;
        }
    }

    #[inline]
    fn unknown(&mut self) {
        self.unknown += 1;
    }
}

/// Straight to `emit`, counting: the second pass of a message too large to stage, and the
/// paths that emit only after the whole message has parsed (Deribit's ticker fast path).
pub(crate) struct Direct<'e> {
    emit: &'e mut dyn FnMut(MarketEvent),
    pub(crate) count: u32,
    pub(crate) unknown: u32,
}

impl<'e> Direct<'e> {
    pub(crate) fn new(emit: &'e mut dyn FnMut(MarketEvent)) -> Self {
        Self {
            emit,
            count: 0,
            unknown: 0,
        }
    }
}

impl Sink for Direct<'_> {
    #[inline]
    fn push(&mut self, ev: MarketEvent) {
        (self.emit)(ev);
        self.count += 1;
    }

    #[inline]
    fn unknown(&mut self) {
        self.unknown += 1;
    }
}

/// An event with `conn` 0 (the connection sets it).
#[inline]
pub(crate) fn event(
    venue: Venue,
    instrument: InstrumentId,
    exchange_ts_ns: u64,
    recv_ts_ns: u64,
    body: EventBody,
) -> MarketEvent {
    MarketEvent {
        exchange_ts_ns,
        recv_ts_ns,
        instrument,
        venue,
        conn: 0,
        body,
    }
}

/// Milliseconds since the epoch to nanoseconds.
#[inline]
pub(crate) fn ms_to_ns(ms: u64, field: &'static str) -> Result<u64, Problem> {
    ms.checked_mul(1_000_000)
        .ok_or(Problem::TimestampRange(field))
}

/// A book side the venue reports empty (price 0 and size 0, or no price) as (NaN, 0).
#[inline]
pub(crate) fn side_or_empty(price: f64, size: f64) -> (f64, f64) {
    if (price == 0.0 && size == 0.0) || price.is_nan() {
        (f64::NAN, if size.is_nan() { 0.0 } else { size })
    } else {
        (price, size)
    }
}

/// Updates the counters after one message.
#[inline]
pub(crate) fn account(stats: &mut ParserStats, res: &Result<Parsed<'_>, Problem>) {
    stats.messages += 1;
    match res {
        Ok(Parsed::Events { count }) => stats.events += u64::from(*count),
        Ok(Parsed::Gap { .. }) => {
            stats.gaps += 1;
            stats.events += 1;
        }
        Ok(Parsed::BookSkipped { .. }) => stats.book_skipped += 1,
        Ok(Parsed::UnknownChannel { .. }) => stats.unknown_channels += 1,
        Ok(
            Parsed::Ack { .. }
            | Parsed::HeartbeatRequest
            | Parsed::Heartbeat
            | Parsed::Pong
            | Parsed::Error { .. }
            | Parsed::Notice { .. },
        ) => stats.control += 1,
        Err(_) => stats.malformed += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_bounded_and_printable() {
        let long = [b'x'; 200];
        assert_eq!(Prefix::of(&long).as_bytes().len(), PREFIX_LEN);
        assert_eq!(Prefix::of(b"ab\n\xff").to_string(), "ab\\n\\xff");
        let e = ParseError::new(Venue::Okx, Problem::Missing("data"), b"{\"arg\":1}");
        assert_eq!(
            e.to_string(),
            "okx message rejected: missing field `data` (message starts \"{\\\"arg\\\":1}\")"
        );
    }

    #[test]
    fn empty_sides() {
        assert!(side_or_empty(0.0, 0.0).0.is_nan());
        assert_eq!(side_or_empty(0.0, 0.0).1, 0.0);
        assert_eq!(side_or_empty(0.0, 5.0), (0.0, 5.0));
        assert!(side_or_empty(f64::NAN, f64::NAN).0.is_nan());
        assert_eq!(side_or_empty(f64::NAN, f64::NAN).1, 0.0);
        assert_eq!(side_or_empty(1.5, 2.0), (1.5, 2.0));
    }
}
