//! The `ticker.*` fast path, in two stages.
//!
//! 1. **Learned templates.** Deribit sends every ticker of a channel with the same keys in the
//!    same order; only the values change. A ticker the walk below accepted becomes a
//!    [`Template`]: its literal runs (keys, brackets, separators) and its value holes, each
//!    field the walk read tied to its hole. A new message is matched against the last few
//!    templates without building a structural index: one pass over its 64-byte blocks finds
//!    its `:`s, counts its `"{}[],:` bytes and checks for backslashes; each hole's start is
//!    then its `:`'s position (all holes at once, in 16-bit vector lanes), each literal is
//!    compared byte for byte at the place that gives it, and the counts must agree — which
//!    proves the message is the template with other values, whatever the guess (see
//!    [`template`](super::super::json::template)). On a match the fields are read straight
//!    from their holes; the numbers (prices, sizes, IVs, Greeks) sixteen at once, four per
//!    AVX-512 register ([`decimal_spans_x16`](super::super::json::decimal::decimal_spans_x16));
//!    a lane it declines (an exponent, a long token, `null`, a string) takes the one-number
//!    path, with the walk's rules. A message whose keys come in another order, with a field
//!    more or less, with whitespace or escapes, does not match and takes the walk.
//! 2. **The walk.** Otherwise one walk over the notification
//!    (`{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker....","data":{...}}}`)
//!    reads the ticker's fields as it meets them, in any key order and with any whitespace, and
//!    skips the rest (`stats`, `estimated_delivery_price`, ...). A message it accepts, whose
//!    fields each appear once and which has no whitespace outside strings (as venues send),
//!    teaches its template to stage 1.
//!
//! Owns only these two stages. Neither decides a message is bad: anything they do not handle
//! (another channel or method, `data` before `channel`, escapes, a value of an unexpected type,
//! a repeated `params`, `channel` or `data`, a missing field, a malformed or truncated text)
//! answers `None`, and the general path parses the message from the start and gives the
//! answer or the error. When they answer `Some`, the general path would have produced the same
//! fields: a match means the message is a template the walk accepted with other hole contents
//! (no hole holds a quote, bracket, `,` or `:`, each scalar hole starts like a scalar), the
//! holes the walk read get the walk's checks (every number correctly rounded, bit for bit
//! `str::parse::<f64>`'s), and the walk is at least as strict as the general scanner (the
//! differential and property tests, over streams of tickers with rewritten values, shuffled
//! keys, nulls, missing fields and escapes, and the `venue_deribit` fuzz target check both).
//! Every message is read whole: nothing is carried over from the previous ticker. Never
//! allocates after construction.
//!
//! Measured (`keel-bench parse`, `deribit_ticker`: 256 different option tickers of ~774 bytes
//! in turn): see README.md's figures. Where the time goes (stage by stage, by returning early
//! in a throwaway harness over the same stream; CPU time per message, best of three, load
//! average ~5 from other agents' work): the `"ticker.` check 3.5 ns, the block pass (`:`
//! offsets, counts; 13 blocks) 29 ns, the match (hole places, the 35 literal compares)
//! 29 ns, the 15 numbers 38 ns (the third of the tickers whose gamma has an exponent take
//! the one-number path for it), the other fields (method, channel, timestamp, name, the
//! numbers into their fields) 30 ns, and the events (instrument lookup, the two events
//! handed over) 26 ns: 156 ns in all. Converting exponents in the vector path too was
//! measured slower (every message paid for it).

#[cfg(keel_avx512)]
use super::super::json::decimal::decimal_spans_x16;
use super::super::json::decimal::{decimal_parts, decimal_u64};
use super::super::json::template::{Hole, Holes, Template, TextIndex};
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

// ---- Stage 1: learned templates. ----

/// Templates remembered (option and perpetual tickers on one connection, with room to spare).
const SHAPES: usize = 4;
/// Tickers per learning credit (see `TickerPath::learn_credit`).
const LEARN_EVERY: u32 = 64;
/// Learning credits held at most (and at start: the first shapes are learned at once).
const LEARN_BURST: u32 = 2 * SHAPES as u32;

/// What a learned ticker's `greeks` was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GreeksShape {
    Absent,
    Null,
    Object,
}

/// No hole: the field is absent (or, for `greeks`, an object whose members have their own).
const NO_HOLE: u8 = u8::MAX;

/// A ticker shape learned from a message the walk accepted: its template and, for each field
/// the walk read, the hole holding its value.
#[derive(Clone)]
struct Shape {
    template: Template,
    /// The hole of each field, by id ([`NO_HOLE`] if absent).
    hole: [u8; field::COUNT],
    /// The number fields present (prices, sizes, IVs, Greeks), one per lane of four groups
    /// of four: each lane's field id ([`DUMMY`] for a lane unused) and hole.
    number_id: [u8; NUMBER_LANES],
    number_hole: [u16; NUMBER_LANES],
    /// Lanes in use, and those whose hole is a scalar (for the vector conversion).
    number_present: u16,
    number_scalar: u16,
    /// By field id: the lane holding it, and whether one does (bit id).
    lane_of: [i64; LANES],
    id_present: u32,
    greeks: GreeksShape,
}

/// The number slot an unused lane writes to (no field's).
const DUMMY: u8 = (LANES - 1) as u8;

/// Number fields, rounded up to whole groups of four.
const NUMBER_LANES: usize = 16;

impl Shape {
    /// The shape of `buf` (accepted by the walk, its fields at `slots`), if it makes a
    /// template whose holes hold every field the walk read.
    #[cold]
    fn learn(buf: &[u8], slots: &Slots) -> Option<Self> {
        if slots.repeated {
            return None;
        }
        let template = Template::learn(buf)?;
        let mut shape = Self {
            template,
            hole: [NO_HOLE; field::COUNT],
            number_id: [DUMMY; NUMBER_LANES],
            number_hole: [0; NUMBER_LANES],
            number_present: 0,
            number_scalar: 0,
            lane_of: [0; LANES],
            id_present: 0,
            greeks: GreeksShape::Absent,
        };
        for (id, colon) in slots.colon.iter().enumerate() {
            let Some(colon) = *colon else { continue };
            let id = id as u8;
            let first = *buf.get(colon + 1)?;
            if id == field::GREEKS && first == b'{' {
                shape.greeks = GreeksShape::Object;
                continue;
            }
            let (at, kind) = if first == b'"' {
                (colon + 2, Hole::String)
            } else {
                (colon + 1, Hole::Scalar)
            };
            let k = shape.template.hole_at(at)?;
            if shape.template.kind(k)? != kind {
                return None;
            }
            // Strings where the walk wants strings, scalars where it wants integers or `null`.
            let want = match id {
                field::METHOD | field::CHANNEL | field::NAME => Some(Hole::String),
                field::TIMESTAMP | field::SIM_SEND | field::GREEKS => Some(Hole::Scalar),
                _ => None,
            };
            if want.is_some_and(|w| w != kind) {
                return None;
            }
            if id == field::GREEKS {
                shape.greeks = GreeksShape::Null;
            }
            *shape.hole.get_mut(usize::from(id))? = u8::try_from(k).ok()?;
        }
        if shape.hole[usize::from(field::METHOD)] == NO_HOLE
            || shape.hole[usize::from(field::CHANNEL)] == NO_HOLE
        {
            return None;
        }
        let mut lane = 0;
        for id in field::BID..=field::RHO {
            let h = shape.hole[usize::from(id)];
            if id != field::GREEKS && h != NO_HOLE {
                *shape.number_id.get_mut(lane)? = id;
                shape.number_hole[lane] = u16::from(h);
                shape.number_present |= 1 << lane;
                shape.lane_of[usize::from(id)] = lane as i64;
                shape.id_present |= 1 << id;
                if shape.template.kind(usize::from(h))? == Hole::Scalar {
                    shape.number_scalar |= 1 << lane;
                }
                lane += 1;
            }
        }
        Some(shape)
    }

    /// The bytes of `id`'s hole, if the field is present.
    #[inline(always)]
    fn field<'a>(&self, holes: &Holes, buf: &'a [u8], id: u8) -> Option<Option<&'a [u8]>> {
        match self.hole[usize::from(id)] {
            NO_HOLE => Some(None),
            k => holes.bytes(buf, usize::from(k)).map(Some),
        }
    }
}

/// The fast path's state: the text index (reused for every message) and the shapes learned.
pub(super) struct TickerPath {
    index: TextIndex,
    holes: Holes,
    shapes: [Shape; SHAPES],
    learned: usize,
    next: usize,
    /// Learning attempts allowed now: a byte-by-byte scan (~1 µs) per attempt, so a stream of
    /// more shapes than [`SHAPES`] in turn (every message a miss) would otherwise pay one per
    /// message. One credit accrues per [`LEARN_EVERY`] tickers, at most [`LEARN_BURST`].
    learn_credit: u32,
    /// Tickers seen since the last credit.
    since_credit: u32,
    /// Learning attempts so far (tests).
    learn_attempts: u64,
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

/// A millisecond timestamp hole, with the walk's rules (a digit first; trailing whitespace
/// allowed).
#[inline(always)]
fn integer_hole(buf: &[u8], start: usize, end: usize) -> Option<u64> {
    if let Some(x) = decimal_u64(buf, start, end) {
        return Some(x);
    }
    integer_hole_slow(buf.get(start..end)?)
}

#[inline(never)]
fn integer_hole_slow(hole: &[u8]) -> Option<u64> {
    if !hole.first()?.is_ascii_digit() {
        return None;
    }
    digits(hole.trim_ascii_end())
}

/// A number hole of kind `kind`, with the walk's [`number`] rules: a number or `null` for a
/// scalar, a numeric string or `""` for a string's contents.
#[inline(never)]
fn number_hole(buf: &[u8], kind: Hole, start: usize, end: usize) -> Option<f64> {
    let hole = buf.get(start..end)?;
    match kind {
        Hole::String => string_number(buf, start, hole),
        Hole::Scalar => {
            let tok = hole.trim_ascii_end();
            match *tok.first()? {
                b'-' | b'0'..=b'9' => match decimal_parts(buf, start, start + tok.len()) {
                    Some(p) => Some(p.m * p.mul / p.div),
                    None => token_number(buf, start, tok),
                },
                b'n' => (tok == b"null").then_some(f64::NAN),
                _ => None,
            }
        }
    }
}

/// Number slots, by field id, rounded up to whole vectors.
const LANES: usize = 24;

/// The number fields of `shape`, by id, from the holes of a matched message: sixteen lanes in
/// four groups of four, straight-line; lanes the vector conversion declines (exponents, long
/// tokens, `null`, strings) then one by one.
#[inline(always)]
fn numbers(shape: &Shape, holes: &Holes, buf: &[u8]) -> Option<[f64; LANES]> {
    let (start, end) = holes.gather16(&shape.number_hole);
    #[cfg(keel_avx512)]
    let (mut vals, answered) = decimal_spans_x16(buf, &start, &end, shape.number_scalar);
    #[cfg(not(keel_avx512))]
    let (mut vals, answered) = ([f64::NAN; NUMBER_LANES], 0u16);
    let todo = shape.number_present & !answered;
    if todo != 0 {
        declined(shape, holes, buf, todo, &mut vals)?;
    }
    let mut num = [f64::NAN; LANES];
    #[cfg(keel_avx512)]
    // SAFETY: the features are enabled by the `cfg`; the loads read the 16 entries of `vals`
    // and the 24 of `shape.lane_of`, the stores write the 24 of `num`.
    unsafe {
        use core::arch::x86_64::*;
        // By id: each slot takes its field's lane, or stays NaN.
        let (v0, v1) = (
            _mm512_loadu_pd(vals.as_ptr()),
            _mm512_loadu_pd(vals.as_ptr().add(8)),
        );
        let nan = _mm512_set1_pd(f64::NAN);
        for part in 0..LANES / 8 {
            let idx = _mm512_loadu_si512(shape.lane_of.as_ptr().add(8 * part).cast());
            let picked = _mm512_permutex2var_pd(v0, idx, v1);
            let present = (shape.id_present >> (8 * part)) as u8;
            _mm512_storeu_pd(
                num.as_mut_ptr().add(8 * part),
                _mm512_mask_blend_pd(present, nan, picked),
            );
        }
    }
    #[cfg(not(keel_avx512))]
    for lane in 0..NUMBER_LANES {
        num[usize::from(shape.number_id[lane]) % LANES] = vals[lane];
    }
    Some(num)
}

/// The number lanes of `todo`, one by one.
#[cold]
#[inline(never)]
fn declined(
    shape: &Shape,
    holes: &Holes,
    buf: &[u8],
    todo: u16,
    vals: &mut [f64; NUMBER_LANES],
) -> Option<()> {
    for (lane, v) in vals.iter_mut().enumerate() {
        if todo & (1 << lane) != 0 {
            let h = usize::from(shape.number_hole[lane]);
            let kind = shape.template.kind(h)?;
            let (s, e) = (*holes.start.get(h)?, *holes.end.get(h)?);
            *v = number_hole(buf, kind, usize::from(s), usize::from(e))?;
        }
    }
    Some(())
}

/// An integer field (`timestamp`, `sim_send_ns`), if present.
#[inline(always)]
fn integer_field(shape: &Shape, holes: &Holes, buf: &[u8], id: u8) -> Option<Option<u64>> {
    match shape.hole[usize::from(id)] {
        NO_HOLE => Some(None),
        k => {
            let k = usize::from(k);
            let (s, e) = (*holes.start.get(k)?, *holes.end.get(k)?);
            integer_hole(buf, usize::from(s), usize::from(e)).map(Some)
        }
    }
}

/// Stage 1: reads every field of a message that matched `shape`'s template.
#[inline(always)]
fn read_by_shape<'a>(shape: &Shape, holes: &Holes, buf: &'a [u8]) -> Option<TickerFields<'a>> {
    // Fixed-size compares (a couple of loads each, no call).
    let method = shape.field(holes, buf, field::METHOD)??;
    let channel = shape.field(holes, buf, field::CHANNEL)??;
    if method.len() != 12
        || method.first_chunk::<12>() != Some(b"subscription")
        || channel.first_chunk::<7>() != Some(b"ticker.")
    {
        return None;
    }
    let mut f = TickerFields::EMPTY;
    f.ts_ms = integer_field(shape, holes, buf, field::TIMESTAMP)?;
    f.send_ns = integer_field(shape, holes, buf, field::SIM_SEND)?;
    f.name = shape.field(holes, buf, field::NAME)?;
    let num = numbers(shape, holes, buf)?;
    for id in field::BID..=field::FUNDING {
        if let Some(s) = number_slot(&mut f, id) {
            *s = num[usize::from(id)];
        }
    }
    match shape.greeks {
        GreeksShape::Absent => {}
        GreeksShape::Null => {
            if shape.field(holes, buf, field::GREEKS)??.trim_ascii_end() != b"null" {
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

impl TickerPath {
    pub(super) fn new() -> Self {
        const EMPTY: Shape = Shape {
            template: Template::EMPTY,
            hole: [NO_HOLE; field::COUNT],
            number_id: [DUMMY; NUMBER_LANES],
            number_hole: [0; NUMBER_LANES],
            number_present: 0,
            number_scalar: 0,
            lane_of: [0; LANES],
            id_present: 0,
            greeks: GreeksShape::Absent,
        };
        Self {
            index: TextIndex::new(),
            holes: Holes::NONE,
            shapes: [EMPTY; SHAPES],
            learned: 0,
            next: 0,
            learn_credit: LEARN_BURST,
            since_credit: 0,
            learn_attempts: 0,
        }
    }

    /// The ticker fields of `buf`, or `None` for the general path.
    #[inline]
    pub(super) fn parse<'a>(&mut self, buf: &'a [u8]) -> Option<TickerFields<'a>> {
        if !mentions_ticker(buf) {
            return None;
        }
        self.since_credit += 1;
        if self.since_credit >= LEARN_EVERY {
            self.since_credit = 0;
            self.learn_credit = (self.learn_credit + 1).min(LEARN_BURST);
        }
        let indexed = self.index.build(buf);
        if indexed {
            for shape in self.shapes.iter().take(self.learned) {
                if self.index.matches(&shape.template, buf, &mut self.holes) {
                    return read_by_shape(shape, &self.holes, buf);
                }
            }
        }
        let mut slots = Slots::NONE;
        let fields = walk(buf, &mut slots)?;
        if indexed && self.learn_credit > 0 {
            self.learn_credit -= 1;
            self.learn(buf, &slots);
        }
        Some(fields)
    }

    /// Remembers the shape of `buf` (just walked), replacing the oldest.
    #[cold]
    fn learn(&mut self, buf: &[u8], slots: &Slots) {
        self.learn_attempts += 1;
        let Some(shape) = Shape::learn(buf, slots) else {
            return;
        };
        if let Some(s) = self.shapes.get_mut(self.next) {
            *s = shape;
            self.next = (self.next + 1) % SHAPES;
            self.learned = (self.learned + 1).min(SHAPES);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICKER: &[u8] = br#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-26JUN26-100000-C.100ms","data":{"timestamp":1752057345721,"state":"open","stats":{"high":null,"low":null,"price_change":null,"volume":0,"volume_usd":0},"greeks":{"delta":0.71138,"gamma":1e-05,"vega":389.29255,"theta":-25.13021,"rho":524.77921},"index_price":108827.5,"instrument_name":"BTC-26JUN26-100000-C","last_price":0.247,"settlement_price":0.24231149,"min_price":0.1975,"max_price":0.3015,"open_interest":1.2,"mark_price":0.2425,"best_bid_price":0.2395,"mark_iv":45.43,"ask_iv":46.18,"bid_iv":44.54,"underlying_price":116086.34,"underlying_index":"BTC-26JUN26","best_ask_price":0.245,"interest_rate":0,"estimated_delivery_price":108827.5,"best_ask_amount":2,"best_bid_amount":2}}}"#;

    /// Stage 1 on `buf` through the first learned shape, if it matches.
    fn by_shape<'a>(path: &mut TickerPath, buf: &'a [u8]) -> Option<TickerFields<'a>> {
        if !path.index.build(buf) {
            return None;
        }
        let shape = &path.shapes[0];
        path.index
            .matches(&shape.template, buf, &mut path.holes)
            .then(|| read_by_shape(shape, &path.holes, buf))?
    }

    #[test]
    fn a_walked_ticker_teaches_its_shape() {
        let mut path = TickerPath::new();
        let walked = path.parse(TICKER).expect("walk");
        if !path.index.build(TICKER) {
            return; // no AVX-512 here: stage 1 never runs
        }
        assert_eq!(path.learned, 1, "learned");
        let by_shape = by_shape(&mut path, TICKER).expect("by shape");
        assert_eq!(format!("{walked:?}"), format!("{by_shape:?}"));
    }

    #[test]
    fn tickers_with_other_values_are_read_by_the_learned_shape() {
        // A stream of tickers whose every number (and so every field's place) changes: each
        // matches the learned template, stage 1 reads it, and reads what the walk reads.
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
                let value = match next(7) {
                    0 => format!("{}", next(1_000_000)),
                    1 => format!("-{}.{}", next(100), next(100_000)),
                    2 => format!("{}e-0{}", 1 + next(9), 4 + next(5)),
                    3 => format!("0.{:08}", next(100_000_000)),
                    4 => "null".to_string(),
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
            let by_shape = by_shape(&mut path, buf).expect("stage 1 reads it");
            let mut slots = Slots::NONE;
            let walked = walk(buf, &mut slots).expect("walk");
            assert_eq!(format!("{walked:?}"), format!("{by_shape:?}"), "{t}");
            assert_eq!(path.learned, 1, "no new shape for new values");
        }
    }

    #[test]
    fn more_shapes_than_slots_in_turn_do_not_relearn_on_every_message() {
        // Six shapes (the ticker with one of six keys dropped) in turn: with four slots every
        // message misses, and each would otherwise be scanned to learn its shape.
        let mut path = TickerPath::new();
        path.parse(TICKER).expect("walk");
        if path.learned == 0 {
            return; // no AVX-512 here: stage 1 never runs
        }
        let text = std::str::from_utf8(TICKER).unwrap();
        let shapes: Vec<String> = [
            "\"last_price\":0.247,",
            "\"min_price\":0.1975,",
            "\"max_price\":0.3015,",
            "\"open_interest\":1.2,",
            "\"interest_rate\":0,",
            "\"settlement_price\":0.24231149,",
        ]
        .iter()
        .map(|cut| {
            assert!(text.contains(cut), "{cut}");
            text.replacen(cut, "", 1)
        })
        .collect();
        let before = path.learn_attempts;
        let n = 6_000;
        for i in 0..n {
            let buf = shapes[i % shapes.len()].as_bytes();
            let fields = path.parse(buf).expect("read");
            let mut slots = Slots::NONE;
            let walked = walk(buf, &mut slots).expect("walk");
            assert_eq!(format!("{walked:?}"), format!("{fields:?}"));
        }
        let attempts = path.learn_attempts - before;
        assert!(
            attempts <= n as u64 / u64::from(LEARN_EVERY) + u64::from(LEARN_BURST),
            "{attempts} learning attempts over {n} messages"
        );
    }
}
