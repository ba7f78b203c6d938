//! The mock node's WebSocket endpoint: `eth_subscribe ["newHeads"]` and a notification for every
//! block the simulated chain mines (number, `baseFeePerGas`, `gasUsed`, `gasLimit`, `timestamp`,
//! as a real node sends them), so `keel run` can price gas from the chain it sends to.
//!
//! Uses tungstenite's server handshake like the simulated venue's streams (`sim::conn`), one
//! thread per connection. Owns its listener and connection threads, joined on stop; never panics
//! on client input (an unknown request gets a JSON-RPC error, a broken connection is closed).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

use crate::sim::SimError;

/// The head the server thread publishes after each block (atomics: one writer).
#[derive(Debug, Default)]
pub struct HeadCell {
    /// Block number.
    pub number: AtomicU64,
    /// Base fee per gas, wei.
    pub base_fee: AtomicU64,
    /// Gas used by the block.
    pub gas_used: AtomicU64,
    /// Gas limit of the block.
    pub gas_limit: AtomicU64,
    /// Block timestamp, seconds.
    pub timestamp: AtomicU64,
}

/// The running WebSocket endpoint.
pub(super) struct HeadsServer {
    pub addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl HeadsServer {
    /// Binds on `ip` (a free port) and serves until `stop`.
    pub fn start(
        ip: std::net::IpAddr,
        head: Arc<HeadCell>,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, SimError> {
        let want = SocketAddr::new(ip, 0);
        let listener =
            TcpListener::bind(want).map_err(|source| SimError::Bind { addr: want, source })?;
        let addr = listener.local_addr().map_err(|source| SimError::Io {
            what: "read the newHeads listener's address",
            source,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| SimError::Io {
                what: "set the newHeads listener non-blocking",
                source,
            })?;
        let thread = std::thread::Builder::new()
            .name("keel-sim-node-ws".into())
            .spawn(move || accept_loop(listener, head, stop))
            .map_err(|source| SimError::Io {
                what: "spawn the newHeads thread",
                source,
            })?;
        Ok(Self {
            addr,
            thread: Some(thread),
        })
    }

    /// Waits for the accept thread (which joins its connections); the stop flag must be set.
    pub fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, head: Arc<HeadCell>, stop: Arc<AtomicBool>) {
    let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((tcp, _)) => {
                let (head, stop) = (head.clone(), stop.clone());
                if let Ok(h) = std::thread::Builder::new()
                    .name("keel-sim-node-ws-conn".into())
                    .spawn(move || serve(tcp, &head, &stop))
                    && let Ok(mut v) = conns.lock()
                {
                    v.push(h);
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    let handles = conns.lock().map(|mut v| std::mem::take(&mut *v));
    for h in handles.unwrap_or_default() {
        let _ = h.join();
    }
}

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

/// The `eth_subscription` notification of the current head.
fn notification(sub: &str, h: &HeadCell) -> String {
    let g = |a: &AtomicU64| a.load(Ordering::Acquire);
    json!({
        "jsonrpc": "2.0",
        "method": "eth_subscription",
        "params": {
            "subscription": sub,
            "result": {
                "number": hex(g(&h.number)),
                "baseFeePerGas": hex(g(&h.base_fee)),
                "gasUsed": hex(g(&h.gas_used)),
                "gasLimit": hex(g(&h.gas_limit)),
                "timestamp": hex(g(&h.timestamp)),
            }
        }
    })
    .to_string()
}

/// One connection: the handshake, then requests answered and heads pushed until stop or close.
fn serve(tcp: TcpStream, head: &HeadCell, stop: &AtomicBool) {
    let _ = tcp.set_nodelay(true);
    if tcp.set_nonblocking(false).is_err()
        || tcp
            .set_read_timeout(Some(Duration::from_millis(10)))
            .is_err()
    {
        return;
    }
    let Ok(mut ws) = accept(tcp, stop) else {
        return;
    };
    let mut subs: Vec<String> = Vec::new();
    let mut next_sub = 1u64;
    let mut last_sent = 0u64;
    while !stop.load(Ordering::Acquire) {
        match ws.read() {
            Ok(Message::Text(t)) => {
                let reply = answer(t.as_str(), &mut subs, &mut next_sub);
                if ws.send(Message::Text(reply.into())).is_err() {
                    return;
                }
                // A fresh subscriber gets the current head at once.
                last_sent = 0;
            }
            Ok(Message::Close(_)) => {
                let _ = ws.flush();
                return;
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
        let n = head.number.load(Ordering::Acquire);
        if n != last_sent && !subs.is_empty() {
            last_sent = n;
            for s in &subs {
                if ws
                    .send(Message::Text(notification(s, head).into()))
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    let _ = ws.close(None);
    let _ = ws.flush();
}

fn accept(tcp: TcpStream, stop: &AtomicBool) -> Result<WebSocket<TcpStream>, ()> {
    let mut hs = tungstenite::accept(tcp);
    loop {
        match hs {
            Ok(ws) => return Ok(ws),
            Err(tungstenite::HandshakeError::Interrupted(mid)) => {
                if stop.load(Ordering::Acquire) {
                    return Err(());
                }
                hs = mid.handshake();
            }
            Err(tungstenite::HandshakeError::Failure(_)) => return Err(()),
        }
    }
}

/// The reply to one request: `eth_subscribe ["newHeads"]`, `eth_unsubscribe`, or an error.
fn answer(text: &str, subs: &mut Vec<String>, next_sub: &mut u64) -> String {
    let Ok(req) = serde_json::from_str::<Value>(text) else {
        return json!({"jsonrpc": "2.0", "id": null,
            "error": {"code": -32700, "message": "parse error"}})
        .to_string();
    };
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let method = req.get("method").and_then(Value::as_str).unwrap_or("");
    let first = req
        .get("params")
        .and_then(|p| p.get(0))
        .and_then(Value::as_str);
    match (method, first) {
        ("eth_subscribe", Some("newHeads")) => {
            let sub = format!("{:#034x}", *next_sub);
            *next_sub += 1;
            subs.push(sub.clone());
            json!({"jsonrpc": "2.0", "id": id, "result": sub}).to_string()
        }
        ("eth_subscribe", _) => json!({"jsonrpc": "2.0", "id": id,
            "error": {"code": -32602, "message": "only newHeads subscriptions are served"}})
        .to_string(),
        ("eth_unsubscribe", Some(s)) => {
            let had = subs.iter().any(|x| x == s);
            subs.retain(|x| x != s);
            json!({"jsonrpc": "2.0", "id": id, "result": had}).to_string()
        }
        _ => json!({"jsonrpc": "2.0", "id": id,
            "error": {"code": -32601, "message": format!("the method {method} does not exist/is not available")}})
        .to_string(),
    }
}
