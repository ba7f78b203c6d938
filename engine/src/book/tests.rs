use super::*;
use crate::market::tests::{ev, instruments, ticker};
use crate::market::{MarketConfig, MarketState};
use keel_feeds::event::{EventBody, VenueGreeks};

/// Market with every option marked; rows: 0 = B-1-100-C (id 4), 1 = B-1-100-P (3),
/// 2 = B-2-90-C (5), 3 = B-2-110-P (2).
fn marked() -> MarketState {
    let mut m = MarketState::new(
        &instruments(),
        "BTC",
        Some(InstrumentId(0)),
        MarketConfig::default(),
    )
    .unwrap();
    m.apply(&ev(1, EventBody::Index { price: 100_000.0 }));
    for (id, v, f) in [
        (4, 0.5, 100_500.0),
        (3, 0.52, 100_500.0),
        (5, 0.6, 101_000.0),
        (2, 0.55, 101_000.0),
    ] {
        m.apply(&ev(id, ticker(v, f)));
    }
    m.apply(&ev(
        0,
        EventBody::Quote {
            bid: 99_990.0,
            bid_size: 1.0,
            ask: 100_010.0,
            ask_size: 1.0,
        },
    ));
    m
}

fn positions() -> Vec<(InstrumentId, String, f64)> {
    vec![
        (InstrumentId(4), "B-1-100-C".into(), -10.0),
        (InstrumentId(3), "B-1-100-P".into(), -10.0),
        (InstrumentId(5), "B-2-90-C".into(), 4.0),
        (InstrumentId(0), "BTC-PERPETUAL".into(), 50_000.0),
    ]
}

fn expect_row(m: &MarketState, b: &Book, r: usize) {
    let want = greeks_one(&m.option_row(r).unwrap()).unwrap();
    let got = b.row_greeks(r);
    for (g, w) in got.to_array().iter().zip(want.to_array()) {
        assert!(
            (g - w).abs() <= 1e-9 * w.abs().max(1.0),
            "row {r}: {got:?} vs {want:?}"
        );
    }
}

#[test]
fn full_then_spot_path_match_the_scalar_twin() {
    let mut m = marked();
    let mut b = Book::new(&m, &positions(), &[(InstrumentId(0), true)], 1_000).unwrap();
    assert_eq!(b.held_rows(), &[0, 1, 2]);
    assert_eq!(
        b.reprice(&mut m, Change::SPOT | Change::VOL),
        RepriceKind::Full
    );
    assert_eq!(b.unmarked_held(), 0);
    for r in 0..4 {
        expect_row(&m, &b, r);
    }
    // An index tick moves every forward: the spot path, same answers as the twin.
    let c = m.apply(&ev(1, EventBody::Index { price: 103_000.0 }));
    assert_eq!(b.reprice(&mut m, c), RepriceKind::Spot);
    for r in 0..4 {
        expect_row(&m, &b, r);
    }
    // Nothing changed: nothing to do.
    assert_eq!(b.reprice(&mut m, Change::HEDGE_QUOTE), RepriceKind::None);
    // A new vol mark: full path.
    let c = m.apply(&ev(5, ticker(0.65, 104_000.0)));
    assert_eq!(b.reprice(&mut m, c), RepriceKind::Full);
    expect_row(&m, &b, 2);
    assert_eq!(b.reprice_counts(), (2, 1));
}

#[test]
fn aggregate_is_the_sum_of_coin_greeks_plus_the_hedge() {
    let mut m = marked();
    let mut b = Book::new(&m, &positions(), &[(InstrumentId(0), true)], 1_000).unwrap();
    b.reprice(&mut m, Change::VOL);
    let p = b.aggregate(&m);
    let mut want = 0.0;
    let mut want_usd = 0.0;
    for (r, q) in [(0usize, -10.0), (1, -10.0), (2, 4.0)] {
        let g = b.row_greeks(r);
        want += q * to_coin(&g, m.forward_of_row(r)).delta;
        want_usd += q * g.delta;
    }
    let hedge = 50_000.0 / 100_000.0;
    assert!((p.options_coin.delta - want).abs() < 1e-9, "{p:?}");
    assert!((p.hedge_delta - hedge).abs() < 1e-12);
    assert!((p.delta_coin - (want + hedge)).abs() < 1e-9);
    assert!((p.delta_usd - (want_usd + hedge) * 100_000.0).abs() < 1e-4);
    // Two expiries held: two buckets with Greeks, their sum the total.
    let sum: f64 = b.buckets().iter().map(|x| x.coin.vega).sum();
    assert!((sum - p.options_coin.vega).abs() < 1e-9);
    assert!(
        b.buckets()[0].usd.gamma < 0.0,
        "short straddle is short gamma"
    );
}

#[test]
fn fills_update_positions_and_unknown_instruments_are_refused() {
    let mut m = marked();
    let mut b = Book::new(&m, &positions(), &[(InstrumentId(0), true)], 1_000).unwrap();
    b.reprice(&mut m, Change::VOL);
    let before = b.aggregate(&m).delta_coin;
    assert!(b.apply_fill(&m, InstrumentId(0), -10_000.0));
    let after = b.aggregate(&m).delta_coin;
    assert!((before - after - 0.1).abs() < 1e-9, "{before} {after}");
    assert!(b.apply_fill(&m, InstrumentId(2), 1.0));
    assert_eq!(b.held_rows(), &[0, 1, 2, 3]);
    assert!(!b.apply_fill(&m, InstrumentId(6), 1.0));
    assert!(!b.apply_fill(&m, InstrumentId(0), f64::NAN));
    let e = Book::new(
        &m,
        &[(InstrumentId(6), "B-2".into(), 1.0)],
        &[(InstrumentId(0), true)],
        1_000,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("B-2"), "{e}");
}

#[test]
fn unmarked_held_rows_are_reported() {
    let mut m = MarketState::new(
        &instruments(),
        "BTC",
        Some(InstrumentId(0)),
        MarketConfig::default(),
    )
    .unwrap();
    let mut b = Book::new(&m, &positions(), &[(InstrumentId(0), true)], 1_000).unwrap();
    b.reprice(&mut m, Change::VOL);
    assert_eq!(b.unmarked_held(), 3);
}

#[test]
fn cross_check_reproduces_the_venues_greeks() {
    let mut m = marked();
    let mut b = Book::new(&m, &positions(), &[(InstrumentId(0), true)], 1_000).unwrap();
    let row = m.option_row(0).unwrap();
    let g = greeks_one(&row).unwrap();
    m.apply(&ev(
        4,
        EventBody::VenueGreeks(VenueGreeks {
            delta: g.delta,
            gamma: g.gamma,
            vega: g.vega / 100.0 + 0.5,
            theta: g.theta / 365.0,
            rho: g.rho / 100.0,
        }),
    ));
    b.cross_check_row(&m, 0);
    let c = b.cross_check();
    assert_eq!(c.count, 1);
    assert!(c.delta < 1e-9 && c.gamma < 1e-12, "{c:?}");
    assert!((c.vega - 0.5).abs() < 1e-6, "{c:?}");
}
