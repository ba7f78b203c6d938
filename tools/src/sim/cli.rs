//! The `keel-sim` command line: flags → [`SimConfig`], start, print where it listens, run for
//! `--duration` (or until killed), print a summary.
//!
//! Owns argument parsing and the binary's output only; every behaviour lives in the library
//! ([`super::SimVenue`]). Errors are one `error: ...` line on standard error with exit code 2,
//! like `keel`.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

use super::{Faults, SimConfig, SimCredentials, SimStats, SimVenue};

/// keel-sim: a simulated options venue speaking Deribit's and Binance's WebSocket protocols on
/// one port, driven by a simulated market, with fault injection for testing feed handlers.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "keel-sim",
    version,
    after_help = "Endpoints (one port):\n  \
        ws://ADDR/ws/api/v2             Deribit JSON-RPC 2.0: public/subscribe (ticker.{instrument}.{100ms|raw},\n                                  \
        book.{instrument}.100ms, deribit_price_index.btc_usd, markprice.options.btc_usd),\n                                  \
        public/get_instruments, public/set_heartbeat, public/test, public/get_time, public/ticker;\n                                  \
        orders (no auth; public/auth gets a fake token): private/buy, private/sell (market fills at\n                                  \
        the best ask/bid, limit fills if marketable else rests), private/cancel, private/cancel_all;\n                                  \
        a reused label is rejected; order results carry \"sim_recv_ns\"\n  \
        ws://ADDR/ws                    Binance USD-M futures raw streams: SUBSCRIBE btcusdt@bookTicker,\n                                  \
        btcusdt@depth@100ms, btcusdt@aggTrade, btcusdt@markPrice[@1s]\n  \
        ws://ADDR/stream?streams=a/b    Binance combined streams ({\"stream\",\"data\"})\n  \
        http://ADDR/fapi/v1/depth?symbol=BTCUSDT&limit=N   Binance REST depth snapshot (plain HTTP/1.1 on\n                                  \
        the same port; also /api/v3/depth): lastUpdateId from the venue-wide depth sequence\n  \
        http://IP:NODE_PORT/            with --node-port: mock Ethereum JSON-RPC node (eth_sendRawTransaction,\n                                  \
        eth_getTransactionCount, eth_blockNumber, eth_chainId, eth_getTransactionReceipt); builders\n                                  \
        on their own ports add eth_sendBundle and require X-Flashbots-Signature; one shared chain:\n                                  \
        the first transaction per (sender, nonce) is accepted, later copies refused as geth does\n\n\
        Every data object carries \"sim_send_ns\" (ns since the Unix epoch when the message was rendered).\n\
        On start, prints 'keel-sim listening on ADDR' to standard output.\n\n\
        Example: keel-sim --listen 127.0.0.1:8765 --rate 50000 --fragment 3 --drop-every-secs 30"
)]
pub struct SimArgs {
    /// Address to listen on (port 0 picks a free port, printed on start).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8765")]
    pub listen: SocketAddr,
    /// The mock JSON-RPC node and builders (see [`super::node::cli`]).
    #[command(flatten)]
    pub node: super::node::cli::NodeArgs,
    /// Seed of the simulated market and of the faults' randomness.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Messages per second per connection, shared by its subscriptions (0 = unlimited).
    #[arg(long, value_name = "MSGS_PER_S", default_value_t = 10_000)]
    pub rate: u64,
    /// Number of listed options (a call and a put per strike, across ~12 expiries).
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub options: usize,
    /// Initial BTC index price, USD.
    #[arg(long, default_value_t = 100_000.0)]
    pub spot: f64,
    /// Volatility of the underlying and long-run ATM implied vol (decimal: 0.6 = 60 %).
    #[arg(long, default_value_t = 0.6)]
    pub vol: f64,
    /// Cost of carry of the futures per year (decimal).
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true)]
    pub carry: f64,
    /// Jumps of the underlying per year (Merton jump-diffusion).
    #[arg(long, default_value_t = 20.0)]
    pub jump_intensity: f64,
    /// Mean of the log jump size.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub jump_mean: f64,
    /// Standard deviation of the log jump size.
    #[arg(long, default_value_t = 0.03)]
    pub jump_sd: f64,
    /// Market-time speed-up of the underlying's moves (1 = real time).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Milliseconds between market updates.
    #[arg(long, value_name = "MS", default_value_t = 10)]
    pub tick_ms: u64,
    /// Smallest Deribit heartbeat interval accepted, seconds (Deribit's is 10).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub min_heartbeat: f64,
    /// Do not close connections that leave heartbeat test_requests unanswered.
    #[arg(long)]
    pub no_heartbeat_enforcement: bool,
    /// Connections served at once.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
    /// Bench stream mode: pace ticker, book and index channels by --rate alone (their 100 ms
    /// interval ignored), so one connection carries --rate messages per second.
    #[arg(long)]
    pub rate_only: bool,
    /// Run this many seconds, then stop (default: until killed).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Print counters to standard error every SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub stats_every: Option<f64>,

    /// Fault: close each connection after N data messages.
    #[arg(long, value_name = "N", help_heading = "Fault injection")]
    pub drop_every_msgs: Option<u64>,
    /// Fault: close each connection SECS seconds after it opened.
    #[arg(long, value_name = "SECS", help_heading = "Fault injection")]
    pub drop_every_secs: Option<f64>,
    /// Fault: drop without a WebSocket close frame (TCP shutdown only).
    #[arg(long, help_heading = "Fault injection")]
    pub drop_abrupt: bool,
    /// Fault: hold every outgoing message MS milliseconds.
    #[arg(long, value_name = "MS", help_heading = "Fault injection")]
    pub delay_ms: Option<u64>,
    /// Fault: fraction (0..1) of data messages sent malformed (truncated, garbage, wrong types).
    #[arg(
        long,
        value_name = "FRACTION",
        default_value_t = 0.0,
        help_heading = "Fault injection"
    )]
    pub malformed_rate: f64,
    /// Fault: go silent SECS seconds after each connection opened (no data, no heartbeat, no
    /// pong; the connection stays open).
    #[arg(long, value_name = "SECS", help_heading = "Fault injection")]
    pub silent_after: Option<f64>,
    /// Fault: split every message into K WebSocket frames (text + continuation frames).
    #[arg(long, value_name = "K", help_heading = "Fault injection")]
    pub fragment: Option<u32>,
    /// Fault: send a WebSocket ping every MS milliseconds.
    #[arg(long, value_name = "MS", help_heading = "Fault injection")]
    pub ping_every_ms: Option<u64>,
    /// Fault: lose every N-th Binance depth event of a subscription (its update ids are skipped,
    /// so the next event's pu does not match: a sequence gap the client must resnapshot).
    #[arg(long, value_name = "N", help_heading = "Fault injection")]
    pub gap_every_msgs: Option<u64>,
    /// Fault: replace every N-th order-API reply on a connection (Binance WebSocket API,
    /// Hyperliquid) with a truncated one; the request is still executed.
    #[arg(long, value_name = "N", help_heading = "Fault injection")]
    pub order_garble_every: Option<u64>,
    /// Fault: never answer every N-th order-API request on a connection (it is executed).
    #[arg(long, value_name = "N", help_heading = "Fault injection")]
    pub order_drop_every: Option<u64>,
    /// Latency: hold every order-API reply MS milliseconds (Binance WebSocket API and
    /// Hyperliquid only; --delay-ms holds everything).
    #[arg(long, value_name = "MS", help_heading = "Fault injection")]
    pub order_delay_ms: Option<u64>,

    /// Environment variable holding the API key /ws-fapi/v1 accepts (never the key itself).
    #[arg(long, value_name = "NAME", help_heading = "Order APIs")]
    pub binance_api_key_env: Option<String>,
    /// Environment variable holding that key's HMAC secret (never the secret itself).
    #[arg(long, value_name = "NAME", help_heading = "Order APIs")]
    pub binance_secret_env: Option<String>,
    /// An agent address whose signatures Hyperliquid's /exchange accepts (repeatable; an
    /// address, not a key).
    #[arg(long, value_name = "ADDR", help_heading = "Order APIs")]
    pub hyperliquid_agent: Vec<String>,
    /// Require Deribit client credentials: NAME of the environment variable holding the
    /// client id the account accepts (with --deribit-secret-env; never the value itself).
    #[arg(long, value_name = "NAME", requires = "deribit_secret_env")]
    pub deribit_key_env: Option<String>,
    /// NAME of the environment variable holding the client secret the account accepts.
    #[arg(long, value_name = "NAME", requires = "deribit_key_env")]
    pub deribit_secret_env: Option<String>,
}

fn env_value(flag: &str, name: &str) -> anyhow::Result<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => anyhow::bail!("--{flag} {name}: the environment variable is not set (or empty)"),
    }
}

fn secs(field: &str, v: f64) -> anyhow::Result<Duration> {
    if (0.0..=1e9).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        anyhow::bail!("--{field} must be a number of seconds between 0 and 1e9, got {v}")
    }
}

impl SimArgs {
    fn order_api(&self) -> anyhow::Result<super::binance_orders::OrderApiConfig> {
        let binance_account = match (&self.binance_api_key_env, &self.binance_secret_env) {
            (None, None) => None,
            (Some(k), Some(s)) => Some(
                super::binance_orders::BinanceAccount::from_env(k, s).map_err(|e| {
                    anyhow::anyhow!("--binance-api-key-env/--binance-secret-env: {e}")
                })?,
            ),
            _ => anyhow::bail!("--binance-api-key-env and --binance-secret-env go together"),
        };
        if self.order_garble_every == Some(0) {
            anyhow::bail!("--order-garble-every must be at least 1, got 0");
        }
        if self.order_drop_every == Some(0) {
            anyhow::bail!("--order-drop-every must be at least 1, got 0");
        }
        Ok(super::binance_orders::OrderApiConfig {
            binance_account,
            garble_every: self.order_garble_every,
            drop_every: self.order_drop_every,
            reply_delay: self.order_delay_ms.map(Duration::from_millis),
            hyperliquid_agents: self
                .hyperliquid_agent
                .iter()
                .map(|a| super::hyperliquid::parse_agent(a))
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("--hyperliquid-agent: {e}"))?,
        })
    }

    /// The library configuration these flags describe.
    pub fn config(&self) -> anyhow::Result<SimConfig> {
        Ok(SimConfig {
            listen: self.listen,
            seed: self.seed,
            rate: self.rate,
            options: self.options,
            spot: self.spot,
            vol: self.vol,
            carry: self.carry,
            jump_intensity: self.jump_intensity,
            jump_mean: self.jump_mean,
            jump_sd: self.jump_sd,
            speed: self.speed,
            tick: Duration::from_millis(self.tick_ms),
            min_heartbeat: secs("min-heartbeat", self.min_heartbeat)?,
            enforce_heartbeat: !self.no_heartbeat_enforcement,
            max_connections: self.max_connections,
            rate_only: self.rate_only,
            faults: Faults {
                drop_after_messages: self.drop_every_msgs,
                drop_after: self
                    .drop_every_secs
                    .map(|v| secs("drop-every-secs", v))
                    .transpose()?,
                drop_abrupt: self.drop_abrupt,
                delay: self.delay_ms.map(Duration::from_millis),
                malformed_rate: self.malformed_rate,
                silent_after: self
                    .silent_after
                    .map(|v| secs("silent-after", v))
                    .transpose()?,
                fragments: self.fragment.unwrap_or(1),
                ping_every: self.ping_every_ms.map(Duration::from_millis),
                gap_every_msgs: self.gap_every_msgs,
            },
            order_api: self.order_api()?,
            deribit_credentials: match (&self.deribit_key_env, &self.deribit_secret_env) {
                (Some(k), Some(s)) => Some(SimCredentials {
                    client_id: env_value("deribit-key-env", k)?,
                    client_secret: env_value("deribit-secret-env", s)?,
                }),
                _ => None,
            },
        })
    }
}

fn stats_line(s: &SimStats, elapsed: Duration) -> String {
    let t = elapsed.as_secs_f64().max(1e-9);
    format!(
        "keel-sim: {:.1} s, connections {} (open {}), messages {} ({:.0}/s), malformed {}, \
         bytes {}, requests {}, drops {}, rejected {}, orders {} (fills {}, rejected {})",
        t,
        s.connections,
        s.active,
        s.messages,
        s.messages as f64 / t,
        s.malformed,
        s.bytes,
        s.requests,
        s.drops,
        s.rejected,
        s.orders,
        s.fills,
        s.rejected_orders
    )
}

/// Runs `keel-sim` with parsed flags.
pub fn run(args: &SimArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let stats_every = args
        .stats_every
        .map(|v| secs("stats-every", v))
        .transpose()?;
    let duration = args.duration.map(|v| secs("duration", v)).transpose()?;
    let node_config = args.node.config(args.listen.ip(), args.seed)?;
    let mut sim = SimVenue::start(config)?;
    let mut node = node_config.map(super::node::NodeSim::start).transpose()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "keel-sim listening on {}", sim.addr())?;
        writeln!(out, "deribit: {}", sim.deribit_url())?;
        writeln!(out, "binance: {}", sim.binance_url())?;
        writeln!(
            out,
            "options: {}, expiries: {}, futures: {}",
            sim.chain().options.len(),
            sim.chain().expiries.len(),
            sim.chain().futures.len()
        )?;
        if let Some(node) = &node {
            writeln!(out, "node: {}", node.node_url())?;
            // Before the builders: readers stop at the last builder line.
            writeln!(out, "heads: {}", node.ws_url())?;
            for (k, url) in node.builder_urls().iter().enumerate() {
                writeln!(out, "builder{}: {url}", k + 1)?;
            }
        }
        out.flush()?;
    }
    let start = Instant::now();
    let mut next_stats = stats_every.map(|e| start + e);
    loop {
        let now = Instant::now();
        if duration.is_some_and(|d| now.duration_since(start) >= d) {
            break;
        }
        if let (Some(at), Some(every)) = (next_stats, stats_every)
            && now >= at
        {
            eprintln!("{}", stats_line(&sim.stats(), now.duration_since(start)));
            if let Some(node) = &node {
                eprintln!("{}", super::node::cli::node_line(&node.total()));
            }
            next_stats = Some(at + every.max(Duration::from_millis(100)));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    sim.stop();
    eprintln!("{}", stats_line(&sim.stats(), start.elapsed()));
    if let Some(node) = node.as_mut() {
        node.stop();
        for k in 0..=args.node.builders {
            if let Some(s) = node.stats(k) {
                eprintln!(
                    "{}: {}",
                    super::node::endpoint_name(k),
                    super::node::cli::node_line(&s)
                );
            }
        }
    }
    Ok(())
}

/// Entry point of the `keel-sim` binary.
pub fn main() -> ExitCode {
    let args = match SimArgs::try_parse() {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    ExitCode::SUCCESS
                }
                _ => {
                    let text = e.render().to_string();
                    let line = text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with("Usage:"))
                        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
                        .collect::<Vec<_>>()
                        .join("; ");
                    let _ = writeln!(std::io::stderr(), "error: {line}");
                    ExitCode::from(crate::EXIT_ERROR)
                }
            };
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace(['\r', '\n'], " ");
            let _ = writeln!(std::io::stderr(), "error: {msg}");
            ExitCode::from(crate::EXIT_ERROR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        SimArgs::command().debug_assert();
    }

    #[test]
    fn flags_map_to_config() {
        let a = SimArgs::parse_from([
            "keel-sim",
            "--listen",
            "127.0.0.1:0",
            "--rate",
            "200000",
            "--drop-every-msgs",
            "50",
            "--silent-after",
            "1.5",
            "--fragment",
            "3",
            "--ping-every-ms",
            "250",
            "--malformed-rate",
            "0.1",
            "--delay-ms",
            "20",
            "--gap-every-msgs",
            "7",
        ]);
        let c = a.config().unwrap();
        assert_eq!(c.rate, 200_000);
        assert_eq!(c.faults.drop_after_messages, Some(50));
        assert_eq!(c.faults.silent_after, Some(Duration::from_millis(1500)));
        assert_eq!(c.faults.fragments, 3);
        assert_eq!(c.faults.ping_every, Some(Duration::from_millis(250)));
        assert_eq!(c.faults.delay, Some(Duration::from_millis(20)));
        assert_eq!(c.faults.gap_every_msgs, Some(7));
        assert!(c.validate().is_ok());
        let bad = SimArgs::parse_from(["keel-sim", "--silent-after", "NaN"]);
        assert!(bad.config().is_err());
    }
}
