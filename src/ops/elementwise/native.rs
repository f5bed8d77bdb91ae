//! Native `shaders/elementwise.wgsl`: `apply_inplace` (scale, fill), `apply_unary` (activation /
//! copy, axpy, bias) and `apply_binary` (activation backward) and `apply_tangent` (its tangent), one output element at a time, items
//! in parallel.

use rayon::prelude::*;

use super::Params;
use crate::gpu::error::Result;
use crate::native::{items, items_mut, Launch};
use crate::ops::Activation;

/// Runs one launch of an element-wise entry point.
pub(crate) fn run(l: &mut Launch<'_>) -> Result<()> {
    let p: Params = l.params()?;
    let op = l.constant("OP", 0.0) as u32;
    let act = Activation::of_launch(l)?;
    let (len, batch) = (p.len as usize, batch_of(&p));
    let alpha = p.alpha;
    match l.entry {
        "apply_inplace" => {
            let y = l.write(1)?;
            let ys = items_mut(y, p.y_off as usize, p.y_stride as usize, len, batch)?;
            ys.into_par_iter().for_each(|y| match op {
                1 => y.fill(alpha),
                _ => y.iter_mut().for_each(|v| *v *= alpha),
            });
        }
        "apply_unary" => {
            let a = l.read(2)?;
            let y = l.write(1)?;
            let cols = p.cols.max(1) as usize;
            let a_len = if op == 2 { cols } else { len };
            let ys = items_mut(y, p.y_off as usize, p.y_stride as usize, len, batch)?;
            let inputs = items(a, p.a_off as usize, p.a_stride as usize, a_len, batch)?;
            ys.into_par_iter().zip(inputs).for_each(|(y, a)| match op {
                1 => y.iter_mut().zip(a).for_each(|(y, &a)| *y += alpha * a),
                2 => y
                    .chunks_mut(cols)
                    .for_each(|row| row.iter_mut().zip(a).for_each(|(y, &b)| *y += b)),
                _ => forward(act, a, y),
            });
        }
        "apply_binary" => {
            let (a, b) = (l.read(2)?, l.read(3)?);
            let y = l.write(1)?;
            let ys = items_mut(y, p.y_off as usize, p.y_stride as usize, len, batch)?;
            let dys = items(a, p.a_off as usize, p.a_stride as usize, len, batch)?;
            let outs = items(b, p.b_off as usize, p.b_stride as usize, len, batch)?;
            ys.into_par_iter()
                .zip(dys.into_par_iter().zip(outs))
                .for_each(|(y, (dy, out))| backward(act, dy, out, y));
        }
        "apply_tangent" => {
            let place = |b: usize, off: u32, stride: u32| {
                items(l.read(b)?, off as usize, stride as usize, len, batch)
            };
            let dy_dots = place(2, p.a_off, p.a_stride)?;
            let outs = place(3, p.b_off, p.b_stride)?;
            let out_dots = place(4, p.c_off, p.c_stride)?;
            let dys = place(5, p.d_off, p.d_stride)?;
            let y = l.write(1)?;
            let ys = items_mut(y, p.y_off as usize, p.y_stride as usize, len, batch)?;
            ys.into_par_iter().enumerate().for_each(|(b, y)| {
                let (a, o, od, dy) = (dy_dots[b], outs[b], out_dots[b], dys[b]);
                for (i, y) in y.iter_mut().enumerate() {
                    *y = act.tangent_backward(a[i], (o[i], od[i]), dy[i]);
                }
            });
        }
        _ => return Err(l.unknown_entry()),
    }
    Ok(())
}

/// `y = act(x)`, the activation chosen once outside the loop so that each arm vectorises.
fn forward(act: Activation, x: &[f32], y: &mut [f32]) {
    let each = |f: fn(f32) -> f32, y: &mut [f32]| y.iter_mut().zip(x).for_each(|(y, &x)| *y = f(x));
    match act {
        Activation::Identity => y.copy_from_slice(&x[..y.len()]),
        Activation::Relu => each(|x| Activation::Relu.forward(x), y),
        Activation::Elu => each(|x| Activation::Elu.forward(x), y),
    }
}

/// `dx = act'(·)·dy` from the activation output, hoisted like [`forward`].
fn backward(act: Activation, dy: &[f32], out: &[f32], dx: &mut [f32]) {
    let each = |f: fn(f32, f32) -> f32, dx: &mut [f32]| {
        for ((dx, &dy), &o) in dx.iter_mut().zip(dy).zip(out) {
            *dx = f(dy, o);
        }
    };
    match act {
        Activation::Identity => dx.copy_from_slice(&dy[..dx.len()]),
        Activation::Relu => each(|dy, o| Activation::Relu.backward(dy, o), dx),
        Activation::Elu => each(|dy, o| Activation::Elu.backward(dy, o), dx),
    }
}

fn batch_of(p: &Params) -> usize {
    p.total.checked_div(p.len).unwrap_or(0) as usize
}
