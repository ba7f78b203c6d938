//! The venue parsers never allocate per message (DESIGN.md "Rules of the hot path"): a
//! counting global allocator, counting this test thread only, sees no allocation while every
//! parser handles its messages, accepted or rejected, large or small, after construction.

mod venues_support;

use keel_feeds::venues::{
    BinanceMarket, BinanceParser, BybitParser, DeribitParser, EthereumParser, OkxParser,
    VenueParser, deribit,
};
use keel_feeds::{InstrumentKind, MarketEvent, Venue};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use venues_support::*;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn parsing_never_allocates() {
    let mut names: Vec<String> = (0..100)
        .map(|k| format!("BTC-26JUN26-{}-P", 10_000 + 500 * k))
        .collect();
    names.push("BTC-26JUN26-100000-C".into());
    let mut reg = registry(&[
        (Venue::Deribit, "BTC-PERPETUAL", InstrumentKind::Perpetual),
        (Venue::Deribit, "btc_usd", InstrumentKind::Index),
        (Venue::Binance, "BNBUSDT", InstrumentKind::Perpetual),
        (Venue::Binance, "BTCUSDT", InstrumentKind::Perpetual),
        (Venue::Okx, "BTC-USDT", InstrumentKind::Spot),
        (Venue::Okx, "BTC-USD-231229-40000-P", InstrumentKind::Option),
        (Venue::Bybit, "BTC-6JAN23-17500-C", InstrumentKind::Option),
        (Venue::Bybit, "BTCUSDT", InstrumentKind::Perpetual),
    ]);
    for n in &names {
        reg.insert(inst(Venue::Deribit, n, InstrumentKind::Option));
    }
    // Messages, built before counting: the fixtures plus large ones that take the two-pass
    // path (more events than the staging buffer) and rejected ones.
    let entries: Vec<String> = names
        .iter()
        .map(|n| format!(r#"{{"timestamp":1,"mark_price":0.5,"iv":0.5,"instrument_name":"{n}"}}"#))
        .collect();
    let big_marks = format!(
        r#"{{"jsonrpc":"2.0","method":"subscription","params":{{"channel":"markprice.options.btc_usd","data":[{}]}}}}"#,
        entries.join(",")
    );
    let levels: Vec<String> = (0..200)
        .map(|i| format!("[\"new\",{}.5,1.0]", 40_000 + i))
        .collect();
    let big_book = format!(
        r#"{{"jsonrpc":"2.0","method":"subscription","params":{{"channel":"book.BTC-PERPETUAL.100ms","data":{{"type":"snapshot","instrument_name":"BTC-PERPETUAL","timestamp":1,"change_id":123456789,"prev_change_id":null,"bids":[{}],"asks":[]}}}}}}"#,
        levels.join(",")
    );
    // The option ticker with other values (read by the learned shape: SIMD numbers, four at
    // a time, and the one-number path for the exponent and the long decimal).
    let ticker = String::from_utf8(fixture("deribit/ticker_option.json")).unwrap();
    let varied = ticker
        .replace(
            "\"mark_price\":0.2425",
            "\"mark_price\":0.123456789012345678",
        )
        .replace("\"delta\":0.71138", "\"delta\":-0.5")
        .replace("\"gamma\":1e-05", "\"gamma\":3e-07")
        .replace(
            "\"underlying_price\":116086.34",
            "\"underlying_price\":99001.5",
        );
    let deribit_msgs: Vec<Vec<u8>> = vec![
        fixture("deribit/ticker_option.json"),
        varied.into_bytes(),
        fixture("deribit/ticker_perpetual.json"),
        big_book.into_bytes(),
        fixture("deribit/book_change.json"),
        fixture("deribit/book_change.json"),
        fixture("deribit/book_snapshot.json"),
        fixture("deribit/price_index.json"),
        big_marks.into_bytes(),
        fixture("deribit/markprice_options.json"),
        fixture("deribit/trades.json"),
        fixture("deribit/quote.json"),
        fixture("deribit/test_request.json"),
        fixture("deribit/subscribe_response.json"),
        fixture("deribit/error_response.json"),
        b"{\"jsonrpc\":\"2.0\",\"method\":\"subscription\",\"params\":{\"channel\":\"ticker.X.raw\",\"data\":{\"timestamp\":true".to_vec(),
        vec![0xff; 100],
    ];
    let binance_msgs = vec![
        fixture("binance/futures_book_ticker.json"),
        fixture("binance/combined_book_ticker.json"),
        fixture("binance/futures_agg_trade.json"),
        fixture("binance/futures_depth_update.json"),
        br#"{"result":null,"id":1}"#.to_vec(),
        br#"{"e":"bookTicker","s":"BNBUSDT"}"#.to_vec(),
    ];
    let okx_msgs = vec![
        fixture("okx/tickers.json"),
        fixture("okx/opt_summary.json"),
        b"pong".to_vec(),
        br#"{"event":"error","code":"60012","msg":"x"}"#.to_vec(),
    ];
    let bybit_msgs = vec![
        fixture("bybit/option_ticker.json"),
        br#"{"topic":"tickers.BTCUSDT","type":"snapshot","data":{"symbol":"BTCUSDT","bid1Price":"1","bid1Size":"2","ask1Price":"3","ask1Size":"4","markPrice":"2"},"ts":1}"#.to_vec(),
        br#"{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","bid1Price":"1.5"},"ts":2}"#.to_vec(),
        br#"{"success":true,"ret_msg":"pong","conn_id":"x","op":"ping"}"#.to_vec(),
    ];
    let eth_msgs = vec![
        br#"{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"0x1","result":{"number":"0x10","gasUsed":"0x0","gasLimit":"0x1","timestamp":"0x2","baseFeePerGas":"0x7"}}}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":1,"result":"0x9cef478923ff08bf67fde6c64013158d"}"#.to_vec(),
    ];

    let mut deribit_p = DeribitParser::new(&reg);
    let mut binance_p = BinanceParser::new(BinanceMarket::UsdmFutures, &reg);
    let mut okx_p = OkxParser::new(&reg);
    let mut bybit_p = BybitParser::new(&reg);
    let mut eth_p = EthereumParser::new();
    let mut sets: Vec<(&mut dyn VenueParser, &Vec<Vec<u8>>)> = vec![
        (&mut deribit_p, &deribit_msgs),
        (&mut binance_p, &binance_msgs),
        (&mut okx_p, &okx_msgs),
        (&mut bybit_p, &bybit_msgs),
        (&mut eth_p, &eth_msgs),
    ];
    let mut out = Vec::with_capacity(1024);
    let mut sink = [0u64; 2];
    let mut emit = |e: MarketEvent| {
        sink[0] += 1;
        sink[1] = sink[1].wrapping_add(e.exchange_ts_ns);
    };

    let before = allocations();
    for round in 0..50 {
        for (p, msgs) in sets.iter_mut() {
            for m in msgs.iter() {
                let _ = p.parse(m, round, &mut emit);
            }
        }
        out.clear();
        deribit::test_reply(&mut out, round);
    }
    let after = allocations();
    assert_eq!(after - before, 0, "allocations while parsing");
    assert!(sink[0] > 50 * 300, "{} events", sink[0]);
    // The counter does count (this allocates).
    let v = vec![1u8; 10];
    assert!(allocations() > after);
    drop(v);
    // Every kind of outcome happened.
    let s = deribit_p.stats();
    assert!(
        s.gaps > 0 && s.malformed > 0 && s.control > 0 && s.unknown_instruments > 0,
        "{s:?}"
    );
}
