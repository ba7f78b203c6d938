//! Bounded single-producer single-consumer ring for fixed-size `Copy` messages between two
//! pinned threads (rtrb / disruptor style).
//!
//! Layout: the producer's index (`tail`, next slot to write) and the consumer's index (`head`,
//! next slot to read) each sit alone on a cache line ([`CachePadded`]); both are free-running
//! `usize` counters (masked into the slot array), so `tail - head` is the fill level. Each side
//! keeps a private copy of its own index and a cached copy of the other side's index, and
//! re-reads the other side's atomic only when the cache says the ring is full (producer) or empty
//! (consumer): in steady state a push or a pop touches one slot and writes one shared line.
//! Orderings: the slot write happens before the `Release` store of `tail`, which the consumer
//! reads with `Acquire` before reading the slot; symmetrically the consumer's `Release` store of
//! `head` hands the slot back to the producer.
//!
//! Owns: the slot array, allocated once in [`ring`]. Must never: allocate, lock or block after
//! construction; drop a value silently ([`Producer::push`] gives a rejected value back in
//! [`Full`] and counts it); make a syscall ([`Producer::push_spin`] waits only as its
//! [`Waiter`] says).

use super::wait::Waiter;
use crossbeam_utils::CachePadded;
use std::cell::UnsafeCell;
use std::fmt;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The largest capacity [`ring`] accepts (after rounding up to a power of two).
pub const MAX_CAPACITY: usize = 1 << 30;

/// Why [`ring`] refused to build a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// The requested capacity is 0 or above [`MAX_CAPACITY`].
    #[error(
        "ring capacity {0} is out of range: must be 1..={MAX_CAPACITY} (rounded up to a power of two)"
    )]
    BadCapacity(usize),
}

/// [`Producer::push`] found the ring full; the value is handed back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Full<T>(pub T);

impl<T> fmt::Debug for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Full(..)")
    }
}

impl<T> fmt::Display for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ring full")
    }
}

impl<T> std::error::Error for Full<T> {}

/// [`Producer::push_spin`] could not deliver: the [`Consumer`] has been dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ring consumer is gone")]
pub struct Disconnected;

/// State shared by the two ends.
struct Shared<T> {
    /// Next slot the consumer reads; written only by the consumer.
    head: CachePadded<AtomicUsize>,
    /// Next slot the producer writes; written only by the producer.
    tail: CachePadded<AtomicUsize>,
    /// Liveness of the two ends, on their own line (written once each, at drop).
    alive: CachePadded<[AtomicBool; 2]>,
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
}

const PRODUCER: usize = 0;
const CONSUMER: usize = 1;

// SAFETY: the slots are only reached through one Producer and one Consumer (neither is Clone),
// and the head/tail protocol gives each slot to exactly one of them at a time, with
// Release/Acquire hand-over; T: Send because values move between threads.
unsafe impl<T: Send> Sync for Shared<T> {}

/// The writing end of a ring. `Send`, not `Clone`: exactly one thread pushes.
///
/// Aligned to 128 bytes (two cache lines, the unit of the adjacent-line prefetcher) so that its
/// private indices, written on every push, never share a line with the consumer's wherever the
/// two handles are stored.
#[repr(align(128))]
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// Private copy of `shared.tail` (only this side writes it).
    tail: usize,
    /// Last value of `shared.head` seen; the real head is never behind it.
    cached_head: usize,
    capacity: usize,
    full_count: u64,
}

/// The reading end of a ring. `Send`, not `Clone`: exactly one thread pops. Aligned like
/// [`Producer`], for the same reason.
#[repr(align(128))]
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// Private copy of `shared.head` (only this side writes it).
    head: usize,
    /// Last value of `shared.tail` seen; the real tail is never behind it.
    cached_tail: usize,
}

/// Builds a ring holding `capacity` values, rounded up to a power of two and at least 2.
/// The slot array is allocated here, once; nothing allocates afterwards.
pub fn ring<T: Copy + Send>(capacity: usize) -> Result<(Producer<T>, Consumer<T>), RingError> {
    if capacity == 0 || capacity > MAX_CAPACITY {
        return Err(RingError::BadCapacity(capacity));
    }
    let capacity = capacity.next_power_of_two().max(2);
    let slots: Box<[UnsafeCell<MaybeUninit<T>>]> = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        alive: CachePadded::new([AtomicBool::new(true), AtomicBool::new(true)]),
        slots,
        mask: capacity - 1,
    });
    let producer = Producer {
        shared: Arc::clone(&shared),
        tail: 0,
        cached_head: 0,
        capacity,
        full_count: 0,
    };
    let consumer = Consumer {
        shared,
        head: 0,
        cached_tail: 0,
    };
    Ok((producer, consumer))
}

impl<T: Copy + Send> Producer<T> {
    /// Writes `v` into the next slot, or gives it back in [`Full`] (and counts it in
    /// [`full_count`](Self::full_count)) if the consumer has not freed a slot yet.
    #[inline]
    pub fn push(&mut self, v: T) -> Result<(), Full<T>> {
        let r = self.try_push(v);
        if r.is_err() {
            self.full_count += 1;
        }
        r
    }

    /// [`push`](Self::push) without counting a full ring: for retries of a value already
    /// counted (conflation flushes, [`push_spin`](Self::push_spin)).
    #[inline]
    pub(crate) fn try_push(&mut self, v: T) -> Result<(), Full<T>> {
        let tail = self.tail;
        if tail.wrapping_sub(self.cached_head) == self.capacity {
            self.cached_head = self.shared.head.load(Ordering::Acquire);
            if tail.wrapping_sub(self.cached_head) == self.capacity {
                return Err(Full(v));
            }
        }
        let slot = &self.shared.slots[tail & self.shared.mask];
        // SAFETY: tail - head < capacity, so this slot is not between head and tail: the
        // consumer has finished reading it (its Release store of head, seen by our Acquire load,
        // ordered that read before this write) and will not read it until our Release store of
        // tail below. Only this Producer writes slots (it is not Clone), so no other write races.
        unsafe { (*slot.get()).write(v) };
        self.tail = tail.wrapping_add(1);
        self.shared.tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Pushes `v`, waiting with `wait` while the ring is full, for edges that must never drop
    /// (hedge intents, fills). Returns `Err` only if the consumer is gone (checked before the
    /// first attempt and while waiting), so a value is never left in a ring nobody reads.
    /// A wait counts once in [`full_count`](Self::full_count); `wait` is reset on success.
    ///
    /// Blocks until the consumer pops: never use it when the consumer is a tile fused on the
    /// same thread (it would wait forever); there, `push` and retry on the next step.
    pub fn push_spin(&mut self, mut v: T, wait: &mut Waiter) -> Result<(), Disconnected> {
        if !self.is_consumer_alive() {
            return Err(Disconnected);
        }
        let mut counted = false;
        loop {
            match self.try_push(v) {
                Ok(()) => {
                    if counted {
                        wait.reset();
                    }
                    return Ok(());
                }
                Err(Full(back)) => {
                    if !counted {
                        self.full_count += 1;
                        counted = true;
                    }
                    if !self.is_consumer_alive() {
                        return Err(Disconnected);
                    }
                    v = back;
                    wait.idle();
                }
            }
        }
    }

    /// How many values the ring holds when full (a power of two, ≥ 2).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Times [`push`](Self::push) found the ring full (and [`push_spin`](Self::push_spin) had to
    /// wait).
    #[inline]
    pub fn full_count(&self) -> u64 {
        self.full_count
    }

    /// Values pushed and not yet popped (an upper bound: the consumer may be popping).
    #[inline]
    pub fn len(&self) -> usize {
        self.tail
            .wrapping_sub(self.shared.head.load(Ordering::Acquire))
    }

    /// True if the consumer has popped everything pushed (as far as this side can see).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// False once the [`Consumer`] has been dropped.
    #[inline]
    pub fn is_consumer_alive(&self) -> bool {
        self.shared.alive[CONSUMER].load(Ordering::Acquire)
    }
}

impl<T: Copy + Send> Consumer<T> {
    /// Takes the oldest value, or `None` if the ring is empty.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        let head = self.head;
        if head == self.cached_tail {
            self.cached_tail = self.shared.tail.load(Ordering::Acquire);
            if head == self.cached_tail {
                return None;
            }
        }
        let slot = &self.shared.slots[head & self.shared.mask];
        // SAFETY: head != tail, so the producer wrote this slot before its Release store of tail,
        // which our Acquire load saw; the producer does not write it again until our Release
        // store of head below. Only this Consumer reads slots (it is not Clone).
        let v = unsafe { (*slot.get()).assume_init_read() };
        self.head = head.wrapping_add(1);
        self.shared.head.store(self.head, Ordering::Release);
        Some(v)
    }

    /// Values waiting to be popped (a lower bound: the producer may be pushing).
    #[inline]
    pub fn len(&self) -> usize {
        self.shared
            .tail
            .load(Ordering::Acquire)
            .wrapping_sub(self.head)
    }

    /// True if nothing is waiting to be popped.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many values the ring holds when full.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.shared.mask + 1
    }

    /// False once the [`Producer`] has been dropped (values already pushed can still be popped).
    #[inline]
    pub fn is_producer_alive(&self) -> bool {
        self.shared.alive[PRODUCER].load(Ordering::Acquire)
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        self.shared.alive[PRODUCER].store(false, Ordering::Release);
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        self.shared.alive[CONSUMER].store(false, Ordering::Release);
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.capacity)
            .field("tail", &self.tail)
            .field("full_count", &self.full_count)
            .finish()
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &(self.shared.mask + 1))
            .field("head", &self.head)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::wait::{WaitStrategy, Waiter};

    fn assert_send<T: Send>() {}

    #[test]
    fn ends_are_send() {
        assert_send::<Producer<u64>>();
        assert_send::<Consumer<u64>>();
    }

    #[test]
    fn capacity_rounds_up_to_a_power_of_two_at_least_two() {
        for (asked, got) in [(1, 2), (2, 2), (3, 4), (5, 8), (1000, 1024), (1024, 1024)] {
            let (p, c) = ring::<u8>(asked).unwrap();
            assert_eq!(p.capacity(), got, "asked {asked}");
            assert_eq!(c.capacity(), got, "asked {asked}");
        }
    }

    #[test]
    fn bad_capacity_is_an_error_naming_it() {
        assert_eq!(ring::<u8>(0).unwrap_err(), RingError::BadCapacity(0));
        let too_big = MAX_CAPACITY + 1;
        let e = ring::<u8>(too_big).unwrap_err();
        assert_eq!(e, RingError::BadCapacity(too_big));
        assert!(e.to_string().contains(&too_big.to_string()), "{e}");
    }

    #[test]
    fn empty_then_full_then_empty() {
        let (mut p, mut c) = ring::<u32>(4).unwrap();
        assert_eq!(c.pop(), None);
        assert!(c.is_empty());
        for i in 0..4 {
            p.push(i).unwrap();
        }
        assert_eq!(p.push(99), Err(Full(99)));
        assert_eq!(p.push(98), Err(Full(98)));
        assert_eq!(p.full_count(), 2);
        assert_eq!(c.len(), 4);
        assert_eq!(p.len(), 4);
        for i in 0..4 {
            assert_eq!(c.pop(), Some(i));
        }
        assert_eq!(c.pop(), None);
        assert!(c.is_empty());
        assert!(p.is_empty());
        assert_eq!(p.full_count(), 2);
    }

    #[test]
    fn wraps_around_many_times_in_order() {
        let (mut p, mut c) = ring::<u64>(8).unwrap();
        let mut next_out = 0u64;
        let mut next_in = 0u64;
        // Uneven batches so the indices cross the end of the array at every offset.
        for round in 0..200u64 {
            let batch = 1 + round % 4; // at most 4 in flight after the drain below: fits in 8
            for _ in 0..batch {
                p.push(next_in).unwrap();
                next_in += 1;
            }
            let take = 1 + (round * 7) % batch.max(1);
            for _ in 0..take {
                assert_eq!(c.pop(), Some(next_out));
                next_out += 1;
            }
            while c.len() > 4 {
                assert_eq!(c.pop(), Some(next_out));
                next_out += 1;
            }
        }
        while let Some(v) = c.pop() {
            assert_eq!(v, next_out);
            next_out += 1;
        }
        assert_eq!(next_out, next_in);
        assert_eq!(p.full_count(), 0);
    }

    #[test]
    fn liveness_follows_drops() {
        let (p, c) = ring::<u8>(2).unwrap();
        assert!(p.is_consumer_alive());
        assert!(c.is_producer_alive());
        drop(c);
        assert!(!p.is_consumer_alive());
        let (p2, c2) = ring::<u8>(2).unwrap();
        drop(p2);
        assert!(!c2.is_producer_alive());
        drop(p);
    }

    #[test]
    fn values_left_in_the_ring_are_dropped_with_it() {
        let (mut p, c) = ring::<[u64; 16]>(4).unwrap();
        p.push([7; 16]).unwrap();
        p.push([8; 16]).unwrap();
        drop(p);
        drop(c);
    }

    #[test]
    fn popping_after_the_producer_is_gone_drains_what_was_pushed() {
        let (mut p, mut c) = ring::<u16>(4).unwrap();
        p.push(1).unwrap();
        p.push(2).unwrap();
        drop(p);
        assert!(!c.is_producer_alive());
        assert_eq!(c.pop(), Some(1));
        assert_eq!(c.pop(), Some(2));
        assert_eq!(c.pop(), None);
    }

    #[test]
    fn push_spin_fails_only_when_the_consumer_is_gone() {
        let (mut p, c) = ring::<u8>(2).unwrap();
        let mut w = Waiter::new(WaitStrategy::Spin);
        p.push_spin(1, &mut w).unwrap();
        p.push_spin(2, &mut w).unwrap();
        assert_eq!(p.full_count(), 0);
        drop(c);
        assert_eq!(p.push_spin(3, &mut w), Err(Disconnected));
    }

    #[test]
    fn push_spin_waits_for_room_across_threads() {
        let n: u64 = if cfg!(miri) { 200 } else { 100_000 };
        let (mut p, mut c) = ring::<u64>(2).unwrap();
        let t = std::thread::spawn(move || {
            let mut w = Waiter::new(WaitStrategy::SpinYield);
            for i in 0..n {
                p.push_spin(i, &mut w).unwrap();
            }
            p.full_count()
        });
        let mut expect = 0;
        while expect < n {
            if let Some(v) = c.pop() {
                assert_eq!(v, expect);
                expect += 1;
            } else {
                std::thread::yield_now();
            }
        }
        let fulls = t.join().unwrap();
        assert!(fulls <= n);
        assert_eq!(c.pop(), None);
    }

    #[test]
    fn two_threads_deliver_every_value_once_in_order() {
        let n: u64 = if cfg!(miri) { 2_000 } else { 1_000_000 };
        let (mut p, mut c) = ring::<u64>(64).unwrap();
        let producer = std::thread::spawn(move || {
            let mut i = 0;
            while i < n {
                match p.push(i) {
                    Ok(()) => i += 1,
                    Err(Full(back)) => {
                        assert_eq!(back, i);
                        std::hint::spin_loop();
                        if cfg!(miri) {
                            std::thread::yield_now();
                        }
                    }
                }
            }
        });
        let mut expect = 0u64;
        let mut sum = 0u64;
        while expect < n {
            match c.pop() {
                Some(v) => {
                    assert_eq!(v, expect, "lost or duplicated value");
                    sum = sum.wrapping_add(v);
                    expect += 1;
                }
                None => {
                    std::hint::spin_loop();
                    if cfg!(miri) {
                        std::thread::yield_now();
                    }
                }
            }
        }
        producer.join().unwrap();
        assert_eq!(c.pop(), None);
        assert_eq!(sum, n * (n - 1) / 2);
        assert!(!c.is_producer_alive());
    }
}
