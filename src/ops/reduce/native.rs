//! Native `shaders/reduce.wgsl`: `reduce_axis`, the one strided-sum entry behind every reduction
//! (batch sums, row and column sums, both passes of the two-pass sum of squares).
//!
//! Each output is summed in the shader's order, which depends on the launch's shape only: `WG_Y`
//! partial sums, partial `ly` adding the terms `k ≡ ly (mod WG_Y)` in increasing `k`, then the
//! partials added as the shader's pairwise tree. So an output gets the GPU's association (and its
//! accuracy: the sum-of-squares test bounds the error by the tree's depth, not by the term count),
//! and since the launcher sizes `WG_Y` of the column sums from one item's outputs, an item's sums
//! do not depend on the rest of the batch. Outputs are independent, so blocks of them run in
//! parallel without changing any bit.

use rayon::prelude::*;

use super::Params;
use crate::gpu::error::Result;
use crate::native::{items_mut, tree, Launch};

/// Outputs per parallel task (the shader's default `WG_X`).
const BLOCK: usize = 64;

/// Largest `WG_Y` accepted (the launcher caps a workgroup at 256 invocations).
const MAX_WG_Y: usize = 1024;

/// The per-launch constants every output shares.
#[derive(Clone, Copy)]
struct Plan {
    per_item: usize,
    n_red: usize,
    limit: usize,
    j_step: usize,
    k_step: usize,
    wg_y: usize,
    square: bool,
    alpha: f32,
    beta: f32,
}

/// Runs one launch of `reduce_axis`.
pub(crate) fn run(l: &mut Launch<'_>) -> Result<()> {
    if l.entry != "reduce_axis" {
        return Err(l.unknown_entry());
    }
    let p: Params = l.params()?;
    let wg_y = l.constant("WG_Y", 4.0) as usize;
    if !wg_y.is_power_of_two() || wg_y > MAX_WG_Y {
        return Err(l.err(format!("WG_Y {wg_y} is not a power of two ≤ {MAX_WG_Y}")));
    }
    let plan = Plan {
        per_item: p.per_item as usize,
        n_red: p.n_red as usize,
        limit: p.limit as usize,
        j_step: p.j_step as usize,
        k_step: p.k_step as usize,
        wg_y,
        square: l.flag("SQUARE"),
        alpha: p.alpha,
        beta: p.beta,
    };
    let n_out = p.n_out as usize;
    if n_out == 0 {
        return Ok(());
    }
    if plan.per_item == 0 || !n_out.is_multiple_of(plan.per_item) {
        return Err(l.err(format!(
            "{n_out} outputs are not whole items of {}",
            plan.per_item
        )));
    }
    let batch = n_out / plan.per_item;
    let x = l.read(1)?;
    let y = l.write(2)?;
    let (x_off, x_stride) = (p.x_off as usize, p.x_stride as usize);
    let ys = items_mut(
        y,
        p.y_off as usize,
        p.y_stride as usize,
        plan.per_item,
        batch,
    )?;
    ys.into_par_iter()
        .enumerate()
        .try_for_each(|(b, yb)| {
            yb.par_chunks_mut(BLOCK)
                .enumerate()
                .try_for_each(|(i, block)| plan.block(x, x_off + b * x_stride, i * BLOCK, block))
        })
        .map_err(|e| l.err(e.to_string()))
}

impl Plan {
    /// Outputs `j0 ..` of the item whose terms start at `x[base]`, written to `out`.
    fn block(&self, x: &[f32], base: usize, j0: usize, out: &mut [f32]) -> Result<()> {
        let w = out.len();
        let last_term = (j0 + w - 1) * self.j_step + self.n_red.saturating_sub(1) * self.k_step;
        if self.k_step != 1 && self.j_step == 1 && w > 1 && last_term < self.limit {
            // Adjacent outputs, every term valid: sum whole rows of the block at once.
            let mut acc = vec![0.0f32; self.wg_y * w];
            for k in 0..self.n_red {
                let row = terms(x, base + j0 + k * self.k_step, 1, w)?;
                let lane = &mut acc[(k % self.wg_y) * w..][..w];
                lane.iter_mut()
                    .zip(row)
                    .for_each(|(a, &v)| *a += self.term(v));
            }
            tree(&mut acc, w);
            for (o, &s) in out.iter_mut().zip(&acc) {
                *o = self.finish(s, *o);
            }
            return Ok(());
        }
        let mut lanes = vec![0.0f32; self.wg_y];
        for (jj, o) in out.iter_mut().enumerate() {
            let off_j = (j0 + jj) * self.j_step;
            let n = self.valid_terms(off_j);
            let xs = terms(x, base + off_j, self.k_step, n)?;
            lanes.fill(0.0);
            if self.k_step == 1 {
                for chunk in xs.chunks(self.wg_y) {
                    lanes
                        .iter_mut()
                        .zip(chunk)
                        .for_each(|(a, &v)| *a += self.term(v));
                }
            } else {
                // `xs` spans exactly the n terms, so every index is in bounds (also for step 0).
                for k in 0..n {
                    lanes[k % self.wg_y] += self.term(xs[k * self.k_step]);
                }
            }
            tree(&mut lanes, 1);
            *o = self.finish(lanes[0], *o);
        }
        Ok(())
    }

    /// How many terms `k = 0, 1, …` of an output at item offset `off_j` lie below `limit` (the
    /// ragged last chunk of sum-of-squares pass 1); offsets grow with `k`, so they are a prefix.
    fn valid_terms(&self, off_j: usize) -> usize {
        if off_j >= self.limit {
            0
        } else if self.k_step == 0 {
            self.n_red
        } else {
            self.n_red.min((self.limit - off_j).div_ceil(self.k_step))
        }
    }

    fn term(&self, v: f32) -> f32 {
        if self.square {
            v * v
        } else {
            v
        }
    }

    /// `alpha · sum + beta · old`; `beta == 0` does not read `old` (it may be NaN).
    fn finish(&self, sum: f32, old: f32) -> f32 {
        let v = self.alpha * sum;
        if self.beta != 0.0 {
            v + self.beta * old
        } else {
            v
        }
    }
}

/// The span of `x` holding `n` terms `step` apart from `start` (bounds-checked).
fn terms(x: &[f32], start: usize, step: usize, n: usize) -> Result<&[f32]> {
    if n == 0 {
        return Ok(&[]);
    }
    crate::native::item(x, start, 0, 0, (n - 1) * step + 1)
}
