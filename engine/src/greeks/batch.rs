//! Structure-of-arrays storage for a whole book: aligned, padded columns of inputs, outputs and
//! the spot-move cache, and the validating builder that fills them.
//!
//! Columns are 64-byte aligned and padded to a multiple of [`PAD`] rows with a benign option,
//! so every SIMD width loads whole vectors with no tail loop. The builder is the only way in:
//! it rejects invalid rows with an error naming the row, so the kernel never sees NaN, zero or
//! negative prices or volatilities. Building allocates; repricing never does.

use bytemuck::Pod;
use thiserror::Error;
use wide::{f32x16, f64x8};

/// Rows are padded to a multiple of this (the widest vector: `f32x16`).
pub const PAD: usize = 16;

/// Element type of a column: `f64` or `f32`.
pub trait Element: Pod + Default + PartialOrd + core::fmt::Debug + Send + Sync + 'static {
    /// A 64-byte aligned block of elements, the unit of storage.
    type Block: Pod + Default + Send + Sync + core::fmt::Debug;
    /// Elements per block.
    const PER_BLOCK: usize;
    /// Rounds an `f64` to this type.
    fn from_f64(x: f64) -> Self;
    /// Widens to `f64`.
    fn to_f64(self) -> f64;
}

impl Element for f64 {
    type Block = f64x8;
    const PER_BLOCK: usize = 8;
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}

impl Element for f32 {
    type Block = f32x16;
    const PER_BLOCK: usize = 16;
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

/// One aligned, padded column.
#[derive(Clone, Debug)]
pub struct Column<E: Element> {
    blocks: Vec<E::Block>,
}

impl<E: Element> Column<E> {
    /// A column of `padded_len` zeros; `padded_len` must be a multiple of [`PAD`].
    pub fn zeros(padded_len: usize) -> Self {
        debug_assert_eq!(padded_len % PAD, 0);
        Self {
            blocks: vec![E::Block::default(); padded_len / E::PER_BLOCK],
        }
    }
    /// All rows, padding included.
    #[inline(always)]
    pub fn as_slice(&self) -> &[E] {
        bytemuck::cast_slice(&self.blocks)
    }
    /// All rows, padding included.
    #[inline(always)]
    pub fn as_mut_slice(&mut self) -> &mut [E] {
        bytemuck::cast_slice_mut(&mut self.blocks)
    }
}

/// Call or put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionKind {
    /// Right to buy.
    Call,
    /// Right to sell.
    Put,
}

/// Pricing model of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// Generalised Black-Scholes-Merton on spot `s` with rate `r` and yield `q` (carry b = r − q).
    Bsm,
    /// Black-76 on a forward `s = F`, discounted at `r` (`q` is ignored; rho holds F fixed).
    Black76,
}

/// One option to price, in the units of DESIGN.md (years, decimals).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptionRow {
    /// Call or put.
    pub kind: OptionKind,
    /// BSM on spot or Black-76 on forward.
    pub model: Model,
    /// Spot (BSM) or forward (Black-76).
    pub s: f64,
    /// Strike.
    pub k: f64,
    /// Time to expiry in years; zero or negative means expired (intrinsic value).
    pub t: f64,
    /// Continuously compounded rate (may be negative).
    pub r: f64,
    /// Continuous yield (BSM only; may exceed r).
    pub q: f64,
    /// Volatility (decimal, > 0).
    pub sigma: f64,
}

impl OptionRow {
    /// A European option under BSM.
    pub fn bsm(kind: OptionKind, s: f64, k: f64, t: f64, r: f64, q: f64, sigma: f64) -> Self {
        Self {
            kind,
            model: Model::Bsm,
            s,
            k,
            t,
            r,
            q,
            sigma,
        }
    }
    /// A European option on a forward under Black-76.
    pub fn black76(kind: OptionKind, f: f64, k: f64, t: f64, r: f64, sigma: f64) -> Self {
        Self {
            kind,
            model: Model::Black76,
            s: f,
            k,
            t,
            r,
            q: r,
            sigma,
        }
    }
    /// The forward F = S·e^{(r−q)τ} (BSM) or `s` itself (Black-76).
    pub fn forward(&self) -> f64 {
        match self.model {
            Model::Bsm => self.s * ((self.r - self.q) * self.t.max(0.0)).exp(),
            Model::Black76 => self.s,
        }
    }
}

/// Smallest spot, forward or strike the kernel accepts (keeps S/K a normal float).
pub const MIN_PRICE: f64 = 1e-12;
/// Largest spot, forward or strike the kernel accepts.
pub const MAX_PRICE: f64 = 1e15;
/// Smallest volatility the kernel accepts: 1/σ must stay finite in f32 as well as f64.
pub const MIN_SIGMA: f64 = 1e-8;
/// Largest |r|·τ and |q|·τ the kernel accepts: discount and carry factors e^{±20} stay far
/// inside f32's range, so both precisions price every row the builder admits.
pub const MAX_CARRY: f64 = 20.0;
/// Largest volatility the kernel accepts (500 %).
pub const MAX_SIGMA: f64 = 5.0;
/// Largest |rate| or |yield| the kernel accepts.
pub const MAX_RATE: f64 = 1.0;
/// Longest time to expiry the kernel accepts, in years.
pub const MAX_T: f64 = 100.0;

/// Why a row was refused.
#[derive(Debug, Error, PartialEq)]
pub enum InvalidRow {
    /// A field was NaN or infinite.
    #[error("row {row}: {field} is not a finite number ({})", Num(*.value))]
    NotFinite {
        /// Row index (0-based).
        row: usize,
        /// Field name as in the CSV header.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// A field that must be positive was zero or negative.
    #[error("row {row}: {field} must be > 0 (got {})", Num(*.value))]
    NotPositive {
        /// Row index (0-based).
        row: usize,
        /// Field name.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// A field was outside the range the kernel is accurate over.
    #[error(
        "row {row}: {field} = {} is outside the supported range {} ..= {}",
        Num(*.value),
        Num(*.min),
        Num(*.max)
    )]
    OutOfRange {
        /// Row index (0-based).
        row: usize,
        /// Field name.
        field: &'static str,
        /// The value given.
        value: f64,
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
}

/// Checks one row; `row` is the index used in the error.
pub fn validate(row: usize, o: &OptionRow) -> Result<(), InvalidRow> {
    let fields = [
        ("s", o.s),
        ("k", o.k),
        ("t", o.t),
        ("r", o.r),
        ("q", o.q),
        ("sigma", o.sigma),
    ];
    for (field, value) in fields {
        if !value.is_finite() {
            return Err(InvalidRow::NotFinite { row, field, value });
        }
    }
    for (field, value) in [("s", o.s), ("k", o.k), ("sigma", o.sigma)] {
        if value <= 0.0 {
            return Err(InvalidRow::NotPositive { row, field, value });
        }
    }
    let ranges = [
        ("s", o.s, MIN_PRICE, MAX_PRICE),
        ("k", o.k, MIN_PRICE, MAX_PRICE),
        ("sigma", o.sigma, MIN_SIGMA, MAX_SIGMA),
        ("t", o.t, f64::NEG_INFINITY, MAX_T),
        ("r", o.r, -MAX_RATE, MAX_RATE),
        ("q", o.q, -MAX_RATE, MAX_RATE),
    ];
    let t = o.t.max(0.0);
    let carry = [("r*t", o.r * t), ("q*t", o.q * t)];
    let carry_ranges = carry.map(|(f, v)| (f, v, -MAX_CARRY, MAX_CARRY));
    for (field, value, min, max) in ranges.into_iter().chain(carry_ranges) {
        if value < min || value > max {
            return Err(InvalidRow::OutOfRange {
                row,
                field,
                value,
                min,
                max,
            });
        }
    }
    Ok(())
}

/// A number in an error message: plain where that reads well, scientific otherwise (so 1e300
/// is not printed with 301 digits).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Num(pub f64);

impl core::fmt::Display for Num {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let a = self.0.abs();
        if self.0 == 0.0 || !self.0.is_finite() || (1e-4..1e7).contains(&a) {
            write!(f, "{}", self.0)
        } else {
            write!(f, "{:e}", self.0)
        }
    }
}

/// The kernel's inputs for a whole book, one column per field.
///
/// `omega` is +1 for calls and −1 for puts; `black76` is 1 for Black-76 rows (whose `q` column
/// holds `r`, so that carry b = 0) and 0 for BSM rows.
#[derive(Clone, Debug)]
pub struct BookInputs<E: Element> {
    len: usize,
    id: u64,
    generation: u64,
    /// +1 call, −1 put.
    pub omega: Column<E>,
    /// 1 for Black-76 rows, else 0.
    pub black76: Column<E>,
    /// Spot or forward.
    pub s: Column<E>,
    /// Strike.
    pub k: Column<E>,
    /// Years to expiry.
    pub t: Column<E>,
    /// Rate.
    pub r: Column<E>,
    /// Yield (= r for Black-76 rows).
    pub q: Column<E>,
    /// Volatility.
    pub sigma: Column<E>,
}

/// The benign option written into padding rows (finite Greeks, never read back).
const PADDING_ROW: OptionRow = OptionRow {
    kind: OptionKind::Call,
    model: Model::Bsm,
    s: 1.0,
    k: 1.0,
    t: 1.0,
    r: 0.0,
    q: 0.0,
    sigma: 0.2,
};

/// Rounds `n` up to a multiple of [`PAD`].
pub fn padded(n: usize) -> usize {
    n.div_ceil(PAD) * PAD
}

impl<E: Element> BookInputs<E> {
    /// Validates every row and lays the book out as columns. The first invalid row is reported
    /// by index and nothing is built.
    pub fn from_rows(rows: &[OptionRow]) -> Result<Self, InvalidRow> {
        for (i, o) in rows.iter().enumerate() {
            validate(i, o)?;
        }
        let n = padded(rows.len());
        static NEXT_BOOK_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let mut b = Self {
            len: rows.len(),
            id: NEXT_BOOK_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            generation: 0,
            omega: Column::zeros(n),
            black76: Column::zeros(n),
            s: Column::zeros(n),
            k: Column::zeros(n),
            t: Column::zeros(n),
            r: Column::zeros(n),
            q: Column::zeros(n),
            sigma: Column::zeros(n),
        };
        for i in 0..n {
            b.write(i, rows.get(i).unwrap_or(&PADDING_ROW));
        }
        Ok(b)
    }

    fn write(&mut self, i: usize, o: &OptionRow) {
        let f = E::from_f64;
        self.omega.as_mut_slice()[i] = f(match o.kind {
            OptionKind::Call => 1.0,
            OptionKind::Put => -1.0,
        });
        let (b76, q) = match o.model {
            Model::Bsm => (0.0, o.q),
            Model::Black76 => (1.0, o.r),
        };
        self.black76.as_mut_slice()[i] = f(b76);
        self.s.as_mut_slice()[i] = f(o.s);
        self.k.as_mut_slice()[i] = f(o.k);
        self.t.as_mut_slice()[i] = f(o.t);
        self.r.as_mut_slice()[i] = f(o.r);
        self.q.as_mut_slice()[i] = f(q);
        self.sigma.as_mut_slice()[i] = f(o.sigma);
    }

    /// Replaces row `i` after validating it (e.g. a new vol mark or forward).
    pub fn set_row(&mut self, i: usize, o: &OptionRow) -> Result<(), InvalidRow> {
        if i >= self.len {
            return Err(InvalidRow::OutOfRange {
                row: i,
                field: "row",
                value: i as f64,
                min: 0.0,
                max: self.len as f64 - 1.0,
            });
        }
        validate(i, o)?;
        self.write(i, o);
        self.generation += 1;
        Ok(())
    }

    /// Sets the spot (or forward) of row `i` (a tick that moved only the underlying); refuses a
    /// row index outside the book and a price that is not finite or outside
    /// [`MIN_PRICE`](crate::greeks::MIN_PRICE)..=[`MAX_PRICE`](crate::greeks::MAX_PRICE).
    pub fn set_spot(&mut self, i: usize, s: f64) -> Result<(), InvalidRow> {
        if i >= self.len {
            return Err(InvalidRow::OutOfRange {
                row: i,
                field: "row",
                value: i as f64,
                min: 0.0,
                max: self.len as f64 - 1.0,
            });
        }
        if !(MIN_PRICE..=MAX_PRICE).contains(&s) && s.is_finite() && s > 0.0 {
            return Err(InvalidRow::OutOfRange {
                row: i,
                field: "s",
                value: s,
                min: MIN_PRICE,
                max: MAX_PRICE,
            });
        }
        if !s.is_finite() {
            return Err(InvalidRow::NotFinite {
                row: i,
                field: "s",
                value: s,
            });
        }
        if s <= 0.0 {
            return Err(InvalidRow::NotPositive {
                row: i,
                field: "s",
                value: s,
            });
        }
        self.s.as_mut_slice()[i] = E::from_f64(s);
        Ok(())
    }

    /// Number of real (unpadded) rows.
    pub fn len(&self) -> usize {
        self.len
    }
    /// A process-unique id of this book (a clone keeps it), so a [`super::SpotCache`] can
    /// tell its own book from another.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Bumped by every change other than a spot move; a [`super::SpotCache`] built at another
    /// generation is stale.
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// True when the book has no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Rows including padding.
    pub fn padded_len(&self) -> usize {
        self.s.as_slice().len()
    }
}

/// The kernel's outputs for a whole book, one column per Greek, in DESIGN.md units.
#[derive(Clone, Debug)]
pub struct GreeksColumns<E: Element> {
    len: usize,
    /// Premium in the model's quote currency.
    pub price: Column<E>,
    /// dV/dS.
    pub delta: Column<E>,
    /// d²V/dS².
    pub gamma: Column<E>,
    /// dV/dσ per 1.00 of vol.
    pub vega: Column<E>,
    /// dV/dt per calendar year.
    pub theta: Column<E>,
    /// dV/dr per 1.00 (Black-76: F held).
    pub rho: Column<E>,
    /// d²V/dS dσ.
    pub vanna: Column<E>,
    /// d²V/dσ².
    pub volga: Column<E>,
}

/// One option's outputs in f64.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GreekValues {
    /// Premium.
    pub price: f64,
    /// dV/dS.
    pub delta: f64,
    /// d²V/dS².
    pub gamma: f64,
    /// dV/dσ per 1.00.
    pub vega: f64,
    /// dV/dt per year.
    pub theta: f64,
    /// dV/dr per 1.00.
    pub rho: f64,
    /// d²V/dS dσ.
    pub vanna: f64,
    /// d²V/dσ².
    pub volga: f64,
}

impl GreekValues {
    /// Field names in output order (the `keel greeks` CSV header).
    pub const NAMES: [&'static str; 8] = [
        "price", "delta", "gamma", "vega", "theta", "rho", "vanna", "volga",
    ];
    /// Values in output order.
    pub fn to_array(&self) -> [f64; 8] {
        [
            self.price, self.delta, self.gamma, self.vega, self.theta, self.rho, self.vanna,
            self.volga,
        ]
    }
}

impl<E: Element> GreeksColumns<E> {
    /// Output columns sized for `book`.
    pub fn for_book(book: &BookInputs<E>) -> Self {
        let n = book.padded_len();
        Self {
            len: book.len(),
            price: Column::zeros(n),
            delta: Column::zeros(n),
            gamma: Column::zeros(n),
            vega: Column::zeros(n),
            theta: Column::zeros(n),
            rho: Column::zeros(n),
            vanna: Column::zeros(n),
            volga: Column::zeros(n),
        }
    }
    /// Number of real rows.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Row `i` widened to f64.
    pub fn row(&self, i: usize) -> GreekValues {
        let g = |c: &Column<E>| c.as_slice()[i].to_f64();
        GreekValues {
            price: g(&self.price),
            delta: g(&self.delta),
            gamma: g(&self.gamma),
            vega: g(&self.vega),
            theta: g(&self.theta),
            rho: g(&self.rho),
            vanna: g(&self.vanna),
            volga: g(&self.volga),
        }
    }
    /// Position-weighted sums of every Greek, accumulated in f64 whatever the column type:
    /// Σ qty\[i\]·greek\[i\] over the real rows. `qty` must have [`Self::len`] entries.
    pub fn weighted_sum(&self, qty: &[f64]) -> GreekValues {
        assert_eq!(qty.len(), self.len, "one quantity per row");
        let sum = |c: &Column<E>| -> f64 {
            c.as_slice()[..self.len]
                .iter()
                .zip(qty)
                .map(|(g, q)| g.to_f64() * q)
                .sum()
        };
        GreekValues {
            price: sum(&self.price),
            delta: sum(&self.delta),
            gamma: sum(&self.gamma),
            vega: sum(&self.vega),
            theta: sum(&self.theta),
            rho: sum(&self.rho),
            vanna: sum(&self.vanna),
            volga: sum(&self.volga),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> OptionRow {
        OptionRow::bsm(OptionKind::Call, 100.0, 100.0, 0.5, 0.01, 0.0, 0.3)
    }

    #[test]
    fn columns_are_aligned_and_padded() {
        let book = BookInputs::<f64>::from_rows(&[good(); 17]).unwrap();
        assert_eq!(book.len(), 17);
        assert_eq!(book.padded_len(), 32);
        assert_eq!(book.s.as_slice().as_ptr() as usize % 64, 0);
        let book32 = BookInputs::<f32>::from_rows(&[good(); 3]).unwrap();
        assert_eq!(book32.padded_len(), 16);
        assert_eq!(book32.k.as_slice().as_ptr() as usize % 64, 0);
    }

    #[test]
    fn invalid_rows_are_named() {
        let mut rows = vec![good(); 5];
        rows[3].sigma = 0.0;
        let e = BookInputs::<f64>::from_rows(&rows).unwrap_err();
        assert_eq!(e.to_string(), "row 3: sigma must be > 0 (got 0)");
        rows[3].sigma = 0.3;
        rows[1].s = f64::NAN;
        let e = BookInputs::<f64>::from_rows(&rows).unwrap_err();
        assert!(
            matches!(
                e,
                InvalidRow::NotFinite {
                    row: 1,
                    field: "s",
                    ..
                }
            ),
            "{e}"
        );
        rows[1].s = 100.0;
        rows[4].k = -1.0;
        assert!(matches!(
            BookInputs::<f64>::from_rows(&rows).unwrap_err(),
            InvalidRow::NotPositive {
                row: 4,
                field: "k",
                ..
            }
        ));
        rows[4].k = 100.0;
        rows[2].sigma = 1e-310;
        assert!(matches!(
            BookInputs::<f64>::from_rows(&rows).unwrap_err(),
            InvalidRow::OutOfRange {
                row: 2,
                field: "sigma",
                ..
            }
        ));
        rows[2].sigma = 0.3;
        rows[2].t = 100.0;
        rows[2].r = 0.5;
        let e = BookInputs::<f64>::from_rows(&rows).unwrap_err();
        assert_eq!(
            e.to_string(),
            "row 2: r*t = 50 is outside the supported range -20 ..= 20"
        );
        rows[2].r = 0.01;
        rows[0].sigma = 7.0;
        assert!(matches!(
            BookInputs::<f64>::from_rows(&rows).unwrap_err(),
            InvalidRow::OutOfRange {
                row: 0,
                field: "sigma",
                ..
            }
        ));
    }

    #[test]
    fn set_spot_refuses_bad_prices() {
        let mut book = BookInputs::<f64>::from_rows(&[good(); 2]).unwrap();
        assert!(book.set_spot(1, 0.0).is_err());
        assert!(book.set_spot(1, f64::INFINITY).is_err());
        assert!(book.set_spot(1, 1e300).is_err());
        let e = book.set_spot(2, 100.0).unwrap_err();
        assert!(
            matches!(e, InvalidRow::OutOfRange { field: "row", .. }),
            "{e}"
        );
        book.set_spot(1, 101.0).unwrap();
        assert_eq!(book.s.as_slice()[1], 101.0);
    }
}
