//! Sizes and alignments of every message that crosses a pipeline ring (STYLE.md: "assert
//! `size_of`/`align_of` of every ring message"). A change here changes cache-line traffic per
//! hop: make it on purpose.

use keel_engine::pipeline::TickTrace;
use keel_feeds::event::MarketEvent;
use std::mem::{align_of, size_of};

#[test]
fn tick_trace_is_seven_timestamps() {
    // Six local stage stamps and the venue's time of the tick.
    assert_eq!(size_of::<TickTrace>(), 56);
    assert_eq!(align_of::<TickTrace>(), 8);
}

#[test]
fn market_event_is_two_cache_lines() {
    assert_eq!(size_of::<MarketEvent>(), 128);
    assert_eq!(align_of::<MarketEvent>(), 64);
}
