//! `keel run`'s configuration: precedence (defaults < keel.toml < flags), the file's errors,
//! validation of flags, the dry-run rules, and `keel config show` end to end (redaction, help).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use clap::Parser;
use keel_tools::run_config::{RunArgs, RunConfig, Stage, Wait, resolve, show_with};

/// `keel run`'s flags as a command line of their own.
#[derive(Parser, Debug)]
struct Flags {
    #[command(flatten)]
    run: RunArgs,
}

fn args(flags: &[&str]) -> RunArgs {
    let argv = std::iter::once("keel-run").chain(flags.iter().copied());
    Flags::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("{flags:?}: {e}"))
        .run
}

fn resolved(flags: &[&str]) -> RunConfig {
    resolve(&args(flags)).unwrap_or_else(|e| panic!("{flags:?}: {e:#}"))
}

/// The one-line error of resolving `flags`.
fn error(flags: &[&str]) -> String {
    match resolve(&args(flags)) {
        Ok(cfg) => panic!("{flags:?} resolved to {cfg:?}"),
        Err(e) => {
            let text = format!("{e:#}");
            assert!(!text.contains('\n'), "not one line: {text}");
            text
        }
    }
}

/// A keel.toml with `text` in a fresh folder (kept alive by the returned guard).
fn toml_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keel.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn with_file(path: &Path, flags: &[&str]) -> Vec<String> {
    let mut v = vec!["--config".to_owned(), path.display().to_string()];
    v.extend(flags.iter().map(|s| s.to_string()));
    v
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The one-line error of resolving just `--config` a keel.toml holding `text`.
fn file_error(text: &str) -> String {
    let (_dir, path) = toml_file(text);
    error(&strs(&with_file(&path, &[])))
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn defaults_run_dry_on_the_simulated_venue() {
    let cfg = resolved(&[]);
    assert_eq!(cfg, {
        let mut d = RunConfig::defaults();
        d.hedge_instrument = Some("BTC-PERPETUAL".into());
        d
    });
    assert!(cfg.uses_sim());
    assert!(cfg.enabled_venues().is_empty());
    assert!(cfg.dry_run_with(&no_env));
    assert_eq!(cfg.status_every, Duration::from_secs(1));
    assert_eq!(cfg.stale_after, Duration::from_secs(2));
    assert_eq!(cfg.sim.rate, 20_000);
    assert_eq!(cfg.sim.options, 1_000);
    assert_eq!(cfg.reprice, "f32");
    assert_eq!(resolved(&["--reprice", "f64"]).reprice, "f64");
    let fees: Vec<f64> = cfg.venues().iter().map(|(_, v)| v.fee_bps).collect();
    assert_eq!(fees, [3.0, 5.0, 5.0, 5.5, 30.0]);
}

#[test]
fn flags_win_over_the_file_which_wins_over_defaults() {
    let (_dir, path) = toml_file(
        r#"
duration = "2m"
delta_band = 0.5
live = true
[sim]
seed = 9
[deribit]
url = "ws://127.0.0.1:9000/ws/api/v2"
fee_bps = 2.0
timeout_ms = 250
"#,
    );
    let flags = with_file(
        &path,
        &[
            "--delta-band",
            "0.25",
            "--deribit-fee-bps",
            "1.5",
            "--live=false",
        ],
    );
    let cfg = resolved(&strs(&flags));
    assert_eq!(cfg.delta_band, 0.25, "flag over file");
    assert_eq!(cfg.deribit.fee_bps, 1.5, "flag over file");
    assert!(!cfg.live, "--live=false over live = true");
    assert_eq!(
        cfg.duration,
        Some(Duration::from_secs(120)),
        "file over default"
    );
    assert_eq!(cfg.deribit.timeout_ms, 250, "file over default");
    assert_eq!(cfg.sim.seed, 9, "file over default");
    assert_eq!(cfg.binance.fee_bps, 5.0, "default");
    assert_eq!(cfg.delta_target, 0.0, "default");
    assert!(cfg.deribit.enabled, "a url enables the venue");
    assert!(!cfg.uses_sim());
}

#[test]
fn unknown_keys_are_errors_naming_key_file_and_line() {
    let e = file_error("delta_band = 1.0\n[deribit]\nurl = \"ws://h/ws\"\nfee_bp = 2\n");
    assert!(e.contains("/keel.toml:4: deribit:"), "{e}");
    assert!(e.contains("unknown key `fee_bp`"), "{e}");
    assert!(e.contains("deribit"), "{e}");

    let e = file_error("durationn = \"3s\"\n");
    assert!(
        e.contains("keel.toml:1:") && e.contains("`durationn`"),
        "{e}"
    );
}

#[test]
fn a_secret_value_in_the_file_is_refused_without_echoing_it() {
    for key in ["key", "secret", "api_key", "private_key"] {
        let text = format!("[binance]\nurl = \"wss://h/ws\"\n{key} = \"hunter2-secret\"\n");
        let e = file_error(&text);
        assert!(e.contains(&format!("keel.toml:3: binance.{key}")), "{e}");
        assert!(
            e.contains(
                "put the secret in an environment variable and name it with key_env/secret_env"
            ),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "echoes the secret: {e}");
    }
    let e = file_error("private_key = \"0xabc\"\n");
    assert!(
        e.contains("keel.toml:1: private_key") && !e.contains("0xabc"),
        "{e}"
    );
}

#[test]
fn a_key_given_where_a_variable_name_belongs_is_refused_without_echoing_it() {
    let e = error(&["--okx-key-env", "a1b2c3d4-secret-key"]);
    assert!(
        e.starts_with("--okx-key-env (value not shown): must be the NAME"),
        "{e}"
    );
    assert!(!e.contains("a1b2c3d4"), "{e}");
}

#[test]
fn type_and_syntax_errors_name_key_file_and_line() {
    let e = file_error("json = true\n\n[deribit]\nfee_bps = \"cheap\"\n");
    assert!(
        e.contains("/keel.toml:4: deribit.fee_bps: invalid type: string \"cheap\""),
        "{e}"
    );

    let e = file_error("[sim\nseed = 1\n");
    assert!(e.contains("keel.toml:1:"), "{e}");
}

#[test]
fn a_missing_file_is_named() {
    let e = error(&["--config", "/nonexistent/keel.toml"]);
    assert!(
        e.starts_with("--config /nonexistent/keel.toml: cannot read the file"),
        "{e}"
    );
}

#[test]
fn durations_are_checked_from_flags_and_file() {
    assert_eq!(
        resolved(&["--duration", "90"]).duration,
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        resolved(&["--duration", "500ms"]).duration,
        Some(Duration::from_millis(500))
    );
    assert_eq!(
        resolved(&["--status-every", "0"]).status_every,
        Duration::ZERO
    );
    let e = error(&["--duration", "3x"]);
    assert!(e.starts_with("--duration 3x: not a duration"), "{e}");
    let e = error(&["--stale-after", "0s"]);
    assert_eq!(e, "--stale-after 0s: must be > 0");
    let e = file_error("\n[sim]\nsilent_after = \"soon\"\n");
    assert!(
        e.contains("keel.toml:3: sim.silent_after = soon: not a duration"),
        "{e}"
    );
}

#[test]
fn urls_are_checked() {
    for (url, why) in [
        ("http://h/ws", "scheme must be ws:// or wss://"),
        ("wss://", "missing host"),
        ("ws://h:99999/ws", "port is not a number"),
        ("h/ws", "no scheme"),
    ] {
        let e = error(&["--binance-url", url]);
        assert!(e.starts_with(&format!("--binance-url {url}: {why}")), "{e}");
    }
    let cfg = resolved(&["--eth-url", "ws://[::1]:8546"]);
    assert!(cfg.eth.enabled);
}

#[test]
fn pins_and_waits_are_checked() {
    let cfg = resolved(&[
        "--pin",
        "feed=0,pricer=1",
        "--wait",
        "park,feed=spin",
        "--topology",
        "fused",
    ]);
    assert_eq!(cfg.pins(), [(Stage::Feed, 0), (Stage::Pricer, 1)]);
    assert_eq!(cfg.wait_plan().for_stage(Stage::Feed), Some(Wait::Spin));
    assert_eq!(cfg.wait_plan().for_stage(Stage::Exec), Some(Wait::Park));
    for (flags, want) in [
        (
            &["--pin", "feed=2;pricer=3"][..],
            "--pin feed=2;pricer=3: core \"2;pricer=3\"",
        ),
        (
            &["--pin", "feed=2,feed=3"][..],
            "--pin feed=2,feed=3: stage feed given twice",
        ),
        (
            &["--pin", "fed=2"][..],
            "--pin fed=2: unknown stage \"fed\"",
        ),
        (
            &["--wait", "sleep"][..],
            "--wait sleep: unknown wait strategy",
        ),
        (
            &["--topology", "shared"][..],
            "--topology shared: must be dedicated, fused or single",
        ),
        (
            &["--reprice", "f16"][..],
            "--reprice f16: must be f32 or f64",
        ),
    ] {
        let e = error(flags);
        assert!(e.starts_with(want), "{flags:?}: {e}");
    }
}

#[test]
fn venues_may_share_a_feed_core_but_not_another_stages() {
    let cfg = resolved(&[
        "--deribit-url",
        "ws://h/ws",
        "--deribit-pin",
        "2",
        "--binance-url",
        "ws://h/ws",
        "--binance-pin",
        "2",
        "--pin",
        "feed=2,pricer=3",
    ]);
    assert_eq!((cfg.deribit.pin, cfg.binance.pin), (Some(2), Some(2)));
    let e = error(&[
        "--okx-url",
        "ws://h/ws",
        "--okx-pin",
        "3",
        "--pin",
        "feed=2,pricer=3",
    ]);
    assert!(e.contains("--okx-pin") && e.contains("pricer"), "{e}");
    // Fused: feed and pricer share one thread, so its core is the connection's too.
    resolved(&[
        "--okx-url",
        "ws://h/ws",
        "--okx-pin",
        "3",
        "--pin",
        "feed=2,pricer=3",
        "--topology",
        "fused",
    ]);
}

#[test]
fn numbers_are_checked() {
    for (flag, value, why) in [
        ("--deribit-fee-bps", "-1", "must be >= 0"),
        ("--bybit-max-order", "0", "must be > 0"),
        ("--okx-timeout-ms", "0", "must be > 0"),
        ("--eth-rate-limit", "0", "must be > 0"),
        ("--delta-band", "-0.5", "must be > 0"),
        ("--sim-options", "0", "must be > 0"),
        ("--sim-malformed-rate", "1.5", "must be between 0 and 1"),
    ] {
        assert_eq!(error(&[flag, value]), format!("{flag} {value}: {why}"));
    }
    assert_eq!(resolved(&["--delta-target", "-2.5"]).delta_target, -2.5);
}

#[test]
fn enabling_follows_the_url_unless_disabled() {
    let cfg = resolved(&["--okx-url", "wss://h/ws", "--okx-enabled", "false"]);
    assert!(!cfg.okx.enabled && cfg.uses_sim());
    let cfg = resolved(&["--deribit-enabled"]);
    assert!(cfg.deribit.enabled);
    assert_eq!(
        cfg.deribit.url.as_deref(),
        Some("wss://www.deribit.com/ws/api/v2")
    );
    let e = error(&["--eth-enabled"]);
    assert!(e.starts_with("--eth-enabled true: needs --eth-url"), "{e}");
}

#[test]
fn the_hedge_instrument_defaults_to_the_first_enabled_venues_perpetual() {
    let cfg = resolved(&["--bybit-url", "ws://h/ws", "--okx-url", "ws://h/ws"]);
    let names: Vec<&str> = cfg.enabled_venues().iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["okx", "bybit"]);
    assert_eq!(cfg.hedge_instrument.as_deref(), Some("BTC-USDT-SWAP"));
    let cfg = resolved(&["--binance-url", "ws://h/ws", "--underlying", "ETH"]);
    assert_eq!(cfg.hedge_instrument.as_deref(), Some("ETHUSDT"));
    let cfg = resolved(&["--eth-url", "ws://h/ws", "--deribit-url", "ws://h/ws"]);
    assert_eq!(cfg.hedge_instrument.as_deref(), Some("BTC-PERPETUAL"));
    let cfg = resolved(&["--eth-url", "ws://h/ws"]);
    assert_eq!(
        cfg.hedge_instrument, None,
        "an Ethereum node lists no perpetual"
    );
    let e = error(&["--underlying", "ETH"]);
    assert!(e.contains("lists only BTC"), "{e}");
}

#[test]
fn paths_in_the_file_are_relative_to_its_folder() {
    let (dir, path) = toml_file(
        "positions = \"book.csv\"\n[deribit]\nurl = \"wss://h/ws\"\nca_file = \"ca.pem\"\n",
    );
    let e = error(&strs(&with_file(&path, &[])));
    assert!(
        e.contains("keel.toml:1: positions = book.csv: cannot read"),
        "{e}"
    );
    std::fs::write(dir.path().join("book.csv"), "instrument,quantity\n").unwrap();
    std::fs::write(dir.path().join("ca.pem"), "").unwrap();
    let cfg = resolved(&strs(&with_file(&path, &[])));
    assert_eq!(cfg.positions, Some(dir.path().join("book.csv")));
    assert_eq!(cfg.deribit.ca_file, Some(dir.path().join("ca.pem")));
    let e = error(&["--positions", "book.txt"]);
    assert_eq!(e, "--positions book.txt: must be a .csv or .json file");
}

#[test]
fn dry_run_needs_live_and_every_enabled_venues_keys() {
    let env = |name: &str| match name {
        "T_DRY_KEY" | "T_DRY_SECRET" => Some("value".to_owned()),
        "T_DRY_EMPTY" => Some(String::new()),
        _ => None,
    };
    let keyed = [
        "--deribit-url",
        "ws://h/ws",
        "--deribit-key-env",
        "T_DRY_KEY",
        "--deribit-secret-env",
        "T_DRY_SECRET",
    ];
    let cfg = resolved(&keyed);
    assert!(cfg.deribit.keys_present_with(&env));
    assert!(cfg.dry_run_with(&env), "keys but no --live");

    let live: Vec<&str> = keyed.iter().copied().chain(["--live"]).collect();
    let cfg = resolved(&live);
    assert!(!cfg.dry_run_with(&env), "--live and keys");
    assert!(cfg.dry_run_with(&no_env), "--live, variables unset");
    let why = cfg.dry_run_reason_with(&no_env).unwrap();
    assert!(
        why.contains("deribit: key_env T_DRY_KEY is not set"),
        "{why}"
    );

    let more: Vec<&str> = live
        .iter()
        .copied()
        .chain(["--binance-url", "ws://h/ws"])
        .collect();
    let cfg = resolved(&more);
    assert!(cfg.dry_run_with(&env), "binance has no keys");
    let why = cfg.dry_run_reason_with(&env).unwrap();
    assert!(why.contains("binance: key_env not configured"), "{why}");
    let more: Vec<&str> = more
        .iter()
        .copied()
        .chain(["--binance-enabled=false"])
        .collect();
    assert!(
        !resolved(&more).dry_run_with(&env),
        "a disabled venue needs no keys"
    );
    let more: Vec<&str> = live
        .iter()
        .copied()
        .chain([
            "--binance-url",
            "ws://h/ws",
            "--binance-key-env",
            "T_DRY_KEY",
        ])
        .chain(["--binance-secret-env", "T_DRY_EMPTY"])
        .collect();
    assert!(
        resolved(&more).dry_run_with(&env),
        "an empty variable is no secret"
    );
    assert!(
        !resolved(&["--live"]).dry_run_with(&no_env),
        "the simulated venue needs no keys"
    );
}

#[test]
fn the_example_file_parses_and_show_reads_back() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/data/keel.example.toml");
    let cfg = resolved(&["--config", example]);
    assert_eq!(cfg.duration, Some(Duration::from_secs(600)));
    assert_eq!(cfg.delta_band, 0.5);
    assert_eq!(cfg.sim.seed, 7);
    assert!(cfg.deribit.enabled && !cfg.binance.enabled);
    assert_eq!(cfg.deribit.key_env.as_deref(), Some("DERIBIT_CLIENT_ID"));
    assert_eq!(cfg.deribit.instruments.len(), 2);
    assert_eq!(
        cfg.hyperliquid.key_env.as_deref(),
        Some("KEEL_HL_AGENT_KEY")
    );
    assert_eq!(cfg.hyperliquid.rungs, 8);

    // What `keel config show` prints is a keel.toml that resolves to the same configuration.
    let (_dir, path) = toml_file(&show_with(&cfg, &no_env));
    assert_eq!(resolved(&strs(&with_file(&path, &[]))), cfg);
    let (_dir, path) = toml_file(&show_with(&resolved(&[]), &no_env));
    assert_eq!(resolved(&strs(&with_file(&path, &[]))), resolved(&[]));
}

fn keel(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keel"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run keel")
}

#[test]
fn config_show_redacts_secrets_and_says_why_the_run_is_dry() {
    const SECRET: &str = "s3cr3t-value-only-in-the-environment";
    let flags = [
        "config",
        "show",
        "--deribit-url",
        "ws://127.0.0.1:9/ws/api/v2",
        "--deribit-key-env",
        "KEEL_T_SHOW_KEY",
        "--deribit-secret-env",
        "KEEL_T_SHOW_SECRET",
        "--live",
    ];
    let out = keel(&flags, &[("KEEL_T_SHOW_KEY", SECRET)]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains(SECRET), "secret printed:\n{stdout}");
    assert!(
        stdout.contains("key_env = \"KEEL_T_SHOW_KEY\" # set\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("secret_env = \"KEEL_T_SHOW_SECRET\" # NOT set\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "# dry_run = true (--live given, but deribit: secret_env KEEL_T_SHOW_SECRET is not set)"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("# uses_sim = false"), "{stdout}");

    let env = [("KEEL_T_SHOW_KEY", SECRET), ("KEEL_T_SHOW_SECRET", SECRET)];
    let out = keel(&flags, &env);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains(SECRET), "secret printed:\n{stdout}");
    assert!(stdout.contains("# dry_run = false"), "{stdout}");

    let json_flags: Vec<&str> = flags.iter().copied().chain(["--json"]).collect();
    let out = keel(&json_flags, &env);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains(SECRET), "secret printed:\n{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(v["dry_run"], false);
    assert_eq!(v["uses_sim"], false);
    assert_eq!(v["json"], true);
    assert_eq!(v["deribit"]["key_env"], "KEEL_T_SHOW_KEY");
    assert_eq!(v["deribit"]["key_env_set"], true);
    assert_eq!(v["status_every"], "1s");
}

#[test]
fn config_show_on_defaults_says_simulated_and_dry() {
    let out = keel(&["config", "show"], &[]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("# dry_run = true"), "{stdout}");
    assert!(stdout.contains("# uses_sim = true"), "{stdout}");
}

#[test]
fn config_show_errors_are_one_line_with_exit_code_2() {
    let out = keel(&["config", "show", "--deribit-fee-bps", "-1"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr, "error: --deribit-fee-bps -1: must be >= 0\n");
}

#[test]
fn help_groups_the_flags_by_venue() {
    let out = keel(&["config", "show", "--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let headings = [
        "Run:",
        "Hedging:",
        "Threads:",
        "Simulated venue (used when no venue is enabled):",
        "Deribit:",
        "Binance:",
        "OKX:",
        "Bybit:",
        "Ethereum node and builders:",
    ];
    let at: Vec<usize> = headings
        .iter()
        .map(|h| {
            help.find(&format!("\n{h}\n"))
                .unwrap_or_else(|| panic!("no {h}:\n{help}"))
        })
        .collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "headings out of order:\n{help}"
    );
    for (i, venue) in ["deribit", "binance", "okx", "bybit", "eth"]
        .iter()
        .enumerate()
    {
        let section = &help[at[4 + i]..*at.get(5 + i).unwrap_or(&help.len())];
        for setting in [
            "enabled",
            "url",
            "instruments",
            "pin",
            "fee-bps",
            "max-order",
            "timeout-ms",
            "rate-limit",
            "key-env",
            "secret-env",
            "ca-file",
        ] {
            assert!(
                section.contains(&format!("--{venue}-{setting} ")),
                "--{venue}-{setting}:\n{section}"
            );
        }
    }
    assert!(
        help.contains("--deribit-fee-bps <BPS>") && help.contains("[default: 3]"),
        "{help}"
    );
    assert!(
        help.contains("[default: 5.5]") && help.contains("[default: 30]"),
        "{help}"
    );
}

#[test]
fn the_on_chain_venue_reads_evm_flags_and_its_table() {
    // The issue's spellings are aliases; URLs repeat; the file's [evm] table fills the rest.
    let (_dir, path) = toml_file(
        "[evm]\nchain_id = 5\nws_url = \"ws://127.0.0.1:8546\"\nkey_env = \"EVM_KEY\"\n\
         router = \"0x00000000000000000000000000000000000dec0d\"\n\
         calldata_buy = \"0x7ff36ab50000000000000000000000000000000000000000000000000000000000000000\"\n\
         calldata_sell = \"0x18cbafe50000000000000000000000000000000000000000000000000000000000000000\"\n\
         eth_usd = 3000.0\nfee_bps = 5.0\ngas_limit = 150000\n",
    );
    let argv = with_file(
        &path,
        &[
            "--alt-hedge",
            "evm",
            "--rpc-url",
            "http://127.0.0.1:8545",
            "--evm-rpc-url",
            "http://127.0.0.1:9545",
            "--builder-url",
            "https://relay.example:443",
            "--evm-flashbots-key-env",
            "FB_KEY",
            "--evm-fee-bps",
            "7",
        ],
    );
    let cfg = resolved(&strs(&argv));
    assert_eq!(cfg.alt_hedges, vec![("evm".to_owned(), String::new())]);
    let e = &cfg.evm;
    assert_eq!(
        e.rpc_url,
        vec!["http://127.0.0.1:8545", "http://127.0.0.1:9545"]
    );
    assert_eq!(e.builder_url, vec!["https://relay.example:443"]);
    assert_eq!(
        (e.chain_id, e.gas_limit, e.fee_bps),
        (Some(5), 150_000, 7.0)
    );
    assert!(!e.uses_sim());
    // The embedded mock needs none of it.
    let cfg = resolved(&["--alt-hedge", "evm"]);
    assert!(cfg.evm.uses_sim() && cfg.uses_sim());
}

#[test]
fn the_on_chain_venue_refuses_what_a_real_chain_cannot_default() {
    let real = [
        "--alt-hedge",
        "evm",
        "--evm-rpc-url",
        "http://127.0.0.1:8545",
    ];
    let e = error(&real);
    assert!(e.contains("--evm-chain-id"), "{e}");
    for (extra, says) in [
        (vec!["--evm-rpc-url", "ws://x:1"], "http:// or https://"),
        (
            vec!["--evm-key-env", "0xabc"],
            "NAME of an environment variable",
        ),
        (vec!["--evm-router", "0x12"], "router"),
        (vec!["--evm-calldata-buy", "0xzz"], "calldata"),
        (vec!["--evm-rungs", "30"], "1..=24"),
        (vec!["--evm-fee-bps", "-1"], ">= 0"),
        (vec!["--evm-head-stale-after", "0s"], "must be > 0"),
        (
            vec!["--evm-keystore", "Cargo.toml", "--evm-key-env", "K"],
            "one key source",
        ),
        (
            vec!["--evm-builder-url", "http://127.0.0.1:1"],
            "--evm-rpc-url",
        ),
    ] {
        let mut argv = vec!["--alt-hedge", "evm"];
        argv.extend(extra.iter().copied());
        let err = error(&argv);
        assert!(err.contains(says), "{argv:?}: {err}");
        assert!(
            !err.contains("0xabc"),
            "a key-like value is never echoed: {err}"
        );
    }
    // Builders without the reputation key, against a real node.
    let (_dir, path) = toml_file(
        "[evm]\nchain_id = 1\nws_url = \"ws://127.0.0.1:8546\"\nkey_env = \"K\"\n\
         router = \"0x00000000000000000000000000000000000dec0d\"\n\
         calldata_buy = \"0x7ff36ab50000000000000000000000000000000000000000000000000000000000000000\"\n\
         calldata_sell = \"0x18cbafe50000000000000000000000000000000000000000000000000000000000000000\"\n\
         eth_usd = 3000.0\nbuilder_url = [\"http://127.0.0.1:1\"]\n",
    );
    let argv = with_file(&path, &real);
    let e = error(&strs(&argv));
    assert!(e.contains("--evm-flashbots-key-env"), "{e}");
    // Unknown keys in [evm] are errors naming the key.
    let e = file_error("[evm]\nrpc = \"http://x:1\"\n");
    assert!(e.contains("rpc"), "{e}");
    // A key's value in the file is refused.
    let e = file_error("[evm]\nprivate_key = \"0x01\"\n");
    assert!(!e.contains("0x01"), "{e}");
}

#[test]
fn hyperliquid_settings_from_flags_and_file_and_their_checks() {
    // Defaults: the embedded venue's Hyperliquid.
    let c = resolved(&["--alt-hedge", "hyperliquid"]);
    assert_eq!(
        c.alt_hedges,
        vec![("hyperliquid".to_string(), String::new())]
    );
    assert!(c.hyperliquid.uses_sim() && c.hyperliquid.enabled);
    assert_eq!((c.hyperliquid.lot, c.hyperliquid.rungs), (0.001, 8));
    let c = resolved(&[
        "--alt-hedge",
        "hyperliquid:btc",
        "--hyperliquid-fee-bps",
        "2.5",
        "--hyperliquid-max-order",
        "0.5",
        "--hyperliquid-timeout-ms",
        "700",
        "--hyperliquid-rate-limit",
        "20",
        "--hyperliquid-lot",
        "0.002",
        "--hyperliquid-rungs",
        "6",
        "--hyperliquid-refresh-after",
        "5s",
        "--hyperliquid-nonce-max-age",
        "30s",
    ]);
    assert_eq!(c.alt_hedges[0].1, "BTC");
    let h = &c.hyperliquid;
    assert_eq!(
        (
            h.fee_bps,
            h.max_order,
            h.timeout_ms,
            h.rate_limit,
            h.lot,
            h.rungs
        ),
        (2.5, Some(0.5), 700, Some(20), 0.002, 6)
    );
    assert_eq!(
        (h.refresh_after, h.nonce_max_age),
        (Duration::from_secs(5), Duration::from_secs(30))
    );
    // The file's [hyperliquid] table; unknown keys are errors.
    let (_d, path) = toml_file(
        "alt_hedge = [\"hyperliquid\"]\n[hyperliquid]\nurl = \"https://api.hyperliquid.xyz/\"\nws_url = \"wss://api.hyperliquid.xyz/ws\"\nkey_env = \"HL_AGENT_KEY\"\nfee_bps = 3.0\n",
    );
    let c = resolved(&strs(&with_file(&path, &[])));
    assert_eq!(
        c.hyperliquid.url.as_deref(),
        Some("https://api.hyperliquid.xyz")
    );
    assert_eq!(c.hyperliquid.key_env.as_deref(), Some("HL_AGENT_KEY"));
    assert_eq!(c.hyperliquid.fee_bps, 3.0);
    let shown = show_with(&c, &no_env);
    assert!(shown.contains("[hyperliquid]"), "{shown}");
    assert!(
        shown.contains("key_env = \"HL_AGENT_KEY\" # NOT set"),
        "{shown}"
    );
    let e = file_error("[hyperliquid]\nsecret = \"0xabc\"\n");
    assert!(e.contains("secret") && !e.contains("0xabc"), "{e}");
    // Checks across settings.
    for (flags, says) in [
        (
            &[
                "--alt-hedge",
                "hyperliquid",
                "--hyperliquid-url",
                "https://x.example",
            ][..],
            "--hyperliquid-ws-url",
        ),
        (
            &[
                "--alt-hedge",
                "hyperliquid",
                "--hyperliquid-url",
                "https://x.example",
                "--hyperliquid-ws-url",
                "wss://x.example/ws",
            ][..],
            "--hyperliquid-key-env",
        ),
        (
            &[
                "--alt-hedge",
                "hyperliquid",
                "--hyperliquid-key-env",
                "HL_KEY",
            ][..],
            "need --hyperliquid-url",
        ),
        (
            &[
                "--alt-hedge",
                "hyperliquid",
                "--hyperliquid-refresh-after",
                "90s",
            ][..],
            "must be below --hyperliquid-nonce-max-age",
        ),
        (&["--hyperliquid-rungs", "0"][..], "--hyperliquid-rungs"),
        (&["--hyperliquid-lot", "0.0000015"][..], "--hyperliquid-lot"),
        (
            &["--hyperliquid-ws-url", "https://x.example"][..],
            "--hyperliquid-ws-url",
        ),
        (
            &["--hyperliquid-account", "0x12"][..],
            "--hyperliquid-account",
        ),
        (
            &["--hyperliquid-key-env", "0xdeadbeef"][..],
            "value not shown",
        ),
        (&["--alt-hedge", "hyperliquid:B-TC"][..], "bad coin"),
        (
            &["--alt-hedge", "hyperliquid,hyperliquid:BTC"][..],
            "given twice",
        ),
    ] {
        let e = error(flags);
        assert!(e.contains(says), "{flags:?}: {e}");
    }
}
