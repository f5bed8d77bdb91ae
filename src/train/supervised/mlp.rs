//! The dense layers of [`super::SupervisedRuns`]: a batched MLP (ReLU between layers, identity
//! output) whose parameters are per item, packed in one `[B×1×P]` tensor so one AdamW serves all
//! runs. Kept in this one private file so it can be swapped for `nn::Dense` later.
//!
//! Every kernel used here computes item `b` in an order fixed by the item's shape alone (GEMM
//! tiles from M×N, element-wise ops, [`col_sums`]), so item `b` of a batch gets the
//! bits a batch-1 model gets.

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuTensor};
use crate::ops::elementwise::activation_backward;
use crate::ops::gemm::{gemm, GemmOptions};
use crate::ops::reduce::col_sums;
use crate::ops::rng::{fill_truncated_normal, fill_uniform, ItemSeeds, Keying, RngDispatch};
use crate::ops::Activation;

/// One layer's views into the packed parameters and gradients.
struct Layer {
    w: GpuTensor,
    b: GpuTensor,
    dw: GpuTensor,
    db: GpuTensor,
}

/// A batched MLP with per-item parameters.
pub(super) struct Mlp {
    widths: Vec<usize>,
    params: GpuTensor,
    grads: GpuTensor,
    layers: Vec<Layer>,
}

/// The prepared forward pass over one input tensor: activations `h_1..h_L` (`h_L` the output).
pub(super) struct Forward {
    acts: Vec<GpuTensor>,
    pub(super) dispatches: Vec<Dispatch>,
}

impl Forward {
    /// The output `[B×N×widths.last()]`.
    pub(super) fn output(&self) -> &GpuTensor {
        self.acts.last().expect("an MLP has at least one layer")
    }
}

/// Parameters of a layer `fan_in → fan_out`: the weight then the bias.
fn layer_len(fan_in: usize, fan_out: usize) -> usize {
    fan_in * fan_out + fan_out
}

impl Mlp {
    /// Zeroed parameters and gradients for `batch` items of the MLP `widths` (≥ 2 entries).
    pub(super) fn new(gpu: &Gpu, batch: usize, widths: &[usize]) -> Result<Mlp> {
        let p: usize = widths.windows(2).map(|w| layer_len(w[0], w[1])).sum();
        let params = gpu.zeros(batch, 1, p)?;
        let grads = gpu.zeros(batch, 1, p)?;
        let mut layers = Vec::new();
        let mut at = 0;
        for w in widths.windows(2) {
            let (i, o) = (w[0], w[1]);
            let view = |t: &GpuTensor, off: usize, r: usize| t.view(off, batch, r, o, p);
            layers.push(Layer {
                w: view(&params, at, i)?,
                b: view(&params, at + i * o, 1)?,
                dw: view(&grads, at, i)?,
                db: view(&grads, at + i * o, 1)?,
            });
            at += layer_len(i, o);
        }
        Ok(Mlp {
            widths: widths.to_vec(),
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
            let scale = 1.0 / (layer.w.rows() as f32).sqrt();
            let key = |k: u64| Keying::per_item(seeds, stream0 + 2 * l as u64 + k);
            fills.push(fill_truncated_normal(
                gpu,
                &layer.w,
                key(0),
                0.0,
                gain * scale,
            )?);
            fills.push(fill_uniform(gpu, &layer.b, key(1), -scale, scale)?);
        }
        Ok(fills)
    }

    /// Prepares `h_l = act(h_{l−1}·W_l + b_l)` from `x [B×N×widths[0]]`.
    pub(super) fn forward(&self, gpu: &Gpu, x: &GpuTensor) -> Result<Forward> {
        let (batch, n) = (x.batch(), x.rows());
        let last = self.layers.len() - 1;
        let (mut acts, mut dispatches) = (Vec::<GpuTensor>::new(), Vec::new());
        for (l, layer) in self.layers.iter().enumerate() {
            let h = gpu.zeros(batch, n, self.widths[l + 1])?;
            let input = if l == 0 { x } else { &acts[l - 1] };
            let opts = GemmOptions {
                activation: if l == last {
                    Activation::Identity
                } else {
                    Activation::Relu
                },
                ..Default::default()
            };
            dispatches.push(gemm(gpu, input, &layer.w, Some(&layer.b), &h, &opts)?);
            acts.push(h);
        }
        Ok(Forward { acts, dispatches })
    }

    /// Prepares the backward pass of `fwd` (run on `x`) from `dout = dLoss/dOutput`: writes every
    /// gradient (no accumulation, so nothing needs zeroing between steps).
    pub(super) fn backward(
        &self,
        gpu: &Gpu,
        x: &GpuTensor,
        fwd: &Forward,
        dout: &GpuTensor,
    ) -> Result<Vec<Dispatch>> {
        let mut out = Vec::new();
        let mut dz = dout.clone();
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let input = if l == 0 { x } else { &fwd.acts[l - 1] };
            let ta = GemmOptions {
                trans_a: true,
                ..Default::default()
            };
            out.push(gemm(gpu, input, &dz, None, &layer.dw, &ta)?);
            out.push(col_sums(gpu, &dz, &layer.db, 1.0, 0.0)?);
            if l == 0 {
                break;
            }
            // dh_{l−1} = dz_l · W_lᵀ, then through the ReLU of h_{l−1}.
            let dh = gpu.zeros(input.batch(), input.rows(), input.cols())?;
            let tb = GemmOptions {
                trans_b: true,
                ..Default::default()
            };
            out.push(gemm(gpu, &dz, &layer.w, None, &dh, &tb)?);
            let dz_prev = gpu.zeros(input.batch(), input.rows(), input.cols())?;
            out.push(activation_backward(
                gpu,
                &dh,
                input,
                &dz_prev,
                Activation::Relu,
            )?);
            dz = dz_prev;
        }
        Ok(out)
    }
}
