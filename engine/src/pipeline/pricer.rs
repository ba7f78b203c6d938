//! The pricer tile: market events → market state → whole-book reprice → data guards → risk →
//! policy → hedge intents; fills back into the book (DESIGN.md "Data flow", pricer thread).
//!
//! Owns the market state, the book, the policy state (delta band or triggers, gamma/vega
//! construction), the risk gate, the data guards, the P&L mark and the hedges in flight. Each
//! step drains the fills, then every event waiting on the feed rings (up to a batch), applies
//! them, and reprices once on the latest state: ticks that arrived while it was busy are counted
//! as skipped, never queued. A decision, in order: data faults and guards (any holds hedging),
//! the gamma/vega legs, then the delta hedge of what remains (the legs' delta already counted in
//! flight), each intent checked by the risk gate before it is queued. Never allocates after
//! start-up (the candidate list and the pending queue are reserved at construction); publishes
//! its figures through relaxed atomics ([`PricerStats`]) that the status line reads.
//!
//! A hedge in flight counts in the book's exposure until its outcome comes back, so the same
//! exposure is never hedged twice; an outcome whose fill is unknown keeps counting until the
//! exec tile resolves it by label.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use keel_feeds::clock;
use keel_feeds::event::{Side, Venue};
use keel_feeds::instrument::InstrumentId;

use super::feed_tile::TickMsg;
use super::ring::{Consumer, Producer};
use super::telemetry::TickTrace;
use super::tile::Tile;
use crate::book::{Book, Bucket, PortfolioGreeks, RepriceKind};
use crate::exec::{Fill, FillStatus, HedgeIntent};
use crate::greeks::to_coin;
use crate::market::{Change, DataFault, MarketState};
use crate::policy::construct::{self, Band, BucketBand, Candidate};
use crate::policy::cost::{Contract, CostBreakdown, FeeRule, Liquidity};
use crate::policy::lp::LpWorkspace;
use crate::policy::triggers::{self, HedgeContext, Trigger, TriggerState};
use crate::policy::{DeltaBand, HedgeSpec};
use crate::risk::{
    Guard, GuardFault, IndexConfig, IndexGuard, IvGuard, IvLimits, KillFlags, OrderCheck,
    RiskConfigError, RiskGate, RiskLimits,
};

/// Events taken off the ring per step before repricing.
pub const MAX_BATCH: usize = 4096;
/// Hedges in flight at once (the first policy keeps one).
const MAX_IN_FLIGHT: usize = 16;

/// A float published through an atomic.
#[derive(Debug, Default)]
pub struct AtomicF64(AtomicU64);

impl AtomicF64 {
    /// Stores `v`.
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    /// The last value stored.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
    /// Adds `v` (one writer: a load and a store, not a read-modify-write).
    pub fn add(&self, v: f64) {
        self.set(self.get() + v);
    }
}

/// What the pricer publishes (relaxed atomics; one writer, the pricer).
#[derive(Debug, Default)]
pub struct PricerStats {
    /// Events taken off the feed ring.
    pub ticks: AtomicU64,
    /// Full-path reprices.
    pub reprices_full: AtomicU64,
    /// Spot-path reprices.
    pub reprices_spot: AtomicU64,
    /// Price-moving events folded into a later reprice (arrived while busy).
    pub skipped_ticks: AtomicU64,
    /// Hedge intents sent (every leg counts).
    pub hedges: AtomicU64,
    /// Decisions that traded options for gamma/vega.
    pub option_hedges: AtomicU64,
    /// Delta hedges sent to an alternative venue because it was cheaper all-in.
    pub alt_venue_hedges: AtomicU64,
    /// Delta hedges sent on chain ([`ChainHedge`]), past the risk gate.
    pub chain_venue_hedges: AtomicU64,
    /// On-chain decisions the exec side refused before sending anything (nonce busy, fee cap
    /// stale, no ladder, ...; `Fill::error_code` ≤ [`REFUSED_BEFORE_SEND`]): released, not
    /// counted as venue rejections.
    pub chain_refusals: AtomicU64,
    /// Decisions on which the on-chain venue was left out: no fresh chain head, or backing off
    /// after a refusal or a failed hedge.
    pub chain_unusable: AtomicU64,
    /// The on-chain candidate's last all-in cost, USD per coin of delta (NaN before one).
    pub chain_cost_per_coin: AtomicF64,
    /// Delta-hedge venue choices costed by walking a live book.
    pub depth_costed: AtomicU64,
    /// Delta-hedge venue choices costed at the touch (no usable depth, or none deep enough).
    pub touch_costed: AtomicU64,
    /// Venues passed over because their visible book could not fill the size.
    pub depth_short: AtomicU64,
    /// Gamma/vega legs walked through their option's live book.
    pub option_legs_walked: AtomicU64,
    /// Gamma/vega solves run again because a book was thinner than its touch.
    pub option_depth_resolves: AtomicU64,
    /// Tracked hedge books usable now (snapshot applied, not broken).
    pub depth_books_ready: AtomicU64,
    /// Book snapshots applied, all tracked books.
    pub depth_snapshots: AtomicU64,
    /// Estimated fees of the delta hedges sent, USD (cost model, before fills).
    pub est_fees_usd: AtomicF64,
    /// Estimated slippage against the mid of the delta hedges sent, USD.
    pub est_slippage_usd: AtomicF64,
    /// Estimated latency charge of the delta hedges sent, USD.
    pub est_latency_usd: AtomicF64,
    /// Intents the risk gate refused.
    pub vetoes: AtomicU64,
    /// The last refused limit (`risk::Limit::index` + 1; 0 = none yet).
    pub last_veto: AtomicU64,
    /// Risk state: 0 ACTIVE, 1 REDUCING, 2 HALTED.
    pub risk_state: AtomicU64,
    /// Mark-to-market P&L since start, USD (see `Pnl`).
    pub pnl_usd: AtomicF64,
    /// The data guard holding hedges (0 = none, else 1 + index in `Guard::ALL`).
    pub guard: AtomicU64,
    /// The guard's source or row, value and bound.
    pub guard_id: AtomicU64,
    /// See `guard_id`.
    pub guard_value: AtomicF64,
    /// See `guard_id`.
    pub guard_bound: AtomicF64,
    /// Decisions held by a data guard.
    pub guard_steps: AtomicU64,
    /// Outcomes with a fill (full, partial or paper).
    pub fills: AtomicU64,
    /// Outcomes without a fill (rejected, not found).
    pub rejects: AtomicU64,
    /// Earlier fills undone ([`FillStatus::Lost`]: a builder-accepted bundle never included).
    pub lost_fills: AtomicU64,
    /// Intents the exec ring had no room for at once (held, then sent).
    pub intent_ring_full: AtomicU64,
    /// Traces the telemetry ring had no room for (dropped: telemetry is best effort).
    pub trace_drops: AtomicU64,
    /// Steps on which hedging was held back by a data fault.
    pub fault_steps: AtomicU64,
    /// The current data fault (0 = none, else 1 + `DataFault` index).
    pub fault: AtomicU64,
    /// Portfolio coin delta (options + hedges), as of the last reprice.
    pub delta_coin: AtomicF64,
    /// Dollar delta.
    pub delta_usd: AtomicF64,
    /// Options' coin gamma.
    pub gamma_coin: AtomicF64,
    /// Options' coin vega (per 1.00 vol).
    pub vega_coin: AtomicF64,
    /// Options' coin theta (per year).
    pub theta_coin: AtomicF64,
    /// Options' USD gamma.
    pub gamma_usd: AtomicF64,
    /// Options' USD vega.
    pub vega_usd: AtomicF64,
    /// Options' USD theta.
    pub theta_usd: AtomicF64,
    /// Hedges in flight, coin delta.
    pub in_flight: AtomicF64,
    /// Index.
    pub index: AtomicF64,
    /// Coin delta at the first complete reprice (NaN before).
    pub delta_before: AtomicF64,
    /// Largest |delta − target| seen with good data.
    pub max_abs_excursion: AtomicF64,
    /// Largest |Taylor-carried delta − repriced delta| (options, USD delta units).
    pub taylor_max_error: AtomicF64,
    /// Venue Greeks cross-check maxima: delta, gamma, vega (per point), theta (per day).
    pub cross_delta: AtomicF64,
    /// See `cross_delta`.
    pub cross_gamma: AtomicF64,
    /// See `cross_delta`.
    pub cross_vega: AtomicF64,
    /// See `cross_delta`.
    pub cross_theta: AtomicF64,
    /// Comparisons made.
    pub cross_count: AtomicU64,
    /// Feed disconnections seen.
    pub disconnects: AtomicU64,
    /// Feed reconnections seen.
    pub reconnects: AtomicU64,
    /// Per-expiry Greeks of the held options, written once when the tile stops (a lock, off the
    /// hot path).
    pub buckets: std::sync::Mutex<Vec<Bucket>>,
}

impl PricerStats {
    /// The data guard holding hedges now, if any (name, source or row, value, bound).
    pub fn guard(&self) -> Option<(&'static str, u64, f64, f64)> {
        let g = self.guard.load(Ordering::Relaxed) as usize;
        Guard::ALL.get(g.wrapping_sub(1)).map(|g| {
            (
                g.name(),
                self.guard_id.load(Ordering::Relaxed),
                self.guard_value.get(),
                self.guard_bound.get(),
            )
        })
    }

    /// The current data fault, if any.
    pub fn fault(&self) -> Option<DataFault> {
        FAULTS
            .get((self.fault.load(Ordering::Relaxed) as usize).wrapping_sub(1))
            .copied()
    }
}

const FAULTS: [DataFault; 6] = [
    DataFault::NoIndex,
    DataFault::StaleIndex,
    DataFault::Disconnected,
    DataFault::NoHedgeQuote,
    DataFault::Unmarked,
    DataFault::StaleSubscription,
];

/// Gamma and vega hedging with options (see [`crate::policy::construct`]).
#[derive(Clone, Debug)]
pub struct OptionHedging {
    /// Gamma band (coin); `None`: gamma is not hedged.
    pub gamma: Option<Band>,
    /// Vega band (coin, per 1.00 of vol); `None`: vega is not hedged.
    pub vega: Option<Band>,
    /// Vega band of every expiry bucket (coin); `None`: buckets are not held to a band. With
    /// it, the solve is [`construct::solve_bands`] (a small LP) instead of the pair search.
    pub bucket_vega: Option<Band>,
    /// Book rows of the options it may trade (the liquid set).
    pub liquid: Vec<usize>,
    /// Largest order of one option, contracts (`keel run`: the book's size, Σ|qty|).
    pub max_contracts: f64,
    /// The options' fee rule (Deribit: `FeeRule::DERIBIT_OPTION`, 0.03 % of the underlying per
    /// contract capped at 12.5 % of the option's price), taker side.
    pub fee: FeeRule,
}

/// The pricer's hedging settings.
#[derive(Clone, Debug)]
pub struct PricerConfig {
    /// Hard limits every intent must pass ([`crate::risk::RiskGate`]).
    pub risk: RiskLimits,
    /// Halt requests (halt file, SIGUSR1), shared with the status loop.
    pub kill: KillFlags,
    /// Raised once when the gate enters HALTED: the exec tile cancels everything resting.
    pub cancel_all: Arc<AtomicBool>,
    /// The index check: the venue's index, the perpetual's index and its mid as three sources.
    pub index_guard: IndexConfig,
    /// Staleness of each index source, ns.
    pub index_stale_ns: u64,
    /// Implied-vol sanity per option.
    pub iv_guard: IvLimits,
    /// Gamma/vega hedging, if any.
    pub options: Option<OptionHedging>,
    /// The delta band (its target is the delta target of every trigger too).
    pub policy: DeltaBand,
    /// Delta triggers (`policy::triggers`, e.g. `ww:1+time:1h`); `None`: the delta band alone.
    pub triggers: Option<Vec<Trigger>>,
    /// One-way proportional cost of the hedge instrument (10 bp = 0.001), for cost-aware
    /// triggers.
    pub kappa: f64,
    /// How the hedge instrument trades.
    pub hedge: HedgeSpec,
    /// The hedge instrument and its venue.
    pub hedge_instrument: InstrumentId,
    /// Its venue.
    pub hedge_venue: Venue,
    /// Hedge at most once per this many ns (no order spam while a venue misbehaves).
    pub min_hedge_interval_ns: u64,
    /// Other venues' linear instruments the delta may be hedged with; each decision takes the
    /// usable venue (fresh quote) with the lowest all-in cost: taker fee + half the spread for
    /// the size (the main hedge's fee is `kappa`).
    pub alt_hedges: Vec<AltHedge>,
    /// The on-chain delta-hedge venue, if any (`--alt-hedge evm`).
    pub chain_hedge: Option<ChainHedge>,
}

/// `Fill::error_code` at or below this: the exec side refused the decision before anything
/// was sent (the EVM exec's `Refusal::code`, −1000 − reason). Such an outcome releases the
/// exposure but is not a venue rejection: it neither counts toward nor resets the risk gate's
/// consecutive-rejects streak (the venue never saw the order; a nonce still pending or a fee
/// cap being re-signed says nothing about the venue being broken). The venue backs off instead.
pub const REFUSED_BEFORE_SEND: i32 = -1000;

/// The on-chain delta-hedge venue: a DEX swap sent as a pre-signed transaction (ladders of
/// sizes `lot·2^i`). Its all-in cost per decision: the DEX fee on the notional plus gas
/// (`gas_units` × (predicted next base fee + priority fee), from the latest chain head by the
/// EIP-1559 rule, in USD at the ETH price), per coin of delta the chosen rung removes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChainHedge {
    /// The instrument the book counts the on-chain position under (linear, coin).
    pub instrument: InstrumentId,
    /// Its venue (intents are routed by it).
    pub venue: Venue,
    /// Size of rung 0, coin.
    pub lot_coin: f64,
    /// Rungs per side (sizes `lot_coin·2^i`, i < rungs).
    pub rungs: u8,
    /// Largest order, coin.
    pub max_order_coin: f64,
    /// DEX fee, fraction of notional (30 bp = 0.003).
    pub fee: f64,
    /// Gas of one hedge transaction.
    pub gas: crate::policy::cost::GasSpec,
    /// ETH price, USD; `None`: the index (the underlying is ETH).
    pub eth_usd: Option<f64>,
    /// A chain head older than this makes the venue unusable, ns.
    pub head_max_age_ns: u64,
    /// After a refusal or a failed hedge the venue is left out this long, ns, doubled for each
    /// such outcome in a row (at most 32×); a fill on chain resets it.
    pub backoff_ns: u64,
}

impl ChainHedge {
    /// The rung nearest `coin` (ties to the smaller) not above `max_order_coin`, as the exec
    /// side's `Ladder::pick` chooses it; `None` if none fits.
    pub fn rung_for(&self, coin: f64) -> Option<f64> {
        if !(coin.is_finite() && coin > 0.0 && self.lot_coin > 0.0) {
            return None;
        }
        let mut best: Option<f64> = None;
        for i in 0..self.rungs.min(63) {
            let r = self.lot_coin * (1u64 << i) as f64;
            if r > self.max_order_coin {
                break;
            }
            if best.is_none_or(|b| (r - coin).abs() < (b - coin).abs()) {
                best = Some(r);
            }
        }
        best
    }

    /// All-in cost in USD of a rung of `coin` at `price` (USD per coin) after `head`, and the
    /// gas part; `None` if the head or a price is not usable.
    pub fn cost_usd(
        &self,
        coin: f64,
        price: f64,
        head: &crate::market::ChainHeadState,
        index: f64,
    ) -> Option<(f64, f64)> {
        let eth_usd = self.eth_usd.unwrap_or(index);
        let h = crate::policy::cost::ChainHead {
            base_fee_wei: head.base_fee_wei,
            gas_used: head.gas_used,
            gas_limit: head.gas_limit,
        };
        let gas = crate::policy::cost::gas_quote(&self.gas, &h, eth_usd).ok()?;
        if !(price.is_finite() && price > 0.0) {
            return None;
        }
        Some((self.fee * coin * price + gas.usd, gas.usd))
    }
}

/// Another venue's instrument for the delta hedge (a linear perpetual: amount in coin).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AltHedge {
    /// The instrument (its quotes tracked by the market state).
    pub instrument: InstrumentId,
    /// Its venue.
    pub venue: Venue,
    /// How it trades (`inverse: false`).
    pub spec: HedgeSpec,
    /// One-way taker fee, as a fraction of notional (5 bp = 0.0005).
    pub fee: f64,
    /// 0: any multiple of `spec.lot`. n > 0: the venue trades a ladder of pre-signed orders of
    /// `spec.lot`·2^i (i < n; Hyperliquid): the order is the largest rung not above what
    /// `spec` sizes, so the exec side fills it whole and the cost is the real order's.
    pub rungs: u8,
}

impl AltHedge {
    /// `o` cut down to the largest rung not above it (`rungs` > 0); `None` below the smallest.
    fn on_ladder(&self, o: crate::policy::HedgeOrder) -> Option<crate::policy::HedgeOrder> {
        if self.rungs == 0 {
            return Some(o);
        }
        let lot = self.spec.lot;
        let mut best = None;
        for i in 0..self.rungs.min(63) {
            let r = lot * (1u64 << i) as f64;
            if r <= o.amount * (1.0 + 1e-9) {
                best = Some(r);
            }
        }
        let amount = best?;
        Some(crate::policy::HedgeOrder {
            amount,
            coin_delta: o.coin_delta.signum() * amount,
            ..o
        })
    }
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    id: u64,
    coin_delta: f64,
}

/// The pricer's edges: market data in (one ring per feed thread), intents out to exec,
/// fills back from exec, traces out to telemetry.
pub struct PricerRings {
    /// Feed → pricer, one per feed thread (conflating on full, see `feed_tile`).
    pub inputs: Vec<Consumer<TickMsg>>,
    /// Pricer → exec (never dropped: held and retried).
    pub intents: Producer<HedgeIntent>,
    /// Exec → pricer.
    pub fills: Consumer<Fill>,
    /// Pricer → telemetry (best effort: a full ring drops the trace, counted).
    pub traces: Producer<TickTrace>,
}

/// Mark-to-market P&L since start, USD, for the risk gate's daily loss stop: the held options'
/// value now minus at the first complete reprice, minus what option fills paid (coin premium ×
/// index), plus the inverse hedges' P&L (Σ Aᵢ/Pᵢ − ΣAᵢ/P in coin, × P; the starting position
/// enters at the first reference price). Fees are not known here and are left out.
#[derive(Clone, Copy, Debug, Default)]
struct Pnl {
    base_value_usd: Option<f64>,
    option_cash_usd: f64,
    /// Σ amount (USD) and Σ amount/price (coin) of the inverse hedge's trades.
    hedge_amount: f64,
    hedge_coin: f64,
    hedge_started: bool,
    /// Linear alternative hedges: coin held and USD paid, marked at the index.
    alt_coin: f64,
    alt_cash_usd: f64,
}

impl Pnl {
    fn on_fill(
        &mut self,
        m: &MarketState,
        id: keel_feeds::instrument::InstrumentId,
        filled: f64,
        price: f64,
        chain: Option<InstrumentId>,
    ) {
        if !price.is_finite() || price <= 0.0 {
            return;
        }
        if let Some(r) = m.row_of(id) {
            let meta = &m.options()[r];
            let usd = if meta.inverse {
                price * m.index()
            } else {
                price
            };
            self.option_cash_usd -= filled * meta.contract_size * usd;
        } else if Some(id) == m.hedge_instrument() {
            self.hedge_amount += filled;
            self.hedge_coin += filled / price;
        } else if m.quote_of(id).is_some() || Some(id) == chain {
            self.alt_coin += filled;
            self.alt_cash_usd -= filled * price;
        }
    }

    /// P&L now, or `None` before the baseline exists.
    fn value(
        &mut self,
        options_value_usd: f64,
        hedge_start_amount: f64,
        hedge_price: f64,
    ) -> Option<f64> {
        if !(hedge_price > 0.0 && options_value_usd.is_finite()) {
            return None;
        }
        if !self.hedge_started {
            self.hedge_started = true;
            self.hedge_amount += hedge_start_amount;
            self.hedge_coin += hedge_start_amount / hedge_price;
        }
        let base = *self.base_value_usd.get_or_insert(options_value_usd);
        let hedge_usd = (self.hedge_coin - self.hedge_amount / hedge_price) * hedge_price;
        let alt_usd = self.alt_coin * hedge_price + self.alt_cash_usd;
        Some(options_value_usd - base + self.option_cash_usd + hedge_usd + alt_usd)
    }
}

/// The pricer tile.
pub struct PricerTile {
    market: MarketState,
    book: Book,
    config: PricerConfig,
    inputs: Vec<Consumer<TickMsg>>,
    intents: Producer<HedgeIntent>,
    fills: Consumer<Fill>,
    traces: Producer<TickTrace>,
    in_flight: [Option<InFlight>; MAX_IN_FLIGHT],
    in_flight_coin: f64,
    /// Send → outcome latency per delta-hedge venue (main, then each alternative), ns, an
    /// EWMA over its fills (the cost model's latency term; 0 until the first).
    ack_ns: Vec<u64>,
    next_id: u64,
    last_hedge_ns: u64,
    stats: Arc<PricerStats>,
    /// Last repriced options' USD delta, gamma and the index then (Taylor check).
    taylor: Option<(f64, f64, f64)>,
    have_before: bool,
    last_check_ns: u64,
    /// dΓ/dS over the last spot move (finite difference), for the Taylor check.
    speed: f64,
    /// Reused candidate list for the gamma/vega solve (capacity reserved at start).
    candidates: Vec<Candidate>,
    gate: RiskGate,
    pnl: Pnl,
    index_guard: IndexGuard,
    iv_guard: IvGuard,
    trigger_state: TriggerState,
    last_decision_ns: u64,
    /// An implied-vol guard fault seen in the current batch.
    iv_fault: Option<GuardFault>,
    /// Intents decided but not yet on the exec ring (several legs of one decision).
    pending: [Option<HedgeIntent>; MAX_PENDING],
    /// The LP's tableau for the per-bucket vega solve (allocated once, if bucket bands are on).
    lp: Option<Box<LpWorkspace>>,
    /// Each candidate's expiry bucket (parallel to `candidates`).
    cand_bucket: Vec<u16>,
    /// The buckets given to the solve (capacity: every expiry).
    bucket_bands: Vec<BucketBand>,
    /// The on-chain venue is left out of decisions until this local time, ns.
    chain_backoff_until_ns: u64,
    /// On-chain outcomes without a fill in a row (the sit-out doubles with each).
    chain_fail_streak: u32,
}

/// Intents of one decision at most: every option leg and the delta hedge.
const MAX_PENDING: usize = construct::MAX_LEGS + 1;

impl PricerTile {
    /// A pricer over `market` and `book` on `rings`.
    pub fn new(
        market: MarketState,
        book: Book,
        config: PricerConfig,
        rings: PricerRings,
    ) -> Result<(Self, Arc<PricerStats>), RiskConfigError> {
        let gate = RiskGate::new(config.risk, config.kill.clone())?;
        let stale = [config.index_stale_ns; 3];
        let index_guard = IndexGuard::new(config.index_guard, &stale)
            .map_err(|e| RiskConfigError::Guard(e.to_string()))?;
        let iv_guard = IvGuard::new(config.iv_guard, market.options().len())
            .map_err(|e| RiskConfigError::Guard(e.to_string()))?;
        let PricerRings {
            inputs,
            intents,
            fills,
            traces,
        } = rings;
        let stats = Arc::new(PricerStats::default());
        stats.delta_before.set(f64::NAN);
        stats.chain_cost_per_coin.set(f64::NAN);
        let n_expiries = market.expiries().len();
        Ok((
            Self {
                market,
                book,
                inputs,
                intents,
                fills,
                traces,
                in_flight: [None; MAX_IN_FLIGHT],
                in_flight_coin: 0.0,
                ack_ns: vec![0; 1 + config.alt_hedges.len()],
                next_id: 1,
                last_hedge_ns: 0,
                stats: stats.clone(),
                taylor: None,
                have_before: false,
                last_check_ns: 0,
                speed: 0.0,
                candidates: Vec::with_capacity(
                    config.options.as_ref().map_or(0, |o| o.liquid.len()),
                ),
                pending: [None; MAX_PENDING],
                lp: config
                    .options
                    .as_ref()
                    .and_then(|o| o.bucket_vega)
                    .map(|_| Box::new(LpWorkspace::new())),
                cand_bucket: Vec::with_capacity(
                    config.options.as_ref().map_or(0, |o| o.liquid.len()),
                ),
                bucket_bands: Vec::with_capacity(n_expiries),
                gate,
                pnl: Pnl::default(),
                index_guard,
                iv_guard,
                trigger_state: TriggerState::new(config.triggers.as_deref().unwrap_or(&[])),
                last_decision_ns: 0,
                iv_fault: None,
                chain_backoff_until_ns: 0,
                chain_fail_streak: 0,
                config,
            },
            stats,
        ))
    }

    fn take_fills(&mut self) -> bool {
        let mut any = false;
        while let Some(f) = self.fills.pop() {
            any = true;
            if f.status == FillStatus::Lost {
                // Its intent left the in-flight table with its first fill: undone on its own.
                self.undo_fill(&f, clock::now_ns());
                continue;
            }
            let Some(slot) = self
                .in_flight
                .iter()
                .position(|s| s.is_some_and(|x| x.id == f.intent_id))
            else {
                continue;
            };
            let Some(x) = self.in_flight[slot].take() else {
                continue;
            };
            self.in_flight_coin -= x.coin_delta;
            let now = clock::now_ns();
            let on_chain = self
                .config
                .chain_hedge
                .is_some_and(|c| c.instrument == f.instrument);
            if f.error_code <= REFUSED_BEFORE_SEND && f.status == FillStatus::Rejected {
                // Refused before sending: released, not a venue rejection (see
                // REFUSED_BEFORE_SEND); the venue backs off.
                self.stats.chain_refusals.fetch_add(1, Ordering::Relaxed);
            } else {
                self.gate.record_outcome(f.status, now);
            }
            if on_chain {
                if f.filled == 0.0 {
                    self.chain_failed(now);
                } else {
                    self.chain_fail_streak = 0;
                }
            }
            if f.filled != 0.0 {
                self.learn_latency(&f);
                self.book.apply_fill(&self.market, f.instrument, f.filled);
                let chain = self.config.chain_hedge.map(|c| c.instrument);
                self.pnl
                    .on_fill(&self.market, f.instrument, f.filled, f.price, chain);
                self.stats.fills.fetch_add(1, Ordering::Relaxed);
            } else {
                self.stats.rejects.fetch_add(1, Ordering::Relaxed);
            }
            self.trace(f.trace);
        }
        if self.in_flight.iter().all(Option::is_none) {
            // No rounding residue survives the last outcome.
            self.in_flight_coin = 0.0;
        }
        any
    }

    /// The on-chain venue failed (refused, or a fill undone): it sits out, twice as long for each
    /// failure in a row (at most 32×): a venue that keeps failing costs a decision now and then,
    /// not every one (nor the order-rate budget, which every intent counts in).
    fn chain_failed(&mut self, now: u64) {
        let Some(c) = self.config.chain_hedge else {
            return;
        };
        let k = self.chain_fail_streak.min(5);
        self.chain_fail_streak = self.chain_fail_streak.saturating_add(1);
        self.chain_backoff_until_ns = now.saturating_add(c.backoff_ns << k);
    }

    /// Applies a [`FillStatus::Lost`] fill: the position and P&L of the earlier fill are taken
    /// back (same size, opposite sign, same price), the venue's outcome counts as a failure
    /// (risk gate, and the on-chain venue sits out as after a refusal).
    fn undo_fill(&mut self, f: &Fill, now: u64) {
        self.gate.record_outcome(f.status, now);
        self.stats.lost_fills.fetch_add(1, Ordering::Relaxed);
        if self
            .config
            .chain_hedge
            .is_some_and(|c| c.instrument == f.instrument)
        {
            self.chain_failed(now);
        }
        if f.filled != 0.0 && f.filled.is_finite() {
            self.book.apply_fill(&self.market, f.instrument, f.filled);
            let chain = self.config.chain_hedge.map(|c| c.instrument);
            self.pnl
                .on_fill(&self.market, f.instrument, f.filled, f.price, chain);
        }
    }

    /// Folds a fill's send → outcome time into its venue's latency EWMA (weight 1/8).
    fn learn_latency(&mut self, f: &Fill) {
        if f.status == crate::exec::FillStatus::Paper || f.trace.sent_ns == 0 {
            return;
        }
        let Some(sample) = f.done_ns.checked_sub(f.trace.sent_ns) else {
            return;
        };
        let k = if f.instrument == self.config.hedge_instrument {
            0
        } else if let Some(k) = self
            .config
            .alt_hedges
            .iter()
            .position(|a| a.instrument == f.instrument)
        {
            k + 1
        } else {
            return;
        };
        let e = &mut self.ack_ns[k];
        *e = if *e == 0 {
            sample
        } else {
            (*e as i128 + (sample as i128 - *e as i128) / 8) as u64
        };
    }

    fn trace(&mut self, t: TickTrace) {
        if self.traces.push(t).is_err() {
            self.stats.trace_drops.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn publish(&self, p: &PortfolioGreeks) {
        let s = &self.stats;
        let (ready, snapshots) = self.market.depth_summary();
        s.depth_books_ready.store(ready, Ordering::Relaxed);
        s.depth_snapshots.store(snapshots, Ordering::Relaxed);
        s.delta_coin.set(p.delta_coin);
        s.delta_usd.set(p.delta_usd);
        s.gamma_coin.set(p.options_coin.gamma);
        s.vega_coin.set(p.options_coin.vega);
        s.theta_coin.set(p.options_coin.theta);
        s.gamma_usd.set(p.options_usd.gamma);
        s.vega_usd.set(p.options_usd.vega);
        s.theta_usd.set(p.options_usd.theta);
        s.index.set(p.index);
        s.in_flight.set(self.in_flight_coin);
        let (full, spot) = self.book.reprice_counts();
        s.reprices_full.store(full, Ordering::Relaxed);
        s.reprices_spot.store(spot, Ordering::Relaxed);
        let c = self.book.cross_check();
        s.cross_count.store(c.count, Ordering::Relaxed);
        s.cross_delta.set(c.delta);
        s.cross_gamma.set(c.gamma);
        s.cross_vega.set(c.vega);
        s.cross_theta.set(c.theta);
        let m = self.market.counters();
        s.disconnects.store(m.disconnects, Ordering::Relaxed);
        s.reconnects.store(m.reconnects, Ordering::Relaxed);
    }

    /// The book's position in an instrument, coin: options in units of underlying, a linear
    /// hedge in coin, an inverse one as its USD amount over the hedge price.
    fn position_coin(&self, id: keel_feeds::instrument::InstrumentId) -> f64 {
        if let Some(r) = self.market.row_of(id) {
            return self.book.qty(r);
        }
        let price = self.market.hedge_quote().reference();
        self.book
            .hedges()
            .iter()
            .find(|h| h.id == id)
            .map_or(0.0, |h| {
                if h.inverse {
                    h.amount / price
                } else {
                    h.amount
                }
            })
    }

    /// Moves decided intents onto the exec ring, in order; false if some must wait (the
    /// intent edge never drops: they stay here and go first next step).
    fn send_pending(&mut self) -> bool {
        for k in 0..self.pending.len() {
            if let Some(i) = self.pending[k] {
                if let Err(back) = self.intents.push(i) {
                    self.pending[k] = Some(back.0);
                    return false;
                }
                self.pending[k] = None;
            }
        }
        true
    }

    fn has_pending(&self) -> bool {
        self.pending.iter().any(Option::is_some)
    }

    /// Checks one intent against the risk gate, then records and queues it; false if the
    /// gate refused it (counted) or the in-flight table or the queue is full.
    fn emit(&mut self, mut intent: HedgeIntent, exposure_coin: f64, now: u64) -> bool {
        let (Some(slot), Some(q)) = (
            self.in_flight.iter().position(Option::is_none),
            self.pending.iter().position(Option::is_none),
        ) else {
            return false;
        };
        let check = OrderCheck {
            coin: intent.coin_delta,
            notional_usd: intent.coin_delta.abs() * self.market.index(),
            position_coin: self.position_coin(intent.instrument),
            exposure_coin,
        };
        if let Err(v) = self.gate.check(&check, now) {
            self.stats.vetoes.fetch_add(1, Ordering::Relaxed);
            self.stats
                .last_veto
                .store(v.limit.index() as u64 + 1, Ordering::Relaxed);
            return false;
        }
        self.gate.record_sent(&check, now);
        intent.id = self.next_id;
        self.next_id += 1;
        self.in_flight[slot] = Some(InFlight {
            id: intent.id,
            coin_delta: intent.coin_delta,
        });
        self.in_flight_coin += intent.coin_delta;
        self.stats.hedges.fetch_add(1, Ordering::Relaxed);
        self.pending[q] = Some(intent);
        true
    }

    /// The gamma/vega legs, if the book is outside a band: queued as intents (their coin
    /// delta counted in flight at once); true if any was queued.
    fn option_legs(&mut self, p: &PortfolioGreeks, trace: TickTrace, now: u64) -> bool {
        let Some(o) = &self.config.options else {
            return false;
        };
        let wide = Band {
            target: 0.0,
            half_width: f64::INFINITY,
        };
        let (gb, vb) = (o.gamma.unwrap_or(wide), o.vega.unwrap_or(wide));
        self.candidates.clear();
        self.cand_bucket.clear();
        for &r in &o.liquid {
            let meta = &self.market.options()[r];
            let f = self.market.forward_of_row(r);
            let (bid, ask) = self.market.quote(r);
            if !crate::market::is_pos(f) {
                continue;
            }
            let g = self.book.row_greeks(r);
            let c = if meta.inverse { to_coin(&g, f) } else { g };
            let size = meta.contract_size;
            let mid = if bid > 0.0 && ask >= bid {
                0.5 * (bid + ask)
            } else {
                f64::NAN
            };
            // The fee per contract in the option's quote unit (coin for inverse options).
            let index = self.market.index();
            let quote_usd = if meta.inverse { index } else { 1.0 };
            let fee = o.fee.fee_usd(
                Liquidity::Taker,
                Contract::Linear {
                    multiplier: meta.contract_size,
                },
                1.0,
                mid.max(0.0),
                quote_usd,
                index,
            ) / quote_usd;
            self.candidates.push(Candidate {
                id: meta.id,
                delta: c.delta * size,
                gamma: c.gamma * size,
                vega: c.vega * size,
                cost_buy: if ask > 0.0 && mid.is_finite() {
                    ask - mid + fee
                } else {
                    f64::INFINITY
                },
                cost_sell: if bid > 0.0 && mid.is_finite() {
                    mid - bid + fee
                } else {
                    f64::INFINITY
                },
                lot: 0.1,
                min_size: 0.1,
                max_size: o.max_contracts,
            });
            self.cand_bucket.push(meta.expiry);
        }
        let bucket_vega = o.bucket_vega;
        // Costed at the touch first; then each chosen leg is walked through its live book and,
        // where the book is thinner than the touch suggested, the solve runs again with the
        // walked cost per contract (or the size the book can fill) — at most twice more.
        let mut sol = None;
        for _ in 0..3 {
            sol = self.solve_options(p, &gb, &vb, bucket_vega);
            match sol {
                Some(s) if self.recost_on_depth(&s) => {
                    self.stats
                        .option_depth_resolves
                        .fetch_add(1, Ordering::Relaxed);
                }
                _ => break,
            }
        }
        let Some(sol) = sol else {
            return false;
        };
        let mut any = false;
        for l in &sol.legs[..sol.n] {
            let c = self.candidates[l.candidate];
            let r = self.market.row_of(c.id).unwrap_or(0);
            let (bid, ask) = self.market.quote(r);
            let intent = HedgeIntent {
                trace,
                id: 0,
                amount: l.qty.abs(),
                ref_price: if l.qty > 0.0 { ask } else { bid },
                coin_delta: l.qty * c.delta,
                instrument: c.id,
                side: if l.qty > 0.0 { Side::Buy } else { Side::Sell },
                venue: self.config.hedge_venue,
            };
            let exposure = p.delta_coin + self.in_flight_coin - self.config.policy.target;
            any |= self.emit(intent, exposure, now);
        }
        if any {
            self.stats.option_hedges.fetch_add(1, Ordering::Relaxed);
        }
        any
    }

    /// One gamma/vega solve over `self.candidates`: the per-bucket LP with `bucket_vega`, else
    /// the one-or-two-option search.
    fn solve_options(
        &mut self,
        p: &PortfolioGreeks,
        gb: &Band,
        vb: &Band,
        bucket_vega: Option<Band>,
    ) -> Option<construct::Solution> {
        let (gb, vb) = (*gb, *vb);
        match (bucket_vega, self.lp.as_deref_mut()) {
            (Some(band), Some(lp)) => {
                // Every bucket the liquid set can trade in (a bucket without a candidate cannot
                // be moved: it is reported, not solved for); out-of-band ones first, then by
                // |vega|, at most MAX_BUCKETS. A candidate whose bucket is left out cannot trade
                // (its bucket would have no band).
                self.bucket_bands.clear();
                for (e, b) in self.book.buckets().iter().enumerate() {
                    if self.cand_bucket.iter().any(|&x| x as usize == e) {
                        self.bucket_bands.push(BucketBand {
                            bucket: e as u16,
                            vega: b.coin.vega,
                            band,
                        });
                    }
                }
                self.bucket_bands.sort_unstable_by(|a, b| {
                    let out = |x: &BucketBand| !x.band.contains_value(x.vega);
                    out(b)
                        .cmp(&out(a))
                        .then(b.vega.abs().total_cmp(&a.vega.abs()))
                });
                self.bucket_bands.truncate(construct::MAX_BUCKETS);
                for (c, &e) in self.candidates.iter_mut().zip(&self.cand_bucket) {
                    if !self.bucket_bands.iter().any(|b| b.bucket == e) {
                        c.cost_buy = f64::INFINITY;
                        c.cost_sell = f64::INFINITY;
                    }
                }
                construct::solve_bands(
                    lp,
                    p.options_coin.gamma,
                    p.options_coin.vega,
                    &gb,
                    &vb,
                    &self.bucket_bands,
                    &self.candidates,
                    &self.cand_bucket,
                )
            }
            _ => construct::solve(
                p.options_coin.gamma,
                p.options_coin.vega,
                &gb,
                &vb,
                &self.candidates,
            ),
        }
    }

    /// Walks each leg of `sol` through its option's live book (when tracked and usable): a
    /// leg the touch under-costs gets the walked cost per contract (average fill against the
    /// mid, plus the fee), a leg larger than the visible side gets that side's size as its
    /// candidate's limit. True if a candidate changed (solve again).
    fn recost_on_depth(&mut self, sol: &construct::Solution) -> bool {
        use crate::policy::cost::walk_book;
        let mut changed = false;
        for l in &sol.legs[..sol.n] {
            let Some(c) = self.candidates.get(l.candidate).copied() else {
                continue;
            };
            let side = if l.qty > 0.0 { Side::Buy } else { Side::Sell };
            let Some((levels, _)) = self.market.depth_levels(c.id, side) else {
                continue;
            };
            let Some(r) = self.market.row_of(c.id) else {
                continue;
            };
            let (bid, ask) = self.market.quote(r);
            if !(bid > 0.0 && ask >= bid) {
                continue;
            }
            let mid = 0.5 * (bid + ask);
            let (touch, assumed) = match side {
                Side::Buy => (ask - mid, c.cost_buy),
                Side::Sell => (mid - bid, c.cost_sell),
            };
            let fee = assumed - touch;
            self.stats
                .option_legs_walked
                .fetch_add(1, Ordering::Relaxed);
            let qty = l.qty.abs();
            let walked = walk_book(
                side,
                Contract::Linear { multiplier: 1.0 },
                qty,
                levels,
                mid,
                1.0,
            );
            let cand = &mut self.candidates[l.candidate];
            match walked {
                Ok(w) => {
                    let per_contract = (w.avg_price - mid).abs() + fee;
                    if per_contract > assumed * (1.0 + 1e-9) + 1e-15 {
                        match side {
                            Side::Buy => cand.cost_buy = per_contract,
                            Side::Sell => cand.cost_sell = per_contract,
                        }
                        changed = true;
                    }
                }
                Err(crate::policy::cost::CostError::NotEnoughDepth { available, .. }) => {
                    let lot = cand.lot.max(f64::MIN_POSITIVE);
                    let fits = (available / lot + 1e-9).floor() * lot;
                    if fits < cand.min_size {
                        match side {
                            Side::Buy => cand.cost_buy = f64::INFINITY,
                            Side::Sell => cand.cost_sell = f64::INFINITY,
                        }
                    } else {
                        cand.max_size = cand.max_size.min(fits);
                    }
                    changed = true;
                }
                Err(_) => {}
            }
        }
        changed
    }

    /// The venue for a delta hedge of `order.coin_delta`: the main hedge instrument or an
    /// alternative, whichever usable one costs least all in per coin of delta it removes
    /// ([`policy::cost::all_in_cost`](crate::policy::cost::all_in_cost), each venue at the size
    /// it would actually trade after its lot rounding):
    /// 1. taker fee level by level, and slippage from walking the venue's live book for that
    ///    size when its depth is streamed and usable ([`MarketState::depth_levels`]); otherwise
    ///    the touch (the best bid or ask for the whole size: half the spread);
    /// 2. a latency charge, √(2/π)·σ·S·√(ack latency) per coin, with the venue's own
    ///    send → outcome latency measured on its fills (an EWMA; 0 until its first fill), σ
    ///    (`sigma`) the book's |Γ|-weighted volatility from the decision's aggregate
    ///    ([`PortfolioGreeks::gamma_weighted`]);
    /// 3. a venue whose visible book cannot fill the size is passed over; if none can, every
    ///    usable venue is costed at its touch (the hedge is not held back by a thin book, and
    ///    the risk limits cap its size).
    ///
    /// With no alternatives this is the main instrument, as decided. Returns the intent and its
    /// estimated cost.
    fn cheapest_venue(
        &mut self,
        order: crate::policy::HedgeOrder,
        sigma: f64,
        price: f64,
        trace: TickTrace,
        now: u64,
    ) -> Option<(HedgeIntent, CostBreakdown)> {
        use crate::policy::cost::{DEFAULT_LATENCY_FACTOR, VenueCost};
        let underlying = if crate::market::is_pos(self.market.index()) {
            self.market.index()
        } else {
            price
        };
        let venue_cost = |venue: Venue, inverse: bool, fee: f64, latency_ns: u64| VenueCost {
            venue,
            contract: if inverse {
                Contract::Inverse
            } else {
                Contract::Linear { multiplier: 1.0 }
            },
            fee: FeeRule::Notional {
                maker_bps: fee * 1e4,
                taker_bps: fee * 1e4,
            },
            latency_ns,
            latency_factor: DEFAULT_LATENCY_FACTOR,
            gas: None,
        };
        // The on-chain candidate (no book to walk: DEX fee + gas), the same in both passes.
        let chain = self.chain_candidate(order, trace, now, sigma);
        for depth in [true, false] {
            let mut best: Option<(f64, HedgeIntent, CostBreakdown, bool)> = None;
            let mut short = 0u64;
            let mut consider = |intent: HedgeIntent, c: Option<(CostBreakdown, bool)>| match c {
                Some((cost, walked)) => {
                    let per_coin = cost.total / intent.coin_delta.abs().max(f64::MIN_POSITIVE);
                    if best.is_none_or(|(b, ..)| per_coin < b) {
                        best = Some((per_coin, intent, cost, walked));
                    }
                }
                None => short += 1,
            };
            let main = self.config.hedge_instrument;
            if self.market.hedge_usable(main, now) {
                let v = venue_cost(
                    self.config.hedge_venue,
                    self.config.hedge.inverse,
                    self.config.kappa,
                    self.ack_ns[0],
                );
                let intent = HedgeIntent {
                    trace,
                    id: 0,
                    amount: order.amount,
                    ref_price: price,
                    coin_delta: order.coin_delta,
                    instrument: main,
                    side: order.side,
                    venue: self.config.hedge_venue,
                };
                consider(intent, self.cost_at(&v, &intent, underlying, sigma, depth));
            }
            for (k, a) in self.config.alt_hedges.iter().enumerate() {
                if !self.market.hedge_usable(a.instrument, now) {
                    continue;
                }
                let Some(q) = self.market.quote_of(a.instrument) else {
                    continue;
                };
                let ref_price = q.reference();
                let Some(o) = a
                    .spec
                    .order_for(order.coin_delta, ref_price)
                    .and_then(|o| a.on_ladder(o))
                else {
                    continue;
                };
                let v = venue_cost(a.venue, a.spec.inverse, a.fee, self.ack_ns[k + 1]);
                let intent = HedgeIntent {
                    trace,
                    id: 0,
                    amount: o.amount,
                    ref_price,
                    coin_delta: o.coin_delta,
                    instrument: a.instrument,
                    side: o.side,
                    venue: a.venue,
                };
                consider(intent, self.cost_at(&v, &intent, underlying, sigma, depth));
            }
            if let Some((cost, intent)) = chain {
                consider(intent, Some((cost, false)));
            }
            if let Some((_, intent, cost, walked)) = best {
                let s = &self.stats;
                if walked {
                    s.depth_costed.fetch_add(1, Ordering::Relaxed);
                } else {
                    s.touch_costed.fetch_add(1, Ordering::Relaxed);
                }
                s.depth_short.fetch_add(short, Ordering::Relaxed);
                if intent.instrument != main {
                    s.alt_venue_hedges.fetch_add(1, Ordering::Relaxed);
                }
                return Some((intent, cost));
            }
            self.stats.depth_short.fetch_add(short, Ordering::Relaxed);
        }
        None
    }

    /// The all-in cost of `intent` on `venue`, and whether it walked the live book: with
    /// `depth`, the book when usable (`None` if it cannot fill the size), else the touch.
    fn cost_at(
        &self,
        venue: &crate::policy::cost::VenueCost,
        intent: &HedgeIntent,
        underlying: f64,
        sigma: f64,
        depth: bool,
    ) -> Option<(CostBreakdown, bool)> {
        use crate::policy::cost::{CostError, CostQuery, Level, Liquidity, all_in_cost};
        let q = self.market.quote_of(intent.instrument)?;
        let mid = q.reference();
        let touch = match intent.side {
            Side::Buy => q.ask,
            Side::Sell => q.bid,
        };
        let touch = [Level {
            price: if crate::market::is_pos(touch) {
                touch
            } else {
                mid
            },
            size: intent.amount,
        }];
        let book = if depth {
            self.market.depth_levels(intent.instrument, intent.side)
        } else {
            None
        };
        let walked = book.is_some();
        // The walk's mid is the book's own (the quote stream may be a moment apart from it).
        let mid = match self
            .market
            .depth_book(intent.instrument)
            .and_then(|b| b.best())
        {
            Some((b, a)) if walked && b > 0.0 && a > b => 0.5 * (a + b),
            _ => mid,
        };
        let query = CostQuery {
            side: intent.side,
            qty: intent.amount,
            levels: book.map_or(&touch[..], |(l, _)| l),
            mid,
            quote_usd: 1.0,
            underlying_usd: underlying,
            sigma,
            coin_delta: intent.coin_delta,
            liquidity: Liquidity::Taker,
            chain: None,
            eth_usd: f64::NAN,
        };
        match all_in_cost(venue, &query) {
            Ok(c) => Some((c, walked)),
            Err(CostError::NotEnoughDepth { .. }) => None,
            // A level or number the cost model cannot use: cost it at the touch.
            Err(_) if walked => {
                let query = CostQuery {
                    levels: &touch[..],
                    ..query
                };
                all_in_cost(venue, &query).ok().map(|c| (c, false))
            }
            Err(_) => None,
        }
    }

    /// The on-chain candidate for a delta hedge of `order.coin_delta`, with its all-in cost in
    /// USD (DEX fee + gas at the predicted next base fee, see [`ChainHedge`], and the latency
    /// term for the wait until the next block at the book's vol `sigma`): the rung the exec
    /// side will pick, in coin (the intent's amount for this venue is coin). `None` when there
    /// is no on-chain venue, no fresh chain head, the venue backs off, or no rung fits.
    fn chain_candidate(
        &mut self,
        order: crate::policy::HedgeOrder,
        trace: TickTrace,
        now: u64,
        sigma: f64,
    ) -> Option<(CostBreakdown, HedgeIntent)> {
        let c = self.config.chain_hedge?;
        let head = self.market.chain_head(now, c.head_max_age_ns);
        let index = self.market.index();
        let (Some(head), true) = (head, now >= self.chain_backoff_until_ns) else {
            self.stats.chain_unusable.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let coin = c.rung_for(order.coin_delta.abs())?;
        let (fees_gas, gas) = c.cost_usd(coin, index, &head, index)?;
        // The hedge lands in the next block at the earliest: the latency term for that wait.
        let latency = crate::policy::cost::latency_cost_usd(
            crate::policy::cost::DEFAULT_LATENCY_FACTOR,
            sigma,
            index,
            self.market.next_block_wait_ns(now),
            coin,
        );
        let total = fees_gas + latency;
        self.stats.chain_cost_per_coin.set(total / coin);
        let cost = CostBreakdown {
            fees: fees_gas - gas,
            slippage: 0.0,
            gas,
            latency,
            total,
        };
        let coin_delta = if order.coin_delta > 0.0 { coin } else { -coin };
        Some((
            cost,
            HedgeIntent {
                trace,
                id: 0,
                amount: coin,
                ref_price: index,
                coin_delta,
                instrument: c.instrument,
                side: order.side,
                venue: c.venue,
            },
        ))
    }

    /// The delta hedge: the band, or the configured triggers on a context built from the book
    /// (τ and σ weighted by each held option's |Γ|).
    fn delta_order(
        &mut self,
        p: &PortfolioGreeks,
        price: f64,
        now: u64,
    ) -> Option<crate::policy::HedgeOrder> {
        let Some(trig) = &self.config.triggers else {
            return self.config.policy.decide(
                p.delta_coin,
                self.in_flight_coin,
                price,
                &self.config.hedge,
            );
        };
        let (sigma, tau) = p.gamma_weighted()?;
        const NS_PER_YEAR: f64 = 31_536_000_000_000_000.0;
        let hedge_now = p.hedge_delta + self.in_flight_coin;
        let ctx = HedgeContext {
            t: now as f64 / NS_PER_YEAR,
            spot: p.index,
            tau,
            rate: 0.0,
            yield_: 0.0,
            sigma,
            position_delta: p.options_coin.delta - self.config.policy.target,
            gamma: p.options_coin.gamma,
            vanna: 0.0,
            hedge: hedge_now,
            kappa: self.config.kappa,
            fixed_cost: 0.0,
            horizon: (now.saturating_sub(self.last_decision_ns) as f64 / NS_PER_YEAR).max(1e-9),
            legs: &[],
        };
        self.last_decision_ns = now;
        let h = triggers::decide(trig, &mut self.trigger_state, &ctx);
        let order = h.and_then(|h| self.config.hedge.order_for(h - hedge_now, price));
        if order.is_none() && self.trigger_state.every_fired() {
            // `every:N` (a bench setting) always trades: one lot toward h* when the hedge is
            // already within a lot of it (a buy when exactly on it).
            let spec = &self.config.hedge;
            let lot = spec.lot.max(spec.min_amount);
            let lot_coin = if spec.inverse { lot / price } else { lot };
            let dir = if ctx.target() >= hedge_now { 1.0 } else { -1.0 };
            return spec.order_for(dir * lot_coin, price);
        }
        order
    }

    /// The risk state now (published); entering HALTED asks the exec tile to cancel all.
    fn poll_risk(&mut self, now: u64) {
        let st = self.gate.poll(now);
        self.stats.risk_state.store(st as u64, Ordering::Relaxed);
        if self.gate.take_cancel_all() {
            self.config.cancel_all.store(true, Ordering::Release);
        }
    }

    /// Feeds the data guards from one applied event: index sources and vol marks.
    fn guard_event(&mut self, ev: &keel_feeds::event::MarketEvent, c: Change) {
        use keel_feeds::event::EventBody;
        let now = ev.recv_ts_ns;
        let hedge = self.market.hedge_instrument() == Some(ev.instrument);
        match ev.body {
            EventBody::Index { price }
                if c.contains(Change::SPOT) || self.market.index() == price =>
            {
                self.index_guard.update(0, price, now);
            }
            EventBody::Mark { index, .. } if hedge => {
                self.index_guard.update(1, index, now);
            }
            EventBody::Quote { bid, ask, .. } if hedge && bid > 0.0 && ask >= bid => {
                self.index_guard.update(2, 0.5 * (bid + ask), now);
            }
            _ => {}
        }
        if c.contains(Change::VOL)
            && let Some(r) = self.market.row_of(ev.instrument)
            && let Err(f) = self.iv_guard.check(r, self.market.vol(r))
        {
            self.iv_fault = Some(f);
        }
    }

    /// The data guard holding hedges now (published), if any.
    fn check_guards(&mut self, now: u64) -> Option<GuardFault> {
        let f = self
            .iv_fault
            .take()
            .or_else(|| self.index_guard.compute(now).err());
        let s = &self.stats;
        match f {
            None => s.guard.store(0, Ordering::Relaxed),
            Some(g) => {
                let i = Guard::ALL.iter().position(|x| *x == g.guard).unwrap_or(0);
                s.guard.store(i as u64 + 1, Ordering::Relaxed);
                s.guard_id.store(u64::from(g.detail.id), Ordering::Relaxed);
                s.guard_value.set(g.detail.value);
                s.guard_bound.set(g.detail.bound);
                s.guard_steps.fetch_add(1, Ordering::Relaxed);
            }
        }
        f
    }

    /// The data fault now (published), or `None` when data may drive a hedge.
    fn check_data(&mut self, now: u64) -> Option<DataFault> {
        let fault = self.market.fault(now).or(if self.book.unmarked_held() > 0 {
            Some(DataFault::Unmarked)
        } else if self.book.stale_held(&self.market) > 0 {
            Some(DataFault::StaleSubscription)
        } else {
            None
        });
        let code = fault.map_or(0, |f| {
            1 + FAULTS.iter().position(|x| *x == f).unwrap_or(0) as u64
        });
        self.stats.fault.store(code, Ordering::Relaxed);
        self.last_check_ns = now;
        fault
    }

    /// Risk and policy on the repriced book; true if a hedge was sent (its trace travels with
    /// the intent).
    fn decide(&mut self, p: &PortfolioGreeks, trace: TickTrace, now: u64) -> bool {
        self.poll_risk(now);
        if self.check_data(now).is_some() {
            self.stats.fault_steps.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if self.check_guards(now).is_some() {
            return false;
        }
        let off = (p.delta_coin - self.config.policy.target).abs();
        if off > self.stats.max_abs_excursion.get() {
            self.stats.max_abs_excursion.set(off);
        }
        if self.has_pending()
            || self.in_flight.iter().any(Option::is_some)
            || now.saturating_sub(self.last_hedge_ns) < self.config.min_hedge_interval_ns
        {
            return false;
        }
        // Gamma and vega first: the delta their options add is hedged in the same decision
        // (it is in flight already when the delta band looks).
        let mut sent = self.option_legs(p, trace, now);
        let price = self.market.hedge_quote().reference();
        // The book's gamma-weighted vol for the latency charge (0 without gamma).
        let sigma = p
            .gamma_weighted()
            .map(|(s, _)| s)
            .filter(|s| s.is_finite())
            .unwrap_or(0.0);
        if let Some(order) = self.delta_order(p, price, now)
            && let Some((intent, cost)) = self.cheapest_venue(order, sigma, price, trace, now)
        {
            let exposure = p.delta_coin + self.in_flight_coin - self.config.policy.target;
            if self.emit(intent, exposure, now) {
                sent = true;
                let s = &self.stats;
                s.est_fees_usd.add(cost.fees);
                s.est_slippage_usd.add(cost.slippage);
                s.est_latency_usd.add(cost.latency);
                if Some(intent.venue) == self.config.chain_hedge.map(|c| c.venue) {
                    s.chain_venue_hedges.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if !sent {
            return false;
        }
        self.last_hedge_ns = now;
        // Decided: the intents exist and passed the risk gate. Stamped here, after the policy
        // and the gate, so that the send stage is the intent ring, the encode and the write.
        let decided = clock::now_ns();
        for i in self.pending.iter_mut().flatten() {
            i.trace.decided_ns = decided;
        }
        if !self.send_pending() {
            self.stats.intent_ring_full.fetch_add(1, Ordering::Relaxed);
        }
        true
    }
}

impl Tile for PricerTile {
    fn name(&self) -> &'static str {
        "pricer"
    }

    fn teardown(&mut self) {
        // The report's figures: every Greek in f64, whatever `--reprice` the ticks used.
        let p = self.book.aggregate_f64(&self.market);
        self.publish(&p);
        if let Ok(mut b) = self.stats.buckets.lock() {
            b.clear();
            b.extend(
                self.book
                    .buckets()
                    .iter()
                    .filter(|x| x.usd.delta != 0.0 || x.usd.vega != 0.0),
            );
        }
    }

    fn step(&mut self) -> bool {
        let mut did = self.take_fills();
        did |= self.has_pending() && self.send_pending();
        let mut change = Change::NONE;
        let mut n = 0usize;
        let mut moves = 0u64;
        let mut trace = TickTrace::default();
        let mut dequeued = 0;
        let mut ring = 0;
        let mut idle_rings = 0;
        while n < MAX_BATCH && idle_rings < self.inputs.len() {
            ring = (ring + 1) % self.inputs.len();
            let Some(msg) = self.inputs[ring].pop() else {
                idle_rings += 1;
                continue;
            };
            idle_rings = 0;
            if n == 0 {
                dequeued = clock::now_ns();
            }
            n += 1;
            let c = self.market.apply(&msg.event);
            self.guard_event(&msg.event, c);
            if c.contains(Change::VENUE_GREEKS)
                && let Some(row) = self.market.row_of(msg.event.instrument)
            {
                self.book.cross_check_row(&self.market, row);
            }
            if (c.contains(Change::SPOT) || c.contains(Change::VOL)) && moves == 0 {
                // The trace follows the oldest price-moving tick of the batch: the one that
                // waited longest for this reprice (the worst case, not the best).
                trace.recv_ns = msg.event.recv_ts_ns;
                trace.venue_ns = msg.event.exchange_ts_ns;
                trace.parsed_ns = msg.parsed_ns;
                trace.dequeued_ns = if n == 1 { dequeued } else { clock::now_ns() };
            }
            if c.contains(Change::SPOT) || c.contains(Change::VOL) {
                moves += 1;
            }
            change |= c;
        }
        if n == 0 {
            // Quiet feed: keep the published data fault current (staleness needs no event).
            let now = clock::now_ns();
            if now.saturating_sub(self.last_check_ns) > 1_000_000 {
                self.check_data(now);
                self.poll_risk(now);
            }
            return did;
        }
        self.stats.ticks.fetch_add(n as u64, Ordering::Relaxed);
        if moves > 1 {
            self.stats
                .skipped_ticks
                .fetch_add(moves - 1, Ordering::Relaxed);
        }
        let kind = self.book.reprice(&mut self.market, change);
        // Nothing moved a Greek, the hedge's price or a position: no aggregate, no decision.
        if kind == RepriceKind::None && !change.contains(Change::HEDGE_QUOTE) && !did {
            return true;
        }
        let now = clock::now_ns();
        let p = self.book.aggregate(&self.market);
        if kind != RepriceKind::None {
            trace.priced_ns = now;
            // Taylor carry check: Δ + Γ·dS + ½·speed·dS² from the last reprice against this
            // one, when only the underlying moved in between (a spot-path reprice). Speed is
            // dΓ/dS by finite difference over the previous spot move.
            let delta = p.options_usd.delta;
            let gamma = p.options_usd.gamma;
            if kind == RepriceKind::Spot
                && let Some((d0, g0, s0)) = self.taylor
                && p.index > 0.0
                && s0 > 0.0
            {
                let ds = p.index - s0;
                let predicted = d0 + g0 * ds + 0.5 * self.speed * ds * ds;
                let err = (predicted - delta).abs();
                if err > self.stats.taylor_max_error.get() {
                    self.stats.taylor_max_error.set(err);
                }
                if ds != 0.0 {
                    self.speed = (gamma - g0) / ds;
                }
            } else {
                self.speed = 0.0;
            }
            self.taylor = Some((delta, gamma, p.index));
            if !self.have_before
                && self.market.fault(now).is_none()
                && self.book.unmarked_held() == 0
            {
                self.have_before = true;
                self.stats.delta_before.set(p.delta_coin);
            }
        }
        self.publish(&p);
        if kind != RepriceKind::None && self.have_before {
            let value: f64 = self.book.buckets().iter().map(|b| b.value_usd).sum();
            let start_amount = if self.pnl.hedge_started {
                0.0
            } else {
                self.book
                    .hedges()
                    .iter()
                    .filter(|h| h.inverse)
                    .map(|h| h.amount)
                    .sum()
            };
            if let Some(pnl) =
                self.pnl
                    .value(value, start_amount, self.market.hedge_quote().reference())
            {
                self.stats.pnl_usd.set(pnl);
                self.gate.record_pnl(pnl, now);
            }
        }
        let hedged = (kind != RepriceKind::None || change.contains(Change::HEDGE_QUOTE))
            && self.decide(&p, trace, now);
        if !hedged && trace.priced_ns != 0 && trace.recv_ns != 0 {
            trace.decided_ns = clock::now_ns();
            self.trace(trace);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_laddered_alternative_is_sized_to_the_largest_rung_not_above_the_order() {
        let a = AltHedge {
            instrument: InstrumentId(1),
            venue: Venue::Hyperliquid,
            spec: HedgeSpec {
                inverse: false,
                lot: 0.01,
                min_amount: 0.01,
                max_order_coin: 0.08,
            },
            fee: 0.0,
            rungs: 4,
        };
        let sized = |want: f64| {
            a.spec
                .order_for(want, 100_000.0)
                .and_then(|o| a.on_ladder(o))
                .map(|o| (o.side, o.amount, o.coin_delta))
        };
        // 0.07 → 0.04 (0.01, 0.02, 0.04, 0.08 are the rungs); the delta is the rung's.
        assert_eq!(sized(0.07), Some((Side::Buy, 0.04, 0.04)));
        assert_eq!(sized(-0.02), Some((Side::Sell, 0.02, -0.02)));
        assert_eq!(sized(-0.5), Some((Side::Sell, 0.08, -0.08)));
        assert_eq!(sized(0.004), None);
        let any = AltHedge { rungs: 0, ..a };
        assert_eq!(
            any.spec
                .order_for(0.07, 1.0)
                .and_then(|o| any.on_ladder(o))
                .map(|o| o.amount),
            Some(0.07)
        );
    }
    use crate::market::ChainHeadState;
    use crate::policy::cost::GasSpec;

    fn chain() -> ChainHedge {
        ChainHedge {
            instrument: InstrumentId(9),
            venue: Venue::Ethereum,
            lot_coin: 0.01,
            rungs: 6,
            max_order_coin: 0.2,
            fee: 0.0005,
            gas: GasSpec {
                gas_units: 200_000,
                priority_fee_wei: 1_000_000_000,
            },
            eth_usd: Some(3_000.0),
            head_max_age_ns: 1,
            backoff_ns: 1,
        }
    }

    #[test]
    fn the_on_chain_rung_is_the_one_the_ladder_picks() {
        let c = chain();
        // Rungs 0.01, 0.02, 0.04, 0.08, 0.16 (0.32 is above the limit); ties to the smaller.
        for (want, rung) in [
            (0.001, Some(0.01)),
            (0.015, Some(0.01)),
            (0.016, Some(0.02)),
            (0.07, Some(0.08)),
            (5.0, Some(0.16)),
            (0.0, None),
            (f64::NAN, None),
        ] {
            assert_eq!(c.rung_for(want), rung, "{want}");
        }
        let mut tight = c;
        tight.max_order_coin = 0.005;
        assert_eq!(tight.rung_for(0.01), None, "no rung within the limit");
    }

    #[test]
    fn the_on_chain_cost_is_dex_fee_plus_gas_at_the_predicted_base_fee() {
        let c = chain();
        // A full block: the next base fee is 10 gwei × 1.125.
        let head = ChainHeadState {
            number: 1,
            base_fee_wei: 10_000_000_000,
            gas_used: 30_000_000,
            gas_limit: 30_000_000,
        };
        let (cost, gas) = c.cost_usd(0.16, 60_000.0, &head, 60_000.0).unwrap();
        // (11.25 + 1) gwei × 200,000 = 0.00245 ETH × 3000 = 7.35 USD.
        assert!((gas - 7.35).abs() < 1e-9, "{gas}");
        // 5 bp of 0.16 × 60,000 = 4.8 USD.
        assert!((cost - (4.8 + 7.35)).abs() < 1e-9, "{cost}");
        // The ETH price from the index when none is configured (the underlying is ETH).
        let mut eth = c;
        eth.eth_usd = None;
        let (_, gas) = eth.cost_usd(1.0, 3_000.0, &head, 3_000.0).unwrap();
        assert!((gas - 7.35).abs() < 1e-9);
        // A head the EIP-1559 rule cannot use, or no price: no candidate.
        let bad = ChainHeadState {
            gas_used: 31_000_000,
            ..head
        };
        assert!(c.cost_usd(0.16, 60_000.0, &bad, 60_000.0).is_none());
        assert!(c.cost_usd(0.16, f64::NAN, &head, 60_000.0).is_none());
    }
}
