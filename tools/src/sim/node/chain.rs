//! The simulated chain behind every JSON-RPC endpoint: accounts' nonces, accepted
//! transactions, the block number and the base fee. The ONLY place acceptance is decided, so
//! that "exactly one acceptance per (sender, nonce)" holds across the node and all builders.
//!
//! Rules (the racing rule of shared/fixtures/venues/README.md):
//! 1. A raw transaction is decoded with alloy ([`keel_engine::exec::evm::decode`], which
//!    recovers the sender); undecodable bytes or an unrecoverable signature are rejected.
//! 2. Its chain id must be the chain's; its fee cap must cover the base fee; its sender must be
//!    funded (every sender is, unless a funded set is configured).
//! 3. Its nonce must be the sender's next (pending) nonce: then it is accepted, the pending
//!    nonce advances, and it is included in the next block. The same bytes again (while
//!    pending) are "already known"; any other transaction with a spent nonce is "nonce too
//!    low" — both duplicates; a nonce beyond the next is a gap ("nonce too high").
//! 4. A bundle is all or nothing: every transaction must pass in order (nonces advancing within
//!    the bundle), else the bundle is refused with the first failure. (Real builders answer a
//!    bundle hash and drop a failing bundle silently; the mock answers definitely so a racing
//!    client can count outcomes.)
//!
//! Error shapes are geth's (`core/txpool` and `core` errors, JSON-RPC code -32000).
//!
//! Owns the state only; never does I/O, never panics on input.

use std::collections::{HashMap, HashSet};

use keel_engine::exec::evm::{self, Address, B256, DecodedTx, keccak256};

/// JSON-RPC error code geth uses for transaction pool refusals.
pub const CODE_TX_REFUSED: i64 = -32000;

/// How a refused transaction is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalKind {
    /// Its (sender, nonce) was already taken: the racing rule's "void copy".
    Duplicate,
    /// Anything else: bad signature, wrong chain, nonce gap, unfunded, fee cap too low.
    Rejected,
}

/// A refused transaction: geth's JSON-RPC error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Counting class.
    pub kind: RefusalKind,
    /// JSON-RPC error code.
    pub code: i64,
    /// JSON-RPC error message.
    pub message: String,
}

impl Refusal {
    fn rejected(message: String) -> Self {
        Self {
            kind: RefusalKind::Rejected,
            code: CODE_TX_REFUSED,
            message,
        }
    }
    fn duplicate(message: String) -> Self {
        Self {
            kind: RefusalKind::Duplicate,
            code: CODE_TX_REFUSED,
            message,
        }
    }
}

/// An accepted transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxRecord {
    /// Its sender.
    pub from: Address,
    /// Its recipient.
    pub to: Option<Address>,
    /// Its nonce.
    pub nonce: u64,
    /// The block that included it (None while pending).
    pub block: Option<u64>,
    /// The endpoint that accepted it (0 = node, k = builder k).
    pub endpoint: usize,
}

/// The chain's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainParams {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// First block number.
    pub start_block: u64,
    /// Base fee per gas, wei (constant).
    pub base_fee: u128,
    /// Only these senders have funds (empty: every sender does).
    pub funded: Vec<Address>,
}

/// The shared chain state.
#[derive(Debug)]
pub struct ChainState {
    params: ChainParams,
    funded: HashSet<Address>,
    block: u64,
    /// Next nonce counting accepted transactions ("pending").
    pending_nonce: HashMap<Address, u64>,
    /// Next nonce counting mined transactions ("latest").
    latest_nonce: HashMap<Address, u64>,
    /// Accepted, not yet mined.
    pool: Vec<B256>,
    txs: HashMap<B256, TxRecord>,
}

impl ChainState {
    /// A chain at `params.start_block` with no transaction.
    pub fn new(params: ChainParams) -> Self {
        Self {
            funded: params.funded.iter().copied().collect(),
            block: params.start_block,
            params,
            pending_nonce: HashMap::new(),
            latest_nonce: HashMap::new(),
            pool: Vec::new(),
            txs: HashMap::new(),
        }
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.params.chain_id
    }

    /// The latest block number.
    pub fn block_number(&self) -> u64 {
        self.block
    }

    /// The base fee, wei.
    pub fn base_fee(&self) -> u128 {
        self.params.base_fee
    }

    /// `eth_getTransactionCount` with "pending" (true) or "latest".
    pub fn nonce(&self, who: &Address, pending: bool) -> u64 {
        let map = if pending {
            &self.pending_nonce
        } else {
            &self.latest_nonce
        };
        map.get(who).copied().unwrap_or(0)
    }

    /// An accepted transaction.
    pub fn tx(&self, hash: &B256) -> Option<&TxRecord> {
        self.txs.get(hash)
    }

    /// Mines a block: every pending transaction is included in it.
    pub fn mine(&mut self) {
        self.block += 1;
        for hash in self.pool.drain(..) {
            if let Some(r) = self.txs.get_mut(&hash) {
                r.block = Some(self.block);
                let n = self.latest_nonce.entry(r.from).or_insert(0);
                *n = (*n).max(r.nonce.saturating_add(1));
            }
        }
    }

    /// Decodes and checks `raw` against the state, with `extra` nonces already taken by
    /// earlier transactions of the same bundle.
    fn check(&self, raw: &[u8], extra: &HashMap<Address, u64>) -> Result<DecodedTx, Refusal> {
        let tx = evm::decode(raw).map_err(|e| Refusal::rejected(e.to_string()))?;
        let f = &tx.fields;
        if f.chain_id != self.params.chain_id {
            return Err(Refusal::rejected(format!(
                "invalid chain id for signer: have {} want {}",
                f.chain_id, self.params.chain_id
            )));
        }
        if !self.funded.is_empty() && !self.funded.contains(&tx.from) {
            return Err(Refusal::rejected(format!(
                "insufficient funds for gas * price + value: address {} have 0 want {}",
                tx.from.to_checksum(None),
                u128::from(f.gas_limit).saturating_mul(f.max_fee_per_gas)
            )));
        }
        let state = self.nonce(&tx.from, true) + extra.get(&tx.from).copied().unwrap_or(0);
        if f.nonce < state {
            if self.txs.get(&tx.hash).is_some_and(|r| r.block.is_none()) {
                return Err(Refusal::duplicate("already known".into()));
            }
            return Err(Refusal::duplicate(format!(
                "nonce too low: address {}, tx: {} state: {}",
                tx.from.to_checksum(None),
                f.nonce,
                state
            )));
        }
        if f.nonce > state {
            return Err(Refusal::rejected(format!(
                "nonce too high: address {}, tx: {} state: {}",
                tx.from.to_checksum(None),
                f.nonce,
                state
            )));
        }
        if f.max_fee_per_gas < self.params.base_fee {
            return Err(Refusal::rejected(format!(
                "max fee per gas less than block base fee: address {}, maxFeePerGas: {}, baseFee: {}",
                tx.from.to_checksum(None),
                f.max_fee_per_gas,
                self.params.base_fee
            )));
        }
        Ok(tx)
    }

    fn accept(&mut self, tx: &DecodedTx, endpoint: usize) {
        self.pending_nonce
            .insert(tx.from, tx.fields.nonce.saturating_add(1));
        self.txs.insert(
            tx.hash,
            TxRecord {
                from: tx.from,
                to: tx.fields.to,
                nonce: tx.fields.nonce,
                block: None,
                endpoint,
            },
        );
        self.pool.push(tx.hash);
    }

    /// `eth_sendRawTransaction` at `endpoint`: the transaction hash, or geth's refusal.
    pub fn submit(&mut self, raw: &[u8], endpoint: usize) -> Result<B256, Refusal> {
        let tx = self.check(raw, &HashMap::new())?;
        self.accept(&tx, endpoint);
        Ok(tx.hash)
    }

    /// `eth_sendBundle` at `endpoint`, all or nothing: the bundle hash (keccak256 of the
    /// concatenated transaction hashes, as Flashbots computes it) and how many transactions.
    pub fn submit_bundle(&mut self, raws: &[Vec<u8>], endpoint: usize) -> Result<B256, Refusal> {
        let (hash, decoded) = self.check_bundle(raws)?;
        for tx in &decoded {
            self.accept(tx, endpoint);
        }
        Ok(hash)
    }

    /// A bundle a builder answers and then loses (it never reaches a block): checked like
    /// [`submit_bundle`](Self::submit_bundle) — an invalid one is still refused — and its hash
    /// returned, but nothing is accepted: the node's pending nonce does not see it, and no
    /// block will include it. A nonce already taken is no refusal here (a real builder does
    /// not see other builders' bundles or the mempool when it answers).
    pub fn answer_bundle_only(&self, raws: &[Vec<u8>]) -> Result<B256, Refusal> {
        match self.check_bundle(raws) {
            Ok((hash, _)) => Ok(hash),
            Err(r) if r.kind == RefusalKind::Duplicate => {
                let mut hashes = Vec::with_capacity(32 * raws.len());
                for raw in raws {
                    hashes.extend_from_slice(keccak256(raw).as_slice());
                }
                Ok(keccak256(&hashes))
            }
            Err(r) => Err(r),
        }
    }

    fn check_bundle(&self, raws: &[Vec<u8>]) -> Result<(B256, Vec<DecodedTx>), Refusal> {
        let mut extra: HashMap<Address, u64> = HashMap::new();
        let mut decoded = Vec::with_capacity(raws.len());
        for raw in raws {
            let tx = self.check(raw, &extra)?;
            *extra.entry(tx.from).or_insert(0) += 1;
            decoded.push(tx);
        }
        let mut hashes = Vec::with_capacity(32 * decoded.len());
        for tx in &decoded {
            hashes.extend_from_slice(tx.hash.as_slice());
        }
        Ok((keccak256(&hashes), decoded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_engine::exec::evm::{Bytes, Eip1559Fields, EvmSigner, U256};

    fn signer(byte: u8) -> EvmSigner {
        EvmSigner::from_bytes(&[byte; 32], "test").unwrap()
    }

    fn tx(s: &EvmSigner, chain_id: u64, nonce: u64, value: u64) -> Vec<u8> {
        s.sign_eip1559(&Eip1559Fields {
            chain_id,
            nonce,
            max_priority_fee_per_gas: 1_000_000_000,
            max_fee_per_gas: 30_000_000_000,
            gas_limit: 21_000,
            to: Some(Address::repeat_byte(9)),
            value: U256::from(value),
            data: Bytes::new(),
            access_list: Default::default(),
        })
        .unwrap()
        .raw
    }

    fn chain() -> ChainState {
        ChainState::new(ChainParams {
            chain_id: 1,
            start_block: 100,
            base_fee: 10_000_000_000,
            funded: Vec::new(),
        })
    }

    #[test]
    fn first_per_sender_and_nonce_wins() {
        let mut c = chain();
        let a = signer(1);
        let t0 = tx(&a, 1, 0, 1);
        let h = c.submit(&t0, 0).unwrap();
        assert_eq!(c.nonce(&a.address(), true), 1);
        assert_eq!(c.nonce(&a.address(), false), 0);
        let e = c.submit(&t0, 1).unwrap_err();
        assert_eq!(
            (e.kind, e.code, e.message.as_str()),
            (RefusalKind::Duplicate, -32000, "already known")
        );
        // Another transaction with the spent nonce (a competing copy).
        let e = c.submit(&tx(&a, 1, 0, 2), 2).unwrap_err();
        assert_eq!(e.kind, RefusalKind::Duplicate);
        assert!(
            e.message.starts_with("nonce too low: address 0x"),
            "{}",
            e.message
        );
        c.mine();
        assert_eq!(c.tx(&h).unwrap().block, Some(101));
        assert_eq!(c.nonce(&a.address(), false), 1);
        // Once mined, the same bytes are "nonce too low".
        assert!(
            c.submit(&t0, 0)
                .unwrap_err()
                .message
                .starts_with("nonce too low")
        );
        // A gap, a wrong chain, a fee cap under the base fee, garbage.
        let e = c.submit(&tx(&a, 1, 5, 1), 0).unwrap_err();
        assert_eq!(e.kind, RefusalKind::Rejected);
        assert!(e.message.contains("nonce too high") && e.message.contains("tx: 5 state: 1"));
        let e = c.submit(&tx(&a, 5, 1, 1), 0).unwrap_err();
        assert_eq!(e.message, "invalid chain id for signer: have 5 want 1");
        let mut cheap = chain();
        cheap.params.base_fee = 50_000_000_000;
        assert!(
            cheap
                .submit(&tx(&a, 1, 0, 1), 0)
                .unwrap_err()
                .message
                .contains("base fee")
        );
        assert_eq!(
            c.submit(b"\x02\xc0", 0).unwrap_err().kind,
            RefusalKind::Rejected
        );
    }

    #[test]
    fn bundles_are_all_or_nothing() {
        let mut c = chain();
        let (a, b) = (signer(1), signer(2));
        let bundle = vec![tx(&a, 1, 0, 1), tx(&a, 1, 1, 1), tx(&b, 1, 0, 1)];
        let bad = vec![tx(&b, 1, 1, 1), tx(&b, 1, 3, 1)];
        assert!(c.submit_bundle(&bad, 1).is_err());
        assert_eq!(
            c.nonce(&b.address(), true),
            0,
            "nothing of a refused bundle applies"
        );
        c.submit_bundle(&bundle, 1).unwrap();
        assert_eq!(c.nonce(&a.address(), true), 2);
        assert_eq!(c.nonce(&b.address(), true), 1);
        let e = c.submit_bundle(&bundle, 2).unwrap_err();
        assert_eq!(e.kind, RefusalKind::Duplicate);
    }

    #[test]
    fn funded_set_refuses_strangers() {
        let a = signer(1);
        let mut c = ChainState::new(ChainParams {
            chain_id: 1,
            start_block: 0,
            base_fee: 1,
            funded: vec![a.address()],
        });
        c.submit(&tx(&a, 1, 0, 1), 0).unwrap();
        let e = c.submit(&tx(&signer(3), 1, 0, 1), 0).unwrap_err();
        assert!(e.message.starts_with("insufficient funds"), "{}", e.message);
    }
}
