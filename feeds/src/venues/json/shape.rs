//! The skeleton of a JSON text, for a cache of message shapes: everything but the value
//! contents (the bytes of scalar values and the contents of strings that follow a `:`),
//! compressed into one byte string, plus the positions of the `:`s and of the bytes that can end
//! a value. Two texts with the same skeleton have the same keys, in the same order, with the
//! same nesting and the same whitespace; only their values differ, and the n-th `:` of one
//! introduces the same member as the n-th `:` of the other. A parser that walked one text
//! (checking everything) can then read another of the same skeleton by `:` ordinals alone.
//!
//! Owns only that index. Built 64 bytes at a time with AVX-512 (VBMI2 `vpcompressb` for the
//! skeleton), chosen at run time; [`ShapeIndex::build`] answers false, and the caller takes its
//! other path, on a CPU without it, on texts longer than [`MAX_LEN`], on any backslash, when a
//! scalar appears anywhere but right after a `:`, starts with a byte no JSON scalar starts
//! with, or is not followed at once by `,`, `}` or `]`, and when the text ends inside a string. Never allocates (the index lives in its owner, built once).

/// Longest text indexed.
pub(crate) const MAX_LEN: usize = MAX_BLOCKS * 64;
const MAX_BLOCKS: usize = 16;
/// Skeleton buffer: room for a whole 64-byte store past the last byte written.
const SKELETON_CAP: usize = MAX_LEN + 64;

/// The index of one text.
#[derive(Clone)]
pub(crate) struct ShapeIndex {
    blocks: usize,
    len: usize,
    /// `:` outside strings, per block.
    colons: [u64; MAX_BLOCKS],
    /// Quotes, and `{}[],:` outside strings, per block: where a scalar value ends.
    ends: [u64; MAX_BLOCKS],
    /// Whether some `:` is followed by whitespace (such texts are not learned).
    ws_after_colon: bool,
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
            ends: [0; MAX_BLOCKS],
            ws_after_colon: false,
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

    /// True when no `:` of the text is followed by whitespace.
    #[inline]
    pub(crate) fn compact_after_colons(&self) -> bool {
        !self.ws_after_colon
    }

    /// The offsets of the `:`s with the given ordinals (ascending), into `out`; false if the
    /// text has fewer.
    #[inline]
    pub(crate) fn colons_at(&self, ordinals: &[u16], out: &mut [usize]) -> bool {
        let mut k = 0;
        let mut before = 0u32;
        for (b, &m) in self.colons.iter().enumerate().take(self.blocks) {
            let n = m.count_ones();
            while let Some(&ord) = ordinals.get(k) {
                let ord = u32::from(ord);
                if ord >= before + n {
                    break;
                }
                let bit = select(m, ord - before);
                if let Some(slot) = out.get_mut(k) {
                    *slot = b * 64 + bit as usize;
                }
                k += 1;
            }
            before += n;
        }
        k == ordinals.len()
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

    /// The first offset at or after `from` holding a quote or one of `{}[],:` outside strings.
    #[inline(always)]
    pub(crate) fn end_from(&self, from: usize) -> Option<usize> {
        let mut b = from / 64;
        let mut m = self.ends.get(b)? & (u64::MAX << (from % 64));
        while m == 0 {
            b += 1;
            if b >= self.blocks {
                return None;
            }
            m = self.ends[b];
        }
        let at = b * 64 + m.trailing_zeros() as usize;
        (at < self.len).then_some(at)
    }
}

/// The position of the `n`-th (from 0) set bit of `m` (`m` has more than `n`).
#[inline(always)]
fn select(mut m: u64, n: u32) -> u32 {
    for _ in 0..n {
        m &= m.wrapping_sub(1);
    }
    m.trailing_zeros()
}

fn avx512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
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

/// # Safety
/// The CPU must have every feature enabled here.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi2,pclmulqdq,popcnt,bmi1")]
unsafe fn build_avx512(ix: &mut ShapeIndex, buf: &[u8]) -> bool {
    use core::arch::x86_64::*;
    let splat = |c: u8| _mm512_set1_epi8(c as i8);
    let blocks = buf.len().div_ceil(64);
    if blocks > MAX_BLOCKS {
        return false;
    }
    // Carries from one block to the next.
    let mut in_string = 0u64; // all ones when the previous block ended inside a string
    let mut colon_carry = 0u64; // the previous block ended with a `:`
    let mut scalar_carry = 0u64; // ... with a scalar byte
    let mut value_carry = 0u64; // ... inside a value string (the add's carry)
    let mut ws_after_colon = 0u64;
    let mut out = 0usize;
    for b in 0..blocks {
        let base = b * 64;
        let n = buf.len() - base;
        let live = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        // SAFETY: the mask covers only bytes inside `buf` (`base + n` is its end); masked-off
        // bytes are not read.
        let v = unsafe { _mm512_maskz_loadu_epi8(live, buf.as_ptr().add(base).cast::<i8>()) };
        let eq = |c: u8| _mm512_cmpeq_epi8_mask(v, splat(c));
        if eq(b'\\') != 0 {
            return false;
        }
        let quotes = eq(b'"');
        let folded = _mm512_or_si512(v, splat(0x20));
        let brackets = _mm512_cmpeq_epi8_mask(folded, splat(b'{'))
            | _mm512_cmpeq_epi8_mask(folded, splat(b'}'));
        let colons_raw = eq(b':');
        let ws = eq(b' ') | eq(b'\n') | eq(b'\r') | eq(b'\t');
        // Inside strings: from an opening quote up to (not including) its closing quote.
        let clmul = _mm_clmulepi64_si128::<0>(_mm_set_epi64x(0, quotes as i64), _mm_set1_epi8(-1));
        let in_str = (_mm_cvtsi128_si64(clmul) as u64) ^ in_string;
        in_string = ((in_str as i64) >> 63) as u64;
        let outside = !in_str;
        let colons = colons_raw & outside;
        let ops = (brackets | eq(b',') | colons_raw) & outside;
        let ends = ops | quotes;
        // Scalar bytes: outside strings, not structural, not whitespace.
        let scalar = live & outside & !ends & !ws;
        let after_colon = (colons << 1) | colon_carry;
        colon_carry = colons >> 63;
        let before = (scalar << 1) | scalar_carry;
        let starts = scalar & !before;
        scalar_carry = scalar >> 63;
        // A scalar is a whole value: right after it comes `,`, `}` or `]` (so that no scalar
        // can hide in front of a string or a bracket, where the skeleton would not see it).
        let closers = (eq(b',') | eq(b'}') | eq(b']')) & outside;
        if before & !scalar & !closers != 0 {
            return false;
        }
        // A scalar starts right after a `:`, with a byte a JSON scalar can start with.
        let digit = _mm512_cmplt_epu8_mask(_mm512_sub_epi8(v, splat(b'0')), splat(10));
        let first_ok = digit | eq(b'-') | eq(b't') | eq(b'f') | eq(b'n');
        if starts & !(after_colon & first_ok) != 0 {
            return false;
        }
        ws_after_colon |= after_colon & ws;
        // Strings that are values: their opening quote follows a `:`. Adding the opening bit
        // to the in-string run clears the run; what was cleared is the value string.
        let opens = quotes & after_colon & in_str;
        let (s1, c1) = in_str.overflowing_add(opens);
        let (sum, c2) = s1.overflowing_add(value_carry);
        value_carry = u64::from(c1 | c2);
        let value_strings = in_str & !sum & !quotes;
        let keep = live & !scalar & !value_strings;
        let packed = _mm512_maskz_compress_epi8(keep, v);
        // SAFETY: `out` is at most `base` (each block keeps at most its own bytes) and
        // `base + 64 <= MAX_LEN + 64 = SKELETON_CAP`, so the 64-byte store stays inside
        // `skeleton`.
        unsafe {
            _mm512_storeu_si512(ix.skeleton.as_mut_ptr().add(out).cast::<__m512i>(), packed);
        }
        out += keep.count_ones() as usize;
        ix.colons[b] = colons;
        ix.ends[b] = ends & live;
    }
    if in_string != 0 {
        return false;
    }
    ix.blocks = blocks;
    ix.len = buf.len();
    ix.skeleton_len = out;
    ix.ws_after_colon = ws_after_colon != 0;
    true
}
