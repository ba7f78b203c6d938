//! Randomness for the network layer: OS entropy for WebSocket handshake keys (read from
//! `/dev/urandom` at connect time, never on the hot path) and a fast non-cryptographic generator
//! ([`WyRand`]) for frame masks and backoff jitter, seeded once.
//!
//! Owns no secret and must never be used for one: masks only defeat cache poisoning by
//! intermediaries (RFC 6455 §10.3) and jitter only spreads reconnections.

use std::hash::{BuildHasher, Hasher};
use std::io::Read;

/// Fills `out` with OS entropy: `/dev/urandom`, or, where it cannot be read, SipHash with std's
/// randomly keyed `RandomState` over the clock and a counter. Allocation-free; one `open` and
/// one `read` per call, so call it at start-up or connect time only.
pub fn os_random_bytes(out: &mut [u8]) {
    if let Ok(mut f) = std::fs::File::open("/dev/urandom")
        && f.read_exact(out).is_ok()
    {
        return;
    }
    fallback_fill(out);
}

fn fallback_fill(out: &mut [u8]) {
    // `RandomState::new()` draws fresh keys derived from OS randomness for each instance.
    let state = std::collections::hash_map::RandomState::new();
    let nanos = crate::clock::now_ns();
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = state.build_hasher();
        h.write_u64(nanos);
        h.write_usize(i);
        let v = h.finish().to_le_bytes();
        let n = chunk.len();
        chunk.copy_from_slice(&v[..n]);
    }
}

/// A 64-bit seed from OS entropy.
pub fn os_seed() -> u64 {
    let mut b = [0u8; 8];
    os_random_bytes(&mut b);
    u64::from_le_bytes(b)
}

/// wyrand: a tiny, fast, statistically good 64-bit generator (Wang Yi). Not cryptographic.
#[derive(Clone, Debug)]
pub struct WyRand(u64);

impl WyRand {
    /// A generator with a fixed seed (deterministic tests).
    pub fn from_seed(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator seeded from OS entropy.
    pub fn from_os() -> Self {
        Self(os_seed())
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// Uniform in `[0, bound]` (inclusive), by 128-bit multiply (bias < 2^-64 · bound).
    #[inline]
    pub fn below_inclusive(&mut self, bound: u64) -> u64 {
        if bound == u64::MAX {
            return self.next_u64();
        }
        ((u128::from(self.next_u64()) * u128::from(bound + 1)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_bytes_differ_between_calls() {
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        os_random_bytes(&mut a);
        os_random_bytes(&mut b);
        assert_ne!(a, b);
        let (mut c, mut d) = ([0u8; 13], [0u8; 13]);
        fallback_fill(&mut c);
        fallback_fill(&mut d);
        assert_ne!(c, d, "fallback must not repeat");
    }

    #[test]
    fn wyrand_is_deterministic_and_spreads() {
        let mut a = WyRand::from_seed(7);
        let mut b = WyRand::from_seed(7);
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut r = WyRand::from_seed(1);
        let mut hist = [0u32; 10];
        for _ in 0..100_000 {
            let v = r.below_inclusive(9);
            assert!(v <= 9);
            hist[v as usize] += 1;
        }
        for h in hist {
            assert!((9_000..11_000).contains(&h), "{hist:?}");
        }
    }
}
