//! Module decoding at the final state (spec §3.3): a ridge decoder from the adapted task
//! parameters to the teacher's task latents, fitted on in-distribution (`test`) tasks and
//! scored on OOD tasks; R² per (layer, module) and its mean, a `summary.json` field.

use serde::{Deserialize, Serialize};

use crate::metrics::r2::decoder_r2;

/// Module decoding is skipped above this many task parameters (MAML adapts 305k: a 1,024-task
/// design matrix would not fit the host's memory, and the reference's CG fit is meaningless there).
pub const MAX_DECODER_DIM: usize = 16_384;

/// Module-decoding R² per (layer, module) and its mean.
#[derive(Debug, Serialize, Deserialize)]
pub struct DecoderR2 {
    /// Mean over the coordinates with a defined R².
    pub mean: f64,
    /// `per_module[l][m]`.
    pub per_module: Vec<Vec<Option<f64>>>,
}

/// One side of the fit: every task's adapted parameters and its latent.
pub(crate) struct Adapted<'a> {
    pub params: &'a [f32],
    pub latents: &'a [f32],
}

/// R² of decoding `ood`'s latents with the decoder fitted on `fit` (`dim` task parameters,
/// `latent_len` = L·M coordinates, `modules` = M per layer).
pub(crate) fn decode(
    fit: Adapted<'_>,
    ood: Adapted<'_>,
    dim: usize,
    latent_len: usize,
    modules: usize,
) -> DecoderR2 {
    let r2 = decoder_r2(
        fit.params,
        fit.latents,
        ood.params,
        ood.latents,
        dim,
        latent_len,
    );
    let defined: Vec<f64> = r2.iter().flatten().copied().collect();
    DecoderR2 {
        mean: defined.iter().sum::<f64>() / defined.len().max(1) as f64,
        per_module: r2.chunks(modules).map(<[Option<f64>]>::to_vec).collect(),
    }
}
