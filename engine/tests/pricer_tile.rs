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
        Self::build(limits, None, None, false)
    }

    /// With `chain`, an on-chain venue (instrument 3) beside the perpetual: 1 gwei gas, no DEX
    /// fee, so it is the cheaper venue once a chain head arrives.
    fn with(limits: keel_engine::risk::RiskLimits, chain: bool) -> Self {
        Self::build(limits, None, None, chain)
    }

    /// With Binance's linear perpetual (instrument 3) as an alternative delta hedge at
    /// `alt_fee` (fraction of notional; Deribit's is 5 bp), both books' depth tracked.
    fn with_alt(alt_fee: f64) -> Self {
        Self::build(
            keel_engine::risk::RiskLimits::default(),
            Some(alt_fee),
            None,
            false,
        )
    }

    /// With gamma hedging (`options`, its liquid rows 0 = "C" and 1 = "D", a 104,000 call of
    /// the same expiry, instrument 3), the perpetual's and both options' books tracked.
    fn with_options(options: keel_engine::pipeline::pricer::OptionHedging) -> Self {
        Self::build(
            keel_engine::risk::RiskLimits::default(),
            None,
            Some(options),
            false,
        )
    }

    fn build(
        limits: keel_engine::risk::RiskLimits,
        alt_fee: Option<f64>,
        options: Option<keel_engine::pipeline::pricer::OptionHedging>,
        chain: bool,
    ) -> Self {
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
        if options.is_some() {
            v.insert(inst(
                "D",
                InstrumentKind::Option,
                104_000.0,
                exp,
                Some(OptionRight::Call),
            )); // 3
        }
        if alt_fee.is_some() {
            let mut b = inst("BTCUSDT", InstrumentKind::Perpetual, f64::NAN, 0, None);
            b.venue = Venue::Binance;
            b.inverse = false;
            b.contract_size = 1.0;
            b.quote_currency = "USDT".into();
            v.insert(b); // 3
        }
        let mut market =
            MarketState::new(&v, "BTC", Some(InstrumentId(0)), MarketConfig::default()).unwrap();
        if alt_fee.is_some() {
            market.set_alt_hedges(&[InstrumentId(3)]);
            market.track_depth(&[InstrumentId(0), InstrumentId(3)], 64);
        }
        if options.is_some() {
            market.track_depth(&[InstrumentId(0), InstrumentId(2), InstrumentId(3)], 64);
        }
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
            options,
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
            alt_hedges: alt_fee
                .map(|fee| keel_engine::pipeline::pricer::AltHedge {
                    instrument: InstrumentId(3),
                    venue: Venue::Binance,
                    spec: HedgeSpec {
                        inverse: false,
                        lot: 0.001,
                        min_amount: 0.001,
                        max_order_coin: f64::INFINITY,
                    },
                    fee,
                    rungs: 0,
                })
                .into_iter()
                .collect(),
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
        self.send_from(Venue::Deribit, 0, id, body);
    }

    fn send_from(&mut self, venue: Venue, conn: u8, id: u32, body: EventBody) {
        let ev = MarketEvent {
            exchange_ts_ns: self.now_ms * 1_000_000,
            recv_ts_ns: now_ns(),
            instrument: InstrumentId(id),
            venue,
            conn,
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

impl Rig {
    /// One book message: `levels` (price, size, side) replacing the book when `snapshot`.
    fn book(
        &mut self,
        venue: Venue,
        conn: u8,
        id: u32,
        snapshot: bool,
        levels: &[(f64, f64, Side)],
    ) {
        let n = levels.len();
        for (k, &(price, size, side)) in levels.iter().enumerate() {
            self.send_from(
                venue,
                conn,
                id,
                EventBody::BookLevel {
                    price,
                    size,
                    side,
                    snapshot,
                    first: k == 0,
                    last: k + 1 == n,
                    seq: 1,
                },
            );
        }
    }

    /// The market at 100,000 with both venues quoting 100,000 ± 0.5; Deribit's book deep
    /// (10 M USD a side), Binance's book `binance_asks` over a deep bid.
    fn two_venues(&mut self, binance_asks: &[(f64, f64, Side)]) {
        self.market(100_000.0);
        self.send_from(
            Venue::Binance,
            1,
            3,
            EventBody::Quote {
                bid: 99_999.5,
                bid_size: 100.0,
                ask: 100_000.5,
                ask_size: binance_asks.first().map_or(0.0, |l| l.1),
            },
        );
        self.book(
            Venue::Deribit,
            0,
            0,
            true,
            &[(99_999.5, 1e7, Side::Buy), (100_000.5, 1e7, Side::Sell)],
        );
        let mut levels = vec![(99_999.5, 100.0, Side::Buy)];
        levels.extend_from_slice(binance_asks);
        self.book(Venue::Binance, 1, 3, true, &levels);
    }

    fn count(&self, c: &std::sync::atomic::AtomicU64) -> u64 {
        c.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[test]
fn the_delta_venue_is_chosen_by_walking_each_live_book_for_the_size() {
    // Binance is cheaper at the touch (1 bp against 5 bp), but only 0.5 BTC rests there and
    // the next ask is $1,000 higher: walking ~5 BTC costs ~$900 a coin, Deribit ~$50.
    let mut r = Rig::with_alt(0.0001);
    r.two_venues(&[(100_000.5, 0.5, Side::Sell), (101_000.0, 50.0, Side::Sell)]);
    r.tile.step();
    let i = r.intents.pop().expect("a hedge");
    assert_eq!((i.venue, i.side), (Venue::Deribit, Side::Buy), "{i:?}");
    assert_eq!(r.count(&r.stats.depth_costed), 1);
    let slip = r.stats.est_slippage_usd.get();
    let coin = i.coin_delta;
    assert!(
        slip > 0.0 && slip / coin < 1.0,
        "Deribit's deep book: {slip} for {coin}"
    );
    assert!((r.stats.est_fees_usd.get() - i.amount * 5e-4).abs() < 1e-6);

    // The same fees with a deep Binance book: Binance wins, its walk costed.
    let mut r = Rig::with_alt(0.0001);
    r.two_venues(&[(100_000.5, 50.0, Side::Sell)]);
    r.tile.step();
    let i = r.intents.pop().expect("a hedge");
    assert_eq!(i.venue, Venue::Binance, "{i:?}");
    assert!((i.amount - i.coin_delta).abs() < 1e-9 && i.amount > 4.0);
    assert_eq!(r.count(&r.stats.alt_venue_hedges), 1);
    assert_eq!(r.count(&r.stats.depth_costed), 1);

    // Binance's whole visible book is 1 BTC: passed over, counted.
    let mut r = Rig::with_alt(0.0001);
    r.two_venues(&[(100_000.5, 1.0, Side::Sell)]);
    r.tile.step();
    let i = r.intents.pop().expect("a hedge");
    assert_eq!(i.venue, Venue::Deribit);
    assert_eq!(r.count(&r.stats.depth_short), 1);

    // A gap breaks Binance's book: it is costed at its touch again (cheaper fee → Binance),
    // never on the broken levels.
    let mut r = Rig::with_alt(0.0001);
    r.two_venues(&[(100_000.5, 0.5, Side::Sell), (101_000.0, 50.0, Side::Sell)]);
    r.send_from(
        Venue::Binance,
        1,
        3,
        EventBody::SequenceGap {
            expected: 1,
            got: 5,
        },
    );
    r.tile.step();
    let i = r.intents.pop().expect("a hedge");
    assert_eq!(i.venue, Venue::Binance, "{i:?}");
    assert_eq!(r.count(&r.stats.touch_costed), 1);

    // A Binance disconnection breaks its book too (and makes the venue unusable anyway).
    let mut r = Rig::with_alt(0.0001);
    r.two_venues(&[(100_000.5, 50.0, Side::Sell)]);
    r.send_from(
        Venue::Binance,
        1,
        3,
        EventBody::Disconnected {
            reason: DisconnectReason::PeerClosed,
        },
    );
    r.tile.step();
    let i = r.intents.pop();
    assert!(i.is_none_or(|i| i.venue == Venue::Deribit), "{i:?}");
}

#[test]
fn a_venue_slow_to_answer_pays_a_latency_charge_learnt_from_its_fills() {
    // Binance 0.5 bp dearer ($5 a coin at 100,000): Deribit wins while its latency is unknown.
    let mut r = Rig::with_alt(0.00055);
    r.two_venues(&[(100_000.5, 50.0, Side::Sell)]);
    r.tile.step();
    let i = r.intents.pop().expect("a hedge");
    assert_eq!(i.venue, Venue::Deribit);
    assert_eq!(r.stats.est_latency_usd.get(), 0.0);
    // Deribit answers 2 s after the send, filling one lot: the exposure stays.
    let mut trace = i.trace;
    let now = now_ns();
    trace.sent_ns = now - 2_000_000_000;
    r.fills
        .push(Fill {
            trace,
            intent_id: i.id,
            filled: 10.0,
            price: 100_000.5,
            intent_coin_delta: i.coin_delta,
            done_ns: now,
            instrument: i.instrument,
            error_code: 0,
            status: FillStatus::Partial,
        })
        .unwrap();
    // √(2/π)·σ·S·√(2 s) ≈ 0.80 × 0.5 × 100,000 × 2.5e-4 ≈ $10 a coin on Deribit now.
    r.two_venues(&[(100_000.5, 50.0, Side::Sell)]);
    r.tile.step();
    let i = r.intents.pop().expect("the rest of the exposure");
    assert_eq!(i.venue, Venue::Binance, "{i:?}");
}

fn gamma_hedging(half_width: f64) -> keel_engine::pipeline::pricer::OptionHedging {
    keel_engine::pipeline::pricer::OptionHedging {
        gamma: Some(keel_engine::policy::construct::Band {
            target: 0.0,
            half_width,
        }),
        vega: None,
        bucket_vega: None,
        liquid: vec![0, 1],
        max_contracts: 20.0,
        fee: keel_engine::policy::cost::FeeRule::DERIBIT_OPTION,
    }
}

impl Rig {
    /// The market with "C" quoted 0.001 coin wide and "D" 0.003, and their books: "C" deep or
    /// thin (0.5 contracts at its ask, then 0.06), "D" deep.
    fn options_market(&mut self, c_thin: bool) {
        self.market(100_000.0);
        let ticker = |mark: f64, half: f64| {
            EventBody::OptionTicker(OptionTicker {
                bid: mark - half,
                bid_size: 100.0,
                ask: mark + half,
                ask_size: 100.0,
                mark,
                mark_iv: 0.5,
                bid_iv: f64::NAN,
                ask_iv: f64::NAN,
                underlying: 100_000.0,
                index: 100_000.0,
            })
        };
        // "C" again with a two-sided quote (the rig's own ticker for it has none).
        self.send(2, ticker(0.05, 0.0005));
        self.send(3, ticker(0.03, 0.0015));
        let c_asks: &[(f64, f64, Side)] = if c_thin {
            &[(0.0505, 0.5, Side::Sell), (0.06, 100.0, Side::Sell)]
        } else {
            &[(0.0505, 100.0, Side::Sell)]
        };
        let mut c = vec![(0.0495, 100.0, Side::Buy)];
        c.extend_from_slice(c_asks);
        self.book(Venue::Deribit, 0, 2, true, &c);
        self.book(
            Venue::Deribit,
            0,
            3,
            true,
            &[(0.0285, 100.0, Side::Buy), (0.0315, 100.0, Side::Sell)],
        );
        self.book(
            Venue::Deribit,
            0,
            0,
            true,
            &[(99_999.5, 1e7, Side::Buy), (100_000.5, 1e7, Side::Sell)],
        );
    }
}

#[test]
fn gamma_legs_are_recosted_on_their_books_and_a_thin_one_loses() {
    // The book's gamma, from a rig whose band is too wide to trade.
    let mut r = Rig::with_options(gamma_hedging(1e9));
    r.options_market(false);
    r.tile.step();
    let gamma = r.stats.gamma_coin.get();
    assert!(gamma < 0.0, "short calls: {gamma}");
    // Deep books: the at-the-money call "C" fixes the gamma in fewest contracts.
    let mut r = Rig::with_options(gamma_hedging(0.3 * gamma.abs()));
    r.options_market(false);
    r.tile.step();
    let leg = r.intents.pop().expect("a gamma leg");
    assert_eq!(
        (leg.instrument, leg.side),
        (InstrumentId(2), Side::Buy),
        "{leg:?}"
    );
    assert!(r.count(&r.stats.option_legs_walked) >= 1);
    assert_eq!(r.count(&r.stats.option_depth_resolves), 0);
    // "C" has 0.5 contracts at its ask and the rest 0.0095 coin higher: walked, its leg costs
    // ~0.009 a contract instead of 0.0008 (D: 0.0018); the solve runs again and buys "D".
    let mut r = Rig::with_options(gamma_hedging(0.3 * gamma.abs()));
    r.options_market(true);
    r.tile.step();
    let leg = r.intents.pop().expect("a gamma leg");
    assert_eq!(
        (leg.instrument, leg.side),
        (InstrumentId(3), Side::Buy),
        "{leg:?}"
    );
    assert!(r.count(&r.stats.option_depth_resolves) >= 1);
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
fn a_fill_undone_as_lost_brings_the_exposure_back_and_it_is_hedged_again() {
    let mut r = Rig::new();
    r.market(100_000.0);
    r.tile.step();
    let i = r.intents.pop().expect("a hedge");
    let mut trace = i.trace;
    trace.sent_ns = now_ns();
    let fill = Fill {
        trace,
        intent_id: i.id,
        filled: i.amount,
        price: 100_000.0,
        intent_coin_delta: i.coin_delta,
        done_ns: now_ns(),
        instrument: i.instrument,
        error_code: 0,
        status: FillStatus::Filled,
    };
    r.fills.push(fill).unwrap();
    r.market(100_000.0);
    r.tile.step();
    assert!(r.intents.pop().is_none(), "in band after the fill");
    let hedged = r.stats.delta_coin.get();
    assert!(hedged.abs() < 0.5, "{hedged}");
    // The venue's acceptance never made it into a block: the fill is undone.
    r.fills
        .push(Fill {
            filled: -i.amount,
            status: FillStatus::Lost,
            done_ns: now_ns(),
            ..fill
        })
        .unwrap();
    r.market(100_000.0);
    r.tile.step();
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    assert_eq!(r.stats.lost_fills.load(relaxed), 1);
    assert_eq!(r.stats.fills.load(relaxed), 1, "an undoing is not a fill");
    assert!(
        (r.stats.delta_coin.get() - (hedged - i.coin_delta)).abs() < 0.05,
        "the exposure is back: {} vs {} − {}",
        r.stats.delta_coin.get(),
        hedged,
        i.coin_delta
    );
    assert!(
        r.stats.pnl_usd.get().abs() < 1.0,
        "bought and taken back at one price: no P&L, {}",
        r.stats.pnl_usd.get()
    );
    let again = r.intents.pop().expect("the exposure is hedged again");
    assert_eq!((again.side, again.amount), (i.side, i.amount));
    assert_ne!(again.id, i.id);
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
