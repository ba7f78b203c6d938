//! `keel tap` end to end: the real binary against keel-sim (Deribit and Binance formats) and
//! against an independent WebSocket server (Python `websockets`, feeds/tests/py/ws_server.py):
//! fragmented messages, pings, a server-initiated close followed by reconnection, and wss://
//! with a private certificate trusted through --ca-file.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn keel(args: &[&str]) -> Output {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keel runs");
    // Drain both pipes while it runs (a full pipe would stall it).
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = so.read_to_end(&mut b);
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = se.read_to_end(&mut b);
        b
    });
    // Every tap in these tests ends by --max-events or --duration; a hang is a failure.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "keel {args:?} did not finish: stdout {} stderr {}",
                String::from_utf8_lossy(&out_t.join().unwrap_or_default()),
                String::from_utf8_lossy(&err_t.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

fn json_lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "keel tap failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// A process killed when dropped.
mod py_common;
use py_common::{Proc, python_server};

/// keel-sim on a free port; returns it and its port.
fn sim(extra: &[&str]) -> (Proc, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel-sim"))
        .args(["--listen", "127.0.0.1:0", "--duration", "60"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("keel-sim runs");
    let mut line = String::new();
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    reader
        .read_line(&mut line)
        .expect("keel-sim prints its address");
    // Keep draining what else it prints, so it never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (Proc(child), port)
}

/// An option the simulated chain lists (its names depend on today's date).
fn a_listed_option(port: u16) -> String {
    let (mut ws, _) =
        tungstenite::connect(format!("ws://127.0.0.1:{port}/ws/api/v2")).expect("sim connects");
    ws.send(tungstenite::Message::text(
        r#"{"jsonrpc":"2.0","id":1,"method":"public/get_instruments","params":{"currency":"BTC","kind":"option"}}"#,
    ))
    .unwrap();
    loop {
        let msg = ws.read().unwrap();
        if let tungstenite::Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["id"] == 1 {
                let list = v["result"].as_array().expect("instrument list");
                return list[list.len() / 2]["instrument_name"]
                    .as_str()
                    .unwrap()
                    .to_string();
            }
        }
    }
}

#[test]
fn taps_keel_sim_deribit_and_binance() {
    let (_sim, port) = sim(&["--rate", "2000"]);
    let option = a_listed_option(port);
    let url = format!("ws://127.0.0.1:{port}/ws/api/v2");
    let instruments = format!("{option},BTC-PERPETUAL,btc_usd");
    let lines = json_lines(&keel(&[
        "tap",
        "--venue",
        "deribit",
        "--deribit-url",
        &url,
        "--instruments",
        &instruments,
        "--max-events",
        "30",
        "--json",
    ]));
    assert_eq!(lines[0]["kind"], "connected");
    let market: Vec<&Value> = lines.iter().filter(|l| l["kind"] != "connected").collect();
    assert_eq!(market.len(), 30, "exactly --max-events market events");
    for l in &lines {
        for key in [
            "venue",
            "kind",
            "instrument",
            "bid",
            "ask",
            "mark",
            "iv",
            "underlying",
            "exchange_ts_ns",
            "recv_ts_ns",
        ] {
            assert!(l.get(key).is_some(), "{key} missing in {l}");
        }
        assert_eq!(l["venue"], "deribit");
    }
    let ticker = market
        .iter()
        .find(|l| l["kind"] == "option_ticker")
        .expect("an option ticker");
    assert_eq!(ticker["instrument"], option.as_str());
    let iv = ticker["iv"].as_f64().unwrap();
    assert!(iv > 0.05 && iv < 3.0, "iv is a decimal: {iv}");
    let mark = ticker["mark"].as_f64().unwrap();
    assert!(
        mark > 0.0 && mark < 1.0,
        "an option's mark is in BTC: {mark}"
    );
    assert!(ticker["underlying"].as_f64().unwrap() > 1000.0);
    let exch = ticker["exchange_ts_ns"].as_u64().unwrap();
    let recv = ticker["recv_ts_ns"].as_u64().unwrap();
    assert!(
        exch > 1_700_000_000_000_000_000 && recv >= exch - 5_000_000_000,
        "{exch} {recv}"
    );
    assert!(
        market
            .iter()
            .any(|l| l["kind"] == "index" && l["instrument"] == "btc_usd")
    );
    assert!(
        market
            .iter()
            .any(|l| l["kind"] == "quote" && l["instrument"] == "BTC-PERPETUAL")
    );

    let url = format!("ws://127.0.0.1:{port}/ws");
    let lines = json_lines(&keel(&[
        "tap",
        "--venue",
        "binance",
        "--binance-url",
        &url,
        "--instruments",
        "BTCUSDT",
        "--max-events",
        "5",
        "--json",
    ]));
    let quotes: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "quote").collect();
    assert_eq!(quotes.len(), 5);
    for q in quotes {
        assert_eq!(q["instrument"], "BTCUSDT");
        assert!(q["bid"].as_f64().unwrap() <= q["ask"].as_f64().unwrap());
    }

    // Hyperliquid: l2Book of BTC (a quote, then the whole book as levels).
    let url = format!("ws://127.0.0.1:{port}/hyperliquid/ws");
    let lines = json_lines(&keel(&[
        "tap",
        "--venue",
        "hyperliquid",
        "--hyperliquid-url",
        &url,
        "--instruments",
        "BTC",
        "--max-events",
        "12",
        "--json",
    ]));
    assert_eq!(lines[0]["kind"], "connected");
    let market: Vec<&Value> = lines.iter().filter(|l| l["kind"] != "connected").collect();
    assert_eq!(market.len(), 12);
    assert!(
        market
            .iter()
            .all(|l| l["venue"] == "hyperliquid" && l["instrument"] == "BTC")
    );
    let q = market
        .iter()
        .find(|l| l["kind"] == "quote")
        .expect("the touch");
    assert!(
        q["bid"].as_f64().unwrap() < q["ask"].as_f64().unwrap(),
        "{q}"
    );
    assert!(
        market.iter().any(|l| l["kind"] != "quote"),
        "book levels too: {market:?}"
    );
}

fn deribit_ticker(mark_iv: f64) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/venues/deribit/ticker_option.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["params"]["data"]["mark_iv"] = mark_iv.into();
    v.to_string()
}

#[test]
fn survives_fragments_pings_and_a_server_close_from_an_independent_server() {
    let t1 = deribit_ticker(45.43);
    let (a, b) = t1.split_at(t1.len() / 3);
    let (b, c) = b.split_at(b.len() / 2);
    let t2 = deribit_ticker(50.0);
    let script = serde_json::json!({
        "connections": [[
            {"wait_recv": 2},
            {"fragments": [a, b, c]},
            {"ping": "hb"},
            {"send": t1},
            {"close": 1001, "reason": "going away"}
        ]],
        "default": [{"wait_recv": 2}, {"send": t2}]
    });
    let (_srv, port) = python_server(&script, None);
    let url = format!("ws://127.0.0.1:{port}/ws/api/v2");
    let lines = json_lines(&keel(&[
        "tap",
        "--venue",
        "deribit",
        "--deribit-url",
        &url,
        "--instruments",
        "BTC-26JUN26-100000-C",
        "--max-events",
        "6",
        "--json",
    ]));
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "connected",
            "option_ticker",
            "venue_greeks",
            "option_ticker",
            "venue_greeks",
            "disconnected",
            "reconnected",
            "option_ticker",
            "venue_greeks"
        ],
        "{lines:#?}"
    );
    // The fragmented message arrived whole: Deribit's mark_iv 45.43 % became 0.4543.
    assert_eq!(lines[1]["iv"], 0.4543);
    assert_eq!(lines[1]["underlying"], 116086.34);
    assert_eq!(lines[7]["iv"], 0.5, "after reconnecting and resubscribing");
    assert_eq!(lines[5]["reason"], "PeerClosed");
}

#[test]
fn wss_with_a_private_ca_via_ca_file() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "keel tap test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let ca_file = dir.path().join("ca.pem");
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    let mut chain = std::fs::File::create(&cert_file).unwrap();
    chain.write_all(leaf.pem().as_bytes()).unwrap();
    chain.write_all(ca_cert.pem().as_bytes()).unwrap();
    std::fs::write(&key_file, leaf_key.serialize_pem()).unwrap();

    let script =
        serde_json::json!({"default": [{"wait_recv": 2}, {"send": deribit_ticker(45.43)}]});
    let (_srv, port) = python_server(&script, Some((&cert_file, &key_file)));
    let url = format!("wss://127.0.0.1:{port}/ws/api/v2");
    let ca = ca_file.to_str().unwrap();
    let lines = json_lines(&keel(&[
        "tap",
        "--venue",
        "deribit",
        "--deribit-url",
        &url,
        "--instruments",
        "BTC-26JUN26-100000-C",
        "--ca-file",
        ca,
        "--max-events",
        "1",
        "--json",
    ]));
    assert_eq!(lines[0]["kind"], "connected");
    assert_eq!(lines[1]["kind"], "option_ticker");

    // Without the CA the certificate is not trusted: no connection, a disconnected event.
    let out = keel(&[
        "tap",
        "--venue",
        "deribit",
        "--deribit-url",
        &url,
        "--instruments",
        "BTC-26JUN26-100000-C",
        "--duration",
        "2",
        "--json",
    ]);
    let lines = json_lines(&out);
    assert!(
        lines.iter().all(|l| l["kind"] != "option_ticker"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["kind"] == "disconnected" && l["reason"] == "ConnectFailed"),
        "{lines:?}"
    );
}

#[test]
fn bad_flags_are_one_line_errors() {
    for (args, needle) in [
        (
            vec![
                "tap",
                "--venue",
                "deribit",
                "--deribit-url",
                "ftp://x",
                "--instruments",
                "A",
            ],
            "--deribit-url ftp://x",
        ),
        (vec!["tap", "--venue", "eth"], "--venue eth needs --eth-url"),
        (vec!["tap", "--venue", "binance"], "--instruments"),
        (
            vec![
                "tap",
                "--venue",
                "deribit",
                "--instruments",
                "A",
                "--ca-file",
                "/nonexistent/ca.pem",
            ],
            "--ca-file /nonexistent/ca.pem",
        ),
    ] {
        let out = keel(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

fn fixture(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/venues")
        .join(path);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    v.to_string()
}

/// Runs `keel tap` against the Python server playing `messages` after the client's first
/// message (its subscription), and returns the JSON lines.
fn tap_scripted(
    venue: &str,
    url_flag: &str,
    path: &str,
    instruments: &str,
    messages: &[String],
    n: &str,
) -> Vec<Value> {
    let mut steps = vec![serde_json::json!({"wait_recv": 1})];
    steps.extend(messages.iter().map(|m| serde_json::json!({"send": m})));
    let script = serde_json::json!({"connections": [steps], "default": [{"silent": true}]});
    let (_srv, port) = python_server(&script, None);
    let url = format!("ws://127.0.0.1:{port}{path}");
    let mut args = vec![
        "tap",
        "--venue",
        venue,
        url_flag,
        &url,
        "--max-events",
        n,
        "--json",
    ];
    if !instruments.is_empty() {
        args.extend(["--instruments", instruments]);
    }
    json_lines(&keel(&args))
}

#[test]
fn taps_okx_bybit_and_eth_from_an_independent_server() {
    // OKX: a spot ticker, an option ticker family's opt-summary (Greeks and vols) and an index.
    let index = r#"{"arg":{"channel":"index-tickers","instId":"BTC-USD"},"data":[{"instId":"BTC-USD","idxPx":"43350.1","high24h":"1","low24h":"1","open24h":"1","sodUtc0":"1","sodUtc8":"1","ts":"1597026383085"}]}"#;
    let lines = tap_scripted(
        "okx",
        "--okx-url",
        "/ws/v5/public",
        "BTC-USDT,BTC-USD-231229-40000-P,BTC-USD",
        &[
            fixture("okx/tickers.json"),
            fixture("okx/opt_summary.json"),
            index.to_string(),
        ],
        "4",
    );
    let kinds: Vec<&str> = lines.iter().filter_map(|l| l["kind"].as_str()).collect();
    assert!(kinds.contains(&"quote"), "{lines:#?}");
    assert!(kinds.contains(&"index"), "{lines:#?}");
    assert!(
        kinds.contains(&"option_ticker") || kinds.contains(&"venue_greeks"),
        "{lines:#?}"
    );
    let quote = lines.iter().find(|l| l["kind"] == "quote").unwrap();
    assert_eq!(quote["instrument"], "BTC-USDT");
    assert_eq!(quote["bid"], 8888.88);
    // Bybit: an option ticker.
    let lines = tap_scripted(
        "bybit",
        "--bybit-url",
        "/v5/public/option",
        "BTC-6JAN23-17500-C",
        &[fixture("bybit/option_ticker.json")],
        "1",
    );
    let t = lines
        .iter()
        .find(|l| l["kind"] == "option_ticker")
        .expect("an option ticker");
    assert_eq!(t["instrument"], "BTC-6JAN23-17500-C");
    assert_eq!(t["iv"], 0.4896);
    // Ethereum: the subscription id, then a head.
    let head = r#"{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"0x1","result":{"number":"0x1312d00","baseFeePerGas":"0x3b9aca00","gasUsed":"0xe4e1c0","gasLimit":"0x1c9c380","timestamp":"0x65f5a1c3"}}}"#;
    let lines = tap_scripted(
        "eth",
        "--eth-url",
        "/",
        "",
        &[
            r#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#.to_string(),
            head.to_string(),
        ],
        "1",
    );
    let h = lines
        .iter()
        .find(|l| l["kind"] == "chain_head")
        .expect("a chain head");
    assert_eq!(h["number"], 20_000_000);
    assert_eq!(h["base_fee"], 1_000_000_000u64);
    assert_eq!(h["gas_limit"], 30_000_000);
}

#[test]
fn binance_books_resnapshot_after_gaps_and_deribit_books_stream() {
    // keel-sim loses every 4th depth event: each gap must be followed by a REST snapshot
    // before any further update.
    let (_sim, port) = sim(&["--rate", "100", "--gap-every-msgs", "4", "--speed", "20"]);
    let url = format!("ws://127.0.0.1:{port}/ws");
    let lines = json_lines(&keel(&[
        "tap",
        "--venue",
        "binance",
        "--binance-url",
        &url,
        "--instruments",
        "BTCUSDT",
        "--books",
        "--duration",
        "4",
        "--json",
    ]));
    let books: Vec<&Value> = lines
        .iter()
        .filter(|l| l["kind"] == "book_level" || l["kind"] == "sequence_gap")
        .collect();
    let gaps = books.iter().filter(|l| l["kind"] == "sequence_gap").count();
    assert!(gaps >= 1, "a gap was injected: {lines:#?}");
    assert!(books.iter().any(|l| l["snapshot"] == true), "{lines:#?}");
    let mut awaiting_snapshot = false;
    for l in &books {
        if l["kind"] == "sequence_gap" {
            awaiting_snapshot = true;
        } else if l["snapshot"] == true {
            awaiting_snapshot = false;
        } else {
            assert!(
                !awaiting_snapshot,
                "an update applied across a gap: {books:#?}"
            );
        }
    }
    // Deribit books: book levels (the first message of a subscription is a snapshot).
    let opt = a_listed_option(port);
    let lines = json_lines(&keel(&[
        "tap",
        "--venue",
        "deribit",
        "--deribit-url",
        &format!("ws://127.0.0.1:{port}/ws/api/v2"),
        "--instruments",
        &opt,
        "--books",
        "--max-events",
        "20",
        "--json",
    ]));
    assert!(
        lines
            .iter()
            .any(|l| l["kind"] == "book_level" && l["snapshot"] == true),
        "{lines:#?}"
    );
}
