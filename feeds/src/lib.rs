//! Keel's market-data layer: the mio event loop, TLS, the RFC 6455 WebSocket client and the venue
//! parsers that turn bytes into fixed-size [`MarketEvent`]s (DESIGN.md, "Data flow").
//!
//! Owns everything between the socket and a normalised event; knows nothing of the engine.
//! Must never allocate per message after start-up, panic on bytes from the network, or let a
//! malformed message stop a feed.

pub mod book_sync;
pub mod clock;
pub mod event;
pub mod freshness;
pub mod instrument;
pub mod net;
pub mod session;
pub mod venues;

pub use event::{DisconnectReason, EventBody, MarketEvent, OptionTicker, Side, Venue, VenueGreeks};
pub use instrument::{Instrument, InstrumentId, InstrumentKind, Instruments, OptionRight};
pub use venues::{ParseError, Parsed, ParserStats, VenueParser};
