//! The e2e bench's output: HDR histograms of each measured span, the table, the `--json`
//! object, HdrHistogram percentile-distribution files (.hgrm) and the SVG plot.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use hdrhistogram::Histogram;
use keel_engine::pipeline::TickTrace;
use serde_json::{Value, json};

use super::keel::KeelRun;
use super::rival::RivalRun;
use super::{Args, Results};

/// A latency distribution, ns (1 ns .. 60 s, 3 significant figures).
pub struct Dist {
    h: Histogram<u64>,
}

impl Dist {
    fn new() -> Self {
        Self {
            h: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .expect("1 ns .. 60 s at 3 significant figures is a valid histogram"),
        }
    }

    fn from(values: impl Iterator<Item = u64>) -> Self {
        let mut d = Self::new();
        for v in values {
            d.h.saturating_record(v.max(1));
        }
        d
    }

    fn count(&self) -> u64 {
        self.h.len()
    }

    fn q(&self, q: f64) -> u64 {
        if self.h.is_empty() {
            0
        } else {
            self.h.value_at_quantile(q)
        }
    }

    fn p50(&self) -> u64 {
        self.q(0.5)
    }

    fn max(&self) -> u64 {
        if self.h.is_empty() { 0 } else { self.h.max() }
    }

    fn json(&self) -> Value {
        json!({
            "count": self.count(),
            "p50_ns": self.q(0.5),
            "p90_ns": self.q(0.9),
            "p99_ns": self.q(0.99),
            "p999_ns": self.q(0.999),
            "max_ns": self.max(),
        })
    }

    fn row(&self, name: &str) -> String {
        if self.h.is_empty() {
            return format!("{name:<40} {:>9}\n", "no samples");
        }
        format!(
            "{name:<40} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
            self.count(),
            us(self.q(0.5)),
            us(self.q(0.9)),
            us(self.q(0.99)),
            us(self.q(0.999)),
            us(self.max()),
        )
    }

    /// HdrHistogram's percentile-distribution text (`outputPercentileDistribution`, five ticks
    /// per half-distance), values in microseconds.
    fn hgrm(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:>12} {:>14} {:>10} {:>14}\n",
            "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
        );
        if self.h.is_empty() {
            return s;
        }
        let mut total = 0u64;
        for v in self.h.iter_quantiles(5) {
            let p = v.quantile_iterated_to();
            let value = v.value_iterated_to() as f64 / 1e3;
            total += v.count_since_last_iteration();
            if p < 1.0 {
                let _ = writeln!(
                    s,
                    "{value:>12.3} {p:>14.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - p)
                );
            } else {
                let _ = writeln!(s, "{value:>12.3} {p:>14.12} {total:>10}");
            }
        }
        let _ = writeln!(
            s,
            "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
            self.h.mean() / 1e3,
            self.h.stdev() / 1e3
        );
        let _ = writeln!(
            s,
            "#[Max     = {:>12.3}, Total count    = {:>12}]",
            self.max() as f64 / 1e3,
            self.h.len()
        );
        s
    }
}

fn us(ns: u64) -> String {
    if ns >= 10_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else {
        format!("{:.2} µs", ns as f64 / 1e3)
    }
}

/// The machine the bench ran on.
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub load: String,
    pub date: String,
}

impl Machine {
    pub fn detect() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let load = std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        Self {
            cpu,
            cores: keel_engine::pipeline::available_cores().len(),
            load,
            date: utc_now(),
        }
    }
}

/// Now, UTC, `YYYY-MM-DD HH:MM UTC` (days to civil date: H. Hinnant's algorithm).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3_600,
        (rem % 3_600) / 60
    )
}

/// `b − a` when both are stamped and in order.
fn span(a: u64, b: u64) -> Option<u64> {
    (a != 0 && b != 0 && b >= a).then(|| b - a)
}

/// Keel's distributions.
struct KeelDists {
    t2t: Dist,
    wire: Dist,
    wire_in: Dist,
    wire_out: Dist,
    /// (JSON key, description, distribution), in pipeline order.
    stages: [(&'static str, &'static str, Dist); 5],
}

fn keel_dists(k: &KeelRun) -> KeelDists {
    let m: Vec<(&TickTrace, Option<u64>)> = k.measured().collect();
    let stage = |f: fn(&TickTrace) -> Option<u64>| Dist::from(m.iter().filter_map(|(t, _)| f(t)));
    KeelDists {
        t2t: stage(|t| span(t.recv_ns, t.sent_ns)),
        wire: Dist::from(m.iter().filter_map(|(t, r)| span(t.venue_ns, (*r)?))),
        wire_in: stage(|t| span(t.venue_ns, t.recv_ns)),
        wire_out: Dist::from(m.iter().filter_map(|(t, r)| span(t.sent_ns, (*r)?))),
        stages: [
            (
                "read_parse",
                "socket read + frame decode + parse",
                stage(|t| span(t.recv_ns, t.parsed_ns)),
            ),
            (
                "ring_hop",
                "feed → pricer ring hop (and wait)",
                stage(|t| span(t.parsed_ns, t.dequeued_ns)),
            ),
            (
                "reprice",
                "apply batch + reprice the book",
                stage(|t| span(t.dequeued_ns, t.priced_ns)),
            ),
            (
                "decide",
                "aggregate + risk + policy",
                stage(|t| span(t.priced_ns, t.decided_ns)),
            ),
            (
                "send",
                "intent ring + encode + socket write",
                stage(|t| span(t.decided_ns, t.sent_ns)),
            ),
        ],
    }
}

/// The rival's distributions: tick-to-trade, wire-to-wire, and the two halves of the first.
struct RivalDists {
    t2t: Dist,
    wire: Dist,
    decide: Dist,
    send: Dist,
}

fn rival_dists(r: &RivalRun) -> RivalDists {
    let m: Vec<_> = r.measured().collect();
    RivalDists {
        t2t: Dist::from(m.iter().filter_map(|(s, _)| span(s.recv_ns, s.sent_ns))),
        wire: Dist::from(m.iter().filter_map(|(s, r)| span(s.venue_ns, (*r)?))),
        decide: Dist::from(m.iter().filter_map(|(s, _)| span(s.recv_ns, s.decided_ns))),
        send: Dist::from(m.iter().filter_map(|(s, _)| span(s.decided_ns, s.sent_ns))),
    }
}

/// Files written by [`write_files`].
pub struct Files {
    paths: Vec<PathBuf>,
}

/// Writes the .hgrm percentile distributions and the plot (in `dir`, and at `extra_svg`).
pub fn write_files(
    dir: &Path,
    extra_svg: Option<&Path>,
    r: &Results,
    a: &Args,
    m: &Machine,
) -> Result<Files> {
    std::fs::create_dir_all(dir).with_context(|| format!("--out {}", dir.display()))?;
    let k = keel_dists(&r.keel);
    let c = r.rival.as_ref().map(rival_dists);
    let mut paths = Vec::new();
    let mut put = |name: &str, d: &Dist| -> Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, d.hgrm()).with_context(|| format!("writing {}", p.display()))?;
        paths.push(p);
        Ok(())
    };
    put("keel_tick_to_trade.hgrm", &k.t2t)?;
    put("keel_wire_to_wire.hgrm", &k.wire)?;
    if let Some(c) = &c {
        put("conventional_tick_to_trade.hgrm", &c.t2t)?;
        put("conventional_wire_to_wire.hgrm", &c.wire)?;
    }
    let mut svgs = vec![dir.join("e2e_latency.svg")];
    if let Some(p) = extra_svg {
        svgs.push(p.to_path_buf());
    }
    for p in &svgs {
        plot(p, r, a, &k, c.as_ref(), m)?;
    }
    paths.extend(svgs);
    Ok(Files { paths })
}

/// Percentile axis: x = log10(1 / (1 − p)), so 90 % is 1, 99 % is 2, 99.9 % is 3; the last
/// point is the maximum.
fn percentile_points(d: &Dist) -> Vec<(f64, f64)> {
    if d.h.is_empty() {
        return Vec::new();
    }
    let mut v = Vec::new();
    for it in d.h.iter_quantiles(8) {
        let p = it.quantile_iterated_to();
        if p >= 1.0 {
            break;
        }
        let x = (1.0 / (1.0 - p)).log10();
        let y = it.value_iterated_to() as f64 / 1e3;
        v.push((x, y.max(0.01)));
    }
    let last_x = v.last().map_or(0.0, |p| p.0);
    v.push((last_x + 0.25, d.max() as f64 / 1e3));
    v
}

fn plot(
    path: &Path,
    r: &Results,
    a: &Args,
    k: &KeelDists,
    c: Option<&RivalDists>,
    m: &Machine,
) -> Result<()> {
    use plotters::prelude::*;
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).with_context(|| format!("{}", parent.display()))?;
    }
    let keel_color = RGBColor(200, 30, 45);
    let conv_color = RGBColor(40, 80, 190);
    // (name, points, colour, line width)
    type Series<'a> = (&'a str, Vec<(f64, f64)>, RGBColor, u32);
    let mut series: Vec<Series> = vec![
        (
            "Keel tick-to-trade",
            percentile_points(&k.t2t),
            keel_color,
            3,
        ),
        (
            "Keel wire-to-wire",
            percentile_points(&k.wire),
            keel_color,
            1,
        ),
    ];
    if let Some(c) = c {
        series.push((
            "conventional tick-to-trade",
            percentile_points(&c.t2t),
            conv_color,
            3,
        ));
        series.push((
            "conventional wire-to-wire",
            percentile_points(&c.wire),
            conv_color,
            1,
        ));
    }
    let ys = series.iter().flat_map(|s| s.1.iter().map(|p| p.1));
    let y0 = ys.clone().fold(f64::INFINITY, f64::min);
    let y1 = ys.fold(0.0, f64::max);
    let (y0, y1) = if y0.is_finite() && y0 > 0.0 && y0 < y1 {
        (y0 / 1.5, y1 * 1.5)
    } else {
        (0.1, 1e6)
    };
    // Whole decades of the percentile axis (90 %, 99 %, 99.9 %, ...) fall on the ticks.
    let x1 = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(3.0, f64::max)
        .ceil();
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    let draw = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| draw(&e))?;
    let caption = format!(
        "keel-bench e2e: {} options, {} msg/s, hedge every {} decisions, {} topology, {} reprice; {} ({} cores), {}",
        r.keel.summary.book_rows,
        a.rate,
        a.every,
        r.keel.summary.topology,
        a.reprice_name(),
        short_cpu(&m.cpu),
        m.cores,
        m.date
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 15))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x1, (y0..y1).log_scale())
        .map_err(|e| draw(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile (the last point of each line is the maximum)")
        .y_desc("latency, µs (log scale)")
        .x_labels(x1 as usize + 1)
        .y_labels(12)
        .y_label_formatter(&|y| {
            if *y >= 1.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.2}")
            }
        })
        .x_label_formatter(&|x| percent_label(*x))
        .draw()
        .map_err(|e| draw(&e))?;
    for (name, pts, color, width) in series {
        if pts.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(width)))
            .map_err(|e| draw(&e))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| draw(&e))?;
    root.present().map_err(|e| draw(&e))?;
    Ok(())
}

/// The percentile at x = log10(1 / (1 − p)): `0%`, `90%`, `99%`, `99.9%`, ...
fn percent_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let mut s = format!("{p:.4}");
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    format!("{s}%")
}

fn short_cpu(cpu: &str) -> String {
    cpu.split_whitespace().take(4).collect::<Vec<_>>().join(" ")
}

fn keel_extra(k: &KeelRun) -> Value {
    let s = &k.summary;
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let reprices = s.reprices_full + s.reprices_spot;
    json!({
        "topology": s.topology,
        "book_options": s.book_rows,
        "ticks": s.ticks,
        "ticks_per_s": (s.ticks as f64 / secs).round(),
        "reprices": reprices,
        "reprices_per_s": (reprices as f64 / secs).round(),
        "skipped_ticks": s.skipped_ticks,
        "conflated": s.conflated,
        "hedges": s.hedges,
        "rejects": s.rejects,
        "ring_full": s.ring_full_feed + s.ring_full_intents,
        "trace_drops": s.trace_drops,
        "orders_matched": k.measured().filter(|(_, r)| r.is_some()).count(),
        "receipts_unmatched": k.unmatched_receipts,
    })
}

fn rival_mode(a: &Args) -> &'static str {
    match a.rival {
        super::RivalMode::Concurrent => "concurrent",
        super::RivalMode::After => "after",
        super::RivalMode::Off => "off",
    }
}

pub fn json(r: &Results, m: &Machine, a: &Args, files: &Files) -> String {
    let k = keel_dists(&r.keel);
    let mut keel = k.t2t.json();
    let o = keel.as_object_mut().expect("an object");
    o.insert("wire_to_wire".into(), k.wire.json());
    o.insert("wire_in".into(), k.wire_in.json());
    o.insert("wire_out".into(), k.wire_out.json());
    o.insert(
        "stages".into(),
        Value::Object(
            k.stages
                .iter()
                .map(|(n, _, d)| (n.to_string(), d.json()))
                .collect(),
        ),
    );
    if let Value::Object(extra) = keel_extra(&r.keel) {
        o.extend(extra);
    }
    let ratio = |keel: u64, other: u64| {
        if keel > 0 && other > 0 {
            json!(other as f64 / keel as f64)
        } else {
            Value::Null
        }
    };
    let (conventional, speedup, speedup_wire) = match &r.rival {
        Some(rv) => {
            let c = rival_dists(rv);
            let mut v = c.t2t.json();
            let o = v.as_object_mut().expect("an object");
            o.insert("wire_to_wire".into(), c.wire.json());
            o.insert(
                "stages".into(),
                json!({"receive_to_decided": c.decide.json(), "encode_send": c.send.json()}),
            );
            let secs = rv.elapsed.as_secs_f64().max(1e-9);
            o.insert("ticks".into(), json!(rv.ticks));
            o.insert(
                "ticks_per_s".into(),
                json!((rv.ticks as f64 / secs).round()),
            );
            o.insert("reprices".into(), json!(rv.reprices));
            o.insert("orders".into(), json!(rv.samples.len()));
            (
                v,
                ratio(k.t2t.p50(), c.t2t.p50()),
                ratio(k.wire.p50(), c.wire.p50()),
            )
        }
        None => (Value::Null, Value::Null, Value::Null),
    };
    json!({
        "bench": "e2e",
        "keel": keel,
        "conventional": conventional,
        "speedup_p50": speedup,
        "speedup_wire_p50": speedup_wire,
        "options": r.keel.summary.book_rows,
        "rate": a.rate,
        "every": a.every,
        "duration_s": a.duration,
        "warmup_s": a.warmup,
        "rival": rival_mode(a),
        "topology": r.keel.summary.topology,
        "reprice": a.reprice_name(),
        "pin": a.pin,
        "cores": m.cores,
        "cpu": m.cpu,
        "load_avg": m.load,
        "date": m.date,
        "files": files.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    })
    .to_string()
}

fn ratio(keel: u64, other: u64) -> String {
    if keel > 0 && other > 0 {
        format!("{:.1}×", other as f64 / keel as f64)
    } else {
        "n/a".into()
    }
}

pub fn table(r: &Results, m: &Machine, a: &Args, files: &Files) -> String {
    let k = keel_dists(&r.keel);
    let s = &r.keel.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "keel-bench e2e: {} options, {} msg/s per connection, hedge every {} decisions; Keel {} topology, {} reprice, {}; {} cores, {}; load {}; {}",
        s.book_rows,
        a.rate,
        a.every,
        s.topology,
        a.reprice_name(),
        a.pin
            .as_ref()
            .map(|p| format!("pinned {p}"))
            .unwrap_or_else(|| "unpinned".into()),
        m.cores,
        m.cpu,
        m.load,
        m.date
    );
    let _ = writeln!(
        out,
        "conventional stack (tokio-tungstenite, serde_json, tokio mpsc, scalar Black-76 per option, serde_json order on a WebSocket): {}",
        match a.rival {
            super::RivalMode::Concurrent => "same process, same venue, at the same time",
            super::RivalMode::After => "same process, same venue, after Keel",
            super::RivalMode::Off => "not run",
        }
    );
    let _ = writeln!(
        out,
        "\n{:<40} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "latency", "samples", "p50", "p90", "p99", "p99.9", "max"
    );
    out.push_str(&k.t2t.row("Keel tick-to-trade"));
    let rival = r.rival.as_ref().map(|rv| (rv, rival_dists(rv)));
    if let Some((_, c)) = &rival {
        out.push_str(&c.t2t.row("conventional tick-to-trade"));
    }
    out.push_str(&k.wire.row("Keel wire-to-wire"));
    if let Some((rv, c)) = &rival {
        out.push_str(&c.wire.row("conventional wire-to-wire"));
        let _ = writeln!(
            out,
            "speedup at p50: tick-to-trade {}, wire-to-wire {}",
            ratio(k.t2t.p50(), c.t2t.p50()),
            ratio(k.wire.p50(), c.wire.p50())
        );
        let _ = write!(
            out,
            "\nconventional stages\n{}{}",
            c.decide.row("  receive → repriced + decided"),
            c.send.row("  encode + send")
        );
        let secs = rv.elapsed.as_secs_f64().max(1e-9);
        let _ = writeln!(
            out,
            "conventional: {} ticks ({:.0}/s), {} reprices, {} orders",
            rv.ticks,
            rv.ticks as f64 / secs,
            rv.reprices,
            rv.samples.len()
        );
    }
    let _ = writeln!(out, "\nKeel stages");
    for (_, desc, d) in &k.stages {
        out.push_str(&d.row(&format!("  {desc}")));
    }
    out.push_str(&k.wire_in.row("  keel-sim send → socket read"));
    out.push_str(&k.wire_out.row("  socket write → keel-sim receipt"));
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let reprices = s.reprices_full + s.reprices_spot;
    let _ = writeln!(
        out,
        "Keel: {} ticks ({:.0}/s), {} reprices ({:.0}/s), {} price moves folded into later reprices, {} hedges, {} rejects, ring full {}, {} receipts unmatched",
        s.ticks,
        s.ticks as f64 / secs,
        reprices,
        reprices as f64 / secs,
        s.skipped_ticks,
        s.hedges,
        s.rejects,
        s.ring_full_feed + s.ring_full_intents,
        r.keel.unmatched_receipts
    );
    let _ = writeln!(out, "\nfiles:");
    for p in &files.paths {
        let _ = writeln!(out, "  {}", p.display());
    }
    out
}

/// One point of a sweep.
pub struct SweepRow {
    pub options: usize,
    pub rate: u64,
    pub keel: KeelRun,
}

pub fn sweep_table(rows: &[SweepRow], m: &Machine, a: &Args) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "keel-bench e2e sweep (Keel alone, hedge every {} decisions, {} s each after {} s warm-up); {} cores, {}; load {}; {}",
        a.every, a.duration, a.warmup, m.cores, m.cpu, m.load, m.date
    );
    let _ = writeln!(
        out,
        "{:>8} {:>9} {:>9} {:>10} {:>9} {:>7} {:>10} {:>10} {:>10} {:>10}",
        "options",
        "offered",
        "ticks/s",
        "reprices/s",
        "folded",
        "hedges",
        "t2t p50",
        "t2t p99",
        "w2w p50",
        "reprice50"
    );
    for r in rows {
        let k = keel_dists(&r.keel);
        let s = &r.keel.summary;
        let secs = s.elapsed.as_secs_f64().max(1e-9);
        let rep = s.reprices_full + s.reprices_spot;
        let moves = rep + s.skipped_ticks;
        let _ = writeln!(
            out,
            "{:>8} {:>9} {:>9.0} {:>10.0} {:>8.1}% {:>7} {:>10} {:>10} {:>10} {:>10}",
            r.options,
            r.rate,
            s.ticks as f64 / secs,
            rep as f64 / secs,
            100.0 * s.skipped_ticks as f64 / moves.max(1) as f64,
            s.hedges,
            us(k.t2t.p50()),
            us(k.t2t.q(0.99)),
            us(k.wire.p50()),
            us(k.stages[2].2.p50()),
        );
    }
    let _ = writeln!(
        out,
        "ticks/s: events the pricer took (an option ticker is two: its quote and the venue's Greeks); folded: price-moving events folded into a later reprice (conflation); a run without hedges was held by a data guard"
    );
    out
}

pub fn sweep_json(rows: &[SweepRow], m: &Machine, a: &Args) -> String {
    let points: Vec<Value> = rows
        .iter()
        .map(|r| {
            let k = keel_dists(&r.keel);
            let mut v = keel_extra(&r.keel);
            let o = v.as_object_mut().expect("an object");
            o.insert("options".into(), json!(r.options));
            o.insert("rate".into(), json!(r.rate));
            o.insert("tick_to_trade".into(), k.t2t.json());
            o.insert("wire_to_wire".into(), k.wire.json());
            o.insert("reprice".into(), k.stages[2].2.json());
            v
        })
        .collect();
    json!({
        "bench": "e2e",
        "sweep": points,
        "every": a.every,
        "duration_s": a.duration,
        "warmup_s": a.warmup,
        "cores": m.cores,
        "cpu": m.cpu,
        "load_avg": m.load,
        "date": m.date,
    })
    .to_string()
}
