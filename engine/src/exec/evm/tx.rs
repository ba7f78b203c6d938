//! EIP-1559 (type 2) transactions: sign to raw EIP-2718 bytes, decode raw bytes back to the
//! fields and the sender.

use alloy_consensus::{SignableTransaction, Signed, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_eips::eip2930::AccessList;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};

use super::{EvmError, EvmSigner};

/// The fields of an EIP-1559 transaction (fees in wei).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eip1559Fields {
    /// EIP-155 chain id (1 = mainnet); 0 is refused when signing.
    pub chain_id: u64,
    /// The sender's nonce.
    pub nonce: u64,
    /// Tip per gas, wei (≤ `max_fee_per_gas`).
    pub max_priority_fee_per_gas: u128,
    /// Fee cap per gas, wei.
    pub max_fee_per_gas: u128,
    /// Gas limit.
    pub gas_limit: u64,
    /// Recipient; `None` creates a contract.
    pub to: Option<Address>,
    /// Value, wei.
    pub value: U256,
    /// Calldata.
    pub data: Bytes,
    /// EIP-2930 access list (usually empty).
    pub access_list: AccessList,
}

impl Eip1559Fields {
    /// Checks what a node would refuse outright: chain id 0, tip above the fee cap.
    pub fn validate(&self) -> Result<(), EvmError> {
        if self.chain_id == 0 {
            return Err(EvmError::field(
                "chain id",
                "0",
                "0 is no chain (EIP-155 replay protection needs a real chain id)",
            ));
        }
        if self.max_priority_fee_per_gas > self.max_fee_per_gas {
            return Err(EvmError::field(
                "max priority fee",
                format!("{} wei", self.max_priority_fee_per_gas),
                format!("above the max fee ({} wei)", self.max_fee_per_gas),
            ));
        }
        Ok(())
    }

    fn to_alloy(&self) -> TxEip1559 {
        TxEip1559 {
            chain_id: self.chain_id,
            nonce: self.nonce,
            gas_limit: self.gas_limit,
            max_fee_per_gas: self.max_fee_per_gas,
            max_priority_fee_per_gas: self.max_priority_fee_per_gas,
            to: self.to.map_or(TxKind::Create, TxKind::Call),
            value: self.value,
            access_list: self.access_list.clone(),
            input: self.data.clone(),
        }
    }

    fn from_alloy(tx: &TxEip1559) -> Self {
        Self {
            chain_id: tx.chain_id,
            nonce: tx.nonce,
            max_priority_fee_per_gas: tx.max_priority_fee_per_gas,
            max_fee_per_gas: tx.max_fee_per_gas,
            gas_limit: tx.gas_limit,
            to: tx.to.to().copied(),
            value: tx.value,
            data: tx.input.clone(),
            access_list: tx.access_list.clone(),
        }
    }
}

/// A signed transaction ready for `eth_sendRawTransaction` or a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTx {
    /// EIP-2718 bytes: `0x02 || rlp([chain_id, nonce, tip, fee cap, gas, to, value, data,
    /// access_list, y_parity, r, s])`.
    pub raw: Vec<u8>,
    /// keccak256 of `raw`: the transaction hash.
    pub hash: B256,
    /// The signer's address.
    pub from: Address,
}

/// A decoded raw transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedTx {
    /// The fields.
    pub fields: Eip1559Fields,
    /// The sender, recovered from the signature.
    pub from: Address,
    /// The transaction hash.
    pub hash: B256,
    /// Signature y parity (0 or 1).
    pub y_parity: bool,
    /// Signature r.
    pub r: U256,
    /// Signature s.
    pub s: U256,
}

impl EvmSigner {
    /// Signs an EIP-1559 transaction: the raw EIP-2718 bytes and the hash. Refuses chain id 0
    /// and a tip above the fee cap ([`Eip1559Fields::validate`]).
    pub fn sign_eip1559(&self, fields: &Eip1559Fields) -> Result<SignedTx, EvmError> {
        fields.validate()?;
        let tx = fields.to_alloy();
        let sig = self.sign_hash(&tx.signature_hash())?;
        let envelope = TxEnvelope::Eip1559(tx.into_signed(sig));
        Ok(SignedTx {
            raw: envelope.encoded_2718(),
            hash: *envelope.tx_hash(),
            from: self.address(),
        })
    }
}

/// Decodes raw EIP-2718 bytes of a type-2 transaction (nothing may follow it) and recovers the
/// sender.
pub fn decode(raw: &[u8]) -> Result<DecodedTx, EvmError> {
    match raw.first() {
        None => return Err(EvmError::Decode("empty".into())),
        Some(0x02) => {}
        Some(&t) if t >= 0xc0 => {
            return Err(EvmError::Decode(
                "a legacy (pre-EIP-2718) transaction; only EIP-1559 (type 2) is supported".into(),
            ));
        }
        Some(&t) => {
            return Err(EvmError::Decode(format!(
                "transaction type {t:#04x}; only EIP-1559 (type 0x02) is supported"
            )));
        }
    }
    let envelope = TxEnvelope::decode_2718_exact(raw)
        .map_err(|e| EvmError::Decode(format!("not a valid EIP-1559 transaction ({e})")))?;
    let signed: &Signed<TxEip1559> = match &envelope {
        TxEnvelope::Eip1559(s) => s,
        _ => return Err(EvmError::Decode("not an EIP-1559 transaction".into())),
    };
    let tx = signed.tx();
    let sig = signed.signature();
    let from = sig
        .recover_address_from_prehash(&tx.signature_hash())
        .map_err(|e| EvmError::Decode(format!("the signature does not recover ({e})")))?;
    Ok(DecodedTx {
        fields: Eip1559Fields::from_alloy(tx),
        from,
        hash: *signed.hash(),
        y_parity: sig.v(),
        r: sig.r(),
        s: sig.s(),
    })
}

/// [`decode`] of 0x-hex text (the `0x` is optional, surrounding whitespace ignored).
pub fn decode_hex(text: &str) -> Result<DecodedTx, EvmError> {
    let t = text.trim();
    let hex = t.strip_prefix("0x").unwrap_or(t);
    let raw = alloy_primitives::hex::decode(hex)
        .map_err(|_| EvmError::Decode("not hex (expected 0x-hex of the raw transaction)".into()))?;
    decode(&raw)
}
