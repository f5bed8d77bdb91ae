//! The experiments hypermod knows, behind one boundary. A config's top-level
//! `experiment = "..."` key picks one; [`Kind::of_table`] reads it before anything else, and
//! every command (`train`, `sweep`, `bench step`, `train --resume`) dispatches on the loaded
//! [`ExperimentConfig`]. Each experiment owns its config sections, data, evaluation sets and
//! summary columns, and trains through the one loop in [`crate::train::runner`].
//!
//! A config without the key is refused, with a hint to add it: configs are strict, and a
//! default would make a file's meaning depend on which experiments exist.

pub mod hyperteacher;
pub mod per_run;
pub mod session;
pub mod sine;
pub mod theory;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{experiment_of, read_table, suggest, EXPERIMENT_KEY};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::report::plot::{check_dir, plot_run, plot_sweep, PlotError, SweepPlot};
use crate::report::runs_table::Measure;
use crate::report::{RunsTable, RunsTableError};
use hyperteacher::HyperteacherConfig;
use sine::SineConfig;
use theory::TheoryConfig;

/// Every experiment's name, as configs spell it.
pub const KNOWN: &[&str] = &[hyperteacher::NAME, theory::NAME, sine::NAME];

/// Which experiment a config is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Schug et al.'s hyperteacher ([`hyperteacher`]).
    Hyperteacher,
    /// Schug et al.'s theory-verification experiment ([`theory`]).
    Theory,
    /// Boopathy et al.'s sine-wave modular regression ([`sine`]).
    Sine,
}

impl Kind {
    /// The experiment called `name` in `file`; an unknown name is an error listing the known
    /// ones, with the closest as a suggestion.
    pub fn from_name(name: &str, file: &Path) -> Result<Kind> {
        match name {
            hyperteacher::NAME => Ok(Kind::Hyperteacher),
            theory::NAME => Ok(Kind::Theory),
            sine::NAME => Ok(Kind::Sine),
            other => Err(Error::Experiment {
                file: file.to_path_buf(),
                problem: format!("unknown experiment `{other}`"),
                known: KNOWN,
                suggestion: suggest(other, KNOWN.iter().copied())
                    .map(|s| format!("did you mean `{s}`?")),
            }),
        }
    }

    /// The experiment a config table (read from `file`) names in its `experiment` key.
    pub fn of_table(table: &toml::Table, file: &Path) -> Result<Kind> {
        match experiment_of(table, file)? {
            Some(name) => Kind::from_name(name, file),
            None => Err(Error::Experiment {
                file: file.to_path_buf(),
                problem: format!("no top-level `{EXPERIMENT_KEY}` key"),
                known: KNOWN,
                suggestion: Some(format!(
                    "add e.g. `{EXPERIMENT_KEY} = \"{}\"` as the file's first line (configs \
                     written before experiments were named are hyperteacher configs)",
                    hyperteacher::NAME
                )),
            }),
        }
    }

    /// The name configs use.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hyperteacher => hyperteacher::NAME,
            Kind::Theory => theory::NAME,
            Kind::Sine => sine::NAME,
        }
    }

    /// The config key a sweep's `seeds` set.
    pub fn seed_key(self) -> &'static str {
        match self {
            Kind::Hyperteacher | Kind::Theory | Kind::Sine => "train.seed",
        }
    }

    /// The `runs.csv` metric columns of the finished run whose `summary.json` is at `path`.
    pub fn summary_columns(self, path: &Path) -> Result<Vec<(String, String)>> {
        match self {
            Kind::Hyperteacher => hyperteacher::columns::summary_columns(path),
            Kind::Theory => theory::columns::summary_columns(path),
            Kind::Sine => sine::columns::summary_columns(path),
        }
    }

    /// What `hypermod plot SWEEP_DIR` compares per grid point; `None` for the sine experiment,
    /// whose grids are too large for one panel per point (its scaling plots replace it).
    pub fn sweep_plot(self) -> Option<SweepPlot> {
        match self {
            Kind::Hyperteacher => Some(hyperteacher::columns::SWEEP_PLOT),
            Kind::Theory => Some(theory::columns::SWEEP_PLOT),
            Kind::Sine => None,
        }
    }

    /// The measures of a sweep's `summary.md`.
    pub fn measures(self) -> &'static [Measure] {
        match self {
            Kind::Hyperteacher => hyperteacher::columns::MEASURES,
            Kind::Theory => theory::columns::MEASURES,
            Kind::Sine => sine::columns::MEASURES,
        }
    }

    /// Writes the experiment's own sweep-level files from the sweep's `runs.csv` table (the
    /// sine experiment's `summary.csv`); nothing for the others.
    pub fn write_sweep_summary(self, out: &Path, table: &RunsTable) -> Result<()> {
        match self {
            Kind::Sine => sine::sample_complexity::write_summary(out, table),
            Kind::Hyperteacher | Kind::Theory => Ok(()),
        }
    }

    /// The experiment's own sweep plots (the sine experiment's scaling plots); none for the
    /// others.
    pub fn plot_sweep_extra(
        self,
        out: &Path,
        table: &RunsTable,
    ) -> std::result::Result<Vec<PathBuf>, PlotError> {
        match self {
            Kind::Sine => sine::sample_complexity::plot(out, table),
            Kind::Hyperteacher | Kind::Theory => Ok(Vec::new()),
        }
    }
}

/// A loaded, validated config of one of the known experiments.
#[derive(Clone, Debug, PartialEq)]
pub enum ExperimentConfig {
    /// A hyperteacher config.
    Hyperteacher(HyperteacherConfig),
    /// A theory config.
    Theory(TheoryConfig),
    /// A sine config.
    Sine(SineConfig),
}

/// A finished run's `summary.json`, whatever the experiment (serialises as the experiment's own).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum RunSummary {
    /// A hyperteacher run's summary.
    Hyperteacher(hyperteacher::Summary),
    /// A theory run's (or batch's) summary.
    Theory(theory::Summary),
    /// A sine run's (or batch's) summary.
    Sine(sine::Summary),
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
        let path = origin;
        match Kind::of_table(&table, path)? {
            Kind::Hyperteacher => {
                let (cfg, table) = HyperteacherConfig::from_table(table, path, overrides)?;
                Ok((ExperimentConfig::Hyperteacher(cfg), table))
            }
            Kind::Theory => {
                let (cfg, table) = TheoryConfig::from_table(table, path, overrides)?;
                Ok((ExperimentConfig::Theory(cfg), table))
            }
            Kind::Sine => {
                let (cfg, table) = SineConfig::from_table(table, path, overrides)?;
                Ok((ExperimentConfig::Sine(cfg), table))
            }
        }
    }

    /// Which experiment this is.
    pub fn kind(&self) -> Kind {
        match self {
            ExperimentConfig::Hyperteacher(_) => Kind::Hyperteacher,
            ExperimentConfig::Theory(_) => Kind::Theory,
            ExperimentConfig::Sine(_) => Kind::Sine,
        }
    }

    /// The hyperteacher config, if this is one.
    pub fn as_hyperteacher(&self) -> Option<&HyperteacherConfig> {
        match self {
            ExperimentConfig::Hyperteacher(c) => Some(c),
            ExperimentConfig::Theory(_) | ExperimentConfig::Sine(_) => None,
        }
    }

    /// One line about the run for the CLI (model and parameter counts).
    pub fn describe(&self) -> String {
        match self {
            ExperimentConfig::Hyperteacher(c) => {
                let (meta, task) = hyperteacher::param_counts(c);
                format!("{:?}, {meta} meta / {task} task parameters", c.model.kind)
            }
            ExperimentConfig::Theory(c) => theory::describe(c),
            ExperimentConfig::Sine(c) => sine::describe(c),
        }
    }

    /// Trains a new run into `out` (refused when `out` holds a run, unless `overwrite`);
    /// `resolved` is the config text stored as `out/config.toml`.
    pub fn train(
        &self,
        gpu: &Gpu,
        resolved: &str,
        out: &Path,
        overwrite: bool,
    ) -> Result<RunSummary> {
        match self {
            ExperimentConfig::Hyperteacher(c) => {
                hyperteacher::run(gpu, c, resolved, out, overwrite).map(RunSummary::Hyperteacher)
            }
            ExperimentConfig::Theory(c) => {
                theory::run(gpu, c, resolved, out, overwrite).map(RunSummary::Theory)
            }
            ExperimentConfig::Sine(c) => {
                sine::run(gpu, c, resolved, out, overwrite).map(RunSummary::Sine)
            }
        }
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
    pub dir: std::path::PathBuf,
}

impl ExperimentConfig {
    /// For experiments that train several runs as one batch (theory), the key runs must share to
    /// be batched together; `None` for experiments that run one at a time.
    pub fn batch_key(&self) -> Option<String> {
        match self {
            ExperimentConfig::Hyperteacher(_) => None,
            ExperimentConfig::Theory(c) => Some(theory::batch_key(c)),
            ExperimentConfig::Sine(c) => Some(sine::batch_key(c)),
        }
    }

    /// How many runs of this config's shape one batch may hold, at most `limit`.
    pub fn max_batch(&self, limit: usize) -> usize {
        match self {
            ExperimentConfig::Hyperteacher(_) => 1,
            ExperimentConfig::Theory(c) => theory::batch::max_runs(c, limit),
            ExperimentConfig::Sine(c) => sine::max_runs(c, limit),
        }
    }

    /// Trains `members` (all with this config's [`ExperimentConfig::batch_key`]) as one batch in
    /// `batch_dir` and writes each member's run directory as if it had run alone.
    pub fn train_batch(gpu: &Gpu, members: &[BatchMember<'_>], batch_dir: &Path) -> Result<()> {
        let dir = |m: &BatchMember<'_>| m.dir.clone();
        match members.first().map(|m| m.config) {
            Some(ExperimentConfig::Theory(_)) => {
                let ms: Option<Vec<theory::batch::Member<'_>>> = members
                    .iter()
                    .map(|m| match m.config {
                        ExperimentConfig::Theory(cfg) => Some(theory::batch::Member {
                            cfg,
                            resolved: m.resolved,
                            dir: dir(m),
                        }),
                        _ => None,
                    })
                    .collect();
                let ms = ms.ok_or_else(mixed_batch)?;
                theory::batch::train_batch(gpu, &ms, batch_dir)
            }
            Some(ExperimentConfig::Sine(_)) => {
                let ms: Option<Vec<(&SineConfig, per_run::MemberDir<'_>)>> = members
                    .iter()
                    .map(|m| match m.config {
                        ExperimentConfig::Sine(cfg) => Some((
                            cfg,
                            per_run::MemberDir {
                                resolved: m.resolved,
                                dir: dir(m),
                            },
                        )),
                        _ => None,
                    })
                    .collect();
                let ms = ms.ok_or_else(mixed_batch)?;
                sine::train_batch(gpu, &ms, batch_dir)
            }
            _ => Err(crate::error::arg_err(
                "sweep",
                "only theory and sine runs train as a batch",
            )),
        }
    }
}

fn mixed_batch() -> Error {
    crate::error::arg_err("sweep", "a batch mixes experiments")
}

/// Continues the run in `dir` from its last checkpoint, with the config stored there.
pub fn resume(gpu: &Gpu, dir: &Path) -> Result<RunSummary> {
    let path = dir.join("config.toml");
    if !path.exists() {
        return Err(Error::Io {
            path: dir.display().to_string(),
            message: "not a run directory (no config.toml)".into(),
        });
    }
    match ExperimentConfig::load(&path, &[])?.0 {
        ExperimentConfig::Hyperteacher(c) => {
            hyperteacher::resume(gpu, &c, dir).map(RunSummary::Hyperteacher)
        }
        ExperimentConfig::Theory(c) => theory::resume(gpu, &c, dir).map(RunSummary::Theory),
        ExperimentConfig::Sine(c) => sine::resume(gpu, &c, dir).map(RunSummary::Sine),
    }
}

/// Plots a sweep directory (has `runs.csv`: every run's curves, the experiment's comparison of
/// grid points and its own sweep plots) or a run directory (has `metrics.jsonl`).
pub fn plot_dir(dir: &Path) -> std::result::Result<Vec<PathBuf>, PlotError> {
    check_dir(dir)?;
    let csv = dir.join("runs.csv");
    if !csv.is_file() {
        return plot_run(dir);
    }
    let table = RunsTable::read(&csv)?;
    let kind = kind_of(dir, &table, &csv)?;
    let mut written = plot_sweep(dir, &table, kind.sweep_plot())?;
    written.extend(kind.plot_sweep_extra(dir, &table)?);
    Ok(written)
}

/// The sweep's experiment, from the config of its first run (every run of a sweep is the same
/// experiment).
fn kind_of(dir: &Path, table: &RunsTable, csv: &Path) -> Result<Kind, PlotError> {
    let run = table.column("run").map_err(|message| PlotError::BadCsv {
        path: csv.display().to_string(),
        message,
    })?;
    let first = table
        .rows
        .first()
        .map(|r| dir.join(&r[run]).join("config.toml"));
    let err = |source: Error| PlotError::Experiment {
        dir: dir.to_path_buf(),
        source: Box::new(source),
    };
    let config = first.ok_or_else(|| {
        err(Error::from(RunsTableError::Empty {
            path: csv.display().to_string(),
        }))
    })?;
    let t = crate::config::read_table(&config).map_err(|e| err(e.into()))?;
    Kind::of_table(&t, &config).map_err(err)
}
