//! Native `shaders/loss.wgsl`: `value` and `value_grad` of the per-item losses (softmax
//! cross-entropy, KL divergence, squared error, accuracy; the `LOSS` override picks one), and
//! `grad_tangent`, the softmax losses' gradient differentiated along a tangent of the logits;
//! and the three again with row weights (`*_masked`: a weighted mean over the item's rows, the
//! weight sum reduced first by the same tree).
//!
//! One task per item, as one workgroup per item in the shader, and the same order of additions:
//! row `r` goes to partial `r mod 64`, rows in increasing order, then the 64 partials are added by
//! the shader's binary tree. An item's loss thus depends on its own rows alone.

use rayon::prelude::*;

use super::Params;
use crate::gpu::error::Result;
use crate::native::tree;
use crate::native::{items, items_mut, Launch};

/// Invocations per workgroup in the shader (`WG`): the number of partial sums of an item.
const WG: usize = 64;

/// The `LOSS` override. As in the shader's `switch`, any code but 1, 2 and 3 is cross-entropy.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    CrossEntropy,
    Kl,
    Mse,
    Accuracy,
    HalfSquared,
}

/// One row's value and the softmax statistics its gradient reuses.
struct Row {
    value: f32,
    m: f32,
    log_s: f32,
    tsum: f32,
}

/// Runs one launch of a loss entry point.
pub(crate) fn run(l: &mut Launch<'_>) -> Result<()> {
    let kind = match l.constant("LOSS", 0.0) as u32 {
        1 => Kind::Kl,
        2 => Kind::Mse,
        3 => Kind::Accuracy,
        4 => Kind::HalfSquared,
        _ => Kind::CrossEntropy,
    };
    match l.entry {
        "value" => losses(l, kind, false, false),
        "value_grad" => losses(l, kind, true, false),
        "grad_tangent" => tangent(l, kind, false),
        "value_masked" => losses(l, kind, false, true),
        "value_grad_masked" => losses(l, kind, true, true),
        "grad_tangent_masked" => tangent(l, kind, true),
        _ => Err(l.unknown_entry()),
    }
}

/// The launch's parameters and its (batch, rows, cols), at least one row and one column.
fn shape(l: &Launch<'_>) -> Result<(Params, usize, usize, usize)> {
    let p: Params = l.params()?;
    let (batch, rows, cols) = (p.batch as usize, p.rows as usize, p.cols as usize);
    if rows == 0 || cols == 0 {
        return Err(l.err(format!("a loss over {rows} rows of {cols} columns")));
    }
    Ok((p, batch, rows, cols))
}

/// Per item, its rows' weights (binding 6) when the launch is masked.
fn weights<'a>(
    l: &Launch<'a>,
    p: &Params,
    rows: usize,
    batch: usize,
    masked: bool,
) -> Result<Vec<Option<&'a [f32]>>> {
    if !masked {
        return Ok(vec![None; batch]);
    }
    let ws = items(
        l.read(6)?,
        p.m_off as usize,
        p.m_stride as usize,
        rows,
        batch,
    )?;
    Ok(ws.into_iter().map(Some).collect())
}

/// `1/Σ w` of an item's row weights, summed in the shader's order (0 when the sum is 0).
fn inv_weight(w: &[f32]) -> f32 {
    let mut sums = [0.0f32; WG];
    for (r, &v) in w.iter().enumerate() {
        sums[r % WG] += v;
    }
    tree(&mut sums, 1);
    if sums[0] != 0.0 {
        1.0 / sums[0]
    } else {
        0.0
    }
}

/// `value` / `value_grad` (and their `_masked` forms): each item's mean row value, and the
/// gradient when asked.
fn losses(l: &mut Launch<'_>, kind: Kind, with_grad: bool, masked: bool) -> Result<()> {
    let (p, batch, rows, cols) = shape(l)?;
    let len = rows * cols;
    let (z, t) = (l.read(1)?, l.read(2)?);
    let losses = items_mut(l.write(3)?, p.l_off as usize, p.l_stride as usize, 1, batch)?;
    let grads: Vec<Option<&mut [f32]>> = if with_grad {
        let g = l.write(4)?;
        let gs = items_mut(g, p.g_off as usize, p.g_stride as usize, len, batch)?;
        gs.into_iter().map(Some).collect()
    } else {
        (0..batch).map(|_| None).collect()
    };
    let zs = items(z, p.z_off as usize, p.z_stride as usize, len, batch)?;
    let ts = items(t, p.t_off as usize, p.t_stride as usize, len, batch)?;
    let ws = weights(l, &p, rows, batch, masked)?;
    let (norm, gscale) = (p.norm, p.gscale);
    losses
        .into_par_iter()
        .zip(grads)
        .zip(zs.into_par_iter().zip(ts))
        .zip(ws)
        .for_each(|(((loss, grad), (z, t)), w)| {
            loss[0] = match w {
                None => item_loss(kind, cols, z, t, grad, gscale) * norm,
                Some(w) => {
                    let inv = inv_weight(w);
                    item_loss_weighted(kind, cols, z, t, w, inv, grad, gscale) * inv
                }
            };
        });
    Ok(())
}

/// [`item_loss`] with row weights: rows of weight 0 skipped (gradient 0), the others' values
/// times their weight, their gradients times `gscale·(w·inv)`.
#[allow(clippy::too_many_arguments)]
fn item_loss_weighted(
    kind: Kind,
    cols: usize,
    z: &[f32],
    t: &[f32],
    w: &[f32],
    inv: f32,
    grad: Option<&mut [f32]>,
    gscale: f32,
) -> f32 {
    let mut sums = [0.0f32; WG];
    let mut grad_rows = grad.map(|g| g.chunks_exact_mut(cols));
    for (r, (z, t)) in z.chunks_exact(cols).zip(t.chunks_exact(cols)).enumerate() {
        let g = grad_rows.as_mut().and_then(|g| g.next());
        if w[r] == 0.0 {
            if let Some(g) = g {
                g.fill(0.0);
            }
            continue;
        }
        let o = row(kind, z, t);
        sums[r % WG] += w[r] * o.value;
        if let Some(g) = g {
            write_grad(kind, &o, z, t, g, gscale * (w[r] * inv));
        }
    }
    tree(&mut sums, 1);
    sums[0]
}

/// One row's gradient times `k` (the shader's `elem_grad`).
fn write_grad(kind: Kind, o: &Row, z: &[f32], t: &[f32], g: &mut [f32], k: f32) {
    // One loop per kind: with the kind tested inside, the compiler if-converts the loop and
    // evaluates the softmax's exp for squared-error rows too.
    let cells = g.iter_mut().zip(z).zip(t);
    if matches!(kind, Kind::Mse | Kind::HalfSquared) {
        cells.for_each(|((g, &zc), &yc)| *g = k * (zc - yc));
    } else {
        cells.for_each(|((g, &zc), &yc)| *g = k * (o.softmax(zc) * o.tsum - yc));
    }
}

/// Sum of an item's row values in the shader's order, writing each row's gradient on the way.
fn item_loss(
    kind: Kind,
    cols: usize,
    z: &[f32],
    t: &[f32],
    grad: Option<&mut [f32]>,
    gscale: f32,
) -> f32 {
    let mut sums = [0.0f32; WG];
    let mut grad_rows = grad.map(|g| g.chunks_exact_mut(cols));
    for (r, (z, t)) in z.chunks_exact(cols).zip(t.chunks_exact(cols)).enumerate() {
        let o = row(kind, z, t);
        sums[r % WG] += o.value;
        if let Some(g) = grad_rows.as_mut().and_then(|g| g.next()) {
            write_grad(kind, &o, z, t, g, gscale);
        }
    }
    tree(&mut sums, 1);
    sums[0]
}

impl Row {
    /// `softmax(z)_c` from the row's statistics (the shader's `softmax`).
    fn softmax(&self, zc: f32) -> f32 {
        ((zc - self.m) - self.log_s).exp()
    }
}

/// `grad_tangent`: per row, `gscale·Σy·(p⊙dz − p·(p·dz))` (squared errors: `gscale·dz`) into
/// binding 4, `dz` from binding 5; `grad_tangent_masked` with the row's factor `w·inv` too.
/// Items run in parallel, each row serially in the shader's order.
fn tangent(l: &mut Launch<'_>, kind: Kind, masked: bool) -> Result<()> {
    let (p, batch, rows, cols) = shape(l)?;
    let len = rows * cols;
    let (z, t, dz) = (l.read(1)?, l.read(2)?, l.read(5)?);
    let outs = items_mut(
        l.write(4)?,
        p.g_off as usize,
        p.g_stride as usize,
        len,
        batch,
    )?;
    let zs = items(z, p.z_off as usize, p.z_stride as usize, len, batch)?;
    let ts = items(t, p.t_off as usize, p.t_stride as usize, len, batch)?;
    let ds = items(dz, p.d_off as usize, p.d_stride as usize, len, batch)?;
    let ws = weights(l, &p, rows, batch, masked)?;
    let gscale = p.gscale;
    outs.into_par_iter()
        .zip(zs.into_par_iter().zip(ts))
        .zip(ds.into_par_iter().zip(ws))
        .for_each(|((out, (z, t)), (dz, w))| {
            let inv = w.map_or(1.0, inv_weight);
            let rows = out.chunks_exact_mut(cols).zip(z.chunks_exact(cols));
            let rest = t.chunks_exact(cols).zip(dz.chunks_exact(cols));
            for (r, ((out, z), (t, dz))) in rows.zip(rest).enumerate() {
                let k = match w {
                    None => gscale,
                    Some(w) if w[r] == 0.0 => {
                        out.fill(0.0);
                        continue;
                    }
                    Some(w) => gscale * (w[r] * inv),
                };
                if matches!(kind, Kind::Mse | Kind::HalfSquared) {
                    out.iter_mut().zip(dz).for_each(|(o, &d)| *o = k * d);
                } else {
                    row_tangent(row(kind, z, t), z, dz, out, k);
                }
            }
        });
    Ok(())
}

/// One row of `grad_tangent`, the probabilities kept in `out` between the two passes.
fn row_tangent(o: Row, z: &[f32], dz: &[f32], out: &mut [f32], gscale: f32) {
    let mut pdz = 0.0f32;
    for ((p, &zc), &d) in out.iter_mut().zip(z).zip(dz) {
        *p = o.softmax(zc);
        pdz += *p * d;
    }
    let k = gscale * o.tsum;
    for (p, &d) in out.iter_mut().zip(dz) {
        *p = k * (*p * d - *p * pdz);
    }
}

/// The shader's `row`: one row's value, and for the softmax losses `log softmax(z)_c =
/// (z_c − m) − log_s` and `Σ y`.
fn row(kind: Kind, z: &[f32], t: &[f32]) -> Row {
    let mut o = Row {
        value: 0.0,
        m: 0.0,
        log_s: 0.0,
        tsum: 0.0,
    };
    match kind {
        Kind::Mse | Kind::HalfSquared => {
            // MSE keeps its separate multiply and add (what its goldens were made with); the
            // half squared error fuses them as the shader's `fma` does.
            for (&zc, &yc) in z.iter().zip(t) {
                let d = zc - yc;
                if kind == Kind::Mse {
                    o.value += d * d;
                } else {
                    o.value = d.mul_add(d, o.value);
                }
            }
            if kind == Kind::HalfSquared {
                o.value *= 0.5;
            }
        }
        Kind::Accuracy => {
            o.value = if argmax(z) == argmax(t) { 1.0 } else { 0.0 };
        }
        Kind::CrossEntropy | Kind::Kl => {
            // Subtracting the row max keeps every exp argument ≤ 0 (no overflow, no underflow
            // of the sum, whose largest term is 1).
            o.m = z.iter().fold(z[0], |m, &v| m.max(v));
            let s: f32 = z.iter().map(|&v| (v - o.m).exp()).sum();
            o.log_s = s.ln();
            for (&zc, &y) in z.iter().zip(t) {
                o.tsum += y;
                o.value -= y * ((zc - o.m) - o.log_s);
                if kind == Kind::Kl && y > 0.0 {
                    o.value += y * y.ln();
                }
            }
        }
    }
    o
}

/// Index of the largest value, the lowest on ties (strict `>`, as the shader).
fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}
