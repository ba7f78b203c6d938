//! keel-sim's fault injection, each fault observed from the client side: drops after N
//! messages or S seconds (with and without a close frame), silence after T seconds, malformed
//! messages at a rate, fragmentation into K frames (seen on raw TCP), pings, added delay.

mod sim_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sim_common::*;

fn subscribe_perpetual(ws: &mut Ws) {
    let r = rpc(
        ws,
        1,
        "public/subscribe",
        json!({"channels": ["ticker.BTC-PERPETUAL.raw"]}),
    );
    assert_eq!(r["result"], json!(["ticker.BTC-PERPETUAL.raw"]));
}

fn notifications(texts: &[String]) -> usize {
    texts
        .iter()
        .filter(|t| t.contains("\"method\":\"subscription\""))
        .count()
}

#[test]
fn drop_after_n_messages_with_a_close_frame() {
    let sim = start(|c| {
        c.rate = 1_000;
        c.faults.drop_after_messages = Some(25);
    });
    let mut ws = connect(&sim.deribit_url());
    subscribe_perpetual(&mut ws);
    let (texts, why) = read_until_closed(&mut ws, PATIENCE);
    assert_eq!(notifications(&texts), 25, "exactly N data messages");
    assert!(why.starts_with("close frame"), "a WebSocket close: {why}");
    assert!(why.contains("Away"), "close code 1001: {why}");
    // A new connection gets N again.
    let mut again = connect(&sim.deribit_url());
    subscribe_perpetual(&mut again);
    let (texts, _) = read_until_closed(&mut again, PATIENCE);
    assert_eq!(notifications(&texts), 25);
    assert!(sim.stats().drops >= 2);
}

#[test]
fn abrupt_drop_has_no_close_frame() {
    let sim = start(|c| {
        c.rate = 1_000;
        c.faults.drop_after_messages = Some(10);
        c.faults.drop_abrupt = true;
    });
    let mut ws = connect(&sim.deribit_url());
    subscribe_perpetual(&mut ws);
    let (texts, why) = read_until_closed(&mut ws, PATIENCE);
    assert_eq!(notifications(&texts), 10);
    assert!(!why.starts_with("close frame"), "no close frame: {why}");
}

#[test]
fn drop_after_seconds() {
    let sim = start(|c| {
        c.rate = 200;
        c.faults.drop_after = Some(Duration::from_millis(800));
    });
    let opened = Instant::now();
    let mut ws = connect(&sim.deribit_url());
    subscribe_perpetual(&mut ws);
    let (texts, why) = read_until_closed(&mut ws, PATIENCE);
    assert!(opened.elapsed() >= Duration::from_millis(700), "{why}");
    assert!(notifications(&texts) > 0);
}

#[test]
fn silent_after_t_keeps_the_connection_open_with_no_data_and_no_heartbeat() {
    let sim = start(|c| {
        c.rate = 500;
        c.min_heartbeat = Duration::from_millis(100);
        c.faults.silent_after = Some(Duration::from_millis(1_000));
    });
    let opened = Instant::now();
    let mut ws = connect(&sim.deribit_url());
    subscribe_perpetual(&mut ws);
    rpc(&mut ws, 2, "public/set_heartbeat", json!({"interval": 0.2}));
    let mut before = 0;
    let mut heartbeats = 0;
    let mut last = Instant::now();
    // Read until 1.5 s pass with nothing at all; answer heartbeats meanwhile.
    loop {
        assert!(opened.elapsed() < PATIENCE * 2, "never went silent");
        match read_one(&mut ws) {
            Got::Text(t) => {
                last = Instant::now();
                before += 1;
                if t.contains("test_request") {
                    heartbeats += 1;
                    send(
                        &mut ws,
                        r#"{"jsonrpc":"2.0","id":99,"method":"public/test"}"#,
                    );
                }
            }
            Got::Ping => last = Instant::now(),
            Got::Closed(why) => panic!("closed instead of going silent: {why}"),
            Got::Nothing => {
                if last.elapsed() >= Duration::from_millis(1_500) {
                    break;
                }
            }
        }
    }
    assert!(before >= 3, "data flowed before the silence ({before})");
    assert!(heartbeats >= 1, "heartbeats flowed before the silence");
    assert!(last.duration_since(opened) >= Duration::from_millis(900));
    // Still open: a request goes through the socket, gets no answer, and nothing closes.
    send(
        &mut ws,
        r#"{"jsonrpc":"2.0","id":7,"method":"public/get_time"}"#,
    );
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_millis(700) {
        match read_one(&mut ws) {
            Got::Nothing => {}
            other => panic!("expected silence, got {other:?}"),
        }
    }
    assert_eq!(sim.stats().active, 1);
}

#[test]
fn malformed_messages_at_the_configured_rate() {
    let sim = start(|c| {
        c.rate = 4_000;
        c.faults.malformed_rate = 0.3;
    });
    let opt = sim.chain().options[0].name.clone();
    let mut ws = connect(&sim.deribit_url());
    let r = rpc(
        &mut ws,
        1,
        "public/subscribe",
        json!({"channels": [format!("ticker.{opt}.raw")]}),
    );
    assert_eq!(r["result"].as_array().unwrap().len(), 1);
    let (mut good, mut bad) = (0u32, 0u32);
    let until = Instant::now() + PATIENCE * 2;
    while good + bad < 800 {
        assert!(Instant::now() < until, "too slow: {good} + {bad}");
        let Got::Text(t) = read_one(&mut ws) else {
            continue;
        };
        let well_formed = serde_json::from_str::<Value>(&t).ok().is_some_and(|v| {
            let d = &v["params"]["data"];
            v["method"] == "subscription"
                && d["timestamp"].is_u64()
                && d["mark_iv"].is_f64()
                && d["instrument_name"] == opt.as_str()
        });
        if well_formed {
            good += 1;
        } else {
            bad += 1;
        }
    }
    let frac = f64::from(bad) / f64::from(good + bad);
    // Binomial s.d. at n = 800, p = 0.3 is 0.016: bounds of ±0.1 cannot flake.
    assert!((0.2..=0.4).contains(&frac), "malformed fraction {frac}");
    assert!(sim.stats().malformed > 0);
}

#[test]
fn no_malformed_messages_by_default() {
    let sim = start(|c| c.rate = 4_000);
    let mut ws = connect(&sim.deribit_url());
    subscribe_perpetual(&mut ws);
    for _ in 0..300 {
        let v = next_json(&mut ws, PATIENCE);
        assert!(v["params"]["data"]["timestamp"].is_u64(), "{v}");
    }
    assert_eq!(sim.stats().malformed, 0);
}

/// A raw-TCP WebSocket client: the handshake by hand, masked client frames, and the server's
/// frames as they are on the wire (to see fragmentation, which tungstenite's client hides).
struct RawClient {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    fn connect(addr: std::net::SocketAddr, path: &str) -> Self {
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        write!(
            tcp,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut c = Self {
            tcp,
            buf: Vec::new(),
        };
        while !c.buf.windows(4).any(|w| w == b"\r\n\r\n") {
            c.fill();
        }
        let end = c.buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&c.buf[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        // RFC 6455's sample key and accept value.
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        c.buf.drain(..end);
        c
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 65536];
        let n = self.tcp.read(&mut chunk).expect("read");
        assert!(n > 0, "server closed");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    fn send_text(&mut self, text: &str) {
        let p = text.as_bytes();
        assert!(p.len() < 126);
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        let mut f = vec![0x81, 0x80 | p.len() as u8];
        f.extend_from_slice(&mask);
        f.extend(p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.tcp.write_all(&f).unwrap();
    }

    /// The next frame: (fin, opcode, payload).
    fn frame(&mut self) -> (bool, u8, Vec<u8>) {
        loop {
            if self.buf.len() >= 2 {
                let (b0, b1) = (self.buf[0], self.buf[1]);
                assert_eq!(b1 & 0x80, 0, "server frames are unmasked");
                let (len, hdr) = match b1 & 0x7f {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&self.buf[2..10]);
                        (u64::from_be_bytes(b) as usize, 10)
                    }
                    n @ 0..=125 => (n as usize, 2),
                    _ => (usize::MAX, 0),
                };
                if len != usize::MAX && self.buf.len() >= hdr + len {
                    let payload = self.buf[hdr..hdr + len].to_vec();
                    self.buf.drain(..hdr + len);
                    return (b0 & 0x80 != 0, b0 & 0x0f, payload);
                }
            }
            self.fill();
        }
    }
}

#[test]
fn fragmentation_splits_messages_into_k_frames() {
    let sim = start(|c| {
        c.rate = 500;
        c.faults.fragments = 4;
    });
    let mut raw = RawClient::connect(sim.addr(), "/ws/api/v2");
    raw.send_text(
        r#"{"jsonrpc":"2.0","id":1,"method":"public/subscribe","params":{"channels":["ticker.BTC-PERPETUAL.raw"]}}"#,
    );
    let mut messages = 0;
    while messages < 5 {
        let (fin, op, mut payload) = raw.frame();
        if op == 0x9 {
            continue; // ping
        }
        assert_eq!(
            (fin, op),
            (false, 0x1),
            "a message starts with a non-final text frame"
        );
        let mut frames = 1;
        loop {
            let (fin, op, part) = raw.frame();
            assert_eq!(op, 0x0, "then continuation frames");
            payload.extend_from_slice(&part);
            frames += 1;
            if fin {
                break;
            }
        }
        assert_eq!(frames, 4, "K = 4 frames");
        let v: Value = serde_json::from_slice(&payload).expect("reassembles to JSON");
        assert!(
            v["result"].is_array() || v["method"] == "subscription",
            "{v}"
        );
        messages += 1;
    }
    // tungstenite's client reassembles them into whole messages.
    let mut ws = connect(&sim.deribit_url());
    subscribe_perpetual(&mut ws);
    let v = wait_for(&mut ws, PATIENCE, |v| v["method"] == "subscription");
    assert_eq!(v["params"]["data"]["instrument_name"], "BTC-PERPETUAL");
}

#[test]
fn pings_every_p_ms() {
    let sim = start(|c| c.faults.ping_every = Some(Duration::from_millis(100)));
    let mut ws = connect(&sim.binance_url());
    let until = Instant::now() + PATIENCE;
    let mut pings = 0;
    while pings < 3 {
        assert!(Instant::now() < until, "only {pings} pings");
        match read_one(&mut ws) {
            Got::Ping => pings += 1,
            Got::Closed(why) => panic!("closed: {why}"),
            _ => {}
        }
    }
    // The client's automatic pongs do not disturb the server: requests still work.
    send(&mut ws, r#"{"method":"LIST_SUBSCRIPTIONS","id":3}"#);
    let r = wait_for(&mut ws, PATIENCE, |v| v.get("id").is_some());
    assert_eq!(r["result"], json!([]));
}

#[test]
fn delay_holds_every_message() {
    let delay = Duration::from_millis(300);
    let sim = start(|c| {
        c.rate = 200;
        c.faults.delay = Some(delay);
    });
    let mut ws = connect(&sim.deribit_url());
    let asked = Instant::now();
    let r = rpc(&mut ws, 1, "public/get_time", json!({}));
    assert!(r["result"].is_u64());
    assert!(
        asked.elapsed() >= Duration::from_millis(280),
        "{:?}",
        asked.elapsed()
    );
    subscribe_perpetual(&mut ws);
    for _ in 0..5 {
        let v = wait_for(&mut ws, PATIENCE, |v| v["method"] == "subscription");
        let sent = v["params"]["data"]["sim_send_ns"].as_u64().unwrap();
        let age = now_ns().saturating_sub(sent);
        assert!(
            age >= 280_000_000,
            "message arrived {age} ns after sim_send_ns"
        );
    }
}
