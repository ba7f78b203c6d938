//! `keel tx`: sign and inspect Ethereum transactions offline (raw EIP-2718 hex out).
//!
//! Owns the subcommand only: argument parsing and output. Keys, signing, decoding and the
//! field formats live in [`keel_engine::exec::evm`]. A private key is never a command-line value
//! (STYLE.md): it comes from an environment variable (`--key-env`) or an encrypted keystore
//! (`--keystore` with `--password-env` or `--password-file`), and no error ever shows it.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use keel_engine::exec::evm::{
    self, DecodedTx, Eip1559Fields, EvmSigner, KeySource, PasswordSource, parse,
};
use serde_json::{Value, json};

/// `keel tx --help`, above the subcommands.
pub const LONG_ABOUT: &str = "\
Sign and inspect Ethereum transactions offline: EIP-1559 (type 2) only, raw EIP-2718 hex out.

The private key is never a command-line value: --key-env NAME reads it (0x-hex, 32 bytes) from
the environment variable NAME, or --keystore FILE decrypts an encrypted keystore v3 JSON file
(geth, eth-account, `cast wallet`) with the password from --password-env NAME or
--password-file FILE (one trailing line break removed). Nothing is sent anywhere.";

/// `keel tx --help`, below the subcommands.
pub const AFTER_HELP: &str = "\
Examples:
  KEEL_KEY=0x... keel tx address --key-env KEEL_KEY
  keel tx sign --key-env KEEL_KEY --chain-id 1 --nonce 7 --to 0xd9e1...9c96 --value 1 \\
      --gas-limit 21000 --max-fee-gwei 30 --priority-fee-gwei 1
  keel tx sign --keystore key.json --password-file pw.txt ... --json
  keel tx decode 0x02f86a...";

/// Arguments of `keel tx`.
#[derive(Args, Debug)]
pub struct TxArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TxCommand,
}

/// `keel tx` subcommands.
#[derive(Subcommand, Debug)]
pub enum TxCommand {
    /// Sign an EIP-1559 transaction; prints the raw EIP-2718 transaction as 0x-hex on one line.
    Sign(Box<SignArgs>),
    /// Print the address of a key.
    Address(AddressArgs),
    /// Decode a raw EIP-1559 transaction: the fields, the hash and the recovered sender.
    Decode(DecodeArgs),
}

/// Where the key comes from (exactly one of --key-env and --keystore).
#[derive(Args, Debug)]
pub struct KeyArgs {
    /// Name of the environment variable holding the private key (0x-hex, 32 bytes).
    #[arg(
        long,
        value_name = "VAR",
        required_unless_present = "keystore",
        conflicts_with = "keystore"
    )]
    pub key_env: Option<String>,
    /// Encrypted keystore v3 JSON file (needs --password-env or --password-file).
    #[arg(long, value_name = "FILE")]
    pub keystore: Option<PathBuf>,
    /// Name of the environment variable holding the keystore's password.
    #[arg(
        long,
        value_name = "VAR",
        requires = "keystore",
        conflicts_with = "password_file"
    )]
    pub password_env: Option<String>,
    /// File holding the keystore's password (one trailing line break removed).
    #[arg(long, value_name = "FILE", requires = "keystore")]
    pub password_file: Option<PathBuf>,
}

/// Arguments of `keel tx sign`.
#[derive(Args, Debug)]
pub struct SignArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// EIP-155 chain id (1 mainnet, 11155111 Sepolia); 0 is refused.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub chain_id: String,
    /// The sender's nonce.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub nonce: String,
    /// Recipient, 0x-hex (a mixed-case address must be a valid EIP-55 checksum).
    #[arg(long, value_name = "ADDR")]
    pub to: String,
    /// Value in wei (decimal integer).
    #[arg(
        long,
        value_name = "WEI",
        default_value = "0",
        allow_negative_numbers = true
    )]
    pub value: String,
    /// Calldata, 0x-hex.
    #[arg(long, value_name = "HEX", default_value = "0x")]
    pub data: String,
    /// Gas limit.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub gas_limit: String,
    /// Fee cap per gas in gwei (decimal, up to 9 decimals: exact to the wei).
    #[arg(long, value_name = "GWEI", allow_negative_numbers = true)]
    pub max_fee_gwei: String,
    /// Priority fee (tip) per gas in gwei (≤ --max-fee-gwei).
    #[arg(long, value_name = "GWEI", allow_negative_numbers = true)]
    pub priority_fee_gwei: String,
    /// Print one JSON object: raw, hash, from and the fields (wei amounts as decimal strings).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `keel tx address`.
#[derive(Args, Debug)]
pub struct AddressArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Print {"address": ...}.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `keel tx decode`.
#[derive(Args, Debug)]
pub struct DecodeArgs {
    /// The raw transaction, 0x-hex (`-` reads it from standard input).
    #[arg(value_name = "HEX")]
    pub raw: String,
    /// Print one JSON object: raw, hash, from, the fields and the signature (y_parity, r, s).
    #[arg(long)]
    pub json: bool,
}

/// Runs `keel tx`.
pub fn run(args: &TxArgs) -> Result<()> {
    match &args.command {
        TxCommand::Sign(a) => sign(a),
        TxCommand::Address(a) => address(a),
        TxCommand::Decode(a) => decode(a),
    }
}

fn sign(a: &SignArgs) -> Result<()> {
    let fields = Eip1559Fields {
        chain_id: parse::u64_dec("--chain-id", &a.chain_id)?,
        nonce: parse::u64_dec("--nonce", &a.nonce)?,
        max_priority_fee_per_gas: parse::gwei("--priority-fee-gwei", &a.priority_fee_gwei)?,
        max_fee_per_gas: parse::gwei("--max-fee-gwei", &a.max_fee_gwei)?,
        gas_limit: parse::u64_dec("--gas-limit", &a.gas_limit)?,
        to: Some(parse::address("--to", &a.to)?),
        value: parse::wei("--value", &a.value)?,
        data: parse::hex_bytes("--data", &a.data)?,
        access_list: Default::default(),
    };
    if fields.chain_id == 0 {
        bail!("--chain-id 0: 0 is no chain (EIP-155 replay protection needs a real chain id)");
    }
    if fields.max_priority_fee_per_gas > fields.max_fee_per_gas {
        bail!(
            "--priority-fee-gwei {} is above --max-fee-gwei {}",
            a.priority_fee_gwei.trim(),
            a.max_fee_gwei.trim()
        );
    }
    let signer = load_key(&a.key)?;
    let signed = signer.sign_eip1559(&fields)?;
    let raw = evm_hex(&signed.raw);
    let mut out = std::io::stdout().lock();
    if a.json {
        let mut v = fields_json(&fields);
        v["raw"] = json!(raw);
        v["hash"] = json!(format!("{:#x}", signed.hash));
        v["from"] = json!(signed.from.to_checksum(None));
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "{raw}")?;
    }
    Ok(())
}

fn address(a: &AddressArgs) -> Result<()> {
    let addr = load_key(&a.key)?.address().to_checksum(None);
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", json!({ "address": addr }))?;
    } else {
        writeln!(out, "{addr}")?;
    }
    Ok(())
}

fn decode(a: &DecodeArgs) -> Result<()> {
    let text = if a.raw == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else {
        a.raw.clone()
    };
    let d = evm::decode_hex(&text)?;
    let raw = evm_hex(&hex_to_bytes(&text));
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", decoded_json(&d, &raw))?;
    } else {
        write!(out, "{}", decoded_text(&d))?;
    }
    Ok(())
}

/// The fields as JSON: integers that fit in 53 bits as numbers, wei amounts as decimal strings.
fn fields_json(f: &Eip1559Fields) -> Value {
    json!({
        "type": 2,
        "chain_id": f.chain_id,
        "nonce": f.nonce,
        "to": f.to.map(|a| a.to_checksum(None)),
        "value": f.value.to_string(),
        "data": evm_hex(&f.data),
        "gas_limit": f.gas_limit,
        "max_fee_per_gas": f.max_fee_per_gas.to_string(),
        "max_priority_fee_per_gas": f.max_priority_fee_per_gas.to_string(),
        "access_list": f.access_list.0.iter().map(|item| json!({
            "address": item.address.to_checksum(None),
            "storage_keys": item.storage_keys.iter().map(|k| format!("{k:#x}")).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn decoded_json(d: &DecodedTx, raw: &str) -> Value {
    let mut v = fields_json(&d.fields);
    v["raw"] = json!(raw);
    v["hash"] = json!(format!("{:#x}", d.hash));
    v["from"] = json!(d.from.to_checksum(None));
    v["y_parity"] = json!(u8::from(d.y_parity));
    v["r"] = json!(format!("{:#x}", d.r));
    v["s"] = json!(format!("{:#x}", d.s));
    v
}

fn decoded_text(d: &DecodedTx) -> String {
    let f = &d.fields;
    let mut s = String::new();
    let mut line = |k: &str, v: String| {
        s.push_str(&format!("{k:<26}{v}\n"));
    };
    line("type", "2 (EIP-1559)".into());
    line("chain_id", f.chain_id.to_string());
    line("nonce", f.nonce.to_string());
    line(
        "to",
        f.to.map_or("(contract creation)".into(), |a| a.to_checksum(None)),
    );
    line("value", format!("{} wei", f.value));
    line("data", evm_hex(&f.data));
    line("gas_limit", f.gas_limit.to_string());
    line(
        "max_fee_per_gas",
        format!(
            "{} wei ({} gwei)",
            f.max_fee_per_gas,
            parse::format_gwei(f.max_fee_per_gas)
        ),
    );
    line(
        "max_priority_fee_per_gas",
        format!(
            "{} wei ({} gwei)",
            f.max_priority_fee_per_gas,
            parse::format_gwei(f.max_priority_fee_per_gas)
        ),
    );
    line("access_list", format!("{} entries", f.access_list.0.len()));
    for item in &f.access_list.0 {
        let keys: Vec<String> = item
            .storage_keys
            .iter()
            .map(|k| format!("{k:#x}"))
            .collect();
        line(
            "",
            format!("{} [{}]", item.address.to_checksum(None), keys.join(", ")),
        );
    }
    line("hash", format!("{:#x}", d.hash));
    line("from", d.from.to_checksum(None));
    s
}

/// Loads the key the flags name. Variable names that look like a key (or are not variable
/// names at all) are refused without being shown: someone put a secret where a name belongs.
fn load_key(k: &KeyArgs) -> Result<EvmSigner> {
    let source = if let Some(var) = &k.key_env {
        // clap drops `requires = "keystore"` when --keystore conflicts with a present flag.
        if k.password_env.is_some() || k.password_file.is_some() {
            bail!("--password-env and --password-file go with --keystore, not with --key-env");
        }
        KeySource::Env(var_name("--key-env", var)?)
    } else if let Some(path) = &k.keystore {
        let password = match (&k.password_env, &k.password_file) {
            (Some(var), _) => PasswordSource::Env(var_name("--password-env", var)?),
            (None, Some(file)) => PasswordSource::File(file.clone()),
            (None, None) => bail!("--keystore needs --password-env VAR or --password-file FILE"),
        };
        KeySource::Keystore {
            path: path.clone(),
            password,
        }
    } else {
        bail!("a key is needed: --key-env VAR or --keystore FILE");
    };
    Ok(source.load()?)
}

/// Checks that `name` is an environment variable's name (`[A-Za-z_][A-Za-z0-9_]*`) and not a
/// hex key; the error never repeats the value.
fn var_name(flag: &str, name: &str) -> Result<String> {
    let hexish = name.strip_prefix("0x").unwrap_or(name);
    if hexish.len() >= 32 && hexish.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "{flag} takes the NAME of an environment variable, and this value looks like a key \
             (not shown); put the key in a variable: {flag} KEEL_KEY"
        );
    }
    let valid = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        bail!(
            "{flag} takes the NAME of an environment variable ([A-Za-z_][A-Za-z0-9_]*); \
             the value given is not one (not shown)"
        );
    }
    Ok(name.to_string())
}

fn evm_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * bytes.len());
    s.push_str("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Hex text already validated by `decode_hex`, as bytes.
fn hex_to_bytes(text: &str) -> Vec<u8> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    (0..t.len() / 2)
        .filter_map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_names_are_checked_without_echo() {
        assert_eq!(var_name("--key-env", "KEEL_KEY").unwrap(), "KEEL_KEY");
        let key = "0x0123456789012345678901234567890123456789012345678901234567890123";
        for bad in [key, &key[2..], "my key", "1ABC", ""] {
            let e = var_name("--key-env", bad).unwrap_err().to_string();
            assert!(e.starts_with("--key-env"), "{e}");
            if !bad.is_empty() {
                assert!(!e.contains(bad), "{e}");
            }
        }
    }
}
