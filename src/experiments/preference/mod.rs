//! Schug et al.'s compositional-preference gridworld: an agent imitates an expert whose reward
//! for picking up an object is a task-specific combination of preference modules. The tasks are
//! the hyperteacher's task space with one layer (1..=K of M modules, continuous weights, the same
//! splits); the data are expert demonstrations generated on the device ([`source`]); the students
//! and the loop are the shared meta-learner ([`crate::experiments::meta_run`]).

pub mod config;
pub mod rollout;
pub mod source;

use std::path::Path;

pub use self::config::PreferenceConfig;
use self::rollout::{Returns, Rollouts};
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
/// the predicted Q values (there is no accuracy: the targets are values, not labels) and, for an
/// evaluation set, how the adapted student's greedy policy does in the world.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DemoMetrics {
    /// Query loss after adaptation.
    pub loss: f64,
    /// Support loss at the last inner step (before its update).
    pub support_loss: f64,
    /// Evaluation sets: the student's mean return from the start states of the query
    /// demonstrations (greedy in its predicted Q values, `horizon` steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_return: Option<f64>,
    /// Evaluation sets: the expert's mean return on the same episodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expert_return: Option<f64>,
    /// Evaluation sets: Σ student return / Σ expert return (1 = as good as the expert).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_ratio: Option<f64>,
}

impl DemoMetrics {
    fn new(m: EpisodeMetrics, r: Option<Returns>) -> Self {
        let n = r.map_or(0, |r| r.episodes).max(1) as f64;
        DemoMetrics {
            loss: m.loss,
            support_loss: m.support_loss,
            policy_return: r.map(|r| r.policy / n),
            expert_return: r.map(|r| r.expert / n),
            return_ratio: r.map(|r| r.policy / r.expert),
        }
    }
}

/// A preference-gridworld run: the shared meta-learning run on demonstration tasks.
pub struct Preference {
    run: MetaRun,
    source: PreferenceSource,
    /// The reward basis on the host (the rollouts' rewards).
    basis: Vec<f32>,
    cfg: PreferenceConfig,
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
        let source = PreferenceSource::new(gpu, cfg.world(), cfg.task.discount as f32, tr.seed)?;
        let learner = learner(gpu, cfg, &source)?;
        let basis = gpu.read(source.basis())?;
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
        let cfg = cfg.clone();
        Ok((
            Preference {
                run,
                source,
                basis,
                cfg,
            },
            schedule,
        ))
    }

    /// Adapts and scores set `i`, rolling the adapted policies out.
    fn evaluate_set(&self, gpu: &Device, i: usize) -> Result<DemoMetrics> {
        let set = &self.run.sets[i];
        let key = |stream| self.source.demo_key(stream);
        let mut probe = Rollouts {
            shape: self.cfg.world(),
            gamma: self.cfg.task.discount as f32,
            basis: &self.basis,
            latents: &set.latents,
            support: self.cfg.task.shots_support,
            query: self.cfg.task.shots_query,
            chunk_tasks: self.run.learner.eval_tasks(),
            key: &key,
            returns: Returns::default(),
        };
        let m = self.run.learner.evaluate_probed(
            gpu,
            &set.latents,
            self.run.latent_len,
            self.run.set_stream(i),
            &mut probe,
        )?;
        Ok(DemoMetrics::new(m, Some(probe.returns)))
    }
}

/// The config's student, meta-learned on demonstrations of `source`, with a probe that asks the
/// adapted student about one observation per query demonstration (the rollouts).
fn learner(gpu: &Device, cfg: &PreferenceConfig, source: &PreferenceSource) -> Result<MetaLearner> {
    struct Build<'a> {
        gpu: &'a Device,
        cfg: &'a PreferenceConfig,
        source: &'a PreferenceSource,
    }
    impl StudentTask for Build<'_> {
        type Out = Result<MetaLearner>;
        fn call<S: GpuStudent>(self, student: &S) -> Result<MetaLearner> {
            let (gpu, cfg) = (self.gpu, self.cfg);
            let tr = &cfg.train;
            let shots = (cfg.task.shots_support, cfg.task.shots_query);
            let meta = resolved_meta_config(tr, &cfg.train_params(), shots);
            let eval_batch = tr.eval_tasks.min(tr.meta_batch.max(64));
            MetaLearner::new(gpu, student, self.source, tr.meta_batch, eval_batch, meta)?
                .with_probe(gpu, student, cfg.task.shots_query)
        }
    }
    build_student(&cfg.student(), Build { gpu, cfg, source })
}

/// The student's parameter counts (meta, task) for a config, without touching the device.
pub fn param_counts(cfg: &PreferenceConfig) -> (usize, usize) {
    shape_param_counts(&cfg.student())
}

/// `loss/return ratio` of set `name`, or a dash when the run has no such set.
fn loss_of(sets: &SetMetrics<DemoMetrics>, name: &str) -> String {
    sets.get(name).map_or("–".into(), |m| {
        let ratio = m.return_ratio.map_or(String::new(), |r| format!("/{r:.3}"));
        format!("{:.4}{ratio}", m.loss)
    })
}

impl Experiment for Preference {
    type Metrics = DemoMetrics;
    type Extras = Extras;

    fn train_step(&self, gpu: &Device, step: usize) -> Result<StepReport<DemoMetrics>> {
        let r = self.run.train_step(gpu, step)?;
        Ok(StepReport {
            metrics: DemoMetrics::new(r.metrics, None),
            consecutive_skips: r.consecutive_skips,
        })
    }

    fn eval_sets(&self) -> Vec<String> {
        self.run.eval_sets()
    }

    fn evaluate(&self, gpu: &Device) -> Result<SetMetrics<DemoMetrics>> {
        let mut metrics = SetMetrics::new();
        for (i, s) in self.run.sets.iter().enumerate() {
            metrics.insert(s.name.clone(), self.evaluate_set(gpu, i)?);
        }
        Ok(metrics)
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
            "{train}valid {}  ood {} (loss/return vs expert)",
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
const TEST_RETURN: Col = Col::Set("test_return_ratio");
const OOD_RETURN: Col = Col::Set("ood_return_ratio");

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
    Measure::new("test return / expert", &[TEST_RETURN], |v| v[0], false),
    Measure::new("ood return / expert", &[OOD_RETURN], |v| v[0], false),
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
        let source = PreferenceSource::new(gpu, cfg.world(), cfg.task.discount as f32, tr.seed)?;
        let learner = learner(gpu, cfg, &source)?;
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
                let ratio = m.return_ratio.map_or(String::new(), |r| format!("{r:.6}"));
                cols.push((format!("{which}_{set}_return_ratio"), ratio));
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
