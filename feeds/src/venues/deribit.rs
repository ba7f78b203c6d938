//! Deribit JSON-RPC 2.0 over WebSocket: subscription notifications (`ticker`, `book`,
//! `deribit_price_index`, `markprice.options`, `trades`, `quote`) into events, heartbeats,
//! results and errors into [`Parsed`]; the requests a session sends ([`subscribe`],
//! [`set_heartbeat`], [`test_reply`], ...); and, in [`instruments`], the start-up
//! `public/get_instruments` result and the option-name grammar.
//!
//! Owns Deribit's formats and units: ticker `mark_iv`/`bid_iv`/`ask_iv` are percent and become
//! decimals; `markprice.options` `iv` is already a fraction; option prices stay in coin for
//! inverse options; timestamps are ms and become ns. Book updates are checked against the last
//! `change_id` applied per instrument (`prev_change_id` must equal it); a mismatch emits a
//! `SequenceGap`, reports [`Parsed::Gap`], and drops that instrument's changes until its next
//! snapshot. Must never allocate per message or panic on any input.

mod fast;
pub mod instruments;

pub use instruments::{NameError, OptionName, parse_instruments, parse_option_name};

use super::json::{Scanner, Span, write_str, write_u64};
use super::{
    Direct, ParseError, Parsed, ParserStats, Problem, Sink, Staged, SymbolTable, account, event,
    ms_to_ns, side_or_empty,
};
use crate::event::{EventBody, MarketEvent, OptionTicker, Side, Venue, VenueGreeks};
use crate::instrument::{InstrumentId, InstrumentKind, Instruments};

const VENUE: Venue = Venue::Deribit;

/// Book sequencing state of one instrument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BookSeq {
    /// No snapshot seen since construction or [`DeribitParser::reset_books`].
    Unknown,
    /// A gap was reported: changes are dropped until a snapshot.
    AwaitingSnapshot,
    /// The `change_id` of the last message applied.
    Live(u64),
}

/// The channels this parser handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Channel {
    Ticker,
    Book,
    PriceIndex,
    MarkPriceOptions,
    Trades,
    Quote,
}

fn channel_kind(ch: &[u8]) -> Option<Channel> {
    if ch.starts_with(b"ticker.") {
        Some(Channel::Ticker)
    } else if ch.starts_with(b"book.") {
        Some(Channel::Book)
    } else if ch.starts_with(b"deribit_price_index.") {
        Some(Channel::PriceIndex)
    } else if ch.starts_with(b"markprice.options.") {
        Some(Channel::MarkPriceOptions)
    } else if ch.starts_with(b"trades.") {
        Some(Channel::Trades)
    } else if ch.starts_with(b"quote.") {
        Some(Channel::Quote)
    } else {
        None
    }
}

/// A book message's fields, levels still as spans.
#[derive(Clone, Copy, Debug)]
struct BookMsg {
    instrument: Option<InstrumentId>,
    snapshot: bool,
    change_id: u64,
    prev_change_id: Option<u64>,
    ts_ns: u64,
    bids: Option<Span>,
    asks: Option<Span>,
}

/// A subscription notification after its `params` parsed.
enum Notification<'a> {
    /// Events staged; `data` is where to parse again if they overflowed the buffer.
    Events {
        channel: Channel,
        data: Span,
    },
    Book(BookMsg),
    Unknown(&'a [u8]),
}

/// Parses Deribit messages. Built once from the instrument registry (every Deribit
/// instrument, including indices such as `btc_usd` for `deribit_price_index`).
pub struct DeribitParser {
    symbols: SymbolTable,
    books: Vec<BookSeq>,
    staged: Staged,
    stats: ParserStats,
    /// The `ticker.*` fast path's index and learned shapes (boxed: a few KiB).
    ticker: Box<fast::TickerPath>,
}

impl DeribitParser {
    /// A parser for the Deribit instruments of `instruments`.
    pub fn new(instruments: &Instruments) -> Self {
        let symbols = SymbolTable::build(instruments, VENUE, |_| true);
        let books = vec![BookSeq::Unknown; symbols.id_bound()];
        Self {
            symbols,
            books,
            staged: Staged::new(),
            stats: ParserStats::default(),
            ticker: Box::new(fast::TickerPath::new()),
        }
    }

    /// Replaces the instrument table (a re-fetched instrument list; allocates). Book states of
    /// instruments still present are kept.
    pub fn set_instruments(&mut self, instruments: &Instruments) {
        self.symbols = SymbolTable::build(instruments, VENUE, |_| true);
        self.books.resize(self.symbols.id_bound(), BookSeq::Unknown);
    }

    /// Forgets every book's sequence (after a reconnection: the new subscription starts with
    /// snapshots).
    pub fn reset_books(&mut self) {
        self.books.fill(BookSeq::Unknown);
    }

    /// Counters since construction.
    pub fn stats(&self) -> ParserStats {
        self.stats
    }

    /// Parses one complete payload; see [`Parsed`] for what comes back.
    ///
    /// A `ticker.*` notification takes a specialised single walk (module `fast`); anything that
    /// walk does not handle, and every other message, takes the general path
    /// ([`DeribitParser::parse_general`]), which gives the same answer for every input.
    #[inline]
    pub fn parse<'a>(
        &mut self,
        payload: &'a [u8],
        recv_ts_ns: u64,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<Parsed<'a>, ParseError> {
        let res = match self.fast_ticker(payload, recv_ts_ns, emit) {
            Some(parsed) => Ok(parsed),
            None => self.run(payload, recv_ts_ns, emit),
        };
        account(&mut self.stats, &res);
        res.map_err(|p| ParseError::new(VENUE, p, payload))
    }

    /// [`DeribitParser::parse`] without the ticker fast path: the general path alone, the
    /// oracle the fast path is tested against and the bench's `keel_general` row.
    pub fn parse_general<'a>(
        &mut self,
        payload: &'a [u8],
        recv_ts_ns: u64,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<Parsed<'a>, ParseError> {
        let res = self.run(payload, recv_ts_ns, emit);
        account(&mut self.stats, &res);
        res.map_err(|p| ParseError::new(VENUE, p, payload))
    }

    /// The ticker fast path: `None` when the message is not one it handles (nothing emitted).
    #[inline]
    fn fast_ticker<'a>(
        &mut self,
        buf: &'a [u8],
        recv: u64,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Option<Parsed<'a>> {
        let f = self.ticker.parse(buf)?;
        // Missing fields and timestamp overflow are errors the general path reports.
        f.name?;
        ms_to_ns(f.ts_ms?, "timestamp").ok()?;
        let mut direct = Direct::new(emit);
        ticker_events(&f, &self.symbols, recv, &mut direct).ok()?;
        self.stats.unknown_instruments += u64::from(direct.unknown);
        Some(Parsed::Events {
            count: direct.count,
        })
    }

    fn run<'a>(
        &mut self,
        buf: &'a [u8],
        recv: u64,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<Parsed<'a>, Problem> {
        self.staged.clear();
        let mut sc = Scanner::new(buf);
        let mut obj = sc.object()?;
        let mut method: Option<&'a [u8]> = None;
        let mut id = None;
        let mut result = None;
        let mut error = None;
        let mut params = None;
        let mut note = None;
        while let Some(key) = obj.next(&mut sc)? {
            match key {
                b"method" => method = Some(sc.str()?),
                b"params" if method == Some(b"subscription") => {
                    note = Some(self.params(&mut sc, recv)?);
                }
                b"params" => params = Some(sc.raw()?),
                b"id" => id = sc.u64_or_null()?,
                b"result" => result = Some(sc.raw()?),
                b"error" => error = Some(rpc_error(&mut sc)?),
                _ => sc.skip()?,
            }
        }
        sc.end()?;
        if let Some((code, message)) = error {
            return Ok(Parsed::Error { id, code, message });
        }
        match method {
            Some(b"subscription") => {
                let note = match (note, params) {
                    (Some(n), _) => n,
                    (None, Some(p)) => self.params(&mut Scanner::at(buf, p.start), recv)?,
                    (None, None) => return Err(Problem::Missing("params")),
                };
                self.commit(buf, note, recv, emit)
            }
            Some(b"heartbeat") => {
                let p = params.ok_or(Problem::Missing("params"))?;
                heartbeat(&mut Scanner::at(buf, p.start))
            }
            Some(other) => Ok(Parsed::UnknownChannel { channel: other }),
            None => match result {
                Some(r) => Ok(Parsed::Ack {
                    id,
                    result: sc.span_bytes(r),
                }),
                None => Err(Problem::Missing("result")),
            },
        }
    }

    /// `params` of a subscription notification: `{"channel": ..., "data": ...}`, in either
    /// order.
    fn params<'a>(&mut self, sc: &mut Scanner<'a>, recv: u64) -> Result<Notification<'a>, Problem> {
        let mut obj = sc.object()?;
        let mut channel: Option<&'a [u8]> = None;
        let mut data_span = None;
        let mut note = None;
        while let Some(key) = obj.next(sc)? {
            match key {
                b"channel" => channel = Some(sc.str()?),
                b"data" => match channel.map(channel_kind) {
                    Some(Some(kind)) => note = Some(self.data(kind, sc, recv)?),
                    _ => data_span = Some(sc.raw()?),
                },
                _ => sc.skip()?,
            }
        }
        let channel = channel.ok_or(Problem::Missing("params.channel"))?;
        let Some(kind) = channel_kind(channel) else {
            return Ok(Notification::Unknown(channel));
        };
        match (note, data_span) {
            (Some(n), _) => Ok(n),
            (None, Some(d)) => self.data(kind, &mut Scanner::at(sc.input(), d.start), recv),
            (None, None) => Err(Problem::Missing("params.data")),
        }
    }

    /// Parses `data` of a known channel, staging its events.
    fn data<'a>(
        &mut self,
        kind: Channel,
        sc: &mut Scanner<'a>,
        recv: u64,
    ) -> Result<Notification<'a>, Problem> {
        sc.peek()?;
        let start = sc.pos();
        if kind == Channel::Book {
            return book_msg(&self.symbols, sc).map(Notification::Book);
        }
        data_events(kind, &self.symbols, sc, recv, &mut self.staged)?;
        Ok(Notification::Events {
            channel: kind,
            data: Span {
                start,
                end: sc.pos(),
            },
        })
    }

    fn commit<'a>(
        &mut self,
        buf: &'a [u8],
        note: Notification<'a>,
        recv: u64,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<Parsed<'a>, Problem> {
        match note {
            Notification::Unknown(channel) => Ok(Parsed::UnknownChannel { channel }),
            Notification::Events { channel, data } => {
                self.stats.unknown_instruments += u64::from(self.staged.unknown_count());
                let count = if self.staged.overflowed() {
                    let mut direct = Direct::new(emit);
                    let mut sc = Scanner::at(buf, data.start);
                    data_events(channel, &self.symbols, &mut sc, recv, &mut direct)?;
                    direct.count
                } else {
                    self.staged.flush(emit)
                };
                Ok(Parsed::Events { count })
            }
            Notification::Book(msg) => self.commit_book(buf, msg, recv, emit),
        }
    }

    fn commit_book<'a>(
        &mut self,
        buf: &'a [u8],
        msg: BookMsg,
        recv: u64,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<Parsed<'a>, Problem> {
        let Some(inst) = msg.instrument else {
            self.stats.unknown_instruments += 1;
            return Ok(Parsed::Events { count: 0 });
        };
        // Validate (and stage) every level before touching the sequence state.
        let total = levels_all(buf, &msg, inst, recv, None, &mut self.staged)?;
        let Some(state) = self.books.get_mut(inst.0 as usize) else {
            self.stats.unknown_instruments += 1;
            return Ok(Parsed::Events { count: 0 });
        };
        if !msg.snapshot {
            let prev = msg
                .prev_change_id
                .ok_or(Problem::Missing("prev_change_id"))?;
            match *state {
                BookSeq::Live(last) if last == prev => {}
                BookSeq::AwaitingSnapshot => return Ok(Parsed::BookSkipped { instrument: inst }),
                BookSeq::Live(last) => return Ok(self.gap(inst, last, prev, msg.ts_ns, recv, emit)),
                BookSeq::Unknown => return Ok(self.gap(inst, 0, prev, msg.ts_ns, recv, emit)),
            }
        }
        *state = BookSeq::Live(msg.change_id);
        let count = if total == 0 {
            if msg.snapshot {
                emit(level_event(
                    inst,
                    &msg,
                    recv,
                    f64::NAN,
                    0.0,
                    Side::Buy,
                    true,
                    true,
                ));
                1
            } else {
                0
            }
        } else if self.staged.overflowed() {
            let mut direct = Direct::new(emit);
            levels_all(buf, &msg, inst, recv, Some(total), &mut direct)?;
            direct.count
        } else {
            if let Some(EventBody::BookLevel { last, .. }) =
                self.staged.events_mut().last_mut().map(|e| &mut e.body)
            {
                *last = true;
            }
            self.staged.flush(emit)
        };
        Ok(Parsed::Events { count })
    }

    fn gap<'a>(
        &mut self,
        inst: InstrumentId,
        expected: u64,
        got: u64,
        ts_ns: u64,
        recv: u64,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Parsed<'a> {
        if let Some(s) = self.books.get_mut(inst.0 as usize) {
            *s = BookSeq::AwaitingSnapshot;
        }
        emit(event(
            VENUE,
            inst,
            ts_ns,
            recv,
            EventBody::SequenceGap { expected, got },
        ));
        Parsed::Gap { instrument: inst }
    }
}

super::impl_venue_parser!(DeribitParser, reset_books);

/// `{"code": .., "message": .., "data": ..}`.
fn rpc_error<'a>(sc: &mut Scanner<'a>) -> Result<(i64, &'a [u8]), Problem> {
    let mut obj = sc.object()?;
    let mut code = None;
    let mut message: &'a [u8] = b"";
    while let Some(key) = obj.next(sc)? {
        match key {
            b"code" => code = Some(sc.i64()?),
            b"message" => message = sc.str_or_null()?.unwrap_or(b""),
            _ => sc.skip()?,
        }
    }
    Ok((code.ok_or(Problem::Missing("error.code"))?, message))
}

/// `params` of `method: "heartbeat"`: `{"type": "test_request" | "heartbeat"}`.
fn heartbeat<'a>(sc: &mut Scanner<'a>) -> Result<Parsed<'a>, Problem> {
    let mut obj = sc.object()?;
    let mut kind: Option<&'a [u8]> = None;
    while let Some(key) = obj.next(sc)? {
        match key {
            b"type" => kind = Some(sc.str()?),
            _ => sc.skip()?,
        }
    }
    match kind {
        Some(b"test_request") => Ok(Parsed::HeartbeatRequest),
        Some(b"heartbeat") => Ok(Parsed::Heartbeat),
        Some(other) => Ok(Parsed::UnknownChannel { channel: other }),
        None => Err(Problem::Missing("params.type")),
    }
}

/// Events of a non-book channel's `data` into `sink`.
fn data_events<S: Sink>(
    kind: Channel,
    symbols: &SymbolTable,
    sc: &mut Scanner<'_>,
    recv: u64,
    sink: &mut S,
) -> Result<(), Problem> {
    match kind {
        Channel::Ticker => ticker(symbols, sc, recv, sink),
        Channel::Quote => quote(symbols, sc, recv, sink),
        Channel::PriceIndex => price_index(symbols, sc, recv, sink),
        Channel::MarkPriceOptions => {
            let mut arr = sc.array()?;
            while arr.next(sc)? {
                mark_price(symbols, sc, recv, sink)?;
            }
            Ok(())
        }
        Channel::Trades => {
            let mut arr = sc.array()?;
            while arr.next(sc)? {
                trade(symbols, sc, recv, sink)?;
            }
            Ok(())
        }
        // Books are parsed by `book_msg`; nothing to stage here.
        Channel::Book => sc.skip().map_err(Problem::from),
    }
}

/// The fields of a `ticker.*` notification's data that become events; absent prices NaN.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TickerFields<'a> {
    pub(crate) name: Option<&'a [u8]>,
    pub(crate) ts_ms: Option<u64>,
    /// keel-sim's `sim_send_ns`, if the message carries it (see [`refine_ts`]).
    pub(crate) send_ns: Option<u64>,
    pub(crate) bid: f64,
    pub(crate) bid_size: f64,
    pub(crate) ask: f64,
    pub(crate) ask_size: f64,
    pub(crate) mark: f64,
    pub(crate) mark_iv: f64,
    pub(crate) bid_iv: f64,
    pub(crate) ask_iv: f64,
    pub(crate) underlying: f64,
    pub(crate) index: f64,
    pub(crate) funding: f64,
    pub(crate) greeks: Option<VenueGreeks>,
}

impl TickerFields<'_> {
    /// Nothing seen yet.
    pub(crate) const EMPTY: Self = Self {
        name: None,
        ts_ms: None,
        send_ns: None,
        bid: f64::NAN,
        bid_size: f64::NAN,
        ask: f64::NAN,
        ask_size: f64::NAN,
        mark: f64::NAN,
        mark_iv: f64::NAN,
        bid_iv: f64::NAN,
        ask_iv: f64::NAN,
        underlying: f64::NAN,
        index: f64::NAN,
        funding: f64::NAN,
        greeks: None,
    };
}

/// Greeks before any field is read: all NaN.
pub(crate) const NO_GREEKS: VenueGreeks = VenueGreeks {
    delta: f64::NAN,
    gamma: f64::NAN,
    vega: f64::NAN,
    theta: f64::NAN,
    rho: f64::NAN,
};

/// `ticker.{instrument}.{interval}` data.
fn ticker<S: Sink>(
    symbols: &SymbolTable,
    sc: &mut Scanner<'_>,
    recv: u64,
    sink: &mut S,
) -> Result<(), Problem> {
    let mut f = TickerFields::EMPTY;
    let mut obj = sc.object()?;
    while let Some(key) = obj.next(sc)? {
        match key {
            b"timestamp" => f.ts_ms = Some(sc.u64()?),
            b"sim_send_ns" => f.send_ns = Some(sc.u64()?),
            b"instrument_name" => f.name = Some(sc.str()?),
            b"best_bid_price" => f.bid = sc.f64()?,
            b"best_bid_amount" => f.bid_size = sc.f64()?,
            b"best_ask_price" => f.ask = sc.f64()?,
            b"best_ask_amount" => f.ask_size = sc.f64()?,
            b"mark_price" => f.mark = sc.f64()?,
            b"mark_iv" => f.mark_iv = sc.f64()?,
            b"bid_iv" => f.bid_iv = sc.f64()?,
            b"ask_iv" => f.ask_iv = sc.f64()?,
            b"underlying_price" => f.underlying = sc.f64()?,
            b"index_price" => f.index = sc.f64()?,
            b"current_funding" => f.funding = sc.f64()?,
            b"greeks" => f.greeks = venue_greeks(sc)?,
            _ => sc.skip()?,
        }
    }
    ticker_events(&f, symbols, recv, sink)
}

/// The events of one ticker: an option's `OptionTicker` and `VenueGreeks`, another
/// instrument's `Quote` (and `Mark` for perpetuals and futures).
#[inline]
pub(crate) fn ticker_events<S: Sink>(
    f: &TickerFields<'_>,
    symbols: &SymbolTable,
    recv: u64,
    sink: &mut S,
) -> Result<(), Problem> {
    let nan = f64::NAN;
    let name = f.name.ok_or(Problem::Missing("instrument_name"))?;
    let ts_ms = f.ts_ms.ok_or(Problem::Missing("timestamp"))?;
    let ts = refine_ts(ms_to_ns(ts_ms, "timestamp")?, ts_ms, f.send_ns);
    let Some((inst, kind)) = symbols.get(name) else {
        sink.unknown();
        return Ok(());
    };
    let (bid, bid_size) = side_or_empty(f.bid, f.bid_size);
    let (ask, ask_size) = side_or_empty(f.ask, f.ask_size);
    match kind {
        InstrumentKind::Option => {
            let t = OptionTicker {
                bid,
                bid_size,
                ask,
                ask_size,
                mark: f.mark,
                mark_iv: f.mark_iv / 100.0,
                bid_iv: if bid.is_nan() { nan } else { f.bid_iv / 100.0 },
                ask_iv: if ask.is_nan() { nan } else { f.ask_iv / 100.0 },
                underlying: f.underlying,
                index: f.index,
            };
            sink.push(event(VENUE, inst, ts, recv, EventBody::OptionTicker(t)));
            if let Some(g) = f.greeks {
                sink.push(event(VENUE, inst, ts, recv, EventBody::VenueGreeks(g)));
            }
        }
        _ => {
            let q = EventBody::Quote {
                bid,
                bid_size,
                ask,
                ask_size,
            };
            sink.push(event(VENUE, inst, ts, recv, q));
            if matches!(kind, InstrumentKind::Perpetual | InstrumentKind::Future) {
                let m = EventBody::Mark {
                    mark: f.mark,
                    iv: nan,
                    index: f.index,
                    funding_rate: f.funding,
                };
                sink.push(event(VENUE, inst, ts, recv, m));
            }
        }
    }
    Ok(())
}

/// The venue time of a message: its ms `timestamp` in ns, or keel-sim's `sim_send_ns` (the same
/// instant at ns precision, which the end-to-end bench needs for wire-to-wire latency) when the
/// message carries one that falls in the same millisecond. Real Deribit messages carry no
/// `sim_send_ns`; a value from another millisecond is ignored (the `timestamp` stays the truth).
#[inline(always)]
pub(crate) fn refine_ts(ts_ns: u64, ts_ms: u64, send_ns: Option<u64>) -> u64 {
    match send_ns {
        Some(s) if s / 1_000_000 == ts_ms => s,
        _ => ts_ns,
    }
}

/// A ticker's `greeks` object (or `null`).
fn venue_greeks(sc: &mut Scanner<'_>) -> Result<Option<VenueGreeks>, Problem> {
    if sc.null()? {
        return Ok(None);
    }
    let mut g = NO_GREEKS;
    let mut obj = sc.object()?;
    while let Some(key) = obj.next(sc)? {
        match key {
            b"delta" => g.delta = sc.f64()?,
            b"gamma" => g.gamma = sc.f64()?,
            b"vega" => g.vega = sc.f64()?,
            b"theta" => g.theta = sc.f64()?,
            b"rho" => g.rho = sc.f64()?,
            _ => sc.skip()?,
        }
    }
    Ok(Some(g))
}

/// `quote.{instrument}` data.
fn quote<S: Sink>(
    symbols: &SymbolTable,
    sc: &mut Scanner<'_>,
    recv: u64,
    sink: &mut S,
) -> Result<(), Problem> {
    let nan = f64::NAN;
    let (mut bid, mut bid_size, mut ask, mut ask_size) = (nan, nan, nan, nan);
    let mut name = None;
    let mut ts = None;
    let mut obj = sc.object()?;
    while let Some(key) = obj.next(sc)? {
        match key {
            b"timestamp" => ts = Some(sc.u64()?),
            b"instrument_name" => name = Some(sc.str()?),
            b"best_bid_price" => bid = sc.f64()?,
            b"best_bid_amount" => bid_size = sc.f64()?,
            b"best_ask_price" => ask = sc.f64()?,
            b"best_ask_amount" => ask_size = sc.f64()?,
            _ => sc.skip()?,
        }
    }
    let name = name.ok_or(Problem::Missing("instrument_name"))?;
    let ts = ms_to_ns(ts.ok_or(Problem::Missing("timestamp"))?, "timestamp")?;
    let Some((inst, _)) = symbols.get(name) else {
        sink.unknown();
        return Ok(());
    };
    (bid, bid_size) = side_or_empty(bid, bid_size);
    (ask, ask_size) = side_or_empty(ask, ask_size);
    let q = EventBody::Quote {
        bid,
        bid_size,
        ask,
        ask_size,
    };
    sink.push(event(VENUE, inst, ts, recv, q));
    Ok(())
}

/// `deribit_price_index.{index}` data: `{"timestamp", "price", "index_name"}`.
fn price_index<S: Sink>(
    symbols: &SymbolTable,
    sc: &mut Scanner<'_>,
    recv: u64,
    sink: &mut S,
) -> Result<(), Problem> {
    let mut price = None;
    let mut name = None;
    let mut ts = None;
    let mut send_ns = None;
    let mut obj = sc.object()?;
    while let Some(key) = obj.next(sc)? {
        match key {
            b"timestamp" => ts = Some(sc.u64()?),
            b"index_name" => name = Some(sc.str()?),
            b"price" => price = Some(sc.f64()?),
            b"sim_send_ns" => send_ns = Some(sc.u64()?),
            _ => sc.skip()?,
        }
    }
    let name = name.ok_or(Problem::Missing("index_name"))?;
    let price = price.ok_or(Problem::Missing("price"))?;
    let ts_ms = ts.ok_or(Problem::Missing("timestamp"))?;
    let ts = refine_ts(ms_to_ns(ts_ms, "timestamp")?, ts_ms, send_ns);
    let Some((inst, _)) = symbols.get(name) else {
        sink.unknown();
        return Ok(());
    };
    sink.push(event(VENUE, inst, ts, recv, EventBody::Index { price }));
    Ok(())
}

/// One entry of `markprice.options.{index}`: `{"timestamp", "mark_price", "iv", "instrument_name"}`.
fn mark_price<S: Sink>(
    symbols: &SymbolTable,
    sc: &mut Scanner<'_>,
    recv: u64,
    sink: &mut S,
) -> Result<(), Problem> {
    let mut mark = None;
    let mut iv = f64::NAN;
    let mut name = None;
    let mut ts = None;
    let mut obj = sc.object()?;
    while let Some(key) = obj.next(sc)? {
        match key {
            b"timestamp" => ts = Some(sc.u64()?),
            b"instrument_name" => name = Some(sc.str()?),
            b"mark_price" => mark = Some(sc.f64()?),
            b"iv" => iv = sc.f64()?,
            _ => sc.skip()?,
        }
    }
    let name = name.ok_or(Problem::Missing("instrument_name"))?;
    let mark = mark.ok_or(Problem::Missing("mark_price"))?;
    let ts = ms_to_ns(ts.ok_or(Problem::Missing("timestamp"))?, "timestamp")?;
    let Some((inst, _)) = symbols.get(name) else {
        sink.unknown();
        return Ok(());
    };
    let body = EventBody::Mark {
        mark,
        iv,
        index: f64::NAN,
        funding_rate: f64::NAN,
    };
    sink.push(event(VENUE, inst, ts, recv, body));
    Ok(())
}

/// One entry of `trades.*`.
fn trade<S: Sink>(
    symbols: &SymbolTable,
    sc: &mut Scanner<'_>,
    recv: u64,
    sink: &mut S,
) -> Result<(), Problem> {
    let mut price = None;
    let mut qty = None;
    let mut side = None;
    let mut name = None;
    let mut ts = None;
    let mut trade_id = None;
    let mut trade_seq = None;
    let mut obj = sc.object()?;
    while let Some(key) = obj.next(sc)? {
        match key {
            b"timestamp" => ts = Some(sc.u64()?),
            b"instrument_name" => name = Some(sc.str()?),
            b"price" => price = Some(sc.f64()?),
            b"amount" => qty = Some(sc.f64()?),
            b"direction" => {
                let at = sc.value_offset();
                side = Some(match sc.str()? {
                    b"buy" => Side::Buy,
                    b"sell" => Side::Sell,
                    _ => {
                        return Err(Problem::BadValue {
                            field: "direction",
                            at,
                        });
                    }
                });
            }
            b"trade_id" => {
                trade_id = if sc.peek()? == b'"' {
                    numeric_suffix(sc.str()?)
                } else {
                    Some(sc.u64()?)
                }
            }
            b"trade_seq" => trade_seq = Some(sc.u64()?),
            _ => sc.skip()?,
        }
    }
    let name = name.ok_or(Problem::Missing("instrument_name"))?;
    let price = price.ok_or(Problem::Missing("price"))?;
    let qty = qty.ok_or(Problem::Missing("amount"))?;
    let side = side.ok_or(Problem::Missing("direction"))?;
    let ts = ms_to_ns(ts.ok_or(Problem::Missing("timestamp"))?, "timestamp")?;
    let Some((inst, _)) = symbols.get(name) else {
        sink.unknown();
        return Ok(());
    };
    let body = EventBody::Trade {
        price,
        qty,
        side,
        // Deribit trade ids are strings, some with a prefix ("USDC-123"): the digits after
        // the last '-', else the trade sequence number.
        trade_id: trade_id.or(trade_seq).unwrap_or(0),
    };
    sink.push(event(VENUE, inst, ts, recv, body));
    Ok(())
}

/// The decimal digits after the last `-` (or the whole string), if that is all digits.
fn numeric_suffix(s: &[u8]) -> Option<u64> {
    let digits = match s.iter().rposition(|&b| b == b'-') {
        Some(i) => s.get(i + 1..)?,
        None => s,
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |v, &d| v * 10 + u64::from(d - b'0')),
    )
}

/// A `book.*` data object; levels are kept as spans until the whole message has parsed.
fn book_msg(symbols: &SymbolTable, sc: &mut Scanner<'_>) -> Result<BookMsg, Problem> {
    let mut kind: Option<bool> = None;
    let mut name = None;
    let mut ts = None;
    let mut change_id = None;
    let mut prev = None;
    let mut bids = None;
    let mut asks = None;
    let mut obj = sc.object()?;
    while let Some(key) = obj.next(sc)? {
        match key {
            b"type" => {
                let at = sc.value_offset();
                kind = Some(match sc.str()? {
                    b"snapshot" => true,
                    b"change" => false,
                    _ => return Err(Problem::BadValue { field: "type", at }),
                });
            }
            b"instrument_name" => name = Some(sc.str()?),
            b"timestamp" => ts = Some(sc.u64()?),
            b"change_id" => change_id = Some(sc.u64()?),
            b"prev_change_id" => prev = sc.u64_or_null()?,
            b"bids" => bids = Some(sc.raw()?),
            b"asks" => asks = Some(sc.raw()?),
            _ => sc.skip()?,
        }
    }
    let name = name.ok_or(Problem::Missing("instrument_name"))?;
    // Grouped books (`book.{instrument}.{group}.{depth}.{interval}`) carry no type: each
    // message is a full snapshot.
    let snapshot = kind.unwrap_or(true);
    Ok(BookMsg {
        instrument: symbols.get(name).map(|(id, _)| id),
        snapshot,
        change_id: change_id.ok_or(Problem::Missing("change_id"))?,
        prev_change_id: prev,
        ts_ns: ms_to_ns(ts.ok_or(Problem::Missing("timestamp"))?, "timestamp")?,
        bids,
        asks,
    })
}

#[allow(clippy::too_many_arguments)]
#[inline]
fn level_event(
    inst: InstrumentId,
    msg: &BookMsg,
    recv: u64,
    price: f64,
    size: f64,
    side: Side,
    first: bool,
    last: bool,
) -> MarketEvent {
    event(
        VENUE,
        inst,
        msg.ts_ns,
        recv,
        EventBody::BookLevel {
            price,
            size,
            side,
            snapshot: msg.snapshot,
            first,
            last,
            seq: msg.change_id,
        },
    )
}

/// Parses both sides' levels into `sink`; returns how many. With `total` known (second pass)
/// the last level is flagged; otherwise the caller flags it.
fn levels_all<S: Sink>(
    buf: &[u8],
    msg: &BookMsg,
    inst: InstrumentId,
    recv: u64,
    total: Option<usize>,
    sink: &mut S,
) -> Result<usize, Problem> {
    let mut n = 0;
    for (span, side) in [(msg.bids, Side::Buy), (msg.asks, Side::Sell)] {
        let Some(span) = span else { continue };
        let mut sc = Scanner::at(buf, span.start);
        let mut arr = sc.array()?;
        while arr.next(&mut sc)? {
            let (price, size) = level(&mut sc)?;
            let last = total == Some(n + 1);
            sink.push(level_event(
                inst,
                msg,
                recv,
                price,
                size,
                side,
                n == 0,
                last,
            ));
            n += 1;
        }
    }
    Ok(n)
}

/// One level: `["new"|"change"|"delete", price, amount]`, or `[price, amount]` in grouped
/// books. A delete has size 0.
fn level(sc: &mut Scanner<'_>) -> Result<(f64, f64), Problem> {
    let mut arr = sc.array()?;
    let mut delete = false;
    if !arr.next(sc)? {
        return Err(Problem::Missing("level price"));
    }
    if sc.peek()? == b'"' {
        let at = sc.value_offset();
        delete = match sc.str()? {
            b"new" | b"change" => false,
            b"delete" => true,
            _ => {
                return Err(Problem::BadValue {
                    field: "level action",
                    at,
                });
            }
        };
        if !arr.next(sc)? {
            return Err(Problem::Missing("level price"));
        }
    }
    let price = sc.f64()?;
    if !arr.next(sc)? {
        return Err(Problem::Missing("level amount"));
    }
    let size = sc.f64()?;
    if arr.next(sc)? {
        return Err(Problem::BadValue {
            field: "level",
            at: sc.value_offset(),
        });
    }
    if price.is_nan() {
        return Err(Problem::Missing("level price"));
    }
    Ok((price, if delete { 0.0 } else { size }))
}

fn request_head(out: &mut Vec<u8>, id: u64, method: &str) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    write_u64(out, id);
    out.extend_from_slice(b",\"method\":");
    write_str(out, method);
    out.extend_from_slice(b",\"params\":");
}

fn channels_request(out: &mut Vec<u8>, id: u64, method: &str, channels: &[&str]) {
    request_head(out, id, method);
    out.extend_from_slice(b"{\"channels\":[");
    for (i, ch) in channels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, ch);
    }
    out.extend_from_slice(b"]}}");
}

/// Appends `public/subscribe` for `channels` (e.g. `ticker.BTC-27DEC24-100000-C.100ms`).
pub fn subscribe(out: &mut Vec<u8>, id: u64, channels: &[&str]) {
    channels_request(out, id, "public/subscribe", channels);
}

/// Appends `public/unsubscribe` for `channels` (unsubscribe then subscribe to resnapshot a
/// book after a gap).
pub fn unsubscribe(out: &mut Vec<u8>, id: u64, channels: &[&str]) {
    channels_request(out, id, "public/unsubscribe", channels);
}

/// Appends `public/set_heartbeat` (`interval_s` ≥ 10): the venue then sends `test_request`
/// heartbeats that [`test_reply`] answers.
pub fn set_heartbeat(out: &mut Vec<u8>, id: u64, interval_s: u32) {
    request_head(out, id, "public/set_heartbeat");
    out.extend_from_slice(b"{\"interval\":");
    write_u64(out, u64::from(interval_s));
    out.extend_from_slice(b"}}");
}

/// Appends `public/test`, the answer to a heartbeat `test_request` ([`Parsed::HeartbeatRequest`]).
pub fn test_reply(out: &mut Vec<u8>, id: u64) {
    request_head(out, id, "public/test");
    out.extend_from_slice(b"{}}");
}

/// Appends `public/get_instruments` for `currency` (`BTC`, `ETH`, `USDC`, `any`) and an
/// optional `kind` (`option`, `future`, `spot`, ...), unexpired only.
pub fn get_instruments(out: &mut Vec<u8>, id: u64, currency: &str, kind: Option<&str>) {
    request_head(out, id, "public/get_instruments");
    out.extend_from_slice(b"{\"currency\":");
    write_str(out, currency);
    if let Some(kind) = kind {
        out.extend_from_slice(b",\"kind\":");
        write_str(out, kind);
    }
    out.extend_from_slice(b",\"expired\":false}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_write_json_rpc() {
        let mut out = Vec::new();
        subscribe(
            &mut out,
            42,
            &[
                "ticker.BTC-27DEC24-100000-C.100ms",
                "book.BTC-PERPETUAL.100ms",
            ],
        );
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"jsonrpc":"2.0","id":42,"method":"public/subscribe","params":{"channels":["ticker.BTC-27DEC24-100000-C.100ms","book.BTC-PERPETUAL.100ms"]}}"#
        );
        out.clear();
        set_heartbeat(&mut out, 9098, 30);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"jsonrpc":"2.0","id":9098,"method":"public/set_heartbeat","params":{"interval":30}}"#
        );
        out.clear();
        test_reply(&mut out, 8212);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"jsonrpc":"2.0","id":8212,"method":"public/test","params":{}}"#
        );
        out.clear();
        get_instruments(&mut out, 1, "BTC", Some("option"));
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"jsonrpc":"2.0","id":1,"method":"public/get_instruments","params":{"currency":"BTC","kind":"option","expired":false}}"#
        );
    }

    #[test]
    fn trade_id_suffix() {
        assert_eq!(numeric_suffix(b"403691824"), Some(403_691_824));
        assert_eq!(numeric_suffix(b"USDC-1234"), Some(1234));
        assert_eq!(numeric_suffix(b"abc"), None);
        assert_eq!(numeric_suffix(b"x-"), None);
        assert_eq!(numeric_suffix(b"99999999999999999999"), None);
    }
}
