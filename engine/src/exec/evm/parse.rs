//! The text forms of transaction fields, each error naming the field and the value.

use alloy_primitives::{Address, Bytes, U256};

use super::EvmError;

/// Wei per gwei.
pub const WEI_PER_GWEI: u128 = 1_000_000_000;

/// A 0x-hex address (the `0x` is required). All-lowercase and all-uppercase are accepted as
/// is; mixed case must be a valid EIP-55 checksum (a typo in a checksummed address is caught).
pub fn address(field: &str, text: &str) -> Result<Address, EvmError> {
    let t = text.trim();
    let hex = t
        .strip_prefix("0x")
        .ok_or_else(|| EvmError::field(field, text, "an address starts with 0x"))?;
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(EvmError::field(
            field,
            text,
            "an address is 0x and 40 hex digits (20 bytes)",
        ));
    }
    let has_lower = hex.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = hex.bytes().any(|b| b.is_ascii_uppercase());
    if has_lower && has_upper {
        Address::parse_checksummed(t, None)
            .map_err(|_| EvmError::field(field, text, "mixed case but not a valid EIP-55 checksum"))
    } else {
        t.parse::<Address>()
            .map_err(|e| EvmError::field(field, text, e.to_string()))
    }
}

/// 0x-hex bytes (`0x` alone or empty text is no bytes; an odd number of digits is an error).
pub fn hex_bytes(field: &str, text: &str) -> Result<Bytes, EvmError> {
    let t = text.trim();
    let hex = t.strip_prefix("0x").unwrap_or(t);
    if !hex.len().is_multiple_of(2) {
        return Err(EvmError::field(
            field,
            shorten(text),
            "odd number of hex digits",
        ));
    }
    alloy_primitives::hex::decode(hex)
        .map(Bytes::from)
        .map_err(|_| EvmError::field(field, shorten(text), "not hex"))
}

/// A non-negative decimal integer that fits in 256 bits (wei).
pub fn wei(field: &str, text: &str) -> Result<U256, EvmError> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EvmError::field(field, text, "not a decimal integer (wei)"));
    }
    U256::from_str_radix(t, 10).map_err(|_| EvmError::field(field, text, "larger than 2^256 - 1"))
}

/// A non-negative decimal integer that fits in 64 bits.
pub fn u64_dec(field: &str, text: &str) -> Result<u64, EvmError> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EvmError::field(field, text, "not a decimal integer"));
    }
    t.parse::<u64>()
        .map_err(|_| EvmError::field(field, text, "larger than 2^64 - 1"))
}

/// A decimal amount of gwei (`30`, `1.5`, `0.000000001`) converted exactly to wei; at most nine
/// decimals (1 wei), no exponent, no sign.
pub fn gwei(field: &str, text: &str) -> Result<u128, EvmError> {
    let t = text.trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return Err(EvmError::field(field, text, "not a decimal number of gwei"));
    }
    if frac.len() > 9 {
        return Err(EvmError::field(
            field,
            text,
            "more than 9 decimals (finer than 1 wei)",
        ));
    }
    let too_big = || EvmError::field(field, text, "too large");
    let int: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| too_big())?
    };
    let frac_wei: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse::<u128>().map_err(|_| too_big())? * 10u128.pow(9 - frac.len() as u32)
    };
    int.checked_mul(WEI_PER_GWEI)
        .and_then(|w| w.checked_add(frac_wei))
        .ok_or_else(too_big)
}

/// Formats wei as gwei exactly (`30`, `1.5`).
pub fn format_gwei(wei: u128) -> String {
    let int = wei / WEI_PER_GWEI;
    let frac = wei % WEI_PER_GWEI;
    if frac == 0 {
        return int.to_string();
    }
    let frac = format!("{frac:09}");
    format!("{int}.{}", frac.trim_end_matches('0'))
}

/// Long values (calldata) are cut in error messages.
fn shorten(text: &str) -> String {
    if text.chars().count() > 80 {
        let head: String = text.chars().take(77).collect();
        format!("{head}...")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = "0xd9e1459a7a482635700cbc20bbaf52d495ab9c96";
        let c = "0xD9e1459A7A482635700cBc20BBAF52D495Ab9C96";
        assert_eq!(address("--to", a).unwrap(), address("--to", c).unwrap());
        assert!(address("--to", &a.to_uppercase().replacen("0X", "0x", 1)).is_ok());
        // One letter's case flipped: a checksum typo.
        let bad = "0xd9e1459A7A482635700cBc20BBAF52D495Ab9C96";
        let e = address("--to", bad).unwrap_err().to_string();
        assert!(
            e.contains("--to") && e.contains("checksum") && e.contains(bad),
            "{e}"
        );
        for bad in [
            "",
            "d9e1459a7a482635700cbc20bbaf52d495ab9c96",
            "0x1234",
            "0xzz",
        ] {
            let e = address("--to", bad).unwrap_err().to_string();
            assert!(e.starts_with("--to"), "{e}");
        }
    }

    #[test]
    fn hex_data() {
        assert!(hex_bytes("--data", "0x").unwrap().is_empty());
        assert!(hex_bytes("--data", "").unwrap().is_empty());
        assert_eq!(hex_bytes("--data", "0xA9059cbb").unwrap().len(), 4);
        let e = hex_bytes("--data", "0xabc").unwrap_err().to_string();
        assert!(e.contains("--data") && e.contains("odd"), "{e}");
        let e = hex_bytes("--data", "0xzz").unwrap_err().to_string();
        assert!(e.contains("not hex"), "{e}");
    }

    #[test]
    fn wei_and_integers() {
        assert_eq!(wei("--value", "1").unwrap(), U256::from(1));
        assert_eq!(wei("--value", &U256::MAX.to_string()).unwrap(), U256::MAX);
        for bad in ["", "-1", "1.5", "1e18", "0x10"] {
            assert!(
                wei("--value", bad)
                    .unwrap_err()
                    .to_string()
                    .contains("--value")
            );
        }
        let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert!(wei("--value", over).is_err());
        assert_eq!(u64_dec("--nonce", "7").unwrap(), 7);
        assert!(u64_dec("--nonce", "18446744073709551616").is_err());
        assert!(u64_dec("--nonce", "-1").is_err());
    }

    #[test]
    fn gwei_is_exact() {
        assert_eq!(gwei("f", "30").unwrap(), 30_000_000_000);
        assert_eq!(gwei("f", "1.5").unwrap(), 1_500_000_000);
        assert_eq!(gwei("f", "0.000000001").unwrap(), 1);
        assert_eq!(gwei("f", ".5").unwrap(), 500_000_000);
        assert_eq!(gwei("f", "2.").unwrap(), 2_000_000_000);
        for bad in ["", ".", "-1", "1e9", "0.0000000001", "1,5", "abc"] {
            let e = gwei("--max-fee-gwei", bad).unwrap_err().to_string();
            assert!(e.starts_with("--max-fee-gwei"), "{e}");
        }
        assert!(gwei("f", &u128::MAX.to_string()).is_err());
        for w in [0u128, 1, 1_500_000_000, 30_000_000_000, 123_456_789_012] {
            assert_eq!(gwei("f", &format_gwei(w)).unwrap(), w);
        }
        assert_eq!(format_gwei(1_500_000_000), "1.5");
    }
}
