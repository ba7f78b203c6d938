//! Tiles talking through rings, in the two topologies: dedicated (one thread per tile) and fused
//! (both tiles stepped by one thread). Every value must arrive once, in order, whatever the
//! scheduling on a 2-core machine. No timings are asserted.

use keel_engine::pipeline::{
    Consumer, Full, PinPolicy, Producer, StopFlag, Tile, TileSpec, WaitStrategy, ring, spawn,
};

const N: u64 = 200_000;

/// Pushes 0..N, retrying a value the ring had no room for on the next step.
struct Source {
    out: Producer<u64>,
    next: u64,
    retry: Option<u64>,
}

impl Tile for Source {
    fn name(&self) -> &'static str {
        "feed"
    }
    fn step(&mut self) -> bool {
        let v = match self.retry.take() {
            Some(v) => v,
            None if self.next < N => {
                self.next += 1;
                self.next - 1
            }
            None => return false,
        };
        match self.out.push(v) {
            Ok(()) => true,
            Err(Full(v)) => {
                self.retry = Some(v);
                false
            }
        }
    }
}

/// Checks order and stops the pipeline once it has seen N values.
struct Sink {
    input: Consumer<u64>,
    expect: u64,
    stop: StopFlag,
}

impl Tile for Sink {
    fn name(&self) -> &'static str {
        "pricer"
    }
    fn step(&mut self) -> bool {
        let mut worked = false;
        while let Some(v) = self.input.pop() {
            assert_eq!(v, self.expect, "lost, duplicated or reordered");
            self.expect += 1;
            worked = true;
        }
        if self.expect == N {
            self.stop.stop();
        }
        worked
    }
}

fn tiles(stop: &StopFlag) -> (Box<dyn Tile>, Box<dyn Tile>) {
    let (out, input) = ring(256).unwrap();
    (
        Box::new(Source {
            out,
            next: 0,
            retry: None,
        }),
        Box::new(Sink {
            input,
            expect: 0,
            stop: stop.clone(),
        }),
    )
}

fn spec(wait: WaitStrategy) -> TileSpec {
    TileSpec { core: None, wait }
}

#[test]
fn dedicated_threads_deliver_everything_in_order() {
    for wait in [WaitStrategy::SpinYield, WaitStrategy::Park] {
        let stop = StopFlag::new();
        let (source, sink) = tiles(&stop);
        let a = spawn(vec![source], spec(wait), PinPolicy::WarnOnly, stop.clone()).unwrap();
        let b = spawn(vec![sink], spec(wait), PinPolicy::WarnOnly, stop.clone()).unwrap();
        assert_eq!(a.join().unwrap()[0].name(), "feed");
        assert_eq!(b.join().unwrap()[0].name(), "pricer");
    }
}

#[test]
fn fused_tiles_deliver_everything_in_order() {
    let stop = StopFlag::new();
    let (source, sink) = tiles(&stop);
    let t = spawn(
        vec![source, sink],
        spec(WaitStrategy::Spin),
        PinPolicy::WarnOnly,
        stop.clone(),
    )
    .unwrap();
    assert_eq!(t.names(), "feed+pricer");
    assert_eq!(t.join().unwrap().len(), 2);
}
