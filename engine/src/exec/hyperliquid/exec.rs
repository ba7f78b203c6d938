//! The Hyperliquid exec session: hedge intents in, pre-signed rungs fired over the WebSocket
//! `post` channel, fills out ([`HyperliquidOrders`] tracks them). The ladder comes from the
//! signer thread ([`super::refresh::HlSigner`]) through a lock-free swap ([`HlShelf`]).
//!
//! For each intent, in order:
//! 1. load the current ladder (no lock, no allocation); none yet → refused
//!    ([`REFUSE_NO_LADDER`]);
//! 2. pick the rung on the intent's side nearest its amount without exceeding it; none →
//!    refused ([`REFUSE_TOO_SMALL`]); the rung already fired in this ladder (its nonce is
//!    spent, the signer has not replaced the ladder yet) → the next smaller unfired one;
//! 3. a rung whose nonce is older than `max_nonce_age_ms` is never sent ([`REFUSE_STALE`]):
//!    the venue could refuse it, or worse, it would be a nonce the signer no longer tracks;
//! 4. a rung whose limit is not marketable at the intent's reference price (the market left
//!    the ladder's band) is not sent either ([`REFUSE_PRICE`]);
//! 5. otherwise the rung's bodies go into a free slot of the order session and it is fired;
//!    the spent rung is marked and the signer told ([`HlShelf::fired`]); no free slot →
//!    refused ([`REFUSE_BUSY`]).
//!
//! A refused intent is answered at once with a `Rejected` fill (codes ≤ −1000: refused before
//! sending), so its exposure is released. The fill of a smaller rung than the intent is
//! `Partial` (the pricer books the delta it added and decides again).
//!
//! Owns the order session and the intents' consumer. Never allocates after start-up (the
//! slots' buffers are reserved; the arc-swap reader is warmed in `on_open`'s first call),
//! never signs, never blocks.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use keel_feeds::clock;
use keel_feeds::event::{DisconnectReason, MarketEvent, Side, Venue};
use keel_feeds::net::{Outbox, Session};

use super::orders::{HlCommand, HlCounters, HyperliquidOrders};
use super::refresh::HlShelf;
use crate::exec::OrderSession;
use crate::exec::{Fill, HedgeIntent};
use crate::pipeline::ring::{Consumer, Producer, ring};

/// Refused: no ladder signed yet.
pub const REFUSE_NO_LADDER: i32 = -7101;
/// Refused: the intent is smaller than the smallest rung (or every fitting rung is spent).
pub const REFUSE_TOO_SMALL: i32 = -7102;
/// Refused: the rung's nonce is older than the limit (never sent).
pub const REFUSE_STALE: i32 = -7103;
/// Refused: the rung's limit is not marketable at the intent's reference price.
pub const REFUSE_PRICE: i32 = -7104;
/// Refused: every order slot is in flight.
pub const REFUSE_BUSY: i32 = -7105;
/// Refused: within the rate limit's interval of the last order.
pub const REFUSE_RATE: i32 = -7106;
/// Client heartbeat interval (Hyperliquid closes a connection silent for 60 s).
const PING_EVERY_NS: u64 = 15_000_000_000;

/// Counters of the exec session (beyond the order session's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HlExecCounters {
    /// Rungs fired.
    pub fired: u64,
    /// Intents refused, by reason: no ladder, too small, stale nonce, price, busy, rate.
    pub refused: [u64; 6],
}

/// The session's counters, published for the run's report (relaxed stores after a step that
/// changed them; read off the hot path).
#[derive(Debug, Default)]
pub struct HlExecStats {
    /// Rungs fired.
    pub fired: AtomicU64,
    /// Intents refused, by reason (as [`HlExecCounters::refused`]).
    pub refused: [AtomicU64; 6],
    /// Orders written.
    pub orders_sent: AtomicU64,
    /// Noops the venue accepted.
    pub voided: AtomicU64,
    /// Orders that timed out.
    pub timeouts: AtomicU64,
    /// Orders that landed without a reply (yet).
    pub landed_unknown: AtomicU64,
    /// Replies that could not be parsed.
    pub malformed: AtomicU64,
    /// `orderStatus` queries posted.
    pub queries: AtomicU64,
    /// Coin filled, signed, 1e-8 units.
    pub filled_e8: AtomicI64,
}

/// The exec session's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HlExecConfig {
    /// A rung whose nonce is older than this (ms) is never sent.
    pub max_nonce_age_ms: u64,
    /// An order without a reply this long is voided with its noop, ns.
    pub timeout_ns: u64,
    /// Orders in flight at most.
    pub slots: usize,
    /// Orders at least this far apart, ns (0: no limit).
    pub min_interval_ns: u64,
}

/// The session.
pub struct HyperliquidExec {
    intents: Consumer<HedgeIntent>,
    orders: HyperliquidOrders,
    commands: Producer<HlCommand>,
    shelf: HlShelf,
    config: HlExecConfig,
    /// Generation of the ladder `spent` refers to, and its fired rungs (bit per rung).
    generation: u64,
    spent: u64,
    counters: HlExecCounters,
    last_ping_ns: u64,
    last_fire_ns: u64,
    warmed: bool,
    stats: Arc<HlExecStats>,
    dirty: bool,
}

impl HyperliquidExec {
    /// A session taking intents from `intents`, answering on `fills`, firing the rungs on
    /// `shelf`. `status_user`: the account whose `orderStatus` settles orders that landed
    /// without a reply.
    pub fn new(
        intents: Consumer<HedgeIntent>,
        fills: Producer<Fill>,
        shelf: HlShelf,
        config: HlExecConfig,
        status_user: Option<alloy_primitives::Address>,
    ) -> Result<Self, crate::pipeline::ring::RingError> {
        let slots = config.slots.max(1);
        let (commands, command_rx) = ring(slots.next_power_of_two().max(8))?;
        let mut orders =
            HyperliquidOrders::with_slots(command_rx, fills, slots, config.timeout_ns.max(1));
        if let Some(u) = status_user {
            orders = orders.with_status_queries(u);
        }
        Ok(Self {
            intents,
            orders,
            commands,
            shelf,
            config,
            generation: 0,
            spent: 0,
            counters: HlExecCounters::default(),
            last_ping_ns: 0,
            last_fire_ns: 0,
            warmed: false,
            stats: Arc::default(),
            dirty: false,
        })
    }

    /// The session's counters.
    pub fn counters(&self) -> HlExecCounters {
        self.counters
    }

    /// The order session's counters.
    pub fn order_counters(&self) -> HlCounters {
        self.orders.counters()
    }

    /// The published counters (shared with the run's report).
    pub fn stats(&self) -> Arc<HlExecStats> {
        self.stats.clone()
    }

    fn publish(&mut self) {
        self.dirty = false;
        let s = &self.stats;
        let c = self.orders.counters();
        let r = Ordering::Relaxed;
        s.fired.store(self.counters.fired, r);
        for (a, v) in s.refused.iter().zip(self.counters.refused) {
            a.store(v, r);
        }
        s.orders_sent.store(c.orders_sent, r);
        s.voided.store(c.voided, r);
        s.timeouts.store(c.timeouts, r);
        s.landed_unknown.store(c.landed_unknown, r);
        s.malformed.store(c.malformed, r);
        s.queries.store(c.queries, r);
        s.filled_e8.store(c.filled_e8, r);
    }

    fn refuse(&mut self, intent: &HedgeIntent, code: i32) {
        let k = REFUSE_NO_LADDER.saturating_sub(code).max(0) as usize;
        if let Some(c) = self.counters.refused.get_mut(k) {
            *c += 1;
        }
        self.orders.refuse(intent, code);
    }

    /// Decides one intent (steps 1–5 of the module doc).
    fn handle(&mut self, intent: HedgeIntent) {
        self.dirty = true;
        let now_ns = clock::now_ns();
        if self.config.min_interval_ns > 0
            && self.last_fire_ns != 0
            && now_ns.saturating_sub(self.last_fire_ns) < self.config.min_interval_ns
        {
            return self.refuse(&intent, REFUSE_RATE);
        }
        let guard = self.shelf.ladders.load();
        let Some(ladder) = guard.as_ref() else {
            return self.refuse(&intent, REFUSE_NO_LADDER);
        };
        if ladder.generation != self.generation {
            self.generation = ladder.generation;
            self.spent = 0;
        }
        // The largest unspent rung on the side that does not exceed the amount.
        let mut best: Option<(usize, f64)> = None;
        for (k, r) in ladder.rungs.iter().enumerate() {
            let s = r.size();
            if r.side == intent.side
                && s <= intent.amount * (1.0 + 1e-9)
                && self.spent & (1u64 << (k & 63)) == 0
                && best.is_none_or(|(_, b)| s > b)
            {
                best = Some((k, s));
            }
        }
        let Some((k, _)) = best else {
            return self.refuse(&intent, REFUSE_TOO_SMALL);
        };
        let Some(rung) = ladder.rungs.get(k) else {
            return self.refuse(&intent, REFUSE_TOO_SMALL);
        };
        let now_ms = now_ns / 1_000_000;
        if now_ms.saturating_sub(rung.nonce) > self.config.max_nonce_age_ms {
            return self.refuse(&intent, REFUSE_STALE);
        }
        let limit = rung.limit();
        let marketable = match intent.side {
            Side::Buy => intent.ref_price <= limit,
            Side::Sell => intent.ref_price >= limit,
        };
        if !marketable {
            return self.refuse(&intent, REFUSE_PRICE);
        }
        let Some(slot) = self.orders.free_slot() else {
            return self.refuse(&intent, REFUSE_BUSY);
        };
        if !self
            .orders
            .load(slot, intent, &rung.order_body, &rung.noop_body, &rung.cloid)
        {
            return self.refuse(&intent, REFUSE_BUSY);
        }
        self.spent |= 1u64 << (k & 63);
        self.counters.fired += 1;
        self.last_fire_ns = now_ns;
        self.shelf.fired.fetch_add(1, Ordering::Release);
        // The command ring holds `slots` at least: a free slot means room.
        let _ = self.commands.push(HlCommand {
            entry: slot as u32,
            void: false,
        });
    }
}

impl Session for HyperliquidExec {
    fn venue(&self) -> Venue {
        Venue::Hyperliquid
    }

    fn on_open(&mut self, out: &mut Outbox<'_>) {
        if !self.warmed {
            self.shelf.ladders.warm();
            self.warmed = true;
        }
        self.orders.on_open(out);
    }

    fn on_message(
        &mut self,
        payload: &[u8],
        recv_ts_ns: u64,
        out: &mut Outbox<'_>,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<(), DisconnectReason> {
        self.dirty = true;
        self.orders.on_message(payload, recv_ts_ns, out, emit)
    }

    fn on_timer(
        &mut self,
        now_ns: u64,
        out: &mut Outbox<'_>,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<(), DisconnectReason> {
        if now_ns.saturating_sub(self.last_ping_ns) >= PING_EVERY_NS {
            if self.last_ping_ns != 0 {
                out.send_text(br#"{"method":"ping"}"#);
            }
            self.last_ping_ns = now_ns;
        }
        self.orders.on_timer(now_ns, out, emit)
    }

    fn poll_outgoing(&mut self, out: &mut Outbox<'_>) -> bool {
        while let Some(intent) = self.intents.pop() {
            self.handle(intent);
        }
        let wrote = self.orders.poll_outgoing(out);
        if wrote || self.dirty {
            self.publish();
        }
        wrote
    }

    fn on_flushed(&mut self, now_ns: u64) {
        self.orders.on_flushed(now_ns);
    }
}

impl OrderSession for HyperliquidExec {
    fn sent_replies_queries(&self) -> (u64, u64, u64) {
        let c = self.orders.counters();
        (
            c.orders_sent,
            self.counters
                .fired
                .saturating_sub(self.orders.in_flight() as u64),
            c.queries,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::FillStatus;
    use crate::exec::evm::EvmSigner;
    use crate::exec::evm::shelf::{SwapCell, SwapWriter};
    use crate::exec::hyperliquid::{HlLadder, HlLadderSpec, Network};
    use crate::pipeline::telemetry::TickTrace;
    use keel_feeds::instrument::InstrumentId;
    use keel_feeds::net::ws::{FrameEncoder, parse_client_frames};
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    struct Rig {
        exec: HyperliquidExec,
        intents: Producer<HedgeIntent>,
        fills: Consumer<Fill>,
        writer: SwapWriter<HlLadder>,
        fired: Arc<AtomicU64>,
        key: EvmSigner,
    }

    fn rig(max_nonce_age_ms: u64, slots: usize) -> Rig {
        let (intents, irx) = ring(16).unwrap();
        let (ftx, fills) = ring(16).unwrap();
        let (cell, writer) = SwapCell::new();
        let fired = Arc::new(AtomicU64::new(0));
        let shelf = HlShelf {
            ladders: cell,
            fired: fired.clone(),
        };
        let exec = HyperliquidExec::new(
            irx,
            ftx,
            shelf,
            HlExecConfig {
                max_nonce_age_ms,
                timeout_ns: 5_000_000_000,
                slots,
                min_interval_ns: 0,
            },
            None,
        )
        .unwrap();
        Rig {
            exec,
            intents,
            fills,
            writer,
            fired,
            key: EvmSigner::from_hex(&format!("0x{}", "66".repeat(32)), "t").unwrap(),
        }
    }

    fn ladder(r: &Rig, nonce: u64, generation: u64) -> HlLadder {
        let spec = HlLadderSpec {
            asset: 0,
            lot: 0.001,
            rungs: 3,
            sz_decimals: 5,
            slippage: 0.01,
            network: Network::Mainnet,
        };
        HlLadder::build(&spec, &r.key, 100_000.0, nonce, generation).unwrap()
    }

    fn intent(id: u64, side: Side, amount: f64, ref_price: f64) -> HedgeIntent {
        HedgeIntent {
            trace: TickTrace::default(),
            id,
            amount,
            ref_price,
            coin_delta: if side == Side::Buy { amount } else { -amount },
            instrument: InstrumentId(4),
            side,
            venue: Venue::Hyperliquid,
        }
    }

    /// Drives one poll; the `post` messages written.
    fn poll(r: &mut Rig) -> Vec<serde_json::Value> {
        let mut enc = FrameEncoder::new();
        let mut buf = Vec::new();
        let mut out = Outbox::new(&mut enc, &mut buf);
        if r.exec.poll_outgoing(&mut out) {
            r.exec.on_flushed(clock::now_ns());
        }
        parse_client_frames(&buf)
            .unwrap()
            .into_iter()
            .map(|(_, _, p)| serde_json::from_slice(&p).unwrap())
            .collect()
    }

    fn now_ms() -> u64 {
        clock::now_ns() / 1_000_000
    }

    #[test]
    fn the_nearest_rung_not_above_the_intent_is_fired_once_per_ladder() {
        let mut r = rig(60_000, 4);
        // No ladder: refused, nothing sent.
        r.intents
            .push(intent(1, Side::Buy, 0.005, 100_000.0))
            .unwrap();
        assert!(poll(&mut r).is_empty());
        let f = r.fills.pop().unwrap();
        assert_eq!(
            (f.intent_id, f.status, f.error_code),
            (1, FillStatus::Rejected, REFUSE_NO_LADDER)
        );
        let n = now_ms();
        let l = ladder(&r, n, 1);
        r.writer.publish(l);
        // 0.005 → the 0.004 rung (index 2); a second 0.005 → 0.002 (the 0.004 is spent).
        r.intents
            .push(intent(2, Side::Buy, 0.005, 100_000.0))
            .unwrap();
        r.intents
            .push(intent(3, Side::Buy, 0.005, 100_000.0))
            .unwrap();
        let sent = poll(&mut r);
        assert_eq!(sent.len(), 2);
        let order = |v: &serde_json::Value| v["request"]["payload"]["action"]["orders"][0].clone();
        assert_eq!(order(&sent[0])["s"], "0.004");
        assert_eq!(order(&sent[1])["s"], "0.002");
        assert_eq!(sent[0]["request"]["payload"]["nonce"], n + 2);
        assert_eq!(r.fired.load(Ordering::Relaxed), 2);
        // Too small, and a sell whose limit the market has left (ref below 99,000).
        r.intents
            .push(intent(4, Side::Sell, 0.0005, 100_000.0))
            .unwrap();
        r.intents
            .push(intent(5, Side::Sell, 0.001, 98_000.0))
            .unwrap();
        assert!(poll(&mut r).is_empty());
        let codes: Vec<i32> = std::iter::from_fn(|| r.fills.pop())
            .map(|f| f.error_code)
            .collect();
        assert_eq!(codes, [REFUSE_TOO_SMALL, REFUSE_PRICE]);
        // A new ladder: every rung is fresh again.
        let l = ladder(&r, n + 6, 2);
        r.writer.publish(l);
        r.intents
            .push(intent(6, Side::Buy, 0.004, 100_000.0))
            .unwrap();
        let sent = poll(&mut r);
        assert_eq!(order(&sent[0])["s"], "0.004");
        assert_eq!(sent[0]["request"]["payload"]["nonce"], n + 8);
        assert_eq!(r.exec.counters().fired, 3);
        assert_eq!(r.exec.counters().refused, [1, 1, 0, 1, 0, 0]);
        // A rate limit: the next order within the interval is refused.
        r.exec.config.min_interval_ns = 60_000_000_000;
        r.intents
            .push(intent(7, Side::Buy, 0.004, 100_000.0))
            .unwrap();
        assert!(poll(&mut r).is_empty());
        assert_eq!(r.fills.pop().unwrap().error_code, REFUSE_RATE);
    }

    #[test]
    fn a_stale_nonce_is_never_sent() {
        let mut r = rig(1_000, 4);
        // Signed 5 s ago: past the 1 s limit.
        let l = ladder(&r, now_ms() - 5_000, 1);
        r.writer.publish(l);
        for id in 0..3 {
            r.intents
                .push(intent(id, Side::Buy, 0.007, 100_000.0))
                .unwrap();
        }
        assert!(poll(&mut r).is_empty(), "nothing on the wire");
        for _ in 0..3 {
            let f = r.fills.pop().unwrap();
            assert_eq!(
                (f.status, f.error_code),
                (FillStatus::Rejected, REFUSE_STALE)
            );
        }
        assert_eq!(r.fired.load(Ordering::Relaxed), 0);
        assert_eq!(r.exec.order_counters().orders_sent, 0);
        // A fresh ladder is fired.
        let l = ladder(&r, now_ms(), 2);
        r.writer.publish(l);
        r.intents
            .push(intent(9, Side::Buy, 0.007, 100_000.0))
            .unwrap();
        assert_eq!(poll(&mut r).len(), 1);
    }

    #[test]
    fn slots_are_reused_after_their_reply_and_busy_when_all_in_flight() {
        let mut r = rig(60_000, 1);
        r.writer.publish(ladder(&r, now_ms(), 1));
        r.intents
            .push(intent(1, Side::Sell, 0.001, 100_000.0))
            .unwrap();
        r.intents
            .push(intent(2, Side::Sell, 0.002, 100_000.0))
            .unwrap();
        let sent = poll(&mut r);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0]["id"], 0);
        let f = r.fills.pop().unwrap();
        assert_eq!((f.intent_id, f.error_code), (2, REFUSE_BUSY));
        let mut enc = FrameEncoder::new();
        let mut buf = Vec::new();
        let reply = r#"{"channel":"post","data":{"id":0,"response":{"type":"action","payload":{"status":"ok","response":{"type":"order","data":{"statuses":[{"filled":{"totalSz":"0.001","avgPx":"99990","oid":1}}]}}}}}}"#;
        r.exec
            .on_message(
                reply.as_bytes(),
                0,
                &mut Outbox::new(&mut enc, &mut buf),
                &mut |_| {},
            )
            .unwrap();
        let f = r.fills.pop().unwrap();
        assert_eq!(
            (f.intent_id, f.status, f.filled, f.price),
            (1, FillStatus::Filled, -0.001, 99_990.0)
        );
        // The 0.001 rung is spent in this ladder: 0.003 takes the 0.002 one.
        r.intents
            .push(intent(3, Side::Sell, 0.003, 100_000.0))
            .unwrap();
        let sent = poll(&mut r);
        assert_eq!(sent.len(), 1, "the slot is free again");
        assert_eq!(
            sent[0]["request"]["payload"]["action"]["orders"][0]["s"],
            "0.002"
        );
        let reply = r#"{"channel":"post","data":{"id":0,"response":{"type":"action","payload":{"status":"ok","response":{"type":"order","data":{"statuses":[{"filled":{"totalSz":"0.002","avgPx":"99990","oid":2}}]}}}}}}"#;
        r.exec
            .on_message(
                reply.as_bytes(),
                0,
                &mut Outbox::new(&mut enc, &mut buf),
                &mut |_| {},
            )
            .unwrap();
        // A smaller rung than the intent: partial, the delta scaled by the pricer.
        let f = r.fills.pop().unwrap();
        assert_eq!((f.intent_id, f.status), (3, FillStatus::Partial));
        assert!((f.coin_delta(0.003) + 0.002).abs() < 1e-12);
    }
}
