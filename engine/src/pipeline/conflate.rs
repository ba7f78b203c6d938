//! Conflation for market-data edges: when the ring to the pricer is full, the feed keeps only the
//! latest event per key and sends the pending ones, oldest first, once the ring has room. Market
//! data conflates; fills and intents never do (they use [`Producer::push_spin`]).
//!
//! Use on the feed tile, per event:
//! 1. [`Conflator::flush_into`] the ring first, so pending events keep their order ahead of new
//!    ones;
//! 2. if nothing is pending, [`Producer::push`] the event directly;
//! 3. otherwise, or on [`Full`](super::ring::Full), [`Conflator::offer`] it under its key.
//!
//! Keys are the caller's choice: the instrument id for ticks and book updates, and a distinct
//! key space for connection events (e.g. `1 << 63 | venue`), so that a `Disconnected` is never
//! replaced by a tick. Offer connection events with [`Conflator::offer_keep`]: a kept entry is
//! never evicted to make room for another key (it can still be replaced by a newer value under
//! its own key). Size `N` above the number of keys the feed can produce (instruments + venues)
//! and eviction never happens; [`Conflator::dropped`] counts it if it does.
//!
//! Owns: `N` fixed slots (no allocation, ever). Must never: reorder pending keys (a replaced
//! value keeps its key's place in line), or evict a kept entry.

use super::ring::Producer;

/// What [`Conflator::offer`] did with a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfferOutcome<T> {
    /// A new key: appended behind the pending ones.
    Queued,
    /// The key was already pending: its value was replaced in place (counted as conflated).
    Conflated,
    /// `N` keys were pending: the oldest entry not kept (this `key`, with its `value`) was
    /// dropped to make room (counted as dropped).
    DroppedOldest {
        /// The dropped entry's key.
        key: u64,
        /// Its value (`None` never happens inside the pending window).
        value: Option<T>,
    },
    /// `N` kept keys were pending: the offered value itself was dropped (counted as dropped).
    Rejected,
}

/// Latest pending value per key, in arrival order of the keys, for up to `N` keys.
#[derive(Clone, Debug)]
pub struct Conflator<T: Copy, const N: usize> {
    keys: [u64; N],
    /// `None` only outside the pending window.
    values: [Option<T>; N],
    kept: [bool; N],
    /// Slot of the oldest pending entry.
    head: usize,
    /// Number of pending entries (slots `head .. head + len`, wrapping).
    len: usize,
    conflated: u64,
    dropped: u64,
}

impl<T: Copy, const N: usize> Default for Conflator<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy, const N: usize> Conflator<T, N> {
    pub fn new() -> Self {
        const { assert!(N > 0, "a Conflator needs at least one slot") };
        Self {
            keys: [0; N],
            values: [None; N],
            kept: [false; N],
            head: 0,
            len: 0,
            conflated: 0,
            dropped: 0,
        }
    }

    #[inline]
    fn slot(&self, i: usize) -> usize {
        let s = self.head + i;
        if s >= N { s - N } else { s }
    }

    /// Keeps `v` as the latest value of `key`. If `key` is pending its value is replaced in place
    /// (conflated); otherwise it is appended, and if `N` keys are already pending the oldest
    /// entry not offered with [`offer_keep`](Self::offer_keep) is dropped to make room.
    #[inline]
    pub fn offer(&mut self, key: u64, v: T) -> OfferOutcome<T> {
        self.insert(key, v, false)
    }

    /// [`offer`](Self::offer) for values that must not be evicted by other keys (connection
    /// events). If all `N` pending entries are kept, this value is rejected (and counted).
    #[inline]
    pub fn offer_keep(&mut self, key: u64, v: T) -> OfferOutcome<T> {
        self.insert(key, v, true)
    }

    fn insert(&mut self, key: u64, v: T, keep: bool) -> OfferOutcome<T> {
        for i in 0..self.len {
            let s = self.slot(i);
            if self.keys[s] == key {
                self.values[s] = Some(v);
                self.kept[s] |= keep;
                self.conflated += 1;
                return OfferOutcome::Conflated;
            }
        }
        let mut outcome = OfferOutcome::Queued;
        if self.len == N {
            // Evict the oldest entry that is not kept: shift the older kept entries up by one
            // slot over it, then advance head past the freed slot.
            let Some(victim) = (0..self.len).find(|&i| !self.kept[self.slot(i)]) else {
                self.dropped += 1;
                return OfferOutcome::Rejected;
            };
            outcome = OfferOutcome::DroppedOldest {
                key: self.keys[self.slot(victim)],
                value: self.values[self.slot(victim)],
            };
            for i in (0..victim).rev() {
                let (from, to) = (self.slot(i), self.slot(i + 1));
                self.keys[to] = self.keys[from];
                self.values[to] = self.values[from];
                self.kept[to] = self.kept[from];
            }
            let freed = self.head;
            self.values[freed] = None;
            self.head = self.slot(1);
            self.len -= 1;
            self.dropped += 1;
        }
        let s = self.slot(self.len);
        self.keys[s] = key;
        self.values[s] = Some(v);
        self.kept[s] = keep;
        self.len += 1;
        outcome
    }

    /// Pushes pending values into `p`, oldest first, until none is left or the ring is full;
    /// returns how many moved. A full ring here is not counted in `p.full_count()`: the values
    /// are still pending, not lost.
    pub fn flush_into(&mut self, p: &mut Producer<T>) -> usize
    where
        T: Send,
    {
        let mut moved = 0;
        while self.len > 0 {
            let s = self.head;
            if let Some(v) = self.values[s] {
                if p.try_push(v).is_err() {
                    break;
                }
                moved += 1;
            }
            self.values[s] = None;
            self.head = self.slot(1);
            self.len -= 1;
        }
        if self.len == 0 {
            self.head = 0;
        }
        moved
    }

    /// Keys waiting to be flushed.
    #[inline]
    pub fn pending(&self) -> usize {
        self.len
    }

    /// Values replaced by a newer value of the same key, since construction.
    #[inline]
    pub fn conflated(&self) -> u64 {
        self.conflated
    }

    /// Values dropped because `N` keys were pending, since construction.
    #[inline]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// How many keys can be pending at once.
    pub const fn capacity(&self) -> usize {
        N
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ring::ring;

    fn drain(c: &mut crate::pipeline::Consumer<(u64, u32)>) -> Vec<(u64, u32)> {
        std::iter::from_fn(|| c.pop()).collect()
    }

    #[test]
    fn keeps_the_latest_value_per_key_in_key_arrival_order() {
        let mut cf = Conflator::<(u64, u32), 8>::new();
        assert_eq!(cf.offer(1, (1, 10)), OfferOutcome::Queued);
        assert_eq!(cf.offer(2, (2, 20)), OfferOutcome::Queued);
        assert_eq!(cf.offer(1, (1, 11)), OfferOutcome::Conflated);
        assert_eq!(cf.offer(3, (3, 30)), OfferOutcome::Queued);
        assert_eq!(cf.offer(1, (1, 12)), OfferOutcome::Conflated);
        assert_eq!(cf.pending(), 3);
        assert_eq!(cf.conflated(), 2);
        assert_eq!(cf.dropped(), 0);
        let (mut p, mut c) = ring(16).unwrap();
        assert_eq!(cf.flush_into(&mut p), 3);
        assert_eq!(cf.pending(), 0);
        assert_eq!(drain(&mut c), [(1, 12), (2, 20), (3, 30)]);
    }

    #[test]
    fn a_full_conflator_drops_the_oldest_key() {
        let mut cf = Conflator::<(u64, u32), 3>::new();
        for k in 1..=3 {
            assert_eq!(cf.offer(k, (k, 0)), OfferOutcome::Queued);
        }
        assert_eq!(
            cf.offer(4, (4, 0)),
            OfferOutcome::DroppedOldest {
                key: 1,
                value: Some((1, 0))
            }
        );
        assert_eq!(
            cf.offer(5, (5, 0)),
            OfferOutcome::DroppedOldest {
                key: 2,
                value: Some((2, 0))
            }
        );
        assert_eq!(cf.offer(4, (4, 1)), OfferOutcome::Conflated);
        assert_eq!(cf.dropped(), 2);
        assert_eq!(cf.pending(), 3);
        let (mut p, mut c) = ring(8).unwrap();
        assert_eq!(cf.flush_into(&mut p), 3);
        assert_eq!(drain(&mut c), [(3, 0), (4, 1), (5, 0)]);
    }

    #[test]
    fn kept_entries_are_never_evicted() {
        let mut cf = Conflator::<(u64, u32), 3>::new();
        let conn = 1 << 63;
        cf.offer(1, (1, 0));
        assert_eq!(cf.offer_keep(conn, (conn, 9)), OfferOutcome::Queued);
        cf.offer(2, (2, 0));
        // Full: 1 is the oldest non-kept; then 2; the connection event stays in its place.
        assert_eq!(
            cf.offer(3, (3, 0)),
            OfferOutcome::DroppedOldest {
                key: 1,
                value: Some((1, 0))
            }
        );
        assert_eq!(
            cf.offer(4, (4, 0)),
            OfferOutcome::DroppedOldest {
                key: 2,
                value: Some((2, 0))
            }
        );
        assert_eq!(
            cf.offer(5, (5, 0)),
            OfferOutcome::DroppedOldest {
                key: 3,
                value: Some((3, 0))
            }
        );
        let (mut p, mut c) = ring(8).unwrap();
        cf.flush_into(&mut p);
        assert_eq!(drain(&mut c), [(conn, 9), (4, 0), (5, 0)]);
        // All kept: a new key is rejected, not an old one evicted.
        let mut cf = Conflator::<(u64, u32), 2>::new();
        cf.offer_keep(conn, (conn, 1));
        cf.offer_keep(conn + 1, (conn + 1, 1));
        assert_eq!(cf.offer(7, (7, 0)), OfferOutcome::Rejected);
        assert_eq!(cf.offer_keep(conn + 2, (0, 0)), OfferOutcome::Rejected);
        assert_eq!(cf.dropped(), 2);
        assert_eq!(cf.offer(conn, (conn, 2)), OfferOutcome::Conflated);
        cf.flush_into(&mut p);
        assert_eq!(drain(&mut c), [(conn, 2), (conn + 1, 1)]);
    }

    #[test]
    fn flush_stops_at_a_full_ring_and_resumes_in_order() {
        let mut cf = Conflator::<(u64, u32), 8>::new();
        for k in 0..6 {
            cf.offer(k, (k, 0));
        }
        let (mut p, mut c) = ring(4).unwrap();
        p.push((99, 0)).unwrap();
        assert_eq!(cf.flush_into(&mut p), 3);
        assert_eq!(cf.pending(), 3);
        assert_eq!(p.full_count(), 0, "a flush into a full ring loses nothing");
        assert_eq!(cf.flush_into(&mut p), 0);
        assert_eq!(drain(&mut c), [(99, 0), (0, 0), (1, 0), (2, 0)]);
        // Newer values of pending keys replace in place while waiting.
        cf.offer(4, (4, 7));
        cf.offer(9, (9, 0));
        assert_eq!(cf.flush_into(&mut p), 4);
        assert_eq!(drain(&mut c), [(3, 0), (4, 7), (5, 0), (9, 0)]);
        assert_eq!(cf.pending(), 0);
    }

    #[test]
    fn feed_pattern_delivers_the_latest_per_key_and_loses_nothing_else() {
        // The feed tile's pattern against a slow consumer, across wrap-around of both buffers.
        let mut cf = Conflator::<(u64, u32), 4>::new();
        let (mut p, mut c) = ring(2).unwrap();
        let mut last_seen = [None::<u32>; 4];
        for seq in 0..500u32 {
            let key = u64::from(seq % 4);
            let ev = (key, seq);
            cf.flush_into(&mut p);
            if cf.pending() > 0 || p.push(ev).is_err() {
                cf.offer(key, ev);
            }
            if seq % 3 == 0
                && let Some((k, s)) = c.pop()
            {
                let prev = last_seen[k as usize].replace(s);
                assert!(prev.is_none_or(|p| p < s), "key {k} went back");
            }
        }
        while cf.pending() > 0 || !c.is_empty() {
            cf.flush_into(&mut p);
            while let Some((k, s)) = c.pop() {
                last_seen[k as usize] = Some(s);
            }
        }
        assert_eq!(cf.dropped(), 0);
        assert!(cf.conflated() > 0);
        for (k, seen) in last_seen.iter().enumerate() {
            assert_eq!(*seen, Some(496 + k as u32), "the latest of key {k} arrives");
        }
    }
}
