//! Keel's Binance order session against keel-sim's `/ws-fapi/v1` over loopback: signed
//! `order.place` → fill; the same order raced over two connections → exactly one fill and one
//! duplicate (−4116); garbled replies counted and the orders behind them found out with
//! `order.status`, never lost or filled twice; a wrong secret refused by the venue.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel_engine::exec::binance::{
    BinanceCounters, BinanceCredentials, BinanceOrderConfig, BinanceOrders, INVALID_SIGNATURE,
    copy_outcome,
};
use keel_engine::exec::race::{CopyOutcome, RaceBook, Resolution};
use keel_engine::exec::{Fill, FillStatus, HedgeIntent};
use keel_engine::pipeline::ring::{Consumer, Producer, ring};
use keel_engine::pipeline::telemetry::TickTrace;
use keel_feeds::event::{DisconnectReason, MarketEvent, Side, Venue};
use keel_feeds::instrument::InstrumentId;
use keel_feeds::net::{ConnectionConfig, FeedLoop, Outbox, Session};
use keel_tools::sim::binance_orders::{BinanceAccount, OrderApiConfig};
use keel_tools::sim::{SimConfig, SimHandle, SimVenue};

const KEY: &str = "keelTestKey1";
const SECRET: &str = "keelTestSecretAbc123";
const PATIENCE: Duration = Duration::from_secs(15);

/// Publishes the session's counters after every callback (the session itself moves into the
/// feed loop).
struct Watched {
    inner: BinanceOrders,
    counters: Arc<Mutex<BinanceCounters>>,
}

impl Watched {
    fn publish(&self) {
        *self.counters.lock().unwrap() = self.inner.counters();
    }
}

impl Session for Watched {
    fn venue(&self) -> Venue {
        self.inner.venue()
    }
    fn on_open(&mut self, out: &mut Outbox<'_>) {
        self.inner.on_open(out);
        self.publish();
    }
    fn on_message(
        &mut self,
        payload: &[u8],
        recv_ts_ns: u64,
        out: &mut Outbox<'_>,
        emit: &mut dyn FnMut(MarketEvent),
    ) -> Result<(), DisconnectReason> {
        let r = self.inner.on_message(payload, recv_ts_ns, out, emit);
        self.publish();
        r
    }
    fn poll_outgoing(&mut self, out: &mut Outbox<'_>) -> bool {
        let w = self.inner.poll_outgoing(out);
        self.publish();
        w
    }
    fn on_flushed(&mut self, now_ns: u64) {
        self.inner.on_flushed(now_ns);
    }
}

fn sim(garble_every: Option<u64>) -> SimHandle {
    sim_with(OrderApiConfig {
        garble_every,
        ..OrderApiConfig::default()
    })
}

fn sim_with(api: OrderApiConfig) -> SimHandle {
    SimVenue::start(SimConfig {
        options: 20,
        tick: Duration::from_millis(20),
        order_api: OrderApiConfig {
            binance_account: Some(BinanceAccount::new(KEY, SECRET.as_bytes())),
            ..api
        },
        ..SimConfig::default()
    })
    .expect("sim starts")
}

struct Route {
    intents: Producer<HedgeIntent>,
    fills: Consumer<Fill>,
    counters: Arc<Mutex<BinanceCounters>>,
}

fn add_route(feed: &mut FeedLoop, url: &str, secret: &str, timeout: Duration) -> Route {
    let (ip, ic) = ring(64).unwrap();
    let (fp, fc) = ring(64).unwrap();
    let creds = BinanceCredentials::new(KEY, secret.as_bytes(), "test").unwrap();
    let orders = BinanceOrders::new(
        ic,
        fp,
        &creds,
        BinanceOrderConfig {
            symbol: "BTCUSDT".into(),
            qty_decimals: 3,
            recv_window_ms: 5_000,
            run_tag: 0x5eed,
            timeout_ns: timeout.as_nanos() as u64,
        },
    )
    .unwrap();
    let counters = Arc::new(Mutex::new(BinanceCounters::default()));
    feed.add(
        ConnectionConfig::new(url).unwrap(),
        Box::new(Watched {
            inner: orders,
            counters: counters.clone(),
        }),
    )
    .unwrap();
    Route {
        intents: ip,
        fills: fc,
        counters,
    }
}

fn intent(id: u64, side: Side, amount: f64) -> HedgeIntent {
    HedgeIntent {
        trace: TickTrace {
            recv_ns: 1,
            ..TickTrace::default()
        },
        id,
        amount,
        ref_price: 100_000.0,
        coin_delta: if side == Side::Buy { amount } else { -amount },
        instrument: InstrumentId(0),
        side,
        venue: Venue::Binance,
    }
}

/// Runs the loop until `want` fills came back on each route (or panics after PATIENCE).
fn collect(feed: &mut FeedLoop, routes: &mut [Route], want: &[usize]) -> Vec<Vec<Fill>> {
    let mut got: Vec<Vec<Fill>> = routes.iter().map(|_| Vec::new()).collect();
    let start = Instant::now();
    while got.iter().zip(want).any(|(g, w)| g.len() < *w) {
        assert!(
            start.elapsed() < PATIENCE,
            "fills so far {got:?}, counters {:?}",
            routes
                .iter()
                .map(|r| *r.counters.lock().unwrap())
                .collect::<Vec<_>>()
        );
        feed.run_once(Duration::from_millis(5), &mut |_| {})
            .unwrap();
        for (r, g) in routes.iter_mut().zip(got.iter_mut()) {
            while let Some(f) = r.fills.pop() {
                g.push(f);
            }
        }
    }
    got
}

#[test]
fn a_signed_market_order_fills_at_the_simulated_book() {
    let sim = sim(None);
    let mut feed = FeedLoop::new().unwrap();
    let mut routes = vec![add_route(
        &mut feed,
        &sim.binance_api_url(),
        SECRET,
        Duration::from_secs(5),
    )];
    routes[0].intents.push(intent(1, Side::Buy, 0.012)).unwrap();
    routes[0]
        .intents
        .push(intent(2, Side::Sell, 0.005))
        .unwrap();
    let got = collect(&mut feed, &mut routes, &[2]);
    let snap = sim.snapshot();
    for f in &got[0] {
        assert_eq!(f.status, FillStatus::Filled, "{f:?}");
        assert!(f.trace.sent_ns > 0 && f.done_ns >= f.trace.sent_ns);
        // Filled at the touch of a book that moved by a few ticks at most meanwhile.
        assert!((f.price / snap.binance.ask - 1.0).abs() < 0.05, "{f:?}");
    }
    let by_id = |id| got[0].iter().find(|f| f.intent_id == id).unwrap();
    assert!((by_id(1).filled - 0.012).abs() < 1e-12);
    assert!((by_id(2).filled + 0.005).abs() < 1e-12);
    let stats = sim.stats();
    assert_eq!((stats.orders, stats.fills), (2, 2));
    feed.shutdown(&mut |_| {});
}

#[test]
fn the_same_order_raced_over_two_connections_fills_once() {
    let sim = sim(None);
    let mut feed = FeedLoop::new().unwrap();
    let url = sim.binance_api_url();
    let mut routes = vec![
        add_route(&mut feed, &url, SECRET, Duration::from_secs(5)),
        add_route(&mut feed, &url, SECRET, Duration::from_secs(5)),
    ];
    let mut race = RaceBook::new(&["binance ws#1", "binance ws#2"], 16, 5_000_000_000);
    const DECISIONS: u64 = 5;
    for id in 1..=DECISIONS {
        race.open(id, keel_feeds::clock::now_ns()).unwrap();
        for (k, r) in routes.iter_mut().enumerate() {
            r.intents.push(intent(id, Side::Buy, 0.01)).unwrap();
            race.fired(id, k, keel_feeds::clock::now_ns());
        }
    }
    let got = collect(&mut feed, &mut routes, &[5, 5]);
    let mut won = 0;
    for (k, fills) in got.iter().enumerate() {
        for f in fills {
            let o = copy_outcome(f);
            assert!(
                matches!(o, CopyOutcome::Accepted | CopyOutcome::Duplicate),
                "{f:?}"
            );
            if let Some(Resolution::Won { .. }) =
                race.outcome(f.intent_id, k, o, keel_feeds::clock::now_ns())
            {
                won += 1;
            }
        }
    }
    // Exactly one copy of each decision filled; the other was the venue's duplicate.
    assert_eq!(won, DECISIONS);
    for id in 1..=DECISIONS {
        let copies: Vec<&Fill> = got.iter().flatten().filter(|f| f.intent_id == id).collect();
        let filled = copies
            .iter()
            .filter(|f| f.status == FillStatus::Filled)
            .count();
        let dup = copies.iter().filter(|f| f.error_code == -4116).count();
        assert_eq!((filled, dup), (1, 1), "{copies:?}");
    }
    let totals = race.totals();
    assert_eq!((totals.won, totals.late_accepts), (DECISIONS, 0));
    let stats = sim.stats();
    assert_eq!(
        (stats.orders, stats.fills, stats.rejected_orders),
        (DECISIONS, DECISIONS, DECISIONS)
    );
    feed.shutdown(&mut |_| {});
}

#[test]
fn garbled_replies_are_counted_and_their_orders_found_out() {
    // Every second reply on the connection is cut in half.
    let sim = sim(Some(2));
    let mut feed = FeedLoop::new().unwrap();
    let mut routes = vec![add_route(
        &mut feed,
        &sim.binance_api_url(),
        SECRET,
        Duration::from_millis(300),
    )];
    for id in 1..=4 {
        routes[0]
            .intents
            .push(intent(id, Side::Buy, 0.002))
            .unwrap();
    }
    let got = collect(&mut feed, &mut routes, &[4]);
    let mut ids: Vec<u64> = got[0].iter().map(|f| f.intent_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2, 3, 4], "each order resolved exactly once");
    assert!(
        got[0].iter().all(|f| f.status == FillStatus::Filled),
        "{got:?}"
    );
    let c = *routes[0].counters.lock().unwrap();
    assert!(c.malformed >= 1 && c.queries >= 1, "{c:?}");
    // The venue filled each order once: the queries asked, they did not resend.
    assert_eq!(sim.stats().fills, 4);
    feed.shutdown(&mut |_| {});
}

#[test]
fn a_wrong_secret_is_refused_by_the_venue() {
    let sim = sim(None);
    let mut feed = FeedLoop::new().unwrap();
    let mut routes = vec![add_route(
        &mut feed,
        &sim.binance_api_url(),
        "notTheSecret",
        Duration::from_secs(5),
    )];
    routes[0].intents.push(intent(9, Side::Buy, 0.01)).unwrap();
    let got = collect(&mut feed, &mut routes, &[1]);
    let f = got[0][0];
    assert_eq!(
        (f.status, f.error_code),
        (FillStatus::Rejected, INVALID_SIGNATURE)
    );
    assert_eq!(copy_outcome(&f), CopyOutcome::Rejected);
    assert_eq!(sim.stats().fills, 0);
    feed.shutdown(&mut |_| {});
}

#[test]
fn lost_and_late_replies_resolve_each_order_once() {
    // Every second reply is never sent, and every reply is 250 ms late against a 100 ms
    // timeout: orders are asked for with order.status, late answers are counted as unmatched.
    let sim = sim_with(OrderApiConfig {
        drop_every: Some(2),
        reply_delay: Some(Duration::from_millis(250)),
        ..OrderApiConfig::default()
    });
    let mut feed = FeedLoop::new().unwrap();
    let mut routes = vec![add_route(
        &mut feed,
        &sim.binance_api_url(),
        SECRET,
        Duration::from_millis(100),
    )];
    for id in 1..=3 {
        routes[0]
            .intents
            .push(intent(id, Side::Sell, 0.003))
            .unwrap();
    }
    let got = collect(&mut feed, &mut routes, &[3]);
    let mut ids: Vec<u64> = got[0].iter().map(|f| f.intent_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2, 3]);
    assert!(
        got[0].iter().all(|f| f.status == FillStatus::Filled),
        "{got:?}"
    );
    let c = *routes[0].counters.lock().unwrap();
    assert!(c.queries >= 1, "{c:?}");
    assert_eq!(sim.stats().fills, 3, "asked, never resent");
    // Whatever arrives after the outcome is known is unmatched, never a second fill.
    let until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < until {
        feed.run_once(Duration::from_millis(5), &mut |_| {})
            .unwrap();
        assert!(routes[0].fills.pop().is_none());
    }
    feed.shutdown(&mut |_| {});
}
