//! One-shot HTTP/1.1 requests over the same TCP/TLS stack, blocking: instrument lists and REST
//! snapshots at start-up. `Connection: close`, bodies framed by `Content-Length`, chunked
//! transfer coding, or the end of the stream.
//!
//! Owns one request at a time and nothing after it returns. Must never be called on the hot path
//! (it allocates and blocks), never follows redirects or decompresses silently (it asks for
//! `identity`), and never waits past its timeout: the timeout bounds the whole exchange.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};
use rustls_pki_types::ServerName;

use crate::net::head::{HeadError, ResponseHead, find_head_end};
use crate::net::tls::{TlsError, client_config};
use crate::net::url::{Url, UrlError};

/// Largest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest response body accepted.
pub const MAX_BODY: usize = 256 << 20;

/// Why an HTTP request failed; each names the URL.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL does not parse.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// Not http:// or https://.
    #[error("URL {0:?} is not http:// or https://")]
    Scheme(String),
    /// A method or header that would break the request.
    #[error("request to {url}: invalid method or header {what:?}")]
    BadRequest {
        /// The URL.
        url: String,
        /// The offending method or header name.
        what: String,
    },
    /// TLS configuration (CA file).
    #[error(transparent)]
    TlsConfig(#[from] TlsError),
    /// Name resolution failed or gave nothing.
    #[error("cannot resolve the host of {url}: {source}")]
    Resolve {
        /// The URL.
        url: String,
        /// Resolver error.
        source: io::Error,
    },
    /// TCP connect failed (the last address's error).
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL.
        url: String,
        /// The error.
        source: io::Error,
    },
    /// The exchange did not finish within the timeout.
    #[error("request to {url} timed out after {after:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout.
        after: Duration,
    },
    /// TLS failed (certificate, alert).
    #[error("TLS with {url}: {source}")]
    Tls {
        /// The URL.
        url: String,
        /// rustls' error.
        source: rustls::Error,
    },
    /// A socket error.
    #[error("I/O with {url}: {source}")]
    Io {
        /// The URL.
        url: String,
        /// The error.
        source: io::Error,
    },
    /// The response head is malformed or too large.
    #[error("bad response head from {url}: {source}")]
    Head {
        /// The URL.
        url: String,
        /// What was wrong.
        source: HeadError,
    },
    /// The response body framing is malformed.
    #[error("bad response body from {url}: {what}")]
    Body {
        /// The URL.
        url: String,
        /// What was wrong.
        what: String,
    },
    /// The body exceeds [`MAX_BODY`] (or the head [`MAX_HEAD`]).
    #[error("response from {url} exceeds {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The connection ended before the body did.
    #[error("response from {url} truncated: {got} of {expected} body bytes")]
    Truncated {
        /// The URL.
        url: String,
        /// Bytes announced.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(t) => t,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(t) => t.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(t) => t.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(t) => t.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Reads the response with a deadline and a buffer.
struct Reader<'a> {
    stream: Stream,
    buf: Vec<u8>,
    pos: usize,
    deadline: Instant,
    timeout: Duration,
    url: &'a str,
    eof: bool,
}

impl Reader<'_> {
    fn timeout_err(&self) -> HttpError {
        HttpError::Timeout {
            url: self.url.to_owned(),
            after: self.timeout,
        }
    }

    /// Reads more bytes into `buf`; Ok(false) at end of stream.
    fn fill(&mut self) -> Result<bool, HttpError> {
        if self.eof {
            return Ok(false);
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timeout_err());
        }
        let _ = self.stream.tcp().set_read_timeout(Some(left));
        let old = self.buf.len();
        self.buf.resize(old + 16 * 1024, 0);
        let r = loop {
            match self.stream.read(&mut self.buf[old..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        match r {
            Ok(n) => {
                self.buf.truncate(old + n);
                if n == 0 {
                    self.eof = true;
                }
                Ok(n > 0)
            }
            Err(e) => {
                self.buf.truncate(old);
                match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Err(self.timeout_err()),
                    // A TLS peer that closes without close_notify: treat as end of stream; the
                    // body framing decides whether that truncated the response.
                    io::ErrorKind::UnexpectedEof => {
                        self.eof = true;
                        Ok(false)
                    }
                    _ => match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                        Some(tls) => Err(HttpError::Tls {
                            url: self.url.to_owned(),
                            source: tls.clone(),
                        }),
                        None => Err(HttpError::Io {
                            url: self.url.to_owned(),
                            source: e,
                        }),
                    },
                }
            }
        }
    }

    fn available(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// Reads a `\r\n`-terminated line (without it), at most `limit` bytes.
    fn line(&mut self, limit: usize) -> Result<Vec<u8>, HttpError> {
        loop {
            if let Some(i) = self.available().windows(2).position(|w| w == b"\r\n") {
                let line = self.available()[..i].to_vec();
                self.pos += i + 2;
                return Ok(line);
            }
            if self.available().len() > limit {
                return Err(HttpError::Body {
                    url: self.url.to_owned(),
                    what: "chunk line too long".into(),
                });
            }
            if !self.fill()? {
                return Err(HttpError::Body {
                    url: self.url.to_owned(),
                    what: "stream ended inside chunked framing".into(),
                });
            }
        }
    }

    /// Moves exactly `n` bytes into `body`.
    fn take(
        &mut self,
        n: usize,
        body: &mut Vec<u8>,
        expected_total: usize,
    ) -> Result<(), HttpError> {
        let mut left = n;
        while left > 0 {
            if self.available().is_empty() {
                self.buf.clear();
                self.pos = 0;
                if !self.fill()? {
                    return Err(HttpError::Truncated {
                        url: self.url.to_owned(),
                        expected: expected_total,
                        got: body.len(),
                    });
                }
            }
            let k = left.min(self.available().len());
            body.extend_from_slice(&self.available()[..k]);
            self.pos += k;
            left -= k;
        }
        Ok(())
    }
}

fn check_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b':' | b'(' | b')' | b',' | b';'))
}

/// Sends one request and returns the status and the body.
///
/// `headers` are added as given (no CR/LF allowed); `Host`, `Connection: close`,
/// `Accept-Encoding: identity` and, with a body, `Content-Length` are set here. `ca_file` adds
/// trusted CAs for https. `timeout` bounds connect, send and the whole response.
pub fn http_request(
    url: &str,
    method: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
    ca_file: Option<&Path>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), HttpError> {
    let deadline = Instant::now() + timeout;
    let parsed = Url::parse(url)?;
    if parsed.scheme().is_websocket() {
        return Err(HttpError::Scheme(url.to_owned()));
    }
    let bad = |what: &str| HttpError::BadRequest {
        url: url.to_owned(),
        what: what.to_owned(),
    };
    if !check_token(method) {
        return Err(bad(method));
    }
    for (name, value) in headers {
        if !check_token(name) || value.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(bad(name));
        }
    }
    let tls = if parsed.scheme().is_tls() {
        let name =
            ServerName::try_from(parsed.host().to_owned()).map_err(|_| bad(parsed.host()))?;
        Some((client_config(ca_file)?, name))
    } else {
        None
    };

    // Connect: each resolved address in turn, within the deadline.
    let addrs: Vec<_> = (parsed.host(), parsed.port())
        .to_socket_addrs()
        .map_err(|source| HttpError::Resolve {
            url: url.to_owned(),
            source,
        })?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    let mut tcp = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let Some(tcp) = tcp else {
        if Instant::now() >= deadline || last.kind() == io::ErrorKind::TimedOut {
            return Err(HttpError::Timeout {
                url: url.to_owned(),
                after: timeout,
            });
        }
        return Err(HttpError::Connect {
            url: url.to_owned(),
            source: last,
        });
    };
    let io_err = |source: io::Error| HttpError::Io {
        url: url.to_owned(),
        source,
    };
    tcp.set_nodelay(true).map_err(io_err)?;
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    tcp.set_write_timeout(Some(left)).map_err(io_err)?;
    tcp.set_read_timeout(Some(left)).map_err(io_err)?;
    let mut stream = match tls {
        Some((config, name)) => {
            let conn = ClientConnection::new(Arc::clone(&config), name).map_err(|source| {
                HttpError::Tls {
                    url: url.to_owned(),
                    source,
                }
            })?;
            Stream::Tls(Box::new(StreamOwned::new(conn, tcp)))
        }
        None => Stream::Plain(tcp),
    };

    // Request.
    let mut req = Vec::with_capacity(256 + body.map_or(0, <[u8]>::len));
    for part in [method, " ", parsed.target(), " HTTP/1.1\r\nHost: "] {
        req.extend_from_slice(part.as_bytes());
    }
    req.extend_from_slice(parsed.host_header().as_bytes());
    req.extend_from_slice(b"\r\nUser-Agent: keel-feeds/");
    req.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
    req.extend_from_slice(b"\r\nAccept-Encoding: identity\r\nConnection: close\r\n");
    for (name, value) in headers {
        for part in [*name, ": ", *value, "\r\n"] {
            req.extend_from_slice(part.as_bytes());
        }
    }
    if let Some(b) = body {
        req.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    if let Some(b) = body {
        req.extend_from_slice(b);
    }
    let sent = stream.write_all(&req).and_then(|()| stream.flush());
    if let Err(e) = sent {
        return Err(match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => HttpError::Timeout {
                url: url.to_owned(),
                after: timeout,
            },
            _ => match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                Some(tls) => HttpError::Tls {
                    url: url.to_owned(),
                    source: tls.clone(),
                },
                None => io_err(e),
            },
        });
    }

    let mut rd = Reader {
        stream,
        buf: Vec::with_capacity(16 * 1024),
        pos: 0,
        deadline,
        timeout,
        url,
        eof: false,
    };
    // Head (skipping interim 1xx responses).
    let (status, framing) = loop {
        let end = loop {
            if let Some(end) = find_head_end(rd.available()) {
                break end;
            }
            if rd.available().len() > MAX_HEAD {
                return Err(HttpError::TooLarge {
                    url: url.to_owned(),
                    limit: MAX_HEAD,
                });
            }
            if !rd.fill()? {
                return Err(HttpError::Head {
                    url: url.to_owned(),
                    source: HeadError::StatusLine(
                        String::from_utf8_lossy(rd.available())
                            .chars()
                            .take(80)
                            .collect(),
                    ),
                });
            }
        };
        let head_bytes = rd.available()[..end].to_vec();
        rd.pos += end;
        let head = ResponseHead::parse(&head_bytes).map_err(|source| HttpError::Head {
            url: url.to_owned(),
            source,
        })?;
        if (100..200).contains(&head.status) {
            continue;
        }
        let framing = if method.eq_ignore_ascii_case("HEAD") || matches!(head.status, 204 | 304) {
            Framing::None
        } else if head.has_token("Transfer-Encoding", "chunked") {
            Framing::Chunked
        } else if let Some(len) = head.header("Content-Length") {
            let len = std::str::from_utf8(len)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or_else(|| HttpError::Body {
                    url: url.to_owned(),
                    what: format!("bad Content-Length {:?}", String::from_utf8_lossy(len)),
                })?;
            Framing::Length(len)
        } else {
            Framing::UntilEof
        };
        break (head.status, framing);
    };

    let too_large = || HttpError::TooLarge {
        url: url.to_owned(),
        limit: MAX_BODY,
    };
    let mut out = Vec::new();
    match framing {
        Framing::None => {}
        Framing::Length(n) => {
            if n > MAX_BODY {
                return Err(too_large());
            }
            out.reserve_exact(n);
            rd.take(n, &mut out, n)?;
        }
        Framing::UntilEof => loop {
            let avail = rd.available();
            if out.len() + avail.len() > MAX_BODY {
                return Err(too_large());
            }
            out.extend_from_slice(avail);
            rd.buf.clear();
            rd.pos = 0;
            if !rd.fill()? {
                break;
            }
        },
        Framing::Chunked => loop {
            let line = rd.line(4096)?;
            let size_text = line.split(|&b| b == b';').next().unwrap_or(&[]);
            let size_text = std::str::from_utf8(size_text).unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .ok()
                .filter(|_| !size_text.is_empty() && !size_text.starts_with('+'))
                .ok_or_else(|| HttpError::Body {
                    url: url.to_owned(),
                    what: format!("bad chunk size line {:?}", String::from_utf8_lossy(&line)),
                })?;
            if size == 0 {
                // Trailer fields until the empty line.
                while !rd.line(MAX_HEAD)?.is_empty() {}
                break;
            }
            if out.len().saturating_add(size) > MAX_BODY {
                return Err(too_large());
            }
            let expected = out.len() + size;
            rd.take(size, &mut out, expected)?;
            if !rd.line(2)?.is_empty() {
                return Err(HttpError::Body {
                    url: url.to_owned(),
                    what: "chunk data not followed by CRLF".into(),
                });
            }
        },
    }
    Ok((status, out))
}

enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilEof,
}
