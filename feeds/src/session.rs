//! The venue sessions: each venue's protocol on top of a WebSocket connection
//! ([`crate::net::Session`]) — what to subscribe to on every (re)connection, how to answer
//! heartbeats, when to ping, what to do after a sequence gap — with the venue's parser
//! ([`crate::venues`]) turning payloads into events.
//!
//! Owns subscription state only; knows nothing of sockets. Never allocates per message: every
//! request is built at construction or into a buffer reused for replies. Never stops a feed on a
//! malformed message: it is counted and logged (at most one line per second per session, with
//! the venue and the message's first bytes).

use std::path::PathBuf;
use std::time::Duration;

use crate::book_sync::{DepthSync, DepthSyncConfig, DepthSyncStats, SnapshotFetcher};
use crate::event::{DisconnectReason, MarketEvent, Venue};
use crate::freshness::{Freshness, StreamKind};
use crate::instrument::{Instrument, InstrumentId, InstrumentKind, Instruments, OptionRight};
use crate::net::url::{Scheme, Url, UrlError};
use crate::net::{Outbox, Session};
use crate::venues::{
    self, BinanceMarket, BinanceParser, BybitParser, DeribitParser, EthereumParser,
    HyperliquidParser, OkxParser, Parsed, ParserStats, VenueParser,
};
use std::io::Write as _;

/// How often a session may log a malformed message.
const LOG_EVERY_NS: u64 = 1_000_000_000;
/// Client-side ping interval for venues that want one (OKX: within 30 s; Bybit: 20 s).
const CLIENT_PING_NS: u64 = 15_000_000_000;
/// Deribit heartbeat interval asked for with `public/set_heartbeat`, seconds.
const DERIBIT_HEARTBEAT_S: u32 = 10;
/// Channels per Deribit `public/subscribe` request at most (a request stays ~20 KB).
pub const DERIBIT_CHANNELS_PER_REQUEST: usize = 500;
/// Channels one Deribit connection carries at most; `keel run` spreads a larger chain over
/// several connections (keel-sim takes at most 20,000 per connection).
pub const DERIBIT_CHANNELS_PER_CONNECTION: usize = 10_000;
/// Default silence limit of one subscription ([`crate::freshness`]).
pub const DEFAULT_SUBSCRIPTION_STALE: Duration = Duration::from_secs(5);

/// One venue connection's protocol: subscriptions, heartbeats, gap recovery and parsing.
pub struct VenueSession {
    venue: Venue,
    parser: Box<dyn VenueParser>,
    /// Requests sent, in order, after every (re)connection.
    open_requests: Vec<Vec<u8>>,
    /// Per instrument id: the requests that resubscribe its book (Deribit: unsubscribe, then
    /// subscribe, so the new subscription starts with a snapshot); none if it has no book.
    book_resubscribe: Vec<Option<[Vec<u8>; 2]>>,
    /// Ids of the open requests, to recognise their rejection.
    open_ids: Vec<u64>,
    /// Reused buffer for replies built while streaming.
    scratch: Vec<u8>,
    /// Client-side ping payload and interval, for venues that want one.
    ping: Option<Vec<u8>>,
    last_ping_ns: u64,
    last_log_ns: u64,
    /// Malformed messages not logged because of the rate limit.
    suppressed: u64,
    opens: u64,
    /// Binance books kept from REST snapshots (depth streams), if subscribed.
    depth: Option<DepthFeed>,
    /// Per-subscription staleness.
    fresh: Freshness,
    /// Books to start again from a snapshot ([`Session::request_resync`]), at most
    /// [`RESYNC_PENDING`] (more: all of them, `resync_all`).
    resync: Vec<InstrumentId>,
    resync_all: bool,
}

/// Book resync requests held at once before they become one "every book" request.
const RESYNC_PENDING: usize = 16;

/// A Binance session's depth books: their synchronisation and the snapshot fetcher.
struct DepthFeed {
    sync: DepthSync,
    fetcher: SnapshotFetcher,
}

impl DepthFeed {
    /// Applies the snapshot replies that are ready (nothing to do, and no call into the
    /// channel, while none is in flight).
    fn poll(&mut self, parser: &mut dyn VenueParser, emit: &mut dyn FnMut(MarketEvent)) {
        let Self { sync, fetcher } = self;
        while let Some(reply) = fetcher.poll() {
            let now = crate::clock::now_ns();
            sync.on_snapshot(&reply, parser, now, emit, &mut |slot, generation| {
                fetcher.request(slot, generation)
            });
            fetcher.recycle(reply);
        }
    }
}

/// Why a session could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Depth books need a REST base: give the WebSocket URL it derives from, or the REST URL.
    #[error("Binance depth books need a REST URL: set ws_url (to derive it) or rest_url")]
    NoRestUrl,
    /// A URL does not parse, or is not of the expected kind.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The REST URL is not http:// or https://.
    #[error("REST URL {0:?} is not http:// or https://")]
    NotHttp(String),
    /// The snapshot helper thread could not start.
    #[error("cannot start the snapshot fetcher thread: {0}")]
    Spawn(std::io::Error),
}

/// The REST base (scheme, host and port, no path) of a Binance WebSocket URL: Binance's own
/// stream hosts map to their REST hosts (`fstream.binance.com` → `https://fapi.binance.com`,
/// `stream.binance.com` → `https://api.binance.com`, their testnets likewise); any other host
/// (keel-sim, a gateway) serves REST on the same host and port (`ws` → `http`, `wss` →
/// `https`).
pub fn binance_rest_base(ws_url: &str) -> Result<String, UrlError> {
    let u = Url::parse(ws_url)?;
    let known = match u.host() {
        "fstream.binance.com" | "fstream-auth.binance.com" => Some("https://fapi.binance.com"),
        "stream.binance.com" | "data-stream.binance.vision" => Some("https://api.binance.com"),
        "stream.binancefuture.com" | "fstream.binancefuture.com" => {
            Some("https://testnet.binancefuture.com")
        }
        "testnet.binance.vision" | "stream.testnet.binance.vision" => {
            Some("https://testnet.binance.vision")
        }
        _ => None,
    };
    if let Some(k) = known {
        return Ok(k.to_owned());
    }
    let scheme = match u.scheme() {
        Scheme::Ws | Scheme::Http => Scheme::Http,
        Scheme::Wss | Scheme::Https => Scheme::Https,
    };
    let host = if u.host().contains(':') {
        format!("[{}]", u.host())
    } else {
        u.host().to_owned()
    };
    Ok(if u.port() == scheme.default_port() {
        format!("{}://{host}", scheme.as_str())
    } else {
        format!("{}://{host}:{}", scheme.as_str(), u.port())
    })
}

/// Builds a Binance session: `{symbol}@bookTicker` per instrument, and with
/// [`depth`](Self::depth) `{symbol}@depth@100ms` books kept from REST snapshots
/// ([`crate::book_sync`]).
#[derive(Debug, Clone)]
pub struct BinanceSessionBuilder<'a> {
    instruments: &'a Instruments,
    market: BinanceMarket,
    depth: bool,
    ws_url: Option<String>,
    rest_url: Option<String>,
    ca_file: Option<PathBuf>,
    depth_limit: u32,
    sync: DepthSyncConfig,
    http_timeout: Duration,
    stale_after: Option<Duration>,
}

impl BinanceSessionBuilder<'_> {
    /// Silence limit of every subscription (bookTicker, depth); default
    /// [`DEFAULT_SUBSCRIPTION_STALE`], None: never stale.
    pub fn stale_after(mut self, limit: Option<Duration>) -> Self {
        self.stale_after = limit;
        self
    }

    /// Also subscribe to `{symbol}@depth@100ms` and keep books from REST snapshots.
    pub fn depth(mut self, on: bool) -> Self {
        self.depth = on;
        self
    }

    /// The connection's WebSocket URL, from which the REST base derives
    /// ([`binance_rest_base`]).
    pub fn ws_url(mut self, url: &str) -> Self {
        self.ws_url = Some(url.to_owned());
        self
    }

    /// The REST base (`https://fapi.binance.com`, `http://127.0.0.1:8765`), overriding the one
    /// derived from [`ws_url`](Self::ws_url).
    pub fn rest_url(mut self, url: &str) -> Self {
        self.rest_url = Some(url.to_owned());
        self
    }

    /// Extra trusted CA certificates (PEM) for an https REST base.
    pub fn ca_file(mut self, path: Option<PathBuf>) -> Self {
        self.ca_file = path;
        self
    }

    /// Snapshot depth asked for (`limit`). Default 1,000.
    pub fn depth_limit(mut self, limit: u32) -> Self {
        self.depth_limit = limit;
        self
    }

    /// Buffer limits and retry delay of the depth books.
    pub fn depth_sync(mut self, config: DepthSyncConfig) -> Self {
        self.sync = config;
        self
    }

    /// Bound on one snapshot request. Default 10 s.
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// The session (starts the snapshot helper thread when depth books are on).
    pub fn build(self) -> Result<VenueSession, SessionError> {
        let symbols: Vec<(InstrumentId, String)> = self
            .instruments
            .iter()
            .filter(|(_, i)| i.venue == Venue::Binance)
            .map(|(id, i)| (id, i.name.to_ascii_uppercase()))
            .collect();
        let mut streams: Vec<String> = symbols
            .iter()
            .map(|(_, s)| format!("{}@bookTicker", s.to_ascii_lowercase()))
            .collect();
        let mut depth = None;
        if self.depth && !symbols.is_empty() {
            let base = match (&self.rest_url, &self.ws_url) {
                (Some(r), _) => r.trim_end_matches('/').to_owned(),
                (None, Some(w)) => binance_rest_base(w)?,
                (None, None) => return Err(SessionError::NoRestUrl),
            };
            if Url::parse(&base)?.scheme().is_websocket() {
                return Err(SessionError::NotHttp(base));
            }
            let path = match self.market {
                BinanceMarket::UsdmFutures => "/fapi/v1/depth",
                BinanceMarket::Spot => "/api/v3/depth",
            };
            let urls: Vec<String> = symbols
                .iter()
                .map(|(_, s)| format!("{base}{path}?symbol={s}&limit={}", self.depth_limit))
                .collect();
            for (_, s) in &symbols {
                streams.push(format!("{}@depth@100ms", s.to_ascii_lowercase()));
            }
            let books: Vec<(InstrumentId, &str)> =
                symbols.iter().map(|(i, s)| (*i, s.as_str())).collect();
            let fetcher =
                SnapshotFetcher::spawn("keel-binance-rest", urls, self.ca_file, self.http_timeout)
                    .map_err(SessionError::Spawn)?;
            depth = Some(DepthFeed {
                sync: DepthSync::new(&books, self.sync),
                fetcher,
            });
        }
        let refs: Vec<&str> = streams.iter().map(String::as_str).collect();
        let mut subscribe = Vec::new();
        venues::binance::subscribe(&mut subscribe, 1, &refs);
        let mut tracked: Vec<(InstrumentId, StreamKind)> = symbols
            .iter()
            .map(|(i, _)| (*i, StreamKind::Data))
            .collect();
        if depth.is_some() {
            tracked.extend(symbols.iter().map(|(i, _)| (*i, StreamKind::Book)));
        }
        let mut session = VenueSession::new(
            Venue::Binance,
            Box::new(BinanceParser::new(self.market, self.instruments)),
            vec![subscribe],
            vec![1],
            Vec::new(),
            None,
        )
        .tracking(&tracked)
        .with_stale_after(self.stale_after);
        session.depth = depth;
        Ok(session)
    }
}

impl VenueSession {
    /// A Deribit session: `ticker.{name}.100ms` for options, futures and perpetuals,
    /// `deribit_price_index.{name}` for indices, `book.{name}.100ms` too when `books`.
    pub fn deribit(instruments: &Instruments, books: bool) -> Self {
        Self::deribit_only(instruments, books, &|_, _| true)
    }

    /// A Deribit session subscribing only the instruments `subscribe` accepts (ids stay those
    /// of `instruments`, so events resolve against the same registry).
    pub fn deribit_only(
        instruments: &Instruments,
        books: bool,
        subscribe: &dyn Fn(InstrumentId, &Instrument) -> bool,
    ) -> Self {
        Self::deribit_select(instruments, subscribe, &|_, _| books)
    }

    /// A Deribit session subscribing the instruments `subscribe` accepts, with
    /// `book.{name}.100ms` too for those of them `book` accepts (the hedge instrument's depth,
    /// say, without a book per option).
    pub fn deribit_select(
        instruments: &Instruments,
        subscribe: &dyn Fn(InstrumentId, &Instrument) -> bool,
        book: &dyn Fn(InstrumentId, &Instrument) -> bool,
    ) -> Self {
        let mut channels = Vec::new();
        let mut streams = Vec::new();
        let mut book_resubscribe = vec![None; instruments.len()];
        for (id, inst) in instruments
            .iter()
            .filter(|(id, i)| i.venue == Venue::Deribit && subscribe(*id, i))
        {
            match inst.kind {
                InstrumentKind::Index => {
                    channels.push(format!("deribit_price_index.{}", inst.name));
                    streams.push((id, StreamKind::Data));
                }
                _ => {
                    channels.push(format!("ticker.{}.100ms", inst.name));
                    streams.push((id, StreamKind::Data));
                    if book(id, inst) {
                        streams.push((id, StreamKind::Book));
                        let ch = format!("book.{}.100ms", inst.name);
                        // A fresh subscription starts with a snapshot: unsubscribe, subscribe.
                        let mut unsub = Vec::new();
                        venues::deribit::unsubscribe(&mut unsub, 900_000 + id.0 as u64, &[&ch]);
                        let mut sub = Vec::new();
                        venues::deribit::subscribe(&mut sub, 950_000 + id.0 as u64, &[&ch]);
                        book_resubscribe[id.0 as usize] = Some([unsub, sub]);
                        channels.push(ch);
                    }
                }
            }
        }
        let mut heartbeat = Vec::new();
        venues::deribit::set_heartbeat(&mut heartbeat, 1, DERIBIT_HEARTBEAT_S);
        let refs: Vec<&str> = channels.iter().map(String::as_str).collect();
        // At most DERIBIT_CHANNELS_PER_REQUEST channels per `public/subscribe` (ids 2, 3, ...):
        // a whole chain in one request would be megabytes, over venues' message limits.
        let mut requests = vec![heartbeat];
        let mut ids = vec![1];
        for (k, chunk) in refs.chunks(DERIBIT_CHANNELS_PER_REQUEST).enumerate() {
            let mut subscribe = Vec::new();
            let id = 2 + k as u64;
            venues::deribit::subscribe(&mut subscribe, id, chunk);
            requests.push(subscribe);
            ids.push(id);
        }
        Self::new(
            Venue::Deribit,
            Box::new(DeribitParser::new(instruments)),
            requests,
            ids,
            book_resubscribe,
            None,
        )
        .tracking(&streams)
    }

    /// A Binance session (`market` spot or USDⓈ-M futures): `{symbol}@bookTicker` per
    /// instrument. For depth books, staleness limits and the REST URL, use
    /// [`binance_builder`](Self::binance_builder).
    pub fn binance(instruments: &Instruments, market: BinanceMarket) -> Self {
        match Self::binance_builder(instruments, market).build() {
            Ok(s) => s,
            // Without depth books nothing can fail: no URL, no thread.
            Err(_) => unreachable!("a Binance session without depth books always builds"),
        }
    }

    /// A Binance session builder (`market` spot or USDⓈ-M futures).
    pub fn binance_builder(
        instruments: &Instruments,
        market: BinanceMarket,
    ) -> BinanceSessionBuilder<'_> {
        BinanceSessionBuilder {
            instruments,
            market,
            depth: false,
            ws_url: None,
            rest_url: None,
            ca_file: None,
            depth_limit: 1000,
            sync: DepthSyncConfig::default(),
            http_timeout: Duration::from_secs(10),
            stale_after: Some(DEFAULT_SUBSCRIPTION_STALE),
        }
    }

    /// Counters of the Binance depth books' synchronisation (None without depth books).
    pub fn depth_stats(&self) -> Option<DepthSyncStats> {
        self.depth.as_ref().map(|d| d.sync.stats())
    }

    /// An OKX session: `tickers` per instrument; the text `ping` every 15 s.
    pub fn okx(instruments: &Instruments) -> Self {
        let ours: Vec<&Instrument> = instruments
            .iter()
            .filter(|(_, i)| i.venue == Venue::Okx)
            .map(|(_, i)| i)
            .collect();
        // Option families (`BTC-USD` of `BTC-USD-231229-40000-P`) for opt-summary, once each.
        let mut families: Vec<&str> = ours
            .iter()
            .filter(|i| i.kind == InstrumentKind::Option)
            .filter_map(|i| {
                i.name
                    .match_indices('-')
                    .nth(1)
                    .map(|(at, _)| &i.name[..at])
            })
            .collect();
        families.sort_unstable();
        families.dedup();
        let mut args: Vec<venues::okx::OkxArg<'_>> = ours
            .iter()
            .map(|i| venues::okx::OkxArg {
                channel: if i.kind == InstrumentKind::Index {
                    "index-tickers"
                } else {
                    "tickers"
                },
                inst_id: Some(i.name.as_str()),
                inst_family: None,
                inst_type: None,
            })
            .collect();
        args.extend(families.iter().map(|f| venues::okx::OkxArg {
            channel: "opt-summary",
            inst_id: None,
            inst_family: Some(f),
            inst_type: None,
        }));
        let mut subscribe = Vec::new();
        venues::okx::subscribe(&mut subscribe, Some(1), &args);
        let streams: Vec<_> = instruments
            .iter()
            .filter(|(_, i)| i.venue == Venue::Okx)
            .map(|(id, _)| (id, StreamKind::Data))
            .collect();
        Self::new(
            Venue::Okx,
            Box::new(OkxParser::new(instruments)),
            vec![subscribe],
            vec![1],
            Vec::new(),
            Some(b"ping".to_vec()),
        )
        .tracking(&streams)
    }

    /// A Bybit session: `tickers.{symbol}` per instrument; `{"op":"ping"}` every 15 s.
    pub fn bybit(instruments: &Instruments) -> Self {
        let topics: Vec<String> = instruments
            .iter()
            .filter(|(_, i)| i.venue == Venue::Bybit)
            .map(|(_, i)| format!("tickers.{}", i.name))
            .collect();
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        let mut subscribe = Vec::new();
        venues::bybit::subscribe(&mut subscribe, Some(1), &refs);
        let mut ping = Vec::new();
        venues::bybit::ping(&mut ping, None);
        let streams: Vec<_> = instruments
            .iter()
            .filter(|(_, i)| i.venue == Venue::Bybit)
            .map(|(id, _)| (id, StreamKind::Data))
            .collect();
        Self::new(
            Venue::Bybit,
            Box::new(BybitParser::new(instruments)),
            vec![subscribe],
            vec![1],
            Vec::new(),
            Some(ping),
        )
        .tracking(&streams)
    }

    /// A Hyperliquid session: `l2Book` per coin (the instruments of venue Hyperliquid, named
    /// by coin: `BTC`); `{"method":"ping"}` every 15 s (Hyperliquid closes a connection silent
    /// for 60 s). Each book's silence is tracked (its messages are whole snapshots).
    pub fn hyperliquid(instruments: &Instruments) -> Self {
        let ours: Vec<(InstrumentId, &Instrument)> = instruments
            .iter()
            .filter(|(_, i)| i.venue == Venue::Hyperliquid)
            .collect();
        let requests = ours
            .iter()
            .map(|(_, i)| {
                let mut r = Vec::new();
                venues::hyperliquid::subscribe_l2_book(&mut r, &i.name);
                r
            })
            .collect();
        let mut ping = Vec::new();
        venues::hyperliquid::ping(&mut ping);
        let streams: Vec<_> = ours
            .iter()
            .flat_map(|(id, _)| [(*id, StreamKind::Data), (*id, StreamKind::Book)])
            .collect();
        Self::new(
            Venue::Hyperliquid,
            Box::new(HyperliquidParser::new(instruments)),
            requests,
            Vec::new(),
            Vec::new(),
            Some(ping),
        )
        .tracking(&streams)
    }

    /// An Ethereum node session: `eth_subscribe newHeads`.
    pub fn ethereum() -> Self {
        let mut subscribe = Vec::new();
        venues::ethereum::subscribe_new_heads(&mut subscribe, 1);
        Self::new(
            Venue::Ethereum,
            Box::new(EthereumParser::new()),
            vec![subscribe],
            vec![1],
            Vec::new(),
            None,
        )
    }

    fn new(
        venue: Venue,
        parser: Box<dyn VenueParser>,
        open_requests: Vec<Vec<u8>>,
        open_ids: Vec<u64>,
        book_resubscribe: Vec<Option<[Vec<u8>; 2]>>,
        ping: Option<Vec<u8>>,
    ) -> Self {
        Self {
            venue,
            parser,
            open_requests,
            book_resubscribe,
            open_ids,
            scratch: Vec::with_capacity(256),
            ping,
            last_ping_ns: 0,
            last_log_ns: 0,
            suppressed: 0,
            opens: 0,
            depth: None,
            fresh: Freshness::new(venue, &[], None),
            resync: Vec::with_capacity(RESYNC_PENDING),
            resync_all: false,
        }
    }

    /// Tracks these subscriptions' staleness with the default limit.
    fn tracking(mut self, streams: &[(InstrumentId, StreamKind)]) -> Self {
        self.fresh = Freshness::new(self.venue, streams, Some(DEFAULT_SUBSCRIPTION_STALE));
        self
    }

    /// Sets every subscription's silence limit (default
    /// [`DEFAULT_SUBSCRIPTION_STALE`]; None: never stale, leaving only the connection-wide
    /// limit).
    pub fn with_stale_after(mut self, limit: Option<Duration>) -> Self {
        self.fresh.set_default(limit);
        self
    }

    /// Sets one subscription's silence limit (its ticker/index with `book` false, its book
    /// with `book` true); false if the session has no such subscription.
    pub fn set_stale_after(
        &mut self,
        instrument: InstrumentId,
        book: bool,
        limit: Option<Duration>,
    ) -> bool {
        let kind = if book {
            StreamKind::Book
        } else {
            StreamKind::Data
        };
        self.fresh.set_limit(instrument, kind, limit)
    }

    /// The parser's counters (messages, events, unknown instruments, malformed).
    pub fn stats(&self) -> ParserStats {
        self.parser.stats()
    }

    fn log_malformed(&mut self, now_ns: u64, e: &venues::ParseError) {
        if now_ns.saturating_sub(self.last_log_ns) < LOG_EVERY_NS && self.last_log_ns != 0 {
            self.suppressed += 1;
            return;
        }
        self.last_log_ns = now_ns.max(1);
        let suppressed = std::mem::take(&mut self.suppressed);
        // One line to standard error; a closed stderr is no reason to stop the feed.
        let _ = writeln!(
            std::io::stderr(),
            "keel feeds: {} malformed message ({e}){}",
            self.venue.name(),
            if suppressed > 0 {
                format!("; {suppressed} more not shown")
            } else {
                String::new()
            }
        );
    }
}

impl Session for VenueSession {
    fn venue(&self) -> Venue {
        self.venue
    }

    fn request_resync(&mut self, instrument: InstrumentId) {
        if instrument == InstrumentId::NONE || self.resync.len() == RESYNC_PENDING {
            self.resync_all = true;
        } else if !self.resync.contains(&instrument) {
            self.resync.push(instrument);
        }
    }

    fn poll_outgoing(&mut self, out: &mut Outbox<'_>) -> bool {
        if self.resync.is_empty() && !self.resync_all {
            return false;
        }
        // Deribit: unsubscribe and subscribe the book again (a new subscription starts with a
        // snapshot). Binance: the book awaits its next update and fetches a REST snapshot.
        let mut sent = false;
        let all = std::mem::take(&mut self.resync_all);
        let mut one = |session: &mut Self, instrument: Option<InstrumentId>| {
            if let Some(d) = &mut session.depth {
                d.sync.restart(instrument, &mut *session.parser);
            }
            let ids: &mut dyn Iterator<Item = usize> = match instrument {
                Some(i) => &mut std::iter::once(i.0 as usize),
                None => &mut (0..session.book_resubscribe.len()),
            };
            for k in ids {
                if let Some(Some(reqs)) = session.book_resubscribe.get(k) {
                    for req in reqs {
                        out.send_text(req);
                    }
                    sent = true;
                }
            }
        };
        if all {
            self.resync.clear();
            one(self, None);
        } else {
            while let Some(i) = self.resync.pop() {
                one(self, Some(i));
            }
        }
        sent
    }

    fn on_open(&mut self, out: &mut Outbox<'_>) {
        self.opens += 1;
        self.fresh.on_open();
        // A new subscription starts every book with a snapshot.
        self.parser.reset_books();
        if let Some(d) = &mut self.depth {
            // Binance: buffer the stream, fetch a REST snapshot on the first update.
            d.sync.on_open(&mut *self.parser);
        }
        for req in &self.open_requests {
            out.send_text(req);
        }
    }

    fn on_message(
        &mut self,
        payload: &[u8],
        recv_ts_ns: u64,
        out: &mut Outbox<'_>,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<(), DisconnectReason> {
        let fresh = &mut self.fresh;
        let emit = &mut |ev: MarketEvent| fresh.pass(ev, emit);
        if let Some(d) = &mut self.depth
            && d.fetcher.in_flight() > 0
        {
            d.poll(&mut *self.parser, emit);
        }
        let parsed = self.parser.parse(payload, recv_ts_ns, emit);
        if let (Some(d), Ok(p)) = (&mut self.depth, &parsed)
            && matches!(p, Parsed::Gap { .. } | Parsed::BookSkipped { .. })
        {
            let DepthFeed { sync, fetcher } = d;
            sync.on_parsed(
                p,
                payload,
                recv_ts_ns,
                recv_ts_ns,
                &mut |slot, generation| fetcher.request(slot, generation),
            );
        }
        match parsed {
            Ok(Parsed::HeartbeatRequest) => {
                self.scratch.clear();
                venues::deribit::test_reply(&mut self.scratch, 3);
                out.send_text(&self.scratch);
            }
            Ok(Parsed::Gap { instrument }) => {
                // Deribit: resubscribe the book for a new snapshot. (Binance: a REST snapshot,
                // requested above by the depth books.)
                if let Some(Some(reqs)) = self.book_resubscribe.get(instrument.0 as usize) {
                    for req in reqs {
                        out.send_text(req);
                    }
                }
            }
            Ok(Parsed::Error { id: Some(id), .. }) if self.open_ids.contains(&id) => {
                // A subscription or heartbeat setup was refused: nothing will flow.
                return Err(DisconnectReason::Rejected);
            }
            Ok(_) => {}
            Err(e) => self.log_malformed(recv_ts_ns, &e),
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        now_ns: u64,
        out: &mut Outbox<'_>,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<(), DisconnectReason> {
        let fresh = &mut self.fresh;
        if let Some(d) = &mut self.depth {
            d.poll(&mut *self.parser, &mut |ev| fresh.pass(ev, emit));
            let DepthFeed { sync, fetcher } = d;
            sync.on_timer(now_ns, &mut |slot, generation| {
                fetcher.request(slot, generation)
            });
        }
        fresh.on_timer(now_ns, emit);
        if let Some(ping) = &self.ping
            && now_ns.saturating_sub(self.last_ping_ns) >= CLIENT_PING_NS
        {
            if self.last_ping_ns != 0 {
                out.send_text(ping);
            }
            self.last_ping_ns = now_ns;
        }
        Ok(())
    }
}

/// Builds the registry entry for a venue symbol given on a command line, without the venue's
/// instrument list: Deribit option names are parsed (`BTC-27DEC24-100000-C`), `-PERPETUAL` is a
/// perpetual, lower-case names with `_` are indices (`btc_usd`), anything else a future;
/// Binance, OKX and Bybit symbols are perpetuals or spot pairs (`spot` says which) unless they
/// parse as option names (OKX `BTC-USD-231229-40000-P`, Bybit `BTC-6JAN23-17500-C`).
pub fn instrument_from_name(venue: Venue, name: &str, spot: bool) -> Instrument {
    let base = |kind, inverse| Instrument {
        venue,
        name: name.to_string(),
        kind,
        base_currency: String::new(),
        quote_currency: String::new(),
        settlement_currency: String::new(),
        strike: f64::NAN,
        expiry_ms: 0,
        right: None,
        contract_size: 1.0,
        inverse,
        tick_size: f64::NAN,
        min_size: f64::NAN,
    };
    match venue {
        Venue::Deribit => {
            if let Ok(opt) = venues::deribit::parse_option_name(name) {
                let mut inst = opt.to_instrument(name);
                inst.venue = venue;
                return inst;
            }
            if name.ends_with("-PERPETUAL") {
                base(InstrumentKind::Perpetual, true)
            } else if name.contains('_') && name.chars().all(|c| !c.is_ascii_uppercase()) {
                base(InstrumentKind::Index, false)
            } else {
                base(InstrumentKind::Future, true)
            }
        }
        Venue::Okx | Venue::Bybit if looks_like_option(name) => {
            let right = if name.ends_with("-C") {
                OptionRight::Call
            } else {
                OptionRight::Put
            };
            Instrument {
                right: Some(right),
                ..base(InstrumentKind::Option, false)
            }
        }
        Venue::Ethereum => base(InstrumentKind::Index, false),
        // OKX indices are `BASE-USD` (`index-tickers`); its spot pairs quote USDT/USDC.
        Venue::Okx if name.split('-').count() == 2 && name.ends_with("-USD") => {
            base(InstrumentKind::Index, false)
        }
        _ if spot => base(InstrumentKind::Spot, false),
        _ => base(InstrumentKind::Perpetual, false),
    }
}

fn looks_like_option(name: &str) -> bool {
    (name.ends_with("-C") || name.ends_with("-P")) && name.matches('-').count() >= 3
}

/// The id of `name` in `instruments`, registering it with [`instrument_from_name`] if new.
pub fn register(
    instruments: &mut Instruments,
    venue: Venue,
    name: &str,
    spot: bool,
) -> InstrumentId {
    match instruments.id(venue, name.as_bytes()) {
        Some(id) => id,
        None => instruments.insert(instrument_from_name(venue, name, spot)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ws::{FrameEncoder, parse_client_frames};

    fn opened(session: &mut VenueSession) -> Vec<String> {
        let mut enc = FrameEncoder::with_seed(1);
        let mut buf = Vec::new();
        let mut out = Outbox::new(&mut enc, &mut buf);
        session.on_open(&mut out);
        parse_client_frames(&buf)
            .unwrap()
            .into_iter()
            .map(|(_, _, p)| String::from_utf8(p).unwrap())
            .collect()
    }

    #[test]
    fn okx_subscribes_tickers_option_summaries_per_family_and_indices() {
        let mut reg = Instruments::new();
        for n in [
            "BTC-USDT",
            "BTC-USD-231229-40000-P",
            "BTC-USD-231229-45000-C",
            "ETH-USD-231229-2000-C",
            "BTC-USD",
        ] {
            register(&mut reg, Venue::Okx, n, false);
        }
        let mut s = VenueSession::okx(&reg);
        let sent = opened(&mut s);
        assert_eq!(sent.len(), 1, "{sent:?}");
        let v: serde_json::Value = serde_json::from_str(&sent[0]).unwrap();
        let args = v["args"].as_array().unwrap();
        let has = |ch: &str, key: &str, val: &str| {
            args.iter().any(|a| a["channel"] == ch && a[key] == val)
        };
        assert!(has("tickers", "instId", "BTC-USDT"), "{v}");
        assert!(has("tickers", "instId", "BTC-USD-231229-40000-P"), "{v}");
        assert!(has("index-tickers", "instId", "BTC-USD"), "{v}");
        assert!(has("opt-summary", "instFamily", "BTC-USD"), "{v}");
        assert!(has("opt-summary", "instFamily", "ETH-USD"), "{v}");
        let families = args
            .iter()
            .filter(|a| a["channel"] == "opt-summary")
            .count();
        assert_eq!(families, 2, "one opt-summary per family: {v}");
    }

    #[test]
    fn deribit_subscribes_heartbeat_and_channels_and_answers_test_requests() {
        let mut reg = Instruments::new();
        register(&mut reg, Venue::Deribit, "BTC-27DEC24-100000-C", false);
        register(&mut reg, Venue::Deribit, "BTC-PERPETUAL", false);
        register(&mut reg, Venue::Deribit, "btc_usd", false);
        let mut s = VenueSession::deribit(&reg, false);
        let sent = opened(&mut s);
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(sent[0].contains("public/set_heartbeat"), "{}", sent[0]);
        for ch in [
            "ticker.BTC-27DEC24-100000-C.100ms",
            "ticker.BTC-PERPETUAL.100ms",
            "deribit_price_index.btc_usd",
        ] {
            assert!(sent[1].contains(ch), "{} lacks {ch}", sent[1]);
        }
        // A heartbeat test_request is answered with public/test.
        let mut enc = FrameEncoder::with_seed(2);
        let mut buf = Vec::new();
        let mut out = Outbox::new(&mut enc, &mut buf);
        let req = br#"{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}"#;
        s.on_message(req, 1, &mut out, &mut |_| {}).unwrap();
        let replies = parse_client_frames(&buf).unwrap();
        assert_eq!(replies.len(), 1);
        assert!(String::from_utf8_lossy(&replies[0].2).contains("public/test"));
    }

    #[test]
    fn a_large_deribit_chain_is_subscribed_in_requests_of_bounded_size() {
        let mut reg = Instruments::new();
        let n = 2 * DERIBIT_CHANNELS_PER_REQUEST + 7;
        for k in 0..n {
            register(
                &mut reg,
                Venue::Deribit,
                &format!("BTC-27DEC24-{}-C", 1000 + k),
                false,
            );
        }
        let mut s = VenueSession::deribit(&reg, false);
        let sent = opened(&mut s);
        assert_eq!(sent.len(), 4, "heartbeat + 3 subscribe requests");
        let mut total = 0;
        for (k, req) in sent[1..].iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(req).unwrap();
            assert_eq!(v["method"], "public/subscribe");
            assert_eq!(v["id"], 2 + k as u64);
            let chans = v["params"]["channels"].as_array().unwrap().len();
            assert!(chans <= DERIBIT_CHANNELS_PER_REQUEST, "{chans}");
            total += chans;
        }
        assert_eq!(total, n);
        // A refused chunk is a refused subscription: the connection is dropped and retried.
        let mut enc = FrameEncoder::with_seed(3);
        let mut buf = Vec::new();
        let mut out = Outbox::new(&mut enc, &mut buf);
        let err =
            br#"{"jsonrpc":"2.0","id":4,"error":{"code":10028,"message":"too_many_requests"}}"#;
        assert_eq!(
            s.on_message(err, 1, &mut out, &mut |_| {}),
            Err(DisconnectReason::Rejected)
        );
    }

    #[test]
    fn a_deribit_book_gap_resubscribes_the_book() {
        let mut reg = Instruments::new();
        register(&mut reg, Venue::Deribit, "BTC-PERPETUAL", false);
        let mut s = VenueSession::deribit(&reg, true);
        assert!(opened(&mut s)[1].contains("book.BTC-PERPETUAL.100ms"));
        let mut enc = FrameEncoder::with_seed(4);
        let mut buf = Vec::new();
        let mut out = Outbox::new(&mut enc, &mut buf);
        let snap = br#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms","data":{"type":"snapshot","instrument_name":"BTC-PERPETUAL","timestamp":1,"change_id":10,"bids":[["new",100.0,1.0]],"asks":[["new",101.0,1.0]]}}}"#;
        s.on_message(snap, 1, &mut out, &mut |_| {}).unwrap();
        assert_eq!(out.queued_bytes(), 0, "nothing to send after a snapshot");
        let gap = br#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms","data":{"type":"change","instrument_name":"BTC-PERPETUAL","timestamp":2,"change_id":13,"prev_change_id":12,"bids":[],"asks":[]}}}"#;
        let mut gaps = 0;
        s.on_message(gap, 2, &mut out, &mut |ev| {
            if matches!(ev.body, crate::EventBody::SequenceGap { .. }) {
                gaps += 1;
            }
        })
        .unwrap();
        assert_eq!(gaps, 1);
        let sent: Vec<String> = parse_client_frames(&buf)
            .unwrap()
            .into_iter()
            .map(|(_, _, p)| String::from_utf8(p).unwrap())
            .collect();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(
            sent[0].contains("public/unsubscribe") && sent[0].contains("book.BTC-PERPETUAL.100ms")
        );
        assert!(
            sent[1].contains("public/subscribe") && sent[1].contains("book.BTC-PERPETUAL.100ms")
        );
    }

    #[test]
    fn a_resync_request_resubscribes_the_book_on_the_next_poll() {
        let mut reg = Instruments::new();
        let perp = register(&mut reg, Venue::Deribit, "BTC-PERPETUAL", false);
        let opt = register(&mut reg, Venue::Deribit, "BTC-27DEC24-100000-C", false);
        let mut s = VenueSession::deribit(&reg, true);
        opened(&mut s);
        let poll = |s: &mut VenueSession| {
            let mut enc = FrameEncoder::with_seed(5);
            let mut buf = Vec::new();
            let wrote = s.poll_outgoing(&mut Outbox::new(&mut enc, &mut buf));
            let sent: Vec<String> = parse_client_frames(&buf)
                .unwrap()
                .into_iter()
                .map(|(_, _, p)| String::from_utf8(p).unwrap())
                .collect();
            (wrote, sent)
        };
        assert_eq!(poll(&mut s), (false, vec![]), "nothing asked, nothing sent");
        s.request_resync(perp);
        s.request_resync(perp);
        let (wrote, sent) = poll(&mut s);
        assert!(wrote);
        assert_eq!(sent.len(), 2, "once, however often asked: {sent:?}");
        assert!(sent[0].contains("public/unsubscribe") && sent[0].contains("book.BTC-PERPETUAL"));
        assert!(sent[1].contains("public/subscribe") && sent[1].contains("book.BTC-PERPETUAL"));
        assert_eq!(poll(&mut s), (false, vec![]));
        // Every book.
        s.request_resync(InstrumentId::NONE);
        let (_, sent) = poll(&mut s);
        assert_eq!(sent.len(), 4, "{sent:?}");
        assert!(sent.iter().any(|m| m.contains("book.BTC-27DEC24-100000-C")));
        let _ = opt;
        // A session without books ignores it.
        let mut plain = VenueSession::deribit(&reg, false);
        opened(&mut plain);
        plain.request_resync(perp);
        assert_eq!(poll(&mut plain), (false, vec![]));
    }

    #[test]
    fn a_rejected_subscription_drops_the_connection_and_garbage_does_not() {
        let mut reg = Instruments::new();
        register(&mut reg, Venue::Deribit, "BTC-PERPETUAL", false);
        let mut s = VenueSession::deribit(&reg, false);
        let mut enc = FrameEncoder::with_seed(3);
        let mut buf = Vec::new();
        let mut out = Outbox::new(&mut enc, &mut buf);
        assert_eq!(s.on_message(b"{not json", 5, &mut out, &mut |_| {}), Ok(()));
        assert_eq!(s.stats().malformed, 1);
        let err = br#"{"jsonrpc":"2.0","id":2,"error":{"code":11050,"message":"bad_request"}}"#;
        assert_eq!(
            s.on_message(err, 6, &mut out, &mut |_| {}),
            Err(DisconnectReason::Rejected)
        );
    }

    #[test]
    fn names_become_instruments() {
        let i = instrument_from_name(Venue::Deribit, "BTC-27DEC24-100000-C", false);
        assert_eq!(i.kind, InstrumentKind::Option);
        assert_eq!(i.strike, 100_000.0);
        assert_eq!(i.right, Some(OptionRight::Call));
        assert_eq!(
            instrument_from_name(Venue::Deribit, "btc_usd", false).kind,
            InstrumentKind::Index
        );
        assert_eq!(
            instrument_from_name(Venue::Binance, "BTCUSDT", true).kind,
            InstrumentKind::Spot
        );
        assert_eq!(
            instrument_from_name(Venue::Okx, "BTC-USD-231229-40000-P", false).right,
            Some(OptionRight::Put)
        );
    }
}

#[cfg(test)]
mod staleness_tests {
    use super::*;
    use crate::event::EventBody;
    use crate::net::ws::FrameEncoder;

    const S: u64 = 1_000_000_000;

    /// Drives a session by hand with a fake clock: `on_open`, then (time, payload) messages
    /// and timer ticks; returns the Stale/Fresh events with their instruments.
    struct Driver {
        session: VenueSession,
        enc: FrameEncoder,
        buf: Vec<u8>,
        seen: Vec<(InstrumentId, EventBody)>,
    }

    impl Driver {
        fn new(mut session: VenueSession) -> Self {
            let mut enc = FrameEncoder::with_seed(9);
            let mut buf = Vec::new();
            session.on_open(&mut Outbox::new(&mut enc, &mut buf));
            Self {
                session,
                enc,
                buf,
                seen: Vec::new(),
            }
        }

        fn message(&mut self, at: u64, payload: &str) {
            let seen = &mut self.seen;
            let mut out = Outbox::new(&mut self.enc, &mut self.buf);
            self.session
                .on_message(payload.as_bytes(), at, &mut out, &mut |ev| {
                    if matches!(ev.body, EventBody::Stale { .. } | EventBody::Fresh) {
                        seen.push((ev.instrument, ev.body));
                    }
                })
                .unwrap();
        }

        fn timer(&mut self, at: u64) {
            let seen = &mut self.seen;
            let mut out = Outbox::new(&mut self.enc, &mut self.buf);
            self.session
                .on_timer(at, &mut out, &mut |ev| {
                    if matches!(ev.body, EventBody::Stale { .. } | EventBody::Fresh) {
                        seen.push((ev.instrument, ev.body));
                    }
                })
                .unwrap();
        }
    }

    fn deribit_perp(ts_ms: u64) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","method":"subscription","params":{{"channel":"ticker.BTC-PERPETUAL.100ms","data":{{"timestamp":{ts_ms},"state":"open","index_price":92263.55,"instrument_name":"BTC-PERPETUAL","mark_price":92281.78,"best_ask_price":92284.0,"best_bid_price":92283.5,"best_ask_amount":186520.0,"best_bid_amount":117660.0}}}}}}"#
        )
    }

    fn deribit_index(ts_ms: u64) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","method":"subscription","params":{{"channel":"deribit_price_index.btc_usd","data":{{"timestamp":{ts_ms},"price":92263.55,"index_name":"btc_usd"}}}}}}"#
        )
    }

    #[test]
    fn a_silent_deribit_index_goes_stale_while_the_perpetual_flows() {
        let mut reg = Instruments::new();
        let perp = register(&mut reg, Venue::Deribit, "BTC-PERPETUAL", false);
        let index = register(&mut reg, Venue::Deribit, "btc_usd", false);
        let mut d = Driver::new(VenueSession::deribit(&reg, false));
        let t0 = 1_000 * S;
        d.timer(t0); // arms the clocks
        for k in 1..=8 {
            d.message(t0 + k * S, &deribit_perp(k));
            if k == 1 {
                d.message(t0 + S, &deribit_index(1));
            }
            d.timer(t0 + k * S + S / 2);
        }
        // The index's last data was at t0 + 1 s: stale once its 5 s passed, the perpetual never.
        assert_eq!(
            d.seen,
            [(index, EventBody::Stale { since_ns: t0 + S })],
            "{:?}",
            d.seen
        );
        d.message(t0 + 9 * S, &deribit_index(9));
        assert_eq!(d.seen[1], (index, EventBody::Fresh));
        assert!(d.seen.iter().all(|(i, _)| *i != perp));
        // A per-subscription limit: the perpetual at 1 s.
        assert!(
            d.session
                .set_stale_after(perp, false, Some(Duration::from_secs(1)))
        );
        assert!(
            !d.session.set_stale_after(perp, true, None),
            "no book subscribed"
        );
        d.timer(t0 + 10 * S + 1);
        assert_eq!(
            d.seen[2],
            (
                perp,
                EventBody::Stale {
                    since_ns: t0 + 8 * S
                }
            )
        );
    }

    fn book_ticker(sym: &str) -> String {
        format!(
            r#"{{"e":"bookTicker","u":1,"E":1,"T":1,"s":"{sym}","b":"100.0","B":"1.0","a":"101.0","A":"1.0"}}"#
        )
    }

    #[test]
    fn a_silent_binance_symbol_goes_stale_and_fresh_again() {
        let mut reg = Instruments::new();
        let btc = register(&mut reg, Venue::Binance, "BTCUSDT", false);
        let eth = register(&mut reg, Venue::Binance, "ETHUSDT", false);
        let session = VenueSession::binance_builder(&reg, BinanceMarket::UsdmFutures)
            .stale_after(Some(Duration::from_secs(2)))
            .build()
            .unwrap();
        let mut d = Driver::new(session);
        let t0 = 50 * S;
        d.timer(t0);
        d.message(t0 + S / 10, &book_ticker("ETHUSDT"));
        for k in 1..=6 {
            d.message(t0 + k * S, &book_ticker("BTCUSDT"));
            d.timer(t0 + k * S + 1);
        }
        assert_eq!(
            d.seen,
            [(
                eth,
                EventBody::Stale {
                    since_ns: t0 + S / 10
                }
            )]
        );
        // A reconnection restarts the clocks but keeps the flag until data returns.
        d.session.on_open(&mut Outbox::new(&mut d.enc, &mut d.buf));
        d.timer(t0 + 7 * S);
        d.message(t0 + 7 * S, &book_ticker("ETHUSDT"));
        assert_eq!(d.seen[1], (eth, EventBody::Fresh));
        assert!(d.seen.iter().all(|(i, _)| *i != btc));
        assert_eq!(d.seen.len(), 2);
        // None: never stale.
        let never = VenueSession::binance_builder(&reg, BinanceMarket::UsdmFutures)
            .stale_after(None)
            .build()
            .unwrap();
        let mut d = Driver::new(never);
        d.timer(t0);
        d.timer(t0 + 1_000 * S);
        assert!(d.seen.is_empty());
    }
}
