//! The experiments hypermod knows, behind one trait ([`ExperimentDef`]) and one registry
//! ([`REGISTRY`]). A config's top-level `experiment = "..."` key picks one; [`Kind::of_table`]
//! reads it before anything else, and every command (`train`, `sweep`, `bench step`, `plot`,
//! `train --resume`, the Python `Experiment`) dispatches on the loaded [`ExperimentConfig`].
//! Each experiment owns its config sections, data, evaluation sets and summary columns, and
//! trains through the one loop in [`crate::train::runner`].
//!
//! A config without the key is refused, with a hint to add it: configs are strict, and a
//! default would make a file's meaning depend on which experiments exist.

pub mod hyperteacher;
pub mod meta_run;
pub mod per_run;
pub mod preference;
pub mod registry;
pub mod run_workers;
pub mod session;
pub mod sine;
pub mod theory;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::gpu::Device;
use crate::report::plot::{check_dir, plot_run, plot_sweep, PlotError};
use crate::report::{RunsTable, RunsTableError};
pub use registry::{
    BatchMember, ExperimentConfig, ExperimentDef, Kind, Registered, Registration, RunSummary,
    StepBenchReport,
};

/// Every experiment hypermod knows, one line each: its folder's struct implements
/// [`ExperimentDef`] (see ARCHITECTURE.md, "How to add an experiment").
pub static REGISTRY: &[&dyn Registered] = &[
    &Registration::<hyperteacher::Hyperteacher>::NEW,
    &Registration::<theory::Theory>::NEW,
    &Registration::<sine::Sine>::NEW,
    &Registration::<preference::Preference>::NEW,
];

/// Continues the run in `dir` from its last checkpoint, with the config stored there.
pub fn resume(gpu: &Device, dir: &Path) -> Result<RunSummary> {
    let path = dir.join("config.toml");
    if !path.exists() {
        return Err(Error::Io {
            path: dir.display().to_string(),
            message: "not a run directory (no config.toml)".into(),
        });
    }
    ExperimentConfig::load(&path, &[])?.0.resume(gpu, dir)
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
