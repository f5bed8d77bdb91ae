//! LayerNorm over the last axis with learnable scale γ and offset β (haiku semantics, eps 1e-5):
//! `y = (x − μ)·rstd·γ + β` per row.
//!
//! GPU: the forward keeps the row statistics ([`LnStats`]) for the backward, which writes ∂L/∂x
//! and ∂L/∂γ in the LN kernel and ∂L/∂β as the column sums of ∂L/∂y (the kernel cannot write dγ
//! and dβ into views of one gradient buffer, which is where a model's packed gradients live).
//! A parameter shared by several items would need its gradient summed over them, which the LN
//! kernel does not do: such a binding is refused with a shape error.
//!
//! CPU twin: [`layernorm_forward`] / [`layernorm_backward`].
//!
//! Tangent (JVP, for forward-over-reverse Hessian-vector products): [`LayerNorm::tangent_forward`]
//! `ẏ = γ·rstd·(ẋ − mean(ẋ) − x̂·mean(x̂·ẋ))` and [`LayerNorm::tangent_backward`] (the tangents
//! of ∂L/∂x, ∂L/∂γ, ∂L/∂β) reuse [`LnStats`] and share per-row tangent statistics; γ and β hold
//! still (`crate::ops::layernorm_tangent`).

use crate::gpu::error::{arg_err, shape_err, Result};
use crate::gpu::{Device, Dispatch, Tensor};
use crate::ops::layernorm::{
    layernorm_backward as ln_backward_gpu, layernorm_backward_cpu,
    layernorm_forward as ln_forward_gpu, layernorm_forward_cpu,
};
use crate::ops::layernorm_tangent::{
    layernorm_tangent_backward, layernorm_tangent_forward, LnTangentInputs,
};
use crate::ops::reduce::col_sums;
use crate::ops::Real;

use super::dense_tangent::ParamTangent;

use super::dense::rows_of;
use super::param::{Binding, Param};

/// LayerNorm epsilon of the reference (haiku, spec §0.5).
pub const LN_EPS: f64 = 1e-5;

/// A LayerNorm over rows of `cols` features.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNorm {
    /// Features per row.
    pub cols: usize,
    /// Added to the variance.
    pub eps: f32,
}

/// Row mean and 1/√(var + eps) of a forward, `[items × rows × 1]` each.
#[derive(Clone, Debug)]
pub struct LnStats {
    /// Row means.
    pub mean: Tensor,
    /// Row reciprocal standard deviations.
    pub rstd: Tensor,
}

impl LayerNorm {
    /// haiku's LayerNorm over `cols` features.
    pub fn new(cols: usize) -> LayerNorm {
        LayerNorm {
            cols,
            eps: LN_EPS as f32,
        }
    }

    /// Statistics scratch for `items × rows` rows.
    pub fn stats(&self, gpu: &Device, items: usize, rows: usize) -> Result<LnStats> {
        Ok(LnStats {
            mean: gpu.zeros(items, rows, 1)?,
            rstd: gpu.zeros(items, rows, 1)?,
        })
    }

    /// `y` from `x`, writing `stats`.
    pub fn forward(
        &self,
        gpu: &Device,
        x: &Tensor,
        scale: &Param,
        offset: &Param,
        y: &Tensor,
        stats: &LnStats,
    ) -> Result<Dispatch> {
        for p in [scale, offset] {
            check_binding(p, x)?;
        }
        ln_forward_gpu(
            gpu,
            x,
            Some(&scale.value),
            Some(&offset.value),
            y,
            &stats.mean,
            &stats.rstd,
            self.eps,
        )
    }

    /// ∂L/∂x into `dx`, and ∂L/∂γ, ∂L/∂β where the parameters want them.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        gpu: &Device,
        x: &Tensor,
        scale: &Param,
        offset: &Param,
        stats: &LnStats,
        dy: &Tensor,
        dx: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let mut out = ln_backward_gpu(
            gpu,
            dy,
            x,
            Some(&scale.value),
            &stats.mean,
            &stats.rstd,
            dx,
            scale.grad.as_ref(),
            None,
        )?;
        if let Some(doffset) = &offset.grad {
            out.push(col_sums(gpu, dy, doffset, 1.0, 0.0)?);
        }
        Ok(out)
    }
}

/// What a LayerNorm's tangent passes read: the forward's input and statistics, the input's
/// tangent, and the per-row tangent statistics ([`LayerNorm::tangent_stats`]) the forward
/// tangent writes and the backward tangent reads.
#[derive(Clone, Copy, Debug)]
pub struct LnTangentIo<'a> {
    /// The forward's input x.
    pub x: &'a Tensor,
    /// ẋ.
    pub x_dot: &'a Tensor,
    /// The forward's statistics.
    pub stats: &'a LnStats,
    /// `[items × rows × 2]` scratch of the tangent passes.
    pub tstats: &'a Tensor,
}

impl LayerNorm {
    /// Tangent statistics scratch for `items × rows` rows.
    pub fn tangent_stats(&self, gpu: &Device, items: usize, rows: usize) -> Result<Tensor> {
        gpu.zeros(items, rows, 2)
    }

    fn tangent_inputs<'a>(&self, io: &LnTangentIo<'a>, scale: &'a Param) -> LnTangentInputs<'a> {
        LnTangentInputs {
            x: io.x,
            x_dot: io.x_dot,
            gamma: Some(&scale.value),
            mean: &io.stats.mean,
            rstd: &io.stats.rstd,
            tstats: io.tstats,
        }
    }

    /// The forward tangent: ẏ from ẋ (γ and β hold still), writing `io.tstats`.
    pub fn tangent_forward(
        &self,
        gpu: &Device,
        io: &LnTangentIo<'_>,
        scale: &Param,
        y_dot: &Tensor,
    ) -> Result<Dispatch> {
        layernorm_tangent_forward(gpu, &self.tangent_inputs(io, scale), y_dot)
    }

    /// The backward tangent, after [`LayerNorm::tangent_forward`]: from the backward's ∂L/∂y
    /// `dy` and its tangent `dy_dot`, the tangent of ∂L/∂x into `dx_dot` and those of ∂L/∂γ and
    /// ∂L/∂β where `scale_t` / `offset_t` ask for them (`grad_dot`). A moving γ or β (`dot`) is
    /// refused: the reverse sweep moves only task parameters.
    #[allow(clippy::too_many_arguments)]
    pub fn tangent_backward(
        &self,
        gpu: &Device,
        io: &LnTangentIo<'_>,
        (scale, scale_t): (&Param, &ParamTangent),
        (offset, offset_t): (&Param, &ParamTangent),
        (dy, dy_dot): (&Tensor, &Tensor),
        dx_dot: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        for (p, t) in [(scale, scale_t), (offset, offset_t)] {
            if t.dot.is_some() {
                return Err(arg_err(
                    "layer norm tangent",
                    "γ and β hold still in a tangent pass; a direction for them is not supported",
                ));
            }
            if t.grad_dot.is_some() {
                check_shared(p, io.x)?;
            }
        }
        let inputs = self.tangent_inputs(io, scale);
        let mut out = layernorm_tangent_backward(
            gpu,
            &inputs,
            (dy, dy_dot),
            dx_dot,
            scale_t.grad_dot.as_ref(),
        )?;
        if let Some(doffset) = &offset_t.grad_dot {
            out.push(col_sums(gpu, dy_dot, doffset, 1.0, 0.0)?);
        }
        Ok(out)
    }
}

fn check_binding(p: &Param, x: &Tensor) -> Result<()> {
    if p.grad.is_none() {
        return Ok(());
    }
    check_shared(p, x)
}

/// A γ/β shared by several items would need its gradient (or gradient tangent) summed over them.
fn check_shared(p: &Param, x: &Tensor) -> Result<()> {
    if p.binding == Binding::PerItem || x.batch() == 1 {
        return Ok(());
    }
    Err(shape_err(
        "layer norm",
        format!(
            "a γ/β shared by {} items needs its gradient summed over them, which is not \
             supported; run the rows as one item ([1 × items·rows × cols])",
            x.batch()
        ),
    ))
}

// ---------------------------------------------------------------------------------------------
// CPU twin (one item)
// ---------------------------------------------------------------------------------------------

/// Row statistics a LayerNorm forward keeps for its backward.
#[derive(Clone, Debug)]
pub struct LnCache<T> {
    /// Row means.
    pub mean: Vec<T>,
    /// Row 1/√(var + eps).
    pub rstd: Vec<T>,
}

/// LayerNorm over the `cols` features of each row with learnable scale and offset (eps 1e-5).
pub fn layernorm_forward<T: Real>(
    x: &[T],
    scale: &[T],
    offset: &[T],
    cols: usize,
) -> (Vec<T>, LnCache<T>) {
    let rows = rows_of(x, cols);
    let mut y = vec![T::zero(); x.len()];
    let mut mean = vec![T::zero(); rows];
    let mut rstd = vec![T::zero(); rows];
    layernorm_forward_cpu(
        x,
        Some(scale),
        Some(offset),
        rows,
        cols,
        T::from_f64(LN_EPS),
        &mut y,
        &mut mean,
        &mut rstd,
    );
    (y, LnCache { mean, rstd })
}

/// Backward of [`layernorm_forward`]: `(dx, dscale, doffset)`.
pub fn layernorm_backward<T: Real>(
    dy: &[T],
    x: &[T],
    scale: &[T],
    cache: &LnCache<T>,
    cols: usize,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let rows = rows_of(x, cols);
    let mut dx = vec![T::zero(); x.len()];
    let mut dscale = vec![T::zero(); cols];
    let mut doffset = vec![T::zero(); cols];
    layernorm_backward_cpu(
        dy,
        x,
        Some(scale),
        &cache.mean,
        &cache.rstd,
        rows,
        cols,
        &mut dx,
        Some(&mut dscale),
        Some(&mut doffset),
    );
    (dx, dscale, doffset)
}
