//! A sliding 60-second window of counts and USD notional in a fixed ring of one-second buckets.
//!
//! Owns 60 buckets and nothing else: never allocates, never makes a syscall. Time never runs
//! backwards inside the window: a wall clock stepped back is taken as no time passing (the
//! latest second seen stays "now"), so a clock step can never forget orders already counted.

/// Seconds the window spans (and buckets it has).
pub const WINDOW_SECS: u64 = 60;
const NS_PER_SEC: u64 = 1_000_000_000;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Bucket {
    /// The second (since the epoch of the clock fed) this bucket counts.
    sec: u64,
    count: u32,
    notional: f64,
}

/// Orders and notional over the last minute: the current second and the 59 before it, so an
/// order leaves the window between 59 and 60 s after it was recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct MinuteWindow {
    buckets: [Bucket; WINDOW_SECS as usize],
    latest_sec: u64,
}

impl Default for MinuteWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl MinuteWindow {
    /// An empty window.
    pub const fn new() -> Self {
        Self {
            buckets: [Bucket {
                sec: 0,
                count: 0,
                notional: 0.0,
            }; WINDOW_SECS as usize],
            latest_sec: 0,
        }
    }

    fn now_sec(&self, now_ns: u64) -> u64 {
        (now_ns / NS_PER_SEC).max(self.latest_sec)
    }

    /// Adds `count` orders and `notional_usd` at `now_ns`.
    pub fn add(&mut self, now_ns: u64, count: u32, notional_usd: f64) {
        let sec = self.now_sec(now_ns);
        self.latest_sec = sec;
        let b = &mut self.buckets[(sec % WINDOW_SECS) as usize];
        if b.sec != sec {
            *b = Bucket {
                sec,
                count: 0,
                notional: 0.0,
            };
        }
        b.count = b.count.saturating_add(count);
        b.notional += notional_usd;
    }

    /// Orders and notional recorded in the window that ends at `now_ns`.
    pub fn sums(&self, now_ns: u64) -> (u32, f64) {
        let now = self.now_sec(now_ns);
        let mut count = 0u32;
        let mut notional = 0.0;
        for b in &self.buckets {
            if b.sec + WINDOW_SECS > now {
                count = count.saturating_add(b.count);
                notional += b.notional;
            }
        }
        (count, notional)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = NS_PER_SEC;

    #[test]
    fn orders_leave_after_sixty_seconds() {
        let t0 = 1_700_000_000 * S;
        let mut w = MinuteWindow::new();
        assert_eq!(w.sums(t0), (0, 0.0));
        w.add(t0, 1, 100.0);
        w.add(t0 + S / 2, 1, 50.0);
        w.add(t0 + 30 * S, 1, 25.0);
        assert_eq!(w.sums(t0 + 30 * S), (3, 175.0));
        // 59.999 s later the first second is still in; at 60 s it is out.
        assert_eq!(w.sums(t0 + 59 * S + S - 1), (3, 175.0));
        assert_eq!(w.sums(t0 + 60 * S), (1, 25.0));
        assert_eq!(w.sums(t0 + 90 * S), (0, 0.0));
        // A bucket reused a minute later starts from zero.
        w.add(t0 + 60 * S, 1, 10.0);
        assert_eq!(w.sums(t0 + 60 * S), (2, 35.0));
    }

    #[test]
    fn a_clock_stepped_back_forgets_nothing() {
        let t0 = 1_700_000_000 * S;
        let mut w = MinuteWindow::new();
        w.add(t0 + 10 * S, 2, 200.0);
        // The clock steps back 5 s: still "now" = t0 + 10 s.
        w.add(t0 + 5 * S, 1, 100.0);
        assert_eq!(w.sums(t0 + 5 * S), (3, 300.0));
        assert_eq!(w.sums(t0 + 69 * S), (3, 300.0));
        assert_eq!(w.sums(t0 + 70 * S), (0, 0.0));
    }

    #[test]
    fn a_long_quiet_period_clears_every_bucket() {
        let mut w = MinuteWindow::new();
        for s in 0..120 {
            w.add(s * S, 1, 1.0);
        }
        assert_eq!(w.sums(119 * S), (60, 60.0));
        assert_eq!(w.sums(1_000 * S), (0, 0.0));
    }
}
