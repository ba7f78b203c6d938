//! Start-up reconciliation with the venue: before the first hedge, the account's positions and
//! open orders are read from Deribit's REST API (`private/get_positions`,
//! `private/get_open_orders_by_currency`), each request signed with `deri-hmac-sha256` so the
//! secret never leaves the process, and compared with the positions file.
//!
//! The venue is the authority for what the account holds: its positions replace the file's,
//! and every difference is reported. Start-up code: allocates and blocks freely, never runs on
//! the hot path; every error names the URL and what was wrong with the reply.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use keel_engine::exec::binance::BinanceCredentials;
use keel_engine::exec::deribit::{Credentials, http_authorization};
use keel_feeds::clock;
use keel_feeds::net::http_request;
use serde_json::Value;

/// An order resting at the venue when the run starts.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenOrder {
    /// Instrument name.
    pub instrument: String,
    /// The order's label (empty if none).
    pub label: String,
    /// `buy` or `sell`.
    pub direction: String,
    /// Amount still open, venue unit.
    pub open_amount: f64,
}

/// What the venue says the account holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VenueAccount {
    /// Non-zero positions (instrument, signed size in the venue's unit), name order.
    pub positions: Vec<(String, f64)>,
    /// Orders resting now.
    pub open_orders: Vec<OpenOrder>,
}

/// A position on which the file and the venue disagree.
#[derive(Clone, Debug, PartialEq)]
pub struct Difference {
    /// Instrument name.
    pub instrument: String,
    /// Quantity in the positions file (0 when absent).
    pub file: f64,
    /// Quantity at the venue (0 when absent).
    pub venue: f64,
}

/// The REST base (`http[s]://host[:port]`) of a Deribit WebSocket URL.
pub fn rest_base(ws_url: &str) -> Result<String> {
    let (scheme, rest) = ws_url
        .split_once("://")
        .with_context(|| format!("--deribit-url {ws_url}: no scheme"))?;
    let scheme = match scheme {
        "wss" | "https" => "https",
        "ws" | "http" => "http",
        other => bail!("--deribit-url {ws_url}: scheme {other:?} is not ws, wss, http or https"),
    };
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        bail!("--deribit-url {ws_url}: no host");
    }
    Ok(format!("{scheme}://{host}"))
}

/// Reads positions and open orders of `currency` from the venue behind `ws_url`.
pub fn fetch(
    ws_url: &str,
    credentials: &Credentials,
    currency: &str,
    ca_file: Option<PathBuf>,
    timeout: Duration,
) -> Result<VenueAccount> {
    let base = rest_base(ws_url)?;
    let get = |method: &str| -> Result<Value> {
        let uri = format!("/api/v2/private/{method}?currency={currency}");
        let url = format!("{base}{uri}");
        let nonce = format!("{:016x}", keel_feeds::net::rand::os_seed());
        let auth = http_authorization(
            credentials,
            clock::now_ns() / 1_000_000,
            &nonce,
            "GET",
            &uri,
            "",
        );
        let (status, body) = http_request(
            &url,
            "GET",
            None,
            &[("Authorization", &auth)],
            ca_file.as_deref(),
            timeout,
        )
        .with_context(|| format!("reconciling with the venue: GET {url}"))?;
        let v: Value = serde_json::from_slice(&body).with_context(|| {
            format!(
                "reconciling with the venue: GET {url}: HTTP {status}, the body is not JSON: {:?}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )
        })?;
        if let Some(e) = v.get("error") {
            bail!("reconciling with the venue: GET {url}: HTTP {status}, error {e}");
        }
        if status != 200 {
            bail!("reconciling with the venue: GET {url}: HTTP {status}");
        }
        v.get("result")
            .cloned()
            .with_context(|| format!("reconciling with the venue: GET {url}: no \"result\""))
    };
    let positions = get("get_positions")?;
    let orders = get("get_open_orders_by_currency")?;
    parse_account(&positions, &orders).with_context(|| format!("reconciling with {base}"))
}

/// Binance USDⓈ-M: the signed position of `symbol` (coin), from `GET /fapi/v2/positionRisk`
/// at `rest_base` (`https://fapi.binance.com`, or the embedded venue's `http://ADDR`), signed
/// with the account's HMAC secret (`timestamp` and `recvWindow` in the query; the key in the
/// `X-MBX-APIKEY` header).
pub fn fetch_binance_position(
    rest_base: &str,
    credentials: &BinanceCredentials,
    symbol: &str,
    ca_file: Option<PathBuf>,
    timeout: Duration,
) -> Result<f64> {
    let query = format!(
        "symbol={symbol}&timestamp={}&recvWindow=5000",
        clock::now_ns() / 1_000_000
    );
    let sig = credentials.signer().sign(query.as_bytes());
    let sig = std::str::from_utf8(&sig).unwrap_or_default();
    let url = format!("{rest_base}/fapi/v2/positionRisk?{query}&signature={sig}");
    let shown = format!("{rest_base}/fapi/v2/positionRisk?symbol={symbol}");
    let (status, body) = http_request(
        &url,
        "GET",
        None,
        &[("X-MBX-APIKEY", credentials.api_key())],
        ca_file.as_deref(),
        timeout,
    )
    .with_context(|| format!("reconciling with Binance: GET {shown}"))?;
    let v: Value = serde_json::from_slice(&body).with_context(|| {
        format!("reconciling with Binance: GET {shown}: HTTP {status}, the body is not JSON")
    })?;
    if status != 200 {
        bail!("reconciling with Binance: GET {shown}: HTTP {status}: {v}");
    }
    let Some(list) = v.as_array() else {
        bail!("reconciling with Binance: GET {shown}: expected an array, got {v}");
    };
    let mut total = 0.0;
    for p in list {
        if p.get("symbol").and_then(Value::as_str) != Some(symbol) {
            continue;
        }
        let amt = p
            .get("positionAmt")
            .and_then(Value::as_str)
            .and_then(|a| a.parse::<f64>().ok())
            .filter(|a| a.is_finite())
            .with_context(|| {
                format!("reconciling with Binance: {symbol}: positionAmt is not a number: {p}")
            })?;
        total += amt;
    }
    Ok(total)
}

/// The account from the two `result` values (arrays of Deribit position and order objects).
pub fn parse_account(positions: &Value, orders: &Value) -> Result<VenueAccount> {
    let arr = |v: &Value, what: &str| -> Result<Vec<Value>> {
        v.as_array()
            .cloned()
            .with_context(|| format!("{what}: expected an array, got {v}"))
    };
    let mut acct = VenueAccount::default();
    for p in arr(positions, "private/get_positions")? {
        let name = p
            .get("instrument_name")
            .and_then(Value::as_str)
            .with_context(|| {
                format!("private/get_positions: a position without instrument_name: {p}")
            })?;
        let size = p
            .get("size")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite())
            .with_context(|| format!("private/get_positions: {name}: size is not a number"))?;
        if size != 0.0 {
            acct.positions.push((name.to_string(), size));
        }
    }
    acct.positions.sort_by(|a, b| a.0.cmp(&b.0));
    for o in arr(orders, "private/get_open_orders_by_currency")? {
        let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let n = |k: &str| o.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        acct.open_orders.push(OpenOrder {
            instrument: s("instrument_name"),
            label: s("label"),
            direction: s("direction"),
            open_amount: n("amount") - n("filled_amount"),
        });
    }
    Ok(acct)
}

/// Every instrument where the file and the venue disagree (by more than 1e-9), name order.
pub fn differences(file: &[(String, f64)], venue: &[(String, f64)]) -> Vec<Difference> {
    let mut names: Vec<&String> = file.iter().chain(venue).map(|(n, _)| n).collect();
    names.sort();
    names.dedup();
    let q = |list: &[(String, f64)], n: &str| {
        list.iter()
            .filter(|(m, _)| m == n)
            .map(|(_, q)| *q)
            .sum::<f64>()
    };
    names
        .into_iter()
        .filter_map(|n| {
            let (f, v) = (q(file, n), q(venue, n));
            ((f - v).abs() > 1e-9).then(|| Difference {
                instrument: n.clone(),
                file: f,
                venue: v,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rest_base_follows_the_websocket_url() {
        assert_eq!(
            rest_base("wss://www.deribit.com/ws/api/v2").unwrap(),
            "https://www.deribit.com"
        );
        assert_eq!(
            rest_base("ws://127.0.0.1:9000/ws/api/v2").unwrap(),
            "http://127.0.0.1:9000"
        );
        assert!(rest_base("ftp://x").is_err());
        assert!(rest_base("no-scheme").is_err());
    }

    #[test]
    fn account_parses_and_differences_are_named() {
        let acct = parse_account(
            &json!([{"instrument_name": "B", "size": -2.0}, {"instrument_name": "A", "size": 10.0},
                    {"instrument_name": "Z", "size": 0.0}]),
            &json!([{"instrument_name": "A", "label": "k1-2", "direction": "buy",
                     "amount": 30.0, "filled_amount": 10.0}]),
        )
        .unwrap();
        assert_eq!(acct.positions, vec![("A".into(), 10.0), ("B".into(), -2.0)]);
        assert_eq!(acct.open_orders[0].open_amount, 20.0);
        let d = differences(&[("A".into(), 10.0), ("C".into(), 1.0)], &acct.positions);
        assert_eq!(
            d,
            vec![
                Difference {
                    instrument: "B".into(),
                    file: 0.0,
                    venue: -2.0
                },
                Difference {
                    instrument: "C".into(),
                    file: 1.0,
                    venue: 0.0
                }
            ]
        );
        let bad = parse_account(&json!([{"size": 1.0}]), &json!([]));
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("without instrument_name")
        );
        assert!(parse_account(&json!({}), &json!([])).is_err());
    }
}
