//! The handshake response parser on arbitrary bytes: never panics, and a response it accepts
//! ends within the bytes given.
#![no_main]

use keel_feeds::net::ws::ClientHandshake;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let hs = ClientHandshake::with_key([7; 16]);
    if let Ok(Some(n)) = hs.parse_response(data) {
        assert!(n <= data.len());
    }
});
