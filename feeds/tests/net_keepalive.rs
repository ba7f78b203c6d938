//! The keep-alive HTTP/1.1 client against independent servers: Python's `http.server`
//! (feeds/tests/py/http_server.py, HTTP/1.1 keep-alive, started on loopback port 0 and killed at
//! the end) for reuse of one TCP connection, pipelined replies in order, chunked bodies, a
//! server close, a reset, a malformed status line, an oversize body and a request timeout; and
//! a rustls server thread with a private CA for https://.
//!
//! Needs `python3` (standard library only).

mod net_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_feeds::net::{
    BackoffConfig, HttpEvent, HttpPool, Jitter, KeepAliveConfig, KeepAliveError, RequestError,
    SendError,
};
use net_support::{TIMEOUT, TestPki, bind_loopback};

struct PyHttp {
    child: Child,
    port: u16,
}

impl PyHttp {
    fn start() -> PyHttp {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/http_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("KEEL_TEST_VERBOSE").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("python3 must be installed to run the network tests");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("http_server.py printed {line:?} instead of a port")
        });
        PyHttp { child, port }
    }
}

impl Drop for PyHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the pool reported, owned.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Up(u64),
    Response { seq: u64, status: u16, body: String },
    Failed { seq: u64, error: RequestError },
    Down(String),
}

fn record(seen: &mut Vec<Seen>) -> impl FnMut(HttpEvent<'_>) + '_ {
    move |ev| {
        seen.push(match ev {
            HttpEvent::Up { opens, .. } => Seen::Up(opens),
            HttpEvent::Response(r) => {
                assert!(r.sent_ns > 0 && r.recv_ns >= r.sent_ns, "{r:?}");
                Seen::Response {
                    seq: r.seq,
                    status: r.status,
                    body: String::from_utf8_lossy(r.body).into_owned(),
                }
            }
            HttpEvent::Failed { seq, error, .. } => Seen::Failed { seq, error },
            HttpEvent::Down { error, .. } => Seen::Down(error.to_string()),
        })
    }
}

fn config(url: &str) -> KeepAliveConfig {
    let mut cfg = KeepAliveConfig::new(url).unwrap();
    cfg.backoff = BackoffConfig {
        base: Duration::from_millis(20),
        cap: Duration::from_millis(100),
        jitter: Jitter::Full,
        reset_after: Duration::from_secs(60),
    };
    cfg.request_timeout = Duration::from_secs(5);
    cfg
}

fn request(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Runs the pool until `done` holds for what was seen.
fn drive(pool: &mut HttpPool, seen: &mut Vec<Seen>, done: impl Fn(&[Seen]) -> bool) {
    let start = Instant::now();
    while !done(seen) {
        assert!(start.elapsed() < TIMEOUT, "timed out; saw {seen:?}");
        pool.run_once(Duration::from_millis(20), &mut record(seen))
            .unwrap();
    }
}

fn responses(seen: &[Seen]) -> usize {
    seen.iter()
        .filter(|s| matches!(s, Seen::Response { .. }))
        .count()
}

fn warm(url: &str) -> (HttpPool, Vec<Seen>) {
    let mut pool = HttpPool::new().unwrap();
    pool.add(config(url)).unwrap();
    let mut seen = Vec::new();
    assert!(
        pool.warm_up(TIMEOUT, &mut record(&mut seen)).unwrap(),
        "{seen:?}"
    );
    assert_eq!(seen, [Seen::Up(1)]);
    seen.clear();
    (pool, seen)
}

#[test]
fn one_connection_many_requests_pipelined_and_chunked() {
    let server = PyHttp::start();
    let (mut pool, mut seen) = warm(&format!("http://127.0.0.1:{}/", server.port));
    // Sequential requests reuse the one connection.
    for i in 1..=5u64 {
        let seq = pool
            .send(
                0,
                &request("/echo", &format!("r{i}")),
                &mut record(&mut seen),
            )
            .unwrap();
        assert_eq!(seq, i);
        let sent = pool.conn(0).unwrap().sent_ns(seq).unwrap();
        assert!(sent > 0, "a small request is written at once");
        drive(&mut pool, &mut seen, |s| responses(s) == i as usize);
    }
    // Eight pipelined at once (mixing Content-Length and chunked replies) come back in order.
    for i in 6..=13u64 {
        let path = if i % 2 == 0 { "/echo" } else { "/chunked" };
        pool.send(
            0,
            &request(path, &format!("{{\"id\":{i},\"pad\":\"abcdef\"}}")),
            &mut record(&mut seen),
        )
        .unwrap();
    }
    assert_eq!(pool.conn(0).unwrap().in_flight(), 8);
    drive(&mut pool, &mut seen, |s| responses(s) == 13);
    let expect: Vec<Seen> = (1..=13u64)
        .map(|i| Seen::Response {
            seq: i,
            status: 200,
            body: if i <= 5 {
                format!("1 {i} r{i}")
            } else {
                format!("1 {i} {{\"id\":{i},\"pad\":\"abcdef\"}}")
            },
        })
        .collect();
    assert_eq!(seen, expect, "one TCP connection (conn 1) served all 13");
    let stats = pool.conn(0).unwrap().stats();
    assert_eq!((stats.opens, stats.requests, stats.responses), (1, 13, 13));
    pool.shutdown(&mut record(&mut seen));
}

#[test]
fn close_reset_and_malformed_fail_typed_and_reconnect() {
    let server = PyHttp::start();
    let (mut pool, mut seen) = warm(&format!("http://127.0.0.1:{}/", server.port));

    // Connection: close: the response is delivered, then the connection comes back.
    pool.send(0, &request("/close", ""), &mut record(&mut seen))
        .unwrap();
    drive(&mut pool, &mut seen, |s| s.contains(&Seen::Up(2)));
    assert_eq!(
        seen[0],
        Seen::Response {
            seq: 1,
            status: 200,
            body: "1 1 bye".into()
        }
    );
    assert!(
        matches!(&seen[1], Seen::Down(e) if e.contains("closed")),
        "{seen:?}"
    );
    seen.clear();

    // A reset: the request fails as ConnectionLost; reconnection follows.
    pool.send(0, &request("/reset", ""), &mut record(&mut seen))
        .unwrap();
    drive(&mut pool, &mut seen, |s| s.contains(&Seen::Up(3)));
    assert_eq!(
        seen[0],
        Seen::Failed {
            seq: 2,
            error: RequestError::ConnectionLost
        }
    );
    seen.clear();

    // A malformed status line with a request pipelined behind it: the first fails as
    // Malformed, the second as ConnectionLost.
    pool.send(0, &request("/malformed", ""), &mut record(&mut seen))
        .unwrap();
    pool.send(0, &request("/echo", "after"), &mut record(&mut seen))
        .unwrap();
    drive(&mut pool, &mut seen, |s| s.contains(&Seen::Up(4)));
    assert_eq!(
        &seen[..2],
        [
            Seen::Failed {
                seq: 3,
                error: RequestError::Malformed
            },
            Seen::Failed {
                seq: 4,
                error: RequestError::ConnectionLost
            }
        ]
    );
    assert!(
        matches!(&seen[2], Seen::Down(e) if e.contains("bad status line")),
        "{seen:?}"
    );
    assert!(matches!(
        pool.conn(0).unwrap().last_error(),
        Some(KeepAliveError::Head(_))
    ));
    seen.clear();

    // Still serving after all that, on the fourth TCP connection of the server.
    pool.send(0, &request("/echo", "ok"), &mut record(&mut seen))
        .unwrap();
    drive(&mut pool, &mut seen, |s| responses(s) == 1);
    assert_eq!(
        seen,
        [Seen::Response {
            seq: 5,
            status: 200,
            body: "4 1 ok".into()
        }]
    );
}

#[test]
fn oversize_body_timeout_and_send_refusals() {
    let server = PyHttp::start();
    let url = format!("http://127.0.0.1:{}/", server.port);
    let mut pool = HttpPool::new().unwrap();
    let mut cfg = config(&url);
    cfg.max_response = 4096;
    cfg.max_in_flight = 2;
    cfg.write_buffer = 1024;
    cfg.request_timeout = Duration::from_millis(300);
    pool.add(cfg).unwrap();
    let mut seen = Vec::new();
    // Not warm yet: refused, nothing written.
    assert_eq!(
        pool.send(0, &request("/echo", ""), &mut record(&mut seen)),
        Err(SendError::NotReady)
    );
    assert!(pool.warm_up(TIMEOUT, &mut record(&mut seen)).unwrap());
    seen.clear();
    // A body that fits, then one that does not.
    pool.send(0, &get("/big?n=3000"), &mut record(&mut seen))
        .unwrap();
    drive(&mut pool, &mut seen, |s| responses(s) == 1);
    pool.send(0, &get("/big?n=10000"), &mut record(&mut seen))
        .unwrap();
    drive(&mut pool, &mut seen, |s| s.contains(&Seen::Up(2)));
    assert_eq!(
        seen[1],
        Seen::Failed {
            seq: 2,
            error: RequestError::TooLarge
        }
    );
    assert!(
        matches!(&seen[2], Seen::Down(e) if e.contains("4096")),
        "{seen:?}"
    );
    seen.clear();
    // Refusals: too big for the write buffer, too many in flight.
    let huge = request("/echo", &"y".repeat(2000));
    assert!(matches!(
        pool.send(0, &huge, &mut record(&mut seen)),
        Err(SendError::NoRoom { len, .. }) if len == huge.len()
    ));
    pool.send(0, &get("/slow?ms=2000"), &mut record(&mut seen))
        .unwrap();
    pool.send(0, &get("/echo"), &mut record(&mut seen)).unwrap();
    assert_eq!(
        pool.send(0, &get("/echo"), &mut record(&mut seen)),
        Err(SendError::InFlightFull(2))
    );
    // The slow one times out; the one behind it loses its connection.
    drive(&mut pool, &mut seen, |s| s.contains(&Seen::Up(3)));
    assert_eq!(
        &seen[..2],
        [
            Seen::Failed {
                seq: 3,
                error: RequestError::Timeout
            },
            Seen::Failed {
                seq: 4,
                error: RequestError::ConnectionLost
            }
        ]
    );
    assert_eq!(pool.conn(0).unwrap().stats().failed, 3);
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
}

/// A blocking rustls server: answers every request on one connection (keep-alive) with a
/// chunked echo of its body, counting connections.
#[test]
fn https_with_a_private_ca() {
    let pki = TestPki::new("keepalive");
    let (listener, port) = bind_loopback();
    let server_config = Arc::clone(&pki.server_config);
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(server_config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut served = 0;
        while served < 3 {
            let n = tls.read(&mut chunk).unwrap();
            assert!(n > 0, "client closed early");
            buf.extend_from_slice(&chunk[..n]);
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if buf.len() < end + 4 + len {
                    break;
                }
                let body = buf[end + 4..end + 4 + len].to_vec();
                buf.drain(..end + 4 + len);
                served += 1;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
                    body.len(),
                    String::from_utf8_lossy(&body)
                );
                tls.write_all(reply.as_bytes()).unwrap();
            }
        }
        tls.conn.send_close_notify();
        let _ = tls.flush();
    });
    let mut cfg = config(&format!("https://localhost:{port}/"));
    cfg.ca_file = Some(pki.ca_file.clone());
    let mut pool = HttpPool::new().unwrap();
    pool.add(cfg).unwrap();
    let mut seen = Vec::new();
    assert!(
        pool.warm_up(TIMEOUT, &mut record(&mut seen)).unwrap(),
        "{seen:?}"
    );
    seen.clear();
    for i in 1..=3u64 {
        pool.send(
            0,
            &request("/", &format!("tls {i}")),
            &mut record(&mut seen),
        )
        .unwrap();
    }
    drive(&mut pool, &mut seen, |s| responses(s) == 3);
    assert_eq!(
        seen[..3],
        (1..=3u64)
            .map(|i| Seen::Response {
                seq: i,
                status: 200,
                body: format!("tls {i}")
            })
            .collect::<Vec<_>>()
    );
    server.join().unwrap();
    assert_eq!(pool.conn(0).unwrap().stats().opens, 1);

    // Without the CA file the certificate is refused: never up, the error says why.
    let (l2, port2) = bind_loopback();
    let pki_cfg = Arc::clone(&pki.server_config);
    let t = std::thread::spawn(move || {
        if let Ok((tcp, _)) = l2.accept() {
            let conn = rustls::ServerConnection::new(pki_cfg).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let _ = tls.read(&mut [0u8; 64]);
        }
    });
    let mut pool2 = HttpPool::new().unwrap();
    pool2
        .add(config(&format!("https://localhost:{port2}/")))
        .unwrap();
    let mut seen = Vec::new();
    let start = Instant::now();
    while !seen.iter().any(|s| matches!(s, Seen::Down(_))) {
        assert!(start.elapsed() < TIMEOUT, "{seen:?}");
        pool2
            .run_once(Duration::from_millis(20), &mut record(&mut seen))
            .unwrap();
    }
    assert!(
        matches!(&seen[0], Seen::Down(e) if e.contains("TLS") && e.to_lowercase().contains("certificate")),
        "{seen:?}"
    );
    t.join().unwrap();
}

#[test]
fn an_unreachable_endpoint_reports_down_once_and_keeps_trying() {
    // A port that refuses connections for the whole test: bound, never listening. (A port
    // freed by dropping a listener is not safe: a connect to a free port of the ephemeral range
    // may pick that very port as its source and connect to itself — TCP simultaneous open —
    // which this test once saw as an `Up`.)
    let refusing =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    refusing
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    let port = refusing
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("bound address")
        .port();
    let mut pool = HttpPool::new().unwrap();
    pool.add(config(&format!("http://127.0.0.1:{port}/")))
        .unwrap();
    let mut seen = Vec::new();
    let start = Instant::now();
    while pool.conn(0).unwrap().stats().attempts < 4 {
        assert!(start.elapsed() < TIMEOUT, "{seen:?}");
        pool.run_once(Duration::from_millis(20), &mut record(&mut seen))
            .unwrap();
    }
    assert_eq!(seen.len(), 1, "one Down per outage: {seen:?}");
    assert!(
        matches!(&seen[0], Seen::Down(e) if e.contains("cannot connect") && e.contains(&port.to_string())),
        "{seen:?}"
    );
    assert!(pool.conn(0).unwrap().stats().failures >= 3);
    assert!(!pool.conn(0).unwrap().is_ready());
    drop(refusing);
}
