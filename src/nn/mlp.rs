//! A stack of [`Dense`] layers, batched over items, with the backward down to the lowest layer
//! whose parameters want a gradient.
//!
//! GPU: with a backward, every layer output is kept (the activation derivatives are taken from
//! outputs); a forward-only program ping-pongs two buffers per width instead. Gradient scratch is
//! two buffers per width, so that no launch writes the buffer it reads
//! (∂L/∂y → ∂L/∂z → ∂L/∂x).
//!
//! CPU twin: [`mlp_forward`] / [`mlp_backward`] for one item.

use crate::error::{shape_err, Result};
use crate::gpu::{Dispatch, Gpu, GpuTensor};
use crate::ops::{Activation, Real};

use super::dense::{activation_backward, activation_forward, linear_backward, linear_forward};
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
        gpu: &Gpu,
        params: &[LayerParams],
        x: &GpuTensor,
        out: &GpuTensor,
        dout: Option<&GpuTensor>,
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
        let mut p = MlpProgram::default();
        for (i, (l, lp)) in self.layers.iter().zip(params).enumerate() {
            p.forward
                .push(l.forward(gpu, &acts[i], &lp.w, lp.b.as_ref(), &acts[i + 1])?);
        }
        if let Some(dout) = dout {
            p.backward = self.backward(gpu, params, &acts, dout)?;
        }
        Ok(p)
    }

    /// `acts[0] = x`, `acts[l + 1]` = output of layer l (the last is `out`).
    fn activations(
        &self,
        gpu: &Gpu,
        x: &GpuTensor,
        out: &GpuTensor,
        keep: bool,
    ) -> Result<Vec<GpuTensor>> {
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
        gpu: &Gpu,
        params: &[LayerParams],
        acts: &[GpuTensor],
        dout: &GpuTensor,
    ) -> Result<Vec<Dispatch>> {
        let Some(lowest) = params.iter().position(LayerParams::wants_grad) else {
            return Ok(Vec::new());
        };
        let (items, n) = (acts[0].batch(), acts[0].rows());
        let mut scratch = ScratchPairs::default();
        let mut launches = Vec::new();
        let mut dy = dout.clone();
        for i in (lowest..self.layers.len()).rev() {
            let l = &self.layers[i];
            let dz = match l.activation {
                Activation::Identity => dy.clone(),
                _ => scratch.pick(gpu, items, n, l.fan_out, &dy)?,
            };
            let dx = if i > lowest {
                Some(scratch.pick(gpu, items, n, l.fan_in, &dz)?)
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
            if let Some(dx) = dx {
                dy = dx;
            }
        }
        Ok(launches)
    }
}

/// Two scratch tensors per width, handed out so that the one returned is never `avoid`.
#[derive(Default)]
struct ScratchPairs(Vec<[GpuTensor; 2]>);

impl ScratchPairs {
    fn pick(
        &mut self,
        gpu: &Gpu,
        items: usize,
        n: usize,
        cols: usize,
        avoid: &GpuTensor,
    ) -> Result<GpuTensor> {
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
