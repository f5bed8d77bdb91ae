//! The hyperteacher experiment (Schug et al. 2024): the teacher's task space and splits
//! ([`tasks`]), its config sections ([`config`]), evaluation sets (valid / test / ood / ood_k),
//! decoder R² ([`decoder`]), summary columns ([`columns`]) and `bench step` ([`mod@bench`]).
//! [`Hyperteacher`] is the experiment as the trainer ([`crate::train::runner`]) sees it.

pub mod bench;
pub mod columns;
pub mod config;
pub mod decoder;
pub(crate) mod eval_sets;
pub(crate) mod setup;
pub mod student;
pub mod target_stats;
pub mod tasks;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use self::config::{
    HyperteacherConfig, ModelConfig, ModelKind, Support, TaskConfig, TrainConfig, TrainParams,
    MAX_BATCH, MAX_WIDTH,
};
pub use self::decoder::{DecoderR2, MAX_DECODER_DIM};
use self::eval_sets::{eval_sets, EvalPlan};
pub use self::student::param_counts;
use crate::checkpoint::TensorState;
use crate::error::{arg_err, Result};
use crate::experiments::meta_run::MetaRun;
use crate::experiments::{ExperimentDef, StepBenchReport};
use crate::gpu::Device;
use crate::report::plot::SweepPlot;
use crate::report::runs_table::Measure;
use crate::train::meta::EpisodeMetrics;
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

/// A hyperteacher run on the GPU: the shared meta-learning run on the teacher's tasks.
pub struct Hyperteacher {
    run: MetaRun,
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
        let sets = eval_sets(&s.pools, &plan)?;
        let schedule = Schedule {
            steps: cfg.steps_outer(),
            eval_every: tr.eval_every,
            max_consecutive_skips: tr.max_consecutive_skips,
        };
        let run = MetaRun {
            latent_len: s.pools.space.latent_len(),
            modules: s.pools.space.modules(),
            learner: s.learner,
            train_pool: s.pools.train_pool,
            sets,
            meta_batch: tr.meta_batch,
            seed: tr.seed,
            inject_nan_steps: tr.inject_nan_steps.clone(),
        };
        Ok((Hyperteacher { run }, schedule))
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
        self.run.train_step(gpu, step)
    }

    fn eval_sets(&self) -> Vec<String> {
        self.run.eval_sets()
    }

    fn evaluate(&self, gpu: &Device) -> Result<SetMetrics<EpisodeMetrics>> {
        self.run.evaluate(gpu)
    }

    fn selection_set(&self) -> &str {
        "valid"
    }

    fn score(m: &EpisodeMetrics) -> f64 {
        m.loss
    }

    fn save_best(&self, gpu: &Device, _runs: &[usize]) -> Result<()> {
        // One run: `runs` is `[0]`.
        self.run.learner.save_best(gpu)
    }

    fn skipped_steps(&self, gpu: &Device) -> Result<f64> {
        self.run.learner.skipped_steps(gpu)
    }

    fn state(&self) -> TensorState<'_> {
        self.run.learner.state()
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
        Ok(Extras {
            decoder_r2: self.run.decoder_r2(gpu)?,
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
        let lines = bench::report_lines(&r);
        StepBenchReport::new(&r, lines)
    }
}
