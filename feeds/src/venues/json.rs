//! A forward-only, zero-allocation JSON scanner for venue messages: the venue parsers walk an
//! object's members by key, read the values they want (numbers, numeric strings, strings, hex
//! quantities) and skip the rest, all as borrowed slices of the payload.
//!
//! Owns JSON syntax and number conversion. Must never allocate, never recurse (nesting is
//! tracked in a bit stack, at most [`MAX_DEPTH`] levels) and never panic, whatever the bytes: it
//! is fed straight from the network. No `unsafe` in this file: the SIMD goes through `wide`.
//! Three helpers for hot paths live beside it: `walk`, a single-pass walker that defers to the
//! scanner at anything unusual; `template`, learned message templates matched by `:` positions
//! and literal compares (AVX-512 intrinsics when the build enables them, its `unsafe` blocks
//! each with a `SAFETY:` line); and `decimal`, number conversion with SSE/AVX-512 when the
//! build enables them (one number, or sixteen at once), which
//! agrees bit for bit with the converter here and declines what it does not handle.
//!
//! How it is fast: a structural index in the manner of simdjson's first stage, built lazily 64
//! bytes at a time as the cursor advances (SIMD compares for quotes, backslashes, brackets, `,`
//! and `:`; escapes; the in-string mask by prefix XOR). The end of a string, number or nested
//! value is then a shift and a trailing-zero count instead of a byte loop, which keeps the
//! chain of positions short; numbers are converted off that chain.
//!
//! Deliberate leniencies, none of which can turn bad data into a wrong number:
//! - a value the caller skips is checked for balanced brackets, terminated strings, and (for a
//!   scalar) a first byte that can start one and no quote before its delimiter; not for the
//!   commas, colons or scalar spelling inside it;
//! - string contents are not checked for UTF-8 or raw control bytes, and escapes are not decoded:
//!   keys and symbols are compared in their raw form (venues never escape them).
//!
//! Numbers: a JSON number, or a string holding one (Binance, OKX and Bybit quote every number),
//! become `f64` with correct rounding: Clinger's fast path (at most 19 significant digits, the
//! mantissa at most 2^53 and a power of ten at most 22, where one IEEE multiplication or division
//! of two exact values is correctly rounded) and otherwise the standard library's
//! Eisel-Lemire/big-decimal parser on the same bytes. `null` and `""` mean absent and read as NaN.
//! A literal whose value overflows to infinity is an error.

use core::fmt;
use wide::u8x64;

pub(crate) mod decimal;
pub(crate) mod template;
pub(crate) mod walk;

/// Deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 128;

/// What the scanner wanted where it found something else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Any JSON value.
    Value,
    /// `{`.
    Object,
    /// `[`.
    Array,
    /// A string.
    String,
    /// An object key.
    Key,
    /// `:`.
    Colon,
    /// `,` or `}`.
    CommaOrBrace,
    /// `,` or `]`.
    CommaOrBracket,
    /// `,`, `}` or `]` after a value.
    Delimiter,
    /// A number, a numeric string or `null`.
    Number,
    /// An unsigned integer.
    Unsigned,
    /// An integer.
    Integer,
    /// `true` or `false`.
    Bool,
    /// A hex quantity string (`"0x.."`).
    HexQuantity,
    /// `true`, `false` or `null`.
    Literal,
    /// The bracket closing the innermost open one.
    MatchingBracket,
}

impl Expected {
    fn text(self) -> &'static str {
        match self {
            Expected::Value => "a value",
            Expected::Object => "an object",
            Expected::Array => "an array",
            Expected::String => "a string",
            Expected::Key => "a key",
            Expected::Colon => "':'",
            Expected::CommaOrBrace => "',' or '}'",
            Expected::CommaOrBracket => "',' or ']'",
            Expected::Delimiter => "',', '}' or ']' after a value",
            Expected::Number => "a number",
            Expected::Unsigned => "an unsigned integer",
            Expected::Integer => "an integer",
            Expected::Bool => "true or false",
            Expected::HexQuantity => "a hex quantity string",
            Expected::Literal => "true, false or null",
            Expected::MatchingBracket => "a matching bracket",
        }
    }
}

/// What was wrong with the JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonErrorKind {
    /// The input ended inside a value.
    Truncated,
    /// A byte that cannot start or continue what was expected.
    Unexpected(Expected),
    /// Arrays and objects nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A number (or numeric string) that does not follow the JSON number grammar, or a hex
    /// quantity that is not `0x` followed by hex digits.
    InvalidNumber,
    /// A number too large for its type: an `f64` literal beyond the finite range, an integer
    /// beyond `u64`/`i64`, a hex quantity beyond 64 bits.
    OutOfRange,
    /// Bytes other than whitespace after the top-level value.
    Trailing,
}

/// A JSON problem and the byte offset where it was found (8 bytes, so that results carrying
/// it stay in registers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// What was wrong.
    pub kind: JsonErrorKind,
    /// The byte found, for [`JsonErrorKind::Unexpected`].
    pub byte: u8,
    /// Byte offset in the input.
    pub at: u32,
}

impl JsonError {
    #[inline]
    fn new(kind: JsonErrorKind, at: usize) -> Self {
        Self {
            kind,
            byte: 0,
            at: u32::try_from(at).unwrap_or(u32::MAX),
        }
    }

    /// Byte offset in the input where the problem was found.
    pub fn offset(&self) -> u32 {
        self.at
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.at;
        match self.kind {
            JsonErrorKind::Truncated => write!(f, "input ends inside a value (byte {at})"),
            JsonErrorKind::Unexpected(e) => write!(
                f,
                "unexpected byte {:?} at byte {at}, expected {}",
                char::from(self.byte),
                e.text()
            ),
            JsonErrorKind::TooDeep => write!(f, "nesting deeper than {MAX_DEPTH} at byte {at}"),
            JsonErrorKind::InvalidNumber => write!(f, "malformed number at byte {at}"),
            JsonErrorKind::OutOfRange => write!(f, "number out of range at byte {at}"),
            JsonErrorKind::Trailing => write!(f, "trailing bytes after the message at byte {at}"),
        }
    }
}

impl std::error::Error for JsonError {}

/// Positions `[start, end)` of a value in the payload, to come back to it later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Offset of the value's first byte.
    pub start: usize,
    /// Offset just past its last byte.
    pub end: usize,
}

const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The 8 bytes at `i` as a little-endian word (first byte lowest), if that many remain.
#[inline(always)]
fn load8(buf: &[u8], i: usize) -> Option<u64> {
    buf.get(i..i.wrapping_add(8))
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_le_bytes)
}

/// High bit set in every byte of `x` (bytes already XORed with `'0'`) that is not a digit.
#[inline(always)]
fn non_digits(x: u64) -> u64 {
    (((x & 0x7F7F_7F7F_7F7F_7F7F).wrapping_add(0x7676_7676_7676_7676)) | x) & HIGHS
}

/// The value of 8 digit values (0..=9, the first, most significant, in the lowest byte).
#[inline(always)]
fn eight_digits(val: u64) -> u64 {
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    const MUL1: u64 = 0x000F_4240_0000_0064; // 100 + (1_000_000 << 32)
    const MUL2: u64 = 0x0000_2710_0000_0001; // 1 + (10_000 << 32)
    let val = val.wrapping_mul(10).wrapping_add(val >> 8);
    ((val & MASK)
        .wrapping_mul(MUL1)
        .wrapping_add(((val >> 16) & MASK).wrapping_mul(MUL2)))
        >> 32
}

/// 10^0 ..= 10^19.
const POW10_U64: [u64; 20] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
    10_000_000_000_000_000,
    100_000_000_000_000_000,
    1_000_000_000_000_000_000,
    10_000_000_000_000_000_000,
];

/// The run of ASCII digits at `buf[start..]`: (value, digit count, end). The value is exact
/// when the count is at most 19 (it wraps beyond; callers check the count).
#[inline(always)]
fn digit_run(buf: &[u8], start: usize) -> (u64, usize, usize) {
    let mut v: u64 = 0;
    let mut i = start;
    loop {
        let Some(w) = load8(buf, i) else {
            while let Some(&d) = buf.get(i) {
                if !d.is_ascii_digit() {
                    break;
                }
                v = v.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
                i += 1;
            }
            break;
        };
        let x = w ^ 0x3030_3030_3030_3030;
        let nd = non_digits(x);
        let n = if nd == 0 {
            8
        } else {
            (nd.trailing_zeros() / 8) as usize
        };
        if n > 0 {
            // Keep the first n digit bytes, shifted up so that zeros lead.
            let part = eight_digits(x << (8 * (8 - n)));
            v = v
                .wrapping_mul(POW10_U64.get(n).copied().unwrap_or(0))
                .wrapping_add(part);
            i += n;
        }
        if n < 8 {
            break;
        }
    }
    (v, i - start, i)
}

/// Inclusive prefix XOR of the bits: bit i is the parity of bits 0..=i.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The bytes escaped by a backslash among `backslashes` (bit i = byte i). `carry` says whether
/// byte 0 is escaped (a backslash ended the previous block) and is set for the next block.
/// Loops over backslashes only: venue messages rarely have any.
#[inline(always)]
fn escaped_bytes(backslashes: u64, carry: &mut bool) -> u64 {
    let mut escaped = u64::from(*carry);
    *carry = false;
    let mut rest = backslashes;
    while rest != 0 {
        let i = rest.trailing_zeros();
        rest &= rest - 1;
        if (escaped >> i) & 1 == 1 {
            continue;
        }
        if i == 63 {
            *carry = true;
        } else {
            escaped |= 1 << (i + 1);
        }
    }
    escaped
}

/// Bit masks of one 64-byte block: quotes, backslashes, brackets `{}[]`, and `{}[],:`.
#[inline(always)]
fn classify(chunk: [u8; 64]) -> (u64, u64, u64, u64) {
    let v = u8x64::from(chunk);
    let eq = |x: u8x64, c: u8| x.simd_eq(u8x64::splat(c)).to_bitmask();
    let quotes = eq(v, b'"');
    let backslashes = eq(v, b'\\');
    // '{' 0x7B and '[' 0x5B, '}' 0x7D and ']' 0x5D differ only in bit 5.
    let folded = v | u8x64::splat(0x20);
    let brackets = eq(folded, 0x7B) | eq(folded, 0x7D);
    let ops = brackets | eq(v, b',') | eq(v, b':');
    (quotes, backslashes, brackets, ops)
}

/// The structural index of one 64-byte block of the input (aligned on 64 from its start).
#[derive(Clone, Copy, Debug)]
struct Block {
    /// Offset of the block's first byte; `usize::MAX` before the first block.
    base: usize,
    /// Quotes that open or close strings (not escaped).
    quotes: u64,
    /// `{`, `}`, `[`, `]` outside strings.
    brackets: u64,
    /// `{`, `}`, `[`, `]`, `,`, `:` outside strings.
    ops: u64,
    /// All ones when the block ends inside a string.
    in_string: u64,
    /// The next block's first byte is escaped.
    escape: bool,
}

const NO_BLOCK: Block = Block {
    base: usize::MAX,
    quotes: 0,
    brackets: 0,
    ops: 0,
    in_string: 0,
    escape: false,
};

/// A cursor over one JSON text.
///
/// Value ends are found in a structural index built 64 bytes at a time with SIMD compares
/// (simdjson's stage 1: quote, bracket and delimiter bit masks, escapes, in-string mask by
/// prefix XOR), lazily as the cursor advances: finding where a string, number or nested value
/// ends is a shift and a trailing-zero count, so the parse of a value is off the chain of
/// positions that the next value depends on.
#[derive(Clone, Debug)]
pub struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Where scanning started: bits before it are ignored (the start is outside any string).
    origin: usize,
    block: Block,
}

/// Iterates an object's members: [`Members::next`] yields each raw key and leaves the scanner
/// on its value, which the caller must then read or skip.
#[derive(Debug)]
pub struct Members {
    first: bool,
}

/// Iterates an array's elements: [`Elements::next`] says whether one follows and leaves the
/// scanner on it, which the caller must then read or skip.
#[derive(Debug)]
pub struct Elements {
    first: bool,
}

impl Members {
    /// The next member's key (raw bytes between the quotes), or `None` after the closing `}`.
    #[inline(always)]
    pub fn next<'a>(&mut self, sc: &mut Scanner<'a>) -> Result<Option<&'a [u8]>, JsonError> {
        // Fast path, compact JSON: `,"key":` (or `"key":` first).
        let lead = usize::from(!self.first);
        let start = sc.pos + lead + 1;
        let quote_at = if self.first { sc.pos } else { sc.pos + 1 };
        if (self.first || sc.byte() == Some(b','))
            && sc.buf.get(quote_at) == Some(&b'"')
            && let Some(end) = sc.next_bit(start, |b| b.quotes)
        {
            self.first = false;
            sc.pos = end + 1;
            if sc.buf.get(end + 1) != Some(&b':') {
                // Whitespace before the colon. The key is read here: the index may have moved
                // past the key's start (a key across a block boundary), so it cannot be
                // searched again.
                let colon = sc.peek()?;
                if colon != b':' {
                    return Err(sc.unexpected(colon, Expected::Colon));
                }
            }
            sc.pos += 1;
            return Ok(Some(sc.slice(start, end)));
        }
        self.next_slow(sc)
    }

    #[inline(never)]
    fn next_slow<'a>(&mut self, sc: &mut Scanner<'a>) -> Result<Option<&'a [u8]>, JsonError> {
        let mut b = sc.peek()?;
        if b == b'}' {
            sc.pos += 1;
            return Ok(None);
        }
        if !self.first {
            if b != b',' {
                return Err(sc.unexpected(b, Expected::CommaOrBrace));
            }
            sc.pos += 1;
            b = sc.peek()?;
        }
        self.first = false;
        if b != b'"' {
            return Err(sc.unexpected(b, Expected::Key));
        }
        let key = sc.string_body()?;
        let colon = sc.peek()?;
        if colon != b':' {
            return Err(sc.unexpected(colon, Expected::Colon));
        }
        sc.pos += 1;
        Ok(Some(key))
    }
}

impl Elements {
    /// True when another element follows (the scanner is on it); false after the closing `]`.
    #[inline(always)]
    pub fn next(&mut self, sc: &mut Scanner<'_>) -> Result<bool, JsonError> {
        let b = sc.peek()?;
        if b == b']' {
            sc.pos += 1;
            return Ok(false);
        }
        if !self.first {
            if b != b',' {
                return Err(sc.unexpected(b, Expected::CommaOrBracket));
            }
            sc.pos += 1;
        }
        self.first = false;
        Ok(true)
    }
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `buf`.
    #[inline]
    pub fn new(buf: &'a [u8]) -> Self {
        Self::at(buf, 0)
    }

    /// A scanner at `pos` in `buf`, which must be outside any string (to come back to a
    /// [`Span`] recorded earlier; offsets in errors stay relative to `buf`).
    #[inline]
    pub fn at(buf: &'a [u8], pos: usize) -> Self {
        let pos = pos.min(buf.len());
        Self {
            buf,
            pos,
            origin: pos,
            block: NO_BLOCK,
        }
    }

    /// Current offset.
    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Offset of the next value (after whitespace), for error reports.
    #[inline]
    pub fn value_offset(&mut self) -> u32 {
        self.skip_ws();
        u32::try_from(self.pos).unwrap_or(u32::MAX)
    }

    /// The whole input.
    #[inline]
    pub fn input(&self) -> &'a [u8] {
        self.buf
    }

    #[inline(always)]
    fn byte(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    #[inline(always)]
    fn slice(&self, start: usize, end: usize) -> &'a [u8] {
        self.buf.get(start..end).unwrap_or(&[])
    }

    #[inline(always)]
    fn truncated(&self) -> JsonError {
        JsonError::new(JsonErrorKind::Truncated, self.buf.len())
    }

    #[cold]
    fn unexpected(&self, byte: u8, expected: Expected) -> JsonError {
        JsonError {
            kind: JsonErrorKind::Unexpected(expected),
            byte,
            at: u32::try_from(self.pos).unwrap_or(u32::MAX),
        }
    }

    /// Builds the index of the block after the current one (the first: the one holding
    /// `origin`). False past the end of the input.
    #[inline(never)]
    fn next_block(&mut self) -> bool {
        let base = if self.block.base == usize::MAX {
            self.origin & !63
        } else {
            self.block.base.saturating_add(64)
        };
        if base >= self.buf.len() {
            return false;
        }
        let chunk: [u8; 64] = match self.buf.get(base..base + 64) {
            Some(s) => <[u8; 64]>::try_from(s).unwrap_or([b' '; 64]),
            None => {
                let mut c = [b' '; 64];
                let rest = self.buf.get(base..).unwrap_or(&[]);
                if let Some(dst) = c.get_mut(..rest.len()) {
                    dst.copy_from_slice(rest);
                }
                c
            }
        };
        let (quotes, backslashes, brackets, ops) = classify(chunk);
        // Bytes before the origin are not part of the text being scanned.
        let keep = match self.origin.checked_sub(base) {
            Some(n) if n > 0 => u64::MAX.checked_shl(n as u32).unwrap_or(0),
            _ => u64::MAX,
        };
        let mut escape = self.block.escape;
        let escaped = escaped_bytes(backslashes & keep, &mut escape);
        let quotes = quotes & keep & !escaped;
        let in_string = prefix_xor(quotes) ^ self.block.in_string;
        self.block = Block {
            base,
            quotes,
            brackets: brackets & keep & !in_string,
            ops: ops & keep & !in_string,
            in_string: ((in_string as i64) >> 63) as u64,
            escape,
        };
        true
    }

    /// The first position at or after `from` whose bit `select` sets, if any. `from` is at
    /// or after every position searched before (the cursor only moves forward).
    #[inline(always)]
    fn next_bit(&mut self, from: usize, select: impl Fn(&Block) -> u64) -> Option<usize> {
        // Fast path: the bit is in the current block.
        let off = from.wrapping_sub(self.block.base);
        if off < 64 {
            let bits = select(&self.block) & (u64::MAX << off);
            if bits != 0 {
                return Some(self.block.base + bits.trailing_zeros() as usize);
            }
        }
        self.next_bit_slow(from, select)
    }

    #[inline(never)]
    fn next_bit_slow(&mut self, from: usize, select: impl Fn(&Block) -> u64) -> Option<usize> {
        if self.block.base == usize::MAX && !self.next_block() {
            return None;
        }
        while from >= self.block.base + 64 {
            if !self.next_block() {
                return None;
            }
        }
        let off = from.checked_sub(self.block.base)?;
        let mut bits = select(&self.block) & (u64::MAX << off);
        while bits == 0 {
            if !self.next_block() {
                return None;
            }
            bits = select(&self.block);
        }
        Some(self.block.base + bits.trailing_zeros() as usize)
    }

    #[inline(always)]
    fn skip_ws(&mut self) {
        while let Some(b) = self.byte() {
            if b > b' ' || !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.pos += 1;
        }
    }

    /// The next significant byte (after whitespace), not consumed.
    #[inline(always)]
    pub fn peek(&mut self) -> Result<u8, JsonError> {
        match self.byte() {
            Some(b) if b > b' ' => Ok(b),
            _ => self.peek_slow(),
        }
    }

    #[inline(never)]
    fn peek_slow(&mut self) -> Result<u8, JsonError> {
        self.skip_ws();
        self.byte().ok_or_else(|| self.truncated())
    }

    /// Enters an object (`{`).
    #[inline]
    pub fn object(&mut self) -> Result<Members, JsonError> {
        let b = self.peek()?;
        if b != b'{' {
            return Err(self.unexpected(b, Expected::Object));
        }
        self.pos += 1;
        Ok(Members { first: true })
    }

    /// Enters an array (`[`).
    #[inline]
    pub fn array(&mut self) -> Result<Elements, JsonError> {
        let b = self.peek()?;
        if b != b'[' {
            return Err(self.unexpected(b, Expected::Array));
        }
        self.pos += 1;
        Ok(Elements { first: true })
    }

    /// On an opening quote: the raw body up to the closing quote, which is consumed.
    #[inline(always)]
    fn string_body(&mut self) -> Result<&'a [u8], JsonError> {
        let start = self.pos + 1;
        let end = self
            .next_bit(start, |b| b.quotes)
            .ok_or_else(|| self.truncated())?;
        self.pos = end + 1;
        Ok(self.slice(start, end))
    }

    /// A string's raw contents (escapes not decoded).
    #[inline]
    pub fn str(&mut self) -> Result<&'a [u8], JsonError> {
        let b = self.peek()?;
        if b != b'"' {
            return Err(self.unexpected(b, Expected::String));
        }
        self.string_body()
    }

    /// A string's raw contents, or `None` for `null`.
    #[inline]
    pub fn str_or_null(&mut self) -> Result<Option<&'a [u8]>, JsonError> {
        if self.null()? {
            return Ok(None);
        }
        self.str().map(Some)
    }

    /// Consumes `null` if it is next; false (nothing consumed) otherwise.
    #[inline]
    pub fn null(&mut self) -> Result<bool, JsonError> {
        if self.peek()? != b'n' {
            return Ok(false);
        }
        self.literal(b"null")?;
        Ok(true)
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), JsonError> {
        let end = self.pos + word.len();
        match self.buf.get(self.pos..end) {
            Some(s) if s == word => {
                self.pos = end;
                self.check_delimiter()
            }
            Some(_) => Err(self.unexpected(self.byte().unwrap_or(0), Expected::Literal)),
            None => Err(self.truncated()),
        }
    }

    /// `true` or `false`.
    #[inline]
    pub fn bool(&mut self) -> Result<bool, JsonError> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| true),
            b'f' => self.literal(b"false").map(|()| false),
            b => Err(self.unexpected(b, Expected::Bool)),
        }
    }

    /// End of the bare scalar starting at `start`: the next `,`, `}`, `]` or `:` outside
    /// strings, or the end of the input.
    #[inline(always)]
    fn scalar_end(&mut self, start: usize) -> usize {
        self.next_bit(start, |b| b.ops).unwrap_or(self.buf.len())
    }

    /// Checks that `buf[from..end]` is whitespace (what may sit between a scalar and its
    /// delimiter) and moves to `end`.
    #[inline(always)]
    fn finish_scalar(&mut self, from: usize, end: usize) -> Result<(), JsonError> {
        if from != end {
            self.pos = from;
            self.skip_ws();
            if self.pos < end {
                return Err(self.unexpected(self.byte().unwrap_or(0), Expected::Delimiter));
            }
        }
        self.pos = end;
        Ok(())
    }

    /// A number, a numeric string, `""` (NaN) or `null` (NaN).
    #[inline(never)]
    pub fn f64(&mut self) -> Result<f64, JsonError> {
        let b = self.peek()?;
        if b == b'"' {
            let start = self.pos + 1;
            let s = self.string_body()?;
            if s.is_empty() {
                return Ok(f64::NAN);
            }
            if let Some(v) = swar_f64(self.buf, start, start + s.len()) {
                return Ok(v);
            }
            if let Some(v) = short_number(s) {
                return Ok(v);
            }
            return match number(s, 0) {
                Ok((v, n)) if n == s.len() => Ok(v),
                Ok(_) | Err(NumErr::Invalid) => {
                    Err(JsonError::new(JsonErrorKind::InvalidNumber, start))
                }
                Err(NumErr::Range) => Err(JsonError::new(JsonErrorKind::OutOfRange, start)),
            };
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = self.pos;
            let end = self.scalar_end(start);
            if let Some(v) = swar_f64(self.buf, start, end) {
                self.pos = end;
                return Ok(v);
            }
            if let Some(v) = self.buf.get(start..end).and_then(short_number) {
                self.pos = end;
                return Ok(v);
            }
            return match number(self.buf, start) {
                Ok((v, n)) => {
                    self.finish_scalar(n, end)?;
                    Ok(v)
                }
                Err(NumErr::Invalid) => Err(self.number_error(start)),
                Err(NumErr::Range) => Err(JsonError::new(JsonErrorKind::OutOfRange, start)),
            };
        }
        if b == b'n' {
            self.literal(b"null")?;
            return Ok(f64::NAN);
        }
        Err(self.unexpected(b, Expected::Number))
    }

    /// An invalid number token at `start`: truncated if the input ended inside it.
    #[cold]
    fn number_error(&self, start: usize) -> JsonError {
        let mut end = start;
        while let Some(&b) = self.buf.get(end) {
            if !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                return JsonError::new(JsonErrorKind::InvalidNumber, start);
            }
            end += 1;
        }
        self.truncated()
    }

    /// After a bare literal: the next byte must end it (`,`, `}`, `]`, whitespace, or the end).
    #[inline(always)]
    fn check_delimiter(&self) -> Result<(), JsonError> {
        match self.byte() {
            None | Some(b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') => Ok(()),
            Some(b) => Err(self.unexpected(b, Expected::Delimiter)),
        }
    }

    /// An unsigned integer: a number or a string of digits (no sign, fraction or exponent).
    #[inline(never)]
    pub fn u64(&mut self) -> Result<u64, JsonError> {
        let b = self.peek()?;
        if b == b'"' {
            let start = self.pos + 1;
            let s = self.string_body()?;
            return digits_u64(s).map_err(|e| e.at(start));
        }
        if b.is_ascii_digit() {
            let start = self.pos;
            let end = self.scalar_end(start);
            let (v, n, stop) = digit_run(self.buf, start);
            if matches!(self.buf.get(stop), Some(b'.' | b'e' | b'E')) {
                return Err(JsonError::new(JsonErrorKind::InvalidNumber, start));
            }
            let v = if n <= 19 {
                v
            } else {
                digits_u64(self.slice(start, stop)).map_err(|e| e.at(start))?
            };
            self.finish_scalar(stop, end)?;
            return Ok(v);
        }
        Err(self.unexpected(b, Expected::Unsigned))
    }

    /// An unsigned integer, or `None` for `null`.
    #[inline]
    pub fn u64_or_null(&mut self) -> Result<Option<u64>, JsonError> {
        if self.null()? {
            return Ok(None);
        }
        self.u64().map(Some)
    }

    /// A signed integer: a number or a string of digits with an optional leading `-`.
    pub fn i64(&mut self) -> Result<i64, JsonError> {
        let b = self.peek()?;
        let start;
        let body: &[u8];
        if b == b'"' {
            start = self.pos + 1;
            body = self.string_body()?;
        } else if b == b'-' || b.is_ascii_digit() {
            start = self.pos;
            let end = self.scalar_end(start);
            let mut stop = start + 1;
            while self.buf.get(stop).is_some_and(u8::is_ascii_digit) {
                stop += 1;
            }
            if matches!(self.buf.get(stop), Some(b'.' | b'e' | b'E')) {
                return Err(JsonError::new(JsonErrorKind::InvalidNumber, start));
            }
            body = self.slice(start, stop);
            self.finish_scalar(stop, end)?;
        } else {
            return Err(self.unexpected(b, Expected::Integer));
        }
        let (neg, digits) = match body.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, body),
        };
        let mag = digits_u64(digits).map_err(|e| e.at(start))?;
        let out_of_range = JsonError::new(JsonErrorKind::OutOfRange, start);
        if neg {
            0i64.checked_sub_unsigned(mag).ok_or(out_of_range)
        } else {
            i64::try_from(mag).map_err(|_| out_of_range)
        }
    }

    /// An Ethereum JSON-RPC quantity: a string `0x` followed by 1 to 16 significant hex digits.
    pub fn hex_u64(&mut self) -> Result<u64, JsonError> {
        let b = self.peek()?;
        if b != b'"' {
            return Err(self.unexpected(b, Expected::HexQuantity));
        }
        let start = self.pos + 1;
        let s = self.string_body()?;
        let invalid = JsonError::new(JsonErrorKind::InvalidNumber, start);
        let digits = match s {
            [b'0', b'x' | b'X', rest @ ..] if !rest.is_empty() => rest,
            _ => return Err(invalid),
        };
        let mut v: u64 = 0;
        for &d in digits {
            let n = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(invalid),
            };
            if v >> 60 != 0 {
                return Err(JsonError::new(JsonErrorKind::OutOfRange, start));
            }
            v = (v << 4) | u64::from(n);
        }
        Ok(v)
    }

    /// Skips one value of any type, checking that brackets balance and strings end.
    #[inline(never)]
    pub fn skip(&mut self) -> Result<(), JsonError> {
        let b = self.peek()?;
        match b {
            b'"' => self.string_body().map(|_| ()),
            b'{' | b'[' => self.skip_nested(),
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => self.skip_scalar(),
            _ => Err(self.unexpected(b, Expected::Value)),
        }
    }

    /// Skips a number or literal (its first byte already checked): up to the next delimiter,
    /// which must come before any quote.
    #[inline(always)]
    fn skip_scalar(&mut self) -> Result<(), JsonError> {
        let start = self.pos;
        // At the end of the input the enclosing array or object reports the truncation.
        let end = self.scalar_end(start);
        if let Some(q) = self.next_bit(start, |b| b.quotes)
            && q < end
        {
            self.pos = q;
            return Err(self.unexpected(b'"', Expected::Delimiter));
        }
        self.pos = end;
        Ok(())
    }

    /// Skips an array or object by its brackets in the index, with a bit stack of open
    /// brackets (1 = object).
    fn skip_nested(&mut self) -> Result<(), JsonError> {
        let mut stack: u128 = 0;
        let mut depth: usize = 0;
        let mut at = self.pos;
        loop {
            let Some(i) = self.next_bit(at, |b| b.brackets) else {
                return Err(self.truncated());
            };
            let b = self.buf.get(i).copied().unwrap_or(0);
            match b {
                b'{' | b'[' => {
                    if depth == MAX_DEPTH {
                        return Err(JsonError::new(JsonErrorKind::TooDeep, i));
                    }
                    stack = (stack << 1) | u128::from(b == b'{');
                    depth += 1;
                }
                _ => {
                    let is_object = stack & 1 == 1;
                    if depth == 0 || is_object != (b == b'}') {
                        self.pos = i;
                        return Err(self.unexpected(b, Expected::MatchingBracket));
                    }
                    stack >>= 1;
                    depth -= 1;
                    if depth == 0 {
                        self.pos = i + 1;
                        return Ok(());
                    }
                }
            }
            at = i + 1;
        }
    }

    /// Skips one value and returns where it was.
    #[inline]
    pub fn raw(&mut self) -> Result<Span, JsonError> {
        self.skip_ws();
        let start = self.pos;
        self.skip()?;
        Ok(Span {
            start,
            end: self.pos,
        })
    }

    /// The bytes of a span of this scanner's input.
    #[inline]
    pub fn span_bytes(&self, span: Span) -> &'a [u8] {
        self.slice(span.start, span.end)
    }

    /// Checks that only whitespace remains.
    #[inline]
    pub fn end(&mut self) -> Result<(), JsonError> {
        self.skip_ws();
        match self.byte() {
            None => Ok(()),
            Some(_) => Err(JsonError::new(JsonErrorKind::Trailing, self.pos)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NumErr {
    Invalid,
    Range,
}

impl NumErr {
    fn at(self, pos: usize) -> JsonError {
        match self {
            NumErr::Invalid => JsonError::new(JsonErrorKind::InvalidNumber, pos),
            NumErr::Range => JsonError::new(JsonErrorKind::OutOfRange, pos),
        }
    }
}

/// A non-empty string of ASCII digits as a `u64`.
#[inline]
fn digits_u64(s: &[u8]) -> Result<u64, NumErr> {
    if s.is_empty() {
        return Err(NumErr::Invalid);
    }
    let mut v: u64 = 0;
    for &d in s {
        if !d.is_ascii_digit() {
            return Err(NumErr::Invalid);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or(NumErr::Range)?;
    }
    Ok(v)
}

/// The common case of a whole token: `-?(0|[1-9][0-9]*)(\.[0-9]+)?` with at most 19 digits and
/// 22 decimals, converted by Clinger's fast path; `None` sends the token to [`number`] (which
/// also reports errors).
#[inline(always)]
fn short_number(tok: &[u8]) -> Option<f64> {
    let (neg, body) = match tok {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, tok),
    };
    let mut mantissa: u64 = 0;
    let mut dot = usize::MAX;
    let mut len = body.len();
    let mut exp: i64 = 0;
    for (i, &c) in body.iter().enumerate() {
        let d = c.wrapping_sub(b'0');
        if d < 10 {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
        } else if c == b'.' && dot == usize::MAX {
            dot = i;
        } else if c | 0x20 == b'e' {
            // A short exponent: [eE][+-]?[0-9]{1,2}.
            let (neg_exp, digits) = match body.get(i + 1..)? {
                [b'-', rest @ ..] => (true, rest),
                [b'+', rest @ ..] => (false, rest),
                rest => (false, rest),
            };
            let e = match digits {
                [a] if a.is_ascii_digit() => i64::from(a - b'0'),
                [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
                    i64::from(a - b'0') * 10 + i64::from(b - b'0')
                }
                _ => return None,
            };
            exp = if neg_exp { -e } else { e };
            len = i;
            break;
        } else {
            return None;
        }
    }
    let (digits, decimals) = if dot == usize::MAX {
        (len, 0)
    } else {
        (len - 1, len - dot - 1)
    };
    let leading_zero = body.first() == Some(&b'0') && len > 1 && dot != 1;
    if digits == 0
        || digits > 19
        || dot == 0
        || (dot != usize::MAX && decimals == 0)
        || leading_zero
    {
        return None;
    }
    if mantissa > 1 << 53 {
        return None;
    }
    let e10 = exp - decimals as i64;
    let m = (mantissa as i64) as f64;
    let v = if e10 < 0 {
        m / POW10.get(e10.unsigned_abs() as usize)?
    } else {
        m * POW10.get(e10 as usize)?
    };
    Some(if neg { -v } else { v })
}

/// Exact powers of ten representable in an `f64` (Clinger's fast path).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses the JSON number starting at `buf[start]`; returns its value and the offset just
/// past it. The token ends at the first byte the grammar cannot continue with; the caller
/// checks what follows.
#[inline(always)]
fn number(buf: &[u8], start: usize) -> Result<(f64, usize), NumErr> {
    let mut i = start;
    let neg = buf.get(i) == Some(&b'-');
    if neg {
        i += 1;
    }
    // Integer part: `0` or [1-9][0-9]*.
    let (int, int_digits, end) = match buf.get(i) {
        Some(b'0') => (0, 1, i + 1),
        Some(b'1'..=b'9') => digit_run(buf, i),
        _ => return Err(NumErr::Invalid),
    };
    i = end;
    let mut mantissa = int;
    let mut digits = int_digits;
    let mut exp10: i64 = 0;
    // Fraction.
    if buf.get(i) == Some(&b'.') {
        let (frac, frac_digits, end) = digit_run(buf, i + 1);
        if frac_digits == 0 {
            return Err(NumErr::Invalid);
        }
        i = end;
        digits += frac_digits;
        if digits <= 19 {
            // Exact: fewer than 20 digits fit in a u64.
            let scale = POW10_U64.get(frac_digits).copied().unwrap_or(0);
            mantissa = mantissa.wrapping_mul(scale).wrapping_add(frac);
        }
        exp10 = -(frac_digits as i64);
    }
    let exact = digits <= 19;
    // Exponent.
    if matches!(buf.get(i), Some(b'e' | b'E')) {
        i += 1;
        let exp_neg = match buf.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let first = i;
        let mut e: i64 = 0;
        while let Some(&d) = buf.get(i) {
            if !d.is_ascii_digit() {
                break;
            }
            if e < 1_000_000 {
                e = e * 10 + i64::from(d - b'0');
            }
            i += 1;
        }
        if i == first {
            return Err(NumErr::Invalid);
        }
        exp10 += if exp_neg { -e } else { e };
    }

    if exact {
        if mantissa == 0 {
            return Ok((if neg { -0.0 } else { 0.0 }, i));
        }
        if mantissa <= 1 << 53 && (-22..=22).contains(&exp10) {
            let m = mantissa as f64;
            let p = POW10[exp10.unsigned_abs() as usize];
            let v = if exp10 < 0 { m / p } else { m * p };
            return Ok((if neg { -v } else { v }, i));
        }
    }
    // Slow path: the standard library's correctly rounded parser on the same (ASCII) bytes.
    let text = buf
        .get(start..i)
        .and_then(|s| core::str::from_utf8(s).ok())
        .ok_or(NumErr::Invalid)?;
    let v: f64 = text.parse().map_err(|_| NumErr::Invalid)?;
    if v.is_finite() {
        Ok((v, i))
    } else {
        Err(NumErr::Range)
    }
}

/// `buf[start..end]` as a JSON number of the commonest form, `-?(0|[1-9][0-9]*)(\.[0-9]+)?`
/// with at most 16 bytes after the sign, converted without a loop over bytes (see
/// [`swar_word`]). `None` for anything else (exponents, longer tokens, malformed text): the
/// caller then takes [`token_f64`], which gives the value or says it is not a number. Where
/// this answers, the value is the correctly rounded one (`str::parse::<f64>`'s, bit for bit).
#[inline(always)]
pub(crate) fn swar_f64(buf: &[u8], start: usize, end: usize) -> Option<f64> {
    let neg = buf.get(start) == Some(&b'-');
    let start = start + usize::from(neg);
    let len = end.checked_sub(start)?;
    if len == 0 || len > 16 {
        return None;
    }
    let (lo, hi) = match (load8(buf, start), load8(buf, start + 8)) {
        (Some(lo), Some(hi)) => (lo, hi),
        _ => {
            let mut a = [0u8; 16];
            a.get_mut(..len)?.copy_from_slice(buf.get(start..end)?);
            let (l, h) = a.split_at(8);
            (
                u64::from_le_bytes(l.try_into().ok()?),
                u64::from_le_bytes(h.try_into().ok()?),
            )
        }
    };
    swar_word(lo, hi, len, neg)
}

/// A mask of the low `n` (0..=8) bytes.
#[inline(always)]
fn low_bytes(n: usize) -> u64 {
    if n >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * n)) - 1
    }
}

/// The first `len` (1..=16) bytes of `lo` then `hi` (the rest ignored) as a sign-less
/// `(0|[1-9][0-9]*)(\.[0-9]+)?`: the dot found and removed by mask arithmetic, the digits
/// combined eight at a time by multiplication, then Clinger's exact fast path (mantissa at most
/// 2^53, at most 15 decimals: one correctly rounded division of two exact values). Only
/// 64-bit shifts (variable 128-bit ones are slow on some cores).
#[inline(always)]
fn swar_word(lo: u64, hi: u64, len: usize, neg: bool) -> Option<f64> {
    let (mantissa, decimals) = swar_digits(lo, hi, len)?;
    if mantissa > 1 << 53 {
        return None;
    }
    let v = mantissa as f64 / POW10.get(decimals).copied()?;
    Some(if neg { -v } else { v })
}

/// `buf[s..end]` (1 to 16 bytes) as `(0|[1-9][0-9]*)(\.[0-9]+)?`: (its digits as an integer,
/// its number of decimals), by [`swar_digits`].
#[cfg_attr(
    all(
        target_arch = "x86_64",
        target_feature = "avx512bw",
        target_feature = "avx512vl"
    ),
    allow(dead_code)
)]
#[inline(always)]
pub(crate) fn swar_mantissa(buf: &[u8], s: usize, end: usize) -> Option<(u64, usize)> {
    let len = end.checked_sub(s)?;
    if len == 0 || len > 16 {
        return None;
    }
    let mut a = [0u8; 16];
    a.get_mut(..len)?.copy_from_slice(buf.get(s..end)?);
    let (l, h) = a.split_at(8);
    swar_digits(
        u64::from_le_bytes(l.try_into().ok()?),
        u64::from_le_bytes(h.try_into().ok()?),
        len,
    )
}

/// The first `len` (1..=16) bytes of `lo` then `hi` as `(0|[1-9][0-9]*)(\.[0-9]+)?`: (the
/// digits as an integer, the number of decimals).
#[inline(always)]
fn swar_digits(lo: u64, hi: u64, len: usize) -> Option<(u64, usize)> {
    if len == 0 || len > 16 {
        return None;
    }
    // Digit values; the dot becomes 0x1E, any other byte something above 9 too.
    let x_lo = (lo ^ 0x3030_3030_3030_3030) & low_bytes(len);
    let x_hi = (hi ^ 0x3030_3030_3030_3030) & low_bytes(len.saturating_sub(8));
    let (a_lo, a_hi) = (non_digits(x_lo), non_digits(x_hi));
    let (d_lo, d_hi, n, decimals) = if a_lo | a_hi == 0 {
        (x_lo, x_hi, len, 0)
    } else {
        // Exactly one non-digit, a dot with digits on both sides.
        if a_lo.count_ones() + a_hi.count_ones() != 1 {
            return None;
        }
        let at = if a_lo != 0 {
            (a_lo.trailing_zeros() / 8) as usize
        } else {
            8 + (a_hi.trailing_zeros() / 8) as usize
        };
        let dot = if at < 8 {
            x_lo >> (8 * at)
        } else {
            x_hi >> (8 * (at - 8))
        };
        if dot as u8 != 0x1E || at == 0 || at + 1 >= len {
            return None;
        }
        // Close the gap: the bytes after the dot move down one.
        let (l, h) = if at < 8 {
            let keep = low_bytes(at);
            (
                (x_lo & keep) | ((x_lo >> 8) & !keep) | (x_hi << 56),
                x_hi >> 8,
            )
        } else {
            let keep = low_bytes(at - 8);
            (x_lo, (x_hi & keep) | ((x_hi >> 8) & !keep))
        };
        (l, h, len - 1, len - 1 - at)
    };
    // No leading zero unless the integer part is exactly "0".
    if x_lo as u8 == 0 && n - decimals > 1 {
        return None;
    }
    let mantissa = if n <= 8 {
        eight_digits(d_lo << (8 * (8 - n)))
    } else {
        eight_digits(d_lo)
            .wrapping_mul(POW10_U64.get(n - 8).copied()?)
            .wrapping_add(eight_digits(d_hi << (8 * (16 - n))))
    };
    Some((mantissa, decimals))
}

/// A whole token (no surrounding whitespace) as a JSON number, the same value the scanner's
/// [`Scanner::f64`] gives for it; `None` if it is not exactly one number or overflows.
#[inline(always)]
pub(crate) fn token_f64(tok: &[u8]) -> Option<f64> {
    if let Some(v) = short_number(tok) {
        return Some(v);
    }
    token_f64_slow(tok)
}

#[inline(never)]
fn token_f64_slow(tok: &[u8]) -> Option<f64> {
    match number(tok, 0) {
        Ok((v, n)) if n == tok.len() => Some(v),
        _ => None,
    }
}

/// Parses a whole byte string as a JSON number (e.g. a numeric string's contents); `None` if
/// it is not exactly one number or overflows.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    token_f64(s)
}

/// Appends `s` as a JSON string (quoted, with `"`, `\` and control bytes escaped).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 15)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Appends `v` in decimal, without allocating.
pub fn write_u64(out: &mut Vec<u8>, v: u64) {
    let mut digits = [0u8; 20];
    let mut n = v;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A decimal number as the property tests spell it: sign, integer digits, optional fraction
/// and exponent (the fraction without its dot, the exponent with its `e`).
#[cfg(test)]
pub(crate) fn number_text(neg: bool, int: &str, frac: Option<&str>, exp: Option<&str>) -> String {
    let mut text = String::new();
    if neg {
        text.push('-');
    }
    text.push_str(int);
    if let Some(f) = frac {
        text.push('.');
        text.push_str(f);
    }
    if let Some(e) = exp {
        text.push_str(e);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Result<f64, JsonError> {
        Scanner::new(s.as_bytes()).f64()
    }

    #[test]
    fn numbers_round_correctly() {
        let cases = [
            "0",
            "-0",
            "1",
            "-1",
            "0.1",
            "45.43",
            "1e-05",
            "1E+2",
            "116086.34",
            "0.0028213400122472977",
            "1.742e-05",
            "9007199254740993",
            "123456789012345678901234567890",
            "2.2250738585072011e-308",
            "4.9e-324",
            "1.7976931348623157e308",
            "0.000000000000000000000000000001",
            "-25.384564876",
            "3.14159265358979323846264338327950288",
        ];
        for c in cases {
            let want: f64 = c.parse().unwrap();
            let got = f(c).unwrap();
            assert_eq!(got.to_bits(), want.to_bits(), "{c}");
            let quoted = format!("\"{c}\"");
            assert_eq!(f(&quoted).unwrap().to_bits(), want.to_bits(), "{quoted}");
        }
    }

    #[test]
    fn absent_numbers_are_nan_and_bad_ones_errors() {
        assert!(f("null").unwrap().is_nan());
        assert!(f("\"\"").unwrap().is_nan());
        assert!(matches!(
            f("1e400"),
            Err(JsonError {
                kind: JsonErrorKind::OutOfRange,
                ..
            })
        ));
        assert!(matches!(
            f("\"1e400\""),
            Err(JsonError {
                kind: JsonErrorKind::OutOfRange,
                ..
            })
        ));
        for bad in [
            "01", "1.", ".5", "-", "1e", "1e+", "+1", "\"1 \"", "\"abc\"", "1x",
        ] {
            assert!(f(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            f("true"),
            Err(JsonError {
                kind: JsonErrorKind::Unexpected(_),
                ..
            })
        ));
        assert!(matches!(f("12"), Ok(12.0)));
        assert!(matches!(
            f("-1."),
            Err(JsonError {
                kind: JsonErrorKind::Truncated,
                ..
            })
        ));
    }

    #[test]
    fn integers_and_hex() {
        assert_eq!(Scanner::new(b"18446744073709551615").u64(), Ok(u64::MAX));
        assert!(matches!(
            Scanner::new(b"18446744073709551616").u64(),
            Err(JsonError {
                kind: JsonErrorKind::OutOfRange,
                ..
            })
        ));
        assert_eq!(Scanner::new(b"\"403691824\"").u64(), Ok(403_691_824));
        assert!(Scanner::new(b"1.5").u64().is_err());
        assert!(Scanner::new(b"-1").u64().is_err());
        assert_eq!(Scanner::new(b"-32601").i64(), Ok(-32601));
        assert_eq!(Scanner::new(b"\"60012\"").i64(), Ok(60012));
        assert_eq!(Scanner::new(b"-9223372036854775808").i64(), Ok(i64::MIN));
        assert!(Scanner::new(b"9223372036854775808").i64().is_err());
        assert_eq!(Scanner::new(b"\"0x1b4\"").hex_u64(), Ok(0x1b4));
        assert_eq!(
            Scanner::new(b"\"0xFFFFFFFFFFFFFFFF\"").hex_u64(),
            Ok(u64::MAX)
        );
        assert_eq!(Scanner::new(b"\"0x0000000000000000001\"").hex_u64(), Ok(1));
        assert!(matches!(
            Scanner::new(b"\"0x10000000000000000\"").hex_u64(),
            Err(JsonError {
                kind: JsonErrorKind::OutOfRange,
                ..
            })
        ));
        for bad in ["\"0x\"", "\"12\"", "\"0xg\"", "12"] {
            assert!(Scanner::new(bad.as_bytes()).hex_u64().is_err(), "{bad}");
        }
    }

    #[test]
    fn walks_objects_and_skips() {
        let doc = br#" { "a" : [1, {"x": "y\"}"}, [true, null]], "b": -2.5e1 , "c":{} } "#;
        let mut sc = Scanner::new(doc);
        let mut obj = sc.object().unwrap();
        assert_eq!(obj.next(&mut sc).unwrap(), Some(&b"a"[..]));
        let span = sc.raw().unwrap();
        assert_eq!(sc.span_bytes(span), br#"[1, {"x": "y\"}"}, [true, null]]"#);
        assert_eq!(obj.next(&mut sc).unwrap(), Some(&b"b"[..]));
        assert_eq!(sc.f64().unwrap(), -25.0);
        assert_eq!(obj.next(&mut sc).unwrap(), Some(&b"c"[..]));
        sc.skip().unwrap();
        assert_eq!(obj.next(&mut sc).unwrap(), None);
        sc.end().unwrap();
    }

    #[test]
    fn rejects_bad_structure() {
        for bad in [
            &b"{\"a\":1,}"[..],
            b"{\"a\" 1}",
            b"{\"a\":1 \"b\":2}",
            b"{,\"a\":1}",
            b"{\"a\":[1}]}",
            b"{\"a\":[1",
            b"{\"a\":\"x",
            b"{\"a\":1}x",
            b"{\"a\":tru",
            b"",
            b"   ",
        ] {
            let mut sc = Scanner::new(bad);
            let res = (|| {
                let mut obj = sc.object()?;
                while obj.next(&mut sc)?.is_some() {
                    sc.skip()?;
                }
                sc.end()
            })();
            assert!(res.is_err(), "{}", bad.escape_ascii());
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let mut doc = vec![b'['; 100_000];
        doc.extend(vec![b']'; 100_000]);
        assert!(matches!(
            Scanner::new(&doc).skip(),
            Err(JsonError {
                kind: JsonErrorKind::TooDeep,
                ..
            })
        ));
        let mut ok = vec![b'['; MAX_DEPTH];
        ok.extend(vec![b']'; MAX_DEPTH]);
        assert_eq!(Scanner::new(&ok).skip(), Ok(()));
    }

    #[test]
    fn swar_digit_runs_match_scalar() {
        // Every run length 0..=25 at every alignment, followed by a non-digit or the end.
        for len in 0..=25usize {
            for pad in 0..9usize {
                for tail in [&b""[..], b",", b".", b"e", b"\"", b"/", b":"] {
                    let mut buf = vec![b' '; pad];
                    let digits: Vec<u8> =
                        (0..len).map(|i| b'0' + ((i * 7 + 3) % 10) as u8).collect();
                    buf.extend_from_slice(&digits);
                    buf.extend_from_slice(tail);
                    let (v, n, end) = digit_run(&buf, pad);
                    assert_eq!((n, end), (len, pad + len), "len {len} pad {pad}");
                    if len <= 19 {
                        let want = std::str::from_utf8(&digits)
                            .unwrap()
                            .parse::<u64>()
                            .unwrap_or(0);
                        assert_eq!(v, want, "len {len} pad {pad}");
                    }
                }
            }
        }
        assert_eq!(eight_digits(0x0807_0605_0403_0201), 12_345_678);
    }

    #[test]
    fn string_scan_finds_the_closing_quote() {
        for len in 0..40usize {
            for esc in [None, Some(0usize), Some(7), Some(8), Some(15)] {
                let mut body: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                if let Some(e) = esc.filter(|&e| e + 1 < len) {
                    body[e] = b'\\';
                    body[e + 1] = b'"';
                }
                let mut doc = vec![b'"'];
                doc.extend_from_slice(&body);
                doc.extend_from_slice(b"\",1");
                let mut sc = Scanner::new(&doc);
                assert_eq!(sc.str().unwrap(), &body[..], "len {len} esc {esc:?}");
                assert_eq!(sc.pos(), len + 2);
            }
        }
    }

    /// Reference: the raw body of the string starting at `buf[at]` (a quote), byte by byte.
    fn reference_string(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let mut i = at + 1;
        loop {
            match buf.get(i)? {
                b'"' => return Some((&buf[at + 1..i], i + 1)),
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
    }

    #[test]
    fn index_matches_a_byte_by_byte_reader_across_blocks() {
        // Arrays of strings full of backslashes, quotes, brackets and commas, at every
        // alignment: the index must find exactly the same string ends as a byte reader.
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let alphabet = b"ab\\\\\\{}[],:\" ";
        for round in 0..2_000 {
            let mut doc = vec![b' '; (rnd(70)) as usize];
            doc.push(b'[');
            let mut want = Vec::new();
            let n = 1 + rnd(6);
            for k in 0..n {
                if k > 0 {
                    doc.push(b',');
                }
                let start = doc.len();
                doc.push(b'"');
                let len = rnd(150);
                let mut i = 0;
                while i < len {
                    let c = alphabet[rnd(alphabet.len() as u64) as usize];
                    if c == b'\\' {
                        // An escape: backslash and any byte (a quote or a backslash too).
                        doc.push(b'\\');
                        doc.push(alphabet[rnd(alphabet.len() as u64) as usize]);
                        i += 2;
                    } else if c == b'"' {
                        doc.extend_from_slice(b"\\\"");
                        i += 2;
                    } else {
                        doc.push(c);
                        i += 1;
                    }
                }
                doc.push(b'"');
                want.push(reference_string(&doc, start).unwrap().0.to_vec());
            }
            doc.push(b']');
            let lead = doc.iter().position(|&b| b == b'[').unwrap();
            // From the start, and re-entered at the array (a span recorded earlier).
            for origin in [0, lead] {
                let mut sc = Scanner::at(&doc, origin);
                let mut arr = sc.array().unwrap();
                let mut got = Vec::new();
                while arr.next(&mut sc).unwrap() {
                    got.push(sc.str().unwrap().to_vec());
                }
                sc.end().unwrap();
                assert_eq!(
                    got,
                    want,
                    "round {round} origin {origin}: {}",
                    doc.escape_ascii()
                );
                // Skipping the whole array finds the same end.
                let mut sc = Scanner::at(&doc, origin);
                sc.skip().unwrap();
                assert_eq!(sc.pos(), doc.len(), "round {round}");
            }
        }
    }

    #[test]
    fn reentry_inside_a_later_block_ignores_earlier_bytes() {
        // The bytes before the origin hold an unterminated string: they must not count.
        let mut doc = b"\"abc \\".to_vec();
        doc.extend(std::iter::repeat_n(b'x', 100));
        let at = doc.len();
        doc.extend_from_slice(br#"{"k":"v,}","n":[1,{"a":"]"}]}"#);
        let mut sc = Scanner::at(&doc, at);
        let span = sc.raw().unwrap();
        assert_eq!(
            span,
            Span {
                start: at,
                end: doc.len()
            }
        );
        let mut sc = Scanner::at(&doc, at);
        let mut obj = sc.object().unwrap();
        assert_eq!(obj.next(&mut sc).unwrap(), Some(&b"k"[..]));
        assert_eq!(sc.str().unwrap(), b"v,}");
        assert_eq!(obj.next(&mut sc).unwrap(), Some(&b"n"[..]));
        sc.skip().unwrap();
        assert_eq!(obj.next(&mut sc).unwrap(), None);
    }

    #[test]
    fn skipped_scalars_stop_at_quotes() {
        for bad in [&br#"{"a":1"2,"b":3}"#[..], br#"{"a":tr"ue}"#, br#"1"x""#] {
            let mut sc = Scanner::new(bad);
            let res = (|| {
                sc.skip()?;
                sc.end()
            })();
            assert!(res.is_err(), "{}", bad.escape_ascii());
        }
    }

    #[test]
    fn short_numbers_agree_with_std() {
        let mut x: u64 = 7;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let int = (x >> 40) % 1_000_000;
            let frac = (x >> 8) % 100_000_000;
            let decimals = (x % 9) as usize;
            let text = match decimals {
                0 => format!("{int}"),
                d => format!("{int}.{:0width$}", frac % 10u64.pow(d as u32), width = d),
            };
            let text = if x & 1 == 1 { format!("-{text}") } else { text };
            let text = match (x >> 3) % 4 {
                0 => format!("{text}e-{}", (x >> 5) % 30),
                1 => format!("{text}E{}", (x >> 5) % 12),
                _ => text,
            };
            let want: f64 = text.parse().unwrap();
            let got = f(&text).unwrap();
            assert_eq!(got.to_bits(), want.to_bits(), "{text}");
        }
    }

    #[test]
    fn writes_json() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"b\\c\n\u{1}");
        assert_eq!(out, br#""a\"b\\c\n\u0001""#);
        out.clear();
        for v in [0, 7, 42, u64::MAX] {
            out.clear();
            write_u64(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
    }

    /// `swar_f64` against `str::parse::<f64>` on one token, at every
    /// alignment and with the bytes after it varied; when they decline, the scanner's
    /// `token_f64` must still agree.
    fn check_token(text: &str) {
        let want = text.parse::<f64>().ok().filter(|v| v.is_finite());
        for pad in 0..3 {
            for tail in [&b","[..], b"}", b"", b"                ", b"e5,", b".1,"] {
                let mut buf = vec![b' '; pad];
                buf.extend_from_slice(text.as_bytes());
                let end = buf.len();
                buf.extend_from_slice(tail);
                // Where they answer, the token is a JSON number (the scanner takes it too)
                // and the value is std's.
                let json = token_f64(text.as_bytes()).map(f64::to_bits);
                if let Some(got) = swar_f64(&buf, pad, end) {
                    assert_eq!(Some(got.to_bits()), want.map(f64::to_bits), "{text}");
                    assert_eq!(Some(got.to_bits()), json, "{text}");
                }
            }
        }
        if let Some(got) = token_f64(text.as_bytes()) {
            assert_eq!(Some(got.to_bits()), want.map(f64::to_bits), "{text}");
        }
    }

    #[test]
    fn swar_numbers_edge_cases() {
        for t in [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "1",
            "9",
            "10",
            "0.5",
            "45.43",
            "116086.34",
            "0.24231149",
            "1234567890123456",
            "9007199254740993",
            "9007199254740992",
            "0.000000000000001",
            "123456789012345.6",
            "1.234567890123456",
            "-25.13021",
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
            "12a",
            "1 ",
            " 1",
            "0x10",
            "99999999999999999",
            "4.9e-324",
        ] {
            check_token(t);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]

        #[test]
        fn swar_numbers_agree_with_std(
            neg in proptest::bool::ANY,
            int in "(0|[1-9][0-9]{0,15})",
            frac in proptest::option::of("[0-9]{1,16}"),
        ) {
            let text = super::number_text(neg, &int, frac.as_deref(), None);
            check_token(&text);
        }

        #[test]
        fn swar_numbers_reject_what_std_rejects(text in "[-0-9.eE+x ]{1,18}") {
            check_token(&text);
        }
    }

    #[test]
    fn whitespace_before_a_colon_after_a_key_across_blocks() {
        // Keys at every offset around the 64-byte boundary, each followed by whitespace and
        // then the colon: once read, a key is never searched again.
        for pad in 40..80 {
            let doc = format!("{{\"{}\":1,\"key_across\" \n: 2}}", "x".repeat(pad));
            let mut sc = Scanner::new(doc.as_bytes());
            let mut obj = sc.object().unwrap();
            assert!(obj.next(&mut sc).unwrap().is_some());
            assert_eq!(sc.f64().unwrap(), 1.0);
            assert_eq!(
                obj.next(&mut sc).unwrap(),
                Some(&b"key_across"[..]),
                "pad {pad}"
            );
            assert_eq!(sc.f64().unwrap(), 2.0);
            assert_eq!(obj.next(&mut sc).unwrap(), None);
            sc.end().unwrap();
        }
    }
}
