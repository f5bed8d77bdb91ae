//! Native `shaders/embnorm.wgsl`: `main` in MODE 0 (normalise: `s = √C / ‖x_row‖₂`, `y = x·s`,
//! writing y and s) and MODE 1 (scale rows by the given `s`, which is only read). One task per
//! row, rows of all items in parallel; the sum of squares runs serially in the shader's order,
//! unfused like the twin (`f32::mul_add` without a build-time FMA target feature is a libm call,
//! far slower than the loop it sits in).

use rayon::prelude::*;

use super::Params;
use crate::gpu::error::Result;
use crate::native::{items, items_mut, Launch};
use crate::native::{rows, rows_mut};

/// Runs one launch of `embnorm::main`.
pub(crate) fn run(l: &mut Launch<'_>) -> Result<()> {
    if l.entry != "main" {
        return Err(l.unknown_entry());
    }
    let p: Params = l.params()?;
    let normalise = match l.constant("MODE", 0.0) as u32 {
        0 => true,
        1 => false,
        2 => return unit_columns(l, &p),
        m => return Err(l.err(format!("unknown MODE {m}"))),
    };
    let (nrows, cols, total) = (p.rows as usize, p.cols as usize, p.total as usize);
    if total == 0 {
        return Ok(());
    }
    if nrows == 0 || total % nrows != 0 {
        return Err(l.err(format!(
            "{total} rows in all is not a batch of {nrows}-row items"
        )));
    }
    let shape = (total / nrows, nrows, cols);
    let x = l.read(1)?;
    let (y, s) = (l.write(2)?, l.write(3)?);
    let xs = rows(x, p.x_off as usize, p.x_stride as usize, shape)?;
    let ys = rows_mut(y, p.y_off as usize, p.y_stride as usize, shape)?;
    let one = (shape.0, nrows, 1);
    let (s_off, s_stride) = (p.s_off as usize, p.s_stride as usize);
    if normalise {
        let ss = rows_mut(s, s_off, s_stride, one)?;
        let sqrt_c = (cols as f32).sqrt();
        xs.into_par_iter().zip(ys).zip(ss).for_each(|((x, y), s)| {
            // A zero row gives +∞ (and NaN outputs), as the CPU twin does.
            let sumsq = x.iter().fold(0.0f32, |acc, &v| acc + v * v);
            s[0] = sqrt_c / sumsq.sqrt();
            scale(x, s[0], y);
        });
    } else {
        // Only read here, so the scales may be shared by several items (stride 0).
        let ss = rows(s, s_off, s_stride, one)?;
        xs.into_par_iter()
            .zip(ys)
            .zip(ss)
            .for_each(|((x, y), s)| scale(x, s[0], y));
    }
    Ok(())
}

/// `y = x · s` element-wise.
fn scale(x: &[f32], s: f32, y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(y, &v)| *y = v * s);
}

/// MODE 2: every column of every item scaled to unit norm; one task per item, the columns' sums
/// of squares in the shader's row order.
fn unit_columns(l: &mut Launch<'_>, p: &Params) -> Result<()> {
    let (nrows, cols, total) = (p.rows as usize, p.cols as usize, p.total as usize);
    if total == 0 || cols == 0 {
        return Ok(());
    }
    let batch = total / cols;
    let x = l.read(1)?;
    let (y, s) = (l.write(2)?, l.write(3)?);
    let len = nrows * cols;
    let xs = items(x, p.x_off as usize, p.x_stride as usize, len, batch)?;
    let ys = items_mut(y, p.y_off as usize, p.y_stride as usize, len, batch)?;
    let ss = items_mut(s, p.s_off as usize, p.s_stride as usize, cols, batch)?;
    xs.into_par_iter().zip(ys).zip(ss).for_each(|((x, y), s)| {
        for (c, sc) in s.iter_mut().enumerate() {
            let sumsq = (0..nrows).fold(0.0f32, |acc, r| acc + x[r * cols + c] * x[r * cols + c]);
            *sc = 1.0 / sumsq.sqrt();
            (0..nrows).for_each(|r| y[r * cols + c] = x[r * cols + c] * *sc);
        }
    });
    Ok(())
}
