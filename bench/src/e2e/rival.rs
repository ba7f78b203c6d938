//! The conventional stack, written the way a tick-to-trade path usually starts out: tokio,
//! tokio-tungstenite for the market-data WebSocket, serde_json into structs (owned `String`s),
//! a bounded tokio mpsc channel to a pricer task that looks instruments up by name in a
//! `HashMap` and reprices every option one at a time with the scalar Black-76 (the engine's
//! scalar twin, [`keel_engine::greeks::price_row`]: about 5× faster than the `blackscholes`
//! crate in `keel-bench greeks`, so the rival is the stronger of the two choices), and an
//! order serialised with serde_json and sent on a second WebSocket connection to the same
//! keel-sim (keel-sim's order endpoint is Deribit's JSON-RPC over WebSocket; it has no HTTP
//! one).
//!
//! Measured like Keel: tick-to-trade from the tick's receipt (when tokio-tungstenite hands
//! over the message: after the socket read and the frame decode, so a little later than Keel's
//! stamp at the socket read — in the rival's favour) to the order's bytes written (the sink's
//! `send` returned, i.e. flushed to the socket); wire-to-wire from the tick's `sim_send_ns` to
//! keel-sim's receipt of the order, joined by the order's label.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use futures_util::{SinkExt, StreamExt};
use keel_engine::greeks::{Model, OptionKind, OptionRow, price_row};
use keel_feeds::clock;
use keel_feeds::instrument::{Instrument, InstrumentKind, OptionRight};
use keel_tools::run::{fetch_deribit, sample_book};
use keel_tools::sim::OrderReceipt;
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

use super::Args;

/// The rival's order labels start with this (Keel's start with `k`).
pub const LABEL_PREFIX: &str = "conv-";

/// Capacity of the reader → pricer channel (bounded, as a tick path should be).
const CHANNEL: usize = 4_096;

/// One order the rival sent.
pub struct RivalSample {
    /// The tick was handed over by tokio-tungstenite, local clock.
    pub recv_ns: u64,
    /// keel-sim's `sim_send_ns` of the tick (0 if it had none).
    pub venue_ns: u64,
    /// Reprice and decision done.
    pub decided_ns: u64,
    /// The order's bytes were written.
    pub sent_ns: u64,
    /// The order's label.
    pub label: String,
}

/// What the rival did in one run.
pub struct RivalRun {
    pub samples: Vec<RivalSample>,
    /// keel-sim's receipt of each sample's order (`None`: not found).
    pub receipts: Vec<Option<u64>>,
    pub warm_from_ns: u64,
    /// Messages parsed into ticks.
    pub ticks: u64,
    /// Whole-book reprices.
    pub reprices: u64,
    pub elapsed: Duration,
}

impl RivalRun {
    pub fn measured(&self) -> impl Iterator<Item = (&RivalSample, Option<u64>)> {
        self.samples
            .iter()
            .zip(self.receipts.iter().copied())
            .filter(|(s, _)| s.recv_ns >= self.warm_from_ns)
    }

    /// keel-sim's receipt of each order, by label.
    pub fn join_receipts(&mut self, all: &[OrderReceipt]) {
        let by_label: HashMap<&str, u64> = all
            .iter()
            .filter(|r| r.label.starts_with(LABEL_PREFIX))
            .map(|r| (r.label.as_str(), r.recv_ns))
            .collect();
        self.receipts = self
            .samples
            .iter()
            .map(|s| by_label.get(s.label.as_str()).copied())
            .collect();
    }
}

// The JSON the conventional stack reads and writes, as structs.

#[derive(Deserialize)]
struct Envelope {
    params: Option<Params>,
}

#[derive(Deserialize)]
struct Params {
    #[allow(dead_code)]
    channel: String,
    data: TickData,
}

#[derive(Deserialize)]
struct TickData {
    instrument_name: Option<String>,
    #[allow(dead_code)]
    timestamp: u64,
    mark_iv: Option<f64>,
    underlying_price: Option<f64>,
    #[allow(dead_code)]
    best_bid_price: Option<f64>,
    #[allow(dead_code)]
    best_ask_price: Option<f64>,
    sim_send_ns: Option<u64>,
}

#[derive(Serialize)]
struct Rpc<'a, P> {
    jsonrpc: &'a str,
    id: u64,
    method: &'a str,
    params: P,
}

#[derive(Serialize)]
struct Subscribe {
    channels: Vec<String>,
}

#[derive(Serialize)]
struct OrderParams<'a> {
    instrument_name: &'a str,
    amount: f64,
    #[serde(rename = "type")]
    kind: &'a str,
    label: String,
}

struct Tick {
    recv_ns: u64,
    data: TickData,
}

/// The pricer task's state: the chain by name, one forward per expiry, one vol per option.
struct Pricer {
    by_name: HashMap<String, usize>,
    strike: Vec<f64>,
    expiry_ms: Vec<u64>,
    kind: Vec<OptionKind>,
    expiry_of: Vec<usize>,
    vol: Vec<f64>,
    fwd: Vec<f64>,
    qty: Vec<f64>,
    delta: Vec<f64>,
    price: Vec<f64>,
}

impl Pricer {
    fn new(listed: &[Instrument], book: &[(String, f64)]) -> Self {
        let options: Vec<&Instrument> = listed
            .iter()
            .filter(|i| i.kind == InstrumentKind::Option)
            .collect();
        let mut expiries: Vec<u64> = options.iter().map(|i| i.expiry_ms).collect();
        expiries.sort_unstable();
        expiries.dedup();
        let qty_of: HashMap<&str, f64> = book.iter().map(|(n, q)| (n.as_str(), *q)).collect();
        let n = options.len();
        Self {
            by_name: options
                .iter()
                .enumerate()
                .map(|(r, i)| (i.name.clone(), r))
                .collect(),
            strike: options.iter().map(|i| i.strike).collect(),
            expiry_ms: options.iter().map(|i| i.expiry_ms).collect(),
            kind: options
                .iter()
                .map(|i| match i.right {
                    Some(OptionRight::Put) => OptionKind::Put,
                    _ => OptionKind::Call,
                })
                .collect(),
            expiry_of: options
                .iter()
                .map(|i| expiries.binary_search(&i.expiry_ms).unwrap_or(0))
                .collect(),
            vol: vec![f64::NAN; n],
            fwd: vec![f64::NAN; expiries.len()],
            qty: options
                .iter()
                .map(|i| qty_of.get(i.name.as_str()).copied().unwrap_or(0.0))
                .collect(),
            delta: vec![0.0; n],
            price: vec![0.0; n],
        }
    }

    /// Applies a tick; true if it moved a vol or a forward.
    fn apply(&mut self, d: &TickData) -> bool {
        let Some(name) = &d.instrument_name else {
            return false;
        };
        let Some(&r) = self.by_name.get(name) else {
            return false;
        };
        let mut moved = false;
        if let Some(iv) = d.mark_iv
            && iv > 0.0
            && self.vol[r] != iv / 100.0
        {
            self.vol[r] = iv / 100.0;
            moved = true;
        }
        if let Some(f) = d.underlying_price
            && f > 0.0
        {
            let e = self.expiry_of[r];
            if self.fwd[e] != f {
                self.fwd[e] = f;
                moved = true;
            }
        }
        moved
    }

    /// Reprices every marked option, one at a time; returns the book's coin delta.
    fn reprice(&mut self, now_ms: u64) -> f64 {
        let mut book_delta = 0.0;
        for r in 0..self.strike.len() {
            let f = self.fwd[self.expiry_of[r]];
            let sigma = self.vol[r];
            if !(f > 0.0 && sigma > 0.0) {
                continue;
            }
            let t = (self.expiry_ms[r] as f64 - now_ms as f64) / 31_536_000_000.0;
            let g = price_row(&OptionRow {
                kind: self.kind[r],
                model: Model::Black76,
                s: f,
                k: self.strike[r],
                t,
                r: 0.0,
                q: 0.0,
                sigma,
            });
            self.delta[r] = g.delta;
            self.price[r] = g.price;
            // Coin delta of an inverse (coin-premium) option: Δ − V/F.
            book_delta += self.qty[r] * (g.delta - g.price / f);
        }
        book_delta
    }
}

/// Runs the rival on keel-sim at `url` until `end`; samples before `warm_from_ns` are
/// warm-up.
pub fn run(a: &Args, url: &str, warm_from_ns: u64, end: Instant) -> Result<RivalRun> {
    let listed = fetch_deribit(url, None, "BTC", Duration::from_secs(10))
        .context("conventional stack: listing the chain")?;
    let book = sample_book(&listed, "BTC", a.seed);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("conventional stack: tokio runtime")?;
    let started = Instant::now();
    let mut r = rt.block_on(session(url, listed, book, a.every, end))?;
    r.warm_from_ns = warm_from_ns;
    r.elapsed = started.elapsed();
    Ok(r)
}

async fn session(
    url: &str,
    listed: Vec<Instrument>,
    book: Vec<(String, f64)>,
    every: u64,
    end: Instant,
) -> Result<RivalRun> {
    let (md, _) = tokio_tungstenite::connect_async(url)
        .await
        .context("conventional stack: market-data connection")?;
    let (mut md_tx, mut md_rx) = md.split();
    let channels: Vec<String> = listed
        .iter()
        .map(|i| match i.kind {
            InstrumentKind::Index => format!("deribit_price_index.{}", i.name),
            _ => format!("ticker.{}.100ms", i.name),
        })
        .collect();
    let sub = serde_json::to_string(&Rpc {
        jsonrpc: "2.0",
        id: 1,
        method: "public/subscribe",
        params: Subscribe { channels },
    })?;
    md_tx.send(Message::text(sub)).await?;
    let (orders, _) = tokio_tungstenite::connect_async(url)
        .await
        .context("conventional stack: order connection")?;
    let (mut order_tx, mut order_rx) = orders.split();
    let replies = tokio::spawn(async move { while let Some(Ok(_)) = order_rx.next().await {} });

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Tick>(CHANNEL);
    let deadline = tokio::time::Instant::from_std(end);
    let reader = tokio::spawn(async move {
        let mut ticks = 0u64;
        loop {
            let msg = match tokio::time::timeout_at(deadline, md_rx.next()).await {
                Ok(Some(Ok(m))) => m,
                _ => break,
            };
            let recv_ns = clock::now_ns();
            let Message::Text(text) = msg else {
                continue;
            };
            let Ok(env) = serde_json::from_str::<Envelope>(text.as_str()) else {
                continue;
            };
            let Some(p) = env.params else {
                continue;
            };
            ticks += 1;
            if tx
                .send(Tick {
                    recv_ns,
                    data: p.data,
                })
                .await
                .is_err()
            {
                break;
            }
        }
        ticks
    });

    let hedge = listed
        .iter()
        .find(|i| i.kind == InstrumentKind::Perpetual)
        .map(|i| i.name.clone())
        .ok_or_else(|| anyhow!("conventional stack: no perpetual listed"))?;
    let lot = listed
        .iter()
        .find(|i| i.name == hedge)
        .map(|i| i.min_size.max(i.contract_size).max(1.0))
        .unwrap_or(10.0);
    let pricer = tokio::spawn(async move {
        let mut p = Pricer::new(&listed, &book);
        let mut samples = Vec::new();
        let mut reprices = 0u64;
        let mut id = 0u64;
        while let Some(t) = rx.recv().await {
            if !p.apply(&t.data) {
                continue;
            }
            let delta = p.reprice(clock::now_ns() / 1_000_000);
            reprices += 1;
            if !reprices.is_multiple_of(every) {
                continue;
            }
            let decided_ns = clock::now_ns();
            id += 1;
            let label = format!("{LABEL_PREFIX}{id}");
            let order = serde_json::to_string(&Rpc {
                jsonrpc: "2.0",
                id,
                method: if delta > 0.0 {
                    "private/sell"
                } else {
                    "private/buy"
                },
                params: OrderParams {
                    instrument_name: &hedge,
                    amount: lot,
                    kind: "market",
                    label: label.clone(),
                },
            })?;
            order_tx.send(Message::text(order)).await?;
            let sent_ns = clock::now_ns();
            samples.push(RivalSample {
                recv_ns: t.recv_ns,
                venue_ns: t.data.sim_send_ns.unwrap_or(0),
                decided_ns,
                sent_ns,
                label,
            });
        }
        let _ = order_tx.close().await;
        anyhow::Ok((samples, reprices))
    });
    let ticks = reader.await.context("conventional stack: reader task")?;
    let (samples, reprices) = pricer.await.context("conventional stack: pricer task")??;
    replies.abort();
    let _ = md_tx.close().await;
    let n = samples.len();
    Ok(RivalRun {
        samples,
        receipts: vec![None; n],
        warm_from_ns: 0,
        ticks,
        reprices,
        elapsed: Duration::ZERO,
    })
}
