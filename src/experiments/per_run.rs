//! One value per run of a batch of independent runs trained together (a sweep's runs on the
//! batch axis), and the batch's results written out as single runs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{arg_err, Error, Result};
use crate::experiments::ExperimentDef;
use crate::gpu::Device;
use crate::run::{create_dir, start_run_dir, write_atomic, write_json};
use crate::train::runner::{self, Experiment, Schedule, SetMetrics, Summary};

/// One value per run of a batch. One run serialises as its value alone (so a single
/// `hypermod train` writes plain metrics and summary fields), several as `{"runs": [...]}` (a
/// map, because `summary.json` flattens the extras into its top level). Empty — the loop's
/// step-0 training metrics, before any step — writes one default value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerRun<T>(pub Vec<T>);

#[derive(Serialize)]
#[serde(untagged)]
enum OneOrManyRef<'a, T> {
    One(&'a T),
    Many { runs: &'a [T] },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many { runs: Vec<T> },
}

impl<T: Serialize + Default> Serialize for PerRun<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [] => OneOrManyRef::One(&T::default()).serialize(s),
            [one] => OneOrManyRef::One(one).serialize(s),
            runs => OneOrManyRef::Many { runs }.serialize(s),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for PerRun<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(v) => PerRun(vec![v]),
            OneOrMany::Many { runs } => PerRun(runs),
        })
    }
}

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
    let listing: String = members
        .iter()
        .map(|m| format!("{}\n", m.dir.display()))
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
/// `metrics.jsonl`) and its `summary`, as if each member had run alone: `config.toml`, its own
/// `metrics.jsonl` lines and a single-run `summary.json`.
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
    for (k, m) in members.iter().enumerate() {
        start_run_dir(gpu, &m.dir, m.resolved, true)?;
        write_member_log(&log, k, &m.dir.join("metrics.jsonl"))?;
        write_json(&m.dir.join("summary.json"), &member_summary(summary, k)?)?;
    }
    Ok(())
}

/// Element `k` of a batch value ([`PerRun`]): entry `k` of its `runs`, or the value itself for a
/// batch of one.
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
        best_step: s.best_step,
        steps: s.steps,
        seconds: s.seconds,
        skipped_steps: s.skipped_steps,
        extras: PerRun(vec![extras]),
        adapter: s.adapter.clone(),
    })
}
