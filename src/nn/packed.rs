//! An [`Mlp`] over a batch of independent items (runs, or the modules of runs) whose parameters
//! are all PER ITEM and packed in one `[items × 1 × P]` tensor, so one optimiser launch serves
//! every item, drawn on the device from each item's own seed.
//!
//! Item `i`'s block holds, layer by layer, the `fan_in × fan_out` weight (row-major) then the
//! bias when the layer has one. Every kernel the layers use computes item `i` in an order fixed by
//! the item's shape alone (GEMM tiles from M×N, element-wise ops, batch-invariant column sums),
//! so an item gets the bits it gets in a batch of one.

use crate::gpu::error::{shape_err, Result};
use crate::gpu::{Device, Tensor};
use crate::nn::{LayerParams, Mlp, MlpProgram, Param};
use crate::ops::rng::{
    fill_normal, fill_truncated_normal, fill_uniform, ItemSeeds, Keying, RngDispatch,
};
use crate::ops::Activation;

/// How a layer's weight is drawn (its bias, if any, is always `U(±1/√fan_in)`, PyTorch's rule).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WeightInit {
    /// `gain/√fan_in · TruncatedNormal(±2)` (haiku's default with gain 1).
    TruncatedNormal {
        /// Multiplier of `1/√fan_in`.
        gain: f32,
    },
    /// `N(0, std²)`.
    Normal {
        /// Standard deviation.
        std: f32,
    },
}

/// A batched MLP with per-item parameters packed in one tensor.
pub struct PackedMlp {
    mlp: Mlp,
    params: Tensor,
    grads: Tensor,
    layers: Vec<LayerParams>,
    /// Offset of each layer's weight inside an item's block.
    offsets: Vec<usize>,
}

impl PackedMlp {
    /// Zeroed parameters and gradients for `items` items of `mlp`; `biases[l]` says whether
    /// layer `l` has a bias.
    pub fn new(gpu: &Device, items: usize, mlp: Mlp, biases: &[bool]) -> Result<PackedMlp> {
        if biases.len() != mlp.layers.len() || mlp.layers.is_empty() {
            return Err(shape_err(
                "packed mlp",
                format!(
                    "{} layers need as many bias flags, got {}",
                    mlp.layers.len(),
                    biases.len()
                ),
            ));
        }
        let lens: Vec<usize> = mlp
            .layers
            .iter()
            .zip(biases)
            .map(|(l, &b)| l.fan_in * l.fan_out + if b { l.fan_out } else { 0 })
            .collect();
        let p: usize = lens.iter().sum();
        let params = gpu.zeros(items, 1, p)?;
        let grads = gpu.zeros(items, 1, p)?;
        let (mut layers, mut offsets, mut at) = (Vec::new(), Vec::new(), 0);
        for ((l, &has_bias), len) in mlp.layers.iter().zip(biases).zip(&lens) {
            let (i, o) = (l.fan_in, l.fan_out);
            let bind = |off: usize, rows: usize| -> Result<Param> {
                let view = |t: &Tensor| t.view(off, items, rows, o, p);
                Param::per_item(&view(&params)?, Some(&view(&grads)?))
            };
            layers.push(LayerParams {
                w: bind(at, i)?,
                b: if has_bias {
                    Some(bind(at + i * o, 1)?)
                } else {
                    None
                },
            });
            offsets.push(at);
            at += len;
        }
        Ok(PackedMlp {
            mlp,
            params,
            grads,
            layers,
            offsets,
        })
    }

    /// The MLP `widths` with ReLU between layers, an identity output and biases everywhere.
    pub fn relu(gpu: &Device, items: usize, widths: &[usize]) -> Result<PackedMlp> {
        let mlp = Mlp::new(widths, Activation::Relu, Activation::Identity);
        let biases = vec![true; mlp.layers.len()];
        PackedMlp::new(gpu, items, mlp, &biases)
    }

    /// The layers' shapes.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// `[items × 1 × P]` parameters (item b = run or module b).
    pub fn params(&self) -> &Tensor {
        &self.params
    }

    /// Their gradients, written by the backward of [`PackedMlp::program`].
    pub fn grads(&self) -> &Tensor {
        &self.grads
    }

    /// Each layer's parameter views.
    pub fn layers(&self) -> &[LayerParams] {
        &self.layers
    }

    /// Floats of one item's block.
    pub fn item_len(&self) -> usize {
        self.params.cols()
    }

    /// Offset of layer `l`'s weight inside an item's block.
    pub fn weight_offset(&self, l: usize) -> usize {
        self.offsets[l]
    }

    /// Prepares the initialisation of every item from its own seed: layer `l`'s weight by
    /// `init(l)` with stream `stream0 + 2l`, its bias `U(±1/√fan_in)` with stream
    /// `stream0 + 2l + 1`.
    pub fn init_with(
        &self,
        gpu: &Device,
        seeds: &ItemSeeds,
        stream0: u64,
        init: impl Fn(usize) -> WeightInit,
    ) -> Result<Vec<RngDispatch>> {
        let mut fills = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            let scale = 1.0 / (self.mlp.layers[l].fan_in as f32).sqrt();
            let key = |k: u64| Keying::per_item(seeds, stream0 + 2 * l as u64 + k);
            let w = &layer.w.value;
            fills.push(match init(l) {
                WeightInit::TruncatedNormal { gain } => {
                    fill_truncated_normal(gpu, w, key(0), 0.0, gain * scale)?
                }
                WeightInit::Normal { std } => fill_normal(gpu, w, key(0), 0.0, std)?,
            });
            if let Some(b) = &layer.b {
                fills.push(fill_uniform(gpu, &b.value, key(1), -scale, scale)?);
            }
        }
        Ok(fills)
    }

    /// [`PackedMlp::init_with`] truncated normals of one `gain` for every layer.
    pub fn init(
        &self,
        gpu: &Device,
        seeds: &ItemSeeds,
        stream0: u64,
        gain: f32,
    ) -> Result<Vec<RngDispatch>> {
        self.init_with(gpu, seeds, stream0, |_| WeightInit::TruncatedNormal {
            gain,
        })
    }

    /// The forward `x [items×N×widths[0]]` → `out`, and with `dout` (∂loss/∂out) the backward
    /// into every parameter's gradient (written, not accumulated: nothing to zero between steps).
    pub fn program(
        &self,
        gpu: &Device,
        x: &Tensor,
        out: &Tensor,
        dout: Option<&Tensor>,
    ) -> Result<MlpProgram> {
        self.mlp.program(gpu, &self.layers, x, out, dout)
    }
}
