//! Learning curves of one run: query loss and accuracy vs step for every evaluation set (for an
//! experiment without accuracy, the theory experiment, its latent R² in [0, 1] instead).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Deserialize;

use super::render::*;
use super::{check_dir, io_err, run_name, PlotError, Result};

/// Loss and accuracy (or latent R²) of one evaluation set (nulls, as JSON writes NaN, are kept
/// as gaps).
#[derive(Debug, Clone, Deserialize)]
struct SetMetrics {
    loss: Option<f64>,
    acc: Option<f64>,
    #[serde(default)]
    r2_train_vs_ood: Option<f64>,
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
    /// The loss axis: the hyperteacher's KL (a run with accuracy) or the theory's ½·MSE.
    loss: &'static str,
    /// What the right panel shows (accuracy, or R² when the run logs no accuracy).
    second: &'static str,
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
    let mut has_acc = false;
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
            has_acc |= m.acc.is_some();
            by_set.entry(name).or_default().push((
                r.step,
                fin(m.loss),
                fin(m.acc.or(m.r2_train_vs_ood)),
            ));
        }
    }
    if records == 0 || by_set.is_empty() {
        return Err(PlotError::Empty {
            path: path.display().to_string(),
        });
    }
    let mut sets: Vec<_> = by_set.into_iter().collect();
    sets.sort_by_key(|(n, _)| set_rank(n));
    let (loss, second) = if has_acc {
        ("query KL loss", "query accuracy")
    } else {
        ("query ½·MSE", "latent R² (train → set), clipped to [0, 1]")
    };
    Ok(Curves { sets, loss, second })
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
            curves.loss,
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
            curves.loss,
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
        curves.second,
        curves.second,
        x_range,
        lo..hi,
        curves,
        acc_pick,
        acc_legend,
    )
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
