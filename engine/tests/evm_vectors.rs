//! The Ethereum vectors of shared/fixtures/venues/ethereum/vectors.json (checked with the
//! independent eth-account library): the EIP-1559 signature byte for byte, the Flashbots
//! header, decoding (our own output and a live mainnet transaction), and bad inputs.

use keel_engine::exec::evm::{
    self, AccessList, Address, B256, Eip1559Fields, EvmError, EvmSigner,
    FLASHBOTS_SIGNATURE_HEADER, FlashbotsSigner, U256, parse,
};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/venues/ethereum/vectors.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} is not a string"))
}

fn fixture_fields(tx: &Value) -> Eip1559Fields {
    let n = |k: &str| tx[k].as_u64().unwrap_or_else(|| panic!("{k}"));
    Eip1559Fields {
        chain_id: n("chain_id"),
        nonce: n("nonce"),
        max_priority_fee_per_gas: n("max_priority_fee_per_gas").into(),
        max_fee_per_gas: n("max_fee_per_gas").into(),
        gas_limit: n("gas_limit"),
        to: Some(parse::address("to", s(tx, "to")).unwrap()),
        value: U256::from(n("value")),
        data: parse::hex_bytes("data", s(tx, "data")).unwrap(),
        access_list: AccessList::default(),
    }
}

fn hex(b: &[u8]) -> String {
    format!(
        "0x{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

#[test]
fn eip1559_signed_vector_is_reproduced_exactly() {
    let v = &vectors()["eip1559_signed"];
    let signer = EvmSigner::from_hex(s(v, "private_key"), "fixture").unwrap();
    assert_eq!(signer.address().to_checksum(None), s(v, "address"));
    let signed = signer.sign_eip1559(&fixture_fields(&v["tx"])).unwrap();
    assert_eq!(hex(&signed.raw), s(v, "raw"));
    assert_eq!(format!("{:#x}", signed.hash), s(v, "hash"));
    assert_eq!(signed.from, signer.address());
}

#[test]
fn decode_round_trips_the_signed_vector() {
    let v = &vectors()["eip1559_signed"];
    let d = evm::decode_hex(s(v, "raw")).unwrap();
    assert_eq!(d.fields, fixture_fields(&v["tx"]));
    assert_eq!(d.from.to_checksum(None), s(v, "address"));
    assert_eq!(format!("{:#x}", d.hash), s(v, "hash"));
    // Re-signing the decoded fields gives the same bytes (RFC 6979 signatures are deterministic).
    let signer = EvmSigner::from_hex(s(v, "private_key"), "fixture").unwrap();
    assert_eq!(
        hex(&signer.sign_eip1559(&d.fields).unwrap().raw),
        s(v, "raw")
    );
}

#[test]
fn decode_recovers_the_live_mainnet_sender() {
    let v = &vectors()["eip1559_live_mainnet"];
    let d = evm::decode_hex(s(v, "raw")).unwrap();
    assert_eq!(d.from.to_checksum(None), s(v, "from"));
    assert_eq!(d.fields.to.unwrap().to_checksum(None), s(v, "to"));
    assert_eq!(format!("{:#x}", d.hash), s(v, "hash"));
}

#[test]
fn decode_round_trips_contract_creation_calldata_and_access_lists() {
    let signer = EvmSigner::from_hex(&format!("0x{}", "11".repeat(32)), "test").unwrap();
    let mut fields = Eip1559Fields {
        chain_id: 11155111,
        nonce: u64::MAX - 1,
        max_priority_fee_per_gas: 0,
        max_fee_per_gas: u128::MAX,
        gas_limit: 30_000_000,
        to: None,
        value: U256::MAX,
        data: parse::hex_bytes("data", &format!("0x{}", "ab".repeat(1000))).unwrap(),
        access_list: AccessList::default(),
    };
    let signed = signer.sign_eip1559(&fields).unwrap();
    let d = evm::decode(&signed.raw).unwrap();
    assert_eq!(d.fields, fields);
    assert_eq!(d.from, signer.address());
    assert_eq!(d.hash, signed.hash);

    fields.to = Some(Address::repeat_byte(0x42));
    fields.access_list = AccessList(vec![evm::AccessListItem {
        address: Address::repeat_byte(0x07),
        storage_keys: vec![B256::repeat_byte(0x01), B256::ZERO],
    }]);
    let signed = signer.sign_eip1559(&fields).unwrap();
    let d = evm::decode(&signed.raw).unwrap();
    assert_eq!(d.fields, fields);
    assert_eq!(d.from, signer.address());
}

#[test]
fn flashbots_signature_vector() {
    let v = &vectors()["flashbots_signature"];
    let body = s(v, "body");
    assert_eq!(
        format!("{:#x}", evm::keccak256(body.as_bytes())),
        s(v, "body_keccak")
    );
    let fb = FlashbotsSigner::new(EvmSigner::from_hex(s(v, "private_key"), "fixture").unwrap());
    let header = format!(
        "{FLASHBOTS_SIGNATURE_HEADER}: {}",
        fb.header_value(body.as_bytes()).unwrap()
    );
    assert_eq!(header, s(v, "header"));
    // The relay's side: the eth-account header verifies against the body, and not another.
    let value = s(v, "header")
        .strip_prefix("X-Flashbots-Signature: ")
        .unwrap();
    assert_eq!(evm::verify_header(value, body.as_bytes()), Ok(fb.address()));
    assert!(evm::verify_header(value, b"{}").is_err());
}

#[test]
fn bad_transactions_and_fields_are_errors_naming_the_input() {
    let v = &vectors()["eip1559_signed"];
    let signer = EvmSigner::from_hex(s(v, "private_key"), "fixture").unwrap();
    let mut f = fixture_fields(&v["tx"]);
    f.chain_id = 0;
    let e = signer.sign_eip1559(&f).unwrap_err().to_string();
    assert!(e.contains("chain id"), "{e}");
    let mut f = fixture_fields(&v["tx"]);
    f.max_priority_fee_per_gas = f.max_fee_per_gas + 1;
    let e = signer.sign_eip1559(&f).unwrap_err().to_string();
    assert!(
        e.contains("max priority fee") && e.contains("max fee"),
        "{e}"
    );

    let raw = s(v, "raw");
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "empty"),
        ("0x".into(), "empty"),
        ("0xzz".into(), "not hex"),
        (format!("{raw}0"), "not hex"),
        (raw[..raw.len() - 2].to_string(), "not a valid"),
        (format!("{raw}00"), "not a valid"),
        ("0x01c0".into(), "type 0x01"),
        ("0xf86c0185".into(), "legacy"),
        ("0x02".into(), "not a valid"),
    ];
    for (text, want) in cases {
        let e = evm::decode_hex(&text).unwrap_err();
        assert!(matches!(e, EvmError::Decode(_)), "{text}: {e:?}");
        let msg = e.to_string();
        assert!(
            msg.starts_with("raw transaction") && msg.contains(want),
            "{text}: {msg}"
        );
    }
    // A signature whose r is zero does not recover.
    let mut bad = hex_decode(raw);
    let n = bad.len();
    // r is the 32 bytes after `a0` near the end: ... y_parity(1) a0 r(32) a0 s(32).
    bad[n - 65..n - 33].fill(0);
    let e = evm::decode(&bad).unwrap_err().to_string();
    assert!(e.contains("raw transaction"), "{e}");
}

fn hex_decode(text: &str) -> Vec<u8> {
    let t = text.trim_start_matches("0x");
    (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&t[i..i + 2], 16).unwrap())
        .collect()
}
