//! Shared by the venue parser tests: fixture loading, registries, event collection and
//! NaN-aware comparison.
#![allow(dead_code)]

use keel_feeds::venues::{ParseError, Parsed, ParserStats, VenueParser};
use keel_feeds::{
    EventBody, Instrument, InstrumentId, InstrumentKind, Instruments, MarketEvent, OptionRight,
    Venue,
};
use std::path::PathBuf;

/// shared/fixtures/venues beside the workspace.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/venues")
}

/// A fixture file as the venue documents it (pretty-printed).
pub fn pretty(rel: &str) -> Vec<u8> {
    let path = fixtures_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()))
}

/// The fixture as the venue sends it: whitespace outside strings removed.
pub fn fixture(rel: &str) -> Vec<u8> {
    compact(&pretty(rel))
}

/// Removes whitespace outside strings.
pub fn compact(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let (mut in_str, mut escaped) = (false, false);
    for &b in text {
        if in_str {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
        } else if !b.is_ascii_whitespace() {
            in_str = b == b'"';
            out.push(b);
        }
    }
    out
}

/// Every `*.json` fixture of a venue folder, by file name.
pub fn all_fixtures(venue_dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fixtures_dir().join(venue_dir);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(e.path()).expect("fixture");
            (name, bytes)
        })
        .collect();
    out.sort();
    out
}

/// An instrument with plausible defaults.
pub fn inst(venue: Venue, name: &str, kind: InstrumentKind) -> Instrument {
    Instrument {
        venue,
        name: name.into(),
        kind,
        base_currency: "BTC".into(),
        quote_currency: "USD".into(),
        settlement_currency: "USD".into(),
        strike: f64::NAN,
        expiry_ms: 0,
        right: (kind == InstrumentKind::Option).then_some(OptionRight::Call),
        contract_size: 1.0,
        inverse: false,
        tick_size: 0.01,
        min_size: 0.01,
    }
}

/// A registry holding `list` after a few unrelated instruments (so that ids are not 0).
pub fn registry(list: &[(Venue, &str, InstrumentKind)]) -> Instruments {
    let mut reg = Instruments::new();
    reg.insert(inst(
        Venue::Deribit,
        "ETH-PERPETUAL",
        InstrumentKind::Perpetual,
    ));
    reg.insert(inst(Venue::Okx, "ETH-USDT", InstrumentKind::Spot));
    for &(venue, name, kind) in list {
        reg.insert(inst(venue, name, kind));
    }
    reg
}

/// The id of `name` on `venue`.
pub fn id(reg: &Instruments, venue: Venue, name: &str) -> InstrumentId {
    reg.id(venue, name.as_bytes())
        .unwrap_or_else(|| panic!("{name} not in the registry"))
}

/// Parses one payload, collecting the events.
pub fn run<'a, P: VenueParser + ?Sized>(
    p: &mut P,
    payload: &'a [u8],
    recv: u64,
) -> (Result<Parsed<'a>, ParseError>, Vec<MarketEvent>) {
    let mut evs = Vec::new();
    let res = p.parse(payload, recv, &mut |e| evs.push(e));
    (res, evs)
}

/// Parses one payload that must succeed.
pub fn ok<'a, P: VenueParser + ?Sized>(
    p: &mut P,
    payload: &'a [u8],
    recv: u64,
) -> (Parsed<'a>, Vec<MarketEvent>) {
    let (res, evs) = run(p, payload, recv);
    match res {
        Ok(parsed) => (parsed, evs),
        Err(e) => panic!("{e}"),
    }
}

/// Parses one payload that must fail, emitting nothing and counting it malformed.
pub fn rejected<P: VenueParser + ?Sized>(p: &mut P, payload: &[u8]) -> ParseError {
    let before = p.stats();
    let (res, evs) = run(p, payload, 1);
    let err = match res {
        Err(e) => e,
        Ok(parsed) => panic!(
            "accepted {:?} as {parsed:?} with {} events",
            payload.escape_ascii().to_string(),
            evs.len()
        ),
    };
    assert!(
        evs.is_empty(),
        "a rejected message emitted {} events: {}",
        evs.len(),
        payload.escape_ascii()
    );
    let after = p.stats();
    assert_eq!(
        after.malformed,
        before.malformed + 1,
        "malformed not counted"
    );
    assert_eq!(after.events, before.events);
    err
}

/// An event with `conn` 0.
pub fn ev(
    venue: Venue,
    instrument: InstrumentId,
    exchange_ts_ns: u64,
    recv_ts_ns: u64,
    body: EventBody,
) -> MarketEvent {
    MarketEvent {
        exchange_ts_ns,
        recv_ts_ns,
        instrument,
        venue,
        conn: 0,
        body,
    }
}

/// Exact comparison, NaN equal to NaN and every float compared by its shortest
/// representation (equal strings ⇔ equal bits, -0.0 apart from 0.0).
#[track_caller]
pub fn assert_events(got: &[MarketEvent], want: &[MarketEvent]) {
    let g = format!("{got:#?}");
    let w = format!("{want:#?}");
    assert_eq!(g, w);
}

/// `stats` minus `base`, field by field.
pub fn delta(stats: ParserStats, base: ParserStats) -> ParserStats {
    ParserStats {
        messages: stats.messages - base.messages,
        events: stats.events - base.events,
        unknown_instruments: stats.unknown_instruments - base.unknown_instruments,
        malformed: stats.malformed - base.malformed,
        gaps: stats.gaps - base.gaps,
        book_skipped: stats.book_skipped - base.book_skipped,
        control: stats.control - base.control,
        unknown_channels: stats.unknown_channels - base.unknown_channels,
    }
}

/// Every cut of `msg` that is not a whole message (each prefix shorter than it, trailing
/// whitespace aside) must be rejected without an event; returns how many were tried.
pub fn assert_truncations_rejected<P: VenueParser + ?Sized>(p: &mut P, msg: &[u8]) -> usize {
    let whole = msg.trim_ascii_end().len();
    for cut in 0..whole {
        rejected(p, &msg[..cut]);
    }
    whole
}

/// A small deterministic generator for mutation tests.
pub struct Rng(pub u64);

impl Rng {
    /// The next value below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}
