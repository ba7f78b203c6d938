//! `keel-bench`: Keel's benchmark harness. Each bench runs the competing implementations in one
//! process on the same inputs and prints them side by side (a table, or one JSON object with
//! `--json`).

mod e2e;
mod exec;
mod greeks;
mod parse;
mod ring;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "keel-bench",
    version,
    about = "Keel's benchmark harness: competing implementations side by side, from one process",
    long_about = "Keel's benchmark harness. Every bench runs Keel's implementation and its rivals \
                  in the same process on the same inputs and prints them side by side. Build \
                  with --release (the workspace builds for the native CPU)."
)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Greeks kernel: SIMD f64 full and spot-move paths, SIMD f32, the scalar twin and a
    /// published crate, in ns per option.
    Greeks(greeks::Args),
    /// Venue parsers: ns per message for each venue's parser on the fixture messages, beside
    /// serde_json and sonic-rs into typed structs.
    Parse(parse::Args),
    /// SPSC ring hop between two pinned cores: one-way latency percentiles and throughput of
    /// Keel's ring beside crossbeam's ArrayQueue and channel and std's sync_channel.
    Ring(ring::Args),
    /// End-to-end tick-to-trade on loopback: Keel's real pipeline and a conventional stack
    /// (tokio-tungstenite, serde_json, a channel, scalar Black-Scholes, a serde_json order) on
    /// the same keel-sim stream; percentiles, per-stage breakdown, .hgrm files, an SVG plot,
    /// and sweeps over book size and tick rate (boxed: its flags are most of the enum's size).
    E2e(Box<e2e::Args>),
    /// EVM exec: decision -> last byte written for 1, 2 and 4 venues (keel-sim's node and
    /// builders on loopback), Keel's pre-signed ladders on warm connections beside a reqwest
    /// client per call joined over the venues.
    Exec(exec::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.bench {
        Bench::Greeks(a) => greeks::run(&a),
        Bench::Parse(a) => parse::run(&a),
        Bench::Ring(a) => ring::run(&a),
        Bench::E2e(a) => e2e::run(&a),
        Bench::Exec(a) => exec::run(&a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
