//! End-to-end tests of `keel greeks`, running the real binary.
//!
//! They live in keel-tools (not keel-tests) because Cargo sets `CARGO_BIN_EXE_keel` only for
//! integration tests of the package that owns the binary, and builds that binary first; so
//! `cargo test --workspace` and `cargo test -p keel-tools` both run them with no extra step.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use keel_engine::greeks::{GreekValues, OptionKind, OptionRow, greeks_one, to_coin};

const OUT_COLS: [&str; 8] = GreekValues::NAMES;

/// Runs `keel` with `args`, feeding `stdin` if given.
fn keel(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start keel");
    if let Some(data) = stdin {
        // keel may exit (bad arguments) before reading its input: a broken pipe here is that,
        // not a failure; the exit status and output below are what the test checks.
        let _ = child.stdin.take().unwrap().write_all(data);
    }
    child.wait_with_output().expect("run keel")
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("UTF-8 output")
}

/// Asserts a failure: exit code 2, nothing on stdout, exactly one `error: ` line on stderr
/// containing every one of `needles`; returns that line.
fn assert_error(out: &Output, needles: &[&str]) -> String {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    assert_eq!(err.lines().count(), 1, "one line expected: {err:?}");
    assert!(err.starts_with("error: ") && err.ends_with('\n'), "{err:?}");
    for n in needles {
        assert!(err.contains(n), "{err:?} should contain {n:?}");
    }
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    err
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// |a − b| ≤ rel·max(|a|,|b|) + abs.
fn close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    a.is_finite() && b.is_finite() && (a - b).abs() <= rel * a.abs().max(b.abs()) + abs
}

/// Parses output CSV into (header, rows of cells).
fn read_csv(data: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rdr = csv::Reader::from_reader(data);
    let header = rdr.headers().unwrap().iter().map(String::from).collect();
    let rows = rdr
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

/// The eight outputs of a row, parsed from the last eight cells.
fn greeks_of(row: &[String]) -> [f64; 8] {
    let tail = &row[row.len() - 8..];
    std::array::from_fn(|j| tail[j].parse::<f64>().expect("a number"))
}

fn assert_greeks(label: &str, got: [f64; 8], want: &GreekValues, rel: f64, abs: f64) {
    for (j, (g, w)) in got.iter().zip(want.to_array()).enumerate() {
        assert!(
            close(*g, w, rel, abs),
            "{label} {}: got {g}, want {w}",
            OUT_COLS[j]
        );
    }
}

const CASES: &str = "\
kind,model,s,k,t,r,q,sigma,inverse
call,bsm,100,100,0.5,0.01,0.0,0.3,0
put,bsm,100,90,1,0.02,0.01,0.25,0
call,black76,3000,3200,0.25,0.03,0,0.65,0
put,black76,60000,55000,0.1,0.0,0,0.7,1
";

fn case_rows() -> Vec<(OptionRow, bool)> {
    vec![
        (
            OptionRow::bsm(OptionKind::Call, 100.0, 100.0, 0.5, 0.01, 0.0, 0.3),
            false,
        ),
        (
            OptionRow::bsm(OptionKind::Put, 100.0, 90.0, 1.0, 0.02, 0.01, 0.25),
            false,
        ),
        (
            OptionRow::black76(OptionKind::Call, 3000.0, 3200.0, 0.25, 0.03, 0.65),
            false,
        ),
        (
            OptionRow::black76(OptionKind::Put, 60000.0, 55000.0, 0.1, 0.0, 0.7),
            true,
        ),
    ]
}

fn expected(row: &OptionRow, inverse: bool) -> GreekValues {
    let g = greeks_one(row).unwrap();
    if inverse {
        to_coin(&g, row.forward())
    } else {
        g
    }
}

#[test]
fn round_trip_matches_the_scalar_reference() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "cases.csv", CASES);
    let output = dir.path().join("out.csv");
    let out = keel(
        &[
            "greeks",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        out.stdout.is_empty(),
        "CSV went to the file, nothing on stdout"
    );
    let summary = text(&out.stderr);
    assert_eq!(summary.lines().count(), 1, "{summary}");
    assert!(
        summary.contains("4 rows") && summary.contains("out.csv"),
        "{summary}"
    );

    let (header, rows) = read_csv(&std::fs::read(&output).unwrap());
    let mut want_header: Vec<&str> = CASES.lines().next().unwrap().split(',').collect();
    want_header.extend(OUT_COLS);
    assert_eq!(header, want_header);
    assert_eq!(rows.len(), 4);
    for (i, ((row, inverse), cells)) in case_rows().iter().zip(&rows).enumerate() {
        let want = expected(row, *inverse);
        let scale = if *inverse { 1.0 } else { row.s.max(row.k) };
        assert_greeks(
            &format!("row {i}"),
            greeks_of(cells),
            &want,
            1e-11,
            1e-13 * scale,
        );
    }
    // The inverse row really is in coin: a put on BTC at 60000 is worth a fraction of a coin.
    let coin_price = greeks_of(&rows[3])[0];
    assert!(coin_price > 0.0 && coin_price < 0.1, "{coin_price}");
    // No temporary file left beside the output.
    assert_eq!(files_in(dir.path()), ["cases.csv", "out.csv"]);
}

#[test]
fn input_columns_come_back_in_their_order_and_verbatim() {
    // Shuffled columns, no inverse column, odd but valid spellings of the cells.
    let input = "\
sigma,K,s,kind,t,model,q,r
0.30,100.000,1e2,CALL,0.50,BSM,0,0.010
 0.25,90,100.0,Put,1,bsm,0.01,0.02
";
    // `K` is not a column name (names are lower case): first check it is refused...
    let out = keel(&["greeks", "--input", "-"], Some(input.as_bytes()));
    assert_error(&out, &["<stdin> line 1", "unknown column \"K\""]);
    // ...then use the right name.
    let input = input.replacen("K", "k", 1);
    let out = keel(&["greeks", "--input", "-"], Some(input.as_bytes()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        out.stderr.is_empty(),
        "no summary when the CSV goes to stdout"
    );
    let got = text(&out.stdout);
    let (got_lines, in_lines): (Vec<&str>, Vec<&str>) =
        (got.lines().collect(), input.lines().collect());
    assert_eq!(got_lines.len(), 3);
    assert_eq!(
        got_lines[0],
        format!("{},{}", in_lines[0], OUT_COLS.join(","))
    );
    for (g, i) in got_lines.iter().zip(&in_lines).skip(1) {
        let rest = g
            .strip_prefix(&format!("{i},"))
            .unwrap_or_else(|| panic!("{g:?} should start with {i:?}"));
        assert_eq!(rest.split(',').count(), 8, "{g}");
    }
    let (_, rows) = read_csv(got.as_bytes());
    let want = expected(
        &OptionRow::bsm(OptionKind::Call, 100.0, 100.0, 0.5, 0.01, 0.0, 0.3),
        false,
    );
    assert_greeks("shuffled", greeks_of(&rows[0]), &want, 1e-11, 1e-11);
}

#[test]
fn a_bad_row_names_its_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.csv");
    let out_arg = output.to_str().unwrap().to_string();
    let cases: [(&str, &[&str]); 10] = [
        // sigma <= 0, refused by the engine's validation, on line 4 (after a blank line 3).
        (
            "kind,model,s,k,t,r,q,sigma\ncall,bsm,100,100,0.5,0.01,0,0.3\n\nput,bsm,100,100,0.5,0.01,0,0\n",
            &["bad.csv line 4: sigma must be > 0 (got 0)"],
        ),
        (
            "kind,model,s,k,t,r,q,sigma\r\ncall,bsm,100,100,0.5,0.01,0,0.3\r\ncall,bsm,abc,100,0.5,0.01,0,0.3\r\n",
            &["bad.csv line 3: s is not a number (got \"abc\")"],
        ),
        (
            "kind,model,s,k,t,r,q,sigma\ncall,bsm,100,100,0.5,0.01,0\n",
            &["bad.csv line 2: expected 8 fields as in the header, found 7"],
        ),
        (
            "kind,model,s,k,t,r,q,sigma\nstraddle,bsm,100,100,0.5,0.01,0,0.3\n",
            &["bad.csv line 2: kind must be call or put (got \"straddle\")"],
        ),
        (
            "kind,model,s,k,t,r,q,sigma\ncall,heston,100,100,0.5,0.01,0,0.3\n",
            &["bad.csv line 2: model must be bsm or black76 (got \"heston\")"],
        ),
        (
            "kind,model,s,k,t,r,q,sigma,inverse\ncall,bsm,100,100,0.5,0.01,0,0.3,yes\n",
            &["bad.csv line 2: inverse must be 0 or 1 (got \"yes\")"],
        ),
        (
            "kind,model,s,k,t,r,q,sigma\ncall,bsm,100,100,0.5,0.01,0,NaN\n",
            &["bad.csv line 2: sigma is not a finite number"],
        ),
        (
            "kind,model,s,k,t,r,q,sigma,inverse\ncall,bsm,60000,60000,0.5,0.05,0,0.6,1\n",
            &["bad.csv line 2: inverse=1 needs model black76"],
        ),
        (
            "kind,model,s,k,t,r,q,sigma\ncall,black76,100,100,0.5,0.01,NaN,0.3\n",
            &["bad.csv line 2: q is not a finite number"],
        ),
        (
            "kind,model,s,k,t,r,q,sigma\ncall,bsm,1e300,100,0.5,0.01,0,0.3\n",
            &["bad.csv line 2: s = 1e300 is outside the supported range 1e-12 ..= 1e15"],
        ),
    ];
    for (content, needles) in cases {
        let input = write(dir.path(), "bad.csv", content);
        let out = keel(
            &[
                "greeks",
                "--input",
                input.to_str().unwrap(),
                "--output",
                &out_arg,
            ],
            None,
        );
        assert_error(&out, needles);
        assert_eq!(
            files_in(dir.path()),
            ["bad.csv"],
            "nothing written for {content:?}"
        );
    }

    // An existing output file is left as it was.
    std::fs::write(&output, "old contents\n").unwrap();
    let input = write(dir.path(), "bad.csv", cases[0].0);
    let out = keel(
        &[
            "greeks",
            "--input",
            input.to_str().unwrap(),
            "--output",
            &out_arg,
        ],
        None,
    );
    assert_error(&out, &["line 4"]);
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "old contents\n");
    assert_eq!(files_in(dir.path()), ["bad.csv", "out.csv"]);

    // To stdout, nothing is printed either.
    let out = keel(&["greeks", "--input", "-"], Some(cases[0].0.as_bytes()));
    assert_error(&out, &["<stdin> line 4: sigma must be > 0 (got 0)"]);
}

#[test]
fn header_errors_name_the_column() {
    let out = keel(
        &["greeks", "--input", "-"],
        Some(b"kind,model,s,k,t,r,q,sigma,vol\ncall,bsm,100,100,0.5,0.01,0,0.3,0.3\n"),
    );
    assert_error(&out, &["line 1", "unknown column \"vol\""]);
    let out = keel(
        &["greeks", "--input", "-"],
        Some(b"kind,model,s,k,t,r,sigma\n"),
    );
    assert_error(&out, &["line 1", "missing column q"]);
    let out = keel(&["greeks", "--input", "-"], Some(b""));
    assert_error(&out, &["<stdin>: empty input"]);
    let out = keel(&["greeks", "--input", "/nonexistent/cases.csv"], None);
    assert_error(&out, &["reading /nonexistent/cases.csv"]);
}

#[test]
fn bad_arguments_are_one_line_errors() {
    let out = keel(
        &["greeks", "--input", "-", "--precision", "f16"],
        Some(CASES.as_bytes()),
    );
    assert_error(&out, &["--precision", "f16", "f64, f32"]);
    let out = keel(&["greeks"], None);
    assert_error(&out, &["--input"]);
    let out = keel(&["frobnicate"], None);
    assert_error(&out, &["frobnicate"]);
}

#[test]
fn json_summary() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "cases.csv", CASES);
    let output = dir.path().join("out.csv");
    let out = keel(
        &[
            "greeks",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--json",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["rows"], 4);
    assert_eq!(v["precision"], "f64");
    assert_eq!(v["output"], output.to_str().unwrap());
    let secs = v["price_seconds"].as_f64().unwrap();
    let ns = v["ns_per_option"].as_f64().unwrap();
    assert!(secs >= 0.0 && ns >= 0.0 && (ns - secs * 1e9 / 4.0).abs() <= 1e-6 * ns.max(1.0));
    assert!(v["total_seconds"].as_f64().unwrap() >= secs);
    assert_eq!(read_csv(&std::fs::read(&output).unwrap()).1.len(), 4);

    // Without --output: the JSON alone on stdout, output null, no CSV anywhere.
    let out = keel(
        &["greeks", "--input", "-", "--json", "--precision", "f32"],
        Some(CASES.as_bytes()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"], 4);
    assert_eq!(v["precision"], "f32");
    assert!(v["output"].is_null());

    // No rows: a header alone is fine, ns_per_option is null.
    let out = keel(
        &["greeks", "--input", "-", "--json"],
        Some(b"kind,model,s,k,t,r,q,sigma\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"], 0);
    assert!(v["ns_per_option"].is_null());
}

#[test]
fn f32_precision_is_close_to_f64() {
    let out = keel(
        &["greeks", "--input", "-", "--precision", "f32"],
        Some(CASES.as_bytes()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (header, rows) = read_csv(&out.stdout);
    assert_eq!(header.len(), 9 + 8);
    assert_eq!(rows.len(), 4);
    for (i, ((row, inverse), cells)) in case_rows().iter().zip(&rows).enumerate() {
        let want = expected(row, *inverse);
        let got = greeks_of(cells);
        // Single precision, inputs rounded to f32: loose bounds on the hedge Greeks.
        let scale = if *inverse { 1.0 } else { row.s.max(row.k) };
        assert!(
            close(got[0], want.price, 1e-4, 1e-5 * scale),
            "row {i} price {} vs {}",
            got[0],
            want.price
        );
        assert!(
            close(got[1], want.delta, 1e-4, 1e-5),
            "row {i} delta {} vs {}",
            got[1],
            want.delta
        );
        assert!(got.iter().all(|x| x.is_finite()), "row {i}: {got:?}");
    }
}

#[test]
fn stdin_and_stdout() {
    let out = keel(&["greeks", "--input", "-"], Some(CASES.as_bytes()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (header, rows) = read_csv(&out.stdout);
    assert_eq!(
        header[..9],
        ["kind", "model", "s", "k", "t", "r", "q", "sigma", "inverse"]
    );
    assert_eq!(rows.len(), 4);
    let want = expected(&case_rows()[0].0, false);
    assert_greeks("stdin", greeks_of(&rows[0]), &want, 1e-11, 1e-11);
}

#[test]
fn help_and_version() {
    let out = keel(&["--help"], None);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(help.contains("options hedging engine"), "{help}");
    assert!(help.contains("greeks"), "{help}");

    let out = keel(&["greeks", "--help"], None);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for s in [
        "--input",
        "--output",
        "--precision",
        "--json",
        "kind",
        "sigma",
        "inverse",
        "vega",
    ] {
        assert!(help.contains(s), "greeks --help should mention {s}: {help}");
    }

    let out = keel(&["--version"], None);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("keel {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn output_through_a_symlink_keeps_the_link_and_refuses_special_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "cases.csv", CASES);
    let target = dir.path().join("target.csv");
    std::fs::write(&target, "old\n").unwrap();
    let link = dir.path().join("link.csv");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = keel(
        &[
            "greeks",
            "--input",
            input.to_str().unwrap(),
            "--output",
            link.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link is still a link"
    );
    let written = std::fs::read_to_string(&target).unwrap();
    assert!(
        written.starts_with("kind,model,s,k,t,r,q,sigma,inverse,price,"),
        "{written}"
    );

    // A FIFO (or a device) is not replaced by a regular file: refused with one line.
    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo");
    let out = keel(
        &[
            "greeks",
            "--input",
            input.to_str().unwrap(),
            "--output",
            fifo.to_str().unwrap(),
        ],
        None,
    );
    assert_error(&out, &["not a regular file"]);
    let ft = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    use std::os::unix::fs::FileTypeExt;
    assert!(ft.is_fifo(), "the FIFO is still a FIFO");
}
