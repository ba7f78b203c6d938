//! Deribit parser on the documented messages (shared/fixtures/venues/deribit), field by field:
//! tickers, books with their sequence checks, index, mark prices, trades, quotes, heartbeats,
//! results and errors; the instrument list and option names; the request builders.

mod venues_support;

use keel_feeds::venues::deribit::{self, parse_instruments, parse_option_name};
use keel_feeds::venues::{DeribitParser, Parsed, ParserStats, Problem, STAGED_EVENTS, VenueParser};
use keel_feeds::{
    EventBody, InstrumentKind, Instruments, OptionRight, OptionTicker, Side, Venue, VenueGreeks,
};
use venues_support::*;

const D: Venue = Venue::Deribit;
const MS: u64 = 1_000_000;

fn deribit_registry() -> Instruments {
    registry(&[
        (D, "BTC-26JUN26-100000-C", InstrumentKind::Option),
        (D, "BTC-PERPETUAL", InstrumentKind::Perpetual),
        (D, "BTC-27DEC24", InstrumentKind::Future),
        (D, "btc_usd", InstrumentKind::Index),
        (D, "BTC-2JUN21-37000-P", InstrumentKind::Option),
        (D, "BTC-4JUN21-40500-P", InstrumentKind::Option),
    ])
}

fn option_ticker_events(reg: &Instruments, recv: u64) -> Vec<keel_feeds::MarketEvent> {
    let inst = id(reg, D, "BTC-26JUN26-100000-C");
    let ts = 1_752_057_345_721 * MS;
    vec![
        ev(
            D,
            inst,
            ts,
            recv,
            EventBody::OptionTicker(OptionTicker {
                bid: 0.2395,
                bid_size: 2.0,
                ask: 0.245,
                ask_size: 2.0,
                mark: 0.2425,
                mark_iv: 45.43 / 100.0,
                bid_iv: 44.54 / 100.0,
                ask_iv: 46.18 / 100.0,
                underlying: 116_086.34,
                index: 108_827.5,
            }),
        ),
        ev(
            D,
            inst,
            ts,
            recv,
            EventBody::VenueGreeks(VenueGreeks {
                delta: 0.71138,
                gamma: 1e-05,
                vega: 389.29255,
                theta: -25.13021,
                rho: 524.77921,
            }),
        ),
    ]
}

#[test]
fn option_ticker_becomes_option_ticker_and_greeks() {
    let reg = deribit_registry();
    let mut p = DeribitParser::new(&reg);
    for msg in [
        fixture("deribit/ticker_option.json"),
        pretty("deribit/ticker_option.json"),
    ] {
        let (parsed, evs) = ok(&mut p, &msg, 77);
        assert_eq!(parsed, Parsed::Events { count: 2 });
        assert_events(&evs, &option_ticker_events(&reg, 77));
    }
    assert_eq!(
        p.stats(),
        ParserStats {
            messages: 2,
            events: 4,
            ..ParserStats::default()
        }
    );
}

#[test]
fn perpetual_ticker_becomes_quote_and_mark_with_funding() {
    let reg = deribit_registry();
    let mut p = DeribitParser::new(&reg);
    let msg = fixture("deribit/ticker_perpetual.json");
    let (parsed, evs) = ok(&mut p, &msg, 5);
    assert_eq!(parsed, Parsed::Events { count: 2 });
    let inst = id(&reg, D, "BTC-PERPETUAL");
    let ts = 1_765_541_474_086 * MS;
    assert_events(
        &evs,
        &[
            ev(
                D,
                inst,
                ts,
                5,
                EventBody::Quote {
                    bid: 92_283.5,
                    bid_size: 117_660.0,
                    ask: 92_284.0,
                    ask_size: 186_520.0,
                },
            ),
            ev(
                D,
                inst,
                ts,
                5,
                EventBody::Mark {
                    mark: 92_281.78,
                    iv: f64::NAN,
                    index: 92_263.55,
                    funding_rate: 0.0,
                },
            ),
        ],
    );
}

#[test]
fn dated_future_ticker_has_no_funding_and_an_empty_side_is_nan() {
    let reg = deribit_registry();
    let mut p = DeribitParser::new(&reg);
    let msg = br#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-27DEC24.raw","data":{"timestamp":1700000000000,"instrument_name":"BTC-27DEC24","best_bid_price":0,"best_bid_amount":0,"best_ask_price":null,"best_ask_amount":0,"mark_price":37010.5,"index_price":36900.1}}}"#;
    let (_, evs) = ok(&mut p, msg, 0);
    let inst = id(&reg, D, "BTC-27DEC24");
    let ts = 1_700_000_000_000 * MS;
    let nan = f64::NAN;
    assert_events(
        &evs,
        &[
            ev(
                D,
                inst,
                ts,
                0,
                EventBody::Quote {
                    bid: nan,
                    bid_size: 0.0,
                    ask: nan,
                    ask_size: 0.0,
                },
            ),
            ev(
                D,
                inst,
                ts,
                0,
                EventBody::Mark {
                    mark: 37_010.5,
                    iv: nan,
                    index: 36_900.1,
                    funding_rate: nan,
                },
            ),
        ],
    );
}

#[test]
fn option_without_bid_or_greeks() {
    let reg = deribit_registry();
    let mut p = DeribitParser::new(&reg);
    let msg = br#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-26JUN26-100000-C.100ms","data":{"timestamp":1,"instrument_name":"BTC-26JUN26-100000-C","greeks":null,"best_bid_price":0,"best_bid_amount":0,"bid_iv":0,"best_ask_price":0.25,"best_ask_amount":3,"ask_iv":47.5,"mark_price":0.24,"mark_iv":46,"underlying_price":100,"index_price":99}}}"#;
    let (parsed, evs) = ok(&mut p, msg, 0);
    assert_eq!(parsed, Parsed::Events { count: 1 });
    let EventBody::OptionTicker(t) = evs[0].body else {
        panic!("{evs:?}")
    };
    assert!(t.bid.is_nan() && t.bid_iv.is_nan());
    assert_eq!((t.bid_size, t.ask, t.ask_size), (0.0, 0.25, 3.0));
    assert_eq!((t.ask_iv, t.mark_iv), (0.475, 0.46));
}

#[test]
fn key_order_does_not_matter() {
    // `params` before `method`, `data` before `channel`, keys of data shuffled.
    let reg = deribit_registry();
    let mut p = DeribitParser::new(&reg);
    let msg = br#"{"params":{"data":{"best_bid_amount":2,"greeks":{"rho":524.77921,"theta":-25.13021,"vega":389.29255,"gamma":1e-05,"delta":0.71138},"best_ask_amount":2,"best_ask_price":0.245,"underlying_price":116086.34,"bid_iv":44.54,"ask_iv":46.18,"mark_iv":45.43,"best_bid_price":0.2395,"mark_price":0.2425,"instrument_name":"BTC-26JUN26-100000-C","index_price":108827.5,"timestamp":1752057345721},"channel":"ticker.BTC-26JUN26-100000-C.100ms"},"method":"subscription","jsonrpc":"2.0"}"#;
    let (parsed, evs) = ok(&mut p, msg, 9);
    assert_eq!(parsed, Parsed::Events { count: 2 });
    assert_events(&evs, &option_ticker_events(&reg, 9));
}

#[test]
fn unknown_instruments_are_counted_not_errors() {
    let mut p = DeribitParser::new(&Instruments::new());
    let msg = fixture("deribit/ticker_option.json");
    let (parsed, evs) = ok(&mut p, &msg, 0);
    assert_eq!(parsed, Parsed::Events { count: 0 });
    assert!(evs.is_empty());
    assert_eq!(p.stats().unknown_instruments, 1);
    assert_eq!(p.stats().malformed, 0);
}

fn level(
    price: f64,
    size: f64,
    side: Side,
    snapshot: bool,
    first: bool,
    last: bool,
    seq: u64,
) -> EventBody {
    EventBody::BookLevel {
        price,
        size,
        side,
        snapshot,
        first,
        last,
        seq,
    }
}

#[test]
fn book_snapshot_then_change_then_gap_then_resnapshot() {
    let reg = deribit_registry();
    let inst = id(&reg, D, "BTC-PERPETUAL");
    let mut p = DeribitParser::new(&reg);
    let snap = fixture("deribit/book_snapshot.json");
    let change = fixture("deribit/book_change.json");

    let (parsed, evs) = ok(&mut p, &snap, 1);
    assert_eq!(parsed, Parsed::Events { count: 4 });
    let ts = 1_699_999_999_000 * MS;
    let seq = 123_456_789;
    assert_events(
        &evs,
        &[
            ev(
                D,
                inst,
                ts,
                1,
                level(42_500.0, 1000.0, Side::Buy, true, true, false, seq),
            ),
            ev(
                D,
                inst,
                ts,
                1,
                level(42_499.5, 500.0, Side::Buy, true, false, false, seq),
            ),
            ev(
                D,
                inst,
                ts,
                1,
                level(42_501.0, 800.0, Side::Sell, true, false, false, seq),
            ),
            ev(
                D,
                inst,
                ts,
                1,
                level(42_501.5, 600.0, Side::Sell, true, false, true, seq),
            ),
        ],
    );

    let (parsed, evs) = ok(&mut p, &change, 2);
    assert_eq!(parsed, Parsed::Events { count: 4 });
    let ts = 1_699_999_999_500 * MS;
    let seq = 123_456_790;
    assert_events(
        &evs,
        &[
            ev(
                D,
                inst,
                ts,
                2,
                level(42_500.0, 950.0, Side::Buy, false, true, false, seq),
            ),
            ev(
                D,
                inst,
                ts,
                2,
                level(42_498.5, 300.0, Side::Buy, false, false, false, seq),
            ),
            // "delete" removes the level: size 0.
            ev(
                D,
                inst,
                ts,
                2,
                level(42_501.0, 0.0, Side::Sell, false, false, false, seq),
            ),
            ev(
                D,
                inst,
                ts,
                2,
                level(42_501.5, 700.0, Side::Sell, false, false, true, seq),
            ),
        ],
    );

    // The same change again: prev_change_id 123456789 no longer follows 123456790.
    let (parsed, evs) = ok(&mut p, &change, 3);
    assert_eq!(parsed, Parsed::Gap { instrument: inst });
    assert_events(
        &evs,
        &[ev(
            D,
            inst,
            ts,
            3,
            EventBody::SequenceGap {
                expected: 123_456_790,
                got: 123_456_789,
            },
        )],
    );
    // Until a snapshot, changes are dropped (and no second gap is reported).
    let (parsed, evs) = ok(&mut p, &change, 4);
    assert_eq!(parsed, Parsed::BookSkipped { instrument: inst });
    assert!(evs.is_empty());
    // The new snapshot restores the book, and the change that follows it applies.
    assert_eq!(ok(&mut p, &snap, 5).0, Parsed::Events { count: 4 });
    assert_eq!(ok(&mut p, &change, 6).0, Parsed::Events { count: 4 });
    let s = p.stats();
    assert_eq!((s.gaps, s.book_skipped, s.malformed), (1, 1, 0));
}

#[test]
fn a_change_before_any_snapshot_is_a_gap() {
    let reg = deribit_registry();
    let inst = id(&reg, D, "BTC-PERPETUAL");
    let mut p = DeribitParser::new(&reg);
    let msg = fixture("deribit/book_change.json");
    let (parsed, evs) = ok(&mut p, &msg, 0);
    assert_eq!(parsed, Parsed::Gap { instrument: inst });
    assert_eq!(
        evs[0].body,
        EventBody::SequenceGap {
            expected: 0,
            got: 123_456_789
        }
    );
    // After a reconnection every book waits for its snapshot again.
    ok(&mut p, &fixture("deribit/book_snapshot.json"), 0);
    p.reset_books();
    assert!(matches!(
        ok(&mut p, &fixture("deribit/book_change.json"), 0).0,
        Parsed::Gap { .. }
    ));
}

fn book_msg(
    kind: Option<&str>,
    change: u64,
    prev: Option<u64>,
    bids: &[(f64, f64)],
    asks: &[(f64, f64)],
) -> Vec<u8> {
    let side = |levels: &[(f64, f64)]| {
        levels
            .iter()
            .map(|(p, s)| format!("[\"new\",{p:?},{s:?}]"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let kind = kind
        .map(|k| format!("\"type\":\"{k}\","))
        .unwrap_or_default();
    let prev = prev.map_or("null".to_string(), |p| p.to_string());
    format!(
        r#"{{"jsonrpc":"2.0","method":"subscription","params":{{"channel":"book.BTC-PERPETUAL.100ms","data":{{{kind}"instrument_name":"BTC-PERPETUAL","timestamp":1700000000000,"change_id":{change},"prev_change_id":{prev},"bids":[{}],"asks":[{}]}}}}}}"#,
        side(bids),
        side(asks)
    )
    .into_bytes()
}

#[test]
fn large_snapshot_is_emitted_whole_and_empty_snapshot_clears() {
    let reg = deribit_registry();
    let mut p = DeribitParser::new(&reg);
    let bids: Vec<(f64, f64)> = (0..150)
        .map(|i| (50_000.0 - i as f64 * 0.5, 10.0 + i as f64))
        .collect();
    let asks: Vec<(f64, f64)> = (0..90).map(|i| (50_001.0 + i as f64 * 0.5, 1.0)).collect();
    assert!(bids.len() + asks.len() > STAGED_EVENTS);
    let msg = book_msg(Some("snapshot"), 10, None, &bids, &asks);
    let (parsed, evs) = ok(&mut p, &msg, 0);
    assert_eq!(parsed, Parsed::Events { count: 240 });
    assert_eq!(evs.len(), 240);
    for (i, e) in evs.iter().enumerate() {
        let EventBody::BookLevel {
            price,
            size,
            side,
            snapshot,
            first,
            last,
            seq,
        } = e.body
        else {
            panic!("{e:?}")
        };
        let (want_p, want_s, want_side) = if i < 150 {
            (bids[i].0, bids[i].1, Side::Buy)
        } else {
            (asks[i - 150].0, asks[i - 150].1, Side::Sell)
        };
        assert_eq!(
            (price, size, side, snapshot, seq),
            (want_p, want_s, want_side, true, 10)
        );
        assert_eq!((first, last), (i == 0, i == 239), "level {i}");
    }
    // An empty snapshot: one marker level, price NaN, size 0, first and last.
    let empty = book_msg(Some("snapshot"), 11, None, &[], &[]);
    let (parsed, evs) = ok(&mut p, &empty, 0);
    assert_eq!(parsed, Parsed::Events { count: 1 });
    let EventBody::BookLevel {
        price,
        size,
        snapshot,
        first,
        last,
        seq,
        ..
    } = evs[0].body
    else {
        panic!()
    };
    assert!(price.is_nan());
    assert_eq!(
        (size, snapshot, first, last, seq),
        (0.0, true, true, true, 11)
    );
    // An empty change applies (sequence moves on) and emits nothing.
    assert_eq!(
        ok(&mut p, &book_msg(Some("change"), 12, Some(11), &[], &[]), 0).0,
        Parsed::Events { count: 0 }
    );
    assert_eq!(
        ok(
            &mut p,
            &book_msg(Some("change"), 13, Some(12), &[(1.0, 2.0)], &[]),
            0
        )
        .0,
        Parsed::Events { count: 1 }
    );
}

#[test]
fn a_bad_level_anywhere_rejects_the_whole_book_message_and_keeps_the_sequence() {
    let reg = deribit_registry();
    let mut p = DeribitParser::new(&reg);
    ok(
        &mut p,
        &book_msg(Some("snapshot"), 20, None, &[(1.0, 1.0)], &[]),
        0,
    );
    let bids: Vec<(f64, f64)> = (0..100).map(|i| (100.0 - i as f64, 1.0)).collect();
    let good = String::from_utf8(book_msg(
        Some("change"),
        21,
        Some(20),
        &bids,
        &[(200.0, 1.0)],
    ))
    .unwrap();
    // The last level (past the staging buffer) is broken: nothing of the message is emitted.
    let bad = good.replace("[\"new\",200.0,1.0]", "[\"new\",200.0,\"x\"]");
    assert_ne!(bad, good);
    rejected(&mut p, bad.as_bytes());
    let bad_action = good.replace("[\"new\",200.0,1.0]", "[\"moved\",200.0,1.0]");
    rejected(&mut p, bad_action.as_bytes());
    // The sequence is untouched: the good message still follows change 20.
    assert_eq!(
        ok(&mut p, good.as_bytes(), 0).0,
        Parsed::Events { count: 101 }
    );
}

#[test]
fn grouped_book_without_type_is_a_snapshot() {
    let reg = deribit_registry();
    let mut p = DeribitParser::new(&reg);
    let msg = br#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.none.10.100ms","data":{"timestamp":1,"instrument_name":"BTC-PERPETUAL","change_id":5,"bids":[[42500.0,10.0]],"asks":[[42501.0,3.0]]}}}"#;
    let (_, evs) = ok(&mut p, msg, 0);
    assert_eq!(evs.len(), 2);
    assert!(matches!(
        evs[1].body,
        EventBody::BookLevel {
            price: 42_501.0,
            size: 3.0,
            side: Side::Sell,
            snapshot: true,
            first: false,
            last: true,
            seq: 5
        }
    ));
}

#[test]
fn price_index_mark_prices_trades_and_quotes() {
    let reg = deribit_registry();
    let mut p = DeribitParser::new(&reg);

    let msg = fixture("deribit/price_index.json");

    let (parsed, evs) = ok(&mut p, &msg, 3);
    assert_eq!(parsed, Parsed::Events { count: 1 });
    assert_events(
        &evs,
        &[ev(
            D,
            id(&reg, D, "btc_usd"),
            1_535_098_298_227 * MS,
            3,
            EventBody::Index { price: 6521.17 },
        )],
    );

    // Two of the three options are known; the third is counted.
    let before = p.stats();
    let msg = fixture("deribit/markprice_options.json");
    let (parsed, evs) = ok(&mut p, &msg, 3);
    assert_eq!(parsed, Parsed::Events { count: 2 });
    let ts = 1_622_470_378_005 * MS;
    let mark = |m| EventBody::Mark {
        mark: m,
        iv: 0.9,
        index: f64::NAN,
        funding_rate: f64::NAN,
    };
    assert_events(
        &evs,
        &[
            ev(D, id(&reg, D, "BTC-2JUN21-37000-P"), ts, 3, mark(0.0333)),
            ev(D, id(&reg, D, "BTC-4JUN21-40500-P"), ts, 3, mark(0.117)),
        ],
    );
    assert_eq!(delta(p.stats(), before).unknown_instruments, 1);

    let msg = fixture("deribit/trades.json");

    let (_, evs) = ok(&mut p, &msg, 3);
    assert_events(
        &evs,
        &[ev(
            D,
            id(&reg, D, "BTC-PERPETUAL"),
            1_765_531_356_452 * MS,
            3,
            EventBody::Trade {
                price: 92_294.5,
                qty: 10.0,
                side: Side::Sell,
                trade_id: 403_691_824,
            },
        )],
    );

    let msg = fixture("deribit/quote.json");

    let (_, evs) = ok(&mut p, &msg, 3);
    assert_events(
        &evs,
        &[ev(
            D,
            id(&reg, D, "BTC-PERPETUAL"),
            1_765_541_767_174 * MS,
            3,
            EventBody::Quote {
                bid: 92_288.0,
                bid_size: 133_440.0,
                ask: 92_288.5,
                ask_size: 99_470.0,
            },
        )],
    );
}

#[test]
fn many_mark_prices_overflow_the_staging_buffer_and_stay_all_or_nothing() {
    let mut reg = deribit_registry();
    let names: Vec<String> = (0..200)
        .map(|k| format!("BTC-26JUN26-{}-P", 10_000 + 500 * k))
        .collect();
    for n in &names {
        reg.insert(inst(D, n, InstrumentKind::Option));
    }
    let mut p = DeribitParser::new(&reg);
    let entries: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                r#"{{"timestamp":1,"mark_price":{}.5,"iv":0.5,"instrument_name":"{n}"}}"#,
                i
            )
        })
        .collect();
    let msg = format!(
        r#"{{"jsonrpc":"2.0","method":"subscription","params":{{"channel":"markprice.options.btc_usd","data":[{}]}}}}"#,
        entries.join(",")
    );
    let (parsed, evs) = ok(&mut p, msg.as_bytes(), 0);
    assert_eq!(parsed, Parsed::Events { count: 200 });
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e.instrument, id(&reg, D, &names[i]));
        assert!(matches!(e.body, EventBody::Mark { mark, .. } if mark == i as f64 + 0.5));
    }
    // The last entry broken: nothing at all is emitted.
    let bad = msg.replacen(
        "\"iv\":0.5,\"instrument_name\":\"BTC-26JUN26-109500-P\"",
        "\"iv\":true,\"instrument_name\":\"BTC-26JUN26-109500-P\"",
        1,
    );
    assert_ne!(bad, msg);
    rejected(&mut p, bad.as_bytes());
}

#[test]
fn heartbeats_results_and_errors() {
    let reg = deribit_registry();
    let mut p = DeribitParser::new(&reg);
    assert_eq!(
        ok(&mut p, &fixture("deribit/test_request.json"), 0).0,
        Parsed::HeartbeatRequest
    );
    assert_eq!(
        ok(
            &mut p,
            br#"{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}"#,
            0
        )
        .0,
        Parsed::Heartbeat
    );
    let sub = fixture("deribit/subscribe_response.json");
    assert_eq!(
        ok(&mut p, &sub, 0).0,
        Parsed::Ack {
            id: Some(42),
            result: br#"["ticker.BTC-27DEC24-100000-C.100ms","book.BTC-PERPETUAL.100ms","deribit_price_index.btc_usd"]"#
        }
    );
    assert_eq!(
        ok(&mut p, &fixture("deribit/error_response.json"), 0).0,
        Parsed::Error {
            id: Some(1),
            code: 10028,
            message: b"too_many_requests"
        }
    );
    assert!(matches!(
        ok(&mut p, &fixture("deribit/buy_response.json"), 0).0,
        Parsed::Ack { id: Some(3), .. }
    ));
    assert!(matches!(
        ok(&mut p, &fixture("deribit/get_instrument_option.json"), 0).0,
        Parsed::Ack { id: Some(1), .. }
    ));
    // Requests (what a client sends) are not server messages: reported by method.
    for (file, method) in [
        ("deribit/public_test.json", &b"public/test"[..]),
        ("deribit/set_heartbeat.json", b"public/set_heartbeat"),
        ("deribit/subscribe_request.json", b"public/subscribe"),
        ("deribit/buy_request.json", b"private/buy"),
        ("deribit/auth_client_credentials.json", b"public/auth"),
    ] {
        assert_eq!(
            ok(&mut p, &fixture(file), 0).0,
            Parsed::UnknownChannel { channel: method },
            "{file}"
        );
    }
    // A subscription on a channel this parser does not handle.
    assert_eq!(
        ok(&mut p, br#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"user.orders.any.any.raw","data":[{"x":1}]}}"#, 0).0,
        Parsed::UnknownChannel { channel: b"user.orders.any.any.raw" }
    );
    let s = p.stats();
    assert_eq!(
        (s.control, s.unknown_channels, s.malformed, s.events),
        (6, 6, 0, 0)
    );
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{e}: {}", bytes.escape_ascii()))
}

#[test]
fn requests_match_the_documented_ones() {
    let mut out = Vec::new();
    deribit::subscribe(
        &mut out,
        42,
        &[
            "ticker.BTC-27DEC24-100000-C.100ms",
            "book.BTC-PERPETUAL.100ms",
            "deribit_price_index.btc_usd",
        ],
    );
    assert_eq!(json(&out), json(&pretty("deribit/subscribe_request.json")));
    out.clear();
    deribit::set_heartbeat(&mut out, 9098, 30);
    assert_eq!(json(&out), json(&pretty("deribit/set_heartbeat.json")));
    out.clear();
    deribit::test_reply(&mut out, 8212);
    assert_eq!(json(&out), json(&pretty("deribit/public_test.json")));
    // Appends: two requests in one buffer.
    out.clear();
    deribit::test_reply(&mut out, 1);
    let first = out.len();
    deribit::unsubscribe(&mut out, 2, &["book.BTC-PERPETUAL.100ms"]);
    assert_eq!(json(&out[first..])["method"], "public/unsubscribe");
    // Channel names are escaped.
    out.clear();
    deribit::subscribe(&mut out, 1, &["a\"b"]);
    assert_eq!(json(&out)["params"]["channels"][0], "a\"b");
}

#[test]
fn instrument_list_and_names() {
    let list = parse_instruments(&pretty("deribit/get_instrument_option.json")).unwrap();
    assert_eq!(list.len(), 1);
    let i = &list[0];
    assert_eq!(i.venue, D);
    assert_eq!(i.name, "BTC-27DEC24-100000-C");
    assert_eq!(i.kind, InstrumentKind::Option);
    assert_eq!(
        (i.strike, i.expiry_ms, i.right),
        (100_000.0, 1_735_286_400_000, Some(OptionRight::Call))
    );
    assert_eq!(
        (
            i.base_currency.as_str(),
            i.quote_currency.as_str(),
            i.settlement_currency.as_str()
        ),
        ("BTC", "BTC", "BTC")
    );
    assert!(i.inverse);
    assert_eq!(
        (i.contract_size, i.tick_size, i.min_size),
        (1.0, 0.0001, 0.1)
    );
    // The name alone gives the same expiry, strike and right.
    let n = parse_option_name(&i.name).unwrap();
    assert_eq!(
        (n.expiry_ms, n.strike, n.right, n.base),
        (i.expiry_ms, i.strike, OptionRight::Call, "BTC")
    );

    // A get_instruments array: option, linear option, perpetual, future, spot, and a combo
    // (left out).
    let msg = br#"{"jsonrpc":"2.0","id":7,"result":[
      {"instrument_name":"BTC-27DEC24-100000-P","kind":"option","option_type":"put","strike":100000.0,"expiration_timestamp":1735286400000,"instrument_type":"reversed","base_currency":"BTC","quote_currency":"BTC","settlement_currency":"BTC","counter_currency":"USD","contract_size":1.0,"tick_size":0.0001,"min_trade_amount":0.1,"settlement_period":"month"},
      {"instrument_name":"XRP_USDC-30JUN23-0d625-C","kind":"option","option_type":"call","strike":0.625,"expiration_timestamp":1688112000000,"instrument_type":"linear","base_currency":"XRP","quote_currency":"USDC","settlement_currency":"USDC","contract_size":1000.0,"tick_size":0.0001,"min_trade_amount":1.0,"settlement_period":"month"},
      {"instrument_name":"BTC-PERPETUAL","kind":"future","settlement_period":"perpetual","expiration_timestamp":32503708800000,"instrument_type":"reversed","base_currency":"BTC","quote_currency":"USD","settlement_currency":"BTC","contract_size":10.0,"tick_size":0.5,"min_trade_amount":10.0,"option_type":null,"strike":null},
      {"instrument_name":"BTC-27DEC24","kind":"future","settlement_period":"month","expiration_timestamp":1735286400000,"instrument_type":"reversed","base_currency":"BTC","quote_currency":"USD","settlement_currency":"BTC","contract_size":10.0,"tick_size":2.5,"min_trade_amount":10.0},
      {"instrument_name":"BTC_USDC","kind":"spot","expiration_timestamp":32503708800000,"instrument_type":"linear","base_currency":"BTC","quote_currency":"USDC","contract_size":0.0001,"tick_size":1.0,"min_trade_amount":0.0001},
      {"instrument_name":"BTC-FS-27DEC24_PERP","kind":"future_combo","settlement_period":"month","base_currency":"BTC","quote_currency":"USD"}
    ]}"#;
    let list = parse_instruments(msg).unwrap();
    let names: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "BTC-27DEC24-100000-P",
            "XRP_USDC-30JUN23-0d625-C",
            "BTC-PERPETUAL",
            "BTC-27DEC24",
            "BTC_USDC"
        ]
    );
    assert_eq!(list[0].right, Some(OptionRight::Put));
    assert!(!list[1].inverse && list[1].quote_currency == "USDC" && list[1].strike == 0.625);
    assert_eq!(
        (list[2].kind, list[2].expiry_ms, list[2].right),
        (InstrumentKind::Perpetual, 0, None)
    );
    assert!(list[2].strike.is_nan());
    assert_eq!(
        (list[3].kind, list[3].expiry_ms),
        (InstrumentKind::Future, 1_735_286_400_000)
    );
    assert_eq!(
        (
            list[4].kind,
            list[4].expiry_ms,
            list[4].settlement_currency.as_str()
        ),
        (InstrumentKind::Spot, 0, "USDC")
    );
    // Registered, they drive a parser.
    let mut reg = Instruments::new();
    for i in list {
        reg.insert(i);
    }
    assert_eq!(reg.len(), 5);

    // An error response, and a result that is not a list.
    let err = parse_instruments(&fixture("deribit/error_response.json")).unwrap_err();
    assert_eq!(err.problem, Problem::VenueError { code: 10028 });
    assert!(
        parse_instruments(br#"{"jsonrpc":"2.0","id":1,"result":[{"kind":"option"}]}"#).is_err()
    );
    assert!(parse_instruments(br#"{"jsonrpc":"2.0","id":1,"result":[{"instrument_name":"X","kind":"option","base_currency":"BTC","quote_currency":"BTC"}]}"#).is_err());
    assert!(parse_instruments(br#"{"jsonrpc":"2.0","id":1}"#).is_err());
}

#[test]
fn parses_through_the_trait_object() {
    let reg = deribit_registry();
    let mut p: Box<dyn VenueParser> = Box::new(DeribitParser::new(&reg));
    assert_eq!(p.venue(), D);
    let msg = fixture("deribit/ticker_option.json");
    let (parsed, evs) = ok(p.as_mut(), &msg, 1);
    assert_eq!((parsed, evs.len()), (Parsed::Events { count: 2 }, 2));
}
