//! `keel halt`: writes (or with `--clear` removes) the halt file that a running engine watches.
//!
//! Owns the subcommand only; the file's format, its atomic write and the engine's side (the
//! poll, the state machine) live in [`keel_engine::risk`]. Never touches a running process: the
//! file is the whole interface, so it works across users, containers and machines sharing a
//! directory.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use keel_engine::risk::{DEFAULT_HALT_FILE, clear_halt_file, read_halt_file, write_halt_file};

/// `keel halt --help`, above the flags.
pub const LONG_ABOUT: &str = "\
Halt a running engine (or keep the next one from trading) by creating its halt file.

The engine looks at the halt file's path a few times a second from its status loop; while the
file exists it is HALTED: no order is sent and resting orders are cancelled. The file is written
atomically (a temporary file renamed into place) with the reason and the time, so whoever finds
it knows why. A running engine stays halted after the file is removed: `keel halt --clear`
removes it so that the next start (or an operator's resume) may trade. The engine also halts on
SIGUSR1 (`kill -USR1 <pid>`).

The default path is keel.halt in the working directory, which is to be the default of
`keel run --halt-file` too. Not yet wired: `keel run` does not watch the halt file (nor SIGUSR1)
until the risk gate is integrated into its pricer and exec tiles (issue #5); until then this
command only prepares the file.";

/// `keel halt --help`, below the flags.
pub const AFTER_HELP: &str = "\
Examples:
  keel halt --reason \"venue incident\"
  keel halt --file /var/run/keel/keel.halt
  keel halt --clear";

/// Arguments of `keel halt`.
#[derive(Args, Debug)]
pub struct HaltArgs {
    /// The halt file (the same default is meant for `keel run --halt-file`).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_HALT_FILE)]
    pub file: PathBuf,
    /// Why, written into the file (one line).
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "keel halt",
        conflicts_with = "clear"
    )]
    pub reason: String,
    /// Remove the halt file instead (nothing to remove is not an error).
    #[arg(long)]
    pub clear: bool,
    /// Print one JSON object: {"path", "action" ("halted"|"cleared"|"absent"), "replaced",
    /// "reason", "at"}.
    #[arg(long)]
    pub json: bool,
}

/// Runs `keel halt`.
pub fn run(args: &HaltArgs) -> Result<()> {
    let path = &args.file;
    let shown = path.display().to_string();
    let mut out = std::io::stdout().lock();
    if args.clear {
        let removed = clear_halt_file(path).with_context(|| format!("removing {shown}"))?;
        if args.json {
            let action = if removed { "cleared" } else { "absent" };
            writeln!(
                out,
                "{}",
                serde_json::json!({ "path": shown, "action": action })
            )?;
        } else if removed {
            writeln!(
                out,
                "cleared: {shown} removed (a running engine stays halted)"
            )?;
        } else {
            writeln!(out, "no halt file at {shown}")?;
        }
        return Ok(());
    }
    let now = keel_feeds::clock::now_ns();
    let replaced = write_halt_file(path, &args.reason, now)
        .with_context(|| format!("writing the halt file {shown}"))?;
    let note = read_halt_file(path).with_context(|| format!("reading back {shown}"))?;
    let at = keel_engine::risk::kill::utc_rfc3339(note.at_ns);
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "path": shown,
                "action": "halted",
                "replaced": replaced,
                "reason": note.reason,
                "at": at,
            })
        )?;
    } else {
        let was = if replaced {
            " (replacing an earlier one)"
        } else {
            ""
        };
        writeln!(out, "halted: {shown} written at {at}{was}: {}", note.reason)?;
    }
    Ok(())
}
