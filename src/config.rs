//! Experiment configuration: strict TOML files, `--set a.b.c=value` overrides, validation.
//!
//! Every experiment is described by one TOML file whose sections map onto serde structs with
//! `deny_unknown_fields`. [`load_toml`] reads the file, applies command-line overrides to the
//! TOML table *before* deserialising, rejects unknown keys with a suggestion of the closest valid
//! one, and reports type errors naming the key, the expected type and the value given. The
//! experiment types then range-check themselves ([`HyperteacherConfig::validate`]) before any GPU
//! work starts.
//!
//! ```no_run
//! use hypermod::config::HyperteacherConfig;
//!
//! # fn main() -> Result<(), hypermod::config::ConfigError> {
//! let overrides = vec!["train.lr_outer=3e-3".to_string(), "task.support=connected".to_string()];
//! let (cfg, resolved) = HyperteacherConfig::load("configs/hyperteacher.toml", &overrides)?;
//! assert_eq!(cfg.train_params().lr_outer, 3e-3);
//! # let _ = resolved;
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::tasks::hyperteacher::{TaskError, TaskSpace, TaskSupport};

/// Why a configuration could not be loaded or is invalid.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read config file {}: {source}", file.display())]
    Io {
        /// The file asked for.
        file: Box<Path>,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{} is not valid TOML: {message}", file.display())]
    Parse {
        /// The file.
        file: Box<Path>,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A `--set` argument that is not of the form `a.b.c=value`.
    #[error("invalid override `{arg}`: {reason} (expected `--set section.key=value`)")]
    Override {
        /// The argument as given.
        arg: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key that no config struct knows (a typo, or a key of another experiment).
    #[error("{}: unknown key `{key}` in {table}{}{}", file.display(), suggestion_hint(suggestion), origin_hint(origin))]
    UnknownKey {
        /// The file.
        file: Box<Path>,
        /// The offending key (last path segment).
        key: String,
        /// Where it was found: `[train]`, `[task]`, or `the top level`.
        table: String,
        /// The closest valid key, if one is close enough.
        suggestion: Option<String>,
        /// The `--set` argument that introduced the key; `None` when it is in the file.
        origin: Option<String>,
    },
    /// A value whose type does not fit its key (or an enum value that is not a variant).
    #[error("{}: key `{key}` = {value}: {message}{}", file.display(), origin_hint(origin))]
    Type {
        /// The file.
        file: Box<Path>,
        /// Dotted key path, e.g. `train.lr_outer`.
        key: String,
        /// The value given, as TOML (shortened).
        value: String,
        /// The deserialiser's message, naming the value's type and the expected type.
        message: String,
        /// The `--set` argument that set the key; `None` when it is in the file.
        origin: Option<String>,
    },
    /// A value of the right type but outside its valid range.
    #[error("{}invalid `{key}` = {value}: {reason}", file_prefix(file))]
    Invalid {
        /// The file, when known.
        file: Option<Box<Path>>,
        /// Dotted key path.
        key: String,
        /// The value given.
        value: String,
        /// The range it must lie in.
        reason: String,
    },
    /// The task space or split of `[task]` is impossible (K > M, an empty side, ...).
    #[error("{}invalid [task] section: {source}", file_prefix(file))]
    Task {
        /// The file, when known.
        file: Option<Box<Path>>,
        /// Why the task space or split was rejected.
        source: Box<TaskError>,
    },
}

impl ConfigError {
    /// Attaches the file to validation errors that do not carry one yet.
    pub fn in_file(mut self, path: &Path) -> Self {
        match &mut self {
            ConfigError::Invalid { file, .. } | ConfigError::Task { file, .. }
                if file.is_none() =>
            {
                *file = Some(path.into());
            }
            _ => {}
        }
        self
    }
}

fn suggestion_hint(s: &Option<String>) -> String {
    s.as_ref()
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

fn origin_hint(o: &Option<String>) -> String {
    o.as_ref()
        .map(|o| format!(" (from `--set {o}`)"))
        .unwrap_or_default()
}

fn file_prefix(f: &Option<Box<Path>>) -> String {
    f.as_ref()
        .map(|f| format!("{}: ", f.display()))
        .unwrap_or_default()
}

/// One key of a config table, for unknown-key detection and override paths.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The key as written in TOML.
    pub name: &'static str,
    /// The keys of the sub-table when this key is a table (`[section]`), else `None`.
    pub table: Option<&'static [Field]>,
}

impl Field {
    /// A scalar (or array) key.
    pub const fn leaf(name: &'static str) -> Self {
        Field { name, table: None }
    }

    /// A sub-table key.
    pub const fn table(name: &'static str, fields: &'static [Field]) -> Self {
        Field {
            name,
            table: Some(fields),
        }
    }
}

/// The keys a config type accepts, table by table. Must list exactly the serde field names of the
/// type (the tests check this for every experiment config).
pub trait Schema {
    /// The keys of the top-level table.
    const FIELDS: &'static [Field];
}

/// The closest of `candidates` to `key` by edit distance, if close enough to be a likely typo.
pub fn suggest<'a>(key: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let limit = (key.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(key, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c.to_string())
}

fn table_name(path: &[&str]) -> String {
    if path.is_empty() {
        "the top level".to_string()
    } else {
        format!("[{}]", path.join("."))
    }
}

/// Parses the value of an override: a TOML value (`3`, `1e-3`, `true`, `"random"`, `[1, 2]`,
/// `{a = 1}`), or else the text itself as a bare string (`random`).
pub fn parse_override_value(text: &str) -> toml::Value {
    let trimmed = text.trim();
    match trimmed.parse::<toml::Value>() {
        Ok(v) => v,
        Err(_) => toml::Value::String(trimmed.to_string()),
    }
}

/// Splits `a.b.c=value` into its key path and value text.
fn split_override(arg: &str) -> Result<(Vec<&str>, &str), ConfigError> {
    let bad = |reason: &str| ConfigError::Override {
        arg: arg.to_string(),
        reason: reason.to_string(),
    };
    let (key, value) = arg.split_once('=').ok_or_else(|| bad("missing `=`"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(bad("empty key"));
    }
    let path: Vec<&str> = key.split('.').map(str::trim).collect();
    if path.iter().any(|s| s.is_empty()) {
        return Err(bad("empty segment in the key path"));
    }
    Ok((path, value))
}

/// Applies one `a.b.c=value` override to `table`. Each segment must exist in the table or be a
/// key of `schema`; intermediate tables missing from the file are created.
pub fn apply_override(
    table: &mut toml::Table,
    schema: &'static [Field],
    arg: &str,
    file: &Path,
) -> Result<(), ConfigError> {
    let (path, value_text) = split_override(arg)?;
    let value = parse_override_value(value_text);
    let mut current = table;
    let mut fields = Some(schema);
    for (i, seg) in path.iter().enumerate() {
        let field = fields.and_then(|f| f.iter().find(|f| f.name == *seg));
        let in_file = current.contains_key(*seg);
        if field.is_none() && !in_file {
            return Err(ConfigError::UnknownKey {
                file: file.into(),
                key: seg.to_string(),
                table: table_name(&path[..i]),
                suggestion: fields.and_then(|f| suggest(seg, f.iter().map(|f| f.name))),
                origin: Some(arg.to_string()),
            });
        }
        if i + 1 == path.len() {
            current.insert(seg.to_string(), value);
            return Ok(());
        }
        fields = field.and_then(|f| f.table);
        let entry = current
            .entry(seg.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            other => {
                return Err(ConfigError::Override {
                    arg: arg.to_string(),
                    reason: format!(
                        "`{}` is a {}, not a table",
                        path[..=i].join("."),
                        other.type_str()
                    ),
                })
            }
        };
    }
    Ok(())
}

/// Reports the first key of `table` that `fields` does not list, recursing into sub-tables.
fn check_keys(
    table: &toml::Table,
    fields: &'static [Field],
    path: &mut Vec<String>,
    file: &Path,
    origins: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for (key, value) in table {
        let Some(field) = fields.iter().find(|f| f.name == key) else {
            let segs: Vec<&str> = path.iter().map(String::as_str).collect();
            let mut dotted = path.clone();
            dotted.push(key.clone());
            return Err(ConfigError::UnknownKey {
                file: file.into(),
                key: key.clone(),
                table: table_name(&segs),
                suggestion: suggest(key, fields.iter().map(|f| f.name)),
                origin: find_origin(origins, &dotted.join(".")),
            });
        };
        if let (Some(sub), toml::Value::Table(t)) = (field.table, value) {
            path.push(key.clone());
            check_keys(t, sub, path, file, origins)?;
            path.pop();
        }
    }
    Ok(())
}

/// The override that set `key` or one of its parents.
fn find_origin(origins: &BTreeMap<String, String>, key: &str) -> Option<String> {
    origins
        .iter()
        .filter(|(k, _)| key == k.as_str() || key.starts_with(&format!("{k}.")))
        .max_by_key(|(k, _)| k.len())
        .map(|(_, arg)| arg.clone())
}

/// The value at dotted `key` of `table`, rendered as TOML and shortened, for error messages.
fn render_at(table: &toml::Table, key: &str) -> String {
    let mut segs = key.split('.');
    let mut value = segs.next().and_then(|s| table.get(s));
    for seg in segs {
        value = value.and_then(|v| v.get(seg));
    }
    let text = match value {
        None => return "?".to_string(),
        Some(toml::Value::Table(_)) => return "a table".to_string(),
        Some(v) => v.to_string(),
    };
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

/// Parses TOML text (as read from `file`), applies `overrides`, checks keys against `T`'s
/// [`Schema`] and deserialises. Returns the value and the resolved table (file plus overrides).
pub fn parse_toml<T: DeserializeOwned + Schema>(
    text: &str,
    file: &Path,
    overrides: &[String],
) -> Result<(T, toml::Table), ConfigError> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            file: file.into(),
            message: e.to_string().trim_end().to_string(),
        })?;
    let mut origins = BTreeMap::new();
    for arg in overrides {
        apply_override(&mut table, T::FIELDS, arg, file)?;
        if let Ok((path, _)) = split_override(arg) {
            origins.insert(path.join("."), arg.clone());
        }
    }
    check_keys(&table, T::FIELDS, &mut Vec::new(), file, &origins)?;
    let value: T = serde_path_to_error::deserialize(toml::Value::Table(table.clone())).map_err(
        |e: serde_path_to_error::Error<toml::de::Error>| {
            let key = e.path().to_string();
            ConfigError::Type {
                file: file.into(),
                value: render_at(&table, &key),
                origin: find_origin(&origins, &key),
                message: e.inner().message().to_string(),
                key,
            }
        },
    )?;
    Ok((value, table))
}

/// Reads the TOML file at `path`, applies `--set a.b.c=value` overrides onto its table, and
/// deserialises it into `T` (whose structs deny unknown fields).
///
/// Override values are parsed as TOML values (`3`, `1e-3`, `true`, `"random"`, `[1, 2]`), falling
/// back to a bare string. An override's key path must exist in the file or be a key of `T`.
/// Returns the value and the resolved table, for recording in the run directory. Never panics.
pub fn load_toml<T: DeserializeOwned + Schema>(
    path: impl AsRef<Path>,
    overrides: &[String],
) -> Result<(T, toml::Table), ConfigError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        file: path.into(),
        source,
    })?;
    parse_toml(&text, path, overrides)
}

// ---------------------------------------------------------------------------------------------
// The hyperteacher experiment (spec: /work/shared/spec/schug-hyperteacher.md)
// ---------------------------------------------------------------------------------------------

/// Largest network width or teacher hidden size accepted (a guard against typos, far above the
/// paper's 512).
pub const MAX_WIDTH: usize = 1 << 16;
/// Largest per-task shot count, meta-batch or evaluation-set size accepted (typo guard).
pub const MAX_BATCH: usize = 1 << 20;

/// Which tasks are in-distribution and which are held out (spec §2.5, `task_support`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Support {
    /// Random permutation; the last ⌊frac_ood·N⌋ tasks are OOD.
    Random,
    /// OOD: every task with the last module active in the last layer.
    NonCompositional,
    /// Connected support (needs K = 2, M even, M > 4).
    Connected,
    /// Disconnected support (needs K = 2, M even, M > 4).
    Disconnected,
}

/// The student model (spec §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Linear hypernetwork (§4.2).
    HnetLinear,
    /// Nonlinear ("DeepBank") hypernetwork (§4.3).
    HnetDeepmlp,
    /// ANIL, `anil512` (§4.4).
    Anil,
    /// MAML with a learned initialisation, `learned_init384` (§4.5).
    Maml,
}

impl ModelKind {
    /// The model's default hidden width: 128 for the hypernetworks' target network (§4.1),
    /// 512 for ANIL (§4.4), 384 for MAML (§4.5).
    pub fn default_width(self) -> usize {
        match self {
            ModelKind::HnetLinear | ModelKind::HnetDeepmlp => 128,
            ModelKind::Anil => 512,
            ModelKind::Maml => 384,
        }
    }

    /// The per-model training hyperparameters of spec §5.3, with a full-batch inner loop of
    /// `shots_support` points where the table says "full".
    pub fn default_train(self, shots_support: usize) -> TrainParams {
        let (lr_inner, steps_inner, inner_batch, lr_outer, wd_outer, max_grad_norm) = match self {
            ModelKind::HnetLinear => (0.3, 10, shots_support, 1e-3, 1e-2, 1.0),
            ModelKind::HnetDeepmlp => (0.3, 10, shots_support, 3e-3, 1e-2, 1.0),
            ModelKind::Anil => (0.03, 100, 64, 1e-3, 1e-4, 2.0),
            ModelKind::Maml => (0.01, 10, shots_support, 1e-3, 1e-4, 2.0),
        };
        TrainParams {
            steps_inner,
            inner_batch,
            lr_inner,
            lr_outer,
            wd_outer,
            max_grad_norm,
        }
    }
}

/// The per-model training hyperparameters after defaults are filled in (spec §5.3).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainParams {
    /// Inner-loop AdamW steps per task.
    pub steps_inner: usize,
    /// Support points per inner step (equal to `shots_support` for full batch).
    pub inner_batch: usize,
    /// Inner-loop AdamW learning rate.
    pub lr_inner: f64,
    /// Outer-loop AdamW learning rate.
    pub lr_outer: f64,
    /// Outer-loop decoupled weight decay.
    pub wd_outer: f64,
    /// Global-norm clip of the meta-gradient.
    pub max_grad_norm: f64,
}

/// `[task]`: the teacher and its task distribution (spec §1.1, §2, §3.4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskConfig {
    /// Teacher modules per layer, M (`num_experts`). Default 4 (`configs/hyperteacher.py`,
    /// spec §1.1); the main sweeps use 8.
    pub modules: usize,
    /// Most active modules per generated layer, K (`num_hot`). Default 2 (§1.1). Must be ≤ M.
    pub max_hot: usize,
    /// Generated teacher layers, L. Default 2 (§1.1: `hidden_0`, `hidden_1`).
    pub layers: usize,
    /// Teacher hidden width in units (`dataset_hidden_dim`). Default 32 (§1.1).
    pub hidden_dim: usize,
    /// Whether the teacher shares one module bank across layers. Default false (§1.1, §1.2).
    pub chunking: bool,
    /// Continuous task coefficients in [0.5, 1) instead of binary. Default false (§2.2).
    pub continuous: bool,
    /// Which tasks are held out (`task_support`). Default `random` (§2.5).
    pub support: Support,
    /// Fraction of tasks held out by the `random` support, in (0, 1). Default 0.25 (§2.3).
    pub frac_ood: f64,
    /// Support (inner-loop) samples per task (`shots_train`). Default 256 (§3.4).
    pub shots_support: usize,
    /// Query (outer-loss) samples per task (`shots_test`). Default 256 (§3.4).
    pub shots_query: usize,
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig {
            modules: 4,
            max_hot: 2,
            layers: 2,
            hidden_dim: 32,
            chunking: false,
            continuous: false,
            support: Support::Random,
            frac_ood: 0.25,
            shots_support: 256,
            shots_query: 256,
        }
    }
}

/// `[model]`: the student (spec §4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Which student. Default `hnet_linear` (§4.2).
    pub kind: ModelKind,
    /// Hidden width in units. Default per model ([`ModelKind::default_width`]): 128 (§4.1),
    /// 512 for ANIL (§4.4), 384 for MAML (§4.5).
    pub width: Option<usize>,
    /// Student modules per teacher module, T / M (`ratio_templates_experts`). Default 4 (§4.2);
    /// used by the hypernetworks only.
    pub ratio_templates: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            kind: ModelKind::HnetLinear,
            width: None,
            ratio_templates: 4,
        }
    }
}

/// `[train]`: the meta-learning loop (spec §5). Keys left out take the per-model defaults of
/// §5.3 ([`ModelKind::default_train`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Run seed: teacher, split permutation, initialisation and data. Default 2023 (§1.1).
    pub seed: u64,
    /// Outer (meta) steps. Default 200,000 (§5.2).
    pub steps_outer: usize,
    /// Tasks per outer step. Default 128 (§5.2).
    pub meta_batch: usize,
    /// Inner AdamW steps per task. Default per model: 10, or 100 for ANIL (§5.3).
    pub steps_inner: Option<usize>,
    /// Support points per inner step, drawn with replacement. Default per model: the full
    /// support set, or 64 for ANIL (§5.1, §5.3).
    pub inner_batch: Option<usize>,
    /// Inner AdamW learning rate. Default per model: 0.3, 0.3, 0.03 (ANIL), 0.01 (MAML) (§5.3).
    pub lr_inner: Option<f64>,
    /// Outer AdamW learning rate. Default per model: 1e-3, or 3e-3 for `hnet_deepmlp` (§5.3).
    pub lr_outer: Option<f64>,
    /// Outer decoupled weight decay. Default per model: 1e-2 (hypernetworks), 1e-4 (§5.3).
    pub wd_outer: Option<f64>,
    /// Global-norm clip of the meta-gradient. Default per model: 1.0 (hypernetworks), 2.0
    /// (§5.3).
    pub max_grad_norm: Option<f64>,
    /// Outer steps between evaluations. Default 1,000 (not in the spec; an engine choice).
    pub eval_every: usize,
    /// Tasks per evaluation set (valid, test, ood, ood_k). Default 1,024 (§3.4).
    pub eval_tasks: usize,
    /// Consecutive outer steps with a non-finite meta-gradient (each skipped on the GPU) after
    /// which the run stops with a checkpoint. Default 10 (an engine choice; the reference applies
    /// a second consecutive non-finite step instead, spec §5.2).
    pub max_consecutive_skips: usize,
    /// Fault injection for tests: outer steps (1-based) whose meta-gradient is made NaN.
    /// Default empty.
    pub inject_nan_steps: Vec<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 2023,
            steps_outer: 200_000,
            meta_batch: 128,
            steps_inner: None,
            inner_batch: None,
            lr_inner: None,
            lr_outer: None,
            wd_outer: None,
            max_grad_norm: None,
            eval_every: 1_000,
            eval_tasks: 1_024,
            max_consecutive_skips: 10,
            inject_nan_steps: Vec::new(),
        }
    }
}

/// A hyperteacher few-shot meta-learning experiment (spec §1–§5). Every key has a default, so an
/// empty file is the reference configuration (`configs/hyperteacher.py`, M = 4, `hnet_linear`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HyperteacherConfig {
    /// Teacher and task distribution.
    pub task: TaskConfig,
    /// Student model.
    pub model: ModelConfig,
    /// Meta-learning loop.
    pub train: TrainConfig,
}

const TASK_FIELDS: &[Field] = &[
    Field::leaf("modules"),
    Field::leaf("max_hot"),
    Field::leaf("layers"),
    Field::leaf("hidden_dim"),
    Field::leaf("chunking"),
    Field::leaf("continuous"),
    Field::leaf("support"),
    Field::leaf("frac_ood"),
    Field::leaf("shots_support"),
    Field::leaf("shots_query"),
];

const MODEL_FIELDS: &[Field] = &[
    Field::leaf("kind"),
    Field::leaf("width"),
    Field::leaf("ratio_templates"),
];

const TRAIN_FIELDS: &[Field] = &[
    Field::leaf("seed"),
    Field::leaf("steps_outer"),
    Field::leaf("meta_batch"),
    Field::leaf("steps_inner"),
    Field::leaf("inner_batch"),
    Field::leaf("lr_inner"),
    Field::leaf("lr_outer"),
    Field::leaf("wd_outer"),
    Field::leaf("max_grad_norm"),
    Field::leaf("eval_every"),
    Field::leaf("eval_tasks"),
    Field::leaf("max_consecutive_skips"),
    Field::leaf("inject_nan_steps"),
];

impl Schema for HyperteacherConfig {
    const FIELDS: &'static [Field] = &[
        Field::table("task", TASK_FIELDS),
        Field::table("model", MODEL_FIELDS),
        Field::table("train", TRAIN_FIELDS),
    ];
}

fn invalid(key: &str, value: impl fmt::Display, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        file: None,
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn check_range(key: &str, value: usize, min: usize, max: usize) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(invalid(key, value, &format!("must lie in {min}..={max}")));
    }
    Ok(())
}

fn check_positive_finite(key: &str, value: f64) -> Result<(), ConfigError> {
    if !value.is_finite() || value <= 0.0 {
        return Err(invalid(key, value, "must be a finite number > 0"));
    }
    Ok(())
}

impl HyperteacherConfig {
    /// [`load_toml`], then [`HyperteacherConfig::validate`]; validation errors name the file.
    pub fn load(
        path: impl AsRef<Path>,
        overrides: &[String],
    ) -> Result<(Self, toml::Table), ConfigError> {
        let path = path.as_ref();
        let (cfg, table) = load_toml::<Self>(path, overrides)?;
        cfg.validate().map_err(|e| e.in_file(path))?;
        Ok((cfg, table))
    }

    /// The student's hidden width, the model default when `[model] width` is absent.
    pub fn width(&self) -> usize {
        self.model
            .width
            .unwrap_or_else(|| self.model.kind.default_width())
    }

    /// The training hyperparameters with the per-model defaults of spec §5.3 filled in.
    pub fn train_params(&self) -> TrainParams {
        let d = self.model.kind.default_train(self.task.shots_support);
        let t = &self.train;
        TrainParams {
            steps_inner: t.steps_inner.unwrap_or(d.steps_inner),
            inner_batch: t.inner_batch.unwrap_or(d.inner_batch),
            lr_inner: t.lr_inner.unwrap_or(d.lr_inner),
            lr_outer: t.lr_outer.unwrap_or(d.lr_outer),
            wd_outer: t.wd_outer.unwrap_or(d.wd_outer),
            max_grad_norm: t.max_grad_norm.unwrap_or(d.max_grad_norm),
        }
    }

    /// This config with every per-model default written out, for the run directory's record.
    pub fn with_defaults_filled(&self) -> Self {
        let p = self.train_params();
        let mut cfg = self.clone();
        cfg.model.width = Some(self.width());
        cfg.train.steps_inner = Some(p.steps_inner);
        cfg.train.inner_batch = Some(p.inner_batch);
        cfg.train.lr_inner = Some(p.lr_inner);
        cfg.train.lr_outer = Some(p.lr_outer);
        cfg.train.wd_outer = Some(p.wd_outer);
        cfg.train.max_grad_norm = Some(p.max_grad_norm);
        cfg
    }

    /// The task space of `[task]` (validates 1 ≤ K ≤ M, L ≥ 1 and the enumeration size).
    pub fn task_space(&self) -> Result<TaskSpace, ConfigError> {
        TaskSpace::new(self.task.modules, self.task.max_hot, self.task.layers).map_err(|source| {
            ConfigError::Task {
                file: None,
                source: Box::new(source),
            }
        })
    }

    /// The [`TaskSupport`] of `[task]`; the random permutation is seeded with `train.seed`.
    pub fn task_support(&self) -> TaskSupport {
        match self.task.support {
            Support::Random => TaskSupport::Random {
                frac_ood: self.task.frac_ood,
                seed: self.train.seed,
            },
            Support::NonCompositional => TaskSupport::NonCompositional,
            Support::Connected => TaskSupport::Connected,
            Support::Disconnected => TaskSupport::Disconnected,
        }
    }

    /// Range-checks every value and builds the task split once, so an impossible experiment
    /// fails before any GPU work: positive sizes (with typo guards [`MAX_WIDTH`] and
    /// [`MAX_BATCH`]), finite positive learning rates and clip norm, finite non-negative weight
    /// decay, 0 < frac_ood < 1, K ≤ M, and a split that leaves both training and OOD tasks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.task;
        check_range("task.hidden_dim", t.hidden_dim, 1, MAX_WIDTH)?;
        check_range("task.shots_support", t.shots_support, 1, MAX_BATCH)?;
        check_range("task.shots_query", t.shots_query, 1, MAX_BATCH)?;
        if !(t.frac_ood.is_finite() && t.frac_ood > 0.0 && t.frac_ood < 1.0) {
            return Err(invalid(
                "task.frac_ood",
                t.frac_ood,
                "must be a finite number strictly between 0 and 1",
            ));
        }
        if t.max_hot > t.modules {
            return Err(invalid(
                "task.max_hot",
                t.max_hot,
                &format!(
                    "K must not exceed the number of modules M = {} (task.modules)",
                    t.modules
                ),
            ));
        }

        let m = &self.model;
        check_range("model.width", self.width(), 1, MAX_WIDTH)?;
        check_range("model.ratio_templates", m.ratio_templates, 1, 1024)?;
        if matches!(m.kind, ModelKind::HnetLinear | ModelKind::HnetDeepmlp) {
            let templates = m.ratio_templates.saturating_mul(t.modules);
            if templates > MAX_WIDTH {
                return Err(invalid(
                    "model.ratio_templates",
                    m.ratio_templates,
                    &format!(
                        "ratio_templates × M = {templates} student modules exceeds {MAX_WIDTH}"
                    ),
                ));
            }
        }

        let tr = &self.train;
        let p = self.train_params();
        check_range("train.steps_outer", tr.steps_outer, 1, usize::MAX)?;
        check_range("train.meta_batch", tr.meta_batch, 1, MAX_BATCH)?;
        check_range("train.steps_inner", p.steps_inner, 1, 1 << 20)?;
        check_range("train.inner_batch", p.inner_batch, 1, MAX_BATCH)?;
        check_positive_finite("train.lr_inner", p.lr_inner)?;
        check_positive_finite("train.lr_outer", p.lr_outer)?;
        check_positive_finite("train.max_grad_norm", p.max_grad_norm)?;
        if !(p.wd_outer.is_finite() && p.wd_outer >= 0.0) {
            return Err(invalid(
                "train.wd_outer",
                p.wd_outer,
                "must be a finite number ≥ 0",
            ));
        }
        check_range("train.eval_every", tr.eval_every, 1, usize::MAX)?;
        check_range("train.eval_tasks", tr.eval_tasks, 1, MAX_BATCH)?;
        check_range(
            "train.max_consecutive_skips",
            tr.max_consecutive_skips,
            1,
            usize::MAX,
        )?;

        // Last, as it enumerates the task space: K ≤ M, size, and a split with both sides.
        let space = self.task_space()?;
        space
            .split(self.task_support())
            .map_err(|source| ConfigError::Task {
                file: None,
                source: Box::new(source),
            })?;
        Ok(())
    }
}
