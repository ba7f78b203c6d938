//! End-to-end tests of `keel tx`, running the real binary, checked against an independent
//! implementation: the Python eth-account library (tests/py/eth_sign.py; .ci/run installs it).
//! Without eth-account these tests fail, saying how to install it; they never skip.

mod py_common;

use std::process::{Command, Output};

use keel_engine::exec::evm::U256;
use serde_json::{Value, json};

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";
const KEY_ADDRESS: &str = "0x14791697260E4c9A71f18484C9f997B308e59325";
const FIXTURE_RAW: &str = "0x02f86a0107843b9aca008506fc23ac0082520894d9e1459a7a482635700cbc20bbaf52d495ab9c960180c001a0b731e66f420343e06a929789670a2fbb59225b26f91e12b7e807cb6e6d23dbee9f7312075e74c138debda39e4509e0b0eb382126b08d35d19333cb8479b97484";

/// Runs keel with `args` and the given environment (nothing else of ours inherited that
/// matters: the key variables are set per call).
fn keel(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keel"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run keel")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("UTF-8")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("UTF-8")
}

/// Asks the eth-account helper; the request (with keys) goes on standard input.
fn eth_account(request: &Value) -> Value {
    py_common::python_json("eth_sign.py", request, "eth-account")
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
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn hex(b: &[u8]) -> String {
    format!(
        "0x{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

fn gwei_text(wei: u128) -> String {
    let (int, frac) = (wei / 1_000_000_000, wei % 1_000_000_000);
    if frac == 0 {
        int.to_string()
    } else {
        format!("{int}.{}", format!("{frac:09}").trim_end_matches('0'))
    }
}

/// A random key and random fields, spanning small and extreme values.
fn random_case(rng: &mut Rng) -> (String, Value) {
    let mut key = rng.bytes(32);
    key[0] &= 0x7f; // below the curve order
    key[31] |= 1; // not zero
    let pick = |rng: &mut Rng, small: u64| -> u64 {
        match rng.below(3) {
            0 => rng.below(small),
            1 => rng.next(),
            _ => u64::MAX - rng.below(3),
        }
    };
    let chain_id = 1 + pick(rng, 100_000).min(u64::MAX - 1);
    let max_fee: u128 = match rng.below(3) {
        0 => u128::from(rng.below(200_000_000_000)),
        1 => (u128::from(rng.next()) << 32) | u128::from(rng.next() as u32),
        _ => u128::from(rng.next()),
    };
    let tip = if max_fee == 0 {
        0
    } else {
        max_fee / u128::from(1 + rng.below(50))
    };
    let value = match rng.below(3) {
        0 => U256::from(rng.below(1_000_000)),
        1 => U256::from(rng.next()) * U256::from(1_000_000_000_000u64),
        _ => U256::from_limbs([rng.next(), rng.next(), rng.next(), rng.next()]),
    };
    let data_len = [0, 4, 36, 68, 200, 1000][rng.below(6) as usize];
    let tx = json!({
        "chain_id": chain_id,
        "nonce": pick(rng, 1000),
        "to": hex(&rng.bytes(20)),
        "value": value.to_string(),
        "data": hex(&rng.bytes(data_len)),
        "gas_limit": 21_000 + pick(rng, 1_000_000).min(u64::MAX - 21_000),
        "max_fee_per_gas": max_fee.to_string(),
        "max_priority_fee_per_gas": tip.to_string(),
    });
    (hex(&key), tx)
}

fn sign_args(tx: &Value, to: &str) -> Vec<String> {
    let n = |k: &str| tx[k].to_string().trim_matches('"').to_string();
    let wei = |k: &str| gwei_text(tx[k].as_str().unwrap().parse().unwrap());
    vec![
        "tx".into(),
        "sign".into(),
        "--key-env".into(),
        "KEEL_TEST_KEY".into(),
        "--chain-id".into(),
        n("chain_id"),
        "--nonce".into(),
        n("nonce"),
        "--to".into(),
        to.into(),
        "--value".into(),
        n("value"),
        "--data".into(),
        n("data"),
        "--gas-limit".into(),
        n("gas_limit"),
        "--max-fee-gwei".into(),
        wei("max_fee_per_gas"),
        "--priority-fee-gwei".into(),
        wei("max_priority_fee_per_gas"),
    ]
}

#[test]
fn sign_matches_eth_account_byte_for_byte_on_random_fields() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Rng(seed);
    let cases: Vec<(String, Value)> = (0..16).map(|_| random_case(&mut rng)).collect();
    let request = json!({
        "op": "sign",
        "cases": cases.iter().map(|(k, tx)| json!({"key": k, "tx": tx})).collect::<Vec<_>>(),
    });
    let reference = eth_account(&request);
    for (i, ((key, tx), want)) in cases
        .iter()
        .zip(reference["results"].as_array().unwrap())
        .enumerate()
    {
        // Alternate lowercase and EIP-55 checksummed recipients.
        let to = if i % 2 == 0 {
            tx["to"].as_str().unwrap().to_string()
        } else {
            want["to_checksummed"].as_str().unwrap().to_string()
        };
        let args = sign_args(tx, &to);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = keel(&args, &[("KEEL_TEST_KEY", key)]);
        assert!(o.status.success(), "seed {seed} case {i}: {}", stderr(&o));
        assert_eq!(
            stdout(&o).trim_end(),
            want["raw"].as_str().unwrap(),
            "seed {seed} case {i}: {tx}"
        );
        assert_eq!(stdout(&o).lines().count(), 1);

        // --json: raw, hash and sender agree with eth-account too.
        let mut json_args = args.clone();
        json_args.push("--json");
        let o = keel(&json_args, &[("KEEL_TEST_KEY", key)]);
        assert!(o.status.success(), "seed {seed} case {i}: {}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["raw"], want["raw"], "seed {seed} case {i}");
        assert_eq!(v["hash"], want["hash"], "seed {seed} case {i}");
        assert_eq!(v["from"], want["address"], "seed {seed} case {i}");
        assert_eq!(v["value"], tx["value"]);
        assert_eq!(v["max_fee_per_gas"], tx["max_fee_per_gas"]);

        // decode recovers the sender eth-account computes from the key, and every field.
        let o = keel(
            &["tx", "decode", want["raw"].as_str().unwrap(), "--json"],
            &[],
        );
        assert!(o.status.success(), "seed {seed} case {i}: {}", stderr(&o));
        let d: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(d["from"], want["address"], "seed {seed} case {i}");
        assert_eq!(d["hash"], want["hash"], "seed {seed} case {i}");
        assert_eq!(d["to"], want["to_checksummed"], "seed {seed} case {i}");
        for k in ["chain_id", "nonce", "gas_limit"] {
            assert_eq!(d[k], tx[k], "seed {seed} case {i}: {k}");
        }
        for k in [
            "value",
            "data",
            "max_fee_per_gas",
            "max_priority_fee_per_gas",
        ] {
            assert_eq!(d[k], tx[k], "seed {seed} case {i}: {k}");
        }
    }
}

#[test]
fn sign_reproduces_the_fixture_vector_and_decode_prints_it() {
    let o = keel(
        &[
            "tx",
            "sign",
            "--key-env",
            "KEEL_TEST_KEY",
            "--chain-id",
            "1",
            "--nonce",
            "7",
            "--to",
            "0xd9e1459a7a482635700cbc20bbaf52d495ab9c96",
            "--value",
            "1",
            "--gas-limit",
            "21000",
            "--max-fee-gwei",
            "30",
            "--priority-fee-gwei",
            "1",
        ],
        &[("KEEL_TEST_KEY", KEY)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{FIXTURE_RAW}\n"));

    let o = keel(&["tx", "decode", FIXTURE_RAW], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for want in [
        "chain_id                  1\n",
        "nonce                     7\n",
        "to                        0xD9e1459A7A482635700cBc20BBAF52D495Ab9C96\n",
        "max_fee_per_gas           30000000000 wei (30 gwei)\n",
        "hash                      0xd3b40ac615d644befbdc232714c6ccbbc1171e2328a7923cc11ebe31d56bc349\n",
        "from                      0x14791697260E4c9A71f18484C9f997B308e59325\n",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
}

#[test]
fn address_from_env_and_from_an_eth_account_keystore() {
    let o = keel(&["tx", "address", "--key-env", "K"], &[("K", KEY)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{KEY_ADDRESS}\n"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.json");
    let mut rng = Rng(42);
    let (key, _) = random_case(&mut rng);
    let made = eth_account(&json!({
        "op": "keystore", "key": key, "password": "correct horse",
        "path": path.to_str().unwrap(), "iterations": 4096,
    }));
    let want = made["address"].as_str().unwrap();
    let ks = path.to_str().unwrap();
    let o = keel(
        &[
            "tx",
            "address",
            "--keystore",
            ks,
            "--password-env",
            "PW",
            "--json",
        ],
        &[("PW", "correct horse")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["address"], want);

    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, "correct horse\n").unwrap();
    let o = keel(
        &[
            "tx",
            "address",
            "--keystore",
            ks,
            "--password-file",
            pw_file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim_end(), want);

    // The keystore signs what the same key in a variable signs.
    let sign = |key_flags: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["tx", "sign"];
        args.extend_from_slice(key_flags);
        args.extend_from_slice(&[
            "--chain-id",
            "5",
            "--nonce",
            "0",
            "--to",
            KEY_ADDRESS,
            "--gas-limit",
            "21000",
            "--max-fee-gwei",
            "2",
            "--priority-fee-gwei",
            "0.5",
        ]);
        let o = keel(&args, env);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    assert_eq!(
        sign(
            &["--keystore", ks, "--password-env", "PW"],
            &[("PW", "correct horse")]
        ),
        sign(&["--key-env", "K"], &[("K", &key)])
    );

    let o = keel(
        &["tx", "address", "--keystore", ks, "--password-env", "PW"],
        &[("PW", "wrong")],
    );
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("wrong password") && e.contains("key.json"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    check_no_secret(&o, &key[2..]);
}

/// Neither output stream contains the secret (hex, any case).
fn check_no_secret(o: &Output, secret_hex: &str) {
    let all = format!("{}{}", stdout(o), stderr(o)).to_lowercase();
    assert!(
        !all.contains(&secret_hex.to_lowercase()),
        "secret printed: {all}"
    );
}

#[test]
fn errors_are_one_line_naming_the_flag_and_never_show_a_key() {
    let base = [
        "tx",
        "sign",
        "--key-env",
        "K",
        "--chain-id",
        "1",
        "--nonce",
        "0",
        "--to",
        KEY_ADDRESS,
        "--gas-limit",
        "21000",
        "--max-fee-gwei",
        "30",
        "--priority-fee-gwei",
        "1",
    ];
    let with = |flag: &str, value: &str| -> Vec<String> {
        let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        let i = v.iter().position(|a| a == flag).unwrap();
        v[i + 1] = value.to_string();
        v
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (with("--chain-id", "0"), "--chain-id 0"),
        (with("--chain-id", "-1"), "--chain-id"),
        (with("--nonce", "x"), "--nonce"),
        (with("--to", "0x1234"), "--to"),
        (
            with("--to", "0x14791697260e4c9A71f18484C9f997B308e59325"),
            "checksum",
        ),
        (with("--gas-limit", "1.5"), "--gas-limit"),
        (with("--max-fee-gwei", "0.0000000001"), "--max-fee-gwei"),
        (
            with("--priority-fee-gwei", "31"),
            "--priority-fee-gwei 31 is above --max-fee-gwei 30",
        ),
        (
            with("--key-env", "UNSET_KEEL_VAR"),
            "UNSET_KEEL_VAR is not set",
        ),
        (with("--key-env", "BAD"), "environment variable BAD"),
        (with("--key-env", KEY), "looks like a key"),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = keel(&args, &[("K", KEY), ("BAD", "0x1234")]);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let e = stderr(&o);
        assert!(e.starts_with("error: ") && e.lines().count() == 1, "{e}");
        assert!(e.contains(want), "{want:?} not in {e}");
        assert!(o.stdout.is_empty());
        check_no_secret(&o, &KEY[2..]);
    }

    // A key typed where no value belongs is redacted from clap's own errors.
    for args in [
        vec!["tx", "address", KEY],
        vec!["tx", "address", "--key", KEY],
        vec!["tx", "sign", &KEY[2..]],
    ] {
        let o = keel(&args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        check_no_secret(&o, &KEY[2..]);
    }

    // Exactly one key source; a keystore needs a password source.
    for (args, want) in [
        (vec!["tx", "address"], "--key-env"),
        (
            vec!["tx", "address", "--key-env", "K", "--keystore", "f"],
            "cannot be used with",
        ),
        (vec!["tx", "address", "--keystore", "f"], "--password-env"),
        (
            vec!["tx", "address", "--key-env", "K", "--password-env", "P"],
            "--keystore",
        ),
    ] {
        let o = keel(&args, &[("K", KEY)]);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let e = stderr(&o);
        assert!(e.contains(want), "{args:?}: {want:?} not in {e}");
    }

    for (raw, want) in [
        ("0xzz", "not hex"),
        ("0x01c0", "type 0x01"),
        (&FIXTURE_RAW[..FIXTURE_RAW.len() - 2], "not a valid"),
    ] {
        let o = keel(&["tx", "decode", raw], &[]);
        assert_eq!(o.status.code(), Some(2));
        let e = stderr(&o);
        assert!(
            e.starts_with("error: raw transaction") && e.contains(want),
            "{e}"
        );
    }
}
