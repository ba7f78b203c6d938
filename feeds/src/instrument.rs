//! Instruments and their dense ids: every venue symbol a feed will see is resolved to a `u32`
//! [`InstrumentId`] once, at start-up (from the venue's instrument list or the command line),
//! and the per-message lookup is one hash of the symbol's bytes, no allocation
//! (DESIGN.md: "instruments are u32 ids resolved at start-up").

use crate::event::Venue;
use rustc_hash::FxHashMap;

/// Dense id of an instrument: its index in [`Instruments`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct InstrumentId(pub u32);

impl InstrumentId {
    /// No instrument (connection and chain events).
    pub const NONE: Self = Self(u32::MAX);
}

/// What an instrument is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstrumentKind {
    /// Spot pair.
    Spot,
    /// Perpetual swap.
    Perpetual,
    /// Dated future.
    Future,
    /// European option.
    Option,
    /// An index (not tradable).
    Index,
}

/// Call or put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionRight {
    /// Call.
    Call,
    /// Put.
    Put,
}

/// One instrument as the venue lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct Instrument {
    /// The venue that lists it.
    pub venue: Venue,
    /// The venue's symbol, exactly as its messages spell it (`BTC-27DEC24-100000-C`,
    /// `BTCUSDT`, `btc_usd`).
    pub name: String,
    /// Spot, perpetual, future, option or index.
    pub kind: InstrumentKind,
    /// Underlying coin (`BTC`).
    pub base_currency: String,
    /// Currency prices are quoted in (`BTC` for Deribit inverse options, `USDT`, `USD`).
    pub quote_currency: String,
    /// Currency of settlement and P&L.
    pub settlement_currency: String,
    /// Strike (options), else NaN.
    pub strike: f64,
    /// Expiry, ms since the Unix epoch (options and futures), else 0.
    pub expiry_ms: u64,
    /// Call or put (options).
    pub right: Option<OptionRight>,
    /// Contract multiplier in units of the underlying.
    pub contract_size: f64,
    /// Premium and P&L in the coin (Deribit "reversed"), not the quote currency.
    pub inverse: bool,
    /// Price increment.
    pub tick_size: f64,
    /// Smallest order size.
    pub min_size: f64,
}

/// Every instrument known to the engine, by dense id, with a per-venue symbol index.
#[derive(Clone, Debug, Default)]
pub struct Instruments {
    list: Vec<Instrument>,
    by_name: [FxHashMap<Box<[u8]>, InstrumentId>; 7],
}

impl Instruments {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an instrument, or returns the id it already has (same venue and name): adding is
    /// idempotent, so a re-fetched instrument list keeps every id.
    pub fn insert(&mut self, inst: Instrument) -> InstrumentId {
        let map = &mut self.by_name[inst.venue as usize];
        if let Some(&id) = map.get(inst.name.as_bytes()) {
            return id;
        }
        let id = InstrumentId(self.list.len() as u32);
        map.insert(inst.name.as_bytes().into(), id);
        self.list.push(inst);
        id
    }

    /// The id of `name` on `venue`, if known. One hash of the bytes; never allocates.
    #[inline]
    pub fn id(&self, venue: Venue, name: &[u8]) -> Option<InstrumentId> {
        self.by_name[venue as usize].get(name).copied()
    }

    /// The instrument behind an id.
    pub fn get(&self, id: InstrumentId) -> Option<&Instrument> {
        self.list.get(id.0 as usize)
    }

    /// Number of instruments.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// All instruments in id order.
    pub fn iter(&self) -> impl Iterator<Item = (InstrumentId, &Instrument)> {
        self.list
            .iter()
            .enumerate()
            .map(|(i, inst)| (InstrumentId(i as u32), inst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perp(name: &str) -> Instrument {
        Instrument {
            venue: Venue::Binance,
            name: name.into(),
            kind: InstrumentKind::Perpetual,
            base_currency: "BTC".into(),
            quote_currency: "USDT".into(),
            settlement_currency: "USDT".into(),
            strike: f64::NAN,
            expiry_ms: 0,
            right: None,
            contract_size: 1.0,
            inverse: false,
            tick_size: 0.1,
            min_size: 0.001,
        }
    }

    #[test]
    fn ids_are_dense_stable_and_per_venue() {
        let mut reg = Instruments::new();
        let a = reg.insert(perp("BTCUSDT"));
        let b = reg.insert(perp("ETHUSDT"));
        assert_eq!((a, b), (InstrumentId(0), InstrumentId(1)));
        assert_eq!(reg.insert(perp("BTCUSDT")), a, "idempotent");
        assert_eq!(reg.id(Venue::Binance, b"ETHUSDT"), Some(b));
        assert_eq!(reg.id(Venue::Deribit, b"ETHUSDT"), None);
        assert_eq!(reg.get(b).map(|i| i.name.as_str()), Some("ETHUSDT"));
        assert_eq!(reg.len(), 2);
    }
}
