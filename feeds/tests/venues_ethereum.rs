//! Ethereum parser on `eth_subscribe` `newHeads` messages written from the JSON-RPC
//! documentation (a post-Cancun mainnet head with every field a node sends), the subscription
//! result and errors; quantities beyond 64 bits are errors.

mod venues_support;

use keel_feeds::venues::json::JsonErrorKind;
use keel_feeds::venues::{EthereumParser, Parsed, Problem, ethereum};
use keel_feeds::{EventBody, InstrumentId, Venue};
use venues_support::*;

fn zeros(n: usize) -> String {
    "0".repeat(n)
}

/// A newHeads notification as geth sends it.
fn new_heads(base_fee: Option<&str>, number: &str) -> Vec<u8> {
    let h = |c: char| format!("0x{}", c.to_string().repeat(64));
    let base_fee = base_fee
        .map(|b| format!(r#""baseFeePerGas":"{b}","#))
        .unwrap_or_default();
    format!(
        r#"{{"jsonrpc":"2.0","method":"eth_subscription","params":{{"subscription":"0x9ce59a13059e417087c02d3236a0b1cc","result":{{"parentHash":"{}","sha3Uncles":"0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347","miner":"0x95222290dd7278aa3ddd389cc1e1d165cc4bafe5","stateRoot":"{}","transactionsRoot":"{}","receiptsRoot":"{}","logsBloom":"0x{}","difficulty":"0x0","number":"{number}","gasLimit":"0x1c9c380","gasUsed":"0xe4e1c0","timestamp":"0x65f5a1c3","extraData":"0x6265617665726275696c642e6f7267","mixHash":"{}","nonce":"0x0000000000000000",{base_fee}"withdrawalsRoot":"{}","blobGasUsed":"0x20000","excessBlobGas":"0x0","parentBeaconBlockRoot":"{}","hash":"{}"}}}}}}"#,
        h('a'),
        h('b'),
        h('c'),
        h('d'),
        zeros(512),
        h('e'),
        h('f'),
        h('1'),
        h('2'),
    )
    .into_bytes()
}

#[test]
fn new_heads_become_chain_heads() {
    let mut p = EthereumParser::new();
    let msg = new_heads(Some("0x5d21dba00"), "0x1312d00");
    let (parsed, evs) = ok(&mut p, &msg, 42);
    assert_eq!(parsed, Parsed::Events { count: 1 });
    assert_events(
        &evs,
        &[ev(
            Venue::Ethereum,
            InstrumentId::NONE,
            0x65f5_a1c3 * 1_000_000_000,
            42,
            EventBody::ChainHead {
                number: 20_000_000,
                base_fee_wei: 25_000_000_000,
                gas_used: 15_000_000,
                gas_limit: 30_000_000,
                timestamp_s: 1_710_596_547,
            },
        )],
    );
    // Before London there is no base fee: 0.
    let msg = new_heads(None, "0x1");
    let (_, evs) = ok(&mut p, &msg, 0);
    assert!(matches!(
        evs[0].body,
        EventBody::ChainHead {
            number: 1,
            base_fee_wei: 0,
            ..
        }
    ));
    // `params` before `method`.
    let reordered = br#"{"params":{"result":{"number":"0x10","gasUsed":"0x0","gasLimit":"0x1","timestamp":"0x2","baseFeePerGas":"0x7"},"subscription":"0x1"},"method":"eth_subscription","jsonrpc":"2.0"}"#;
    let (_, evs) = ok(&mut p, reordered, 0);
    assert!(matches!(
        evs[0].body,
        EventBody::ChainHead {
            number: 16,
            base_fee_wei: 7,
            gas_used: 0,
            gas_limit: 1,
            timestamp_s: 2
        }
    ));
    assert_eq!(evs[0].exchange_ts_ns, 2_000_000_000);
}

#[test]
fn quantities_beyond_64_bits_are_errors() {
    let mut p = EthereumParser::new();
    // 2^64 - 1 fits; 2^64 does not (leading zeros do not count).
    let max = new_heads(Some("0xffffffffffffffff"), "0x1");
    let (_, evs) = ok(&mut p, &max, 0);
    assert!(matches!(
        evs[0].body,
        EventBody::ChainHead {
            base_fee_wei: u64::MAX,
            ..
        }
    ));
    let padded = new_heads(Some("0x0000ffffffffffffffff"), "0x1");
    ok(&mut p, &padded, 0);
    for bad in ["0x10000000000000000", "0x1ffffffffffffffffffff"] {
        let err = rejected(&mut p, &new_heads(Some(bad), "0x1"));
        assert!(
            matches!(err.problem, Problem::Json(e) if e.kind == JsonErrorKind::OutOfRange),
            "{err}"
        );
    }
    for bad in ["0x", "12", "0xg1", ""] {
        let err = rejected(&mut p, &new_heads(Some("0x1"), bad));
        assert!(
            matches!(err.problem, Problem::Json(e) if e.kind == JsonErrorKind::InvalidNumber),
            "{bad}: {err}"
        );
    }
    let no_number = br#"{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"0x1","result":{"gasUsed":"0x0","gasLimit":"0x1","timestamp":"0x2"}}}"#;
    assert_eq!(
        rejected(&mut p, no_number).problem,
        Problem::Missing("number")
    );
    // A timestamp in seconds beyond u64 nanoseconds.
    let far = br#"{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"0x1","result":{"number":"0x1","gasUsed":"0x0","gasLimit":"0x1","timestamp":"0xffffffffffff"}}}"#;
    assert_eq!(
        rejected(&mut p, far).problem,
        Problem::TimestampRange("timestamp")
    );
}

#[test]
fn subscription_result_and_errors() {
    let mut p = EthereumParser::new();
    assert_eq!(
        ok(
            &mut p,
            br#"{"jsonrpc":"2.0","id":1,"result":"0x9cef478923ff08bf67fde6c64013158d"}"#,
            0
        )
        .0,
        Parsed::Ack {
            id: Some(1),
            result: br#""0x9cef478923ff08bf67fde6c64013158d""#
        }
    );
    assert_eq!(
        ok(&mut p, br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"the method eth_subscribe does not exist/is not available"}}"#, 0).0,
        Parsed::Error { id: Some(1), code: -32601, message: b"the method eth_subscribe does not exist/is not available" }
    );
    assert_eq!(
        ok(
            &mut p,
            br#"{"jsonrpc":"2.0","method":"eth_unknown","params":[]}"#,
            0
        )
        .0,
        Parsed::UnknownChannel {
            channel: b"eth_unknown"
        }
    );
    let s = p.stats();
    assert_eq!(
        (s.messages, s.control, s.unknown_channels, s.events),
        (3, 2, 1, 0)
    );
}

#[test]
fn subscribe_request() {
    let mut out = Vec::new();
    ethereum::subscribe_new_heads(&mut out, 7);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"jsonrpc":"2.0","id":7,"method":"eth_subscribe","params":["newHeads"]})
    );
}
