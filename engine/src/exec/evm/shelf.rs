//! The shelf between the signer thread and the exec thread: the current ladders (one slot per
//! nonce parity, so the ladder at `n + 1` is ready before `n` is spent), the signer's latest view
//! of the chain, and the nonce the exec tile will fire next.
//!
//! Owns nothing but `Arc`s and atomics. The exec side ([`LadderShelf::ladder`],
//! [`LadderShelf::view`]) is lock-free and allocation-free (`arc-swap` loads; the first load
//! on a thread registers it with arc-swap, which [`LadderShelf::warm`] does at start-up). The
//! exec thread never frees a ladder or a view: the [`ShelfWriter`] (signer side) keeps every
//! value it replaced until it is the last holder, then drops it itself.
//!
//! Protocol:
//! 1. The signer reads the chain (pending nonce, head block, base fee) and publishes a
//!    [`ChainView`]; the exec tile takes its first nonce from the first view (never fires before
//!    one exists: "nonce reconciled before the first hedge").
//! 2. The exec tile publishes the nonce it will fire next ([`LadderShelf::exec_next_nonce`]);
//!    the signer keeps unfired ladders at that nonce and the one after on the shelf, re-signing
//!    one when it was fired, when the base fee rises past its fee cap, or when the head block
//!    reaches its bundles' target block.
//! 3. A decision whose copies came back without an acceptance but with a timeout or transport
//!    error has an unknown fate (a copy may have landed). The exec tile holds it and asks for a
//!    nonce reading started after a grace time ([`LadderShelf::request_reconcile`]); a pending
//!    nonce past the held one means it landed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use arc_swap::Guard;

use super::ladder::Ladder;

/// `exec_next_nonce` before the exec tile knows its nonce.
pub const NONCE_UNKNOWN: u64 = u64::MAX;

/// What the signer last read from the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainView {
    /// `eth_getTransactionCount(address, "pending")`, read after `head_block` (so it counts
    /// every transaction included up to that block).
    pub pending_nonce: u64,
    /// `eth_blockNumber`.
    pub head_block: u64,
    /// Base fee of the head block, wei per gas.
    pub base_fee: u128,
    /// Local time the reading started, ns (`keel_feeds::clock::now_ns`).
    pub read_started_ns: u64,
}

/// Ladders and chain view shared by the signer (writer) and the exec tile (reader).
#[derive(Debug)]
pub struct LadderShelf {
    slots: [ArcSwapOption<Ladder>; 2],
    view: ArcSwapOption<ChainView>,
    exec_next_nonce: AtomicU64,
    reconcile_after_ns: AtomicU64,
}

/// A loaded ladder (a guard: hold it only within one step).
pub type LadderGuard = Guard<Option<Arc<Ladder>>>;
/// A loaded chain view.
pub type ViewGuard = Guard<Option<Arc<ChainView>>>;

impl LadderShelf {
    /// An empty shelf and its only writer.
    pub fn new() -> (Arc<LadderShelf>, ShelfWriter) {
        let shelf = Arc::new(LadderShelf {
            slots: [ArcSwapOption::empty(), ArcSwapOption::empty()],
            view: ArcSwapOption::empty(),
            exec_next_nonce: AtomicU64::new(NONCE_UNKNOWN),
            reconcile_after_ns: AtomicU64::new(0),
        });
        (
            shelf.clone(),
            ShelfWriter {
                shelf,
                retired_ladders: Vec::new(),
                retired_views: Vec::new(),
            },
        )
    }

    /// Loads once from every slot on the calling thread (arc-swap registers a thread on its
    /// first load, which allocates): call from the exec tile's `init`.
    pub fn warm(&self) {
        let _ = self.slots[0].load();
        let _ = self.view.load();
    }

    /// The ladder in `nonce`'s slot, if any; the caller checks its nonce.
    #[inline]
    pub fn ladder(&self, nonce: u64) -> LadderGuard {
        self.slots[(nonce & 1) as usize].load()
    }

    /// The latest chain view.
    #[inline]
    pub fn view(&self) -> ViewGuard {
        self.view.load()
    }

    /// The nonce the exec tile fires next ([`NONCE_UNKNOWN`] before it knows).
    pub fn exec_next_nonce(&self) -> u64 {
        self.exec_next_nonce.load(Ordering::Acquire)
    }

    /// Exec side: publishes the nonce it fires next.
    #[inline]
    pub fn set_exec_next_nonce(&self, n: u64) {
        self.exec_next_nonce.store(n, Ordering::Release);
    }

    /// Exec side: asks for a nonce reading started at or after `after_ns`.
    #[inline]
    pub fn request_reconcile(&self, after_ns: u64) {
        self.reconcile_after_ns.store(after_ns, Ordering::Release);
    }

    /// Signer side: the outstanding reconcile request (0 = none).
    pub fn reconcile_after_ns(&self) -> u64 {
        self.reconcile_after_ns.load(Ordering::Acquire)
    }
}

/// The signer's handle: publishes ladders and views and frees what it replaced.
#[derive(Debug)]
pub struct ShelfWriter {
    shelf: Arc<LadderShelf>,
    retired_ladders: Vec<Arc<Ladder>>,
    retired_views: Vec<Arc<ChainView>>,
}

impl ShelfWriter {
    /// The shelf.
    pub fn shelf(&self) -> &Arc<LadderShelf> {
        &self.shelf
    }

    /// Puts `ladder` in its nonce's slot, replacing what was there.
    pub fn publish_ladder(&mut self, ladder: Ladder) {
        let slot = &self.shelf.slots[(ladder.nonce & 1) as usize];
        let new = Arc::new(ladder);
        // The writer keeps its own reference, so the exec thread never drops the last one.
        self.retired_ladders.push(new.clone());
        if let Some(old) = slot.swap(Some(new)) {
            drop(old);
        }
        self.collect();
    }

    /// The ladder now in `nonce`'s slot (signer side).
    pub fn current(&self, nonce: u64) -> Option<Arc<Ladder>> {
        self.shelf.slots[(nonce & 1) as usize].load_full()
    }

    /// Publishes a chain view.
    pub fn publish_view(&mut self, view: ChainView) {
        let new = Arc::new(view);
        self.retired_views.push(new.clone());
        self.shelf.view.store(Some(new));
        self.collect();
    }

    /// Frees every replaced value the exec thread no longer holds. Values still on the shelf
    /// are kept (the shelf holds a reference too).
    pub fn collect(&mut self) {
        self.retired_ladders.retain(|l| Arc::strong_count(l) > 1);
        self.retired_views.retain(|v| Arc::strong_count(v) > 1);
    }

    /// Values kept alive by the writer (the ones on the shelf plus any the exec still holds).
    pub fn kept(&self) -> usize {
        self.retired_ladders.len() + self.retired_views.len()
    }
}

/// One value published by a writer thread and read by the exec tile without a lock: the
/// [`LadderShelf`] pattern for any `T` (Hyperliquid's ladders use it). The reader's
/// [`SwapCell::load`] is lock-free and allocation-free after [`SwapCell::warm`]; the
/// [`SwapWriter`] keeps every value it replaced until the reader no longer holds it, so the
/// reader never frees one.
#[derive(Debug)]
pub struct SwapCell<T> {
    slot: ArcSwapOption<T>,
}

/// The only writer of a [`SwapCell`].
#[derive(Debug)]
pub struct SwapWriter<T> {
    cell: Arc<SwapCell<T>>,
    retired: Vec<Arc<T>>,
}

impl<T> SwapCell<T> {
    /// An empty cell and its only writer.
    pub fn new() -> (Arc<SwapCell<T>>, SwapWriter<T>) {
        let cell = Arc::new(SwapCell {
            slot: ArcSwapOption::empty(),
        });
        (
            cell.clone(),
            SwapWriter {
                cell,
                retired: Vec::new(),
            },
        )
    }

    /// Loads once on the calling thread (arc-swap registers a thread on its first load, which
    /// allocates): call from the reader's `init`.
    pub fn warm(&self) {
        let _ = self.slot.load();
    }

    /// The current value (a guard: hold it only within one step).
    #[inline]
    pub fn load(&self) -> Guard<Option<Arc<T>>> {
        self.slot.load()
    }

    /// The current value, owned (tests; panics when empty).
    #[cfg(test)]
    pub(crate) fn load_full_for_test(&self) -> Arc<T> {
        self.slot.load_full().expect("a value")
    }
}

impl<T> SwapWriter<T> {
    /// The cell.
    pub fn cell(&self) -> &Arc<SwapCell<T>> {
        &self.cell
    }

    /// Replaces the value.
    pub fn publish(&mut self, value: T) {
        let new = Arc::new(value);
        // The writer keeps its own reference, so the reader never drops the last one.
        self.retired.push(new.clone());
        drop(self.cell.slot.swap(Some(new)));
        self.collect();
    }

    /// The current value (writer side).
    pub fn current(&self) -> Option<Arc<T>> {
        self.cell.slot.load_full()
    }

    /// Frees every replaced value the reader no longer holds.
    pub fn collect(&mut self) {
        self.retired.retain(|v| Arc::strong_count(v) > 1);
    }

    /// Values kept alive by the writer (the current one plus any the reader still holds).
    pub fn kept(&self) -> usize {
        self.retired.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::evm::EvmSigner;
    use crate::exec::evm::ladder::tests::spec;

    fn ladder(nonce: u64) -> Ladder {
        let key = EvmSigner::from_hex(
            "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318",
            "t",
        )
        .unwrap();
        let mut s = spec();
        s.rungs = 1;
        Ladder::build(&s, &[], &key, None, nonce, 10u128.pow(11), 0).unwrap()
    }

    #[test]
    fn a_swap_cell_keeps_what_the_reader_holds() {
        let (cell, mut w) = SwapCell::<u64>::new();
        assert!(cell.load().is_none());
        w.publish(1);
        let held = cell.load();
        w.publish(2);
        assert_eq!(**held.as_ref().unwrap(), 1);
        assert_eq!(**cell.load().as_ref().unwrap(), 2);
        assert_eq!(w.kept(), 2);
        drop(held);
        w.collect();
        assert_eq!(w.kept(), 1);
        assert_eq!(*w.current().unwrap(), 2);
    }

    #[test]
    fn slots_by_parity_and_the_writer_frees_what_it_replaced() {
        let (shelf, mut w) = LadderShelf::new();
        assert!(shelf.ladder(0).is_none());
        w.publish_ladder(ladder(4));
        w.publish_ladder(ladder(5));
        assert_eq!(shelf.ladder(4).as_ref().unwrap().nonce, 4);
        assert_eq!(shelf.ladder(5).as_ref().unwrap().nonce, 5);
        // The exec holds the ladder at 4 while the signer replaces it.
        let held = shelf.ladder(4);
        w.publish_ladder(ladder(6));
        assert_eq!(shelf.ladder(6).as_ref().unwrap().nonce, 6);
        assert_eq!(held.as_ref().unwrap().nonce, 4, "a held ladder stays valid");
        assert_eq!(w.kept(), 3, "4 (held), 5 and 6");
        drop(held);
        w.collect();
        assert_eq!(w.kept(), 2, "4 freed by the writer once released");
        w.publish_view(ChainView {
            pending_nonce: 4,
            head_block: 1,
            base_fee: 2,
            read_started_ns: 3,
        });
        assert_eq!(shelf.view().as_ref().unwrap().pending_nonce, 4);
    }
}
