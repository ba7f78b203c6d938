//! Bybit parser on the documented option ticker (shared/fixtures/venues/bybit) and on linear
//! ticker snapshot and delta messages written from Bybit's v5 documentation: complete quotes
//! and marks from deltas, op responses and pongs; the subscribe and ping requests.

mod venues_support;

use keel_feeds::venues::{BybitParser, Parsed, Problem, bybit};
use keel_feeds::{EventBody, InstrumentKind, Instruments, OptionTicker, Venue, VenueGreeks};
use venues_support::*;

const Y: Venue = Venue::Bybit;
const MS: u64 = 1_000_000;

fn bybit_registry() -> Instruments {
    registry(&[
        (Y, "BTC-6JAN23-17500-C", InstrumentKind::Option),
        (Y, "BTCUSDT", InstrumentKind::Perpetual),
    ])
}

#[test]
fn option_ticker_with_an_empty_bid() {
    let reg = bybit_registry();
    let mut p = BybitParser::new(&reg);
    let msg = fixture("bybit/option_ticker.json");
    let (parsed, evs) = ok(&mut p, &msg, 6);
    assert_eq!(parsed, Parsed::Events { count: 2 });
    let inst = id(&reg, Y, "BTC-6JAN23-17500-C");
    let ts = 1_672_917_511_074 * MS;
    let nan = f64::NAN;
    assert_events(
        &evs,
        &[
            ev(
                Y,
                inst,
                ts,
                6,
                EventBody::OptionTicker(OptionTicker {
                    // bidPrice "0" with bidSize "0": no bid.
                    bid: nan,
                    bid_size: 0.0,
                    ask: 10.0,
                    ask_size: 5.1,
                    mark: 7.869_767_24,
                    mark_iv: 0.4896,
                    bid_iv: nan,
                    ask_iv: 0.514,
                    underlying: 16_815.1,
                    index: 16_823.73,
                }),
            ),
            ev(
                Y,
                inst,
                ts,
                6,
                EventBody::VenueGreeks(VenueGreeks {
                    delta: 0.047_831,
                    gamma: 0.000_214_53,
                    vega: 0.813_510_67,
                    theta: -19.911_536_8,
                    rho: nan,
                }),
            ),
        ],
    );
}

/// Bybit's documented linear ticker snapshot.
const LINEAR_SNAPSHOT: &[u8] = br#"{"topic":"tickers.BTCUSDT","type":"snapshot","data":{"symbol":"BTCUSDT","tickDirection":"PlusTick","price24hPcnt":"0.017103","lastPrice":"17216.00","prevPrice24h":"16926.50","highPrice24h":"17281.50","lowPrice24h":"16915.00","prevPrice1h":"17238.00","markPrice":"17217.33","indexPrice":"17227.36","openInterest":"68744.761","openInterestValue":"1183601235.91","turnover24h":"1570383121.943499","volume24h":"91705.276","nextFundingTime":"1673280000000","fundingRate":"-0.000212","bid1Price":"17215.50","bid1Size":"84.489","ask1Price":"17216.00","ask1Size":"83.020"},"cs":24987956059,"ts":1673272861686}"#;

fn quote(bid: f64, bid_size: f64, ask: f64, ask_size: f64) -> EventBody {
    EventBody::Quote {
        bid,
        bid_size,
        ask,
        ask_size,
    }
}

fn mark(mark: f64, index: f64, funding_rate: f64) -> EventBody {
    EventBody::Mark {
        mark,
        iv: f64::NAN,
        index,
        funding_rate,
    }
}

#[test]
fn linear_snapshot_then_deltas_emit_complete_events() {
    let reg = bybit_registry();
    let btc = id(&reg, Y, "BTCUSDT");
    let mut p = BybitParser::new(&reg);
    let (parsed, evs) = ok(&mut p, LINEAR_SNAPSHOT, 1);
    assert_eq!(parsed, Parsed::Events { count: 2 });
    let ts = 1_673_272_861_686 * MS;
    assert_events(
        &evs,
        &[
            ev(Y, btc, ts, 1, quote(17_215.5, 84.489, 17_216.0, 83.02)),
            ev(Y, btc, ts, 1, mark(17_217.33, 17_227.36, -0.000_212)),
        ],
    );
    // A delta of the bid only: the quote is completed from the last values; no mark.
    let d1 = br#"{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","bid1Price":"17215.00","bid1Size":"90.1"},"cs":24987956060,"ts":1673272861786}"#;
    let (parsed, evs) = ok(&mut p, d1, 2);
    assert_eq!(parsed, Parsed::Events { count: 1 });
    assert_events(
        &evs,
        &[ev(
            Y,
            btc,
            1_673_272_861_786 * MS,
            2,
            quote(17_215.0, 90.1, 17_216.0, 83.02),
        )],
    );
    // A delta of the mark only: the mark with the last index and funding; no quote.
    let d2 = br#"{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","markPrice":"17218.01","openInterest":"68744.9"},"cs":24987956061,"ts":1673272861886}"#;
    let (_, evs) = ok(&mut p, d2, 3);
    assert_events(
        &evs,
        &[ev(
            Y,
            btc,
            1_673_272_861_886 * MS,
            3,
            mark(17_218.01, 17_227.36, -0.000_212),
        )],
    );
    // A delta touching neither: nothing to emit.
    let d3 = br#"{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","volume24h":"91706.0"},"cs":24987956062,"ts":1673272861986}"#;
    assert_eq!(ok(&mut p, d3, 4).0, Parsed::Events { count: 0 });
    // Both, and the quote keeps the bid from d1.
    let d4 = br#"{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","ask1Price":"17216.50","fundingRate":"-0.0002"},"cs":24987956063,"ts":1673272862086}"#;
    let (_, evs) = ok(&mut p, d4, 5);
    let ts = 1_673_272_862_086 * MS;
    assert_events(
        &evs,
        &[
            ev(Y, btc, ts, 5, quote(17_215.0, 90.1, 17_216.5, 83.02)),
            ev(Y, btc, ts, 5, mark(17_218.01, 17_227.36, -0.0002)),
        ],
    );
    // A new snapshot replaces everything (fields it lacks become NaN).
    let snap = br#"{"topic":"tickers.BTCUSDT","type":"snapshot","data":{"symbol":"BTCUSDT","bid1Price":"1","bid1Size":"2","ask1Price":"3","ask1Size":"4","markPrice":"2"},"ts":1}"#;
    let (_, evs) = ok(&mut p, snap, 6);
    assert_events(
        &evs,
        &[
            ev(Y, btc, MS, 6, quote(1.0, 2.0, 3.0, 4.0)),
            ev(Y, btc, MS, 6, mark(2.0, f64::NAN, f64::NAN)),
        ],
    );
}

#[test]
fn delta_before_snapshot_leaves_unknown_fields_nan() {
    let reg = bybit_registry();
    let mut p = BybitParser::new(&reg);
    let d = br#"{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","bid1Price":"100","bid1Size":"1"},"ts":5}"#;
    let (_, evs) = ok(&mut p, d, 0);
    let EventBody::Quote {
        bid,
        bid_size,
        ask,
        ask_size,
    } = evs[0].body
    else {
        panic!()
    };
    assert_eq!((bid, bid_size), (100.0, 1.0));
    // An ask never received is an empty side: price NaN, size 0.
    assert!(ask.is_nan());
    assert_eq!(ask_size, 0.0);
}

#[test]
fn ops_pongs_and_other_topics() {
    let reg = bybit_registry();
    let mut p = BybitParser::new(&reg);
    assert_eq!(
        ok(&mut p, br#"{"success":true,"ret_msg":"","conn_id":"2324d924-aa4d-45b0-a858-7b8be29ab52b","req_id":"10001","op":"subscribe"}"#, 0).0,
        Parsed::Ack { id: Some(10_001), result: b"subscribe" }
    );
    assert_eq!(
        ok(&mut p, br#"{"success":false,"ret_msg":"error:handler not found","conn_id":"2324d924","req_id":"","op":"subscribe"}"#, 0).0,
        Parsed::Error { id: None, code: 0, message: b"error:handler not found" }
    );
    assert_eq!(
        ok(&mut p, br#"{"success":true,"ret_msg":"pong","conn_id":"0970e817-426e-429a-a679-ff7f55e0b16a","op":"ping"}"#, 0).0,
        Parsed::Pong
    );
    assert_eq!(
        ok(&mut p, br#"{"req_id":"qweqweqwe","op":"pong","args":["1675418560633"],"conn_id":"cfcb4ocsvfriu23r3er0-1b"}"#, 0).0,
        Parsed::Pong
    );
    assert_eq!(
        ok(&mut p, br#"{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1,"data":{"s":"BTCUSDT","b":[],"a":[],"u":1,"seq":2}}"#, 0).0,
        Parsed::UnknownChannel { channel: b"orderbook.50.BTCUSDT" }
    );
    // Unknown symbol: counted.
    let other = String::from_utf8(LINEAR_SNAPSHOT.to_vec())
        .unwrap()
        .replace("BTCUSDT", "ETHUSDT");
    assert_eq!(
        ok(&mut p, other.as_bytes(), 0).0,
        Parsed::Events { count: 0 }
    );
    assert_eq!(p.stats().unknown_instruments, 1);
    // A ticker without `type` or `ts` is malformed.
    assert_eq!(
        rejected(
            &mut p,
            br#"{"topic":"tickers.BTCUSDT","data":{"symbol":"BTCUSDT"},"ts":1}"#
        )
        .problem,
        Problem::Missing("type")
    );
    assert_eq!(
        rejected(
            &mut p,
            br#"{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT"}}"#
        )
        .problem,
        Problem::Missing("ts")
    );
    rejected(
        &mut p,
        br#"{"topic":"tickers.BTCUSDT","type":"other","data":{},"ts":1}"#,
    );
}

#[test]
fn requests_match_the_documented_ones() {
    let mut out = Vec::new();
    bybit::subscribe(&mut out, None, &["tickers.BTC-6JAN23-17500-C"]);
    let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let want: serde_json::Value =
        serde_json::from_slice(&pretty("bybit/subscribe_request.json")).unwrap();
    assert_eq!(got, want);
    out.clear();
    bybit::ping(&mut out, None);
    assert_eq!(out, br#"{"op":"ping"}"#);
    out.clear();
    bybit::unsubscribe(&mut out, Some(3), &["tickers.BTCUSDT"]);
    assert_eq!(
        out,
        br#"{"req_id":"3","op":"unsubscribe","args":["tickers.BTCUSDT"]}"#
    );
}
