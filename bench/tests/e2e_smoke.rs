//! `keel-bench e2e` end to end, tiny and short (a debug build): the JSON keys the issue
//! specifies are there and hedge decisions were measured on both stacks. No timing assertions:
//! the machine is shared and a debug build says nothing about latency.

use std::process::Command;

#[test]
fn e2e_runs_both_stacks_and_reports_the_json_keys() {
    let out_dir = std::env::temp_dir().join(format!("keel-e2e-smoke-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_keel-bench"))
        .args([
            "e2e",
            "--json",
            "--duration",
            "1.5",
            "--warmup",
            "0.5",
            "--options",
            "100",
            "--rate",
            "2000",
            "--every",
            "2",
        ])
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("keel-bench runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "keel-bench e2e failed: {stderr}");
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("--json prints one JSON object");
    for stack in ["keel", "conventional"] {
        for key in ["p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"] {
            assert!(
                v[stack][key].as_u64().is_some(),
                "{stack}.{key} missing in {v}"
            );
        }
        assert!(
            v[stack]["count"].as_u64().unwrap_or(0) > 0,
            "no {stack} decision measured: {v}"
        );
        assert!(
            v[stack]["wire_to_wire"]["count"].as_u64().unwrap_or(0) > 0,
            "no {stack} order matched with keel-sim's receipt: {v}"
        );
    }
    assert!(v["speedup_p50"].as_f64().is_some(), "{v}");
    for stage in ["read_parse", "ring_hop", "reprice", "decide", "send"] {
        assert!(
            v["keel"]["stages"][stage]["count"].as_u64().is_some(),
            "{v}"
        );
    }
    for f in [
        "keel_tick_to_trade.hgrm",
        "conventional_tick_to_trade.hgrm",
        "e2e_latency.svg",
    ] {
        let p = out_dir.join(f);
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        assert!(!text.is_empty(), "{} not written", p.display());
    }
    let hgrm = std::fs::read_to_string(out_dir.join("keel_tick_to_trade.hgrm")).unwrap();
    assert!(
        hgrm.contains("Percentile") && hgrm.contains("#[Max"),
        "{hgrm}"
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}
