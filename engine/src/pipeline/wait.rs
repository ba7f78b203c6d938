//! What a stage thread does when it finds no work: the per-thread wait strategy (disruptor-rs
//! `wait_strategies.rs`), chosen on the command line (`spin`, `spin-yield`, `park`).
//!
//! Owns: a [`Waiter`]'s escalation state (how long this thread has been idle). Must never:
//! allocate, or make a syscall under [`WaitStrategy::Spin`]. [`WaitStrategy::Park`] sleeps at
//! most [`PARK_MAX`] at a time and needs no unpark: a parked stage notices new work within that
//! bound.

use super::PipelineError;
use std::str::FromStr;
use std::time::Duration;

/// How a stage waits for work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Busy-spin with the CPU's spin hint; lowest latency, burns a whole core.
    Spin,
    /// Spin [`SPIN_LIMIT`] times, then yield the core to the scheduler on every further idle.
    SpinYield,
    /// Spin briefly, yield a few times, then sleep in growing steps from [`PARK_MIN`] to
    /// [`PARK_MAX`].
    Park,
}

/// Idle rounds spent spinning before [`WaitStrategy::SpinYield`] starts yielding.
pub const SPIN_LIMIT: u32 = 300;
/// Idle rounds [`WaitStrategy::Park`] spins, then yields, before it starts sleeping.
const PARK_SPINS: u32 = 100;
const PARK_YIELDS: u32 = 10;
/// The first sleep of [`WaitStrategy::Park`].
pub const PARK_MIN: Duration = Duration::from_micros(50);
/// The longest sleep of [`WaitStrategy::Park`].
pub const PARK_MAX: Duration = Duration::from_millis(1);

impl WaitStrategy {
    /// All strategies, in the order the CLI lists them.
    pub const ALL: [WaitStrategy; 3] = [Self::Spin, Self::SpinYield, Self::Park];

    /// The CLI spelling: `spin`, `spin-yield` or `park`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Spin => "spin",
            Self::SpinYield => "spin-yield",
            Self::Park => "park",
        }
    }
}

impl std::fmt::Display for WaitStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WaitStrategy {
    type Err = PipelineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| PipelineError::UnknownWaitStrategy(s.to_string()))
    }
}

/// One thread's waiting state: call [`idle`](Self::idle) after a round that found no work and
/// [`reset`](Self::reset) after a round that did.
#[derive(Clone, Debug)]
pub struct Waiter {
    strategy: WaitStrategy,
    /// Idle rounds since the last reset (saturating).
    idle_rounds: u32,
    /// The next sleep under `Park`.
    park: Duration,
}

impl Waiter {
    pub fn new(strategy: WaitStrategy) -> Self {
        Self {
            strategy,
            idle_rounds: 0,
            park: PARK_MIN,
        }
    }

    pub fn strategy(&self) -> WaitStrategy {
        self.strategy
    }

    /// Waits once, escalating with the number of idle rounds since the last
    /// [`reset`](Self::reset).
    #[inline]
    pub fn idle(&mut self) {
        let n = self.idle_rounds;
        self.idle_rounds = n.saturating_add(1);
        match self.strategy {
            WaitStrategy::Spin => core::hint::spin_loop(),
            WaitStrategy::SpinYield => {
                if n < SPIN_LIMIT {
                    core::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            WaitStrategy::Park => {
                if n < PARK_SPINS {
                    core::hint::spin_loop();
                } else if n < PARK_SPINS + PARK_YIELDS {
                    std::thread::yield_now();
                } else {
                    std::thread::park_timeout(self.park);
                    self.park = (self.park * 2).min(PARK_MAX);
                }
            }
        }
    }

    /// Work arrived: the next idle starts again from spinning.
    #[inline]
    pub fn reset(&mut self) {
        self.idle_rounds = 0;
        self.park = PARK_MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for w in WaitStrategy::ALL {
            assert_eq!(w.name().parse::<WaitStrategy>().unwrap(), w);
            assert_eq!(w.to_string(), w.name());
        }
    }

    #[test]
    fn unknown_name_is_named_with_the_choices() {
        let e = "busy".parse::<WaitStrategy>().unwrap_err().to_string();
        assert!(e.contains("\"busy\""), "{e}");
        assert!(e.contains("spin, spin-yield, park"), "{e}");
    }

    #[test]
    fn park_escalates_to_the_cap_and_reset_restarts() {
        let mut w = Waiter::new(WaitStrategy::Park);
        let rounds = PARK_SPINS + PARK_YIELDS + 8;
        for _ in 0..rounds {
            w.idle();
        }
        assert_eq!(w.park, PARK_MAX);
        w.reset();
        assert_eq!(w.park, PARK_MIN);
        assert_eq!(w.idle_rounds, 0);
    }

    #[test]
    fn spin_and_spin_yield_return() {
        for s in [WaitStrategy::Spin, WaitStrategy::SpinYield] {
            let mut w = Waiter::new(s);
            for _ in 0..(SPIN_LIMIT + 10) {
                w.idle();
            }
            assert_eq!(w.strategy(), s);
        }
    }
}
