//! The exec tile: one warm order connection driven by its own mio loop ([`ExecTile`]), or paper
//! fills for a dry run against real venues ([`PaperExec`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use keel_feeds::clock;
use keel_feeds::event::{EventBody, MarketEvent, Side, Venue};
use keel_feeds::net::{ConnectionConfig, FeedLoop, Outbox, Session};

use super::deribit::DeribitOrders;
use super::{Fill, FillStatus, HedgeIntent};
use crate::pipeline::ring::{Consumer, Producer};
use crate::pipeline::{Tile, TileError};

/// Counters the exec tile shares with the status line (relaxed atomics: one store per order).
#[derive(Debug, Default)]
pub struct ExecCounters {
    /// Orders written to the venue (or filled on paper).
    pub sent: AtomicU64,
    /// Outcomes delivered to the pricer.
    pub outcomes: AtomicU64,
    /// Label queries (lost or late replies).
    pub queries: AtomicU64,
    /// The order connection is up.
    pub connected: AtomicBool,
    /// Times the order connection dropped.
    pub disconnects: AtomicU64,
}

/// An order session the exec tile can drive and count.
pub trait OrderSession: Session {
    /// Orders written, replies matched and status queries sent so far.
    fn sent_replies_queries(&self) -> (u64, u64, u64);
}

impl OrderSession for DeribitOrders {
    fn sent_replies_queries(&self) -> (u64, u64, u64) {
        let c = self.counters();
        (c.sent, c.replies, c.queries)
    }
}

impl OrderSession for super::binance::BinanceOrders {
    fn sent_replies_queries(&self) -> (u64, u64, u64) {
        let c = self.counters();
        (c.sent, c.replies, c.queries)
    }
}

/// Wraps the order session to publish its counters.
struct Counted<S> {
    inner: S,
    shared: Arc<ExecCounters>,
}

impl<S: OrderSession> Session for Counted<S> {
    fn venue(&self) -> Venue {
        self.inner.venue()
    }
    fn on_open(&mut self, out: &mut Outbox<'_>) {
        self.inner.on_open(out);
        self.publish();
    }
    fn on_message(
        &mut self,
        payload: &[u8],
        recv_ts_ns: u64,
        out: &mut Outbox<'_>,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<(), keel_feeds::event::DisconnectReason> {
        let r = self.inner.on_message(payload, recv_ts_ns, out, emit);
        self.publish();
        r
    }
    fn poll_outgoing(&mut self, out: &mut Outbox<'_>) -> bool {
        let wrote = self.inner.poll_outgoing(out);
        if wrote {
            self.publish();
        }
        wrote
    }
    fn on_flushed(&mut self, now_ns: u64) {
        self.inner.on_flushed(now_ns);
    }
}

impl<S: OrderSession> Counted<S> {
    fn publish(&self) {
        let (sent, replies, queries) = self.inner.sent_replies_queries();
        self.shared.sent.store(sent, Ordering::Relaxed);
        self.shared.outcomes.store(replies, Ordering::Relaxed);
        self.shared.queries.store(queries, Ordering::Relaxed);
    }
}

/// The exec tile over one order connection.
pub struct ExecTile {
    feed: FeedLoop,
    shared: Arc<ExecCounters>,
    last: (u64, u64),
}

impl ExecTile {
    /// Connects (on the first step) to `config.url` with `orders` as the session.
    pub fn new<S: OrderSession + 'static>(
        config: ConnectionConfig,
        orders: S,
    ) -> Result<(Self, Arc<ExecCounters>), TileError> {
        let shared = Arc::new(ExecCounters::default());
        let mut feed = FeedLoop::new().map_err(|e| TileError::new(format!("exec: {e}")))?;
        let url = config.url.to_string();
        feed.add(
            config,
            Box::new(Counted {
                inner: orders,
                shared: shared.clone(),
            }),
        )
        .map_err(|e| TileError::new(format!("exec order connection {url}: {e}")))?;
        Ok((
            Self {
                feed,
                shared: shared.clone(),
                last: (0, 0),
            },
            shared,
        ))
    }
}

impl Tile for ExecTile {
    fn name(&self) -> &'static str {
        "exec"
    }

    fn step(&mut self) -> bool {
        let shared = &self.shared;
        let mut conn_event = false;
        let mut on_event = |ev: MarketEvent| match ev.body {
            EventBody::Connected | EventBody::Reconnected { .. } => {
                shared.connected.store(true, Ordering::Relaxed);
                conn_event = true;
            }
            EventBody::Disconnected { .. } => {
                shared.connected.store(false, Ordering::Relaxed);
                shared.disconnects.fetch_add(1, Ordering::Relaxed);
                conn_event = true;
            }
            _ => {}
        };
        // An I/O error of the poller itself: nothing to do but try again next step.
        let _ = self.feed.run_once(Duration::ZERO, &mut on_event);
        let now = (
            self.shared.sent.load(Ordering::Relaxed),
            self.shared.outcomes.load(Ordering::Relaxed),
        );
        let did = now != self.last || conn_event;
        self.last = now;
        did
    }

    fn teardown(&mut self) {
        self.feed.shutdown(&mut |_| {});
        self.shared.connected.store(false, Ordering::Relaxed);
    }
}

/// Dry run against real venues: every intent fills on paper at its reference price at once.
pub struct PaperExec {
    intents: Consumer<HedgeIntent>,
    fills: Producer<Fill>,
    held: Option<Fill>,
    shared: Arc<ExecCounters>,
}

impl PaperExec {
    /// A paper exec tile.
    pub fn new(intents: Consumer<HedgeIntent>, fills: Producer<Fill>) -> (Self, Arc<ExecCounters>) {
        let shared = Arc::new(ExecCounters::default());
        shared.connected.store(true, Ordering::Relaxed);
        (
            Self {
                intents,
                fills,
                held: None,
                shared: shared.clone(),
            },
            shared,
        )
    }
}

impl Tile for PaperExec {
    fn name(&self) -> &'static str {
        "exec"
    }

    fn step(&mut self) -> bool {
        if let Some(f) = self.held.take() {
            if let Err(back) = self.fills.push(f) {
                self.held = Some(back.0);
                return false;
            }
            self.shared.outcomes.fetch_add(1, Ordering::Relaxed);
        }
        let Some(i) = self.intents.pop() else {
            return false;
        };
        let now = clock::now_ns();
        let mut trace = i.trace;
        trace.sent_ns = now;
        let fill = Fill {
            trace,
            intent_id: i.id,
            filled: match i.side {
                Side::Buy => i.amount,
                Side::Sell => -i.amount,
            },
            price: i.ref_price,
            intent_coin_delta: i.coin_delta,
            done_ns: now,
            instrument: i.instrument,
            error_code: 0,
            status: FillStatus::Paper,
        };
        self.shared.sent.fetch_add(1, Ordering::Relaxed);
        match self.fills.push(fill) {
            Ok(()) => {
                self.shared.outcomes.fetch_add(1, Ordering::Relaxed);
            }
            Err(back) => self.held = Some(back.0),
        }
        true
    }
}
