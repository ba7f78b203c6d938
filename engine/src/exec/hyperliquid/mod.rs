//! Hyperliquid (an on-chain order book whose orders are signed actions), issue #6.
//!
//! - [`action`]: `order` and `noop` actions, msgpack (what is signed; rmp-serde with named keys
//!   in Hyperliquid's significant order) and JSON (the `/exchange` body) from the same structs.
//! - [`sign`]: the L1 action hash and the EIP-712 `Agent` signature with an [`EvmSigner`]
//!   (reproduces the official SDK's vectors in `shared/fixtures/venues/hyperliquid/`).
//! - [`presign`]: an order and its voiding `noop` signed ahead of time at the same nonce
//!   ([`PresignedPair`]): the `/exchange` bodies and the WebSocket `post` messages, ready bytes.
//!   Whichever reaches the venue first spends the nonce; the other is refused, like an
//!   Ethereum nonce race. A pre-signed order that lost a race is voided by sending its noop.
//! - [`ladder`]: rungs of `lot·2^i` on each side, each an IOC order and its noop signed at
//!   one millisecond nonce ([`HlLadder`]); [`refresh`]: the signer thread that keeps it fresh
//!   (re-signed when a rung is fired, when its nonces age, when the mid leaves its band) and
//!   publishes it through a lock-free swap; [`exec`]: the session `keel run` uses — intents in,
//!   the nearest rung not above the amount fired, stale nonces never sent.
//! - [`orders`]: the order session over the WebSocket `post` channel: fires pre-signed
//!   actions (no encoding or signing on the hot path: the bytes were rendered at start-up),
//!   parses replies (`status` ok/err; order statuses `resting`/`filled`/`error`) into [`Fill`]s
//!   and [`CopyOutcome`]s.
//!
//! Owns no key material beyond the [`EvmSigner`] it is lent (zeroized on drop there). Never
//! signs or allocates on the hot path; never panics on a reply.
//!
//! [`Fill`]: crate::exec::Fill
//! [`CopyOutcome`]: crate::exec::race::CopyOutcome

pub mod action;
pub mod exec;
pub mod ladder;
pub mod orders;
pub mod refresh;
pub mod sign;

use alloy_primitives::Address;

pub use action::{Action, LimitWire, OrderTypeWire, OrderWire, Tif, decimal_wire};
pub use exec::{HlExecConfig, HlExecCounters, HlExecStats, HyperliquidExec};
pub use ladder::{HlLadder, HlLadderSpec, HlRung};
pub use orders::{HlCommand, HlCounters, HyperliquidOrders, copy_outcome};
pub use refresh::{HlShelf, HlSigner, HlSignerConfig, HlSignerCounters, InfoMids, MidSource};
pub use sign::{ActionSignature, Network, action_hash, agent_signing_hash, sign_l1_action};

use crate::exec::evm::EvmSigner;

/// What can go wrong encoding, signing or checking an action. Messages name the input.
#[derive(Debug, thiserror::Error)]
pub enum HyperliquidError {
    /// msgpack or JSON encoding failed.
    #[error("encoding the action: {0}")]
    Encode(String),
    /// An action that is not one Keel or the simulated venue handles.
    #[error("action: {0}")]
    Action(String),
    /// A price or size that cannot be written in 8 decimals.
    #[error("price or size {0} is not a positive number with at most 8 decimals")]
    Number(f64),
    /// Signing or recovery failed.
    #[error("signature: {0}")]
    Signature(String),
}

/// A signed action ready to send: the `/exchange` body and its hash inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedAction {
    /// The nonce it spends (ms timestamp).
    pub nonce: u64,
    /// `{"action":..,"nonce":N,"signature":{r,s,v},"vaultAddress":null}`.
    pub body: Vec<u8>,
    /// The signature.
    pub signature: ActionSignature,
}

impl SignedAction {
    /// Signs `action` at `nonce` for `network` (no vault).
    pub fn sign(
        signer: &EvmSigner,
        action: &Action,
        nonce: u64,
        network: Network,
    ) -> Result<Self, HyperliquidError> {
        let signature = sign_l1_action(signer, &action.msgpack()?, nonce, None, network)?;
        let mut body = Vec::with_capacity(512);
        body.extend_from_slice(br#"{"action":"#);
        body.extend_from_slice(&action.json()?);
        body.extend_from_slice(format!(r#","nonce":{nonce},"signature":"#).as_bytes());
        body.extend_from_slice(signature.json().as_bytes());
        body.extend_from_slice(br#","vaultAddress":null}"#);
        Ok(Self {
            nonce,
            body,
            signature,
        })
    }

    /// The WebSocket `post` message carrying this action with request id `id`.
    pub fn ws_post(&self, id: u64) -> Vec<u8> {
        let mut m = Vec::with_capacity(self.body.len() + 64);
        m.extend_from_slice(
            format!(r#"{{"method":"post","id":{id},"request":{{"type":"action","payload":"#)
                .as_bytes(),
        );
        m.extend_from_slice(&self.body);
        m.extend_from_slice(b"}}");
        m
    }
}

/// An order and its voiding noop, signed at one nonce ahead of time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresignedPair {
    /// The order.
    pub order: SignedAction,
    /// The noop at the same nonce.
    pub noop: SignedAction,
}

/// Signs `order` and a `noop` at `nonce`.
pub fn presign(
    signer: &EvmSigner,
    order: OrderWire,
    nonce: u64,
    network: Network,
) -> Result<PresignedPair, HyperliquidError> {
    Ok(PresignedPair {
        order: SignedAction::sign(signer, &Action::order(order), nonce, network)?,
        noop: SignedAction::sign(signer, &Action::Noop, nonce, network)?,
    })
}

/// The address an `/exchange` body's action was signed by (the venue side): re-encodes the
/// parsed action to msgpack in its significant order, hashes it with `nonce` and `vault`, and
/// recovers the signer of the Agent hash.
pub fn recover_signer(
    action: &Action,
    nonce: u64,
    vault: Option<Address>,
    signature: &ActionSignature,
    network: Network,
) -> Result<Address, HyperliquidError> {
    let hash = agent_signing_hash(action_hash(&action.msgpack()?, nonce, vault, None), network);
    signature.recover(&hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::U256;

    fn vectors() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/venues/hyperliquid/signing_vectors.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn action_of(v: &serde_json::Value) -> Action {
        Action::from_json(v).unwrap()
    }

    #[test]
    fn the_sdk_connection_id_is_reproduced() {
        let v = vectors();
        let c = &v["connection_id_case"];
        let a = action_of(&c["action"]);
        let h = action_hash(
            &a.msgpack().unwrap(),
            c["nonce"].as_u64().unwrap(),
            None,
            None,
        );
        assert_eq!(format!("{h:#x}"), c["connection_id"].as_str().unwrap());
        // The JSON rendering keeps the SDK's key order.
        assert_eq!(
            String::from_utf8(a.json().unwrap()).unwrap(),
            r#"{"type":"order","orders":[{"a":4,"b":true,"p":"1670.1","s":"0.0147","r":false,"t":{"limit":{"tif":"Ioc"}}}],"grouping":"na"}"#
        );
    }

    #[test]
    fn the_sdk_signatures_are_reproduced() {
        let v = vectors();
        let signer = EvmSigner::from_hex(v["private_key"].as_str().unwrap(), "vectors").unwrap();
        for case in v["signed_cases"].as_array().unwrap() {
            let a = action_of(&case["action"]);
            let network = match case["network"].as_str().unwrap() {
                "mainnet" => Network::Mainnet,
                _ => Network::Testnet,
            };
            let nonce = case["nonce"].as_u64().unwrap();
            let s = sign_l1_action(&signer, &a.msgpack().unwrap(), nonce, None, network).unwrap();
            let json: serde_json::Value = serde_json::from_str(&s.json()).unwrap();
            assert_eq!(json["r"], case["r"], "{case}");
            assert_eq!(json["s"], case["s"], "{case}");
            assert_eq!(json["v"], case["v"], "{case}");
            assert_eq!(
                recover_signer(&a, nonce, None, &s, network).unwrap(),
                signer.address()
            );
            // Another nonce or network recovers someone else.
            assert_ne!(
                recover_signer(&a, nonce + 1, None, &s, network).unwrap(),
                signer.address()
            );
        }
    }

    #[test]
    fn wire_decimals_follow_the_sdk() {
        assert_eq!(decimal_wire(1670.1).unwrap(), "1670.1");
        assert_eq!(decimal_wire(100.0).unwrap(), "100");
        assert_eq!(decimal_wire(0.0147).unwrap(), "0.0147");
        for bad in [0.0, -1.0, f64::NAN, 1e-9] {
            assert!(decimal_wire(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pair_shares_its_nonce_and_posts_carry_the_body() {
        let signer = EvmSigner::from_hex(&format!("0x{}", "11".repeat(32)), "test").unwrap();
        let order = OrderWire {
            a: 0,
            b: true,
            p: "100500".into(),
            s: "0.01".into(),
            r: false,
            t: OrderTypeWire {
                limit: LimitWire { tif: Tif::Ioc },
            },
            c: None,
        };
        let pair = presign(&signer, order, 1_700_000_000_000, Network::Mainnet).unwrap();
        assert_eq!(pair.order.nonce, pair.noop.nonce);
        let body: serde_json::Value = serde_json::from_slice(&pair.noop.body).unwrap();
        assert_eq!(body["action"], serde_json::json!({"type": "noop"}));
        assert_eq!(body["vaultAddress"], serde_json::Value::Null);
        let post: serde_json::Value = serde_json::from_slice(&pair.order.ws_post(7)).unwrap();
        assert_eq!(post["method"], "post");
        assert_eq!(post["id"], 7);
        assert_eq!(post["request"]["payload"]["nonce"], 1_700_000_000_000u64);
        assert!(
            ActionSignature {
                r: U256::from(1),
                s: U256::from(1),
                v: 29
            }
            .recover(&Default::default())
            .is_err()
        );
        assert!(Action::from_json(&serde_json::json!({"type": "cancel"})).is_err());
        assert!(Action::from_json(&serde_json::json!({"type": "noop", "extra": 1})).is_err());
    }
}
