//! The CPU twin of [`AdamW`](super::AdamW): one step and its adjoint, generic over [`Real`],
//! with the kernels' operation order (the specification both backends are tested against).

use super::{check_per_item, AdamWConfig};
use crate::gpu::error::Result;
use crate::ops::Real;

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

    /// Twin of [`AdamW::record_reset`](super::AdamW::record_reset): zeroes m, v, t and the consecutive counter.
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

/// CPU twin of one [`AdamW`](super::AdamW) step on logical contiguous `params` and `grads`
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

/// CPU twin of an [`AdamW::new_per_item`](super::AdamW::new_per_item) step: item `b` uses `lr[b]` and `weight_decay[b]`
/// (`cfg.lr` and `cfg.weight_decay` are ignored). Errors like [`AdamW::set_lr_per_item`](super::AdamW::set_lr_per_item) when a
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
