//! Running a sweep (or one shard of it) into its directory: the refusals of a directory that
//! holds something else, the run loop with its batching, and the tables written after every run.

use std::path::{Path, PathBuf};

use super::grid::{dir_name, expand, SweepRun};
use super::shard::{read_shard, Shard, ShardRecord, SHARD_FILE};
use crate::error::{arg_err, file_err, Error, Result};
use crate::experiments::run_workers::{native_workers, on_workers};
use crate::experiments::{BatchMember, ExperimentConfig, Kind};
use crate::gpu::Device;
use crate::report::{summary_markdown, RunsTable};
use crate::run::{create_dir, holds_run, lock_dir, write_atomic, write_json};

/// The name under which a sweep directory keeps a copy of its sweep file.
pub(super) const SWEEP_COPY: &str = "sweep.toml";

/// Runs every run of `sweep_path` into `out/<nnn>-<label>/` and writes `out/runs.csv` and
/// `out/summary.md` after every run. Continues a sweep of the same file in `out`; refuses a
/// directory holding a run or another sweep unless `overwrite`.
pub fn run_sweep(gpu: &Device, sweep_path: &Path, out: &Path, overwrite: bool) -> Result<PathBuf> {
    let csv = run_sweep_shard(gpu, sweep_path, out, overwrite, None)?;
    Ok(csv.unwrap_or_else(|| out.join("runs.csv")))
}

/// [`run_sweep`] of one shard (all runs for `None`): runs only the runs of `shard`
/// ([`Shard::runs`]), their directories named by their global index, `runs.csv` and
/// `summary.md` holding only them, and records the shard in `out/shard.json`. A directory of
/// another shard (or an unsharded one) is refused unless `overwrite`. Returns `runs.csv`, or
/// `None` for a shard without runs (more shards than runs).
pub fn run_sweep_shard(
    gpu: &Device,
    sweep_path: &Path,
    out: &Path,
    overwrite: bool,
    shard: Option<Shard>,
) -> Result<Option<PathBuf>> {
    let (sweep, runs) = expand(sweep_path)?;
    check_shard_dir(sweep_path, out, overwrite, shard)?;
    let text = std::fs::read_to_string(sweep_path).map_err(file_err("read", sweep_path))?;
    create_dir(out)?;
    // One writer per sweep directory; each run's own directory is locked where it trains too.
    let _lock = lock_dir(out)?;
    write_atomic(&out.join(SWEEP_COPY), text.as_bytes())?;
    let Some(kind) = runs.first().map(|r| r.config.kind()) else {
        return Err(arg_err(
            "sweep",
            format!("{}: no runs", sweep_path.display()),
        ));
    };
    let range = match shard {
        Some(s) => {
            let range = s.runs(runs.len());
            let record = ShardRecord {
                index: s.index,
                count: s.count,
                runs: range.clone().collect(),
                total: runs.len(),
                sweep: std::fs::canonicalize(sweep_path).unwrap_or_else(|_| sweep_path.into()),
            };
            write_json(&out.join(SHARD_FILE), &record)?;
            range
        }
        None => {
            // `overwrite` turned a shard's directory into a whole sweep's.
            if overwrite && out.join(SHARD_FILE).exists() {
                let path = out.join(SHARD_FILE);
                std::fs::remove_file(&path).map_err(file_err("remove", &path))?;
            }
            0..runs.len()
        }
    };
    let keys: Vec<&String> = sweep.grid.keys().collect();
    let mut table = RunsTable::default();
    let mut trained = vec![false; runs.len()];
    for i in range.clone() {
        let r = &runs[i];
        let dir = out.join(dir_name(i, &r.label));
        let summary = dir.join("summary.json");
        if !trained[i] && (overwrite || !summary.exists()) {
            let batch = batch_of(&runs, i, range.end, &trained, out, overwrite, sweep.batch);
            let numbers: Vec<String> = batch.iter().map(|&j| (j + 1).to_string()).collect();
            if let (true, Some(workers)) = (batch.len() > 1, native_workers(gpu)) {
                println!(
                    "sweep runs {} of {}, {} at a time (one per core of the native backend)",
                    numbers.join(","),
                    runs.len(),
                    workers.min(batch.len())
                );
                train_on_workers(gpu, workers, &runs, &batch, out)?;
            } else if batch.len() > 1 {
                println!(
                    "sweep runs {} of {} as one batch: {}",
                    numbers.join(","),
                    runs.len(),
                    r.label
                );
                let members: Vec<BatchMember<'_>> = batch
                    .iter()
                    .map(|&j| BatchMember {
                        config: &runs[j].config,
                        resolved: &runs[j].resolved,
                        dir: out.join(dir_name(j, &runs[j].label)),
                    })
                    .collect();
                let batch_dir = out.join("batches").join(dir_name(i, &r.label));
                ExperimentConfig::train_batch(gpu, &members, &batch_dir)?;
            } else {
                println!("sweep run {}/{}: {}", i + 1, runs.len(), r.label);
                // The sweep's own run directory: a run cut short restarts from scratch.
                r.config.train(gpu, &r.resolved, &dir, true)?;
            }
            batch.iter().for_each(|&j| trained[j] = true);
        }
        record_runs(&mut table, kind, &keys, &runs, [i], out)?;
    }
    Ok((!range.is_empty()).then(|| out.join("runs.csv")))
}

/// Trains the runs `batch` (of `runs`, into `out`) on the native backend, one per core at a time,
/// each as it trains alone ([`on_workers`]).
fn train_on_workers(
    gpu: &Device,
    workers: usize,
    runs: &[SweepRun],
    batch: &[usize],
    out: &Path,
) -> Result<()> {
    let train = |device: &Device, j: usize| {
        let r = &runs[j];
        r.config
            .train(device, &r.resolved, &out.join(dir_name(j, &r.label)), true)
            .map(|_| ())
    };
    let done = on_workers(workers, batch.len(), |device, b| {
        println!(
            "sweep run {}/{}: {}",
            batch[b] + 1,
            runs.len(),
            runs[batch[b]].label
        );
        train(device, batch[b])
    })?;
    // A stop between two runs left some unstarted: the first of them starts here and stops after
    // its first step, with the checkpoint and error of any stopped run.
    match done.iter().position(Option::is_none) {
        Some(b) => train(gpu, batch[b]),
        None => Ok(()),
    }
}

/// Appends the rows of the runs `indices` (of `runs`, finished in `out/<nnn>-<label>/`) to
/// `table` and rewrites `out/runs.csv` and the sweep-level outputs
/// ([`write_sweep_outputs`]). The one table code of a sweep (after every run) and of [`merge`]
/// (once, over every run): the grid keys, `seed`, `run`, then the experiment's summary columns.
///
/// [`merge`]: super::merge
pub(super) fn record_runs(
    table: &mut RunsTable,
    kind: Kind,
    keys: &[&String],
    runs: &[SweepRun],
    indices: impl IntoIterator<Item = usize>,
    out: &Path,
) -> Result<()> {
    for i in indices {
        let r = &runs[i];
        let name = dir_name(i, &r.label);
        let cols = kind.summary_columns(&out.join(&name).join("summary.json"))?;
        if table.header.is_empty() {
            table.header = keys
                .iter()
                .map(|k| k.to_string())
                .chain(["seed".to_string(), "run".to_string()])
                .chain(cols.iter().map(|(n, _)| n.clone()))
                .collect();
        }
        table.rows.push(
            r.values
                .iter()
                .cloned()
                .chain([r.seed.to_string(), name])
                .chain(cols.into_iter().map(|(_, v)| v))
                .collect(),
        );
    }
    table.write(&out.join("runs.csv"))?;
    write_sweep_outputs(kind, out, table)
}

/// The sweep-level outputs derived from `runs.csv`'s `table` (of experiment `kind`) into the
/// sweep directory `out`, rewritten after every run of a sweep and by [`merge`]: today
/// `summary.md` (mean ± sd over seeds per grid point of the experiment's measures). An
/// experiment with more sweep-level files writes them here, so sweeps and merges both get them.
///
/// [`merge`]: super::merge
fn write_sweep_outputs(kind: Kind, out: &Path, table: &RunsTable) -> Result<()> {
    let markdown = summary_markdown(table, kind.measures()).map_err(|e| arg_err("sweep", e))?;
    write_atomic(&out.join("summary.md"), markdown.as_bytes())?;
    kind.write_sweep_summary(out, table)
}

/// Run `i` and the later runs before `end` still to train that can share its batch (same batch
/// key), at most the sweep's `batch` and what fits the device budget; just `[i]` for an
/// experiment that does not batch.
fn batch_of(
    runs: &[SweepRun],
    i: usize,
    end: usize,
    trained: &[bool],
    out: &Path,
    overwrite: bool,
    limit: usize,
) -> Vec<usize> {
    let Some(key) = runs[i].config.batch_key() else {
        return vec![i];
    };
    let most = runs[i].config.max_batch(limit);
    let pending = |j: &usize| {
        let done = out
            .join(dir_name(*j, &runs[*j].label))
            .join("summary.json")
            .exists();
        !trained[*j] && (overwrite || !done)
    };
    (i..end)
        .filter(pending)
        .filter(|&j| runs[j].config.batch_key().as_ref() == Some(&key))
        .take(most)
        .collect()
}

/// What to do instead, ending every refusal of a sweep directory.
const SWEEP_TAIL: &str = "choose another --out, or pass --overwrite to run this sweep there";

/// Refuses a sweep directory that holds a single run, another sweep, or a sweep whose file is
/// unknown (written before sweeps kept theirs), unless `overwrite`. The same sweep file may
/// continue in its own directory.
pub fn check_sweep_dir(sweep_path: &Path, out: &Path, overwrite: bool) -> Result<()> {
    check_shard_dir(sweep_path, out, overwrite, None)
}

/// [`check_sweep_dir`] for shard `shard` of the sweep (the whole sweep for `None`): also refuses
/// a directory of another shard of the same sweep (its `shard.json` differs), a shard's
/// directory for the whole sweep, and the directory of the whole sweep for a shard.
pub fn check_shard_dir(
    sweep_path: &Path,
    out: &Path,
    overwrite: bool,
    shard: Option<Shard>,
) -> Result<()> {
    if overwrite {
        return Ok(());
    }
    let sweep_text = std::fs::read_to_string(sweep_path).map_err(file_err("read", sweep_path))?;
    check_dir(&sweep_text, out, shard, SWEEP_TAIL)
}

/// The checks of [`check_shard_dir`] for the sweep file text `sweep_text`; `tail` ends every
/// refusal's hint.
pub(super) fn check_dir(
    sweep_text: &str,
    out: &Path,
    shard: Option<Shard>,
    tail: &str,
) -> Result<()> {
    let refuse = |what: &str, hint: &str| Error::RunExists {
        dir: out.to_path_buf(),
        what: what.to_string(),
        hint: format!("{hint}, {tail}"),
    };
    if holds_run(out) {
        return Err(refuse(
            "a run, not a sweep",
            "continue it with `hypermod train --resume`",
        ));
    }
    match std::fs::read_to_string(out.join(SWEEP_COPY)) {
        Ok(own) if own == sweep_text => {}
        Ok(_) => {
            return Err(refuse(
                "another sweep (its sweep.toml differs from this sweep file)",
                "run that sweep file to continue it",
            ))
        }
        Err(_) if out.join("runs.csv").exists() => {
            return Err(refuse(
                "a sweep without its sweep.toml",
                "copy the sweep file there as sweep.toml to continue it",
            ))
        }
        Err(_) => {}
    }
    match (read_shard(out)?.map(|r| r.shard()), shard) {
        (None, None) => Ok(()),
        // A sweep stopped before its first run finished holds no table yet: any shard may start.
        (None, Some(_)) if !out.join("runs.csv").exists() => Ok(()),
        (None, Some(_)) => Err(refuse(
            "this sweep run without --shard",
            "continue it without --shard",
        )),
        (Some(have), Some(want)) if have == want => Ok(()),
        (Some(have), want) => Err(refuse(
            &format!(
                "shard {have} of this sweep{}",
                match want {
                    Some(w) => format!(", not shard {w}"),
                    None => ", not the whole sweep".into(),
                }
            ),
            &format!("continue it with `--shard {have}`"),
        )),
    }
}
