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

    /// The offsets of the `:`s with the given ordinals, into `out`; false if the text has
    /// fewer.
    #[inline(always)]
    pub(crate) fn colons_at(&self, ordinals: &[u16], out: &mut [usize]) -> bool {
        let offsets = self.colon_at.get(..self.colon_count).unwrap_or(&[]);
        let mut ok = true;
        for (slot, &ord) in out.iter_mut().zip(ordinals) {
            match offsets.get(usize::from(ord)) {
                Some(&at) => *slot = usize::from(at),
                None => ok = false,
            }
        }
        ok
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

/// # Safety
/// The CPU must have every feature enabled here.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vbmi2,pclmulqdq,popcnt,bmi1")]
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
