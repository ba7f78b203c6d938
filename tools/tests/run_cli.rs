//! `keel run` as a user runs it: the built binary on the embedded simulated venue, a short
//! `--duration`, the summary as one JSON object on standard output, the status on standard
//! error; and bad flags as one-line errors.

use std::process::Command;

fn keel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keel"))
}

#[test]
fn alt_hedge_hyperliquid_on_the_embedded_venue_hedges_there() {
    let out = keel()
        .args([
            "run",
            "--duration",
            "4s",
            "--json",
            "--dev",
            "--delta-band",
            "0.005",
            "--sim-options",
            "200",
            "--alt-hedge",
            "hyperliquid",
            "--deribit-fee-bps",
            "50",
            "--hyperliquid-fee-bps",
            "0",
            "--hyperliquid-lot",
            "0.01",
            "--hyperliquid-rungs",
            "10",
        ])
        .output()
        .expect("keel runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("hyperliquid BTC: ws://127.0.0.1:"),
        "{stderr}"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    let h = &v["hyperliquid"];
    assert!(h["fired"].as_u64().unwrap() >= 1, "{h}");
    assert!(v["alt_venue_hedges"].as_u64().unwrap() >= 1, "{v}");
    let (start, filled) = (
        h["position_start"].as_f64().unwrap(),
        h["filled"].as_f64().unwrap(),
    );
    let end = h["position_end"]
        .as_f64()
        .expect("the position read back at the end");
    assert!(filled != 0.0 && (start + filled - end).abs() < 1e-9, "{h}");
    assert_eq!(
        v["reconciled"]["alt_positions"]["hyperliquid:BTC"], 0.0,
        "a fresh agent: {}",
        v["reconciled"]
    );
    for k in [
        "no_ladder",
        "too_small",
        "stale_nonce",
        "price",
        "busy",
        "rate",
    ] {
        assert!(h["refused"][k].is_u64(), "{k}: {h}");
    }
}

#[test]
fn run_on_the_embedded_venue_prints_a_json_summary() {
    let out = keel()
        .args([
            "run",
            "--duration",
            "3s",
            "--json",
            "--dev",
            "--delta-band",
            "0.05",
            "--sim-options",
            "200",
        ])
        .output()
        .expect("keel runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    for key in [
        "ticks",
        "reprices",
        "skipped_ticks",
        "hedges",
        "fills",
        "ring_full",
        "delta_before",
        "delta_after",
        "max_abs_delta_excursion",
        "tick_to_trade_ns",
        "stage_ns",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    for p in ["p50", "p90", "p99", "p999", "max"] {
        assert!(v["tick_to_trade_ns"][p].is_u64(), "{v}");
    }
    for stage in ["read_parse", "ring_hop", "reprice", "decide", "send"] {
        assert!(v["stage_ns"][stage]["p50"].is_u64(), "{stage}: {v}");
        assert!(v["stage_ns"][stage]["p99"].is_u64(), "{stage}: {v}");
    }
    assert!(v["ticks"].as_u64().unwrap() > 0, "{v}");
    assert!(v["reprices"].as_u64().unwrap() > 0, "{v}");
    assert!(v["hedges"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["book_options"].as_u64().unwrap() == 200, "{v}");
    assert!(stderr.contains("keel run:"), "{stderr}");
    assert!(stderr.contains("ticks"), "status lines: {stderr}");
}

#[test]
fn single_topology_hedges_every_nth_decision_through_the_exec_tile() {
    // Feed, pricer and exec on one thread, and the bench trigger `every:N`: orders reach
    // keel-sim's order endpoint and come back as fills.
    let out = keel()
        .args([
            "run",
            "--duration",
            "3s",
            "--json",
            "--dev",
            "--topology",
            "single",
            "--policy",
            "every:5",
            "--max-hedges-per-min",
            "100000",
            "--deribit-rate-limit",
            "100000",
            "--sim-options",
            "100",
        ])
        .output()
        .expect("keel runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    assert_eq!(v["topology"], "single", "{v}");
    assert!(v["hedges"].as_u64().unwrap() >= 2, "{v}");
    assert!(v["fills"].as_u64().unwrap() >= 1, "{v}");
}

#[test]
fn bad_flags_are_one_line_errors() {
    for (args, want) in [
        (vec!["run", "--duration", "soon"], "--duration"),
        (vec!["run", "--topology", "mesh"], "topology"),
        (vec!["run", "--pin", "feed=x"], "--pin"),
        (vec!["run", "--delta-band", "-1"], "--delta-band"),
        (
            vec!["run", "--alt-hedge", "okx:BTC-USDT-SWAP"],
            "--alt-hedge",
        ),
        (vec!["run", "--alt-hedge", "BTCUSDT"], "VENUE:SYMBOL"),
        (vec!["run", "--vega-bucket-band", "0"], "--vega-bucket-band"),
        (
            vec!["run", "--positions", "/nonexistent/book.csv"],
            "/nonexistent/book.csv",
        ),
    ] {
        let out = keel().args(&args).output().expect("keel runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn pinning_to_a_core_that_does_not_exist_fails_unless_dev() {
    let out = keel()
        .args(["run", "--duration", "1s", "--pin", "exec=999"])
        .output()
        .expect("keel runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("999"), "{err}");
}

mod py_common;

/// A Deribit message from a fixture, with fields replaced.
fn fixture_with(path: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/venues/deribit")
        .join(path);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    edit(&mut v);
    v.to_string()
}

#[test]
fn run_against_an_independent_deribit_server_hedges_on_paper() {
    // The real-venue path: public/get_instruments, the feed, the market state, the pricer and
    // the dry-run exec (no keys: orders are filled on paper), against the Python server playing
    // Deribit's messages (fixture formats; prices made consistent with one another).
    const OPTION: &str = "BTC-26JUN26-100000-C";
    const TS: u64 = 1_752_057_345_721;
    let mut instrument: serde_json::Value =
        serde_json::from_str(&fixture_with("get_instrument_option.json", |v| {
            let r = &mut v["result"];
            r["instrument_name"] = OPTION.into();
            r["expiration_timestamp"] = 1_782_460_800_000u64.into();
        }))
        .unwrap();
    let option = instrument["result"].take();
    let mut perp = option.clone();
    for (k, x) in [
        ("kind", serde_json::json!("future")),
        ("instrument_name", serde_json::json!("BTC-PERPETUAL")),
        ("settlement_period", serde_json::json!("perpetual")),
        (
            "expiration_timestamp",
            serde_json::json!(32_503_708_800_000u64),
        ),
        ("contract_size", serde_json::json!(10.0)),
        ("min_trade_amount", serde_json::json!(10.0)),
        ("tick_size", serde_json::json!(0.5)),
        ("quote_currency", serde_json::json!("USD")),
    ] {
        perp[k] = x;
    }
    if let Some(o) = perp.as_object_mut() {
        o.remove("option_type");
        o.remove("strike");
    }
    let list = serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": [perp, option]}).to_string();
    let index = fixture_with("price_index.json", |v| {
        v["params"]["data"]["price"] = 108_827.5.into();
        v["params"]["data"]["timestamp"] = TS.into();
    });
    let perp_ticker = fixture_with("ticker_perpetual.json", |v| {
        let d = &mut v["params"]["data"];
        d["timestamp"] = TS.into();
        d["index_price"] = 108_827.5.into();
        d["mark_price"] = 108_830.0.into();
        d["best_bid_price"] = 108_829.5.into();
        d["best_ask_price"] = 108_830.5.into();
    });
    let option_ticker = fixture_with("ticker_option.json", |v| {
        let d = &mut v["params"]["data"];
        d["timestamp"] = TS.into();
        d["underlying_price"] = 108_900.0.into();
        d["index_price"] = 108_827.5.into();
    });
    let mut feed = vec![serde_json::json!({"wait_recv": 2})];
    for _ in 0..12 {
        for m in [&index, &perp_ticker, &option_ticker] {
            feed.push(serde_json::json!({"send": m}));
        }
        feed.push(serde_json::json!({"sleep": 0.25}));
    }
    let script = serde_json::json!({
        "connections": [[{"wait_recv": 1}, {"send": list}], feed],
        "default": [{"silent": true}]
    });
    let (_srv, port) = py_common::python_server(&script, None);
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("book.csv");
    std::fs::write(&book, format!("instrument,quantity\n{OPTION},-10\n")).unwrap();
    let url = format!("ws://127.0.0.1:{port}/ws/api/v2");
    let out = keel()
        .args(["run", "--deribit-url", &url, "--positions"])
        .arg(&book)
        .args(["--duration", "3s", "--json", "--dev", "--halt-file"])
        .arg(dir.path().join("keel.halt"))
        .output()
        .expect("keel runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("orders to paper"),
        "dry run without keys: {stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["book_options"], 1, "{v}");
    assert!(
        v["hedges"].as_u64().unwrap() >= 1,
        "short 10 calls: a hedge: {v}"
    );
    assert!(v["fills"].as_u64().unwrap() >= 1, "paper fills: {v}");
    // Short ten calls is about −7 BTC of coin delta; the paper fill brought it near zero.
    assert!(v["delta_before"].as_f64().unwrap() < -3.0, "{v}");
    assert!(v["delta_after"].as_f64().unwrap().abs() < 1.0, "{v}");
    assert!(
        v["venue_greeks_check"]["count"].as_u64().unwrap() >= 1,
        "{v}"
    );
}
