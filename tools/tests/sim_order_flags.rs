//! keel-sim's order-API flags, through the binary: the Binance account comes from environment
//! variables named by flags (never printed), Hyperliquid agents are addresses, bad values are
//! one-line errors with exit status 2.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use keel_engine::exec::binance::{Fields, HmacSigner, RequestTemplate};
use keel_feeds::event::Side;

const BIN: &str = env!("CARGO_BIN_EXE_keel-sim");
const SECRET: &str = "flagTestSecret987";

#[test]
fn bad_order_api_flags_are_one_line_errors() {
    for (args, needle) in [
        (vec!["--binance-api-key-env", "K"], "go together"),
        (
            vec![
                "--binance-api-key-env",
                "KEEL_NO_SUCH_VAR_A",
                "--binance-secret-env",
                "KEEL_NO_SUCH_VAR_B",
            ],
            "KEEL_NO_SUCH_VAR_A",
        ),
        (vec!["--hyperliquid-agent", "0xzz"], "--hyperliquid-agent"),
        (vec!["--order-garble-every", "0"], "--order-garble-every"),
        (vec!["--order-drop-every", "0"], "--order-drop-every"),
    ] {
        let out = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.starts_with("error: ") && err.contains(needle),
            "{args:?}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn the_binance_account_comes_from_the_environment_and_is_never_printed() {
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--duration",
            "20",
            "--options",
            "20",
            "--binance-api-key-env",
            "KEEL_SIM_TEST_KEY",
            "--binance-secret-env",
            "KEEL_SIM_TEST_SECRET",
            "--hyperliquid-agent",
            "0x14791697260E4c9A71f18484C9f997B308e59325",
        ])
        .env("KEEL_SIM_TEST_KEY", "flagTestKey")
        .env("KEEL_SIM_TEST_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("keel-sim listening on ")
        .unwrap_or_else(|| panic!("first line: {first}"))
        .to_string();
    let tcp = TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/ws-fapi/v1"), tcp).unwrap();
    let t = RequestTemplate::market_order("flagTestKey", "BTCUSDT", Side::Buy, 5000, 3).unwrap();
    let mut buf = Vec::new();
    let now_ms = keel_feeds::clock::now_ns() / 1_000_000;
    t.fill(
        &Fields {
            client_order_id: b"flags-1",
            quantity: 0.002,
            price: f64::NAN,
            timestamp_ms: now_ms,
        },
        &HmacSigner::new(SECRET.as_bytes()),
        &mut buf,
    )
    .unwrap();
    ws.send(tungstenite::Message::text(String::from_utf8(buf).unwrap()))
        .unwrap();
    let reply = loop {
        match ws.read().unwrap() {
            tungstenite::Message::Text(t) => break t.to_string(),
            _ => continue,
        }
    };
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(v["result"]["status"], "FILLED", "{v}");
    let _ = ws.close(None);
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let printed = format!(
        "{first}\n{}\n{}",
        rest.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !printed.contains(SECRET),
        "the secret was printed: {printed}"
    );
}
