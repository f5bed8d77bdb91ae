//! A sine sweep's scaling results from its `runs.csv`: per (method, m) the curve of mean test
//! MSE against n, the sample complexity — the smallest n, log-interpolated between grid points,
//! at which the mean test MSE falls below the threshold (a fraction of Var(y) = 1) — and the
//! mean module recovery; written as `summary.csv` and plotted as `sample_complexity.{svg,png}`
//! and `test_mse_vs_n.{svg,png}`.
//!
//! Diverged runs are left out of the means (and counted); a grid point whose runs all diverged
//! counts as not reaching the threshold.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{arg_err, Result};
use crate::report::plot::{plot_line_panels, LinePanel, LineSeries, PlotError};
use crate::report::RunsTable;
use crate::run::write_atomic;

/// The mean test MSE of one (method, m) at each n.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    /// Method name.
    pub method: String,
    /// Input dimension.
    pub m: usize,
    /// `(n, mean test MSE, finished runs, diverged runs)`, n ascending.
    pub points: Vec<(usize, f64, usize, usize)>,
    /// Mean module recovery over the (method, m)'s runs, if defined.
    pub recovery: Option<f64>,
    /// The threshold of the runs' configs.
    pub threshold: f64,
}

/// The smallest n at which `points` (n ascending, mean MSE) falls to `threshold` or below:
/// between the last grid point above and the first at or below, log n is interpolated linearly
/// in log MSE; the first grid point itself when it is already below; `None` if never.
pub fn crossing(points: &[(usize, f64)], threshold: f64) -> Option<f64> {
    let k = points.iter().position(|&(_, mse)| mse <= threshold)?;
    let (n1, e1) = points[k];
    if k == 0 {
        return Some(n1 as f64);
    }
    let (n0, e0) = points[k - 1];
    if !e0.is_finite() || e1 <= 0.0 {
        return Some(n1 as f64);
    }
    let (l0, l1) = ((n0 as f64).ln(), (n1 as f64).ln());
    let t = (e0.ln() - threshold.ln()) / (e0.ln() - e1.ln());
    Some((l0 + t.clamp(0.0, 1.0) * (l1 - l0)).exp())
}

impl Curve {
    /// This curve's sample complexity.
    pub fn sample_complexity(&self) -> Option<f64> {
        let pts: Vec<(usize, f64)> = self
            .points
            .iter()
            .map(|&(n, mse, ok, _)| (n, if ok > 0 { mse } else { f64::INFINITY }))
            .collect();
        crossing(&pts, self.threshold)
    }
}

/// The curves of a sine sweep's `runs.csv`, by method then m.
pub fn curves(table: &RunsTable) -> Result<Vec<Curve>> {
    let col = |name: &str| table.column(name).map_err(|e| arg_err("summary.csv", e));
    let (method, m, n) = (col("method")?, col("m")?, col("n")?);
    let (test, recovery, diverged, threshold) = (
        col("test_mse")?,
        col("recovery")?,
        col("diverged")?,
        col("threshold")?,
    );
    let num = |r: usize, c: usize| table.number(r, c).map_err(|e| arg_err("summary.csv", e));
    // (method, m) → n → (test MSEs of finished runs, diverged count); recoveries; threshold.
    type Group = (BTreeMap<usize, (Vec<f64>, usize)>, Vec<f64>, f64);
    let mut groups: BTreeMap<(String, usize), Group> = BTreeMap::new();
    for (r, row) in table.rows.iter().enumerate() {
        let key = (row[method].clone(), num(r, m)? as usize);
        let g = groups
            .entry(key)
            .or_insert_with(|| (BTreeMap::new(), Vec::new(), 0.0));
        g.2 = num(r, threshold)?;
        let at = g.0.entry(num(r, n)? as usize).or_default();
        let mse = num(r, test)?;
        if row[diverged] == "true" || !mse.is_finite() {
            at.1 += 1;
        } else {
            at.0.push(mse);
        }
        let rec = num(r, recovery)?;
        if rec.is_finite() {
            g.1.push(rec);
        }
    }
    Ok(groups
        .into_iter()
        .map(|((method, m), (by_n, rec, threshold))| Curve {
            method,
            m,
            points: by_n
                .into_iter()
                .map(|(n, (v, bad))| {
                    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
                    (n, if v.is_empty() { f64::NAN } else { mean }, v.len(), bad)
                })
                .collect(),
            recovery: (!rec.is_empty()).then(|| rec.iter().sum::<f64>() / rec.len() as f64),
            threshold,
        })
        .collect())
}

/// `summary.csv`: `method,m,sample_complexity,recovery,runs,diverged`, one row per (method, m);
/// a sample complexity never reached on the grid is empty.
pub fn summary_csv(curves: &[Curve]) -> String {
    let mut out = String::from("method,m,sample_complexity,recovery,runs,diverged\n");
    for c in curves {
        let sc = c
            .sample_complexity()
            .map_or(String::new(), |v| format!("{v:.1}"));
        let rec = c.recovery.map_or(String::new(), |v| format!("{v:.4}"));
        let runs: usize = c.points.iter().map(|p| p.2 + p.3).sum();
        let bad: usize = c.points.iter().map(|p| p.3).sum();
        let _ = writeln!(out, "{},{},{sc},{rec},{runs},{bad}", c.method, c.m);
    }
    out
}

/// Writes `summary.csv` for the sweep in `dir` from its `runs.csv` table.
pub fn write_summary(dir: &Path, table: &RunsTable) -> Result<()> {
    write_atomic(
        &dir.join("summary.csv"),
        summary_csv(&curves(table)?).as_bytes(),
    )
}

/// The scaling plots of the sweep in `dir`: sample complexity vs m per method, and test MSE vs
/// n per m (one panel each, a line per method, the threshold dashed).
pub fn plot(dir: &Path, table: &RunsTable) -> std::result::Result<Vec<PathBuf>, PlotError> {
    let curves = curves(table).map_err(|e| PlotError::BadCsv {
        path: dir.join("runs.csv").display().to_string(),
        message: crate::error::report(&e),
    })?;
    let threshold = curves.first().map_or(0.5, |c| c.threshold);
    let mut methods: Vec<&str> = curves.iter().map(|c| c.method.as_str()).collect();
    methods.dedup();
    let complexity = LinePanel {
        caption: format!("samples to reach test MSE ≤ {threshold}·Var(y)"),
        x_desc: "input dimension m".into(),
        y_desc: "sample complexity n*".into(),
        x_log: false,
        y_log: true,
        series: methods
            .iter()
            .map(|&method| LineSeries {
                name: method.to_string(),
                points: curves
                    .iter()
                    .filter(|c| c.method == method)
                    .filter_map(|c| Some((c.m as f64, c.sample_complexity()?)))
                    .collect(),
            })
            .collect(),
        hline: None,
        legend_left: true,
    };
    let mut ms: Vec<usize> = curves.iter().map(|c| c.m).collect();
    ms.sort_unstable();
    ms.dedup();
    let per_m: Vec<LinePanel> = ms
        .iter()
        .map(|&m| LinePanel {
            caption: format!("m = {m}"),
            x_desc: "training samples n".into(),
            y_desc: "test MSE / Var(y)".into(),
            x_log: true,
            y_log: true,
            series: curves
                .iter()
                .filter(|c| c.m == m)
                .map(|c| LineSeries {
                    name: c.method.clone(),
                    points: c.points.iter().map(|p| (p.0 as f64, p.1)).collect(),
                })
                .collect(),
            hline: Some(threshold),
            legend_left: false,
        })
        .collect();
    let mut files = plot_line_panels(dir, "sample_complexity", &[complexity], 1)?;
    files.extend(plot_line_panels(
        dir,
        "test_mse_vs_n",
        &per_m,
        4.min(per_m.len().max(1)),
    )?);
    Ok(files)
}
