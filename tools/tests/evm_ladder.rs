//! Pre-signed ladders checked against an independent implementation: every request of every
//! rung (eth_sendRawTransaction per RPC, eth_sendBundle per builder) is parsed by
//! tests/py/eth_ladder.py, which decodes the transaction and recovers both signers with the
//! Python eth-account library (.ci/run installs it). Without eth-account the test fails, saying
//! how to install it; it never skips.

mod py_common;

use keel_engine::exec::evm::ladder::{CallTemplate, Ladder, LadderSpec, RouteKind, RouteTarget};
use keel_engine::exec::evm::{Address, Bytes, EvmSigner, FlashbotsSigner, U256};
use keel_feeds::event::Side;
use serde_json::{Value, json};

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";
const KEY_ADDRESS: &str = "0x14791697260E4c9A71f18484C9f997B308e59325";
const FB_KEY: &str = "0x00000000000000000000000000000000000000000000000000000000000000f1";

fn eth_ladder(requests: &[String]) -> Vec<Value> {
    let v = py_common::python_json(
        "eth_ladder.py",
        &json!({ "requests": requests }),
        "eth-account",
    );
    v["results"].as_array().expect("results").clone()
}

fn template(selector: &str, words: usize, k: usize, fill: u8) -> CallTemplate {
    let mut d = alloy_hex(selector);
    d.resize(4 + 32 * words, fill);
    CallTemplate::new(
        "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D"
            .parse::<Address>()
            .unwrap(),
        Bytes::from(d),
        k,
        U256::ZERO,
    )
    .unwrap()
}

fn alloy_hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
fn every_rung_and_request_decodes_with_eth_account() {
    let spec = LadderSpec {
        chain_id: 11_155_111,
        gas_limit: 300_000,
        max_priority_fee_per_gas: 1_500_000_000,
        buy: template("7ff36ab5", 4, 0, 0x22),
        sell: template("18cbafe5", 5, 1, 0x33),
        lot: 0.001,
        lot_units: U256::from(1_000_000_000_000_000u64),
        rungs: 4,
    };
    let routes = vec![
        RouteTarget::parse(RouteKind::Rpc, "http://127.0.0.1:8545").unwrap(),
        RouteTarget::parse(RouteKind::Builder, "http://127.0.0.1:9001/bundle").unwrap(),
        RouteTarget::parse(RouteKind::Builder, "http://localhost:9002").unwrap(),
    ];
    let key = EvmSigner::from_hex(KEY, "test").unwrap();
    let fb = FlashbotsSigner::new(EvmSigner::from_hex(FB_KEY, "test fb").unwrap());
    let fee_cap = 73_000_000_123u128;
    let ladder = Ladder::build(&spec, &routes, &key, Some(&fb), 42, fee_cap, 19_000_001).unwrap();
    let mut requests = Vec::new();
    let mut expect = Vec::new();
    for side in [Side::Buy, Side::Sell] {
        for (i, rung) in ladder.rungs(side).iter().enumerate() {
            for r in 0..routes.len() {
                requests.push(String::from_utf8(rung.request(r).to_vec()).unwrap());
                expect.push((side, i, r, rung));
            }
        }
    }
    let got = eth_ladder(&requests);
    assert_eq!(got.len(), requests.len());
    let fb_addr = fb.address().to_checksum(None);
    for (g, (side, i, r, rung)) in got.iter().zip(expect) {
        let ctx = format!("{side:?} rung {i} route {r}: {g}");
        assert_eq!(g["from"], KEY_ADDRESS, "{ctx}");
        assert_eq!(g["nonce"], 42, "{ctx}");
        assert_eq!(g["id"], 42, "{ctx}");
        assert_eq!(g["chain_id"], 11_155_111, "{ctx}");
        assert_eq!(g["max_fee_per_gas"], fee_cap.to_string(), "{ctx}");
        assert_eq!(g["max_priority_fee_per_gas"], "1500000000", "{ctx}");
        assert_eq!(g["gas"], 300_000, "{ctx}");
        assert_eq!(g["content_length_ok"], true, "{ctx}");
        assert_eq!(
            g["hash"].as_str().unwrap(),
            format!("{:#x}", rung.tx.hash),
            "{ctx}"
        );
        assert_eq!(
            g["to"].as_str().unwrap().to_lowercase(),
            "0x7a250d5630b4cf539739df2c5dacb4c659f2488d",
            "{ctx}"
        );
        // The amount word holds lot_units·2^i; the selector and other words are the template's.
        let data = alloy_hex(&g["data"].as_str().unwrap()[2..]);
        let (sel, k) = match side {
            Side::Buy => ("7ff36ab5", 0),
            Side::Sell => ("18cbafe5", 1),
        };
        assert_eq!(data[..4], alloy_hex(sel)[..], "{ctx}");
        let word = &data[4 + 32 * k..4 + 32 * (k + 1)];
        let units = U256::from_be_slice(word);
        assert_eq!(units, U256::from(1_000_000_000_000_000u64) << i, "{ctx}");
        assert!((rung.amount - 0.001 * f64::from(1u32 << i)).abs() < 1e-15);
        if r == 0 {
            assert_eq!(g["method"], "eth_sendRawTransaction", "{ctx}");
        } else {
            assert_eq!(g["method"], "eth_sendBundle", "{ctx}");
            assert_eq!(g["block"], 19_000_001, "{ctx}");
            assert_eq!(g["flashbots_signer"], fb_addr.as_str(), "{ctx}");
            assert_eq!(g["flashbots_claimed"], fb_addr.as_str(), "{ctx}");
        }
    }
}
