//! Malformed input for every venue parser: each fixture message cut at every byte, values of
//! the wrong type, missing fields, numbers out of range, deep nesting, garbage, and seeded
//! random mutations of every fixture through every parser. Nothing may panic; a rejected
//! message emits nothing and is counted as malformed.

mod venues_support;

use keel_feeds::venues::json::{Expected, JsonErrorKind};
use keel_feeds::venues::{
    BinanceMarket, BinanceParser, BybitParser, DeribitParser, EthereumParser, OkxParser, Parsed,
    Problem, VenueParser,
};
use keel_feeds::{InstrumentKind, Instruments, Venue};
use venues_support::*;

fn full_registry() -> Instruments {
    registry(&[
        (
            Venue::Deribit,
            "BTC-26JUN26-100000-C",
            InstrumentKind::Option,
        ),
        (Venue::Deribit, "BTC-PERPETUAL", InstrumentKind::Perpetual),
        (Venue::Deribit, "btc_usd", InstrumentKind::Index),
        (Venue::Deribit, "BTC-2JUN21-37000-P", InstrumentKind::Option),
        (Venue::Binance, "BNBUSDT", InstrumentKind::Perpetual),
        (Venue::Binance, "BTCUSDT", InstrumentKind::Perpetual),
        (Venue::Binance, "BNBBTC", InstrumentKind::Perpetual),
        (Venue::Okx, "BTC-USDT", InstrumentKind::Spot),
        (Venue::Okx, "BTC-USD-231229-40000-P", InstrumentKind::Option),
        (Venue::Bybit, "BTC-6JAN23-17500-C", InstrumentKind::Option),
    ])
}

/// The market-data fixtures of each venue, compact, with the parser that reads them.
fn cases() -> Vec<(&'static str, Vec<u8>)> {
    [
        "deribit/ticker_option.json",
        "deribit/ticker_perpetual.json",
        "deribit/book_snapshot.json",
        "deribit/book_change.json",
        "deribit/price_index.json",
        "deribit/markprice_options.json",
        "deribit/trades.json",
        "deribit/quote.json",
        "deribit/test_request.json",
        "deribit/subscribe_response.json",
        "deribit/error_response.json",
        "binance/combined_book_ticker.json",
        "binance/futures_agg_trade.json",
        "binance/futures_book_ticker.json",
        "binance/futures_depth_update.json",
        "binance/spot_book_ticker.json",
        "binance/spot_depth_update.json",
        "okx/opt_summary.json",
        "okx/tickers.json",
        "bybit/option_ticker.json",
    ]
    .into_iter()
    .map(|f| (f, fixture(f)))
    .collect()
}

fn parser_for(file: &str, reg: &Instruments) -> Box<dyn VenueParser> {
    match file.split('/').next() {
        Some("deribit") => Box::new(DeribitParser::new(reg)),
        Some("binance") if file.contains("/spot_") || file.contains("/combined_") => {
            Box::new(BinanceParser::new(BinanceMarket::Spot, reg))
        }
        Some("binance") => Box::new(BinanceParser::new(BinanceMarket::UsdmFutures, reg)),
        Some("okx") => Box::new(OkxParser::new(reg)),
        Some("bybit") => Box::new(BybitParser::new(reg)),
        _ => Box::new(EthereumParser::new()),
    }
}

fn all_parsers(reg: &Instruments) -> Vec<Box<dyn VenueParser>> {
    vec![
        Box::new(DeribitParser::new(reg)),
        Box::new(BinanceParser::new(BinanceMarket::Spot, reg)),
        Box::new(BinanceParser::new(BinanceMarket::UsdmFutures, reg)),
        Box::new(OkxParser::new(reg)),
        Box::new(BybitParser::new(reg)),
        Box::new(EthereumParser::new()),
    ]
}

#[test]
fn every_fixture_parses_whole() {
    let reg = full_registry();
    for (file, msg) in cases() {
        let mut p = parser_for(file, &reg);
        let (res, _) = run(p.as_mut(), &msg, 0);
        assert!(res.is_ok(), "{file}: {res:?}");
    }
}

#[test]
fn every_cut_of_every_fixture_is_rejected_without_events() {
    let reg = full_registry();
    let mut tried = 0;
    for (file, msg) in cases() {
        let mut p = parser_for(file, &reg);
        tried += assert_truncations_rejected(p.as_mut(), &msg);
        // Also cut inside the pretty-printed form (whitespace everywhere).
        let pretty = pretty(file);
        for cut in (0..pretty.trim_ascii_end().len()).step_by(7) {
            rejected(p.as_mut(), &pretty[..cut]);
        }
        let s = p.stats();
        assert_eq!(s.events, 0, "{file}");
        assert!(s.malformed as usize >= msg.len(), "{file}");
    }
    assert!(tried > 5_000, "{tried}");
}

#[test]
fn wrong_types_missing_fields_and_bad_values() {
    let reg = full_registry();
    let ticker = String::from_utf8(fixture("deribit/ticker_option.json")).unwrap();
    let mut d = DeribitParser::new(&reg);
    let json_kind = |p: Problem| match p {
        Problem::Json(e) => Some(e.kind),
        _ => None,
    };
    type Check = Box<dyn Fn(Problem) -> bool>;
    let table: Vec<(String, Check)> = vec![
        (
            ticker.replace("\"mark_iv\":45.43", "\"mark_iv\":true"),
            Box::new(move |p| json_kind(p) == Some(JsonErrorKind::Unexpected(Expected::Number))),
        ),
        (
            ticker.replace("\"mark_iv\":45.43", "\"mark_iv\":\"45.43x\""),
            Box::new(move |p| json_kind(p) == Some(JsonErrorKind::InvalidNumber)),
        ),
        (
            ticker.replace("\"mark_iv\":45.43", "\"mark_iv\":[45.43]"),
            Box::new(move |p| json_kind(p) == Some(JsonErrorKind::Unexpected(Expected::Number))),
        ),
        (
            ticker.replace("\"mark_iv\":45.43", "\"mark_iv\":1e400"),
            Box::new(move |p| json_kind(p) == Some(JsonErrorKind::OutOfRange)),
        ),
        (
            ticker.replace("\"mark_iv\":45.43", "\"mark_iv\":045"),
            Box::new(move |p| json_kind(p).is_some()),
        ),
        (
            ticker.replace(
                "\"timestamp\":1752057345721",
                "\"timestamp\":99999999999999999999",
            ),
            Box::new(move |p| json_kind(p) == Some(JsonErrorKind::OutOfRange)),
        ),
        (
            ticker.replace(
                "\"timestamp\":1752057345721",
                "\"timestamp\":18446744073709551",
            ),
            Box::new(move |p| p == Problem::TimestampRange("timestamp")),
        ),
        (
            ticker.replace("\"timestamp\":1752057345721", "\"timestamp\":-1"),
            Box::new(move |p| json_kind(p) == Some(JsonErrorKind::Unexpected(Expected::Unsigned))),
        ),
        (
            ticker.replace("\"timestamp\":1752057345721,", ""),
            Box::new(move |p| p == Problem::Missing("timestamp")),
        ),
        (
            ticker.replace("\"instrument_name\":\"BTC-26JUN26-100000-C\",", ""),
            Box::new(move |p| p == Problem::Missing("instrument_name")),
        ),
        (
            ticker.replace(
                "\"instrument_name\":\"BTC-26JUN26-100000-C\"",
                "\"instrument_name\":7",
            ),
            Box::new(move |p| json_kind(p) == Some(JsonErrorKind::Unexpected(Expected::String))),
        ),
        (
            ticker.replace("\"greeks\":{", "\"greeks\":{\"delta\":{},"),
            Box::new(move |p| json_kind(p) == Some(JsonErrorKind::Unexpected(Expected::Number))),
        ),
        (
            ticker.replace("\"params\":{\"channel\"", "\"params\":{\"chan\""),
            Box::new(move |p| p == Problem::Missing("params.channel")),
        ),
        (
            ticker.replace("\"state\":\"open\"", "\"state\":open"),
            Box::new(move |p| json_kind(p) == Some(JsonErrorKind::Unexpected(Expected::Value))),
        ),
        (
            ticker.replace("\"state\":\"open\",", "\"state\":\"open\",,"),
            Box::new(move |p| json_kind(p) == Some(JsonErrorKind::Unexpected(Expected::Key))),
        ),
        (
            format!("{ticker} x"),
            Box::new(move |p| json_kind(p) == Some(JsonErrorKind::Trailing)),
        ),
        (
            format!("{ticker}{ticker}"),
            Box::new(move |p| json_kind(p) == Some(JsonErrorKind::Trailing)),
        ),
    ];
    for (msg, check) in &table {
        assert_ne!(msg, &ticker, "the replacement did not apply");
        let err = rejected(&mut d, msg.as_bytes());
        assert!(check(err.problem), "{err}");
        // The error names the venue and quotes the message's start.
        let text = err.to_string();
        assert!(text.starts_with("deribit message rejected: "), "{text}");
        assert!(text.contains("{\\\"jsonrpc\\\":\\\"2.0\\\""), "{text}");
    }

    // Inside a value the parser skips, only brackets, strings and scalar boundaries are
    // checked: a misspelt literal there does not reject the message.
    let lenient = ticker.replace("{\"high\":null", "{\"high\":nul");
    assert_ne!(lenient, ticker);
    assert!(d.parse(lenient.as_bytes(), 0, &mut |_| {}).is_ok());

    // Other venues: missing and mistyped fields.
    let mut b = BinanceParser::new(BinanceMarket::UsdmFutures, &reg);
    let bt = String::from_utf8(fixture("binance/futures_book_ticker.json")).unwrap();
    assert_eq!(
        rejected(&mut b, bt.replace(",\"B\":\"31.21000000\"", "").as_bytes()).problem,
        Problem::Missing("B")
    );
    assert_eq!(
        rejected(&mut b, bt.replace("\"s\":\"BNBUSDT\",", "").as_bytes()).problem,
        Problem::Missing("s")
    );
    rejected(
        &mut b,
        bt.replace("\"25.35190000\"", "\"25,3519\"").as_bytes(),
    );
    let depth = String::from_utf8(fixture("binance/futures_depth_update.json")).unwrap();
    rejected(
        &mut b,
        depth
            .replace("[\"0.0024\",\"10\"]", "[\"0.0024\"]")
            .as_bytes(),
    );
    rejected(
        &mut b,
        depth
            .replace("[\"0.0024\",\"10\"]", "[\"0.0024\",\"10\",\"1\"]")
            .as_bytes(),
    );
    rejected(
        &mut b,
        depth
            .replace("[\"0.0024\",\"10\"]", "[\"\",\"10\"]")
            .as_bytes(),
    );
    rejected(
        &mut b,
        depth.replace("[\"0.0024\",\"10\"]", "{\"p\":1}").as_bytes(),
    );
    let trade = String::from_utf8(fixture("binance/futures_agg_trade.json")).unwrap();
    rejected(
        &mut b,
        trade.replace("\"m\":false", "\"m\":\"false\"").as_bytes(),
    );
    assert_eq!(
        rejected(&mut b, trade.replace(",\"m\":false", "").as_bytes()).problem,
        Problem::Missing("m")
    );

    let mut o = OkxParser::new(&reg);
    let ot = String::from_utf8(fixture("okx/tickers.json")).unwrap();
    let empty_ts = ot.replace("\"ts\":\"1597026383085\"", "\"ts\":\"\"");
    // The offset is that of the (empty) string's contents.
    let at = empty_ts.find("\"ts\":\"\"").unwrap() + 6;
    assert_eq!(
        rejected(&mut o, empty_ts.as_bytes()).problem.to_string(),
        format!("malformed number at byte {at}")
    );
    assert_eq!(
        rejected(&mut o, ot.replace(",\"data\":[", ",\"dat\":[").as_bytes()).problem,
        Problem::Missing("data")
    );
    rejected(
        &mut o,
        ot.replace("\"data\":[{", "\"data\":{")
            .replace("}]}", "}}")
            .as_bytes(),
    );

    let mut y = BybitParser::new(&reg);
    let yt = String::from_utf8(fixture("bybit/option_ticker.json")).unwrap();
    rejected(
        &mut y,
        yt.replace("\"askIv\":\"0.514\"", "\"askIv\":\"0.514.1\"")
            .as_bytes(),
    );
    rejected(
        &mut y,
        yt.replace("\"ts\":1672917511074", "\"ts\":\"soon\"")
            .as_bytes(),
    );
    rejected(&mut y, yt.replace("\"data\":{", "\"data\":[").as_bytes());
}

#[test]
fn deep_nesting_huge_numbers_and_garbage() {
    let reg = full_registry();
    let deep_array = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let deep_object = "{\"a\":".repeat(20_000) + &"}".repeat(20_000);
    let long_number = format!("1{}", "0".repeat(10_000));
    let long_fraction = format!("0.{}1", "0".repeat(10_000));
    let inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"   ".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{}".to_vec(),
        b"\"string\"".to_vec(),
        b"12".to_vec(),
        vec![0xff; 300],
        (0..=255u8).collect(),
        deep_array.clone().into_bytes(),
        deep_object.into_bytes(),
        format!(r#"{{"jsonrpc":"2.0","method":"subscription","params":{{"channel":"ticker.BTC-PERPETUAL.100ms","data":{{"stats":{deep_array},"timestamp":1}}}}}}"#).into_bytes(),
        format!(r#"{{"jsonrpc":"2.0","method":"subscription","params":{{"channel":"ticker.BTC-PERPETUAL.100ms","data":{{"timestamp":1,"instrument_name":"BTC-PERPETUAL","mark_price":{long_number}}}}}}}"#).into_bytes(),
        format!(r#"{{"jsonrpc":"2.0","method":"subscription","params":{{"channel":"ticker.BTC-PERPETUAL.100ms","data":{{"timestamp":1,"instrument_name":"BTC-PERPETUAL","mark_price":{long_fraction}}}}}}}"#).into_bytes(),
        format!(r#"{{"s":"BTCUSDT","u":1,"b":"{long_number}","B":"1","a":"1","A":"1"}}"#).into_bytes(),
        format!(r#"{{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT","U":1,"u":2,"pu":0,"b":{deep_array},"a":[]}}"#).into_bytes(),
        br#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-PERPETUAL.100ms","data":{"timestamp":1,"instrument_name":"BTC-PERPETUAL","mark_price":1e309}}}"#.to_vec(),
        br#"{"a":"\"#.to_vec(),
        br#"{"a":"\\"}"#.to_vec(),
        "{\"\u{1F600}\":\"\u{e9}\"}".as_bytes().to_vec(),
    ];
    for mut p in all_parsers(&reg) {
        for input in &inputs {
            let (res, evs) = run(p.as_mut(), input, 0);
            if res.is_err() {
                assert!(evs.is_empty());
            }
        }
        assert_eq!(p.stats().messages, inputs.len() as u64);
    }
    // Specific answers.
    let mut d = DeribitParser::new(&reg);
    let err = rejected(&mut d, deep_array.as_bytes());
    assert!(
        matches!(err.problem, Problem::Json(e) if e.kind == JsonErrorKind::Unexpected(Expected::Object))
    );
    let err = rejected(&mut d, &inputs[11]);
    assert!(
        matches!(err.problem, Problem::Json(e) if e.kind == JsonErrorKind::TooDeep),
        "{err}"
    );
    // A 10,001-digit integer is a finite f64 (1e10000 is not): out of range.
    let err = rejected(&mut d, &inputs[12]);
    assert!(
        matches!(err.problem, Problem::Json(e) if e.kind == JsonErrorKind::OutOfRange),
        "{err}"
    );
    // A long fraction parses exactly (to 1e-10001 = 0).
    let (res, evs) = run(&mut d, &inputs[13], 0);
    assert_eq!(res, Ok(Parsed::Events { count: 2 }));
    assert!(matches!(evs[1].body, keel_feeds::EventBody::Mark { mark, .. } if mark == 0.0));
    let err = rejected(&mut d, &inputs[16]);
    assert!(matches!(err.problem, Problem::Json(e) if e.kind == JsonErrorKind::OutOfRange));
}

#[test]
fn random_mutations_never_panic_and_rejections_emit_nothing() {
    let reg = full_registry();
    let corpus: Vec<Vec<u8>> = cases().into_iter().map(|(_, m)| m).collect();
    let mut parsers = all_parsers(&reg);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let interesting = b"{}[]\":,\\-.0123456789eE+ntfaxu\x00\xff";
    let mut mutated = Vec::new();
    let (mut accepted, mut rejected_count) = (0u64, 0u64);
    for _ in 0..30_000 {
        mutated.clear();
        mutated.extend_from_slice(&corpus[rng.below(corpus.len() as u64) as usize]);
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(mutated.len() as u64 + 1) as usize;
            let byte = interesting[rng.below(interesting.len() as u64) as usize];
            match rng.below(4) {
                0 if at < mutated.len() => mutated[at] = byte,
                1 => mutated.insert(at, byte),
                2 if at < mutated.len() => {
                    mutated.remove(at);
                }
                _ => {
                    // Splice a piece of another message.
                    let other = &corpus[rng.below(corpus.len() as u64) as usize];
                    let from = rng.below(other.len() as u64) as usize;
                    let to = (from + rng.below(40) as usize).min(other.len());
                    let at = at.min(mutated.len());
                    mutated.splice(at..at, other[from..to].iter().copied());
                }
            }
        }
        for p in parsers.iter_mut() {
            let (res, evs) = run(p.as_mut(), &mutated, 0);
            match res {
                Ok(_) => accepted += 1,
                Err(e) => {
                    rejected_count += 1;
                    assert!(evs.is_empty(), "{e}");
                    assert!(e.prefix.as_bytes().len() <= 64);
                }
            }
        }
    }
    // Both outcomes happen: the mutations are neither all fatal nor all harmless.
    assert!(
        accepted > 1_000 && rejected_count > 10_000,
        "{accepted} {rejected_count}"
    );
    for p in &parsers {
        assert_eq!(p.stats().messages, 30_000);
    }
}

#[test]
fn every_parser_survives_every_other_venues_messages() {
    let reg = full_registry();
    let mut all: Vec<(String, Vec<u8>)> = Vec::new();
    for dir in [
        "deribit",
        "binance",
        "okx",
        "bybit",
        "ethereum",
        "hyperliquid",
    ] {
        for (name, bytes) in all_fixtures(dir) {
            all.push((format!("{dir}/{name}"), compact(&bytes)));
        }
    }
    assert!(all.len() > 30);
    for mut p in all_parsers(&reg) {
        for (name, msg) in &all {
            let (res, evs) = run(p.as_mut(), msg, 0);
            if let Err(e) = &res {
                assert!(evs.is_empty(), "{name}: {e}");
            }
        }
    }
}
