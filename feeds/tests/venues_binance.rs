//! Binance parser on the documented stream messages (shared/fixtures/venues/binance) and on
//! markPrice messages written from Binance's documentation: quotes, trades, marks, depth
//! updates with Binance's sequencing procedure (spot and USDⓈ-M futures), the combined-stream
//! wrapper, responses and errors; the SUBSCRIBE request.

mod venues_support;

use keel_feeds::venues::{BinanceMarket, BinanceParser, Parsed, Problem, binance};
use keel_feeds::{EventBody, InstrumentKind, Instruments, Side, Venue};
use venues_support::*;

const B: Venue = Venue::Binance;
const MS: u64 = 1_000_000;

fn spot_registry() -> Instruments {
    registry(&[
        (B, "BNBUSDT", InstrumentKind::Spot),
        (B, "BTCUSDT", InstrumentKind::Spot),
        (B, "BNBBTC", InstrumentKind::Spot),
    ])
}

fn futures_registry() -> Instruments {
    registry(&[
        (B, "BNBUSDT", InstrumentKind::Perpetual),
        (B, "BTCUSDT", InstrumentKind::Perpetual),
        (B, "ETHUSDT_250328", InstrumentKind::Future),
    ])
}

fn quote() -> EventBody {
    EventBody::Quote {
        bid: 25.3519,
        bid_size: 31.21,
        ask: 25.3652,
        ask_size: 40.66,
    }
}

#[test]
fn spot_and_futures_book_tickers() {
    let reg = spot_registry();
    let mut spot = BinanceParser::new(BinanceMarket::Spot, &reg);
    let msg = fixture("binance/spot_book_ticker.json");
    let (parsed, evs) = ok(&mut spot, &msg, 4);
    assert_eq!(parsed, Parsed::Events { count: 1 });
    // Spot bookTicker carries no time: exchange_ts_ns 0.
    assert_events(&evs, &[ev(B, id(&reg, B, "BNBUSDT"), 0, 4, quote())]);

    let msg = fixture("binance/combined_book_ticker.json");
    let (_, evs) = ok(&mut spot, &msg, 4);
    assert_events(&evs, &[ev(B, id(&reg, B, "BTCUSDT"), 0, 4, quote())]);

    let freg = futures_registry();
    let mut fut = BinanceParser::new(BinanceMarket::UsdmFutures, &freg);
    let msg = fixture("binance/futures_book_ticker.json");
    let (_, evs) = ok(&mut fut, &msg, 4);
    // Futures: the transaction time T.
    assert_events(
        &evs,
        &[ev(
            B,
            id(&freg, B, "BNBUSDT"),
            1_568_014_460_891 * MS,
            4,
            quote(),
        )],
    );

    // A market's parser knows only that market's instruments.
    let msg = fixture("binance/futures_book_ticker.json");
    let (parsed, _) = ok(&mut spot, &msg, 0);
    assert_eq!(parsed, Parsed::Events { count: 1 });
    let mut fut_on_spot_reg = BinanceParser::new(BinanceMarket::UsdmFutures, &reg);
    let msg = fixture("binance/futures_book_ticker.json");
    assert_eq!(
        ok(&mut fut_on_spot_reg, &msg, 0).0,
        Parsed::Events { count: 0 }
    );
    assert_eq!(fut_on_spot_reg.stats().unknown_instruments, 1);
}

#[test]
fn empty_book_side_is_nan() {
    let reg = spot_registry();
    let mut p = BinanceParser::new(BinanceMarket::Spot, &reg);
    let msg = br#"{"u":1,"s":"BNBUSDT","b":"0.00000000","B":"0.00000000","a":"25.36520000","A":"40.66000000"}"#;
    let (_, evs) = ok(&mut p, msg, 0);
    let EventBody::Quote {
        bid, bid_size, ask, ..
    } = evs[0].body
    else {
        panic!()
    };
    assert!(bid.is_nan());
    assert_eq!((bid_size, ask), (0.0, 25.3652));
}

#[test]
fn agg_trade() {
    let reg = futures_registry();
    let mut p = BinanceParser::new(BinanceMarket::UsdmFutures, &reg);
    let msg = fixture("binance/futures_agg_trade.json");
    let (_, evs) = ok(&mut p, &msg, 0);
    assert_events(
        &evs,
        &[ev(
            B,
            id(&reg, B, "BTCUSDT"),
            1_712_861_210_592 * MS,
            0,
            EventBody::Trade {
                price: 70_206.3,
                qty: 0.052,
                // m false: the buyer was the taker.
                side: Side::Buy,
                trade_id: 2_125_892_846,
            },
        )],
    );
    let maker = String::from_utf8(msg)
        .unwrap()
        .replace("\"m\":false", "\"m\":true");
    let (_, evs) = ok(&mut p, maker.as_bytes(), 0);
    assert!(matches!(
        evs[0].body,
        EventBody::Trade {
            side: Side::Sell,
            ..
        }
    ));
}

/// Binance's documented `markPriceUpdate` (USDⓈ-M futures, `<symbol>@markPrice`).
const MARK_PRICE: &[u8] = br#"{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000","i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}"#;

#[test]
fn mark_price_single_array_and_combined() {
    let reg = futures_registry();
    let btc = id(&reg, B, "BTCUSDT");
    let mut p = BinanceParser::new(BinanceMarket::UsdmFutures, &reg);
    let mark = EventBody::Mark {
        mark: 11_794.15,
        iv: f64::NAN,
        index: 11_784.626_590_91,
        funding_rate: 0.000_381_67,
    };
    // The event time E, not T (the next funding time).
    let want = ev(B, btc, 1_562_305_380_000 * MS, 2, mark);
    let (parsed, evs) = ok(&mut p, MARK_PRICE, 2);
    assert_eq!(parsed, Parsed::Events { count: 1 });
    assert_events(&evs, &[want]);

    // `!markPrice@arr`: an array, raw or combined; the unknown symbol is counted.
    let eth = br#"{"e":"markPriceUpdate","E":1562305380000,"s":"ETHUSDT","p":"3000.1","i":"2999.9","P":"3000","r":"","T":1562306400000}"#;
    let arr = [b"[".as_slice(), MARK_PRICE, b",", eth, b"]"].concat();
    let before = p.stats();
    let (parsed, evs) = ok(&mut p, &arr, 2);
    assert_eq!(parsed, Parsed::Events { count: 1 });
    assert_events(&evs, &[want]);
    assert_eq!(delta(p.stats(), before).unknown_instruments, 1);
    let combined = [
        b"{\"stream\":\"!markPrice@arr\",\"data\":".as_slice(),
        &arr,
        b"}",
    ]
    .concat();
    let (_, evs) = ok(&mut p, &combined, 2);
    assert_events(&evs, &[want]);
    // A delivery contract's empty funding rate is NaN.
    let mut freg = futures_registry();
    freg.insert(inst(B, "ETHUSDT", InstrumentKind::Future));
    let mut p = BinanceParser::new(BinanceMarket::UsdmFutures, &freg);
    let (_, evs) = ok(&mut p, eth, 0);
    assert!(
        matches!(evs[0].body, EventBody::Mark { mark: 3000.1, funding_rate, .. } if funding_rate.is_nan())
    );
}

fn depth_levels(evs: &[keel_feeds::MarketEvent]) -> Vec<(f64, f64, Side, bool, bool, bool, u64)> {
    evs.iter()
        .map(|e| match e.body {
            EventBody::BookLevel {
                price,
                size,
                side,
                snapshot,
                first,
                last,
                seq,
            } => (price, size, side, snapshot, first, last, seq),
            other => panic!("{other:?}"),
        })
        .collect()
}

fn futures_depth(first: u64, last: u64, prev: u64) -> Vec<u8> {
    format!(
        r#"{{"e":"depthUpdate","E":123456789,"T":123456788,"s":"BTCUSDT","U":{first},"u":{last},"pu":{prev},"b":[["0.0024","10"]],"a":[["0.0026","100"]]}}"#
    )
    .into_bytes()
}

#[test]
fn futures_depth_follows_pu() {
    let reg = futures_registry();
    let btc = id(&reg, B, "BTCUSDT");
    let mut p = BinanceParser::new(BinanceMarket::UsdmFutures, &reg);
    let update = fixture("binance/futures_depth_update.json");
    // No snapshot yet: a gap, so that the session fetches one.
    let (parsed, evs) = ok(&mut p, &update, 1);
    assert_eq!(parsed, Parsed::Gap { instrument: btc });
    assert_events(
        &evs,
        &[ev(
            B,
            btc,
            123_456_788 * MS,
            1,
            EventBody::SequenceGap {
                expected: 0,
                got: 149,
            },
        )],
    );
    assert_eq!(
        ok(&mut p, &update, 1).0,
        Parsed::BookSkipped { instrument: btc }
    );

    // The REST snapshot: lastUpdateId 158, within the update's [U 157, u 160].
    let snapshot = br#"{"lastUpdateId":158,"E":1589436922972,"T":1589436922959,"bids":[["0.0023","5"],["0.0022","7"]],"asks":[["0.0027","3"]]}"#;
    let mut evs = Vec::new();
    let parsed = p
        .apply_depth_snapshot(b"BTCUSDT", snapshot, 2, &mut |e| evs.push(e))
        .unwrap();
    assert_eq!(parsed, Parsed::Events { count: 3 });
    assert_eq!(
        depth_levels(&evs),
        [
            (0.0023, 5.0, Side::Buy, true, true, false, 158),
            (0.0022, 7.0, Side::Buy, true, false, false, 158),
            (0.0027, 3.0, Side::Sell, true, false, true, 158),
        ]
    );
    assert_eq!(evs[0].exchange_ts_ns, 1_589_436_922_959 * MS);
    // Older than the snapshot: dropped.
    assert_eq!(
        ok(&mut p, &futures_depth(150, 157, 149), 3).0,
        Parsed::BookSkipped { instrument: btc }
    );
    // The documented update straddles it and applies.
    let (parsed, evs) = ok(&mut p, &update, 3);
    assert_eq!(parsed, Parsed::Events { count: 2 });
    assert_events(
        &evs,
        &[
            ev(
                B,
                btc,
                123_456_788 * MS,
                3,
                EventBody::BookLevel {
                    price: 0.0024,
                    size: 10.0,
                    side: Side::Buy,
                    snapshot: false,
                    first: true,
                    last: false,
                    seq: 160,
                },
            ),
            ev(
                B,
                btc,
                123_456_788 * MS,
                3,
                EventBody::BookLevel {
                    price: 0.0026,
                    size: 100.0,
                    side: Side::Sell,
                    snapshot: false,
                    first: false,
                    last: true,
                    seq: 160,
                },
            ),
        ],
    );
    // Then pu must equal the last u.
    assert_eq!(
        ok(&mut p, &futures_depth(161, 170, 160), 4).0,
        Parsed::Events { count: 2 }
    );
    let gap = futures_depth(175, 180, 172);
    let (parsed, evs) = ok(&mut p, &gap, 5);
    assert_eq!(parsed, Parsed::Gap { instrument: btc });
    assert_eq!(
        evs[0].body,
        EventBody::SequenceGap {
            expected: 170,
            got: 172
        }
    );
    // An update missing pu is malformed on futures.
    let no_pu = br#"{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT","U":1,"u":2,"b":[],"a":[]}"#;
    assert_eq!(rejected(&mut p, no_pu).problem, Problem::Missing("pu"));
}

#[test]
fn spot_depth_follows_first_id() {
    let reg = spot_registry();
    let bnbbtc = id(&reg, B, "BNBBTC");
    let mut p = BinanceParser::new(BinanceMarket::Spot, &reg);
    let update = fixture("binance/spot_depth_update.json");
    let (parsed, evs) = ok(&mut p, &update, 0);
    assert_eq!(parsed, Parsed::Gap { instrument: bnbbtc });
    // Spot updates say they follow U - 1.
    assert_eq!(
        evs[0].body,
        EventBody::SequenceGap {
            expected: 0,
            got: 156
        }
    );

    let mut n = 0;
    p.apply_depth_snapshot(
        b"BNBBTC",
        br#"{"lastUpdateId":156,"bids":[],"asks":[]}"#,
        0,
        &mut |_| n += 1,
    )
    .unwrap();
    // An empty snapshot still clears the book: one marker level.
    assert_eq!(n, 1);
    let spot = |first: u64, last: u64| {
        format!(r#"{{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":{first},"u":{last},"b":[["0.0024","10"]],"a":[]}}"#).into_bytes()
    };
    assert_eq!(
        ok(&mut p, &spot(150, 156), 0).0,
        Parsed::BookSkipped { instrument: bnbbtc }
    );
    let (parsed, evs) = ok(&mut p, &update, 0);
    assert_eq!(parsed, Parsed::Events { count: 2 });
    // No T on spot: the event time E.
    assert_eq!(evs[0].exchange_ts_ns, 1_672_515_782_136 * MS);
    assert_eq!(
        depth_levels(&evs),
        [
            (0.0024, 10.0, Side::Buy, false, true, false, 160),
            (0.0026, 100.0, Side::Sell, false, false, true, 160),
        ]
    );
    assert_eq!(
        ok(&mut p, &spot(161, 165), 0).0,
        Parsed::Events { count: 1 }
    );
    let gap = spot(167, 170);
    let (parsed, evs) = ok(&mut p, &gap, 0);
    assert_eq!(parsed, Parsed::Gap { instrument: bnbbtc });
    assert_eq!(
        evs[0].body,
        EventBody::SequenceGap {
            expected: 165,
            got: 166
        }
    );
    // A snapshot too new for the next update is a gap as well.
    p.apply_depth_snapshot(
        b"BNBBTC",
        br#"{"lastUpdateId":300,"bids":[],"asks":[]}"#,
        0,
        &mut |_| {},
    )
    .unwrap();
    assert!(matches!(
        ok(&mut p, &spot(302, 310), 0).0,
        Parsed::Gap { .. }
    ));
    // Unknown symbol: counted, nothing emitted.
    let before = p.stats();
    assert_eq!(
        p.apply_depth_snapshot(
            b"XYZ",
            br#"{"lastUpdateId":1,"bids":[],"asks":[]}"#,
            0,
            &mut |_| panic!()
        ),
        Ok(Parsed::Events { count: 0 })
    );
    assert_eq!(delta(p.stats(), before).unknown_instruments, 1);
    // Reconnection: every book starts over.
    p.reset_books();
    assert!(matches!(
        ok(&mut p, &spot(171, 172), 0).0,
        Parsed::Gap { .. }
    ));
}

#[test]
fn responses_errors_and_other_streams() {
    let reg = spot_registry();
    let mut p = BinanceParser::new(BinanceMarket::Spot, &reg);
    assert_eq!(
        ok(&mut p, br#"{"result":null,"id":1}"#, 0).0,
        Parsed::Ack {
            id: Some(1),
            result: b"null"
        }
    );
    assert_eq!(
        ok(&mut p, br#"{"result":["btcusdt@aggTrade"],"id":3}"#, 0).0,
        Parsed::Ack {
            id: Some(3),
            result: br#"["btcusdt@aggTrade"]"#
        }
    );
    assert_eq!(
        ok(&mut p, br#"{"code":0,"msg":"Unknown property","id":2}"#, 0).0,
        Parsed::Error {
            id: Some(2),
            code: 0,
            message: b"Unknown property"
        }
    );
    assert_eq!(
        ok(
            &mut p,
            br#"{"error":{"code":2,"msg":"Invalid request: unknown variable"},"id":null}"#,
            0
        )
        .0,
        Parsed::Error {
            id: None,
            code: 2,
            message: b"Invalid request: unknown variable"
        }
    );
    // The WebSocket API's order acknowledgement (string id) is a result too.
    let msg = fixture("binance/ws_order_place_ack.json");
    assert!(matches!(
        ok(&mut p, &msg, 0).0,
        Parsed::Ack { id: None, .. }
    ));
    // Streams this parser does not handle, raw or combined.
    assert_eq!(
        ok(
            &mut p,
            br#"{"e":"kline","E":1,"s":"BNBUSDT","k":{"t":1}}"#,
            0
        )
        .0,
        Parsed::UnknownChannel { channel: b"kline" }
    );
    assert_eq!(
        ok(
            &mut p,
            br#"{"stream":"bnbusdt@kline_1m","data":{"e":"kline","E":1,"s":"BNBUSDT","k":{}}}"#,
            0
        )
        .0,
        Parsed::UnknownChannel {
            channel: b"bnbusdt@kline_1m"
        }
    );
    // Neither an event nor a response.
    assert_eq!(
        rejected(&mut p, br#"{"x":1}"#).problem,
        Problem::Missing("e")
    );
    let msg = fixture("binance/futures_order_response.json");
    rejected(&mut p, &msg);
}

#[test]
fn subscribe_request_matches_the_documented_one() {
    let mut out = Vec::new();
    binance::subscribe(&mut out, 1, &["btcusdt@aggTrade", "btcusdt@depth"]);
    let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let want: serde_json::Value =
        serde_json::from_slice(&pretty("binance/subscribe_request.json")).unwrap();
    assert_eq!(got, want);
    out.clear();
    binance::unsubscribe(&mut out, 9, &["btcusdt@bookTicker"]);
    assert_eq!(
        out,
        br#"{"method":"UNSUBSCRIBE","params":["btcusdt@bookTicker"],"id":9}"#
    );
}
