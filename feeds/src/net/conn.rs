//! One WebSocket connection driven by a mio [`Registry`]: non-blocking TCP (TCP_NODELAY),
//! optional TLS (a rustls `ClientConnection` over the mio `TcpStream`), the RFC 6455 handshake,
//! then message streaming to its [`Session`]; pings answered with pongs, a server close answered
//! with a close, a staleness timer, buffered writes flushed on writable readiness.
//!
//! State machine (see [`ConnState`]):
//!
//! ```text
//! Waiting --deadline--> Connecting --tcp up--> TlsHandshake (wss) --> WsHandshake --101--> Open
//!    ^                                                                                   |
//!    +----------- any failure: Disconnected{reason} at once, then jittered backoff ------+
//! ```
//!
//! 1. An attempt resolves the host with std's blocking `ToSocketAddrs` (at connect time, never on
//!    the hot path) and tries each address in turn within `connect_timeout`, which bounds the
//!    whole attempt up to the 101 response.
//! 2. On open the session's `on_open` queues its subscriptions (again after every reconnection),
//!    then `Connected` (first time) or `Reconnected { attempts }` is emitted.
//! 3. On any failure `Disconnected { reason }` is emitted at once, once per outage (also when the
//!    very first attempt fails), and the next attempt waits for [`Backoff`].
//!
//! Owns the socket, its buffers and timers. Never allocates per message once its buffers have
//! grown (rustls itself allocates one buffer per TLS record in 0.23, in both its buffered and
//! unbuffered APIs; plain `ws://` is allocation-free), never blocks except in name resolution,
//! never panics on what the peer sends.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::{ClientConfig, ClientConnection};
use rustls_pki_types::ServerName;

use crate::clock;
use crate::event::{DisconnectReason, EventBody, MarketEvent, Venue};
use crate::instrument::InstrumentId;
use crate::net::backoff::{Backoff, BackoffConfig};
use crate::net::session::{Outbox, Session};
use crate::net::tls::{TlsError, client_config};
use crate::net::url::{Url, UrlError};
use crate::net::ws::{
    ClientHandshake, FrameDecoder, FrameEncoder, HandshakeError, Message, WsError,
};

/// How often an open connection runs its timers (staleness, the session's `on_timer`).
pub const TICK: Duration = Duration::from_millis(100);

/// Bytes one connection may read per turn before the loop serves the others (it resumes on
/// the next turn without waiting for readiness, as mio is edge-triggered).
pub const READ_BUDGET: usize = 1 << 20;

/// Settings of one connection.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// `ws://` or `wss://` URL.
    pub url: Url,
    /// PEM file of extra trusted CA certificates (added to the webpki roots).
    pub ca_file: Option<PathBuf>,
    /// Largest message accepted (a larger one is a protocol error). Default 16 MiB.
    pub max_message_size: usize,
    /// No data message (text or binary; control frames do not count, so a server that only
    /// answers pings is still stale) for this long: the connection is dropped with
    /// `Disconnected { Stale }`. Checked every [`TICK`]. Default 30 s.
    pub stale_after: Option<Duration>,
    /// Bound on one attempt: resolution, TCP connect, TLS and WebSocket handshakes. Default 10 s.
    pub connect_timeout: Duration,
    /// Reconnection backoff.
    pub backoff: BackoffConfig,
    /// Extra handshake request headers (e.g. `Origin`, an API key header).
    pub headers: Vec<(String, String)>,
    /// Initial read buffer; it grows to the largest frame. Default 64 KiB.
    pub read_buffer_size: usize,
    /// Write buffer preallocated at start-up. Default 64 KiB.
    pub write_buffer_size: usize,
    /// More unsent bytes than this (the server is not reading): the connection is dropped.
    /// Default 4 MiB.
    pub max_write_backlog: usize,
    /// Check text messages for UTF-8 (see [`FrameDecoder::set_validate_utf8`]). Default true.
    pub validate_utf8: bool,
}

impl ConnectionConfig {
    /// Defaults for `url`, which must be `ws://` or `wss://`.
    pub fn new(url: &str) -> Result<Self, SetupError> {
        let parsed = Url::parse(url)?;
        if !parsed.scheme().is_websocket() {
            return Err(SetupError::NotWebSocket {
                url: url.to_owned(),
            });
        }
        Ok(Self {
            url: parsed,
            ca_file: None,
            max_message_size: 16 << 20,
            stale_after: Some(Duration::from_secs(30)),
            connect_timeout: Duration::from_secs(10),
            backoff: BackoffConfig::default(),
            headers: Vec::new(),
            read_buffer_size: 64 << 10,
            write_buffer_size: 64 << 10,
            max_write_backlog: 4 << 20,
            validate_utf8: true,
        })
    }
}

/// Why a connection could not be set up (configuration errors, at start-up).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The URL does not parse.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// Not a WebSocket URL.
    #[error("URL {url:?} is not ws:// or wss://")]
    NotWebSocket {
        /// The URL.
        url: String,
    },
    /// A handshake header that would break the request.
    #[error("handshake header {name:?} has an invalid name or a CR/LF in its value")]
    BadHeader {
        /// The header name.
        name: String,
    },
    /// The TLS configuration (CA file) failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The host is not a valid TLS server name.
    #[error("host {host:?} is not a valid TLS server name")]
    ServerName {
        /// The host.
        host: String,
    },
    /// [`MarketEvent::conn`] is a `u8`.
    #[error("a feed loop serves at most {limit} connections")]
    TooManyConnections {
        /// The limit.
        limit: usize,
    },
    /// The OS refused the poller.
    #[error("cannot create the mio poll: {0}")]
    Poll(io::Error),
}

/// Why a connection failed (kept as [`ConnFailure`] for diagnostics; downstream sees the
/// [`DisconnectReason`]).
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// Name resolution failed.
    #[error("cannot resolve {host}:{port}: {source}")]
    Resolve {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Resolver error.
        source: io::Error,
    },
    /// Name resolution gave no address.
    #[error("{host}:{port} resolved to no address")]
    NoAddress {
        /// Host.
        host: String,
        /// Port.
        port: u16,
    },
    /// Every address refused or failed the TCP connect; the last error.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The last address tried.
        addr: SocketAddr,
        /// Its error.
        source: io::Error,
    },
    /// The attempt did not reach the 101 response in time.
    #[error("connect and handshake did not complete within {0:?}")]
    ConnectTimeout(Duration),
    /// TLS failed (certificate, alert, protocol).
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The WebSocket handshake failed.
    #[error("WebSocket handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The server broke the WebSocket protocol.
    #[error("WebSocket protocol: {0}")]
    Protocol(#[from] WsError),
    /// A socket error.
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    /// The server closed: a close frame (with its code, if any) or end of stream.
    #[error("closed by the server{}", match .code { Some(c) => format!(" with code {c}"), None => String::new() })]
    PeerClosed {
        /// The close frame's status code.
        code: Option<u16>,
    },
    /// No data message within `stale_after`.
    #[error("no message for {0:?}")]
    Stale(Duration),
    /// The session dropped the connection.
    #[error("the session dropped the connection: {0:?}")]
    Session(DisconnectReason),
    /// The server is not reading what we send.
    #[error("more than {0} bytes waiting to be written")]
    WriteBacklog(usize),
    /// Shut down on request.
    #[error("shut down")]
    Shutdown,
}

impl ConnError {
    /// The reason reported downstream when an open connection fails with this error.
    pub fn reason(&self) -> DisconnectReason {
        match self {
            ConnError::PeerClosed { .. } => DisconnectReason::PeerClosed,
            ConnError::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::UnexpectedEof
                ) =>
            {
                DisconnectReason::PeerClosed
            }
            ConnError::Stale(_) => DisconnectReason::Stale,
            ConnError::Session(r) => *r,
            ConnError::Shutdown => DisconnectReason::Shutdown,
            ConnError::Resolve { .. }
            | ConnError::NoAddress { .. }
            | ConnError::Connect { .. }
            | ConnError::ConnectTimeout(_)
            | ConnError::Handshake(_) => DisconnectReason::ConnectFailed,
            ConnError::Tls(_)
            | ConnError::Protocol(_)
            | ConnError::Io(_)
            | ConnError::WriteBacklog(_) => DisconnectReason::Protocol,
        }
    }
}

/// The last failure of a connection: which URL, when, and why.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {error}")]
pub struct ConnFailure {
    /// The connection's URL (shared with the connection: recording a failure does not
    /// allocate).
    pub url: std::sync::Arc<str>,
    /// Local time of the failure, ns ([`clock::now_ns`]).
    pub at_ns: u64,
    /// The reason reported downstream.
    pub reason: DisconnectReason,
    /// What happened.
    pub error: ConnError,
}

/// Where a connection is in its life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// Waiting for the first attempt or for the backoff to expire.
    Waiting,
    /// TCP connect in progress.
    Connecting,
    /// TLS handshake in progress (wss).
    TlsHandshake,
    /// WebSocket upgrade sent, waiting for 101.
    WsHandshake,
    /// Streaming.
    Open,
    /// Shut down; never reconnects.
    Stopped,
}

/// Counters of one connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Data messages delivered to the session.
    pub messages: u64,
    /// Payload bytes of those messages.
    pub message_bytes: u64,
    /// Pings answered.
    pub pings: u64,
    /// Successful opens.
    pub opens: u64,
    /// Connection attempts.
    pub attempts: u64,
    /// Failures (of attempts or of open connections).
    pub failures: u64,
}

enum Transport {
    Plain(TcpStream),
    Tls(TcpStream, Box<ClientConnection>),
}

impl Transport {
    fn tcp(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(t) | Transport::Tls(t, _) => t,
        }
    }
}

/// What reading found besides messages.
enum After {
    Continue,
    /// The server sent a close frame; ours is queued.
    CloseReceived(Option<u16>),
}

pub(crate) struct Connection {
    index: u8,
    cfg: ConnectionConfig,
    url_text: std::sync::Arc<str>,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    session: Box<dyn Session>,
    venue: Venue,
    state: ConnState,
    transport: Option<Transport>,
    addrs: Vec<SocketAddr>,
    next_addr: usize,
    decoder: FrameDecoder,
    encoder: FrameEncoder,
    out: Vec<u8>,
    out_pos: usize,
    handshake: ClientHandshake,
    backoff: Backoff,
    attempts: u32,
    ever_open: bool,
    in_outage: bool,
    deadline: Instant,
    next_tick: Instant,
    last_msg_ns: u64,
    last_failure: Option<ConnFailure>,
    stats: ConnStats,
    /// The read budget ran out before the socket would block.
    more_to_read: bool,
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

impl Connection {
    pub(crate) fn new(
        index: u8,
        cfg: ConnectionConfig,
        session: Box<dyn Session>,
        now: Instant,
    ) -> Result<Self, SetupError> {
        for (name, value) in &cfg.headers {
            let bad_name = name.is_empty()
                || name
                    .bytes()
                    .any(|b| b == b':' || b.is_ascii_whitespace() || b.is_ascii_control());
            if bad_name || value.bytes().any(|b| b == b'\r' || b == b'\n') {
                return Err(SetupError::BadHeader { name: name.clone() });
            }
        }
        let tls = if cfg.url.scheme().is_tls() {
            let config = client_config(cfg.ca_file.as_deref())?;
            let name = ServerName::try_from(cfg.url.host().to_owned()).map_err(|_| {
                SetupError::ServerName {
                    host: cfg.url.host().to_owned(),
                }
            })?;
            Some((config, name))
        } else {
            None
        };
        let mut decoder = FrameDecoder::with_buffer(cfg.max_message_size, cfg.read_buffer_size);
        decoder.set_validate_utf8(cfg.validate_utf8);
        Ok(Self {
            index,
            url_text: cfg.url.to_string().into(),
            tls,
            venue: session.venue(),
            session,
            state: ConnState::Waiting,
            transport: None,
            addrs: Vec::with_capacity(4),
            next_addr: 0,
            decoder,
            encoder: FrameEncoder::new(),
            out: Vec::with_capacity(cfg.write_buffer_size),
            out_pos: 0,
            handshake: ClientHandshake::new(),
            backoff: Backoff::new(cfg.backoff),
            attempts: 0,
            ever_open: false,
            in_outage: false,
            deadline: now,
            next_tick: now,
            last_msg_ns: 0,
            last_failure: None,
            stats: ConnStats::default(),
            more_to_read: false,
            cfg,
        })
    }

    pub(crate) fn state(&self) -> ConnState {
        self.state
    }

    pub(crate) fn stats(&self) -> ConnStats {
        self.stats
    }

    pub(crate) fn last_failure(&self) -> Option<&ConnFailure> {
        self.last_failure.as_ref()
    }

    /// The last turn stopped at the read budget: serve again without waiting for readiness.
    pub(crate) fn has_more_to_read(&self) -> bool {
        self.more_to_read && !matches!(self.state, ConnState::Waiting | ConnState::Stopped)
    }

    /// When this connection next needs [`on_time`](Self::on_time).
    pub(crate) fn next_wakeup(&self) -> Option<Instant> {
        match self.state {
            ConnState::Stopped => None,
            ConnState::Open => Some(self.next_tick),
            _ => Some(self.deadline),
        }
    }

    fn event(&self, body: EventBody) -> MarketEvent {
        MarketEvent {
            exchange_ts_ns: 0,
            recv_ts_ns: clock::now_ns(),
            instrument: InstrumentId::NONE,
            venue: self.venue,
            conn: self.index,
            body,
        }
    }

    /// Socket readiness for this connection's token.
    pub(crate) fn on_ready(&mut self, registry: &Registry, emit: &mut dyn FnMut(MarketEvent)) {
        if matches!(self.state, ConnState::Waiting | ConnState::Stopped) {
            return;
        }
        if let Err(e) = self.pump(registry, emit) {
            self.fail(registry, e, Instant::now(), emit);
        }
    }

    /// Passes a resync request to the session ([`Session::request_resync`]).
    pub fn request_resync(&mut self, instrument: crate::instrument::InstrumentId) {
        self.session.request_resync(instrument);
    }

    /// Lets an open connection's session queue messages on its own initiative
    /// ([`Session::poll_outgoing`]) and writes them at once.
    pub(crate) fn poll_outgoing(&mut self, registry: &Registry, emit: &mut dyn FnMut(MarketEvent)) {
        if self.state != ConnState::Open {
            return;
        }
        let mut outbox = Outbox::new(&mut self.encoder, &mut self.out);
        if !self.session.poll_outgoing(&mut outbox) {
            return;
        }
        match self.flush() {
            Ok(()) => self.session.on_flushed(clock::now_ns()),
            Err(e) => self.fail(registry, e, Instant::now(), emit),
        }
    }

    /// Timers: attempt start, attempt deadline, ticks (staleness, session timer).
    pub(crate) fn on_time(
        &mut self,
        registry: &Registry,
        now: Instant,
        emit: &mut dyn FnMut(MarketEvent),
    ) {
        let result = match self.state {
            ConnState::Stopped => Ok(()),
            ConnState::Waiting if now >= self.deadline => self.start_attempt(registry, now),
            ConnState::Waiting => Ok(()),
            ConnState::Connecting | ConnState::TlsHandshake | ConnState::WsHandshake => {
                if now >= self.deadline {
                    Err(ConnError::ConnectTimeout(self.cfg.connect_timeout))
                } else {
                    Ok(())
                }
            }
            ConnState::Open if now >= self.next_tick => {
                self.next_tick = now + TICK;
                self.tick(emit)
            }
            ConnState::Open => Ok(()),
        };
        if let Err(e) = result {
            self.fail(registry, e, now, emit);
        }
    }

    fn tick(&mut self, emit: &mut dyn FnMut(MarketEvent)) -> Result<(), ConnError> {
        let now_ns = clock::now_ns();
        if let Some(limit) = self.cfg.stale_after {
            let silent = now_ns.saturating_sub(self.last_msg_ns);
            if silent > u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX) {
                return Err(ConnError::Stale(limit));
            }
        }
        let index = self.index;
        let mut tagged = |mut ev: MarketEvent| {
            ev.conn = index;
            emit(ev);
        };
        let mut outbox = Outbox::new(&mut self.encoder, &mut self.out);
        self.session
            .on_timer(now_ns, &mut outbox, &mut tagged)
            .map_err(ConnError::Session)?;
        self.flush()
    }

    fn start_attempt(&mut self, registry: &Registry, now: Instant) -> Result<(), ConnError> {
        self.attempts = self.attempts.saturating_add(1);
        self.stats.attempts += 1;
        self.deadline = now + self.cfg.connect_timeout;
        self.state = ConnState::Connecting;
        let (host, port) = (self.cfg.url.host(), self.cfg.url.port());
        self.addrs.clear();
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            // An IP literal: no lookup (and no allocation on a reconnection).
            self.addrs.push(std::net::SocketAddr::new(ip, port));
        } else {
            // A name is looked up again on every attempt (the venue may have moved).
            let resolved = (host, port)
                .to_socket_addrs()
                .map_err(|source| ConnError::Resolve {
                    host: host.to_owned(),
                    port,
                    source,
                })?;
            self.addrs.extend(resolved);
        }
        self.next_addr = 0;
        if self.addrs.is_empty() {
            return Err(ConnError::NoAddress {
                host: host.to_owned(),
                port,
            });
        }
        self.connect_next(registry, None)
    }

    /// Starts a TCP connect to the next address; `prev` is the previous address's failure.
    fn connect_next(
        &mut self,
        registry: &Registry,
        mut prev: Option<ConnError>,
    ) -> Result<(), ConnError> {
        self.close_transport(registry);
        while let Some(&addr) = self.addrs.get(self.next_addr) {
            self.next_addr += 1;
            let connected = TcpStream::connect(addr).and_then(|mut tcp| {
                tcp.set_nodelay(true)?;
                registry.register(
                    &mut tcp,
                    Token(usize::from(self.index)),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                Ok(tcp)
            });
            match connected {
                Ok(tcp) => {
                    self.transport = Some(Transport::Plain(tcp));
                    self.state = ConnState::Connecting;
                    return Ok(());
                }
                Err(source) => prev = Some(ConnError::Connect { addr, source }),
            }
        }
        Err(prev.unwrap_or(ConnError::NoAddress {
            host: self.cfg.url.host().to_owned(),
            port: self.cfg.url.port(),
        }))
    }

    fn close_transport(&mut self, registry: &Registry) {
        if let Some(mut t) = self.transport.take() {
            let _ = registry.deregister(t.tcp());
        }
    }

    /// Everything readiness can advance: connect completion, TLS, handshake, reads, writes.
    fn pump(
        &mut self,
        registry: &Registry,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<(), ConnError> {
        if self.state == ConnState::Connecting && !self.check_connected(registry)? {
            return Ok(());
        }
        let after = self.read_ready(emit)?;
        let flushed = self.flush();
        if let After::CloseReceived(code) = after {
            if let Some(Transport::Tls(tcp, tls)) = self.transport.as_mut() {
                tls.send_close_notify();
                let _ = tls.write_tls(tcp);
            }
            return Err(ConnError::PeerClosed { code });
        }
        flushed
    }

    /// Completes a non-blocking connect (mio's recipe: `take_error`, then `peer_addr`).
    fn check_connected(&mut self, registry: &Registry) -> Result<bool, ConnError> {
        let Some(transport) = self.transport.as_mut() else {
            return Ok(false);
        };
        let tcp = transport.tcp();
        let addr = self.addrs.get(self.next_addr.wrapping_sub(1)).copied();
        let failure = match tcp.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match tcp.peer_addr() {
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(false),
                Err(e) => Some(e),
            },
        };
        if let Some(source) = failure {
            let err = match addr {
                Some(addr) => ConnError::Connect { addr, source },
                None => ConnError::Io(source),
            };
            self.connect_next(registry, Some(err))?;
            return Ok(false);
        }
        // TCP is up.
        let Some(Transport::Plain(tcp)) = self.transport.take() else {
            return Ok(false);
        };
        match &self.tls {
            Some((config, name)) => {
                let tls = ClientConnection::new(Arc::clone(config), name.clone());
                // Keep the socket registered even if rustls refuses, so close_transport finds it.
                match tls {
                    Ok(tls) => {
                        self.transport = Some(Transport::Tls(tcp, Box::new(tls)));
                        self.state = ConnState::TlsHandshake;
                    }
                    Err(e) => {
                        self.transport = Some(Transport::Plain(tcp));
                        return Err(e.into());
                    }
                }
            }
            None => {
                self.transport = Some(Transport::Plain(tcp));
                self.send_upgrade();
            }
        }
        Ok(true)
    }

    fn send_upgrade(&mut self) {
        self.handshake = ClientHandshake::new();
        self.out.clear();
        self.out_pos = 0;
        self.handshake
            .write_request(&self.cfg.url, &self.cfg.headers, &mut self.out);
        self.state = ConnState::WsHandshake;
    }

    /// Reads until the socket would block, processing what arrives.
    fn read_ready(&mut self, emit: &mut dyn FnMut(MarketEvent)) -> Result<After, ConnError> {
        self.more_to_read = false;
        let Some(mut transport) = self.transport.take() else {
            return Ok(After::Continue);
        };
        let result = match &mut transport {
            Transport::Plain(tcp) => self.read_plain(tcp, emit),
            Transport::Tls(tcp, tls) => self.read_tls(tcp, tls, emit),
        };
        self.transport = Some(transport);
        result
    }

    fn read_plain(
        &mut self,
        tcp: &mut TcpStream,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<After, ConnError> {
        let mut budget = READ_BUDGET;
        loop {
            if budget == 0 {
                self.more_to_read = true;
                return Ok(After::Continue);
            }
            match tcp.read(self.decoder.read_space()) {
                Ok(0) => return Err(ConnError::PeerClosed { code: None }),
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.decoder.commit(n);
                    let ts = clock::now_ns();
                    if let After::CloseReceived(code) = self.process(ts, emit)? {
                        return Ok(After::CloseReceived(code));
                    }
                }
                Err(e) if would_block(&e) => return Ok(After::Continue),
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn read_tls(
        &mut self,
        tcp: &mut TcpStream,
        tls: &mut ClientConnection,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<After, ConnError> {
        let mut budget = READ_BUDGET;
        loop {
            if budget == 0 {
                self.more_to_read = true;
                return Ok(After::Continue);
            }
            let eof = match tls.read_tls(tcp) {
                Ok(0) => true,
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    false
                }
                Err(e) if would_block(&e) => return Ok(After::Continue),
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            // One timestamp per socket read, shared by every message it completes.
            let ts = clock::now_ns();
            if let Err(e) = tls.process_new_packets() {
                // Let rustls send its alert; the connection is dead either way.
                let _ = tls.write_tls(tcp);
                return Err(e.into());
            }
            if self.state == ConnState::TlsHandshake && !tls.is_handshaking() {
                self.send_upgrade();
            }
            let mut closed = eof;
            loop {
                match tls.reader().read(self.decoder.read_space()) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => {
                        self.decoder.commit(n);
                        if let After::CloseReceived(code) = self.process(ts, emit)? {
                            return Ok(After::CloseReceived(code));
                        }
                    }
                    Err(e) if would_block(&e) => break,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        closed = true;
                        break;
                    }
                    Err(e) if interrupted(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if closed {
                return Err(ConnError::PeerClosed { code: None });
            }
            if tls.wants_write() {
                // Handshake messages, key updates: written by flush() after this read.
                let _ = tls.write_tls(tcp);
            }
        }
    }

    /// Handles newly committed plaintext: the handshake response, then frames.
    fn process(&mut self, ts: u64, emit: &mut dyn FnMut(MarketEvent)) -> Result<After, ConnError> {
        if self.state == ConnState::WsHandshake {
            match self.handshake.parse_response(self.decoder.filled())? {
                None => return Ok(After::Continue),
                Some(n) => {
                    self.decoder.consume(n);
                    self.open(ts, emit);
                }
            }
        }
        if self.state != ConnState::Open {
            return Ok(After::Continue);
        }
        let index = self.index;
        let Self {
            decoder,
            encoder,
            out,
            session,
            stats,
            last_msg_ns,
            ..
        } = self;
        let mut tagged = |mut ev: MarketEvent| {
            ev.conn = index;
            emit(ev);
        };
        while let Some(msg) = decoder.next_message()? {
            match msg {
                Message::Text(p) | Message::Binary(p) => {
                    stats.messages += 1;
                    stats.message_bytes += p.len() as u64;
                    *last_msg_ns = ts;
                    let mut outbox = Outbox::new(encoder, out);
                    session
                        .on_message(p, ts, &mut outbox, &mut tagged)
                        .map_err(ConnError::Session)?;
                }
                Message::Ping(p) => {
                    stats.pings += 1;
                    encoder.pong(p, out)?;
                }
                Message::Pong(_) => {}
                Message::Close(frame) => {
                    let code = frame.map(|f| f.code);
                    // Echo the status (RFC 6455 §5.5.1); no status if none was given.
                    encoder.close(code.map(|c| (c, "")), out);
                    return Ok(After::CloseReceived(code));
                }
            }
        }
        Ok(After::Continue)
    }

    fn open(&mut self, ts: u64, emit: &mut dyn FnMut(MarketEvent)) {
        let now = Instant::now();
        self.state = ConnState::Open;
        self.last_msg_ns = ts;
        self.next_tick = now + TICK;
        self.backoff.note_up(now);
        self.stats.opens += 1;
        let mut outbox = Outbox::new(&mut self.encoder, &mut self.out);
        self.session.on_open(&mut outbox);
        let body = if self.ever_open {
            EventBody::Reconnected {
                attempts: self.attempts,
            }
        } else {
            EventBody::Connected
        };
        self.ever_open = true;
        self.in_outage = false;
        self.attempts = 0;
        emit(self.event(body));
    }

    /// Writes queued bytes until the socket would block.
    fn flush(&mut self) -> Result<(), ConnError> {
        let Some(transport) = self.transport.as_mut() else {
            return Ok(());
        };
        match transport {
            Transport::Plain(tcp) => {
                while let Some(pending) = self.out.get(self.out_pos..).filter(|p| !p.is_empty()) {
                    match tcp.write(pending) {
                        Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                        Ok(n) => self.out_pos += n,
                        Err(e) if would_block(&e) => break,
                        Err(e) if interrupted(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Transport::Tls(tcp, tls) => loop {
                let mut progress = false;
                if !tls.is_handshaking()
                    && let Some(pending) = self.out.get(self.out_pos..).filter(|p| !p.is_empty())
                {
                    let n = tls.writer().write(pending)?;
                    self.out_pos += n;
                    progress |= n > 0;
                }
                let mut blocked = false;
                while tls.wants_write() {
                    match tls.write_tls(tcp) {
                        Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                        Ok(_) => progress = true,
                        Err(e) if would_block(&e) => {
                            blocked = true;
                            break;
                        }
                        Err(e) if interrupted(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                if blocked || !progress {
                    break;
                }
            },
        }
        if self.out_pos >= self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out.len() - self.out_pos > self.cfg.max_write_backlog {
            return Err(ConnError::WriteBacklog(self.cfg.max_write_backlog));
        }
        Ok(())
    }

    /// Drops the connection: `Disconnected` at once (once per outage), then backoff.
    fn fail(
        &mut self,
        registry: &Registry,
        error: ConnError,
        now: Instant,
        emit: &mut dyn FnMut(MarketEvent),
    ) {
        let reason = if self.state == ConnState::Open {
            error.reason()
        } else {
            DisconnectReason::ConnectFailed
        };
        self.close_transport(registry);
        self.decoder.reset();
        self.out.clear();
        self.out_pos = 0;
        self.stats.failures += 1;
        if !self.in_outage {
            self.in_outage = true;
            emit(self.event(EventBody::Disconnected { reason }));
        }
        self.last_failure = Some(ConnFailure {
            url: self.url_text.clone(),
            at_ns: clock::now_ns(),
            reason,
            error,
        });
        self.deadline = now + self.backoff.next_delay(now);
        self.state = ConnState::Waiting;
    }

    /// Closes for good: a close frame (and TLS close_notify) if open, best effort, then
    /// `Disconnected { Shutdown }` unless already reported down.
    pub(crate) fn shutdown(&mut self, registry: &Registry, emit: &mut dyn FnMut(MarketEvent)) {
        if self.state == ConnState::Stopped {
            return;
        }
        if self.state == ConnState::Open {
            self.encoder.close(Some((1000, "shutdown")), &mut self.out);
            let _ = self.flush();
            if let Some(Transport::Tls(tcp, tls)) = self.transport.as_mut() {
                tls.send_close_notify();
                let _ = tls.write_tls(tcp);
            }
        }
        self.close_transport(registry);
        self.out.clear();
        self.out_pos = 0;
        if !self.in_outage {
            self.in_outage = true;
            emit(self.event(EventBody::Disconnected {
                reason: DisconnectReason::Shutdown,
            }));
        }
        self.state = ConnState::Stopped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        assert!(matches!(
            ConnectionConfig::new("https://example.com/"),
            Err(SetupError::NotWebSocket { .. })
        ));
        let e = ConnectionConfig::new("ws://host:x/").unwrap_err();
        assert!(e.to_string().contains("ws://host:x/"), "{e}");
        let mut cfg = ConnectionConfig::new("ws://127.0.0.1:1/").unwrap();
        cfg.headers
            .push(("X-Key".into(), "a\r\nInjected: 1".into()));
        struct Nop;
        impl Session for Nop {
            fn venue(&self) -> Venue {
                Venue::Deribit
            }
            fn on_open(&mut self, _: &mut Outbox<'_>) {}
            fn on_message(
                &mut self,
                _: &[u8],
                _: u64,
                _: &mut Outbox<'_>,
                _: &mut dyn FnMut(MarketEvent),
            ) -> Result<(), DisconnectReason> {
                Ok(())
            }
        }
        let e = Connection::new(0, cfg, Box::new(Nop), Instant::now())
            .err()
            .unwrap();
        assert!(
            matches!(e, SetupError::BadHeader { ref name } if name == "X-Key"),
            "{e}"
        );
    }

    #[test]
    fn reasons() {
        assert_eq!(
            ConnError::Io(io::ErrorKind::ConnectionReset.into()).reason(),
            DisconnectReason::PeerClosed
        );
        assert_eq!(
            ConnError::Protocol(WsError::MaskedServerFrame).reason(),
            DisconnectReason::Protocol
        );
        assert_eq!(
            ConnError::Stale(Duration::from_secs(1)).reason(),
            DisconnectReason::Stale
        );
        assert_eq!(
            ConnError::Session(DisconnectReason::Rejected).reason(),
            DisconnectReason::Rejected
        );
        assert_eq!(
            ConnError::PeerClosed { code: Some(1001) }.to_string(),
            "closed by the server with code 1001"
        );
    }
}
