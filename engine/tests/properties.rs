//! Properties of the kernel on random books: every SIMD width equals the scalar twin, Greeks
//! agree with finite differences of the price, put-call parity holds, and edge cases (expiry,
//! σ → 0, σ = 5, deep moneyness, negative rates, q > r) stay finite and take their limits.

use keel_engine::greeks::{
    BookInputs, Element, GreekValues, GreeksColumns, Lanes, Model, OptionKind, OptionRow,
    SpotCache, greeks_one, reprice_full, reprice_spot,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use wide::{f32x16, f64x4, f64x8};

/// Prices `rows` with the full path, then moves every spot by +1 % and prices the moved book
/// both ways: returns (full path on moved spots, spot path on moved spots from a cache built
/// before the move).
fn price_all<V: Lanes>(rows: &[OptionRow]) -> (Vec<GreekValues>, Vec<GreekValues>)
where
    V::Elem: Element,
{
    let mut book = BookInputs::<V::Elem>::from_rows(rows).unwrap();
    let cache = SpotCache::build::<V>(&book);
    for (i, r) in rows.iter().enumerate() {
        book.set_spot(i, r.s * 1.01).unwrap();
    }
    let mut full = GreeksColumns::for_book(&book);
    reprice_full::<V>(&book, &mut full);
    let mut spot = GreeksColumns::for_book(&book);
    reprice_spot::<V>(&book, &cache, &mut spot).unwrap();
    (
        (0..rows.len()).map(|i| full.row(i)).collect(),
        (0..rows.len()).map(|i| spot.row(i)).collect(),
    )
}

/// The rows as the price_all book holds them after its spot move.
fn moved(rows: &[OptionRow]) -> Vec<OptionRow> {
    rows.iter()
        .map(|r| OptionRow {
            s: r.s * 1.01,
            ..*r
        })
        .collect()
}

fn arb_row() -> impl Strategy<Value = OptionRow> {
    (
        any::<bool>(),
        any::<bool>(),
        0.0f64..5.0,  // log10 spot
        -1.5f64..1.5, // ln(K/S)
        prop_oneof![
            Just(0.0),
            Just(-0.01),
            Just(1e-12),
            1e-6f64..1e-3,
            1e-3f64..5.0
        ],
        -0.05f64..0.2, // r
        -0.05f64..0.3, // q
        prop_oneof![Just(5.0), 1e-4f64..0.05, 0.05f64..5.0],
    )
        .prop_map(|(call, b76, ls, lm, t, r, q, sigma)| {
            let s = 10f64.powf(ls);
            let kind = if call {
                OptionKind::Call
            } else {
                OptionKind::Put
            };
            let k = s * lm.exp();
            if b76 {
                OptionRow::black76(kind, s, k, t, r, sigma)
            } else {
                OptionRow::bsm(kind, s, k, t, r, q, sigma)
            }
        })
}

/// |a − b| ≤ rel·max(|a|,|b|) + abs.
fn close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    a.is_finite() && b.is_finite() && (a - b).abs() <= rel * a.abs().max(b.abs()) + abs
}

fn assert_same(label: &str, rows: &[OptionRow], a: &[GreekValues], b: &[GreekValues], rel: f64) {
    for (i, row) in rows.iter().enumerate() {
        let scale = row.s.max(row.k);
        let (x, y) = (a[i].to_array(), b[i].to_array());
        for j in 0..8 {
            // Absolute floor: the price scale for price-like Greeks; every Greek is compared
            // relative to its own size first.
            assert!(
                close(x[j], y[j], rel, 1e-13 * scale),
                "{label}: row {i} {row:?} {}: {} vs {}",
                GreekValues::NAMES[j],
                x[j],
                y[j]
            );
        }
    }
}

proptest! {
    // Failures are saved beside this file and re-run first (SourceParallel cannot find an
    // integration test's source).
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/properties.proptest-regressions"
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn simd_equals_scalar_twin(rows in prop::collection::vec(arb_row(), 1..70)) {
        let (scalar_full, scalar_spot) = price_all::<f64>(&rows);
        // Full and spot paths differ only in ln(S/K) vs ln S − ln K.
        assert_same("scalar spot vs full", &rows, &scalar_spot, &scalar_full, 1e-9);
        for (name, (full, spot)) in [
            ("f64x8", price_all::<f64x8>(&rows)),
            ("f64x4", price_all::<f64x4>(&rows)),
        ] {
            // The vector ln is wide's, the scalar's is std's: they differ by an ulp or so.
            assert_same(name, &rows, &full, &scalar_full, 1e-11);
            assert_same(name, &rows, &spot, &scalar_spot, 1e-11);
        }
        // f32: finite everywhere, and close to the scalar twin in price and delta, within what
        // rounding the inputs to f32 alone explains (~3e-7 relative on S, K, σ, τ moves d1 by
        // ~3e-7·(1 + |ln S/K|)/(σ√τ)).
        let (f32_full, f32_spot) = price_all::<f32x16>(&rows);
        for (i, row) in moved(&rows).iter().enumerate() {
            let w = scalar_full[i];
            for g in [f32_full[i], f32_spot[i]] {
                prop_assert!(g.to_array().iter().all(|x| x.is_finite()), "f32 {row:?} -> {g:?}");
                let scale = row.s.max(row.k);
                let sd = row.sigma * row.t.max(0.0).sqrt();
                let dd = 3e-7 * (1.0 + (row.s / row.k).ln().abs()) / sd.max(1e-9);
                let dd = dd.min(1.0);
                prop_assert!(
                    close(g.price, w.price, 2e-5, 1e-6 * scale + dd * w.delta.abs() * row.s),
                    "f32 price {row:?}: {} vs {}", g.price, w.price
                );
                prop_assert!(
                    close(g.delta, w.delta, 2e-5, 1e-6 + dd * (w.gamma * row.s).abs() * 3.0),
                    "f32 delta {row:?}: {} vs {}", g.delta, w.delta
                );
            }
        }
    }

    #[test]
    fn greeks_are_finite_and_parity_holds(row in arb_row()) {
        let call = greeks_one(&OptionRow { kind: OptionKind::Call, ..row }).unwrap();
        let put = greeks_one(&OptionRow { kind: OptionKind::Put, ..row }).unwrap();
        for g in [call, put] {
            prop_assert!(g.to_array().iter().all(|x| x.is_finite()), "{row:?} -> {g:?}");
            prop_assert!(g.price >= 0.0);
        }
        let t = row.t.max(0.0);
        let (eq, df) = match row.model {
            Model::Bsm => ((-row.q * t).exp(), (-row.r * t).exp()),
            Model::Black76 => ((-row.r * t).exp(), (-row.r * t).exp()),
        };
        let scale = row.s.max(row.k);
        prop_assert!(close(call.price - put.price, row.s * eq - row.k * df, 1e-12, 1e-12 * scale));
        let degenerate = row.sigma * t.sqrt() < 1e-10;
        if !degenerate {
            prop_assert!(close(call.delta - put.delta, eq, 1e-12, 1e-14));
            prop_assert!(close(call.gamma, put.gamma, 1e-12, 0.0));
            prop_assert!(close(call.vega, put.vega, 1e-12, 0.0));
        }
    }

    #[test]
    fn greeks_match_finite_differences(
        row in arb_row().prop_filter("smooth enough for differences", |r| {
            r.t >= 0.02 && r.sigma >= 0.05 && r.sigma <= 4.9 && (r.s / r.k).ln().abs() / (r.sigma * r.t.sqrt()) < 4.0
        })
    ) {
        let g = greeks_one(&row).unwrap();
        let p = |r: OptionRow| greeks_one(&r).unwrap();
        // The step scales with σ√τ: the truncation error of a central difference grows with
        // (h / (S σ√τ))², so a fixed relative step fails on short-dated, low-vol rows.
        let hs = 2e-3 * row.s * (row.sigma * row.t.sqrt()).min(0.05);
        let up = p(OptionRow { s: row.s + hs, ..row });
        let dn = p(OptionRow { s: row.s - hs, ..row });
        let scale = row.s.max(row.k);
        let tol = |x: f64| 2e-5 * x.abs();
        prop_assert!(close((up.price - dn.price) / (2.0 * hs), g.delta, 2e-5, 1e-9), "delta");
        prop_assert!(close((up.delta - dn.delta) / (2.0 * hs), g.gamma, 2e-5, 1e-12 / row.s), "gamma from delta");
        let hv = 1e-5;
        let vu = p(OptionRow { sigma: row.sigma + hv, ..row });
        let vd = p(OptionRow { sigma: row.sigma - hv, ..row });
        prop_assert!(close((vu.price - vd.price) / (2.0 * hv), g.vega, 1e-6, 1e-9 * scale), "vega");
        prop_assert!(close((vu.delta - vd.delta) / (2.0 * hv), g.vanna, 1e-5, 1e-7), "vanna {} vs {}", (vu.delta - vd.delta) / (2.0 * hv), g.vanna);
        prop_assert!(close((vu.vega - vd.vega) / (2.0 * hv), g.volga, 1e-5, 1e-7 * scale), "volga");
        let ht = 1e-6;
        let tu = p(OptionRow { t: row.t + ht, ..row });
        let td = p(OptionRow { t: row.t - ht, ..row });
        // Theta is dV/dt in calendar time: minus the derivative in time to expiry.
        prop_assert!(close(-(tu.price - td.price) / (2.0 * ht), g.theta, 1e-5, 1e-7 * scale + tol(g.theta)), "theta");
        let hr = 1e-6;
        // BSM rho holds q; Black-76 rho holds F (the row's q mirrors r inside the builder).
        let ru = p(OptionRow { r: row.r + hr, q: if row.model == Model::Black76 { row.r + hr } else { row.q }, ..row });
        let rd = p(OptionRow { r: row.r - hr, q: if row.model == Model::Black76 { row.r - hr } else { row.q }, ..row });
        prop_assert!(close((ru.price - rd.price) / (2.0 * hr), g.rho, 1e-5, 1e-7 * scale), "rho");
    }
}

fn row(kind: OptionKind, s: f64, k: f64, t: f64, r: f64, q: f64, sigma: f64) -> OptionRow {
    OptionRow::bsm(kind, s, k, t, r, q, sigma)
}

/// Every instantiation: prices one row (in a book of one) with the full and the spot path.
fn each_lanes(r: &OptionRow) -> Vec<(&'static str, GreekValues)> {
    fn one<V: Lanes>(r: &OptionRow) -> [(&'static str, GreekValues); 2]
    where
        V::Elem: Element,
    {
        let book = BookInputs::<V::Elem>::from_rows(std::slice::from_ref(r)).unwrap();
        let mut full = GreeksColumns::for_book(&book);
        reprice_full::<V>(&book, &mut full);
        let cache = SpotCache::build::<V>(&book);
        let mut spot = GreeksColumns::for_book(&book);
        reprice_spot::<V>(&book, &cache, &mut spot).unwrap();
        [(V::NAME, full.row(0)), (V::NAME, spot.row(0))]
    }
    let mut out = vec![("price_row", greeks_one(r).unwrap())];
    out.extend(one::<f64>(r));
    out.extend(one::<f64x4>(r));
    out.extend(one::<f64x8>(r));
    out.extend(one::<f32x16>(r));
    out
}

#[test]
fn expired_options_are_worth_intrinsic_with_step_deltas() {
    use OptionKind::{Call, Put};
    for t in [0.0, -0.5, 1e-22] {
        for (kind, s, k, price, delta) in [
            (Call, 110.0, 100.0, 10.0, 1.0),
            (Call, 90.0, 100.0, 0.0, 0.0),
            (Call, 100.0, 100.0, 0.0, 0.0),
            (Put, 90.0, 100.0, 10.0, -1.0),
            (Put, 110.0, 100.0, 0.0, 0.0),
            (Put, 100.0, 100.0, 0.0, 0.0),
        ] {
            if t > 0.0 && s == k {
                // Not yet expired: at-the-money spot is in the money forward (r > q); the
                // deterministic limit follows ln(F/K), not ln(S/K).
                continue;
            }
            for (lanes, g) in each_lanes(&row(kind, s, k, t, 0.05, 0.01, 0.3)) {
                let at = format!("{lanes}: {kind:?} {s} {k} t={t}: {g:?}");
                assert!((g.price - price).abs() < 1e-5, "{at}");
                assert!((g.delta - delta).abs() < 1e-6, "{at}");
                assert_eq!([g.gamma, g.vega, g.vanna, g.volga], [0.0; 4], "{at}");
                assert!(g.theta.is_finite() && g.rho.is_finite(), "{at}");
                if t <= 0.0 {
                    // Expired: no carry left.
                    assert_eq!([g.theta, g.rho], [0.0, 0.0], "{at}");
                }
            }
        }
    }
}

#[test]
fn near_expiry_and_tiny_vol_stay_finite_and_converge() {
    // One second before expiry, at the money: large but finite gamma; price ≈ 0.4·S·σ√τ.
    let t = 1.0 / 31_536_000.0;
    let g = greeks_one(&row(OptionKind::Call, 100.0, 100.0, t, 0.0, 0.0, 0.5)).unwrap();
    assert!(g.to_array().iter().all(|x| x.is_finite()), "{g:?}");
    let approx = 0.398_942_280_4 * 100.0 * 0.5 * t.sqrt();
    assert!(
        (g.price / approx - 1.0).abs() < 1e-3,
        "{} vs {approx}",
        g.price
    );
    // σ → 0 with τ > 0: the discounted forward intrinsic, delta e^{−qτ}.
    let g = greeks_one(&row(OptionKind::Call, 100.0, 90.0, 1.0, 0.05, 0.02, 1e-8)).unwrap();
    let fwd_intrinsic = 100.0 * (-0.02f64).exp() - 90.0 * (-0.05f64).exp();
    assert!((g.price - fwd_intrinsic).abs() < 1e-9, "{g:?}");
    assert!((g.delta - (-0.02f64).exp()).abs() < 1e-12);
    assert_eq!([g.gamma, g.vega], [0.0, 0.0]);
    // Deep out of the money put: tiny, positive, accurate relative to itself (N(−x) directly).
    let g = greeks_one(&row(OptionKind::Put, 100.0, 20.0, 0.25, 0.03, 0.0, 0.2)).unwrap();
    assert!(g.price > 0.0 && g.price < 1e-50, "{g:?}");
}

#[test]
fn vol_five_negative_rates_and_q_above_r() {
    for r in [
        row(OptionKind::Call, 100.0, 100.0, 1.0, 0.0, 0.0, 5.0),
        row(OptionKind::Put, 100.0, 100.0, 1.0, -0.01, 0.0, 0.3),
        row(OptionKind::Call, 100.0, 100.0, 1.0, 0.01, 0.08, 0.25),
        OptionRow::black76(OptionKind::Put, 61_000.0, 20_000.0, 0.1, -0.005, 1.2),
    ] {
        let g = greeks_one(&r).unwrap();
        assert!(g.to_array().iter().all(|x| x.is_finite()), "{r:?} -> {g:?}");
        assert!(g.price > 0.0);
    }
    // σ = 5 for a year: the call is worth nearly the spot (N(d1) → 1, N(d2) → 0).
    let g = greeks_one(&row(OptionKind::Call, 100.0, 100.0, 1.0, 0.0, 0.0, 5.0)).unwrap();
    assert!(g.price > 98.0 && g.price < 100.0, "{g:?}");
}

#[test]
fn stale_spot_cache_is_refused() {
    let rows = [row(OptionKind::Call, 100.0, 100.0, 1.0, 0.0, 0.0, 0.3); 3];
    let mut book = BookInputs::<f64>::from_rows(&rows).unwrap();
    let cache = SpotCache::build::<f64x8>(&book);
    let mut out = GreeksColumns::for_book(&book);
    book.set_spot(0, 101.0).unwrap();
    reprice_spot::<f64x8>(&book, &cache, &mut out).unwrap();
    book.set_row(1, &row(OptionKind::Put, 100.0, 90.0, 1.0, 0.0, 0.0, 0.4))
        .unwrap();
    let err = reprice_spot::<f64x8>(&book, &cache, &mut out).unwrap_err();
    assert!(err.to_string().contains("stale"), "{err}");
    // A cache is refused for another book of the same size and generation, too.
    let other = BookInputs::<f64>::from_rows(&rows).unwrap();
    let other_cache = SpotCache::build::<f64x8>(&other);
    let fresh = BookInputs::<f64>::from_rows(&rows).unwrap();
    assert_eq!(fresh.generation(), other.generation());
    assert!(reprice_spot::<f64x8>(&fresh, &other_cache, &mut out).is_err());
}

#[test]
fn f32_greeks_sum_in_f64() {
    let rows: Vec<OptionRow> = (0..1000)
        .map(|i| {
            row(
                OptionKind::Call,
                100.0,
                80.0 + 0.04 * i as f64,
                0.5,
                0.01,
                0.0,
                0.5,
            )
        })
        .collect();
    let qty: Vec<f64> = (0..1000)
        .map(|i| if i % 2 == 0 { 3.0 } else { -2.0 })
        .collect();
    let b64 = BookInputs::<f64>::from_rows(&rows).unwrap();
    let mut g64 = GreeksColumns::for_book(&b64);
    reprice_full::<f64x8>(&b64, &mut g64);
    let b32 = BookInputs::<f32>::from_rows(&rows).unwrap();
    let mut g32 = GreeksColumns::for_book(&b32);
    reprice_full::<f32x16>(&b32, &mut g32);
    let (a, b) = (g64.weighted_sum(&qty), g32.weighted_sum(&qty));
    assert!(
        close(a.delta, b.delta, 1e-4, 1e-3),
        "{} vs {}",
        a.delta,
        b.delta
    );
    assert!(
        close(a.vega, b.vega, 1e-4, 1e-2),
        "{} vs {}",
        a.vega,
        b.vega
    );
}
