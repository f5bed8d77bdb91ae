//! The MLP of [`super::SupervisedRuns`]: an [`nn::Mlp`](crate::nn::Mlp) (ReLU between layers,
//! identity output) whose parameters are PER ITEM, packed in one `[B×1×P]` tensor so one AdamW
//! serves all runs, and drawn on the GPU from each run's own seed.
//!
//! Every kernel the layers use computes item `b` in an order fixed by the item's shape alone
//! (GEMM tiles from M×N, element-wise ops, batch-invariant column sums), so item `b` of a batch
//! gets the bits a batch-1 model gets.

use crate::error::Result;
use crate::gpu::{Gpu, GpuTensor};
use crate::nn::{LayerParams, Mlp, MlpProgram, Param};
use crate::ops::rng::{fill_truncated_normal, fill_uniform, ItemSeeds, Keying, RngDispatch};
use crate::ops::Activation;

/// A batched MLP with per-item parameters packed in one tensor.
pub(super) struct PackedMlp {
    mlp: Mlp,
    params: GpuTensor,
    grads: GpuTensor,
    layers: Vec<LayerParams>,
}

/// Parameters of a layer `fan_in → fan_out`: the weight then the bias.
fn layer_len(fan_in: usize, fan_out: usize) -> usize {
    fan_in * fan_out + fan_out
}

impl PackedMlp {
    /// Zeroed parameters and gradients for `batch` items of the MLP `widths` (≥ 2 entries).
    pub(super) fn new(gpu: &Gpu, batch: usize, widths: &[usize]) -> Result<PackedMlp> {
        let mlp = Mlp::new(widths, Activation::Relu, Activation::Identity);
        let p: usize = widths.windows(2).map(|w| layer_len(w[0], w[1])).sum();
        let params = gpu.zeros(batch, 1, p)?;
        let grads = gpu.zeros(batch, 1, p)?;
        let mut layers = Vec::new();
        let mut at = 0;
        for l in &mlp.layers {
            let (i, o) = (l.fan_in, l.fan_out);
            let bind = |off: usize, rows: usize| -> Result<Param> {
                let view = |t: &GpuTensor| t.view(off, batch, rows, o, p);
                Param::per_item(&view(&params)?, Some(&view(&grads)?))
            };
            layers.push(LayerParams {
                w: bind(at, i)?,
                b: Some(bind(at + i * o, 1)?),
            });
            at += layer_len(i, o);
        }
        Ok(PackedMlp {
            mlp,
            params,
            grads,
            layers,
        })
    }

    /// `[B×1×P]` parameters (item b = run b), and their gradients.
    pub(super) fn params(&self) -> &GpuTensor {
        &self.params
    }
    pub(super) fn grads(&self) -> &GpuTensor {
        &self.grads
    }

    /// Prepares the initialisation of every item from its own seed: layer `l`'s weight
    /// `~ gain/sqrt(fan_in) · TruncatedNormal` with stream `stream0 + 2l`, its bias uniform in
    /// `±1/sqrt(fan_in)` with stream `stream0 + 2l + 1`.
    pub(super) fn init(
        &self,
        gpu: &Gpu,
        seeds: &ItemSeeds,
        stream0: u64,
        gain: f32,
    ) -> Result<Vec<RngDispatch>> {
        let mut fills = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            let scale = 1.0 / (self.mlp.layers[l].fan_in as f32).sqrt();
            let key = |k: u64| Keying::per_item(seeds, stream0 + 2 * l as u64 + k);
            let w = &layer.w.value;
            fills.push(fill_truncated_normal(gpu, w, key(0), 0.0, gain * scale)?);
            let b = &layer.b.as_ref().expect("every layer has a bias").value;
            fills.push(fill_uniform(gpu, b, key(1), -scale, scale)?);
        }
        Ok(fills)
    }

    /// The forward `x [B×N×widths[0]]` → `out`, and with `dout` (∂loss/∂out) the backward into
    /// every parameter's gradient (written, not accumulated: nothing to zero between steps).
    pub(super) fn program(
        &self,
        gpu: &Gpu,
        x: &GpuTensor,
        out: &GpuTensor,
        dout: Option<&GpuTensor>,
    ) -> Result<MlpProgram> {
        self.mlp.program(gpu, &self.layers, x, out, dout)
    }
}
