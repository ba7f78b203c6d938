//! `keel run` as a user runs it: the built binary on the embedded simulated venue, a short
//! `--duration`, the summary as one JSON object on standard output, the status on standard
//! error; and bad flags as one-line errors.

use std::process::Command;

fn keel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keel"))
}

#[test]
fn run_on_the_embedded_venue_prints_a_json_summary() {
    let out = keel()
        .args([
            "run",
            "--duration",
            "3s",
            "--json",
            "--dev",
            "--delta-band",
            "0.05",
            "--sim-options",
            "200",
        ])
        .output()
        .expect("keel runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    for key in [
        "ticks",
        "reprices",
        "skipped_ticks",
        "hedges",
        "fills",
        "ring_full",
        "delta_before",
        "delta_after",
        "max_abs_delta_excursion",
        "tick_to_trade_ns",
        "stage_ns",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    for p in ["p50", "p90", "p99", "p999", "max"] {
        assert!(v["tick_to_trade_ns"][p].is_u64(), "{v}");
    }
    for stage in ["read_parse", "ring_hop", "reprice", "decide", "send"] {
        assert!(v["stage_ns"][stage]["p50"].is_u64(), "{stage}: {v}");
        assert!(v["stage_ns"][stage]["p99"].is_u64(), "{stage}: {v}");
    }
    assert!(v["ticks"].as_u64().unwrap() > 0, "{v}");
    assert!(v["reprices"].as_u64().unwrap() > 0, "{v}");
    assert!(v["hedges"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["book_options"].as_u64().unwrap() == 200, "{v}");
    assert!(stderr.contains("keel run:"), "{stderr}");
    assert!(stderr.contains("ticks"), "status lines: {stderr}");
}

#[test]
fn bad_flags_are_one_line_errors() {
    for (args, want) in [
        (vec!["run", "--duration", "soon"], "--duration"),
        (vec!["run", "--topology", "mesh"], "topology"),
        (vec!["run", "--pin", "feed=x"], "--pin"),
        (vec!["run", "--delta-band", "-1"], "--delta-band"),
        (
            vec!["run", "--positions", "/nonexistent/book.csv"],
            "/nonexistent/book.csv",
        ),
    ] {
        let out = keel().args(&args).output().expect("keel runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn pinning_to_a_core_that_does_not_exist_fails_unless_dev() {
    let out = keel()
        .args(["run", "--duration", "1s", "--pin", "exec=999"])
        .output()
        .expect("keel runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("999"), "{err}");
}
