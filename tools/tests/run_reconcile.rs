//! Authenticated order sessions and start-up reconciliation, end to end: keel-sim requiring
//! client credentials (its Deribit account), an independent client for the venue's side of the
//! rules (unauthorized, bad credentials, cancel-on-disconnect, REST positions signed with
//! `deri-hmac-sha256`), and `keel run --live` restarted against the same account: the second
//! run starts from the venue's positions, hedges included, and reports where the positions file
//! disagrees.

mod sim_common;

use std::process::Command;
use std::time::Duration;

use keel_engine::exec::deribit::{Credentials, http_authorization};
use keel_feeds::net::http_request;
use serde_json::{Value, json};
use sim_common::*;

const ID: &str = "keel-test-client";
const SECRET: &str = "0f3b9e1c5d7a2b4c6e8f0a1b3c5d7e9f";

fn sim() -> keel_tools::sim::SimHandle {
    start(|c| {
        c.deribit_credentials = Some(keel_tools::sim::SimCredentials {
            client_id: ID.into(),
            client_secret: SECRET.into(),
        });
    })
}

fn creds(secret: &str) -> Credentials {
    Credentials {
        client_id: ID.into(),
        client_secret: zeroize::Zeroizing::new(secret.into()),
    }
}

/// `GET /api/v2/private/{method}?currency=BTC` signed with `secret`: (status, body).
fn rest(sim: &keel_tools::sim::SimHandle, method: &str, secret: &str) -> (u16, Value) {
    let uri = format!("/api/v2/private/{method}?currency=BTC");
    let auth = http_authorization(&creds(secret), now_ms(), "n0nce", "GET", &uri, "");
    let url = format!("http://{}{uri}", sim.addr());
    let (status, body) = http_request(
        &url,
        "GET",
        None,
        &[("Authorization", &auth)],
        None,
        Duration::from_secs(5),
    )
    .expect("REST answers");
    (status, serde_json::from_slice(&body).expect("JSON body"))
}

#[test]
fn private_methods_need_auth_and_cancel_on_disconnect_cancels_the_sessions_orders() {
    let sim = sim();
    let url = sim.deribit_url();
    let mut ws = connect(&url);
    let buy = json!({"instrument_name": "BTC-PERPETUAL", "amount": 10, "type": "market"});
    let r = rpc(&mut ws, 1, "private/buy", buy.clone());
    assert_eq!(r["error"]["code"], 13009, "{r}");
    let r = rpc(
        &mut ws,
        2,
        "public/auth",
        json!({"grant_type": "client_credentials", "client_id": ID, "client_secret": "wrong"}),
    );
    assert_eq!(r["error"]["code"], 13004, "{r}");
    let r = rpc(
        &mut ws,
        3,
        "public/auth",
        json!({"grant_type": "client_credentials", "client_id": ID, "client_secret": SECRET}),
    );
    assert!(r["result"]["access_token"].is_string(), "{r}");
    let r = rpc(
        &mut ws,
        4,
        "private/enable_cancel_on_disconnect",
        json!({"scope": "connection"}),
    );
    assert_eq!(r["result"], "ok", "{r}");
    let r = rpc(&mut ws, 5, "private/buy", buy);
    assert_eq!(r["result"]["order"]["order_state"], "filled", "{r}");
    let resting = json!({"instrument_name": "BTC-PERPETUAL", "amount": 10, "type": "limit",
                         "price": 1000.0, "label": "rest-1"});
    let r = rpc(&mut ws, 6, "private/buy", resting);
    assert_eq!(r["result"]["order"]["order_state"], "open", "{r}");
    let (status, open) = rest(&sim, "get_open_orders_by_currency", SECRET);
    assert_eq!(status, 200);
    assert_eq!(open["result"].as_array().unwrap().len(), 1, "{open}");
    drop(ws);
    // The venue notices the dropped connection and cancels its resting order.
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let (_, open) = rest(&sim, "get_open_orders_by_currency", SECRET);
        if open["result"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still open: {open}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, pos) = rest(&sim, "get_positions", SECRET);
    assert_eq!(status, 200, "{pos}");
    assert_eq!(
        pos["result"][0]["instrument_name"], "BTC-PERPETUAL",
        "{pos}"
    );
    assert_eq!(pos["result"][0]["size"], 10.0, "{pos}");
    // A request signed with another secret, or not signed, is refused.
    let (status, body) = rest(&sim, "get_positions", "not-the-secret");
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], 13004, "{body}");
    let (status, _) = http_request(
        &format!(
            "http://{}/api/v2/private/get_positions?currency=BTC",
            sim.addr()
        ),
        "GET",
        None,
        &[],
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(status, 401);
}

fn keel_live(
    sim: &keel_tools::sim::SimHandle,
    book: &std::path::Path,
    dir: &std::path::Path,
) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .env("KEEL_TEST_DERIBIT_ID", ID)
        .env("KEEL_TEST_DERIBIT_SECRET", SECRET)
        .args(["run", "--deribit-url", &sim.deribit_url(), "--positions"])
        .arg(book)
        .args([
            "--live",
            "--deribit-key-env",
            "KEEL_TEST_DERIBIT_ID",
            "--deribit-secret-env",
            "KEEL_TEST_DERIBIT_SECRET",
            "--duration",
            "3s",
            "--json",
            "--dev",
            "--delta-band",
            "0.01",
            "--halt-file",
        ])
        .arg(dir.join("keel.halt"))
        .output()
        .expect("keel runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("reconciled with the venue"), "{stderr}");
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn a_restarted_run_starts_from_the_venues_positions() {
    let sim = sim();
    // The account holds a short call; the positions file says the same.
    let chain = sim.chain();
    let opt = chain
        .options
        .iter()
        .filter(|o| o.name.ends_with("-C"))
        .min_by(|a, b| {
            let d = |o: &&keel_tools::sim::ListedOption| (o.strike - 100_000.0).abs();
            d(a).total_cmp(&d(b))
        })
        .expect("a call")
        .name
        .clone();
    sim.seed_position(&opt, -20.0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("book.csv");
    std::fs::write(&book, format!("instrument,quantity\n{opt},-20\n")).unwrap();

    let first = keel_live(&sim, &book, dir.path());
    assert!(
        first["fills"].as_u64().unwrap() >= 1,
        "the short call is hedged: {first}"
    );
    assert_eq!(first["reconciled"]["positions"], 1, "{first}");
    assert_eq!(first["reconciled"]["differences"], json!([]), "{first}");

    // What the venue now holds, read independently.
    let (_, pos) = rest(&sim, "get_positions", SECRET);
    let perp = pos["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["instrument_name"] == "BTC-PERPETUAL")
        .unwrap_or_else(|| panic!("the hedge is a position at the venue: {pos}"))["size"]
        .as_f64()
        .unwrap();
    assert!(
        perp > 0.0,
        "a short call is hedged by buying the perpetual: {perp}"
    );

    // Restart with the stale file: the venue wins, the difference is reported, and the book
    // starts hedged (its first delta includes the perpetual bought by the first run).
    let second = keel_live(&sim, &book, dir.path());
    assert_eq!(second["reconciled"]["positions"], 2, "{second}");
    let diffs = &second["reconciled"]["differences"];
    assert_eq!(
        diffs,
        &json!([{"instrument": "BTC-PERPETUAL", "file": 0.0, "venue": perp}]),
        "{second}"
    );
    let before_first = first["delta_before"].as_f64().unwrap();
    let before_second = second["delta_before"].as_f64().unwrap();
    assert!(
        before_second.abs() < before_first.abs(),
        "the second run starts hedged: {before_second} vs {before_first} (first run)"
    );
}

#[test]
fn binance_positions_are_read_with_a_signed_request_and_a_bad_one_is_refused() {
    use keel_engine::exec::binance::BinanceCredentials;
    use keel_tools::run::reconcile::fetch_binance_position;
    use keel_tools::sim::binance_orders::BinanceAccount;
    let sim = start(|c| {
        c.order_api.binance_account = Some(BinanceAccount::new("keelTestKey", b"s3cr3tHmacKey"));
    });
    let base = format!("http://{}", sim.addr());
    let good = BinanceCredentials::new("keelTestKey", b"s3cr3tHmacKey", "test").unwrap();
    let q = fetch_binance_position(&base, &good, "BTCUSDT", None, Duration::from_secs(5))
        .expect("a signed request is answered");
    assert_eq!(q, 0.0, "a fresh account is flat");
    let bad = BinanceCredentials::new("keelTestKey", b"anotherSecret9", "test").unwrap();
    let e = fetch_binance_position(&base, &bad, "BTCUSDT", None, Duration::from_secs(5))
        .unwrap_err()
        .to_string();
    assert!(e.contains("-1022") && e.contains("positionRisk"), "{e}");
    let stranger = BinanceCredentials::new("otherKey", b"s3cr3tHmacKey", "test").unwrap();
    let e = fetch_binance_position(&base, &stranger, "BTCUSDT", None, Duration::from_secs(5))
        .unwrap_err()
        .to_string();
    assert!(e.contains("-2015"), "{e}");
}
