//! The one trait every experiment implements ([`ExperimentDef`]) and what the commands see of it
//! ([`Kind`], [`ExperimentConfig`]). Adding an experiment is a folder whose struct implements
//! [`ExperimentDef`] (and the loop's [`Experiment`]) and one line in
//! [`super::REGISTRY`]; `train`, `resume`, `sweep`, `bench step`, `plot`, the Python
//! `Experiment` and the CLI's reports dispatch through it.
//!
//! What every experiment shares is written here once: a run into a fresh directory, a resume
//! from its checkpoint, a session stepped from outside the loop, a sweep batch and its checks.
//! One concept, the registry: the trait, its erased form and the handles the commands hold.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::checkpoint::TensorState;
use crate::config::{experiment_of, read_table, suggest, EXPERIMENT_KEY};
use crate::error::{arg_err, Error, Result};
use crate::experiments::per_run::MemberDir;
use crate::gpu::Device;
use crate::report::plot::{PlotError, SweepPlot};
use crate::report::runs_table::Measure;
use crate::report::RunsTable;
use crate::run::{check_fresh_run_dir, create_dir, lock_dir, start_run_dir};
use crate::train::runner::{self, Experiment, Schedule};

/// An experiment: its config section, set-up, run tables, sweep batching and reports. The
/// implementing type is the experiment's own struct, which the training loop runs
/// ([`Experiment`]); everything else has a default for experiments that do not need it.
pub trait ExperimentDef: Experiment + Send + Sync + Sized + 'static {
    /// The name configs give in their `experiment` key.
    const NAME: &'static str;
    /// The experiment's typed, validated config.
    type Config: Clone + fmt::Debug + PartialEq + Send + Sync + 'static;

    /// Reads a config table (its `experiment` key already checked), applies `overrides` and
    /// validates; returns the config and the resolved table. `origin` names it in errors.
    fn load(
        table: toml::Table,
        origin: &Path,
        overrides: &[String],
    ) -> Result<(Self::Config, toml::Table)>;

    /// One line about a run for the CLI (model, sizes, parameter counts).
    fn describe(cfg: &Self::Config) -> String;

    /// Sets up the runs of `cfgs` (one unless the experiment batches runs: all then share one
    /// [`ExperimentDef::batch_key`], checked before) and the loop's schedule. `resume`: the
    /// state will be restored from a checkpoint (set-up that only makes the initial state may
    /// be skipped).
    fn build(gpu: &Device, cfgs: &[Self::Config], resume: bool) -> Result<(Self, Schedule)>;

    /// The `runs.csv` metric columns of the finished run whose `summary.json` is at `path`.
    fn summary_columns(summary: &Path) -> Result<Vec<(String, String)>>;
    /// The measures of a sweep's `summary.md`.
    const MEASURES: &'static [Measure];
    /// What `hypermod plot SWEEP_DIR` compares per grid point, if anything.
    const SWEEP_PLOT: Option<SweepPlot> = None;
    /// The config key a sweep's `seeds` set.
    const SEED_KEY: &'static str = "train.seed";

    /// Writes the experiment's own sweep-level files from the sweep's `runs.csv` table.
    fn write_sweep_summary(_out: &Path, _table: &RunsTable) -> Result<()> {
        Ok(())
    }
    /// The experiment's own sweep plots.
    fn plot_sweep_extra(
        _out: &Path,
        _table: &RunsTable,
    ) -> std::result::Result<Vec<PathBuf>, PlotError> {
        Ok(Vec::new())
    }

    /// For experiments that train several runs as one batch, the settings runs must share to be
    /// batched together; `None` (the default) trains runs one at a time.
    fn batch_key(_cfg: &Self::Config) -> Option<String> {
        None
    }
    /// How many runs of `cfg`'s shape one batch may hold, at most `limit`.
    fn max_batch(_cfg: &Self::Config, _limit: usize) -> usize {
        1
    }
    /// Trains `cfgs` (one [`ExperimentDef::batch_key`]) as one batch in `batch_dir` and writes
    /// each member's run directory as if it had run alone.
    fn train_batch(
        _gpu: &Device,
        _cfgs: &[Self::Config],
        _members: &[MemberDir<'_>],
        _batch_dir: &Path,
    ) -> Result<()> {
        Err(arg_err(
            "sweep",
            format!("{} runs do not train as a batch", Self::NAME),
        ))
    }

    /// `hypermod bench step`: what one step holds, printed before the measurement (e.g. "16
    /// tasks × 10 inner steps"); an error for experiments without a step benchmark.
    fn bench_step_shape(_cfg: &Self::Config) -> Result<String> {
        Err(arg_err(
            "bench step",
            format!("the {} experiment has no step benchmark", Self::NAME),
        ))
    }
    /// `hypermod bench step`: times `steps` training steps after `warmup`.
    fn bench_step(
        _gpu: &Device,
        _cfg: &Self::Config,
        _warmup: usize,
        _steps: usize,
    ) -> Result<StepBenchReport> {
        Err(arg_err(
            "bench step",
            format!("the {} experiment has no step benchmark", Self::NAME),
        ))
    }
}

/// A step benchmark's result: the lines the CLI prints and the JSON `--json` writes.
pub struct StepBenchReport {
    /// Human-readable result lines.
    pub lines: Vec<String>,
    /// The full result.
    pub json: serde_json::Value,
}

impl StepBenchReport {
    /// A report of `value` (serialised for `--json`) with its printed `lines`.
    pub fn new(value: &impl Serialize, lines: Vec<String>) -> Result<StepBenchReport> {
        let json = serde_json::to_value(value)
            .map_err(|e| arg_err("bench step", format!("the result is not JSON: {e}")))?;
        Ok(StepBenchReport { lines, json })
    }
}

/// Checks the opening of a batch: at least one run, and every run with the first one's
/// [`ExperimentDef::batch_key`].
pub fn check_batch<D: ExperimentDef>(cfgs: &[D::Config]) -> Result<()> {
    let Some(first) = cfgs.first() else {
        return Err(arg_err(D::NAME, "a batch needs at least one run"));
    };
    let key = D::batch_key(first);
    if let Some(i) = cfgs.iter().position(|c| D::batch_key(c) != key) {
        return Err(arg_err(
            D::NAME,
            format!(
                "runs of one batch must share every size and step count (run {i} differs from \
                 run 0 in more than what a batch may vary)"
            ),
        ));
    }
    Ok(())
}

/// A finished run's `summary.json` as the experiment wrote it (pretty JSON, the experiment's
/// own fields in their order).
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    json: String,
}

impl RunSummary {
    fn of(summary: &impl Serialize) -> Result<RunSummary> {
        let json = serde_json::to_string_pretty(summary)
            .map_err(|e| arg_err("summary", format!("not JSON: {e}")))?;
        Ok(RunSummary { json })
    }

    /// The summary as pretty-printed JSON.
    pub fn json(&self) -> &str {
        &self.json
    }
}

/// One step of an experiment driven from outside the loop (the Python `Experiment`): the loop's
/// [`Experiment`] with its metrics as JSON, for any experiment.
pub trait SteppedExperiment: Send + Sync {
    /// Trains step `step`; its metrics and consecutive skipped steps.
    fn step_json(&self, gpu: &Device, step: usize) -> Result<(serde_json::Value, u32)>;
    /// Every evaluation set's metrics, by set name.
    fn evaluate_json(&self, gpu: &Device) -> Result<serde_json::Value>;
    /// Every tensor an exact resume needs.
    fn tensor_state(&self) -> TensorState<'_>;
}

fn json<T: Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| Error::InvalidArgument {
        op: "session",
        detail: format!("metrics are not JSON: {e}"),
    })
}

impl<E: Experiment + Send + Sync> SteppedExperiment for E {
    fn step_json(&self, gpu: &Device, step: usize) -> Result<(serde_json::Value, u32)> {
        let r = self.train_step(gpu, step)?;
        Ok((json(&r.metrics)?, r.consecutive_skips))
    }
    fn evaluate_json(&self, gpu: &Device) -> Result<serde_json::Value> {
        json(&self.evaluate(gpu)?)
    }
    fn tensor_state(&self) -> TensorState<'_> {
        self.state()
    }
}

/// What the commands call on a registered experiment, its config type erased. Implemented once,
/// for every [`ExperimentDef`], by [`Registration`].
pub trait Registered: Send + Sync {
    /// [`ExperimentDef::NAME`].
    fn name(&self) -> &'static str;
    /// [`ExperimentDef::SEED_KEY`].
    fn seed_key(&self) -> &'static str;
    /// [`ExperimentDef::summary_columns`].
    fn summary_columns(&self, summary: &Path) -> Result<Vec<(String, String)>>;
    /// [`ExperimentDef::MEASURES`].
    fn measures(&self) -> &'static [Measure];
    /// [`ExperimentDef::SWEEP_PLOT`].
    fn sweep_plot(&self) -> Option<SweepPlot>;
    /// [`ExperimentDef::write_sweep_summary`].
    fn write_sweep_summary(&self, out: &Path, table: &RunsTable) -> Result<()>;
    /// [`ExperimentDef::plot_sweep_extra`].
    fn plot_sweep_extra(
        &self,
        out: &Path,
        table: &RunsTable,
    ) -> std::result::Result<Vec<PathBuf>, PlotError>;
    #[doc(hidden)]
    fn load_any(
        &self,
        table: toml::Table,
        origin: &Path,
        overrides: &[String],
    ) -> Result<(Arc<dyn Any + Send + Sync>, toml::Table)>;
    #[doc(hidden)]
    fn describe_any(&self, cfg: &dyn Any) -> String;
    #[doc(hidden)]
    fn eq_any(&self, a: &dyn Any, b: &dyn Any) -> bool;
    #[doc(hidden)]
    fn debug_any(&self, cfg: &dyn Any, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    #[doc(hidden)]
    fn train_any(
        &self,
        gpu: &Device,
        cfg: &dyn Any,
        dir: &Path,
        resume: bool,
    ) -> Result<RunSummary>;
    #[doc(hidden)]
    fn session_any(
        &self,
        gpu: &Device,
        cfg: &dyn Any,
    ) -> Result<(Box<dyn SteppedExperiment>, Schedule)>;
    #[doc(hidden)]
    fn batch_key_any(&self, cfg: &dyn Any) -> Option<String>;
    #[doc(hidden)]
    fn max_batch_any(&self, cfg: &dyn Any, limit: usize) -> usize;
    #[doc(hidden)]
    fn train_batch_any(
        &self,
        gpu: &Device,
        cfgs: &[&dyn Any],
        members: &[MemberDir<'_>],
        batch_dir: &Path,
    ) -> Result<()>;
    #[doc(hidden)]
    fn bench_step_shape_any(&self, cfg: &dyn Any) -> Result<String>;
    #[doc(hidden)]
    fn bench_step_any(
        &self,
        gpu: &Device,
        cfg: &dyn Any,
        warmup: usize,
        steps: usize,
    ) -> Result<StepBenchReport>;
}

/// The registry entry of experiment `D`: `&Registration::<D>::NEW` in [`super::REGISTRY`].
pub struct Registration<D>(PhantomData<fn() -> D>);

impl<D> Registration<D> {
    /// The entry.
    pub const NEW: Registration<D> = Registration(PhantomData);
}

/// The typed config behind an erased one. Only configs loaded by the same registration reach
/// here, so a mismatch is a bug in this file.
fn typed<D: ExperimentDef>(cfg: &dyn Any) -> &D::Config {
    cfg.downcast_ref::<D::Config>()
        .expect("a config reaches only the registration that loaded it")
}

impl<D: ExperimentDef> Registered for Registration<D> {
    fn name(&self) -> &'static str {
        D::NAME
    }
    fn seed_key(&self) -> &'static str {
        D::SEED_KEY
    }
    fn summary_columns(&self, summary: &Path) -> Result<Vec<(String, String)>> {
        D::summary_columns(summary)
    }
    fn measures(&self) -> &'static [Measure] {
        D::MEASURES
    }
    fn sweep_plot(&self) -> Option<SweepPlot> {
        D::SWEEP_PLOT
    }
    fn write_sweep_summary(&self, out: &Path, table: &RunsTable) -> Result<()> {
        D::write_sweep_summary(out, table)
    }
    fn plot_sweep_extra(
        &self,
        out: &Path,
        table: &RunsTable,
    ) -> std::result::Result<Vec<PathBuf>, PlotError> {
        D::plot_sweep_extra(out, table)
    }
    fn load_any(
        &self,
        table: toml::Table,
        origin: &Path,
        overrides: &[String],
    ) -> Result<(Arc<dyn Any + Send + Sync>, toml::Table)> {
        let (cfg, table) = D::load(table, origin, overrides)?;
        Ok((Arc::new(cfg), table))
    }
    fn describe_any(&self, cfg: &dyn Any) -> String {
        D::describe(typed::<D>(cfg))
    }
    fn eq_any(&self, a: &dyn Any, b: &dyn Any) -> bool {
        match (a.downcast_ref::<D::Config>(), b.downcast_ref::<D::Config>()) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }
    fn debug_any(&self, cfg: &dyn Any, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(typed::<D>(cfg), f)
    }
    fn train_any(
        &self,
        gpu: &Device,
        cfg: &dyn Any,
        dir: &Path,
        resume: bool,
    ) -> Result<RunSummary> {
        // Set-up (e.g. a kernel initialisation) counts in the run's `seconds`.
        let started = Instant::now();
        let (exp, schedule) = D::build(gpu, std::slice::from_ref(typed::<D>(cfg)), resume)?;
        let plan = runner::RunPlan {
            dir: dir.to_path_buf(),
            resume,
            started,
        };
        RunSummary::of(&runner::train(gpu, &exp, &schedule, &plan)?)
    }
    fn session_any(
        &self,
        gpu: &Device,
        cfg: &dyn Any,
    ) -> Result<(Box<dyn SteppedExperiment>, Schedule)> {
        let (exp, schedule) = D::build(gpu, std::slice::from_ref(typed::<D>(cfg)), false)?;
        Ok((Box::new(exp), schedule))
    }
    fn batch_key_any(&self, cfg: &dyn Any) -> Option<String> {
        D::batch_key(typed::<D>(cfg))
    }
    fn max_batch_any(&self, cfg: &dyn Any, limit: usize) -> usize {
        D::max_batch(typed::<D>(cfg), limit)
    }
    fn train_batch_any(
        &self,
        gpu: &Device,
        cfgs: &[&dyn Any],
        members: &[MemberDir<'_>],
        batch_dir: &Path,
    ) -> Result<()> {
        let cfgs: Vec<D::Config> = cfgs.iter().map(|c| typed::<D>(*c).clone()).collect();
        check_batch::<D>(&cfgs)?;
        D::train_batch(gpu, &cfgs, members, batch_dir)
    }
    fn bench_step_shape_any(&self, cfg: &dyn Any) -> Result<String> {
        D::bench_step_shape(typed::<D>(cfg))
    }
    fn bench_step_any(
        &self,
        gpu: &Device,
        cfg: &dyn Any,
        warmup: usize,
        steps: usize,
    ) -> Result<StepBenchReport> {
        D::bench_step(gpu, typed::<D>(cfg), warmup, steps)
    }
}

/// Which experiment a config is for: a registered experiment, compared by name.
#[derive(Clone, Copy)]
pub struct Kind(&'static dyn Registered);

impl PartialEq for Kind {
    fn eq(&self, other: &Kind) -> bool {
        self.name() == other.name()
    }
}
impl Eq for Kind {}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kind({})", self.name())
    }
}

impl std::ops::Deref for Kind {
    type Target = dyn Registered;
    fn deref(&self) -> &(dyn Registered + 'static) {
        self.0
    }
}

/// Every registered experiment's name, as configs spell it.
pub fn known() -> Vec<&'static str> {
    super::REGISTRY.iter().map(|r| r.name()).collect()
}

fn known_static() -> &'static [&'static str] {
    static KNOWN: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    KNOWN.get_or_init(known)
}

impl Kind {
    /// The experiment called `name` in `file`; an unknown name is an error listing the known
    /// ones, with the closest as a suggestion.
    pub fn from_name(name: &str, file: &Path) -> Result<Kind> {
        match super::REGISTRY.iter().find(|r| r.name() == name) {
            Some(r) => Ok(Kind(*r)),
            None => Err(Error::Experiment {
                file: file.to_path_buf(),
                problem: format!("unknown experiment `{name}`"),
                known: known_static(),
                suggestion: suggest(name, known_static().iter().copied())
                    .map(|s| format!("did you mean `{s}`?")),
            }),
        }
    }

    /// The experiment a config table (read from `file`) names in its `experiment` key.
    pub fn of_table(table: &toml::Table, file: &Path) -> Result<Kind> {
        match experiment_of(table, file)? {
            Some(name) => Kind::from_name(name, file),
            // `seeds` is the one key every sweep file has and no config does.
            None if table.contains_key("seeds") => Err(Error::WrongFile {
                file: file.to_path_buf(),
                is: "a sweep file (it has `seeds`)".into(),
                expected: "an experiment config",
                command: "sweep",
                also: None,
            }),
            None => Err(Error::Experiment {
                file: file.to_path_buf(),
                problem: format!("no top-level `{EXPERIMENT_KEY}` key"),
                known: known_static(),
                suggestion: Some(format!(
                    "add e.g. `{EXPERIMENT_KEY} = \"{}\"` as the file's first line (configs \
                     written before experiments were named are hyperteacher configs)",
                    super::hyperteacher::NAME
                )),
            }),
        }
    }
}

/// A loaded, validated config of one of the registered experiments.
#[derive(Clone)]
pub struct ExperimentConfig {
    kind: Kind,
    config: Arc<dyn Any + Send + Sync>,
}

impl PartialEq for ExperimentConfig {
    fn eq(&self, other: &ExperimentConfig) -> bool {
        self.kind == other.kind && self.kind.eq_any(&*self.config, &*other.config)
    }
}

impl fmt::Debug for ExperimentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.kind.name())?;
        self.kind.debug_any(&*self.config, f)
    }
}

/// One run of a batch handed to [`ExperimentConfig::train_batch`]: its config, stored config
/// text and run directory.
pub struct BatchMember<'a> {
    /// The validated config.
    pub config: &'a ExperimentConfig,
    /// Its resolved text (`config.toml`).
    pub resolved: &'a str,
    /// Its run directory.
    pub dir: PathBuf,
}

impl ExperimentConfig {
    /// Reads `path`, finds its experiment (first, before any other key), applies `overrides`
    /// and validates. Returns the config and the resolved table (file plus overrides).
    pub fn load(path: &Path, overrides: &[String]) -> Result<(ExperimentConfig, toml::Table)> {
        Self::from_table(read_table(path)?, path, overrides)
    }

    /// [`ExperimentConfig::load`] of a table already in memory; `origin` names it in errors.
    pub fn from_table(
        table: toml::Table,
        origin: &Path,
        overrides: &[String],
    ) -> Result<(ExperimentConfig, toml::Table)> {
        let kind = Kind::of_table(&table, origin)?;
        let (config, table) = kind.load_any(table, origin, overrides)?;
        Ok((ExperimentConfig { kind, config }, table))
    }

    /// Which experiment this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The experiment's own typed config, if it is a `C`.
    pub fn get<C: 'static>(&self) -> Option<&C> {
        self.config.downcast_ref::<C>()
    }

    /// One line about the run for the CLI (model and parameter counts).
    pub fn describe(&self) -> String {
        self.kind.describe_any(&*self.config)
    }

    /// Trains a new run into `out` (refused when `out` holds a run, unless `overwrite`);
    /// `resolved` is the config text stored as `out/config.toml`.
    pub fn train(
        &self,
        gpu: &Device,
        resolved: &str,
        out: &Path,
        overwrite: bool,
    ) -> Result<RunSummary> {
        check_fresh_run_dir(out, overwrite)?;
        create_dir(out)?;
        let _lock = lock_dir(out)?;
        start_run_dir(gpu, out, resolved, overwrite)?;
        self.kind.train_any(gpu, &*self.config, out, false)
    }

    /// Continues the run in `dir` (whose stored config this is) from its last checkpoint. Exact:
    /// every step's data is a function of (seed, step), so the resumed run ends with the
    /// numbers an uninterrupted one gives (bitwise, on the same device).
    pub fn resume(&self, gpu: &Device, dir: &Path) -> Result<RunSummary> {
        let _lock = lock_dir(dir)?;
        runner::check_resumable(dir)?;
        self.kind.train_any(gpu, &*self.config, dir, true)
    }

    /// The experiment set up on `gpu` for stepping from outside the loop.
    pub(crate) fn session(&self, gpu: &Device) -> Result<(Box<dyn SteppedExperiment>, Schedule)> {
        self.kind.session_any(gpu, &*self.config)
    }

    /// For experiments that train several runs as one batch, the key runs must share to be
    /// batched together; `None` for experiments that run one at a time.
    pub fn batch_key(&self) -> Option<String> {
        self.kind.batch_key_any(&*self.config)
    }

    /// How many runs of this config's shape one batch may hold, at most `limit`.
    pub fn max_batch(&self, limit: usize) -> usize {
        self.kind.max_batch_any(&*self.config, limit)
    }

    /// Trains `members` (all of one experiment and one [`ExperimentConfig::batch_key`]) as one
    /// batch in `batch_dir` and writes each member's run directory as if it had run alone.
    pub fn train_batch(gpu: &Device, members: &[BatchMember<'_>], batch_dir: &Path) -> Result<()> {
        let Some(kind) = members.first().map(|m| m.config.kind) else {
            return Err(arg_err("sweep", "a batch needs at least one run"));
        };
        if members.iter().any(|m| m.config.kind != kind) {
            return Err(arg_err("sweep", "a batch mixes experiments"));
        }
        let cfgs: Vec<&dyn Any> = members
            .iter()
            .map(|m| &*m.config.config as &dyn Any)
            .collect();
        let dirs: Vec<MemberDir<'_>> = members
            .iter()
            .map(|m| MemberDir {
                resolved: m.resolved,
                dir: m.dir.clone(),
            })
            .collect();
        kind.train_batch_any(gpu, &cfgs, &dirs, batch_dir)
    }

    /// `hypermod bench step`: what one step holds (an error for experiments without a step
    /// benchmark).
    pub fn bench_step_shape(&self) -> Result<String> {
        self.kind.bench_step_shape_any(&*self.config)
    }

    /// `hypermod bench step`: times `steps` training steps after `warmup`.
    pub fn bench_step(&self, gpu: &Device, warmup: usize, steps: usize) -> Result<StepBenchReport> {
        self.kind.bench_step_any(gpu, &*self.config, warmup, steps)
    }
}
