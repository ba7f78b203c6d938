//! Data guards: is the market data good enough to drive a hedge? Staleness per feed, the index
//! as the median of its sources with a deviation bound and a minimum of agreeing sources, and
//! implied-vol sanity per option row.
//!
//! Owns fixed-capacity arrays (up to [`MAX_SOURCES`] feeds or index sources) and, for the vol
//! guard, two `f64` per option row allocated once at start-up. Never allocates per call, never
//! makes a syscall. A failing guard returns a [`GuardFault`]: which guard, and a fixed-size
//! [`GuardDetail`] of numbers (no string is built until someone displays it), so the status
//! line, the summary and the metrics can all say it.
//!
//! The index: the median `m` of the live sources' prices (the mean of the two middle ones for an
//! even count); MAD = median of |xᵢ − m|, scaled by [`MAD_SCALE`] = 1.4826 so that it estimates
//! the standard deviation of normal data (so `k_mad` is in "sigmas"; 3 is Hampel's usual
//! choice); a source is an outlier when |xᵢ − m| > band, where band = k·1.4826·MAD clamped to
//! [`min_band_rel`·m, `max_dev_rel`·m] — the floor keeps sources that agree to the cent from
//! making every tiny difference an outlier (MAD = 0), the ceiling bounds the spread even with
//! two sources (where the MAD cannot single out an outlier: both deviate equally). The index is
//! the median of the sources within the band. Medians of ≤ 16 values use an insertion sort on a
//! stack array.

use core::fmt;

/// Most feeds, or index sources, a guard follows.
pub const MAX_SOURCES: usize = 16;

/// MAD → standard deviation of normal data: 1 / Φ⁻¹(3/4).
pub const MAD_SCALE: f64 = 1.482_602_218_505_602;

/// Which guard failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// A feed has not updated within its staleness limit (or never did).
    StaleFeed,
    /// Fewer live index sources than the minimum.
    IndexSources,
    /// Fewer index sources within the deviation band than the minimum.
    IndexDeviation,
    /// An implied vol outside [min, max] (or not a number).
    IvBounds,
    /// An implied vol that jumped more than the limit in one update.
    IvJump,
}

impl Guard {
    /// Every guard, in index order.
    pub const ALL: [Guard; 5] = [
        Guard::StaleFeed,
        Guard::IndexSources,
        Guard::IndexDeviation,
        Guard::IvBounds,
        Guard::IvJump,
    ];

    /// Short name for status lines, JSON and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Guard::StaleFeed => "stale_feed",
            Guard::IndexSources => "index_sources",
            Guard::IndexDeviation => "index_deviation",
            Guard::IvBounds => "iv_bounds",
            Guard::IvJump => "iv_jump",
        }
    }
}

/// The numbers behind a fault. What each field means depends on the guard:
///
/// | guard | `id` | `value` | `bound` |
/// | --- | --- | --- | --- |
/// | `stale_feed` | feed | age, s (∞: never updated) | limit, s |
/// | `index_sources` | — (0) | live sources | minimum |
/// | `index_deviation` | the farthest source | its \|x − m\| / m | band / m |
/// | `iv_bounds` | row | the vol | the bound it passes (min or max; NaN when not finite) |
/// | `iv_jump` | row | \|Δσ\| | the jump limit |
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GuardDetail {
    /// Feed, source or row.
    pub id: u32,
    /// The value seen.
    pub value: f64,
    /// The bound it passed.
    pub bound: f64,
}

/// A failing guard and why. `Copy`, fixed size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GuardFault {
    /// Which guard.
    pub guard: Guard,
    /// The numbers.
    pub detail: GuardDetail,
}

impl GuardFault {
    fn new(guard: Guard, id: usize, value: f64, bound: f64) -> Self {
        Self {
            guard,
            detail: GuardDetail {
                id: id as u32,
                value,
                bound,
            },
        }
    }
}

impl fmt::Display for GuardFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let GuardDetail { id, value, bound } = self.detail;
        let name = self.guard.name();
        match self.guard {
            Guard::StaleFeed if value.is_infinite() => write!(f, "{name}: feed {id} never updated"),
            Guard::StaleFeed => write!(f, "{name}: feed {id} age {value:.3} s > {bound:.3} s"),
            Guard::IndexSources => write!(f, "{name}: {value} live < {bound} required"),
            Guard::IndexDeviation => write!(
                f,
                "{name}: too few sources agree; source {id} off the median by {:.4} % > band {:.4} %",
                value * 100.0,
                bound * 100.0
            ),
            Guard::IvBounds if value < bound => write!(f, "{name}: row {id} iv {value} < {bound}"),
            Guard::IvBounds if value > bound => write!(f, "{name}: row {id} iv {value} > {bound}"),
            Guard::IvBounds => write!(f, "{name}: row {id} iv {value}"),
            Guard::IvJump => write!(f, "{name}: row {id} |Δiv| {value} > {bound}"),
        }
    }
}

/// A guard set up with settings that cannot work.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GuardConfigError {
    /// More feeds or sources than [`MAX_SOURCES`].
    #[error("{count} sources: at most {max}")]
    TooManySources {
        /// How many were given.
        count: usize,
        /// The capacity.
        max: usize,
    },
    /// A setting out of its range.
    #[error("guard setting {name} = {value} is out of range ({expected})")]
    BadSetting {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What it must be.
        expected: &'static str,
    },
}

fn bad(name: &'static str, value: f64, expected: &'static str) -> GuardConfigError {
    GuardConfigError::BadSetting {
        name,
        value,
        expected,
    }
}

/// Staleness per feed: each feed (dense id `0..len`) has its own limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedStaleness {
    stale_after_ns: [u64; MAX_SOURCES],
    /// Last update, ns (0 = never).
    last_ns: [u64; MAX_SOURCES],
    len: usize,
}

impl FeedStaleness {
    /// One feed per entry of `stale_after_ns` (each > 0), none updated yet.
    pub fn new(stale_after_ns: &[u64]) -> Result<Self, GuardConfigError> {
        if stale_after_ns.len() > MAX_SOURCES {
            return Err(GuardConfigError::TooManySources {
                count: stale_after_ns.len(),
                max: MAX_SOURCES,
            });
        }
        let mut limits = [0; MAX_SOURCES];
        for (l, &s) in limits.iter_mut().zip(stale_after_ns) {
            if s == 0 {
                return Err(bad("stale_after_ns", 0.0, "> 0"));
            }
            *l = s;
        }
        Ok(Self {
            stale_after_ns: limits,
            last_ns: [0; MAX_SOURCES],
            len: stale_after_ns.len(),
        })
    }

    /// Number of feeds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True with no feed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Feed `feed` updated at `now_ns` (ignored, returning false, for an unknown feed).
    pub fn touch(&mut self, feed: usize, now_ns: u64) -> bool {
        if feed >= self.len {
            return false;
        }
        self.last_ns[feed] = now_ns.max(1);
        true
    }

    /// Age of feed `feed`'s last update at `now_ns`, `None` if it never updated (or is unknown).
    /// A clock behind the update gives 0.
    pub fn age_ns(&self, feed: usize, now_ns: u64) -> Option<u64> {
        match self.last_ns.get(..self.len)?.get(feed)? {
            0 => None,
            &t => Some(now_ns.saturating_sub(t)),
        }
    }

    /// True if feed `feed` updated within its limit.
    pub fn is_live(&self, feed: usize, now_ns: u64) -> bool {
        self.age_ns(feed, now_ns)
            .is_some_and(|a| a <= self.stale_after_ns[feed])
    }

    /// The first feed (lowest id) that is stale at `now_ns`.
    pub fn check(&self, now_ns: u64) -> Result<(), GuardFault> {
        for feed in 0..self.len {
            if !self.is_live(feed, now_ns) {
                let age = self
                    .age_ns(feed, now_ns)
                    .map_or(f64::INFINITY, |a| a as f64 * 1e-9);
                return Err(GuardFault::new(
                    Guard::StaleFeed,
                    feed,
                    age,
                    self.stale_after_ns[feed] as f64 * 1e-9,
                ));
            }
        }
        Ok(())
    }
}

/// Settings of the index guard.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IndexConfig {
    /// Outlier threshold in scaled MADs (1.4826·MAD ≈ σ). Default 3.
    pub k_mad: f64,
    /// Band floor, relative to the median (≥ 0). Default 0.0002 (2 bp).
    pub min_band_rel: f64,
    /// Band ceiling, relative to the median (≥ the floor). Default 0.01 (1 %).
    pub max_dev_rel: f64,
    /// Live sources, and sources within the band, required (1..=16). Default 2.
    pub min_sources: usize,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            k_mad: 3.0,
            min_band_rel: 0.0002,
            max_dev_rel: 0.01,
            min_sources: 2,
        }
    }
}

/// A good index and how it was made.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IndexReading {
    /// The index: median of the sources within the band.
    pub price: f64,
    /// Median of every live source.
    pub median: f64,
    /// MAD of the live sources (unscaled).
    pub mad: f64,
    /// The band used (absolute, price units).
    pub band: f64,
    /// Live sources.
    pub live: u8,
    /// Sources within the band (those the price is the median of).
    pub used: u8,
    /// Live sources outside the band, one bit per source id.
    pub outliers: u16,
}

/// The index of one underlying from up to 16 sources (source = dense id `0..n`), each with its
/// staleness limit.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexGuard {
    config: IndexConfig,
    feeds: FeedStaleness,
    price: [f64; MAX_SOURCES],
}

impl IndexGuard {
    /// One source per entry of `stale_after_ns`.
    pub fn new(config: IndexConfig, stale_after_ns: &[u64]) -> Result<Self, GuardConfigError> {
        if !(config.k_mad.is_finite() && config.k_mad > 0.0) {
            return Err(bad("k_mad", config.k_mad, "finite, > 0"));
        }
        if !(config.min_band_rel.is_finite() && config.min_band_rel >= 0.0) {
            return Err(bad("min_band_rel", config.min_band_rel, "finite, ≥ 0"));
        }
        if !(config.max_dev_rel.is_finite() && config.max_dev_rel >= config.min_band_rel) {
            return Err(bad(
                "max_dev_rel",
                config.max_dev_rel,
                "finite, ≥ min_band_rel",
            ));
        }
        if config.min_sources == 0 || config.min_sources > MAX_SOURCES {
            return Err(bad("min_sources", config.min_sources as f64, "1..=16"));
        }
        Ok(Self {
            config,
            feeds: FeedStaleness::new(stale_after_ns)?,
            price: [f64::NAN; MAX_SOURCES],
        })
    }

    /// Source `source` says `price` at `now_ns`. A price that is not positive and finite is
    /// ignored (returns false) and the source keeps ageing.
    pub fn update(&mut self, source: usize, price: f64, now_ns: u64) -> bool {
        if !(price.is_finite() && price > 0.0) || source >= self.feeds.len() {
            return false;
        }
        self.price[source] = price;
        self.feeds.touch(source, now_ns)
    }

    /// The per-source staleness.
    pub fn feeds(&self) -> &FeedStaleness {
        &self.feeds
    }

    /// The index at `now_ns`, or why there is none.
    pub fn compute(&self, now_ns: u64) -> Result<IndexReading, GuardFault> {
        let c = &self.config;
        let mut ids = [0usize; MAX_SOURCES];
        let mut xs = [0.0; MAX_SOURCES];
        let mut n = 0;
        for s in 0..self.feeds.len() {
            if self.feeds.is_live(s, now_ns) {
                ids[n] = s;
                xs[n] = self.price[s];
                n += 1;
            }
        }
        if n < c.min_sources {
            return Err(GuardFault::new(
                Guard::IndexSources,
                0,
                n as f64,
                c.min_sources as f64,
            ));
        }
        let median = median_of(&xs[..n]);
        let mut dev = [0.0; MAX_SOURCES];
        for i in 0..n {
            dev[i] = (xs[i] - median).abs();
        }
        let mad = median_of(&dev[..n]);
        let band =
            (c.k_mad * MAD_SCALE * mad).clamp(c.min_band_rel * median, c.max_dev_rel * median);
        let mut kept = [0.0; MAX_SOURCES];
        let mut used = 0;
        let mut outliers = 0u16;
        let mut worst = 0;
        for i in 0..n {
            if dev[i] > dev[worst] {
                worst = i;
            }
            if dev[i] <= band {
                kept[used] = xs[i];
                used += 1;
            } else {
                outliers |= 1 << ids[i];
            }
        }
        if used < c.min_sources {
            return Err(GuardFault::new(
                Guard::IndexDeviation,
                ids[worst],
                dev[worst] / median,
                band / median,
            ));
        }
        Ok(IndexReading {
            price: median_of(&kept[..used]),
            median,
            mad,
            band,
            live: n as u8,
            used: used as u8,
            outliers,
        })
    }
}

/// Sorts `xs` (finite values) in place, insertion sort: ≤ 16 values, no allocation.
fn sort_small(xs: &mut [f64]) {
    for i in 1..xs.len() {
        let x = xs[i];
        let mut j = i;
        while j > 0 && xs[j - 1] > x {
            xs[j] = xs[j - 1];
            j -= 1;
        }
        xs[j] = x;
    }
}

/// Median of `xs` (sorted in place): the middle value, or the mean of the two middle ones; NaN
/// for none.
pub fn median(xs: &mut [f64]) -> f64 {
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    sort_small(xs);
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        0.5 * (xs[n / 2 - 1] + xs[n / 2])
    }
}

/// Median of up to 16 values without touching them.
fn median_of(xs: &[f64]) -> f64 {
    let mut copy = [0.0; MAX_SOURCES];
    let n = xs.len().min(MAX_SOURCES);
    copy[..n].copy_from_slice(&xs[..n]);
    median(&mut copy[..n])
}

/// Bounds and jump limit of implied vols (decimals).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IvLimits {
    /// Lowest vol accepted. Default 0.01.
    pub min: f64,
    /// Highest vol accepted. Default 5.0 (500 %).
    pub max: f64,
    /// Largest absolute change per update (vol points as decimals). Default 0.10.
    pub max_jump_abs: f64,
    /// Largest change per update relative to the last accepted vol. Default 0.5.
    pub max_jump_rel: f64,
}

impl Default for IvLimits {
    fn default() -> Self {
        Self {
            min: 0.01,
            max: 5.0,
            max_jump_abs: 0.10,
            max_jump_rel: 0.5,
        }
    }
}

impl IvLimits {
    /// The jump limit from a vol of `from`: the larger of the absolute and the relative limit
    /// (set one to 0 to use only the other).
    pub fn jump_limit(&self, from: f64) -> f64 {
        self.max_jump_abs.max(self.max_jump_rel * from)
    }
}

/// Implied-vol sanity per option row.
///
/// An update is checked against the bounds, then against the last accepted vol of its row: a
/// jump larger than the limit is refused (a fault) and remembered as pending; the next update
/// is accepted if it is within the limit of either the last accepted vol (the jump was a bad
/// print) or the pending one (a new level, confirmed by a second print). So one bad print is
/// refused once, and a real regime change costs one refused update.
#[derive(Clone, Debug, PartialEq)]
pub struct IvGuard {
    limits: IvLimits,
    /// Last accepted vol per row (NaN = none yet).
    last: Vec<f64>,
    /// Refused jump waiting for confirmation per row (NaN = none).
    pending: Vec<f64>,
}

impl IvGuard {
    /// A guard for `rows` option rows (allocated here, once).
    pub fn new(limits: IvLimits, rows: usize) -> Result<Self, GuardConfigError> {
        if !(limits.min.is_finite() && limits.min >= 0.0) {
            return Err(bad("iv min", limits.min, "finite, ≥ 0"));
        }
        if !(limits.max.is_finite() && limits.max > limits.min) {
            return Err(bad("iv max", limits.max, "finite, > min"));
        }
        if !(limits.max_jump_abs >= 0.0 && limits.max_jump_rel >= 0.0) {
            return Err(bad("iv jump limits", limits.max_jump_abs, "≥ 0"));
        }
        if limits.max_jump_abs == 0.0 && limits.max_jump_rel == 0.0 {
            return Err(bad("iv jump limits", 0.0, "one of them > 0"));
        }
        Ok(Self {
            limits,
            last: vec![f64::NAN; rows],
            pending: vec![f64::NAN; rows],
        })
    }

    /// Checks `iv` for `row` and, if it passes, makes it the row's last accepted vol. A row out
    /// of range is an `iv_bounds` fault with NaN numbers.
    pub fn check(&mut self, row: usize, iv: f64) -> Result<(), GuardFault> {
        let l = self.limits;
        if row >= self.last.len() {
            return Err(GuardFault::new(Guard::IvBounds, row, f64::NAN, f64::NAN));
        }
        if !iv.is_finite() {
            return Err(GuardFault::new(Guard::IvBounds, row, iv, f64::NAN));
        }
        if iv < l.min {
            return Err(GuardFault::new(Guard::IvBounds, row, iv, l.min));
        }
        if iv > l.max {
            return Err(GuardFault::new(Guard::IvBounds, row, iv, l.max));
        }
        let last = self.last[row];
        let pending = self.pending[row];
        let within = |from: f64| !from.is_nan() && (iv - from).abs() <= l.jump_limit(from);
        if last.is_nan() || within(last) || within(pending) {
            self.last[row] = iv;
            self.pending[row] = f64::NAN;
            return Ok(());
        }
        self.pending[row] = iv;
        Err(GuardFault::new(
            Guard::IvJump,
            row,
            (iv - last).abs(),
            l.jump_limit(last),
        ))
    }

    /// Forgets `row`'s history (after a reconnection the next vol is taken as it comes).
    pub fn reset(&mut self, row: usize) {
        if row < self.last.len() {
            self.last[row] = f64::NAN;
            self.pending[row] = f64::NAN;
        }
    }

    /// The last accepted vol of `row` (NaN if none).
    pub fn last(&self, row: usize) -> f64 {
        self.last.get(row).copied().unwrap_or(f64::NAN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const T0: u64 = 1_700_000_000 * S;

    #[test]
    fn medians_of_odd_even_and_unsorted() {
        let cases: &[(&[f64], f64)] = &[
            (&[], f64::NAN),
            (&[5.0], 5.0),
            (&[3.0, 1.0], 2.0),
            (&[3.0, 1.0, 2.0], 2.0),
            (&[4.0, 1.0, 3.0, 2.0], 2.5),
            (
                &[
                    16.0, 3.0, 9.0, 1.0, 15.0, 2.0, 8.0, 7.0, 14.0, 4.0, 13.0, 6.0, 12.0, 5.0,
                    11.0, 10.0,
                ],
                8.5,
            ),
        ];
        for (xs, want) in cases {
            let mut v = xs.to_vec();
            let m = median(&mut v);
            assert!(m == *want || (m.is_nan() && want.is_nan()), "{xs:?}: {m}");
            assert!(v.windows(2).all(|w| w[0] <= w[1]));
        }
    }

    #[test]
    fn staleness_per_feed() {
        let mut f = FeedStaleness::new(&[S, 3 * S]).unwrap();
        let e = f.check(T0).unwrap_err();
        assert_eq!(
            (e.guard, e.detail.id, e.detail.value),
            (Guard::StaleFeed, 0, f64::INFINITY)
        );
        assert_eq!(e.to_string(), "stale_feed: feed 0 never updated");
        f.touch(0, T0);
        f.touch(1, T0);
        assert!(!f.touch(2, T0));
        assert_eq!(f.check(T0 + S), Ok(()));
        let e = f.check(T0 + 1_500_000_000).unwrap_err();
        assert_eq!(
            e.detail,
            GuardDetail {
                id: 0,
                value: 1.5,
                bound: 1.0
            }
        );
        assert_eq!(e.to_string(), "stale_feed: feed 0 age 1.500 s > 1.000 s");
        f.touch(0, T0 + 3 * S);
        assert_eq!(f.check(T0 + 3 * S), Ok(()));
        let e = f.check(T0 + 3 * S + 1).unwrap_err();
        assert_eq!(e.detail.id, 1);
        // A clock behind the update: age 0, live.
        assert!(f.is_live(0, T0));
        assert!(FeedStaleness::new(&[S; 17]).is_err());
        assert!(FeedStaleness::new(&[0]).is_err());
    }

    fn index(prices: &[f64], config: IndexConfig) -> Result<IndexReading, GuardFault> {
        let mut g = IndexGuard::new(config, &vec![S; prices.len()]).unwrap();
        for (i, &p) in prices.iter().enumerate() {
            g.update(i, p, T0);
        }
        g.compute(T0)
    }

    #[test]
    fn index_median_drops_outliers_by_scaled_mad() {
        let c = IndexConfig {
            k_mad: 3.0,
            min_band_rel: 0.0,
            max_dev_rel: 0.05,
            min_sources: 3,
        };
        // Median 101; deviations 2,1,0,1,49 → MAD 1; band 3·1.4826 = 4.4478; the index is
        // the median of the four within it.
        let r = index(&[99.0, 100.0, 101.0, 102.0, 150.0], c).unwrap();
        assert_eq!((r.median, r.mad), (101.0, 1.0));
        assert!((r.band - 3.0 * MAD_SCALE).abs() < 1e-12);
        assert_eq!((r.live, r.used, r.outliers), (5, 4, 0b10000));
        assert_eq!(r.price, 100.5);
        // The same outlier low, and two of them.
        let r = index(&[99.0, 100.0, 101.0, 102.0, 10.0, 500.0], c).unwrap();
        assert_eq!((r.used, r.outliers), (4, 0b110000));
        assert_eq!(r.price, 100.5);
        // All equal: MAD 0, the floor keeps a cent-level difference in.
        let c2 = IndexConfig {
            min_band_rel: 0.0002,
            ..c
        };
        let r = index(&[100_000.0, 100_000.0, 100_000.0, 100_010.0], c2).unwrap();
        assert_eq!((r.mad, r.used), (0.0, 4));
        assert!((r.band - 20.0).abs() < 1e-9);
        let r = index(&[100_000.0, 100_000.0, 100_000.0, 100_030.0], c2).unwrap();
        assert_eq!((r.used, r.outliers, r.price), (3, 0b1000, 100_000.0));
    }

    #[test]
    fn too_few_sources_or_too_few_agreeing_is_a_fault() {
        let c = IndexConfig::default();
        let e = index(&[100.0], c).unwrap_err();
        assert_eq!(e.guard, Guard::IndexSources);
        assert_eq!(e.to_string(), "index_sources: 1 live < 2 required");
        // Two sources 5 % apart: each 2.5 % off the mean, past the 1 % ceiling.
        let e = index(&[100.0, 105.0], c).unwrap_err();
        assert_eq!(e.guard, Guard::IndexDeviation);
        assert_eq!(e.detail.id, 0);
        assert!((e.detail.value - 2.5 / 102.5).abs() < 1e-15);
        assert!((e.detail.bound - 0.01).abs() < 1e-15);
        // Two sources 1 % apart agree.
        let r = index(&[100.0, 101.0], c).unwrap();
        assert_eq!((r.used, r.price), (2, 100.5));
        // Three sources, two far apart from each other and the third: too few agree.
        let c3 = IndexConfig {
            min_sources: 3,
            ..c
        };
        let e = index(&[100.0, 100.1, 120.0], c3).unwrap_err();
        assert_eq!((e.guard, e.detail.id), (Guard::IndexDeviation, 2));
        // Stale and bad prices do not count as live.
        let mut g = IndexGuard::new(c, &[S, S, S]).unwrap();
        g.update(0, 100.0, T0);
        g.update(1, 100.0, T0 - 2 * S);
        assert!(!g.update(2, f64::NAN, T0));
        assert!(!g.update(2, -1.0, T0));
        let e = g.compute(T0).unwrap_err();
        assert_eq!(
            (e.guard, e.detail.value, e.detail.bound),
            (Guard::IndexSources, 1.0, 2.0)
        );
        g.update(2, 100.2, T0);
        assert!((g.compute(T0).unwrap().price - 100.1).abs() < 1e-12);
        // Sixteen sources is the capacity.
        let many: Vec<f64> = (0..16).map(|i| 1000.0 + i as f64 * 0.1).collect();
        assert_eq!(index(&many, c).unwrap().used, 16);
    }

    #[test]
    fn index_settings_are_checked() {
        let ok = IndexConfig::default();
        for bad in [
            IndexConfig { k_mad: 0.0, ..ok },
            IndexConfig {
                min_band_rel: -1.0,
                ..ok
            },
            IndexConfig {
                max_dev_rel: 0.0001,
                ..ok
            },
            IndexConfig {
                min_sources: 0,
                ..ok
            },
            IndexConfig {
                min_sources: 17,
                ..ok
            },
        ] {
            assert!(IndexGuard::new(bad, &[S]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn iv_bounds_and_jumps() {
        let l = IvLimits {
            min: 0.05,
            max: 3.0,
            max_jump_abs: 0.05,
            max_jump_rel: 0.2,
        };
        let mut g = IvGuard::new(l, 2).unwrap();
        // (row, iv, expected guard, value, bound)
        let table: &[(usize, f64, Option<Guard>, f64, f64)] = &[
            (0, 0.04, Some(Guard::IvBounds), 0.04, 0.05),
            (0, 3.5, Some(Guard::IvBounds), 3.5, 3.0),
            (0, f64::NAN, Some(Guard::IvBounds), f64::NAN, f64::NAN),
            (0, 0.60, None, 0.0, 0.0),
            // Limit from 0.60: max(0.05, 0.12) = 0.12.
            (0, 0.71, None, 0.0, 0.0),
            // From 0.71: 0.142; a bad print to 1.0 is refused...
            (0, 1.00, Some(Guard::IvJump), 0.29, 0.142),
            // ...and the return to 0.73 is accepted (near the last accepted).
            (0, 0.73, None, 0.0, 0.0),
            // A new level: refused once, confirmed by the next print near it.
            (0, 1.20, Some(Guard::IvJump), 0.47, 0.146),
            (0, 1.25, None, 0.0, 0.0),
            // Low vols: the absolute limit (0.05) is the larger.
            (1, 0.10, None, 0.0, 0.0),
            (1, 0.149, None, 0.0, 0.0),
            (1, 0.25, Some(Guard::IvJump), 0.101, 0.05),
            (5, 0.5, Some(Guard::IvBounds), f64::NAN, f64::NAN),
        ];
        let same = |a: f64, b: f64| (a - b).abs() < 1e-12 || (a.is_nan() && b.is_nan());
        for (i, &(row, iv, guard, value, bound)) in table.iter().enumerate() {
            match (g.check(row, iv), guard) {
                (Ok(()), None) => assert_eq!(g.last(row), iv, "case {i}"),
                (Err(e), Some(want)) => {
                    assert_eq!(e.guard, want, "case {i}");
                    assert_eq!(e.detail.id, row as u32);
                    assert!(same(e.detail.value, value), "case {i}: {e}");
                    assert!(same(e.detail.bound, bound), "case {i}: {e}");
                }
                (r, want) => panic!("case {i}: {r:?}, wanted {want:?}"),
            }
        }
        assert_eq!(
            g.check(0, 3.5).unwrap_err().to_string(),
            "iv_bounds: row 0 iv 3.5 > 3"
        );
        g.reset(1);
        assert_eq!(g.check(1, 2.0), Ok(()));
        assert!(IvGuard::new(IvLimits { max: 0.01, ..l }, 1).is_err());
        assert!(
            IvGuard::new(
                IvLimits {
                    max_jump_abs: 0.0,
                    max_jump_rel: 0.0,
                    ..l
                },
                1
            )
            .is_err()
        );
    }
}
