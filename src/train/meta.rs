//! Meta-learning on the GPU (Schug et al. spec §5): every task of a meta-batch is adapted in
//! parallel by an inner AdamW loop on its support set (fresh optimiser state per task), then the
//! query loss at the adapted parameters gives the meta-gradient: second order through the
//! unrolled inner loop (`ReversePass`, the paper's algorithm) or first order (metax
//! `first_order = True`: d(adapted)/d(initial) = (1 − lr·wd)^S for the meta-learned initial
//! values). A student with [`crate::students::gpu::FixedFeatures`] (ANIL) adapts on its support
//! set's features, computed once per episode. One command encoder per outer step; the host
//! reads back only the losses and accuracies.

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use std::path::Path;

use crate::checkpoint::{Checkpoint, TensorState};
use crate::error::{arg_err, Result};
use crate::gpu::{Device, Dispatch, Step, Tensor};
use crate::ops::adamw::{AdamW, AdamWConfig};
use crate::ops::elementwise::{copy, fill};
use crate::ops::rng::{fill_truncated_normal, fill_uniform, RngKey};
use crate::students::gpu::{GpuStudent, StudentBuffers};
use crate::students::{Init, ParamLayout, ParamSpec};
use crate::train::episode_twin::MetaGradient;
use crate::train::task_source::TaskSource;

mod episode;
mod init_grads;
mod reverse;

use episode::Episode;

/// Inner-loop and outer-loop settings of a [`MetaLearner`].
#[derive(Clone, Copy, Debug)]
pub struct MetaConfig {
    /// Run seed (parameter initialisation; the teacher has its own).
    pub seed: u64,
    /// Support units per task: samples, or demonstrations of
    /// [`TaskSource::rows_per_unit`] rows each.
    pub shots_support: usize,
    /// Support ROWS per inner step: all of them (`shots_support · rows_per_unit`) adapts on the
    /// whole support set; any other count draws a fresh minibatch of that many rows per step,
    /// with replacement (the official `batch_size` of the inner loop).
    pub inner_batch: usize,
    /// Query units per task.
    pub shots_query: usize,
    /// Inner AdamW steps.
    pub steps_inner: usize,
    /// Inner AdamW (spec §5.1: b1 0.9, b2 0.999, eps 1e-8, eps_root = f32 eps, wd 1e-4).
    pub inner: AdamWConfig,
    /// Outer AdamW with global-norm clipping (spec §5.2).
    pub outer: AdamWConfig,
    /// Whether the meta-gradient flows through the inner loop (`train.meta_gradient`).
    pub meta_gradient: MetaGradient,
    /// How the second-order sweep gets each inner step's activations back
    /// (`train.reverse_sweep`).
    pub sweep: SweepMode,
    /// The most bytes [`SweepMode::Auto`] may spend on stored steps (`train.sweep_memory_mib`).
    pub sweep_memory: u64,
}

/// How the second-order reverse sweep gets each inner step's activations back
/// (`train.reverse_sweep`). Both give the same bits: a replayed step recomputes exactly what the
/// stored one kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepMode {
    /// Store when the extra memory (measured on the first step's program) fits
    /// `sweep_memory`, else recompute.
    Auto,
    /// Replay each step's minibatch and support pass in the sweep: least memory.
    #[default]
    Recompute,
    /// Keep every step's support program and gradient: no replay, S times the program's
    /// activation memory.
    Store,
}

impl SweepMode {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            SweepMode::Auto => "auto",
            SweepMode::Recompute => "recompute",
            SweepMode::Store => "store",
        }
    }
}

impl MetaConfig {
    /// The inner optimiser of spec §5.1 with learning rate `lr`.
    pub fn inner_adamw(lr: f32) -> AdamWConfig {
        AdamWConfig {
            lr,
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
            eps_root: f32::EPSILON,
            weight_decay: 1e-4,
            max_grad_norm: 0.0,
        }
    }

    /// The outer optimiser of spec §5.2.
    pub fn outer_adamw(lr: f32, weight_decay: f32, max_grad_norm: f32) -> AdamWConfig {
        AdamWConfig {
            lr,
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
            eps_root: 0.0,
            weight_decay,
            max_grad_norm,
        }
    }
}

/// Losses and accuracies of one episode (mean over its tasks).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpisodeMetrics {
    /// Query KL after adaptation.
    pub loss: f64,
    /// Query accuracy after adaptation.
    pub acc: f64,
    /// Support KL at the last inner step (before its update): how well the inner loop fits.
    pub support_loss: f64,
}

/// One train episode's meta-gradient and the data it saw ([`MetaLearner::episode_gradient`]).
#[derive(Clone, Debug)]
pub struct EpisodeGradient {
    /// Mean query loss.
    pub loss: f64,
    /// ∂(mean query loss)/∂meta, packed like the meta parameters.
    pub dmeta: Vec<f32>,
    /// Every task's inputs `[tasks × (support + query) × input_dim]`, support rows first.
    pub inputs: Vec<f32>,
    /// Their targets `[tasks × (support + query) × output_dim]`.
    pub targets: Vec<f32>,
    /// Their row weights `[tasks × (support + query)]` (a masked loss; else empty).
    pub weights: Vec<f32>,
    /// The meta parameters the gradient was taken at.
    pub meta: Vec<f32>,
    /// Per task, per inner step, the support rows its minibatch drew (empty: full batch).
    pub minibatches: Vec<Vec<Vec<usize>>>,
}

/// Data streams of the teacher's inputs: the purpose in the top byte keeps the training steps,
/// each evaluation set and repeated evaluations apart (all below the teacher's reserved 2⁶³).
pub fn data_stream(purpose: u8, counter: u64) -> u64 {
    debug_assert!(purpose < 0x80);
    ((purpose as u64) << 56) | (counter & ((1 << 56) - 1))
}

/// A student, its meta parameters and outer optimiser, a training episode and an evaluation
/// episode, on tasks from one [`TaskSource`].
pub struct MetaLearner {
    layout: ParamLayout,
    /// The adapted student's forward on inputs of the caller's choosing ([`MetaLearner::with_probe`]).
    probe: Option<ProbeProgram>,
    meta: Tensor,
    dmeta: Tensor,
    best_meta: Tensor,
    save_best: Dispatch,
    restore_best: Dispatch,
    outer_opt: AdamW,
    train: Episode,
    eval: Episode,
    zero_dmeta: Dispatch,
    inject_nan: Dispatch,
}

impl MetaLearner {
    /// Builds everything and initialises the meta parameters from the layout's initialisers,
    /// drawn with the engine's RNG keyed by `(cfg.seed, tensor index)`.
    pub fn new<S: GpuStudent>(
        gpu: &Device,
        student: &S,
        source: &dyn TaskSource,
        meta_batch: usize,
        eval_batch: usize,
        cfg: MetaConfig,
    ) -> Result<MetaLearner> {
        if meta_batch == 0
            || eval_batch == 0
            || cfg.shots_support == 0
            || cfg.shots_query == 0
            || cfg.inner_batch == 0
        {
            return Err(arg_err(
                "meta",
                "meta batch, eval batch, shots and inner batch must be positive",
            ));
        }
        let layout = student.param_layout();
        let m = layout.meta_len();
        let meta = gpu.zeros(1, 1, m)?;
        init_meta(gpu, &layout.meta, &meta, cfg.seed)?;
        let dmeta = gpu.zeros(1, 1, m)?;
        let best_meta = gpu.zeros(1, 1, m)?;
        let save_best = copy(gpu, &meta, &best_meta)?;
        let restore_best = copy(gpu, &best_meta, &meta)?;
        let zero_dmeta = fill(gpu, &dmeta, 0.0)?;
        // Fault injection (tests of the non-finite guard): copies a NaN into the meta-gradient.
        let nan = gpu.upload(&[f32::NAN], 1, 1, 1)?;
        let inject_nan = copy(gpu, &nan, &dmeta.view(dmeta.offset(), 1, 1, 1, 1)?)?;
        let outer_opt = AdamW::new(gpu, &meta, &dmeta, cfg.outer)?;
        let train = Episode::new(
            gpu,
            student,
            &layout,
            source,
            &meta,
            Some(&dmeta),
            meta_batch,
            &cfg,
        )?;
        let eval = Episode::new(gpu, student, &layout, source, &meta, None, eval_batch, &cfg)?;
        Ok(MetaLearner {
            layout,
            probe: None,
            meta,
            dmeta,
            best_meta,
            save_best,
            restore_best,
            outer_opt,
            train,
            eval,
            zero_dmeta,
            inject_nan,
        })
    }

    /// One outer step on the given task latents (`meta_batch × L·M`) with data stream `stream`:
    /// adapt, meta-gradient, clipped AdamW (skipped on the GPU if non-finite). Returns the mean
    /// query loss and accuracy before the update.
    pub fn train_step(&self, gpu: &Device, latents: &[f32], stream: u64) -> Result<EpisodeMetrics> {
        self.train_step_with(gpu, latents, stream, false)
            .map(|(m, _)| m)
    }

    /// [`MetaLearner::train_step`], optionally with a NaN injected into the meta-gradient (to
    /// test the non-finite guard); also returns the outer optimiser's consecutive-skip count.
    pub fn train_step_with(
        &self,
        gpu: &Device,
        latents: &[f32],
        stream: u64,
        inject_nan: bool,
    ) -> Result<(EpisodeMetrics, u32)> {
        self.train.set_tasks(gpu, latents, stream)?;
        let mut step = Step::new(gpu);
        step.run(&self.zero_dmeta);
        self.train.record(&mut step);
        if inject_nan {
            step.run(&self.inject_nan);
        }
        self.outer_opt.record_step(&mut step);
        let (l, a) = (step.read(&self.train.loss)?, step.read(&self.train.acc)?);
        let s = step.read(&self.train.support_loss)?;
        let c = step.read(self.outer_opt.consecutive_skips())?;
        let out = step.finish()?;
        Ok((
            mean_metrics(out.get(l), out.get(a), out.get(s)),
            out.scalar(c) as u32,
        ))
    }

    /// Generates the train episode's data alone (the task source's program, one submit): what
    /// the data costs of an outer step, for `bench step`.
    pub fn generate_train_data(&self, gpu: &Device, latents: &[f32], stream: u64) -> Result<()> {
        self.train.set_tasks(gpu, latents, stream)?;
        let mut step = Step::new(gpu);
        self.train.data.record(&mut step);
        step.finish()?;
        Ok(())
    }

    /// The meta-gradient of one train episode on the given task latents and data stream,
    /// without updating anything: for checking it against the f64 episode twin
    /// ([`crate::train::episode_twin::meta_gradient`]) on the same data, which it returns too.
    pub fn episode_gradient(
        &self,
        gpu: &Device,
        latents: &[f32],
        stream: u64,
    ) -> Result<EpisodeGradient> {
        self.train.set_tasks(gpu, latents, stream)?;
        let mut step = Step::new(gpu);
        step.run(&self.zero_dmeta);
        self.train.record(&mut step);
        let slots = [
            step.read(&self.train.loss)?,
            step.read(&self.dmeta)?,
            step.read(self.train.data.inputs())?,
            step.read(self.train.data.targets())?,
            step.read(&self.meta)?,
        ];
        let w = match self.train.data.weights() {
            Some(w) => Some(step.read(w)?),
            None => None,
        };
        let out = step.finish()?;
        let [loss, dmeta, inputs, targets, meta] = slots.map(|s| out.get(s).to_vec());
        let minibatches = self.train.minibatch_rows(stream);
        Ok(EpisodeGradient {
            weights: w.map_or_else(Vec::new, |w| out.get(w).to_vec()),
            minibatches,
            loss: loss.iter().map(|&v| v as f64).sum::<f64>() / loss.len().max(1) as f64,
            dmeta,
            inputs,
            targets,
            meta,
        })
    }

    /// Bytes the second-order reverse sweep holds on the device (its history and scratch, and
    /// in store mode every step's support program; 0 at first order).
    pub fn sweep_bytes(&self) -> u64 {
        self.train.sweep.as_ref().map_or(0, |s| s.bytes)
    }

    /// How the train episode's reverse sweep got its activations back: `Some(Store)` or
    /// `Some(Recompute)` (what `Auto` chose), `None` at first order.
    pub fn sweep_mode(&self) -> Option<SweepMode> {
        let mode = |s: &reverse::ReversePass| {
            if s.stores() {
                SweepMode::Store
            } else {
                SweepMode::Recompute
            }
        };
        self.train.sweep.as_ref().map(mode)
    }

    /// Every tensor that a checkpoint must hold to continue exactly: meta parameters, the
    /// best-by-valid copy, and the outer optimiser's state and counters (as `outer.*`).
    pub fn state(&self) -> TensorState<'_> {
        TensorState::new()
            .with("meta", &self.meta)
            .with("best_meta", &self.best_meta)
            .nest("outer", self.outer_opt.state())
    }

    /// Restores [`MetaLearner::state`] from a checkpoint read from `path`.
    pub fn load_state(&self, gpu: &Device, ck: &Checkpoint, path: &Path) -> Result<()> {
        self.state().load_from(gpu, ck, path)
    }

    /// Skipped outer steps so far (non-finite meta-gradients), read from the GPU.
    pub fn skipped_steps(&self, gpu: &Device) -> Result<f64> {
        Ok(gpu
            .read(self.outer_opt.skipped())?
            .first()
            .copied()
            .unwrap_or(0.0) as f64)
    }

    /// Adapts `latents.len() / (L·M)` tasks (a multiple of nothing: the last chunk is padded by
    /// repeating tasks, whose results are dropped) and returns the mean query metrics and, when
    /// asked, every task's adapted parameters (`tasks × task_len`, for module decoding).
    pub fn evaluate(
        &self,
        gpu: &Device,
        latents: &[f32],
        latent_len: usize,
        stream: u64,
        keep_params: bool,
    ) -> Result<(EpisodeMetrics, Vec<f32>)> {
        self.evaluate_chunks(
            gpu,
            latents,
            latent_len,
            stream,
            keep_params,
            &mut |_, _, _| Ok(()),
        )
    }

    /// [`MetaLearner::evaluate`], calling `after(first task, tasks used, chunk stream)` once
    /// each chunk is adapted (its parameters still in the evaluation episode).
    fn evaluate_chunks(
        &self,
        gpu: &Device,
        latents: &[f32],
        latent_len: usize,
        stream: u64,
        keep_params: bool,
        after: &mut dyn FnMut(usize, usize, u64) -> Result<()>,
    ) -> Result<(EpisodeMetrics, Vec<f32>)> {
        let n_tasks = latents.len() / latent_len.max(1);
        if n_tasks == 0 {
            return Err(arg_err("evaluate", "no tasks to evaluate"));
        }
        let b = self.eval.tasks;
        let (mut loss_sum, mut acc_sum, mut support_sum) = (0.0, 0.0, 0.0);
        let mut params = Vec::new();
        for (chunk_i, start) in (0..n_tasks).step_by(b).enumerate() {
            let used = b.min(n_tasks - start);
            let mut chunk: Vec<f32> =
                latents[start * latent_len..(start + used) * latent_len].to_vec();
            while chunk.len() < b * latent_len {
                let fill_from = chunk[..latent_len].to_vec();
                chunk.extend(fill_from);
            }
            let chunk_stream = stream.wrapping_add(chunk_i as u64);
            self.eval.set_tasks(gpu, &chunk, chunk_stream)?;
            let mut step = Step::new(gpu);
            self.eval.record(&mut step);
            let (l, a) = (step.read(&self.eval.loss)?, step.read(&self.eval.acc)?);
            let s = step.read(&self.eval.support_loss)?;
            let p = if keep_params {
                Some(step.read(&self.eval.task)?)
            } else {
                None
            };
            let out = step.finish()?;
            loss_sum += out.get(l)[..used].iter().map(|&v| v as f64).sum::<f64>();
            acc_sum += out.get(a)[..used].iter().map(|&v| v as f64).sum::<f64>();
            support_sum += out.get(s)[..used].iter().map(|&v| v as f64).sum::<f64>();
            if let Some(p) = p {
                params.extend_from_slice(&out.get(p)[..used * self.layout.task_len()]);
            }
            after(start, used, chunk_stream)?;
        }
        Ok((
            EpisodeMetrics {
                loss: loss_sum / n_tasks as f64,
                acc: acc_sum / n_tasks as f64,
                support_loss: support_sum / n_tasks as f64,
            },
            params,
        ))
    }

    /// Adds a probe: the student's forward, at the evaluation episode's adapted parameters, on
    /// `rows` inputs per task that [`MetaLearner::evaluate_probed`] lets a [`Probe`] choose (a
    /// policy's observations, say). Built after everything else, so the episodes' buffers are
    /// the ones they get without it.
    pub fn with_probe<S: GpuStudent>(
        mut self,
        gpu: &Device,
        student: &S,
        rows: usize,
    ) -> Result<MetaLearner> {
        if rows == 0 {
            return Err(arg_err("meta", "a probe needs at least one row per task"));
        }
        let tasks = self.eval.tasks;
        let x = gpu.zeros(tasks, rows, student.input_dim())?;
        let logits = gpu.zeros(tasks, rows, student.output_dim())?;
        let dlogits = gpu.zeros(tasks, rows, student.output_dim())?;
        let dtask = gpu.zeros(tasks, 1, self.layout.task_len())?;
        let program = student.program(
            gpu,
            &StudentBuffers {
                meta: &self.meta,
                task: &self.eval.task,
                x: &x,
                logits: &logits,
                dlogits: &dlogits,
                dtask: &dtask,
                dmeta: None,
            },
        )?;
        self.probe = Some(ProbeProgram {
            x,
            logits,
            forward: program.forward,
        });
        Ok(self)
    }

    /// [`MetaLearner::evaluate`], and after each chunk's adaptation the probe's questions: it
    /// gets the chunk's first task, its tasks in use (the rest repeat tasks to fill the chunk),
    /// the chunk's data stream, and `act`, which runs the adapted student on
    /// `[chunk tasks × rows × input_dim]` inputs and returns its outputs.
    pub fn evaluate_probed(
        &self,
        gpu: &Device,
        latents: &[f32],
        latent_len: usize,
        stream: u64,
        probe: &mut dyn Probe,
    ) -> Result<EpisodeMetrics> {
        let p = self
            .probe
            .as_ref()
            .ok_or_else(|| arg_err("evaluate", "the meta-learner has no probe (with_probe)"))?;
        let mut on_chunk = |first: usize, used: usize, chunk_stream: u64| -> Result<()> {
            let mut act = |inputs: &[f32]| -> Result<Vec<f32>> {
                gpu.write(&p.x, inputs)?;
                let mut step = Step::new(gpu);
                step.run_all(&p.forward);
                let out = step.read(&p.logits)?;
                Ok(step.finish()?.get(out).to_vec())
            };
            probe.chunk(first, used, chunk_stream, &mut act)
        };
        let (m, _) =
            self.evaluate_chunks(gpu, latents, latent_len, stream, false, &mut on_chunk)?;
        Ok(m)
    }

    /// The evaluation episode's tasks per chunk.
    pub fn eval_tasks(&self) -> usize {
        self.eval.tasks
    }

    /// Copies the current meta parameters into the best-so-far slot.
    pub fn save_best(&self, gpu: &Device) -> Result<()> {
        Ok(gpu.run(&[&self.save_best])?)
    }

    /// Replaces the current meta parameters by the best-so-far slot.
    pub fn restore_best(&self, gpu: &Device) -> Result<()> {
        Ok(gpu.run(&[&self.restore_best])?)
    }

    /// The packed meta parameters.
    pub fn meta(&self) -> &Tensor {
        &self.meta
    }
    /// The best-by-valid meta parameters (as last saved).
    pub fn best_meta(&self) -> &Tensor {
        &self.best_meta
    }
    /// The student's parameter layout.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }
    /// Outer optimiser (its skip counters, step count).
    pub fn outer_optimizer(&self) -> &AdamW {
        &self.outer_opt
    }
}

/// The student's forward on the probe's inputs, at the evaluation episode's task parameters.
struct ProbeProgram {
    x: Tensor,
    logits: Tensor,
    forward: Vec<Dispatch>,
}

/// Questions to the adapted student during an evaluation ([`MetaLearner::evaluate_probed`]).
pub trait Probe {
    /// Called once per evaluation chunk after its adaptation: `first` is the chunk's first task
    /// in the evaluated list, `used` how many of its tasks are real, `stream` its data stream;
    /// `act` maps `[chunk tasks × rows × input_dim]` inputs to the student's outputs.
    fn chunk(
        &mut self,
        first: usize,
        used: usize,
        stream: u64,
        act: &mut dyn FnMut(&[f32]) -> Result<Vec<f32>>,
    ) -> Result<()>;
}

fn mean_metrics(loss: &[f32], acc: &[f32], support: &[f32]) -> EpisodeMetrics {
    let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64;
    EpisodeMetrics {
        loss: mean(loss),
        acc: mean(acc),
        support_loss: mean(support),
    }
}

/// Draws every meta tensor from its initialiser, keyed by `(seed, index in the layout)`.
fn init_meta(gpu: &Device, specs: &[ParamSpec], meta: &Tensor, seed: u64) -> Result<()> {
    let mut off = 0;
    let mut ds = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let t = meta.view(meta.offset() + off, 1, 1, s.numel(), s.numel())?;
        off += s.numel();
        let key = RngKey::new(seed, (1 << 62) + i as u64);
        ds.push(match s.init {
            Init::Zeros => fill(gpu, &t, 0.0)?,
            Init::Ones => fill(gpu, &t, 1.0)?,
            Init::TruncatedNormal { std } => {
                fill_truncated_normal(gpu, &t, key, 0.0, std as f32)?.into_dispatch()
            }
            Init::Uniform { limit } => {
                fill_uniform(gpu, &t, key, -limit as f32, limit as f32)?.into_dispatch()
            }
            Init::Meta(ref name) => {
                return Err(arg_err(
                    "init",
                    format!("meta tensor {} cannot copy meta tensor {name}", s.name),
                ))
            }
        });
    }
    let refs: Vec<&Dispatch> = ds.iter().collect();
    Ok(gpu.run(&refs)?)
}

/// Samples `count` task latents with replacement from `pool` (each `latent_len` long), seeded.
pub fn sample_latents(pool: &[Vec<f32>], count: usize, seed: u64, counter: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ counter.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut out = Vec::with_capacity(count * pool.first().map_or(0, Vec::len));
    for _ in 0..count {
        out.extend_from_slice(&pool[rng.random_range(0..pool.len())]);
    }
    out
}
