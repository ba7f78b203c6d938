//! keel-sim's Binance USDⓈ-M futures order desk behind the WebSocket API endpoint
//! (`ws://ADDR/ws-fapi/v1`): `order.place` and `order.status`, signed and answered in Binance's
//! shapes (`{"id","status","result"|"error","rateLimits"}`).
//!
//! Checks what Binance checks, in its order and with its error codes:
//! 1. the request is a JSON object with a string `method` and an object `params` (−1000 and
//!    HTTP-like status 400 otherwise; an unknown method is −1000 too);
//! 2. `apiKey` is the configured account's key (−2015, status 401); no account configured
//!    refuses every signed request the same way;
//! 3. `signature` is the hex HMAC-SHA256, with the account's secret, of every other parameter
//!    sorted by name and joined `name=value&...` (−1022) — the query string is rebuilt here from
//!    the parsed JSON, independently of Keel's template;
//! 4. `timestamp` is at most 1 s ahead of the venue's clock and at most `recvWindow` (default
//!    5000 ms, at most 60000) behind it (−1021);
//! 5. `order.place`: symbol `BTCUSDT` (−1121), side, type MARKET or LIMIT, quantity a positive
//!    multiple of 0.001 (−1111), a LIMIT's price and timeInForce (−1102), and a
//!    `newClientOrderId` no order on this venue has used (−4116 "ClientOrderId is
//!    duplicated."), checked and recorded under one lock so that copies raced over two
//!    connections get exactly one order.
//!
//! Matching: a MARKET order fills in full at the simulated Binance best ask (buy) or bid (sell);
//! a marketable LIMIT likewise; otherwise a GTC LIMIT rests `NEW` (never fills later) and an
//! IOC/FOK one `EXPIRED`. `newOrderRespType=RESULT` answers the final order; the default (`ACK`)
//! answers `NEW` with nothing executed, as Binance acknowledges before matching, and the client
//! learns the outcome with `order.status` (by `origClientOrderId` or `orderId`; −2013 "Order
//! does not exist." otherwise).
//!
//! Owns the desk's orders behind one mutex taken once per request (requests are not on the
//! streaming path) and the account's secret (zeroized on drop, never printed). Never panics on
//! a request.

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::market::MarketSnapshot;

/// The symbol the desk trades.
pub const SYMBOL: &str = "BTCUSDT";
/// Quantity step, BTC.
pub const QTY_STEP: f64 = 0.001;
/// Default and largest `recvWindow`, ms.
const DEFAULT_RECV_WINDOW: u64 = 5_000;
const MAX_RECV_WINDOW: u64 = 60_000;
/// First order id handed out.
const FIRST_ORDER_ID: u64 = 8_389_765_000_000;

/// The account the desk accepts: an API key and its HMAC secret. `Debug` redacts both.
#[derive(Clone, PartialEq, Eq)]
pub struct BinanceAccount {
    /// The API key.
    pub api_key: String,
    /// The HMAC secret (zeroized on drop).
    pub secret: Zeroizing<Vec<u8>>,
}

impl BinanceAccount {
    /// An account from its key and secret.
    pub fn new(api_key: &str, secret: &[u8]) -> Self {
        Self {
            api_key: api_key.to_string(),
            secret: Zeroizing::new(secret.to_vec()),
        }
    }

    /// The key from environment variable `key_var`, the secret from `secret_var`.
    pub fn from_env(key_var: &str, secret_var: &str) -> Result<Self, String> {
        let key = std::env::var(key_var)
            .map_err(|_| format!("environment variable {key_var} is not set"))?;
        let secret = Zeroizing::new(
            std::env::var(secret_var)
                .map_err(|_| format!("environment variable {secret_var} is not set"))?,
        );
        if key.trim().is_empty() || secret.trim().is_empty() {
            return Err(format!(
                "environment variables {key_var}/{secret_var}: empty key or secret"
            ));
        }
        Ok(Self::new(key.trim(), secret.trim().as_bytes()))
    }
}

impl std::fmt::Debug for BinanceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BinanceAccount { api_key: <redacted>, secret: <redacted> }")
    }
}

/// The order APIs' settings: the Binance account and fault injection on order replies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderApiConfig {
    /// The Binance account `/ws-fapi/v1` accepts (none: every signed request gets −2015).
    pub binance_account: Option<BinanceAccount>,
    /// Replace every N-th order-API reply on a connection with a truncated, malformed one (the
    /// request itself is executed as usual): the client must count it and find the order out.
    pub garble_every: Option<u64>,
    /// Never answer every N-th order-API request on a connection (the request is executed; an
    /// HTTP connection closes without an answer).
    pub drop_every: Option<u64>,
    /// Hold every order-API reply this long (per-endpoint latency; the order endpoints
    /// otherwise use the connection-wide `--delay-ms`).
    pub reply_delay: Option<std::time::Duration>,
    /// The agent addresses Hyperliquid's `/exchange` accepts signatures from (none: every
    /// action is refused as from an unknown wallet).
    pub hyperliquid_agents: Vec<keel_engine::exec::evm::Address>,
}

/// What one request did, for the venue's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ApiOutcome {
    /// An order was accepted.
    pub accepted: bool,
    /// An order request was refused.
    pub rejected: bool,
    /// Trades it produced.
    pub fills: u64,
}

#[derive(Debug, Default)]
struct DeskState {
    next_order: u64,
    requests: u64,
    /// Every order by client order id.
    by_client_id: HashMap<String, Value>,
    /// Client order id by order id.
    by_order_id: HashMap<u64, String>,
    /// The account's BTCUSDT position (signed BTC) and its average entry price.
    position: f64,
    entry_price: f64,
}

/// The Binance order desk (shared by every `/ws-fapi/v1` connection).
#[derive(Debug)]
pub(crate) struct BinanceDesk {
    account: Option<BinanceAccount>,
    state: Mutex<DeskState>,
}

type Failure = (u16, i64, String);

fn fail(status: u16, code: i64, msg: impl Into<String>) -> Failure {
    (status, code, msg.into())
}

fn mandatory(name: &str) -> Failure {
    fail(
        400,
        -1102,
        format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
    )
}

/// A parameter's text as it is signed: strings raw, numbers and booleans as JSON prints them.
fn param_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl BinanceDesk {
    pub(crate) fn new(account: Option<BinanceAccount>) -> Self {
        Self {
            account,
            state: Mutex::new(DeskState {
                next_order: FIRST_ORDER_ID,
                ..DeskState::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DeskState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers one WebSocket API request (text) at venue time `now_ms`.
    pub(crate) fn handle(
        &self,
        text: &str,
        snap: &MarketSnapshot,
        now_ms: u64,
    ) -> (Value, ApiOutcome) {
        let mut outcome = ApiOutcome::default();
        let req: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let r = envelope(
                    Value::Null,
                    Err(fail(400, -1000, format!("Invalid JSON: {e}"))),
                    1,
                );
                return (r, outcome);
            }
        };
        let id = req.get("id").cloned().unwrap_or(Value::Null);
        let result = self.dispatch(&req, snap, now_ms, &mut outcome);
        if result.is_err() && req.get("method").and_then(Value::as_str) == Some("order.place") {
            outcome.rejected = true;
        }
        let count = {
            let mut st = self.lock();
            st.requests += 1;
            st.requests
        };
        (envelope(id, result, count), outcome)
    }

    fn dispatch(
        &self,
        req: &Value,
        snap: &MarketSnapshot,
        now_ms: u64,
        outcome: &mut ApiOutcome,
    ) -> Result<Value, Failure> {
        let Some(method) = req.get("method").and_then(Value::as_str) else {
            return Err(fail(
                400,
                -1000,
                "Invalid request: expected a string \"method\"",
            ));
        };
        let Some(params) = req.get("params").and_then(Value::as_object) else {
            return Err(fail(
                400,
                -1000,
                "Invalid request: expected an object \"params\"",
            ));
        };
        if !matches!(method, "order.place" | "order.status") {
            return Err(fail(
                400,
                -1000,
                format!("Unknown method {method:?}: keel-sim serves order.place and order.status"),
            ));
        }
        self.authenticate(params, now_ms)?;
        let text = |name: &str| params.get(name).and_then(param_text);
        if method == "order.status" {
            let st = self.lock();
            let cid = match (text("origClientOrderId"), text("orderId")) {
                (Some(c), _) => Some(c),
                (None, Some(o)) => o
                    .parse::<u64>()
                    .ok()
                    .and_then(|o| st.by_order_id.get(&o).cloned()),
                (None, None) => return Err(mandatory("origClientOrderId")),
            };
            return cid
                .and_then(|c| st.by_client_id.get(&c).cloned())
                .ok_or_else(|| fail(400, -2013, "Order does not exist."));
        }
        self.place(params, snap, now_ms, outcome)
    }

    /// `GET /fapi/v2/positionRisk` (REST, signed): `query` is the request's query string
    /// (`timestamp`, optional `recvWindow` and `symbol`, then `signature`), `api_key` the
    /// `X-MBX-APIKEY` header. The account's BTCUSDT position in Binance's shape.
    pub(crate) fn position_risk(
        &self,
        query: &str,
        api_key: Option<&str>,
        snap: &MarketSnapshot,
        now_ms: u64,
    ) -> Result<Value, Failure> {
        let mut params = serde_json::Map::new();
        for kv in query.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            params.insert(k.to_string(), Value::String(v.to_string()));
        }
        if let Some(k) = api_key {
            params.insert("apiKey".into(), Value::String(k.to_string()));
        }
        // The signature covers the query as sent (REST), not the sorted parameters.
        let sig = params
            .get("signature")
            .and_then(Value::as_str)
            .map(str::to_string);
        let signed_part = query.rsplit_once("&signature=").map_or(query, |(q, _)| q);
        let Some(account) = &self.account else {
            return Err(fail(
                401,
                -2015,
                "Invalid API-key, IP, or permissions for action.",
            ));
        };
        if api_key != Some(account.api_key.as_str()) {
            return Err(fail(
                401,
                -2015,
                "Invalid API-key, IP, or permissions for action.",
            ));
        }
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&account.secret).expect("HMAC takes keys of any length");
        mac.update(signed_part.as_bytes());
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if sig.as_deref() != Some(want.as_str()) {
            return Err(fail(400, -1022, "Signature for this request is not valid."));
        }
        let ts: u64 = params
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| mandatory("timestamp"))?;
        let window: u64 = params
            .get("recvWindow")
            .and_then(Value::as_str)
            .and_then(|t| t.parse().ok())
            .unwrap_or(DEFAULT_RECV_WINDOW);
        if ts > now_ms + 1_000 || now_ms.saturating_sub(ts) > window {
            return Err(fail(
                400,
                -1021,
                "Timestamp for this request is outside of the recvWindow.",
            ));
        }
        let st = self.lock();
        let q = &snap.binance;
        let mark = if q.bid > 0.0 && q.ask >= q.bid {
            0.5 * (q.bid + q.ask)
        } else {
            0.0
        };
        Ok(json!([{
            "symbol": SYMBOL,
            "positionAmt": format!("{:.3}", st.position),
            "entryPrice": format!("{:.2}", st.entry_price),
            "markPrice": format!("{mark:.2}"),
            "unRealizedProfit": format!("{:.8}", st.position * (mark - st.entry_price)),
            "positionSide": "BOTH",
            "marginType": "cross",
            "leverage": "20",
            "updateTime": now_ms,
        }]))
    }

    /// Steps 2-4: key, signature, timestamp.
    fn authenticate(
        &self,
        params: &serde_json::Map<String, Value>,
        now_ms: u64,
    ) -> Result<(), Failure> {
        let bad_key = || {
            fail(
                401,
                -2015,
                "Invalid API-key, IP, or permissions for action.",
            )
        };
        let Some(account) = &self.account else {
            return Err(bad_key());
        };
        if params.get("apiKey").and_then(Value::as_str) != Some(account.api_key.as_str()) {
            return Err(bad_key());
        }
        let Some(sig) = params.get("signature").and_then(Value::as_str) else {
            return Err(mandatory("signature"));
        };
        let mut names: Vec<&String> = params.keys().filter(|k| *k != "signature").collect();
        names.sort();
        let mut query = String::new();
        for (i, k) in names.iter().enumerate() {
            let Some(v) = params.get(*k).and_then(param_text) else {
                return Err(fail(
                    400,
                    -1100,
                    format!("Illegal characters found in parameter '{k}'."),
                ));
            };
            if i > 0 {
                query.push('&');
            }
            query.push_str(k);
            query.push('=');
            query.push_str(&v);
        }
        let mut raw = [0u8; 32];
        let hex_ok = sig.len() == 64
            && sig
                .as_bytes()
                .chunks(2)
                .zip(raw.iter_mut())
                .all(|(pair, out)| {
                    std::str::from_utf8(pair)
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .map(|b| *out = b)
                        .is_some()
                });
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&account.secret).expect("HMAC takes keys of any length");
        mac.update(query.as_bytes());
        if !hex_ok || mac.verify_slice(&raw).is_err() {
            return Err(fail(400, -1022, "Signature for this request is not valid."));
        }
        let recv_window = match params.get("recvWindow") {
            None => DEFAULT_RECV_WINDOW,
            Some(v) => match param_text(v).and_then(|t| t.parse::<u64>().ok()) {
                Some(w) if w <= MAX_RECV_WINDOW => w,
                _ => return Err(mandatory("recvWindow")),
            },
        };
        let Some(ts) = params
            .get("timestamp")
            .and_then(param_text)
            .and_then(|t| t.parse::<u64>().ok())
        else {
            return Err(mandatory("timestamp"));
        };
        if ts > now_ms + 1_000 {
            return Err(fail(
                400,
                -1021,
                "Timestamp for this request was 1000ms ahead of the server's time.",
            ));
        }
        if now_ms.saturating_sub(ts) > recv_window {
            return Err(fail(
                400,
                -1021,
                "Timestamp for this request is outside of the recvWindow.",
            ));
        }
        Ok(())
    }

    /// Step 5 and matching.
    fn place(
        &self,
        params: &serde_json::Map<String, Value>,
        snap: &MarketSnapshot,
        now_ms: u64,
        outcome: &mut ApiOutcome,
    ) -> Result<Value, Failure> {
        let text = |name: &str| params.get(name).and_then(param_text);
        if text("symbol").as_deref() != Some(SYMBOL) {
            return Err(fail(400, -1121, "Invalid symbol."));
        }
        let buy = match text("side").as_deref() {
            Some("BUY") => true,
            Some("SELL") => false,
            _ => return Err(mandatory("side")),
        };
        let limit = match text("type").as_deref() {
            Some("MARKET") => false,
            Some("LIMIT") => true,
            Some(_) => return Err(fail(400, -1116, "Invalid orderType.")),
            None => return Err(mandatory("type")),
        };
        let qty_text = text("quantity").ok_or_else(|| mandatory("quantity"))?;
        let qty: f64 = qty_text.parse().map_err(|_| mandatory("quantity"))?;
        let lots = qty / QTY_STEP;
        if !(qty.is_finite() && qty > 0.0) || (lots - lots.round()).abs() > 1e-6 {
            return Err(fail(
                400,
                -1111,
                "Precision is over the maximum defined for this asset.",
            ));
        }
        let (price, tif) = if limit {
            let p: f64 = text("price")
                .and_then(|p| p.parse().ok())
                .filter(|p: &f64| p.is_finite() && *p > 0.0)
                .ok_or_else(|| mandatory("price"))?;
            let tif = match text("timeInForce").as_deref() {
                Some(t @ ("GTC" | "IOC" | "FOK" | "GTX")) => t.to_string(),
                _ => return Err(mandatory("timeInForce")),
            };
            (p, tif)
        } else {
            (0.0, "GTC".to_string())
        };
        let result_resp = match text("newOrderRespType").as_deref() {
            None | Some("ACK") => false,
            Some("RESULT") => true,
            Some(_) => return Err(mandatory("newOrderRespType")),
        };
        let q = &snap.binance;
        let touch = if buy { q.ask } else { q.bid };
        let marketable =
            touch > 0.0 && (!limit || (buy && price >= touch) || (!buy && price <= touch));
        let (status, executed, avg) = if marketable {
            ("FILLED", qty, touch)
        } else if limit && tif == "GTC" {
            ("NEW", 0.0, 0.0)
        } else {
            ("EXPIRED", 0.0, 0.0)
        };
        let mut st = self.lock();
        let order_id = st.next_order;
        let cid = match text("newClientOrderId") {
            Some(c) => {
                let ok = !c.is_empty()
                    && c.len() <= 36
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".:/_-".contains(&b));
                if !ok {
                    return Err(fail(400, -4015, "Client order id is not valid."));
                }
                if st.by_client_id.contains_key(&c) {
                    return Err(fail(400, -4116, "ClientOrderId is duplicated."));
                }
                c
            }
            None => format!("keelsim{order_id}"),
        };
        st.next_order += 1;
        let order = json!({
            "orderId": order_id,
            "symbol": SYMBOL,
            "status": status,
            "clientOrderId": cid,
            "price": format!("{price:.1}"),
            "avgPrice": format!("{avg:.2}"),
            "origQty": format!("{qty:.3}"),
            "executedQty": format!("{executed:.3}"),
            "cumQuote": format!("{:.5}", executed * avg),
            "timeInForce": tif,
            "type": if limit { "LIMIT" } else { "MARKET" },
            "reduceOnly": false,
            "closePosition": false,
            "side": if buy { "BUY" } else { "SELL" },
            "positionSide": "BOTH",
            "stopPrice": "0.0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": false,
            "origType": if limit { "LIMIT" } else { "MARKET" },
            "priceMatch": "NONE",
            "selfTradePreventionMode": "NONE",
            "goodTillDate": 0,
            "updateTime": now_ms,
        });
        st.by_client_id.insert(cid.clone(), order.clone());
        st.by_order_id.insert(order_id, cid);
        if executed > 0.0 {
            let signed = if buy { executed } else { -executed };
            let new = st.position + signed;
            if st.position == 0.0 || st.position.signum() == signed.signum() {
                st.entry_price = (st.entry_price * st.position.abs() + avg * executed)
                    / (st.position.abs() + executed);
            } else if new != 0.0 && new.signum() != st.position.signum() {
                st.entry_price = avg;
            }
            st.position = if new.abs() < 1e-12 { 0.0 } else { new };
            if st.position == 0.0 {
                st.entry_price = 0.0;
            }
        }
        drop(st);
        outcome.accepted = true;
        outcome.fills = u64::from(executed > 0.0);
        if result_resp {
            Ok(order)
        } else {
            let mut ack = order;
            ack["status"] = json!("NEW");
            ack["executedQty"] = json!("0.000");
            ack["avgPrice"] = json!("0.00");
            ack["cumQuote"] = json!("0.00000");
            Ok(ack)
        }
    }
}

/// Binance's reply envelope.
fn envelope(id: Value, result: Result<Value, Failure>, count: u64) -> Value {
    let limits = json!([{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
        "intervalNum": 1, "limit": 2400, "count": count}]);
    match result {
        Ok(r) => json!({"id": id, "status": 200, "result": r, "rateLimits": limits}),
        Err((status, code, msg)) => {
            json!({"id": id, "status": status, "error": {"code": code, "msg": msg}, "rateLimits": limits})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::market::LinearQuote;

    const SECRET: &[u8] = b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

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

    /// Signs like a client would (the documented rule, written independently of the desk).
    fn signed(method: &str, mut params: Value) -> String {
        let obj = params.as_object().unwrap();
        let mut names: Vec<&String> = obj.keys().collect();
        names.sort();
        let q: Vec<String> = names
            .iter()
            .map(|k| format!("{k}={}", param_text(&obj[*k]).unwrap()))
            .collect();
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(q.join("&").as_bytes());
        let sig: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        params["signature"] = json!(sig);
        json!({"id": "r1", "method": method, "params": params}).to_string()
    }

    fn desk() -> BinanceDesk {
        BinanceDesk::new(Some(BinanceAccount::new("key1", SECRET)))
    }

    #[test]
    fn the_fixture_request_verifies_with_the_documented_secret() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/venues/binance/ws_order_place.json"
        );
        let fx: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let key = fx["params"]["apiKey"].as_str().unwrap();
        let d = BinanceDesk::new(Some(BinanceAccount::new(key, SECRET)));
        let ts = fx["params"]["timestamp"].as_u64().unwrap();
        let (r, _) = d.handle(&fx.to_string(), &snap(), ts + 50);
        // Signature and timestamp pass; the 0.01 quantity is fine; a resting GTC limit.
        assert_eq!(r["status"], 200, "{r}");
        let mut bad = fx.clone();
        bad["params"]["price"] = json!("52000.01");
        let (r, _) = d.handle(&bad.to_string(), &snap(), ts + 50);
        assert_eq!(r["error"]["code"], -1022, "{r}");
        let (r, _) = d.handle(&fx.to_string(), &snap(), ts + 101);
        assert_eq!(r["error"]["code"], -1021, "{r}");
    }

    #[test]
    fn duplicates_keys_timestamps_and_fills() {
        let d = desk();
        let now = 1_700_000_000_000;
        let p = json!({"apiKey": "key1", "symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
            "quantity": "0.010", "newClientOrderId": "abc-1", "newOrderRespType": "RESULT",
            "timestamp": now});
        let (r, o) = d.handle(&signed("order.place", p.clone()), &snap(), now);
        assert_eq!(r["result"]["status"], "FILLED", "{r}");
        assert_eq!(r["result"]["avgPrice"], "100010.00");
        assert_eq!((o.accepted, o.fills), (true, 1));
        let (r, o) = d.handle(&signed("order.place", p.clone()), &snap(), now);
        assert_eq!(r["error"]["code"], -4116, "{r}");
        assert!(o.rejected);
        let mut other = p.clone();
        other["apiKey"] = json!("key2");
        let (r, _) = d.handle(&signed("order.place", other), &snap(), now);
        assert_eq!(
            (r["status"].clone(), r["error"]["code"].clone()),
            (json!(401), json!(-2015))
        );
        let mut stale = p.clone();
        stale["newClientOrderId"] = json!("abc-2");
        stale["timestamp"] = json!(now - 6_000);
        let (r, _) = d.handle(&signed("order.place", stale), &snap(), now);
        assert_eq!(r["error"]["code"], -1021);
        let mut lots = p.clone();
        lots["newClientOrderId"] = json!("abc-3");
        lots["quantity"] = json!("0.0105");
        let (r, _) = d.handle(&signed("order.place", lots), &snap(), now);
        assert_eq!(r["error"]["code"], -1111);
        let q = json!({"apiKey": "key1", "symbol": "BTCUSDT", "origClientOrderId": "abc-1",
            "timestamp": now});
        let (r, _) = d.handle(&signed("order.status", q), &snap(), now);
        assert_eq!(r["result"]["executedQty"], "0.010", "{r}");
        let q = json!({"apiKey": "key1", "symbol": "BTCUSDT", "origClientOrderId": "nope",
            "timestamp": now});
        let (r, _) = d.handle(&signed("order.status", q), &snap(), now);
        assert_eq!(r["error"]["code"], -2013);
        for junk in [
            "",
            "{",
            "[]",
            r#"{"method":"order.place"}"#,
            r#"{"method":"x","params":{}}"#,
        ] {
            let (r, _) = d.handle(junk, &snap(), now);
            assert_eq!(r["status"], 400, "{junk}: {r}");
        }
        let none = BinanceDesk::new(None);
        let (r, _) = none.handle(&signed("order.place", p), &snap(), now);
        assert_eq!(r["error"]["code"], -2015);
    }

    #[test]
    fn account_debug_is_redacted() {
        let a = BinanceAccount::new("key1", SECRET);
        let d = format!("{a:?}");
        assert!(!d.contains("key1") && !d.contains("Nhq"));
    }
}
