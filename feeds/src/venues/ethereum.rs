//! Ethereum JSON-RPC over WebSocket: `eth_subscribe` `newHeads` notifications into
//! `ChainHead` events (for gas prediction), the subscription result and errors into
//! [`Parsed`]; the `eth_subscribe` request.
//!
//! Owns the node's formats: quantities are hex strings (`"0x1b4"`) and a quantity beyond 64
//! bits is an error (no field Keel reads can exceed it on a real chain); the head's
//! `timestamp` is in seconds. A head without `baseFeePerGas` (before London) has base fee 0.
//! Chain heads belong to no instrument ([`InstrumentId::NONE`]). Must never allocate per
//! message or panic on any input.

use super::json::{Scanner, write_u64};
use super::{ParseError, Parsed, ParserStats, Problem, account, event};
use crate::event::{EventBody, MarketEvent, Venue};
use crate::instrument::InstrumentId;

const VENUE: Venue = Venue::Ethereum;

/// Parses an Ethereum node's subscription messages.
#[derive(Debug, Default)]
pub struct EthereumParser {
    stats: ParserStats,
}

impl EthereumParser {
    /// A parser.
    pub fn new() -> Self {
        Self::default()
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
        let res = run(payload, recv_ts_ns, emit);
        account(&mut self.stats, &res);
        res.map_err(|p| ParseError::new(VENUE, p, payload))
    }
}

super::impl_venue_parser!(EthereumParser);

#[derive(Clone, Copy, Debug)]
struct Head {
    number: u64,
    base_fee_wei: u64,
    gas_used: u64,
    gas_limit: u64,
    timestamp_s: u64,
}

fn run<'a>(
    buf: &'a [u8],
    recv: u64,
    emit: &mut dyn FnMut(MarketEvent),
) -> Result<Parsed<'a>, Problem> {
    let mut sc = Scanner::new(buf);
    let mut obj = sc.object()?;
    let mut method: Option<&'a [u8]> = None;
    let mut params = None;
    let mut head = None;
    let mut id = None;
    let mut result = None;
    let mut error = None;
    while let Some(key) = obj.next(&mut sc)? {
        match key {
            b"method" => method = Some(sc.str()?),
            b"params" if method == Some(b"eth_subscription") => head = Some(params_head(&mut sc)?),
            b"params" => params = Some(sc.raw()?),
            b"id" => {
                id = match sc.peek()? {
                    b'0'..=b'9' => Some(sc.u64()?),
                    _ => {
                        sc.skip()?;
                        None
                    }
                }
            }
            b"result" => result = Some(sc.raw()?),
            b"error" => {
                let mut e = sc.object()?;
                let (mut code, mut message) = (None, &b""[..]);
                while let Some(k) = e.next(&mut sc)? {
                    match k {
                        b"code" => code = Some(sc.i64()?),
                        b"message" => message = sc.str_or_null()?.unwrap_or(b""),
                        _ => sc.skip()?,
                    }
                }
                error = Some((code.ok_or(Problem::Missing("error.code"))?, message));
            }
            _ => sc.skip()?,
        }
    }
    sc.end()?;
    if let Some((code, message)) = error {
        return Ok(Parsed::Error { id, code, message });
    }
    match method {
        Some(b"eth_subscription") => {
            let head = match (head, params) {
                (Some(h), _) => h,
                (None, Some(p)) => params_head(&mut Scanner::at(buf, p.start))?,
                (None, None) => return Err(Problem::Missing("params")),
            };
            let ts = head
                .timestamp_s
                .checked_mul(1_000_000_000)
                .ok_or(Problem::TimestampRange("timestamp"))?;
            let body = EventBody::ChainHead {
                number: head.number,
                base_fee_wei: head.base_fee_wei,
                gas_used: head.gas_used,
                gas_limit: head.gas_limit,
                timestamp_s: head.timestamp_s,
            };
            emit(event(VENUE, InstrumentId::NONE, ts, recv, body));
            Ok(Parsed::Events { count: 1 })
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

/// `params` of an `eth_subscription` notification: `{"subscription": .., "result": head}`.
fn params_head(sc: &mut Scanner<'_>) -> Result<Head, Problem> {
    let mut obj = sc.object()?;
    let mut head = None;
    while let Some(key) = obj.next(sc)? {
        match key {
            b"result" => head = Some(read_head(sc)?),
            _ => sc.skip()?,
        }
    }
    head.ok_or(Problem::Missing("params.result"))
}

fn read_head(sc: &mut Scanner<'_>) -> Result<Head, Problem> {
    let (mut number, mut base_fee, mut used, mut limit, mut ts) = (None, None, None, None, None);
    let mut obj = sc.object()?;
    while let Some(key) = obj.next(sc)? {
        match key {
            b"number" => number = Some(sc.hex_u64()?),
            b"baseFeePerGas" => base_fee = Some(sc.hex_u64()?),
            b"gasUsed" => used = Some(sc.hex_u64()?),
            b"gasLimit" => limit = Some(sc.hex_u64()?),
            b"timestamp" => ts = Some(sc.hex_u64()?),
            _ => sc.skip()?,
        }
    }
    Ok(Head {
        number: number.ok_or(Problem::Missing("number"))?,
        base_fee_wei: base_fee.unwrap_or(0),
        gas_used: used.ok_or(Problem::Missing("gasUsed"))?,
        gas_limit: limit.ok_or(Problem::Missing("gasLimit"))?,
        timestamp_s: ts.ok_or(Problem::Missing("timestamp"))?,
    })
}

/// Appends `{"jsonrpc":"2.0","id":id,"method":"eth_subscribe","params":["newHeads"]}`.
pub fn subscribe_new_heads(out: &mut Vec<u8>, id: u64) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    write_u64(out, id);
    out.extend_from_slice(b",\"method\":\"eth_subscribe\",\"params\":[\"newHeads\"]}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_request() {
        let mut out = Vec::new();
        subscribe_new_heads(&mut out, 1);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#
        );
    }
}
