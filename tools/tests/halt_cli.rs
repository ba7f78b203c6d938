//! End-to-end tests of `keel halt`, running the real binary in a temporary directory, and of the
//! engine's side reading what it wrote (the kill-file poll and the risk gate).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use keel_engine::risk::{
    HaltReason, KillFile, KillFlags, OrderCheck, RiskGate, RiskLimits, RiskState, read_halt_file,
};

fn keel(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run keel")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("UTF-8")
}

#[test]
fn halt_writes_the_default_file_and_clear_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keel.halt");
    let before = keel_feeds::clock::now_ns();
    let o = keel(dir.path(), &["halt", "--reason", "venue incident"]);
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    assert!(out.starts_with("halted: keel.halt written at "), "{out}");
    assert!(out.trim_end().ends_with(": venue incident"), "{out}");
    let note = read_halt_file(&path).expect("a halt note");
    assert_eq!(note.reason, "venue incident");
    assert!(note.at_ns >= before && note.at_ns <= keel_feeds::clock::now_ns());
    // Nothing else in the directory (the temporary file was renamed into place).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    // Again: replaces, says so.
    let o = keel(dir.path(), &["halt", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["action"], "halted");
    assert_eq!(v["replaced"], true);
    assert_eq!(v["reason"], "keel halt");
    assert_eq!(v["path"], "keel.halt");
    assert!(v["at"].as_str().unwrap().ends_with('Z'));

    let o = keel(dir.path(), &["halt", "--clear"]);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("cleared: keel.halt removed"));
    assert!(!path.exists());
    let o = keel(dir.path(), &["halt", "--clear", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["action"], "absent");
}

#[test]
fn halt_file_flag_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("run");
    std::fs::create_dir(&sub).unwrap();
    let path = sub.join("desk.halt");
    let p = path.to_str().unwrap();
    let o = keel(dir.path(), &["halt", "--file", p, "--reason", "two\nlines"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(read_halt_file(&path).unwrap().reason, "two lines");
    // --reason with --clear is a usage error: one line, exit 2.
    let o = keel(dir.path(), &["halt", "--clear", "--reason", "x"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    // A directory that does not exist: one error line naming the file.
    let o = keel(dir.path(), &["halt", "--file", "nowhere/keel.halt"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.starts_with("error: writing the halt file nowhere/keel.halt"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn the_engine_side_halts_on_the_file_keel_halt_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keel.halt");
    let flags = KillFlags::new();
    let mut file = KillFile::new(&path, Duration::from_millis(100), flags.clone());
    let mut gate = RiskGate::new(RiskLimits::default(), flags).unwrap();
    let t0 = 1_700_000_000_000_000_000u64;
    let order = OrderCheck {
        coin: -0.1,
        notional_usd: 10_000.0,
        position_coin: 0.0,
        exposure_coin: 0.5,
    };
    assert!(!file.poll(t0));
    assert_eq!(gate.check(&order, t0), Ok(()));

    assert!(
        keel(dir.path(), &["halt", "--reason", "test"])
            .status
            .success()
    );
    // Not looked at again before the poll interval: the gate still passes.
    assert!(!file.poll(t0 + 50_000_000));
    assert_eq!(gate.check(&order, t0 + 50_000_000), Ok(()));
    assert!(file.poll(t0 + 100_000_000));
    let veto = gate.check(&order, t0 + 100_000_001).unwrap_err();
    assert_eq!(veto.to_string(), "halted: kill_file");
    assert_eq!(gate.state(), RiskState::Halted);
    assert!(gate.take_cancel_all());

    // Cleared: still halted until resumed; resume refused while the file is there.
    assert!(keel(dir.path(), &["halt"]).status.success());
    assert!(gate.resume(t0 + 200_000_000).is_err());
    assert!(keel(dir.path(), &["halt", "--clear"]).status.success());
    file.poll(t0 + 300_000_000);
    assert_eq!(gate.poll(t0 + 300_000_000), RiskState::Halted);
    gate.resume(t0 + 300_000_000).unwrap();
    assert_eq!(gate.state(), RiskState::Active);
    assert_eq!(
        gate.last_transition().map(|t| t.reason),
        Some(HaltReason::Resumed)
    );
}
