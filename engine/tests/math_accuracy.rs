//! Accuracy of `greeks::math::{exp, npdf, ncdf, ncdf_with_exp}` against mpmath at 50 digits, on
//! the scalar twin (`f64`), `f64x8` and `f32x16`.
//!
//! The reference points are in `tests/data/{exp,ncdf,npdf}_ref.csv`, written by
//! `tests/data/make_math_reference.py` (see there to regenerate). Each reference value has 20
//! significant digits; it is read as the nearest f64 plus the remainder (recovered exactly from
//! the digits), so the errors below are those of the function, not inflated by the half-ulp
//! rounding of the reference to f64. The f32 instantiation is run only on the points that are
//! exactly representable in f32 (about half of each file), so its input needs no rounding and
//! the reference applies as is.
//!
//! Run `cargo test --release -p keel-engine --test math_accuracy -- --nocapture` to see the
//! table of measured maximum errors; each is asserted against a bound slightly above it.

use keel_engine::greeks::Lanes;
use keel_engine::greeks::math::{exp, exp_neg_half_sq, ncdf, ncdf_with_exp, npdf};
use std::fmt::Write as _;
use std::path::PathBuf;
use wide::{f32x16, f64x4, f64x8};

/// One reference point: f(x) = `hi + lo`, `hi` the f64 nearest the 20-digit reference.
#[derive(Clone, Copy)]
struct Point {
    x: f64,
    hi: f64,
    lo: f64,
}

impl Point {
    /// The reference as the nearest f64.
    fn value(&self) -> f64 {
        self.hi
    }
    /// |got − f(x)| / f(x).
    fn rel_err(&self, got: f64) -> f64 {
        // got − hi is exact whenever got is within a factor 2 of hi (Sterbenz).
        (((got - self.hi) - self.lo) / self.hi).abs()
    }
    /// |got − f(x)|.
    fn abs_err(&self, got: f64) -> f64 {
        ((got - self.hi) - self.lo).abs()
    }
    /// True if x is exactly an f32.
    fn f32_exact(&self) -> bool {
        f64::from(self.x as f32) == self.x
    }
}

/// A decimal string as `mant · 10^exp10` (unsigned; the references are never negative).
fn decimal(s: &str) -> (u128, i32) {
    let (digits, exp) = match s.find(['e', 'E']) {
        Some(i) => (
            &s[..i],
            s[i + 1..].parse::<i32>().expect("decimal exponent"),
        ),
        None => (s, 0),
    };
    let mut mant: u128 = 0;
    let mut frac_digits = 0;
    let mut after_point = false;
    for c in digits.chars() {
        match c {
            '.' => after_point = true,
            '0'..='9' => {
                mant = mant * 10 + u128::from(c as u8 - b'0');
                frac_digits += i32::from(after_point);
            }
            _ => panic!("unexpected character {c:?} in {s:?}"),
        }
    }
    (mant, exp - frac_digits)
}

/// Parses a reference value into `hi + lo`: `hi` is the f64 nearest the decimal, `lo` the
/// decimal minus `hi`, computed from the digits of both with integer arithmetic.
fn parse_ref(s: &str) -> (f64, f64) {
    let hi: f64 = s
        .parse()
        .unwrap_or_else(|e| panic!("bad reference {s:?}: {e}"));
    if hi == 0.0 || !hi.is_normal() {
        return (hi, 0.0);
    }
    let (m, e) = decimal(s);
    // 30 significant digits of hi (Rust prints the exact binary value correctly rounded).
    let (h, eh) = decimal(&format!("{hi:.29e}"));
    // Align both at the smaller decimal exponent; the shift is at most 11 digits (20 against
    // 30 digits, leading exponents at most one apart), so everything fits in i128.
    let e0 = e.min(eh);
    let m = i128::try_from(m * 10u128.pow((e - e0) as u32)).expect("fits");
    let h = i128::try_from(h * 10u128.pow((eh - e0) as u32)).expect("fits");
    let rel = (m - h) as f64 / h as f64;
    (hi, hi * rel)
}

fn load(name: &str) -> Vec<Point> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty());
    let header = lines.next().expect("header line");
    assert!(header.starts_with("x,"), "unexpected header {header:?}");
    let points: Vec<Point> = lines
        .map(|l| {
            let (x, v) = l.split_once(',').unwrap_or_else(|| panic!("bad row {l:?}"));
            let x: f64 = x.parse().unwrap_or_else(|e| panic!("bad x in {l:?}: {e}"));
            let (hi, lo) = parse_ref(v);
            Point { x, hi, lo }
        })
        .collect();
    assert!(points.len() > 1000, "{name}: only {} points", points.len());
    points
}

/// `f` over `xs` on instantiation `V`, `V::LANES` at a time (the last chunk padded with zeros).
fn eval<V: Lanes>(xs: &[V::Elem], f: impl Fn(V) -> V) -> Vec<f64>
where
    V::Elem: Into<f64>,
{
    let mut out = Vec::with_capacity(xs.len());
    let mut buf = vec![V::Elem::default(); V::LANES];
    for chunk in xs.chunks(V::LANES) {
        let mut input = vec![V::Elem::default(); V::LANES];
        input[..chunk.len()].copy_from_slice(chunk);
        f(V::load(&input)).store(&mut buf);
        out.extend(buf[..chunk.len()].iter().map(|&v| v.into()));
    }
    out
}

/// Results of `f64` and `f64x8` on `pts` (and how many lanes of `f64x4`/`f64x8` differ from the
/// scalar twin bit for bit).
struct F64Results {
    scalar: Vec<f64>,
    x8: Vec<f64>,
    differ: usize,
}

fn eval_f64(
    pts: &[Point],
    f1: impl Fn(f64) -> f64,
    f4: impl Fn(f64x4) -> f64x4,
    f8: impl Fn(f64x8) -> f64x8,
) -> F64Results {
    let xs: Vec<f64> = pts.iter().map(|p| p.x).collect();
    let scalar = eval::<f64>(&xs, f1);
    let x4 = eval::<f64x4>(&xs, f4);
    let x8 = eval::<f64x8>(&xs, f8);
    let same = |a: f64, b: f64| a.to_bits() == b.to_bits();
    let differ = (0..xs.len())
        .filter(|&i| !same(scalar[i], x4[i]) || !same(scalar[i], x8[i]))
        .count();
    F64Results { scalar, x8, differ }
}

/// The f32-exact points among `pts` and `f` on `f32x16` at them.
fn eval_f32(pts: &[Point], f: impl Fn(f32x16) -> f32x16) -> (Vec<Point>, Vec<f64>) {
    let pts: Vec<Point> = pts.iter().copied().filter(Point::f32_exact).collect();
    let xs: Vec<f32> = pts.iter().map(|p| p.x as f32).collect();
    let got = eval::<f32x16>(&xs, f);
    (pts, got)
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Rel,
    Abs,
}

/// Maximum error over a region, with where it occurs, and the bound asserted for it.
struct Row {
    function: &'static str,
    instantiation: &'static str,
    region: &'static str,
    kind: Kind,
    n: usize,
    worst: f64,
    at: f64,
    bound: f64,
}

#[derive(Default)]
struct Table {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Table {
    /// Adds a row: the maximum error of `got[i]` against `pts[i]` over the points with `keep`.
    #[allow(clippy::too_many_arguments)]
    fn measure(
        &mut self,
        function: &'static str,
        instantiation: &'static str,
        region: &'static str,
        kind: Kind,
        bound: f64,
        pts: &[Point],
        got: &[f64],
        keep: impl Fn(f64) -> bool,
    ) {
        let (mut n, mut worst, mut at) = (0, 0.0f64, f64::NAN);
        for (p, &g) in pts.iter().zip(got) {
            if !keep(p.x) {
                continue;
            }
            n += 1;
            let err = match kind {
                Kind::Rel => p.rel_err(g),
                Kind::Abs => p.abs_err(g),
            };
            // NaN compares false: make it the worst.
            if err.is_nan() || err > worst {
                worst = if err.is_nan() { f64::INFINITY } else { err };
                at = p.x;
            }
        }
        assert!(n > 0, "{function} {instantiation} {region}: no points");
        self.rows.push(Row {
            function,
            instantiation,
            region,
            kind,
            n,
            worst,
            at,
            bound,
        });
    }

    fn note(&mut self, s: String) {
        self.notes.push(s);
    }

    /// Prints the table in one piece, then fails if any row exceeds its bound.
    fn finish(self, title: &str) {
        let mut s = format!("\n== {title} ==\n");
        let _ = writeln!(
            s,
            "{:<14} {:<14} {:<34} {:>5}  {:<26} {:<24} bound",
            "function", "instantiation", "region", "n", "max error", "at x"
        );
        for r in &self.rows {
            let err = match r.kind {
                Kind::Rel => {
                    let eps = if r.instantiation.starts_with("f32") {
                        f64::from(f32::EPSILON)
                    } else {
                        f64::EPSILON
                    };
                    format!("{:.2e} rel ({:.2} eps)", r.worst, r.worst / eps)
                }
                Kind::Abs => format!("{:.2e} abs", r.worst),
            };
            let _ = writeln!(
                s,
                "{:<14} {:<14} {:<34} {:>5}  {:<26} {:<24} {:.1e}",
                r.function,
                r.instantiation,
                r.region,
                r.n,
                err,
                format!("{}", r.at),
                r.bound
            );
        }
        for n in &self.notes {
            let _ = writeln!(s, "{n}");
        }
        print!("{s}");
        let failed: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.worst.is_nan() || r.worst > r.bound)
            .map(|r| {
                format!(
                    "{} {} {}: {:e} at x = {:e} exceeds {:e}",
                    r.function, r.instantiation, r.region, r.worst, r.at, r.bound
                )
            })
            .collect();
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }
}

const SCALAR: &str = "f64";
const X8: &str = "f64x8";
const X16: &str = "f32x16";

#[test]
fn exp_accuracy() {
    let pts = load("exp_ref.csv");
    let mut t = Table::default();

    let r = eval_f64(&pts, exp::<f64>, exp::<f64x4>, exp::<f64x8>);
    for (inst, got) in [(SCALAR, &r.scalar), (X8, &r.x8)] {
        let near0 = |x: f64| x.abs() <= 1.0;
        let main = |x: f64| (-708.0..=709.0).contains(&x);
        let low = |x: f64| (-708.39..-708.0).contains(&x);
        t.measure("exp", inst, "[-1, 1]", Kind::Rel, 3.2e-16, &pts, got, near0);
        t.measure(
            "exp",
            inst,
            "[-708, 709]",
            Kind::Rel,
            3.6e-16,
            &pts,
            got,
            main,
        );
        t.measure(
            "exp",
            inst,
            "[-708.39, -708)",
            Kind::Rel,
            2.0e-16,
            &pts,
            got,
            low,
        );
        // Outside the resolved range: flushed to 0 below −708.39, +∞ above 709.
        for (p, &g) in pts.iter().zip(got.iter()) {
            if p.x < -708.39 {
                assert_eq!(
                    g,
                    0.0,
                    "exp {inst} at {:e} (reference {:e})",
                    p.x,
                    p.value()
                );
            } else if p.x > 709.0 {
                assert_eq!(g, f64::INFINITY, "exp {inst} at {:e}", p.x);
            }
        }
    }
    t.note(format!(
        "f64x4/f64x8 lanes differing bit for bit from the scalar twin: {} of {}",
        r.differ,
        pts.len()
    ));

    let (p32, got) = eval_f32(&pts, exp::<f32x16>);
    let near0 = |x: f64| x.abs() <= 1.0;
    let main = |x: f64| (-87.0..=88.0).contains(&x);
    let low = |x: f64| (f64::from(-87.33f32)..-87.0).contains(&x);
    t.measure("exp", X16, "[-1, 1]", Kind::Rel, 1.5e-7, &p32, &got, near0);
    t.measure("exp", X16, "[-87, 88]", Kind::Rel, 1.5e-7, &p32, &got, main);
    t.measure(
        "exp",
        X16,
        "[-87.33, -87)",
        Kind::Rel,
        6e-8,
        &p32,
        &got,
        low,
    );
    for (p, &g) in p32.iter().zip(&got) {
        if p.x < f64::from(-87.33f32) {
            assert_eq!(g, 0.0, "exp f32 at {:e}", p.x);
        } else if p.x > 88.0 {
            assert_eq!(g, f64::INFINITY, "exp f32 at {:e}", p.x);
        }
    }
    t.finish("exp: relative error against mpmath");
}

#[test]
fn npdf_accuracy() {
    let pts = load("npdf_ref.csv");
    let mut t = Table::default();
    let r = eval_f64(&pts, npdf::<f64>, npdf::<f64x4>, npdf::<f64x8>);
    for (inst, got) in [(SCALAR, &r.scalar), (X8, &r.x8)] {
        let core = |x: f64| x.abs() <= 1.0;
        let mid = |x: f64| (1.0..=8.0).contains(&x.abs()) && x.abs() > 1.0;
        let far = |x: f64| (8.0..=37.6).contains(&x.abs()) && x.abs() > 8.0;
        t.measure(
            "npdf",
            inst,
            "|x| <= 1",
            Kind::Rel,
            4.0e-16,
            &pts,
            got,
            core,
        );
        t.measure(
            "npdf",
            inst,
            "1 < |x| <= 8",
            Kind::Rel,
            4.0e-16,
            &pts,
            got,
            mid,
        );
        t.measure(
            "npdf",
            inst,
            "8 < |x| <= 37.6",
            Kind::Rel,
            4.5e-16,
            &pts,
            got,
            far,
        );
        // Beyond |x| ≈ 37.64 e^{−x²/2} is below f64::MIN_POSITIVE and flushes to 0.
        for (p, &g) in pts.iter().zip(got.iter()) {
            if p.x.abs() > 37.64 {
                assert!(
                    g == 0.0 && p.value() < 1e-308,
                    "npdf {inst} at {:e}: {g:e}",
                    p.x
                );
            }
        }
    }
    t.note(format!(
        "f64x4/f64x8 lanes differing bit for bit from the scalar twin: {} of {}",
        r.differ,
        pts.len()
    ));
    let (p32, got) = eval_f32(&pts, npdf::<f32x16>);
    let core = |x: f64| x.abs() <= 1.0;
    let all = |x: f64| x.abs() <= 13.0;
    t.measure("npdf", X16, "|x| <= 1", Kind::Rel, 1.6e-7, &p32, &got, core);
    t.measure("npdf", X16, "|x| <= 13", Kind::Rel, 2.1e-7, &p32, &got, all);
    t.finish("npdf: relative error against mpmath");
}

#[test]
fn ncdf_accuracy() {
    let pts = load("ncdf_ref.csv");
    let mut t = Table::default();
    const SMALL: f64 = 0.674_489_75;
    const FAR: f64 = 5.656_854_249_492_381;
    // The tail N(−|x|) is the value at the rows with x ≤ 0 (the file is symmetric).
    let small = |x: f64| x <= 0.0 && -x < SMALL;
    let mid = |x: f64| x <= 0.0 && (SMALL..=FAR).contains(&-x);
    let far = |x: f64| x <= 0.0 && -x > FAR && -x <= 37.5;
    let far10 = |x: f64| far(x) && -x <= 10.0;
    let upper = |x: f64| x > 0.0;

    let r = eval_f64(&pts, ncdf::<f64>, ncdf::<f64x4>, ncdf::<f64x8>);
    for (inst, got) in [(SCALAR, &r.scalar), (X8, &r.x8)] {
        t.measure(
            "ncdf",
            inst,
            "tail |x| < 0.674",
            Kind::Rel,
            4.0e-16,
            &pts,
            got,
            small,
        );
        t.measure(
            "ncdf",
            inst,
            "tail 0.674 <= |x| <= 5.657",
            Kind::Rel,
            7.7e-16,
            &pts,
            got,
            mid,
        );
        t.measure(
            "ncdf",
            inst,
            "tail 5.657 < |x| <= 10",
            Kind::Rel,
            5.5e-16,
            &pts,
            got,
            far10,
        );
        t.measure(
            "ncdf",
            inst,
            "tail 5.657 < |x| <= 37.5",
            Kind::Rel,
            5.6e-16,
            &pts,
            got,
            far,
        );
        t.measure(
            "ncdf",
            inst,
            "N(x), x > 0",
            Kind::Abs,
            1.7e-16,
            &pts,
            got,
            upper,
        );
        // Beyond 37.5 the tail is at most a few f64::MIN_POSITIVE, and subnormal (then 0 once
        // e^{−x²/2} flushes, |x| > 37.64): only its absolute error is meaningful.
        for (p, &g) in pts.iter().zip(got.iter()) {
            if p.x < -37.5 {
                let err = p.abs_err(g);
                assert!(err < f64::MIN_POSITIVE, "ncdf {inst} at {:e}: {g:e}", p.x);
            }
        }
    }
    t.note(format!(
        "f64x4/f64x8 lanes differing bit for bit from the scalar twin: {} of {}",
        r.differ,
        pts.len()
    ));

    // ncdf_with_exp given e = e^{−x²/2} free of the rounding of x²: the product x·x is
    // compensated with its exact remainder (fma), leaving only exp's own error in e. This
    // isolates the rational approximations from the argument error that dominates the far tail.
    let e_comp = |x: f64| {
        let p = x * x;
        let rem = x.mul_add(x, -p); // x² = p + rem exactly
        let e = exp(p * -0.5);
        e.mul_add(-0.5 * rem, e) // e·(1 − rem/2) ≈ e^{−(p + rem)/2}
    };
    let xs: Vec<f64> = pts.iter().map(|p| p.x).collect();
    let got: Vec<f64> = xs.iter().map(|&x| ncdf_with_exp(x, e_comp(x))).collect();
    let inst = "f64, exact x²";
    let f = "ncdf_with_exp";
    t.measure(
        f,
        inst,
        "tail |x| < 0.674",
        Kind::Rel,
        4.0e-16,
        &pts,
        &got,
        small,
    );
    t.measure(
        f,
        inst,
        "tail 0.674 <= |x| <= 5.657",
        Kind::Rel,
        7.7e-16,
        &pts,
        &got,
        mid,
    );
    t.measure(
        f,
        inst,
        "tail 5.657 < |x| <= 37.5",
        Kind::Rel,
        5.6e-16,
        &pts,
        &got,
        far,
    );
    // And ncdf itself is ncdf_with_exp with e from exp_neg_half_sq, bit for bit, on every lane.
    let with_exp = eval::<f64x8>(&xs, |v| ncdf_with_exp(v, exp_neg_half_sq(v)));
    assert!(
        with_exp
            .iter()
            .zip(&r.x8)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "ncdf differs from ncdf_with_exp(x, exp_neg_half_sq(x))"
    );

    let (p32, got) = eval_f32(&pts, ncdf::<f32x16>);
    let tail9 = |x: f64| x <= 0.0 && -x <= 9.0;
    let core = |x: f64| x <= 0.0 && -x <= FAR;
    t.measure(
        "ncdf",
        X16,
        "tail |x| <= 5.657",
        Kind::Rel,
        3.4e-7,
        &p32,
        &got,
        core,
    );
    t.measure(
        "ncdf",
        X16,
        "tail |x| <= 9",
        Kind::Rel,
        3.4e-7,
        &p32,
        &got,
        tail9,
    );
    t.measure(
        "ncdf",
        X16,
        "N(x), x > 0",
        Kind::Abs,
        7e-8,
        &p32,
        &got,
        upper,
    );
    t.finish("ncdf: error against mpmath (tail relative, upper half absolute)");
}

#[test]
fn reference_parsing_recovers_the_remainder() {
    // 0.1 = 0.1000000000000000055511151231257827… in f64: the remainder is −5.55e-18.
    let (hi, lo) = parse_ref("1.0000000000000000000e-1");
    assert_eq!(hi, 0.1);
    assert!(
        (lo / -5.551_115_123_125_783e-18 - 1.0).abs() < 1e-3,
        "{lo:e}"
    );
    let (hi, lo) = parse_ref("1.0");
    assert_eq!((hi, lo), (1.0, 0.0));
    // Just below 1: the decimal exponent of the reference and of hi differ.
    let (hi, lo) = parse_ref("9.9999999999999999989e-1");
    assert_eq!(hi, 1.0);
    assert!((lo / -1.1e-19 - 1.0).abs() < 1e-3, "{lo:e}");
}
