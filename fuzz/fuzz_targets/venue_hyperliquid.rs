//! The hyperliquid parser (l2Book) on arbitrary payloads: never panics, and a rejected message emits nothing
//! (messages are all-or-nothing).
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

const VENUE: Venue = Venue::Hyperliquid;
const NAMES: [&str; 2] = ["BTC", "ETH"];
#[allow(non_snake_case)]
fn PARSER(r: &Instruments) -> impl VenueParser {
    (|r: &Instruments| keel_feeds::venues::HyperliquidParser::new(r))(r)
}

fuzz_target!(|data: &[u8]| {
    let mut parser = PARSER(registry());
    let mut emitted = 0usize;
    let res = parser.parse(data, 1, &mut |_| emitted += 1);
    if res.is_err() {
        assert_eq!(emitted, 0, "a rejected message emitted events");
    }
    // The parser stays usable after any input.
    let _ = parser.parse(b"{}", 2, &mut |_| {});
});
