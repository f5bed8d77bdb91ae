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
        /// Offset and stride of the row weights (the `*_masked` entries only).
        pub(crate) m_off: u32,
        pub(crate) m_stride: u32,
        pub(crate) _pad2: u32,
        pub(crate) _pad3: u32,
    }
}

/// The per-row value a launch reduces (the shader's `LOSS` override).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    CrossEntropy,
    Kl,
    Mse,
    Accuracy,
    HalfSquared,
}

impl Kind {
    fn code(self) -> u32 {
        match self {
            Kind::CrossEntropy => 0,
            Kind::Kl => 1,
            Kind::Mse => 2,
            Kind::Accuracy => 3,
            Kind::HalfSquared => 4,
        }
    }
    fn op(self) -> &'static str {
        match self {
            Kind::CrossEntropy => "softmax_cross_entropy",
            Kind::Kl => "kl_divergence",
            Kind::Mse => "mse",
            Kind::Accuracy => "accuracy",
            Kind::HalfSquared => "half_squared_error",
        }
    }
}

/// The per-row loss of a weighted (masked) launch: [`masked_loss`], [`masked_tangent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowLoss {
    /// `−Σ_c y_c log softmax(z)_c`: integer labels as one-hot rows.
    CrossEntropy,
    /// `Σ_c y_c (log y_c − log softmax(z)_c)`: soft labels.
    Kl,
    /// `½ Σ_c (z_c − y_c)²`: regression targets (Q values).
    HalfSquared,
}

impl RowLoss {
    fn kind(self) -> Kind {
        match self {
            RowLoss::CrossEntropy => Kind::CrossEntropy,
            RowLoss::Kl => Kind::Kl,
            RowLoss::HalfSquared => Kind::HalfSquared,
        }
    }

    /// Whether accuracy (argmax agreement) means something for this loss.
    pub fn classifies(self) -> bool {
        self != RowLoss::HalfSquared
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

/// One value (and gradient) launch: the plain mean over rows, or with `weights` the weighted
/// mean (`*_masked` entries).
#[allow(clippy::too_many_arguments)]
fn launch(
    gpu: &Device,
    kind: Kind,
    logits: &Tensor,
    targets: &Tensor,
    weights: Option<&Tensor>,
    loss: &Tensor,
    grad: Option<&Tensor>,
    grad_scale: f32,
) -> Result<Dispatch> {
    let op = kind.op();
    let mut like_logits = vec![("targets", targets, false)];
    like_logits.extend(grad.map(|g| ("grad", g, true)));
    let s = loss_shape(op, logits, &like_logits, Some(loss))?;
    if let Some(w) = weights {
        check_weights(op, s, w)?;
    }
    check_scale(op, grad_scale)?;
    let (z_off, z_stride) = place(op, "logits", logits)?;
    let (t_off, t_stride) = place(op, "targets", targets)?;
    let (l_off, l_stride) = place(op, "loss", loss)?;
    let (g_off, g_stride) = match grad {
        Some(g) => place(op, "grad", g)?,
        None => (0, 0),
    };
    let (m_off, m_stride) = match weights {
        Some(w) => place(op, "weights", w)?,
        None => (0, 0),
    };
    // The weighted mean's normaliser is the item's weight sum, found by the kernel.
    let (norm, gscale) = match weights {
        Some(_) => (0.0, grad_scale),
        None => (
            1.0 / terms(kind, s) as f32,
            grad_factor(kind, s, grad_scale),
        ),
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
        norm,
        gscale,
        d_off: 0,
        d_stride: 0,
        m_off,
        m_stride,
        _pad2: 0,
        _pad3: 0,
    };
    let constants = [("LOSS", kind.code() as f64)];
    use Access::{Read, ReadWrite};
    let mut tensors = vec![logits, targets, loss];
    let mut access = vec![Read, Read, ReadWrite];
    let entry = match (weights, grad) {
        (None, g) => {
            tensors.extend(g);
            access.extend(g.map(|_| ReadWrite));
            if g.is_some() {
                "value_grad"
            } else {
                "value"
            }
        }
        (Some(w), g) => {
            // Bindings the entry does not use (the gradient of `value_masked`, the tangent):
            // the logits stand in, read-only.
            tensors.extend([g.unwrap_or(logits), logits, w]);
            access.extend([if g.is_some() { ReadWrite } else { Read }, Read, Read]);
            if g.is_some() {
                "value_grad_masked"
            } else {
                "value_masked"
            }
        }
    };
    let spec = KernelSpec {
        shader: &SHADER,
        entry,
        constants: &constants,
        access: &access,
    };
    let n = (s.batch * s.rows * s.cols) as f64;
    // Softmax losses: max, exp, and the weighted sum per element (≈ 6 flops, exps counted as
    // one), the gradient another ≈ 4; squared errors 2 (+ 2); accuracy 2 comparisons; the
    // weights one add per row.
    let per_elem = match (kind, grad.is_some()) {
        (Kind::Mse | Kind::HalfSquared, g) => 2.0 + if g { 2.0 } else { 0.0 },
        (Kind::Accuracy, _) => 2.0,
        (_, g) => 6.0 + if g { 4.0 } else { 0.0 },
    };
    let per_row = weights.map_or(0.0, |_| (s.batch * s.rows) as f64);
    let cost = Cost {
        flops: per_elem * n + per_row,
        bytes: 4.0
            * (unique(logits)
                + unique(targets)
                + weights.map_or(0.0, unique)
                + s.batch as f64
                + grad.map_or(0.0, |_| n)),
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
        None,
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
    launch(gpu, Kind::Kl, logits, targets, None, loss, grad, grad_scale)
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
    tangent_launch(
        gpu,
        "kl_tangent",
        RowLoss::Kl,
        (logits, targets, None),
        dz,
        out,
        grad_scale,
    )
}

/// One gradient-tangent launch: the plain mean's (`grad_tangent`), or with weights the weighted
/// mean's (`grad_tangent_masked`).
fn tangent_launch(
    gpu: &Device,
    op: &'static str,
    row_loss: RowLoss,
    (logits, targets, weights): (&Tensor, &Tensor, Option<&Tensor>),
    dz: &Tensor,
    out: &Tensor,
    grad_scale: f32,
) -> Result<Dispatch> {
    let like_logits = [
        ("targets", targets, false),
        ("dz", dz, false),
        ("out", out, true),
    ];
    let s = loss_shape(op, logits, &like_logits, None)?;
    if let Some(w) = weights {
        check_weights(op, s, w)?;
    }
    check_scale(op, grad_scale)?;
    let (z_off, z_stride) = place(op, "logits", logits)?;
    let (t_off, t_stride) = place(op, "targets", targets)?;
    let (g_off, g_stride) = place(op, "out", out)?;
    let (d_off, d_stride) = place(op, "dz", dz)?;
    let (m_off, m_stride) = match weights {
        Some(w) => place(op, "weights", w)?,
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
        l_off: 0,
        l_stride: 0,
        g_off,
        g_stride,
        norm: 0.0,
        // The weighted mean's 1/Σw is the kernel's; the plain mean's 1/rows the host's.
        gscale: match weights {
            Some(_) => grad_scale,
            None => grad_factor(row_loss.kind(), s, grad_scale),
        },
        d_off,
        d_stride,
        m_off,
        m_stride,
        _pad2: 0,
        _pad3: 0,
    };
    // KL's row statistics are cross-entropy's (they differ only in the value, unused here).
    let code = match row_loss {
        RowLoss::HalfSquared => Kind::HalfSquared.code(),
        RowLoss::CrossEntropy | RowLoss::Kl => Kind::CrossEntropy.code(),
    };
    let constants = [("LOSS", code as f64)];
    use Access::{Read, ReadWrite};
    // Binding 3 (the loss) is unused: the logits stand in, read-only.
    let mut tensors = vec![logits, targets, logits, out, dz];
    let mut access = vec![Read, Read, Read, ReadWrite, Read];
    tensors.extend(weights);
    access.extend(weights.map(|_| Read));
    let spec = KernelSpec {
        shader: &SHADER,
        entry: if weights.is_some() {
            "grad_tangent_masked"
        } else {
            "grad_tangent"
        },
        constants: &constants,
        access: &access,
    };
    let n = (s.batch * s.rows * s.cols) as f64;
    let cost = Cost {
        // Max, two exps and the statistics (≈ 6), p·dz and the output (≈ 6) per element.
        flops: 12.0 * n + weights.map_or(0.0, |_| (s.batch * s.rows) as f64),
        bytes: 4.0
            * (unique(logits) + unique(targets) + unique(dz) + weights.map_or(0.0, unique) + n),
    };
    let workgroups = [to_u32(op, "batch", s.batch)?, 1, 1];
    gpu.dispatch(&spec, &params, &tensors, workgroups, cost)
}

/// Prepares `acc[b]` = fraction of the item's rows whose logits' argmax equals the targets'
/// argmax (ties resolve to the lowest index in both).
pub fn accuracy(gpu: &Device, logits: &Tensor, targets: &Tensor, acc: &Tensor) -> Result<Dispatch> {
    launch(gpu, Kind::Accuracy, logits, targets, None, acc, None, 1.0)
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
    launch(gpu, Kind::Mse, pred, targets, None, loss, grad, grad_scale)
}

/// Checks a row-weight operand: `[batch × rows × 1]`, one weight per row of the logits.
fn check_weights(op: &'static str, s: LossShape, weights: &Tensor) -> Result<()> {
    if weights.batch() != s.batch || weights.rows() != s.rows || weights.cols() != 1 {
        return Err(shape_err(
            op,
            format!(
                "row weights must be [{}×{}×1] (one per row of the logits), got {}",
                s.batch,
                s.rows,
                weights.shape_str()
            ),
        ));
    }
    Ok(())
}

/// Prepares the weighted mean over each item's rows of a row loss, `loss[b] = Σ_r w_r·ℓ_r /
/// Σ_r w_r` (0 when the weights sum to 0), and, if `grad` is given, `grad_r = grad_scale ·
/// (w_r / Σ w)·∂ℓ_r/∂z_r`. `weights` is `[batch × rows × 1]`: 0/1 for a row mask, so masked
/// rows add nothing to the loss (not even a NaN) and get a zero gradient. The weighted mean is
/// the official code's `Σ(mask·ℓ)/Σ mask` (metax `energy/base.py`, `_reduce`). CPU twin:
/// [`masked_loss_cpu`].
#[allow(clippy::too_many_arguments)]
pub fn masked_loss(
    gpu: &Device,
    row_loss: RowLoss,
    logits: &Tensor,
    targets: &Tensor,
    weights: &Tensor,
    loss: &Tensor,
    grad: Option<&Tensor>,
    grad_scale: f32,
) -> Result<Dispatch> {
    launch(
        gpu,
        row_loss.kind(),
        logits,
        targets,
        Some(weights),
        loss,
        grad,
        grad_scale,
    )
}

/// Prepares the weighted accuracy `acc[b] = Σ_r w_r·[argmax z_r = argmax y_r] / Σ_r w_r`.
pub fn masked_accuracy(
    gpu: &Device,
    logits: &Tensor,
    targets: &Tensor,
    weights: &Tensor,
    acc: &Tensor,
) -> Result<Dispatch> {
    launch(
        gpu,
        Kind::Accuracy,
        logits,
        targets,
        Some(weights),
        acc,
        None,
        1.0,
    )
}

/// Prepares the tangent of [`masked_loss`]'s gradient along a tangent `dz` of the logits
/// (targets and weights fixed): per row `grad_scale·(w_r/Σw)·H_r·dz_r`, with `H_r·dz =
/// Σy·(p⊙dz − p·(p·dz))` for the softmax losses (`p = softmax(z)`) and `dz` for the half squared
/// error — the Hessian-vector product second-order meta-gradients need. CPU twin:
/// [`masked_tangent_cpu`].
#[allow(clippy::too_many_arguments)]
pub fn masked_tangent(
    gpu: &Device,
    row_loss: RowLoss,
    logits: &Tensor,
    targets: &Tensor,
    weights: &Tensor,
    dz: &Tensor,
    out: &Tensor,
    grad_scale: f32,
) -> Result<Dispatch> {
    tangent_launch(
        gpu,
        "masked_tangent",
        row_loss,
        (logits, targets, Some(weights)),
        dz,
        out,
        grad_scale,
    )
}

/// CPU twin of [`masked_loss`] (and, with [`RowLoss`] `None`, of [`masked_accuracy`]) on
/// logical contiguous data: `weights` one per row.
#[allow(clippy::too_many_arguments)]
pub fn masked_loss_cpu<T: Real>(
    row_loss: Option<RowLoss>,
    logits: &[T],
    targets: &[T],
    weights: &[T],
    shape: LossShape,
    loss: &mut [T],
    mut grad: Option<&mut [T]>,
    grad_scale: T,
) {
    let LossShape { batch, rows, cols } = shape;
    let kind = row_loss.map_or(Kind::Accuracy, RowLoss::kind);
    for (b, l) in loss.iter_mut().enumerate().take(batch) {
        let w = &weights[b * rows..(b + 1) * rows];
        let inv = inv_weight_sum(w);
        let mut sum = T::zero();
        for (r, &wr) in w.iter().enumerate() {
            let at = (b * rows + r) * cols;
            let g = grad.as_deref_mut().map(|g| &mut g[at..at + cols]);
            if wr == T::zero() {
                if let Some(g) = g {
                    g.iter_mut().for_each(|v| *v = T::zero());
                }
                continue;
            }
            let k = grad_scale * (wr * inv);
            sum += wr * row_cpu(kind, &logits[at..at + cols], &targets[at..at + cols], g, k);
        }
        *l = sum * inv;
    }
}

/// `1 / Σ w` of an item's row weights, 0 when they sum to 0.
fn inv_weight_sum<T: Real>(w: &[T]) -> T {
    let total: T = w.iter().copied().sum();
    if total != T::zero() {
        T::one() / total
    } else {
        T::zero()
    }
}

/// CPU twin of [`masked_tangent`].
#[allow(clippy::too_many_arguments)]
pub fn masked_tangent_cpu<T: Real>(
    row_loss: RowLoss,
    logits: &[T],
    targets: &[T],
    weights: &[T],
    dz: &[T],
    shape: LossShape,
    out: &mut [T],
    grad_scale: T,
) {
    let LossShape { batch, rows, cols } = shape;
    for b in 0..batch {
        let w = &weights[b * rows..(b + 1) * rows];
        let inv = inv_weight_sum(w);
        for (r, &wr) in w.iter().enumerate() {
            let at = (b * rows + r) * cols;
            let k = grad_scale * (wr * inv);
            let o = &mut out[at..at + cols];
            if wr == T::zero() {
                o.iter_mut().for_each(|v| *v = T::zero());
                continue;
            }
            match row_loss {
                RowLoss::HalfSquared => {
                    for c in 0..cols {
                        o[c] = k * dz[at + c];
                    }
                }
                RowLoss::CrossEntropy | RowLoss::Kl => {
                    // The unweighted tangent of this one row, scaled by its weight factor.
                    let one = LossShape {
                        batch: 1,
                        rows: 1,
                        cols,
                    };
                    kl_tangent_cpu(
                        &logits[at..at + cols],
                        &targets[at..at + cols],
                        &dz[at..at + cols],
                        one,
                        o,
                        k,
                    );
                }
            }
        }
    }
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

/// One row's value, writing its gradient (times `gscale`) when asked: the shader's `row` and
/// `elem_grad`.
fn row_cpu<T: Real>(kind: Kind, z: &[T], y: &[T], g: Option<&mut [T]>, gscale: T) -> T {
    let cols = z.len();
    let mut sum = T::zero();
    match kind {
        Kind::Mse | Kind::HalfSquared => {
            for c in 0..cols {
                let d = z[c] - y[c];
                sum += d * d;
            }
            if kind == Kind::HalfSquared {
                sum = sum * T::from_f64(0.5);
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
    sum
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
            let g = grad.as_deref_mut().map(|g| &mut g[at..at + cols]);
            sum += row_cpu(
                kind,
                &logits[at..at + cols],
                &targets[at..at + cols],
                g,
                gscale,
            );
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
