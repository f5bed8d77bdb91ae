//! Boopathy et al.'s sine-wave modular regression (spec `boopathy-modular.md`; the paper's code
//! was never released, so the task, networks and Algorithm 1 are the spec's reconstruction,
//! every choice named in the config): monolithic vs modular networks, and the kernel-based
//! initialisation of module projections, over many small runs on the batch axis.
//!
//! - [`config`]: the config sections and §9's defaults; [`task`]: one run's true modules and
//!   the exact target moments, module recovery;
//! - [`net`]: the networks of R runs; [`kernel_init`]: Algorithm 1 for every module at once;
//! - [`columns`]: `runs.csv` / `summary.md` columns; [`sample_complexity`]: the sweep's
//!   `summary.csv` and plots.
//!
//! [`Sine`] holds R independent runs of one shape (a single `hypermod train` is R = 1): each has
//! its own seed (task, data, initialisation, minibatches), training-set size n, learning rate
//! and weight decay, and gets exactly the numbers it gets alone. Data never lives in memory: a
//! run's training set is the first n samples of its data stream, drawn on the device when a
//! minibatch needs them (`ops::sine`), so runs with different n share every dispatch.
//!
//! This file is one concept, the `Sine` experiment (its set-up, step, evaluation, divergence
//! isolation and `ExperimentDef`); its parts live in the modules above.

pub mod bench;
pub mod columns;
pub mod config;
mod eval;
pub mod kernel_init;
pub mod net;
pub mod sample_complexity;
pub mod task;
pub mod theory_curve;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

pub use self::config::{InitTarget, Method, SineConfig};
use self::eval::{set_spec, EvalSet, CHUNK_FLOATS};
use self::kernel_init::{InitSettings, KernelInit};
use self::net::{NetProgram, Network};
use self::task::{recovery, Task};
use crate::checkpoint::TensorState;
use crate::error::{arg_err, Result};
use crate::experiments::per_run::{self, MemberDir, PerRun};
use crate::experiments::registry::check_batch;
use crate::experiments::ExperimentDef;
use crate::gpu::{Device, Dispatch, Step, Tensor};
use crate::ops::adamw::{AdamW, AdamWConfig};
use crate::ops::loss::mse;
use crate::ops::rng::ItemSeeds;
use crate::ops::sine::{sample, Fold, Rows, SineSample};
use crate::report::plot::PlotError;
use crate::report::runs_table::Measure;
use crate::report::RunsTable;
use crate::train::runner::{self, Experiment, Schedule, SetMetrics, StepReport};

/// The name configs give this experiment (`experiment = "sine"`).
pub const NAME: &str = "sine";

/// Data streams (the high byte names the set; training minibatch picks add the step).
const TRAIN_DATA: u64 = 0x01 << 56;
const TRAIN_PICK: u64 = 0x11 << 56;
const INIT_PICK: u64 = 0x12 << 56;

/// Device memory one batch may use (the sweep sizes its batches to it).
pub const BATCH_BYTES: usize = 2 << 30;

/// One run's metrics of a step or an evaluation set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SineMetrics {
    /// Mean squared error (targets have variance 1, so it is also the fraction of Var(y)).
    pub mse: f64,
}

/// Every run's metrics.
pub type RunsMetrics = PerRun<SineMetrics>;

/// A run's `summary.json` fields of its own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunExtras {
    /// `monolithic`, `modular_random` or `modular_kernel`.
    pub method: String,
    /// Input dimension.
    pub m: usize,
    /// Training samples.
    pub n: usize,
    /// Seed.
    pub seed: u64,
    /// Test MSE at the run's own best evaluation by validation MSE (early stopping).
    pub test_mse: f64,
    /// Wide-input OOD MSE at that evaluation.
    pub ood_mse: f64,
    /// Held-out-combination MSE at that evaluation, when the task holds one out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ood_combination_mse: Option<f64>,
    /// Validation MSE at that evaluation.
    pub valid_mse: f64,
    /// Step of that evaluation (the run's own, as the loop's `best_step`).
    pub selected_step: usize,
    /// Test MSE at the last step.
    pub final_test_mse: f64,
    /// Module recovery at the end (modular networks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<f64>,
    /// Module recovery right after initialisation (modular networks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_init: Option<f64>,
    /// Mean over modules of yᵀ(K + εI)⁻¹y at the last kernel-initialisation step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_objective: Option<f64>,
    /// Training steps whose update was skipped as non-finite (the run's own guard; the
    /// summary's `skipped_steps` is the batch's largest).
    pub run_skipped_steps: f64,
    /// The sample-complexity threshold (fraction of Var(y)) of the run's config.
    pub threshold: f64,
    /// Whether the run diverged (skipped updates or non-finite metrics): its numbers are not
    /// to be trusted, and it never poisoned the other runs of its batch.
    pub diverged: bool,
}

/// Every run's extras.
pub type RunsExtras = PerRun<RunExtras>;

/// What `hypermod train` writes to `summary.json` for this experiment.
pub type Summary = runner::Summary<RunsMetrics, RunsExtras>;

/// The settings a batch of runs must share: everything but seed, n, learning rates and weight
/// decay.
pub fn batch_key(cfg: &SineConfig) -> String {
    let mut shape = cfg.clone();
    shape.task.n_train = 0;
    shape.train.seed = 0;
    shape.train.lr = 0.0;
    shape.train.weight_decay = 0.0;
    shape.kernel_init.lr = 0.0;
    format!("{shape:?}")
}

/// Per-run bookkeeping (checkpointed as a tensor, so a resumed run reports it too): best
/// validation MSE and the test / OOD / combination MSE and step there, then the recovery after
/// initialisation and the final kernel objective (NaN when undefined).
const BEST_FIELDS: usize = 7;

/// R sine runs of one shape on the device.
pub struct Sine {
    cfgs: Vec<SineConfig>,
    tasks: Vec<Task>,
    net: Network,
    /// Keeps the task tensors and seeds the samplers bind alive.
    _data: (Tensor, ItemSeeds, ItemSeeds),
    train_sample: SineSample,
    /// The training step's inputs and targets (what `train_sample` writes).
    train_xy: (Tensor, Tensor),
    train: Vec<Dispatch>,
    train_loss: Tensor,
    sets: Vec<EvalSet>,
    opt: AdamW,
    /// `[R × 1 × BEST_FIELDS]`: valid, test, ood, combination, step at each run's best; initial
    /// recovery, kernel objective.
    best: Tensor,
    /// Host copy of `best`, updated at every evaluation.
    best_host: Mutex<Vec<f32>>,
    /// Steps trained, for the best-state record.
    steps_done: AtomicUsize,
}

impl Sine {
    /// Sets up the runs of `cfgs` (validated, one [`batch_key`]) and the loop's schedule; runs
    /// the kernel initialisation unless `resume` (the checkpoint then holds the parameters).
    pub fn new(gpu: &Device, cfgs: &[SineConfig], resume: bool) -> Result<(Sine, Schedule)> {
        check_batch::<Sine>(cfgs)?;
        let first = &cfgs[0];
        for c in cfgs {
            c.validate()?;
        }
        let r = cfgs.len();
        let seeds: Vec<u64> = cfgs.iter().map(|c| c.train.seed).collect();
        let tasks: Vec<Task> = cfgs.iter().map(|c| Task::new(c, c.train.seed)).collect();
        let shape = tasks[0].shape;
        let task_t = gpu.upload(
            &tasks
                .iter()
                .flat_map(|t| t.tensor.clone())
                .collect::<Vec<_>>(),
            r,
            1,
            shape.task_len(),
        )?;
        let run_seeds = ItemSeeds::upload(gpu, &seeds)?;
        let net = Network::new(gpu, first, r)?;
        let (init, item_seeds) = net.init(gpu, &seeds)?;
        gpu.run(&init.iter().map(|d| d.dispatch()).collect::<Vec<_>>())?;
        let train_fold = if first.task.holdout_combination {
            Fold::Exclude
        } else {
            Fold::None
        };
        let reps = net.x_copies();
        let tr = &first.train;

        // Training step: sample → forward → MSE → backward → AdamW per run.
        let x = gpu.zeros(r * reps, tr.batch, shape.m)?;
        let y = gpu.zeros(r, tr.batch, 1)?;
        let pick = Rows::Pick { stream: TRAIN_PICK };
        let spec = set_spec(shape, train_fold, 1.0, TRAIN_DATA, pick);
        let train_sample = sample(gpu, &spec, &task_t, &run_seeds, &x, &y)?;
        let (y_hat, dy) = (gpu.zeros(r, tr.batch, 1)?, gpu.zeros(r, tr.batch, 1)?);
        let NetProgram { forward, backward } = net.program(gpu, &x, &y_hat, Some(&dy))?;
        let train_loss = gpu.zeros(r, 1, 1)?;
        let mut train = forward;
        train.push(mse(gpu, &y_hat, &y, &train_loss, Some(&dy), 1.0)?);
        train.extend(backward);
        let (params, grads) = net.run_views()?;
        let lr: Vec<f32> = cfgs.iter().map(|c| c.train.lr as f32).collect();
        let wd: Vec<f32> = cfgs.iter().map(|c| c.train.weight_decay as f32).collect();
        let opt_cfg = AdamWConfig {
            max_grad_norm: 0.0,
            ..AdamWConfig::default()
        };
        let opt = AdamW::new_per_item(gpu, &params, &grads, opt_cfg, &lr, &wd)?;

        let sets = EvalSet::all(gpu, first, &net, &task_t, &run_seeds, train_fold)?;
        let best = gpu.zeros(r, 1, BEST_FIELDS)?;
        let exp = Sine {
            cfgs: cfgs.to_vec(),
            tasks,
            net,
            _data: (task_t, run_seeds, item_seeds),
            train_sample,
            train_xy: (x, y),
            train,
            train_loss,
            sets,
            opt,
            best,
            best_host: Mutex::new(vec![f32::INFINITY; r * BEST_FIELDS]),
            steps_done: AtomicUsize::new(0),
        };
        if !resume && first.model.method.modular() {
            let objective = if first.model.method == Method::ModularKernel {
                exp.kernel_init(gpu, train_fold)?
            } else {
                vec![f64::NAN; r]
            };
            let recovery = exp.recoveries(gpu)?;
            let mut best = exp.host_best();
            for ri in 0..r {
                best[ri * BEST_FIELDS + 5] = recovery[ri].unwrap_or(f64::NAN) as f32;
                best[ri * BEST_FIELDS + 6] = objective[ri] as f32;
            }
        }
        gpu.write(&exp.best, &exp.host_best())?;
        let schedule = Schedule {
            steps: tr.steps,
            eval_every: tr.eval_every,
            max_consecutive_skips: 50,
        };
        Ok((exp, schedule))
    }

    /// Algorithm 1 on every module of every run; returns each run's final objective (mean over
    /// its modules).
    fn kernel_init(&self, gpu: &Device, fold: Fold) -> Result<Vec<f64>> {
        let first = &self.cfgs[0];
        let k = &first.kernel_init;
        let (r, reps, shape) = (self.cfgs.len(), self.net.x_copies(), self.tasks[0].shape);
        let x = gpu.zeros(r * reps, k.batch, shape.m)?;
        let y = gpu.zeros(r * reps, k.batch, 1)?;
        let spec = set_spec(
            shape,
            fold,
            1.0,
            TRAIN_DATA,
            Rows::Pick { stream: INIT_PICK },
        );
        let task_t = &self._data.0;
        let sampler = sample(gpu, &spec, task_t, &self._data.1, &x, &y)?;
        let settings: Vec<InitSettings> = self
            .cfgs
            .iter()
            .map(|c| InitSettings {
                lr: c.kernel_init.lr as f32,
                ridge: c.kernel_init.ridge as f32,
            })
            .collect();
        let init = KernelInit::new(gpu, &self.net, sampler, &x, &y, &settings, k.target)?;
        let objective = init.run(gpu, k.steps, |t| INIT_PICK + t as u64)?;
        Ok(objective
            .chunks(self.net.modules)
            .map(|o| o.iter().map(|&v| v as f64).sum::<f64>() / o.len() as f64)
            .collect())
    }

    /// The host copy of the best-state record (a poisoned lock still holds valid numbers).
    fn host_best(&self) -> std::sync::MutexGuard<'_, Vec<f32>> {
        self.best_host
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs in the batch.
    pub fn runs(&self) -> usize {
        self.cfgs.len()
    }

    /// The network (its packed parameters, for tests and embedders).
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// The loss gradient of training step `step` at the current parameters, without an update:
    /// `(x, y, per-run MSE, ∂MSE/∂parameters)` as the device computed them (for tests).
    #[allow(clippy::type_complexity)]
    pub fn probe_gradient(
        &self,
        gpu: &Device,
        step: usize,
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>)> {
        self.train_sample.set_stream(gpu, TRAIN_PICK + step as u64);
        let mut rec = Step::new(gpu);
        rec.run(self.train_sample.dispatch());
        rec.run_all(&self.train);
        let slots = [
            rec.read(&self.train_xy.0)?,
            rec.read(&self.train_xy.1)?,
            rec.read(&self.train_loss)?,
            rec.read(self.net.packed.grads())?,
        ];
        let out = rec.finish()?;
        let [x, y, l, g] = slots.map(|s| out.get(s).to_vec());
        Ok((x, y, l, g))
    }

    /// Run `r`'s task.
    pub fn task(&self, r: usize) -> &Task {
        &self.tasks[r]
    }

    /// The device bytes a batch of `runs` runs of `cfg` needs, roughly: parameters with their
    /// optimiser state and the largest of the step's, the kernel initialisation's and an
    /// evaluation chunk's activations.
    pub fn batch_bytes(cfg: &SineConfig, runs: usize) -> usize {
        let (k, m) = (cfg.net_modules(), cfg.task.m);
        let modular = cfg.model.method.modular();
        let copies = if modular { k } else { 1 };
        let params = if modular {
            let b = cfg.net_module_dim();
            let widths: Vec<usize> = std::iter::once(b)
                .chain(cfg.model.module_hidden.iter().copied())
                .chain([1])
                .collect();
            k * (m * b + widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum::<usize>())
        } else {
            let widths: Vec<usize> = std::iter::once(m)
                .chain(cfg.model.hidden.iter().copied())
                .chain([1])
                .collect();
            widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
        };
        let widest = m
            .max(cfg.model.hidden.iter().copied().max().unwrap_or(1))
            .max(cfg.model.module_hidden.iter().copied().max().unwrap_or(1));
        let layers = cfg.model.hidden.len().max(cfg.model.module_hidden.len()) + 2;
        let step = copies * cfg.train.batch * widest * layers * 3;
        let kb = cfg.kernel_init.batch;
        let init = if cfg.model.method == Method::ModularKernel {
            k * (2 * kb * kb + kb * (m + 3 * widest * layers))
        } else {
            0
        };
        // Evaluation: up to two chunk sizes for each of up to four sets, every layer kept.
        let eval = CHUNK_FLOATS * layers * 2 * 4;
        4 * runs * (6 * params + step.max(init) + eval)
    }

    /// Every run's module recovery (None for the monolithic network).
    fn recoveries(&self, gpu: &Device) -> Result<Vec<Option<f64>>> {
        if !self.net.modular() {
            return Ok(vec![None; self.runs()]);
        }
        let proj = gpu.read(&self.net.projections()?)?;
        let (m, bh, k) = (self.net.m, self.net.module_dim, self.net.modules);
        let per_run = m * bh * k;
        Ok(self
            .tasks
            .iter()
            .enumerate()
            .map(|(ri, t)| {
                let s = t.shape;
                let truth = &t.tensor[4..4 + s.modules * s.dim * s.m];
                let learned = &proj[ri * per_run..(ri + 1) * per_run];
                Some(recovery(truth, s.dim, learned, bh, m))
            })
            .collect())
    }
}

/// A recorded value, `None` when undefined (NaN).
fn defined(v: f32) -> Option<f64> {
    v.is_finite().then_some(v as f64)
}

/// Index of a set's field in the best-state record.
fn best_field(name: &str) -> Option<usize> {
    match name {
        "valid" => Some(0),
        "test" => Some(1),
        "ood" => Some(2),
        "ood_combination" => Some(3),
        _ => None,
    }
}

impl Experiment for Sine {
    type Metrics = RunsMetrics;
    type Extras = RunsExtras;

    fn train_step(&self, gpu: &Device, step: usize) -> Result<StepReport<RunsMetrics>> {
        self.train_sample.set_stream(gpu, TRAIN_PICK + step as u64);
        self.steps_done.store(step + 1, Ordering::Relaxed);
        let mut rec = Step::new(gpu);
        rec.run(self.train_sample.dispatch());
        rec.run_all(&self.train);
        self.opt.record_step(&mut rec);
        let loss = rec.read(&self.train_loss)?;
        let skips = rec.read(self.opt.consecutive_skips())?;
        let out = rec.finish()?;
        let metrics = out
            .get(loss)
            .iter()
            .map(|&l| SineMetrics { mse: l as f64 })
            .collect();
        // A diverging run must not stop its batch: only when every run keeps skipping.
        let consecutive_skips = out.get(skips).iter().cloned().fold(f32::MAX, f32::min) as u32;
        Ok(StepReport {
            metrics: PerRun(metrics),
            consecutive_skips,
        })
    }

    fn eval_sets(&self) -> Vec<String> {
        self.sets.iter().map(|s| s.name.to_string()).collect()
    }

    fn evaluate(&self, gpu: &Device) -> Result<SetMetrics<RunsMetrics>> {
        let per_set = EvalSet::mse_of_all(gpu, &self.sets, self.runs())?;
        let step = self.steps_done.load(Ordering::Relaxed);
        let mut best = self.host_best();
        let valid = &per_set[0];
        for (ri, &v) in valid.iter().enumerate() {
            let rec = &mut best[ri * BEST_FIELDS..(ri + 1) * BEST_FIELDS];
            // NaN never wins; a run's first finite evaluation always does.
            if v.is_finite() && (v as f32) < rec[0] {
                for (set, values) in self.sets.iter().zip(&per_set) {
                    if let Some(f) = best_field(set.name) {
                        rec[f] = values[ri] as f32;
                    }
                }
                rec[4] = step as f32;
            }
        }
        gpu.write(&self.best, &best)?;
        Ok(self
            .sets
            .iter()
            .zip(per_set)
            .map(|(set, values)| {
                let m = values.into_iter().map(|mse| SineMetrics { mse }).collect();
                (set.name.to_string(), PerRun(m))
            })
            .collect())
    }

    fn selection_set(&self) -> &str {
        "valid"
    }

    fn score(m: &RunsMetrics) -> f64 {
        m.0.iter().map(|r| r.mse).sum::<f64>() / m.0.len().max(1) as f64
    }

    fn run_scores(m: &RunsMetrics) -> Vec<f64> {
        m.0.iter().map(|r| r.mse).collect()
    }

    fn keep_run(best: &mut RunsMetrics, current: &RunsMetrics, run: usize) {
        best.0[run] = current.0[run].clone();
    }

    fn save_best(&self, _gpu: &Device, _runs: &[usize]) -> Result<()> {
        // Each run's best-state record (`best`) is kept by `evaluate`; there is no state to copy.
        Ok(())
    }

    fn skipped_steps(&self, gpu: &Device) -> Result<f64> {
        let skipped = gpu.read(self.opt.skipped())?;
        Ok(skipped.iter().cloned().fold(0.0, f32::max) as f64)
    }

    fn state(&self) -> TensorState<'_> {
        TensorState::new()
            .with("params", self.net.packed.params())
            .with("best", &self.best)
            .nest("opt", self.opt.state())
    }

    fn describe_step(m: &RunsMetrics) -> String {
        format!("mse {:.4}", Self::score(m))
    }

    fn describe_eval(train: Option<&RunsMetrics>, sets: &SetMetrics<RunsMetrics>) -> String {
        let mean = |name: &str| {
            sets.get(name)
                .map_or("–".into(), |m| format!("{:.4}", Self::score(m)))
        };
        let train = train.map_or(String::new(), |t| format!("train {:.4}  ", Self::score(t)));
        format!(
            "{train}valid {}  test {}  ood {}",
            mean("valid"),
            mean("test"),
            mean("ood")
        )
    }

    fn summary_extras(&self, gpu: &Device) -> Result<RunsExtras> {
        // A resumed run reads its best-state record back from the checkpoint.
        let best = gpu.read(&self.best)?;
        *self.host_best() = best.clone();
        let final_sets = EvalSet::mse_of_all(gpu, &self.sets, self.runs())?;
        let recovery = self.recoveries(gpu)?;
        let skipped = gpu.read(self.opt.skipped())?;
        let combination = self.sets.iter().any(|s| s.name == "ood_combination");
        let extras = self
            .cfgs
            .iter()
            .enumerate()
            .map(|(ri, cfg)| {
                let rec = &best[ri * BEST_FIELDS..(ri + 1) * BEST_FIELDS];
                let diverged = skipped[ri] > 0.0 || !rec[1].is_finite() || !rec[0].is_finite();
                RunExtras {
                    method: cfg.model.method.name().to_string(),
                    m: cfg.task.m,
                    n: cfg.task.n_train,
                    seed: cfg.train.seed,
                    valid_mse: rec[0] as f64,
                    test_mse: rec[1] as f64,
                    ood_mse: rec[2] as f64,
                    ood_combination_mse: combination.then_some(rec[3] as f64),
                    selected_step: rec[4] as usize,
                    final_test_mse: final_sets[1][ri],
                    recovery: recovery[ri],
                    recovery_init: defined(rec[5]),
                    kernel_objective: defined(rec[6]),
                    run_skipped_steps: skipped[ri] as f64,
                    threshold: cfg.eval.threshold,
                    diverged,
                }
            })
            .collect();
        Ok(PerRun(extras))
    }
}

/// How many runs of `cfg`'s shape fit one batch: at most `limit` and within [`BATCH_BYTES`].
pub fn max_runs(cfg: &SineConfig, limit: usize) -> usize {
    let per_run = Sine::batch_bytes(cfg, 1).max(1);
    (BATCH_BYTES / per_run).clamp(1, limit.max(1))
}

/// One line about the run for the CLI.
pub fn describe(cfg: &SineConfig) -> String {
    let t = &cfg.task;
    let net = if cfg.model.method.modular() {
        format!(
            "{} modules of b̂ = {} with MLPs {:?}",
            cfg.net_modules(),
            cfg.net_module_dim(),
            cfg.model.module_hidden
        )
    } else {
        format!("MLP {:?}", cfg.model.hidden)
    };
    format!(
        "{}: m = {}, K = {} true modules (b = {}), n = {}, {net}",
        cfg.model.method.name(),
        t.m,
        t.modules,
        t.module_dim,
        t.n_train
    )
}

impl ExperimentDef for Sine {
    const NAME: &'static str = NAME;
    type Config = SineConfig;
    const MEASURES: &'static [Measure] = columns::MEASURES;
    // No comparison of grid points: its grids are too large for one panel per point; the
    // scaling plots (`plot_sweep_extra`) replace it.

    fn load(
        table: toml::Table,
        origin: &Path,
        overrides: &[String],
    ) -> Result<(SineConfig, toml::Table)> {
        Ok(SineConfig::from_table(table, origin, overrides)?)
    }

    fn describe(cfg: &SineConfig) -> String {
        describe(cfg)
    }

    /// Runs the kernel initialisation unless `resume` (the checkpoint then holds the
    /// parameters).
    fn build(gpu: &Device, cfgs: &[SineConfig], resume: bool) -> Result<(Sine, Schedule)> {
        Sine::new(gpu, cfgs, resume)
    }

    fn summary_columns(summary: &Path) -> Result<Vec<(String, String)>> {
        columns::summary_columns(summary)
    }

    fn write_sweep_summary(out: &Path, table: &RunsTable) -> Result<()> {
        sample_complexity::write_summary(out, table)
    }

    fn plot_sweep_extra(
        out: &Path,
        table: &RunsTable,
    ) -> std::result::Result<Vec<std::path::PathBuf>, PlotError> {
        sample_complexity::plot(out, table)
    }

    fn batch_key(cfg: &SineConfig) -> Option<String> {
        Some(batch_key(cfg))
    }

    fn max_batch(cfg: &SineConfig, limit: usize) -> usize {
        max_runs(cfg, limit)
    }

    fn train_batch(
        gpu: &Device,
        cfgs: &[SineConfig],
        members: &[MemberDir<'_>],
        batch_dir: &Path,
    ) -> Result<()> {
        per_run::train_batch::<Sine, _, _>(gpu, cfgs, members, batch_dir)
    }

    fn bench_step_shape(_cfg: &SineConfig) -> Result<String> {
        Err(arg_err(
            "bench step",
            "a sine run is many small runs; measure them with `hypermod bench sweep CONFIG`",
        ))
    }
}
