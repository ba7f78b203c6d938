//! The on-chain hedge venue of `keel run` (`--alt-hedge evm`): start-up and shutdown around the
//! engine's EVM exec path (`keel_engine::exec::evm`).
//!
//! Start-up, in order, before the first hedge can be decided:
//! 1. the chain: `--evm-rpc-url` (and builders), or keel-sim's mock node and two builders
//!    started in-process (a fresh random sender key and reputation key per run, the sender the
//!    only funded account of the mock chain);
//! 2. the keys: `--evm-key-env` or `--evm-keystore` with its password, and the separate
//!    Flashbots reputation key (`--evm-flashbots-key-env`) when builders are routes;
//! 3. the node's `eth_chainId` must equal `--evm-chain-id` (a transaction signed for another
//!    chain is refused, or worse, valid elsewhere);
//! 4. the signer reads the pending nonce and the head (`eth_getTransactionCount(.., "pending")`,
//!    `eth_getBlockByNumber("latest")`) and signs the ladders at that nonce and the next; the
//!    run does not start without them;
//! 5. the signer thread starts (it runs for the whole run; [`EvmVenue::finish`] stops and joins
//!    it, then reads the nonce once more for the summary), and the exec tile gets its shelf.
//!
//! A run that is dry (no `--live`, or an enabled venue's keys missing: `RunConfig::dry_run`)
//! never sends to a real node (`--evm-rpc-url`): its on-chain hedges fill on paper at the
//! decision's price (the keys are not even loaded); the embedded mock node always gets real
//! transactions, like the embedded Deribit gets real orders.
//!
//! Start-up code: allocates and blocks freely; nothing here runs on the hot path.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use keel_engine::exec::evm::exec::{EvmExec, EvmExecConfig, EvmExecCounters, EvmExecTile};
use keel_engine::exec::evm::ladder::{CallTemplate, LadderSpec, RouteKind, RouteTarget};
use keel_engine::exec::evm::signer::{LadderSigner, RpcChainReader, SignerConfig, SignerCounters};
use keel_engine::exec::evm::{
    Address, EvmSigner, FlashbotsSigner, KeySource, PasswordSource, U256, parse,
};
use keel_engine::exec::race::RouteStats;
use keel_engine::exec::{Fill, HedgeIntent, PaperExec};
use keel_engine::pipeline::ring::{Consumer, Producer};
use keel_engine::pipeline::{StopFlag, Tile};
use keel_feeds::net::http::http_request;

use crate::run_config::{EvmSettings, RunConfig};
use crate::sim::node::{NodeConfig, NodeHandle, NodeSim};

/// ETH/USD the embedded mock chain's gas is priced at when `--evm-eth-usd` is not given.
pub const SIM_ETH_USD: f64 = 3_000.0;
/// The mock router the embedded node's transactions call (the mock chain executes no code).
const SIM_ROUTER: &str = "0x00000000000000000000000000000000000dec0d";
/// Mock calldata: `swapExactIn(uint256)` / `swapExactOut(uint256)`-shaped, the amount in word 0.
const SIM_CALLDATA_BUY: &str =
    "0x7ff36ab50000000000000000000000000000000000000000000000000000000000000000";
const SIM_CALLDATA_SELL: &str =
    "0x18cbafe50000000000000000000000000000000000000000000000000000000000000000";
/// How long the exec tile waits for its routes to connect at start.
const WARM_TIMEOUT: Duration = Duration::from_secs(2);

/// The venue while the run lasts.
pub struct EvmVenue {
    /// The embedded mock node and builders, if no `--evm-rpc-url`.
    pub node: Option<NodeHandle>,
    /// The routes, in race order (names for the report).
    pub routes: Vec<RouteTarget>,
    /// The newHeads WebSocket the feed subscribes to.
    pub ws_url: String,
    /// ETH/USD for gas (`None`: the index).
    pub eth_usd: Option<f64>,
    /// The sender, if keys were loaded.
    pub address: Option<Address>,
    /// Pending nonce read at start.
    pub nonce_start: Option<u64>,
    /// Transactions really go out (false: paper fills).
    pub live: bool,
    signer: Option<JoinHandle<LadderSigner>>,
    signer_counters: Option<Arc<SignerCounters>>,
    exec_counters: Option<Arc<EvmExecCounters>>,
    route_report: Arc<Mutex<Vec<RouteStats>>>,
    /// Signs on start, taken by [`Self::spawn`].
    pending_signer: Option<LadderSigner>,
    pending_exec: Option<EvmExec>,
}

/// What the summary reports about the venue.
#[derive(Clone, Debug, Default)]
pub struct EvmReport {
    /// `embedded mock node` or the first RPC URL; `paper` when nothing was sent.
    pub target: String,
    /// Sender address (0x, checksummed), if keys were loaded.
    pub address: Option<String>,
    /// Decisions taken by the exec tile.
    pub decisions: u64,
    /// Decisions fired (at least one copy written).
    pub fired: u64,
    /// Decisions won (accepted by a route).
    pub won: u64,
    /// Decisions whose copies were all refused, held, found landed late, not found.
    pub failed: u64,
    /// See `failed`.
    pub held: u64,
    /// See `failed`.
    pub late_fills: u64,
    /// See `failed`.
    pub not_found: u64,
    /// Builder-won decisions the chain's nonce then showed, and those never included (each
    /// undone by a `Lost` fill).
    pub confirmed: u64,
    /// See `confirmed`.
    pub lost: u64,
    /// Refusals before sending, by reason name.
    pub refusals: Vec<(&'static str, u64)>,
    /// Per route: name, copies fired, accepted, duplicate, rejected, timeout, error, send→ack
    /// p50 and p99 (ns), health.
    pub routes: Vec<RouteReport>,
    /// Pending nonce at start and at the end (read from the chain).
    pub nonce_start: Option<u64>,
    /// See `nonce_start`.
    pub nonce_end: Option<u64>,
    /// Signer: chain readings, failed readings, ladders signed, signing failures.
    pub chain_reads: u64,
    /// See `chain_reads`.
    pub chain_read_errors: u64,
    /// See `chain_reads`.
    pub ladders_signed: u64,
    /// See `chain_reads`.
    pub sign_errors: u64,
    /// Connection drops seen by the exec tile (closing them at the end counts).
    pub disconnects: u64,
    /// The embedded mock chain's own record, if it ran (read before it stopped).
    pub mock: Option<MockChainReport>,
}

/// What the embedded mock chain saw, from its side.
#[derive(Clone, Debug, Default)]
pub struct MockChainReport {
    /// Transactions accepted, in order: sender (checksummed) and nonce.
    pub accepted: Vec<(String, u64)>,
    /// Copies refused as duplicates (the racing rule's void copies), other refusals, and
    /// requests refused for a missing or bad `X-Flashbots-Signature`, over every endpoint.
    pub duplicate: u64,
    /// See `duplicate`.
    pub rejected: u64,
    /// See `duplicate`.
    pub unauthorized: u64,
    /// JSON-RPC requests the builders received.
    pub builder_requests: u64,
}

/// One route's figures.
#[derive(Clone, Debug, Default)]
pub struct RouteReport {
    /// `rpc 127.0.0.1:8545` or `builder host:port`.
    pub name: String,
    /// Copies written.
    pub fired: u64,
    /// Outcomes: accepted, duplicate, rejected, timeout, error.
    pub outcomes: [u64; 5],
    /// Send→ack latency of answered copies, p50 and p99, ns (0 when none).
    pub p50_ns: u64,
    /// See `p50_ns`.
    pub p99_ns: u64,
    /// `healthy` or `degraded`.
    pub health: String,
}

pub(crate) fn random_key(what: &str) -> Result<EvmSigner> {
    let mut b = zeroize::Zeroizing::new([0u8; 32]);
    // A draw that is not a valid scalar (zero or ≥ the order) is astronomically unlikely: retry.
    for _ in 0..8 {
        keel_feeds::net::rand::os_random_bytes(&mut b[..]);
        if let Ok(k) = EvmSigner::from_bytes(&b, what) {
            return Ok(k);
        }
    }
    bail!("could not draw a random {what}")
}

/// `eth_chainId` of the node at `url`.
fn chain_id_of(url: &str, timeout: Duration) -> Result<u64> {
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;
    let (status, reply) = http_request(
        url,
        "POST",
        Some(body),
        &[("Content-Type", "application/json")],
        None,
        timeout,
    )
    .with_context(|| format!("--evm-rpc-url {url}: eth_chainId"))?;
    if !(200..300).contains(&status) {
        bail!("--evm-rpc-url {url}: eth_chainId answered HTTP {status}");
    }
    let v: serde_json::Value = serde_json::from_slice(&reply)
        .with_context(|| format!("--evm-rpc-url {url}: eth_chainId reply is not JSON"))?;
    v.get("result")
        .and_then(|r| r.as_str())
        .and_then(|s| s.strip_prefix("0x"))
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .with_context(|| format!("--evm-rpc-url {url}: eth_chainId reply {v} has no 0x-hex result"))
}

/// The token amount of `lot` coins at `decimals`: must be a whole number of base units.
fn lot_units(lot: f64, decimals: u8) -> Result<U256> {
    let units = lot * 10f64.powi(i32::from(decimals));
    let rounded = units.round();
    if !(1.0..1e30).contains(&rounded) || (units - rounded).abs() > 1e-6 * rounded.max(1.0) {
        bail!(
            "--evm-lot {lot} with --evm-decimals {decimals}: not a whole number of token base \
             units ({units})"
        );
    }
    Ok(U256::from(rounded as u128))
}

fn template(e: &EvmSettings, calldata: &str, flag: &str) -> Result<CallTemplate> {
    let router = e.router.as_deref().unwrap_or(SIM_ROUTER);
    let to = parse::address("--evm-router", router).map_err(|x| anyhow::anyhow!("{x}"))?;
    let data = parse::hex_bytes(flag, calldata).map_err(|x| anyhow::anyhow!("{x}"))?;
    CallTemplate::new(to, data, e.amount_word, U256::ZERO)
        .map_err(|x| anyhow::anyhow!("{flag}: {x}"))
}

impl EvmVenue {
    /// Steps 1 to 4 of the module doc; `timeout` bounds each start-up request.
    pub fn start(cfg: &RunConfig, timeout: Duration) -> Result<EvmVenue> {
        let e = &cfg.evm;
        let embedded = e.uses_sim();
        // Like every venue: real orders with --live and every enabled venue's keys (a run that is
        // dry for Deribit is dry on chain too); the embedded mock always gets real ones.
        let live = embedded || !cfg.dry_run();
        let route_report = Arc::new(Mutex::new(Vec::new()));
        let mut node = None;
        let (key, flashbots, routes, ws_url, chain_id) = if embedded {
            let key = match (&e.key_env, &e.keystore) {
                (None, None) => random_key("the embedded node's sender key")?,
                _ => load_key(e)?,
            };
            let fb = random_key("the embedded builders' reputation key")?;
            let n = NodeSim::start(NodeConfig {
                builders: 2,
                chain_id: e.chain_id.unwrap_or(1),
                block_time: e.sim_block_time,
                base_fee: (e.sim_base_fee_gwei * 1e9).round() as u128,
                funded: vec![key.address()],
                seed: cfg.sim.seed,
                ..NodeConfig::default()
            })
            .context("starting the embedded mock Ethereum node (--alt-hedge evm)")?;
            let mut routes = vec![
                RouteTarget::parse(RouteKind::Rpc, &n.node_url())
                    .map_err(|x| anyhow::anyhow!("{x}"))?,
            ];
            for b in n.builder_urls() {
                routes.push(
                    RouteTarget::parse(RouteKind::Builder, &b)
                        .map_err(|x| anyhow::anyhow!("{x}"))?,
                );
            }
            let ws = n.ws_url();
            let chain = e.chain_id.unwrap_or(1);
            node = Some(n);
            (Some(key), Some(FlashbotsSigner::new(fb)), routes, ws, chain)
        } else {
            let mut routes = Vec::new();
            for u in &e.rpc_url {
                routes.push(
                    RouteTarget::parse(RouteKind::Rpc, u).map_err(|x| anyhow::anyhow!("{x}"))?,
                );
            }
            for u in &e.builder_url {
                routes.push(
                    RouteTarget::parse(RouteKind::Builder, u)
                        .map_err(|x| anyhow::anyhow!("{x}"))?,
                );
            }
            let ws = e.ws_url.clone().context("--evm-ws-url")?;
            let chain = e.chain_id.context("--evm-chain-id")?;
            if live {
                let key = load_key(e)?;
                let fb = match &e.flashbots_key_env {
                    Some(var) => Some(FlashbotsSigner::new(
                        EvmSigner::from_env(var)
                            .map_err(|x| anyhow::anyhow!("--evm-flashbots-key-env: {x}"))?,
                    )),
                    None => None,
                };
                (Some(key), fb, routes, ws, chain)
            } else {
                (None, None, routes, ws, chain)
            }
        };
        let eth_usd = match (e.eth_usd, embedded) {
            (Some(p), _) => Some(p),
            (None, true) if cfg.underlying != "ETH" => Some(SIM_ETH_USD),
            (None, _) => None,
        };
        let mut venue = EvmVenue {
            node,
            routes: routes.clone(),
            ws_url,
            eth_usd,
            address: key.as_ref().map(EvmSigner::address),
            nonce_start: None,
            live,
            signer: None,
            signer_counters: None,
            exec_counters: None,
            route_report,
            pending_signer: None,
            pending_exec: None,
        };
        let Some(key) = key else {
            return Ok(venue);
        };
        let rpc0 = routes
            .iter()
            .find(|r| r.kind == RouteKind::Rpc)
            .context("--evm-rpc-url: at least one RPC endpoint is needed to read the nonce")?
            .url
            .to_string();
        let got = chain_id_of(&rpc0, timeout)?;
        if got != chain_id {
            bail!("--evm-chain-id {chain_id}: the node at {rpc0} is on chain {got}");
        }
        let spec = LadderSpec {
            chain_id,
            gas_limit: e.gas_limit,
            max_priority_fee_per_gas: (e.priority_fee_gwei * 1e9).round() as u128,
            buy: template(
                e,
                e.calldata_buy.as_deref().unwrap_or(SIM_CALLDATA_BUY),
                "--evm-calldata-buy",
            )?,
            sell: template(
                e,
                e.calldata_sell.as_deref().unwrap_or(SIM_CALLDATA_SELL),
                "--evm-calldata-sell",
            )?,
            lot: e.lot,
            lot_units: lot_units(e.lot, e.decimals)?,
            rungs: e.rungs,
        };
        spec.validate()
            .map_err(|x| anyhow::anyhow!("--evm-*: {x}"))?;
        let address = key.address();
        let (mut signer, shelf) = LadderSigner::new(
            SignerConfig {
                spec,
                routes: routes.clone(),
                fee_multiplier: e.fee_multiplier,
                poll: e.poll,
            },
            key,
            flashbots,
            Box::new(RpcChainReader::new(&rpc0, address, timeout)),
        )
        .map_err(|x| anyhow::anyhow!("--evm-*: {x}"))?;
        // The nonce from the chain and the first ladders, before the first hedge.
        // A node that fails a reading now and then gets three tries; one that keeps failing
        // stops the start (nothing may be signed at a guessed nonce).
        let mut view = signer.read();
        for _ in 0..2 {
            if view.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
            view = signer.read();
        }
        let view = view.with_context(|| format!("reading the nonce of {address} from {rpc0}"))?;
        signer.resign();
        for n in [view.pending_nonce, view.pending_nonce + 1] {
            if signer.current(n).is_none_or(|l| l.nonce != n) {
                bail!("signing the first ladder at nonce {n} failed (see --evm-* settings)");
            }
        }
        venue.nonce_start = Some(view.pending_nonce);
        let exec = EvmExec::new(
            &routes,
            shelf,
            &EvmExecConfig {
                max_order: e.max_order.unwrap_or(f64::INFINITY),
                request_timeout: Duration::from_millis(e.timeout_ms),
                ..EvmExecConfig::default()
            },
        )
        .map_err(|x| anyhow::anyhow!("--evm-rpc-url/--evm-builder-url: {x}"))?;
        venue.signer_counters = Some(signer.counters());
        venue.exec_counters = Some(exec.counters());
        venue.pending_signer = Some(signer);
        venue.pending_exec = Some(exec);
        Ok(venue)
    }

    /// The exec tile of the venue on `intents`/`fills` (paper fills when not live).
    pub fn exec_tile(
        &mut self,
        intents: Consumer<HedgeIntent>,
        fills: Producer<Fill>,
    ) -> Box<dyn Tile> {
        match self.pending_exec.take() {
            Some(exec) => Box::new(
                EvmExecTile::new(exec, intents, fills, WARM_TIMEOUT)
                    .with_route_report(self.route_report.clone()),
            ),
            None => Box::new(PaperExec::new(intents, fills).0),
        }
    }

    /// False once a started signer thread has ended before the run (it panicked): ladders
    /// then go stale and every on-chain decision is refused (fee or block stale).
    pub fn signer_running(&self) -> bool {
        self.signer.as_ref().is_none_or(|h| !h.is_finished())
    }

    /// Starts the signer thread (step 5); it stops with `stop`.
    pub fn spawn_signer(&mut self, stop: &StopFlag) -> Result<()> {
        if let Some(s) = self.pending_signer.take() {
            self.signer = Some(
                s.spawn(stop.clone())
                    .context("spawning the EVM ladder signer thread")?,
            );
        }
        Ok(())
    }

    /// Joins the signer (the stop flag must be raised), reads the final nonce, stops the
    /// embedded node; returns the report. Call after the exec tile's thread was joined.
    pub fn finish(mut self) -> EvmReport {
        let mut r = EvmReport {
            target: if !self.live {
                "paper".into()
            } else if self.node.is_some() {
                "embedded mock node".into()
            } else {
                self.routes
                    .first()
                    .map(|x| x.url.to_string())
                    .unwrap_or_default()
            },
            address: self.address.map(|a| a.to_checksum(None)),
            nonce_start: self.nonce_start,
            ..EvmReport::default()
        };
        let signer = self.signer.take().and_then(|h| h.join().ok());
        if let Some(mut s) = signer {
            // A failed final reading leaves the end nonce unknown (reported as null).
            r.nonce_end = s.read().ok().map(|v| v.pending_nonce);
        }
        if let Some(c) = &self.signer_counters {
            use std::sync::atomic::Ordering::Relaxed;
            r.chain_reads = c.reads.load(Relaxed);
            r.chain_read_errors = c.read_errors.load(Relaxed);
            r.ladders_signed = c.ladders.load(Relaxed);
            r.sign_errors = c.sign_errors.load(Relaxed);
        }
        if let Some(c) = &self.exec_counters {
            use keel_engine::exec::evm::exec::Refusal;
            use std::sync::atomic::Ordering::Relaxed;
            r.decisions = c.decisions.load(Relaxed);
            r.fired = c.fired.load(Relaxed);
            r.won = c.won.load(Relaxed);
            r.failed = c.failed.load(Relaxed);
            r.held = c.held.load(Relaxed);
            r.late_fills = c.late_fills.load(Relaxed);
            r.not_found = c.not_found.load(Relaxed);
            r.confirmed = c.confirmed.load(Relaxed);
            r.lost = c.lost.load(Relaxed);
            r.disconnects = c.disconnects.load(Relaxed);
            r.refusals = Refusal::ALL
                .iter()
                .map(|&x| (x.name(), c.refusals(x)))
                .collect();
        }
        if let Ok(stats) = self.route_report.lock() {
            r.routes = stats
                .iter()
                .map(|s| RouteReport {
                    name: s.name.clone(),
                    fired: s.fired,
                    outcomes: s.outcomes,
                    p50_ns: if s.latency.is_empty() {
                        0
                    } else {
                        s.latency.value_at_quantile(0.5)
                    },
                    p99_ns: if s.latency.is_empty() {
                        0
                    } else {
                        s.latency.value_at_quantile(0.99)
                    },
                    health: format!("{:?}", s.health).to_ascii_lowercase(),
                })
                .collect();
        }
        if let Some(mut n) = self.node.take() {
            let t = n.total();
            r.mock = Some(MockChainReport {
                accepted: n
                    .accepted_txs()
                    .iter()
                    .map(|x| (x.from.to_checksum(None), x.nonce))
                    .collect(),
                duplicate: t.duplicate,
                rejected: t.rejected,
                unauthorized: t.unauthorized,
                builder_requests: (1..=n.builder_urls().len())
                    .filter_map(|k| n.stats(k))
                    .map(|s| s.requests)
                    .sum(),
            });
            n.stop();
        }
        r
    }
}

fn load_key(e: &EvmSettings) -> Result<EvmSigner> {
    load_venue_key(
        "evm",
        e.key_env.as_deref(),
        e.keystore.as_deref(),
        e.password_env.as_deref(),
        e.password_file.as_deref(),
    )
}

/// A venue's signing key from `--<venue>-key-env` or `--<venue>-keystore` (with its password
/// from `--<venue>-password-env` or `--<venue>-password-file`): exactly one source, errors
/// named by those flags.
pub(super) fn load_venue_key(
    venue: &str,
    key_env: Option<&str>,
    keystore: Option<&std::path::Path>,
    password_env: Option<&str>,
    password_file: Option<&std::path::Path>,
) -> Result<EvmSigner> {
    let source = match (key_env, keystore) {
        (Some(var), None) => KeySource::Env(var.to_owned()),
        (None, Some(path)) => KeySource::Keystore {
            path: path.to_owned(),
            password: match (password_env, password_file) {
                (Some(v), None) => PasswordSource::Env(v.to_owned()),
                (None, Some(f)) => PasswordSource::File(f.to_owned()),
                _ => bail!(
                    "--{venue}-keystore: give --{venue}-password-env or --{venue}-password-file"
                ),
            },
        },
        (Some(_), Some(_)) => {
            bail!("--{venue}-key-env and --{venue}-keystore: give one key source")
        }
        (None, None) => {
            bail!("--alt-hedge {venue} needs --{venue}-key-env or --{venue}-keystore")
        }
    };
    source
        .load()
        .map_err(|x| anyhow::anyhow!("--{venue}-key-env/--{venue}-keystore: {x}"))
}
