//! Hyperliquid actions as the exchange hashes them: `order` and `noop`, with their key order
//! significant (the msgpack of the action is what is signed), rendered both as msgpack
//! (rmp-serde, maps with named keys) and as the JSON of the `/exchange` body, from the same
//! structs so the two can never disagree.
//!
//! Off the hot path: actions are encoded and signed ahead of time ([`super::presign`]).

use serde::{Deserialize, Serialize};

use super::HyperliquidError;

/// Time in force of a limit order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tif {
    /// Good til cancelled.
    Gtc,
    /// Immediate or cancel (a hedge: fill now or not at all).
    Ioc,
    /// Add liquidity only.
    Alo,
}

/// `{"tif": ..}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitWire {
    /// Time in force.
    pub tif: Tif,
}

/// `{"limit": {"tif": ..}}` (the only order type Keel sends).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderTypeWire {
    /// The limit order's settings.
    pub limit: LimitWire,
}

/// One order, keys in Hyperliquid's order: asset, is buy, price, size, reduce only, type,
/// optional client order id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderWire {
    /// Asset index (perpetuals: index in the universe; BTC = 0).
    pub a: u32,
    /// Buy.
    pub b: bool,
    /// Limit price, decimal text without trailing zeros.
    pub p: String,
    /// Size, decimal text without trailing zeros.
    pub s: String,
    /// Reduce only.
    pub r: bool,
    /// Order type.
    pub t: OrderTypeWire,
    /// Client order id, `0x` + 32 hex digits.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub c: Option<String>,
}

/// `{"type":"order","orders":[..],"grouping":"na"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderAction {
    /// Always `"order"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The orders.
    pub orders: Vec<OrderWire>,
    /// `"na"` (no TP/SL grouping).
    pub grouping: String,
}

/// `{"type":"noop"}`: spends a nonce and does nothing (voids a pre-signed action at that nonce).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoopAction {
    /// Always `"noop"`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// An action Keel signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Place orders.
    Order(OrderAction),
    /// Spend the nonce.
    Noop,
}

impl Action {
    /// One limit order on `asset`.
    pub fn order(order: OrderWire) -> Self {
        Action::Order(OrderAction {
            kind: "order".into(),
            orders: vec![order],
            grouping: "na".into(),
        })
    }

    /// The msgpack the signature covers.
    pub fn msgpack(&self) -> Result<Vec<u8>, HyperliquidError> {
        let r = match self {
            Action::Order(o) => rmp_serde::to_vec_named(o),
            Action::Noop => rmp_serde::to_vec_named(&noop()),
        };
        r.map_err(|e| HyperliquidError::Encode(e.to_string()))
    }

    /// The JSON of the action in the `/exchange` body (same key order as the msgpack).
    pub fn json(&self) -> Result<Vec<u8>, HyperliquidError> {
        let r = match self {
            Action::Order(o) => serde_json::to_vec(o),
            Action::Noop => serde_json::to_vec(&noop()),
        };
        r.map_err(|e| HyperliquidError::Encode(e.to_string()))
    }

    /// Parses the `action` of an `/exchange` body (the venue side): `order` or `noop`, unknown
    /// keys refused.
    pub fn from_json(v: &serde_json::Value) -> Result<Self, HyperliquidError> {
        match v.get("type").and_then(serde_json::Value::as_str) {
            Some("order") => serde_json::from_value::<OrderAction>(v.clone())
                .map(Action::Order)
                .map_err(|e| HyperliquidError::Action(e.to_string())),
            Some("noop") => serde_json::from_value::<NoopAction>(v.clone())
                .map(|_| Action::Noop)
                .map_err(|e| HyperliquidError::Action(e.to_string())),
            Some(other) => Err(HyperliquidError::Action(format!(
                "unsupported action type {other:?} (order and noop are)"
            ))),
            None => Err(HyperliquidError::Action(
                "expected an object with a string \"type\"".into(),
            )),
        }
    }
}

fn noop() -> NoopAction {
    NoopAction {
        kind: "noop".into(),
    }
}

/// A price or size as Hyperliquid's SDK writes it (`float_to_wire`): rounded to 8 decimals,
/// trailing zeros and a trailing point removed ("1670.1", "100", "0.0147").
pub fn decimal_wire(x: f64) -> Result<String, HyperliquidError> {
    if !(x.is_finite() && x > 0.0 && x < 1e15) {
        return Err(HyperliquidError::Number(x));
    }
    let s = format!("{x:.8}");
    // The SDK refuses values that 8 decimals would round.
    let back: f64 = s.parse().map_err(|_| HyperliquidError::Number(x))?;
    if (back - x).abs() >= 1e-12 * x.max(1.0) {
        return Err(HyperliquidError::Number(x));
    }
    let t = s.trim_end_matches('0').trim_end_matches('.');
    Ok(t.to_string())
}
