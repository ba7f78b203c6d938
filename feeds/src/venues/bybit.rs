//! Bybit v5 public WebSocket `tickers.{symbol}`: option tickers into `OptionTicker` and
//! `VenueGreeks`, linear (and inverse) tickers into `Quote` and `Mark`; `op` responses
//! (subscribe, ping/pong) into [`Parsed`]; the subscribe and ping requests.
//!
//! Owns Bybit's formats: every number is a string; IVs are fractions; a side with price 0 and
//! size 0 is empty (price NaN, size 0, its IV NaN) and an IV of 0 means none (NaN). Linear
//! tickers come as a `snapshot` and then `delta`s carrying only the fields that changed: the
//! last value of every field is kept per instrument in a table allocated at construction and
//! indexed by `InstrumentId`, so each emitted `Quote`/`Mark` is complete. A delta emits the
//! `Quote` when a book field changed and the `Mark` when a mark, index or funding field
//! changed; a snapshot emits both. Bybit's option Greeks (`delta`, `gamma`, `vega`, `theta`)
//! are passed through as the venue defines them; `rho` is NaN. Must never allocate per message
//! or panic on any input.

use super::json::{Scanner, Span, write_str, write_u64};
use super::{
    ParseError, Parsed, ParserStats, Problem, SymbolTable, account, event, ms_to_ns, side_or_empty,
};
use crate::event::{EventBody, MarketEvent, OptionTicker, Venue, VenueGreeks};
use crate::instrument::{InstrumentKind, Instruments};

const VENUE: Venue = Venue::Bybit;

// Indices of the ticker fields kept per instrument.
const BID: usize = 0;
const BID_SIZE: usize = 1;
const ASK: usize = 2;
const ASK_SIZE: usize = 3;
const MARK: usize = 4;
const MARK_IV: usize = 5;
const BID_IV: usize = 6;
const ASK_IV: usize = 7;
const UNDERLYING: usize = 8;
const INDEX: usize = 9;
const FUNDING: usize = 10;
const DELTA: usize = 11;
const GAMMA: usize = 12;
const VEGA: usize = 13;
const THETA: usize = 14;
const FIELDS: usize = 15;

const QUOTE_MASK: u32 = 1 << BID | 1 << BID_SIZE | 1 << ASK | 1 << ASK_SIZE;
const MARK_MASK: u32 = 1 << MARK | 1 << INDEX | 1 << FUNDING;
const GREEKS_MASK: u32 = 1 << DELTA | 1 << GAMMA | 1 << VEGA | 1 << THETA;

/// The last value of every ticker field of one instrument.
type LastTicker = [f64; FIELDS];

/// The fields one message carried.
struct TickerData<'a> {
    symbol: Option<&'a [u8]>,
    values: LastTicker,
    present: u32,
}

impl<'a> TickerData<'a> {
    fn read(sc: &mut Scanner<'a>) -> Result<Self, Problem> {
        let mut d = TickerData {
            symbol: None,
            values: [f64::NAN; FIELDS],
            present: 0,
        };
        let mut obj = sc.object()?;
        while let Some(key) = obj.next(sc)? {
            let slot = match key {
                b"symbol" => {
                    d.symbol = Some(sc.str()?);
                    continue;
                }
                b"bid1Price" | b"bidPrice" => BID,
                b"bid1Size" | b"bidSize" => BID_SIZE,
                b"ask1Price" | b"askPrice" => ASK,
                b"ask1Size" | b"askSize" => ASK_SIZE,
                b"markPrice" => MARK,
                b"markPriceIv" => MARK_IV,
                b"bidIv" => BID_IV,
                b"askIv" => ASK_IV,
                b"underlyingPrice" => UNDERLYING,
                b"indexPrice" => INDEX,
                b"fundingRate" => FUNDING,
                b"delta" => DELTA,
                b"gamma" => GAMMA,
                b"vega" => VEGA,
                b"theta" => THETA,
                _ => {
                    sc.skip()?;
                    continue;
                }
            };
            let v = sc.f64()?;
            if let Some(x) = d.values.get_mut(slot) {
                *x = v;
                d.present |= 1 << slot;
            }
        }
        Ok(d)
    }
}

/// Parses Bybit public ticker messages.
pub struct BybitParser {
    symbols: SymbolTable,
    last: Vec<LastTicker>,
    stats: ParserStats,
}

impl BybitParser {
    /// A parser for the Bybit instruments of `instruments`.
    pub fn new(instruments: &Instruments) -> Self {
        let symbols = SymbolTable::build(instruments, VENUE, |_| true);
        let last = vec![[f64::NAN; FIELDS]; symbols.id_bound()];
        Self {
            symbols,
            last,
            stats: ParserStats::default(),
        }
    }

    /// Replaces the instrument table (allocates); kept instruments keep their last values.
    pub fn set_instruments(&mut self, instruments: &Instruments) {
        self.symbols = SymbolTable::build(instruments, VENUE, |_| true);
        self.last
            .resize(self.symbols.id_bound(), [f64::NAN; FIELDS]);
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
        let mut topic: Option<&'a [u8]> = None;
        let mut delta = None;
        let mut data: Option<TickerData<'a>> = None;
        let mut data_span: Option<Span> = None;
        let mut ts = None;
        let mut success = None;
        let mut ret_msg: &'a [u8] = b"";
        let mut op: Option<&'a [u8]> = None;
        let mut req_id = None;
        while let Some(key) = obj.next(&mut sc)? {
            match key {
                b"topic" => topic = Some(sc.str()?),
                b"type" => {
                    let at = sc.value_offset();
                    delta = Some(match sc.str()? {
                        b"snapshot" => false,
                        b"delta" => true,
                        _ => return Err(Problem::BadValue { field: "type", at }),
                    });
                }
                b"data" if topic.is_some_and(is_ticker) => data = Some(TickerData::read(&mut sc)?),
                b"data" => data_span = Some(sc.raw()?),
                b"ts" => ts = Some(sc.u64()?),
                b"success" => success = Some(sc.bool()?),
                b"ret_msg" => ret_msg = sc.str()?,
                b"op" => op = Some(sc.str()?),
                b"req_id" => {
                    req_id = match sc.peek()? {
                        b'"' => digits(sc.str()?),
                        _ => {
                            sc.skip()?;
                            None
                        }
                    }
                }
                _ => sc.skip()?,
            }
        }
        sc.end()?;
        if let Some(op) = op {
            return Ok(match (op, success) {
                (b"pong", _) => Parsed::Pong,
                (b"ping", Some(true)) => Parsed::Pong,
                (_, Some(false)) => Parsed::Error {
                    id: req_id,
                    code: 0,
                    message: ret_msg,
                },
                (op, _) => Parsed::Ack {
                    id: req_id,
                    result: op,
                },
            });
        }
        let topic = topic.ok_or(Problem::Missing("topic"))?;
        if !is_ticker(topic) {
            return Ok(Parsed::UnknownChannel { channel: topic });
        }
        let data = match (data, data_span) {
            (Some(d), _) => d,
            (None, Some(span)) => TickerData::read(&mut Scanner::at(buf, span.start))?,
            (None, None) => return Err(Problem::Missing("data")),
        };
        let ts = ms_to_ns(ts.ok_or(Problem::Missing("ts"))?, "ts")?;
        let symbol = match data.symbol {
            Some(s) => s,
            None => topic.get(b"tickers.".len()..).unwrap_or(b""),
        };
        let Some((inst, kind)) = self.symbols.get(symbol) else {
            self.stats.unknown_instruments += 1;
            return Ok(Parsed::Events { count: 0 });
        };
        let Some(last) = self.last.get_mut(inst.0 as usize) else {
            self.stats.unknown_instruments += 1;
            return Ok(Parsed::Events { count: 0 });
        };
        let is_delta = delta.ok_or(Problem::Missing("type"))?;
        if is_delta {
            for (i, (slot, v)) in last.iter_mut().zip(data.values).enumerate() {
                if data.present & (1 << i) != 0 {
                    *slot = v;
                }
            }
        } else {
            *last = data.values;
        }
        let changed = if is_delta { data.present } else { u32::MAX };
        let v = *last;
        let (bid, bid_size) = side_or_empty(v[BID], v[BID_SIZE]);
        let (ask, ask_size) = side_or_empty(v[ASK], v[ASK_SIZE]);
        let mut count = 0;
        let mut send = |body| {
            emit(event(VENUE, inst, ts, recv, body));
            count += 1;
        };
        if kind == InstrumentKind::Option {
            let t = OptionTicker {
                bid,
                bid_size,
                ask,
                ask_size,
                mark: v[MARK],
                mark_iv: iv(v[MARK_IV]),
                bid_iv: if bid.is_nan() {
                    f64::NAN
                } else {
                    iv(v[BID_IV])
                },
                ask_iv: if ask.is_nan() {
                    f64::NAN
                } else {
                    iv(v[ASK_IV])
                },
                underlying: v[UNDERLYING],
                index: v[INDEX],
            };
            send(EventBody::OptionTicker(t));
            if changed & GREEKS_MASK != 0 {
                send(EventBody::VenueGreeks(VenueGreeks {
                    delta: v[DELTA],
                    gamma: v[GAMMA],
                    vega: v[VEGA],
                    theta: v[THETA],
                    rho: f64::NAN,
                }));
            }
        } else {
            if changed & QUOTE_MASK != 0 {
                send(EventBody::Quote {
                    bid,
                    bid_size,
                    ask,
                    ask_size,
                });
            }
            let derivative = matches!(kind, InstrumentKind::Perpetual | InstrumentKind::Future);
            if derivative && changed & MARK_MASK != 0 {
                send(EventBody::Mark {
                    mark: v[MARK],
                    iv: f64::NAN,
                    index: v[INDEX],
                    funding_rate: v[FUNDING],
                });
            }
        }
        Ok(Parsed::Events { count })
    }
}

super::impl_venue_parser!(BybitParser);

fn is_ticker(topic: &[u8]) -> bool {
    topic.starts_with(b"tickers.")
}

/// An IV of 0 means the venue has none.
#[inline]
fn iv(v: f64) -> f64 {
    if v == 0.0 { f64::NAN } else { v }
}

fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |v, &d| v * 10 + u64::from(d - b'0')))
}

fn op_request(out: &mut Vec<u8>, op: &str, req_id: Option<u64>, args: &[&str]) {
    out.push(b'{');
    if let Some(id) = req_id {
        out.extend_from_slice(b"\"req_id\":\"");
        write_u64(out, id);
        out.extend_from_slice(b"\",");
    }
    out.extend_from_slice(b"\"op\":");
    write_str(out, op);
    if !args.is_empty() || op != "ping" {
        out.extend_from_slice(b",\"args\":[");
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, a);
        }
        out.push(b']');
    }
    out.push(b'}');
}

/// Appends `{"op":"subscribe","args":[topics]}` (topics such as `tickers.BTCUSDT`), with
/// `req_id` first when given.
pub fn subscribe(out: &mut Vec<u8>, req_id: Option<u64>, topics: &[&str]) {
    op_request(out, "subscribe", req_id, topics);
}

/// Appends the matching `unsubscribe`.
pub fn unsubscribe(out: &mut Vec<u8>, req_id: Option<u64>, topics: &[&str]) {
    op_request(out, "unsubscribe", req_id, topics);
}

/// Appends the client heartbeat `{"op":"ping"}` (Bybit asks for one every 20 s).
pub fn ping(out: &mut Vec<u8>, req_id: Option<u64>) {
    op_request(out, "ping", req_id, &[]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_match_the_documented_ones() {
        let mut out = Vec::new();
        subscribe(&mut out, None, &["tickers.BTC-6JAN23-17500-C"]);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"op":"subscribe","args":["tickers.BTC-6JAN23-17500-C"]}"#
        );
        out.clear();
        ping(&mut out, Some(7));
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"req_id":"7","op":"ping"}"#
        );
    }
}
