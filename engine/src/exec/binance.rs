//! Binance USDⓈ-M futures orders over the WebSocket API (`order.place`, `order.status`),
//! HMAC-SHA256 signed, with `newClientOrderId` as the idempotency key.
//!
//! Owns: the API credentials ([`BinanceCredentials`], secret zeroized on drop, never printed),
//! the keyed HMAC state ([`HmacSigner`]), the request templates ([`RequestTemplate`]: every
//! constant parameter rendered at start-up, sorted by name as the WebSocket API signs them, so
//! that only the client order id, quantity, price, timestamp and signature are written per
//! order) and the order session ([`BinanceOrders`]: in-flight table, replies into [`Fill`]s,
//! orders whose fate is unknown asked for with `order.status` by client order id after a
//! timeout or a reconnection).
//!
//! Never allocates per order (buffers reserved at start-up, numbers formatted by hand, the HMAC
//! streamed over the template's pieces without materialising the query string), never takes a
//! lock, never panics on a reply (malformed or unmatched replies are counted), never drops a
//! fill. A copy of an order raced over a second connection carries the same
//! `newClientOrderId`: the venue fills one and refuses the other with
//! [`DUPLICATE_CLIENT_ORDER_ID`] (−4116), which [`copy_outcome`] maps to
//! [`CopyOutcome::Duplicate`]. An `order.status` answer speaks for the client order id, not for
//! one copy: a racing caller takes the position from the race's resolution
//! ([`super::race::RaceBook`]: the first acceptance wins, later ones are `late_accepts`), never
//! from every copy's [`Fill`].

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use keel_feeds::clock;
use keel_feeds::event::{DisconnectReason, MarketEvent, Side, Venue};
use keel_feeds::net::{Outbox, Session};
use keel_feeds::venues::json::{JsonError, Scanner};

use super::race::CopyOutcome;
use super::{Fill, FillStatus, HedgeIntent};
use crate::pipeline::ring::{Consumer, Producer};

/// Binance's "ClientOrderId is duplicated." (USDⓈ-M futures error code).
pub const DUPLICATE_CLIENT_ORDER_ID: i32 = -4116;
/// Binance's "Order does not exist." (an `order.status` for an order the venue never got).
pub const ORDER_DOES_NOT_EXIST: i32 = -2013;
/// Binance's "Timestamp for this request is outside of the recvWindow."
pub const TIMESTAMP_OUTSIDE_RECV_WINDOW: i32 = -1021;
/// Binance's "Signature for this request is not valid."
pub const INVALID_SIGNATURE: i32 = -1022;
/// Binance's "Invalid API-key, IP, or permissions for action."
pub const INVALID_API_KEY: i32 = -2015;
/// Orders in flight at once.
pub const MAX_IN_FLIGHT: usize = 64;
/// Longest `newClientOrderId` Binance accepts.
pub const MAX_CLIENT_ORDER_ID: usize = 36;

type HmacSha256 = Hmac<Sha256>;

/// What can go wrong setting Binance up. Messages name the input; none contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum BinanceError {
    /// An environment variable that should hold a credential is not set.
    #[error("environment variable {var} is not set (or is not valid UTF-8)")]
    EnvMissing {
        /// The variable's name.
        var: String,
    },
    /// A secret file could not be read.
    #[error("secret file {path}: {reason}")]
    SecretFile {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// A credential is empty or holds characters that cannot go into a request unescaped.
    #[error("{what} from {source_name} is {reason}")]
    Credential {
        /// "API key" or "API secret".
        what: &'static str,
        /// Where it came from.
        source_name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A template parameter cannot be rendered.
    #[error("request template parameter {name:?}: {reason}")]
    Template {
        /// The parameter.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// An API key and its HMAC secret. `Debug` redacts both; the secret is zeroized on drop.
pub struct BinanceCredentials {
    api_key: String,
    secret: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for BinanceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BinanceCredentials { api_key: <redacted>, secret: <redacted> }")
    }
}

fn check_credential(
    what: &'static str,
    text: &[u8],
    source_name: &str,
) -> Result<(), BinanceError> {
    let bad = |reason| BinanceError::Credential {
        what,
        source_name: source_name.to_string(),
        reason,
    };
    if text.is_empty() {
        return Err(bad("empty"));
    }
    if !text.iter().all(u8::is_ascii_alphanumeric) {
        return Err(bad("not ASCII letters and digits"));
    }
    Ok(())
}

impl BinanceCredentials {
    /// Credentials from their values; `source_name` says where they came from, for errors.
    pub fn new(api_key: &str, secret: &[u8], source_name: &str) -> Result<Self, BinanceError> {
        check_credential("API key", api_key.as_bytes(), source_name)?;
        check_credential("API secret", secret, source_name)?;
        Ok(Self {
            api_key: api_key.to_string(),
            secret: Zeroizing::new(secret.to_vec()),
        })
    }

    /// The key from environment variable `key_var` and the secret from `secret_var`
    /// (surrounding whitespace ignored).
    pub fn from_env(key_var: &str, secret_var: &str) -> Result<Self, BinanceError> {
        let key = std::env::var(key_var).map_err(|_| BinanceError::EnvMissing {
            var: key_var.to_string(),
        })?;
        let secret =
            Zeroizing::new(
                std::env::var(secret_var).map_err(|_| BinanceError::EnvMissing {
                    var: secret_var.to_string(),
                })?,
            );
        Self::new(
            key.trim(),
            secret.trim().as_bytes(),
            &format!("environment variables {key_var}/{secret_var}"),
        )
    }

    /// The key from environment variable `key_var` and the secret from a file (one trailing
    /// line break and surrounding whitespace ignored).
    pub fn from_env_and_file(key_var: &str, secret_file: &Path) -> Result<Self, BinanceError> {
        let key = std::env::var(key_var).map_err(|_| BinanceError::EnvMissing {
            var: key_var.to_string(),
        })?;
        let bytes =
            Zeroizing::new(
                std::fs::read(secret_file).map_err(|e| BinanceError::SecretFile {
                    path: secret_file.display().to_string(),
                    reason: e.to_string(),
                })?,
            );
        Self::new(
            key.trim(),
            bytes.trim_ascii(),
            &format!("secret file {}", secret_file.display()),
        )
    }

    /// The API key (not a secret: it travels in every request).
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// A signer keyed with the secret.
    pub fn signer(&self) -> HmacSigner {
        HmacSigner::new(&self.secret)
    }
}

/// HMAC-SHA256 keyed once at start-up; each signature clones the keyed state (a copy on the
/// stack, no allocation).
#[derive(Clone)]
pub struct HmacSigner {
    keyed: HmacSha256,
}

impl fmt::Debug for HmacSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacSigner { key: <redacted> }")
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl HmacSigner {
    /// A signer for `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            keyed: HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length"),
        }
    }

    /// Lower-case hex HMAC-SHA256 of the concatenation of `parts`.
    pub fn sign_parts(&self, parts: &[&[u8]]) -> [u8; 64] {
        let mut mac = self.keyed.clone();
        for p in parts {
            mac.update(p);
        }
        hex64(&mac.finalize().into_bytes().into())
    }

    /// Lower-case hex HMAC-SHA256 of `payload` (Binance's `signature`).
    pub fn sign(&self, payload: &[u8]) -> [u8; 64] {
        self.sign_parts(&[payload])
    }

    /// Whether `hex_sig` is the signature of `payload` (constant time).
    pub fn verify(&self, payload: &[u8], hex_sig: &str) -> bool {
        let mut raw = [0u8; 32];
        if hex_sig.len() != 64 || !hex_decode(hex_sig.as_bytes(), &mut raw) {
            return false;
        }
        let mut mac = self.keyed.clone();
        mac.update(payload);
        mac.verify_slice(&raw).is_ok()
    }
}

fn hex64(bytes: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    out
}

fn hex_decode(text: &[u8], out: &mut [u8]) -> bool {
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    if text.len() != 2 * out.len() {
        return false;
    }
    for (i, o) in out.iter_mut().enumerate() {
        match (nib(text[2 * i]), nib(text[2 * i + 1])) {
            (Some(h), Some(l)) => *o = h << 4 | l,
            _ => return false,
        }
    }
    true
}

/// A value a template leaves open, written per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The client order id (also the request's `id`); a JSON string.
    ClientOrderId,
    /// Quantity, fixed decimals; a JSON string.
    Quantity,
    /// Limit price, fixed decimals; a JSON string.
    Price,
    /// Milliseconds since the Unix epoch; a JSON number.
    Timestamp,
}

/// A template parameter: its name and a fixed or open value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Param {
    /// A constant string value (JSON string).
    Text(&'static str, String),
    /// A constant integer value (JSON number).
    Int(&'static str, u64),
    /// A value written per request.
    Open(&'static str, Slot),
}

impl Param {
    fn name(&self) -> &'static str {
        match self {
            Param::Text(n, _) | Param::Int(n, _) | Param::Open(n, _) => n,
        }
    }
}

/// A piece of a rendered template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Piece {
    /// Bytes `start..end` of the template's literal text.
    Lit(u32, u32),
    /// An open value.
    Slot(Slot),
}

/// The values of one request.
#[derive(Clone, Copy, Debug)]
pub struct Fields<'a> {
    /// `newClientOrderId` (and the request id).
    pub client_order_id: &'a [u8],
    /// Quantity in the symbol's unit (rounded to the template's decimals).
    pub quantity: f64,
    /// Limit price (ignored by templates without a price).
    pub price: f64,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

/// Why a request could not be filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    /// A quantity or price that is not finite, not positive, rounds to zero or is too large.
    #[error("{0} is not a positive finite number that fits the template's decimals")]
    Number(&'static str),
    /// A client order id longer than Binance's 36 characters or with bytes it refuses.
    #[error("client order id is empty, longer than 36 bytes or not [.A-Z:/a-z0-9_-]")]
    ClientOrderId,
}

/// A WebSocket API request rendered once at start-up: `{"id":"<cid>","method":M,"params":{...
/// sorted by name ...,"signature":"<hex>"}}`, and the query string the signature covers
/// (`name=value&...`, same order). Filling writes the open slots and the signature.
#[derive(Clone, Debug)]
pub struct RequestTemplate {
    text: String,
    json: Vec<Piece>,
    query: Vec<Piece>,
    qty_decimals: u8,
    price_decimals: u8,
}

impl RequestTemplate {
    /// A template for `method` with `params` (sorted here by name), quantities with
    /// `qty_decimals` decimals and prices with `price_decimals`.
    pub fn new(
        method: &str,
        mut params: Vec<Param>,
        qty_decimals: u8,
        price_decimals: u8,
    ) -> Result<Self, BinanceError> {
        if qty_decimals > 12 || price_decimals > 12 {
            return Err(BinanceError::Template {
                name: "decimals".into(),
                reason: "at most 12".into(),
            });
        }
        params.sort_by_key(Param::name);
        for w in params.windows(2) {
            if w[0].name() == w[1].name() {
                return Err(BinanceError::Template {
                    name: w[0].name().into(),
                    reason: "given twice".into(),
                });
            }
        }
        let mut t = Builder::default();
        t.json_lit(r#"{"id":""#);
        t.json.push(Piece::Slot(Slot::ClientOrderId));
        t.json_lit(r#"","method":""#);
        t.json_lit(method);
        t.json_lit(r#"","params":{"#);
        for (i, p) in params.iter().enumerate() {
            let name = p.name();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(BinanceError::Template {
                    name: name.into(),
                    reason: "names are ASCII letters and digits".into(),
                });
            }
            if i > 0 {
                t.query_lit("&");
            }
            t.query_lit(name);
            t.query_lit("=");
            t.json_lit("\"");
            t.json_lit(name);
            t.json_lit("\":");
            match p {
                Param::Text(_, v) => {
                    if v.bytes()
                        .any(|b| b == b'"' || b == b'\\' || b == b'&' || b < 0x20)
                    {
                        return Err(BinanceError::Template {
                            name: name.into(),
                            reason: "value holds a quote, backslash, & or control byte".into(),
                        });
                    }
                    t.query_lit(v);
                    t.json_lit("\"");
                    t.json_lit(v);
                    t.json_lit("\"");
                }
                Param::Int(_, v) => {
                    t.query_lit(&v.to_string());
                    t.json_lit(&v.to_string());
                }
                Param::Open(_, slot) => {
                    let quoted = *slot != Slot::Timestamp;
                    t.query.push(Piece::Slot(*slot));
                    if quoted {
                        t.json_lit("\"");
                    }
                    t.json.push(Piece::Slot(*slot));
                    if quoted {
                        t.json_lit("\"");
                    }
                }
            }
            t.json_lit(",");
        }
        t.json_lit(r#""signature":""#);
        Ok(Self {
            text: t.text,
            json: t.json,
            query: t.query,
            qty_decimals,
            price_decimals,
        })
    }

    /// A MARKET `order.place` for `symbol` on `side` (`newOrderRespType=RESULT`: the reply
    /// carries the final status, executed quantity and average price).
    pub fn market_order(
        api_key: &str,
        symbol: &str,
        side: Side,
        recv_window_ms: u64,
        qty_decimals: u8,
    ) -> Result<Self, BinanceError> {
        let side = match side {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        };
        Self::new(
            "order.place",
            vec![
                Param::Text("apiKey", api_key.into()),
                Param::Open("newClientOrderId", Slot::ClientOrderId),
                Param::Text("newOrderRespType", "RESULT".into()),
                Param::Open("quantity", Slot::Quantity),
                Param::Int("recvWindow", recv_window_ms),
                Param::Text("side", side.into()),
                Param::Text("symbol", symbol.into()),
                Param::Open("timestamp", Slot::Timestamp),
                Param::Text("type", "MARKET".into()),
            ],
            qty_decimals,
            0,
        )
    }

    /// An `order.status` by `origClientOrderId` (the query for an order whose reply was lost).
    pub fn order_status(
        api_key: &str,
        symbol: &str,
        recv_window_ms: u64,
    ) -> Result<Self, BinanceError> {
        Self::new(
            "order.status",
            vec![
                Param::Text("apiKey", api_key.into()),
                Param::Open("origClientOrderId", Slot::ClientOrderId),
                Param::Int("recvWindow", recv_window_ms),
                Param::Text("symbol", symbol.into()),
                Param::Open("timestamp", Slot::Timestamp),
            ],
            0,
            0,
        )
    }

    /// Writes the request for `fields` into `out` (cleared first), signed with `signer`.
    /// Never allocates while `out` has room (reserve [`RequestTemplate::max_len`] once).
    pub fn fill(
        &self,
        fields: &Fields<'_>,
        signer: &HmacSigner,
        out: &mut Vec<u8>,
    ) -> Result<(), FillError> {
        let cid = fields.client_order_id;
        if cid.is_empty()
            || cid.len() > MAX_CLIENT_ORDER_ID
            || !cid.iter().all(|&b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'/' | b'_' | b'-')
            })
        {
            return Err(FillError::ClientOrderId);
        }
        let mut qty = NumText::default();
        let mut price = NumText::default();
        let mut ts = NumText::default();
        if self.has(Slot::Quantity) {
            qty.fixed(fields.quantity, self.qty_decimals)
                .ok_or(FillError::Number("quantity"))?;
        }
        if self.has(Slot::Price) {
            price
                .fixed(fields.price, self.price_decimals)
                .ok_or(FillError::Number("price"))?;
        }
        ts.int(fields.timestamp_ms);
        let slot_text = |s: Slot| -> &[u8] {
            match s {
                Slot::ClientOrderId => cid,
                Slot::Quantity => qty.as_bytes(),
                Slot::Price => price.as_bytes(),
                Slot::Timestamp => ts.as_bytes(),
            }
        };
        // The signature streams over the query pieces: no query string is materialised.
        let mut mac = signer.keyed.clone();
        for p in &self.query {
            mac.update(self.piece(*p, &slot_text));
        }
        let sig = hex64(&mac.finalize().into_bytes().into());
        out.clear();
        for p in &self.json {
            out.extend_from_slice(self.piece(*p, &slot_text));
        }
        out.extend_from_slice(&sig);
        out.extend_from_slice(b"\"}}");
        Ok(())
    }

    /// The signed query string for `fields` (what the signature covers), for tests and the
    /// venue side. Allocates.
    pub fn query_string(&self, fields: &Fields<'_>) -> Result<String, FillError> {
        let mut qty = NumText::default();
        let mut price = NumText::default();
        let mut ts = NumText::default();
        if self.has(Slot::Quantity) {
            qty.fixed(fields.quantity, self.qty_decimals)
                .ok_or(FillError::Number("quantity"))?;
        }
        if self.has(Slot::Price) {
            price
                .fixed(fields.price, self.price_decimals)
                .ok_or(FillError::Number("price"))?;
        }
        ts.int(fields.timestamp_ms);
        let slot_text = |s: Slot| -> &[u8] {
            match s {
                Slot::ClientOrderId => fields.client_order_id,
                Slot::Quantity => qty.as_bytes(),
                Slot::Price => price.as_bytes(),
                Slot::Timestamp => ts.as_bytes(),
            }
        };
        let mut q = Vec::new();
        for p in &self.query {
            q.extend_from_slice(self.piece(*p, &slot_text));
        }
        Ok(String::from_utf8_lossy(&q).into_owned())
    }

    /// Longest request this template renders (for the buffer reserved at start-up).
    pub fn max_len(&self) -> usize {
        let open = self
            .json
            .iter()
            .filter(|p| matches!(p, Piece::Slot(_)))
            .count();
        self.text.len() + open * 40 + 64 + 3
    }

    fn has(&self, s: Slot) -> bool {
        self.query.contains(&Piece::Slot(s))
    }

    fn piece<'s>(&'s self, p: Piece, slot: &impl Fn(Slot) -> &'s [u8]) -> &'s [u8] {
        match p {
            Piece::Lit(a, b) => &self.text.as_bytes()[a as usize..b as usize],
            Piece::Slot(s) => slot(s),
        }
    }
}

#[derive(Default)]
struct Builder {
    text: String,
    json: Vec<Piece>,
    query: Vec<Piece>,
}

impl Builder {
    fn lit(text: &mut String, pieces: &mut Vec<Piece>, s: &str) {
        let start = text.len() as u32;
        text.push_str(s);
        let end = text.len() as u32;
        // Adjacent literals merge into one piece.
        if let Some(Piece::Lit(_, e)) = pieces.last_mut()
            && *e == start
        {
            *e = end;
            return;
        }
        pieces.push(Piece::Lit(start, end));
    }
    fn json_lit(&mut self, s: &str) {
        Self::lit(&mut self.text, &mut self.json, s);
    }
    fn query_lit(&mut self, s: &str) {
        Self::lit(&mut self.text, &mut self.query, s);
    }
}

/// A number's decimal text on the stack.
#[derive(Clone, Copy)]
struct NumText {
    buf: [u8; 40],
    len: usize,
}

impl Default for NumText {
    fn default() -> Self {
        Self {
            buf: [0; 40],
            len: 0,
        }
    }
}

impl NumText {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn int(&mut self, v: u64) {
        let mut digits = [0u8; 20];
        let mut n = v;
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let d = &digits[i..];
        self.buf[self.len..self.len + d.len()].copy_from_slice(d);
        self.len += d.len();
    }

    /// `x` rounded to `decimals` places, always with that many decimals ("0.010", "52000.00").
    /// `None` unless positive, finite, non-zero after rounding and below 1e15.
    fn fixed(&mut self, x: f64, decimals: u8) -> Option<()> {
        if !(x.is_finite() && x > 0.0 && x < 1e15) {
            return None;
        }
        let scale = 10u64.pow(u32::from(decimals));
        let scaled = (x * scale as f64).round();
        if !(1.0..9.0e18).contains(&scaled) {
            return None;
        }
        let scaled = scaled as u64;
        self.int(scaled / scale);
        if decimals > 0 {
            self.buf[self.len] = b'.';
            self.len += 1;
            let mut frac = scaled % scale;
            let d = usize::from(decimals);
            for k in (0..d).rev() {
                self.buf[self.len + k] = b'0' + (frac % 10) as u8;
                frac /= 10;
            }
            self.len += d;
        }
        Some(())
    }
}

/// The copy outcome a Binance order's [`Fill`] stands for in a race.
pub fn copy_outcome(fill: &Fill) -> CopyOutcome {
    match fill.status {
        FillStatus::Filled | FillStatus::Partial | FillStatus::Paper => CopyOutcome::Accepted,
        FillStatus::Rejected if fill.error_code == DUPLICATE_CLIENT_ORDER_ID => {
            CopyOutcome::Duplicate
        }
        FillStatus::Rejected | FillStatus::NotFound | FillStatus::Lost => CopyOutcome::Rejected,
    }
}

/// Settings of the Binance order session.
#[derive(Clone, Debug)]
pub struct BinanceOrderConfig {
    /// The symbol every intent trades (`BTCUSDT`).
    pub symbol: String,
    /// Quantity decimals (BTCUSDT: 3, step 0.001).
    pub qty_decimals: u8,
    /// `recvWindow`, ms.
    pub recv_window_ms: u64,
    /// Makes client order ids unique across runs: `k<run_tag hex>-<intent id>`.
    pub run_tag: u64,
    /// Reply deadline before asking with `order.status`, ns.
    pub timeout_ns: u64,
}

/// Counters of the Binance order session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BinanceCounters {
    /// Orders written.
    pub sent: u64,
    /// Replies matched to an order.
    pub replies: u64,
    /// `order.status` queries sent (timeouts, reconnections, non-final replies).
    pub queries: u64,
    /// Replies that could not be parsed.
    pub malformed: u64,
    /// Well-formed replies for no order in flight.
    pub unmatched: u64,
    /// Orders refused by the venue as a duplicate client order id.
    pub duplicates: u64,
    /// Intents that could not be rendered (quantity rounds to zero): rejected locally.
    pub unrenderable: u64,
    /// Intents held because the in-flight table was full.
    pub table_full: u64,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    intent: HedgeIntent,
    sent_ns: u64,
    deadline_ns: u64,
}

/// The Binance order session (a [`Session`] on a WebSocket API connection, `/ws-fapi/v1`).
pub struct BinanceOrders {
    intents: Consumer<HedgeIntent>,
    fills: Producer<Fill>,
    signer: HmacSigner,
    buy: RequestTemplate,
    sell: RequestTemplate,
    status: RequestTemplate,
    config: BinanceOrderConfig,
    in_flight: [Option<InFlight>; MAX_IN_FLIGHT],
    held: Option<HedgeIntent>,
    backlog: Vec<Fill>,
    buf: Vec<u8>,
    just_sent: [u8; MAX_IN_FLIGHT],
    just_sent_len: usize,
    opens: u64,
    counters: BinanceCounters,
}

impl BinanceOrders {
    /// A session reading intents and writing fills, signing with `credentials`.
    pub fn new(
        intents: Consumer<HedgeIntent>,
        fills: Producer<Fill>,
        credentials: &BinanceCredentials,
        config: BinanceOrderConfig,
    ) -> Result<Self, BinanceError> {
        let key = credentials.api_key();
        let (sym, rw, qd) = (&config.symbol, config.recv_window_ms, config.qty_decimals);
        let buy = RequestTemplate::market_order(key, sym, Side::Buy, rw, qd)?;
        let sell = RequestTemplate::market_order(key, sym, Side::Sell, rw, qd)?;
        let status = RequestTemplate::order_status(key, sym, rw)?;
        let cap = buy.max_len().max(sell.max_len()).max(status.max_len());
        Ok(Self {
            intents,
            fills,
            signer: credentials.signer(),
            buy,
            sell,
            status,
            config,
            in_flight: [None; MAX_IN_FLIGHT],
            held: None,
            backlog: Vec::with_capacity(MAX_IN_FLIGHT),
            buf: Vec::with_capacity(cap),
            just_sent: [0; MAX_IN_FLIGHT],
            just_sent_len: 0,
            opens: 0,
            counters: BinanceCounters::default(),
        })
    }

    /// Counters so far.
    pub fn counters(&self) -> BinanceCounters {
        self.counters
    }

    /// Orders whose outcome is not known yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.iter().filter(|s| s.is_some()).count()
    }

    /// Writes `k<run_tag hex>-<id>` into `out`; returns its length.
    fn client_order_id(run_tag: u64, id: u64, out: &mut [u8; MAX_CLIENT_ORDER_ID]) -> usize {
        let mut n = 0;
        out[n] = b'k';
        n += 1;
        let digits = (64 - run_tag.leading_zeros()).div_ceil(4).max(1) as usize;
        for k in (0..digits).rev() {
            out[n] = HEX[((run_tag >> (4 * k)) & 15) as usize];
            n += 1;
        }
        out[n] = b'-';
        n += 1;
        let mut t = NumText::default();
        t.int(id);
        out[n..n + t.len].copy_from_slice(t.as_bytes());
        n + t.len
    }

    /// Renders the signed `order.place` of `intent` into the request buffer (the hot path:
    /// template fill + HMAC, no allocation).
    pub fn render_order(&mut self, intent: &HedgeIntent) -> Result<&[u8], FillError> {
        let mut cid = [0u8; MAX_CLIENT_ORDER_ID];
        let n = Self::client_order_id(self.config.run_tag, intent.id, &mut cid);
        let template = match intent.side {
            Side::Buy => &self.buy,
            Side::Sell => &self.sell,
        };
        template.fill(
            &Fields {
                client_order_id: &cid[..n],
                quantity: intent.amount,
                price: f64::NAN,
                timestamp_ms: clock::now_ns() / 1_000_000,
            },
            &self.signer,
            &mut self.buf,
        )?;
        Ok(&self.buf)
    }

    fn render_query(&mut self, intent_id: u64) {
        let mut cid = [0u8; MAX_CLIENT_ORDER_ID];
        let n = Self::client_order_id(self.config.run_tag, intent_id, &mut cid);
        // A query id is the order's id with a leading 'q' (`q` + 36 > 36 bytes is fine for an
        // id; only the client order id itself is limited).
        let _ = self.status.fill(
            &Fields {
                client_order_id: &cid[..n],
                quantity: 0.0,
                price: 0.0,
                timestamp_ms: clock::now_ns() / 1_000_000,
            },
            &self.signer,
            &mut self.buf,
        );
        // `{"id":"k..` → `{"id":"qk..`: the template's id slot comes first.
        if self.buf.len() > 7 {
            self.buf.insert(7, b'q');
        }
    }

    fn slot_of_cid(&self, cid: &[u8]) -> Option<usize> {
        let mut want = [0u8; MAX_CLIENT_ORDER_ID];
        self.in_flight.iter().position(|s| {
            s.is_some_and(|f| {
                let n = Self::client_order_id(self.config.run_tag, f.intent.id, &mut want);
                &want[..n] == cid
            })
        })
    }

    fn deliver(&mut self, fill: Fill) {
        if !self.backlog.is_empty() || self.fills.push(fill).is_err() {
            self.backlog.push(fill);
        }
    }

    fn flush_backlog(&mut self) {
        while let Some(f) = self.backlog.first().copied() {
            if self.fills.push(f).is_err() {
                return;
            }
            self.backlog.remove(0);
        }
    }

    fn resolve(&mut self, slot: usize, filled: f64, price: f64, status: FillStatus, code: i32) {
        let Some(f) = self.in_flight[slot].take() else {
            return;
        };
        let sign = match f.intent.side {
            Side::Buy => 1.0,
            Side::Sell => -1.0,
        };
        let filled = if filled.is_finite() {
            filled.abs().min(f.intent.amount)
        } else {
            0.0
        };
        let mut trace = f.intent.trace;
        trace.sent_ns = f.sent_ns;
        self.deliver(Fill {
            trace,
            intent_id: f.intent.id,
            filled: sign * filled,
            price: if filled > 0.0 { price } else { f64::NAN },
            intent_coin_delta: f.intent.coin_delta,
            done_ns: clock::now_ns(),
            instrument: f.intent.instrument,
            error_code: code,
            status,
        });
    }
}

/// What a reply says.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ReplyBody {
    /// An order: its status (None for an ACK without one), executed quantity, average price.
    Order {
        status: Option<OrderStatus>,
        executed: f64,
        avg_price: f64,
    },
    /// An error code.
    Error(i32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OrderStatus {
    New,
    PartiallyFilled,
    Filled,
    /// CANCELED, EXPIRED, REJECTED, EXPIRED_IN_MATCH: final.
    Done,
}

/// One parsed reply: the request id (borrowed) and what it says.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Reply<'a> {
    id: &'a [u8],
    body: ReplyBody,
}

/// Parses a WebSocket API reply (`{"id","status","result"|"error","rateLimits"}`).
fn parse_reply(payload: &[u8]) -> Result<Option<Reply<'_>>, JsonError> {
    let mut sc = Scanner::new(payload);
    let mut top = sc.object()?;
    let mut id: Option<&[u8]> = None;
    let mut body = None;
    while let Some(k) = top.next(&mut sc)? {
        match k {
            b"id" => id = sc.str_or_null()?,
            b"result" => {
                let mut status = None;
                let mut executed = 0.0;
                let mut avg_price = f64::NAN;
                let mut m = sc.object()?;
                while let Some(k) = m.next(&mut sc)? {
                    match k {
                        b"status" => {
                            status = Some(match sc.str()? {
                                b"NEW" => OrderStatus::New,
                                b"PARTIALLY_FILLED" => OrderStatus::PartiallyFilled,
                                b"FILLED" => OrderStatus::Filled,
                                _ => OrderStatus::Done,
                            })
                        }
                        b"executedQty" => executed = sc.f64()?,
                        b"avgPrice" => avg_price = sc.f64()?,
                        _ => sc.skip()?,
                    }
                }
                body = Some(ReplyBody::Order {
                    status,
                    executed,
                    avg_price,
                });
            }
            b"error" => {
                let mut code = 0i64;
                let mut e = sc.object()?;
                while let Some(k) = e.next(&mut sc)? {
                    match k {
                        b"code" => code = sc.i64()?,
                        _ => sc.skip()?,
                    }
                }
                body = Some(ReplyBody::Error(
                    code.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
                ));
            }
            _ => sc.skip()?,
        }
    }
    sc.end()?;
    Ok(match (id, body) {
        (Some(id), Some(body)) => Some(Reply { id, body }),
        _ => None,
    })
}

impl Session for BinanceOrders {
    fn venue(&self) -> Venue {
        Venue::Binance
    }

    fn on_open(&mut self, out: &mut Outbox<'_>) {
        self.opens += 1;
        // After a reconnection, every order whose reply was lost is asked for.
        if self.opens > 1 {
            let now = clock::now_ns();
            for i in 0..MAX_IN_FLIGHT {
                if let Some(f) = self.in_flight[i]
                    && f.sent_ns != 0
                {
                    self.render_query(f.intent.id);
                    out.send_text(&self.buf);
                    self.counters.queries += 1;
                    if let Some(s) = self.in_flight[i].as_mut() {
                        s.deadline_ns = now.saturating_add(self.config.timeout_ns);
                    }
                }
            }
        }
    }

    fn on_message(
        &mut self,
        payload: &[u8],
        _recv_ts_ns: u64,
        _out: &mut Outbox<'_>,
        _emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<(), DisconnectReason> {
        let reply = match parse_reply(payload) {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => {
                self.counters.malformed += 1;
                return Ok(());
            }
        };
        let (query, cid) = match reply.id.strip_prefix(b"q") {
            Some(rest) => (true, rest),
            None => (false, reply.id),
        };
        let Some(slot) = self.slot_of_cid(cid) else {
            self.counters.unmatched += 1;
            return Ok(());
        };
        self.counters.replies += 1;
        match reply.body {
            ReplyBody::Error(code) if query && code == ORDER_DOES_NOT_EXIST => {
                self.resolve(slot, 0.0, f64::NAN, FillStatus::NotFound, code);
            }
            // A failed query says nothing about the order: ask again after the next timeout.
            ReplyBody::Error(_) if query => {}
            ReplyBody::Error(code) => {
                if code == DUPLICATE_CLIENT_ORDER_ID {
                    self.counters.duplicates += 1;
                }
                self.resolve(slot, 0.0, f64::NAN, FillStatus::Rejected, code);
            }
            ReplyBody::Order {
                status,
                executed,
                avg_price,
            } => match status {
                Some(OrderStatus::Filled) | Some(OrderStatus::Done) => {
                    let intent = self.in_flight[slot].map_or(0.0, |f| f.intent.amount);
                    let st = if executed <= 0.0 {
                        FillStatus::Rejected
                    } else if executed + 1e-12 >= intent || status == Some(OrderStatus::Filled) {
                        FillStatus::Filled
                    } else {
                        FillStatus::Partial
                    };
                    self.resolve(slot, executed, avg_price, st, 0);
                }
                // Accepted, not final (an ACK, NEW, PARTIALLY_FILLED): ask again at the
                // deadline.
                _ => {}
            },
        }
        Ok(())
    }

    fn poll_outgoing(&mut self, out: &mut Outbox<'_>) -> bool {
        self.flush_backlog();
        self.just_sent_len = 0;
        let mut wrote = false;
        loop {
            let intent = match self.held.take() {
                Some(i) => i,
                None => match self.intents.pop() {
                    Some(i) => i,
                    None => break,
                },
            };
            let Some(slot) = self.in_flight.iter().position(Option::is_none) else {
                self.held = Some(intent);
                self.counters.table_full += 1;
                break;
            };
            self.in_flight[slot] = Some(InFlight {
                intent,
                sent_ns: 0,
                deadline_ns: 0,
            });
            if self.render_order(&intent).is_err() {
                self.counters.unrenderable += 1;
                self.resolve(slot, 0.0, f64::NAN, FillStatus::Rejected, 0);
                continue;
            }
            out.send_text(&self.buf);
            self.counters.sent += 1;
            self.just_sent[self.just_sent_len] = slot as u8;
            self.just_sent_len += 1;
            wrote = true;
        }
        let now = clock::now_ns();
        for i in 0..MAX_IN_FLIGHT {
            if let Some(f) = self.in_flight[i]
                && f.sent_ns != 0
                && now > f.deadline_ns
            {
                self.render_query(f.intent.id);
                out.send_text(&self.buf);
                self.counters.queries += 1;
                if let Some(s) = self.in_flight[i].as_mut() {
                    s.deadline_ns = now.saturating_add(self.config.timeout_ns);
                }
                wrote = true;
            }
        }
        wrote
    }

    fn on_flushed(&mut self, now_ns: u64) {
        for k in 0..self.just_sent_len {
            let slot = usize::from(self.just_sent[k]);
            if let Some(f) = self.in_flight[slot].as_mut()
                && f.sent_ns == 0
            {
                f.sent_ns = now_ns;
                f.deadline_ns = now_ns.saturating_add(self.config.timeout_ns);
            }
        }
        self.just_sent_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ring::ring;
    use crate::pipeline::telemetry::TickTrace;
    use keel_feeds::instrument::InstrumentId;
    use keel_feeds::net::ws::{FrameEncoder, parse_client_frames};

    const DOC_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

    fn fixture(name: &str) -> serde_json::Value {
        let path = format!(
            "{}/../../shared/fixtures/venues/binance/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn documented_hmac_vector() {
        let s = HmacSigner::new(DOC_SECRET.as_bytes());
        let payload = b"symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        let sig = s.sign(payload);
        assert_eq!(
            &sig,
            b"c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        );
        assert!(s.verify(
            payload,
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        ));
        assert!(!s.verify(
            payload,
            "d8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        ));
        assert!(!s.verify(payload, "zz"));
    }

    /// The fixture's request, rebuilt from a template with the same parameters: the same JSON
    /// and the fixture's signature, reproduced with the documented secret.
    #[test]
    fn ws_order_place_fixture_is_reproduced() {
        let fx = fixture("ws_order_place.json");
        let p = &fx["params"];
        let t = RequestTemplate::new(
            "order.place",
            vec![
                Param::Text("symbol", "BTCUSDT".into()),
                Param::Text("side", "SELL".into()),
                Param::Text("type", "LIMIT".into()),
                Param::Text("timeInForce", "GTC".into()),
                Param::Open("quantity", Slot::Quantity),
                Param::Open("price", Slot::Price),
                Param::Int("recvWindow", 100),
                Param::Open("timestamp", Slot::Timestamp),
                Param::Text("apiKey", p["apiKey"].as_str().unwrap().into()),
            ],
            8,
            2,
        )
        .unwrap();
        let signer = HmacSigner::new(DOC_SECRET.as_bytes());
        let fields = Fields {
            client_order_id: fx["id"].as_str().unwrap().as_bytes(),
            quantity: 0.01,
            price: 52_000.0,
            timestamp_ms: 1_645_423_376_532,
        };
        let mut buf = Vec::with_capacity(t.max_len());
        t.fill(&fields, &signer, &mut buf).unwrap();
        let got: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(got, fx);
        assert!(t.query_string(&fields).unwrap().starts_with("apiKey="));
        assert!(buf.len() <= t.max_len());
    }

    #[test]
    fn numbers_are_written_with_fixed_decimals() {
        let mut n = NumText::default();
        n.fixed(0.0105, 3).unwrap();
        assert_eq!(n.as_bytes(), b"0.011");
        let mut n = NumText::default();
        n.fixed(52_000.0, 0).unwrap();
        assert_eq!(n.as_bytes(), b"52000");
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 0.0004, 1e16] {
            assert!(NumText::default().fixed(bad, 3).is_none(), "{bad}");
        }
    }

    #[test]
    fn template_errors_name_the_parameter() {
        let e = RequestTemplate::new(
            "order.place",
            vec![Param::Text("symbol", "BTC\"USDT".into())],
            3,
            1,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("symbol"), "{e}");
        let e = RequestTemplate::new(
            "order.place",
            vec![Param::Int("a", 1), Param::Int("a", 2)],
            3,
            1,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("given twice"), "{e}");
    }

    fn intent(id: u64, side: Side, amount: f64) -> HedgeIntent {
        HedgeIntent {
            trace: TickTrace {
                recv_ns: 1,
                ..TickTrace::default()
            },
            id,
            amount,
            ref_price: 100_000.0,
            coin_delta: if side == Side::Buy { amount } else { -amount },
            instrument: InstrumentId(0),
            side,
            venue: Venue::Binance,
        }
    }

    fn creds() -> BinanceCredentials {
        BinanceCredentials::new("testkey123", DOC_SECRET.as_bytes(), "test").unwrap()
    }

    fn session() -> (
        BinanceOrders,
        crate::pipeline::ring::Producer<HedgeIntent>,
        Consumer<Fill>,
    ) {
        let (ip, ic) = ring(8).unwrap();
        let (fp, fc) = ring(8).unwrap();
        let s = BinanceOrders::new(
            ic,
            fp,
            &creds(),
            BinanceOrderConfig {
                symbol: "BTCUSDT".into(),
                qty_decimals: 3,
                recv_window_ms: 5000,
                run_tag: 0xab,
                timeout_ns: 1_000_000_000,
            },
        )
        .unwrap();
        (s, ip, fc)
    }

    fn sent(s: &mut BinanceOrders) -> Vec<String> {
        let mut enc = FrameEncoder::new();
        let mut buf = Vec::new();
        let mut out = Outbox::new(&mut enc, &mut buf);
        if s.poll_outgoing(&mut out) {
            s.on_flushed(clock::now_ns());
        }
        parse_client_frames(&buf)
            .unwrap()
            .into_iter()
            .map(|(_, _, p)| String::from_utf8(p).unwrap())
            .collect()
    }

    fn reply(s: &mut BinanceOrders, text: &str) {
        let mut enc = FrameEncoder::new();
        let mut buf = Vec::new();
        let mut out = Outbox::new(&mut enc, &mut buf);
        s.on_message(text.as_bytes(), 0, &mut out, &mut |_| {})
            .unwrap();
    }

    #[test]
    fn an_intent_becomes_a_signed_order_place_and_its_result_a_fill() {
        let (mut s, mut ip, mut fc) = session();
        ip.push(intent(7, Side::Sell, 0.0123)).unwrap();
        let msgs = sent(&mut s);
        assert_eq!(msgs.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&msgs[0]).unwrap();
        assert_eq!(v["id"], "kab-7");
        assert_eq!(v["method"], "order.place");
        let p = &v["params"];
        assert_eq!(p["newClientOrderId"], "kab-7");
        assert_eq!(p["quantity"], "0.012");
        assert_eq!(p["side"], "SELL");
        assert_eq!(p["type"], "MARKET");
        assert_eq!(p["recvWindow"], 5000);
        // The signature covers every other parameter, sorted by name (an independent check:
        // the query string rebuilt from the parsed JSON).
        let obj = p.as_object().unwrap();
        let mut names: Vec<&String> = obj.keys().filter(|k| *k != "signature").collect();
        names.sort();
        let query: Vec<String> = names
            .iter()
            .map(|k| match &obj[*k] {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect();
        let sig = HmacSigner::new(DOC_SECRET.as_bytes()).sign(query.join("&").as_bytes());
        assert_eq!(p["signature"].as_str().unwrap().as_bytes(), &sig);
        assert_eq!(s.in_flight(), 1);
        reply(
            &mut s,
            r#"{"id":"kab-7","status":200,"result":{"orderId":1,"symbol":"BTCUSDT","status":"FILLED","clientOrderId":"kab-7","avgPrice":"100010.50","origQty":"0.012","executedQty":"0.012","type":"MARKET","side":"SELL"},"rateLimits":[]}"#,
        );
        let f = fc.pop().unwrap();
        assert_eq!(f.status, FillStatus::Filled);
        assert!((f.filled + 0.012).abs() < 1e-12);
        assert_eq!(f.price, 100_010.5);
        assert_eq!(copy_outcome(&f), CopyOutcome::Accepted);
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn the_ack_fixture_keeps_the_order_in_flight_until_its_status_is_known() {
        let ack = fixture("ws_order_place_ack.json");
        let text = ack.to_string();
        let r = parse_reply(text.as_bytes()).unwrap().unwrap();
        assert_eq!(r.id, b"56374a46-3061-486b-a311-99ee972eb648");
        assert!(matches!(r.body, ReplyBody::Order { status: None, .. }));
        let (mut s, mut ip, mut fc) = session();
        ip.push(intent(3, Side::Buy, 0.5)).unwrap();
        sent(&mut s);
        let mut ack = ack;
        ack["id"] = "kab-3".into();
        reply(&mut s, &ack.to_string());
        assert!(fc.pop().is_none());
        assert_eq!(s.in_flight(), 1);
        // A reconnection asks with order.status; "does not exist" means it never arrived.
        let mut enc = FrameEncoder::new();
        let mut buf = Vec::new();
        s.on_open(&mut Outbox::new(&mut enc, &mut buf));
        s.on_open(&mut Outbox::new(&mut enc, &mut buf));
        let q = parse_client_frames(&buf).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&q[0].2).unwrap();
        assert_eq!(v["id"], "qkab-3");
        assert_eq!(v["method"], "order.status");
        assert_eq!(v["params"]["origClientOrderId"], "kab-3");
        reply(
            &mut s,
            r#"{"id":"qkab-3","status":400,"error":{"code":-1003,"msg":"Too many requests"}}"#,
        );
        assert_eq!(s.in_flight(), 1);
        reply(
            &mut s,
            r#"{"id":"qkab-3","status":400,"error":{"code":-2013,"msg":"Order does not exist."}}"#,
        );
        let f = fc.pop().unwrap();
        assert_eq!(f.status, FillStatus::NotFound);
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn a_duplicate_is_a_duplicate_and_bad_replies_are_counted() {
        let (mut s, mut ip, mut fc) = session();
        ip.push(intent(1, Side::Buy, 0.01)).unwrap();
        ip.push(intent(2, Side::Buy, 0.01)).unwrap();
        assert_eq!(sent(&mut s).len(), 2);
        reply(
            &mut s,
            r#"{"id":"kab-1","status":400,"error":{"code":-4116,"msg":"ClientOrderId is duplicated."}}"#,
        );
        let f = fc.pop().unwrap();
        assert_eq!((f.status, f.error_code), (FillStatus::Rejected, -4116));
        assert_eq!(copy_outcome(&f), CopyOutcome::Duplicate);
        for bad in [
            "not json",
            r#"{"id":"kab-2","status":200,"result":{"executedQty":true}}"#,
            r#"{"id":"kab-2","status":200"#,
            r#"{"status":200,"result":{}}"#,
            r#"[]"#,
            "",
        ] {
            reply(&mut s, bad);
        }
        reply(&mut s, r#"{"id":"kab-99","status":200,"result":{}}"#);
        let c = s.counters();
        assert_eq!((c.malformed, c.unmatched, c.duplicates), (6, 1, 1));
        // The order behind the malformed replies is still in flight, never lost.
        assert_eq!(s.in_flight(), 1);
        reply(
            &mut s,
            r#"{"id":"kab-2","status":200,"result":{"status":"EXPIRED","executedQty":"0.004","avgPrice":"99.5"}}"#,
        );
        let f = fc.pop().unwrap();
        assert_eq!(f.status, FillStatus::Partial);
        assert!((f.filled - 0.004).abs() < 1e-12);
    }

    /// Every truncation and many byte flips of real replies: never a panic, never more than
    /// one outcome per order.
    #[test]
    fn mutated_replies_never_panic_or_resolve_twice() {
        let good = [
            r#"{"id":"kab-1","status":200,"result":{"status":"FILLED","executedQty":"0.010","avgPrice":"100.5"},"rateLimits":[{"count":1}]}"#,
            r#"{"id":"kab-1","status":400,"error":{"code":-4116,"msg":"ClientOrderId is duplicated."}}"#,
            r#"{"id":"qkab-1","status":400,"error":{"code":-2013,"msg":"Order does not exist."}}"#,
        ];
        let mut seed = 0x1234_5678_9abc_def0u64;
        for g in good {
            let (mut s, mut ip, mut fc) = session();
            ip.push(intent(1, Side::Buy, 0.01)).unwrap();
            sent(&mut s);
            let bytes = g.as_bytes();
            let mut variants: Vec<Vec<u8>> =
                (0..bytes.len()).map(|n| bytes[..n].to_vec()).collect();
            for _ in 0..2000 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let mut v = bytes.to_vec();
                let i = (seed as usize) % v.len();
                v[i] = (seed >> 32) as u8;
                variants.push(v);
            }
            let mut enc = FrameEncoder::new();
            let mut buf = Vec::new();
            for v in &variants {
                let mut out = Outbox::new(&mut enc, &mut buf);
                s.on_message(v, 0, &mut out, &mut |_| {}).unwrap();
            }
            let mut outcomes = 0;
            while fc.pop().is_some() {
                outcomes += 1;
            }
            assert!(outcomes <= 1, "{g}: {outcomes} outcomes");
        }
    }

    #[test]
    fn an_unrenderable_intent_is_rejected_locally() {
        let (mut s, mut ip, mut fc) = session();
        ip.push(intent(4, Side::Buy, 0.0001)).unwrap();
        assert!(sent(&mut s).is_empty());
        let f = fc.pop().unwrap();
        assert_eq!(f.status, FillStatus::Rejected);
        assert_eq!(s.counters().unrenderable, 1);
    }

    #[test]
    fn credentials_never_print_and_are_checked() {
        let c = creds();
        let d = format!("{c:?} {:?}", c.signer());
        assert!(!d.contains(DOC_SECRET) && !d.contains("testkey123"));
        let e = BinanceCredentials::new("k&y", b"s", "environment variables A/B")
            .unwrap_err()
            .to_string();
        assert!(e.contains("A/B") && e.contains("API key"), "{e}");
        let e = BinanceCredentials::from_env("KEEL_TEST_NO_SUCH_VAR_1", "X")
            .unwrap_err()
            .to_string();
        assert!(e.contains("KEEL_TEST_NO_SUCH_VAR_1"), "{e}");
    }
}
