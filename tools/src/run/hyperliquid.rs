//! `keel run --alt-hedge hyperliquid`: Hyperliquid as a delta-hedge venue — its `l2Book` read
//! by a feed connection (quote and depth for the cost model), positions reconciled from
//! `clearinghouseState` before the first hedge, a signer thread keeping a ladder of pre-signed
//! IOC orders fresh, and an exec session firing the rung nearest each intent over the
//! WebSocket `post` channel. With no `--hyperliquid-url` the embedded keel-sim's Hyperliquid
//! is used, with a fresh random agent key registered with it.
//!
//! Start-up code: allocates, blocks on HTTP; never on the hot path.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use keel_engine::exec::evm::{Address, EvmSigner, parse};
use keel_engine::exec::hyperliquid::{
    HlExecConfig, HlExecStats, HlLadderSpec, HlShelf, HlSigner, HlSignerConfig, HlSignerCounters,
    HyperliquidExec, InfoMids, Network,
};
use keel_engine::exec::{ExecTile, Fill, HedgeIntent, PaperExec};
use keel_engine::pipeline::ring::{Consumer, Producer};
use keel_engine::pipeline::{StopFlag, Tile};
use keel_feeds::clock;
use keel_feeds::net::ConnectionConfig;
use keel_feeds::net::http::http_request;
use serde_json::Value;

use crate::run_config::{HyperliquidSettings, RunConfig};
use crate::sim::SimHandle;

/// Orders in flight at most.
const SLOTS: usize = 16;

/// A coin's asset index and size decimals on Hyperliquid's mainnet perpetuals.
fn asset_of(coin: &str) -> Option<(u32, u32)> {
    match coin {
        "BTC" => Some((0, 5)),
        "ETH" => Some((1, 4)),
        _ => None,
    }
}

/// The running venue.
pub struct HlVenue {
    /// The coin (instrument name on `Venue::Hyperliquid`).
    pub coin: String,
    /// The WebSocket (book and orders).
    pub ws_url: String,
    /// The info endpoint (`…/info`).
    pub info_url: String,
    /// Orders go to the venue (false: paper fills at the quote).
    pub live: bool,
    /// The account whose positions were reconciled.
    pub account: Address,
    /// The signing (agent) address.
    pub signer_address: Address,
    /// The position read at start-up, coin (signed).
    pub position: f64,
    /// Largest rung, coin.
    pub largest_rung: f64,
    pending: Option<HlSigner>,
    shelf: HlShelf,
    signer: Option<JoinHandle<HlSigner>>,
    counters: std::sync::Arc<HlSignerCounters>,
    exec: HlExecConfig,
    stats: Option<std::sync::Arc<HlExecStats>>,
    timeout: Duration,
}

/// What the summary reports about the venue.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HlReport {
    /// The WebSocket orders went to, or `paper`.
    pub target: String,
    /// The coin.
    pub coin: String,
    /// The account reconciled (0x, lower case).
    pub account: String,
    /// The signing (agent) address.
    pub signer: String,
    /// The account's position at start (`clearinghouseState`), coin.
    pub position_start: f64,
    /// The account's position read again at the end (`None`: the reading failed), coin.
    pub position_end: Option<f64>,
    /// Coin filled by this run's orders, signed (the venue's replies).
    pub filled: f64,
    /// Rungs fired.
    pub fired: u64,
    /// Orders written.
    pub orders_sent: u64,
    /// Noops accepted.
    pub voided: u64,
    /// Orders that timed out.
    pub timeouts: u64,
    /// Landed without a reply.
    pub landed_unknown: u64,
    /// Malformed replies.
    pub malformed: u64,
    /// Intents refused before sending, by reason.
    pub refused: Vec<(&'static str, u64)>,
    /// Ladders signed.
    pub ladders_signed: u64,
    /// Signing errors.
    pub sign_errors: u64,
    /// Failed mid readings.
    pub read_errors: u64,
}

/// Where the key comes from, per the settings.
fn load_key(h: &HyperliquidSettings) -> Result<EvmSigner> {
    super::evm::load_venue_key(
        "hyperliquid",
        h.key_env.as_deref(),
        h.keystore.as_deref(),
        h.password_env.as_deref(),
        h.password_file.as_deref(),
    )
}

/// `user`'s position in `coin` from `clearinghouseState` (signed, coin; 0 without one).
pub fn fetch_position(info_url: &str, user: Address, coin: &str, timeout: Duration) -> Result<f64> {
    let body = format!(r#"{{"type":"clearinghouseState","user":"{user:#x}"}}"#);
    let what = || format!("reconciling with Hyperliquid: POST {info_url} clearinghouseState");
    let (status, reply) = http_request(
        info_url,
        "POST",
        Some(body.as_bytes()),
        &[("Content-Type", "application/json")],
        None,
        timeout,
    )
    .with_context(what)?;
    let v: Value = serde_json::from_slice(&reply)
        .with_context(|| format!("{}: HTTP {status}, the body is not JSON", what()))?;
    if status != 200 {
        bail!("{}: HTTP {status}: {v}", what());
    }
    let Some(list) = v.get("assetPositions").and_then(Value::as_array) else {
        bail!("{}: no assetPositions in {v}", what());
    };
    let mut total = 0.0;
    for p in list {
        let pos = &p["position"];
        if pos.get("coin").and_then(Value::as_str) != Some(coin) {
            continue;
        }
        let szi = pos
            .get("szi")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|x| x.is_finite())
            .with_context(|| format!("{}: bad szi in {p}", what()))?;
        total += szi;
    }
    Ok(total)
}

impl HlVenue {
    /// Keys, endpoints, the reconciled position and the first ladder (tried for up to
    /// `timeout`: no hedge is decided on the venue before it exists).
    pub fn start(
        cfg: &RunConfig,
        coin: &str,
        sim: Option<&SimHandle>,
        timeout: Duration,
    ) -> Result<HlVenue> {
        let h = &cfg.hyperliquid;
        let coin = if coin.is_empty() {
            cfg.underlying.to_ascii_uppercase()
        } else {
            coin.to_ascii_uppercase()
        };
        let Some((asset, sz_decimals)) = asset_of(&coin) else {
            bail!("--alt-hedge hyperliquid:{coin}: Keel knows the asset index of BTC and ETH only");
        };
        let (key, ws_url, info_url, live) = match (h.uses_sim(), sim) {
            (true, Some(s)) => {
                let key = super::evm::random_key("the embedded Hyperliquid agent key")?;
                s.add_hyperliquid_agent(key.address());
                (key, s.hyperliquid_ws_url(), s.hyperliquid_info_url(), true)
            }
            (true, None) => bail!(
                "--alt-hedge hyperliquid against real venues needs --hyperliquid-url and \
                 --hyperliquid-ws-url (the embedded keel-sim runs only with no venue flag)"
            ),
            (false, _) => {
                let base = h.url.clone().unwrap_or_default();
                (
                    load_key(h)?,
                    h.ws_url.clone().unwrap_or_default(),
                    format!("{base}/info"),
                    !cfg.dry_run(),
                )
            }
        };
        let account = match &h.account {
            Some(a) => parse::address("account", a)
                .map_err(|e| anyhow::anyhow!("--hyperliquid-account: {e}"))?,
            None => key.address(),
        };
        let position = fetch_position(&info_url, account, &coin, timeout)?;
        let spec = HlLadderSpec {
            asset,
            lot: h.lot,
            rungs: h.rungs,
            sz_decimals,
            slippage: h.slippage_bps / 1e4,
            network: Network::Mainnet,
        };
        let largest_rung = spec.size(h.rungs - 1);
        let signer_address = key.address();
        let (mut signer, shelf) = HlSigner::new(
            HlSignerConfig {
                spec,
                refresh_after_ms: h.refresh_after.as_millis() as u64,
                // Re-signed well before the limits stop being marketable.
                reprice_band: h.slippage_bps / 1e4 / 2.0,
                poll: h.poll,
            },
            key,
            Box::new(InfoMids::new(&info_url, &coin, timeout)),
        )
        .map_err(|e| anyhow::anyhow!("--hyperliquid-lot/--hyperliquid-rungs: {e}"))?;
        let until = Instant::now() + timeout;
        while signer.current().is_none() {
            signer
                .step(clock::now_ns() / 1_000_000)
                .map_err(|e| anyhow::anyhow!("signing the Hyperliquid ladder: {e}"))?;
            if signer.current().is_some() {
                break;
            }
            if Instant::now() >= until {
                bail!(
                    "Hyperliquid: no mid for {coin} from {info_url} (allMids) within {timeout:?}"
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let counters = signer.counters();
        Ok(HlVenue {
            coin,
            ws_url,
            info_url,
            live,
            account,
            signer_address,
            position,
            largest_rung,
            pending: Some(signer),
            shelf,
            signer: None,
            counters,
            exec: HlExecConfig {
                max_nonce_age_ms: h.nonce_max_age.as_millis() as u64,
                timeout_ns: h.timeout_ms.max(1) * 1_000_000,
                slots: SLOTS,
                min_interval_ns: h
                    .rate_limit
                    .map_or(0, |r| 1_000_000_000 / u64::from(r.max(1))),
            },
            stats: None,
            timeout,
        })
    }

    /// Starts the signer thread (until the stop flag).
    pub fn spawn_signer(&mut self, stop: &StopFlag) -> Result<()> {
        if let Some(s) = self.pending.take() {
            self.signer = Some(
                s.spawn(stop.clone())
                    .context("spawning the Hyperliquid signer thread")?,
            );
        }
        Ok(())
    }

    /// Whether the signer thread still runs.
    pub fn signer_running(&self) -> bool {
        self.signer.as_ref().is_none_or(|h| !h.is_finished())
    }

    /// Ladders signed so far.
    pub fn ladders_signed(&self) -> u64 {
        self.counters
            .ladders
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The exec tile of the route: the order session over the WebSocket, or paper fills.
    pub fn exec_tile(
        &mut self,
        intents: Consumer<HedgeIntent>,
        fills: Producer<Fill>,
    ) -> Result<Box<dyn Tile>> {
        if !self.live {
            return Ok(Box::new(PaperExec::new(intents, fills).0));
        }
        let session = HyperliquidExec::new(
            intents,
            fills,
            self.shelf.clone(),
            self.exec,
            Some(self.account),
        )
        .map_err(|e| anyhow::anyhow!("Hyperliquid order session: {e}"))?;
        self.stats = Some(session.stats());
        let url = &self.ws_url;
        let mut c =
            ConnectionConfig::new(url).with_context(|| format!("Hyperliquid orders at {url}"))?;
        c.stale_after = Some(Duration::from_secs(60));
        let (t, _) = ExecTile::new(c, session).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Box::new(t))
    }

    /// Joins the signer (the stop flag ended it), reads the account's position again and
    /// reports. Call after the exec tile stopped (its counters are final).
    pub fn finish(mut self) -> HlReport {
        if let Some(h) = self.signer.take() {
            let _ = h.join();
        }
        let r = std::sync::atomic::Ordering::Relaxed;
        let mut rep = HlReport {
            target: if self.live {
                self.ws_url.clone()
            } else {
                "paper".into()
            },
            coin: self.coin.clone(),
            account: format!("{:#x}", self.account),
            signer: format!("{:#x}", self.signer_address),
            position_start: self.position,
            position_end: fetch_position(&self.info_url, self.account, &self.coin, self.timeout)
                .ok(),
            ladders_signed: self.counters.ladders.load(r),
            sign_errors: self.counters.sign_errors.load(r),
            read_errors: self.counters.read_errors.load(r),
            ..HlReport::default()
        };
        if let Some(s) = &self.stats {
            rep.filled = s.filled_e8.load(r) as f64 / 1e8;
            rep.fired = s.fired.load(r);
            rep.orders_sent = s.orders_sent.load(r);
            rep.voided = s.voided.load(r);
            rep.timeouts = s.timeouts.load(r);
            rep.landed_unknown = s.landed_unknown.load(r);
            rep.malformed = s.malformed.load(r);
            rep.refused = [
                "no_ladder",
                "too_small",
                "stale_nonce",
                "price",
                "busy",
                "rate",
            ]
            .into_iter()
            .zip(s.refused.iter().map(|a| a.load(r)))
            .collect();
        }
        rep
    }
}
