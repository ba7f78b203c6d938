//! keel-sim's Hyperliquid exchange: `POST /exchange` (plain HTTP/1.1, keep-alive) and the
//! WebSocket `post` channel at `ws://ADDR/hyperliquid/ws`, answering `order` and `noop` actions
//! in Hyperliquid's shapes.
//!
//! For every action, in this order:
//! 1. the body is `{"action", "nonce", "signature": {"r","s","v"}, "vaultAddress": null}`
//!    (HTTP 422 / a post `error` otherwise; vaults are refused);
//! 2. the signer is recovered from the EIP-712 `Agent` signature over the action re-encoded to
//!    msgpack from its parsed, typed form (mainnet, source "a") and must be one of the
//!    configured agents (`User or API Wallet 0x.. does not exist.` otherwise);
//! 3. the nonce rules, per signer: within (now − 2 days, now + 1 day), not among the 100
//!    highest nonces kept, and above the smallest of them once 100 are kept — checked and
//!    recorded under one lock with the execution, so two copies at one nonce (an order and its
//!    noop, or the same order over two connections) execute exactly once;
//! 4. execution: `noop` spends the nonce (`{"type":"default"}`); each order (asset 0, the BTC
//!    perpetual, priced at the simulated Binance touch) fills in full at the touch when
//!    marketable (`filled`), else rests (`Gtc`: `resting`, never fills later) or is refused
//!    (`Ioc`: no match; `Alo`: would match).
//!
//! Market data: `l2Book` of BTC on the same WebSocket (conn.rs; the Binance depth book, whole).
//! Positions: every fill moves the signer's BTC position, answered by `clearinghouseState`
//! (`{"type":"clearinghouseState","user"}`: `assetPositions[].position.szi`, `entryPx`).
//!
//! Info: `orderStatus` (`{"type":"orderStatus","user","oid"}`, oid a number or a client order
//! id) answers a filled or resting order of that user, `unknownOid` otherwise; over
//! `POST /info` and as a WebSocket `post` of type `info`.
//!
//! Owns the per-signer nonce sets behind one mutex taken once per action (not on the streaming
//! path). Never panics on a request.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use keel_engine::exec::evm::{Address, U256};
use keel_engine::exec::hyperliquid::{Action, ActionSignature, Network, Tif, recover_signer};
use serde_json::{Value, json};

use super::binance_orders::ApiOutcome;
use super::market::MarketSnapshot;

/// Nonces kept per signer.
pub const KEPT_NONCES: usize = 100;
/// A nonce must be above now − this, ms.
pub const NONCE_PAST_MS: u64 = 2 * 86_400_000;
/// A nonce must be below now + this, ms.
pub const NONCE_FUTURE_MS: u64 = 86_400_000;
/// Largest request body accepted.
const MAX_BODY: usize = 1 << 20;
/// An idle keep-alive HTTP connection is closed after this.
const HTTP_IDLE: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct DeskState {
    /// The agent addresses whose signatures are accepted (each trades its own account).
    agents: Vec<Address>,
    /// Each account's BTC perpetual position: signed size (`szi`) and entry price.
    positions: HashMap<Address, (f64, f64)>,
    nonces: HashMap<Address, BTreeSet<u64>>,
    next_oid: u64,
    /// `orderStatus` answers by (user, oid) and (user, client order id).
    by_oid: HashMap<(Address, u64), Value>,
    by_cloid: HashMap<(Address, String), Value>,
}

/// The Hyperliquid exchange (shared by every HTTP and WebSocket connection).
#[derive(Debug)]
pub(crate) struct HyperliquidDesk {
    state: Mutex<DeskState>,
}

/// Why a body was not an action (HTTP 422; a post `error`).
type Unparsable = String;

fn err(msg: impl Into<String>) -> Value {
    json!({"status": "err", "response": msg.into()})
}

fn parse_u256(v: &Value, name: &str) -> Result<U256, Unparsable> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("signature.{name} must be a 0x-hex string"))?;
    let hex = s
        .strip_prefix("0x")
        .ok_or_else(|| format!("signature.{name} must be a 0x-hex string"))?;
    U256::from_str_radix(hex, 16).map_err(|e| format!("signature.{name}: {e}"))
}

/// A signed size as Hyperliquid prints `szi` (`-0.5` short).
fn wire_signed(x: f64) -> String {
    if x < 0.0 {
        format!("-{}", wire(-x))
    } else {
        wire(x)
    }
}

/// `x` as Hyperliquid prints prices and sizes (up to 8 decimals, no trailing zeros).
fn wire(x: f64) -> String {
    let s = format!("{x:.8}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl HyperliquidDesk {
    pub(crate) fn new(agents: Vec<Address>) -> Self {
        Self {
            state: Mutex::new(DeskState {
                agents,
                next_oid: 77_000_000,
                ..DeskState::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DeskState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers one `/exchange` body at venue time `now_ms`: `Ok(answer)` (status ok or err) or
    /// `Err(why)` when the body is not an action at all.
    pub(crate) fn exchange(
        &self,
        body: &[u8],
        snap: &MarketSnapshot,
        now_ms: u64,
    ) -> (Result<Value, Unparsable>, ApiOutcome) {
        let mut outcome = ApiOutcome::default();
        let r = self.exchange_inner(body, snap, now_ms, &mut outcome);
        (r, outcome)
    }

    fn exchange_inner(
        &self,
        body: &[u8],
        snap: &MarketSnapshot,
        now_ms: u64,
        outcome: &mut ApiOutcome,
    ) -> Result<Value, Unparsable> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| format!("Failed to deserialize the JSON body: {e}"))?;
        let action = Action::from_json(v.get("action").unwrap_or(&Value::Null))
            .map_err(|e| e.to_string())?;
        let nonce = v
            .get("nonce")
            .and_then(Value::as_u64)
            .ok_or("nonce must be an unsigned integer (ms)")?;
        let sig = v.get("signature").ok_or("signature is missing")?;
        let signature = ActionSignature {
            r: parse_u256(&sig["r"], "r")?,
            s: parse_u256(&sig["s"], "s")?,
            v: sig["v"]
                .as_u64()
                .and_then(|v| u8::try_from(v).ok())
                .ok_or("signature.v must be 27 or 28")?,
        };
        match v.get("vaultAddress") {
            None | Some(Value::Null) => {}
            Some(_) => return Ok(err("Vault trading is not supported by keel-sim.")),
        }
        let is_order = matches!(action, Action::Order(_));
        let signer = match recover_signer(&action, nonce, None, &signature, Network::Mainnet) {
            Ok(a) => a,
            Err(e) => {
                outcome.rejected = is_order;
                return Ok(err(format!("Invalid signature: {e}")));
            }
        };
        let mut st = self.lock();
        if !st.agents.contains(&signer) {
            outcome.rejected = is_order;
            return Ok(err(format!(
                "User or API Wallet {} does not exist.",
                signer.to_checksum(None)
            )));
        }
        if let Err(why) = Self::use_nonce(&mut st, signer, nonce, now_ms) {
            outcome.rejected = is_order;
            return Ok(err(why));
        }
        let Action::Order(order) = action else {
            return Ok(json!({"status": "ok", "response": {"type": "default"}}));
        };
        outcome.accepted = true;
        let mut statuses = Vec::with_capacity(order.orders.len());
        for o in &order.orders {
            let (Ok(price), Ok(size)) = (o.p.parse::<f64>(), o.s.parse::<f64>()) else {
                statuses.push(json!({"error": "Order has invalid price or size."}));
                continue;
            };
            if o.a != 0 {
                statuses.push(json!({"error": format!("Invalid asset {}.", o.a)}));
                continue;
            }
            if !(price > 0.0 && size > 0.0 && price.is_finite() && size.is_finite()) {
                statuses.push(json!({"error": "Order has invalid price or size."}));
                continue;
            }
            let q = &snap.binance;
            let touch = if o.b { q.ask } else { q.bid };
            let marketable = touch > 0.0 && if o.b { price >= touch } else { price <= touch };
            let oid = st.next_oid;
            st.next_oid += 1;
            let tif = o.t.limit.tif;
            let record = |status: &str, left: f64| {
                json!({"order": {"coin": "BTC", "side": if o.b { "B" } else { "A" },
                    "limitPx": o.p, "sz": if left == 0.0 { "0.0".to_string() } else { wire(left) },
                    "oid": oid, "timestamp": now_ms, "origSz": o.s, "cloid": o.c},
                    "status": status, "statusTimestamp": now_ms})
            };
            let kept = match (marketable, tif) {
                (true, Tif::Gtc | Tif::Ioc) => Some(record("filled", 0.0)),
                (false, Tif::Gtc | Tif::Alo) => Some(record("open", size)),
                _ => None,
            };
            if let Some(r) = kept {
                if let Some(c) = &o.c {
                    st.by_cloid
                        .insert((signer, c.to_ascii_lowercase()), r.clone());
                }
                st.by_oid.insert((signer, oid), r);
            }
            statuses.push(match (marketable, tif) {
                (true, Tif::Alo) => json!({"error": format!(
                    "Post only order would have immediately matched, bbo was {}@{}. asset=0",
                    wire(q.bid), wire(q.ask))}),
                (true, _) => {
                    outcome.fills += 1;
                    let signed = if o.b { size } else { -size };
                    let pos = st.positions.entry(signer).or_insert((0.0, 0.0));
                    let new = pos.0 + signed;
                    // Entry price: averaged while the position grows, kept while it shrinks,
                    // the fill's when it flips.
                    pos.1 = if pos.0 == 0.0 || pos.0.signum() != new.signum() {
                        touch
                    } else if new.abs() > pos.0.abs() {
                        (pos.1 * pos.0.abs() + touch * size) / new.abs()
                    } else {
                        pos.1
                    };
                    pos.0 = if new.abs() < 1e-12 { 0.0 } else { new };
                    json!({"filled": {"totalSz": wire(size), "avgPx": wire(touch), "oid": oid}})
                }
                (false, Tif::Ioc) => json!({"error":
                    "Order could not immediately match against any resting orders. asset=0"}),
                (false, _) => json!({"resting": {"oid": oid}}),
            });
        }
        Ok(json!({"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}}))
    }

    /// Step 3: the nonce rules; records the nonce when it passes.
    fn use_nonce(
        st: &mut DeskState,
        signer: Address,
        nonce: u64,
        now_ms: u64,
    ) -> Result<(), String> {
        if nonce <= now_ms.saturating_sub(NONCE_PAST_MS) {
            return Err(format!(
                "Invalid nonce: nonce {nonce} is too low (more than 2 days old)."
            ));
        }
        if nonce >= now_ms.saturating_add(NONCE_FUTURE_MS) {
            return Err(format!(
                "Invalid nonce: nonce {nonce} is too high (more than 1 day ahead)."
            ));
        }
        let set = st.nonces.entry(signer).or_default();
        if set.contains(&nonce) {
            return Err(format!("Invalid nonce: duplicate nonce {nonce}."));
        }
        if set.len() >= KEPT_NONCES && set.first().is_some_and(|&min| nonce < min) {
            return Err(format!(
                "Invalid nonce: nonce {nonce} is below the lowest of the {KEPT_NONCES} kept."
            ));
        }
        set.insert(nonce);
        while set.len() > KEPT_NONCES {
            set.pop_first();
        }
        Ok(())
    }

    /// Accepts `agent`'s signatures from now on (its own account).
    pub(crate) fn add_agent(&self, agent: Address) {
        let mut st = self.lock();
        if !st.agents.contains(&agent) {
            st.agents.push(agent);
        }
    }

    /// Sets `user`'s BTC perpetual position (signed size, coin) at `entry_px`.
    pub(crate) fn seed_position(&self, user: Address, szi: f64, entry_px: f64) {
        self.lock().positions.insert(user, (szi, entry_px));
    }

    /// `user`'s BTC perpetual position (signed size, coin).
    pub(crate) fn position(&self, user: Address) -> f64 {
        self.lock().positions.get(&user).map_or(0.0, |p| p.0)
    }

    /// An info request (`orderStatus`, `clearinghouseState`, `allMids`) at market `snap`: the
    /// answer, or why it is not one.
    pub(crate) fn info(&self, req: &Value, snap: &MarketSnapshot) -> Result<Value, Unparsable> {
        let kind = req.get("type").and_then(Value::as_str);
        if kind == Some("allMids") {
            let q = &snap.binance;
            if !(q.bid > 0.0 && q.ask > 0.0) {
                return Ok(json!({}));
            }
            return Ok(json!({"BTC": wire((q.bid + q.ask) / 2.0)}));
        }
        if !matches!(kind, Some("orderStatus" | "clearinghouseState")) {
            return Err(
                "keel-sim serves the orderStatus, clearinghouseState and allMids info requests only"
                    .into(),
            );
        }
        let user = req
            .get("user")
            .and_then(Value::as_str)
            .ok_or("user must be an address")
            .and_then(|u| parse_agent(u).map_err(|_| "user must be an address"))?;
        let st = self.lock();
        if kind == Some("clearinghouseState") {
            let (szi, entry) = st.positions.get(&user).copied().unwrap_or((0.0, 0.0));
            let positions: Vec<Value> = if szi == 0.0 {
                Vec::new()
            } else {
                vec![json!({"type": "oneWay", "position": {
                    "coin": "BTC", "szi": wire_signed(szi), "entryPx": wire(entry),
                    "positionValue": wire(szi.abs() * entry), "unrealizedPnl": "0.0",
                    "returnOnEquity": "0.0", "liquidationPx": null, "marginUsed": "0.0",
                    "maxLeverage": 50, "leverage": {"type": "cross", "value": 20},
                    "cumFunding": {"allTime": "0.0", "sinceOpen": "0.0", "sinceChange": "0.0"}}})]
            };
            let summary = json!({"accountValue": "1000000.0", "totalNtlPos": wire(szi.abs() * entry),
                "totalRawUsd": "1000000.0", "totalMarginUsed": "0.0"});
            return Ok(
                json!({"assetPositions": positions, "marginSummary": summary,
                "crossMarginSummary": summary, "crossMaintenanceMarginUsed": "0.0",
                "withdrawable": "1000000.0", "time": super::market::now_ms()}),
            );
        }
        let found = match req.get("oid") {
            Some(Value::Number(n)) => n.as_u64().and_then(|o| st.by_oid.get(&(user, o))),
            Some(Value::String(c)) => st.by_cloid.get(&(user, c.to_ascii_lowercase())),
            _ => return Err("oid must be an order id or a client order id".into()),
        };
        Ok(match found {
            Some(order) => json!({"status": "order", "order": order}),
            None => json!({"status": "unknownOid"}),
        })
    }

    /// A WebSocket message on `/hyperliquid/ws`: `{"method":"post","id":N,"request":{"type":
    /// "action","payload":BODY}}` → `{"channel":"post","data":{"id":N,"response":..}}`;
    /// `{"method":"ping"}` → `{"channel":"pong"}`.
    pub(crate) fn ws_message(
        &self,
        text: &str,
        snap: &MarketSnapshot,
        now_ms: u64,
    ) -> (Value, ApiOutcome) {
        let req: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                return (
                    json!({"channel": "error", "data": format!("Invalid JSON: {e}")}),
                    ApiOutcome::default(),
                );
            }
        };
        match req.get("method").and_then(Value::as_str) {
            Some("ping") => return (json!({"channel": "pong"}), ApiOutcome::default()),
            Some("post") => {}
            _ => {
                return (
                    json!({"channel": "error", "data": "keel-sim serves the post and ping methods"}),
                    ApiOutcome::default(),
                );
            }
        }
        let id = req.get("id").cloned().unwrap_or(Value::Null);
        let request = &req["request"];
        let response = if request["type"] == "info" {
            let payload = &request["payload"];
            let r = match self.info(payload, snap) {
                Ok(data) => {
                    json!({"type": "info", "payload": {"type": payload["type"], "data": data}})
                }
                Err(why) => json!({"type": "error", "payload": why}),
            };
            (r, ApiOutcome::default())
        } else if request["type"] != "action" {
            (
                json!({"type": "error", "payload": "keel-sim serves action and info posts"}),
                ApiOutcome::default(),
            )
        } else {
            let body = serde_json::to_vec(&request["payload"]).unwrap_or_default();
            match self.exchange(&body, snap, now_ms) {
                (Ok(answer), o) => (json!({"type": "action", "payload": answer}), o),
                (Err(why), o) => (json!({"type": "error", "payload": why}), o),
            }
        };
        (
            json!({"channel": "post", "data": {"id": id, "response": response.0}}),
            response.1,
        )
    }
}

/// Parses `--hyperliquid-agent` values.
pub fn parse_agent(text: &str) -> Result<Address, String> {
    Address::from_str(text.trim()).map_err(|e| format!("{text:?} is not an address: {e}"))
}

/// What an HTTP connection needs from the venue.
pub(crate) struct HttpContext<'a> {
    pub desk: &'a HyperliquidDesk,
    pub market: &'a super::market::SharedMarket,
    pub counters: &'a super::Counters,
    pub stop: &'a AtomicBool,
    pub garble_every: Option<u64>,
    pub drop_every: Option<u64>,
    pub delay: Option<Duration>,
}

/// Serves `POST /exchange` on one HTTP/1.1 connection (keep-alive) until the client closes, it
/// idles for [`HTTP_IDLE`] or the venue stops. Other requests get Hyperliquid-style errors.
pub(crate) fn serve_http(mut tcp: TcpStream, ctx: &HttpContext<'_>) {
    if tcp.set_nonblocking(false).is_err()
        || tcp
            .set_read_timeout(Some(Duration::from_millis(100)))
            .is_err()
    {
        return;
    }
    let _ = tcp.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(16 << 10);
    let mut snap = MarketSnapshot::default();
    let mut generation = 0;
    let mut replies = 0u64;
    let mut last = Instant::now();
    let mut chunk = [0u8; 16 << 10];
    loop {
        // A complete request in the buffer?
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let line = lines.next().unwrap_or("");
            let mut parts = line.split(' ');
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let mut length = 0usize;
            let mut close = false;
            for l in lines {
                if let Some((k, v)) = l.split_once(':') {
                    if k.trim().eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(usize::MAX);
                    } else if k.trim().eq_ignore_ascii_case("connection") {
                        close = v.trim().eq_ignore_ascii_case("close");
                    }
                }
            }
            if length > MAX_BODY {
                respond(&mut tcp, 413, "text/plain", b"body too large", true);
                return;
            }
            if buf.len() >= end + 4 + length {
                let body: Vec<u8> = buf[end + 4..end + 4 + length].to_vec();
                buf.drain(..end + 4 + length);
                ctx.counters.requests.fetch_add(1, Ordering::Relaxed);
                let info = path.trim_end_matches('/') == "/info";
                let (status, ctype, mut answer) = if method != "POST" {
                    (
                        405,
                        "text/plain",
                        b"keel-sim serves POST /exchange and /info".to_vec(),
                    )
                } else if info {
                    generation = ctx.market.refresh(generation, &mut snap);
                    let parsed = serde_json::from_slice::<Value>(&body)
                        .map_err(|e| format!("Failed to deserialize the JSON body: {e}"))
                        .and_then(|v| ctx.desk.info(&v, &snap));
                    match parsed {
                        Ok(v) => (200, "application/json", v.to_string().into_bytes()),
                        Err(why) => (422, "text/plain", why.into_bytes()),
                    }
                } else if path.trim_end_matches('/') != "/exchange" {
                    (
                        404,
                        "text/plain",
                        format!("no such endpoint {path:?}: POST /exchange").into_bytes(),
                    )
                } else {
                    generation = ctx.market.refresh(generation, &mut snap);
                    let (r, o) = ctx.desk.exchange(&body, &snap, super::market::now_ms());
                    count(ctx.counters, o);
                    match r {
                        Ok(v) => (200, "application/json", v.to_string().into_bytes()),
                        Err(why) => (422, "text/plain", why.into_bytes()),
                    }
                };
                replies += 1;
                if let Some(d) = ctx.delay {
                    std::thread::sleep(d);
                }
                if ctx.drop_every.is_some_and(|n| replies.is_multiple_of(n)) {
                    // A lost reply: the connection closes without an answer.
                    let _ = tcp.shutdown(Shutdown::Both);
                    return;
                }
                if let Some(n) = ctx.garble_every
                    && replies.is_multiple_of(n)
                {
                    ctx.counters.malformed.fetch_add(1, Ordering::Relaxed);
                    let cut = answer.len() / 2;
                    answer.truncate(cut);
                }
                if !respond(&mut tcp, status, ctype, &answer, close) || close {
                    return;
                }
                last = Instant::now();
                continue;
            }
        } else if buf.len() > 16 << 10 {
            respond(&mut tcp, 431, "text/plain", b"request head too large", true);
            return;
        }
        if ctx.stop.load(Ordering::Acquire) || last.elapsed() > HTTP_IDLE {
            let _ = tcp.shutdown(Shutdown::Both);
            return;
        }
        match tcp.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

pub(crate) fn count(c: &super::Counters, o: ApiOutcome) {
    if o.accepted {
        c.orders.fetch_add(1, Ordering::Relaxed);
    }
    if o.rejected {
        c.rejected_orders.fetch_add(1, Ordering::Relaxed);
    }
    c.fills.fetch_add(o.fills, Ordering::Relaxed);
}

fn respond(tcp: &mut TcpStream, status: u16, ctype: &str, body: &[u8], close: bool) -> bool {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        _ => "Request Header Fields Too Large",
    };
    let mut resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        body.len(),
        if close { "close" } else { "keep-alive" }
    )
    .into_bytes();
    resp.extend_from_slice(body);
    tcp.write_all(&resp).is_ok() && tcp.flush().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::market::LinearQuote;
    use keel_engine::exec::evm::EvmSigner;
    use keel_engine::exec::hyperliquid::{LimitWire, OrderTypeWire, OrderWire, presign};

    const NOW: u64 = 1_800_000_000_000;

    fn snap() -> MarketSnapshot {
        MarketSnapshot {
            binance: LinearQuote {
                bid: 99_990.0,
                ask: 100_010.0,
                ..LinearQuote::default()
            },
            ..MarketSnapshot::default()
        }
    }

    fn signer() -> EvmSigner {
        EvmSigner::from_hex(&format!("0x{}", "33".repeat(32)), "test").unwrap()
    }

    fn order(p: &str, tif: Tif) -> OrderWire {
        OrderWire {
            a: 0,
            b: true,
            p: p.into(),
            s: "0.01".into(),
            r: false,
            t: OrderTypeWire {
                limit: LimitWire { tif },
            },
            c: None,
        }
    }

    fn answer(d: &HyperliquidDesk, body: &[u8]) -> Value {
        d.exchange(body, &snap(), NOW).0.unwrap()
    }

    #[test]
    fn orders_noops_and_the_nonce_race() {
        let s = signer();
        let d = HyperliquidDesk::new(vec![s.address()]);
        let pair = presign(&s, order("100100", Tif::Ioc), NOW, Network::Mainnet).unwrap();
        let r = answer(&d, &pair.order.body);
        let st = &r["response"]["data"]["statuses"][0];
        assert_eq!(st["filled"]["avgPx"], "100010", "{r}");
        assert_eq!(st["filled"]["totalSz"], "0.01");
        // The same order again, and its noop: the nonce is spent.
        for body in [&pair.order.body, &pair.noop.body] {
            let r = answer(&d, body);
            assert_eq!(r["status"], "err");
            assert!(
                r["response"].as_str().unwrap().contains("duplicate nonce"),
                "{r}"
            );
        }
        // A noop first voids its order.
        let pair = presign(&s, order("100100", Tif::Ioc), NOW + 1, Network::Mainnet).unwrap();
        assert_eq!(answer(&d, &pair.noop.body)["response"]["type"], "default");
        assert_eq!(answer(&d, &pair.order.body)["status"], "err");
        // Resting, IOC without a match, ALO that would match.
        let p = presign(&s, order("90000", Tif::Gtc), NOW + 2, Network::Mainnet).unwrap();
        assert!(
            answer(&d, &p.order.body)["response"]["data"]["statuses"][0]["resting"]["oid"].is_u64()
        );
        let p = presign(&s, order("90000", Tif::Ioc), NOW + 3, Network::Mainnet).unwrap();
        assert!(answer(&d, &p.order.body)["response"]["data"]["statuses"][0]["error"].is_string());
        let p = presign(&s, order("100100", Tif::Alo), NOW + 4, Network::Mainnet).unwrap();
        assert!(
            answer(&d, &p.order.body)["response"]["data"]["statuses"][0]["error"]
                .as_str()
                .unwrap()
                .contains("Post only")
        );
    }

    #[test]
    fn clearinghouse_state_follows_fills_and_seeds() {
        let s = signer();
        let d = HyperliquidDesk::new(Vec::new());
        let user = format!("{:#x}", s.address());
        let state = |d: &HyperliquidDesk| {
            d.info(
                &json!({"type": "clearinghouseState", "user": user}),
                &snap(),
            )
            .unwrap()
        };
        assert_eq!(state(&d)["assetPositions"], json!([]));
        // Not an agent yet: refused; added at run time: accepted.
        let p = presign(&s, order("100100", Tif::Ioc), NOW, Network::Mainnet).unwrap();
        assert_eq!(answer(&d, &p.order.body)["status"], "err");
        d.add_agent(s.address());
        let p = presign(&s, order("100100", Tif::Ioc), NOW + 1, Network::Mainnet).unwrap();
        assert_eq!(answer(&d, &p.order.body)["status"], "ok");
        let pos = &state(&d)["assetPositions"][0]["position"];
        assert_eq!(
            (pos["coin"].as_str(), pos["szi"].as_str()),
            (Some("BTC"), Some("0.01"))
        );
        assert_eq!(pos["entryPx"], "100010");
        let mut sell = order("99000", Tif::Ioc);
        sell.b = false;
        sell.s = "0.03".into();
        let p = presign(&s, sell, NOW + 2, Network::Mainnet).unwrap();
        assert_eq!(answer(&d, &p.order.body)["status"], "ok");
        assert!((d.position(s.address()) + 0.02).abs() < 1e-12);
        let pos = &state(&d)["assetPositions"][0]["position"];
        assert_eq!(
            (pos["szi"].as_str(), pos["entryPx"].as_str()),
            (Some("-0.02"), Some("99990"))
        );
        d.seed_position(s.address(), 1.5, 90_000.0);
        assert_eq!(state(&d)["assetPositions"][0]["position"]["szi"], "1.5");
        assert!(
            d.info(&json!({"type": "clearinghouseState"}), &snap())
                .is_err()
        );
        assert!(d.info(&json!({"type": "meta"}), &snap()).is_err());
        assert_eq!(
            d.info(&json!({"type": "allMids"}), &snap()).unwrap(),
            json!({"BTC": "100000"})
        );
    }

    #[test]
    fn order_status_by_client_order_id_and_oid() {
        let s = signer();
        let d = HyperliquidDesk::new(vec![s.address()]);
        let mut o = order("100100", Tif::Ioc);
        o.c = Some("0x000000000000000000000000000000AB".into());
        let p = presign(&s, o, NOW, Network::Mainnet).unwrap();
        let r = answer(&d, &p.order.body);
        let oid = r["response"]["data"]["statuses"][0]["filled"]["oid"]
            .as_u64()
            .unwrap();
        let user = format!("{:#x}", s.address());
        let q = d
            .info(&json!({"type": "orderStatus", "user": user, "oid": "0x000000000000000000000000000000ab"}), &snap())
            .unwrap();
        assert_eq!(q["status"], "order");
        assert_eq!(q["order"]["status"], "filled");
        assert_eq!(
            (
                q["order"]["order"]["sz"].clone(),
                q["order"]["order"]["origSz"].clone()
            ),
            (json!("0.0"), json!("0.01"))
        );
        let q = d
            .info(
                &json!({"type": "orderStatus", "user": user, "oid": oid}),
                &snap(),
            )
            .unwrap();
        assert_eq!(q["order"]["order"]["oid"], oid);
        let other = format!("{:#x}", Address::repeat_byte(7));
        let q = d
            .info(
                &json!({"type": "orderStatus", "user": other, "oid": oid}),
                &snap(),
            )
            .unwrap();
        assert_eq!(q["status"], "unknownOid");
        assert!(d.info(&json!({"type": "l2Book"}), &snap()).is_err());
        let (r, _) = d.ws_message(
            &json!({"method": "post", "id": 9, "request": {"type": "info", "payload": {"type": "orderStatus", "user": user, "oid": oid}}}).to_string(),
            &snap(),
            NOW,
        );
        assert_eq!(r["data"]["response"]["type"], "info");
        assert_eq!(r["data"]["response"]["payload"]["data"]["status"], "order");
    }

    #[test]
    fn nonce_window_and_the_hundred_highest() {
        let s = signer();
        let d = HyperliquidDesk::new(vec![s.address()]);
        for (nonce, ok) in [
            (NOW - NONCE_PAST_MS, false),
            (NOW + NONCE_FUTURE_MS, false),
            (NOW - NONCE_PAST_MS + 1, true),
        ] {
            let p = presign(&s, order("1", Tif::Gtc), nonce, Network::Mainnet).unwrap();
            assert_eq!(answer(&d, &p.noop.body)["status"] == "ok", ok, "{nonce}");
        }
        for k in 0..KEPT_NONCES as u64 {
            let p = presign(&s, order("1", Tif::Gtc), NOW + 1000 + k, Network::Mainnet).unwrap();
            assert_eq!(answer(&d, &p.noop.body)["status"], "ok");
        }
        // 100 kept, all above NOW + 999: a new nonce below them is refused, above is fine.
        let low = presign(&s, order("1", Tif::Gtc), NOW + 10, Network::Mainnet).unwrap();
        assert!(
            answer(&d, &low.noop.body)["response"]
                .as_str()
                .unwrap()
                .contains("lowest")
        );
        let high = presign(&s, order("1", Tif::Gtc), NOW + 5000, Network::Mainnet).unwrap();
        assert_eq!(answer(&d, &high.noop.body)["status"], "ok");
    }

    #[test]
    fn unknown_signers_bad_signatures_and_bodies() {
        let s = signer();
        let d = HyperliquidDesk::new(vec![]);
        let p = presign(&s, order("1", Tif::Gtc), NOW, Network::Mainnet).unwrap();
        let r = answer(&d, &p.noop.body);
        assert!(
            r["response"].as_str().unwrap().contains("does not exist"),
            "{r}"
        );
        let d = HyperliquidDesk::new(vec![s.address()]);
        // A tampered action recovers another address.
        let tampered = String::from_utf8(p.order.body.clone())
            .unwrap()
            .replace("\"1\"", "\"2\"");
        let r = answer(&d, tampered.as_bytes());
        assert!(
            r["response"].as_str().unwrap().contains("does not exist"),
            "{r}"
        );
        for junk in [
            "",
            "{}",
            r#"{"action":{"type":"noop"},"nonce":1}"#,
            r#"{"action":{"type":"noop"},"nonce":1,"signature":{"r":"12","s":"0x1","v":27}}"#,
        ] {
            assert!(
                d.exchange(junk.as_bytes(), &snap(), NOW).0.is_err(),
                "{junk}"
            );
        }
        let (r, _) = d.ws_message(r#"{"method":"ping"}"#, &snap(), NOW);
        assert_eq!(r["channel"], "pong");
        let (r, _) = d.ws_message(
            r#"{"method":"post","id":3,"request":{"type":"action","payload":{}}}"#,
            &snap(),
            NOW,
        );
        assert_eq!(r["data"]["id"], 3);
        assert_eq!(r["data"]["response"]["type"], "error");
    }
}
