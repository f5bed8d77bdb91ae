//! Sweeps: a grid of config overrides × seeds over one base experiment config, run one after the
//! other on the same device, one row per run in `runs.csv`.
//!
//! ```toml
//! base = "../quick/hnet_linear.toml"   # relative to the sweep file
//! seeds = [1, 2, 3]
//! set = ["train.steps_outer=1000"]     # applied to every run (optional)
//! [grid]
//! "task.support" = ["random", "non_compositional"]
//! ```
//! The grid key `base` (instead of a top-level `base`) compares whole configs, e.g.
//! `base = ["../quick/anil.toml", "../quick/maml.toml"]`; a run's label then names the file stem.
//! Every run's config is loaded and validated before the first run starts; all runs must be of
//! one experiment, whose summary columns make `runs.csv` and `summary.md`.
//!
//! The sweep file is copied into the sweep directory (`sweep.toml`). Run again into the same
//! directory with the same file, the sweep continues itself: a run whose directory already holds
//! a `summary.json` is not run again. A directory holding a single run or a different sweep is
//! refused, unless `overwrite` (which also runs every run again).
//!
//! A sweep can be split into shards (`--shard I/N`, e.g. the tasks of a Slurm job array): shard
//! `I` runs the `I`-th of `N` contiguous blocks of the run list, balanced by run count
//! ([`shard_range`]), so runs that would train together as one batch mostly stay together. Its
//! directory keeps the runs' global indices in their names, a `runs.csv` and `summary.md` of its
//! own runs only, and `shard.json`, which a later run into it must match. [`merge`] joins the
//! shard directories into one directory as if the sweep had run unsharded.

mod grid;
mod merge;
mod run_loop;
mod shard;

pub use grid::{expand, SweepConfig, SweepRun};
pub use merge::merge;
pub use run_loop::{check_shard_dir, check_sweep_dir, run_sweep, run_sweep_shard};
pub use shard::{shard_range, Shard, ShardRecord};
