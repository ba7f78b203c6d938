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

/// Four numbers at once, one per 128-bit lane of an AVX-512 register: the tokens starting at
/// `buf[start[k]]` for the lanes set in `lanes`, each `-?(0|[1-9][0-9]*)(\.[0-9]+)?` of at most
/// 15 bytes (sign included) followed at once by `,`, `}` or `]` (the token's end is found
/// here, in the 16 bytes from its start: the first byte that is not a digit, a dot or a minus,
/// which must be one of those).
/// Returns the values and a mask of the lanes that answered (bit k); a lane that did not (any
/// other spelling or delimiter, an exponent, a longer token, a mantissa above 2^53) is for the
/// caller's one-number path, which reads up to the structural index's end. Where a lane
/// answers, its value is [`decimal_parts`]'s for the same token, and so
/// `str::parse::<f64>`'s, bit for bit: the digits are combined exactly, and one vector division
/// rounds each lane as the scalar one would.
#[cfg(keel_avx512)]
#[inline(always)]
pub(crate) fn decimal_x4(buf: &[u8], start: &[usize; 4], lanes: u8) -> ([f64; 4], u8) {
    use core::arch::x86_64::*;
    let mut out = [0.0; 4];
    // Per lane: the bytes of `buf` from the token's start, at most 16 (none for a lane off).
    // The common case, every lane on with 16 bytes to read, needs no masks.
    let mut masks = [0xFFFFu16; 4];
    let mut offs = *start;
    let whole = lanes == 0xF && start.iter().all(|&s| s.saturating_add(16) <= buf.len());
    if !whole {
        for k in 0..4 {
            let avail = buf.len().saturating_sub(start[k]).min(16);
            let on = lanes & (1 << k) != 0 && avail > 0;
            masks[k] = if on { ((1u32 << avail) - 1) as u16 } else { 0 };
            offs[k] = if on { start[k] } else { 0 };
        }
    }
    // SAFETY: every intrinsic here needs only features the `cfg` on this function guarantees
    // the build enables. Each load reads `buf[offs[k]..offs[k] + n]` where n, 16 when `whole`
    // (then `offs[k] + 16 <= buf.len()`) and else the number of mask bits, is at most
    // `buf.len() - offs[k]` (masked-off bytes are not read, and a lane with no bit set reads
    // nothing); the table loads read the first 16 entries of `POW10`.
    unsafe {
        let p = buf.as_ptr();
        let load = |k: usize| {
            if whole {
                _mm_loadu_si128(p.add(offs[k]).cast::<__m128i>())
            } else {
                _mm_maskz_loadu_epi8(masks[k], p.add(offs[k]).cast::<i8>())
            }
        };
        let raw = _mm512_inserti32x4::<3>(
            _mm512_inserti32x4::<2>(
                _mm512_inserti32x4::<1>(_mm512_castsi128_si512(load(0)), load(1)),
                load(2),
            ),
            load(3),
        );
        let eq = |x: __m512i, c: u8| _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8(c as i8));
        let w = |m: u64| _mm_cvtsi64_si128(m as i64);
        // Each token runs to the first byte that is not a digit, a dot or a minus.
        let number_byte = _mm512_cmplt_epu8_mask(
            _mm512_sub_epi8(raw, _mm512_set1_epi8(b'0' as i8)),
            _mm512_set1_epi8(10),
        ) | eq(raw, b'.')
            | eq(raw, b'-');
        let delimiter = eq(raw, b',') | eq(raw, b'}') | eq(raw, b']');
        let stop16 = w(!number_byte);
        let stop = _mm_and_si128(stop16, _mm_sub_epi16(_mm_setzero_si128(), stop16)); // first
        let len16 = _mm_popcnt_epi16(_mm_sub_epi16(stop, _mm_set1_epi16(1)));
        let ended = _mm_test_epi16_mask(stop, w(delimiter)) & !_mm_testn_epi16_mask(len16, len16);
        // Right-align each token in its lane: byte i takes byte i - (16 - len).
        let spread = _mm512_set_epi8(
            6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
            4, 4, 4, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0,
        );
        let iota = _mm512_broadcast_i32x4(_mm_setr_epi8(
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        ));
        let len_bytes = _mm512_permutexvar_epi8(spread, _mm512_zextsi128_si512(len16));
        let control = _mm512_sub_epi8(_mm512_add_epi8(iota, len_bytes), _mm512_set1_epi8(16));
        let v = _mm512_shuffle_epi8(raw, control);
        let tok = !_mm512_movepi8_mask(control);
        let first_byte = _mm512_cmpeq_epi8_mask(control, _mm512_setzero_si512());
        let minus = eq(v, b'-') & first_byte;
        let d = _mm512_sub_epi8(v, _mm512_set1_epi8(b'0' as i8));
        let digit = _mm512_cmplt_epu8_mask(d, _mm512_set1_epi8(10)) & tok;
        let dot = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b'.' as i8)) & tok;
        let zero = eq(v, b'0');
        // The lane masks (16 bits each) as four 16-bit lanes, checked together.
        let (tok16, digit16, dot16, zero16, minus16) =
            (w(tok), w(digit), w(dot), w(zero), w(minus));
        let one = _mm_set1_epi16(1);
        let body = _mm_andnot_si128(minus16, tok16); // the bytes after the sign
        let lead = _mm_and_si128(body, _mm_sub_epi16(_mm_setzero_si128(), body)); // its first
        let bad = _mm_or_si128(
            _mm_or_si128(
                // Only digits and dots after the sign.
                _mm_xor_si128(_mm_or_si128(digit16, dot16), body),
                // At most one dot ...
                _mm_and_si128(dot16, _mm_sub_epi16(dot16, one)),
            ),
            _mm_or_si128(
                // ... neither first nor last.
                _mm_and_si128(dot16, _mm_or_si128(lead, _mm_set1_epi16(i16::MIN))),
                // No leading zero unless the integer part is exactly `0`.
                _mm_and_si128(_mm_and_si128(zero16, lead), _mm_srli_epi16::<1>(digit16)),
            ),
        );
        let lanes_bad = (_mm_cmpneq_epi16_mask(bad, _mm_setzero_si128())
            | _mm_cmpeq_epi16_mask(body, _mm_setzero_si128()))
            & 0xF;
        // Squeeze the dot out of each lane: the bytes before it move up one place; then
        // everything left of the digits is cleared.
        let has_dot = _mm_cmpneq_epi16_mask(dot16, _mm_setzero_si128());
        let up16 = _mm_maskz_mov_epi16(
            has_dot,
            _mm_and_si128(_mm_or_si128(dot16, _mm_sub_epi16(dot16, one)), body),
        );
        let digits_n = _mm_popcnt_epi16(digit16);
        let keep16 = _mm_sllv_epi16(
            _mm_set1_epi16(-1),
            _mm_sub_epi16(_mm_set1_epi16(16), digits_n),
        );
        let up = _mm_cvtsi128_si64(up16) as u64;
        let keep = _mm_cvtsi128_si64(keep16) as u64;
        let merged = _mm512_mask_blend_epi8(up, d, _mm512_bslli_epi128::<1>(d));
        let digits = _mm512_maskz_mov_epi8(keep, merged);
        // 16 digits per lane -> 8 two-digit -> 4 four-digit -> 2 eight-digit -> one u64.
        let t1 = _mm512_maddubs_epi16(digits, _mm512_set1_epi16(0x010A));
        let t2 = _mm512_madd_epi16(t1, _mm512_set1_epi32(0x0001_0064));
        let t3 = _mm512_packus_epi32(t2, t2);
        let t4 = _mm512_madd_epi16(t3, _mm512_set1_epi32(0x0001_2710));
        let m = _mm512_add_epi64(
            _mm512_mul_epu32(t4, _mm512_set1_epi64(100_000_000)),
            _mm512_srli_epi64::<32>(t4),
        );
        let m = _mm512_castsi512_si256(_mm512_permutexvar_epi64(
            _mm512_setr_epi64(0, 2, 4, 6, 0, 2, 4, 6),
            m,
        ));
        let too_big = _mm256_cmpgt_epu64_mask(m, _mm256_set1_epi64x(1 << 53));
        // Decimals: 15 - the dot's place (lzcnt of the 16-bit mask as 32 bits, minus 16).
        let lz = _mm_lzcnt_epi32(_mm_cvtepu16_epi32(dot16));
        let decimals = _mm_maskz_sub_epi32(has_dot, lz, _mm_set1_epi32(16));
        let pow_lo = _mm512_loadu_pd(POW10.as_ptr());
        let pow_hi = _mm512_loadu_pd(POW10.as_ptr().add(8));
        let scale = _mm512_castpd512_pd256(_mm512_permutex2var_pd(
            pow_lo,
            _mm512_zextsi256_si512(_mm256_cvtepu32_epi64(decimals)),
            pow_hi,
        ));
        let value = _mm256_div_pd(_mm256_cvtepu64_pd(m), scale);
        let negative = _mm_cmpneq_epi16_mask(minus16, _mm_setzero_si128());
        let value = _mm256_mask_xor_pd(value, negative, value, _mm256_set1_pd(-0.0));
        _mm256_storeu_pd(out.as_mut_ptr(), value);
        (out, lanes & ended & !lanes_bad & !too_big)
    }
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

    /// `decimal_x4` on four tokens laid out in one buffer: each lane that answers agrees with
    /// std; lanes of the venue's usual spellings answer.
    #[cfg(keel_avx512)]
    fn check_x4(texts: [&str; 4], must_answer: [bool; 4]) {
        let mut buf = vec![b'x'; 16];
        let (mut start, mut end) = ([0; 4], [0; 4]);
        for (k, t) in texts.iter().enumerate() {
            start[k] = buf.len();
            buf.extend_from_slice(t.as_bytes());
            end[k] = buf.len();
            buf.push(b',');
        }
        let (values, answered) = decimal_x4(&buf, &start, 0xF);
        for k in 0..4 {
            let want = texts[k].parse::<f64>().ok().filter(|v| v.is_finite());
            if answered & (1 << k) != 0 {
                assert_eq!(
                    Some(values[k].to_bits()),
                    want.map(f64::to_bits),
                    "{} in {texts:?}",
                    texts[k]
                );
                assert_eq!(
                    Some(values[k].to_bits()),
                    decimal_f64(&buf, start[k], end[k]).map(f64::to_bits),
                    "{}",
                    texts[k]
                );
            } else {
                assert!(!must_answer[k], "{} declined in {texts:?}", texts[k]);
            }
        }
    }

    #[cfg(keel_avx512)]
    #[test]
    fn four_at_once_agree_with_std() {
        let yes = [true; 4];
        check_x4(["0", "2", "0.2425", "-25.13021"], yes);
        check_x4(["116086.34", "0.24231149", "-0", "123456789012345"], yes);
        check_x4(["-12345678901234", "0.0", "9", "10"], yes);
        check_x4(
            ["1234567890123456", "-1.5", "1.2345678901234", "-0.5"],
            [false, true, true, true],
        );
        check_x4(["1e-05", "00", ".5", "1."], [false; 4]);
        check_x4(["-", "1-", "--1", "1..2"], [false; 4]);
        check_x4(
            ["12345678901234567", "9007199254740993", "-1.5", "x"],
            [false, false, true, false],
        );
        // Every alignment of the windows and every length, against std.
        let mut rng = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let alphabet = b"0123456789.-e+ ";
        for _ in 0..50_000 {
            let mut texts = [const { String::new() }; 4];
            for t in &mut texts {
                let len = 1 + next(18) as usize;
                *t = (0..len)
                    .map(|_| {
                        if next(4) == 0 {
                            alphabet[next(alphabet.len() as u64) as usize] as char
                        } else {
                            (b'0' + next(10) as u8) as char
                        }
                    })
                    .collect();
            }
            check_x4([&texts[0], &texts[1], &texts[2], &texts[3]], [false; 4]);
        }
    }

    /// `text` in every lane of [`decimal_x4`] (where the build has it), beside other numbers.
    fn x4(text: &str, must_answer: bool) {
        #[cfg(keel_avx512)]
        {
            check_x4(
                [text, "0.5", text, "-7"],
                [must_answer, true, must_answer, true],
            );
            check_x4(
                ["12", text, "3.25", text],
                [true, must_answer, true, must_answer],
            );
        }
        #[cfg(not(keel_avx512))]
        let _ = (text, must_answer);
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
            let usual = exp.is_none() && body <= 15;
            x4(&text, usual && text.len() <= 15);
            if usual {
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
