//! OKX v5 public WebSocket: `tickers` (every instType, options included) into `Quote`,
//! `opt-summary` into `OptionTicker` and `VenueGreeks`, `index-tickers` into `Index`; `event`
//! messages (subscribe, error, notice) and the text `pong` into [`Parsed`]; the subscribe
//! request and the text `ping`.
//!
//! Owns OKX's formats: every number is a string and `""` means absent (NaN); `opt-summary`
//! vols are fractions (`markVol`, `bidVol`, `askVol`; a vol of 0 means none and becomes NaN),
//! `fwdPx` is the forward, and the Greeks kept are the USD Black-Scholes ones (`deltaBS`,
//! `gammaBS`, `vegaBS`, `thetaBS`; the coin-adjusted `delta`... are not). `opt-summary` sends no
//! prices: the ticker's bid, ask, sizes, mark and index are NaN. Index instruments (kind
//! `Index`) and markets are looked up apart, so `index-tickers` for `BTC-USDT` never resolves to
//! the spot pair (the registry, keyed by venue and name, cannot hold an index and a market of
//! the same name: register indices that no market shares, such as `BTC-USD`). Must never
//! allocate per message or panic on any input.

use super::json::{Scanner, Span, write_str, write_u64};
use super::{
    Direct, ParseError, Parsed, ParserStats, Problem, Sink, Staged, SymbolTable, account, event,
    ms_to_ns, side_or_empty,
};
use crate::event::{EventBody, MarketEvent, OptionTicker, Venue, VenueGreeks};
use crate::instrument::{InstrumentKind, Instruments};

const VENUE: Venue = Venue::Okx;

/// The client heartbeat: send this text; the venue answers `pong` ([`Parsed::Pong`]).
pub const PING: &[u8] = b"ping";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Channel {
    Tickers,
    OptSummary,
    IndexTickers,
}

fn channel_kind(ch: &[u8]) -> Option<Channel> {
    match ch {
        b"tickers" => Some(Channel::Tickers),
        b"opt-summary" => Some(Channel::OptSummary),
        b"index-tickers" => Some(Channel::IndexTickers),
        _ => None,
    }
}

/// Parses OKX public messages.
pub struct OkxParser {
    markets: SymbolTable,
    indices: SymbolTable,
    staged: Staged,
    stats: ParserStats,
}

fn is_index(i: &crate::instrument::Instrument) -> bool {
    i.kind == InstrumentKind::Index
}

impl OkxParser {
    /// A parser for the OKX instruments of `instruments`.
    pub fn new(instruments: &Instruments) -> Self {
        Self {
            markets: SymbolTable::build(instruments, VENUE, |i| !is_index(i)),
            indices: SymbolTable::build(instruments, VENUE, is_index),
            staged: Staged::new(),
            stats: ParserStats::default(),
        }
    }

    /// Replaces the instrument tables (allocates).
    pub fn set_instruments(&mut self, instruments: &Instruments) {
        self.markets = SymbolTable::build(instruments, VENUE, |i| !is_index(i));
        self.indices = SymbolTable::build(instruments, VENUE, is_index);
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
        if buf.trim_ascii() == b"pong" {
            return Ok(Parsed::Pong);
        }
        self.staged.clear();
        let mut sc = Scanner::new(buf);
        let mut obj = sc.object()?;
        let mut channel: Option<&'a [u8]> = None;
        let mut arg = None;
        let mut data = None;
        let mut staged_data = false;
        let mut event_kind: Option<&'a [u8]> = None;
        let mut code = None;
        let mut msg: Option<&'a [u8]> = None;
        let mut id = None;
        while let Some(key) = obj.next(&mut sc)? {
            match key {
                b"arg" => {
                    let (ch, span) = arg_channel(&mut sc)?;
                    channel = ch;
                    arg = Some(span);
                }
                b"data" => match channel.and_then(channel_kind) {
                    Some(kind) => {
                        data = Some(self.data(kind, &mut sc, recv)?);
                        staged_data = true;
                    }
                    None => data = Some(sc.raw()?),
                },
                b"event" => event_kind = Some(sc.str()?),
                b"code" => code = Some(okx_code(&mut sc)?),
                b"msg" => msg = Some(sc.str()?),
                b"id" => id = request_id(&mut sc)?,
                _ => sc.skip()?,
            }
        }
        sc.end()?;
        if let Some(ev) = event_kind {
            let message = msg.unwrap_or(b"");
            let code = code.unwrap_or(0);
            return Ok(match ev {
                b"subscribe" | b"unsubscribe" | b"login" | b"channel-conn-count" => Parsed::Ack {
                    id,
                    result: arg.map_or(&b""[..], |a| sc.span_bytes(a)),
                },
                b"error" => Parsed::Error { id, code, message },
                b"notice" => Parsed::Notice { code, message },
                other => Parsed::UnknownChannel { channel: other },
            });
        }
        let channel = channel.ok_or(Problem::Missing("arg.channel"))?;
        let Some(kind) = channel_kind(channel) else {
            return Ok(Parsed::UnknownChannel { channel });
        };
        let data = data.ok_or(Problem::Missing("data"))?;
        if !staged_data {
            self.data(kind, &mut Scanner::at(buf, data.start), recv)?;
        }
        self.stats.unknown_instruments += u64::from(self.staged.unknown_count());
        let count = if self.staged.overflowed() {
            let mut direct = Direct::new(emit);
            entries(
                kind,
                &self.markets,
                &self.indices,
                &mut Scanner::at(buf, data.start),
                recv,
                &mut direct,
            )?;
            direct.count
        } else {
            self.staged.flush(emit)
        };
        Ok(Parsed::Events { count })
    }

    /// Stages the events of a `data` array; returns its span.
    fn data(&mut self, kind: Channel, sc: &mut Scanner<'_>, recv: u64) -> Result<Span, Problem> {
        sc.peek()?;
        let start = sc.pos();
        entries(
            kind,
            &self.markets,
            &self.indices,
            sc,
            recv,
            &mut self.staged,
        )?;
        Ok(Span {
            start,
            end: sc.pos(),
        })
    }
}

super::impl_venue_parser!(OkxParser);

/// `arg`: its `channel` and where it is.
fn arg_channel<'a>(sc: &mut Scanner<'a>) -> Result<(Option<&'a [u8]>, Span), Problem> {
    sc.peek()?;
    let start = sc.pos();
    let mut channel = None;
    let mut obj = sc.object()?;
    while let Some(key) = obj.next(sc)? {
        match key {
            b"channel" => channel = Some(sc.str()?),
            _ => sc.skip()?,
        }
    }
    Ok((
        channel,
        Span {
            start,
            end: sc.pos(),
        },
    ))
}

/// OKX codes are strings (`"60012"`), sometimes empty.
fn okx_code(sc: &mut Scanner<'_>) -> Result<i64, Problem> {
    if sc.peek()? == b'"' {
        let at = sc.value_offset();
        let s = sc.str()?;
        if s.is_empty() {
            return Ok(0);
        }
        return parse_signed(s).ok_or(Problem::BadValue { field: "code", at });
    }
    Ok(sc.i64()?)
}

fn parse_signed(s: &[u8]) -> Option<i64> {
    core::str::from_utf8(s).ok()?.parse().ok()
}

/// A request id echoed as a string of digits (or a number); other ids are not reported.
fn request_id(sc: &mut Scanner<'_>) -> Result<Option<u64>, Problem> {
    match sc.peek()? {
        b'"' => {
            let s = sc.str()?;
            Ok(parse_signed(s).and_then(|v: i64| u64::try_from(v).ok()))
        }
        b'0'..=b'9' => Ok(Some(sc.u64()?)),
        _ => {
            sc.skip()?;
            Ok(None)
        }
    }
}

/// A vol of 0 means the venue has none.
#[inline]
fn vol(v: f64) -> f64 {
    if v == 0.0 { f64::NAN } else { v }
}

/// Every entry of a `data` array into `sink`.
fn entries<S: Sink>(
    kind: Channel,
    markets: &SymbolTable,
    indices: &SymbolTable,
    sc: &mut Scanner<'_>,
    recv: u64,
    sink: &mut S,
) -> Result<(), Problem> {
    let mut arr = sc.array()?;
    while arr.next(sc)? {
        match kind {
            Channel::Tickers => ticker(markets, sc, recv, sink)?,
            Channel::OptSummary => opt_summary(markets, sc, recv, sink)?,
            Channel::IndexTickers => index_ticker(indices, sc, recv, sink)?,
        }
    }
    Ok(())
}

fn ticker<S: Sink>(
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
            b"instId" => name = Some(sc.str()?),
            b"bidPx" => bid = sc.f64()?,
            b"bidSz" => bid_size = sc.f64()?,
            b"askPx" => ask = sc.f64()?,
            b"askSz" => ask_size = sc.f64()?,
            b"ts" => ts = Some(sc.u64()?),
            _ => sc.skip()?,
        }
    }
    let name = name.ok_or(Problem::Missing("instId"))?;
    let ts = ms_to_ns(ts.ok_or(Problem::Missing("ts"))?, "ts")?;
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

fn opt_summary<S: Sink>(
    symbols: &SymbolTable,
    sc: &mut Scanner<'_>,
    recv: u64,
    sink: &mut S,
) -> Result<(), Problem> {
    let nan = f64::NAN;
    let (mut mark_iv, mut bid_iv, mut ask_iv, mut fwd) = (nan, nan, nan, nan);
    let mut g = VenueGreeks {
        delta: nan,
        gamma: nan,
        vega: nan,
        theta: nan,
        rho: nan,
    };
    let mut name = None;
    let mut ts = None;
    let mut obj = sc.object()?;
    while let Some(key) = obj.next(sc)? {
        match key {
            b"instId" => name = Some(sc.str()?),
            b"markVol" => mark_iv = sc.f64()?,
            b"bidVol" => bid_iv = sc.f64()?,
            b"askVol" => ask_iv = sc.f64()?,
            b"fwdPx" => fwd = sc.f64()?,
            b"deltaBS" => g.delta = sc.f64()?,
            b"gammaBS" => g.gamma = sc.f64()?,
            b"vegaBS" => g.vega = sc.f64()?,
            b"thetaBS" => g.theta = sc.f64()?,
            b"ts" => ts = Some(sc.u64()?),
            _ => sc.skip()?,
        }
    }
    let name = name.ok_or(Problem::Missing("instId"))?;
    let ts = ms_to_ns(ts.ok_or(Problem::Missing("ts"))?, "ts")?;
    let Some((inst, _)) = symbols.get(name) else {
        sink.unknown();
        return Ok(());
    };
    let t = OptionTicker {
        bid: nan,
        bid_size: nan,
        ask: nan,
        ask_size: nan,
        mark: nan,
        mark_iv: vol(mark_iv),
        bid_iv: vol(bid_iv),
        ask_iv: vol(ask_iv),
        underlying: fwd,
        index: nan,
    };
    sink.push(event(VENUE, inst, ts, recv, EventBody::OptionTicker(t)));
    sink.push(event(VENUE, inst, ts, recv, EventBody::VenueGreeks(g)));
    Ok(())
}

fn index_ticker<S: Sink>(
    symbols: &SymbolTable,
    sc: &mut Scanner<'_>,
    recv: u64,
    sink: &mut S,
) -> Result<(), Problem> {
    let mut price = None;
    let mut name = None;
    let mut ts = None;
    let mut obj = sc.object()?;
    while let Some(key) = obj.next(sc)? {
        match key {
            b"instId" => name = Some(sc.str()?),
            b"idxPx" => price = Some(sc.f64()?),
            b"ts" => ts = Some(sc.u64()?),
            _ => sc.skip()?,
        }
    }
    let name = name.ok_or(Problem::Missing("instId"))?;
    let price = price.ok_or(Problem::Missing("idxPx"))?;
    let ts = ms_to_ns(ts.ok_or(Problem::Missing("ts"))?, "ts")?;
    let Some((inst, _)) = symbols.get(name) else {
        sink.unknown();
        return Ok(());
    };
    sink.push(event(VENUE, inst, ts, recv, EventBody::Index { price }));
    Ok(())
}

/// One subscription argument: a channel and the instrument, family or type it selects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OkxArg<'a> {
    /// `tickers`, `opt-summary`, `index-tickers`, ...
    pub channel: &'a str,
    /// `instId` (`BTC-USDT`, `BTC-USD-231229-40000-P`).
    pub inst_id: Option<&'a str>,
    /// `instFamily` (`BTC-USD`, for `opt-summary`).
    pub inst_family: Option<&'a str>,
    /// `instType` (`OPTION`, `SWAP`, ...).
    pub inst_type: Option<&'a str>,
}

fn op_request(out: &mut Vec<u8>, op: &str, id: Option<u64>, args: &[OkxArg<'_>]) {
    out.push(b'{');
    if let Some(id) = id {
        out.extend_from_slice(b"\"id\":\"");
        write_u64(out, id);
        out.extend_from_slice(b"\",");
    }
    out.extend_from_slice(b"\"op\":");
    write_str(out, op);
    out.extend_from_slice(b",\"args\":[");
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"channel\":");
        write_str(out, a.channel);
        for (key, val) in [
            (&b",\"instType\":"[..], a.inst_type),
            (b",\"instFamily\":", a.inst_family),
            (b",\"instId\":", a.inst_id),
        ] {
            if let Some(v) = val {
                out.extend_from_slice(key);
                write_str(out, v);
            }
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
}

/// Appends `{"id":"..","op":"subscribe","args":[..]}` (the id is optional; OKX echoes it).
pub fn subscribe(out: &mut Vec<u8>, id: Option<u64>, args: &[OkxArg<'_>]) {
    op_request(out, "subscribe", id, args);
}

/// Appends the matching `unsubscribe`.
pub fn unsubscribe(out: &mut Vec<u8>, id: Option<u64>, args: &[OkxArg<'_>]) {
    op_request(out, "unsubscribe", id, args);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_matches_the_documented_request() {
        let mut out = Vec::new();
        let arg = OkxArg {
            channel: "tickers",
            inst_id: Some("BTC-USDT"),
            ..OkxArg::default()
        };
        subscribe(&mut out, Some(1512), &[arg]);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"id":"1512","op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"}]}"#
        );
        out.clear();
        let fam = OkxArg {
            channel: "opt-summary",
            inst_family: Some("BTC-USD"),
            ..OkxArg::default()
        };
        subscribe(&mut out, None, &[fam]);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"op":"subscribe","args":[{"channel":"opt-summary","instFamily":"BTC-USD"}]}"#
        );
    }
}
