//! `keel run --alt-hedge hyperliquid` end to end, in-process on loopback against keel-sim: the
//! Deribit-format book and perpetual, and keel-sim's Hyperliquid (l2Book, signed actions over
//! the WebSocket `post` channel, clearinghouseState). The venue is the judge: the position it
//! holds for the run's agent is what the fills the run booked add up to, and a second run
//! reconciles that position from `clearinghouseState` before its first hedge. No timings are
//! asserted beyond generous deadlines (2-core CI).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use keel_tools::run::start_on;
use keel_tools::run_config::RunConfig;
use keel_tools::sim::{SimConfig, SimCredentials, SimVenue};

fn base() -> RunConfig {
    let mut cfg = RunConfig::defaults();
    cfg.sim.options = 300;
    cfg.delta_band = 0.005;
    cfg.deribit.rate_limit = Some(50);
    cfg.status_every = Duration::ZERO;
    cfg.dev = true;
    cfg.max_hedges_per_min = 600;
    cfg.alt_hedges = vec![("hyperliquid".into(), String::new())];
    // Deribit's fee high, Hyperliquid's zero: Hyperliquid is the cheaper venue for every rung
    // its ladder has (0.01 .. 5.12 BTC).
    cfg.deribit.fee_bps = 50.0;
    cfg.hyperliquid.fee_bps = 0.0;
    cfg.hyperliquid.lot = 0.01;
    cfg.hyperliquid.rungs = 10;
    cfg
}

fn sim() -> keel_tools::sim::SimHandle {
    SimVenue::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        options: 300,
        deribit_credentials: Some(SimCredentials {
            client_id: "keel-hl-test".into(),
            client_secret: "hl-test-secret".into(),
        }),
        ..SimConfig::default()
    })
    .expect("keel-sim starts")
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn hedges_land_on_hyperliquid_and_the_next_run_reconciles_them() {
    let sim = sim();
    let cfg = base();
    let run = start_on(&cfg, &sim, None, 0).expect("starts");
    let banner = run.banner();
    assert!(banner.contains("hyperliquid BTC: ws://"), "{banner}");
    let hl = run.hyperliquid().expect("the Hyperliquid venue");
    let agent = hl.account;
    assert_eq!(hl.position, 0.0, "a fresh agent holds nothing");
    assert!(hl.ladders_signed() >= 1, "a ladder before the first hedge");
    wait_for(
        "two hedges filled on Hyperliquid",
        Duration::from_secs(90),
        || {
            run.pricer().alt_venue_hedges.load(Ordering::Relaxed) >= 2
                && sim.hyperliquid_position(agent) != 0.0
                && run.pricer().fills.load(Ordering::Relaxed)
                    >= run.pricer().hedges.load(Ordering::Relaxed)
        },
    );
    // Let the in-flight settle, then stop.
    std::thread::sleep(Duration::from_millis(500));
    let signed = run.hyperliquid().unwrap().ladders_signed();
    let s = run.finish().expect("clean shutdown");
    assert!(signed >= 2, "a fired rung is re-signed: {signed} ladders");
    assert!(s.alt_venue_hedges >= 2, "{}", s.alt_venue_hedges);
    assert_eq!(s.rejects, 0, "no hedge refused or rejected");
    let r = s.reconciled.as_ref().expect("reconciled at start");
    assert_eq!(r.alt_positions, vec![("hyperliquid:BTC".to_string(), 0.0)]);
    // The venue is the judge: the position it holds for the agent, read back at the end, is the
    // start plus what the run's fills said, and the venue's own record agrees.
    let h = s.hyperliquid.as_ref().expect("a Hyperliquid report");
    assert_eq!(h.account, format!("{agent:#x}"));
    assert!(h.fired >= 2 && h.orders_sent >= h.fired, "{h:?}");
    assert!(h.refused.iter().all(|(_, n)| *n == 0), "{h:?}");
    assert!(h.ladders_signed >= 2, "{h:?}");
    let p1 = sim.hyperliquid_position(agent);
    assert!(h.filled != 0.0, "{h:?}");
    assert!(
        (h.position_start + h.filled - p1).abs() < 1e-9,
        "{h:?} vs venue {p1}"
    );
    // The wire carries 8 decimals; the venue's own sum is a float.
    let near = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
    assert!(near(h.position_end, p1), "{h:?} vs venue {p1}");
    // Whole rungs of 0.01.
    let rungs = p1 / 0.01;
    assert!((rungs - rungs.round()).abs() < 1e-6 && p1 != 0.0, "{p1}");
    // The book's delta moved by what landed: the run ends inside (or near) its band.
    assert!(
        s.delta_before.abs() > 0.5 && s.delta_after.abs() < s.delta_before.abs(),
        "{} -> {}",
        s.delta_before,
        s.delta_after
    );

    // A second run reading the same account reconciles its position before hedging.
    let mut cfg2 = base();
    cfg2.hyperliquid.account = Some(format!("{agent:#x}"));
    let run2 = start_on(&cfg2, &sim, None, 0).expect("second run starts");
    let pos2 = run2.hyperliquid().unwrap().position;
    assert!(
        run2.banner().contains(&format!("position {pos2}")),
        "{}",
        run2.banner()
    );
    let s2 = run2.finish().expect("clean shutdown");
    let r2 = s2.reconciled.as_ref().expect("reconciled");
    assert_eq!(r2.alt_positions.len(), 1);
    assert_eq!(r2.alt_positions[0].0, "hyperliquid:BTC");
    assert!(
        near(Some(r2.alt_positions[0].1), p1),
        "{:?} vs {p1}",
        r2.alt_positions
    );
    assert_eq!(pos2, r2.alt_positions[0].1);
}

#[test]
fn lost_replies_are_settled_and_the_venue_still_agrees() {
    // Every 3rd order-API reply is never sent (orders, noops and orderStatus answers alike):
    // an order whose reply is lost times out, its noop (sent again if its own reply is lost) is
    // refused for a nonce the order spent, and orderStatus settles it.
    let sim = SimVenue::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        options: 300,
        deribit_credentials: Some(SimCredentials {
            client_id: "keel-hl-test".into(),
            client_secret: "hl-test-secret".into(),
        }),
        order_api: keel_tools::sim::binance_orders::OrderApiConfig {
            drop_every: Some(3),
            ..Default::default()
        },
        ..SimConfig::default()
    })
    .expect("keel-sim starts");
    let mut cfg = base();
    cfg.hyperliquid.timeout_ms = 300;
    // Deribit's replies are dropped too: keep its hedges out of the way.
    cfg.deribit.fee_bps = 500.0;
    let run = start_on(&cfg, &sim, None, 0).expect("starts");
    let agent = run.hyperliquid().unwrap().account;
    let p = run.pricer();
    wait_for(
        "six Hyperliquid hedges settled",
        Duration::from_secs(120),
        || {
            p.alt_venue_hedges.load(Ordering::Relaxed) >= 6
                && p.fills.load(Ordering::Relaxed) + p.rejects.load(Ordering::Relaxed)
                    >= p.hedges.load(Ordering::Relaxed)
        },
    );
    let s = run.finish().expect("clean shutdown");
    let h = s.hyperliquid.as_ref().expect("a Hyperliquid report");
    assert!(h.timeouts >= 1, "replies were lost: {h:?}");
    let venue = sim.hyperliquid_position(agent);
    assert!(
        (h.position_start + h.filled - venue).abs() < 1e-9,
        "what the run booked from replies and orderStatus matches the venue: {h:?} vs {venue}"
    );
    assert!(
        h.position_end.is_some_and(|p| (p - venue).abs() < 1e-9),
        "{h:?} vs {venue}"
    );
}
