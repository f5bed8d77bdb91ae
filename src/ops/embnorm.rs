//! Row-wise embedding normalisation of the hypernetwork students (`shaders/embnorm.wgsl`,
//! spec §4.2): `s = √C / ‖e_row‖₂`, `ê = e · s`, and the row scaling `de = dê · s` that is its
//! backward when the scale is under `stop_gradient`.
//!
//! Operands are strided batches of `rows × C` matrices (e.g. the embedding rows of every task
//! inside the packed task buffer); the scales are `[batch × rows × 1]`.

use crate::gpu::error::{shape_err, Result};
use crate::gpu::{grid_1d, Access, Cost, Device, Dispatch, KernelSpec, Shader, Tensor};
use crate::ops::{check_output, common_batch, place, to_u32, Real};

mod native;

/// `shaders/embnorm.wgsl`.
pub static SHADER: Shader = Shader {
    name: "embnorm",
    source: include_str!("../../shaders/embnorm.wgsl"),
    native: native::run,
    params: <Params as crate::gpu::Uniform>::LAYOUT,
};

/// Invocations per workgroup (`WG` in the shader).
const WG: usize = 64;

crate::uniform! {
    pub(crate) struct Params {
        pub(crate) rows: u32,
        pub(crate) cols: u32,
        pub(crate) total: u32,
        pub(crate) _pad0: u32,
        pub(crate) x_off: u32,
        pub(crate) x_stride: u32,
        pub(crate) y_off: u32,
        pub(crate) y_stride: u32,
        pub(crate) s_off: u32,
        pub(crate) s_stride: u32,
        pub(crate) _pad1: [u32; 2],
    }
}

fn launch(
    gpu: &Device,
    op: &'static str,
    mode: u32,
    x: &Tensor,
    y: &Tensor,
    s: &Tensor,
) -> Result<Dispatch> {
    common_batch(op, &[("x", x), ("y", y), ("s", s)])?;
    let (r, c) = (x.rows(), x.cols());
    // Row modes scale rows ([·×R×1] scales), the column mode columns ([·×1×C]).
    let (sr, sc) = if mode == 2 { (1, c) } else { (r, 1) };
    if y.rows() != r || y.cols() != c || s.rows() != sr || s.cols() != sc {
        return Err(shape_err(
            op,
            format!(
                "x {} needs y [·×{r}×{c}] and scales [·×{sr}×{sc}], got y {} and scales {}",
                x.shape_str(),
                y.shape_str(),
                s.shape_str()
            ),
        ));
    }
    check_output(op, "y", y)?;
    if mode != 1 {
        check_output(op, "scales", s)?;
    }
    let (x_off, x_stride) = place(op, "x", x)?;
    let (y_off, y_stride) = place(op, "y", y)?;
    let (s_off, s_stride) = place(op, "scales", s)?;
    let total = x.batch() * if mode == 2 { c } else { r };
    let params = Params {
        rows: to_u32(op, "rows", r)?,
        cols: to_u32(op, "cols", c)?,
        total: to_u32(op, "batch·rows", total)?,
        _pad0: 0,
        x_off,
        x_stride,
        y_off,
        y_stride,
        s_off,
        s_stride,
        _pad1: [0; 2],
    };
    let constants = [("MODE", mode as f64)];
    let spec = KernelSpec {
        shader: &SHADER,
        entry: "main",
        constants: &constants,
        access: &[Access::Read, Access::ReadWrite, Access::ReadWrite],
    };
    let n = x.len() as f64;
    let cost = Cost {
        flops: if mode == 1 { n } else { 3.0 * n },
        bytes: 4.0 * (2.0 * n + total as f64),
    };
    gpu.dispatch(
        &spec,
        &params,
        &[x, y, s],
        grid_1d(total.div_ceil(WG)),
        cost,
    )
}

/// Prepares `s[b, r] = √C / ‖e[b, r, :]‖₂` and `ehat = e · s` row-wise, for `e`, `ehat`
/// `[B × R × C]` and `scales` `[B × R × 1]`. A zero row yields an infinite scale.
pub fn embedding_normalize(
    gpu: &Device,
    e: &Tensor,
    ehat: &Tensor,
    scales: &Tensor,
) -> Result<Dispatch> {
    launch(gpu, "embedding_normalize", 0, e, ehat, scales)
}

/// Prepares `y[b, r, :] = x[b, r, :] · s[b, r]` for `x`, `y` `[B × R × C]` and `scales`
/// `[B × R × 1]` (only read): the backward of [`embedding_normalize`] with a frozen scale.
/// `scales` is bound read-write (one pipeline layout for both modes), so it may not share a
/// buffer with `x` or `y`.
pub fn scale_rows(gpu: &Device, x: &Tensor, scales: &Tensor, y: &Tensor) -> Result<Dispatch> {
    launch(gpu, "scale_rows", 1, x, y, scales)
}

/// Prepares `s[b, c] = 1 / ‖x[b, :, c]‖₂` and `y = x · s` column-wise, for `x`, `y`
/// `[B × R × C]` and `scales` `[B × 1 × C]`: every column of every item scaled to unit norm (a
/// zero column yields an infinite scale). `y` may not share a buffer with `x`.
pub fn normalize_columns(
    gpu: &Device,
    x: &Tensor,
    y: &Tensor,
    scales: &Tensor,
) -> Result<Dispatch> {
    launch(gpu, "normalize_columns", 2, x, y, scales)
}

/// CPU twin of [`normalize_columns`] on contiguous host data (`items` of `rows × cols`):
/// returns `(y, scales)`.
pub fn normalize_columns_cpu<T: Real>(x: &[T], rows: usize, cols: usize) -> (Vec<T>, Vec<T>) {
    let mut y = x.to_vec();
    let mut scales = Vec::new();
    for item in y.chunks_mut(rows * cols) {
        for c in 0..cols {
            let ss: T = (0..rows)
                .map(|r| item[r * cols + c] * item[r * cols + c])
                .sum();
            let s = T::from_f64(1.0) / ss.sqrt();
            (0..rows).for_each(|r| item[r * cols + c] = item[r * cols + c] * s);
            scales.push(s);
        }
    }
    (y, scales)
}

/// CPU twin of [`embedding_normalize`] on contiguous host data (`e`: rows·C values, any number
/// of items): returns `(ehat, scales)`.
pub fn embedding_normalize_cpu<T: Real>(e: &[T], cols: usize) -> (Vec<T>, Vec<T>) {
    let sqrt_c = T::from_f64(cols as f64).sqrt();
    let scales: Vec<T> = e
        .chunks(cols)
        .map(|r| sqrt_c / r.iter().map(|&v| v * v).sum::<T>().sqrt())
        .collect();
    (scale_rows_cpu(e, &scales, cols), scales)
}

/// CPU twin of [`scale_rows`].
pub fn scale_rows_cpu<T: Real>(x: &[T], scales: &[T], cols: usize) -> Vec<T> {
    x.chunks(cols)
        .zip(scales)
        .flat_map(|(r, &s)| r.iter().map(move |&v| v * s))
        .collect()
}
