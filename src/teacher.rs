//! The hyperteacher's TEACHER network (Schug et al. 2024, spec §1 and §3.1): an MLP whose hidden
//! layers are generated from the task latent z by a bias-free linear hypernetwork Θ, with fixed
//! input and output layers shared by every task.
//!
//! # Forward pass
//! For one task with latent z (L×M, row-major) and input x (16 values):
//! ```text
//! w    = vec(z)·Θ                      chunking off: Θ is (L·M) × (L·H·H)
//! W_l  = reshape(w[l·H·H..(l+1)·H·H])  [in, out] row-major, l = 0..L
//!   or   W_l = reshape(z_l·Θ_c)        chunking on:  Θ_c is M × H·H, shared by the layers
//! h    = relu(x·W_in / √16)
//! h    = relu(h·W_l / √H)              for l = 0..L
//! out  = h·W_out / √H                  8 logits
//! ```
//! The hypernetwork product itself is not scaled (spec §1.2); only the MLP's layers apply the
//! `1/√fan_in` of haiku's `ReparametrizedLinear`, so every weight is stored at unit scale.
//!
//! # Random keys
//! Every tensor comes from the crate's Philox generator ([`crate::ops::rng`]), so the CPU
//! ([`fill_cpu`]) and the GPU produce the same bits:
//! - `W_in`:  `RngKey { seed, stream: WEIGHT_STREAM_BASE }`, TruncatedNormal(1);
//! - `W_out`: `RngKey { seed, stream: WEIGHT_STREAM_BASE + 1 }`, TruncatedNormal(1);
//! - `Θ`:     `RngKey { seed, stream: WEIGHT_STREAM_BASE + 2 }`, TruncatedNormal(1);
//! - fixed inputs of the target statistics: `RngKey { seed, stream: WEIGHT_STREAM_BASE + 3 }`;
//! - inputs x: `RngKey { seed, stream: step }`, Uniform[−1, 1), with `step < WEIGHT_STREAM_BASE`
//!   chosen by the caller (e.g. a batch counter), so inputs never share a counter with a weight.
//!
//! # Targets
//! [`TeacherTargets`] turns the logits into the soft labels of spec §3.2 (per-task z-scoring of
//! each output unit over 1,000 fixed inputs, then `softmax(z/0.1)`).
//!
//! # Not implemented yet
//! The `num_hidden = 1` variant (where the input layer is generated instead) is rejected by
//! [`TeacherConfig::validate`].
//!
//! This file is one concept, the teacher: its weights, its GPU forward and soft targets, and
//! their CPU twins.

use thiserror::Error;

use crate::gpu::{Device, Dispatch, Step, Tensor};
use crate::nn::{Dense, LayerParams, Mlp, Param};
use crate::ops::rng::{
    fill_cpu, fill_truncated_normal, fill_uniform, Distribution, RngDispatch, RngKey,
};
use crate::ops::softmax::{
    column_stats, column_stats_cpu, standardized_softmax, standardized_softmax_cpu,
};
use crate::ops::{Activation, Real};

/// First of the reserved streams the fixed teacher tensors are drawn from (see the module docs).
/// Input streams (steps) must stay below it.
pub const WEIGHT_STREAM_BASE: u64 = 1 << 63;

/// Most parameters (W_in + W_out + Θ) a teacher may have: bounds the allocation a typo in a
/// dimension could ask for; the paper's largest teacher (M = 16, H = 32, L = 2) has ~66k.
pub const MAX_TEACHER_PARAMS: usize = 1 << 26;

/// Why a teacher could not be built or evaluated.
#[derive(Debug, Error)]
pub enum TeacherError {
    /// A configuration value out of range.
    #[error("invalid teacher config: {field} = {value}: {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// Its value.
        value: usize,
        /// Which bound was violated.
        reason: &'static str,
    },
    /// Host data of the wrong length.
    #[error("teacher shape error: {0}")]
    Shape(String),
    /// An input step in the reserved weight streams.
    #[error("input step {step} must be below WEIGHT_STREAM_BASE = 2^63 (reserved for weights)")]
    ReservedStream {
        /// The rejected step.
        step: u64,
    },
    /// The GPU layer rejected an operation.
    #[error(transparent)]
    Gpu(#[from] crate::gpu::DeviceError),
}

/// Shape and seed of a teacher (spec §1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TeacherConfig {
    /// Input features (16 in the paper).
    pub input_dim: usize,
    /// Width H of every hidden layer (32).
    pub hidden_dim: usize,
    /// Logits (8).
    pub output_dim: usize,
    /// Hidden layers including the input layer (3); L = num_hidden − 1 are generated.
    pub num_hidden: usize,
    /// Modules M per generated layer.
    pub modules: usize,
    /// True: one bank Θ_c (M × H·H) shared by the layers; false: one Θ for all layers.
    pub chunking: bool,
    /// Seed of every teacher tensor (Philox key).
    pub seed: u64,
}

impl TeacherConfig {
    /// The paper's teacher (16 → 32 → 32 → 32 → 8, L = 2) with `modules` modules.
    pub fn paper(modules: usize, chunking: bool, seed: u64) -> TeacherConfig {
        TeacherConfig {
            input_dim: 16,
            hidden_dim: 32,
            output_dim: 8,
            num_hidden: 3,
            modules,
            chunking,
            seed,
        }
    }

    /// Generated layers L = num_hidden − 1.
    pub fn layers(&self) -> usize {
        self.num_hidden.saturating_sub(1)
    }

    /// Entries of one task latent, L·M.
    pub fn latent_len(&self) -> usize {
        self.layers() * self.modules
    }

    /// Entries of one generated weight matrix, H·H.
    pub fn layer_len(&self) -> usize {
        self.hidden_dim * self.hidden_dim
    }

    /// Shape (rows, cols) of Θ: (L·M, L·H·H) without chunking, (M, H·H) with.
    pub fn theta_shape(&self) -> (usize, usize) {
        if self.chunking {
            (self.modules, self.layer_len())
        } else {
            (self.latent_len(), self.layers() * self.layer_len())
        }
    }

    /// Checks every dimension; all other functions of this module call it first.
    pub fn validate(&self) -> Result<(), TeacherError> {
        let bad = |field, value, reason| {
            Err(TeacherError::InvalidConfig {
                field,
                value,
                reason,
            })
        };
        for (field, value) in [
            ("input_dim", self.input_dim),
            ("hidden_dim", self.hidden_dim),
            ("output_dim", self.output_dim),
            ("modules", self.modules),
        ] {
            if value == 0 {
                return bad(field, value, "must be at least 1");
            }
        }
        if self.num_hidden < 2 {
            return bad(
                "num_hidden",
                self.num_hidden,
                "must be at least 2 (the variant generating the input layer is not supported)",
            );
        }
        // Checked products: `theta_shape` would overflow on absurd dimensions.
        let layers = self.layers();
        let hh = self.hidden_dim.checked_mul(self.hidden_dim);
        let theta = if self.chunking {
            hh.and_then(|hh| hh.checked_mul(self.modules))
        } else {
            hh.and_then(|hh| hh.checked_mul(layers))
                .and_then(|x| x.checked_mul(layers))
                .and_then(|x| x.checked_mul(self.modules))
        };
        let params = [
            self.input_dim.checked_mul(self.hidden_dim),
            self.hidden_dim.checked_mul(self.output_dim),
            theta,
        ]
        .iter()
        .try_fold(0usize, |acc, &p| p.and_then(|p| acc.checked_add(p)));
        match params {
            Some(p) if p <= MAX_TEACHER_PARAMS => Ok(()),
            _ => bad(
                "hidden_dim",
                self.hidden_dim,
                "the teacher would exceed MAX_TEACHER_PARAMS parameters",
            ),
        }
    }

    /// Key of W_in.
    pub fn w_in_key(&self) -> RngKey {
        RngKey::new(self.seed, WEIGHT_STREAM_BASE)
    }
    /// Key of W_out.
    pub fn w_out_key(&self) -> RngKey {
        RngKey::new(self.seed, WEIGHT_STREAM_BASE + 1)
    }
    /// Key of Θ.
    pub fn theta_key(&self) -> RngKey {
        RngKey::new(self.seed, WEIGHT_STREAM_BASE + 2)
    }
    /// Key of the fixed inputs of the target statistics (see [`TeacherTargets`]).
    pub fn stats_key(&self) -> RngKey {
        RngKey::new(self.seed, WEIGHT_STREAM_BASE + 3)
    }
    /// Key of the inputs drawn at `step`.
    pub fn input_key(&self, step: u64) -> Result<RngKey, TeacherError> {
        if step >= WEIGHT_STREAM_BASE {
            return Err(TeacherError::ReservedStream { step });
        }
        Ok(RngKey::new(self.seed, step))
    }
}

/// The teacher's fixed tensors on the host, at unit scale, row-major `[in, out]`.
#[derive(Clone, Debug, PartialEq)]
pub struct TeacherWeights {
    /// The configuration they were drawn for.
    pub config: TeacherConfig,
    /// input_dim × hidden_dim.
    pub w_in: Vec<f32>,
    /// hidden_dim × output_dim.
    pub w_out: Vec<f32>,
    /// [`TeacherConfig::theta_shape`].
    pub theta: Vec<f32>,
}

impl TeacherWeights {
    /// Draws the weights on the CPU, bit-identical to [`TeacherWeightsGpu::generate`].
    pub fn generate(config: TeacherConfig) -> Result<TeacherWeights, TeacherError> {
        config.validate()?;
        let tn = |key, len| fill_cpu(Distribution::TruncatedNormal, key, len, 0.0, 1.0);
        let (rows, cols) = config.theta_shape();
        Ok(TeacherWeights {
            config,
            w_in: tn(config.w_in_key(), config.input_dim * config.hidden_dim),
            w_out: tn(config.w_out_key(), config.hidden_dim * config.output_dim),
            theta: tn(config.theta_key(), rows * cols),
        })
    }
}

/// The teacher's fixed tensors on the GPU (batch-1 tensors, shapes as in [`TeacherWeights`]).
#[derive(Debug)]
pub struct TeacherWeightsGpu {
    /// The configuration they were drawn for.
    pub config: TeacherConfig,
    /// 1 × input_dim × hidden_dim.
    pub w_in: Tensor,
    /// 1 × hidden_dim × output_dim.
    pub w_out: Tensor,
    /// 1 × [`TeacherConfig::theta_shape`].
    pub theta: Tensor,
}

impl TeacherWeightsGpu {
    /// Draws the weights on the GPU with the keys of the module docs.
    pub fn generate(
        gpu: &Device,
        config: TeacherConfig,
    ) -> Result<TeacherWeightsGpu, TeacherError> {
        config.validate()?;
        let (rows, cols) = config.theta_shape();
        let w_in = gpu.zeros(1, config.input_dim, config.hidden_dim)?;
        let w_out = gpu.zeros(1, config.hidden_dim, config.output_dim)?;
        let theta = gpu.zeros(1, rows, cols)?;
        let fills = [
            fill_truncated_normal(gpu, &w_in, config.w_in_key(), 0.0, 1.0)?,
            fill_truncated_normal(gpu, &w_out, config.w_out_key(), 0.0, 1.0)?,
            fill_truncated_normal(gpu, &theta, config.theta_key(), 0.0, 1.0)?,
        ];
        let ds: Vec<&Dispatch> = fills.iter().map(RngDispatch::dispatch).collect();
        gpu.run(&ds)?;
        Ok(TeacherWeightsGpu {
            config,
            w_in,
            w_out,
            theta,
        })
    }
}

/// The teacher MLP as an [`Mlp`] (forward only) over tasks: `inputs [tasks × n × in]` (per
/// task, or one broadcast set) through W_in (shared), the generated hidden layers (per task:
/// strided views of `generated`) and W_out (shared) into `logits [tasks × n × out]`. No biases;
/// every layer scaled by 1/√fan_in, rounded from f64 as the CPU twin [`dense`] does.
fn mlp_program(
    gpu: &Device,
    weights: &TeacherWeightsGpu,
    generated: &Tensor,
    inputs: &Tensor,
    logits: &Tensor,
) -> Result<Vec<Dispatch>, TeacherError> {
    let c = weights.config;
    let (hh, h, l) = (c.layer_len(), c.hidden_dim, c.layers());
    let tasks = inputs.batch();
    let mut dims = vec![c.input_dim];
    dims.extend(std::iter::repeat_n(h, l + 1));
    dims.push(c.output_dim);
    let mut mlp = Mlp::new(&dims, Activation::Relu, Activation::Identity);
    for layer in &mut mlp.layers {
        layer.scale = (1.0 / (layer.fan_in as f64).sqrt()) as f32;
    }
    let weight = |w: Param| LayerParams { w, b: None };
    let mut params = vec![weight(Param::shared(&weights.w_in, None, tasks)?)];
    for li in 0..l {
        let wl = generated.view(li * hh, tasks, h, h, l * hh)?;
        params.push(weight(Param::per_item(&wl, None)?));
    }
    params.push(weight(Param::shared(&weights.w_out, None, tasks)?));
    Ok(mlp.program(gpu, &params, inputs, logits, None)?.forward)
}

/// Temperature of the soft targets (spec §3.2).
pub const TARGET_TEMPERATURE: f32 = 0.1;

/// Fixed inputs per task over which each output unit is standardised (spec §3.2).
pub const STATS_INPUTS: usize = 1000;

/// Soft targets of a [`TeacherForward`] (spec §3.2): each task's logits are z-scored per output
/// unit with the mean and (population) std of that task's logits on [`STATS_INPUTS`] fixed inputs
/// (the same inputs for every task, key `(seed, WEIGHT_STREAM_BASE + 3)`), then
/// `y = softmax(z / T)` row-wise with `T = `[`TARGET_TEMPERATURE`].
#[derive(Debug)]
pub struct TeacherTargets {
    targets: Tensor,
    mean: Tensor,
    std: Tensor,
    dispatches: Vec<Dispatch>,
}

impl TeacherTargets {
    /// Prepares the statistics pass and the soft targets of `forward`'s logits. Record it after
    /// [`TeacherForward::record`] in the same step (it reuses the generated weights).
    pub fn new(
        gpu: &Device,
        weights: &TeacherWeightsGpu,
        forward: &TeacherForward,
        stats_inputs: usize,
        temperature: f32,
    ) -> Result<TeacherTargets, TeacherError> {
        let c = weights.config;
        if stats_inputs == 0 {
            return Err(TeacherError::Shape(
                "the statistics need at least one fixed input".into(),
            ));
        }
        let tasks = forward.tasks();
        // The fixed inputs are drawn once, here: they never change during a run.
        let fixed = gpu.zeros(1, stats_inputs, c.input_dim)?;
        gpu.run(&[fill_uniform(gpu, &fixed, c.stats_key(), -1.0, 1.0)?.dispatch()])?;
        let stats_logits = gpu.zeros(tasks, stats_inputs, c.output_dim)?;
        let mut dispatches = mlp_program(
            gpu,
            weights,
            forward.generated(),
            &fixed.broadcast(tasks)?,
            &stats_logits,
        )?;
        let mean = gpu.zeros(tasks, 1, c.output_dim)?;
        let std = gpu.zeros(tasks, 1, c.output_dim)?;
        let targets = gpu.zeros(tasks, forward.inputs_per_task(), c.output_dim)?;
        dispatches.push(column_stats(gpu, &stats_logits, &mean, &std)?);
        dispatches.push(standardized_softmax(
            gpu,
            forward.logits(),
            &mean,
            &std,
            &targets,
            temperature,
        )?);
        Ok(TeacherTargets {
            targets,
            mean,
            std,
            dispatches,
        })
    }

    /// Records the statistics pass and the soft targets.
    pub fn record(&self, step: &mut Step) {
        step.run_all(&self.dispatches);
    }

    /// Soft targets, `tasks × n × output_dim` (rows sum to 1).
    pub fn targets(&self) -> &Tensor {
        &self.targets
    }
    /// Per-task mean of each output unit over the fixed inputs, `tasks × 1 × output_dim`.
    pub fn mean(&self) -> &Tensor {
        &self.mean
    }
    /// Per-task population std of each output unit, `tasks × 1 × output_dim`.
    pub fn std(&self) -> &Tensor {
        &self.std
    }
}

/// CPU twin of [`TeacherTargets`]: the soft targets of inputs `x` (`[tasks × n × input_dim]`).
pub fn teacher_targets_cpu<T: Real>(
    weights: &TeacherWeights,
    latents: &[T],
    x: &[T],
    stats_inputs: usize,
    temperature: T,
) -> Result<Vec<T>, TeacherError> {
    let c = &weights.config;
    let lm = c.latent_len();
    let tasks = latents.len() / lm.max(1);
    let fixed: Vec<T> = fill_cpu(
        Distribution::Uniform,
        c.stats_key(),
        stats_inputs * c.input_dim,
        -1.0,
        1.0,
    )
    .iter()
    .map(|&v| T::from_f64(v as f64))
    .collect();
    let fixed_all: Vec<T> = (0..tasks).flat_map(|_| fixed.iter().copied()).collect();
    let stats_logits = teacher_logits_cpu(weights, latents, &fixed_all)?;
    let logits = teacher_logits_cpu(weights, latents, x)?;
    let out = c.output_dim;
    let (mut mean, mut std) = (vec![T::zero(); tasks * out], vec![T::zero(); tasks * out]);
    column_stats_cpu(
        &stats_logits,
        (tasks, stats_inputs, out),
        &mut mean,
        &mut std,
    );
    let n = logits.len() / (tasks * out).max(1);
    let mut y = vec![T::zero(); logits.len()];
    standardized_softmax_cpu(&logits, (tasks, n, out), &mean, &std, temperature, &mut y);
    Ok(y)
}

/// CPU twin of the inputs [`TeacherForward`] draws at `step`: `tasks × n × input_dim` values
/// uniform in [−1, 1), bit-identical to the GPU.
pub fn teacher_inputs_cpu(
    config: &TeacherConfig,
    step: u64,
    tasks: usize,
    n: usize,
) -> Result<Vec<f32>, TeacherError> {
    config.validate()?;
    let key = config.input_key(step)?;
    Ok(fill_cpu(
        Distribution::Uniform,
        key,
        tasks * n * config.input_dim,
        -1.0,
        1.0,
    ))
}

/// `out[r, j] = act(scale · Σ_k a[r, k]·b[k, j])` for `rows` rows of `a` (row-major, `k` cols).
fn dense<T: Real>(a: &[T], b: &[T], k: usize, n: usize, scale: T, relu: bool) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() / k * n);
    for row in a.chunks(k) {
        for j in 0..n {
            let acc: T = row.iter().enumerate().map(|(i, &v)| v * b[i * n + j]).sum();
            let v = scale * acc;
            out.push(if relu { v.max(T::zero()) } else { v });
        }
    }
    out
}

/// CPU twin of the teacher: the logits `[tasks × n × output_dim]` of inputs `x`
/// (`[tasks × n × input_dim]`) under the latents (`[tasks × L·M]`), as in the module docs.
pub fn teacher_logits_cpu<T: Real>(
    weights: &TeacherWeights,
    latents: &[T],
    x: &[T],
) -> Result<Vec<T>, TeacherError> {
    let c = &weights.config;
    c.validate()?;
    let (lm, hh, h, l) = (c.latent_len(), c.layer_len(), c.hidden_dim, c.layers());
    if !latents.len().is_multiple_of(lm) {
        return Err(TeacherError::Shape(format!(
            "latents hold {} values, not a multiple of L·M = {lm}",
            latents.len()
        )));
    }
    let tasks = latents.len() / lm;
    let per_task = x.len().checked_div(tasks).unwrap_or(0);
    if (tasks == 0 && !x.is_empty())
        || per_task * tasks != x.len()
        || !per_task.is_multiple_of(c.input_dim)
    {
        return Err(TeacherError::Shape(format!(
            "x holds {} values, not tasks ({tasks}) × n × input_dim ({})",
            x.len(),
            c.input_dim
        )));
    }
    let wide = |v: &[f32]| -> Vec<T> { v.iter().map(|&a| T::from_f64(a as f64)).collect() };
    let (w_in, w_out, theta) = (
        wide(&weights.w_in),
        wide(&weights.w_out),
        wide(&weights.theta),
    );
    let inv_sqrt = |f: usize| T::one() / T::from_f64(f as f64).sqrt();
    let mut out = Vec::with_capacity(tasks * (per_task / c.input_dim) * c.output_dim);
    for (z, xt) in latents.chunks(lm).zip(x.chunks(per_task.max(1))) {
        // Generated weights of every layer, [L × H·H].
        let w: Vec<T> = if c.chunking {
            z.chunks(c.modules)
                .flat_map(|zl| dense(zl, &theta, c.modules, hh, T::one(), false))
                .collect()
        } else {
            dense(z, &theta, lm, l * hh, T::one(), false)
        };
        let mut hcur = dense(xt, &w_in, c.input_dim, h, inv_sqrt(c.input_dim), true);
        for wl in w.chunks(hh) {
            hcur = dense(&hcur, wl, h, h, inv_sqrt(h), true);
        }
        out.extend(dense(&hcur, &w_out, h, c.output_dim, inv_sqrt(h), false));
    }
    Ok(out)
}

/// The teacher's forward pass prepared on the GPU for `tasks` tasks of `n` inputs each.
///
/// Write the latents with [`TeacherForward::set_latents`], choose the input stream with
/// [`TeacherForward::set_step`], then record [`TeacherForward::record`] into a step (or call
/// [`TeacherForward::run`]): it draws x, generates every task's hidden weights with one GEMM and
/// runs the MLP as batched GEMMs (W_in and W_out broadcast, W_l as strided views of the
/// generated weights), leaving `[tasks × n × output_dim]` in [`TeacherForward::logits`].
#[derive(Debug)]
pub struct TeacherForward {
    config: TeacherConfig,
    tasks: usize,
    n: usize,
    latents: Tensor,
    inputs: Tensor,
    generated: Tensor,
    logits: Tensor,
    fill: RngDispatch,
    gemms: Vec<Dispatch>,
}

impl TeacherForward {
    /// Allocates the buffers and prepares the launches; the inputs start at step 0.
    pub fn new(
        gpu: &Device,
        weights: &TeacherWeightsGpu,
        tasks: usize,
        n: usize,
    ) -> Result<TeacherForward, TeacherError> {
        let c = weights.config;
        c.validate()?;
        if tasks == 0 || n == 0 {
            return Err(TeacherError::Shape(format!(
                "need at least one task and one input, got {tasks} tasks × {n} inputs"
            )));
        }
        let (lm, hh, l) = (c.latent_len(), c.layer_len(), c.layers());
        let latents = gpu.zeros(tasks, 1, lm)?;
        let inputs = gpu.zeros(tasks, n, c.input_dim)?;
        let generated = gpu.zeros(tasks, 1, l * hh)?;
        let logits = gpu.zeros(tasks, n, c.output_dim)?;
        let fill = fill_uniform(gpu, &inputs, c.input_key(0)?, -1.0, 1.0)?;

        // Both hypernetwork variants are ONE batch-1 GEMM over a row per (task[, layer]): the
        // latents are contiguous, and the product's rows land exactly where the per-task layout
        // [tasks × L·H·H] (layer l at l·H·H) puts them, so no per-task M = 1 GEMMs are needed.
        let (z_rows, z_cols) = if c.chunking {
            (tasks * l, c.modules)
        } else {
            (tasks, lm)
        };
        let (_, theta_cols) = c.theta_shape();
        let z = latents.view(0, 1, z_rows, z_cols, z_rows * z_cols)?;
        let w = generated.view(0, 1, z_rows, theta_cols, z_rows * theta_cols)?;
        // The hypernetwork is a bias-free linear layer with Θ shared by those rows.
        let hypernet = Dense::new(z_cols, theta_cols);
        let theta = Param::shared(&weights.theta, None, 1)?;
        let mut gemms = vec![hypernet.forward(gpu, &z, &theta, None, &w)?];

        gemms.extend(mlp_program(gpu, weights, &generated, &inputs, &logits)?);
        Ok(TeacherForward {
            config: c,
            tasks,
            n,
            latents,
            inputs,
            generated,
            logits,
            fill,
            gemms,
        })
    }

    /// Uploads the latents, `tasks × L·M` values row-major.
    pub fn set_latents(&self, gpu: &Device, z: &[f32]) -> Result<(), TeacherError> {
        let want = self.tasks * self.config.latent_len();
        if z.len() != want {
            return Err(TeacherError::Shape(format!(
                "latents hold {} values, want tasks ({}) × L·M ({}) = {want}",
                z.len(),
                self.tasks,
                self.config.latent_len()
            )));
        }
        gpu.write(&self.latents, z)?;
        Ok(())
    }

    /// Selects the input stream of the next launches (see [`TeacherConfig::input_key`]).
    pub fn set_step(&self, gpu: &Device, step: u64) -> Result<(), TeacherError> {
        self.config.input_key(step)?;
        self.fill.set_stream(gpu, step);
        Ok(())
    }

    /// Records the input draw, the weight generation and the MLP into `step`.
    pub fn record(&self, step: &mut Step) {
        step.run(self.fill.dispatch());
        step.run_all(&self.gemms);
    }

    /// Runs [`TeacherForward::record`] in its own submit and waits.
    pub fn run(&self, gpu: &Device) -> Result<(), TeacherError> {
        let mut s = Step::new(gpu);
        self.record(&mut s);
        s.finish()?;
        Ok(())
    }

    /// Tasks per launch.
    pub fn tasks(&self) -> usize {
        self.tasks
    }
    /// Inputs per task.
    pub fn inputs_per_task(&self) -> usize {
        self.n
    }
    /// Latents, `tasks × 1 × L·M`.
    pub fn latents(&self) -> &Tensor {
        &self.latents
    }
    /// Inputs of the last launch, `tasks × n × input_dim`.
    pub fn inputs(&self) -> &Tensor {
        &self.inputs
    }
    /// Generated hidden weights, `tasks × 1 × L·H·H` (layer l at offset l·H·H, `[in, out]`).
    pub fn generated(&self) -> &Tensor {
        &self.generated
    }
    /// Logits, `tasks × n × output_dim`.
    pub fn logits(&self) -> &Tensor {
        &self.logits
    }
}
