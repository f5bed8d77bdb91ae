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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{read_table, ConfigError};
use crate::error::{arg_err, file_err, Error, Result};
use crate::experiments::{BatchMember, ExperimentConfig, Kind};
use crate::gpu::Gpu;
use crate::report::{summary_markdown, RunsTable};
use crate::run::{create_dir, holds_run, write_atomic};

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

/// Reads a sweep file and expands and validates every run (no GPU work).
pub fn expand(path: &Path) -> Result<(SweepConfig, Vec<SweepRun>)> {
    let text = std::fs::read_to_string(path).map_err(file_err("read", path))?;
    let sweep: SweepConfig =
        toml::from_str(&text).map_err(|e| arg_err("sweep", format!("{}: {e}", path.display())))?;
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

/// Runs every run of `sweep_path` into `out/<nnn>-<label>/` and writes `out/runs.csv` and
/// `out/summary.md` after every run. Continues a sweep of the same file in `out`; refuses a
/// directory holding a run or another sweep unless `overwrite`.
pub fn run_sweep(gpu: &Gpu, sweep_path: &Path, out: &Path, overwrite: bool) -> Result<PathBuf> {
    let (sweep, runs) = expand(sweep_path)?;
    check_sweep_dir(sweep_path, out, overwrite)?;
    let text = std::fs::read_to_string(sweep_path).map_err(file_err("read", sweep_path))?;
    create_dir(out)?;
    write_atomic(&out.join(SWEEP_COPY), text.as_bytes())?;
    let Some(kind) = runs.first().map(|r| r.config.kind()) else {
        return Err(arg_err(
            "sweep",
            format!("{}: no runs", sweep_path.display()),
        ));
    };
    let keys: Vec<&String> = sweep.grid.keys().collect();
    let mut table = RunsTable::default();
    let mut trained = vec![false; runs.len()];
    for (i, r) in runs.iter().enumerate() {
        let dir = out.join(dir_name(i, &r.label));
        let summary = dir.join("summary.json");
        if !trained[i] && (overwrite || !summary.exists()) {
            let batch = batch_of(&runs, i, &trained, out, overwrite, sweep.batch);
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
        let cols = kind.summary_columns(&summary)?;
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
                .chain([r.seed.to_string(), dir_name(i, &r.label)])
                .chain(cols.into_iter().map(|(_, v)| v))
                .collect(),
        );
        table.write(&out.join("runs.csv"))?;
        let markdown =
            summary_markdown(&table, kind.measures()).map_err(|e| arg_err("sweep", e))?;
        write_atomic(&out.join("summary.md"), markdown.as_bytes())?;
    }
    Ok(out.join("runs.csv"))
}

/// Run `i` and the later runs still to train that can share its batch (same batch key), at most
/// the sweep's `batch` and what fits the device budget; just `[i]` for an experiment that does
/// not batch.
fn batch_of(
    runs: &[SweepRun],
    i: usize,
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
    (i..runs.len())
        .filter(pending)
        .filter(|&j| runs[j].config.batch_key().as_ref() == Some(&key))
        .take(most)
        .collect()
}

/// Refuses a sweep directory that holds a single run, another sweep, or a sweep whose file is
/// unknown (written before sweeps kept theirs), unless `overwrite`. The same sweep file may
/// continue in its own directory.
pub fn check_sweep_dir(sweep_path: &Path, out: &Path, overwrite: bool) -> Result<()> {
    if overwrite {
        return Ok(());
    }
    let sweep_text = std::fs::read_to_string(sweep_path).map_err(file_err("read", sweep_path))?;
    let refuse = |what: &str, hint: &str| Error::RunExists {
        dir: out.to_path_buf(),
        what: what.to_string(),
        hint: format!("{hint}, choose another --out, or pass --overwrite to run this sweep there"),
    };
    if holds_run(out) {
        return Err(refuse(
            "a run, not a sweep",
            "continue it with `hypermod train --resume`",
        ));
    }
    match std::fs::read_to_string(out.join(SWEEP_COPY)) {
        Ok(own) if own == sweep_text => Ok(()),
        Ok(_) => Err(refuse(
            "another sweep (its sweep.toml differs from this sweep file)",
            "run that sweep file to continue it",
        )),
        Err(_) if out.join("runs.csv").exists() => Err(refuse(
            "a sweep without its sweep.toml",
            "copy the sweep file there as sweep.toml to continue it",
        )),
        Err(_) => Ok(()),
    }
}
