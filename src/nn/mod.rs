//! Layers, each written once: its shape, how its parameters bind to the batch ([`Param`]), the
//! GPU forward and backward (VJP) launches, and a CPU twin generic over [`crate::ops::Real`]
//! (f64 for finite-difference checks) beside them. Models ([`crate::models`]) and the teacher
//! ([`crate::tasks::teacher`]) are compositions of these layers; none writes a GEMM by hand.
//!
//! | layer | GPU | CPU twin |
//! |---|---|---|
//! | [`Dense`] `act(scale·x@w + b)` | one GEMM forward; dW, db, dx | [`linear_forward`], [`linear_backward`] |
//! | [`Mlp`] stack of `Dense` | forward, backward to the lowest trained layer | [`mlp_forward`], [`mlp_backward`] |
//! | [`LayerNorm`] | forward with kept stats; dx, dγ, dβ | [`layernorm_forward`], [`layernorm_backward`] |
//! | [`EmbeddingNorm`] `ê = e·sg(√T/‖e‖)` | slot-major ê for banked GEMMs | [`embedding_norm_forward`] |
//! | linear bank `gen = ê @ B` | `Dense::new(T, chunk)` over the slot's rows of all items, `B` shared | `linear_forward` |
//! | [`DeepBank`] LN, (Dense, LN, ELU)×L, head | over the rows of all items as one matrix | [`DeepBank::forward_cpu`] |
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
mod embnorm;
mod layernorm;
mod mlp;
mod param;

pub use deep_bank::{DeepBank, DeepBankCache, DeepBankProgram, ParamFn};
pub use dense::{
    activation_backward, activation_forward, col_sums_cpu, linear_backward, linear_forward, matmul,
    Dense, DenseBackward, LinearGrads,
};
pub use embnorm::{
    embedding_norm_backward, embedding_norm_forward, embedding_scales, EmbeddingNorm,
};
pub use layernorm::{layernorm_backward, layernorm_forward, LayerNorm, LnCache, LnStats, LN_EPS};
pub use mlp::{mlp_backward, mlp_forward, LayerGrads, LayerParams, Mlp, MlpCache, MlpProgram};
pub use param::{Binding, Param};
