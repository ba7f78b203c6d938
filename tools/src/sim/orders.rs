//! keel-sim's order desk behind the Deribit endpoint: `private/buy`, `private/sell`,
//! `private/cancel` and `private/cancel_all`, answered in Deribit's response shape, for the
//! execution tile's dry runs and wire-to-wire benches.
//!
//! One desk per venue (shared by every connection: order ids, trade ids and labels are
//! venue-wide), one account, no authentication (a `public/auth` is answered with a fake token by
//! the connection). Matching is deliberately minimal:
//!
//! 1. A market order fills in full at the simulated best ask (buy) or best bid (sell) of its
//!    instrument, whatever the displayed size; with no price on that side (an option without a
//!    bid) it is `cancelled` unfilled, as Deribit cancels a market order that finds no
//!    liquidity.
//! 2. A limit order that is marketable (buy at or above the ask, sell at or below the bid)
//!    fills in full at the ask/bid (taker). Otherwise it rests `open` (`good_til_cancelled`,
//!    `good_til_day`) or is `cancelled` unfilled (`immediate_or_cancel`, `fill_or_kill`).
//!    Resting orders never fill later: there is no book matching.
//! 3. `private/cancel` cancels one resting order by id (`order_not_found` otherwise);
//!    `private/cancel_all` cancels every resting order and answers their count.
//!
//! Validation follows Deribit: amounts in USD multiples of the contract size 10 for the
//! perpetual and futures, in BTC multiples of 0.1 for options; `label` at most 64 characters;
//! `reduce_only` is echoed, not enforced (no positions are kept). Unlike Deribit, a `label`
//! already used by an order on this venue is rejected: the simulator treats labels as
//! idempotency keys so that a racing executor can prove it never sends the same hedge twice.
//! Real Deribit accepts duplicate labels.
//!
//! Error codes: JSON-RPC `-32602 Invalid params` (with `data.param` and `data.reason`, as
//! Deribit sends them) for missing or malformed parameters, a bad `type`, a bad
//! `time_in_force`, an amount that is not a multiple of the contract size, a label that is too
//! long or a limit order without a price; Deribit's `10020 invalid_or_unsupported_instrument`
//! for an unknown instrument, `10004 order_not_found` for a cancel of an unknown or closed
//! order, and `11030 other_reject` (data.reason `duplicate_label`) for a reused label.
//!
//! Owns the desk's state behind one mutex, taken once per order request (requests are not on
//! the streaming path); never panics on a request.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde_json::{Value, json};

use super::chain::{Chain, InstrumentRef};
use super::market::MarketSnapshot;

/// A JSON-RPC error: code, message and data.
pub(crate) type RpcError = (i64, &'static str, Value);

/// Longest `label` Deribit accepts.
pub const MAX_LABEL: usize = 64;
/// Contract size of the perpetual and the futures, USD.
pub const LINEAR_CONTRACT_USD: f64 = 10.0;
/// Amount step of the options, BTC.
pub const OPTION_STEP_BTC: f64 = 0.1;
/// Taker fee of the perpetual and futures, fraction of the notional.
const LINEAR_TAKER_FEE: f64 = 0.0005;
/// Option fee per BTC of underlying, capped at [`OPTION_FEE_CAP`] of the premium.
const OPTION_FEE: f64 = 0.0003;
const OPTION_FEE_CAP: f64 = 0.125;
/// First order id handed out (Deribit's BTC order ids are decimal strings).
const FIRST_ORDER_ID: u64 = 30_000_000_000;
/// First trade id (`BTC-<n>`) and trade sequence number.
const FIRST_TRADE_ID: u64 = 300_000_000;

fn invalid(param: &str, reason: impl Into<String>) -> RpcError {
    (
        -32602,
        "Invalid params",
        json!({"param": param, "reason": reason.into()}),
    )
}

/// Buy or sell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `private/buy`.
    Buy,
    /// `private/sell`.
    Sell,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Buy => "buy",
            Direction::Sell => "sell",
        }
    }
}

/// An order as the desk keeps it.
#[derive(Clone, Debug, PartialEq)]
struct Order {
    order_id: String,
    state: &'static str,
    instrument: String,
    direction: Direction,
    amount: f64,
    filled: f64,
    average_price: f64,
    price: f64,
    label: String,
    order_type: &'static str,
    created_ms: u64,
    updated_ms: u64,
    time_in_force: &'static str,
    reduce_only: bool,
    post_only: bool,
    commission: f64,
    /// The connection that placed it (for cancel-on-disconnect).
    owner: u64,
}

impl Order {
    fn to_json(&self) -> Value {
        json!({
            "order_id": self.order_id,
            "order_state": self.state,
            "instrument_name": self.instrument,
            "direction": self.direction.as_str(),
            "amount": self.amount,
            "filled_amount": self.filled,
            "average_price": self.average_price,
            "price": self.price,
            "label": self.label,
            "order_type": self.order_type,
            "creation_timestamp": self.created_ms,
            "last_update_timestamp": self.updated_ms,
            "time_in_force": self.time_in_force,
            "reduce_only": self.reduce_only,
            "post_only": self.post_only,
            "commission": self.commission,
            "max_show": self.amount,
            "profit_loss": 0.0,
            "replaced": false,
            "is_liquidation": false,
            "risk_reducing": false,
            "mmp": false,
            "web": false,
            "api": true,
        })
    }
}

/// A validated `private/buy` or `private/sell` request.
#[derive(Clone, Debug, PartialEq)]
struct OrderRequest {
    inst: InstrumentRef,
    instrument: String,
    direction: Direction,
    amount: f64,
    /// Limit price; `None` for a market order.
    limit: Option<f64>,
    label: String,
    time_in_force: &'static str,
    reduce_only: bool,
    post_only: bool,
}

/// True if `x` is a positive multiple of `step` (to 1e-9 of a step).
fn is_multiple(x: f64, step: f64) -> bool {
    let n = x / step;
    x > 0.0 && n.is_finite() && (n - n.round()).abs() < 1e-9 && n.round() >= 1.0
}

impl OrderRequest {
    fn parse(params: &Value, direction: Direction, chain: &Chain) -> Result<Self, RpcError> {
        if !params.is_object() {
            return Err(invalid("instrument_name", "params must be an object"));
        }
        let instrument = params
            .get("instrument_name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("instrument_name", "expected a string"))?;
        let Some(inst) = chain.lookup(instrument) else {
            return Err((
                10020,
                "invalid_or_unsupported_instrument",
                json!({"param": "instrument_name",
                       "reason": format!("unknown instrument {instrument:?}")}),
            ));
        };
        let amount = params
            .get("amount")
            .and_then(Value::as_f64)
            .ok_or_else(|| invalid("amount", "expected a number"))?;
        let (step, unit) = match inst {
            InstrumentRef::Option(_) => (OPTION_STEP_BTC, "BTC"),
            _ => (LINEAR_CONTRACT_USD, "USD"),
        };
        if !is_multiple(amount, step) {
            return Err(invalid(
                "amount",
                format!("must be a positive multiple of the contract size {step} {unit}"),
            ));
        }
        let order_type = match params.get("type") {
            None => "limit",
            Some(v) => match v.as_str() {
                Some("market") => "market",
                Some("limit") => "limit",
                _ => return Err(invalid("type", "must be market or limit")),
            },
        };
        let limit = if order_type == "limit" {
            let p = params
                .get("price")
                .and_then(Value::as_f64)
                .ok_or_else(|| invalid("price", "a limit order needs a numeric price"))?;
            if !(p.is_finite() && p > 0.0) {
                return Err(invalid("price", "must be positive"));
            }
            Some(p)
        } else {
            None
        };
        let label = match params.get("label") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) if s.chars().count() <= MAX_LABEL => s.clone(),
            Some(Value::String(_)) => {
                return Err(invalid("label", format!("at most {MAX_LABEL} characters")));
            }
            Some(_) => return Err(invalid("label", "expected a string")),
        };
        let time_in_force = match params.get("time_in_force") {
            None => "good_til_cancelled",
            Some(v) => match v.as_str() {
                Some("good_til_cancelled") => "good_til_cancelled",
                Some("good_til_day") => "good_til_day",
                Some("fill_or_kill") => "fill_or_kill",
                Some("immediate_or_cancel") => "immediate_or_cancel",
                _ => {
                    return Err(invalid(
                        "time_in_force",
                        "must be good_til_cancelled, good_til_day, fill_or_kill or \
                         immediate_or_cancel",
                    ));
                }
            },
        };
        let flag = |name: &'static str| match params.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(invalid(name, "expected a boolean")),
        };
        Ok(Self {
            inst,
            instrument: instrument.to_string(),
            direction,
            amount,
            limit,
            label,
            time_in_force,
            reduce_only: flag("reduce_only")?,
            post_only: flag("post_only")?,
        })
    }
}

/// Prices of one instrument at the time of an order.
#[derive(Clone, Copy, Debug)]
struct Touch {
    bid: f64,
    ask: f64,
    mark: f64,
    /// Option implied vol at the mark, percent (NaN for linear instruments).
    iv: f64,
    /// Option underlying (forward), NaN for linear instruments.
    underlying: f64,
}

fn touch(snap: &MarketSnapshot, inst: InstrumentRef) -> Touch {
    let linear = |q: &super::market::LinearQuote| Touch {
        bid: q.bid,
        ask: q.ask,
        mark: q.mark,
        iv: f64::NAN,
        underlying: f64::NAN,
    };
    match inst {
        InstrumentRef::Perpetual => linear(&snap.perp),
        InstrumentRef::Future(i) => snap.futures.get(i).map_or(
            Touch {
                bid: 0.0,
                ask: 0.0,
                mark: f64::NAN,
                iv: f64::NAN,
                underlying: f64::NAN,
            },
            linear,
        ),
        InstrumentRef::Option(i) => match snap.options.get(i) {
            Some(o) if o.open => Touch {
                bid: o.bid,
                ask: o.ask,
                mark: o.mark,
                iv: o.mark_iv,
                underlying: o.forward,
            },
            _ => Touch {
                bid: 0.0,
                ask: 0.0,
                mark: f64::NAN,
                iv: f64::NAN,
                underlying: f64::NAN,
            },
        },
    }
}

/// When and by whom an order request was made.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placed {
    /// Venue time, ms.
    pub now_ms: u64,
    /// When the request frame was read, ns (echoed as `sim_recv_ns`).
    pub recv_ns: u64,
    /// The connection (owner of resting orders, for cancel-on-disconnect).
    pub owner: u64,
}

/// What one order request did, for the venue's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// An order was accepted (whatever its state).
    pub accepted: bool,
    /// Trades it produced.
    pub fills: u64,
}

/// When the venue read an accepted order's request frame: for wire-to-wire latency
/// (`keel-bench e2e` joins it with the tick that caused the order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderReceipt {
    /// The order's `label` (empty if it had none).
    pub label: String,
    /// The simulator's clock when the request frame was read (`sim_recv_ns`).
    pub recv_ns: u64,
}

/// Receipts kept at most (the first ones; a long-running venue must not grow without bound).
pub const MAX_RECEIPTS: usize = 1 << 20;

#[derive(Debug)]
struct DeskState {
    next_order: u64,
    next_trade: u64,
    labels: HashSet<String>,
    /// The latest state of every labelled order, for `private/get_order_state_by_label`.
    by_label: HashMap<String, Value>,
    /// Resting (`open`) orders.
    resting: Vec<Order>,
    /// Accepted orders' receipt times, in arrival order (at most [`MAX_RECEIPTS`]).
    receipts: Vec<OrderReceipt>,
    /// The account's positions by instrument: size (USD for futures, coin for options; signed)
    /// and average entry price.
    positions: HashMap<String, Position>,
}

/// One position of the account.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Position {
    size: f64,
    average_price: f64,
    option: bool,
}

impl Position {
    /// Adds a trade of `signed` size at `price`: the average moves only while the position grows.
    fn trade(&mut self, signed: f64, price: f64) {
        let new = self.size + signed;
        if self.size == 0.0 || self.size.signum() == signed.signum() {
            let total = self.size.abs() + signed.abs();
            if total > 0.0 {
                self.average_price =
                    (self.average_price * self.size.abs() + price * signed.abs()) / total;
            }
        } else if new != 0.0 && new.signum() != self.size.signum() {
            self.average_price = price;
        }
        self.size = if new.abs() < 1e-12 { 0.0 } else { new };
        if self.size == 0.0 {
            self.average_price = 0.0;
        }
    }
}

/// The venue's orders.
#[derive(Debug)]
pub(crate) struct OrderDesk {
    state: Mutex<DeskState>,
}

impl Default for OrderDesk {
    fn default() -> Self {
        Self {
            state: Mutex::new(DeskState {
                next_order: FIRST_ORDER_ID,
                next_trade: FIRST_TRADE_ID,
                labels: HashSet::new(),
                by_label: HashMap::new(),
                resting: Vec::new(),
                receipts: Vec::new(),
                positions: HashMap::new(),
            }),
        }
    }
}

impl OrderDesk {
    fn lock(&self) -> std::sync::MutexGuard<'_, DeskState> {
        // A panic elsewhere while holding the lock leaves consistent data: recover it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Accepted orders' receipt times so far, in arrival order.
    pub(crate) fn receipts(&self) -> Vec<OrderReceipt> {
        self.lock().receipts.clone()
    }

    /// Handles `private/buy` or `private/sell`: the `result` object
    /// (`{"order": .., "trades": [..], "sim_recv_ns": recv_ns}`) or the error.
    pub(crate) fn place(
        &self,
        params: &Value,
        direction: Direction,
        chain: &Chain,
        snap: &MarketSnapshot,
        at: Placed,
    ) -> (Result<Value, RpcError>, Outcome) {
        let Placed {
            now_ms,
            recv_ns,
            owner,
        } = at;
        let req = match OrderRequest::parse(params, direction, chain) {
            Ok(r) => r,
            Err(e) => return (Err(e), Outcome::default()),
        };
        let t = touch(snap, req.inst);
        let far = match direction {
            Direction::Buy => t.ask,
            Direction::Sell => t.bid,
        };
        let liquid = far.is_finite() && far > 0.0;
        let marketable = liquid
            && match (req.limit, direction) {
                (None, _) => true,
                (Some(p), Direction::Buy) => p >= far,
                (Some(p), Direction::Sell) => p <= far,
            };
        let mut st = self.lock();
        if !req.label.is_empty() && st.labels.contains(&req.label) {
            return (
                Err((
                    11030,
                    "other_reject",
                    json!({"param": "label", "reason": "duplicate_label",
                           "label": req.label}),
                )),
                Outcome::default(),
            );
        }
        if !req.label.is_empty() {
            st.labels.insert(req.label.clone());
        }
        let order_id = st.next_order.to_string();
        st.next_order += 1;
        let (state, filled) = if marketable {
            ("filled", req.amount)
        } else if req.limit.is_some()
            && matches!(req.time_in_force, "good_til_cancelled" | "good_til_day")
        {
            ("open", 0.0)
        } else {
            ("cancelled", 0.0)
        };
        let fee = if !marketable {
            0.0
        } else {
            match req.inst {
                InstrumentRef::Option(_) => {
                    (OPTION_FEE * req.amount).min(OPTION_FEE_CAP * far * req.amount)
                }
                _ => req.amount / far * LINEAR_TAKER_FEE,
            }
        };
        let order = Order {
            order_id,
            state,
            instrument: req.instrument.clone(),
            direction,
            amount: req.amount,
            filled,
            average_price: if marketable { far } else { 0.0 },
            // A market order shows the price it filled at (Deribit shows its protection price).
            price: req.limit.unwrap_or(if liquid { far } else { t.mark }),
            label: req.label.clone(),
            order_type: if req.limit.is_some() {
                "limit"
            } else {
                "market"
            },
            created_ms: now_ms,
            updated_ms: now_ms,
            time_in_force: req.time_in_force,
            reduce_only: req.reduce_only,
            post_only: req.post_only,
            commission: fee,
            owner,
        };
        let mut trades = Vec::new();
        if marketable {
            let seq = st.next_trade;
            st.next_trade += 1;
            let mut trade = json!({
                "trade_id": format!("BTC-{seq}"),
                "trade_seq": seq,
                "instrument_name": req.instrument,
                "order_id": order.order_id,
                "order_type": order.order_type,
                "direction": direction.as_str(),
                "amount": req.amount,
                "price": far,
                "fee": fee,
                "fee_currency": "BTC",
                "label": req.label,
                "timestamp": now_ms,
                "index_price": snap.index,
                "mark_price": t.mark,
                "liquidity": "T",
                "state": "filled",
                "tick_direction": 0,
                "self_trade": false,
                "reduce_only": req.reduce_only,
                "post_only": req.post_only,
                "matching_id": null,
                "api": true,
            });
            if let (InstrumentRef::Option(_), Some(obj)) = (req.inst, trade.as_object_mut()) {
                obj.insert("iv".into(), json!(t.iv));
                obj.insert("underlying_price".into(), json!(t.underlying));
            }
            trades.push(trade);
        }
        if marketable {
            let signed = match direction {
                Direction::Buy => req.amount,
                Direction::Sell => -req.amount,
            };
            let option = matches!(req.inst, InstrumentRef::Option(_));
            let pos = st.positions.entry(req.instrument.clone()).or_default();
            pos.option = option;
            pos.trade(signed, far);
        }
        let body = order.to_json();
        if st.receipts.len() < MAX_RECEIPTS {
            st.receipts.push(OrderReceipt {
                label: order.label.clone(),
                recv_ns,
            });
        }
        if !order.label.is_empty() {
            st.by_label.insert(order.label.clone(), body.clone());
        }
        if state == "open" {
            st.resting.push(order);
        }
        drop(st);
        let result = json!({"order": body, "trades": trades, "sim_recv_ns": recv_ns});
        (
            Ok(result),
            Outcome {
                accepted: true,
                fills: u64::from(marketable),
            },
        )
    }

    /// Handles `private/cancel`: the cancelled order or `order_not_found`.
    pub(crate) fn cancel(
        &self,
        params: &Value,
        now_ms: u64,
        recv_ns: u64,
    ) -> Result<Value, RpcError> {
        let id = params
            .get("order_id")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("order_id", "expected a string"))?;
        let mut st = self.lock();
        let Some(pos) = st.resting.iter().position(|o| o.order_id == id) else {
            return Err((
                10004,
                "order_not_found",
                json!({"param": "order_id", "reason": format!("no open order {id:?}")}),
            ));
        };
        let mut order = st.resting.swap_remove(pos);
        order.state = "cancelled";
        order.updated_ms = now_ms;
        let mut v = order.to_json();
        if !order.label.is_empty() {
            st.by_label.insert(order.label.clone(), v.clone());
        }
        drop(st);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("sim_recv_ns".into(), json!(recv_ns));
        }
        Ok(v)
    }

    /// Handles `private/cancel_all` (and its by-instrument/currency variants' common case):
    /// cancels every resting order, answers how many.
    pub(crate) fn cancel_all(&self) -> Value {
        let mut st = self.lock();
        let n = st.resting.len();
        let resting = std::mem::take(&mut st.resting);
        for mut o in resting {
            o.state = "cancelled";
            if !o.label.is_empty() {
                let v = o.to_json();
                st.by_label.insert(o.label.clone(), v);
            }
        }
        json!(n)
    }

    /// Handles `private/get_order_state_by_label` (`currency`, `label`): an array with the
    /// labelled order's latest state, or empty if no order carries that label.
    pub(crate) fn by_label(&self, params: &Value) -> Result<Value, RpcError> {
        let label = params
            .get("label")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("label", "expected a string"))?;
        let st = self.lock();
        Ok(match st.by_label.get(label) {
            Some(o) => json!([o]),
            None => json!([]),
        })
    }

    /// Sets a listed instrument's position at its current mark, as if traded before the venue
    /// started; false when `instrument` is not listed.
    pub(crate) fn seed_listed(
        &self,
        chain: &Chain,
        snap: &MarketSnapshot,
        instrument: &str,
        size: f64,
    ) -> bool {
        let Some(inst) = chain.lookup(instrument) else {
            return false;
        };
        let mark = touch(snap, inst).mark;
        let option = matches!(inst, InstrumentRef::Option(_));
        self.seed_position(
            instrument,
            size,
            if mark.is_finite() { mark } else { 0.0 },
            option,
        );
        true
    }

    /// Sets a position as if it had been traded before the venue started (the account a run
    /// starts with). `size`: USD for futures, coin for options, signed.
    pub(crate) fn seed_position(&self, instrument: &str, size: f64, price: f64, option: bool) {
        let mut st = self.lock();
        let pos = st.positions.entry(instrument.to_string()).or_default();
        *pos = Position {
            size,
            average_price: if size == 0.0 { 0.0 } else { price },
            option,
        };
    }

    /// Handles `private/get_positions` (`currency`, optional `kind` future|option): every
    /// non-zero position in Deribit's shape, instruments in name order.
    pub(crate) fn positions(&self, params: &Value) -> Result<Value, RpcError> {
        match params.get("currency").and_then(Value::as_str) {
            Some("BTC" | "any") => {}
            Some(_) => return Ok(json!([])),
            None => return Err(invalid("currency", "expected a string")),
        }
        let kind = match params.get("kind") {
            None | Some(Value::Null) => None,
            Some(Value::String(k)) if k == "future" || k == "option" => {
                Some(k.as_str() == "option")
            }
            Some(Value::String(k)) if k == "any" => None,
            Some(_) => return Err(invalid("kind", "must be future, option or any")),
        };
        let st = self.lock();
        let mut names: Vec<&String> = st
            .positions
            .iter()
            .filter(|(_, p)| p.size != 0.0 && kind.is_none_or(|o| o == p.option))
            .map(|(n, _)| n)
            .collect();
        names.sort();
        Ok(Value::Array(
            names
                .into_iter()
                .map(|n| {
                    let p = st.positions[n];
                    json!({
                        "instrument_name": n,
                        "kind": if p.option { "option" } else { "future" },
                        "size": p.size,
                        "direction": if p.size > 0.0 { "buy" } else { "sell" },
                        "average_price": p.average_price,
                    })
                })
                .collect(),
        ))
    }

    /// Handles `private/get_open_orders_by_currency`: every resting order.
    pub(crate) fn open_orders(&self) -> Value {
        let st = self.lock();
        Value::Array(st.resting.iter().map(Order::to_json).collect())
    }

    /// Cancels every resting order placed by connection `owner` (cancel-on-disconnect); the
    /// number cancelled.
    pub(crate) fn cancel_owned(&self, owner: u64, now_ms: u64) -> usize {
        let mut st = self.lock();
        let mut n = 0;
        let mut i = 0;
        while i < st.resting.len() {
            if st.resting[i].owner == owner {
                let mut o = st.resting.swap_remove(i);
                o.state = "cancelled";
                o.updated_ms = now_ms;
                if !o.label.is_empty() {
                    let v = o.to_json();
                    st.by_label.insert(o.label.clone(), v);
                }
                n += 1;
            } else {
                i += 1;
            }
        }
        n
    }

    /// Resting orders now.
    #[cfg(test)]
    fn resting(&self) -> usize {
        self.lock().resting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::chain::ChainSpec;
    use super::super::market::{LinearQuote, OptionQuote};
    use super::*;

    fn chain() -> Chain {
        Chain::build(&ChainSpec {
            options: 20,
            spot: 100_000.0,
            vol: 0.6,
            carry: 0.0,
            now_ms: 1_780_000_000_000,
            seed: 1,
        })
    }

    fn snap(chain: &Chain) -> MarketSnapshot {
        let mut s = MarketSnapshot {
            index: 100_000.0,
            perp: LinearQuote {
                mark: 100_001.0,
                bid: 100_000.0,
                ask: 100_000.5,
                bid_amount: 1_000.0,
                ask_amount: 1_000.0,
                tick: 0.5,
            },
            ..MarketSnapshot::default()
        };
        s.options = vec![
            OptionQuote {
                mark: 0.05,
                mark_iv: 60.0,
                bid: 0.049,
                ask: 0.051,
                forward: 100_000.0,
                open: true,
                ..OptionQuote::default()
            };
            chain.options.len()
        ];
        // Option 1 has no bid.
        s.options[1].bid = 0.0;
        s
    }

    fn at(owner: u64) -> Placed {
        Placed {
            now_ms: 1,
            recv_ns: 2,
            owner,
        }
    }

    #[test]
    fn market_and_limit_orders_follow_the_rules() {
        let (c, s) = (chain(), chain());
        let s = snap(&s);
        let desk = OrderDesk::default();
        let place = |p: Value, d| desk.place(&p, d, &c, &s, at(0));
        let (r, o) = place(
            json!({"instrument_name": "BTC-PERPETUAL", "amount": 40, "type": "market"}),
            Direction::Buy,
        );
        let r = r.unwrap();
        assert_eq!(
            o,
            Outcome {
                accepted: true,
                fills: 1
            }
        );
        assert_eq!(r["order"]["order_state"], "filled");
        assert_eq!(r["order"]["average_price"], 100_000.5);
        assert_eq!(r["trades"][0]["price"], 100_000.5);
        assert_eq!(r["sim_recv_ns"], 2);
        // No bid: a market sell is cancelled unfilled.
        let opt1 = c.options[1].name.clone();
        let (r, o) = place(
            json!({"instrument_name": opt1, "amount": 0.3, "type": "market"}),
            Direction::Sell,
        );
        assert_eq!(r.unwrap()["order"]["order_state"], "cancelled");
        assert_eq!(o.fills, 0);
        // Non-marketable limit rests; IOC is cancelled.
        let (r, _) = place(
            json!({"instrument_name": "BTC-PERPETUAL", "amount": 10, "type": "limit",
                   "price": 90_000.0}),
            Direction::Buy,
        );
        assert_eq!(r.unwrap()["order"]["order_state"], "open");
        assert_eq!(desk.resting(), 1);
        let (r, _) = place(
            json!({"instrument_name": "BTC-PERPETUAL", "amount": 10, "type": "limit",
                   "price": 90_000.0, "time_in_force": "immediate_or_cancel"}),
            Direction::Buy,
        );
        assert_eq!(r.unwrap()["order"]["order_state"], "cancelled");
        assert_eq!(desk.cancel_all(), json!(1));
        for (p, code) in [
            (
                json!({"instrument_name": "BTC-PERPETUAL", "amount": 15}),
                -32602,
            ),
            (json!({"instrument_name": "NOPE", "amount": 10}), 10020),
            (
                json!({"instrument_name": "BTC-PERPETUAL", "amount": 10, "type": "stop"}),
                -32602,
            ),
            (
                json!({"instrument_name": "BTC-PERPETUAL", "amount": 10, "type": "limit"}),
                -32602,
            ),
            (
                json!({"instrument_name": "BTC-PERPETUAL", "amount": 10, "label": "x".repeat(65)}),
                -32602,
            ),
            (
                json!({"instrument_name": opt1, "amount": 0.05, "type": "market"}),
                -32602,
            ),
            (json!(null), -32602),
        ] {
            let (r, o) = place(p.clone(), Direction::Buy);
            assert_eq!(r.unwrap_err().0, code, "{p}");
            assert!(!o.accepted);
        }
    }

    #[test]
    fn multiples() {
        assert!(is_multiple(0.3, 0.1));
        assert!(is_multiple(10.0, 10.0));
        assert!(!is_multiple(0.0, 0.1));
        assert!(!is_multiple(-10.0, 10.0));
        assert!(!is_multiple(25.0, 10.0));
        assert!(!is_multiple(f64::NAN, 10.0));
    }

    #[test]
    fn orders_are_found_by_label() {
        let c = chain();
        let desk = OrderDesk::default();
        let s = snap(&c);
        let (r, _) = desk.place(
            &json!({"instrument_name": "BTC-PERPETUAL", "amount": 20, "type": "market", "label": "k1-7"}),
            Direction::Buy,
            &c,
            &s,
            at(0),
        );
        assert!(r.is_ok());
        let found = desk
            .by_label(&json!({"currency": "any", "label": "k1-7"}))
            .unwrap();
        assert_eq!(found[0]["order_state"], "filled");
        assert_eq!(found[0]["filled_amount"], 20.0);
        let none = desk
            .by_label(&json!({"currency": "any", "label": "k1-8"}))
            .unwrap();
        assert_eq!(none, json!([]));
        assert!(desk.by_label(&json!({})).is_err());
    }

    #[test]
    fn fills_move_positions_and_a_dropped_connection_cancels_only_its_orders() {
        let c = chain();
        let s = snap(&c);
        let desk = OrderDesk::default();
        let perp = json!({"instrument_name": "BTC-PERPETUAL", "amount": 40, "type": "market"});
        assert!(desk.place(&perp, Direction::Buy, &c, &s, at(7)).0.is_ok());
        let sell = json!({"instrument_name": "BTC-PERPETUAL", "amount": 10, "type": "market"});
        assert!(desk.place(&sell, Direction::Sell, &c, &s, at(7)).0.is_ok());
        desk.seed_position(&c.options[0].name, -1.5, 0.05, true);
        let all = desk.positions(&json!({"currency": "BTC"})).unwrap();
        assert_eq!(all.as_array().unwrap().len(), 2);
        let fut = desk
            .positions(&json!({"currency": "BTC", "kind": "future"}))
            .unwrap();
        assert_eq!(fut[0]["instrument_name"], "BTC-PERPETUAL");
        assert_eq!(fut[0]["size"], 30.0);
        assert_eq!(fut[0]["average_price"], 100_000.5);
        let opt = desk
            .positions(&json!({"currency": "BTC", "kind": "option"}))
            .unwrap();
        assert_eq!(opt[0]["size"], -1.5);
        assert_eq!(opt[0]["direction"], "sell");
        assert!(desk.positions(&json!({})).is_err());
        // Two resting limit orders from two connections; connection 7 drops.
        let rest = |label: &str| {
            json!({"instrument_name": "BTC-PERPETUAL", "amount": 10, "type": "limit",
                   "price": 1.0, "label": label})
        };
        assert!(
            desk.place(&rest("a"), Direction::Buy, &c, &s, at(7))
                .0
                .is_ok()
        );
        assert!(
            desk.place(&rest("b"), Direction::Buy, &c, &s, at(8))
                .0
                .is_ok()
        );
        assert_eq!(desk.open_orders().as_array().unwrap().len(), 2);
        assert_eq!(desk.cancel_owned(7, 5), 1);
        assert_eq!(desk.resting(), 1);
        let a = desk.by_label(&json!({"label": "a"})).unwrap();
        assert_eq!(a[0]["order_state"], "cancelled");
    }
}
