//! The simulated venue's listed instruments: a BTC perpetual, dated futures and a chain of
//! options across daily, weekly, monthly and quarterly expiries (08:00 UTC, Deribit's
//! convention), named as Deribit names them (`BTC-26JUN26-100000-C`: day not zero-padded;
//! fractional strikes written with `d` for the decimal point), plus the `public/get_instruments`
//! answers pre-rendered once.
//!
//! Owns the instrument list and its names. Built once at start-up; never changes afterwards and
//! is shared read-only between threads, so nothing here runs per message.

use std::collections::HashMap;

use keel_feeds::{Instrument, InstrumentKind, OptionRight, Venue};

/// Milliseconds per day.
pub const DAY_MS: u64 = 86_400_000;
/// Expiry hour, UTC (Deribit settles at 08:00 UTC).
pub const EXPIRY_HOUR_MS: u64 = 8 * 3_600_000;
/// Milliseconds per year, ACT/365 (DESIGN.md "Units").
pub const YEAR_MS: f64 = 31_536_000_000.0;
/// Expiry of the perpetual in Deribit's instrument list (year 3000).
pub const PERPETUAL_EXPIRY_MS: u64 = 32_503_708_800_000;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month 1..=12, day 1..=31) of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Day of the week of a day number: 0 = Sunday .. 6 = Saturday.
pub fn weekday(days: i64) -> u32 {
    (days + 4).rem_euclid(7) as u32
}

/// Deribit's date code of a day number: `26JUN26`, `2JUN21` (day not zero-padded).
pub fn date_code(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    let month = MONTHS.get(m as usize - 1).copied().unwrap_or("???");
    format!("{d}{month}{:02}", y.rem_euclid(100))
}

/// Deribit's strike text: an integer as is (`100000`), a fraction with `d` for the point
/// (`0d625`).
pub fn strike_code(strike: f64) -> String {
    if strike.fract() == 0.0 && strike.abs() < 1e15 {
        format!("{}", strike as i64)
    } else {
        format!("{strike}").replace('.', "d")
    }
}

/// How an expiry is listed (Deribit's `settlement_period`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// A daily expiry.
    Day,
    /// A Friday that is not the month's last.
    Week,
    /// The month's last Friday (monthlies and quarterlies).
    Month,
}

impl Period {
    /// Deribit's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }
}

/// One listed expiry.
#[derive(Clone, Debug, PartialEq)]
pub struct Expiry {
    /// 08:00 UTC of the expiry day, ms since the Unix epoch.
    pub ms: u64,
    /// Deribit's date code (`26JUN26`).
    pub code: String,
    /// Daily, weekly or monthly.
    pub period: Period,
    /// The dated future of this expiry, if one is listed (index into [`Chain::futures`]).
    pub future: Option<usize>,
    /// What Deribit's option tickers call the underlying: the future's name, or `SYN.` + it
    /// for a synthetic forward where no future is listed.
    pub underlying_index: String,
}

/// One listed option.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedOption {
    /// `BTC-26JUN26-100000-C`.
    pub name: String,
    /// Index into [`Chain::expiries`].
    pub expiry: usize,
    /// Strike, USD.
    pub strike: f64,
    /// Call or put.
    pub right: OptionRight,
    /// Deribit's numeric `instrument_id`.
    pub instrument_id: u32,
    /// A static open interest for the ticker, contracts.
    pub open_interest: f64,
}

/// One listed dated future.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedFuture {
    /// `BTC-26JUN26`.
    pub name: String,
    /// Index into [`Chain::expiries`].
    pub expiry: usize,
    /// Deribit's numeric `instrument_id`.
    pub instrument_id: u32,
}

/// What a Deribit instrument name refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstrumentRef {
    /// `BTC-PERPETUAL`.
    Perpetual,
    /// A dated future (index into [`Chain::futures`]).
    Future(usize),
    /// An option (index into [`Chain::options`]).
    Option(usize),
}

/// Parameters of the listed chain.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChainSpec {
    /// Number of options to list (rounded down to an even number: calls and puts per strike).
    pub options: usize,
    /// Spot at listing, USD: strikes are centred on each expiry's forward.
    pub spot: f64,
    /// Volatility used to size the strike range (±2.5 s.d. of the log-price per expiry).
    pub vol: f64,
    /// Cost of carry per year for the forwards (F = S·e^{carry·T}).
    pub carry: f64,
    /// Listing time, ms since the Unix epoch.
    pub now_ms: u64,
    /// Seed for the static open interests.
    pub seed: u64,
}

/// The whole listed chain, built once.
#[derive(Clone, Debug)]
pub struct Chain {
    /// Expiries, soonest first.
    pub expiries: Vec<Expiry>,
    /// Dated futures, soonest first.
    pub futures: Vec<ListedFuture>,
    /// Options, by expiry then strike, call before put.
    pub options: Vec<ListedOption>,
    /// When the chain was listed, ms.
    pub created_ms: u64,
    by_name: HashMap<String, InstrumentRef>,
    json_options: String,
    json_futures: String,
    json_all: String,
}

/// The perpetual's name.
pub const PERPETUAL: &str = "BTC-PERPETUAL";
/// The index's name.
pub const INDEX_NAME: &str = "btc_usd";
/// Binance's symbol of the simulated USDⓈ-M perpetual (lower case in stream names).
pub const BINANCE_SYMBOL: &str = "BTCUSDT";

/// A "nice" strike step (1, 2, 2.5 or 5 × 10^k) not above `raw`.
fn nice_step_below(raw: f64) -> f64 {
    if !(raw > 0.0 && raw.is_finite()) {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    for m in [5.0, 2.5, 2.0, 1.0] {
        if m * p <= raw * (1.0 + 1e-12) {
            return m * p;
        }
    }
    p
}

/// Expiry days (day numbers) listed at `now_ms`: the next 3 dailies, next 4 Fridays, the last
/// Fridays of the next 3 months and of the next 4 quarter months, each at least one hour away.
fn expiry_days(now_ms: u64) -> Vec<(i64, Period)> {
    let today = (now_ms / DAY_MS) as i64;
    let live = |day: i64| day >= 0 && (day as u64) * DAY_MS + EXPIRY_HOUR_MS > now_ms + 3_600_000;
    let last_friday = |y: i64, m: u32| {
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        let mut d = days_from_civil(ny, nm, 1) - 1;
        while weekday(d) != 5 {
            d -= 1;
        }
        d
    };
    let mut days: Vec<i64> = Vec::new();
    days.extend((today..today + 10).filter(|&d| live(d)).take(3));
    days.extend(
        (today..today + 60)
            .filter(|&d| weekday(d) == 5 && live(d))
            .take(4),
    );
    let (y0, m0, _) = civil_from_days(today);
    let months = (0..30).map(|i| {
        let m = (m0 - 1 + i) % 12 + 1;
        let y = y0 + i64::from((m0 - 1 + i) / 12);
        (y, m)
    });
    days.extend(
        months
            .clone()
            .map(|(y, m)| last_friday(y, m))
            .filter(|&d| live(d))
            .take(3),
    );
    days.extend(
        months
            .filter(|&(_, m)| m % 3 == 0)
            .map(|(y, m)| last_friday(y, m))
            .filter(|&d| live(d))
            .take(4),
    );
    days.sort_unstable();
    days.dedup();
    days.into_iter()
        .map(|d| {
            let period = if weekday(d) != 5 {
                Period::Day
            } else if weekday(d + 7) == 5 && civil_from_days(d + 7).1 != civil_from_days(d).1 {
                Period::Month
            } else {
                Period::Week
            };
            (d, period)
        })
        .collect()
}

impl Chain {
    /// Lists the chain for `spec`.
    pub fn build(spec: &ChainSpec) -> Self {
        let mut rng = keel_engine::sim::SimRng::stream(spec.seed, 0xC4A1);
        let mut expiries = Vec::new();
        let mut futures = Vec::new();
        let mut next_id = 210_000u32;
        for (day, period) in expiry_days(spec.now_ms) {
            let ms = day as u64 * DAY_MS + EXPIRY_HOUR_MS;
            let code = date_code(day);
            let fut_name = format!("BTC-{code}");
            let (future, underlying_index) = if period == Period::Day {
                (None, format!("SYN.{fut_name}"))
            } else {
                futures.push(ListedFuture {
                    name: fut_name.clone(),
                    expiry: expiries.len(),
                    instrument_id: next_id,
                });
                next_id += 1;
                (Some(futures.len() - 1), fut_name)
            };
            expiries.push(Expiry {
                ms,
                code,
                period,
                future,
                underlying_index,
            });
        }
        // Strikes: spread options / 2 strikes over the expiries, the first ones getting any
        // remainder; a linear grid of nice steps over ±2.5 s.d. around the forward.
        let strikes_total = spec.options / 2;
        let n_exp = expiries.len().max(1);
        let mut options = Vec::with_capacity(strikes_total * 2);
        for (e, exp) in expiries.iter().enumerate() {
            let m = strikes_total / n_exp + usize::from(e < strikes_total % n_exp);
            if m == 0 {
                continue;
            }
            let t = (exp.ms.saturating_sub(spec.now_ms)) as f64 / YEAR_MS;
            let f = spec.spot * (spec.carry * t).exp();
            let sd = (spec.vol * t.sqrt()).max(0.01);
            let (lo, hi) = (f * (-2.5 * sd).exp(), f * (2.5 * sd).exp());
            let step = nice_step_below((hi - lo) / m.max(2) as f64);
            let centre = (f / step).round() * step;
            let mut first = centre - (m / 2) as f64 * step;
            if first < step {
                first = step;
            }
            for i in 0..m {
                let strike = first + i as f64 * step;
                // Round away binary noise of fractional steps (e.g. 0.025 × i).
                let strike = (strike * 1e8).round() / 1e8;
                for right in [OptionRight::Call, OptionRight::Put] {
                    let cp = if right == OptionRight::Call { "C" } else { "P" };
                    options.push(ListedOption {
                        name: format!("BTC-{}-{}-{cp}", exp.code, strike_code(strike)),
                        expiry: e,
                        strike,
                        right,
                        instrument_id: next_id,
                        open_interest: (rng.uniform() * 500.0 * 10.0).round() / 10.0,
                    });
                    next_id += 1;
                }
            }
        }
        let mut by_name = HashMap::with_capacity(options.len() + futures.len() + 1);
        by_name.insert(PERPETUAL.to_string(), InstrumentRef::Perpetual);
        for (i, f) in futures.iter().enumerate() {
            by_name.insert(f.name.clone(), InstrumentRef::Future(i));
        }
        for (i, o) in options.iter().enumerate() {
            by_name.insert(o.name.clone(), InstrumentRef::Option(i));
        }
        let mut chain = Self {
            expiries,
            futures,
            options,
            created_ms: spec.now_ms.saturating_sub(30 * DAY_MS),
            by_name,
            json_options: String::new(),
            json_futures: String::new(),
            json_all: String::new(),
        };
        chain.render_instruments();
        chain
    }

    /// What a Deribit instrument name refers to.
    pub fn lookup(&self, name: &str) -> Option<InstrumentRef> {
        self.by_name.get(name).copied()
    }

    /// The Deribit name of an instrument.
    pub fn name(&self, r: InstrumentRef) -> &str {
        match r {
            InstrumentRef::Perpetual => PERPETUAL,
            InstrumentRef::Future(i) => self.futures.get(i).map_or("", |f| f.name.as_str()),
            InstrumentRef::Option(i) => self.options.get(i).map_or("", |o| o.name.as_str()),
        }
    }

    /// The `public/get_instruments` result array (JSON text) for `kind` (`None` = every
    /// kind), or `None` for a kind the venue does not list here (combos, spot).
    pub fn instruments_json(&self, kind: Option<&str>) -> Option<&str> {
        match kind {
            None => Some(&self.json_all),
            Some("option") => Some(&self.json_options),
            Some("future") => Some(&self.json_futures),
            _ => None,
        }
    }

    /// Every listed instrument in the feeds crate's form (venue Deribit), perpetual first,
    /// then futures, then options: what a client learns from `public/get_instruments`.
    pub fn feeds_instruments(&self) -> Vec<Instrument> {
        let mut v = Vec::with_capacity(1 + self.futures.len() + self.options.len());
        let base = |name: &str, kind, expiry_ms, tick_size, min_size, contract_size| Instrument {
            venue: Venue::Deribit,
            name: name.to_string(),
            kind,
            base_currency: "BTC".into(),
            quote_currency: "USD".into(),
            settlement_currency: "BTC".into(),
            strike: f64::NAN,
            expiry_ms,
            right: None,
            contract_size,
            inverse: true,
            tick_size,
            min_size,
        };
        v.push(base(
            PERPETUAL,
            InstrumentKind::Perpetual,
            0,
            0.5,
            10.0,
            10.0,
        ));
        for f in &self.futures {
            let ms = self.expiries.get(f.expiry).map_or(0, |e| e.ms);
            v.push(base(&f.name, InstrumentKind::Future, ms, 2.5, 10.0, 10.0));
        }
        for o in &self.options {
            let ms = self.expiries.get(o.expiry).map_or(0, |e| e.ms);
            let mut i = base(&o.name, InstrumentKind::Option, ms, 0.0001, 0.1, 1.0);
            i.quote_currency = "BTC".into();
            i.strike = o.strike;
            i.right = Some(o.right);
            v.push(i);
        }
        v
    }

    fn render_instruments(&mut self) {
        use serde_json::{Value, json};
        let created = self.created_ms;
        let common = |name: &str, id: u32, kind: &str| {
            json!({
                "price_index": INDEX_NAME,
                "kind": kind,
                "instrument_name": name,
                "instrument_id": id,
                "instrument_type": "reversed",
                "creation_timestamp": created,
                "is_active": true,
                "settlement_currency": "BTC",
                "base_currency": "BTC",
                "counter_currency": "USD",
                "quote_currency": if kind == "option" { "BTC" } else { "USD" },
                "maker_commission": if kind == "option" { 0.0003 } else { 0.0 },
                "taker_commission": if kind == "option" { 0.0003 } else { 0.0005 },
                "block_trade_commission": 0.00025,
                "max_liquidation_commission": 0.0075,
            })
        };
        let mut futures: Vec<Value> = Vec::with_capacity(self.futures.len() + 1);
        let mut perp = common(PERPETUAL, 124_972, "future");
        if let Some(o) = perp.as_object_mut() {
            o.insert("future_type".into(), json!("reversed"));
            o.insert("settlement_period".into(), json!("perpetual"));
            o.insert("expiration_timestamp".into(), json!(PERPETUAL_EXPIRY_MS));
            o.insert("tick_size".into(), json!(0.5));
            o.insert("contract_size".into(), json!(10.0));
            o.insert("min_trade_amount".into(), json!(10.0));
            o.insert("max_leverage".into(), json!(50));
        }
        futures.push(perp);
        for f in &self.futures {
            let Some(exp) = self.expiries.get(f.expiry) else {
                continue;
            };
            let mut v = common(&f.name, f.instrument_id, "future");
            if let Some(o) = v.as_object_mut() {
                o.insert("future_type".into(), json!("reversed"));
                o.insert("settlement_period".into(), json!(exp.period.as_str()));
                o.insert("expiration_timestamp".into(), json!(exp.ms));
                o.insert("tick_size".into(), json!(2.5));
                o.insert("contract_size".into(), json!(10.0));
                o.insert("min_trade_amount".into(), json!(10.0));
                o.insert("max_leverage".into(), json!(50));
            }
            futures.push(v);
        }
        let mut options: Vec<Value> = Vec::with_capacity(self.options.len());
        for opt in &self.options {
            let Some(exp) = self.expiries.get(opt.expiry) else {
                continue;
            };
            let mut v = common(&opt.name, opt.instrument_id, "option");
            if let Some(o) = v.as_object_mut() {
                let call = opt.right == OptionRight::Call;
                o.insert(
                    "option_type".into(),
                    json!(if call { "call" } else { "put" }),
                );
                o.insert("strike".into(), json!(opt.strike));
                o.insert("settlement_period".into(), json!(exp.period.as_str()));
                o.insert("expiration_timestamp".into(), json!(exp.ms));
                o.insert("tick_size".into(), json!(0.0001));
                o.insert(
                    "tick_size_steps".into(),
                    json!([{"tick_size": 0.0005, "above_price": 0.005}]),
                );
                o.insert("contract_size".into(), json!(1.0));
                o.insert("min_trade_amount".into(), json!(0.1));
                o.insert("max_leverage".into(), json!(1));
                o.insert("block_trade_min_trade_amount".into(), json!(25));
                o.insert("block_trade_tick_size".into(), json!(0.0001));
            }
            options.push(v);
        }
        let render = |v: &[Value]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        self.json_options = render(&options);
        self.json_futures = render(&futures);
        let mut all = futures;
        all.extend(options);
        self.json_all = render(&all);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2026-06-26 08:00 UTC = 1782460800000 (deribit/ticker_option.json's expiry).
        let d = days_from_civil(2026, 6, 26);
        assert_eq!(d as u64 * DAY_MS + EXPIRY_HOUR_MS, 1_782_460_800_000);
        assert_eq!(weekday(d), 5);
        assert_eq!(date_code(d), "26JUN26");
        assert_eq!(date_code(days_from_civil(2021, 6, 2)), "2JUN21");
        for z in (-800_000..800_000).step_by(997) {
            let (y, m, dd) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, dd), z);
        }
    }

    #[test]
    fn strike_codes_follow_deribit() {
        assert_eq!(strike_code(100_000.0), "100000");
        assert_eq!(strike_code(0.625), "0d625");
        assert_eq!(strike_code(2.5), "2d5");
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step_below(470.0), 250.0);
        assert_eq!(nice_step_below(10_600.0), 10_000.0);
        assert_eq!(nice_step_below(2_600.0), 2_500.0);
        assert_eq!(nice_step_below(0.07), 0.05);
    }

    fn spec(options: usize) -> ChainSpec {
        ChainSpec {
            options,
            spot: 100_000.0,
            vol: 0.6,
            carry: 0.05,
            // 2026-03-10 12:34 UTC, a Tuesday.
            now_ms: days_from_civil(2026, 3, 10) as u64 * DAY_MS + 45_240_000,
            seed: 1,
        }
    }

    #[test]
    fn chain_has_the_requested_options_across_expiries() {
        let c = Chain::build(&spec(1000));
        assert_eq!(c.options.len(), 1000);
        assert!(c.expiries.len() >= 8, "{} expiries", c.expiries.len());
        let mut names: Vec<&str> = c.options.iter().map(|o| o.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 1000, "names are unique");
        for w in c.expiries.windows(2) {
            assert!(w[0].ms < w[1].ms);
        }
        for e in &c.expiries {
            assert_eq!(e.ms % DAY_MS, EXPIRY_HOUR_MS);
            assert!(e.ms > spec(0).now_ms);
        }
        // Dailies on 11, 12, 13 March; Friday 13 March is a weekly; 27 March the monthly and
        // quarterly.
        assert_eq!(c.expiries[0].code, "11MAR26");
        assert_eq!(c.expiries[0].period, Period::Day);
        assert!(
            c.expiries
                .iter()
                .any(|e| e.code == "27MAR26" && e.period == Period::Month)
        );
        assert!(c.expiries.iter().any(|e| e.code == "26JUN26"));
        for o in &c.options {
            assert!(o.strike > 0.0);
            let e = &c.expiries[o.expiry];
            let cp = if o.right == OptionRight::Call {
                "C"
            } else {
                "P"
            };
            assert_eq!(
                o.name,
                format!("BTC-{}-{}-{cp}", e.code, strike_code(o.strike))
            );
            assert_eq!(
                c.lookup(&o.name),
                Some(InstrumentRef::Option(
                    c.options.iter().position(|x| x.name == o.name).unwrap()
                ))
            );
        }
        assert_eq!(c.lookup(PERPETUAL), Some(InstrumentRef::Perpetual));
        assert_eq!(c.lookup("BTC-1JAN99-1-C"), None);
        // Strikes bracket the spot in the nearest expiry.
        let first: Vec<f64> = c
            .options
            .iter()
            .filter(|o| o.expiry == 0)
            .map(|o| o.strike)
            .collect();
        assert!(first.iter().any(|&k| k < 100_000.0) && first.iter().any(|&k| k > 100_000.0));
    }

    #[test]
    fn instruments_json_lists_everything() {
        let c = Chain::build(&spec(200));
        let opts: Vec<serde_json::Value> =
            serde_json::from_str(c.instruments_json(Some("option")).unwrap()).unwrap();
        assert_eq!(opts.len(), 200);
        assert_eq!(opts[0]["kind"], "option");
        assert_eq!(opts[0]["instrument_type"], "reversed");
        let futs: Vec<serde_json::Value> =
            serde_json::from_str(c.instruments_json(Some("future")).unwrap()).unwrap();
        assert_eq!(futs.len(), c.futures.len() + 1);
        let all: Vec<serde_json::Value> =
            serde_json::from_str(c.instruments_json(None).unwrap()).unwrap();
        assert_eq!(all.len(), opts.len() + futs.len());
        assert!(c.instruments_json(Some("option_combo")).is_none());
        assert_eq!(c.feeds_instruments().len(), all.len());
    }

    #[test]
    fn small_and_odd_option_counts() {
        assert_eq!(Chain::build(&spec(0)).options.len(), 0);
        assert_eq!(Chain::build(&spec(7)).options.len(), 6);
    }
}
