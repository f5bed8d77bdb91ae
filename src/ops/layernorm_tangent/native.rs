//! Native `shaders/layernorm_tangent.wgsl`: `forward` (ẏ and the per-row tangent statistics),
//! `backward` (ḋx) and `dparams` (per-item ḋγ). The row math is the CPU twin's
//! ([`TangentRow`]); rows of all items run in parallel. `dparams` sums fixed chunks of rows in
//! parallel and adds the chunks' partial sums in order, so its result does not depend on the
//! thread count.

use rayon::prelude::*;

use super::{Params, TangentRow};
use crate::gpu::error::Result;
use crate::native::Launch;
use crate::native::{per_item, rows, rows_mut};

/// Rows per `dparams` partial sum.
const ROW_CHUNK: usize = 512;

/// Runs one launch of a layernorm_tangent entry point.
pub(crate) fn run(l: &mut Launch<'_>) -> Result<()> {
    let p: Params = l.params()?;
    match l.entry {
        "forward" | "backward" | "dparams" => {}
        _ => return Err(l.unknown_entry()),
    }
    let (batch, nrows, cols) = (p.batch as usize, p.rows as usize, p.cols as usize);
    let shape = (batch, nrows, cols);
    let one = (batch, nrows, 1);
    let rd = |b: usize, off: u32, stride: u32, shape| {
        rows(l.read(b)?, off as usize, stride as usize, shape)
    };
    let xs = rd(1, p.x_off, p.x_stride, shape)?;
    let xds = rd(3, p.xd_off, p.xd_stride, shape)?;
    let ms = rd(6, p.m_off, p.m_stride, one)?;
    let rs = rd(7, p.r_off, p.r_stride, one)?;
    let gamma = per_item(
        l.read(2)?,
        l.flag("HAS_GAMMA"),
        p.g_off,
        p.g_stride,
        batch,
        cols,
    )?;
    let per = nrows.max(1);
    let row = |i: usize| TangentRow {
        x: xs[i],
        x_dot: xds[i],
        gamma: gamma[i / per],
        mean: ms[i][0],
        rstd: rs[i][0],
    };
    let entry = l.entry;
    let (dys, dyds) = if entry == "forward" {
        (Vec::new(), Vec::new())
    } else {
        (
            rd(4, p.dy_off, p.dy_stride, shape)?,
            rd(5, p.dyd_off, p.dyd_stride, shape)?,
        )
    };
    let (out, ts) = (l.write(8)?, l.write(9)?);
    let two = (batch, nrows, 2);
    match entry {
        "forward" => {
            let outs = rows_mut(out, p.out_off as usize, p.out_stride as usize, shape)?;
            let tss = rows_mut(ts, p.ts_off as usize, p.ts_stride as usize, two)?;
            outs.into_par_iter()
                .zip(tss)
                .enumerate()
                .for_each(|(i, (y_dot, t))| {
                    let (tm, tp) = row(i).forward(y_dot);
                    t[0] = tm;
                    t[1] = tp;
                });
        }
        "backward" => {
            let tss = rows(ts, p.ts_off as usize, p.ts_stride as usize, two)?;
            let outs = rows_mut(out, p.out_off as usize, p.out_stride as usize, shape)?;
            outs.into_par_iter().enumerate().for_each(|(i, dx_dot)| {
                row(i).backward((tss[i][0], tss[i][1]), dys[i], dyds[i], dx_dot);
            });
        }
        _ => {
            let tss = rows(ts, p.ts_off as usize, p.ts_stride as usize, two)?;
            let outs = rows_mut(
                out,
                p.out_off as usize,
                p.out_stride as usize,
                (batch, 1, cols),
            )?;
            for (item, dg) in outs.into_iter().enumerate() {
                let first = item * nrows;
                let partials: Vec<Vec<f32>> = (0..nrows.div_ceil(ROW_CHUNK))
                    .into_par_iter()
                    .map(|k| {
                        let mut acc = vec![0.0f32; cols];
                        let span = k * ROW_CHUNK..((k + 1) * ROW_CHUNK).min(nrows);
                        for i in span.map(|r| first + r) {
                            let t = (tss[i][0], tss[i][1]);
                            row(i).add_dgamma_dot(t, dys[i], dyds[i], &mut acc);
                        }
                        acc
                    })
                    .collect();
                dg.fill(0.0);
                for part in partials {
                    dg.iter_mut().zip(part).for_each(|(d, v)| *d += v);
                }
            }
        }
    }
    Ok(())
}
