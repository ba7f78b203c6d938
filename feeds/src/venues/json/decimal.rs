//! Short decimal numbers to `f64` with SSE/AVX-512VL instructions, for a caller that already
//! knows where the token ends (the structural index of [`super::shape`] gives it): one 16-byte
//! load, the digits checked and the dot squeezed out by mask arithmetic, the 16 digit values
//! combined by three multiply-adds (simdjson's eight-digits-at-once method), then Clinger's
//! exact fast path (a mantissa of at most 2^53 and an exact power of ten: one correctly
//! rounded IEEE multiplication or division). No loop over bytes, no branch on the digits.
//!
//! Owns only that conversion. Handles `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]{1,3})?`
//! with at most 16 bytes before the exponent; answers `None` for anything else (longer or
//! malformed tokens, values outside the fast path), and the caller then takes the scanner's
//! converter, which gives the value or the error. Where it answers, the value is
//! `str::parse::<f64>`'s, bit for bit (the property tests below check it). Never allocates,
//! never reads outside the slice it is given. The SIMD code is chosen at compile time
//! (`target_feature` AVX-512BW and VL, which the workspace's `target-cpu=native` enables on such
//! a CPU); elsewhere the same function runs on the scanner's SWAR converter. One `unsafe`
//! block, the unaligned load, with its `SAFETY:` line.

/// Exact powers of ten (every one up to 10^22 is an `f64`).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A number as three exact `f64`s whose product-then-quotient `m * mul / div` is the correctly
/// rounded value: the signed mantissa (at most 2^53, so exact) and an exact power of ten as
/// `mul` or `div` (the other one 1). One rounding happens, in the last operation (the first
/// is exact), which is Clinger's fast path; callers with several numbers do the divisions
/// together (one vector division for eight).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Parts {
    pub(crate) m: f64,
    pub(crate) mul: f64,
    pub(crate) div: f64,
}

impl Parts {
    /// An already converted value.
    #[inline(always)]
    pub(crate) fn value(v: f64) -> Self {
        Self {
            m: v,
            mul: 1.0,
            div: 1.0,
        }
    }

    /// The value.
    #[cfg(test)]
    pub(crate) fn get(self) -> f64 {
        self.m * self.mul / self.div
    }
}

/// The number `buf[start..end]` (a whole token: `end` is the delimiter after it), or `None`
/// (see the module comment). Declines when fewer than 16 bytes of `buf` precede `end`.
#[cfg(test)]
pub(crate) fn decimal_f64(buf: &[u8], start: usize, end: usize) -> Option<f64> {
    decimal_parts(buf, start, end).map(Parts::get)
}

/// `buf[start..end]` as 1 to 16 digits without a leading zero (a millisecond timestamp), or
/// `None` (the caller then takes its digit loop).
#[inline(always)]
pub(crate) fn decimal_u64(buf: &[u8], start: usize, end: usize) -> Option<u64> {
    match mantissa(buf, start, end)? {
        (m, 0) if buf.get(start..end)?.first() != Some(&b'0') || end - start == 1 => Some(m),
        _ => None,
    }
}

/// [`decimal_f64`] before its last operation.
#[inline(always)]
pub(crate) fn decimal_parts(buf: &[u8], start: usize, end: usize) -> Option<Parts> {
    let neg = buf.get(start) == Some(&b'-');
    let s = start + usize::from(neg);
    let (m, mul, div) = match mantissa(buf, s, end) {
        Some((m, decimals)) if m <= 1 << 53 => (m, 1.0, *POW10.get(decimals)?),
        _ => with_exponent(buf, s, end)?,
    };
    let m = m as f64;
    Some(Parts {
        m: if neg { -m } else { m },
        mul,
        div,
    })
}

/// `buf[s..end]` as `(0|[1-9][0-9]*)(\.[0-9]+)?` of 1 to 16 bytes: (the digits as an integer,
/// the number of decimals).
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx512bw",
    target_feature = "avx512vl"
))]
#[inline(always)]
fn mantissa(buf: &[u8], s: usize, end: usize) -> Option<(u64, usize)> {
    use core::arch::x86_64::*;
    let len = end.checked_sub(s)?;
    if len == 0 || len > 16 {
        return None;
    }
    // The 16 bytes ending at `end`: the token is right-aligned, as its digits must be.
    let chunk: &[u8; 16] = buf.get(end.checked_sub(16)?..end)?.try_into().ok()?;
    let first = 16 - len as u32; // the token's first byte
    let tok = 0xFFFF_u32 << first & 0xFFFF;
    let first_bit = 1u32 << first;
    // SAFETY: every intrinsic here needs only SSE2, SSSE3, SSE4.1, AVX-512BW and AVX-512VL,
    // which the `cfg` on this function guarantees the build enables; the one load reads the
    // 16 bytes of `chunk`, unaligned.
    let (digit, dot, x) = unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
        let d = _mm_sub_epi8(v, _mm_set1_epi8(b'0' as i8));
        let digit = u32::from(_mm_cmplt_epu8_mask(d, _mm_set1_epi8(10))) & tok;
        let dot = u32::from(_mm_cmpeq_epi8_mask(v, _mm_set1_epi8(b'.' as i8))) & tok;
        // Squeeze the dot out: the bytes before it move up one place, so that the digits
        // stay right-aligned; then everything left of them is cleared.
        let up = if dot != 0 { (dot | (dot - 1)) & tok } else { 0 };
        let merged = _mm_mask_blend_epi8(up as u16, d, _mm_bslli_si128::<1>(d));
        let n = len - usize::from(dot != 0);
        let keep = (0xFFFF_u32 << (16 - n)) as u16;
        let digits = _mm_maskz_mov_epi8(keep, merged);
        // 16 digits (most significant first) -> 8 two-digit -> 4 four-digit -> 2 eight-digit.
        let t1 = _mm_maddubs_epi16(
            digits,
            _mm_setr_epi8(10, 1, 10, 1, 10, 1, 10, 1, 10, 1, 10, 1, 10, 1, 10, 1),
        );
        let t2 = _mm_madd_epi16(t1, _mm_setr_epi16(100, 1, 100, 1, 100, 1, 100, 1));
        let t3 = _mm_packus_epi32(t2, t2);
        let t4 = _mm_madd_epi16(
            t3,
            _mm_setr_epi16(10_000, 1, 10_000, 1, 10_000, 1, 10_000, 1),
        );
        (digit, dot, _mm_cvtsi128_si64(t4) as u64)
    };
    // The checks, without short-circuits (no branch on the digits).
    let first_zero = (digit & first_bit != 0) & (chunk.get(first as usize) == Some(&b'0'));
    let ok = ((digit | dot) == tok)
        // At most one dot, neither first nor last.
        & (dot & dot.wrapping_sub(1) == 0)
        & (dot & (first_bit | 0x8000) == 0)
        // No leading zero unless the integer part is exactly `0`.
        & (!first_zero | (len == 1) | (dot & (first_bit << 1) != 0));
    let has_dot = dot != 0;
    let m = (x & 0xFFFF_FFFF) * 100_000_000 + (x >> 32);
    let decimals = if has_dot {
        15 - dot.trailing_zeros() as usize
    } else {
        0
    };
    ok.then_some((m, decimals))
}

/// The same as the SIMD [`mantissa`] above, for CPUs without AVX-512: the SWAR converter.
#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "avx512bw",
    target_feature = "avx512vl"
)))]
#[inline(always)]
fn mantissa(buf: &[u8], s: usize, end: usize) -> Option<(u64, usize)> {
    super::swar_mantissa(buf, s, end)
}

/// `buf[s..end]` with an exponent (`1e-05`, Python's spelling of small Greeks): the mantissa
/// as in [`mantissa`], then `[eE][+-]?[0-9]{1,3}`, within Clinger's fast path.
#[inline(never)]
fn with_exponent(buf: &[u8], s: usize, end: usize) -> Option<(u64, f64, f64)> {
    let tok = buf.get(s..end)?;
    let e = tok.iter().position(|&b| b | 0x20 == b'e')?;
    let (m, decimals) = mantissa(buf, s, s + e)?;
    let (neg, digits) = match tok.get(e + 1..)? {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        rest => (false, rest),
    };
    if digits.is_empty() || digits.len() > 3 {
        return None;
    }
    let mut x: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        x = x * 10 + i64::from(d);
    }
    let e10 = if neg { -x } else { x } - decimals as i64;
    if m > 1 << 53 {
        return None;
    }
    let p = *POW10.get(e10.unsigned_abs() as usize)?;
    Some(if e10 < 0 { (m, 1.0, p) } else { (m, p, 1.0) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `decimal_f64` on `text` at the end of a longer buffer and inside one, against std and
    /// against the scanner's `token_f64` (which must agree wherever this answers).
    fn check(text: &str) {
        let want = text.parse::<f64>().ok().filter(|v| v.is_finite());
        for pad in [16usize, 17, 23, 40] {
            for tail in [&b""[..], b",", b"}", b"5,", b".1,"] {
                let mut buf = vec![b'x'; pad];
                buf.extend_from_slice(text.as_bytes());
                let end = buf.len();
                buf.extend_from_slice(tail);
                let got = decimal_f64(&buf, pad, end);
                if let Some(got) = got {
                    assert_eq!(Some(got.to_bits()), want.map(f64::to_bits), "{text}");
                    assert_eq!(
                        Some(got.to_bits()),
                        super::super::token_f64(text.as_bytes()).map(f64::to_bits),
                        "{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_common_spellings_convert() {
        for (text, want) in [
            ("0", 0.0_f64),
            ("2", 2.0),
            ("0.2425", 0.2425),
            ("45.43", 45.43),
            ("116086.34", 116_086.34),
            ("0.24231149", 0.242_311_49),
            ("-25.13021", -25.13021),
            ("1e-05", 1e-5),
            ("1234567890123456", 1_234_567_890_123_456.0),
            ("0.00000000000001", 1e-14),
        ] {
            let mut buf = vec![b' '; 16];
            buf.extend_from_slice(text.as_bytes());
            let got = decimal_f64(&buf, 16, buf.len());
            assert_eq!(got.map(f64::to_bits), Some(want.to_bits()), "{text}");
        }
    }

    #[test]
    fn edge_cases_agree_with_std_or_decline() {
        for t in [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "00",
            "01",
            "0.",
            ".5",
            "1..2",
            "1.2.3",
            "-",
            "--1",
            "1-",
            "+1",
            "1e-05",
            "1E+2",
            "1e",
            "1e+",
            "1e1234",
            "12a",
            "1 ",
            " 1",
            "0x10",
            "9007199254740993",
            "9007199254740992",
            "99999999999999999",
            "1234567890123456",
            "12345678901234567",
            "123456789012345.6",
            "1.234567890123456",
            "4.9e-324",
            "1e22",
            "1e23",
            "1.5e-22",
            "-0e5",
            "0e0",
            "5e-1",
            "0.1e1",
            "100e-2",
            "1.e5",
            "1e05",
            "null",
            "\"1\"",
        ] {
            check(t);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]

        /// The venue's shapes: prices, sizes, IVs, Greeks, with an exponent now and then.
        #[test]
        fn venue_numbers_agree_with_std(
            neg in proptest::bool::ANY,
            int in "(0|[1-9][0-9]{0,15})",
            frac in proptest::option::of("[0-9]{1,16}"),
            exp in proptest::option::of("[eE][+-]?[0-9]{1,3}"),
        ) {
            let mut text = String::new();
            if neg {
                text.push('-');
            }
            text.push_str(&int);
            if let Some(f) = &frac {
                text.push('.');
                text.push_str(f);
            }
            if let Some(e) = &exp {
                text.push_str(e);
            }
            check(&text);
            // The venue's usual spellings (no exponent, at most 15 digits) never decline.
            let body = int.len() + frac.as_ref().map_or(0, |f| f.len() + 1);
            if exp.is_none() && body <= 15 {
                let mut buf = vec![b' '; 16];
                buf.extend_from_slice(text.as_bytes());
                let got = decimal_f64(&buf, 16, buf.len());
                proptest::prop_assert!(got.is_some(), "{} declined", text);
            }
        }

        #[test]
        fn malformed_numbers_are_declined(text in "[-0-9.eE+x ]{1,20}") {
            check(&text);
        }
    }
}
