//! `keel run --alt-hedge evm` end to end, in-process on loopback: the embedded keel-sim (Deribit
//! format) for the book, keel-sim's mock Ethereum node and builders for the chain. The chain is
//! the judge: what it accepted is compared with what the run reports. No timings are asserted
//! beyond generous deadlines (2-core CI). Runs against an external node with keys from the
//! environment (restart, bad replies) are in `tools/tests/run_evm_node.rs`, which starts `keel`
//! as a child process so that the variables are the child's.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use keel_tools::run::start;
use keel_tools::run_config::RunConfig;

fn base() -> RunConfig {
    let mut cfg = RunConfig::defaults();
    cfg.sim.options = 300;
    cfg.delta_band = 0.005;
    cfg.deribit.rate_limit = Some(50);
    cfg.status_every = Duration::ZERO;
    cfg.dev = true;
    cfg.alt_hedges = vec![("evm".into(), String::new())];
    // Deribit's fee high, the DEX's zero, gas at 0.01 gwei (0.006 USD a transaction): the
    // chain is the cheaper venue for every rung.
    cfg.deribit.fee_bps = 50.0;
    cfg.evm.fee_bps = 0.0;
    cfg.evm.lot = 0.01;
    cfg.evm.sim_base_fee_gwei = 0.01;
    cfg.evm.priority_fee_gwei = 0.0;
    cfg.max_hedges_per_min = 600;
    cfg.evm.sim_block_time = Duration::from_millis(200);
    cfg
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn hedges_on_chain_when_cheapest_with_one_transaction_per_nonce() {
    let cfg = base();
    let run = start(&cfg, None).expect("starts");
    assert!(
        run.banner().contains("embedded mock node"),
        "{}",
        run.banner()
    );
    let node = run.evm_node().expect("the embedded mock node");
    wait_for(
        "three transactions on chain",
        Duration::from_secs(90),
        || node.accepted_txs().len() >= 3,
    );
    let s = run.finish().expect("clean shutdown");
    let e = s.evm.as_ref().expect("an on-chain report");
    let mock = e.mock.as_ref().expect("the embedded mock chain's record");
    assert_eq!(e.target, "embedded mock node");
    assert_eq!(e.nonce_start, Some(0), "a fresh key starts at nonce 0");
    // The chain is the judge: one transaction per nonce, all from the run's key, at consecutive
    // nonces from the one read at start, as many as the decisions reported landed (a decision
    // whose answers were cut short by the end of the run is held: it may have landed too).
    let landed = e.won + e.late_fills;
    assert!(landed >= 3, "{e:?}");
    let accepted = mock.accepted.len() as u64;
    assert!(accepted >= landed && accepted <= landed + e.held, "{e:?}");
    let address = e.address.clone().expect("the sender");
    for (i, (from, nonce)) in mock.accepted.iter().enumerate() {
        assert_eq!(from, &address);
        assert_eq!(
            *nonce, i as u64,
            "nonces in order, none twice: {:?}",
            mock.accepted
        );
    }
    assert_eq!(
        e.nonce_end,
        Some(accepted),
        "the chain's pending nonce at the end"
    );
    // Every decision was raced to the node and both builders; the builders checked every
    // bundle's X-Flashbots-Signature (a bad one is refused before the chain sees it).
    assert_eq!(e.routes.len(), 3);
    assert_eq!(
        e.disconnects, 0,
        "no route dropped (closing them at the end is not a drop)"
    );
    assert!(e.routes.iter().all(|r| r.fired >= 1), "{e:?}");
    assert!(mock.builder_requests >= 2, "{mock:?}");
    assert_eq!(
        mock.unauthorized, 0,
        "every bundle carried a valid Flashbots header"
    );
    // The losing copies are the racing rule's void copies (or bundles for a block that passed
    // while they travelled), never a second transaction.
    let copies: u64 = e.routes.iter().map(|r| r.fired).sum();
    assert!(
        mock.duplicate + mock.rejected + accepted <= copies,
        "{e:?} {mock:?}"
    );
    // The book counted the on-chain fills; the venue report and the pricer agree.
    // (An intent decided just before the stop may not have reached the exec tile.)
    assert!(e.decisions <= s.chain_venue_hedges, "{e:?}");
    assert!(s.chain_cost_per_coin.is_finite() && s.chain_cost_per_coin > 0.0);
    assert_eq!(s.risk_state, "active");
    // Send→ack latency per route, from the race table.
    assert!(
        e.routes
            .iter()
            .any(|r| r.p50_ns > 0 && r.p99_ns >= r.p50_ns)
    );
    let json = keel_tools::run::summary_json(&s);
    assert_eq!(json["evm"]["hedges"], e.decisions);
    assert_eq!(json["evm"]["nonce_start"], 0);
    assert!(json["evm"]["refusals"]["nonce_busy"].is_u64());
    assert!(json["evm"]["routes"][0]["send_to_ack_ns"]["p99"].is_u64());
}

#[test]
fn hedges_on_deribit_when_gas_is_expensive() {
    let mut cfg = base();
    // 100,000 gwei × 200,000 gas = 20 ETH a transaction: never worth it for these sizes.
    cfg.evm.sim_base_fee_gwei = 100_000.0;
    let run = start(&cfg, None).expect("starts");
    let p = run.pricer();
    wait_for("two hedges filled", Duration::from_secs(90), || {
        p.fills.load(Ordering::Relaxed) >= 2
    });
    // The chain candidate was priced (a chain head arrived), and lost.
    wait_for("the on-chain venue priced", Duration::from_secs(60), || {
        p.chain_cost_per_coin.get().is_finite()
    });
    let s = run.finish().expect("clean shutdown");
    let e = s.evm.as_ref().expect("an on-chain report");
    assert_eq!(s.chain_venue_hedges, 0, "{s:?}");
    assert_eq!(e.decisions, 0);
    assert!(
        s.fills >= 2 && s.orders_sent >= 2,
        "hedged on Deribit: {s:?}"
    );
    assert!(
        s.chain_cost_per_coin > 10_000.0,
        "gas dominates: {}",
        s.chain_cost_per_coin
    );
    let mock = e.mock.as_ref().expect("mock record");
    assert!(mock.accepted.is_empty());
    // Start-up still read the nonce and signed the first ladders.
    assert_eq!(e.nonce_start, Some(0));
    assert!(e.ladders_signed >= 2);
}
