//! `keel-bench exec`: from a hedge decision to the last byte of its copies written, for 1, 2
//! and 4 venues, Keel's exec path beside a conventional implementation, in one process, against
//! keel-sim's mock node and builders on loopback with no injected latency.
//!
//! - Keel: [`EvmExec::decide`] — pick the nearest pre-signed rung from the shelf and write its
//!   pre-built request on each venue's warm keep-alive connection (venue 1 is the node's
//!   `eth_sendRawTransaction`, venues 2.. are builders' `eth_sendBundle` with their
//!   `X-Flashbots-Signature`). Timed from just before `decide` to its return, when every
//!   copy's last byte has been handed to the kernel (a loopback socket takes a request whole).
//!   Every decision is real: the node accepts the first copy, the builders answer duplicates,
//!   the fill comes back, and the signer thread re-signs the next nonce (the bench waits for a
//!   fresh ladder before each decision, untimed).
//!   The time to the first acceptance (fill) is printed beside it.
//! - Conventional: a new `reqwest::Client` per decision and `futures::future::join_all` over
//!   one POST per venue (the same bodies and headers, as bytes already built), on a tokio
//!   current-thread runtime. Such code cannot see when its last byte is written: it is timed
//!   to the end of the join (every reply read), the only point it knows its copies are out.
//!
//! - Floor: the same bytes written by bare `write(2)` calls on warm blocking sockets: what the
//!   kernel's loopback path costs per copy, whoever writes it.
//!
//! The mock answers at once, so the conventional figure is mostly connection set-up, request
//! formatting and waiting on every venue; Keel's is the write itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use hdrhistogram::Histogram;
use keel_engine::exec::evm::exec::{EvmExec, EvmExecConfig};
use keel_engine::exec::evm::ladder::{CallTemplate, Ladder, LadderSpec, RouteKind, RouteTarget};
use keel_engine::exec::evm::signer::{LadderSigner, RpcChainReader, SignerConfig};
use keel_engine::exec::evm::{Address, Bytes, EvmSigner, FlashbotsSigner, U256};
use keel_engine::exec::{FillStatus, HedgeIntent};
use keel_engine::pipeline::StopFlag;
use keel_engine::pipeline::telemetry::TickTrace;
use keel_feeds::clock;
use keel_feeds::event::{Side, Venue};
use keel_feeds::instrument::InstrumentId;
use keel_tools::sim::node::{NodeConfig, NodeSim};
use serde::Serialize;

/// Flags of `keel-bench exec`.
#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object (`keel`, `conventional`, each keyed by venue count) instead of the
    /// table.
    #[arg(long)]
    json: bool,
    /// Timed decisions per venue count and implementation.
    #[arg(long, default_value_t = 2_000, value_name = "N")]
    decisions: u64,
    /// Untimed decisions first (connections, caches, allocator).
    #[arg(long, default_value_t = 200, value_name = "N")]
    warmup: u64,
}

/// A throwaway key for the bench's simulated chain only (never a real account).
const BENCH_KEY: &str = "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba";
/// The bench's Flashbots reputation key (simulated builders only).
const BENCH_FB_KEY: &str = "0x6c8f4c5a8b1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d";

#[derive(Serialize, Clone, Copy)]
struct Pct {
    p50_ns: u64,
    p99_ns: u64,
}

impl Pct {
    fn of(h: &Histogram<u64>) -> Self {
        Self {
            p50_ns: h.value_at_quantile(0.5),
            p99_ns: h.value_at_quantile(0.99),
        }
    }
}

#[derive(Serialize)]
struct Report {
    keel: BTreeMap<String, Pct>,
    conventional: BTreeMap<String, Pct>,
    keel_first_ack: BTreeMap<String, Pct>,
    floor_write: BTreeMap<String, Pct>,
    decisions: u64,
    cpu: String,
    sched: &'static str,
}

/// Puts the calling (measuring) thread under SCHED_FIFO priority 1, after the node's thread
/// was started (it stays an ordinary thread): otherwise, on a busy 2-core machine, the node
/// woken by a write preempts the writer inside its syscall and the node's signature checks
/// (~100 µs) land in Keel's decision → written figure. Returns the policy in force.
fn realtime() -> &'static str {
    // SAFETY: sched_setscheduler on the calling thread (pid 0) with a valid, initialised
    // sched_param; it only changes scheduling, and failure is reported by the return value.
    let ok = unsafe {
        let p = libc::sched_param { sched_priority: 1 };
        libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) == 0
    };
    if ok { "SCHED_FIFO" } else { "SCHED_OTHER" }
}

/// Back to the ordinary policy (before spawning threads that must not inherit SCHED_FIFO).
fn ordinary() {
    // SAFETY: as in `realtime`; priority 0 is the only valid one for SCHED_OTHER.
    unsafe {
        let p = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_OTHER, &p);
    }
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .map(|name| {
            let n = std::thread::available_parallelism().map_or(0, |n| n.get());
            format!("{name}, {n} CPUs")
        })
        .unwrap_or_else(|| "unknown".into())
}

fn spec(chain_id: u64) -> Result<LadderSpec> {
    let to: Address = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D".parse()?;
    // swapExactTokensForTokens(amountIn, amountOutMin, path offset, to, deadline) shapes: the
    // amount is word 0; the rest are placeholders of the right size.
    let template = |sel: [u8; 4]| -> Result<CallTemplate> {
        let mut d = sel.to_vec();
        d.resize(4 + 32 * 5, 0);
        Ok(CallTemplate::new(to, Bytes::from(d), 0, U256::ZERO)?)
    };
    Ok(LadderSpec {
        chain_id,
        gas_limit: 250_000,
        max_priority_fee_per_gas: 1_000_000_000,
        buy: template([0x38, 0xed, 0x17, 0x39])?,
        sell: template([0x18, 0xcb, 0xaf, 0xe5])?,
        lot: 0.01,
        lot_units: U256::from(10_000_000_000_000_000u64),
        rungs: 4,
    })
}

fn intent(id: u64) -> HedgeIntent {
    HedgeIntent {
        trace: TickTrace::default(),
        id,
        amount: 0.03,
        ref_price: 3_000.0,
        coin_delta: 0.03,
        instrument: InstrumentId(0),
        side: if id.is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        },
        venue: Venue::Ethereum,
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static bounds")
}

/// One request as the conventional client sends it: URL, extra headers, body.
struct PlainRequest {
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn plain(url: &str, bytes: &[u8]) -> Result<PlainRequest> {
    let text = std::str::from_utf8(bytes)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("a pre-built request without a head"))?;
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(": "))
        .filter(|(n, _)| !matches!(*n, "Host" | "Content-Length"))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    Ok(PlainRequest {
        url: url.to_string(),
        headers,
        body: body.as_bytes().to_vec(),
    })
}

struct KeelRun {
    written: Histogram<u64>,
    first_ack: Histogram<u64>,
    last_requests: Vec<PlainRequest>,
    last_raw: Vec<Vec<u8>>,
}

fn run_keel(urls: &[(RouteKind, String)], chain_id: u64, args: &Args) -> Result<KeelRun> {
    let routes = urls
        .iter()
        .map(|(k, u)| RouteTarget::parse(*k, u))
        .collect::<Result<Vec<_>, _>>()?;
    let key = EvmSigner::from_hex(BENCH_KEY, "the bench key")?;
    let fb = FlashbotsSigner::new(EvmSigner::from_hex(BENCH_FB_KEY, "the bench key")?);
    let reader = RpcChainReader::new(&urls[0].1, key.address(), Duration::from_secs(2));
    let (mut signer, shelf) = LadderSigner::new(
        SignerConfig {
            spec: spec(chain_id)?,
            routes: routes.clone(),
            fee_multiplier: 2,
            poll: Duration::from_millis(10),
        },
        key,
        Some(fb),
        Box::new(reader),
    )?;
    signer.step().context("the signer's first chain reading")?;
    // The signer on its own thread, as in `keel run` (signing on the measuring thread between
    // decisions would evict the hot path's data from the caches).
    let stop = StopFlag::new();
    ordinary();
    let signer_thread = signer.spawn(stop.clone())?;
    realtime();
    let mut exec = EvmExec::new(&routes, shelf.clone(), &EvmExecConfig::default())?;
    if !exec.warm_up(Duration::from_secs(5))? {
        bail!("the keep-alive connections did not come up within 5 s");
    }
    let mut written = histogram();
    let mut first_ack = histogram();
    let mut last: Option<Arc<Ladder>> = None;
    let total = args.warmup + args.decisions;
    for i in 0..total {
        // A fresh ladder at the next nonce first (the signer thread re-signs; untimed).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            exec.poll(Duration::ZERO);
            let Some(n) = exec.next_nonce() else {
                break;
            };
            // Both ladders the signer keeps (n and n + 1) fresh: it is idle, as it mostly is
            // between decisions in a run (its signing would otherwise share the other core with
            // the node's thread that every write wakes).
            let g = shelf.ladder(n);
            let g1 = shelf.ladder(n + 1);
            let fresh = |l: &&Arc<Ladder>, at: u64| l.nonce == at && !l.is_fired();
            if let (Some(l), Some(_)) = (
                g.as_ref().filter(|l| fresh(l, n)),
                g1.as_ref().filter(|l| fresh(l, n + 1)),
            ) {
                last = Some(Arc::clone(l));
                break;
            }
            if Instant::now() > deadline {
                bail!("no fresh ladder for decision {} within 5 s", i + 1);
            }
            // Busy-wait, as the exec tile's spin strategy does.
            std::hint::spin_loop();
        }
        let it = intent(i + 1);
        let t0 = clock::now_ns();
        let r = exec.decide(&it);
        let t1 = clock::now_ns();
        if let Err(why) = r {
            bail!("decision {} refused: {}", i + 1, why.name());
        }
        // The fill (first acceptance), then every copy's answer.
        let fill = loop {
            if let Some(f) = exec.pop_fill() {
                break f;
            }
            if Instant::now() > deadline {
                bail!("no fill for decision {} within 5 s", i + 1);
            }
            exec.poll(Duration::from_millis(1));
        };
        if fill.status != FillStatus::Filled {
            bail!("decision {} was not accepted: {:?}", i + 1, fill.status);
        }
        if i >= args.warmup {
            written.saturating_record(t1.saturating_sub(t0).max(1));
            first_ack.saturating_record(fill.done_ns.saturating_sub(t0).max(1));
        }
        while exec.race().in_flight() > 0 && Instant::now() < deadline {
            exec.poll(Duration::from_millis(1));
        }
    }
    stop.stop();
    signer_thread
        .join()
        .map_err(|_| anyhow!("the signer thread panicked"))?;
    // The last ladder fired (its nonce is spent: the conventional run gets duplicates).
    let ladder = last.ok_or_else(|| anyhow!("no ladder was fired"))?;
    let rung = &ladder.rungs(Side::Buy)[1];
    let last_requests = urls
        .iter()
        .enumerate()
        .map(|(r, (_, u))| plain(u, rung.request(r)))
        .collect::<Result<Vec<_>>>()?;
    let last_raw = (0..urls.len()).map(|r| rung.request(r).to_vec()).collect();
    exec.shutdown();
    Ok(KeelRun {
        written,
        first_ack,
        last_requests,
        last_raw,
    })
}

/// The floor: the same request bytes written with bare `write(2)` calls on warm blocking
/// sockets (TCP_NODELAY), one per venue, then every reply read (untimed). What the kernel's
/// loopback path costs per copy, whoever writes it.
fn run_floor(requests: &[PlainRequest], raw: &[Vec<u8>], args: &Args) -> Result<Histogram<u64>> {
    use std::io::Write;
    let mut socks = requests
        .iter()
        .map(|r| {
            let addr = r
                .url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string();
            let s = std::net::TcpStream::connect(&addr)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            Ok(s)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut h = histogram();
    let mut buf = vec![0u8; 64 << 10];
    for i in 0..args.warmup + args.decisions {
        let t0 = clock::now_ns();
        for (s, req) in socks.iter_mut().zip(raw) {
            s.write_all(req)?;
        }
        let t1 = clock::now_ns();
        if i >= args.warmup {
            h.saturating_record(t1.saturating_sub(t0).max(1));
        }
        for s in &mut socks {
            read_one_reply(s, &mut buf)?;
        }
    }
    Ok(h)
}

/// Reads one HTTP response framed by Content-Length.
fn read_one_reply(s: &mut std::net::TcpStream, buf: &mut [u8]) -> Result<()> {
    use std::io::Read;
    let mut got = 0;
    loop {
        let n = s.read(&mut buf[got..])?;
        if n == 0 {
            bail!("the node closed the floor connection");
        }
        got += n;
        let text = &buf[..got];
        if let Some(end) = text.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&text[..end]).unwrap_or("");
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())
                        .flatten()
                })
                .ok_or_else(|| anyhow!("a reply without Content-Length"))?;
            if got >= end + 4 + len {
                return Ok(());
            }
        }
        if got == buf.len() {
            bail!("a reply larger than the buffer");
        }
    }
}

fn run_conventional(requests: &[PlainRequest], args: &Args) -> Result<Histogram<u64>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut h = histogram();
    rt.block_on(async {
        for i in 0..args.warmup + args.decisions {
            let t0 = clock::now_ns();
            let client = reqwest::Client::new();
            let sends = requests.iter().map(|r| {
                let mut b = client.post(&r.url).body(r.body.clone());
                for (n, v) in &r.headers {
                    b = b.header(n.as_str(), v.as_str());
                }
                async move {
                    let resp = b.send().await?;
                    resp.bytes().await
                }
            });
            let results = futures::future::join_all(sends).await;
            let t1 = clock::now_ns();
            for r in results {
                r.context("conventional POST")?;
            }
            if i >= args.warmup {
                h.saturating_record(t1.saturating_sub(t0).max(1));
            }
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(h)
}

/// Runs the bench.
pub fn run(args: &Args) -> Result<()> {
    if args.decisions == 0 {
        bail!("--decisions must be at least 1");
    }
    let chain_id = 1;
    let mut cfg = NodeConfig {
        builders: 3,
        chain_id,
        // Mainnet's 12 s blocks: bundles stay valid across many decisions (re-signing per
        // block is untimed anyway), and a decision whose bundle copy timed out is settled at
        // its target block (the exec path waits for it: a builder could still include it).
        block_time: Duration::from_secs(12),
        ..NodeConfig::default()
    };
    cfg.seed = 7;
    let mut node = NodeSim::start(cfg).context("starting keel-sim's node and builders")?;
    let mut urls = vec![(RouteKind::Rpc, node.node_url())];
    urls.extend(
        node.builder_urls()
            .into_iter()
            .map(|u| (RouteKind::Builder, u)),
    );
    let sched = realtime();
    if sched != "SCHED_FIFO" {
        eprintln!(
            "warning: SCHED_FIFO refused (needs CAP_SYS_NICE): Keel's figures include the node \
             thread preempting the writer"
        );
    }
    let mut report = Report {
        keel: BTreeMap::new(),
        conventional: BTreeMap::new(),
        keel_first_ack: BTreeMap::new(),
        floor_write: BTreeMap::new(),
        decisions: args.decisions,
        cpu: cpu_name(),
        sched,
    };
    for venues in [1usize, 2, 4] {
        let k = run_keel(&urls[..venues], chain_id, args)?;
        let c = run_conventional(&k.last_requests, args)?;
        let f = run_floor(&k.last_requests, &k.last_raw, args)?;
        report.floor_write.insert(venues.to_string(), Pct::of(&f));
        report.keel.insert(venues.to_string(), Pct::of(&k.written));
        report
            .keel_first_ack
            .insert(venues.to_string(), Pct::of(&k.first_ack));
        report.conventional.insert(venues.to_string(), Pct::of(&c));
    }
    node.stop();
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "keel-bench exec: decision -> last byte written, keel-sim node + builders on loopback, \
         no injected latency; {} decisions per row; CPU {}; measuring thread {}",
        args.decisions, report.cpu, report.sched
    );
    println!(
        "{:>6}  {:>22}  {:>22}  {:>22}  {:>24}  {:>9}",
        "venues",
        "keel p50 / p99",
        "floor write(2) p50/p99",
        "keel 1st ack p50 / p99",
        "conventional p50 / p99",
        "p50 ratio"
    );
    for v in ["1", "2", "4"] {
        let (k, f, a, c) = (
            report.keel[v],
            report.floor_write[v],
            report.keel_first_ack[v],
            report.conventional[v],
        );
        println!(
            "{:>6}  {:>22}  {:>22}  {:>22}  {:>24}  {:>8.1}x",
            v,
            format!("{} / {}", us(k.p50_ns), us(k.p99_ns)),
            format!("{} / {}", us(f.p50_ns), us(f.p99_ns)),
            format!("{} / {}", us(a.p50_ns), us(a.p99_ns)),
            format!("{} / {}", us(c.p50_ns), us(c.p99_ns)),
            c.p50_ns as f64 / k.p50_ns.max(1) as f64
        );
    }
    println!(
        "floor: the same bytes by bare write(2) calls on warm blocking sockets (the kernel's \
         loopback cost per copy)"
    );
    println!(
        "conventional: a new reqwest client per decision + join_all over the venues, timed to \
         the end of the join (its first point of knowing the copies are out)"
    );
    Ok(())
}

fn us(ns: u64) -> String {
    format!("{:.1} µs", ns as f64 / 1e3)
}
