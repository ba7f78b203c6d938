//! Reconnection delays: exponential backoff (base · 2^attempt, capped) with full or equal jitter
//! (the AWS architecture blog's "Exponential Backoff And Jitter"), reset once a connection has
//! stayed up for `reset_after`.
//!
//! Owns the delay arithmetic only; never sleeps, never reads the clock (the caller passes `now`).

use std::time::{Duration, Instant};

use crate::net::rand::WyRand;

/// How much of each delay is randomised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly the exponential delay (tests; not for production fleets).
    None,
    /// Uniform in `[0, delay]`: spreads reconnections the most.
    Full,
    /// `delay/2` plus uniform in `[0, delay/2]`: never reconnects sooner than half the delay.
    Equal,
}

/// Backoff parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Delay ceiling of the first attempt.
    pub base: Duration,
    /// Largest delay ceiling.
    pub cap: Duration,
    /// Randomisation.
    pub jitter: Jitter,
    /// A connection up this long resets the attempt count.
    pub reset_after: Duration,
}

impl Default for BackoffConfig {
    /// 250 ms doubling to 30 s, full jitter, reset after 60 s up.
    fn default() -> Self {
        Self {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
            jitter: Jitter::Full,
            reset_after: Duration::from_secs(60),
        }
    }
}

/// Jittered exponential backoff state for one connection.
#[derive(Clone, Debug)]
pub struct Backoff {
    cfg: BackoffConfig,
    attempt: u32,
    up_since: Option<Instant>,
    rng: WyRand,
}

impl Backoff {
    /// Backoff with a jitter generator seeded from OS entropy.
    pub fn new(cfg: BackoffConfig) -> Self {
        Self::with_rng(cfg, WyRand::from_os())
    }

    /// Backoff with a fixed jitter seed (deterministic tests).
    pub fn with_seed(cfg: BackoffConfig, seed: u64) -> Self {
        Self::with_rng(cfg, WyRand::from_seed(seed))
    }

    fn with_rng(cfg: BackoffConfig, rng: WyRand) -> Self {
        Self {
            cfg,
            attempt: 0,
            up_since: None,
            rng,
        }
    }

    /// Failures counted since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The ceiling of the next delay: min(cap, base · 2^attempt).
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.cfg.base.saturating_mul(factor).min(self.cfg.cap)
    }

    /// The connection came up at `now`.
    pub fn note_up(&mut self, now: Instant) {
        self.up_since = Some(now);
    }

    /// Forgets past failures.
    pub fn reset(&mut self) {
        self.attempt = 0;
        self.up_since = None;
    }

    /// The connection failed at `now`: the delay before the next attempt. If it had been up for
    /// `reset_after`, the count restarts from the base.
    pub fn next_delay(&mut self, now: Instant) -> Duration {
        if let Some(up) = self.up_since.take()
            && now.saturating_duration_since(up) >= self.cfg.reset_after
        {
            self.attempt = 0;
        }
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let delay = match self.cfg.jitter {
            Jitter::None => nanos,
            Jitter::Full => self.rng.below_inclusive(nanos),
            Jitter::Equal => nanos / 2 + self.rng.below_inclusive(nanos - nanos / 2),
        };
        Duration::from_nanos(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(jitter: Jitter) -> BackoffConfig {
        BackoffConfig {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            jitter,
            reset_after: Duration::from_secs(10),
        }
    }

    #[test]
    fn doubles_to_the_cap_without_jitter() {
        let mut b = Backoff::with_seed(cfg(Jitter::None), 1);
        let t = Instant::now();
        let got: Vec<u64> = (0..8).map(|_| b.next_delay(t).as_millis() as u64).collect();
        assert_eq!(got, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        for _ in 0..100 {
            b.next_delay(t);
        }
        assert_eq!(b.next_delay(t), Duration::from_secs(2), "no overflow");
    }

    #[test]
    fn full_and_equal_jitter_stay_in_their_ranges_and_spread() {
        for (jitter, low_frac) in [(Jitter::Full, 0.0), (Jitter::Equal, 0.5)] {
            let mut seen = std::collections::BTreeSet::new();
            for seed in 0..200 {
                let mut b = Backoff::with_seed(cfg(jitter), seed);
                let t = Instant::now();
                for attempt in 0..6 {
                    let ceiling = b.ceiling();
                    let d = b.next_delay(t);
                    assert!(
                        d <= ceiling,
                        "{jitter:?} attempt {attempt}: {d:?} > {ceiling:?}"
                    );
                    assert!(
                        d >= ceiling.mul_f64(low_frac),
                        "{jitter:?}: {d:?} too small"
                    );
                    if attempt == 3 {
                        seen.insert(d.as_millis());
                    }
                }
            }
            assert!(
                seen.len() > 100,
                "{jitter:?} spreads: {} distinct",
                seen.len()
            );
        }
    }

    #[test]
    fn resets_only_after_staying_up() {
        let mut b = Backoff::with_seed(cfg(Jitter::None), 1);
        let t0 = Instant::now();
        for _ in 0..4 {
            b.next_delay(t0);
        }
        // Up briefly: flapping keeps growing.
        b.note_up(t0);
        assert_eq!(
            b.next_delay(t0 + Duration::from_secs(1)),
            Duration::from_millis(1600)
        );
        // Up long enough: back to the base.
        b.note_up(t0);
        assert_eq!(
            b.next_delay(t0 + Duration::from_secs(11)),
            Duration::from_millis(100)
        );
        assert_eq!(b.attempt(), 1);
        b.reset();
        assert_eq!(b.attempt(), 0);
    }
}
