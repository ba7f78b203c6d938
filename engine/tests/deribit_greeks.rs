//! The kernel reproduces a venue's own published Greeks from the same message: Deribit's ticker
//! for BTC-26JUN26-100000-C (shared/fixtures/venues/deribit/ticker_option.json; worked example
//! and expected values in shared/fixtures/venues/README.md). Deribit prices inverse options with
//! Black-76 on the same-expiry forward (`underlying_price`), r = 0, σ = mark_iv/100, and
//! publishes USD Greeks: delta N(d1), vega per vol point, theta per calendar day, rho as
//! K·T·N(d2)/100; the mark is the USD price over the forward, in BTC.

use keel_engine::greeks::{OptionKind, OptionRow, greeks_one, to_coin};
use serde_json::Value;

/// 2026-06-26 08:00:00 UTC, the expiry of BTC-26JUN26 (Deribit expiries are at 08:00 UTC).
const EXPIRY_MS: f64 = 1_782_460_800_000.0;
/// ACT/365 year in milliseconds (DESIGN.md units).
const YEAR_MS: f64 = 31_536_000_000.0;

fn ticker() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/venues/deribit/ticker_option.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn field(d: &Value, k: &str) -> f64 {
    d[k].as_f64().unwrap_or_else(|| panic!("ticker field {k}"))
}

#[test]
fn reproduces_deribit_published_greeks() {
    let msg = ticker();
    let d = &msg["params"]["data"];
    assert_eq!(d["instrument_name"], "BTC-26JUN26-100000-C");
    let f = field(d, "underlying_price");
    let t = (EXPIRY_MS - field(d, "timestamp")) / YEAR_MS;
    let sigma = field(d, "mark_iv") / 100.0;
    let row = OptionRow::black76(OptionKind::Call, f, 100_000.0, t, 0.0, sigma);
    let g = greeks_one(&row).unwrap();

    // Expected values from the fixtures README (and the message's own `greeks`).
    let close = |got: f64, want: f64, tol: f64, what: &str| {
        assert!(
            (got - want).abs() <= tol,
            "{what}: got {got}, Deribit {want}"
        );
    };
    close(g.delta, 0.711384, 5e-7, "delta N(d1)");
    close(g.vega / 100.0, 389.29, 0.01, "vega per vol point");
    close(g.theta / 365.0, -25.129, 0.001, "theta per day");
    let published = &d["greeks"];
    close(
        g.delta,
        published["delta"].as_f64().unwrap(),
        5e-6,
        "published delta",
    );
    close(
        g.vega / 100.0,
        published["vega"].as_f64().unwrap(),
        1e-3,
        "published vega",
    );
    // Deribit's rho is K·T·N(d2)/100 (the BSM rho of the forward at r = 0): our BSM row on the
    // forward with r = q = 0 is the same model and gives exactly that.
    let bsm = greeks_one(&OptionRow::bsm(
        OptionKind::Call,
        f,
        100_000.0,
        t,
        0.0,
        0.0,
        sigma,
    ))
    .unwrap();
    assert!((bsm.price - g.price).abs() < 1e-9 * f, "same model");
    close(bsm.rho / 100.0, 524.79, 0.01, "rho");

    // The mark in BTC: the USD price over the forward, through the inverse conversion.
    let coin = to_coin(&g, f);
    close(coin.price, 0.24248, 5e-6, "mark in BTC");
    close(
        coin.price,
        field(d, "mark_price"),
        1e-4,
        "published mark_price",
    );
    // The coin delta is N(d1) minus the premium in coin (HEDGING.md, inverse options).
    close(coin.delta, g.delta - coin.price, 1e-15, "coin delta");
}
