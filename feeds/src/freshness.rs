//! Staleness per subscription: each subscribed stream (an instrument's ticker, its book) has a
//! last-data time and a silence limit; a subscription silent past its limit emits
//! [`EventBody::Stale`] at once (so the engine stops hedging on that instrument while the rest of
//! the connection keeps flowing), and [`EventBody::Fresh`] just before its next data.
//!
//! Connection-wide staleness ([`crate::net::ConnectionConfig::stale_after`]) stays the last
//! resort: it drops and reconnects, which resubscribes everything. A silent subscription is not
//! resubscribed on its own: it is declared stale at its limit, and a venue that keeps one channel
//! silent for long is left to the connection-wide limit (reconnection), so that resubscription
//! stays one idempotent step (`on_open`).
//!
//! Owns the clocks only. Never allocates after construction: marking data is an indexed store per
//! event, the timer a scan of the subscriptions.

use std::time::Duration;

use crate::event::{EventBody, MarketEvent, Venue};
use crate::instrument::InstrumentId;

/// Which stream of an instrument a subscription is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// Tickers, quotes, marks, index prices: anything but book levels.
    Data,
    /// Book levels (Deribit `book`, Binance depth).
    Book,
}

impl StreamKind {
    /// The stream an event belongs to; None for events that do not count as data
    /// (connection events, gaps, staleness events, events without an instrument).
    pub fn of(ev: &MarketEvent) -> Option<StreamKind> {
        if ev.instrument == InstrumentId::NONE {
            return None;
        }
        match ev.body {
            EventBody::BookLevel { .. } => Some(StreamKind::Book),
            EventBody::SequenceGap { .. }
            | EventBody::Connected
            | EventBody::Disconnected { .. }
            | EventBody::Reconnected { .. }
            | EventBody::Stale { .. }
            | EventBody::Fresh
            | EventBody::ChainHead { .. } => None,
            _ => Some(StreamKind::Data),
        }
    }

    fn index(self) -> usize {
        match self {
            StreamKind::Data => 0,
            StreamKind::Book => 1,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Clock {
    instrument: InstrumentId,
    /// 0 = never stale.
    limit_ns: u64,
    /// 0 = armed at the next timer (after a (re)connection).
    last_ns: u64,
    stale: bool,
}

fn nanos(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
    })
}

/// The clocks of one session's subscriptions.
#[derive(Clone, Debug)]
pub struct Freshness {
    venue: Venue,
    clocks: Vec<Clock>,
    /// Per instrument id: the clock of its Data and Book streams.
    slot_of: Vec<[Option<u32>; 2]>,
}

impl Freshness {
    /// Clocks for `subs`, each with limit `default` (None: never stale).
    pub fn new(
        venue: Venue,
        subs: &[(InstrumentId, StreamKind)],
        default: Option<Duration>,
    ) -> Self {
        let bound = subs
            .iter()
            .map(|(i, _)| i.0 as usize + 1)
            .max()
            .unwrap_or(0);
        let mut slot_of = vec![[None; 2]; bound];
        let mut clocks = Vec::with_capacity(subs.len());
        for &(instrument, kind) in subs {
            let Some(slots) = slot_of.get_mut(instrument.0 as usize) else {
                continue;
            };
            if slots[kind.index()].is_some() {
                continue;
            }
            slots[kind.index()] = Some(clocks.len() as u32);
            clocks.push(Clock {
                instrument,
                limit_ns: nanos(default),
                last_ns: 0,
                stale: false,
            });
        }
        Self {
            venue,
            clocks,
            slot_of,
        }
    }

    /// Sets every subscription's limit (None: never stale).
    pub fn set_default(&mut self, limit: Option<Duration>) {
        for c in &mut self.clocks {
            c.limit_ns = nanos(limit);
        }
    }

    /// Sets one subscription's limit; false if there is no such subscription.
    pub fn set_limit(
        &mut self,
        instrument: InstrumentId,
        kind: StreamKind,
        limit: Option<Duration>,
    ) -> bool {
        match self.slot(instrument, kind) {
            Some(i) => {
                self.clocks[i].limit_ns = nanos(limit);
                true
            }
            None => false,
        }
    }

    /// Number of subscriptions tracked.
    pub fn len(&self) -> usize {
        self.clocks.len()
    }

    /// True with no subscription tracked.
    pub fn is_empty(&self) -> bool {
        self.clocks.is_empty()
    }

    /// Whether a subscription is reported stale now.
    pub fn is_stale(&self, instrument: InstrumentId, kind: StreamKind) -> bool {
        self.slot(instrument, kind)
            .is_some_and(|i| self.clocks[i].stale)
    }

    fn slot(&self, instrument: InstrumentId, kind: StreamKind) -> Option<usize> {
        self.slot_of
            .get(instrument.0 as usize)
            .and_then(|s| s[kind.index()])
            .map(|i| i as usize)
    }

    /// After every (re)connection: every clock restarts at the next timer (a subscription gets
    /// its full limit to deliver its first data). Stale flags stay until data returns.
    pub fn on_open(&mut self) {
        for c in &mut self.clocks {
            c.last_ns = 0;
        }
    }

    /// Passes `ev` to `emit`, noting it as its subscription's data first; a subscription that
    /// was stale gets [`EventBody::Fresh`] just before.
    #[inline]
    pub fn pass(&mut self, ev: MarketEvent, emit: &mut dyn FnMut(MarketEvent)) {
        if let Some(kind) = StreamKind::of(&ev)
            && let Some(i) = self.slot(ev.instrument, kind)
        {
            let c = &mut self.clocks[i];
            c.last_ns = ev.recv_ts_ns.max(1);
            if c.stale {
                c.stale = false;
                emit(MarketEvent {
                    exchange_ts_ns: 0,
                    recv_ts_ns: ev.recv_ts_ns,
                    instrument: ev.instrument,
                    venue: self.venue,
                    conn: ev.conn,
                    body: EventBody::Fresh,
                });
            }
        }
        emit(ev);
    }

    /// Reports subscriptions silent past their limit (once per silence).
    pub fn on_timer(&mut self, now_ns: u64, emit: &mut dyn FnMut(MarketEvent)) {
        for c in &mut self.clocks {
            if c.last_ns == 0 {
                c.last_ns = now_ns.max(1);
                continue;
            }
            if c.stale || c.limit_ns == 0 || now_ns.saturating_sub(c.last_ns) <= c.limit_ns {
                continue;
            }
            c.stale = true;
            emit(MarketEvent {
                exchange_ts_ns: 0,
                recv_ts_ns: now_ns,
                instrument: c.instrument,
                venue: self.venue,
                conn: 0,
                body: EventBody::Stale {
                    since_ns: c.last_ns,
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(inst: u32, recv: u64) -> MarketEvent {
        MarketEvent {
            exchange_ts_ns: 0,
            recv_ts_ns: recv,
            instrument: InstrumentId(inst),
            venue: Venue::Deribit,
            conn: 0,
            body: EventBody::Index { price: 1.0 },
        }
    }

    #[test]
    fn stale_once_then_fresh_before_the_data() {
        let s = 1_000_000_000;
        let mut f = Freshness::new(
            Venue::Deribit,
            &[
                (InstrumentId(0), StreamKind::Data),
                (InstrumentId(1), StreamKind::Data),
            ],
            Some(Duration::from_secs(5)),
        );
        assert!(f.set_limit(
            InstrumentId(1),
            StreamKind::Data,
            Some(Duration::from_secs(1))
        ));
        assert!(!f.set_limit(InstrumentId(1), StreamKind::Book, None));
        let mut out = Vec::new();
        f.on_open();
        f.on_timer(10 * s, &mut |e| out.push(e));
        f.pass(data(0, 11 * s), &mut |e| out.push(e));
        f.on_timer(13 * s, &mut |e| out.push(e));
        // Instrument 1 never sent anything since the timer armed it at 10 s: stale at 13 s.
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].instrument, InstrumentId(1));
        assert_eq!(out[1].body, EventBody::Stale { since_ns: 10 * s });
        f.on_timer(14 * s, &mut |e| out.push(e));
        assert_eq!(out.len(), 2, "once per silence");
        f.on_timer(17 * s, &mut |e| out.push(e));
        assert_eq!(out[2].body, EventBody::Stale { since_ns: 11 * s });
        assert_eq!(out[2].instrument, InstrumentId(0));
        f.pass(data(1, 18 * s), &mut |e| out.push(e));
        assert_eq!(out[3].body, EventBody::Fresh);
        assert_eq!(out[3].instrument, InstrumentId(1));
        assert_eq!(out[4].body, EventBody::Index { price: 1.0 });
        assert!(f.is_stale(InstrumentId(0), StreamKind::Data));
        assert!(!f.is_stale(InstrumentId(1), StreamKind::Data));
    }
}
