//! Layers, each written once: its shape, how its parameters bind to the batch ([`Param`]), the
//! GPU forward and backward (VJP) launches, and a CPU twin generic over [`crate::ops::Real`]
//! (f64 for finite-difference checks) beside them. Models ([`crate::students`]) and the teacher
//! ([`crate::teacher`]) are compositions of these layers; none writes a GEMM by hand.
//!
//! | layer | GPU | CPU twin |
//! |---|---|---|
//! | [`Dense`] `act(scale·x@w + b)` | one GEMM forward; dW, db, dx | [`linear_forward`], [`linear_backward`] |
//! | [`Mlp`] stack of `Dense` | forward, backward to the lowest trained layer | [`mlp_forward`], [`mlp_backward`] |
//! | [`PackedMlp`] an `Mlp` per item, parameters packed `[items × 1 × P]` | init from per-item seeds | (the `Mlp` twin) |
//! | [`LayerNorm`] | forward with kept stats; dx, dγ, dβ | [`layernorm_forward`], [`layernorm_backward`] |
//! | [`EmbeddingNorm`] `ê = e·sg(√T/‖e‖)` | slot-major ê for banked GEMMs | [`embedding_norm_forward`] |
//! | linear bank `gen = ê @ B` | `Dense::new(T, chunk)` over the slot's rows of all items, `B` shared | `linear_forward` |
//! | [`DeepBank`] LN, (Dense, LN, ELU)×L, head | over the rows of all items as one matrix | [`DeepBank::forward_cpu`] |
//!
//! ```no_run
//! use hypermod::gpu::{Device, Step};
//! use hypermod::nn::{Dense, DenseBackward, Param};
//! use hypermod::ops::Activation;
//!
//! # fn main() -> hypermod::Result<()> {
//! let gpu = Device::new()?;
//! // 8 items of 5 samples through ONE shared 3→2 ReLU layer; its gradient is summed over items.
//! let x = gpu.upload(&[0.5; 8 * 5 * 3], 8, 5, 3)?;
//! let (w, dw) = (gpu.upload(&[0.1; 3 * 2], 1, 3, 2)?, gpu.zeros(1, 3, 2)?);
//! let w = Param::shared(&w, Some(&dw), 8)?;
//! let layer = Dense::new(3, 2).with_activation(Activation::Relu);
//! let (y, dy, dz) = (gpu.zeros(8, 5, 2)?, gpu.upload(&[1.0; 8 * 5 * 2], 8, 5, 2)?, gpu.zeros(8, 5, 2)?);
//! let forward = layer.forward(&gpu, &x, &w, None, &y)?;
//! let io = DenseBackward { x: &x, y: &y, dy: &dy, dz: &dz, dx: None };
//! let backward = layer.backward(&gpu, &w, None, &io)?;
//! let mut step = Step::new(&gpu);
//! step.run(&forward);
//! step.run_all(&backward);
//! let slot = step.read(&dw)?;
//! let out = step.finish()?;
//! assert_eq!(out.get(slot)[0], 8.0 * 5.0 * 0.5); // Σ over 40 rows of x·dz
//! # Ok(())
//! # }
//! ```
//!
//! # Adding a layer
//! 1. A plain struct with the layer's shape, a `forward(gpu, x, params…, y) -> Dispatch(es)` and a
//!    `backward(gpu, params…, kept tensors, dy, dx) -> Vec<Dispatch>` that writes the gradients
//!    the [`Param`]s ask for (`grad: Some`), honouring their [`Binding`] (a shared gradient is a
//!    sum over items).
//! 2. Its CPU twin for one item, generic over `Real`, in the same file.
//! 3. A test comparing GPU and twin on random shapes, and a finite-difference check of the
//!    twin's backward in f64 (see `tests/nn_layers.rs`).
//! 4. Leave room for the tangent (JVP) pass beside the backward: it reads the same kept tensors.

mod deep_bank;
mod dense;
mod dense_tangent;
mod embnorm;
mod layernorm;
mod mlp;
mod packed;
mod param;

pub use deep_bank::{
    DeepBank, DeepBankCache, DeepBankProgram, DeepBankTangent, GradDotFn, ParamFn,
};
pub use dense::{
    activation_backward, activation_forward, col_sums_cpu, linear_backward, linear_forward, matmul,
    Dense, DenseBackward, LinearGrads,
};
pub use dense_tangent::{DenseTangentIo, ParamTangent};
pub use embnorm::{
    embedding_norm_backward, embedding_norm_forward, embedding_scales, EmbeddingNorm,
};
pub use layernorm::{
    layernorm_backward, layernorm_forward, LayerNorm, LnCache, LnStats, LnTangentIo, LN_EPS,
};
pub use mlp::{
    mlp_backward, mlp_forward, LayerGrads, LayerParams, LayerTangent, Mlp, MlpCache, MlpProgram,
    MlpTangent,
};
pub use packed::{PackedMlp, WeightInit};
pub use param::{Binding, Param};
