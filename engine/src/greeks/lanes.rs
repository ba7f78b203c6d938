//! The small numeric trait the Greeks kernel is written over, its four instantiations, and
//! [`Pair`], two vectors in lockstep, which the batch loops run on.
//!
//! The kernel is written once, generic over [`Lanes`]; it runs on `wide::f64x8` (AVX-512),
//! `wide::f64x4` (AVX2), `wide::f32x16` (hedge Greeks in single precision) and plain `f64`,
//! the scalar twin that is the oracle for the vector paths in tests. Everything here is
//! `#[inline(always)]` so that each instantiation compiles to straight-line vector code.
//!
//! Masks follow `wide`: a mask is a vector whose lanes are all ones or all zeros; for `f64` a
//! mask is a `bool`. Nothing here allocates, panics on data, or touches memory beyond the
//! slices it is given.

use core::ops::{Add, BitAnd, BitOr, Div, Mul, Neg, Not, Sub};
use wide::{f32x16, f64x4, f64x8, u32x16, u64x4, u64x8};

/// A vector (or scalar) of reals the kernel computes on.
pub trait Lanes:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// The element type of the columns this type loads from and stores to.
    type Elem: Copy + Default + PartialOrd + core::fmt::Debug + Send + Sync + 'static;
    /// A per-lane boolean.
    type Mask: Copy
        + BitAnd<Output = Self::Mask>
        + BitOr<Output = Self::Mask>
        + Not<Output = Self::Mask>;
    /// Number of lanes.
    const LANES: usize;
    /// Name shown by benches and tests.
    const NAME: &'static str;
    /// True when the element type is `f64` (selects polynomial degrees in `math`).
    const DOUBLE: bool;

    /// Every lane set to `x` (rounded to the element type).
    fn splat(x: f64) -> Self;
    /// Loads the first `LANES` elements of `src`.
    fn load(src: &[Self::Elem]) -> Self;
    /// Stores into the first `LANES` elements of `dst`.
    fn store(self, dst: &mut [Self::Elem]);
    /// `self * a + b`, fused where the hardware has FMA.
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// Per lane: `t` where `m` is set, else `f`.
    fn select(m: Self::Mask, t: Self, f: Self) -> Self;
    /// Per lane `self < o` (false for NaN).
    fn lt(self, o: Self) -> Self::Mask;
    /// Per lane `self > o` (false for NaN).
    fn gt(self, o: Self) -> Self::Mask;
    /// True if any lane of the mask is set.
    fn any(m: Self::Mask) -> bool;
    /// Absolute value.
    fn abs(self) -> Self;
    /// Square root (correctly rounded on every instantiation).
    fn sqrt(self) -> Self;
    /// Lane-wise maximum.
    fn max(self, o: Self) -> Self;
    /// Lane-wise minimum.
    fn min(self, o: Self) -> Self;
    /// Round to the nearest integer (ties to even).
    fn round(self) -> Self;
    /// `2^n` for integral `n` within the normal exponent range of the element type
    /// (f64: −1022..=1023, f32: −126..=127); callers clamp first.
    fn pow2i(n: Self) -> Self;
    /// Splits 2^{n/N} for integral `n`, with N = 8 for f64 elements and 16 for f32: returns
    /// (2^{(n mod N)/N}, 2^{⌊n/N⌋}), the first from a table of correctly rounded values (one
    /// permute on AVX-512), the second built in the exponent bits. ⌊n/N⌋ must lie in the normal
    /// exponent range of the element type (callers clamp first).
    fn exp2_split(n: Self) -> (Self, Self);
    /// Natural logarithm from the `wide` crate (std for `f64`): Cephes-style rational.
    /// Measured against std over [1e-27, 1e27] and densely near 1 and √2 (test
    /// `wide_ln_is_within_two_ulp_of_std` below): f64x8 at most 1.0 ulp from std, f32x16 at
    /// most 1.0 ulp (of f32) from the exact value.
    fn ln(self) -> Self;
    /// `exp` from the `wide` crate (std for `f64`); the kernel uses the faster
    /// [`super::math::exp`] and keeps this one as the rival in `keel-bench greeks`.
    fn exp_lib(self) -> Self;
}

impl Lanes for f64 {
    type Elem = f64;
    type Mask = bool;
    const LANES: usize = 1;
    const NAME: &'static str = "f64 (scalar)";
    const DOUBLE: bool = true;

    #[inline(always)]
    fn splat(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn load(src: &[f64]) -> Self {
        src[0]
    }
    #[inline(always)]
    fn store(self, dst: &mut [f64]) {
        dst[0] = self;
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f64::mul_add(self, a, b)
    }
    #[inline(always)]
    fn select(m: bool, t: Self, f: Self) -> Self {
        if m { t } else { f }
    }
    #[inline(always)]
    fn lt(self, o: Self) -> bool {
        self < o
    }
    #[inline(always)]
    fn gt(self, o: Self) -> bool {
        self > o
    }
    #[inline(always)]
    fn any(m: bool) -> bool {
        m
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f64::abs(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        f64::max(self, o)
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        f64::min(self, o)
    }
    #[inline(always)]
    fn round(self) -> Self {
        f64::round_ties_even(self)
    }
    #[inline(always)]
    fn pow2i(n: Self) -> Self {
        f64::from_bits(((n as i64 + 1023) as u64) << 52)
    }
    #[inline(always)]
    fn exp2_split(n: Self) -> (Self, Self) {
        let b = (n + EXP2_MAGIC_F64).to_bits();
        (EXP2_8[(b & 7) as usize], f64::from_bits((b >> 3) << 52))
    }
    #[inline(always)]
    fn ln(self) -> Self {
        f64::ln(self)
    }
    #[inline(always)]
    fn exp_lib(self) -> Self {
        f64::exp(self)
    }
}

/// Implements [`Lanes`] for a `wide` float vector. `$bias` and `$mant` are the exponent bias
/// and mantissa width of the element type, used by `pow2i`.
macro_rules! impl_wide {
    (
        $v:ty, $elem:ty, $n:expr, $name:expr, $bias:expr, $mant:expr, $double:expr,
        $magic:expr, $tbits:expr, $lookup:path
    ) => {
        impl Lanes for $v {
            type Elem = $elem;
            type Mask = $v;
            const LANES: usize = $n;
            const NAME: &'static str = $name;
            const DOUBLE: bool = $double;

            #[inline(always)]
            fn splat(x: f64) -> Self {
                <$v>::splat(x as $elem)
            }
            #[inline(always)]
            fn load(src: &[$elem]) -> Self {
                let a: [$elem; $n] = src[..$n].try_into().expect("slice of LANES elements");
                <$v>::new(a)
            }
            #[inline(always)]
            fn store(self, dst: &mut [$elem]) {
                dst[..$n].copy_from_slice(&self.to_array());
            }
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                <$v>::mul_add(self, a, b)
            }
            #[inline(always)]
            fn select(m: Self, t: Self, f: Self) -> Self {
                m.select(t, f)
            }
            #[inline(always)]
            fn lt(self, o: Self) -> Self {
                self.simd_lt(o)
            }
            #[inline(always)]
            fn gt(self, o: Self) -> Self {
                self.simd_gt(o)
            }
            #[inline(always)]
            fn any(m: Self) -> bool {
                m.any()
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$v>::abs(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$v>::sqrt(self)
            }
            #[inline(always)]
            fn max(self, o: Self) -> Self {
                <$v>::fast_max(self, o)
            }
            #[inline(always)]
            fn min(self, o: Self) -> Self {
                <$v>::fast_min(self, o)
            }
            #[inline(always)]
            fn round(self) -> Self {
                <$v>::round_ties_even(self)
            }
            #[inline(always)]
            fn pow2i(n: Self) -> Self {
                // Adding 2^mant + bias puts the integer n + bias in the low mantissa bits;
                // shifting those bits into the exponent field gives 2^n.
                let magic = <$v>::splat(((1u64 << $mant) as $elem) + $bias);
                <$v>::from_bits((n + magic).to_bits() << $mant)
            }
            #[inline(always)]
            fn exp2_split(n: Self) -> (Self, Self) {
                // n + magic holds n + bias·N as an integer in its low mantissa bits: the low
                // log2(N) bits index the table, the next ones are the biased exponent of 2^{⌊n/N⌋}.
                let b = (n + <$v>::splat($magic as $elem)).to_bits();
                let scale = <$v>::from_bits((b >> $tbits) << $mant);
                ($lookup(b), scale)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$v>::ln(self)
            }
            #[inline(always)]
            fn exp_lib(self) -> Self {
                <$v>::exp(self)
            }
        }
    };
}

impl_wide!(
    f64x8,
    f64,
    8,
    "f64x8 (AVX-512)",
    1023.0,
    52u32,
    true,
    EXP2_MAGIC_F64,
    3u32,
    lookup_f64x8
);
impl_wide!(
    f64x4,
    f64,
    4,
    "f64x4 (AVX2)",
    1023.0,
    52u32,
    true,
    EXP2_MAGIC_F64,
    3u32,
    lookup_f64x4
);
impl_wide!(
    f32x16,
    f32,
    16,
    "f32x16 (AVX-512)",
    127.0,
    23u32,
    false,
    EXP2_MAGIC_F32,
    4u32,
    lookup_f32x16
);

/// 2^{j/8}, j = 0..8, correctly rounded (mpmath): the table of [`Lanes::exp2_split`] for f64.
const EXP2_8: [f64; 8] = [
    f64::from_bits(0x3ff0_0000_0000_0000),
    f64::from_bits(0x3ff1_72b8_3c7d_517b),
    f64::from_bits(0x3ff3_06fe_0a31_b715),
    f64::from_bits(0x3ff4_bfda_d536_2a27),
    f64::from_bits(0x3ff6_a09e_667f_3bcd),
    f64::from_bits(0x3ff8_ace5_422a_a0db),
    f64::from_bits(0x3ffa_e89f_995a_d3ad),
    f64::from_bits(0x3ffd_5818_dcfb_a487),
];
/// 2^{j/16}, j = 0..16, correctly rounded to f32 (mpmath): the table for f32.
const EXP2_16: [f32; 16] = [
    f32::from_bits(0x3f80_0000),
    f32::from_bits(0x3f85_aac3),
    f32::from_bits(0x3f8b_95c2),
    f32::from_bits(0x3f91_c3d3),
    f32::from_bits(0x3f98_37f0),
    f32::from_bits(0x3f9e_f532),
    f32::from_bits(0x3fa5_fed7),
    f32::from_bits(0x3fad_583f),
    f32::from_bits(0x3fb5_04f3),
    f32::from_bits(0x3fbd_08a4),
    f32::from_bits(0x3fc5_672a),
    f32::from_bits(0x3fce_248c),
    f32::from_bits(0x3fd7_44fd),
    f32::from_bits(0x3fe0_ccdf),
    f32::from_bits(0x3fea_c0c7),
    f32::from_bits(0x3ff5_257d),
];
/// 1.5·2^52 + 1023·8: added to an integral f64 n (|n| < 2^50) it leaves n + 1023·8 in the low
/// mantissa bits (the exponent bias times the table size, so that the shifted bits are biased).
const EXP2_MAGIC_F64: f64 = 6_755_399_441_055_744.0 + 8184.0;
/// 1.5·2^23 + 127·16, the same for f32 (|n| < 2^21).
const EXP2_MAGIC_F32: f64 = 12_582_912.0 + 2032.0;

/// `EXP2_8[b & 7]` per lane: one `vpermpd` (it reads only the low 3 bits of each index).
#[inline(always)]
fn lookup_f64x8(b: u64x8) -> f64x8 {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    {
        use core::arch::x86_64::_mm512_permutexvar_pd;
        // SAFETY: AVX-512F is enabled at compile time (cfg above); the intrinsic only permutes.
        f64x8::from(unsafe { _mm512_permutexvar_pd(b.into(), f64x8::new(EXP2_8).into()) })
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
    {
        let b = b.to_array();
        f64x8::new(core::array::from_fn(|i| EXP2_8[(b[i] & 7) as usize]))
    }
}

/// `EXP2_8[b & 7]` per lane: one `vpermt2pd` where AVX-512VL is enabled, else per lane.
#[inline(always)]
fn lookup_f64x4(b: u64x4) -> f64x4 {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512vl"
    ))]
    {
        use core::arch::x86_64::_mm256_permutex2var_pd;
        let lo = f64x4::new([EXP2_8[0], EXP2_8[1], EXP2_8[2], EXP2_8[3]]);
        let hi = f64x4::new([EXP2_8[4], EXP2_8[5], EXP2_8[6], EXP2_8[7]]);
        // SAFETY: AVX-512F and VL are enabled at compile time (cfg above); a pure permute.
        f64x4::from(unsafe { _mm256_permutex2var_pd(lo.into(), b.into(), hi.into()) })
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512vl"
    )))]
    {
        let b = b.to_array();
        f64x4::new(core::array::from_fn(|i| EXP2_8[(b[i] & 7) as usize]))
    }
}

/// `EXP2_16[b & 15]` per lane: one `vpermps`.
#[inline(always)]
fn lookup_f32x16(b: u32x16) -> f32x16 {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    {
        use core::arch::x86_64::_mm512_permutexvar_ps;
        // SAFETY: AVX-512F is enabled at compile time (cfg above); the intrinsic only permutes.
        f32x16::from(unsafe { _mm512_permutexvar_ps(b.into(), f32x16::new(EXP2_16).into()) })
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
    {
        let b = b.to_array();
        f32x16::new(core::array::from_fn(|i| EXP2_16[(b[i] & 15) as usize]))
    }
}

/// Two vectors computed in lockstep: every operation is applied to both halves, one after the
/// other, so the instruction stream carries two independent dependency chains.
///
/// The kernel's loop body is a long chain (ln → d1 → e^{−d²/2} and the cdf rationals → one
/// division → the outputs) of about 450 instructions per vector, more than the core's
/// out-of-order window can overlap with the next iteration; measured on Zen 5 it ran at about
/// half the FMA pipes' throughput. Interleaving a second vector fills the idle slots: in
/// `keel-bench greeks` (1k book) the f64x8 full path went from 5.1 to 4.1 ns per option and the
/// spot-move path from 3.7 to 3.1, with the same arithmetic per lane (four vectors were no
/// faster than two). The batch entry points use it for every vector type; the scalar twin
/// stays one option at a time.
#[derive(Clone, Copy, Debug)]
pub struct Pair<V>(pub V, pub V);

macro_rules! pair_binop {
    ($tr:ident, $f:ident) => {
        impl<V: $tr<Output = V>> $tr for Pair<V> {
            type Output = Self;
            #[inline(always)]
            fn $f(self, o: Self) -> Self {
                Pair(self.0.$f(o.0), self.1.$f(o.1))
            }
        }
    };
}
pair_binop!(Add, add);
pair_binop!(Sub, sub);
pair_binop!(Mul, mul);
pair_binop!(Div, div);
pair_binop!(BitAnd, bitand);
pair_binop!(BitOr, bitor);

impl<V: Neg<Output = V>> Neg for Pair<V> {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        Pair(-self.0, -self.1)
    }
}

impl<V: Not<Output = V>> Not for Pair<V> {
    type Output = Self;
    #[inline(always)]
    fn not(self) -> Self {
        Pair(!self.0, !self.1)
    }
}

impl<V: Lanes> Lanes for Pair<V> {
    type Elem = V::Elem;
    type Mask = Pair<V::Mask>;
    const LANES: usize = 2 * V::LANES;
    const NAME: &'static str = "two vectors in lockstep";
    const DOUBLE: bool = V::DOUBLE;

    #[inline(always)]
    fn splat(x: f64) -> Self {
        Pair(V::splat(x), V::splat(x))
    }
    #[inline(always)]
    fn load(src: &[Self::Elem]) -> Self {
        Pair(V::load(src), V::load(&src[V::LANES..]))
    }
    #[inline(always)]
    fn store(self, dst: &mut [Self::Elem]) {
        self.0.store(dst);
        self.1.store(&mut dst[V::LANES..]);
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        Pair(self.0.mul_add(a.0, b.0), self.1.mul_add(a.1, b.1))
    }
    #[inline(always)]
    fn select(m: Self::Mask, t: Self, f: Self) -> Self {
        Pair(V::select(m.0, t.0, f.0), V::select(m.1, t.1, f.1))
    }
    #[inline(always)]
    fn lt(self, o: Self) -> Self::Mask {
        Pair(self.0.lt(o.0), self.1.lt(o.1))
    }
    #[inline(always)]
    fn gt(self, o: Self) -> Self::Mask {
        Pair(self.0.gt(o.0), self.1.gt(o.1))
    }
    #[inline(always)]
    fn any(m: Self::Mask) -> bool {
        V::any(m.0 | m.1)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Pair(self.0.abs(), self.1.abs())
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Pair(self.0.sqrt(), self.1.sqrt())
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        Pair(self.0.max(o.0), self.1.max(o.1))
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        Pair(self.0.min(o.0), self.1.min(o.1))
    }
    #[inline(always)]
    fn round(self) -> Self {
        Pair(self.0.round(), self.1.round())
    }
    #[inline(always)]
    fn pow2i(n: Self) -> Self {
        Pair(V::pow2i(n.0), V::pow2i(n.1))
    }
    #[inline(always)]
    fn exp2_split(n: Self) -> (Self, Self) {
        let (t0, s0) = V::exp2_split(n.0);
        let (t1, s1) = V::exp2_split(n.1);
        (Pair(t0, t1), Pair(s0, s1))
    }
    #[inline(always)]
    fn ln(self) -> Self {
        Pair(self.0.ln(), self.1.ln())
    }
    #[inline(always)]
    fn exp_lib(self) -> Self {
        Pair(self.0.exp_lib(), self.1.exp_lib())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow2i_matches_powi_on_every_instantiation() {
        for n in [-1022i32, -100, -1, 0, 1, 7, 52, 1023] {
            let want = 2f64.powi(n);
            assert_eq!(<f64 as Lanes>::pow2i(n as f64), want, "f64 2^{n}");
            assert_eq!(f64x8::pow2i(Lanes::splat(n as f64)).to_array()[3], want);
            assert_eq!(f64x4::pow2i(Lanes::splat(n as f64)).to_array()[1], want);
        }
        for n in [-126i32, -3, 0, 5, 127] {
            assert_eq!(
                f32x16::pow2i(Lanes::splat(n as f64)).to_array()[9],
                2f32.powi(n)
            );
        }
    }

    #[test]
    fn pair_is_two_independent_vectors() {
        let src: Vec<f64> = (0..16).map(|i| i as f64 - 7.5).collect();
        let p = Pair::<f64x8>::load(&src);
        let m = p.lt(Lanes::splat(0.0));
        let mut dst = [0.0; 16];
        Pair::select(m, -p, p)
            .mul_add(p, Lanes::splat(1.0))
            .store(&mut dst);
        for (d, s) in dst.iter().zip(&src) {
            assert_eq!(*d, s.abs().mul_add(*s, 1.0));
        }
        assert!(Pair::<f64x8>::any(p.gt(Lanes::splat(7.0))));
        assert!(!Pair::<f64x8>::any(p.gt(Lanes::splat(8.0))));
        assert_eq!(<Pair<f32x16> as Lanes>::LANES, 32);
    }

    #[test]
    fn exp2_split_matches_powf_on_every_instantiation() {
        for n in [-8176i32, -8175, -800, -9, -8, -1, 0, 1, 7, 8, 13, 8183] {
            let want = (
                2f64.powi(n.div_euclid(8)),
                2f64.powf(n.rem_euclid(8) as f64 / 8.0),
            );
            let (t, s) = <f64 as Lanes>::exp2_split(n as f64);
            assert_eq!(s, want.0, "scale, n = {n}");
            assert!(
                (t / want.1 - 1.0).abs() <= f64::EPSILON / 2.0,
                "table, n = {n}"
            );
            let (t8, s8) = f64x8::exp2_split(Lanes::splat(n as f64));
            let (t4, s4) = f64x4::exp2_split(Lanes::splat(n as f64));
            assert_eq!(
                (t8.to_array()[5], s8.to_array()[2]),
                (t, s),
                "f64x8, n = {n}"
            );
            assert_eq!(
                (t4.to_array()[3], s4.to_array()[0]),
                (t, s),
                "f64x4, n = {n}"
            );
        }
        for n in [-2016i32, -2015, -17, -16, -1, 0, 1, 15, 16, 2031] {
            let (t, s) = f32x16::exp2_split(Lanes::splat(n as f64));
            assert_eq!(
                s.to_array()[7],
                2f32.powi(n.div_euclid(16)),
                "f32 scale, n = {n}"
            );
            let want = 2f64.powf(n.rem_euclid(16) as f64 / 16.0);
            let got = t.to_array()[11] as f64;
            assert!(
                (got / want - 1.0).abs() <= 0.5 * f32::EPSILON as f64,
                "f32 table, n = {n}"
            );
        }
    }

    #[test]
    fn load_store_round_trip_and_select() {
        let src: Vec<f64> = (0..8).map(|i| i as f64 - 3.5).collect();
        let v = f64x8::load(&src);
        let mut dst = [0.0; 8];
        f64x8::select(v.lt(Lanes::splat(0.0)), -v, v).store(&mut dst);
        for (d, s) in dst.iter().zip(&src) {
            assert_eq!(*d, s.abs());
        }
        assert!(f64x8::any(v.gt(Lanes::splat(3.0))));
        assert!(!f64x8::any(v.gt(Lanes::splat(4.0))));
    }
}

#[cfg(test)]
mod ln_accuracy {
    use super::*;

    /// The kernel's ln(S/K) and ln S come from `wide` (std for the scalar twin): measure `wide`'s
    /// against std's (correctly rounded or within 1 ulp) over the range the builder admits
    /// (S/K in [1e-27, 1e27]) and densely near 1, where ln(S/K) is small.
    #[test]
    fn wide_ln_is_within_two_ulp_of_std() {
        let mut xs: Vec<f64> = Vec::new();
        let mut x = 1e-27;
        while x < 1e27 {
            xs.push(x);
            x *= 1.0137;
        }
        xs.extend((1..20_000).map(|i| 1.0 + (i as f64 - 10_000.0) * 1e-7));
        xs.extend((1..2_000).map(|i| core::f64::consts::SQRT_2 + (i as f64 - 1000.0) * 1e-12));
        xs.truncate(xs.len() / 8 * 8);
        let mut worst: f64 = 0.0;
        for c in xs.chunks_exact(8) {
            let got = <f64x8 as Lanes>::load(c).ln().to_array();
            for (x, g) in c.iter().zip(got) {
                let want = x.ln();
                let ulp = (want.abs() * f64::EPSILON).max(f64::MIN_POSITIVE);
                worst = worst.max((g - want).abs() / ulp);
            }
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        println!("wide f64x8 ln: worst {worst:.2} ulp of std");

        // f32x16, on f32 inputs over f32's share of the range, against std's f64 ln.
        let xs32: Vec<f32> = xs
            .iter()
            .map(|&x| x as f32)
            .filter(|x| x.is_normal())
            .collect();
        let mut worst32: f64 = 0.0;
        for c in xs32.chunks_exact(16) {
            let got = <f32x16 as Lanes>::load(c).ln().to_array();
            for (x, g) in c.iter().zip(got) {
                let want = (*x as f64).ln();
                let ulp = (want.abs() * f32::EPSILON as f64).max(f32::MIN_POSITIVE as f64);
                worst32 = worst32.max((g as f64 - want).abs() / ulp);
            }
        }
        assert!(worst32 <= 2.0, "f32 worst error {worst32} ulp");
        println!("wide f32x16 ln: worst {worst32:.2} ulp of the exact value");
    }
}
