//! The one-shot HTTP/1.1 client against a tiny loopback server written here: Content-Length,
//! chunked (split across writes, with extensions and trailers), read-to-end, POST bodies,
//! non-2xx statuses, malformed framing, truncation and timeouts.

mod net_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use keel_feeds::net::{HttpError, http_request};
use net_support::*;

/// Reads one request (head and Content-Length body) and returns (request line, body).
fn read_request(tcp: &mut TcpStream) -> (String, Vec<u8>, String) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tcp.read(&mut buf).unwrap();
        assert!(n > 0, "client closed early");
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    while data.len() < head_end + len {
        let n = tcp.read(&mut buf).unwrap();
        data.extend_from_slice(&buf[..n]);
    }
    let line = head.lines().next().unwrap().to_string();
    (line, data[head_end..head_end + len].to_vec(), head)
}

/// Serves each connection with `respond(request line, body, head)` -> list of writes.
fn serve(
    requests: usize,
    respond: impl Fn(&str, &[u8], &str) -> Vec<Vec<u8>> + Send + 'static,
) -> u16 {
    let (listener, port) = bind_loopback();
    thread::spawn(move || {
        for _ in 0..requests {
            let Ok((mut tcp, _)) = listener.accept() else {
                return;
            };
            let (line, body, head) = read_request(&mut tcp);
            for (i, part) in respond(&line, &body, &head).into_iter().enumerate() {
                if i > 0 {
                    thread::sleep(Duration::from_millis(5));
                }
                if part == b"HANG" {
                    thread::sleep(Duration::from_secs(3));
                    break;
                }
                if tcp.write_all(&part).is_err() {
                    break;
                }
            }
        }
    });
    port
}

fn get(url: &str) -> Result<(u16, Vec<u8>), HttpError> {
    http_request(url, "GET", None, &[], None, TIMEOUT)
}

#[test]
fn content_length_chunked_and_eof_bodies() {
    let port = serve(3, |line, _, head| {
        assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
        assert!(head.contains("\r\nAccept-Encoding: identity\r\n"), "{head}");
        assert!(head.contains("\r\nX-Test: yes\r\n"), "{head}");
        match line {
            "GET /len?a=1 HTTP/1.1" => vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello".to_vec(),
                b" world".to_vec(),
            ],
            "GET /chunked HTTP/1.1" => vec![
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel".to_vec(),
                b"lo\r\n".to_vec(),
                b"6;name=value\r\n worl".to_vec(),
                b"d\r\n0\r\nX-Trailer: t\r\n\r\n".to_vec(),
            ],
            "GET /eof HTTP/1.1" => vec![b"HTTP/1.0 200 OK\r\n\r\nuntil the end".to_vec()],
            other => panic!("unexpected {other}"),
        }
    });
    let h = [("X-Test", "yes")];
    let base = format!("http://127.0.0.1:{port}");
    let r = http_request(&format!("{base}/len?a=1"), "GET", None, &h, None, TIMEOUT).unwrap();
    assert_eq!(r, (200, b"hello world".to_vec()));
    let r = http_request(&format!("{base}/chunked"), "GET", None, &h, None, TIMEOUT).unwrap();
    assert_eq!(r, (200, b"hello world".to_vec()));
    let r = http_request(&format!("{base}/eof"), "GET", None, &h, None, TIMEOUT).unwrap();
    assert_eq!(r, (200, b"until the end".to_vec()));
}

#[test]
fn post_body_and_error_status() {
    let port = serve(2, |line, body, head| {
        if line.starts_with("POST /api ") {
            assert!(head.contains("Content-Length: 17\r\n"), "{head}");
            let mut resp = format!(
                "HTTP/1.1 201 Created\r\nContent-Length: {}\r\n\r\n",
                body.len() + 5
            )
            .into_bytes();
            resp.extend_from_slice(b"echo:");
            resp.extend_from_slice(body);
            vec![resp]
        } else {
            vec![b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found".to_vec()]
        }
    });
    let r = http_request(
        &format!("http://127.0.0.1:{port}/api"),
        "POST",
        Some(br#"{"method":"x"}   "#),
        &[("Content-Type", "application/json")],
        None,
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(r, (201, br#"echo:{"method":"x"}   "#.to_vec()));
    let r = get(&format!("http://127.0.0.1:{port}/missing")).unwrap();
    assert_eq!(r, (404, b"not found".to_vec()), "interim 1xx skipped");
}

#[test]
fn malformed_truncated_and_slow_responses_fail_with_the_url() {
    let port = serve(5, |line, _, _| match line {
        "GET /bad-chunk HTTP/1.1" => {
            vec![
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n"
                    .to_vec(),
            ]
        }
        "GET /short HTTP/1.1" => {
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this".to_vec()]
        }
        "GET /bad-length HTTP/1.1" => {
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n".to_vec()]
        }
        "GET /bad-head HTTP/1.1" => vec![b"SPDY/3 200 OK\r\n\r\n".to_vec()],
        _ => vec![b"HTTP/1.1 200 OK\r\n".to_vec(), b"HANG".to_vec()],
    });
    let base = format!("http://127.0.0.1:{port}");
    let e = get(&format!("{base}/bad-chunk")).unwrap_err();
    assert!(matches!(e, HttpError::Body { .. }), "{e}");
    assert!(e.to_string().contains("/bad-chunk"), "{e}");
    let e = get(&format!("{base}/short")).unwrap_err();
    assert!(
        matches!(
            e,
            HttpError::Truncated {
                expected: 100,
                got: 9,
                ..
            }
        ),
        "{e}"
    );
    let e = get(&format!("{base}/bad-length")).unwrap_err();
    assert!(e.to_string().contains("bad Content-Length \"-1\""), "{e}");
    let e = get(&format!("{base}/bad-head")).unwrap_err();
    assert!(matches!(e, HttpError::Head { .. }), "{e}");
    let start = Instant::now();
    let e = http_request(
        &format!("{base}/slow"),
        "GET",
        None,
        &[],
        None,
        Duration::from_millis(300),
    )
    .unwrap_err();
    assert!(matches!(e, HttpError::Timeout { .. }), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "timeout bounds the whole exchange"
    );
}

#[test]
fn bad_requests_are_refused_before_connecting() {
    let e = get("ws://127.0.0.1:1/").unwrap_err();
    assert!(matches!(e, HttpError::Scheme(_)), "{e}");
    let e = get("http://127.0.0.1:1/a b").unwrap_err();
    assert!(matches!(e, HttpError::Url(_)), "{e}");
    let e = http_request(
        "http://127.0.0.1:1/",
        "GET",
        None,
        &[("X", "a\r\nB: c")],
        None,
        TIMEOUT,
    )
    .unwrap_err();
    assert!(matches!(e, HttpError::BadRequest { .. }), "{e}");
    let e = http_request("http://127.0.0.1:1/", "GE T", None, &[], None, TIMEOUT).unwrap_err();
    assert!(matches!(e, HttpError::BadRequest { .. }), "{e}");
    // Nothing listens on port 1 of loopback.
    let e = get("http://127.0.0.1:1/").unwrap_err();
    assert!(matches!(e, HttpError::Connect { .. }), "{e}");
    assert!(e.to_string().contains("http://127.0.0.1:1/"), "{e}");
}
