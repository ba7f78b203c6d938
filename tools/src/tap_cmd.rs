//! `keel tap`: connects to one venue, subscribes, keeps the connection alive (reconnecting with
//! backoff) and prints every normalised event the parser produces, one per line — what the
//! engine would see.
//!
//! Formatting allocates (this is a diagnostic tool, not the hot path); the feed underneath is the
//! engine's own ([`keel_feeds::net::FeedLoop`] and [`keel_feeds::session::VenueSession`]).

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use keel_feeds::net::{ConnectionConfig, FeedLoop};
use keel_feeds::session::{VenueSession, register};
use keel_feeds::venues::BinanceMarket;
use keel_feeds::{EventBody, InstrumentId, Instruments, MarketEvent, Venue};
use serde_json::{Value, json};

/// `keel tap --help`, above the flags.
pub const LONG_ABOUT: &str = "\
Connect to one venue, subscribe, and print the normalised events the parser produces, one per
line. The connection is kept alive: heartbeats are answered, and on any failure a
`disconnected` event is printed at once, the feed reconnects with jittered exponential backoff,
resubscribes, and prints `reconnected`.

Subscriptions per venue: deribit `ticker.NAME.100ms` (indices such as btc_usd:
`deribit_price_index.NAME`); binance `SYMBOL@bookTicker`; okx `tickers`; bybit `tickers.SYMBOL`;
eth `eth_subscribe newHeads`.

Units: prices in the venue's quote unit (coin for Deribit options), volatilities as decimals,
timestamps in ns since the Unix epoch (exchange and local receive time apart).";

/// `keel tap --help`, below the flags.
pub const AFTER_HELP: &str = "\
Examples:
  keel tap --venue deribit --instruments BTC-PERPETUAL,btc_usd --max-events 20
  keel tap --venue binance --binance-url wss://fstream.binance.com/ws --instruments BTCUSDT --json
  keel tap --venue deribit --deribit-url wss://127.0.0.1:9443/ws/api/v2 --ca-file ca.pem \\
           --instruments BTC-27DEC24-100000-C";

/// The venues `keel tap` speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TapVenue {
    /// Deribit JSON-RPC over WebSocket.
    Deribit,
    /// Binance streams.
    Binance,
    /// OKX v5 public.
    Okx,
    /// Bybit v5 public.
    Bybit,
    /// An Ethereum node's WebSocket JSON-RPC.
    Eth,
    /// Hyperliquid's WebSocket (`l2Book` per coin: BTC, ETH, ...).
    Hyperliquid,
}

/// Binance market of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BinanceMarketArg {
    /// Spot streams.
    Spot,
    /// USDⓈ-M futures streams.
    Futures,
}

/// Arguments of `keel tap`.
#[derive(Args, Debug)]
pub struct TapArgs {
    /// The venue to connect to.
    #[arg(long, value_enum)]
    pub venue: TapVenue,
    /// Deribit WebSocket URL.
    #[arg(
        long,
        value_name = "URL",
        default_value = "wss://www.deribit.com/ws/api/v2"
    )]
    pub deribit_url: String,
    /// Binance WebSocket URL.
    #[arg(
        long,
        value_name = "URL",
        default_value = "wss://fstream.binance.com/ws"
    )]
    pub binance_url: String,
    /// Binance market of --binance-url.
    #[arg(long, value_enum, value_name = "MARKET", default_value_t = BinanceMarketArg::Futures)]
    pub binance_market: BinanceMarketArg,
    /// OKX WebSocket URL.
    #[arg(
        long,
        value_name = "URL",
        default_value = "wss://ws.okx.com:8443/ws/v5/public"
    )]
    pub okx_url: String,
    /// Bybit WebSocket URL (the category is in the path: option, linear, spot).
    #[arg(
        long,
        value_name = "URL",
        default_value = "wss://stream.bybit.com/v5/public/linear"
    )]
    pub bybit_url: String,
    /// Hyperliquid WebSocket URL.
    #[arg(
        long,
        value_name = "URL",
        default_value = "wss://api.hyperliquid.xyz/ws"
    )]
    pub hyperliquid_url: String,
    /// Ethereum node WebSocket URL (required with --venue eth).
    #[arg(long, value_name = "URL")]
    pub eth_url: Option<String>,
    /// Instruments to subscribe to, comma-separated venue symbols.
    #[arg(long, value_delimiter = ',', value_name = "A,B,...")]
    pub instruments: Vec<String>,
    /// Stop after printing this many market events (connection events not counted).
    #[arg(long, value_name = "N")]
    pub max_events: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// PEM file of extra CA certificates to trust (test servers, private gateways).
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// Seconds without a message before the connection counts as stale and is replaced.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub stale_after: f64,
    /// Order books too: Deribit `book.NAME.100ms` (resubscribed for a fresh snapshot after a
    /// change_id gap), Binance `SYMBOL@depth@100ms` synchronised with the REST snapshot
    /// (fetched again after every gap or reconnection).
    #[arg(long)]
    pub books: bool,
    /// Binance REST base URL for depth snapshots (default: derived from --binance-url, e.g.
    /// wss://fstream.binance.com → https://fapi.binance.com).
    #[arg(long, value_name = "URL")]
    pub binance_rest_url: Option<String>,
    /// Print JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `keel tap`.
pub fn run(args: &TapArgs) -> Result<()> {
    let (venue, url) = match args.venue {
        TapVenue::Deribit => (Venue::Deribit, args.deribit_url.clone()),
        TapVenue::Binance => (Venue::Binance, args.binance_url.clone()),
        TapVenue::Okx => (Venue::Okx, args.okx_url.clone()),
        TapVenue::Bybit => (Venue::Bybit, args.bybit_url.clone()),
        TapVenue::Hyperliquid => (Venue::Hyperliquid, args.hyperliquid_url.clone()),
        TapVenue::Eth => match &args.eth_url {
            Some(u) => (Venue::Ethereum, u.clone()),
            None => bail!("--venue eth needs --eth-url URL (a node's WebSocket endpoint)"),
        },
    };
    if venue != Venue::Ethereum && args.instruments.is_empty() {
        bail!("--instruments: give at least one {} symbol", venue.name());
    }
    if let Some(bad) = args.instruments.iter().find(|s| s.trim().is_empty()) {
        bail!("--instruments: empty symbol in the list ({bad:?})");
    }
    if !(args.stale_after.is_finite() && args.stale_after > 0.0) {
        bail!(
            "--stale-after {}: must be a positive number of seconds",
            args.stale_after
        );
    }
    if let Some(d) = args.duration
        && !(d.is_finite() && d > 0.0)
    {
        bail!("--duration {d}: must be a positive number of seconds");
    }

    let spot = args.binance_market == BinanceMarketArg::Spot;
    let mut instruments = Instruments::new();
    for name in &args.instruments {
        register(&mut instruments, venue, name.trim(), spot);
    }
    let session = match venue {
        Venue::Deribit => VenueSession::deribit(&instruments, args.books),
        Venue::Binance => {
            let market = if spot {
                BinanceMarket::Spot
            } else {
                BinanceMarket::UsdmFutures
            };
            let mut b = VenueSession::binance_builder(&instruments, market)
                .depth(args.books)
                .ws_url(&url);
            if let Some(r) = &args.binance_rest_url {
                b = b.rest_url(r);
            }
            b.ca_file(args.ca_file.clone())
                .build()
                .context("--binance-url / --binance-rest-url")?
        }
        Venue::Okx => VenueSession::okx(&instruments),
        Venue::Bybit => VenueSession::bybit(&instruments),
        Venue::Ethereum => VenueSession::ethereum(),
        Venue::Hyperliquid => VenueSession::hyperliquid(&instruments),
    };

    let url_flag = format!(
        "--{}-url",
        if venue == Venue::Ethereum {
            "eth"
        } else {
            venue.name()
        }
    );
    let mut cfg = ConnectionConfig::new(&url).with_context(|| format!("{url_flag} {url}"))?;
    cfg.ca_file = args.ca_file.clone();
    cfg.stale_after = Some(Duration::from_secs_f64(args.stale_after));
    if let Some(ca) = &args.ca_file {
        // Fail early, naming the file, rather than on the first connection attempt.
        keel_feeds::net::tls::client_config(Some(ca))
            .with_context(|| format!("--ca-file {}", ca.display()))?;
    }
    let mut feed = FeedLoop::new().context("starting the feed loop")?;
    feed.add(cfg, Box::new(session))
        .with_context(|| format!("{url_flag} {url}"))?;

    let stop = Arc::new(AtomicBool::new(false));
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let mut printed = 0u64;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut write_err: Option<io::Error> = None;
    let mut emit = |ev: MarketEvent| {
        // One loop turn may deliver a burst: nothing past --max-events is printed.
        if write_err.is_some() || args.max_events.is_some_and(|m| printed >= m) {
            return;
        }
        let line = if args.json {
            json_line(&ev, &instruments).to_string()
        } else {
            text_line(&ev, &instruments)
        };
        let res = writeln!(out, "{line}").and_then(|()| out.flush());
        if let Err(e) = res {
            write_err = Some(e);
            stop.store(true, Ordering::Relaxed);
            return;
        }
        if is_market(&ev.body) {
            printed += 1;
            if args.max_events.is_some_and(|m| printed >= m) {
                stop.store(true, Ordering::Relaxed);
            }
        }
    };
    while !stop.load(Ordering::Relaxed) {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        feed.run_once(Duration::from_millis(50), &mut emit)
            .context("feed loop")?;
    }
    feed.shutdown(&mut |_| {});
    if let Some(e) = write_err {
        return Err(e).context("writing standard output");
    }
    Ok(())
}

fn is_market(b: &EventBody) -> bool {
    !matches!(
        b,
        EventBody::Connected
            | EventBody::Disconnected { .. }
            | EventBody::Reconnected { .. }
            | EventBody::Stale { .. }
            | EventBody::Fresh
    )
}

fn kind_name(b: &EventBody) -> &'static str {
    match b {
        EventBody::Quote { .. } => "quote",
        EventBody::OptionTicker(_) => "option_ticker",
        EventBody::VenueGreeks(_) => "venue_greeks",
        EventBody::Mark { .. } => "mark",
        EventBody::Index { .. } => "index",
        EventBody::Trade { .. } => "trade",
        EventBody::BookLevel { .. } => "book_level",
        EventBody::SequenceGap { .. } => "sequence_gap",
        EventBody::ChainHead { .. } => "chain_head",
        EventBody::Connected => "connected",
        EventBody::Disconnected { .. } => "disconnected",
        EventBody::Reconnected { .. } => "reconnected",
        EventBody::Stale { .. } => "stale",
        EventBody::Fresh => "fresh",
    }
}

fn instrument_name(id: InstrumentId, reg: &Instruments) -> Option<&str> {
    reg.get(id).map(|i| i.name.as_str())
}

/// A number, or null when the venue did not send it (NaN).
fn num(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

/// The event as one JSON object: `venue`, `kind`, `instrument`, `bid`, `ask`, `mark`, `iv`,
/// `underlying`, `exchange_ts_ns`, `recv_ts_ns` (null where absent); chain heads add `number`,
/// `base_fee`, `gas_used`, `gas_limit`; other kinds add their own fields.
pub fn json_line(ev: &MarketEvent, reg: &Instruments) -> Value {
    let mut o = json!({
        "venue": ev.venue.name(),
        "kind": kind_name(&ev.body),
        "instrument": instrument_name(ev.instrument, reg),
        "bid": null, "ask": null, "mark": null, "iv": null, "underlying": null,
        "exchange_ts_ns": if ev.exchange_ts_ns == 0 { Value::Null } else { json!(ev.exchange_ts_ns) },
        "recv_ts_ns": ev.recv_ts_ns,
    });
    let m = o.as_object_mut().expect("object literal");
    let mut set = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    match ev.body {
        EventBody::Quote {
            bid,
            bid_size,
            ask,
            ask_size,
        } => {
            set("bid", num(bid));
            set("ask", num(ask));
            set("bid_size", num(bid_size));
            set("ask_size", num(ask_size));
        }
        EventBody::OptionTicker(t) => {
            set("bid", num(t.bid));
            set("ask", num(t.ask));
            set("bid_size", num(t.bid_size));
            set("ask_size", num(t.ask_size));
            set("mark", num(t.mark));
            set("iv", num(t.mark_iv));
            set("bid_iv", num(t.bid_iv));
            set("ask_iv", num(t.ask_iv));
            set("underlying", num(t.underlying));
            set("index", num(t.index));
        }
        EventBody::VenueGreeks(g) => {
            set("delta", num(g.delta));
            set("gamma", num(g.gamma));
            set("vega", num(g.vega));
            set("theta", num(g.theta));
            set("rho", num(g.rho));
        }
        EventBody::Mark {
            mark,
            iv,
            index,
            funding_rate,
        } => {
            set("mark", num(mark));
            set("iv", num(iv));
            set("index", num(index));
            set("funding_rate", num(funding_rate));
        }
        EventBody::Index { price } => set("mark", num(price)),
        EventBody::Trade {
            price,
            qty,
            side,
            trade_id,
        } => {
            set("price", num(price));
            set("qty", num(qty));
            set("side", json!(if side as i8 > 0 { "buy" } else { "sell" }));
            set("trade_id", json!(trade_id));
        }
        EventBody::BookLevel {
            price,
            size,
            side,
            snapshot,
            seq,
            ..
        } => {
            set("price", num(price));
            set("size", num(size));
            set("side", json!(if side as i8 > 0 { "bid" } else { "ask" }));
            set("snapshot", json!(snapshot));
            set("seq", json!(seq));
        }
        EventBody::SequenceGap { expected, got } => {
            set("expected", json!(expected));
            set("got", json!(got));
        }
        EventBody::ChainHead {
            number,
            base_fee_wei,
            gas_used,
            gas_limit,
            timestamp_s,
        } => {
            set("number", json!(number));
            set("base_fee", json!(base_fee_wei));
            set("gas_used", json!(gas_used));
            set("gas_limit", json!(gas_limit));
            set("timestamp_s", json!(timestamp_s));
        }
        EventBody::Connected => {}
        EventBody::Disconnected { reason } => set("reason", json!(format!("{reason:?}"))),
        EventBody::Reconnected { attempts } => set("attempts", json!(attempts)),
        EventBody::Stale { since_ns } => set("since_ns", json!(since_ns)),
        EventBody::Fresh => {}
    }
    o
}

/// The event as one human-readable line.
pub fn text_line(ev: &MarketEvent, reg: &Instruments) -> String {
    let j = json_line(ev, reg);
    let mut s = format!(
        "{:<8} {:<14} {:<24}",
        ev.venue.name(),
        kind_name(&ev.body),
        j["instrument"].as_str().unwrap_or("-")
    );
    if let Some(obj) = j.as_object() {
        for (k, v) in obj {
            if matches!(
                k.as_str(),
                "venue" | "kind" | "instrument" | "exchange_ts_ns" | "recv_ts_ns"
            ) || v.is_null()
            {
                continue;
            }
            s.push_str(&format!(" {k}={v}"));
        }
    }
    s.push_str(&format!(
        " exch_ts={} recv_ts={}",
        ev.exchange_ts_ns, ev.recv_ts_ns
    ));
    s
}
