//! The positions file: what the book holds at start-up, as CSV (`instrument,quantity` header,
//! columns in any order, extra columns ignored, `#` comments) or JSON (an array of
//! `{"instrument": .., "quantity": ..}` objects, or one object mapping instrument to quantity).
//!
//! Quantities are in the venue's amount unit (Deribit: options in contracts of 1 BTC, inverse
//! perpetuals and futures in USD); negative is short. Start-up code: allocates freely; every
//! error names the file and the line (CSV) or entry (JSON). An instrument listed twice is an
//! error, never summed silently (a position must not be doubled by a copy-paste).

use std::path::Path;

/// One position as the file states it.
#[derive(Clone, Debug, PartialEq)]
pub struct Position {
    /// The venue's instrument name.
    pub instrument: String,
    /// Signed quantity in the venue's amount unit.
    pub quantity: f64,
    /// Where it was: the CSV line number or the JSON entry index (1-based).
    pub line: usize,
}

/// What was wrong with a positions file.
#[derive(Debug, thiserror::Error)]
pub enum PositionsError {
    /// The file could not be read.
    #[error("positions file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A problem at a line (CSV) or entry (JSON).
    #[error("positions file {source_name}, {at} {line}: {reason}")]
    Bad {
        /// The file (or "<input>").
        source_name: String,
        /// "line" or "entry".
        at: &'static str,
        /// Line or entry number, 1-based (0 = the whole file).
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

fn bad(source: &str, at: &'static str, line: usize, reason: impl Into<String>) -> PositionsError {
    PositionsError::Bad {
        source_name: source.to_string(),
        at,
        line,
        reason: reason.into(),
    }
}

/// Reads and parses a positions file.
pub fn load_positions(path: &Path) -> Result<Vec<Position>, PositionsError> {
    let text = std::fs::read_to_string(path).map_err(|source| PositionsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_positions(&text, &path.display().to_string())
}

/// Parses positions from text (JSON if it starts with `[` or `{`, else CSV); `source` names
/// the input in errors.
pub fn parse_positions(text: &str, source: &str) -> Result<Vec<Position>, PositionsError> {
    let trimmed = text.trim_start();
    let out = if trimmed.starts_with('[') || trimmed.starts_with('{') {
        parse_json(text, source)?
    } else {
        parse_csv(text, source)?
    };
    for (i, p) in out.iter().enumerate() {
        if let Some(first) = out[..i].iter().find(|q| q.instrument == p.instrument) {
            let at = if trimmed.starts_with('[') || trimmed.starts_with('{') {
                "entry"
            } else {
                "line"
            };
            return Err(bad(
                source,
                at,
                p.line,
                format!(
                    "{} is listed twice (first at {at} {}): merge the two quantities",
                    p.instrument, first.line
                ),
            ));
        }
    }
    Ok(out)
}

fn quantity(source: &str, at: &'static str, line: usize, q: f64) -> Result<f64, PositionsError> {
    if q.is_finite() {
        Ok(q)
    } else {
        Err(bad(
            source,
            at,
            line,
            format!("quantity {q} is not a finite number"),
        ))
    }
}

fn parse_csv(text: &str, source: &str) -> Result<Vec<Position>, PositionsError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let Some((hline, header)) = lines.next() else {
        return Err(bad(
            source,
            "line",
            0,
            "empty: expected a header `instrument,quantity`",
        ));
    };
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let find = |name: &str| cols.iter().position(|c| c.eq_ignore_ascii_case(name));
    let (Some(ci), Some(cq)) = (find("instrument"), find("quantity")) else {
        return Err(bad(
            source,
            "line",
            hline,
            format!("header {header:?} must name the columns instrument and quantity"),
        ));
    };
    let mut out = Vec::new();
    for (n, l) in lines {
        let f: Vec<&str> = l.split(',').map(str::trim).collect();
        if f.len() != cols.len() {
            return Err(bad(
                source,
                "line",
                n,
                format!("{} fields, the header has {}", f.len(), cols.len()),
            ));
        }
        let name = f[ci];
        if name.is_empty() {
            return Err(bad(source, "line", n, "empty instrument"));
        }
        let q: f64 = f[cq].parse().map_err(|_| {
            bad(
                source,
                "line",
                n,
                format!("quantity {:?} is not a number", f[cq]),
            )
        })?;
        out.push(Position {
            instrument: name.to_string(),
            quantity: quantity(source, "line", n, q)?,
            line: n,
        });
    }
    Ok(out)
}

fn parse_json(text: &str, source: &str) -> Result<Vec<Position>, PositionsError> {
    use serde_json::Value;
    let v: Value = serde_json::from_str(text)
        .map_err(|e| bad(source, "line", e.line(), format!("not valid JSON: {e}")))?;
    let mut out = Vec::new();
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let n = i + 1;
                let Some(obj) = item.as_object() else {
                    return Err(bad(
                        source,
                        "entry",
                        n,
                        "expected an object {\"instrument\", \"quantity\"}",
                    ));
                };
                if let Some(k) = obj.keys().find(|k| *k != "instrument" && *k != "quantity") {
                    return Err(bad(source, "entry", n, format!("unknown key {k:?}")));
                }
                let Some(name) = obj.get("instrument").and_then(Value::as_str) else {
                    return Err(bad(source, "entry", n, "instrument must be a string"));
                };
                if name.is_empty() {
                    return Err(bad(source, "entry", n, "empty instrument"));
                }
                let Some(q) = obj.get("quantity").and_then(Value::as_f64) else {
                    return Err(bad(source, "entry", n, "quantity must be a number"));
                };
                out.push(Position {
                    instrument: name.to_string(),
                    quantity: quantity(source, "entry", n, q)?,
                    line: n,
                });
            }
        }
        Value::Object(map) => {
            for (i, (name, q)) in map.iter().enumerate() {
                let n = i + 1;
                let Some(q) = q.as_f64() else {
                    return Err(bad(
                        source,
                        "entry",
                        n,
                        format!("quantity of {name} must be a number"),
                    ));
                };
                out.push(Position {
                    instrument: name.clone(),
                    quantity: quantity(source, "entry", n, q)?,
                    line: n,
                });
            }
        }
        _ => return Err(bad(source, "entry", 0, "expected an array or an object")),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_any_column_order_comments_and_extra_columns() {
        let p = parse_positions(
            "# book\nquantity, instrument, note\n-10, BTC-X-100000-C, strangle\n\n5,BTC-PERPETUAL,x\n",
            "t.csv",
        )
        .unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].instrument, "BTC-X-100000-C");
        assert_eq!(p[0].quantity, -10.0);
        assert_eq!(p[0].line, 3);
        assert_eq!(p[1].line, 5);
    }

    #[test]
    fn json_array_and_object() {
        let a = parse_positions(
            r#"[{"instrument":"A","quantity":-1.5},{"instrument":"B","quantity":2}]"#,
            "t.json",
        )
        .unwrap();
        assert_eq!(a[1].quantity, 2.0);
        let o = parse_positions(r#"{"A": 1, "B": -2}"#, "t.json").unwrap();
        assert_eq!(o.len(), 2);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let cases = [
            (
                "instrument,quantity\nA,abc\n",
                "t.csv, line 2: quantity \"abc\" is not a number",
            ),
            ("instrument,quantity\nA,1,2\n", "t.csv, line 2: 3 fields"),
            ("name,qty\nA,1\n", "t.csv, line 1: header"),
            (
                "instrument,quantity\nA,1\nA,2\n",
                "t.csv, line 3: A is listed twice (first at line 2)",
            ),
            ("instrument,quantity\nA,NaN\n", "not a finite number"),
            ("", "empty"),
            (
                r#"[{"instrument":"A"}]"#,
                "t.csv, entry 1: quantity must be a number",
            ),
            (
                r#"[{"instrument":"A","quantity":1,"px":2}]"#,
                "unknown key \"px\"",
            ),
            ("[1,", "not valid JSON"),
        ];
        for (text, want) in cases {
            let e = parse_positions(text, "t.csv").unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let e = load_positions(Path::new("/nonexistent/keel.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/keel.csv"), "{e}");
    }
}
