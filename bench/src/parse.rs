//! `keel-bench parse`: ns per message for each venue parser (keel-feeds `venues`) on the
//! venue fixture messages, beside serde_json and sonic-rs deserialising the same bytes into
//! typed structs (borrowed `&str` fields) and building the same events, in one process.
//!
//! Fixtures are read at run time from `shared/fixtures/venues` beside the workspace and sent
//! compact (whitespace outside strings removed), as venues send them. Before timing, every
//! rival's events are checked equal to Keel's on the same messages, so the figures compare the
//! same work. The headline Deribit row (`deribit_ticker`) runs a stream of 256 different option
//! tickers made from the fixture (other instruments, timestamps, prices, sizes, IVs and
//! Greeks, with varying numbers of digits, so that every field moves from one message to the
//! next), each implementation parsing them in turn; `deribit_ticker_one` is the fixture alone,
//! parsed over and over, for comparison. Book messages run as a sequence of consecutive updates
//! (a snapshot, then 4,096 changes whose ids chain), so that every message is applied, never
//! skipped. The Deribit ticker rows also time Keel's general path alone (`keel_general`,
//! `DeribitParser::parse_general`), so the ticker fast path is measured beside what it
//! replaces; its events are checked equal too.

use anyhow::{Context, Result, bail, ensure};
use keel_feeds::venues::{
    BinanceMarket, BinanceParser, BybitParser, DeribitParser, OkxParser, Parsed,
};
use keel_feeds::{
    EventBody, Instrument, InstrumentId, InstrumentKind, Instruments, MarketEvent, OptionRight,
    OptionTicker, Side, Venue, VenueGreeks,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Flags of `keel-bench parse`.
#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object keyed by message kind instead of the table.
    #[arg(long)]
    json: bool,
    /// Minimum measuring time per implementation and message kind, in milliseconds.
    #[arg(long, default_value_t = 300, value_name = "MS")]
    min_ms: u64,
    /// The venue fixtures folder (default: shared/fixtures/venues beside the workspace).
    #[arg(long, value_name = "DIR")]
    fixtures: Option<PathBuf>,
}

#[derive(Serialize)]
struct Figure {
    bytes: usize,
    keel_ns: f64,
    /// Keel's general path alone, where the message kind has a specialised one.
    #[serde(skip_serializing_if = "Option::is_none")]
    keel_general_ns: Option<f64>,
    serde_json_ns: f64,
    sonic_rs_ns: f64,
}

/// Runs `f` (one message) repeatedly for at least `min`; median ns per call over batches.
fn measure(min: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..1000 {
        f();
    }
    let t0 = Instant::now();
    for _ in 0..100 {
        f();
    }
    let one = (t0.elapsed().as_nanos() as f64 / 100.0).max(1.0);
    let per_sample = ((100_000.0 / one).ceil() as usize).max(1);
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < min || samples.len() < 5 {
        let t = Instant::now();
        for _ in 0..per_sample {
            f();
        }
        samples.push(t.elapsed().as_nanos() as f64 / per_sample as f64);
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Removes the whitespace outside strings (the fixtures are pretty-printed; venues send
/// compact JSON).
fn compact(pretty: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pretty.len());
    let (mut in_str, mut escaped) = (false, false);
    for &b in pretty {
        if in_str {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
        } else if !b.is_ascii_whitespace() {
            if b == b'"' {
                in_str = true;
            }
            out.push(b);
        }
    }
    out
}

fn fixtures_dir(a: &Args) -> Result<PathBuf> {
    let dir = match &a.fixtures {
        Some(d) => d.clone(),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/venues"),
    };
    ensure!(
        dir.join("deribit/ticker_option.json").is_file(),
        "venue fixtures not found in {} (expected shared/fixtures/venues beside the workspace, \
         or pass --fixtures DIR)",
        dir.display()
    );
    Ok(dir)
}

fn load(dir: &std::path::Path, rel: &str) -> Result<Vec<u8>> {
    let path = dir.join(rel);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(compact(&bytes))
}

fn instrument(venue: Venue, name: &str, kind: InstrumentKind) -> Instrument {
    Instrument {
        venue,
        name: name.into(),
        kind,
        base_currency: "BTC".into(),
        quote_currency: "USD".into(),
        settlement_currency: "USD".into(),
        strike: f64::NAN,
        expiry_ms: 0,
        right: (kind == InstrumentKind::Option).then_some(OptionRight::Call),
        contract_size: 1.0,
        inverse: false,
        tick_size: 0.01,
        min_size: 0.01,
    }
}

/// A registry like a real one: the fixtures' instruments among a few hundred others.
fn registry() -> Instruments {
    let mut reg = Instruments::new();
    for (venue, name, kind) in [
        (
            Venue::Deribit,
            "BTC-26JUN26-100000-C",
            InstrumentKind::Option,
        ),
        (Venue::Deribit, "BTC-PERPETUAL", InstrumentKind::Perpetual),
        (Venue::Binance, "BNBUSDT", InstrumentKind::Perpetual),
        (Venue::Binance, "BTCUSDT", InstrumentKind::Perpetual),
        (Venue::Okx, "BTC-USDT", InstrumentKind::Spot),
        (Venue::Okx, "BTC-USD-231229-40000-P", InstrumentKind::Option),
        (Venue::Bybit, "BTC-6JAN23-17500-C", InstrumentKind::Option),
    ] {
        reg.insert(instrument(venue, name, kind));
    }
    for name in put_names() {
        reg.insert(instrument(Venue::Deribit, &name, InstrumentKind::Option));
    }
    reg
}

fn dbg_events(evs: &[MarketEvent]) -> String {
    format!("{evs:?}")
}

/// Parses the next message of a case, emitting its events into the callback.
type StepFn<'a> = dyn FnMut(&mut dyn FnMut(MarketEvent)) -> Result<()> + 'a;
type Step<'a> = Box<StepFn<'a>>;

/// One message kind: Keel's parser and the two rivals, each a closure parsing the next message
/// and emitting into the given callback; `keel_general` is Keel's general path alone where the
/// kind has a specialised fast path (the Deribit ticker).
struct Case<'a> {
    kind: &'static str,
    bytes: usize,
    /// Distinct messages each step cycles through (all checked before timing).
    messages: usize,
    keel: Step<'a>,
    keel_general: Option<Step<'a>>,
    serde_json: Step<'a>,
    sonic_rs: Step<'a>,
}

fn run_case(case: &mut Case<'_>, min: Duration) -> Result<Figure> {
    // Same events from all three (and Keel's general path) on every message of the case, in
    // the order the timing loop sees them.
    let next = |f: &mut StepFn<'_>| {
        let mut evs = Vec::new();
        f(&mut |e| evs.push(e)).map(|()| evs)
    };
    for k in 0..case.messages {
        let keel = next(&mut case.keel)?;
        let sj = next(&mut case.serde_json)?;
        let sr = next(&mut case.sonic_rs)?;
        ensure!(
            !keel.is_empty(),
            "{} #{k}: keel emitted no event",
            case.kind
        );
        if let Some(general) = case.keel_general.as_mut() {
            let g = next(general)?;
            ensure!(
                dbg_events(&keel) == dbg_events(&g),
                "{} #{k}: keel's general path differs from its fast path:\nfast {keel:?}\ngeneral {g:?}",
                case.kind
            );
        }
        ensure!(
            dbg_events(&keel) == dbg_events(&sj) && dbg_events(&keel) == dbg_events(&sr),
            "{} #{k}: the rivals' events differ from keel's:\nkeel {keel:?}\nserde_json {sj:?}\nsonic-rs {sr:?}",
            case.kind
        );
    }
    let mut errors = 0u64;
    let mut time = |f: &mut StepFn<'_>| {
        measure(min, || {
            if f(&mut |e| {
                black_box(e);
            })
            .is_err()
            {
                errors += 1;
            }
        })
    };
    let keel_ns = time(&mut case.keel);
    let keel_general_ns = case.keel_general.as_mut().map(|g| time(g));
    let serde_json_ns = time(&mut case.serde_json);
    let sonic_rs_ns = time(&mut case.sonic_rs);
    ensure!(
        errors == 0,
        "{}: {errors} messages failed while timing",
        case.kind
    );
    Ok(Figure {
        bytes: case.bytes,
        keel_ns,
        keel_general_ns,
        serde_json_ns,
        sonic_rs_ns,
    })
}

// ---- Typed structs for the rivals (borrowed where the text allows). ----

#[derive(Deserialize)]
struct Rpc<'a, P> {
    #[serde(borrow)]
    method: &'a str,
    params: P,
}

#[derive(Deserialize)]
struct Sub<'a, D> {
    #[serde(borrow)]
    channel: &'a str,
    data: D,
}

#[derive(Deserialize)]
struct DeribitGreeks {
    delta: f64,
    gamma: f64,
    vega: f64,
    theta: f64,
    rho: f64,
}

#[derive(Deserialize)]
struct DeribitTicker<'a> {
    timestamp: u64,
    #[serde(borrow)]
    instrument_name: &'a str,
    best_bid_price: Option<f64>,
    best_bid_amount: Option<f64>,
    best_ask_price: Option<f64>,
    best_ask_amount: Option<f64>,
    mark_price: Option<f64>,
    mark_iv: Option<f64>,
    bid_iv: Option<f64>,
    ask_iv: Option<f64>,
    underlying_price: Option<f64>,
    index_price: Option<f64>,
    current_funding: Option<f64>,
    greeks: Option<DeribitGreeks>,
}

#[derive(Deserialize)]
struct DeribitBook<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    instrument_name: &'a str,
    timestamp: u64,
    change_id: u64,
    prev_change_id: Option<u64>,
    #[serde(borrow)]
    bids: Vec<(&'a str, f64, f64)>,
    #[serde(borrow)]
    asks: Vec<(&'a str, f64, f64)>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct BinanceBookTicker<'a> {
    #[serde(borrow)]
    s: &'a str,
    T: Option<u64>,
    E: Option<u64>,
    b: &'a str,
    B: &'a str,
    a: &'a str,
    A: &'a str,
}

#[derive(Deserialize)]
struct Combined<'a, D> {
    #[serde(borrow)]
    #[allow(dead_code)]
    stream: &'a str,
    data: D,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct BinanceAggTrade<'a> {
    #[serde(borrow)]
    s: &'a str,
    T: u64,
    a: u64,
    p: &'a str,
    q: &'a str,
    m: bool,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct BinanceDepth<'a> {
    #[serde(borrow)]
    s: &'a str,
    T: Option<u64>,
    E: u64,
    U: u64,
    u: u64,
    pu: u64,
    #[serde(borrow)]
    b: Vec<(&'a str, &'a str)>,
    #[serde(borrow)]
    a: Vec<(&'a str, &'a str)>,
}

#[derive(Deserialize)]
struct OkxMsg<'a, D> {
    #[serde(borrow)]
    arg: OkxArg<'a>,
    data: Vec<D>,
}

#[derive(Deserialize)]
struct OkxArg<'a> {
    #[allow(dead_code)]
    channel: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OkxTicker<'a> {
    #[serde(borrow)]
    inst_id: &'a str,
    bid_px: &'a str,
    bid_sz: &'a str,
    ask_px: &'a str,
    ask_sz: &'a str,
    ts: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OkxOptSummary<'a> {
    #[serde(borrow)]
    inst_id: &'a str,
    mark_vol: &'a str,
    bid_vol: &'a str,
    ask_vol: &'a str,
    fwd_px: &'a str,
    #[serde(rename = "deltaBS")]
    delta_bs: &'a str,
    #[serde(rename = "gammaBS")]
    gamma_bs: &'a str,
    #[serde(rename = "vegaBS")]
    vega_bs: &'a str,
    #[serde(rename = "thetaBS")]
    theta_bs: &'a str,
    ts: &'a str,
}

#[derive(Deserialize)]
struct BybitMsg<'a> {
    #[serde(borrow)]
    #[allow(dead_code)]
    topic: &'a str,
    ts: u64,
    #[serde(borrow)]
    data: BybitOption<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BybitOption<'a> {
    #[serde(borrow)]
    symbol: &'a str,
    bid_price: &'a str,
    bid_size: &'a str,
    bid_iv: &'a str,
    ask_price: &'a str,
    ask_size: &'a str,
    ask_iv: &'a str,
    mark_price: &'a str,
    mark_price_iv: &'a str,
    index_price: &'a str,
    underlying_price: &'a str,
    delta: &'a str,
    gamma: &'a str,
    vega: &'a str,
    theta: &'a str,
}

// ---- The rivals' event building: the same normalisation as Keel's parsers. ----

fn ev(venue: Venue, id: InstrumentId, ts_ms: u64, recv: u64, body: EventBody) -> MarketEvent {
    MarketEvent {
        exchange_ts_ns: ts_ms * 1_000_000,
        recv_ts_ns: recv,
        instrument: id,
        venue,
        conn: 0,
        body,
    }
}

fn num(s: &str) -> Result<f64> {
    if s.is_empty() {
        return Ok(f64::NAN);
    }
    s.parse().with_context(|| format!("not a number: {s:?}"))
}

fn side(p: f64, q: f64) -> (f64, f64) {
    if (p == 0.0 && q == 0.0) || p.is_nan() {
        (f64::NAN, if q.is_nan() { 0.0 } else { q })
    } else {
        (p, q)
    }
}

fn nz(v: f64) -> f64 {
    if v == 0.0 { f64::NAN } else { v }
}

fn lookup(reg: &Instruments, venue: Venue, name: &str) -> Option<(InstrumentId, InstrumentKind)> {
    let id = reg.id(venue, name.as_bytes())?;
    Some((id, reg.get(id)?.kind))
}

fn deribit_ticker_events(
    reg: &Instruments,
    m: &Rpc<'_, Sub<'_, DeribitTicker<'_>>>,
    emit: &mut dyn FnMut(MarketEvent),
) -> Result<()> {
    ensure!(m.method == "subscription" && m.params.channel.starts_with("ticker."));
    let t = &m.params.data;
    let Some((id, kind)) = lookup(reg, Venue::Deribit, t.instrument_name) else {
        return Ok(());
    };
    let n = f64::NAN;
    let (bid, bid_size) = side(
        t.best_bid_price.unwrap_or(n),
        t.best_bid_amount.unwrap_or(n),
    );
    let (ask, ask_size) = side(
        t.best_ask_price.unwrap_or(n),
        t.best_ask_amount.unwrap_or(n),
    );
    let d = |x: Option<f64>| x.unwrap_or(n);
    if kind == InstrumentKind::Option {
        let body = EventBody::OptionTicker(OptionTicker {
            bid,
            bid_size,
            ask,
            ask_size,
            mark: d(t.mark_price),
            mark_iv: d(t.mark_iv) / 100.0,
            bid_iv: if bid.is_nan() { n } else { d(t.bid_iv) / 100.0 },
            ask_iv: if ask.is_nan() { n } else { d(t.ask_iv) / 100.0 },
            underlying: d(t.underlying_price),
            index: d(t.index_price),
        });
        emit(ev(Venue::Deribit, id, t.timestamp, 0, body));
        if let Some(g) = &t.greeks {
            let body = EventBody::VenueGreeks(VenueGreeks {
                delta: g.delta,
                gamma: g.gamma,
                vega: g.vega,
                theta: g.theta,
                rho: g.rho,
            });
            emit(ev(Venue::Deribit, id, t.timestamp, 0, body));
        }
    } else {
        let q = EventBody::Quote {
            bid,
            bid_size,
            ask,
            ask_size,
        };
        emit(ev(Venue::Deribit, id, t.timestamp, 0, q));
        let m = EventBody::Mark {
            mark: d(t.mark_price),
            iv: n,
            index: d(t.index_price),
            funding_rate: d(t.current_funding),
        };
        emit(ev(Venue::Deribit, id, t.timestamp, 0, m));
    }
    Ok(())
}

fn deribit_book_events(
    reg: &Instruments,
    last: &mut u64,
    m: &Rpc<'_, Sub<'_, DeribitBook<'_>>>,
    emit: &mut dyn FnMut(MarketEvent),
) -> Result<()> {
    ensure!(m.method == "subscription" && m.params.channel.starts_with("book."));
    let b = &m.params.data;
    let Some((id, _)) = lookup(reg, Venue::Deribit, b.instrument_name) else {
        return Ok(());
    };
    let snapshot = b.kind == "snapshot";
    ensure!(snapshot || b.prev_change_id == Some(*last), "gap");
    *last = b.change_id;
    let total = b.bids.len() + b.asks.len();
    let levels = b.bids.iter().map(|l| (l, Side::Buy));
    for (i, (&(action, price, size), side)) in levels
        .chain(b.asks.iter().map(|l| (l, Side::Sell)))
        .enumerate()
    {
        let body = EventBody::BookLevel {
            price,
            size: if action == "delete" { 0.0 } else { size },
            side,
            snapshot,
            first: i == 0,
            last: i + 1 == total,
            seq: b.change_id,
        };
        emit(ev(Venue::Deribit, id, b.timestamp, 0, body));
    }
    Ok(())
}

fn binance_quote(
    reg: &Instruments,
    t: &BinanceBookTicker<'_>,
    emit: &mut dyn FnMut(MarketEvent),
) -> Result<()> {
    let Some((id, _)) = lookup(reg, Venue::Binance, t.s) else {
        return Ok(());
    };
    let (bid, bid_size) = side(num(t.b)?, num(t.B)?);
    let (ask, ask_size) = side(num(t.a)?, num(t.A)?);
    let body = EventBody::Quote {
        bid,
        bid_size,
        ask,
        ask_size,
    };
    emit(ev(Venue::Binance, id, t.T.or(t.E).unwrap_or(0), 0, body));
    Ok(())
}

fn binance_trade(
    reg: &Instruments,
    t: &BinanceAggTrade<'_>,
    emit: &mut dyn FnMut(MarketEvent),
) -> Result<()> {
    let Some((id, _)) = lookup(reg, Venue::Binance, t.s) else {
        return Ok(());
    };
    let body = EventBody::Trade {
        price: num(t.p)?,
        qty: num(t.q)?,
        side: if t.m { Side::Sell } else { Side::Buy },
        trade_id: t.a,
    };
    emit(ev(Venue::Binance, id, t.T, 0, body));
    Ok(())
}

fn binance_depth(
    reg: &Instruments,
    last: &mut u64,
    d: &BinanceDepth<'_>,
    emit: &mut dyn FnMut(MarketEvent),
) -> Result<()> {
    let Some((id, _)) = lookup(reg, Venue::Binance, d.s) else {
        return Ok(());
    };
    ensure!(d.pu == *last || (*last >= d.U && *last <= d.u), "gap");
    *last = d.u;
    let total = d.b.len() + d.a.len();
    let levels = d.b.iter().map(|l| (l, Side::Buy));
    for (i, (&(p, q), side)) in levels
        .chain(d.a.iter().map(|l| (l, Side::Sell)))
        .enumerate()
    {
        let body = EventBody::BookLevel {
            price: num(p)?,
            size: num(q)?,
            side,
            snapshot: false,
            first: i == 0,
            last: i + 1 == total,
            seq: d.u,
        };
        emit(ev(Venue::Binance, id, d.T.unwrap_or(d.E), 0, body));
    }
    Ok(())
}

fn ts_ms(s: &str) -> Result<u64> {
    s.parse().with_context(|| format!("bad ts {s:?}"))
}

fn okx_tickers(
    reg: &Instruments,
    m: &OkxMsg<'_, OkxTicker<'_>>,
    emit: &mut dyn FnMut(MarketEvent),
) -> Result<()> {
    let _ = m.arg.channel;
    for t in &m.data {
        let Some((id, _)) = lookup(reg, Venue::Okx, t.inst_id) else {
            continue;
        };
        let (bid, bid_size) = side(num(t.bid_px)?, num(t.bid_sz)?);
        let (ask, ask_size) = side(num(t.ask_px)?, num(t.ask_sz)?);
        let body = EventBody::Quote {
            bid,
            bid_size,
            ask,
            ask_size,
        };
        emit(ev(Venue::Okx, id, ts_ms(t.ts)?, 0, body));
    }
    Ok(())
}

fn okx_opt_summary(
    reg: &Instruments,
    m: &OkxMsg<'_, OkxOptSummary<'_>>,
    emit: &mut dyn FnMut(MarketEvent),
) -> Result<()> {
    let n = f64::NAN;
    for s in &m.data {
        let Some((id, _)) = lookup(reg, Venue::Okx, s.inst_id) else {
            continue;
        };
        let ts = ts_ms(s.ts)?;
        let t = OptionTicker {
            bid: n,
            bid_size: n,
            ask: n,
            ask_size: n,
            mark: n,
            mark_iv: nz(num(s.mark_vol)?),
            bid_iv: nz(num(s.bid_vol)?),
            ask_iv: nz(num(s.ask_vol)?),
            underlying: num(s.fwd_px)?,
            index: n,
        };
        emit(ev(Venue::Okx, id, ts, 0, EventBody::OptionTicker(t)));
        let g = VenueGreeks {
            delta: num(s.delta_bs)?,
            gamma: num(s.gamma_bs)?,
            vega: num(s.vega_bs)?,
            theta: num(s.theta_bs)?,
            rho: n,
        };
        emit(ev(Venue::Okx, id, ts, 0, EventBody::VenueGreeks(g)));
    }
    Ok(())
}

fn bybit_option(
    reg: &Instruments,
    m: &BybitMsg<'_>,
    emit: &mut dyn FnMut(MarketEvent),
) -> Result<()> {
    let o = &m.data;
    let Some((id, _)) = lookup(reg, Venue::Bybit, o.symbol) else {
        return Ok(());
    };
    let (bid, bid_size) = side(num(o.bid_price)?, num(o.bid_size)?);
    let (ask, ask_size) = side(num(o.ask_price)?, num(o.ask_size)?);
    let t = OptionTicker {
        bid,
        bid_size,
        ask,
        ask_size,
        mark: num(o.mark_price)?,
        mark_iv: nz(num(o.mark_price_iv)?),
        bid_iv: if bid.is_nan() {
            f64::NAN
        } else {
            nz(num(o.bid_iv)?)
        },
        ask_iv: if ask.is_nan() {
            f64::NAN
        } else {
            nz(num(o.ask_iv)?)
        },
        underlying: num(o.underlying_price)?,
        index: num(o.index_price)?,
    };
    emit(ev(Venue::Bybit, id, m.ts, 0, EventBody::OptionTicker(t)));
    let g = VenueGreeks {
        delta: num(o.delta)?,
        gamma: num(o.gamma)?,
        vega: num(o.vega)?,
        theta: num(o.theta)?,
        rho: f64::NAN,
    };
    emit(ev(Venue::Bybit, id, m.ts, 0, EventBody::VenueGreeks(g)));
    Ok(())
}

// ---- Cases. ----

fn keel_ok(p: Result<Parsed<'_>, keel_feeds::ParseError>) -> Result<()> {
    match p? {
        Parsed::Events { .. } => Ok(()),
        other => bail!("unexpected {other:?}"),
    }
}

/// A rival over one message: deserialise with `de`, then build events with `build`.
macro_rules! rival {
    ($msg:expr, $de:path, $ty:ty, $build:expr) => {{
        let msg: &[u8] = $msg;
        let build = $build;
        Box::new(move |emit: &mut dyn FnMut(MarketEvent)| -> Result<()> {
            let m: $ty = $de(black_box(msg)).map_err(|e| anyhow::anyhow!("{e}"))?;
            build(&m, emit)
        }) as Step<'_>
    }};
}

/// A rival over a set of messages, one after the other: deserialise with `de`, then build
/// events with `build`.
macro_rules! rival_set {
    ($set:expr, $de:path, $ty:ty, $build:expr) => {{
        let set: &[Vec<u8>] = $set;
        let build = $build;
        let mut i = 0;
        Box::new(move |emit: &mut dyn FnMut(MarketEvent)| -> Result<()> {
            let msg = black_box(&set[i][..]);
            i = (i + 1) % set.len();
            let m: $ty = $de(msg).map_err(|e| anyhow::anyhow!("{e}"))?;
            build(&m, emit)
        }) as Step<'_>
    }};
}

/// Tickers in the varying set: 256 of ~775 bytes (~200 KB, which stays in L2, as a socket's
/// last reads do).
const TICKER_SET: usize = 256;

/// The put names of the bench registry.
fn put_names() -> impl Iterator<Item = String> {
    (0..300).map(|k| format!("BTC-26JUN26-{}-P", 50_000 + 1_000 * k))
}

/// Consecutive Deribit book changes after a snapshot: (snapshot, changes).
fn deribit_book_sequence(change: &[u8], snapshot: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>)> {
    let text = std::str::from_utf8(change)?;
    ensure!(
        text.contains("\"change_id\":123456790") && text.contains("\"prev_change_id\":123456789")
    );
    let base = 1_000_000u64;
    let snap = std::str::from_utf8(snapshot)?.replace("123456789", &base.to_string());
    let changes = (0..4096u64)
        .map(|i| {
            text.replace("123456790", &(base + i + 1).to_string())
                .replace("123456789", &(base + i).to_string())
                .into_bytes()
        })
        .collect();
    Ok((snap.into_bytes(), changes))
}

/// Consecutive Binance futures depth updates: (snapshot lastUpdateId, updates).
fn binance_depth_sequence(update: &[u8]) -> Result<(u64, Vec<Vec<u8>>)> {
    let text = std::str::from_utf8(update)?;
    ensure!(
        text.contains("\"U\":157") && text.contains("\"u\":160") && text.contains("\"pu\":149")
    );
    let base = 1_000_000u64;
    let updates = (0..4096u64)
        .map(|i| {
            let (first, last, prev) = (base + 10 * i + 1, base + 10 * (i + 1), base + 10 * i);
            text.replace("\"U\":157", &format!("\"U\":{first}"))
                .replace("\"u\":160", &format!("\"u\":{last}"))
                .replace("\"pu\":149", &format!("\"pu\":{prev}"))
                .into_bytes()
        })
        .collect();
    Ok((base + 5, updates))
}

/// A small xorshift generator (deterministic message sets).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    /// A decimal below `int_max + 1` with up to `decimals` decimals (trailing zeros dropped,
    /// as venues print them), negative when `neg` and not zero.
    fn decimal(&mut self, int_max: u64, decimals: u32, neg: bool) -> String {
        let int = self.below(int_max + 1);
        let frac = self.below(10u64.pow(decimals));
        let mut s = format!("{int}.{frac:0w$}", w = decimals as usize)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string();
        if neg && s != "0" {
            s.insert(0, '-');
        }
        s
    }
}

/// Replaces the value of the first `"key":` number in `text`.
fn set_number(text: &mut String, key: &str, value: &str) -> Result<()> {
    let pat = format!("\"{key}\":");
    let at = text
        .find(&pat)
        .with_context(|| format!("no {key} in the ticker fixture"))?
        + pat.len();
    let len = text[at..]
        .find([',', '}'])
        .with_context(|| format!("{key} has no end"))?;
    text.replace_range(at..at + len, value);
    Ok(())
}

/// `n` Deribit option tickers made from the fixture as a venue's stream varies it: each of
/// another instrument of `names` (channel and name), with a later timestamp and new prices,
/// sizes, IVs and Greeks of the magnitudes Deribit sends, printed with varying numbers of
/// digits (so values and lengths, and where every field sits, change from one to the next);
/// the gamma now and then in Python's exponent spelling (`3e-05`), as the fixture has it.
fn deribit_ticker_set(fixture: &[u8], names: &[String], n: usize) -> Result<Vec<Vec<u8>>> {
    let text = std::str::from_utf8(fixture)?;
    let fixture_name = "BTC-26JUN26-100000-C";
    ensure!(
        text.contains(fixture_name),
        "the ticker fixture is not {fixture_name}'s"
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let name = &names[rng.below(names.len() as u64) as usize];
        let mut t = text.replace(fixture_name, name);
        let neg = rng.below(2) == 1;
        let gamma = if rng.below(3) == 0 {
            format!("{}e-0{}", 1 + rng.below(9), 5 + rng.below(3))
        } else {
            rng.decimal(0, 5, false)
        };
        let index = rng.decimal(120_000, 2, false);
        let fields = [
            ("timestamp", (1_752_057_345_721 + 100 * i).to_string()),
            ("delta", rng.decimal(0, 5, neg)),
            ("gamma", gamma),
            ("vega", rng.decimal(999, 5, false)),
            ("theta", rng.decimal(99, 5, true)),
            ("rho", rng.decimal(999, 5, neg)),
            ("index_price", index.clone()),
            ("estimated_delivery_price", index),
            ("last_price", rng.decimal(0, 4, false)),
            ("settlement_price", rng.decimal(0, 8, false)),
            ("mark_price", rng.decimal(1, 8, false)),
            ("best_bid_price", rng.decimal(0, 4, false)),
            ("best_ask_price", rng.decimal(1, 4, false)),
            ("mark_iv", rng.decimal(150, 2, false)),
            ("bid_iv", rng.decimal(150, 2, false)),
            ("ask_iv", rng.decimal(150, 2, false)),
            ("underlying_price", rng.decimal(130_000, 2, false)),
            ("best_bid_amount", rng.decimal(500, 1, false)),
            ("best_ask_amount", rng.decimal(500, 1, false)),
            ("open_interest", rng.decimal(5_000, 1, false)),
        ];
        for (key, value) in &fields {
            set_number(&mut t, key, value)?;
        }
        out.push(t.into_bytes());
    }
    Ok(out)
}

/// Runs the bench as the flags say.
pub fn run(a: &Args) -> Result<()> {
    let dir = fixtures_dir(a)?;
    let reg = registry();
    let min = Duration::from_millis(a.min_ms);

    let d_ticker = load(&dir, "deribit/ticker_option.json")?;
    let d_perp = load(&dir, "deribit/ticker_perpetual.json")?;
    let (d_snap, d_changes) = deribit_book_sequence(
        &load(&dir, "deribit/book_change.json")?,
        &load(&dir, "deribit/book_snapshot.json")?,
    )?;
    let b_ticker = load(&dir, "binance/futures_book_ticker.json")?;
    let b_combined = load(&dir, "binance/combined_book_ticker.json")?;
    let b_trade = load(&dir, "binance/futures_agg_trade.json")?;
    let (b_snap_id, b_depth) =
        binance_depth_sequence(&load(&dir, "binance/futures_depth_update.json")?)?;
    let b_snap = format!("{{\"lastUpdateId\":{b_snap_id},\"bids\":[],\"asks\":[]}}").into_bytes();
    let o_tickers = load(&dir, "okx/tickers.json")?;
    let o_summary = load(&dir, "okx/opt_summary.json")?;
    let y_option = load(&dir, "bybit/option_ticker.json")?;

    let names: Vec<String> = std::iter::once("BTC-26JUN26-100000-C".to_string())
        .chain(put_names())
        .collect();
    let d_tickers = deribit_ticker_set(&d_ticker, &names, TICKER_SET)?;

    let mut cases: Vec<Case<'_>> = Vec::new();

    // Deribit option tickers, a stream of varying ones: the headline figure.
    {
        let set = &d_tickers;
        let (mut p, mut general) = (DeribitParser::new(&reg), DeribitParser::new(&reg));
        let (mut i, mut j) = (0, 0);
        let r = &reg;
        cases.push(Case {
            kind: "deribit_ticker",
            bytes: set.iter().map(Vec::len).sum::<usize>() / set.len(),
            messages: set.len(),
            keel: Box::new(move |emit| {
                let res = keel_ok(p.parse(black_box(&set[i]), 0, emit));
                i = (i + 1) % set.len();
                res
            }),
            keel_general: Some(Box::new(move |emit| {
                let res = keel_ok(general.parse_general(black_box(&set[j]), 0, emit));
                j = (j + 1) % set.len();
                res
            })),
            serde_json: rival_set!(
                set,
                serde_json::from_slice,
                Rpc<'_, Sub<'_, DeribitTicker<'_>>>,
                move |m: &Rpc<'_, Sub<'_, DeribitTicker<'_>>>, e: &mut dyn FnMut(MarketEvent)| {
                    deribit_ticker_events(r, m, e)
                }
            ),
            sonic_rs: rival_set!(
                set,
                sonic_rs::from_slice,
                Rpc<'_, Sub<'_, DeribitTicker<'_>>>,
                move |m: &Rpc<'_, Sub<'_, DeribitTicker<'_>>>, e: &mut dyn FnMut(MarketEvent)| {
                    deribit_ticker_events(r, m, e)
                }
            ),
        });
    }

    // The fixture tickers, each one buffer parsed over and over.
    for (kind, msg) in [
        ("deribit_ticker_one", &d_ticker),
        ("deribit_perp_ticker", &d_perp),
    ] {
        let mut p = DeribitParser::new(&reg);
        let mut general = DeribitParser::new(&reg);
        let r = &reg;
        cases.push(Case {
            kind,
            bytes: msg.len(),
            messages: 1,
            keel: Box::new(move |emit| keel_ok(p.parse(black_box(msg), 0, emit))),
            keel_general: Some(Box::new(move |emit| {
                keel_ok(general.parse_general(black_box(msg), 0, emit))
            })),
            serde_json: rival!(
                msg,
                serde_json::from_slice,
                Rpc<'_, Sub<'_, DeribitTicker<'_>>>,
                move |m: &Rpc<'_, Sub<'_, DeribitTicker<'_>>>, e: &mut dyn FnMut(MarketEvent)| {
                    deribit_ticker_events(r, m, e)
                }
            ),
            sonic_rs: rival!(
                msg,
                sonic_rs::from_slice,
                Rpc<'_, Sub<'_, DeribitTicker<'_>>>,
                move |m: &Rpc<'_, Sub<'_, DeribitTicker<'_>>>, e: &mut dyn FnMut(MarketEvent)| {
                    deribit_ticker_events(r, m, e)
                }
            ),
        });
    }

    // Deribit book changes, in sequence.
    {
        let mut p = DeribitParser::new(&reg);
        let (snap, changes) = (&d_snap, &d_changes);
        let mut i = 0;
        let keel = Box::new(move |emit: &mut dyn FnMut(MarketEvent)| -> Result<()> {
            if i == 0 {
                keel_ok(p.parse(snap, 0, &mut |_| {}))?;
            }
            let r = keel_ok(p.parse(black_box(&changes[i]), 0, emit));
            i = (i + 1) % changes.len();
            r
        });
        let rival_book = |json: bool| {
            let r = &reg;
            let mut i = 0;
            let mut last = 1_000_000u64;
            Box::new(move |emit: &mut dyn FnMut(MarketEvent)| -> Result<()> {
                if i == 0 {
                    last = 1_000_000;
                }
                let msg = black_box(&changes[i][..]);
                let m: Rpc<'_, Sub<'_, DeribitBook<'_>>> = if json {
                    serde_json::from_slice(msg)?
                } else {
                    sonic_rs::from_slice(msg)?
                };
                i = (i + 1) % changes.len();
                deribit_book_events(r, &mut last, &m, emit)
            }) as Step<'_>
        };
        cases.push(Case {
            kind: "deribit_book_change",
            bytes: changes[0].len(),
            messages: 1,
            keel,
            keel_general: None,
            serde_json: rival_book(true),
            sonic_rs: rival_book(false),
        });
    }

    // Binance.
    {
        let mut p = BinanceParser::new(BinanceMarket::UsdmFutures, &reg);
        let r = &reg;
        let msg = &b_ticker;
        cases.push(Case {
            kind: "binance_book_ticker",
            bytes: msg.len(),
            messages: 1,
            keel: Box::new(move |emit| keel_ok(p.parse(black_box(msg), 0, emit))),
            keel_general: None,
            serde_json: rival!(
                msg,
                serde_json::from_slice,
                BinanceBookTicker<'_>,
                move |m: &BinanceBookTicker<'_>, e: &mut dyn FnMut(MarketEvent)| binance_quote(
                    r, m, e
                )
            ),
            sonic_rs: rival!(
                msg,
                sonic_rs::from_slice,
                BinanceBookTicker<'_>,
                move |m: &BinanceBookTicker<'_>, e: &mut dyn FnMut(MarketEvent)| binance_quote(
                    r, m, e
                )
            ),
        });
    }
    {
        let mut p = BinanceParser::new(BinanceMarket::UsdmFutures, &reg);
        let r = &reg;
        let msg = &b_combined;
        cases.push(Case {
            kind: "binance_combined_book_ticker",
            bytes: msg.len(),
            messages: 1,
            keel: Box::new(move |emit| keel_ok(p.parse(black_box(msg), 0, emit))),
            keel_general: None,
            serde_json: rival!(
                msg,
                serde_json::from_slice,
                Combined<'_, BinanceBookTicker<'_>>,
                move |m: &Combined<'_, BinanceBookTicker<'_>>, e: &mut dyn FnMut(MarketEvent)| {
                    binance_quote(r, &m.data, e)
                }
            ),
            sonic_rs: rival!(
                msg,
                sonic_rs::from_slice,
                Combined<'_, BinanceBookTicker<'_>>,
                move |m: &Combined<'_, BinanceBookTicker<'_>>, e: &mut dyn FnMut(MarketEvent)| {
                    binance_quote(r, &m.data, e)
                }
            ),
        });
    }
    {
        let mut p = BinanceParser::new(BinanceMarket::UsdmFutures, &reg);
        let r = &reg;
        let msg = &b_trade;
        cases.push(Case {
            kind: "binance_agg_trade",
            bytes: msg.len(),
            messages: 1,
            keel: Box::new(move |emit| keel_ok(p.parse(black_box(msg), 0, emit))),
            keel_general: None,
            serde_json: rival!(
                msg,
                serde_json::from_slice,
                BinanceAggTrade<'_>,
                move |m: &BinanceAggTrade<'_>, e: &mut dyn FnMut(MarketEvent)| binance_trade(
                    r, m, e
                )
            ),
            sonic_rs: rival!(
                msg,
                sonic_rs::from_slice,
                BinanceAggTrade<'_>,
                move |m: &BinanceAggTrade<'_>, e: &mut dyn FnMut(MarketEvent)| binance_trade(
                    r, m, e
                )
            ),
        });
    }
    {
        let mut p = BinanceParser::new(BinanceMarket::UsdmFutures, &reg);
        let (snap, updates) = (&b_snap, &b_depth);
        let mut i = 0;
        let keel = Box::new(move |emit: &mut dyn FnMut(MarketEvent)| -> Result<()> {
            if i == 0 {
                p.apply_depth_snapshot(b"BTCUSDT", snap, 0, &mut |_| {})?;
            }
            let r = keel_ok(p.parse(black_box(&updates[i]), 0, emit));
            i = (i + 1) % updates.len();
            r
        });
        let rival_depth = |json: bool| {
            let r = &reg;
            let mut i = 0;
            let mut last = b_snap_id;
            Box::new(move |emit: &mut dyn FnMut(MarketEvent)| -> Result<()> {
                if i == 0 {
                    last = b_snap_id;
                }
                let msg = black_box(&updates[i][..]);
                let m: BinanceDepth<'_> = if json {
                    serde_json::from_slice(msg)?
                } else {
                    sonic_rs::from_slice(msg)?
                };
                i = (i + 1) % updates.len();
                binance_depth(r, &mut last, &m, emit)
            }) as Step<'_>
        };
        cases.push(Case {
            kind: "binance_depth",
            bytes: updates[0].len(),
            messages: 1,
            keel,
            keel_general: None,
            serde_json: rival_depth(true),
            sonic_rs: rival_depth(false),
        });
    }

    // OKX.
    {
        let mut p = OkxParser::new(&reg);
        let r = &reg;
        let msg = &o_tickers;
        cases.push(Case {
            kind: "okx_tickers",
            bytes: msg.len(),
            messages: 1,
            keel: Box::new(move |emit| keel_ok(p.parse(black_box(msg), 0, emit))),
            keel_general: None,
            serde_json: rival!(
                msg,
                serde_json::from_slice,
                OkxMsg<'_, OkxTicker<'_>>,
                move |m: &OkxMsg<'_, OkxTicker<'_>>, e: &mut dyn FnMut(MarketEvent)| okx_tickers(
                    r, m, e
                )
            ),
            sonic_rs: rival!(
                msg,
                sonic_rs::from_slice,
                OkxMsg<'_, OkxTicker<'_>>,
                move |m: &OkxMsg<'_, OkxTicker<'_>>, e: &mut dyn FnMut(MarketEvent)| okx_tickers(
                    r, m, e
                )
            ),
        });
    }
    {
        let mut p = OkxParser::new(&reg);
        let r = &reg;
        let msg = &o_summary;
        cases.push(Case {
            kind: "okx_opt_summary",
            bytes: msg.len(),
            messages: 1,
            keel: Box::new(move |emit| keel_ok(p.parse(black_box(msg), 0, emit))),
            keel_general: None,
            serde_json: rival!(
                msg,
                serde_json::from_slice,
                OkxMsg<'_, OkxOptSummary<'_>>,
                move |m: &OkxMsg<'_, OkxOptSummary<'_>>, e: &mut dyn FnMut(MarketEvent)| {
                    okx_opt_summary(r, m, e)
                }
            ),
            sonic_rs: rival!(
                msg,
                sonic_rs::from_slice,
                OkxMsg<'_, OkxOptSummary<'_>>,
                move |m: &OkxMsg<'_, OkxOptSummary<'_>>, e: &mut dyn FnMut(MarketEvent)| {
                    okx_opt_summary(r, m, e)
                }
            ),
        });
    }

    // Bybit.
    {
        let mut p = BybitParser::new(&reg);
        let r = &reg;
        let msg = &y_option;
        cases.push(Case {
            kind: "bybit_option_ticker",
            bytes: msg.len(),
            messages: 1,
            keel: Box::new(move |emit| keel_ok(p.parse(black_box(msg), 0, emit))),
            keel_general: None,
            serde_json: rival!(
                msg,
                serde_json::from_slice,
                BybitMsg<'_>,
                move |m: &BybitMsg<'_>, e: &mut dyn FnMut(MarketEvent)| bybit_option(r, m, e)
            ),
            sonic_rs: rival!(
                msg,
                sonic_rs::from_slice,
                BybitMsg<'_>,
                move |m: &BybitMsg<'_>, e: &mut dyn FnMut(MarketEvent)| bybit_option(r, m, e)
            ),
        });
    }

    let mut report = BTreeMap::new();
    if !a.json {
        println!(
            "keel-bench parse — ns per message (median), one core, compact fixture messages \
             (deribit_ticker: {TICKER_SET} varying tickers in turn)"
        );
        println!(
            "{:<30} {:>6} {:>9} {:>12} {:>11} {:>9}  {:>12} {:>12}",
            "message",
            "bytes",
            "keel",
            "keel_general",
            "serde_json",
            "sonic-rs",
            "vs serde_json",
            "vs sonic-rs"
        );
    }
    for case in &mut cases {
        let f = run_case(case, min)?;
        if !a.json {
            let general = f
                .keel_general_ns
                .map_or_else(|| "-".to_string(), |g| format!("{g:.1}"));
            println!(
                "{:<30} {:>6} {:>9.1} {:>12} {:>11.1} {:>9.1}  {:>11.1}x {:>11.1}x",
                case.kind,
                f.bytes,
                f.keel_ns,
                general,
                f.serde_json_ns,
                f.sonic_rs_ns,
                f.serde_json_ns / f.keel_ns,
                f.sonic_rs_ns / f.keel_ns,
            );
        }
        report.insert(case.kind, f);
    }
    let frame = ws_frame_decode(&d_ticker, min);
    if a.json {
        let mut out = serde_json::to_value(&report)?;
        out["ws_frame_decode"] = serde_json::json!({
            "bytes": frame.0,
            "keel_ns": frame.1,
            "tungstenite_ns": frame.2,
        });
        println!("{out}");
    } else {
        println!(
            "{:<30} {:>6} {:>9.1} {:>12} {:>11} {:>9}  (tungstenite {:.1} ns: {:.1}x)",
            "ws_frame_decode (per frame)",
            frame.0,
            frame.1,
            "-",
            "-",
            "-",
            frame.2,
            frame.2 / frame.1
        );
    }
    Ok(())
}

/// The WebSocket frame decoder, ns per frame: keel's `FrameDecoder` beside tungstenite reading
/// the same server frames (each carrying `payload`, text, UTF-8 checked by both) from memory.
fn ws_frame_decode(payload: &[u8], min: Duration) -> (usize, f64, f64) {
    use keel_feeds::net::ws::{FrameDecoder, Message};
    const FRAMES: usize = 64;
    let mut one = vec![0x81u8];
    if payload.len() < 126 {
        one.push(payload.len() as u8);
    } else {
        one.push(126);
        one.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    one.extend_from_slice(payload);
    let stream: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * FRAMES)
        .collect();

    let mut dec = FrameDecoder::new(1 << 20);
    let keel = measure(min, || {
        dec.push(black_box(&stream));
        let mut n = 0;
        while let Ok(Some(m)) = dec.next_message() {
            if let Message::Text(p) = m {
                n += p.len();
            }
        }
        black_box(n);
    }) / FRAMES as f64;

    /// An in-memory stream: reads the frames, discards writes (there are none to make).
    struct Mem<'a>(std::io::Cursor<&'a [u8]>);
    impl std::io::Read for Mem<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(buf)
        }
    }
    impl std::io::Write for Mem<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let tung = measure(min, || {
        let cursor = Mem(std::io::Cursor::new(black_box(&stream).as_slice()));
        let mut ws = tungstenite::WebSocket::from_raw_socket(
            cursor,
            tungstenite::protocol::Role::Client,
            None,
        );
        let mut n = 0;
        for _ in 0..FRAMES {
            if let Ok(tungstenite::Message::Text(t)) = ws.read() {
                n += t.len();
            }
        }
        black_box(n);
    }) / FRAMES as f64;
    (one.len(), keel, tung)
}
