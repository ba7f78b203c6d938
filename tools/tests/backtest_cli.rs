//! End-to-end tests of `keel backtest`, running the real binary: the JSON report's keys and
//! values, one-line errors naming the bad flag or policy, a recorded path file, a book file
//! and the frontier plot.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn keel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg("backtest")
        .args(args)
        .output()
        .expect("run keel")
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("UTF-8 output")
}

/// Exit code 2, nothing on stdout, one `error: ` line containing every needle.
fn assert_error(out: &Output, needles: &[&str]) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    assert_eq!(err.lines().count(), 1, "one line expected: {err:?}");
    assert!(err.starts_with("error: "), "{err:?}");
    for n in needles {
        assert!(err.contains(n), "{err:?} should contain {n:?}");
    }
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

const KEYS: [&str; 19] = [
    "policy",
    "family",
    "model",
    "paths",
    "steps",
    "seed",
    "cost_bps",
    "option_value",
    "mean_cost_pv",
    "std_cost_pv",
    "performance",
    "cost_fv",
    "mean_trades",
    "mean_turnover",
    "mean_fees",
    "mean_option_cost",
    "mean_option_trades",
    "mean_max_bucket_vega",
    "seconds",
];

#[test]
fn json_has_one_object_per_policy_with_the_documented_keys() {
    let args = [
        "--paths",
        "400",
        "--expiry",
        "0.25",
        "--steps-per-year",
        "104",
        "--cost-bps",
        "10",
        "--policy",
        "time:1w",
        "--policy",
        "ww:1",
        "--policy",
        "zak:1+band:0.5",
        "--json",
    ];
    let objs = json_lines(&keel(&args));
    assert_eq!(objs.len(), 3);
    for o in &objs {
        let keys: Vec<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
        for k in KEYS {
            assert!(keys.contains(&k), "missing {k} in {o}");
        }
        assert_eq!(keys.len(), KEYS.len(), "{o}");
        assert_eq!(o["paths"], 400);
        assert_eq!(o["steps"], 26);
        assert!(o["cost_fv"].is_null());
        let (v, std) = (
            o["option_value"].as_f64().unwrap(),
            o["std_cost_pv"].as_f64().unwrap(),
        );
        assert!((o["performance"].as_f64().unwrap() - std / v).abs() < 1e-12);
        assert!(o["mean_fees"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(objs[0]["policy"], "time:1w");
    assert_eq!(objs[0]["family"], "time");
    assert_eq!(objs[2]["family"], "zak+band");
    // Same seed, same numbers (the timing aside).
    let again = json_lines(&keel(&args));
    for (a, b) in objs.iter().zip(&again) {
        assert_eq!(a["mean_cost_pv"], b["mean_cost_pv"]);
        assert_eq!(a["std_cost_pv"], b["std_cost_pv"]);
    }
}

#[test]
fn bad_input_is_one_line_naming_the_flag() {
    assert_error(
        &keel(&["--policy", "ww:-1"]),
        &[
            "--policy",
            "ww:-1",
            "GAMMA must be a positive number",
            "band:DELTA",
        ],
    );
    assert_error(
        &keel(&["--policy", "wobble:1"]),
        &["unknown trigger kind 'wobble'"],
    );
    assert_error(&keel(&[]), &["--policy"]);
    assert_error(
        &keel(&["--policy", "ww:1", "--steps-per-year", "0"]),
        &["--steps-per-year 0"],
    );
    assert_error(&keel(&["--policy", "ww:1", "--paths", "0"]), &["--paths"]);
    assert_error(
        &keel(&["--policy", "ww:1", "--expiry", "-1"]),
        &["--expiry -1"],
    );
    assert_error(&keel(&["--policy", "ww:1", "--vol", "9"]), &["--vol 9"]);
    assert_error(
        &keel(&[
            "--policy",
            "ww:1",
            "--model",
            "jump",
            "--jump-intensity",
            "-2",
        ]),
        &["--jump-intensity -2"],
    );
    assert_error(
        &keel(&["--policy", "ww:1", "--model", "heston", "--rho", "1.5"]),
        &["--rho 1.5"],
    );
    assert_error(
        &keel(&["--policy", "ww:1", "--model", "path"]),
        &["--path-file"],
    );
    assert_error(
        &keel(&["--policy", "ww:1", "--model", "warp"]),
        &["'warp'", "--model"],
    );
}

#[test]
fn a_recorded_path_reports_its_single_cost() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "path.csv",
        "t_years,spot\n0,100\n0.0833333333333333,103\n0.1666666666666667,98\n0.25,105\n0.3,90\n",
    );
    let p = path.to_str().unwrap();
    let objs = json_lines(&keel(&[
        "--model",
        "path",
        "--path-file",
        p,
        "--expiry",
        "0.25",
        "--policy",
        "time:1d",
        "--json",
    ]));
    assert_eq!(objs.len(), 1);
    let o = &objs[0];
    assert_eq!(o["paths"], 1);
    assert_eq!(o["steps"], 3);
    assert_eq!(o["mean_trades"], 3.0);
    assert_eq!(o["std_cost_pv"], 0.0);
    // r = 0: the future and present values agree.
    assert_eq!(o["cost_fv"], o["mean_cost_pv"]);
    // The strike defaults to the path's first spot: an ATM call of about 4.
    let v = o["option_value"].as_f64().unwrap();
    assert!((3.9..4.1).contains(&v), "{v}");
    // The table shows cost_fv too.
    let out = keel(&[
        "--model",
        "path",
        "--path-file",
        p,
        "--expiry",
        "0.25",
        "--policy",
        "time:1d",
    ]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("cost_fv"),
        "{}",
        text(&out.stdout)
    );
    // A path that ends before the expiry, a bad row.
    assert_error(
        &keel(&[
            "--model",
            "path",
            "--path-file",
            p,
            "--expiry",
            "1",
            "--policy",
            "ww:1",
        ]),
        &["--path-file", "before the last expiry"],
    );
    let bad = write(dir.path(), "bad.csv", "0,100\n0.1,abc\n");
    assert_error(
        &keel(&[
            "--model",
            "path",
            "--path-file",
            bad.to_str().unwrap(),
            "--policy",
            "ww:1",
        ]),
        &["line 2", "spot 'abc'"],
    );
}

#[test]
fn a_book_and_a_frontier_plot() {
    let dir = tempfile::tempdir().unwrap();
    let book = write(
        dir.path(),
        "book.csv",
        "kind,strike,expiry_years,qty\ncall,100,0.25,-1\nput,95,0.5,-2\n",
    );
    let svg = dir.path().join("frontier.svg");
    let out = keel(&[
        "--book",
        book.to_str().unwrap(),
        "--paths",
        "300",
        "--steps-per-year",
        "104",
        "--cost-bps",
        "10",
        "--policy",
        "time:1w",
        "--policy",
        "time:2w",
        "--policy",
        "ww:0.5",
        "--policy",
        "ww:2",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("time:2w") && table.contains("ww:2"),
        "{table}"
    );
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(drawn.starts_with("<svg") && drawn.contains("ww") && drawn.contains("time"));
    let bad_book = write(dir.path(), "bad.csv", "call,100,0.25\n");
    assert_error(
        &keel(&["--book", bad_book.to_str().unwrap(), "--policy", "ww:1"]),
        &["--book", "line 1", "got 3 cells"],
    );
}

#[test]
fn gamma_vega_bands_run_each_policy_with_and_without_options() {
    let dir = tempfile::tempdir().unwrap();
    let book = write(
        dir.path(),
        "straddle.csv",
        "kind,strike,expiry_years,qty\ncall,100,0.083333,-10\nput,100,0.083333,-10\n",
    );
    let base = [
        "--model",
        "heston",
        "--mark-vol",
        "model",
        "--book",
        book.to_str().unwrap(),
        "--paths",
        "200",
        "--policy",
        "time:1d",
        "--gamma-band",
        "0.2",
        "--vega-band",
        "20",
        "--option-spread-vol",
        "0.005",
        "--hedge-option",
        "call:100:0.083333",
        "--hedge-option",
        "put:90:0.166667",
    ];
    let mut args = base.to_vec();
    args.push("--json");
    let objs = json_lines(&keel(&args));
    assert_eq!(objs.len(), 2);
    assert_eq!(objs[0]["policy"], "time:1d");
    assert_eq!(objs[1]["policy"], "time:1d +gv");
    assert_eq!(objs[0]["mean_option_trades"], 0.0);
    assert!(objs[1]["mean_option_cost"].as_f64().unwrap() > 0.0);
    assert!(objs[1]["std_cost_pv"].as_f64().unwrap() < objs[0]["std_cost_pv"].as_f64().unwrap());
    let table = text(&keel(&base).stdout);
    assert!(
        table.contains("gamma/vega hedging against delta only"),
        "{table}"
    );
    assert_error(
        &keel(&["--gamma-band", "0.2", "--policy", "time:1d"]),
        &["--hedge-option"],
    );
    assert_error(
        &keel(&[
            "--gamma-band",
            "0.2",
            "--hedge-option",
            "call:100",
            "--policy",
            "time:1d",
        ]),
        &["--hedge-option", "KIND:STRIKE:EXPIRY_YEARS"],
    );
    assert_error(
        &keel(&[
            "--gamma-band",
            "-1",
            "--hedge-option",
            "call:100:0.1",
            "--policy",
            "time:1d",
        ]),
        &["--gamma-band", "must be > 0"],
    );
}
