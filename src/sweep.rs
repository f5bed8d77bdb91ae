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

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{read_table, ConfigError};
use crate::error::{arg_err, file_err, Error, Result};
use crate::experiments::{BatchMember, ExperimentConfig, Kind};
use crate::gpu::Gpu;
use crate::report::{summary_markdown, RunsTable};
use crate::run::{create_dir, holds_run, read_json, write_atomic, write_json};

/// A sweep file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// The experiment config every run starts from (relative to the sweep file). Alternatively
    /// the grid key `base` lists several (to compare students whose quick configs differ in more
    /// than `model.kind`); exactly one of the two must be given.
    #[serde(default)]
    pub base: Option<PathBuf>,
    /// Seeds (`train.seed`); every grid point runs once per seed.
    pub seeds: Vec<u64>,
    /// Overrides applied to every run, `key=value`.
    #[serde(default)]
    pub set: Vec<String>,
    /// Dotted config key → values; the sweep runs the Cartesian product.
    #[serde(default)]
    pub grid: BTreeMap<String, Vec<toml::Value>>,
    /// Drop grid points whose config is invalid (e.g. K > M in the authors' `experts_vs_hot`,
    /// where the reference code fails an assertion) instead of refusing the whole sweep.
    #[serde(default)]
    pub skip_invalid: bool,
    /// Most runs trained together as one batch, for experiments that batch runs (theory: runs
    /// differing only in seed, task list, latent weighting, learning rates or weight decay share
    /// every dispatch). Default 64; 1 runs them one after the other.
    #[serde(default = "default_batch")]
    pub batch: usize,
}

fn default_batch() -> usize {
    64
}

/// One run of a sweep: its label, overrides and validated config.
pub struct SweepRun {
    /// `key=value,...,seed=s`, also the run directory's name (sanitised).
    pub label: String,
    /// The grid values of this run, in grid-key order.
    pub values: Vec<String>,
    /// The seed.
    pub seed: u64,
    /// Every override applied to the base config.
    pub overrides: Vec<String>,
    /// The loaded, validated config.
    pub config: ExperimentConfig,
    /// The resolved config text.
    pub resolved: String,
}

/// The grid key that selects the base config instead of overriding a key.
const BASE_KEY: &str = "base";

/// The name under which a sweep directory keeps a copy of its sweep file.
const SWEEP_COPY: &str = "sweep.toml";

/// The file that marks a sweep directory as one shard of a sweep ([`ShardRecord`]).
const SHARD_FILE: &str = "shard.json";

/// Reads a sweep file and expands and validates every run (no GPU work).
pub fn expand(path: &Path) -> Result<(SweepConfig, Vec<SweepRun>)> {
    let text = std::fs::read_to_string(path).map_err(file_err("read", path))?;
    expand_text(&text, path)
}

/// [`expand`] of a sweep file's `text` as if it were the file at `path` (base configs are
/// relative to its directory; errors name it).
fn expand_text(text: &str, path: &Path) -> Result<(SweepConfig, Vec<SweepRun>)> {
    let sweep: SweepConfig =
        toml::from_str(text).map_err(|e| arg_err("sweep", format!("{}: {e}", path.display())))?;
    if sweep.seeds.is_empty() {
        return Err(arg_err(
            "sweep",
            format!("{}: `seeds` is empty", path.display()),
        ));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let grid_base = sweep.grid.contains_key(BASE_KEY);
    let base = match (&sweep.base, grid_base) {
        (Some(b), false) => dir.join(b),
        (None, true) => PathBuf::new(),
        (Some(_), true) => {
            return Err(arg_err(
                "sweep",
                format!(
                    "{}: `base` is given both at the top and as a grid key",
                    path.display()
                ),
            ))
        }
        (None, false) => {
            return Err(arg_err(
                "sweep",
                format!(
                    "{}: no `base` (the experiment config to start from)",
                    path.display()
                ),
            ))
        }
    };
    let keys: Vec<&String> = sweep.grid.keys().collect();
    let mut points: Vec<Vec<&toml::Value>> = vec![Vec::new()];
    for k in &keys {
        let vals = &sweep.grid[*k];
        if vals.is_empty() {
            return Err(arg_err("sweep", format!("grid key `{k}` has no values")));
        }
        points = points
            .into_iter()
            .flat_map(|p| vals.iter().map(move |v| [p.clone(), vec![v]].concat()))
            .collect();
    }
    let mut runs = Vec::new();
    let mut kinds = Kinds::default();
    for p in &points {
        for &seed in &sweep.seeds {
            let mut overrides = sweep.set.clone();
            let mut values = Vec::new();
            let mut base = base.clone();
            for (k, v) in keys.iter().zip(p) {
                if k.as_str() == BASE_KEY {
                    let Some(file) = v.as_str() else {
                        return Err(arg_err(
                            "sweep",
                            format!("grid key `base`: {v} is not a path string"),
                        ));
                    };
                    base = dir.join(file);
                    // The file stem names the grid point (`anil` for `../anil.toml`).
                    let stem = base.file_stem().map(|s| s.to_string_lossy().into_owned());
                    values.push(stem.unwrap_or_else(|| file.to_string()));
                } else {
                    overrides.push(format!("{k}={v}"));
                    values.push(v.to_string().trim_matches('"').to_string());
                }
            }
            let kind = kinds.of(&base)?;
            overrides.push(format!("{}={seed}", kind.seed_key()));
            let (config, table) = match ExperimentConfig::load(&base, &overrides) {
                Ok(loaded) => loaded,
                Err(e) if sweep.skip_invalid && is_invalid_value(&e) => {
                    println!(
                        "sweep: skipping {}: {}",
                        overrides.join(" "),
                        crate::error::report(&e)
                    );
                    continue;
                }
                Err(e) => return Err(e),
            };
            let resolved = toml::to_string(&table)?;
            let mut label: Vec<String> = keys
                .iter()
                .zip(&values)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            label.push(format!("seed={seed}"));
            runs.push(SweepRun {
                label: label.join(","),
                values,
                seed,
                overrides,
                config,
                resolved,
            });
        }
    }
    one_experiment(path, &runs)?;
    Ok((sweep, runs))
}

/// Whether a config error is about a value (a grid point that `skip_invalid` may drop), not about
/// the file (missing, not TOML, no experiment).
fn is_invalid_value(e: &Error) -> bool {
    matches!(e, Error::Config(c) if !matches!(**c, ConfigError::Io { .. } | ConfigError::Parse { .. }))
}

/// The experiment of each base config, read once per file.
#[derive(Default)]
struct Kinds(BTreeMap<PathBuf, Kind>);

impl Kinds {
    fn of(&mut self, base: &Path) -> Result<Kind> {
        if let Some(k) = self.0.get(base) {
            return Ok(*k);
        }
        let kind = Kind::of_table(&read_table(base)?, base)?;
        self.0.insert(base.to_path_buf(), kind);
        Ok(kind)
    }
}

/// All runs of a sweep share one experiment: its summary columns make the sweep's tables.
fn one_experiment(path: &Path, runs: &[SweepRun]) -> Result<()> {
    let mut kinds: Vec<&str> = runs.iter().map(|r| r.config.kind().name()).collect();
    kinds.dedup();
    if kinds.len() > 1 {
        return Err(arg_err(
            "sweep",
            format!(
                "{}: the base configs are of different experiments ({}); one sweep runs one",
                path.display(),
                kinds.join(", ")
            ),
        ));
    }
    Ok(())
}

fn dir_name(i: usize, label: &str) -> String {
    let clean: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "=-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{i:03}-{clean}")
}

/// One of `count` contiguous slices of a sweep's run list (`--shard index/count`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which slice, `0 ≤ index < count`.
    pub index: usize,
    /// How many slices.
    pub count: usize,
}

impl Shard {
    /// Shard `index` of `count`; refused unless `0 ≤ index < count`.
    pub fn new(index: usize, count: usize) -> Result<Shard> {
        if count == 0 {
            return Err(arg_err(
                "--shard",
                format!("`{index}/{count}`: the count N of I/N must be at least 1"),
            ));
        }
        if index >= count {
            return Err(arg_err(
                "--shard",
                format!(
                    "`{index}/{count}`: the index I of I/N must be below the count N \
                     (0 ≤ I < N; the shards of N = {count} are 0/{count} to {}/{count})",
                    count - 1
                ),
            ));
        }
        Ok(Shard { index, count })
    }

    /// The global indices of this shard's runs in a sweep of `len` runs ([`shard_range`]).
    pub fn runs(self, len: usize) -> Range<usize> {
        shard_range(len, self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = Error;

    /// Parses `I/N`, e.g. `0/4`.
    fn from_str(s: &str) -> Result<Shard> {
        let bad = || {
            arg_err(
                "--shard",
                format!("`{s}` is not I/N (shard I of N, 0 ≤ I < N, e.g. 0/4)"),
            )
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index = i.trim().parse().map_err(|_| bad())?;
        let count = n.trim().parse().map_err(|_| bad())?;
        Shard::new(index, count)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The runs of shard `index` of `count` in a run list of `len`: the contiguous block
/// `⌊index·len/count⌋ .. ⌊(index+1)·len/count⌋`. The blocks of `index = 0..count` cover
/// `0..len` in order, each run once, and differ in length by at most one; contiguous blocks keep
/// consecutive runs that train as one batch together except at the `count − 1` boundaries.
/// `count` must be at least 1 and `index` below it (see [`Shard::new`]).
pub fn shard_range(len: usize, index: usize, count: usize) -> Range<usize> {
    // In u128: index · len cannot overflow.
    let at = |i: usize| (i as u128 * len as u128 / count.max(1) as u128) as usize;
    at(index)..at(index + 1)
}

/// A shard directory's `shard.json`: which shard of which sweep it holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// The shard's index I.
    pub index: usize,
    /// The shard count N.
    pub count: usize,
    /// The global indices of its runs (the `NNN` of their directories).
    pub runs: Vec<usize>,
    /// Runs in the whole sweep.
    pub total: usize,
    /// The sweep file it ran (absolute where it could be resolved): [`merge`] resolves the base
    /// configs of the directory's `sweep.toml` relative to it.
    pub sweep: PathBuf,
}

impl ShardRecord {
    /// The shard it records.
    pub fn shard(&self) -> Shard {
        Shard {
            index: self.index,
            count: self.count,
        }
    }
}

/// `dir/shard.json`, or `None` when `dir` is not a shard directory.
fn read_shard(dir: &Path) -> Result<Option<ShardRecord>> {
    let path = dir.join(SHARD_FILE);
    if path.exists() {
        read_json(&path).map(Some)
    } else {
        Ok(None)
    }
}

/// Runs every run of `sweep_path` into `out/<nnn>-<label>/` and writes `out/runs.csv` and
/// `out/summary.md` after every run. Continues a sweep of the same file in `out`; refuses a
/// directory holding a run or another sweep unless `overwrite`.
pub fn run_sweep(gpu: &Gpu, sweep_path: &Path, out: &Path, overwrite: bool) -> Result<PathBuf> {
    let csv = run_sweep_shard(gpu, sweep_path, out, overwrite, None)?;
    Ok(csv.unwrap_or_else(|| out.join("runs.csv")))
}

/// [`run_sweep`] of one shard (all runs for `None`): runs only the runs of `shard`
/// ([`Shard::runs`]), their directories named by their global index, `runs.csv` and
/// `summary.md` holding only them, and records the shard in `out/shard.json`. A directory of
/// another shard (or an unsharded one) is refused unless `overwrite`. Returns `runs.csv`, or
/// `None` for a shard without runs (more shards than runs).
pub fn run_sweep_shard(
    gpu: &Gpu,
    sweep_path: &Path,
    out: &Path,
    overwrite: bool,
    shard: Option<Shard>,
) -> Result<Option<PathBuf>> {
    let (sweep, runs) = expand(sweep_path)?;
    check_shard_dir(sweep_path, out, overwrite, shard)?;
    let text = std::fs::read_to_string(sweep_path).map_err(file_err("read", sweep_path))?;
    create_dir(out)?;
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
            if batch.len() > 1 {
                println!(
                    "sweep runs {} of {} as one batch: {}",
                    batch
                        .iter()
                        .map(|&j| (j + 1).to_string())
                        .collect::<Vec<_>>()
                        .join(","),
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

/// Appends the rows of the runs `indices` (of `runs`, finished in `out/<nnn>-<label>/`) to
/// `table` and rewrites `out/runs.csv` and the sweep-level outputs
/// ([`write_sweep_outputs`]). The one table code of a sweep (after every run) and of [`merge`]
/// (once, over every run): the grid keys, `seed`, `run`, then the experiment's summary columns.
fn record_runs(
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
fn check_dir(sweep_text: &str, out: &Path, shard: Option<Shard>, tail: &str) -> Result<()> {
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
        if src.is_dir() {
            link_tree(&src, &dst)?;
        } else if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).map_err(file_err("copy", &src))?;
        }
    }
    Ok(())
}
