//! Schug et al.'s theory-verification experiment (spec `schug-hyperteacher.md` §5.4, §7; the
//! authors' `run_theory.py`): a MultitaskNet teacher whose hidden weights a linear hypernetwork
//! generates from M = 6 module latents, a wider student of the same form, meta-learned on a task
//! list and evaluated on every h-hot module combination.
//!
//! - [`task_list`]: the authors' `manual_task` strings and the blessed/doomed rule;
//! - [`config`]: the config sections and `run_theory.py`'s defaults;
//! - [`net`]: the network and its CPU twin; [`program`]: the batched GPU program;
//! - [`latents`]: training and evaluation latents; [`metrics`]: losses, latent R², alignments;
//! - [`batch`]: several runs of one shape trained as one batch (sweeps).
//!
//! [`Theory`] holds R independent runs (a single `hypermod train` is R = 1): each has its own
//! seed, teacher, student, task list and learning rates, and draws exactly what it draws alone.
//!
//! This file is one concept, the `Theory` experiment (its set-up, step, evaluation and
//! `ExperimentDef`); its parts live in the modules above.

pub mod batch;
pub mod bench;
pub mod columns;
pub mod config;
pub mod latents;
pub mod metrics;
pub mod net;
pub mod program;
pub mod task_list;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use self::config::TheoryConfig;
use self::latents::{eval_families, Family};
pub use self::metrics::TheoryMetrics;
use self::metrics::{generated_alignment, latent_r2, losses, template_alignment};
use self::net::NetShape;
use self::program::{Episode, EpisodeSize, Nets};
use crate::checkpoint::TensorState;
use crate::error::Result;
use crate::experiments::per_run;
use crate::experiments::registry::check_batch;
use crate::experiments::{ExperimentDef, StepBenchReport};
use crate::gpu::{Device, Dispatch, Step, Tensor};
use crate::ops::adamw::{AdamW, AdamWConfig};
use crate::ops::elementwise::copy;
use crate::ops::rng::{fill_cpu, Distribution, ItemSeeds, RngKey};
use crate::report::plot::SweepPlot;
use crate::report::runs_table::Measure;
use crate::train::meta::data_stream;
use crate::train::runner::{self, Experiment, Schedule, SetMetrics, StepReport};

/// The name configs give this experiment (`experiment = "theory"`).
pub const NAME: &str = "theory";

/// Streams of the initial weights (above every data stream, whose purpose byte is < 0x80).
const INIT_STREAM: u64 = 1 << 63;

pub use crate::experiments::per_run::PerRun;

/// Every run's metrics of one step or evaluation set.
pub type RunsMetrics = PerRun<TheoryMetrics>;

/// A run's `summary.json` fields of its own: the task list, its label and the three numbers a
/// sweep compares (means over the h-hot families at the final state).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunExtras {
    /// The training task list.
    pub task_list: String,
    /// `blessed` or `doomed` (spec §7.2).
    pub label: String,
    /// Continuous training latents.
    pub continuous: bool,
    /// Mean over h = 1..M of the family's ½·MSE.
    pub ood_loss: f64,
    /// Mean over h = 1..M of the train-vs-OOD latent R² (`None` if one is undefined).
    pub latent_r2: Option<f64>,
    /// Template alignment with F fitted on the training tasks.
    pub alignment: Option<f64>,
    /// Mean over h = 1..M of the generated-weight alignment (shared unit matching).
    pub gen_alignment: Option<f64>,
}

/// Every run's extras.
pub type RunsExtras = PerRun<RunExtras>;

/// What `hypermod train` writes to `summary.json` for this experiment.
pub type Summary = runner::Summary<RunsMetrics, RunsExtras>;

/// One run of the batch: its config and what it was resolved into.
struct Run {
    cfg: TheoryConfig,
    families: Vec<Family>,
    /// Evaluation latents per family (`eval_tasks × M`).
    eval_latents: Vec<Vec<f32>>,
    teacher: Vec<f32>,
}

/// R theory runs of one shape on the GPU.
pub struct Theory {
    runs: Vec<Run>,
    teacher_shape: NetShape,
    student_shape: NetShape,
    nets: Nets,
    best: Tensor,
    /// Copies every run's student into `best`.
    save_best: Dispatch,
    /// Copies run `k`'s student alone (when only some runs improved).
    save_best_run: Vec<Dispatch>,
    train: Episode,
    eval: Episode,
    outer: AdamW,
    init: Vec<f32>,
}

/// The settings a batch of runs must share: everything but seeds, task lists, latent weighting,
/// learning rates and weight decay.
pub fn batch_key(cfg: &TheoryConfig) -> String {
    let mut shape = cfg.clone();
    shape.task.task_list.clear();
    shape.task.continuous = false;
    let t = &mut shape.train;
    (t.seed, t.lr_inner, t.lr, t.cosine_alpha, t.weight_decay) = (0, 0.0, 0.0, 0.0, 0.0);
    format!("{shape:?}")
}

/// `len` truncated-normal draws with standard deviation `1/√fan_in` (haiku's default init).
fn haiku_init(seed: u64, stream: u64, len: usize, fan_in: usize) -> Vec<f32> {
    let std = 1.0 / (fan_in as f32).sqrt();
    fill_cpu(
        Distribution::TruncatedNormal,
        RngKey::new(seed, INIT_STREAM + stream),
        len,
        0.0,
        std,
    )
}

/// `[H | W₂]` of a MultitaskNet drawn by haiku's default init from streams `stream, stream + 1`.
fn init_params(seed: u64, stream: u64, s: NetShape) -> Vec<f32> {
    let mut p = haiku_init(seed, stream, s.hnet_len(), s.modules);
    p.extend(haiku_init(seed, stream + 1, s.readout_len(), s.hidden));
    p
}

fn shapes(cfg: &TheoryConfig) -> (NetShape, NetShape) {
    let t = &cfg.task;
    let teacher = NetShape {
        modules: t.modules,
        inputs: t.inputs,
        hidden: t.hidden,
        outputs: t.outputs,
    };
    let student = NetShape {
        modules: cfg.student_modules(),
        hidden: cfg.student_hidden(),
        ..teacher
    };
    (teacher, student)
}

/// The training and evaluation episodes' sizes. Evaluation infers latents with the training
/// inputs per inner step, as the reference, and scores on `eval_inputs`.
fn episode_sizes(cfg: &TheoryConfig) -> (EpisodeSize, EpisodeSize) {
    let tr = &cfg.train;
    let train = EpisodeSize {
        tasks: tr.meta_batch,
        inner_inputs: tr.inputs,
        query_inputs: tr.inputs,
        steps_inner: tr.steps_inner,
    };
    let eval = EpisodeSize {
        tasks: tr.eval_tasks,
        query_inputs: tr.eval_inputs,
        ..train
    };
    (train, eval)
}

impl Theory {
    /// Sets up the runs of `cfgs` (validated, all with one [`batch_key`]) and the loop's schedule.
    pub fn new(gpu: &Device, cfgs: &[TheoryConfig]) -> Result<(Theory, Schedule)> {
        check_batch::<Theory>(cfgs)?;
        let first = &cfgs[0];
        for c in cfgs {
            c.validate()?;
        }
        let (t, s) = shapes(first);
        let tr = &first.train;
        let mut runs = Vec::with_capacity(cfgs.len());
        let (mut teacher, mut student, mut init) = (Vec::new(), Vec::new(), Vec::new());
        for cfg in cfgs {
            let seed = cfg.train.seed;
            let list = cfg.task_list()?;
            let families = eval_families(&list, cfg.task.continuous);
            let eval_latents = families
                .iter()
                .enumerate()
                .map(|(k, f)| f.sample(t.modules, tr.eval_tasks, seed, eval_stream(k)))
                .collect();
            let run_teacher = init_params(seed, 0, t);
            teacher.extend_from_slice(&run_teacher);
            student.extend(init_params(seed, 2, s));
            // The shared initial latent of every task (`embedding_init = "constant"`).
            init.extend(fill_cpu(
                Distribution::Normal,
                RngKey::new(seed, INIT_STREAM + 4),
                s.modules,
                0.0,
                1.0,
            ));
            runs.push(Run {
                cfg: cfg.clone(),
                families,
                eval_latents,
                teacher: run_teacher,
            });
        }
        let r = runs.len();
        let seeds: Vec<u64> = cfgs.iter().map(|c| c.train.seed).collect();
        let student_t = gpu.upload(&student, r, 1, s.param_len())?;
        let nets = Nets {
            runs: r,
            teacher_shape: t,
            student_shape: s,
            teacher: gpu.upload(&teacher, r, 1, t.param_len())?,
            student_grad: gpu.zeros(r, 1, s.param_len())?,
            student: student_t,
            seeds: ItemSeeds::upload(gpu, &seeds)?,
        };
        let lr_inner: Vec<f32> = cfgs.iter().map(|c| c.train.lr_inner as f32).collect();
        let (train_size, eval_size) = episode_sizes(first);
        let train = Episode::new(gpu, &nets, train_size, &init, &lr_inner)?;
        let eval = Episode::new(gpu, &nets, eval_size, &init, &lr_inner)?;
        let lr: Vec<f32> = cfgs.iter().map(|c| c.lr_at(0) as f32).collect();
        let wd: Vec<f32> = cfgs.iter().map(|c| c.train.weight_decay as f32).collect();
        let outer_cfg = AdamWConfig {
            max_grad_norm: 0.0,
            ..AdamWConfig::default()
        };
        let outer =
            AdamW::new_per_item(gpu, &nets.student, &nets.student_grad, outer_cfg, &lr, &wd)?;
        let best = gpu.zeros(r, 1, s.param_len())?;
        gpu.write(&best, &student)?;
        let save_best = copy(gpu, &nets.student, &best)?;
        let save_best_run = (0..r)
            .map(|k| copy(gpu, &nets.student.item(k)?, &best.item(k)?))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let schedule = Schedule {
            steps: tr.steps,
            eval_every: tr.eval_every,
            max_consecutive_skips: 10,
        };
        let exp = Theory {
            runs,
            teacher_shape: t,
            student_shape: s,
            nets,
            best,
            save_best,
            save_best_run,
            train,
            eval,
            outer,
            init,
        };
        Ok((exp, schedule))
    }

    /// Runs in the batch.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// The device bytes an evaluation episode of `runs` runs of `cfg` needs.
    pub fn eval_bytes(cfg: &TheoryConfig, runs: usize) -> usize {
        let (t, s) = shapes(cfg);
        episode_sizes(cfg).1.bytes(runs, t, s)
    }

    /// The parameters of every run, on the device.
    pub fn nets(&self) -> &Nets {
        &self.nets
    }

    /// The training episode (its latents and buffers, for tests and embedders).
    pub fn train_episode(&self) -> &Episode {
        &self.train
    }

    /// Run `r`'s teacher `[H | W₂]` (host copy; the device holds the same).
    pub fn teacher(&self, r: usize) -> &[f32] {
        &self.runs[r].teacher
    }

    /// Run `r`'s constant initial latent.
    pub fn initial_latent(&self, r: usize) -> &[f32] {
        let m = self.student_shape.modules;
        &self.init[r * m..(r + 1) * m]
    }

    /// Infers the latents of evaluation family `k` for every run and reads back
    /// `(inferred ê, teacher outputs, student outputs)`, each run after the other.
    fn infer_family(&self, gpu: &Device, k: usize) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let latents: Vec<f32> = self
            .runs
            .iter()
            .flat_map(|r| r.eval_latents[k].iter().copied())
            .collect();
        gpu.write(&self.eval.latents, &latents)?;
        self.eval
            .set_streams(gpu, |i| data_stream(eval_purpose(k), i as u64));
        let mut step = Step::new(gpu);
        self.eval.record_inference(&mut step);
        let e_hat = step.read(&self.eval.inferred)?;
        let y = step.read(self.eval.query_targets())?;
        let y_hat = step.read(self.eval.query_outputs())?;
        let out = step.finish()?;
        Ok((
            out.get(e_hat).to_vec(),
            out.get(y).to_vec(),
            out.get(y_hat).to_vec(),
        ))
    }

    /// Every run's metrics on every family, from the inferred latents and outputs.
    fn family_metrics(&self, gpu: &Device) -> Result<Vec<SetMetrics<TheoryMetrics>>> {
        let (t, s) = (self.teacher_shape, self.student_shape);
        let student = gpu.read(&self.nets.student)?;
        let families = self.runs[0].families.len();
        let inferred: Vec<_> = (0..families)
            .map(|k| self.infer_family(gpu, k))
            .collect::<Result<_>>()?;
        let n = self.eval.size().tasks;
        let per_run_out = n * self.eval.size().query_inputs * t.outputs;
        let mut out = Vec::with_capacity(self.runs.len());
        for (ri, run) in self.runs.iter().enumerate() {
            let student_h = &student[ri * s.param_len()..ri * s.param_len() + s.hnet_len()];
            let teacher_h = &run.teacher[..t.hnet_len()];
            let slice = |v: &[f32], len: usize| v[ri * len..(ri + 1) * len].to_vec();
            let fit_hat = slice(&inferred[0].0, n * s.modules);
            let fit = &run.eval_latents[0];
            let (_, f_train) = latent_r2(&fit_hat, fit, &fit_hat, fit, t.modules, s.modules);
            let template = template_alignment(teacher_h, student_h, &f_train, t, s);
            let mut sets = SetMetrics::new();
            for (k, family) in run.families.iter().enumerate() {
                let e_hat = slice(&inferred[k].0, n * s.modules);
                let e = &run.eval_latents[k];
                let (y, y_hat) = (
                    slice(&inferred[k].1, per_run_out),
                    slice(&inferred[k].2, per_run_out),
                );
                let (loss, rel_s, rel_p) = losses(&y, &y_hat, t.outputs);
                let (r2_train, _) = latent_r2(&fit_hat, fit, &e_hat, e, t.modules, s.modules);
                let (r2_ood, f_ood) = latent_r2(&e_hat, e, &e_hat, e, t.modules, s.modules);
                let (avr, max) = generated_alignment(teacher_h, student_h, e, &e_hat, t, s);
                let metrics = TheoryMetrics {
                    loss,
                    inner_loss: None,
                    // Undefined (the reference's inf) when a sample's teacher output is 0.
                    rel_loss_sample: rel_s.is_finite().then_some(rel_s),
                    rel_loss_population: Some(rel_p),
                    r2_train_vs_ood: r2_train,
                    r2_ood_vs_ood: r2_ood,
                    template_alignment: Some(template),
                    template_alignment_ood: Some(template_alignment(
                        teacher_h, student_h, &f_ood, t, s,
                    )),
                    gen_avr_alignment: Some(avr),
                    gen_max_alignment: Some(max),
                };
                sets.insert(family.name.clone(), metrics);
            }
            out.push(sets);
        }
        Ok(out)
    }
}

/// The input stream of inner step `i` of training step `step` (`i = steps_inner`: the query).
pub fn train_stream(step: usize, steps_inner: usize, i: usize) -> u64 {
    data_stream(0, (step * (steps_inner + 1) + i) as u64)
}

/// The training latents of run `cfg` at step `step` (`meta_batch × M`).
pub fn train_latents(cfg: &TheoryConfig, step: usize) -> Result<Vec<f32>> {
    let list = cfg.task_list()?;
    let family = Family::training(&list, cfg.task.continuous);
    Ok(family.sample(
        cfg.task.modules,
        cfg.train.meta_batch,
        cfg.train.seed,
        step as u64,
    ))
}

/// The purpose byte of evaluation family `k` (0 is training).
fn eval_purpose(k: usize) -> u8 {
    1 + k as u8
}

/// The latent stream of evaluation family `k`.
fn eval_stream(k: usize) -> u64 {
    data_stream(eval_purpose(k), u64::MAX)
}

/// Transposes run-major set metrics into the loop's set → every run's metrics.
fn by_set(per_run: Vec<SetMetrics<TheoryMetrics>>) -> SetMetrics<RunsMetrics> {
    let mut out = SetMetrics::<RunsMetrics>::new();
    for sets in per_run {
        for (name, m) in sets {
            out.entry(name).or_default().0.push(m);
        }
    }
    out
}

impl Experiment for Theory {
    type Metrics = RunsMetrics;
    type Extras = RunsExtras;

    fn train_step(&self, gpu: &Device, step: usize) -> Result<StepReport<RunsMetrics>> {
        let (t, size) = (self.teacher_shape, self.train.size());
        let latents: Vec<f32> = self
            .runs
            .iter()
            .flat_map(|r| {
                r.families[0].sample(t.modules, size.tasks, r.cfg.train.seed, step as u64)
            })
            .collect();
        gpu.write(&self.train.latents, &latents)?;
        self.train
            .set_streams(gpu, |i| train_stream(step, size.steps_inner, i));
        let lr: Vec<f32> = self.runs.iter().map(|r| r.cfg.lr_at(step) as f32).collect();
        self.outer.set_lr_per_item(gpu, &lr)?;
        let mut rec = Step::new(gpu);
        self.train.record_inference(&mut rec);
        self.train.record_meta_gradient(&mut rec);
        self.outer.record_step(&mut rec);
        let query = rec.read(self.train.query_loss())?;
        let inner = rec.read(self.train.inner_loss())?;
        let skips = rec.read(self.outer.consecutive_skips())?;
        let out = rec.finish()?;
        // The loss kernel's per-task MSE, halved and averaged over each run's tasks.
        let half_mean = |v: &[f32]| -> Vec<f64> {
            v.chunks(size.tasks)
                .map(|c| 0.5 * c.iter().map(|&x| x as f64).sum::<f64>() / size.tasks as f64)
                .collect()
        };
        let metrics = half_mean(out.get(query))
            .into_iter()
            .zip(half_mean(out.get(inner)))
            .map(|(loss, inner)| TheoryMetrics {
                loss,
                inner_loss: Some(inner),
                ..TheoryMetrics::default()
            })
            .collect();
        let consecutive_skips = out.get(skips).iter().cloned().fold(0.0, f32::max) as u32;
        Ok(StepReport {
            metrics: PerRun(metrics),
            consecutive_skips,
        })
    }

    fn eval_sets(&self) -> Vec<String> {
        self.runs[0]
            .families
            .iter()
            .map(|f| f.name.clone())
            .collect()
    }

    fn evaluate(&self, gpu: &Device) -> Result<SetMetrics<RunsMetrics>> {
        Ok(by_set(self.family_metrics(gpu)?))
    }

    fn selection_set(&self) -> &str {
        "train"
    }

    fn score(m: &RunsMetrics) -> f64 {
        m.0.iter().map(|r| r.loss).sum::<f64>() / m.0.len().max(1) as f64
    }

    fn run_scores(m: &RunsMetrics) -> Vec<f64> {
        m.0.iter().map(|r| r.loss).collect()
    }

    fn keep_run(best: &mut RunsMetrics, current: &RunsMetrics, run: usize) {
        best.0[run] = current.0[run].clone();
    }

    fn save_best(&self, gpu: &Device, runs: &[usize]) -> Result<()> {
        if runs.len() == self.runs.len() {
            return Ok(gpu.run(&[&self.save_best])?);
        }
        let copies: Vec<&Dispatch> = runs.iter().map(|&k| &self.save_best_run[k]).collect();
        Ok(gpu.run(&copies)?)
    }

    fn skipped_steps(&self, gpu: &Device) -> Result<f64> {
        let skipped = gpu.read(self.outer.skipped())?;
        Ok(skipped.iter().cloned().fold(0.0, f32::max) as f64)
    }

    fn state(&self) -> TensorState<'_> {
        TensorState::new()
            .with("student", &self.nets.student)
            .with("best_student", &self.best)
            .nest("outer", self.outer.state())
    }

    fn describe_step(m: &RunsMetrics) -> String {
        format!("loss {:.5}", Self::score(m))
    }

    fn describe_eval(train: Option<&RunsMetrics>, sets: &SetMetrics<RunsMetrics>) -> String {
        let mean = |name: &str, f: fn(&TheoryMetrics) -> Option<f64>| {
            sets.get(name).map_or("–".to_string(), |m| {
                let v: Vec<f64> = m.0.iter().filter_map(f).collect();
                format!("{:.3}", v.iter().sum::<f64>() / v.len().max(1) as f64)
            })
        };
        let last = format!("h{}", sets.len().saturating_sub(1));
        let train = train.map_or(String::new(), |t| format!("train {:.5}  ", Self::score(t)));
        format!(
            "{train}R² h1 {} h2 {} {last} {}  alignment {}",
            mean("h1", |m| m.r2_train_vs_ood),
            mean("h2", |m| m.r2_train_vs_ood),
            mean(&last, |m| m.r2_train_vs_ood),
            mean("train", |m| m.template_alignment),
        )
    }

    fn summary_extras(&self, gpu: &Device) -> Result<RunsExtras> {
        let per_run = self.family_metrics(gpu)?;
        let extras = self
            .runs
            .iter()
            .zip(&per_run)
            .map(|(run, sets)| run_extras(&run.cfg, sets))
            .collect::<Result<_>>()?;
        Ok(PerRun(extras))
    }
}

/// A run's extras from its final family metrics.
fn run_extras(cfg: &TheoryConfig, sets: &SetMetrics<TheoryMetrics>) -> Result<RunExtras> {
    let hot: Vec<&TheoryMetrics> = sets
        .iter()
        .filter(|(name, _)| name.starts_with('h'))
        .map(|(_, m)| m)
        .collect();
    let mean = |f: fn(&TheoryMetrics) -> Option<f64>| -> Option<f64> {
        let v: Option<Vec<f64>> = hot.iter().map(|m| f(m)).collect();
        v.map(|v| v.iter().sum::<f64>() / v.len().max(1) as f64)
    };
    Ok(RunExtras {
        task_list: cfg.task.task_list.clone(),
        label: cfg.label()?.to_string(),
        continuous: cfg.task.continuous,
        ood_loss: mean(|m| Some(m.loss)).unwrap_or(f64::NAN),
        latent_r2: mean(|m| m.r2_train_vs_ood),
        alignment: sets.get("train").and_then(|m| m.template_alignment),
        gen_alignment: mean(|m| m.gen_avr_alignment),
    })
}

/// One line about the run for the CLI: the task list, its label and the parameter counts.
pub fn describe(cfg: &TheoryConfig) -> String {
    let (t, s) = shapes(cfg);
    let label = cfg.label().map_or("?".to_string(), |l| l.to_string());
    format!(
        "task list \"{}\" ({label}, {}), student {} meta parameters ({}× hidden, {}× modules), \
         teacher {}",
        cfg.task.task_list,
        if cfg.task.continuous {
            "continuous"
        } else {
            "discrete"
        },
        s.param_len(),
        cfg.student.hidden_factor,
        cfg.student.module_factor,
        t.param_len()
    )
}

impl ExperimentDef for Theory {
    const NAME: &'static str = NAME;
    type Config = TheoryConfig;
    const MEASURES: &'static [Measure] = columns::MEASURES;
    const SWEEP_PLOT: Option<SweepPlot> = Some(columns::SWEEP_PLOT);

    fn load(
        table: toml::Table,
        origin: &Path,
        overrides: &[String],
    ) -> Result<(TheoryConfig, toml::Table)> {
        Ok(TheoryConfig::from_table(table, origin, overrides)?)
    }

    fn describe(cfg: &TheoryConfig) -> String {
        describe(cfg)
    }

    fn build(gpu: &Device, cfgs: &[TheoryConfig], _resume: bool) -> Result<(Theory, Schedule)> {
        Theory::new(gpu, cfgs)
    }

    fn summary_columns(summary: &Path) -> Result<Vec<(String, String)>> {
        columns::summary_columns(summary)
    }

    fn batch_key(cfg: &TheoryConfig) -> Option<String> {
        Some(batch_key(cfg))
    }

    fn max_batch(cfg: &TheoryConfig, limit: usize) -> usize {
        batch::max_runs(cfg, limit)
    }

    fn train_batch(
        gpu: &Device,
        cfgs: &[TheoryConfig],
        members: &[per_run::MemberDir<'_>],
        batch_dir: &Path,
    ) -> Result<()> {
        per_run::train_batch::<Theory, _, _>(gpu, cfgs, members, batch_dir)
    }

    fn bench_step_shape(cfg: &TheoryConfig) -> Result<String> {
        Ok(format!(
            "{} tasks × {} inner steps",
            cfg.train.meta_batch, cfg.train.steps_inner
        ))
    }

    fn bench_step(
        gpu: &Device,
        cfg: &TheoryConfig,
        warmup: usize,
        steps: usize,
    ) -> Result<StepBenchReport> {
        let r = bench::bench_step(gpu, cfg, warmup, steps)?;
        let line = format!(
            "median {:.4} s/step  →  {:.3} outer steps/s, {:.0} task inner steps/s (wall clock, median of {steps})",
            r.median_s, r.steps_per_s, r.task_inner_steps_per_s
        );
        let mut lines = vec![line];
        lines.extend(r.cost.lines());
        StepBenchReport::new(&r, lines)
    }
}
