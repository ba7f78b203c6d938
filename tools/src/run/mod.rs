//! `keel run`, the main job: market data in, the whole book repriced on every tick, the delta
//! band held with hedges on the perpetual, live status every second and a summary at the end.
//!
//! With no venue flags it starts keel-sim in-process on loopback (Deribit protocol: market data
//! and the order endpoint), lists its chain with `public/get_instruments`, holds a sample book,
//! and sends its hedges to keel-sim's `private/buy`/`private/sell`. With `--deribit-url` it reads
//! Deribit itself; orders stay on paper (dry run) until keys are configured and `--live` is
//! given. Other venues' feeds (`--binance-url`, ...) are connected and their events counted; the
//! first policy hedges on the Deribit perpetual only.
//!
//! Threads: feed (one per pin group of venue connections), pricer, exec and telemetry tiles
//! ([`keel_engine::pipeline`]); `--topology fused` runs the first feed and the pricer on one
//! thread, `--topology single` the feed, the pricer and the exec tile. This module builds them, runs the status loop on the main thread, and prints the
//! summary; it is start-up and reporting code and allocates freely.

pub mod evm;
pub mod hyperliquid;
mod instruments;
pub mod reconcile;
mod report;
mod sample;

pub use instruments::{fetch_deribit, index_of};
pub use report::{Summary, summary_json, summary_table};
pub use sample::sample_book;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use keel_engine::book::{Book, load_positions};
use keel_engine::exec::deribit::{Credentials, DeribitOrders};
use keel_engine::exec::router::{Route, Router};
use keel_engine::exec::{ExecCounters, ExecTile, PaperExec};
use keel_engine::market::{MarketConfig, MarketState};
use keel_engine::pipeline::feed_tile::{FeedCounters, FeedTile, TickMsg};
use keel_engine::pipeline::pricer::{
    AltHedge, ChainHedge, OptionHedging, PricerConfig, PricerRings, PricerStats, PricerTile,
};
use keel_engine::pipeline::{
    PinMap, PinPolicy, StopFlag, TelemetryHandle, TelemetryTile, Tile, TileSpec, TileThread,
    Topology, WaitMap, WaitStrategy, available_cores, ring, spawn,
};
use keel_engine::policy::construct::Band;
use keel_engine::policy::cost::GasSpec;
use keel_engine::policy::{DeltaBand, HedgeSpec};
use keel_engine::risk::{
    DEFAULT_POLL_EVERY, IndexConfig, IvLimits, KillFile, KillFlags, RiskLimits, RiskState,
};
use keel_feeds::clock;
use keel_feeds::event::Venue;
use keel_feeds::instrument::{InstrumentId, InstrumentKind, Instruments};
use keel_feeds::net::{ConnectionConfig, FeedLoop};
use keel_feeds::session::{VenueSession, register};
use keel_feeds::venues::BinanceMarket;

use crate::run_config::{RunArgs, RunConfig, VenueConfig, resolve};
use crate::sim::binance_orders::{BinanceAccount, OrderApiConfig};
use crate::sim::{Faults, SimConfig, SimCredentials, SimHandle, SimVenue};
use keel_engine::exec::binance::{BinanceCredentials, BinanceOrderConfig, BinanceOrders};

/// Capacity of each feed → pricer ring (events).
const FEED_RING: usize = 16_384;
/// Capacity of the intent and fill rings.
const ORDER_RING: usize = 256;
/// Quantity step and minimum of Binance's BTCUSDT perpetual, BTC (its `LOT_SIZE` filter).
const BINANCE_BTC_LOT: f64 = 0.001;
/// Capacity of each trace ring to telemetry.
const TRACE_RING: usize = 16_384;
/// Levels asked for in a Binance depth snapshot: the kept book is
/// [`keel_engine::market::DEFAULT_DEPTH_LEVELS`] per side, and a snapshot of 1,000 costs Binance
/// weight 20 against 10 for 500.
const DEPTH_SNAPSHOT_LIMIT: u32 = 500;
/// How often time to expiry moves on (a full reprice), ms.
const TAU_REFRESH_MS: u64 = 1_000;
/// After a refused or failed on-chain hedge, the on-chain venue sits out this long, doubled for
/// each in a row up to 32× (the next decisions go to the next-cheapest venue).
const EVM_BACKOFF: Duration = Duration::from_secs(1);

/// Runs `keel run`.
pub fn run(args: &RunArgs) -> Result<()> {
    let cfg = resolve(args)?;
    let summary = run_config(&cfg, &mut std::io::stderr())?;
    if cfg.json {
        println!("{}", summary_json(&summary));
    } else {
        print!("{}", summary_table(&summary));
    }
    Ok(())
}

/// What the run was built from, kept for the summary.
struct Built {
    threads: Vec<TileThread>,
    pricer: Arc<PricerStats>,
    feeds: Vec<Arc<FeedCounters>>,
    exec: Arc<ExecCounters>,
    telemetry: TelemetryHandle,
    topology: Topology,
    book_rows: usize,
    /// Delta-hedge instruments whose books are tracked.
    depth_books: usize,
    held: usize,
    venues: Vec<&'static str>,
    dry_run: bool,
    exec_target: String,
    /// Start-up reconciliation with the venue, if orders go to one with credentials.
    reconciled: Option<report::Reconciled>,
    /// Looks at the halt file every 50 ms (off the hot path) until the stop flag.
    kill_watch: Option<std::thread::JoinHandle<()>>,
    /// The on-chain hedge venue (`--alt-hedge evm`): signer thread, embedded node.
    evm: Option<evm::EvmVenue>,
    /// Hyperliquid (`--alt-hedge hyperliquid`): signer thread, account.
    hyperliquid: Option<hyperliquid::HlVenue>,
}

/// Wraps every tile before it is spawned (tests count allocations on tile threads with it).
pub type TileWrap<'a> = &'a dyn Fn(Box<dyn Tile>) -> Box<dyn Tile>;

/// A running pipeline (and the embedded simulated venue, if any).
pub struct Running {
    built: Built,
    sim: Option<SimHandle>,
    stop: StopFlag,
    started: Instant,
}

impl Running {
    /// The pricer's published figures.
    pub fn pricer(&self) -> &PricerStats {
        &self.built.pricer
    }
    /// The exec tile's counters.
    pub fn exec(&self) -> &ExecCounters {
        &self.built.exec
    }
    /// The embedded simulated venue, if any.
    pub fn sim(&self) -> Option<&SimHandle> {
        self.sim.as_ref()
    }
    /// The embedded mock Ethereum node (`--alt-hedge evm` without `--evm-rpc-url`), if any.
    pub fn evm_node(&self) -> Option<&crate::sim::node::NodeHandle> {
        self.built.evm.as_ref().and_then(|e| e.node.as_ref())
    }
    /// Hyperliquid as a hedge venue (`--alt-hedge hyperliquid`), if configured.
    pub fn hyperliquid(&self) -> Option<&hyperliquid::HlVenue> {
        self.built.hyperliquid.as_ref()
    }
    /// The shared stop flag (Ctrl-C raises it).
    pub fn stop_flag(&self) -> &StopFlag {
        &self.stop
    }
    /// The telemetry tile's published latencies (and, after [`Self::finish`], the hedge log of
    /// [`start_on`]).
    pub fn telemetry(&self) -> &TelemetryHandle {
        &self.built.telemetry
    }
    /// One line saying what runs where.
    pub fn banner(&self) -> String {
        let b = &self.built;
        format!(
            "keel run: {} topology on {} cores; book {} options ({} held); venues {}; {}",
            b.topology.name(),
            available_cores().len(),
            b.book_rows,
            b.held,
            b.venues.join(","),
            if b.dry_run {
                format!("dry run, orders to {}", b.exec_target)
            } else {
                format!("LIVE orders to {}", b.exec_target)
            }
        ) + &match &b.evm {
            Some(e) => format!(
                "; on chain: {} ({} routes{}{})",
                if !e.live {
                    "paper".to_string()
                } else if e.node.is_some() {
                    "embedded mock node".to_string()
                } else {
                    e.routes
                        .first()
                        .map(|r| r.url.to_string())
                        .unwrap_or_default()
                },
                e.routes.len(),
                e.nonce_start
                    .map(|n| format!(", nonce {n}"))
                    .unwrap_or_default(),
                e.eth_usd
                    .map(|p| format!(", gas at ETH/USD {p}"))
                    .unwrap_or_else(|| ", gas at the index".to_string()),
            ),
            None => String::new(),
        } + &match &b.hyperliquid {
            Some(h) => format!(
                "; hyperliquid {}: {} (account {:#x}, position {})",
                h.coin,
                if h.live { h.ws_url.as_str() } else { "paper" },
                h.account,
                h.position
            ),
            None => String::new(),
        } + &match &b.reconciled {
            Some(r) => format!(
                "; reconciled with the venue: {} positions, {} open orders, {} differences from \
                 the positions file",
                r.positions,
                r.open_orders,
                r.differences.len()
            ),
            None => String::new(),
        }
    }

    /// Stops every tile, waits for them, stops the simulated venue, and returns the summary.
    pub fn finish(mut self) -> Result<Summary> {
        self.stop.stop();
        let b = self.built;
        let mut summary = Summary::new(
            b.topology.name(),
            available_cores().len(),
            b.book_rows,
            b.held,
        );
        summary.elapsed = self.started.elapsed();
        summary.depth_books.0 = b.depth_books;
        summary.reconciled = b.reconciled.clone();
        let mut errors = Vec::new();
        if let Some(w) = b.kill_watch {
            let _ = w.join();
        }
        for t in b.threads {
            let names = t.names().to_string();
            if let Err(e) = t.join() {
                errors.push(format!("{names}: {e}"));
            }
        }
        // After the tiles stopped: every counter is final.
        summary.fill_final(&b.pricer, &b.feeds, &b.exec, &b.telemetry);
        // The exec tile is joined: the signer thread stops and the final nonce is read.
        summary.evm = b.evm.map(evm::EvmVenue::finish);
        summary.hyperliquid = b.hyperliquid.map(hyperliquid::HlVenue::finish);
        if let Some(s) = self.sim.as_mut() {
            summary.sim_orders = Some(s.stats());
            s.stop();
        }
        if let Some(e) = errors.first() {
            bail!("pipeline thread failed: {e}");
        }
        Ok(summary)
    }
}

/// Starts the simulated venue (if no venue is configured), builds the pipeline for `cfg` and
/// spawns its threads; returns at once.
pub fn start(cfg: &RunConfig, wrap: Option<TileWrap<'_>>) -> Result<Running> {
    let stop = StopFlag::new();
    let sim = start_sim(cfg)?;
    let started = Instant::now();
    let built = build(cfg, sim.as_ref(), &stop, wrap, 0)?;
    Ok(Running {
        built,
        sim,
        stop,
        started,
    })
}

/// Like [`start`] on a simulated venue the caller started and keeps (`keel-bench e2e`: it
/// configures the stream, connects its rival to the same venue and reads the venue's order
/// receipts after the run); `cfg.sim` is ignored. `hedge_log` > 0 keeps the whole trace of that
/// many sent hedges ([`TelemetryHandle::hedge_traces`] after [`Running::finish`]).
pub fn start_on(
    cfg: &RunConfig,
    sim: &SimHandle,
    wrap: Option<TileWrap<'_>>,
    hedge_log: usize,
) -> Result<Running> {
    let stop = StopFlag::new();
    let started = Instant::now();
    let built = build(cfg, Some(sim), &stop, wrap, hedge_log)?;
    Ok(Running {
        built,
        sim: None,
        stop,
        started,
    })
}

/// Builds and runs the pipeline for `cfg`, writing the live status to `status`, until
/// `--duration` or Ctrl-C; returns the summary.
pub fn run_config(cfg: &RunConfig, status: &mut dyn std::io::Write) -> Result<Summary> {
    let running = start(cfg, None)?;
    {
        let stop = running.stop.clone();
        // Ctrl-C stops the run; the summary follows. (Only one handler per process: a second
        // run in the same process keeps the first handler, which is harmless here.)
        let _ = ctrlc::set_handler(move || stop.stop());
    }
    let _ = writeln!(status, "{}", running.banner());
    status_loop(cfg, &running.built, &running.stop, running.started, status);
    running.finish()
}

fn start_sim(cfg: &RunConfig) -> Result<Option<SimHandle>> {
    if !cfg.uses_sim() {
        return Ok(None);
    }
    let s = &cfg.sim;
    // The simulated account requires credentials, as Deribit does: fresh random ones per run,
    // so the order session's authentication and the start-up reconciliation run for real.
    let mut secret = [0u8; 24];
    keel_feeds::net::rand::os_random_bytes(&mut secret);
    let mut binance_secret = [0u8; 32];
    keel_feeds::net::rand::os_random_bytes(&mut binance_secret);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let order_api = OrderApiConfig {
        binance_account: Some(BinanceAccount::new(
            &format!("keelrun{:016x}", keel_feeds::net::rand::os_seed()),
            hex(&binance_secret).as_bytes(),
        )),
        ..OrderApiConfig::default()
    };
    let sc = SimConfig {
        order_api,
        listen: "127.0.0.1:0".parse().expect("literal address"),
        deribit_credentials: Some(SimCredentials {
            client_id: format!("keel-run-{:08x}", keel_feeds::net::rand::os_seed() as u32),
            client_secret: hex(&secret),
        }),
        seed: s.seed,
        rate: s.rate,
        options: s.options,
        faults: Faults {
            drop_after_messages: s.drop_every_msgs,
            malformed_rate: s.malformed_rate,
            silent_after: s.silent_after,
            delay: s.delay_ms.map(Duration::from_millis),
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    Ok(Some(
        SimVenue::start(sc).context("starting the embedded keel-sim")?,
    ))
}

fn build(
    cfg: &RunConfig,
    sim: Option<&SimHandle>,
    stop: &StopFlag,
    wrap: Option<TileWrap<'_>>,
    hedge_log: usize,
) -> Result<Built> {
    let underlying = cfg.underlying.to_ascii_uppercase();
    let deribit_url = match sim {
        Some(s) => s.deribit_url(),
        None => match (&cfg.deribit.url, cfg.deribit.enabled) {
            (Some(u), true) => u.clone(),
            _ => bail!(
                "keel run needs Deribit for the options book in this version: give --deribit-url \
                 (or no venue flag at all to run on the embedded simulated venue)"
            ),
        },
    };
    let ca = if sim.is_some() {
        None
    } else {
        cfg.deribit.ca_file.clone()
    };
    let timeout = Duration::from_millis(cfg.deribit.timeout_ms.max(1000) * 5);
    let listed = fetch_deribit(&deribit_url, ca.clone(), &underlying, timeout)?;

    let mut instruments = Instruments::new();
    for i in &listed {
        instruments.insert(i.clone());
    }
    let hedge_name = cfg
        .hedge_instrument
        .clone()
        .unwrap_or_else(|| format!("{underlying}-PERPETUAL"));
    let Some(hedge_id) = instruments.id(Venue::Deribit, hedge_name.as_bytes()) else {
        bail!("--hedge-instrument {hedge_name}: not listed by {deribit_url}");
    };
    let hedge_inst = instruments
        .get(hedge_id)
        .cloned()
        .context("hedge instrument")?;
    if !matches!(
        hedge_inst.kind,
        InstrumentKind::Perpetual | InstrumentKind::Future
    ) {
        bail!("--hedge-instrument {hedge_name}: must be a perpetual or a future");
    }

    // Other venues' instruments (their feeds are connected and counted).
    let others: Vec<(&'static str, &VenueConfig)> = cfg
        .enabled_venues()
        .into_iter()
        .filter(|(n, _)| *n != "deribit")
        .collect();
    for (name, v) in &others {
        let venue = venue_of(name);
        if venue != Venue::Ethereum && v.instruments.is_empty() {
            bail!("--{name}-instruments: give at least one symbol for --{name}-url");
        }
        for s in &v.instruments {
            register(&mut instruments, venue, s.trim(), false);
        }
    }
    // Alternative delta-hedge instruments (Binance USDⓈ-M perpetuals): their quotes come from the
    // Binance feed (the embedded venue's, or --binance-url's, which must then be enabled).
    let binance_enabled = others.iter().any(|(n, _)| *n == "binance");
    let binance_alts: Vec<(String, String)> = cfg
        .alt_hedges
        .iter()
        .filter(|(v, _)| v == "binance")
        .cloned()
        .collect();
    let mut alt_ids = Vec::with_capacity(binance_alts.len());
    for (venue, symbol) in &binance_alts {
        if sim.is_none() && !binance_enabled {
            bail!("--alt-hedge {venue}:{symbol}: needs the Binance feed (--binance-url)");
        }
        alt_ids.push(register(&mut instruments, Venue::Binance, symbol, false));
    }
    // Hyperliquid (`--alt-hedge hyperliquid[:COIN]`): the coin's perpetual, linear, in coin.
    let hl_coin: Option<String> = cfg
        .alt_hedges
        .iter()
        .find(|(v, _)| v == "hyperliquid" && cfg.hyperliquid.enabled)
        .map(|(_, c)| {
            if c.is_empty() {
                underlying.clone()
            } else {
                c.clone()
            }
        });
    let hl_id = hl_coin
        .as_deref()
        .map(|c| register(&mut instruments, Venue::Hyperliquid, c, false));

    let mut market = MarketState::new(
        &instruments,
        &underlying,
        Some(hedge_id),
        MarketConfig {
            stale_after_ns: cfg.stale_after.as_nanos() as u64,
        },
    )
    .with_context(|| format!("--underlying {underlying}"))?;
    market.set_alt_hedges(&alt_ids.iter().copied().chain(hl_id).collect::<Vec<_>>());
    // The on-chain venue: its position is booked under an instrument of its own (linear, coin).
    let evm_on = cfg.alt_hedges.iter().any(|(v, _)| v == "evm");
    let chain_inst = evm_on.then(|| {
        register(
            &mut instruments,
            Venue::Ethereum,
            &format!("{underlying}-ONCHAIN"),
            false,
        )
    });

    // Positions: the file (or, on the simulated venue, the sample book the simulated account
    // is given); then, whenever orders go to a venue with credentials, the venue's own account
    // before the first hedge (it wins; differences are reported).
    let file_positions: Option<Vec<(String, f64)>> = match &cfg.positions {
        Some(path) => Some(
            load_positions(path)?
                .into_iter()
                .map(|p| (p.instrument, p.quantity))
                .collect(),
        ),
        None if sim.is_some() => Some(sample_book(&listed, &underlying, cfg.sim.seed)),
        None => None,
    };
    let dry_run = cfg.dry_run() || sim.is_some();
    let credentials: Option<Credentials> = match sim {
        Some(s) => s.deribit_credentials().map(|c| Credentials {
            client_id: c.client_id.clone(),
            client_secret: zeroize::Zeroizing::new(c.client_secret.clone()),
        }),
        None if !dry_run => Some(read_credentials(&cfg.deribit)?),
        None => None,
    };
    if let (Some(s), Some(file)) = (sim, &file_positions) {
        for (name, q) in file {
            s.seed_position(name, *q)
                .with_context(|| format!("giving the simulated account its position in {name}"))?;
        }
    }
    let (positions, reconciled) = match (&credentials, file_positions) {
        (Some(c), file) => {
            let acct = reconcile::fetch(&deribit_url, c, &underlying, ca.clone(), timeout)?;
            let diffs = file
                .as_deref()
                .map(|f| reconcile::differences(f, &acct.positions))
                .unwrap_or_default();
            let positions = acct.positions.clone();
            (
                positions,
                Some(report::Reconciled {
                    positions: acct.positions.len(),
                    open_orders: acct.open_orders.len(),
                    differences: diffs,
                    alt_positions: Vec::new(),
                }),
            )
        }
        (None, Some(file)) => (file, None),
        (None, None) => bail!(
            "--positions FILE is required for a dry run against a real venue (with --live and \
             keys, positions are read from the venue)"
        ),
    };
    let mut resolved = Vec::with_capacity(positions.len());
    for (name, q) in &positions {
        let Some(id) = instruments.id(Venue::Deribit, name.as_bytes()) else {
            bail!(
                "position in {name}: not listed by {deribit_url}{}",
                cfg.positions
                    .as_ref()
                    .map(|p| format!(" (positions file {})", p.display()))
                    .unwrap_or_default()
            );
        };
        resolved.push((id, name.clone(), *q));
    }
    // The alternative hedges' positions, from Binance itself when orders go there.
    let binance = if alt_ids.is_empty() {
        None
    } else {
        binance_route(cfg, sim)?
    };
    let mut alt_positions = Vec::new();
    if let Some(route) = &binance {
        for ((_, symbol), &id) in binance_alts.iter().zip(&alt_ids) {
            let q = reconcile::fetch_binance_position(
                &route.rest_base,
                &route.creds,
                symbol,
                route.ca.clone(),
                timeout,
            )?;
            if q != 0.0 {
                resolved.push((id, symbol.clone(), q));
            }
            alt_positions.push((format!("binance:{symbol}"), q));
        }
    }
    // Hyperliquid: keys, the account's position (clearinghouseState) and the first ladder,
    // before the first hedge.
    let hl_venue = match &hl_coin {
        Some(c) => Some(hyperliquid::HlVenue::start(cfg, c, sim, timeout)?),
        None => None,
    };
    if let (Some(v), Some(id)) = (&hl_venue, hl_id) {
        if v.position != 0.0 {
            resolved.push((id, v.coin.clone(), v.position));
        }
        alt_positions.push((format!("hyperliquid:{}", v.coin), v.position));
    }
    let reconciled = match (reconciled, alt_positions.is_empty()) {
        (Some(mut r), false) => {
            r.alt_positions = alt_positions;
            Some(r)
        }
        (r, _) => r,
    };
    let book = Book::new(
        &market,
        &resolved,
        &std::iter::once((hedge_id, hedge_inst.inverse))
            .chain(alt_ids.iter().map(|&id| (id, false)))
            .chain(hl_id.map(|id| (id, false)))
            .chain(chain_inst.map(|id| (id, false)))
            .collect::<Vec<_>>(),
        TAU_REFRESH_MS,
    )
    .context("building the book")?
    .with_reprice(
        cfg.reprice
            .parse::<keel_engine::book::Reprice>()
            .map_err(|e| anyhow::anyhow!("--reprice: {e}"))?,
    );
    let book_rows = book.len();
    let held = book.held_rows().len();

    // Kill switch: the halt file (looked at now, before any order, then by the status loop)
    // and SIGUSR1; a halt asks the exec tile to cancel everything resting.
    let kill = KillFlags::new();
    let mut kill_file = KillFile::new(cfg.halt_file.clone(), DEFAULT_POLL_EVERY, kill.clone());
    kill_file.poll(clock::now_ns());
    kill.register_sigusr1()
        .context("registering SIGUSR1 (the kill switch signal)")?;
    let cancel_all = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let kill_watch = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("keel-halt-watch".into())
            .spawn(move || {
                while !stop.is_stopped() {
                    kill_file.poll(clock::now_ns());
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
            .context("spawning the halt-file watcher")?
    };

    let options =
        if cfg.gamma_band.is_some() || cfg.vega_band.is_some() || cfg.vega_bucket_band.is_some() {
            let liquid = liquid_rows(cfg, &market, &instruments)?;
            if liquid.is_empty() {
                bail!(
                    "--gamma-band/--vega-band/--vega-bucket-band: no liquid option to hedge with \
                 (give --liquid)"
                );
            }
            Some(OptionHedging {
                gamma: cfg.gamma_band.map(|b| Band {
                    target: cfg.gamma_target,
                    half_width: b,
                }),
                vega: cfg.vega_band.map(|b| Band {
                    target: cfg.vega_target,
                    half_width: b,
                }),
                bucket_vega: cfg.vega_bucket_band.map(|b| Band {
                    target: 0.0,
                    half_width: b,
                }),
                liquid,
                // One option order is never larger than the whole book (contracts).
                max_contracts: resolved
                    .iter()
                    .filter(|(id, _, _)| market.row_of(*id).is_some())
                    .map(|(_, _, q)| q.abs())
                    .sum::<f64>()
                    .max(1.0),
                fee: keel_engine::policy::cost::FeeRule::DERIBIT_OPTION,
            })
        } else {
            None
        };

    // Rings.
    let (intent_tx, intent_rx) = ring(ORDER_RING)?;
    let (fill_tx, fill_rx) = ring(ORDER_RING)?;
    let (trace_tx, trace_rx) = ring(TRACE_RING)?;

    // Feeds: one loop per pin group; Deribit first.
    let stale = Duration::from_secs_f64((cfg.stale_after.as_secs_f64() * 3.0).max(5.0));
    let mut groups: Vec<(Option<usize>, FeedLoop, Vec<&'static str>)> = Vec::new();
    let deribit_pin = cfg.deribit.pin;
    let mut add_conn = |pin: Option<usize>,
                        name: &'static str,
                        url: &str,
                        ca: Option<std::path::PathBuf>,
                        session: VenueSession,
                        stale: Duration|
     -> Result<()> {
        let mut c = ConnectionConfig::new(url).with_context(|| format!("--{name}-url {url}"))?;
        c.ca_file = ca;
        c.stale_after = Some(stale);
        let g = match groups.iter().position(|(p, _, _)| *p == pin) {
            Some(i) => i,
            None => {
                groups.push((pin, FeedLoop::new().context("feed loop")?, Vec::new()));
                groups.len() - 1
            }
        };
        groups[g]
            .1
            .add(c, Box::new(session))
            .with_context(|| format!("--{name}-url {url}"))?;
        groups[g].2.push(name);
        Ok(())
    };
    // A Binance session carrying alternative hedges keeps their depth books (stream + REST
    // snapshot, Binance's documented procedure) for the cost model.
    let binance_session = |url: &str, ca: Option<std::path::PathBuf>| {
        VenueSession::binance_builder(&instruments, BinanceMarket::UsdmFutures)
            .depth(true)
            .depth_limit(DEPTH_SNAPSHOT_LIMIT)
            .ws_url(url)
            .ca_file(ca)
            .build()
            .with_context(|| format!("--binance-url {url}: depth books"))
    };
    // Deribit: every listed instrument of the underlying, or with --deribit-instruments only
    // those plus what the book needs (held options, the hedge, the index, the liquid set).
    let wanted: Vec<&str> = cfg.deribit.instruments.iter().map(String::as_str).collect();
    for w in &wanted {
        if instruments.id(Venue::Deribit, w.as_bytes()).is_none() {
            bail!("--deribit-instruments {w}: not listed by {deribit_url}");
        }
    }
    let needed: Vec<InstrumentId> = resolved
        .iter()
        .map(|(id, _, _)| *id)
        .chain([hedge_id])
        .chain(
            options
                .iter()
                .flat_map(|o| o.liquid.iter().map(|&r| market.options()[r].id)),
        )
        .collect();
    // The hedge instruments' books (Deribit `book.*.100ms` for the perpetual and the liquid
    // options, Binance depth on its REST snapshot), walked by the cost model: the delta venue
    // for each hedge's size, and the gamma/vega legs' cost for theirs.
    let liquid_ids: Vec<InstrumentId> = options
        .iter()
        .flat_map(|o| o.liquid.iter().map(|&r| market.options()[r].id))
        .collect();
    let depth_ids: Vec<InstrumentId> = std::iter::once(hedge_id)
        .chain(alt_ids.iter().copied())
        .chain(hl_id)
        .chain(liquid_ids.iter().copied())
        .collect();
    market.track_depth(&depth_ids, keel_engine::market::DEFAULT_DEPTH_LEVELS);
    let subscribed = |id: InstrumentId, i: &keel_feeds::instrument::Instrument| {
        wanted.is_empty()
            || wanted.contains(&i.name.as_str())
            || needed.contains(&id)
            || i.kind == InstrumentKind::Index
    };
    // A large chain is spread over several connections, DERIBIT_CHANNELS_PER_CONNECTION each,
    // in listing order (the index and the hedge instrument on the first).
    let mut part = vec![u16::MAX; instruments.len()];
    let mut n = 0usize;
    for (id, i) in instruments.iter() {
        if i.venue == Venue::Deribit && subscribed(id, i) {
            let first = i.kind == InstrumentKind::Index || id == hedge_id;
            part[id.0 as usize] = if first {
                0
            } else {
                let p = n / keel_feeds::session::DERIBIT_CHANNELS_PER_CONNECTION;
                n += 1;
                u16::try_from(p).context("more than 65,535 Deribit connections")?
            };
        }
    }
    let parts = n
        .div_ceil(keel_feeds::session::DERIBIT_CHANNELS_PER_CONNECTION)
        .max(1);
    for k in 0..parts {
        let session = VenueSession::deribit_select(
            &instruments,
            &|id, _| part[id.0 as usize] == k as u16,
            &|id, _| id == hedge_id || liquid_ids.contains(&id),
        );
        add_conn(
            deribit_pin,
            "deribit",
            &deribit_url,
            ca.clone(),
            session,
            stale,
        )?;
    }
    if let (Some(s), false) = (sim, alt_ids.is_empty() || binance_enabled) {
        // The embedded venue's Binance streams carry the alternative hedges' quotes.
        let url = s.binance_url();
        add_conn(
            None,
            "binance",
            &url,
            None,
            binance_session(&url, None)?,
            stale,
        )?;
    }
    for (name, v) in &others {
        let venue = venue_of(name);
        let session = match venue {
            Venue::Binance if !alt_ids.is_empty() => {
                binance_session(v.url.as_deref().unwrap_or_default(), v.ca_file.clone())?
            }
            Venue::Binance => VenueSession::binance(&instruments, BinanceMarket::UsdmFutures),
            Venue::Okx => VenueSession::okx(&instruments),
            Venue::Bybit => VenueSession::bybit(&instruments),
            _ => VenueSession::ethereum(),
        };
        let url = v.url.clone().unwrap_or_default();
        add_conn(v.pin, name, &url, v.ca_file.clone(), session, stale)?;
    }
    // The on-chain venue's chain heads (newHeads): silent longer than a head may be old is
    // stale. Keys, nonce and the first ladders come first: no hedge is decided before them.
    let mut evm_venue = if evm_on {
        Some(evm::EvmVenue::start(cfg, timeout)?)
    } else {
        None
    };
    if let Some(e) = &evm_venue {
        add_conn(
            None,
            "evm",
            &e.ws_url,
            None,
            VenueSession::ethereum(),
            cfg.evm.head_stale_after,
        )
        .context("--evm-ws-url")?;
    }
    // Hyperliquid's l2Book (its quote and depth for the cost model).
    let mut hl_venue = hl_venue;
    if let Some(v) = &hl_venue {
        add_conn(
            None,
            "hyperliquid",
            &v.ws_url,
            None,
            VenueSession::hyperliquid(&instruments),
            stale,
        )
        .context("--hyperliquid-ws-url")?;
    }

    let mut feed_tiles = Vec::new();
    let mut feed_counters = Vec::new();
    let mut feed_rx = Vec::new();
    let mut venues = Vec::new();
    let mut conn_base = 0usize;
    for (pin, lp, names) in groups {
        let (tx, rx) = ring::<TickMsg>(FEED_RING)?;
        let base = u8::try_from(conn_base).context("more than 255 feed connections")?;
        conn_base += lp.len();
        let (tile, counters) = FeedTile::new(lp, tx, base);
        feed_tiles.push((pin, tile));
        feed_counters.push(counters);
        feed_rx.push(rx);
        for n in names {
            if !venues.contains(&n) {
                venues.push(n);
            }
        }
    }

    // With alternative hedge venues, a router on the exec thread sends each intent to its
    // venue's session and merges the fills: Deribit as below, Binance on paper at its quote
    // (a Binance order session comes with its adapter).
    let mut exec_extra: Vec<Box<dyn Tile>> = Vec::new();
    let (intent_rx, fill_tx) = if alt_ids.is_empty() && evm_venue.is_none() && hl_venue.is_none() {
        (intent_rx, fill_tx)
    } else {
        let (d_itx, d_irx) = ring(ORDER_RING)?;
        let (d_ftx, d_frx) = ring(ORDER_RING)?;
        let mut routes = vec![Route {
            venue: Venue::Deribit,
            intents: d_itx,
            fills: d_frx,
        }];
        let mut tiles: Vec<Box<dyn Tile>> = Vec::new();
        if !alt_ids.is_empty() {
            let (b_itx, b_irx) = ring(ORDER_RING)?;
            let (b_ftx, b_frx) = ring(ORDER_RING)?;
            routes.push(Route {
                venue: Venue::Binance,
                intents: b_itx,
                fills: b_frx,
            });
            tiles.push(binance_exec(
                cfg,
                binance.as_ref(),
                &binance_alts[0].1,
                b_irx,
                b_ftx,
            )?);
        }
        // The on-chain venue: Venue::Ethereum (the chain-head feed's venue id too; no other
        // order session uses it).
        if let Some(e) = evm_venue.as_mut() {
            let (e_itx, e_irx) = ring(ORDER_RING)?;
            let (e_ftx, e_frx) = ring(ORDER_RING)?;
            routes.push(Route {
                venue: Venue::Ethereum,
                intents: e_itx,
                fills: e_frx,
            });
            tiles.push(e.exec_tile(e_irx, e_ftx));
        }
        // Hyperliquid: its own venue id, its own order session.
        if let Some(h) = hl_venue.as_mut() {
            let (h_itx, h_irx) = ring(ORDER_RING)?;
            let (h_ftx, h_frx) = ring(ORDER_RING)?;
            routes.push(Route {
                venue: Venue::Hyperliquid,
                intents: h_itx,
                fills: h_frx,
            });
            tiles.push(h.exec_tile(h_irx, h_ftx)?);
        }
        exec_extra.push(Box::new(Router::new(intent_rx, fill_tx, routes)));
        exec_extra.extend(tiles);
        (d_irx, d_ftx)
    };
    // Exec: keel-sim's order endpoint, Deribit with keys and --live, or paper.
    let (exec_tile, exec_counters, exec_target): (Box<dyn Tile>, Arc<ExecCounters>, String) =
        if sim.is_some() || !dry_run {
            let mut names = vec![String::new(); instruments.len()];
            for (id, i) in instruments.iter() {
                names[id.0 as usize] = i.name.clone();
            }
            let orders = DeribitOrders::new(
                intent_rx,
                fill_tx,
                names,
                clock::now_ns() / 1_000_000_000,
                cfg.deribit.timeout_ms.max(1) * 1_000_000,
                credentials.clone(),
            )
            .with_cancel_all(cancel_all.clone());
            let mut c = ConnectionConfig::new(&deribit_url)
                .with_context(|| format!("--deribit-url {deribit_url}"))?;
            c.ca_file = ca.clone();
            c.stale_after = Some(Duration::from_secs(30));
            let (t, counters) = ExecTile::new(c, orders).map_err(|e| anyhow::anyhow!("{e}"))?;
            (Box::new(t), counters, deribit_url.clone())
        } else {
            let (t, counters) = PaperExec::new(intent_rx, fill_tx);
            (Box::new(t), counters, "paper".to_string())
        };

    let max_order_coin = cfg.deribit.max_order.unwrap_or(f64::INFINITY);
    let triggers = match &cfg.policy {
        Some(spec) => Some(
            keel_engine::policy::triggers::parse_policy(spec)
                .map_err(|e| anyhow::anyhow!("--policy {spec}: {e}"))?,
        ),
        None => None,
    };
    let pricer_cfg = PricerConfig {
        triggers,
        kappa: cfg.deribit.fee_bps / 1e4,
        risk: RiskLimits {
            max_order_coin: cfg.deribit.max_order.unwrap_or(f64::INFINITY),
            max_position_coin: cfg.max_position_coin.unwrap_or(f64::INFINITY),
            max_notional_per_min_usd: cfg.max_notional_per_min.unwrap_or(f64::INFINITY),
            max_hedges_per_min: cfg.max_hedges_per_min,
            daily_loss_stop_usd: cfg.daily_loss_stop.unwrap_or(f64::INFINITY),
            max_consecutive_rejects: cfg.max_consecutive_rejects,
        },
        kill: kill.clone(),
        cancel_all: cancel_all.clone(),
        index_guard: IndexConfig::default(),
        index_stale_ns: cfg.stale_after.as_nanos() as u64,
        iv_guard: IvLimits::default(),
        options,
        policy: DeltaBand {
            target: cfg.delta_target,
            band: cfg.delta_band,
        },
        hedge: HedgeSpec {
            inverse: hedge_inst.inverse,
            lot: if hedge_inst.contract_size > 0.0 {
                hedge_inst.contract_size
            } else {
                1.0
            },
            min_amount: hedge_inst.min_size,
            max_order_coin,
        },
        hedge_instrument: hedge_id,
        hedge_venue: Venue::Deribit,
        min_hedge_interval_ns: rate_interval_ns(cfg.deribit.rate_limit),
        alt_hedges: alt_ids
            .iter()
            .map(|&id| AltHedge {
                instrument: id,
                venue: Venue::Binance,
                spec: HedgeSpec {
                    inverse: false,
                    lot: BINANCE_BTC_LOT,
                    min_amount: BINANCE_BTC_LOT,
                    max_order_coin: cfg.binance.max_order.unwrap_or(f64::INFINITY),
                },
                fee: cfg.binance.fee_bps / 1e4,
                rungs: 0,
            })
            .chain(hl_venue.as_ref().zip(hl_id).map(|(v, id)| {
                AltHedge {
                    instrument: id,
                    venue: Venue::Hyperliquid,
                    spec: HedgeSpec {
                        inverse: false,
                        lot: cfg.hyperliquid.lot,
                        min_amount: cfg.hyperliquid.lot,
                        max_order_coin: cfg
                            .hyperliquid
                            .max_order
                            .unwrap_or(f64::INFINITY)
                            .min(v.largest_rung),
                    },
                    fee: cfg.hyperliquid.fee_bps / 1e4,
                    rungs: cfg.hyperliquid.rungs,
                }
            }))
            .collect(),
        chain_hedge: match (&evm_venue, chain_inst) {
            (Some(e), Some(instrument)) => Some(ChainHedge {
                instrument,
                venue: Venue::Ethereum,
                lot_coin: cfg.evm.lot,
                rungs: cfg.evm.rungs,
                max_order_coin: cfg
                    .evm
                    .max_order
                    .unwrap_or(f64::INFINITY)
                    .min(max_order_coin),
                fee: cfg.evm.fee_bps / 1e4,
                gas: GasSpec {
                    gas_units: cfg.evm.gas_limit,
                    priority_fee_wei: (cfg.evm.priority_fee_gwei * 1e9).round() as u64,
                },
                eth_usd: e.eth_usd,
                head_max_age_ns: cfg.evm.head_stale_after.as_nanos() as u64,
                backoff_ns: EVM_BACKOFF.as_nanos() as u64,
            }),
            _ => None,
        },
    };
    let rings = PricerRings {
        inputs: feed_rx,
        intents: intent_tx,
        fills: fill_rx,
        traces: trace_tx,
    };
    let (pricer, pricer_stats) =
        PricerTile::new(market, book, pricer_cfg, rings).context("risk limits")?;
    let (telemetry, telemetry_handle) =
        TelemetryTile::new(vec![trace_rx], Duration::from_millis(250));
    let telemetry = telemetry.with_hedge_log(hedge_log);

    // The signer thread runs for the whole run (stopped by the stop flag, joined in finish).
    if let Some(e) = evm_venue.as_mut() {
        e.spawn_signer(stop)?;
    }
    if let Some(h) = hl_venue.as_mut() {
        h.spawn_signer(stop)?;
    }

    // Threads.
    let cores = available_cores();
    let topology = match &cfg.topology {
        Some(t) => t
            .parse::<Topology>()
            .map_err(|e| anyhow::anyhow!("--topology: {e}"))?,
        None => Topology::default_for(cores.len()),
    };
    let pin: PinMap = match &cfg.pin {
        Some(p) => p.parse().map_err(|e| anyhow::anyhow!("--pin: {e}"))?,
        None => PinMap::default(),
    };
    pin.validate(&cores)
        .map_err(|e| anyhow::anyhow!("--pin: {e}"))?;
    let wait: WaitMap = match &cfg.wait {
        Some(w) => w.parse().map_err(|e| anyhow::anyhow!("--wait: {e}"))?,
        None => WaitMap::default(),
    };
    let policy = if cfg.dev {
        PinPolicy::WarnOnly
    } else {
        PinPolicy::Required
    };
    let mut threads = Vec::new();
    let mut feed_iter = feed_tiles.into_iter();
    let spec = |core: Option<usize>, w: WaitStrategy| TileSpec { core, wait: w };
    let wrapped = |t: Box<dyn Tile>| -> Box<dyn Tile> {
        match wrap {
            Some(f) => f(t),
            None => t,
        }
    };
    let mut pricer_box: Option<Box<dyn Tile>> = Some(Box::new(pricer));
    // The exec thread's tiles: the order session, and with alternative venues the router and
    // their sessions.
    let mut exec_box: Option<Vec<Box<dyn Tile>>> =
        Some(std::iter::once(exec_tile).chain(exec_extra).collect());
    if matches!(topology, Topology::Fused | Topology::Single)
        && let Some((vpin, first)) = feed_iter.next()
    {
        let core = vpin.or(pin.feed).or(pin.pricer);
        let mut tiles: Vec<Box<dyn Tile>> = vec![
            wrapped(Box::new(first)),
            wrapped(pricer_box.take().expect("pricer once")),
        ];
        if topology == Topology::Single {
            tiles.extend(exec_box.take().expect("exec once").into_iter().map(wrapped));
        }
        threads.push(spawn(tiles, spec(core, wait.feed), policy, stop.clone())?);
    }
    for (vpin, t) in feed_iter {
        let core = vpin.or(pin.feed);
        threads.push(spawn(
            vec![wrapped(Box::new(t))],
            spec(core, wait.feed),
            policy,
            stop.clone(),
        )?);
    }
    if let Some(p) = pricer_box {
        threads.push(spawn(
            vec![wrapped(p)],
            spec(pin.pricer, wait.pricer),
            policy,
            stop.clone(),
        )?);
    }
    if let Some(e) = exec_box {
        threads.push(spawn(
            e.into_iter().map(wrapped).collect(),
            spec(pin.exec, wait.exec),
            policy,
            stop.clone(),
        )?);
    }
    threads.push(spawn(
        vec![Box::new(telemetry)],
        spec(pin.telemetry, wait.telemetry),
        policy,
        stop.clone(),
    )?);
    Ok(Built {
        threads,
        pricer: pricer_stats,
        feeds: feed_counters,
        exec: exec_counters,
        telemetry: telemetry_handle,
        topology,
        book_rows,
        depth_books: depth_ids.len(),
        held,
        venues,
        dry_run,
        exec_target,
        reconciled,
        kill_watch: Some(kill_watch),
        evm: evm_venue,
        hyperliquid: hl_venue,
    })
}

/// Book rows of the options the gamma/vega hedge may trade: `--liquid`, or the call and the
/// put at the middle strike of every expiry 7 to 120 days out.
fn liquid_rows(
    cfg: &RunConfig,
    market: &MarketState,
    instruments: &Instruments,
) -> Result<Vec<usize>> {
    if !cfg.liquid.is_empty() {
        return cfg
            .liquid
            .iter()
            .map(|n| {
                instruments
                    .id(Venue::Deribit, n.as_bytes())
                    .and_then(|id| market.row_of(id))
                    .with_context(|| {
                        format!("--liquid {n}: not a listed option of {}", cfg.underlying)
                    })
            })
            .collect();
    }
    let now_ms = clock::now_ns() / 1_000_000;
    let day = 86_400_000u64;
    let mut rows = Vec::new();
    for (e, x) in market.expiries().iter().enumerate() {
        if x.ms < now_ms + 7 * day || x.ms > now_ms + 120 * day {
            continue;
        }
        let of: Vec<usize> = market
            .options()
            .iter()
            .enumerate()
            .filter(|(_, o)| o.expiry as usize == e)
            .map(|(r, _)| r)
            .collect();
        // Rows are by strike, call before put: the middle pair.
        let mid = (of.len() / 2) & !1;
        rows.extend(of.iter().skip(mid).take(2));
    }
    Ok(rows)
}

/// The risk state the pricer published.
pub fn risk_state(p: &PricerStats) -> RiskState {
    match p.risk_state.load(Ordering::Relaxed) {
        0 => RiskState::Active,
        1 => RiskState::Reducing,
        _ => RiskState::Halted,
    }
}

fn venue_of(name: &str) -> Venue {
    match name {
        "binance" => Venue::Binance,
        "okx" => Venue::Okx,
        "bybit" => Venue::Bybit,
        "eth" => Venue::Ethereum,
        "hyperliquid" => Venue::Hyperliquid,
        _ => Venue::Deribit,
    }
}

/// Binance's USDⓈ-M WebSocket API, where live orders go.
const BINANCE_WS_API: &str = "wss://ws-fapi.binance.com/ws-fapi/v1";
/// Binance's USDⓈ-M REST API (start-up reconciliation).
const BINANCE_REST: &str = "https://fapi.binance.com";

/// Where Binance orders go, and with which account: the embedded venue's WebSocket API with
/// its account, or Binance's with `--live` and `--binance-key-env`/`--binance-secret-env`;
/// `None`: paper fills at the quote.
struct BinanceRoute {
    ws_url: String,
    rest_base: String,
    creds: BinanceCredentials,
    ca: Option<std::path::PathBuf>,
}

fn binance_route(cfg: &RunConfig, sim: Option<&SimHandle>) -> Result<Option<BinanceRoute>> {
    Ok(match sim {
        Some(s) => match s.binance_account() {
            Some(a) => Some(BinanceRoute {
                ws_url: s.binance_api_url(),
                rest_base: format!("http://{}", s.addr()),
                creds: BinanceCredentials::new(
                    &a.api_key,
                    &a.secret,
                    "the embedded venue's account",
                )
                .map_err(|e| anyhow::anyhow!("{e}"))?,
                ca: None,
            }),
            None => None,
        },
        None if cfg.live && cfg.binance.keys_present() => {
            let (k, s) = (
                cfg.binance.key_env.as_deref().unwrap_or_default(),
                cfg.binance.secret_env.as_deref().unwrap_or_default(),
            );
            Some(BinanceRoute {
                ws_url: BINANCE_WS_API.to_string(),
                rest_base: BINANCE_REST.to_string(),
                creds: BinanceCredentials::from_env(k, s)
                    .map_err(|e| anyhow::anyhow!("--binance-key-env/--binance-secret-env: {e}"))?,
                ca: cfg.binance.ca_file.clone(),
            })
        }
        None => None,
    })
}

/// The exec tile of the Binance route (paper fills at the quote without one).
fn binance_exec(
    cfg: &RunConfig,
    route: Option<&BinanceRoute>,
    symbol: &str,
    intents: keel_engine::pipeline::ring::Consumer<keel_engine::exec::HedgeIntent>,
    fills: keel_engine::pipeline::ring::Producer<keel_engine::exec::Fill>,
) -> Result<Box<dyn Tile>> {
    let Some(route) = route else {
        return Ok(Box::new(PaperExec::new(intents, fills).0));
    };
    let orders = BinanceOrders::new(
        intents,
        fills,
        &route.creds,
        BinanceOrderConfig {
            symbol: symbol.to_string(),
            qty_decimals: 3,
            recv_window_ms: 5_000,
            run_tag: clock::now_ns() / 1_000_000_000,
            timeout_ns: cfg.binance.timeout_ms.max(1) * 1_000_000,
        },
    )
    .map_err(|e| anyhow::anyhow!("Binance order session for {symbol}: {e}"))?;
    let url = &route.ws_url;
    let mut c = ConnectionConfig::new(url).with_context(|| format!("Binance orders at {url}"))?;
    c.ca_file = route.ca.clone();
    c.stale_after = Some(Duration::from_secs(30));
    let (t, _) = ExecTile::new(c, orders).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Box::new(t))
}

/// At most `rate` hedges per second (none given: 10 per second).
fn rate_interval_ns(rate: Option<u32>) -> u64 {
    1_000_000_000 / u64::from(rate.unwrap_or(10).max(1))
}

fn read_credentials(v: &VenueConfig) -> Result<Credentials> {
    let get = |flag: &str, name: &Option<String>| -> Result<String> {
        let Some(n) = name else {
            bail!("--deribit-{flag} NAME is needed for --live");
        };
        match std::env::var(n) {
            Ok(s) if !s.is_empty() => Ok(s),
            _ => bail!("--deribit-{flag} {n}: the environment variable is not set"),
        }
    };
    Ok(Credentials {
        client_id: get("key-env", &v.key_env)?,
        client_secret: zeroize::Zeroizing::new(get("secret-env", &v.secret_env)?),
    })
}

/// The status line every `status_every`, until `--duration`, Ctrl-C or a tile thread ending.
fn status_loop(
    cfg: &RunConfig,
    b: &Built,
    stop: &StopFlag,
    started: Instant,
    out: &mut dyn std::io::Write,
) {
    let tick = Duration::from_millis(50);
    let mut next_status = started + cfg.status_every;
    let mut last_ticks = 0u64;
    let mut last_reprices = 0u64;
    let mut last_at = started;
    let mut signer_warned = false;
    let mut hl_signer_warned = false;
    loop {
        if stop.is_stopped() {
            break;
        }
        let now = Instant::now();
        if cfg
            .duration
            .is_some_and(|d| now.duration_since(started) >= d)
        {
            break;
        }
        if b.threads.iter().any(TileThread::is_finished) {
            // A tile thread ended by itself (init failure, pin failure): stop the others; the
            // error comes from join.
            break;
        }
        if !hl_signer_warned && b.hyperliquid.as_ref().is_some_and(|h| !h.signer_running()) {
            hl_signer_warned = true;
            let _ = writeln!(
                out,
                "hyperliquid: the ladder signer thread stopped; its rungs age past \
                 --hyperliquid-nonce-max-age and are refused from then on (never sent)"
            );
        }
        if !signer_warned && b.evm.as_ref().is_some_and(|e| !e.signer_running()) {
            signer_warned = true;
            let _ = writeln!(
                out,
                "on chain: the ladder signer thread stopped; on-chain hedges are refused from now \
                 on (stale ladders) and go to the other venues"
            );
        }
        if !cfg.status_every.is_zero() && now >= next_status {
            let p = &b.pricer;
            let ticks = p.ticks.load(Ordering::Relaxed);
            let reprices =
                p.reprices_full.load(Ordering::Relaxed) + p.reprices_spot.load(Ordering::Relaxed);
            let dt = now.duration_since(last_at).as_secs_f64().max(1e-9);
            let lat = b.telemetry.latest();
            let t2t = lat.get(keel_engine::pipeline::Stage::TickToTrade);
            let _ = writeln!(
                out,
                "[{:>6.1}s] ticks {:>7.0}/s  reprices {:>6.0}/s  Δ {:+.4} {}  Γ {:+.6}  ν {:+.3}  hedges {}{} fills {}  t2t p50 {} p99 {}  {}",
                now.duration_since(started).as_secs_f64(),
                (ticks - last_ticks) as f64 / dt,
                (reprices - last_reprices) as f64 / dt,
                p.delta_coin.get(),
                cfg.underlying,
                p.gamma_coin.get(),
                p.vega_coin.get(),
                p.hedges.load(Ordering::Relaxed),
                if b.evm.is_some() {
                    format!(
                        " ({} on chain, {} refused)",
                        p.chain_venue_hedges.load(Ordering::Relaxed),
                        p.chain_refusals.load(Ordering::Relaxed)
                    )
                } else {
                    String::new()
                },
                p.fills.load(Ordering::Relaxed),
                report::fmt_ns(t2t.p50_ns),
                report::fmt_ns(t2t.p99_ns),
                match (risk_state(p), p.fault(), p.guard()) {
                    (RiskState::Halted, _, _) => "HALTED".to_string(),
                    (RiskState::Reducing, _, _) => "REDUCING".to_string(),
                    (_, Some(f), _) => format!("HOLD: {}", f.name()),
                    (_, None, Some((g, id, v, b))) => {
                        format!("HOLD: {g} (source/row {id}: {v:.6} vs {b:.6})")
                    }
                    (_, None, None) => "data ok".to_string(),
                }
            );
            last_ticks = ticks;
            last_reprices = reprices;
            last_at = now;
            next_status = now + cfg.status_every;
        }
        std::thread::sleep(tick);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_become_intervals() {
        assert_eq!(rate_interval_ns(None), 100_000_000);
        assert_eq!(rate_interval_ns(Some(1000)), 1_000_000);
        assert_eq!(rate_interval_ns(Some(0)), 1_000_000_000);
    }
}
