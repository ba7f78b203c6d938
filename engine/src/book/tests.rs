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
    let mut b = Book::new(&m, &positions(), &[(InstrumentId(0), true)], 1_000)
        .unwrap()
        .with_reprice(Reprice::F64);
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
    let (mut w, mut wv, mut wt) = (0.0, 0.0, 0.0);
    for (r, q) in [(0usize, -10.0), (1, -10.0), (2, 4.0)] {
        let g = b.row_greeks(r);
        want += q * to_coin(&g, m.forward_of_row(r)).delta;
        want_usd += q * g.delta;
        let gw = (q * g.gamma).abs();
        w += gw;
        wv += gw * m.vol(r);
        wt += gw * m.tau(m.options()[r].expiry as usize);
    }
    // The policy's gamma weights, from the same pass.
    let (vol, tau) = p.gamma_weighted().expect("held options have gamma");
    assert!((p.gamma_weight - w).abs() <= 1e-12 * w, "{p:?}");
    assert!(
        (vol - wv / w).abs() < 1e-12 && (tau - wt / w).abs() < 1e-12,
        "{p:?}"
    );
    assert!(vol > 0.0 && tau > 0.0);
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

/// A Deribit-like chain of 1,000 options: 10 expiries from one day to a year, 50 strikes from
/// 0.5× to 1.6× spot, a call and a put each, every option marked on a smile with a forward per
/// expiry; a book of 400 positions (every option with a pseudo-random short or long quantity up
/// to 25 contracts, 60 % of rows flat) and an inverse perpetual hedge. Returns the market, the
/// positions and the exchange time of the marks.
fn chain_1000() -> (MarketState, Vec<(InstrumentId, String, f64)>, u64) {
    use crate::market::tests::inst;
    use keel_feeds::instrument::{InstrumentKind, Instruments, OptionRight};
    const NOW_MS: u64 = 1_700_000_000_000;
    let spot = 60_000.0;
    let days = [1u64, 2, 7, 14, 30, 60, 90, 180, 270, 365];
    let mut v = Instruments::new();
    v.insert(inst(
        "BTC-PERPETUAL",
        InstrumentKind::Perpetual,
        f64::NAN,
        0,
        None,
    ));
    v.insert(inst("btc_usd", InstrumentKind::Index, f64::NAN, 0, None));
    let mut names = Vec::new();
    for d in days {
        for j in 0..50 {
            let k = (spot * (0.5 + 1.1 * j as f64 / 49.0) / 100.0).round() * 100.0;
            for (right, c) in [(OptionRight::Call, 'C'), (OptionRight::Put, 'P')] {
                let name = format!("BTC-{d}D-{k}-{c}");
                v.insert(inst(
                    &name,
                    InstrumentKind::Option,
                    k,
                    NOW_MS + d * 86_400_000,
                    Some(right),
                ));
                names.push((name, k, d));
            }
        }
    }
    let mut m =
        MarketState::new(&v, "BTC", Some(InstrumentId(0)), MarketConfig::default()).unwrap();
    let at = |id: u32, body| keel_feeds::event::MarketEvent {
        exchange_ts_ns: NOW_MS * 1_000_000,
        ..ev(id, body)
    };
    m.apply(&at(1, EventBody::Index { price: spot }));
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut positions = Vec::new();
    for (i, (name, k, d)) in names.iter().enumerate() {
        let id = InstrumentId(i as u32 + 2);
        let t = *d as f64 / 365.0;
        let f = spot * (0.05 * t).exp();
        let lm = (k / f).ln();
        let vol = 0.45 + 0.35 * lm * lm - 0.05 * lm + 0.1 / (1.0 + 20.0 * t);
        m.apply(&at(id.0, ticker(vol, f)));
        if rnd() < 0.4 {
            let q = ((rnd() - 0.5) * 50.0 * 10.0).round() / 10.0;
            if q != 0.0 {
                positions.push((id, name.clone(), q));
            }
        }
    }
    positions.push((InstrumentId(0), "BTC-PERPETUAL".into(), 250_000.0));
    m.apply(&at(
        0,
        EventBody::Quote {
            bid: spot - 5.0,
            bid_size: 1.0,
            ask: spot + 5.0,
            ask_size: 1.0,
        },
    ));
    (m, positions, NOW_MS)
}

/// The f32 hedge path against the f64 path on the 1,000-option chain, through a time-to-expiry
/// refresh, index moves (spot path), vol changes on a few rows and both at once: the bounds
/// stated on [`Reprice`] hold for the aggregated coin delta, gamma, vega and the book's value.
#[test]
fn hedge_greeks_agree_with_f64_on_a_1000_option_book() {
    let (m0, positions, now_ms) = chain_1000();
    let hedges = [(InstrumentId(0), true)];
    let mut m32 = m0.clone();
    let mut m64 = m0;
    let mut b32 = Book::new(&m32, &positions, &hedges, 1_000).unwrap();
    let mut b64 = Book::new(&m64, &positions, &hedges, 1_000)
        .unwrap()
        .with_reprice(Reprice::F64);
    assert_eq!(b32.reprice_mode(), Reprice::F32);
    assert_eq!(b64.reprice_mode(), Reprice::F64);
    let abs_qty: f64 = positions[..positions.len() - 1]
        .iter()
        .map(|p| p.2.abs())
        .sum();
    assert!(positions.len() > 300 && abs_qty > 3_000.0, "{abs_qty}");
    let mut worst = [0.0f64; 4];
    let mut check = |b32: &mut Book, b64: &mut Book, m32: &MarketState, m64: &MarketState| {
        let (p, q) = (b32.aggregate(m32), b64.aggregate(m64));
        let v32: f64 = b32.buckets().iter().map(|b| b.value_usd).sum();
        let v64: f64 = b64.buckets().iter().map(|b| b.value_usd).sum();
        let (a, c) = (&p.options_coin, &q.options_coin);
        // Each error as a fraction of its bound (stated on `Reprice`): per contract held.
        let errs = [
            (a.delta - c.delta).abs() / (5e-8 * abs_qty),
            (a.gamma - c.gamma).abs() / (5e-12 * abs_qty),
            (a.vega - c.vega).abs() / (2e-8 * abs_qty),
            (v32 - v64).abs() / (2e-3 * abs_qty),
        ];
        assert!(
            errs[0] <= 1.0,
            "coin delta {} vs {} ({errs:?})",
            a.delta,
            c.delta
        );
        assert!(
            errs[1] <= 1.0,
            "coin gamma {} vs {} ({errs:?})",
            a.gamma,
            c.gamma
        );
        assert!(
            errs[2] <= 1.0,
            "coin vega {} vs {} ({errs:?})",
            a.vega,
            c.vega
        );
        assert!(errs[3] <= 1.0, "value {v32} vs {v64} ({errs:?})");
        assert!((p.hedge_delta - q.hedge_delta).abs() < 1e-12);
        for (w, e) in worst.iter_mut().zip(errs) {
            *w = w.max(e);
        }
    };
    let step = |b: &mut Book, m: &mut MarketState, evs: &[keel_feeds::event::MarketEvent]| {
        let mut c = Change::NONE;
        for e in evs {
            c |= m.apply(e);
        }
        b.reprice(m, c)
    };
    let at = |ms: u64, id: u32, body| keel_feeds::event::MarketEvent {
        exchange_ts_ns: ms * 1_000_000,
        ..ev(id, body)
    };
    let both = |b32: &mut Book,
                b64: &mut Book,
                m32: &mut MarketState,
                m64: &mut MarketState,
                evs: &[keel_feeds::event::MarketEvent]| {
        let k = step(b32, m32, evs);
        assert_eq!(k, step(b64, m64, evs));
        k
    };
    assert_eq!(
        both(&mut b32, &mut b64, &mut m32, &mut m64, &[]),
        RepriceKind::Full
    );
    check(&mut b32, &mut b64, &m32, &m64);
    let mut ms = now_ms + 10;
    for (i, px) in [60_300.0, 59_100.0, 61_800.0, 57_000.0, 60_000.0]
        .into_iter()
        .enumerate()
    {
        // The index alone: every forward moves, the spot path.
        ms += 10;
        let k = both(
            &mut b32,
            &mut b64,
            &mut m32,
            &mut m64,
            &[at(ms, 1, EventBody::Index { price: px })],
        );
        assert_eq!(k, RepriceKind::Spot);
        check(&mut b32, &mut b64, &m32, &m64);
        // New marks on a few rows (one of them moving its expiry's forward): the full path.
        ms += 10;
        let rows = [7 + i as u32 * 97, 300 + i as u32 * 41, 911 - i as u32 * 13];
        let evs: Vec<_> = rows
            .iter()
            .map(|&r| {
                let f = m32.forward_of_row(r as usize);
                at(ms, r + 2, ticker(0.4 + 0.1 * i as f64, f * 1.001))
            })
            .collect();
        let k = both(&mut b32, &mut b64, &mut m32, &mut m64, &evs);
        assert_eq!(k, RepriceKind::Full);
        check(&mut b32, &mut b64, &m32, &m64);
    }
    // Past the time-to-expiry refresh: every row rewritten, the f64 pass, terms rebuilt.
    ms += 1_500;
    both(
        &mut b32,
        &mut b64,
        &mut m32,
        &mut m64,
        &[at(ms, 1, EventBody::Index { price: 60_500.0 })],
    );
    check(&mut b32, &mut b64, &m32, &m64);
    // Theta comes from that f64 pass: the same in both books.
    let (p, q) = (b32.aggregate(&m32), b64.aggregate(&m64));
    assert!((p.options_usd.theta - q.options_usd.theta).abs() <= 1e-9 * q.options_usd.theta.abs());
    // And the report's f64 aggregate of the f32 book is the f64 book's.
    let r = b32.aggregate_f64(&m32);
    assert!(
        (r.options_coin.delta - q.options_coin.delta).abs() < 1e-9,
        "{r:?} {q:?}"
    );
    eprintln!(
        "Σ|qty| {abs_qty}; worst f32 errors as fractions of their bounds (delta, gamma, vega, value): {worst:?}"
    );
}
