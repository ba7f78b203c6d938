//! Signing an L1 action (the recipe in `shared/fixtures/venues/README.md`, checked against the
//! official SDK's vectors): `connectionId = keccak256(msgpack(action) ‖ nonce (8 bytes BE) ‖
//! 0x00 | 0x01 ‖ vault [‖ 0x00 ‖ expiresAfter (8 bytes BE)])`, then an EIP-712 signature of
//! `Agent {string source, bytes32 connectionId}` (source "a" on mainnet, "b" on testnet) in the
//! domain {name "Exchange", version "1", chainId 1337, verifyingContract 0x0}, with the
//! [`EvmSigner`]'s secp256k1 key. The typed-data hash is alloy-sol-types'.
//!
//! Owns no key (the signer is lent); allocates a little per signature, so it runs at start-up
//! or on the signer thread, never on the hot path (orders go out pre-signed).

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_sol_types::{Eip712Domain, SolStruct, eip712_domain};

use crate::exec::evm::EvmSigner;

use super::HyperliquidError;

alloy_sol_types::sol! {
    /// Hyperliquid's phantom agent.
    struct Agent {
        string source;
        bytes32 connectionId;
    }
}

/// Mainnet or testnet (the Agent's `source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// Source "a".
    Mainnet,
    /// Source "b".
    Testnet,
}

/// The L1 action domain.
pub fn domain() -> Eip712Domain {
    eip712_domain! {
        name: "Exchange",
        version: "1",
        chain_id: 1337,
        verifying_contract: Address::ZERO,
    }
}

/// `connectionId` of an action whose msgpack is `action_msgpack`.
pub fn action_hash(
    action_msgpack: &[u8],
    nonce: u64,
    vault: Option<Address>,
    expires_after: Option<u64>,
) -> B256 {
    let mut data = Vec::with_capacity(action_msgpack.len() + 8 + 21 + 9);
    data.extend_from_slice(action_msgpack);
    data.extend_from_slice(&nonce.to_be_bytes());
    match vault {
        None => data.push(0),
        Some(v) => {
            data.push(1);
            data.extend_from_slice(v.as_slice());
        }
    }
    if let Some(e) = expires_after {
        data.push(0);
        data.extend_from_slice(&e.to_be_bytes());
    }
    keccak256(&data)
}

/// The EIP-712 hash signed for `connection_id`.
pub fn agent_signing_hash(connection_id: B256, network: Network) -> B256 {
    let agent = Agent {
        source: match network {
            Network::Mainnet => "a".into(),
            Network::Testnet => "b".into(),
        },
        connectionId: connection_id,
    };
    agent.eip712_signing_hash(&domain())
}

/// An action signature as the venue takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActionSignature {
    /// r.
    pub r: U256,
    /// s.
    pub s: U256,
    /// 27 or 28.
    pub v: u8,
}

impl ActionSignature {
    /// `{"r":"0x..","s":"0x..","v":27}`: r and s in hex without left zero-padding, as the SDK
    /// prints them.
    pub fn json(&self) -> String {
        format!(
            r#"{{"r":"{:#x}","s":"{:#x}","v":{}}}"#,
            self.r, self.s, self.v
        )
    }

    /// The address that signed `hash` (the venue side).
    pub fn recover(&self, hash: &B256) -> Result<Address, HyperliquidError> {
        let parity = match self.v {
            27 => false,
            28 => true,
            v => {
                return Err(HyperliquidError::Signature(format!(
                    "v must be 27 or 28, got {v}"
                )));
            }
        };
        alloy_primitives::Signature::new(self.r, self.s, parity)
            .recover_address_from_prehash(hash)
            .map_err(|e| HyperliquidError::Signature(e.to_string()))
    }
}

/// Signs the action whose msgpack is `action_msgpack` at `nonce`.
pub fn sign_l1_action(
    signer: &EvmSigner,
    action_msgpack: &[u8],
    nonce: u64,
    vault: Option<Address>,
    network: Network,
) -> Result<ActionSignature, HyperliquidError> {
    let hash = agent_signing_hash(action_hash(action_msgpack, nonce, vault, None), network);
    let sig = signer
        .sign_hash(&hash)
        .map_err(|e| HyperliquidError::Signature(e.to_string()))?;
    Ok(ActionSignature {
        r: sig.r(),
        s: sig.s(),
        v: 27 + u8::from(sig.v()),
    })
}
