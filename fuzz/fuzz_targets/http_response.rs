//! The keep-alive client's HTTP/1.1 response framing on arbitrary bytes: never panics; a framed
//! response stays inside the bytes given; the same bytes framed incrementally (a prefix first,
//! as when a read returns part of a response) never yield a different response.
#![no_main]

use keel_feeds::net::frame_response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    for eof in [false, true] {
        let mut whole = bytes.to_vec();
        let full = frame_response(&mut whole, eof);
        if let Ok(Some(r)) = &full {
            assert!(r.consumed <= bytes.len());
            assert!(r.body.0 <= r.body.1 && r.body.1 <= r.consumed);
        }
        // A prefix (not at end of stream) is incomplete, an error, or the same response.
        let cut = usize::from(cut).min(bytes.len());
        let mut prefix = bytes[..cut].to_vec();
        if let (Ok(Some(p)), Ok(Some(f))) = (frame_response(&mut prefix, false), &full) {
            assert_eq!(p.status, f.status);
            assert_eq!(p.consumed, f.consumed);
            assert_eq!(prefix[p.body.0..p.body.1], whole[f.body.0..f.body.1]);
        }
    }
});
