//! OKX parser on the documented messages (shared/fixtures/venues/okx) and on index-tickers,
//! event and notice messages written from OKX's v5 documentation; the subscribe request.

mod venues_support;

use keel_feeds::venues::okx::{self, OkxArg};
use keel_feeds::venues::{OkxParser, Parsed};
use keel_feeds::{EventBody, InstrumentKind, Instruments, OptionTicker, Venue, VenueGreeks};
use venues_support::*;

const O: Venue = Venue::Okx;
const MS: u64 = 1_000_000;

fn okx_registry() -> Instruments {
    registry(&[
        (O, "BTC-USDT", InstrumentKind::Spot),
        (O, "BTC-USDT-SWAP", InstrumentKind::Perpetual),
        (O, "BTC-USD-231229-40000-P", InstrumentKind::Option),
        (O, "BTC-USD", InstrumentKind::Index),
    ])
}

#[test]
fn spot_ticker() {
    let reg = okx_registry();
    let mut p = OkxParser::new(&reg);
    for msg in [fixture("okx/tickers.json"), pretty("okx/tickers.json")] {
        let (parsed, evs) = ok(&mut p, &msg, 8);
        assert_eq!(parsed, Parsed::Events { count: 1 });
        assert_events(
            &evs,
            &[ev(
                O,
                id(&reg, O, "BTC-USDT"),
                1_597_026_383_085 * MS,
                8,
                EventBody::Quote {
                    bid: 8888.88,
                    bid_size: 5.0,
                    ask: 9999.99,
                    ask_size: 11.0,
                },
            )],
        );
    }
}

#[test]
fn opt_summary_keeps_the_usd_greeks_and_the_vols() {
    let reg = okx_registry();
    let mut p = OkxParser::new(&reg);
    let msg = fixture("okx/opt_summary.json");
    let (parsed, evs) = ok(&mut p, &msg, 1);
    assert_eq!(parsed, Parsed::Events { count: 2 });
    let inst = id(&reg, O, "BTC-USD-231229-40000-P");
    let ts = 1_701_388_800_085 * MS;
    let nan = f64::NAN;
    assert_events(
        &evs,
        &[
            ev(
                O,
                inst,
                ts,
                1,
                EventBody::OptionTicker(OptionTicker {
                    bid: nan,
                    bid_size: nan,
                    ask: nan,
                    ask_size: nan,
                    mark: nan,
                    mark_iv: 0.468_651_787_3,
                    bid_iv: 0.461_129_683_2,
                    ask_iv: 0.489_510_974_1,
                    underlying: 38_026.372_899_316,
                    index: nan,
                }),
            ),
            ev(
                O,
                inst,
                ts,
                1,
                EventBody::VenueGreeks(VenueGreeks {
                    delta: -0.626_179_483_5,
                    gamma: 0.000_076_866_6,
                    vega: 39.798_600_751_8,
                    theta: -25.384_564_876,
                    rho: nan,
                }),
            ),
        ],
    );
}

/// OKX's documented `index-tickers` push.
const INDEX_TICKERS: &[u8] = br#"{"arg":{"channel":"index-tickers","instId":"BTC-USD"},"data":[{"instId":"BTC-USD","idxPx":"43251.6","high24h":"43890.1","low24h":"42011.5","open24h":"42500.0","sodUtc0":"42611.2","sodUtc8":"42750.9","ts":"1702425600123"}]}"#;

#[test]
fn index_tickers_resolve_among_indices_only() {
    let reg = okx_registry();
    let mut p = OkxParser::new(&reg);
    let (parsed, evs) = ok(&mut p, INDEX_TICKERS, 3);
    assert_eq!(parsed, Parsed::Events { count: 1 });
    assert_events(
        &evs,
        &[ev(
            O,
            id(&reg, O, "BTC-USD"),
            1_702_425_600_123 * MS,
            3,
            EventBody::Index { price: 43_251.6 },
        )],
    );
    // The BTC-USDT index is not the BTC-USDT spot pair.
    let usdt = String::from_utf8(INDEX_TICKERS.to_vec())
        .unwrap()
        .replace("BTC-USD\"", "BTC-USDT\"");
    assert_eq!(
        ok(&mut p, usdt.as_bytes(), 3).0,
        Parsed::Events { count: 0 }
    );
    assert_eq!(p.stats().unknown_instruments, 1);
}

#[test]
fn several_entries_option_tickers_and_empty_fields() {
    let reg = okx_registry();
    let mut p = OkxParser::new(&reg);
    let msg = br#"{"arg":{"channel":"tickers","instType":"OPTION"},"data":[
        {"instType":"OPTION","instId":"BTC-USD-231229-40000-P","last":"","lastSz":"0","askPx":"0.0355","askSz":"120","bidPx":"","bidSz":"","ts":"1701388800085"},
        {"instType":"SWAP","instId":"BTC-USDT-SWAP","askPx":"43000.1","askSz":"12","bidPx":"43000","bidSz":"30","ts":"1701388800086"},
        {"instType":"SWAP","instId":"ETH-USDT-SWAP","askPx":"2000.1","askSz":"12","bidPx":"2000","bidSz":"30","ts":"1701388800087"}]}"#;
    let (parsed, evs) = ok(&mut p, msg, 0);
    assert_eq!(parsed, Parsed::Events { count: 2 });
    let nan = f64::NAN;
    assert_events(
        &evs,
        &[
            ev(
                O,
                id(&reg, O, "BTC-USD-231229-40000-P"),
                1_701_388_800_085 * MS,
                0,
                EventBody::Quote {
                    bid: nan,
                    bid_size: 0.0,
                    ask: 0.0355,
                    ask_size: 120.0,
                },
            ),
            ev(
                O,
                id(&reg, O, "BTC-USDT-SWAP"),
                1_701_388_800_086 * MS,
                0,
                EventBody::Quote {
                    bid: 43_000.0,
                    bid_size: 30.0,
                    ask: 43_000.1,
                    ask_size: 12.0,
                },
            ),
        ],
    );
    assert_eq!(p.stats().unknown_instruments, 1);
}

#[test]
fn events_notices_and_pong() {
    let reg = okx_registry();
    let mut p = OkxParser::new(&reg);
    assert_eq!(ok(&mut p, b"pong", 0).0, Parsed::Pong);
    assert_eq!(
        ok(&mut p, br#"{"id":"1512","event":"subscribe","arg":{"channel":"tickers","instId":"BTC-USDT"},"connId":"accb8e21"}"#, 0).0,
        Parsed::Ack { id: Some(1512), result: br#"{"channel":"tickers","instId":"BTC-USDT"}"# }
    );
    assert_eq!(
        ok(&mut p, br#"{"id":"1512","event":"error","code":"60012","msg":"Invalid request: {\"op\": \"subscribe\", \"argss\":[{ \"channel\" : \"tickers\", \"instId\" : \"LTC-USD-200327\"}]}","connId":"a4d3ae55"}"#, 0).0,
        Parsed::Error {
            id: Some(1512),
            code: 60012,
            message: br#"Invalid request: {\"op\": \"subscribe\", \"argss\":[{ \"channel\" : \"tickers\", \"instId\" : \"LTC-USD-200327\"}]}"#
        }
    );
    assert_eq!(
        ok(&mut p, br#"{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade. Please reconnect.","connId":"a4d3ae55"}"#, 0).0,
        Parsed::Notice { code: 64008, message: b"The connection will soon be closed for a service upgrade. Please reconnect." }
    );
    assert_eq!(
        ok(&mut p, br#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[],"bids":[]}]}"#, 0).0,
        Parsed::UnknownChannel { channel: b"books" }
    );
    // The subscribe request itself is not a server message.
    rejected(&mut p, &fixture("okx/subscribe_request.json"));
    rejected(&mut p, b"ping");
}

#[test]
fn subscribe_request_matches_the_documented_one() {
    let mut out = Vec::new();
    let arg = OkxArg {
        channel: "tickers",
        inst_id: Some("BTC-USDT"),
        ..OkxArg::default()
    };
    okx::subscribe(&mut out, Some(1512), &[arg]);
    let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let want: serde_json::Value =
        serde_json::from_slice(&pretty("okx/subscribe_request.json")).unwrap();
    assert_eq!(got, want);
    assert_eq!(okx::PING, b"ping");
}
