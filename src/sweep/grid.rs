//! The sweep file and its expansion: a grid of overrides × seeds over the base configs, each
//! run loaded and validated before any GPU work.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{read_table, ConfigError};
use crate::error::{arg_err, file_err, Error, Result};
use crate::experiments::{ExperimentConfig, Kind};

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

/// Reads a sweep file and expands and validates every run (no GPU work).
pub fn expand(path: &Path) -> Result<(SweepConfig, Vec<SweepRun>)> {
    let text = std::fs::read_to_string(path).map_err(file_err("read", path))?;
    expand_text(&text, path)
}

/// [`expand`] of a sweep file's `text` as if it were the file at `path` (base configs are
/// relative to its directory; errors name it).
pub(super) fn expand_text(text: &str, path: &Path) -> Result<(SweepConfig, Vec<SweepRun>)> {
    // An experiment config given to `sweep` (both commands take a TOML file): say so, rather than
    // that `experiment` is an unknown sweep key.
    if let Ok(table) = text.parse::<toml::Table>() {
        if let Some(name) = table.get("experiment").and_then(toml::Value::as_str) {
            return Err(Error::WrongFile {
                file: path.to_path_buf(),
                is: format!("an experiment config (`experiment = \"{name}\"`)"),
                expected: "a sweep file",
                command: "train",
                also: Some(format!(
                    "or sweep over it with a sweep file holding `base = \"{}\"` and `seeds`",
                    path.file_name()
                        .map_or(String::new(), |n| n.to_string_lossy().into_owned())
                )),
            });
        }
    }
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

/// The name of run `i`'s directory in a sweep directory: its global index and its label, with
/// every character a path might not hold replaced by `_`.
pub(super) fn dir_name(i: usize, label: &str) -> String {
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
