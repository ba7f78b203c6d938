//! A single-pass walker for the hot messages of one shape: it follows the structural characters
//! of a JSON text in order (quotes, and `{}[],:` outside strings, found 64 bytes at a time with
//! SIMD compares) and hands the caller keys, strings and scalar tokens as borrowed slices.
//!
//! Owns nothing but the walk. Must never allocate, panic or recurse, and must never accept what
//! the general [`Scanner`](super::Scanner) would reject: every method returns `None` ("defer")
//! at anything it does not handle (a backslash anywhere in the text, a byte where JSON allows
//! none, the end of the input), and the caller then parses the message again with the scanner,
//! which gives the real answer or error. It is at least as strict as the scanner everywhere:
//! gaps between tokens must be whitespace, a skipped nested value must have balanced brackets,
//! a skipped scalar must start like one, and strings are never decoded.
//!
//! Why it is fast: the next structural position is a trailing-zero count and a clear-lowest-bit
//! on a 64-bit mask, so the chain of positions from one member to the next is a few cycles; the
//! work on a value (a number's conversion, a key's comparison) hangs off that chain instead of
//! lengthening it.

use super::{classify, prefix_xor};

/// Whitespace JSON allows between tokens.
#[inline(always)]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// A cursor over the structural characters of one JSON text.
#[derive(Clone, Debug)]
pub(crate) struct Walker<'a> {
    buf: &'a [u8],
    /// Offset of the current 64-byte block.
    base: usize,
    /// Structural bits of the current block not consumed yet.
    pending: u64,
    /// All structural bits of the current block (quotes, and `{}[],:` outside strings).
    structural: u64,
    /// Bracket bits of the current block, outside strings.
    brackets: u64,
    /// All ones when the current block ends inside a string.
    in_string: u64,
}

impl<'a> Walker<'a> {
    /// A walker at the start of `buf`; `None` if the first block already defers.
    #[inline]
    pub(crate) fn new(buf: &'a [u8]) -> Option<Self> {
        let mut w = Self {
            buf,
            base: 0,
            pending: 0,
            structural: 0,
            brackets: 0,
            in_string: 0,
        };
        w.index(0)?;
        Some(w)
    }

    /// The input.
    #[inline(always)]
    pub(crate) fn input(&self) -> &'a [u8] {
        self.buf
    }

    /// The byte at `i` (0 past the end, which no caller accepts).
    #[inline(always)]
    pub(crate) fn byte(&self, i: usize) -> u8 {
        self.buf.get(i).copied().unwrap_or(0)
    }

    #[inline(always)]
    fn slice(&self, start: usize, end: usize) -> &'a [u8] {
        self.buf.get(start..end).unwrap_or(&[])
    }

    /// Indexes the block at `base`; `None` past the end or at a backslash.
    #[inline(never)]
    fn index(&mut self, base: usize) -> Option<()> {
        if base >= self.buf.len() {
            return None;
        }
        let chunk: [u8; 64] = match self.buf.get(base..base + 64) {
            Some(s) => <[u8; 64]>::try_from(s).ok()?,
            None => {
                let mut c = [b' '; 64];
                let rest = self.buf.get(base..)?;
                c.get_mut(..rest.len())?.copy_from_slice(rest);
                c
            }
        };
        let (quotes, backslashes, brackets, ops) = classify(chunk);
        if backslashes != 0 {
            return None;
        }
        let in_string = prefix_xor(quotes) ^ self.in_string;
        self.base = base;
        self.structural = quotes | (ops & !in_string);
        self.pending = self.structural;
        self.brackets = brackets & !in_string;
        self.in_string = ((in_string as i64) >> 63) as u64;
        Some(())
    }

    /// The next structural position, consumed.
    #[inline(always)]
    pub(crate) fn next(&mut self) -> Option<usize> {
        while self.pending == 0 {
            self.index(self.base + 64)?;
        }
        let i = self.pending.trailing_zeros() as usize;
        self.pending &= self.pending - 1;
        Some(self.base + i)
    }

    /// True when `buf[from..to]` is whitespace (or empty).
    #[inline(always)]
    pub(crate) fn gap(&self, from: usize, to: usize) -> bool {
        from == to || self.gap_slow(from, to)
    }

    #[inline(never)]
    fn gap_slow(&self, from: usize, to: usize) -> bool {
        from <= to && self.slice(from, to).iter().all(|&b| is_ws(b))
    }

    /// The first byte at or after `from` that is not whitespace, and its offset.
    #[inline(always)]
    pub(crate) fn value_start(&self, from: usize) -> Option<(usize, u8)> {
        match self.buf.get(from) {
            Some(&b) if b > b' ' => Some((from, b)),
            _ => self.value_start_slow(from),
        }
    }

    #[inline(never)]
    fn value_start_slow(&self, mut from: usize) -> Option<(usize, u8)> {
        while let Some(&b) = self.buf.get(from) {
            if !is_ws(b) {
                return Some((from, b));
            }
            from += 1;
        }
        None
    }

    /// Enters the object whose `{` is the next structural, after whitespace from `from`;
    /// returns the offset just past the `{`.
    #[inline(always)]
    pub(crate) fn open_object(&mut self, from: usize) -> Option<usize> {
        let o = self.next()?;
        (self.byte(o) == b'{' && self.gap(from, o)).then_some(o + 1)
    }

    /// The next member of an object: its key (raw) and the offset just past its `:`; `None` in
    /// the inner option after the closing `}` of an empty object. `at` is the offset just past
    /// the `{` or the `,` before the member (`first` says which); after an empty object's `}`
    /// it is set just past that.
    #[inline(always)]
    pub(crate) fn member(
        &mut self,
        at: &mut usize,
        first: bool,
    ) -> Option<Option<(&'a [u8], usize)>> {
        let q = self.next()?;
        let b = self.byte(q);
        if !self.gap(*at, q) {
            return None;
        }
        if b != b'"' {
            if b == b'}' && first {
                *at = q + 1;
                return Some(None);
            }
            return None;
        }
        let e = self.next()?;
        let c = self.next()?;
        if self.byte(c) != b':' || !self.gap(e + 1, c) {
            return None;
        }
        Some(Some((self.slice(q + 1, e), c + 1)))
    }

    /// After a value ending at `from`: the next structural must be `,` (another member: true)
    /// or `}` (the end: false); `at` gets the offset just past it.
    #[inline(always)]
    pub(crate) fn after_value(&mut self, from: usize, at: &mut usize) -> Option<bool> {
        let d = self.next()?;
        if !self.gap(from, d) {
            return None;
        }
        *at = d + 1;
        match self.byte(d) {
            b',' => Some(true),
            b'}' => Some(false),
            _ => None,
        }
    }

    /// A scalar value (number or literal) starting at `v` (not a quote or bracket): its token,
    /// trailing whitespace removed, and whether a `,` (true) or `}` (false) ends it; `at` gets
    /// the offset just past that delimiter.
    #[inline(always)]
    pub(crate) fn scalar(&mut self, v: usize, at: &mut usize) -> Option<(&'a [u8], bool)> {
        let d = self.next()?;
        let more = match self.byte(d) {
            b',' => true,
            b'}' => false,
            _ => return None,
        };
        *at = d + 1;
        let mut end = d;
        while end > v && is_ws(self.byte(end - 1)) {
            end -= 1;
        }
        if end <= v {
            return None;
        }
        Some((self.slice(v, end), more))
    }

    /// A string value whose opening quote is at `v`: its raw contents; returns the offset just
    /// past the closing quote.
    #[inline(always)]
    pub(crate) fn string(&mut self, v: usize, end: &mut usize) -> Option<&'a [u8]> {
        let q = self.next()?;
        if q != v {
            return None;
        }
        let e = self.next()?;
        *end = e + 1;
        Some(self.slice(v + 1, e))
    }

    /// Skips the array or object opening at `v` (its bracket the next structural), checking only
    /// that brackets balance (as the scanner does for a value it skips); returns the offset
    /// just past the closing bracket. Nesting deeper than 64 defers.
    #[inline(never)]
    pub(crate) fn skip_nested(&mut self, v: usize) -> Option<usize> {
        if self.next()? != v {
            return None;
        }
        // Bit stack of open brackets, 1 = object.
        let mut stack: u64 = u64::from(self.byte(v) == b'{');
        let mut depth = 1u32;
        let mut bits = self.brackets & self.pending;
        loop {
            while bits == 0 {
                self.index(self.base + 64)?;
                bits = self.brackets;
            }
            let i = self.base + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let b = self.byte(i);
            if b == b'{' || b == b'[' {
                if depth == 64 {
                    return None;
                }
                stack = (stack << 1) | u64::from(b == b'{');
                depth += 1;
            } else {
                if (stack & 1 == 1) != (b == b'}') {
                    return None;
                }
                stack >>= 1;
                depth -= 1;
                if depth == 0 {
                    let off = i + 1 - self.base;
                    self.pending = if off >= 64 {
                        0
                    } else {
                        self.structural & (u64::MAX << off)
                    };
                    return Some(i + 1);
                }
            }
        }
    }

    /// Skips any value starting at `v` (first byte `b`); returns whether a `,` follows it (true)
    /// or a `}` (false), with `at` just past that delimiter.
    #[inline(always)]
    pub(crate) fn skip_value(&mut self, v: usize, b: u8, at: &mut usize) -> Option<bool> {
        match b {
            b'"' => {
                let mut end = 0;
                self.string(v, &mut end)?;
                self.after_value(end, at)
            }
            b'{' | b'[' => {
                let end = self.skip_nested(v)?;
                self.after_value(end, at)
            }
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => self.scalar(v, at).map(|(_, more)| more),
            _ => None,
        }
    }

    /// True when only whitespace remains from `from`.
    #[inline]
    pub(crate) fn rest_is_ws(&self, from: usize) -> bool {
        self.gap(from, self.buf.len())
    }
}
