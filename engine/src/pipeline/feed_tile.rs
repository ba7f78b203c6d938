//! The feed tile: a feed loop's connections → parsed [`MarketEvent`]s → the pricer's ring.
//!
//! Owns the [`FeedLoop`] (its sockets, parsers and reconnection) and the market-data edge's
//! conflation: when the ring is full, the latest event per instrument waits in a fixed
//! [`Conflator`] (a newer tick for the same instrument replaces it: market data conflates to
//! the latest) and is flushed first on the next step. Connection events, book deltas, trades
//! and chain heads get keys of their own and are never replaced; connection events and book
//! deltas are also never evicted for newer ticks. A book delta that still has to be dropped
//! (the table full of kept entries) is never lost silently: its book gets a `SequenceGap` as
//! soon as there is room, so the pricer stops using that book until its next snapshot, which
//! the feed tile asks the book's session for at once (`Session::request_resync`: Deribit
//! resubscribes the channel, Binance fetches a REST snapshot). Never allocates per message.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keel_feeds::clock;
use keel_feeds::event::{EventBody, MarketEvent, Venue};
use keel_feeds::instrument::InstrumentId;
use keel_feeds::net::FeedLoop;

use super::conflate::{Conflator, OfferOutcome};
use super::ring::Producer;
use super::tile::{Tile, TileError};

/// What travels on the feed → pricer ring: the event and when the parser produced it.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TickMsg {
    /// The normalised event (carries `recv_ts_ns`, the socket read).
    pub event: MarketEvent,
    /// Local clock when the parser emitted it, ns.
    pub parsed_ns: u64,
}

/// Pending events held while the ring is full (distinct instruments plus connection events).
pub const CONFLATE_SLOTS: usize = 1024;

/// Counters of the feed tile (relaxed atomics, read by the status line).
#[derive(Debug, Default)]
pub struct FeedCounters {
    /// Events the parsers produced.
    pub events: AtomicU64,
    /// Times the ring was full when an event arrived.
    pub ring_full: AtomicU64,
    /// Events replaced by a newer one for the same instrument while waiting.
    pub conflated: AtomicU64,
    /// Events dropped because the conflation table was full (oldest first).
    pub dropped: AtomicU64,
    /// Book deltas dropped that way (each answered by a `SequenceGap` for its book).
    pub book_levels_lost: AtomicU64,
}

/// Books whose deltas were dropped and whose `SequenceGap` is still to be sent.
const LOST_BOOKS: usize = 16;

/// Books that lost a delta, waiting for room to send their gap.
#[derive(Clone, Copy, Debug)]
struct LostBooks {
    books: [(InstrumentId, Venue, u8); LOST_BOOKS],
    n: usize,
    /// More than [`LOST_BOOKS`] distinct books: one gap for every book (instrument NONE).
    all: bool,
    /// The same books, to be asked of their sessions for a new snapshot (after the read).
    resync: [(InstrumentId, u8); LOST_BOOKS],
    n_resync: usize,
    resync_all: bool,
}

impl LostBooks {
    const fn new() -> Self {
        Self {
            books: [(InstrumentId::NONE, Venue::Deribit, 0); LOST_BOOKS],
            n: 0,
            all: false,
            resync: [(InstrumentId::NONE, 0); LOST_BOOKS],
            n_resync: 0,
            resync_all: false,
        }
    }

    fn record(&mut self, ev: &MarketEvent) {
        let key = (ev.instrument, ev.venue, ev.conn);
        if !self.resync_all && !self.resync[..self.n_resync].contains(&(ev.instrument, ev.conn)) {
            if self.n_resync < LOST_BOOKS {
                self.resync[self.n_resync] = (ev.instrument, ev.conn);
                self.n_resync += 1;
            } else {
                self.resync_all = true;
            }
        }
        if self.all || self.books[..self.n].contains(&key) {
            return;
        }
        if self.n < LOST_BOOKS {
            self.books[self.n] = key;
            self.n += 1;
        } else {
            self.all = true;
        }
    }

    /// Asks the sessions for new snapshots of the books that lost a delta (`conn_base`: the
    /// loop's first connection id).
    fn resync(&mut self, feed: &mut FeedLoop, conn_base: u8) {
        if self.resync_all {
            for c in 0..feed.len() {
                feed.request_resync(c, InstrumentId::NONE);
            }
        } else {
            for &(i, c) in &self.resync[..self.n_resync] {
                feed.request_resync(usize::from(c.wrapping_sub(conn_base)), i);
            }
        }
        self.n_resync = 0;
        self.resync_all = false;
    }

    /// Offers the pending gaps (kept entries); what does not fit waits for the next step.
    fn send(&mut self, pending: &mut Conflator<TickMsg, CONFLATE_SLOTS>, conn_seq: &mut u64) {
        let now = clock::now_ns();
        let gap = |instrument, venue, conn| TickMsg {
            event: MarketEvent {
                exchange_ts_ns: 0,
                recv_ts_ns: now,
                instrument,
                venue,
                conn,
                body: EventBody::SequenceGap {
                    expected: 0,
                    got: 0,
                },
            },
            parsed_ns: now,
        };
        let mut offer = |m: TickMsg| {
            *conn_seq += 1;
            !matches!(
                pending.offer_keep((1u64 << 63) | *conn_seq, m),
                OfferOutcome::Rejected
            )
        };
        if self.all {
            if offer(gap(InstrumentId::NONE, Venue::Deribit, u8::MAX)) {
                self.all = false;
                self.n = 0;
            }
            return;
        }
        while self.n > 0 {
            let (i, v, c) = self.books[self.n - 1];
            if !offer(gap(i, v, c)) {
                return;
            }
            self.n -= 1;
        }
    }
}

fn is_book(b: &EventBody) -> bool {
    matches!(
        b,
        EventBody::BookLevel { .. } | EventBody::SequenceGap { .. }
    )
}

fn kind_code(b: &EventBody) -> u64 {
    match b {
        EventBody::Quote { .. } => 1,
        EventBody::OptionTicker(_) => 2,
        EventBody::VenueGreeks(_) => 3,
        EventBody::Mark { .. } => 4,
        EventBody::Index { .. } => 5,
        _ => 6,
    }
}

/// The feed tile.
pub struct FeedTile {
    feed: FeedLoop,
    edge: Edge,
    conn_base: u8,
    counters: Arc<FeedCounters>,
}

impl FeedTile {
    /// A feed tile over `feed`'s connections, writing into `out`. `conn_base` is added to
    /// every event's [`MarketEvent::conn`] (a loop numbers its connections from 0): with several
    /// feed threads, give each the count of connections before it so that connection ids are
    /// unique engine-wide (the market state tracks which are down by id).
    pub fn new(feed: FeedLoop, out: Producer<TickMsg>, conn_base: u8) -> (Self, Arc<FeedCounters>) {
        let counters = Arc::new(FeedCounters::default());
        (
            Self {
                feed,
                edge: Edge::new(out),
                conn_base,
                counters: counters.clone(),
            },
            counters,
        )
    }
}

/// The feed → pricer edge: the ring, the conflation table and the books that lost a delta.
struct Edge {
    out: Producer<TickMsg>,
    pending: Box<Conflator<TickMsg, CONFLATE_SLOTS>>,
    lost: LostBooks,
    conn_seq: u64,
}

/// What one offered event did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Offered {
    /// The ring was full when it came.
    full: bool,
    /// A book delta (this one or an older one) was dropped.
    book_lost: bool,
}

impl Edge {
    fn new(out: Producer<TickMsg>) -> Self {
        Self {
            out,
            pending: Box::new(Conflator::new()),
            lost: LostBooks::new(),
            conn_seq: 0,
        }
    }

    /// Before reading: the gaps owed, then what waits, into the ring.
    fn flush(&mut self) {
        if self.lost.n > 0 || self.lost.all {
            self.lost.send(&mut self.pending, &mut self.conn_seq);
        }
        if self.pending.pending() > 0 {
            self.pending.flush_into(&mut self.out);
        }
    }

    /// One event: into the ring if nothing waits and there is room, else into the table.
    fn offer(&mut self, event: MarketEvent) -> Offered {
        let mut r = Offered::default();
        let msg = TickMsg {
            event,
            parsed_ns: clock::now_ns(),
        };
        if self.pending.pending() == 0 {
            match self.out.push(msg) {
                Ok(()) => return r,
                Err(_) => r.full = true,
            }
        }
        let connection = matches!(
            event.body,
            EventBody::Connected
                | EventBody::Disconnected { .. }
                | EventBody::Reconnected { .. }
                | EventBody::Stale { .. }
                | EventBody::Fresh
        );
        let key = match event.body {
            // Facts that a newer event does not supersede (connection changes, book
            // deltas, trades, gaps, chain heads) get a key of their own: never replaced.
            EventBody::Connected
            | EventBody::Disconnected { .. }
            | EventBody::Reconnected { .. }
            | EventBody::BookLevel { .. }
            | EventBody::Trade { .. }
            | EventBody::SequenceGap { .. }
            | EventBody::ChainHead { .. } => {
                self.conn_seq += 1;
                (1u64 << 63) | self.conn_seq
            }
            // One slot per (instrument, connection, kind): an option's ticker and its venue
            // Greeks are different facts, never one replacing the other.
            _ => {
                u64::from(event.instrument.0)
                    | (u64::from(event.conn) << 32)
                    | (kind_code(&event.body) << 40)
            }
        };
        // Connection events are never evicted (the pricer must see a feed go down), nor are
        // book deltas (a lost delta corrupts the book until its next snapshot, a lost ticker
        // is superseded by the next one).
        let outcome = if connection || is_book(&event.body) {
            self.pending.offer_keep(key, msg)
        } else {
            self.pending.offer(key, msg)
        };
        match outcome {
            OfferOutcome::DroppedOldest {
                value: Some(old), ..
            } if is_book(&old.event.body) => {
                self.lost.record(&old.event);
                r.book_lost = true;
            }
            OfferOutcome::Rejected if is_book(&event.body) => {
                self.lost.record(&event);
                r.book_lost = true;
            }
            _ => {}
        }
        r
    }
}

impl Tile for FeedTile {
    fn name(&self) -> &'static str {
        "feed"
    }

    fn init(&mut self) -> Result<(), TileError> {
        if self.feed.is_empty() {
            return Err(TileError::new("feed tile has no connection"));
        }
        Ok(())
    }

    fn step(&mut self) -> bool {
        let Self {
            feed,
            edge,
            conn_base,
            counters,
        } = self;
        edge.flush();
        let (mut n, mut full, mut books_lost) = (0u64, 0u64, 0u64);
        let base = *conn_base;
        let mut emit = |mut event: MarketEvent| {
            event.conn = event.conn.wrapping_add(base);
            n += 1;
            let o = edge.offer(event);
            full += u64::from(o.full);
            books_lost += u64::from(o.book_lost);
        };
        // A poller error is not a connection failure: try again on the next step.
        let _ = feed.run_once(Duration::ZERO, &mut emit);
        if books_lost > 0 {
            edge.lost.resync(feed, base);
        }
        if n > 0 {
            counters.events.fetch_add(n, Ordering::Relaxed);
        }
        if full > 0 {
            counters.ring_full.fetch_add(full, Ordering::Relaxed);
        }
        if books_lost > 0 {
            counters
                .book_levels_lost
                .fetch_add(books_lost, Ordering::Relaxed);
        }
        counters
            .conflated
            .store(edge.pending.conflated(), Ordering::Relaxed);
        counters
            .dropped
            .store(edge.pending.dropped(), Ordering::Relaxed);
        n > 0
    }

    fn teardown(&mut self) {
        let out = &mut self.edge.out;
        let base = self.conn_base;
        self.feed.shutdown(&mut |mut event: MarketEvent| {
            event.conn = event.conn.wrapping_add(base);
            let _ = out.push(TickMsg {
                event,
                parsed_ns: clock::now_ns(),
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::pipeline::ring::ring;
    use keel_feeds::event::{DisconnectReason, Side};

    fn ev(id: u32, body: EventBody) -> MarketEvent {
        MarketEvent {
            exchange_ts_ns: 0,
            recv_ts_ns: 1,
            instrument: InstrumentId(id),
            venue: Venue::Deribit,
            conn: 0,
            body,
        }
    }

    fn level(id: u32, price: f64) -> MarketEvent {
        ev(
            id,
            EventBody::BookLevel {
                price,
                size: 1.0,
                side: Side::Buy,
                snapshot: false,
                first: true,
                last: true,
                seq: 1,
            },
        )
    }

    fn quote(id: u32, bid: f64) -> MarketEvent {
        ev(
            id,
            EventBody::Quote {
                bid,
                bid_size: 1.0,
                ask: bid + 1.0,
                ask_size: 1.0,
            },
        )
    }

    #[test]
    fn book_deltas_and_connection_events_outlive_ticks_and_a_lost_delta_breaks_its_book() {
        let (tx, mut rx) = ring::<TickMsg>(4).unwrap();
        let mut e = Edge::new(tx);
        // Fill the ring, then the table: book deltas and a disconnection are kept; ticks of
        // other instruments come and go.
        for k in 0..4 {
            assert_eq!(e.offer(quote(1000 + k, 1.0)), Offered::default());
        }
        assert!(e.offer(level(7, 100.0)).full);
        let down = ev(
            0,
            EventBody::Disconnected {
                reason: DisconnectReason::PeerClosed,
            },
        );
        e.offer(down);
        for k in 0..(CONFLATE_SLOTS as u32 * 2) {
            let o = e.offer(quote(k, f64::from(k)));
            assert!(!o.book_lost);
        }
        // The table is full of ticks and the two kept entries: more book deltas are kept too
        // until only kept entries remain; then one is refused and its book owes a gap.
        let mut lost_at = None;
        for k in 0..CONFLATE_SLOTS {
            if e.offer(level(8, 1.0 + k as f64)).book_lost {
                lost_at = Some(k);
                break;
            }
        }
        assert_eq!(
            lost_at,
            Some(CONFLATE_SLOTS - 2),
            "refused once the table is all kept"
        );
        assert_eq!(e.lost.n, 1);
        assert_eq!(
            e.lost.resync[..e.lost.n_resync],
            [(InstrumentId(8), 0)],
            "its session is asked for a new snapshot after the read"
        );
        // Drain and flush until everything has come through: the first level, the
        // disconnection, every kept level, and the gap for book 8 after them.
        let mut seen = Vec::new();
        for _ in 0..10_000 {
            while let Some(m) = rx.pop() {
                seen.push(m.event);
            }
            if e.pending.pending() == 0 && e.lost.n == 0 {
                break;
            }
            e.flush();
        }
        while let Some(m) = rx.pop() {
            seen.push(m.event);
        }
        let books: Vec<&MarketEvent> = seen.iter().filter(|m| is_book(&m.body)).collect();
        assert_eq!(books.first().map(|m| m.instrument), Some(InstrumentId(7)));
        assert!(seen.iter().any(|m| m.body == down.body));
        let gaps: Vec<&&MarketEvent> = books
            .iter()
            .filter(|m| matches!(m.body, EventBody::SequenceGap { .. }))
            .collect();
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].instrument, InstrumentId(8));
        assert_eq!(
            books.len(),
            1 + (CONFLATE_SLOTS - 2) + 1,
            "every kept level and the gap"
        );
    }

    #[test]
    fn more_lost_books_than_named_break_every_book() {
        let (tx, _rx) = ring::<TickMsg>(1).unwrap();
        let mut e = Edge::new(tx);
        for k in 0..=(LOST_BOOKS as u32) {
            e.lost.record(&level(k, 1.0));
        }
        assert!(e.lost.all && e.lost.resync_all);
        e.flush();
        assert!(!e.lost.all && e.lost.n == 0);
    }

    #[test]
    fn tick_message_is_three_cache_lines() {
        assert_eq!(core::mem::size_of::<TickMsg>(), 192);
        assert_eq!(core::mem::align_of::<TickMsg>(), 64);
    }
}
