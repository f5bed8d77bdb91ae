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

use serde_json::Value;

use super::{PerRun, RunsMetrics, Summary, Theory, TheoryConfig};
use crate::error::{arg_err, Error, Result};
use crate::gpu::Gpu;
use crate::run::{create_dir, start_run_dir, write_atomic, write_json};
use crate::train::runner::{self, SetMetrics};

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
    let cfgs: Vec<TheoryConfig> = members.iter().map(|m| m.cfg.clone()).collect();
    let (exp, schedule) = Theory::new(gpu, &cfgs)?;
    create_dir(batch_dir)?;
    let listing: String = members
        .iter()
        .map(|m| format!("{}\n", m.dir.display()))
        .collect();
    write_atomic(&batch_dir.join("runs.txt"), listing.as_bytes())?;
    let summary = runner::train_in(gpu, &exp, &schedule, batch_dir, false)?;
    let log = std::fs::read_to_string(batch_dir.join("metrics.jsonl")).map_err(
        crate::error::file_err("read", &batch_dir.join("metrics.jsonl")),
    )?;
    for (k, m) in members.iter().enumerate() {
        start_run_dir(gpu, &m.dir, m.resolved, true)?;
        write_member_log(&log, k, &m.dir.join("metrics.jsonl"))?;
        write_json(&m.dir.join("summary.json"), &member_summary(&summary, k)?)?;
    }
    Ok(())
}

/// Element `k` of a batch value ([`super::PerRun`]): entry `k` of its `runs`, or the value
/// itself for a batch of one.
fn member(v: &Value, k: usize) -> Value {
    match v.get("runs") {
        Some(Value::Array(runs)) => runs.get(k).cloned().unwrap_or(Value::Null),
        _ => v.clone(),
    }
}

/// Member `k`'s lines of the batch's `metrics.jsonl`.
fn write_member_log(log: &str, k: usize, path: &Path) -> Result<()> {
    let mut out = String::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let mut rec: Value = serde_json::from_str(line).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(train) = rec.get_mut("train") {
            *train = member(train, k);
        }
        if let Some(Value::Object(sets)) = rec.get_mut("sets") {
            for v in sets.values_mut() {
                *v = member(v, k);
            }
        }
        out.push_str(&rec.to_string());
        out.push('\n');
    }
    write_atomic(path, out.as_bytes())
}

fn member_sets(sets: &SetMetrics<RunsMetrics>, k: usize) -> Result<SetMetrics<RunsMetrics>> {
    sets.iter()
        .map(|(name, m)| {
            let one =
                m.0.get(k)
                    .cloned()
                    .ok_or_else(|| arg_err("theory batch", format!("set {name} lacks run {k}")))?;
            Ok((name.clone(), PerRun(vec![one])))
        })
        .collect()
}

/// Member `k`'s single-run summary.
fn member_summary(s: &Summary, k: usize) -> Result<Summary> {
    let extras = s
        .extras
        .0
        .get(k)
        .cloned()
        .ok_or_else(|| arg_err("theory batch", format!("the summary lacks run {k}")))?;
    Ok(Summary {
        r#final: member_sets(&s.r#final, k)?,
        best: member_sets(&s.best, k)?,
        best_step: s.best_step,
        steps: s.steps,
        seconds: s.seconds,
        skipped_steps: s.skipped_steps,
        extras: PerRun(vec![extras]),
        adapter: s.adapter.clone(),
    })
}
