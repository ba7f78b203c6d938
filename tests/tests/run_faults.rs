//! `keel run`'s pipeline against keel-sim with fault injection (in-process, loopback): it keeps
//! running through dropped connections and malformed messages, stops hedging while data is
//! stale, resumes after reconnecting, and never sends a second order for one exposure.
//! No timings are asserted beyond generous deadlines (2-core CI).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use keel_engine::market::DataFault;
use keel_tools::run::start;
use keel_tools::run_config::RunConfig;

fn base() -> RunConfig {
    let mut cfg = RunConfig::defaults();
    cfg.sim.options = 400;
    cfg.delta_band = 0.02;
    cfg.deribit.rate_limit = Some(50);
    cfg.status_every = Duration::ZERO;
    cfg.stale_after = Duration::from_millis(800);
    cfg.dev = true;
    cfg
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn keeps_hedging_through_drops_and_malformed_messages() {
    let mut cfg = base();
    cfg.sim.drop_every_msgs = Some(8_000);
    cfg.sim.malformed_rate = 0.002;
    // A narrow band: hedges follow the market's drift within seconds even on a loaded machine
    // (the test waits for one after a reconnection).
    cfg.delta_band = 0.005;
    let run = start(&cfg, None).expect("starts");
    let p = run.pricer();
    let hedges = || p.hedges.load(Ordering::Relaxed);
    wait_for("a first hedge", Duration::from_secs(60), || hedges() >= 1);
    wait_for("a reconnection", Duration::from_secs(60), || {
        p.reconnects.load(Ordering::Relaxed) >= 1
    });
    let after_reconnect = hedges();
    wait_for(
        "a hedge after reconnecting",
        Duration::from_secs(60),
        || hedges() > after_reconnect,
    );
    let sent = run.exec().sent.load(Ordering::Relaxed);
    let summary = run.finish().expect("clean shutdown");
    // Every intent became exactly one order; every outcome matched one intent; at most one was
    // still in flight at the end.
    assert!(summary.orders_sent >= sent);
    assert!(summary.orders_sent <= summary.hedges && summary.hedges - summary.orders_sent <= 1);
    // keel-sim received exactly the orders the exec tile sent: no copy, no retry.
    let sim = summary.sim_orders.expect("embedded keel-sim");
    assert_eq!(sim.orders, summary.orders_sent, "{summary:?}");
    let resolved = summary.fills + summary.rejects;
    assert!(
        resolved <= summary.hedges && summary.hedges - resolved <= 1,
        "{summary:?}"
    );
    assert!(summary.ticks > 0 && summary.delta_after.is_finite());
}

#[test]
fn stops_hedging_while_data_is_stale() {
    let mut cfg = base();
    cfg.sim.silent_after = Some(Duration::from_secs(3));
    let run = start(&cfg, None).expect("starts");
    let p = run.pricer();
    wait_for("good data first", Duration::from_secs(60), || {
        p.ticks.load(Ordering::Relaxed) > 0 && p.fault().is_none()
    });
    wait_for("the feed going stale", Duration::from_secs(60), || {
        matches!(
            p.fault(),
            Some(DataFault::StaleIndex) | Some(DataFault::Disconnected)
        )
    });
    let h1 = p.hedges.load(Ordering::Relaxed);
    assert!(h1 >= 1, "hedging was active before the data went stale");
    std::thread::sleep(Duration::from_millis(1500));
    let h2 = p.hedges.load(Ordering::Relaxed);
    assert!(p.fault().is_some(), "still stale");
    assert_eq!(h1, h2, "no hedge while the data is stale");
    let summary = run.finish().expect("clean shutdown");
    assert!(summary.fault_steps > 0 || summary.fault.is_some());
}

#[test]
fn gamma_and_vega_bands_are_held_with_options() {
    let mut cfg = base();
    // The sample book is short about 2.5 BTC of vega (per 1.00 of vol).
    cfg.vega_band = Some(0.5);
    cfg.gamma_band = Some(0.0002);
    cfg.sim.options = 1000;
    let run = start(&cfg, None).expect("starts");
    let p = run.pricer();
    wait_for("a gamma/vega hedge filled", Duration::from_secs(60), || {
        p.option_hedges.load(Ordering::Relaxed) >= 1
            && p.fills.load(Ordering::Relaxed) + p.rejects.load(Ordering::Relaxed)
                >= p.hedges.load(Ordering::Relaxed)
    });
    // The perpetual's and every liquid option's book stream and become usable.
    wait_for("the hedge books usable", Duration::from_secs(30), || {
        p.depth_books_ready.load(Ordering::Relaxed) >= 2
    });
    std::thread::sleep(Duration::from_millis(300));
    let summary = run.finish().expect("clean shutdown");
    assert!(summary.option_hedges >= 1, "{summary:?}");
    assert!(
        summary.depth_books.0 >= 2,
        "perpetual + liquid options: {summary:?}"
    );
    assert!(
        summary.vega_coin.abs() <= 1.0,
        "vega brought back towards its ±0.5 band: {summary:?}"
    );
    assert!(summary.delta_after.abs() <= 0.5, "{summary:?}");
}

#[test]
fn the_delta_hedge_goes_to_the_cheaper_venue_all_in() {
    // The same book twice with Binance's BTCUSDT as an alternative: at a 50 bp Binance fee
    // Deribit's perpetual is cheaper; at 0 bp Binance is (the spread alone).
    for (binance_bps, expect_alt) in [(50.0, false), (0.0, true)] {
        let mut cfg = base();
        cfg.alt_hedges = vec![("binance".into(), "BTCUSDT".into())];
        cfg.binance.fee_bps = binance_bps;
        let run = start(&cfg, None).expect("starts");
        let p = run.pricer();
        wait_for("a hedge filled", Duration::from_secs(60), || {
            p.hedges.load(Ordering::Relaxed) >= 1
                && p.fills.load(Ordering::Relaxed) + p.rejects.load(Ordering::Relaxed)
                    >= p.hedges.load(Ordering::Relaxed)
        });
        // Both venues' books stream: Deribit's `book.BTC-PERPETUAL.100ms`, Binance's depth
        // stream replayed on its REST snapshot.
        wait_for("both hedge books usable", Duration::from_secs(30), || {
            p.depth_books_ready.load(Ordering::Relaxed) == 2
        });
        std::thread::sleep(Duration::from_millis(300));
        // The embedded venue's Binance account holds what was hedged there, read back over the
        // signed REST endpoint start-up reconciliation uses; it started flat.
        let sim = run.sim().expect("embedded venue");
        let account = sim.binance_account().expect("an account per run");
        let creds = keel_engine::exec::binance::BinanceCredentials::new(
            &account.api_key,
            &account.secret,
            "test",
        )
        .unwrap();
        let held = keel_tools::run::reconcile::fetch_binance_position(
            &format!("http://{}", sim.addr()),
            &creds,
            "BTCUSDT",
            None,
            Duration::from_secs(5),
        )
        .expect("positionRisk answers");
        let summary = run.finish().expect("clean shutdown");
        assert_eq!(
            summary.reconciled.as_ref().map(|r| r.alt_positions.clone()),
            Some(vec![("binance:BTCUSDT".to_string(), 0.0)]),
            "{summary:?}"
        );
        assert_eq!(
            held != 0.0,
            expect_alt,
            "Binance position {held}: {summary:?}"
        );
        assert!(summary.fills >= 1, "{summary:?}");
        assert_eq!(summary.depth_books.0, 2, "{summary:?}");
        assert!(summary.depth_books.2 >= 2, "{summary:?}");
        assert!(
            summary.depth_costed + summary.touch_costed >= 1 && summary.est_cost_usd[0] >= 0.0,
            "each venue choice costed: {summary:?}"
        );
        assert_eq!(
            summary.alt_venue_hedges >= 1,
            expect_alt,
            "binance at {binance_bps} bp: {summary:?}"
        );
        // Wherever it went, the book counts it: delta is back near its band.
        assert!(
            summary.delta_after.abs() <= 0.1,
            "binance at {binance_bps} bp: {summary:?}"
        );
    }
}

#[test]
fn each_expiry_buckets_vega_is_held_in_its_band() {
    let mut cfg = base();
    // The sample book's buckets hold between −1.8 and +0.4 BTC of vega each; ±0.3 each.
    cfg.vega_bucket_band = Some(0.3);
    cfg.sim.options = 1000;
    let run = start(&cfg, None).expect("starts");
    let p = run.pricer();
    wait_for(
        "a bucket vega hedge filled",
        Duration::from_secs(60),
        || {
            p.option_hedges.load(Ordering::Relaxed) >= 1
                && p.fills.load(Ordering::Relaxed) + p.rejects.load(Ordering::Relaxed)
                    >= p.hedges.load(Ordering::Relaxed)
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let summary = run.finish().expect("clean shutdown");
    assert!(summary.option_hedges >= 1, "{summary:?}");
    // Every bucket the liquid set trades in (the call and put nearest the middle strike of each
    // expiry 7 to 120 days out) ends inside its band; later or earlier buckets cannot move.
    let now_ms = keel_feeds::clock::now_ns() / 1_000_000;
    let day = 86_400_000u64;
    let tradable: Vec<_> = summary
        .buckets
        .iter()
        .filter(|b| b.expiry_ms > now_ms + 8 * day && b.expiry_ms < now_ms + 119 * day)
        .collect();
    assert!(tradable.len() >= 3, "{summary:?}");
    for b in tradable {
        assert!(
            b.coin.vega.abs() <= 0.3 * 1.05,
            "bucket {} vega {} outside ±0.3: {summary:?}",
            b.expiry_ms,
            b.coin.vega
        );
    }
}

#[test]
fn the_halt_file_stops_hedging_at_once_and_a_leftover_one_stops_the_first_order() {
    let dir = tempfile::tempdir().unwrap();
    let halt = dir.path().join("keel.halt");
    let mut cfg = base();
    cfg.halt_file = halt.clone();
    let run = start(&cfg, None).expect("starts");
    let p = run.pricer();
    wait_for("a first hedge", Duration::from_secs(60), || {
        p.hedges.load(Ordering::Relaxed) >= 1
    });
    keel_engine::risk::write_halt_file(&halt, "test", 1).unwrap();
    wait_for("HALTED", Duration::from_secs(30), || {
        keel_tools::run::risk_state(p) == keel_engine::risk::RiskState::Halted
    });
    let h = p.hedges.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(p.hedges.load(Ordering::Relaxed), h, "no hedge once halted");
    let summary = run.finish().expect("clean shutdown");
    assert_eq!(summary.risk_state, "halted");

    // Still there at the next start: not a single order.
    let run = start(&cfg, None).expect("starts");
    std::thread::sleep(Duration::from_millis(2500));
    let p = run.pricer();
    assert_eq!(
        p.hedges.load(Ordering::Relaxed),
        0,
        "a leftover halt file holds the start"
    );
    assert!(p.ticks.load(Ordering::Relaxed) > 0);
    let summary = run.finish().expect("clean shutdown");
    assert_eq!(summary.orders_sent, 0);
}
