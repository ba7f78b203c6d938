//! Message templates: a JSON text learned once as literal runs and value holes, against which
//! later texts of the same shape are matched without indexing their structure.
//!
//! A venue sends every message of a stream with the same keys in the same order; only the
//! values change. A [`Template`] keeps a text that a strict reader accepted as its literals
//! (everything but the values: keys, brackets, `,` and `:`, the quotes around string values)
//! and its holes (the scalar values and the contents of the string values). Matching a new
//! text guesses where each hole starts from the positions of its `:`s (the k-th hole follows
//! the same `:` ordinal in every text of the shape, found 64 bytes at a time), then checks
//! that guess completely:
//!
//! 1. every literal is at the place the guess gives it, byte for byte, the first at offset 0
//!    and the last ending the text, each hole between two literals non-negative in length
//!    (a scalar hole at least one byte);
//! 2. the text holds exactly as many bytes of `"{}[],:` as the template, all of them in the
//!    literals (so no hole holds one: a string hole is one string without quotes, a scalar
//!    hole one token), and no backslash at all.
//!
//! When both hold, the text *is* the template with other hole contents: the same members, in
//! the same order, with the same nesting, each value of the same kind. The guess never
//! decides correctness, only whether the match succeeds; a text with a `:` or a `"` in a string
//! value, a reordered or missing key, whitespace where the template has none, simply does not
//! match, and the caller takes its general path. What a hole holds (a number, `null`, a token
//! starting like no scalar) is for the caller to check as it reads the values it needs.
//!
//! Owns only the templates and the matching. Never allocates (templates and the index live in
//! their owner, built once), never reads outside the text: each load is a masked AVX-512 load
//! of bytes the checks above have already placed inside it. Built where the compiler targets
//! AVX-512 with VBMI2 (the workspace's `target-cpu=native` on Zen 4/5 and Ice Lake or later);
//! elsewhere [`TextIndex::build`] answers false and callers keep their other path.

/// Longest text matched.
pub(crate) const MAX_LEN: usize = 1024;
/// Most holes in a template (Deribit's option ticker has 34).
pub(crate) const MAX_HOLES: usize = 48;
/// Hole lanes: two 512-bit vectors of 16-bit lanes.
const LANES: usize = 64;
/// Most `:`s in a template (each hole's `:` ordinal is a lane index).
const MAX_COLONS: usize = 64;
/// Longest literal between two holes (Deribit's longest is 28 bytes).
const MAX_LITERAL: usize = 32;

/// The bytes that end a value or separate members: `"{}[],:`.
#[inline(always)]
const fn is_end(b: u8) -> bool {
    matches!(b, b'"' | b'{' | b'}' | b'[' | b']' | b',' | b':')
}

/// A byte a JSON scalar can start with.
#[inline(always)]
pub(crate) const fn starts_scalar(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'-' | b't' | b'f' | b'n')
}

/// What a hole holds in the template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hole {
    /// A scalar token (number or literal), which follows its `:` at once.
    Scalar,
    /// The contents of a string, whose opening quote follows its `:` at once.
    String,
}

/// A learned text: its literals (each in a 32-byte slot) and its holes, the per-hole numbers
/// laid out as 16-bit vector lanes.
#[derive(Clone)]
#[repr(C, align(64))]
pub(crate) struct Template {
    /// Per hole (lane k): the ordinal of the `:` it follows, the distance from that `:` to its
    /// first byte (1 for a scalar, 2 for a string's contents), its least length (1 for a
    /// scalar) and the length of the literal after it.
    ordinal: [u16; LANES],
    offset: [u16; LANES],
    min_len: [u16; LANES],
    next_literal: [u16; LANES],
    /// Literal k precedes hole k; literal `holes` ends the text.
    literals: [[u8; MAX_LITERAL]; MAX_HOLES + 1],
    /// Per literal: one bit per byte.
    literal_mask: [u32; MAX_HOLES + 1],
    kind: [Hole; MAX_HOLES],
    holes: usize,
    /// `"{}[],:` bytes in the text.
    ends: usize,
    colons: usize,
    /// Offset of each hole's first byte in the learned text (for callers mapping their fields).
    learned_at: [u16; MAX_HOLES],
}

impl Template {
    /// An empty template (matches nothing).
    pub(crate) const EMPTY: Self = Self {
        ordinal: [0; LANES],
        offset: [0; LANES],
        min_len: [0; LANES],
        next_literal: [0; LANES],
        literals: [[0; MAX_LITERAL]; MAX_HOLES + 1],
        literal_mask: [0; MAX_HOLES + 1],
        kind: [Hole::Scalar; MAX_HOLES],
        holes: 0,
        ends: usize::MAX,
        colons: 0,
        learned_at: [0; MAX_HOLES],
    };

    /// Learns `text`, which the caller's strict reader accepted. `None` (the text is not made
    /// into a template) when it is longer than [`MAX_LEN`], holds a backslash, whitespace
    /// outside strings or a `:` inside one, a scalar anywhere but right after a `:` (in an
    /// array), a string value holding one of `"{}[],`, more than 64 `:`s, a literal longer
    /// than 32 bytes or more than [`MAX_HOLES`] holes. Cold: once per new shape.
    #[cold]
    pub(crate) fn learn(text: &[u8]) -> Option<Self> {
        if text.len() > MAX_LEN || text.is_empty() || text.contains(&b'\\') {
            return None;
        }
        let mut t = Self::EMPTY;
        t.ends = 0;
        let (mut i, mut lit_start, mut colons) = (0usize, 0usize, 0usize);
        let mut prev = 0u8; // the last byte outside a string (or a string's closing quote)
        while let Some(&b) = text.get(i) {
            if b == b'"' {
                // A string: a value if it follows a `:` at once, else a key (or an array
                // element), which stays in the literal.
                let close = i + 1 + text.get(i + 1..)?.iter().position(|&c| c == b'"')?;
                let contents = text.get(i + 1..close)?;
                if prev == b':' {
                    if contents.iter().any(|&c| is_end(c)) {
                        return None;
                    }
                    t.hole(text, lit_start, i + 1, Hole::String, colons - 1)?;
                    lit_start = close;
                } else if contents.contains(&b':') {
                    return None;
                } else {
                    // `"{}[],` inside a key count in every text's index too.
                    t.ends += contents.iter().filter(|&&c| is_end(c)).count();
                }
                t.ends += 2;
                prev = b'"';
                i = close + 1;
                continue;
            }
            if is_end(b) {
                t.ends += 1;
                colons += usize::from(b == b':');
                prev = b;
                i += 1;
                continue;
            }
            if prev != b':' || !starts_scalar(b) {
                return None; // whitespace, a scalar in an array, a stray byte
            }
            // A scalar right after a `:`: up to the next `"{}[],:`.
            let end = i + text.get(i..)?.iter().position(|&c| is_end(c))?;
            if text.get(i..end)?.iter().any(|c| c.is_ascii_whitespace()) {
                return None;
            }
            t.hole(text, lit_start, i, Hole::Scalar, colons - 1)?;
            lit_start = end;
            prev = 0;
            i = end;
        }
        if colons > MAX_COLONS || t.holes == 0 {
            return None;
        }
        t.literal(t.holes, text.get(lit_start..)?)?;
        for k in 0..t.holes {
            t.next_literal[k] = u16::from(t.literal_mask[k + 1].count_ones() as u8);
        }
        t.colons = colons;
        Some(t)
    }

    /// Sets literal `k`.
    fn literal(&mut self, k: usize, lit: &[u8]) -> Option<()> {
        self.literals
            .get_mut(k)?
            .get_mut(..lit.len())?
            .copy_from_slice(lit);
        self.literal_mask[k] = ((1u64 << lit.len()) - 1) as u32;
        Some(())
    }

    /// Appends the hole starting at `start` after the `:` numbered `ordinal` (ending the
    /// literal begun at `lit_start`).
    fn hole(
        &mut self,
        text: &[u8],
        lit_start: usize,
        start: usize,
        kind: Hole,
        ordinal: usize,
    ) -> Option<()> {
        let k = self.holes;
        if k == MAX_HOLES || ordinal >= MAX_COLONS {
            return None;
        }
        self.literal(k, text.get(lit_start..start)?)?;
        self.ordinal[k] = ordinal as u16;
        (self.offset[k], self.min_len[k]) = match kind {
            Hole::Scalar => (1, 1),
            Hole::String => (2, 0),
        };
        self.kind[k] = kind;
        self.learned_at[k] = u16::try_from(start).ok()?;
        self.holes += 1;
        Some(())
    }

    /// Holes in the template.
    #[cfg(test)]
    pub(crate) fn holes(&self) -> usize {
        self.holes
    }

    /// The hole whose first byte was at `at` in the learned text, if one was.
    pub(crate) fn hole_at(&self, at: usize) -> Option<usize> {
        self.learned_at
            .get(..self.holes)?
            .iter()
            .position(|&s| usize::from(s) == at)
    }

    /// What hole `k` holds.
    #[inline(always)]
    pub(crate) fn kind(&self, k: usize) -> Option<Hole> {
        self.kind.get(..self.holes)?.get(k).copied()
    }
}

/// Where each hole of a matched text is: `start[k]..end[k]`.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct Holes {
    pub(crate) start: [u16; LANES],
    pub(crate) end: [u16; LANES],
}

impl Holes {
    pub(crate) const NONE: Self = Self {
        start: [0; LANES],
        end: [0; LANES],
    };

    /// Hole `k`'s bytes in `buf` (the text matched).
    #[inline(always)]
    pub(crate) fn bytes<'a>(&self, buf: &'a [u8], k: usize) -> Option<&'a [u8]> {
        let (s, e) = (*self.start.get(k)?, *self.end.get(k)?);
        buf.get(usize::from(s)..usize::from(e))
    }
}

impl Holes {
    /// The starts and ends of the sixteen holes `idx` names (each below 64).
    #[inline(always)]
    pub(crate) fn gather16(&self, idx: &[u16; 16]) -> ([u16; 16], [u16; 16]) {
        #[cfg(all(keel_avx512, target_feature = "avx512vbmi2"))]
        {
            use core::arch::x86_64::*;
            let (mut s, mut e) = ([0u16; 16], [0u16; 16]);
            // SAFETY: the features are enabled by the `cfg`; the loads read the 64 entries of
            // `start` and `end` and the 16 of `idx`, the stores write the 16 of `s` and `e`.
            unsafe {
                let i = _mm512_castsi256_si512(_mm256_loadu_si256(idx.as_ptr().cast()));
                let pick = |a: &[u16; LANES]| {
                    _mm512_castsi512_si256(_mm512_permutex2var_epi16(
                        _mm512_loadu_si512(a.as_ptr().cast()),
                        i,
                        _mm512_loadu_si512(a.as_ptr().add(32).cast()),
                    ))
                };
                _mm256_storeu_si256(s.as_mut_ptr().cast(), pick(&self.start));
                _mm256_storeu_si256(e.as_mut_ptr().cast(), pick(&self.end));
            }
            (s, e)
        }
        #[cfg(not(all(keel_avx512, target_feature = "avx512vbmi2")))]
        {
            let pick = |a: &[u16; LANES]| idx.map(|k| a[usize::from(k) % LANES]);
            (pick(&self.start), pick(&self.end))
        }
    }
}

/// Byte classes by nibble lookups (`vpshufb`): a byte's class is its low nibble's entry AND its
/// high nibble's (bytes from 0x80 are class 0).
mod class {
    /// `"` and `,`.
    pub(super) const QUOTE_COMMA: u8 = 0x01;
    pub(super) const COLON: u8 = 0x02;
    /// `{}[]`.
    pub(super) const BRACKET: u8 = 0x04;
    pub(super) const BACKSLASH: u8 = 0x08;
    /// Scalar starts: digits, `-`, `t`, `f` and `n`.
    const DIGIT: u8 = 0x10;
    const MINUS: u8 = 0x20;
    const T: u8 = 0x40;
    const F_N: u8 = 0x80;
    pub(super) const END: u8 = QUOTE_COMMA | COLON | BRACKET;
    /// What may follow a `:` in a matched text: a scalar start or one of `"{}[],:` (only `"`,
    /// `{` or `[` pass the template's other checks).
    pub(super) const AFTER_COLON: u8 = END | DIGIT | MINUS | T | F_N;

    pub(super) const LOW: [u8; 16] = {
        let mut t = [0u8; 16];
        let mut d = 0;
        while d < 10 {
            t[d] = DIGIT;
            d += 1;
        }
        t[0x2] |= QUOTE_COMMA;
        t[0x4] |= T;
        t[0x6] |= F_N;
        t[0xA] = COLON;
        t[0xB] = BRACKET;
        t[0xC] = QUOTE_COMMA | BACKSLASH;
        t[0xD] = BRACKET | MINUS;
        t[0xE] = F_N;
        t
    };
    pub(super) const HIGH: [u8; 16] = {
        let mut t = [0u8; 16];
        t[0x2] = QUOTE_COMMA | MINUS;
        t[0x3] = COLON | DIGIT;
        t[0x5] = BRACKET | BACKSLASH;
        t[0x6] = F_N;
        t[0x7] = BRACKET | T;
        t
    };
}

/// What matching needs of one text: the positions of its `:`s, its count of `"{}[],:` bytes,
/// whether it holds a backslash, and whether every `:` is followed by a byte that can start a
/// value. Unlike a structural index it knows nothing of strings (a `:` inside one counts
/// too): the template's checks make that irrelevant.
#[repr(C, align(64))]
pub(crate) struct TextIndex {
    /// `:` offsets in order; room for whole 32-lane stores past the last, and for reading
    /// the first [`MAX_COLONS`] whatever the count.
    colon_at: [u16; MAX_LEN + 64],
    colons: usize,
    ends: usize,
}

impl TextIndex {
    pub(crate) fn new() -> Self {
        Self {
            colon_at: [0; MAX_LEN + 64],
            colons: 0,
            ends: 0,
        }
    }

    /// Indexes `buf`; false (match nothing) when it is longer than [`MAX_LEN`], holds a
    /// backslash or a `:` followed by a byte that can start no value, or the build has no
    /// AVX-512.
    #[inline(always)]
    pub(crate) fn build(&mut self, buf: &[u8]) -> bool {
        #[cfg(all(keel_avx512, target_feature = "avx512vbmi2"))]
        {
            self.build_avx512(buf)
        }
        #[cfg(not(all(keel_avx512, target_feature = "avx512vbmi2")))]
        {
            let _ = buf;
            false
        }
    }

    #[cfg(all(keel_avx512, target_feature = "avx512vbmi2"))]
    #[inline(always)]
    fn build_avx512(&mut self, buf: &[u8]) -> bool {
        use core::arch::x86_64::*;
        if buf.len() > MAX_LEN || buf.is_empty() {
            return false;
        }
        let blocks = buf.len().div_ceil(64);
        let (mut colons, mut ends) = (0usize, 0usize);
        let (mut carry, mut bad) = (0u64, 0u64);
        // SAFETY: every intrinsic needs only features the `cfg` above guarantees the build
        // enables. Block b's load is masked to the bytes of `buf` from `b * 64` (`live`:
        // masked-off bytes are not read). The offset stores write 32 lanes at `colons`, which
        // is at most `b * 64 + 32 * half` (one `:` per byte at most) <= `MAX_LEN`, inside
        // `colon_at` (`MAX_LEN + 64` entries).
        let seen = unsafe {
            let iota = _mm512_set_epi16(
                31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
                10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
            );
            let table = |t: &[u8; 16]| _mm512_broadcast_i32x4(_mm_loadu_si128(t.as_ptr().cast()));
            let (low, high) = (table(&class::LOW), table(&class::HIGH));
            let nibble = _mm512_set1_epi8(0x0F);
            let splat = |c: u8| _mm512_set1_epi8(c as i8);
            let mut seen = _mm512_setzero_si512();
            let out = self.colon_at.as_mut_ptr();
            for b in 0..blocks {
                let base = b * 64;
                let n = buf.len() - base;
                let live = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
                let v = _mm512_maskz_loadu_epi8(live, buf.as_ptr().add(base).cast::<i8>());
                let cls = _mm512_and_si512(
                    _mm512_shuffle_epi8(low, _mm512_and_si512(v, nibble)),
                    _mm512_shuffle_epi8(high, _mm512_and_si512(_mm512_srli_epi16::<4>(v), nibble)),
                );
                seen = _mm512_or_si512(seen, cls);
                let end = _mm512_test_epi8_mask(cls, splat(class::END));
                let colon = _mm512_test_epi8_mask(cls, splat(class::COLON));
                let value = _mm512_test_epi8_mask(cls, splat(class::AFTER_COLON));
                bad |= ((colon << 1) | carry) & !value;
                carry = colon >> 63;
                ends += end.count_ones() as usize;
                for half in 0..2 {
                    let bits = (colon >> (32 * half)) as u32;
                    let offsets =
                        _mm512_add_epi16(iota, _mm512_set1_epi16((base + 32 * half) as i16));
                    _mm512_storeu_si512(
                        out.add(colons).cast::<__m512i>(),
                        _mm512_maskz_compress_epi16(bits, offsets),
                    );
                    colons += bits.count_ones() as usize;
                }
            }
            _mm512_test_epi8_mask(seen, splat(class::BACKSLASH))
        };
        self.colons = colons;
        self.ends = ends;
        // A `:` ending the text is followed by nothing.
        (seen | bad | carry) == 0
    }

    /// Matches `buf` (just indexed) against `t`; on success `holes` has every hole's place.
    #[inline(always)]
    pub(crate) fn matches(&self, t: &Template, buf: &[u8], holes: &mut Holes) -> bool {
        #[cfg(all(keel_avx512, target_feature = "avx512vbmi2"))]
        {
            use core::arch::x86_64::*;
            let n = t.holes;
            if n == 0 || n > MAX_HOLES || self.colons != t.colons || self.ends != t.ends {
                return false;
            }
            let len = buf.len() as u16; // at most `MAX_LEN` (indexed)
            let active = (1u64 << n) - 1;
            let last = 1u64 << (n - 1);
            // SAFETY: the features are enabled by the `cfg`. The vector loads and stores read
            // and write whole 64-lane arrays of `t`, `self` and `holes` (two 32-lane halves
            // each). Each literal load reads `buf[at..at + len]` (masked to those bytes) only
            // after the checks below placed it inside `buf`: literal 0 is `buf[..start[0]]`,
            // literal k ends at hole k's start, the last at `buf.len()`, each start at most
            // the next, which is at most `buf.len()`.
            unsafe {
                let ld = |a: &[u16; LANES]| {
                    (
                        _mm512_loadu_si512(a.as_ptr().cast::<__m512i>()),
                        _mm512_loadu_si512(a.as_ptr().add(32).cast::<__m512i>()),
                    )
                };
                let (c0, c1) = ld(&*(self.colon_at.as_ptr().cast::<[u16; LANES]>()));
                let (o0, o1) = ld(&t.ordinal);
                let (f0, f1) = ld(&t.offset);
                let (m0, m1) = ld(&t.min_len);
                let (l0, l1) = ld(&t.next_literal);
                // The guess: each hole starts just after its `:` (its quote, for a string).
                let s0 = _mm512_add_epi16(_mm512_permutex2var_epi16(c0, o0, c1), f0);
                let s1 = _mm512_add_epi16(_mm512_permutex2var_epi16(c0, o1, c1), f1);
                // Each hole ends where the next literal starts; the last literal ends the text.
                let next_idx = _mm512_set_epi16(
                    32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13,
                    12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1,
                );
                let lenv = _mm512_set1_epi16(len as i16);
                let n0 = _mm512_mask_mov_epi16(
                    _mm512_permutex2var_epi16(s0, next_idx, s1),
                    last as u32,
                    lenv,
                );
                let n1 = _mm512_mask_mov_epi16(
                    _mm512_permutex2var_epi16(s1, next_idx, _mm512_setzero_si512()),
                    (last >> 32) as u32,
                    lenv,
                );
                let e0 = _mm512_sub_epi16(n0, l0);
                let e1 = _mm512_sub_epi16(n1, l1);
                // No wrap (`next >= literal`), `end >= start + least length`, `next <= len`.
                let good = |n: __m512i, l: __m512i, e: __m512i, s: __m512i, m: __m512i| {
                    u64::from(
                        _mm512_cmpge_epu16_mask(n, l)
                            & _mm512_cmpge_epu16_mask(e, _mm512_add_epi16(s, m))
                            & _mm512_cmple_epu16_mask(n, lenv),
                    )
                };
                let ok = good(n0, l0, e0, s0, m0) | (good(n1, l1, e1, s1, m1) << 32);
                _mm512_storeu_si512(holes.start.as_mut_ptr().cast::<__m512i>(), s0);
                _mm512_storeu_si512(holes.start.as_mut_ptr().add(32).cast::<__m512i>(), s1);
                _mm512_storeu_si512(holes.end.as_mut_ptr().cast::<__m512i>(), e0);
                _mm512_storeu_si512(holes.end.as_mut_ptr().add(32).cast::<__m512i>(), e1);
                let first = _mm_cvtsi128_si32(_mm512_castsi512_si128(s0)) as u16;
                if ok & active != active || u32::from(first) != t.literal_mask[0].count_ones() {
                    return false;
                }
                // Every literal at its place.
                let p = buf.as_ptr();
                let lit = |k: usize, at: usize| {
                    let mask = t.literal_mask[k];
                    let v = _mm256_maskz_loadu_epi8(mask, p.add(at).cast::<i8>());
                    let want = _mm256_loadu_si256(t.literals[k].as_ptr().cast::<__m256i>());
                    _mm256_mask_cmpneq_epi8_mask(mask, v, want)
                };
                let mut diff = lit(0, 0);
                let ends = holes.end.get(..n).unwrap_or(&[]);
                let masks = t.literal_mask.get(1..=n).unwrap_or(&[]);
                let lits = t.literals.get(1..=n).unwrap_or(&[]);
                for ((&at, &mask), want) in ends.iter().zip(masks).zip(lits) {
                    let v = _mm256_maskz_loadu_epi8(mask, p.add(usize::from(at)).cast::<i8>());
                    let want = _mm256_loadu_si256(want.as_ptr().cast::<__m256i>());
                    diff |= _mm256_mask_cmpneq_epi8_mask(mask, v, want);
                }
                diff == 0
            }
        }
        #[cfg(not(all(keel_avx512, target_feature = "avx512vbmi2")))]
        {
            let _ = (t, buf, holes);
            false
        }
    }
}

#[cfg(all(test, keel_avx512, target_feature = "avx512vbmi2"))]
mod tests {
    use super::*;

    const TICKER: &[u8] = br#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-26JUN26-100000-C.100ms","data":{"timestamp":1752057345721,"state":"open","stats":{"high":null,"low":null,"price_change":null,"volume":0,"volume_usd":0},"greeks":{"delta":0.71138,"gamma":1e-05,"vega":389.29255,"theta":-25.13021,"rho":524.77921},"index_price":108827.5,"instrument_name":"BTC-26JUN26-100000-C","last_price":0.247,"settlement_price":0.24231149,"min_price":0.1975,"max_price":0.3015,"open_interest":1.2,"mark_price":0.2425,"best_bid_price":0.2395,"mark_iv":45.43,"ask_iv":46.18,"bid_iv":44.54,"underlying_price":116086.34,"underlying_index":"BTC-26JUN26","best_ask_price":0.245,"interest_rate":0,"estimated_delivery_price":108827.5,"best_ask_amount":2,"best_bid_amount":2}}}"#;

    /// The holes of `text` by a plain byte walk: every scalar after a `:` and every string
    /// after a `:` (contents), as (start, end).
    fn holes_by_hand(text: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < text.len() {
            if text[i] == b':' {
                if text[i + 1] == b'"' {
                    let e = i + 2 + text[i + 2..].iter().position(|&c| c == b'"').unwrap();
                    out.push((i + 2, e));
                    i = e;
                } else if text[i + 1] != b'{' && text[i + 1] != b'[' {
                    let e = i + 1 + text[i + 1..].iter().position(|&c| is_end(c)).unwrap();
                    out.push((i + 1, e));
                    i = e;
                    continue;
                }
            } else if text[i] == b'"' {
                i += 1 + text[i + 1..].iter().position(|&c| c == b'"').unwrap();
            }
            i += 1;
        }
        out
    }

    fn matched(t: &Template, text: &[u8]) -> Option<Vec<(usize, usize)>> {
        let mut ix = TextIndex::new();
        let mut h = Holes::NONE;
        (ix.build(text) && ix.matches(t, text, &mut h)).then(|| {
            (0..t.holes())
                .map(|k| (usize::from(h.start[k]), usize::from(h.end[k])))
                .collect()
        })
    }

    #[test]
    fn the_learned_text_matches_itself() {
        let t = Template::learn(TICKER).expect("learn");
        assert_eq!(t.holes(), 34);
        assert_eq!(matched(&t, TICKER), Some(holes_by_hand(TICKER)));
    }

    #[test]
    fn other_values_match_and_other_shapes_do_not() {
        let t = Template::learn(TICKER).expect("learn");
        let text = std::str::from_utf8(TICKER).unwrap();
        for (from, to, matches) in [
            ("\"mark_price\":0.2425", "\"mark_price\":12345.678901", true),
            ("\"delta\":0.71138", "\"delta\":-1", true),
            (
                "\"state\":\"open\"",
                "\"state\":\"closed for the day\"",
                true,
            ),
            ("\"high\":null", "\"high\":0.5", true),
            ("\"high\":null", "\"high\":x", false), // a hole not starting like a scalar
            ("\"state\":\"open\"", "\"state\":\"o:pen\"", false),
            ("\"state\":\"open\"", "\"state\":\"o,pen\"", false),
            ("\"state\":\"open\"", "\"state\":\"o\\\"pen\"", false),
            ("\"state\":\"open\"", "\"state\":5", false),
            ("\"volume\":0", "\"volume\":\"0\"", false),
            ("\"volume\":0", "\"volume\":[0]", false),
            ("\"volume\":0", "\"volume\":{}", false),
            ("\"volume\":0", "\"volume\": 0", false),
            ("\"volume\":0", "\"volume\":", false),
            ("\"volume\":0,", "\"volume\":0 ,", true), // the caller reads (or skips) `0 `
            ("\"mark_iv\":45.43", "\"mark_jv\":45.43", false),
            ("\"mark_iv\":45.43,", "", false),
            (
                "\"mark_iv\":45.43,\"ask_iv\":46.18",
                "\"ask_iv\":46.18,\"mark_iv\":45.43",
                false,
            ),
            ("}}}", "}} }", false),
            ("}}}", "}}", false),
            ("}}}", "}}}}", false),
        ] {
            let m = text.replacen(from, to, 1);
            assert_ne!(m, text, "{from}");
            let got = matched(&t, m.as_bytes());
            assert_eq!(got.is_some(), matches, "{from} -> {to}");
            if let Some(h) = got {
                assert_eq!(h, holes_by_hand(m.as_bytes()), "{m}");
            }
        }
    }

    #[test]
    fn random_edits_match_only_as_the_template_with_other_values() {
        // Whatever the edit, a match means: removing the holes leaves the template's literals,
        // and no hole holds a byte of `"{}[],:\`.
        let t = Template::learn(TICKER).expect("learn");
        let lits: Vec<u8> = {
            let mut out = Vec::new();
            let mut prev = 0;
            for (s, e) in holes_by_hand(TICKER) {
                out.extend_from_slice(&TICKER[prev..s]);
                prev = e;
            }
            out.extend_from_slice(&TICKER[prev..]);
            out
        };
        let mut rng = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let alphabet = b"\"{}[],:\\ 0123456789.-enx";
        let (mut yes, mut no) = (0, 0);
        for _ in 0..50_000 {
            let mut m = TICKER.to_vec();
            for _ in 0..1 + next(3) {
                let at = next(m.len() as u64) as usize;
                let c = alphabet[next(alphabet.len() as u64) as usize];
                match next(3) {
                    0 => m[at] = c,
                    1 => m.insert(at, c),
                    _ => {
                        m.remove(at);
                    }
                }
            }
            match matched(&t, &m) {
                Some(h) => {
                    yes += 1;
                    let mut rest = Vec::new();
                    let mut prev = 0;
                    for &(s, e) in &h {
                        rest.extend_from_slice(&m[prev..s]);
                        assert!(!m[s..e].iter().any(|&c| is_end(c) || c == b'\\'));
                        prev = e;
                    }
                    rest.extend_from_slice(&m[prev..]);
                    assert_eq!(rest, lits, "{}", m.escape_ascii());
                }
                None => no += 1,
            }
        }
        assert!(yes > 5_000 && no > 5_000, "{yes} {no}");
    }

    #[test]
    fn unlearnable_texts_are_refused() {
        for text in [
            &br#"{"a":[1,2]}"#[..],
            br#"{"a": 1}"#,
            br#"{"a":"x:y"}"#,
            br#"{"a":"x\"y"}"#,
            br#"{"a":x}"#,
            b"",
        ] {
            assert!(Template::learn(text).is_none(), "{}", text.escape_ascii());
        }
        assert!(Template::learn(br#"{"a":["x","y"]}"#).is_none(), "no hole");
        assert!(
            Template::learn(br#"{"a:b":1}"#).is_none(),
            "a key with a colon"
        );
        assert_eq!(Template::learn(br#"{"a,b":1}"#).map(|t| t.holes()), Some(1));
    }
}
