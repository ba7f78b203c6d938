//! DESIGN.md "Rules of the hot path": no heap allocation after start-up. A counting global
//! allocator proves that the risk gate, the data guards and the cost model allocate nothing per
//! call once built.

use keel_engine::exec::FillStatus;
use keel_engine::policy::cost::{
    Candidate, ChainHead, Contract, CostQuery, DEFAULT_LATENCY_FACTOR, FeeRule, GasSpec, Level,
    Liquidity, VenueCost, all_in_cost, cheapest, walk_book,
};
use keel_engine::risk::{
    FeedStaleness, IndexConfig, IndexGuard, IvGuard, IvLimits, KillFlags, OrderCheck, RiskGate,
    RiskLimits,
};
use keel_feeds::{Side, Venue};

mod support;

#[global_allocator]
static GLOBAL: support::Counting = support::Counting;

use support::allocations_during;

const S: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * S;

#[test]
fn the_counter_counts() {
    let n = allocations_during(|| drop(std::hint::black_box(Vec::<u64>::with_capacity(8))));
    assert!(n >= 1);
}

#[test]
fn risk_gate_and_guards_do_not_allocate() {
    let kill = KillFlags::new();
    let mut gate = RiskGate::new(
        RiskLimits {
            max_order_coin: 5.0,
            max_position_coin: 50.0,
            max_notional_per_min_usd: 5e7,
            max_hedges_per_min: 1_000,
            daily_loss_stop_usd: 1e5,
            max_consecutive_rejects: 1_000_000,
        },
        kill.clone(),
    )
    .unwrap();
    let mut feeds = FeedStaleness::new(&[S, 2 * S, 3 * S]).unwrap();
    let mut index = IndexGuard::new(IndexConfig::default(), &[S; 5]).unwrap();
    let mut iv = IvGuard::new(IvLimits::default(), 64).unwrap();
    let mut vetoes = 0u64;
    let mut faults = 0u64;
    let n = allocations_during(|| {
        for i in 0..20_000u64 {
            let now = T0 + i * 10_000_000;
            let o = OrderCheck {
                coin: if i % 2 == 0 { 0.5 } else { -0.7 },
                notional_usd: 50_000.0,
                position_coin: (i % 100) as f64 * 0.6 - 30.0,
                exposure_coin: 1.0 - (i % 7) as f64 * 0.3,
            };
            match gate.check(&o, now) {
                Ok(()) => {
                    gate.record_sent(&o, now);
                    let status = if i % 5 == 0 {
                        FillStatus::Rejected
                    } else {
                        FillStatus::Filled
                    };
                    gate.record_outcome(status, now);
                }
                Err(v) => vetoes += u64::from(v.value.is_finite()),
            }
            gate.record_pnl(-((i % 3000) as f64) * 40.0, now);
            let _ = gate.take_cancel_all();
            feeds.touch((i % 3) as usize, now);
            faults += u64::from(feeds.check(now).is_err());
            index.update(
                (i % 5) as usize,
                100_000.0 + (i % 11) as f64 * if i % 97 == 0 { 900.0 } else { 1.0 },
                now,
            );
            faults += u64::from(index.compute(now).is_err());
            let vol = 0.5 + ((i % 13) as f64) * if i % 89 == 0 { 0.2 } else { 0.01 };
            faults += u64::from(iv.check((i % 64) as usize, vol).is_err());
        }
        kill.raise_signal();
        gate.poll(T0 + 1_000 * S);
        assert!(gate.take_cancel_all());
    });
    assert_eq!(n, 0, "allocations on the risk path");
    assert!(vetoes > 0 && faults > 0, "the loop exercised the refusals");
}

#[test]
fn cost_model_does_not_allocate() {
    let perp = VenueCost {
        venue: Venue::Deribit,
        contract: Contract::Inverse,
        fee: FeeRule::DERIBIT_PERPETUAL,
        latency_ns: 5_000_000,
        latency_factor: DEFAULT_LATENCY_FACTOR,
        gas: None,
    };
    let dex = VenueCost {
        venue: Venue::Ethereum,
        contract: Contract::Linear { multiplier: 1.0 },
        fee: FeeRule::Notional {
            maker_bps: 30.0,
            taker_bps: 30.0,
        },
        gas: Some(GasSpec {
            gas_units: 150_000,
            priority_fee_wei: 1_000_000_000,
        }),
        ..perp
    };
    let asks: [Level; 8] = core::array::from_fn(|i| Level {
        price: 100_000.5 + i as f64,
        size: 20_000.0 * (i + 1) as f64,
    });
    let coin_asks: [Level; 8] = core::array::from_fn(|i| Level {
        price: 100_001.0 + i as f64,
        size: 0.3 * (i + 1) as f64,
    });
    let mut total = 0.0;
    let n = allocations_during(|| {
        for i in 0..10_000u64 {
            let coin = 0.1 + (i % 50) as f64 * 0.1;
            let base = CostQuery {
                side: Side::Buy,
                qty: coin * 100_000.0,
                levels: &asks,
                mid: 100_000.0,
                quote_usd: 1.0,
                underlying_usd: 100_000.0,
                sigma: 0.5,
                coin_delta: coin,
                liquidity: Liquidity::Taker,
                chain: Some(ChainHead {
                    base_fee_wei: 20_000_000_000 + i,
                    gas_used: (i * 7_919) % 30_000_000,
                    gas_limit: 30_000_000,
                }),
                eth_usd: 3_000.0,
            };
            let on_chain = CostQuery {
                qty: coin,
                levels: &coin_asks,
                ..base
            };
            if let Ok(c) = all_in_cost(&perp, &base) {
                total += c.total;
            }
            if let Some(best) = cheapest(&[
                Candidate {
                    venue: &perp,
                    query: base,
                },
                Candidate {
                    venue: &dex,
                    query: on_chain,
                },
            ]) {
                total += best.cost.total;
            }
            if let Ok(w) = walk_book(
                Side::Buy,
                dex.contract,
                coin * 3.0,
                &coin_asks,
                100_000.0,
                1.0,
            ) {
                total += w.slippage_usd;
            }
        }
    });
    assert_eq!(n, 0, "allocations in the cost model");
    assert!(total > 0.0);
}
