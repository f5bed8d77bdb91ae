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
use crate::gpu::{grid_1d, Access, Cost, Device, Dispatch, KernelSpec, Shader, Step, Tensor};
use crate::ops::reduce::{sum_squares, SumSquares};
use crate::ops::{check_output, place, to_u32};

mod adjoint;
mod native;
mod twin;

pub use adjoint::AdamWVjpIo;
pub(crate) use twin::powi;
pub use twin::{adamw_cpu, adamw_per_item_cpu, adamw_vjp_cpu, AdamWHostState};

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
    state: Tensor,
    m: Tensor,
    v: Tensor,
    t: Tensor,
    skipped: Tensor,
    consecutive: Tensor,
    lr: Tensor,
    wd: Tensor,
    sumsq: Tensor,
    norm: SumSquares,
    prepare: Dispatch,
    update: Dispatch,
    reset: Dispatch,
}

impl AdamW {
    /// Allocates zeroed state for `params` (not a broadcast view) and prepares the dispatches.
    /// `grads` must have the same batch, rows and columns (any offset and stride). Every item
    /// uses `cfg.lr` and `cfg.weight_decay`.
    pub fn new(gpu: &Device, params: &Tensor, grads: &Tensor, cfg: AdamWConfig) -> Result<AdamW> {
        let b = params.batch();
        let (lr, wd) = (vec![cfg.lr; b], vec![cfg.weight_decay; b]);
        Self::new_per_item(gpu, params, grads, cfg, &lr, &wd)
    }

    /// [`AdamW::new`] with one learning rate and one weight decay per batch item (B values
    /// each), e.g. a sweep of independent runs on the batch axis. `cfg.lr` and
    /// `cfg.weight_decay` are validated but replaced by these.
    pub fn new_per_item(
        gpu: &Device,
        params: &Tensor,
        grads: &Tensor,
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
    pub fn set_lr(&self, gpu: &Device, lr: f32) -> Result<()> {
        self.set_lr_per_item(gpu, &vec![lr; self.lr.batch()])
    }

    /// Sets one learning rate per item (B values, each finite and ≥ 0), with the timing of
    /// [`AdamW::set_lr`]. A wrong count is an [`crate::gpu::DeviceError::Shape`] naming both lengths.
    pub fn set_lr_per_item(&self, gpu: &Device, lr: &[f32]) -> Result<()> {
        check_per_item("lr", lr, self.lr.batch())?;
        gpu.write(&self.lr, lr)
    }

    /// Sets the weight decay of every item, with the timing of [`AdamW::set_lr`].
    pub fn set_weight_decay(&self, gpu: &Device, weight_decay: f32) -> Result<()> {
        self.set_weight_decay_per_item(gpu, &vec![weight_decay; self.wd.batch()])
    }

    /// Sets one weight decay per item, like [`AdamW::set_lr_per_item`].
    pub fn set_weight_decay_per_item(&self, gpu: &Device, weight_decay: &[f32]) -> Result<()> {
        check_per_item("weight_decay", weight_decay, self.wd.batch())?;
        gpu.write(&self.wd, weight_decay)
    }

    /// Learning rate per item, `[B×1×1]` (read by every update; kernels may write it too, e.g. a
    /// schedule computed on the GPU).
    pub fn lr(&self) -> &Tensor {
        &self.lr
    }
    /// Weight decay per item, `[B×1×1]`.
    pub fn weight_decay(&self) -> &Tensor {
        &self.wd
    }

    /// First moments, `[B×R×C]` contiguous.
    pub fn m(&self) -> &Tensor {
        &self.m
    }
    /// Second moments, `[B×R×C]` contiguous.
    pub fn v(&self) -> &Tensor {
        &self.v
    }
    /// Applied steps per item, `[B×1×1]` (f32 integers).
    pub fn step_count(&self) -> &Tensor {
        &self.t
    }
    /// Total skipped steps per item, `[B×1×1]` (f32 integers; never reset).
    pub fn skipped(&self) -> &Tensor {
        &self.skipped
    }
    /// Consecutive skipped steps per item, `[B×1×1]` (0 after an applied step or a reset).
    pub fn consecutive_skips(&self) -> &Tensor {
        &self.consecutive
    }
    /// `Σ g²` per item from the last recorded step, `[B×1×1]` (before clipping): its square root
    /// is the gradient's global norm, for logging.
    pub fn grad_sum_squares(&self) -> &Tensor {
        &self.sumsq
    }
}
