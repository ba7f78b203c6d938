//! The book: positions on one underlying's options and its delta hedges, laid out as the
//! kernel's structure-of-arrays in the market's row order, repriced as a whole on every tick,
//! and aggregated into [`PortfolioGreeks`] per expiry bucket, in coin and in USD.
//!
//! Owns the kernel's input and output columns, the spot-move cache and the quantities. Every
//! listed option of the underlying is a row (held or not: the policy needs the Greeks of the
//! candidates it may trade), so a tick reprices the whole listed chain. After start-up it
//! never allocates: [`Book::reprice`] writes columns in place and [`Book::aggregate`] walks
//! the held rows.
//!
//! Units (DESIGN.md): rows are Black-76 on the expiry's forward in USD per unit of underlying
//! (r = 0, as Deribit prices its options). Quantities are in the venue's amount unit: options in
//! contracts (× contract size = units of underlying), an inverse perpetual or future in USD.
//! Coin Greeks are those of the coin-valued position ([`crate::greeks::to_coin`]: delta = Δ −
//! V/F, the venue's "net" delta); an inverse perpetual of A USD has coin delta A/F. USD Greeks
//! are the quote-currency Black-76 Greeks; `delta_usd` is the dollar delta (delta × index).

pub mod positions;

pub use positions::{Position, PositionsError, load_positions, parse_positions};

use keel_feeds::instrument::InstrumentId;

use crate::greeks::{
    BookInputs, GreekValues, GreeksColumns, HedgeBook, HedgeColumns, InvalidRow, MAX_PRICE,
    MIN_PRICE, OptionKind, OptionRow, SpotCache, WideF32, WideF64, greeks_one, reprice_full,
    reprice_hedge, reprice_spot, to_coin,
};
use crate::market::{Change, MarketState, is_pos};

/// How the book is repriced on a tick (`keel run --reprice`).
///
/// - [`Reprice::F32`] (the default): the hedge Greeks the decision uses — price, delta, gamma,
///   vega — with `f32x16` ([`reprice_hedge`]), from per-row terms computed in f64 and rounded
///   (recomputed for the rows whose vol changed, and for every row at each time-to-expiry
///   refresh), summed in f64. A tick that moved only forwards costs the same as one that moved
///   vols: the vol rows' terms are updated one by one, then every row runs the spot-move half
///   of the kernel. Theta (and rho, vanna, volga) come from the f64 pass that runs at every
///   time-to-expiry refresh, so the reported theta is at most that refresh interval old.
///   Accuracy against [`Reprice::F64`] on a 1,000-option Deribit-like chain (10 expiries from
///   a day to a year, 0.5–1.6× spot) holding ~400 positions of up to 25 contracts (Σ|qty| ≈
///   5,000), through index moves, vol changes and a time-to-expiry refresh (test
///   `hedge_greeks_agree_with_f64_on_a_1000_option_book` in `book/tests.rs`), per contract
///   held: aggregated coin delta within 5e-8·Σ|qty| (2.5e-4 BTC for that book, 5 % of a
///   0.005 BTC delta band; seen: 1.7e-5), coin gamma within 5e-12·Σ|qty| (seen 1.2e-9 on
///   ~4e-3), coin vega within 2e-8·Σ|qty| per 1.00 vol (seen 8e-6 on ~28), book value within
///   2e-3 USD·Σ|qty| (seen 0.8 USD on 1.1e6). That is far below the venue's own rounding of
///   the Greeks it publishes, so `f32` is the default.
/// - [`Reprice::F64`]: every Greek in f64 on every tick ([`reprice_full`] /
///   [`reprice_spot`]), as the QuantLib-checked reference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reprice {
    /// Hedge Greeks in f32, summed in f64.
    #[default]
    F32,
    /// All eight Greeks in f64.
    F64,
}

impl Reprice {
    /// The CLI spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F64 => "f64",
        }
    }
}

impl std::fmt::Display for Reprice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Reprice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "f32" => Ok(Self::F32),
            "f64" => Ok(Self::F64),
            other => Err(format!("unknown reprice precision {other:?} (f32 or f64)")),
        }
    }
}

/// The f32 hedge path's state: its terms, outputs, and the reference forward of each expiry
/// (NaN: the expiry had no forward when the terms were built).
struct HedgePath {
    terms: HedgeBook<f32>,
    out: HedgeColumns<f32>,
    f_ref: Vec<f64>,
    valid: bool,
}

/// Which kernel path a reprice took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepriceKind {
    /// Nothing changed that moves a Greek.
    None,
    /// Only forwards moved: the spot-move path.
    Spot,
    /// Vols or times changed: the full path.
    Full,
}

/// Position-weighted Greeks of one bucket (an expiry, or the whole book).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GreekSums {
    /// Delta, units of underlying.
    pub delta: f64,
    /// Gamma.
    pub gamma: f64,
    /// Vega per 1.00 of vol.
    pub vega: f64,
    /// Theta per year.
    pub theta: f64,
}

impl GreekSums {
    fn add(&mut self, g: &GreekValues, w: f64) {
        self.delta += w * g.delta;
        self.gamma += w * g.gamma;
        self.vega += w * g.vega;
        self.theta += w * g.theta;
    }
    fn plus(&mut self, o: &GreekSums) {
        self.delta += o.delta;
        self.gamma += o.gamma;
        self.vega += o.vega;
        self.theta += o.theta;
    }
}

/// Greeks of one expiry's held options.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bucket {
    /// Expiry, ms since the Unix epoch.
    pub expiry_ms: u64,
    /// Quote-currency (USD) Greeks.
    pub usd: GreekSums,
    /// Coin Greeks (premium in coin).
    pub coin: GreekSums,
    /// Value of the bucket, USD.
    pub value_usd: f64,
}

/// The book's Greeks on one underlying.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PortfolioGreeks {
    /// Options' USD Greeks.
    pub options_usd: GreekSums,
    /// Options' coin Greeks.
    pub options_coin: GreekSums,
    /// Delta of the hedge positions (perpetuals, futures), coin.
    pub hedge_delta: f64,
    /// Total coin delta: options' coin delta plus hedges: what the delta policy holds in band.
    pub delta_coin: f64,
    /// Dollar delta: (options' USD delta + hedges) × index.
    pub delta_usd: f64,
    /// Index used.
    pub index: f64,
    /// Σ|Γ·qty| over the held options (USD gamma), the weight of the two sums below.
    pub gamma_weight: f64,
    /// Σ|Γ·qty|·τ (years): over `gamma_weight`, the book's gamma-weighted time to expiry.
    pub gamma_weighted_tau: f64,
    /// Σ|Γ·qty|·σ: over `gamma_weight`, the book's gamma-weighted vol (the policy's σ).
    pub gamma_weighted_vol: f64,
}

impl PortfolioGreeks {
    /// The gamma-weighted vol and time to expiry of the held options, `None` when no held
    /// option has gamma.
    pub fn gamma_weighted(&self) -> Option<(f64, f64)> {
        let w = self.gamma_weight;
        is_pos(w).then(|| (self.gamma_weighted_vol / w, self.gamma_weighted_tau / w))
    }
}

/// Largest difference seen between Keel's Greeks and the venue's published ones, per Greek
/// (absolute, in the venue's units: vega per vol point, theta per day).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CrossCheck {
    /// Comparisons made.
    pub count: u64,
    /// Max |Δ keel − Δ venue|.
    pub delta: f64,
    /// Max |Γ keel − Γ venue|.
    pub gamma: f64,
    /// Max |vega keel/100 − vega venue|.
    pub vega: f64,
    /// Max |theta keel/365 − theta venue|.
    pub theta: f64,
}

/// Start-up errors.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    /// A position's instrument is neither an option of the underlying nor a hedge instrument.
    #[error("position in {name}: not an option of {underlying} nor a hedge instrument of the book")]
    UnknownInstrument {
        /// Instrument name.
        name: String,
        /// Underlying of the book.
        underlying: String,
    },
    /// The kernel refused a row (never expected: placeholder rows are valid).
    #[error(transparent)]
    Row(#[from] InvalidRow),
}

/// A linear position in a perpetual or future (the hedges).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HedgePosition {
    /// The instrument.
    pub id: InstrumentId,
    /// Amount in the venue's unit (USD for inverse contracts, coin for linear ones).
    pub amount: f64,
    /// Inverse (USD amount, coin margin) or linear (coin amount).
    pub inverse: bool,
}

/// Placeholder vol of a row before its first mark (its Greeks are not used: a held row
/// without a mark stops hedging, see [`Book::unmarked_held`]).
const PLACEHOLDER_VOL: f64 = 0.5;

/// Positions and Greeks of one underlying.
pub struct Book {
    inputs: BookInputs<f64>,
    out: GreeksColumns<f64>,
    cache: SpotCache<f64>,
    cache_valid: bool,
    /// The f32 hedge path (`None`: [`Reprice::F64`]).
    hedge: Option<HedgePath>,
    /// Per row: quantity in units of underlying (contracts × contract size).
    qty: Vec<f64>,
    held: Vec<u32>,
    /// Per row: priced from a real vol and forward.
    marked: Vec<bool>,
    /// Per expiry: the row range (rows are sorted by expiry).
    ranges: Vec<(u32, u32)>,
    hedges: Vec<HedgePosition>,
    buckets: Vec<Bucket>,
    tau_ms: u64,
    tau_refresh_ms: u64,
    scratch: Vec<u32>,
    cross: CrossCheck,
    reprices_full: u64,
    reprices_spot: u64,
}

impl Book {
    /// A book over every listed option of `market`, holding `positions` (options by row; any
    /// other instrument must be one of `hedge_instruments`). `tau_refresh_ms`: how often time to
    /// expiry is moved on to the exchange clock (a full reprice).
    pub fn new(
        market: &MarketState,
        positions: &[(InstrumentId, String, f64)],
        hedge_instruments: &[(InstrumentId, bool)],
        tau_refresh_ms: u64,
    ) -> Result<Self, BookError> {
        let n = market.options().len();
        let rows: Vec<OptionRow> = market
            .options()
            .iter()
            .map(|o| {
                OptionRow::black76(
                    o.kind,
                    o.strike,
                    o.strike,
                    market
                        .tau(o.expiry as usize)
                        .clamp(0.0, crate::greeks::MAX_T),
                    0.0,
                    PLACEHOLDER_VOL,
                )
            })
            .collect();
        let inputs = BookInputs::<f64>::from_rows(&rows)?;
        let out = GreeksColumns::for_book(&inputs);
        let cache = SpotCache::build::<WideF64>(&inputs);
        let mut qty = vec![0.0; n];
        let mut hedges: Vec<HedgePosition> = hedge_instruments
            .iter()
            .map(|&(id, inverse)| HedgePosition {
                id,
                amount: 0.0,
                inverse,
            })
            .collect();
        for (id, name, q) in positions {
            if let Some(r) = market.row_of(*id) {
                qty[r] += q * market.options()[r].contract_size;
            } else if let Some(h) = hedges.iter_mut().find(|h| h.id == *id) {
                h.amount += q;
            } else {
                return Err(BookError::UnknownInstrument {
                    name: name.clone(),
                    underlying: market.underlying().to_string(),
                });
            }
        }
        let mut ranges = vec![(0u32, 0u32); market.expiries().len()];
        for (r, o) in market.options().iter().enumerate() {
            let e = &mut ranges[o.expiry as usize];
            if e.1 == 0 {
                e.0 = r as u32;
            }
            e.1 = r as u32 + 1;
        }
        let buckets = market
            .expiries()
            .iter()
            .map(|e| Bucket {
                expiry_ms: e.ms,
                ..Bucket::default()
            })
            .collect();
        let terms = HedgeBook::build(&inputs);
        let hedge = Some(HedgePath {
            out: HedgeColumns::for_book(&terms),
            terms,
            f_ref: vec![f64::NAN; market.expiries().len()],
            valid: false,
        });
        let mut b = Self {
            inputs,
            out,
            cache,
            cache_valid: false,
            hedge,
            qty,
            held: Vec::with_capacity(n),
            marked: vec![false; n],
            ranges,
            hedges,
            buckets,
            tau_ms: 0,
            tau_refresh_ms: tau_refresh_ms.max(1),
            scratch: Vec::with_capacity(n),
            cross: CrossCheck::default(),
            reprices_full: 0,
            reprices_spot: 0,
        };
        b.rebuild_held();
        Ok(b)
    }

    /// Chooses how ticks reprice the book (default [`Reprice::F32`]); start-up only.
    pub fn with_reprice(mut self, mode: Reprice) -> Self {
        if mode == Reprice::F64 {
            self.hedge = None;
        }
        self
    }

    /// How ticks reprice the book.
    pub fn reprice_mode(&self) -> Reprice {
        if self.hedge.is_some() {
            Reprice::F32
        } else {
            Reprice::F64
        }
    }

    fn rebuild_held(&mut self) {
        self.held.clear();
        for (r, q) in self.qty.iter().enumerate() {
            if *q != 0.0 {
                self.held.push(r as u32);
            }
        }
    }

    /// Rows (book order) with a non-zero quantity.
    pub fn held_rows(&self) -> &[u32] {
        &self.held
    }
    /// Quantity of a row, units of underlying.
    pub fn qty(&self, row: usize) -> f64 {
        self.qty[row]
    }
    /// The hedge positions.
    pub fn hedges(&self) -> &[HedgePosition] {
        &self.hedges
    }
    /// Per-expiry buckets as of the last [`Self::aggregate`].
    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }
    /// Greeks of row `row` as of the last reprice (USD, per unit of underlying). With
    /// [`Reprice::F32`], price, delta, gamma and vega are the tick's hedge Greeks and the
    /// others those of the last f64 pass (the last time-to-expiry refresh).
    pub fn row_greeks(&self, row: usize) -> GreekValues {
        let mut g = self.out.row(row);
        if let Some(h) = &self.hedge {
            [g.price, g.delta, g.gamma, g.vega] = h.out.row(row);
        }
        g
    }
    /// The Greeks the aggregate sums (price, delta, gamma, vega, theta) of one row, as
    /// [`row_greeks`](Self::row_greeks) gives them, reading only those columns: five cache
    /// lines a row instead of twelve on the per-tick path. Rho, vanna and volga are zero.
    fn summed_greeks(&self, row: usize) -> GreekValues {
        let theta = self.out.theta.as_slice()[row];
        let [price, delta, gamma, vega] = match &self.hedge {
            Some(h) => h.out.row(row),
            None => {
                let g = |c: &crate::greeks::Column<f64>| c.as_slice()[row];
                [
                    g(&self.out.price),
                    g(&self.out.delta),
                    g(&self.out.gamma),
                    g(&self.out.vega),
                ]
            }
        };
        GreekValues {
            price,
            delta,
            gamma,
            vega,
            theta,
            rho: 0.0,
            vanna: 0.0,
            volga: 0.0,
        }
    }
    /// Held rows still without a vol mark or forward.
    pub fn unmarked_held(&self) -> usize {
        self.held
            .iter()
            .filter(|&&r| !self.marked[r as usize])
            .count()
    }
    /// Held rows whose subscription is stale (their marks are old).
    pub fn stale_held(&self, market: &MarketState) -> usize {
        self.held
            .iter()
            .filter(|&&r| market.is_stale(market.options()[r as usize].id))
            .count()
    }
    /// Largest differences against the venue's Greeks so far.
    pub fn cross_check(&self) -> CrossCheck {
        self.cross
    }
    /// Full and spot-path reprices so far.
    pub fn reprice_counts(&self) -> (u64, u64) {
        (self.reprices_full, self.reprices_spot)
    }
    /// Rows in the book.
    pub fn len(&self) -> usize {
        self.qty.len()
    }
    /// True with no row.
    pub fn is_empty(&self) -> bool {
        self.qty.is_empty()
    }

    /// Adds a fill: `amount` in the venue's unit, signed (buy > 0). Options by row, hedges by
    /// instrument; anything else is refused (returns false) and changes nothing.
    pub fn apply_fill(&mut self, market: &MarketState, id: InstrumentId, amount: f64) -> bool {
        if !amount.is_finite() {
            return false;
        }
        if let Some(r) = market.row_of(id) {
            let was = self.qty[r];
            self.qty[r] += amount * market.options()[r].contract_size;
            if (was == 0.0) != (self.qty[r] == 0.0) {
                self.rebuild_held();
            }
            true
        } else if let Some(h) = self.hedges.iter_mut().find(|h| h.id == id) {
            h.amount += amount;
            true
        } else {
            false
        }
    }

    /// Reprices the whole book from `market` after `change` (the union of what the events
    /// applied since the last reprice changed): the full path when vols changed or time to
    /// expiry is due for a refresh, the spot-move path when only forwards moved. With
    /// [`Reprice::F32`] see [`Reprice`] for what each path computes.
    pub fn reprice(&mut self, market: &mut MarketState, change: Change) -> RepriceKind {
        market.take_vol_changes(&mut self.scratch);
        let now = market.now_ms();
        let tau_due = now >= self.tau_ms.saturating_add(self.tau_refresh_ms);
        let full = tau_due || !self.scratch.is_empty();
        if !full && !change.contains(Change::SPOT) {
            return RepriceKind::None;
        }
        if tau_due {
            self.tau_ms = now;
            for r in 0..self.qty.len() {
                self.write_row(market, r);
            }
        } else {
            for i in 0..self.scratch.len() {
                let r = self.scratch[i] as usize;
                self.write_row(market, r);
            }
        }
        if self.hedge.is_some() {
            return self.reprice_hedge(market, tau_due, full);
        }
        self.write_forwards(market);
        if full {
            reprice_full::<WideF64>(&self.inputs, &mut self.out);
            self.cache_valid = false;
            self.reprices_full += 1;
            RepriceKind::Full
        } else {
            if !self.cache_valid {
                self.cache.rebuild::<WideF64>(&self.inputs);
                self.cache_valid = true;
            }
            // The cache was built from these inputs: it cannot be stale here.
            if reprice_spot::<WideF64>(&self.inputs, &self.cache, &mut self.out).is_err() {
                reprice_full::<WideF64>(&self.inputs, &mut self.out);
                self.cache_valid = false;
            }
            self.reprices_spot += 1;
            RepriceKind::Spot
        }
    }

    /// The [`Reprice::F32`] tick: rows in `self.scratch` (vol changes) already written to the
    /// f64 inputs. A time-to-expiry refresh (or an expiry whose forward appeared or vanished)
    /// runs the f64 full pass and rebuilds every row's terms with each expiry's forward as its
    /// reference; otherwise the changed rows' terms are recomputed against their expiry's
    /// reference. Then each expiry's log-move from its reference is written and the hedge
    /// kernel runs over the book.
    fn reprice_hedge(&mut self, market: &MarketState, tau_due: bool, full: bool) -> RepriceKind {
        let Some(h) = self.hedge.as_mut() else {
            return RepriceKind::None;
        };
        let usable = |f: f64| (MIN_PRICE..=MAX_PRICE).contains(&f);
        let refs_moved = market
            .expiries()
            .iter()
            .zip(&h.f_ref)
            .any(|(e, &r)| usable(e.forward) != usable(r));
        if tau_due || !h.valid || refs_moved {
            // Every row's inputs: the forwards too, then the f64 reference pass (theta and the
            // other Greeks that the tick path does not compute) and the terms from it.
            let s = self.inputs.s.as_mut_slice();
            for (e, &(a, b)) in self.ranges.iter().enumerate() {
                let f = market.expiries()[e].forward;
                h.f_ref[e] = if usable(f) {
                    s[a as usize..b as usize].fill(f);
                    f
                } else {
                    f64::NAN
                };
            }
            reprice_full::<WideF64>(&self.inputs, &mut self.out);
            self.cache_valid = false;
            h.terms.rebuild(&self.inputs);
            h.valid = true;
        } else {
            for &r in &self.scratch {
                let r = r as usize;
                let e = market.options()[r].expiry as usize;
                let f_ref = h.f_ref[e];
                if usable(f_ref) {
                    h.terms.set_row(r, &self.inputs, f_ref);
                }
            }
            for (e, &(a, b)) in self.ranges.iter().enumerate() {
                let f = market.expiries()[e].forward;
                let f_ref = h.f_ref[e];
                if usable(f) && usable(f_ref) {
                    h.terms
                        .set_move(a as usize..b as usize, f, (f / f_ref).ln());
                }
            }
        }
        reprice_hedge::<WideF32>(&h.terms, &mut h.out);
        if full {
            self.reprices_full += 1;
            RepriceKind::Full
        } else {
            self.reprices_spot += 1;
            RepriceKind::Spot
        }
    }

    /// The book's Greeks with every Greek in f64 now (off the tick path: reports, the summary
    /// at the end of a run): the f64 full pass on the current inputs, then the aggregate from
    /// it, whatever [`Reprice`] the ticks use. Leaves the tick path's outputs as they were.
    pub fn aggregate_f64(&mut self, market: &MarketState) -> PortfolioGreeks {
        self.write_forwards(market);
        reprice_full::<WideF64>(&self.inputs, &mut self.out);
        self.cache_valid = false;
        let hedge = self.hedge.take();
        let p = self.aggregate(market);
        self.hedge = hedge;
        p
    }

    /// Writes row `r` from the market (vol, forward, τ); a row without inputs keeps its
    /// placeholder and counts as unmarked.
    fn write_row(&mut self, market: &MarketState, r: usize) {
        match market.option_row(r) {
            Some(mut row) => {
                row.s = row.s.clamp(MIN_PRICE, MAX_PRICE);
                row.t = row.t.min(crate::greeks::MAX_T);
                self.marked[r] = self.inputs.set_row(r, &row).is_ok();
            }
            None => self.marked[r] = false,
        }
    }

    /// Every row's forward from its expiry (a straight column fill per expiry: no
    /// validation per row; the market only keeps positive finite forwards).
    fn write_forwards(&mut self, market: &MarketState) {
        let s = self.inputs.s.as_mut_slice();
        for (e, &(a, b)) in self.ranges.iter().enumerate() {
            let f = market.expiries()[e].forward;
            if (MIN_PRICE..=MAX_PRICE).contains(&f) {
                s[a as usize..b as usize].fill(f);
            }
        }
    }

    /// Aggregates the held rows into per-expiry buckets and the portfolio totals.
    pub fn aggregate(&mut self, market: &MarketState) -> PortfolioGreeks {
        for b in &mut self.buckets {
            b.usd = GreekSums::default();
            b.coin = GreekSums::default();
            b.value_usd = 0.0;
        }
        let mut p = PortfolioGreeks {
            index: market.index(),
            ..PortfolioGreeks::default()
        };
        // Sums in USD per expiry; coin conversion is linear in the Greeks for one forward, so
        // it is applied once per bucket. The policy's gamma weights come from the same pass.
        for &r in &self.held {
            let r = r as usize;
            let g = self.summed_greeks(r);
            let e = market.options()[r].expiry as usize;
            let q = self.qty[r];
            let b = &mut self.buckets[e];
            b.usd.add(&g, q);
            b.value_usd += q * g.price;
            let w = (g.gamma * q).abs();
            p.gamma_weight += w;
            p.gamma_weighted_tau += w * market.tau(e).max(0.0);
            p.gamma_weighted_vol += w * market.vol(r);
        }
        for (e, b) in self.buckets.iter_mut().enumerate() {
            let f = market.expiries()[e].forward;
            if b.usd == GreekSums::default() || !is_pos(f) {
                continue;
            }
            let sum = GreekValues {
                price: b.value_usd,
                delta: b.usd.delta,
                gamma: b.usd.gamma,
                vega: b.usd.vega,
                theta: b.usd.theta,
                rho: 0.0,
                vanna: 0.0,
                volga: 0.0,
            };
            let c = to_coin(&sum, f);
            b.coin = GreekSums {
                delta: c.delta,
                gamma: c.gamma,
                vega: c.vega,
                theta: c.theta,
            };
            p.options_usd.plus(&b.usd);
            p.options_coin.plus(&b.coin);
        }
        let hedge_price = market.hedge_quote().reference();
        for h in &self.hedges {
            p.hedge_delta += if h.inverse {
                if hedge_price > 0.0 {
                    h.amount / hedge_price
                } else {
                    0.0
                }
            } else {
                h.amount
            };
        }
        p.delta_coin = p.options_coin.delta + p.hedge_delta;
        p.delta_usd = (p.options_usd.delta + p.hedge_delta) * p.index;
        p
    }

    /// Compares Keel's Greeks for `row` with the venue's last published ones, priced from the
    /// same forward, vol and time as the venue's message, and keeps the largest differences.
    pub fn cross_check_row(&mut self, market: &MarketState, row: usize) {
        let (vg, f, sigma, ts_ms) = market.venue_greeks(row);
        let o = &market.options()[row];
        let tau = (market.expiries()[o.expiry as usize].ms as f64 - ts_ms as f64)
            / crate::market::YEAR_MS;
        if !(f > 0.0 && sigma > 0.0 && tau > 0.0 && vg.delta.is_finite()) {
            return;
        }
        let Ok(g) = greeks_one(&OptionRow::black76(o.kind, f, o.strike, tau, 0.0, sigma)) else {
            return;
        };
        let c = &mut self.cross;
        c.count += 1;
        let upd = |m: &mut f64, d: f64| {
            if d.is_finite() && d > *m {
                *m = d;
            }
        };
        upd(&mut c.delta, (g.delta - vg.delta).abs());
        upd(&mut c.gamma, (g.gamma - vg.gamma).abs());
        upd(&mut c.vega, (g.vega / 100.0 - vg.vega).abs());
        // Deribit caps its daily theta at the time value left (a 1-day theta larger than the
        // option's whole time value is reported as that time value).
        let intrinsic = match o.kind {
            OptionKind::Call => (f - o.strike).max(0.0),
            OptionKind::Put => (o.strike - f).max(0.0),
        };
        let theta_day = (g.theta / 365.0).max(-(g.price - intrinsic).max(0.0));
        upd(&mut c.theta, (theta_day - vg.theta).abs());
    }
}

#[cfg(test)]
mod tests;
