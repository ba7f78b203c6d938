//! Binance order books started from REST snapshots, the way Binance documents it ("How to
//! manage a local order book correctly"): buffer the depth stream, fetch a snapshot
//! (`GET /fapi/v1/depth?symbol=X&limit=1000`, spot `/api/v3/depth`), drop buffered updates older
//! than its `lastUpdateId` L, apply the first that straddles L (futures `U` ≤ L ≤ `u`, spot
//! `U` ≤ L+1 ≤ `u`) and then each in order (futures `pu` = previous `u`, spot `U` = previous
//! `u` + 1); any break starts over with a new snapshot. The sequencing rules themselves are the
//! parser's ([`crate::venues::BinanceParser`]); this module decides when to fetch, what to
//! buffer and in which order to replay.
//!
//! Two parts:
//! - [`DepthSync`]: the per-book state machine and the bounded, preallocated buffers of raw
//!   depth payloads. Pure logic, driven by the session on the feed thread: no I/O, no
//!   allocation after construction, no locks.
//! - [`SnapshotFetcher`]: one helper thread per session that performs the blocking
//!   [`crate::net::http_request`]s and hands the bodies back through bounded channels, polled
//!   with `try_recv` by the session. Chosen over a non-blocking HTTP state machine inside the
//!   mio loop because snapshots are rare (subscribe, gap, reconnect), the helper reuses the
//!   tested HTTP/1.1 + TLS client, and the feed thread's cost is one lock-free `try_recv` while
//!   a request is outstanding and nothing otherwise. Bodies are allocated and freed on the
//!   helper thread (the session hands every reply back for recycling).
//!
//! Never blocks the feed thread, never lets a failed or malformed snapshot stop the feed: it is
//! counted and fetched again after [`DepthSyncConfig::retry_after`].

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::event::MarketEvent;
use crate::instrument::InstrumentId;
use crate::venues::{Parsed, VenueParser};

/// Limits of the depth buffers and the retry delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthSyncConfig {
    /// Depth messages buffered per book while its snapshot is in flight. Default 1,024.
    pub buffer_messages: usize,
    /// Payload bytes buffered per book. Default 1 MiB.
    pub buffer_bytes: usize,
    /// Delay before fetching again after a failed snapshot. Default 1 s.
    pub retry_after: Duration,
}

impl Default for DepthSyncConfig {
    fn default() -> Self {
        Self {
            buffer_messages: 1_024,
            buffer_bytes: 1 << 20,
            retry_after: Duration::from_secs(1),
        }
    }
}

/// Where one book is in its synchronisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// Subscribed, no depth update seen yet: the first one is buffered and the snapshot
    /// requested then, so that the snapshot is never older than the buffered stream.
    AwaitingFirst,
    /// Snapshot requested; updates are buffered.
    Fetching,
    /// The last fetch failed; updates are buffered and the fetch is retried at a deadline.
    RetryWait,
    /// Snapshot applied; the parser sequences updates itself.
    Live,
}

/// Counters of a [`DepthSync`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DepthSyncStats {
    /// Snapshot requests made.
    pub requests: u64,
    /// Snapshots applied.
    pub snapshots: u64,
    /// Snapshot fetches that failed (transport, HTTP status, body), retried later.
    pub failures: u64,
    /// Buffers that overflowed (the book started over with a new snapshot).
    pub overflows: u64,
    /// Buffered updates replayed into the parser after a snapshot.
    pub replayed: u64,
    /// Replies that arrived for an abandoned request (older generation), ignored.
    pub stale_replies: u64,
    /// Requests that could not be queued to the fetcher (retried later).
    pub queue_full: u64,
}

/// The answer to one snapshot request.
#[derive(Debug)]
pub struct SnapshotReply {
    /// The book's slot in its [`DepthSync`].
    pub slot: usize,
    /// The request's generation (replies to abandoned requests are ignored).
    pub generation: u64,
    /// Local clock when the body was complete ([`crate::clock::now_ns`]).
    pub recv_ts_ns: u64,
    /// HTTP status and body, or what went wrong.
    pub result: Result<(u16, Vec<u8>), String>,
}

#[derive(Clone, Copy, Debug)]
struct Buffered {
    start: usize,
    len: usize,
    recv_ts_ns: u64,
}

#[derive(Debug)]
struct Book {
    instrument: InstrumentId,
    symbol: Vec<u8>,
    state: SyncState,
    generation: u64,
    retry_at_ns: u64,
    bytes: Vec<u8>,
    msgs: Vec<Buffered>,
}

/// The synchronisation state of a session's Binance books.
#[derive(Debug)]
pub struct DepthSync {
    books: Vec<Book>,
    /// Slot of each instrument id, if it has a book.
    slot_of: Vec<Option<usize>>,
    config: DepthSyncConfig,
    stats: DepthSyncStats,
}

impl DepthSync {
    /// Books for `(instrument, symbol)` pairs; buffers are allocated here, once.
    pub fn new(books: &[(InstrumentId, &str)], config: DepthSyncConfig) -> Self {
        let bound = books
            .iter()
            .map(|(i, _)| i.0 as usize + 1)
            .max()
            .unwrap_or(0);
        let mut slot_of = vec![None; bound];
        let books = books
            .iter()
            .enumerate()
            .map(|(slot, (instrument, symbol))| {
                if let Some(s) = slot_of.get_mut(instrument.0 as usize) {
                    *s = Some(slot);
                }
                Book {
                    instrument: *instrument,
                    symbol: symbol.as_bytes().to_vec(),
                    state: SyncState::AwaitingFirst,
                    generation: 0,
                    retry_at_ns: 0,
                    bytes: Vec::with_capacity(config.buffer_bytes),
                    msgs: Vec::with_capacity(config.buffer_messages),
                }
            })
            .collect();
        Self {
            books,
            slot_of,
            config,
            stats: DepthSyncStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> DepthSyncStats {
        self.stats
    }

    /// Number of books.
    pub fn len(&self) -> usize {
        self.books.len()
    }

    /// True with no book.
    pub fn is_empty(&self) -> bool {
        self.books.is_empty()
    }

    /// State of the book in `slot`.
    pub fn state(&self, slot: usize) -> Option<SyncState> {
        self.books.get(slot).map(|b| b.state)
    }

    /// Buffered messages of the book in `slot`.
    pub fn buffered(&self, slot: usize) -> usize {
        self.books.get(slot).map_or(0, |b| b.msgs.len())
    }

    /// The symbol of the book in `slot` (what the fetcher asks for).
    pub fn symbol(&self, slot: usize) -> &[u8] {
        self.books.get(slot).map_or(&[], |b| &b.symbol)
    }

    /// After every (re)connection: every book waits for its first update, then a new snapshot;
    /// replies to earlier requests will be ignored.
    pub fn on_open(&mut self, parser: &mut dyn VenueParser) {
        for b in &mut self.books {
            b.state = SyncState::AwaitingFirst;
            b.generation += 1;
            b.bytes.clear();
            b.msgs.clear();
            parser.await_book_snapshot(b.instrument);
        }
    }

    /// Starts the book of `instrument` (`None`: every book) again as after a (re)connection:
    /// its next depth update is buffered and a new snapshot fetched.
    pub fn restart(&mut self, instrument: Option<InstrumentId>, parser: &mut dyn VenueParser) {
        for b in &mut self.books {
            if instrument.is_some_and(|i| i != b.instrument) {
                continue;
            }
            b.state = SyncState::AwaitingFirst;
            b.generation += 1;
            b.bytes.clear();
            b.msgs.clear();
            parser.await_book_snapshot(b.instrument);
        }
    }

    /// What the parser made of a payload: buffers depth updates of books that are not live,
    /// requests snapshots (first update, gap, overflow) through `request(slot, generation)`,
    /// which returns false if the request could not be queued.
    pub fn on_parsed(
        &mut self,
        parsed: &Parsed<'_>,
        payload: &[u8],
        recv_ts_ns: u64,
        now_ns: u64,
        request: &mut dyn FnMut(usize, u64) -> bool,
    ) {
        let (instrument, gap) = match parsed {
            Parsed::Gap { instrument } => (*instrument, true),
            Parsed::BookSkipped { instrument } => (*instrument, false),
            _ => return,
        };
        let Some(slot) = self.slot(instrument) else {
            return;
        };
        let state = self.books[slot].state;
        match state {
            // Older than the snapshot: dropped, as the procedure says.
            SyncState::Live if !gap => {}
            SyncState::Live => {
                // The chain broke: a new snapshot, and this update is the first to keep.
                self.start_over(slot, now_ns, request);
                self.buffer(slot, payload, recv_ts_ns, now_ns, request);
            }
            SyncState::AwaitingFirst => {
                self.buffer(slot, payload, recv_ts_ns, now_ns, request);
                if self.books[slot].state == SyncState::AwaitingFirst {
                    self.fetch(slot, now_ns, request);
                }
            }
            SyncState::Fetching | SyncState::RetryWait => {
                self.buffer(slot, payload, recv_ts_ns, now_ns, request);
            }
        }
    }

    /// A snapshot reply: applies it and replays the buffered updates (events to `emit`), or
    /// schedules a retry. A break in the replayed chain requests a new snapshot at once.
    pub fn on_snapshot(
        &mut self,
        reply: &SnapshotReply,
        parser: &mut dyn VenueParser,
        now_ns: u64,
        emit: &mut dyn FnMut(MarketEvent),
        request: &mut dyn FnMut(usize, u64) -> bool,
    ) {
        let slot = reply.slot;
        let Some(b) = self.books.get(slot) else {
            return;
        };
        if reply.generation != b.generation || b.state != SyncState::Fetching {
            self.stats.stale_replies += 1;
            return;
        }
        let body = match &reply.result {
            Ok((200, body)) => body.as_slice(),
            _ => return self.failed(slot, now_ns),
        };
        match parser.apply_book_snapshot(&b.symbol, body, reply.recv_ts_ns, emit) {
            Ok(Parsed::Events { count }) if count > 0 => {}
            _ => return self.failed(slot, now_ns),
        }
        self.stats.snapshots += 1;
        self.books[slot].state = SyncState::Live;
        let instrument = self.books[slot].instrument;
        let mut i = 0;
        while i < self.books[slot].msgs.len() {
            let b = &self.books[slot];
            let m = b.msgs[i];
            let payload = &b.bytes[m.start..m.start + m.len];
            self.stats.replayed += 1;
            let broke = matches!(
                parser.parse(payload, m.recv_ts_ns, emit),
                Ok(Parsed::Gap { instrument: g }) if g == instrument
            );
            if broke {
                // Keep this update and the later ones for the next snapshot.
                let b = &mut self.books[slot];
                let from = m.start;
                b.bytes.copy_within(from.., 0);
                b.bytes.truncate(b.bytes.len() - from);
                b.msgs.drain(..i);
                for k in &mut b.msgs {
                    k.start -= from;
                }
                b.state = SyncState::AwaitingFirst;
                b.generation += 1;
                self.fetch(slot, now_ns, request);
                return;
            }
            i += 1;
        }
        let b = &mut self.books[slot];
        b.bytes.clear();
        b.msgs.clear();
    }

    /// Retries failed fetches whose delay has passed.
    pub fn on_timer(&mut self, now_ns: u64, request: &mut dyn FnMut(usize, u64) -> bool) {
        for slot in 0..self.books.len() {
            let b = &self.books[slot];
            if b.state == SyncState::RetryWait && now_ns >= b.retry_at_ns {
                self.fetch(slot, now_ns, request);
            }
        }
    }

    fn slot(&self, instrument: InstrumentId) -> Option<usize> {
        self.slot_of.get(instrument.0 as usize).copied().flatten()
    }

    fn retry_ns(&self) -> u64 {
        u64::try_from(self.config.retry_after.as_nanos()).unwrap_or(u64::MAX)
    }

    fn failed(&mut self, slot: usize, now_ns: u64) {
        self.stats.failures += 1;
        let retry = now_ns.saturating_add(self.retry_ns());
        if let Some(b) = self.books.get_mut(slot) {
            b.state = SyncState::RetryWait;
            b.retry_at_ns = retry;
        }
    }

    /// Requests a snapshot under a new generation.
    fn fetch(&mut self, slot: usize, now_ns: u64, request: &mut dyn FnMut(usize, u64) -> bool) {
        let retry = now_ns.saturating_add(self.retry_ns());
        let Some(b) = self.books.get_mut(slot) else {
            return;
        };
        b.generation += 1;
        self.stats.requests += 1;
        if request(slot, b.generation) {
            b.state = SyncState::Fetching;
        } else {
            self.stats.queue_full += 1;
            b.state = SyncState::RetryWait;
            b.retry_at_ns = retry;
        }
    }

    /// Drops the buffer and fetches anew.
    fn start_over(
        &mut self,
        slot: usize,
        now_ns: u64,
        request: &mut dyn FnMut(usize, u64) -> bool,
    ) {
        if let Some(b) = self.books.get_mut(slot) {
            b.bytes.clear();
            b.msgs.clear();
        }
        self.fetch(slot, now_ns, request);
    }

    /// Appends a payload to the book's buffer; on overflow, starts over (counted) with this
    /// payload as the first kept.
    fn buffer(
        &mut self,
        slot: usize,
        payload: &[u8],
        recv_ts_ns: u64,
        now_ns: u64,
        request: &mut dyn FnMut(usize, u64) -> bool,
    ) {
        let (max_msgs, max_bytes) = (self.config.buffer_messages, self.config.buffer_bytes);
        let Some(b) = self.books.get(slot) else {
            return;
        };
        if b.msgs.len() >= max_msgs || b.bytes.len() + payload.len() > max_bytes {
            self.stats.overflows += 1;
            self.start_over(slot, now_ns, request);
        }
        let Some(b) = self.books.get_mut(slot) else {
            return;
        };
        if b.msgs.len() < max_msgs && b.bytes.len() + payload.len() <= max_bytes {
            b.msgs.push(Buffered {
                start: b.bytes.len(),
                len: payload.len(),
                recv_ts_ns,
            });
            b.bytes.extend_from_slice(payload);
        }
    }
}

/// One helper thread per session performing snapshot requests (blocking HTTP/1.1 over TCP or
/// TLS) and handing replies back through bounded channels.
#[derive(Debug)]
pub struct SnapshotFetcher {
    requests: SyncSender<(usize, u64)>,
    replies: Receiver<SnapshotReply>,
    recycle: SyncSender<SnapshotReply>,
    in_flight: usize,
    _thread: JoinHandle<()>,
}

impl SnapshotFetcher {
    /// Starts the helper thread; `urls[slot]` is the snapshot URL of the book in `slot`.
    /// The thread ends when the fetcher is dropped (after its current request, at most
    /// `timeout` later); the fetcher never waits for it.
    pub fn spawn(
        name: &str,
        urls: Vec<String>,
        ca_file: Option<PathBuf>,
        timeout: Duration,
    ) -> std::io::Result<Self> {
        let capacity = urls.len().max(1) * 4;
        let (req_tx, req_rx) = sync_channel::<(usize, u64)>(capacity);
        let (rep_tx, rep_rx) = sync_channel::<SnapshotReply>(capacity);
        let (cyc_tx, cyc_rx) = sync_channel::<SnapshotReply>(capacity);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                while let Ok((slot, generation)) = req_rx.recv() {
                    // Free what the session handed back.
                    while cyc_rx.try_recv().is_ok() {}
                    let result = match urls.get(slot) {
                        Some(url) => crate::net::http_request(
                            url,
                            "GET",
                            None,
                            &[("Accept", "application/json")],
                            ca_file.as_deref(),
                            timeout,
                        )
                        .map_err(|e| e.to_string()),
                        None => Err(format!("no snapshot URL for slot {slot}")),
                    };
                    let reply = SnapshotReply {
                        slot,
                        generation,
                        recv_ts_ns: crate::clock::now_ns(),
                        result,
                    };
                    if rep_tx.send(reply).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Self {
            requests: req_tx,
            replies: rep_rx,
            recycle: cyc_tx,
            in_flight: 0,
            _thread: thread,
        })
    }

    /// Queues a request; false if the queue is full or the thread is gone.
    pub fn request(&mut self, slot: usize, generation: u64) -> bool {
        let ok = self.requests.try_send((slot, generation)).is_ok();
        if ok {
            self.in_flight += 1;
        }
        ok
    }

    /// Requests queued and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The next reply, if one is ready (never blocks; free while nothing is in flight).
    pub fn poll(&mut self) -> Option<SnapshotReply> {
        if self.in_flight == 0 {
            return None;
        }
        match self.replies.try_recv() {
            Ok(r) => {
                self.in_flight -= 1;
                Some(r)
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.in_flight = 0;
                None
            }
        }
    }

    /// Hands a processed reply back so that its body is freed on the helper thread (dropped
    /// here only if the recycle queue is full).
    pub fn recycle(&mut self, reply: SnapshotReply) {
        let _ = self.recycle.try_send(reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventBody;
    use crate::instrument::Instruments;
    use crate::venues::{BinanceMarket, BinanceParser};

    fn setup() -> (BinanceParser, DepthSync, InstrumentId) {
        let mut reg = Instruments::new();
        let id = crate::session::register(&mut reg, crate::Venue::Binance, "BTCUSDT", false);
        let parser = BinanceParser::new(BinanceMarket::UsdmFutures, &reg);
        let sync = DepthSync::new(
            &[(id, "BTCUSDT")],
            DepthSyncConfig {
                buffer_messages: 4,
                buffer_bytes: 4096,
                retry_after: Duration::from_millis(500),
            },
        );
        (parser, sync, id)
    }

    fn depth(first: u64, last: u64, pu: u64, px: &str) -> Vec<u8> {
        format!(
            r#"{{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT","U":{first},"u":{last},"pu":{pu},"b":[["{px}","1.0"]],"a":[]}}"#
        )
        .into_bytes()
    }

    fn snapshot(last: u64) -> Vec<u8> {
        format!(
            r#"{{"lastUpdateId":{last},"E":1,"T":1,"bids":[["100.0","2.0"]],"asks":[["101.0","3.0"]]}}"#
        )
        .into_bytes()
    }

    /// What the book did with a sequence: the `seq` of each applied update (non-snapshot
    /// levels), snapshots applied, gaps, requests made.
    #[derive(Debug, Default, PartialEq)]
    struct Seen {
        applied: Vec<u64>,
        snapshot_levels: usize,
        gaps: usize,
        requests: Vec<u64>,
    }

    /// Feeds `before` (buffered while fetching), the snapshot `last`, then `after` (live).
    fn run(before: &[(u64, u64, u64)], last: u64, after: &[(u64, u64, u64)]) -> (Seen, DepthSync) {
        let (mut p, mut s, _) = setup();
        s.on_open(&mut p);
        let mut seen = Seen::default();
        let mut reqs = Vec::new();
        let mut emit = |ev: MarketEvent| match ev.body {
            EventBody::BookLevel { snapshot: true, .. } => seen.snapshot_levels += 1,
            EventBody::BookLevel {
                seq, first: true, ..
            } => seen.applied.push(seq),
            EventBody::SequenceGap { .. } => seen.gaps += 1,
            _ => {}
        };
        let feed = |s: &mut DepthSync,
                    p: &mut BinanceParser,
                    reqs: &mut Vec<u64>,
                    emit: &mut dyn FnMut(MarketEvent),
                    (f, l, pu): (u64, u64, u64)| {
            let payload = depth(f, l, pu, "99.0");
            let parsed = p.parse(&payload, 5, emit).unwrap();
            s.on_parsed(&parsed, &payload, 5, 5, &mut |_, g| {
                reqs.push(g);
                true
            });
        };
        for &m in before {
            feed(&mut s, &mut p, &mut reqs, &mut emit, m);
        }
        let generation = reqs.last().copied().unwrap_or(0);
        let reply = SnapshotReply {
            slot: 0,
            generation,
            recv_ts_ns: 6,
            result: Ok((200, snapshot(last))),
        };
        s.on_snapshot(&reply, &mut p, 6, &mut emit, &mut |_, g| {
            reqs.push(g);
            true
        });
        for &m in after {
            feed(&mut s, &mut p, &mut reqs, &mut emit, m);
        }
        seen.requests = reqs;
        (seen, s)
    }

    #[test]
    fn buffering_and_apply_rules() {
        // (name, buffered before the snapshot, lastUpdateId, live after, applied seqs, gaps,
        // requests, final state)
        type Case = (
            &'static str,
            &'static [(u64, u64, u64)],
            u64,
            &'static [(u64, u64, u64)],
            &'static [u64],
            usize,
            usize,
            SyncState,
        );
        let cases: &[Case] = &[
            (
                "stale updates dropped, the straddling one and its successors applied",
                &[(90, 95, 89), (96, 99, 95), (100, 104, 99), (105, 107, 104)],
                101,
                &[(108, 110, 107)],
                &[104, 107, 110],
                0,
                1,
                SyncState::Live,
            ),
            (
                "first event straddling exactly at u = lastUpdateId",
                &[(96, 100, 95), (101, 103, 100)],
                100,
                &[],
                &[100, 103],
                0,
                1,
                SyncState::Live,
            ),
            (
                "snapshot older than every buffered update: a gap, a new snapshot",
                &[(110, 112, 109), (113, 115, 112)],
                100,
                &[],
                &[],
                1,
                2,
                SyncState::Fetching,
            ),
            (
                "pu mismatch while replaying: a new snapshot, nothing applied past it",
                &[(100, 104, 99), (106, 108, 105), (109, 111, 108)],
                101,
                &[],
                &[104],
                1,
                2,
                SyncState::Fetching,
            ),
            (
                "pu mismatch live: a new snapshot",
                &[(100, 104, 99)],
                101,
                &[(105, 106, 104), (108, 109, 107), (110, 111, 109)],
                &[104, 106],
                1,
                2,
                SyncState::Fetching,
            ),
            (
                "stale buffered update dropped; live updates straddle and follow",
                &[(90, 95, 89)],
                100,
                &[(96, 101, 95), (102, 103, 101)],
                &[101, 103],
                0,
                1,
                SyncState::Live,
            ),
        ];
        for (name, before, last, after, applied, gaps, requests, state) in cases {
            let (seen, s) = run(before, *last, after);
            assert_eq!(seen.applied, *applied, "{name}: {seen:?}");
            assert_eq!(seen.gaps, *gaps, "{name}: {seen:?}");
            assert_eq!(seen.requests.len(), *requests, "{name}: {seen:?}");
            assert_eq!(
                seen.snapshot_levels, 2,
                "{name}: one snapshot of two levels"
            );
            assert_eq!(s.state(0), Some(*state), "{name}");
        }
    }

    #[test]
    fn a_gap_after_replay_keeps_the_later_updates_for_the_next_snapshot() {
        let (seen, s) = run(
            &[(100, 104, 99), (106, 108, 105), (109, 111, 108)],
            101,
            &[],
        );
        assert_eq!(seen.applied, [104]);
        assert_eq!(
            s.buffered(0),
            2,
            "the update after the break and its successor"
        );
    }

    #[test]
    fn a_restart_fetches_a_new_snapshot_on_the_next_update() {
        let (_, mut s) = run(&[(100, 104, 99)], 101, &[(105, 106, 104)]);
        assert_eq!(s.state(0), Some(SyncState::Live));
        let (mut p, _, id) = setup();
        s.restart(Some(InstrumentId(id.0 + 1)), &mut p);
        assert_eq!(s.state(0), Some(SyncState::Live), "another book: untouched");
        s.restart(Some(id), &mut p);
        assert_eq!(s.state(0), Some(SyncState::AwaitingFirst));
        // The next update is buffered and a snapshot requested.
        let payload = depth(107, 108, 106, "99.0");
        let parsed = p.parse(&payload, 7, &mut |_| {}).unwrap();
        let mut reqs = Vec::new();
        s.on_parsed(&parsed, &payload, 7, 7, &mut |_, g| {
            reqs.push(g);
            true
        });
        assert_eq!(reqs.len(), 1, "one snapshot fetch");
        assert_eq!(s.state(0), Some(SyncState::Fetching));
        s.restart(None, &mut p);
        assert_eq!(
            s.state(0),
            Some(SyncState::AwaitingFirst),
            "None: every book"
        );
    }

    #[test]
    fn overflow_starts_over_and_failures_retry_later() {
        let (mut p, mut s, _) = setup();
        s.on_open(&mut p);
        let mut gens = Vec::new();
        for k in 0..6u64 {
            let payload = depth(100 + 2 * k, 101 + 2 * k, 99 + 2 * k, "99.0");
            let parsed = p.parse(&payload, 1, &mut |_| {}).unwrap();
            s.on_parsed(&parsed, &payload, 1, 1, &mut |_, g| {
                gens.push(g);
                true
            });
        }
        // 4 buffered, the 5th overflowed: a second request, the buffer restarted with it.
        assert_eq!(s.stats().overflows, 1);
        assert_eq!(gens.len(), 2);
        assert_eq!(s.buffered(0), 2);
        // The first request's reply is stale now.
        let stale = SnapshotReply {
            slot: 0,
            generation: gens[0],
            recv_ts_ns: 2,
            result: Ok((200, snapshot(100))),
        };
        s.on_snapshot(&stale, &mut p, 2, &mut |_| {}, &mut |_, _| true);
        assert_eq!(s.stats().stale_replies, 1);
        // A failure waits, then retries.
        let failed = SnapshotReply {
            slot: 0,
            generation: gens[1],
            recv_ts_ns: 3,
            result: Ok((429, b"{}".to_vec())),
        };
        s.on_snapshot(&failed, &mut p, 3, &mut |_| {}, &mut |_, _| true);
        assert_eq!(s.state(0), Some(SyncState::RetryWait));
        s.on_timer(3 + 100_000_000, &mut |_, _| panic!("too early"));
        let mut retried = false;
        s.on_timer(3 + 600_000_000, &mut |_, _| {
            retried = true;
            true
        });
        assert!(retried);
        assert_eq!(s.state(0), Some(SyncState::Fetching));
        assert_eq!(s.stats().failures, 1);
    }
}
