//! Embedding normalisation of the hypernetwork students (spec §4.2): every embedding row is
//! rescaled to norm √T, with the scale outside the gradient:
//! `ê = e · stop_gradient(√T / ‖e‖₂)`, so `∂L/∂e = ∂L/∂ê · s`.
//!
//! GPU: [`EmbeddingNorm`] holds ê, ∂L/∂ê and the frozen scales of every item's rows for a list of
//! SLOTS (groups of rows that feed one bank), slot-major (`[slot][item][row][T]`), so each slot's
//! rows of all items form one contiguous `[items·rows × T]` matrix: one GEMM per bank then serves
//! every item.
//!
//! CPU twin: [`embedding_scales`], [`embedding_norm_forward`], [`embedding_norm_backward`].
//!
//! Tangent (JVP), frozen scale: `ė̂ = ė · s` ([`EmbeddingNorm::tangent`]), and its backward
//! tangent `(d ∂L/∂ê)·s`, the same launch as the backward.

use crate::gpu::error::Result;
use crate::gpu::{Device, Dispatch, Tensor};
use crate::ops::embnorm::{embedding_normalize, scale_rows};
use crate::ops::Real;

/// ê, ∂L/∂ê and the scales of every item's embedding rows, slot-major.
pub struct EmbeddingNorm {
    items: usize,
    t: usize,
    /// Rows per item of each slot.
    rows: Vec<usize>,
    /// First slot-major row of each slot.
    row0: Vec<usize>,
    /// ê.
    pub ehat: Tensor,
    /// ∂L/∂ê (written by the banks' backward).
    pub dehat: Tensor,
    /// The tangent of ê (second-order passes).
    pub ehat_dot: Tensor,
    /// The tangent of ∂L/∂ê (written by the banks' backward tangent).
    pub dehat_dot: Tensor,
    scales: Tensor,
}

impl EmbeddingNorm {
    /// Scratch for `items` items whose slot `s` has `slot_rows[s]` rows of `t` values.
    pub fn new(gpu: &Device, items: usize, slot_rows: &[usize], t: usize) -> Result<EmbeddingNorm> {
        let mut row0 = Vec::new();
        let mut total = 0;
        for &r in slot_rows {
            row0.push(total);
            total += items * r;
        }
        Ok(EmbeddingNorm {
            items,
            t,
            rows: slot_rows.to_vec(),
            row0,
            ehat: gpu.zeros(1, total, t)?,
            dehat: gpu.zeros(1, total, t)?,
            ehat_dot: gpu.zeros(1, total, t)?,
            dehat_dot: gpu.zeros(1, total, t)?,
            scales: gpu.zeros(1, total, 1)?,
        })
    }

    /// Slot `s` of `buf` (`ehat`, `dehat` or their tangents) as `[1 × items·rows × T]`.
    pub fn flat(&self, buf: &Tensor, s: usize) -> Result<Tensor> {
        let m = self.items * self.rows[s];
        buf.view(self.row0[s] * self.t, 1, m, self.t, 0)
    }

    /// Slot `s` of a scratch `buf` with `cols` values per row as `[items × rows × cols]`.
    fn per_item(&self, buf: &Tensor, s: usize, cols: usize) -> Result<Tensor> {
        let r = self.rows[s];
        buf.view(self.row0[s] * cols, self.items, r, cols, r * cols)
    }

    /// Slot `s`'s embedding rows `[items × rows × T]` inside a packed parameter buffer (values or
    /// gradients) whose embedding tensor starts at element `start` of each item.
    fn in_params(&self, buf: &Tensor, s: usize, start: usize) -> Result<Tensor> {
        buf.view(
            buf.offset() + start,
            self.items,
            self.rows[s],
            self.t,
            buf.batch_stride(),
        )
    }

    /// ê and the scales of slot `s` from the embeddings at `start` of each item of `params`.
    pub fn forward(
        &self,
        gpu: &Device,
        params: &Tensor,
        s: usize,
        start: usize,
    ) -> Result<Dispatch> {
        embedding_normalize(
            gpu,
            &self.in_params(params, s, start)?,
            &self.per_item(&self.ehat, s, self.t)?,
            &self.per_item(&self.scales, s, 1)?,
        )
    }

    /// `∂L/∂e = ∂L/∂ê · s` of slot `s` into `grads` at `start` of each item (frozen scale).
    pub fn backward(
        &self,
        gpu: &Device,
        grads: &Tensor,
        s: usize,
        start: usize,
    ) -> Result<Dispatch> {
        self.scaled_into_params(gpu, &self.dehat, grads, s, start)
    }

    /// The tangent `ė̂ = ė · s` of slot `s` from the directions at `start` of each item of
    /// `params_dot` (the scale is frozen, so its tangent is zero).
    pub fn tangent(
        &self,
        gpu: &Device,
        params_dot: &Tensor,
        s: usize,
        start: usize,
    ) -> Result<Dispatch> {
        scale_rows(
            gpu,
            &self.in_params(params_dot, s, start)?,
            &self.per_item(&self.scales, s, 1)?,
            &self.per_item(&self.ehat_dot, s, self.t)?,
        )
    }

    /// The tangent of `∂L/∂e`, `(d ∂L/∂ê) · s`, of slot `s` into `grads_dot` at `start`.
    pub fn tangent_backward(
        &self,
        gpu: &Device,
        grads_dot: &Tensor,
        s: usize,
        start: usize,
    ) -> Result<Dispatch> {
        self.scaled_into_params(gpu, &self.dehat_dot, grads_dot, s, start)
    }

    /// `slot s of scratch · s` into the embedding rows at `start` of `params`.
    fn scaled_into_params(
        &self,
        gpu: &Device,
        scratch: &Tensor,
        params: &Tensor,
        s: usize,
        start: usize,
    ) -> Result<Dispatch> {
        scale_rows(
            gpu,
            &self.per_item(scratch, s, self.t)?,
            &self.per_item(&self.scales, s, 1)?,
            &self.in_params(params, s, start)?,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// CPU twin (one item)
// ---------------------------------------------------------------------------------------------

/// Row scales √T / ‖e_r‖₂ of the embedding normalisation (spec §4.2); `e` is `rows × t`.
/// The scales are under `stop_gradient` in the reference, so they are [`Real::detach`]ed: a
/// forward-mode derivative through them is zero at every order, as in JAX.
pub fn embedding_scales<T: Real>(e: &[T], t: usize) -> Vec<T> {
    let sqrt_t = T::from_f64(t as f64).sqrt();
    e.chunks(t)
        .map(|r| (sqrt_t / r.iter().map(|&v| v * v).sum::<T>().sqrt()).detach())
        .collect()
}

/// ê = e · s row-wise, with the scales `s` from [`embedding_scales`] (or frozen ones).
pub fn embedding_norm_forward<T: Real>(e: &[T], scales: &[T], t: usize) -> Vec<T> {
    e.chunks(t)
        .zip(scales)
        .flat_map(|(r, &s)| r.iter().map(move |&v| v * s))
        .collect()
}

/// Backward of [`embedding_norm_forward`] with `stop_gradient` on the scale: de = dê · s.
pub fn embedding_norm_backward<T: Real>(dehat: &[T], scales: &[T], t: usize) -> Vec<T> {
    embedding_norm_forward(dehat, scales, t)
}
