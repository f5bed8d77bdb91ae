//! The kernel-based initialisation of the module projections (the paper's Algorithm 1,
//! reconstructed in spec §4.2–§4.5, §9.2), for every module of every run at once.
//!
//! Per module i, from its random start Û_i (columns on the unit sphere), each step draws B
//! training samples, forms the module's features A = φ(XÛ_i) — the outputs of its hidden
//! layers at their INITIAL weights (the kernel of a network linear in its readout, the
//! "penultimate-layer feature kernel" of §4.3) — and takes an Adam step on Û_i down
//!
//!   L(Û_i) = yᵀ(K + εI)⁻¹y,   K = AAᵀ,   ε = ridge · tr(K)/B   (held constant in the gradient),
//!
//! the squared norm of the minimum-norm readout that fits y with this module alone (Eq. 15–17);
//! then Û_i's columns go back to unit norm. With α = (K + εI)⁻¹y, ∂L/∂K = −ααᵀ, so
//! ∂L/∂A = −2·α(αᵀA): two GEMMs, then the hidden layers' backward down to Û_i.
//!
//! Modules are independent (no repulsion): different random starts find different true
//! modules. One submit and one readback (the objective per module) per step.

use super::config::InitTarget;
use super::net::Network;
use crate::error::Result;
use crate::gpu::{Device, Dispatch, Step, Tensor};
use crate::nn::{LayerParams, Mlp, Param};
use crate::ops::adamw::{AdamW, AdamWConfig};
use crate::ops::cholesky::{cholesky_solve, Ridge};
use crate::ops::elementwise::copy;
use crate::ops::embnorm::normalize_columns;
use crate::ops::gemm::{gemm, GemmOptions};
use crate::ops::sine::SineSample;
use crate::train::progress::Progress;

/// The prepared Algorithm 1 for every module of a batch of runs.
pub struct KernelInit {
    /// Draws the step's B samples (its pick stream set per step), one copy per module.
    pub sample: SineSample,
    /// Features, kernel, solve, gradient down to the projections.
    dispatches: Vec<Dispatch>,
    opt: AdamW,
    /// Projections to unit columns: into scratch, then back.
    normalize: [Dispatch; 2],
    /// The objective yᵀ(K + εI)⁻¹y per module `[R·K̂ × 1 × 1]`.
    quad: Tensor,
    /// The packed parameter gradients (∂objective/∂Û in each item's first `m·b̂`), and the
    /// lengths of an item and of its projection.
    grads: (Tensor, usize, usize),
}

/// Relative ridge of the linear fit removed by [`InitTarget::LinearResidual`] (`XᵀX` is m × m
/// and well conditioned for B ≫ m; the ridge only guards a degenerate draw).
pub const RESIDUAL_RIDGE: f32 = 1e-6;

/// One run's settings (a batch shares sizes; learning rates may differ).
#[derive(Clone, Copy, Debug)]
pub struct InitSettings {
    /// Adam learning rate on the projections.
    pub lr: f32,
    /// Relative ridge.
    pub ridge: f32,
}

impl KernelInit {
    /// Prepares the initialisation of `net`'s projections. `x [R·K̂ × B × m]` and
    /// `y [R·K̂ × B × 1]` are what `sample` writes; `runs[r]` are run r's settings (one ridge
    /// for the batch: the first run's).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Device,
        net: &Network,
        sample: SineSample,
        x: &Tensor,
        y: &Tensor,
        runs: &[InitSettings],
        target: InitTarget,
    ) -> Result<KernelInit> {
        let items = net.runs * net.modules;
        let b = x.rows();
        let layers = net.packed.layers();
        let mlp = net.packed.mlp();
        // The module without its readout: projection and hidden layers, only Û trained.
        let hidden = Mlp {
            layers: mlp.layers[..mlp.layers.len() - 1].to_vec(),
        };
        let params: Vec<LayerParams> = layers[..layers.len() - 1]
            .iter()
            .enumerate()
            .map(|(l, p)| {
                let frozen = |q: &Param| Param {
                    grad: None,
                    ..q.clone()
                };
                LayerParams {
                    w: if l == 0 { p.w.clone() } else { frozen(&p.w) },
                    b: p.b.as_ref().map(frozen),
                }
            })
            .collect();
        let width = hidden.layers.last().map_or(net.module_dim, |l| l.fan_out);
        let features = gpu.zeros(items, b, width)?;
        let d_features = gpu.zeros(items, b, width)?;
        let prog = hidden.program(gpu, &params, x, &features, Some(&d_features))?;
        let kernel = gpu.zeros(items, b, b)?;
        let factor = gpu.zeros(items, b, b)?;
        let alpha = gpu.zeros(items, b, 1)?;
        let quad = gpu.zeros(items, 1, 1)?;
        let s = gpu.zeros(items, 1, width)?;
        let mut dispatches = Vec::new();
        // What the objective fits: y, or y − X·β with β = (XᵀX + εI)⁻¹Xᵀy per item.
        let fit_target = match target {
            InitTarget::Target => y.clone(),
            InitTarget::LinearResidual => {
                let m = x.cols();
                let (xtx, xty) = (gpu.zeros(items, m, m)?, gpu.zeros(items, m, 1)?);
                let (chol, beta) = (gpu.zeros(items, m, m)?, gpu.zeros(items, m, 1)?);
                let residual = gpu.zeros(items, b, 1)?;
                let t_a = GemmOptions {
                    trans_a: true,
                    ..GemmOptions::default()
                };
                dispatches.push(gemm(gpu, x, x, None, &xtx, &t_a)?);
                dispatches.push(gemm(gpu, x, y, None, &xty, &t_a)?);
                let fit_ridge = Ridge {
                    abs: 0.0,
                    rel: RESIDUAL_RIDGE,
                };
                dispatches.extend(cholesky_solve(
                    gpu, &xtx, &xty, &chol, &beta, None, fit_ridge,
                )?);
                dispatches.push(copy(gpu, y, &residual)?);
                let subtract = GemmOptions {
                    alpha: -1.0,
                    beta: 1.0,
                    ..GemmOptions::default()
                };
                dispatches.push(gemm(gpu, x, &beta, None, &residual, &subtract)?);
                residual
            }
        };
        dispatches.extend(prog.forward);
        let gram = GemmOptions {
            trans_b: true,
            ..GemmOptions::default()
        };
        dispatches.push(gemm(gpu, &features, &features, None, &kernel, &gram)?);
        let ridge = Ridge {
            abs: 0.0,
            rel: runs.first().map_or(1e-3, |r| r.ridge),
        };
        dispatches.extend(cholesky_solve(
            gpu,
            &kernel,
            &fit_target,
            &factor,
            &alpha,
            Some(&quad),
            ridge,
        )?);
        // ∂L/∂A = −2·α·(αᵀA).
        let alpha_t = GemmOptions {
            trans_a: true,
            ..GemmOptions::default()
        };
        dispatches.push(gemm(gpu, &alpha, &features, None, &s, &alpha_t)?);
        let outer = GemmOptions {
            alpha: -2.0,
            ..GemmOptions::default()
        };
        dispatches.push(gemm(gpu, &alpha, &s, None, &d_features, &outer)?);
        dispatches.extend(prog.backward);
        let proj = &layers[0].w;
        let grad = proj.grad.clone().ok_or_else(|| {
            crate::error::arg_err("kernel init", "the projection has no gradient")
        })?;
        let lr: Vec<f32> = runs
            .iter()
            .flat_map(|r| std::iter::repeat_n(r.lr, net.modules))
            .collect();
        let cfg = AdamWConfig {
            weight_decay: 0.0,
            max_grad_norm: 0.0,
            ..AdamWConfig::default()
        };
        let opt = AdamW::new_per_item(gpu, &proj.value, &grad, cfg, &lr, &vec![0.0; items])?;
        let (m, bh) = (proj.value.rows(), proj.value.cols());
        let unit = gpu.zeros(items, m, bh)?;
        let scales = gpu.zeros(items, 1, bh)?;
        let normalize = [
            normalize_columns(gpu, &proj.value, &unit, &scales)?,
            copy(gpu, &unit, &proj.value)?,
        ];
        Ok(KernelInit {
            sample,
            dispatches,
            opt,
            normalize,
            quad,
            grads: (
                net.packed.grads().clone(),
                net.packed.item_len(),
                net.m * net.module_dim,
            ),
        })
    }

    /// One evaluation of the objective and its gradient on the samples of pick stream `pick`,
    /// without a step: `(objective per module, ∂/∂Û per module)` (for tests).
    pub fn probe(&self, gpu: &Device, pick: u64) -> Result<(Vec<f32>, Vec<f32>)> {
        self.sample.set_stream(gpu, pick);
        let mut s = Step::new(gpu);
        s.run(self.sample.dispatch());
        s.run_all(&self.dispatches);
        let (all, item, proj) = &self.grads;
        let (q, g) = (s.read(&self.quad)?, s.read(all)?);
        let out = s.finish()?;
        let grad = out
            .get(g)
            .chunks(*item)
            .flat_map(|block| block[..*proj].iter().copied())
            .collect();
        Ok((out.get(q).to_vec(), grad))
    }

    /// Runs `steps` steps (step t draws its samples with pick stream `pick(t)`) and returns the
    /// objective of every module at the last step.
    pub fn run(&self, gpu: &Device, steps: usize, pick: impl Fn(usize) -> u64) -> Result<Vec<f32>> {
        gpu.run(&[&self.normalize[0], &self.normalize[1]])?;
        let mut progress = Progress::new(steps, 0);
        let mut last = Vec::new();
        for t in 0..steps {
            self.sample.set_stream(gpu, pick(t));
            let mut s = Step::new(gpu);
            s.run(self.sample.dispatch());
            s.run_all(&self.dispatches);
            self.opt.record_step(&mut s);
            s.run_all(&self.normalize);
            let slot = s.read(&self.quad)?;
            let out = s.finish()?;
            last = out.get(slot).to_vec();
            let finite: Vec<f64> = last
                .iter()
                .filter(|v| v.is_finite())
                .map(|&v| v as f64)
                .collect();
            let mean = finite.iter().sum::<f64>() / finite.len().max(1) as f64;
            progress.step(t + 1, format!("kernel init  yᵀK⁻¹y {mean:.4}"));
        }
        progress.finish();
        Ok(last)
    }
}
