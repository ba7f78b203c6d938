//! `keel-bench greeks`: ns per option for every path of the Greeks kernel beside the scalar twin
//! and the `blackscholes` crate, on the same book, from one process.

use anyhow::{Context, Result, bail};
use blackscholes::{Greeks as _, Inputs, OptionType, Pricing as _};
use keel_engine::greeks::{
    BookInputs, GreekValues, GreeksColumns, HedgeBook, HedgeColumns, Lanes, OptionKind, OptionRow,
    SpotCache, WideF32, WideF64, price_row, reprice_full, reprice_hedge, reprice_spot,
};
use serde::Serialize;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Flags of `keel-bench greeks`.
#[derive(clap::Args)]
pub struct Args {
    /// Book size in options (repeatable). Default: 1000, 10000 and 100000 in the table; 1000
    /// with --json.
    #[arg(long = "book", value_name = "N")]
    books: Vec<usize>,
    /// Print one JSON object (for one book size) instead of the table.
    #[arg(long)]
    json: bool,
    /// Minimum measuring time per implementation, in milliseconds.
    #[arg(long, default_value_t = 300, value_name = "MS")]
    min_ms: u64,
    /// Seed of the random book.
    #[arg(long, default_value_t = 20_261_124)]
    seed: u64,
}

#[derive(Serialize)]
struct Figure {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'static str>,
    ns_per_option: f64,
}

#[derive(Serialize)]
struct Report {
    book: usize,
    simd_f64_full: Figure,
    simd_f64_spot: Figure,
    simd_f32_full: Figure,
    /// The pricer's per-tick path with `--reprice f32`: price, delta, gamma and vega in f32x16
    /// from per-row terms built in f64 (`reprice_hedge`).
    simd_f32_hedge: Figure,
    scalar_f64_full: Figure,
    /// The scalar twin run over the batch columns (`reprice_full::<f64>`), partly
    /// auto-vectorised by the compiler.
    scalar_f64_batch_loop: Figure,
    crate_baseline: Figure,
    /// The kernel's own exp beside wide's, ns per element (f64 lanes).
    exp_own: Figure,
    exp_wide: Figure,
    cpu: String,
    simd_f64_lanes: &'static str,
}

/// A deterministic Deribit-like book: BTC options, strikes 0.5–1.6× spot, expiries from a day to
/// a year, vols 0.3–1.3, calls and puts, half Black-76 on a forward and half BSM on spot.
pub fn sample_book(n: usize, seed: u64) -> Vec<OptionRow> {
    let mut x = seed | 1;
    let mut u = move || {
        // xorshift64*: deterministic, no dependency.
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let s = 60_000.0;
            let k = (s * (0.5 + 1.1 * u()) / 500.0).round() * 500.0;
            let t = (1.0 + 364.0 * u() * u()) / 365.0;
            let sigma = 0.3 + u();
            let kind = if u() < 0.5 {
                OptionKind::Call
            } else {
                OptionKind::Put
            };
            if u() < 0.5 {
                OptionRow::black76(kind, s * (0.03 * t).exp(), k, t, 0.0, sigma)
            } else {
                OptionRow::bsm(kind, s, k, t, 0.03, 0.0, sigma)
            }
        })
        .collect()
}

/// Runs `f` (one whole-book pass) repeatedly for at least `min` and returns the median
/// ns per option over batches of passes.
fn measure(n: usize, min: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    // Batch passes so that one sample lasts ≥ ~200 µs.
    let t0 = Instant::now();
    f();
    let one = t0.elapsed().as_nanos().max(1) as f64;
    let per_sample = ((200_000.0 / one).ceil() as usize).max(1);
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < min || samples.len() < 5 {
        let t = Instant::now();
        for _ in 0..per_sample {
            f();
        }
        samples.push(t.elapsed().as_nanos() as f64 / (per_sample * n) as f64);
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// The per-option scalar twin behind a call boundary, so the compiler cannot vectorise the loop
/// around it.
#[inline(never)]
fn price_row_outlined(r: &OptionRow) -> GreekValues {
    price_row(r)
}

fn bench_book(n: usize, seed: u64, min: Duration) -> Result<Report> {
    let rows = sample_book(n, seed);
    let mut b64 = BookInputs::<f64>::from_rows(&rows).context("sample book")?;
    let mut g64 = GreeksColumns::for_book(&b64);
    let b32 = BookInputs::<f32>::from_rows(&rows).context("sample book (f32)")?;
    let mut g32 = GreeksColumns::for_book(&b32);

    let simd_full = measure(n, min, || {
        reprice_full::<WideF64>(black_box(&b64), &mut g64);
        black_box(&g64);
    });
    let cache = SpotCache::build::<WideF64>(&b64);
    // The spot path runs on moved spots: move every spot by 0.1 % first.
    for (i, r) in rows.iter().enumerate() {
        b64.set_spot(i, r.s * 1.001).context("moving spots")?;
    }
    let mut spot_err = None;
    let simd_spot = measure(n, min, || {
        if let Err(e) = reprice_spot::<WideF64>(black_box(&b64), &cache, &mut g64) {
            spot_err = Some(e);
        }
        black_box(&g64);
    });
    if let Some(e) = spot_err {
        bail!("spot path: {e}");
    }
    let simd_f32 = measure(n, min, || {
        reprice_full::<WideF32>(black_box(&b32), &mut g32);
        black_box(&g32);
    });
    let terms =
        HedgeBook::<f32>::build(&BookInputs::<f64>::from_rows(&rows).context("sample book")?);
    let mut hedge_out = HedgeColumns::for_book(&terms);
    let simd_hedge = measure(n, min, || {
        reprice_hedge::<WideF32>(black_box(&terms), &mut hedge_out);
        black_box(&hedge_out);
    });
    // The scalar twin one option at a time (a call per option, as a per-option user would
    // run it), and the same twin over the batch columns, where LLVM auto-vectorises parts of
    // the loop: both are printed so that neither flatters the SIMD figure.
    let mut one = vec![GreekValues::default(); n];
    let scalar = measure(n, min, || {
        for (r, o) in black_box(&rows).iter().zip(one.iter_mut()) {
            *o = price_row_outlined(r);
        }
        black_box(&one);
    });
    let scalar_batch = measure(n, min, || {
        reprice_full::<f64>(black_box(&b64), &mut g64);
        black_box(&g64);
    });
    // The crate prices one option per call and recomputes d1/d2 per Greek: the usual way it is
    // used. Its inputs are f32 (the crate's only type) and its Black-76 rows are passed as BSM
    // with q = r, which is the same model.
    let crate_inputs: Vec<Inputs> = rows
        .iter()
        .map(|r| {
            let kind = match r.kind {
                OptionKind::Call => OptionType::Call,
                OptionKind::Put => OptionType::Put,
            };
            Inputs::new(
                kind,
                r.s as f32,
                r.k as f32,
                None,
                r.r as f32,
                r.q as f32,
                r.t as f32,
                Some(r.sigma as f32),
            )
        })
        .collect();
    let mut sink = vec![[0f32; 8]; n];
    let baseline = measure(n, min, || {
        for (inp, o) in black_box(&crate_inputs).iter().zip(sink.iter_mut()) {
            *o = [
                inp.calc_price().unwrap_or(f32::NAN),
                inp.calc_delta().unwrap_or(f32::NAN),
                inp.calc_gamma().unwrap_or(f32::NAN),
                inp.calc_vega().unwrap_or(f32::NAN),
                inp.calc_theta().unwrap_or(f32::NAN),
                inp.calc_rho().unwrap_or(f32::NAN),
                inp.calc_vanna().unwrap_or(f32::NAN),
                inp.calc_vomma().unwrap_or(f32::NAN),
            ];
        }
        black_box(&sink);
    });

    // Vector math rival: the kernel's exp against wide's on the same arguments.
    let xs: Vec<f64> = (0..n.max(64) / 8 * 8)
        .map(|i| -20.0 + 25.0 * (i as f64 / n as f64))
        .collect();
    let mut ys = vec![0.0; xs.len()];
    let exp_own = measure(xs.len(), min / 2, || {
        for (x, y) in black_box(&xs).chunks_exact(8).zip(ys.chunks_exact_mut(8)) {
            keel_engine::greeks::math::exp(wide::f64x8::load(x)).store(y);
        }
        black_box(&ys);
    });
    let exp_wide = measure(xs.len(), min / 2, || {
        for (x, y) in black_box(&xs).chunks_exact(8).zip(ys.chunks_exact_mut(8)) {
            wide::f64x8::load(x).exp_lib().store(y);
        }
        black_box(&ys);
    });

    let fig = |ns| Figure {
        name: None,
        ns_per_option: ns,
    };
    Ok(Report {
        book: n,
        simd_f64_full: fig(simd_full),
        simd_f64_spot: fig(simd_spot),
        simd_f32_full: fig(simd_f32),
        simd_f32_hedge: fig(simd_hedge),
        scalar_f64_full: fig(scalar),
        scalar_f64_batch_loop: fig(scalar_batch),
        crate_baseline: Figure {
            name: Some("blackscholes 0.24 (f32, per option)"),
            ns_per_option: baseline,
        },
        exp_own: fig(exp_own),
        exp_wide: fig(exp_wide),
        cpu: cpu_name(),
        simd_f64_lanes: <WideF64 as Lanes>::NAME,
    })
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Runs the bench as the flags say.
pub fn run(a: &Args) -> Result<()> {
    let books = match (a.books.is_empty(), a.json) {
        (true, true) => vec![1_000],
        (true, false) => vec![1_000, 10_000, 100_000],
        (false, true) if a.books.len() > 1 => {
            bail!("--json reports one book size; give one --book")
        }
        (false, _) => a.books.clone(),
    };
    if let Some(&bad) = books.iter().find(|&&n| n == 0) {
        bail!("--book {bad}: a book needs at least one option");
    }
    let min = Duration::from_millis(a.min_ms);
    if a.json {
        let r = bench_book(books[0], a.seed, min)?;
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!(
        "keel-bench greeks — ns per option (median), one core, {} — f64 lanes: {}",
        cpu_name(),
        <WideF64 as Lanes>::NAME
    );
    println!(
        "{:>8}  {:>10} {:>10} {:>10} {:>10} {:>10} {:>12} {:>12}  {:>9} {:>9}  {:>10}",
        "book",
        "simd f64",
        "simd spot",
        "simd f32",
        "f32 hedge",
        "scalar",
        "scalar loop",
        "blackscholes",
        "vs scalar",
        "vs crate",
        "Mopt/s f64"
    );
    for &n in &books {
        let r = bench_book(n, a.seed, min)?;
        println!(
            "{:>8}  {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>12.2} {:>12.2}  {:>8.1}x {:>8.1}x  {:>10.0}",
            n,
            r.simd_f64_full.ns_per_option,
            r.simd_f64_spot.ns_per_option,
            r.simd_f32_full.ns_per_option,
            r.simd_f32_hedge.ns_per_option,
            r.scalar_f64_full.ns_per_option,
            r.scalar_f64_batch_loop.ns_per_option,
            r.crate_baseline.ns_per_option,
            r.scalar_f64_full.ns_per_option / r.simd_f64_full.ns_per_option,
            r.crate_baseline.ns_per_option / r.simd_f64_full.ns_per_option,
            1e3 / r.simd_f64_full.ns_per_option,
        );
        let mops = |f: &Figure| 1e3 / f.ns_per_option;
        println!(
            "{:>8}  {:>10.0} {:>10.0} {:>10.0} {:>10.0} {:>10.0} {:>12.0} {:>12.1}  (M options/s)",
            "",
            mops(&r.simd_f64_full),
            mops(&r.simd_f64_spot),
            mops(&r.simd_f32_full),
            mops(&r.simd_f32_hedge),
            mops(&r.scalar_f64_full),
            mops(&r.scalar_f64_batch_loop),
            mops(&r.crate_baseline),
        );
        println!(
            "{:>8}  exp: own {:.2} ns, wide {:.2} ns per element; whole book (f64 full) {:.1} µs",
            "",
            r.exp_own.ns_per_option,
            r.exp_wide.ns_per_option,
            r.simd_f64_full.ns_per_option * n as f64 / 1e3
        );
    }
    Ok(())
}
