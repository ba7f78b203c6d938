//! Deribit orders over one JSON-RPC WebSocket session: `private/buy` / `private/sell` market
//! orders with a unique `label` per hedge, replies parsed into [`Fill`]s, and orders whose
//! reply never came asked for by label (`private/get_order_state_by_label`) after a timeout or
//! a reconnection.
//!
//! Owns the orders in flight (a fixed table) and a request buffer reserved at start-up: never
//! allocates per order. With credentials, every (re)connection authenticates first
//! (`public/auth`, client credentials) and no order or label query is written until the venue
//! has accepted them; then `private/enable_cancel_on_disconnect` (scope `connection`) makes the
//! venue cancel whatever rests from this session if the connection drops. A refused `public/auth`
//! drops the connection (reconnected with backoff; counted). Without credentials (keel-sim's
//! dry-run endpoint) none of this is sent.
//!
//! [`http_authorization`] signs a REST request (`deri-hmac-sha256`) so start-up reconciliation
//! can read positions and open orders without ever sending the secret.

use std::io::Write as _;

use keel_feeds::clock;
use keel_feeds::event::{DisconnectReason, MarketEvent, Side, Venue};
use keel_feeds::net::{Outbox, Session};
use keel_feeds::venues::json::{JsonError, Scanner};

use super::{Fill, FillStatus, HedgeIntent};
use crate::pipeline::Waiter;
use crate::pipeline::ring::{Consumer, Producer};
use crate::pipeline::wait::WaitStrategy;

/// Orders in flight at once (the policy keeps far fewer).
pub const MAX_IN_FLIGHT: usize = 64;

/// Appends `n` in decimal (no allocation; the buffer's capacity is reserved at start-up).
fn push_decimal(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Appends `n` in lower-case hexadecimal, no leading zeros (as `{:x}`).
fn push_hex(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}
/// JSON-RPC ids at or above this are label queries (the order's id + this).
const QUERY_ID: u64 = 1 << 62;
/// JSON-RPC id of `public/auth`.
const AUTH_ID: u64 = (1 << 62) - 1;
/// JSON-RPC id of `public/set_heartbeat` and the `public/test` replies.
const HEARTBEAT_ID: u64 = (1 << 62) - 2;
/// JSON-RPC id of `private/cancel_all` (on a halt).
const CANCEL_ALL_ID: u64 = (1 << 62) - 3;
/// JSON-RPC id of `private/enable_cancel_on_disconnect`.
const COD_ID: u64 = (1 << 62) - 4;
/// Heartbeat interval asked for, seconds: a dead order connection is noticed within about
/// twice this.
const HEARTBEAT_S: u32 = 10;

/// Client credentials, read from the environment at start-up (never from a flag). The secret
/// is zeroized when dropped and never printed.
#[derive(Clone)]
pub struct Credentials {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: zeroize::Zeroizing<String>,
}

/// The `Authorization` header value of a Deribit REST request signed with `deri-hmac-sha256`:
/// HMAC-SHA256, keyed by the client secret, of `timestamp\nnonce\nMETHOD\nuri\nbody\n`
/// (`uri` is the path with its query string), in lower-case hex. The secret never leaves the
/// process.
pub fn http_authorization(
    c: &Credentials,
    timestamp_ms: u64,
    nonce: &str,
    method: &str,
    uri: &str,
    body: &str,
) -> String {
    use hmac::{Hmac, Mac};
    let data = format!("{timestamp_ms}\n{nonce}\n{method}\n{uri}\n{body}\n");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(c.client_secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(data.as_bytes());
    let sig = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(64);
    for b in sig {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
    }
    format!(
        "deri-hmac-sha256 id={},ts={timestamp_ms},sig={hex},nonce={nonce}",
        c.client_id
    )
}

/// Where the session stands with authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auth {
    /// No credentials: nothing to wait for.
    NotNeeded,
    /// `public/auth` written, no answer yet: orders wait.
    Pending,
    /// Accepted on this connection.
    Done,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials { client_id: <redacted>, client_secret: <redacted> }")
    }
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    intent: HedgeIntent,
    /// Local time the request was written, ns (0 = not yet written).
    sent_ns: u64,
    /// Deadline for a reply before asking by label, ns.
    deadline_ns: u64,
    /// Label queries sent.
    queries: u32,
}

/// Counters of the order session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrderCounters {
    /// Orders written.
    pub sent: u64,
    /// Replies matched to an order.
    pub replies: u64,
    /// Label queries sent (timeouts and reconnections).
    pub queries: u64,
    /// Replies that could not be parsed or matched.
    pub unmatched: u64,
    /// Intents refused because the in-flight table was full (the intent is kept and retried).
    pub table_full: u64,
    /// `private/cancel_all` requests sent (halts).
    pub cancel_alls: u64,
    /// `public/auth` accepted (once per connection).
    pub auths: u64,
    /// `public/auth` refused (the connection is dropped and retried).
    pub auth_failures: u64,
    /// `private/enable_cancel_on_disconnect` confirmed by the venue.
    pub cancel_on_disconnect: u64,
}

/// The Deribit order session (a [`Session`] on the exec tile's connection).
pub struct DeribitOrders {
    intents: Consumer<HedgeIntent>,
    fills: Producer<Fill>,
    names: Vec<String>,
    in_flight: [Option<InFlight>; MAX_IN_FLIGHT],
    /// An intent popped while the table was full.
    held: Option<HedgeIntent>,
    /// Fills the ring had no room for (never dropped; retried first).
    backlog: Vec<Fill>,
    buf: Vec<u8>,
    run_tag: u64,
    timeout_ns: u64,
    credentials: Option<Credentials>,
    /// Orders written in the current poll, to stamp in `on_flushed`.
    just_sent: [u8; MAX_IN_FLIGHT],
    just_sent_len: usize,
    opens: u64,
    counters: OrderCounters,
    waiter: Waiter,
    /// Raised by the pricer when the risk gate halts: cancel everything resting, once.
    cancel_all: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    auth: Auth,
}

impl DeribitOrders {
    /// A session reading intents and writing fills; `names[id]` is each instrument id's venue
    /// name; `run_tag` makes labels unique across runs (`k<run_tag>-<intent id>`).
    pub fn new(
        intents: Consumer<HedgeIntent>,
        fills: Producer<Fill>,
        names: Vec<String>,
        run_tag: u64,
        timeout_ns: u64,
        credentials: Option<Credentials>,
    ) -> Self {
        Self {
            intents,
            fills,
            names,
            in_flight: [None; MAX_IN_FLIGHT],
            held: None,
            backlog: Vec::with_capacity(MAX_IN_FLIGHT),
            buf: Vec::with_capacity(1024),
            run_tag,
            timeout_ns,
            credentials,
            just_sent: [0; MAX_IN_FLIGHT],
            just_sent_len: 0,
            opens: 0,
            counters: OrderCounters::default(),
            waiter: Waiter::new(WaitStrategy::SpinYield),
            cancel_all: None,
            auth: Auth::NotNeeded,
        }
    }

    /// Sends `private/cancel_all` whenever `flag` is raised (the risk gate's halt), and lowers
    /// it.
    pub fn with_cancel_all(mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.cancel_all = Some(flag);
        self
    }

    /// Counters so far.
    pub fn counters(&self) -> OrderCounters {
        self.counters
    }

    /// Orders whose outcome is not known yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.iter().filter(|s| s.is_some()).count()
    }

    fn free_slot(&self) -> Option<usize> {
        self.in_flight.iter().position(Option::is_none)
    }

    fn write_label(&mut self, id: u64) {
        self.buf.push(b'k');
        push_hex(&mut self.buf, self.run_tag);
        self.buf.push(b'-');
        push_decimal(&mut self.buf, id);
    }

    fn write_order(&mut self, intent: &HedgeIntent) {
        self.buf.clear();
        let method = match intent.side {
            Side::Buy => "private/buy",
            Side::Sell => "private/sell",
        };
        let name = self
            .names
            .get(intent.instrument.0 as usize)
            .map_or("", String::as_str);
        // Pieces appended by hand, not `write!`: the order is on the tick-to-trade path and
        // core::fmt's machinery was most of its encode time.
        self.buf.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        push_decimal(&mut self.buf, intent.id);
        self.buf.extend_from_slice(br#","method":""#);
        self.buf.extend_from_slice(method.as_bytes());
        self.buf
            .extend_from_slice(br#"","params":{"instrument_name":""#);
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(br#"","amount":"#);
        if intent.amount.fract() == 0.0 && intent.amount.abs() < 9e15 {
            if intent.amount < 0.0 {
                self.buf.push(b'-');
            }
            push_decimal(&mut self.buf, intent.amount.abs() as u64);
        } else {
            // Lot multiples like 3 × 0.1 are not exact in binary: eight decimals, trailing
            // zeros trimmed (0.30000000000000004 → 0.3).
            let _ = write!(self.buf, "{:.8}", intent.amount);
            while self.buf.last() == Some(&b'0') {
                self.buf.pop();
            }
            if self.buf.last() == Some(&b'.') {
                self.buf.pop();
            }
        }
        self.buf.extend_from_slice(br#","type":"market","label":""#);
        self.write_label(intent.id);
        self.buf.extend_from_slice(br#""}}"#);
    }

    fn write_query(&mut self, intent_id: u64) {
        self.buf.clear();
        let _ = write!(
            self.buf,
            r#"{{"jsonrpc":"2.0","id":{},"method":"private/get_order_state_by_label","params":{{"currency":"any","label":""#,
            QUERY_ID + intent_id
        );
        self.write_label(intent_id);
        self.buf.extend_from_slice(br#""}}"#);
    }

    fn write_auth(&mut self) {
        let Some(c) = &self.credentials else { return };
        self.buf.clear();
        let _ = write!(
            self.buf,
            r#"{{"jsonrpc":"2.0","id":{AUTH_ID},"method":"public/auth","params":{{"grant_type":"client_credentials","client_id":"{}","client_secret":"{}"}}}}"#,
            c.client_id,
            c.client_secret.as_str()
        );
    }

    /// The connection may trade (authenticated, or no credentials): after a reconnection,
    /// every order whose reply was lost is asked for by label.
    fn on_ready(&mut self, out: &mut Outbox<'_>) {
        if self.opens <= 1 {
            return;
        }
        for i in 0..MAX_IN_FLIGHT {
            if let Some(f) = self.in_flight[i]
                && f.sent_ns != 0
            {
                self.write_query(f.intent.id);
                out.send_text(&self.buf);
                self.counters.queries += 1;
                if let Some(s) = self.in_flight[i].as_mut() {
                    s.queries += 1;
                    s.deadline_ns = clock::now_ns().saturating_add(self.timeout_ns);
                }
            }
        }
    }

    fn deliver(&mut self, fill: Fill) {
        if !self.backlog.is_empty() || self.fills.push(fill).is_err() {
            self.backlog.push(fill);
        }
    }

    fn flush_backlog(&mut self) {
        while let Some(f) = self.backlog.first().copied() {
            if self.fills.push(f).is_err() {
                self.waiter.idle();
                return;
            }
            self.backlog.remove(0);
        }
    }

    fn slot_of(&self, intent_id: u64) -> Option<usize> {
        self.in_flight
            .iter()
            .position(|s| s.is_some_and(|f| f.intent.id == intent_id))
    }

    fn resolve(&mut self, slot: usize, outcome: Outcome) {
        let Some(f) = self.in_flight[slot].take() else {
            return;
        };
        let sign = match f.intent.side {
            Side::Buy => 1.0,
            Side::Sell => -1.0,
        };
        let mut trace = f.intent.trace;
        trace.sent_ns = f.sent_ns;
        let filled = outcome.filled.abs().min(f.intent.amount);
        let status = match outcome.kind {
            OutcomeKind::Error(_) => FillStatus::Rejected,
            OutcomeKind::NotFound => FillStatus::NotFound,
            OutcomeKind::Order if filled >= f.intent.amount => FillStatus::Filled,
            OutcomeKind::Order if filled > 0.0 => FillStatus::Partial,
            OutcomeKind::Order => FillStatus::Rejected,
        };
        self.deliver(Fill {
            trace,
            intent_id: f.intent.id,
            filled: sign * filled,
            price: if filled > 0.0 {
                outcome.price
            } else {
                f64::NAN
            },
            intent_coin_delta: f.intent.coin_delta,
            done_ns: clock::now_ns(),
            instrument: f.intent.instrument,
            error_code: match outcome.kind {
                OutcomeKind::Error(c) => c,
                _ => 0,
            },
            status,
        });
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum OutcomeKind {
    Order,
    NotFound,
    Error(i32),
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Outcome {
    kind: OutcomeKind,
    filled: f64,
    price: f64,
    /// `open` or `untriggered`: not final.
    open: bool,
}

/// One reply: its id and what it says.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Reply {
    id: u64,
    outcome: Outcome,
}

/// What the order connection received.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Incoming {
    /// A reply to an order, a label query or auth.
    Reply(Reply),
    /// Deribit's heartbeat `test_request`: answer with `public/test`.
    TestRequest,
    /// Anything else (another notification, a reply without an id).
    Other,
}

/// Parses what the order connection received.
fn parse_reply(payload: &[u8]) -> Result<Incoming, JsonError> {
    let mut sc = Scanner::new(payload);
    let mut top = sc.object()?;
    let mut id = None;
    let mut outcome = None;
    let mut heartbeat = false;
    let mut test_request = false;
    while let Some(k) = top.next(&mut sc)? {
        match k {
            b"method" => heartbeat = sc.str()? == b"heartbeat",
            b"params" => {
                let mut p = sc.object()?;
                while let Some(k) = p.next(&mut sc)? {
                    match k {
                        b"type" => test_request = sc.str()? == b"test_request",
                        _ => sc.skip()?,
                    }
                }
            }
            b"id" => id = sc.u64_or_null()?,
            b"result" => outcome = Some(parse_result(&mut sc)?),
            b"error" => {
                let mut code = 0i64;
                let mut e = sc.object()?;
                while let Some(k) = e.next(&mut sc)? {
                    match k {
                        b"code" => code = sc.i64()?,
                        _ => sc.skip()?,
                    }
                }
                outcome = Some(Outcome {
                    kind: OutcomeKind::Error(code.clamp(i32::MIN as i64, i32::MAX as i64) as i32),
                    filled: 0.0,
                    price: f64::NAN,
                    open: false,
                });
            }
            _ => sc.skip()?,
        }
    }
    Ok(match (id, outcome) {
        (Some(id), Some(outcome)) => Incoming::Reply(Reply { id, outcome }),
        _ if heartbeat && test_request => Incoming::TestRequest,
        _ => Incoming::Other,
    })
}

/// `result` of private/buy|sell (`{"order": {..}, "trades": [..]}`) or of
/// get_order_state_by_label (an array of orders; empty = not found).
fn parse_result(sc: &mut Scanner<'_>) -> Result<Outcome, JsonError> {
    let not_found = Outcome {
        kind: OutcomeKind::NotFound,
        filled: 0.0,
        price: f64::NAN,
        open: false,
    };
    match sc.peek()? {
        b'[' => {
            let mut out = not_found;
            let mut items = sc.array()?;
            while items.next(sc)? {
                if out.kind == OutcomeKind::NotFound {
                    out = parse_order(sc)?;
                } else {
                    sc.skip()?;
                }
            }
            Ok(out)
        }
        b'{' => {
            let mut out = not_found;
            let mut m = sc.object()?;
            while let Some(k) = m.next(sc)? {
                match k {
                    b"order" => out = parse_order(sc)?,
                    _ => sc.skip()?,
                }
            }
            Ok(out)
        }
        _ => {
            sc.skip()?;
            Ok(not_found)
        }
    }
}

fn parse_order(sc: &mut Scanner<'_>) -> Result<Outcome, JsonError> {
    let mut out = Outcome {
        kind: OutcomeKind::Order,
        filled: 0.0,
        price: f64::NAN,
        open: false,
    };
    let mut m = sc.object()?;
    while let Some(k) = m.next(sc)? {
        match k {
            b"filled_amount" => out.filled = sc.f64()?,
            b"average_price" => out.price = sc.f64()?,
            b"order_state" => {
                let s = sc.str()?;
                out.open = s == b"open" || s == b"untriggered";
            }
            _ => sc.skip()?,
        }
    }
    Ok(out)
}

impl Session for DeribitOrders {
    fn venue(&self) -> Venue {
        Venue::Deribit
    }

    fn on_open(&mut self, out: &mut Outbox<'_>) {
        self.opens += 1;
        self.buf.clear();
        keel_feeds::venues::deribit::set_heartbeat(&mut self.buf, HEARTBEAT_ID, HEARTBEAT_S);
        out.send_text(&self.buf);
        if self.credentials.is_some() {
            self.auth = Auth::Pending;
            self.write_auth();
            out.send_text(&self.buf);
            // Label queries and orders wait for the answer (`on_authenticated`).
            return;
        }
        self.on_ready(out);
    }

    fn on_message(
        &mut self,
        payload: &[u8],
        _recv_ts_ns: u64,
        out: &mut Outbox<'_>,
        _emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<(), DisconnectReason> {
        let reply = match parse_reply(payload) {
            Ok(Incoming::Reply(r)) => r,
            Ok(Incoming::TestRequest) => {
                self.buf.clear();
                keel_feeds::venues::deribit::test_reply(&mut self.buf, HEARTBEAT_ID);
                out.send_text(&self.buf);
                return Ok(());
            }
            Ok(Incoming::Other) => return Ok(()),
            Err(_) => {
                self.counters.unmatched += 1;
                return Ok(());
            }
        };
        if reply.id == HEARTBEAT_ID || reply.id == CANCEL_ALL_ID {
            return Ok(());
        }
        if reply.id == COD_ID {
            if !matches!(reply.outcome.kind, OutcomeKind::Error(_)) {
                self.counters.cancel_on_disconnect += 1;
            }
            return Ok(());
        }
        if reply.id == AUTH_ID {
            if let OutcomeKind::Error(_) = reply.outcome.kind {
                self.counters.auth_failures += 1;
                return Err(DisconnectReason::Rejected);
            }
            if self.auth == Auth::Pending {
                self.auth = Auth::Done;
                self.counters.auths += 1;
                self.buf.clear();
                let _ = write!(
                    self.buf,
                    r#"{{"jsonrpc":"2.0","id":{COD_ID},"method":"private/enable_cancel_on_disconnect","params":{{"scope":"connection"}}}}"#
                );
                out.send_text(&self.buf);
                self.on_ready(out);
            }
            return Ok(());
        }
        let intent_id = if reply.id >= QUERY_ID {
            reply.id - QUERY_ID
        } else {
            reply.id
        };
        let Some(slot) = self.slot_of(intent_id) else {
            self.counters.unmatched += 1;
            return Ok(());
        };
        self.counters.replies += 1;
        // A resting remainder is not final; a market order's is cancelled by the venue, so
        // only a label query may still say "open": then wait for the next query.
        if reply.outcome.open && reply.id >= QUERY_ID {
            return Ok(());
        }
        // A label query that failed says nothing about the order: keep it in flight (and its
        // exposure counted) and ask again after the next timeout.
        if reply.id >= QUERY_ID && matches!(reply.outcome.kind, OutcomeKind::Error(_)) {
            return Ok(());
        }
        self.resolve(slot, reply.outcome);
        Ok(())
    }

    fn poll_outgoing(&mut self, out: &mut Outbox<'_>) -> bool {
        self.flush_backlog();
        self.just_sent_len = 0;
        if self.auth == Auth::Pending {
            // Nothing private before the venue accepts the credentials.
            return false;
        }
        let mut wrote = false;
        if let Some(flag) = &self.cancel_all
            && flag.swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            self.buf.clear();
            let _ = write!(
                self.buf,
                r#"{{"jsonrpc":"2.0","id":{CANCEL_ALL_ID},"method":"private/cancel_all","params":{{}}}}"#
            );
            out.send_text(&self.buf);
            self.counters.cancel_alls += 1;
            wrote = true;
        }
        loop {
            let intent = match self.held.take() {
                Some(i) => i,
                None => match self.intents.pop() {
                    Some(i) => i,
                    None => break,
                },
            };
            let Some(slot) = self.free_slot() else {
                self.held = Some(intent);
                self.counters.table_full += 1;
                break;
            };
            self.write_order(&intent);
            out.send_text(&self.buf);
            self.counters.sent += 1;
            self.in_flight[slot] = Some(InFlight {
                intent,
                sent_ns: 0,
                deadline_ns: 0,
                queries: 0,
            });
            self.just_sent[self.just_sent_len] = slot as u8;
            self.just_sent_len += 1;
            wrote = true;
        }
        // Replies overdue: ask by label (at most once per timeout).
        let now = clock::now_ns();
        for i in 0..MAX_IN_FLIGHT {
            if let Some(f) = self.in_flight[i]
                && f.sent_ns != 0
                && now > f.deadline_ns
            {
                self.write_query(f.intent.id);
                out.send_text(&self.buf);
                self.counters.queries += 1;
                if let Some(s) = self.in_flight[i].as_mut() {
                    s.queries += 1;
                    s.deadline_ns = now.saturating_add(self.timeout_ns);
                }
                wrote = true;
            }
        }
        wrote
    }

    fn on_flushed(&mut self, now_ns: u64) {
        for k in 0..self.just_sent_len {
            let slot = self.just_sent[k] as usize;
            if let Some(f) = self.in_flight[slot].as_mut()
                && f.sent_ns == 0
            {
                f.sent_ns = now_ns;
                f.deadline_ns = now_ns.saturating_add(self.timeout_ns);
            }
        }
        self.just_sent_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_written_numbers_match_core_fmt() {
        for n in [
            0u64,
            1,
            9,
            10,
            99,
            100,
            12_345,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut d = Vec::new();
            push_decimal(&mut d, n);
            assert_eq!(d, n.to_string().into_bytes());
            let mut h = Vec::new();
            push_hex(&mut h, n);
            assert_eq!(h, format!("{n:x}").into_bytes());
        }
    }
    use crate::pipeline::ring::ring;
    use crate::pipeline::telemetry::TickTrace;
    use keel_feeds::instrument::InstrumentId;
    use keel_feeds::net::ws::{FrameEncoder, parse_client_frames};

    fn intent(id: u64, side: Side, amount: f64) -> HedgeIntent {
        HedgeIntent {
            trace: TickTrace {
                recv_ns: 1,
                ..TickTrace::default()
            },
            id,
            amount,
            ref_price: 100_000.0,
            coin_delta: if side == Side::Buy { 0.1 } else { -0.1 },
            instrument: InstrumentId(0),
            side,
            venue: Venue::Deribit,
        }
    }

    fn session() -> (DeribitOrders, Producer<HedgeIntent>, Consumer<Fill>) {
        let (ip, ic) = ring(8).unwrap();
        let (fp, fc) = ring(8).unwrap();
        let s = DeribitOrders::new(
            ic,
            fp,
            vec!["BTC-PERPETUAL".into()],
            0xab,
            1_000_000_000,
            None,
        );
        (s, ip, fc)
    }

    fn sent(s: &mut DeribitOrders) -> Vec<String> {
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

    fn reply(s: &mut DeribitOrders, text: &str) {
        let mut enc = FrameEncoder::new();
        let mut buf = Vec::new();
        let mut out = Outbox::new(&mut enc, &mut buf);
        s.on_message(text.as_bytes(), 0, &mut out, &mut |_| {})
            .unwrap();
    }

    #[test]
    fn an_intent_becomes_a_labelled_market_order_and_its_reply_a_fill() {
        let (mut s, mut ip, mut fc) = session();
        ip.push(intent(7, Side::Sell, 12_340.0)).unwrap();
        let msgs = sent(&mut s);
        assert_eq!(
            msgs,
            vec![
                r#"{"jsonrpc":"2.0","id":7,"method":"private/sell","params":{"instrument_name":"BTC-PERPETUAL","amount":12340,"type":"market","label":"kab-7"}}"#
            ]
        );
        let v: serde_json::Value = serde_json::from_str(&msgs[0]).unwrap();
        assert_eq!(v["params"]["amount"], 12340);
        assert_eq!(s.in_flight(), 1);
        reply(
            &mut s,
            r#"{"jsonrpc":"2.0","id":7,"result":{"order":{"order_state":"filled","filled_amount":12340.0,"average_price":100010.5,"label":"kab-7"},"trades":[]}}"#,
        );
        let f = fc.pop().unwrap();
        assert_eq!(f.status, FillStatus::Filled);
        assert_eq!(f.filled, -12_340.0);
        assert_eq!(f.price, 100_010.5);
        assert!(f.trace.sent_ns > 0 && f.trace.recv_ns == 1);
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn option_amounts_print_as_lot_multiples() {
        let (mut s, mut ip, _fc) = session();
        ip.push(intent(9, Side::Buy, 3.0 * 0.1)).unwrap();
        let msgs = sent(&mut s);
        assert!(msgs[0].contains(r#""amount":0.3,"#), "{}", msgs[0]);
    }

    #[test]
    fn errors_partials_and_unknown_replies() {
        let (mut s, mut ip, mut fc) = session();
        ip.push(intent(1, Side::Buy, 100.0)).unwrap();
        ip.push(intent(2, Side::Buy, 100.0)).unwrap();
        assert_eq!(sent(&mut s).len(), 2);
        reply(
            &mut s,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":10009,"message":"not_enough_funds"}}"#,
        );
        reply(
            &mut s,
            r#"{"jsonrpc":"2.0","id":2,"result":{"order":{"order_state":"cancelled","filled_amount":40,"average_price":1.5}}}"#,
        );
        reply(&mut s, r#"{"jsonrpc":"2.0","id":99,"result":{}}"#);
        reply(
            &mut s,
            r#"{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}"#,
        );
        reply(&mut s, "not json");
        let a = fc.pop().unwrap();
        assert_eq!(
            (a.status, a.error_code, a.filled),
            (FillStatus::Rejected, 10009, 0.0)
        );
        let b = fc.pop().unwrap();
        assert_eq!((b.status, b.filled), (FillStatus::Partial, 40.0));
        assert!((b.coin_delta(100.0) - 0.04).abs() < 1e-12);
        assert_eq!(s.counters().unmatched, 2);
    }

    #[test]
    fn a_lost_reply_is_asked_for_by_label_after_a_reconnect() {
        let (mut s, mut ip, mut fc) = session();
        let mut enc = FrameEncoder::new();
        let mut buf = Vec::new();
        s.on_open(&mut Outbox::new(&mut enc, &mut buf));
        ip.push(intent(3, Side::Buy, 50.0)).unwrap();
        sent(&mut s);
        buf.clear();
        s.on_open(&mut Outbox::new(&mut enc, &mut buf));
        let q = parse_client_frames(&buf).unwrap();
        let text = String::from_utf8(q[1].2.clone()).unwrap();
        assert!(
            text.contains("private/get_order_state_by_label") && text.contains("kab-3"),
            "{text}"
        );
        let qid = QUERY_ID + 3;
        // A failed query settles nothing; an empty answer means the venue never got it.
        reply(
            &mut s,
            &format!(
                r#"{{"jsonrpc":"2.0","id":{qid},"error":{{"code":-32601,"message":"Method not found"}}}}"#
            ),
        );
        assert_eq!(s.in_flight(), 1);
        assert!(fc.pop().is_none());
        reply(
            &mut s,
            &format!(r#"{{"jsonrpc":"2.0","id":{qid},"result":[]}}"#),
        );
        let f = fc.pop().unwrap();
        assert_eq!(f.status, FillStatus::NotFound);
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn heartbeats_are_set_up_and_answered() {
        let (mut s, _ip, _fc) = session();
        let mut enc = FrameEncoder::new();
        let mut buf = Vec::new();
        s.on_open(&mut Outbox::new(&mut enc, &mut buf));
        let f = parse_client_frames(&buf).unwrap();
        assert!(String::from_utf8_lossy(&f[0].2).contains("public/set_heartbeat"));
        buf.clear();
        let mut out = Outbox::new(&mut enc, &mut buf);
        s.on_message(
            br#"{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}"#,
            0,
            &mut out,
            &mut |_| {},
        )
        .unwrap();
        let f = parse_client_frames(&buf).unwrap();
        assert!(String::from_utf8_lossy(&f[0].2).contains("public/test"));
    }

    #[test]
    fn a_halt_sends_cancel_all_once() {
        let (s, _ip, _fc) = session();
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let mut s = s.with_cancel_all(flag.clone());
        let msgs = sent(&mut s);
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].contains("private/cancel_all"), "{}", msgs[0]);
        assert!(!flag.load(std::sync::atomic::Ordering::Relaxed));
        assert!(sent(&mut s).is_empty());
        assert_eq!(s.counters().cancel_alls, 1);
    }

    #[test]
    fn credentials_never_print() {
        let c = Credentials {
            client_id: "id-123".into(),
            client_secret: zeroize::Zeroizing::new("s3cr3t".into()),
        };
        let d = format!("{c:?}");
        assert!(!d.contains("s3cr3t") && !d.contains("id-123"));
    }

    fn frames(buf: &[u8]) -> Vec<String> {
        parse_client_frames(buf)
            .unwrap()
            .into_iter()
            .map(|(_, _, p)| String::from_utf8(p).unwrap())
            .collect()
    }

    #[test]
    fn orders_wait_for_auth_then_cancel_on_disconnect_is_enabled() {
        let (mut ip, ic) = ring(8).unwrap();
        let (fp, _fc) = ring(8).unwrap();
        let creds = Credentials {
            client_id: "cid".into(),
            client_secret: zeroize::Zeroizing::new("csecret".into()),
        };
        let mut s = DeribitOrders::new(
            ic,
            fp,
            vec!["BTC-PERPETUAL".into()],
            0xab,
            1_000_000_000,
            Some(creds),
        );
        let mut enc = FrameEncoder::new();
        let mut buf = Vec::new();
        s.on_open(&mut Outbox::new(&mut enc, &mut buf));
        let f = frames(&buf);
        assert!(f[1].contains("public/auth") && f[1].contains(r#""client_id":"cid""#));
        ip.push(intent(1, Side::Buy, 10.0)).unwrap();
        assert!(sent(&mut s).is_empty(), "no order before the auth answer");
        // Refused credentials drop the connection.
        let mut buf = Vec::new();
        let auth_err = format!(
            r#"{{"jsonrpc":"2.0","id":{AUTH_ID},"error":{{"code":13004,"message":"invalid_credentials"}}}}"#
        );
        let r = s.on_message(
            auth_err.as_bytes(),
            0,
            &mut Outbox::new(&mut enc, &mut buf),
            &mut |_| {},
        );
        assert_eq!(r, Err(DisconnectReason::Rejected));
        assert_eq!(s.counters().auth_failures, 1);
        // Reconnected, accepted: cancel-on-disconnect first, then the held order.
        let mut buf = Vec::new();
        s.on_open(&mut Outbox::new(&mut enc, &mut buf));
        assert!(sent(&mut s).is_empty());
        let mut buf = Vec::new();
        let ok = format!(
            r#"{{"jsonrpc":"2.0","id":{AUTH_ID},"result":{{"access_token":"t","token_type":"bearer"}}}}"#
        );
        s.on_message(
            ok.as_bytes(),
            0,
            &mut Outbox::new(&mut enc, &mut buf),
            &mut |_| {},
        )
        .unwrap();
        let f = frames(&buf);
        assert!(f[0].contains("private/enable_cancel_on_disconnect"));
        assert!(f[0].contains(r#""scope":"connection""#));
        let orders = sent(&mut s);
        assert_eq!(orders.len(), 1);
        assert!(orders[0].contains("private/buy"));
        reply(
            &mut s,
            &format!(r#"{{"jsonrpc":"2.0","id":{COD_ID},"result":"ok"}}"#),
        );
        assert_eq!(s.counters().auths, 1);
        assert_eq!(s.counters().cancel_on_disconnect, 1);
    }

    #[test]
    fn rest_signature_follows_deribit_hmac() {
        let c = Credentials {
            client_id: "AMANDA".into(),
            client_secret: zeroize::Zeroizing::new("AMANDASECRECT".into()),
        };
        let h = http_authorization(
            &c,
            1_576_074_319_000,
            "1iqt2wls",
            "GET",
            "/api/v2/private/get_positions?currency=BTC",
            "",
        );
        // Independent: HMAC-SHA256 of the documented string layout, computed by Python's hmac.
        assert_eq!(
            h,
            "deri-hmac-sha256 id=AMANDA,ts=1576074319000,sig=ac1013310f60dcd9dc226b21a5937cb1cebb48e976d24583cd34888a2a103e8a,nonce=1iqt2wls"
        );
    }
}
