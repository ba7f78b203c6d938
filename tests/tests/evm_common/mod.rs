//! Shared set-up of the EVM exec tests: keel-sim's node and builders on loopback, a ladder
//! signer reading that node, and the exec path over every endpoint.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_engine::exec::evm::exec::{EvmExec, EvmExecConfig};
use keel_engine::exec::evm::ladder::{CallTemplate, LadderSpec, RouteKind, RouteTarget};
use keel_engine::exec::evm::shelf::LadderShelf;
use keel_engine::exec::evm::signer::{LadderSigner, RpcChainReader, SignerConfig};
use keel_engine::exec::evm::{Address, Bytes, EvmSigner, FlashbotsSigner, U256};
use keel_engine::exec::{Fill, HedgeIntent};
use keel_engine::pipeline::telemetry::TickTrace;
use keel_feeds::event::{Side, Venue};
use keel_feeds::instrument::InstrumentId;
use keel_feeds::net::{BackoffConfig, Jitter};
use keel_tools::sim::node::{NodeConfig, NodeHandle, NodeSim};

/// The funding key of the simulated chain (tests only).
pub const KEY: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
/// The Flashbots reputation key (tests only).
pub const FB_KEY: &str = "0x00000000000000000000000000000000000000000000000000000000000000f1";
/// Chain id of the simulated chain.
pub const CHAIN_ID: u64 = 1;

/// A node with `builders` builders, `cfg` adjusted by the caller.
pub fn node(mut cfg: NodeConfig) -> NodeHandle {
    cfg.chain_id = CHAIN_ID;
    NodeSim::start(cfg).expect("keel-sim node starts")
}

/// Routes: the node's RPC, then every builder.
pub fn routes(node: &NodeHandle) -> Vec<RouteTarget> {
    let mut r = vec![RouteTarget::parse(RouteKind::Rpc, &node.node_url()).unwrap()];
    for u in node.builder_urls() {
        r.push(RouteTarget::parse(RouteKind::Builder, &u).unwrap());
    }
    r
}

/// A ladder of `rungs` sizes 0.01·2^i per side.
pub fn spec(rungs: u8) -> LadderSpec {
    let to: Address = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D"
        .parse()
        .unwrap();
    let t = |sel: u8| {
        let mut d = vec![sel, 0, 0, 1];
        d.resize(4 + 32 * 3, 0);
        CallTemplate::new(to, Bytes::from(d), 1, U256::ZERO).unwrap()
    };
    LadderSpec {
        chain_id: CHAIN_ID,
        gas_limit: 200_000,
        max_priority_fee_per_gas: 1_000_000_000,
        buy: t(0xb1),
        sell: t(0x5e),
        lot: 0.01,
        lot_units: U256::from(10u64.pow(16)),
        rungs,
    }
}

/// A signer over `routes` reading the chain from the node (route 0).
pub fn signer(routes: &[RouteTarget], rungs: u8) -> (LadderSigner, Arc<LadderShelf>) {
    signer_reading(routes, rungs, &routes[0].url.to_string())
}

/// A signer over `routes` reading the chain from `read_url`.
pub fn signer_reading(
    routes: &[RouteTarget],
    rungs: u8,
    read_url: &str,
) -> (LadderSigner, Arc<LadderShelf>) {
    let key = EvmSigner::from_hex(KEY, "test key").unwrap();
    let fb = FlashbotsSigner::new(EvmSigner::from_hex(FB_KEY, "test fb key").unwrap());
    let reader = RpcChainReader::new(read_url, key.address(), Duration::from_secs(2));
    LadderSigner::new(
        SignerConfig {
            spec: spec(rungs),
            routes: routes.to_vec(),
            fee_multiplier: 2,
            poll: Duration::from_millis(5),
        },
        key,
        Some(fb),
        Box::new(reader),
    )
    .unwrap()
}

/// Exec settings for tests: short timeouts and backoff.
pub fn exec_config(request_timeout: Duration) -> EvmExecConfig {
    EvmExecConfig {
        max_order: 1.0,
        reconcile_grace: Duration::from_millis(20),
        request_timeout,
        connect_timeout: Duration::from_secs(2),
        backoff: BackoffConfig {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(100),
            jitter: Jitter::Full,
            reset_after: Duration::from_millis(200),
        },
    }
}

/// The exec path over `routes`, warm.
pub fn exec(routes: &[RouteTarget], shelf: Arc<LadderShelf>, cfg: &EvmExecConfig) -> EvmExec {
    let mut e = EvmExec::new(routes, shelf, cfg).unwrap();
    assert!(e.warm_up(Duration::from_secs(5)).unwrap(), "routes warm");
    e
}

/// A hedge intent of `amount` on `side`.
pub fn intent(id: u64, side: Side, amount: f64) -> HedgeIntent {
    HedgeIntent {
        trace: TickTrace::default(),
        id,
        amount,
        ref_price: 3_000.0,
        coin_delta: if side == Side::Buy { amount } else { -amount },
        instrument: InstrumentId(0),
        side,
        venue: Venue::Ethereum,
    }
}

/// The signing address.
pub fn address() -> Address {
    EvmSigner::from_hex(KEY, "test key").unwrap().address()
}

/// Polls `exec` until a fill comes out, serving the signer's reconcile readings in between
/// (the test thread plays the signer thread). Panics after `limit`.
pub fn next_fill(exec: &mut EvmExec, signer: &mut LadderSigner, limit: Duration) -> Fill {
    let t0 = Instant::now();
    loop {
        if let Some(f) = exec.pop_fill() {
            return f;
        }
        assert!(t0.elapsed() < limit, "no fill within {limit:?}");
        exec.poll(Duration::from_micros(200));
        let want = signer_shelf_reconcile(signer);
        if want != 0 && keel_feeds::clock::now_ns() >= want {
            let _ = signer.read();
        }
    }
}

fn signer_shelf_reconcile(signer: &LadderSigner) -> u64 {
    signer.shelf().reconcile_after_ns()
}

/// The pending nonce as the node reports it (retried through injected faults).
pub fn pending_nonce(node: &NodeHandle) -> u64 {
    use keel_engine::exec::evm::signer::ChainReader;
    let mut r = RpcChainReader::new(&node.node_url(), address(), Duration::from_millis(300));
    for _ in 0..100 {
        if let Ok(v) = r.read() {
            return v.pending_nonce;
        }
    }
    panic!("the node never answered eth_getTransactionCount");
}

/// Reads the chain and re-signs, retried through injected faults.
pub fn first_step(signer: &mut LadderSigner) {
    for _ in 0..100 {
        if signer.step().is_ok() {
            return;
        }
    }
    panic!("the signer never read the chain");
}
