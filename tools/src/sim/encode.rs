//! Renders the simulated venue's messages as bytes in Deribit's and Binance's formats, into a
//! caller-owned reused `Vec<u8>`: a tiny JSON writer (numbers by `ryu`, Binance's fixed-decimal
//! strings by integer arithmetic), the message bodies, and small synthetic order books that
//! produce consistent snapshot/update sequences.
//!
//! Owns formatting only. Never allocates once the output buffer has grown to its working size,
//! never writes NaN or infinity (they become `null`), and never reads a clock: timestamps are
//! arguments. Every data object carries an extra `"sim_send_ns"` (u64, ns since the Unix
//! epoch, taken just before the message is queued for the socket) for wire-to-wire benches.

use keel_engine::sim::SimRng;

use super::chain::{BINANCE_SYMBOL, Chain, INDEX_NAME, InstrumentRef};
use super::market::{LinearQuote, MarketSnapshot, OptionQuote};

/// Appending JSON pieces to a byte buffer.
pub trait JsonOut {
    /// Raw text.
    fn raw(&mut self, s: &str);
    /// A number (shortest round-trip form); `null` if not finite.
    fn num(&mut self, x: f64);
    /// An unsigned integer.
    fn int(&mut self, x: u64);
    /// A fixed-decimal number with `dp` decimals, unquoted (Binance wraps it in quotes).
    fn fixed(&mut self, x: f64, dp: u32);
    /// A JSON string of text that needs no escaping (names, channels).
    fn plain_str(&mut self, s: &str);
}

impl JsonOut for Vec<u8> {
    #[inline]
    fn raw(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }

    #[inline]
    fn num(&mut self, x: f64) {
        if x.is_finite() {
            let mut b = ryu::Buffer::new();
            self.extend_from_slice(b.format_finite(x).as_bytes());
        } else {
            self.extend_from_slice(b"null");
        }
    }

    #[inline]
    fn int(&mut self, mut x: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (x % 10) as u8;
            x /= 10;
            if x == 0 {
                break;
            }
        }
        self.extend_from_slice(&digits[i..]);
    }

    fn fixed(&mut self, x: f64, dp: u32) {
        let dp = dp.min(12);
        let scale = 10u64.pow(dp);
        if !x.is_finite() || x.abs() * scale as f64 >= 9.0e18 {
            self.extend_from_slice(b"0");
            return;
        }
        if x < 0.0 {
            self.push(b'-');
        }
        let scaled = (x.abs() * scale as f64).round() as u64;
        self.int(scaled / scale);
        if dp > 0 {
            self.push(b'.');
            let frac = scaled % scale;
            let mut digits = [b'0'; 12];
            let mut f = frac;
            for k in (0..dp as usize).rev() {
                digits[k] = b'0' + (f % 10) as u8;
                f /= 10;
            }
            self.extend_from_slice(&digits[..dp as usize]);
        }
    }

    #[inline]
    fn plain_str(&mut self, s: &str) {
        self.push(b'"');
        self.extend_from_slice(s.as_bytes());
        self.push(b'"');
    }
}

/// Writes `,"key":` (or `"key":` when `first`).
#[inline]
fn key(out: &mut Vec<u8>, k: &str) {
    out.push(b',');
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

/// A number field, or with `bad` a string (a wrong-type field for fault injection).
#[inline]
fn num_or_bad(out: &mut Vec<u8>, x: f64, bad: bool) {
    if bad {
        out.push(b'"');
        out.num(x);
        out.push(b'"');
    } else {
        out.num(x);
    }
}

/// An integer field, or with `bad` a string (a wrong-type field for fault injection).
#[inline]
fn int_or_bad(out: &mut Vec<u8>, x: u64, bad: bool) {
    if bad {
        out.push(b'"');
        out.int(x);
        out.push(b'"');
    } else {
        out.int(x);
    }
}

/// The start of a Deribit subscription notification, up to and including `"data":`.
pub fn deribit_notification_head(out: &mut Vec<u8>, channel: &str) {
    out.raw(r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"#);
    out.plain_str(channel);
    out.raw(r#","data":"#);
}

/// Closes a Deribit notification.
pub fn deribit_notification_tail(out: &mut Vec<u8>) {
    out.raw("}}");
}

/// Deribit's option ticker data object (deribit/ticker_option.json), `bad` = wrong-type
/// fields (timestamp and mark_iv as strings).
#[allow(clippy::too_many_arguments)]
pub fn deribit_option_ticker(
    out: &mut Vec<u8>,
    chain: &Chain,
    snap: &MarketSnapshot,
    opt: usize,
    ts_ms: u64,
    send_ns: u64,
    bad: bool,
) {
    let (Some(o), Some(q)) = (chain.options.get(opt), snap.options.get(opt)) else {
        out.raw("{}");
        return;
    };
    let q: &OptionQuote = q;
    let underlying_index = chain
        .expiries
        .get(o.expiry)
        .map_or("", |e| e.underlying_index.as_str());
    out.raw(r#"{"timestamp":"#);
    int_or_bad(out, ts_ms, bad);
    out.raw(r#","state":"#);
    out.plain_str(if q.open { "open" } else { "closed" });
    out.raw(
        r#","stats":{"high":null,"low":null,"price_change":null,"volume":0,"volume_usd":0},"greeks":{"delta":"#,
    );
    out.num(q.delta);
    key(out, "gamma");
    out.num(q.gamma);
    key(out, "vega");
    out.num(q.vega);
    key(out, "theta");
    out.num(q.theta);
    key(out, "rho");
    out.num(q.rho);
    out.push(b'}');
    key(out, "index_price");
    out.num(snap.index);
    key(out, "instrument_name");
    out.plain_str(&o.name);
    key(out, "last_price");
    out.num(q.mark.max(0.0001));
    key(out, "settlement_price");
    out.num(q.settlement);
    key(out, "min_price");
    out.num(q.min_price);
    key(out, "max_price");
    out.num(q.max_price);
    key(out, "open_interest");
    out.num(o.open_interest);
    key(out, "mark_price");
    out.num(q.mark);
    key(out, "best_bid_price");
    out.num(q.bid);
    key(out, "mark_iv");
    num_or_bad(out, q.mark_iv, bad);
    key(out, "ask_iv");
    out.num(q.ask_iv);
    key(out, "bid_iv");
    out.num(q.bid_iv);
    key(out, "underlying_price");
    out.num(q.forward);
    key(out, "underlying_index");
    out.plain_str(underlying_index);
    key(out, "best_ask_price");
    out.num(q.ask);
    out.raw(r#","interest_rate":0"#);
    key(out, "estimated_delivery_price");
    out.num(snap.index);
    key(out, "best_ask_amount");
    out.num(q.ask_amount);
    key(out, "best_bid_amount");
    out.num(q.bid_amount);
    key(out, "sim_send_ns");
    out.int(send_ns);
    out.push(b'}');
}

/// Deribit's perpetual or future ticker data object (deribit/ticker_perpetual.json); funding
/// fields only for the perpetual.
#[allow(clippy::too_many_arguments)]
pub fn deribit_linear_ticker(
    out: &mut Vec<u8>,
    chain: &Chain,
    snap: &MarketSnapshot,
    inst: InstrumentRef,
    ts_ms: u64,
    send_ns: u64,
    bad: bool,
) {
    let q: LinearQuote = match inst {
        InstrumentRef::Perpetual => snap.perp,
        InstrumentRef::Future(i) => snap.futures.get(i).copied().unwrap_or_default(),
        InstrumentRef::Option(_) => LinearQuote::default(),
    };
    out.raw(r#"{"timestamp":"#);
    int_or_bad(out, ts_ms, bad);
    out.raw(r#","state":"open","stats":{"high":"#);
    out.num((q.mark * 1.02 * 2.0).round() / 2.0);
    key(out, "low");
    out.num((q.mark * 0.98 * 2.0).round() / 2.0);
    out.raw(r#","price_change":0.0,"volume":12000.5,"volume_usd":1100000000.0"#);
    out.raw(r#","volume_notional":1100000000.0}"#);
    key(out, "index_price");
    out.num(snap.index);
    key(out, "instrument_name");
    out.plain_str(chain.name(inst));
    key(out, "last_price");
    out.num(q.bid);
    key(out, "settlement_price");
    out.num(q.mark);
    key(out, "min_price");
    out.num((q.mark * 0.985 * 2.0).floor() / 2.0);
    key(out, "max_price");
    out.num((q.mark * 1.015 * 2.0).ceil() / 2.0);
    out.raw(r#","open_interest":1132329370.0"#);
    key(out, "mark_price");
    num_or_bad(out, q.mark, bad);
    if inst == InstrumentRef::Perpetual {
        key(out, "interest_value");
        out.num(0.0028);
    }
    key(out, "best_ask_price");
    out.num(q.ask);
    key(out, "best_bid_price");
    out.num(q.bid);
    key(out, "estimated_delivery_price");
    out.num(snap.index);
    key(out, "best_ask_amount");
    out.num(q.ask_amount);
    key(out, "best_bid_amount");
    out.num(q.bid_amount);
    if inst == InstrumentRef::Perpetual {
        out.raw(r#","current_funding":0.0"#);
        key(out, "funding_8h");
        out.num(snap.funding_8h);
    }
    key(out, "sim_send_ns");
    out.int(send_ns);
    out.push(b'}');
}

/// Deribit's `deribit_price_index` data object.
pub fn deribit_index(
    out: &mut Vec<u8>,
    snap: &MarketSnapshot,
    ts_ms: u64,
    send_ns: u64,
    bad: bool,
) {
    out.raw(r#"{"timestamp":"#);
    out.int(ts_ms);
    key(out, "price");
    num_or_bad(out, snap.index, bad);
    key(out, "index_name");
    out.plain_str(INDEX_NAME);
    key(out, "sim_send_ns");
    out.int(send_ns);
    out.push(b'}');
}

/// Deribit's `markprice.options` data array: every open option's mark (BTC) and iv (a
/// FRACTION here, unlike the ticker's percent).
pub fn deribit_markprice_options(
    out: &mut Vec<u8>,
    chain: &Chain,
    snap: &MarketSnapshot,
    ts_ms: u64,
    bad: bool,
) {
    out.push(b'[');
    let mut first = true;
    for (o, q) in chain.options.iter().zip(&snap.options) {
        if !q.open {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.raw(r#"{"timestamp":"#);
        out.int(ts_ms);
        key(out, "mark_price");
        out.num(q.mark);
        key(out, "iv");
        num_or_bad(out, (q.mark_iv * 100.0).round() / 10_000.0, bad);
        key(out, "instrument_name");
        out.plain_str(&o.name);
        out.push(b'}');
    }
    out.push(b']');
}

/// Book levels per side of the synthetic books: 20, so that a hedge of several BTC finds its
/// size in the perpetual's book (about 3 M USD a side) and in Binance's (about 50 BTC).
pub const LEVELS: usize = 20;

/// What happened to a level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LevelAction {
    /// A new price level.
    #[default]
    New,
    /// A level's size changed.
    Change,
    /// A level was removed (size 0).
    Delete,
}

impl LevelAction {
    fn as_str(self) -> &'static str {
        match self {
            LevelAction::New => "new",
            LevelAction::Change => "change",
            LevelAction::Delete => "delete",
        }
    }
}

/// One side's levels.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Side {
    px: [f64; LEVELS],
    sz: [f64; LEVELS],
    n: usize,
}

impl Side {
    fn size_at(&self, px: f64) -> Option<f64> {
        let eps = 1e-9 * px.abs().max(1.0);
        (0..self.n)
            .find(|&i| (self.px[i] - px).abs() <= eps)
            .map(|i| self.sz[i])
    }
}

/// Changes of one side in one message.
#[derive(Clone, Copy, Debug)]
pub struct SideDiff {
    items: [(LevelAction, f64, f64); 2 * LEVELS],
    n: usize,
}

impl Default for SideDiff {
    fn default() -> Self {
        Self {
            items: [(LevelAction::default(), 0.0, 0.0); 2 * LEVELS],
            n: 0,
        }
    }
}

impl SideDiff {
    fn push(&mut self, a: LevelAction, px: f64, sz: f64) {
        if let Some(slot) = self.items.get_mut(self.n) {
            *slot = (a, px, sz);
            self.n += 1;
        }
    }

    /// The changes.
    pub fn items(&self) -> &[(LevelAction, f64, f64)] {
        self.items.get(..self.n).unwrap_or(&[])
    }
}

/// A synthetic book of [`LEVELS`] levels a side around a moving best bid/ask, producing
/// consistent snapshot and incremental update sequences: applying every update to the snapshot
/// gives exactly the book the next message describes.
#[derive(Clone, Debug, Default)]
pub struct SyntheticBook {
    bids: Side,
    asks: Side,
    /// Sequence number of the last message (Deribit change_id, Binance `u`).
    pub seq: u64,
    /// False until the first message (a snapshot) was produced.
    pub started: bool,
}

/// Sizes of a synthetic book.
#[derive(Clone, Copy, Debug)]
pub struct SizeRule {
    /// Smallest size.
    pub unit: f64,
    /// Largest size as a multiple of `unit`.
    pub max_units: u64,
}

impl SyntheticBook {
    /// Size at `px` on the bid (`buy`) or ask side, 0 if no such level.
    pub fn size(&self, buy: bool, px: f64) -> f64 {
        let side = if buy { &self.bids } else { &self.asks };
        side.size_at(px).unwrap_or(0.0)
    }

    /// The levels of one side, best first, as (price, size).
    pub fn levels(&self, buy: bool) -> impl Iterator<Item = (f64, f64)> + '_ {
        let side = if buy { &self.bids } else { &self.asks };
        (0..side.n).map(move |i| (side.px[i], side.sz[i]))
    }

    /// Recomputes the book around `best_bid`/`best_ask` with level spacing `tick`, perturbing
    /// one size per side; returns (bids, asks) changes, all levels as `New` on the first call.
    pub fn update(
        &mut self,
        best_bid: f64,
        best_ask: f64,
        tick: f64,
        rule: SizeRule,
        rng: &mut SimRng,
    ) -> (SideDiff, SideDiff) {
        let draw = |rng: &mut SimRng| rule.unit * (1 + rng.below(rule.max_units.max(1))) as f64;
        let side = |prev: &Side, best: f64, dir: f64, rng: &mut SimRng| {
            let mut s = Side::default();
            if best > 0.0 && tick > 0.0 {
                for i in 0..LEVELS {
                    let px = ((best + dir * i as f64 * tick) * 1e8).round() / 1e8;
                    if px <= 0.0 {
                        break;
                    }
                    s.px[s.n] = px;
                    s.sz[s.n] = prev.size_at(px).unwrap_or_else(|| draw(rng));
                    s.n += 1;
                }
            }
            if s.n > 0 {
                let k = rng.below(s.n as u64) as usize;
                s.sz[k] = draw(rng);
            }
            s
        };
        let bids = side(&self.bids, best_bid, -1.0, rng);
        let asks = side(&self.asks, best_ask, 1.0, rng);
        let diff = |prev: &Side, next: &Side, fresh: bool| {
            let mut d = SideDiff::default();
            if !fresh {
                for i in 0..prev.n {
                    if next.size_at(prev.px[i]).is_none() {
                        d.push(LevelAction::Delete, prev.px[i], 0.0);
                    }
                }
            }
            for i in 0..next.n {
                match (fresh, prev.size_at(next.px[i])) {
                    (false, Some(sz)) if sz == next.sz[i] => {}
                    (false, Some(_)) => d.push(LevelAction::Change, next.px[i], next.sz[i]),
                    _ => d.push(LevelAction::New, next.px[i], next.sz[i]),
                }
            }
            d
        };
        let fresh = !self.started;
        let out = (
            diff(&self.bids, &bids, fresh),
            diff(&self.asks, &asks, fresh),
        );
        self.bids = bids;
        self.asks = asks;
        self.started = true;
        out
    }
}

/// The best bid/ask, level spacing and size rule of an instrument's synthetic Deribit book.
pub fn deribit_book_params(
    snap: &MarketSnapshot,
    inst: InstrumentRef,
) -> (f64, f64, f64, SizeRule) {
    match inst {
        InstrumentRef::Perpetual => (
            snap.perp.bid,
            snap.perp.ask,
            0.5,
            SizeRule {
                unit: 10.0,
                max_units: 30_000,
            },
        ),
        InstrumentRef::Future(i) => {
            let q = snap.futures.get(i).copied().unwrap_or_default();
            (
                q.bid,
                q.ask,
                2.5,
                SizeRule {
                    unit: 10.0,
                    max_units: 5_000,
                },
            )
        }
        InstrumentRef::Option(i) => {
            let q = snap.options.get(i).copied().unwrap_or_default();
            let tick = if q.ask < 0.005 { 0.0001 } else { 0.0005 };
            (
                q.bid,
                q.ask,
                tick,
                SizeRule {
                    unit: 0.1,
                    max_units: 200,
                },
            )
        }
    }
}

/// Deribit's `book.{instrument}.{interval}` data object for one update of `book` (snapshot on
/// its first call, then changes); `gap` makes prev_change_id skip (a sequence gap fault).
#[allow(clippy::too_many_arguments)]
pub fn deribit_book(
    out: &mut Vec<u8>,
    chain: &Chain,
    snap: &MarketSnapshot,
    inst: InstrumentRef,
    book: &mut SyntheticBook,
    rng: &mut SimRng,
    ts_ms: u64,
    send_ns: u64,
    bad: bool,
) {
    let (bid, ask, tick, rule) = deribit_book_params(snap, inst);
    let first = !book.started;
    let (bids, asks) = book.update(bid, ask, tick, rule, rng);
    let prev = book.seq;
    book.seq = if first {
        1_000_000 + rng.below(1_000_000)
    } else {
        prev + 1 + rng.below(3)
    };
    out.raw(r#"{"type":"#);
    out.plain_str(if first { "snapshot" } else { "change" });
    key(out, "instrument_name");
    out.plain_str(chain.name(inst));
    key(out, "timestamp");
    out.int(ts_ms);
    key(out, "change_id");
    int_or_bad(out, book.seq, bad);
    key(out, "prev_change_id");
    if first {
        out.raw("null");
    } else {
        out.int(prev);
    }
    for (name, side) in [("bids", &bids), ("asks", &asks)] {
        key(out, name);
        out.push(b'[');
        for (i, (a, px, sz)) in side.items().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'[');
            out.plain_str(a.as_str());
            out.push(b',');
            out.num(*px);
            out.push(b',');
            out.num(*sz);
            out.push(b']');
        }
        out.push(b']');
    }
    key(out, "sim_send_ns");
    out.int(send_ns);
    out.push(b'}');
}

/// Binance price and quantity decimals for BTCUSDT (USDⓈ-M futures).
const PX_DP: u32 = 2;
const QTY_DP: u32 = 3;

/// A Binance string-number field (or, with `bad`, a bare number: the wrong type).
#[inline]
fn bstr(out: &mut Vec<u8>, x: f64, dp: u32, bad: bool) {
    if bad {
        out.fixed(x, dp);
    } else {
        out.push(b'"');
        out.fixed(x, dp);
        out.push(b'"');
    }
}

/// Binance USDⓈ-M futures `bookTicker` event (binance/futures_book_ticker.json).
pub fn binance_book_ticker(
    out: &mut Vec<u8>,
    snap: &MarketSnapshot,
    update_id: u64,
    ts_ms: u64,
    send_ns: u64,
    bad: bool,
) {
    let q = &snap.binance;
    out.raw(r#"{"e":"bookTicker","u":"#);
    out.int(update_id);
    out.raw(r#","E":"#);
    out.int(ts_ms);
    out.raw(r#","T":"#);
    out.int(ts_ms.saturating_sub(1));
    out.raw(r#","s":"#);
    out.plain_str(BINANCE_SYMBOL);
    out.raw(r#","b":"#);
    bstr(out, q.bid, PX_DP, bad);
    out.raw(r#","B":"#);
    bstr(out, q.bid_amount, QTY_DP, false);
    out.raw(r#","a":"#);
    bstr(out, q.ask, PX_DP, false);
    out.raw(r#","A":"#);
    bstr(out, q.ask_amount, QTY_DP, false);
    key(out, "sim_send_ns");
    out.int(send_ns);
    out.push(b'}');
}

/// One side's `[["price","qty"],..]` levels, Binance style (numbers as strings).
fn binance_levels(out: &mut Vec<u8>, levels: &[(f64, f64)]) {
    out.push(b'[');
    for (i, (px, sz)) in levels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        bstr(out, *px, PX_DP, false);
        out.push(b',');
        bstr(out, *sz, QTY_DP, false);
        out.push(b']');
    }
    out.push(b']');
}

/// Hyperliquid `l2Book` (`{"channel":"l2Book","data":{"coin","time","levels":[[bids],[asks]]}}`,
/// each level `{"px","sz","n"}` with decimal strings), bids best first, asks best first: the
/// whole book every message. With `bad`, `time` is a string (the wrong type).
pub fn hyperliquid_l2_book(
    out: &mut Vec<u8>,
    coin: &str,
    ts_ms: u64,
    bids: &[(f64, f64)],
    asks: &[(f64, f64)],
    bad: bool,
) {
    out.raw(r#"{"channel":"l2Book","data":{"coin":"#);
    out.plain_str(coin);
    out.raw(r#","time":"#);
    int_or_bad(out, ts_ms, bad);
    out.raw(r#","levels":["#);
    for (k, side) in [bids, asks].into_iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        out.push(b'[');
        for (i, (px, sz)) in side.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.raw(r#"{"px":"#);
            bstr(out, *px, PX_DP, false);
            out.raw(r#","sz":"#);
            bstr(out, *sz, QTY_DP, false);
            out.raw(r#","n":"#);
            out.int(1 + (i as u64 % 3));
            out.push(b'}');
        }
        out.push(b']');
    }
    out.raw("]}}");
}

/// Binance USDⓈ-M futures `depthUpdate` event (binance/futures_depth_update.json): `U`..`u`
/// the update ids it covers, `pu` the `u` of the event before it, and the levels that changed
/// with their sizes at `u` (0 = removed). With `bad`, `u` is a string (the wrong type).
#[allow(clippy::too_many_arguments)]
pub fn binance_depth_event(
    out: &mut Vec<u8>,
    first_id: u64,
    last_id: u64,
    prev_id: u64,
    ts_ms: u64,
    bids: &[(f64, f64)],
    asks: &[(f64, f64)],
    send_ns: u64,
    bad: bool,
) {
    out.raw(r#"{"e":"depthUpdate","E":"#);
    out.int(ts_ms);
    out.raw(r#","T":"#);
    out.int(ts_ms.saturating_sub(1));
    out.raw(r#","s":"#);
    out.plain_str(BINANCE_SYMBOL);
    out.raw(r#","U":"#);
    out.int(first_id);
    out.raw(r#","u":"#);
    int_or_bad(out, last_id, bad);
    out.raw(r#","pu":"#);
    out.int(prev_id);
    key(out, "b");
    binance_levels(out, bids);
    key(out, "a");
    binance_levels(out, asks);
    key(out, "sim_send_ns");
    out.int(send_ns);
    out.push(b'}');
}

/// Binance's REST depth snapshot (`GET /fapi/v1/depth`: `{"lastUpdateId","E","T","bids",
/// "asks"}`; spot `/api/v3/depth` has no `E`/`T`), bids best first, asks best first.
pub fn binance_depth_snapshot(
    out: &mut Vec<u8>,
    last_id: u64,
    ts_ms: u64,
    futures: bool,
    bids: &[(f64, f64)],
    asks: &[(f64, f64)],
) {
    out.raw(r#"{"lastUpdateId":"#);
    out.int(last_id);
    if futures {
        out.raw(r#","E":"#);
        out.int(ts_ms);
        out.raw(r#","T":"#);
        out.int(ts_ms.saturating_sub(1));
    }
    key(out, "bids");
    binance_levels(out, bids);
    key(out, "asks");
    binance_levels(out, asks);
    out.push(b'}');
}

/// Binance USDⓈ-M futures `aggTrade` event (binance/futures_agg_trade.json): a trade at the
/// bid or ask.
#[allow(clippy::too_many_arguments)]
pub fn binance_agg_trade(
    out: &mut Vec<u8>,
    snap: &MarketSnapshot,
    agg_id: u64,
    first_trade_id: u64,
    rng: &mut SimRng,
    ts_ms: u64,
    send_ns: u64,
    bad: bool,
) {
    let q = &snap.binance;
    let buyer_is_maker = rng.chance(0.5);
    let px = if buyer_is_maker { q.bid } else { q.ask };
    let qty = 0.001 * (1 + rng.below(2_000)) as f64;
    let last = first_trade_id + rng.below(3);
    out.raw(r#"{"e":"aggTrade","E":"#);
    out.int(ts_ms);
    out.raw(r#","a":"#);
    out.int(agg_id);
    out.raw(r#","s":"#);
    out.plain_str(BINANCE_SYMBOL);
    out.raw(r#","p":"#);
    bstr(out, px, PX_DP, bad);
    out.raw(r#","q":"#);
    bstr(out, qty, QTY_DP, false);
    out.raw(r#","f":"#);
    out.int(first_trade_id);
    out.raw(r#","l":"#);
    out.int(last);
    out.raw(r#","T":"#);
    out.int(ts_ms.saturating_sub(1));
    out.raw(if buyer_is_maker {
        r#","m":true"#
    } else {
        r#","m":false"#
    });
    key(out, "sim_send_ns");
    out.int(send_ns);
    out.push(b'}');
}

/// Binance USDⓈ-M futures `markPriceUpdate` event.
pub fn binance_mark_price(
    out: &mut Vec<u8>,
    snap: &MarketSnapshot,
    ts_ms: u64,
    send_ns: u64,
    bad: bool,
) {
    const EIGHT_H: u64 = 8 * 3_600_000;
    let next_funding = (ts_ms / EIGHT_H + 1) * EIGHT_H;
    out.raw(r#"{"e":"markPriceUpdate","E":"#);
    out.int(ts_ms);
    out.raw(r#","s":"#);
    out.plain_str(BINANCE_SYMBOL);
    out.raw(r#","p":"#);
    bstr(out, snap.binance.mark, 8, bad);
    out.raw(r#","i":"#);
    bstr(out, snap.index, 8, false);
    out.raw(r#","P":"#);
    bstr(out, snap.binance.mark, 8, false);
    out.raw(r#","r":"#);
    bstr(out, snap.binance_funding, 8, false);
    out.raw(r#","T":"#);
    out.int(next_funding);
    key(out, "sim_send_ns");
    out.int(send_ns);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[u8]) -> &str {
        std::str::from_utf8(v).unwrap()
    }

    #[test]
    fn numbers_render_as_json() {
        let mut out = Vec::new();
        out.num(45.43);
        out.raw(",");
        out.num(f64::NAN);
        out.raw(",");
        out.int(0);
        out.raw(",");
        out.int(u64::MAX);
        out.raw(",");
        out.fixed(70206.3, 2);
        out.raw(",");
        out.fixed(0.001, 3);
        out.raw(",");
        out.fixed(-1.5, 0);
        out.raw(",");
        out.fixed(0.0001, 8);
        assert_eq!(
            s(&out),
            "45.43,null,0,18446744073709551615,70206.30,0.001,-2,0.00010000"
        );
    }

    #[test]
    fn every_message_kind_is_valid_json_and_bad_ones_have_wrong_types() {
        use super::super::chain::{ChainSpec, DAY_MS, days_from_civil};
        use super::super::market::{Market, MarketParams};
        use keel_engine::sim::VolSurface;
        use serde_json::Value;
        use std::sync::Arc;
        use std::time::Duration;
        let now = days_from_civil(2026, 3, 10) as u64 * DAY_MS;
        let chain = Arc::new(Chain::build(&ChainSpec {
            options: 40,
            spot: 100_000.0,
            vol: 0.6,
            carry: 0.05,
            now_ms: now,
            seed: 1,
        }));
        let mut m = Market::new(
            chain.clone(),
            MarketParams {
                spot: 100_000.0,
                vol: 0.6,
                carry: 0.05,
                jump_intensity: 0.0,
                jump_mean: 0.0,
                jump_sd: 0.0,
                speed: 1.0,
                tick: Duration::from_millis(10),
                seed: 1,
                surface: VolSurface::crypto(0.6).unwrap(),
                spread_vol_points: 1.5,
            },
        )
        .unwrap();
        m.advance(1, now);
        let snap = m.snapshot();
        let mut rng = SimRng::new(5);
        let (ts, ns) = (now + 5, (now + 5) * 1_000_000);
        let fut = InstrumentRef::Future(0);
        for bad in [false, true] {
            let mut book = SyntheticBook::default();
            let mut dbook = SyntheticBook::default();
            let mut renders: Vec<(&str, Vec<u8>)> = Vec::new();
            let mut r = |name, f: &mut dyn FnMut(&mut Vec<u8>)| {
                let mut out = Vec::new();
                f(&mut out);
                renders.push((name, out));
            };
            r("option", &mut |o| {
                deribit_option_ticker(o, &chain, snap, 3, ts, ns, bad)
            });
            r("perp", &mut |o| {
                deribit_linear_ticker(o, &chain, snap, InstrumentRef::Perpetual, ts, ns, bad)
            });
            r("future", &mut |o| {
                deribit_linear_ticker(o, &chain, snap, fut, ts, ns, bad)
            });
            r("index", &mut |o| deribit_index(o, snap, ts, ns, bad));
            r("marks", &mut |o| {
                deribit_markprice_options(o, &chain, snap, ts, bad)
            });
            for _ in 0..2 {
                r("book", &mut |o| {
                    let i = InstrumentRef::Perpetual;
                    deribit_book(o, &chain, snap, i, &mut dbook, &mut rng, ts, ns, bad)
                });
                r("depth", &mut |o| {
                    let (b, a) = book.update(
                        snap.binance.bid,
                        snap.binance.ask,
                        snap.binance.tick,
                        SizeRule {
                            unit: 0.001,
                            max_units: 5_000,
                        },
                        &mut rng,
                    );
                    let lv = |d: &SideDiff| -> Vec<(f64, f64)> {
                        d.items().iter().map(|&(_, p, q)| (p, q)).collect()
                    };
                    binance_depth_event(o, 10, 12, 9, ts, &lv(&b), &lv(&a), ns, bad)
                });
            }
            r("bbo", &mut |o| binance_book_ticker(o, snap, 7, ts, ns, bad));
            r("trade", &mut |o| {
                binance_agg_trade(o, snap, 8, 9, &mut rng, ts, ns, bad)
            });
            r("mark", &mut |o| binance_mark_price(o, snap, ts, ns, bad));
            for (name, bytes) in renders {
                let v: Value = serde_json::from_slice(&bytes)
                    .unwrap_or_else(|e| panic!("{name}: {e}: {}", s(&bytes)));
                let first = if v.is_array() { &v[0] } else { &v };
                let typed = match name {
                    "option" => first["timestamp"].is_u64() && first["mark_iv"].is_f64(),
                    "perp" | "future" => {
                        first["timestamp"].is_u64() && first["mark_price"].is_f64()
                    }
                    "index" => first["price"].is_f64(),
                    "marks" => first["iv"].is_f64(),
                    "book" => first["change_id"].is_u64(),
                    "depth" => first["u"].is_u64(),
                    "bbo" | "trade" => first["b"].is_string() || first["p"].is_string(),
                    "mark" => first["p"].is_string(),
                    _ => unreachable!(),
                };
                assert_eq!(typed, !bad, "{name} bad={bad}: {v}");
                if !bad && !v.is_array() {
                    assert_eq!(v["sim_send_ns"].as_u64(), Some(ns), "{name}");
                }
            }
        }
    }

    #[test]
    fn synthetic_book_updates_replay_to_the_book() {
        use std::collections::BTreeMap;
        let mut rng = SimRng::new(1);
        let mut book = SyntheticBook::default();
        let mut bids: BTreeMap<i64, f64> = BTreeMap::new();
        let mut asks: BTreeMap<i64, f64> = BTreeMap::new();
        let key = |p: f64| (p * 10.0).round() as i64;
        let rule = SizeRule {
            unit: 1.0,
            max_units: 10,
        };
        for i in 0..200 {
            let mid = 100.0 + ((i as f64) * 0.37).sin() * 3.0;
            let bb = (mid * 10.0).floor() / 10.0;
            let (db, da) = book.update(bb, bb + 0.1, 0.1, rule, &mut rng);
            for (side, d) in [(&mut bids, db), (&mut asks, da)] {
                for &(a, px, sz) in d.items() {
                    match a {
                        LevelAction::Delete => {
                            assert!(side.remove(&key(px)).is_some(), "delete of a missing level");
                        }
                        LevelAction::New => {
                            assert!(
                                side.insert(key(px), sz).is_none(),
                                "new on an existing level"
                            );
                        }
                        LevelAction::Change => {
                            assert!(
                                side.insert(key(px), sz).is_some(),
                                "change of a missing level"
                            );
                        }
                    }
                }
            }
            assert_eq!(bids.len(), LEVELS);
            assert_eq!(asks.len(), LEVELS);
            assert_eq!(*bids.keys().next_back().unwrap(), key(bb));
            assert_eq!(*asks.keys().next().unwrap(), key(bb + 0.1));
        }
    }
}
