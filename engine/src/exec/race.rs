//! Racing bookkeeping: one hedge decision fired as several copies over several routes (RPC
//! endpoints, block builders, several connections to one venue), the first acceptance wins, and
//! every copy's outcome is accounted for.
//!
//! At most one fill is guaranteed by the copies themselves, never by this table: every copy of
//! a decision carries the same idempotency key (the same signed transaction at one nonce, the
//! same Binance `newClientOrderId`, the same Hyperliquid nonce), so the venue or the chain
//! accepts one and refuses the rest. [`RaceBook`] records what was fired, resolves each decision
//! exactly once ([`Resolution`]), keeps per-route send→ack latency (hdrhistogram, allocated at
//! start-up) and outcome counters, and marks a route degraded after consecutive failures.
//!
//! Owns fixed tables sized at construction: [`RaceBook::open`], [`RaceBook::fired`],
//! [`RaceBook::outcome`] and [`RaceBook::expire`] never allocate. Never waits: a decision whose
//! slowest copy has not answered is resolved by its first acceptance, and the copies still out
//! are counted when they answer or time out.

use hdrhistogram::Histogram;

/// Routes one decision can be raced over at most.
pub const MAX_ROUTES: usize = 8;
/// Consecutive failures (errors, timeouts, malformed replies) that mark a route degraded.
pub const DEGRADE_AFTER: u32 = 3;

/// What one copy on one route came to.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CopyOutcome {
    /// The venue/node/builder accepted it.
    Accepted = 0,
    /// Refused as a duplicate of an accepted copy (nonce already used, client order id taken).
    Duplicate = 1,
    /// Refused for another reason (signature, funds, limits).
    Rejected = 2,
    /// No answer before the race's deadline.
    Timeout = 3,
    /// Transport or protocol failure: reset, HTTP error, malformed reply.
    Error = 4,
}

impl CopyOutcome {
    /// All outcomes, in counter order.
    pub const ALL: [CopyOutcome; 5] = [
        CopyOutcome::Accepted,
        CopyOutcome::Duplicate,
        CopyOutcome::Rejected,
        CopyOutcome::Timeout,
        CopyOutcome::Error,
    ];

    /// Lower-case name for reports and JSON keys.
    pub fn name(self) -> &'static str {
        match self {
            CopyOutcome::Accepted => "accepted",
            CopyOutcome::Duplicate => "duplicate",
            CopyOutcome::Rejected => "rejected",
            CopyOutcome::Timeout => "timeout",
            CopyOutcome::Error => "error",
        }
    }

    fn is_failure(self) -> bool {
        matches!(self, CopyOutcome::Timeout | CopyOutcome::Error)
    }
}

/// Health of a route, from its recent outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Answering.
    Up,
    /// [`DEGRADE_AFTER`] consecutive timeouts or errors; back up on the next answer.
    Degraded,
}

/// How a decision was resolved (reported exactly once per decision).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The first acceptance: this route's copy is the one that counts.
    Won {
        /// The winning route.
        route: usize,
        /// Send→ack of the winning copy, ns.
        latency_ns: u64,
    },
    /// Every copy fired came back without an acceptance.
    Failed {
        /// The outcome of the last copy to report (what to log).
        last: CopyOutcome,
    },
}

/// Per-route outcome counters and send→ack latency.
#[derive(Clone)]
pub struct RouteStats {
    /// The route's name ("rpc 127.0.0.1:8545", "builder 2", "binance ws#1").
    pub name: String,
    /// Copies fired.
    pub fired: u64,
    /// Outcomes by [`CopyOutcome`] (index = `outcome as usize`).
    pub outcomes: [u64; 5],
    /// Send→answer latency of every answered copy, ns (timeouts excluded).
    pub latency: Histogram<u64>,
    /// Current health.
    pub health: Health,
    consecutive_failures: u32,
}

impl RouteStats {
    /// Count of one outcome.
    pub fn count(&self, o: CopyOutcome) -> u64 {
        self.outcomes[o as usize]
    }
}

impl std::fmt::Debug for RouteStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteStats")
            .field("name", &self.name)
            .field("fired", &self.fired)
            .field("outcomes", &self.outcomes)
            .field("p50_ns", &self.latency.value_at_quantile(0.5))
            .field("health", &self.health)
            .finish()
    }
}

/// Totals over every decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaceTotals {
    /// Decisions opened.
    pub opened: u64,
    /// Decisions resolved by an acceptance.
    pub won: u64,
    /// Decisions resolved without one.
    pub failed: u64,
    /// Acceptances of a copy after its decision was already won. For copies that share an
    /// idempotency key this is not a second fill (the chain or venue voids one), but it means a
    /// route did not enforce the key: reported, and zero against every mock.
    pub late_accepts: u64,
    /// Outcomes for no decision in flight (stale or unknown ids).
    pub unmatched: u64,
    /// Decisions refused because every slot was in flight.
    pub table_full: u64,
}

#[derive(Clone, Copy, Debug)]
struct Race {
    decision: u64,
    live: bool,
    resolved: bool,
    /// Routes fired and not yet answered.
    pending: u16,
    /// Routes fired.
    fired: u16,
    sent_ns: [u64; MAX_ROUTES],
    deadline_ns: u64,
    last: CopyOutcome,
}

const EMPTY: Race = Race {
    decision: 0,
    live: false,
    resolved: false,
    pending: 0,
    fired: 0,
    sent_ns: [0; MAX_ROUTES],
    deadline_ns: 0,
    last: CopyOutcome::Error,
};

/// Why a decision could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Every slot holds a decision with copies still out.
    #[error("race table full ({0} decisions in flight)")]
    Full(usize),
    /// This decision id is already in flight.
    #[error("decision {0} is already in flight")]
    Duplicate(u64),
}

/// The race table of the exec tile.
pub struct RaceBook {
    races: Box<[Race]>,
    routes: Vec<RouteStats>,
    timeout_ns: u64,
    totals: RaceTotals,
}

impl std::fmt::Debug for RaceBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaceBook")
            .field("routes", &self.routes)
            .field("totals", &self.totals)
            .finish()
    }
}

impl RaceBook {
    /// A table for `slots` decisions in flight over the named routes (at most [`MAX_ROUTES`]),
    /// each copy given `timeout_ns` to answer.
    ///
    /// # Panics
    /// With no route, more than [`MAX_ROUTES`], or zero slots: a start-up configuration error
    /// the caller validates first.
    pub fn new(route_names: &[&str], slots: usize, timeout_ns: u64) -> Self {
        assert!(
            !route_names.is_empty() && route_names.len() <= MAX_ROUTES && slots > 0,
            "RaceBook: 1..={MAX_ROUTES} routes and at least one slot"
        );
        let routes = route_names
            .iter()
            .map(|n| RouteStats {
                name: (*n).to_string(),
                fired: 0,
                outcomes: [0; 5],
                // 1 ns .. 60 s at 3 significant digits; fixed size, never resizes.
                latency: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                    .expect("static histogram bounds are valid"),
                health: Health::Up,
                consecutive_failures: 0,
            })
            .collect();
        Self {
            races: vec![EMPTY; slots].into_boxed_slice(),
            routes,
            timeout_ns,
            totals: RaceTotals::default(),
        }
    }

    /// Number of routes.
    pub fn routes(&self) -> usize {
        self.routes.len()
    }

    /// Per-route statistics.
    pub fn route_stats(&self) -> &[RouteStats] {
        &self.routes
    }

    /// Totals over every decision.
    pub fn totals(&self) -> RaceTotals {
        self.totals
    }

    /// Health of one route.
    pub fn health(&self, route: usize) -> Health {
        self.routes[route].health
    }

    /// Decisions with copies still out.
    pub fn in_flight(&self) -> usize {
        self.races.iter().filter(|r| r.live).count()
    }

    /// Whether a decision has been opened and not yet fully answered.
    pub fn is_live(&self, decision: u64) -> bool {
        self.find(decision).is_some()
    }

    fn find(&self, decision: u64) -> Option<usize> {
        let n = self.races.len();
        let home = (decision % n as u64) as usize;
        (0..n)
            .map(|i| (home + i) % n)
            .find(|&i| self.races[i].live && self.races[i].decision == decision)
    }

    /// Opens a decision before its copies are fired.
    pub fn open(&mut self, decision: u64, now_ns: u64) -> Result<(), OpenError> {
        if self.find(decision).is_some() {
            return Err(OpenError::Duplicate(decision));
        }
        let n = self.races.len();
        let home = (decision % n as u64) as usize;
        let Some(slot) = (0..n)
            .map(|i| (home + i) % n)
            .find(|&i| !self.races[i].live)
        else {
            self.totals.table_full += 1;
            return Err(OpenError::Full(n));
        };
        self.races[slot] = Race {
            decision,
            live: true,
            deadline_ns: now_ns.saturating_add(self.timeout_ns),
            ..EMPTY
        };
        self.totals.opened += 1;
        Ok(())
    }

    /// Records that the copy on `route` was written at `now_ns`. A route fired twice for one
    /// decision, or for a decision not open, is ignored (returns false).
    pub fn fired(&mut self, decision: u64, route: usize, now_ns: u64) -> bool {
        let Some(i) = self.find(decision) else {
            return false;
        };
        let bit = 1u16 << route;
        let r = &mut self.races[i];
        if route >= self.routes.len() || r.fired & bit != 0 || r.resolved {
            return false;
        }
        r.fired |= bit;
        r.pending |= bit;
        r.sent_ns[route] = now_ns;
        self.routes[route].fired += 1;
        true
    }

    /// A decision whose copies could not be fired at all (every route down): resolves it as
    /// failed with `why` and frees its slot. Returns the resolution, or `None` when the decision
    /// is not open or already resolved.
    pub fn abandon(&mut self, decision: u64, why: CopyOutcome) -> Option<Resolution> {
        let i = self.find(decision)?;
        let r = &mut self.races[i];
        if r.resolved {
            return None;
        }
        r.resolved = true;
        self.totals.failed += 1;
        if r.pending == 0 {
            r.live = false;
        }
        Some(Resolution::Failed { last: why })
    }

    /// Records the answer of `route`'s copy. Returns the decision's resolution the first time
    /// it is known: the first acceptance, or the last failure when every copy failed.
    pub fn outcome(
        &mut self,
        decision: u64,
        route: usize,
        outcome: CopyOutcome,
        now_ns: u64,
    ) -> Option<Resolution> {
        let Some(i) = self.find(decision) else {
            self.totals.unmatched += 1;
            return None;
        };
        let bit = 1u16 << route;
        if route >= self.routes.len() || self.races[i].pending & bit == 0 {
            self.totals.unmatched += 1;
            return None;
        }
        let sent = self.races[i].sent_ns[route];
        let latency_ns = now_ns.saturating_sub(sent).max(1);
        self.note(route, outcome, Some(latency_ns));
        self.settle(i, bit, outcome, route, latency_ns)
    }

    /// Times out every copy past its deadline; `on_resolved` gets each decision resolved by it.
    pub fn expire(&mut self, now_ns: u64, mut on_resolved: impl FnMut(u64, Resolution)) {
        for i in 0..self.races.len() {
            let r = self.races[i];
            if !r.live || now_ns < r.deadline_ns || r.pending == 0 {
                continue;
            }
            for route in 0..self.routes.len() {
                let bit = 1u16 << route;
                if self.races[i].pending & bit == 0 {
                    continue;
                }
                self.note(route, CopyOutcome::Timeout, None);
                if let Some(res) = self.settle(i, bit, CopyOutcome::Timeout, route, 0) {
                    on_resolved(r.decision, res);
                }
            }
        }
    }

    fn note(&mut self, route: usize, outcome: CopyOutcome, latency_ns: Option<u64>) {
        let s = &mut self.routes[route];
        s.outcomes[outcome as usize] += 1;
        if let Some(l) = latency_ns {
            s.latency.saturating_record(l);
        }
        if outcome.is_failure() {
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            if s.consecutive_failures >= DEGRADE_AFTER {
                s.health = Health::Degraded;
            }
        } else {
            s.consecutive_failures = 0;
            s.health = Health::Up;
        }
    }

    fn settle(
        &mut self,
        i: usize,
        bit: u16,
        outcome: CopyOutcome,
        route: usize,
        latency_ns: u64,
    ) -> Option<Resolution> {
        let r = &mut self.races[i];
        r.pending &= !bit;
        r.last = outcome;
        let mut res = None;
        if outcome == CopyOutcome::Accepted {
            if r.resolved {
                self.totals.late_accepts += 1;
            } else {
                r.resolved = true;
                self.totals.won += 1;
                res = Some(Resolution::Won { route, latency_ns });
            }
        } else if !r.resolved && r.pending == 0 {
            r.resolved = true;
            self.totals.failed += 1;
            res = Some(Resolution::Failed { last: outcome });
        }
        if r.pending == 0 && r.resolved {
            r.live = false;
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> RaceBook {
        RaceBook::new(&["a", "b", "c", "d"], 4, 1_000)
    }

    #[test]
    fn first_acceptance_wins_and_later_answers_are_only_counted() {
        let mut b = book();
        b.open(7, 0).unwrap();
        for r in 0..4 {
            assert!(b.fired(7, r, 10));
        }
        assert_eq!(b.outcome(7, 2, CopyOutcome::Error, 50), None);
        assert_eq!(
            b.outcome(7, 1, CopyOutcome::Accepted, 60),
            Some(Resolution::Won {
                route: 1,
                latency_ns: 50
            })
        );
        assert_eq!(b.outcome(7, 0, CopyOutcome::Duplicate, 70), None);
        assert!(b.is_live(7), "route 3 has not answered");
        assert_eq!(b.outcome(7, 3, CopyOutcome::Accepted, 80), None);
        assert!(!b.is_live(7));
        let t = b.totals();
        assert_eq!((t.opened, t.won, t.failed, t.late_accepts), (1, 1, 0, 1));
        assert_eq!(b.route_stats()[0].count(CopyOutcome::Duplicate), 1);
        assert_eq!(b.route_stats()[2].count(CopyOutcome::Error), 1);
    }

    #[test]
    fn all_copies_failing_resolve_once_as_failed() {
        let mut b = book();
        b.open(1, 0).unwrap();
        b.fired(1, 0, 0);
        b.fired(1, 1, 0);
        assert_eq!(b.outcome(1, 0, CopyOutcome::Rejected, 5), None);
        let mut got = Vec::new();
        b.expire(999, |d, r| got.push((d, r)));
        assert!(got.is_empty(), "deadline not reached");
        b.expire(1_000, |d, r| got.push((d, r)));
        assert_eq!(
            got,
            vec![(
                1,
                Resolution::Failed {
                    last: CopyOutcome::Timeout
                }
            )]
        );
        assert!(!b.is_live(1));
        assert_eq!(b.outcome(1, 1, CopyOutcome::Accepted, 2_000), None);
        assert_eq!(b.totals().unmatched, 1);
    }

    #[test]
    fn slots_are_reused_and_a_full_table_is_refused() {
        let mut b = RaceBook::new(&["a"], 2, 100);
        b.open(1, 0).unwrap();
        b.open(3, 0).unwrap();
        assert_eq!(b.open(5, 0), Err(OpenError::Full(2)));
        assert_eq!(b.open(1, 0), Err(OpenError::Duplicate(1)));
        b.fired(1, 0, 0);
        b.outcome(1, 0, CopyOutcome::Accepted, 1);
        b.open(5, 1).unwrap();
        assert_eq!(b.totals().table_full, 1);
    }

    #[test]
    fn consecutive_failures_degrade_a_route_and_an_answer_restores_it() {
        let mut b = RaceBook::new(&["a"], 8, 100);
        for d in 0..DEGRADE_AFTER as u64 {
            b.open(d, 0).unwrap();
            b.fired(d, 0, 0);
            b.outcome(d, 0, CopyOutcome::Error, 1);
        }
        assert_eq!(b.health(0), Health::Degraded);
        b.open(100, 0).unwrap();
        b.fired(100, 0, 0);
        b.outcome(100, 0, CopyOutcome::Duplicate, 1);
        assert_eq!(b.health(0), Health::Up);
    }

    #[test]
    fn abandon_resolves_a_decision_nothing_was_fired_for() {
        let mut b = book();
        b.open(9, 0).unwrap();
        assert_eq!(
            b.abandon(9, CopyOutcome::Error),
            Some(Resolution::Failed {
                last: CopyOutcome::Error
            })
        );
        assert!(!b.is_live(9));
        assert_eq!(b.abandon(9, CopyOutcome::Error), None);
    }
}
