//! Plots of a run directory (`metrics.jsonl` → `learning_curves.{svg,png}`, `curves.rs`) and of a
//! sweep directory (`runs.csv` → every run's learning curves plus `sweep.{svg,png}`, `sweep.rs`);
//! `render.rs` holds the drawing helpers both use.

mod curves;
mod lines;
mod render;
mod sweep;

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::report::runs_table::RunsTableError;

pub use curves::plot_run;
pub use lines::{plot_line_panels, LinePanel, LineSeries};
pub use render::wants_log;
pub use sweep::{plot_sweep, SecondPanel, SweepPlot};

/// What can go wrong while plotting.
#[derive(Debug, Error)]
pub enum PlotError {
    /// The directory to plot does not exist.
    #[error("{path}: no such directory")]
    MissingDir {
        /// The path given.
        path: String,
    },
    /// The directory has neither `metrics.jsonl` nor `runs.csv`.
    #[error("{path}: no metrics.jsonl (a run directory) or runs.csv (a sweep directory)")]
    NothingToPlot {
        /// The directory.
        path: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The OS's message.
        message: String,
    },
    /// A line of `metrics.jsonl` is not a metrics record.
    #[error("{path}:{line}: malformed metrics record: {message}")]
    BadLine {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A file has no records.
    #[error("{path}: empty (no records to plot)")]
    Empty {
        /// The file.
        path: String,
    },
    /// `runs.csv` is not in the shape `hypermod sweep` writes.
    #[error("{path}: {message}")]
    BadCsv {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// `runs.csv` could not be read.
    #[error(transparent)]
    Runs(#[from] RunsTableError),
    /// The sweep's experiment could not be told from its first run's config.
    #[error("{}: cannot tell the sweep's experiment: {source}", dir.display())]
    Experiment {
        /// The sweep directory.
        dir: PathBuf,
        /// Why (a missing or unreadable config, an unknown experiment): the crate's error,
        /// boxed as a trait object so that `report` stays below it.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// plotters failed to draw or encode.
    #[error("drawing {path}: {message}")]
    Render {
        /// The output file.
        path: String,
        /// plotters' message.
        message: String,
    },
}

type Result<T> = std::result::Result<T, PlotError>;

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> PlotError + '_ {
    move |e| PlotError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

pub(crate) fn check_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Err(PlotError::MissingDir {
            path: dir.display().to_string(),
        });
    }
    Ok(())
}

fn run_name(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}
