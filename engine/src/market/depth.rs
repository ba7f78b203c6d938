//! Order-book depth of the hedge instruments, kept from the venues' book streams
//! ([`EventBody::BookLevel`](keel_feeds::event::EventBody::BookLevel): Deribit
//! `book.{instrument}.100ms`, Binance `{symbol}@depth@100ms` replayed onto its REST snapshot), so
//! that the cost model can walk the book for a hedge's size instead of assuming the top of book.
//!
//! Owns one [`DepthBook`] per hedge instrument: both sides as sorted, fixed-capacity level lists
//! (best first). Trusts the feed for sequencing (the parsers turn a numbering break into
//! `SequenceGap`, which breaks the book here until the next snapshot) and checks only what it
//! sees: a level that is not a price and a size breaks the book; a snapshot starts it again.
//! Never allocates after construction (the level lists are reserved at their capacity; levels
//! beyond it, the far end of the book, are dropped and the side is marked truncated), never
//! panics on feed values, and never shows a book mid-message or before its snapshot.

use crate::policy::cost::Level;
use keel_feeds::event::{EventBody, MarketEvent, Side};

/// Levels kept per side by default: far more than a hedge walks, few enough to shift cheaply.
pub const DEFAULT_DEPTH_LEVELS: usize = 256;

/// Where a book is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepthState {
    /// No snapshot yet (or since the connection dropped).
    Empty,
    /// A snapshot message is being applied.
    Building,
    /// Snapshot applied, updates flowing.
    Ready,
    /// A sequence gap or a bad level: unusable until the next snapshot.
    Broken,
}

/// Counters of one book.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DepthCounters {
    /// Levels applied.
    pub levels: u64,
    /// Snapshots applied.
    pub snapshots: u64,
    /// Times the book broke (gap, bad level, disconnection).
    pub breaks: u64,
    /// Update levels ignored because no snapshot had started the book.
    pub before_snapshot: u64,
    /// Levels dropped beyond the capacity.
    pub dropped: u64,
}

/// One instrument's book.
#[derive(Clone, Debug)]
pub struct DepthBook {
    bids: Vec<Level>,
    asks: Vec<Level>,
    cap: usize,
    state: DepthState,
    in_message: bool,
    truncated: [bool; 2],
    conn: u8,
    seq: u64,
    updated_ns: u64,
    counters: DepthCounters,
}

impl DepthBook {
    /// An empty book keeping at most `cap` levels per side (at least 1).
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Self {
            bids: Vec::with_capacity(cap),
            asks: Vec::with_capacity(cap),
            cap,
            state: DepthState::Empty,
            in_message: false,
            truncated: [false; 2],
            conn: u8::MAX,
            seq: 0,
            updated_ns: 0,
            counters: DepthCounters::default(),
        }
    }

    /// Its state.
    pub fn state(&self) -> DepthState {
        self.state
    }

    /// Its counters.
    pub fn counters(&self) -> DepthCounters {
        self.counters
    }

    /// The venue's sequence number of the last message applied.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Local receive time of the last level applied, ns.
    pub fn updated_ns(&self) -> u64 {
        self.updated_ns
    }

    /// The levels an order on `side` takes, best first (asks for a buy, bids for a sell), and
    /// whether that side was truncated at the capacity (levels beyond the last are unknown, not
    /// absent) — or `None` while the book is not usable: no snapshot, broken, mid-message, or
    /// crossed.
    pub fn levels_for(&self, side: Side) -> Option<(&[Level], bool)> {
        if self.state != DepthState::Ready || self.in_message {
            return None;
        }
        if let (Some(b), Some(a)) = (self.bids.first(), self.asks.first())
            && b.price >= a.price
        {
            return None;
        }
        Some(match side {
            Side::Buy => (&self.asks[..], self.truncated[1]),
            Side::Sell => (&self.bids[..], self.truncated[0]),
        })
    }

    /// Best bid and ask (NaN where a side is empty), when usable.
    pub fn best(&self) -> Option<(f64, f64)> {
        self.levels_for(Side::Buy)?;
        let b = self.bids.first().map_or(f64::NAN, |l| l.price);
        let a = self.asks.first().map_or(f64::NAN, |l| l.price);
        Some((b, a))
    }

    /// The book can no longer be trusted (a gap, or its connection dropped): unusable until the
    /// next snapshot.
    pub fn invalidate(&mut self) {
        if matches!(self.state, DepthState::Ready | DepthState::Building) {
            self.counters.breaks += 1;
        }
        if self.state != DepthState::Empty {
            self.state = DepthState::Broken;
        }
        self.in_message = false;
    }

    /// The connection the book's levels came from (`u8::MAX` before any).
    pub fn conn(&self) -> u8 {
        self.conn
    }

    /// Applies a book event of its instrument: a level (`BookLevel`), or a gap
    /// (`SequenceGap`, which breaks the book until the next snapshot); others are ignored.
    pub fn on_event(&mut self, ev: &MarketEvent) {
        match ev.body {
            EventBody::BookLevel {
                price,
                size,
                side,
                snapshot,
                first,
                last,
                seq,
            } => self.apply(
                price,
                size,
                side,
                snapshot,
                first,
                last,
                seq,
                ev.conn,
                ev.recv_ts_ns,
            ),
            EventBody::SequenceGap { .. } => self.invalidate(),
            _ => {}
        }
    }

    /// Applies one level event (fields of `EventBody::BookLevel`).
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        price: f64,
        size: f64,
        side: Side,
        snapshot: bool,
        first: bool,
        last: bool,
        seq: u64,
        conn: u8,
        recv_ns: u64,
    ) {
        if snapshot && first {
            self.bids.clear();
            self.asks.clear();
            self.truncated = [false; 2];
            self.state = DepthState::Building;
            self.conn = conn;
            self.counters.snapshots += 1;
        } else if matches!(self.state, DepthState::Empty | DepthState::Broken) {
            self.counters.before_snapshot += 1;
            return;
        } else if snapshot && self.state != DepthState::Building {
            // A snapshot's later level without its first: the snapshot was cut.
            self.invalidate();
            return;
        }
        if first {
            self.in_message = true;
        }
        self.seq = seq;
        self.updated_ns = recv_ns;
        // An empty snapshot is one level with no price and size 0 (the parsers' convention).
        let empty_marker = price.is_nan() && size == 0.0;
        if !empty_marker {
            if !(price.is_finite() && price > 0.0 && size.is_finite() && size >= 0.0) {
                self.invalidate();
                return;
            }
            self.counters.levels += 1;
            self.set(side, price, size);
        }
        if last {
            self.in_message = false;
            if self.state == DepthState::Building {
                self.state = DepthState::Ready;
            }
        }
    }

    /// Sets the size at `price` on `side` (0 removes the level).
    fn set(&mut self, side: Side, price: f64, size: f64) {
        let (levels, t) = match side {
            Side::Buy => (&mut self.bids, 0),
            Side::Sell => (&mut self.asks, 1),
        };
        // Best first: bids falling, asks rising. `before(a, b)`: a is better than b.
        let before = |a: f64, b: f64| if t == 0 { a > b } else { a < b };
        let at = levels.partition_point(|l| before(l.price, price));
        let exists = levels.get(at).is_some_and(|l| l.price == price);
        if size == 0.0 {
            if exists {
                levels.remove(at);
            }
            return;
        }
        if exists {
            levels[at].size = size;
            return;
        }
        if at >= self.cap {
            // Beyond the kept depth.
            self.truncated[t] = true;
            self.counters.dropped += 1;
            return;
        }
        if levels.len() == self.cap {
            levels.pop();
            self.truncated[t] = true;
            self.counters.dropped += 1;
        }
        levels.insert(at, Level { price, size });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(b: &mut DepthBook, p: f64, s: f64, side: Side, snap: bool, first: bool, last: bool) {
        b.apply(p, s, side, snap, first, last, 1, 0, 1);
    }

    fn prices(l: &[Level]) -> Vec<(f64, f64)> {
        l.iter().map(|l| (l.price, l.size)).collect()
    }

    #[test]
    fn snapshot_then_updates_keep_both_sides_sorted_best_first() {
        let mut b = DepthBook::new(8);
        assert!(b.levels_for(Side::Buy).is_none());
        lv(&mut b, 99.0, 1.0, Side::Buy, true, true, false);
        lv(&mut b, 100.0, 2.0, Side::Buy, true, false, false);
        assert!(b.levels_for(Side::Buy).is_none(), "mid-snapshot");
        lv(&mut b, 102.0, 3.0, Side::Sell, true, false, false);
        lv(&mut b, 101.0, 4.0, Side::Sell, true, false, true);
        assert_eq!(b.state(), DepthState::Ready);
        let (asks, tr) = b.levels_for(Side::Buy).unwrap();
        assert_eq!(prices(asks), vec![(101.0, 4.0), (102.0, 3.0)]);
        assert!(!tr);
        let (bids, _) = b.levels_for(Side::Sell).unwrap();
        assert_eq!(prices(bids), vec![(100.0, 2.0), (99.0, 1.0)]);
        // An update message: change, delete, insert in the middle.
        lv(&mut b, 100.0, 5.0, Side::Buy, false, true, false);
        lv(&mut b, 99.0, 0.0, Side::Buy, false, false, false);
        assert!(b.levels_for(Side::Sell).is_none(), "mid-message");
        lv(&mut b, 101.5, 7.0, Side::Sell, false, false, true);
        let (bids, _) = b.levels_for(Side::Sell).unwrap();
        assert_eq!(prices(bids), vec![(100.0, 5.0)]);
        let (asks, _) = b.levels_for(Side::Buy).unwrap();
        assert_eq!(prices(asks), vec![(101.0, 4.0), (101.5, 7.0), (102.0, 3.0)]);
        assert_eq!(b.best(), Some((100.0, 101.0)));
    }

    #[test]
    fn updates_before_a_snapshot_and_after_a_gap_are_not_shown() {
        let mut b = DepthBook::new(8);
        lv(&mut b, 100.0, 1.0, Side::Buy, false, true, true);
        assert_eq!(b.counters().before_snapshot, 1);
        assert!(b.levels_for(Side::Sell).is_none());
        lv(&mut b, 100.0, 1.0, Side::Buy, true, true, false);
        lv(&mut b, 101.0, 1.0, Side::Sell, true, false, true);
        assert!(b.levels_for(Side::Sell).is_some());
        b.invalidate();
        assert_eq!(b.state(), DepthState::Broken);
        lv(&mut b, 100.5, 1.0, Side::Buy, false, true, true);
        assert!(b.levels_for(Side::Sell).is_none());
        // The next snapshot replaces everything.
        lv(&mut b, 99.0, 2.0, Side::Buy, true, true, false);
        lv(&mut b, 103.0, 2.0, Side::Sell, true, false, true);
        let (bids, _) = b.levels_for(Side::Sell).unwrap();
        assert_eq!(prices(bids), vec![(99.0, 2.0)]);
        assert_eq!(b.counters().breaks, 1);
    }

    #[test]
    fn bad_levels_break_the_book_and_crossed_books_are_not_usable() {
        let mut b = DepthBook::new(8);
        lv(&mut b, 100.0, 1.0, Side::Buy, true, true, false);
        lv(&mut b, 101.0, 1.0, Side::Sell, true, false, true);
        lv(&mut b, f64::NAN, 1.0, Side::Buy, false, true, true);
        assert_eq!(b.state(), DepthState::Broken);
        lv(&mut b, 100.0, 1.0, Side::Buy, true, true, false);
        lv(&mut b, 101.0, 1.0, Side::Sell, true, false, true);
        lv(&mut b, 101.0, 1.0, Side::Buy, false, true, true);
        assert_eq!(b.state(), DepthState::Ready);
        assert!(b.levels_for(Side::Buy).is_none(), "crossed");
        lv(&mut b, 101.0, 0.0, Side::Buy, false, true, true);
        assert!(b.levels_for(Side::Buy).is_some());
    }

    #[test]
    fn an_empty_snapshot_marker_empties_the_book() {
        let mut b = DepthBook::new(8);
        lv(&mut b, 100.0, 1.0, Side::Buy, true, true, true);
        lv(&mut b, f64::NAN, 0.0, Side::Buy, true, true, true);
        assert_eq!(b.state(), DepthState::Ready);
        assert!(b.levels_for(Side::Sell).unwrap().0.is_empty());
    }

    #[test]
    fn capacity_keeps_the_best_levels_and_marks_the_side_truncated() {
        let mut b = DepthBook::new(3);
        lv(&mut b, 1.0, 1.0, Side::Sell, true, true, false);
        for p in [105.0, 103.0, 104.0, 102.0, 101.0] {
            lv(&mut b, p, 1.0, Side::Sell, true, false, false);
        }
        lv(&mut b, 106.0, 1.0, Side::Sell, true, false, true);
        let (asks, truncated) = b.levels_for(Side::Buy).unwrap();
        assert_eq!(
            prices(asks),
            vec![(1.0, 1.0), (101.0, 1.0), (102.0, 1.0)],
            "the three best asks"
        );
        assert!(truncated);
        assert_eq!(b.counters().dropped, 4);
        let cap = b.asks.capacity();
        for k in 0..1000 {
            lv(
                &mut b,
                50.0 + (k % 97) as f64,
                (k % 3) as f64,
                Side::Sell,
                false,
                true,
                true,
            );
        }
        assert_eq!(b.asks.capacity(), cap, "never grows");
        assert!(b.asks.len() <= 3);
    }

    #[test]
    fn matches_a_reference_map_under_random_updates() {
        use std::collections::BTreeMap;
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut b = DepthBook::new(1024);
        let mut bids: BTreeMap<u64, f64> = BTreeMap::new();
        let mut asks: BTreeMap<u64, f64> = BTreeMap::new();
        lv(&mut b, f64::NAN, 0.0, Side::Buy, true, true, true);
        for _ in 0..20_000 {
            let buy = next() % 2 == 0;
            let tick = if buy {
                1 + next() % 100
            } else {
                101 + next() % 100
            };
            let size = if next() % 4 == 0 {
                0.0
            } else {
                (next() % 50) as f64
            };
            let side = if buy { Side::Buy } else { Side::Sell };
            lv(&mut b, tick as f64, size, side, false, true, true);
            let m = if buy { &mut bids } else { &mut asks };
            if size == 0.0 {
                m.remove(&tick);
            } else {
                m.insert(tick, size);
            }
        }
        let want_bids: Vec<(f64, f64)> = bids.iter().rev().map(|(&p, &s)| (p as f64, s)).collect();
        let want_asks: Vec<(f64, f64)> = asks.iter().map(|(&p, &s)| (p as f64, s)).collect();
        assert_eq!(prices(b.levels_for(Side::Sell).unwrap().0), want_bids);
        assert_eq!(prices(b.levels_for(Side::Buy).unwrap().0), want_asks);
    }
}
