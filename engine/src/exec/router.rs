//! Routes hedge intents to the order session of their venue and merges the fills back, on the
//! exec thread: the pricer keeps one intent ring and one fill ring whatever the number of
//! venues it hedges on.
//!
//! Owns the pricer-side ends (intents in, fills out) and one (intents out, fills in) pair per
//! venue. Never drops anything: an intent whose venue ring is full, or a fill the pricer's ring
//! has no room for, is held and retried first on the next step; an intent for a venue without a
//! route is answered at once with a `Rejected` fill (error code −1), so its exposure is released,
//! never left in flight. Never allocates after construction.

use keel_feeds::clock;
use keel_feeds::event::Venue;

use super::{Fill, FillStatus, HedgeIntent};
use crate::pipeline::Tile;
use crate::pipeline::ring::{Consumer, Producer};

/// One venue's rings, seen from the router.
pub struct Route {
    /// The venue.
    pub venue: Venue,
    /// Intents to its order session.
    pub intents: Producer<HedgeIntent>,
    /// Fills from it.
    pub fills: Consumer<Fill>,
}

/// Counters of the router.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouterCounters {
    /// Intents forwarded, per route (index as given).
    pub routed: [u64; 8],
    /// Intents for a venue without a route (answered `Rejected`).
    pub unroutable: u64,
}

/// The router tile.
pub struct Router {
    intents: Consumer<HedgeIntent>,
    fills: Producer<Fill>,
    routes: Vec<Route>,
    held_intent: Option<(usize, HedgeIntent)>,
    held_fill: Option<Fill>,
    counters: RouterCounters,
}

impl Router {
    /// A router from the pricer's ends to `routes` (at most 8).
    ///
    /// # Panics
    /// With more than 8 routes (a start-up configuration error).
    pub fn new(intents: Consumer<HedgeIntent>, fills: Producer<Fill>, routes: Vec<Route>) -> Self {
        assert!(routes.len() <= 8, "at most 8 order routes");
        Self {
            intents,
            fills,
            routes,
            held_intent: None,
            held_fill: None,
            counters: RouterCounters::default(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> RouterCounters {
        self.counters
    }

    fn deliver(&mut self, f: Fill) -> bool {
        match self.fills.push(f) {
            Ok(()) => true,
            Err(back) => {
                self.held_fill = Some(back.0);
                false
            }
        }
    }
}

impl Tile for Router {
    fn name(&self) -> &'static str {
        "router"
    }

    fn step(&mut self) -> bool {
        let mut did = false;
        // Fills first: they release exposure in the pricer.
        if let Some(f) = self.held_fill.take() {
            if !self.deliver(f) {
                return false;
            }
            did = true;
        }
        for r in 0..self.routes.len() {
            while self.held_fill.is_none() {
                let Some(f) = self.routes[r].fills.pop() else {
                    break;
                };
                self.deliver(f);
                did = true;
            }
        }
        // Then intents (not while a fill waits: a rejection must queue behind it).
        if self.held_fill.is_some() {
            return did;
        }
        loop {
            let (r, intent) = match self.held_intent.take() {
                Some(x) => x,
                None => match self.intents.pop() {
                    Some(i) => match self.routes.iter().position(|r| r.venue == i.venue) {
                        Some(r) => (r, i),
                        None => {
                            self.counters.unroutable += 1;
                            did = true;
                            let now = clock::now_ns();
                            let mut trace = i.trace;
                            trace.sent_ns = now;
                            let rejected = Fill {
                                trace,
                                intent_id: i.id,
                                filled: 0.0,
                                price: f64::NAN,
                                intent_coin_delta: i.coin_delta,
                                done_ns: now,
                                instrument: i.instrument,
                                error_code: -1,
                                status: FillStatus::Rejected,
                            };
                            if !self.deliver(rejected) {
                                // Held (by `deliver`) and sent first on the next step.
                                return did;
                            }
                            continue;
                        }
                    },
                    None => break,
                },
            };
            match self.routes[r].intents.push(intent) {
                Ok(()) => {
                    self.counters.routed[r] += 1;
                    did = true;
                }
                Err(back) => {
                    self.held_intent = Some((r, back.0));
                    break;
                }
            }
        }
        did
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ring::ring;
    use crate::pipeline::telemetry::TickTrace;
    use keel_feeds::event::Side;
    use keel_feeds::instrument::InstrumentId;

    fn intent(id: u64, venue: Venue) -> HedgeIntent {
        HedgeIntent {
            trace: TickTrace::default(),
            id,
            amount: 1.0,
            ref_price: 1.0,
            coin_delta: 0.5,
            instrument: InstrumentId(3),
            side: Side::Buy,
            venue,
        }
    }

    #[test]
    fn intents_go_to_their_venue_fills_come_back_and_unknown_venues_are_rejected() {
        let (mut pi, ci) = ring::<HedgeIntent>(8).unwrap();
        let (pf, mut cf) = ring::<Fill>(8).unwrap();
        let (di, mut dc) = ring::<HedgeIntent>(2).unwrap();
        let (mut df, dfc) = ring::<Fill>(8).unwrap();
        let (bi, mut bc) = ring::<HedgeIntent>(8).unwrap();
        let (_bf, bfc) = ring::<Fill>(8).unwrap();
        let mut r = Router::new(
            ci,
            pf,
            vec![
                Route {
                    venue: Venue::Deribit,
                    intents: di,
                    fills: dfc,
                },
                Route {
                    venue: Venue::Binance,
                    intents: bi,
                    fills: bfc,
                },
            ],
        );
        for (id, v) in [
            (1, Venue::Deribit),
            (2, Venue::Binance),
            (3, Venue::Okx),
            (4, Venue::Deribit),
            (5, Venue::Deribit),
        ] {
            pi.push(intent(id, v)).unwrap();
        }
        assert!(r.step());
        assert_eq!(bc.pop().map(|i| i.id), Some(2));
        // The Deribit ring holds 2: the third waits in the router, in order.
        assert_eq!(dc.pop().map(|i| i.id), Some(1));
        assert_eq!(dc.pop().map(|i| i.id), Some(4));
        assert!(dc.pop().is_none());
        r.step();
        assert_eq!(dc.pop().map(|i| i.id), Some(5));
        // The OKX intent was answered: rejected, nothing filled.
        let f = cf.pop().expect("a rejection");
        assert_eq!(
            (f.intent_id, f.status, f.filled),
            (3, FillStatus::Rejected, 0.0)
        );
        assert_eq!(r.counters().unroutable, 1);
        assert_eq!(r.counters().routed[..2], [3, 1]);
        // A venue's fill reaches the pricer.
        let mut fill = f;
        fill.intent_id = 1;
        fill.status = FillStatus::Filled;
        df.push(fill).unwrap();
        r.step();
        assert_eq!(cf.pop().map(|f| f.intent_id), Some(1));
    }
}
