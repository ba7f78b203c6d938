//! The `keel` command line: argument parsing, one-line error reporting and the subcommands.
//!
//! The binary (`src/bin/keel.rs`) only calls [`main`]. Each subcommand lives in its own module
//! with a clap `Args` struct and a `run` function returning `anyhow::Result`, so that later
//! subcommands (`run`, `tap`, `backtest`, `tx`) plug in by adding a module and a [`Command`]
//! variant. Errors are reported once, here, as a single `error: ...` line on standard error
//! with exit code 2; nothing below prints errors itself.

pub mod backtest_cmd;
pub mod config_cmd;
pub mod greeks_cmd;
pub mod halt_cmd;
pub mod run;
pub mod run_config;
pub mod sim;
pub mod tap_cmd;
pub mod tx_cmd;

use std::io;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code of every failure: bad arguments, bad input, I/O errors.
pub const EXIT_ERROR: u8 = 2;

/// Keel, an options hedging engine: reprices a whole book with a SIMD Greeks kernel and hedges it.
#[derive(Parser, Debug)]
#[command(
    name = "keel",
    version,
    after_help = "Run 'keel <COMMAND> --help' for a command's flags, input format and units.\n\
                  Examples: keel run --duration 30s    keel greeks --input cases.csv --output greeks.csv"
)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Keel's subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the engine: market data in, the whole book repriced per tick, the delta band held
    /// with hedges; live status every second, a summary at the end (Ctrl-C or --duration).
    /// With no venue flag it runs on the embedded simulated venue.
    Run(Box<run_config::RunArgs>),
    /// Price a CSV of options and append price and Greeks to each row (batch pricing).
    #[command(long_about = greeks_cmd::LONG_ABOUT, after_help = greeks_cmd::AFTER_HELP)]
    Greeks(greeks_cmd::GreeksArgs),
    /// Connect to one venue and print the normalised market events its parser produces.
    #[command(long_about = tap_cmd::LONG_ABOUT, after_help = tap_cmd::AFTER_HELP)]
    Tap(tap_cmd::TapArgs),
    /// Hedge an option or a book with policies over simulated or recorded paths and report
    /// the cost of writing and hedging it (mean, std, trades, fees), optionally as a frontier plot.
    #[command(long_about = backtest_cmd::LONG_ABOUT, after_help = backtest_cmd::AFTER_HELP)]
    Backtest(Box<backtest_cmd::BacktestArgs>),
    /// Show the configuration `keel run` would use (defaults, --config file, flags), secrets
    /// redacted.
    #[command(long_about = config_cmd::LONG_ABOUT)]
    Config(Box<config_cmd::ConfigArgs>),
    /// Write the halt file (atomically, with a reason and the time) whose existence halts the
    /// engine's risk gate (`keel run` watches it: --halt-file); `--clear` removes it.
    #[command(long_about = halt_cmd::LONG_ABOUT, after_help = halt_cmd::AFTER_HELP)]
    Halt(halt_cmd::HaltArgs),
    /// Sign and inspect Ethereum transactions offline (EIP-1559; raw EIP-2718 hex out); keys
    /// from an environment variable or an encrypted keystore, never from the command line.
    #[command(long_about = tx_cmd::LONG_ABOUT, after_help = tx_cmd::AFTER_HELP)]
    Tx(tx_cmd::TxArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Greeks(args) => greeks_cmd::run(&args),
        Command::Tap(args) => tap_cmd::run(&args),
        Command::Config(args) => config_cmd::run(&args),
        Command::Halt(args) => halt_cmd::run(&args),
        Command::Backtest(args) => backtest_cmd::run(&args),
        Command::Tx(args) => tx_cmd::run(&args),
    }
}

/// Entry point of the `keel` binary: parses arguments, runs the command, reports any error as
/// one line on standard error and returns exit code 2 for it.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our standard output went away (`keel greeks ... | head`): nothing to
        // report, like any Unix filter.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            report(&format!("{e:#}"));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Help and version go to standard output with exit code 0; a bare `keel` shows the help on
/// standard error (exit 2); every other argument error becomes one `error: ...` line.
fn clap_exit(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(EXIT_ERROR)
        }
        _ => {
            report(&redact_hex_keys(&clap_one_line(&e.render().to_string())));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Prints `error: <msg>` as one line on standard error (never panics, even if stderr is closed).
fn report(msg: &str) {
    use std::io::Write;
    let _ = writeln!(io::stderr(), "error: {}", one_line(msg));
}

/// Folds clap's multi-line error text into one line: drops the `Usage:` lines and the leading
/// `error: `, and joins the rest (`[possible values: ...]`, tips, the `--help` hint).
fn clap_one_line(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("Usage:") {
            continue;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') || line.starts_with('[') {
                " "
            } else {
                "; "
            });
        }
        out.push_str(line);
    }
    one_line(&out)
}

/// Argument errors quote the offending argument; one that looks like a private key (exactly 64
/// hex digits, with or without `0x`: someone typed a key where it does not belong) is replaced
/// so that the key never reaches a terminal or a log.
fn redact_hex_keys(msg: &str) -> String {
    let bytes = msg.as_bytes();
    let mut out = String::with_capacity(msg.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_hexdigit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let mut j = i;
            while j < bytes.len() && bytes[j].is_ascii_hexdigit() {
                j += 1;
            }
            // `0x` prefix: the run starts after it.
            let start = if bytes[i] == b'0' && j == i + 1 && bytes.get(j) == Some(&b'x') {
                let mut k = j + 1;
                while k < bytes.len() && bytes[k].is_ascii_hexdigit() {
                    k += 1;
                }
                j = k;
                i + 2
            } else {
                i
            };
            let boundary = j == bytes.len() || !bytes[j].is_ascii_alphanumeric();
            if j - start == 64 && boundary {
                out.push_str("<redacted: looks like a private key>");
            } else {
                out.push_str(&msg[i..j]);
            }
            i = j;
        } else {
            let ch = msg[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Replaces line breaks so a message always fits on one line.
fn one_line(msg: &str) -> String {
    msg.replace(['\r', '\n'], " ")
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn clap_errors_fold_to_one_line() {
        let text = "error: invalid value 'f16' for '--precision <PRECISION>'\n  \
                    [possible values: f64, f32]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            clap_one_line(text),
            "invalid value 'f16' for '--precision <PRECISION>' [possible values: f64, f32]; \
             For more information, try '--help'."
        );
        let text = "error: the following required arguments were not provided:\n  \
                    --input <FILE>\n\nUsage: keel greeks --input <FILE>\n\n\
                    For more information, try '--help'.\n";
        assert_eq!(
            clap_one_line(text),
            "the following required arguments were not provided: --input <FILE>; \
             For more information, try '--help'."
        );
    }

    #[test]
    fn key_like_hex_is_redacted_from_argument_errors() {
        let key = "0123456789012345678901234567890123456789012345678901234567890123";
        for shown in [format!("0x{key}"), key.to_string()] {
            let msg = format!("unexpected argument '{shown}' found; tip: ...");
            let out = redact_hex_keys(&msg);
            assert_eq!(
                out,
                "unexpected argument '<redacted: looks like a private key>' found; tip: ..."
            );
        }
        // Not 64 digits, or part of a longer word: left alone.
        for msg in [
            "'0x1234' ü 0x",
            "x0123456789012345678901234567890123456789012345678901234567890123",
            "a 0x12",
        ] {
            assert_eq!(redact_hex_keys(msg), msg);
        }
        let long = format!("'0x{key}00'");
        assert_eq!(redact_hex_keys(&long), long);
    }
}
