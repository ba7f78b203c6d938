//! Keel's Hyperliquid pieces against keel-sim's exchange over loopback: pre-signed orders fired
//! over the WebSocket `post` channel fill at the simulated book; the same pre-signed order
//! raced over two connections fills once (the other copy is refused for its nonce: a
//! duplicate); a copy that lost the race is voided by its noop, after which the order itself
//! is refused; `POST /exchange` over keep-alive HTTP follows the same nonce rule; garbled
//! replies are counted and never produce a fill that did not happen.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel_engine::exec::evm::EvmSigner;
use keel_engine::exec::hyperliquid::orders::ERR_NONCE;
use keel_engine::exec::hyperliquid::{
    HlCommand, HlCounters, HyperliquidOrders, LimitWire, Network, OrderTypeWire, OrderWire,
    PresignedPair, Tif, copy_outcome, decimal_wire, presign,
};
use keel_engine::exec::race::{CopyOutcome, RaceBook, Resolution};
use keel_engine::exec::{Fill, FillStatus, HedgeIntent};
use keel_engine::pipeline::ring::{Consumer, Producer, ring};
use keel_engine::pipeline::telemetry::TickTrace;
use keel_feeds::event::{DisconnectReason, MarketEvent, Side, Venue};
use keel_feeds::instrument::InstrumentId;
use keel_feeds::net::{ConnectionConfig, FeedLoop, Outbox, Session};
use keel_tools::sim::binance_orders::OrderApiConfig;
use keel_tools::sim::{SimConfig, SimHandle, SimVenue};

const PATIENCE: Duration = Duration::from_secs(15);

fn signer() -> EvmSigner {
    EvmSigner::from_hex(&format!("0x{}", "5a".repeat(32)), "test key").unwrap()
}

fn sim(agent: &EvmSigner, garble_every: Option<u64>) -> SimHandle {
    SimVenue::start(SimConfig {
        options: 20,
        tick: Duration::from_millis(20),
        order_api: OrderApiConfig {
            hyperliquid_agents: vec![agent.address()],
            garble_every,
            ..OrderApiConfig::default()
        },
        ..SimConfig::default()
    })
    .expect("sim starts")
}

fn now_ms() -> u64 {
    keel_feeds::clock::now_ns() / 1_000_000
}

/// A ladder of `n` IOC buys of 0.01 BTC priced 5 % through the simulated ask (they fill),
/// each with its noop, at nonces `base + k`.
fn ladder(
    signer: &EvmSigner,
    sim: &SimHandle,
    n: usize,
    base: u64,
) -> Vec<(HedgeIntent, PresignedPair)> {
    let ask = sim.snapshot().binance.ask;
    assert!(ask > 0.0);
    (0..n)
        .map(|k| {
            let intent = HedgeIntent {
                trace: TickTrace {
                    recv_ns: 1,
                    ..TickTrace::default()
                },
                id: 500 + k as u64,
                amount: 0.01,
                ref_price: ask,
                coin_delta: 0.01,
                instrument: InstrumentId(0),
                side: Side::Buy,
                venue: Venue::Hyperliquid,
            };
            let order = OrderWire {
                a: 0,
                b: true,
                p: decimal_wire((ask * 1.05).round()).unwrap(),
                s: "0.01".into(),
                r: false,
                t: OrderTypeWire {
                    limit: LimitWire { tif: Tif::Ioc },
                },
                c: Some(format!("0x{:032x}", 0xbeef_0000 + k)),
            };
            (
                intent,
                presign(signer, order, base + k as u64, Network::Mainnet).unwrap(),
            )
        })
        .collect()
}

struct Watched {
    inner: HyperliquidOrders,
    counters: Arc<Mutex<HlCounters>>,
}

impl Session for Watched {
    fn venue(&self) -> Venue {
        self.inner.venue()
    }
    fn on_open(&mut self, out: &mut Outbox<'_>) {
        self.inner.on_open(out);
    }
    fn on_message(
        &mut self,
        payload: &[u8],
        recv_ts_ns: u64,
        out: &mut Outbox<'_>,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<(), DisconnectReason> {
        let r = self.inner.on_message(payload, recv_ts_ns, out, emit);
        *self.counters.lock().unwrap() = self.inner.counters();
        r
    }
    fn poll_outgoing(&mut self, out: &mut Outbox<'_>) -> bool {
        let w = self.inner.poll_outgoing(out);
        *self.counters.lock().unwrap() = self.inner.counters();
        w
    }
    fn on_flushed(&mut self, now_ns: u64) {
        self.inner.on_flushed(now_ns);
    }
}

struct Route {
    commands: Producer<HlCommand>,
    fills: Consumer<Fill>,
    counters: Arc<Mutex<HlCounters>>,
}

fn add_route(
    feed: &mut FeedLoop,
    url: &str,
    ladder: Vec<(HedgeIntent, PresignedPair)>,
    timeout: Duration,
) -> Route {
    add_route_as(feed, url, ladder, timeout, None)
}

fn add_route_as(
    feed: &mut FeedLoop,
    url: &str,
    ladder: Vec<(HedgeIntent, PresignedPair)>,
    timeout: Duration,
    user: Option<keel_engine::exec::evm::Address>,
) -> Route {
    let (cp, cc) = ring(64).unwrap();
    let (fp, fc) = ring(64).unwrap();
    let counters = Arc::new(Mutex::new(HlCounters::default()));
    feed.add(
        ConnectionConfig::new(url).unwrap(),
        Box::new(Watched {
            inner: match user {
                Some(u) => HyperliquidOrders::new(cc, fp, ladder, timeout.as_nanos() as u64)
                    .with_status_queries(u),
                None => HyperliquidOrders::new(cc, fp, ladder, timeout.as_nanos() as u64),
            },
            counters: counters.clone(),
        }),
    )
    .unwrap();
    Route {
        commands: cp,
        fills: fc,
        counters,
    }
}

fn fire(r: &mut Route, entry: u32, void: bool) {
    r.commands.push(HlCommand { entry, void }).unwrap();
}

/// Runs the loop until `done` says so (or panics after PATIENCE), collecting fills per route.
fn run_until(
    feed: &mut FeedLoop,
    routes: &mut [Route],
    got: &mut [Vec<Fill>],
    mut done: impl FnMut(&[Vec<Fill>], &[HlCounters]) -> bool,
) {
    let start = Instant::now();
    loop {
        feed.run_once(Duration::from_millis(5), &mut |_| {})
            .unwrap();
        for (r, g) in routes.iter_mut().zip(got.iter_mut()) {
            while let Some(f) = r.fills.pop() {
                g.push(f);
            }
        }
        let counters: Vec<HlCounters> =
            routes.iter().map(|r| *r.counters.lock().unwrap()).collect();
        if done(got, &counters) {
            return;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "fills {got:?}, counters {counters:?}"
        );
    }
}

#[test]
fn a_presigned_order_fills_over_websocket_post() {
    let key = signer();
    let sim = sim(&key, None);
    let mut feed = FeedLoop::new().unwrap();
    let l = ladder(&key, &sim, 2, now_ms());
    let mut routes = vec![add_route(
        &mut feed,
        &sim.hyperliquid_ws_url(),
        l,
        Duration::from_secs(5),
    )];
    fire(&mut routes[0], 0, false);
    fire(&mut routes[0], 1, false);
    let mut got = vec![Vec::new()];
    run_until(&mut feed, &mut routes, &mut got, |g, _| g[0].len() == 2);
    let ask = sim.snapshot().binance.ask;
    for f in &got[0] {
        assert_eq!(f.status, FillStatus::Filled, "{f:?}");
        assert!((f.filled - 0.01).abs() < 1e-12);
        assert!((f.price / ask - 1.0).abs() < 0.05, "{f:?}");
        assert!(f.trace.sent_ns > 0);
    }
    assert_eq!(sim.stats().fills, 2);
    feed.shutdown(&mut |_| {});
}

#[test]
fn the_same_presigned_order_raced_over_two_connections_fills_once_and_a_loser_is_voided() {
    let key = signer();
    let sim = sim(&key, None);
    let mut feed = FeedLoop::new().unwrap();
    let url = sim.hyperliquid_ws_url();
    // Both connections hold the same pre-signed bytes (one signing, two routes).
    let l = ladder(&key, &sim, 4, now_ms());
    let mut routes = vec![
        add_route(&mut feed, &url, l.clone(), Duration::from_secs(5)),
        add_route(&mut feed, &url, l, Duration::from_secs(5)),
    ];
    let mut race = RaceBook::new(&["hl ws#1", "hl ws#2"], 8, 5_000_000_000);
    for d in 0..3u32 {
        race.open(u64::from(d), keel_feeds::clock::now_ns())
            .unwrap();
        for (k, r) in routes.iter_mut().enumerate() {
            fire(r, d, false);
            race.fired(u64::from(d), k, keel_feeds::clock::now_ns());
        }
    }
    let mut got = vec![Vec::new(), Vec::new()];
    run_until(&mut feed, &mut routes, &mut got, |g, _| {
        g[0].len() + g[1].len() == 6
    });
    let mut won = 0;
    for (k, fills) in got.iter().enumerate() {
        for f in fills {
            let d = f.intent_id - 500;
            if let Some(Resolution::Won { .. }) =
                race.outcome(d, k, copy_outcome(f), keel_feeds::clock::now_ns())
            {
                won += 1;
            }
        }
    }
    assert_eq!(won, 3);
    for id in 500..503 {
        let copies: Vec<&Fill> = got.iter().flatten().filter(|f| f.intent_id == id).collect();
        let outcomes: Vec<CopyOutcome> = copies.iter().map(|f| copy_outcome(f)).collect();
        assert!(
            outcomes.contains(&CopyOutcome::Accepted) && outcomes.contains(&CopyOutcome::Duplicate),
            "{copies:?}"
        );
        assert!(copies.iter().any(|f| f.error_code == ERR_NONCE));
    }
    assert_eq!(race.totals().late_accepts, 0);
    assert_eq!(sim.stats().fills, 3);

    // Entry 3 lost a race elsewhere: route 0 voids it, then route 1's copy is refused.
    fire(&mut routes[0], 3, true);
    run_until(&mut feed, &mut routes, &mut got, |_, c| c[0].voided == 1);
    fire(&mut routes[1], 3, false);
    run_until(&mut feed, &mut routes, &mut got, |g, _| g[1].len() == 4);
    let last = got[1][3];
    assert_eq!(
        (last.intent_id, last.status, last.error_code),
        (503, FillStatus::Rejected, ERR_NONCE)
    );
    assert_eq!(copy_outcome(&last), CopyOutcome::Duplicate);
    assert_eq!(sim.stats().fills, 3, "the voided order never filled");
    feed.shutdown(&mut |_| {});
}

/// One keep-alive HTTP/1.1 POST; returns (status, body).
fn post(stream: &mut BufReader<TcpStream>, body: &[u8]) -> (u16, String) {
    let head = format!(
        "POST /exchange HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let tcp = stream.get_mut();
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(body).unwrap();
    let mut status_line = String::new();
    stream.read_line(&mut status_line).unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut buf = vec![0; length];
    stream.read_exact(&mut buf).unwrap();
    (status, String::from_utf8(buf).unwrap())
}

#[test]
fn http_exchange_keeps_the_nonce_rule_across_transports() {
    let key = signer();
    let sim = sim(&key, None);
    let base = now_ms();
    let l = ladder(&key, &sim, 2, base);
    let tcp = TcpStream::connect(sim.addr()).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut s = BufReader::new(tcp);
    let (status, body) = post(&mut s, &l[0].1.order.body);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["response"]["data"]["statuses"][0]["filled"]["oid"].is_u64(),
        "{v}"
    );
    // Same connection (keep-alive): the noop of a spent nonce, then a malformed body.
    let (_, body) = post(&mut s, &l[0].1.noop.body);
    assert!(body.contains("duplicate nonce"), "{body}");
    let (status, body) = post(&mut s, b"{\"action\":");
    assert_eq!(status, 422, "{body}");
    // The WebSocket route sees the nonce spent over HTTP too.
    let mut feed = FeedLoop::new().unwrap();
    let mut routes = vec![add_route(
        &mut feed,
        &sim.hyperliquid_ws_url(),
        l,
        Duration::from_secs(5),
    )];
    fire(&mut routes[0], 0, false);
    let mut got = vec![Vec::new()];
    run_until(&mut feed, &mut routes, &mut got, |g, _| g[0].len() == 1);
    assert_eq!(got[0][0].error_code, ERR_NONCE);
    assert_eq!(sim.stats().fills, 1);
    feed.shutdown(&mut |_| {});
}

#[test]
fn a_landed_order_whose_reply_was_garbled_is_found_with_order_status() {
    let key = signer();
    // Every second reply is cut in half: the second order's, then the first orderStatus's.
    let sim = sim(&key, Some(2));
    let mut feed = FeedLoop::new().unwrap();
    let l = ladder(&key, &sim, 2, now_ms());
    let mut routes = vec![add_route_as(
        &mut feed,
        &sim.hyperliquid_ws_url(),
        l,
        Duration::from_millis(200),
        Some(key.address()),
    )];
    fire(&mut routes[0], 0, false);
    fire(&mut routes[0], 1, false);
    let mut got = vec![Vec::new()];
    run_until(&mut feed, &mut routes, &mut got, |g, _| g[0].len() == 2);
    let c = *routes[0].counters.lock().unwrap();
    assert_eq!(
        (c.timeouts, c.void_refused, c.landed_unknown),
        (1, 1, 1),
        "{c:?}"
    );
    assert!(c.queries >= 2 && c.malformed >= 2, "{c:?}");
    let late = got[0].iter().find(|f| f.intent_id == 501).unwrap();
    assert_eq!(late.status, FillStatus::Filled, "{late:?}");
    assert!((late.filled - 0.01).abs() < 1e-12);
    assert!(late.price.is_finite(), "priced at the order's limit");
    assert_eq!(sim.stats().fills, 2);
    feed.shutdown(&mut |_| {});
}

#[test]
fn garbled_replies_are_counted_and_never_invent_a_fill() {
    let key = signer();
    // Every second reply on a connection is cut in half.
    let sim = sim(&key, Some(2));
    let mut feed = FeedLoop::new().unwrap();
    let l = ladder(&key, &sim, 2, now_ms());
    let mut routes = vec![add_route(
        &mut feed,
        &sim.hyperliquid_ws_url(),
        l,
        Duration::from_millis(300),
    )];
    fire(&mut routes[0], 0, false);
    let mut got = vec![Vec::new()];
    run_until(&mut feed, &mut routes, &mut got, |g, _| g[0].len() == 1);
    assert_eq!(got[0][0].status, FillStatus::Filled);
    // The second order's reply is garbled: counted; after the timeout its noop is sent and
    // refused (the order landed), so the order stays in flight, its exposure counted.
    fire(&mut routes[0], 1, false);
    run_until(&mut feed, &mut routes, &mut got, |_, c| {
        c[0].malformed >= 1 && c[0].void_refused == 1
    });
    let c = *routes[0].counters.lock().unwrap();
    assert_eq!((c.timeouts, c.landed_unknown), (1, 1), "{c:?}");
    assert_eq!(got[0].len(), 1, "no fill reported for an outcome not known");
    assert_eq!(sim.stats().fills, 2);
    feed.shutdown(&mut |_| {});
}
