//! Keel's market-data layer: the mio event loop, TLS, the RFC 6455 WebSocket client and the venue
//! parsers that turn bytes into fixed-size `MarketEvent`s (DESIGN.md, "Data flow").
//!
//! Empty until the feeds issue (#3) builds it: the crate exists now so that the workspace layout
//! and the dependency direction (`feeds` knows nothing of `engine`) are fixed from the start.
