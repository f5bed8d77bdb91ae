//! Reports over finished runs and sweeps: `hypermod plot RUN_DIR`.

pub mod plot;

pub use plot::{plot_dir, plot_run, plot_sweep, PlotError};
