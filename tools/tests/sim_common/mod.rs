//! Helpers shared by the keel-sim integration tests: start a venue on 127.0.0.1 port 0, connect
//! with tungstenite's client (independent of Keel's feeds crate), send JSON-RPC requests and
//! wait for messages with generous deadlines (tests run on two loaded cores).

#![allow(dead_code)]

use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keel_tools::sim::{SimConfig, SimHandle, SimVenue};
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// Generous deadline for anything that should happen "soon".
pub const PATIENCE: Duration = Duration::from_secs(10);

pub type Ws = WebSocket<TcpStream>;

/// A venue with a small chain and a slow market tick (cheap in debug builds), adjusted by `f`.
pub fn start(f: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let mut c = SimConfig {
        options: 100,
        tick: Duration::from_millis(20),
        ..SimConfig::default()
    };
    f(&mut c);
    SimVenue::start(c).expect("sim starts")
}

/// Connects to `url` (ws://127.0.0.1:PORT/path) with a short read timeout so reads poll.
pub fn connect(url: &str) -> Ws {
    let addr = url
        .strip_prefix("ws://")
        .and_then(|r| r.split('/').next())
        .expect("ws:// url");
    let tcp = TcpStream::connect(addr).expect("tcp connect");
    tcp.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let (ws, resp) = tungstenite::client(url, tcp).expect("websocket handshake");
    assert_eq!(resp.status(), 101);
    ws
}

/// What one read produced.
#[derive(Debug)]
pub enum Got {
    /// A text message (parsed if it is JSON).
    Text(String),
    /// A ping frame.
    Ping,
    /// Nothing yet (read timeout).
    Nothing,
    /// The connection is over (close frame, EOF or error), with a description.
    Closed(String),
}

/// One read attempt.
pub fn read_one(ws: &mut Ws) -> Got {
    match ws.read() {
        Ok(Message::Text(t)) => Got::Text(t.as_str().to_string()),
        Ok(Message::Ping(_)) => Got::Ping,
        Ok(Message::Close(c)) => Got::Closed(format!("close frame {c:?}")),
        Ok(_) => Got::Nothing,
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Got::Nothing
        }
        Err(e) => Got::Closed(format!("{e}")),
    }
}

/// The next JSON message within `within` (pings skipped); panics on timeout or close.
pub fn next_json(ws: &mut Ws, within: Duration) -> Value {
    let until = Instant::now() + within;
    while Instant::now() < until {
        match read_one(ws) {
            Got::Text(t) => {
                return serde_json::from_str(&t).unwrap_or_else(|e| panic!("bad JSON {e}: {t}"));
            }
            Got::Closed(why) => panic!("connection closed: {why}"),
            Got::Ping | Got::Nothing => {}
        }
    }
    panic!("no message within {within:?}");
}

/// Sends a text message.
pub fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text.to_string())).expect("send");
}

/// Sends a Deribit JSON-RPC request and returns its response (notifications in between are
/// skipped).
pub fn rpc(ws: &mut Ws, id: u64, method: &str, params: Value) -> Value {
    let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    send(ws, &req.to_string());
    wait_for(ws, PATIENCE, |v| v.get("id") == Some(&json!(id)))
}

/// The first JSON message satisfying `pred` within `within`.
pub fn wait_for(ws: &mut Ws, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + within;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no matching message within {within:?}");
        let v = next_json(ws, left);
        if pred(&v) {
            return v;
        }
    }
}

/// Reads until the connection ends; returns the text messages received and why it ended, or
/// panics if it is still open after `within`.
pub fn read_until_closed(ws: &mut Ws, within: Duration) -> (Vec<String>, String) {
    let until = Instant::now() + within;
    let mut texts = Vec::new();
    while Instant::now() < until {
        match read_one(ws) {
            Got::Text(t) => texts.push(t),
            Got::Closed(why) => return (texts, why),
            Got::Ping | Got::Nothing => {}
        }
    }
    panic!("still open after {within:?} ({} messages)", texts.len());
}

/// Wall clock, ms.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Wall clock, ns.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Standard normal cdf (Abramowitz-Stegun 7.1.26 on erf, |error| < 1.5e-7): an independent
/// check of the venue's prices.
pub fn ncdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// Black-76 with r = 0: (price, delta).
pub fn black76(call: bool, f: f64, k: f64, t: f64, sigma: f64) -> (f64, f64) {
    let sd = sigma * t.sqrt();
    let d1 = ((f / k).ln() + 0.5 * sd * sd) / sd;
    let d2 = d1 - sd;
    if call {
        (f * ncdf(d1) - k * ncdf(d2), ncdf(d1))
    } else {
        (k * ncdf(-d2) - f * ncdf(-d1), ncdf(d1) - 1.0)
    }
}

/// Days since 1970-01-01 → (year, month, day): a test-local copy of the civil calendar, to
/// check the venue's date codes independently.
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
