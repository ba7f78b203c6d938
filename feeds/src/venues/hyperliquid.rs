//! Hyperliquid's public WebSocket (`wss://api.hyperliquid.xyz/ws`): the `l2Book` subscription
//! into book snapshots (`BookLevel`, every message replaces the book) and the touch (`Quote`);
//! `pong`, `subscriptionResponse` and `error` into [`Parsed`]; the subscribe and ping requests.
//!
//! Owns Hyperliquid's formats: `{"channel":"l2Book","data":{"coin":"BTC","time":MS,
//! "levels":[[BIDS],[ASKS]]}}`, each level `{"px":"…","sz":"…","n":N}` with prices and sizes as
//! decimal strings, bids best (highest) first, asks best (lowest) first. The coin is the
//! instrument's name (`BTC` for the BTC perpetual, linear, sizes in coin). Every `l2Book` message
//! is a whole book (Hyperliquid sends snapshots, never deltas): its levels are emitted with
//! `snapshot` set and `time` as `seq`, and an empty book is one NaN level so the consumer
//! clears it. Must never allocate per message or panic on any input; a level that is not a
//! positive price with a non-negative size, or a `levels` that is not two arrays, rejects the
//! whole message.

use super::json::{Scanner, Span, write_str};
use super::{
    Direct, ParseError, Parsed, ParserStats, Problem, Sink, Staged, SymbolTable, account, event,
    impl_venue_parser, ms_to_ns,
};
use crate::event::{EventBody, MarketEvent, Side, Venue};
use crate::instrument::{InstrumentId, Instruments};

const VENUE: Venue = Venue::Hyperliquid;

/// Parses Hyperliquid public messages.
pub struct HyperliquidParser {
    symbols: SymbolTable,
    staged: Staged,
    stats: ParserStats,
}

impl_venue_parser!(HyperliquidParser);

/// One side's levels, read without emitting: the span of the side's array and its best level.
#[derive(Clone, Copy)]
struct SideScan {
    span: Option<Span>,
    best: (f64, f64),
    count: u32,
}

impl HyperliquidParser {
    /// A parser for the Hyperliquid instruments (coins) of `instruments`.
    pub fn new(instruments: &Instruments) -> Self {
        Self {
            symbols: SymbolTable::build(instruments, VENUE, |_| true),
            staged: Staged::new(),
            stats: ParserStats::default(),
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

    fn run<'a>(
        &mut self,
        buf: &'a [u8],
        recv: u64,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<Parsed<'a>, Problem> {
        let mut sc = Scanner::new(buf);
        let mut obj = sc.object()?;
        let mut channel: Option<&'a [u8]> = None;
        let mut data: Option<Span> = None;
        while let Some(key) = obj.next(&mut sc)? {
            match key {
                b"channel" => channel = Some(sc.str()?),
                b"data" => data = Some(sc.raw()?),
                _ => sc.skip()?,
            }
        }
        sc.end()?;
        let channel = channel.ok_or(Problem::Missing("channel"))?;
        match channel {
            b"pong" => return Ok(Parsed::Pong),
            b"subscriptionResponse" => {
                let span = data.ok_or(Problem::Missing("data"))?;
                return Ok(Parsed::Ack {
                    id: None,
                    result: Scanner::at(buf, span.start).span_bytes(span),
                });
            }
            b"error" => {
                let span = data.ok_or(Problem::Missing("data"))?;
                let mut d = Scanner::at(buf, span.start);
                let message = match d.peek()? {
                    b'"' => d.str()?,
                    _ => d.span_bytes(span),
                };
                return Ok(Parsed::Error {
                    id: None,
                    code: 0,
                    message,
                });
            }
            b"l2Book" => {}
            other => return Ok(Parsed::UnknownChannel { channel: other }),
        }
        let span = data.ok_or(Problem::Missing("data"))?;
        let book = read_book(buf, span.start)?;
        let Some((inst, _)) = self.symbols.get(book.coin) else {
            self.stats.unknown_instruments += 1;
            return Ok(Parsed::Events { count: 0 });
        };
        let ts = ms_to_ns(book.time, "time")?;
        self.staged.clear();
        emit_book(buf, &book, inst, ts, recv, &mut self.staged)?;
        if !self.staged.overflowed() {
            let count = self.staged.flush(emit);
            return Ok(Parsed::Events { count });
        }
        // Larger than the staging buffer: it parsed whole, so emit straight.
        let mut direct = Direct::new(emit);
        emit_book(buf, &book, inst, ts, recv, &mut direct)?;
        Ok(Parsed::Events {
            count: direct.count,
        })
    }
}

/// What the `data` of an `l2Book` message holds, checked.
struct Book<'a> {
    coin: &'a [u8],
    time: u64,
    bids: SideScan,
    asks: SideScan,
}

fn read_book(buf: &[u8], at: usize) -> Result<Book<'_>, Problem> {
    let mut sc = Scanner::at(buf, at);
    let mut coin = None;
    let mut time = None;
    let mut sides: Option<(SideScan, SideScan)> = None;
    let mut obj = sc.object()?;
    while let Some(key) = obj.next(&mut sc)? {
        match key {
            b"coin" => coin = Some(sc.str()?),
            b"time" => time = Some(sc.u64()?),
            b"levels" => {
                let at = sc.value_offset();
                let mut arr = sc.array()?;
                let mut got = [None, None];
                let mut k = 0usize;
                while arr.next(&mut sc)? {
                    let slot = got.get_mut(k).ok_or(Problem::BadValue {
                        field: "levels",
                        at,
                    })?;
                    let buy = k == 0;
                    *slot = Some(scan_side(&mut sc, buy)?);
                    k += 1;
                }
                match got {
                    [Some(b), Some(a)] => sides = Some((b, a)),
                    _ => {
                        return Err(Problem::BadValue {
                            field: "levels",
                            at,
                        });
                    }
                }
            }
            _ => sc.skip()?,
        }
    }
    let (bids, asks) = sides.ok_or(Problem::Missing("levels"))?;
    Ok(Book {
        coin: coin.ok_or(Problem::Missing("coin"))?,
        time: time.ok_or(Problem::Missing("time"))?,
        bids,
        asks,
    })
}

/// Reads one side's array (validating every level), keeping its span and best level.
fn scan_side(sc: &mut Scanner<'_>, buy: bool) -> Result<SideScan, Problem> {
    let start = sc.value_offset() as usize;
    let mut out = SideScan {
        span: None,
        best: (f64::NAN, 0.0),
        count: 0,
    };
    let mut prev = f64::NAN;
    let mut arr = sc.array()?;
    while arr.next(sc)? {
        let (px, sz) = read_level(sc)?;
        // Best first: bids strictly falling, asks strictly rising.
        if !prev.is_nan() && (if buy { px >= prev } else { px <= prev }) {
            return Err(Problem::BadValue {
                field: "px",
                at: sc.pos() as u32,
            });
        }
        if out.count == 0 {
            out.best = (px, sz);
        }
        prev = px;
        out.count += 1;
    }
    out.span = Some(Span {
        start,
        end: sc.pos(),
    });
    Ok(out)
}

/// `{"px":"…","sz":"…","n":N}`: a positive finite price and a non-negative finite size.
fn read_level(sc: &mut Scanner<'_>) -> Result<(f64, f64), Problem> {
    let (mut px, mut sz) = (None, None);
    let mut obj = sc.object()?;
    while let Some(key) = obj.next(sc)? {
        match key {
            b"px" => {
                let at = sc.value_offset();
                let v = sc.f64()?;
                if !(v.is_finite() && v > 0.0) {
                    return Err(Problem::BadValue { field: "px", at });
                }
                px = Some(v);
            }
            b"sz" => {
                let at = sc.value_offset();
                let v = sc.f64()?;
                if !(v.is_finite() && v >= 0.0) {
                    return Err(Problem::BadValue { field: "sz", at });
                }
                sz = Some(v);
            }
            _ => sc.skip()?,
        }
    }
    Ok((
        px.ok_or(Problem::Missing("px"))?,
        sz.ok_or(Problem::Missing("sz"))?,
    ))
}

/// Emits the touch (`Quote`) then every level as a snapshot (bids then asks).
fn emit_book(
    buf: &[u8],
    book: &Book<'_>,
    inst: InstrumentId,
    ts: u64,
    recv: u64,
    sink: &mut dyn Sink,
) -> Result<(), Problem> {
    let (bid, bid_size) = book.bids.best;
    let (ask, ask_size) = book.asks.best;
    sink.push(event(
        VENUE,
        inst,
        ts,
        recv,
        EventBody::Quote {
            bid,
            bid_size,
            ask,
            ask_size,
        },
    ));
    let total = book.bids.count + book.asks.count;
    let seq = book.time;
    if total == 0 {
        sink.push(event(
            VENUE,
            inst,
            ts,
            recv,
            EventBody::BookLevel {
                price: f64::NAN,
                size: 0.0,
                side: Side::Buy,
                snapshot: true,
                first: true,
                last: true,
                seq,
            },
        ));
        return Ok(());
    }
    let mut k = 0u32;
    for (side, scan) in [(Side::Buy, &book.bids), (Side::Sell, &book.asks)] {
        let Some(span) = scan.span else { continue };
        let mut sc = Scanner::at(buf, span.start);
        let mut arr = sc.array()?;
        while arr.next(&mut sc)? {
            let (price, size) = read_level(&mut sc)?;
            sink.push(event(
                VENUE,
                inst,
                ts,
                recv,
                EventBody::BookLevel {
                    price,
                    size,
                    side,
                    snapshot: true,
                    first: k == 0,
                    last: k + 1 == total,
                    seq,
                },
            ));
            k += 1;
        }
    }
    Ok(())
}

/// Writes `{"method":"subscribe","subscription":{"type":"l2Book","coin":COIN}}`.
pub fn subscribe_l2_book(out: &mut Vec<u8>, coin: &str) {
    out.extend_from_slice(br#"{"method":"subscribe","subscription":{"type":"l2Book","coin":"#);
    write_str(out, coin);
    out.extend_from_slice(b"}}");
}

/// Writes Hyperliquid's client heartbeat, `{"method":"ping"}` (answered `{"channel":"pong"}`).
pub fn ping(out: &mut Vec<u8>) {
    out.extend_from_slice(br#"{"method":"ping"}"#);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::InstrumentKind;
    use crate::session::register;

    fn parser() -> (HyperliquidParser, InstrumentId) {
        let mut reg = Instruments::new();
        let id = register(&mut reg, Venue::Hyperliquid, "BTC", false);
        assert_eq!(reg.get(id).unwrap().kind, InstrumentKind::Perpetual);
        assert!(!reg.get(id).unwrap().inverse);
        (HyperliquidParser::new(&reg), id)
    }

    fn run(
        p: &mut HyperliquidParser,
        msg: &str,
    ) -> Result<(Parsed<'static>, Vec<MarketEvent>), Problem> {
        let mut out = Vec::new();
        let leaked: &'static [u8] = Box::leak(msg.as_bytes().to_vec().into_boxed_slice());
        p.parse(leaked, 7, &mut |e| out.push(e))
            .map(|r| (r, out))
            .map_err(|e| e.problem)
    }

    const BOOK: &str = r#"{"channel":"l2Book","data":{"coin":"BTC","time":1700000000123,"levels":[[{"px":"37000.5","sz":"1.25","n":3},{"px":"37000","sz":"0.5","n":1}],[{"px":"37001","sz":"0.75","n":2}]]}}"#;

    #[test]
    fn a_book_is_a_quote_then_snapshot_levels() {
        let (mut p, id) = parser();
        let (r, evs) = run(&mut p, BOOK).unwrap();
        assert_eq!(r, Parsed::Events { count: 4 });
        assert!(evs.iter().all(|e| e.instrument == id
            && e.venue == Venue::Hyperliquid
            && e.exchange_ts_ns == 1_700_000_000_123_000_000
            && e.recv_ts_ns == 7));
        assert_eq!(
            evs[0].body,
            EventBody::Quote {
                bid: 37000.5,
                bid_size: 1.25,
                ask: 37001.0,
                ask_size: 0.75
            }
        );
        let levels: Vec<_> = evs[1..]
            .iter()
            .map(|e| match e.body {
                EventBody::BookLevel {
                    price,
                    size,
                    side,
                    snapshot,
                    first,
                    last,
                    seq,
                } => {
                    assert!(snapshot);
                    assert_eq!(seq, 1_700_000_000_123);
                    (price, size, side, first, last)
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            levels,
            vec![
                (37000.5, 1.25, Side::Buy, true, false),
                (37000.0, 0.5, Side::Buy, false, false),
                (37001.0, 0.75, Side::Sell, false, true),
            ]
        );
    }

    #[test]
    fn control_messages_and_requests() {
        let (mut p, _) = parser();
        assert_eq!(
            run(&mut p, r#"{"channel":"pong"}"#).unwrap().0,
            Parsed::Pong
        );
        let (r, evs) = run(
            &mut p,
            r#"{"channel":"subscriptionResponse","data":{"method":"subscribe","subscription":{"type":"l2Book","coin":"BTC"}}}"#,
        )
        .unwrap();
        assert!(evs.is_empty());
        assert!(
            matches!(r, Parsed::Ack { id: None, result } if result.starts_with(b"{\"method\""))
        );
        assert_eq!(
            run(
                &mut p,
                r#"{"channel":"error","data":"Invalid subscription"}"#
            )
            .unwrap()
            .0,
            Parsed::Error {
                id: None,
                code: 0,
                message: b"Invalid subscription"
            }
        );
        assert_eq!(
            run(
                &mut p,
                r#"{"channel":"allMids","data":{"mids":{"BTC":"1"}}}"#
            )
            .unwrap()
            .0,
            Parsed::UnknownChannel {
                channel: b"allMids"
            }
        );
        // Unknown coin: counted, nothing emitted.
        let eth = BOOK.replace("\"BTC\"", "\"ETH\"");
        assert_eq!(
            run(&mut p, &eth).unwrap(),
            (Parsed::Events { count: 0 }, vec![])
        );
        assert_eq!(p.stats().unknown_instruments, 1);
        let mut sub = Vec::new();
        subscribe_l2_book(&mut sub, "BTC");
        assert_eq!(
            std::str::from_utf8(&sub).unwrap(),
            r#"{"method":"subscribe","subscription":{"type":"l2Book","coin":"BTC"}}"#
        );
        let mut png = Vec::new();
        ping(&mut png);
        assert_eq!(png, br#"{"method":"ping"}"#);
    }

    #[test]
    fn an_empty_book_clears_and_a_large_one_is_emitted_whole() {
        let (mut p, _) = parser();
        let (r, evs) = run(
            &mut p,
            r#"{"channel":"l2Book","data":{"coin":"BTC","time":5,"levels":[[],[]]}}"#,
        )
        .unwrap();
        assert_eq!(r, Parsed::Events { count: 2 });
        assert!(matches!(
            evs[1].body,
            EventBody::BookLevel { price, size: 0.0, first: true, last: true, snapshot: true, .. } if price.is_nan()
        ));
        // 50 levels a side: more than the staging buffer.
        let side = |base: f64, step: f64| {
            (0..50)
                .map(|i| format!(r#"{{"px":"{}","sz":"1","n":1}}"#, base + step * i as f64))
                .collect::<Vec<_>>()
                .join(",")
        };
        let big = format!(
            r#"{{"channel":"l2Book","data":{{"coin":"BTC","time":9,"levels":[[{}],[{}]]}}}}"#,
            side(100.0, -1.0),
            side(101.0, 1.0)
        );
        let (r, evs) = run(&mut p, &big).unwrap();
        assert_eq!(r, Parsed::Events { count: 101 });
        assert!(matches!(
            evs[100].body,
            EventBody::BookLevel {
                last: true,
                price: 150.0,
                ..
            }
        ));
    }

    #[test]
    fn malformed_and_truncated_messages_emit_nothing() {
        let (mut p, _) = parser();
        let bad: &[(&str, &str)] = &[
            ("no channel", r#"{"data":{}}"#),
            ("no data", r#"{"channel":"l2Book"}"#),
            (
                "one side",
                r#"{"channel":"l2Book","data":{"coin":"BTC","time":1,"levels":[[]]}}"#,
            ),
            (
                "three sides",
                r#"{"channel":"l2Book","data":{"coin":"BTC","time":1,"levels":[[],[],[]]}}"#,
            ),
            (
                "no time",
                r#"{"channel":"l2Book","data":{"coin":"BTC","levels":[[],[]]}}"#,
            ),
            (
                "no coin",
                r#"{"channel":"l2Book","data":{"time":1,"levels":[[],[]]}}"#,
            ),
            (
                "no levels",
                r#"{"channel":"l2Book","data":{"coin":"BTC","time":1}}"#,
            ),
            (
                "zero price",
                r#"{"channel":"l2Book","data":{"coin":"BTC","time":1,"levels":[[{"px":"0","sz":"1","n":1}],[]]}}"#,
            ),
            (
                "negative size",
                r#"{"channel":"l2Book","data":{"coin":"BTC","time":1,"levels":[[{"px":"5","sz":"-1","n":1}],[]]}}"#,
            ),
            (
                "text price",
                r#"{"channel":"l2Book","data":{"coin":"BTC","time":1,"levels":[[{"px":"abc","sz":"1","n":1}],[]]}}"#,
            ),
            (
                "no size",
                r#"{"channel":"l2Book","data":{"coin":"BTC","time":1,"levels":[[{"px":"5","n":1}],[]]}}"#,
            ),
            (
                "bids rising",
                r#"{"channel":"l2Book","data":{"coin":"BTC","time":1,"levels":[[{"px":"5","sz":"1","n":1},{"px":"6","sz":"1","n":1}],[]]}}"#,
            ),
            (
                "level not an object",
                r#"{"channel":"l2Book","data":{"coin":"BTC","time":1,"levels":[[5],[]]}}"#,
            ),
            (
                "time out of range",
                r#"{"channel":"l2Book","data":{"coin":"BTC","time":18446744073709551615,"levels":[[],[]]}}"#,
            ),
            ("not json", "l2Book"),
        ];
        for (name, msg) in bad {
            let mut n = 0;
            let r = p.parse(msg.as_bytes(), 1, &mut |_| n += 1);
            assert!(r.is_err(), "{name}: {r:?}");
            assert_eq!(n, 0, "{name}");
        }
        // Every cut of a good message is refused and emits nothing.
        for cut in 1..BOOK.len() {
            let mut n = 0;
            let r = p.parse(&BOOK.as_bytes()[..cut], 1, &mut |_| n += 1);
            assert!(r.is_err(), "cut at {cut}");
            assert_eq!(n, 0, "cut at {cut}");
        }
        assert_eq!(
            p.stats().malformed,
            bad.len() as u64 + BOOK.len() as u64 - 1
        );
        // The parser is still fine afterwards.
        assert_eq!(run(&mut p, BOOK).unwrap().0, Parsed::Events { count: 4 });
    }
}
