//! keel-sim's order endpoint on the Deribit protocol (`private/buy`, `private/sell`,
//! `private/cancel`, `private/cancel_all`, `public/auth`) seen by an independent client:
//! Deribit's response shape, fills at the simulated touch, validation errors, the duplicate
//! label rule, resting limit orders and the venue's order counters.

mod sim_common;

use serde_json::{Value, json};
use sim_common::*;

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// The current best bid and ask of `name` from `public/ticker` on the same connection.
fn touch(ws: &mut Ws, id: u64, name: &str) -> (f64, f64) {
    let t = rpc(ws, id, "public/ticker", json!({"instrument_name": name}));
    let r = &t["result"];
    (f(r, "best_bid_price"), f(r, "best_ask_price"))
}

/// Checks the fields every order result carries.
fn check_order(r: &Value, name: &str, direction: &str, amount: f64, state: &str) {
    let o = &r["order"];
    for key in [
        "order_id",
        "order_state",
        "instrument_name",
        "direction",
        "label",
        "order_type",
        "time_in_force",
    ] {
        assert!(o[key].is_string(), "order.{key} must be a string: {o}");
    }
    for key in [
        "amount",
        "filled_amount",
        "average_price",
        "price",
        "creation_timestamp",
        "last_update_timestamp",
    ] {
        assert!(o[key].is_number(), "order.{key} must be a number: {o}");
    }
    assert_eq!(o["instrument_name"], name);
    assert_eq!(o["direction"], direction);
    assert_eq!(f(o, "amount"), amount);
    assert_eq!(o["order_state"], state);
    assert_eq!(o["api"], true);
    assert!(r["trades"].is_array(), "{r}");
    let recv = r["sim_recv_ns"].as_u64().expect("sim_recv_ns");
    assert!(recv.abs_diff(now_ns()) < 60_000_000_000, "{recv}");
}

fn check_trade(t: &Value, order: &Value, price: f64) {
    for key in [
        "trade_id",
        "instrument_name",
        "order_id",
        "direction",
        "fee_currency",
        "label",
        "liquidity",
    ] {
        assert!(t[key].is_string(), "trade.{key} must be a string: {t}");
    }
    for key in [
        "trade_seq",
        "amount",
        "price",
        "fee",
        "timestamp",
        "index_price",
        "mark_price",
    ] {
        assert!(t[key].is_number(), "trade.{key} must be a number: {t}");
    }
    assert_eq!(t["order_id"], order["order_id"]);
    assert_eq!(t["liquidity"], "T");
    assert_eq!(t["fee_currency"], "BTC");
    assert_eq!(f(t, "amount"), f(order, "amount"));
    assert_eq!(f(t, "price"), price);
    assert!(f(t, "fee") > 0.0);
}

/// A market order fills at the touch of the market tick it was priced on; the test reads the
/// touch just before and just after, and the fill must be one of them (the market ticks every
/// 10 s here, so at most one tick can fall in between).
fn fills_at_touch(fill: f64, before: f64, after: f64) -> bool {
    fill == before || fill == after
}

#[test]
fn perpetual_market_buy_and_sell_fill_at_the_touch() {
    let sim = start(|c| c.tick = std::time::Duration::from_secs(10));
    let mut ws = connect(&sim.deribit_url());
    let auth = rpc(
        &mut ws,
        1,
        "public/auth",
        json!({"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"}),
    );
    assert_eq!(auth["result"]["token_type"], "bearer", "{auth}");

    let (_, ask0) = touch(&mut ws, 2, "BTC-PERPETUAL");
    let buy = rpc(
        &mut ws,
        3,
        "private/buy",
        json!({"instrument_name": "BTC-PERPETUAL", "amount": 40, "type": "market",
               "label": "hedge-1"}),
    );
    let (bid1, ask1) = touch(&mut ws, 4, "BTC-PERPETUAL");
    assert_eq!(buy["jsonrpc"], "2.0");
    assert!(buy["usIn"].is_u64() && buy["usOut"].is_u64() && buy["usDiff"].is_u64());
    assert_eq!(buy["testnet"], false);
    let r = &buy["result"];
    check_order(r, "BTC-PERPETUAL", "buy", 40.0, "filled");
    assert_eq!(r["order"]["label"], "hedge-1");
    assert_eq!(r["order"]["order_type"], "market");
    assert_eq!(f(&r["order"], "filled_amount"), 40.0);
    let px = f(&r["order"], "average_price");
    assert!(fills_at_touch(px, ask0, ask1), "{px} vs asks {ask0} {ask1}");
    let trades = r["trades"].as_array().unwrap();
    assert_eq!(trades.len(), 1);
    check_trade(&trades[0], &r["order"], px);
    assert_eq!(trades[0]["label"], "hedge-1");

    let sell = rpc(
        &mut ws,
        5,
        "private/sell",
        json!({"instrument_name": "BTC-PERPETUAL", "amount": 10, "type": "market"}),
    );
    let (bid2, _) = touch(&mut ws, 6, "BTC-PERPETUAL");
    let r = &sell["result"];
    check_order(r, "BTC-PERPETUAL", "sell", 10.0, "filled");
    let px = f(&r["order"], "average_price");
    assert!(fills_at_touch(px, bid1, bid2), "{px} vs bids {bid1} {bid2}");
    check_trade(&r["trades"][0], &r["order"], px);
    let s = sim.stats();
    assert_eq!((s.orders, s.fills, s.rejected_orders), (2, 2, 0));
}

#[test]
fn option_orders_fill_in_btc_and_a_resting_limit_can_be_cancelled() {
    let sim = start(|c| c.tick = std::time::Duration::from_secs(10));
    // An option with a bid: near the money of the third expiry.
    let chain = sim.chain();
    let opts: Vec<_> = chain.options.iter().filter(|o| o.expiry == 2).collect();
    let name = opts[opts.len() / 2].name.clone();
    let mut ws = connect(&sim.deribit_url());
    let (bid, ask) = touch(&mut ws, 1, &name);
    assert!(bid > 0.0 && ask > bid, "{name}: {bid} {ask}");

    let buy = rpc(
        &mut ws,
        2,
        "private/buy",
        json!({"instrument_name": name, "amount": 0.3, "type": "market", "label": "opt-1"}),
    );
    let r = &buy["result"];
    check_order(r, &name, "buy", 0.3, "filled");
    let px = f(&r["order"], "average_price");
    assert!(px > 0.0 && px < 1.0, "option prices are in BTC: {px}");
    check_trade(&r["trades"][0], &r["order"], px);
    assert!(r["trades"][0]["iv"].is_number());

    // A sell limit far above the ask rests, then cancel removes it.
    let rest = rpc(
        &mut ws,
        3,
        "private/sell",
        json!({"instrument_name": name, "amount": 1.0, "type": "limit", "price": 0.9,
               "label": "opt-rest"}),
    );
    let r = &rest["result"];
    check_order(r, &name, "sell", 1.0, "open");
    assert_eq!(r["trades"], json!([]));
    assert_eq!(f(&r["order"], "filled_amount"), 0.0);
    assert_eq!(f(&r["order"], "price"), 0.9);
    let id = r["order"]["order_id"].as_str().unwrap().to_string();
    let cancel = rpc(&mut ws, 4, "private/cancel", json!({"order_id": id}));
    assert_eq!(cancel["result"]["order_state"], "cancelled", "{cancel}");
    assert_eq!(cancel["result"]["order_id"], id.as_str());
    let again = rpc(&mut ws, 5, "private/cancel", json!({"order_id": id}));
    assert_eq!(again["error"]["code"], 10004, "{again}");

    // A marketable limit buy fills at the ask, not at its limit.
    let lim = rpc(
        &mut ws,
        6,
        "private/buy",
        json!({"instrument_name": name, "amount": 0.1, "type": "limit", "price": 0.95}),
    );
    let r = &lim["result"];
    check_order(r, &name, "buy", 0.1, "filled");
    assert!(f(&r["order"], "average_price") < 0.95);

    // cancel_all answers how many resting orders it cancelled.
    for (id, price) in [(7, 0.0001), (8, 0.0002)] {
        let v = rpc(
            &mut ws,
            id,
            "private/buy",
            json!({"instrument_name": name, "amount": 0.1, "type": "limit", "price": price}),
        );
        assert_eq!(v["result"]["order"]["order_state"], "open", "{v}");
    }
    let all = rpc(&mut ws, 9, "private/cancel_all", json!({}));
    assert_eq!(all["result"], 2, "{all}");
    let s = sim.stats();
    assert_eq!((s.orders, s.fills, s.rejected_orders), (5, 2, 0));
}

#[test]
fn bad_orders_get_deribit_errors_and_labels_are_unique_venue_wide() {
    let sim = start(|_| {});
    let opt = sim.chain().options[0].name.clone();
    let mut ws = connect(&sim.deribit_url());
    let cases = [
        (
            json!({"instrument_name": "BTC-PERPETUAL", "amount": 15, "type": "market"}),
            -32602,
            "amount",
        ),
        (
            json!({"instrument_name": opt, "amount": 0.25, "type": "market"}),
            -32602,
            "amount",
        ),
        (
            json!({"instrument_name": "BTC-1JAN99-1-C", "amount": 1, "type": "market"}),
            10020,
            "instrument_name",
        ),
        (
            json!({"instrument_name": "BTC-PERPETUAL", "amount": 10, "type": "limit"}),
            -32602,
            "price",
        ),
        (
            json!({"instrument_name": "BTC-PERPETUAL", "amount": 10, "type": "stop_market"}),
            -32602,
            "type",
        ),
        (
            json!({"instrument_name": "BTC-PERPETUAL", "amount": 10, "type": "market",
                   "label": "L".repeat(65)}),
            -32602,
            "label",
        ),
    ];
    for (i, (params, code, param)) in cases.iter().enumerate() {
        let v = rpc(&mut ws, 10 + i as u64, "private/buy", params.clone());
        assert_eq!(v["error"]["code"], *code, "{params}: {v}");
        assert_eq!(v["error"]["data"]["param"], *param, "{params}: {v}");
        assert!(v.get("result").is_none());
    }

    // A label is an idempotency key across the whole venue, not just this connection.
    let params = json!({"instrument_name": "BTC-PERPETUAL", "amount": 10, "type": "market",
                        "label": "once"});
    let first = rpc(&mut ws, 20, "private/buy", params.clone());
    assert_eq!(first["result"]["order"]["order_state"], "filled", "{first}");
    let mut other = connect(&sim.deribit_url());
    let dup = rpc(&mut other, 21, "private/sell", params);
    assert_eq!(dup["error"]["code"], 11030, "{dup}");
    assert_eq!(dup["error"]["data"]["reason"], "duplicate_label");
    let s = sim.stats();
    assert_eq!((s.orders, s.fills, s.rejected_orders), (1, 1, 7));
}
