//! keel-sim's mock Ethereum JSON-RPC node and block builders: several HTTP/1.1 keep-alive
//! endpoints on loopback (each its own listener), one shared simulated chain
//! ([`chain::ChainState`], the only place acceptance is decided), per-endpoint latency and
//! fault injection, deterministic for a seed. Started in-process with [`NodeSim::start`] or by
//! `keel-sim --node-port`.
//!
//! A WebSocket endpoint ([`NodeHandle::ws_url`], [`heads`]) answers `eth_subscribe
//! ["newHeads"]` and streams every mined block's head (base fee, gas used and limit; each block
//! uses half its limit, so the base fee stays the configured one, as the chain enforces).
//!
//! Endpoints (JSON-RPC 2.0 over `POST`, any path; batches allowed):
//! - the node (endpoint 0): `eth_sendRawTransaction`, `eth_getTransactionCount` (`"latest"` or
//!   `"pending"`), `eth_blockNumber`, `eth_chainId`, `eth_getTransactionReceipt`;
//! - builder k (endpoints 1..=N): `eth_sendBundle` (`[{"txs": [...], "blockNumber": "0x.."}]`,
//!   answered `{"bundleHash": ...}`) and `eth_sendRawTransaction` plus the read methods, every
//!   request authenticated by `X-Flashbots-Signature` (verified with
//!   [`keel_engine::exec::evm::verify_header`]; missing or bad: HTTP 403 with JSON-RPC error
//!   -32600).
//!
//! Latency: each reply is held for a draw of the endpoint's [`LatencyDist`] (replies on one
//! connection keep their order, as HTTP/1.1 requires), with per-connection delayed writes on
//! the one server thread: a slow endpoint never blocks another connection.
//!
//! Faults (per endpoint rates, drawn per request from the endpoint's seeded generator; a
//! faulted request never reaches the chain state):
//! - error: HTTP 503 with JSON-RPC error -32603;
//! - timeout: no reply, and none to later requests on that connection (ordering);
//! - reset: the connection is closed with a TCP reset (SO_LINGER 0) instead of replying;
//! - malformed: a broken status line, or a reply whose JSON body is cut short.
//!
//! Owns the server thread, its sockets and the chain; never panics on client input (malformed
//! HTTP gets 400 and a close, malformed JSON -32700, unknown methods -32601).

pub mod chain;
pub mod cli;
pub mod heads;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use keel_engine::exec::evm::Address;
use keel_feeds::net::rand::WyRand;

pub use chain::{ChainParams, ChainState, Refusal, RefusalKind, TxRecord};

use super::SimError;

/// A latency distribution, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LatencyDist {
    /// Always this many µs.
    Fixed(u64),
    /// Uniform in `lo..=hi` µs.
    Uniform(u64, u64),
    /// Log-normal with this median (µs) and sigma of the log.
    LogNormal {
        /// Median, µs.
        median: f64,
        /// Standard deviation of ln(latency).
        sigma: f64,
    },
}

impl Default for LatencyDist {
    fn default() -> Self {
        LatencyDist::Fixed(0)
    }
}

impl LatencyDist {
    /// Parses `fixed:50`, `uniform:20..200` or `lognormal:100,0.5` (µs); the error names the
    /// text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "latency {text:?}: {why} (expected fixed:US, uniform:LO..HI or lognormal:MEDIAN_US,SIGMA)"
            )
        };
        let (kind, args) = text.split_once(':').ok_or_else(|| bad("no kind"))?;
        let int = |s: &str| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| bad("not a whole number of µs"))
        };
        let d = match kind {
            "fixed" => LatencyDist::Fixed(int(args)?),
            "uniform" => {
                let (lo, hi) = args.split_once("..").ok_or_else(|| bad("no LO..HI"))?;
                let (lo, hi) = (int(lo)?, int(hi)?);
                if lo > hi {
                    return Err(bad("LO above HI"));
                }
                LatencyDist::Uniform(lo, hi)
            }
            "lognormal" => {
                let (m, s) = args.split_once(',').ok_or_else(|| bad("no MEDIAN,SIGMA"))?;
                let num = |s: &str| s.trim().parse::<f64>().map_err(|_| bad("not a number"));
                let (median, sigma) = (num(m)?, num(s)?);
                if !(median.is_finite() && median >= 0.0 && sigma.is_finite() && sigma >= 0.0) {
                    return Err(bad("median and sigma must be finite and non-negative"));
                }
                LatencyDist::LogNormal { median, sigma }
            }
            _ => return Err(bad("unknown kind")),
        };
        if d.max_us() > 60_000_000 {
            return Err(bad("above 60 s"));
        }
        Ok(d)
    }

    fn max_us(&self) -> u64 {
        match *self {
            LatencyDist::Fixed(v) | LatencyDist::Uniform(_, v) => v,
            LatencyDist::LogNormal { median, .. } => median as u64,
        }
    }

    /// One draw.
    pub fn sample(&self, rng: &mut WyRand) -> Duration {
        let us = match *self {
            LatencyDist::Fixed(v) => v,
            LatencyDist::Uniform(lo, hi) => lo + rng.below_inclusive(hi - lo),
            LatencyDist::LogNormal { median, sigma } => {
                // Box-Muller from two uniforms in (0, 1].
                let u1 = unit(rng).max(f64::MIN_POSITIVE);
                let u2 = unit(rng);
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (median * (sigma * z).exp()).min(60e6) as u64
            }
        };
        Duration::from_micros(us)
    }
}

/// Uniform in [0, 1).
pub(crate) fn unit(rng: &mut WyRand) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Latency and fault rates of one endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EndpointBehaviour {
    /// Reply latency.
    pub latency: LatencyDist,
    /// Fraction of requests answered with an injected error.
    pub error_rate: f64,
    /// Fraction of requests never answered (the connection stalls).
    pub timeout_rate: f64,
    /// Fraction of requests answered by a TCP reset.
    pub reset_rate: f64,
    /// Fraction of requests answered malformed.
    pub malformed_rate: f64,
    /// Fraction of valid bundles a builder answers with their hash and then loses: never
    /// included, never seen by the node (the builder did not win the block). Builders only.
    pub lost_rate: f64,
}

impl EndpointBehaviour {
    /// Applies `key=value[,key=value...]` (keys `latency`, `error`, `timeout`, `reset`,
    /// `malformed`, `lost`); the error names the offending part.
    pub fn apply(&mut self, spec: &str) -> Result<(), String> {
        for part in spec.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not KEY=VALUE"))?;
            let rate = || {
                v.parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| format!("{k} rate {v:?} is not a number in 0..=1"))
            };
            match k {
                "latency" => self.latency = LatencyDist::parse(v)?,
                "error" => self.error_rate = rate()?,
                "timeout" => self.timeout_rate = rate()?,
                "reset" => self.reset_rate = rate()?,
                "malformed" => self.malformed_rate = rate()?,
                "lost" => self.lost_rate = rate()?,
                _ => {
                    return Err(format!(
                        "unknown key {k:?} (latency, error, timeout, reset, malformed, lost)"
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate(&self, name: &str) -> Result<(), SimError> {
        let latency_ok = match self.latency {
            LatencyDist::Fixed(v) => v <= 60_000_000,
            LatencyDist::Uniform(lo, hi) => lo <= hi && hi <= 60_000_000,
            LatencyDist::LogNormal { median, sigma } => {
                median.is_finite() && median >= 0.0 && sigma.is_finite() && sigma >= 0.0
            }
        };
        if !latency_ok {
            return Err(super::invalid(
                "rpc-latency-us",
                format!("{:?}", self.latency),
                format!("{name}: a range LO <= HI within 60 s, finite non-negative log-normal"),
            ));
        }
        let rates = [
            ("rpc-error-rate", self.error_rate),
            ("rpc-timeout-rate", self.timeout_rate),
            ("rpc-reset-rate", self.reset_rate),
            ("rpc-malformed-rate", self.malformed_rate),
        ];
        for (field, r) in rates {
            if !(0.0..=1.0).contains(&r) {
                return Err(super::invalid(
                    field,
                    r,
                    format!("{name}: must be in 0..=1"),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.lost_rate) {
            return Err(super::invalid(
                "rpc-endpoint lost",
                self.lost_rate,
                format!("{name}: must be in 0..=1"),
            ));
        }
        let sum: f64 = rates.iter().map(|r| r.1).sum();
        if sum > 1.0 + 1e-9 {
            return Err(super::invalid(
                "rpc-*-rate",
                sum,
                format!("{name}: the fault rates add up to more than 1"),
            ));
        }
        Ok(())
    }
}

/// Everything the node and builders need to start.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeConfig {
    /// Address of the node's listener (port 0 picks a free one); builders listen on the same
    /// IP, each on a free port.
    pub listen: SocketAddr,
    /// Number of builders.
    pub builders: usize,
    /// Chain id.
    pub chain_id: u64,
    /// First block number.
    pub start_block: u64,
    /// Time between blocks.
    pub block_time: Duration,
    /// Base fee per gas, wei.
    pub base_fee: u128,
    /// Only these senders have funds (empty: everyone).
    pub funded: Vec<Address>,
    /// Seed of latency and fault draws (endpoint k uses its own generator from it).
    pub seed: u64,
    /// The node's latency and faults.
    pub node: EndpointBehaviour,
    /// Each builder's, builder k at index k − 1 (a missing entry: no latency, no faults).
    pub builder: Vec<EndpointBehaviour>,
    /// Largest request accepted (head and body).
    pub max_request: usize,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            builders: 2,
            chain_id: 1,
            start_block: 20_000_000,
            block_time: Duration::from_secs(12),
            base_fee: 10_000_000_000,
            funded: Vec::new(),
            seed: 1,
            node: EndpointBehaviour::default(),
            builder: Vec::new(),
            max_request: 1 << 20,
        }
    }
}

impl NodeConfig {
    /// Every endpoint gets `b` (node and builders).
    pub fn set_all(&mut self, b: EndpointBehaviour) {
        self.node = b;
        self.builder = vec![b; self.builders];
    }

    /// Endpoint `k`'s behaviour (0 = node).
    pub fn behaviour(&self, k: usize) -> EndpointBehaviour {
        if k == 0 {
            self.node
        } else {
            self.builder.get(k - 1).copied().unwrap_or_default()
        }
    }

    /// Checks every field; the error names it.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.builders > 64 {
            return Err(super::invalid("builders", self.builders, "at most 64"));
        }
        if self.chain_id == 0 {
            return Err(super::invalid("chain-id", 0, "must be at least 1"));
        }
        if self.block_time < Duration::from_millis(10) {
            return Err(super::invalid(
                "block-time-ms",
                self.block_time.as_millis(),
                "at least 10 ms",
            ));
        }
        if self.max_request < 1024 {
            return Err(super::invalid(
                "max-request",
                self.max_request,
                "at least 1024",
            ));
        }
        for k in 0..=self.builders {
            self.behaviour(k).validate(&endpoint_name(k))?;
        }
        Ok(())
    }
}

/// `node` or `builderK`.
pub fn endpoint_name(k: usize) -> String {
    if k == 0 {
        "node".into()
    } else {
        format!("builder{k}")
    }
}

/// Counters of one endpoint (a snapshot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Connections accepted.
    pub connections: u64,
    /// JSON-RPC requests received (each call of a batch counts).
    pub requests: u64,
    /// Transactions accepted (bundles count their transactions).
    pub accepted: u64,
    /// Transactions refused as duplicates (nonce already taken).
    pub duplicate: u64,
    /// Transactions refused otherwise (signature, chain id, nonce gap, funds, fee).
    pub rejected: u64,
    /// Requests refused for a missing or bad `X-Flashbots-Signature`.
    pub unauthorized: u64,
    /// Malformed HTTP or JSON requests.
    pub bad_requests: u64,
    /// Injected faults: errors.
    pub fault_errors: u64,
    /// Injected faults: timeouts.
    pub fault_timeouts: u64,
    /// Injected faults: resets.
    pub fault_resets: u64,
    /// Injected faults: malformed replies.
    pub fault_malformed: u64,
    /// Bundles answered with their hash and then lost (`lost` rate): never included.
    pub bundles_lost: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub accepted: AtomicU64,
    pub duplicate: AtomicU64,
    pub rejected: AtomicU64,
    pub unauthorized: AtomicU64,
    pub bad_requests: AtomicU64,
    pub fault_errors: AtomicU64,
    pub fault_timeouts: AtomicU64,
    pub fault_resets: AtomicU64,
    pub fault_malformed: AtomicU64,
    pub bundles_lost: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> EndpointStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EndpointStats {
            connections: g(&self.connections),
            requests: g(&self.requests),
            accepted: g(&self.accepted),
            duplicate: g(&self.duplicate),
            rejected: g(&self.rejected),
            unauthorized: g(&self.unauthorized),
            bad_requests: g(&self.bad_requests),
            fault_errors: g(&self.fault_errors),
            fault_timeouts: g(&self.fault_timeouts),
            fault_resets: g(&self.fault_resets),
            fault_malformed: g(&self.fault_malformed),
            bundles_lost: g(&self.bundles_lost),
        }
    }
}

/// Starts the node and builders.
pub struct NodeSim;

impl NodeSim {
    /// Validates `config`, binds every listener and starts the server thread.
    pub fn start(config: NodeConfig) -> Result<NodeHandle, SimError> {
        config.validate()?;
        let stop = Arc::new(AtomicBool::new(false));
        let block = Arc::new(AtomicU64::new(config.start_block));
        let counters: Vec<Arc<Counters>> = (0..=config.builders)
            .map(|_| Arc::new(Counters::default()))
            .collect();
        let head = Arc::new(heads::HeadCell::default());
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let server = server::Server::bind(
            &config,
            Arc::clone(&block),
            counters.clone(),
            head.clone(),
            log.clone(),
        )?;
        let addrs = server.addrs();
        let ws = heads::HeadsServer::start(config.listen.ip(), head, Arc::clone(&stop))?;
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("keel-sim-node".into())
            .spawn(move || server.run(&thread_stop))
            .map_err(|source| SimError::Io {
                what: "spawn the node thread",
                source,
            })?;
        Ok(NodeHandle {
            addrs,
            counters,
            block,
            stop,
            thread: Some(thread),
            ws,
            log,
        })
    }
}

/// A running node and its builders; stops them when dropped.
pub struct NodeHandle {
    addrs: Vec<SocketAddr>,
    counters: Vec<Arc<Counters>>,
    block: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    ws: heads::HeadsServer,
    log: Arc<std::sync::Mutex<Vec<TxRecord>>>,
}

impl NodeHandle {
    /// The newHeads WebSocket URL (`ws://IP:PORT/`).
    pub fn ws_url(&self) -> String {
        format!("ws://{}/", self.ws.addr)
    }

    /// Every transaction the chain accepted so far, in order (any endpoint).
    pub fn accepted_txs(&self) -> Vec<TxRecord> {
        self.log.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// The node's URL (`http://IP:PORT/`).
    pub fn node_url(&self) -> String {
        format!("http://{}/", self.addrs[0])
    }

    /// Builder `k`'s URL, k from 1.
    pub fn builder_url(&self, k: usize) -> Option<String> {
        (k >= 1)
            .then(|| self.addrs.get(k))
            .flatten()
            .map(|a| format!("http://{a}/"))
    }

    /// Every builder's URL, in order.
    pub fn builder_urls(&self) -> Vec<String> {
        self.addrs[1..]
            .iter()
            .map(|a| format!("http://{a}/"))
            .collect()
    }

    /// Endpoint `k`'s address (0 = node).
    pub fn addr(&self, k: usize) -> Option<SocketAddr> {
        self.addrs.get(k).copied()
    }

    /// Endpoint `k`'s counters (0 = node).
    pub fn stats(&self, k: usize) -> Option<EndpointStats> {
        self.counters.get(k).map(|c| c.snapshot())
    }

    /// The sum over every endpoint.
    pub fn total(&self) -> EndpointStats {
        let mut t = EndpointStats::default();
        for c in &self.counters {
            let s = c.snapshot();
            t.connections += s.connections;
            t.requests += s.requests;
            t.accepted += s.accepted;
            t.duplicate += s.duplicate;
            t.rejected += s.rejected;
            t.unauthorized += s.unauthorized;
            t.bad_requests += s.bad_requests;
            t.fault_errors += s.fault_errors;
            t.fault_timeouts += s.fault_timeouts;
            t.fault_resets += s.fault_resets;
            t.fault_malformed += s.fault_malformed;
        }
        t
    }

    /// The latest block number.
    pub fn block_number(&self) -> u64 {
        self.block.load(Ordering::Acquire)
    }

    /// Stops the server thread and closes every socket.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.ws.join();
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_specs() {
        assert_eq!(LatencyDist::parse("fixed:50"), Ok(LatencyDist::Fixed(50)));
        assert_eq!(
            LatencyDist::parse("uniform:20..200"),
            Ok(LatencyDist::Uniform(20, 200))
        );
        assert_eq!(
            LatencyDist::parse("lognormal:100,0.5"),
            Ok(LatencyDist::LogNormal {
                median: 100.0,
                sigma: 0.5
            })
        );
        for bad in [
            "",
            "fixed",
            "fixed:-1",
            "uniform:5..1",
            "gauss:1",
            "lognormal:1",
            "fixed:99999999999",
        ] {
            let e = LatencyDist::parse(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        let mut rng = WyRand::from_seed(7);
        let d = LatencyDist::Uniform(20, 200);
        for _ in 0..1000 {
            let s = d.sample(&mut rng).as_micros();
            assert!((20..=200).contains(&s));
        }
        // The log-normal's median is the median.
        let d = LatencyDist::LogNormal {
            median: 100.0,
            sigma: 0.5,
        };
        let mut v: Vec<u128> = (0..4001).map(|_| d.sample(&mut rng).as_micros()).collect();
        v.sort_unstable();
        assert!((85..=115).contains(&v[2000]), "median {}", v[2000]);
    }

    #[test]
    fn behaviour_specs_and_validation() {
        let mut b = EndpointBehaviour::default();
        b.apply("latency=fixed:5,error=0.1,reset=0.2").unwrap();
        assert_eq!(b.latency, LatencyDist::Fixed(5));
        assert_eq!((b.error_rate, b.reset_rate), (0.1, 0.2));
        assert!(b.apply("error=2").unwrap_err().contains("error rate"));
        assert!(b.apply("nope=1").unwrap_err().contains("unknown key"));
        let mut cfg = NodeConfig::default();
        cfg.set_all(EndpointBehaviour {
            error_rate: 0.6,
            timeout_rate: 0.6,
            ..Default::default()
        });
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("node") && e.contains("more than 1"), "{e}");
        cfg.set_all(EndpointBehaviour {
            latency: LatencyDist::Uniform(9, 1),
            ..Default::default()
        });
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("rpc-latency-us"), "{e}");
        cfg.set_all(EndpointBehaviour::default());
        cfg.chain_id = 0;
        assert!(cfg.validate().unwrap_err().to_string().contains("chain-id"));
    }
}
