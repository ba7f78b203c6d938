//! Binance spot and USDⓈ-M futures market streams: `bookTicker` (spot: no `e`/`E`; futures:
//! `E` and `T`), `depthUpdate` (`depth@100ms`), `aggTrade`, `markPriceUpdate` (single and `@arr`),
//! raw or inside the combined-stream wrapper `{"stream": .., "data": ..}`; subscription
//! responses and errors; the REST depth snapshot that starts a book
//! ([`BinanceParser::apply_depth_snapshot`]); and the `SUBSCRIBE` request.
//!
//! Owns Binance's formats: every number is a string; a parser serves one market (spot or
//! USDⓈ-M futures, which are different connections) and looks symbols up among that market's
//! instruments (spot: kind `Spot`; futures: `Perpetual` and `Future`). Book sequencing follows
//! Binance's documented procedure: after the snapshot (`lastUpdateId` L), updates with `u` < L
//! (futures) or `u` ≤ L (spot) are dropped, the first applied must straddle L (spot
//! `U` ≤ L+1 ≤ `u`; futures `U` ≤ L ≤ `u`), and each later one must follow the last applied
//! (spot `U` = last `u` + 1; futures `pu` = last `u`); anything else is a gap. Updates that
//! arrive while a book waits for its snapshot are dropped ([`Parsed::BookSkipped`]); a session
//! that wants Binance's "buffer, then replay" procedure keeps the raw payloads and feeds them
//! again after [`BinanceParser::apply_depth_snapshot`]. Must never allocate per message or panic
//! on any input.
//!
//! Limitation of the registry, not of this parser: [`Instruments`] keys instruments by venue
//! and name, so a spot pair and a USDⓈ-M contract with the same symbol (`BTCUSDT`) cannot both
//! be registered under `Venue::Binance`.

use super::json::{Scanner, Span, write_str, write_u64};
use super::{
    Direct, ParseError, Parsed, ParserStats, Problem, Sink, Staged, SymbolTable, account, event,
    ms_to_ns, side_or_empty,
};
use crate::event::{EventBody, MarketEvent, Side, Venue};
use crate::instrument::{InstrumentId, InstrumentKind, Instruments};

const VENUE: Venue = Venue::Binance;

/// Which Binance market a connection serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinanceMarket {
    /// Spot (`stream.binance.com`): depth sequencing by `U` = last `u` + 1.
    Spot,
    /// USDⓈ-M futures (`fstream.binance.com`): depth sequencing by `pu` = last `u`.
    UsdmFutures,
}

/// Depth-book sequencing state of one instrument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DepthSeq {
    /// No snapshot yet: the first update reports a gap so that the session fetches one.
    Unknown,
    /// A gap was reported: updates are dropped until a snapshot.
    AwaitingSnapshot,
    /// A REST snapshot with this `lastUpdateId` was applied; no update yet.
    Bridging(u64),
    /// The `u` of the last update applied.
    Live(u64),
}

/// The fields of one stream event (or of the wrapper around it).
#[derive(Clone, Copy, Debug)]
struct Fields<'a> {
    kind: Option<&'a [u8]>,
    event_time: Option<u64>,
    tx_time: Option<u64>,
    symbol: Option<&'a [u8]>,
    first_id: Option<u64>,
    last_id: Option<u64>,
    prev_last_id: Option<u64>,
    bid: Option<f64>,
    bid_qty: Option<f64>,
    ask: Option<f64>,
    ask_qty: Option<f64>,
    bids: Option<Span>,
    asks: Option<Span>,
    agg_id: Option<u64>,
    price: Option<f64>,
    qty: Option<f64>,
    maker: Option<bool>,
    index: f64,
    funding: f64,
}

impl Fields<'_> {
    fn new() -> Self {
        Self {
            kind: None,
            event_time: None,
            tx_time: None,
            symbol: None,
            first_id: None,
            last_id: None,
            prev_last_id: None,
            bid: None,
            bid_qty: None,
            ask: None,
            ask_qty: None,
            bids: None,
            asks: None,
            agg_id: None,
            price: None,
            qty: None,
            maker: None,
            index: f64::NAN,
            funding: f64::NAN,
        }
    }

    /// Exchange time: the transaction/trade time `T` where the event has one, else `E`.
    fn ts_ns(&self) -> Result<u64, Problem> {
        match self.tx_time.or(self.event_time) {
            Some(ms) => ms_to_ns(ms, "T"),
            None => Ok(0),
        }
    }
}

/// What a top-level message held besides event fields.
struct Envelope<'a> {
    data: Option<Span>,
    stream: Option<&'a [u8]>,
    id: Option<u64>,
    result: Option<Span>,
    code: Option<i64>,
    msg: Option<&'a [u8]>,
}

/// Reads one event object's members into `f`. At the top level (`env` given) also the
/// wrapper's and responses' members.
fn fields<'a>(
    sc: &mut Scanner<'a>,
    f: &mut Fields<'a>,
    mut env: Option<&mut Envelope<'a>>,
) -> Result<(), Problem> {
    let mut obj = sc.object()?;
    while let Some(key) = obj.next(sc)? {
        match key {
            b"e" => f.kind = Some(sc.str()?),
            b"E" => f.event_time = Some(sc.u64()?),
            b"T" => f.tx_time = Some(sc.u64()?),
            b"s" => f.symbol = Some(sc.str()?),
            b"U" => f.first_id = Some(sc.u64()?),
            b"u" => f.last_id = Some(sc.u64()?),
            b"pu" => f.prev_last_id = Some(sc.u64()?),
            b"b" if sc.peek()? == b'[' => f.bids = Some(sc.raw()?),
            b"b" => f.bid = Some(sc.f64()?),
            b"B" => f.bid_qty = Some(sc.f64()?),
            b"a" => match sc.peek()? {
                b'[' => f.asks = Some(sc.raw()?),
                b'"' => f.ask = Some(sc.f64()?),
                _ => f.agg_id = Some(sc.u64()?),
            },
            b"A" => f.ask_qty = Some(sc.f64()?),
            b"p" => f.price = Some(sc.f64()?),
            b"q" => f.qty = Some(sc.f64()?),
            b"m" => f.maker = Some(sc.bool()?),
            b"i" => f.index = sc.f64()?,
            b"r" => f.funding = sc.f64()?,
            _ => match env.as_deref_mut() {
                Some(env) => match key {
                    b"data" => env.data = Some(sc.raw()?),
                    b"stream" => env.stream = Some(sc.str()?),
                    b"id" => {
                        env.id = match sc.peek()? {
                            b'0'..=b'9' => Some(sc.u64()?),
                            _ => {
                                sc.skip()?;
                                None
                            }
                        }
                    }
                    b"result" => env.result = Some(sc.raw()?),
                    b"code" => env.code = Some(sc.i64()?),
                    b"msg" => env.msg = Some(sc.str()?),
                    b"error" => {
                        let mut e = sc.object()?;
                        while let Some(k) = e.next(sc)? {
                            match k {
                                b"code" => env.code = Some(sc.i64()?),
                                b"msg" => env.msg = Some(sc.str()?),
                                _ => sc.skip()?,
                            }
                        }
                        env.code.get_or_insert(0);
                    }
                    _ => sc.skip()?,
                },
                None => sc.skip()?,
            },
        }
    }
    Ok(())
}

/// A depth update waiting for its sequence check.
#[derive(Clone, Copy, Debug)]
struct DepthMsg {
    instrument: InstrumentId,
    first_id: u64,
    last_id: u64,
    prev_last_id: Option<u64>,
    ts_ns: u64,
    bids: Option<Span>,
    asks: Option<Span>,
}

/// What a parsed message turned out to be.
enum Outcome<'a> {
    /// Events staged from this span of the payload (one event object, or an array of them).
    Events(Span),
    Depth(DepthMsg),
    Done(Parsed<'a>),
}

/// Parses one Binance market's stream messages.
pub struct BinanceParser {
    market: BinanceMarket,
    symbols: SymbolTable,
    books: Vec<DepthSeq>,
    staged: Staged,
    stats: ParserStats,
}

fn in_market(market: BinanceMarket) -> impl Fn(&crate::instrument::Instrument) -> bool {
    move |i| match market {
        BinanceMarket::Spot => i.kind == InstrumentKind::Spot,
        BinanceMarket::UsdmFutures => {
            matches!(i.kind, InstrumentKind::Perpetual | InstrumentKind::Future)
        }
    }
}

impl BinanceParser {
    /// A parser for `market`'s Binance instruments in `instruments`.
    pub fn new(market: BinanceMarket, instruments: &Instruments) -> Self {
        let symbols = SymbolTable::build(instruments, VENUE, in_market(market));
        let books = vec![DepthSeq::Unknown; symbols.id_bound()];
        Self {
            market,
            symbols,
            books,
            staged: Staged::new(),
            stats: ParserStats::default(),
        }
    }

    /// The market it serves.
    pub fn market(&self) -> BinanceMarket {
        self.market
    }

    /// Replaces the instrument table (allocates); book states of kept instruments survive.
    pub fn set_instruments(&mut self, instruments: &Instruments) {
        self.symbols = SymbolTable::build(instruments, VENUE, in_market(self.market));
        self.books
            .resize(self.symbols.id_bound(), DepthSeq::Unknown);
    }

    /// Forgets every book's sequence (after a reconnection).
    pub fn reset_books(&mut self) {
        self.books.fill(DepthSeq::Unknown);
    }

    /// `instrument`'s book waits for a REST snapshot the caller is fetching: its updates are
    /// dropped as [`Parsed::BookSkipped`] (no gap event) until
    /// [`apply_depth_snapshot`](Self::apply_depth_snapshot).
    pub fn await_snapshot(&mut self, instrument: InstrumentId) {
        if let Some(s) = self.books.get_mut(instrument.0 as usize) {
            *s = DepthSeq::AwaitingSnapshot;
        }
    }

    /// Counters since construction.
    pub fn stats(&self) -> ParserStats {
        self.stats
    }

    /// Parses one complete payload; see [`Parsed`].
    pub fn parse<'a>(
        &mut self,
        payload: &'a [u8],
        recv_ts_ns: u64,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<Parsed<'a>, ParseError> {
        let res = self.run(payload, recv_ts_ns, emit);
        account(&mut self.stats, &res);
        res.map_err(|p| ParseError::new(VENUE, p, payload))
    }

    /// Applies a REST depth snapshot (`GET /api/v3/depth` or `/fapi/v1/depth`:
    /// `{"lastUpdateId": .., "bids": [[price, qty], ..], "asks": ..}`) for `symbol`: emits
    /// its levels as a snapshot (`seq` = `lastUpdateId`) and starts sequencing from it. An
    /// unknown symbol emits nothing and returns `Events { count: 0 }`.
    pub fn apply_depth_snapshot<'a>(
        &mut self,
        symbol: &[u8],
        payload: &'a [u8],
        recv_ts_ns: u64,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<Parsed<'a>, ParseError> {
        let res = self.snapshot(symbol, payload, recv_ts_ns, emit);
        account(&mut self.stats, &res);
        res.map_err(|p| ParseError::new(VENUE, p, payload))
    }

    fn snapshot<'a>(
        &mut self,
        symbol: &[u8],
        buf: &'a [u8],
        recv: u64,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<Parsed<'a>, Problem> {
        self.staged.clear();
        let mut sc = Scanner::new(buf);
        let mut obj = sc.object()?;
        let (mut last, mut ts, mut bids, mut asks) = (None, None, None, None);
        while let Some(key) = obj.next(&mut sc)? {
            match key {
                b"lastUpdateId" => last = Some(sc.u64()?),
                b"T" => ts = Some(sc.u64()?),
                b"E" => ts = ts.or(Some(sc.u64()?)),
                b"bids" => bids = Some(sc.raw()?),
                b"asks" => asks = Some(sc.raw()?),
                _ => sc.skip()?,
            }
        }
        sc.end()?;
        let last = last.ok_or(Problem::Missing("lastUpdateId"))?;
        let Some((inst, _)) = self.symbols.get(symbol) else {
            self.stats.unknown_instruments += 1;
            return Ok(Parsed::Events { count: 0 });
        };
        let msg = DepthMsg {
            instrument: inst,
            first_id: last,
            last_id: last,
            prev_last_id: None,
            ts_ns: match ts {
                Some(ms) => ms_to_ns(ms, "T")?,
                None => 0,
            },
            bids,
            asks,
        };
        let total = levels_all(buf, &msg, true, recv, None, &mut self.staged)?;
        let count = self.emit_levels(buf, &msg, true, total, recv, emit)?;
        if let Some(s) = self.books.get_mut(inst.0 as usize) {
            *s = DepthSeq::Bridging(last);
        }
        Ok(Parsed::Events { count })
    }

    fn run<'a>(
        &mut self,
        buf: &'a [u8],
        recv: u64,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<Parsed<'a>, Problem> {
        self.staged.clear();
        let mut sc = Scanner::new(buf);
        let outcome = if sc.peek()? == b'[' {
            // A raw `!markPrice@arr` stream: an array of events.
            let span = self.event_array(&mut sc, recv)?;
            Outcome::Events(span)
        } else {
            let mut f = Fields::new();
            let mut env = Envelope {
                data: None,
                stream: None,
                id: None,
                result: None,
                code: None,
                msg: None,
            };
            fields(&mut sc, &mut f, Some(&mut env))?;
            if let Some(data) = env.data {
                let mut inner = Scanner::at(buf, data.start);
                if inner.peek()? == b'[' {
                    Outcome::Events(self.event_array(&mut inner, recv)?)
                } else {
                    let mut g = Fields::new();
                    fields(&mut inner, &mut g, None)?;
                    self.classify(&g, data, recv, env.stream)?
                }
            } else if let Some(code) = env.code {
                Outcome::Done(Parsed::Error {
                    id: env.id,
                    code,
                    message: env.msg.unwrap_or(b""),
                })
            } else if f.kind.is_none() && f.symbol.is_none() && env.result.is_some() {
                let result = env.result.map_or(&b""[..], |r| sc.span_bytes(r));
                Outcome::Done(Parsed::Ack { id: env.id, result })
            } else {
                let whole = Span {
                    start: 0,
                    end: buf.len(),
                };
                self.classify(&f, whole, recv, None)?
            }
        };
        sc.end()?;
        match outcome {
            Outcome::Done(p) => Ok(p),
            Outcome::Events(span) => {
                self.stats.unknown_instruments += u64::from(self.staged.unknown_count());
                let count = if self.staged.overflowed() {
                    let mut direct = Direct::new(emit);
                    let mut sc = Scanner::at(buf, span.start);
                    if sc.peek()? == b'[' {
                        let mut arr = sc.array()?;
                        while arr.next(&mut sc)? {
                            let mut g = Fields::new();
                            fields(&mut sc, &mut g, None)?;
                            simple_event(&self.symbols, &g, recv, &mut direct)?;
                        }
                    }
                    direct.count
                } else {
                    self.staged.flush(emit)
                };
                Ok(Parsed::Events { count })
            }
            Outcome::Depth(msg) => self.commit_depth(buf, msg, recv, emit),
        }
    }

    /// Stages every event of an array of event objects; returns its span.
    fn event_array(&mut self, sc: &mut Scanner<'_>, recv: u64) -> Result<Span, Problem> {
        sc.peek()?;
        let start = sc.pos();
        let mut arr = sc.array()?;
        while arr.next(sc)? {
            let mut g = Fields::new();
            fields(sc, &mut g, None)?;
            simple_event(&self.symbols, &g, recv, &mut self.staged)?;
        }
        Ok(Span {
            start,
            end: sc.pos(),
        })
    }

    /// Stages the events of one event object, or returns its depth update or control message.
    fn classify<'a>(
        &mut self,
        f: &Fields<'a>,
        span: Span,
        recv: u64,
        stream: Option<&'a [u8]>,
    ) -> Result<Outcome<'a>, Problem> {
        if f.kind == Some(b"depthUpdate") {
            let symbol = f.symbol.ok_or(Problem::Missing("s"))?;
            let Some((inst, _)) = self.symbols.get(symbol) else {
                self.staged.unknown();
                return Ok(Outcome::Events(span));
            };
            let prev_last_id = match self.market {
                BinanceMarket::UsdmFutures => Some(f.prev_last_id.ok_or(Problem::Missing("pu"))?),
                BinanceMarket::Spot => f.prev_last_id,
            };
            return Ok(Outcome::Depth(DepthMsg {
                instrument: inst,
                first_id: f.first_id.ok_or(Problem::Missing("U"))?,
                last_id: f.last_id.ok_or(Problem::Missing("u"))?,
                prev_last_id,
                ts_ns: f.ts_ns()?,
                bids: f.bids,
                asks: f.asks,
            }));
        }
        match f.kind {
            None | Some(b"bookTicker" | b"aggTrade" | b"markPriceUpdate") => {
                if f.kind.is_none() && f.symbol.is_none() {
                    return Err(Problem::Missing("e"));
                }
                simple_event(&self.symbols, f, recv, &mut self.staged)?;
                Ok(Outcome::Events(span))
            }
            Some(other) => Ok(Outcome::Done(Parsed::UnknownChannel {
                channel: stream.unwrap_or(other),
            })),
        }
    }

    fn commit_depth<'a>(
        &mut self,
        buf: &'a [u8],
        msg: DepthMsg,
        recv: u64,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<Parsed<'a>, Problem> {
        let inst = msg.instrument;
        // Validate every level before touching the sequence state.
        self.staged.clear();
        let total = levels_all(buf, &msg, false, recv, None, &mut self.staged)?;
        let Some(&state) = self.books.get(inst.0 as usize) else {
            self.stats.unknown_instruments += 1;
            return Ok(Parsed::Events { count: 0 });
        };
        let futures = self.market == BinanceMarket::UsdmFutures;
        // What the message says it follows.
        let follows = match msg.prev_last_id {
            Some(pu) if futures => pu,
            _ => msg.first_id.saturating_sub(1),
        };
        let apply = match state {
            DepthSeq::Unknown => return Ok(self.gap(inst, 0, follows, msg.ts_ns, recv, emit)),
            DepthSeq::AwaitingSnapshot => return Ok(Parsed::BookSkipped { instrument: inst }),
            DepthSeq::Bridging(l) => {
                let stale = if futures {
                    msg.last_id < l
                } else {
                    msg.last_id <= l
                };
                if stale {
                    return Ok(Parsed::BookSkipped { instrument: inst });
                }
                if futures {
                    msg.first_id <= l
                } else {
                    msg.first_id <= l.saturating_add(1)
                }
            }
            DepthSeq::Live(last) => follows == last,
        };
        if !apply {
            let expected = match state {
                DepthSeq::Bridging(l) | DepthSeq::Live(l) => l,
                _ => 0,
            };
            return Ok(self.gap(inst, expected, follows, msg.ts_ns, recv, emit));
        }
        if let Some(s) = self.books.get_mut(inst.0 as usize) {
            *s = DepthSeq::Live(msg.last_id);
        }
        let count = self.emit_levels(buf, &msg, false, total, recv, emit)?;
        Ok(Parsed::Events { count })
    }

    /// Emits a depth message's `total` levels, staged by `levels_all` (or parsed again when
    /// they overflowed the staging buffer).
    fn emit_levels(
        &mut self,
        buf: &[u8],
        msg: &DepthMsg,
        snapshot: bool,
        total: usize,
        recv: u64,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<u32, Problem> {
        if total == 0 {
            if snapshot {
                emit(level_event(
                    msg,
                    snapshot,
                    recv,
                    f64::NAN,
                    0.0,
                    Side::Buy,
                    true,
                    true,
                ));
                return Ok(1);
            }
            return Ok(0);
        }
        if self.staged.overflowed() {
            let mut direct = Direct::new(emit);
            levels_all(buf, msg, snapshot, recv, Some(total), &mut direct)?;
            return Ok(direct.count);
        }
        if let Some(EventBody::BookLevel { last, .. }) =
            self.staged.events_mut().last_mut().map(|e| &mut e.body)
        {
            *last = true;
        }
        Ok(self.staged.flush(emit))
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
            *s = DepthSeq::AwaitingSnapshot;
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

super::impl_venue_parser!(BinanceParser, reset_books;
    fn await_book_snapshot(&mut self, instrument: InstrumentId) {
        BinanceParser::await_snapshot(self, instrument);
    }

    fn apply_book_snapshot<'a>(
        &mut self,
        symbol: &[u8],
        payload: &'a [u8],
        recv_ts_ns: u64,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<Parsed<'a>, ParseError> {
        BinanceParser::apply_depth_snapshot(self, symbol, payload, recv_ts_ns, emit)
    }
);

/// A `bookTicker`, `aggTrade` or `markPriceUpdate` event into `sink`.
fn simple_event<S: Sink>(
    symbols: &SymbolTable,
    f: &Fields<'_>,
    recv: u64,
    sink: &mut S,
) -> Result<(), Problem> {
    let symbol = f.symbol.ok_or(Problem::Missing("s"))?;
    let body = match f.kind {
        None | Some(b"bookTicker") => {
            let (bid, bid_size) = side_or_empty(
                f.bid.ok_or(Problem::Missing("b"))?,
                f.bid_qty.ok_or(Problem::Missing("B"))?,
            );
            let (ask, ask_size) = side_or_empty(
                f.ask.ok_or(Problem::Missing("a"))?,
                f.ask_qty.ok_or(Problem::Missing("A"))?,
            );
            EventBody::Quote {
                bid,
                bid_size,
                ask,
                ask_size,
            }
        }
        Some(b"aggTrade") => EventBody::Trade {
            price: f.price.ok_or(Problem::Missing("p"))?,
            qty: f.qty.ok_or(Problem::Missing("q"))?,
            // `m`: the buyer is the maker, so the aggressor sold.
            side: if f.maker.ok_or(Problem::Missing("m"))? {
                Side::Sell
            } else {
                Side::Buy
            },
            trade_id: f.agg_id.ok_or(Problem::Missing("a"))?,
        },
        Some(b"markPriceUpdate") => EventBody::Mark {
            mark: f.price.ok_or(Problem::Missing("p"))?,
            iv: f64::NAN,
            index: f.index,
            funding_rate: f.funding,
        },
        Some(_) => return Err(Problem::Missing("e")),
    };
    // markPriceUpdate's `T` is the next funding time, not the data's time.
    let ts = if f.kind == Some(b"markPriceUpdate") {
        match f.event_time {
            Some(ms) => ms_to_ns(ms, "E")?,
            None => 0,
        }
    } else {
        f.ts_ns()?
    };
    let Some((inst, _)) = symbols.get(symbol) else {
        sink.unknown();
        return Ok(());
    };
    sink.push(event(VENUE, inst, ts, recv, body));
    Ok(())
}

#[allow(clippy::too_many_arguments)]
#[inline]
fn level_event(
    msg: &DepthMsg,
    snapshot: bool,
    recv: u64,
    price: f64,
    size: f64,
    side: Side,
    first: bool,
    last: bool,
) -> MarketEvent {
    event(
        VENUE,
        msg.instrument,
        msg.ts_ns,
        recv,
        EventBody::BookLevel {
            price,
            size,
            side,
            snapshot,
            first,
            last,
            seq: msg.last_id,
        },
    )
}

/// Both sides' `[["price", "qty"], ..]` into `sink`; returns how many levels.
fn levels_all<S: Sink>(
    buf: &[u8],
    msg: &DepthMsg,
    snapshot: bool,
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
            let mut lvl = sc.array()?;
            if !lvl.next(&mut sc)? {
                return Err(Problem::Missing("level price"));
            }
            let price = sc.f64()?;
            if !lvl.next(&mut sc)? {
                return Err(Problem::Missing("level quantity"));
            }
            let size = sc.f64()?;
            if lvl.next(&mut sc)? {
                return Err(Problem::BadValue {
                    field: "level",
                    at: sc.value_offset(),
                });
            }
            if price.is_nan() || size.is_nan() {
                return Err(Problem::Missing("level price or quantity"));
            }
            let last = total == Some(n + 1);
            sink.push(level_event(
                msg,
                snapshot,
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

fn stream_request(out: &mut Vec<u8>, method: &str, id: u64, streams: &[&str]) {
    out.extend_from_slice(b"{\"method\":");
    write_str(out, method);
    out.extend_from_slice(b",\"params\":[");
    for (i, s) in streams.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, s);
    }
    out.extend_from_slice(b"],\"id\":");
    write_u64(out, id);
    out.push(b'}');
}

/// Appends `{"method":"SUBSCRIBE","params":[streams],"id":id}` (streams such as
/// `btcusdt@bookTicker`, `btcusdt@depth@100ms`).
pub fn subscribe(out: &mut Vec<u8>, id: u64, streams: &[&str]) {
    stream_request(out, "SUBSCRIBE", id, streams);
}

/// Appends the matching `UNSUBSCRIBE`.
pub fn unsubscribe(out: &mut Vec<u8>, id: u64, streams: &[&str]) {
    stream_request(out, "UNSUBSCRIBE", id, streams);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_matches_the_documented_request() {
        let mut out = Vec::new();
        subscribe(&mut out, 1, &["btcusdt@aggTrade", "btcusdt@depth"]);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"method":"SUBSCRIBE","params":["btcusdt@aggTrade","btcusdt@depth"],"id":1}"#
        );
    }
}
