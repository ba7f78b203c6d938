//! The backtest's file inputs: a recorded price path and a book of options, both small CSVs
//! read whole (no `csv` dependency in the engine: the formats are plain numbers).
//!
//! Recorded path, `t_years,spot[,vol]`: one row per observation, times in years from any
//! origin (strictly increasing), spot > 0, the optional `vol` the pricing volatility at that
//! time (decimal, 0 < vol ≤ 5; every row or none). Book, `kind,strike,expiry_years,qty`:
//! `kind` call|put, strike > 0, expiry in years from the start (> 0), signed quantity
//! (negative = written, not 0). Both: an optional header line (a first line none of whose cells
//! is a number), blank lines and lines starting with `#` are skipped, cells are trimmed.

use crate::greeks::OptionKind;

use super::{BacktestError, Leg};

/// A recorded price path: times (years, from its first row), spots and optional pricing vols.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedPath {
    t: Vec<f64>,
    spot: Vec<f64>,
    vol: Option<Vec<f64>>,
}

impl RecordedPath {
    /// A path from columns; times are shifted to start at 0. Needs ≥ 2 rows, strictly
    /// increasing finite times, finite spots > 0, and vols in (0, 5] if given.
    pub fn new(t: Vec<f64>, spot: Vec<f64>, vol: Option<Vec<f64>>) -> Result<Self, BacktestError> {
        Self::with_lines(t, spot, vol, None)
    }

    /// [`Self::new`], naming row i as line `lines[i]` in errors (row i + 1 without).
    fn with_lines(
        t: Vec<f64>,
        spot: Vec<f64>,
        vol: Option<Vec<f64>>,
        lines: Option<&[usize]>,
    ) -> Result<Self, BacktestError> {
        let bad = |row: usize, why: String| BacktestError::Input {
            what: "path",
            line: if row == 0 {
                0
            } else {
                lines.and_then(|l| l.get(row - 1).copied()).unwrap_or(row)
            },
            reason: why,
        };
        if t.len() < 2 || t.len() != spot.len() || vol.as_ref().is_some_and(|v| v.len() != t.len())
        {
            return Err(bad(
                0,
                format!(
                    "needs at least 2 rows of t_years,spot[,vol], got {}",
                    t.len()
                ),
            ));
        }
        let t0 = t[0];
        for i in 0..t.len() {
            if !t[i].is_finite() || (i > 0 && t[i] <= t[i - 1]) {
                return Err(bad(
                    i + 1,
                    format!("t_years {} is not after the previous row's", t[i]),
                ));
            }
            if !(spot[i].is_finite() && spot[i] > 0.0) {
                return Err(bad(
                    i + 1,
                    format!("spot {} must be a positive number", spot[i]),
                ));
            }
            if let Some(v) = &vol
                && !(v[i] > 0.0 && v[i] <= crate::greeks::MAX_SIGMA)
            {
                return Err(bad(i + 1, format!("vol {} must be in (0, 5]", v[i])));
            }
        }
        Ok(Self {
            t: t.iter().map(|x| x - t0).collect(),
            spot,
            vol,
        })
    }

    /// Reads `t_years,spot[,vol]` CSV text (see the module doc).
    pub fn from_csv(text: &str) -> Result<Self, BacktestError> {
        let (mut t, mut spot, mut vol) = (Vec::new(), Vec::new(), Vec::new());
        let mut width = None;
        let mut lines = Vec::new();
        for (line, cells) in rows(text) {
            lines.push(line);
            let err = |reason: String| BacktestError::Input {
                what: "path",
                line,
                reason,
            };
            if !(2..=3).contains(&cells.len()) || width.is_some_and(|w| w != cells.len()) {
                return Err(err(format!(
                    "expected t_years,spot[,vol] (the same columns on every row), got {} cells",
                    cells.len()
                )));
            }
            width = Some(cells.len());
            let num = |i: usize, name: &str| {
                cells[i]
                    .parse::<f64>()
                    .map_err(|_| err(format!("{name} '{}' is not a number", cells[i])))
            };
            t.push(num(0, "t_years")?);
            spot.push(num(1, "spot")?);
            if cells.len() == 3 {
                vol.push(num(2, "vol")?);
            }
        }
        let vol = (width == Some(3)).then_some(vol);
        Self::with_lines(t, spot, vol, Some(&lines))
    }

    /// Times from the first row, years.
    pub fn times(&self) -> &[f64] {
        &self.t
    }

    /// Spots.
    pub fn spots(&self) -> &[f64] {
        &self.spot
    }

    /// Pricing vols, if recorded.
    pub fn vols(&self) -> Option<&[f64]> {
        self.vol.as_deref()
    }
}

/// Reads a book, `kind,strike,expiry_years,qty` CSV text (see the module doc).
pub fn parse_book(text: &str) -> Result<Vec<Leg>, BacktestError> {
    let mut legs = Vec::new();
    for (line, cells) in rows(text) {
        let err = |reason: String| BacktestError::Input {
            what: "book",
            line,
            reason,
        };
        if cells.len() != 4 {
            return Err(err(format!(
                "expected kind,strike,expiry_years,qty, got {} cells",
                cells.len()
            )));
        }
        let kind = match cells[0].to_ascii_lowercase().as_str() {
            "call" | "c" => OptionKind::Call,
            "put" | "p" => OptionKind::Put,
            other => return Err(err(format!("kind '{other}' is not call or put"))),
        };
        let num = |i: usize, name: &str| {
            cells[i]
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| err(format!("{name} '{}' is not a number", cells[i])))
        };
        let leg = Leg {
            kind,
            strike: num(1, "strike")?,
            expiry: num(2, "expiry_years")?,
            qty: num(3, "qty")?,
        };
        leg.check().map_err(err)?;
        legs.push(leg);
    }
    if legs.is_empty() {
        return Err(BacktestError::Input {
            what: "book",
            line: 0,
            reason: "no options in the book".into(),
        });
    }
    Ok(legs)
}

/// Data rows as (1-based line number, trimmed cells); skips blank lines, `#` comments and a
/// header (a first row none of whose cells is a number).
fn rows(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    let mut first = true;
    text.lines().enumerate().filter_map(move |(i, l)| {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            return None;
        }
        let cells: Vec<&str> = l.split(',').map(str::trim).collect();
        let header = first && cells.iter().all(|c| c.parse::<f64>().is_err());
        first = false;
        (!header).then_some((i + 1, cells))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_with_header_and_vols() {
        let p = RecordedPath::from_csv("t_years,spot,vol\n# recorded\n1.0,100,0.2\n1.5,101,0.25\n")
            .unwrap();
        assert_eq!(p.times(), [0.0, 0.5]);
        assert_eq!(p.spots(), [100.0, 101.0]);
        assert_eq!(p.vols(), Some(&[0.2, 0.25][..]));
        let p = RecordedPath::from_csv("0,100\n0.1,99\n").unwrap();
        assert_eq!(p.vols(), None);
    }

    #[test]
    fn bad_paths_name_the_line() {
        for (text, needle) in [
            ("t,spot\n0,100\n0,101\n", "line 3"),
            ("0,100\n0.1,-1\n", "spot -1"),
            ("0,100\n0.1,x\n", "spot 'x'"),
            ("0,100,0.2\n0.1,101\n", "same columns"),
            ("0,100\n", "at least 2 rows"),
            ("0,100,0\n1,100,0.2\n", "vol 0"),
        ] {
            let e = RecordedPath::from_csv(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn books_parse_and_refuse_bad_legs() {
        let b =
            parse_book("kind,strike,expiry_years,qty\ncall,100,0.5,-2\nput,90,0.25,1\n").unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].kind, OptionKind::Call);
        assert_eq!((b[1].strike, b[1].expiry, b[1].qty), (90.0, 0.25, 1.0));
        for (text, needle) in [
            ("call,100,0.5\n", "got 3 cells"),
            ("fwd,100,0.5,1\n", "kind 'fwd'"),
            ("call,100,0,1\n", "expiry_years"),
            ("call,100,0.5,0\n", "qty"),
            ("call,-5,0.5,1\n", "strike"),
            ("kind,strike,expiry_years,qty\n", "no options"),
        ] {
            let e = parse_book(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
