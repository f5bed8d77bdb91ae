//! Soft targets from logits (`shaders/softmax.wgsl`): per-item column statistics, and the
//! tempered softmax of standardised logits. This is how the hyperteacher turns teacher logits
//! into soft labels (Schug et al. spec §3.2): z-score each output unit per task with μ, σ taken
//! over a fixed set of inputs, then `y = softmax(z / T)` with `T = 0.1`.

use crate::gpu::error::{arg_err, shape_err, Result};
use crate::gpu::{grid_1d, Access, Cost, Device, Dispatch, KernelSpec, Shader, Tensor};
use crate::ops::{check_output, common_batch, place, to_u32, Real};

mod native;

/// `shaders/softmax.wgsl`.
pub static SHADER: Shader = Shader {
    name: "softmax",
    source: include_str!("../../shaders/softmax.wgsl"),
    native: native::run,
    params: <Params as crate::gpu::Uniform>::LAYOUT,
};

/// Invocations per workgroup (`WG` in the shader).
const WG: usize = 64;

crate::uniform! {
    pub(crate) struct Params {
        pub(crate) batch: u32,
        pub(crate) rows: u32,
        pub(crate) cols: u32,
        pub(crate) _pad0: u32,
        pub(crate) x_off: u32,
        pub(crate) x_stride: u32,
        pub(crate) y_off: u32,
        pub(crate) y_stride: u32,
        pub(crate) mean_off: u32,
        pub(crate) mean_stride: u32,
        pub(crate) std_off: u32,
        pub(crate) std_stride: u32,
        pub(crate) inv_temperature: f32,
        pub(crate) _pad1: [u32; 3],
    }
}

/// Checks `stats` is `[batch × 1 × cols]` per item.
fn check_stats(op: &'static str, name: &str, t: &Tensor, x: &Tensor) -> Result<()> {
    if t.rows() != 1 || t.cols() != x.cols() {
        return Err(shape_err(
            op,
            format!(
                "{name} {} must be [batch × 1 × {}] for x {}",
                t.shape_str(),
                x.cols(),
                x.shape_str()
            ),
        ));
    }
    Ok(())
}

fn params(
    op: &'static str,
    x: &Tensor,
    y: Option<&Tensor>,
    mean: &Tensor,
    std: &Tensor,
    inv_t: f32,
) -> Result<Params> {
    let (x_off, x_stride) = place(op, "x", x)?;
    let (y_off, y_stride) = match y {
        Some(y) => place(op, "y", y)?,
        None => (0, 0),
    };
    let (mean_off, mean_stride) = place(op, "mean", mean)?;
    let (std_off, std_stride) = place(op, "std", std)?;
    Ok(Params {
        batch: to_u32(op, "batch", x.batch())?,
        rows: to_u32(op, "rows", x.rows())?,
        cols: to_u32(op, "cols", x.cols())?,
        _pad0: 0,
        x_off,
        x_stride,
        y_off,
        y_stride,
        mean_off,
        mean_stride,
        std_off,
        std_stride,
        inv_temperature: inv_t,
        _pad1: [0; 3],
    })
}

/// Prepares per item `b` and column `c`: `mean[b, c]` and population `std[b, c]` of `x[b, :, c]`.
pub fn column_stats(gpu: &Device, x: &Tensor, mean: &Tensor, std: &Tensor) -> Result<Dispatch> {
    const OP: &str = "column_stats";
    let batch = common_batch(OP, &[("x", x), ("mean", mean), ("std", std)])?;
    check_stats(OP, "mean", mean, x)?;
    check_stats(OP, "std", std, x)?;
    check_output(OP, "mean", mean)?;
    check_output(OP, "std", std)?;
    if x.rows() == 0 {
        return Err(shape_err(
            OP,
            format!("x {} has no rows to average", x.shape_str()),
        ));
    }
    let p = params(OP, x, None, mean, std, 1.0)?;
    let spec = KernelSpec {
        shader: &SHADER,
        entry: "column_stats",
        constants: &[("WG", WG as f64)],
        access: &[Access::Read, Access::ReadWrite, Access::ReadWrite],
    };
    let n = (batch * x.item_len()) as f64;
    let cost = Cost {
        flops: 4.0 * n,
        bytes: 8.0 * n,
    };
    gpu.dispatch(
        &spec,
        &p,
        &[x, mean, std],
        grid_1d((batch * x.cols()).div_ceil(WG)),
        cost,
    )
}

/// Prepares `y[b, r, :] = softmax(((x[b, r, :] − mean[b]) / std[b]) / temperature)`.
///
/// A column with `std = 0` (constant over the statistics rows) is standardised to 0 rather than
/// NaN: it carries no information about the task.
pub fn standardized_softmax(
    gpu: &Device,
    x: &Tensor,
    mean: &Tensor,
    std: &Tensor,
    y: &Tensor,
    temperature: f32,
) -> Result<Dispatch> {
    const OP: &str = "standardized_softmax";
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(arg_err(
            OP,
            format!("temperature {temperature} must be finite and positive"),
        ));
    }
    let batch = common_batch(OP, &[("x", x), ("mean", mean), ("std", std), ("y", y)])?;
    check_stats(OP, "mean", mean, x)?;
    check_stats(OP, "std", std, x)?;
    if y.rows() != x.rows() || y.cols() != x.cols() {
        return Err(shape_err(
            OP,
            format!("y {} must match x {}", y.shape_str(), x.shape_str()),
        ));
    }
    check_output(OP, "y", y)?;
    let p = params(OP, x, Some(y), mean, std, 1.0 / temperature)?;
    let spec = KernelSpec {
        shader: &SHADER,
        entry: "standardized_softmax",
        constants: &[("WG", WG as f64)],
        access: &[
            Access::Read,
            Access::ReadWrite,
            Access::ReadWrite,
            Access::ReadWrite,
        ],
    };
    let n = (batch * x.item_len()) as f64;
    let cost = Cost {
        flops: 8.0 * n,
        bytes: 8.0 * n,
    };
    gpu.dispatch(
        &spec,
        &p,
        &[x, mean, std, y],
        grid_1d((batch * x.rows()).div_ceil(WG)),
        cost,
    )
}

/// CPU twin of [`column_stats`] on logical data `x` of shape `batch × rows × cols`.
pub fn column_stats_cpu<T: Real>(
    x: &[T],
    (batch, rows, cols): (usize, usize, usize),
    mean: &mut [T],
    std: &mut [T],
) {
    let n = T::from_f64(rows as f64);
    for b in 0..batch {
        for c in 0..cols {
            let col = |r: usize| x[(b * rows + r) * cols + c];
            let mu = (0..rows).map(col).sum::<T>() / n;
            let var = (0..rows).map(|r| (col(r) - mu) * (col(r) - mu)).sum::<T>() / n;
            mean[b * cols + c] = mu;
            std[b * cols + c] = var.sqrt();
        }
    }
}

/// CPU twin of [`standardized_softmax`].
pub fn standardized_softmax_cpu<T: Real>(
    x: &[T],
    (batch, rows, cols): (usize, usize, usize),
    mean: &[T],
    std: &[T],
    temperature: T,
    y: &mut [T],
) {
    if cols == 0 {
        return;
    }
    // Multiply by 1/T as the kernel does, so both round the same way.
    let inv_t = T::one() / temperature;
    for b in 0..batch {
        for r in 0..rows {
            let row = (b * rows + r) * cols;
            let z: Vec<T> = (0..cols)
                .map(|c| {
                    let s = std[b * cols + c];
                    if s > T::zero() {
                        (x[row + c] - mean[b * cols + c]) / s * inv_t
                    } else {
                        T::zero()
                    }
                })
                .collect();
            let m = z.iter().copied().fold(z[0], T::max);
            let e: Vec<T> = z.iter().map(|&v| (v - m).exp()).collect();
            let s: T = e.iter().copied().sum();
            for c in 0..cols {
                y[row + c] = e[c] / s;
            }
        }
    }
}
