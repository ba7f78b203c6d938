//! DESIGN.md "Rules of the hot path": a hedge decision allocates nothing. A counting global
//! allocator proves it for every trigger kind, the Zakamouline repricing included, once the
//! [`TriggerState`] is built.

use keel_engine::greeks::{OptionKind, OptionRow, greeks_one};
use keel_engine::policy::triggers::{
    HedgeContext, PositionLeg, TriggerState, decide, parse_policy,
};

mod support;

#[global_allocator]
static GLOBAL: support::Counting = support::Counting;

#[test]
fn decisions_do_not_allocate() {
    let triggers = parse_policy("band:0.1+time:1w+vol-band:0.05:1d+ww:1+zak:0.5+cost:2").unwrap();
    let mut state = TriggerState::new(&triggers);
    let mut legs = [PositionLeg {
        row: OptionRow::bsm(OptionKind::Call, 100.0, 100.0, 0.5, 0.01, 0.0, 0.2),
        qty: -3.0,
    }];
    let mut hedge = 0.0;
    let mut fired = 0;
    let n = support::allocations_during(|| {
        for i in 0..2_000 {
            let t = i as f64 / 4_000.0;
            let s = 100.0 * (1.0 + 0.05 * (i as f64 * 0.37).sin());
            legs[0].row.s = s;
            legs[0].row.t = 0.5 - t;
            let g = greeks_one(&legs[0].row).unwrap();
            let ctx = HedgeContext {
                t,
                spot: s,
                tau: 0.5 - t,
                rate: 0.01,
                yield_: 0.0,
                sigma: 0.2,
                position_delta: -3.0 * g.delta,
                gamma: -3.0 * g.gamma,
                vanna: -3.0 * g.vanna,
                hedge,
                kappa: 0.001,
                fixed_cost: 0.0,
                horizon: 1.0 / 4_000.0,
                legs: &legs,
            };
            if let Some(h) = decide(&triggers, &mut state, &ctx) {
                hedge = h;
                fired += 1;
            }
        }
    });
    assert_eq!(n, 0, "{n} allocations in 2000 decisions");
    assert!(fired > 10, "the policy must trade in this test ({fired})");
}
