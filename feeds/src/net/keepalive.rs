//! Warm HTTP/1.1 keep-alive client connections for the exec thread: one non-blocking
//! connection per endpoint (JSON-RPC node, block builder, REST venue), plain TCP with
//! TCP_NODELAY or TLS with rustls (`https://`, optional private CA file), connected and warm
//! before the first request, driven by a mio [`Registry`] the caller owns.
//!
//! Two levels:
//! - [`KeepAlive`]: one connection; the caller registers it under a [`Token`] of its own poll
//!   and calls [`KeepAlive::on_ready`] on readiness and [`KeepAlive::on_time`] at
//!   [`KeepAlive::next_wakeup`] — for an exec tile that already owns a poll;
//! - [`HttpPool`]: a poll plus several connections (token = index), like
//!   [`FeedLoop`](crate::net::FeedLoop) — one thread drives many endpoints with one poll.
//!
//! # Requests and responses
//!
//! The caller pre-builds each request (head and body) and hands the bytes to
//! [`KeepAlive::send`], which copies them into the connection's write buffer and writes at once.
//! HTTP/1.1 answers in request order, so several requests may be in flight on one connection
//! (pipelining, up to [`KeepAliveConfig::max_in_flight`]): each gets a sequence number, and
//! responses are matched to the oldest outstanding request. Pipelining is allowed rather than
//! forcing one connection per request in flight because a racing exec tile sends one copy per
//! endpoint and rarely has two outstanding; when it does, waiting for a second warm connection
//! is worse than queueing behind the first reply. Callers that need independence open several
//! connections to the same URL.
//!
//! Each response is handed over as a [`Response`] borrowing its body from the read buffer
//! (Content-Length or chunked bodies, de-chunked in place; 1xx interim responses skipped;
//! `Connection: close` honoured after the response). The send timestamp is the clock
//! ([`clock::now_ns`]) when the request's last byte was handed to the kernel (for TLS: when
//! rustls had written every record of it), so `recv_ns - sent_ns` is the send→ack time.
//!
//! Requests must expect a body in the response (no `HEAD`, no `Expect: 100-continue` bodies
//! held back, no upgrades): the client frames responses by their headers only.
//!
//! ```no_run
//! use std::time::Duration;
//! use keel_feeds::net::{HttpEvent, HttpPool, KeepAliveConfig};
//!
//! let mut pool = HttpPool::new()?;
//! let node = pool.add(KeepAliveConfig::new("http://127.0.0.1:8545/")?)?;
//! let mut on = |ev: HttpEvent<'_>| {
//!     if let HttpEvent::Response(r) = ev {
//!         println!("#{} {} in {} ns", r.seq, r.status, r.recv_ns - r.sent_ns);
//!     }
//! };
//! pool.warm_up(Duration::from_secs(5), &mut on)?;
//! // Built once at start-up; on the hot path only these bytes are written.
//! let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;
//! let request = format!(
//!     "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
//!      Content-Length: {}\r\n\r\n{body}",
//!     body.len()
//! );
//! let seq = pool.send(node, request.as_bytes(), &mut on)?;
//! let _sent_ns = pool.conn(node).and_then(|c| c.sent_ns(seq));
//! loop {
//!     pool.run_once(Duration::from_millis(1), &mut on)?;
//! #   break;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Failures
//!
//! 1. A request outstanding past [`KeepAliveConfig::request_timeout`] fails with
//!    [`RequestError::Timeout`]; as the reply would still arrive later and break the order, the
//!    connection is dropped too.
//! 2. A reset, an end of stream, a malformed response or one larger than
//!    [`KeepAliveConfig::max_response`] drops the connection: every outstanding request fails
//!    with a [`RequestError`] (the first with the cause, the others with
//!    [`RequestError::ConnectionLost`]), then [`HttpEvent::Down`] carries the full
//!    [`KeepAliveError`].
//!    A request written just as the server closes an idle connection fails the same way:
//!    whether the server saw it is unknown, which a racing caller must treat as such.
//! 3. A dropped connection reconnects in the background after a jittered [`Backoff`] (at once
//!    after an orderly close by a server that had answered), and reports [`HttpEvent::Up`]
//!    when warm again (TCP up and, for TLS, the handshake done).
//!
//! Owns the socket, its two buffers (allocated at start-up, never grown: a request that does
//! not fit is refused, a response that does not fit is an error) and its timers. Never
//! allocates per request or response on `http://` (rustls allocates per TLS record), never
//! blocks except in name resolution at connect time, never panics on what the server sends.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};
use rustls::{ClientConfig, ClientConnection};
use rustls_pki_types::ServerName;

use crate::clock;
use crate::net::backoff::{Backoff, BackoffConfig};
use crate::net::head::{HeadError, ResponseHead, find_head_end};
use crate::net::tls::{TlsError, client_config};
use crate::net::url::{Scheme, Url, UrlError};

/// Largest response head accepted (status line and headers).
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Settings of one keep-alive connection.
#[derive(Clone, Debug)]
pub struct KeepAliveConfig {
    /// `http://` or `https://` URL of the endpoint (its path is the caller's business: requests
    /// are pre-built).
    pub url: Url,
    /// PEM file of extra trusted CA certificates (added to the webpki roots).
    pub ca_file: Option<PathBuf>,
    /// Read buffer size: the largest response (head and body, chunk framing included)
    /// accepted. Default 1 MiB.
    pub max_response: usize,
    /// Write buffer size: the most request bytes queued at once. Default 256 KiB.
    pub write_buffer: usize,
    /// Requests outstanding at once (pipelining depth). Default 16.
    pub max_in_flight: usize,
    /// A request without its complete response this long after it was sent fails. Default 2 s.
    pub request_timeout: Duration,
    /// Bound on one connection attempt (resolution, TCP connect, TLS handshake). Default 5 s.
    pub connect_timeout: Duration,
    /// Reconnection backoff.
    pub backoff: BackoffConfig,
}

impl KeepAliveConfig {
    /// Defaults for `url`, which must be `http://` or `https://`.
    pub fn new(url: &str) -> Result<Self, KeepAliveSetupError> {
        let parsed = Url::parse(url)?;
        if !matches!(parsed.scheme(), Scheme::Http | Scheme::Https) {
            return Err(KeepAliveSetupError::NotHttp {
                url: url.to_owned(),
            });
        }
        Ok(Self {
            url: parsed,
            ca_file: None,
            max_response: 1 << 20,
            write_buffer: 256 << 10,
            max_in_flight: 16,
            request_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(5),
            backoff: BackoffConfig::default(),
        })
    }
}

/// Why a connection could not be set up (configuration errors, at start-up).
#[derive(Debug, thiserror::Error)]
pub enum KeepAliveSetupError {
    /// The URL does not parse.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// Not an HTTP URL.
    #[error("URL {url:?} is not http:// or https://")]
    NotHttp {
        /// The URL.
        url: String,
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
    /// A size setting that cannot work.
    #[error("keep-alive setting {field} = {value} for {url}: {reason}")]
    Setting {
        /// The URL.
        url: String,
        /// The field.
        field: &'static str,
        /// Its value.
        value: usize,
        /// What is allowed.
        reason: &'static str,
    },
    /// The OS refused the poller.
    #[error("cannot create the mio poll: {0}")]
    Poll(io::Error),
}

/// Why a connection went down (the full story; requests get a [`RequestError`]).
#[derive(Debug, thiserror::Error)]
pub enum KeepAliveError {
    /// Name resolution failed or gave nothing.
    #[error("cannot resolve {host}:{port}: {source}")]
    Resolve {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Resolver error.
        source: io::Error,
    },
    /// Every address refused the TCP connect; the last error.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The last address tried.
        addr: SocketAddr,
        /// Its error.
        source: io::Error,
    },
    /// The attempt did not complete in time.
    #[error("connect did not complete within {0:?}")]
    ConnectTimeout(Duration),
    /// TLS failed (certificate, alert, protocol).
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// A socket error (a reset among them).
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    /// The server closed the connection with requests outstanding (or mid-response).
    #[error("closed by the server with {outstanding} request(s) outstanding")]
    PeerClosed {
        /// Requests that got no response.
        outstanding: usize,
    },
    /// The server closed an idle connection or said `Connection: close`.
    #[error("closed by the server (idle or Connection: close)")]
    Closed,
    /// The response head is malformed.
    #[error("malformed response head: {0}")]
    Head(#[from] HeadError),
    /// The response body framing is malformed.
    #[error("malformed response: {0}")]
    Framing(&'static str),
    /// A response larger than the read buffer.
    #[error("response exceeds the {limit}-byte read buffer (max_response)")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Bytes arrived with no request outstanding.
    #[error("{0} unsolicited bytes with no request outstanding")]
    Unsolicited(usize),
    /// The oldest request had no response within the timeout.
    #[error("request #{seq} had no response within {after:?}")]
    Timeout {
        /// Its sequence number.
        seq: u64,
        /// The timeout.
        after: Duration,
    },
    /// Shut down on request.
    #[error("shut down")]
    Shutdown,
}

/// Why one request got no response (small and `Copy`, for the exec tile's counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// No complete response within the request timeout.
    Timeout,
    /// The connection was reset or closed before the response.
    ConnectionLost,
    /// The response was malformed.
    Malformed,
    /// The response exceeded the read buffer.
    TooLarge,
    /// The connection was shut down.
    Shutdown,
}

impl KeepAliveError {
    /// What the request that was being answered gets.
    pub fn request_error(&self) -> RequestError {
        match self {
            KeepAliveError::Timeout { .. } | KeepAliveError::ConnectTimeout(_) => {
                RequestError::Timeout
            }
            KeepAliveError::Head(_)
            | KeepAliveError::Framing(_)
            | KeepAliveError::Unsolicited(_)
            | KeepAliveError::Tls(_) => RequestError::Malformed,
            KeepAliveError::TooLarge { .. } => RequestError::TooLarge,
            KeepAliveError::Shutdown => RequestError::Shutdown,
            _ => RequestError::ConnectionLost,
        }
    }
}

/// Why [`KeepAlive::send`] refused a request (nothing was written).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The connection is not up (connecting, backing off or stopped).
    #[error("connection not ready")]
    NotReady,
    /// [`KeepAliveConfig::max_in_flight`] requests are outstanding.
    #[error("{0} requests already in flight")]
    InFlightFull(usize),
    /// The request does not fit in what is left of the write buffer.
    #[error("request of {len} bytes does not fit the write buffer ({free} bytes free)")]
    NoRoom {
        /// The request's length.
        len: usize,
        /// Free bytes.
        free: usize,
    },
    /// An empty request.
    #[error("empty request")]
    Empty,
    /// Writing failed; the connection is down (see [`HttpEvent::Down`]).
    #[error("the connection failed while writing")]
    Failed,
}

/// A complete response, borrowed from the connection's read buffer until the callback returns.
#[derive(Clone, Copy, Debug)]
pub struct Response<'a> {
    /// The connection (its token).
    pub conn: usize,
    /// The request's sequence number (from [`KeepAlive::send`]).
    pub seq: u64,
    /// HTTP status code.
    pub status: u16,
    /// The body (de-chunked).
    pub body: &'a [u8],
    /// When the request's last byte was written, ns ([`clock::now_ns`]).
    pub sent_ns: u64,
    /// When the read that completed the response returned, ns.
    pub recv_ns: u64,
}

/// What a connection reports.
#[derive(Debug)]
pub enum HttpEvent<'a> {
    /// Connected and warm (TLS handshake done): requests may be sent.
    Up {
        /// The connection.
        conn: usize,
        /// Successful opens so far (1 = first time).
        opens: u64,
    },
    /// A response, in request order.
    Response(Response<'a>),
    /// A request that will never get its response.
    Failed {
        /// The connection.
        conn: usize,
        /// Its sequence number.
        seq: u64,
        /// When it was written (0 if it never was).
        sent_ns: u64,
        /// Why.
        error: RequestError,
    },
    /// The connection went down (after its outstanding requests' `Failed` events), or its
    /// first attempt failed; once per outage (see [`KeepAlive::last_error`] and
    /// [`KeepAliveStats::failures`] for later attempts). It reconnects by itself unless stopped.
    Down {
        /// The connection.
        conn: usize,
        /// Why.
        error: &'a KeepAliveError,
    },
}

/// Where a connection is in its life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepAliveState {
    /// Waiting for the first attempt or for the backoff to expire.
    Waiting,
    /// TCP connect in progress.
    Connecting,
    /// TLS handshake in progress.
    TlsHandshake,
    /// Warm: requests may be sent.
    Ready,
    /// Shut down; never reconnects.
    Stopped,
}

/// Counters of one connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeepAliveStats {
    /// Requests accepted by `send`.
    pub requests: u64,
    /// Responses delivered.
    pub responses: u64,
    /// Requests failed (timeout, connection lost, malformed, too large).
    pub failed: u64,
    /// Successful opens (TCP connections established and warm).
    pub opens: u64,
    /// Connection attempts.
    pub attempts: u64,
    /// Failures of attempts or of open connections (orderly closes included).
    pub failures: u64,
}

/// One outstanding request.
#[derive(Clone, Copy, Debug, Default)]
struct InFlight {
    seq: u64,
    /// Stream offset just past its last byte (plaintext bytes queued since the connection
    /// opened).
    end: u64,
    sent_ns: u64,
    /// Deadline (Instant is not Default; an offset from `epoch`).
    deadline_ns: u64,
}

/// A fixed-capacity FIFO of outstanding requests.
#[derive(Debug)]
struct InFlightRing {
    slots: Vec<InFlight>,
    head: usize,
    len: usize,
}

impl InFlightRing {
    fn new(capacity: usize) -> Self {
        Self {
            slots: vec![InFlight::default(); capacity],
            head: 0,
            len: 0,
        }
    }
    fn is_full(&self) -> bool {
        self.len == self.slots.len()
    }
    fn push(&mut self, r: InFlight) {
        let i = (self.head + self.len) % self.slots.len();
        self.slots[i] = r;
        self.len += 1;
    }
    fn front(&self) -> Option<&InFlight> {
        (self.len > 0).then(|| &self.slots[self.head])
    }
    fn pop(&mut self) -> Option<InFlight> {
        let r = self.front().copied()?;
        self.head = (self.head + 1) % self.slots.len();
        self.len -= 1;
        Some(r)
    }
    fn iter_mut(&mut self) -> impl Iterator<Item = &mut InFlight> {
        let (head, len, cap) = (self.head, self.len, self.slots.len());
        let (a, b) = self.slots.split_at_mut(head);
        b.iter_mut().chain(a.iter_mut()).take(len.min(cap))
    }
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

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

/// How a parsed response's body is framed.
#[derive(Clone, Copy, Debug)]
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

/// A response framed at the start of a buffer by [`frame_response`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FramedResponse {
    /// Status code.
    pub status: u16,
    /// The body's (start, end) in the buffer, after de-chunking.
    pub body: (usize, usize),
    /// Bytes of the buffer the response occupied (the next response starts there).
    pub consumed: usize,
    /// The server will close after it (`Connection: close`, or a body framed by the close).
    pub close: bool,
    /// A 1xx interim response (to skip).
    pub interim: bool,
}

/// One keep-alive HTTP/1.1 connection (see the module docs).
pub struct KeepAlive {
    token: Token,
    cfg: KeepAliveConfig,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    state: KeepAliveState,
    transport: Option<Transport>,
    addrs: Vec<SocketAddr>,
    next_addr: usize,
    /// Read buffer: `inbuf[rpos..rend]` holds unparsed bytes.
    inbuf: Vec<u8>,
    rpos: usize,
    rend: usize,
    /// Write buffer: `out[wpos..]` not yet handed to the transport.
    out: Vec<u8>,
    wpos: usize,
    /// Plaintext bytes queued / handed to the kernel since the connection opened.
    queued_total: u64,
    written_total: u64,
    in_flight: InFlightRing,
    next_seq: u64,
    backoff: Backoff,
    deadline: Instant,
    epoch: Instant,
    served_since_up: bool,
    up_at: Instant,
    /// `Down` was reported and no `Up` since.
    in_outage: bool,
    /// The server announced `Connection: close` or ended the stream after a response.
    closing: bool,
    last_error: Option<KeepAliveError>,
    stats: KeepAliveStats,
}

impl KeepAlive {
    /// A connection for `cfg`, reporting as `token` (register nothing yet: it connects on the
    /// first [`on_time`](Self::on_time)). Builds the TLS configuration now, so a bad CA file
    /// fails here, naming the file; allocates both buffers now.
    pub fn new(cfg: KeepAliveConfig, token: Token) -> Result<Self, KeepAliveSetupError> {
        let url = cfg.url.to_string();
        let check = |field, value: usize, min: usize, reason| {
            if value < min {
                Err(KeepAliveSetupError::Setting {
                    url: url.clone(),
                    field,
                    value,
                    reason,
                })
            } else {
                Ok(())
            }
        };
        check("max_response", cfg.max_response, 64, "at least 64 bytes")?;
        check("write_buffer", cfg.write_buffer, 64, "at least 64 bytes")?;
        check("max_in_flight", cfg.max_in_flight, 1, "at least 1")?;
        let tls = if cfg.url.scheme().is_tls() {
            let config = client_config(cfg.ca_file.as_deref())?;
            let name = ServerName::try_from(cfg.url.host().to_owned()).map_err(|_| {
                KeepAliveSetupError::ServerName {
                    host: cfg.url.host().to_owned(),
                }
            })?;
            Some((config, name))
        } else {
            None
        };
        let now = Instant::now();
        Ok(Self {
            token,
            tls,
            state: KeepAliveState::Waiting,
            transport: None,
            addrs: Vec::with_capacity(4),
            next_addr: 0,
            inbuf: vec![0; cfg.max_response],
            rpos: 0,
            rend: 0,
            out: Vec::with_capacity(cfg.write_buffer),
            wpos: 0,
            queued_total: 0,
            written_total: 0,
            in_flight: InFlightRing::new(cfg.max_in_flight),
            next_seq: 1,
            backoff: Backoff::new(cfg.backoff),
            deadline: now,
            epoch: now,
            served_since_up: false,
            up_at: now,
            in_outage: false,
            closing: false,
            last_error: None,
            stats: KeepAliveStats::default(),
            cfg,
        })
    }

    /// The endpoint's URL.
    pub fn url(&self) -> &Url {
        &self.cfg.url
    }

    /// Where the connection is.
    pub fn state(&self) -> KeepAliveState {
        self.state
    }

    /// True when requests may be sent.
    pub fn is_ready(&self) -> bool {
        self.state == KeepAliveState::Ready
    }

    /// Requests outstanding.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len
    }

    /// When request `seq`'s last byte was written (ns, [`clock::now_ns`]): `Some(0)` while
    /// part of it waits for writable readiness, `None` once it is no longer outstanding. Right
    /// after [`send`](Self::send) it is the send timestamp for the race table.
    pub fn sent_ns(&self, seq: u64) -> Option<u64> {
        let ring = &self.in_flight;
        (0..ring.len)
            .map(|i| &ring.slots[(ring.head + i) % ring.slots.len()])
            .find(|r| r.seq == seq)
            .map(|r| r.sent_ns)
    }

    /// Counters.
    pub fn stats(&self) -> KeepAliveStats {
        self.stats
    }

    /// The last reason the connection went down.
    pub fn last_error(&self) -> Option<&KeepAliveError> {
        self.last_error.as_ref()
    }

    fn conn(&self) -> usize {
        self.token.0
    }

    fn ns_since_epoch(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// When [`on_time`](Self::on_time) is next needed: the attempt start or deadline, or the
    /// oldest request's timeout.
    pub fn next_wakeup(&self) -> Option<Instant> {
        match self.state {
            KeepAliveState::Stopped => None,
            KeepAliveState::Ready => self
                .in_flight
                .front()
                .map(|r| self.epoch + Duration::from_nanos(r.deadline_ns)),
            _ => Some(self.deadline),
        }
    }

    /// Writes the pre-built request `request` (complete head and body) and returns its
    /// sequence number. The bytes are copied into the preallocated write buffer and written at
    /// once; what the socket does not take now goes out on writable readiness. The request's
    /// send time ([`Response::sent_ns`]) is stamped when its last byte is written.
    pub fn send(
        &mut self,
        registry: &Registry,
        request: &[u8],
        on: &mut dyn FnMut(HttpEvent<'_>),
    ) -> Result<u64, SendError> {
        if self.state != KeepAliveState::Ready || self.closing {
            return Err(SendError::NotReady);
        }
        if request.is_empty() {
            return Err(SendError::Empty);
        }
        if self.in_flight.is_full() {
            return Err(SendError::InFlightFull(self.in_flight.len));
        }
        // Reclaim what is already written before judging the room left.
        if self.wpos > 0 && self.wpos == self.out.len() {
            self.out.clear();
            self.wpos = 0;
        }
        let free = self.out.capacity() - self.out.len();
        if request.len() > free {
            return Err(SendError::NoRoom {
                len: request.len(),
                free,
            });
        }
        self.out.extend_from_slice(request);
        self.queued_total += request.len() as u64;
        let seq = self.next_seq;
        self.next_seq += 1;
        let deadline = Instant::now() + self.cfg.request_timeout;
        self.in_flight.push(InFlight {
            seq,
            end: self.queued_total,
            sent_ns: 0,
            deadline_ns: self.ns_since_epoch(deadline),
        });
        self.stats.requests += 1;
        if let Err(e) = self.flush() {
            self.fail(registry, e, Instant::now(), on);
            return Err(SendError::Failed);
        }
        Ok(seq)
    }

    /// Socket readiness for this connection's token: connect completion, TLS, reads, writes.
    pub fn on_ready(&mut self, registry: &Registry, on: &mut dyn FnMut(HttpEvent<'_>)) {
        if matches!(
            self.state,
            KeepAliveState::Waiting | KeepAliveState::Stopped
        ) {
            return;
        }
        if let Err(e) = self.pump(registry, on) {
            self.fail(registry, e, Instant::now(), on);
        }
    }

    /// Timers: attempt start and deadline, request timeouts.
    pub fn on_time(
        &mut self,
        registry: &Registry,
        now: Instant,
        on: &mut dyn FnMut(HttpEvent<'_>),
    ) {
        let result = match self.state {
            KeepAliveState::Stopped => Ok(()),
            KeepAliveState::Waiting if now >= self.deadline => self.start_attempt(registry, now),
            KeepAliveState::Waiting => Ok(()),
            KeepAliveState::Connecting | KeepAliveState::TlsHandshake => {
                if now >= self.deadline {
                    Err(KeepAliveError::ConnectTimeout(self.cfg.connect_timeout))
                } else {
                    Ok(())
                }
            }
            KeepAliveState::Ready => match self.in_flight.front() {
                Some(r) if self.ns_since_epoch(now) >= r.deadline_ns => {
                    Err(KeepAliveError::Timeout {
                        seq: r.seq,
                        after: self.cfg.request_timeout,
                    })
                }
                _ => Ok(()),
            },
        };
        if let Err(e) = result {
            self.fail(registry, e, now, on);
        }
    }

    /// Closes for good: outstanding requests fail with [`RequestError::Shutdown`].
    pub fn shutdown(&mut self, registry: &Registry, on: &mut dyn FnMut(HttpEvent<'_>)) {
        if self.state == KeepAliveState::Stopped {
            return;
        }
        if let Some(Transport::Tls(tcp, tls)) = self.transport.as_mut() {
            tls.send_close_notify();
            let _ = tls.write_tls(tcp);
        }
        self.fail(registry, KeepAliveError::Shutdown, Instant::now(), on);
        self.state = KeepAliveState::Stopped;
    }

    fn start_attempt(&mut self, registry: &Registry, now: Instant) -> Result<(), KeepAliveError> {
        self.stats.attempts += 1;
        self.deadline = now + self.cfg.connect_timeout;
        self.state = KeepAliveState::Connecting;
        let (host, port) = (self.cfg.url.host(), self.cfg.url.port());
        let resolved =
            (host, port)
                .to_socket_addrs()
                .map_err(|source| KeepAliveError::Resolve {
                    host: host.to_owned(),
                    port,
                    source,
                })?;
        self.addrs.clear();
        self.addrs.extend(resolved);
        self.next_addr = 0;
        if self.addrs.is_empty() {
            return Err(KeepAliveError::Resolve {
                host: host.to_owned(),
                port,
                source: io::Error::new(io::ErrorKind::NotFound, "no address"),
            });
        }
        self.connect_next(registry, None)
    }

    fn connect_next(
        &mut self,
        registry: &Registry,
        mut prev: Option<KeepAliveError>,
    ) -> Result<(), KeepAliveError> {
        self.close_transport(registry);
        while let Some(&addr) = self.addrs.get(self.next_addr) {
            self.next_addr += 1;
            let connected = TcpStream::connect(addr).and_then(|mut tcp| {
                tcp.set_nodelay(true)?;
                registry.register(
                    &mut tcp,
                    self.token,
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                Ok(tcp)
            });
            match connected {
                Ok(tcp) => {
                    self.transport = Some(Transport::Plain(tcp));
                    self.state = KeepAliveState::Connecting;
                    return Ok(());
                }
                Err(source) => prev = Some(KeepAliveError::Connect { addr, source }),
            }
        }
        Err(prev.unwrap_or(KeepAliveError::Resolve {
            host: self.cfg.url.host().to_owned(),
            port: self.cfg.url.port(),
            source: io::Error::new(io::ErrorKind::NotFound, "no address"),
        }))
    }

    fn close_transport(&mut self, registry: &Registry) {
        if let Some(mut t) = self.transport.take() {
            let _ = registry.deregister(t.tcp());
        }
    }

    fn pump(
        &mut self,
        registry: &Registry,
        on: &mut dyn FnMut(HttpEvent<'_>),
    ) -> Result<(), KeepAliveError> {
        if self.state == KeepAliveState::Connecting && !self.check_connected(registry, on)? {
            return Ok(());
        }
        self.read_ready(on)?;
        self.flush()?;
        if self.closing && self.in_flight.len == 0 {
            return Err(KeepAliveError::Closed);
        }
        Ok(())
    }

    /// Completes a non-blocking connect (mio's recipe: `take_error`, then `peer_addr`).
    fn check_connected(
        &mut self,
        registry: &Registry,
        on: &mut dyn FnMut(HttpEvent<'_>),
    ) -> Result<bool, KeepAliveError> {
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
                Some(addr) => KeepAliveError::Connect { addr, source },
                None => KeepAliveError::Io(source),
            };
            self.connect_next(registry, Some(err))?;
            return Ok(false);
        }
        let Some(Transport::Plain(tcp)) = self.transport.take() else {
            return Ok(false);
        };
        match &self.tls {
            Some((config, name)) => match ClientConnection::new(Arc::clone(config), name.clone()) {
                Ok(tls) => {
                    self.transport = Some(Transport::Tls(tcp, Box::new(tls)));
                    self.state = KeepAliveState::TlsHandshake;
                    // The ClientHello goes out with the flush that follows.
                }
                Err(e) => {
                    self.transport = Some(Transport::Plain(tcp));
                    return Err(e.into());
                }
            },
            None => {
                self.transport = Some(Transport::Plain(tcp));
                self.up(on);
            }
        }
        Ok(true)
    }

    fn up(&mut self, on: &mut dyn FnMut(HttpEvent<'_>)) {
        self.state = KeepAliveState::Ready;
        self.up_at = Instant::now();
        self.backoff.note_up(self.up_at);
        self.stats.opens += 1;
        self.served_since_up = false;
        self.in_outage = false;
        on(HttpEvent::Up {
            conn: self.conn(),
            opens: self.stats.opens,
        });
    }

    /// Reads until the socket would block, delivering complete responses.
    fn read_ready(&mut self, on: &mut dyn FnMut(HttpEvent<'_>)) -> Result<(), KeepAliveError> {
        let Some(mut transport) = self.transport.take() else {
            return Ok(());
        };
        let result = match &mut transport {
            Transport::Plain(tcp) => self.read_plain(tcp, on),
            Transport::Tls(tcp, tls) => self.read_tls(tcp, tls, on),
        };
        self.transport = Some(transport);
        result
    }

    /// Room to read into, compacting the buffer first if its tail is full.
    fn read_space(&mut self) -> Result<&mut [u8], KeepAliveError> {
        if self.rend == self.inbuf.len() && self.rpos > 0 {
            self.inbuf.copy_within(self.rpos..self.rend, 0);
            self.rend -= self.rpos;
            self.rpos = 0;
        }
        if self.rend == self.inbuf.len() {
            return Err(KeepAliveError::TooLarge {
                limit: self.inbuf.len(),
            });
        }
        Ok(&mut self.inbuf[self.rend..])
    }

    fn read_plain(
        &mut self,
        tcp: &mut TcpStream,
        on: &mut dyn FnMut(HttpEvent<'_>),
    ) -> Result<(), KeepAliveError> {
        loop {
            let space = self.read_space()?;
            match tcp.read(space) {
                Ok(0) => return self.eof(on),
                Ok(n) => {
                    self.rend += n;
                    self.process(clock::now_ns(), false, on)?;
                }
                Err(e) if would_block(&e) => return Ok(()),
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn read_tls(
        &mut self,
        tcp: &mut TcpStream,
        tls: &mut ClientConnection,
        on: &mut dyn FnMut(HttpEvent<'_>),
    ) -> Result<(), KeepAliveError> {
        loop {
            let eof = match tls.read_tls(tcp) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) if would_block(&e) => return Ok(()),
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            let ts = clock::now_ns();
            if let Err(e) = tls.process_new_packets() {
                let _ = tls.write_tls(tcp);
                return Err(e.into());
            }
            if self.state == KeepAliveState::TlsHandshake && !tls.is_handshaking() {
                self.up(on);
            }
            let mut closed = eof;
            loop {
                let space = self.read_space()?;
                match tls.reader().read(space) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => {
                        self.rend += n;
                        self.process(ts, false, on)?;
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
                return self.eof(on);
            }
            if tls.wants_write() {
                let _ = tls.write_tls(tcp);
            }
        }
    }

    /// End of stream: completes a body framed by the close, then reports the close.
    fn eof(&mut self, on: &mut dyn FnMut(HttpEvent<'_>)) -> Result<(), KeepAliveError> {
        self.process(clock::now_ns(), true, on)?;
        if self.in_flight.len > 0 || self.rend > self.rpos {
            return Err(KeepAliveError::PeerClosed {
                outstanding: self.in_flight.len,
            });
        }
        Err(KeepAliveError::Closed)
    }

    /// Delivers every complete response in the read buffer.
    fn process(
        &mut self,
        recv_ns: u64,
        at_eof: bool,
        on: &mut dyn FnMut(HttpEvent<'_>),
    ) -> Result<(), KeepAliveError> {
        while self.rend > self.rpos {
            if self.in_flight.len == 0 {
                return Err(KeepAliveError::Unsolicited(self.rend - self.rpos));
            }
            let Some(p) = frame_response(&mut self.inbuf[self.rpos..self.rend], at_eof)? else {
                if self.rpos == 0 && self.rend == self.inbuf.len() {
                    return Err(KeepAliveError::TooLarge {
                        limit: self.inbuf.len(),
                    });
                }
                return Ok(());
            };
            let base = self.rpos;
            self.rpos += p.consumed;
            if self.rpos == self.rend {
                self.rpos = 0;
                self.rend = 0;
            }
            if p.interim {
                continue;
            }
            let Some(req) = self.in_flight.pop() else {
                return Err(KeepAliveError::Unsolicited(p.consumed));
            };
            self.stats.responses += 1;
            self.served_since_up = true;
            // A response can complete before the request's last byte was counted as written
            // (the server answered early): stamp it now.
            let sent_ns = if req.sent_ns == 0 {
                recv_ns
            } else {
                req.sent_ns
            };
            on(HttpEvent::Response(Response {
                conn: self.conn(),
                seq: req.seq,
                status: p.status,
                body: &self.inbuf[base + p.body.0..base + p.body.1],
                sent_ns,
                recv_ns,
            }));
            if p.close {
                self.closing = true;
                if self.rend > self.rpos {
                    return Err(KeepAliveError::Unsolicited(self.rend - self.rpos));
                }
                return Ok(());
            }
        }
        Ok(())
    }

    /// Writes queued bytes until the socket would block; stamps requests fully written.
    fn flush(&mut self) -> Result<(), KeepAliveError> {
        let Some(transport) = self.transport.as_mut() else {
            return Ok(());
        };
        match transport {
            Transport::Plain(tcp) => {
                while let Some(pending) = self.out.get(self.wpos..).filter(|p| !p.is_empty()) {
                    match tcp.write(pending) {
                        Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                        Ok(n) => {
                            self.wpos += n;
                            self.written_total += n as u64;
                        }
                        Err(e) if would_block(&e) => break,
                        Err(e) if interrupted(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Transport::Tls(tcp, tls) => {
                loop {
                    let mut progress = false;
                    if !tls.is_handshaking()
                        && let Some(pending) = self.out.get(self.wpos..).filter(|p| !p.is_empty())
                    {
                        let n = tls.writer().write(pending)?;
                        self.wpos += n;
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
                }
                // Plaintext handed to rustls is on the wire once rustls has nothing left.
                if !tls.wants_write() {
                    self.written_total = self.queued_total - (self.out.len() - self.wpos) as u64;
                }
            }
        }
        if self.wpos == self.out.len() {
            self.out.clear();
            self.wpos = 0;
        }
        let (written, now_ns) = (self.written_total, clock::now_ns());
        for r in self.in_flight.iter_mut() {
            if r.sent_ns == 0 && r.end <= written {
                r.sent_ns = now_ns;
            }
        }
        Ok(())
    }

    /// Drops the connection: outstanding requests fail, `Down`, then backoff (or an
    /// immediate reconnection after an orderly close of a connection that served).
    fn fail(
        &mut self,
        registry: &Registry,
        error: KeepAliveError,
        now: Instant,
        on: &mut dyn FnMut(HttpEvent<'_>),
    ) {
        self.close_transport(registry);
        let mut first = error.request_error();
        // The cause belongs to the oldest request; the others simply lost their connection.
        while let Some(r) = self.in_flight.pop() {
            self.stats.failed += 1;
            on(HttpEvent::Failed {
                conn: self.conn(),
                seq: r.seq,
                sent_ns: r.sent_ns,
                error: first,
            });
            if first != RequestError::Shutdown {
                first = RequestError::ConnectionLost;
            }
        }
        self.rpos = 0;
        self.rend = 0;
        self.out.clear();
        self.wpos = 0;
        self.queued_total = 0;
        self.written_total = 0;
        self.closing = false;
        self.stats.failures += 1;
        let was_up = self.state == KeepAliveState::Ready;
        // An orderly close of a connection that served (or idled a while) is the server's
        // keep-alive policy, not a failure: reconnect at once. A server that closes at once
        // without serving gets the backoff, so a broken one is never hammered.
        let orderly = matches!(error, KeepAliveError::Closed)
            && was_up
            && (self.served_since_up
                || now.saturating_duration_since(self.up_at) >= Duration::from_secs(1));
        self.deadline = if orderly {
            self.backoff.reset();
            now
        } else {
            now + self.backoff.next_delay(now)
        };
        self.state = KeepAliveState::Waiting;
        // Once per outage: failed reconnection attempts are counted, not reported again.
        if !self.in_outage {
            self.in_outage = true;
            on(HttpEvent::Down {
                conn: self.conn(),
                error: &error,
            });
        }
        self.last_error = Some(error);
    }
}

/// Frames one response at the start of `buf` (the connection's parser, public for fuzzing
/// and for callers that frame responses themselves). `Ok(None)`: incomplete; `at_eof`: no
/// more bytes will come. Chunked bodies are de-chunked in place (the data moves toward the
/// start of the buffer). Never allocates except to describe an error.
pub fn frame_response(
    buf: &mut [u8],
    at_eof: bool,
) -> Result<Option<FramedResponse>, KeepAliveError> {
    let Some(head_end) = find_head_end(&buf[..buf.len().min(MAX_RESPONSE_HEAD)]) else {
        if buf.len() >= MAX_RESPONSE_HEAD {
            return Err(KeepAliveError::Framing("response head over 16 KiB"));
        }
        if at_eof && !buf.is_empty() {
            // A status line that never ends: malformed if it is already wrong, else truncated.
            ResponseHead::parse(buf)?;
            return Err(KeepAliveError::Framing("truncated response head"));
        }
        return Ok(None);
    };
    let head = ResponseHead::parse(&buf[..head_end])?;
    let status = head.status;
    let close = head.has_token("Connection", "close");
    let interim = (100..200).contains(&status) && status != 101;
    let framing = if interim || status == 204 || status == 304 {
        Framing::None
    } else if let Some(te) = head.header("Transfer-Encoding") {
        if head.has_token("Transfer-Encoding", "chunked") {
            Framing::Chunked
        } else {
            let _ = te;
            return Err(KeepAliveError::Framing(
                "unsupported Transfer-Encoding (only chunked)",
            ));
        }
    } else if let Some(cl) = head.header("Content-Length") {
        Framing::Length(parse_decimal(cl).ok_or(KeepAliveError::Framing("bad Content-Length"))?)
    } else {
        Framing::UntilClose
    };
    let body = &mut buf[head_end..];
    match framing {
        Framing::None => Ok(Some(FramedResponse {
            status,
            body: (head_end, head_end),
            consumed: head_end,
            close,
            interim,
        })),
        Framing::Length(n) => {
            if n > body.len() {
                if head_end.saturating_add(n) > usize::MAX / 2 {
                    return Err(KeepAliveError::Framing("absurd Content-Length"));
                }
                if at_eof {
                    return Err(KeepAliveError::Framing("body shorter than Content-Length"));
                }
                return Ok(None);
            }
            Ok(Some(FramedResponse {
                status,
                body: (head_end, head_end + n),
                consumed: head_end + n,
                close,
                interim: false,
            }))
        }
        Framing::UntilClose => {
            if !at_eof {
                return Ok(None);
            }
            Ok(Some(FramedResponse {
                status,
                body: (head_end, head_end + body.len()),
                consumed: head_end + body.len(),
                close: true,
                interim: false,
            }))
        }
        Framing::Chunked => match dechunk(body)? {
            None if at_eof => Err(KeepAliveError::Framing("truncated chunked body")),
            None => Ok(None),
            Some((len, used)) => Ok(Some(FramedResponse {
                status,
                body: (head_end, head_end + len),
                consumed: head_end + used,
                close,
                interim: false,
            })),
        },
    }
}

fn parse_decimal(v: &[u8]) -> Option<usize> {
    if v.is_empty() || v.len() > 15 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0usize, |a, d| a * 10 + usize::from(d - b'0')))
}

/// Checks that `body` holds a complete chunked body (RFC 9112 §7.1, trailers skipped) and, if
/// so, moves the chunk data to the start: `(data length, bytes used)`. Leaves `body` untouched
/// when incomplete.
fn dechunk(body: &mut [u8]) -> Result<Option<(usize, usize)>, KeepAliveError> {
    // First pass: validate framing and find the end, without moving anything.
    let mut pos = 0;
    loop {
        let Some(line_len) = find_crlf(&body[pos..]) else {
            return if body.len() - pos > 1024 {
                Err(KeepAliveError::Framing("chunk size line too long"))
            } else {
                Ok(None)
            };
        };
        let size = chunk_size(&body[pos..pos + line_len])?;
        pos += line_len + 2;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let Some(l) = find_crlf(&body[pos..]) else {
                    return Ok(None);
                };
                pos += l + 2;
                if l == 0 {
                    break;
                }
            }
            break;
        }
        if body.len() - pos < size.saturating_add(2) {
            return Ok(None);
        }
        if &body[pos + size..pos + size + 2] != b"\r\n" {
            return Err(KeepAliveError::Framing("chunk data not followed by CRLF"));
        }
        pos += size + 2;
    }
    let used = pos;
    // Second pass: compact the data.
    let (mut rd, mut wr) = (0, 0);
    loop {
        let line_len = find_crlf(&body[rd..]).unwrap_or(0);
        let size = chunk_size(&body[rd..rd + line_len]).unwrap_or(0);
        rd += line_len + 2;
        if size == 0 {
            break;
        }
        body.copy_within(rd..rd + size, wr);
        wr += size;
        rd += size + 2;
    }
    Ok(Some((wr, used)))
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// `1a;ext=v` → 26.
fn chunk_size(line: &[u8]) -> Result<usize, KeepAliveError> {
    let hex = line.split(|&b| b == b';').next().unwrap_or(line);
    let hex = hex.strip_suffix(b" ").unwrap_or(hex);
    if hex.is_empty() || hex.len() > 12 {
        return Err(KeepAliveError::Framing("bad chunk size"));
    }
    let mut n = 0usize;
    for &d in hex {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return Err(KeepAliveError::Framing("bad chunk size")),
        };
        n = n * 16 + usize::from(v);
    }
    Ok(n)
}

/// A poll and several keep-alive connections (token = index), driven by one thread: the
/// exec tile's equivalent of [`FeedLoop`](crate::net::FeedLoop).
pub struct HttpPool {
    poll: Poll,
    events: Events,
    conns: Vec<KeepAlive>,
}

impl HttpPool {
    /// A pool with no connection.
    pub fn new() -> Result<Self, KeepAliveSetupError> {
        Ok(Self {
            poll: Poll::new().map_err(KeepAliveSetupError::Poll)?,
            events: Events::with_capacity(256),
            conns: Vec::new(),
        })
    }

    /// Adds a connection (it connects on the next turn) and returns its index.
    pub fn add(&mut self, cfg: KeepAliveConfig) -> Result<usize, KeepAliveSetupError> {
        let index = self.conns.len();
        self.conns.push(KeepAlive::new(cfg, Token(index))?);
        Ok(index)
    }

    /// Number of connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// True with no connection.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Connection `conn`.
    pub fn conn(&self, conn: usize) -> Option<&KeepAlive> {
        self.conns.get(conn)
    }

    /// Sends a pre-built request on connection `conn` (see [`KeepAlive::send`]).
    pub fn send<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        conn: usize,
        request: &[u8],
        on: &mut F,
    ) -> Result<u64, SendError> {
        let registry = self.poll.registry();
        match self.conns.get_mut(conn) {
            Some(c) => c.send(registry, request, on),
            None => Err(SendError::NotReady),
        }
    }

    /// Runs timers, waits for readiness up to `timeout` (less if a timer is due sooner),
    /// serves it, and runs timers again. Errors only if the poller itself fails.
    pub fn run_once<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        timeout: Duration,
        on: &mut F,
    ) -> io::Result<()> {
        let on: &mut dyn FnMut(HttpEvent<'_>) = on;
        let now = Instant::now();
        self.run_timers(now, on);
        let wait = self
            .conns
            .iter()
            .filter_map(KeepAlive::next_wakeup)
            .min()
            .map_or(timeout, |t| t.saturating_duration_since(now).min(timeout));
        match self.poll.poll(&mut self.events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let registry = self.poll.registry();
        for event in &self.events {
            if let Some(conn) = self.conns.get_mut(event.token().0) {
                conn.on_ready(registry, on);
            }
        }
        self.run_timers(Instant::now(), on);
        Ok(())
    }

    fn run_timers(&mut self, now: Instant, on: &mut dyn FnMut(HttpEvent<'_>)) {
        let registry = self.poll.registry();
        for conn in &mut self.conns {
            if conn.next_wakeup().is_some_and(|t| t <= now) {
                conn.on_time(registry, now, on);
            }
        }
    }

    /// Runs until every connection is warm or `timeout` passes; true if all are.
    pub fn warm_up<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        timeout: Duration,
        on: &mut F,
    ) -> io::Result<bool> {
        let end = Instant::now() + timeout;
        loop {
            if self.conns.iter().all(KeepAlive::is_ready) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= end {
                return Ok(false);
            }
            self.run_once((end - now).min(Duration::from_millis(50)), on)?;
        }
    }

    /// Closes every connection for good.
    pub fn shutdown<F: FnMut(HttpEvent<'_>)>(&mut self, on: &mut F) {
        let on: &mut dyn FnMut(HttpEvent<'_>) = on;
        let registry = self.poll.registry();
        for conn in &mut self.conns {
            conn.shutdown(registry, on);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Outcome = Option<(u16, Vec<u8>, usize, bool)>;

    fn parse(raw: &[u8], eof: bool) -> Result<Outcome, KeepAliveError> {
        let mut buf = raw.to_vec();
        Ok(frame_response(&mut buf, eof)?.map(|p| {
            (
                p.status,
                buf[p.body.0..p.body.1].to_vec(),
                p.consumed,
                p.close,
            )
        }))
    }

    #[test]
    fn content_length_chunked_and_close_framing() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1";
        assert_eq!(
            parse(r, false).unwrap(),
            Some((200, b"hello".to_vec(), r.len() - 8, false))
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", false).unwrap(),
            None
        );
        let c = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\n";
        let (status, body, used, _) = parse(c, false).unwrap().unwrap();
        assert_eq!((status, used), (200, c.len()));
        assert_eq!(body, b"helloabcdefghijklmnopqrstuvwxyz");
        for cut in 40..c.len() {
            assert!(parse(&c[..cut], false).unwrap().is_none(), "cut {cut}");
        }
        assert!(parse(&c[..c.len() - 3], true).is_err());
        let closed = b"HTTP/1.0 200 OK\r\n\r\nuntil the end";
        assert_eq!(parse(closed, false).unwrap(), None);
        assert_eq!(
            parse(closed, true).unwrap(),
            Some((200, b"until the end".to_vec(), closed.len(), true))
        );
        let cl = b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(parse(cl, false).unwrap().unwrap().3);
    }

    #[test]
    fn malformed_responses_are_typed_errors() {
        for (raw, eof) in [
            (&b"HTTP/1.1 abc OK\r\n\r\n"[..], false),
            (b"garbage\r\n\r\n", false),
            (b"garbage", true),
            (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
                false,
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", true),
        ] {
            let e = parse(raw, eof).unwrap_err();
            assert_eq!(e.request_error(), RequestError::Malformed, "{raw:?}: {e}");
        }
    }

    #[test]
    fn in_flight_ring_is_fifo_and_bounded() {
        let mut r = InFlightRing::new(3);
        for round in 0..5u64 {
            for i in 0..3 {
                r.push(InFlight {
                    seq: round * 10 + i,
                    ..Default::default()
                });
            }
            assert!(r.is_full());
            assert_eq!(r.iter_mut().count(), 3);
            assert_eq!(r.pop().unwrap().seq, round * 10);
            r.push(InFlight {
                seq: round * 10 + 3,
                ..Default::default()
            });
            let seqs: Vec<u64> = std::iter::from_fn(|| r.pop().map(|x| x.seq)).collect();
            assert_eq!(seqs, [1, 2, 3].map(|i| round * 10 + i));
        }
    }

    proptest::proptest! {
        /// Whatever the server sends, parsing returns a response, "incomplete" or an error,
        /// and a response never claims more bytes than it was given.
        #[test]
        fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..300), eof: bool) {
            let mut buf = raw.clone();
            if let Ok(Some(p)) = frame_response(&mut buf, eof) {
                proptest::prop_assert!(p.consumed <= raw.len());
                proptest::prop_assert!(p.body.0 <= p.body.1 && p.body.1 <= raw.len());
            }
        }

        /// A valid chunked response cut anywhere is incomplete (never a wrong body); chunk
        /// sizes chosen at random de-chunk to the original data.
        #[test]
        fn chunked_bodies_round_trip(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            sizes in proptest::collection::vec(1usize..40, 1..10),
            cut in 0usize..400,
        ) {
            let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            let mut rest = &data[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = sizes[i % sizes.len()].min(rest.len());
                raw.extend_from_slice(format!("{n:X}\r\n").as_bytes());
                raw.extend_from_slice(&rest[..n]);
                raw.extend_from_slice(b"\r\n");
                rest = &rest[n..];
                i += 1;
            }
            raw.extend_from_slice(b"0\r\n\r\n");
            let mut full = raw.clone();
            let p = frame_response(&mut full, false).unwrap().unwrap();
            proptest::prop_assert_eq!(&full[p.body.0..p.body.1], &data[..]);
            proptest::prop_assert_eq!(p.consumed, raw.len());
            if cut < raw.len() {
                let mut part = raw[..cut].to_vec();
                proptest::prop_assert!(frame_response(&mut part, false).unwrap().is_none());
            }
        }
    }

    #[test]
    fn config_checks() {
        assert!(matches!(
            KeepAliveConfig::new("ws://x/"),
            Err(KeepAliveSetupError::NotHttp { .. })
        ));
        let mut cfg = KeepAliveConfig::new("http://127.0.0.1:1/").unwrap();
        cfg.max_in_flight = 0;
        let e = KeepAlive::new(cfg, Token(0)).err().unwrap();
        assert!(e.to_string().contains("max_in_flight"), "{e}");
    }
}
