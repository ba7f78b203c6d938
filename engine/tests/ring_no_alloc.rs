//! DESIGN.md "Rules of the hot path": no heap allocation after start-up. A counting global
//! allocator proves that pushing, popping, conflating, flushing, waiting and recording latencies
//! allocate nothing once the ring, the conflator and the histograms are built.

use keel_engine::pipeline::{Conflator, Telemetry, TickTrace, WaitStrategy, Waiter, ring};
use keel_feeds::{EventBody, InstrumentId, MarketEvent, Venue};

mod support;

#[global_allocator]
static GLOBAL: support::Counting = support::Counting;

use support::allocations_during;

#[test]
fn the_counter_counts() {
    let n = allocations_during(|| drop(std::hint::black_box(Vec::<u64>::with_capacity(8))));
    assert!(n >= 1);
}

#[test]
fn the_hot_path_does_not_allocate() {
    let (mut p, mut c) = ring::<MarketEvent>(64).unwrap();
    let (mut tp, mut tc) = ring::<TickTrace>(64).unwrap();
    let mut conflator = Conflator::<MarketEvent, 32>::new();
    let mut telemetry = Telemetry::new();
    let mut waiter = Waiter::new(WaitStrategy::Spin);
    let ev = quote();

    let n = allocations_during(|| {
        for i in 0..10_000u64 {
            // The feed tile's pattern: flush, push, offer on Full.
            conflator.flush_into(&mut p);
            if conflator.pending() > 0 || p.push(ev).is_err() {
                conflator.offer(i % 40, ev);
            }
            if i % 3 == 0 {
                let _ = c.pop();
            }
            p.len();
            c.len();
            let t = TickTrace {
                recv_ns: 1_000 + i,
                parsed_ns: 1_100 + i,
                dequeued_ns: 1_200 + i,
                priced_ns: 1_300 + 2 * i,
                decided_ns: 1_400 + 3 * i,
                sent_ns: 1_500 + 4 * i,
                venue_ns: 900 + i,
            };
            tp.push_spin(t, &mut waiter).unwrap();
            if let Some(t) = tc.pop() {
                telemetry.record(&t);
            }
            waiter.idle();
            waiter.reset();
        }
    });
    assert_eq!(n, 0, "allocations on the hot path");
    assert!(
        conflator.conflated() + conflator.dropped() > 0,
        "the test reached conflation"
    );
    assert!(p.full_count() > 0, "the test reached a full ring");
}

/// A market event to copy around; its contents do not matter to the ring.
fn quote() -> MarketEvent {
    MarketEvent {
        exchange_ts_ns: 1,
        recv_ts_ns: 2,
        instrument: InstrumentId::NONE,
        venue: Venue::Deribit,
        conn: 0,
        body: EventBody::Quote {
            bid: 1.0,
            bid_size: 2.0,
            ask: 3.0,
            ask_size: 4.0,
        },
    }
}
