//! The summary of a `keel run`: a table for people, one JSON object for scripts (keys in
//! README.md's CLI reference).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use keel_engine::book::Bucket;
use keel_engine::exec::ExecCounters;
use keel_engine::pipeline::feed_tile::FeedCounters;
use keel_engine::pipeline::pricer::PricerStats;
use keel_engine::pipeline::{LatencySummary, Percentiles, Stage, TelemetryHandle};
use serde_json::{Value, json};

use crate::sim::SimStats;

/// Everything the summary reports.
#[derive(Clone, Debug)]
pub struct Summary {
    /// `dedicated` or `fused`.
    pub topology: &'static str,
    /// Cores available.
    pub cores: usize,
    /// Options in the book (listed chain).
    pub book_rows: usize,
    /// Options held.
    pub held: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Events the pricer took.
    pub ticks: u64,
    /// Full reprices.
    pub reprices_full: u64,
    /// Spot-path reprices.
    pub reprices_spot: u64,
    /// Price-moving ticks folded into a later reprice.
    pub skipped_ticks: u64,
    /// Hedge intents (every leg).
    pub hedges: u64,
    /// Decisions that traded options for gamma/vega.
    pub option_hedges: u64,
    /// Delta hedges sent to an alternative venue (`--alt-hedge`) because it was cheaper all-in.
    pub alt_venue_hedges: u64,
    /// Delta-hedge venue choices costed by walking a live book / at the touch, and venues
    /// passed over because their visible book could not fill the size.
    pub depth_costed: u64,
    /// See `depth_costed`.
    pub touch_costed: u64,
    /// See `depth_costed`.
    pub depth_short: u64,
    /// Hedge books tracked (perpetual, alternatives, liquid options), usable at the end, and
    /// snapshots applied.
    pub depth_books: (usize, u64, u64),
    /// Gamma/vega legs walked through their option's book, and solves run again because a
    /// book was thinner than its touch.
    pub option_walks: (u64, u64),
    /// Estimated cost of the delta hedges sent (cost model, before fills), USD: fees,
    /// slippage against the mid, latency charge.
    pub est_cost_usd: [f64; 3],
    /// Risk state at the end (`active`, `reducing`, `halted`).
    pub risk_state: &'static str,
    /// Intents the risk gate refused, and the last limit that refused one.
    pub vetoes: u64,
    /// See `vetoes`.
    pub last_veto: Option<&'static str>,
    /// Mark-to-market P&L since start, USD (fees excluded).
    pub pnl_usd: f64,
    /// Decisions held by a data guard, and the guard holding at the end.
    pub guard_steps: u64,
    /// See `guard_steps`.
    pub guard: Option<&'static str>,
    /// Outcomes with a fill.
    pub fills: u64,
    /// Outcomes without one.
    pub rejects: u64,
    /// Earlier fills undone (an on-chain hedge a builder accepted and no block included).
    pub lost_fills: u64,
    /// Full-ring events: feed rings (conflated), intent ring (held), trace ring (dropped).
    pub ring_full_feed: u64,
    /// See `ring_full_feed`.
    pub ring_full_intents: u64,
    /// See `ring_full_feed`.
    pub trace_drops: u64,
    /// Events replaced by newer ones while a feed ring was full.
    pub conflated: u64,
    /// Events dropped from a full conflation table.
    pub conflation_dropped: u64,
    /// Book deltas the feed edge had to drop (each book then waits for a snapshot).
    pub book_levels_lost: u64,
    /// Parsed events.
    pub feed_events: u64,
    /// Coin delta at the first complete reprice.
    pub delta_before: f64,
    /// Coin delta at the end.
    pub delta_after: f64,
    /// Largest |delta − target| with good data.
    pub max_abs_delta_excursion: f64,
    /// Largest Taylor carry error.
    pub taylor_max_error: f64,
    /// Gamma, vega, theta at the end (coin) and dollar delta.
    pub gamma_coin: f64,
    /// See `gamma_coin`.
    pub vega_coin: f64,
    /// See `gamma_coin`.
    pub theta_coin: f64,
    /// See `gamma_coin`.
    pub delta_usd: f64,
    /// Index at the end.
    pub index: f64,
    /// Steps held back by a data fault, and the fault at the end.
    pub fault_steps: u64,
    /// See `fault_steps`.
    pub fault: Option<&'static str>,
    /// Venue Greeks cross-check: count and max differences (delta, gamma, vega/pt, theta/day).
    pub cross: (u64, [f64; 4]),
    /// Orders sent, label queries, order-connection drops.
    pub orders_sent: u64,
    /// See `orders_sent`.
    pub order_queries: u64,
    /// See `orders_sent`.
    pub order_disconnects: u64,
    /// Latencies.
    pub latency: LatencySummary,
    /// keel-sim's own counters (embedded venue only).
    pub sim_orders: Option<SimStats>,
    /// Per-expiry Greeks of the held options at the end.
    pub buckets: Vec<Bucket>,
    /// Start-up reconciliation with the venue (when orders go to a venue with credentials).
    pub reconciled: Option<Reconciled>,
    /// Delta hedges sent on chain, on-chain decisions refused before sending (released, not
    /// venue rejections), decisions where the on-chain venue was unusable (stale head, backing
    /// off), and its last all-in cost per coin (USD).
    pub chain_venue_hedges: u64,
    /// See `chain_venue_hedges`.
    pub chain_refusals: u64,
    /// See `chain_venue_hedges`.
    pub chain_unusable: u64,
    /// See `chain_venue_hedges`.
    pub chain_cost_per_coin: f64,
    /// The on-chain venue (`--alt-hedge evm`).
    pub evm: Option<super::evm::EvmReport>,
    /// Hyperliquid (`--alt-hedge hyperliquid`).
    pub hyperliquid: Option<super::hyperliquid::HlReport>,
}

/// What start-up reconciliation found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reconciled {
    /// Positions the venue reported (and the book started from).
    pub positions: usize,
    /// Orders resting at the venue at start.
    pub open_orders: usize,
    /// Instruments where the positions file disagreed with the venue.
    pub differences: Vec<super::reconcile::Difference>,
    /// Alternative hedge venues' positions read at start (`binance:BTCUSDT`, signed coin).
    pub alt_positions: Vec<(String, f64)>,
}

impl Summary {
    /// An empty summary.
    pub fn new(topology: &'static str, cores: usize, book_rows: usize, held: usize) -> Self {
        Self {
            topology,
            cores,
            book_rows,
            held,
            elapsed: Duration::ZERO,
            ticks: 0,
            reprices_full: 0,
            reprices_spot: 0,
            skipped_ticks: 0,
            hedges: 0,
            option_hedges: 0,
            alt_venue_hedges: 0,
            depth_costed: 0,
            touch_costed: 0,
            depth_short: 0,
            depth_books: (0, 0, 0),
            option_walks: (0, 0),
            est_cost_usd: [0.0; 3],
            risk_state: "active",
            vetoes: 0,
            last_veto: None,
            pnl_usd: 0.0,
            guard_steps: 0,
            guard: None,
            fills: 0,
            rejects: 0,
            lost_fills: 0,
            ring_full_feed: 0,
            ring_full_intents: 0,
            trace_drops: 0,
            conflated: 0,
            conflation_dropped: 0,
            book_levels_lost: 0,
            feed_events: 0,
            delta_before: f64::NAN,
            delta_after: f64::NAN,
            max_abs_delta_excursion: 0.0,
            taylor_max_error: 0.0,
            gamma_coin: 0.0,
            vega_coin: 0.0,
            theta_coin: 0.0,
            delta_usd: 0.0,
            index: f64::NAN,
            fault_steps: 0,
            fault: None,
            cross: (0, [0.0; 4]),
            orders_sent: 0,
            order_queries: 0,
            order_disconnects: 0,
            latency: LatencySummary::default(),
            sim_orders: None,
            buckets: Vec::new(),
            reconciled: None,
            chain_venue_hedges: 0,
            chain_refusals: 0,
            chain_unusable: 0,
            chain_cost_per_coin: f64::NAN,
            evm: None,
            hyperliquid: None,
        }
    }

    /// Reads every counter (after the tiles stopped).
    pub fn fill_final(
        &mut self,
        p: &Arc<PricerStats>,
        feeds: &[Arc<FeedCounters>],
        exec: &Arc<ExecCounters>,
        telemetry: &TelemetryHandle,
    ) {
        let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        self.ticks = l(&p.ticks);
        self.reprices_full = l(&p.reprices_full);
        self.reprices_spot = l(&p.reprices_spot);
        self.skipped_ticks = l(&p.skipped_ticks);
        self.hedges = l(&p.hedges);
        self.option_hedges = l(&p.option_hedges);
        self.alt_venue_hedges = l(&p.alt_venue_hedges);
        self.chain_venue_hedges = l(&p.chain_venue_hedges);
        self.chain_refusals = l(&p.chain_refusals);
        self.chain_unusable = l(&p.chain_unusable);
        self.chain_cost_per_coin = p.chain_cost_per_coin.get();
        self.depth_costed = l(&p.depth_costed);
        self.touch_costed = l(&p.touch_costed);
        self.depth_short = l(&p.depth_short);
        self.depth_books.1 = l(&p.depth_books_ready);
        self.depth_books.2 = l(&p.depth_snapshots);
        self.option_walks = (l(&p.option_legs_walked), l(&p.option_depth_resolves));
        self.est_cost_usd = [
            p.est_fees_usd.get(),
            p.est_slippage_usd.get(),
            p.est_latency_usd.get(),
        ];
        self.risk_state = super::risk_state(p).name();
        self.vetoes = l(&p.vetoes);
        self.pnl_usd = p.pnl_usd.get();
        self.guard_steps = l(&p.guard_steps);
        self.guard = p.guard().map(|g| g.0);
        self.last_veto = match l(&p.last_veto) {
            0 => None,
            i => keel_engine::risk::Limit::name_of_index(i as usize - 1),
        };
        self.fills = l(&p.fills);
        self.rejects = l(&p.rejects);
        self.lost_fills = l(&p.lost_fills);
        self.ring_full_intents = l(&p.intent_ring_full);
        self.trace_drops = l(&p.trace_drops);
        for f in feeds {
            self.ring_full_feed += l(&f.ring_full);
            self.conflated += l(&f.conflated);
            self.conflation_dropped += l(&f.dropped);
            self.book_levels_lost += l(&f.book_levels_lost);
            self.feed_events += l(&f.events);
        }
        self.delta_before = p.delta_before.get();
        self.delta_after = p.delta_coin.get();
        self.max_abs_delta_excursion = p.max_abs_excursion.get();
        self.taylor_max_error = p.taylor_max_error.get();
        self.gamma_coin = p.gamma_coin.get();
        self.vega_coin = p.vega_coin.get();
        self.theta_coin = p.theta_coin.get();
        self.delta_usd = p.delta_usd.get();
        self.index = p.index.get();
        self.fault_steps = l(&p.fault_steps);
        self.fault = p.fault().map(|f| f.name());
        self.cross = (
            l(&p.cross_count),
            [
                p.cross_delta.get(),
                p.cross_gamma.get(),
                p.cross_vega.get(),
                p.cross_theta.get(),
            ],
        );
        self.orders_sent = l(&exec.sent);
        self.order_queries = l(&exec.queries);
        self.order_disconnects = l(&exec.disconnects);
        self.latency = telemetry.latest();
        if let Ok(b) = p.buckets.lock() {
            self.buckets = b.clone();
        }
    }

    fn reprices(&self) -> u64 {
        self.reprices_full + self.reprices_spot
    }
}

fn num(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

fn pct(p: &Percentiles) -> Value {
    json!({
        "count": p.count,
        "p50": p.p50_ns, "p90": p.p90_ns, "p99": p.p99_ns, "p999": p.p999_ns, "max": p.max_ns,
    })
}

/// The summary as one JSON object.
pub fn summary_json(s: &Summary) -> Value {
    let stages: serde_json::Map<String, Value> = [
        Stage::ReadParse,
        Stage::RingHop,
        Stage::Reprice,
        Stage::Decide,
        Stage::Send,
    ]
    .iter()
    .map(|&st| {
        let p = s.latency.get(st);
        (
            st.name().to_string(),
            json!({"count": p.count, "p50": p.p50_ns, "p99": p.p99_ns}),
        )
    })
    .collect();
    let mut v = json!({
        "topology": s.topology,
        "cores": s.cores,
        "book_options": s.book_rows,
        "held_options": s.held,
        "elapsed_s": s.elapsed.as_secs_f64(),
        "ticks": s.ticks,
        "reprices": s.reprices(),
        "reprices_full": s.reprices_full,
        "reprices_spot": s.reprices_spot,
        "skipped_ticks": s.skipped_ticks,
        "hedges": s.hedges,
        "option_hedge_decisions": s.option_hedges,
        "alt_venue_hedges": s.alt_venue_hedges,
        "risk_state": s.risk_state,
        "risk_vetoes": s.vetoes,
        "pnl_usd": num(s.pnl_usd),
        "last_veto": s.last_veto,
        "fills": s.fills,
        "rejects": s.rejects,
        "ring_full": s.ring_full_feed + s.ring_full_intents,
        "ring_full_by_edge": {
            "feed_to_pricer": s.ring_full_feed,
            "pricer_to_exec": s.ring_full_intents,
            "telemetry_dropped": s.trace_drops,
        },
        "conflated": s.conflated,
        "conflation_dropped": s.conflation_dropped,
        "feed_events": s.feed_events,
        "delta_before": num(s.delta_before),
        "delta_after": num(s.delta_after),
        "max_abs_delta_excursion": num(s.max_abs_delta_excursion),
        "taylor_max_delta_error": num(s.taylor_max_error),
        "portfolio": {
            "delta_coin": num(s.delta_after),
            "delta_usd": num(s.delta_usd),
            "gamma_coin": num(s.gamma_coin),
            "vega_coin": num(s.vega_coin),
            "theta_coin": num(s.theta_coin),
            "index": num(s.index),
        },
        "buckets": s.buckets.iter().map(|b| json!({
            "expiry_ms": b.expiry_ms,
            "coin": {"delta": num(b.coin.delta), "gamma": num(b.coin.gamma), "vega": num(b.coin.vega), "theta": num(b.coin.theta)},
            "usd": {"delta": num(b.usd.delta), "gamma": num(b.usd.gamma), "vega": num(b.usd.vega), "theta": num(b.usd.theta)},
            "value_usd": num(b.value_usd),
        })).collect::<Vec<_>>(),
        "data_fault": s.fault,
        "data_guard": s.guard,
        "guard_steps": s.guard_steps,
        "fault_steps": s.fault_steps,
        "venue_greeks_check": {
            "count": s.cross.0,
            "max_abs_diff": {
                "delta": num(s.cross.1[0]),
                "gamma": num(s.cross.1[1]),
                "vega_per_point": num(s.cross.1[2]),
                "theta_per_day": num(s.cross.1[3]),
            },
        },
        "orders_sent": s.orders_sent,
        "order_label_queries": s.order_queries,
        "order_disconnects": s.order_disconnects,
    });
    if let Some(m) = v.as_object_mut() {
        m.insert(
            "tick_to_trade_ns".into(),
            pct(&s.latency.get(Stage::TickToTrade)),
        );
        m.insert("stage_ns".into(), Value::Object(stages));
        m.insert("hedge_costing".into(), hedge_costing(s));
        m.insert("book_levels_lost".into(), s.book_levels_lost.into());
        m.insert("lost_fills".into(), s.lost_fills.into());
        m.insert(
            "reconciled".into(),
            s.reconciled.as_ref().map_or(Value::Null, reconciled_json),
        );
        m.insert(
            "evm".into(),
            s.evm.as_ref().map_or(Value::Null, |e| evm_json(s, e)),
        );
        m.insert(
            "hyperliquid".into(),
            s.hyperliquid.as_ref().map_or(Value::Null, |h| {
                let refused: serde_json::Map<String, Value> = h
                    .refused
                    .iter()
                    .map(|(k, n)| ((*k).to_string(), (*n).into()))
                    .collect();
                json!({
                    "target": h.target, "coin": h.coin, "account": h.account,
                    "signer": h.signer, "position_start": h.position_start,
                    "position_end": h.position_end, "filled": h.filled, "fired": h.fired,
                    "orders_sent": h.orders_sent, "voided": h.voided, "timeouts": h.timeouts,
                    "landed_unknown": h.landed_unknown, "malformed": h.malformed,
                    "refused": refused, "ladders_signed": h.ladders_signed,
                    "sign_errors": h.sign_errors, "mid_read_errors": h.read_errors,
                })
            }),
        );
        m.insert(
            "sim".into(),
            s.sim_orders.as_ref().map_or(Value::Null, |x| {
                json!({
                    "connections": x.connections, "messages": x.messages, "drops": x.drops,
                    "malformed": x.malformed, "orders": x.orders, "fills": x.fills,
                    "rejected_orders": x.rejected_orders,
                })
            }),
        );
    }
    v
}

fn evm_json(s: &Summary, e: &super::evm::EvmReport) -> Value {
    let refusals: serde_json::Map<String, Value> = e
        .refusals
        .iter()
        .map(|(k, n)| ((*k).to_string(), json!(n)))
        .collect();
    let routes: Vec<Value> = e
        .routes
        .iter()
        .map(|r| {
            let o: serde_json::Map<String, Value> = keel_engine::exec::race::CopyOutcome::ALL
                .iter()
                .map(|x| (x.name().to_string(), json!(r.outcomes[*x as usize])))
                .collect();
            json!({"route": r.name, "copies": r.fired, "outcomes": o,
                   "send_to_ack_ns": {"p50": r.p50_ns, "p99": r.p99_ns}, "health": r.health})
        })
        .collect();
    json!({
        "target": e.target,
        "address": e.address,
        "hedges": s.chain_venue_hedges,
        "decisions": e.decisions,
        "fired": e.fired,
        "won": e.won,
        "failed": e.failed,
        "held": e.held,
        "late_fills": e.late_fills,
        "not_found": e.not_found,
        "builder_won_confirmed": e.confirmed,
        "builder_won_lost": e.lost,
        "refused": s.chain_refusals,
        "refusals": refusals,
        "unusable_decisions": s.chain_unusable,
        "last_cost_usd_per_coin": num(s.chain_cost_per_coin),
        "routes": routes,
        "nonce_start": e.nonce_start,
        "nonce_end": e.nonce_end,
        "chain_reads": e.chain_reads,
        "chain_read_errors": e.chain_read_errors,
        "ladders_signed": e.ladders_signed,
        "sign_errors": e.sign_errors,
        "disconnects": e.disconnects,
        "mock_chain": e.mock.as_ref().map(|m| json!({
            "accepted": m.accepted.len(),
            "duplicate": m.duplicate,
            "rejected": m.rejected,
            "unauthorized": m.unauthorized,
            "builder_requests": m.builder_requests,
        })),
    })
}

fn reconciled_json(r: &Reconciled) -> Value {
    let diffs: Vec<Value> = r
        .differences
        .iter()
        .map(|d| json!({"instrument": d.instrument, "file": num(d.file), "venue": num(d.venue)}))
        .collect();
    let alt: serde_json::Map<String, Value> = r
        .alt_positions
        .iter()
        .map(|(k, q)| (k.clone(), num(*q)))
        .collect();
    json!({"positions": r.positions, "open_orders": r.open_orders, "differences": diffs,
           "alt_positions": alt})
}

/// An expiry as `YYYY-MM-DD HH:MM` UTC.
fn expiry_label(ms: u64) -> String {
    let days = (ms / 86_400_000) as i64;
    let (y, m, d) = crate::sim::chain::civil_from_days(days);
    let mins = (ms % 86_400_000) / 60_000;
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", mins / 60, mins % 60)
}

/// Nanoseconds as a short human figure.
pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0 => "-".into(),
        n if n < 10_000 => format!("{n} ns"),
        n if n < 10_000_000 => format!("{:.1} µs", n as f64 / 1e3),
        n => format!("{:.1} ms", n as f64 / 1e6),
    }
}

/// How the delta hedges' venues were costed, as JSON.
fn hedge_costing(s: &Summary) -> Value {
    json!({"books_tracked": s.depth_books.0, "books_ready": s.depth_books.1,
           "book_snapshots": s.depth_books.2, "depth_walked": s.depth_costed,
           "option_legs_walked": s.option_walks.0, "option_resolves": s.option_walks.1, "touch": s.touch_costed,
           "venues_short_of_depth": s.depth_short,
           "est_fees_usd": num(s.est_cost_usd[0]),
           "est_slippage_usd": num(s.est_cost_usd[1]),
           "est_latency_usd": num(s.est_cost_usd[2])})
}

/// The summary as a table.
pub fn summary_table(s: &Summary) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let _ = writeln!(
        o,
        "keel run summary ({:.1} s, {} topology, {} cores)",
        secs, s.topology, s.cores
    );
    let row = |o: &mut String, k: &str, v: String| {
        let _ = writeln!(o, "  {k:<28} {v}");
    };
    row(
        &mut o,
        "book",
        format!("{} options listed, {} held", s.book_rows, s.held),
    );
    row(
        &mut o,
        "ticks",
        format!("{} ({:.0}/s)", s.ticks, s.ticks as f64 / secs),
    );
    row(
        &mut o,
        "reprices",
        format!(
            "{} ({} full, {} spot; {:.0}/s), {} ticks folded into later reprices",
            s.reprices(),
            s.reprices_full,
            s.reprices_spot,
            s.reprices() as f64 / secs,
            s.skipped_ticks
        ),
    );
    row(
        &mut o,
        "hedges",
        format!(
            "{} sent ({} gamma/vega decisions), {} filled, {} without fill",
            s.hedges, s.option_hedges, s.fills, s.rejects
        ),
    );
    row(
        &mut o,
        "delta hedge costing",
        format!(
            "books {}/{} ready ({} snapshots); delta: {} on live depth, {} at the touch, {} venues short of depth; est. fees ${:.2}, slippage ${:.2}, latency ${:.2}; option legs walked {}, solved again {}",
            s.depth_books.1,
            s.depth_books.0,
            s.depth_books.2,
            s.depth_costed,
            s.touch_costed,
            s.depth_short,
            s.est_cost_usd[0],
            s.est_cost_usd[1],
            s.est_cost_usd[2],
            s.option_walks.0,
            s.option_walks.1
        ),
    );
    row(
        &mut o,
        "delta (coin)",
        format!(
            "before {:+.4}, after {:+.4}, largest |Δ − target| {:.4}",
            s.delta_before, s.delta_after, s.max_abs_delta_excursion
        ),
    );
    row(
        &mut o,
        "greeks at end (coin)",
        format!(
            "Γ {:+.6}  ν {:+.4}  Θ {:+.4}/yr  $Δ {:+.0}",
            s.gamma_coin, s.vega_coin, s.theta_coin, s.delta_usd
        ),
    );
    for b in &s.buckets {
        row(
            &mut o,
            &format!("  expiry {}", expiry_label(b.expiry_ms)),
            format!(
                "coin Δ {:+.4} Γ {:+.6} ν {:+.4} Θ {:+.4}/yr | USD Δ {:+.4} Γ {:+.6} ν {:+.0} Θ {:+.0}/yr",
                b.coin.delta,
                b.coin.gamma,
                b.coin.vega,
                b.coin.theta,
                b.usd.delta,
                b.usd.gamma,
                b.usd.vega,
                b.usd.theta
            ),
        );
    }
    row(
        &mut o,
        "taylor carry error",
        format!("{:.3e} (delta, vs the next reprice)", s.taylor_max_error),
    );
    row(
        &mut o,
        "venue greeks check",
        format!(
            "{} compared; max |diff| Δ {:.2e} Γ {:.2e} ν/pt {:.2e} Θ/day {:.2e}",
            s.cross.0, s.cross.1[0], s.cross.1[1], s.cross.1[2], s.cross.1[3]
        ),
    );
    row(
        &mut o,
        "rings",
        format!(
            "feed full {} (conflated {}, dropped {}, book deltas lost {}), intents full {}, traces dropped {}",
            s.ring_full_feed,
            s.conflated,
            s.conflation_dropped,
            s.book_levels_lost,
            s.ring_full_intents,
            s.trace_drops
        ),
    );
    row(
        &mut o,
        "risk",
        format!(
            "state {}, {} orders vetoed{}; P&L {:+.0} USD (marked, fees excluded)",
            s.risk_state,
            s.vetoes,
            s.last_veto
                .map(|v| format!(" (last: {v})"))
                .unwrap_or_default(),
            s.pnl_usd
        ),
    );
    row(
        &mut o,
        "data",
        format!(
            "{} decisions held by a data fault, {} by a data guard; at end: {}",
            s.fault_steps,
            s.guard_steps,
            s.fault.or(s.guard).unwrap_or("ok")
        ),
    );
    if let Some(h) = &s.hyperliquid {
        let refused: Vec<String> = h
            .refused
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        row(
            &mut o,
            "hyperliquid",
            format!(
                "{} {} (account {}): {} fired, {} sent, filled {:+} {}; position {:+} → {}; {} \
                 voided, {} timed out, {} landed without reply; refused before sending: {}; {} \
                 ladders signed",
                h.target,
                h.coin,
                h.account,
                h.fired,
                h.orders_sent,
                h.filled,
                h.coin,
                h.position_start,
                h.position_end
                    .map_or("? (reading failed)".to_string(), |p| format!("{p:+}")),
                h.voided,
                h.timeouts,
                h.landed_unknown,
                if refused.is_empty() {
                    "none".to_string()
                } else {
                    refused.join(", ")
                },
                h.ladders_signed,
            ),
        );
    }
    if let Some(e) = &s.evm {
        row(
            &mut o,
            "on chain",
            format!(
                "{} ({}): {} hedges; {} decisions, {} accepted ({} by a builder seen on chain, {} \
                 lost and undone), {} all refused, {} held ({} landed late, {} not found); nonce {} \
                 → {}; last cost {:.2} USD/coin",
                e.target,
                e.address.as_deref().unwrap_or("no key"),
                s.chain_venue_hedges,
                e.decisions,
                e.won,
                e.confirmed,
                e.lost,
                e.failed,
                e.held,
                e.late_fills,
                e.not_found,
                e.nonce_start.map_or("?".into(), |n| n.to_string()),
                e.nonce_end.map_or("?".into(), |n| n.to_string()),
                s.chain_cost_per_coin,
            ),
        );
        let refused: Vec<String> = e
            .refusals
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        row(
            &mut o,
            "  refused before sending",
            if refused.is_empty() {
                "none".into()
            } else {
                refused.join(", ")
            },
        );
        row(
            &mut o,
            "  chain reads",
            format!(
                "{} ({} failed), {} ladders signed ({} failed)",
                e.chain_reads, e.chain_read_errors, e.ladders_signed, e.sign_errors
            ),
        );
        for r in &e.routes {
            row(
                &mut o,
                &format!("  {}", r.name),
                format!(
                    "{} copies: {} accepted, {} duplicate, {} rejected, {} timeout, {} error; \
                     send→ack p50 {} p99 {}; {}",
                    r.fired,
                    r.outcomes[0],
                    r.outcomes[1],
                    r.outcomes[2],
                    r.outcomes[3],
                    r.outcomes[4],
                    fmt_ns(r.p50_ns),
                    fmt_ns(r.p99_ns),
                    r.health
                ),
            );
        }
    }
    let _ = writeln!(
        o,
        "  {:<28} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "latency", "p50", "p90", "p99", "p99.9", "max", "count"
    );
    let stages = [
        Stage::TickToTrade,
        Stage::ReadParse,
        Stage::RingHop,
        Stage::Reprice,
        Stage::Decide,
        Stage::Send,
    ];
    for st in stages {
        let p = s.latency.get(st);
        let _ = writeln!(
            o,
            "  {:<28} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}",
            st.name(),
            fmt_ns(p.p50_ns),
            fmt_ns(p.p90_ns),
            fmt_ns(p.p99_ns),
            fmt_ns(p.p999_ns),
            fmt_ns(p.max_ns),
            p.count
        );
    }
    o
}
