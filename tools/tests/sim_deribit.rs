//! keel-sim's Deribit endpoint (`/ws/api/v2`) seen by an independent client (tungstenite +
//! serde_json): subscriptions and message formats, units, the instrument list, heartbeats and
//! JSON-RPC errors.

mod sim_common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};
use sim_common::*;

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

#[test]
fn option_and_perpetual_tickers_are_well_formed_with_deribit_units() {
    let sim = start(|c| c.rate = 2_000);
    let chain = sim.chain();
    // An ATM-ish call and put of the third expiry, and the perpetual.
    let e = 2;
    let opts: Vec<_> = chain.options.iter().filter(|o| o.expiry == e).collect();
    let middle = opts.len() / 4;
    let call = opts[2 * middle].name.clone();
    let put = opts[2 * middle + 1].name.clone();
    assert!(call.ends_with("-C") && put.ends_with("-P"), "{call} {put}");
    let mut ws = connect(&sim.deribit_url());
    let channels = vec![
        format!("ticker.{call}.raw"),
        format!("ticker.{put}.100ms"),
        "ticker.BTC-PERPETUAL.100ms".to_string(),
        "ticker.NO-SUCH-INSTRUMENT.raw".to_string(),
    ];
    let resp = rpc(
        &mut ws,
        42,
        "public/subscribe",
        json!({ "channels": channels }),
    );
    assert_eq!(resp["jsonrpc"], "2.0");
    let subscribed: Vec<&str> = resp["result"]
        .as_array()
        .expect("result is the list of channels")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        subscribed,
        &channels[..3],
        "unknown instruments are left out"
    );
    assert!(resp["usIn"].as_u64().is_some() && resp["usOut"].as_u64().is_some());

    let mut seen = BTreeMap::new();
    while seen.len() < 3 || seen.values().any(|&n| n < 3) {
        let v = wait_for(&mut ws, PATIENCE, |v| v["method"] == "subscription");
        assert_eq!(v["jsonrpc"], "2.0");
        assert!(v.get("id").is_none(), "notifications carry no id");
        let channel = v["params"]["channel"].as_str().unwrap().to_string();
        assert!(channels[..3].contains(&channel), "{channel}");
        let d = &v["params"]["data"];
        let name = d["instrument_name"].as_str().unwrap();
        assert_eq!(channel.split('.').nth(1), Some(name));
        // Timestamps: venue ms, and the extra sim_send_ns on the same clock.
        let ts = d["timestamp"].as_u64().expect("timestamp ms");
        let send_ns = d["sim_send_ns"].as_u64().expect("sim_send_ns");
        assert!(ts.abs_diff(now_ms()) < 60_000, "timestamp {ts} is not now");
        assert!(send_ns.abs_diff(now_ns()) < 60_000_000_000);
        assert!(
            (send_ns / 1_000_000).abs_diff(ts) <= 1_000,
            "{ts} vs {send_ns}"
        );
        assert_eq!(d["state"], "open");
        let index = f(d, "index_price");
        assert!(index > 50_000.0 && index < 200_000.0, "index {index}");
        let bid = f(d, "best_bid_price");
        let ask = f(d, "best_ask_price");
        let mark = f(d, "mark_price");
        assert!(
            bid <= mark && mark <= ask && bid < ask,
            "{bid} {mark} {ask}"
        );
        assert!(f(d, "best_ask_amount") > 0.0);
        if name == "BTC-PERPETUAL" {
            // USD prices, funding fields.
            assert!((mark / index - 1.0).abs() < 0.01);
            assert!(d["funding_8h"].is_number() && d["current_funding"].is_number());
        } else {
            // Option: prices in BTC, vols in percent, Deribit's Greeks.
            let iv_pct = f(d, "mark_iv");
            assert!(
                iv_pct > 5.0 && iv_pct < 500.0,
                "mark_iv {iv_pct} must be percent"
            );
            assert!(f(d, "bid_iv") <= iv_pct && f(d, "ask_iv") >= iv_pct);
            let fwd = f(d, "underlying_price");
            assert!(
                fwd > index * 0.99 && fwd < index * 1.1,
                "forward {fwd} vs {index}"
            );
            assert!(
                mark < 1.0,
                "an option near the money costs well under 1 BTC: {mark}"
            );
            let o = chain.options.iter().find(|o| o.name == name).unwrap();
            let exp = chain.expiries[o.expiry].ms;
            let t = (exp - ts) as f64 / 31_536_000_000.0;
            let call = name.ends_with("-C");
            let (usd, delta) = black76(call, fwd, o.strike, t, iv_pct / 100.0);
            assert!(
                (mark - usd / fwd).abs() < 2e-4,
                "{name}: mark {mark} BTC vs Black-76 {} BTC",
                usd / fwd
            );
            let g = &d["greeks"];
            assert!((f(g, "delta") - delta).abs() < 2e-4, "{name} delta {g}");
            assert!(f(g, "vega") > 0.0 && f(g, "theta") < 0.0 && f(g, "gamma") >= 0.0);
            assert_eq!(
                d["underlying_index"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("SYN."),
                format!("BTC-{}", chain.expiries[o.expiry].code)
            );
            assert_eq!(d["interest_rate"], 0);
        }
        *seen.entry(channel).or_insert(0) += 1;
    }
}

#[test]
fn get_instruments_lists_about_a_thousand_consistent_options() {
    let sim = start(|c| c.options = 1_000);
    let mut ws = connect(&sim.deribit_url());
    let resp = rpc(
        &mut ws,
        7,
        "public/get_instruments",
        json!({"currency": "BTC", "kind": "option"}),
    );
    let list = resp["result"].as_array().expect("an array");
    assert_eq!(list.len(), 1_000);
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    let mut names = HashSet::new();
    let mut expiries = HashSet::new();
    for i in list {
        let name = i["instrument_name"].as_str().unwrap();
        assert!(names.insert(name.to_string()), "duplicate {name}");
        let parts: Vec<&str> = name.split('-').collect();
        assert_eq!(parts.len(), 4, "{name}");
        assert_eq!(parts[0], "BTC");
        let strike: f64 = parts[2].replace('d', ".").parse().unwrap();
        assert_eq!(strike, f(i, "strike"), "{name}");
        let right = if i["option_type"] == "call" { "C" } else { "P" };
        assert_eq!(parts[3], right, "{name}");
        let exp = i["expiration_timestamp"].as_u64().unwrap();
        assert_eq!(exp % 86_400_000, 8 * 3_600_000, "{name}: 08:00 UTC");
        assert!(exp > now_ms());
        let (y, m, d) = civil((exp / 86_400_000) as i64);
        assert_eq!(
            parts[1],
            format!("{d}{}{:02}", MONTHS[m as usize - 1], y % 100),
            "{name}"
        );
        expiries.insert(exp);
        assert_eq!(i["kind"], "option");
        assert_eq!(i["instrument_type"], "reversed");
        assert_eq!(i["settlement_currency"], "BTC");
        assert_eq!(i["quote_currency"], "BTC");
        assert_eq!(i["base_currency"], "BTC");
        assert_eq!(f(i, "contract_size"), 1.0);
        assert!(f(i, "tick_size") > 0.0 && f(i, "min_trade_amount") > 0.0);
    }
    assert!(expiries.len() >= 8, "{} expiries", expiries.len());

    let futs = rpc(
        &mut ws,
        8,
        "public/get_instruments",
        json!({"currency": "BTC", "kind": "future"}),
    );
    let futs = futs["result"].as_array().unwrap();
    assert!(futs.iter().any(|i| i["instrument_name"] == "BTC-PERPETUAL"));
    assert!(futs.len() >= 4);
    let all = rpc(
        &mut ws,
        9,
        "public/get_instruments",
        json!({"currency": "BTC"}),
    );
    assert_eq!(all["result"].as_array().unwrap().len(), 1_000 + futs.len());
    let eth = rpc(
        &mut ws,
        10,
        "public/get_instruments",
        json!({"currency": "ETH"}),
    );
    assert_eq!(eth["result"], json!([]));

    let t = rpc(&mut ws, 11, "public/get_time", json!({}));
    assert!(t["result"].as_u64().unwrap().abs_diff(now_ms()) < 60_000);
    let tick = rpc(
        &mut ws,
        12,
        "public/ticker",
        json!({"instrument_name": list[0]["instrument_name"]}),
    );
    assert_eq!(
        tick["result"]["instrument_name"],
        list[0]["instrument_name"]
    );
    assert!(tick["result"]["mark_iv"].as_f64().unwrap() > 1.0);
}

#[test]
fn bad_requests_get_json_rpc_errors_and_the_connection_survives() {
    let sim = start(|_| {});
    let mut ws = connect(&sim.deribit_url());
    let r = rpc(&mut ws, 1, "public/no_such_method", json!({}));
    assert_eq!(r["error"]["code"], -32601, "{r}");
    assert_eq!(r["id"], 1);
    send(&mut ws, "{\"jsonrpc\": \"2.0\", \"id\": 2, \"method\": ");
    let r = next_json(&mut ws, PATIENCE);
    assert_eq!(r["error"]["code"], -32700, "{r}");
    assert_eq!(r["id"], Value::Null);
    send(&mut ws, "[1, 2, 3]");
    let r = next_json(&mut ws, PATIENCE);
    assert_eq!(r["error"]["code"], -32600, "{r}");
    let r = rpc(
        &mut ws,
        3,
        "public/subscribe",
        json!({"channels": "not-a-list"}),
    );
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let r = rpc(&mut ws, 4, "public/set_heartbeat", json!({"interval": 1}));
    assert_eq!(
        r["error"]["code"], -32602,
        "below Deribit's 10 s minimum: {r}"
    );
    let r = rpc(
        &mut ws,
        5,
        "public/get_instruments",
        json!({"currency": "DOGE"}),
    );
    assert_eq!(r["error"]["code"], -32602, "{r}");
    ws.send(tungstenite::Message::binary(vec![0xff, 0x00, 0x13]))
        .unwrap();
    let r = next_json(&mut ws, PATIENCE);
    assert_eq!(r["error"]["code"], -32700, "{r}");
    let r = rpc(&mut ws, 6, "public/test", json!({}));
    assert!(r["result"]["version"].is_string(), "{r}");
    assert_eq!(sim.stats().rejected, 0);
}

#[test]
fn heartbeat_sends_test_requests_and_closes_when_unanswered() {
    let sim = start(|c| c.min_heartbeat = Duration::from_millis(100));
    let mut ws = connect(&sim.deribit_url());
    let r = rpc(&mut ws, 1, "public/set_heartbeat", json!({"interval": 0.3}));
    assert_eq!(r["result"], "ok");
    // Answer three test_requests: the connection stays up.
    for i in 0..3 {
        let hb = wait_for(&mut ws, PATIENCE, |v| v["method"] == "heartbeat");
        assert_eq!(hb["params"]["type"], "test_request");
        assert!(hb.get("id").is_none());
        let r = rpc(&mut ws, 100 + i, "public/test", json!({}));
        assert!(r["result"]["version"].is_string());
    }
    // A client that never answers is closed, as Deribit does.
    let mut quiet = connect(&sim.deribit_url());
    let r = rpc(
        &mut quiet,
        1,
        "public/set_heartbeat",
        json!({"interval": 0.2}),
    );
    assert_eq!(r["result"], "ok");
    let (texts, _why) = read_until_closed(&mut quiet, PATIENCE);
    assert!(texts.iter().any(|t| t.contains("test_request")));
    assert!(sim.stats().drops >= 1);
    // The answering client is still alive.
    let r = rpc(&mut ws, 9, "public/test", json!({}));
    assert!(r["result"].is_object());
}

#[test]
fn book_index_and_markprice_channels() {
    let sim = start(|c| c.rate = 5_000);
    let opt = sim.chain().options[10].name.clone();
    let mut ws = connect(&sim.deribit_url());
    let book_ch = "book.BTC-PERPETUAL.100ms";
    let obook_ch = format!("book.{opt}.100ms");
    let chans = json!([
        book_ch,
        obook_ch,
        "deribit_price_index.btc_usd",
        "markprice.options.btc_usd"
    ]);
    let r = rpc(&mut ws, 1, "public/subscribe", json!({ "channels": chans }));
    assert_eq!(r["result"].as_array().unwrap().len(), 4);

    let mut book: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    let mut last_change: Option<u64> = None;
    let (mut books, mut index, mut marks) = (0, 0, 0);
    while books < 5 || index < 2 || marks < 1 {
        let v = wait_for(&mut ws, PATIENCE, |v| v["method"] == "subscription");
        let ch = v["params"]["channel"].as_str().unwrap();
        let d = &v["params"]["data"];
        if ch == book_ch {
            let change = d["change_id"].as_u64().unwrap();
            match last_change {
                None => {
                    assert_eq!(d["type"], "snapshot");
                    assert!(d["prev_change_id"].is_null());
                }
                Some(prev) => {
                    assert_eq!(d["type"], "change");
                    assert_eq!(d["prev_change_id"].as_u64(), Some(prev), "no gap");
                    assert!(change > prev);
                }
            }
            last_change = Some(change);
            for side in ["bids", "asks"] {
                let levels = book.entry(side.to_string()).or_default();
                for l in d[side].as_array().unwrap() {
                    let (a, px, sz) = (
                        l[0].as_str().unwrap(),
                        l[1].as_f64().unwrap(),
                        l[2].as_f64().unwrap(),
                    );
                    let k = (px * 100.0).round() as i64;
                    match a {
                        "new" => assert!(levels.insert(k, sz).is_none(), "new on a level"),
                        "change" => assert!(levels.insert(k, sz).is_some(), "change of nothing"),
                        "delete" => assert!(levels.remove(&k).is_some(), "delete of nothing"),
                        other => panic!("action {other}"),
                    }
                }
            }
            let best_bid = book["bids"].keys().next_back().copied().unwrap();
            let best_ask = book["asks"].keys().next().copied().unwrap();
            assert!(best_bid < best_ask, "crossed book");
            books += 1;
        } else if ch == "deribit_price_index.btc_usd" {
            assert_eq!(d["index_name"], "btc_usd");
            let p = d["price"].as_f64().unwrap();
            assert!(p > 50_000.0 && p < 200_000.0);
            index += 1;
        } else if ch == "markprice.options.btc_usd" {
            let arr = d.as_array().expect("an array of marks");
            assert_eq!(arr.len(), sim.chain().options.len());
            for m in arr {
                let iv = m["iv"].as_f64().unwrap();
                assert!(iv > 0.05 && iv < 5.0, "markprice iv is a fraction: {iv}");
                assert!(m["mark_price"].as_f64().unwrap() >= 0.0);
                assert!(m["instrument_name"].as_str().unwrap().starts_with("BTC-"));
            }
            marks += 1;
        } else {
            assert_eq!(ch, obook_ch);
            assert_eq!(d["instrument_name"], opt.as_str());
        }
    }
    let r = rpc(
        &mut ws,
        2,
        "public/unsubscribe",
        json!({"channels": [book_ch]}),
    );
    assert_eq!(r["result"], json!([book_ch]));
    let r = rpc(&mut ws, 3, "public/unsubscribe_all", json!({}));
    assert_eq!(r["result"], "ok");
}

#[test]
fn unknown_paths_are_refused_at_the_handshake() {
    let sim = start(|_| {});
    let url = format!("ws://{}/nope", sim.addr());
    let tcp = std::net::TcpStream::connect(sim.addr()).unwrap();
    match tungstenite::client(url.as_str(), tcp) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            assert_eq!(resp.status(), 404);
        }
        Err(e) => panic!("expected HTTP 404, got {e}"),
        Ok(_) => panic!("handshake on an unknown path succeeded"),
    }
}
