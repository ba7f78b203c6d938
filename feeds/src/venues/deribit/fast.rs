//! The `ticker.*` fast path, in two stages.
//!
//! 1. **Learned shapes.** Deribit sends every ticker of a channel with the same keys in the same
//!    order; only the values change. The message's skeleton (its bytes minus the value
//!    contents, [`ShapeIndex`]) is compared with the skeletons of the last few tickers the walk
//!    below accepted; on a match, each field is read at the `:` with the ordinal recorded for
//!    it, a handful of independent reads instead of a walk over ~170 structural characters.
//!    The numbers (prices, sizes, IVs, Greeks) are converted four at a time, one per 128-bit
//!    lane of an AVX-512 register ([`decimal_x4`](super::super::json::decimal::decimal_x4));
//!    a lane it declines (an exponent, a long token, `null`, a string) takes the one-number
//!    path, with the walk's rules.
//! 2. **The walk.** Otherwise one walk over the notification
//!    (`{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker....","data":{...}}}`)
//!    reads the ticker's fields as it meets them, in any key order and with any whitespace, and
//!    skips the rest (`stats`, `estimated_delivery_price`, ...). A message it accepts, whose
//!    fields each appear once and which has no whitespace outside strings (as venues send),
//!    teaches its shape to stage 1.
//!
//! Owns only these two stages. Neither decides a message is bad: anything they do not handle
//! (another channel or method, `data` before `channel`, escapes, a value of an unexpected type,
//! a repeated `params`, `channel` or `data`, a missing field, a malformed or truncated text)
//! answers `None`, and the general path parses the message from the start and gives the
//! answer or the error. When they answer `Some`, the general path would have produced the same
//! fields: stage 1 accepts exactly what the walk would accept for the same skeleton (the values
//! get the same checks, and every number is correctly rounded, bit for bit
//! `str::parse::<f64>`'s), and the walk is at least as strict as the general scanner (the
//! differential tests, over streams of tickers with rewritten values, and the `venue_deribit`
//! fuzz target check both). Every message is read whole: nothing is carried over from the
//! previous ticker. Never allocates after construction.
//!
//! Measured (`keel-bench parse`, `deribit_ticker`: 256 different option tickers of ~774 bytes
//! in turn): see README.md's figures. Where the time goes (stage by stage, by returning early
//! in a throwaway harness over the same stream, other builds running): mention check and shape
//! index ~80 ns (12 blocks; three passes, see [`ShapeIndex`]), skeleton compare ~8 ns, `:`
//! lookups ~14 ns, method/channel/name/timestamp ~14 ns, the 15 numbers ~90–100 ns (four
//! groups of four, each a long dependency chain ending in a vector division), the rest (event
//! building, the instrument lookup, the two events handed over) ~30 ns: ~235 ns in all.
//! The ≤ 120 ns goal needs the index and the numbers roughly halved again.

use super::super::json::decimal::{Parts, decimal_parts, decimal_u64};
use super::super::json::shape::{MAX_LEN, ShapeIndex};
use super::super::json::walk::Walker;
use super::super::json::{swar_f64, token_f64};
use super::{NO_GREEKS, TickerFields};
use crate::event::VenueGreeks;
use wide::u8x64;

/// The fields the fast path reads, as indices into [`Slots`].
mod field {
    pub(super) const METHOD: u8 = 0;
    pub(super) const CHANNEL: u8 = 1;
    pub(super) const TIMESTAMP: u8 = 2;
    pub(super) const NAME: u8 = 3;
    /// Numbers 4..=14, in [`super::number_slot`] order.
    pub(super) const BID: u8 = 4;
    pub(super) const BID_SIZE: u8 = 5;
    pub(super) const ASK: u8 = 6;
    pub(super) const ASK_SIZE: u8 = 7;
    pub(super) const MARK: u8 = 8;
    pub(super) const MARK_IV: u8 = 9;
    pub(super) const BID_IV: u8 = 10;
    pub(super) const ASK_IV: u8 = 11;
    pub(super) const UNDERLYING: u8 = 12;
    pub(super) const INDEX: u8 = 13;
    pub(super) const FUNDING: u8 = 14;
    pub(super) const GREEKS: u8 = 15;
    /// Greeks 16..=20, in [`super::greek_slot`] order.
    pub(super) const DELTA: u8 = 16;
    pub(super) const GAMMA: u8 = 17;
    pub(super) const VEGA: u8 = 18;
    pub(super) const THETA: u8 = 19;
    pub(super) const RHO: u8 = 20;
    /// keel-sim's `sim_send_ns` (never in real Deribit tickers).
    pub(super) const SIM_SEND: u8 = 21;
    pub(super) const COUNT: usize = 22;
}

/// The ticker number a field id names.
#[inline(always)]
fn number_slot<'f>(f: &'f mut TickerFields<'_>, id: u8) -> Option<&'f mut f64> {
    Some(match id {
        field::BID => &mut f.bid,
        field::BID_SIZE => &mut f.bid_size,
        field::ASK => &mut f.ask,
        field::ASK_SIZE => &mut f.ask_size,
        field::MARK => &mut f.mark,
        field::MARK_IV => &mut f.mark_iv,
        field::BID_IV => &mut f.bid_iv,
        field::ASK_IV => &mut f.ask_iv,
        field::UNDERLYING => &mut f.underlying,
        field::INDEX => &mut f.index,
        field::FUNDING => &mut f.funding,
        _ => return None,
    })
}

/// The Greek a field id names.
#[inline(always)]
fn greek_slot(g: &mut VenueGreeks, id: u8) -> Option<&mut f64> {
    Some(match id {
        field::DELTA => &mut g.delta,
        field::GAMMA => &mut g.gamma,
        field::VEGA => &mut g.vega,
        field::THETA => &mut g.theta,
        field::RHO => &mut g.rho,
        _ => return None,
    })
}

/// Where the walk found each field: the offset of its `:`. A field met twice makes the
/// message unfit to learn from.
#[derive(Clone, Copy, Debug)]
struct Slots {
    colon: [Option<usize>; field::COUNT],
    repeated: bool,
}

impl Slots {
    const NONE: Self = Self {
        colon: [None; field::COUNT],
        repeated: false,
    };

    #[inline(always)]
    fn set(&mut self, id: u8, colon: usize) {
        if let Some(s) = self.colon.get_mut(usize::from(id)) {
            self.repeated |= s.is_some();
            *s = Some(colon);
        }
    }
}

// ---- Stage 2: the walk. ----

/// The first (up to) 8 bytes of `s`, little-endian, zero-padded: a key's dispatch word.
const fn word(s: &[u8]) -> u64 {
    let mut w = 0u64;
    let mut i = 0;
    while i < s.len() && i < 8 {
        w |= (s[i] as u64) << (8 * i);
        i += 1;
    }
    w
}

/// The dispatch word of a key read from the input.
#[inline(always)]
fn key_word(key: &[u8]) -> u64 {
    match key.first_chunk::<8>() {
        Some(w) => u64::from_le_bytes(*w),
        None => word(key),
    }
}

/// A number field: a number, a numeric string, `""` or `null` (both NaN), as
/// [`Scanner::f64`](super::super::json::Scanner::f64) reads it. `at` gets the offset past the
/// delimiter; the bool says whether a `,` follows.
#[inline(always)]
fn number(w: &mut Walker<'_>, v: usize, b: u8, at: &mut usize) -> Option<(f64, bool)> {
    match b {
        b'-' | b'0'..=b'9' => {
            let (tok, more) = w.scalar(v, at)?;
            Some((token_number(w.input(), v, tok)?, more))
        }
        b'n' => {
            let (tok, more) = w.scalar(v, at)?;
            (tok == b"null").then_some((f64::NAN, more))
        }
        b'"' => {
            let mut end = 0;
            let s = w.string(v, &mut end)?;
            Some((string_number(w.input(), v + 1, s)?, w.after_value(end, at)?))
        }
        _ => None,
    }
}

/// The number token `tok`, which starts at `buf[start]`.
#[inline(always)]
fn token_number(buf: &[u8], start: usize, tok: &[u8]) -> Option<f64> {
    match swar_f64(buf, start, start + tok.len()) {
        Some(x) => Some(x),
        None => token_f64(tok),
    }
}

/// A numeric string's value (its contents `s` start at `buf[start]`): `""` is NaN.
#[inline(always)]
fn string_number(buf: &[u8], start: usize, s: &[u8]) -> Option<f64> {
    if s.is_empty() {
        Some(f64::NAN)
    } else {
        token_number(buf, start, s)
    }
}

/// A millisecond timestamp token: 1 to 19 digits.
#[inline(always)]
fn digits(tok: &[u8]) -> Option<u64> {
    if tok.is_empty() || tok.len() > 19 {
        return None;
    }
    let mut x = 0u64;
    for &d in tok {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        x = x * 10 + u64::from(d);
    }
    Some(x)
}

/// `greeks`: `null` or an object of numbers; `colon` is the offset of its `:`.
#[inline(always)]
fn greeks(
    w: &mut Walker<'_>,
    v: usize,
    b: u8,
    at: &mut usize,
    slots: &mut Slots,
) -> Option<(Option<VenueGreeks>, bool)> {
    if b == b'n' {
        let (tok, more) = w.scalar(v, at)?;
        return (tok == b"null").then_some((None, more));
    }
    if b != b'{' {
        return None;
    }
    let mut g = NO_GREEKS;
    let mut inner = w.open_object(v)?;
    let mut first = true;
    while let Some((key, val)) = w.member(&mut inner, first)? {
        first = false;
        let (v, b) = w.value_start(val)?;
        let id = match key {
            b"delta" => field::DELTA,
            b"gamma" => field::GAMMA,
            b"vega" => field::VEGA,
            b"theta" => field::THETA,
            b"rho" => field::RHO,
            _ => {
                if w.skip_value(v, b, &mut inner)? {
                    continue;
                }
                break;
            }
        };
        let (x, more) = number(w, v, b, &mut inner)?;
        if let Some(s) = greek_slot(&mut g, id) {
            *s = x;
        }
        slots.set(id, val - 1);
        if !more {
            break;
        }
    }
    Some((Some(g), w.after_value(inner, at)?))
}

const TIMESTAMP: u64 = word(b"timestamp");
const INSTRUMENT_NAME: u64 = word(b"instrument_name");
const BEST_BID: u64 = word(b"best_bid_price");
const BEST_ASK: u64 = word(b"best_ask_price");
const MARK_PRICE: u64 = word(b"mark_price");
const MARK_IV: u64 = word(b"mark_iv");
const BID_IV: u64 = word(b"bid_iv");
const ASK_IV: u64 = word(b"ask_iv");
const UNDERLYING: u64 = word(b"underlying_price");
const INDEX_PRICE: u64 = word(b"index_price");
const CURRENT_FUNDING: u64 = word(b"current_funding");
const GREEKS: u64 = word(b"greeks");
const SIM_SEND_NS: u64 = word(b"sim_send_ns");

/// The ticker's `data` object, whose `{` is the next structural after `from`; returns its
/// fields and the offset just past its `}`.
#[inline(always)]
fn data<'a>(
    w: &mut Walker<'a>,
    from: usize,
    slots: &mut Slots,
) -> Option<(TickerFields<'a>, usize)> {
    let mut f = TickerFields::EMPTY;
    let mut at = w.open_object(from)?;
    let mut first = true;
    while let Some((key, val)) = w.member(&mut at, first)? {
        first = false;
        let (v, b) = w.value_start(val)?;
        // Dispatch on (length, first 8 bytes); keys longer than 8 bytes are then compared
        // whole (a compare of constant length: a couple of loads).
        let id = match (key.len(), key_word(key)) {
            (9, TIMESTAMP) if key == b"timestamp" => {
                if !b.is_ascii_digit() {
                    return None;
                }
                let (tok, more) = w.scalar(v, &mut at)?;
                f.ts_ms = Some(digits(tok)?);
                slots.set(field::TIMESTAMP, val - 1);
                if more {
                    continue;
                }
                break;
            }
            // keel-sim's send time (never in real Deribit messages: one more arm, no cost).
            (11, SIM_SEND_NS) if key == b"sim_send_ns" => {
                if !b.is_ascii_digit() {
                    return None;
                }
                let (tok, more) = w.scalar(v, &mut at)?;
                f.send_ns = Some(digits(tok)?);
                slots.set(field::SIM_SEND, val - 1);
                if more {
                    continue;
                }
                break;
            }
            (15, INSTRUMENT_NAME) if key == b"instrument_name" => {
                if b != b'"' {
                    return None;
                }
                let mut end = 0;
                f.name = Some(w.string(v, &mut end)?);
                slots.set(field::NAME, val - 1);
                if w.after_value(end, &mut at)? {
                    continue;
                }
                break;
            }
            (6, GREEKS) => {
                let (g, more) = greeks(w, v, b, &mut at, slots)?;
                f.greeks = g;
                slots.set(field::GREEKS, val - 1);
                if more {
                    continue;
                }
                break;
            }
            (14, BEST_BID) if key == b"best_bid_price" => field::BID,
            (15, BEST_BID) if key == b"best_bid_amount" => field::BID_SIZE,
            (14, BEST_ASK) if key == b"best_ask_price" => field::ASK,
            (15, BEST_ASK) if key == b"best_ask_amount" => field::ASK_SIZE,
            (10, MARK_PRICE) if key == b"mark_price" => field::MARK,
            (7, MARK_IV) => field::MARK_IV,
            (6, BID_IV) => field::BID_IV,
            (6, ASK_IV) => field::ASK_IV,
            (16, UNDERLYING) if key == b"underlying_price" => field::UNDERLYING,
            (11, INDEX_PRICE) if key == b"index_price" => field::INDEX,
            (15, CURRENT_FUNDING) if key == b"current_funding" => field::FUNDING,
            _ => {
                if w.skip_value(v, b, &mut at)? {
                    continue;
                }
                break;
            }
        };
        let (x, more) = number(w, v, b, &mut at)?;
        if let Some(s) = number_slot(&mut f, id) {
            *s = x;
        }
        slots.set(id, val - 1);
        if !more {
            break;
        }
    }
    Some((f, at))
}

/// `params`: `channel` (a `ticker.` one) before `data`; other members skipped.
#[inline(always)]
fn params<'a>(
    w: &mut Walker<'a>,
    from: usize,
    slots: &mut Slots,
) -> Option<(TickerFields<'a>, usize)> {
    let mut at = w.open_object(from)?;
    let mut channel = false;
    let mut fields = None;
    let mut first = true;
    while let Some((key, val)) = w.member(&mut at, first)? {
        first = false;
        let (v, b) = w.value_start(val)?;
        let more = match key {
            b"channel" if !channel && b == b'"' => {
                let mut end = 0;
                if !w.string(v, &mut end)?.starts_with(b"ticker.") {
                    return None;
                }
                channel = true;
                slots.set(field::CHANNEL, val - 1);
                w.after_value(end, &mut at)?
            }
            b"data" if channel && fields.is_none() => {
                let (f, end) = data(w, v, slots)?;
                fields = Some(f);
                w.after_value(end, &mut at)?
            }
            b"channel" | b"data" => return None,
            _ => w.skip_value(v, b, &mut at)?,
        };
        if !more {
            break;
        }
    }
    Some((fields?, at))
}

/// Stage 2: the ticker fields of `buf` if it is a whole, well-formed `ticker.*` notification
/// this walk handles, and where each field was.
#[inline]
fn walk<'a>(buf: &'a [u8], slots: &mut Slots) -> Option<TickerFields<'a>> {
    let mut w = Walker::new(buf)?;
    let mut at = w.open_object(0)?;
    let mut subscription = false;
    let mut fields = None;
    let mut first = true;
    while let Some((key, val)) = w.member(&mut at, first)? {
        first = false;
        let (v, b) = w.value_start(val)?;
        let more = match key {
            b"jsonrpc" => w.skip_value(v, b, &mut at)?,
            b"method" if b == b'"' => {
                let mut end = 0;
                if w.string(v, &mut end)? != b"subscription" {
                    return None;
                }
                subscription = true;
                slots.set(field::METHOD, val - 1);
                w.after_value(end, &mut at)?
            }
            b"params" if subscription && fields.is_none() => {
                let (f, end) = params(&mut w, v, slots)?;
                fields = Some(f);
                w.after_value(end, &mut at)?
            }
            _ => return None,
        };
        if !more {
            break;
        }
    }
    if !w.rest_is_ws(at) {
        return None;
    }
    fields
}

// ---- Stage 1: learned shapes. ----

/// Shapes remembered (option and perpetual tickers on one connection, with room to spare).
const SHAPES: usize = 4;

/// What a learned ticker's `greeks` was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GreeksShape {
    Absent,
    Null,
    Object,
}

/// A ticker shape learned from a message the walk accepted.
#[derive(Clone)]
struct Shape {
    skeleton_len: usize,
    skeleton: [u8; MAX_LEN],
    /// `:` ordinals of the fields present, ascending, and the field each introduces.
    ordinals: [u16; field::COUNT],
    fields: [u8; field::COUNT],
    count: usize,
    /// Bit `id` set for each field present.
    present: u32,
    /// The number fields present (prices, sizes, IVs, Greeks), by id.
    numbers: [u8; field::COUNT],
    number_count: usize,
    greeks: GreeksShape,
}

impl Shape {
    #[inline(always)]
    fn skeleton(&self) -> &[u8] {
        self.skeleton.get(..self.skeleton_len).unwrap_or(&[])
    }
}

/// The fast path's state: the shape index (reused for every message) and the shapes learned.
pub(super) struct TickerPath {
    index: ShapeIndex,
    shapes: [Shape; SHAPES],
    learned: usize,
    next: usize,
}

/// Whether `"ticker.` appears in the first 128 bytes, where a notification's channel is: a
/// cheap test that keeps other messages (books, trades, ...) off the fast path, which would
/// only step aside for them later. A ticker whose channel comes later takes the general path.
#[inline(always)]
fn mentions_ticker(buf: &[u8]) -> bool {
    const NEEDLE: u64 = word(b"\"ticker.");
    let mut carry = 0u64;
    for base in [0usize, 64] {
        let Some(chunk) = buf
            .get(base..base + 64)
            .and_then(|s| <[u8; 64]>::try_from(s).ok())
        else {
            // A short tail: byte by byte (messages under 128 bytes are rarely tickers).
            let tail = buf.get(base.saturating_sub(7)..).unwrap_or(&[]);
            return tail.windows(8).any(|w| w == b"\"ticker.");
        };
        let v = u8x64::from(chunk);
        let quotes = v.simd_eq(u8x64::splat(b'"')).to_bitmask();
        let tees = v.simd_eq(u8x64::splat(b't')).to_bitmask();
        let mut starts = ((quotes << 1) | carry) & tees;
        carry = quotes >> 63;
        while starts != 0 {
            let at = base + starts.trailing_zeros() as usize;
            starts &= starts - 1;
            if at >= 1 && key_word(buf.get(at - 1..).unwrap_or(&[])) == NEEDLE {
                return true;
            }
        }
    }
    false
}

/// Whether `buf` (indexed: no backslash) has no whitespace outside strings, as venues send
/// JSON. Only such messages teach a shape: the skeleton drops whitespace with the scalar
/// bytes and marks each run by its first byte's class, so a learned skeleton must have no
/// run that starts with whitespace.
#[cold]
fn compact(buf: &[u8]) -> bool {
    let mut in_string = false;
    for &b in buf {
        if b == b'"' {
            in_string = !in_string;
        } else if !in_string && matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            return false;
        }
    }
    true
}

/// A string value whose `:` is at `colon`: its contents.
#[inline(always)]
fn string_at<'a>(ix: &ShapeIndex, buf: &'a [u8], colon: usize) -> Option<&'a [u8]> {
    if buf.get(colon + 1) != Some(&b'"') {
        return None;
    }
    let end = ix.end_from(colon + 2)?;
    (buf.get(end) == Some(&b'"')).then(|| buf.get(colon + 2..end))?
}

/// A scalar value whose `:` is at `colon`: its token, trailing whitespace removed.
#[inline(always)]
fn scalar_at<'a>(ix: &ShapeIndex, buf: &'a [u8], colon: usize) -> Option<&'a [u8]> {
    let start = colon + 1;
    let end = ix.end_from(start)?;
    buf.get(start..end)?
        .trim_ascii_end()
        .get(..)
        .filter(|t| !t.is_empty())
}

/// A number field at `colon`, with the walk's [`number`] rules, before its last rounding
/// step ([`Parts`]: the caller divides all the fields at once).
#[inline(always)]
fn number_at(ix: &ShapeIndex, buf: &[u8], colon: usize) -> Option<Parts> {
    // The common case: a plain number, whose end the index gives.
    if let Some(end) = ix.end_from(colon + 1)
        && let Some(p) = decimal_parts(buf, colon + 1, end)
    {
        return Some(p);
    }
    number_at_slow(ix, buf, colon).map(Parts::value)
}

/// An integer field (`timestamp`, `sim_send_ns`) at `colon`, with the walk's rules.
#[inline(always)]
fn integer_at(ix: &ShapeIndex, buf: &[u8], colon: usize) -> Option<u64> {
    let start = colon + 1;
    let end = ix.end_from(start)?;
    if let Some(x) = decimal_u64(buf, start, end) {
        return Some(x);
    }
    integer_at_slow(ix, buf, colon)
}

#[inline(never)]
fn integer_at_slow(ix: &ShapeIndex, buf: &[u8], colon: usize) -> Option<u64> {
    if !buf.get(colon + 1)?.is_ascii_digit() {
        return None;
    }
    digits(scalar_at(ix, buf, colon)?)
}

#[inline(never)]
fn number_at_slow(ix: &ShapeIndex, buf: &[u8], colon: usize) -> Option<f64> {
    match *buf.get(colon + 1)? {
        b'-' | b'0'..=b'9' => token_number(buf, colon + 1, scalar_at(ix, buf, colon)?),
        b'n' => (scalar_at(ix, buf, colon)? == b"null").then_some(f64::NAN),
        b'"' => string_number(buf, colon + 2, string_at(ix, buf, colon)?),
        _ => None,
    }
}

impl TickerPath {
    pub(super) fn new() -> Self {
        const EMPTY: Shape = Shape {
            skeleton_len: 0,
            skeleton: [0; MAX_LEN],
            ordinals: [0; field::COUNT],
            fields: [0; field::COUNT],
            count: 0,
            present: 0,
            numbers: [0; field::COUNT],
            number_count: 0,
            greeks: GreeksShape::Absent,
        };
        Self {
            index: ShapeIndex::new(),
            shapes: [EMPTY; SHAPES],
            learned: 0,
            next: 0,
        }
    }

    /// The ticker fields of `buf`, or `None` for the general path.
    #[inline]
    pub(super) fn parse<'a>(&mut self, buf: &'a [u8]) -> Option<TickerFields<'a>> {
        if !mentions_ticker(buf) {
            return None;
        }
        let indexed = self.index.build(buf);
        if indexed {
            let skeleton = self.index.skeleton();
            if let Some(shape) = self
                .shapes
                .iter()
                .take(self.learned)
                .find(|s| s.skeleton() == skeleton)
            {
                return read_by_shape(&self.index, shape, buf);
            }
        }
        let mut slots = Slots::NONE;
        let fields = walk(buf, &mut slots)?;
        if indexed && !slots.repeated && compact(buf) {
            self.learn(buf, &slots);
        }
        Some(fields)
    }

    /// Remembers the shape of `buf` (just indexed and walked), replacing the oldest.
    #[cold]
    fn learn(&mut self, buf: &[u8], slots: &Slots) {
        let mut pairs = [(0u16, 0u8); field::COUNT];
        let mut count = 0;
        for (id, colon) in slots.colon.iter().enumerate() {
            let Some(colon) = *colon else { continue };
            let Some(ord) = self.index.colon_ordinal(colon) else {
                return;
            };
            if let Some(p) = pairs.get_mut(count) {
                *p = (ord, id as u8);
                count += 1;
            }
        }
        let Some(pairs) = pairs.get_mut(..count) else {
            return;
        };
        pairs.sort_unstable();
        let greeks = match slots.colon[usize::from(field::GREEKS)] {
            None => GreeksShape::Absent,
            Some(c) if buf.get(c + 1) == Some(&b'{') => GreeksShape::Object,
            Some(_) => GreeksShape::Null,
        };
        let skeleton = self.index.skeleton();
        let Some(shape) = self.shapes.get_mut(self.next) else {
            return;
        };
        let Some(dst) = shape.skeleton.get_mut(..skeleton.len()) else {
            return;
        };
        dst.copy_from_slice(skeleton);
        shape.skeleton_len = skeleton.len();
        shape.present = 0;
        for (k, &(ord, id)) in pairs.iter().enumerate() {
            shape.ordinals[k] = ord;
            shape.fields[k] = id;
            shape.present |= 1 << id;
        }
        shape.count = count;
        shape.number_count = 0;
        for id in field::BID..=field::RHO {
            if id != field::GREEKS && shape.present & (1 << id) != 0 {
                shape.numbers[shape.number_count] = id;
                shape.number_count += 1;
            }
        }
        shape.greeks = greeks;
        self.next = (self.next + 1) % SHAPES;
        self.learned = (self.learned + 1).min(SHAPES);
    }
}

/// Number slots, [`field::COUNT`] rounded up to whole vectors.
const LANES: usize = 24;

/// The lanes of a [`decimal_x4`](super::super::json::decimal::decimal_x4) group that it
/// declined (bits of `lanes`), by the one-number path.
#[cfg(keel_avx512)]
#[cold]
#[inline(never)]
fn declined(
    ix: &ShapeIndex,
    buf: &[u8],
    group: &[u8],
    start: &[usize; 4],
    lanes: u8,
    num: &mut [f64; LANES],
) -> Option<()> {
    for (k, &id) in group.iter().enumerate() {
        if lanes & (1 << k) != 0 {
            let p = number_at(ix, buf, start[k] - 1)?;
            *num.get_mut(usize::from(id))? = p.m * p.mul / p.div;
        }
    }
    Some(())
}

/// The number fields of `shape` (their `:`s in `at`, by field id), by id.
#[inline(always)]
fn numbers(
    ix: &ShapeIndex,
    shape: &Shape,
    at: &[usize; field::COUNT],
    buf: &[u8],
) -> Option<[f64; LANES]> {
    let mut num = [f64::NAN; LANES];
    let ids = shape.numbers.get(..shape.number_count)?;
    #[cfg(keel_avx512)]
    {
        use super::super::json::decimal::decimal_x4;
        // Four at a time, one per 128-bit lane.
        for group in ids.chunks(4) {
            let mut start = [0usize; 4];
            for (k, &id) in group.iter().enumerate() {
                start[k] = at[usize::from(id)] + 1;
            }
            let lanes = (1u8 << group.len()) - 1;
            let (values, answered) = decimal_x4(buf, &start, lanes);
            for (k, &id) in group.iter().enumerate() {
                num[usize::from(id)] = values[k];
            }
            if answered != lanes {
                declined(ix, buf, group, &start, lanes & !answered, &mut num)?;
            }
        }
        Some(num)
    }
    #[cfg(not(keel_avx512))]
    {
        // The numbers as (mantissa, power of ten) pairs, then every value in one pass of
        // multiplications and divisions that the compiler turns into vector instructions
        // (each lane rounds exactly as the scalar operation would).
        let (mut m, mut mul, mut div) = ([f64::NAN; LANES], [1.0; LANES], [1.0; LANES]);
        for &id in ids {
            let p = number_at(ix, buf, at[usize::from(id)])?;
            let i = usize::from(id);
            (m[i], mul[i], div[i]) = (p.m, p.mul, p.div);
        }
        for i in 0..LANES {
            num[i] = m[i] * mul[i] / div[i];
        }
        Some(num)
    }
}

/// Stage 1: reads every field of a message whose skeleton is `shape`'s.
#[inline(always)]
fn read_by_shape<'a>(ix: &ShapeIndex, shape: &Shape, buf: &'a [u8]) -> Option<TickerFields<'a>> {
    // The `:` of each field by id (present ones only: `shape.present`).
    let at = ix.colons_by_id(&shape.ordinals, &shape.fields, shape.count)?;
    let has = |id: u8| shape.present & (1 << id) != 0;
    if string_at(ix, buf, at[usize::from(field::METHOD)])? != b"subscription"
        || !string_at(ix, buf, at[usize::from(field::CHANNEL)])?.starts_with(b"ticker.")
    {
        return None;
    }
    let mut f = TickerFields::EMPTY;
    if has(field::TIMESTAMP) {
        f.ts_ms = Some(integer_at(ix, buf, at[usize::from(field::TIMESTAMP)])?);
    }
    if has(field::NAME) {
        f.name = Some(string_at(ix, buf, at[usize::from(field::NAME)])?);
    }
    if has(field::SIM_SEND) {
        f.send_ns = Some(integer_at(ix, buf, at[usize::from(field::SIM_SEND)])?);
    }
    let num = numbers(ix, shape, &at, buf)?;
    for id in field::BID..=field::FUNDING {
        if let Some(s) = number_slot(&mut f, id) {
            *s = num[usize::from(id)];
        }
    }
    match shape.greeks {
        GreeksShape::Absent => {}
        GreeksShape::Null => {
            if scalar_at(ix, buf, at[usize::from(field::GREEKS)])? != b"null" {
                return None;
            }
        }
        GreeksShape::Object => {
            let mut g = NO_GREEKS;
            for id in field::DELTA..=field::RHO {
                if let Some(s) = greek_slot(&mut g, id) {
                    *s = num[usize::from(id)];
                }
            }
            f.greeks = Some(g);
        }
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICKER: &[u8] = br#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-26JUN26-100000-C.100ms","data":{"timestamp":1752057345721,"state":"open","stats":{"high":null,"low":null,"price_change":null,"volume":0,"volume_usd":0},"greeks":{"delta":0.71138,"gamma":1e-05,"vega":389.29255,"theta":-25.13021,"rho":524.77921},"index_price":108827.5,"instrument_name":"BTC-26JUN26-100000-C","last_price":0.247,"settlement_price":0.24231149,"min_price":0.1975,"max_price":0.3015,"open_interest":1.2,"mark_price":0.2425,"best_bid_price":0.2395,"mark_iv":45.43,"ask_iv":46.18,"bid_iv":44.54,"underlying_price":116086.34,"underlying_index":"BTC-26JUN26","best_ask_price":0.245,"interest_rate":0,"estimated_delivery_price":108827.5,"best_ask_amount":2,"best_bid_amount":2}}}"#;

    #[test]
    fn a_walked_ticker_teaches_its_shape() {
        let mut path = TickerPath::new();
        let walked = path.parse(TICKER).expect("walk");
        assert!(path.index.build(TICKER), "indexable");
        assert_eq!(path.learned, 1, "learned");
        assert_eq!(path.shapes[0].skeleton(), path.index.skeleton());
        let shape = path.shapes[0].clone();
        let by_shape = read_by_shape(&path.index, &shape, TICKER).expect("by shape");
        assert_eq!(format!("{walked:?}"), format!("{by_shape:?}"));
    }

    #[test]
    fn tickers_with_other_values_are_read_by_the_learned_shape() {
        // A stream of tickers whose every number (and so every field's place) changes: each
        // matches the learned skeleton, stage 1 reads it, and reads what the walk reads.
        let mut path = TickerPath::new();
        path.parse(TICKER).expect("walk");
        if path.learned == 0 {
            return; // no AVX-512 here: stage 1 never runs
        }
        let text = std::str::from_utf8(TICKER).unwrap();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for i in 0..2_000 {
            let mut t = text.to_string();
            for (key, old) in [
                ("mark_price", "0.2425"),
                ("best_bid_price", "0.2395"),
                ("best_ask_price", "0.245"),
                ("mark_iv", "45.43"),
                ("underlying_price", "116086.34"),
                ("index_price", "108827.5"),
                ("delta", "0.71138"),
                ("gamma", "1e-05"),
                ("theta", "-25.13021"),
                ("best_bid_amount", "2"),
            ] {
                let value = match next(6) {
                    0 => format!("{}", next(1_000_000)),
                    1 => format!("-{}.{}", next(100), next(100_000)),
                    2 => format!("{}e-0{}", 1 + next(9), 4 + next(5)),
                    3 => format!("0.{:08}", next(100_000_000)),
                    _ => format!("{}.{}", next(200_000), next(100)),
                };
                t = t.replacen(
                    &format!("\"{key}\":{old}"),
                    &format!("\"{key}\":{value}"),
                    1,
                );
            }
            let t = t.replace("1752057345721", &(1_752_057_345_721_u64 + i).to_string());
            let buf = t.as_bytes();
            assert!(path.index.build(buf), "{t}");
            assert_eq!(path.shapes[0].skeleton(), path.index.skeleton(), "{t}");
            let shape = path.shapes[0].clone();
            let by_shape = read_by_shape(&path.index, &shape, buf).expect("stage 1 reads it");
            let mut slots = Slots::NONE;
            let walked = walk(buf, &mut slots).expect("walk");
            assert_eq!(format!("{walked:?}"), format!("{by_shape:?}"), "{t}");
            assert_eq!(path.learned, 1, "no new shape for new values");
        }
    }
}
