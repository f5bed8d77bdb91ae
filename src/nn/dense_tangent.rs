//! The dense layer's tangent passes, for Hessian-vector products by forward-over-reverse
//! (second-order meta-gradients, spec second-order.md §4). With `z = scale·(x@w) + b`,
//! `y = act(z)`, `dz = act'(z) ⊙ dy` and a tangent (ẋ, ẇ, ḃ) of the inputs:
//!
//! ```text
//! forward tangent:   ż = scale·(ẋ@w + x@ẇ) + ḃ,       ẏ = act'(z) ⊙ ż
//! backward tangent:  dż = act'(z) ⊙ dẏ               (act'' = 0: ReLU, identity)
//!                    dẇ = scale·(ẋᵀ@dz + xᵀ@dż),     dḃ = Σ_rows dż
//!                    dẋ = scale·(dż@wᵀ + dz@ẇᵀ)
//! ```
//!
//! Every term is a GEMM whose second term accumulates with β = 1, so no new kernel is needed:
//! `act'` comes from the kept output `y` as in the backward. ELU's second derivative is not 0;
//! its layers are rejected here (the deep hypernetwork's tangent lives in its twin for now).

use crate::gpu::error::{arg_err, Result};
use crate::gpu::{Device, Dispatch, Tensor};
use crate::ops::elementwise::{activation_backward, bias_add};
use crate::ops::gemm::{gemm, GemmOptions};
use crate::ops::reduce::col_sums;
use crate::ops::Activation;

use super::dense::contiguous;
use super::param::{rows_of_all_items, Binding, Param};
use super::Dense;

const OP: &str = "dense tangent";

/// The tangent of a layer's parameter: its direction and, for the backward tangent, where the
/// tangent of its gradient goes. Either may be absent (a zero direction; a gradient tangent not
/// wanted).
#[derive(Clone, Debug, Default)]
pub struct ParamTangent {
    /// ẇ (or ḃ), bound like the parameter's value.
    pub dot: Option<Tensor>,
    /// d(∂L/∂w)/dε, bound like the parameter's gradient (overwritten).
    pub grad_dot: Option<Tensor>,
}

/// What one layer's tangent passes read and write, beside the forward's and backward's tensors.
#[derive(Clone, Copy, Debug)]
pub struct DenseTangentIo<'a> {
    /// The forward's input x.
    pub x: &'a Tensor,
    /// ẋ, or `None` for an input that does not move (data).
    pub x_dot: Option<&'a Tensor>,
    /// The forward's output y (`act'` is taken from it).
    pub y: &'a Tensor,
    /// Out: ż (scratch; unused for the identity, where ż is ẏ).
    pub z_dot: &'a Tensor,
    /// Out: ẏ.
    pub y_dot: &'a Tensor,
    /// The backward's ∂L/∂z, kept.
    pub dz: &'a Tensor,
    /// In: the tangent of ∂L/∂y.
    pub dy_dot: &'a Tensor,
    /// Scratch for the tangent of ∂L/∂z (unused for the identity).
    pub dz_dot: &'a Tensor,
    /// Out: the tangent of ∂L/∂x, when wanted.
    pub dx_dot: Option<&'a Tensor>,
}

impl Dense {
    fn check_tangent(&self) -> Result<()> {
        match self.activation {
            Activation::Identity | Activation::Relu => Ok(()),
            other => Err(arg_err(
                OP,
                format!("{other:?} has a second derivative; the tangent passes need ReLU or the identity"),
            )),
        }
    }

    /// The forward tangent launches: ż and ẏ. ẋ or ẇ must be given (a layer whose input and
    /// weight hold still is not a tangent pass).
    pub fn tangent_forward(
        &self,
        gpu: &Device,
        w: &Param,
        w_t: &ParamTangent,
        b_t: Option<&ParamTangent>,
        io: &DenseTangentIo<'_>,
    ) -> Result<Vec<Dispatch>> {
        self.check_tangent()?;
        let z_dot = self.pre_activation(io.z_dot, io.y_dot);
        let mut out = Vec::new();
        let mut beta = 0.0;
        let mut product = |a: &Tensor, b: &Tensor, out: &mut Vec<Dispatch>| {
            let opts = GemmOptions {
                alpha: self.scale,
                beta,
                ..GemmOptions::default()
            };
            beta = 1.0;
            gemm(gpu, a, b, None, z_dot, &opts).map(|d| out.push(d))
        };
        if let Some(w_dot) = &w_t.dot {
            product(io.x, w_dot, &mut out)?;
        }
        if let Some(x_dot) = io.x_dot {
            product(x_dot, &w.value, &mut out)?;
        }
        if out.is_empty() {
            return Err(arg_err(OP, "a tangent pass needs ẋ or ẇ"));
        }
        if let Some(b_dot) = b_t.and_then(|b| b.dot.as_ref()) {
            out.push(bias_add(gpu, z_dot, b_dot)?);
        }
        if self.activation != Activation::Identity {
            out.push(activation_backward(
                gpu,
                z_dot,
                io.y,
                io.y_dot,
                self.activation,
            )?);
        }
        Ok(out)
    }

    /// The backward tangent launches: the gradient tangents `w_t` / `b_t` ask for and, with
    /// `io.dx_dot`, the tangent of ∂L/∂x. A shared parameter's gradient tangent is summed over
    /// the items, as its gradient.
    pub fn tangent_backward(
        &self,
        gpu: &Device,
        w: &Param,
        w_t: &ParamTangent,
        b: Option<(&Param, &ParamTangent)>,
        io: &DenseTangentIo<'_>,
    ) -> Result<Vec<Dispatch>> {
        self.check_tangent()?;
        let mut out = Vec::new();
        let dz_dot = if self.activation == Activation::Identity {
            io.dy_dot
        } else {
            out.push(activation_backward(
                gpu,
                io.dy_dot,
                io.y,
                io.dz_dot,
                self.activation,
            )?);
            io.dz_dot
        };
        if let Some(gw) = &w_t.grad_dot {
            // A shared gradient sums over the rows of all items as one matrix (contiguous).
            let rows = |t: &Tensor, out: &mut Vec<Dispatch>| match w.binding {
                Binding::PerItem => Ok(t.clone()),
                Binding::Shared => rows_of_all_items(&contiguous(gpu, t, out)?),
            };
            let opts = GemmOptions {
                trans_a: true,
                alpha: self.scale,
                ..GemmOptions::default()
            };
            let (x, dz_dot) = (rows(io.x, &mut out)?, rows(dz_dot, &mut out)?);
            out.push(gemm(gpu, &x, &dz_dot, None, gw, &opts)?);
            if let Some(x_dot) = io.x_dot {
                let acc = GemmOptions { beta: 1.0, ..opts };
                let (x_dot, dz) = (rows(x_dot, &mut out)?, rows(io.dz, &mut out)?);
                out.push(gemm(gpu, &x_dot, &dz, None, gw, &acc)?);
            }
        }
        if let Some((bp, Some(gb))) = b.map(|(p, t)| (p, t.grad_dot.as_ref())) {
            let rows = match bp.binding {
                Binding::PerItem => dz_dot.clone(),
                Binding::Shared => rows_of_all_items(dz_dot)?,
            };
            out.push(col_sums(gpu, &rows, gb, 1.0, 0.0)?);
        }
        if let Some(dx_dot) = io.dx_dot {
            let opts = GemmOptions {
                trans_b: true,
                alpha: self.scale,
                ..GemmOptions::default()
            };
            out.push(gemm(gpu, dz_dot, &w.value, None, dx_dot, &opts)?);
            if let Some(w_dot) = &w_t.dot {
                let acc = GemmOptions { beta: 1.0, ..opts };
                out.push(gemm(gpu, io.dz, w_dot, None, dx_dot, &acc)?);
            }
        }
        Ok(out)
    }

    /// Where ż goes: the scratch, or straight into ẏ for the identity.
    fn pre_activation<'t>(&self, z_dot: &'t Tensor, y_dot: &'t Tensor) -> &'t Tensor {
        if self.activation == Activation::Identity {
            y_dot
        } else {
            z_dot
        }
    }
}
