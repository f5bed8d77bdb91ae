//! AdamW with global-norm gradient clipping, skipped on non-finite gradients
//! (`shaders/adamw.wgsl`). Semantics of optax:
//! `apply_if_finite(chain(clip_by_global_norm(max_norm), adamw(lr, b1, b2, eps, eps_root, wd)))`,
//! per batch item:
//!
//! - `‖g‖ = sqrt(Σ g²)` over the whole item (the parameter group); if `max_norm > 0` and
//!   `‖g‖ > max_norm`, `g ← g · (max_norm / ‖g‖)`;
//! - `m ← (1−b1)·g + b1·m`, `v ← (1−b2)·g² + b2·v`, `t ← t + 1`,
//!   `u = (m / (1−b1ᵗ)) / (sqrt(v / (1−b2ᵗ) + eps_root) + eps)`, `p ← p − lr_b·(u + wd_b·p)`;
//! - if `Σ g²` is NaN or ±∞ (including a finite gradient whose sum of squares overflows) the item's
//!   step is skipped entirely (p, m, v, t untouched), its total and consecutive skip counters are
//!   incremented; a step that is applied resets the consecutive counter to 0.
//!
//! Everything is decided on the GPU from the sum-of-squares tensor: a step never reads back.
//! A model packs all parameters of one optimiser into one tensor `params [B×R×C]` (any view) with
//! gradient `grads` of the same shape. `B > 1` gives every item (task) its own state; `B = 1` is one
//! shared optimiser. The step counter and the skip counters are f32 tensors `[B×1×1]` holding
//! integers, exact up to 2²⁴ ≈ 16.7 M steps.
//!
//! # Per-item learning rate and weight decay
//! `lr_b` and `wd_b` are read by the update from two GPU tensors `[B×1×1]` ([`AdamW::lr`],
//! [`AdamW::weight_decay`]), so one batch can hold independent runs with different learning
//! rates, weight decays and schedules. [`AdamW::new`] and [`AdamW::set_lr`] fill every item with
//! one value (the meta-learning use: one optimiser per task, one schedule);
//! [`AdamW::new_per_item`], [`AdamW::set_lr_per_item`] and [`AdamW::set_weight_decay_per_item`]
//! set one value per item. Values written between submits apply to the next submitted step.
//!
//! One step is four dispatches: the two sum-of-squares passes of [`crate::ops::reduce`], a tiny
//! per-item `prepare` (skip decision, counters, clip scale, bias corrections) and the element-wise
//! `update`. `prepare` increments `t` before `update` runs and hands it the bias corrections, so no
//! update invocation reads `t` while it changes.

use crate::gpu::error::{arg_err, shape_err, Result};
use crate::gpu::{grid_1d, Access, Cost, Dispatch, Gpu, GpuTensor, KernelSpec, Shader, Step};
use crate::ops::reduce::{sum_squares, SumSquares};
use crate::ops::{check_output, place, to_u32, Real};

mod native;

/// `shaders/adamw.wgsl`.
pub static SHADER: Shader = Shader {
    name: "adamw",
    source: include_str!("../../shaders/adamw.wgsl"),
    native: native::run,
    params: <Params as crate::gpu::Uniform>::LAYOUT,
};

/// Hyper-parameters of [`AdamW`] (names and defaults of `optax.adamw`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate (≥ 0; change it per step with [`AdamW::set_lr`], per item with
    /// [`AdamW::set_lr_per_item`]).
    pub lr: f32,
    /// Decay of the first moment, in [0, 1).
    pub b1: f32,
    /// Decay of the second moment, in [0, 1).
    pub b2: f32,
    /// Added to `sqrt(v̂)` (≥ 0).
    pub eps: f32,
    /// Added to `v̂` inside the square root (≥ 0).
    pub eps_root: f32,
    /// Decoupled weight decay (≥ 0; per item with [`AdamW::set_weight_decay_per_item`]).
    pub weight_decay: f32,
    /// Global-norm clipping threshold per item; 0 disables clipping.
    pub max_grad_norm: f32,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
            eps_root: 0.0,
            weight_decay: 1e-4,
            max_grad_norm: 0.0,
        }
    }
}

impl AdamWConfig {
    /// Checks every field is finite and in range; names the first offending one.
    pub fn validate(&self) -> Result<()> {
        let nonneg = [
            ("lr", self.lr),
            ("eps", self.eps),
            ("eps_root", self.eps_root),
            ("weight_decay", self.weight_decay),
            ("max_grad_norm", self.max_grad_norm),
        ];
        for (name, v) in nonneg {
            if !v.is_finite() || v < 0.0 {
                return Err(arg_err(OP, format!("{name} = {v} must be finite and ≥ 0")));
            }
        }
        for (name, v) in [("b1", self.b1), ("b2", self.b2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(arg_err(OP, format!("{name} = {v} must be in [0, 1)")));
            }
        }
        Ok(())
    }
}

crate::uniform! {
    pub(crate) struct Params {
        pub(crate) batch: u32,
        pub(crate) n: u32,
        pub(crate) w_off: u32,
        pub(crate) w_stride: u32,
        pub(crate) g_off: u32,
        pub(crate) g_stride: u32,
        pub(crate) b1: f32,
        pub(crate) b2: f32,
        pub(crate) eps: f32,
        pub(crate) eps_root: f32,
        pub(crate) max_norm: f32,
        /// The step count `vjp` runs backwards (the other entries read theirs from the state).
        pub(crate) t: u32,
        /// Offsets and strides of `vjp`'s m′, v′, m̄, v̄, ḡ (its θ̄ is at `w_*`, its g at `g_*`).
        pub(crate) mn_off: u32,
        pub(crate) mn_stride: u32,
        pub(crate) vn_off: u32,
        pub(crate) vn_stride: u32,
        pub(crate) mb_off: u32,
        pub(crate) mb_stride: u32,
        pub(crate) vb_off: u32,
        pub(crate) vb_stride: u32,
        pub(crate) gb_off: u32,
        pub(crate) gb_stride: u32,
        pub(crate) _pad: [u32; 2],
    }
}

impl Params {
    /// The fields every entry reads: the item count and length and the hyper-parameters;
    /// offsets, strides and `t` zero.
    fn base(b: usize, n: usize, cfg: &AdamWConfig) -> Result<Params> {
        Ok(Params {
            batch: to_u32(OP, "batch", b)?,
            n: to_u32(OP, "item length", n)?,
            b1: cfg.b1,
            b2: cfg.b2,
            eps: cfg.eps,
            eps_root: cfg.eps_root,
            max_norm: cfg.max_grad_norm,
            ..bytemuck::Zeroable::zeroed()
        })
    }
}

/// Invocations per workgroup of `update` / `reset` and of `prepare` (the WGSL `WG`, `WG_ITEMS`).
const WG: usize = 256;
const WG_ITEMS: usize = 64;

/// Blocks of `B` values in the state tensor (see `shaders/adamw.wgsl`): t, skipped, consecutive,
/// apply, clip scale, 1 − b1ᵗ, 1 − b2ᵗ, learning rate, weight decay.
const STATE_BLOCKS: usize = 9;
/// Block of the per-item learning rates, then of the weight decays.
const LR_BLOCK: usize = 7;
const WD_BLOCK: usize = 8;

const OP: &str = "AdamW";

/// Checks one value per item, each finite and ≥ 0; names the hyper-parameter, the item and the
/// lengths.
fn check_per_item(name: &str, values: &[f32], batch: usize) -> Result<()> {
    if values.len() != batch {
        return Err(shape_err(
            OP,
            format!(
                "{} values of {name} given for a batch of {batch} items (one per item)",
                values.len()
            ),
        ));
    }
    match values.iter().position(|v| !v.is_finite() || *v < 0.0) {
        Some(b) => Err(arg_err(
            OP,
            format!("{name}[{b}] = {} must be finite and ≥ 0", values[b]),
        )),
        None => Ok(()),
    }
}

/// An AdamW optimiser bound to one parameter tensor and its gradient, with its state on the GPU
/// and its dispatches prepared (a step allocates nothing).
pub struct AdamW {
    cfg: AdamWConfig,
    /// The 9 blocks of per-item values (see `shaders/adamw.wgsl`); `t`, `lr`, `wd`, … view it.
    state: GpuTensor,
    m: GpuTensor,
    v: GpuTensor,
    t: GpuTensor,
    skipped: GpuTensor,
    consecutive: GpuTensor,
    lr: GpuTensor,
    wd: GpuTensor,
    sumsq: GpuTensor,
    norm: SumSquares,
    prepare: Dispatch,
    update: Dispatch,
    reset: Dispatch,
}

impl AdamW {
    /// Allocates zeroed state for `params` (not a broadcast view) and prepares the dispatches.
    /// `grads` must have the same batch, rows and columns (any offset and stride). Every item
    /// uses `cfg.lr` and `cfg.weight_decay`.
    pub fn new(
        gpu: &Gpu,
        params: &GpuTensor,
        grads: &GpuTensor,
        cfg: AdamWConfig,
    ) -> Result<AdamW> {
        let b = params.batch();
        let (lr, wd) = (vec![cfg.lr; b], vec![cfg.weight_decay; b]);
        Self::new_per_item(gpu, params, grads, cfg, &lr, &wd)
    }

    /// [`AdamW::new`] with one learning rate and one weight decay per batch item (B values
    /// each), e.g. a sweep of independent runs on the batch axis. `cfg.lr` and
    /// `cfg.weight_decay` are validated but replaced by these.
    pub fn new_per_item(
        gpu: &Gpu,
        params: &GpuTensor,
        grads: &GpuTensor,
        cfg: AdamWConfig,
        lr: &[f32],
        weight_decay: &[f32],
    ) -> Result<AdamW> {
        cfg.validate()?;
        let (b, r, c) = (params.batch(), params.rows(), params.cols());
        check_per_item("lr", lr, b)?;
        check_per_item("weight_decay", weight_decay, b)?;
        if (grads.batch(), grads.rows(), grads.cols()) != (b, r, c) {
            return Err(shape_err(
                OP,
                format!(
                    "grads {} must have the shape of params {}",
                    grads.shape_str(),
                    params.shape_str()
                ),
            ));
        }
        check_output(OP, "params", params)?;
        let n = r * c;
        let moments = gpu.zeros(2 * b, r, c)?;
        let m = moments.view(0, b, r, c, n)?;
        let v = moments.view(b * n, b, r, c, n)?;
        let state = gpu.zeros(1, STATE_BLOCKS, b)?;
        let block = |k: usize| state.view(k * b, b, 1, 1, 1);
        let (t, skipped, consecutive) = (block(0)?, block(1)?, block(2)?);
        let (lr_t, wd_t) = (block(LR_BLOCK)?, block(WD_BLOCK)?);
        gpu.write(&lr_t, lr)?;
        gpu.write(&wd_t, weight_decay)?;
        let sumsq = gpu.zeros(b, 1, 1)?;
        let norm = sum_squares(gpu, grads, &sumsq, false)?;
        let (w_off, w_stride) = place(OP, "params", params)?;
        let (g_off, g_stride) = place(OP, "grads", grads)?;
        let total = b * n;
        let params_u = Params {
            w_off,
            w_stride,
            g_off,
            g_stride,
            ..Params::base(b, n, &cfg)?
        };
        // The kernels index m and v (2·B·n values) with u32.
        to_u32(OP, "moments length", 2 * total)?;
        let tensors = [params, grads, &moments, &sumsq, &state];
        let launch = |entry: &'static str, groups: usize, cost: Cost| {
            let spec = KernelSpec {
                shader: &SHADER,
                entry,
                constants: &[],
                access: &[
                    Access::ReadWrite,
                    Access::Read,
                    Access::ReadWrite,
                    Access::Read,
                    Access::ReadWrite,
                ],
            };
            gpu.dispatch(&spec, &params_u, &tensors, grid_1d(groups), cost)
        };
        let prepare = launch(
            "prepare",
            b.div_ceil(WG_ITEMS),
            Cost {
                flops: 60.0 * b as f64,
                bytes: 4.0 * 10.0 * b as f64,
            },
        )?;
        let update = launch(
            "update",
            total.div_ceil(WG),
            Cost {
                flops: 18.0 * total as f64,
                // Read g, p, m, v; write p, m, v.
                bytes: 4.0 * 7.0 * total as f64,
            },
        )?;
        let reset = launch(
            "reset",
            total.max(b).div_ceil(WG),
            Cost {
                flops: 0.0,
                bytes: 4.0 * (2 * total + 2 * b) as f64,
            },
        )?;
        Ok(AdamW {
            cfg,
            state,
            m,
            v,
            t,
            skipped,
            consecutive,
            lr: lr_t,
            wd: wd_t,
            sumsq,
            norm,
            prepare,
            update,
            reset,
        })
    }

    /// Records one optimiser step (gradient norm, skip decision and counters, update) into `step`,
    /// after the dispatches that produce the gradient.
    pub fn record_step(&self, step: &mut Step<'_>) {
        step.run_all(self.step_dispatches());
    }

    /// The launches of one step, in order: gradient sum of squares (two passes), skip decision
    /// and counters, update.
    pub fn step_dispatches(&self) -> [&Dispatch; 4] {
        let [norm_partials, norm_total] = self.norm.dispatches();
        [norm_partials, norm_total, &self.prepare, &self.update]
    }

    /// Records a reset to a fresh state: m, v, t and the consecutive-skip counter become 0. The
    /// total [`AdamW::skipped`] count is kept, as a run-long diagnostic.
    pub fn record_reset(&self, step: &mut Step<'_>) {
        step.run(&self.reset);
    }

    /// Sets the learning rate of every item for the next submitted step (for schedules). The
    /// values are written to [`AdamW::lr`] at the next submit, so all steps recorded into one
    /// submit use the last value set.
    pub fn set_lr(&self, gpu: &Gpu, lr: f32) -> Result<()> {
        self.set_lr_per_item(gpu, &vec![lr; self.lr.batch()])
    }

    /// Sets one learning rate per item (B values, each finite and ≥ 0), with the timing of
    /// [`AdamW::set_lr`]. A wrong count is an [`crate::gpu::DeviceError::Shape`] naming both lengths.
    pub fn set_lr_per_item(&self, gpu: &Gpu, lr: &[f32]) -> Result<()> {
        check_per_item("lr", lr, self.lr.batch())?;
        gpu.write(&self.lr, lr)
    }

    /// Sets the weight decay of every item, with the timing of [`AdamW::set_lr`].
    pub fn set_weight_decay(&self, gpu: &Gpu, weight_decay: f32) -> Result<()> {
        self.set_weight_decay_per_item(gpu, &vec![weight_decay; self.wd.batch()])
    }

    /// Sets one weight decay per item, like [`AdamW::set_lr_per_item`].
    pub fn set_weight_decay_per_item(&self, gpu: &Gpu, weight_decay: &[f32]) -> Result<()> {
        check_per_item("weight_decay", weight_decay, self.wd.batch())?;
        gpu.write(&self.wd, weight_decay)
    }

    /// Learning rate per item, `[B×1×1]` (read by every update; kernels may write it too, e.g. a
    /// schedule computed on the GPU).
    pub fn lr(&self) -> &GpuTensor {
        &self.lr
    }
    /// Weight decay per item, `[B×1×1]`.
    pub fn weight_decay(&self) -> &GpuTensor {
        &self.wd
    }

    /// First moments, `[B×R×C]` contiguous.
    pub fn m(&self) -> &GpuTensor {
        &self.m
    }
    /// Second moments, `[B×R×C]` contiguous.
    pub fn v(&self) -> &GpuTensor {
        &self.v
    }
    /// Applied steps per item, `[B×1×1]` (f32 integers).
    pub fn step_count(&self) -> &GpuTensor {
        &self.t
    }
    /// Total skipped steps per item, `[B×1×1]` (f32 integers; never reset).
    pub fn skipped(&self) -> &GpuTensor {
        &self.skipped
    }
    /// Consecutive skipped steps per item, `[B×1×1]` (0 after an applied step or a reset).
    pub fn consecutive_skips(&self) -> &GpuTensor {
        &self.consecutive
    }
    /// `Σ g²` per item from the last recorded step, `[B×1×1]` (before clipping): its square root
    /// is the gradient's global norm, for logging.
    pub fn grad_sum_squares(&self) -> &GpuTensor {
        &self.sumsq
    }
}

/// The tensors of one AdamW step's adjoint ([`AdamW::vjp`]), all `[B × R × C]` like the
/// optimiser's params, each with any offset and stride (the outputs not broadcast). Every output
/// needs a buffer of its own, shared with no other operand: the device layer rejects a buffer
/// bound twice when one binding writes it, views at different offsets included.
pub struct AdamWVjpIo<'a> {
    /// The gradient the step used (read).
    pub g: &'a GpuTensor,
    /// The first moment the step wrote (read).
    pub m_new: &'a GpuTensor,
    /// The second moment the step wrote (read).
    pub v_new: &'a GpuTensor,
    /// In: θ̄′, the adjoint of the step's new params; out: `(1 − lr·wd)·θ̄′`, the explicit part
    /// of θ̄ (the caller adds `H·ḡ`).
    pub theta_bar: &'a GpuTensor,
    /// In: m̄′; out: m̄, the adjoint of the moment the step read.
    pub m_bar: &'a GpuTensor,
    /// In: v̄′; out: v̄.
    pub v_bar: &'a GpuTensor,
    /// Out: ḡ, the adjoint of the step's gradient.
    pub g_bar: &'a GpuTensor,
}

impl AdamWVjpIo<'_> {
    /// Every operand with its name and whether the kernel writes it.
    fn operands(&self) -> [(&'static str, &GpuTensor, bool); 7] {
        [
            ("g", self.g, false),
            ("m_new", self.m_new, false),
            ("v_new", self.v_new, false),
            ("theta_bar", self.theta_bar, true),
            ("m_bar", self.m_bar, true),
            ("v_bar", self.v_bar, true),
            ("g_bar", self.g_bar, true),
        ]
    }
}

const VJP_OP: &str = "AdamW::vjp";

/// Second-order meta-gradients: the optimiser step run backwards.
impl AdamW {
    /// Prepares the adjoint of inner step `t` (1-based: the count of the step whose adjoint this
    /// is), element by element as [`adamw_vjp_cpu`]: reads `io.g`, `io.m_new`, `io.v_new`,
    /// updates `io.theta_bar`, `io.m_bar`, `io.v_bar` in place and writes `io.g_bar`. A reverse
    /// pass over T inner steps prepares T dispatches (t is a launch parameter, so each replays
    /// with no write). Each item's learning rate and weight decay are read from this optimiser's
    /// state when the dispatch runs, so they must still be the ones the step used.
    ///
    /// Errors: [`crate::gpu::DeviceError::InvalidArgument`] for an optimiser that clips (`max_grad_norm >
    /// 0`: clipping has no adjoint here) or `t = 0`; [`crate::gpu::DeviceError::Shape`] naming the shapes
    /// when an operand's shape differs from the params', an output is broadcast or an output
    /// shares a buffer with another operand.
    pub fn vjp(&self, gpu: &Gpu, t: u32, io: &AdamWVjpIo<'_>) -> Result<Dispatch> {
        if self.cfg.max_grad_norm > 0.0 {
            return Err(arg_err(
                VJP_OP,
                format!(
                    "max_grad_norm = {} > 0: gradient clipping has no adjoint here (use an \
                     optimiser without clipping in the inner loop)",
                    self.cfg.max_grad_norm
                ),
            ));
        }
        if t == 0 {
            return Err(arg_err(
                VJP_OP,
                "t = 0: t is the 1-based count of the step whose adjoint this is",
            ));
        }
        let ops = io.operands();
        self.check_vjp_shapes(&ops)?;
        check_distinct(VJP_OP, &ops)?;
        let (b, n) = (self.m.batch(), self.m.item_len());
        let at = |name: &str, x: &GpuTensor| place(VJP_OP, name, x);
        let ((w_off, w_stride), (g_off, g_stride)) =
            (at("theta_bar", io.theta_bar)?, at("g", io.g)?);
        let ((mn_off, mn_stride), (vn_off, vn_stride)) =
            (at("m_new", io.m_new)?, at("v_new", io.v_new)?);
        let ((mb_off, mb_stride), (vb_off, vb_stride)) =
            (at("m_bar", io.m_bar)?, at("v_bar", io.v_bar)?);
        let (gb_off, gb_stride) = at("g_bar", io.g_bar)?;
        let params = Params {
            w_off,
            w_stride,
            g_off,
            g_stride,
            t,
            mn_off,
            mn_stride,
            vn_off,
            vn_stride,
            mb_off,
            mb_stride,
            vb_off,
            vb_stride,
            gb_off,
            gb_stride,
            ..Params::base(b, n, &self.cfg)?
        };
        use Access::{Read, ReadWrite};
        let spec = KernelSpec {
            shader: &SHADER,
            entry: "vjp",
            constants: &[],
            // Bindings 3 and 4 (moments, sum of squares) are unused by `vjp`: g stands in,
            // read-only, so it may alias anything read. The state is read_write in the shader.
            access: &[
                ReadWrite, Read, Read, Read, ReadWrite, Read, Read, ReadWrite, ReadWrite, ReadWrite,
            ],
        };
        let tensors = [
            io.theta_bar,
            io.g,
            io.g,
            io.g,
            &self.state,
            io.m_new,
            io.v_new,
            io.m_bar,
            io.v_bar,
            io.g_bar,
        ];
        let total = (b * n) as f64;
        let cost = Cost {
            flops: 30.0 * total,
            // Read g, m′, v′, θ̄′, m̄′, v̄′; write θ̄, m̄, v̄, ḡ.
            bytes: 4.0 * 10.0 * total,
        };
        gpu.dispatch(
            &spec,
            &params,
            &tensors,
            grid_1d((b * n).div_ceil(WG)),
            cost,
        )
    }

    /// Checks that every operand of [`AdamW::vjp`] has the params' shape and no output is
    /// broadcast.
    fn check_vjp_shapes(&self, ops: &[(&'static str, &GpuTensor, bool)]) -> Result<()> {
        let want = (self.m.batch(), self.m.rows(), self.m.cols());
        for &(name, x, written) in ops {
            if (x.batch(), x.rows(), x.cols()) != want {
                let shapes: Vec<String> = ops
                    .iter()
                    .map(|(n, x, _)| format!("{n} {}", x.shape_str()))
                    .collect();
                return Err(shape_err(
                    VJP_OP,
                    format!(
                        "{name} must have the params' shape [{}×{}×{}]: {}",
                        want.0,
                        want.1,
                        want.2,
                        shapes.join(", ")
                    ),
                ));
            }
            if written {
                check_output(VJP_OP, name, x)?;
            }
        }
        Ok(())
    }
}

/// Rejects two operands on one buffer when one of them is written, naming both (the device
/// layer would too, but by binding number).
fn check_distinct(op: &'static str, ops: &[(&'static str, &GpuTensor, bool)]) -> Result<()> {
    for (i, &(a, x, wa)) in ops.iter().enumerate() {
        for &(b, y, wb) in &ops[i + 1..] {
            if (wa || wb) && x.same_buffer(y) {
                return Err(shape_err(
                    op,
                    format!(
                        "{a} {} and {b} {} share a buffer that the kernel writes: give each \
                         output a buffer of its own",
                        x.shape_str(),
                        y.shape_str()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Host copy of the per-item AdamW state, for [`adamw_cpu`].
#[derive(Clone, Debug, PartialEq)]
pub struct AdamWHostState<T> {
    /// First moments (`batch · item_len`).
    pub m: Vec<T>,
    /// Second moments (`batch · item_len`).
    pub v: Vec<T>,
    /// Applied steps per item.
    pub t: Vec<T>,
    /// Total skipped steps per item.
    pub skipped: Vec<T>,
    /// Consecutive skipped steps per item.
    pub consecutive: Vec<T>,
}

impl<T: Real> AdamWHostState<T> {
    /// A fresh state (all zeros).
    pub fn new(batch: usize, item_len: usize) -> Self {
        AdamWHostState {
            m: vec![T::zero(); batch * item_len],
            v: vec![T::zero(); batch * item_len],
            t: vec![T::zero(); batch],
            skipped: vec![T::zero(); batch],
            consecutive: vec![T::zero(); batch],
        }
    }

    /// Twin of [`AdamW::record_reset`]: zeroes m, v, t and the consecutive counter.
    pub fn reset(&mut self) {
        for x in self
            .m
            .iter_mut()
            .chain(&mut self.v)
            .chain(&mut self.t)
            .chain(&mut self.consecutive)
        {
            *x = T::zero();
        }
    }
}

/// `base^e` by binary powering, the exact multiply sequence of `powi` in `shaders/adamw.wgsl`.
pub(crate) fn powi<T: Real>(base: T, mut e: u32) -> T {
    let mut r = T::one();
    let mut sq = base;
    loop {
        if e & 1 == 1 {
            r = r * sq;
        }
        e >>= 1;
        if e == 0 {
            return r;
        }
        sq = sq * sq;
    }
}

/// CPU twin of one [`AdamW`] step on logical contiguous `params` and `grads`
/// (`batch · item_len`, `batch = state.t.len()`), with the GPU's operation order, every item
/// using `cfg.lr` and `cfg.weight_decay`. The sum of squares is accumulated in f64 and rounded
/// to `T` (the GPU sums in f32 in a tree).
pub fn adamw_cpu<T: Real>(
    params: &mut [T],
    grads: &[T],
    state: &mut AdamWHostState<T>,
    cfg: &AdamWConfig,
) {
    let batch = state.t.len();
    let (lr, wd) = (vec![cfg.lr; batch], vec![cfg.weight_decay; batch]);
    step_cpu(params, grads, state, cfg, &lr, &wd);
}

/// CPU twin of an [`AdamW::new_per_item`] step: item `b` uses `lr[b]` and `weight_decay[b]`
/// (`cfg.lr` and `cfg.weight_decay` are ignored). Errors like [`AdamW::set_lr_per_item`] when a
/// count differs from the batch.
pub fn adamw_per_item_cpu<T: Real>(
    params: &mut [T],
    grads: &[T],
    state: &mut AdamWHostState<T>,
    cfg: &AdamWConfig,
    lr: &[f32],
    weight_decay: &[f32],
) -> Result<()> {
    let batch = state.t.len();
    check_per_item("lr", lr, batch)?;
    check_per_item("weight_decay", weight_decay, batch)?;
    step_cpu(params, grads, state, cfg, lr, weight_decay);
    Ok(())
}

/// The twin's step; `lr` and `wd` hold one value per item.
fn step_cpu<T: Real>(
    params: &mut [T],
    grads: &[T],
    state: &mut AdamWHostState<T>,
    cfg: &AdamWConfig,
    lr: &[f32],
    wd: &[f32],
) {
    let batch = state.t.len();
    if batch == 0 {
        return;
    }
    let n = params.len() / batch;
    let c = |x: f32| T::from_f64(x as f64);
    let (b1, b2, eps, eps_root, max_norm) = (
        c(cfg.b1),
        c(cfg.b2),
        c(cfg.eps),
        c(cfg.eps_root),
        c(cfg.max_grad_norm),
    );
    for b in 0..batch {
        let (lr, wd) = (c(lr[b]), c(wd[b]));
        let items = b * n..(b + 1) * n;
        let s = T::from_f64(
            grads[items.clone()]
                .iter()
                .map(|g| g.to_f64().powi(2))
                .sum(),
        );
        if !s.is_finite() {
            state.skipped[b] += T::one();
            state.consecutive[b] += T::one();
            continue;
        }
        state.consecutive[b] = T::zero();
        state.t[b] += T::one();
        let t = state.t[b].to_f64() as u32;
        let norm = s.sqrt();
        let scale = if max_norm > T::zero() && norm > max_norm {
            max_norm / norm
        } else {
            T::one()
        };
        let bc1 = T::one() - powi(b1, t);
        let bc2 = T::one() - powi(b2, t);
        for e in items {
            let g = grads[e] * scale;
            let m = (T::one() - b1) * g + b1 * state.m[e];
            let v = (T::one() - b2) * (g * g) + b2 * state.v[e];
            state.m[e] = m;
            state.v[e] = v;
            let u = (m / bc1) / ((v / bc2 + eps_root).sqrt() + eps);
            let w = params[e];
            params[e] = w - lr * (u + wd * w);
        }
    }
}

/// The adjoint of one AdamW step, element by element (`docs/second-order.md` §3; exact, optax's
/// operation order): given the adjoints of the step's outputs — `theta_bar` = θ̄′, `m_bar` = m̄′,
/// `v_bar` = v̄′ — and what the step saw and wrote (its gradient `g`, the moments `m_new`, `v_new`
/// it wrote, its count `t`), overwrites `theta_bar` with the explicit part `(1 − lr·wd)·θ̄′` of θ̄,
/// `m_bar`, `v_bar` with m̄, v̄ and writes `g_bar` = ḡ, the adjoint of the gradient (the caller
/// adds `H·ḡ` to θ̄). With `D = √(v′/(1−b2ᵗ) + eps_root)`, `den = D + eps` and the update
/// `u = (m′/(1−b1ᵗ))/den`:
///
/// ```text
/// M = m̄′ − lr·θ̄′ / ((1−b1ᵗ)·den)
/// V = v̄′ + lr·θ̄′·u / (2·D·den·(1−b2ᵗ))
/// θ̄ = (1 − lr·wd)·θ̄′,   m̄ = b1·M,   v̄ = b2·V,   ḡ = (1−b1)·M + 2(1−b2)·g·V
/// ```
///
/// Item `b` of the batch (`lr.len()` items of `g.len() / lr.len()` elements) uses `lr[b]` and
/// `weight_decay[b]`. Gradient clipping is not part of the inner loop (`cfg.max_grad_norm` must be
/// 0) and a skipped step has no adjoint: both are the caller's to exclude.
#[allow(clippy::too_many_arguments)]
pub fn adamw_vjp_cpu<T: Real>(
    cfg: &AdamWConfig,
    lr: &[f32],
    weight_decay: &[f32],
    t: u32,
    g: &[T],
    m_new: &[T],
    v_new: &[T],
    theta_bar: &mut [T],
    m_bar: &mut [T],
    v_bar: &mut [T],
    g_bar: &mut [T],
) {
    let batch = lr.len();
    assert_eq!(weight_decay.len(), batch, "one weight decay per item");
    assert!(
        batch > 0 && g.len().is_multiple_of(batch),
        "items of equal length"
    );
    let n = g.len() / batch;
    for x in [m_new.len(), v_new.len(), theta_bar.len(), m_bar.len()] {
        assert_eq!(x, g.len(), "every operand has the gradient's length");
    }
    assert_eq!((v_bar.len(), g_bar.len()), (g.len(), g.len()));
    let c = |x: f32| T::from_f64(x as f64);
    let (b1, b2, eps, eps_root) = (c(cfg.b1), c(cfg.b2), c(cfg.eps), c(cfg.eps_root));
    let (bc1, bc2) = (T::one() - powi(b1, t), T::one() - powi(b2, t));
    let two = T::from_f64(2.0);
    for e in 0..g.len() {
        let (lr, wd) = (c(lr[e / n]), c(weight_decay[e / n]));
        let a = theta_bar[e];
        let d = (v_new[e] / bc2 + eps_root).sqrt();
        let den = d + eps;
        let u = (m_new[e] / bc1) / den;
        let big_m = m_bar[e] - lr * a / (bc1 * den);
        let big_v = v_bar[e] + lr * a * u / (two * d * den * bc2);
        theta_bar[e] = (T::one() - lr * wd) * a;
        m_bar[e] = b1 * big_m;
        v_bar[e] = b2 * big_v;
        g_bar[e] = (T::one() - b1) * big_m + two * (T::one() - b2) * g[e] * big_v;
    }
}
