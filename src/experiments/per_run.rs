//! One value per run of a batch of independent runs trained together (a sweep's runs on the
//! batch axis), and the batch's results written out as single runs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::checkpoint::Checkpoint;
use crate::error::{arg_err, Error, Result};
use crate::experiments::ExperimentDef;
use crate::gpu::Device;
use crate::run::{create_dir, start_run_dir, write_atomic, write_json};
use crate::train::runner::CHECKPOINT;
use crate::train::runner::{self, Experiment, Schedule, SetMetrics, Summary};
pub use crate::train::runs::PerRun;

/// One member of a trained batch: the config text stored with it and its run directory.
pub struct MemberDir<'a> {
    /// Its resolved config text (`config.toml`).
    pub resolved: &'a str,
    /// Its run directory.
    pub dir: PathBuf,
}

/// Sets up the batch of `cfgs` (one per member, in order) and trains it with [`train_members`]:
/// every batching experiment's [`ExperimentDef::train_batch`].
pub fn train_batch<D, M, X>(
    gpu: &Device,
    cfgs: &[D::Config],
    members: &[MemberDir<'_>],
    batch_dir: &Path,
) -> Result<()>
where
    D: ExperimentDef + Experiment<Metrics = PerRun<M>, Extras = PerRun<X>>,
    M: Clone + Default + Serialize + DeserializeOwned,
    X: Clone + Default + Serialize + DeserializeOwned,
{
    // Set-up (the sine kernel initialisation) counts in the batch's `seconds`.
    let started = Instant::now();
    let (exp, schedule) = D::build(gpu, cfgs, false)?;
    train_members(gpu, &exp, &schedule, members, batch_dir, started)
}

/// Trains the batch `exp` (its runs in the order of `members`) by `schedule` in its own
/// directory `batch_dir` (the loop's `metrics.jsonl`, checkpoint and summary over all runs, and
/// `runs.txt` naming the members), then writes every member's run directory. `started` is when
/// the batch's set-up began (its `seconds` count from there).
///
/// `runs.txt` names each member relative to the directory that holds `batches/` (a sweep's, so
/// the listing stays true when the sweep directory is moved or merged from shards), or by its
/// full path when the member lies elsewhere.
pub fn train_members<E, M, X>(
    gpu: &Device,
    exp: &E,
    schedule: &Schedule,
    members: &[MemberDir<'_>],
    batch_dir: &Path,
    started: Instant,
) -> Result<()>
where
    E: Experiment<Metrics = PerRun<M>, Extras = PerRun<X>>,
    M: Clone + Default + Serialize + DeserializeOwned,
    X: Clone + Default + Serialize + DeserializeOwned,
{
    create_dir(batch_dir)?;
    let home = batch_dir.parent().and_then(Path::parent);
    let listing: String = members
        .iter()
        .map(|m| {
            let shown = home.and_then(|h| m.dir.strip_prefix(h).ok());
            format!("{}\n", shown.unwrap_or(&m.dir).display())
        })
        .collect();
    write_atomic(&batch_dir.join("runs.txt"), listing.as_bytes())?;
    let plan = runner::RunPlan {
        dir: batch_dir.to_path_buf(),
        resume: false,
        started,
    };
    let summary = runner::train(gpu, exp, schedule, &plan)?;
    write_members(gpu, members, batch_dir, &summary)
}

/// Writes every member's run directory from a batch trained in `batch_dir` (its
/// `metrics.jsonl` and checkpoint) and its `summary`, as if each member had run alone:
/// `config.toml`, its own `metrics.jsonl` lines, a single-run `summary.json` (its own best step)
/// and its own checkpoint (so `hypermod train --resume` continues it alone).
pub fn write_members<M, X>(
    gpu: &Device,
    members: &[MemberDir<'_>],
    batch_dir: &Path,
    summary: &Summary<PerRun<M>, PerRun<X>>,
) -> Result<()>
where
    M: Clone + Default + Serialize + DeserializeOwned,
    X: Clone + Default + Serialize + DeserializeOwned,
{
    let log_path = batch_dir.join("metrics.jsonl");
    let log =
        std::fs::read_to_string(&log_path).map_err(crate::error::file_err("read", &log_path))?;
    let ck_path = batch_dir.join(CHECKPOINT);
    let ck = Checkpoint::load(&ck_path)?;
    for (k, m) in members.iter().enumerate() {
        start_run_dir(gpu, &m.dir, m.resolved, true)?;
        let path = m.dir.join("metrics.jsonl");
        write_atomic(&path, member_log(&log, k, &path)?.as_bytes())?;
        member_checkpoint(&ck, members.len(), k, &ck_path)?.save(&m.dir.join(CHECKPOINT))?;
        write_json(&m.dir.join("summary.json"), &member_summary(summary, k)?)?;
    }
    Ok(())
}

/// Member `k` of `runs` of the batch checkpoint `ck` (read from `path`): the run's block of
/// every tensor (a batch's state is run-major: each tensor holds `runs` equal blocks, one per
/// run) and its part of the loop's progress, as the run would have checkpointed alone.
fn member_checkpoint(ck: &Checkpoint, runs: usize, k: usize, path: &Path) -> Result<Checkpoint> {
    let bad = |what: String| Error::Io {
        path: path.display().to_string(),
        message: what,
    };
    let mut out = Checkpoint::default();
    for (name, (shape, values)) in &ck.tensors {
        let lead = shape.first().copied().unwrap_or(1);
        if lead % runs != 0 || values.len() % runs != 0 {
            return Err(bad(format!(
                "tensor {name} {shape:?} does not split into {runs} runs"
            )));
        }
        let len = values.len() / runs;
        let mut one = shape.clone();
        if let Some(first) = one.first_mut() {
            *first /= runs;
        }
        let block = values[k * len..(k + 1) * len].to_vec();
        out.tensors.insert(name.clone(), (one, block));
    }
    for (key, value) in &ck.metadata {
        let mine = match key.as_str() {
            "train" => json_member(value, |v| member(v, k), path)?,
            "last" | "best" => json_member(value, |v| member_of_sets(v, k), path)?,
            "best_valid" | "best_step" => {
                let parts: Vec<&str> = value.split(',').collect();
                match parts.len() {
                    n if n == runs => parts[k].to_string(),
                    // Before the first evaluation: empty for every run.
                    _ if value.is_empty() => String::new(),
                    n => return Err(bad(format!("`{key}` holds {n} values for {runs} runs"))),
                }
            }
            "metrics_jsonl" => member_log(value, k, path)?,
            _ => value.clone(),
        };
        out.metadata.insert(key.clone(), mine);
    }
    Ok(out)
}

/// `f` (a member's part of a batch value) applied to the JSON `text`, written back as JSON.
fn json_member(text: &str, f: impl Fn(&Value) -> Value, path: &Path) -> Result<String> {
    let v: Value = serde_json::from_str(text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(f(&v).to_string())
}

/// Member `k`'s part of every set of a `{set: batch value}` map.
fn member_of_sets(v: &Value, k: usize) -> Value {
    match v {
        Value::Object(sets) => Value::Object(
            sets.iter()
                .map(|(name, m)| (name.clone(), member(m, k)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Element `k` of a batch value ([`PerRun`]): entry `k` of its `runs`, or the value itself for a
/// batch of one.
fn member(v: &Value, k: usize) -> Value {
    match v.get("runs") {
        Some(Value::Array(runs)) => runs.get(k).cloned().unwrap_or(Value::Null),
        _ => v.clone(),
    }
}

/// Member `k`'s lines of the batch's `metrics.jsonl` (errors name `path`).
fn member_log(log: &str, k: usize, path: &Path) -> Result<String> {
    let mut out = String::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let mut rec: Value = serde_json::from_str(line).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(train) = rec.get_mut("train") {
            *train = member(train, k);
        }
        if let Some(sets) = rec.get_mut("sets") {
            *sets = member_of_sets(sets, k);
        }
        out.push_str(&rec.to_string());
        out.push('\n');
    }
    Ok(out)
}

fn member_sets<M: Clone>(sets: &SetMetrics<PerRun<M>>, k: usize) -> Result<SetMetrics<PerRun<M>>> {
    sets.iter()
        .map(|(name, m)| {
            let one =
                m.0.get(k)
                    .cloned()
                    .ok_or_else(|| arg_err("batch", format!("set {name} lacks run {k}")))?;
            Ok((name.clone(), PerRun(vec![one])))
        })
        .collect()
}

/// Member `k`'s single-run summary.
fn member_summary<M: Clone, X: Clone>(
    s: &Summary<PerRun<M>, PerRun<X>>,
    k: usize,
) -> Result<Summary<PerRun<M>, PerRun<X>>> {
    let extras = s
        .extras
        .0
        .get(k)
        .cloned()
        .ok_or_else(|| arg_err("batch", format!("the summary lacks run {k}")))?;
    Ok(Summary {
        r#final: member_sets(&s.r#final, k)?,
        best: member_sets(&s.best, k)?,
        best_step: PerRun(vec![s
            .best_step
            .0
            .get(k)
            .copied()
            .ok_or_else(|| arg_err("batch", format!("best_step lacks run {k}")))?]),
        steps: s.steps,
        seconds: s.seconds,
        skipped_steps: s.skipped_steps,
        extras: PerRun(vec![extras]),
        adapter: s.adapter.clone(),
    })
}
