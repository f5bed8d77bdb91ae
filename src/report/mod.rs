//! Reports over finished runs and sweeps: `hypermod plot RUN_DIR`, and a sweep's `runs.csv` and
//! `summary.md`.

pub mod plot;
pub mod runs_table;

pub use plot::{plot_run, plot_sweep, PlotError};
pub use runs_table::{summary_markdown, RunsTable, RunsTableError};
