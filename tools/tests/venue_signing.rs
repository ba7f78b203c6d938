//! Fresh venue signatures checked against independent implementations (tests/py/venue_sign.py,
//! Python's `msgpack`, `eth-utils` keccak and `eth-account` EIP-712 for Hyperliquid; Python's
//! `hmac` for Binance). Without those packages these tests fail, saying how to install them
//! (.ci/run does); they never skip.

mod py_common;

use keel_engine::exec::binance::{Fields, HmacSigner, RequestTemplate};
use keel_engine::exec::evm::EvmSigner;
use keel_engine::exec::hyperliquid::{
    Action, LimitWire, Network, OrderTypeWire, OrderWire, Tif, action_hash, decimal_wire,
    sign_l1_action,
};
use keel_feeds::event::Side;
use serde_json::{Value, json};

fn reference(request: &Value) -> Value {
    py_common::python_json("venue_sign.py", request, "eth-account msgpack")
}

/// splitmix64: reproducible random fields; the seed is printed with any failure.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn fresh_hyperliquid_signatures_match_eth_account_and_msgpack() {
    const SEED: u64 = 0x4b45_454c_686c;
    let mut rng = Rng(SEED);
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    for i in 0..24 {
        let key = format!(
            "0x{:016x}{:016x}{:016x}{:016x}",
            rng.next() | 1,
            rng.next(),
            rng.next(),
            rng.next()
        );
        let signer = EvmSigner::from_hex(&key, "test").unwrap();
        let action = if i % 5 == 4 {
            Action::Noop
        } else {
            Action::order(OrderWire {
                a: rng.below(200) as u32,
                b: rng.below(2) == 0,
                p: decimal_wire((rng.below(10_000_000) + 1) as f64 / 100.0).unwrap(),
                s: decimal_wire((rng.below(1_000_000) + 1) as f64 / 10_000.0).unwrap(),
                r: rng.below(2) == 0,
                t: OrderTypeWire {
                    limit: LimitWire {
                        tif: [Tif::Gtc, Tif::Ioc, Tif::Alo][rng.below(3) as usize],
                    },
                },
                c: (rng.below(2) == 0).then(|| format!("0x{:016x}{:016x}", rng.next(), rng.next())),
            })
        };
        let nonce = 1_700_000_000_000 + rng.below(1 << 40);
        let network = if rng.below(2) == 0 {
            Network::Mainnet
        } else {
            Network::Testnet
        };
        let packed = action.msgpack().unwrap();
        let sig = sign_l1_action(&signer, &packed, nonce, None, network).unwrap();
        let sig_json: Value = serde_json::from_str(&sig.json()).unwrap();
        ours.push(json!({
            "msgpack": packed.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "connection_id": format!("{:#x}", action_hash(&packed, nonce, None, None)),
            "r": sig_json["r"], "s": sig_json["s"], "v": sig_json["v"],
            "address": signer.address().to_checksum(None),
        }));
        cases.push(json!({
            "key": key,
            "action_json": String::from_utf8(action.json().unwrap()).unwrap(),
            "nonce": nonce,
            "network": if network == Network::Mainnet { "mainnet" } else { "testnet" },
        }));
    }
    let theirs = reference(&json!({"op": "hyperliquid", "cases": cases}));
    let theirs = theirs["results"].as_array().unwrap();
    assert_eq!(theirs.len(), ours.len());
    for (k, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(a, b, "seed {SEED:#x} case {k}: {}", cases[k]);
    }
}

#[test]
fn fresh_binance_signatures_match_python_hmac() {
    let secret = "Zx9KeelTestSecret0123456789abcdefABCDEF";
    let signer = HmacSigner::new(secret.as_bytes());
    let mut rng = Rng(7);
    let mut requests = Vec::new();
    let mut ours = Vec::new();
    for i in 0..16u64 {
        let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
        let t = RequestTemplate::market_order("apiKey123", "BTCUSDT", side, 1000 + i, 3).unwrap();
        let cid = format!("k1f-{i}");
        let mut buf = Vec::with_capacity(t.max_len());
        t.fill(
            &Fields {
                client_order_id: cid.as_bytes(),
                quantity: (rng.below(100_000) + 1) as f64 / 1000.0,
                price: f64::NAN,
                timestamp_ms: 1_700_000_000_000 + rng.below(1 << 30),
            },
            &signer,
            &mut buf,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&buf).unwrap();
        ours.push(v["params"]["signature"].clone());
        requests.push(String::from_utf8(buf).unwrap());
    }
    let theirs = reference(&json!({"op": "binance", "secret": secret, "requests": requests}));
    assert_eq!(theirs["signatures"], Value::Array(ours));
}
