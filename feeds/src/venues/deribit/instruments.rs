//! Deribit's instrument list at start-up: the `public/get_instruments` (or
//! `public/get_instrument`) result into [`Instrument`]s, and the option-name grammar
//! (`BTC-27DEC24-100000-C`, linear `XRP_USDC-30JUN23-0d625-C`) for when the list is not
//! available.
//!
//! Start-up code: allocates freely (one `String` per name and currency). Must never panic on
//! any input.

use super::super::json::Scanner;
use super::super::{ParseError, Problem};
use crate::event::Venue;
use crate::instrument::{Instrument, InstrumentKind, OptionRight};
use thiserror::Error;

/// The instruments in a `public/get_instruments` response (`result` an array) or a
/// `public/get_instrument` response (`result` one object). Combos and kinds Keel does not
/// trade are left out. An error response is [`Problem::VenueError`].
pub fn parse_instruments(payload: &[u8]) -> Result<Vec<Instrument>, ParseError> {
    run(payload).map_err(|p| ParseError::new(Venue::Deribit, p, payload))
}

fn run(payload: &[u8]) -> Result<Vec<Instrument>, Problem> {
    let mut sc = Scanner::new(payload);
    let mut obj = sc.object()?;
    let mut out = None;
    let mut error = None;
    while let Some(key) = obj.next(&mut sc)? {
        match key {
            b"result" => {
                let mut list = Vec::new();
                if sc.peek()? == b'[' {
                    let mut arr = sc.array()?;
                    while arr.next(&mut sc)? {
                        if let Some(inst) = instrument(&mut sc)? {
                            list.push(inst);
                        }
                    }
                } else if let Some(inst) = instrument(&mut sc)? {
                    list.push(inst);
                }
                out = Some(list);
            }
            b"error" => {
                let mut e = sc.object()?;
                let mut code = 0;
                while let Some(k) = e.next(&mut sc)? {
                    match k {
                        b"code" => code = sc.i64()?,
                        _ => sc.skip()?,
                    }
                }
                error = Some(code);
            }
            _ => sc.skip()?,
        }
    }
    sc.end()?;
    if let Some(code) = error {
        return Err(Problem::VenueError { code });
    }
    out.ok_or(Problem::Missing("result"))
}

fn text(sc: &mut Scanner<'_>, field: &'static str) -> Result<String, Problem> {
    let at = sc.value_offset();
    let raw = sc.str()?;
    match core::str::from_utf8(raw) {
        Ok(s) if !s.contains('\\') => Ok(s.to_owned()),
        _ => Err(Problem::BadValue { field, at }),
    }
}

/// One instrument object; `None` for kinds Keel does not trade (combos).
fn instrument(sc: &mut Scanner<'_>) -> Result<Option<Instrument>, Problem> {
    let nan = f64::NAN;
    let mut name = None;
    let mut kind = None;
    let mut perpetual = false;
    let mut option_type = None;
    let mut strike = nan;
    let mut expiry = 0;
    let mut inverse = false;
    let (mut base, mut quote, mut settle) = (None, None, None);
    let (mut contract_size, mut tick_size, mut min_size) = (nan, nan, nan);
    let mut obj = sc.object()?;
    while let Some(key) = obj.next(sc)? {
        match key {
            b"instrument_name" => name = Some(text(sc, "instrument_name")?),
            b"kind" => kind = Some(text(sc, "kind")?),
            b"settlement_period" => {
                perpetual = sc.str_or_null()? == Some(b"perpetual");
            }
            b"option_type" => option_type = sc.str_or_null()?.map(<[u8]>::to_vec),
            b"strike" => strike = sc.f64()?,
            b"expiration_timestamp" => expiry = sc.u64_or_null()?.unwrap_or(0),
            b"instrument_type" => inverse = sc.str_or_null()? == Some(b"reversed"),
            b"base_currency" => base = Some(text(sc, "base_currency")?),
            b"quote_currency" => quote = Some(text(sc, "quote_currency")?),
            b"settlement_currency" => settle = Some(text(sc, "settlement_currency")?),
            b"contract_size" => contract_size = sc.f64()?,
            b"tick_size" => tick_size = sc.f64()?,
            b"min_trade_amount" => min_size = sc.f64()?,
            _ => sc.skip()?,
        }
    }
    let name = name.ok_or(Problem::Missing("instrument_name"))?;
    let kind = match kind.ok_or(Problem::Missing("kind"))?.as_str() {
        "option" => InstrumentKind::Option,
        "future" if perpetual => InstrumentKind::Perpetual,
        "future" => InstrumentKind::Future,
        "spot" => InstrumentKind::Spot,
        _ => return Ok(None),
    };
    let right = match (kind, option_type.as_deref()) {
        (InstrumentKind::Option, Some(b"call")) => Some(OptionRight::Call),
        (InstrumentKind::Option, Some(b"put")) => Some(OptionRight::Put),
        (InstrumentKind::Option, _) => return Err(Problem::Missing("option_type")),
        _ => None,
    };
    let base = base.ok_or(Problem::Missing("base_currency"))?;
    let quote = quote.ok_or(Problem::Missing("quote_currency"))?;
    let settlement_currency = settle.unwrap_or_else(|| quote.clone());
    Ok(Some(Instrument {
        venue: Venue::Deribit,
        name,
        kind,
        base_currency: base,
        quote_currency: quote,
        settlement_currency,
        strike: if kind == InstrumentKind::Option {
            strike
        } else {
            nan
        },
        // Perpetuals and spot carry a far-future expiration_timestamp: none for Keel.
        expiry_ms: if matches!(kind, InstrumentKind::Option | InstrumentKind::Future) {
            expiry
        } else {
            0
        },
        right,
        contract_size,
        inverse,
        tick_size,
        min_size,
    }))
}

/// A Deribit option name, parsed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptionName<'a> {
    /// Underlying coin (`BTC`, `XRP`).
    pub base: &'a str,
    /// Quote and settlement currency of a linear option (`USDC` in `XRP_USDC-...`); `None` for
    /// an inverse option (premium in `base`).
    pub linear_quote: Option<&'a str>,
    /// Expiry: 08:00 UTC on the named date, ms since the Unix epoch.
    pub expiry_ms: u64,
    /// Strike (`0d625` is 0.625).
    pub strike: f64,
    /// Call or put.
    pub right: OptionRight,
}

/// Why an option name did not parse (start-up only).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("`{name}` is not a Deribit option name: {reason}")]
pub struct NameError {
    /// The name given.
    pub name: String,
    /// What was wrong.
    pub reason: &'static str,
}

const MONTHS: [&[u8; 3]; 12] = [
    b"JAN", b"FEB", b"MAR", b"APR", b"MAY", b"JUN", b"JUL", b"AUG", b"SEP", b"OCT", b"NOV", b"DEC",
];

/// Parses `BASE[_QUOTE]-DMMMYY-STRIKE-C|P` (day without zero padding, `d` as the decimal
/// point in the strike).
pub fn parse_option_name(name: &str) -> Result<OptionName<'_>, NameError> {
    let err = |reason| NameError {
        name: name.to_owned(),
        reason,
    };
    let mut parts = name.split('-');
    let (Some(pair), Some(date), Some(strike), Some(right), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(err("expected four parts separated by '-'"));
    };
    let (base, linear_quote) = match pair.split_once('_') {
        Some((b, q)) => (b, Some(q)),
        None => (pair, None),
    };
    let alnum = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    if !alnum(base) || !linear_quote.is_none_or(alnum) {
        return Err(err("bad currency"));
    }
    let right = match right {
        "C" => OptionRight::Call,
        "P" => OptionRight::Put,
        _ => return Err(err("right must be C or P")),
    };
    let expiry_ms = expiry(date.as_bytes()).ok_or_else(|| err("bad expiry date"))?;
    let strike = strike_value(strike).ok_or_else(|| err("bad strike"))?;
    Ok(OptionName {
        base,
        linear_quote,
        expiry_ms,
        strike,
        right,
    })
}

/// `27DEC24` → ms of 2024-12-27 08:00 UTC.
fn expiry(date: &[u8]) -> Option<u64> {
    let (day, rest) = match date {
        [d1, d2, rest @ ..] if d1.is_ascii_digit() && d2.is_ascii_digit() => {
            (u32::from(d1 - b'0') * 10 + u32::from(d2 - b'0'), rest)
        }
        [d1, rest @ ..] if d1.is_ascii_digit() => (u32::from(d1 - b'0'), rest),
        _ => return None,
    };
    let [m1, m2, m3, y1, y2] = rest else {
        return None;
    };
    let month = MONTHS.iter().position(|m| **m == [*m1, *m2, *m3])? as u32 + 1;
    if !y1.is_ascii_digit() || !y2.is_ascii_digit() {
        return None;
    }
    let year = 2000 + i64::from((y1 - b'0') * 10 + (y2 - b'0'));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day == 0 || day > days_in_month {
        return None;
    }
    let days = days_from_civil(year, month, day);
    u64::try_from(days * 86_400_000 + 8 * 3_600_000).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `100000` → 100000, `0d625` → 0.625.
fn strike_value(s: &str) -> Option<f64> {
    let (int, frac) = match s.split_once('d') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !frac.is_none_or(digits) {
        return None;
    }
    let v: f64 = match frac {
        Some(f) => format!("{int}.{f}").parse().ok()?,
        None => int.parse().ok()?,
    };
    (v.is_finite() && v > 0.0).then_some(v)
}

impl OptionName<'_> {
    /// An [`Instrument`] for `name` from its name alone: inverse (premium in the base coin)
    /// unless linear; contract size, tick size and minimum size unknown (NaN).
    pub fn to_instrument(&self, name: &str) -> Instrument {
        let quote = self.linear_quote.unwrap_or(self.base).to_owned();
        Instrument {
            venue: Venue::Deribit,
            name: name.to_owned(),
            kind: InstrumentKind::Option,
            base_currency: self.base.to_owned(),
            quote_currency: quote.clone(),
            settlement_currency: quote,
            strike: self.strike,
            expiry_ms: self.expiry_ms,
            right: Some(self.right),
            contract_size: f64::NAN,
            inverse: self.linear_quote.is_none(),
            tick_size: f64::NAN,
            min_size: f64::NAN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_names() {
        let n = parse_option_name("BTC-27DEC24-100000-C").unwrap();
        assert_eq!(n.base, "BTC");
        assert_eq!(n.linear_quote, None);
        assert_eq!(n.expiry_ms, 1_735_286_400_000);
        assert_eq!(n.strike, 100_000.0);
        assert_eq!(n.right, OptionRight::Call);
        let n = parse_option_name("XRP_USDC-30JUN23-0d625-C").unwrap();
        assert_eq!((n.base, n.linear_quote), ("XRP", Some("USDC")));
        assert_eq!(n.strike, 0.625);
        // 2023-06-30 08:00 UTC.
        assert_eq!(n.expiry_ms, 1_688_112_000_000);
        let n = parse_option_name("BTC-2JUN21-37000-P").unwrap();
        assert_eq!(n.right, OptionRight::Put);
        assert_eq!(n.expiry_ms, 1_622_620_800_000);
        // 2024 is a leap year, 2023 is not.
        assert!(parse_option_name("BTC-29FEB24-1-C").is_ok());
        for bad in [
            "BTC-29FEB23-1-C",
            "BTC-32JAN24-1-C",
            "BTC-0JAN24-1-C",
            "BTC-27Dec24-1-C",
            "BTC-27DEC24-1-X",
            "BTC-27DEC24-1",
            "BTC-27DEC24--C",
            "BTC-27DEC24-1d-C",
            "BTC-27DEC24-0-C",
            "BTC-27DEC24-1-C-1",
            "-27DEC24-1-C",
            "BTC_-27DEC24-1-C",
            "BTC-127DEC24-1-C",
            "",
        ] {
            let e = parse_option_name(bad).expect_err(bad);
            assert_eq!(e.name, bad);
        }
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 6, 26), 20_630);
    }
}
