//! `keel run --alt-hedge evm` against a node it did not start: keel-sim's mock node and builders
//! started here (loopback, port 0), `keel` run as a child process with its keys in the child's
//! environment (`--evm-key-env`, `--evm-flashbots-key-env`), stopped with SIGINT once the chain
//! has seen enough, its `--json` summary compared with what the chain recorded. The book runs on
//! the embedded keel-sim. No timing is asserted beyond generous deadlines (2-core CI).

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keel_engine::exec::evm::{Bytes, Eip1559Fields, EvmSigner, U256, parse};
use keel_feeds::net::http::http_request;
use keel_tools::sim::node::{EndpointBehaviour, LatencyDist, NodeConfig, NodeHandle, NodeSim};
use serde_json::Value;

const KEY: &str = "0x8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f";
const FB_KEY: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
const KEY_ENV: &str = "KEEL_TEST_EVM_KEY";
const FB_ENV: &str = "KEEL_TEST_EVM_FB_KEY";

fn node(builders: usize, cfg: impl FnOnce(&mut NodeConfig)) -> NodeHandle {
    let mut c = NodeConfig {
        builders,
        block_time: Duration::from_millis(200),
        // 1 gwei: gas for 200,000 units at 1.1 gwei is 0.66 USD at 3000 USD/ETH, so every
        // rung of 0.01 coin and more is cheaper on chain than on Deribit at 50 bp.
        base_fee: 1_000_000_000,
        seed: 11,
        ..NodeConfig::default()
    };
    cfg(&mut c);
    NodeSim::start(c).expect("mock node")
}

/// `keel run` on the embedded book venue, hedging on chain at `node` (cheapest by far).
fn spawn_keel(node: &NodeHandle, builders: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keel"));
    cmd.args([
        "run",
        "--json",
        "--status-every",
        "0",
        "--dev",
        "--live",
        "--sim-options",
        "300",
        "--delta-band",
        "0.005",
        "--deribit-rate-limit",
        "50",
        "--deribit-fee-bps",
        "50",
        "--alt-hedge",
        "evm",
        "--evm-fee-bps",
        "0",
        "--evm-lot",
        "0.01",
        "--evm-priority-fee-gwei",
        "0.1",
        "--rpc-url",
        &node.node_url(),
        "--evm-ws-url",
        &node.ws_url(),
        "--evm-chain-id",
        "1",
        "--evm-eth-usd",
        "3000",
        "--evm-key-env",
        KEY_ENV,
        "--evm-router",
        "0x00000000000000000000000000000000000dec0d",
        "--evm-calldata-buy",
        &format!("0x7ff36ab5{}", "00".repeat(32)),
        "--evm-calldata-sell",
        &format!("0x18cbafe5{}", "00".repeat(32)),
    ]);
    if builders {
        for b in node.builder_urls() {
            cmd.args(["--builder-url", &b]);
        }
        cmd.args(["--evm-flashbots-key-env", FB_ENV]);
    }
    cmd.env(KEY_ENV, KEY)
        .env(FB_ENV, FB_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn keel")
}

/// Waits until the chain accepted `n` transactions (or the child ended), then SIGINT (the
/// run's Ctrl-C: it stops and prints its summary) and the summary.
fn stop_when_accepted(mut child: Child, node: &NodeHandle, n: usize) -> Value {
    let t0 = Instant::now();
    while node.accepted_txs().len() < n {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("keel ended early ({status}): {err}");
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("timed out waiting for {n} accepted transactions");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(ok.success());
    let out = child.wait_with_output().expect("keel's output");
    assert!(
        out.status.success(),
        "keel failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "summary is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn send_raw(url: &str, raw: &[u8]) -> Value {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0x{}"]}}"#,
        alloy_hex(raw)
    );
    let (_, reply) = http_request(
        url,
        "POST",
        Some(body.as_bytes()),
        &[("Content-Type", "application/json")],
        None,
        Duration::from_secs(10),
    )
    .expect("eth_sendRawTransaction");
    serde_json::from_slice(&reply).expect("JSON reply")
}

fn nonces_in_order(node: &NodeHandle, address: &str) -> usize {
    let txs = node.accepted_txs();
    for (i, t) in txs.iter().enumerate() {
        assert_eq!(t.from.to_checksum(None), address);
        assert_eq!(
            t.nonce, i as u64,
            "one transaction per nonce, in order: {txs:?}"
        );
    }
    txs.len()
}

#[test]
fn a_restart_reads_the_nonce_from_the_chain_and_never_sends_a_stale_ladder() {
    // One RPC route only: every copy that reaches the chain is the only one of its decision,
    // so a ladder signed at a stale nonce would show as a refusal ("nonce too low").
    let node = node(0, |_| {});
    let key = EvmSigner::from_hex(KEY, "test key").expect("key");
    let address = key.address().to_checksum(None);

    let first = stop_when_accepted(spawn_keel(&node, false), &node, 2);
    let e1 = &first["evm"];
    assert_eq!(e1["nonce_start"], 0, "{e1}");
    assert_eq!(e1["address"], address.as_str());
    let landed1 = nonces_in_order(&node, &address) as u64;
    assert_eq!(e1["nonce_end"], landed1, "{e1}");
    assert_eq!(
        e1["won"].as_u64().unwrap() + e1["late_fills"].as_u64().unwrap(),
        landed1
    );

    // Between the runs another process spends a nonce of the same key.
    let fields = Eip1559Fields {
        chain_id: 1,
        nonce: landed1,
        max_priority_fee_per_gas: 1_000_000_000,
        max_fee_per_gas: 100_000_000_000,
        gas_limit: 21_000,
        to: Some(parse::address("to", "0x00000000000000000000000000000000000dec0d").unwrap()),
        value: U256::ZERO,
        data: Bytes::new(),
        access_list: Default::default(),
    };
    let tx = key.sign_eip1559(&fields).expect("sign");
    let reply = send_raw(&node.node_url(), &tx.raw);
    assert!(reply.get("result").is_some(), "{reply}");

    let second = stop_when_accepted(spawn_keel(&node, false), &node, landed1 as usize + 2);
    let e2 = &second["evm"];
    assert_eq!(
        e2["nonce_start"],
        landed1 + 1,
        "the second run read the nonce from the chain: {e2}"
    );
    assert_eq!(e2["failed"], 0, "no decision refused by the chain: {e2}");
    let landed = nonces_in_order(&node, &address) as u64;
    assert_eq!(e2["nonce_end"], landed, "{e2}");
    let t = node.total();
    assert_eq!(
        (t.duplicate, t.rejected),
        (0, 0),
        "no copy at a spent or wrong nonce ever reached the chain"
    );
}

#[test]
fn bad_replies_are_counted_the_route_degraded_and_the_run_goes_on() {
    // The builder answers at once and badly (a broken status line or a JSON body cut short);
    // the node answers after 30 ms and well: every decision lands through the node.
    let node = node(1, |c| {
        c.node = EndpointBehaviour {
            latency: LatencyDist::Fixed(30_000),
            ..EndpointBehaviour::default()
        };
        c.builder = vec![EndpointBehaviour {
            malformed_rate: 1.0,
            ..EndpointBehaviour::default()
        }];
    });
    let key = EvmSigner::from_hex(KEY, "test key").expect("key");
    let address = key.address().to_checksum(None);
    // A malformed reply closes the builder's connection: copies skip it while it reconnects,
    // so it sees about half of the decisions.
    let s = stop_when_accepted(spawn_keel(&node, true), &node, 10);
    let e = &s["evm"];
    let builder = &e["routes"][1];
    assert!(
        builder["route"].as_str().unwrap().starts_with("builder"),
        "{e}"
    );
    let bad = builder["outcomes"]["error"].as_u64().unwrap();
    assert!(bad >= 3, "the bad replies are counted: {e}");
    assert_eq!(builder["outcomes"]["accepted"], 0, "{e}");
    assert!(
        e["routes"][0]["outcomes"]["accepted"].as_u64().unwrap() >= 10,
        "{e}"
    );
    assert_eq!(builder["health"], "degraded", "{e}");
    // A bad reply leaves the copy's fate open: the decision is settled from the chain's nonce
    // (landed: a late fill) and nothing is sent twice.
    let landed = nonces_in_order(&node, &address) as u64;
    assert_eq!(e["nonce_end"], landed, "{e}");
    assert_eq!(s["risk_state"], "active", "{s}");
    assert_eq!(node.total().rejected, 0);
}

fn alloy_hex(raw: &[u8]) -> String {
    raw.iter().map(|b| format!("{b:02x}")).collect()
}
