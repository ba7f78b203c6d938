//! The venue's Binance depth book for `BTCUSDT`: one update-id sequence shared by every
//! connection's depth streams and by the REST snapshot endpoint, so that a client can follow
//! Binance's documented procedure (buffer the stream, fetch `GET /fapi/v1/depth`, apply the
//! buffered updates after the snapshot's `lastUpdateId`) against keel-sim.
//!
//! The book moves with the simulated market: the first reader (a connection rendering a depth
//! event, or a REST request) after a market tick applies one change set (update ids
//! `last + 1 ..= last + 1 + r`, r < 4) to the [`SyntheticBook`] and keeps it in a ring of the
//! last [`RING`] change sets. A connection's depth event covers every change set after the `u`
//! it sent last: `U` = the first one's first id, `u` = the latest id, `pu` = the `u` it sent
//! last, and the levels touched by any of them with their sizes now (0 = removed). So a client
//! that applies events to a snapshot gets exactly the venue's book. A connection that falls
//! behind the ring gets an event whose `pu` skips (a gap, as on the real venue); a new
//! subscription starts with the latest change set only (no full book: clients fetch the
//! snapshot, as with Binance).
//!
//! Owns the book behind one mutex, taken once per depth event or snapshot request. Never
//! allocates after start-up (the ring and the per-event level lists are fixed-size).

use std::collections::VecDeque;
use std::sync::Mutex;

use keel_engine::sim::SimRng;

use super::encode::{self, LEVELS, SizeRule, SyntheticBook};
use super::market::MarketSnapshot;

/// Change sets kept for connections that are a few market ticks behind.
pub const RING: usize = 64;
/// Most distinct prices one side of a change set can touch (deletes and sets).
const PER_SET: usize = 2 * LEVELS;
/// Most distinct prices one side of an event can list.
const PER_EVENT: usize = RING * PER_SET;

#[derive(Clone, Copy, Debug)]
struct ChangeSet {
    first_id: u64,
    last_id: u64,
    prev_id: u64,
    bids: [f64; PER_SET],
    n_bids: usize,
    asks: [f64; PER_SET],
    n_asks: usize,
}

impl Default for ChangeSet {
    fn default() -> Self {
        Self {
            first_id: 0,
            last_id: 0,
            prev_id: 0,
            bids: [0.0; PER_SET],
            n_bids: 0,
            asks: [0.0; PER_SET],
            n_asks: 0,
        }
    }
}

#[derive(Debug)]
struct DepthState {
    book: SyntheticBook,
    last_id: u64,
    market_seq: Option<u64>,
    ring: VecDeque<ChangeSet>,
    rng: SimRng,
}

impl DepthState {
    /// Applies one change set if the market ticked since the last one.
    fn catch_up(&mut self, snap: &MarketSnapshot) {
        if self.market_seq.is_some_and(|s| s >= snap.seq) {
            return;
        }
        let q = &snap.binance;
        if !(q.bid > 0.0 && q.ask > 0.0) {
            return;
        }
        self.market_seq = Some(snap.seq);
        let rule = SizeRule {
            unit: 0.001,
            max_units: 5_000,
        };
        let (bids, asks) = self.book.update(q.bid, q.ask, q.tick, rule, &mut self.rng);
        let mut cs = ChangeSet {
            prev_id: self.last_id,
            first_id: self.last_id + 1,
            ..ChangeSet::default()
        };
        cs.last_id = cs.first_id + self.rng.below(4);
        for &(_, px, _) in bids.items() {
            if let Some(slot) = cs.bids.get_mut(cs.n_bids) {
                *slot = px;
                cs.n_bids += 1;
            }
        }
        for &(_, px, _) in asks.items() {
            if let Some(slot) = cs.asks.get_mut(cs.n_asks) {
                *slot = px;
                cs.n_asks += 1;
            }
        }
        self.last_id = cs.last_id;
        if self.ring.len() >= RING {
            self.ring.pop_front();
        }
        self.ring.push_back(cs);
    }
}

/// Where one connection's depth subscription is in the venue's sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DepthCursor {
    /// The `u` of the last event sent (None before the first).
    sent_u: Option<u64>,
    /// Depth events produced (sent or lost to the gap fault).
    events: u64,
}

/// The venue's depth book.
#[derive(Debug)]
pub struct DepthVenue {
    state: Mutex<DepthState>,
}

fn push_unique(list: &mut [(f64, f64); PER_EVENT], n: &mut usize, px: f64) {
    let eps = 1e-9 * px.abs().max(1.0);
    if list.iter().take(*n).any(|&(p, _)| (p - px).abs() <= eps) {
        return;
    }
    if let Some(slot) = list.get_mut(*n) {
        *slot = (px, 0.0);
        *n += 1;
    }
}

impl DepthVenue {
    /// An empty book; the first reader builds it from the market.
    pub fn new(seed: u64) -> Self {
        let mut rng = SimRng::stream(seed, 0xB00C);
        let last_id = 5_000_000 + rng.below(1_000_000);
        Self {
            state: Mutex::new(DepthState {
                book: SyntheticBook::default(),
                last_id,
                market_seq: None,
                ring: VecDeque::with_capacity(RING),
                rng,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DepthState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Renders the next `depthUpdate` event of a subscription at `cursor` into `out`; false
    /// (nothing rendered) if nothing changed since its last event, or if this event is lost
    /// to the gap fault (every `gap_every`-th event: its ids are skipped, so the next event's
    /// `pu` is not the last `u` the client saw).
    #[allow(clippy::too_many_arguments)]
    pub fn render_update(
        &self,
        snap: &MarketSnapshot,
        cursor: &mut DepthCursor,
        out: &mut Vec<u8>,
        ts_ms: u64,
        send_ns: u64,
        bad: bool,
        gap_every: Option<u64>,
    ) -> bool {
        let mut st = self.lock();
        st.catch_up(snap);
        let Some(newest) = st.ring.back().copied() else {
            return false;
        };
        let start = cursor.sent_u.unwrap_or(newest.prev_id);
        if newest.last_id <= start {
            return false;
        }
        cursor.events += 1;
        if gap_every.is_some_and(|n| n > 0 && cursor.events.is_multiple_of(n)) {
            cursor.sent_u = Some(newest.last_id);
            return false;
        }
        let mut bids = [(0.0, 0.0); PER_EVENT];
        let mut asks = [(0.0, 0.0); PER_EVENT];
        let (mut nb, mut na) = (0, 0);
        let mut first = None;
        for cs in st.ring.iter().filter(|cs| cs.last_id > start) {
            first.get_or_insert((cs.first_id, cs.prev_id));
            for &px in cs.bids.iter().take(cs.n_bids) {
                push_unique(&mut bids, &mut nb, px);
            }
            for &px in cs.asks.iter().take(cs.n_asks) {
                push_unique(&mut asks, &mut na, px);
            }
        }
        let Some((first_id, prev_id)) = first else {
            return false;
        };
        for (list, n, buy) in [(&mut bids, nb, true), (&mut asks, na, false)] {
            for l in list.iter_mut().take(n) {
                l.1 = st.book.size(buy, l.0);
            }
        }
        encode::binance_depth_event(
            out,
            first_id,
            newest.last_id,
            prev_id,
            ts_ms,
            bids.get(..nb).unwrap_or(&[]),
            asks.get(..na).unwrap_or(&[]),
            send_ns,
            bad,
        );
        cursor.sent_u = Some(newest.last_id);
        true
    }

    /// Renders the REST snapshot (at most `limit` levels a side) into `out`.
    pub fn render_snapshot(
        &self,
        snap: &MarketSnapshot,
        out: &mut Vec<u8>,
        limit: usize,
        futures: bool,
        ts_ms: u64,
    ) {
        let mut st = self.lock();
        st.catch_up(snap);
        let mut bids = [(0.0, 0.0); LEVELS];
        let mut asks = [(0.0, 0.0); LEVELS];
        let (mut nb, mut na) = (0, 0);
        for (slot, l) in bids.iter_mut().zip(st.book.levels(true).take(limit)) {
            *slot = l;
            nb += 1;
        }
        for (slot, l) in asks.iter_mut().zip(st.book.levels(false).take(limit)) {
            *slot = l;
            na += 1;
        }
        encode::binance_depth_snapshot(
            out,
            st.last_id,
            ts_ms,
            futures,
            bids.get(..nb).unwrap_or(&[]),
            asks.get(..na).unwrap_or(&[]),
        );
    }
}

impl DepthVenue {
    /// Renders Hyperliquid's `l2Book` of `coin` (the same book, its best [`HL_LEVELS`] a side,
    /// whole) into `out`; false before the market has a touch.
    pub fn render_l2_book(
        &self,
        snap: &MarketSnapshot,
        coin: &str,
        out: &mut Vec<u8>,
        ts_ms: u64,
        bad: bool,
    ) -> bool {
        let mut st = self.lock();
        st.catch_up(snap);
        let mut bids = [(0.0, 0.0); HL_LEVELS];
        let mut asks = [(0.0, 0.0); HL_LEVELS];
        let (mut nb, mut na) = (0, 0);
        for (slot, l) in bids.iter_mut().zip(st.book.levels(true)) {
            *slot = l;
            nb += 1;
        }
        for (slot, l) in asks.iter_mut().zip(st.book.levels(false)) {
            *slot = l;
            na += 1;
        }
        if nb == 0 && na == 0 {
            return false;
        }
        encode::hyperliquid_l2_book(
            out,
            coin,
            ts_ms,
            bids.get(..nb).unwrap_or(&[]),
            asks.get(..na).unwrap_or(&[]),
            bad,
        );
        true
    }
}

/// Levels a side of a Hyperliquid `l2Book` (as on Hyperliquid: 20).
pub const HL_LEVELS: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::market::LinearQuote;
    use serde_json::Value;
    use std::collections::BTreeMap;

    fn snap(seq: u64, bid: f64) -> MarketSnapshot {
        MarketSnapshot {
            seq,
            binance: LinearQuote {
                mark: bid,
                bid,
                ask: bid + 0.1,
                bid_amount: 1.0,
                ask_amount: 1.0,
                tick: 0.1,
            },
            ..MarketSnapshot::default()
        }
    }

    type Book = BTreeMap<(bool, i64), f64>;

    fn apply(book: &mut Book, levels: &Value, buy: bool) {
        for l in levels.as_array().unwrap() {
            let px: f64 = l[0].as_str().unwrap().parse().unwrap();
            let qty: f64 = l[1].as_str().unwrap().parse().unwrap();
            let k = (buy, (px * 100.0).round() as i64);
            if qty == 0.0 {
                book.remove(&k);
            } else {
                book.insert(k, qty);
            }
        }
    }

    /// Two connections at different paces and a snapshot taken mid-way: applying each
    /// connection's events after the snapshot (Binance's rules) gives the venue's book.
    #[test]
    fn events_after_a_snapshot_rebuild_the_venue_book() {
        let venue = DepthVenue::new(3);
        let mut fast = DepthCursor::default();
        let mut slow = DepthCursor::default();
        let mut out = Vec::new();
        let mut snapshot: Option<(u64, Book)> = None;
        let mut local: Option<Book> = None;
        let mut last_u = 0;
        let mut slow_last = None;
        for seq in 1..200u64 {
            let s = snap(seq, 100.0 + (seq as f64 * 0.3).sin());
            if seq == 50 {
                // Taken before this tick's event is rendered: that event straddles it.
                out.clear();
                venue.render_snapshot(&s, &mut out, 1000, true, 1);
                let v: Value = serde_json::from_slice(&out).unwrap();
                let mut book = Book::new();
                apply(&mut book, &v["bids"], true);
                apply(&mut book, &v["asks"], false);
                snapshot = Some((v["lastUpdateId"].as_u64().unwrap(), book));
            }
            out.clear();
            if venue.render_update(&s, &mut fast, &mut out, 1, 1, false, None) {
                let v: Value = serde_json::from_slice(&out).unwrap();
                let (first, u, pu) = (
                    v["U"].as_u64().unwrap(),
                    v["u"].as_u64().unwrap(),
                    v["pu"].as_u64().unwrap(),
                );
                assert_eq!(first, pu + 1, "contiguous ids");
                if let Some(book) = local.as_mut() {
                    assert_eq!(pu, last_u, "pu follows the last u");
                    apply(book, &v["b"], true);
                    apply(book, &v["a"], false);
                } else if let Some((l, book)) = &snapshot
                    && u >= *l
                {
                    assert!(
                        first <= *l,
                        "the first event after the snapshot straddles it"
                    );
                    let mut book = book.clone();
                    apply(&mut book, &v["b"], true);
                    apply(&mut book, &v["a"], false);
                    local = Some(book);
                }
                last_u = u;
            }
            if seq % 7 == 0 {
                out.clear();
                if venue.render_update(&s, &mut slow, &mut out, 1, 1, false, None) {
                    let v: Value = serde_json::from_slice(&out).unwrap();
                    if let Some(prev) = slow_last {
                        assert_eq!(v["pu"].as_u64(), Some(prev));
                    }
                    slow_last = v["u"].as_u64();
                }
            }
        }
        let mut out = Vec::new();
        venue.render_snapshot(&snap(1_000, 0.0), &mut out, 1000, true, 1);
        let v: Value = serde_json::from_slice(&out).unwrap();
        let mut truth = Book::new();
        apply(&mut truth, &v["bids"], true);
        apply(&mut truth, &v["asks"], false);
        assert_eq!(v["lastUpdateId"].as_u64(), Some(last_u));
        assert_eq!(local.unwrap(), truth);
    }

    #[test]
    fn the_gap_fault_loses_every_nth_event() {
        let venue = DepthVenue::new(4);
        let mut c = DepthCursor::default();
        let mut out = Vec::new();
        let mut sent = Vec::new();
        for seq in 1..=12u64 {
            out.clear();
            if venue.render_update(&snap(seq, 100.0), &mut c, &mut out, 1, 1, false, Some(4)) {
                let v: Value = serde_json::from_slice(&out).unwrap();
                sent.push((v["pu"].as_u64().unwrap(), v["u"].as_u64().unwrap()));
            }
        }
        assert_eq!(sent.len(), 9, "events 4, 8 and 12 were lost");
        let breaks = sent.windows(2).filter(|w| w[1].0 != w[0].1).count();
        assert_eq!(breaks, 2, "{sent:?}");
    }
}
