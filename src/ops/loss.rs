//! Per-task losses with their gradients in one pass (`shaders/loss.wgsl`): softmax
//! cross-entropy, KL divergence (the hyperteacher's loss), accuracy and mean squared error.
//!
//! Logits and targets are `[batch × rows × cols]`: per batch item (a task) `rows` samples of
//! `cols` classes; targets are soft labels (probability rows) and may be a broadcast. The loss
//! is `[batch × 1 × 1]`, the mean over the item's rows (over rows·cols for MSE); the gradient
//! has the logits' shape and is `grad_scale · d(loss_item)/d(logits)` (e.g. `grad_scale =
//! 1/meta_batch` to average over tasks). Results are deterministic: see the shader header.

use crate::gpu::error::{arg_err, shape_err, Result};
use crate::gpu::{Access, Cost, Device, Dispatch, KernelSpec, Shader, Tensor};
use crate::ops::{check_output, common_batch, place, to_u32, Real};

mod native;

/// `shaders/loss.wgsl`.
pub static SHADER: Shader = Shader {
    name: "loss",
    source: include_str!("../../shaders/loss.wgsl"),
    native: native::run,
    params: <Params as crate::gpu::Uniform>::LAYOUT,
};

crate::uniform! {
    pub(crate) struct Params {
        pub(crate) rows: u32,
        pub(crate) cols: u32,
        /// Items (the workgroup count). The shader does not read it (its items are its
        /// workgroups); the native kernel, which sees no grid, does.
        pub(crate) batch: u32,
        pub(crate) _pad0: u32,
        pub(crate) z_off: u32,
        pub(crate) z_stride: u32,
        pub(crate) t_off: u32,
        pub(crate) t_stride: u32,
        pub(crate) l_off: u32,
        pub(crate) l_stride: u32,
        pub(crate) g_off: u32,
        pub(crate) g_stride: u32,
        pub(crate) norm: f32,
        pub(crate) gscale: f32,
        /// Offset and stride of the tangent `dz` (`grad_tangent` only).
        pub(crate) d_off: u32,
        pub(crate) d_stride: u32,
    }
}

/// The per-row value a launch reduces (the shader's `LOSS` override).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    CrossEntropy,
    Kl,
    Mse,
    Accuracy,
}

impl Kind {
    fn code(self) -> u32 {
        match self {
            Kind::CrossEntropy => 0,
            Kind::Kl => 1,
            Kind::Mse => 2,
            Kind::Accuracy => 3,
        }
    }
    fn op(self) -> &'static str {
        match self {
            Kind::CrossEntropy => "softmax_cross_entropy",
            Kind::Kl => "kl_divergence",
            Kind::Mse => "mse",
            Kind::Accuracy => "accuracy",
        }
    }
}

/// Problem size of a loss launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossShape {
    /// Batch items (tasks).
    pub batch: usize,
    /// Samples per item.
    pub rows: usize,
    /// Classes (or outputs) per sample.
    pub cols: usize,
}

/// Checks the operands of a loss launch and returns its shape: `like_logits` are (name, tensor,
/// written) of the logits' rows × cols (targets, gradient, tangents), `loss` the per-item output
/// of a launch that has one.
fn loss_shape(
    op: &'static str,
    logits: &Tensor,
    like_logits: &[(&'static str, &Tensor, bool)],
    loss: Option<&Tensor>,
) -> Result<LossShape> {
    let mut ops = vec![("logits", logits)];
    ops.extend(like_logits.iter().map(|&(n, t, _)| (n, t)));
    ops.extend(loss.map(|l| ("loss", l)));
    let batch = common_batch(op, &ops)?;
    let (rows, cols) = (logits.rows(), logits.cols());
    let describe = || {
        ops.iter()
            .map(|(n, t)| format!("{n} {}", t.shape_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for &(name, t, written) in like_logits {
        if t.rows() != rows || t.cols() != cols {
            return Err(shape_err(
                op,
                format!("{name} must have the logits' shape: {}", describe()),
            ));
        }
        if written {
            check_output(op, name, t)?;
        }
    }
    if let Some(loss) = loss {
        if loss.rows() != 1 || loss.cols() != 1 {
            return Err(shape_err(
                op,
                format!("loss must be [batch×1×1]: {}", describe()),
            ));
        }
        check_output(op, "loss", loss)?;
    }
    if rows == 0 || cols == 0 {
        return Err(shape_err(
            op,
            format!(
                "a mean over rows needs at least one row and one column: {}",
                describe()
            ),
        ));
    }
    Ok(LossShape { batch, rows, cols })
}

/// The factor the kernel multiplies each element's raw gradient by (see `gscale` in the shader).
fn grad_factor<T: Real>(kind: Kind, s: LossShape, grad_scale: T) -> T {
    match kind {
        Kind::Mse => T::from_f64(2.0) * grad_scale / T::from_f64((s.rows * s.cols) as f64),
        _ => grad_scale / T::from_f64(s.rows as f64),
    }
}

/// Number of terms the item's loss is the mean of.
fn terms(kind: Kind, s: LossShape) -> usize {
    match kind {
        Kind::Mse => s.rows * s.cols,
        _ => s.rows,
    }
}

/// Rejects a non-finite gradient scale.
fn check_scale(op: &'static str, grad_scale: f32) -> Result<()> {
    if grad_scale.is_finite() {
        Ok(())
    } else {
        Err(arg_err(
            op,
            format!("grad_scale {grad_scale} must be finite"),
        ))
    }
}

/// Elements an operand brings over the bus (one item for a broadcast).
fn unique(t: &Tensor) -> f64 {
    if t.batch_stride() == 0 {
        t.item_len() as f64
    } else {
        t.len() as f64
    }
}

fn launch(
    gpu: &Device,
    kind: Kind,
    logits: &Tensor,
    targets: &Tensor,
    loss: &Tensor,
    grad: Option<&Tensor>,
    grad_scale: f32,
) -> Result<Dispatch> {
    let op = kind.op();
    let mut like_logits = vec![("targets", targets, false)];
    like_logits.extend(grad.map(|g| ("grad", g, true)));
    let s = loss_shape(op, logits, &like_logits, Some(loss))?;
    check_scale(op, grad_scale)?;
    let (z_off, z_stride) = place(op, "logits", logits)?;
    let (t_off, t_stride) = place(op, "targets", targets)?;
    let (l_off, l_stride) = place(op, "loss", loss)?;
    let (g_off, g_stride) = match grad {
        Some(g) => place(op, "grad", g)?,
        None => (0, 0),
    };
    let params = Params {
        rows: to_u32(op, "rows", s.rows)?,
        cols: to_u32(op, "cols", s.cols)?,
        batch: to_u32(op, "batch", s.batch)?,
        _pad0: 0,
        z_off,
        z_stride,
        t_off,
        t_stride,
        l_off,
        l_stride,
        g_off,
        g_stride,
        norm: 1.0 / terms(kind, s) as f32,
        gscale: grad_factor(kind, s, grad_scale),
        d_off: 0,
        d_stride: 0,
    };
    let constants = [("LOSS", kind.code() as f64)];
    let access = [
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
    ];
    let spec = KernelSpec {
        shader: &SHADER,
        entry: if grad.is_some() {
            "value_grad"
        } else {
            "value"
        },
        constants: &constants,
        access: &access[..if grad.is_some() { 4 } else { 3 }],
    };
    let mut tensors = vec![logits, targets, loss];
    tensors.extend(grad);
    let n = (s.batch * s.rows * s.cols) as f64;
    // Softmax losses: max, exp, and the weighted sum per element (≈ 6 flops, exps counted as
    // one), the gradient another ≈ 4; MSE 2 (+ 2); accuracy 2 comparisons.
    let per_elem = match (kind, grad.is_some()) {
        (Kind::Mse, g) => 2.0 + if g { 2.0 } else { 0.0 },
        (Kind::Accuracy, _) => 2.0,
        (_, g) => 6.0 + if g { 4.0 } else { 0.0 },
    };
    let cost = Cost {
        flops: per_elem * n,
        bytes: 4.0 * (unique(logits) + unique(targets) + s.batch as f64 + grad.map_or(0.0, |_| n)),
    };
    let workgroups = [to_u32(op, "batch", s.batch)?, 1, 1];
    gpu.dispatch(&spec, &params, &tensors, workgroups, cost)
}

/// Prepares the softmax cross-entropy `loss[b] = mean_r −Σ_c y log softmax(z)` of each item and,
/// if `grad` is given, `grad = grad_scale · (softmax(z)·Σ_c y − y) / rows` (the exact
/// derivative; `softmax − y` for probability rows).
pub fn softmax_cross_entropy(
    gpu: &Device,
    logits: &Tensor,
    targets: &Tensor,
    loss: &Tensor,
    grad: Option<&Tensor>,
    grad_scale: f32,
) -> Result<Dispatch> {
    launch(
        gpu,
        Kind::CrossEntropy,
        logits,
        targets,
        loss,
        grad,
        grad_scale,
    )
}

/// Prepares the KL divergence `loss[b] = mean_r Σ_c y (log y − log softmax(z))` (0·log 0 = 0);
/// the gradient is the cross-entropy's, since the two differ by the targets' entropy.
pub fn kl_divergence(
    gpu: &Device,
    logits: &Tensor,
    targets: &Tensor,
    loss: &Tensor,
    grad: Option<&Tensor>,
    grad_scale: f32,
) -> Result<Dispatch> {
    launch(gpu, Kind::Kl, logits, targets, loss, grad, grad_scale)
}

/// Prepares the tangent of the KL (= cross-entropy) gradient along a tangent `dz` of the
/// logits, targets fixed: `out = grad_scale·Σy·(p⊙dz − p·(p·dz))/rows` row by row,
/// `p = softmax(logits)` — the Hessian of the item's loss w.r.t. its logits times `dz`, for
/// second-order meta-gradients. All four operands are `[B × rows × cols]` with any offset and
/// stride (`out` not broadcast, on a buffer of its own). CPU twin: [`kl_tangent_cpu`].
pub fn kl_tangent(
    gpu: &Device,
    logits: &Tensor,
    targets: &Tensor,
    dz: &Tensor,
    out: &Tensor,
    grad_scale: f32,
) -> Result<Dispatch> {
    const OP: &str = "kl_tangent";
    let like_logits = [
        ("targets", targets, false),
        ("dz", dz, false),
        ("out", out, true),
    ];
    let s = loss_shape(OP, logits, &like_logits, None)?;
    check_scale(OP, grad_scale)?;
    let (z_off, z_stride) = place(OP, "logits", logits)?;
    let (t_off, t_stride) = place(OP, "targets", targets)?;
    let (g_off, g_stride) = place(OP, "out", out)?;
    let (d_off, d_stride) = place(OP, "dz", dz)?;
    let params = Params {
        rows: to_u32(OP, "rows", s.rows)?,
        cols: to_u32(OP, "cols", s.cols)?,
        batch: to_u32(OP, "batch", s.batch)?,
        _pad0: 0,
        z_off,
        z_stride,
        t_off,
        t_stride,
        l_off: 0,
        l_stride: 0,
        g_off,
        g_stride,
        norm: 0.0,
        gscale: grad_factor(Kind::Kl, s, grad_scale),
        d_off,
        d_stride,
    };
    // Cross-entropy's row statistics: KL's differ only in the value (its y·log y), unused here.
    let constants = [("LOSS", Kind::CrossEntropy.code() as f64)];
    use Access::{Read, ReadWrite};
    let spec = KernelSpec {
        shader: &SHADER,
        entry: "grad_tangent",
        constants: &constants,
        // Binding 3 (the loss) is unused: the logits stand in, read-only.
        access: &[Read, Read, Read, ReadWrite, Read],
    };
    let n = (s.batch * s.rows * s.cols) as f64;
    let cost = Cost {
        // Max, two exps and the statistics (≈ 6), p·dz and the output (≈ 6) per element.
        flops: 12.0 * n,
        bytes: 4.0 * (unique(logits) + unique(targets) + unique(dz) + n),
    };
    let workgroups = [to_u32(OP, "batch", s.batch)?, 1, 1];
    gpu.dispatch(
        &spec,
        &params,
        &[logits, targets, logits, out, dz],
        workgroups,
        cost,
    )
}

/// Prepares `acc[b]` = fraction of the item's rows whose logits' argmax equals the targets'
/// argmax (ties resolve to the lowest index in both).
pub fn accuracy(gpu: &Device, logits: &Tensor, targets: &Tensor, acc: &Tensor) -> Result<Dispatch> {
    launch(gpu, Kind::Accuracy, logits, targets, acc, None, 1.0)
}

/// Prepares `loss[b] = mean over rows·cols of (pred − y)²` and, if `grad` is given,
/// `grad = grad_scale · 2 (pred − y) / (rows·cols)`.
pub fn mse(
    gpu: &Device,
    pred: &Tensor,
    targets: &Tensor,
    loss: &Tensor,
    grad: Option<&Tensor>,
    grad_scale: f32,
) -> Result<Dispatch> {
    launch(gpu, Kind::Mse, pred, targets, loss, grad, grad_scale)
}

/// Index of the largest value, the lowest one on ties (the rule of the shader).
fn argmax<T: Real>(v: &[T]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// The shared CPU twin: per-item mean of the row values, and the scaled gradient.
fn loss_cpu<T: Real>(
    kind: Kind,
    logits: &[T],
    targets: &[T],
    shape: LossShape,
    loss: &mut [T],
    mut grad: Option<&mut [T]>,
    grad_scale: T,
) {
    let LossShape { batch, rows, cols } = shape;
    let gscale = grad_factor(kind, shape, grad_scale);
    let norm = T::one() / T::from_f64(terms(kind, shape) as f64);
    for (b, l) in loss.iter_mut().enumerate().take(batch) {
        let mut sum = T::zero();
        for r in 0..rows {
            let at = (b * rows + r) * cols;
            let z = &logits[at..at + cols];
            let y = &targets[at..at + cols];
            let g = grad.as_deref_mut().map(|g| &mut g[at..at + cols]);
            match kind {
                Kind::Mse => {
                    for c in 0..cols {
                        let d = z[c] - y[c];
                        sum += d * d;
                    }
                    if let Some(g) = g {
                        for c in 0..cols {
                            g[c] = gscale * (z[c] - y[c]);
                        }
                    }
                }
                Kind::Accuracy => {
                    if argmax(z) == argmax(y) {
                        sum += T::one();
                    }
                }
                Kind::CrossEntropy | Kind::Kl => {
                    let m = z.iter().fold(z[0], |m, &v| m.max(v));
                    let log_s = z.iter().map(|&v| (v - m).exp()).sum::<T>().ln();
                    let tsum: T = y.iter().copied().sum();
                    for c in 0..cols {
                        sum += -(y[c] * ((z[c] - m) - log_s));
                        if kind == Kind::Kl && y[c] > T::zero() {
                            sum += y[c] * y[c].ln();
                        }
                    }
                    if let Some(g) = g {
                        for c in 0..cols {
                            g[c] = gscale * (((z[c] - m) - log_s).exp() * tsum - y[c]);
                        }
                    }
                }
            }
        }
        *l = sum * norm;
    }
}

/// CPU twin of [`softmax_cross_entropy`] on logical contiguous data (`loss`: one per item).
pub fn softmax_cross_entropy_cpu<T: Real>(
    logits: &[T],
    targets: &[T],
    shape: LossShape,
    loss: &mut [T],
    grad: Option<&mut [T]>,
    grad_scale: T,
) {
    loss_cpu(
        Kind::CrossEntropy,
        logits,
        targets,
        shape,
        loss,
        grad,
        grad_scale,
    );
}

/// CPU twin of [`kl_divergence`].
pub fn kl_divergence_cpu<T: Real>(
    logits: &[T],
    targets: &[T],
    shape: LossShape,
    loss: &mut [T],
    grad: Option<&mut [T]>,
    grad_scale: T,
) {
    loss_cpu(Kind::Kl, logits, targets, shape, loss, grad, grad_scale);
}

/// CPU twin of [`accuracy`].
pub fn accuracy_cpu<T: Real>(logits: &[T], targets: &[T], shape: LossShape, acc: &mut [T]) {
    loss_cpu(Kind::Accuracy, logits, targets, shape, acc, None, T::one());
}

/// CPU twin of [`mse`].
pub fn mse_cpu<T: Real>(
    pred: &[T],
    targets: &[T],
    shape: LossShape,
    loss: &mut [T],
    grad: Option<&mut [T]>,
    grad_scale: T,
) {
    loss_cpu(Kind::Mse, pred, targets, shape, loss, grad, grad_scale);
}

/// CPU twin of the KL / cross-entropy gradient's TANGENT: the derivative of
/// `grad = grad_scale·(softmax(z)·Σy − y)/rows` along a tangent `dz` of the logits (targets
/// fixed), `out = grad_scale·Σy·(p⊙dz − p·(p·dz))/rows` row by row, `p = softmax(z)`. One
/// Hessian-vector product of the soft-label loss w.r.t. its logits (second-order meta-gradients).
pub fn kl_tangent_cpu<T: Real>(
    logits: &[T],
    targets: &[T],
    dz: &[T],
    shape: LossShape,
    out: &mut [T],
    grad_scale: T,
) {
    let LossShape { batch, rows, cols } = shape;
    let n = batch * rows * cols;
    assert!(logits.len() == n && targets.len() == n && dz.len() == n && out.len() == n);
    let gscale = grad_factor(Kind::Kl, shape, grad_scale);
    for at in (0..n).step_by(cols.max(1)) {
        let z = &logits[at..at + cols];
        let m = z.iter().fold(z[0], |m, &v| m.max(v));
        let log_s = z.iter().map(|&v| (v - m).exp()).sum::<T>().ln();
        let p: Vec<T> = z.iter().map(|&v| ((v - m) - log_s).exp()).collect();
        let tsum: T = targets[at..at + cols].iter().copied().sum();
        let pdz: T = (0..cols).map(|c| p[c] * dz[at + c]).sum();
        for c in 0..cols {
            out[at + c] = gscale * tsum * (p[c] * dz[at + c] - p[c] * pdz);
        }
    }
}
