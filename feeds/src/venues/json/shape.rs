//! The skeleton of a JSON text, for a cache of message shapes: everything but the value
//! contents, compressed into one byte string, plus the offsets of the `:`s and of the bytes that
//! can end a value. The contents of strings that follow a `:` are dropped (the quotes stay);
//! each run of other bytes outside strings that are not `{}[],:` or quotes (a scalar, with any
//! whitespace around it) is dropped but for its first byte, which stands as its class: one
//! marker for a byte a JSON scalar can start with (`0-9 - t f n`), another for anything else.
//! Two texts with the same skeleton have the same keys, in the same order, with the same
//! nesting, and a scalar (starting like one) exactly where the other has one; only the values
//! differ, and the n-th `:` of one introduces the same member as the n-th `:` of the other. A
//! parser that walked one text (checking everything, and with no whitespace outside strings,
//! so that its skeleton has no "anything else" marker) can then read another of the same
//! skeleton by `:` ordinals alone, checking the values it reads.
//!
//! Owns only that index. Built 64 bytes at a time with AVX-512 (a VBMI `vpermi2b` class lookup,
//! a carry-less multiply for the in-string mask, VBMI2 `vpcompressb` for the skeleton), chosen
//! at run time; [`ShapeIndex::build`] answers false, and the caller takes its other path, on a
//! CPU without it, on texts longer than [`MAX_LEN`], on any backslash, and when the text ends
//! inside a string. Never allocates (the index lives in its owner, built once).

/// Longest text indexed.
pub(crate) const MAX_LEN: usize = MAX_BLOCKS * 64;
const MAX_BLOCKS: usize = 16;
/// Skeleton buffer: room for a whole 64-byte store past the last byte written.
const SKELETON_CAP: usize = MAX_LEN + 64;
/// `:` offsets: room for a whole 32-offset store past the last one written.
const COLONS_CAP: usize = MAX_LEN + 32;

/// The index of one text.
#[derive(Clone)]
pub(crate) struct ShapeIndex {
    blocks: usize,
    len: usize,
    /// `:` outside strings, per block.
    colons: [u64; MAX_BLOCKS],
    /// The offsets of those `:`s, in order (`colon_count` of them).
    colon_at: [u16; COLONS_CAP],
    colon_count: usize,
    /// Quotes, and `{}[],:` outside strings, per block: where a scalar value ends.
    ends: [u64; MAX_BLOCKS],
    skeleton_len: usize,
    skeleton: [u8; SKELETON_CAP],
    avx512: bool,
}

impl ShapeIndex {
    /// An empty index; detects the CPU features once.
    pub(crate) fn new() -> Self {
        Self {
            blocks: 0,
            len: 0,
            colons: [0; MAX_BLOCKS],
            colon_at: [0; COLONS_CAP],
            colon_count: 0,
            ends: [0; MAX_BLOCKS],
            skeleton_len: 0,
            skeleton: [0; SKELETON_CAP],
            avx512: avx512_available(),
        }
    }

    /// Indexes `buf`; false when it cannot (see the module comment).
    #[inline]
    pub(crate) fn build(&mut self, buf: &[u8]) -> bool {
        if !self.avx512 || buf.len() > MAX_LEN || buf.is_empty() {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `avx512` is true only when the CPU has every feature `build_avx512`
            // enables (checked at run time in `avx512_available`).
            unsafe { build_avx512(self, buf) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// The skeleton of the text last built.
    #[inline]
    pub(crate) fn skeleton(&self) -> &[u8] {
        self.skeleton.get(..self.skeleton_len).unwrap_or(&[])
    }

    /// The offsets of the `:`s with the first `n` of `ordinals` (ascending), each stored at
    /// the index `ids` gives beside it; `None` if the text has fewer.
    #[inline(always)]
    pub(crate) fn colons_by_id<const N: usize>(
        &self,
        ordinals: &[u16; N],
        ids: &[u8; N],
        n: usize,
    ) -> Option<[usize; N]> {
        let mut out = [0usize; N];
        // Ascending: the last is the largest.
        let last = usize::from(*ordinals.get(n.checked_sub(1)?)?);
        if last >= self.colon_count {
            return None;
        }
        for k in 0..n.min(N) {
            let at = self.colon_at.get(usize::from(ordinals[k]))?;
            *out.get_mut(usize::from(ids[k]))? = usize::from(*at);
        }
        Some(out)
    }

    /// The ordinal of the `:` at offset `at` (how many come before it), if there is one there.
    pub(crate) fn colon_ordinal(&self, at: usize) -> Option<u16> {
        let (b, bit) = (at / 64, at % 64);
        let m = *self.colons.get(b)?;
        if (m >> bit) & 1 == 0 {
            return None;
        }
        let before: u32 = self.colons.iter().take(b).map(|m| m.count_ones()).sum();
        u16::try_from(before + (m & ((1u64 << bit) - 1)).count_ones()).ok()
    }

    /// The first offset at or after `from` holding a quote or one of `{}[],:` outside strings,
    /// if there is one within 64 bytes of `from` (values the fast paths read are shorter; the
    /// caller takes its slow path otherwise). No loop, no branch on the data.
    #[inline(always)]
    pub(crate) fn end_from(&self, from: usize) -> Option<usize> {
        let (b, off) = (from / 64, from % 64);
        // The two blocks from `from`'s, as one 128-bit window (blocks past the text's last
        // may hold an earlier text's bits: anything found there is past `len`, refused below).
        let lo = u128::from(*self.ends.get(b)?);
        let hi = u128::from(self.ends.get(b + 1).copied().unwrap_or(0));
        let window = ((hi << 64) | lo) >> off;
        let at = from + window.trailing_zeros() as usize;
        (window as u64 != 0 && at < self.len).then_some(at)
    }
}

fn avx512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vbmi")
            && std::is_x86_feature_detected!("avx512vbmi2")
            && std::is_x86_feature_detected!("avx512vpopcntdq")
            && std::is_x86_feature_detected!("vpclmulqdq")
            && std::is_x86_feature_detected!("pclmulqdq")
            && std::is_x86_feature_detected!("popcnt")
            && std::is_x86_feature_detected!("bmi1")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Byte classes, looked up 64 bytes at a time (`vpermi2b` over the 128 ASCII bytes; bytes
/// from 0x80 are class 0).
mod class {
    pub(super) const QUOTE: u8 = 0x01;
    /// `{}[],:`.
    pub(super) const STRUCT: u8 = 0x02;
    pub(super) const COLON: u8 = 0x04;
    pub(super) const BACKSLASH: u8 = 0x08;
    /// A byte a JSON scalar can start with (`0-9 - t f n`). A scalar's first byte enters the
    /// skeleton as its class byte: this one, or 0 for anything else (whitespace included).
    pub(super) const SCALAR_START: u8 = 0x10;

    /// The class of each ASCII byte.
    pub(super) const TABLE: [u8; 128] = {
        let mut t = [0u8; 128];
        t[b'"' as usize] = QUOTE;
        t[b'{' as usize] = STRUCT;
        t[b'}' as usize] = STRUCT;
        t[b'[' as usize] = STRUCT;
        t[b']' as usize] = STRUCT;
        t[b',' as usize] = STRUCT;
        t[b':' as usize] = STRUCT | COLON;
        t[b'\\' as usize] = BACKSLASH;
        let mut d = b'0';
        while d <= b'9' {
            t[d as usize] = SCALAR_START;
            d += 1;
        }
        t[b'-' as usize] = SCALAR_START;
        t[b't' as usize] = SCALAR_START;
        t[b'f' as usize] = SCALAR_START;
        t[b'n' as usize] = SCALAR_START;
        t
    };
}

/// The same index built one block at a time, all its mask arithmetic in general registers:
/// the oracle [`build_avx512`] is tested against.
///
/// # Safety
/// The CPU must have every feature enabled here.
#[cfg(all(test, target_arch = "x86_64"))]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vbmi2,pclmulqdq,popcnt,bmi1")]
unsafe fn build_blockwise(ix: &mut ShapeIndex, buf: &[u8]) -> bool {
    use core::arch::x86_64::*;
    let blocks = buf.len().div_ceil(64);
    if blocks > MAX_BLOCKS {
        return false;
    }
    // SAFETY: the two 64-byte loads read the two halves of the 128-byte table.
    let (lo, hi) = unsafe {
        (
            _mm512_loadu_si512(class::TABLE.as_ptr().cast::<__m512i>()),
            _mm512_loadu_si512(class::TABLE.as_ptr().add(64).cast::<__m512i>()),
        )
    };
    let splat = |c: u8| _mm512_set1_epi8(c as i8);
    // Carries from one block to the next.
    let mut in_string = 0u64; // all ones when the previous block ended inside a string
    let mut colon_carry = 0u64; // the previous block ended with a `:`
    let mut scalar_carry = 0u64; // ... with a scalar byte
    let mut value_carry = 0u128; // ... inside a value string (the add's carry)
    let mut seen = _mm512_setzero_si512(); // every class met
    let mut out = 0usize;
    let mut colon_count = 0usize;
    // Byte offsets 0..=31 as 16-bit lanes, for the `:` offsets.
    let iota = _mm512_set_epi16(
        31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9,
        8, 7, 6, 5, 4, 3, 2, 1, 0,
    );
    for b in 0..blocks {
        let base = b * 64;
        let n = buf.len() - base;
        let live = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        // SAFETY: the mask covers only bytes inside `buf` (`base + n` is its end); masked-off
        // bytes are not read.
        let v = unsafe { _mm512_maskz_loadu_epi8(live, buf.as_ptr().add(base).cast::<i8>()) };
        let ascii = !_mm512_movepi8_mask(v);
        let cls = _mm512_maskz_permutex2var_epi8(ascii, lo, v, hi);
        seen = _mm512_or_si512(seen, cls);
        let quotes = _mm512_test_epi8_mask(cls, splat(class::QUOTE));
        let ends_raw = _mm512_test_epi8_mask(cls, splat(class::QUOTE | class::STRUCT));
        let colons_raw = _mm512_test_epi8_mask(cls, splat(class::COLON));
        // Inside strings: from an opening quote up to (not including) its closing quote.
        let clmul = _mm_clmulepi64_si128::<0>(_mm_set_epi64x(0, quotes as i64), _mm_set1_epi8(-1));
        let in_str = (_mm_cvtsi128_si64(clmul) as u64) ^ in_string;
        in_string = ((in_str as i64) >> 63) as u64;
        let colons = colons_raw & !in_str;
        // Where a scalar or a string ends: quotes, and `{}[],:` outside strings.
        let ends = (ends_raw & !in_str) | quotes;
        // Scalar bytes (whitespace included): outside strings, not structural.
        let scalar = live & !in_str & !ends;
        let starts = scalar & !((scalar << 1) | scalar_carry);
        scalar_carry = scalar >> 63;
        let after_colon = (colons << 1) | colon_carry;
        colon_carry = colons >> 63;
        // Strings that are values: their opening quote follows a `:`. Adding the opening bit
        // to the in-string run clears the run; what was cleared is the value string.
        let opens = quotes & after_colon & in_str;
        let sum = u128::from(in_str) + u128::from(opens) + value_carry;
        value_carry = sum >> 64;
        let value_strings = in_str & !(sum as u64) & !quotes;
        // The skeleton: everything but value-string contents and scalar bytes, each scalar
        // standing as its first byte's class (so that where scalars are, and whether each
        // starts like one, is part of the shape).
        let keep = live & !((scalar & !starts) | value_strings);
        let marked = _mm512_mask_blend_epi8(starts, v, cls);
        let packed = _mm512_maskz_compress_epi8(keep, marked);
        // SAFETY: `out` is at most `base` (each block keeps at most its own bytes) and
        // `base + 64 <= MAX_LEN + 64 = SKELETON_CAP`, so the 64-byte store stays inside
        // `skeleton`.
        unsafe {
            _mm512_storeu_si512(ix.skeleton.as_mut_ptr().add(out).cast::<__m512i>(), packed);
        }
        out += keep.count_ones() as usize;
        // The `:` offsets of each half block, packed, appended to `colon_at`.
        for half in 0..2 {
            let bits = (colons >> (32 * half)) as u32;
            let offsets = _mm512_add_epi16(iota, _mm512_set1_epi16((base + 32 * half) as i16));
            let packed = _mm512_maskz_compress_epi16(bits, offsets);
            // SAFETY: `colon_count` is at most `base + 32 * half` (one `:` per byte at most),
            // so the 32-lane store ends by `MAX_LEN + 32 = COLONS_CAP`.
            unsafe {
                _mm512_storeu_si512(
                    ix.colon_at.as_mut_ptr().add(colon_count).cast::<__m512i>(),
                    packed,
                );
            }
            colon_count += bits.count_ones() as usize;
        }
        ix.colons[b] = colons;
        ix.ends[b] = ends & live;
    }
    if in_string != 0 || _mm512_test_epi8_mask(seen, splat(class::BACKSLASH)) != 0 {
        return false;
    }
    ix.blocks = blocks;
    ix.len = buf.len();
    ix.skeleton_len = out;
    ix.colon_count = colon_count;
    true
}

/// Builds the index in three passes: (1) per 64-byte block, the class masks (quotes, `{}[],:`
/// and quotes, colons) by one table lookup; (2) the mask arithmetic of all blocks at once, the
/// 16 blocks' masks as the 64-bit lanes of two registers (prefix XOR by carry-less multiplies,
/// the cross-block carries by lane shifts, the value-string add as one 1024-bit addition);
/// (3) per block, the skeleton and colon offsets compressed out. Same results as
/// `build_blockwise` (the tests compare them), a third of its instructions.
///
/// # Safety
/// The CPU must have every feature enabled here.
#[cfg(target_arch = "x86_64")]
#[target_feature(
    enable = "avx512f,avx512bw,avx512vbmi,avx512vbmi2,avx512vpopcntdq,vpclmulqdq,pclmulqdq,popcnt,bmi1"
)]
unsafe fn build_avx512(ix: &mut ShapeIndex, buf: &[u8]) -> bool {
    use core::arch::x86_64::*;
    let blocks = buf.len().div_ceil(64);
    if blocks > MAX_BLOCKS {
        return false;
    }
    // SAFETY: the two 64-byte loads read the two halves of the 128-byte table.
    let (lo, hi) = unsafe {
        (
            _mm512_loadu_si512(class::TABLE.as_ptr().cast::<__m512i>()),
            _mm512_loadu_si512(class::TABLE.as_ptr().add(64).cast::<__m512i>()),
        )
    };
    let splat = |c: u8| _mm512_set1_epi8(c as i8);
    let live_of = |b: usize| {
        let n = buf.len() - b * 64;
        if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
    };
    // The block's bytes (zero past the end) and their classes.
    let classes = |b: usize| {
        // SAFETY: the mask covers only bytes inside `buf` (`b * 64 + n` is its end);
        // masked-off bytes are not read.
        let v =
            unsafe { _mm512_maskz_loadu_epi8(live_of(b), buf.as_ptr().add(b * 64).cast::<i8>()) };
        let ascii = !_mm512_movepi8_mask(v);
        (v, _mm512_maskz_permutex2var_epi8(ascii, lo, v, hi))
    };

    // Pass 1: the class masks of each block (blocks past the end stay 0).
    let (mut q, mut e, mut c, mut live) = ([0u64; 16], [0u64; 16], [0u64; 16], [0u64; 16]);
    let mut seen = _mm512_setzero_si512();
    for b in 0..blocks {
        let (_, cls) = classes(b);
        seen = _mm512_or_si512(seen, cls);
        q[b] = _mm512_test_epi8_mask(cls, splat(class::QUOTE));
        e[b] = _mm512_test_epi8_mask(cls, splat(class::QUOTE | class::STRUCT));
        c[b] = _mm512_test_epi8_mask(cls, splat(class::COLON));
        live[b] = live_of(b);
    }
    if _mm512_test_epi8_mask(seen, splat(class::BACKSLASH)) != 0 {
        return false;
    }

    // Pass 2: blocks 0..8 in `.0`, 8..16 in `.1`, one per 64-bit lane.
    // SAFETY: each load reads 8 of the 16 entries of a local array.
    let ld = |a: &[u64; 16]| unsafe {
        (
            _mm512_loadu_si512(a.as_ptr().cast::<__m512i>()),
            _mm512_loadu_si512(a.as_ptr().add(8).cast::<__m512i>()),
        )
    };
    let zero = _mm512_setzero_si512();
    let ones = _mm512_set1_epi64(-1);
    let (qa, qb) = ld(&q);
    let (ea, eb) = ld(&e);
    let (ca, cb) = ld(&c);
    let (la, lb) = ld(&live);
    // The 1024-bit value shifted up one bit: each lane takes the top bit of the one before.
    let shl1 = |a: __m512i, b: __m512i| {
        let (pa, pb) = (
            _mm512_alignr_epi64::<7>(a, zero),
            _mm512_alignr_epi64::<7>(b, a),
        );
        (
            _mm512_or_si512(_mm512_slli_epi64::<1>(a), _mm512_srli_epi64::<63>(pa)),
            _mm512_or_si512(_mm512_slli_epi64::<1>(b), _mm512_srli_epi64::<63>(pb)),
        )
    };
    // Prefix XOR within each lane (bit i: parity of bits 0..=i), by carry-less multiplies.
    let pxor = |x: __m512i| {
        _mm512_unpacklo_epi64(
            _mm512_clmulepi64_epi128::<0x00>(x, ones),
            _mm512_clmulepi64_epi128::<0x01>(x, ones),
        )
    };
    // Quote parity of the blocks before each one: inclusive prefix XOR across lanes, then
    // this lane's own parity removed.
    let one = _mm512_set1_epi64(1);
    let (pa, pb) = (
        _mm512_and_si512(_mm512_popcnt_epi64(qa), one),
        _mm512_and_si512(_mm512_popcnt_epi64(qb), one),
    );
    let scan = |x: __m512i| {
        let x = _mm512_xor_si512(x, _mm512_alignr_epi64::<7>(x, zero));
        let x = _mm512_xor_si512(x, _mm512_alignr_epi64::<6>(x, zero));
        _mm512_xor_si512(x, _mm512_alignr_epi64::<4>(x, zero))
    };
    let ia = scan(pa);
    let ib = _mm512_xor_si512(scan(pb), _mm512_permutexvar_epi64(_mm512_set1_epi64(7), ia));
    let mut inclusive = [0u64; 16];
    // SAFETY: the two stores write the 16 entries of a local array.
    unsafe {
        _mm512_storeu_si512(inclusive.as_mut_ptr().cast::<__m512i>(), ia);
        _mm512_storeu_si512(inclusive.as_mut_ptr().add(8).cast::<__m512i>(), ib);
    }
    if inclusive[blocks - 1] != 0 {
        return false; // the text ends inside a string
    }
    let carry = |i: __m512i, p: __m512i| _mm512_sub_epi64(zero, _mm512_xor_si512(i, p));
    // Inside strings: from an opening quote up to (not including) its closing quote.
    let sa = _mm512_xor_si512(pxor(qa), carry(ia, pa));
    let sb = _mm512_xor_si512(pxor(qb), carry(ib, pb));
    let (colons_a, colons_b) = (_mm512_andnot_si512(sa, ca), _mm512_andnot_si512(sb, cb));
    // Where a scalar or a string ends: quotes, and `{}[],:` outside strings.
    let (ends_a, ends_b) = (
        _mm512_or_si512(_mm512_andnot_si512(sa, ea), qa),
        _mm512_or_si512(_mm512_andnot_si512(sb, eb), qb),
    );
    // Scalar bytes (whitespace included): outside strings, not structural.
    let (scalar_a, scalar_b) = (
        _mm512_andnot_si512(_mm512_or_si512(sa, ends_a), la),
        _mm512_andnot_si512(_mm512_or_si512(sb, ends_b), lb),
    );
    let (before_a, before_b) = shl1(scalar_a, scalar_b);
    let (starts_a, starts_b) = (
        _mm512_andnot_si512(before_a, scalar_a),
        _mm512_andnot_si512(before_b, scalar_b),
    );
    let (after_a, after_b) = shl1(colons_a, colons_b);
    // Strings that are values: their opening quote follows a `:`. Adding the opening bit to
    // the in-string run clears the run; what was cleared is the value string. One 1024-bit
    // addition: lanes add, then carries ripple (`generate` lanes overflowed, `propagate`
    // lanes are all ones).
    let opens_a = _mm512_and_si512(_mm512_and_si512(qa, after_a), sa);
    let opens_b = _mm512_and_si512(_mm512_and_si512(qb, after_b), sb);
    let (xa, xb) = (_mm512_add_epi64(sa, opens_a), _mm512_add_epi64(sb, opens_b));
    let generate = u32::from(_mm512_cmplt_epu64_mask(xa, sa))
        | u32::from(_mm512_cmplt_epu64_mask(xb, sb)) << 8;
    let propagate = u32::from(_mm512_cmpeq_epi64_mask(xa, ones))
        | u32::from(_mm512_cmpeq_epi64_mask(xb, ones)) << 8;
    let carried = (propagate.wrapping_add(generate << 1) ^ propagate) & 0xFFFF;
    let (sum_a, sum_b) = (
        _mm512_mask_add_epi64(xa, carried as u8, xa, one),
        _mm512_mask_add_epi64(xb, (carried >> 8) as u8, xb, one),
    );
    let value_a = _mm512_andnot_si512(_mm512_or_si512(sum_a, qa), sa);
    let value_b = _mm512_andnot_si512(_mm512_or_si512(sum_b, qb), sb);
    // The skeleton keeps everything but value-string contents and scalar bytes other than
    // each scalar's first, which stands as its class.
    let keep_a = _mm512_andnot_si512(
        _mm512_or_si512(_mm512_andnot_si512(starts_a, scalar_a), value_a),
        la,
    );
    let keep_b = _mm512_andnot_si512(
        _mm512_or_si512(_mm512_andnot_si512(starts_b, scalar_b), value_b),
        lb,
    );
    let (mut keep, mut starts) = ([0u64; 16], [0u64; 16]);
    // SAFETY: each pair of stores writes the 16 entries of a 16-entry array.
    unsafe {
        let st = |a: *mut u64, x: __m512i, y: __m512i| {
            _mm512_storeu_si512(a.cast::<__m512i>(), x);
            _mm512_storeu_si512(a.add(8).cast::<__m512i>(), y);
        };
        st(keep.as_mut_ptr(), keep_a, keep_b);
        st(starts.as_mut_ptr(), starts_a, starts_b);
        st(ix.colons.as_mut_ptr(), colons_a, colons_b);
        st(
            ix.ends.as_mut_ptr(),
            _mm512_and_si512(ends_a, la),
            _mm512_and_si512(ends_b, lb),
        );
    }

    // Pass 3: the skeleton and the colon offsets, block by block.
    let mut out = 0usize;
    let mut colon_count = 0usize;
    // Byte offsets 0..=31 as 16-bit lanes, for the `:` offsets.
    let iota = _mm512_set_epi16(
        31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9,
        8, 7, 6, 5, 4, 3, 2, 1, 0,
    );
    for b in 0..blocks {
        let base = b * 64;
        let (v, cls) = classes(b);
        let marked = _mm512_mask_blend_epi8(starts[b], v, cls);
        let packed = _mm512_maskz_compress_epi8(keep[b], marked);
        // SAFETY: `out` is at most `base` (each block keeps at most its own bytes) and
        // `base + 64 <= MAX_LEN + 64 = SKELETON_CAP`, so the 64-byte store stays inside
        // `skeleton`.
        unsafe {
            _mm512_storeu_si512(ix.skeleton.as_mut_ptr().add(out).cast::<__m512i>(), packed);
        }
        out += keep[b].count_ones() as usize;
        let colons = ix.colons[b];
        for half in 0..2 {
            let bits = (colons >> (32 * half)) as u32;
            let offsets = _mm512_add_epi16(iota, _mm512_set1_epi16((base + 32 * half) as i16));
            let packed = _mm512_maskz_compress_epi16(bits, offsets);
            // SAFETY: `colon_count` is at most `base + 32 * half` (one `:` per byte at most),
            // so the 32-lane store ends by `MAX_LEN + 32 = COLONS_CAP`.
            unsafe {
                _mm512_storeu_si512(
                    ix.colon_at.as_mut_ptr().add(colon_count).cast::<__m512i>(),
                    packed,
                );
            }
            colon_count += bits.count_ones() as usize;
        }
    }
    ix.blocks = blocks;
    ix.len = buf.len();
    ix.skeleton_len = out;
    ix.colon_count = colon_count;
    true
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Both builders on `text`: the same answer and, when they index it, the same index.
    fn same(text: &[u8]) -> bool {
        if !avx512_available() || text.is_empty() || text.len() > MAX_LEN {
            return false;
        }
        let (mut a, mut b) = (ShapeIndex::new(), ShapeIndex::new());
        // SAFETY: `avx512_available()` said the CPU has every feature both enable.
        let (ra, rb) = unsafe { (build_avx512(&mut a, text), build_blockwise(&mut b, text)) };
        let shown = text.escape_ascii().to_string();
        assert_eq!(ra, rb, "{shown}");
        if !ra {
            return false;
        }
        assert_eq!(a.skeleton(), b.skeleton(), "{shown}");
        assert_eq!((a.blocks, a.len), (b.blocks, b.len), "{shown}");
        assert_eq!(a.colons[..a.blocks], b.colons[..b.blocks], "{shown}");
        assert_eq!(a.ends[..a.blocks], b.ends[..b.blocks], "{shown}");
        assert_eq!(
            a.colon_at[..a.colon_count],
            b.colon_at[..b.colon_count],
            "{shown}"
        );
        for from in 0..text.len() {
            assert_eq!(a.end_from(from), b.end_from(from), "{from} {shown}");
        }
        true
    }

    /// A random JSON-ish text: objects, arrays, strings holding structural bytes, numbers and
    /// literals, with a stray byte now and then (both builders must agree on anything).
    fn text(rng: &mut u64, out: &mut Vec<u8>, depth: u32) {
        let mut next = |n: u64| {
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            *rng % n
        };
        match if depth > 3 { 2 + next(4) } else { next(6) } {
            0 | 1 => {
                let (open, close) = if next(2) == 0 {
                    (b'{', b'}')
                } else {
                    (b'[', b']')
                };
                out.push(open);
                for k in 0..next(6) {
                    if k > 0 {
                        out.push(b',');
                    }
                    if open == b'{' {
                        out.extend_from_slice(b"\"key");
                        out.push(b'a' + next(26) as u8);
                        out.extend_from_slice(b"\":");
                    }
                    let mut r = next(u64::MAX);
                    text(&mut r, out, depth + 1);
                }
                out.push(close);
            }
            2 | 3 => {
                out.push(b'"');
                let alphabet = b"ab:,{}[] x\xc3\xa9-0";
                for _ in 0..next(90) {
                    out.push(alphabet[next(alphabet.len() as u64) as usize]);
                }
                out.push(b'"');
            }
            4 => {
                out.extend_from_slice(["12.5", "-0.001", "1e-05", "0"][next(4) as usize].as_bytes())
            }
            _ => out.extend_from_slice(
                ["true", "null", "false", " 7 ", "x"][next(5) as usize].as_bytes(),
            ),
        }
        if next(40) == 0 {
            let stray = b"\"\\:,{} \n\x80x";
            out.push(stray[next(stray.len() as u64) as usize]);
        }
    }

    #[test]
    fn three_passes_match_the_blockwise_build() {
        let mut rng = 0x2545_F491_4F6C_DD1D_u64;
        let mut buf = Vec::new();
        let (mut indexed, mut long_ones) = (0, 0);
        for _ in 0..20_000 {
            buf.clear();
            let mut r = rng;
            text(&mut r, &mut buf, 0);
            rng = r.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            if same(&buf) {
                indexed += 1;
                long_ones += usize::from(buf.len() > 128);
            }
            // Every prefix length around block boundaries too.
            for cut in [63, 64, 65, 127, 128, 129] {
                if let Some(p) = buf.get(..cut) {
                    same(p);
                }
            }
        }
        let ticker = br#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-26JUN26-100000-C.100ms","data":{"timestamp":1752057345721,"state":"open","stats":{"high":null,"low":null,"price_change":null,"volume":0,"volume_usd":0},"greeks":{"delta":0.71138,"gamma":1e-05,"vega":389.29255,"theta":-25.13021,"rho":524.77921},"index_price":108827.5,"instrument_name":"BTC-26JUN26-100000-C","last_price":0.247,"settlement_price":0.24231149,"min_price":0.1975,"max_price":0.3015,"open_interest":1.2,"mark_price":0.2425,"best_bid_price":0.2395,"mark_iv":45.43,"ask_iv":46.18,"bid_iv":44.54,"underlying_price":116086.34,"underlying_index":"BTC-26JUN26","best_ask_price":0.245,"interest_rate":0,"estimated_delivery_price":108827.5,"best_ask_amount":2,"best_bid_amount":2}}}"#;
        if avx512_available() {
            assert!(
                indexed > 5_000 && long_ones > 1_000,
                "{indexed} {long_ones}"
            );
            assert!(same(ticker));
        }
        for len in 1..=ticker.len() {
            same(&ticker[..len]);
        }
        // A string value across several blocks (the 1024-bit add's carry ripples).
        let mut long = b"{\"a\":\"".to_vec();
        long.extend(std::iter::repeat_n(b'x', 300));
        long.extend_from_slice(b"\",\"b\":1}");
        assert_eq!(same(&long), avx512_available());
    }
}
