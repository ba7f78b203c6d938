//! Ethereum execution (issue #6): keys, EIP-1559 signing and decoding, the Flashbots request
//! signature, pre-signed ladders, the signer thread and the exec path that races them.
//!
//! - [`key`]: an [`EvmSigner`] loaded from an environment variable holding a 0x-hex private key,
//!   or from an encrypted keystore v3 JSON file with its password from an environment variable
//!   or a file ([`KeySource`]). Never from a command-line value (STYLE.md); never printed (its
//!   `Debug` shows only the address); the secret scalar is zeroized on drop (k256's `SigningKey`)
//!   and every intermediate copy of the secret (hex text, decrypted keystore bytes, password)
//!   lives in a [`zeroize::Zeroizing`] buffer.
//! - [`tx`]: [`EvmSigner::sign_eip1559`] turns [`Eip1559Fields`] into the raw EIP-2718 bytes
//!   (`0x02 || rlp(...)`) and the transaction hash with alloy (`TxEip1559`,
//!   `SignableTransaction`, `TxEnvelope`); [`decode`] is the inverse and recovers the sender.
//! - [`flashbots`]: the `X-Flashbots-Signature` header (`address:0xsig`, an EIP-191 signature of
//!   the hex keccak of the JSON body) with a separate reputation key, and its verification
//!   ([`verify_header`], what a relay or keel-sim's builders do).
//! - [`parse`]: the text forms the CLI accepts (addresses with EIP-55 checksum check, hex data,
//!   decimal wei, decimal gwei), each error naming the input.
//! - [`ladder`]: pre-signed transactions at one nonce for sizes `lot·2^i` per side, each with its
//!   finished `eth_sendRawTransaction` / `eth_sendBundle` request per route.
//! - [`shelf`]: the lock-free hand-over of ladders and chain views from the signer thread to the
//!   exec thread; [`signer`]: the signer thread (chain reading, re-signing).
//! - [`exec`]: the exec path and tile (decision → rung → copies on warm keep-alive connections →
//!   replies raced → one fill); [`reply`]: what a JSON-RPC reply means for the race.

pub mod exec;
pub mod flashbots;
pub mod key;
pub mod ladder;
pub mod parse;
pub mod reply;
pub mod shelf;
pub mod signer;
pub mod tx;

pub use alloy_eips::eip2930::{AccessList, AccessListItem};
pub use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
pub use flashbots::{
    FLASHBOTS_SIGNATURE_HEADER, FlashbotsAuthError, FlashbotsSigner, verify_header,
};
pub use key::{EvmSigner, KeySource, PasswordSource};
pub use tx::{DecodedTx, Eip1559Fields, SignedTx, decode, decode_hex};

/// Everything that can go wrong with keys, fields and transactions. Every message names the
/// input (environment variable, file, field); none ever contains key material.
#[derive(Debug, thiserror::Error)]
pub enum EvmError {
    /// An environment variable that should hold a key or password is not set (or not UTF-8).
    #[error("environment variable {var} is not set (or is not valid UTF-8)")]
    EnvMissing {
        /// The variable's name.
        var: String,
    },
    /// The private key text is not 32 bytes of hex.
    #[error("the private key in {source_name} is not 0x-hex of 32 bytes")]
    KeyFormat {
        /// Where the key came from ("environment variable KEEL_KEY").
        source_name: String,
    },
    /// 32 bytes, but not a valid secp256k1 secret (zero or not below the curve order).
    #[error(
        "the private key in {source_name} is not a valid secp256k1 key (zero or ≥ the curve order)"
    )]
    KeyInvalid {
        /// Where the key came from.
        source_name: String,
    },
    /// The keystore file could not be read or decrypted.
    #[error("keystore {path}: {reason}")]
    Keystore {
        /// The keystore file.
        path: String,
        /// What failed (wrong password, not a keystore, I/O).
        reason: String,
    },
    /// The password file could not be read.
    #[error("password file {path}: {reason}")]
    PasswordFile {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// A transaction field is out of range or malformed.
    #[error("{field} {value:?}: {reason}")]
    Field {
        /// The field or flag name.
        field: String,
        /// The offending value (never a key).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Raw transaction bytes that do not decode.
    #[error("raw transaction: {0}")]
    Decode(String),
    /// The signer failed (should not happen with a valid key).
    #[error("signing failed: {0}")]
    Sign(String),
}

impl EvmError {
    pub(crate) fn field(field: &str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        EvmError::Field {
            field: field.to_string(),
            value: value.into(),
            reason: reason.into(),
        }
    }
}
