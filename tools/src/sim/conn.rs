//! One simulated-venue connection per thread: the tungstenite server handshake (routing by
//! path), then a loop that reads client frames (tungstenite, non-blocking), answers requests,
//! streams subscribed channels at the configured rate and applies the fault plan.
//!
//! Owns the connection's socket, buffers and subscriptions. Never panics on client bytes,
//! never blocks on a slow client (output is queued and written as the socket accepts it; a
//! backlog above a limit pauses streaming), and never allocates per streamed message once its
//! buffers have grown: messages are rendered into `body`, framed into the out queue by hand.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, FrameHeader};
use tungstenite::protocol::{WebSocket, WebSocketConfig};
use tungstenite::{Error as WsError, Message};

use keel_engine::sim::SimRng;

use super::binance_orders::BinanceDesk;
use super::chain::{BINANCE_SYMBOL, Chain, INDEX_NAME, InstrumentRef};
use super::depth::{DepthCursor, DepthVenue};
use super::encode::{self, JsonOut, SyntheticBook};
use super::hyperliquid::{self, HttpContext, HyperliquidDesk};
use super::market::{MarketSnapshot, SharedMarket, now_ms, now_ns};
use super::orders::{Direction, OrderDesk, Placed};
use super::{Counters, SimConfig};

/// What every connection shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub chain: Arc<Chain>,
    pub market: Arc<SharedMarket>,
    pub config: Arc<SimConfig>,
    pub stop: Arc<AtomicBool>,
    pub counters: Arc<Counters>,
    /// The venue's orders (Deribit `private/buy` ...), shared by every connection.
    pub orders: Arc<OrderDesk>,
    /// The venue's Binance depth book (streams and the REST snapshot), one id sequence.
    pub depth: Arc<DepthVenue>,
    /// The Binance WebSocket API order desk, shared by every `/ws-fapi/v1` connection.
    pub binance_orders: Arc<BinanceDesk>,
    /// The Hyperliquid exchange (`POST /exchange`, `/hyperliquid/ws` posts).
    pub hyperliquid: Arc<HyperliquidDesk>,
}

/// Longest idle sleep of a connection loop: bounds the latency of replies and of stop.
const MAX_IDLE: Duration = Duration::from_millis(2);
/// Idle sleep of a connection with no data subscription (an order session): bounds how late
/// an order is read after it arrives (`sim_recv_ns`, wire-to-wire latency).
const REQUEST_POLL: Duration = Duration::from_micros(25);
/// Output backlog (bytes not yet accepted by the socket) above which streaming pauses.
const MAX_BACKLOG: usize = 4 << 20;
/// Output backlog at which the client counts as too slow (it also sends requests without
/// reading the replies) and is disconnected, as venues do.
const MAX_SLOW_BACKLOG: usize = 64 << 20;
/// Data messages rendered per loop iteration at most.
const MAX_BATCH: usize = 4096;
/// Largest client message accepted.
const MAX_CLIENT_MESSAGE: usize = 1 << 20;
/// Subscriptions per connection at most.
const MAX_SUBS: usize = 20_000;
/// How often a connection adds its counts to the shared counters at least.
const COUNTER_PERIOD: Duration = Duration::from_millis(50);
/// Deribit's API version string (public/test, public/hello).
const API_VERSION: &str = "1.2.26";

/// Accepts connections until `stop`, one thread each, then waits for them.
pub(crate) fn accept_loop(listener: TcpListener, shared: Shared) {
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut next_id: u64 = 0;
    while !shared.stop.load(Ordering::Acquire) {
        threads.retain(|h| !h.is_finished());
        match listener.accept() {
            Ok((tcp, _peer)) => {
                if threads.len() >= shared.config.max_connections {
                    shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    let _ = tcp.shutdown(Shutdown::Both);
                    continue;
                }
                next_id += 1;
                let s = shared.clone();
                let id = next_id;
                let spawned = std::thread::Builder::new()
                    .name(format!("keel-sim-conn-{id}"))
                    .spawn(move || serve(tcp, s, id));
                match spawned {
                    Ok(h) => threads.push(h),
                    Err(_) => {
                        shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(MAX_IDLE);
            }
            // EMFILE and friends: back off and keep serving the connections we have.
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    for h in threads {
        let _ = h.join();
    }
}

/// The socket as tungstenite sees it: reads come from TCP; writes (pongs, close replies) are
/// appended to `out`, which the connection loop writes to the socket as it accepts bytes. Our
/// own frames go to `out` too, so everything leaves in order. During the handshake (blocking
/// socket) writes go straight to the socket, so that an HTTP error response reaches the client
/// even though tungstenite drops the stream with the error.
struct Wire {
    tcp: TcpStream,
    out: Vec<u8>,
    sent: usize,
    /// Handshake phase: write through to the socket.
    direct: bool,
    /// Silent fault: everything written is discarded.
    discard: bool,
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.read(buf)
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.direct {
            return self.tcp.write(buf);
        }
        if !self.discard {
            self.out.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.direct {
            return self.tcp.flush();
        }
        Ok(())
    }
}

impl Wire {
    fn pending(&self) -> usize {
        self.out.len().saturating_sub(self.sent)
    }

    /// Writes what the socket accepts; returns the bytes written.
    fn drain(&mut self) -> io::Result<usize> {
        let mut written = 0;
        while self.sent < self.out.len() {
            let Some(rest) = self.out.get(self.sent..) else {
                break;
            };
            match self.tcp.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.sent += n;
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.sent >= self.out.len() {
            self.out.clear();
            self.sent = 0;
        } else if self.sent > (1 << 20) {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        Ok(written)
    }

    /// Drains until empty or `limit` passes (blocking-ish, for closes).
    fn drain_for(&mut self, limit: Duration) {
        let until = Instant::now() + limit;
        while self.pending() > 0 && Instant::now() < until {
            match self.drain() {
                Ok(_) if self.pending() > 0 => std::thread::sleep(Duration::from_micros(200)),
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }
}

/// The coin of keel-sim's Hyperliquid perpetual.
pub const HL_COIN: &str = "BTC";
/// How often keel-sim sends a Hyperliquid `l2Book` (Hyperliquid: about every block).
const HL_BOOK_EVERY: Duration = Duration::from_millis(200);

/// Which protocol the path selected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Deribit,
    /// Binance; `combined` wraps events as `{"stream","data"}`.
    Binance {
        combined: bool,
    },
    /// Binance USDⓈ-M WebSocket API (`order.place`, `order.status`).
    BinanceApi,
    /// Hyperliquid's WebSocket (`post` actions, `ping`).
    Hyperliquid,
}

/// What a subscription streams.
#[derive(Clone, Debug)]
enum Feed {
    OptionTicker(usize),
    LinearTicker(InstrumentRef),
    Book(InstrumentRef, Box<SyntheticBook>),
    Index,
    MarkOptions,
    BookTicker,
    Depth(DepthCursor),
    AggTrade,
    MarkPrice,
    /// Hyperliquid `l2Book` of the BTC perpetual (the Binance depth book, whole, 20 a side).
    HlBook,
}

/// One subscription: the name the client used, what it streams and its pacing.
#[derive(Clone, Debug)]
struct Sub {
    name: String,
    feed: Feed,
    interval: Option<Duration>,
    next_due: Instant,
}

/// Parses a Deribit channel name.
fn deribit_channel(chain: &Chain, ch: &str) -> Option<(Feed, Option<Duration>)> {
    let hundred = Some(Duration::from_millis(100));
    let interval = |iv: &str| match iv {
        "raw" => Some(None),
        "100ms" | "agg2" => Some(hundred),
        _ => None,
    };
    if let Some(rest) = ch.strip_prefix("ticker.") {
        let (name, iv) = rest.rsplit_once('.')?;
        let iv = interval(iv)?;
        let feed = match chain.lookup(name)? {
            InstrumentRef::Option(i) => Feed::OptionTicker(i),
            other => Feed::LinearTicker(other),
        };
        return Some((feed, iv));
    }
    if let Some(rest) = ch.strip_prefix("book.") {
        let (name, iv) = rest.rsplit_once('.')?;
        let iv = interval(iv)?;
        let inst = chain.lookup(name)?;
        return Some((Feed::Book(inst, Box::default()), iv));
    }
    if ch.strip_prefix("deribit_price_index.") == Some(INDEX_NAME) {
        return Some((Feed::Index, hundred));
    }
    if ch.strip_prefix("markprice.options.") == Some(INDEX_NAME) {
        return Some((Feed::MarkOptions, Some(Duration::from_secs(1))));
    }
    None
}

/// Parses a Binance stream name (`btcusdt@bookTicker`, ...).
fn binance_stream(s: &str) -> Option<(Feed, Option<Duration>)> {
    let (sym, kind) = s.split_once('@')?;
    if !sym.eq_ignore_ascii_case(BINANCE_SYMBOL) {
        return None;
    }
    let ms = |n| Some(Some(Duration::from_millis(n)));
    let (feed, iv) = match kind {
        "bookTicker" => (Feed::BookTicker, None),
        "aggTrade" => (Feed::AggTrade, None),
        "depth" => (Feed::Depth(DepthCursor::default()), ms(250)?),
        "depth@100ms" => (Feed::Depth(DepthCursor::default()), ms(100)?),
        "depth@500ms" => (Feed::Depth(DepthCursor::default()), ms(500)?),
        "markPrice" => (Feed::MarkPrice, ms(3000)?),
        "markPrice@1s" => (Feed::MarkPrice, ms(1000)?),
        _ => return None,
    };
    Some((feed, iv))
}

/// Routes a handshake request: the protocol and any streams named in the URL.
fn route(req: &Request) -> Result<(Proto, Vec<String>), (u16, String)> {
    let path = req.uri().path().trim_end_matches('/');
    let query = req.uri().query().unwrap_or("");
    if path == "/ws/api/v2" {
        return Ok((Proto::Deribit, Vec::new()));
    }
    if path == "/ws-fapi/v1" {
        return Ok((Proto::BinanceApi, Vec::new()));
    }
    if path == "/hyperliquid/ws" {
        return Ok((Proto::Hyperliquid, Vec::new()));
    }
    let streams_of = |list: &str| -> Result<Vec<String>, (u16, String)> {
        let mut v = Vec::new();
        for s in list.split('/').filter(|s| !s.is_empty()) {
            if binance_stream(s).is_none() {
                return Err((400, format!("invalid stream name {s:?}")));
            }
            v.push(s.to_string());
        }
        Ok(v)
    };
    if path == "/ws" {
        return Ok((Proto::Binance { combined: false }, Vec::new()));
    }
    if let Some(list) = path.strip_prefix("/ws/") {
        return Ok((Proto::Binance { combined: false }, streams_of(list)?));
    }
    if path == "/stream" {
        let list = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("streams="))
            .unwrap_or("");
        return Ok((Proto::Binance { combined: true }, streams_of(list)?));
    }
    Err((
        404,
        format!(
            "no such endpoint {path:?}: use /ws/api/v2 (Deribit), /ws or /stream (Binance), \
             /ws-fapi/v1 (Binance WebSocket API), /hyperliquid/ws (Hyperliquid)"
        ),
    ))
}

/// Longest a client may take to send its handshake request.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// Performs the server handshake on a blocking socket, in 100 ms read slices so that a stalled
/// client neither outlives [`HANDSHAKE_LIMIT`] nor delays a stop.
fn handshake(tcp: TcpStream, stop: &AtomicBool) -> Option<(WebSocket<Wire>, Proto, Vec<String>)> {
    // Accepted sockets inherit the listener's non-blocking flag on some systems.
    tcp.set_nonblocking(false).ok()?;
    tcp.set_nodelay(true).ok()?;
    tcp.set_read_timeout(Some(Duration::from_millis(100)))
        .ok()?;
    tcp.set_write_timeout(Some(HANDSHAKE_LIMIT)).ok()?;
    let mut routed = None;
    // tungstenite's callback signature fixes the error type; it is built once per refused
    // handshake, so its size does not matter.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        match route(req) {
            Ok(r) => {
                routed = Some(r);
                Ok(resp)
            }
            Err((code, msg)) => {
                let mut e = ErrorResponse::new(Some(msg));
                let status = tungstenite::http::StatusCode::from_u16(code);
                *e.status_mut() = status.unwrap_or_default();
                Err(e)
            }
        }
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE));
    let wire = Wire {
        tcp,
        out: Vec::with_capacity(64 << 10),
        sent: 0,
        direct: true,
        discard: false,
    };
    let deadline = Instant::now() + HANDSHAKE_LIMIT;
    let mut attempt = tungstenite::accept_hdr_with_config(wire, callback, Some(config));
    // On failure the error response (404/400) went straight to the socket; dropping the error
    // closes it.
    let ws = loop {
        match attempt {
            Err(tungstenite::HandshakeError::Interrupted(mid))
                if Instant::now() < deadline && !stop.load(Ordering::Acquire) =>
            {
                attempt = mid.handshake();
            }
            other => break other.ok(),
        }
    };
    match ws {
        Some(mut ws) => {
            let w = ws.get_mut();
            w.direct = false;
            if w.tcp.set_nonblocking(true).is_err() {
                return None;
            }
            let (proto, streams) = routed?;
            Some((ws, proto, streams))
        }
        None => None,
    }
}

/// Largest HTTP request head accepted (WebSocket handshake or REST request).
const MAX_REQUEST_HEAD: usize = 16 << 10;

/// Waits (without consuming it) for the client's whole request head, within
/// [`HANDSHAKE_LIMIT`]; None if the client closes, stalls, sends too much or the venue stops.
fn peek_request_head(tcp: &TcpStream, stop: &AtomicBool) -> Option<Vec<u8>> {
    tcp.set_nonblocking(false).ok()?;
    tcp.set_read_timeout(Some(Duration::from_millis(100)))
        .ok()?;
    let deadline = Instant::now() + HANDSHAKE_LIMIT;
    let mut buf = vec![0u8; MAX_REQUEST_HEAD];
    let mut seen = 0;
    while Instant::now() < deadline && !stop.load(Ordering::Acquire) {
        match tcp.peek(&mut buf) {
            Ok(0) => return None,
            Ok(n) => {
                if let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
                    buf.truncate(end + 4);
                    return Some(buf);
                }
                if n == buf.len() {
                    return None;
                }
                if n == seen {
                    // peek returns at once while bytes wait: do not spin on a partial head.
                    std::thread::sleep(Duration::from_millis(1));
                }
                seen = n;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return None,
        }
    }
    None
}

/// True if the head asks for a WebSocket upgrade (`Upgrade: websocket`, any case).
fn is_websocket_upgrade(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    text.split("\r\n").skip(1).any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("upgrade")
                && value
                    .split(',')
                    .any(|v| v.trim().eq_ignore_ascii_case("websocket"))
        })
    })
}

/// Answers one plain HTTP/1.1 request (the head was peeked, not consumed) and closes:
/// Binance's REST depth snapshot (`GET /fapi/v1/depth`, `/api/v3/depth`), `/fapi/v1/ping` and
/// `/fapi/v1/time`; Binance's error JSON otherwise.
fn serve_rest(mut tcp: TcpStream, head: &[u8], shared: &Shared) {
    let mut consumed = vec![0u8; head.len()];
    if tcp.read_exact(&mut consumed).is_err() {
        return;
    }
    let text = String::from_utf8_lossy(head);
    let line = text.split("\r\n").next().unwrap_or("");
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    let error = |status: u16, code: i64, msg: &str| {
        (
            status,
            json!({"code": code, "msg": msg}).to_string().into_bytes(),
        )
    };
    let (status, body) = if method != "GET" {
        error(405, -1000, "keel-sim serves GET only")
    } else {
        match path.trim_end_matches('/') {
            "/fapi/v1/ping" | "/api/v3/ping" => (200, b"{}".to_vec()),
            "/fapi/v1/time" | "/api/v3/time" => (
                200,
                json!({"serverTime": now_ms()}).to_string().into_bytes(),
            ),
            p @ ("/fapi/v1/depth" | "/api/v3/depth") => {
                let futures = p.starts_with("/fapi");
                rest_depth(shared, param("symbol"), param("limit"), futures)
                    .unwrap_or_else(|(status, code, msg)| error(status, code, msg))
            }
            p @ ("/api/v2/private/get_positions"
            | "/api/v2/private/get_open_orders_by_currency") => {
                deribit_rest_private(shared, &text, target, p, &param)
            }
            "/fapi/v2/positionRisk" => {
                let api_key = text.split("\r\n").find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case("x-mbx-apikey")
                        .then(|| v.trim().to_string())
                });
                let mut snap = MarketSnapshot::default();
                shared.market.refresh(0, &mut snap);
                match shared.binance_orders.position_risk(
                    query,
                    api_key.as_deref(),
                    &snap,
                    now_ms(),
                ) {
                    Ok(v) => (200, v.to_string().into_bytes()),
                    Err((status, code, msg)) => error(status, code, &msg),
                }
            }
            _ => error(
                404,
                -1000,
                "no such endpoint: keel-sim serves /fapi/v1/depth, /api/v3/depth, \
                 /fapi/v2/positionRisk, /api/v2/private/get_positions and \
                 /api/v2/private/get_open_orders_by_currency",
            ),
        }
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    let mut resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json;charset=UTF-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(&body);
    let _ = tcp.write_all(&resp);
    let _ = tcp.flush();
    let _ = tcp.shutdown(Shutdown::Write);
    // Let the client read the answer before the socket closes (bounded).
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 256];
    while matches!(tcp.read(&mut sink), Ok(n) if n > 0) {}
}

/// The depth snapshot body, or (HTTP status, Binance code, message).
fn rest_depth(
    shared: &Shared,
    symbol: Option<String>,
    limit: Option<String>,
    futures: bool,
) -> Result<(u16, Vec<u8>), (u16, i64, &'static str)> {
    let Some(symbol) = symbol.filter(|s| !s.is_empty()) else {
        return Err((
            400,
            -1102,
            "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
        ));
    };
    if symbol != BINANCE_SYMBOL {
        return Err((400, -1121, "Invalid symbol."));
    }
    let limit = match limit {
        None => {
            if futures {
                500
            } else {
                100
            }
        }
        Some(l) => match l.parse::<usize>() {
            Ok(n) if futures && [5, 10, 20, 50, 100, 500, 1000].contains(&n) => n,
            Ok(n) if !futures && (1..=5000).contains(&n) => n,
            _ => {
                return Err((400, -1130, "Invalid data sent for a parameter."));
            }
        },
    };
    let mut snap = MarketSnapshot::default();
    shared.market.refresh(0, &mut snap);
    let mut body = Vec::with_capacity(1024);
    shared
        .depth
        .render_snapshot(&snap, &mut body, limit, futures, now_ms());
    Ok((200, body))
}

/// A Deribit heartbeat set by `public/set_heartbeat`.
struct Heartbeat {
    interval: Duration,
    next: Instant,
    awaiting: bool,
}

/// Why the connection is closing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closing {
    /// A drop fault.
    Drop,
    /// The heartbeat went unanswered.
    Heartbeat,
    /// The client does not read what it asked for.
    SlowConsumer,
}

/// The connection's state.
struct Conn {
    ws: WebSocket<Wire>,
    proto: Proto,
    shared: Shared,
    subs: Vec<Sub>,
    cursor: usize,
    snap: MarketSnapshot,
    generation: u64,
    /// The message being rendered.
    body: Vec<u8>,
    /// Delay fault: framed bytes waiting, and (due, absolute end offset) marks.
    delayed: VecDeque<u8>,
    delay_marks: VecDeque<(Instant, u64)>,
    delayed_base: u64,
    rng: SimRng,
    opened: Instant,
    data_sent: u64,
    tokens: f64,
    last_refill: Instant,
    heartbeat: Option<Heartbeat>,
    next_ping: Option<Instant>,
    silent: bool,
    closing: Option<Closing>,
    update_id: u64,
    agg_id: u64,
    trade_id: u64,
    // Counters not yet added to the shared ones.
    n_msgs: u64,
    n_bad: u64,
    n_bytes: u64,
    n_requests: u64,
    /// Order-API replies sent (for `garble_every`).
    order_replies: u64,
    last_flush: Instant,
    /// The accept sequence number (owner of the orders it places).
    id: u64,
    /// `public/auth` succeeded on this connection.
    authed: bool,
    /// `private/enable_cancel_on_disconnect` asked for this connection's orders.
    cancel_on_disconnect: bool,
}

/// Serves one accepted socket until it closes, a fault drops it or the venue stops.
fn serve(tcp: TcpStream, shared: Shared, id: u64) {
    // A request without `Upgrade: websocket` is a REST request on the same port.
    match peek_request_head(&tcp, &shared.stop) {
        Some(head) if head.starts_with(b"POST ") => {
            // Hyperliquid's `POST /exchange` (keep-alive; the connection serves POSTs only).
            hyperliquid::serve_http(
                tcp,
                &HttpContext {
                    desk: &shared.hyperliquid,
                    market: &shared.market,
                    counters: &shared.counters,
                    stop: &shared.stop,
                    garble_every: shared.config.order_api.garble_every,
                    drop_every: shared.config.order_api.drop_every,
                    delay: shared.config.order_api.reply_delay,
                },
            );
            return;
        }
        Some(head) if !is_websocket_upgrade(&head) => {
            shared.counters.requests.fetch_add(1, Ordering::Relaxed);
            serve_rest(tcp, &head, &shared);
            return;
        }
        Some(_) => {}
        None => {
            shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    let Some((ws, proto, streams)) = handshake(tcp, &shared.stop) else {
        shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
        return;
    };
    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
    shared.counters.active.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    let seed = shared.config.seed;
    let ping = shared.config.faults.ping_every.map(|p| now + p);
    let mut conn = Conn {
        ws,
        proto,
        subs: Vec::new(),
        cursor: 0,
        snap: MarketSnapshot::default(),
        generation: 0,
        body: Vec::with_capacity(4096),
        delayed: VecDeque::new(),
        delay_marks: VecDeque::new(),
        delayed_base: 0,
        rng: SimRng::stream(seed, id),
        opened: now,
        data_sent: 0,
        tokens: 0.0,
        last_refill: now,
        heartbeat: None,
        next_ping: ping,
        silent: false,
        closing: None,
        update_id: 400_000_000,
        agg_id: 2_000_000_000,
        trade_id: 4_800_000_000,
        n_msgs: 0,
        n_bad: 0,
        n_bytes: 0,
        n_requests: 0,
        order_replies: 0,
        last_flush: now,
        id,
        authed: false,
        cancel_on_disconnect: false,
        shared,
    };
    conn.generation = conn.shared.market.refresh(0, &mut conn.snap);
    for s in streams {
        conn.add_binance(&s);
    }
    conn.run();
    if conn.cancel_on_disconnect {
        conn.shared.orders.cancel_owned(conn.id, now_ms());
    }
    conn.flush_counters();
    conn.shared.counters.active.fetch_sub(1, Ordering::Relaxed);
}

impl Conn {
    fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    fn flush_counters(&mut self) {
        let c = &self.shared.counters;
        c.messages.fetch_add(self.n_msgs, Ordering::Relaxed);
        c.malformed.fetch_add(self.n_bad, Ordering::Relaxed);
        c.bytes.fetch_add(self.n_bytes, Ordering::Relaxed);
        c.requests.fetch_add(self.n_requests, Ordering::Relaxed);
        self.n_msgs = 0;
        self.n_bad = 0;
        self.n_bytes = 0;
        self.n_requests = 0;
    }

    /// The main loop.
    fn run(&mut self) {
        loop {
            if self.shared.stop.load(Ordering::Acquire) {
                self.close(CloseCode::Away, "keel-sim shutting down", false);
                return;
            }
            if !self.read_requests() {
                return;
            }
            let now = Instant::now();
            self.generation = self.shared.market.refresh(self.generation, &mut self.snap);
            self.apply_time_faults(now);
            if !self.silent && self.closing.is_none() {
                self.heartbeat(now);
                self.ping(now);
                self.stream(now);
            }
            self.release_delayed(now);
            if self.closing.is_none() && self.backlog() > MAX_SLOW_BACKLOG {
                self.closing = Some(Closing::SlowConsumer);
                self.delayed.clear();
                self.delay_marks.clear();
            }
            if let Some(why) = self.closing
                && self.delay_marks.is_empty()
            {
                self.shared.counters.drops.fetch_add(1, Ordering::Relaxed);
                let abrupt = why == Closing::Drop && self.config().faults.drop_abrupt;
                let (code, reason) = match why {
                    Closing::Drop => (CloseCode::Away, "keel-sim fault: drop"),
                    Closing::Heartbeat => {
                        (CloseCode::Policy, "heartbeat timeout: no public/test reply")
                    }
                    Closing::SlowConsumer => (CloseCode::Policy, "slow consumer"),
                };
                self.close(code, reason, abrupt);
                return;
            }
            match self.ws.get_mut().drain() {
                Ok(n) => self.n_bytes += n as u64,
                Err(_) => return,
            }
            if self.n_msgs >= 1024 || now.duration_since(self.last_flush) >= COUNTER_PERIOD {
                self.last_flush = now;
                self.flush_counters();
            }
            self.sleep(now);
        }
    }

    /// Sleeps until something is likely due (bounded by [`MAX_IDLE`]).
    fn sleep(&mut self, now: Instant) {
        let w = self.ws.get_ref();
        if w.pending() > 0 {
            std::thread::sleep(Duration::from_micros(100));
            return;
        }
        let mut wait = MAX_IDLE;
        let rate = self.config().rate;
        if !self.subs.is_empty() && rate > 0 && self.tokens < 1.0 && !self.silent {
            let until_token = (1.0 - self.tokens) / rate as f64;
            wait = wait.min(Duration::from_secs_f64(until_token.max(0.0)));
        } else if !self.subs.is_empty() && rate == 0 && !self.silent {
            wait = Duration::ZERO;
        }
        if let Some(&(due, _)) = self.delay_marks.front() {
            wait = wait.min(due.saturating_duration_since(now));
        }
        if self.subs.is_empty() {
            // A request-only connection (an order session): look again soon, so an order is
            // read (and stamped `sim_recv_ns`) within ~REQUEST_POLL of its arrival, not after
            // a whole idle sleep.
            wait = wait.min(REQUEST_POLL);
        }
        if wait >= Duration::from_micros(20) {
            std::thread::sleep(wait);
        } else {
            std::thread::yield_now();
        }
    }

    /// Closes: a WebSocket close frame (unless `abrupt`), a short wait for the client's reply,
    /// then TCP shutdown.
    fn close(&mut self, code: CloseCode, reason: &str, abrupt: bool) {
        self.release_all_delayed();
        if !abrupt && !self.silent {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ = self.ws.close(Some(frame));
            let _ = self.ws.flush();
            self.ws.get_mut().drain_for(Duration::from_secs(1));
            // Wait briefly for the client's close reply so the close handshake completes.
            let until = Instant::now() + Duration::from_millis(500);
            while Instant::now() < until {
                match self.ws.read() {
                    Ok(_) => {}
                    Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(_) => break,
                }
            }
            self.ws.get_mut().drain_for(Duration::from_millis(200));
        } else {
            self.ws.get_mut().drain_for(Duration::from_secs(1));
        }
        if let Ok(n) = self.ws.get_mut().drain() {
            self.n_bytes += n as u64;
        }
        let _ = self.ws.get_ref().tcp.shutdown(Shutdown::Both);
    }

    /// Reads and answers client messages; false when the connection is over.
    fn read_requests(&mut self) -> bool {
        for _ in 0..256 {
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    // The request frame was just read: the time orders report as sim_recv_ns.
                    let recv_ns = now_ns();
                    self.n_requests += 1;
                    self.handle_request(t.as_str(), recv_ns);
                }
                Ok(Message::Binary(_)) => {
                    let recv_ns = now_ns();
                    self.n_requests += 1;
                    self.handle_request("\u{0}binary", recv_ns);
                }
                Ok(Message::Close(_)) => {
                    // tungstenite queued the close reply; send it and finish.
                    let _ = self.ws.flush();
                    self.ws.get_mut().drain_for(Duration::from_secs(1));
                    let _ = self.ws.get_ref().tcp.shutdown(Shutdown::Both);
                    return false;
                }
                Ok(_) => {}
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // Peer gone, or a protocol error (unmasked frame, bad UTF-8, oversize):
                    // nothing sensible to answer.
                    let _ = self.ws.get_mut().drain();
                    let _ = self.ws.get_ref().tcp.shutdown(Shutdown::Both);
                    return false;
                }
            }
        }
        true
    }

    /// Drop-after-seconds and silent-after-seconds.
    fn apply_time_faults(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.opened);
        let f = &self.shared.config.faults;
        if let Some(t) = f.silent_after
            && !self.silent
            && age >= t
        {
            self.silent = true;
            self.delayed.clear();
            self.delay_marks.clear();
            let w = self.ws.get_mut();
            w.out.truncate(w.sent);
            w.discard = true;
        }
        if let Some(t) = f.drop_after
            && age >= t
            && self.closing.is_none()
        {
            self.closing = Some(Closing::Drop);
        }
    }

    fn heartbeat(&mut self, now: Instant) {
        let enforce = self.config().enforce_heartbeat;
        let Some(hb) = self.heartbeat.as_mut() else {
            return;
        };
        if now < hb.next {
            return;
        }
        if hb.awaiting && enforce {
            self.closing = Some(Closing::Heartbeat);
            return;
        }
        hb.awaiting = true;
        hb.next = now + hb.interval;
        self.body.clear();
        self.body
            .raw(r#"{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}"#);
        self.queue_body();
    }

    fn ping(&mut self, now: Instant) {
        let Some(next) = self.next_ping else {
            return;
        };
        if now < next {
            return;
        }
        let every = self
            .config()
            .faults
            .ping_every
            .unwrap_or(Duration::from_secs(1));
        self.next_ping = Some(now + every);
        let payload = now_ns().to_be_bytes();
        let header = FrameHeader {
            is_final: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode: OpCode::Control(Control::Ping),
            mask: None,
        };
        let out = &mut self.ws.get_mut().out;
        let _ = header.format(payload.len() as u64, out);
        out.extend_from_slice(&payload);
    }

    /// Frames `self.body` as a text message (fragmented per the fault plan) into the out
    /// queue, or into the delay queue.
    fn queue_body(&mut self) {
        self.queue_body_after(self.shared.config.faults.delay);
    }

    /// Queues `body`, held `delay` first.
    fn queue_body_after(&mut self, delay: Option<Duration>) {
        if self.silent {
            return;
        }
        let k = self.shared.config.faults.fragments.max(1) as usize;
        if let Some(d) = delay {
            write_frames(&mut self.delayed, &self.body, k);
            let end = self.delayed_base + self.delayed.len() as u64;
            self.delay_marks.push_back((Instant::now() + d, end));
        } else {
            write_frames(&mut self.ws.get_mut().out, &self.body, k);
        }
    }

    /// Moves delayed bytes whose time has come to the out queue.
    fn release_delayed(&mut self, now: Instant) {
        let mut end = None;
        while let Some(&(due, e)) = self.delay_marks.front() {
            if due > now {
                break;
            }
            end = Some(e);
            self.delay_marks.pop_front();
        }
        if let Some(e) = end {
            self.move_delayed(e);
        }
    }

    fn release_all_delayed(&mut self) {
        if let Some(&(_, e)) = self.delay_marks.back() {
            self.move_delayed(e);
        }
        self.delay_marks.clear();
    }

    fn move_delayed(&mut self, end_abs: u64) {
        let n = (end_abs.saturating_sub(self.delayed_base) as usize).min(self.delayed.len());
        let out = &mut self.ws.get_mut().out;
        let (a, b) = self.delayed.as_slices();
        let from_a = n.min(a.len());
        out.extend_from_slice(a.get(..from_a).unwrap_or(&[]));
        out.extend_from_slice(b.get(..n - from_a).unwrap_or(&[]));
        self.delayed.drain(..n);
        self.delayed_base += n as u64;
    }

    /// Streams due messages within the rate budget.
    fn stream(&mut self, now: Instant) {
        if self.subs.is_empty() {
            self.last_refill = now;
            self.tokens = 0.0;
            return;
        }
        let rate = self.config().rate;
        let budget = if rate == 0 {
            MAX_BATCH
        } else {
            let dt = now
                .saturating_duration_since(self.last_refill)
                .as_secs_f64();
            let cap = (rate as f64 * 0.05).max(64.0);
            self.tokens = (self.tokens + dt * rate as f64).min(cap);
            (self.tokens.floor() as usize).min(MAX_BATCH)
        };
        self.last_refill = now;
        let limit = self.config().faults.drop_after_messages;
        let mut emitted = 0;
        while emitted < budget && self.backlog() < MAX_BACKLOG {
            let Some(i) = self.next_due(now) else {
                break;
            };
            let rate_only = self.shared.config.rate_only;
            if let Some(sub) = self.subs.get_mut(i)
                && let Some(iv) = sub.interval
                && !(rate_only && iv <= Duration::from_millis(100))
            {
                // Keep the cadence, but never accumulate a burst after a stall.
                let next = sub.next_due + iv;
                sub.next_due = if next > now { next } else { now + iv };
            }
            if !self.emit(i) {
                continue;
            }
            emitted += 1;
            self.data_sent += 1;
            if limit.is_some_and(|n| self.data_sent >= n) {
                self.closing = Some(Closing::Drop);
                break;
            }
        }
        if rate > 0 {
            self.tokens -= emitted as f64;
        }
    }

    fn backlog(&self) -> usize {
        self.ws.get_ref().pending() + self.delayed.len()
    }

    /// The next subscription due, round-robin from the cursor.
    fn next_due(&mut self, now: Instant) -> Option<usize> {
        let n = self.subs.len();
        for k in 0..n {
            let i = (self.cursor + k) % n;
            if self.subs.get(i).is_some_and(|s| s.next_due <= now) {
                self.cursor = (i + 1) % n;
                return Some(i);
            }
        }
        None
    }

    /// Renders and queues one data message of subscription `i` (or a malformed one); false
    /// if the subscription had nothing to send.
    fn emit(&mut self, i: usize) -> bool {
        let rate = self.shared.config.faults.malformed_rate;
        // 0 = well-formed, 1 = truncated, 2 = garbage, 3 = wrong types.
        let fault = if rate > 0.0 && self.rng.chance(rate) {
            1 + self.rng.below(3)
        } else {
            0
        };
        let ts_ms = now_ms();
        let send_ns = now_ns();
        self.body.clear();
        if fault == 2 {
            const CHARS: &[u8] = b"abcdefxyz0123456789{}[]\":,.-+ eE\\";
            let len = 1 + self.rng.below(80) as usize;
            for _ in 0..len {
                let c = CHARS
                    .get(self.rng.below(CHARS.len() as u64) as usize)
                    .copied()
                    .unwrap_or(b'?');
                self.body.push(c);
            }
        } else {
            if !self.render(i, ts_ms, send_ns, fault == 3) {
                return false;
            }
            if fault == 1 && self.body.len() > 1 {
                let cut = 1 + self.rng.below(self.body.len() as u64 - 1) as usize;
                self.body.truncate(cut);
            }
        }
        if fault != 0 {
            self.n_bad += 1;
        }
        self.n_msgs += 1;
        self.queue_body();
        true
    }

    /// Renders subscription `i`'s message into `self.body`; false if it has nothing to send
    /// (a depth stream with no change since its last event, or one lost to the gap fault).
    fn render(&mut self, i: usize, ts_ms: u64, send_ns: u64, bad: bool) -> bool {
        let Conn {
            subs,
            body,
            snap,
            shared,
            rng,
            proto,
            update_id,
            agg_id,
            trade_id,
            ..
        } = self;
        let Some(sub) = subs.get_mut(i) else {
            return false;
        };
        let chain = &shared.chain;
        match proto {
            Proto::Deribit => encode::deribit_notification_head(body, &sub.name),
            Proto::Binance { combined: true } => {
                body.raw(r#"{"stream":"#);
                body.plain_str(&sub.name);
                body.raw(r#","data":"#);
            }
            Proto::Binance { combined: false } | Proto::BinanceApi | Proto::Hyperliquid => {}
        }
        match &mut sub.feed {
            Feed::OptionTicker(o) => {
                encode::deribit_option_ticker(body, chain, snap, *o, ts_ms, send_ns, bad)
            }
            Feed::LinearTicker(r) => {
                encode::deribit_linear_ticker(body, chain, snap, *r, ts_ms, send_ns, bad)
            }
            Feed::Book(r, book) => {
                encode::deribit_book(body, chain, snap, *r, book, rng, ts_ms, send_ns, bad)
            }
            Feed::Index => encode::deribit_index(body, snap, ts_ms, send_ns, bad),
            Feed::MarkOptions => encode::deribit_markprice_options(body, chain, snap, ts_ms, bad),
            Feed::BookTicker => {
                *update_id += 1;
                encode::binance_book_ticker(body, snap, *update_id, ts_ms, send_ns, bad)
            }
            Feed::Depth(cursor) => {
                let gap_every = shared.config.faults.gap_every_msgs;
                if !shared
                    .depth
                    .render_update(snap, cursor, body, ts_ms, send_ns, bad, gap_every)
                {
                    return false;
                }
            }
            Feed::AggTrade => {
                *agg_id += 1;
                *trade_id += 3;
                encode::binance_agg_trade(body, snap, *agg_id, *trade_id, rng, ts_ms, send_ns, bad)
            }
            Feed::MarkPrice => encode::binance_mark_price(body, snap, ts_ms, send_ns, bad),
            Feed::HlBook => {
                if !shared.depth.render_l2_book(snap, HL_COIN, body, ts_ms, bad) {
                    return false;
                }
            }
        }
        match proto {
            Proto::Deribit => encode::deribit_notification_tail(body),
            Proto::Binance { combined: true } => body.push(b'}'),
            Proto::Binance { combined: false } | Proto::BinanceApi | Proto::Hyperliquid => {}
        }
        true
    }

    /// Adds a subscription unless present; false if the name is not a known channel.
    fn add_sub(&mut self, name: &str, parsed: Option<(Feed, Option<Duration>)>) -> bool {
        let Some((feed, interval)) = parsed else {
            return false;
        };
        if self.subs.iter().any(|s| s.name == name) {
            return true;
        }
        if self.subs.len() >= MAX_SUBS {
            return false;
        }
        self.subs.push(Sub {
            name: name.to_string(),
            feed,
            interval,
            next_due: Instant::now(),
        });
        true
    }

    fn add_binance(&mut self, name: &str) -> bool {
        let parsed = binance_stream(name);
        self.add_sub(name, parsed)
    }

    fn remove_sub(&mut self, name: &str) -> bool {
        let before = self.subs.len();
        self.subs.retain(|s| s.name != name);
        self.cursor = 0;
        self.subs.len() != before
    }

    fn handle_request(&mut self, text: &str, recv_ns: u64) {
        match self.proto {
            Proto::Deribit => self.handle_deribit(text, recv_ns),
            Proto::Binance { .. } => self.handle_binance(text),
            Proto::BinanceApi => self.handle_binance_api(text),
            Proto::Hyperliquid => self.handle_hyperliquid(text),
        }
    }

    /// Queues a JSON value as a message (requests only: allocation is fine here).
    fn reply(&mut self, v: &Value) {
        self.body.clear();
        if serde_json::to_writer(&mut self.body, v).is_ok() {
            self.queue_body();
        }
    }

    fn handle_deribit(&mut self, text: &str, recv_ns: u64) {
        let us_in = recv_ns / 1000;
        let req: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let msg = json!({"jsonrpc": "2.0", "id": null, "error": {
                    "code": -32700, "message": "Parse error", "data": {"reason": e.to_string()}}});
                return self.reply(&msg);
            }
        };
        let id = req.get("id").cloned().unwrap_or(Value::Null);
        let Some(method) = req.get("method").and_then(Value::as_str) else {
            let msg = json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": -32600, "message": "Invalid Request",
                "data": {"reason": "expected an object with a string \"method\""}}});
            return self.reply(&msg);
        };
        let params = req.get("params").cloned().unwrap_or(Value::Null);
        let result: Result<Answer, RpcError> = match method {
            "public/subscribe" | "private/subscribe" => self.deribit_subscribe(&params, true),
            "public/unsubscribe" | "private/unsubscribe" => self.deribit_subscribe(&params, false),
            "public/unsubscribe_all" | "private/unsubscribe_all" => {
                self.subs.clear();
                self.cursor = 0;
                Ok(Answer::Value(json!("ok")))
            }
            "public/set_heartbeat" => self.set_heartbeat(&params),
            "public/disable_heartbeat" => {
                self.heartbeat = None;
                Ok(Answer::Value(json!("ok")))
            }
            "public/test" => {
                if let Some(hb) = self.heartbeat.as_mut() {
                    hb.awaiting = false;
                }
                Ok(Answer::Value(json!({"version": API_VERSION})))
            }
            "public/hello" => Ok(Answer::Value(json!({"version": API_VERSION}))),
            "public/get_time" => Ok(Answer::Value(json!(now_ms()))),
            "public/get_instruments" => self.get_instruments(&params),
            "public/ticker" => self.public_ticker(&params),
            "public/auth" => self.public_auth(&params),
            m if m.starts_with("private/") && !self.may_trade() => Err((
                13009,
                "unauthorized",
                json!({"reason": "public/auth with client credentials first"}),
            )),
            "private/enable_cancel_on_disconnect" => self.cancel_on_disconnect(&params, true),
            "private/disable_cancel_on_disconnect" => self.cancel_on_disconnect(&params, false),
            "private/get_positions" => self.shared.orders.positions(&params).map(Answer::Value),
            "private/get_open_orders_by_currency" => {
                Ok(Answer::Value(self.shared.orders.open_orders()))
            }
            "private/buy" => self.place_order(&params, Direction::Buy, recv_ns),
            "private/sell" => self.place_order(&params, Direction::Sell, recv_ns),
            "private/cancel" => self
                .shared
                .orders
                .cancel(&params, now_ms(), recv_ns)
                .map(Answer::Value),
            "private/cancel_all" => Ok(Answer::Value(self.shared.orders.cancel_all())),
            "private/get_order_state_by_label" => {
                self.shared.orders.by_label(&params).map(Answer::Value)
            }
            _ => Err((-32601, "Method not found", json!({"method": method}))),
        };
        let us_out = now_ns() / 1000;
        // The result may be large (get_instruments): write the envelope by hand around it.
        self.body.clear();
        self.body.raw(r#"{"jsonrpc":"2.0","id":"#);
        let _ = serde_json::to_writer(&mut self.body, &id);
        match result {
            Ok(Answer::Value(v)) => {
                self.body.raw(r#","result":"#);
                let _ = serde_json::to_writer(&mut self.body, &v);
            }
            Ok(Answer::Raw(raw)) => {
                self.body.raw(r#","result":"#);
                self.body.extend_from_slice(&raw);
            }
            Ok(Answer::Instruments(kind)) => {
                self.body.raw(r#","result":"#);
                let chain = &self.shared.chain;
                self.body.raw(chain.instruments_json(kind).unwrap_or("[]"));
            }
            Err((code, message, data)) => {
                let e = json!({"code": code, "message": message, "data": data});
                self.body.raw(r#","error":"#);
                let _ = serde_json::to_writer(&mut self.body, &e);
            }
        }
        self.body.raw(r#","usIn":"#);
        self.body.int(us_in);
        self.body.raw(r#","usOut":"#);
        self.body.int(us_out);
        self.body.raw(r#","usDiff":"#);
        self.body.int(us_out.saturating_sub(us_in));
        self.body.raw(r#","testnet":false}"#);
        self.queue_body();
    }

    fn deribit_subscribe(&mut self, params: &Value, add: bool) -> Result<Answer, RpcError> {
        let Some(channels) = params.get("channels").and_then(Value::as_array) else {
            return Err(invalid_params(
                "channels",
                "expected an array of channel names",
            ));
        };
        let mut done = Vec::with_capacity(channels.len());
        for ch in channels {
            let Some(ch) = ch.as_str() else {
                return Err(invalid_params("channels", "every channel must be a string"));
            };
            let ok = if add {
                let parsed = deribit_channel(&self.shared.chain, ch);
                self.add_sub(ch, parsed)
            } else {
                self.remove_sub(ch)
            };
            if ok {
                done.push(Value::String(ch.to_string()));
            }
        }
        Ok(Answer::Value(Value::Array(done)))
    }

    fn set_heartbeat(&mut self, params: &Value) -> Result<Answer, RpcError> {
        let min = self.config().min_heartbeat.as_secs_f64();
        let Some(secs) = params.get("interval").and_then(Value::as_f64) else {
            return Err(invalid_params("interval", "expected a number of seconds"));
        };
        if !(secs.is_finite() && secs > 0.0 && secs >= min && secs <= 3600.0) {
            return Err((
                -32602,
                "Invalid params",
                json!({"param": "interval", "reason": format!("must be >= {min} and <= 3600")}),
            ));
        }
        let interval = Duration::from_secs_f64(secs);
        self.heartbeat = Some(Heartbeat {
            interval,
            next: Instant::now() + interval,
            awaiting: false,
        });
        Ok(Answer::Value(json!("ok")))
    }

    fn get_instruments(&self, params: &Value) -> Result<Answer, RpcError> {
        let currency = params.get("currency").and_then(Value::as_str);
        let kind = params.get("kind").and_then(Value::as_str);
        let expired = params
            .get("expired")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        match currency {
            Some("BTC" | "any") => {}
            Some("ETH" | "USDC" | "USDT" | "EURR") => return Ok(Answer::Value(json!([]))),
            Some(_) | None => {
                return Err(invalid_params(
                    "currency",
                    "must be one of BTC, ETH, USDC, USDT, EURR, any",
                ));
            }
        }
        if expired {
            return Ok(Answer::Value(json!([])));
        }
        let kind = match kind {
            None => None,
            Some("option") => Some("option"),
            Some("future") => Some("future"),
            Some("spot" | "future_combo" | "option_combo") => return Ok(Answer::Value(json!([]))),
            Some(_) => {
                return Err(invalid_params(
                    "kind",
                    "must be one of future, option, spot, future_combo, option_combo",
                ));
            }
        };
        Ok(Answer::Instruments(kind))
    }

    /// `private/buy` / `private/sell` on the venue's order desk, counted.
    fn place_order(
        &mut self,
        params: &Value,
        direction: Direction,
        recv_ns: u64,
    ) -> Result<Answer, RpcError> {
        // The freshest market: the snapshot may be a tick behind the market thread.
        self.generation = self.shared.market.refresh(self.generation, &mut self.snap);
        let (result, outcome) = self.shared.orders.place(
            params,
            direction,
            &self.shared.chain,
            &self.snap,
            Placed {
                now_ms: now_ms(),
                recv_ns,
                owner: self.id,
            },
        );
        let c = &self.shared.counters;
        if outcome.accepted {
            c.orders.fetch_add(1, Ordering::Relaxed);
        } else {
            c.rejected_orders.fetch_add(1, Ordering::Relaxed);
        }
        c.fills.fetch_add(outcome.fills, Ordering::Relaxed);
        result.map(Answer::Value)
    }

    /// Private methods need `public/auth` first when the venue has credentials configured;
    /// without them (the dry-run default) anyone may trade.
    fn may_trade(&self) -> bool {
        self.authed || self.shared.config.deribit_credentials.is_none()
    }

    /// `public/auth`: with credentials configured, `client_credentials` must match them
    /// (Deribit's `13004 invalid_credentials` otherwise); without, any grant of the right shape
    /// is accepted. The token is fake either way.
    fn public_auth(&mut self, params: &Value) -> Result<Answer, RpcError> {
        let grant = params.get("grant_type").and_then(Value::as_str);
        if let Some(creds) = &self.shared.config.deribit_credentials {
            let id = params.get("client_id").and_then(Value::as_str);
            let secret = params.get("client_secret").and_then(Value::as_str);
            if grant != Some("client_credentials")
                || id != Some(creds.client_id.as_str())
                || secret != Some(creds.client_secret.as_str())
            {
                self.authed = false;
                return Err((13004, "invalid_credentials", json!({})));
            }
        }
        let answer = public_auth(params)?;
        self.authed = true;
        Ok(answer)
    }

    /// `private/enable_cancel_on_disconnect` / `disable_…` (`scope` connection|account; both
    /// act on this connection's orders, the only ones keel-sim tracks per owner).
    fn cancel_on_disconnect(&mut self, params: &Value, on: bool) -> Result<Answer, RpcError> {
        match params.get("scope") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s == "connection" || s == "account" => {}
            Some(_) => return Err(invalid_params("scope", "must be connection or account")),
        }
        self.cancel_on_disconnect = on;
        Ok(Answer::Value(json!("ok")))
    }

    fn public_ticker(&mut self, params: &Value) -> Result<Answer, RpcError> {
        let Some(name) = params.get("instrument_name").and_then(Value::as_str) else {
            return Err(invalid_params("instrument_name", "expected a string"));
        };
        let Some(inst) = self.shared.chain.lookup(name) else {
            return Err((
                -32602,
                "Invalid params",
                json!({"param": "instrument_name",
                "reason": format!("unknown instrument {name:?}")}),
            ));
        };
        let mut b = Vec::with_capacity(1024);
        let (ts, ns) = (now_ms(), now_ns());
        match inst {
            InstrumentRef::Option(i) => encode::deribit_option_ticker(
                &mut b,
                &self.shared.chain,
                &self.snap,
                i,
                ts,
                ns,
                false,
            ),
            other => encode::deribit_linear_ticker(
                &mut b,
                &self.shared.chain,
                &self.snap,
                other,
                ts,
                ns,
                false,
            ),
        }
        Ok(Answer::Raw(b))
    }

    /// A Hyperliquid WebSocket message: `subscribe`/`unsubscribe` of `l2Book` (coin BTC) here,
    /// answered `subscriptionResponse`; `post` and `ping` by the desk (`garble_every` corrupts
    /// its replies).
    fn handle_hyperliquid(&mut self, text: &str) {
        if let Ok(req) = serde_json::from_str::<Value>(text)
            && let Some(m @ ("subscribe" | "unsubscribe")) =
                req.get("method").and_then(Value::as_str)
        {
            let sub = req.get("subscription").cloned().unwrap_or(Value::Null);
            let kind = sub.get("type").and_then(Value::as_str).unwrap_or("");
            let coin = sub.get("coin").and_then(Value::as_str).unwrap_or("");
            let name = format!("l2Book:{coin}");
            let ok = if kind != "l2Book" || coin != HL_COIN {
                false
            } else if m == "subscribe" {
                self.add_sub(&name, Some((Feed::HlBook, Some(HL_BOOK_EVERY))))
            } else {
                self.remove_sub(&name)
            };
            let reply = if ok {
                json!({"channel": "subscriptionResponse", "data": {"method": m, "subscription": sub}})
            } else {
                json!({"channel": "error", "data": format!(
                    "Invalid subscription {sub}: keel-sim streams l2Book of {HL_COIN}")})
            };
            return self.reply(&reply);
        }
        self.generation = self.shared.market.refresh(self.generation, &mut self.snap);
        let (reply, outcome) = self
            .shared
            .hyperliquid
            .ws_message(text, &self.snap, now_ms());
        hyperliquid::count(&self.shared.counters, outcome);
        self.order_reply(&reply);
    }

    /// Queues an order-API reply: never sent every `drop_every`-th time, cut in half every
    /// `garble_every`-th time, held `reply_delay` (else the connection's `--delay-ms`).
    fn order_reply(&mut self, reply: &Value) {
        let api = &self.shared.config.order_api;
        let (drop_every, garble_every) = (api.drop_every, api.garble_every);
        let delay = api.reply_delay.or(self.shared.config.faults.delay);
        self.order_replies += 1;
        if drop_every.is_some_and(|n| self.order_replies.is_multiple_of(n)) {
            return;
        }
        self.body.clear();
        let _ = serde_json::to_writer(&mut self.body, reply);
        if garble_every.is_some_and(|n| self.order_replies.is_multiple_of(n)) {
            self.n_bad += 1;
            let cut = self.body.len() / 2;
            self.body.truncate(cut);
        }
        self.queue_body_after(delay);
    }

    /// A Binance WebSocket API request: the desk answers; `garble_every` corrupts replies.
    fn handle_binance_api(&mut self, text: &str) {
        self.generation = self.shared.market.refresh(self.generation, &mut self.snap);
        let (reply, outcome) = self
            .shared
            .binance_orders
            .handle(text, &self.snap, now_ms());
        let c = &self.shared.counters;
        if outcome.accepted {
            c.orders.fetch_add(1, Ordering::Relaxed);
        }
        if outcome.rejected {
            c.rejected_orders.fetch_add(1, Ordering::Relaxed);
        }
        c.fills.fetch_add(outcome.fills, Ordering::Relaxed);
        self.order_reply(&reply);
    }

    fn handle_binance(&mut self, text: &str) {
        let req: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let reply = binance_error(3, &format!("Invalid JSON: {e}"), Value::Null);
                return self.reply(&reply);
            }
        };
        let id = req.get("id").cloned().unwrap_or(Value::Null);
        let method = req.get("method").and_then(Value::as_str).unwrap_or("");
        let names: Vec<String> = req
            .get("params")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let reply = match method {
            "SUBSCRIBE" | "UNSUBSCRIBE" => {
                let bad: Vec<&String> = names
                    .iter()
                    .filter(|n| binance_stream(n).is_none())
                    .collect();
                if let Some(first) = bad.first() {
                    let msg = format!("Invalid request: invalid stream name {first:?}");
                    binance_error(2, &msg, id)
                } else {
                    for n in &names {
                        if method == "SUBSCRIBE" {
                            self.add_binance(n);
                        } else {
                            self.remove_sub(n);
                        }
                    }
                    json!({"result": null, "id": id})
                }
            }
            "LIST_SUBSCRIPTIONS" => {
                let list: Vec<&str> = self.subs.iter().map(|s| s.name.as_str()).collect();
                json!({"result": list, "id": id})
            }
            "SET_PROPERTY" => json!({"result": null, "id": id}),
            "GET_PROPERTY" => {
                json!({"result": self.proto == (Proto::Binance { combined: true }), "id": id})
            }
            other => {
                let msg = format!(
                    "Invalid request: unknown variant `{other}`, expected one of `SUBSCRIBE`, \
                     `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"
                );
                binance_error(2, &msg, id)
            }
        };
        self.reply(&reply);
    }
}

/// The shape of a `public/auth` answer: `client_credentials`, `client_signature` and
/// `refresh_token` grants get a fake bearer token in Deribit's shape, other grants an error
/// (credentials, when configured, are checked by the caller).
fn public_auth(params: &Value) -> Result<Answer, RpcError> {
    match params.get("grant_type").and_then(Value::as_str) {
        Some("client_credentials" | "refresh_token" | "client_signature") => {
            Ok(Answer::Value(json!({
                "access_token": "keel-sim-access-token",
                "refresh_token": "keel-sim-refresh-token",
                "expires_in": 31_536_000,
                "scope": "connection mainaccount trade:read_write",
                "token_type": "bearer",
                "enabled_features": [],
            })))
        }
        _ => Err(invalid_params(
            "grant_type",
            "must be client_credentials, client_signature or refresh_token",
        )),
    }
}

/// A Deribit REST private method (GET, JSON-RPC envelope in the body). With credentials
/// configured the request must carry `Authorization: deri-hmac-sha256 id=..,ts=..,sig=..,nonce=..`:
/// HMAC-SHA256 with the client secret of `ts\nnonce\nGET\nuri\n\n`, `ts` within 60 s of now;
/// otherwise 401 with Deribit's `13009 unauthorized` (or `13004 invalid_credentials`).
fn deribit_rest_private(
    shared: &Shared,
    head: &str,
    target: &str,
    path: &str,
    param: &dyn Fn(&str) -> Option<String>,
) -> (u16, Vec<u8>) {
    let envelope = |v: Result<Value, (i64, &str)>| {
        let us = now_ns() / 1000;
        let body = match v {
            Ok(result) => json!({"jsonrpc": "2.0", "result": result, "usIn": us, "usOut": us,
                                 "usDiff": 0, "testnet": true}),
            Err((code, msg)) => json!({"jsonrpc": "2.0", "error": {"code": code, "message": msg},
                                       "usIn": us, "usOut": us, "usDiff": 0, "testnet": true}),
        };
        body.to_string().into_bytes()
    };
    if let Some(creds) = &shared.config.deribit_credentials {
        let auth = head.split("\r\n").find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("authorization")
                .then(|| v.trim().to_string())
        });
        match auth.as_deref().map(|a| check_deri_hmac(a, creds, target)) {
            Some(Ok(())) => {}
            Some(Err(msg)) => return (401, envelope(Err((13004, msg)))),
            None => return (401, envelope(Err((13009, "unauthorized")))),
        }
    }
    let currency = param("currency").unwrap_or_default();
    let mut params = json!({"currency": currency});
    if let Some(k) = param("kind") {
        params["kind"] = json!(k);
    }
    let result = if path.ends_with("get_positions") {
        shared
            .orders
            .positions(&params)
            .map_err(|(code, msg, _)| (code, msg))
    } else {
        Ok(shared.orders.open_orders())
    };
    match result {
        Ok(v) => (200, envelope(Ok(v))),
        Err(e) => (400, envelope(Err(e))),
    }
}

/// Checks a `deri-hmac-sha256` Authorization value against the configured credentials.
fn check_deri_hmac(
    value: &str,
    creds: &super::SimCredentials,
    uri: &str,
) -> Result<(), &'static str> {
    use hmac::{Hmac, Mac};
    let rest = value
        .strip_prefix("deri-hmac-sha256 ")
        .ok_or("expected deri-hmac-sha256")?;
    let field = |name: &str| {
        rest.split(',')
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    };
    let (Some(id), Some(ts), Some(sig), Some(nonce)) =
        (field("id"), field("ts"), field("sig"), field("nonce"))
    else {
        return Err("deri-hmac-sha256 needs id, ts, sig and nonce");
    };
    if id != creds.client_id {
        return Err("invalid_credentials");
    }
    let ts_ms: u64 = ts.parse().map_err(|_| "ts is not a number")?;
    if ts_ms.abs_diff(now_ms()) > 60_000 {
        return Err("ts is more than 60 s from the venue's clock");
    }
    let sig = (0..sig.len() / 2)
        .map(|i| u8::from_str_radix(sig.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| "sig is not hex")?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(creds.client_secret.as_bytes())
        .map_err(|_| "invalid_credentials")?;
    mac.update(format!("{ts}\n{nonce}\nGET\n{uri}\n\n").as_bytes());
    mac.verify_slice(&sig).map_err(|_| "invalid_credentials")
}

/// Binance's error reply: `{"error":{"code":N,"msg":"..."},"id":ID}`.
fn binance_error(code: i64, msg: &str, id: Value) -> Value {
    json!({"error": {"code": code, "msg": msg}, "id": id})
}

/// A JSON-RPC error: code, message and data.
type RpcError = (i64, &'static str, Value);

/// A JSON-RPC result.
enum Answer {
    /// A value to serialise.
    Value(Value),
    /// Pre-rendered JSON.
    Raw(Vec<u8>),
    /// The chain's pre-rendered instrument list of a kind (`None` = all).
    Instruments(Option<&'static str>),
}

fn invalid_params(param: &str, reason: &str) -> RpcError {
    (
        -32602,
        "Invalid params",
        json!({"param": param, "reason": reason}),
    )
}

/// Appends `payload` as one text message split into `k` frames (fewer if it is shorter than
/// `k` bytes): a text frame, then continuation frames, the last one final.
fn write_frames<W: Write>(w: &mut W, payload: &[u8], k: usize) {
    let k = k.clamp(1, payload.len().max(1));
    let chunk = payload.len().div_ceil(k).max(1);
    let mut parts = payload.chunks(chunk).peekable();
    let mut first = true;
    if payload.is_empty() {
        let h = header(true, true);
        let _ = h.format(0, w);
        return;
    }
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        let h = header(first, last);
        let _ = h.format(part.len() as u64, w);
        let _ = w.write_all(part);
        first = false;
    }
}

fn header(first: bool, last: bool) -> FrameHeader {
    FrameHeader {
        is_final: last,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode: OpCode::Data(if first { Data::Text } else { Data::Continue }),
        mask: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_into_k_parts() {
        let mut out = Vec::new();
        write_frames(&mut out, b"abcdefghij", 3);
        // 4+4+2 bytes: headers 0x01 (text, not final), 0x00, 0x80 (continuation, final).
        assert_eq!(out[0], 0x01);
        assert_eq!(out[1], 4);
        assert_eq!(&out[2..6], b"abcd");
        assert_eq!(out[6], 0x00);
        assert_eq!(out[12], 0x80);
        assert_eq!(out[13], 2);
        assert_eq!(&out[14..], b"ij");
        let mut one = Vec::new();
        write_frames(&mut one, b"ab", 1);
        assert_eq!(one, [0x81, 2, b'a', b'b']);
        let mut big = Vec::new();
        write_frames(&mut big, &[b'x'; 70_000], 1);
        assert_eq!(&big[..4], &[0x81, 127, 0, 0]);
    }

    #[test]
    fn channel_names_parse() {
        let spec = super::super::chain::ChainSpec {
            options: 20,
            spot: 100_000.0,
            vol: 0.6,
            carry: 0.0,
            now_ms: 1_780_000_000_000,
            seed: 1,
        };
        let chain = Chain::build(&spec);
        let opt = chain.options[0].name.clone();
        assert!(matches!(
            deribit_channel(&chain, &format!("ticker.{opt}.raw")),
            Some((Feed::OptionTicker(0), None))
        ));
        assert!(matches!(
            deribit_channel(&chain, "ticker.BTC-PERPETUAL.100ms"),
            Some((Feed::LinearTicker(InstrumentRef::Perpetual), Some(_)))
        ));
        assert!(deribit_channel(&chain, "ticker.BTC-PERPETUAL.5ms").is_none());
        assert!(deribit_channel(&chain, "ticker.NOPE.raw").is_none());
        assert!(deribit_channel(&chain, "deribit_price_index.btc_usd").is_some());
        assert!(deribit_channel(&chain, "deribit_price_index.eth_usd").is_none());
        assert!(deribit_channel(&chain, "markprice.options.btc_usd").is_some());
        assert!(deribit_channel(&chain, "").is_none());
        assert!(binance_stream("btcusdt@bookTicker").is_some());
        assert!(binance_stream("BTCUSDT@depth@100ms").is_some());
        assert!(binance_stream("ethusdt@bookTicker").is_none());
        assert!(binance_stream("btcusdt@kline_1m").is_none());
        assert!(binance_stream("@@").is_none());
    }
}
