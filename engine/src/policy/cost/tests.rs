use super::*;

fn head(base_fee_wei: u64, gas_used: u64, gas_limit: u64) -> ChainHead {
    ChainHead {
        base_fee_wei,
        gas_used,
        gas_limit,
    }
}

/// fixtures/venues/ethereum/vectors.json has signing vectors but no base-fee ones, so: the
/// table that reth and alloy test their EIP-1559 rule against, then hand-computed cases.
#[test]
fn eip1559_next_base_fee_vectors() {
    // (base fee, gas used, gas limit, next base fee)
    let table: &[(u64, u64, u64, u128)] = &[
        (1_000_000_000, 10_000_000, 10_000_000, 1_125_000_000),
        (1_000_000_000, 10_000_000, 12_000_000, 1_083_333_333),
        (1_000_000_000, 10_000_000, 14_000_000, 1_053_571_428),
        (1_072_671_875, 9_000_000, 10_000_000, 1_179_939_062),
        (1_059_263_476, 10_001_000, 14_000_000, 1_116_028_649),
        (1_049_238_967, 0, 2_000_000, 918_084_097),
        (1_049_238_967, 10_000_000, 18_000_000, 1_063_811_730),
        (0, 10_000_000, 18_000_000, 1),
        (1, 10_000_000, 18_000_000, 2),
        (2, 10_000_000, 18_000_000, 3),
        // Hand-computed. gasUsed = target: unchanged.
        (1_000_000_000, 15_000_000, 30_000_000, 1_000_000_000),
        // gasUsed = 0: −1/8 (1e9·15e6 // 15e6 // 8 = 125e6).
        (1_000_000_000, 0, 30_000_000, 875_000_000),
        // gasUsed = limit: +1/8.
        (1_000_000_000, 30_000_000, 30_000_000, 1_125_000_000),
        // An odd limit: target 15,000,000, delta 15,000,001: 1e9·15000001 // 15e6 =
        // 1,000,000,066, // 8 = 125,000,008.
        (1_000_000_000, 30_000_001, 30_000_001, 1_125_000_008),
        // Small fees: the increase is at least 1 wei, the decrease may be 0.
        (7, 30_000_000, 30_000_000, 8),
        (7, 0, 30_000_000, 7),
        (8, 0, 30_000_000, 7),
        (0, 0, 30_000_000, 0),
        // One gas over the target: +1 wei at least.
        (1_000_000_000, 15_000_001, 30_000_000, 1_000_000_008),
        // The largest base fee the feed carries: no overflow (128-bit intermediates).
        (
            u64::MAX,
            30_000_000,
            30_000_000,
            u64::MAX as u128 + (u64::MAX / 8) as u128,
        ),
    ];
    for &(base, used, limit, want) in table {
        assert_eq!(
            next_base_fee(&head(base, used, limit)),
            Ok(want),
            "base {base} used {used} limit {limit}"
        );
    }
    assert_eq!(
        next_base_fee(&head(1, 2, 1)),
        Err(CostError::BadChainHead {
            gas_used: 2,
            gas_limit: 1
        })
    );
    assert!(next_base_fee(&head(1, 31_000_000, 30_000_000)).is_err());
}

#[test]
fn gas_at_the_predicted_base_fee_plus_the_tip() {
    let spec = GasSpec {
        gas_units: 150_000,
        priority_fee_wei: 1_000_000_000,
    };
    // A full head at 20 gwei: next 22.5 gwei, + 1 gwei tip = 23.5 gwei × 150,000 gas.
    let q = gas_quote(
        &spec,
        &head(20_000_000_000, 30_000_000, 30_000_000),
        3_000.0,
    )
    .unwrap();
    assert_eq!(q.base_fee_wei, 22_500_000_000);
    assert_eq!(q.fee_per_gas_wei, 23_500_000_000);
    assert_eq!(q.total_wei, 3_525_000_000_000_000);
    assert!((q.eth - 0.003525).abs() < 1e-18);
    assert!((q.usd - 10.575).abs() < 1e-12);
    assert!(gas_quote(&spec, &head(1, 0, 30_000_000), f64::NAN).is_err());
}

const LINEAR: Contract = Contract::Linear { multiplier: 1.0 };

fn lv(price: f64, size: f64) -> Level {
    Level { price, size }
}

#[test]
fn book_walks_exact_numbers() {
    let asks = [lv(100_010.0, 0.5), lv(100_020.0, 1.0), lv(100_050.0, 2.0)];
    // Buy 1.25: 0.5 @ 100,010 + 0.75 @ 100,020 = 125,020 for 1.25 → avg 100,016; vs mid
    // 100,000: 20 USD.
    let w = walk_book(Side::Buy, LINEAR, 1.25, &asks, 100_000.0, 1.0).unwrap();
    assert_eq!(
        w,
        BookWalk {
            avg_price: 100_016.0,
            worst_price: 100_020.0,
            levels: 2,
            slippage_usd: 20.0
        }
    );
    // Exactly the first level.
    let w = walk_book(Side::Buy, LINEAR, 0.5, &asks, 100_000.0, 1.0).unwrap();
    assert_eq!((w.avg_price, w.levels, w.slippage_usd), (100_010.0, 1, 5.0));
    // Sell 1.5 into bids: 99,990 + 0.5 × 99,980 = 149,980 → 20 USD under 150,000.
    let bids = [lv(99_990.0, 1.0), lv(99_980.0, 1.0)];
    let w = walk_book(Side::Sell, LINEAR, 1.5, &bids, 100_000.0, 1.0).unwrap();
    assert_eq!(
        (w.worst_price, w.levels, w.slippage_usd),
        (99_980.0, 2, 20.0)
    );
    assert!((w.avg_price - 149_980.0 / 1.5).abs() < 1e-9);
    // A contract multiplier of 0.1 coin: 12.5 contracts are the same 1.25 coin.
    let tenth = Contract::Linear { multiplier: 0.1 };
    let asks10 = [lv(100_010.0, 5.0), lv(100_020.0, 10.0)];
    let w = walk_book(Side::Buy, tenth, 12.5, &asks10, 100_000.0, 1.0).unwrap();
    assert_eq!((w.avg_price, w.slippage_usd), (100_016.0, 20.0));
    // Inverse (USD face): buy 50,000 USD through 30,000 @ 100,010 and 20,000 @ 100,020.
    let inv = [lv(100_010.0, 30_000.0), lv(100_020.0, 50_000.0)];
    let w = walk_book(Side::Buy, Contract::Inverse, 50_000.0, &inv, 100_000.0, 1.0).unwrap();
    let slip = 30_000.0 * (1.0 - 100_000.0 / 100_010.0) + 20_000.0 * (1.0 - 100_000.0 / 100_020.0);
    assert!((w.slippage_usd - slip).abs() < 1e-9);
    assert!((w.slippage_usd - 6.998_900_19).abs() < 1e-6);
    let avg = 50_000.0 / (30_000.0 / 100_010.0 + 20_000.0 / 100_020.0);
    assert!((w.avg_price - avg).abs() < 1e-9);
    // A coin-quoted option (quote_usd = index): 2 @ 0.0500 + 1 @ 0.0505 against mid 0.0495 =
    // 0.002 BTC = 200 USD.
    let opt = [lv(0.0500, 2.0), lv(0.0505, 3.0)];
    let w = walk_book(Side::Buy, LINEAR, 3.0, &opt, 0.0495, 100_000.0).unwrap();
    assert!((w.slippage_usd - 200.0).abs() < 1e-9);
    assert!((w.avg_price - 0.1505 / 3.0).abs() < 1e-15);
}

#[test]
fn book_walk_errors() {
    let asks = [lv(100_010.0, 0.5), lv(100_020.0, 1.0), lv(100_050.0, 2.0)];
    assert_eq!(
        walk_book(Side::Buy, LINEAR, 4.0, &asks, 100_000.0, 1.0),
        Err(CostError::NotEnoughDepth {
            wanted: 4.0,
            available: 3.5
        })
    );
    assert_eq!(
        walk_book(Side::Buy, LINEAR, 1.0, &[], 100_000.0, 1.0),
        Err(CostError::NotEnoughDepth {
            wanted: 1.0,
            available: 0.0
        })
    );
    // Asks given to a sell are out of order for it.
    assert_eq!(
        walk_book(Side::Sell, LINEAR, 1.0, &asks, 100_000.0, 1.0),
        Err(CostError::BadLevel { level: 1 })
    );
    let bad = [lv(100_010.0, 0.5), lv(f64::NAN, 1.0)];
    assert_eq!(
        walk_book(Side::Buy, LINEAR, 0.1, &bad, 100_000.0, 1.0),
        Err(CostError::BadLevel { level: 1 })
    );
    let zero = [lv(100_010.0, 0.0)];
    assert!(walk_book(Side::Buy, LINEAR, 0.1, &zero, 100_000.0, 1.0).is_err());
    for (qty, mid, field) in [
        (0.0, 100_000.0, "qty"),
        (f64::NAN, 100_000.0, "qty"),
        (1.0, -1.0, "mid"),
    ] {
        match walk_book(Side::Buy, LINEAR, qty, &asks, mid, 1.0) {
            Err(CostError::BadInput { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[test]
fn deribit_option_fee_is_capped_at_an_eighth_of_the_premium() {
    let r = FeeRule::DERIBIT_OPTION;
    // (option price in BTC, contracts, fee USD) at an index of 100,000.
    let table: &[(f64, f64, f64)] = &[
        // 0.03 % of 100,000 = 30 USD per contract; 12.5 % of 5,000 = 625: 30.
        (0.05, 1.0, 30.0),
        (0.05, 3.0, 90.0),
        // Deribit's own example: at 0.0001 BTC the fee is 0.0000125 BTC (1.25 USD).
        (0.0001, 1.0, 1.25),
        (0.0001, 10.0, 12.5),
        // The crossover: 12.5 % of 0.0024 BTC = 0.0003 BTC.
        (0.0024, 1.0, 30.0),
    ];
    for &(price, n, fee) in table {
        let got = r.fee_usd(Liquidity::Taker, LINEAR, n, price, 100_000.0, 100_000.0);
        assert!((got - fee).abs() < 1e-9, "{price} × {n}: {got}");
    }
    // Perpetual: 5 bp taker of 50,000 USD face = 25 USD; maker 0.
    let p = FeeRule::DERIBIT_PERPETUAL;
    let fee = p.fee_usd(
        Liquidity::Taker,
        Contract::Inverse,
        50_000.0,
        100_000.0,
        1.0,
        1.0,
    );
    assert!((fee - 25.0).abs() < 1e-12);
    assert_eq!(
        p.fee_usd(Liquidity::Maker, Contract::Inverse, 50_000.0, 1.0, 1.0, 1.0),
        0.0
    );
}

fn deribit_option() -> VenueCost {
    VenueCost {
        venue: Venue::Deribit,
        contract: LINEAR,
        fee: FeeRule::DERIBIT_OPTION,
        latency_ns: 10_000_000,
        latency_factor: DEFAULT_LATENCY_FACTOR,
        gas: None,
    }
}

fn query<'a>(qty: f64, levels: &'a [Level], mid: f64) -> CostQuery<'a> {
    CostQuery {
        side: Side::Buy,
        qty,
        levels,
        mid,
        quote_usd: 1.0,
        underlying_usd: 100_000.0,
        sigma: 0.5,
        coin_delta: qty,
        liquidity: Liquidity::Taker,
        chain: None,
        eth_usd: f64::NAN,
    }
}

#[test]
fn latency_charge() {
    // A latency of 1e-4 year: √ = 0.01; 1 × 0.5 × 100,000 × 0.01 × 2 coin = 1,000 USD.
    let t = (YEAR_NS / 10_000.0) as u64;
    assert!((latency_cost_usd(1.0, 0.5, 100_000.0, t, -2.0) - 1_000.0).abs() < 1e-6);
    // 5 ms at 50 % vol on 100,000 for 1 coin, with √(2/π): about 0.5023 USD.
    let c = latency_cost_usd(DEFAULT_LATENCY_FACTOR, 0.5, 100_000.0, 5_000_000, 1.0);
    assert!((c - 0.502_333_064).abs() < 1e-8, "{c}");
    assert_eq!(latency_cost_usd(1.0, 0.5, 100_000.0, 0, 1.0), 0.0);
    assert!((DEFAULT_LATENCY_FACTOR - (2.0 / core::f64::consts::PI).sqrt()).abs() < 1e-16);
}

#[test]
fn all_in_cost_adds_the_four_terms() {
    // Three calls of delta 0.5 bought on Deribit: fees 90, slippage 200 (see above).
    let v = deribit_option();
    let opt = [lv(0.0500, 2.0), lv(0.0505, 3.0)];
    let q = CostQuery {
        quote_usd: 100_000.0,
        sigma: 0.6,
        coin_delta: 1.5,
        ..query(3.0, &opt, 0.0495)
    };
    let c = all_in_cost(&v, &q).unwrap();
    let latency = latency_cost_usd(DEFAULT_LATENCY_FACTOR, 0.6, 100_000.0, 10_000_000, 1.5);
    assert!((c.fees - 90.0).abs() < 1e-9);
    assert!((c.slippage - 200.0).abs() < 1e-9);
    assert_eq!(c.gas, 0.0);
    assert_eq!(c.latency, latency);
    assert_eq!(c.total, c.fees + c.slippage + c.gas + c.latency);
    // Per fill price: the cap can bind on one level and not the other.
    let cheap = [lv(0.0001, 1.0), lv(0.01, 1.0)];
    let c = all_in_cost(
        &v,
        &CostQuery {
            quote_usd: 100_000.0,
            ..query(2.0, &cheap, 0.00005)
        },
    )
    .unwrap();
    assert!((c.fees - (1.25 + 30.0)).abs() < 1e-9);
    // Maker: maker fee at the mid, no slippage, book not needed.
    let maker = VenueCost {
        fee: FeeRule::Notional {
            maker_bps: -1.0,
            taker_bps: 5.0,
        },
        ..v
    };
    let c = all_in_cost(
        &maker,
        &CostQuery {
            liquidity: Liquidity::Maker,
            ..query(2.0, &[], 100_000.0)
        },
    )
    .unwrap();
    assert!((c.fees + 20.0).abs() < 1e-9);
    assert_eq!(c.slippage, 0.0);
    // On chain: gas at the next base fee; no head is an error.
    let dex = VenueCost {
        venue: Venue::Ethereum,
        fee: FeeRule::Notional {
            maker_bps: 30.0,
            taker_bps: 30.0,
        },
        gas: Some(GasSpec {
            gas_units: 150_000,
            priority_fee_wei: 1_000_000_000,
        }),
        ..v
    };
    let book = [lv(100_000.0, 10.0)];
    assert_eq!(
        all_in_cost(&dex, &query(1.0, &book, 100_000.0)),
        Err(CostError::NoChainHead)
    );
    let q = CostQuery {
        chain: Some(head(20_000_000_000, 30_000_000, 30_000_000)),
        eth_usd: 3_000.0,
        ..query(1.0, &book, 100_000.0)
    };
    let c = all_in_cost(&dex, &q).unwrap();
    assert!((c.gas - 10.575).abs() < 1e-9);
    assert!((c.fees - 300.0).abs() < 1e-9);
    assert_eq!(c.slippage, 0.0);
    for (bad, field) in [
        (CostQuery { sigma: -0.1, ..q }, "sigma"),
        (
            CostQuery {
                coin_delta: f64::NAN,
                ..q
            },
            "coin_delta",
        ),
        (
            CostQuery {
                underlying_usd: 0.0,
                ..q
            },
            "underlying_usd",
        ),
    ] {
        match all_in_cost(&dex, &bad) {
            Err(CostError::BadInput { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[test]
fn cheapest_venue_wins_and_unpriceable_ones_are_skipped() {
    // Hedge 1 BTC of delta: buy on Deribit's inverse perpetual (100,000 USD face, 5 bp taker),
    // on a linear perpetual (1 coin, 4 bp taker, thinner book), or on chain (30 bp + gas), or on
    // a venue without enough depth.
    let deribit = VenueCost {
        venue: Venue::Deribit,
        contract: Contract::Inverse,
        fee: FeeRule::DERIBIT_PERPETUAL,
        latency_ns: 5_000_000,
        latency_factor: DEFAULT_LATENCY_FACTOR,
        gas: None,
    };
    let binance = VenueCost {
        venue: Venue::Binance,
        contract: LINEAR,
        fee: FeeRule::Notional {
            maker_bps: 2.0,
            taker_bps: 4.0,
        },
        latency_ns: 20_000_000,
        ..deribit
    };
    let dex = VenueCost {
        venue: Venue::Ethereum,
        contract: LINEAR,
        fee: FeeRule::Notional {
            maker_bps: 30.0,
            taker_bps: 30.0,
        },
        latency_ns: 12_000_000_000,
        gas: Some(GasSpec {
            gas_units: 150_000,
            priority_fee_wei: 1_000_000_000,
        }),
        ..deribit
    };
    let okx = VenueCost {
        venue: Venue::Okx,
        ..binance
    };
    let deribit_asks = [lv(100_000.5, 200_000.0)];
    let binance_asks = [lv(100_001.0, 0.4), lv(100_010.0, 0.6)];
    let dex_asks = [lv(100_000.0, 50.0)];
    let okx_asks = [lv(100_001.0, 0.2)];
    let q = |qty, levels| CostQuery {
        coin_delta: 1.0,
        chain: Some(head(20_000_000_000, 15_000_000, 30_000_000)),
        eth_usd: 3_000.0,
        ..query(qty, levels, 100_000.0)
    };
    let candidates = [
        Candidate {
            venue: &okx,
            query: q(1.0, &okx_asks),
        },
        Candidate {
            venue: &dex,
            query: q(1.0, &dex_asks),
        },
        Candidate {
            venue: &binance,
            query: q(1.0, &binance_asks),
        },
        Candidate {
            venue: &deribit,
            query: q(100_000.0, &deribit_asks),
        },
    ];
    let costs: Vec<_> = candidates
        .iter()
        .map(|c| all_in_cost(c.venue, &c.query))
        .collect();
    // Binance: fees 4 bp of 100,006.4 = 40.00256, slippage 0.4·1 + 0.6·10 = 6.4.
    let b = costs[2].unwrap();
    assert!((b.fees - 40.002_56).abs() < 1e-9 && (b.slippage - 6.4).abs() < 1e-9);
    // Deribit: fees 50, slippage 100,000·(1 − 100,000/100,000.5) ≈ 0.5.
    let d = costs[3].unwrap();
    assert!((d.fees - 50.0).abs() < 1e-9 && (d.slippage - 0.499_997_5).abs() < 1e-6);
    let best = cheapest(&candidates).unwrap();
    assert_eq!(
        (best.index, best.venue, best.skipped),
        (2, Venue::Binance, 1)
    );
    assert_eq!(best.cost, b);
    assert!(b.total < d.total && b.total < costs[1].unwrap().total);
    // A tie goes to the first candidate; none priceable is None.
    let tie = [candidates[2], candidates[2]];
    assert_eq!(cheapest(&tie).unwrap().index, 0);
    assert_eq!(cheapest(&candidates[..1]), None);
    assert_eq!(cheapest(&[]), None);
}
