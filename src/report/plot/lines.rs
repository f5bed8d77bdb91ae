//! Line panels with optional log axes (the sine experiment's scaling plots: sample complexity
//! vs m, test MSE vs n): each series a polyline with markers, an optional horizontal reference
//! line, several panels in a grid. Log axes plot log10 of the values on a linear axis with
//! ticks labelled by the values themselves, so one code path serves every combination.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::series::LineSeries as Polyline;

use super::render::{padded, render_both, s, span, tick, COLORS, FONT};
use super::Result;

/// One polyline: its legend name and points (x, y); non-finite or, on a log axis, non-positive
/// points are left out.
#[derive(Clone, Debug, PartialEq)]
pub struct LineSeries {
    /// Legend name.
    pub name: String,
    /// Its points.
    pub points: Vec<(f64, f64)>,
}

/// One panel.
#[derive(Clone, Debug, PartialEq)]
pub struct LinePanel {
    /// Caption above the panel.
    pub caption: String,
    /// x axis title.
    pub x_desc: String,
    /// y axis title.
    pub y_desc: String,
    /// Logarithmic x axis.
    pub x_log: bool,
    /// Logarithmic y axis.
    pub y_log: bool,
    /// The series, coloured in order (series of the same name share a colour across panels).
    pub series: Vec<LineSeries>,
    /// A dashed horizontal line at this y (a threshold).
    pub hline: Option<f64>,
    /// Legend in the upper left corner (for rising curves) instead of the upper right.
    pub legend_left: bool,
}

/// A log axis's tick label: the value with three significant digits (`398`, `0.0316`).
fn log_tick(v: f64) -> String {
    let x = 10f64.powf(v);
    let digits = (2 - x.abs().log10().floor() as i32).max(0) as usize;
    tick(format!("{x:.digits$}").parse().unwrap_or(x))
}

fn axis(v: f64, log: bool) -> Option<f64> {
    match (log, v.is_finite()) {
        (_, false) => None,
        (true, _) if v <= 0.0 => None,
        (true, _) => Some(v.log10()),
        (false, _) => Some(v),
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &LinePanel,
    names: &[String],
) -> std::result::Result<(), String> {
    let pts = |s: &LineSeries| -> Vec<(f64, f64)> {
        s.points
            .iter()
            .filter_map(|&(x, y)| Some((axis(x, p.x_log)?, axis(y, p.y_log)?)))
            .collect()
    };
    let all: Vec<(f64, f64)> = p.series.iter().flat_map(pts).collect();
    let hline = p.hline.and_then(|h| axis(h, p.y_log));
    let (x0, x1) = span(all.iter().map(|q| q.0)).unwrap_or((0.0, 1.0));
    let (y0, y1) = span(all.iter().map(|q| q.1).chain(hline)).unwrap_or((0.0, 1.0));
    let mut chart = ChartBuilder::on(area)
        .caption(&p.caption, (FONT, 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(padded(x0, x1), padded(y0, y1))
        .map_err(s)?;
    let label = |log: bool| move |v: &f64| if log { log_tick(*v) } else { tick(*v) };
    chart
        .configure_mesh()
        .x_desc(&p.x_desc)
        .y_desc(&p.y_desc)
        .x_label_formatter(&label(p.x_log))
        .y_label_formatter(&label(p.y_log))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.1))
        .draw()
        .map_err(s)?;
    if let Some(h) = hline {
        let style = ShapeStyle::from(&BLACK.mix(0.5)).stroke_width(1);
        chart
            .draw_series(DashedLineSeries::new(vec![(x0, h), (x1, h)], 6, 4, style))
            .map_err(s)?;
    }
    for series in &p.series {
        let k = names.iter().position(|n| *n == series.name).unwrap_or(0);
        let color = COLORS[k % COLORS.len()];
        let points = pts(series);
        chart
            .draw_series(Polyline::new(points.clone(), color.stroke_width(2)))
            .map_err(s)?
            .label(series.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&q| Circle::new(q, 3, color.filled())))
            .map_err(s)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 14))
        .position(if p.legend_left {
            SeriesLabelPosition::UpperLeft
        } else {
            SeriesLabelPosition::UpperRight
        })
        .draw()
        .map_err(s)
}

fn draw_all<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[LinePanel],
    cols: usize,
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(s)?;
    let mut names: Vec<String> = Vec::new();
    for p in panels {
        for series in &p.series {
            if !names.contains(&series.name) {
                names.push(series.name.clone());
            }
        }
    }
    let rows = panels.len().div_ceil(cols.max(1));
    let areas = root.split_evenly((rows.max(1), cols.max(1)));
    for (area, p) in areas.iter().zip(panels) {
        draw_panel(area, p, &names)?;
    }
    Ok(())
}

/// Draws `panels` in a grid of `cols` columns to `<stem>.svg` and `<stem>.png` in `dir`.
pub fn plot_line_panels(
    dir: &Path,
    stem: &str,
    panels: &[LinePanel],
    cols: usize,
) -> Result<Vec<PathBuf>> {
    let rows = panels.len().div_ceil(cols.max(1)).max(1) as u32;
    let size = (520 * cols.max(1) as u32, 400 * rows);
    render_both(
        dir,
        stem,
        size,
        |root| draw_all(root, panels, cols),
        |root| draw_all(root, panels, cols),
    )
}
