//! The feed tile: a feed loop's connections → parsed [`MarketEvent`]s → the pricer's ring.
//!
//! Owns the [`FeedLoop`] (its sockets, parsers and reconnection) and the market-data edge's
//! conflation: when the ring is full, the latest event per instrument waits in a fixed
//! [`Conflator`] (a newer tick for the same instrument replaces it: market data conflates to
//! the latest) and is flushed first on the next step. Connection events, book deltas, trades
//! and chain heads get keys of their own and are never replaced. Never allocates per message.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keel_feeds::clock;
use keel_feeds::event::{EventBody, MarketEvent};
use keel_feeds::net::FeedLoop;

use super::conflate::Conflator;
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
    out: Producer<TickMsg>,
    pending: Box<Conflator<TickMsg, CONFLATE_SLOTS>>,
    conn_seq: u64,
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
                out,
                pending: Box::new(Conflator::new()),
                conn_seq: 0,
                conn_base,
                counters: counters.clone(),
            },
            counters,
        )
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
            out,
            pending,
            conn_seq,
            conn_base,
            counters,
        } = self;
        if pending.pending() > 0 {
            pending.flush_into(out);
        }
        let mut n = 0u64;
        let mut full = 0u64;
        let base = *conn_base;
        let mut emit = |mut event: MarketEvent| {
            event.conn = event.conn.wrapping_add(base);
            n += 1;
            let msg = TickMsg {
                event,
                parsed_ns: clock::now_ns(),
            };
            if pending.pending() == 0 {
                match out.push(msg) {
                    Ok(()) => return,
                    Err(back) => {
                        full += 1;
                        let _ = back;
                    }
                }
            }
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
                    *conn_seq += 1;
                    (1u64 << 63) | *conn_seq
                }
                // One slot per (instrument, connection, kind): an option's ticker and its venue
                // Greeks are different facts, never one replacing the other.
                _ => {
                    u64::from(event.instrument.0)
                        | (u64::from(event.conn) << 32)
                        | (kind_code(&event.body) << 40)
                }
            };
            pending.offer(key, msg);
        };
        // A poller error is not a connection failure: try again on the next step.
        let _ = feed.run_once(Duration::ZERO, &mut emit);
        if n > 0 {
            counters.events.fetch_add(n, Ordering::Relaxed);
        }
        if full > 0 {
            counters.ring_full.fetch_add(full, Ordering::Relaxed);
        }
        counters
            .conflated
            .store(pending.conflated(), Ordering::Relaxed);
        counters.dropped.store(pending.dropped(), Ordering::Relaxed);
        n > 0
    }

    fn teardown(&mut self) {
        let out = &mut self.out;
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

    #[test]
    fn tick_message_is_three_cache_lines() {
        assert_eq!(core::mem::size_of::<TickMsg>(), 192);
        assert_eq!(core::mem::align_of::<TickMsg>(), 64);
    }
}
