//! The WebSocket frame decoder on arbitrary server bytes, fed in arbitrary splits: it must never
//! panic, never hand out a payload larger than the limit, and decode the same messages however
//! the bytes are split into reads.
#![no_main]

use keel_feeds::net::ws::{FrameDecoder, Message};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 1 << 16;

/// Decodes everything `chunks` yields; returns (message kinds and lengths, the error if any).
fn decode(chunks: &[&[u8]]) -> (Vec<(u8, usize)>, Option<String>) {
    let mut d = FrameDecoder::new(MAX);
    let mut seen = Vec::new();
    for chunk in chunks {
        d.push(chunk);
        loop {
            match d.next_message() {
                Ok(Some(m)) => {
                    let (kind, len) = match m {
                        Message::Text(p) => (1, p.len()),
                        Message::Binary(p) => (2, p.len()),
                        Message::Ping(p) => (9, p.len()),
                        Message::Pong(p) => (10, p.len()),
                        Message::Close(_) => (8, 0),
                    };
                    assert!(len <= MAX, "payload over the limit");
                    seen.push((kind, len));
                }
                Ok(None) => break,
                Err(e) => return (seen, Some(format!("{e:?}"))),
            }
        }
    }
    (seen, None)
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    // The first byte chooses a split size; the rest is the stream.
    let split = 1 + data[0] as usize % 17;
    let bytes = &data[1..];
    let whole = decode(&[bytes]);
    let pieces: Vec<&[u8]> = bytes.chunks(split).collect();
    let split_result = decode(&pieces);
    assert_eq!(
        whole, split_result,
        "decoding depends on how the bytes were split"
    );
});
