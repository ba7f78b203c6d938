//! The node's server thread: one mio poll over every endpoint's listener and connections,
//! HTTP/1.1 keep-alive request framing with `httparse`, JSON-RPC dispatch to the shared
//! [`ChainState`], replies held for their latency in per-connection queues (in request order)
//! and written when due, faults injected per request, blocks mined on a timer.
//!
//! Owns its sockets and the chain; never blocks but in `poll`, never panics on client input.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keel_engine::exec::evm::{self, Address, B256};
use keel_feeds::net::rand::WyRand;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use serde_json::{Value, json};

use super::chain::{ChainParams, ChainState, RefusalKind, TxRecord};
use super::heads::HeadCell;
use super::{Counters, EndpointBehaviour, NodeConfig, unit};
use crate::sim::SimError;

/// Connection tokens start here; listener k has token k.
const CONN_BASE: usize = 1 << 16;

enum Action {
    /// Write these bytes; close after them if the flag is set.
    Reply(Vec<u8>, bool),
    /// Close with a TCP reset.
    Reset,
}

struct Scheduled {
    due: Instant,
    action: Action,
}

struct Conn {
    ep: usize,
    stream: TcpStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    queue: VecDeque<Scheduled>,
    last_due: Instant,
    /// A timeout fault: nothing more is answered on this connection.
    stalled: bool,
    /// Close once `out` is written (Connection: close, a bad request).
    closing: bool,
    /// Stop reading: a close is queued.
    read_done: bool,
}

struct Endpoint {
    behaviour: EndpointBehaviour,
    rng: WyRand,
    counters: Arc<Counters>,
    builder: bool,
}

pub(super) struct Server {
    poll: Poll,
    listeners: Vec<TcpListener>,
    addrs: Vec<SocketAddr>,
    endpoints: Vec<Endpoint>,
    conns: Vec<Option<Conn>>,
    chain: ChainState,
    block: Arc<AtomicU64>,
    block_time: Duration,
    max_request: usize,
    /// The head the newHeads endpoint streams.
    head: Arc<HeadCell>,
    /// Every accepted transaction, in order (tests check one per sender and nonce).
    log: Arc<std::sync::Mutex<Vec<TxRecord>>>,
}

/// Gas limit of every simulated block; each uses half of it (the EIP-1559 target), so the
/// base fee the heads announce is the one the chain keeps and a predictor agrees with it.
pub(super) const BLOCK_GAS_LIMIT: u64 = 30_000_000;

fn unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> SimError {
    move |source| SimError::Io { what, source }
}

impl Server {
    pub(super) fn bind(
        cfg: &NodeConfig,
        block: Arc<AtomicU64>,
        counters: Vec<Arc<Counters>>,
        head: Arc<HeadCell>,
        log: Arc<std::sync::Mutex<Vec<TxRecord>>>,
    ) -> Result<Self, SimError> {
        let poll = Poll::new().map_err(io_err("create the node's poll"))?;
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        let mut endpoints = Vec::new();
        for (k, counters) in counters.into_iter().enumerate() {
            let want = if k == 0 {
                cfg.listen
            } else {
                SocketAddr::new(cfg.listen.ip(), 0)
            };
            let mut l =
                TcpListener::bind(want).map_err(|source| SimError::Bind { addr: want, source })?;
            poll.registry()
                .register(&mut l, Token(k), Interest::READABLE)
                .map_err(io_err("register a node listener"))?;
            addrs.push(
                l.local_addr()
                    .map_err(io_err("read a listener's address"))?,
            );
            listeners.push(l);
            endpoints.push(Endpoint {
                behaviour: cfg.behaviour(k),
                rng: WyRand::from_seed(
                    cfg.seed ^ (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                ),
                counters,
                builder: k > 0,
            });
        }
        Ok(Self {
            poll,
            listeners,
            addrs,
            endpoints,
            conns: Vec::new(),
            chain: ChainState::new(ChainParams {
                chain_id: cfg.chain_id,
                start_block: cfg.start_block,
                base_fee: cfg.base_fee,
                funded: cfg.funded.clone(),
            }),
            block,
            block_time: cfg.block_time,
            max_request: cfg.max_request,
            head,
            log,
        })
        .inspect(Server::publish_head)
    }

    fn publish_head(&self) {
        let h = &self.head;
        h.base_fee.store(
            u64::try_from(self.chain.base_fee()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        h.gas_limit.store(BLOCK_GAS_LIMIT, Ordering::Relaxed);
        h.gas_used.store(BLOCK_GAS_LIMIT / 2, Ordering::Relaxed);
        h.timestamp.store(unix_s(), Ordering::Relaxed);
        h.number.store(self.chain.block_number(), Ordering::Release);
    }

    /// Records an accepted raw transaction in the log.
    fn log_accepted(&self, raw: &[u8]) {
        if let Ok(tx) = evm::decode(raw)
            && let Some(r) = self.chain.tx(&tx.hash)
            && let Ok(mut log) = self.log.lock()
        {
            log.push(*r);
        }
    }

    pub(super) fn addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    pub(super) fn run(mut self, stop: &AtomicBool) {
        let mut events = Events::with_capacity(256);
        let mut ready: Vec<Token> = Vec::with_capacity(256);
        let mut next_block = Instant::now() + self.block_time;
        while !stop.load(Ordering::Acquire) {
            let now = Instant::now();
            if now >= next_block {
                self.chain.mine();
                self.block
                    .store(self.chain.block_number(), Ordering::Release);
                self.publish_head();
                next_block += self.block_time;
                if next_block < now {
                    next_block = now + self.block_time;
                }
            }
            self.run_due(now);
            let mut wake = next_block.min(now + Duration::from_millis(50));
            for c in self.conns.iter().flatten() {
                if let Some(s) = c.queue.front() {
                    wake = wake.min(s.due);
                }
            }
            let timeout = wake.saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                eprintln!("keel-sim node: poll failed: {e}");
                return;
            }
            ready.clear();
            ready.extend(events.iter().map(|e| e.token()));
            for &token in &ready {
                if token.0 < CONN_BASE {
                    self.accept(token.0);
                } else {
                    self.serve(token.0 - CONN_BASE);
                }
            }
        }
    }

    fn accept(&mut self, ep: usize) {
        loop {
            let (mut stream, _) = match self.listeners[ep].accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let _ = stream.set_nodelay(true);
            let slot = match self.conns.iter().position(Option::is_none) {
                Some(i) => i,
                None => {
                    self.conns.push(None);
                    self.conns.len() - 1
                }
            };
            if self
                .poll
                .registry()
                .register(
                    &mut stream,
                    Token(CONN_BASE + slot),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                continue;
            }
            Counters::bump(&self.endpoints[ep].counters.connections);
            self.conns[slot] = Some(Conn {
                ep,
                stream,
                inbuf: Vec::with_capacity(16 * 1024),
                out: Vec::with_capacity(16 * 1024),
                out_pos: 0,
                queue: VecDeque::new(),
                last_due: Instant::now(),
                stalled: false,
                closing: false,
                read_done: false,
            });
        }
    }

    fn close(&mut self, slot: usize, reset: bool) {
        if let Some(mut c) = self.conns.get_mut(slot).and_then(Option::take) {
            if reset {
                let _ = socket2::SockRef::from(&c.stream).set_linger(Some(Duration::ZERO));
            }
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    /// Readiness of connection `slot`: read, parse and schedule, write.
    fn serve(&mut self, slot: usize) {
        let Some(mut c) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let mut eof = false;
        if !c.read_done {
            let mut chunk = [0u8; 16 * 1024];
            loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => c.inbuf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        eof = true;
                        break;
                    }
                }
            }
            self.parse_requests(&mut c);
        }
        let keep = flush(&mut c) && !eof;
        self.conns[slot] = Some(c);
        if !keep {
            self.close(slot, false);
        }
    }

    /// Writes every reply whose time has come; performs due resets and closes.
    fn run_due(&mut self, now: Instant) {
        for slot in 0..self.conns.len() {
            let Some(c) = self.conns[slot].as_mut() else {
                continue;
            };
            let mut reset = false;
            while c.queue.front().is_some_and(|s| s.due <= now) {
                let Some(s) = c.queue.pop_front() else { break };
                match s.action {
                    Action::Reply(bytes, close) => {
                        c.out.extend_from_slice(&bytes);
                        if close {
                            c.closing = true;
                            c.queue.clear();
                        }
                    }
                    Action::Reset => {
                        reset = true;
                        break;
                    }
                }
            }
            if reset {
                self.close(slot, true);
                continue;
            }
            if !flush(c) {
                self.close(slot, false);
            }
        }
    }

    fn parse_requests(&mut self, c: &mut Conn) {
        while !c.read_done && !c.inbuf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let head_len = match req.parse(&c.inbuf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => {
                    if c.inbuf.len() > self.max_request {
                        self.bad_request(c, 413, "request head too large");
                    }
                    return;
                }
                Err(e) => {
                    self.bad_request(c, 400, &format!("malformed HTTP request: {e}"));
                    return;
                }
            };
            let mut content_length = 0usize;
            let mut chunked = false;
            let mut close = req.version == Some(0);
            let mut auth: Option<String> = None;
            for h in req.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    match std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                    {
                        Some(n) => content_length = n,
                        None => {
                            self.bad_request(c, 400, "bad Content-Length");
                            return;
                        }
                    }
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = true;
                } else if h.name.eq_ignore_ascii_case("connection") {
                    let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
                    if v.contains("close") {
                        close = true;
                    } else if v.contains("keep-alive") {
                        close = false;
                    }
                } else if h.name.eq_ignore_ascii_case(evm::FLASHBOTS_SIGNATURE_HEADER) {
                    auth = Some(String::from_utf8_lossy(h.value).into_owned());
                }
            }
            let method_ok = req.method == Some("POST");
            if chunked {
                self.bad_request(
                    c,
                    411,
                    "chunked request bodies are not supported; send Content-Length",
                );
                return;
            }
            if head_len.saturating_add(content_length) > self.max_request {
                self.bad_request(c, 413, "request too large");
                return;
            }
            if c.inbuf.len() < head_len + content_length {
                return;
            }
            let body: Vec<u8> = c.inbuf[head_len..head_len + content_length].to_vec();
            c.inbuf.drain(..head_len + content_length);
            if !method_ok {
                self.bad_request(c, 405, "only POST is served");
                return;
            }
            self.request(c, &body, auth.as_deref(), close);
            if close {
                c.read_done = true;
            }
        }
    }

    /// Answers a request that cannot be served with `status`, a JSON-RPC parse error, and a
    /// close.
    fn bad_request(&mut self, c: &mut Conn, status: u16, why: &str) {
        Counters::bump(&self.endpoints[c.ep].counters.bad_requests);
        let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": format!("parse error: {why}")}});
        let bytes = http_reply(status, body.to_string().as_bytes(), true);
        self.schedule(c, Duration::ZERO, Action::Reply(bytes, true));
        c.read_done = true;
        c.inbuf.clear();
    }

    fn schedule(&mut self, c: &mut Conn, delay: Duration, action: Action) {
        let due = (Instant::now() + delay).max(c.last_due);
        c.last_due = due;
        c.queue.push_back(Scheduled { due, action });
    }

    /// One complete HTTP request: faults, then authentication, then JSON-RPC.
    fn request(&mut self, c: &mut Conn, body: &[u8], auth: Option<&str>, close: bool) {
        let ep = c.ep;
        let e = &mut self.endpoints[ep];
        let delay = e.behaviour.latency.sample(&mut e.rng);
        let u = unit(&mut e.rng);
        let coin = e.rng.next_u64() & 1 == 1;
        if c.stalled {
            return;
        }
        let b = e.behaviour;
        let counters = Arc::clone(&e.counters);
        let mut edge = b.error_rate;
        if u < edge {
            Counters::bump(&counters.fault_errors);
            let reply = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32603, "message": "keel-sim injected error: service unavailable"}});
            let bytes = http_reply(503, reply.to_string().as_bytes(), close);
            self.schedule(c, delay, Action::Reply(bytes, close));
            return;
        }
        edge += b.timeout_rate;
        if u < edge {
            Counters::bump(&counters.fault_timeouts);
            c.stalled = true;
            return;
        }
        edge += b.reset_rate;
        if u < edge {
            Counters::bump(&counters.fault_resets);
            self.schedule(c, delay, Action::Reset);
            c.read_done = true;
            return;
        }
        edge += b.malformed_rate;
        if u < edge {
            Counters::bump(&counters.fault_malformed);
            let bytes = if coin {
                b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\n{}".to_vec()
            } else {
                let full = json!({"jsonrpc": "2.0", "id": 1, "result": "0x0"}).to_string();
                http_reply(200, &full.as_bytes()[..full.len() / 2], close)
            };
            self.schedule(c, delay, Action::Reply(bytes, close));
            return;
        }
        let (status, reply) = self.rpc(ep, body, auth);
        let bytes = http_reply(status, reply.to_string().as_bytes(), close);
        self.schedule(c, delay, Action::Reply(bytes, close));
    }

    /// The JSON-RPC answer to `body` at endpoint `ep`, with its HTTP status.
    fn rpc(&mut self, ep: usize, body: &[u8], auth: Option<&str>) -> (u16, Value) {
        let counters = Arc::clone(&self.endpoints[ep].counters);
        if self.endpoints[ep].builder {
            let verdict = match auth {
                None => Err("missing X-Flashbots-Signature header".to_string()),
                // The relay's wording for a signature that does not match its address.
                Some(v) => evm::verify_header(v, body).map_err(|e| match e {
                    evm::FlashbotsAuthError::Mismatch { claimed, .. } => {
                        format!("error in signature check {}", claimed.to_checksum(None))
                    }
                    other => other.to_string(),
                }),
            };
            if let Err(why) = verdict {
                Counters::bump(&counters.unauthorized);
                return (403, error_obj(Value::Null, -32600, &why));
            }
        }
        let parsed: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                Counters::bump(&counters.bad_requests);
                return (
                    200,
                    error_obj(Value::Null, -32700, &format!("parse error: {e}")),
                );
            }
        };
        match parsed {
            Value::Array(calls) if calls.is_empty() => {
                (200, error_obj(Value::Null, -32600, "empty batch"))
            }
            Value::Array(calls) => (
                200,
                Value::Array(calls.iter().map(|call| self.call(ep, call)).collect()),
            ),
            call => (200, self.call(ep, &call)),
        }
    }

    fn call(&mut self, ep: usize, req: &Value) -> Value {
        let counters = Arc::clone(&self.endpoints[ep].counters);
        Counters::bump(&counters.requests);
        let id = req.get("id").cloned().unwrap_or(Value::Null);
        let Some(method) = req.get("method").and_then(Value::as_str) else {
            return error_obj(id, -32600, "invalid request: no method");
        };
        let empty = Vec::new();
        let params = match req.get("params") {
            None | Some(Value::Null) => &empty,
            Some(Value::Array(p)) => p,
            Some(_) => return error_obj(id, -32602, "invalid params: expected an array"),
        };
        let result = match method {
            "eth_chainId" => Ok(json!(format!("{:#x}", self.chain.chain_id()))),
            "eth_blockNumber" => Ok(json!(format!("{:#x}", self.chain.block_number()))),
            "eth_gasPrice" => Ok(json!(format!(
                "{:#x}",
                self.chain.base_fee() + 1_000_000_000
            ))),
            "eth_getTransactionCount" => self.get_transaction_count(params),
            // The head's number and base fee (what a signer prices its fee cap from); only the
            // "latest" and "pending" tags, and only those two fields of a block.
            "eth_getBlockByNumber" => match params.first().and_then(Value::as_str) {
                Some("latest" | "pending") => Ok(json!({
                    "number": format!("{:#x}", self.chain.block_number()),
                    "baseFeePerGas": format!("{:#x}", self.chain.base_fee()),
                })),
                _ => Err((
                    -32602,
                    "eth_getBlockByNumber: only the \"latest\" and \"pending\" tags".to_string(),
                )),
            },
            "eth_getTransactionReceipt" => self.receipt(params),
            "eth_sendRawTransaction" => self.send_raw(ep, params, &counters),
            "eth_sendBundle" if self.endpoints[ep].builder => {
                self.send_bundle(ep, params, &counters)
            }
            _ => Err((
                -32601,
                format!("the method {method} does not exist/is not available"),
            )),
        };
        match result {
            Ok(v) => json!({"jsonrpc": "2.0", "id": id, "result": v}),
            Err((code, message)) => error_obj(id, code, &message),
        }
    }

    fn get_transaction_count(&self, params: &[Value]) -> Result<Value, (i64, String)> {
        let who = address_arg(params, 0)?;
        let tag = params
            .get(1)
            .and_then(Value::as_str)
            .ok_or((-32602, "missing value for required argument 1".to_string()))?;
        let pending = match tag {
            "pending" => true,
            "latest" | "safe" | "finalized" | "earliest" => false,
            t if t.starts_with("0x") => false,
            t => {
                return Err((
                    -32602,
                    format!("invalid argument 1: unknown block tag {t:?}"),
                ));
            }
        };
        Ok(json!(format!("{:#x}", self.chain.nonce(&who, pending))))
    }

    fn receipt(&self, params: &[Value]) -> Result<Value, (i64, String)> {
        let text = params
            .first()
            .and_then(Value::as_str)
            .ok_or((-32602, "missing value for required argument 0".to_string()))?;
        let hash: B256 = text.parse().map_err(|_| {
            (
                -32602,
                format!("invalid argument 0: {text:?} is not a 32-byte hash"),
            )
        })?;
        Ok(match self.chain.tx(&hash) {
            Some(r) if r.block.is_some() => json!({
                "transactionHash": format!("{hash:#x}"),
                "blockNumber": format!("{:#x}", r.block.unwrap_or(0)),
                "from": r.from.to_checksum(None),
                "to": r.to.map(|a| a.to_checksum(None)),
                "status": "0x1",
                "type": "0x2",
            }),
            _ => Value::Null,
        })
    }

    fn send_raw(
        &mut self,
        ep: usize,
        params: &[Value],
        counters: &Counters,
    ) -> Result<Value, (i64, String)> {
        let raw = hex_arg(params.first(), "argument 0")?;
        match self.chain.submit(&raw, ep) {
            Ok(hash) => {
                Counters::bump(&counters.accepted);
                self.log_accepted(&raw);
                Ok(json!(format!("{hash:#x}")))
            }
            Err(r) => {
                count_refusal(counters, r.kind);
                Err((r.code, r.message))
            }
        }
    }

    fn send_bundle(
        &mut self,
        ep: usize,
        params: &[Value],
        counters: &Counters,
    ) -> Result<Value, (i64, String)> {
        let bundle = params.first().and_then(Value::as_object).ok_or((
            -32602,
            "invalid argument 0: expected a bundle object".to_string(),
        ))?;
        let txs = bundle
            .get("txs")
            .and_then(Value::as_array)
            .filter(|t| !t.is_empty())
            .ok_or((
                -32602,
                "invalid argument 0: txs must be a non-empty array".to_string(),
            ))?;
        if let Some(b) = bundle.get("blockNumber") {
            let n = b
                .as_str()
                .and_then(|s| s.strip_prefix("0x"))
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .ok_or((
                    -32602,
                    "invalid argument 0: blockNumber must be 0x-hex".to_string(),
                ))?;
            if n <= self.chain.block_number() {
                Counters::bump(&counters.rejected);
                return Err((
                    -32602,
                    format!(
                        "bundle block number {n} is not in the future (latest is {})",
                        self.chain.block_number()
                    ),
                ));
            }
        }
        let mut raws = Vec::with_capacity(txs.len());
        for (i, t) in txs.iter().enumerate() {
            raws.push(hex_arg(Some(t), &format!("txs[{i}]"))?);
        }
        let e = &mut self.endpoints[ep];
        if e.behaviour.lost_rate > 0.0 && unit(&mut e.rng) < e.behaviour.lost_rate {
            // The builder answers as it would and then loses the block: nothing reaches the
            // chain (a real builder drops a bundle it cannot include, silently).
            return match self.chain.answer_bundle_only(&raws) {
                Ok(hash) => {
                    Counters::bump(&counters.bundles_lost);
                    Ok(json!({"bundleHash": format!("{hash:#x}")}))
                }
                Err(r) => {
                    count_refusal(counters, r.kind);
                    Err((r.code, r.message))
                }
            };
        }
        match self.chain.submit_bundle(&raws, ep) {
            Ok(hash) => {
                counters
                    .accepted
                    .fetch_add(raws.len() as u64, Ordering::Relaxed);
                for raw in &raws {
                    self.log_accepted(raw);
                }
                Ok(json!({"bundleHash": format!("{hash:#x}")}))
            }
            Err(r) => {
                count_refusal(counters, r.kind);
                Err((r.code, r.message))
            }
        }
    }
}

fn count_refusal(counters: &Counters, kind: RefusalKind) {
    match kind {
        RefusalKind::Duplicate => Counters::bump(&counters.duplicate),
        RefusalKind::Rejected => Counters::bump(&counters.rejected),
    }
}

fn address_arg(params: &[Value], i: usize) -> Result<Address, (i64, String)> {
    let text = params
        .get(i)
        .and_then(Value::as_str)
        .ok_or((-32602, format!("missing value for required argument {i}")))?;
    text.parse().map_err(|_| {
        (
            -32602,
            format!("invalid argument {i}: {text:?} is not an address"),
        )
    })
}

fn hex_arg(v: Option<&Value>, what: &str) -> Result<Vec<u8>, (i64, String)> {
    let text = v
        .and_then(Value::as_str)
        .ok_or((-32602, format!("invalid {what}: expected a 0x-hex string")))?;
    let hex = text.strip_prefix("0x").ok_or((
        -32602,
        format!("invalid {what}: hex string without 0x prefix"),
    ))?;
    keel_engine::exec::evm::parse::hex_bytes(what, &format!("0x{hex}"))
        .map(|b| b.to_vec())
        .map_err(|_| (-32602, format!("invalid {what}: invalid hex string")))
}

fn error_obj(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

fn http_reply(status: u16, body: &[u8], close: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Writes what is queued; false when the connection should be closed (an error, or a close
/// that is now complete).
fn flush(c: &mut Conn) -> bool {
    while c.out_pos < c.out.len() {
        match c.stream.write(&c.out[c.out_pos..]) {
            Ok(0) => return false,
            Ok(n) => c.out_pos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    c.out.clear();
    c.out_pos = 0;
    !(c.closing && c.queue.is_empty())
}
