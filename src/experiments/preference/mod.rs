//! Schug et al.'s compositional-preference gridworld: an agent imitates an expert whose reward
//! for picking up an object is a task-specific combination of preference modules. The tasks are
//! the hyperteacher's task space with one layer (1..=K of M modules, continuous weights, the same
//! splits); the data are expert demonstrations generated on the device ([`source`]); the students
//! and the loop are the shared meta-learner ([`crate::experiments::meta_run`]).

pub mod config;
pub mod source;

use std::path::Path;

pub use self::config::PreferenceConfig;
use self::source::PreferenceSource;
use crate::checkpoint::TensorState;
use crate::error::{arg_err, Result};
use serde::{Deserialize, Serialize};

use crate::experiments::hyperteacher::bench::{bench_learner, report_lines, StepPlan};
use crate::experiments::hyperteacher::eval_sets::{eval_sets, EvalPlan};
use crate::experiments::hyperteacher::setup::{resolved_meta_config, Pools};
use crate::experiments::hyperteacher::student::{build_student, shape_param_counts, StudentTask};
use crate::experiments::hyperteacher::Extras;
use crate::experiments::meta_run::MetaRun;
use crate::experiments::{ExperimentDef, StepBenchReport};
use crate::gpu::Device;
use crate::report::plot::{SecondPanel, SweepPlot};
use crate::report::runs_table::{Col, Measure};
use crate::run::read_json;
use crate::students::gpu::GpuStudent;
use crate::train::meta::{EpisodeMetrics, MetaLearner};
use crate::train::runner::{self, Experiment, Schedule, SetMetrics, StepReport};

/// The name configs give this experiment (`experiment = "preference"`).
pub const NAME: &str = "preference";

/// What `hypermod train` writes to `summary.json` for this experiment.
pub type Summary = runner::Summary<DemoMetrics, Extras>;

/// One episode's scores on demonstrations (mean over its tasks): the masked ½-squared error of
/// the predicted Q values. There is no accuracy: the targets are values, not labels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DemoMetrics {
    /// Query loss after adaptation.
    pub loss: f64,
    /// Support loss at the last inner step (before its update).
    pub support_loss: f64,
}

impl From<EpisodeMetrics> for DemoMetrics {
    fn from(m: EpisodeMetrics) -> Self {
        DemoMetrics {
            loss: m.loss,
            support_loss: m.support_loss,
        }
    }
}

/// A preference-gridworld run: the shared meta-learning run on demonstration tasks.
pub struct Preference {
    run: MetaRun,
}

impl Preference {
    /// Resolves a validated config into the run's parts and the loop's schedule.
    pub fn new(gpu: &Device, cfg: &PreferenceConfig) -> Result<(Preference, Schedule)> {
        let tr = &cfg.train;
        let pools = Pools::new(
            cfg.task_space()?,
            cfg.task_support(),
            cfg.task.continuous,
            tr.seed,
        )?;
        let learner = learner(gpu, cfg)?;
        let plan = EvalPlan {
            tasks: tr.eval_tasks,
            seed: tr.seed,
            continuous: cfg.task.continuous,
        };
        let sets = eval_sets(&pools, &plan)?;
        let run = MetaRun {
            latent_len: pools.space.latent_len(),
            modules: pools.space.modules(),
            learner,
            train_pool: pools.train_pool,
            sets,
            meta_batch: tr.meta_batch,
            seed: tr.seed,
            inject_nan_steps: tr.inject_nan_steps.clone(),
        };
        let schedule = Schedule {
            steps: cfg.steps_outer(),
            eval_every: tr.eval_every,
            max_consecutive_skips: tr.max_consecutive_skips,
        };
        Ok((Preference { run }, schedule))
    }
}

/// The config's student, meta-learned on demonstrations of the config's world.
fn learner(gpu: &Device, cfg: &PreferenceConfig) -> Result<MetaLearner> {
    struct Build<'a> {
        gpu: &'a Device,
        cfg: &'a PreferenceConfig,
    }
    impl StudentTask for Build<'_> {
        type Out = Result<MetaLearner>;
        fn call<S: GpuStudent>(self, student: &S) -> Result<MetaLearner> {
            let (gpu, cfg) = (self.gpu, self.cfg);
            let tr = &cfg.train;
            let source =
                PreferenceSource::new(gpu, cfg.world(), cfg.task.discount as f32, tr.seed)?;
            let shots = (cfg.task.shots_support, cfg.task.shots_query);
            let meta = resolved_meta_config(tr, &cfg.train_params(), shots);
            let eval_batch = tr.eval_tasks.min(tr.meta_batch.max(64));
            MetaLearner::new(gpu, student, &source, tr.meta_batch, eval_batch, meta)
        }
    }
    build_student(&cfg.student(), Build { gpu, cfg })
}

/// The student's parameter counts (meta, task) for a config, without touching the device.
pub fn param_counts(cfg: &PreferenceConfig) -> (usize, usize) {
    shape_param_counts(&cfg.student())
}

fn loss_of(sets: &SetMetrics<DemoMetrics>, name: &str) -> String {
    sets.get(name)
        .map_or("–".into(), |m| format!("{:.4}", m.loss))
}

impl Experiment for Preference {
    type Metrics = DemoMetrics;
    type Extras = Extras;

    fn train_step(&self, gpu: &Device, step: usize) -> Result<StepReport<DemoMetrics>> {
        let r = self.run.train_step(gpu, step)?;
        Ok(StepReport {
            metrics: r.metrics.into(),
            consecutive_skips: r.consecutive_skips,
        })
    }

    fn eval_sets(&self) -> Vec<String> {
        self.run.eval_sets()
    }

    fn evaluate(&self, gpu: &Device) -> Result<SetMetrics<DemoMetrics>> {
        let sets = self.run.evaluate(gpu)?;
        Ok(sets.into_iter().map(|(k, m)| (k, m.into())).collect())
    }

    fn selection_set(&self) -> &str {
        "valid"
    }

    fn score(m: &DemoMetrics) -> f64 {
        m.loss
    }

    fn save_best(&self, gpu: &Device, _runs: &[usize]) -> Result<()> {
        self.run.learner.save_best(gpu)
    }

    fn skipped_steps(&self, gpu: &Device) -> Result<f64> {
        self.run.learner.skipped_steps(gpu)
    }

    fn state(&self) -> TensorState<'_> {
        self.run.learner.state()
    }

    fn describe_step(m: &DemoMetrics) -> String {
        format!("loss {:.4}", m.loss)
    }

    fn describe_eval(t: Option<&DemoMetrics>, sets: &SetMetrics<DemoMetrics>) -> String {
        let train = t.map_or(String::new(), |t| {
            format!("train {:.4} (support {:.4})  ", t.loss, t.support_loss)
        });
        format!(
            "{train}valid {}  ood {}",
            loss_of(sets, "valid"),
            loss_of(sets, "ood")
        )
    }

    /// Module decoding at the final state: adapted parameters → preference vectors, fitted on
    /// in-distribution (test) tasks, scored on OOD ones.
    fn summary_extras(&self, gpu: &Device) -> Result<Extras> {
        Ok(Extras {
            decoder_r2: self.run.decoder_r2(gpu)?,
        })
    }
}

const TEST_LOSS: Col = Col::Set("test_loss");
const OOD_LOSS: Col = Col::Set("ood_loss");

/// The `summary.md` measures: the Q-value loss on test and OOD tasks, the gap, decoder R², minutes.
const MEASURES: &[Measure] = &[
    Measure::new("test loss", &[TEST_LOSS], |v| v[0], false),
    Measure::new("ood loss", &[OOD_LOSS], |v| v[0], false),
    Measure::new(
        "gap loss (ood − test)",
        &[OOD_LOSS, TEST_LOSS],
        |v| v[0] - v[1],
        true,
    ),
    Measure::new("decoder R²", &[Col::Run("decoder_r2")], |v| v[0], false),
    Measure::new("minutes", &[Col::Run("seconds")], |v| v[0] / 60.0, false),
];

impl ExperimentDef for Preference {
    const NAME: &'static str = NAME;
    type Config = PreferenceConfig;
    const MEASURES: &'static [Measure] = MEASURES;
    const SWEEP_PLOT: Option<SweepPlot> = Some(SweepPlot {
        metric: "loss",
        first: ("test", "final_test_loss"),
        second: ("ood", "final_ood_loss"),
        right: SecondPanel::Gap,
    });

    fn load(
        table: toml::Table,
        origin: &Path,
        overrides: &[String],
    ) -> Result<(PreferenceConfig, toml::Table)> {
        Ok(PreferenceConfig::from_table(table, origin, overrides)?)
    }

    fn describe(cfg: &PreferenceConfig) -> String {
        let (meta, task) = param_counts(cfg);
        format!("{:?}, {meta} meta / {task} task parameters", cfg.model.kind)
    }

    fn build(
        gpu: &Device,
        cfgs: &[PreferenceConfig],
        _resume: bool,
    ) -> Result<(Preference, Schedule)> {
        match cfgs {
            [cfg] => Preference::new(gpu, cfg),
            _ => Err(arg_err(NAME, "runs one config at a time")),
        }
    }

    fn bench_step_shape(cfg: &PreferenceConfig) -> Result<String> {
        Ok(format!(
            "{} tasks × {} + {} demonstrations of {} steps × {} inner steps",
            cfg.train.meta_batch,
            cfg.task.shots_support,
            cfg.task.shots_query,
            cfg.task.horizon,
            cfg.train_params().steps_inner
        ))
    }

    fn bench_step(
        gpu: &Device,
        cfg: &PreferenceConfig,
        warmup: usize,
        steps: usize,
    ) -> Result<StepBenchReport> {
        cfg.validate()?;
        let (p, tr) = (cfg.train_params(), &cfg.train);
        let pools = Pools::new(
            cfg.task_space()?,
            cfg.task_support(),
            cfg.task.continuous,
            tr.seed,
        )?;
        let learner = learner(gpu, cfg)?;
        let plan = StepPlan {
            pool: &pools.train_pool,
            meta_batch: tr.meta_batch,
            seed: tr.seed,
            steps_inner: p.steps_inner,
            meta_gradient: p.meta_gradient,
            params: param_counts(cfg),
        };
        let r = bench_learner(gpu, &learner, &plan, warmup, steps)?;
        StepBenchReport::new(&r, report_lines(&r))
    }

    /// `runs.csv`: the loss of every set at the final and the best step, best step, decoder
    /// R², seconds.
    fn summary_columns(path: &Path) -> Result<Vec<(String, String)>> {
        let s: Summary = read_json(path)?;
        let mut cols = Vec::new();
        for (which, sets) in [("final", &s.r#final), ("best", &s.best)] {
            for (set, m) in sets {
                cols.push((format!("{which}_{set}_loss"), format!("{:.6}", m.loss)));
            }
        }
        cols.push((
            "best_step".into(),
            s.best_step.single().map_or(String::new(), usize::to_string),
        ));
        let r2 = s.extras.decoder_r2.as_ref();
        cols.push((
            "decoder_r2".into(),
            r2.map_or(String::new(), |d| format!("{:.6}", d.mean)),
        ));
        cols.push(("seconds".into(), format!("{:.1}", s.seconds)));
        Ok(cols)
    }
}
