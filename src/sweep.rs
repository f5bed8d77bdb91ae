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
//! Every run's config is loaded and validated before the first run starts. A run whose
//! directory already holds a `summary.json` is not run again, so an interrupted sweep resumes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{ConfigError, HyperteacherConfig};
use crate::error::{arg_err, Error, Result};
use crate::gpu::Gpu;
use crate::report::{summary_markdown, RunsTable};
use crate::run::write_atomic;
use crate::train::hyperteacher::{run, Summary};

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
    pub config: HyperteacherConfig,
    /// The resolved config text.
    pub resolved: String,
}

/// The grid key that selects the base config instead of overriding a key.
const BASE_KEY: &str = "base";

fn cfg_err(e: ConfigError) -> Error {
    arg_err("sweep", e.to_string())
}

/// Reads a sweep file and expands and validates every run (no GPU work).
pub fn expand(path: &Path) -> Result<(SweepConfig, Vec<SweepRun>)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
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
            overrides.push(format!("train.seed={seed}"));
            let (config, table) = match HyperteacherConfig::load(&base, &overrides) {
                Ok(loaded) => loaded,
                Err(e) if sweep.skip_invalid && !matches!(e, ConfigError::Io { .. }) => {
                    println!("sweep: skipping {}: {e}", overrides.join(" "));
                    continue;
                }
                Err(e) => return Err(cfg_err(e)),
            };
            let resolved = toml::to_string(&table).map_err(|e| arg_err("sweep", e.to_string()))?;
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
    Ok((sweep, runs))
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

/// The `runs.csv` columns after the grid keys and seed.
fn metric_columns(s: &Summary) -> Vec<(String, String)> {
    let mut cols = Vec::new();
    for (which, sets) in [("final", &s.r#final), ("best", &s.best)] {
        for (set, m) in sets {
            cols.push((format!("{which}_{set}_loss"), format!("{:.6}", m.loss)));
            cols.push((format!("{which}_{set}_acc"), format!("{:.6}", m.acc)));
        }
    }
    cols.push(("best_step".into(), s.best_step.to_string()));
    cols.push((
        "decoder_r2".into(),
        s.decoder_r2
            .as_ref()
            .map_or(String::new(), |d| format!("{:.6}", d.mean)),
    ));
    cols.push(("seconds".into(), format!("{:.1}", s.seconds)));
    cols
}

/// Runs every run of `sweep_path` into `out/<nnn>-<label>/` and writes `out/runs.csv`.
pub fn run_sweep(gpu: &Gpu, sweep_path: &Path, out: &Path) -> Result<PathBuf> {
    let (sweep, runs) = expand(sweep_path)?;
    let io = |e: std::io::Error| Error::Io {
        path: out.display().to_string(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(out).map_err(io)?;
    let keys: Vec<&String> = sweep.grid.keys().collect();
    let mut table = RunsTable::default();
    for (i, r) in runs.iter().enumerate() {
        let dir = out.join(dir_name(i, &r.label));
        let summary_path = dir.join("summary.json");
        println!("sweep run {}/{}: {}", i + 1, runs.len(), r.label);
        let summary: Summary = if summary_path.exists() {
            let text = std::fs::read_to_string(&summary_path).map_err(io)?;
            serde_json::from_str(&text)
                .map_err(|e| arg_err("sweep", format!("{}: {e}", summary_path.display())))?
        } else {
            run(gpu, &r.config, &r.resolved, &dir)?
        };
        let cols = metric_columns(&summary);
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
        let report = |e: String| arg_err("sweep", e);
        table
            .write(&out.join("runs.csv"))
            .map_err(|e| report(e.to_string()))?;
        let markdown = summary_markdown(&table).map_err(report)?;
        write_atomic(&out.join("summary.md"), markdown.as_bytes())?;
    }
    Ok(out.join("runs.csv"))
}
