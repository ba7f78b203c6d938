//! `keel config show`: resolves `keel run`'s configuration exactly as `keel run` would (the same
//! flags, [`RunArgs`], and the same `--config` file) and prints it, TOML by default or one JSON
//! object with `--json`, secrets redacted.
//!
//! Owns the subcommand only; resolution and formatting live in [`crate::run_config`]. Never
//! prints a secret: `key_env`/`secret_env` appear as variable names with whether they are set.

use std::io::Write;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::run_config::{self, RunArgs};

/// `keel config --help`, above the subcommands.
pub const LONG_ABOUT: &str = "\
Inspect the configuration of `keel run`.

`keel config show` takes exactly the flags of `keel run` (including --config keel.toml) and
prints the configuration the run would use: built-in defaults, then the file, then the flags
(which win). Secrets are never shown: key_env/secret_env appear as the names of environment
variables with whether each is set. The output says whether the run would be dry and whether it
would use the embedded simulated venue; its TOML form can be read back with --config.";

/// `keel config show --help`, below the flags.
pub const SHOW_AFTER_HELP: &str = "\
Examples:
  keel config show
  keel config show --config keel.toml --deribit-fee-bps 2.5
  keel config show --deribit-url wss://www.deribit.com/ws/api/v2 --deribit-key-env DERIBIT_KEY \\
                   --deribit-secret-env DERIBIT_SECRET --live --json";

/// Arguments of `keel config`.
#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// What to do with the configuration.
    #[command(subcommand)]
    pub action: ConfigAction,
}

/// The subcommands of `keel config`.
#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Print the configuration `keel run` would use with these flags (secrets redacted).
    #[command(after_help = SHOW_AFTER_HELP)]
    Show(ShowArgs),
}

/// Arguments of `keel config show`: the flags of `keel run`. `--json` prints JSON (and, as for
/// `keel run`, shows `json = true`).
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The flags of `keel run`.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Runs `keel config ...`.
pub fn run(args: &ConfigArgs) -> Result<()> {
    match &args.action {
        ConfigAction::Show(show) => {
            let cfg = run_config::resolve(&show.run)?;
            let text = if show.run.json == Some(true) {
                run_config::show_json(&cfg) + "\n"
            } else {
                run_config::show(&cfg)
            };
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Ok(())
        }
    }
}
