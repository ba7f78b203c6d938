//! `keel greeks`: prices a CSV of options with the SIMD batch kernel and appends the price and
//! Greeks to every row.
//!
//! The whole input is read into memory and parsed once (one reused `ByteRecord`, no allocation
//! per row) into `OptionRow`s, each validated with the engine's own rules as it is read, so the
//! first bad row in file order is the one reported, by its line number. Only when every row is
//! valid is the book built and priced; the output is then written by parsing the in-memory
//! input a second time, copying each input cell verbatim and formatting the Greeks with `ryu`.
//! An `--output` file is written to a temporary file beside it and renamed into place, so a
//! failed run never leaves a partial (or any new) file behind; standard output is written only
//! after everything else has succeeded.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use csv::ByteRecord;
use keel_engine::greeks::{
    BookInputs, Element, GreekValues, GreeksColumns, InvalidRow, Lanes, Model, OptionKind,
    OptionRow, WideF32, WideF64, reprice_full, to_coin, validate,
};

/// `keel greeks --help`, above the flags.
pub const LONG_ABOUT: &str = "\
Price a CSV of options and append price and Greeks to each row (batch pricing).

INPUT: a CSV file with a header line. Required columns, in any order:
  kind (call|put), model (bsm|black76), s, k, t, r, q, sigma
and optionally inverse (0|1). Any other column is an error.
  s      spot (bsm) or forward (black76)
  k      strike
  t      years to expiry (ACT/365); zero or negative means expired
  r, q   continuously compounded rate and yield, decimals (q is ignored by black76)
  sigma  volatility, decimal (0.65 = 65 %)
  inverse=1 makes the row a coin-premium option (Deribit style): price and Greeks in coin.

OUTPUT: the input columns exactly as given, then
  price,delta,gamma,vega,theta,rho,vanna,volga
with vega and volga per 1.00 of volatility (divide by 100 per vol point), theta per
calendar year (divide by 365 per day), rho per 1.00 of rate, vanna = d2V/dS dsigma.

Nothing is written unless every row is valid: the first bad row is reported by its
line number (the header is line 1) and keel exits with code 2.";

/// `keel greeks --help`, below the flags.
pub const AFTER_HELP: &str = "\
Examples:
  keel greeks --input cases.csv --output greeks.csv
  keel greeks --input - --precision f32 < cases.csv > greeks.csv
  keel greeks --input cases.csv --output greeks.csv --json";

/// Arguments of `keel greeks`.
#[derive(Args, Debug)]
pub struct GreeksArgs {
    /// CSV of options to price, with a header line; '-' reads standard input.
    #[arg(long, short, value_name = "FILE")]
    pub input: PathBuf,
    /// Write the output CSV to FILE (atomically) instead of to standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Arithmetic of the kernel (f32: hedge Greeks, printed widened to f64).
    #[arg(long, value_enum, value_name = "PRECISION", default_value_t = Precision::F64)]
    pub precision: Precision,
    /// Print a JSON summary on standard output instead of the CSV (which then
    /// goes only to --output, if given).
    #[arg(long)]
    pub json: bool,
}

/// Element type the kernel computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Precision {
    /// Double precision (the default).
    F64,
    /// Single precision, 16 lanes per vector.
    F32,
}

impl Precision {
    fn name(self) -> &'static str {
        match self {
            Precision::F64 => "f64",
            Precision::F32 => "f32",
        }
    }
}

/// Required input columns, in the order of [`Layout::idx`].
const REQUIRED: [&str; 8] = ["kind", "model", "s", "k", "t", "r", "q", "sigma"];
/// The optional input column.
const INVERSE: &str = "inverse";
const KIND: usize = 0;
const MODEL: usize = 1;
const S: usize = 2;
const K: usize = 3;
const T: usize = 4;
const R: usize = 5;
const Q: usize = 6;
const SIGMA: usize = 7;

/// Where each known column sits in the input.
#[derive(Debug)]
struct Layout {
    /// Index in the record of each of [`REQUIRED`].
    idx: [usize; 8],
    /// Index of the `inverse` column, if present.
    inverse: Option<usize>,
    /// Number of columns in the header.
    width: usize,
}

/// The input, parsed and validated.
struct Parsed {
    rows: Vec<OptionRow>,
    /// `inverse` flag of each row.
    inverse: Vec<bool>,
    /// Byte offset of each row in the input, to name its line in an error found after parsing.
    starts: Vec<u64>,
}

/// The kernel's outputs in the chosen precision.
enum Outputs {
    F64(GreeksColumns<f64>),
    F32(GreeksColumns<f32>),
}

impl Outputs {
    #[inline]
    fn row(&self, i: usize) -> GreekValues {
        match self {
            Outputs::F64(c) => c.row(i),
            Outputs::F32(c) => c.row(i),
        }
    }
}

/// Runs `keel greeks`.
pub fn run(args: &GreeksArgs) -> Result<()> {
    let started = Instant::now();
    let from_stdin = args.input.as_os_str() == "-";
    let name = if from_stdin {
        "<stdin>".to_string()
    } else {
        args.input.display().to_string()
    };

    let data = read_input(&args.input, from_stdin).with_context(|| format!("reading {name}"))?;
    let parsed = parse(&data, &name)?;
    let (outputs, kernel) = match args.precision {
        Precision::F64 => {
            let (c, d) = price::<WideF64>(&data, &parsed, &name)?;
            (Outputs::F64(c), d)
        }
        Precision::F32 => {
            let (c, d) = price::<WideF32>(&data, &parsed, &name)?;
            (Outputs::F32(c), d)
        }
    };

    if let Some(path) = &args.output {
        write_atomically(path, |w| write_csv(w, &data, &parsed, &outputs))
            .with_context(|| format!("writing {}", path.display()))?;
    } else if !args.json {
        let stdout = io::stdout().lock();
        let mut w = BufWriter::with_capacity(1 << 20, stdout);
        write_csv(&mut w, &data, &parsed, &outputs)
            .and_then(|()| w.flush())
            .context("writing standard output")?;
    }

    let n = parsed.rows.len();
    let ns_per_option = (n > 0).then(|| kernel.as_secs_f64() * 1e9 / n as f64);
    if args.json {
        let summary = serde_json::json!({
            "rows": n,
            "precision": args.precision.name(),
            "output": args.output.as_ref().map(|p| p.display().to_string()),
            "price_seconds": kernel.as_secs_f64(),
            "ns_per_option": ns_per_option,
            "total_seconds": started.elapsed().as_secs_f64(),
        });
        let mut out = io::stdout().lock();
        writeln!(out, "{summary}")
            .and_then(|()| out.flush())
            .context("writing standard output")?;
    } else if let Some(path) = &args.output {
        // A closed standard error is no reason to fail a run that succeeded.
        let _ = writeln!(
            io::stderr(),
            "keel greeks: {n} rows priced ({}) in {} of kernel time{}; wrote {} in {:.3} s total",
            args.precision.name(),
            Secs(kernel),
            ns_per_option.map_or(String::new(), |ns| format!(" ({ns:.1} ns/option)")),
            path.display(),
            started.elapsed().as_secs_f64(),
        );
    }
    Ok(())
}

/// Seconds shown with a useful number of digits.
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs_f64();
        if s >= 1.0 {
            write!(f, "{s:.3} s")
        } else if s >= 1e-3 {
            write!(f, "{:.3} ms", s * 1e3)
        } else {
            write!(f, "{:.1} µs", s * 1e6)
        }
    }
}

fn read_input(path: &Path, from_stdin: bool) -> io::Result<Vec<u8>> {
    if from_stdin {
        let mut data = Vec::new();
        io::stdin().lock().read_to_end(&mut data)?;
        Ok(data)
    } else {
        fs::read(path)
    }
}

fn reader(data: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        // Field counts are checked here, to name the line in our own words.
        .flexible(true)
        .from_reader(data)
}

/// Byte offset at which the reader started reading `rec`.
fn start_of(rec: &ByteRecord) -> u64 {
    rec.position().map_or(0, |p| p.byte())
}

/// The 1-based line, as an editor counts it, of the record the reader started reading at byte
/// `pos`. Computed only for error messages: the CSV reader's own line count skips blank lines
/// and the LF of CRLF, and so drifts. The reader's position can sit on line breaks it skipped
/// before the record; the record itself starts after them. A line break is LF, CRLF or a lone
/// CR (quoted line breaks count too, as in an editor).
fn line_at(data: &[u8], pos: u64) -> u64 {
    let mut start = usize::try_from(pos).unwrap_or(usize::MAX).min(data.len());
    while start < data.len() && matches!(data[start], b'\r' | b'\n') {
        start += 1;
    }
    let before = &data[..start];
    let lf = before.iter().filter(|&&b| b == b'\n').count();
    let lone_cr = before
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\r' && data.get(i + 1) != Some(&b'\n'))
        .count();
    1 + (lf + lone_cr) as u64
}

/// A cell shown in an error message: quoted, escaped, and cut short if long.
fn show(cell: &[u8]) -> String {
    let text = String::from_utf8_lossy(cell);
    let mut cut: String = text.chars().take(40).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

fn layout(header: &ByteRecord, line: u64, name: &str) -> Result<Layout> {
    if header.is_empty() || (header.len() == 1 && header[0].trim_ascii().is_empty()) {
        bail!(
            "{name}: empty input (expected a header line with columns {})",
            REQUIRED.join(",")
        );
    }
    let mut idx = [usize::MAX; 8];
    let mut inverse = None;
    for (i, col) in header.iter().enumerate() {
        let col = col.trim_ascii();
        let slot = if col == INVERSE.as_bytes() {
            &mut inverse
        } else if let Some(j) = REQUIRED.iter().position(|r| r.as_bytes() == col) {
            if idx[j] != usize::MAX {
                bail!("{name} line {line}: column {} appears twice", show(col));
            }
            idx[j] = i;
            continue;
        } else {
            bail!(
                "{name} line {line}: unknown column {} (expected {} and optionally {INVERSE})",
                show(col),
                REQUIRED.join(",")
            );
        };
        if slot.is_some() {
            bail!("{name} line {line}: column {} appears twice", show(col));
        }
        *slot = Some(i);
    }
    let missing: Vec<&str> = REQUIRED
        .iter()
        .zip(idx)
        .filter(|&(_, i)| i == usize::MAX)
        .map(|(r, _)| *r)
        .collect();
    if !missing.is_empty() {
        bail!(
            "{name} line {line}: missing column{} {}",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(",")
        );
    }
    Ok(Layout {
        idx,
        inverse,
        width: header.len(),
    })
}

fn parse_num(cell: &[u8], field: &str) -> Result<f64, String> {
    std::str::from_utf8(cell.trim_ascii())
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(|| format!("{field} is not a number (got {})", show(cell)))
}

fn parse_row(rec: &ByteRecord, lay: &Layout) -> Result<(OptionRow, bool), String> {
    let cell = |j: usize| &rec[lay.idx[j]];
    let kind = match cell(KIND).trim_ascii() {
        c if c.eq_ignore_ascii_case(b"call") => OptionKind::Call,
        c if c.eq_ignore_ascii_case(b"put") => OptionKind::Put,
        c => return Err(format!("kind must be call or put (got {})", show(c))),
    };
    let model = match cell(MODEL).trim_ascii() {
        c if c.eq_ignore_ascii_case(b"bsm") => Model::Bsm,
        c if c.eq_ignore_ascii_case(b"black76") => Model::Black76,
        c => return Err(format!("model must be bsm or black76 (got {})", show(c))),
    };
    let num = |j: usize| parse_num(cell(j), REQUIRED[j]);
    let (s, k, t, r, q, sigma) = (num(S)?, num(K)?, num(T)?, num(R)?, num(Q)?, num(SIGMA)?);
    if !q.is_finite() {
        // Black-76 does not use q, but a NaN or infinite value is still a broken input.
        return Err(format!("q is not a finite number ({q})"));
    }
    let row = match model {
        Model::Bsm => OptionRow::bsm(kind, s, k, t, r, q, sigma),
        // Black-76 ignores q (the engine carries r in its place).
        Model::Black76 => OptionRow::black76(kind, s, k, t, r, sigma),
    };
    let inverse = match lay.inverse.map(|i| rec[i].trim_ascii()) {
        None | Some(b"0") => false,
        Some(b"1") => true,
        Some(c) => return Err(format!("inverse must be 0 or 1 (got {})", show(c))),
    };
    if inverse && model != Model::Black76 {
        // DESIGN.md: coin-premium options are Black-76 on the forward of their expiry; the coin
        // conversion holds F fixed, which a BSM row's spot is not.
        return Err(
            "inverse=1 needs model black76 (coin-premium options are priced on the \
                    forward; give the forward as s)"
                .to_string(),
        );
    }
    Ok((row, inverse))
}

/// The engine's message for a refused row, without its "row N: " prefix.
fn row_message(e: &InvalidRow) -> (usize, String) {
    let row = match *e {
        InvalidRow::NotFinite { row, .. }
        | InvalidRow::NotPositive { row, .. }
        | InvalidRow::OutOfRange { row, .. } => row,
    };
    let text = e.to_string();
    let prefix = format!("row {row}: ");
    let msg = text.strip_prefix(&prefix).unwrap_or(&text).to_string();
    (row, msg)
}

fn parse(data: &[u8], name: &str) -> Result<Parsed> {
    let mut rdr = reader(data);
    let header = rdr
        .byte_headers()
        .with_context(|| format!("reading {name}"))?
        .clone();
    let lay = layout(&header, line_at(data, start_of(&header)), name)?;
    // A rough row count from the line count, to size the vectors once.
    let guess = data.iter().filter(|&&b| b == b'\n').count();
    let mut parsed = Parsed {
        rows: Vec::with_capacity(guess),
        inverse: Vec::with_capacity(guess),
        starts: Vec::with_capacity(guess),
    };
    let mut rec = ByteRecord::new();
    while rdr
        .read_byte_record(&mut rec)
        .with_context(|| format!("reading {name}"))?
    {
        let start = start_of(&rec);
        let at = |msg: String| anyhow!("{name} line {}: {msg}", line_at(data, start));
        if rec.len() != lay.width {
            return Err(at(format!(
                "expected {} fields as in the header, found {}",
                lay.width,
                rec.len()
            )));
        }
        let (row, inverse) = parse_row(&rec, &lay).map_err(at)?;
        // The engine's own rules, checked here so that the first bad line in file order is the
        // one reported; `BookInputs::from_rows` checks them again.
        validate(parsed.rows.len(), &row).map_err(|e| at(row_message(&e).1))?;
        parsed.rows.push(row);
        parsed.inverse.push(inverse);
        parsed.starts.push(start);
    }
    Ok(parsed)
}

/// Builds the book in `V`'s element type and runs the full repricing; returns the outputs and
/// the time spent in the kernel alone.
fn price<V: Lanes>(
    data: &[u8],
    parsed: &Parsed,
    name: &str,
) -> Result<(GreeksColumns<V::Elem>, Duration)>
where
    V::Elem: Element,
{
    let book = BookInputs::<V::Elem>::from_rows(&parsed.rows).map_err(|e| {
        let (row, msg) = row_message(&e);
        match parsed.starts.get(row) {
            Some(&start) => anyhow!("{name} line {}: {msg}", line_at(data, start)),
            None => anyhow!("{name}: {e}"),
        }
    })?;
    let mut out = GreeksColumns::for_book(&book);
    let t0 = Instant::now();
    reprice_full::<V>(&book, &mut out);
    Ok((out, t0.elapsed()))
}

/// Writes the header and every row: the input cells verbatim, then the eight outputs.
fn write_csv<W: Write>(w: W, data: &[u8], parsed: &Parsed, outputs: &Outputs) -> io::Result<()> {
    write_records(w, data, parsed, outputs).map_err(|e| match e.into_kind() {
        // Keep the I/O error itself (its kind tells a closed pipe from a full disk).
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    })
}

fn write_records<W: Write>(
    w: W,
    data: &[u8],
    parsed: &Parsed,
    outputs: &Outputs,
) -> csv::Result<()> {
    let mut wtr = csv::WriterBuilder::new().flexible(true).from_writer(w);
    let mut rdr = reader(data);
    let header = rdr.byte_headers()?.clone();
    for cell in header.iter() {
        wtr.write_field(cell)?;
    }
    wtr.write_record(GreekValues::NAMES)?;
    let mut rec = ByteRecord::new();
    let mut num = ryu::Buffer::new();
    let mut i = 0;
    while i < parsed.rows.len() && rdr.read_byte_record(&mut rec)? {
        let mut g = outputs.row(i);
        if parsed.inverse[i] {
            g = to_coin(&g, parsed.rows[i].forward());
        }
        for cell in rec.iter() {
            wtr.write_field(cell)?;
        }
        for x in g.to_array() {
            // + 0.0 turns −0.0 into 0.0: a zero Greek has no sign worth printing.
            wtr.write_field(num.format(x + 0.0))?;
        }
        wtr.write_record(None::<&[u8]>)?;
        i += 1;
    }
    wtr.flush()?;
    Ok(())
}

/// Removes the temporary file unless it was renamed into place.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Writes `path` through a temporary file in the same directory, renamed over `path` only after
/// `fill` and the flush succeeded. A symbolic link is followed (its target is replaced, the
/// link kept); anything else that is not a regular file (a FIFO, a device) is refused, since a
/// rename would replace it: write to standard output instead.
fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let resolved;
    let path = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            resolved = fs::canonicalize(path)?;
            resolved.as_path()
        }
        _ => path,
    };
    if let Ok(m) = fs::metadata(path)
        && !m.is_file()
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (write to standard output and redirect instead)",
        ));
    }
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".keel-tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
    let mut guard = TempGuard(Some(tmp.clone()));
    let mut w = BufWriter::with_capacity(1 << 20, file);
    fill(&mut w)?;
    w.flush()?;
    drop(w);
    fs::rename(&tmp, path)?;
    guard.0 = None;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(cols: &str) -> ByteRecord {
        ByteRecord::from(cols.split(',').collect::<Vec<_>>())
    }

    #[test]
    fn layout_accepts_any_order_and_optional_inverse() {
        let l = layout(&header("sigma,q,r,t,k,s,model,kind,inverse"), 1, "x").unwrap();
        assert_eq!(l.idx, [7, 6, 5, 4, 3, 2, 1, 0]);
        assert_eq!(l.inverse, Some(8));
        assert_eq!(l.width, 9);
        assert!(
            layout(&header("kind,model,s,k,t,r,q,sigma"), 1, "x")
                .unwrap()
                .inverse
                .is_none()
        );
    }

    #[test]
    fn layout_names_the_bad_column() {
        let e = layout(&header("kind,model,s,k,t,r,q,sigma,vol"), 1, "a.csv").unwrap_err();
        assert!(e.to_string().contains("unknown column \"vol\""), "{e}");
        let e = layout(&header("kind,model,s,k,t,r,q"), 1, "a.csv").unwrap_err();
        assert_eq!(e.to_string(), "a.csv line 1: missing column sigma");
        let e = layout(&header("kind,model,s,s,k,t,r,q,sigma"), 1, "a.csv").unwrap_err();
        assert!(e.to_string().contains("column \"s\" appears twice"), "{e}");
    }

    #[test]
    fn lines_are_counted_as_an_editor_does() {
        // Where the reader says each record starts, and the line an editor shows it on.
        // (input, [(reader's start offset, editor's line)] for the header and each record)
        type Case = (&'static [u8], &'static [(u64, u64)]);
        let cases: [Case; 4] = [
            (b"h\na\nb\n", &[(0, 1), (2, 2), (4, 3)]),
            (b"\xef\xbb\xbfh\r\n\r\na\r\nb", &[(0, 1), (5, 3), (10, 4)]),
            (b"\n\nh\n\"x\ny\"\nb", &[(0, 3), (4, 4), (10, 6)]),
            (b"h\ra\rb", &[(0, 1), (2, 2), (4, 3)]),
        ];
        for (data, want) in cases {
            let mut rdr = reader(data);
            let mut got = vec![start_of(rdr.byte_headers().unwrap())];
            let mut rec = ByteRecord::new();
            while rdr.read_byte_record(&mut rec).unwrap() {
                got.push(start_of(&rec));
            }
            let got: Vec<(u64, u64)> = got.iter().map(|&p| (p, line_at(data, p))).collect();
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn engine_messages_lose_their_row_prefix() {
        let e = InvalidRow::NotPositive {
            row: 5,
            field: "sigma",
            value: 0.0,
        };
        assert_eq!(
            row_message(&e),
            (5, "sigma must be > 0 (got 0)".to_string())
        );
    }
}
