//! The signer thread (DESIGN.md: "not on the hot path: re-signs ladders when a nonce is spent or
//! fees move"): reads the chain, publishes what it saw, and keeps fresh ladders on the shelf.
//!
//! One [`LadderSigner::step`]:
//! 1. read the chain — the head block's number and `baseFeePerGas`, then
//!    `eth_getTransactionCount(address, "pending")` ([`RpcChainReader`]; in that order, so the
//!    nonce counts every block up to the head) — and publish the [`ChainView`];
//! 2. take the base nonce: the exec tile's next nonce, or the chain's pending nonce when that is
//!    higher or the exec tile does not know its nonce yet;
//! 3. for the base nonce and the one after, re-sign the ladder on the shelf if there is none,
//!    it is at another nonce, it was fired, the base fee rose past its fee cap, or (with builder
//!    routes) the head block reached its bundles' target block. A new ladder's fee cap is
//!    `base_fee · fee_multiplier + tip`, its bundles target `head + 1`;
//! 4. free the replaced ladders the exec tile no longer holds.
//!
//! Owns the keys (zeroized on drop, never printed) and the chain reader. Allocates freely and
//! blocks on HTTP: it runs on its own thread, never the exec tile's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use alloy_primitives::Address;
use keel_feeds::clock;
use keel_feeds::net::http::http_request;

use super::ladder::{Ladder, LadderSpec, RouteTarget};
use super::shelf::{ChainView, LadderShelf, NONCE_UNKNOWN, ShelfWriter};
use super::{EvmError, EvmSigner, FlashbotsSigner};
use crate::pipeline::StopFlag;

/// Reading the chain failed; names the endpoint and the method.
#[derive(Debug, thiserror::Error)]
#[error("{url} {method}: {reason}")]
pub struct ChainReadError {
    /// The endpoint.
    pub url: String,
    /// The JSON-RPC method.
    pub method: &'static str,
    /// What failed.
    pub reason: String,
}

/// Where the signer reads the chain from.
pub trait ChainReader: Send {
    /// Pending nonce, head block and base fee (`read_started_ns` is set by the caller).
    fn read(&mut self) -> Result<ChainView, ChainReadError>;
}

/// Reads the chain over JSON-RPC (one blocking HTTP request per method).
#[derive(Debug, Clone)]
pub struct RpcChainReader {
    url: String,
    address: Address,
    timeout: Duration,
    next_id: u64,
}

impl RpcChainReader {
    /// A reader of `address`'s nonce from the node at `url`.
    pub fn new(url: &str, address: Address, timeout: Duration) -> Self {
        Self {
            url: url.to_string(),
            address,
            timeout,
            next_id: 1,
        }
    }

    fn call(
        &mut self,
        method: &'static str,
        params: &str,
    ) -> Result<serde_json::Value, ChainReadError> {
        let err = |reason: String| ChainReadError {
            url: self.url.clone(),
            method,
            reason,
        };
        let id = self.next_id;
        self.next_id += 1;
        let body =
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#);
        let (status, reply) = http_request(
            &self.url,
            "POST",
            Some(body.as_bytes()),
            &[("Content-Type", "application/json")],
            None,
            self.timeout,
        )
        .map_err(|e| err(e.to_string()))?;
        if !(200..300).contains(&status) {
            return Err(err(format!("HTTP status {status}")));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&reply).map_err(|e| err(format!("reply is not JSON ({e})")))?;
        if let Some(e) = v.get("error") {
            return Err(err(format!("error reply {e}")));
        }
        match v.get("result") {
            Some(r) if !r.is_null() => Ok(r.clone()),
            _ => Err(err("reply has no result".into())),
        }
    }

    fn quantity(
        &self,
        method: &'static str,
        v: &serde_json::Value,
    ) -> Result<u128, ChainReadError> {
        let bad = || ChainReadError {
            url: self.url.clone(),
            method,
            reason: format!("{v} is not a 0x-hex quantity"),
        };
        let s = v.as_str().ok_or_else(bad)?;
        let h = s.strip_prefix("0x").ok_or_else(bad)?;
        if h.is_empty() || h.len() > 32 {
            return Err(bad());
        }
        u128::from_str_radix(h, 16).map_err(|_| bad())
    }
}

impl ChainReader for RpcChainReader {
    fn read(&mut self) -> Result<ChainView, ChainReadError> {
        // The head first, the nonce after: the nonce then counts at least every block up to
        // `head_block`, so "head past a bundle's target block and the nonce not past the
        // bundle's" proves the bundle was not included (see `exec`'s confirmation).
        let b = self.call("eth_getBlockByNumber", r#"["latest",false]"#)?;
        let head = b.get("number").cloned().unwrap_or_default();
        let head_block = self.quantity("eth_getBlockByNumber", &head)?;
        let fee = b.get("baseFeePerGas").cloned().unwrap_or_default();
        let base_fee = self.quantity("eth_getBlockByNumber", &fee)?;
        let params = format!(r#"["{:#x}","pending"]"#, self.address);
        let n = self.call("eth_getTransactionCount", &params)?;
        let pending_nonce = self.quantity("eth_getTransactionCount", &n)?;
        let too_big = |what: &str| ChainReadError {
            url: self.url.clone(),
            method: "eth_getTransactionCount",
            reason: format!("{what} does not fit in 64 bits"),
        };
        Ok(ChainView {
            pending_nonce: u64::try_from(pending_nonce).map_err(|_| too_big("nonce"))?,
            head_block: u64::try_from(head_block).map_err(|_| too_big("block number"))?,
            base_fee,
            read_started_ns: 0,
        })
    }
}

/// How the signer prices and paces ladders.
#[derive(Clone, Debug)]
pub struct SignerConfig {
    /// The instrument's ladder.
    pub spec: LadderSpec,
    /// Every route, in race-table order.
    pub routes: Vec<RouteTarget>,
    /// Fee cap = base fee × this + tip (2 survives six full blocks of +12.5 %).
    pub fee_multiplier: u32,
    /// Pause between chain readings.
    pub poll: Duration,
}

/// Counters the signer shares (relaxed atomics).
#[derive(Debug, Default)]
pub struct SignerCounters {
    /// Chain readings that succeeded.
    pub reads: AtomicU64,
    /// Chain readings that failed (the last view stays; the exec tile keeps its checks).
    pub read_errors: AtomicU64,
    /// Ladders signed.
    pub ladders: AtomicU64,
    /// Ladders that failed to sign.
    pub sign_errors: AtomicU64,
}

/// The signer: keys, chain reader and the shelf's writer.
pub struct LadderSigner {
    cfg: SignerConfig,
    key: EvmSigner,
    flashbots: Option<FlashbotsSigner>,
    chain: Box<dyn ChainReader>,
    writer: ShelfWriter,
    counters: Arc<SignerCounters>,
    view: Option<ChainView>,
}

impl std::fmt::Debug for LadderSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LadderSigner")
            .field("address", &self.key.address())
            .finish_non_exhaustive()
    }
}

impl LadderSigner {
    /// A signer and the shelf it fills (give the shelf to the exec tile).
    pub fn new(
        cfg: SignerConfig,
        key: EvmSigner,
        flashbots: Option<FlashbotsSigner>,
        chain: Box<dyn ChainReader>,
    ) -> Result<(Self, Arc<LadderShelf>), EvmError> {
        cfg.spec.validate()?;
        if cfg.fee_multiplier == 0 {
            return Err(EvmError::field("fee multiplier", "0", "must be ≥ 1"));
        }
        let (shelf, writer) = LadderShelf::new();
        Ok((
            Self {
                cfg,
                key,
                flashbots,
                chain,
                writer,
                counters: Arc::default(),
                view: None,
            },
            shelf,
        ))
    }

    /// The counters.
    pub fn counters(&self) -> Arc<SignerCounters> {
        self.counters.clone()
    }

    /// The ladder now on the shelf at `nonce`'s slot (it may be at another nonce).
    pub fn current(&self, nonce: u64) -> Option<Arc<Ladder>> {
        self.writer.current(nonce)
    }

    /// The shelf it fills.
    pub fn shelf(&self) -> &Arc<LadderShelf> {
        self.writer.shelf()
    }

    /// The funding address.
    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// One round: read the chain, publish the view, re-sign what is stale
    /// ([`resign`](Self::resign)). Returns the ladders signed.
    pub fn step(&mut self) -> Result<usize, ChainReadError> {
        self.read()?;
        Ok(self.resign())
    }

    /// Reads the chain and publishes the view.
    pub fn read(&mut self) -> Result<ChainView, ChainReadError> {
        let started = clock::now_ns();
        let mut view = match self.chain.read() {
            Ok(v) => v,
            Err(e) => {
                self.counters.read_errors.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        view.read_started_ns = started;
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        self.writer.publish_view(view);
        self.view = Some(view);
        Ok(view)
    }

    /// Re-signs, against the last view read, the ladders at the base nonce and the one after
    /// that are missing, fired, below the base fee or past their target block. Returns the
    /// ladders signed (0 before the first reading).
    pub fn resign(&mut self) -> usize {
        let Some(view) = self.view else {
            return 0;
        };
        let exec = self.writer.shelf().exec_next_nonce();
        let base = if exec == NONCE_UNKNOWN {
            view.pending_nonce
        } else {
            exec.max(view.pending_nonce)
        };
        let fee_cap = view
            .base_fee
            .saturating_mul(u128::from(self.cfg.fee_multiplier))
            .saturating_add(self.cfg.spec.max_priority_fee_per_gas);
        let mut signed = 0;
        for nonce in [base, base + 1] {
            let stale = match self.writer.current(nonce) {
                None => true,
                Some(l) => {
                    l.nonce != nonce
                        || l.is_fired()
                        || l.max_fee_per_gas < view.base_fee
                        || (l.has_builders() && l.target_block <= view.head_block)
                }
            };
            if !stale {
                continue;
            }
            match Ladder::build(
                &self.cfg.spec,
                &self.cfg.routes,
                &self.key,
                self.flashbots.as_ref(),
                nonce,
                fee_cap,
                view.head_block + 1,
            ) {
                Ok(l) => {
                    self.writer.publish_ladder(l);
                    self.counters.ladders.fetch_add(1, Ordering::Relaxed);
                    signed += 1;
                }
                Err(_) => {
                    self.counters.sign_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.writer.collect();
        signed
    }

    /// Runs on its own thread until `stop`: a chain reading every `poll` (at once when the
    /// exec tile asks for a reconcile reading), and a re-sign check every millisecond in
    /// between (a fired ladder is replaced within about a millisecond plus its signing time).
    /// Gives the signer back.
    pub fn spawn(mut self, stop: StopFlag) -> std::io::Result<JoinHandle<LadderSigner>> {
        std::thread::Builder::new()
            .name("signer".into())
            .spawn(move || {
                while !stop.is_stopped() {
                    // A failed reading is counted; the next round tries again.
                    let _ = self.step();
                    let until = std::time::Instant::now() + self.cfg.poll;
                    while !stop.is_stopped() && std::time::Instant::now() < until {
                        let want = self.writer.shelf().reconcile_after_ns();
                        if want != 0 && clock::now_ns() >= want {
                            break;
                        }
                        self.resign();
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                self
            })
    }
}
