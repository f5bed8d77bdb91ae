//! `hypermod sweep merge`: the shard directories of one sweep joined into one directory, as if
//! the sweep had run unsharded.

use std::path::{Path, PathBuf};

use super::grid::{dir_name, expand_text};
use super::run_loop::{check_dir, record_runs, SWEEP_COPY};
use super::shard::{read_shard, shard_range, SHARD_FILE};
use crate::error::{arg_err, file_err, Result};
use crate::report::RunsTable;
use crate::run::{create_dir, lock_dir, write_atomic, LOCK_FILE};

/// What to do instead, ending every refusal of a merge's output directory.
const MERGE_TAIL: &str = "or merge into a new directory";

/// Merges the shard directories `dirs` (of `hypermod sweep FILE --shard I/N`, all of one sweep)
/// into `out` as if the sweep had run unsharded there: every run directory (hard-linked where
/// the file system allows, else copied) and `batches/`, then `sweep.toml`, `runs.csv` and the
/// sweep-level outputs, by the code an unsharded sweep writes them with. Refuses shard
/// directories of different sweeps (naming the one that differs) and a merge with runs that no
/// shard finished (listing them); a run in several shards must be finished in each. A run that
/// `out` already holds finished is kept. The sweep's base configs must still be where the shards'
/// sweep file found them. Returns `out/runs.csv`.
pub fn merge(out: &Path, dirs: &[PathBuf]) -> Result<PathBuf> {
    const OP: &str = "sweep merge";
    let Some(first) = dirs.first() else {
        return Err(arg_err(OP, "no shard directories to merge"));
    };
    let mut text: Option<String> = None;
    let mut records = Vec::new();
    for d in dirs {
        let own = std::fs::read_to_string(d.join(SWEEP_COPY)).map_err(|_| {
            arg_err(
                OP,
                format!("{}: not a sweep directory (no {SWEEP_COPY})", d.display()),
            )
        })?;
        match &text {
            Some(t) if *t != own => {
                return Err(arg_err(
                    OP,
                    format!(
                        "{} holds another sweep than {}: their {SWEEP_COPY} differ; merge the \
                         shards of one sweep",
                        d.display(),
                        first.display()
                    ),
                ))
            }
            Some(_) => {}
            None => text = Some(own),
        }
        let record = read_shard(d)?.ok_or_else(|| {
            arg_err(
                OP,
                format!(
                    "{}: not a shard directory (no {SHARD_FILE}: it was not run with --shard)",
                    d.display()
                ),
            )
        })?;
        records.push(record);
    }
    // Shards cut with different counts partition the run list differently: a 0/1 shard (a
    // resubmission without its count runs the whole sweep) beside 1/3 and 2/3 is a mistake.
    if let Some((d, r)) = dirs
        .iter()
        .zip(&records)
        .find(|(_, r)| r.count != records[0].count)
    {
        return Err(arg_err(
            OP,
            format!(
                "{} is shard {} but {} is shard {}: merge the shards of one split (all cut \
                 with the same --shard .../N)",
                d.display(),
                r.shard(),
                first.display(),
                records[0].shard()
            ),
        ));
    }
    let text = text.unwrap_or_default();
    check_dir(&text, out, None, MERGE_TAIL)?;
    let (sweep, runs) = expand_text(&text, &records[0].sweep)?;
    let Some(kind) = runs.first().map(|r| r.config.kind()) else {
        return Err(arg_err(
            OP,
            format!("{}: no runs", records[0].sweep.display()),
        ));
    };
    for (d, r) in dirs.iter().zip(&records) {
        if r.total != runs.len() {
            return Err(arg_err(
                OP,
                format!(
                    "{}: its shard {} was cut from {} runs, but {} now expands to {} (were its \
                     base configs changed?)",
                    d.display(),
                    r.shard(),
                    r.total,
                    r.sweep.display(),
                    runs.len()
                ),
            ));
        }
    }
    // Where every run comes from (None: `out` already holds it finished).
    let mut sources: Vec<Option<PathBuf>> = Vec::with_capacity(runs.len());
    let mut missing = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let name = dir_name(i, &r.label);
        let found: Vec<PathBuf> = dirs
            .iter()
            .map(|d| d.join(&name))
            .filter(|p| p.is_dir())
            .collect();
        let finished = |p: &PathBuf| p.join("summary.json").exists();
        if let Some(unfinished) = found.iter().find(|p| !finished(p)) {
            if found.len() > 1 {
                return Err(arg_err(
                    OP,
                    format!(
                        "run {name} is in {} shard directories but {} is unfinished (no \
                         summary.json); finish that shard or leave it out of the merge",
                        found.len(),
                        unfinished.display()
                    ),
                ));
            }
        }
        if out.join(&name).join("summary.json").exists() {
            sources.push(None);
        } else if let Some(src) = found.into_iter().find(finished) {
            sources.push(Some(src));
        } else {
            missing.push(i);
            sources.push(None);
        }
    }
    if !missing.is_empty() {
        let count = records[0].count;
        let names: Vec<String> = missing
            .iter()
            .map(|&i| {
                let owner = (0..count)
                    .find(|&s| shard_range(runs.len(), s, count).contains(&i))
                    .unwrap_or(0);
                format!("{} (shard {owner}/{count})", dir_name(i, &runs[i].label))
            })
            .collect();
        return Err(arg_err(
            OP,
            format!(
                "missing runs {} ({} of the sweep's {}: no summary.json in any shard directory): \
                 {}; finish their shards (a shard run again into its directory continues) and \
                 merge again",
                missing
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                missing.len(),
                runs.len(),
                names.join(", ")
            ),
        ));
    }
    create_dir(out)?;
    let _lock = lock_dir(out)?;
    write_atomic(&out.join(SWEEP_COPY), text.as_bytes())?;
    for (i, src) in sources.iter().enumerate() {
        if let Some(src) = src {
            place_tree(src, &out.join(dir_name(i, &runs[i].label)))?;
        }
    }
    for d in dirs {
        let batches = d.join("batches");
        let Ok(entries) = std::fs::read_dir(&batches) else {
            continue;
        };
        for e in entries {
            let e = e.map_err(file_err("read", &batches))?;
            let to = out.join("batches").join(e.file_name());
            if e.path().is_dir() && !to.exists() {
                place_tree(&e.path(), &to)?;
            }
        }
    }
    let keys: Vec<&String> = sweep.grid.keys().collect();
    let mut table = RunsTable::default();
    record_runs(&mut table, kind, &keys, &runs, 0..runs.len(), out)?;
    Ok(out.join("runs.csv"))
}

/// Puts a copy of the directory `from` at `to` (replacing what is there): built beside it and
/// renamed into place, so an interrupted merge leaves no half-copied run under its name.
fn place_tree(from: &Path, to: &Path) -> Result<()> {
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(".merging");
    let tmp = PathBuf::from(tmp);
    for stale in [&tmp, &to.to_path_buf()] {
        if stale.exists() {
            std::fs::remove_dir_all(stale).map_err(file_err("remove", stale))?;
        }
    }
    link_tree(from, &tmp)?;
    std::fs::rename(&tmp, to).map_err(file_err("rename", &tmp))
}

/// Recreates the directory tree `from` at `to`, hard-linking every file (a finished run's files
/// are only ever replaced, never rewritten in place) or copying it where links fail (another
/// file system).
fn link_tree(from: &Path, to: &Path) -> Result<()> {
    create_dir(to)?;
    for e in std::fs::read_dir(from).map_err(file_err("read", from))? {
        let e = e.map_err(file_err("read", from))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        // A lock belongs to the directory its holder wrote, not to copies (and a hard link
        // would share the lock's inode).
        if e.file_name() == LOCK_FILE {
            continue;
        }
        if src.is_dir() {
            link_tree(&src, &dst)?;
        } else if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).map_err(file_err("copy", &src))?;
        }
    }
    Ok(())
}
