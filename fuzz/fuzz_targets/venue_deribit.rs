//! The deribit parser on arbitrary payloads: never panics, a rejected message emits nothing
//! (messages are all-or-nothing), and the ticker fast path (after learning the fixture's shape)
//! gives the same answer and events as the general path alone — the first time, and a second
//! time, when the input has taught its own template (so that stage 1, the template match and
//! the sixteen-at-once number conversion, reads the very bytes the walk accepted). Build with
//! `RUSTFLAGS="-C target-cpu=native"` on an AVX-512 machine: stage 1 is compiled only there.
#![no_main]

use keel_feeds::session::register;
use keel_feeds::venues::VenueParser;
use keel_feeds::{Instruments, Venue};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn registry() -> &'static Instruments {
    static REG: OnceLock<Instruments> = OnceLock::new();
    REG.get_or_init(|| {
        let mut reg = Instruments::new();
        for name in NAMES {
            register(&mut reg, VENUE, name, false);
        }
        reg
    })
}

const VENUE: Venue = Venue::Deribit;
const NAMES: [&str; 4] = [
    "BTC-PERPETUAL",
    "BTC-26JUN26-100000-C",
    "btc_usd",
    "BTC-27DEC24-100000-C",
];
#[allow(non_snake_case)]
fn PARSER(r: &Instruments) -> impl VenueParser {
    (|r: &Instruments| keel_feeds::venues::DeribitParser::new(r))(r)
}

/// The ticker fixture, compact: parsed first so that the fast path has learned its shape and
/// mutations of it reach both fast stages.
const TICKER: &[u8] = br#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-26JUN26-100000-C.100ms","data":{"timestamp":1752057345721,"state":"open","stats":{"high":null,"low":null,"price_change":null,"volume":0,"volume_usd":0},"greeks":{"delta":0.71138,"gamma":1e-05,"vega":389.29255,"theta":-25.13021,"rho":524.77921},"index_price":108827.5,"instrument_name":"BTC-26JUN26-100000-C","last_price":0.247,"settlement_price":0.24231149,"min_price":0.1975,"max_price":0.3015,"open_interest":1.2,"mark_price":0.2425,"best_bid_price":0.2395,"mark_iv":45.43,"ask_iv":46.18,"bid_iv":44.54,"underlying_price":116086.34,"underlying_index":"BTC-26JUN26","best_ask_price":0.245,"interest_rate":0,"estimated_delivery_price":108827.5,"best_ask_amount":2,"best_bid_amount":2}}}"#;

fuzz_target!(|data: &[u8]| {
    let mut parser = PARSER(registry());
    let _ = parser.parse(TICKER, 0, &mut |_| {});
    let mut emitted = Vec::new();
    let res = parser.parse(data, 1, &mut |e| emitted.push(e));
    if res.is_err() {
        assert!(emitted.is_empty(), "a rejected message emitted events");
    }
    // The ticker fast path answers exactly as the general path does.
    let mut general = keel_feeds::venues::DeribitParser::new(registry());
    let mut expected = Vec::new();
    let want = general.parse_general(data, 1, &mut |e| expected.push(e));
    assert_eq!(format!("{res:?}"), format!("{want:?}"), "fast and general paths differ");
    assert_eq!(format!("{emitted:?}"), format!("{expected:?}"), "events differ");
    // Again: through the shape the first parse may have learned from this input.
    let mut again = Vec::new();
    let res2 = parser.parse(data, 1, &mut |e| again.push(e));
    let mut expected2 = Vec::new();
    let want2 = general.parse_general(data, 1, &mut |e| expected2.push(e));
    assert_eq!(format!("{res2:?}"), format!("{want2:?}"), "fast and general paths differ (again)");
    assert_eq!(format!("{again:?}"), format!("{expected2:?}"), "events differ (again)");
    // The parser stays usable after any input.
    let _ = parser.parse(b"{}", 2, &mut |_| {});
});
