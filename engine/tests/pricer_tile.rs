//! The pricer tile driven by hand through its rings: events in, one reprice, a hedge intent
//! out when the delta leaves its band, none while one is in flight or while the data is bad,
//! and the fill back into the book.

use keel_engine::book::Book;
use keel_engine::exec::{Fill, FillStatus, HedgeIntent};
use keel_engine::market::{MarketConfig, MarketState};
use keel_engine::pipeline::feed_tile::TickMsg;
use keel_engine::pipeline::pricer::{PricerConfig, PricerRings, PricerTile};
use keel_engine::pipeline::{Consumer, Producer, TickTrace, Tile, ring};
use keel_engine::policy::{DeltaBand, HedgeSpec};
use keel_feeds::clock::now_ns;
use keel_feeds::event::{DisconnectReason, EventBody, MarketEvent, OptionTicker, Side, Venue};
use keel_feeds::instrument::{Instrument, InstrumentId, InstrumentKind, Instruments, OptionRight};

const DAY_MS: u64 = 86_400_000;

fn inst(
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
        contract_size: if kind == InstrumentKind::Perpetual {
            10.0
        } else {
            1.0
        },
        inverse: true,
        tick_size: 0.5,
        min_size: if kind == InstrumentKind::Perpetual {
            10.0
        } else {
            0.1
        },
    }
}

/// The venue's refusal of intent `i` (nothing filled).
fn rejected(i: &HedgeIntent, code: i32) -> Fill {
    Fill {
        trace: i.trace,
        intent_id: i.id,
        filled: 0.0,
        price: f64::NAN,
        intent_coin_delta: i.coin_delta,
        done_ns: now_ns(),
        instrument: i.instrument,
        error_code: code,
        status: FillStatus::Rejected,
    }
}

struct Rig {
    tile: PricerTile,
    stats: std::sync::Arc<keel_engine::pipeline::pricer::PricerStats>,
    feed: Producer<TickMsg>,
    intents: Consumer<HedgeIntent>,
    fills: Producer<Fill>,
    _traces: Consumer<TickTrace>,
    now_ms: u64,
    kill: keel_engine::risk::KillFlags,
    cancel_all: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Rig {
    fn new() -> Self {
        Self::with_limits(keel_engine::risk::RiskLimits::default())
    }

    fn with_limits(limits: keel_engine::risk::RiskLimits) -> Self {
        Self::with(limits, false)
    }

    /// With `chain`, an on-chain venue (instrument 3) beside the perpetual: 1 gwei gas, no DEX
    /// fee, so it is the cheaper venue once a chain head arrives.
    fn with(limits: keel_engine::risk::RiskLimits, chain: bool) -> Self {
        let now_ms = now_ns() / 1_000_000;
        let exp = now_ms + 30 * DAY_MS;
        let mut v = Instruments::new();
        v.insert(inst(
            "BTC-PERPETUAL",
            InstrumentKind::Perpetual,
            f64::NAN,
            0,
            None,
        )); // 0
        v.insert(inst("btc_usd", InstrumentKind::Index, f64::NAN, 0, None)); // 1
        v.insert(inst(
            "C",
            InstrumentKind::Option,
            100_000.0,
            exp,
            Some(OptionRight::Call),
        )); // 2
        if chain {
            let mut c = inst("BTC-ONCHAIN", InstrumentKind::Spot, f64::NAN, 0, None);
            c.venue = Venue::Ethereum;
            c.inverse = false;
            v.insert(c); // 3
        }
        let market =
            MarketState::new(&v, "BTC", Some(InstrumentId(0)), MarketConfig::default()).unwrap();
        // Short 10 at-the-money calls: about −5 BTC of delta.
        let book = Book::new(
            &market,
            &[(InstrumentId(2), "C".into(), -10.0)],
            &if chain {
                vec![(InstrumentId(0), true), (InstrumentId(3), false)]
            } else {
                vec![(InstrumentId(0), true)]
            },
            1_000,
        )
        .unwrap();
        let (feed, feed_rx) = ring(1024).unwrap();
        let (intent_tx, intents) = ring(16).unwrap();
        let (fills, fill_rx) = ring(16).unwrap();
        let (trace_tx, traces) = ring(1024).unwrap();
        let kill = keel_engine::risk::KillFlags::new();
        let cancel_all = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cfg = PricerConfig {
            risk: limits,
            kill: kill.clone(),
            cancel_all: cancel_all.clone(),
            index_guard: keel_engine::risk::IndexConfig::default(),
            index_stale_ns: 2_000_000_000,
            iv_guard: keel_engine::risk::IvLimits::default(),
            options: None,
            triggers: None,
            kappa: 0.0005,
            policy: DeltaBand {
                target: 0.0,
                band: 0.5,
            },
            hedge: HedgeSpec {
                inverse: true,
                lot: 10.0,
                min_amount: 10.0,
                max_order_coin: f64::INFINITY,
            },
            hedge_instrument: InstrumentId(0),
            hedge_venue: Venue::Deribit,
            min_hedge_interval_ns: 0,
            alt_hedges: Vec::new(),
            chain_hedge: chain.then_some(keel_engine::pipeline::pricer::ChainHedge {
                instrument: InstrumentId(3),
                venue: Venue::Ethereum,
                lot_coin: 0.5,
                rungs: 6,
                max_order_coin: f64::INFINITY,
                fee: 0.0,
                gas: keel_engine::policy::cost::GasSpec {
                    gas_units: 200_000,
                    priority_fee_wei: 0,
                },
                eth_usd: Some(3_000.0),
                head_max_age_ns: 60_000_000_000,
                backoff_ns: 60_000_000_000,
            }),
        };
        let rings = PricerRings {
            inputs: vec![feed_rx],
            intents: intent_tx,
            fills: fill_rx,
            traces: trace_tx,
        };
        let (tile, stats) = PricerTile::new(market, book, cfg, rings).unwrap();
        Self {
            tile,
            stats,
            feed,
            intents,
            fills,
            _traces: traces,
            now_ms,
            kill,
            cancel_all,
        }
    }

    fn send(&mut self, id: u32, body: EventBody) {
        let ev = MarketEvent {
            exchange_ts_ns: self.now_ms * 1_000_000,
            recv_ts_ns: now_ns(),
            instrument: InstrumentId(id),
            venue: Venue::Deribit,
            conn: 0,
            body,
        };
        self.feed
            .push(TickMsg {
                event: ev,
                parsed_ns: now_ns(),
            })
            .unwrap();
    }

    fn market(&mut self, spot: f64) {
        self.send(1, EventBody::Index { price: spot });
        self.send(
            0,
            EventBody::Quote {
                bid: spot - 0.5,
                bid_size: 1e6,
                ask: spot + 0.5,
                ask_size: 1e6,
            },
        );
        self.send(
            2,
            EventBody::OptionTicker(OptionTicker {
                bid: f64::NAN,
                bid_size: f64::NAN,
                ask: f64::NAN,
                ask_size: f64::NAN,
                mark: 0.05,
                mark_iv: 0.5,
                bid_iv: f64::NAN,
                ask_iv: f64::NAN,
                underlying: spot,
                index: spot,
            }),
        );
    }
}

#[test]
fn hedges_once_per_exposure_and_books_the_fill() {
    let mut r = Rig::new();
    r.market(100_000.0);
    assert!(r.tile.step());
    let i = r.intents.pop().expect("a hedge: −5 BTC is outside ±0.5");
    assert_eq!(i.side, Side::Buy);
    assert_eq!(i.amount % 10.0, 0.0);
    assert!(i.coin_delta > 4.0 && i.coin_delta < 6.0, "{i:?}");
    assert!(
        i.trace.recv_ns > 0
            && i.trace.priced_ns >= i.trace.dequeued_ns
            && i.trace.decided_ns >= i.trace.priced_ns
    );
    // More ticks while it is in flight: no second order for the same exposure.
    r.market(100_010.0);
    r.tile.step();
    assert!(r.intents.pop().is_none());
    // The fill comes back: the book holds the perpetual, the delta is back in band.
    let mut trace = i.trace;
    trace.sent_ns = now_ns();
    r.fills
        .push(Fill {
            trace,
            intent_id: i.id,
            filled: i.amount,
            price: 100_000.0,
            intent_coin_delta: i.coin_delta,
            done_ns: now_ns(),
            instrument: i.instrument,
            error_code: 0,
            status: FillStatus::Filled,
        })
        .unwrap();
    r.market(100_020.0);
    r.tile.step();
    assert!(r.intents.pop().is_none(), "in band after the fill");
    assert!(
        r.stats.delta_coin.get().abs() < 0.5,
        "{}",
        r.stats.delta_coin.get()
    );
    assert_eq!(r.stats.fills.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn a_rejected_hedge_releases_the_exposure_and_bad_data_holds_hedges() {
    let mut r = Rig::new();
    r.market(100_000.0);
    r.tile.step();
    let i = r.intents.pop().unwrap();
    r.fills.push(rejected(&i, 10009)).unwrap();
    // The feed drops: no hedge even though the delta is still out of band.
    r.send(
        u32::MAX,
        EventBody::Disconnected {
            reason: DisconnectReason::PeerClosed,
        },
    );
    r.market(100_000.0);
    r.tile.step();
    assert!(r.intents.pop().is_none(), "no hedge while a feed is down");
    assert!(r.stats.fault().is_some());
    // Back up with fresh data: the same exposure is hedged again (the first was rejected).
    r.send(u32::MAX, EventBody::Reconnected { attempts: 1 });
    r.market(100_000.0);
    r.tile.step();
    let again = r.intents.pop().expect("hedged after reconnecting");
    assert_eq!(again.side, Side::Buy);
    assert_ne!(again.id, i.id);
}

#[test]
fn a_halt_stops_hedging_and_cancels_all_once() {
    let mut r = Rig::new();
    r.kill.raise_signal();
    r.market(100_000.0);
    r.tile.step();
    assert!(
        r.intents.pop().is_none(),
        "halted: no hedge though −5 BTC is out of band"
    );
    assert_eq!(
        r.stats
            .risk_state
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert!(
        r.cancel_all
            .swap(false, std::sync::atomic::Ordering::AcqRel),
        "cancel-all requested"
    );
    r.market(100_010.0);
    r.tile.step();
    assert!(
        !r.cancel_all.load(std::sync::atomic::Ordering::Relaxed),
        "only once"
    );
}

#[test]
fn a_loss_past_the_daily_stop_allows_only_reducing_orders() {
    let mut r = Rig::with_limits(keel_engine::risk::RiskLimits {
        daily_loss_stop_usd: 1_000.0,
        ..keel_engine::risk::RiskLimits::default()
    });
    r.market(100_000.0);
    r.tile.step();
    assert_eq!(
        r.stats.pnl_usd.get(),
        0.0,
        "the first complete reprice is the baseline"
    );
    let i = r.intents.pop().expect("the opening hedge");
    r.fills.push(rejected(&i, 10009)).unwrap();
    // Short ten calls, unhedged, and the underlying rallies 10 %: a loss of tens of thousands.
    r.market(110_000.0);
    r.tile.step();
    assert!(
        r.stats.pnl_usd.get() < -1_000.0,
        "{}",
        r.stats.pnl_usd.get()
    );
    assert_eq!(
        r.stats
            .risk_state
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "REDUCING"
    );
    // A hedge that reduces the exposure (buying back delta) still passes.
    let again = r.intents.pop().expect("a reducing hedge");
    assert_eq!(again.side, Side::Buy);
}

#[test]
fn an_index_off_its_other_sources_or_a_vol_jump_holds_hedges() {
    let mut r = Rig::new();
    // The index says 100k, the perpetual trades at 120k: the sources disagree.
    r.send(1, EventBody::Index { price: 100_000.0 });
    r.send(
        0,
        EventBody::Quote {
            bid: 119_999.5,
            bid_size: 1e6,
            ask: 120_000.5,
            ask_size: 1e6,
        },
    );
    r.send(
        2,
        EventBody::OptionTicker(OptionTicker {
            bid: f64::NAN,
            bid_size: f64::NAN,
            ask: f64::NAN,
            ask_size: f64::NAN,
            mark: 0.05,
            mark_iv: 0.5,
            bid_iv: f64::NAN,
            ask_iv: f64::NAN,
            underlying: 100_000.0,
            index: 100_000.0,
        }),
    );
    r.tile.step();
    assert!(r.intents.pop().is_none(), "held by the index guard");
    let (name, ..) = r.stats.guard().expect("a guard holds");
    assert_eq!(name, "index_deviation");
    // Sources agree again: the hedge goes.
    r.market(100_000.0);
    r.tile.step();
    assert!(r.stats.guard().is_none());
    let i = r.intents.pop().expect("hedged once the index is sane");
    r.fills.push(rejected(&i, 1)).unwrap();
    // A mark vol jumping from 50 % to 95 % in one print: held for that decision.
    r.send(1, EventBody::Index { price: 100_000.0 });
    r.send(
        2,
        EventBody::OptionTicker(OptionTicker {
            bid: f64::NAN,
            bid_size: f64::NAN,
            ask: f64::NAN,
            ask_size: f64::NAN,
            mark: 0.05,
            mark_iv: 0.95,
            bid_iv: f64::NAN,
            ask_iv: f64::NAN,
            underlying: 100_000.0,
            index: 100_000.0,
        }),
    );
    r.tile.step();
    assert!(r.intents.pop().is_none(), "held by the vol guard");
    assert_eq!(r.stats.guard().unwrap().0, "iv_jump");
}

#[test]
fn an_on_chain_refusal_releases_the_exposure_without_counting_as_a_venue_reject() {
    let mut r = Rig::with(
        keel_engine::risk::RiskLimits {
            max_consecutive_rejects: 1,
            ..keel_engine::risk::RiskLimits::default()
        },
        true,
    );
    // No chain head yet: the perpetual is the only usable venue.
    r.market(100_000.0);
    r.tile.step();
    let first = r.intents.pop().expect("a hedge on Deribit");
    assert_eq!(first.venue, Venue::Deribit);
    let mut filled = rejected(&first, 0);
    filled.status = FillStatus::Filled;
    filled.filled = 10.0;
    filled.price = 100_000.0;
    r.fills.push(filled).unwrap();
    r.tile.step();
    // A chain head: 1 gwei, gas 0.6 USD a transaction, the cheaper venue by far.
    let mut head = MarketEvent {
        exchange_ts_ns: 0,
        recv_ts_ns: now_ns(),
        instrument: InstrumentId::NONE,
        venue: Venue::Ethereum,
        conn: 1,
        body: EventBody::ChainHead {
            number: 7,
            base_fee_wei: 1_000_000_000,
            gas_used: 15_000_000,
            gas_limit: 30_000_000,
            timestamp_s: 1,
        },
    };
    r.feed
        .push(TickMsg {
            event: head,
            parsed_ns: now_ns(),
        })
        .unwrap();
    r.market(100_000.0);
    r.tile.step();
    let i = r.intents.pop().expect("a hedge on chain");
    assert_eq!(i.venue, Venue::Ethereum);
    assert_eq!(i.instrument, InstrumentId(3));
    assert_eq!(i.side, Side::Buy);
    // Coin, a rung of the ladder (0.5 · 2^k).
    assert!([2.0, 4.0, 8.0].contains(&i.amount), "{i:?}");
    assert_eq!(i.coin_delta, i.amount);
    // The exec side refuses it before sending (nonce busy): released, not a venue reject —
    // with one reject allowed in a row, a venue reject would halt.
    r.fills.push(rejected(&i, -1001)).unwrap();
    head.recv_ts_ns = now_ns();
    r.feed
        .push(TickMsg {
            event: head,
            parsed_ns: now_ns(),
        })
        .unwrap();
    r.market(100_000.0);
    r.tile.step();
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(r.stats.risk_state.load(Relaxed), 0, "still ACTIVE");
    assert_eq!(r.stats.chain_refusals.load(Relaxed), 1);
    // The exposure was released and hedged again at once, on Deribit: the chain backs off.
    let again = r.intents.pop().expect("hedged again");
    assert_eq!(again.venue, Venue::Deribit);
    assert!(r.stats.chain_unusable.load(Relaxed) >= 1);
    // A venue's own rejection still counts: one in a row halts.
    r.fills.push(rejected(&again, 10009)).unwrap();
    r.market(100_000.0);
    r.tile.step();
    assert_eq!(r.stats.risk_state.load(Relaxed), 2, "HALTED");
}
