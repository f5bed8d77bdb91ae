//! The hyperteacher experiment (Schug et al. 2024): the teacher's task space and splits
//! ([`tasks`]), its config sections ([`config`]), evaluation sets (valid / test / ood / ood_k),
//! decoder R² ([`decoder`]), summary columns ([`columns`]) and `bench step` ([`mod@bench`]).
//! [`Hyperteacher`] is the experiment as the trainer ([`crate::train::runner`]) sees it.

pub mod bench;
pub mod columns;
pub mod config;
pub mod decoder;
mod eval_sets;
mod setup;
mod student;
pub mod target_stats;
pub mod tasks;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use self::config::{
    HyperteacherConfig, ModelConfig, ModelKind, Support, TaskConfig, TrainConfig, TrainParams,
    MAX_BATCH, MAX_WIDTH,
};
use self::decoder::{decode, Adapted};
pub use self::decoder::{DecoderR2, MAX_DECODER_DIM};
use self::eval_sets::{eval_sets, EvalPlan, EvalSet};
pub use self::student::param_counts;
use crate::checkpoint::TensorState;
use crate::error::{arg_err, Result};
use crate::experiments::{ExperimentDef, StepBenchReport};
use crate::gpu::Device;
use crate::report::plot::SweepPlot;
use crate::report::runs_table::Measure;
use crate::train::meta::{data_stream, sample_latents, EpisodeMetrics, MetaLearner};
use crate::train::runner::{self, Experiment, Schedule, SetMetrics, StepReport};

/// The name configs give this experiment (`experiment = "hyperteacher"`).
pub const NAME: &str = "hyperteacher";

/// What `hypermod train` writes to `summary.json` for this experiment.
pub type Summary = runner::Summary<EpisodeMetrics, Extras>;

/// This experiment's `summary.json` fields.
#[derive(Debug, Serialize, Deserialize)]
pub struct Extras {
    /// Decoder R² (test → ood), `None` when skipped (more than [`MAX_DECODER_DIM`] task
    /// parameters).
    pub decoder_r2: Option<DecoderR2>,
}

/// A hyperteacher run on the GPU: the meta-learner, its training tasks and evaluation sets, and
/// the few resolved settings the steps need.
pub struct Hyperteacher {
    learner: MetaLearner,
    train_pool: Vec<Vec<f32>>,
    sets: Vec<EvalSet>,
    latent_len: usize,
    modules: usize,
    meta_batch: usize,
    seed: u64,
    inject_nan_steps: Vec<usize>,
}

impl Hyperteacher {
    /// Resolves a validated config into the run's parts and the loop's schedule.
    pub fn new(gpu: &Device, cfg: &HyperteacherConfig) -> Result<(Hyperteacher, Schedule)> {
        let s = setup::setup(gpu, cfg)?;
        let tr = &cfg.train;
        let plan = EvalPlan {
            tasks: tr.eval_tasks,
            seed: tr.seed,
            continuous: cfg.task.continuous,
        };
        let sets = eval_sets(&s, &plan)?;
        let schedule = Schedule {
            steps: tr.steps_outer,
            eval_every: tr.eval_every,
            max_consecutive_skips: tr.max_consecutive_skips,
        };
        let exp = Hyperteacher {
            latent_len: s.space.latent_len(),
            modules: s.space.modules(),
            learner: s.learner,
            train_pool: s.train_pool,
            sets,
            meta_batch: tr.meta_batch,
            seed: tr.seed,
            inject_nan_steps: tr.inject_nan_steps.clone(),
        };
        Ok((exp, schedule))
    }

    /// Adapts and scores set `i` (its data stream is fixed by its index); with `keep`, also
    /// returns every task's adapted parameters.
    fn evaluate_set(
        &self,
        gpu: &Device,
        i: usize,
        keep: bool,
    ) -> Result<(EpisodeMetrics, Vec<f32>)> {
        let s = &self.sets[i];
        let stream = data_stream(1 + i as u8, 0);
        self.learner
            .evaluate(gpu, &s.latents, self.latent_len, stream, keep)
    }

    /// The adapted parameters and latents of the set named `name`, if the run has it.
    fn adapted(&self, gpu: &Device, name: &str) -> Result<Option<(Vec<f32>, &[f32])>> {
        let Some(i) = self.sets.iter().position(|s| s.name == name) else {
            return Ok(None);
        };
        let (_, params) = self.evaluate_set(gpu, i, true)?;
        Ok(Some((params, &self.sets[i].latents)))
    }
}

/// `loss/acc` of set `name`, or a dash when the run has no such set.
fn loss_acc(sets: &SetMetrics<EpisodeMetrics>, name: &str) -> String {
    sets.get(name)
        .map_or("–".into(), |m| format!("{:.4}/{:.3}", m.loss, m.acc))
}

impl Experiment for Hyperteacher {
    type Metrics = EpisodeMetrics;
    type Extras = Extras;

    fn train_step(&self, gpu: &Device, step: usize) -> Result<StepReport<EpisodeMetrics>> {
        let latents = sample_latents(&self.train_pool, self.meta_batch, self.seed, step as u64);
        // `inject_nan_steps` counts steps from 1.
        let inject = self.inject_nan_steps.contains(&(step + 1));
        let (metrics, consecutive_skips) =
            self.learner
                .train_step_with(gpu, &latents, data_stream(0, step as u64), inject)?;
        Ok(StepReport {
            metrics,
            consecutive_skips,
        })
    }

    fn eval_sets(&self) -> Vec<String> {
        self.sets.iter().map(|s| s.name.clone()).collect()
    }

    fn evaluate(&self, gpu: &Device) -> Result<SetMetrics<EpisodeMetrics>> {
        let mut metrics = SetMetrics::new();
        for (i, s) in self.sets.iter().enumerate() {
            metrics.insert(s.name.clone(), self.evaluate_set(gpu, i, false)?.0);
        }
        Ok(metrics)
    }

    fn selection_set(&self) -> &str {
        "valid"
    }

    fn score(m: &EpisodeMetrics) -> f64 {
        m.loss
    }

    fn save_best(&self, gpu: &Device, _runs: &[usize]) -> Result<()> {
        // One run: `runs` is `[0]`.
        self.learner.save_best(gpu)
    }

    fn skipped_steps(&self, gpu: &Device) -> Result<f64> {
        self.learner.skipped_steps(gpu)
    }

    fn state(&self) -> TensorState<'_> {
        self.learner.state()
    }

    fn describe_step(m: &EpisodeMetrics) -> String {
        format!("loss {:.4} acc {:.3}", m.loss, m.acc)
    }

    fn describe_eval(t: Option<&EpisodeMetrics>, sets: &SetMetrics<EpisodeMetrics>) -> String {
        let train = t.map_or(String::new(), |t| {
            format!(
                "train {:.4}/{:.3} (support {:.4})  ",
                t.loss, t.acc, t.support_loss
            )
        });
        format!(
            "{train}valid {}  ood {}",
            loss_acc(sets, "valid"),
            loss_acc(sets, "ood")
        )
    }

    /// Module decoding at the final state: fit on in-distribution (test) tasks, score on OOD.
    fn summary_extras(&self, gpu: &Device) -> Result<Extras> {
        let dim = self.learner.layout().task_len();
        if dim > MAX_DECODER_DIM {
            return Ok(Extras { decoder_r2: None });
        }
        let (Some(fit), Some(ood)) = (self.adapted(gpu, "test")?, self.adapted(gpu, "ood")?) else {
            return Ok(Extras { decoder_r2: None });
        };
        let (fit, ood) = (
            Adapted {
                params: &fit.0,
                latents: fit.1,
            },
            Adapted {
                params: &ood.0,
                latents: ood.1,
            },
        );
        let r2 = decode(fit, ood, dim, self.latent_len, self.modules);
        Ok(Extras {
            decoder_r2: Some(r2),
        })
    }
}

impl ExperimentDef for Hyperteacher {
    const NAME: &'static str = NAME;
    type Config = HyperteacherConfig;
    const MEASURES: &'static [Measure] = columns::MEASURES;
    const SWEEP_PLOT: Option<SweepPlot> = Some(columns::SWEEP_PLOT);

    fn load(
        table: toml::Table,
        origin: &Path,
        overrides: &[String],
    ) -> Result<(HyperteacherConfig, toml::Table)> {
        Ok(HyperteacherConfig::from_table(table, origin, overrides)?)
    }

    fn describe(cfg: &HyperteacherConfig) -> String {
        let (meta, task) = param_counts(cfg);
        format!("{:?}, {meta} meta / {task} task parameters", cfg.model.kind)
    }

    fn build(
        gpu: &Device,
        cfgs: &[HyperteacherConfig],
        _resume: bool,
    ) -> Result<(Hyperteacher, Schedule)> {
        match cfgs {
            [cfg] => Hyperteacher::new(gpu, cfg),
            _ => Err(arg_err(NAME, "runs one config at a time")),
        }
    }

    fn summary_columns(summary: &Path) -> Result<Vec<(String, String)>> {
        columns::summary_columns(summary)
    }

    fn bench_step_shape(cfg: &HyperteacherConfig) -> Result<String> {
        Ok(format!(
            "{} tasks × {} inner steps",
            cfg.train.meta_batch,
            cfg.train_params().steps_inner
        ))
    }

    fn bench_step(
        gpu: &Device,
        cfg: &HyperteacherConfig,
        warmup: usize,
        steps: usize,
    ) -> Result<StepBenchReport> {
        let r = bench::bench_step(gpu, cfg, warmup, steps)?;
        let sweep = r.reverse_sweep.map_or(String::new(), |m| format!(" ({m})"));
        let mut lines = vec![
            format!(
                "median {:.4} s/step  →  {:.3} outer steps/s, {:.1} tasks/s (wall clock, median of {steps})",
                r.median_s, r.steps_per_s, r.tasks_per_s
            ),
            format!(
                "meta-gradient {}; reverse-sweep memory{sweep} {:.1} MiB; peak device memory {:.1} MiB",
                r.meta_gradient,
                r.sweep_bytes as f64 / (1u64 << 20) as f64,
                r.peak_bytes as f64 / (1u64 << 20) as f64
            ),
        ];
        lines.extend(r.cost.lines());
        StepBenchReport::new(&r, lines)
    }
}
