//! The Flashbots request signature: relays and builders identify a searcher by the
//! `X-Flashbots-Signature: <address>:<0x signature>` header, where the signature is an EIP-191
//! (`personal_sign`) signature of the text `0x<hex keccak256 of the JSON body>` — the
//! `wallet.signMessage(ethers.utils.id(body))` of the Flashbots docs. The key is a separate
//! reputation key, never the key that holds funds.

use alloy_primitives::keccak256;

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
