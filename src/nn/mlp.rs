//! A stack of [`Dense`] layers, batched over items, with the backward down to the lowest layer
//! whose parameters want a gradient.
//!
//! GPU: with a backward, every layer output is kept (the activation derivatives are taken from
//! outputs); a forward-only program ping-pongs two buffers per width instead. Gradient scratch is
//! two buffers per width, so that no launch writes the buffer it reads
//! (∂L/∂y → ∂L/∂z → ∂L/∂x).
//!
//! CPU twin: [`mlp_forward`] / [`mlp_backward`] for one item.

use crate::gpu::error::{shape_err, Result};
use crate::gpu::{Device, Dispatch, Tensor};
use crate::ops::{Activation, Real};

use super::dense::{activation_backward, activation_forward, linear_backward, linear_forward};
use super::dense_tangent::{DenseTangentIo, ParamTangent};
use super::{Dense, DenseBackward, Param};

/// Parameters of one layer of an [`Mlp`].
#[derive(Clone, Debug)]
pub struct LayerParams {
    /// Weight `[fan_in × fan_out]`.
    pub w: Param,
    /// Bias `[1 × fan_out]`, if the layer has one.
    pub b: Option<Param>,
}

impl LayerParams {
    fn wants_grad(&self) -> bool {
        self.w.grad.is_some() || self.b.as_ref().is_some_and(|b| b.grad.is_some())
    }
}

/// Prepared launches of an MLP on fixed tensors.
#[derive(Debug, Default)]
pub struct MlpProgram {
    /// Writes the output from the input and the parameters.
    pub forward: Vec<Dispatch>,
    /// Writes the wanted parameter gradients from ∂L/∂output (valid after `forward`).
    pub backward: Vec<Dispatch>,
    /// Writes the output's tangent (valid after `forward`); empty without tangents.
    pub tangent_forward: Vec<Dispatch>,
    /// Writes the gradient tangents from the tangent of ∂L/∂output (valid after `backward`
    /// and `tangent_forward`); empty without tangents.
    pub tangent_backward: Vec<Dispatch>,
}

/// The directions of one layer's parameters and where their gradient tangents go.
#[derive(Clone, Debug, Default)]
pub struct LayerTangent {
    /// Of the weight.
    pub w: ParamTangent,
    /// Of the bias.
    pub b: ParamTangent,
}

/// The tangent passes of [`Mlp::program_with_tangent`].
#[derive(Clone, Copy, Debug)]
pub struct MlpTangent<'a> {
    /// One per layer.
    pub layers: &'a [LayerTangent],
    /// ẋ, or `None` for data.
    pub x_dot: Option<&'a Tensor>,
    /// Out: the output's tangent `[items × n × out]`.
    pub out_dot: &'a Tensor,
    /// In: the tangent of ∂L/∂out.
    pub dout_dot: &'a Tensor,
    /// Out: the tangent of ∂L/∂x, when wanted (the mixed term of whatever produced x: ANIL's
    /// fixed features); then the backward tangent runs down to the first layer.
    pub dx_dot: Option<&'a Tensor>,
}

/// A multilayer perceptron: its layers in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    /// Layers, input first.
    pub layers: Vec<Dense>,
}

impl Mlp {
    /// Widths `dims` (input first), `hidden` after every layer but the last, `last` after it.
    pub fn new(dims: &[usize], hidden: Activation, last: Activation) -> Mlp {
        let nl = dims.len().saturating_sub(1);
        let layers = (0..nl)
            .map(|l| {
                let act = if l + 1 < nl { hidden } else { last };
                Dense::new(dims[l], dims[l + 1]).with_activation(act)
            })
            .collect();
        Mlp { layers }
    }

    /// Every layer reparametrised (product scaled by 1/√fan_in).
    pub fn reparametrized(self) -> Mlp {
        Mlp {
            layers: self.layers.into_iter().map(Dense::reparametrized).collect(),
        }
    }

    /// Forward `x [items × n × in]` → `out [items × n × out]`; with `dout` (∂L/∂out, contiguous)
    /// also the backward into the parameters' gradients.
    pub fn program(
        &self,
        gpu: &Device,
        params: &[LayerParams],
        x: &Tensor,
        out: &Tensor,
        dout: Option<&Tensor>,
    ) -> Result<MlpProgram> {
        let nl = self.layers.len();
        if nl == 0 || params.len() != nl {
            return Err(shape_err(
                "mlp",
                format!(
                    "{nl} layers need as many parameter sets, got {}",
                    params.len()
                ),
            ));
        }
        let acts = self.activations(gpu, x, out, dout.is_some())?;
        let mut p = MlpProgram {
            forward: self.forward_on(gpu, params, &acts)?,
            ..MlpProgram::default()
        };
        if let Some(dout) = dout {
            p.backward = self.backward(gpu, params, &acts, dout, false)?.0;
        }
        Ok(p)
    }

    /// [`Mlp::program`] with a backward, plus the tangent passes of [`MlpTangent`]: the forward
    /// tangent writes `t.out_dot` from the parameters' directions (and `t.x_dot`); after the
    /// backward and once `t.dout_dot` holds the tangent of ∂L/∂out, the backward tangent writes
    /// the gradient tangents the parameters ask for. Every activation and every ∂L/∂z is kept
    /// (the tangent passes read them), so this costs more memory than the plain program.
    pub fn program_with_tangent(
        &self,
        gpu: &Device,
        params: &[LayerParams],
        x: &Tensor,
        out: &Tensor,
        dout: &Tensor,
        t: &MlpTangent<'_>,
    ) -> Result<MlpProgram> {
        let nl = self.layers.len();
        if nl == 0 || params.len() != nl || t.layers.len() != nl {
            return Err(shape_err(
                "mlp tangent",
                format!(
                    "{nl} layers need as many parameter sets and tangents, got {} and {}",
                    params.len(),
                    t.layers.len()
                ),
            ));
        }
        let acts = self.activations(gpu, x, out, true)?;
        let (backward, dzs) = self.backward(gpu, params, &acts, dout, true)?;
        let mut p = MlpProgram {
            forward: self.forward_on(gpu, params, &acts)?,
            backward,
            ..MlpProgram::default()
        };
        let (items, n) = (x.batch(), x.rows());
        let fresh = |cols: usize| gpu.zeros(items, n, cols);
        // Forward tangent: ȧ[l + 1] from ȧ[l] and layer l's directions (none below the first
        // layer that moves: ANIL's body).
        let mut acts_dot: Vec<Option<Tensor>> = vec![t.x_dot.cloned()];
        for (i, (l, lt)) in self.layers.iter().zip(t.layers).enumerate() {
            if acts_dot[i].is_none() && lt.w.dot.is_none() {
                if lt.b.dot.is_some() || i + 1 == nl {
                    return Err(shape_err(
                        "mlp tangent",
                        format!("layer {i} moves only its bias, or the output does not move"),
                    ));
                }
                acts_dot.push(None);
                continue;
            }
            let y_dot = if i + 1 == nl {
                t.out_dot.clone()
            } else {
                fresh(l.fan_out)?
            };
            let z_dot = fresh(l.fan_out)?;
            let io = DenseTangentIo {
                x: &acts[i],
                x_dot: acts_dot[i].as_ref(),
                y: &acts[i + 1],
                z_dot: &z_dot,
                y_dot: &y_dot,
                dz: &z_dot,
                dy_dot: &z_dot,
                dz_dot: &z_dot,
                dx_dot: None,
            };
            p.tangent_forward.extend(l.tangent_forward(
                gpu,
                &params[i].w,
                &lt.w,
                Some(&lt.b),
                &io,
            )?);
            acts_dot.push(Some(y_dot));
        }
        // Backward tangent, down to the lowest layer that wants a gradient tangent (the mixed
        // term of meta-parameters the inner loop does not train reaches below the backward). A
        // layer below the backward's reach has no kept ∂L/∂z; it needs none when neither its
        // input nor its weight moves.
        let reached = nl - dzs.len();
        let wants = |lt: &LayerTangent| lt.w.grad_dot.is_some() || lt.b.grad_dot.is_some();
        let lowest = match t.dx_dot {
            Some(_) => 0,
            None => t.layers.iter().position(wants).unwrap_or(nl).min(reached),
        };
        let mut dy_dot = t.dout_dot.clone();
        for i in (lowest..nl).rev() {
            let l = &self.layers[i];
            let kept = match i.checked_sub(reached) {
                Some(k) => dzs[k].clone(),
                None if acts_dot[i].is_none() && t.layers[i].w.dot.is_none() => dy_dot.clone(),
                None => {
                    return Err(shape_err(
                        "mlp tangent",
                        format!("layer {i} moves but its gradient is not computed"),
                    ))
                }
            };
            let dz_dot = fresh(l.fan_out)?;
            let dx_dot = if i > lowest {
                Some(fresh(l.fan_in)?)
            } else {
                t.dx_dot.cloned()
            };
            let io = DenseTangentIo {
                x: &acts[i],
                x_dot: acts_dot[i].as_ref(),
                y: &acts[i + 1],
                z_dot: &dz_dot,
                y_dot: &dz_dot,
                dz: &kept,
                dy_dot: &dy_dot,
                dz_dot: &dz_dot,
                dx_dot: dx_dot.as_ref(),
            };
            let lt = &t.layers[i];
            let b = params[i].b.as_ref().map(|b| (b, &lt.b));
            p.tangent_backward
                .extend(l.tangent_backward(gpu, &params[i].w, &lt.w, b, &io)?);
            if let Some(d) = dx_dot {
                dy_dot = d;
            }
        }
        Ok(p)
    }

    /// The forward launches from `acts[l]` into `acts[l + 1]`.
    fn forward_on(
        &self,
        gpu: &Device,
        params: &[LayerParams],
        acts: &[Tensor],
    ) -> Result<Vec<Dispatch>> {
        let layers = self.layers.iter().zip(params).enumerate();
        layers
            .map(|(i, (l, lp))| l.forward(gpu, &acts[i], &lp.w, lp.b.as_ref(), &acts[i + 1]))
            .collect()
    }

    /// `acts[0] = x`, `acts[l + 1]` = output of layer l (the last is `out`).
    fn activations(
        &self,
        gpu: &Device,
        x: &Tensor,
        out: &Tensor,
        keep: bool,
    ) -> Result<Vec<Tensor>> {
        let (items, n) = (x.batch(), x.rows());
        let nl = self.layers.len();
        let mut pool = ScratchPairs::default();
        let mut acts = vec![x.clone()];
        for l in &self.layers[..nl - 1] {
            let a = if keep {
                gpu.zeros(items, n, l.fan_out)?
            } else {
                let prev = acts.last().expect("input");
                pool.pick(gpu, items, n, l.fan_out, prev)?
            };
            acts.push(a);
        }
        acts.push(out.clone());
        Ok(acts)
    }

    fn backward(
        &self,
        gpu: &Device,
        params: &[LayerParams],
        acts: &[Tensor],
        dout: &Tensor,
        keep: bool,
    ) -> Result<(Vec<Dispatch>, Vec<Tensor>)> {
        let Some(lowest) = params.iter().position(LayerParams::wants_grad) else {
            return Ok((Vec::new(), Vec::new()));
        };
        let (items, n) = (acts[0].batch(), acts[0].rows());
        let mut scratch = ScratchPairs::default();
        // `keep`: every ∂L/∂z in a buffer of its own (the tangent passes read them all).
        let mut pick = |cols: usize, avoid: &Tensor| {
            if keep {
                gpu.zeros(items, n, cols)
            } else {
                scratch.pick(gpu, items, n, cols, avoid)
            }
        };
        let mut launches = Vec::new();
        let mut kept = Vec::new();
        let mut dy = dout.clone();
        for i in (lowest..self.layers.len()).rev() {
            let l = &self.layers[i];
            let dz = match l.activation {
                Activation::Identity => dy.clone(),
                _ => pick(l.fan_out, &dy)?,
            };
            let dx = if i > lowest {
                Some(pick(l.fan_in, &dz)?)
            } else {
                None
            };
            let io = DenseBackward {
                x: &acts[i],
                y: &acts[i + 1],
                dy: &dy,
                dz: &dz,
                dx: dx.as_ref(),
            };
            launches.extend(l.backward(gpu, &params[i].w, params[i].b.as_ref(), &io)?);
            kept.push(dz);
            if let Some(dx) = dx {
                dy = dx;
            }
        }
        kept.reverse();
        Ok((launches, kept))
    }
}

/// Two scratch tensors per width, handed out so that the one returned is never `avoid`.
#[derive(Default)]
struct ScratchPairs(Vec<[Tensor; 2]>);

impl ScratchPairs {
    fn pick(
        &mut self,
        gpu: &Device,
        items: usize,
        n: usize,
        cols: usize,
        avoid: &Tensor,
    ) -> Result<Tensor> {
        let i = match self.0.iter().position(|p| p[0].cols() == cols) {
            Some(i) => i,
            None => {
                self.0
                    .push([gpu.zeros(items, n, cols)?, gpu.zeros(items, n, cols)?]);
                self.0.len() - 1
            }
        };
        let pair = &self.0[i];
        Ok(pair[usize::from(pair[0].same_buffer(avoid))].clone())
    }
}

// ---------------------------------------------------------------------------------------------
// CPU twin (one item)
// ---------------------------------------------------------------------------------------------

/// Activations of an MLP forward: `acts[0]` is the input, `acts[l + 1]` the output of layer l.
#[derive(Clone, Debug)]
pub struct MlpCache<T> {
    /// Layer inputs and outputs.
    pub acts: Vec<Vec<T>>,
}

/// An MLP with biases: `dims` are the layer widths (input first), ReLU after every layer except
/// the last unless `relu_last`; `reparam` scales each layer by 1/√fan_in (`ReparametrizedLinear`).
/// `params[l]` = (w `[in, out]`, b).
pub fn mlp_forward<T: Real>(
    dims: &[usize],
    params: &[(&[T], &[T])],
    x: &[T],
    reparam: bool,
    relu_last: bool,
) -> MlpCache<T> {
    let nl = dims.len() - 1;
    assert_eq!(params.len(), nl, "MLP needs one (w, b) per layer");
    let mut acts = vec![x.to_vec()];
    for (l, &(w, b)) in params.iter().enumerate() {
        let (fi, fo) = (dims[l], dims[l + 1]);
        let z = linear_forward(&acts[l], w, Some(b), fi, fo, layer_scale(fi, reparam));
        acts.push(activation_forward(&z, layer_activation(l, nl, relu_last)));
    }
    MlpCache { acts }
}

fn layer_activation(l: usize, nl: usize, relu_last: bool) -> Activation {
    if l + 1 < nl || relu_last {
        Activation::Relu
    } else {
        Activation::Identity
    }
}

fn layer_scale<T: Real>(fan_in: usize, reparam: bool) -> T {
    if reparam {
        T::one() / T::from_f64(fan_in as f64).sqrt()
    } else {
        T::one()
    }
}

/// Per-layer `(dw, db)` of an MLP.
pub type LayerGrads<T> = Vec<(Vec<T>, Vec<T>)>;

/// Backward of [`mlp_forward`] from the gradient of its output: per-layer `(dw, db)` and dL/dx
/// (empty unless `need_dx`).
pub fn mlp_backward<T: Real>(
    dims: &[usize],
    params: &[(&[T], &[T])],
    cache: &MlpCache<T>,
    dout: &[T],
    reparam: bool,
    relu_last: bool,
    need_dx: bool,
) -> (LayerGrads<T>, Vec<T>) {
    let nl = dims.len() - 1;
    let mut grads = vec![(Vec::new(), Vec::new()); nl];
    let mut dy = dout.to_vec();
    for l in (0..nl).rev() {
        let (fi, fo) = (dims[l], dims[l + 1]);
        let act = layer_activation(l, nl, relu_last);
        let dz = activation_backward(&dy, &cache.acts[l + 1], act);
        let g = linear_backward(
            &cache.acts[l],
            params[l].0,
            &dz,
            fi,
            fo,
            layer_scale(fi, reparam),
            l > 0 || need_dx,
        );
        grads[l] = (g.dw, g.db);
        dy = g.dx;
    }
    (grads, if need_dx { dy } else { Vec::new() })
}
