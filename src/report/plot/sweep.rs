//! The sweep plot: per grid point, the experiment's two series (mean ± std over seeds) and their
//! gap, plus every run's learning curves.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::curves::plot_run;
use super::render::*;
use super::{run_name, PlotError, Result};
use crate::report::runs_table::{mean_std, RunsTable};

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
    /// What the right-hand panel shows.
    pub right: SecondPanel,
}

/// The right-hand panel of a sweep plot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecondPanel {
    /// The gap first − second, per grid point.
    Gap,
    /// Another `runs.csv` column, per grid point.
    Metric {
        /// Panel caption.
        title: &'static str,
        /// Axis title.
        metric: &'static str,
        /// Its column.
        column: &'static str,
    },
}

/// One grid point of a sweep: its label and the per-seed values of both series.
struct SweepPoint {
    label: String,
    test: Vec<f64>,
    ood: Vec<f64>,
    /// The right panel's column (empty for a gap).
    right: Vec<f64>,
}

struct Sweep {
    spec: SweepPlot,
    grid_keys: Vec<String>,
    points: Vec<SweepPoint>,
}

fn read_sweep(path: &Path, table: &RunsTable, spec: SweepPlot) -> Result<Sweep> {
    let bad = |message: String| PlotError::BadCsv {
        path: path.display().to_string(),
        message,
    };
    let (test, ood) = (
        table.column(spec.first.1).map_err(bad)?,
        table.column(spec.second.1).map_err(bad)?,
    );
    let right = match spec.right {
        SecondPanel::Gap => None,
        SecondPanel::Metric { column, .. } => Some(table.column(column).map_err(bad)?),
    };
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
                right: match right {
                    Some(col) => values(&p.rows, col)?,
                    None => Vec::new(),
                },
                label: p.label,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Sweep {
        spec,
        grid_keys: table.grid_keys().to_vec(),
        points,
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
    match spec.right {
        SecondPanel::Gap => {
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
        SecondPanel::Metric { title, metric, .. } => {
            let right: Vec<_> = sweep.points.iter().map(|p| mean_std(&p.right)).collect();
            bar_panel(
                &panels[1],
                title,
                &x_desc,
                metric,
                &labels,
                &[(metric, COLORS[4], 0.0, right)],
                false,
            )
        }
    }
}

/// Plots a sweep directory whose `runs.csv` is `table`: every run's learning curves and, when the
/// experiment compares grid points (`spec`), `sweep.{svg,png}`. The experiment's own plots are
/// its caller's (`crate::experiments::plot_dir` resolves the experiment).
pub fn plot_sweep(dir: &Path, table: &RunsTable, spec: Option<SweepPlot>) -> Result<Vec<PathBuf>> {
    let csv = dir.join("runs.csv");
    let run = table.column("run").map_err(|message| PlotError::BadCsv {
        path: csv.display().to_string(),
        message,
    })?;
    let mut written = Vec::new();
    for row in &table.rows {
        written.extend(plot_run(&dir.join(&row[run]))?);
    }
    let Some(spec) = spec else {
        return Ok(written);
    };
    let sweep = read_sweep(&csv, table, spec)?;
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
