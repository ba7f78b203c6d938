//! The pipeline's infrastructure: bounded SPSC rings between stages ([`ring`]), conflation of
//! market data when a ring is full ([`conflate`]), per-thread wait strategies ([`wait`]), stage
//! threads with a lifecycle ([`tile`]), the topology and pin map chosen on the command line
//! ([`topology`]) and stage latencies recorded off the hot path ([`telemetry`]).
//!
//! Owns the plumbing and the two stages that are only plumbing around other modules: the feed
//! tile ([`feed_tile`]: feed loop → ring) and the pricer tile ([`pricer`]: market → book →
//! policy → intents); the exec tile lives in `exec`. Must never, on the hot path: allocate, lock, make a syscall
//! other than what the wait strategy chooses, or drop a message silently (a full ring is counted;
//! intents and fills wait instead of dropping). DESIGN.md "Threads and cores" and "Rules of the
//! hot path".

pub mod conflate;
pub mod feed_tile;
pub mod pricer;
pub mod ring;
pub mod telemetry;
pub mod tile;
pub mod topology;
pub mod wait;

pub use conflate::{Conflator, OfferOutcome};
pub use ring::{Consumer, Disconnected, Full, Producer, RingError, ring};
pub use telemetry::{
    LatencySummary, Percentiles, Stage, Telemetry, TelemetryHandle, TelemetryTile, TickTrace,
};
pub use tile::{PinPolicy, StopFlag, Tile, TileError, TileSpec, TileThread, spawn};
pub use topology::{PinMap, Topology, WaitMap, available_cores};
pub use wait::{WaitStrategy, Waiter};

/// What went wrong building or running the pipeline; every message names the input or the tile.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("unknown wait strategy {0:?}; choices: spin, spin-yield, park")]
    UnknownWaitStrategy(String),
    #[error("unknown topology {0:?}; choices: dedicated, fused")]
    UnknownTopology(String),
    /// A `--pin` value that does not parse.
    #[error("pin map {input:?}: {reason}")]
    BadPinMap { input: String, reason: String },
    /// A `--wait` value that does not parse.
    #[error("wait map {input:?}: {reason}")]
    BadWaitMap { input: String, reason: String },
    /// A pin map names a core this machine does not have (or may not use).
    #[error(
        "pin map: {stage}={core}: core {core} is not available on this machine (available: {available})"
    )]
    CoreUnavailable {
        stage: &'static str,
        core: usize,
        available: String,
    },
    #[error("no tiles to spawn")]
    NoTiles,
    #[error("could not start the thread for tiles {tiles}: {source}")]
    Spawn {
        tiles: String,
        #[source]
        source: std::io::Error,
    },
    /// Pinning failed under `PinPolicy::Required`; the tiles did not run.
    #[error(
        "tiles {tiles}: could not pin to core {core} (use --dev to run unpinned with a warning)"
    )]
    PinFailed { tiles: String, core: usize },
    #[error("tile {tile}: init failed: {source}")]
    TileInit {
        tile: &'static str,
        #[source]
        source: TileError,
    },
    #[error("tile {tile} panicked: {message}")]
    TilePanicked { tile: String, message: String },
}
