//! keel-sim's lifecycle: many concurrent clients, clean stop (clients see a close), Drop stops
//! the venue, the market moves, and the `keel-sim` binary's flags, output and errors.

mod sim_common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use sim_common::*;

#[test]
fn many_concurrent_clients_then_a_clean_stop() {
    let mut sim = start(|c| c.rate = 200);
    let mut clients = Vec::new();
    for i in 0..16 {
        let mut ws = if i % 2 == 0 {
            let mut ws = connect(&sim.deribit_url());
            rpc(
                &mut ws,
                1,
                "public/subscribe",
                json!({"channels": ["ticker.BTC-PERPETUAL.raw"]}),
            );
            ws
        } else {
            connect(&format!("ws://{}/ws/btcusdt@bookTicker", sim.addr()))
        };
        for _ in 0..5 {
            next_json(&mut ws, PATIENCE);
        }
        clients.push(ws);
    }
    let until = Instant::now() + PATIENCE;
    while sim.stats().active != 16 {
        assert!(Instant::now() < until, "{:?}", sim.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    let stopping = Instant::now();
    sim.stop();
    assert!(
        stopping.elapsed() < PATIENCE,
        "stop took {:?}",
        stopping.elapsed()
    );
    for ws in &mut clients {
        let (_, why) = read_until_closed(ws, PATIENCE);
        assert!(
            why.starts_with("close frame") && why.contains("Away"),
            "{why}"
        );
    }
    let s = sim.stats();
    assert_eq!(s.active, 0);
    assert_eq!(s.connections, 16);
    assert!(s.messages >= 80 && s.bytes > 0);
}

#[test]
fn dropping_the_handle_stops_the_venue() {
    let sim = start(|_| {});
    let addr = sim.addr();
    assert_ne!(addr.port(), 0, "port 0 resolves to a real port");
    let mut ws = connect(&sim.deribit_url());
    drop(sim);
    let (_, why) = read_until_closed(&mut ws, PATIENCE);
    assert!(why.starts_with("close frame"), "{why}");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still listening"
    );
}

#[test]
fn stop_does_not_wait_for_a_stalled_handshake() {
    let mut sim = start(|_| {});
    // A client that connects and never sends its HTTP request (the handshake limit is 10 s).
    let _stalled = std::net::TcpStream::connect(sim.addr()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let stopping = Instant::now();
    sim.stop();
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "stop waited {:?} for a stalled handshake",
        stopping.elapsed()
    );
}

#[test]
fn the_market_moves() {
    let sim = start(|c| {
        c.speed = 10_000.0;
        c.tick = Duration::from_millis(5);
    });
    let first = sim.snapshot();
    let until = Instant::now() + PATIENCE;
    loop {
        let s = sim.snapshot();
        if s.seq > first.seq + 5 && s.index != first.index {
            assert!(
                s.options
                    .iter()
                    .zip(&first.options)
                    .any(|(a, b)| a.mark != b.mark)
            );
            break;
        }
        assert!(Instant::now() < until, "the market did not move");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_configuration_is_an_error_naming_the_setting() {
    let r = keel_tools::sim::SimVenue::start(keel_tools::sim::SimConfig {
        vol: f64::NAN,
        ..Default::default()
    });
    let e = r.err().expect("NaN vol is refused").to_string();
    assert!(e.contains("vol"), "{e}");
}

const BIN: &str = env!("CARGO_BIN_EXE_keel-sim");

#[test]
fn binary_help_lists_the_flags() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--seed",
        "--rate",
        "--options",
        "--spot",
        "--vol",
        "--duration",
        "--drop-every-msgs",
        "--drop-every-secs",
        "--delay-ms",
        "--malformed-rate",
        "--silent-after",
        "--fragment",
        "--ping-every-ms",
        "Fault injection",
        "/ws/api/v2",
        "sim_send_ns",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn binary_serves_then_exits_after_duration() {
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--duration",
            "3",
            "--options",
            "50",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("keel-sim listening on ")
        .unwrap_or_else(|| panic!("first line: {first}"))
        .to_string();
    let mut ws = connect(&format!("ws://{addr}/ws/api/v2"));
    let r = rpc(&mut ws, 1, "public/get_time", json!({}));
    assert!(r["result"].is_u64());
    let until = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("keel-sim did not exit after --duration");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
}

#[test]
fn binary_reports_bad_flags_on_one_line_with_exit_2() {
    for args in [
        vec!["--rate", "fast"],
        vec!["--listen", "127.0.0.1:0", "--vol", "9"],
        vec!["--listen", "127.0.0.1:0", "--malformed-rate", "1.5"],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}
