//! Several theory runs of one shape trained as ONE batch (a sweep's task lists × seeds × learning
//! rates on the batch axis, through `ExperimentDef::train_batch`), then written out as if each had run alone: every run directory gets
//! its `config.toml`, its own `metrics.jsonl` lines and a single-run `summary.json`, so
//! `runs.csv`, `hypermod plot` and `load_run` see ordinary runs.
//!
//! The batch trains in its own directory (`batches/<first run>/`: the loop's `metrics.jsonl`,
//! `checkpoint.safetensors` and `summary.json` over all runs). A run's numbers are those it gets
//! alone (`tests/theory.rs`), except which evaluation is its "best": the batch keeps one best
//! step, by the mean training-set loss of its runs.

use super::{Theory, TheoryConfig};

/// Device memory one batch may use for its evaluation episode (the larger of the two).
pub const BATCH_BYTES: usize = 2 << 30;

/// How many runs of `cfg`'s shape fit one batch: at most `limit` and within [`BATCH_BYTES`].
pub fn max_runs(cfg: &TheoryConfig, limit: usize) -> usize {
    let per_run = Theory::eval_bytes(cfg, 1).max(1);
    (BATCH_BYTES / per_run).clamp(1, limit.max(1))
}
