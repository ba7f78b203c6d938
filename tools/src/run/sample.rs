//! The sample book `keel run` holds on the simulated venue: a short strangle, a calendar spread
//! and a few dozen other positions across the listed chain, chosen by strike rank (no market
//! data needed) and deterministic for a seed.

use keel_feeds::instrument::{Instrument, InstrumentKind, OptionRight};

/// Positions as (instrument name, quantity in contracts).
pub fn sample_book(instruments: &[Instrument], underlying: &str, seed: u64) -> Vec<(String, f64)> {
    let now_ms = instruments
        .iter()
        .filter(|i| i.kind == InstrumentKind::Option)
        .map(|i| i.expiry_ms)
        .min()
        .unwrap_or(0);
    let opts: Vec<&Instrument> = instruments
        .iter()
        .filter(|i| {
            i.kind == InstrumentKind::Option
                && i.base_currency.eq_ignore_ascii_case(underlying)
                && i.strike.is_finite()
        })
        .collect();
    let mut expiries: Vec<u64> = opts.iter().map(|i| i.expiry_ms).collect();
    expiries.sort_unstable();
    expiries.dedup();
    if expiries.is_empty() {
        return Vec::new();
    }
    let day = 86_400_000u64;
    // Expiry nearest `days` after the first listed one.
    let near = |days: u64| {
        *expiries
            .iter()
            .min_by_key(|&&e| e.abs_diff(now_ms + days * day))
            .unwrap_or(&expiries[0])
    };
    let strikes = |exp: u64| {
        let mut k: Vec<f64> = opts
            .iter()
            .filter(|i| i.expiry_ms == exp)
            .map(|i| i.strike)
            .collect();
        k.sort_by(f64::total_cmp);
        k.dedup();
        k
    };
    let find = |exp: u64, k: f64, right: OptionRight| {
        opts.iter()
            .find(|i| i.expiry_ms == exp && i.strike == k && i.right == Some(right))
            .map(|i| i.name.clone())
    };
    let mut book: Vec<(String, f64)> = Vec::new();
    let mut add = |name: Option<String>, q: f64| {
        if let Some(n) = name {
            match book.iter_mut().find(|(b, _)| *b == n) {
                Some(e) => e.1 += q,
                None => book.push((n, q)),
            }
        }
    };
    // Short strangle, about a month out: 10 puts at the 30th strike percentile, 10 calls at the
    // 70th.
    let m = near(30);
    let ks = strikes(m);
    if !ks.is_empty() {
        add(find(m, ks[ks.len() * 3 / 10], OptionRight::Put), -10.0);
        add(find(m, ks[ks.len() * 7 / 10], OptionRight::Call), -10.0);
    }
    // Calendar spread at the money: short a week, long about three months.
    let (a, b) = (near(7), near(90));
    for (exp, q) in [(a, -5.0), (b, 5.0)] {
        let ks = strikes(exp);
        if !ks.is_empty() {
            add(find(exp, ks[ks.len() / 2], OptionRight::Call), q);
        }
    }
    // A few dozen others, spread over the chain (xorshift on the seed).
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..36 {
        let i = opts[(next() % opts.len() as u64) as usize];
        let lots = (next() % 41) as f64 / 10.0 - 2.0; // −2.0 .. +2.0 in 0.1 steps
        if lots != 0.0 {
            add(Some(i.name.clone()), lots);
        }
    }
    book.retain(|(_, q)| q.abs() > 1e-9);
    book
}
