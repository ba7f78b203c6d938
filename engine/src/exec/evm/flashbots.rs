//! The Flashbots request signature: relays and builders identify a searcher by the
//! `X-Flashbots-Signature: <address>:<0x signature>` header, where the signature is an EIP-191
//! (`personal_sign`) signature of the text `0x<hex keccak256 of the JSON body>` — the
//! `wallet.signMessage(ethers.utils.id(body))` of the Flashbots docs. The key is a separate
//! reputation key, never the key that holds funds. [`verify_header`] is the relay's side:
//! it recovers the signer and checks it is the address claimed.

use alloy_primitives::{Address, Signature, keccak256};

use super::{EvmError, EvmSigner};

/// The header's name.
pub const FLASHBOTS_SIGNATURE_HEADER: &str = "X-Flashbots-Signature";

/// Signs request bodies for Flashbots-style relays with a reputation key.
#[derive(Debug)]
pub struct FlashbotsSigner {
    key: EvmSigner,
}

impl FlashbotsSigner {
    /// Wraps the reputation key (load it from its own `KeySource`, not the funding key's).
    pub fn new(reputation_key: EvmSigner) -> Self {
        Self {
            key: reputation_key,
        }
    }

    /// The reputation address (what relays credit).
    pub fn address(&self) -> alloy_primitives::Address {
        self.key.address()
    }

    /// The header value for `body` (the exact bytes sent): `0x<Address, EIP-55>:0x<r s v>`,
    /// v = 27 or 28.
    pub fn header_value(&self, body: &[u8]) -> Result<String, EvmError> {
        let digest = format!("{:#x}", keccak256(body));
        let sig = self.key.sign_message(digest.as_bytes())?;
        Ok(format!(
            "{}:{}",
            self.key.address().to_checksum(None),
            alloy_primitives::hex::encode_prefixed(sig.as_bytes())
        ))
    }
}

/// Why an `X-Flashbots-Signature` value was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlashbotsAuthError {
    /// Not `<address>:<0x signature>`.
    #[error("X-Flashbots-Signature is not <address>:<0x signature>")]
    Format,
    /// The address part is not a 20-byte 0x-hex address.
    #[error("X-Flashbots-Signature address {0:?} is not a 0x-hex address")]
    Address(String),
    /// The signature part is not 65 bytes of 0x-hex with v = 27/28 (or 0/1).
    #[error("X-Flashbots-Signature signature is not 65 bytes of 0x-hex r||s||v")]
    Signature,
    /// The signature recovers to another address than the one claimed (or to none).
    #[error("X-Flashbots-Signature does not match: signed by {recovered}, claims {claimed}")]
    Mismatch {
        /// The address in the header.
        claimed: Address,
        /// The address that signed the body (zero if recovery failed).
        recovered: Address,
    },
}

/// Checks a header value against the exact body bytes, as a relay does: parses
/// `<address>:<0x signature>`, recovers the EIP-191 signer of `0x<hex keccak256(body)>` and
/// requires it to be the claimed address (case-insensitive hex). Returns that address.
pub fn verify_header(value: &str, body: &[u8]) -> Result<Address, FlashbotsAuthError> {
    let (addr_text, sig_text) = value
        .trim()
        .split_once(':')
        .ok_or(FlashbotsAuthError::Format)?;
    let claimed: Address = addr_text
        .parse()
        .map_err(|_| FlashbotsAuthError::Address(addr_text.chars().take(50).collect()))?;
    let sig_hex = sig_text
        .strip_prefix("0x")
        .ok_or(FlashbotsAuthError::Signature)?;
    let raw = alloy_primitives::hex::decode(sig_hex).map_err(|_| FlashbotsAuthError::Signature)?;
    let sig = Signature::try_from(raw.as_slice()).map_err(|_| FlashbotsAuthError::Signature)?;
    let digest = format!("{:#x}", keccak256(body));
    let recovered = sig
        .recover_address_from_msg(digest.as_bytes())
        .unwrap_or(Address::ZERO);
    if recovered != claimed {
        return Err(FlashbotsAuthError::Mismatch { claimed, recovered });
    }
    Ok(claimed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::evm::EvmSigner;

    #[test]
    fn verify_accepts_its_signature_and_refuses_tampering() {
        let fb = FlashbotsSigner::new(
            EvmSigner::from_hex(
                "0x0123456789012345678901234567890123456789012345678901234567890123",
                "test",
            )
            .unwrap(),
        );
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"eth_sendBundle","params":[]}"#;
        let header = fb.header_value(body).unwrap();
        assert_eq!(verify_header(&header, body), Ok(fb.address()));
        assert_eq!(
            verify_header(&header.to_lowercase(), body),
            Ok(fb.address())
        );
        // Another body: recovers someone else.
        let e = verify_header(&header, b"{}").unwrap_err();
        assert!(
            matches!(e, FlashbotsAuthError::Mismatch { claimed, .. } if claimed == fb.address()),
            "{e}"
        );
        // Another claimed address.
        let other = format!(
            "0x{}:{}",
            "11".repeat(20),
            header.split_once(':').unwrap().1
        );
        assert!(matches!(
            verify_header(&other, body),
            Err(FlashbotsAuthError::Mismatch { .. })
        ));
        for bad in ["", "nocolon", "0x12:0xab", "zz:0x00"] {
            assert!(verify_header(bad, body).is_err(), "{bad:?}");
        }
        let (addr, sig) = header.split_once(':').unwrap();
        assert_eq!(
            verify_header(&format!("{addr}:{}", &sig[..sig.len() - 2]), body),
            Err(FlashbotsAuthError::Signature)
        );
    }
}
