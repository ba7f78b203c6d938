//! Vector math for the Greeks kernel: `exp`, the normal pdf and the normal cdf, generic over
//! [`Lanes`] so that the scalar twin and every SIMD width run the same arithmetic (the f64
//! vectors reassociate a few steps to shorten their dependency chain: [`short_chains`]).
//!
//! Owns only pure functions: no allocation, no branches on data except `any()` checks that skip
//! a rarely needed region for a whole vector. Errors quoted below were measured against mpmath
//! at 50 digits by `engine/tests/math_accuracy.rs` (reference points from
//! `engine/tests/data/make_math_reference.py`) and are asserted there.

// Published coefficients are kept digit for digit as printed, so they can be checked by eye.
#![allow(clippy::excessive_precision)]

use super::lanes::Lanes;

/// 1/√(2π).
pub const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
const LOG2_E: f64 = core::f64::consts::LOG2_E;
/// ln 2 split so that `n * LN2_HI` is exact for |n| < 2^11 (fdlibm's split), for f64 …
const LN2_HI: f64 = 6.931_471_803_691_238_2e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
/// … and for f32 (Cephes' split: `n * LN2_HI_F32` is exact in f32 for |n| < 2^8).
const LN2_HI_F32: f64 = 0.693_359_375;
const LN2_LO_F32: f64 = -2.121_944_400_546_905_8e-4;

/// `e^x`.
///
/// Reduction x = n·ln2/N + r, |r| ≤ ln2/(2N), with N = 8 (f64) or 16 (f32) table entries:
/// e^x = 2^{⌊n/N⌋} · 2^{(n mod N)/N} · e^r, the middle factor from [`Lanes::exp2_split`]'s table
/// (one permute per vector), e^r − 1 a Taylor polynomial of degree 8 (f64; truncation 1.5e-18)
/// or 4 (f32) in Horner form, and the product formed as t + t·(e^r − 1) with one FMA. The table
/// halves the polynomial of a plain Cody-Waite reduction (degree 13 before). It has no
/// special-case handling beyond the kernel's needs: results below the smallest normal
/// (x < −708.39 for f64, x < −87.33 for f32) are flushed to 0, and x above 709.0 (f64) or 88.0
/// (f32) gives +∞. NaN is not handled (the book builder keeps it out of the kernel).
///
/// Measured maximum relative error (`engine/tests/math_accuracy.rs`, against mpmath):
/// f64 1.5e-16 (0.68 ulp of 1) over [−708, 709] (3.2e-16 with the degree-13 reduction before);
/// f32 1.02e-7 (0.86 ulp of 1) over [−87, 88].
#[inline(always)]
pub fn exp<V: Lanes>(x: V) -> V {
    let (lo, hi) = exp_range::<V>();
    let y = exp_core(x.max(V::splat(lo)).min(V::splat(hi)));
    let y = V::select(x.lt(V::splat(lo)), V::splat(0.0), y);
    V::select(x.gt(V::splat(hi)), V::splat(f64::INFINITY), y)
}

/// `e^x` for |x| ≤ 40, as the kernel's discount and carry factors are (|r·τ|, |q·τ| ≤ 20):
/// [`exp`] without its range clamps and selects, the same value bit for bit.
#[inline(always)]
pub fn exp_carry<V: Lanes>(x: V) -> V {
    exp_core(x)
}

/// The lowest and highest argument [`exp`] resolves: (−708.39, 709) for f64, (−87.33, 88) f32.
#[inline(always)]
fn exp_range<V: Lanes>() -> (f64, f64) {
    if V::DOUBLE {
        (-708.39, 709.0)
    } else {
        (-87.33, 88.0)
    }
}

/// [`exp`]'s arithmetic, for an argument already inside [`exp_range`].
#[inline(always)]
fn exp_core<V: Lanes>(xc: V) -> V {
    let (per, ln2_hi, ln2_lo) = if V::DOUBLE {
        (8.0, LN2_HI, LN2_LO)
    } else {
        (16.0, LN2_HI_F32, LN2_LO_F32)
    };
    let n = (xc * V::splat(LOG2_E * per)).round();
    // With the FMA, x − n·ln2_hi/N is exact (n·ln2_hi/N has few significant bits, r is small).
    let r = n.mul_add(V::splat(-ln2_hi / per), xc);
    let r = n.mul_add(V::splat(-ln2_lo / per), r);
    let c = |k: f64| V::splat(1.0 / k);
    let q = if V::DOUBLE {
        // 1 + r/2! + … + r⁷/8!
        let q = r.mul_add(c(40_320.0), c(5040.0));
        let q = q.mul_add(r, c(720.0));
        let q = q.mul_add(r, c(120.0));
        let q = q.mul_add(r, c(24.0));
        let q = q.mul_add(r, c(6.0));
        let q = q.mul_add(r, c(2.0));
        q.mul_add(r, V::splat(1.0))
    } else {
        let q = r.mul_add(c(24.0), c(6.0));
        let q = q.mul_add(r, c(2.0));
        q.mul_add(r, V::splat(1.0))
    };
    let em1 = q * r;
    let (t, scale) = V::exp2_split(n);
    t.mul_add(em1, t) * scale
}

/// e^{−x²/2} with x² carried exactly: x² = s + err (err from one FMA), and
/// e^{−(s+err)/2} = e^{−s/2}·(1 − err/2) to within err², so the rounding of x², which would
/// otherwise cost x²/2 ulp (250 ulp at |x| = 37), is removed for two extra operations.
/// Measured (as [`npdf`], which is this times 1/√(2π)): 1.6 ulp (3.5e-16) for |x| ≤ 37.6 in f64
/// (scalar twin); 1.34 ulp (3.0e-16) on the f64 vectors, which evaluate it with a shorter
/// dependency chain ([`short_chains`]) and apply the x² correction inside the reduction.
#[inline(always)]
pub fn exp_neg_half_sq<V: Lanes>(x: V) -> V {
    let s = x * x;
    let err = x.mul_add(x, -s);
    if short_chains::<V>() {
        return exp_neg_half_sq_short(s, err);
    }
    // The argument is ≤ 0: only the low end of exp's range needs its clamp and flush to 0.
    let h = s * V::splat(-0.5);
    let lo = V::splat(exp_range::<V>().0);
    let e = exp_core(h.max(lo));
    let e = V::select(h.lt(lo), V::splat(0.0), e);
    (e * err).mul_add(V::splat(-0.5), e)
}

/// True for the f64 vector instantiations, which evaluate [`exp_neg_half_sq`] and
/// [`ncdf_with_exp`] with shorter dependency chains (same operations, reassociated; results
/// within an ulp or two of the scalar twin's, which keeps the textbook order and is the oracle).
///
/// The vector kernel's loop body is one long chain (S/K → ln → d1 → e^{−d1²/2} → the cdfs →
/// the outputs), longer than the core can overlap with the next iteration; on Zen 5 the f64x8
/// full path ran faster when the chain was shortened, even though the operation count went up,
/// while trading divisions for multiplications made it slower.
#[inline(always)]
pub(crate) const fn short_chains<V: Lanes>() -> bool {
    V::LANES > 1 && V::DOUBLE
}

/// [`exp_neg_half_sq`] for f64 vectors, given x² = `s` + `err` exactly: the same reduction and
/// polynomial as [`exp_core`], but (1) n is taken from `s` directly (the −½ folded into the
/// constant, exact since scaling by ½ is), (2) the correction −err/2 enters the reduced
/// argument r with the low part of n·ln2/8 instead of multiplying the result afterwards, (3) the
/// polynomial is evaluated in Estrin's form (depth 3 instead of 7), and (4) the table value is
/// scaled by 2^{⌊n/8⌋} before, not after, the last FMA. About 35 cycles from x² to the result
/// on Zen 5 instead of about 70.
#[inline(always)]
fn exp_neg_half_sq_short<V: Lanes>(s: V, err: V) -> V {
    // exp's low clamp on −s/2, as a high clamp on s.
    let s_max = V::splat(-2.0 * exp_range::<V>().0);
    let sc = s.min(s_max);
    let n = (sc * V::splat(-0.5 * LOG2_E * 8.0)).round();
    // −sc/2 is exact, and with the FMA so is −sc/2 − n·ln2_hi/8.
    let r_hi = n.mul_add(V::splat(-LN2_HI / 8.0), sc * V::splat(-0.5));
    let r = r_hi + n.mul_add(V::splat(-LN2_LO / 8.0), err * V::splat(-0.5));
    let c = |k: f64| V::splat(1.0 / k);
    // q = 1 + r/2! + … + r⁷/8!, Estrin: (p01 + p23·r²) + (p45 + p67·r²)·r⁴.
    let r2 = r * r;
    let p01 = r.mul_add(c(2.0), V::splat(1.0));
    let p23 = r.mul_add(c(24.0), c(6.0));
    let p45 = r.mul_add(c(720.0), c(120.0));
    let p67 = r.mul_add(c(40_320.0), c(5040.0));
    let r4 = r2 * r2;
    let q03 = p23.mul_add(r2, p01);
    let q47 = p67.mul_add(r2, p45);
    let q = q47.mul_add(r4, q03);
    let (t, scale) = V::exp2_split(n);
    // t·2^{⌊n/8⌋} is exact: the result is a normal number wherever it is not flushed.
    let ts = t * scale;
    let e = (ts * r).mul_add(q, ts);
    V::select(s.gt(s_max), V::splat(0.0), e)
}

/// Standard normal density n(x) = e^{−x²/2}/√(2π), through [`exp_neg_half_sq`].
///
/// Measured maximum relative error: f64 3.5e-16 (1.6 ulp; 4.0e-16 with the degree-13 exp
/// before) for |x| ≤ 37.6, 3.0e-16 (1.34 ulp) on the f64 vectors ([`short_chains`]); f32
/// 1.8e-7 for |x| ≤ 13.
#[inline(always)]
pub fn npdf<V: Lanes>(x: V) -> V {
    exp_neg_half_sq(x) * V::splat(INV_SQRT_2PI)
}

/// W. J. Cody (1969) rational Chebyshev coefficients for the normal cdf, in the form used by
/// R's `pnorm` (the variable is x itself, not x/√2). Small region |x| < 0.674: N(x) = ½ + x·A(x²)/B(x²).
const CODY_A: [f64; 5] = [
    2.235_252_035_460_683_928_7,
    161.028_231_068_555_878_81,
    1_067.689_485_460_370_958_2,
    18_154.981_253_343_561_249,
    0.065_682_337_918_207_449_113,
];
const CODY_B: [f64; 4] = [
    47.202_581_904_688_241_87,
    976.098_551_737_776_693_22,
    10_260.932_208_618_978_205,
    45_507.789_335_026_729_956,
];
/// Middle region 0.674 ≤ |x| ≤ √32: N(−|x|) = e^{−x²/2}·C(|x|)/D(|x|).
const CODY_C: [f64; 9] = [
    0.398_941_512_088_134_667_64,
    8.883_149_794_388_375_941_2,
    93.506_656_132_177_855_979,
    597.270_276_394_800_262_26,
    2_494.537_585_290_372_671_1,
    6_848.190_450_536_282_332_6,
    11_602.651_437_647_350_124,
    9_842.714_838_383_978_021_8,
    1.076_557_677_372_019_231_7e-8,
];
const CODY_D: [f64; 8] = [
    22.266_688_044_328_115_691,
    235.387_901_782_624_998_61,
    1_519.377_599_407_554_805,
    6_485.558_298_266_760_755,
    18_615.571_640_885_098_091,
    34_900.952_721_145_977_266,
    38_912.003_286_093_271_411,
    19_685.429_676_859_990_727,
];
/// Far region |x| > √32: N(−|x|) = e^{−x²/2}·(1/√(2π) − z·P(z)/Q(z))/|x|, z = 1/x².
const CODY_P: [f64; 6] = [
    0.215_898_534_057_956_99,
    0.127_401_161_160_247_363_9,
    0.022_235_277_870_649_807,
    0.001_421_619_193_227_893_466,
    2.911_287_495_116_879_2e-5,
    0.023_073_441_764_940_173_03,
];
const CODY_Q: [f64; 5] = [
    1.284_260_096_144_911_21,
    0.468_238_212_480_865_118,
    0.065_988_137_868_928_551_5,
    0.003_782_396_332_027_582_44,
    7.297_515_550_839_662_05e-5,
];
const SMALL_SPLIT: f64 = 0.674_489_75;
const FAR_SPLIT: f64 = 5.656_854_249_492_381; // √32
/// Beyond this |x| the tail is below 1e-300 (and e^{−x²/2} flushes to 0): polynomials are
/// evaluated at this value instead so that nothing overflows.
const Y_CLAMP: f64 = 40.0;

#[inline(always)]
fn horner<V: Lanes>(x: V, lead: f64, coeffs: &[f64]) -> V {
    let mut acc = V::splat(lead);
    for &c in coeffs {
        acc = acc.mul_add(x, V::splat(c));
    }
    acc
}

/// Standard normal cdf N(x), given `e = exp(−x²/2)` (callers usually have it already).
///
/// Cody's (1969) three rational regions, written so that a vector needs only one division
/// whichever regions its lanes fall in: each region yields a numerator and denominator of the
/// tail N(−|x|), the lanes pick theirs, and one division finishes. The small and far regions are
/// evaluated only when some lane needs them. The tail is computed directly, so N(x) for x < 0
/// keeps its relative accuracy however far out it goes; N(x) for x > 0 is 1 − tail.
///
/// Measured maximum error against mpmath (50 digits), with `e` from [`exp_neg_half_sq`]: the
/// tail N(−|x|) within 4.6e-16 relative (2.1 ulp; 6.9e-16 with the degree-13 exp before) for
/// every |x| ≤ 37.5; N(x) for x > 0 within 1.5e-16 absolute. The f64 vectors
/// ([`short_chains`]: e from the shorter-chain exp, num/den divided before the product with e)
/// measure 5.6e-16 (2.5 ulp) in the middle region 0.674 ≤ |x| ≤ 5.657 (4.4e-16 for the twin),
/// 3.6e-16 below it and 3.9e-16 (1.8 ulp) beyond it (4.6e-16 for the twin). In f32: tail
/// 3.0e-7 relative (2.5 ulp) for |x| ≤ 9, N(x > 0) 6e-8 absolute.
#[inline(always)]
pub fn ncdf_with_exp<V: Lanes>(x: V, e: V) -> V {
    let y = x.abs().min(V::splat(Y_CLAMP));
    let mut num = horner(y, CODY_C[8], &CODY_C[..8]);
    let mut den = horner(y, 1.0, &CODY_D);
    let mut factor = e;
    let small = y.lt(V::splat(SMALL_SPLIT));
    if V::any(small) {
        // Tail = ½ − y·A(w)/B(w) = (½·B − y·A)/B, w = y².
        let w = y * y;
        let a = horner(w, CODY_A[4], &CODY_A[..4]);
        let b = horner(w, 1.0, &CODY_B);
        let sn = V::splat(0.5).mul_add(b, -(y * a));
        num = V::select(small, sn, num);
        den = V::select(small, b, den);
        factor = V::select(small, V::splat(1.0), factor);
    }
    let far = y.gt(V::splat(FAR_SPLIT));
    if V::any(far) {
        // With w = y² = 1/z, multiply P and Q by w⁵: z·P(z)/Q(z) = P̃(w)/(w·Q̃(w)), so the tail
        // is (w·Q̃/√(2π) − P̃)/(y·w·Q̃): no extra division.
        let w = y * y;
        let pt = horner(
            w,
            CODY_P[4],
            &[CODY_P[3], CODY_P[2], CODY_P[1], CODY_P[0], CODY_P[5]],
        );
        let qt = horner(
            w,
            CODY_Q[4],
            &[CODY_Q[3], CODY_Q[2], CODY_Q[1], CODY_Q[0], 1.0],
        );
        let wq = w * qt;
        let fnum = wq.mul_add(V::splat(INV_SQRT_2PI), -pt);
        num = V::select(far, fnum, num);
        den = V::select(far, y * wq, den);
    }
    // Vectors divide before multiplying by e, so that the division (which needs only x) is
    // off the chain through e.
    let tail = if short_chains::<V>() {
        factor * (num / den)
    } else {
        factor * num / den
    };
    V::select(x.gt(V::splat(0.0)), V::splat(1.0) - tail, tail)
}

/// Standard normal cdf N(x); see [`ncdf_with_exp`] for the method and its error.
#[inline(always)]
pub fn ncdf<V: Lanes>(x: V) -> V {
    ncdf_with_exp(x, exp_neg_half_sq(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wide::{f32x16, f64x8};

    #[test]
    fn exp_matches_std_across_the_range() {
        let mut worst: f64 = 0.0;
        let mut x = -708.0;
        while x < 709.0 {
            let got = exp(x);
            let want = x.exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 5e-16, "worst relative error {worst:e}");
        assert_eq!(exp(-709.0f64), 0.0);
        assert_eq!(exp(710.0f64), f64::INFINITY);
    }

    #[test]
    fn exp_carry_is_exp_bit_for_bit_within_its_range() {
        let mut x = -40.0;
        while x <= 40.0 {
            assert_eq!(exp_carry(x).to_bits(), exp(x).to_bits(), "x = {x}");
            let v = exp_carry(<f64x8 as Lanes>::splat(x)).to_array()[6];
            assert_eq!(v.to_bits(), exp(x).to_bits(), "f64x8, x = {x}");
            let w = exp_carry(<f32x16 as Lanes>::splat(x)).to_array()[13];
            assert_eq!(
                w,
                exp(<f32x16 as Lanes>::splat(x)).to_array()[13],
                "f32x16, x = {x}"
            );
            x += 0.0731;
        }
    }

    #[test]
    fn exp_vector_lanes_equal_scalar() {
        let xs: Vec<f64> = (0..8).map(|i| -30.0 + 7.3 * i as f64).collect();
        let v = exp(<f64x8 as Lanes>::load(&xs)).to_array();
        for (x, got) in xs.iter().zip(v) {
            assert_eq!(got, exp(*x));
        }
        let xs32: Vec<f32> = (0..16).map(|i| -80.0 + 10.0 * i as f32).collect();
        let v = exp(<f32x16 as Lanes>::load(&xs32)).to_array();
        for (x, got) in xs32.iter().zip(v) {
            let want = (*x as f64).exp();
            if want < f32::MAX as f64 {
                assert!(
                    ((got as f64 - want) / want).abs() < 2.5e-7,
                    "exp({x}) = {got}"
                );
            }
        }
    }

    /// The f64 vectors' shorter-chain exp_neg_half_sq and ncdf against the scalar twin's: within
    /// 3 ulp everywhere up to the flush, and flushed to exactly 0 where the twin flushes
    /// (x² > 1416.78), including infinite x².
    #[test]
    fn short_chain_vectors_track_the_scalar_twin() {
        let mut xs: Vec<f64> = (0..16_000).map(|i| -40.0 + i as f64 * 0.005).collect();
        xs.extend([37.6, 37.64, 37.65, -37.65, 1e3, -1e200, 0.0, -0.0]);
        while !xs.len().is_multiple_of(8) {
            xs.push(1.0);
        }
        let mut worst_e: f64 = 0.0;
        let mut worst_n: f64 = 0.0;
        for c in xs.chunks_exact(8) {
            let v = <f64x8 as Lanes>::load(c);
            let e = exp_neg_half_sq(v).to_array();
            let n = ncdf(v).to_array();
            let e4 = exp_neg_half_sq(<wide::f64x4 as Lanes>::load(&c[4..])).to_array();
            for (j, &x) in c.iter().enumerate() {
                let (want_e, want_n) = (exp_neg_half_sq(x), ncdf(x));
                if want_e == 0.0 {
                    assert_eq!(e[j], 0.0, "x = {x}");
                } else {
                    worst_e = worst_e.max(((e[j] - want_e) / want_e).abs());
                }
                if j >= 4 {
                    assert_eq!(e4[j - 4].to_bits(), e[j].to_bits(), "f64x4, x = {x}");
                }
                if want_n == 0.0 {
                    assert_eq!(n[j], 0.0, "x = {x}");
                } else {
                    worst_n = worst_n.max(((n[j] - want_n) / want_n).abs());
                }
            }
        }
        assert!(worst_e <= 3.0 * f64::EPSILON, "exp_neg_half_sq {worst_e:e}");
        assert!(worst_n <= 3.0 * f64::EPSILON, "ncdf {worst_n:e}");
    }

    #[test]
    fn ncdf_symmetry_and_known_values() {
        // N(0) = 1/2, N(−1.96) = 0.024997895148220435 (mpmath), N(−10) = 7.619853024160527e-24.
        assert!((ncdf(0.0f64) - 0.5).abs() < 1e-16);
        let v = ncdf(-1.96f64);
        assert!((v / 0.024_997_895_148_220_435 - 1.0).abs() < 1e-14, "{v}");
        let v = ncdf(-10.0f64);
        assert!((v / 7.619_853_024_160_527e-24 - 1.0).abs() < 1e-13, "{v}");
        for i in 0..200 {
            let x = i as f64 * 0.05;
            let s = ncdf(x) + ncdf(-x);
            assert!((s - 1.0).abs() < 2e-16, "N({x}) + N(-{x}) = {s}");
        }
    }
}
