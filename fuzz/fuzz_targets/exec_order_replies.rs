//! The order sessions' reply parsers (Binance WebSocket API, Hyperliquid `post`) on arbitrary
//! payloads: never panic, and never report more than one outcome for the one order in flight
//! (a reply can only resolve an order once, whatever follows).
#![no_main]

use std::sync::OnceLock;

use keel_engine::exec::binance::{BinanceCredentials, BinanceOrderConfig, BinanceOrders};
use keel_engine::exec::evm::EvmSigner;
use keel_engine::exec::hyperliquid::{
    HlCommand, HyperliquidOrders, LimitWire, Network, OrderTypeWire, OrderWire, PresignedPair, Tif,
    presign,
};
use keel_engine::exec::{Fill, HedgeIntent};
use keel_engine::pipeline::ring::ring;
use keel_engine::pipeline::telemetry::TickTrace;
use keel_feeds::event::{Side, Venue};
use keel_feeds::instrument::InstrumentId;
use keel_feeds::net::ws::FrameEncoder;
use keel_feeds::net::{Outbox, Session};
use libfuzzer_sys::fuzz_target;

fn intent() -> HedgeIntent {
    HedgeIntent {
        trace: TickTrace::default(),
        id: 1,
        amount: 0.01,
        ref_price: 100_000.0,
        coin_delta: 0.01,
        instrument: InstrumentId(0),
        side: Side::Buy,
        venue: Venue::Binance,
    }
}

fn pair() -> &'static PresignedPair {
    static PAIR: OnceLock<PresignedPair> = OnceLock::new();
    PAIR.get_or_init(|| {
        let key = EvmSigner::from_hex(&format!("0x{}", "42".repeat(32)), "fuzz").unwrap();
        let order = OrderWire {
            a: 0,
            b: true,
            p: "100000".into(),
            s: "0.01".into(),
            r: false,
            t: OrderTypeWire {
                limit: LimitWire { tif: Tif::Ioc },
            },
            c: Some("0x000000000000000000000000000000ab".into()),
        };
        presign(&key, order, 1_800_000_000_000, Network::Mainnet).unwrap()
    })
}

fn drive(s: &mut dyn Session, data: &[u8]) {
    let mut enc = FrameEncoder::new();
    let mut buf = Vec::new();
    let _ = s.poll_outgoing(&mut Outbox::new(&mut enc, &mut buf));
    s.on_flushed(1);
    // The input, then its halves: one message or several.
    for part in [data, &data[..data.len() / 2], &data[data.len() / 2..]] {
        let _ = s.on_message(part, 0, &mut Outbox::new(&mut enc, &mut buf), &mut |_| {});
    }
}

fuzz_target!(|data: &[u8]| {
    // Binance, order "k1-1" in flight.
    let (mut ip, ic) = ring::<HedgeIntent>(4).unwrap();
    let (fp, mut fc) = ring::<Fill>(4).unwrap();
    let creds = BinanceCredentials::new("key", b"secret", "fuzz").unwrap();
    let config = BinanceOrderConfig {
        symbol: "BTCUSDT".into(),
        qty_decimals: 3,
        recv_window_ms: 5000,
        run_tag: 1,
        timeout_ns: u64::MAX / 4,
    };
    let mut b = BinanceOrders::new(ic, fp, &creds, config).unwrap();
    ip.push(intent()).unwrap();
    drive(&mut b, data);
    let mut n = 0;
    while fc.pop().is_some() {
        n += 1;
    }
    assert!(n <= 1, "binance: {n} outcomes for one order");

    // Hyperliquid, entry 0 fired.
    let (mut cp, cc) = ring::<HlCommand>(4).unwrap();
    let (fp, mut fc) = ring::<Fill>(4).unwrap();
    let mut h = HyperliquidOrders::new(cc, fp, vec![(intent(), pair().clone())], u64::MAX / 4)
        .with_status_queries(
            EvmSigner::from_hex(&format!("0x{}", "42".repeat(32)), "fuzz")
                .unwrap()
                .address(),
        );
    cp.push(HlCommand {
        entry: 0,
        void: false,
    })
    .unwrap();
    drive(&mut h, data);
    let mut n = 0;
    while fc.pop().is_some() {
        n += 1;
    }
    assert!(n <= 1, "hyperliquid: {n} outcomes for one order");
});
