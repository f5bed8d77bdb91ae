//! The MultitaskNet of `run_theory.py` (spec §7.3), teacher and student alike: a two-layer
//! network without biases whose hidden weights a linear hypernetwork generates from the task
//! latent `e` (M entries):
//!
//! ```text
//! W(e) = reshape(e @ H, inputs × hidden)        H: M × (inputs·hidden)
//! y    = relu(x @ W(e) / √inputs) @ W₂           W₂: hidden × outputs, shared by all tasks
//! ```
//!
//! The readout has no 1/√fan_in scale (a haiku `Linear`). The loss is ½·MSE over a task's
//! samples and outputs.
//!
//! This file holds the shape and the CPU twin for one task, generic over [`Real`] so the gradient
//! checks run it in f64; the GPU program built from `nn` layers is in `super::program`.

use crate::nn::{activation_backward, activation_forward, linear_backward, linear_forward};
use crate::ops::{Activation, Real};

/// One MultitaskNet's sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetShape {
    /// Hypernetwork inputs (modules M): the latent's length.
    pub modules: usize,
    /// Input features.
    pub inputs: usize,
    /// Hidden units.
    pub hidden: usize,
    /// Outputs.
    pub outputs: usize,
}

impl NetShape {
    /// Entries of one generated hidden weight matrix (`inputs · hidden`).
    pub fn generated_len(&self) -> usize {
        self.inputs * self.hidden
    }

    /// Entries of the hypernetwork `H` (`modules · inputs · hidden`).
    pub fn hnet_len(&self) -> usize {
        self.modules * self.generated_len()
    }

    /// Entries of the readout `W₂` (`hidden · outputs`).
    pub fn readout_len(&self) -> usize {
        self.hidden * self.outputs
    }

    /// Every parameter, packed as `[H | W₂]`.
    pub fn param_len(&self) -> usize {
        self.hnet_len() + self.readout_len()
    }

    /// The hidden layer's product scale, 1/√inputs (computed in f32 like the GPU's).
    pub fn hidden_scale(&self) -> f32 {
        1.0 / (self.inputs as f32).sqrt()
    }
}

/// What the twin's backward needs from its forward.
#[derive(Clone, Debug)]
pub struct NetCache<T> {
    /// Generated hidden weights `W(e)` (`inputs × hidden`).
    pub w: Vec<T>,
    /// Hidden activations (`n × hidden`).
    pub h: Vec<T>,
    /// Outputs (`n × outputs`).
    pub y: Vec<T>,
}

/// Gradients of a loss w.r.t. the latent and both parameter tensors.
#[derive(Clone, Debug)]
pub struct NetGrads<T> {
    /// ∂L/∂e (`modules`).
    pub de: Vec<T>,
    /// ∂L/∂H (`modules × inputs·hidden`).
    pub dh: Vec<T>,
    /// ∂L/∂W₂ (`hidden × outputs`).
    pub dw2: Vec<T>,
}

/// Forward of one task: `params = [H | W₂]`, latent `e`, inputs `x` (`n × inputs`).
pub fn forward_cpu<T: Real>(s: NetShape, params: &[T], e: &[T], x: &[T]) -> NetCache<T> {
    let (hnet, w2) = params.split_at(s.hnet_len());
    let w = linear_forward(e, hnet, None, s.modules, s.generated_len(), T::one());
    let scale = T::from_f64(s.hidden_scale() as f64);
    let u = linear_forward(x, &w, None, s.inputs, s.hidden, scale);
    let h = activation_forward(&u, Activation::Relu);
    let y = linear_forward(&h, w2, None, s.hidden, s.outputs, T::one());
    NetCache { w, h, y }
}

/// Backward of [`forward_cpu`] from `dy` (`n × outputs`).
pub fn backward_cpu<T: Real>(
    s: NetShape,
    params: &[T],
    e: &[T],
    x: &[T],
    cache: &NetCache<T>,
    dy: &[T],
) -> NetGrads<T> {
    let (hnet, w2) = params.split_at(s.hnet_len());
    let head = linear_backward(&cache.h, w2, dy, s.hidden, s.outputs, T::one(), true);
    let du = activation_backward(&head.dx, &cache.h, Activation::Relu);
    let scale = T::from_f64(s.hidden_scale() as f64);
    let hidden = linear_backward(x, &cache.w, &du, s.inputs, s.hidden, scale, false);
    let gen = linear_backward(
        e,
        hnet,
        &hidden.dw,
        s.modules,
        s.generated_len(),
        T::one(),
        true,
    );
    NetGrads {
        de: gen.dx,
        dh: gen.dw,
        dw2: head.dw,
    }
}

/// ½·mean((pred − target)²) and its gradient w.r.t. `pred`.
pub fn half_mse_cpu<T: Real>(pred: &[T], target: &[T]) -> (T, Vec<T>) {
    let n = T::from_f64(pred.len() as f64);
    let diff: Vec<T> = pred.iter().zip(target).map(|(&p, &t)| p - t).collect();
    let loss = diff.iter().map(|&d| d * d).sum::<T>() / (T::from_f64(2.0) * n);
    (loss, diff.into_iter().map(|d| d / n).collect())
}
