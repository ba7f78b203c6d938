//! keel-sim's mock JSON-RPC node and builders, driven by Keel's keep-alive HTTP client
//! (keel_feeds::net::HttpPool) with transactions signed by the independent Python eth-account
//! library (tests/py/eth_sign.py; .ci/run installs it): acceptance once per (sender, nonce)
//! across the node and the builders, geth's refusals, the Flashbots signature check, nonce
//! counts, each injected fault class, determinism for a seed, latency that never blocks
//! another endpoint, and malformed requests.
//!
//! Without eth-account these tests fail, saying how to install it; they never skip.

mod py_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keel_engine::exec::evm::{EvmSigner, FLASHBOTS_SIGNATURE_HEADER, FlashbotsSigner};
use keel_feeds::net::{BackoffConfig, HttpEvent, HttpPool, Jitter, KeepAliveConfig, RequestError};
use keel_tools::sim::node::{EndpointBehaviour, LatencyDist, NodeConfig, NodeHandle, NodeSim};
use serde_json::{Value, json};

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";
const KEY_ADDRESS: &str = "0x14791697260E4c9A71f18484C9f997B308e59325";
const REPUTATION_KEY: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
const TIMEOUT: Duration = Duration::from_secs(15);

/// Signs `(chain_id, nonce)` transfers with eth-account: (raw hex, hash hex) each.
fn eth_account_sign(cases: &[(u64, u64)]) -> Vec<(String, String)> {
    let request = json!({"op": "sign", "cases": cases.iter().map(|&(chain_id, nonce)| json!({
        "key": KEY,
        "tx": {
            "chain_id": chain_id, "nonce": nonce,
            "to": "0xd9e1459a7a482635700cbc20bbaf52d495ab9c96",
            "value": "1000", "data": "0x", "gas_limit": 21000,
            "max_fee_per_gas": "30000000000", "max_priority_fee_per_gas": "1000000000",
        }
    })).collect::<Vec<_>>()});
    let v = py_common::python_json("eth_sign.py", &request, "eth-account");
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["address"], KEY_ADDRESS);
            (
                r["raw"].as_str().unwrap().to_owned(),
                r["hash"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A blocking JSON-RPC caller over the keep-alive pool (one connection per endpoint).
struct Rpc {
    pool: HttpPool,
    fb: FlashbotsSigner,
}

#[derive(Debug)]
enum Outcome {
    Reply(u16, Value),
    Body(u16, Vec<u8>),
    Failed(RequestError),
}

impl Rpc {
    fn new(urls: &[String]) -> Rpc {
        let mut pool = HttpPool::new().unwrap();
        for url in urls {
            let mut cfg = KeepAliveConfig::new(url).unwrap();
            cfg.request_timeout = Duration::from_millis(1500);
            cfg.backoff = BackoffConfig {
                base: Duration::from_millis(10),
                cap: Duration::from_millis(50),
                jitter: Jitter::Full,
                reset_after: Duration::from_secs(60),
            };
            pool.add(cfg).unwrap();
        }
        assert!(
            pool.warm_up(TIMEOUT, &mut |_| {}).unwrap(),
            "connections warm"
        );
        Rpc {
            pool,
            fb: FlashbotsSigner::new(EvmSigner::from_hex(REPUTATION_KEY, "test").unwrap()),
        }
    }

    fn request(body: &str, auth: Option<&str>) -> Vec<u8> {
        let auth = auth.map_or(String::new(), |a| {
            format!("{FLASHBOTS_SIGNATURE_HEADER}: {a}\r\n")
        });
        format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// Sends `requests` (connection, bytes) at once, then waits for every outcome.
    fn many(&mut self, requests: &[(usize, Vec<u8>)]) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = (0..requests.len()).map(|_| None).collect();
        let mut keys = Vec::new();
        let on = |ev: HttpEvent<'_>, keys: &[(usize, u64)], outcomes: &mut [Option<Outcome>]| {
            let (conn, seq, o) = match ev {
                HttpEvent::Response(r) => (
                    r.conn,
                    r.seq,
                    match serde_json::from_slice(r.body) {
                        Ok(v) => Outcome::Reply(r.status, v),
                        Err(_) => Outcome::Body(r.status, r.body.to_vec()),
                    },
                ),
                HttpEvent::Failed {
                    conn, seq, error, ..
                } => (conn, seq, Outcome::Failed(error)),
                _ => return,
            };
            if let Some(i) = keys.iter().position(|&k| k == (conn, seq)) {
                outcomes[i] = Some(o);
            }
        };
        for (conn, bytes) in requests {
            let mut sink = |_: HttpEvent<'_>| {};
            let start = Instant::now();
            let seq = loop {
                match self.pool.send(*conn, bytes, &mut sink) {
                    Ok(seq) => break seq,
                    Err(e) => {
                        // Reconnecting after a fault: wait until warm again.
                        assert!(start.elapsed() < TIMEOUT, "send: {e}");
                        self.pool
                            .run_once(Duration::from_millis(10), &mut sink)
                            .unwrap();
                    }
                }
            };
            keys.push((*conn, seq));
        }
        let start = Instant::now();
        while outcomes.iter().any(Option::is_none) {
            assert!(start.elapsed() < TIMEOUT, "no outcome: {outcomes:?}");
            self.pool
                .run_once(Duration::from_millis(10), &mut |ev| {
                    on(ev, &keys, &mut outcomes)
                })
                .unwrap();
        }
        outcomes.into_iter().map(Option::unwrap).collect()
    }

    fn call(&mut self, conn: usize, method: &str, params: Value) -> Outcome {
        let body =
            json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string();
        let auth = (conn > 0).then(|| self.fb.header_value(body.as_bytes()).unwrap());
        self.many(&[(conn, Rpc::request(&body, auth.as_deref()))])
            .pop()
            .unwrap()
    }

    fn ok(&mut self, conn: usize, method: &str, params: Value) -> Value {
        match self.call(conn, method, params) {
            Outcome::Reply(200, v) if v.get("result").is_some() => v["result"].clone(),
            o => panic!("{method} on {conn}: {o:?}"),
        }
    }

    fn err(&mut self, conn: usize, method: &str, params: Value) -> (u16, i64, String) {
        match self.call(conn, method, params) {
            Outcome::Reply(status, v) if v.get("error").is_some() => (
                status,
                v["error"]["code"].as_i64().unwrap(),
                v["error"]["message"].as_str().unwrap().to_owned(),
            ),
            o => panic!("{method} on {conn}: expected an error, got {o:?}"),
        }
    }
}

fn start(cfg: NodeConfig) -> (NodeHandle, Rpc) {
    let node = NodeSim::start(cfg).unwrap();
    let mut urls = vec![node.node_url()];
    urls.extend(node.builder_urls());
    let rpc = Rpc::new(&urls);
    (node, rpc)
}

fn quiet() -> NodeConfig {
    NodeConfig {
        block_time: Duration::from_secs(600),
        ..NodeConfig::default()
    }
}

#[test]
fn one_acceptance_per_nonce_across_node_and_builders() {
    let signed = eth_account_sign(&[(1, 0), (1, 1), (5, 2), (1, 2), (1, 7)]);
    let (node, mut rpc) = start(quiet());
    let count =
        |rpc: &mut Rpc, tag: &str| rpc.ok(0, "eth_getTransactionCount", json!([KEY_ADDRESS, tag]));
    assert_eq!(rpc.ok(0, "eth_chainId", json!([])), "0x1");
    assert_eq!(rpc.ok(1, "eth_blockNumber", json!([])), "0x1312d00");
    assert_eq!(count(&mut rpc, "pending"), "0x0");

    // Nonce 0 at the node: accepted, its hash is eth-account's.
    let (raw0, hash0) = &signed[0];
    assert_eq!(rpc.ok(0, "eth_sendRawTransaction", json!([raw0])), *hash0);
    assert_eq!(count(&mut rpc, "pending"), "0x1");
    assert_eq!(count(&mut rpc, "latest"), "0x0");
    // Its copy in a bundle at builder 1: the nonce is spent.
    let (_, code, msg) = rpc.err(
        1,
        "eth_sendBundle",
        json!([{"txs": [raw0], "blockNumber": "0x1312d01"}]),
    );
    assert_eq!((code, msg.as_str()), (-32000, "already known"));
    // And at builder 2 as a raw transaction.
    let (_, code, _) = rpc.err(2, "eth_sendRawTransaction", json!([raw0]));
    assert_eq!(code, -32000);
    // A wrong chain id, a nonce gap.
    let (_, code, msg) = rpc.err(0, "eth_sendRawTransaction", json!([signed[2].0]));
    assert_eq!(
        (code, msg.as_str()),
        (-32000, "invalid chain id for signer: have 5 want 1")
    );
    let (_, _, msg) = rpc.err(0, "eth_sendRawTransaction", json!([signed[4].0]));
    assert!(msg.starts_with("nonce too high"), "{msg}");

    // Bundles: a bad signature and a missing one are refused with 403; a good one lands.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_sendBundle",
        "params": [{"txs": [signed[1].0], "blockNumber": "0x1312d01"}]})
    .to_string();
    let wrong = rpc.fb.header_value(b"another body").unwrap();
    let good = rpc.fb.header_value(body.as_bytes()).unwrap();
    let out = rpc.many(&[
        (1, Rpc::request(&body, Some(&wrong))),
        (1, Rpc::request(&body, None)),
        (2, Rpc::request(&body, Some(&good))),
    ]);
    for (o, text) in out[..2]
        .iter()
        .zip(["error in signature check 0x", "missing X-Flashbots"])
    {
        assert!(
            matches!(o, Outcome::Reply(403, v) if v["error"]["code"] == -32600
                && v["error"]["message"].as_str().is_some_and(|m| m.starts_with(text))),
            "{o:?}"
        );
    }
    assert!(
        matches!(&out[2], Outcome::Reply(200, v) if v["result"]["bundleHash"].as_str().is_some_and(|h| h.len() == 66)),
        "{:?}",
        out[2]
    );
    assert_eq!(count(&mut rpc, "pending"), "0x2");

    // The race: the same bytes at nonce 2 to the node and both builders at once.
    let raw2 = &signed[3].0;
    let raw_body =
        json!({"jsonrpc": "2.0", "id": 2, "method": "eth_sendRawTransaction", "params": [raw2]})
            .to_string();
    let bundle_body = json!({"jsonrpc": "2.0", "id": 3, "method": "eth_sendBundle",
        "params": [{"txs": [raw2], "blockNumber": "0x1312d01"}]})
    .to_string();
    let fb = |b: &str| rpc.fb.header_value(b.as_bytes()).unwrap();
    let (a1, a2) = (fb(&bundle_body), fb(&raw_body));
    let out = rpc.many(&[
        (0, Rpc::request(&raw_body, None)),
        (1, Rpc::request(&bundle_body, Some(&a1))),
        (2, Rpc::request(&raw_body, Some(&a2))),
    ]);
    let wins = out
        .iter()
        .filter(|o| matches!(o, Outcome::Reply(200, v) if v.get("result").is_some()))
        .count();
    assert_eq!(wins, 1, "exactly one acceptance: {out:?}");
    assert_eq!(count(&mut rpc, "pending"), "0x3");

    let t = node.total();
    assert_eq!(
        (t.accepted, t.duplicate, t.unauthorized),
        (3, 4, 2),
        "{t:?}"
    );
    assert_eq!(t.rejected, 2);
    let n = node.stats(0).unwrap();
    assert_eq!(
        n.connections, 1,
        "the client kept one connection to the node"
    );
    drop(rpc);
}

#[test]
fn blocks_include_accepted_transactions() {
    let signed = eth_account_sign(&[(1, 0)]);
    let (node, mut rpc) = start(NodeConfig {
        block_time: Duration::from_millis(100),
        builders: 0,
        ..NodeConfig::default()
    });
    let hash = rpc.ok(0, "eth_sendRawTransaction", json!([signed[0].0]));
    let start = Instant::now();
    loop {
        let r = rpc.ok(0, "eth_getTransactionReceipt", json!([hash]));
        if !r.is_null() {
            assert_eq!(r["status"], "0x1");
            assert_eq!(r["from"], KEY_ADDRESS);
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "never mined");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        rpc.ok(0, "eth_getTransactionCount", json!([KEY_ADDRESS, "latest"])),
        "0x1"
    );
    assert!(node.block_number() > 20_000_000);
}

fn faulty(b: EndpointBehaviour, seed: u64) -> NodeConfig {
    let mut cfg = quiet();
    cfg.builders = 0;
    cfg.seed = seed;
    cfg.set_all(b);
    cfg
}

#[test]
fn each_fault_class() {
    let call =
        json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).to_string();
    let req = Rpc::request(&call, None);

    let (node, mut rpc) = start(faulty(
        EndpointBehaviour {
            error_rate: 1.0,
            ..Default::default()
        },
        1,
    ));
    let o = rpc.many(&[(0, req.clone())]);
    assert!(
        matches!(&o[0], Outcome::Reply(503, v) if v["error"]["code"] == -32603),
        "{o:?}"
    );
    assert_eq!(node.stats(0).unwrap().fault_errors, 1);

    let (node, mut rpc) = start(faulty(
        EndpointBehaviour {
            timeout_rate: 1.0,
            ..Default::default()
        },
        1,
    ));
    let o = rpc.many(&[(0, req.clone())]);
    assert!(
        matches!(o[0], Outcome::Failed(RequestError::Timeout)),
        "{o:?}"
    );
    assert_eq!(node.stats(0).unwrap().fault_timeouts, 1);

    let (node, mut rpc) = start(faulty(
        EndpointBehaviour {
            reset_rate: 1.0,
            ..Default::default()
        },
        1,
    ));
    let o = rpc.many(&[(0, req.clone())]);
    assert!(
        matches!(o[0], Outcome::Failed(RequestError::ConnectionLost)),
        "{o:?}"
    );
    assert_eq!(node.stats(0).unwrap().fault_resets, 1);

    let (node, mut rpc) = start(faulty(
        EndpointBehaviour {
            malformed_rate: 1.0,
            ..Default::default()
        },
        1,
    ));
    let mut kinds = std::collections::BTreeSet::new();
    for _ in 0..12 {
        match &rpc.many(&[(0, req.clone())])[0] {
            Outcome::Failed(RequestError::Malformed) => kinds.insert("status line"),
            Outcome::Body(200, b) => {
                assert!(serde_json::from_slice::<Value>(b).is_err());
                kinds.insert("cut JSON")
            }
            o => panic!("{o:?}"),
        };
    }
    assert_eq!(kinds.len(), 2, "both malformed shapes: {kinds:?}");
    assert_eq!(node.stats(0).unwrap().fault_malformed, 12);
}

#[test]
fn faults_are_deterministic_for_a_seed() {
    let behaviour = EndpointBehaviour {
        error_rate: 0.3,
        malformed_rate: 0.3,
        latency: LatencyDist::Uniform(0, 200),
        ..Default::default()
    };
    let call =
        json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).to_string();
    let run = |seed| {
        let (_node, mut rpc) = start(faulty(behaviour, seed));
        (0..24)
            .map(|_| match &rpc.many(&[(0, Rpc::request(&call, None))])[0] {
                Outcome::Reply(s, _) | Outcome::Body(s, _) => format!("{s}"),
                Outcome::Failed(e) => format!("{e:?}"),
            })
            .collect::<Vec<_>>()
    };
    let a = run(42);
    assert_eq!(a, run(42));
    assert!(
        a.iter().any(|s| s == "200") && a.iter().any(|s| s == "503"),
        "{a:?}"
    );
    assert_ne!(a, run(43));
}

#[test]
fn a_slow_builder_never_delays_the_node() {
    let mut cfg = quiet();
    cfg.builders = 1;
    cfg.builder = vec![EndpointBehaviour {
        latency: LatencyDist::Fixed(1_000_000),
        ..Default::default()
    }];
    let (_node, mut rpc) = start(cfg);
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).to_string();
    let auth = rpc.fb.header_value(body.as_bytes()).unwrap();
    rpc.pool
        .send(1, &Rpc::request(&body, Some(&auth)), &mut |_| {})
        .unwrap();
    rpc.pool
        .send(0, &Rpc::request(&body, None), &mut |_| {})
        .unwrap();
    let mut order = Vec::new();
    let start = Instant::now();
    while order.len() < 2 {
        assert!(start.elapsed() < TIMEOUT);
        rpc.pool
            .run_once(Duration::from_millis(10), &mut |ev| {
                if let HttpEvent::Response(r) = ev {
                    order.push(r.conn);
                }
            })
            .unwrap();
    }
    assert_eq!(
        order,
        [0, 1],
        "the node answered while the builder held its reply"
    );
}

#[test]
fn malformed_requests_get_errors_not_panics() {
    let node = NodeSim::start(quiet()).unwrap();
    let addr = node.addr(0).unwrap();
    let exchange = |raw: &[u8]| {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.write_all(raw).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // Until the head and its Content-Length body are in (or the server closes).
        let complete = |out: &[u8]| {
            let text = String::from_utf8_lossy(out);
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                return false;
            };
            head.lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|n| n.trim().parse::<usize>().ok())
                .is_some_and(|n| body.len() >= n)
        };
        while !complete(&out) {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let r = exchange(b"GARBAGE\x01\x02 / HTTP/1.1\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("-32700"), "{r}");
    let r = exchange(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n{oops");
    assert!(r.starts_with("HTTP/1.1 200") && r.contains("-32700"), "{r}");
    let post = |body: &str| {
        format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let r = exchange(post(r#"{"jsonrpc":"2.0","id":1,"method":"eth_nope"}"#).as_bytes());
    assert!(r.contains("-32601") && r.contains("eth_nope"), "{r}");
    let r =
        exchange(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 411"), "{r}");
    let r = exchange(
        post(r#"{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":[1]}"#)
            .as_bytes(),
    );
    assert!(r.contains("-32602"), "{r}");
    // A batch.
    let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber"}]"#;
    let r = exchange(
        format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{batch}",
            batch.len()
        )
        .as_bytes(),
    );
    let body: Value = serde_json::from_str(r.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body[0]["result"], "0x1");
    assert_eq!(body[1]["id"], 2);
    assert!(node.stats(0).unwrap().bad_requests >= 2);
}

#[test]
fn the_keel_sim_binary_serves_the_node_and_builders() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--options",
            "20",
            "--node-port",
            "0",
            "--builders",
            "1",
            "--chain-id",
            "5",
            "--duration",
            "30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let _guard = Kill(child);
    let mut urls = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("node: ") {
            urls.push(u.to_owned());
        }
        if let Some(u) = line.strip_prefix("builder1: ") {
            urls.push(u.to_owned());
            break;
        }
    }
    assert_eq!(urls.len(), 2, "{urls:?}");
    let mut rpc = Rpc::new(&urls);
    assert_eq!(rpc.ok(0, "eth_chainId", json!([])), "0x5");
    assert_eq!(rpc.ok(1, "eth_chainId", json!([])), "0x5");
}

/// Twenty nonces, each fired at the node and both builders at once (pipelined behind each
/// other, with random latency on every endpoint): exactly one acceptance per nonce, the other
/// copies duplicates, and the pending nonce count is twenty.
#[test]
fn racing_copies_land_once_per_nonce() {
    use keel_engine::exec::evm::{Address, Bytes, Eip1559Fields, U256};
    let mut cfg = quiet();
    cfg.set_all(EndpointBehaviour {
        latency: LatencyDist::Uniform(0, 3_000),
        ..Default::default()
    });
    let (node, mut rpc) = start(cfg);
    let key = EvmSigner::from_hex(KEY, "test").unwrap();
    let mut requests = Vec::new();
    for nonce in 0..20u64 {
        let raw = key
            .sign_eip1559(&Eip1559Fields {
                chain_id: 1,
                nonce,
                max_priority_fee_per_gas: 1_000_000_000,
                max_fee_per_gas: 30_000_000_000,
                gas_limit: 21_000,
                to: Some(Address::repeat_byte(7)),
                value: U256::from(nonce),
                data: Bytes::new(),
                access_list: Default::default(),
            })
            .unwrap()
            .raw;
        let hex = Bytes::from(raw).to_string(); // 0x-hex
        let raw_body = json!({"jsonrpc": "2.0", "id": nonce, "method": "eth_sendRawTransaction", "params": [hex]}).to_string();
        let bundle = json!({"jsonrpc": "2.0", "id": nonce, "method": "eth_sendBundle",
            "params": [{"txs": [hex], "blockNumber": "0x1312d01"}]})
        .to_string();
        let auth_raw = rpc.fb.header_value(raw_body.as_bytes()).unwrap();
        let auth_bundle = rpc.fb.header_value(bundle.as_bytes()).unwrap();
        // Alternate who goes first so every endpoint wins some.
        let mut three = vec![
            (0, Rpc::request(&raw_body, None)),
            (1, Rpc::request(&bundle, Some(&auth_bundle))),
            (2, Rpc::request(&raw_body, Some(&auth_raw))),
        ];
        three.rotate_left(nonce as usize % 3);
        requests.extend(three);
    }
    // Nonces must arrive in order at the chain for all to land: send nonce by nonce.
    let mut wins = 0;
    for burst in requests.chunks(3) {
        let out = rpc.many(burst);
        let ok = out
            .iter()
            .filter(|o| matches!(o, Outcome::Reply(200, v) if v.get("result").is_some()))
            .count();
        assert_eq!(ok, 1, "{out:?}");
        wins += ok;
    }
    assert_eq!(wins, 20);
    assert_eq!(
        rpc.ok(
            0,
            "eth_getTransactionCount",
            json!([KEY_ADDRESS, "pending"])
        ),
        "0x14"
    );
    let t = node.total();
    assert_eq!((t.accepted, t.duplicate, t.rejected), (20, 40, 0), "{t:?}");
}

/// Under every fault at once, each request sent by the keep-alive client gets exactly one
/// outcome (a response or a typed failure), and the client keeps reconnecting.
#[test]
fn every_request_gets_exactly_one_outcome_under_faults() {
    let mut cfg = quiet();
    cfg.builders = 0;
    cfg.seed = 5;
    cfg.set_all(EndpointBehaviour {
        latency: LatencyDist::Uniform(0, 500),
        error_rate: 0.1,
        timeout_rate: 0.03,
        reset_rate: 0.1,
        malformed_rate: 0.1,
        lost_rate: 0.0,
    });
    let node = NodeSim::start(cfg).unwrap();
    let mut pool = HttpPool::new().unwrap();
    let mut kc = KeepAliveConfig::new(&node.node_url()).unwrap();
    kc.request_timeout = Duration::from_millis(300);
    kc.backoff = BackoffConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(20),
        jitter: Jitter::Full,
        reset_after: Duration::from_secs(60),
    };
    pool.add(kc).unwrap();
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).to_string();
    let req = Rpc::request(&body, None);
    let mut outcomes = std::collections::HashMap::<u64, u32>::new();
    let (mut responses, mut failures, mut sent) = (0u64, 0u64, 0u64);
    let mut on = |ev: HttpEvent<'_>| match ev {
        HttpEvent::Response(r) => {
            *outcomes.entry(r.seq).or_default() += 1;
            responses += 1;
        }
        HttpEvent::Failed { seq, .. } => {
            *outcomes.entry(seq).or_default() += 1;
            failures += 1;
        }
        _ => {}
    };
    let start = Instant::now();
    while sent < 150 {
        assert!(start.elapsed() < Duration::from_secs(60), "stuck at {sent}");
        // Up to three in flight.
        if pool.conn(0).unwrap().in_flight() < 3 && pool.send(0, &req, &mut on).is_ok() {
            sent += 1;
            continue;
        }
        pool.run_once(Duration::from_millis(5), &mut on).unwrap();
    }
    while pool.conn(0).unwrap().in_flight() > 0 {
        assert!(start.elapsed() < Duration::from_secs(60));
        pool.run_once(Duration::from_millis(5), &mut on).unwrap();
    }
    assert_eq!(responses + failures, 150);
    assert_eq!(outcomes.len(), 150);
    assert!(
        outcomes.values().all(|&n| n == 1),
        "a request had two outcomes"
    );
    let s = node.stats(0).unwrap();
    assert!(
        s.fault_errors > 0 && s.fault_resets > 0 && s.fault_malformed > 0 && s.fault_timeouts > 0,
        "{s:?}"
    );
    assert!(pool.conn(0).unwrap().stats().opens > 5);
}

#[test]
fn absurd_content_length_is_refused_not_a_panic() {
    let node = NodeSim::start(quiet()).unwrap();
    let mut s = TcpStream::connect(node.addr(0).unwrap()).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n{}")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    // The server is still there.
    let (_n, mut rpc) = (0, Rpc::new(&[node.node_url()]));
    assert_eq!(rpc.ok(0, "eth_chainId", json!([])), "0x1");
}

/// Hostile input: seeded random bytes and mutations of valid requests (HTTP and JSON-RPC),
/// each on its own connection, at the node and a builder; afterwards both still answer (a
/// panic would have killed the server thread).
#[test]
fn hostile_requests_never_kill_the_server() {
    let node = NodeSim::start(quiet()).unwrap();
    let signed = EvmSigner::from_hex(KEY, "t").unwrap();
    let raw = signed
        .sign_eip1559(&keel_engine::exec::evm::Eip1559Fields {
            chain_id: 1,
            nonce: 0,
            max_priority_fee_per_gas: 1,
            max_fee_per_gas: 20_000_000_000,
            gas_limit: 21_000,
            to: None,
            value: Default::default(),
            data: Default::default(),
            access_list: Default::default(),
        })
        .unwrap()
        .raw;
    let hex = keel_engine::exec::evm::Bytes::from(raw).to_string();
    let seeds = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [hex]}).to_string(),
        json!({"jsonrpc": "2.0", "id": 1, "method": "eth_sendBundle", "params": [{"txs": [hex], "blockNumber": "0xffffffffffffffff"}]}).to_string(),
        json!({"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionCount", "params": [KEY_ADDRESS, "pending"]}).to_string(),
        json!([{"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionReceipt", "params": ["0x00"]}]).to_string(),
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..300 {
        let ep = i % 2;
        let mut body = seeds[i % seeds.len()].clone().into_bytes();
        for _ in 0..(next() % 6) {
            let at = (next() as usize) % body.len();
            match next() % 3 {
                0 => body[at] = next() as u8,
                1 => body.truncate(at),
                _ => body.insert(at, b"\"[]{},:0x\\"[(next() % 10) as usize]),
            }
            if body.is_empty() {
                body.push(b'{');
            }
        }
        let head = match next() % 4 {
            0 => format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()),
            1 => format!(
                "POST / HTTP/1.1\r\nX-Flashbots-Signature: {}:0x{}\r\nContent-Length: {}\r\n\r\n",
                KEY_ADDRESS,
                "ab".repeat((next() % 70) as usize),
                body.len()
            ),
            2 => format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", next() % 64),
            _ => String::from_utf8_lossy(
                &(0..(next() % 40)).map(|_| next() as u8).collect::<Vec<_>>(),
            )
            .into_owned(),
        };
        let mut s = TcpStream::connect(node.addr(ep).unwrap()).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&body);
        let _ = s.read(&mut [0u8; 1024]);
    }
    let mut urls = vec![node.node_url()];
    urls.extend(node.builder_urls());
    let mut rpc = Rpc::new(&urls);
    assert_eq!(rpc.ok(0, "eth_chainId", json!([])), "0x1");
    assert_eq!(rpc.ok(1, "eth_chainId", json!([])), "0x1");
}

/// Ten requests pipelined on one connection, each held for a random latency: the replies
/// come back in request order (the server never lets a short delay overtake a long one).
#[test]
fn pipelined_replies_keep_request_order_under_random_latency() {
    let mut cfg = quiet();
    cfg.builders = 0;
    cfg.set_all(EndpointBehaviour {
        latency: LatencyDist::Uniform(0, 20_000),
        ..Default::default()
    });
    let (node, mut rpc) = start(cfg);
    let requests: Vec<(usize, Vec<u8>)> = (0..10)
        .map(|id| {
            let body =
                json!({"jsonrpc": "2.0", "id": id, "method": "eth_blockNumber", "params": []})
                    .to_string();
            (0, Rpc::request(&body, None))
        })
        .collect();
    let out = rpc.many(&requests);
    let ids: Vec<i64> = out
        .iter()
        .map(|o| match o {
            Outcome::Reply(200, v) => v["id"].as_i64().unwrap(),
            o => panic!("{o:?}"),
        })
        .collect();
    assert_eq!(ids, (0..10).collect::<Vec<_>>());
    assert_eq!(node.stats(0).unwrap().connections, 1);
}

/// With a funded set, a tampered signature (one byte of r flipped) recovers to a stranger or to
/// nobody: refused, and the real sender's nonce is untouched; the untampered bytes land.
#[test]
fn a_tampered_signature_is_refused() {
    let signed = eth_account_sign(&[(1, 0)]);
    let mut cfg = quiet();
    cfg.funded = vec![KEY_ADDRESS.parse().unwrap()];
    let (node, mut rpc) = start(cfg);
    let good = &signed[0].0;
    let mut bytes: Vec<u8> = (2..good.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&good[i..i + 2], 16).unwrap())
        .collect();
    let at = bytes.len() - 40; // inside r (the last 66 bytes are 0xa0 r 0xa0 s)
    bytes[at] ^= 0x01;
    let tampered: String = std::iter::once("0x".to_string())
        .chain(bytes.iter().map(|b| format!("{b:02x}")))
        .collect();
    let (_, code, msg) = rpc.err(0, "eth_sendRawTransaction", json!([tampered]));
    assert_eq!(code, -32000);
    assert!(
        msg.starts_with("insufficient funds") || msg.contains("signature"),
        "{msg}"
    );
    assert_eq!(
        rpc.ok(
            0,
            "eth_getTransactionCount",
            json!([KEY_ADDRESS, "pending"])
        ),
        "0x0"
    );
    assert_eq!(
        rpc.ok(0, "eth_sendRawTransaction", json!([good])),
        signed[0].1
    );
    assert_eq!(node.stats(0).unwrap().rejected, 1);
}

/// The node's newHeads WebSocket: a subscription id, then each mined block's head, in the
/// format Keel's own Ethereum parser reads (base fee as configured, half the gas limit used).
#[test]
fn new_heads_stream_every_block_over_websocket() {
    use keel_feeds::event::EventBody;
    use keel_feeds::venues::EthereumParser;
    let node = keel_tools::sim::node::NodeSim::start(keel_tools::sim::node::NodeConfig {
        block_time: Duration::from_millis(50),
        base_fee: 7_000_000_000,
        ..keel_tools::sim::node::NodeConfig::default()
    })
    .unwrap();
    let (mut ws, _) = tungstenite::connect(node.ws_url()).expect("connects");
    ws.send(tungstenite::Message::Text(
        r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#.into(),
    ))
    .unwrap();
    let mut parser = EthereumParser::new();
    let mut heads = Vec::new();
    let mut replies = 0;
    while heads.len() < 3 {
        let msg = ws.read().expect("a message");
        let text = msg.into_text().unwrap();
        let v: Value = serde_json::from_str(text.as_str()).unwrap();
        if v.get("id").is_some() {
            assert!(v["result"].as_str().unwrap().starts_with("0x"), "{v}");
            replies += 1;
            continue;
        }
        parser
            .parse(text.as_bytes(), 1, &mut |ev| {
                if let EventBody::ChainHead {
                    number,
                    base_fee_wei,
                    gas_used,
                    gas_limit,
                    ..
                } = ev.body
                {
                    heads.push((number, base_fee_wei, gas_used, gas_limit));
                }
            })
            .expect("Keel's parser reads it");
    }
    assert_eq!(replies, 1);
    for w in heads.windows(2) {
        assert!(w[1].0 > w[0].0, "{heads:?}");
    }
    for h in &heads {
        assert_eq!((h.1, h.2, h.3), (7_000_000_000, 15_000_000, 30_000_000));
    }
    // Anything but newHeads is refused with a JSON-RPC error, the connection stays up.
    ws.send(tungstenite::Message::Text(
        r#"{"jsonrpc":"2.0","id":2,"method":"eth_subscribe","params":["logs"]}"#.into(),
    ))
    .unwrap();
    loop {
        let v: Value =
            serde_json::from_str(ws.read().unwrap().into_text().unwrap().as_str()).unwrap();
        if v["id"] == 2 {
            assert_eq!(v["error"]["code"], -32602);
            break;
        }
    }
}
