//! The EVM exec path: a hedge decision → the nearest pre-signed rung → its request bytes
//! written on every route's warm keep-alive connection at once → replies raced in the
//! [`RaceBook`] → one [`Fill`] per decision back to the pricer.
//!
//! # Algorithm (one decision)
//! 1. Nonce: the exec side's next nonce comes from the signer's first [`ChainView`] (pending
//!    nonce read from the chain before the first hedge); until then every decision is refused
//!    ([`Refusal::NonceUnknown`]). A chain view whose pending nonce is ahead is adopted (never
//!    backwards).
//! 2. One decision per nonce: while a decision at the current nonce is unresolved, or held
//!    with an unknown fate, the next one is refused ([`Refusal::NonceBusy`]): a second
//!    transaction at the same nonce would replace the first.
//! 3. Ladder: the shelf's ladder at the next nonce must be unfired, signed with a fee cap at or
//!    above the latest base fee and (with builders) target a block after the head; otherwise
//!    the decision is refused with the reason ([`Refusal::NoLadder`], [`Refusal::FeeStale`],
//!    [`Refusal::BlockStale`]). A ladder signed at a stale nonce is never sent.
//! 4. Rung: the nearest size to the intent not above `max_order` ([`Refusal::OverLimit`]).
//! 5. Fire: the ladder is claimed ([`Ladder::try_fire`]) and the rung's pre-built request is
//!    written on every route whose connection is up and idle, each independently (a route down
//!    or still answering an earlier copy is skipped and counted — HTTP/1.1 answers in order, so
//!    a copy queued behind a slow one would only wait for it; none at all:
//!    [`Refusal::NoRoute`]).
//! 6. Replies, in any order: [`classify`] → [`RaceBook::outcome`]. The first acceptance wins:
//!    a [`FillStatus::Filled`] fill at the rung's size and the intent's reference price, and
//!    the next nonce is `n + 1` (whose ladder the signer has already signed: the next decision
//!    never waits for the slowest copy). Every copy refused: a [`FillStatus::Rejected`] fill,
//!    the nonce stays. Some copy timed out or failed in transport and none was accepted: the
//!    fate is unknown (a copy may still land), so the decision is held and the signer asked for
//!    a nonce reading started after `reconcile_grace`; a pending nonce past `n` means it
//!    landed ([`FillStatus::Filled`], late), otherwise [`FillStatus::NotFound`]. When an
//!    uncertain copy was a bundle, the reading must also show the head at or past its target
//!    block: a bundle a builder holds can still land in that block, unseen by the node before.
//! 7. Confirmation of a builder's acceptance: a bundle accepted by a builder is in no mempool
//!    the node can see and lands only if that builder wins its target block. The decision is
//!    watched: a chain view with the pending nonce past `n` confirms it; a view whose head is
//!    at or past the target block with the nonce not past `n` (the signer reads the head
//!    first, then the nonce) proves it was never included: a [`FillStatus::Lost`] fill undoes
//!    the earlier one, and the next nonce goes back to `n` (the signer re-signs there). A
//!    copy an RPC node accepted is in that node's mempool (the pending nonce shows it), so a
//!    decision won by an RPC route is not watched.
//!
//! # What a fill means here
//! On chain, "accepted" is acceptance by a node's mempool or a builder, not inclusion in a
//! block: the fill reports the hedge as in flight to inclusion, at the rung's size (signed: a buy is
//! positive) and the decision's reference price (`HedgeIntent::ref_price`; the executed price is
//! known only from the receipt). Each decision gets exactly one fill (the race table resolves
//! each decision once); copies that answer after the win are only counted. Refused decisions
//! get a `Rejected` fill with `error_code` = [`Refusal::code`] so the pricer releases what it
//! counted in flight.
//!
//! # Never
//! After start-up nothing here allocates (fills queue in a deque reserved at start-up; the
//! race table, copy tables and connections are fixed-size), locks or formats: loads from the
//! shelf are arc-swap guards, replies are parsed into borrowed fields.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alloy_primitives::B256;
use keel_feeds::clock;
use keel_feeds::event::Side;
use keel_feeds::net::BackoffConfig;
use keel_feeds::net::keepalive::{
    HttpEvent, HttpPool, KeepAliveConfig, KeepAliveSetupError, RequestError,
};

use super::ladder::{Ladder, RouteKind, RouteTarget};
use super::reply::classify;
use super::shelf::{ChainView, LadderShelf};
use crate::exec::race::{CopyOutcome, RaceBook, Resolution, RouteStats};
use crate::exec::{Fill, FillStatus, HedgeIntent};
use crate::pipeline::ring::{Consumer, Producer};
use crate::pipeline::{Tile, TileError};

/// Decisions in flight at most (copies still out); one per nonce is fired at a time, the rest
/// are resolved decisions whose slow copies have not answered yet.
const SLOTS: usize = 16;
/// Copies outstanding per route at most (the keep-alive pipelining depth).
const PIPELINE: usize = 16;
/// Fills queued for a full ring at most before start-up capacity would be exceeded.
const OUTBOX: usize = 1024;
/// Builder-won decisions watched for inclusion at most; a decision is refused
/// ([`Refusal::NonceBusy`]) while the table is full.
const WATCHED: usize = 16;

/// Why a decision was refused before anything was sent.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No chain view yet: the nonce has not been read from the chain.
    NonceUnknown = 0,
    /// A decision at the current nonce is unresolved or held.
    NonceBusy = 1,
    /// No unfired ladder at the next nonce on the shelf.
    NoLadder = 2,
    /// The ladder's fee cap is below the latest base fee.
    FeeStale = 3,
    /// The ladder's bundles target a block that is no longer in the future.
    BlockStale = 4,
    /// No rung within the risk limit (or the amount is not a positive number).
    OverLimit = 5,
    /// No route could take the request (all down or full).
    NoRoute = 6,
    /// The race table is full.
    TableFull = 7,
}

impl Refusal {
    /// Every reason, in counter order.
    pub const ALL: [Refusal; 8] = [
        Refusal::NonceUnknown,
        Refusal::NonceBusy,
        Refusal::NoLadder,
        Refusal::FeeStale,
        Refusal::BlockStale,
        Refusal::OverLimit,
        Refusal::NoRoute,
        Refusal::TableFull,
    ];

    /// Lower-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::NonceUnknown => "nonce_unknown",
            Refusal::NonceBusy => "nonce_busy",
            Refusal::NoLadder => "no_ladder",
            Refusal::FeeStale => "fee_stale",
            Refusal::BlockStale => "block_stale",
            Refusal::OverLimit => "over_limit",
            Refusal::NoRoute => "no_route",
            Refusal::TableFull => "table_full",
        }
    }

    /// The `Fill::error_code` of a refused decision: −1000 − reason.
    pub fn code(self) -> i32 {
        -1000 - self as i32
    }
}

/// Counters shared with the status line and tests (relaxed atomics).
#[derive(Debug, Default)]
pub struct EvmExecCounters {
    /// Decisions taken off the ring.
    pub decisions: AtomicU64,
    /// Decisions fired (at least one copy written).
    pub fired: AtomicU64,
    /// Copies written.
    pub copies: AtomicU64,
    /// Routes skipped at fire time (down or pipeline full).
    pub skipped_routes: AtomicU64,
    /// Decisions won (fill at once).
    pub won: AtomicU64,
    /// Decisions whose copies were all refused.
    pub failed: AtomicU64,
    /// Decisions held with an unknown fate.
    pub held: AtomicU64,
    /// Held decisions found landed by the nonce reading (late fills).
    pub late_fills: AtomicU64,
    /// Held decisions found not landed.
    pub not_found: AtomicU64,
    /// Builder-won decisions whose transaction the chain's pending nonce then showed.
    pub confirmed: AtomicU64,
    /// Builder-won decisions never included (target block passed, nonce not moved): each
    /// undone by a [`FillStatus::Lost`] fill.
    pub lost: AtomicU64,
    /// Refusals by [`Refusal`] (index = reason as usize).
    pub refused: [AtomicU64; 8],
    /// Fills handed to the pricer.
    pub fills_out: AtomicU64,
    /// Connection drops seen.
    pub disconnects: AtomicU64,
}

impl EvmExecCounters {
    /// Count of refusals for one reason.
    pub fn refusals(&self, r: Refusal) -> u64 {
        self.refused[r as usize].load(Ordering::Relaxed)
    }
}

/// Settings of the EVM exec path.
#[derive(Clone, Debug)]
pub struct EvmExecConfig {
    /// Largest rung allowed per order, intent unit (the risk limit per order).
    pub max_order: f64,
    /// How long after an unknown-fate decision the nonce reading must start.
    pub reconcile_grace: Duration,
    /// Per-request timeout on every route (also the race deadline).
    pub request_timeout: Duration,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Reconnection backoff of every route.
    pub backoff: BackoffConfig,
}

impl Default for EvmExecConfig {
    fn default() -> Self {
        Self {
            max_order: f64::INFINITY,
            reconcile_grace: Duration::from_millis(200),
            request_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(5),
            backoff: BackoffConfig::default(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Decision {
    intent: HedgeIntent,
    nonce: u64,
    rung_amount: f64,
    /// The block the ladder's bundles target (0 without builder routes).
    target_block: u64,
    /// A copy timed out or failed in transport: its fate is unknown.
    uncertain: bool,
    /// One of those copies was a bundle: it may still land in the target block.
    uncertain_bundle: bool,
    /// Resolved (fill given or decision held).
    done: bool,
}

#[derive(Clone, Copy, Debug)]
struct CopyRec {
    seq: u64,
    decision: u64,
    id: u64,
    hash: Option<B256>,
}

/// Everything but the connections (so the pool's callbacks can borrow it).
struct State {
    shelf: Arc<LadderShelf>,
    race: RaceBook,
    kinds: Vec<RouteKind>,
    copies: Vec<[Option<CopyRec>; PIPELINE]>,
    decisions: [Option<Decision>; SLOTS],
    next_nonce: Option<u64>,
    held: Option<Decision>,
    /// Builder-won decisions not yet seen on chain (step 7).
    watched: [Option<Decision>; WATCHED],
    reconcile_after_ns: u64,
    outbox: VecDeque<Fill>,
    counters: Arc<EvmExecCounters>,
    max_order: f64,
    grace_ns: u64,
    /// Set by [`EvmExec::shutdown`]: our own closes are not drops.
    closing: bool,
}

/// The EVM exec path over warm keep-alive connections (used by [`EvmExecTile`] and the bench).
pub struct EvmExec {
    pool: HttpPool,
    st: State,
    request_timeout: Duration,
}

impl std::fmt::Debug for EvmExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvmExec")
            .field("race", &self.st.race)
            .finish_non_exhaustive()
    }
}

/// The outcome of a copy's transport failure.
fn transport_outcome(e: RequestError) -> CopyOutcome {
    match e {
        RequestError::Timeout => CopyOutcome::Timeout,
        _ => CopyOutcome::Error,
    }
}

impl EvmExec {
    /// Opens a keep-alive connection per route (connected on the first poll; see
    /// [`warm_up`](Self::warm_up)). Routes are in the order the ladders were built for.
    pub fn new(
        routes: &[RouteTarget],
        shelf: Arc<LadderShelf>,
        cfg: &EvmExecConfig,
    ) -> Result<Self, KeepAliveSetupError> {
        let mut pool = HttpPool::new()?;
        let mut names = Vec::new();
        for r in routes {
            let mut kc = KeepAliveConfig::new(&r.url.to_string())?;
            kc.request_timeout = cfg.request_timeout;
            kc.connect_timeout = cfg.connect_timeout;
            kc.max_in_flight = PIPELINE;
            kc.max_response = 64 << 10;
            kc.backoff = cfg.backoff;
            pool.add(kc)?;
            names.push(r.name());
        }
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        // The race deadline is a little past the connection's own request timeout, so the
        // connection reports first and the table's expiry is only a backstop.
        let timeout_ns = u64::try_from(cfg.request_timeout.as_nanos())
            .unwrap_or(u64::MAX / 2)
            .saturating_add(50_000_000);
        Ok(Self {
            pool,
            request_timeout: cfg.request_timeout + Duration::from_millis(50),
            st: State {
                shelf,
                race: RaceBook::new(&name_refs, SLOTS, timeout_ns),
                kinds: routes.iter().map(|r| r.kind).collect(),
                copies: vec![[None; PIPELINE]; routes.len()],
                decisions: [None; SLOTS],
                next_nonce: None,
                held: None,
                watched: [None; WATCHED],
                reconcile_after_ns: 0,
                outbox: VecDeque::with_capacity(OUTBOX),
                counters: Arc::default(),
                max_order: cfg.max_order,
                grace_ns: u64::try_from(cfg.reconcile_grace.as_nanos()).unwrap_or(u64::MAX / 2),
                closing: false,
            },
        })
    }

    /// The counters.
    pub fn counters(&self) -> Arc<EvmExecCounters> {
        self.st.counters.clone()
    }

    /// Per-route statistics (send→ack histograms, outcomes, health).
    pub fn route_stats(&self) -> &[RouteStats] {
        self.st.race.route_stats()
    }

    /// The race deadline: how long a copy may stay unanswered.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The race table.
    pub fn race(&self) -> &RaceBook {
        &self.st.race
    }

    /// The nonce the next decision will use, once known.
    pub fn next_nonce(&self) -> Option<u64> {
        self.st.next_nonce
    }

    /// Connects every route; true if all are warm within `timeout`. Also registers this thread
    /// with the shelf (allocates once).
    pub fn warm_up(&mut self, timeout: Duration) -> std::io::Result<bool> {
        self.st.shelf.warm();
        let st = &mut self.st;
        self.pool.warm_up(timeout, &mut |ev| st.on_http(ev))
    }

    /// Whether route `i`'s connection is warm.
    pub fn route_ready(&self, i: usize) -> bool {
        self.pool.conn(i).is_some_and(|c| c.is_ready())
    }

    /// Drives the connections (waiting up to `timeout` for readiness), the race deadlines and
    /// a held decision's reconciliation.
    pub fn poll(&mut self, timeout: Duration) {
        let st = &mut self.st;
        // An error of the poller itself: nothing to do but try again on the next poll.
        let _ = self.pool.run_once(timeout, &mut |ev| st.on_http(ev));
        let now = clock::now_ns();
        let mut resolved: [Option<(u64, Resolution)>; SLOTS] = [None; SLOTS];
        let mut n = 0;
        self.st.race.expire(now, |d, r| {
            if n < SLOTS {
                resolved[n] = Some((d, r));
                n += 1;
            }
        });
        for (d, r) in resolved.into_iter().flatten() {
            self.st.mark_uncertain(d, None);
            self.st.resolve(d, r, now);
        }
        self.st.reconcile(now);
        self.st.confirm(now);
        self.st.sweep();
    }

    /// Builder-won decisions still waiting to be seen on chain.
    pub fn watched(&self) -> usize {
        self.st.watched.iter().flatten().count()
    }

    /// Takes the next fill for the pricer.
    pub fn pop_fill(&mut self) -> Option<Fill> {
        self.st.outbox.pop_front()
    }

    /// Puts back a fill the ring refused (it goes out first next time).
    pub fn unpop_fill(&mut self, f: Fill) {
        self.st.outbox.push_front(f);
    }

    /// Fills waiting.
    pub fn fills_waiting(&self) -> usize {
        self.st.outbox.len()
    }

    /// Takes one decision: picks the rung and writes its requests on every route that is up.
    /// Returns the rung's size, or the refusal (a `Rejected` fill is queued either way for a
    /// refusal). The hot path: no allocation, no lock.
    pub fn decide(&mut self, intent: &HedgeIntent) -> Result<f64, Refusal> {
        self.st.counters.decisions.fetch_add(1, Ordering::Relaxed);
        let now = clock::now_ns();
        match self.fire(intent, now) {
            Ok(a) => Ok(a),
            Err(r) => {
                self.st.counters.refused[r as usize].fetch_add(1, Ordering::Relaxed);
                let mut trace = intent.trace;
                trace.sent_ns = now;
                self.st.push_fill(Fill {
                    trace,
                    intent_id: intent.id,
                    filled: 0.0,
                    price: f64::NAN,
                    intent_coin_delta: intent.coin_delta,
                    done_ns: now,
                    instrument: intent.instrument,
                    error_code: r.code(),
                    status: FillStatus::Rejected,
                });
                Err(r)
            }
        }
    }

    fn fire(&mut self, intent: &HedgeIntent, now: u64) -> Result<f64, Refusal> {
        let st = &mut self.st;
        let view_guard = st.shelf.view();
        let Some(view) = view_guard.as_deref().copied() else {
            return Err(Refusal::NonceUnknown);
        };
        drop(view_guard);
        let busy = st.held.is_some()
            || st.decisions.iter().flatten().any(|d| !d.done)
            || st.watched.iter().all(Option::is_some);
        let nonce = match st.next_nonce {
            None => view.pending_nonce,
            Some(n) if !busy => n.max(view.pending_nonce),
            Some(n) => n,
        };
        if st.next_nonce != Some(nonce) {
            st.next_nonce = Some(nonce);
            st.shelf.set_exec_next_nonce(nonce);
        }
        if busy {
            return Err(Refusal::NonceBusy);
        }
        let guard = st.shelf.ladder(nonce);
        let Some(ladder) = guard.as_deref() else {
            return Err(Refusal::NoLadder);
        };
        check_ladder(ladder, nonce, &view)?;
        let Some((_, rung)) = ladder.pick(intent.side, intent.amount, st.max_order) else {
            return Err(Refusal::OverLimit);
        };
        let Some(slot) = st.decisions.iter().position(Option::is_none) else {
            return Err(Refusal::TableFull);
        };
        if st.race.open(intent.id, now).is_err() {
            return Err(Refusal::TableFull);
        }
        if !ladder.try_fire() {
            st.race.abandon(intent.id, CopyOutcome::Error);
            return Err(Refusal::NoLadder);
        }
        let mut fired = 0u32;
        for route in 0..st.kinds.len() {
            let hash = (st.kinds[route] == RouteKind::Rpc).then_some(rung.tx.hash);
            // A route still answering an earlier copy is skipped: HTTP/1.1 answers in order,
            // so a copy queued behind a slow or stalled one would only wait for it.
            let idle = self
                .pool
                .conn(route)
                .is_some_and(|c| c.is_ready() && c.in_flight() == 0);
            let free = st.copies[route].iter().position(Option::is_none);
            let (true, Some(free)) = (idle, free) else {
                st.counters.skipped_routes.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let mut early: [Option<(u64, RequestError)>; PIPELINE + 1] = [None; PIPELINE + 1];
            let mut n_early = 0;
            let sent = self.pool.send(route, rung.request(route), &mut |ev| {
                if let HttpEvent::Failed { seq, error, .. } = ev
                    && n_early < early.len()
                {
                    early[n_early] = Some((seq, error));
                    n_early += 1;
                }
            });
            match sent {
                Ok(seq) => {
                    st.copies[route][free] = Some(CopyRec {
                        seq,
                        decision: intent.id,
                        id: nonce,
                        hash,
                    });
                    st.race.fired(intent.id, route, clock::now_ns());
                    fired += 1;
                }
                Err(_) => {
                    st.counters.skipped_routes.fetch_add(1, Ordering::Relaxed);
                }
            }
            // A write that failed brings the connection down: its outstanding copies (this one
            // included) fail at once.
            for (seq, e) in early.into_iter().flatten() {
                st.on_failed(route, seq, e);
            }
        }
        let rung_amount = rung.amount;
        let target_block = if ladder.has_builders() {
            ladder.target_block
        } else {
            0
        };
        drop(guard);
        if fired == 0 {
            st.race.abandon(intent.id, CopyOutcome::Error);
            // Nothing left the process: the nonce is untouched; the signer re-signs the fired
            // ladder at the same nonce.
            return Err(Refusal::NoRoute);
        }
        st.decisions[slot] = Some(Decision {
            intent: *intent,
            nonce,
            rung_amount,
            target_block,
            uncertain: false,
            uncertain_bundle: false,
            done: false,
        });
        st.counters.fired.fetch_add(1, Ordering::Relaxed);
        st.counters
            .copies
            .fetch_add(u64::from(fired), Ordering::Relaxed);
        // A copy may have been answered (or failed) inside send: settle it now.
        st.sweep();
        Ok(rung_amount)
    }

    /// Closes every connection (not counted as disconnects).
    pub fn shutdown(&mut self) {
        self.st.closing = true;
        let st = &mut self.st;
        self.pool.shutdown(&mut |ev| st.on_http(ev));
    }
}

fn check_ladder(ladder: &Ladder, nonce: u64, view: &ChainView) -> Result<(), Refusal> {
    if ladder.nonce != nonce || ladder.is_fired() {
        return Err(Refusal::NoLadder);
    }
    if ladder.max_fee_per_gas < view.base_fee {
        return Err(Refusal::FeeStale);
    }
    if ladder.has_builders() && ladder.target_block <= view.head_block {
        return Err(Refusal::BlockStale);
    }
    Ok(())
}

impl State {
    fn slot_of(&self, decision: u64) -> Option<usize> {
        self.decisions
            .iter()
            .position(|d| d.is_some_and(|d| d.intent.id == decision))
    }

    fn take_copy(&mut self, route: usize, seq: u64) -> Option<CopyRec> {
        let table = self.copies.get_mut(route)?;
        let i = table.iter().position(|c| c.is_some_and(|c| c.seq == seq))?;
        table[i].take()
    }

    fn on_http(&mut self, ev: HttpEvent<'_>) {
        match ev {
            HttpEvent::Response(r) => {
                let Some(c) = self.take_copy(r.conn, r.seq) else {
                    return;
                };
                let cl = classify(r.status, r.body, c.id, c.hash.as_ref());
                if cl.outcome.is_uncertain() {
                    self.mark_uncertain(c.decision, Some(r.conn));
                }
                if let Some(res) = self.race.outcome(c.decision, r.conn, cl.outcome, r.recv_ns) {
                    self.resolve(c.decision, res, r.recv_ns);
                }
            }
            HttpEvent::Failed {
                conn, seq, error, ..
            } => self.on_failed(conn, seq, error),
            HttpEvent::Down { .. } if !self.closing => {
                self.counters.disconnects.fetch_add(1, Ordering::Relaxed);
            }
            HttpEvent::Down { .. } => {}
            HttpEvent::Up { .. } => {}
        }
    }

    fn on_failed(&mut self, route: usize, seq: u64, error: RequestError) {
        let Some(c) = self.take_copy(route, seq) else {
            return;
        };
        self.mark_uncertain(c.decision, Some(route));
        let now = clock::now_ns();
        if let Some(res) = self
            .race
            .outcome(c.decision, route, transport_outcome(error), now)
        {
            self.resolve(c.decision, res, now);
        }
    }

    /// A copy of `decision` on `route` (None: some copy still out) has an unknown fate.
    fn mark_uncertain(&mut self, decision: u64, route: Option<usize>) {
        let bundle = route.is_none_or(|r| self.kinds.get(r) == Some(&RouteKind::Builder));
        if let Some(i) = self.slot_of(decision)
            && let Some(d) = self.decisions[i].as_mut()
        {
            d.uncertain = true;
            d.uncertain_bundle |= bundle && d.target_block != 0;
        }
    }

    fn push_fill(&mut self, f: Fill) {
        self.outbox.push_back(f);
    }

    fn fill(&mut self, d: &Decision, status: FillStatus, now: u64) {
        let mut trace = d.intent.trace;
        if trace.sent_ns == 0 {
            trace.sent_ns = now;
        }
        let filled = match status {
            FillStatus::Filled => match d.intent.side {
                Side::Buy => d.rung_amount,
                Side::Sell => -d.rung_amount,
            },
            _ => 0.0,
        };
        self.push_fill(Fill {
            trace,
            intent_id: d.intent.id,
            filled,
            price: if filled != 0.0 {
                d.intent.ref_price
            } else {
                f64::NAN
            },
            intent_coin_delta: d.intent.coin_delta,
            done_ns: now,
            instrument: d.intent.instrument,
            error_code: 0,
            status,
        });
    }

    fn resolve(&mut self, decision: u64, res: Resolution, now: u64) {
        let Some(i) = self.slot_of(decision) else {
            return;
        };
        let Some(mut d) = self.decisions[i] else {
            return;
        };
        if d.done {
            return;
        }
        d.done = true;
        self.decisions[i] = Some(d);
        match res {
            Resolution::Won { route, .. } => {
                self.counters.won.fetch_add(1, Ordering::Relaxed);
                if self.kinds.get(route) == Some(&RouteKind::Builder)
                    && d.target_block != 0
                    && let Some(w) = self.watched.iter_mut().find(|w| w.is_none())
                {
                    *w = Some(d);
                }
                let next = d.nonce + 1;
                // Only from the nonce it fired at: a lost bundle (step 7) may have taken the
                // next nonce back below it while this decision was out.
                if self.next_nonce.is_none_or(|n| n == d.nonce) {
                    self.next_nonce = Some(next);
                    self.shelf.set_exec_next_nonce(next);
                }
                self.fill(&d, FillStatus::Filled, now);
            }
            Resolution::Failed { .. } if d.uncertain => {
                self.counters.held.fetch_add(1, Ordering::Relaxed);
                self.held = Some(d);
                self.reconcile_after_ns = now.saturating_add(self.grace_ns);
                self.shelf.request_reconcile(self.reconcile_after_ns);
            }
            Resolution::Failed { .. } => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                self.fill(&d, FillStatus::Rejected, now);
            }
        }
    }

    /// Settles a held decision once a nonce reading started after the grace time exists.
    fn reconcile(&mut self, now: u64) {
        let Some(d) = self.held else {
            return;
        };
        let guard = self.shelf.view();
        let Some(view) = guard.as_deref().copied() else {
            return;
        };
        drop(guard);
        if view.read_started_ns < self.reconcile_after_ns {
            return;
        }
        if d.uncertain_bundle && view.head_block < d.target_block {
            // A builder may still include the bundle in its target block.
            return;
        }
        self.held = None;
        self.reconcile_after_ns = 0;
        self.shelf.request_reconcile(0);
        if view.pending_nonce > d.nonce {
            self.counters.late_fills.fetch_add(1, Ordering::Relaxed);
            self.next_nonce = Some(view.pending_nonce.max(d.nonce + 1));
            self.fill(&d, FillStatus::Filled, now);
        } else {
            self.counters.not_found.fetch_add(1, Ordering::Relaxed);
            self.next_nonce = Some(d.nonce);
            self.fill(&d, FillStatus::NotFound, now);
        }
        if let Some(n) = self.next_nonce {
            self.shelf.set_exec_next_nonce(n);
        }
    }

    /// Step 7: settles builder-won decisions from the latest chain view.
    fn confirm(&mut self, now: u64) {
        if self.watched.iter().all(Option::is_none) {
            return;
        }
        let guard = self.shelf.view();
        let Some(view) = guard.as_deref().copied() else {
            return;
        };
        drop(guard);
        let mut lowest_lost: Option<u64> = None;
        for i in 0..WATCHED {
            let Some(d) = self.watched[i] else {
                continue;
            };
            if view.pending_nonce > d.nonce {
                self.watched[i] = None;
                self.counters.confirmed.fetch_add(1, Ordering::Relaxed);
            } else if view.head_block >= d.target_block {
                self.watched[i] = None;
                self.counters.lost.fetch_add(1, Ordering::Relaxed);
                lowest_lost = Some(lowest_lost.map_or(d.nonce, |n| n.min(d.nonce)));
                self.lost_fill(&d, now);
            }
        }
        if let Some(n) = lowest_lost
            && self.next_nonce.is_some_and(|x| x > n)
        {
            // The nonce was never spent: the next decision uses it again.
            self.next_nonce = Some(n);
            self.shelf.set_exec_next_nonce(n);
        }
    }

    /// The fill undoing a builder-won decision's fill.
    fn lost_fill(&mut self, d: &Decision, now: u64) {
        let mut trace = d.intent.trace;
        if trace.sent_ns == 0 {
            trace.sent_ns = now;
        }
        let filled = match d.intent.side {
            Side::Buy => -d.rung_amount,
            Side::Sell => d.rung_amount,
        };
        self.push_fill(Fill {
            trace,
            intent_id: d.intent.id,
            filled,
            price: d.intent.ref_price,
            intent_coin_delta: d.intent.coin_delta,
            done_ns: now,
            instrument: d.intent.instrument,
            error_code: 0,
            status: FillStatus::Lost,
        });
    }

    /// Frees the slots of decisions resolved and fully answered.
    fn sweep(&mut self) {
        for slot in &mut self.decisions {
            if let Some(d) = slot
                && d.done
                && !self.race.is_live(d.intent.id)
            {
                *slot = None;
            }
        }
    }
}

impl CopyOutcome {
    /// A copy whose fate is unknown (it may still land).
    fn is_uncertain(self) -> bool {
        matches!(self, CopyOutcome::Timeout | CopyOutcome::Error)
    }
}

/// The EVM exec tile: hedge intents from a ring, fills back on another
/// (DESIGN.md "exec thread: ladder.pick(intent) -> race(raw bytes, venues) -> acks/fills").
/// At teardown it waits (at most the race deadline) for copies still out, so a decision whose
/// transaction may land is resolved rather than abandoned, then publishes its route statistics
/// ([`EvmExecTile::with_route_report`]). `keel run --alt-hedge evm` routes `Venue::Ethereum`
/// intents to it (`tools/src/run/evm.rs`); their amount is coin.
pub struct EvmExecTile {
    exec: EvmExec,
    intents: Consumer<HedgeIntent>,
    fills: Producer<Fill>,
    warm_timeout: Duration,
    counters: Arc<EvmExecCounters>,
    routes_out: Option<Arc<std::sync::Mutex<Vec<RouteStats>>>>,
    drain_timeout: Duration,
}

impl EvmExecTile {
    /// At teardown (off the hot path) the tile copies its per-route statistics (copies fired,
    /// outcomes, send→answer latencies) into `out`, for the run's summary.
    pub fn with_route_report(mut self, out: Arc<std::sync::Mutex<Vec<RouteStats>>>) -> Self {
        self.routes_out = Some(out);
        self
    }

    /// A tile over `exec`.
    pub fn new(
        exec: EvmExec,
        intents: Consumer<HedgeIntent>,
        fills: Producer<Fill>,
        warm_timeout: Duration,
    ) -> Self {
        Self {
            counters: exec.counters(),
            drain_timeout: exec.request_timeout(),
            exec,
            intents,
            fills,
            warm_timeout,
            routes_out: None,
        }
    }

    /// The exec path (counters, route statistics).
    pub fn exec(&self) -> &EvmExec {
        &self.exec
    }
}

impl Tile for EvmExecTile {
    fn name(&self) -> &'static str {
        "exec"
    }

    fn init(&mut self) -> Result<(), TileError> {
        // Routes that are not warm in time connect in the background; decisions skip them.
        self.exec
            .warm_up(self.warm_timeout)
            .map_err(|e| TileError::with_source("exec: poll failed while connecting", e))?;
        Ok(())
    }

    fn step(&mut self) -> bool {
        let before = self.exec.fills_waiting();
        self.exec.poll(Duration::ZERO);
        let mut did = self.exec.fills_waiting() != before;
        if let Some(i) = self.intents.pop() {
            let _ = self.exec.decide(&i);
            did = true;
        }
        while let Some(f) = self.exec.pop_fill() {
            match self.fills.push(f) {
                Ok(()) => {
                    self.counters.fills_out.fetch_add(1, Ordering::Relaxed);
                    did = true;
                }
                Err(back) => {
                    self.exec.unpop_fill(back.0);
                    break;
                }
            }
        }
        did
    }

    fn teardown(&mut self) {
        // Copies still out get their answers first (bounded by the request timeout): a
        // decision whose transaction may land is resolved, not abandoned, at the end of a run.
        let deadline = std::time::Instant::now() + self.drain_timeout;
        while self.exec.race().in_flight() > 0 && std::time::Instant::now() < deadline {
            self.exec.poll(Duration::from_millis(1));
        }
        self.exec.shutdown();
        if let Some(out) = &self.routes_out
            && let Ok(mut v) = out.lock()
        {
            v.clear();
            v.extend(self.exec.route_stats().iter().cloned());
        }
    }
}
