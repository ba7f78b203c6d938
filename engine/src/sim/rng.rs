//! The simulation's random numbers: xoshiro256** seeded through SplitMix64, with uniform,
//! normal (Marsaglia's polar method) and Poisson variates.
//!
//! Owns only the generator state: no allocation, no global state, no system entropy. The same
//! seed gives the same stream on every platform (integer arithmetic plus IEEE-754 `ln`/`sqrt`,
//! no platform-dependent special functions), which is what lets a backtest be replayed.

/// A seeded xoshiro256** generator (Blackman and Vigna, 2018): 256 bits of state, period
/// 2^256 − 1, passes BigCrush; not for cryptography.
#[derive(Clone, Debug, PartialEq)]
pub struct SimRng {
    s: [u64; 4],
    /// The second normal of the last polar-method pair, if not yet used.
    spare: Option<f64>,
}

/// SplitMix64, used to expand a 64-bit seed into xoshiro's state (the seeding its authors
/// recommend: it never yields the all-zero state from distinct outputs).
fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 2^-53: the spacing of the doubles in [0.5, 1).
const TWO_POW_M53: f64 = 1.0 / (1u64 << 53) as f64;

impl SimRng {
    /// A generator for `seed`; every seed (0 included) gives a distinct, valid stream.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let s = [
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
        ];
        Self { s, spare: None }
    }

    /// An independent generator for sub-stream `stream` of `seed` (one per connection, per
    /// path, ...): the pair is hashed into a fresh seed, so streams do not overlap in practice.
    pub fn stream(seed: u64, stream: u64) -> Self {
        let mut x = seed ^ stream.wrapping_mul(0xd134_2543_de82_ef95);
        let mixed = splitmix64(&mut x) ^ splitmix64(&mut x).rotate_left(17);
        Self::new(mixed)
    }

    /// The next 64 random bits (xoshiro256**).
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1), 53 random bits.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * TWO_POW_M53
    }

    /// Uniform in (0, 1): never 0, so `ln` of it is finite.
    #[inline]
    pub fn uniform_open(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * TWO_POW_M53
    }

    /// Uniform integer in [0, n) without modulo bias (Lemire's multiply-and-reject);
    /// 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// True with probability `p` (clamped to [0, 1]; NaN counts as 0).
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// A standard normal variate (Marsaglia's polar method; the pair's second value is kept
    /// for the next call).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * s.ln() / s).sqrt();
                self.spare = Some(v * f);
                return u * f;
            }
        }
    }

    /// A Poisson variate with the given mean. Exact (Knuth's product of uniforms, summed over
    /// chunks of mean ≤ 30 using Poisson additivity) up to a mean of 10,000; above that the
    /// normal approximation rounded to an integer. A mean that is ≤ 0 or not finite gives 0.
    pub fn poisson(&mut self, mean: f64) -> u64 {
        if !(mean > 0.0 && mean.is_finite()) {
            return 0;
        }
        if mean > 10_000.0 {
            let x = (mean + mean.sqrt() * self.normal()).round();
            return if x > 0.0 { x as u64 } else { 0 };
        }
        let mut left = mean;
        let mut count = 0;
        while left > 0.0 {
            let chunk = left.min(30.0);
            left -= chunk;
            let limit = (-chunk).exp();
            let mut p = self.uniform_open();
            while p > limit {
                count += 1;
                p *= self.uniform_open();
            }
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro_matches_reference_output() {
        // Reference: the authors' xoshiro256starstar.c with state {1, 2, 3, 4}.
        let mut r = SimRng {
            s: [1, 2, 3, 4],
            spare: None,
        };
        let expected = [11_520u64, 0, 1_509_978_240, 1_215_971_899_390_074_240];
        for e in expected {
            assert_eq!(r.next_u64(), e);
        }
    }

    #[test]
    fn same_seed_same_stream_different_seed_different_stream() {
        let mut a = SimRng::new(42);
        let mut b = SimRng::new(42);
        let mut c = SimRng::new(43);
        let xa: Vec<u64> = (0..64).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..64).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..64).map(|_| c.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
        let mut s1 = SimRng::stream(42, 1);
        let mut s2 = SimRng::stream(42, 2);
        assert_ne!(s1.next_u64(), s2.next_u64());
    }

    #[test]
    fn uniform_and_normal_moments() {
        let mut r = SimRng::new(7);
        let n = 200_000;
        let (mut su, mut sn, mut sn2, mut sn4) = (0.0, 0.0, 0.0, 0.0);
        for _ in 0..n {
            let u = r.uniform();
            assert!((0.0..1.0).contains(&u));
            su += u;
            let z = r.normal();
            sn += z;
            sn2 += z * z;
            sn4 += z * z * z * z;
        }
        let nf = n as f64;
        // Standard errors: uniform mean 0.29/√n; normal mean 1/√n, variance √2/√n,
        // fourth moment √96/√n. Allow 5 of them.
        assert!((su / nf - 0.5).abs() < 5.0 * 0.289 / nf.sqrt());
        assert!((sn / nf).abs() < 5.0 / nf.sqrt());
        assert!((sn2 / nf - 1.0).abs() < 5.0 * 2f64.sqrt() / nf.sqrt());
        assert!((sn4 / nf - 3.0).abs() < 5.0 * 96f64.sqrt() / nf.sqrt());
    }

    #[test]
    fn poisson_mean_and_variance() {
        let mut r = SimRng::new(11);
        for mean in [0.01, 0.7, 4.0, 45.0, 250.0] {
            let n = 40_000;
            let (mut s, mut s2) = (0.0, 0.0);
            for _ in 0..n {
                let k = r.poisson(mean) as f64;
                s += k;
                s2 += k * k;
            }
            let nf = n as f64;
            let m = s / nf;
            let var = s2 / nf - m * m;
            assert!(
                (m - mean).abs() < 5.0 * (mean / nf).sqrt(),
                "mean {m} for {mean}"
            );
            // Var of the sample variance ≈ (μ + 2μ²)/n for a Poisson.
            let sd_var = ((mean + 2.0 * mean * mean) / nf).sqrt();
            assert!((var - mean).abs() < 6.0 * sd_var, "var {var} for {mean}");
        }
        assert_eq!(r.poisson(0.0), 0);
        assert_eq!(r.poisson(-1.0), 0);
        assert_eq!(r.poisson(f64::NAN), 0);
        let big = r.poisson(1e6) as f64;
        assert!((big - 1e6).abs() < 10_000.0);
    }

    #[test]
    fn below_is_in_range_and_unbiased_enough() {
        let mut r = SimRng::new(3);
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            let k = r.below(3) as usize;
            counts[k] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
        assert_eq!(r.below(0), 0);
        assert_eq!(r.below(1), 0);
    }
}
