//! Reading a sine sweep's monolithic runs and fitting the spectrum's Ω to them (least squares in
//! log test loss).

use super::*;

/// The mean test MSE of a sweep's finished monolithic runs at one (m, n, p).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EmpiricalPoint {
    /// Input dimension.
    pub m: usize,
    /// Training samples.
    pub n: usize,
    /// The network's parameter count.
    pub p: usize,
    /// Mean test MSE over the finished runs.
    pub test_mse: f64,
    /// Finished runs averaged.
    pub runs: usize,
}

/// Parses a `model.hidden` cell as `runs.csv` writes it (`[64, 64]`).
fn parse_widths(cell: &str) -> Option<Vec<usize>> {
    let inner = cell.trim().strip_prefix('[')?.strip_suffix(']')?;
    inner
        .split(',')
        .map(|w| w.trim())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().ok())
        .collect()
}

/// The monolithic runs of a sine sweep's `runs.csv`, averaged per (m, n, p): rows with
/// `method == monolithic`, leaving out diverged runs and non-finite test MSE. A run's p is its
/// MLP's parameter count from the `model.hidden` grid column where the sweep varies it, else
/// `default_p(m)`.
pub fn empirical(
    table: &RunsTable,
    default_p: impl Fn(usize) -> usize,
) -> Result<Vec<EmpiricalPoint>> {
    let col = |name: &str| table.column(name).map_err(|e| arg_err("runs.csv", e));
    let (method, m_col, n_col, test) = (col("method")?, col("m")?, col("n")?, col("test_mse")?);
    let diverged = table.column("diverged").ok();
    let hidden = table.column("model.hidden").ok();
    let num = |r: usize, c: usize| table.number(r, c).map_err(|e| arg_err("runs.csv", e));
    let mut groups: BTreeMap<(usize, usize, usize), Vec<f64>> = BTreeMap::new();
    for (r, row) in table.rows.iter().enumerate() {
        if row[method] != "monolithic" || diverged.is_some_and(|c| row[c] == "true") {
            continue;
        }
        let mse = num(r, test)?;
        if !mse.is_finite() {
            continue;
        }
        let (m, n) = (num(r, m_col)? as usize, num(r, n_col)? as usize);
        let p = match hidden {
            Some(c) => monolithic_params(
                m,
                &parse_widths(&row[c]).ok_or_else(|| {
                    arg_err(
                        "runs.csv",
                        format!(
                            "run {}: `model.hidden` = `{}` is not a width list",
                            r + 1,
                            row[c]
                        ),
                    )
                })?,
            ),
            None => default_p(m),
        };
        groups.entry((m, n, p)).or_default().push(mse);
    }
    Ok(groups
        .into_iter()
        .map(|((m, n, p), v)| EmpiricalPoint {
            m,
            n,
            p,
            test_mse: v.iter().sum::<f64>() / v.len() as f64,
            runs: v.len(),
        })
        .collect())
}

/// A one-parameter fit of Ω.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Fit {
    /// The fitted Ω.
    pub omega: f64,
    /// Points used (those with a finite, positive theory and empirical loss).
    pub points: usize,
    /// √(mean (ln theory − ln empirical)²) at the fitted Ω.
    pub rms_log_error: f64,
}

/// Σ (ln E\[test\](Ω) − ln empirical)² over the usable points, and their count.
fn log_sse(omega: f64, c: f64, d: usize, points: &[EmpiricalPoint]) -> (f64, usize) {
    let s = Spectrum { omega, c, d };
    let mut acc = (0.0, 0);
    for e in points {
        let t = expected_loss(&s, e.m, e.n, e.p).test;
        if t.is_finite() && t > 0.0 && e.test_mse.is_finite() && e.test_mse > 0.0 {
            acc = (acc.0 + (t.ln() - e.test_mse.ln()).powi(2), acc.1 + 1);
        }
    }
    acc
}

/// The root-mean-square log error of Ω on `points` (`None` when no point is usable).
pub fn rms_log_error(omega: f64, c: f64, d: usize, points: &[EmpiricalPoint]) -> Option<f64> {
    let (sse, k) = log_sse(omega, c, d, points);
    (k > 0).then(|| (sse / k as f64).sqrt())
}

/// Ω minimising Σ (ln E\[test\] − ln empirical test MSE)² over `points` (each at its own m, n, p):
/// the best of a geometric grid on [1.01, 100], refined by golden-section search between its
/// grid neighbours. `None` when no point has a finite theory (e.g. every one at n ≈ p).
pub fn fit_omega(c: f64, d: usize, points: &[EmpiricalPoint]) -> Option<Fit> {
    let (lo, hi, k) = FIT_GRID;
    let grid: Vec<f64> = (0..k)
        .map(|i| lo * (hi / lo).powf(i as f64 / (k - 1) as f64))
        .collect();
    let sse = |w: f64| log_sse(w, c, d, points);
    let used = sse(grid[0]).1;
    if used == 0 {
        return None;
    }
    let best = (0..k)
        .min_by(|&a, &b| sse(grid[a]).0.total_cmp(&sse(grid[b]).0))
        .unwrap_or(0);
    let (mut a, mut b) = (grid[best.saturating_sub(1)], grid[(best + 1).min(k - 1)]);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..60 {
        let (x1, x2) = (b - g * (b - a), a + g * (b - a));
        if sse(x1).0 <= sse(x2).0 {
            b = x2;
        } else {
            a = x1;
        }
    }
    let mid = 0.5 * (a + b);
    let omega = if sse(mid).0 <= sse(grid[best]).0 {
        mid
    } else {
        grid[best]
    };
    Some(Fit {
        omega,
        points: used,
        rms_log_error: rms_log_error(omega, c, d, points).unwrap_or(f64::NAN),
    })
}
