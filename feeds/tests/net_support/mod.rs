//! Shared pieces of the network tests: a recording test session, a loop driver that polls for a
//! condition with a generous timeout, the Python `websockets` server launcher, and a TLS
//! WebSocket server (rustls + tungstenite) with a private CA made by rcgen.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel_feeds::net::{FeedLoop, Outbox, Session};
use keel_feeds::{DisconnectReason, EventBody, InstrumentId, MarketEvent, Venue};

/// Generous: tests run on two loaded cores.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// What the test session saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Times `on_open` ran.
    pub opens: u32,
    /// Every data message, in order.
    pub messages: Vec<Vec<u8>>,
    /// Receive timestamps, in order.
    pub recv_ts: Vec<u64>,
    /// Timer calls.
    pub timers: u32,
}

impl Seen {
    pub fn texts(&self) -> Vec<String> {
        self.messages
            .iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect()
    }

    pub fn count(&self, text: &str) -> usize {
        self.messages
            .iter()
            .filter(|m| m.as_slice() == text.as_bytes())
            .count()
    }
}

/// Sends `subscribe#<n>` on every open; records messages; answers `ask:<x>` with `answer:<x>`;
/// fails the connection with `Rejected` on `reject`; emits one `Index` event per message.
pub struct RecordingSession {
    pub seen: Arc<Mutex<Seen>>,
}

impl RecordingSession {
    pub fn new() -> (Self, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        (Self { seen: seen.clone() }, seen)
    }
}

impl Session for RecordingSession {
    fn venue(&self) -> Venue {
        Venue::Deribit
    }

    fn on_open(&mut self, out: &mut Outbox<'_>) {
        let mut seen = self.seen.lock().unwrap();
        seen.opens += 1;
        out.send_text(format!("subscribe#{}", seen.opens).as_bytes());
    }

    fn on_message(
        &mut self,
        payload: &[u8],
        recv_ts_ns: u64,
        out: &mut Outbox<'_>,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<(), DisconnectReason> {
        {
            let mut seen = self.seen.lock().unwrap();
            seen.messages.push(payload.to_vec());
            seen.recv_ts.push(recv_ts_ns);
        }
        if let Some(x) = payload.strip_prefix(b"ask:") {
            let mut reply = b"answer:".to_vec();
            reply.extend_from_slice(x);
            out.send_text(&reply);
        }
        if payload == b"reject" {
            return Err(DisconnectReason::Rejected);
        }
        emit(MarketEvent {
            exchange_ts_ns: 0,
            recv_ts_ns,
            instrument: InstrumentId(7),
            venue: Venue::Deribit,
            conn: 255, // the connection overwrites it
            body: EventBody::Index {
                price: payload.len() as f64,
            },
        });
        Ok(())
    }

    fn on_timer(
        &mut self,
        _now_ns: u64,
        _out: &mut Outbox<'_>,
        _emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<(), DisconnectReason> {
        self.seen.lock().unwrap().timers += 1;
        Ok(())
    }
}

/// Connection events only (`Connected`, `Disconnected`, `Reconnected`).
pub fn connection_events(events: &[MarketEvent]) -> Vec<EventBody> {
    events
        .iter()
        .filter(|e| {
            matches!(
                e.body,
                EventBody::Connected
                    | EventBody::Disconnected { .. }
                    | EventBody::Reconnected { .. }
            )
        })
        .map(|e| e.body)
        .collect()
}

/// Runs the loop until `done(events)` holds; panics with what happened after [`TIMEOUT`].
pub fn drive_until(
    feed: &mut FeedLoop,
    events: &mut Vec<MarketEvent>,
    what: &str,
    mut done: impl FnMut(&[MarketEvent]) -> bool,
) {
    let start = Instant::now();
    while !done(events) {
        if start.elapsed() > TIMEOUT {
            panic!(
                "timed out waiting for {what}; connection events {:?}; last failure {:?}",
                connection_events(events),
                feed.last_failure(0).map(|f| f.to_string())
            );
        }
        feed.run_once(Duration::from_millis(20), &mut |ev| events.push(ev))
            .expect("poll");
    }
}

/// Runs the loop until the session's record satisfies `done`.
pub fn drive_until_seen(
    feed: &mut FeedLoop,
    events: &mut Vec<MarketEvent>,
    seen: &Arc<Mutex<Seen>>,
    what: &str,
    mut done: impl FnMut(&Seen) -> bool,
) {
    let start = Instant::now();
    loop {
        if done(&seen.lock().unwrap()) {
            return;
        }
        if start.elapsed() > TIMEOUT {
            panic!(
                "timed out waiting for {what}; seen {:?}; connection events {:?}; last failure {:?}",
                seen.lock().unwrap().texts(),
                connection_events(events),
                feed.last_failure(0).map(|f| f.to_string())
            );
        }
        feed.run_once(Duration::from_millis(20), &mut |ev| events.push(ev))
            .expect("poll");
    }
}

/// The Python `websockets` server (feeds/tests/py/ws_server.py), killed on drop.
pub struct PyServer {
    child: Child,
    pub port: u16,
}

impl PyServer {
    /// Starts the server with a script (see the script's doc). Fails the test, with the fix, if
    /// `websockets` is not installed.
    pub fn start(script: &serde_json::Value) -> PyServer {
        let check = Command::new("python3")
            .args(["-c", "import websockets.asyncio.server"])
            .output()
            .expect("python3 must be installed to run the network tests");
        assert!(
            check.status.success(),
            "the network tests need the Python `websockets` package (>= 13): run \
             `pip install websockets` (CI's .ci/run installs it). python3 said: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let script_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/ws_server.py");
        let mut child = Command::new("python3")
            .arg(script_path)
            .arg("--script")
            .arg(script.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("KEEL_TEST_VERBOSE").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("spawn python3 ws_server.py");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("ws_server.py did not print its port within {TIMEOUT:?}");
            }
        };
        let port = match line.trim().parse() {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!("ws_server.py printed {line:?} instead of a port (exit {status:?})");
            }
        };
        PyServer { child, port }
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/feed?x=1", self.port)
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private CA (self-signed, made by rcgen) and a server certificate it signed for
/// `localhost` and 127.0.0.1, with the CA written to a PEM file.
pub struct TestPki {
    pub ca_file: PathBuf,
    pub server_config: Arc<rustls::ServerConfig>,
}

impl TestPki {
    pub fn new(tag: &str) -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "keel test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let ca_file =
            std::env::temp_dir().join(format!("keel-net-test-{}-{tag}-ca.pem", std::process::id()));
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca_cert.der().clone()], key)
        .unwrap();
        TestPki {
            ca_file,
            server_config: Arc::new(server_config),
        }
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

/// A loopback listener on port 0.
pub fn bind_loopback() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}
