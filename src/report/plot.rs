//! Plots of a run directory (`metrics.jsonl` → `learning_curves.{svg,png}`) and of a sweep
//! directory (`runs.csv` → every run's learning curves plus `sweep.{svg,png}`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Deserialize;
use thiserror::Error;

use crate::report::runs_table::{mean_std, RunsTable, RunsTableError};
use crate::run::write_atomic;

/// What can go wrong while plotting.
#[derive(Debug, Error)]
pub enum PlotError {
    /// The directory to plot does not exist.
    #[error("{path}: no such directory")]
    MissingDir {
        /// The path given.
        path: String,
    },
    /// The directory has neither `metrics.jsonl` nor `runs.csv`.
    #[error("{path}: no metrics.jsonl (a run directory) or runs.csv (a sweep directory)")]
    NothingToPlot {
        /// The directory.
        path: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The OS's message.
        message: String,
    },
    /// A line of `metrics.jsonl` is not a metrics record.
    #[error("{path}:{line}: malformed metrics record: {message}")]
    BadLine {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A file has no records.
    #[error("{path}: empty (no records to plot)")]
    Empty {
        /// The file.
        path: String,
    },
    /// `runs.csv` is not in the shape `hypermod sweep` writes.
    #[error("{path}: {message}")]
    BadCsv {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// `runs.csv` could not be read.
    #[error(transparent)]
    Runs(#[from] RunsTableError),
    /// The sweep's experiment could not be told from its first run's config.
    #[error("{}: cannot tell the sweep's experiment: {source}", dir.display())]
    Experiment {
        /// The sweep directory.
        dir: PathBuf,
        /// Why (a missing or unreadable config, an unknown experiment).
        #[source]
        source: Box<crate::Error>,
    },
    /// plotters failed to draw or encode.
    #[error("drawing {path}: {message}")]
    Render {
        /// The output file.
        path: String,
        /// plotters' message.
        message: String,
    },
}

type Result<T> = std::result::Result<T, PlotError>;

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> PlotError + '_ {
    move |e| PlotError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Loss and accuracy of one evaluation set (nulls, as JSON writes NaN, are kept as gaps).
#[derive(Debug, Clone, Deserialize)]
struct SetMetrics {
    loss: Option<f64>,
    acc: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Record {
    step: f64,
    sets: BTreeMap<String, SetMetrics>,
}

/// One evaluation of a set: (outer step, query loss, query accuracy); `None` is a gap.
type Point = (f64, Option<f64>, Option<f64>);

/// Chooses the plotted value (loss or accuracy) of a point.
type Pick = fn(&Point) -> Option<f64>;

/// One line per evaluation set: (step, loss, acc) points.
struct Curves {
    sets: Vec<(String, Vec<Point>)>,
}

/// Plot order: valid, test, ood, ood_k1, ood_k2, …, then the rest alphabetically.
fn set_rank(name: &str) -> (u32, u64, String) {
    match name {
        "valid" => (0, 0, String::new()),
        "test" => (1, 0, String::new()),
        "ood" => (2, 0, String::new()),
        _ => match name
            .strip_prefix("ood_k")
            .and_then(|k| k.parse::<u64>().ok())
        {
            Some(k) => (3, k, String::new()),
            None => (4, 0, name.to_string()),
        },
    }
}

fn read_metrics(path: &Path) -> Result<Curves> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let mut by_set: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    let mut records = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: Record = serde_json::from_str(line).map_err(|e| PlotError::BadLine {
            path: path.display().to_string(),
            line: i + 1,
            message: e.to_string(),
        })?;
        records += 1;
        for (name, m) in r.sets {
            let fin = |v: Option<f64>| v.filter(|x| x.is_finite());
            by_set
                .entry(name)
                .or_default()
                .push((r.step, fin(m.loss), fin(m.acc)));
        }
    }
    if records == 0 || by_set.is_empty() {
        return Err(PlotError::Empty {
            path: path.display().to_string(),
        });
    }
    let mut sets: Vec<_> = by_set.into_iter().collect();
    sets.sort_by_key(|(n, _)| set_rank(n));
    Ok(Curves { sets })
}

/// tab10: distinguishable line colours.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const FONT: &str = "sans-serif";

fn render_err(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> PlotError + '_ {
    move |e| PlotError::Render {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Renders `draw` to `<stem>.svg` and `<stem>.png` in `dir`, both written atomically.
fn render_both<F, G>(
    dir: &Path,
    stem: &str,
    size: (u32, u32),
    svg: F,
    png: G,
) -> Result<Vec<PathBuf>>
where
    F: FnOnce(&DrawingArea<SVGBackend, Shift>) -> std::result::Result<(), String>,
    G: FnOnce(&DrawingArea<BitMapBackend, Shift>) -> std::result::Result<(), String>,
{
    let svg_path = dir.join(format!("{stem}.svg"));
    let png_path = dir.join(format!("{stem}.png"));
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        svg(&root).map_err(|e| render_err(&svg_path)(&e))?;
        root.present().map_err(|e| render_err(&svg_path)(&e))?;
    }
    write_atomic(&svg_path, text.as_bytes()).map_err(|e| PlotError::Io {
        path: svg_path.display().to_string(),
        message: e.to_string(),
    })?;
    // The bitmap backend picks the encoder from the extension: keep `.png` last.
    let tmp = dir.join(format!("{stem}.tmp.png"));
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        png(&root).map_err(|e| render_err(&png_path)(&e))?;
        root.present().map_err(|e| render_err(&png_path)(&e))?;
    }
    std::fs::rename(&tmp, &png_path).map_err(io_err(&png_path))?;
    Ok(vec![svg_path, png_path])
}

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// A tick label: at most 4 significant decimals, no float noise (`0.6000000001` → `0.6`).
fn tick(v: f64) -> String {
    let digits = if v.abs() >= 1.0 || v == 0.0 {
        3
    } else {
        (3 - v.abs().log10().floor() as i32).clamp(3, 12) as usize
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// Min and max of the finite values, if any.
fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A linear range around `[lo, hi]` with 5 % padding (and a minimum height).
fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let pad = ((hi - lo) * 0.05).max(1e-3 * hi.abs().max(1.0));
    (lo - pad)..(hi + pad)
}

/// Whether the loss axis should be logarithmic: positive values spanning more than a decade.
pub fn wants_log(lo: f64, hi: f64) -> bool {
    lo > 0.0 && hi / lo > 10.0
}

#[allow(clippy::too_many_arguments)]
fn curve_panel<DB, Y>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    y_desc: &str,
    x_range: std::ops::Range<f64>,
    y_spec: Y,
    curves: &Curves,
    pick: Pick,
    legend: SeriesLabelPosition,
) -> std::result::Result<(), String>
where
    DB: DrawingBackend,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, y_spec)
        .map_err(s)?;
    chart
        .configure_mesh()
        .x_desc("outer step")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| tick(*y))
        .y_desc(y_desc)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.1))
        .draw()
        .map_err(s)?;
    for (i, (name, pts)) in curves.sets.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let style = ShapeStyle::from(&color).stroke_width(2);
        // Split at gaps (non-finite values) so a diverged evaluation breaks the line.
        let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for p in pts {
            match pick(p) {
                Some(v) => segments.last_mut().unwrap().push((p.0, v)),
                None => segments.push(Vec::new()),
            }
        }
        let mut first = true;
        for seg in segments.into_iter().filter(|s| !s.is_empty()) {
            let series = chart
                .draw_series(LineSeries::new(seg.clone(), style))
                .map_err(s)?;
            if first {
                series
                    .label(name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], style));
                first = false;
            }
            chart
                .draw_series(seg.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                .map_err(s)?;
        }
    }
    chart
        .configure_series_labels()
        .position(legend)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .margin(10)
        .draw()
        .map_err(s)?;
    Ok(())
}

/// The corner of the panel that the curves cross least, for the legend.
fn legend_corner(
    curves: &Curves,
    pick: Pick,
    log_y: bool,
    frac: f64,
) -> (SeriesLabelPosition, bool) {
    let ty = |v: f64| if log_y { v.ln() } else { v };
    let lines: Vec<Vec<(f64, f64)>> = curves
        .sets
        .iter()
        .map(|(_, pts)| {
            pts.iter()
                .filter_map(|p| pick(p).map(|v| (p.0, ty(v))))
                .collect()
        })
        .collect();
    let all = lines.iter().flatten();
    let (Some((x0, x1)), Some((y0, y1))) = (span(all.clone().map(|p| p.0)), span(all.map(|p| p.1)))
    else {
        return (SeriesLabelPosition::UpperRight, false);
    };
    let norm = |(x, y): (f64, f64)| {
        (
            (x - x0) / (x1 - x0).max(1e-12),
            (y - y0) / (y1 - y0).max(1e-12),
        )
    };
    // Sample every line densely, count the samples inside each corner's box (legend-sized).
    let mut samples = Vec::new();
    for line in &lines {
        for w in line.windows(2) {
            let (a, b) = (norm(w[0]), norm(w[1]));
            for k in 0..=20 {
                let t = k as f64 / 20.0;
                samples.push((a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t));
            }
        }
        if line.len() == 1 {
            samples.push(norm(line[0]));
        }
    }
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let (bw, bh) = (0.3, frac);
    let count = |right: bool, upper: bool| {
        samples
            .iter()
            .filter(|(x, y)| {
                let inx = if right { *x >= 1.0 - bw } else { *x <= bw };
                let iny = if upper { *y >= 1.0 - bh } else { *y <= bh };
                inx && iny
            })
            .count()
    };
    match corners.into_iter().find(|(_, r, u)| count(*r, *u) == 0) {
        Some((pos, _, _)) => (pos, false),
        // Every corner is crossed: put the legend top right above headroom added for it.
        None => (SeriesLabelPosition::UpperRight, true),
    }
}

/// Fraction of a panel's plot height the legend of `n` entries takes.
fn legend_frac(n: usize) -> f64 {
    ((n as f64 * 20.0 + 30.0) / 400.0).min(0.6)
}

/// The range `lo..hi` stretched upwards so that its top `frac` is empty.
fn with_headroom(lo: f64, hi: f64, frac: f64) -> f64 {
    lo + (hi - lo) / (1.0 - frac)
}

fn draw_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    curves: &Curves,
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(s)?;
    let root = root.titled(title, (FONT, 26)).map_err(s)?;
    let panels = root.split_evenly((1, 2));
    let steps =
        span(curves.sets.iter().flat_map(|(_, p)| p.iter().map(|q| q.0))).unwrap_or((0.0, 1.0));
    let x_range = if steps.1 > steps.0 {
        steps.0..steps.1 + (steps.1 - steps.0) * 0.02
    } else {
        (steps.0 - 1.0)..(steps.1 + 1.0)
    };
    let losses = span(
        curves
            .sets
            .iter()
            .flat_map(|(_, p)| p.iter().filter_map(|q| q.1)),
    );
    let accs = span(
        curves
            .sets
            .iter()
            .flat_map(|(_, p)| p.iter().filter_map(|q| q.2)),
    );
    let (llo, lhi) = losses.unwrap_or((0.0, 1.0));
    let frac = legend_frac(curves.sets.len());
    let log = wants_log(llo, lhi);
    let loss_pick: Pick = if log {
        |p| p.1.filter(|v| *v > 0.0)
    } else {
        |p| p.1
    };
    let (loss_legend, room) = legend_corner(curves, loss_pick, log, frac);
    if log {
        let (lo, hi) = ((llo / 1.2).ln(), (lhi * 1.2).ln());
        let hi = if room {
            with_headroom(lo, hi, frac)
        } else {
            hi
        };
        curve_panel(
            &panels[0],
            "query loss (log scale)",
            "query KL loss",
            x_range.clone(),
            (lo.exp()..hi.exp()).log_scale(),
            curves,
            loss_pick,
            loss_legend,
        )?;
    } else {
        curve_panel(
            &panels[0],
            "query loss",
            "query KL loss",
            x_range.clone(),
            {
                let r = padded(llo, lhi);
                let hi = if room {
                    with_headroom(r.start, r.end, frac)
                } else {
                    r.end
                };
                r.start..hi
            },
            curves,
            loss_pick,
            loss_legend,
        )?;
    }
    let (alo, ahi) = accs.unwrap_or((0.0, 1.0));
    let r = padded(alo, ahi);
    let (lo, hi) = (
        r.start.max(0.0),
        r.end.min(1.0).max(r.start.max(0.0) + 1e-3),
    );
    let acc_pick: Pick = |p| p.2;
    let (acc_legend, room) = legend_corner(curves, acc_pick, false, frac);
    let hi = if room {
        with_headroom(lo, hi, frac)
    } else {
        hi
    };
    curve_panel(
        &panels[1],
        "query accuracy",
        "query accuracy",
        x_range,
        lo..hi,
        curves,
        acc_pick,
        acc_legend,
    )
}

fn check_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Err(PlotError::MissingDir {
            path: dir.display().to_string(),
        });
    }
    Ok(())
}

fn run_name(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

/// Plots `dir/metrics.jsonl` into `dir/learning_curves.{svg,png}`; returns the files written.
pub fn plot_run(dir: &Path) -> Result<Vec<PathBuf>> {
    check_dir(dir)?;
    let metrics = dir.join("metrics.jsonl");
    if !metrics.is_file() {
        return Err(PlotError::NothingToPlot {
            path: dir.display().to_string(),
        });
    }
    let curves = read_metrics(&metrics)?;
    let title = format!("learning curves: {}", run_name(dir));
    render_both(
        dir,
        "learning_curves",
        (1400, 560),
        |r| draw_curves(r, &title, &curves),
        |r| draw_curves(r, &title, &curves),
    )
}

/// What a sweep plot compares per grid point, chosen by the experiment: one metric in two
/// `runs.csv` columns (e.g. final in-distribution and OOD accuracy) and their gap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepPlot {
    /// The metric, for axis titles ("accuracy").
    pub metric: &'static str,
    /// Legend name and `runs.csv` column of the first series.
    pub first: (&'static str, &'static str),
    /// Legend name and `runs.csv` column of the second series.
    pub second: (&'static str, &'static str),
}

/// One grid point of a sweep: its label and the per-seed values of both series.
struct SweepPoint {
    label: String,
    test: Vec<f64>,
    ood: Vec<f64>,
}

struct Sweep {
    spec: SweepPlot,
    grid_keys: Vec<String>,
    points: Vec<SweepPoint>,
    runs: Vec<String>,
}

/// The experiment's [`SweepPlot`], from the config of the sweep's first run (every run of a sweep
/// is the same experiment).
fn sweep_plot_of(dir: &Path, table: &RunsTable, csv: &Path) -> Result<SweepPlot> {
    let run = table.column("run").map_err(|message| PlotError::BadCsv {
        path: csv.display().to_string(),
        message,
    })?;
    let first = table
        .rows
        .first()
        .map(|r| dir.join(&r[run]).join("config.toml"));
    let err = |source: crate::Error| PlotError::Experiment {
        dir: dir.to_path_buf(),
        source: Box::new(source),
    };
    let config = first.ok_or_else(|| {
        err(crate::Error::from(RunsTableError::Empty {
            path: csv.display().to_string(),
        }))
    })?;
    let t = crate::config::read_table(&config).map_err(|e| err(e.into()))?;
    Ok(crate::experiments::Kind::of_table(&t, &config)
        .map_err(err)?
        .sweep_plot())
}

fn read_sweep(path: &Path, table: &RunsTable, spec: SweepPlot) -> Result<Sweep> {
    let bad = |message: String| PlotError::BadCsv {
        path: path.display().to_string(),
        message,
    };
    let (test, ood, run) = (
        table.column(spec.first.1).map_err(bad)?,
        table.column(spec.second.1).map_err(bad)?,
        table.column("run").map_err(bad)?,
    );
    let values = |rows: &[usize], col: usize| -> Result<Vec<f64>> {
        rows.iter()
            .map(|&i| table.number(i, col).map_err(bad))
            .collect()
    };
    let points = table
        .grid_points()
        .into_iter()
        .map(|p| {
            Ok(SweepPoint {
                test: values(&p.rows, test)?,
                ood: values(&p.rows, ood)?,
                label: p.label,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Sweep {
        spec,
        grid_keys: table.grid_keys().to_vec(),
        points,
        runs: table.rows.iter().map(|r| r[run].clone()).collect(),
    })
}

/// A sweep-panel series: legend name, colour, x offset and per-grid-point (mean, std).
type Series<'a> = (&'a str, RGBColor, f64, Vec<(f64, f64)>);

/// Error-bar points (mean ± std) on a categorical x axis of grid points.
fn bar_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    labels: &[String],
    series: &[Series<'_>],
    zero_line: bool,
) -> std::result::Result<(), String> {
    let n = labels.len();
    let vals = series
        .iter()
        .flat_map(|(_, _, _, v)| v.iter().flat_map(|(m, sd)| [m - sd, m + sd]));
    let (lo, hi) = span(vals.chain(zero_line.then_some(0.0))).unwrap_or((0.0, 1.0));
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..(n as f64 - 0.5), {
            // Room above the points for the legend.
            let r = padded(lo, hi);
            r.start..with_headroom(r.start, r.end, 0.18)
        })
        .map_err(s)?;
    let fmt = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
            labels[i as usize].clone()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(n)
        .x_label_formatter(&fmt)
        .y_label_formatter(&|y| tick(*y))
        .disable_x_mesh()
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.1))
        .draw()
        .map_err(s)?;
    if zero_line {
        chart
            .draw_series(LineSeries::new(
                vec![(-0.5, 0.0), (n as f64 - 0.5, 0.0)],
                BLACK.mix(0.5),
            ))
            .map_err(s)?;
    }
    for (name, color, offset, v) in series {
        let color = *color;
        let style = ShapeStyle::from(&color).stroke_width(2);
        chart
            .draw_series(v.iter().enumerate().map(|(i, (m, sd))| {
                ErrorBar::new_vertical(i as f64 + offset, m - sd, *m, m + sd, style, 10)
            }))
            .map_err(s)?
            .label(*name)
            .legend(move |(x, y)| Circle::new((x + 8, y), 5, color.filled()));
        chart
            .draw_series(
                v.iter()
                    .enumerate()
                    .map(|(i, (m, _))| Circle::new((i as f64 + offset, *m), 5, color.filled())),
            )
            .map_err(s)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .margin(10)
        .draw()
        .map_err(s)?;
    Ok(())
}

fn draw_sweep<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    sweep: &Sweep,
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(s)?;
    let root = root.titled(title, (FONT, 26)).map_err(s)?;
    let panels = root.split_evenly((1, 2));
    let labels: Vec<String> = sweep.points.iter().map(|p| p.label.clone()).collect();
    let x_desc = if sweep.grid_keys.is_empty() {
        "grid point".to_string()
    } else {
        format!("grid point ({})", sweep.grid_keys.join(", "))
    };
    let test: Vec<_> = sweep.points.iter().map(|p| mean_std(&p.test)).collect();
    let ood: Vec<_> = sweep.points.iter().map(|p| mean_std(&p.ood)).collect();
    let gap: Vec<_> = sweep
        .points
        .iter()
        .map(|p| {
            let d: Vec<f64> = p.test.iter().zip(&p.ood).map(|(t, o)| t - o).collect();
            mean_std(&d)
        })
        .collect();
    let seeds = sweep.points.iter().map(|p| p.test.len()).max().unwrap_or(0);
    let (spec, metric) = (sweep.spec, sweep.spec.metric);
    bar_panel(
        &panels[0],
        &format!("final {metric} (mean ± std over {seeds} seed(s))"),
        &x_desc,
        metric,
        &labels,
        &[
            (spec.first.0, COLORS[1], -0.12, test),
            (spec.second.0, COLORS[2], 0.12, ood),
        ],
        false,
    )?;
    let gap_name = format!("{} − {}", spec.first.0, spec.second.0);
    bar_panel(
        &panels[1],
        &format!("generalisation gap ({gap_name}, {metric})"),
        &x_desc,
        &format!("{metric} gap"),
        &labels,
        &[(&gap_name, COLORS[4], 0.0, gap)],
        true,
    )
}

/// Plots a sweep directory: every run's learning curves and `sweep.{svg,png}` (what it compares
/// is the experiment's [`SweepPlot`], read from the first run's config).
pub fn plot_sweep(dir: &Path) -> Result<Vec<PathBuf>> {
    check_dir(dir)?;
    let csv = dir.join("runs.csv");
    if !csv.is_file() {
        return Err(PlotError::NothingToPlot {
            path: dir.display().to_string(),
        });
    }
    let table = RunsTable::read(&csv)?;
    let spec = sweep_plot_of(dir, &table, &csv)?;
    let sweep = read_sweep(&csv, &table, spec)?;
    let mut written = Vec::new();
    for run in &sweep.runs {
        written.extend(plot_run(&dir.join(run))?);
    }
    let title = format!("sweep: {}", run_name(dir));
    let width = (1400).max(2 * (200 + 90 * sweep.points.len() as u32));
    written.extend(render_both(
        dir,
        "sweep",
        (width, 600),
        |r| draw_sweep(r, &title, &sweep),
        |r| draw_sweep(r, &title, &sweep),
    )?);
    Ok(written)
}

/// Plots a sweep directory (has `runs.csv`) or a run directory (has `metrics.jsonl`).
pub fn plot_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    check_dir(dir)?;
    if dir.join("runs.csv").is_file() {
        plot_sweep(dir)
    } else {
        plot_run(dir)
    }
}
