//! Market state for one underlying: the index, a forward per expiry, a volatility mark per
//! listed option, the hedge instrument's quote, the exchange clock and the health of the data
//! (DESIGN.md "Data flow": `MarketState.apply(event)`).
//!
//! Owns what the feeds said last, keyed by dense row and expiry indices built once from the
//! venue's instrument list ([`MarketState::new`]). [`MarketState::apply`] never allocates, never
//! hashes a string, and never panics on any event: an event for an instrument outside this
//! underlying is ignored, a value that is not a usable price or vol is counted and ignored.
//!
//! Sources, in order of preference:
//! - forward of an expiry: the option tickers' `underlying_price` (Deribit prices options on
//!   it), else the dated future's mark, else put-call parity on the marks of a call and a put of
//!   one strike (inverse: F = K / (1 − (C − P)) with coin premiums, r = 0);
//! - volatility of an option: the venue's `mark_iv`, else implied from the mid price
//!   ([`crate::greeks::iv::implied_vol`], Let's Be Rational);
//! - time: the exchange clock (the largest exchange timestamp seen), τ = (expiry − now) / year
//!   in ms (DESIGN.md units).
//!
//! Between index ticks the forwards move with the index at a constant basis F/S, so an index
//! tick is a spot move for every row ([`Change::SPOT`]) while a new vol mark is a full change
//! ([`Change::VOL`]).
//!
//! Chain heads (`EventBody::ChainHead` from an Ethereum `newHeads` feed) are kept for the
//! on-chain hedge venue's gas ([`MarketState::chain_head`]); a chain-head connection that drops
//! makes only that venue unusable, never the whole market (its `Disconnected` is tracked apart).

use keel_feeds::event::{EventBody, MarketEvent, OptionTicker, Venue, VenueGreeks};
use keel_feeds::instrument::{InstrumentId, InstrumentKind, Instruments, OptionRight};

use crate::greeks::{OptionKind, OptionRow, iv::implied_vol};
use crate::policy::cost::Level;

pub mod depth;
pub use depth::{DEFAULT_DEPTH_LEVELS, DepthBook, DepthCounters, DepthState};

/// True for a positive number (false for NaN): the test every price and vol must pass.
#[inline]
pub fn is_pos(x: f64) -> bool {
    x > 0.0
}

/// Milliseconds in a year (ACT/365), DESIGN.md.
pub const YEAR_MS: f64 = 31_536_000_000.0;

/// What an event changed, as bits (several events may be folded into one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Change(pub u8);

impl Change {
    /// Nothing the pricer needs.
    pub const NONE: Self = Self(0);
    /// The index or a forward moved: every row's underlying moved (spot-move path).
    pub const SPOT: Self = Self(1);
    /// A volatility mark changed: those rows need the full path.
    pub const VOL: Self = Self(2);
    /// The hedge instrument's quote changed.
    pub const HEDGE_QUOTE: Self = Self(4);
    /// A connection went down or came back.
    pub const CONNECTION: Self = Self(8);
    /// The venue published its Greeks for an option (cross-check).
    pub const VENUE_GREEKS: Self = Self(16);

    /// True if every bit of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
    /// True if nothing is set.
    pub fn is_none(self) -> bool {
        self.0 == 0
    }
}

impl core::ops::BitOr for Change {
    type Output = Self;
    fn bitor(self, o: Self) -> Self {
        Self(self.0 | o.0)
    }
}

impl core::ops::BitOrAssign for Change {
    fn bitor_assign(&mut self, o: Self) {
        self.0 |= o.0;
    }
}

/// A listed option of the underlying, one row of the book in book order (expiry, strike,
/// call before put).
#[derive(Clone, Debug, PartialEq)]
pub struct OptionMeta {
    /// The instrument.
    pub id: InstrumentId,
    /// Index into [`MarketState::expiries`].
    pub expiry: u16,
    /// Strike, quote currency (USD).
    pub strike: f64,
    /// Call or put.
    pub kind: OptionKind,
    /// Premium in coin (Deribit "reversed").
    pub inverse: bool,
    /// Units of underlying per contract.
    pub contract_size: f64,
}

/// One listed expiry of the underlying.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExpiryState {
    /// Expiry, ms since the Unix epoch.
    pub ms: u64,
    /// The forward now (NaN until a source has given one).
    pub forward: f64,
    /// Forward over index when the forward was last observed (1 until then).
    pub basis: f64,
    /// Which source set the forward last.
    pub source: ForwardSource,
    /// The dated future of this expiry, if listed.
    pub future: Option<InstrumentId>,
}

/// Where a forward came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardSource {
    /// None yet.
    None,
    /// The option tickers' `underlying_price`.
    Underlying,
    /// The dated future's mark.
    Future,
    /// Put-call parity on a call and a put mark of one strike.
    Parity,
    /// Carried from the index at the last observed basis.
    Index,
}

/// Ethereum's slot time, the block interval assumed until heads have measured it.
pub const DEFAULT_BLOCK_INTERVAL_NS: u64 = 12_000_000_000;

/// The latest Ethereum chain head, as the on-chain venue's gas estimate needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHeadState {
    /// Block number.
    pub number: u64,
    /// Its base fee per gas, wei.
    pub base_fee_wei: u64,
    /// Gas used.
    pub gas_used: u64,
    /// Gas limit.
    pub gas_limit: u64,
}

/// The hedge instrument's latest quote.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HedgeQuote {
    /// Best bid (NaN if none).
    pub bid: f64,
    /// Best ask (NaN if none).
    pub ask: f64,
    /// The venue's mark (NaN if none).
    pub mark: f64,
    /// Local receive time of the last update, ns.
    pub recv_ns: u64,
}

impl HedgeQuote {
    /// No quote yet.
    pub const EMPTY: HedgeQuote = HedgeQuote {
        bid: f64::NAN,
        ask: f64::NAN,
        mark: f64::NAN,
        recv_ns: 0,
    };

    /// Mid if both sides are there, else the mark.
    pub fn reference(&self) -> f64 {
        if self.bid > 0.0 && self.ask >= self.bid {
            0.5 * (self.bid + self.ask)
        } else {
            self.mark
        }
    }
}

/// Why market data cannot drive a hedge now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataFault {
    /// No index price yet.
    NoIndex,
    /// The index is older than the staleness limit.
    StaleIndex,
    /// A feed connection is down.
    Disconnected,
    /// The hedge instrument has no usable quote, or it is stale.
    NoHedgeQuote,
    /// A held option has no volatility mark or forward yet.
    Unmarked,
    /// A subscription the hedge depends on (the index, the hedge instrument, a held option)
    /// went silent past its own limit (the session's `Stale` event).
    StaleSubscription,
}

impl DataFault {
    /// Short name for status lines and JSON.
    pub fn name(self) -> &'static str {
        match self {
            DataFault::NoIndex => "no_index",
            DataFault::StaleIndex => "stale_index",
            DataFault::Disconnected => "disconnected",
            DataFault::NoHedgeQuote => "no_hedge_quote",
            DataFault::Unmarked => "unmarked",
            DataFault::StaleSubscription => "stale_subscription",
        }
    }
}

/// Counters of what [`MarketState::apply`] saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarketCounters {
    /// Events applied.
    pub events: u64,
    /// Events for instruments outside this underlying (or without one).
    pub ignored: u64,
    /// Values that were not usable (non-positive price, vol outside the kernel's domain).
    pub rejected_values: u64,
    /// Vols implied from mid prices (no mark_iv).
    pub implied_from_mid: u64,
    /// Disconnections seen.
    pub disconnects: u64,
    /// Reconnections seen.
    pub reconnects: u64,
}

/// Settings of the market state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MarketConfig {
    /// Index (and hedge quote) older than this stops hedging, ns.
    pub stale_after_ns: u64,
}

impl Default for MarketConfig {
    fn default() -> Self {
        Self {
            stale_after_ns: 2_000_000_000,
        }
    }
}

/// Start-up errors (naming what was missing).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MarketError {
    /// The instrument list has no option of the underlying.
    #[error("no listed option has base currency {underlying:?} (is it the right underlying?)")]
    NoOptions {
        /// The underlying asked for.
        underlying: String,
    },
    /// More expiries than a row can index.
    #[error("{count} expiries for {underlying}: at most 65535")]
    TooManyExpiries {
        /// The underlying.
        underlying: String,
        /// How many.
        count: usize,
    },
}

/// The market of one underlying.
#[derive(Clone, Debug)]
pub struct MarketState {
    underlying: String,
    config: MarketConfig,
    options: Vec<OptionMeta>,
    /// Instrument id → row (u32::MAX = not an option of this underlying).
    row_of: Vec<u32>,
    /// Instrument id → expiry index of a dated future (u16::MAX = none).
    future_expiry: Vec<u16>,
    /// The index instruments of this underlying.
    index_ids: Vec<InstrumentId>,
    expiries: Vec<ExpiryState>,
    /// Row of the same strike and expiry with the other right (u32::MAX = none).
    partner: Vec<u32>,
    vol: Vec<f64>,
    /// Venue's last mark price per row (quote unit), for parity and implied vols.
    mark: Vec<f64>,
    /// Best bid and ask per row (quote unit; NaN when a side is empty), for hedge costs.
    bid: Vec<f64>,
    ask: Vec<f64>,
    venue_greeks: Vec<VenueGreeks>,
    /// Forward each venue Greeks entry was published with (so the cross-check uses the same
    /// inputs as the venue).
    venue_forward: Vec<f64>,
    venue_vol: Vec<f64>,
    venue_ts_ms: Vec<u64>,
    index: f64,
    index_recv_ns: u64,
    hedge: Option<InstrumentId>,
    hedge_quote: HedgeQuote,
    /// Other instruments the delta may be hedged with (other venues' perpetuals), and their
    /// quotes; the policy picks the cheapest usable one per decision.
    alt_hedges: Vec<(InstrumentId, HedgeQuote)>,
    /// The latest Ethereum chain head (`newHeads`) and its local receive time, ns; for the
    /// on-chain hedge venue's gas. `None` before the first.
    chain_head: Option<(ChainHeadState, u64)>,
    /// Time between blocks, ns: an EWMA of the heads' arrival gaps per block (Ethereum's 12 s
    /// slot until two heads have come).
    block_interval_ns: u64,
    /// Chain-head connections down, as a bit set of `MarketEvent::conn`: a chain head feed
    /// that is down makes the on-chain venue unusable, never the whole market.
    chain_down: u128,
    /// Order books of hedge instruments whose depth is streamed ([`Self::track_depth`]).
    depth: Vec<(InstrumentId, DepthBook)>,
    /// Per instrument id: its index in `depth` (`u32::MAX`: not tracked). A lookup is one load,
    /// not a scan over the books (each a cache line or two apart) on every book event and
    /// every venue costing.
    depth_slot: Vec<u32>,
    now_ms: u64,
    /// Connections down, as a bit set of `MarketEvent::conn` (up to 128 per feed thread).
    down: u128,
    counters: MarketCounters,
    vol_changed: Vec<u32>,
    vol_changed_flag: Vec<bool>,
    /// Per instrument id: its subscription is stale (a `Stale` event, until `Fresh`).
    stale: Vec<bool>,
    /// Stale subscriptions among the index and the hedge instrument.
    stale_critical: u32,
}

fn rows_key(i: &keel_feeds::instrument::Instrument) -> (u64, u64, u8) {
    let right = match i.right {
        Some(OptionRight::Call) | None => 0,
        Some(OptionRight::Put) => 1,
    };
    (i.expiry_ms, i.strike.to_bits(), right)
}

impl MarketState {
    /// Lists every option of `underlying` (the instruments' base currency) in book order, its
    /// expiries and futures, its index instruments (kind Index, base currency `underlying` or a
    /// name starting with its lower-case code, e.g. `btc_usd`), and the hedge instrument.
    pub fn new(
        instruments: &Instruments,
        underlying: &str,
        hedge: Option<InstrumentId>,
        config: MarketConfig,
    ) -> Result<Self, MarketError> {
        let n = instruments.len();
        let lower = underlying.to_ascii_lowercase();
        let mut opts: Vec<(InstrumentId, &keel_feeds::instrument::Instrument)> = instruments
            .iter()
            .filter(|(_, i)| {
                i.kind == InstrumentKind::Option
                    && i.base_currency.eq_ignore_ascii_case(underlying)
                    && i.strike.is_finite()
                    && i.strike > 0.0
                    && i.right.is_some()
            })
            .collect();
        if opts.is_empty() {
            return Err(MarketError::NoOptions {
                underlying: underlying.to_string(),
            });
        }
        opts.sort_by(|a, b| {
            let (ea, sa, ra) = rows_key(a.1);
            let (eb, sb, rb) = rows_key(b.1);
            ea.cmp(&eb)
                .then(f64::from_bits(sa).total_cmp(&f64::from_bits(sb)))
                .then(ra.cmp(&rb))
        });
        let mut expiry_ms: Vec<u64> = opts.iter().map(|(_, i)| i.expiry_ms).collect();
        expiry_ms.dedup();
        if expiry_ms.len() > u16::MAX as usize {
            return Err(MarketError::TooManyExpiries {
                underlying: underlying.to_string(),
                count: expiry_ms.len(),
            });
        }
        let mut expiries: Vec<ExpiryState> = expiry_ms
            .iter()
            .map(|&ms| ExpiryState {
                ms,
                forward: f64::NAN,
                basis: 1.0,
                source: ForwardSource::None,
                future: None,
            })
            .collect();
        let mut row_of = vec![u32::MAX; n];
        let mut options = Vec::with_capacity(opts.len());
        for (row, (id, i)) in opts.iter().enumerate() {
            row_of[id.0 as usize] = row as u32;
            let e = expiry_ms.binary_search(&i.expiry_ms).unwrap_or(0);
            options.push(OptionMeta {
                id: *id,
                expiry: e as u16,
                strike: i.strike,
                kind: match i.right {
                    Some(OptionRight::Put) => OptionKind::Put,
                    _ => OptionKind::Call,
                },
                inverse: i.inverse,
                contract_size: if i.contract_size > 0.0 {
                    i.contract_size
                } else {
                    1.0
                },
            });
        }
        let mut partner = vec![u32::MAX; options.len()];
        for r in 1..options.len() {
            let (a, b) = (&options[r - 1], &options[r]);
            if a.expiry == b.expiry && a.strike == b.strike && a.kind != b.kind {
                partner[r - 1] = r as u32;
                partner[r] = (r - 1) as u32;
            }
        }
        let mut future_expiry = vec![u16::MAX; n];
        let mut index_ids = Vec::new();
        for (id, i) in instruments.iter() {
            let ours = i.base_currency.eq_ignore_ascii_case(underlying)
                || i.name.to_ascii_lowercase().starts_with(&lower);
            if !ours {
                continue;
            }
            match i.kind {
                InstrumentKind::Future => {
                    if let Ok(e) = expiry_ms.binary_search(&i.expiry_ms) {
                        future_expiry[id.0 as usize] = e as u16;
                        expiries[e].future = Some(id);
                    }
                }
                InstrumentKind::Index => index_ids.push(id),
                _ => {}
            }
        }
        let rows = options.len();
        Ok(Self {
            underlying: underlying.to_string(),
            config,
            options,
            row_of,
            future_expiry,
            index_ids,
            expiries,
            partner,
            vol: vec![f64::NAN; rows],
            mark: vec![f64::NAN; rows],
            bid: vec![f64::NAN; rows],
            ask: vec![f64::NAN; rows],
            venue_greeks: vec![
                VenueGreeks {
                    delta: f64::NAN,
                    gamma: f64::NAN,
                    vega: f64::NAN,
                    theta: f64::NAN,
                    rho: f64::NAN,
                };
                rows
            ],
            venue_forward: vec![f64::NAN; rows],
            venue_vol: vec![f64::NAN; rows],
            venue_ts_ms: vec![0; rows],
            index: f64::NAN,
            index_recv_ns: 0,
            hedge,
            hedge_quote: HedgeQuote::EMPTY,
            alt_hedges: Vec::new(),
            chain_head: None,
            block_interval_ns: DEFAULT_BLOCK_INTERVAL_NS,
            chain_down: 0,
            depth: Vec::new(),
            depth_slot: Vec::new(),
            now_ms: 0,
            down: 0,
            counters: MarketCounters::default(),
            vol_changed: Vec::with_capacity(rows),
            vol_changed_flag: vec![false; rows],
            stale: vec![false; n],
            stale_critical: 0,
        })
    }

    /// The underlying's code.
    pub fn underlying(&self) -> &str {
        &self.underlying
    }
    /// Listed options in book order.
    pub fn options(&self) -> &[OptionMeta] {
        &self.options
    }
    /// Listed expiries, soonest first.
    pub fn expiries(&self) -> &[ExpiryState] {
        &self.expiries
    }
    /// Row of an option instrument.
    pub fn row_of(&self, id: InstrumentId) -> Option<usize> {
        match self.row_of.get(id.0 as usize) {
            Some(&r) if r != u32::MAX => Some(r as usize),
            _ => None,
        }
    }
    /// The hedge instrument.
    pub fn hedge_instrument(&self) -> Option<InstrumentId> {
        self.hedge
    }
    /// The hedge instrument's latest quote.
    pub fn hedge_quote(&self) -> HedgeQuote {
        self.hedge_quote
    }
    /// Tracks the quotes of other instruments the delta may be hedged with (start-up only).
    pub fn set_alt_hedges(&mut self, ids: &[InstrumentId]) {
        self.alt_hedges = ids.iter().map(|&id| (id, HedgeQuote::EMPTY)).collect();
    }
    /// Keeps the order books of these hedge instruments from their book streams, `levels` per
    /// side at most (start-up only; the only allocation of depth).
    pub fn track_depth(&mut self, ids: &[InstrumentId], levels: usize) {
        self.depth = ids.iter().map(|&id| (id, DepthBook::new(levels))).collect();
        let n = ids
            .iter()
            .filter(|i| **i != InstrumentId::NONE)
            .map(|i| i.0 as usize + 1)
            .max()
            .unwrap_or(0);
        self.depth_slot = vec![u32::MAX; n];
        for (k, id) in ids.iter().enumerate() {
            if let Some(s) = self.depth_slot.get_mut(id.0 as usize)
                && *s == u32::MAX
            {
                *s = k as u32;
            }
        }
    }

    fn depth_index(&self, id: InstrumentId) -> Option<usize> {
        match self.depth_slot.get(id.0 as usize) {
            Some(&k) if k != u32::MAX => Some(k as usize),
            _ => None,
        }
    }
    /// Tracked books in the `Ready` state, and snapshots applied over all of them.
    pub fn depth_summary(&self) -> (u64, u64) {
        self.depth.iter().fold((0, 0), |(r, n), (_, b)| {
            (
                r + u64::from(b.state() == DepthState::Ready),
                n + b.counters().snapshots,
            )
        })
    }
    /// The book of a tracked instrument, whatever its state.
    pub fn depth_book(&self, id: InstrumentId) -> Option<&DepthBook> {
        self.depth_index(id).map(|k| &self.depth[k].1)
    }
    /// The levels an order on `side` takes on instrument `id`, best first, and whether the
    /// side was truncated — `None` if its depth is not tracked or not usable now (no snapshot,
    /// broken by a gap or a disconnection, mid-message, crossed, or its subscription stale).
    pub fn depth_levels(
        &self,
        id: InstrumentId,
        side: keel_feeds::event::Side,
    ) -> Option<(&[Level], bool)> {
        if self.is_stale(id) {
            return None;
        }
        self.depth_book(id)?.levels_for(side)
    }
    /// The latest quote of a hedge instrument (the main one or an alternative).
    pub fn quote_of(&self, id: InstrumentId) -> Option<HedgeQuote> {
        if Some(id) == self.hedge {
            return Some(self.hedge_quote);
        }
        self.alt_hedges
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, q)| *q)
    }
    /// Whether hedge instrument `id` has a fresh, usable quote at `now_ns` (its subscription
    /// not stale).
    pub fn hedge_usable(&self, id: InstrumentId, now_ns: u64) -> bool {
        self.quote_of(id).is_some_and(|q| {
            is_pos(q.reference())
                && now_ns.saturating_sub(q.recv_ns) <= self.config.stale_after_ns
                && !self.is_stale(id)
        })
    }
    /// The latest chain head, if one arrived within `max_age_ns` of `now_ns` and its feed is
    /// up (a stale head makes the on-chain venue unusable, like a stale quote).
    pub fn chain_head(&self, now_ns: u64, max_age_ns: u64) -> Option<ChainHeadState> {
        match self.chain_head {
            Some((h, recv))
                if self.chain_down == 0 && now_ns.saturating_sub(recv) <= max_age_ns =>
            {
                Some(h)
            }
            _ => None,
        }
    }
    /// How long until the next block is expected at `now_ns`, ns: the latest head's arrival
    /// plus the measured block interval (an on-chain hedge sent now lands in it at the
    /// earliest); the whole interval if the next block is overdue or no head has come.
    pub fn next_block_wait_ns(&self, now_ns: u64) -> u64 {
        match self.chain_head {
            Some((_, recv)) => match (recv + self.block_interval_ns).checked_sub(now_ns) {
                Some(w) if w > 0 => w,
                _ => self.block_interval_ns,
            },
            None => self.block_interval_ns,
        }
    }
    /// The measured time between blocks, ns (12 s until two heads have come).
    pub fn block_interval_ns(&self) -> u64 {
        self.block_interval_ns
    }
    /// The index (NaN before the first).
    pub fn index(&self) -> f64 {
        self.index
    }
    /// The exchange clock, ms (0 before the first timestamped event).
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }
    /// Sets the exchange clock (tests and replays; `apply` advances it from events).
    pub fn set_now_ms(&mut self, ms: u64) {
        self.now_ms = self.now_ms.max(ms);
    }
    /// Best bid and ask of a row in its quote unit (coin for inverse options), NaN if absent.
    pub fn quote(&self, row: usize) -> (f64, f64) {
        (self.bid[row], self.ask[row])
    }
    /// Volatility mark of a row (NaN before the first).
    pub fn vol(&self, row: usize) -> f64 {
        self.vol[row]
    }
    /// The forward of a row's expiry (NaN before the first source).
    pub fn forward_of_row(&self, row: usize) -> f64 {
        self.expiries[self.options[row].expiry as usize].forward
    }
    /// Years from the exchange clock to an expiry (may be ≤ 0 once expired).
    pub fn tau(&self, expiry: usize) -> f64 {
        (self.expiries[expiry].ms as f64 - self.now_ms as f64) / YEAR_MS
    }
    /// Counters.
    pub fn counters(&self) -> MarketCounters {
        self.counters
    }
    /// The venue's last published Greeks of a row, with the forward and vol it quoted then.
    pub fn venue_greeks(&self, row: usize) -> (VenueGreeks, f64, f64, u64) {
        (
            self.venue_greeks[row],
            self.venue_forward[row],
            self.venue_vol[row],
            self.venue_ts_ms[row],
        )
    }

    /// The pricing row of `row` from the current state (Black-76 on the expiry's forward,
    /// r = 0 as Deribit prices its options), or `None` while its forward or vol is unknown.
    pub fn option_row(&self, row: usize) -> Option<OptionRow> {
        let m = &self.options[row];
        let f = self.expiries[m.expiry as usize].forward;
        let sigma = self.vol[row];
        if !(f > 0.0 && sigma > 0.0) {
            return None;
        }
        Some(OptionRow::black76(
            m.kind,
            f,
            m.strike,
            self.tau(m.expiry as usize).max(0.0),
            0.0,
            sigma,
        ))
    }

    /// Rows whose vol changed since the last [`Self::take_vol_changes`], in arrival order.
    pub fn take_vol_changes(&mut self, out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(&self.vol_changed);
        for &r in &self.vol_changed {
            self.vol_changed_flag[r as usize] = false;
        }
        self.vol_changed.clear();
    }

    /// True while the instrument's subscription is stale (its session said `Stale`).
    pub fn is_stale(&self, id: InstrumentId) -> bool {
        self.stale.get(id.0 as usize).copied().unwrap_or(false)
    }

    /// Why data cannot drive a hedge at local time `now_ns`, or `None` when it can.
    pub fn fault(&self, now_ns: u64) -> Option<DataFault> {
        if self.down != 0 {
            return Some(DataFault::Disconnected);
        }
        if self.stale_critical > 0 {
            return Some(DataFault::StaleSubscription);
        }
        // An index seen only inside another instrument's message (a perpetual's mark) is not
        // a fresh index source.
        if !is_pos(self.index) || self.index_recv_ns == 0 {
            return Some(DataFault::NoIndex);
        }
        let stale = |t: u64| now_ns.saturating_sub(t) > self.config.stale_after_ns;
        if stale(self.index_recv_ns) {
            return Some(DataFault::StaleIndex);
        }
        if self.hedge.is_some()
            && (!is_pos(self.hedge_quote.reference()) || stale(self.hedge_quote.recv_ns))
            && !self
                .alt_hedges
                .iter()
                .any(|(id, _)| self.hedge_usable(*id, now_ns))
        {
            return Some(DataFault::NoHedgeQuote);
        }
        None
    }

    /// Applies one event and says what it changed. Never allocates (the vol-change list has
    /// one slot per row, reserved at start-up).
    pub fn apply(&mut self, ev: &MarketEvent) -> Change {
        self.counters.events += 1;
        if ev.exchange_ts_ns > 0 {
            self.now_ms = self.now_ms.max(ev.exchange_ts_ns / 1_000_000);
        }
        let id = ev.instrument;
        match ev.body {
            // A chain-head feed: only the on-chain venue depends on it.
            EventBody::Disconnected { .. } if ev.venue == Venue::Ethereum => {
                self.counters.disconnects += 1;
                self.chain_down |= 1u128 << (ev.conn & 127);
                Change::CONNECTION
            }
            EventBody::Connected | EventBody::Reconnected { .. } if ev.venue == Venue::Ethereum => {
                if matches!(ev.body, EventBody::Reconnected { .. }) {
                    self.counters.reconnects += 1;
                }
                self.chain_down &= !(1u128 << (ev.conn & 127));
                Change::CONNECTION
            }
            EventBody::ChainHead {
                number,
                base_fee_wei,
                gas_used,
                gas_limit,
                ..
            } => {
                // Heads only move forward (a reorg's replacement at the same height counts).
                if self.chain_head.is_some_and(|(h, _)| number < h.number) {
                    return self.ignore();
                }
                if let Some((h, recv)) = self.chain_head
                    && number > h.number
                    && ev.recv_ts_ns > recv
                {
                    let gap = (ev.recv_ts_ns - recv) / (number - h.number);
                    let e = self.block_interval_ns as i128;
                    self.block_interval_ns = (e + (gap as i128 - e) / 4).max(1) as u64;
                }
                self.chain_head = Some((
                    ChainHeadState {
                        number,
                        base_fee_wei,
                        gas_used,
                        gas_limit,
                    },
                    ev.recv_ts_ns,
                ));
                Change::HEDGE_QUOTE
            }
            EventBody::Disconnected { .. } => {
                self.counters.disconnects += 1;
                self.down |= 1u128 << (ev.conn & 127);
                self.invalidate_depth_of(ev.conn);
                Change::CONNECTION
            }
            EventBody::Connected | EventBody::Reconnected { .. } => {
                if matches!(ev.body, EventBody::Reconnected { .. }) {
                    self.counters.reconnects += 1;
                }
                self.down &= !(1u128 << (ev.conn & 127));
                // Data from before the gap must not count as fresh.
                self.index_recv_ns = self.index_recv_ns.min(ev.recv_ts_ns);
                Change::CONNECTION
            }
            EventBody::Stale { .. } | EventBody::Fresh => {
                let now = matches!(ev.body, EventBody::Stale { .. });
                let Some(slot) = self.stale.get_mut(id.0 as usize) else {
                    return self.ignore();
                };
                if *slot == now {
                    return Change::NONE;
                }
                *slot = now;
                if self.index_ids.contains(&id) || Some(id) == self.hedge {
                    if now {
                        self.stale_critical += 1;
                    } else {
                        self.stale_critical = self.stale_critical.saturating_sub(1);
                    }
                }
                Change::CONNECTION
            }
            EventBody::Index { price } if self.index_ids.contains(&id) => {
                self.set_index(price, ev.recv_ts_ns)
            }
            // A gap for no instrument: the feed dropped book deltas of more books than it
            // could name — every book waits for its next snapshot.
            EventBody::SequenceGap { .. } if id == InstrumentId::NONE => {
                for (_, b) in &mut self.depth {
                    b.invalidate();
                }
                Change::NONE
            }
            EventBody::BookLevel { .. } | EventBody::SequenceGap { .. } => {
                match self.depth_index(id) {
                    Some(k) => {
                        self.depth[k].1.on_event(ev);
                        Change::NONE
                    }
                    None => self.ignore(),
                }
            }
            EventBody::OptionTicker(t) => match self.row_of(id) {
                Some(row) => self.option_ticker(row, &t, ev.recv_ts_ns),
                None => self.ignore(),
            },
            EventBody::VenueGreeks(g) => match self.row_of(id) {
                Some(row) => {
                    self.venue_greeks[row] = g;
                    self.venue_ts_ms[row] = ev.exchange_ts_ns / 1_000_000;
                    Change::VENUE_GREEKS
                }
                None => self.ignore(),
            },
            EventBody::Quote { bid, ask, .. } if Some(id) == self.hedge => {
                self.hedge_quote.bid = bid;
                self.hedge_quote.ask = ask;
                self.hedge_quote.recv_ns = ev.recv_ts_ns;
                Change::HEDGE_QUOTE
            }
            EventBody::Quote { bid, ask, .. } if self.alt_hedges.iter().any(|(i, _)| *i == id) => {
                if let Some((_, q)) = self.alt_hedges.iter_mut().find(|(i, _)| *i == id) {
                    q.bid = bid;
                    q.ask = ask;
                    q.recv_ns = ev.recv_ts_ns;
                }
                Change::HEDGE_QUOTE
            }
            EventBody::Mark { mark, index, .. } => {
                let mut c = Change::NONE;
                if Some(id) == self.hedge {
                    self.hedge_quote.mark = mark;
                    self.hedge_quote.recv_ns = ev.recv_ts_ns;
                    c |= Change::HEDGE_QUOTE;
                } else if let Some((_, q)) = self.alt_hedges.iter_mut().find(|(i, _)| *i == id) {
                    q.mark = mark;
                    q.recv_ns = ev.recv_ts_ns;
                    // An alternative's own index is another venue's: never the book's.
                    return Change::HEDGE_QUOTE;
                }
                if let Some(&e) = self.future_expiry.get(id.0 as usize)
                    && e != u16::MAX
                {
                    c |= self.future_mark(e as usize, mark);
                }
                if let Some(row) = self.row_of(id)
                    && mark > 0.0
                {
                    self.mark[row] = mark;
                }
                // A perpetual/future mark carries the index too (Deribit): only use it before
                // the index channel has spoken, never to refresh staleness.
                if !is_pos(self.index) && index > 0.0 && c.contains(Change::HEDGE_QUOTE) {
                    self.index = index;
                }
                if c.is_none() { self.ignore() } else { c }
            }
            _ => self.ignore(),
        }
    }

    fn invalidate_depth_of(&mut self, conn: u8) {
        for (_, b) in &mut self.depth {
            if b.conn() == conn {
                b.invalidate();
            }
        }
    }

    fn ignore(&mut self) -> Change {
        self.counters.ignored += 1;
        Change::NONE
    }

    fn set_index(&mut self, price: f64, recv_ns: u64) -> Change {
        if !(crate::greeks::MIN_PRICE..=crate::greeks::MAX_PRICE).contains(&price) {
            self.counters.rejected_values += 1;
            return Change::NONE;
        }
        self.index_recv_ns = recv_ns;
        if price == self.index {
            return Change::NONE;
        }
        self.index = price;
        for e in &mut self.expiries {
            if e.forward > 0.0 {
                e.forward = price * e.basis;
                e.source = ForwardSource::Index;
            }
        }
        Change::SPOT
    }

    fn set_forward(&mut self, e: usize, f: f64, source: ForwardSource) -> Change {
        if !(crate::greeks::MIN_PRICE..=crate::greeks::MAX_PRICE).contains(&f) {
            self.counters.rejected_values += 1;
            return Change::NONE;
        }
        let x = &mut self.expiries[e];
        // The tickers' own underlying price wins over a future mark or parity.
        if source != ForwardSource::Underlying
            && x.source == ForwardSource::Underlying
            && x.forward > 0.0
        {
            return Change::NONE;
        }
        x.source = source;
        if self.index > 0.0 {
            x.basis = f / self.index;
        }
        if x.forward == f {
            return Change::NONE;
        }
        x.forward = f;
        Change::SPOT
    }

    fn future_mark(&mut self, e: usize, mark: f64) -> Change {
        self.set_forward(e, mark, ForwardSource::Future)
    }

    fn option_ticker(&mut self, row: usize, t: &OptionTicker, _recv_ns: u64) -> Change {
        let e = self.options[row].expiry as usize;
        let mut c = Change::NONE;
        if t.mark > 0.0 {
            self.mark[row] = t.mark;
        }
        self.bid[row] = t.bid;
        self.ask[row] = t.ask;
        if t.underlying > 0.0 {
            c |= self.set_forward(e, t.underlying, ForwardSource::Underlying);
        } else if self.expiries[e].source != ForwardSource::Underlying {
            c |= self.parity_forward(row);
        }
        self.venue_forward[row] = self.expiries[e].forward;
        let mut sigma = t.mark_iv;
        if !is_pos(sigma) {
            sigma = self.implied_from_mid(row, t);
        }
        self.venue_vol[row] = sigma;
        if (crate::greeks::MIN_SIGMA..=crate::greeks::MAX_SIGMA).contains(&sigma) {
            if sigma != self.vol[row] {
                self.vol[row] = sigma;
                if !self.vol_changed_flag[row] {
                    self.vol_changed_flag[row] = true;
                    self.vol_changed.push(row as u32);
                }
                c |= Change::VOL;
            }
        } else if sigma.is_finite() {
            self.counters.rejected_values += 1;
        }
        c
    }

    /// Put-call parity for inverse options at r = 0: C − P = (F − K)/F in coin, so
    /// F = K / (1 − (C − P)); for linear premiums F = K + C − P.
    fn parity_forward(&mut self, row: usize) -> Change {
        let p = self.partner[row];
        if p == u32::MAX {
            return Change::NONE;
        }
        let (a, b) = (row, p as usize);
        let (call, put) = if self.options[a].kind == OptionKind::Call {
            (a, b)
        } else {
            (b, a)
        };
        let (c, pm) = (self.mark[call], self.mark[put]);
        if !(c > 0.0 && pm > 0.0) {
            return Change::NONE;
        }
        let m = &self.options[row];
        let f = if m.inverse {
            let d = 1.0 - (c - pm);
            if d <= 0.0 {
                return Change::NONE;
            }
            m.strike / d
        } else {
            m.strike + c - pm
        };
        self.set_forward(m.expiry as usize, f, ForwardSource::Parity)
    }

    fn implied_from_mid(&mut self, row: usize, t: &OptionTicker) -> f64 {
        if !(t.bid > 0.0 && t.ask >= t.bid) {
            return f64::NAN;
        }
        let m = &self.options[row];
        let f = self.expiries[m.expiry as usize].forward;
        let tau = self.tau(m.expiry as usize);
        if !(f > 0.0 && tau > 0.0) {
            return f64::NAN;
        }
        let mid = 0.5 * (t.bid + t.ask);
        let price = if m.inverse { mid * f } else { mid };
        let r = OptionRow::black76(m.kind, f, m.strike, tau, 0.0, 0.2);
        match implied_vol(&r, price) {
            Ok(v) => {
                self.counters.implied_from_mid += 1;
                v
            }
            Err(_) => {
                self.counters.rejected_values += 1;
                f64::NAN
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use keel_feeds::event::Venue;
    use keel_feeds::instrument::Instrument;

    const EXP1: u64 = 1_800_000_000_000;
    const EXP2: u64 = 1_810_000_000_000;

    pub(crate) fn inst(
        name: &str,
        kind: InstrumentKind,
        strike: f64,
        exp: u64,
        right: Option<OptionRight>,
    ) -> Instrument {
        Instrument {
            venue: Venue::Deribit,
            name: name.into(),
            kind,
            base_currency: "BTC".into(),
            quote_currency: "BTC".into(),
            settlement_currency: "BTC".into(),
            strike,
            expiry_ms: exp,
            right,
            contract_size: 1.0,
            inverse: true,
            tick_size: 0.0001,
            min_size: 0.1,
        }
    }

    pub(crate) fn instruments() -> Instruments {
        let mut v = Instruments::new();
        v.insert(inst(
            "BTC-PERPETUAL",
            InstrumentKind::Perpetual,
            f64::NAN,
            0,
            None,
        ));
        v.insert(inst("btc_usd", InstrumentKind::Index, f64::NAN, 0, None));
        // Deliberately out of book order.
        v.insert(inst(
            "B-2-110-P",
            InstrumentKind::Option,
            110_000.0,
            EXP2,
            Some(OptionRight::Put),
        ));
        v.insert(inst(
            "B-1-100-P",
            InstrumentKind::Option,
            100_000.0,
            EXP1,
            Some(OptionRight::Put),
        ));
        v.insert(inst(
            "B-1-100-C",
            InstrumentKind::Option,
            100_000.0,
            EXP1,
            Some(OptionRight::Call),
        ));
        v.insert(inst(
            "B-2-90-C",
            InstrumentKind::Option,
            90_000.0,
            EXP2,
            Some(OptionRight::Call),
        ));
        v.insert(inst("B-2", InstrumentKind::Future, f64::NAN, EXP2, None));
        v
    }

    /// The market state of [`instruments`], hedged with the perpetual, default limits.
    fn market() -> MarketState {
        MarketState::new(
            &instruments(),
            "BTC",
            Some(InstrumentId(0)),
            MarketConfig::default(),
        )
        .unwrap()
    }

    /// An event for instrument `id` at a fixed exchange time, received at local time 1 µs.
    pub(crate) fn ev(id: u32, body: EventBody) -> MarketEvent {
        MarketEvent {
            exchange_ts_ns: 1_700_000_000_000_000_000,
            recv_ts_ns: 1_000,
            instrument: InstrumentId(id),
            venue: Venue::Deribit,
            conn: 0,
            body,
        }
    }

    /// An option ticker with a mark vol and an underlying price, nothing else.
    pub(crate) fn ticker(mark_iv: f64, underlying: f64) -> EventBody {
        EventBody::OptionTicker(OptionTicker {
            bid: f64::NAN,
            bid_size: f64::NAN,
            ask: f64::NAN,
            ask_size: f64::NAN,
            mark: 0.05,
            mark_iv,
            bid_iv: f64::NAN,
            ask_iv: f64::NAN,
            underlying,
            index: f64::NAN,
        })
    }

    #[test]
    fn chain_heads_feed_the_on_chain_venue_and_only_it_depends_on_their_connection() {
        let mut m = market();
        let head = |number: u64, recv: u64| MarketEvent {
            exchange_ts_ns: 0,
            recv_ts_ns: recv,
            instrument: InstrumentId::NONE,
            venue: Venue::Ethereum,
            conn: 3,
            body: EventBody::ChainHead {
                number,
                base_fee_wei: 7,
                gas_used: 10,
                gas_limit: 30,
                timestamp_s: 1,
            },
        };
        assert_eq!(m.chain_head(0, u64::MAX), None);
        assert_eq!(m.apply(&head(10, 1_000)), Change::HEDGE_QUOTE);
        let h = m.chain_head(2_000, 5_000).expect("fresh head");
        assert_eq!(
            (h.number, h.base_fee_wei, h.gas_used, h.gas_limit),
            (10, 7, 10, 30)
        );
        // Older than the limit: unusable, like a stale quote.
        assert_eq!(m.chain_head(7_000, 5_000), None);
        // An older block never replaces a newer one.
        assert_eq!(m.apply(&head(9, 3_000)), Change::NONE);
        assert_eq!(m.chain_head(3_000, 5_000).map(|h| h.number), Some(10));
        // The chain-head feed drops: the venue is unusable, the market's data is not faulted.
        let mut down = head(0, 3_000);
        down.body = EventBody::Disconnected {
            reason: keel_feeds::event::DisconnectReason::PeerClosed,
        };
        m.apply(&down);
        assert_eq!(m.chain_head(3_000, 5_000), None);
        assert_ne!(m.fault(3_000), Some(DataFault::Disconnected));
        let mut up = down;
        up.body = EventBody::Reconnected { attempts: 1 };
        m.apply(&up);
        assert!(m.chain_head(3_000, 5_000).is_some());
    }

    #[test]
    fn the_block_interval_is_learnt_from_heads_and_gives_the_wait_for_the_next() {
        let mut m = market();
        assert_eq!(m.next_block_wait_ns(5), DEFAULT_BLOCK_INTERVAL_NS);
        let head = |number: u64, recv: u64| MarketEvent {
            recv_ts_ns: recv,
            ..ev(
                u32::MAX,
                EventBody::ChainHead {
                    number,
                    base_fee_wei: 1,
                    gas_used: 1,
                    gas_limit: 2,
                    timestamp_s: 0,
                },
            )
        };
        m.apply(&head(1, 1_000));
        assert_eq!(m.next_block_wait_ns(1_000 + 2_000_000_000), 10_000_000_000);
        // 2 s blocks (one skipped: the gap per block counts).
        for n in [
            2u64, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
        ] {
            m.apply(&head(n, 1_000 + (n - 1) * 2_000_000_000));
        }
        let i = m.block_interval_ns();
        assert!((1_990_000_000..2_200_000_000).contains(&i), "{i}");
        let last = 1_000 + 19 * 2_000_000_000;
        assert_eq!(m.next_block_wait_ns(last + 500_000_000), i - 500_000_000);
        // Overdue: a whole interval.
        assert_eq!(m.next_block_wait_ns(last + 10 * i), i);
    }

    #[test]
    fn books_follow_their_events_and_a_gap_for_no_instrument_breaks_them_all() {
        use keel_feeds::event::{DisconnectReason, Side};
        let mut m = market();
        m.track_depth(&[InstrumentId(0), InstrumentId(4)], 8);
        let level = |price: f64, side: Side, first: bool, last: bool| EventBody::BookLevel {
            price,
            size: 10.0,
            side,
            snapshot: true,
            first,
            last,
            seq: 5,
        };
        for id in [0, 4] {
            m.apply(&ev(id, level(99.0, Side::Buy, true, false)));
            m.apply(&ev(id, level(101.0, Side::Sell, false, true)));
        }
        assert_eq!(m.depth_summary(), (2, 2));
        let (asks, _) = m.depth_levels(InstrumentId(0), Side::Buy).unwrap();
        assert_eq!(asks[0].price, 101.0);
        // An untracked instrument's book is ignored (counted).
        let ignored = m.counters.ignored;
        m.apply(&ev(3, level(1.0, Side::Buy, true, true)));
        assert_eq!(m.counters.ignored, ignored + 1);
        // A gap for one book breaks that one.
        m.apply(&ev(
            4,
            EventBody::SequenceGap {
                expected: 5,
                got: 7,
            },
        ));
        assert!(m.depth_levels(InstrumentId(4), Side::Buy).is_none());
        assert!(m.depth_levels(InstrumentId(0), Side::Buy).is_some());
        // A gap for no instrument (the feed tile dropped deltas of too many books): all.
        m.apply(&ev(
            u32::MAX,
            EventBody::SequenceGap {
                expected: 0,
                got: 0,
            },
        ));
        assert_eq!(m.depth_summary().0, 0);
        // A snapshot brings one back; its connection dropping breaks it again.
        m.apply(&ev(0, level(99.0, Side::Buy, true, false)));
        m.apply(&ev(0, level(101.0, Side::Sell, false, true)));
        assert_eq!(m.depth_summary().0, 1);
        m.apply(&ev(
            0,
            EventBody::Disconnected {
                reason: DisconnectReason::PeerClosed,
            },
        ));
        assert_eq!(m.depth_summary().0, 0);
    }

    #[test]
    fn rows_are_in_book_order_with_expiries_and_futures() {
        let m = market();
        let names: Vec<u32> = m.options().iter().map(|o| o.id.0).collect();
        assert_eq!(names, vec![4, 3, 5, 2]);
        assert_eq!(m.expiries().len(), 2);
        assert_eq!(m.expiries()[1].future, Some(InstrumentId(6)));
        assert_eq!(m.row_of(InstrumentId(5)), Some(2));
        assert_eq!(m.row_of(InstrumentId(0)), None);
        assert!(MarketState::new(&instruments(), "ETH", None, MarketConfig::default()).is_err());
    }

    #[test]
    fn index_moves_forwards_at_constant_basis_and_vols_are_full_changes() {
        let mut m = market();
        assert_eq!(
            m.apply(&ev(1, EventBody::Index { price: 100_000.0 })),
            Change::SPOT
        );
        let c = m.apply(&ev(4, ticker(0.5, 101_000.0)));
        assert!(c.contains(Change::VOL) && c.contains(Change::SPOT));
        assert_eq!(m.vol(0), 0.5);
        assert_eq!(m.forward_of_row(0), 101_000.0);
        // Same vol again: no change.
        assert_eq!(m.apply(&ev(4, ticker(0.5, 101_000.0))), Change::NONE);
        assert_eq!(
            m.apply(&ev(1, EventBody::Index { price: 110_000.0 })),
            Change::SPOT
        );
        assert!((m.forward_of_row(0) - 111_100.0).abs() < 1e-6);
        let mut changed = Vec::new();
        m.take_vol_changes(&mut changed);
        assert_eq!(changed, vec![0]);
        m.take_vol_changes(&mut changed);
        assert!(changed.is_empty());
        // Bad values are counted, never applied.
        assert_eq!(
            m.apply(&ev(1, EventBody::Index { price: -1.0 })),
            Change::NONE
        );
        assert_eq!(m.apply(&ev(4, ticker(9.0, f64::NAN))), Change::NONE);
        assert_eq!(m.counters().rejected_values, 2);
        assert_eq!(m.vol(0), 0.5);
    }

    #[test]
    fn future_mark_sets_a_forward_unless_the_tickers_gave_one() {
        let mut m = MarketState::new(&instruments(), "BTC", None, MarketConfig::default()).unwrap();
        m.apply(&ev(1, EventBody::Index { price: 100_000.0 }));
        let mark = |x| EventBody::Mark {
            mark: x,
            iv: f64::NAN,
            index: f64::NAN,
            funding_rate: f64::NAN,
        };
        assert_eq!(m.apply(&ev(6, mark(102_000.0))), Change::SPOT);
        assert_eq!(m.expiries()[1].source, ForwardSource::Future);
        m.apply(&ev(5, ticker(0.6, 102_500.0)));
        assert_eq!(m.expiries()[1].forward, 102_500.0);
        assert_eq!(m.apply(&ev(6, mark(103_000.0))), Change::NONE);
        assert_eq!(m.expiries()[1].forward, 102_500.0);
    }

    #[test]
    fn parity_gives_a_forward_for_inverse_marks() {
        let mut m = MarketState::new(&instruments(), "BTC", None, MarketConfig::default()).unwrap();
        m.apply(&ev(1, EventBody::Index { price: 100_000.0 }));
        // F = 104 000, K = 100 000: C − P = (F − K)/F in coin.
        let f = 104_000.0;
        let diff = (f - 100_000.0) / f;
        let t = |mark| {
            EventBody::OptionTicker(OptionTicker {
                mark,
                underlying: f64::NAN,
                ..match ticker(0.5, f64::NAN) {
                    EventBody::OptionTicker(t) => t,
                    _ => unreachable!(),
                }
            })
        };
        m.apply(&ev(3, t(0.02)));
        m.apply(&ev(4, t(0.02 + diff)));
        assert_eq!(m.expiries()[0].source, ForwardSource::Parity);
        assert!((m.expiries()[0].forward - f).abs() < 1e-6 * f);
    }

    #[test]
    fn faults_follow_connections_staleness_and_quotes() {
        let mut m = MarketState::new(
            &instruments(),
            "BTC",
            Some(InstrumentId(0)),
            MarketConfig {
                stale_after_ns: 1_000,
            },
        )
        .unwrap();
        assert_eq!(m.fault(0), Some(DataFault::NoIndex));
        m.apply(&ev(1, EventBody::Index { price: 100_000.0 }));
        assert_eq!(m.fault(1_500), Some(DataFault::NoHedgeQuote));
        m.apply(&ev(
            0,
            EventBody::Quote {
                bid: 99_990.0,
                bid_size: 1.0,
                ask: 100_010.0,
                ask_size: 1.0,
            },
        ));
        assert_eq!(m.fault(1_500), None);
        assert_eq!(m.hedge_quote().reference(), 100_000.0);
        assert_eq!(m.fault(2_500), Some(DataFault::StaleIndex));
        let mut d = ev(
            u32::MAX,
            EventBody::Disconnected {
                reason: keel_feeds::event::DisconnectReason::Stale,
            },
        );
        d.conn = 3;
        m.apply(&d);
        assert_eq!(m.fault(1_500), Some(DataFault::Disconnected));
        let mut r = ev(u32::MAX, EventBody::Reconnected { attempts: 1 });
        r.conn = 3;
        r.recv_ts_ns = 5_000;
        m.apply(&r);
        // Back up, but nothing fresh since: stale until the next index.
        assert_eq!(m.fault(5_000 + 1_500), Some(DataFault::StaleIndex));
    }

    #[test]
    fn a_stale_index_subscription_holds_hedges_until_fresh() {
        let mut m = MarketState::new(
            &instruments(),
            "BTC",
            Some(InstrumentId(0)),
            MarketConfig {
                stale_after_ns: 1_000_000,
            },
        )
        .unwrap();
        m.apply(&ev(1, EventBody::Index { price: 100_000.0 }));
        m.apply(&ev(
            0,
            EventBody::Quote {
                bid: 1.0,
                bid_size: 1.0,
                ask: 2.0,
                ask_size: 1.0,
            },
        ));
        assert_eq!(m.fault(1_000), None);
        m.apply(&ev(1, EventBody::Stale { since_ns: 1 }));
        m.apply(&ev(1, EventBody::Stale { since_ns: 1 }));
        assert_eq!(m.fault(1_000), Some(DataFault::StaleSubscription));
        // A stale option does not hold the whole book (the pricer checks held ones).
        m.apply(&ev(4, EventBody::Stale { since_ns: 1 }));
        assert!(m.is_stale(InstrumentId(4)));
        m.apply(&ev(1, EventBody::Fresh));
        assert_eq!(m.fault(1_000), None);
    }

    #[test]
    fn implied_vol_from_mid_when_no_mark_iv() {
        let mut m = MarketState::new(&instruments(), "BTC", None, MarketConfig::default()).unwrap();
        m.set_now_ms(EXP1 - 30 * 86_400_000);
        let f = 100_000.0;
        let row = OptionRow::black76(OptionKind::Call, f, 100_000.0, 30.0 / 365.0, 0.0, 0.55);
        let usd = crate::greeks::greeks_one(&row).unwrap().price;
        let coin = usd / f;
        let mut e = ev(
            4,
            EventBody::OptionTicker(OptionTicker {
                bid: coin,
                bid_size: 1.0,
                ask: coin,
                ask_size: 1.0,
                mark: coin,
                mark_iv: f64::NAN,
                bid_iv: f64::NAN,
                ask_iv: f64::NAN,
                underlying: f,
                index: f,
            }),
        );
        e.exchange_ts_ns = 0;
        assert!(m.apply(&e).contains(Change::VOL));
        assert!((m.vol(0) - 0.55).abs() < 1e-9, "{}", m.vol(0));
        assert_eq!(m.counters().implied_from_mid, 1);
    }
}
