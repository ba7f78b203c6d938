//! The network layer under the venue parsers: a mio event loop per feed thread ([`FeedLoop`]),
//! TLS with rustls ([`tls`]), Keel's own RFC 6455 WebSocket client codec ([`ws`]), connections
//! with reconnection and staleness ([`conn`], [`backoff`]), the venue protocol hook
//! ([`Session`]), a small blocking HTTP/1.1 client for start-up requests ([`http`]) and warm
//! keep-alive HTTP/1.1 connections for orders and transactions ([`keepalive`]).
//!
//! Owns sockets, framing and connection life cycles; knows nothing of venues' message formats.
//! Must never allocate per message after start-up on the streaming path (reused buffers; rustls
//! allocates one buffer per TLS record internally, see [`conn`]), never panic on bytes from the
//! network, and never let one connection's failure stop the loop: failures become
//! `Disconnected` events and reconnections.

pub mod backoff;
pub mod conn;
pub mod feed;
mod head;
pub mod http;
pub mod keepalive;
pub mod rand;
pub mod session;
pub mod tls;
pub mod url;
pub mod ws;

pub use backoff::{Backoff, BackoffConfig, Jitter};
pub use conn::{ConnError, ConnFailure, ConnState, ConnStats, ConnectionConfig, SetupError};
pub use feed::{FeedLoop, MAX_CONNECTIONS};
pub use head::HeadError;
pub use http::{HttpError, http_request};
pub use keepalive::{
    FramedResponse, HttpEvent, HttpPool, KeepAlive, KeepAliveConfig, KeepAliveError,
    KeepAliveSetupError, KeepAliveState, KeepAliveStats, RequestError, Response, SendError,
    frame_response,
};
pub use session::{Outbox, Session};
pub use tls::{TlsError, client_config};
pub use url::{Scheme, Url, UrlError};
