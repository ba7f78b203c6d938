//! The EVM exec path against keel-sim's node and three builders on loopback (issue #6 tests):
//! decisions raced to four endpoints with random latencies and injected faults, a restart
//! mid-run, and endpoints that only answer badly. The chain state in keel-sim decides what
//! landed (first transaction per sender and nonce), so "zero double fills" is checked against
//! the chain itself: the fills reported filled equal the transactions the chain accepted.

mod evm_common;

use std::collections::HashMap;
use std::time::Duration;

use evm_common::*;
use keel_engine::exec::FillStatus;
use keel_engine::exec::evm::exec::Refusal;
use keel_engine::exec::race::{CopyOutcome, Health};
use keel_feeds::event::Side;
use keel_tools::sim::node::{EndpointBehaviour, LatencyDist, NodeConfig};

/// Runs `n` decisions one after another (each waits for its fill; the test thread also plays
/// the signer: a reconcile reading when asked, a re-sign after every decision).
fn drive(
    exec: &mut keel_engine::exec::evm::exec::EvmExec,
    signer: &mut keel_engine::exec::evm::signer::LadderSigner,
    first_id: u64,
    n: u64,
) -> HashMap<u64, keel_engine::exec::Fill> {
    drive_reading(exec, signer, first_id, n, false)
}

/// [`drive`], with a chain reading every 20 ms or more before a re-sign when `read` (as the
/// signer thread does: the head moves on a chain with short blocks).
fn drive_reading(
    exec: &mut keel_engine::exec::evm::exec::EvmExec,
    signer: &mut keel_engine::exec::evm::signer::LadderSigner,
    first_id: u64,
    n: u64,
    read: bool,
) -> HashMap<u64, keel_engine::exec::Fill> {
    let mut fills = HashMap::new();
    let mut last_read = std::time::Instant::now();
    for id in first_id..first_id + n {
        let side = if id % 3 == 0 { Side::Sell } else { Side::Buy };
        let amount = 0.01 * (1 + id % 5) as f64;
        let _ = exec.decide(&intent(id, side, amount));
        let f = next_fill(exec, signer, Duration::from_secs(10));
        assert_eq!(f.intent_id, id, "fills come one per decision, in order");
        assert!(fills.insert(id, f).is_none(), "decision {id} filled twice");
        assert!(exec.pop_fill().is_none(), "a second fill for decision {id}");
        if read && last_read.elapsed() >= Duration::from_millis(20) {
            // Errors are injected faults: the next reading retries.
            let _ = signer.read();
            last_read = std::time::Instant::now();
        }
        signer.resign();
    }
    fills
}

fn drain(exec: &mut keel_engine::exec::evm::exec::EvmExec) {
    let t0 = std::time::Instant::now();
    while exec.race().in_flight() > 0 {
        assert!(t0.elapsed() < Duration::from_secs(5), "copies still out");
        exec.poll(Duration::from_millis(1));
    }
}

#[test]
fn ten_thousand_decisions_raced_to_four_endpoints_with_random_latencies_and_faults() {
    let mut cfg = NodeConfig {
        builders: 3,
        block_time: Duration::from_millis(100),
        seed: 42,
        ..NodeConfig::default()
    };
    let flaky = |lat: LatencyDist, error: f64, timeout: f64, reset: f64, malformed: f64| {
        EndpointBehaviour {
            latency: lat,
            error_rate: error,
            timeout_rate: timeout,
            reset_rate: reset,
            malformed_rate: malformed,
            lost_rate: 0.0,
        }
    };
    cfg.node = flaky(LatencyDist::Uniform(0, 100), 0.02, 0.0005, 0.005, 0.005);
    cfg.builder = vec![
        flaky(LatencyDist::Uniform(0, 80), 0.03, 0.0005, 0.005, 0.005),
        flaky(
            LatencyDist::LogNormal {
                median: 150.0,
                sigma: 0.8,
            },
            0.02,
            0.0,
            0.01,
            0.01,
        ),
        flaky(LatencyDist::Fixed(20), 0.05, 0.0005, 0.0, 0.01),
    ];
    let node = node(cfg);
    let routes = routes(&node);
    assert_eq!(routes.len(), 4);
    let start_nonce = pending_nonce(&node);
    let (mut signer, shelf) = signer(&routes, 1);
    first_step(&mut signer);
    let mut exec = exec(&routes, shelf, &exec_config(Duration::from_millis(60)));

    let n = 10_000;
    // Blocks every 100 ms: a decision whose bundle copy timed out is held until the head
    // passes its target block (a builder could still include it), so the chain is read as the
    // signer thread would.
    let fills = drive_reading(&mut exec, &mut signer, 1, n, true);
    drain(&mut exec);

    // Exactly one outcome per decision.
    assert_eq!(fills.len() as u64, n);
    let count = |s: FillStatus| fills.values().filter(|f| f.status == s).count() as u64;
    let filled = count(FillStatus::Filled);
    let (rejected, not_found) = (count(FillStatus::Rejected), count(FillStatus::NotFound));
    assert_eq!(filled + rejected + not_found, n, "no other status");
    // Zero double fills: the chain accepted exactly the filled decisions, one nonce each.
    let chain = node.total();
    assert_eq!(chain.accepted, filled, "chain acceptances = fills");
    assert_eq!(pending_nonce(&node), start_nonce + filled);
    for f in fills.values().filter(|f| f.status == FillStatus::Filled) {
        assert!(f.filled.abs() > 0.0 && f.filled.abs() <= 1.0, "{f:?}");
    }
    // Every outcome accounted for: per route, copies fired = outcomes counted.
    let c = exec.counters();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let refused: u64 = Refusal::ALL.iter().map(|r| c.refusals(*r)).sum();
    assert_eq!(
        load(&c.won) + load(&c.failed) + load(&c.late_fills) + load(&c.not_found) + refused,
        n
    );
    assert_eq!(load(&c.won) + load(&c.late_fills), filled);
    let mut copies = 0;
    for s in exec.route_stats() {
        let outcomes: u64 = s.outcomes.iter().sum();
        assert_eq!(
            s.fired, outcomes,
            "route {}: every copy answered or timed out",
            s.name
        );
        copies += s.fired;
    }
    assert_eq!(copies, load(&c.copies));
    let totals = exec.race().totals();
    assert_eq!(totals.late_accepts, 0, "no route accepted a second copy");
    assert_eq!(totals.won, load(&c.won));
    // Faults were injected and seen; most decisions still won.
    let errors: u64 = exec
        .route_stats()
        .iter()
        .map(|s| s.count(CopyOutcome::Error) + s.count(CopyOutcome::Timeout))
        .sum();
    let reasons: Vec<(&str, u64)> = Refusal::ALL
        .iter()
        .map(|r| (r.name(), c.refusals(*r)))
        .collect();
    assert!(errors > 100, "faults seen: {errors}");
    assert!(
        filled > n * 9 / 10,
        "filled {filled} of {n}; refusals {reasons:?}"
    );
    println!(
        "filled {filled}, rejected {rejected}, not found {not_found}, refused {reasons:?}, \
         held {}, late fills {}, copies {copies}, errors+timeouts {errors}, routes {:?}",
        load(&c.held),
        load(&c.late_fills),
        exec.route_stats()
    );
}

#[test]
fn restart_mid_run_reconciles_the_nonce_and_never_sends_a_stale_ladder() {
    let node = node(NodeConfig {
        builders: 1,
        block_time: Duration::from_millis(250),
        ..NodeConfig::default()
    });
    let routes = routes(&node);
    let cfg = exec_config(Duration::from_millis(500));

    // First run: 20 hedges, then a decision fired and the process gone before its reply.
    {
        let (mut signer, shelf) = signer(&routes, 2);
        first_step(&mut signer);
        let mut exec = exec(&routes, shelf, &cfg);
        let fills = drive(&mut exec, &mut signer, 1, 20);
        assert!(fills.values().all(|f| f.status == FillStatus::Filled));
        exec.decide(&intent(21, Side::Buy, 0.02)).unwrap();
        // Dropped here: no poll, no fill; the copies are on the wire.
    }
    std::thread::sleep(Duration::from_millis(50));
    let after_crash = pending_nonce(&node);
    assert_eq!(
        after_crash, 21,
        "the in-flight decision landed while we were down"
    );
    let accepted_before = node.total().accepted;

    // Restart: nothing is sent before the nonce is read from the chain.
    let (mut signer, shelf) = evm_common::signer(&routes, 2);
    let mut exec = evm_common::exec(&routes, shelf.clone(), &cfg);
    assert_eq!(
        exec.decide(&intent(100, Side::Buy, 0.01)),
        Err(Refusal::NonceUnknown)
    );
    assert_eq!(exec.pop_fill().unwrap().status, FillStatus::Rejected);
    let requests_before = node.total().requests;
    first_step(&mut signer);
    let first = drive(&mut exec, &mut signer, 101, 1)[&101];
    assert_eq!(first.status, FillStatus::Filled);
    assert_eq!(
        pending_nonce(&node),
        after_crash + 1,
        "the first hedge used the chain's nonce"
    );
    assert_eq!(node.total().accepted, accepted_before + 1);

    // Someone spends the next nonce behind our back (an old ladder's copy, here resent by
    // hand): the ladder signed at that nonce is stale and must never be sent.
    let stale = signer.current(after_crash + 1).unwrap();
    assert_eq!(stale.nonce, after_crash + 1);
    assert!(!stale.is_fired());
    let (status, _) = keel_feeds::net::http_request(
        &node.node_url(),
        "POST",
        Some(
            &keel_engine::exec::evm::ladder::rpc_body(1, &stale.rungs(Side::Sell)[0].tx.raw)
                .into_bytes(),
        ),
        &[("Content-Type", "application/json")],
        None,
        Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(pending_nonce(&node), after_crash + 2);
    // Before the signer has seen it, the exec path still thinks after_crash + 1 is next: a
    // decision then is refused by the chain (every copy "nonce too low"), never filled.
    let dup_before = node.total().duplicate;
    let f = drive(&mut exec, &mut signer, 102, 1)[&102];
    assert_eq!(f.status, FillStatus::Rejected, "{f:?}");
    assert!(node.total().duplicate > dup_before);
    // Once the signer has read the chain, the stale nonce is skipped for good: the next hedge
    // lands at after_crash + 2 (the chain only accepts the pending nonce).
    signer.read().unwrap();
    signer.resign();
    let accepted = node.total().accepted;
    let f = drive(&mut exec, &mut signer, 103, 1)[&103];
    assert_eq!(f.status, FillStatus::Filled, "{f:?}");
    assert_eq!(node.total().accepted, accepted + 1);
    assert_eq!(pending_nonce(&node), after_crash + 3);
    assert_eq!(exec.next_nonce(), Some(after_crash + 3));
    assert!(node.total().requests > requests_before);
    assert_eq!(exec.race().totals().late_accepts, 0);
}

#[test]
fn bad_replies_are_counted_and_mark_the_venue_degraded_never_losing_a_fill() {
    let mut cfg = NodeConfig {
        builders: 3,
        block_time: Duration::from_millis(250),
        ..NodeConfig::default()
    };
    let only = |f: fn(&mut EndpointBehaviour)| {
        let mut b = EndpointBehaviour::default();
        f(&mut b);
        b
    };
    cfg.node = EndpointBehaviour {
        latency: LatencyDist::Fixed(2_000),
        ..EndpointBehaviour::default()
    };
    cfg.builder = vec![
        only(|b| b.malformed_rate = 1.0),
        only(|b| b.error_rate = 1.0),
        only(|b| b.reset_rate = 1.0),
    ];
    let node = node(cfg);
    let routes = routes(&node);
    let (mut signer, shelf) = signer(&routes, 1);
    first_step(&mut signer);
    let mut exec = exec(&routes, shelf, &exec_config(Duration::from_millis(500)));
    let fills = drive(&mut exec, &mut signer, 1, 12);
    drain(&mut exec);
    assert!(fills.values().all(|f| f.status == FillStatus::Filled));
    assert_eq!(node.total().accepted, 12);
    let stats = exec.route_stats();
    assert_eq!(stats[0].health, Health::Up);
    assert_eq!(stats[0].count(CopyOutcome::Accepted), 12);
    for s in &stats[1..] {
        assert!(s.count(CopyOutcome::Error) >= 3, "{s:?}");
        assert_eq!(s.count(CopyOutcome::Accepted), 0, "{s:?}");
        assert_eq!(s.health, Health::Degraded, "{s:?}");
    }

    // Every route bad: every decision ends explicitly (nothing landed), none is lost.
    let mut cfg = NodeConfig {
        builders: 1,
        block_time: Duration::from_millis(250),
        ..NodeConfig::default()
    };
    cfg.builders = 2;
    cfg.builder = vec![only(|b| b.error_rate = 1.0), only(|b| b.timeout_rate = 1.0)];
    let node = evm_common::node(cfg);
    // Routes: the two bad builders only; the signer reads the chain from the node.
    let routes = evm_common::routes(&node)[1..].to_vec();
    let (mut signer, shelf) = evm_common::signer_reading(&routes, 1, &node.node_url());
    first_step(&mut signer);
    let mut exec = evm_common::exec(&routes, shelf, &exec_config(Duration::from_millis(80)));
    let fills = drive(&mut exec, &mut signer, 1, 6);
    assert_eq!(fills.len(), 6);
    assert!(
        fills
            .values()
            .all(|f| matches!(f.status, FillStatus::NotFound | FillStatus::Rejected)),
        "{fills:?}"
    );
    assert_eq!(node.total().accepted, 0);
    let stats = exec.route_stats();
    assert!(stats[0].count(CopyOutcome::Error) >= 3);
    assert_eq!(stats[0].health, Health::Degraded);
    assert!(stats[1].count(CopyOutcome::Timeout) + stats[1].count(CopyOutcome::Error) >= 1);
}

#[test]
fn the_exec_tile_turns_intents_into_fills_over_rings() {
    use keel_engine::exec::evm::exec::EvmExecTile;
    use keel_engine::pipeline::{StopFlag, Tile, ring};

    let node = node(NodeConfig {
        builders: 1,
        block_time: Duration::from_millis(250),
        ..NodeConfig::default()
    });
    let routes = routes(&node);
    let (mut signer, shelf) = signer(&routes, 4);
    first_step(&mut signer);
    let stop = StopFlag::new();
    let signer_thread = signer.spawn(stop.clone()).unwrap();
    let exec = keel_engine::exec::evm::exec::EvmExec::new(
        &routes,
        shelf.clone(),
        &exec_config(Duration::from_secs(1)),
    )
    .unwrap();
    let (mut intent_tx, intent_rx) = ring(64).unwrap();
    let (fill_tx, mut fill_rx) = ring(64).unwrap();
    let mut tile = EvmExecTile::new(exec, intent_rx, fill_tx, Duration::from_secs(5));
    tile.init().unwrap();
    let start = pending_nonce(&node);
    let mut total = 0.0;
    for id in 1..=30u64 {
        // Wait for a fresh ladder at the next nonce (the signer thread re-signs).
        let t0 = std::time::Instant::now();
        loop {
            assert!(t0.elapsed() < Duration::from_secs(10), "no fresh ladder");
            tile.step();
            let n = tile.exec().next_nonce().unwrap_or(start);
            if shelf
                .ladder(n)
                .as_ref()
                .is_some_and(|l| l.nonce == n && !l.is_fired())
            {
                break;
            }
        }
        let side = if id % 2 == 0 { Side::Buy } else { Side::Sell };
        intent_tx.push(intent(id, side, 0.05)).unwrap();
        let f = loop {
            assert!(t0.elapsed() < Duration::from_secs(10), "no fill");
            tile.step();
            if let Some(f) = fill_rx.pop() {
                break f;
            }
        };
        assert_eq!(f.intent_id, id);
        assert_eq!(f.status, FillStatus::Filled, "{f:?}");
        // 0.05 is nearest to the 0.04 rung (0.01·2^2), never above the 1.0 limit.
        assert!((f.filled.abs() - 0.04).abs() < 1e-12, "{f:?}");
        assert_eq!(f.filled > 0.0, side == Side::Buy);
        total += f.filled;
    }
    tile.teardown();
    stop.stop();
    signer_thread.join().unwrap();
    assert!(fill_rx.pop().is_none(), "one fill per intent");
    assert_eq!(pending_nonce(&node), start + 30);
    assert_eq!(node.total().accepted, 30);
    assert!(total.abs() < 1e-9, "15 buys and 15 sells of 0.04");
}

/// Polls `exec` (the test thread also plays the signer: a reading and a re-sign every 10 ms)
/// until `want` fills came out or `limit` passed.
fn fills_within(
    exec: &mut keel_engine::exec::evm::exec::EvmExec,
    signer: &mut keel_engine::exec::evm::signer::LadderSigner,
    want: usize,
    limit: Duration,
) -> Vec<keel_engine::exec::Fill> {
    let t0 = std::time::Instant::now();
    let mut out = Vec::new();
    let mut last_read = t0;
    while out.len() < want && t0.elapsed() < limit {
        exec.poll(Duration::from_micros(200));
        while let Some(f) = exec.pop_fill() {
            out.push(f);
        }
        if last_read.elapsed() >= Duration::from_millis(10) {
            last_read = std::time::Instant::now();
            if signer.read().is_ok() {
                signer.resign();
            }
        }
    }
    out
}

#[test]
fn a_bundle_a_builder_accepts_and_never_includes_is_undone_and_its_nonce_reused() {
    let mut cfg = NodeConfig {
        builders: 2,
        block_time: Duration::from_millis(100),
        ..NodeConfig::default()
    };
    // builder1 answers every valid bundle with its hash and never includes it; builder2 is
    // honest but 3 ms slower, so builder1's acceptance always wins the race.
    cfg.builder = vec![
        EndpointBehaviour {
            lost_rate: 1.0,
            ..EndpointBehaviour::default()
        },
        EndpointBehaviour {
            latency: LatencyDist::Fixed(3_000),
            ..EndpointBehaviour::default()
        },
    ];
    let node = node(cfg);
    let urls = node.builder_urls();
    let builder = |u: &str| {
        keel_engine::exec::evm::ladder::RouteTarget::parse(
            keel_engine::exec::evm::ladder::RouteKind::Builder,
            u,
        )
        .unwrap()
    };
    let ecfg = exec_config(Duration::from_millis(500));

    // The losing builder alone: accepted (a fill, in flight to inclusion), then its target
    // block passes without the nonce moving: undone, and the nonce is used again.
    let lone = vec![builder(&urls[0])];
    let (mut signer, shelf) = signer_reading(&lone, 2, &node.node_url());
    first_step(&mut signer);
    let mut exec = evm_common::exec(&lone, shelf, &ecfg);
    exec.decide(&intent(1, Side::Buy, 0.02)).unwrap();
    let fills = fills_within(&mut exec, &mut signer, 2, Duration::from_secs(20));
    assert_eq!(fills.len(), 2, "a fill and its undoing: {fills:?}");
    assert_eq!(
        (fills[0].status, fills[0].filled),
        (FillStatus::Filled, 0.02)
    );
    assert_eq!(fills[1].intent_id, 1);
    assert_eq!(
        (fills[1].status, fills[1].filled, fills[1].price),
        (FillStatus::Lost, -0.02, fills[0].price),
        "the earlier fill taken back, at its price"
    );
    let c = exec.counters();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!((load(&c.lost), load(&c.confirmed)), (1, 0));
    assert_eq!(exec.next_nonce(), Some(0), "the nonce was never spent");
    assert_eq!(exec.watched(), 0);
    assert!(node.accepted_txs().is_empty(), "nothing reached the chain");
    assert!(node.stats(1).unwrap().bundles_lost >= 1);
    // The next decision goes out at the same nonce (a fresh ladder), and is undone again.
    first_step(&mut signer);
    exec.decide(&intent(2, Side::Sell, 0.01)).unwrap();
    let fills = fills_within(&mut exec, &mut signer, 2, Duration::from_secs(20));
    assert_eq!(
        fills
            .iter()
            .map(|f| (f.status, f.filled))
            .collect::<Vec<_>>(),
        vec![(FillStatus::Filled, -0.01), (FillStatus::Lost, 0.01)]
    );
    assert_eq!(exec.next_nonce(), Some(0));
    exec.shutdown();

    // With the honest builder beside it: the losing builder still answers first (the fill;
    // like a real builder it answers whatever the mempool holds), the honest one's copy of
    // the same transaction lands, and the chain's nonce confirms it.
    let both = vec![builder(&urls[0]), builder(&urls[1])];
    let (mut signer, shelf) = signer_reading(&both, 2, &node.node_url());
    first_step(&mut signer);
    let mut exec = evm_common::exec(&both, shelf, &ecfg);
    exec.decide(&intent(3, Side::Buy, 0.01)).unwrap();
    let fills = fills_within(&mut exec, &mut signer, 2, Duration::from_secs(3));
    assert_eq!(fills.len(), 1, "one fill, never undone: {fills:?}");
    assert_eq!(fills[0].status, FillStatus::Filled);
    let c = exec.counters();
    assert_eq!((load(&c.lost), load(&c.confirmed)), (0, 1));
    assert_eq!(
        exec.route_stats()[0].count(CopyOutcome::Accepted),
        1,
        "builder1 won the race"
    );
    assert_eq!(node.accepted_txs().len(), 1);
    assert_eq!(exec.next_nonce(), Some(1));
    assert_eq!(pending_nonce(&node), 1);
}
