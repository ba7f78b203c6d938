//! Short decimal numbers to `f64` with SSE/AVX-512VL instructions, for a caller that already
//! knows where the token ends (a matched [`super::template`] gives it): one 16-byte
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
//! a CPU); elsewhere the same function runs on the scanner's SWAR converter. Sixteen numbers
//! at once ([`decimal_spans_x16`], AVX-512 builds): the same method four tokens per register,
//! for the template reader. Each `unsafe` block has its `SAFETY:` line.

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

/// Sixteen numbers at once whose places are known (a matched template gives them): the tokens
/// `buf[start[k]..end[k]]` for the lanes set in `lanes`, each `-?(0|[1-9][0-9]*)(\.[0-9]+)?`
/// of 1 to 15 bytes, sign included (so at most 15 digits: the mantissa is below 2^53). Each
/// token is loaded right-aligned in a 128-bit lane of one of four registers (a masked load of
/// its own bytes only); the checks run on each register's byte masks at once in a general
/// register, the dot is squeezed out by one blend, the digits combined by three multiply-adds
/// and the values rounded by two vector divisions of eight (Clinger's fast path). Straight-
/// line code, no branch on the data: the four registers' work interleaves. Returns the values
/// and the lanes that answered (bit k); a lane that did not (any other spelling, an exponent,
/// a longer or empty token, `end[k] < 16`) is for the caller's one-number path. Where a lane
/// answers, its value is `str::parse::<f64>`'s, bit for bit.
#[cfg(keel_avx512)]
#[inline(always)]
pub(crate) fn decimal_spans_x16(
    buf: &[u8],
    start: &[u16; 16],
    end: &[u16; 16],
    lanes: u16,
) -> ([f64; 16], u16) {
    use core::arch::x86_64::*;
    // Lane bit masks, as four 16-bit fields of a u64 per register.
    const H: u64 = 0x8000_8000_8000_8000; // each lane's last byte
    const LO15: u64 = 0x7FFF_7FFF_7FFF_7FFF;
    // Bit 15 of each lane where `x` has any bit in that lane.
    let nonzero = |x: u64| (((x & LO15) + LO15) | x) & H;
    // Per lane (16-bit lanes of one 256-bit register): on when the lane is asked for, its
    // token 1 to 15 bytes long and `16 <= end <= buf.len()`; its 16 bytes end at `end`, of
    // which the token's are its last `len` (bits of `tok`, four lanes per u64).
    let mut tok = [0u64; 4];
    let mut at = [0u16; 16];
    let len_max = buf.len().min(usize::from(u16::MAX)) as u16;
    // SAFETY: the features are enabled by the `cfg`; the loads and stores read and write the
    // 16 entries of `start`, `end`, `tok` and `at`.
    unsafe {
        let s = _mm256_loadu_si256(start.as_ptr().cast::<__m256i>());
        let e = _mm256_loadu_si256(end.as_ptr().cast::<__m256i>());
        let len = _mm256_sub_epi16(e, s);
        let sixteen = _mm256_set1_epi16(16);
        let on = lanes
            & _mm256_cmplt_epu16_mask(
                _mm256_sub_epi16(len, _mm256_set1_epi16(1)),
                _mm256_set1_epi16(15),
            )
            & _mm256_cmpge_epu16_mask(e, sixteen)
            & _mm256_cmple_epu16_mask(e, _mm256_set1_epi16(len_max as i16));
        let bits =
            _mm256_maskz_sllv_epi16(on, _mm256_set1_epi16(-1), _mm256_sub_epi16(sixteen, len));
        _mm256_storeu_si256(tok.as_mut_ptr().cast::<__m256i>(), bits);
        _mm256_storeu_si256(
            at.as_mut_ptr().cast::<__m256i>(),
            _mm256_maskz_sub_epi16(on, e, sixteen),
        );
    }
    let mut out = [0.0; 16];
    let mut lane_bad = [0u64; 4];
    // SAFETY: every intrinsic needs only features the `cfg` on this function guarantees the
    // build enables. Lane k loads `buf[at[k]..at[k] + 16]` masked to its token's bytes,
    // `buf[start[k]..end[k]]` with `end[k] <= buf.len()` (checked above); masked-off bytes are
    // not read, and a lane that is off reads nothing. The table loads read the first 16
    // entries of `POW10`; the stores write the 16 entries of `out`.
    unsafe {
        let p = buf.as_ptr();
        let load = |k: usize| {
            _mm_maskz_loadu_epi8(
                (tok[k / 4] >> (16 * (k % 4))) as u16,
                p.add(usize::from(at[k])).cast::<i8>(),
            )
        };
        let mut m = [_mm256_setzero_si256(); 4];
        let mut decimals = [_mm_setzero_si128(); 4];
        let mut sign = [0u64; 4];
        for g in 0..4 {
            let tok = tok[g];
            let v = _mm512_inserti32x4::<3>(
                _mm512_inserti32x4::<2>(
                    _mm512_inserti32x4::<1>(_mm512_castsi128_si512(load(4 * g)), load(4 * g + 1)),
                    load(4 * g + 2),
                ),
                load(4 * g + 3),
            );
            let eq = |c: u8| _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(c as i8));
            let d = _mm512_sub_epi8(v, _mm512_set1_epi8(b'0' as i8));
            let digit = _mm512_cmplt_epu8_mask(d, _mm512_set1_epi8(10)) & tok;
            let dot = eq(b'.') & tok;
            let minus = eq(b'-') & tok;
            let zero = eq(b'0') & tok;
            // No token starts at a lane's bit 0 (at most 15 bytes), so shifts by one never
            // carry a bit of one lane into the token of the next.
            let first = tok & !(tok << 1);
            sign[g] = minus & first;
            let body = tok & !sign[g];
            let body_first = body & !(body << 1);
            let dot_lanes = nonzero(dot);
            // The bytes before the dot, in lanes with one.
            let before = dot.wrapping_sub(dot_lanes >> 15);
            let bad = ((digit | dot) ^ body) // only digits and dots after the sign
                | (before & dot) // one dot at most ...
                | (dot & (body_first | H)) // ... neither first nor last
                | (zero & body_first & (digit >> 1)); // no leading zero but `0` itself
            lane_bad[g] = nonzero(bad) | (H & !nonzero(body));
            // Squeeze the dot out: the bytes before it move up one place; then only the
            // digits (in their new places) are kept.
            let up = (dot | before) & tok;
            let keep = ((digit & before) << 1) | (digit & !before);
            let merged = _mm512_mask_blend_epi8(up, d, _mm512_bslli_epi128::<1>(d));
            let digits = _mm512_maskz_mov_epi8(keep, merged);
            // 16 digits per lane -> 8 two-digit -> 4 four-digit -> 2 eight-digit -> a u64.
            let t1 = _mm512_maddubs_epi16(digits, _mm512_set1_epi16(0x010A));
            let t2 = _mm512_madd_epi16(t1, _mm512_set1_epi32(0x0001_0064));
            let t3 = _mm512_packus_epi32(t2, t2);
            let t4 = _mm512_madd_epi16(t3, _mm512_set1_epi32(0x0001_2710));
            let x = _mm512_add_epi64(
                _mm512_mul_epu32(t4, _mm512_set1_epi64(100_000_000)),
                _mm512_srli_epi64::<32>(t4),
            );
            m[g] = _mm512_castsi512_si256(_mm512_permutexvar_epi64(
                _mm512_setr_epi64(0, 2, 4, 6, 0, 2, 4, 6),
                x,
            ));
            // Decimals: the token's bytes after the dot, in lanes with one.
            let frac = tok & !(before | dot) & ((dot_lanes >> 15) * 0xFFFF);
            decimals[g] = _mm_popcnt_epi16(_mm_cvtsi64_si128(frac as i64));
        }
        let pow_lo = _mm512_loadu_pd(POW10.as_ptr());
        let pow_hi = _mm512_loadu_pd(POW10.as_ptr().add(8));
        for h in 0..2 {
            let (a, b) = (2 * h, 2 * h + 1);
            let mant = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(m[a]), m[b]);
            let dec = _mm_unpacklo_epi64(decimals[a], decimals[b]);
            let scale = _mm512_permutex2var_pd(pow_lo, _mm512_cvtepu16_epi64(dec), pow_hi);
            let value = _mm512_div_pd(_mm512_cvtepu64_pd(mant), scale);
            let neg = _mm_unpacklo_epi64(
                _mm_cvtsi64_si128(sign[a] as i64),
                _mm_cvtsi64_si128(sign[b] as i64),
            );
            let negative = _mm_cmpneq_epi16_mask(neg, _mm_setzero_si128());
            let value = _mm512_mask_xor_pd(value, negative, value, _mm512_set1_pd(-0.0));
            _mm512_storeu_pd(out.as_mut_ptr().add(8 * h), value);
        }
    }
    // One bit per lane (each lane's bit 15).
    let mut bad = 0u16;
    for (g, &x) in lane_bad.iter().enumerate() {
        let b = ((x >> 15) & 1) | ((x >> 30) & 2) | ((x >> 45) & 4) | ((x >> 60) & 8);
        bad |= (b as u16) << (4 * g);
    }
    (out, lanes & !bad)
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

    /// `decimal_spans_x16` on sixteen tokens laid out in one buffer, each followed by a comma:
    /// each lane that answers agrees with std; the venue's usual spellings answer.
    #[cfg(keel_avx512)]
    fn check_x16(texts: &[String; 16]) {
        let mut buf = vec![b'x'; 16];
        let (mut start, mut end) = ([0u16; 16], [0u16; 16]);
        for (k, t) in texts.iter().enumerate() {
            start[k] = buf.len() as u16;
            buf.extend_from_slice(t.as_bytes());
            end[k] = buf.len() as u16;
            buf.push(b',');
        }
        for lanes in [0xFFFF_u16, 0x5A5A] {
            let (values, answered) = decimal_spans_x16(&buf, &start, &end, lanes);
            for k in 0..16 {
                let want = texts[k].parse::<f64>().ok().filter(|v| v.is_finite());
                let plain = texts[k].len() <= 15
                    && !texts[k].contains(['e', 'E', '+'])
                    && decimal_f64(&buf, start[k].into(), end[k].into()).is_some();
                if answered & (1 << k) != 0 {
                    assert!(lanes & (1 << k) != 0, "lane {k} off but answered");
                    assert_eq!(
                        Some(values[k].to_bits()),
                        want.map(f64::to_bits),
                        "{} in {texts:?}",
                        texts[k]
                    );
                } else {
                    assert!(
                        lanes & (1 << k) == 0 || !plain,
                        "{} declined in {texts:?}",
                        texts[k]
                    );
                }
            }
        }
    }

    #[cfg(keel_avx512)]
    #[test]
    fn sixteen_at_once_agree_with_std() {
        let mut rng = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let alphabet = b"0123456789.-e+ ";
        for round in 0..20_000 {
            let texts: [String; 16] = std::array::from_fn(|_| {
                let len = 1 + next(17) as usize;
                if round % 2 == 0 {
                    // Venue spellings: -?int(.frac)?
                    let mut t = String::new();
                    if next(4) == 0 {
                        t.push('-');
                    }
                    let int = next(1_000_000).to_string();
                    t.push_str(if next(3) == 0 { "0" } else { &int });
                    if next(3) != 0 {
                        t.push('.');
                        for _ in 0..1 + next(9) {
                            t.push((b'0' + next(10) as u8) as char);
                        }
                    }
                    t
                } else {
                    (0..len)
                        .map(|_| {
                            if next(4) == 0 {
                                alphabet[next(alphabet.len() as u64) as usize] as char
                            } else {
                                (b'0' + next(10) as u8) as char
                            }
                        })
                        .collect()
                }
            });
            check_x16(&texts);
        }
        let fixed = [
            "0",
            "-0",
            "0.5",
            "-25.13021",
            "116086.34",
            "1e-05",
            "00",
            ".5",
            "1.",
            "-",
            "1..2",
            "123456789012345",
            "1234567890123456",
            "-12345678901234",
            "0.0",
            "10",
        ]
        .map(String::from);
        check_x16(&fixed);
    }

    /// `text` in every fifth lane of [`decimal_spans_x16`] (where the build has it), beside
    /// other numbers: it agrees with std where it answers, and answers the venue's spellings.
    fn x16(text: &str) {
        #[cfg(keel_avx512)]
        {
            let texts: [String; 16] = std::array::from_fn(|k| {
                if k % 5 == 0 {
                    text.to_string()
                } else {
                    ["0.5", "-7", "12", "3.25"][k % 4].to_string()
                }
            });
            check_x16(&texts);
        }
        #[cfg(not(keel_avx512))]
        let _ = text;
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
            let text = crate::venues::json::number_text(neg, &int, frac.as_deref(), exp.as_deref());
            check(&text);
            // The venue's usual spellings (no exponent, at most 15 digits) never decline.
            let body = int.len() + frac.as_ref().map_or(0, |f| f.len() + 1);
            let usual = exp.is_none() && body <= 15;
            x16(&text);
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
