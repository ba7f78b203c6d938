//! The RFC 6455 client opening handshake (§4.1): the upgrade request with a random
//! `Sec-WebSocket-Key`, and the checks on the server's answer (status 101, `Upgrade: websocket`,
//! `Connection: Upgrade`, `Sec-WebSocket-Accept` = base64(SHA-1(key ‖ GUID)), no extension or
//! subprotocol we did not ask for).
//!
//! Runs once per connection, off the hot path: it may allocate, but it never panics on the
//! server's bytes and every error says what the server got wrong.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};

use crate::net::head::{HeadError, ResponseHead, find_head_end};
use crate::net::url::Url;

/// The GUID RFC 6455 appends to the key before hashing.
pub const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A response head larger than this without its blank line is refused.
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key ‖ GUID)).
pub fn accept_key(key: &[u8]) -> String {
    ascii(&accept_bytes(key)).to_owned()
}

/// [`accept_key`] without allocating: the 28 base64 characters of a 20-byte digest.
fn accept_bytes(key: &[u8]) -> [u8; 28] {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(WS_GUID.as_bytes());
    let mut out = [0u8; 28];
    let n = BASE64
        .encode_slice(sha.finalize(), &mut out)
        .expect("28 base64 characters hold 20 bytes");
    debug_assert_eq!(n, out.len());
    out
}

/// Base64 output as text (it is ASCII by construction).
fn ascii(b: &[u8]) -> &str {
    std::str::from_utf8(b).expect("base64 output is ASCII")
}

/// What was wrong with the server's handshake response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The response is not a well-formed HTTP/1.1 head.
    #[error("malformed handshake response: {0}")]
    Head(#[from] HeadError),
    /// No blank line within [`MAX_RESPONSE_HEAD`] bytes.
    #[error("handshake response head exceeds {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Not `101 Switching Protocols`.
    #[error("expected status 101 Switching Protocols, got {status} {reason:?}")]
    Status {
        /// The status code the server sent.
        status: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// A required header is missing.
    #[error("handshake response has no {0} header")]
    MissingHeader(&'static str),
    /// `Upgrade` is not `websocket`.
    #[error("Upgrade header is {0:?}, expected \"websocket\"")]
    Upgrade(String),
    /// `Connection` has no `upgrade` token.
    #[error("Connection header {0:?} has no \"Upgrade\" token")]
    Connection(String),
    /// `Sec-WebSocket-Accept` does not match the key we sent.
    #[error("Sec-WebSocket-Accept is {got:?}, expected {expected:?}")]
    Accept {
        /// What the key we sent implies.
        expected: String,
        /// What the server sent.
        got: String,
    },
    /// The server chose an extension we did not offer (we offer none).
    #[error("server enabled extension {0:?} that was not offered")]
    Extension(String),
    /// The server chose a subprotocol we did not offer (we offer none).
    #[error("server chose subprotocol {0:?} that was not offered")]
    Protocol(String),
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One client handshake: the key it sent and the accept value it expects.
#[derive(Clone, Debug)]
pub struct ClientHandshake {
    /// Base64 of the 16-byte nonce (24 characters) and the answer it calls for (28): fixed
    /// arrays, so that a reconnection builds its handshake without allocating.
    key: [u8; 24],
    accept: [u8; 28],
}

impl ClientHandshake {
    /// A handshake with a fresh key from OS entropy (16 bytes, base64).
    pub fn new() -> Self {
        let mut raw = [0u8; 16];
        crate::net::rand::os_random_bytes(&mut raw);
        Self::with_key(raw)
    }

    /// A handshake with a given 16-byte nonce (tests; RFC 6455's example uses
    /// `the sample nonce`).
    pub fn with_key(raw: [u8; 16]) -> Self {
        let mut key = [0u8; 24];
        let n = BASE64
            .encode_slice(raw, &mut key)
            .expect("24 base64 characters hold 16 bytes");
        debug_assert_eq!(n, key.len());
        let accept = accept_bytes(&key);
        Self { key, accept }
    }

    /// The `Sec-WebSocket-Key` value.
    pub fn key(&self) -> &str {
        ascii(&self.key)
    }

    /// The `Sec-WebSocket-Accept` value the server must answer.
    pub fn expected_accept(&self) -> &str {
        ascii(&self.accept)
    }

    /// Appends the GET upgrade request for `url` to `out`, with `extra` headers (the caller
    /// has checked they hold no CR or LF).
    pub fn write_request(&self, url: &Url, extra: &[(String, String)], out: &mut Vec<u8>) {
        let mut push = |parts: &[&str]| {
            for p in parts {
                out.extend_from_slice(p.as_bytes());
            }
        };
        push(&["GET ", url.target(), " HTTP/1.1\r\n"]);
        push(&["Host: ", url.host_header(), "\r\n"]);
        push(&["Upgrade: websocket\r\nConnection: Upgrade\r\n"]);
        push(&["Sec-WebSocket-Key: ", self.key(), "\r\n"]);
        push(&["Sec-WebSocket-Version: 13\r\n"]);
        push(&["User-Agent: keel-feeds/", env!("CARGO_PKG_VERSION"), "\r\n"]);
        for (name, value) in extra {
            push(&[name, ": ", value, "\r\n"]);
        }
        push(&["\r\n"]);
    }

    /// Checks the server's response at the start of `buf`. `Ok(None)`: incomplete, read more.
    /// `Ok(Some(n))`: valid; the head is `n` bytes and what follows is WebSocket frames.
    pub fn parse_response(&self, buf: &[u8]) -> Result<Option<usize>, HandshakeError> {
        let Some(end) = find_head_end(buf) else {
            if buf.len() > MAX_RESPONSE_HEAD {
                return Err(HandshakeError::TooLarge {
                    limit: MAX_RESPONSE_HEAD,
                });
            }
            return Ok(None);
        };
        if end > MAX_RESPONSE_HEAD {
            return Err(HandshakeError::TooLarge {
                limit: MAX_RESPONSE_HEAD,
            });
        }
        let head = ResponseHead::parse(&buf[..end])?;
        if head.status != 101 {
            return Err(HandshakeError::Status {
                status: head.status,
                reason: lossy(head.reason),
            });
        }
        let upgrade = head
            .header("Upgrade")
            .ok_or(HandshakeError::MissingHeader("Upgrade"))?;
        if !upgrade.eq_ignore_ascii_case(b"websocket") {
            return Err(HandshakeError::Upgrade(lossy(upgrade)));
        }
        if !head.has_token("Connection", "upgrade") {
            let conn = head
                .header("Connection")
                .ok_or(HandshakeError::MissingHeader("Connection"))?;
            return Err(HandshakeError::Connection(lossy(conn)));
        }
        let accept = head
            .header("Sec-WebSocket-Accept")
            .ok_or(HandshakeError::MissingHeader("Sec-WebSocket-Accept"))?;
        if accept != self.accept {
            return Err(HandshakeError::Accept {
                expected: self.expected_accept().to_owned(),
                got: lossy(accept),
            });
        }
        if let Some(ext) = head.header("Sec-WebSocket-Extensions") {
            return Err(HandshakeError::Extension(lossy(ext)));
        }
        if let Some(proto) = head.header("Sec-WebSocket-Protocol") {
            return Err(HandshakeError::Protocol(lossy(proto)));
        }
        Ok(Some(end))
    }
}

impl Default for ClientHandshake {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// RFC 6455 §1.3's worked example.
    #[test]
    fn rfc_example_accept() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let hs = ClientHandshake::with_key(*b"the sample nonce");
        assert_eq!(hs.key(), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(hs.expected_accept(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn keys_are_random() {
        assert_ne!(ClientHandshake::new().key(), ClientHandshake::new().key());
        assert_eq!(ClientHandshake::new().key().len(), 24);
    }

    #[test]
    fn request_is_accepted_by_tungstenite_and_its_answer_by_us() {
        let hs = ClientHandshake::new();
        let url = Url::parse("ws://127.0.0.1:9001/ws/api/v2?x=1").unwrap();
        let mut req = Vec::new();
        hs.write_request(&url, &[("Origin".into(), "keel".into())], &mut req);
        let text = String::from_utf8(req.clone()).unwrap();
        assert!(text.starts_with("GET /ws/api/v2?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n"));
        assert!(text.contains("\r\nOrigin: keel\r\n"));
        assert!(text.ends_with("\r\n\r\n"));

        // tungstenite's server side parses our request and derives its own accept value.
        use tungstenite::handshake::MidHandshake;
        use tungstenite::handshake::server::{NoCallback, ServerHandshake};
        let stream = MockStream::new(req);
        let mut mid: MidHandshake<ServerHandshake<MockStream, NoCallback>> =
            ServerHandshake::start(stream, NoCallback, None);
        let ws = loop {
            match mid.handshake() {
                Ok(ws) => break ws,
                Err(tungstenite::HandshakeError::Interrupted(m)) => mid = m,
                Err(e) => panic!("tungstenite rejected our request: {e}"),
            }
        };
        let written = ws.get_ref().written.clone();
        assert_eq!(hs.parse_response(&written), Ok(Some(written.len())));
    }

    #[test]
    fn response_table() {
        let hs = ClientHandshake::with_key(*b"the sample nonce");
        let ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        // Valid, case-insensitive, with trailing frame bytes.
        assert_eq!(hs.parse_response(ok.as_bytes()), Ok(Some(ok.len())));
        let mixed = b"HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nCONNECTION: keep-alive, upgrade\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi";
        assert_eq!(hs.parse_response(mixed), Ok(Some(mixed.len() - 4)));
        // Incomplete.
        assert_eq!(hs.parse_response(&ok.as_bytes()[..40]), Ok(None));
        type Check = fn(&HandshakeError) -> bool;
        let cases: Vec<(String, Check)> = vec![
            (
                ok.replace("101 Switching Protocols", "403 Forbidden"),
                |e| matches!(e, HandshakeError::Status { status: 403, reason } if reason == "Forbidden"),
            ),
            (ok.replace("Upgrade: websocket\r\n", ""), |e| {
                *e == HandshakeError::MissingHeader("Upgrade")
            }),
            (
                ok.replace("Upgrade: websocket", "Upgrade: h2c"),
                |e| matches!(e, HandshakeError::Upgrade(v) if v == "h2c"),
            ),
            (ok.replace("Connection: Upgrade\r\n", ""), |e| {
                *e == HandshakeError::MissingHeader("Connection")
            }),
            (
                ok.replace("Connection: Upgrade", "Connection: close"),
                |e| matches!(e, HandshakeError::Connection(v) if v == "close"),
            ),
            (
                ok.replace("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", ""),
                |e| *e == HandshakeError::MissingHeader("Sec-WebSocket-Accept"),
            ),
            (
                ok.replace(
                    "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
                    "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                ),
                |e| matches!(e, HandshakeError::Accept { got, expected } if got.starts_with("AAAA") && expected.starts_with("s3pP")),
            ),
            (
                ok.replace(
                    "\r\n\r\n",
                    "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
                ),
                |e| matches!(e, HandshakeError::Extension(v) if v == "permessage-deflate"),
            ),
            (
                ok.replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"),
                |e| matches!(e, HandshakeError::Protocol(v) if v == "mqtt"),
            ),
            (ok.replace("HTTP/1.1 101", "HTTP/1.1 1x1"), |e| {
                matches!(e, HandshakeError::Head(HeadError::StatusLine(_)))
            }),
            (ok.replace("Upgrade: websocket", "Upgrade websocket"), |e| {
                matches!(e, HandshakeError::Head(HeadError::HeaderLine(_)))
            }),
            (
                format!("HTTP/1.1 101 OK\r\nX: {}", "y".repeat(MAX_RESPONSE_HEAD)),
                |e| matches!(e, HandshakeError::TooLarge { .. }),
            ),
        ];
        for (resp, check) in cases {
            let e = hs.parse_response(resp.as_bytes()).expect_err(&resp);
            assert!(check(&e), "{resp:?} -> {e}");
        }
    }

    /// An in-memory stream: reads from `input`, records writes.
    pub(crate) struct MockStream {
        input: std::io::Cursor<Vec<u8>>,
        pub written: Vec<u8>,
    }

    impl MockStream {
        pub fn new(input: Vec<u8>) -> Self {
            Self {
                input: std::io::Cursor::new(input),
                written: Vec::new(),
            }
        }
    }

    impl std::io::Read for MockStream {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.input.read(buf)?;
            if n == 0 && !buf.is_empty() {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        }
    }

    impl std::io::Write for MockStream {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
