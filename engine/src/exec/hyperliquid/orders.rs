//! The Hyperliquid order session over the WebSocket `post` channel: a ladder of pre-signed
//! order/noop pairs built at start-up, fired by [`HlCommand`]s from a ring, replies parsed into
//! [`Fill`]s.
//!
//! 1. `Fire(k)` writes entry k's pre-rendered order `post` (request id 2k): no encoding, no
//!    signing, no allocation.
//! 2. `Void(k)` writes entry k's noop `post` (id 2k+1) at the same nonce: if it lands first the
//!    order can never execute (a copy that lost the race elsewhere is cancelled without a
//!    cancel); if the order landed first the noop is refused for its nonce.
//! 3. A reply to an order resolves it once: `filled` → [`FillStatus::Filled`] /
//!    [`FillStatus::Partial`]; `resting` → accepted, nothing filled yet (Keel sends IOC: counted
//!    in `resting`); an order-status `error` or `status: err` → [`FillStatus::Rejected`], with
//!    [`ERR_NONCE`] when the venue refused the nonce (the race's duplicate).
//! 4. An order without a reply by its deadline is voided (its noop sent): a noop that lands
//!    resolves it as [`FillStatus::NotFound`] (it never executed and never will); a noop refused
//!    for its nonce means the nonce was spent first (`landed_unknown`): with status queries
//!    enabled ([`HyperliquidOrders::with_status_queries`]) and a client order id in the order,
//!    an info `orderStatus` by that id is posted (again after each timeout) and settles it —
//!    `filled`/`canceled` with the executed size (`origSz − sz`; priced at the order's limit, the
//!    bound the venue could not cross: orderStatus carries no average price), `unknownOid` as
//!    [`FillStatus::NotFound`] (the nonce went to another action); otherwise the order stays in
//!    flight, its exposure counted.
//! 5. A noop without a reply by its own deadline (the reply was lost) is sent again, same
//!    nonce: it still can never execute anything, and if the first copy landed the second is
//!    refused as a duplicate, which leads to the `orderStatus` query of step 4 (`unknownOid`:
//!    never executed). So no order stays in flight, nor any slot busy, for a lost reply.
//!
//! Owns the ladder and the ids in flight. Never allocates after start-up (the ladder's bytes
//! are rendered in [`HyperliquidOrders::new`]), never panics on a reply (malformed ones are
//! counted), never reports an order twice.

use keel_feeds::clock;
use keel_feeds::event::{DisconnectReason, MarketEvent, Side, Venue};
use keel_feeds::net::{Outbox, Session};
use keel_feeds::venues::json::{JsonError, Scanner};

use super::PresignedPair;
use crate::exec::race::CopyOutcome;
use crate::exec::{Fill, FillStatus, HedgeIntent};
use crate::pipeline::ring::{Consumer, Producer};

/// Error code of a [`Fill`] refused because its nonce was already spent (or out of the
/// venue's window): a race's duplicate.
pub const ERR_NONCE: i32 = -7001;
/// Error code of a `status: err` reply for another reason (signature, unknown signer, ...).
pub const ERR_VENUE: i32 = -7002;
/// Error code of an order-status `error` (e.g. an IOC that found no liquidity).
pub const ERR_ORDER: i32 = -7003;
/// Request ids at or above this are `orderStatus` queries (entry k: this + k).
const QUERY_ID: u64 = 1 << 62;

/// What to do with a ladder entry. Fixed size, `Copy`, for a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HlCommand {
    /// Ladder index.
    pub entry: u32,
    /// Send the noop (void) instead of the order.
    pub void: bool,
}

/// Counters of the session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HlCounters {
    /// Orders written.
    pub orders_sent: u64,
    /// Coin filled, signed (buys > 0), in units of 1e-8 coin (the wire's finest decimal).
    pub filled_e8: i64,
    /// Noops written (voids and timeouts).
    pub noops_sent: u64,
    /// Noops the venue accepted: their nonce can never execute an order.
    pub voided: u64,
    /// Noops refused for their nonce (the order, or a copy, landed first).
    pub void_refused: u64,
    /// Orders that timed out (their noop was sent).
    pub timeouts: u64,
    /// Orders that rest on the book (accepted, nothing filled yet).
    pub resting: u64,
    /// Orders that landed (their noop was refused) and whose reply has not come.
    pub landed_unknown: u64,
    /// Replies that could not be parsed.
    pub malformed: u64,
    /// Well-formed replies for no request in flight.
    pub unmatched: u64,
    /// Commands for an entry outside the ladder.
    pub bad_commands: u64,
    /// `orderStatus` queries posted.
    pub queries: u64,
    /// Noops sent again after no reply within the timeout (same nonce: a second copy is
    /// refused as a duplicate if the first landed, which settles it like a refused noop).
    pub noop_resends: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum OrderState {
    #[default]
    Armed,
    /// Written (0 until flushed), waiting for its reply.
    InFlight {
        sent_ns: u64,
        deadline_ns: u64,
    },
    Resolved,
}

struct Entry {
    intent: HedgeIntent,
    order_post: Vec<u8>,
    noop_post: Vec<u8>,
    /// The `orderStatus` post by client order id (empty: no query possible).
    query_post: Vec<u8>,
    /// The order's client order id (`0x` + 32 hex digits), if it has one.
    cloid: Option<String>,
    order: OrderState,
    noop_pending: bool,
    /// When a noop without a reply is sent again (its reply may have been lost).
    noop_deadline_ns: u64,
    /// The noop was refused: the order landed; ask for it instead of voiding again.
    landed: bool,
}

/// The Hyperliquid order session.
pub struct HyperliquidOrders {
    commands: Consumer<HlCommand>,
    fills: Producer<Fill>,
    ladder: Vec<Entry>,
    backlog: Vec<Fill>,
    just_sent: Vec<u32>,
    timeout_ns: u64,
    counters: HlCounters,
    /// `"0x…"` of the account queried by `orderStatus` (empty: no queries).
    user_hex: Vec<u8>,
}

/// Room reserved per rendered `post` of a reusable slot ([`HyperliquidOrders::with_slots`]):
/// an order action's body is about 400 bytes.
const SLOT_POST_BYTES: usize = 1024;

/// Appends `n` in decimal without allocating (beyond `buf`'s capacity).
fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        if let Some(d) = tmp.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    buf.extend_from_slice(tmp.get(i..).unwrap_or(&[]));
}

/// Renders `{"method":"post","id":ID,"request":{"type":"action","payload":BODY}}` into `out`.
fn render_post(out: &mut Vec<u8>, id: u64, body: &[u8]) {
    out.clear();
    out.extend_from_slice(br#"{"method":"post","id":"#);
    push_u64(out, id);
    out.extend_from_slice(br#","request":{"type":"action","payload":"#);
    out.extend_from_slice(body);
    out.extend_from_slice(b"}}");
}

impl HyperliquidOrders {
    /// A session over `ladder`: each entry's intent (what it trades, for the [`Fill`]) and its
    /// pre-signed pair. Renders every `post` message now.
    pub fn new(
        commands: Consumer<HlCommand>,
        fills: Producer<Fill>,
        ladder: Vec<(HedgeIntent, PresignedPair)>,
        timeout_ns: u64,
    ) -> Self {
        let n = ladder.len();
        let ladder = ladder
            .into_iter()
            .enumerate()
            .map(|(k, (intent, pair))| {
                // Start-up: the client order id is read back from the signed body.
                let cloid = serde_json::from_slice::<serde_json::Value>(&pair.order.body)
                    .ok()
                    .and_then(|v| v["action"]["orders"][0]["c"].as_str().map(str::to_string));
                Entry {
                    intent,
                    order_post: pair.order.ws_post(2 * k as u64),
                    noop_post: pair.noop.ws_post(2 * k as u64 + 1),
                    query_post: Vec::new(),
                    cloid,
                    order: OrderState::Armed,
                    noop_pending: false,
                    noop_deadline_ns: 0,
                    landed: false,
                }
            })
            .collect();
        Self {
            commands,
            fills,
            ladder,
            backlog: Vec::with_capacity(2 * n + 64),
            just_sent: Vec::with_capacity(2 * n + 64),
            timeout_ns,
            counters: HlCounters::default(),
            user_hex: Vec::new(),
        }
    }

    /// A session of `slots` empty, reusable entries, each loaded with a freshly signed pair
    /// just before it is fired ([`Self::load`]): the ladder lives elsewhere (a signer keeps it
    /// fresh) and this session only tracks the orders in flight. Reserves every buffer now.
    pub fn with_slots(
        commands: Consumer<HlCommand>,
        fills: Producer<Fill>,
        slots: usize,
        timeout_ns: u64,
    ) -> Self {
        let mut s = Self::new(commands, fills, Vec::new(), timeout_ns);
        s.ladder = (0..slots)
            .map(|_| Entry {
                intent: HedgeIntent {
                    trace: Default::default(),
                    id: 0,
                    amount: 0.0,
                    ref_price: f64::NAN,
                    coin_delta: 0.0,
                    instrument: keel_feeds::instrument::InstrumentId(0),
                    side: Side::Buy,
                    venue: Venue::Hyperliquid,
                },
                order_post: Vec::with_capacity(SLOT_POST_BYTES),
                noop_post: Vec::with_capacity(SLOT_POST_BYTES),
                query_post: Vec::with_capacity(SLOT_POST_BYTES),
                cloid: Some(String::with_capacity(40)),
                order: OrderState::Resolved,
                noop_pending: false,
                noop_deadline_ns: 0,
                landed: false,
            })
            .collect();
        s.backlog = Vec::with_capacity(2 * slots + 64);
        s.just_sent = Vec::with_capacity(2 * slots + 64);
        s
    }

    /// A slot free for [`Self::load`]: its last order resolved and no noop awaiting a reply.
    pub fn free_slot(&self) -> Option<usize> {
        self.ladder
            .iter()
            .position(|e| e.order == OrderState::Resolved && !e.noop_pending)
    }

    /// Loads slot `k` with `intent` and a signed pair's `/exchange` bodies (`cloid`: the
    /// order's client order id, `0x` + 32 hex digits, for `orderStatus` queries): renders
    /// its `post` messages into the slot's reserved buffers. False (nothing changed) if the
    /// slot is not free or out of range. Allocation-free while the bodies fit the reserve.
    pub fn load(
        &mut self,
        k: usize,
        intent: HedgeIntent,
        order_body: &[u8],
        noop_body: &[u8],
        cloid: &str,
    ) -> bool {
        let user_hex = &self.user_hex;
        let Some(e) = self.ladder.get_mut(k) else {
            return false;
        };
        if e.order != OrderState::Resolved || e.noop_pending {
            return false;
        }
        e.intent = intent;
        render_post(&mut e.order_post, 2 * k as u64, order_body);
        render_post(&mut e.noop_post, 2 * k as u64 + 1, noop_body);
        let c = e.cloid.get_or_insert_with(String::new);
        c.clear();
        c.push_str(cloid);
        e.query_post.clear();
        if !user_hex.is_empty() && !cloid.is_empty() {
            let q = &mut e.query_post;
            q.extend_from_slice(br#"{"method":"post","id":"#);
            push_u64(q, QUERY_ID + k as u64);
            q.extend_from_slice(
                br#","request":{"type":"info","payload":{"type":"orderStatus","user":""#,
            );
            q.extend_from_slice(user_hex);
            q.extend_from_slice(br#"","oid":""#);
            q.extend_from_slice(cloid.as_bytes());
            q.extend_from_slice(br#""}}}"#);
        }
        e.order = OrderState::Armed;
        e.landed = false;
        true
    }

    /// Answers `intent` with a `Rejected` fill carrying `code` without sending anything (the
    /// exec side refused it: no fresh rung, stale nonce...).
    pub fn refuse(&mut self, intent: &HedgeIntent, code: i32) {
        let now = clock::now_ns();
        let mut trace = intent.trace;
        trace.sent_ns = now;
        self.deliver(Fill {
            trace,
            intent_id: intent.id,
            filled: 0.0,
            price: f64::NAN,
            intent_coin_delta: intent.coin_delta,
            done_ns: now,
            instrument: intent.instrument,
            error_code: code,
            status: FillStatus::Rejected,
        });
    }

    /// Asks `orderStatus` (as `user`, the account that owns the orders) for orders that landed
    /// without a reply; renders every query now.
    pub fn with_status_queries(mut self, user: alloy_primitives::Address) -> Self {
        self.user_hex = format!("{user:#x}").into_bytes();
        for (k, e) in self.ladder.iter_mut().enumerate() {
            if let Some(c) = e.cloid.as_ref().filter(|c| !c.is_empty()) {
                e.query_post = format!(
                    r#"{{"method":"post","id":{},"request":{{"type":"info","payload":{{"type":"orderStatus","user":"{user:#x}","oid":"{c}"}}}}}}"#,
                    QUERY_ID + k as u64
                )
                .into_bytes();
            }
        }
        self
    }

    /// Counters so far.
    pub fn counters(&self) -> HlCounters {
        self.counters
    }

    /// Orders sent whose outcome is not known yet.
    pub fn in_flight(&self) -> usize {
        self.ladder
            .iter()
            .filter(|e| matches!(e.order, OrderState::InFlight { .. }))
            .count()
    }

    /// Queues entry `k`'s order (the hot path: pre-rendered bytes into the outbox).
    pub fn fire(&mut self, k: usize, out: &mut Outbox<'_>) -> bool {
        let Some(e) = self.ladder.get_mut(k) else {
            self.counters.bad_commands += 1;
            return false;
        };
        out.send_text(&e.order_post);
        if e.order == OrderState::Armed {
            e.order = OrderState::InFlight {
                sent_ns: 0,
                deadline_ns: u64::MAX,
            };
        }
        self.counters.orders_sent += 1;
        self.just_sent.push(k as u32);
        true
    }

    fn void(&mut self, k: usize, out: &mut Outbox<'_>) -> bool {
        let Some(e) = self.ladder.get_mut(k) else {
            self.counters.bad_commands += 1;
            return false;
        };
        out.send_text(&e.noop_post);
        e.noop_pending = true;
        e.noop_deadline_ns = clock::now_ns().saturating_add(self.timeout_ns);
        self.counters.noops_sent += 1;
        true
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

    fn resolve(&mut self, k: usize, filled: f64, price: f64, status: FillStatus, code: i32) {
        let Some(e) = self.ladder.get_mut(k) else {
            return;
        };
        let OrderState::InFlight { sent_ns, .. } = e.order else {
            return;
        };
        e.order = OrderState::Resolved;
        let intent = e.intent;
        let sign = match intent.side {
            Side::Buy => 1.0,
            Side::Sell => -1.0,
        };
        let filled = if filled.is_finite() {
            filled.abs().min(intent.amount)
        } else {
            0.0
        };
        let mut trace = intent.trace;
        trace.sent_ns = sent_ns;
        self.counters.filled_e8 += (sign * filled * 1e8).round() as i64;
        self.deliver(Fill {
            trace,
            intent_id: intent.id,
            filled: sign * filled,
            price: if filled > 0.0 { price } else { f64::NAN },
            intent_coin_delta: intent.coin_delta,
            done_ns: clock::now_ns(),
            instrument: intent.instrument,
            error_code: code,
            status,
        });
    }

    fn on_status(&mut self, k: usize, status: InfoStatus) {
        let Some(e) = self.ladder.get(k) else {
            self.counters.unmatched += 1;
            return;
        };
        if !matches!(e.order, OrderState::InFlight { .. }) {
            self.counters.unmatched += 1;
            return;
        }
        match status {
            InfoStatus::Final { executed, limit_px } => {
                let st = if executed <= 0.0 {
                    FillStatus::Rejected
                } else if executed + 1e-12 >= e.intent.amount {
                    FillStatus::Filled
                } else {
                    FillStatus::Partial
                };
                let code = if executed > 0.0 { 0 } else { ERR_ORDER };
                self.resolve(k, executed, limit_px, st, code);
            }
            InfoStatus::Unknown => self.resolve(k, 0.0, f64::NAN, FillStatus::NotFound, 0),
            // Still open (or the query failed): ask again after the next timeout.
            InfoStatus::Open => {}
        }
    }

    fn on_reply(&mut self, id: u64, outcome: PostOutcome) {
        let k = (id / 2) as usize;
        let is_noop = id % 2 == 1;
        let Some(e) = self.ladder.get_mut(k) else {
            self.counters.unmatched += 1;
            return;
        };
        if is_noop {
            if !e.noop_pending {
                self.counters.unmatched += 1;
                return;
            }
            e.noop_pending = false;
            let in_flight = matches!(e.order, OrderState::InFlight { .. });
            match outcome {
                PostOutcome::Ok { .. } => {
                    self.counters.voided += 1;
                    // An order still waiting for its reply never executed and never will.
                    if in_flight {
                        self.resolve(k, 0.0, f64::NAN, FillStatus::NotFound, 0);
                    }
                }
                PostOutcome::Err { nonce: true } => {
                    self.counters.void_refused += 1;
                    if in_flight {
                        self.counters.landed_unknown += 1;
                        e.landed = true;
                        // Ask for it at once (the deadline re-arms the query).
                        if let OrderState::InFlight { sent_ns, .. } = e.order
                            && !e.query_post.is_empty()
                        {
                            e.order = OrderState::InFlight {
                                sent_ns,
                                deadline_ns: 0,
                            };
                        }
                    }
                }
                PostOutcome::Err { nonce: false } => {}
                PostOutcome::Info(_) => self.counters.unmatched += 1,
            }
            return;
        }
        if !matches!(e.order, OrderState::InFlight { .. }) {
            self.counters.unmatched += 1;
            return;
        }
        match outcome {
            PostOutcome::Ok {
                status: Some(OrderStatus::Filled { size, price }),
            } => {
                let st = if size + 1e-12 >= e.intent.amount {
                    FillStatus::Filled
                } else {
                    FillStatus::Partial
                };
                self.resolve(k, size, price, st, 0);
            }
            PostOutcome::Ok {
                status: Some(OrderStatus::Resting),
            } => {
                self.counters.resting += 1;
                self.resolve(k, 0.0, f64::NAN, FillStatus::Partial, 0);
            }
            PostOutcome::Ok {
                status: Some(OrderStatus::Error) | None,
            } => self.resolve(k, 0.0, f64::NAN, FillStatus::Rejected, ERR_ORDER),
            PostOutcome::Err { nonce } => {
                let code = if nonce { ERR_NONCE } else { ERR_VENUE };
                self.resolve(k, 0.0, f64::NAN, FillStatus::Rejected, code);
            }
            PostOutcome::Info(_) => self.counters.unmatched += 1,
        }
    }
}

/// The copy outcome a Hyperliquid order's [`Fill`] stands for in a race.
pub fn copy_outcome(fill: &Fill) -> CopyOutcome {
    match fill.status {
        FillStatus::Filled | FillStatus::Partial | FillStatus::Paper => CopyOutcome::Accepted,
        FillStatus::Rejected if fill.error_code == ERR_NONCE => CopyOutcome::Duplicate,
        FillStatus::Rejected | FillStatus::NotFound | FillStatus::Lost => CopyOutcome::Rejected,
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum OrderStatus {
    Filled { size: f64, price: f64 },
    Resting,
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum PostOutcome {
    /// `status: ok`, with the first order status when the response carries statuses.
    Ok { status: Option<OrderStatus> },
    /// `status: err` (or a post `error`); `nonce` when the message is about the nonce.
    Err { nonce: bool },
    /// An info `orderStatus` answer.
    Info(InfoStatus),
}

/// What `orderStatus` says.
#[derive(Clone, Copy, Debug, PartialEq)]
enum InfoStatus {
    /// Filled, cancelled, rejected...: final, with the size executed (`origSz − sz`).
    Final { executed: f64, limit_px: f64 },
    /// Still on the book (or a status not known to be final).
    Open,
    /// `unknownOid`: no such order.
    Unknown,
}

fn mentions_nonce(text: &[u8]) -> bool {
    text.windows(5).any(|w| w.eq_ignore_ascii_case(b"nonce"))
}

/// What the connection received.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Incoming {
    /// A `post` reply: its id and what it says.
    Post(u64, PostOutcome),
    /// A `post` reply without an id or an answer.
    BadPost,
    /// Another channel (`pong`, `subscriptionResponse`, ...).
    Other,
}

/// Parses one message of the connection.
fn parse_message(payload: &[u8]) -> Result<Incoming, JsonError> {
    let mut sc = Scanner::new(payload);
    let mut top = sc.object()?;
    let mut post = false;
    let mut found = None;
    while let Some(k) = top.next(&mut sc)? {
        match k {
            b"channel" => post = sc.str()? == b"post",
            b"data" if sc.peek()? == b'{' => found = parse_post_data(&mut sc)?,
            _ => sc.skip()?,
        }
    }
    sc.end()?;
    Ok(match (post, found) {
        (false, _) => Incoming::Other,
        (true, Some((id, o))) => Incoming::Post(id, o),
        (true, None) => Incoming::BadPost,
    })
}

/// `{"id":N,"response":{"type":"action"|"error","payload":..}}`.
fn parse_post_data(sc: &mut Scanner<'_>) -> Result<Option<(u64, PostOutcome)>, JsonError> {
    let mut id = None;
    let mut outcome = None;
    let mut m = sc.object()?;
    while let Some(k) = m.next(sc)? {
        match k {
            b"id" => id = Some(sc.u64()?),
            b"response" => {
                let mut error = false;
                let mut r = sc.object()?;
                while let Some(k) = r.next(sc)? {
                    match k {
                        b"type" => error = sc.str()? == b"error",
                        b"payload" => {
                            outcome = if sc.peek()? == b'"' {
                                Some(PostOutcome::Err {
                                    nonce: mentions_nonce(sc.str()?),
                                })
                            } else {
                                parse_payload(sc)?
                            }
                        }
                        _ => sc.skip()?,
                    }
                }
                if error && !matches!(outcome, Some(PostOutcome::Err { .. })) {
                    outcome = Some(PostOutcome::Err { nonce: false });
                }
            }
            _ => sc.skip()?,
        }
    }
    Ok(id.zip(outcome))
}

/// The `data` of an info `orderStatus` payload: `{"status":"order","order":{"order":{..,"sz",
/// "origSz","limitPx"},"status":"filled"}}` or `{"status":"unknownOid"}`.
fn parse_info_data(sc: &mut Scanner<'_>) -> Result<Option<InfoStatus>, JsonError> {
    let (mut found, mut unknown) = (false, false);
    let (mut sz, mut orig, mut px) = (f64::NAN, f64::NAN, f64::NAN);
    let mut state: &[u8] = b"";
    let mut d = sc.object()?;
    while let Some(k) = d.next(sc)? {
        match k {
            b"status" => {
                let s = sc.str()?;
                found = s == b"order";
                unknown = s == b"unknownOid";
            }
            b"order" if sc.peek()? == b'{' => {
                let mut o = sc.object()?;
                while let Some(k) = o.next(sc)? {
                    match k {
                        b"status" => state = sc.str()?,
                        b"order" if sc.peek()? == b'{' => {
                            let mut inner = sc.object()?;
                            while let Some(k) = inner.next(sc)? {
                                match k {
                                    b"sz" => sz = sc.f64()?,
                                    b"origSz" => orig = sc.f64()?,
                                    b"limitPx" => px = sc.f64()?,
                                    _ => sc.skip()?,
                                }
                            }
                        }
                        _ => sc.skip()?,
                    }
                }
            }
            _ => sc.skip()?,
        }
    }
    Ok(if unknown {
        Some(InfoStatus::Unknown)
    } else if !found {
        None
    } else if state == b"open" || state == b"triggered" || state.is_empty() {
        Some(InfoStatus::Open)
    } else if sz.is_finite() && orig.is_finite() {
        Some(InfoStatus::Final {
            executed: (orig - sz).max(0.0),
            limit_px: px,
        })
    } else {
        None
    })
}

/// `/exchange`'s answer: `{"status":"ok","response":{"type":"order","data":{"statuses":[..]}}}`,
/// `{"status":"ok","response":{"type":"default"}}` or `{"status":"err","response":"why"}`.
fn parse_payload(sc: &mut Scanner<'_>) -> Result<Option<PostOutcome>, JsonError> {
    let mut ok = None;
    let mut nonce = false;
    let mut status = None;
    let mut info = None;
    let mut m = sc.object()?;
    while let Some(k) = m.next(sc)? {
        match k {
            b"status" => ok = Some(sc.str()? == b"ok"),
            b"response" => match sc.peek()? {
                b'"' => nonce = mentions_nonce(sc.str()?),
                b'{' => status = parse_response(sc)?,
                _ => sc.skip()?,
            },
            // An info answer (`{"type":"orderStatus","data":{..}}`).
            b"data" if sc.peek()? == b'{' => info = parse_info_data(sc)?,
            _ => sc.skip()?,
        }
    }
    if let Some(i) = info {
        return Ok(Some(PostOutcome::Info(i)));
    }
    // A payload without a status is not an answer.
    Ok(ok.map(|ok| {
        if ok {
            PostOutcome::Ok { status }
        } else {
            PostOutcome::Err { nonce }
        }
    }))
}

fn parse_response(sc: &mut Scanner<'_>) -> Result<Option<OrderStatus>, JsonError> {
    let mut status = None;
    let mut m = sc.object()?;
    while let Some(k) = m.next(sc)? {
        match k {
            b"data" if sc.peek()? == b'{' => {
                let mut d = sc.object()?;
                while let Some(k) = d.next(sc)? {
                    match k {
                        b"statuses" => {
                            let mut items = sc.array()?;
                            while items.next(sc)? {
                                if status.is_none() {
                                    status = Some(parse_status(sc)?);
                                } else {
                                    sc.skip()?;
                                }
                            }
                        }
                        _ => sc.skip()?,
                    }
                }
            }
            _ => sc.skip()?,
        }
    }
    Ok(status)
}

/// `{"filled":{"totalSz","avgPx","oid"}}`, `{"resting":{"oid"}}` or `{"error":"why"}`.
fn parse_status(sc: &mut Scanner<'_>) -> Result<OrderStatus, JsonError> {
    let mut out = OrderStatus::Error;
    let mut m = sc.object()?;
    while let Some(k) = m.next(sc)? {
        match k {
            b"filled" => {
                let (mut size, mut price) = (0.0, f64::NAN);
                let mut f = sc.object()?;
                while let Some(k) = f.next(sc)? {
                    match k {
                        b"totalSz" => size = sc.f64()?,
                        b"avgPx" => price = sc.f64()?,
                        _ => sc.skip()?,
                    }
                }
                out = OrderStatus::Filled { size, price };
            }
            b"resting" => {
                sc.skip()?;
                out = OrderStatus::Resting;
            }
            _ => sc.skip()?,
        }
    }
    Ok(out)
}

impl Session for HyperliquidOrders {
    fn venue(&self) -> Venue {
        Venue::Hyperliquid
    }

    fn on_open(&mut self, _out: &mut Outbox<'_>) {}

    fn on_message(
        &mut self,
        payload: &[u8],
        _recv_ts_ns: u64,
        _out: &mut Outbox<'_>,
        _emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<(), DisconnectReason> {
        match parse_message(payload) {
            Ok(Incoming::Post(id, PostOutcome::Info(status))) if id >= QUERY_ID => {
                self.on_status((id - QUERY_ID) as usize, status)
            }
            Ok(Incoming::Post(id, _)) if id >= QUERY_ID => {}
            Ok(Incoming::Post(id, outcome)) => self.on_reply(id, outcome),
            Ok(Incoming::Other) => {}
            Ok(Incoming::BadPost) | Err(_) => self.counters.malformed += 1,
        }
        Ok(())
    }

    fn poll_outgoing(&mut self, out: &mut Outbox<'_>) -> bool {
        self.flush_backlog();
        self.just_sent.clear();
        let mut wrote = false;
        while let Some(c) = self.commands.pop() {
            wrote |= if c.void {
                self.void(c.entry as usize, out)
            } else {
                self.fire(c.entry as usize, out)
            };
        }
        // Orders past their deadline are voided with their noop (once).
        let now = clock::now_ns();
        for k in 0..self.ladder.len() {
            let e = &mut self.ladder[k];
            // A noop without a reply by its deadline is sent again: the same nonce, so it can
            // never execute anything; a duplicate refusal then asks for the order.
            if e.noop_pending && now > e.noop_deadline_ns {
                out.send_text(&e.noop_post);
                e.noop_deadline_ns = now.saturating_add(self.timeout_ns);
                self.counters.noops_sent += 1;
                self.counters.noop_resends += 1;
                wrote = true;
                continue;
            }
            let e = &self.ladder[k];
            if let OrderState::InFlight {
                sent_ns,
                deadline_ns,
            } = e.order
                && sent_ns != 0
                && now > deadline_ns
                && !e.noop_pending
            {
                if e.landed {
                    // The order landed: ask for it (again at each timeout) if we can.
                    if !e.query_post.is_empty() {
                        out.send_text(&e.query_post);
                        self.counters.queries += 1;
                        wrote = true;
                    }
                    self.ladder[k].order = OrderState::InFlight {
                        sent_ns,
                        deadline_ns: now.saturating_add(self.timeout_ns),
                    };
                    continue;
                }
                self.ladder[k].order = OrderState::InFlight {
                    sent_ns,
                    deadline_ns: u64::MAX,
                };
                self.counters.timeouts += 1;
                wrote |= self.void(k, out);
            }
        }
        wrote
    }

    fn on_flushed(&mut self, now_ns: u64) {
        for i in 0..self.just_sent.len() {
            let k = self.just_sent[i] as usize;
            if let Some(e) = self.ladder.get_mut(k)
                && let OrderState::InFlight { sent_ns: 0, .. } = e.order
            {
                e.order = OrderState::InFlight {
                    sent_ns: now_ns,
                    deadline_ns: now_ns.saturating_add(self.timeout_ns),
                };
            }
        }
        self.just_sent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::evm::EvmSigner;
    use crate::exec::hyperliquid::{LimitWire, Network, OrderTypeWire, OrderWire, Tif, presign};
    use crate::pipeline::ring::ring;
    use crate::pipeline::telemetry::TickTrace;
    use keel_feeds::instrument::InstrumentId;
    use keel_feeds::net::ws::{FrameEncoder, parse_client_frames};

    fn vectors_responses() -> Vec<String> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/venues/hyperliquid/signing_vectors.json"
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v["responses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect()
    }

    fn post_reply(id: u64, payload: &str) -> String {
        format!(
            r#"{{"channel":"post","data":{{"id":{id},"response":{{"type":"action","payload":{payload}}}}}}}"#
        )
    }

    fn session(n: usize) -> (HyperliquidOrders, Producer<HlCommand>, Consumer<Fill>) {
        let signer = EvmSigner::from_hex(&format!("0x{}", "22".repeat(32)), "test").unwrap();
        let ladder = (0..n)
            .map(|k| {
                let intent = HedgeIntent {
                    trace: TickTrace::default(),
                    id: 100 + k as u64,
                    amount: 0.02,
                    ref_price: 1_891.0,
                    coin_delta: 0.02,
                    instrument: InstrumentId(0),
                    side: Side::Buy,
                    venue: Venue::Hyperliquid,
                };
                let order = OrderWire {
                    a: 0,
                    b: true,
                    p: "1900".into(),
                    s: "0.02".into(),
                    r: false,
                    t: OrderTypeWire {
                        limit: LimitWire { tif: Tif::Ioc },
                    },
                    c: None,
                };
                (
                    intent,
                    presign(
                        &signer,
                        order,
                        1_700_000_000_000 + k as u64,
                        Network::Mainnet,
                    )
                    .unwrap(),
                )
            })
            .collect();
        let (cp, cc) = ring(8).unwrap();
        let (fp, fc) = ring(8).unwrap();
        (HyperliquidOrders::new(cc, fp, ladder, 50_000_000), cp, fc)
    }

    fn poll(s: &mut HyperliquidOrders) -> Vec<serde_json::Value> {
        let mut enc = FrameEncoder::new();
        let mut buf = Vec::new();
        let mut out = Outbox::new(&mut enc, &mut buf);
        if s.poll_outgoing(&mut out) {
            s.on_flushed(clock::now_ns());
        }
        parse_client_frames(&buf)
            .unwrap()
            .into_iter()
            .map(|(_, _, p)| serde_json::from_slice(&p).unwrap())
            .collect()
    }

    fn reply(s: &mut HyperliquidOrders, text: &str) {
        let mut enc = FrameEncoder::new();
        let mut buf = Vec::new();
        s.on_message(
            text.as_bytes(),
            0,
            &mut Outbox::new(&mut enc, &mut buf),
            &mut |_| {},
        )
        .unwrap();
    }

    #[test]
    fn the_sdk_responses_parse_into_fills() {
        let r = vectors_responses();
        let (mut s, mut cp, mut fc) = session(3);
        for k in 0..3 {
            cp.push(HlCommand {
                entry: k,
                void: false,
            })
            .unwrap();
        }
        let posts = poll(&mut s);
        assert_eq!(posts.len(), 3);
        assert_eq!(posts[1]["id"], 2);
        assert_eq!(
            posts[1]["request"]["payload"]["nonce"],
            1_700_000_000_001u64
        );
        reply(&mut s, &post_reply(0, &r[0]));
        reply(&mut s, &post_reply(2, &r[1]));
        reply(&mut s, &post_reply(4, &r[2]));
        let a = fc.pop().unwrap();
        assert_eq!((a.status, a.filled), (FillStatus::Partial, 0.0));
        assert_eq!(s.counters().resting, 1);
        let b = fc.pop().unwrap();
        assert_eq!(
            (b.status, b.filled, b.price),
            (FillStatus::Filled, 0.02, 1891.4)
        );
        assert_eq!(copy_outcome(&b), CopyOutcome::Accepted);
        let c = fc.pop().unwrap();
        assert_eq!((c.status, c.error_code), (FillStatus::Rejected, ERR_ORDER));
        assert_eq!(s.in_flight(), 0);
        // A second reply for a resolved order is unmatched, never a second fill.
        reply(&mut s, &post_reply(2, &r[1]));
        assert!(fc.pop().is_none());
        assert_eq!(s.counters().unmatched, 1);
    }

    #[test]
    fn nonce_refusals_are_duplicates_and_bad_replies_are_counted() {
        let (mut s, mut cp, mut fc) = session(1);
        cp.push(HlCommand {
            entry: 0,
            void: false,
        })
        .unwrap();
        poll(&mut s);
        for bad in [
            "",
            "{",
            r#"{"channel":"post","data":{"id":0,"response":{"type":"action","payload":{"response":{}}}}}"#,
            r#"{"channel":"post","data":{"id":"x"}}"#,
        ] {
            reply(&mut s, bad);
        }
        reply(&mut s, r#"{"channel":"pong"}"#);
        assert_eq!(s.counters().malformed, 4);
        assert_eq!(s.in_flight(), 1);
        reply(
            &mut s,
            &post_reply(
                0,
                r#"{"status":"err","response":"Invalid nonce: duplicate nonce 1700000000000"}"#,
            ),
        );
        let f = fc.pop().unwrap();
        assert_eq!((f.status, f.error_code), (FillStatus::Rejected, ERR_NONCE));
        assert_eq!(copy_outcome(&f), CopyOutcome::Duplicate);
        cp.push(HlCommand {
            entry: 7,
            void: false,
        })
        .unwrap();
        poll(&mut s);
        assert_eq!(s.counters().bad_commands, 1);
    }

    /// Every truncation and many byte flips of real replies: never a panic, never more than
    /// one outcome per order.
    #[test]
    fn mutated_replies_never_panic_or_resolve_twice() {
        let r = vectors_responses();
        let mut seed = 0x0fed_cba9_8765_4321u64;
        for g in [
            post_reply(0, &r[1]),
            post_reply(0, &r[0]),
            post_reply(0, r#"{"status":"err","response":"Invalid nonce"}"#),
        ] {
            let (mut s, mut cp, mut fc) = session(1);
            cp.push(HlCommand {
                entry: 0,
                void: false,
            })
            .unwrap();
            poll(&mut s);
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
                s.on_message(v, 0, &mut Outbox::new(&mut enc, &mut buf), &mut |_| {})
                    .unwrap();
            }
            let mut outcomes = 0;
            while fc.pop().is_some() {
                outcomes += 1;
            }
            assert!(outcomes <= 1, "{g}: {outcomes} outcomes");
        }
    }

    #[test]
    fn a_landed_order_is_asked_for_with_order_status() {
        let (s, mut cp, mut fc) = session(2);
        let user = alloy_primitives::Address::repeat_byte(0x11);
        let mut s = s.with_status_queries(user);
        // The ladder's orders carry no client order id: nothing to ask by, it stays in flight.
        cp.push(HlCommand {
            entry: 0,
            void: false,
        })
        .unwrap();
        poll(&mut s);
        std::thread::sleep(std::time::Duration::from_millis(60));
        poll(&mut s);
        reply(
            &mut s,
            &post_reply(
                1,
                r#"{"status":"err","response":"Invalid nonce: duplicate nonce"}"#,
            ),
        );
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert!(poll(&mut s).is_empty());
        assert_eq!((s.counters().landed_unknown, s.in_flight()), (1, 1));
        assert!(fc.pop().is_none());
        // The info answers, in the venue's key order and sorted: final, open, unknown.
        let filled = r#"{"channel":"post","data":{"id":QID,"response":{"type":"info","payload":{"type":"orderStatus","data":{"status":"order","order":{"order":{"coin":"BTC","side":"B","limitPx":"1900.0","sz":"0.0","oid":7,"origSz":"0.02","cloid":null},"status":"filled","statusTimestamp":1}}}}}}"#;
        let sorted: serde_json::Value = serde_json::from_str(&filled.replace("QID", "1")).unwrap();
        for text in [filled.replace("QID", "1"), sorted.to_string()] {
            match parse_message(text.as_bytes()).unwrap() {
                Incoming::Post(1, PostOutcome::Info(InfoStatus::Final { executed, limit_px })) => {
                    assert!((executed - 0.02).abs() < 1e-12 && limit_px == 1900.0)
                }
                other => panic!("{other:?} from {text}"),
            }
        }
        s.on_status(0, InfoStatus::Open);
        assert_eq!(s.in_flight(), 1);
        s.on_status(0, InfoStatus::Unknown);
        assert_eq!(fc.pop().unwrap().status, FillStatus::NotFound);
        let unknown = r#"{"channel":"post","data":{"id":3,"response":{"type":"info","payload":{"type":"orderStatus","data":{"status":"unknownOid"}}}}}"#;
        assert_eq!(
            parse_message(unknown.as_bytes()).unwrap(),
            Incoming::Post(3, PostOutcome::Info(InfoStatus::Unknown))
        );
    }

    #[test]
    fn an_unanswered_order_is_voided_by_its_noop() {
        let (mut s, mut cp, mut fc) = session(1);
        cp.push(HlCommand {
            entry: 0,
            void: false,
        })
        .unwrap();
        poll(&mut s);
        std::thread::sleep(std::time::Duration::from_millis(60));
        let posts = poll(&mut s);
        assert_eq!(posts.len(), 1);
        assert_eq!(posts[0]["id"], 1);
        assert_eq!(posts[0]["request"]["payload"]["action"]["type"], "noop");
        assert_eq!(s.counters().timeouts, 1);
        reply(
            &mut s,
            &post_reply(1, r#"{"status":"ok","response":{"type":"default"}}"#),
        );
        let f = fc.pop().unwrap();
        assert_eq!(f.status, FillStatus::NotFound);
        assert_eq!(s.counters().voided, 1);
        // The order's late reply (refused: its nonce went to the noop) changes nothing.
        reply(
            &mut s,
            &post_reply(
                0,
                r#"{"status":"err","response":"Invalid nonce: duplicate nonce"}"#,
            ),
        );
        assert!(fc.pop().is_none());
    }

    #[test]
    fn a_noop_whose_reply_is_lost_is_sent_again_and_settles_the_order() {
        let (mut s, mut cp, mut fc) = session(1);
        cp.push(HlCommand {
            entry: 0,
            void: false,
        })
        .unwrap();
        poll(&mut s);
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert_eq!(poll(&mut s)[0]["id"], 1, "the timeout's noop");
        // Its reply is lost: after another timeout the same noop goes again (same nonce).
        std::thread::sleep(std::time::Duration::from_millis(60));
        let again = poll(&mut s);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0]["id"], 1);
        assert_eq!(again[0]["request"]["payload"]["action"]["type"], "noop");
        assert_eq!(s.counters().noop_resends, 1);
        assert!(fc.pop().is_none());
        // The first noop had landed: the second is a duplicate; nothing is reported yet (the
        // order may have landed first), and without status queries it stays in flight.
        reply(
            &mut s,
            &post_reply(
                1,
                r#"{"status":"err","response":"Invalid nonce: duplicate nonce"}"#,
            ),
        );
        assert_eq!(s.counters().void_refused, 1);
        assert_eq!(s.in_flight(), 1);
        assert!(fc.pop().is_none());
        // Never a third noop while none is pending.
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert!(
            poll(&mut s)
                .iter()
                .all(|p| p["request"]["payload"]["action"]["type"] != "noop")
        );
    }
}
