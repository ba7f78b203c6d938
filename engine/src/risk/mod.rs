//! Risk: hard limits on what the hedger may send, the trading state (ACTIVE, REDUCING, HALTED)
//! with the reason of every transition, the kill switch ([`kill`]: a halt file, SIGUSR1,
//! `keel halt`) and the data guards ([`guards`]: stale feeds, the index as a median of its
//! sources, implied-vol sanity).
//!
//! Owns counters and state only. [`RiskGate`] never allocates, never locks and never makes a
//! syscall: it is meant for the pricer's hot path (`book::aggregate -> risk::check ->
//! policy::decide`, DESIGN.md). The halt file is looked at by [`KillFile::poll`] on the status
//! loop, which publishes through [`KillFlags`]; the gate reads those flags. The gate is a
//! deterministic function of its inputs and the times it is given, so the backtest can drive it
//! with simulated time.
//!
//! Times are ns since the Unix epoch (UTC), from one clock for every call: the minute windows
//! slide on it and the daily loss stop rolls at 00:00 UTC of it.
//!
//! States and transitions (each with a [`HaltReason`], the last kept as a [`Transition`]):
//!
//! | from | to | when |
//! | --- | --- | --- |
//! | ACTIVE | REDUCING | the day's P&L falls below −`daily_loss_stop_usd` ([`HaltReason::DailyLoss`]) |
//! | REDUCING (daily loss) | ACTIVE | the day rolls at 00:00 UTC ([`HaltReason::DayRolled`]) |
//! | any | HALTED | the halt file exists, SIGUSR1, [`RiskGate::halt`], or `max_consecutive_rejects` rejections in a row |
//! | HALTED, REDUCING | ACTIVE | [`RiskGate::resume`], refused while the halt file exists |
//!
//! HALTED is sticky: removing the halt file (`keel halt --clear`) does not resume a running
//! engine, so a halt is never undone by accident; it makes the next start (or a resume)
//! possible. In REDUCING only orders that reduce the exposure pass; in HALTED nothing passes
//! and [`RiskGate::take_cancel_all`] tells the exec tile, once, to cancel everything resting.

pub mod guards;
pub mod kill;
mod window;

pub use guards::{
    FeedStaleness, Guard, GuardConfigError, GuardDetail, GuardFault, IndexConfig, IndexGuard,
    IndexReading, IvGuard, IvLimits, MAD_SCALE, MAX_SOURCES,
};
pub use kill::{
    DEFAULT_HALT_FILE, DEFAULT_POLL_EVERY, HaltNote, KillFile, KillFlags, clear_halt_file,
    read_halt_file, write_halt_file,
};
pub use window::{MinuteWindow, WINDOW_SECS};

use crate::exec::FillStatus;

/// Nanoseconds in a day: the daily loss stop rolls when `now_ns / NS_PER_DAY` changes.
pub const NS_PER_DAY: u64 = 86_400_000_000_000;

/// The engine's trading state.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RiskState {
    /// Every order within the limits may go.
    Active = 0,
    /// Only orders that reduce the exposure may go (within the limits).
    Reducing = 1,
    /// Nothing may go; resting orders are to be cancelled.
    Halted = 2,
}

impl RiskState {
    /// Short name for status lines and JSON.
    pub fn name(self) -> &'static str {
        match self {
            RiskState::Active => "active",
            RiskState::Reducing => "reducing",
            RiskState::Halted => "halted",
        }
    }
}

/// Why the state changed. Most reasons reduce or halt; [`HaltReason::DayRolled`] and
/// [`HaltReason::Resumed`] bring the engine back to ACTIVE.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HaltReason {
    /// The halt file exists (`keel halt`, or any file at that path).
    KillFile = 1,
    /// SIGUSR1.
    Signal = 2,
    /// [`RiskGate::halt`] (an operator command inside the process).
    Operator = 3,
    /// The day's loss passed the daily loss stop.
    DailyLoss = 4,
    /// `max_consecutive_rejects` orders in a row were rejected (or never arrived).
    VenueRejects = 5,
    /// 00:00 UTC passed: the daily loss stop starts over.
    DayRolled = 6,
    /// [`RiskGate::resume`].
    Resumed = 7,
}

impl HaltReason {
    /// Short name for status lines and JSON.
    pub fn name(self) -> &'static str {
        match self {
            HaltReason::KillFile => "kill_file",
            HaltReason::Signal => "signal",
            HaltReason::Operator => "operator",
            HaltReason::DailyLoss => "daily_loss",
            HaltReason::VenueRejects => "venue_rejects",
            HaltReason::DayRolled => "day_rolled",
            HaltReason::Resumed => "resumed",
        }
    }
}

/// One state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// State before.
    pub from: RiskState,
    /// State after.
    pub to: RiskState,
    /// Why.
    pub reason: HaltReason,
    /// When, ns.
    pub at_ns: u64,
}

/// The limits. `f64::INFINITY` (or `u32::MAX` for counts) means none.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RiskLimits {
    /// Largest |coin delta| of one order.
    pub max_order_coin: f64,
    /// Largest |position| in any one instrument after the order, coin (an order that makes the
    /// position smaller always passes this limit).
    pub max_position_coin: f64,
    /// Largest USD notional sent over the last 60 s, this order included.
    pub max_notional_per_min_usd: f64,
    /// Most orders sent over the last 60 s, this order included. Rejected orders count: the
    /// limit is on what is asked of the venues, whatever they answer.
    pub max_hedges_per_min: u32,
    /// Loss of the day (USD, from the P&L fed to [`RiskGate::record_pnl`]) past which the gate
    /// goes REDUCING until 00:00 UTC.
    pub daily_loss_stop_usd: f64,
    /// Rejections (or orders never arrived) in a row that halt.
    pub max_consecutive_rejects: u32,
}

impl Default for RiskLimits {
    /// No size, position, notional or loss limit; 30 hedges a minute; halt after 5 rejections
    /// in a row.
    fn default() -> Self {
        Self {
            max_order_coin: f64::INFINITY,
            max_position_coin: f64::INFINITY,
            max_notional_per_min_usd: f64::INFINITY,
            max_hedges_per_min: 30,
            daily_loss_stop_usd: f64::INFINITY,
            max_consecutive_rejects: 5,
        }
    }
}

/// A limit set that cannot work.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RiskConfigError {
    /// A limit that must be a positive number (or infinity) is not.
    #[error("risk limit {name} must be > 0 (got {value})")]
    NotPositive {
        /// The limit.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// A data guard's settings are invalid (the guard's own message).
    #[error("data guard settings: {0}")]
    Guard(String),
}

impl RiskLimits {
    /// Every limit positive (NaN refused).
    pub fn validate(&self) -> Result<(), RiskConfigError> {
        let floats = [
            ("max_order_coin", self.max_order_coin),
            ("max_position_coin", self.max_position_coin),
            ("max_notional_per_min_usd", self.max_notional_per_min_usd),
            ("daily_loss_stop_usd", self.daily_loss_stop_usd),
        ];
        let counts = [
            ("max_hedges_per_min", self.max_hedges_per_min),
            ("max_consecutive_rejects", self.max_consecutive_rejects),
        ];
        for (name, value) in floats {
            if value.is_nan() || value <= 0.0 {
                return Err(RiskConfigError::NotPositive { name, value });
            }
        }
        for (name, value) in counts {
            if value == 0 {
                return Err(RiskConfigError::NotPositive { name, value: 0.0 });
            }
        }
        Ok(())
    }
}

/// An order to check, in coin and USD.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrderCheck {
    /// Coin delta the order adds when filled, signed (buy > 0): `HedgeIntent::coin_delta`.
    pub coin: f64,
    /// USD notional, ≥ 0: |coin| × the reference price.
    pub notional_usd: f64,
    /// Position in the order's instrument before it, coin, signed, counting orders in flight.
    pub position_coin: f64,
    /// The exposure judged in REDUCING: the portfolio's coin delta counting hedges in flight,
    /// minus the policy's target. An order reduces it when it has the opposite sign and is no
    /// larger (it never flips the exposure).
    pub exposure_coin: f64,
}

/// Which limit refused an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// The gate is HALTED (nothing passes), for this reason.
    Halted(HaltReason),
    /// A number of the order is not finite (or the notional is negative); names which.
    BadOrder(&'static str),
    /// `max_order_coin`; value |coin|.
    MaxOrderCoin,
    /// REDUCING: value |coin|, bound the most a reducing order may be (|exposure| for an order
    /// of the opposite sign, else 0).
    ReduceOnly,
    /// `max_position_coin`; value |position after|.
    MaxPositionCoin,
    /// `max_hedges_per_min`; value the orders in the window with this one.
    MaxHedgesPerMin,
    /// `max_notional_per_min_usd`; value the window's notional with this order's.
    MaxNotionalPerMin,
}

impl Limit {
    /// Number of distinct limits (for counters).
    pub const COUNT: usize = 7;

    /// Short name for status lines, JSON and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Halted(_) => "halted",
            Limit::BadOrder(_) => "bad_order",
            Limit::MaxOrderCoin => "max_order_coin",
            Limit::ReduceOnly => "reduce_only",
            Limit::MaxPositionCoin => "max_position_coin",
            Limit::MaxHedgesPerMin => "max_hedges_per_min",
            Limit::MaxNotionalPerMin => "max_notional_per_min_usd",
        }
    }

    /// Dense index in `0..COUNT`, in the order of the variants.
    /// The name of the limit at `index` (see [`Limit::index`]), for counters read back.
    pub fn name_of_index(index: usize) -> Option<&'static str> {
        const NAMES: [&str; 7] = [
            "halted",
            "bad_order",
            "max_order_coin",
            "reduce_only",
            "max_position_coin",
            "max_hedges_per_min",
            "max_notional_per_min_usd",
        ];
        NAMES.get(index).copied()
    }

    pub fn index(self) -> usize {
        match self {
            Limit::Halted(_) => 0,
            Limit::BadOrder(_) => 1,
            Limit::MaxOrderCoin => 2,
            Limit::ReduceOnly => 3,
            Limit::MaxPositionCoin => 4,
            Limit::MaxHedgesPerMin => 5,
            Limit::MaxNotionalPerMin => 6,
        }
    }
}

/// Why an order may not go: the limit, the value the order would reach and the bound it passes.
/// `Copy`, no heap; `Display` gives e.g. `max_hedges_per_min: 31 > 30`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Veto {
    /// The limit.
    pub limit: Limit,
    /// The value the order would reach (NaN for `Halted`).
    pub value: f64,
    /// The bound (NaN for `Halted` and `BadOrder`).
    pub bound: f64,
}

impl core::fmt::Display for Veto {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.limit {
            Limit::Halted(r) => write!(f, "halted: {}", r.name()),
            Limit::BadOrder(field) => write!(f, "bad_order: {field} = {}", self.value),
            l => write!(f, "{}: {} > {}", l.name(), self.value, self.bound),
        }
    }
}

/// Why [`RiskGate::resume`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResumeRefused {
    /// The halt file still exists: remove it first (`keel halt --clear`).
    #[error("the halt file still exists (keel halt --clear removes it)")]
    KillFilePresent,
}

/// What the gate counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RiskCounters {
    /// Orders checked.
    pub checks: u64,
    /// Orders that passed.
    pub passed: u64,
    /// Vetoes per limit, by [`Limit::index`].
    pub vetoes: [u64; Limit::COUNT],
    /// Orders recorded as sent.
    pub sent: u64,
    /// Outcomes with a fill.
    pub fills: u64,
    /// Outcomes without one (rejected, never arrived).
    pub rejects: u64,
    /// P&L values refused (not finite).
    pub bad_pnl: u64,
    /// State changes.
    pub transitions: u64,
}

/// The risk gate: limits, state and kill switch, checked before every order.
#[derive(Clone, Debug)]
pub struct RiskGate {
    limits: RiskLimits,
    kill: KillFlags,
    state: RiskState,
    last: Option<Transition>,
    window: MinuteWindow,
    cancel_all: bool,
    reject_streak: u32,
    day: Option<u64>,
    day_start_pnl: f64,
    last_pnl: f64,
    counters: RiskCounters,
}

impl RiskGate {
    /// An ACTIVE gate with `limits` (validated), halting when `kill` asks.
    pub fn new(limits: RiskLimits, kill: KillFlags) -> Result<Self, RiskConfigError> {
        limits.validate()?;
        Ok(Self {
            limits,
            kill,
            state: RiskState::Active,
            last: None,
            window: MinuteWindow::new(),
            cancel_all: false,
            reject_streak: 0,
            day: None,
            day_start_pnl: 0.0,
            last_pnl: 0.0,
            counters: RiskCounters::default(),
        })
    }

    /// Applies the kill switch and the day roll at `now_ns` and returns the state. Cheap (a
    /// relaxed load or two): the pricer may call it every step, so that a halt (and its
    /// cancel-all) happens even when no order is being checked.
    pub fn poll(&mut self, now_ns: u64) -> RiskState {
        if self.state != RiskState::Halted
            && let Some(r) = self.kill.requested()
        {
            self.enter(RiskState::Halted, r, now_ns);
        }
        self.roll_day(now_ns);
        self.state
    }

    /// May `order` go now? Checks, in this order: the kill switch and HALTED, the order's
    /// numbers, `max_order_coin`, reduce-only in REDUCING, `max_position_coin`,
    /// `max_hedges_per_min`, `max_notional_per_min_usd`; the first limit passed is the veto.
    /// Records nothing but counters: call [`RiskGate::record_sent`] when the order goes.
    pub fn check(&mut self, order: &OrderCheck, now_ns: u64) -> Result<(), Veto> {
        self.poll(now_ns);
        self.counters.checks += 1;
        let r = self.evaluate(order, now_ns);
        match r {
            Ok(()) => self.counters.passed += 1,
            Err(v) => self.counters.vetoes[v.limit.index()] += 1,
        }
        r
    }

    fn evaluate(&self, o: &OrderCheck, now_ns: u64) -> Result<(), Veto> {
        let veto = |limit, value, bound| {
            Err(Veto {
                limit,
                value,
                bound,
            })
        };
        if let RiskState::Halted = self.state {
            let reason = self.last.map_or(HaltReason::Operator, |t| t.reason);
            return veto(Limit::Halted(reason), f64::NAN, f64::NAN);
        }
        for (field, v) in [
            ("coin", o.coin),
            ("notional_usd", o.notional_usd),
            ("position_coin", o.position_coin),
            ("exposure_coin", o.exposure_coin),
        ] {
            if !v.is_finite() || (field == "notional_usd" && v < 0.0) {
                return veto(Limit::BadOrder(field), v, f64::NAN);
            }
        }
        let l = &self.limits;
        let size = o.coin.abs();
        if size > l.max_order_coin {
            return veto(Limit::MaxOrderCoin, size, l.max_order_coin);
        }
        if self.state == RiskState::Reducing {
            let room = if o.coin * o.exposure_coin < 0.0 {
                o.exposure_coin.abs()
            } else {
                0.0
            };
            if size > room {
                return veto(Limit::ReduceOnly, size, room);
            }
        }
        let after = (o.position_coin + o.coin).abs();
        if after > l.max_position_coin && after > o.position_coin.abs() {
            return veto(Limit::MaxPositionCoin, after, l.max_position_coin);
        }
        let (count, notional) = self.window.sums(now_ns);
        let count = u64::from(count) + 1;
        if count > u64::from(l.max_hedges_per_min) {
            return veto(
                Limit::MaxHedgesPerMin,
                count as f64,
                f64::from(l.max_hedges_per_min),
            );
        }
        let notional = notional + o.notional_usd;
        if notional > l.max_notional_per_min_usd {
            return veto(
                Limit::MaxNotionalPerMin,
                notional,
                l.max_notional_per_min_usd,
            );
        }
        Ok(())
    }

    /// Records that `order` was sent at `now_ns`: it counts in the minute windows from now on,
    /// whatever its outcome.
    pub fn record_sent(&mut self, order: &OrderCheck, now_ns: u64) {
        let notional = if order.notional_usd.is_finite() {
            order.notional_usd.max(0.0)
        } else {
            0.0
        };
        self.window.add(now_ns, 1, notional);
        self.counters.sent += 1;
    }

    /// Records how an order ended. A rejection, or an order the venue never received, extends
    /// the streak of rejections (which halts at `max_consecutive_rejects`); any fill ends it.
    pub fn record_outcome(&mut self, status: FillStatus, now_ns: u64) {
        match status {
            FillStatus::Rejected | FillStatus::NotFound | FillStatus::Lost => {
                self.counters.rejects += 1;
                self.reject_streak = self.reject_streak.saturating_add(1);
                if self.reject_streak >= self.limits.max_consecutive_rejects {
                    self.enter(RiskState::Halted, HaltReason::VenueRejects, now_ns);
                }
            }
            FillStatus::Filled | FillStatus::Partial | FillStatus::Paper => {
                self.counters.fills += 1;
                self.reject_streak = 0;
            }
        }
    }

    /// Feeds the run's cumulative P&L in USD (0 at start, marked to market) at `now_ns`. The
    /// day's P&L is this minus the last value fed before 00:00 UTC (0 on the first day); when
    /// the day's loss passes `daily_loss_stop_usd` an ACTIVE gate goes REDUCING. A value that is
    /// not finite is counted and ignored.
    pub fn record_pnl(&mut self, pnl_usd: f64, now_ns: u64) {
        if !pnl_usd.is_finite() {
            self.counters.bad_pnl += 1;
            return;
        }
        self.roll_day(now_ns);
        self.last_pnl = pnl_usd;
        if self.state == RiskState::Active
            && self.day_start_pnl - pnl_usd > self.limits.daily_loss_stop_usd
        {
            self.enter(RiskState::Reducing, HaltReason::DailyLoss, now_ns);
        }
    }

    fn roll_day(&mut self, now_ns: u64) {
        let day = now_ns / NS_PER_DAY;
        match self.day {
            None => self.day = Some(day),
            Some(d) if day > d => {
                self.day = Some(day);
                self.day_start_pnl = self.last_pnl;
                if self.state == RiskState::Reducing
                    && self.last.is_some_and(|t| t.reason == HaltReason::DailyLoss)
                {
                    self.enter(RiskState::Active, HaltReason::DayRolled, now_ns);
                }
            }
            // Same day, or a clock stepped back: never roll backwards.
            Some(_) => {}
        }
    }

    /// Halts now ([`HaltReason::Operator`]).
    pub fn halt(&mut self, now_ns: u64) {
        self.enter(RiskState::Halted, HaltReason::Operator, now_ns);
    }

    /// Back to ACTIVE from HALTED or REDUCING, by an operator's decision: refused while the
    /// halt file exists; acknowledges SIGUSR1 (lowers its flag) and forgets the streak of
    /// rejections. A daily loss stop resumed this way stays off for the rest of the day unless
    /// the loss deepens past the stop again on a later P&L.
    pub fn resume(&mut self, now_ns: u64) -> Result<(), ResumeRefused> {
        if self.kill.requested() == Some(HaltReason::KillFile) {
            return Err(ResumeRefused::KillFilePresent);
        }
        self.kill.clear_signal();
        self.reject_streak = 0;
        self.enter(RiskState::Active, HaltReason::Resumed, now_ns);
        Ok(())
    }

    fn enter(&mut self, to: RiskState, reason: HaltReason, now_ns: u64) {
        if to == self.state {
            return;
        }
        self.last = Some(Transition {
            from: self.state,
            to,
            reason,
            at_ns: now_ns,
        });
        self.counters.transitions += 1;
        self.state = to;
        if to == RiskState::Halted {
            self.cancel_all = true;
        }
    }

    /// True once after each entry into HALTED: the exec tile then cancels every resting order
    /// on every venue.
    pub fn take_cancel_all(&mut self) -> bool {
        core::mem::take(&mut self.cancel_all)
    }

    /// The state (as of the last call that took a time).
    pub fn state(&self) -> RiskState {
        self.state
    }

    /// The last state change, if any.
    pub fn last_transition(&self) -> Option<Transition> {
        self.last
    }

    /// The limits.
    pub fn limits(&self) -> &RiskLimits {
        &self.limits
    }

    /// The day's P&L so far, USD (from the last value fed).
    pub fn daily_pnl(&self) -> f64 {
        self.last_pnl - self.day_start_pnl
    }

    /// Orders and USD notional sent in the window ending at `now_ns`.
    pub fn minute_totals(&self, now_ns: u64) -> (u32, f64) {
        self.window.sums(now_ns)
    }

    /// Rejections in a row so far.
    pub fn reject_streak(&self) -> u32 {
        self.reject_streak
    }

    /// The counters.
    pub fn counters(&self) -> &RiskCounters {
        &self.counters
    }
}

#[cfg(test)]
mod tests;
