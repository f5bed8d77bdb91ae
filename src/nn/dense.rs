//! The dense layer `y = act(scale · (x @ w) + b)` (haiku `Linear` with `scale = 1`,
//! `ReparametrizedLinear` with `scale = 1/√fan_in`), batched over items: `x [items × n × fan_in]`,
//! `w [fan_in × fan_out]` and `b [fan_out]` shared or per item ([`Param`]).
//!
//! GPU: the forward is ONE GEMM with bias and activation in its epilogue. The backward takes the
//! activation's derivative from the kept OUTPUT `y` (ReLU and ELU allow it), then
//! `dw = scale · xᵀ·dz`, `db = Σ_rows dz`, `dx = scale · dz·wᵀ`: for a shared parameter the
//! first two run over the rows of all items at once, so they are sums over the items.
//!
//! CPU twin: [`linear_forward`] / [`linear_backward`] and the activation functions, generic over
//! [`Real`] (f64 for gradient checks).
//!
//! Tangent (JVP) pass, for second-order meta-gradients: `ẏ = act'(z) ⊙ (scale·(ẋ@w + x@ẇ) + ḃ)`
//! will sit beside `backward` as `Dense::tangent`, with the same kept tensors.

use crate::gpu::error::{shape_err, Result};
use crate::gpu::{Device, Dispatch, Tensor};
use crate::ops::elementwise::{activation_backward_cpu, activation_forward_cpu, copy};
use crate::ops::gemm::{gemm, gemm_cpu, GemmOptions, GemmShape};
use crate::ops::reduce::col_sums;
use crate::ops::{Activation, Real};

use super::param::{rows_of_all_items, Binding, Param};

const OP: &str = "dense layer";

/// One dense layer's shape and nonlinearity (its parameters are bound per call, [`Param`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dense {
    /// Input features.
    pub fan_in: usize,
    /// Output features.
    pub fan_out: usize,
    /// Nonlinearity after the affine map.
    pub activation: Activation,
    /// Scale of the product (1, or 1/√fan_in for a reparametrised layer).
    pub scale: f32,
}

/// The tensors one backward reads and writes.
#[derive(Clone, Copy, Debug)]
pub struct DenseBackward<'a> {
    /// The forward's input `[items × n × fan_in]`.
    pub x: &'a Tensor,
    /// The forward's output (the activation's derivative is taken from it).
    pub y: &'a Tensor,
    /// ∂L/∂y.
    pub dy: &'a Tensor,
    /// Scratch for ∂L/∂z (pre-activation), same shape as `y`; unused for the identity.
    pub dz: &'a Tensor,
    /// ∂L/∂x, when wanted (overwritten).
    pub dx: Option<&'a Tensor>,
}

impl Dense {
    /// A linear layer with identity activation and scale 1.
    pub fn new(fan_in: usize, fan_out: usize) -> Dense {
        Dense {
            fan_in,
            fan_out,
            activation: Activation::Identity,
            scale: 1.0,
        }
    }

    /// The same layer with another activation.
    pub fn with_activation(self, activation: Activation) -> Dense {
        Dense { activation, ..self }
    }

    /// The same layer with another product scale.
    pub fn with_scale(self, scale: f32) -> Dense {
        Dense { scale, ..self }
    }

    /// `ReparametrizedLinear`: the product scaled by 1/√fan_in (computed in f32).
    pub fn reparametrized(self) -> Dense {
        self.with_scale(1.0 / (self.fan_in as f32).sqrt())
    }

    fn check(&self, w: &Param, b: Option<&Param>) -> Result<()> {
        let ok = |p: &Param, r: usize| p.value.rows() == r && p.value.cols() == self.fan_out;
        if ok(w, self.fan_in) && b.is_none_or(|b| ok(b, 1)) {
            return Ok(());
        }
        Err(shape_err(
            OP,
            format!(
                "{}→{} wants w [· × {} × {}] and b [· × 1 × {}], got w {} and b {}",
                self.fan_in,
                self.fan_out,
                self.fan_in,
                self.fan_out,
                self.fan_out,
                w.value.shape_str(),
                b.map_or("none".into(), |b| b.value.shape_str())
            ),
        ))
    }

    /// `y = act(scale·(x @ w) + b)` as one GEMM.
    pub fn forward(
        &self,
        gpu: &Device,
        x: &Tensor,
        w: &Param,
        b: Option<&Param>,
        y: &Tensor,
    ) -> Result<Dispatch> {
        self.check(w, b)?;
        let opts = GemmOptions {
            alpha: self.scale,
            activation: self.activation,
            ..GemmOptions::default()
        };
        gemm(gpu, x, &w.value, b.map(|b| &b.value), y, &opts)
    }

    /// The backward launches: activation derivative, the parameter gradients that `w` / `b`
    /// want, and ∂L/∂x when `io.dx` is given. A shared gradient needs the rows of all items as
    /// one matrix; a strided `x` is first copied into a contiguous scratch (allocated here).
    pub fn backward(
        &self,
        gpu: &Device,
        w: &Param,
        b: Option<&Param>,
        io: &DenseBackward<'_>,
    ) -> Result<Vec<Dispatch>> {
        self.check(w, b)?;
        let mut out = Vec::new();
        let dz = if self.activation == Activation::Identity {
            io.dy
        } else {
            out.push(crate::ops::elementwise::activation_backward(
                gpu,
                io.dy,
                io.y,
                io.dz,
                self.activation,
            )?);
            io.dz
        };
        if let Some(dw) = &w.grad {
            let (x, dz) = match w.binding {
                Binding::PerItem => (io.x.clone(), dz.clone()),
                Binding::Shared => (
                    rows_of_all_items(&contiguous(gpu, io.x, &mut out)?)?,
                    rows_of_all_items(dz)?,
                ),
            };
            let opts = GemmOptions {
                trans_a: true,
                alpha: self.scale,
                ..GemmOptions::default()
            };
            out.push(gemm(gpu, &x, &dz, None, dw, &opts)?);
        }
        if let Some(db) = b.and_then(|b| b.grad.as_ref().map(|g| (b.binding, g))) {
            let dz_rows = match db.0 {
                Binding::PerItem => dz.clone(),
                Binding::Shared => rows_of_all_items(dz)?,
            };
            out.push(col_sums(gpu, &dz_rows, db.1, 1.0, 0.0)?);
        }
        if let Some(dx) = io.dx {
            let opts = GemmOptions {
                trans_b: true,
                alpha: self.scale,
                ..GemmOptions::default()
            };
            out.push(gemm(gpu, dz, &w.value, None, dx, &opts)?);
        }
        Ok(out)
    }
}

/// `x` itself when contiguous, else a contiguous copy whose copy launch joins `out`.
pub(super) fn contiguous(gpu: &Device, x: &Tensor, out: &mut Vec<Dispatch>) -> Result<Tensor> {
    if x.is_contiguous() {
        return Ok(x.clone());
    }
    let xc = gpu.zeros(x.batch(), x.rows(), x.cols())?;
    out.push(copy(gpu, x, &xc)?);
    Ok(xc)
}

// ---------------------------------------------------------------------------------------------
// CPU twin (one item)
// ---------------------------------------------------------------------------------------------

/// Number of samples in `x` with `cols` features each.
pub(crate) fn rows_of<T>(x: &[T], cols: usize) -> usize {
    assert!(
        cols > 0 && x.len().is_multiple_of(cols),
        "input length {} is not a multiple of {cols}",
        x.len()
    );
    x.len() / cols
}

/// `op(A) @ op(B)` through [`gemm_cpu`]: `op(A)` is `m × k`, `op(B)` is `k × n`.
#[allow(clippy::too_many_arguments)]
pub fn matmul<T: Real>(
    a: &[T],
    b: &[T],
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
) -> Vec<T> {
    let mut c = vec![T::zero(); m * n];
    gemm_cpu(
        a,
        b,
        None,
        &mut c,
        GemmShape { batch: 1, m, n, k },
        &GemmOptions {
            trans_a,
            trans_b,
            ..GemmOptions::default()
        },
    );
    c
}

/// Linear layer `y = scale · (x @ w) + b`: `x` is `n × fan_in`, `w` `fan_in × fan_out`, `b`
/// `fan_out`. `scale` is 1 for haiku `Linear`, 1/√fan_in for `ReparametrizedLinear`.
pub fn linear_forward<T: Real>(
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    fan_in: usize,
    fan_out: usize,
    scale: T,
) -> Vec<T> {
    let n = rows_of(x, fan_in);
    let mut y = matmul(x, w, n, fan_out, fan_in, false, false);
    for row in y.chunks_mut(fan_out) {
        for (j, v) in row.iter_mut().enumerate() {
            *v = scale * *v + b.map_or(T::zero(), |b| b[j]);
        }
    }
    y
}

/// Gradients of a linear layer.
#[derive(Clone, Debug)]
pub struct LinearGrads<T> {
    /// dL/dx (`n × fan_in`); empty unless requested.
    pub dx: Vec<T>,
    /// dL/dw (`fan_in × fan_out`).
    pub dw: Vec<T>,
    /// dL/db (`fan_out`).
    pub db: Vec<T>,
}

/// Backward of [`linear_forward`] from `dy` (`n × fan_out`).
pub fn linear_backward<T: Real>(
    x: &[T],
    w: &[T],
    dy: &[T],
    fan_in: usize,
    fan_out: usize,
    scale: T,
    need_dx: bool,
) -> LinearGrads<T> {
    let n = rows_of(x, fan_in);
    let mut dw = matmul(x, dy, fan_in, fan_out, n, true, false);
    dw.iter_mut().for_each(|v| *v = scale * *v);
    let dx = if need_dx {
        let mut dx = matmul(dy, w, n, fan_in, fan_out, false, true);
        dx.iter_mut().for_each(|v| *v = scale * *v);
        dx
    } else {
        Vec::new()
    };
    let db = col_sums_cpu(dy, fan_out);
    LinearGrads { dx, dw, db }
}

/// Point-wise activation.
pub fn activation_forward<T: Real>(x: &[T], act: Activation) -> Vec<T> {
    let mut y = vec![T::zero(); x.len()];
    activation_forward_cpu(x, &mut y, act);
    y
}

/// Backward of [`activation_forward`] from `dy` and the forward output `y`.
pub fn activation_backward<T: Real>(dy: &[T], y: &[T], act: Activation) -> Vec<T> {
    let mut dx = vec![T::zero(); dy.len()];
    activation_backward_cpu(dy, y, &mut dx, act);
    dx
}

/// Column sums of `dy` (`n × cols`): the gradient of a bias added to every row.
pub fn col_sums_cpu<T: Real>(dy: &[T], cols: usize) -> Vec<T> {
    let mut s = vec![T::zero(); cols];
    for row in dy.chunks(cols) {
        for (d, &v) in s.iter_mut().zip(row) {
            *d += v;
        }
    }
    s
}
