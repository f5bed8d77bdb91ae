//! The two networks of the sine experiment on the batch axis of R independent runs (§9.2):
//!
//! - monolithic: a ReLU MLP `m → hidden… → 1`, one item per run;
//! - modular: K̂ modules per run, module `i` the MLP `m → b̂ (Û_i, linear, no bias) → hidden… → 1`
//!   on its own copy of x, one item per (run, module) — run r's modules are items
//!   `r·K̂ .. (r + 1)·K̂` — and `ŷ_r = (1/√K̂)·Σ_i out_ri`: one GEMM with a ones row, and its
//!   backward one GEMM with a ones column.
//!
//! Every parameter is per item, packed in one tensor ([`PackedMlp`]); a run's parameters (all
//! its modules) are one contiguous block, so one AdamW item per run sees exactly the run's
//! parameters. Module `i` of run `r` initialises from its own seed, derived from the run's.

use super::config::{Method, SineConfig};
use crate::error::Result;
use crate::gpu::{Device, Dispatch, Tensor};
use crate::nn::{Dense, Mlp, PackedMlp, WeightInit};
use crate::ops::gemm::{gemm, GemmOptions};
use crate::ops::rng::{philox4x32_10, ItemSeeds, RngDispatch};
use crate::ops::Activation;

/// Streams of the network initialisation (layer `l` uses `INIT + 2l`, `INIT + 2l + 1`).
const INIT_STREAM: u64 = 0x52_0000_0000_0000;
/// Stream that derives module seeds from run seeds.
const MODULE_SEED_STREAM: u64 = 0x53_0000_0000_0000;

/// The seed of module `i` of the run with seed `seed` (Philox of `(i, stream)` under the run's
/// key): independent per module, the same wherever the run sits in a batch.
pub fn module_seed(seed: u64, i: usize) -> u64 {
    let s = MODULE_SEED_STREAM;
    let w = philox4x32_10(
        [i as u32, 0, s as u32, (s >> 32) as u32],
        [seed as u32, (seed >> 32) as u32],
    );
    u64::from(w[1]) << 32 | u64::from(w[0])
}

/// The network of R runs.
pub struct Network {
    /// The layers, one item per run (monolithic) or per (run, module).
    pub packed: PackedMlp,
    /// Runs R.
    pub runs: usize,
    /// Modules per run K̂ (1 for the monolithic network).
    pub modules: usize,
    /// Module projection width b̂ (0 for the monolithic network).
    pub module_dim: usize,
    /// Input dimension m.
    pub m: usize,
    /// `[1 × 1 × K̂]` ones (the module sum) and `[1 × K̂ × 1]` ones (its backward); modular only.
    ones: Option<(Tensor, Tensor)>,
}

/// A network's prepared launches on fixed tensors.
#[derive(Default)]
pub struct NetProgram {
    /// x → ŷ.
    pub forward: Vec<Dispatch>,
    /// ∂L/∂ŷ → every parameter's gradient.
    pub backward: Vec<Dispatch>,
}

impl Network {
    /// The network of `cfg` for `runs` runs, parameters zero until [`Network::init`].
    pub fn new(gpu: &Device, cfg: &SineConfig, runs: usize) -> Result<Network> {
        let m = cfg.task.m;
        if cfg.model.method == Method::Monolithic {
            let widths: Vec<usize> = std::iter::once(m)
                .chain(cfg.model.hidden.iter().copied())
                .chain(std::iter::once(1))
                .collect();
            return Ok(Network {
                packed: PackedMlp::relu(gpu, runs, &widths)?,
                runs,
                modules: 1,
                module_dim: 0,
                m,
                ones: None,
            });
        }
        let (k, b) = (cfg.net_modules(), cfg.net_module_dim());
        let mut layers = vec![Dense::new(m, b)];
        let body: Vec<usize> = std::iter::once(b)
            .chain(cfg.model.module_hidden.iter().copied())
            .chain(std::iter::once(1))
            .collect();
        layers.extend(Mlp::new(&body, Activation::Relu, Activation::Identity).layers);
        let mut biases = vec![true; layers.len()];
        biases[0] = false;
        let packed = PackedMlp::new(gpu, runs * k, Mlp { layers }, &biases)?;
        let ones = (
            gpu.upload(&vec![1.0; k], 1, 1, k)?,
            gpu.upload(&vec![1.0; k], 1, k, 1)?,
        );
        Ok(Network {
            packed,
            runs,
            modules: k,
            module_dim: b,
            m,
            ones: Some(ones),
        })
    }

    /// Whether the network is modular.
    pub fn modular(&self) -> bool {
        self.ones.is_some()
    }

    /// Copies of x the network reads per run (one per module).
    pub fn x_copies(&self) -> usize {
        self.modules
    }

    /// The initialisation of every item from the runs' `seeds`: weights haiku's
    /// `TruncatedNormal(1/√fan_in)`, biases `U(±1/√fan_in)`; a module's projection
    /// `N(0, 1/m)` (§9.2's random initialisation). Returns the launches and the item seeds
    /// they bind (keep both alive together).
    pub fn init(&self, gpu: &Device, seeds: &[u64]) -> Result<(Vec<RngDispatch>, ItemSeeds)> {
        let item_seeds: Vec<u64> = if self.modular() {
            seeds
                .iter()
                .flat_map(|&s| (0..self.modules).map(move |i| module_seed(s, i)))
                .collect()
        } else {
            seeds.to_vec()
        };
        let item_seeds = ItemSeeds::upload(gpu, &item_seeds)?;
        let projection_std = 1.0 / (self.m as f32).sqrt();
        let modular = self.modular();
        let fills = self.packed.init_with(gpu, &item_seeds, INIT_STREAM, |l| {
            if modular && l == 0 {
                WeightInit::Normal {
                    std: projection_std,
                }
            } else {
                WeightInit::TruncatedNormal { gain: 1.0 }
            }
        })?;
        Ok((fills, item_seeds))
    }

    /// Floats of one run's parameters (all its modules).
    pub fn run_len(&self) -> usize {
        self.modules * self.packed.item_len()
    }

    /// The parameters as `[R × 1 × run_len]` (one optimiser item per run), and their gradients.
    pub fn run_views(&self) -> Result<(Tensor, Tensor)> {
        let len = self.run_len();
        let view = |t: &Tensor| t.view(0, self.runs, 1, len, len);
        Ok((view(self.packed.params())?, view(self.packed.grads())?))
    }

    /// Module projections `Û` as `[R·K̂ × m × b̂]` (a strided view of the packed parameters).
    pub fn projections(&self) -> Result<Tensor> {
        let w = &self.packed.layers()[0].w;
        Ok(w.value.clone())
    }

    /// The forward `x [R·K̂ × N × m]` → `ŷ [R × N × 1]` (scratch allocated here), and with
    /// `dy` (∂L/∂ŷ, `[R × N × 1]`) the backward.
    pub fn program(
        &self,
        gpu: &Device,
        x: &Tensor,
        y_hat: &Tensor,
        dy: Option<&Tensor>,
    ) -> Result<NetProgram> {
        let Some((ones_row, ones_col)) = &self.ones else {
            let p = self.packed.program(gpu, x, y_hat, dy)?;
            return Ok(NetProgram {
                forward: p.forward,
                backward: p.backward,
            });
        };
        let (r, k, n) = (self.runs, self.modules, x.rows());
        let out = gpu.zeros(r * k, n, 1)?;
        let dout = match dy {
            Some(_) => Some(gpu.zeros(r * k, n, 1)?),
            None => None,
        };
        let p = self.packed.program(gpu, x, &out, dout.as_ref())?;
        let scale = GemmOptions {
            alpha: 1.0 / (k as f32).sqrt(),
            ..GemmOptions::default()
        };
        // Run r's module outputs are the rows of a [K̂ × N] matrix.
        let per_run = |t: &Tensor| t.view(0, r, k, n, k * n);
        let as_row = |t: &Tensor| t.view(t.offset(), r, 1, n, n);
        let mut forward = p.forward;
        forward.push(gemm(
            gpu,
            &ones_row.broadcast(r)?,
            &per_run(&out)?,
            None,
            &as_row(y_hat)?,
            &scale,
        )?);
        let mut backward = Vec::new();
        if let (Some(dy), Some(dout)) = (dy, &dout) {
            backward.push(gemm(
                gpu,
                &ones_col.broadcast(r)?,
                &as_row(dy)?,
                None,
                &per_run(dout)?,
                &scale,
            )?);
            backward.extend(p.backward);
        }
        Ok(NetProgram { forward, backward })
    }
}
