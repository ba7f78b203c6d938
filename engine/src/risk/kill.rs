//! The kill switch: a halt file whose existence halts, SIGUSR1, and the halt file's format
//! (written by `keel halt`).
//!
//! Owns two shared flags ([`KillFlags`]) and the halt file's path. The flags are the only thing
//! the hot path sees: [`crate::risk::RiskGate`] reads them with one relaxed load per check. The
//! file is looked at by [`KillFile::poll`] — one `lstat` at most every poll interval — which the
//! engine's status loop calls, never the pricer: no syscall ever runs per tick. The signal
//! handler only stores `true` into an `AtomicBool` (signal-hook's `flag::register`, which is
//! async-signal-safe).
//!
//! A halt file is a plain text file, so an operator can also `touch keel.halt`: its content is
//! for people (who halted, why, when); only its existence counts.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::HaltReason;

/// Default halt file, relative to the working directory: `keel halt` writes it, and the engine
/// watches it (`keel run --halt-file`, same default).
pub const DEFAULT_HALT_FILE: &str = "keel.halt";

/// Default interval between two looks at the halt file.
pub const DEFAULT_POLL_EVERY: Duration = Duration::from_millis(250);

/// The halt requests shared between the status loop (file), the signal handler and the risk
/// gate. Cloning shares the same flags.
#[derive(Clone, Debug, Default)]
pub struct KillFlags {
    file: Arc<AtomicBool>,
    signal: Arc<AtomicBool>,
}

impl KillFlags {
    /// No halt requested.
    pub fn new() -> Self {
        Self::default()
    }

    /// The halt requested now, if any (the file first). One or two relaxed loads: no data is
    /// published through these flags, only the request itself.
    #[inline]
    pub fn requested(&self) -> Option<HaltReason> {
        if self.file.load(Ordering::Relaxed) {
            Some(HaltReason::KillFile)
        } else if self.signal.load(Ordering::Relaxed) {
            Some(HaltReason::Signal)
        } else {
            None
        }
    }

    /// Records whether the halt file exists (what [`KillFile::poll`] found).
    pub fn set_file(&self, present: bool) {
        self.file.store(present, Ordering::Relaxed);
    }

    /// Raises the signal flag as SIGUSR1 would (tests, or an in-process operator command).
    pub fn raise_signal(&self) {
        self.signal.store(true, Ordering::Relaxed);
    }

    /// Lowers the signal flag: a signal is an event, acknowledged by a resume.
    pub fn clear_signal(&self) {
        self.signal.store(false, Ordering::Relaxed);
    }

    /// Makes SIGUSR1 raise the signal flag (for the whole process, until it exits). Call once
    /// at start-up; the handler does nothing but store `true`.
    pub fn register_sigusr1(&self) -> io::Result<signal_hook::SigId> {
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, self.signal.clone())
    }
}

/// The halt file watcher, polled by the status loop.
#[derive(Debug)]
pub struct KillFile {
    path: PathBuf,
    poll_every_ns: u64,
    last_poll_ns: Option<u64>,
    present: bool,
    flags: KillFlags,
    looks: u64,
}

impl KillFile {
    /// Watches `path`, looking at most once per `poll_every`, and publishes what it sees into
    /// `flags`. Looks at nothing yet: call [`KillFile::poll`] once before trading starts, so
    /// that a halt file left in place halts the engine before its first order.
    pub fn new(path: impl Into<PathBuf>, poll_every: Duration, flags: KillFlags) -> Self {
        Self {
            path: path.into(),
            poll_every_ns: u64::try_from(poll_every.as_nanos()).unwrap_or(u64::MAX),
            last_poll_ns: None,
            present: false,
            flags,
            looks: 0,
        }
    }

    /// Whether the halt file exists, looking again (one `lstat`) only if the last look is at
    /// least the poll interval old at `now_ns` (the first call always looks). A file that cannot
    /// be looked at for any reason other than "not found" (e.g. permission denied on its
    /// directory) counts as present: the switch fails closed.
    pub fn poll(&mut self, now_ns: u64) -> bool {
        let due = self
            .last_poll_ns
            .is_none_or(|t| now_ns.saturating_sub(t) >= self.poll_every_ns || now_ns < t);
        if due {
            self.last_poll_ns = Some(now_ns);
            self.looks += 1;
            self.present = match std::fs::symlink_metadata(&self.path) {
                Ok(_) => true,
                Err(e) => e.kind() != io::ErrorKind::NotFound,
            };
            self.flags.set_file(self.present);
        }
        self.present
    }

    /// The watched path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many times the file was looked at (each one metadata call).
    pub fn looks(&self) -> u64 {
        self.looks
    }
}

/// What a halt file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaltNote {
    /// Why (free text from the operator, one line).
    pub reason: String,
    /// When, ns since the Unix epoch.
    pub at_ns: u64,
}

/// Writes the halt file at `path` atomically: the text goes to a temporary file in the same
/// directory, is flushed to disk, and is renamed over `path`, so a reader (or the poller) sees
/// either no file or the whole note. An existing halt file is replaced. Returns whether one was
/// there before.
///
/// Format (three lines): `reason: <text>`, `at: <UTC time, RFC 3339>`, `at_ns: <ns since
/// epoch>`; line breaks in the reason are replaced by spaces.
pub fn write_halt_file(path: &Path, reason: &str, at_ns: u64) -> io::Result<bool> {
    let existed = std::fs::symlink_metadata(path).is_ok();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "halt file has no name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let text = format!(
        "reason: {}\nat: {}\nat_ns: {at_ns}\n",
        reason.replace(['\r', '\n'], " "),
        utc_rfc3339(at_ns)
    );
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| existed)
}

/// Reads a halt file written by [`write_halt_file`]; `None` when there is none or it is not in
/// that format (an operator's `touch keel.halt` still halts: only existence counts).
pub fn read_halt_file(path: &Path) -> Option<HaltNote> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut reason = None;
    let mut at_ns = None;
    for line in text.lines() {
        if let Some(r) = line.strip_prefix("reason: ") {
            reason = Some(r.to_string());
        } else if let Some(t) = line.strip_prefix("at_ns: ") {
            at_ns = t.trim().parse().ok();
        }
    }
    Some(HaltNote {
        reason: reason?,
        at_ns: at_ns?,
    })
}

/// Removes the halt file; returns whether there was one.
pub fn clear_halt_file(path: &Path) -> io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// `ns` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (proleptic Gregorian, UTC).
pub fn utc_rfc3339(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let ms = (ns / 1_000_000) % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Year, month, day of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn utc_times_format() {
        assert_eq!(utc_rfc3339(0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29 12:34:56.789 UTC (a leap day).
        assert_eq!(
            utc_rfc3339(1_709_210_096_789 * MS),
            "2024-02-29T12:34:56.789Z"
        );
        assert_eq!(
            utc_rfc3339(1_735_286_400_000 * MS),
            "2024-12-27T08:00:00.000Z"
        );
    }

    #[test]
    fn kill_file_poll_is_rate_limited_and_follows_the_file() {
        let dir = std::env::temp_dir().join(format!("keel-kill-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("poll.halt");
        let _ = std::fs::remove_file(&path);
        let flags = KillFlags::new();
        let mut k = KillFile::new(&path, Duration::from_millis(100), flags.clone());
        let t0 = 1_700_000_000_000 * MS;
        assert!(!k.poll(t0));
        assert_eq!((k.looks(), flags.requested()), (1, None));
        std::fs::write(&path, b"").unwrap();
        // Within the interval: no new look, the old answer stands.
        assert!(!k.poll(t0 + 50 * MS));
        assert!(!k.poll(t0 + 99 * MS));
        assert_eq!(k.looks(), 1);
        // Due: looks, sees it, raises the flag.
        assert!(k.poll(t0 + 100 * MS));
        assert_eq!(
            (k.looks(), flags.requested()),
            (2, Some(HaltReason::KillFile))
        );
        std::fs::remove_file(&path).unwrap();
        assert!(k.poll(t0 + 150 * MS));
        assert!(!k.poll(t0 + 200 * MS));
        assert_eq!((k.looks(), flags.requested()), (3, None));
        // A clock stepped back makes the look due at once (no stall until it catches up).
        std::fs::write(&path, b"").unwrap();
        assert!(k.poll(t0));
        assert_eq!(k.looks(), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_that_cannot_be_read_fails_closed() {
        // A path through a regular file is "not a directory", not "not found": present.
        let dir = std::env::temp_dir().join(format!("keel-kill-nd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("plain");
        std::fs::write(&file, b"").unwrap();
        let mut k = KillFile::new(file.join("keel.halt"), Duration::ZERO, KillFlags::new());
        assert!(k.poll(1));
        let mut k = KillFile::new(
            dir.join("absent/keel.halt"),
            Duration::ZERO,
            KillFlags::new(),
        );
        assert!(!k.poll(1));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn halt_file_round_trips_and_clears() {
        let dir = std::env::temp_dir().join(format!("keel-kill-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keel.halt");
        let _ = std::fs::remove_file(&path);
        assert!(!write_halt_file(&path, "fat\nfinger", 1_709_210_096_789 * MS).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "reason: fat finger\nat: 2024-02-29T12:34:56.789Z\nat_ns: 1709210096789000000\n"
        );
        assert_eq!(
            read_halt_file(&path),
            Some(HaltNote {
                reason: "fat finger".into(),
                at_ns: 1_709_210_096_789 * MS
            })
        );
        assert!(write_halt_file(&path, "again", 5).unwrap());
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        assert!(clear_halt_file(&path).unwrap());
        assert!(!clear_halt_file(&path).unwrap());
        assert_eq!(read_halt_file(&path), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sigusr1_raises_the_signal_flag() {
        let flags = KillFlags::new();
        flags.register_sigusr1().unwrap();
        assert_eq!(flags.requested(), None);
        signal_hook::low_level::raise(signal_hook::consts::SIGUSR1).unwrap();
        assert_eq!(flags.requested(), Some(HaltReason::Signal));
        flags.clear_signal();
        assert_eq!(flags.requested(), None);
    }
}
