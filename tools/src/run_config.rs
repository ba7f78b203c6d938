//! The configuration of `keel run`: its flags ([`RunArgs`]), the `--config keel.toml` file, and
//! the resolved, validated [`RunConfig`] the engine starts from.
//!
//! Owns parsing, precedence (built-in defaults < `keel.toml` < command-line flags) and
//! validation, with errors of one line that name the flag (or the file, line and key) and the bad
//! value. Never reads a secret: API keys are named by environment variable (`key_env`,
//! `secret_env`) and only checked for presence; a key given as a value is refused, and neither
//! [`show`] nor any error prints one.
//!
//! Paths in `keel.toml` (`positions`, `ca_file`) are relative to the file's folder; paths given as
//! flags are relative to the working directory.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use keel_feeds::net::Url;
use serde::{Deserialize, Serialize, Serializer};
use toml::Spanned;

/// The venues `keel run` speaks, in the order [`RunConfig::enabled_venues`] lists them.
pub const VENUES: [&str; 5] = ["deribit", "binance", "okx", "bybit", "eth"];
/// `--status-every` when not given.
pub const DEFAULT_STATUS_EVERY: Duration = Duration::from_secs(1);
/// `--stale-after` when not given.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(2);
/// `--underlying` when not given.
pub const DEFAULT_UNDERLYING: &str = "BTC";
/// `--delta-band` when not given, coin units.
pub const DEFAULT_DELTA_BAND: f64 = 1.0;
/// `--<venue>-timeout-ms` when not given.
pub const DEFAULT_TIMEOUT_MS: u64 = 1000;
/// The only underlying the embedded simulated venue lists.
pub const SIM_UNDERLYING: &str = "BTC";

/// What is fixed per venue: default fee, public URL, how its perpetual is named.
struct VenueSpec {
    name: &'static str,
    fee_bps: f64,
    /// Where `--<venue>-enabled` without a URL connects (`None`: a URL is required).
    public_url: Option<&'static str>,
    /// What follows the underlying in the name of its perpetual swap (`None`: the venue lists
    /// none), e.g. `-PERPETUAL` for `BTC-PERPETUAL`.
    perpetual_suffix: Option<&'static str>,
}

const SPECS: [VenueSpec; 5] = [
    VenueSpec {
        name: "deribit",
        fee_bps: 3.0,
        public_url: Some("wss://www.deribit.com/ws/api/v2"),
        perpetual_suffix: Some("-PERPETUAL"),
    },
    VenueSpec {
        name: "binance",
        fee_bps: 5.0,
        public_url: Some("wss://fstream.binance.com/ws"),
        perpetual_suffix: Some("USDT"),
    },
    VenueSpec {
        name: "okx",
        fee_bps: 5.0,
        public_url: Some("wss://ws.okx.com:8443/ws/v5/public"),
        perpetual_suffix: Some("-USDT-SWAP"),
    },
    VenueSpec {
        name: "bybit",
        fee_bps: 5.5,
        public_url: Some("wss://stream.bybit.com/v5/public/linear"),
        perpetual_suffix: Some("USDT"),
    },
    VenueSpec {
        name: "eth",
        fee_bps: 30.0,
        public_url: None,
        perpetual_suffix: None,
    },
];

impl VenueSpec {
    fn perpetual_of(&self, underlying: &str) -> Option<String> {
        self.perpetual_suffix
            .map(|suffix| format!("{underlying}{suffix}"))
    }
}

/// The perpetual the embedded simulated venue (Deribit-style names) lists.
fn sim_perpetual(underlying: &str) -> String {
    format!("{underlying}-PERPETUAL")
}

// ---------------------------------------------------------------------------------------------
// Resolved configuration
// ---------------------------------------------------------------------------------------------

/// Everything `keel run` needs, resolved and validated: defaults < `keel.toml` < flags.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunConfig {
    /// Stop after this long (`None`: until interrupted).
    #[serde(serialize_with = "ser_opt_duration")]
    pub duration: Option<Duration>,
    /// Print the final summary as one JSON object.
    pub json: bool,
    /// Interval of the live status line; zero disables it.
    #[serde(serialize_with = "ser_duration")]
    pub status_every: Duration,
    /// `dedicated` or `fused` (`None`: chosen from the cores available).
    pub topology: Option<String>,
    /// Stage cores, `feed=N,pricer=N,exec=N[,telemetry=N]` (parsed by [`parse_pin`]).
    pub pin: Option<String>,
    /// Wait strategy for all tiles or per tile (parsed by [`parse_wait`]).
    pub wait: Option<String>,
    /// How ticks reprice the book: `f32` (hedge Greeks in f32x16, summed in f64) or `f64`
    /// (every Greek in f64); see `keel_engine::book::Reprice`.
    pub reprice: String,
    /// Development run: failing to pin a thread is a warning, not an error.
    pub dev: bool,
    /// Send real orders; honoured only when every enabled venue's keys are set ([`Self::dry_run`]).
    pub live: bool,
    /// Starting positions, CSV or JSON (instrument, quantity).
    pub positions: Option<PathBuf>,
    /// The underlying hedged, e.g. `BTC`.
    pub underlying: String,
    /// The hedge instrument (default: the underlying's perpetual on the first enabled venue that
    /// lists one, or on the simulated venue; `None` only when no enabled venue lists one).
    pub hedge_instrument: Option<String>,
    /// Target portfolio delta, coin units.
    pub delta_target: f64,
    /// Hedge when |delta - target| exceeds this, coin units (> 0).
    pub delta_band: f64,
    /// Target portfolio gamma, coin units.
    pub gamma_target: f64,
    /// Hedge gamma with options when |gamma - target| exceeds this (None: gamma not hedged).
    pub gamma_band: Option<f64>,
    /// Target portfolio vega (per 1.00 of vol), coin units.
    pub vega_target: f64,
    /// Hedge vega with options when |vega - target| exceeds this (None: vega not hedged).
    pub vega_band: Option<f64>,
    /// Keep each expiry bucket's vega within ± this, coin units (None: no per-bucket band).
    pub vega_bucket_band: Option<f64>,
    /// Options the gamma/vega hedge may trade (empty: chosen at start, the call and the put
    /// nearest the middle strike of each expiry 7 to 120 days out).
    pub liquid: Vec<String>,
    /// Other venues' linear perpetuals the delta may also be hedged with, `(venue, symbol)`;
    /// each decision takes the cheapest usable venue all-in.
    pub alt_hedges: Vec<(String, String)>,
    /// Delta triggers, e.g. `ww:1+time:1h` (None: the delta band alone).
    pub policy: Option<String>,
    /// The kill switch: while this file exists the engine is HALTED (`keel halt` writes it).
    pub halt_file: PathBuf,
    /// Most hedge orders over any 60 s (rejected ones count).
    pub max_hedges_per_min: u32,
    /// Largest position in any one instrument, coin (None: no limit).
    pub max_position_coin: Option<f64>,
    /// Largest USD notional sent over any 60 s (None: no limit).
    pub max_notional_per_min: Option<f64>,
    /// Loss of the day, USD, past which only exposure-reducing orders pass (None: no stop).
    pub daily_loss_stop: Option<f64>,
    /// Rejections in a row that halt.
    pub max_consecutive_rejects: u32,
    /// Market data older than this stops hedging.
    #[serde(serialize_with = "ser_duration")]
    pub stale_after: Duration,
    /// The embedded simulated venue, used when no venue is enabled.
    pub sim: SimSettings,
    /// The on-chain hedge venue (`--alt-hedge evm`, `[evm]`, `--evm-*`).
    pub evm: EvmSettings,
    /// Hyperliquid as a delta-hedge venue (`--alt-hedge hyperliquid`, `[hyperliquid]`,
    /// `--hyperliquid-*`).
    pub hyperliquid: HyperliquidSettings,
    /// Deribit.
    pub deribit: VenueConfig,
    /// Binance.
    pub binance: VenueConfig,
    /// OKX.
    pub okx: VenueConfig,
    /// Bybit.
    pub bybit: VenueConfig,
    /// An Ethereum node and its block builders.
    pub eth: VenueConfig,
}

/// The embedded simulated venue's settings (`[sim]`, `--sim-*`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimSettings {
    /// Seed of the simulated market and of the faults' randomness.
    pub seed: u64,
    /// Messages per second per connection (0 = unlimited).
    pub rate: u64,
    /// Listed options.
    pub options: usize,
    /// Fault: close each connection after this many data messages.
    pub drop_every_msgs: Option<u64>,
    /// Fault: fraction (0..=1) of data messages sent malformed.
    pub malformed_rate: f64,
    /// Fault: go silent this long after each connection opened.
    #[serde(serialize_with = "ser_opt_duration")]
    pub silent_after: Option<Duration>,
    /// Fault: hold every outgoing message this many milliseconds.
    pub delay_ms: Option<u64>,
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            seed: 1,
            rate: 20_000,
            options: 1_000,
            drop_every_msgs: None,
            malformed_rate: 0.0,
            silent_after: None,
            delay_ms: None,
        }
    }
}

/// The on-chain delta-hedge venue's settings (`[evm]`, `--evm-*`): where transactions go, whose
/// key signs them, the call they make and what it costs. Keys are named (environment variables,
/// a keystore file), never given. With no `rpc_url`, `--alt-hedge evm` starts keel-sim's mock
/// node and two builders in-process (a fresh random key per run, funded on the mock chain).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvmSettings {
    /// JSON-RPC endpoints (`eth_sendRawTransaction`), http:// or https://; repeatable. The
    /// first is also where the nonce and the head are read.
    pub rpc_url: Vec<String>,
    /// Block builders (`eth_sendBundle`, Flashbots-signed), http:// or https://; repeatable.
    pub builder_url: Vec<String>,
    /// `newHeads` WebSocket of a node, ws:// or wss:// (the embedded node's when not given).
    pub ws_url: Option<String>,
    /// Environment variable holding the sender's private key (0x-hex).
    pub key_env: Option<String>,
    /// Keystore v3 file of the sender's key (with `password_env` or `password_file`).
    pub keystore: Option<PathBuf>,
    /// Environment variable holding the keystore's password.
    pub password_env: Option<String>,
    /// File holding the keystore's password.
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the Flashbots reputation key (needed with builders).
    pub flashbots_key_env: Option<String>,
    /// EIP-155 chain id (embedded node: 1).
    pub chain_id: Option<u64>,
    /// The contract called (DEX router), 0x address (EIP-55 checked when mixed case).
    pub router: Option<String>,
    /// Calldata of a buy: 4-byte selector then 32-byte words, 0x-hex; the amount goes in word
    /// `amount_word`.
    pub calldata_buy: Option<String>,
    /// Calldata of a sell (same layout).
    pub calldata_sell: Option<String>,
    /// Index of the `uint256` word (after the selector) that holds the token amount.
    pub amount_word: usize,
    /// Decimals of the token traded (the amount word is coin × 10^decimals).
    pub decimals: u8,
    /// Gas limit of a hedge transaction (also the gas the cost model charges).
    pub gas_limit: u64,
    /// Priority fee (tip), gwei.
    pub priority_fee_gwei: f64,
    /// Fee cap = base fee × this + tip (the headroom over the base fee before re-signing).
    pub fee_multiplier: u32,
    /// Smallest rung, coin; rungs are lot·2^i.
    pub lot: f64,
    /// Rungs per side.
    pub rungs: u8,
    /// DEX fee (and expected price impact), basis points of the notional.
    pub fee_bps: f64,
    /// ETH price, USD, for gas (`None`: the index when the underlying is ETH; the embedded node
    /// uses 3000).
    pub eth_usd: Option<f64>,
    /// Largest hedge order on chain, coin.
    pub max_order: Option<f64>,
    /// Per-request timeout of every route, ms (also the race deadline).
    pub timeout_ms: u64,
    /// A chain head older than this makes the venue unusable.
    #[serde(serialize_with = "ser_duration")]
    pub head_stale_after: Duration,
    /// How often the signer thread reads the chain.
    #[serde(serialize_with = "ser_duration")]
    pub poll: Duration,
    /// Block time of the embedded mock chain.
    #[serde(serialize_with = "ser_duration")]
    pub sim_block_time: Duration,
    /// Base fee of the embedded mock chain, gwei.
    pub sim_base_fee_gwei: f64,
}

impl Default for EvmSettings {
    fn default() -> Self {
        EvmSettings {
            rpc_url: Vec::new(),
            builder_url: Vec::new(),
            ws_url: None,
            key_env: None,
            keystore: None,
            password_env: None,
            password_file: None,
            flashbots_key_env: None,
            chain_id: None,
            router: None,
            calldata_buy: None,
            calldata_sell: None,
            amount_word: 0,
            decimals: 8,
            gas_limit: 200_000,
            priority_fee_gwei: 1.0,
            fee_multiplier: 2,
            lot: 0.001,
            rungs: 12,
            fee_bps: 30.0,
            eth_usd: None,
            max_order: None,
            timeout_ms: 2_000,
            head_stale_after: Duration::from_secs(36),
            poll: Duration::from_millis(500),
            sim_block_time: Duration::from_secs(12),
            sim_base_fee_gwei: 10.0,
        }
    }
}

impl EvmSettings {
    /// True when the embedded mock node and builders stand in for the chain (no RPC URL).
    pub fn uses_sim(&self) -> bool {
        self.rpc_url.is_empty()
    }
}

/// Hyperliquid's settings as a delta-hedge venue (`[hyperliquid]`, `--hyperliquid-*`): where
/// its book and orders are, whose key signs the actions (named, never given), the ladder of
/// pre-signed IOC orders and what a hedge costs there. With no `url`, `--alt-hedge hyperliquid`
/// uses the embedded keel-sim's Hyperliquid endpoints (a fresh random agent key per run).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HyperliquidSettings {
    /// Use the venue when `--alt-hedge hyperliquid` names it (false: it is left out).
    pub enabled: bool,
    /// REST base, http:// or https:// (`/info`: positions, mids); `None`: the embedded venue.
    pub url: Option<String>,
    /// WebSocket, ws:// or wss:// (`l2Book` and the order `post`s); required with `url`.
    pub ws_url: Option<String>,
    /// Environment variable holding the signing (agent) key, 0x-hex.
    pub key_env: Option<String>,
    /// Keystore v3 file of the signing key (with `password_env` or `password_file`).
    pub keystore: Option<PathBuf>,
    /// Environment variable holding the keystore's password.
    pub password_env: Option<String>,
    /// File holding the keystore's password.
    pub password_file: Option<PathBuf>,
    /// The account whose positions are reconciled, 0x address (default: the signer's).
    pub account: Option<String>,
    /// Taker fee, basis points of the notional.
    pub fee_bps: f64,
    /// Largest hedge order, coin (`None`: the largest rung).
    pub max_order: Option<f64>,
    /// An order without a reply this long is voided with its noop, ms.
    pub timeout_ms: u64,
    /// Orders per second at most (`None`: no limit beyond the ladder's).
    pub rate_limit: Option<u32>,
    /// Smallest rung, coin; rungs are lot·2^i.
    pub lot: f64,
    /// Rungs per side.
    pub rungs: u8,
    /// How far through the mid the pre-signed limit goes, basis points.
    pub slippage_bps: f64,
    /// The signer re-signs the ladder when its nonces are this old.
    #[serde(serialize_with = "ser_duration")]
    pub refresh_after: Duration,
    /// A rung whose nonce is older than this is never sent.
    #[serde(serialize_with = "ser_duration")]
    pub nonce_max_age: Duration,
    /// How often the signer reads the mid.
    #[serde(serialize_with = "ser_duration")]
    pub poll: Duration,
}

impl Default for HyperliquidSettings {
    fn default() -> Self {
        HyperliquidSettings {
            enabled: true,
            url: None,
            ws_url: None,
            key_env: None,
            keystore: None,
            password_env: None,
            password_file: None,
            account: None,
            fee_bps: 4.5,
            max_order: None,
            timeout_ms: 2_000,
            rate_limit: None,
            lot: 0.001,
            rungs: 8,
            slippage_bps: 50.0,
            refresh_after: Duration::from_secs(20),
            nonce_max_age: Duration::from_secs(60),
            poll: Duration::from_millis(500),
        }
    }
}

impl HyperliquidSettings {
    /// True when the embedded keel-sim stands in for Hyperliquid (no URL).
    pub fn uses_sim(&self) -> bool {
        self.url.is_none()
    }
}

/// One venue's settings (`[deribit]`, `--deribit-*`, ...).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VenueConfig {
    /// Connect to this venue (default: when a URL is given).
    pub enabled: bool,
    /// WebSocket URL, `ws://` or `wss://` (filled with the public URL when enabled without one).
    pub url: Option<String>,
    /// Venue symbols to subscribe to.
    pub instruments: Vec<String>,
    /// Core of this venue's feed connection thread (venues may share one).
    pub pin: Option<usize>,
    /// Taker fee, basis points (>= 0).
    pub fee_bps: f64,
    /// Largest hedge order, coin units (> 0).
    pub max_order: Option<f64>,
    /// Order acknowledgement timeout, milliseconds (> 0).
    pub timeout_ms: u64,
    /// Requests per second allowed (> 0).
    pub rate_limit: Option<u32>,
    /// Name of the environment variable holding the API key (never the key).
    pub key_env: Option<String>,
    /// Name of the environment variable holding the API secret (never the secret).
    pub secret_env: Option<String>,
    /// PEM file of extra CA certificates for `wss://`.
    pub ca_file: Option<PathBuf>,
}

impl VenueConfig {
    /// A venue's settings before any file or flag: disabled, its default fee and timeout.
    pub fn defaults(venue: &str) -> VenueConfig {
        VenueConfig {
            enabled: false,
            url: None,
            instruments: Vec::new(),
            pin: None,
            fee_bps: spec(venue).map_or(0.0, |s| s.fee_bps),
            max_order: None,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            rate_limit: None,
            key_env: None,
            secret_env: None,
            ca_file: None,
        }
    }

    /// Both `key_env` and `secret_env` name environment variables that are set and non-empty.
    pub fn keys_present(&self) -> bool {
        self.keys_present_with(&process_env)
    }

    /// [`Self::keys_present`] with `env` looking variables up (tests inject one).
    pub fn keys_present_with(&self, env: &dyn Fn(&str) -> Option<String>) -> bool {
        self.missing_key_with(env).is_none()
    }

    /// Why the keys are not present (`None`: they are), naming variables, never values.
    fn missing_key_with(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        [("key_env", &self.key_env), ("secret_env", &self.secret_env)]
            .into_iter()
            .find_map(|(setting, name)| match name {
                None => Some(format!("{setting} not configured")),
                Some(n) if !is_set(env, n) => Some(format!("{setting} {n} is not set")),
                Some(_) => None,
            })
    }
}

fn spec(venue: &str) -> Option<&'static VenueSpec> {
    SPECS.iter().find(|s| s.name == venue)
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn is_set(env: &dyn Fn(&str) -> Option<String>, name: &str) -> bool {
    env(name).is_some_and(|v| !v.is_empty())
}

impl RunConfig {
    /// The built-in defaults: no venue (so the simulated venue), dry, BTC.
    pub fn defaults() -> RunConfig {
        RunConfig {
            duration: None,
            json: false,
            status_every: DEFAULT_STATUS_EVERY,
            topology: None,
            pin: None,
            wait: None,
            reprice: "f32".to_owned(),
            dev: false,
            live: false,
            positions: None,
            underlying: DEFAULT_UNDERLYING.to_owned(),
            hedge_instrument: None,
            delta_target: 0.0,
            delta_band: DEFAULT_DELTA_BAND,
            gamma_target: 0.0,
            gamma_band: None,
            vega_target: 0.0,
            vega_band: None,
            vega_bucket_band: None,
            liquid: Vec::new(),
            alt_hedges: Vec::new(),
            policy: None,
            halt_file: PathBuf::from("keel.halt"),
            max_hedges_per_min: 30,
            max_position_coin: None,
            max_notional_per_min: None,
            daily_loss_stop: None,
            max_consecutive_rejects: 5,
            stale_after: DEFAULT_STALE_AFTER,
            sim: SimSettings::default(),
            evm: EvmSettings::default(),
            hyperliquid: HyperliquidSettings::default(),
            deribit: VenueConfig::defaults("deribit"),
            binance: VenueConfig::defaults("binance"),
            okx: VenueConfig::defaults("okx"),
            bybit: VenueConfig::defaults("bybit"),
            eth: VenueConfig::defaults("eth"),
        }
    }

    /// All five venues, enabled or not, in the order of [`VENUES`].
    pub fn venues(&self) -> [(&'static str, &VenueConfig); 5] {
        [
            ("deribit", &self.deribit),
            ("binance", &self.binance),
            ("okx", &self.okx),
            ("bybit", &self.bybit),
            ("eth", &self.eth),
        ]
    }

    fn venues_mut(&mut self) -> [(&'static str, &mut VenueConfig); 5] {
        [
            ("deribit", &mut self.deribit),
            ("binance", &mut self.binance),
            ("okx", &mut self.okx),
            ("bybit", &mut self.bybit),
            ("eth", &mut self.eth),
        ]
    }

    /// The enabled venues, in the order deribit, binance, okx, bybit, eth.
    pub fn enabled_venues(&self) -> Vec<(&'static str, &VenueConfig)> {
        self.venues()
            .into_iter()
            .filter(|(_, v)| v.enabled)
            .collect()
    }

    /// True when no venue is enabled: `keel run` starts the embedded simulated venue.
    pub fn uses_sim(&self) -> bool {
        self.venues().iter().all(|(_, v)| !v.enabled)
    }

    /// True unless `--live` was given and every enabled venue has `key_env` and `secret_env`
    /// naming environment variables that are set and non-empty. On the simulated venue (no venue
    /// enabled) no keys are needed, so `--live` alone makes the run send orders to it.
    pub fn dry_run(&self) -> bool {
        self.dry_run_with(&process_env)
    }

    /// [`Self::dry_run`] with `env` looking variables up (tests inject one).
    pub fn dry_run_with(&self, env: &dyn Fn(&str) -> Option<String>) -> bool {
        self.dry_run_reason_with(env).is_some()
    }

    /// Why the run is dry (`None`: it is live), e.g. `--live not given` or
    /// `deribit: key_env DERIBIT_KEY is not set`. Names variables, never their values.
    pub fn dry_run_reason_with(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        if !self.live {
            return Some("live is off: neither --live nor live = true given".to_owned());
        }
        let missing: Vec<String> = self
            .enabled_venues()
            .into_iter()
            .filter_map(|(name, v)| v.missing_key_with(env).map(|m| format!("{name}: {m}")))
            .collect();
        (!missing.is_empty()).then(|| format!("--live given, but {}", missing.join("; ")))
    }

    /// The stage cores of [`Self::pin`] (empty when not given).
    pub fn pins(&self) -> Vec<(Stage, usize)> {
        self.pin
            .as_deref()
            .and_then(|p| parse_pin(p).ok())
            .unwrap_or_default()
    }

    /// The wait strategies of [`Self::wait`] (nothing set when not given).
    pub fn wait_plan(&self) -> WaitPlan {
        self.wait
            .as_deref()
            .and_then(|w| parse_wait(w).ok())
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// Stages, pins and wait strategies
// ---------------------------------------------------------------------------------------------

/// A pinned stage of the pipeline, as named in `--pin` and `--wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Socket reads and venue parsing.
    Feed,
    /// Market state, repricing, risk and policy.
    Pricer,
    /// Hedge execution.
    Exec,
    /// Histograms and status, off the hot path.
    Telemetry,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 4] = [Stage::Feed, Stage::Pricer, Stage::Exec, Stage::Telemetry];

    /// The name used in flags.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Feed => "feed",
            Stage::Pricer => "pricer",
            Stage::Exec => "exec",
            Stage::Telemetry => "telemetry",
        }
    }

    fn parse(s: &str) -> Result<Stage, String> {
        Stage::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| format!("unknown stage {s:?} (feed, pricer, exec, telemetry)"))
    }
}

/// How a tile's thread waits for work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Busy-spin (lowest latency, burns its core).
    Spin,
    /// Spin with a CPU hint, then yield.
    SpinYield,
    /// Park the thread (lowest CPU, highest wake-up latency).
    Park,
}

impl Wait {
    /// Every strategy.
    pub const ALL: [Wait; 3] = [Wait::Spin, Wait::SpinYield, Wait::Park];

    /// The name used in flags.
    pub fn name(self) -> &'static str {
        match self {
            Wait::Spin => "spin",
            Wait::SpinYield => "spin-yield",
            Wait::Park => "park",
        }
    }

    fn parse(s: &str) -> Result<Wait, String> {
        Wait::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| format!("unknown wait strategy {s:?} (spin, spin-yield, park)"))
    }
}

/// `--wait`: one strategy for every tile and/or one per tile (`park,feed=spin`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitPlan {
    /// The strategy of tiles not named.
    pub all: Option<Wait>,
    /// Per-tile strategies.
    pub per_stage: Vec<(Stage, Wait)>,
}

impl WaitPlan {
    /// The strategy of `stage` (`None`: not set, the engine chooses).
    pub fn for_stage(&self, stage: Stage) -> Option<Wait> {
        self.per_stage
            .iter()
            .find(|(s, _)| *s == stage)
            .map(|&(_, w)| w)
            .or(self.all)
    }
}

/// Splits `a,b,c` into trimmed parts; an empty list or part is an error.
fn comma_parts(s: &str, expected: &str) -> Result<Vec<String>, String> {
    let parts: Vec<String> = s.split(',').map(|p| p.trim().to_owned()).collect();
    if parts.iter().any(String::is_empty) {
        return Err(format!("empty entry; expected {expected}"));
    }
    Ok(parts)
}

/// Parses `--pin feed=N,pricer=N,exec=N[,telemetry=N]`: known stages, whole-number cores, no
/// stage or core twice (stages that share a thread are `--topology fused`, not a shared core).
pub fn parse_pin(s: &str) -> Result<Vec<(Stage, usize)>, String> {
    const EXPECTED: &str = "STAGE=CORE,... such as feed=2,pricer=3,exec=4";
    let mut pins: Vec<(Stage, usize)> = Vec::new();
    for part in comma_parts(s, EXPECTED)? {
        let (stage, core) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not STAGE=CORE; expected {EXPECTED}"))?;
        let stage = Stage::parse(stage.trim())?;
        let core = core.trim();
        let core: usize = core
            .parse()
            .map_err(|_| format!("core {core:?} of {} is not a whole number", stage.name()))?;
        if pins.iter().any(|&(s, _)| s == stage) {
            return Err(format!("stage {} given twice", stage.name()));
        }
        if let Some(&(other, _)) = pins.iter().find(|&&(_, c)| c == core) {
            return Err(format!(
                "core {core} given to both {} and {} (to share a thread use --topology fused)",
                other.name(),
                stage.name()
            ));
        }
        pins.push((stage, core));
    }
    Ok(pins)
}

/// Parses `--wait`: `spin|spin-yield|park` for every tile, `feed=spin,pricer=park` per tile, or
/// both (`park,feed=spin`); no tile twice.
pub fn parse_wait(s: &str) -> Result<WaitPlan, String> {
    let mut plan = WaitPlan::default();
    for part in comma_parts(s, "spin|spin-yield|park or STAGE=STRATEGY,...")? {
        match part.split_once('=') {
            None if plan.all.is_some() => {
                return Err("more than one strategy for all tiles".to_owned());
            }
            None => plan.all = Some(Wait::parse(&part)?),
            Some((stage, wait)) => {
                let stage = Stage::parse(stage.trim())?;
                if plan.per_stage.iter().any(|&(s, _)| s == stage) {
                    return Err(format!("stage {} given twice", stage.name()));
                }
                plan.per_stage.push((stage, Wait::parse(wait.trim())?));
            }
        }
    }
    Ok(plan)
}

// ---------------------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------------------

/// Parses `30s`, `500ms`, `2m`, `1h`, `250us`, `100ns`, `1.5s` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const HELP: &str = "not a duration (use 30s, 500ms, 2m, 1h or a number of seconds)";
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit_ns: u128 = match unit.trim() {
        "" | "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "us" | "µs" => 1_000,
        "ns" => 1,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(HELP.to_owned()),
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HELP.to_owned());
    }
    let too_long = || "too long (at most 584 years)".to_owned();
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_long())?
    };
    // Fraction digits beyond the nanosecond are dropped, exactly (no float rounding).
    let mut frac_ns: u128 = 0;
    let mut scale = unit_ns;
    for d in frac.bytes() {
        scale /= 10;
        frac_ns += u128::from(d - b'0') * scale;
    }
    let ns = whole
        .checked_mul(unit_ns)
        .and_then(|n| n.checked_add(frac_ns))
        .filter(|&n| n <= u128::from(u64::MAX))
        .ok_or_else(too_long)?;
    Ok(Duration::from_nanos(ns as u64))
}

/// Formats a duration the way [`parse_duration`] reads it, in the largest exact unit.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_owned();
    }
    const UNITS: [(u128, &str); 6] = [
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    let (size, unit) = UNITS
        .into_iter()
        .find(|(size, _)| ns.is_multiple_of(*size))
        .unwrap_or((1, "ns"));
    format!("{}{unit}", ns / size)
}

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

fn ser_opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

// ---------------------------------------------------------------------------------------------
// Flags
// ---------------------------------------------------------------------------------------------

/// All flags of `keel run`. Every value flag is an `Option` (or a `[true|false]` switch) so that
/// "given on the command line" is known and wins over `--config`. Turn into a [`RunConfig`] with
/// [`resolve`].
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// TOML file of settings (see tools/data/keel.example.toml); flags given here win over it.
    #[arg(long, value_name = "FILE", help_heading = "Run")]
    pub config: Option<PathBuf>,
    /// Stop after this long: 30s, 500ms, 2m, 1h or seconds [default: until Ctrl-C].
    #[arg(long, value_name = "DURATION", help_heading = "Run")]
    pub duration: Option<String>,
    /// Print the final summary as one JSON object on standard output [default: false].
    #[arg(long, value_name = "true|false", num_args = 0..=1, default_missing_value = "true",
          hide_possible_values = true, help_heading = "Run")]
    pub json: Option<bool>,
    /// Interval of the live status line on standard error; 0 turns it off [default: 1s].
    #[arg(long, value_name = "DURATION", help_heading = "Run")]
    pub status_every: Option<String>,
    /// Send real orders; honoured only if every enabled venue's key_env and secret_env are set
    /// (else the run stays dry) [default: false].
    #[arg(long, value_name = "true|false", num_args = 0..=1, default_missing_value = "true",
          hide_possible_values = true, help_heading = "Run")]
    pub live: Option<bool>,

    /// Underlying whose delta is hedged [default: BTC].
    #[arg(long, value_name = "COIN", help_heading = "Hedging")]
    pub underlying: Option<String>,
    /// Instrument to hedge with [default: the underlying's perpetual on the first enabled venue].
    #[arg(long, value_name = "SYMBOL", help_heading = "Hedging")]
    pub hedge_instrument: Option<String>,
    /// Portfolio delta to hold, coin units [default: 0].
    #[arg(
        long,
        value_name = "COINS",
        allow_negative_numbers = true,
        help_heading = "Hedging"
    )]
    pub delta_target: Option<f64>,
    /// Hedge when delta strays this far from the target, coin units, > 0 [default: 1].
    #[arg(
        long,
        value_name = "COINS",
        allow_negative_numbers = true,
        help_heading = "Hedging"
    )]
    pub delta_band: Option<f64>,
    /// Target portfolio gamma, coin units [default: 0].
    #[arg(
        long,
        value_name = "COINS",
        allow_negative_numbers = true,
        help_heading = "Hedging"
    )]
    pub gamma_target: Option<f64>,
    /// Hedge gamma with options when it strays this far from its target, coin units, > 0
    /// [default: gamma not hedged].
    #[arg(
        long,
        value_name = "COINS",
        allow_negative_numbers = true,
        help_heading = "Hedging"
    )]
    pub gamma_band: Option<f64>,
    /// Target portfolio vega (per 1.00 of vol), coin units [default: 0].
    #[arg(
        long,
        value_name = "COINS",
        allow_negative_numbers = true,
        help_heading = "Hedging"
    )]
    pub vega_target: Option<f64>,
    /// Hedge vega with options when it strays this far from its target, coin units, > 0
    /// [default: vega not hedged].
    #[arg(
        long,
        value_name = "COINS",
        allow_negative_numbers = true,
        help_heading = "Hedging"
    )]
    pub vega_band: Option<f64>,
    /// Keep the vega of each expiry bucket within ±COINS (per 1.00 of vol) as well: the options
    /// solve becomes a small linear programme over the liquid set (buying vega in one expiry and
    /// selling it in another when the totals cancel but the buckets do not).
    #[arg(long, value_name = "COINS", help_heading = "Hedging")]
    pub vega_bucket_band: Option<f64>,
    /// Options the gamma/vega hedge may trade, comma-separated [default: the call and the put
    /// nearest the middle strike of each expiry 7 to 120 days out].
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "A,B,...",
        help_heading = "Hedging"
    )]
    pub liquid: Option<Vec<String>>,
    /// Also hedge delta on another venue's linear perpetual, VENUE:SYMBOL (binance:BTCUSDT),
    /// comma-separated: each decision goes to the usable venue with the lowest all-in cost (taker
    /// fee from --<venue>-fee-bps, slippage walking its live book for the size, and a charge for
    /// its measured order latency) [default: the --hedge-instrument only].
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "VENUE:SYMBOL",
        help_heading = "Hedging"
    )]
    pub alt_hedge: Option<Vec<String>>,
    /// Delta triggers joined by '+', any of: band:DELTA, time:INTERVAL (1w, 1d, 1h),
    /// vol-band:BASE[:HALFLIFE], ww:GAMMA (Whalley-Wilmott), zak:GAMMA (Zakamouline),
    /// cost:GAMMA (cost versus risk); around --delta-target [default: the --delta-band band].
    #[arg(long, value_name = "SPEC", help_heading = "Hedging")]
    pub policy: Option<String>,
    /// Kill switch: while this file exists hedging is HALTED and resting orders are cancelled
    /// (`keel halt` writes it) [default: keel.halt].
    #[arg(long, value_name = "FILE", help_heading = "Risk")]
    pub halt_file: Option<PathBuf>,
    /// Most hedge orders over any 60 s, rejected ones included [default: 30].
    #[arg(long, value_name = "N", help_heading = "Risk")]
    pub max_hedges_per_min: Option<u32>,
    /// Largest position in any one instrument, coin [default: no limit].
    #[arg(long, value_name = "COINS", help_heading = "Risk")]
    pub max_position_coin: Option<f64>,
    /// Largest USD notional sent over any 60 s [default: no limit].
    #[arg(long, value_name = "USD", help_heading = "Risk")]
    pub max_notional_per_min: Option<f64>,
    /// Daily loss in USD past which only exposure-reducing orders pass, until 00:00 UTC
    /// [default: no stop].
    #[arg(long, value_name = "USD", help_heading = "Risk")]
    pub daily_loss_stop: Option<f64>,
    /// Venue rejections in a row that halt the engine [default: 5].
    #[arg(long, value_name = "N", help_heading = "Risk")]
    pub max_consecutive_rejects: Option<u32>,
    /// Stop hedging when market data is older than this [default: 2s].
    #[arg(long, value_name = "DURATION", help_heading = "Hedging")]
    pub stale_after: Option<String>,
    /// Starting positions, CSV or JSON with instrument and quantity [default: a sample book].
    #[arg(long, value_name = "FILE", help_heading = "Hedging")]
    pub positions: Option<PathBuf>,

    /// dedicated (a thread per stage), fused (feed and pricer on one thread) or single (feed,
    /// pricer and exec on one thread) [default: from the cores available].
    #[arg(long, value_name = "dedicated|fused|single", help_heading = "Threads")]
    pub topology: Option<String>,
    /// Cores of the stages, e.g. feed=2,pricer=3,exec=4 (stages: feed, pricer, exec, telemetry).
    #[arg(long, value_name = "STAGE=CORE,...", help_heading = "Threads")]
    pub pin: Option<String>,
    /// How threads wait: spin, spin-yield or park, for all or per stage (park,feed=spin).
    #[arg(long, value_name = "STRATEGY", help_heading = "Threads")]
    pub wait: Option<String>,
    /// How each tick reprices the book: f32 (the hedge Greeks — price, delta, gamma, vega — in
    /// f32x16 summed in f64; the other Greeks from the f64 pass at each time-to-expiry refresh)
    /// or f64 (all eight Greeks in f64 on every tick) [default: f32].
    #[arg(long, value_name = "f32|f64", help_heading = "Threads")]
    pub reprice: Option<String>,
    /// Development run: failing to pin a thread is a warning, not an error [default: false].
    #[arg(long, value_name = "true|false", num_args = 0..=1, default_missing_value = "true",
          hide_possible_values = true, help_heading = "Threads")]
    pub dev: Option<bool>,

    /// The embedded simulated venue (`--sim-*`).
    #[command(flatten)]
    pub sim: SimFlags,
    /// The on-chain hedge venue (`--evm-*`).
    #[command(flatten)]
    pub evm: EvmFlags,
    /// Hyperliquid as a hedge venue (`--hyperliquid-*`).
    #[command(flatten)]
    pub hyperliquid: HyperliquidFlags,
    /// `--deribit-*`.
    #[command(flatten)]
    pub deribit: DeribitFlags,
    /// `--binance-*`.
    #[command(flatten)]
    pub binance: BinanceFlags,
    /// `--okx-*`.
    #[command(flatten)]
    pub okx: OkxFlags,
    /// `--bybit-*`.
    #[command(flatten)]
    pub bybit: BybitFlags,
    /// `--eth-*`.
    #[command(flatten)]
    pub eth: EthFlags,
}

/// The `--sim-*` flags: the simulated venue `keel run` starts when no venue is enabled.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Simulated venue (used when no venue is enabled)")]
pub struct SimFlags {
    /// Seed of the simulated market and its faults [default: 1].
    #[arg(long = "sim-seed", value_name = "N")]
    pub seed: Option<u64>,
    /// Messages per second per connection, 0 = unlimited [default: 20000].
    #[arg(long = "sim-rate", value_name = "MSGS_PER_S")]
    pub rate: Option<u64>,
    /// Listed options, > 0 [default: 1000].
    #[arg(long = "sim-options", value_name = "N")]
    pub options: Option<usize>,
    /// Fault: close each connection after N data messages [default: never].
    #[arg(long = "sim-drop-every-msgs", value_name = "N")]
    pub drop_every_msgs: Option<u64>,
    /// Fault: fraction 0..1 of data messages sent malformed [default: 0].
    #[arg(
        long = "sim-malformed-rate",
        value_name = "FRACTION",
        allow_negative_numbers = true
    )]
    pub malformed_rate: Option<f64>,
    /// Fault: go silent this long after each connection opened [default: never].
    #[arg(long = "sim-silent-after", value_name = "DURATION")]
    pub silent_after: Option<String>,
    /// Fault: hold every outgoing message MS milliseconds [default: 0].
    #[arg(long = "sim-delay-ms", value_name = "MS")]
    pub delay_ms: Option<u64>,
}

/// The `--evm-*` flags: the on-chain delta-hedge venue (`--alt-hedge evm`). See [`EvmSettings`].
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "On-chain hedge venue (--alt-hedge evm)")]
pub struct EvmFlags {
    /// JSON-RPC endpoint (eth_sendRawTransaction), http(s)://, repeatable; the first also gives
    /// the nonce and the head [default: keel-sim's mock node, started in-process].
    #[arg(long = "evm-rpc-url", visible_alias = "rpc-url", value_name = "URL")]
    pub rpc_url: Option<Vec<String>>,
    /// Block builder (eth_sendBundle with X-Flashbots-Signature), http(s)://, repeatable
    /// [default: the mock's two builders with the mock node; none with --evm-rpc-url].
    #[arg(
        long = "evm-builder-url",
        visible_alias = "builder-url",
        value_name = "URL"
    )]
    pub builder_url: Option<Vec<String>>,
    /// newHeads WebSocket of a node, ws(s):// [default: the mock node's; required with --evm-rpc-url].
    #[arg(long = "evm-ws-url", value_name = "URL")]
    pub ws_url: Option<String>,
    /// NAME of the environment variable holding the sender's private key (never the key).
    #[arg(long = "evm-key-env", value_name = "NAME")]
    pub key_env: Option<String>,
    /// Keystore v3 file of the sender's key (with --evm-password-env or --evm-password-file).
    #[arg(long = "evm-keystore", value_name = "FILE")]
    pub keystore: Option<PathBuf>,
    /// NAME of the environment variable holding the keystore's password.
    #[arg(long = "evm-password-env", value_name = "NAME")]
    pub password_env: Option<String>,
    /// File holding the keystore's password (one trailing line break ignored).
    #[arg(long = "evm-password-file", value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// NAME of the environment variable holding the Flashbots reputation key (a separate key;
    /// needed with builders).
    #[arg(long = "evm-flashbots-key-env", value_name = "NAME")]
    pub flashbots_key_env: Option<String>,
    /// EIP-155 chain id, checked against the node's eth_chainId [default: 1 on the mock node;
    /// required with --evm-rpc-url].
    #[arg(long = "evm-chain-id", value_name = "N")]
    pub chain_id: Option<u64>,
    /// The contract called, 0x address [default: a mock router on the mock node].
    #[arg(long = "evm-router", value_name = "ADDRESS")]
    pub router: Option<String>,
    /// Calldata of a buy, 0x-hex: 4-byte selector then 32-byte words [default: mock on the mock node].
    #[arg(long = "evm-calldata-buy", value_name = "HEX")]
    pub calldata_buy: Option<String>,
    /// Calldata of a sell, same layout.
    #[arg(long = "evm-calldata-sell", value_name = "HEX")]
    pub calldata_sell: Option<String>,
    /// Index of the uint256 word after the selector that holds the token amount [default: 0].
    #[arg(long = "evm-amount-word", value_name = "K")]
    pub amount_word: Option<usize>,
    /// Decimals of the token traded: the amount word is coin × 10^decimals [default: 8].
    #[arg(long = "evm-decimals", value_name = "N")]
    pub decimals: Option<u8>,
    /// Gas limit of a hedge transaction, also the gas the cost charges [default: 200000].
    #[arg(long = "evm-gas-limit", value_name = "GAS")]
    pub gas_limit: Option<u64>,
    /// Priority fee (tip), gwei [default: 1].
    #[arg(long = "evm-priority-fee-gwei", value_name = "GWEI")]
    pub priority_fee_gwei: Option<f64>,
    /// Max fee headroom: fee cap = base fee × M + tip, re-signed when the base fee passes it
    /// [default: 2].
    #[arg(long = "evm-fee-multiplier", value_name = "M")]
    pub fee_multiplier: Option<u32>,
    /// Smallest ladder rung, coin; rungs are lot·2^i [default: 0.001].
    #[arg(long = "evm-lot", value_name = "COINS")]
    pub lot: Option<f64>,
    /// Ladder rungs per side, 1..=24 [default: 12].
    #[arg(long = "evm-rungs", value_name = "N")]
    pub rungs: Option<u8>,
    /// DEX fee plus expected price impact, basis points of the notional, >= 0 [default: 30].
    #[arg(
        long = "evm-fee-bps",
        value_name = "BPS",
        allow_negative_numbers = true
    )]
    pub fee_bps: Option<f64>,
    /// ETH price in USD for gas [default: the index when the underlying is ETH; 3000 on the
    /// mock node; required otherwise].
    #[arg(
        long = "evm-eth-usd",
        value_name = "USD",
        allow_negative_numbers = true
    )]
    pub eth_usd: Option<f64>,
    /// Largest hedge order on chain, coin [default: no limit but the largest rung].
    #[arg(
        long = "evm-max-order",
        value_name = "COINS",
        allow_negative_numbers = true
    )]
    pub max_order: Option<f64>,
    /// Per-request timeout of every route, ms, also the race deadline [default: 2000].
    #[arg(long = "evm-timeout-ms", value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// A chain head older than this makes the venue unusable [default: 36s].
    #[arg(long = "evm-head-stale-after", value_name = "DURATION")]
    pub head_stale_after: Option<String>,
    /// How often the signer thread reads the chain (nonce, head) [default: 500ms].
    #[arg(long = "evm-poll", value_name = "DURATION")]
    pub poll: Option<String>,
    /// Block time of the embedded mock chain (keep --evm-poll well below it: bundles target the next block) [default: 12s].
    #[arg(long = "evm-sim-block-time", value_name = "DURATION")]
    pub sim_block_time: Option<String>,
    /// Base fee of the embedded mock chain, gwei [default: 10].
    #[arg(long = "evm-sim-base-fee-gwei", value_name = "GWEI")]
    pub sim_base_fee_gwei: Option<f64>,
}

/// The `--hyperliquid-*` flags: Hyperliquid as a delta-hedge venue (`--alt-hedge
/// hyperliquid`). See [`HyperliquidSettings`].
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Hyperliquid hedge venue (--alt-hedge hyperliquid)")]
pub struct HyperliquidFlags {
    /// Use Hyperliquid when --alt-hedge names it [default: true].
    #[arg(id = "hyperliquid_enabled", long = "hyperliquid-enabled", value_name = "true|false", num_args = 0..=1,
          default_missing_value = "true", hide_possible_values = true)]
    pub enabled: Option<bool>,
    /// REST base, http(s):// (/info: positions and mids), e.g. https://api.hyperliquid.xyz
    /// [default: the embedded keel-sim's].
    #[arg(id = "hyperliquid_url", long = "hyperliquid-url", value_name = "URL")]
    pub url: Option<String>,
    /// WebSocket, ws(s):// (l2Book and order posts), e.g. wss://api.hyperliquid.xyz/ws
    /// [default: the embedded keel-sim's; required with --hyperliquid-url].
    #[arg(
        id = "hyperliquid_ws_url",
        long = "hyperliquid-ws-url",
        value_name = "URL"
    )]
    pub ws_url: Option<String>,
    /// NAME of the environment variable holding the signing (agent) key (never the key).
    #[arg(
        id = "hyperliquid_key_env",
        long = "hyperliquid-key-env",
        value_name = "NAME"
    )]
    pub key_env: Option<String>,
    /// Keystore v3 file of the signing key (with --hyperliquid-password-env or -file).
    #[arg(
        id = "hyperliquid_keystore",
        long = "hyperliquid-keystore",
        value_name = "FILE"
    )]
    pub keystore: Option<PathBuf>,
    /// NAME of the environment variable holding the keystore's password.
    #[arg(
        id = "hyperliquid_password_env",
        long = "hyperliquid-password-env",
        value_name = "NAME"
    )]
    pub password_env: Option<String>,
    /// File holding the keystore's password (one trailing line break ignored).
    #[arg(
        id = "hyperliquid_password_file",
        long = "hyperliquid-password-file",
        value_name = "FILE"
    )]
    pub password_file: Option<PathBuf>,
    /// The account whose positions are reconciled, 0x address [default: the signer's].
    #[arg(
        id = "hyperliquid_account",
        long = "hyperliquid-account",
        value_name = "ADDRESS"
    )]
    pub account: Option<String>,
    /// Taker fee, basis points [default: 4.5].
    #[arg(
        id = "hyperliquid_fee_bps",
        long = "hyperliquid-fee-bps",
        value_name = "BPS"
    )]
    pub fee_bps: Option<f64>,
    /// Largest hedge order, coin [default: the largest rung].
    #[arg(
        id = "hyperliquid_max_order",
        long = "hyperliquid-max-order",
        value_name = "COINS"
    )]
    pub max_order: Option<f64>,
    /// An order without a reply this long is voided with its noop, ms [default: 2000].
    #[arg(
        id = "hyperliquid_timeout_ms",
        long = "hyperliquid-timeout-ms",
        value_name = "MS"
    )]
    pub timeout_ms: Option<u64>,
    /// Orders per second at most [default: no limit].
    #[arg(
        id = "hyperliquid_rate_limit",
        long = "hyperliquid-rate-limit",
        value_name = "PER_S"
    )]
    pub rate_limit: Option<u32>,
    /// Smallest rung, coin; rungs are lot·2^i [default: 0.001].
    #[arg(id = "hyperliquid_lot", long = "hyperliquid-lot", value_name = "COINS")]
    pub lot: Option<f64>,
    /// Rungs per side, 1..=24 [default: 8].
    #[arg(id = "hyperliquid_rungs", long = "hyperliquid-rungs", value_name = "N")]
    pub rungs: Option<u8>,
    /// How far through the mid the pre-signed limit goes, basis points [default: 50].
    #[arg(
        id = "hyperliquid_slippage_bps",
        long = "hyperliquid-slippage-bps",
        value_name = "BPS"
    )]
    pub slippage_bps: Option<f64>,
    /// Re-sign the ladder when its nonces are this old [default: 20s].
    #[arg(
        id = "hyperliquid_refresh_after",
        long = "hyperliquid-refresh-after",
        value_name = "DURATION"
    )]
    pub refresh_after: Option<String>,
    /// Never send a rung whose nonce is older than this [default: 60s].
    #[arg(
        id = "hyperliquid_nonce_max_age",
        long = "hyperliquid-nonce-max-age",
        value_name = "DURATION"
    )]
    pub nonce_max_age: Option<String>,
    /// How often the signer reads the mid [default: 500ms].
    #[arg(
        id = "hyperliquid_poll",
        long = "hyperliquid-poll",
        value_name = "DURATION"
    )]
    pub poll: Option<String>,
}

/// One venue's flags, whichever venue: what the per-venue flag structs hold, by setting.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VenueFlags {
    /// `--<venue>-enabled`.
    pub enabled: Option<bool>,
    /// `--<venue>-url`.
    pub url: Option<String>,
    /// `--<venue>-instruments`.
    pub instruments: Option<Vec<String>>,
    /// `--<venue>-pin`.
    pub pin: Option<usize>,
    /// `--<venue>-fee-bps`.
    pub fee_bps: Option<f64>,
    /// `--<venue>-max-order`.
    pub max_order: Option<f64>,
    /// `--<venue>-timeout-ms`.
    pub timeout_ms: Option<u64>,
    /// `--<venue>-rate-limit`.
    pub rate_limit: Option<u32>,
    /// `--<venue>-key-env`.
    pub key_env: Option<String>,
    /// `--<venue>-secret-env`.
    pub secret_env: Option<String>,
    /// `--<venue>-ca-file`.
    pub ca_file: Option<PathBuf>,
}

/// One-line help of `--<venue>-<setting>`; `{V}` is the venue's title, `{D}` its default fee.
fn venue_help(venue: &str, title: &str, text: &str) -> String {
    let fee = spec(venue).map_or(0.0, |s| s.fee_bps);
    let url = spec(venue).and_then(|s| s.public_url).map_or_else(
        || format!("needs --{venue}-url"),
        |u| format!("connects to {u}"),
    );
    text.replace("{V}", title)
        .replace("{v}", venue)
        .replace("{D}", &fee.to_string())
        .replace("{U}", &url)
        .replace("{T}", &DEFAULT_TIMEOUT_MS.to_string())
}

/// Declares the flag struct of each venue: the same settings, each named `--<venue>-<setting>`
/// (clap needs distinct ids and long names per venue, hence one struct per venue), and its
/// conversion to [`VenueFlags`].
macro_rules! venue_flag_structs {
    ($($ty:ident $venue:literal $title:literal;)*) => {$(
        #[doc = concat!("The `--", $venue, "-*` flags of `keel run` (", $title, ").")]
        #[derive(clap::Args, Debug, Clone, Default)]
        #[command(next_help_heading = $title)]
        pub struct $ty {
            /// See [`VenueFlags::enabled`].
            #[arg(id = concat!($venue, "-enabled"), long = concat!($venue, "-enabled"),
                  value_name = "true|false", num_args = 0..=1, default_missing_value = "true",
                  hide_possible_values = true, help = venue_help($venue, $title,
                  "Connect to {V}; alone, {U} [default: true when --{v}-url is given]"))]
            pub enabled: Option<bool>,
            /// See [`VenueFlags::url`].
            #[arg(id = concat!($venue, "-url"), long = concat!($venue, "-url"), value_name = "URL",
                  help = venue_help($venue, $title, "{V} WebSocket URL, ws:// or wss:// (enables {V})"))]
            pub url: Option<String>,
            /// See [`VenueFlags::instruments`].
            #[arg(id = concat!($venue, "-instruments"), long = concat!($venue, "-instruments"),
                  value_name = "A,B,...", value_delimiter = ',',
                  help = "Instruments to subscribe to, comma-separated venue symbols")]
            pub instruments: Option<Vec<String>>,
            /// See [`VenueFlags::pin`].
            #[arg(id = concat!($venue, "-pin"), long = concat!($venue, "-pin"), value_name = "CORE",
                  help = "Core of this venue's feed connection thread (venues may share a core)")]
            pub pin: Option<usize>,
            /// See [`VenueFlags::fee_bps`].
            #[arg(id = concat!($venue, "-fee-bps"), long = concat!($venue, "-fee-bps"),
                  value_name = "BPS", allow_negative_numbers = true,
                  help = venue_help($venue, $title, "Taker fee, basis points, >= 0 [default: {D}]"))]
            pub fee_bps: Option<f64>,
            /// See [`VenueFlags::max_order`].
            #[arg(id = concat!($venue, "-max-order"), long = concat!($venue, "-max-order"),
                  value_name = "COINS", allow_negative_numbers = true,
                  help = "Largest hedge order, coin units, > 0 [default: no limit]")]
            pub max_order: Option<f64>,
            /// See [`VenueFlags::timeout_ms`].
            #[arg(id = concat!($venue, "-timeout-ms"), long = concat!($venue, "-timeout-ms"),
                  value_name = "MS",
                  help = venue_help($venue, $title, "Order acknowledgement timeout, ms, > 0 [default: {T}]"))]
            pub timeout_ms: Option<u64>,
            /// See [`VenueFlags::rate_limit`].
            #[arg(id = concat!($venue, "-rate-limit"), long = concat!($venue, "-rate-limit"),
                  value_name = "PER_S", help = "Requests per second allowed, > 0 [default: no limit]")]
            pub rate_limit: Option<u32>,
            /// See [`VenueFlags::key_env`].
            #[arg(id = concat!($venue, "-key-env"), long = concat!($venue, "-key-env"),
                  value_name = "NAME",
                  help = "NAME of the environment variable holding the API key (never the key)")]
            pub key_env: Option<String>,
            /// See [`VenueFlags::secret_env`].
            #[arg(id = concat!($venue, "-secret-env"), long = concat!($venue, "-secret-env"),
                  value_name = "NAME",
                  help = "NAME of the environment variable holding the API secret (never the secret)")]
            pub secret_env: Option<String>,
            /// See [`VenueFlags::ca_file`].
            #[arg(id = concat!($venue, "-ca-file"), long = concat!($venue, "-ca-file"),
                  value_name = "PATH", help = "PEM file of extra CA certificates to trust for wss://")]
            pub ca_file: Option<PathBuf>,
        }

        impl From<&$ty> for VenueFlags {
            fn from(f: &$ty) -> VenueFlags {
                VenueFlags {
                    enabled: f.enabled,
                    url: f.url.clone(),
                    instruments: f.instruments.clone(),
                    pin: f.pin,
                    fee_bps: f.fee_bps,
                    max_order: f.max_order,
                    timeout_ms: f.timeout_ms,
                    rate_limit: f.rate_limit,
                    key_env: f.key_env.clone(),
                    secret_env: f.secret_env.clone(),
                    ca_file: f.ca_file.clone(),
                }
            }
        }
    )*};
}

venue_flag_structs! {
    DeribitFlags "deribit" "Deribit";
    BinanceFlags "binance" "Binance";
    OkxFlags "okx" "OKX";
    BybitFlags "bybit" "Bybit";
    EthFlags "eth" "Ethereum node and builders";
}

impl RunArgs {
    /// The per-venue flags, in the order of [`VENUES`].
    pub fn venue_flags(&self) -> [(&'static str, VenueFlags); 5] {
        [
            ("deribit", (&self.deribit).into()),
            ("binance", (&self.binance).into()),
            ("okx", (&self.okx).into()),
            ("bybit", (&self.bybit).into()),
            ("eth", (&self.eth).into()),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// The file
// ---------------------------------------------------------------------------------------------

/// `keel.toml` as written: every setting optional, with its place in the file.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunFile {
    duration: Option<Spanned<String>>,
    json: Option<Spanned<bool>>,
    status_every: Option<Spanned<String>>,
    live: Option<Spanned<bool>>,
    underlying: Option<Spanned<String>>,
    hedge_instrument: Option<Spanned<String>>,
    delta_target: Option<Spanned<f64>>,
    delta_band: Option<Spanned<f64>>,
    gamma_target: Option<Spanned<f64>>,
    gamma_band: Option<Spanned<f64>>,
    vega_target: Option<Spanned<f64>>,
    vega_band: Option<Spanned<f64>>,
    vega_bucket_band: Option<Spanned<f64>>,
    liquid: Option<Spanned<Vec<String>>>,
    alt_hedge: Option<Spanned<Vec<String>>>,
    policy: Option<Spanned<String>>,
    halt_file: Option<Spanned<PathBuf>>,
    max_hedges_per_min: Option<Spanned<u32>>,
    max_position_coin: Option<Spanned<f64>>,
    max_notional_per_min: Option<Spanned<f64>>,
    daily_loss_stop: Option<Spanned<f64>>,
    max_consecutive_rejects: Option<Spanned<u32>>,
    stale_after: Option<Spanned<String>>,
    positions: Option<Spanned<PathBuf>>,
    topology: Option<Spanned<String>>,
    pin: Option<Spanned<String>>,
    wait: Option<Spanned<String>>,
    reprice: Option<Spanned<String>>,
    dev: Option<Spanned<bool>>,
    #[serde(default)]
    sim: SimFile,
    #[serde(default)]
    evm: EvmFile,
    #[serde(default)]
    hyperliquid: HyperliquidFile,
    #[serde(default)]
    deribit: VenueFile,
    #[serde(default)]
    binance: VenueFile,
    #[serde(default)]
    okx: VenueFile,
    #[serde(default)]
    bybit: VenueFile,
    #[serde(default)]
    eth: VenueFile,
}

/// `[sim]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SimFile {
    seed: Option<Spanned<u64>>,
    rate: Option<Spanned<u64>>,
    options: Option<Spanned<usize>>,
    drop_every_msgs: Option<Spanned<u64>>,
    malformed_rate: Option<Spanned<f64>>,
    silent_after: Option<Spanned<String>>,
    delay_ms: Option<Spanned<u64>>,
}

/// `[evm]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EvmFile {
    rpc_url: Option<Spanned<Vec<String>>>,
    builder_url: Option<Spanned<Vec<String>>>,
    ws_url: Option<Spanned<String>>,
    key_env: Option<Spanned<String>>,
    keystore: Option<Spanned<PathBuf>>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<PathBuf>>,
    flashbots_key_env: Option<Spanned<String>>,
    chain_id: Option<Spanned<u64>>,
    router: Option<Spanned<String>>,
    calldata_buy: Option<Spanned<String>>,
    calldata_sell: Option<Spanned<String>>,
    amount_word: Option<Spanned<usize>>,
    decimals: Option<Spanned<u8>>,
    gas_limit: Option<Spanned<u64>>,
    priority_fee_gwei: Option<Spanned<f64>>,
    fee_multiplier: Option<Spanned<u32>>,
    lot: Option<Spanned<f64>>,
    rungs: Option<Spanned<u8>>,
    fee_bps: Option<Spanned<f64>>,
    eth_usd: Option<Spanned<f64>>,
    max_order: Option<Spanned<f64>>,
    timeout_ms: Option<Spanned<u64>>,
    head_stale_after: Option<Spanned<String>>,
    poll: Option<Spanned<String>>,
    sim_block_time: Option<Spanned<String>>,
    sim_base_fee_gwei: Option<Spanned<f64>>,
}

/// `[hyperliquid]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HyperliquidFile {
    enabled: Option<Spanned<bool>>,
    url: Option<Spanned<String>>,
    ws_url: Option<Spanned<String>>,
    key_env: Option<Spanned<String>>,
    keystore: Option<Spanned<PathBuf>>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<PathBuf>>,
    account: Option<Spanned<String>>,
    fee_bps: Option<Spanned<f64>>,
    max_order: Option<Spanned<f64>>,
    timeout_ms: Option<Spanned<u64>>,
    rate_limit: Option<Spanned<u32>>,
    lot: Option<Spanned<f64>>,
    rungs: Option<Spanned<u8>>,
    slippage_bps: Option<Spanned<f64>>,
    refresh_after: Option<Spanned<String>>,
    nonce_max_age: Option<Spanned<String>>,
    poll: Option<Spanned<String>>,
}

/// `[deribit]`, `[binance]`, ...
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct VenueFile {
    enabled: Option<Spanned<bool>>,
    url: Option<Spanned<String>>,
    instruments: Option<Spanned<Vec<String>>>,
    pin: Option<Spanned<usize>>,
    fee_bps: Option<Spanned<f64>>,
    max_order: Option<Spanned<f64>>,
    timeout_ms: Option<Spanned<u64>>,
    rate_limit: Option<Spanned<u32>>,
    key_env: Option<Spanned<String>>,
    secret_env: Option<Spanned<String>>,
    ca_file: Option<Spanned<PathBuf>>,
}

impl RunFile {
    fn venue(&self, venue: &str) -> &VenueFile {
        match venue {
            "deribit" => &self.deribit,
            "binance" => &self.binance,
            "okx" => &self.okx,
            "bybit" => &self.bybit,
            _ => &self.eth,
        }
    }
}

/// A loaded `keel.toml`: where it is, its text (for line numbers) and its settings.
struct ConfigFile {
    path: PathBuf,
    text: String,
    doc: RunFile,
}

/// Keys whose value would be a secret itself: refused with a pointer to key_env/secret_env.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    matches!(
        k.as_str(),
        "key" | "secret" | "password" | "passphrase" | "token" | "mnemonic" | "seed_phrase"
    ) || ["_key", "_secret", "_password", "_passphrase", "_token"]
        .iter()
        .any(|suffix| k.ends_with(suffix))
}

/// 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl ConfigFile {
    fn load(path: &Path) -> Result<ConfigFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--config {}: cannot read the file", path.display()))?;
        let mut file = ConfigFile {
            path: path.to_owned(),
            text,
            doc: RunFile::default(),
        };
        file.refuse_secret_values()?;
        file.doc = toml::from_str(&file.text).map_err(|e| file.toml_error(&e))?;
        Ok(file)
    }

    /// `PATH:LINE: ` for a place in the file.
    fn at(&self, span: Range<usize>) -> String {
        format!(
            "{}:{}:",
            self.path.display(),
            line_of(&self.text, span.start)
        )
    }

    /// One line from a toml error: file, line, the key path and toml's message.
    fn toml_error(&self, e: &toml::de::Error) -> anyhow::Error {
        let place = e
            .span()
            .map_or_else(|| format!("{}:", self.path.display()), |span| self.at(span));
        // Without the input, toml's Display ends with "in `table.key`": the key path.
        let mut bare = e.clone();
        bare.set_input(None);
        let bare = bare.to_string();
        let keys = bare
            .lines()
            .find_map(|l| l.strip_prefix("in `")?.strip_suffix('`'))
            .map(|k| format!(" {k}:"))
            .unwrap_or_default();
        let message: Vec<&str> = e.message().lines().map(str::trim).collect();
        let message = message.join("; ").replace("unknown field", "unknown key");
        anyhow!("{place}{keys} {message}")
    }

    /// A key such as `key = "..."` or `api_secret = "..."`, anywhere in the file, is an error
    /// that names the key and never echoes the value.
    fn refuse_secret_values(&self) -> Result<()> {
        let doc = toml::de::DeTable::parse(&self.text).map_err(|e| self.toml_error(&e))?;
        self.scan_for_secrets(doc.get_ref(), "")
    }

    fn scan_for_secrets(&self, table: &toml::de::DeTable<'_>, prefix: &str) -> Result<()> {
        for (key, value) in table.iter() {
            let name = format!("{prefix}{}", key.get_ref());
            if is_secret_key(key.get_ref()) {
                bail!(
                    "{} {name}: a secret is never read from a file or a flag; put the secret in \
                     an environment variable and name it with key_env/secret_env",
                    self.at(key.span())
                );
            }
            if let toml::de::DeValue::Table(inner) = value.get_ref() {
                self.scan_for_secrets(inner, &format!("{name}."))?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Resolution: defaults < file < flags, each value checked where it came from
// ---------------------------------------------------------------------------------------------

/// A setting's value and where it came from, for error messages.
struct Given<T> {
    value: T,
    /// `--deribit-fee-bps` or `keel.toml:7: deribit.fee_bps =`.
    from: String,
    /// The file's folder when the value came from the file (relative paths start there).
    dir: Option<PathBuf>,
}

/// How a value is written back in an error message.
trait Shown {
    fn shown(&self) -> String;
}

macro_rules! shown_by_display {
    ($($t:ty),*) => {$(impl Shown for $t { fn shown(&self) -> String { self.to_string() } })*};
}
shown_by_display!(f64, u64, u32, usize, u8, bool, String);

impl Shown for PathBuf {
    fn shown(&self) -> String {
        self.display().to_string()
    }
}

impl Shown for Vec<String> {
    fn shown(&self) -> String {
        self.join(",")
    }
}

impl<T: Shown> Given<T> {
    /// `--deribit-fee-bps -1: must be >= 0` or `keel.toml:7: deribit.fee_bps = -1: must be >= 0`.
    fn error(&self, why: impl fmt::Display) -> anyhow::Error {
        anyhow!("{} {}: {why}", self.from, self.value.shown())
    }

    /// The value if `ok` holds, else [`Self::error`] with `why`.
    fn check(self, ok: impl Fn(&T) -> bool, why: &str) -> Result<T> {
        if ok(&self.value) {
            Ok(self.value)
        } else {
            Err(self.error(why))
        }
    }

    /// The value mapped by `parse`, whose error explains what is wrong with it.
    fn parse<U>(&self, parse: impl Fn(&T) -> Result<U, String>) -> Result<U> {
        parse(&self.value).map_err(|why| self.error(why))
    }
}

/// Picks each setting from the flags, else the file, remembering where it came from.
struct Layers<'a> {
    file: Option<&'a ConfigFile>,
}

impl Layers<'_> {
    /// The flag's value if given, else the file's, else `None`.
    fn pick<T: Clone>(
        &self,
        flag: &Option<T>,
        flag_name: &str,
        in_file: impl Fn(&RunFile) -> &Option<Spanned<T>>,
        key: &str,
    ) -> Option<Given<T>> {
        if let Some(v) = flag {
            return Some(Given {
                value: v.clone(),
                from: flag_name.to_owned(),
                dir: None,
            });
        }
        let file = self.file?;
        let v = in_file(&file.doc).as_ref()?;
        Some(Given {
            value: v.get_ref().clone(),
            from: format!("{} {key} =", file.at(v.span())),
            dir: file.path.parent().map(Path::to_owned),
        })
    }
}

impl Given<PathBuf> {
    /// The path, relative to the file's folder when it came from the file; it must exist.
    fn existing_path(self) -> Result<PathBuf> {
        let path = match &self.dir {
            Some(dir) if self.value.is_relative() => dir.join(&self.value),
            _ => self.value.clone(),
        };
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(path),
            Ok(_) => Err(self.error("not a file")),
            Err(e) => Err(self.error(format_args!("cannot read: {e}"))),
        }
    }
}

fn finite(v: &f64) -> bool {
    v.is_finite()
}

fn duration_checked(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be > 0".to_owned()),
        d => Ok(d),
    }
}

/// An environment variable's NAME: `A-Z`, `0-9`, `_`, not starting with a digit. Anything else
/// is most likely the key itself, so the error never repeats it.
fn check_env_name(g: Given<String>) -> Result<String> {
    let v = &g.value;
    let ok = !v.is_empty()
        && !v.starts_with(|c: char| c.is_ascii_digit())
        && v.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(g.value)
    } else {
        bail!(
            "{} (value not shown): must be the NAME of an environment variable (A-Z, 0-9, _), \
             not the key or secret itself",
            g.from
        )
    }
}

/// A `ws://` or `wss://` URL with a host and a valid port.
fn check_ws_url(url: &str) -> Result<String, String> {
    let parsed = Url::parse(url).map_err(|e| e.reason.to_owned())?;
    if !parsed.scheme().is_websocket() {
        return Err("scheme must be ws:// or wss://".to_owned());
    }
    Ok(url.to_owned())
}

/// Instrument symbols: none empty, no spaces, none twice.
fn check_alt_hedges(list: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(list.len());
    for item in list {
        if item.eq_ignore_ascii_case("evm") {
            if out.iter().any(|(v, _)| v == "evm") {
                return Err(format!("{item:?} given twice"));
            }
            out.push(("evm".to_owned(), String::new()));
            continue;
        }
        // Hyperliquid: `hyperliquid` (the underlying's coin) or `hyperliquid:COIN`.
        let lower = item.to_ascii_lowercase();
        if lower == "hyperliquid" || lower.starts_with("hyperliquid:") {
            let coin = item.split_once(':').map(|(_, c)| c).unwrap_or("");
            if item.contains(':')
                && (coin.is_empty() || !coin.chars().all(|c| c.is_ascii_alphanumeric()))
            {
                return Err(format!("{item:?}: bad coin {coin:?}"));
            }
            if out.iter().any(|(v, _)| v == "hyperliquid") {
                return Err(format!("{item:?}: hyperliquid given twice"));
            }
            out.push(("hyperliquid".to_owned(), coin.to_ascii_uppercase()));
            continue;
        }
        let Some((venue, symbol)) = item.split_once(':') else {
            return Err(format!(
                "{item:?} is not VENUE:SYMBOL (e.g. binance:BTCUSDT), evm or hyperliquid[:COIN]"
            ));
        };
        let venue = venue.to_ascii_lowercase();
        if venue != "binance" {
            return Err(format!(
                "{item:?}: only binance (USDⓈ-M linear perpetuals), evm (on chain) or hyperliquid \
                 can be an alternative hedge venue"
            ));
        }
        if symbol.is_empty() || symbol.chars().any(|c| !c.is_ascii_alphanumeric()) {
            return Err(format!("{item:?}: bad symbol {symbol:?}"));
        }
        let symbol = symbol.to_ascii_uppercase();
        if out.iter().any(|(v, s)| *v == venue && *s == symbol) {
            return Err(format!("{item:?} given twice"));
        }
        out.push((venue, symbol));
    }
    Ok(out)
}

fn check_instruments(list: &[String]) -> Result<Vec<String>, String> {
    let mut seen = BTreeSet::new();
    for name in list {
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(format!("bad instrument name {name:?}"));
        }
        if !seen.insert(name) {
            return Err(format!("instrument {name} given twice"));
        }
    }
    Ok(list.to_vec())
}

/// Resolves the configuration of `keel run`: built-in defaults, then `--config FILE` if given,
/// then the flags given on the command line (which win). Every value is validated; an error is
/// one line naming the flag (or file, line and key) and the bad value.
pub fn resolve(args: &RunArgs) -> Result<RunConfig> {
    let file = args.config.as_deref().map(ConfigFile::load).transpose()?;
    let layers = Layers {
        file: file.as_ref(),
    };
    let l = &layers;
    let mut cfg = RunConfig::defaults();

    if let Some(g) = l.pick(&args.duration, "--duration", |f| &f.duration, "duration") {
        cfg.duration = Some(g.parse(|v| positive_duration(v))?);
    }
    if let Some(g) = l.pick(&args.json, "--json", |f| &f.json, "json") {
        cfg.json = g.value;
    }
    if let Some(g) = l.pick(
        &args.status_every,
        "--status-every",
        |f| &f.status_every,
        "status_every",
    ) {
        cfg.status_every = g.parse(|v| duration_checked(v))?;
    }
    if let Some(g) = l.pick(&args.live, "--live", |f| &f.live, "live") {
        cfg.live = g.value;
    }
    if let Some(g) = l.pick(
        &args.underlying,
        "--underlying",
        |f| &f.underlying,
        "underlying",
    ) {
        cfg.underlying = g.check(
            |u| {
                (1..=16).contains(&u.len())
                    && u.bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            },
            "must be an upper-case coin such as BTC or ETH",
        )?;
    }
    if let Some(g) = l.pick(
        &args.hedge_instrument,
        "--hedge-instrument",
        |f| &f.hedge_instrument,
        "hedge_instrument",
    ) {
        cfg.hedge_instrument = Some(g.check(
            |s| !s.is_empty() && !s.chars().any(char::is_whitespace),
            "must be a venue symbol such as BTC-PERPETUAL",
        )?);
    }
    if let Some(g) = l.pick(
        &args.delta_target,
        "--delta-target",
        |f| &f.delta_target,
        "delta_target",
    ) {
        cfg.delta_target = g.check(finite, "must be a finite number")?;
    }
    if let Some(g) = l.pick(
        &args.delta_band,
        "--delta-band",
        |f| &f.delta_band,
        "delta_band",
    ) {
        cfg.delta_band = g.check(|v| v.is_finite() && *v > 0.0, "must be > 0")?;
    }
    if let Some(g) = l.pick(
        &args.gamma_target,
        "--gamma-target",
        |f| &f.gamma_target,
        "gamma_target",
    ) {
        cfg.gamma_target = g.check(finite, "must be a finite number")?;
    }
    if let Some(g) = l.pick(
        &args.gamma_band,
        "--gamma-band",
        |f| &f.gamma_band,
        "gamma_band",
    ) {
        cfg.gamma_band = Some(g.check(|v| v.is_finite() && *v > 0.0, "must be > 0")?);
    }
    if let Some(g) = l.pick(
        &args.vega_target,
        "--vega-target",
        |f| &f.vega_target,
        "vega_target",
    ) {
        cfg.vega_target = g.check(finite, "must be a finite number")?;
    }
    if let Some(g) = l.pick(
        &args.vega_band,
        "--vega-band",
        |f| &f.vega_band,
        "vega_band",
    ) {
        cfg.vega_band = Some(g.check(|v| v.is_finite() && *v > 0.0, "must be > 0")?);
    }
    if let Some(g) = l.pick(
        &args.vega_bucket_band,
        "--vega-bucket-band",
        |f| &f.vega_bucket_band,
        "vega_bucket_band",
    ) {
        cfg.vega_bucket_band = Some(g.check(|v| v.is_finite() && *v > 0.0, "must be > 0")?);
    }
    if let Some(g) = l.pick(&args.liquid, "--liquid", |f| &f.liquid, "liquid") {
        cfg.liquid = g.parse(|v| check_instruments(v))?;
    }
    if let Some(g) = l.pick(
        &args.alt_hedge,
        "--alt-hedge",
        |f| &f.alt_hedge,
        "alt_hedge",
    ) {
        cfg.alt_hedges = g.parse(|v| check_alt_hedges(v))?;
    }
    if let Some(g) = l.pick(&args.policy, "--policy", |f| &f.policy, "policy") {
        g.parse(|v| {
            keel_engine::policy::triggers::parse_policy(v)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })?;
        cfg.policy = Some(g.value);
    }
    if let Some(g) = l.pick(
        &args.halt_file,
        "--halt-file",
        |f| &f.halt_file,
        "halt_file",
    ) {
        cfg.halt_file = g.check(|p| !p.as_os_str().is_empty(), "must be a file path")?;
    }
    if let Some(g) = l.pick(
        &args.max_hedges_per_min,
        "--max-hedges-per-min",
        |f| &f.max_hedges_per_min,
        "max_hedges_per_min",
    ) {
        cfg.max_hedges_per_min = g.check(|v| *v > 0, "must be > 0")?;
    }
    let positive = |v: &f64| v.is_finite() && *v > 0.0;
    if let Some(g) = l.pick(
        &args.max_position_coin,
        "--max-position-coin",
        |f| &f.max_position_coin,
        "max_position_coin",
    ) {
        cfg.max_position_coin = Some(g.check(positive, "must be > 0")?);
    }
    if let Some(g) = l.pick(
        &args.max_notional_per_min,
        "--max-notional-per-min",
        |f| &f.max_notional_per_min,
        "max_notional_per_min",
    ) {
        cfg.max_notional_per_min = Some(g.check(positive, "must be > 0")?);
    }
    if let Some(g) = l.pick(
        &args.daily_loss_stop,
        "--daily-loss-stop",
        |f| &f.daily_loss_stop,
        "daily_loss_stop",
    ) {
        cfg.daily_loss_stop = Some(g.check(positive, "must be > 0")?);
    }
    if let Some(g) = l.pick(
        &args.max_consecutive_rejects,
        "--max-consecutive-rejects",
        |f| &f.max_consecutive_rejects,
        "max_consecutive_rejects",
    ) {
        cfg.max_consecutive_rejects = g.check(|v| *v > 0, "must be > 0")?;
    }
    if let Some(g) = l.pick(
        &args.stale_after,
        "--stale-after",
        |f| &f.stale_after,
        "stale_after",
    ) {
        cfg.stale_after = g.parse(|v| positive_duration(v))?;
    }
    if let Some(g) = l.pick(
        &args.positions,
        "--positions",
        |f| &f.positions,
        "positions",
    ) {
        let ext = g
            .value
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("csv" | "json")) {
            return Err(g.error("must be a .csv or .json file"));
        }
        cfg.positions = Some(g.existing_path()?);
    }
    if let Some(g) = l.pick(&args.topology, "--topology", |f| &f.topology, "topology") {
        cfg.topology = Some(g.check(
            |t| t == "dedicated" || t == "fused" || t == "single",
            "must be dedicated, fused or single",
        )?);
    }
    if let Some(g) = l.pick(&args.pin, "--pin", |f| &f.pin, "pin") {
        g.parse(|p| parse_pin(p))?;
        cfg.pin = Some(g.value.trim().to_owned());
    }
    if let Some(g) = l.pick(&args.wait, "--wait", |f| &f.wait, "wait") {
        g.parse(|w| parse_wait(w))?;
        cfg.wait = Some(g.value.trim().to_owned());
    }
    if let Some(g) = l.pick(&args.reprice, "--reprice", |f| &f.reprice, "reprice") {
        cfg.reprice = g.check(|t| t == "f32" || t == "f64", "must be f32 or f64")?;
    }
    if let Some(g) = l.pick(&args.dev, "--dev", |f| &f.dev, "dev") {
        cfg.dev = g.value;
    }
    cfg.sim = resolve_sim(l, &args.sim)?;
    cfg.evm = resolve_evm(l, &args.evm)?;
    cfg.hyperliquid = resolve_hyperliquid(l, &args.hyperliquid)?;
    for ((venue, flags), (_, slot)) in args.venue_flags().iter().zip(cfg.venues_mut()) {
        *slot = resolve_venue(l, venue, flags)?;
    }
    check_across(&mut cfg)?;
    Ok(cfg)
}

fn resolve_sim(l: &Layers<'_>, f: &SimFlags) -> Result<SimSettings> {
    let mut s = SimSettings::default();
    if let Some(g) = l.pick(&f.seed, "--sim-seed", |d| &d.sim.seed, "sim.seed") {
        s.seed = g.value;
    }
    if let Some(g) = l.pick(&f.rate, "--sim-rate", |d| &d.sim.rate, "sim.rate") {
        s.rate = g.value;
    }
    if let Some(g) = l.pick(
        &f.options,
        "--sim-options",
        |d| &d.sim.options,
        "sim.options",
    ) {
        s.options = g.check(|&n| n > 0, "must be > 0")?;
    }
    if let Some(g) = l.pick(
        &f.drop_every_msgs,
        "--sim-drop-every-msgs",
        |d| &d.sim.drop_every_msgs,
        "sim.drop_every_msgs",
    ) {
        s.drop_every_msgs = Some(g.check(|&n| n > 0, "must be > 0")?);
    }
    if let Some(g) = l.pick(
        &f.malformed_rate,
        "--sim-malformed-rate",
        |d| &d.sim.malformed_rate,
        "sim.malformed_rate",
    ) {
        s.malformed_rate = g.check(|r| (0.0..=1.0).contains(r), "must be between 0 and 1")?;
    }
    if let Some(g) = l.pick(
        &f.silent_after,
        "--sim-silent-after",
        |d| &d.sim.silent_after,
        "sim.silent_after",
    ) {
        s.silent_after = Some(g.parse(|v| duration_checked(v))?);
    }
    if let Some(g) = l.pick(
        &f.delay_ms,
        "--sim-delay-ms",
        |d| &d.sim.delay_ms,
        "sim.delay_ms",
    ) {
        s.delay_ms = Some(g.value);
    }
    Ok(s)
}

/// An `http://` or `https://` URL with a host and a valid port.
fn check_http_url(url: &str) -> Result<String, String> {
    let parsed = Url::parse(url).map_err(|e| e.reason.to_owned())?;
    if parsed.scheme().is_websocket() {
        return Err("scheme must be http:// or https://".to_owned());
    }
    Ok(url.to_owned())
}

fn resolve_evm(l: &Layers<'_>, f: &EvmFlags) -> Result<EvmSettings> {
    let mut e = EvmSettings::default();
    // `$field` names the setting in EvmFlags, EvmFile and the flag/key names alike.
    macro_rules! pick {
        ($field:ident) => {
            l.pick(
                &f.$field,
                &format!("--evm-{}", stringify!($field).replace('_', "-")),
                |d| &d.evm.$field,
                &format!("evm.{}", stringify!($field)),
            )
        };
    }
    let urls = |g: &Given<Vec<String>>| -> Result<Vec<String>> {
        if g.value.is_empty() {
            return Err(g.error("give at least one URL"));
        }
        let mut out = Vec::new();
        for u in &g.value {
            let u = g.parse(|_| check_http_url(u))?;
            if out.contains(&u) {
                return Err(g.error(format_args!("{u} given twice")));
            }
            out.push(u);
        }
        Ok(out)
    };
    if let Some(g) = pick!(rpc_url) {
        e.rpc_url = urls(&g)?;
    }
    if let Some(g) = pick!(builder_url) {
        e.builder_url = urls(&g)?;
    }
    if let Some(g) = pick!(ws_url) {
        e.ws_url = Some(g.parse(|v| check_ws_url(v))?);
    }
    if let Some(g) = pick!(key_env) {
        e.key_env = Some(check_env_name(g)?);
    }
    if let Some(g) = pick!(keystore) {
        e.keystore = Some(g.existing_path()?);
    }
    if let Some(g) = pick!(password_env) {
        e.password_env = Some(check_env_name(g)?);
    }
    if let Some(g) = pick!(password_file) {
        e.password_file = Some(g.existing_path()?);
    }
    if let Some(g) = pick!(flashbots_key_env) {
        e.flashbots_key_env = Some(check_env_name(g)?);
    }
    if let Some(g) = pick!(chain_id) {
        e.chain_id = Some(g.check(|&c| c > 0, "must be > 0")?);
    }
    if let Some(g) = pick!(router) {
        g.parse(|v| {
            keel_engine::exec::evm::parse::address("router", v)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })?;
        e.router = Some(g.value);
    }
    for (slot, g) in [
        (&mut e.calldata_buy, pick!(calldata_buy)),
        (&mut e.calldata_sell, pick!(calldata_sell)),
    ] {
        if let Some(g) = g {
            g.parse(|v| {
                keel_engine::exec::evm::parse::hex_bytes("calldata", v)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })?;
            *slot = Some(g.value);
        }
    }
    if let Some(g) = pick!(amount_word) {
        e.amount_word = g.check(|&k| k < 64, "must be below 64")?;
    }
    if let Some(g) = pick!(decimals) {
        e.decimals = g.check(|&d| d <= 36, "must be at most 36")?;
    }
    if let Some(g) = pick!(gas_limit) {
        e.gas_limit = g.check(
            |&x| (21_000..=30_000_000).contains(&x),
            "must be 21000..=30000000",
        )?;
    }
    if let Some(g) = pick!(priority_fee_gwei) {
        e.priority_fee_gwei = g.check(
            |x| x.is_finite() && (0.0..=1e6).contains(x),
            "must be 0..=1000000",
        )?;
    }
    if let Some(g) = pick!(fee_multiplier) {
        e.fee_multiplier = g.check(|&m| (1..=100).contains(&m), "must be 1..=100")?;
    }
    if let Some(g) = pick!(lot) {
        e.lot = g.check(|x| x.is_finite() && *x > 0.0, "must be > 0")?;
    }
    if let Some(g) = pick!(rungs) {
        e.rungs = g.check(|&r| (1..=24).contains(&r), "must be 1..=24")?;
    }
    if let Some(g) = pick!(fee_bps) {
        e.fee_bps = g.check(|x| x.is_finite() && *x >= 0.0, "must be >= 0")?;
    }
    if let Some(g) = pick!(eth_usd) {
        e.eth_usd = Some(g.check(|x| x.is_finite() && *x > 0.0, "must be > 0")?);
    }
    if let Some(g) = pick!(max_order) {
        e.max_order = Some(g.check(|x| x.is_finite() && *x > 0.0, "must be > 0")?);
    }
    if let Some(g) = pick!(timeout_ms) {
        e.timeout_ms = g.check(|&x| x > 0, "must be > 0")?;
    }
    if let Some(g) = pick!(head_stale_after) {
        e.head_stale_after = g.parse(|v| positive_duration(v))?;
    }
    if let Some(g) = pick!(poll) {
        e.poll = g.parse(|v| positive_duration(v))?;
    }
    if let Some(g) = pick!(sim_block_time) {
        e.sim_block_time = g.parse(|v| match positive_duration(v)? {
            d if d < Duration::from_millis(10) => Err("at least 10ms".to_owned()),
            d => Ok(d),
        })?;
    }
    if let Some(g) = pick!(sim_base_fee_gwei) {
        e.sim_base_fee_gwei = g.check(
            |x| x.is_finite() && *x > 0.0 && *x <= 1e6,
            "must be > 0 and at most 1000000",
        )?;
    }
    Ok(e)
}

fn resolve_venue(l: &Layers<'_>, venue: &'static str, f: &VenueFlags) -> Result<VenueConfig> {
    let mut v = VenueConfig::defaults(venue);
    let flag = |setting: &str| format!("--{venue}-{}", setting.replace('_', "-"));
    let key = |setting: &str| format!("{venue}.{setting}");
    // `$field` names the setting in VenueFlags, VenueFile and the flag/key names alike.
    macro_rules! pick {
        ($field:ident) => {
            l.pick(
                &f.$field,
                &flag(stringify!($field)),
                |d| &d.venue(venue).$field,
                &key(stringify!($field)),
            )
        };
    }
    if let Some(g) = pick!(url) {
        v.url = Some(g.parse(|v| check_ws_url(v))?);
    }
    v.enabled = v.url.is_some();
    if let Some(g) = pick!(enabled) {
        v.enabled = g.value;
        if v.enabled && v.url.is_none() {
            match spec(venue).and_then(|s| s.public_url) {
                Some(public) => v.url = Some(public.to_owned()),
                None => return Err(g.error(format_args!("needs --{venue}-url (or {venue}.url)"))),
            }
        }
    }
    if let Some(g) = pick!(instruments) {
        v.instruments = g.parse(|v| check_instruments(v))?;
    }
    if let Some(g) = pick!(pin) {
        v.pin = Some(g.value);
    }
    if let Some(g) = pick!(fee_bps) {
        v.fee_bps = g.check(|x| x.is_finite() && *x >= 0.0, "must be >= 0")?;
    }
    if let Some(g) = pick!(max_order) {
        v.max_order = Some(g.check(|x| x.is_finite() && *x > 0.0, "must be > 0")?);
    }
    if let Some(g) = pick!(timeout_ms) {
        v.timeout_ms = g.check(|&x| x > 0, "must be > 0")?;
    }
    if let Some(g) = pick!(rate_limit) {
        v.rate_limit = Some(g.check(|&x| x > 0, "must be > 0")?);
    }
    if let Some(g) = pick!(key_env) {
        v.key_env = Some(check_env_name(g)?);
    }
    if let Some(g) = pick!(secret_env) {
        v.secret_env = Some(check_env_name(g)?);
    }
    if let Some(g) = pick!(ca_file) {
        v.ca_file = Some(g.existing_path()?);
    }
    Ok(v)
}

fn resolve_hyperliquid(l: &Layers<'_>, f: &HyperliquidFlags) -> Result<HyperliquidSettings> {
    let mut h = HyperliquidSettings::default();
    macro_rules! pick {
        ($field:ident) => {
            l.pick(
                &f.$field,
                &format!("--hyperliquid-{}", stringify!($field).replace('_', "-")),
                |d| &d.hyperliquid.$field,
                &format!("hyperliquid.{}", stringify!($field)),
            )
        };
    }
    if let Some(g) = pick!(enabled) {
        h.enabled = g.value;
    }
    if let Some(g) = pick!(url) {
        h.url = Some(
            g.parse(|v| check_http_url(v))?
                .trim_end_matches('/')
                .to_owned(),
        );
    }
    if let Some(g) = pick!(ws_url) {
        h.ws_url = Some(g.parse(|v| check_ws_url(v))?);
    }
    if let Some(g) = pick!(key_env) {
        h.key_env = Some(check_env_name(g)?);
    }
    if let Some(g) = pick!(keystore) {
        h.keystore = Some(g.existing_path()?);
    }
    if let Some(g) = pick!(password_env) {
        h.password_env = Some(check_env_name(g)?);
    }
    if let Some(g) = pick!(password_file) {
        h.password_file = Some(g.existing_path()?);
    }
    if let Some(g) = pick!(account) {
        g.parse(|v| {
            keel_engine::exec::evm::parse::address("account", v)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })?;
        h.account = Some(g.value);
    }
    if let Some(g) = pick!(fee_bps) {
        h.fee_bps = g.check(|x| x.is_finite() && *x >= 0.0, "must be >= 0")?;
    }
    if let Some(g) = pick!(max_order) {
        h.max_order = Some(g.check(|x| x.is_finite() && *x > 0.0, "must be > 0")?);
    }
    if let Some(g) = pick!(timeout_ms) {
        h.timeout_ms = g.check(|&x| x > 0, "must be > 0")?;
    }
    if let Some(g) = pick!(rate_limit) {
        h.rate_limit = Some(g.check(|&x| x > 0, "must be > 0")?);
    }
    if let Some(g) = pick!(lot) {
        h.lot = g.check(
            |x| x.is_finite() && *x >= 1e-5 && ((x * 1e5) - (x * 1e5).round()).abs() < 1e-6,
            "must be a positive multiple of 0.00001 (BTC's size step)",
        )?;
    }
    if let Some(g) = pick!(rungs) {
        h.rungs = g.check(|&r| (1..=24).contains(&r), "must be 1..=24")?;
    }
    if let Some(g) = pick!(slippage_bps) {
        h.slippage_bps = g.check(
            |x| x.is_finite() && *x > 0.0 && *x < 5_000.0,
            "must be > 0 and below 5000",
        )?;
    }
    if let Some(g) = pick!(refresh_after) {
        h.refresh_after = g.parse(|v| positive_duration(v))?;
    }
    if let Some(g) = pick!(nonce_max_age) {
        h.nonce_max_age = g.parse(|v| match positive_duration(v)? {
            d if d > Duration::from_secs(86_400) => {
                Err("at most 1d (Hyperliquid refuses nonces more than 2 days old)".to_owned())
            }
            d => Ok(d),
        })?;
    }
    if let Some(g) = pick!(poll) {
        h.poll = g.parse(|v| positive_duration(v))?;
    }
    Ok(h)
}

/// The `[hyperliquid]` settings that depend on each other, checked when `--alt-hedge
/// hyperliquid` is given: against the real venue both endpoints and one key source; a keystore
/// needs its password; the ladder is re-signed before its nonces reach the age limit.
fn check_hyperliquid(cfg: &RunConfig) -> Result<()> {
    let h = &cfg.hyperliquid;
    if !cfg.alt_hedges.iter().any(|(v, _)| v == "hyperliquid") {
        return Ok(());
    }
    if h.refresh_after >= h.nonce_max_age {
        bail!(
            "--hyperliquid-refresh-after {} must be below --hyperliquid-nonce-max-age {} (a \
             ladder is re-signed before its nonces are too old to send)",
            format_duration(h.refresh_after),
            format_duration(h.nonce_max_age)
        );
    }
    if h.key_env.is_some() && h.keystore.is_some() {
        bail!(
            "--hyperliquid-key-env and --hyperliquid-keystore (hyperliquid.key_env, \
             hyperliquid.keystore): give one key source"
        );
    }
    if h.keystore.is_some() && h.password_env.is_none() && h.password_file.is_none() {
        bail!(
            "--hyperliquid-keystore (hyperliquid.keystore): needs --hyperliquid-password-env or \
             --hyperliquid-password-file for its password"
        );
    }
    if h.password_env.is_some() && h.password_file.is_some() {
        bail!(
            "--hyperliquid-password-env and --hyperliquid-password-file: give one password source"
        );
    }
    if h.uses_sim() {
        if h.ws_url.is_some() || h.key_env.is_some() || h.keystore.is_some() {
            bail!(
                "--hyperliquid-ws-url/--hyperliquid-key-env/--hyperliquid-keystore: need \
                 --hyperliquid-url (without it the embedded keel-sim's Hyperliquid and a fresh \
                 agent key are used)"
            );
        }
        return Ok(());
    }
    if h.ws_url.is_none() {
        bail!(
            "--alt-hedge hyperliquid with --hyperliquid-url needs --hyperliquid-ws-url (its book and orders)"
        );
    }
    if h.key_env.is_none() && h.keystore.is_none() {
        bail!(
            "--alt-hedge hyperliquid with --hyperliquid-url needs --hyperliquid-key-env or \
             --hyperliquid-keystore (the key that signs the actions)"
        );
    }
    Ok(())
}

/// The `[evm]` settings that depend on each other, checked when `--alt-hedge evm` is given:
/// against a real node every endpoint, the chain id, the key, the call and the ETH price must
/// be given (no silent default stands in for a real chain's); builders need the reputation key;
/// a keystore needs its password; a key from two places is refused.
fn check_evm(cfg: &RunConfig) -> Result<()> {
    let e = &cfg.evm;
    if !cfg.alt_hedges.iter().any(|(v, _)| v == "evm") {
        return Ok(());
    }
    if e.key_env.is_some() && e.keystore.is_some() {
        bail!("--evm-key-env and --evm-keystore (evm.key_env, evm.keystore): give one key source");
    }
    if e.keystore.is_some() && e.password_env.is_none() && e.password_file.is_none() {
        bail!(
            "--evm-keystore (evm.keystore): needs --evm-password-env or --evm-password-file for \
             its password"
        );
    }
    if e.password_env.is_some() && e.password_file.is_some() {
        bail!("--evm-password-env and --evm-password-file: give one password source");
    }
    if e.uses_sim() {
        if !e.builder_url.is_empty() || e.ws_url.is_some() {
            bail!(
                "--evm-builder-url/--evm-ws-url: need --evm-rpc-url (without it the embedded mock \
                 node and its builders are used)"
            );
        }
        return Ok(());
    }
    let need = |what: bool, flag: &str, why: &str| -> Result<()> {
        if what {
            Ok(())
        } else {
            bail!("--alt-hedge evm with --evm-rpc-url needs {flag} ({why})")
        }
    };
    need(
        e.chain_id.is_some(),
        "--evm-chain-id",
        "the chain the transactions are signed for",
    )?;
    need(
        e.ws_url.is_some(),
        "--evm-ws-url",
        "a newHeads WebSocket for the gas price",
    )?;
    need(
        e.key_env.is_some() || e.keystore.is_some(),
        "--evm-key-env or --evm-keystore",
        "the sender's key",
    )?;
    need(
        e.router.is_some(),
        "--evm-router",
        "the contract the hedge calls",
    )?;
    need(
        e.calldata_buy.is_some() && e.calldata_sell.is_some(),
        "--evm-calldata-buy and --evm-calldata-sell",
        "the call of each side",
    )?;
    need(
        e.eth_usd.is_some() || cfg.underlying == "ETH",
        "--evm-eth-usd",
        "the ETH price gas is converted at, unless the underlying is ETH",
    )?;
    need(
        e.builder_url.is_empty() || e.flashbots_key_env.is_some(),
        "--evm-flashbots-key-env",
        "builders authenticate bundles with a reputation key",
    )?;
    Ok(())
}

/// Checks that span settings: venue pins against stage pins, the underlying on the simulated
/// venue; and fills the default hedge instrument.
fn check_across(cfg: &mut RunConfig) -> Result<()> {
    let fused = matches!(cfg.topology.as_deref(), Some("fused" | "single"));
    let single = cfg.topology.as_deref() == Some("single");
    let pins = cfg.pins();
    for (venue, v) in cfg.venues() {
        let Some(core) = v.pin else { continue };
        // A venue's connection runs on the feed thread (the pricer's too when fused): any other
        // stage's core is taken.
        let clash = pins.iter().find(|&&(stage, c)| {
            c == core
                && !(stage == Stage::Feed
                    || fused && stage == Stage::Pricer
                    || single && stage == Stage::Exec)
        });
        if let Some((stage, _)) = clash {
            bail!(
                "--{venue}-pin ({venue}.pin) {core}: core {core} is the {} stage's (pin {}); a feed \
                 connection may share a core only with the feed stage or other venues",
                stage.name(),
                cfg.pin.as_deref().unwrap_or_default()
            );
        }
    }
    check_evm(cfg)?;
    check_hyperliquid(cfg)?;
    if cfg.uses_sim() && cfg.underlying != SIM_UNDERLYING {
        bail!(
            "--underlying (underlying) {}: the simulated venue, used when no venue is enabled, \
             lists only {SIM_UNDERLYING}",
            cfg.underlying
        );
    }
    if cfg.hedge_instrument.is_none() {
        cfg.hedge_instrument = if cfg.uses_sim() {
            Some(sim_perpetual(&cfg.underlying))
        } else {
            cfg.enabled_venues()
                .iter()
                .find_map(|(name, _)| spec(name)?.perpetual_of(&cfg.underlying))
        };
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Showing the resolved configuration
// ---------------------------------------------------------------------------------------------

/// The resolved configuration as TOML that `--config` reads back, with secrets redacted: for
/// `key_env`/`secret_env` the variable's name and whether it is set, never its value. Comments
/// say whether the run would be dry (and why) and whether it would use the simulated venue.
pub fn show(cfg: &RunConfig) -> String {
    show_with(cfg, &process_env)
}

/// [`show`] with `env` looking variables up (tests inject one).
pub fn show_with(cfg: &RunConfig, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = TomlOut(String::new());
    out.comment("keel run configuration, resolved: defaults < --config file < flags.");
    out.comment("Secrets are never shown: key_env/secret_env name environment variables.");
    match cfg.dry_run_reason_with(env) {
        Some(why) => out.comment(&format!("dry_run = true ({why}): no real orders are sent")),
        None => out.comment("dry_run = false: --live given and every enabled venue's keys are set"),
    }
    if cfg.uses_sim() {
        out.comment(
            "uses_sim = true: no venue enabled; keel run starts the embedded simulated venue",
        );
    } else {
        let names: Vec<&str> = cfg.enabled_venues().iter().map(|(n, _)| *n).collect();
        out.comment(&format!("uses_sim = false: venues {}", names.join(", ")));
    }
    out.blank();
    out.opt(
        "duration",
        cfg.duration.map(format_duration),
        "run until interrupted",
    );
    out.set("json", cfg.json);
    out.set("status_every", format_duration(cfg.status_every));
    out.set("live", cfg.live);
    out.set("underlying", cfg.underlying.as_str());
    out.opt(
        "hedge_instrument",
        cfg.hedge_instrument.as_deref(),
        "no enabled venue lists a perpetual: set one",
    );
    out.set("delta_target", cfg.delta_target);
    out.set("delta_band", cfg.delta_band);
    out.set("gamma_target", cfg.gamma_target);
    out.opt("gamma_band", cfg.gamma_band, "gamma not hedged");
    out.set("vega_target", cfg.vega_target);
    out.opt("vega_band", cfg.vega_band, "vega not hedged");
    out.opt(
        "vega_bucket_band",
        cfg.vega_bucket_band,
        "no per-expiry vega band",
    );
    out.set("liquid", cfg.liquid.clone());
    out.set(
        "alt_hedge",
        cfg.alt_hedges
            .iter()
            .map(|(v, s)| {
                if s.is_empty() {
                    v.clone()
                } else {
                    format!("{v}:{s}")
                }
            })
            .collect::<Vec<_>>(),
    );
    out.opt("policy", cfg.policy.clone(), "the delta band");
    out.set("halt_file", cfg.halt_file.display().to_string());
    out.set("max_hedges_per_min", u64::from(cfg.max_hedges_per_min));
    out.opt("max_position_coin", cfg.max_position_coin, "no limit");
    out.opt("max_notional_per_min", cfg.max_notional_per_min, "no limit");
    out.opt("daily_loss_stop", cfg.daily_loss_stop, "no stop");
    out.set(
        "max_consecutive_rejects",
        u64::from(cfg.max_consecutive_rejects),
    );
    out.set("stale_after", format_duration(cfg.stale_after));
    out.opt(
        "positions",
        cfg.positions.as_ref().map(|p| p.display().to_string()),
        "a sample book",
    );
    out.opt(
        "topology",
        cfg.topology.as_deref(),
        "chosen from the cores available",
    );
    out.opt("pin", cfg.pin.as_deref(), "threads are not pinned");
    out.opt(
        "wait",
        cfg.wait.as_deref(),
        "the engine's default per stage",
    );
    out.set("dev", cfg.dev);

    let s = &cfg.sim;
    out.blank();
    out.table(
        "sim",
        (!cfg.uses_sim()).then_some("not used: venues are enabled"),
    );
    out.set("seed", s.seed);
    out.set("rate", s.rate);
    out.set("options", s.options);
    out.opt("drop_every_msgs", s.drop_every_msgs, "never");
    out.set("malformed_rate", s.malformed_rate);
    out.opt("silent_after", s.silent_after.map(format_duration), "never");
    out.opt("delay_ms", s.delay_ms, "no delay");

    let e = &cfg.evm;
    out.blank();
    out.table(
        "evm",
        (!cfg.alt_hedges.iter().any(|(v, _)| v == "evm")).then_some("not used: no --alt-hedge evm"),
    );
    out.opt(
        "rpc_url",
        (!e.rpc_url.is_empty()).then(|| e.rpc_url.clone()),
        "the embedded mock node",
    );
    out.opt(
        "builder_url",
        (!e.builder_url.is_empty()).then(|| e.builder_url.clone()),
        "the mock's builders with the mock node, none otherwise",
    );
    out.opt("ws_url", e.ws_url.as_deref(), "the embedded node's");
    for (setting, var) in [
        ("key_env", &e.key_env),
        ("password_env", &e.password_env),
        ("flashbots_key_env", &e.flashbots_key_env),
    ] {
        match var {
            Some(var) => {
                let state = if is_set(env, var) { "set" } else { "NOT set" };
                out.set_noted(setting, var.as_str(), state);
            }
            None => out.absent(setting, ""),
        }
    }
    out.opt(
        "keystore",
        e.keystore.as_ref().map(|p| p.display().to_string()),
        "",
    );
    out.opt(
        "password_file",
        e.password_file.as_ref().map(|p| p.display().to_string()),
        "",
    );
    out.opt("chain_id", e.chain_id, "1 on the embedded node");
    out.opt(
        "router",
        e.router.as_deref(),
        "a mock router on the embedded node",
    );
    out.opt(
        "calldata_buy",
        e.calldata_buy.as_deref(),
        "mock calldata on the embedded node",
    );
    out.opt(
        "calldata_sell",
        e.calldata_sell.as_deref(),
        "mock calldata on the embedded node",
    );
    out.set("amount_word", e.amount_word);
    out.set("decimals", u64::from(e.decimals));
    out.set("gas_limit", e.gas_limit);
    out.set("priority_fee_gwei", e.priority_fee_gwei);
    out.set("fee_multiplier", u64::from(e.fee_multiplier));
    out.set("lot", e.lot);
    out.set("rungs", u64::from(e.rungs));
    out.set("fee_bps", e.fee_bps);
    out.opt(
        "eth_usd",
        e.eth_usd,
        "the index for ETH, 3000 on the embedded node",
    );
    out.opt("max_order", e.max_order, "the largest rung");
    out.set("timeout_ms", e.timeout_ms);
    out.set("head_stale_after", format_duration(e.head_stale_after));
    out.set("poll", format_duration(e.poll));
    out.set("sim_block_time", format_duration(e.sim_block_time));
    out.set("sim_base_fee_gwei", e.sim_base_fee_gwei);

    let h = &cfg.hyperliquid;
    out.blank();
    out.table(
        "hyperliquid",
        (!cfg.alt_hedges.iter().any(|(v, _)| v == "hyperliquid"))
            .then_some("not used: no --alt-hedge hyperliquid"),
    );
    out.set("enabled", h.enabled);
    out.opt("url", h.url.as_deref(), "the embedded keel-sim's");
    out.opt("ws_url", h.ws_url.as_deref(), "the embedded keel-sim's");
    for (setting, var) in [("key_env", &h.key_env), ("password_env", &h.password_env)] {
        match var {
            Some(var) => {
                let state = if is_set(env, var) { "set" } else { "NOT set" };
                out.set_noted(setting, var.as_str(), state);
            }
            None => out.absent(setting, ""),
        }
    }
    out.opt(
        "keystore",
        h.keystore.as_ref().map(|p| p.display().to_string()),
        "",
    );
    out.opt(
        "password_file",
        h.password_file.as_ref().map(|p| p.display().to_string()),
        "",
    );
    out.opt("account", h.account.as_deref(), "the signer's");
    out.set("fee_bps", h.fee_bps);
    out.opt("max_order", h.max_order, "the largest rung");
    out.set("timeout_ms", h.timeout_ms);
    out.opt("rate_limit", h.rate_limit, "no limit");
    out.set("lot", h.lot);
    out.set("rungs", u64::from(h.rungs));
    out.set("slippage_bps", h.slippage_bps);
    out.set("refresh_after", format_duration(h.refresh_after));
    out.set("nonce_max_age", format_duration(h.nonce_max_age));
    out.set("poll", format_duration(h.poll));

    for (name, v) in cfg.venues() {
        out.blank();
        out.table(name, None);
        out.set("enabled", v.enabled);
        out.opt("url", v.url.as_deref(), "");
        out.set("instruments", v.instruments.clone());
        out.opt("pin", v.pin, "runs on the feed thread");
        out.set("fee_bps", v.fee_bps);
        out.opt("max_order", v.max_order, "no limit");
        out.set("timeout_ms", v.timeout_ms);
        out.opt("rate_limit", v.rate_limit, "no limit");
        for (setting, var) in [("key_env", &v.key_env), ("secret_env", &v.secret_env)] {
            match var {
                Some(var) => {
                    let state = if is_set(env, var) { "set" } else { "NOT set" };
                    out.set_noted(setting, var.as_str(), state);
                }
                None => out.absent(setting, ""),
            }
        }
        out.opt(
            "ca_file",
            v.ca_file.as_ref().map(|p| p.display().to_string()),
            "",
        );
    }
    out.0
}

/// The resolved configuration as one JSON object: [`RunConfig`]'s fields plus `dry_run`,
/// `dry_run_reason`, `uses_sim` and, per venue, `key_env_set` and `secret_env_set` (never a value).
pub fn show_json(cfg: &RunConfig) -> String {
    show_json_with(cfg, &process_env)
}

/// [`show_json`] with `env` looking variables up (tests inject one).
pub fn show_json_with(cfg: &RunConfig, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut value = serde_json::to_value(cfg).unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        for (name, v) in cfg.venues() {
            if let Some(venue) = obj.get_mut(name).and_then(|x| x.as_object_mut()) {
                for (setting, var) in [("key_env", &v.key_env), ("secret_env", &v.secret_env)] {
                    let set = var.as_deref().is_some_and(|n| is_set(env, n));
                    venue.insert(format!("{setting}_set"), set.into());
                }
            }
        }
        if let Some(h) = obj.get_mut("hyperliquid").and_then(|x| x.as_object_mut()) {
            for (setting, var) in [
                ("key_env", &cfg.hyperliquid.key_env),
                ("password_env", &cfg.hyperliquid.password_env),
            ] {
                let set = var.as_deref().is_some_and(|n| is_set(env, n));
                h.insert(format!("{setting}_set"), set.into());
            }
        }
        let reason = cfg.dry_run_reason_with(env);
        obj.insert("dry_run".into(), reason.is_some().into());
        obj.insert("dry_run_reason".into(), reason.into());
        obj.insert("uses_sim".into(), cfg.uses_sim().into());
    }
    value.to_string()
}

/// A value written as a TOML literal.
trait Lit {
    fn lit(self) -> String;
}

macro_rules! lit_via_toml {
    ($($t:ty),*) => {$(impl Lit for $t { fn lit(self) -> String { toml::Value::from(self).to_string() } })*};
}
lit_via_toml!(bool, f64, &str, String, Vec<String>);

macro_rules! lit_integer {
    ($($t:ty),*) => {$(impl Lit for $t { fn lit(self) -> String { self.to_string() } })*};
}
lit_integer!(u64, u32, usize);

/// Writes TOML by hand, in the configuration's own order, with comments.
struct TomlOut(String);

impl TomlOut {
    fn comment(&mut self, text: &str) {
        let _ = writeln!(self.0, "# {text}");
    }

    fn blank(&mut self) {
        self.0.push('\n');
    }

    fn table(&mut self, name: &str, note: Option<&str>) {
        match note {
            Some(note) => {
                let _ = writeln!(self.0, "[{name}] # {note}");
            }
            None => {
                let _ = writeln!(self.0, "[{name}]");
            }
        }
    }

    fn set(&mut self, key: &str, value: impl Lit) {
        let _ = writeln!(self.0, "{key} = {}", value.lit());
    }

    fn set_noted(&mut self, key: &str, value: impl Lit, note: &str) {
        let _ = writeln!(self.0, "{key} = {} # {note}", value.lit());
    }

    /// `# key: not set (why)`: TOML has no null, so an unset setting is a comment.
    fn absent(&mut self, key: &str, why: &str) {
        if why.is_empty() {
            let _ = writeln!(self.0, "# {key}: not set");
        } else {
            let _ = writeln!(self.0, "# {key}: not set ({why})");
        }
    }

    fn opt<V: Lit>(&mut self, key: &str, value: Option<V>, why: &str) {
        match value {
            Some(v) => self.set(key, v),
            None => self.absent(key, why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        let ok = [
            ("30s", Duration::from_secs(30)),
            ("500ms", Duration::from_millis(500)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("90", Duration::from_secs(90)),
            ("1.5s", Duration::from_millis(1500)),
            ("0.1", Duration::from_millis(100)),
            ("250us", Duration::from_micros(250)),
            ("7ns", Duration::from_nanos(7)),
            ("0", Duration::ZERO),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in [
            "",
            "s",
            "3x",
            "-1s",
            "1.2.3s",
            "ms",
            "1e3",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn durations_format_back_to_what_parses() {
        for d in [
            0,
            1,
            999,
            1_000,
            1_500_000,
            1_000_000_000,
            90_000_000_000,
            3_600_000_000_000,
        ] {
            let d = Duration::from_nanos(d);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn pins_parse_and_refuse_duplicates() {
        assert_eq!(
            parse_pin("feed=2, pricer=3,exec=4"),
            Ok(vec![(Stage::Feed, 2), (Stage::Pricer, 3), (Stage::Exec, 4)])
        );
        for (bad, says) in [
            ("feed=2,feed=3", "given twice"),
            ("feed=2,pricer=2", "core 2 given to both feed and pricer"),
            ("feed=x", "not a whole number"),
            ("feeder=1", "unknown stage"),
            ("feed", "not STAGE=CORE"),
            ("feed=1,", "empty entry"),
        ] {
            let err = parse_pin(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn wait_plans_set_all_and_per_stage() {
        let plan = parse_wait("park,feed=spin").unwrap();
        assert_eq!(plan.for_stage(Stage::Feed), Some(Wait::Spin));
        assert_eq!(plan.for_stage(Stage::Exec), Some(Wait::Park));
        assert_eq!(parse_wait("spin-yield").unwrap().all, Some(Wait::SpinYield));
        for bad in [
            "nap",
            "feed=nap",
            "spin,park",
            "feed=spin,feed=park",
            "bogus=spin",
        ] {
            assert!(parse_wait(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_looking_keys_are_recognised() {
        for k in [
            "key",
            "secret",
            "api_key",
            "API_SECRET",
            "private_key",
            "passphrase",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["key_env", "secret_env", "url", "pin", "hedge_instrument"] {
            assert!(!is_secret_key(k), "{k}");
        }
    }
}
