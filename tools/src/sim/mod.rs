//! `keel-sim`, the simulated venue: a real WebSocket server on one TCP port that speaks
//! Deribit's JSON-RPC 2.0 (path `/ws/api/v2`) and Binance's USDⓈ-M futures streams (paths `/ws`,
//! `/ws/<stream>[/<stream>...]` and `/stream?streams=a/b`), driven by a simulated market
//! (Merton jump-diffusion underlying, SVI smile per expiry, about 1,000 listed options), with
//! fault injection. Started in-process with [`SimVenue::start`] or as the `keel-sim` binary.
//! The mock Ethereum JSON-RPC node and block builders are a separate server ([`node`],
//! started with [`node::NodeSim::start`] or `keel-sim --node-port`).
//!
//! Owns the listener, one thread per connection, the market thread and their shutdown. It
//! never panics on client input (malformed JSON, unknown methods and protocol errors get
//! JSON-RPC or Binance error replies, or a closed connection), never allocates per streamed
//! message once a connection's buffers have grown (messages are rendered into reused buffers
//! and framed by hand), and never depends on Keel's own feeds code for the protocol: the
//! WebSocket handshake, client-frame decoding, pongs and close replies are tungstenite's
//! (server role); outgoing frames are formatted with tungstenite's `FrameHeader`.
//!
//! # Messages
//!
//! Rates are per connection: `rate` messages per second shared round-robin by the
//! connection's subscriptions. Channels with an interval (`ticker.X.100ms`, `book.X.100ms`,
//! `@depth@100ms`) are also capped at one message per interval each; `raw` channels and
//! Binance's `@bookTicker`/`@aggTrade` are capped only by the rate. `deribit_price_index.*`
//! streams every 100 ms, `markprice.options.*` every second (all open options in one array),
//! `@markPrice` every 3 s and `@markPrice@1s` every second. `rate = 0` means as fast as the
//! socket takes them.
//!
//! Every data object (Deribit `params.data`, Binance event) carries an extra field
//! `"sim_send_ns"`: the simulator's wall clock (ns since the Unix epoch, the clock of
//! `keel_feeds::clock::now_ns`) when the message was rendered, immediately before it is queued
//! for the socket, so a bench can measure wire-to-wire latency as `recv_ts_ns − sim_send_ns`.
//! With an injected delay it is the time before the delay. Deribit's `timestamp` is the same
//! instant in ms (venue time). `markprice.options` has no per-message object and so no field.
//!
//! # Orders
//!
//! The Deribit endpoint also takes `private/buy`, `private/sell`, `private/cancel` and
//! `private/cancel_all` without authentication (`public/auth` is answered with a fake token),
//! on one venue-wide order desk: market orders fill in full at the simulated best ask/bid,
//! marketable limit orders fill, others rest `open` until cancelled; a reused `label` is
//! rejected (an idempotency key; real Deribit does not enforce that). Every order result
//! carries `"sim_recv_ns"`, the simulator's clock when the request frame was read. See
//! [`orders`] for the rules and error codes.
//!
//! Binance depth update ids (`U`/`u`/`pu`) are venue-wide ([`depth`]): every connection's
//! depth streams and the REST snapshot (`GET /fapi/v1/depth?symbol=BTCUSDT&limit=N` and
//! `/api/v3/depth`, plain HTTP/1.1 on the same port: a request without `Upgrade: websocket`
//! gets the REST answer) share one sequence, so a client can follow Binance's "buffer, fetch the
//! snapshot, apply" procedure; a depth subscription starts with the latest change, not a full
//! book. Other sequence numbers (Deribit `change_id`, Binance `bookTicker` and trade ids) are
//! per connection and per subscription: each connection sees its own consistent sequence, and
//! Deribit's first book message is a full snapshot.

pub mod binance_orders;
pub mod chain;
pub mod cli;
mod conn;
pub mod depth;
pub mod encode;
pub mod hyperliquid;
pub mod market;
pub mod node;
pub mod orders;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use keel_engine::sim::VolSurface;

pub use chain::{Chain, ChainSpec, InstrumentRef, ListedOption};
pub use market::{MarketParams, MarketSnapshot, OptionQuote};
pub use orders::OrderReceipt;

/// A configuration value out of range, or a start-up failure.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A configuration field is invalid.
    #[error("invalid keel-sim setting {field} = {value}: {reason}")]
    InvalidConfig {
        /// The field (its command-line flag name).
        field: &'static str,
        /// The value given, as text.
        value: String,
        /// What is allowed.
        reason: String,
    },
    /// The listening socket could not be bound.
    #[error("keel-sim cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A thread or socket setting failed at start-up.
    #[error("keel-sim start-up failed ({what}): {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

fn invalid(field: &'static str, value: impl ToString, reason: impl Into<String>) -> SimError {
    SimError::InvalidConfig {
        field,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Fault injection, per connection (each new connection starts its own clocks and counters).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// Close the connection after this many data messages.
    pub drop_after_messages: Option<u64>,
    /// Close the connection this long after it opened.
    pub drop_after: Option<Duration>,
    /// Drop by shutting the TCP connection down without a WebSocket close frame (default: a
    /// close frame with code 1001 first).
    pub drop_abrupt: bool,
    /// Hold every outgoing message this long before writing it.
    pub delay: Option<Duration>,
    /// Fraction (0..=1) of data messages replaced by a malformed one: truncated JSON, garbage
    /// text, or a message with wrong-type fields (numbers as strings or the reverse).
    pub malformed_rate: f64,
    /// This long after the connection opened, stop sending anything (data, replies,
    /// heartbeats, pings, pongs) while keeping the connection open.
    pub silent_after: Option<Duration>,
    /// Split every text message of at least this many bytes into this many WebSocket frames
    /// (a text frame and continuation frames); 0 or 1 = no fragmentation.
    pub fragments: u32,
    /// Send a WebSocket ping this often.
    pub ping_every: Option<Duration>,
    /// Lose every N-th Binance depth event of a subscription: its update ids are skipped, so
    /// the next event's `pu` is not the last `u` the client saw (a sequence gap on demand).
    pub gap_every_msgs: Option<u64>,
}

/// Everything `keel-sim` needs to start.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Address to listen on; port 0 picks a free port (see [`SimHandle::addr`]).
    pub listen: SocketAddr,
    /// Seed of the market path, sizes and faults' randomness.
    pub seed: u64,
    /// Messages per second per connection (0 = unlimited).
    pub rate: u64,
    /// Options to list (rounded down to even: a call and a put per strike).
    pub options: usize,
    /// Initial spot (index), USD.
    pub spot: f64,
    /// Volatility of the underlying and long-run ATM vol of the smile (decimal).
    pub vol: f64,
    /// Carry per year of the forwards (decimal).
    pub carry: f64,
    /// Jumps per year of the underlying.
    pub jump_intensity: f64,
    /// Mean log-jump size.
    pub jump_mean: f64,
    /// Standard deviation of log-jump sizes.
    pub jump_sd: f64,
    /// Speed-up of the underlying's moves relative to the wall clock.
    pub speed: f64,
    /// Wall time between market updates.
    pub tick: Duration,
    /// Smallest Deribit heartbeat interval accepted (Deribit's is 10 s).
    pub min_heartbeat: Duration,
    /// Close a Deribit connection whose client leaves a heartbeat `test_request` unanswered
    /// until the next one is due, as Deribit does.
    pub enforce_heartbeat: bool,
    /// Connections served at once; more are refused.
    pub max_connections: usize,
    /// Bench stream mode: channels with an interval of 100 ms or less (`ticker.X.100ms`,
    /// `book.X.100ms`, the index) are paced by `rate` alone, like `raw` channels, so one
    /// connection carries `rate` messages per second whatever the chain's size (`keel-bench
    /// e2e`'s rate sweeps). Not Deribit's behaviour; off by default.
    pub rate_only: bool,
    /// Fault injection.
    pub faults: Faults,
    /// The order APIs' accounts and faults (Binance WebSocket API, Hyperliquid /exchange).
    pub order_api: binance_orders::OrderApiConfig,
    /// Client credentials the Deribit endpoint requires before any `private/` method; `None`
    /// (the dry-run default): no authentication needed, any `public/auth` succeeds.
    pub deribit_credentials: Option<SimCredentials>,
}

/// Client credentials of keel-sim's Deribit account (the secret never prints).
#[derive(Clone, PartialEq, Eq)]
pub struct SimCredentials {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
}

impl std::fmt::Debug for SimCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 1,
            rate: 10_000,
            options: 1_000,
            spot: 100_000.0,
            vol: 0.6,
            carry: 0.05,
            jump_intensity: 20.0,
            jump_mean: 0.0,
            jump_sd: 0.03,
            speed: 1.0,
            tick: Duration::from_millis(10),
            min_heartbeat: Duration::from_secs(10),
            enforce_heartbeat: true,
            max_connections: 256,
            rate_only: false,
            faults: Faults::default(),
            order_api: binance_orders::OrderApiConfig::default(),
            deribit_credentials: None,
        }
    }
}

impl SimConfig {
    /// Checks every field; the error names the field and says what is allowed.
    pub fn validate(&self) -> Result<(), SimError> {
        let fin = |f: &'static str, v: f64, lo: f64, hi: f64| {
            if v.is_finite() && v >= lo && v <= hi {
                Ok(())
            } else {
                Err(invalid(f, v, format!("must be between {lo} and {hi}")))
            }
        };
        fin("spot", self.spot, 1e-6, 1e12)?;
        fin("vol", self.vol, 0.01, 5.0)?;
        fin("carry", self.carry, -1.0, 1.0)?;
        fin("jump-intensity", self.jump_intensity, 0.0, 1e6)?;
        fin("jump-mean", self.jump_mean, -5.0, 5.0)?;
        fin("jump-sd", self.jump_sd, 0.0, 5.0)?;
        fin("speed", self.speed, 1e-3, 1e7)?;
        fin("malformed-rate", self.faults.malformed_rate, 0.0, 1.0)?;
        if self.options > 100_000 {
            return Err(invalid("options", self.options, "at most 100000"));
        }
        if self.rate > 10_000_000 {
            return Err(invalid(
                "rate",
                self.rate,
                "at most 10000000 (0 = unlimited)",
            ));
        }
        if self.tick < Duration::from_millis(1) || self.tick > Duration::from_secs(10) {
            return Err(invalid("tick-ms", self.tick.as_millis(), "1 ms ..= 10 s"));
        }
        if self.max_connections == 0 || self.max_connections > 10_000 {
            return Err(invalid(
                "max-connections",
                self.max_connections,
                "1 ..= 10000",
            ));
        }
        if self.faults.fragments > 1_000 {
            return Err(invalid("fragment", self.faults.fragments, "0 ..= 1000"));
        }
        if self.faults.drop_after_messages == Some(0) {
            return Err(invalid("drop-every-msgs", 0, "must be at least 1"));
        }
        if self.faults.gap_every_msgs == Some(0) {
            return Err(invalid("gap-every-msgs", 0, "must be at least 1"));
        }
        for (f, d) in [
            ("drop-every-secs", self.faults.drop_after),
            ("ping-every-ms", self.faults.ping_every),
        ] {
            if d == Some(Duration::ZERO) {
                return Err(invalid(f, 0, "must be positive"));
            }
        }
        Ok(())
    }
}

/// Counters of a running simulator, summed over connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Connections accepted (WebSocket handshakes completed).
    pub connections: u64,
    /// Connections open now.
    pub active: u64,
    /// Data messages sent (malformed ones included).
    pub messages: u64,
    /// Malformed messages sent.
    pub malformed: u64,
    /// Bytes written to sockets.
    pub bytes: u64,
    /// Client requests handled.
    pub requests: u64,
    /// Connections closed by a drop fault or an unanswered heartbeat.
    pub drops: u64,
    /// Connections refused (over the limit) or failed handshakes.
    pub rejected: u64,
    /// Orders accepted (`private/buy`/`private/sell`, whatever their state).
    pub orders: u64,
    /// Trades those orders produced.
    pub fills: u64,
    /// Order requests refused with an error (bad parameters, unknown instrument, duplicate
    /// label).
    pub rejected_orders: u64,
}

/// Shared atomic counters behind [`SimStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    connections: AtomicU64,
    active: AtomicU64,
    messages: AtomicU64,
    malformed: AtomicU64,
    bytes: AtomicU64,
    requests: AtomicU64,
    drops: AtomicU64,
    rejected: AtomicU64,
    orders: AtomicU64,
    fills: AtomicU64,
    rejected_orders: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> SimStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SimStats {
            connections: l(&self.connections),
            active: l(&self.active),
            messages: l(&self.messages),
            malformed: l(&self.malformed),
            bytes: l(&self.bytes),
            requests: l(&self.requests),
            drops: l(&self.drops),
            rejected: l(&self.rejected),
            orders: l(&self.orders),
            fills: l(&self.fills),
            rejected_orders: l(&self.rejected_orders),
        }
    }
}

/// The simulated venue.
pub struct SimVenue;

impl SimVenue {
    /// Validates `config`, lists the chain, starts the market thread and the listener, and
    /// returns at once; the venue runs until [`SimHandle::stop`] or the handle is dropped.
    pub fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        config.validate()?;
        let now = market::now_ms();
        let surface = VolSurface::crypto(config.vol)
            .map_err(|e| invalid("vol", config.vol, e.to_string()))?;
        let chain = Arc::new(Chain::build(&ChainSpec {
            options: config.options,
            spot: config.spot,
            vol: config.vol,
            carry: config.carry,
            now_ms: now,
            seed: config.seed,
        }));
        let params = MarketParams {
            spot: config.spot,
            vol: config.vol,
            carry: config.carry,
            jump_intensity: config.jump_intensity,
            jump_mean: config.jump_mean,
            jump_sd: config.jump_sd,
            speed: config.speed,
            tick: config.tick,
            seed: config.seed,
            surface,
            spread_vol_points: 1.5,
        };
        let mut mkt = market::Market::new(chain.clone(), params)
            .map_err(|e| invalid("vol", config.vol, e.to_string()))?;
        mkt.mark(now);
        let shared = Arc::new(market::SharedMarket::new(mkt.snapshot().clone()));

        let listener = TcpListener::bind(config.listen).map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| SimError::Io {
            what: "reading the bound address",
            source,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| SimError::Io {
                what: "making the listener non-blocking",
                source,
            })?;

        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let market_thread = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("keel-sim-market".into())
                .spawn(move || market::run_market(mkt, shared, stop))
                .map_err(|source| SimError::Io {
                    what: "spawning the market thread",
                    source,
                })?
        };
        let depth_book = Arc::new(depth::DepthVenue::new(config.seed));
        let config_order_api = config.order_api.clone();
        let orders = Arc::new(orders::OrderDesk::default());
        let config = Arc::new(config);
        let hyperliquid_desk = Arc::new(hyperliquid::HyperliquidDesk::new(
            config_order_api.hyperliquid_agents.clone(),
        ));
        let ctx = conn::Shared {
            chain: chain.clone(),
            market: shared.clone(),
            config: config.clone(),
            stop: stop.clone(),
            counters: counters.clone(),
            orders: orders.clone(),
            depth: depth_book,
            binance_orders: Arc::new(binance_orders::BinanceDesk::new(
                config_order_api.binance_account.clone(),
            )),
            hyperliquid: hyperliquid_desk.clone(),
        };
        let acceptor = std::thread::Builder::new()
            .name("keel-sim-accept".into())
            .spawn(move || conn::accept_loop(listener, ctx));
        let acceptor = match acceptor {
            Ok(h) => h,
            Err(source) => {
                stop.store(true, Ordering::Release);
                let _ = market_thread.join();
                return Err(SimError::Io {
                    what: "spawning the acceptor thread",
                    source,
                });
            }
        };
        Ok(SimHandle {
            addr,
            stop,
            acceptor: Some(acceptor),
            market_thread: Some(market_thread),
            counters,
            chain,
            market: shared,
            orders,
            config,
            hyperliquid: hyperliquid_desk,
        })
    }
}

/// A running simulated venue. Dropping it stops it (like [`SimHandle::stop`]).
pub struct SimHandle {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    market_thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    chain: Arc<Chain>,
    market: Arc<market::SharedMarket>,
    orders: Arc<orders::OrderDesk>,
    config: Arc<SimConfig>,
    hyperliquid: Arc<hyperliquid::HyperliquidDesk>,
}

impl SimHandle {
    /// The client credentials the Deribit endpoint requires, if any.
    pub fn deribit_credentials(&self) -> Option<&SimCredentials> {
        self.config.deribit_credentials.as_ref()
    }

    /// The Binance account the WebSocket API (`/ws-fapi/v1`) accepts, if any.
    pub fn binance_account(&self) -> Option<&binance_orders::BinanceAccount> {
        self.config.order_api.binance_account.as_ref()
    }

    /// Gives the simulated account a position in `instrument` (Deribit units: USD for futures
    /// and the perpetual, coin for options; signed) at its current mark, as if it had been
    /// traded before this run — what `private/get_positions` reports until orders move it.
    pub fn seed_position(&self, instrument: &str, size: f64) -> Result<(), SimError> {
        if !size.is_finite() {
            return Err(invalid("position", size, "must be finite"));
        }
        if self
            .orders
            .seed_listed(&self.chain, &self.snapshot(), instrument, size)
        {
            Ok(())
        } else {
            Err(invalid("position", instrument, "instrument not listed"))
        }
    }

    /// The address the venue listens on (the actual port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://ADDR/ws/api/v2`: the Deribit endpoint.
    pub fn deribit_url(&self) -> String {
        format!("ws://{}/ws/api/v2", self.addr)
    }

    /// `ws://ADDR/ws`: the Binance raw-stream endpoint (`/stream?streams=...` for combined).
    pub fn binance_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// `ws://ADDR/ws-fapi/v1`: the Binance USDⓈ-M WebSocket API (orders).
    pub fn binance_api_url(&self) -> String {
        format!("ws://{}/ws-fapi/v1", self.addr)
    }

    /// `ws://ADDR/hyperliquid/ws`: Hyperliquid's WebSocket (`post` actions).
    pub fn hyperliquid_ws_url(&self) -> String {
        format!("ws://{}/hyperliquid/ws", self.addr)
    }

    /// Hyperliquid: accepts `agent`'s signatures from now on (it trades its own account).
    pub fn add_hyperliquid_agent(&self, agent: keel_engine::exec::evm::Address) {
        self.hyperliquid.add_agent(agent);
    }

    /// Hyperliquid: sets `user`'s BTC perpetual position (signed, coin) at `entry_px`.
    pub fn seed_hyperliquid_position(
        &self,
        user: keel_engine::exec::evm::Address,
        szi: f64,
        entry_px: f64,
    ) -> Result<(), SimError> {
        if !(szi.is_finite() && entry_px.is_finite() && entry_px > 0.0) {
            return Err(invalid(
                "position",
                szi,
                "must be finite at a positive price",
            ));
        }
        self.hyperliquid.seed_position(user, szi, entry_px);
        Ok(())
    }

    /// Hyperliquid: `user`'s BTC perpetual position (signed, coin).
    pub fn hyperliquid_position(&self, user: keel_engine::exec::evm::Address) -> f64 {
        self.hyperliquid.position(user)
    }

    /// `http://ADDR/info`: Hyperliquid's info endpoint (POST: `orderStatus`,
    /// `clearinghouseState`).
    pub fn hyperliquid_info_url(&self) -> String {
        format!("http://{}/info", self.addr)
    }

    /// `http://ADDR/exchange`: Hyperliquid's exchange endpoint (POST).
    pub fn hyperliquid_exchange_url(&self) -> String {
        format!("http://{}/exchange", self.addr)
    }

    /// The listed chain.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// A copy of the latest market snapshot.
    pub fn snapshot(&self) -> MarketSnapshot {
        let mut s = MarketSnapshot::default();
        self.market.refresh(0, &mut s);
        s
    }

    /// When each accepted order's request frame was read, in arrival order (the first
    /// [`orders::MAX_RECEIPTS`]).
    pub fn order_receipts(&self) -> Vec<OrderReceipt> {
        self.orders.receipts()
    }

    /// Counters so far.
    pub fn stats(&self) -> SimStats {
        self.counters.snapshot()
    }

    /// Stops accepting, closes every connection (WebSocket close 1001, then TCP), stops the
    /// market and waits for every thread. Idempotent.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        if let Some(h) = self.market_thread.take() {
            let _ = h.join();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation_names_the_field() {
        let mut c = SimConfig::default();
        assert!(c.validate().is_ok());
        c.vol = -1.0;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("vol"), "{e}");
        let mut c = SimConfig::default();
        c.faults.malformed_rate = 2.0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("malformed-rate")
        );
        let mut c = SimConfig::default();
        c.faults.drop_after_messages = Some(0);
        assert!(c.validate().is_err());
    }
}
