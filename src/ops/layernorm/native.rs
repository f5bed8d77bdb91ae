//! Native `shaders/layernorm.wgsl`: `forward` (y, and the mean/rstd the backward reads),
//! `backward` (dx) and `dparams` (per-item dγ, dβ summed over rows in order).
//!
//! The row kernels run one row per task, rows of all items in parallel; each row's sums run
//! serially over its columns (the CPU twin's order). `dparams` runs fixed column chunks of each
//! item in parallel, every column summing its rows in order as the WGSL invocation does.

use rayon::prelude::*;

use super::Params;
use crate::gpu::error::Result;
use crate::native::{item, items_mut, per_item, rows, rows_mut, Launch};

/// Columns per `dparams` task: wide enough for a vectorised row loop, independent of threads.
const DPARAMS_CHUNK: usize = 256;

/// Runs one launch of a layernorm entry point.
pub(crate) fn run(l: &mut Launch<'_>) -> Result<()> {
    let p: Params = l.params()?;
    match l.entry {
        "forward" => forward(l, &p),
        "backward" => backward(l, &p),
        "dparams" => dparams(l, &p),
        _ => Err(l.unknown_entry()),
    }
}

/// γ per item (binding 2), when the launch has one.
fn gamma_items<'a>(l: &Launch<'a>, p: &Params) -> Result<Vec<Option<&'a [f32]>>> {
    let (batch, _, cols) = dims(p);
    per_item(
        l.read(2)?,
        l.flag("HAS_GAMMA"),
        p.g_off,
        p.g_stride,
        batch,
        cols,
    )
}

fn dims(p: &Params) -> (usize, usize, usize) {
    (p.batch as usize, p.rows as usize, p.cols as usize)
}

/// `y = (x − μ)·rstd·γ + β` per row, two passes (Σx, then Σ(x − μ)²), writing μ and rstd.
fn forward(l: &mut Launch<'_>, p: &Params) -> Result<()> {
    let (batch, nrows, cols) = dims(p);
    let x = l.read(1)?;
    let gamma = gamma_items(l, p)?;
    let beta = per_item(
        l.read(3)?,
        l.flag("HAS_BETA"),
        p.in3_off,
        p.in3_stride,
        batch,
        cols,
    )?;
    let (y, mean, rstd) = (l.write(4)?, l.write(5)?, l.write(6)?);
    let shape = (batch, nrows, cols);
    let xs = rows(x, p.x_off as usize, p.x_stride as usize, shape)?;
    let ys = rows_mut(y, p.out4_off as usize, p.out4_stride as usize, shape)?;
    let one = (batch, nrows, 1);
    let ms = rows_mut(mean, p.m_off as usize, p.m_stride as usize, one)?;
    let rs = rows_mut(rstd, p.r_off as usize, p.r_stride as usize, one)?;
    let (n, eps, per) = (cols as f32, p.eps, nrows.max(1));
    xs.into_par_iter()
        .zip(ys)
        .zip(ms.into_par_iter().zip(rs))
        .enumerate()
        .for_each(|(row, ((x, y), (m, r)))| {
            let (g, b) = (gamma[row / per], beta[row / per]);
            let mu = x.iter().sum::<f32>() / n;
            let q = x.iter().map(|&v| (v - mu) * (v - mu)).sum::<f32>();
            let rs = 1.0 / (q / n + eps).sqrt();
            for (c, (y, &v)) in y.iter_mut().zip(x).enumerate() {
                let mut o = (v - mu) * rs * g.map_or(1.0, |g| g[c]);
                if let Some(b) = b {
                    o += b[c];
                }
                *y = o;
            }
            m[0] = mu;
            r[0] = rs;
        });
    Ok(())
}

/// `dx = rstd·(g − mean(g) − x̂·mean(g·x̂))` per row with `g = dy·γ`, from the saved μ/rstd.
fn backward(l: &mut Launch<'_>, p: &Params) -> Result<()> {
    let (batch, nrows, cols) = dims(p);
    let (x, dy) = (l.read(1)?, l.read(3)?);
    let gamma = gamma_items(l, p)?;
    let dx = l.write(4)?;
    // mean/rstd are read_write bindings (for the forward); here they are only read.
    let (mean, rstd): (&[f32], &[f32]) = (l.write(5)?, l.write(6)?);
    let shape = (batch, nrows, cols);
    let xs = rows(x, p.x_off as usize, p.x_stride as usize, shape)?;
    let dys = rows(dy, p.in3_off as usize, p.in3_stride as usize, shape)?;
    let one = (batch, nrows, 1);
    let ms = rows(mean, p.m_off as usize, p.m_stride as usize, one)?;
    let rs = rows(rstd, p.r_off as usize, p.r_stride as usize, one)?;
    let dxs = rows_mut(dx, p.out4_off as usize, p.out4_stride as usize, shape)?;
    let (n, per) = (cols as f32, nrows.max(1));
    dxs.into_par_iter().enumerate().for_each(|(row, dx)| {
        let (x, dy, mu, rs) = (xs[row], dys[row], ms[row][0], rs[row][0]);
        let gm = gamma[row / per];
        let g = |c: usize| dy[c] * gm.map_or(1.0, |g| g[c]);
        let (mut sg, mut sgx) = (0.0f32, 0.0f32);
        for (c, &v) in x.iter().enumerate() {
            let gc = g(c);
            sg += gc;
            sgx += gc * ((v - mu) * rs);
        }
        let (sg, sgx) = (sg / n, sgx / n);
        for (c, dx) in dx.iter_mut().enumerate() {
            *dx = rs * (g(c) - sg - (x[c] - mu) * rs * sgx);
        }
    });
    Ok(())
}

/// The per-item output slices of read-write `binding` when wanted, else `None` per item (an
/// unwanted output's binding holds another tensor, which must stay untouched).
fn optional_items<'a>(
    l: &mut Launch<'a>,
    wanted: bool,
    binding: usize,
    (off, stride): (u32, u32),
    cols: usize,
    batch: usize,
) -> Result<Vec<Option<&'a mut [f32]>>> {
    if !wanted {
        return Ok((0..batch).map(|_| None).collect());
    }
    let buf = l.write(binding)?;
    let items = items_mut(buf, off as usize, stride as usize, cols, batch)?;
    Ok(items.into_iter().map(Some).collect())
}

/// Per item: `dγ = Σ_r dy·x̂`, `dβ = Σ_r dy`, each column summed over rows in order.
fn dparams(l: &mut Launch<'_>, p: &Params) -> Result<()> {
    let (batch, nrows, cols) = dims(p);
    let (has_dg, has_db) = (l.flag("HAS_DGAMMA"), l.flag("HAS_BETA"));
    if cols == 0 || batch == 0 || !(has_dg || has_db) {
        return Ok(());
    }
    let (x, dy) = (l.read(1)?, l.read(3)?);
    let (mean, rstd): (&[f32], &[f32]) = (l.write(5)?, l.write(6)?);
    let dgs = optional_items(l, has_dg, 4, (p.out4_off, p.out4_stride), cols, batch)?;
    let dbs = optional_items(l, has_db, 7, (p.out7_off, p.out7_stride), cols, batch)?;
    let mut inputs = Vec::with_capacity(batch);
    for b in 0..batch {
        inputs.push((
            item(x, p.x_off as usize, p.x_stride as usize, b, nrows * cols)?,
            item(
                dy,
                p.in3_off as usize,
                p.in3_stride as usize,
                b,
                nrows * cols,
            )?,
            item(mean, p.m_off as usize, p.m_stride as usize, b, nrows)?,
            item(rstd, p.r_off as usize, p.r_stride as usize, b, nrows)?,
        ));
    }
    dgs.into_par_iter()
        .zip(dbs)
        .zip(inputs)
        .for_each(|((dg_out, db_out), (x, dy, mean, rstd))| {
            let mut dg = vec![0.0f32; cols];
            let mut db = vec![0.0f32; cols];
            dg.par_chunks_mut(DPARAMS_CHUNK)
                .zip(db.par_chunks_mut(DPARAMS_CHUNK))
                .enumerate()
                .for_each(|(k, (dg, db))| {
                    let c0 = k * DPARAMS_CHUNK;
                    for r in 0..nrows {
                        let at = r * cols + c0;
                        let (xr, dyr) = (&x[at..at + dg.len()], &dy[at..at + dg.len()]);
                        let (mu, rs) = (mean[r], rstd[r]);
                        let cols = dg.iter_mut().zip(db.iter_mut()).zip(xr.iter().zip(dyr));
                        for ((dg, db), (&x, &dy)) in cols {
                            *dg += dy * ((x - mu) * rs);
                            *db += dy;
                        }
                    }
                });
            if let Some(o) = dg_out {
                o.copy_from_slice(&dg);
            }
            if let Some(o) = db_out {
                o.copy_from_slice(&db);
            }
        });
    Ok(())
}
