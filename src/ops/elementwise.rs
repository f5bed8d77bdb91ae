//! Element-wise kernels (`shaders/elementwise.wgsl`): activations and their backward pass, bias
//! addition, scaling, axpy, copy and fill, all strided-batched over the leading axis.
//!
//! Inputs may be stride-0 broadcasts; outputs may not. `copy` from a broadcast source into a
//! per-item tensor is how per-task fast weights are initialised from a shared meta-init.

use crate::gpu::error::{arg_err, shape_err, Result};
use crate::gpu::{grid_1d, Access, Cost, Device, Dispatch, KernelSpec, Shader, Tensor};
use crate::ops::{check_output, common_batch, place, to_u32, Activation, Real};

mod native;

/// `shaders/elementwise.wgsl` with the shared activation functions prepended.
pub static SHADER: Shader = Shader {
    name: "elementwise",
    source: concat!(
        include_str!("../../shaders/activation.wgsl"),
        include_str!("../../shaders/elementwise.wgsl")
    ),
    native: native::run,
    params: <Params as crate::gpu::Uniform>::LAYOUT,
};

/// Invocations per workgroup (`WG` in the shader).
const WG: usize = 256;

crate::uniform! {
    pub(crate) struct Params {
        pub(crate) len: u32,
        pub(crate) total: u32,
        pub(crate) cols: u32,
        pub(crate) _pad0: u32,
        pub(crate) y_off: u32,
        pub(crate) y_stride: u32,
        pub(crate) a_off: u32,
        pub(crate) a_stride: u32,
        pub(crate) b_off: u32,
        pub(crate) b_stride: u32,
        pub(crate) alpha: f32,
        pub(crate) _pad1: u32,
        pub(crate) c_off: u32,
        pub(crate) c_stride: u32,
        pub(crate) d_off: u32,
        pub(crate) d_stride: u32,
    }
}

/// Which entry point, and the value of its `OP` override.
#[derive(Clone, Copy)]
enum Kernel {
    Scale,
    Fill,
    Forward,
    Axpy,
    BiasAdd,
    Backward,
    TangentBackward,
}

impl Kernel {
    fn entry_and_op(self) -> (&'static str, u32) {
        match self {
            Kernel::Scale => ("apply_inplace", 0),
            Kernel::Fill => ("apply_inplace", 1),
            Kernel::Forward => ("apply_unary", 0),
            Kernel::Axpy => ("apply_unary", 1),
            Kernel::BiasAdd => ("apply_unary", 2),
            Kernel::Backward => ("apply_binary", 0),
            Kernel::TangentBackward => ("apply_tangent", 0),
        }
    }
}

/// Builds the launch of `kernel` writing `y` from `inputs` (0, 1 or 2 of them, matching the
/// entry point). Shapes, and that `y` is not a broadcast, are checked by the callers.
fn launch(
    gpu: &Device,
    op: &'static str,
    kernel: Kernel,
    y: &Tensor,
    inputs: &[&Tensor],
    act: Activation,
    alpha: f32,
) -> Result<Dispatch> {
    let (entry, code) = kernel.entry_and_op();
    let total = to_u32(op, "batch·rows·cols", y.len())?;
    let (y_off, y_stride) = place(op, "output", y)?;
    let mut places = [(0, 0); 4];
    for (slot, t) in places.iter_mut().zip(inputs) {
        *slot = place(op, "input", t)?;
    }
    let [(a_off, a_stride), (b_off, b_stride), (c_off, c_stride), (d_off, d_stride)] = places;
    let params = Params {
        len: to_u32(op, "rows·cols", y.item_len())?,
        total,
        cols: to_u32(op, "cols", y.cols())?,
        _pad0: 0,
        y_off,
        y_stride,
        a_off,
        a_stride,
        b_off,
        b_stride,
        alpha,
        _pad1: 0,
        c_off,
        c_stride,
        d_off,
        d_stride,
    };
    let constants = [("OP", code as f64), ("ACT", act.code() as f64)];
    let access = [
        Access::ReadWrite,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
    ];
    let spec = KernelSpec {
        shader: &SHADER,
        entry,
        constants: &constants,
        access: &access[..1 + inputs.len()],
    };
    let mut tensors = vec![y];
    tensors.extend_from_slice(inputs);
    // Read-modify-write kernels (scale, axpy, bias) read y as well as writing it.
    let reads_y = matches!(kernel, Kernel::Scale | Kernel::Axpy | Kernel::BiasAdd);
    let n = y.len() as f64;
    let unique = |t: &Tensor| {
        if t.batch_stride() == 0 {
            t.item_len() as f64
        } else {
            t.len() as f64
        }
    };
    let cost = Cost {
        flops: if matches!(kernel, Kernel::Fill) {
            0.0
        } else {
            n
        },
        bytes: 4.0
            * (n * if reads_y { 2.0 } else { 1.0 } + inputs.iter().map(|t| unique(t)).sum::<f64>()),
    };
    let workgroups = grid_1d(y.len().div_ceil(WG));
    gpu.dispatch(&spec, &params, &tensors, workgroups, cost)
}

/// Checks that `ts` all have the shape of the first one (batch, rows and cols; strides free).
fn same_shape(op: &'static str, ts: &[(&str, &Tensor)]) -> Result<()> {
    common_batch(op, ts)?;
    let (r, c) = (ts[0].1.rows(), ts[0].1.cols());
    if ts.iter().any(|(_, t)| t.rows() != r || t.cols() != c) {
        let shapes: Vec<String> = ts
            .iter()
            .map(|(n, t)| format!("{n} {}", t.shape_str()))
            .collect();
        return Err(shape_err(
            op,
            format!("operands must have the same shape: {}", shapes.join(", ")),
        ));
    }
    Ok(())
}

fn finite(op: &'static str, what: &str, v: f32) -> Result<()> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(arg_err(op, format!("{what} {v} must be finite")))
    }
}

/// Prepares `y = act(x)`.
pub fn activation_forward(
    gpu: &Device,
    x: &Tensor,
    y: &Tensor,
    act: Activation,
) -> Result<Dispatch> {
    const OP: &str = "activation_forward";
    same_shape(OP, &[("x", x), ("y", y)])?;
    check_output(OP, "y", y)?;
    launch(gpu, OP, Kernel::Forward, y, &[x], act, 1.0)
}

/// Prepares `dx = act'(·) · dy`, the derivative taken from the activation's output `y`
/// (ReLU' = 1 if y > 0 else 0, ELU' = 1 if y > 0 else y + 1), so the backward pass needs only stored
/// activations.
pub fn activation_backward(
    gpu: &Device,
    dy: &Tensor,
    y: &Tensor,
    dx: &Tensor,
    act: Activation,
) -> Result<Dispatch> {
    const OP: &str = "activation_backward";
    same_shape(OP, &[("dy", dy), ("y", y), ("dx", dx)])?;
    check_output(OP, "dx", dx)?;
    launch(gpu, OP, Kernel::Backward, dx, &[dy, y], act, 1.0)
}

/// Prepares the tangent of [`activation_backward`] for forward-over-reverse: with the forward's
/// output `y`, its tangent `y_dot`, the backward's `dy` and that gradient's tangent `dy_dot`,
/// `dx_dot = act'(x)·dy_dot + act''(x)·ẋ·dy`. The curvature is taken from the outputs
/// (`act''(x)·ẋ = (act''/act')(x)·ẏ`: for ELU `ẏ` where `y ≤ 0`, else 0; 0 for ReLU and the
/// identity), so only stored tensors are read.
pub fn activation_tangent_backward(
    gpu: &Device,
    dy_dot: &Tensor,
    (y, y_dot): (&Tensor, &Tensor),
    dy: &Tensor,
    dx_dot: &Tensor,
    act: Activation,
) -> Result<Dispatch> {
    const OP: &str = "activation_tangent_backward";
    let ops = [
        ("dy_dot", dy_dot),
        ("y", y),
        ("y_dot", y_dot),
        ("dy", dy),
        ("dx_dot", dx_dot),
    ];
    same_shape(OP, &ops)?;
    check_output(OP, "dx_dot", dx_dot)?;
    let inputs = [dy_dot, y, y_dot, dy];
    launch(gpu, OP, Kernel::TangentBackward, dx_dot, &inputs, act, 1.0)
}

/// Prepares `x[b, r, c] += bias[b, c]` in place; each bias item holds `x.cols()` values (and may
/// be a broadcast shared by the batch).
pub fn bias_add(gpu: &Device, x: &Tensor, bias: &Tensor) -> Result<Dispatch> {
    const OP: &str = "bias_add";
    common_batch(OP, &[("x", x), ("bias", bias)])?;
    if bias.item_len() != x.cols() {
        return Err(shape_err(
            OP,
            format!(
                "bias {} must hold cols = {} values per item of x {}",
                bias.shape_str(),
                x.cols(),
                x.shape_str()
            ),
        ));
    }
    check_output(OP, "x", x)?;
    launch(
        gpu,
        OP,
        Kernel::BiasAdd,
        x,
        &[bias],
        Activation::Identity,
        1.0,
    )
}

/// Prepares `x *= alpha` in place.
pub fn scale(gpu: &Device, x: &Tensor, alpha: f32) -> Result<Dispatch> {
    const OP: &str = "scale";
    finite(OP, "alpha", alpha)?;
    check_output(OP, "x", x)?;
    launch(gpu, OP, Kernel::Scale, x, &[], Activation::Identity, alpha)
}

/// Prepares `y += alpha · x`.
pub fn axpy(gpu: &Device, alpha: f32, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    const OP: &str = "axpy";
    finite(OP, "alpha", alpha)?;
    same_shape(OP, &[("x", x), ("y", y)])?;
    check_output(OP, "y", y)?;
    launch(gpu, OP, Kernel::Axpy, y, &[x], Activation::Identity, alpha)
}

/// Prepares `y = x` (same shape; strides may differ, e.g. a broadcast `x` into per-item `y`).
pub fn copy(gpu: &Device, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    const OP: &str = "copy";
    same_shape(OP, &[("x", x), ("y", y)])?;
    check_output(OP, "y", y)?;
    // The identity activation is a copy; no separate kernel needed.
    launch(gpu, OP, Kernel::Forward, y, &[x], Activation::Identity, 1.0)
}

/// Prepares `y = value` everywhere.
pub fn fill(gpu: &Device, y: &Tensor, value: f32) -> Result<Dispatch> {
    const OP: &str = "fill";
    finite(OP, "value", value)?;
    check_output(OP, "y", y)?;
    launch(gpu, OP, Kernel::Fill, y, &[], Activation::Identity, value)
}

/// CPU twin of [`activation_forward`].
pub fn activation_forward_cpu<T: Real>(x: &[T], y: &mut [T], act: Activation) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = act.forward(x);
    }
}

/// CPU twin of [`activation_backward`].
pub fn activation_backward_cpu<T: Real>(dy: &[T], y: &[T], dx: &mut [T], act: Activation) {
    for ((dx, &dy), &y) in dx.iter_mut().zip(dy).zip(y) {
        *dx = act.backward(dy, y);
    }
}

/// CPU twin of [`activation_tangent_backward`].
pub fn activation_tangent_backward_cpu<T: Real>(
    dy_dot: &[T],
    (y, y_dot): (&[T], &[T]),
    dy: &[T],
    dx_dot: &mut [T],
    act: Activation,
) {
    for (i, out) in dx_dot.iter_mut().enumerate() {
        *out = act.tangent_backward(dy_dot[i], (y[i], y_dot[i]), dy[i]);
    }
}

/// CPU twin of [`bias_add`]: `x` is batch·rows·cols, `bias` batch·cols.
pub fn bias_add_cpu<T: Real>(x: &mut [T], bias: &[T], cols: usize) {
    if cols == 0 || bias.is_empty() {
        return;
    }
    // Each item of x is rows × cols and each bias item cols values, so x.len() / bias.len() = rows.
    let rows = x.len() / bias.len();
    for (r, row) in x.chunks_mut(cols).enumerate() {
        let item = r / rows;
        for (v, &b) in row.iter_mut().zip(&bias[item * cols..]) {
            *v += b;
        }
    }
}

/// CPU twin of [`scale`].
pub fn scale_cpu<T: Real>(x: &mut [T], alpha: T) {
    for v in x {
        *v = alpha * *v;
    }
}

/// CPU twin of [`axpy`].
pub fn axpy_cpu<T: Real>(alpha: T, x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

/// CPU twin of [`copy`].
pub fn copy_cpu<T: Real>(x: &[T], y: &mut [T]) {
    y.copy_from_slice(x);
}

/// CPU twin of [`fill`].
pub fn fill_cpu<T: Real>(y: &mut [T], value: T) {
    y.fill(value);
}
