//! Drawing helpers shared by the run and sweep plots: colours, font, SVG + PNG rendering with
//! atomic writes, axis ranges and ticks.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{io_err, PlotError, Result};
use crate::fs::write_atomic;

/// tab10: distinguishable line colours.
pub(super) const COLORS: [RGBColor; 10] = [
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

pub(super) const FONT: &str = "sans-serif";

pub(super) fn render_err(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> PlotError + '_ {
    move |e| PlotError::Render {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Renders `draw` to `<stem>.svg` and `<stem>.png` in `dir`, both written atomically.
pub(super) fn render_both<F, G>(
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

pub(super) fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// A tick label: at most 4 significant decimals, no float noise (`0.6000000001` → `0.6`).
pub(super) fn tick(v: f64) -> String {
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
pub(super) fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A linear range around `[lo, hi]` with 5 % padding (and a minimum height).
pub(super) fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let pad = ((hi - lo) * 0.05).max(1e-3 * hi.abs().max(1.0));
    (lo - pad)..(hi + pad)
}

/// Whether the loss axis should be logarithmic: positive values spanning more than a decade.
pub fn wants_log(lo: f64, hi: f64) -> bool {
    lo > 0.0 && hi / lo > 10.0
}

/// The range `lo..hi` stretched upwards so that its top `frac` is empty.
pub(super) fn with_headroom(lo: f64, hi: f64, frac: f64) -> f64 {
    lo + (hi - lo) / (1.0 - frac)
}
