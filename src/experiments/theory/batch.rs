//! Several theory runs of one shape trained as ONE batch (a sweep's task lists × seeds × learning
//! rates on the batch axis, through `ExperimentDef::train_batch`), then written out as if each
//! had run alone: every run directory gets its `config.toml`, its own `metrics.jsonl` lines, a
//! single-run `summary.json` and its own checkpoint, so `runs.csv`, `hypermod plot`, `load_run`
//! and `train --resume` see ordinary runs.
//!
//! The batch trains in its own directory (`batches/<first run>/`: the loop's `metrics.jsonl`,
//! `checkpoint.safetensors` and `summary.json` over all runs). A run's directory is the one it
//! writes alone, timings aside (`tests/batch_members.rs`): each run selects its own best step by
//! its own training-set loss, whatever it trained beside.

use super::{Theory, TheoryConfig};

/// Device memory one batch may use for its evaluation episode (the larger of the two).
pub const BATCH_BYTES: usize = 2 << 30;

/// How many runs of `cfg`'s shape fit one batch: at most `limit` and within [`BATCH_BYTES`].
pub fn max_runs(cfg: &TheoryConfig, limit: usize) -> usize {
    let per_run = Theory::eval_bytes(cfg, 1).max(1);
    (BATCH_BYTES / per_run).clamp(1, limit.max(1))
}
