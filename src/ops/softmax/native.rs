//! Native `shaders/softmax.wgsl`: `column_stats` (per item and column: mean and population std
//! over the rows) and `standardized_softmax` (row-wise tempered softmax of z-scored logits).
//!
//! As in the shader, every column's sums run over the rows in row order, and every row's softmax
//! over its columns in column order; items (and the rows of an item) run in parallel, which
//! changes no bit since no sum crosses them.

use rayon::prelude::*;

use super::Params;
use crate::gpu::error::Result;
use crate::native::{items, items_mut, Launch};

/// Rows per parallel task of the softmax (rows are short: a few classes).
const ROWS_PER_TASK: usize = 64;

/// Runs one launch of a softmax entry point.
pub(crate) fn run(l: &mut Launch<'_>) -> Result<()> {
    let p: Params = l.params()?;
    match l.entry {
        "column_stats" => column_stats(l, &p),
        "standardized_softmax" => standardized_softmax(l, &p),
        _ => Err(l.unknown_entry()),
    }
}

/// `mean[b, c]`, `sd[b, c]` of `x[b, :, c]`: two passes in row order (sum, then squared
/// deviations from the mean), each column accumulated in its own output slot so the rows are
/// walked contiguously.
fn column_stats(l: &mut Launch<'_>, p: &Params) -> Result<()> {
    let (batch, rows, cols) = (p.batch as usize, p.rows as usize, p.cols as usize);
    if cols == 0 {
        return Ok(());
    }
    let x = l.read(1)?;
    let mean = l.write(2)?;
    let sd = l.write(3)?;
    let means = items_mut(
        mean,
        p.mean_off as usize,
        p.mean_stride as usize,
        cols,
        batch,
    )?;
    let sds = items_mut(sd, p.std_off as usize, p.std_stride as usize, cols, batch)?;
    let xs = items(x, p.x_off as usize, p.x_stride as usize, rows * cols, batch)?;
    let n = rows as f32;
    means
        .into_par_iter()
        .zip(sds)
        .zip(xs)
        .for_each(|((mu, sd), x)| {
            mu.fill(0.0);
            for row in x.chunks_exact(cols) {
                mu.iter_mut().zip(row).for_each(|(s, &v)| *s += v);
            }
            mu.iter_mut().for_each(|s| *s /= n);
            sd.fill(0.0);
            for row in x.chunks_exact(cols) {
                for ((q, &v), &m) in sd.iter_mut().zip(row).zip(mu.iter()) {
                    let d = v - m;
                    *q += d * d;
                }
            }
            sd.iter_mut().for_each(|q| *q = (*q / n).sqrt());
        });
    Ok(())
}

/// `y[b, r, :] = softmax(((x[b, r, :] − mean[b]) / sd[b]) · inv_temperature)`, a column with
/// `sd = 0` standardised to 0 (not NaN).
fn standardized_softmax(l: &mut Launch<'_>, p: &Params) -> Result<()> {
    let (batch, rows, cols) = (p.batch as usize, p.rows as usize, p.cols as usize);
    if cols == 0 {
        return Ok(());
    }
    let x = l.read(1)?;
    // The statistics are read_write bindings in the shader, but only read.
    let mean: &[f32] = l.write(2)?;
    let sd: &[f32] = l.write(3)?;
    let y = l.write(4)?;
    let ys = items_mut(y, p.y_off as usize, p.y_stride as usize, rows * cols, batch)?;
    let xs = items(x, p.x_off as usize, p.x_stride as usize, rows * cols, batch)?;
    let mus = items(
        mean,
        p.mean_off as usize,
        p.mean_stride as usize,
        cols,
        batch,
    )?;
    let sds = items(sd, p.std_off as usize, p.std_stride as usize, cols, batch)?;
    let inputs = xs.into_par_iter().zip(mus).zip(sds);
    let inv_t = p.inv_temperature;
    ys.into_par_iter()
        .zip(inputs)
        .for_each(|(y, ((x, mu), sd))| {
            y.par_chunks_mut(cols)
                .zip(x.par_chunks(cols))
                .with_min_len(ROWS_PER_TASK)
                .for_each(|(y, x)| softmax_row(x, mu, sd, inv_t, y));
        });
    Ok(())
}

/// One row, in the shader's order: scaled logits (and their max), exponentials (and their sum),
/// then the division.
fn softmax_row(x: &[f32], mu: &[f32], sd: &[f32], inv_t: f32, y: &mut [f32]) {
    let mut m = -3.4e38f32;
    for (((y, &x), &mu), &s) in y.iter_mut().zip(x).zip(mu).zip(sd) {
        *y = if s > 0.0 { (x - mu) / s * inv_t } else { 0.0 };
        m = m.max(*y);
    }
    let mut s = 0.0f32;
    for y in y.iter_mut() {
        *y = (*y - m).exp();
        s += *y;
    }
    y.iter_mut().for_each(|y| *y /= s);
}
