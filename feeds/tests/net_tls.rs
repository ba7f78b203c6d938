//! wss:// and https:// against a loopback rustls server whose certificate a private CA (made by
//! rcgen) signed: trusted through `ca_file` it streams, the same URL without the CA fails with a
//! certificate error. The WebSocket server side is tungstenite (an independent implementation).

mod net_support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use keel_feeds::net::{ConnError, ConnectionConfig, FeedLoop, HttpError, http_request};
use keel_feeds::{DisconnectReason, EventBody};
use net_support::*;
use rustls::{ServerConnection, StreamOwned};
use tungstenite::Message;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::{Frame, FrameHeader};

/// Serves `connections` TLS WebSocket connections; reports each one's outcome on the channel.
fn spawn_wss_server(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    connections: usize,
) -> mpsc::Receiver<Result<Vec<String>, String>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for _ in 0..connections {
            let Ok((tcp, _)) = listener.accept() else {
                return;
            };
            tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
            let tls = StreamOwned::new(ServerConnection::new(config.clone()).unwrap(), tcp);
            let outcome = serve_one(tls);
            let _ = tx.send(outcome);
        }
    });
    rx
}

fn serve_one(
    tls: StreamOwned<ServerConnection, std::net::TcpStream>,
) -> Result<Vec<String>, String> {
    let mut ws = tungstenite::accept(tls).map_err(|e| format!("handshake: {e}"))?;
    let mut received = Vec::new();
    let sub = ws.read().map_err(|e| e.to_string())?;
    received.push(sub.to_string());
    ws.send(Message::text(format!("echo:{sub}"))).unwrap();
    ws.send(Message::text("hello-tls")).unwrap();
    // A fragmented message with a ping between its fragments.
    let frag = |fin, opcode, data: &[u8]| {
        let header = FrameHeader {
            is_final: fin,
            opcode,
            ..FrameHeader::default()
        };
        Message::Frame(Frame::from_payload(header, data.to_vec().into()))
    };
    ws.send(frag(false, OpCode::Data(Data::Text), b"part1-"))
        .unwrap();
    ws.send(Message::Ping(b"tls-ping".to_vec().into())).unwrap();
    ws.send(frag(true, OpCode::Data(Data::Continue), b"part2"))
        .unwrap();
    ws.send(Message::binary(vec![b'z'; 40_000])).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Pong(p)) => {
                received.push(format!("pong:{}", String::from_utf8_lossy(&p)));
                ws.send(Message::text("pong-ok")).unwrap();
            }
            Ok(Message::Close(c)) => {
                received.push(format!("close:{:?}", c.map(|c| u16::from(c.code))));
                let _ = ws.flush();
                return Ok(received);
            }
            Ok(m) => received.push(m.to_string()),
            Err(e) => {
                received.push(format!("end:{e}"));
                return Ok(received);
            }
        }
    }
}

#[test]
fn wss_with_private_ca_streams() {
    let pki = TestPki::new("stream");
    let (listener, port) = bind_loopback();
    let outcomes = spawn_wss_server(listener, pki.server_config.clone(), 1);
    let mut cfg = ConnectionConfig::new(&format!("wss://127.0.0.1:{port}/ws/api/v2")).unwrap();
    cfg.ca_file = Some(pki.ca_file.clone());
    let mut feed = FeedLoop::new().unwrap();
    let (session, seen) = RecordingSession::new();
    feed.add(cfg, Box::new(session)).unwrap();
    let mut events = Vec::new();
    drive_until_seen(&mut feed, &mut events, &seen, "pong-ok over TLS", |s| {
        s.count("pong-ok") == 1
    });
    {
        let s = seen.lock().unwrap();
        let texts = s.texts();
        assert_eq!(texts[..3], ["echo:subscribe#1", "hello-tls", "part1-part2"]);
        assert_eq!(s.messages[3], vec![b'z'; 40_000]);
    }
    assert_eq!(connection_events(&events), [EventBody::Connected]);
    // A clean shutdown sends a close frame the server sees.
    feed.shutdown(&mut |ev| events.push(ev));
    let received = outcomes
        .recv_timeout(TIMEOUT)
        .expect("server outcome")
        .unwrap();
    assert_eq!(received[0], "subscribe#1");
    assert!(
        received.contains(&"pong:tls-ping".to_string()),
        "{received:?}"
    );
    assert!(
        received.contains(&"close:Some(1000)".to_string()),
        "{received:?}"
    );
}

#[test]
fn wss_without_the_ca_fails_with_a_certificate_error() {
    let pki = TestPki::new("noca");
    let (listener, port) = bind_loopback();
    let outcomes = spawn_wss_server(listener, pki.server_config.clone(), 1);
    let cfg = ConnectionConfig::new(&format!("wss://127.0.0.1:{port}/")).unwrap();
    let mut feed = FeedLoop::new().unwrap();
    let (session, seen) = RecordingSession::new();
    feed.add(cfg, Box::new(session)).unwrap();
    let mut events = Vec::new();
    drive_until(&mut feed, &mut events, "Disconnected", |ev| {
        !connection_events(ev).is_empty()
    });
    assert_eq!(
        connection_events(&events),
        [EventBody::Disconnected {
            reason: DisconnectReason::ConnectFailed
        }]
    );
    let failure = feed.last_failure(0).unwrap();
    assert!(
        matches!(
            failure.error,
            ConnError::Tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{failure}"
    );
    assert_eq!(seen.lock().unwrap().opens, 0);
    let server_side = outcomes.recv_timeout(TIMEOUT).expect("server outcome");
    assert!(server_side.is_err(), "{server_side:?}");
}

/// Answers one HTTPS request with a chunked body.
fn spawn_https_server(listener: TcpListener, config: Arc<rustls::ServerConfig>) {
    thread::spawn(move || {
        let Ok((tcp, _)) = listener.accept() else {
            return;
        };
        tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut tls = StreamOwned::new(ServerConnection::new(config).unwrap(), tcp);
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match tls.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let first_line = String::from_utf8_lossy(&req)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        let body = format!("you asked {first_line}");
        let (a, b) = body.split_at(5);
        let resp = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        );
        let _ = tls.write_all(resp.as_bytes());
        let _ = tls.flush();
        tls.conn.send_close_notify();
        let _ = tls.flush();
    });
}

#[test]
fn https_request_with_private_ca() {
    let pki = TestPki::new("https");
    let (listener, port) = bind_loopback();
    spawn_https_server(listener, pki.server_config.clone());
    let (status, body) = http_request(
        &format!("https://127.0.0.1:{port}/api/v2/public/get_instruments?currency=BTC"),
        "GET",
        None,
        &[],
        Some(&pki.ca_file),
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "you asked GET /api/v2/public/get_instruments?currency=BTC HTTP/1.1"
    );

    let (listener, port) = bind_loopback();
    spawn_https_server(listener, pki.server_config.clone());
    let e = http_request(
        &format!("https://127.0.0.1:{port}/"),
        "GET",
        None,
        &[],
        None,
        Duration::from_secs(5),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            HttpError::Tls {
                source: rustls::Error::InvalidCertificate(_),
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(&format!("https://127.0.0.1:{port}/")),
        "{e}"
    );
}
