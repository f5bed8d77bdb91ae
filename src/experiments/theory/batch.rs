//! Several theory runs of one shape trained as ONE batch (a sweep's task lists × seeds × learning
//! rates on the batch axis), then written out as if each had run alone: every run directory gets
//! its `config.toml`, its own `metrics.jsonl` lines and a single-run `summary.json`, so
//! `runs.csv`, `hypermod plot` and `load_run` see ordinary runs.
//!
//! The batch trains in its own directory (`batches/<first run>/`: the loop's `metrics.jsonl`,
//! `checkpoint.safetensors` and `summary.json` over all runs). A run's numbers are those it gets
//! alone (`tests/theory.rs`), except which evaluation is its "best": the batch keeps one best
//! step, by the mean training-set loss of its runs.

use std::path::{Path, PathBuf};

use super::{Theory, TheoryConfig};
use crate::error::Result;
use crate::experiments::per_run::{train_members, MemberDir};
use crate::gpu::Gpu;

/// Device memory one batch may use for its evaluation episode (the larger of the two).
pub const BATCH_BYTES: usize = 2 << 30;

/// How many runs of `cfg`'s shape fit one batch: at most `limit` and within [`BATCH_BYTES`].
pub fn max_runs(cfg: &TheoryConfig, limit: usize) -> usize {
    let per_run = Theory::eval_bytes(cfg, 1).max(1);
    (BATCH_BYTES / per_run).clamp(1, limit.max(1))
}

/// One member of a batch: its config, the config text stored with it, its directory.
pub struct Member<'a> {
    /// The validated config.
    pub cfg: &'a TheoryConfig,
    /// Its resolved config text (`config.toml`).
    pub resolved: &'a str,
    /// Its run directory.
    pub dir: PathBuf,
}

/// Trains `members` as one batch in `batch_dir`, then writes every member's run directory.
pub fn train_batch(gpu: &Gpu, members: &[Member<'_>], batch_dir: &Path) -> Result<()> {
    let started = std::time::Instant::now();
    let cfgs: Vec<TheoryConfig> = members.iter().map(|m| m.cfg.clone()).collect();
    let (exp, schedule) = Theory::new(gpu, &cfgs)?;
    let dirs: Vec<MemberDir<'_>> = members
        .iter()
        .map(|m| MemberDir {
            resolved: m.resolved,
            dir: m.dir.clone(),
        })
        .collect();
    train_members(gpu, &exp, &schedule, &dirs, batch_dir, started)
}
