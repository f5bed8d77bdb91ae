//! The generic strict config loader: TOML files, `--set a.b.c=value` overrides, unknown keys
//! with suggestions, typed errors. It knows no experiment.
//!
//! Every config names its experiment with a top-level `experiment = "..."` key (see
//! [`EXPERIMENT_KEY`]); the experiment's own sections map onto serde structs with
//! `deny_unknown_fields` and a [`Schema`]. [`load_toml`] reads the file, applies command-line
//! overrides to the TOML table *before* deserialising, rejects unknown keys with a suggestion of
//! the closest valid one, and reports type errors naming the key, the expected type and the value
//! given. Each experiment then range-checks its config before any GPU work starts.
//!
//! ```no_run
//! use hypermod::experiments::hyperteacher::HyperteacherConfig;
//!
//! # fn main() -> Result<(), hypermod::config::ConfigError> {
//! let overrides = vec!["train.lr_outer=3e-3".to_string(), "task.support=connected".to_string()];
//! let (cfg, resolved) = HyperteacherConfig::load("configs/hyperteacher.toml", &overrides)?;
//! assert_eq!(cfg.train_params().lr_outer, 3e-3);
//! # let _ = resolved;
//! # Ok(())
//! # }
//! ```

mod schema;

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use thiserror::Error;

/// The top-level key that names a config's experiment (`experiment = "hyperteacher"`). It is
/// the loader's, not the experiment's: it never reaches the experiment's structs, cannot be set
/// with `--set`, and is kept in the resolved table (so a run directory's `config.toml` names its
/// experiment too).
pub const EXPERIMENT_KEY: &str = "experiment";

/// Why a configuration could not be loaded or is invalid.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read config file {}", file.display())]
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
    /// A section whose values fit one by one but not together (a task space with K > M, an
    /// empty side of a split, ...); the experiment's own error is the source.
    #[error("{}invalid [{section}] section", file_prefix(file))]
    Section {
        /// The file, when known.
        file: Option<Box<Path>>,
        /// The section, e.g. `task`.
        section: &'static str,
        /// Why the experiment rejected it.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The file names another experiment than the one loading it.
    #[error("{}: `experiment = \"{found}\"`, but this is the {expected} loader", file.display())]
    WrongExperiment {
        /// The file.
        file: Box<Path>,
        /// The experiment whose loader was called.
        expected: &'static str,
        /// The experiment the file names.
        found: String,
    },
}

impl ConfigError {
    /// Attaches the file to validation errors that do not carry one yet.
    pub fn in_file(mut self, path: &Path) -> Self {
        match &mut self {
            ConfigError::Invalid { file, .. } | ConfigError::Section { file, .. }
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

/// The keys a config type accepts, table by table: derived from the type's serde declaration
/// (`config/schema.rs` probes it once), for every deserializable type.
pub trait Schema {
    /// The keys of the top-level table.
    fn fields() -> &'static [Field];
}

impl<T: DeserializeOwned + 'static> Schema for T {
    fn fields() -> &'static [Field] {
        schema::fields_of::<T>()
    }
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

/// Parses TOML text as read from `file` into a table (no schema yet).
pub fn parse_table(text: &str, file: &Path) -> Result<toml::Table, ConfigError> {
    text.parse()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            file: file.into(),
            message: e.to_string().trim_end().to_string(),
        })
}

/// Reads the TOML file at `path` into a table (no schema yet).
pub fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        file: path.into(),
        source,
    })?;
    parse_table(&text, path)
}

/// The table's [`EXPERIMENT_KEY`]: `Ok(None)` when absent, a type error when not a string.
pub fn experiment_of<'t>(
    table: &'t toml::Table,
    file: &Path,
) -> Result<Option<&'t str>, ConfigError> {
    match table.get(EXPERIMENT_KEY) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ConfigError::Type {
            file: file.into(),
            key: EXPERIMENT_KEY.to_string(),
            value: render_at(table, EXPERIMENT_KEY),
            message: format!("invalid type: {}, expected a string", other.type_str()),
            origin: None,
        }),
    }
}

/// An experiment's own loader: the table's [`EXPERIMENT_KEY`] may be absent (the caller chose
/// the experiment), but must not name another than `expected`.
pub fn expect_experiment(
    table: &toml::Table,
    file: &Path,
    expected: &'static str,
) -> Result<(), ConfigError> {
    match experiment_of(table, file)? {
        Some(found) if found != expected => Err(ConfigError::WrongExperiment {
            file: file.into(),
            expected,
            found: found.to_string(),
        }),
        _ => Ok(()),
    }
}

/// An experiment config loaded from a table: the table names no other experiment than
/// `expected`, `overrides` apply, keys check against `T`'s [`Schema`], then `validate` runs;
/// errors name `file`. Every experiment's `from_table` is this.
pub fn experiment_from_table<T: DeserializeOwned + Schema>(
    table: toml::Table,
    file: &Path,
    overrides: &[String],
    expected: &'static str,
    validate: impl FnOnce(&T) -> Result<(), ConfigError>,
) -> Result<(T, toml::Table), ConfigError> {
    expect_experiment(&table, file, expected)?;
    let (cfg, table) = from_table::<T>(table, file, overrides)?;
    validate(&cfg).map_err(|e| e.in_file(file))?;
    Ok((cfg, table))
}

/// Applies `overrides` to `table`, checks its keys against `T`'s [`Schema`] and deserialises.
/// The [`EXPERIMENT_KEY`] is set aside first (type-checked, never overridable) and put back into
/// the returned resolved table.
pub fn from_table<T: DeserializeOwned + Schema>(
    mut table: toml::Table,
    file: &Path,
    overrides: &[String],
) -> Result<(T, toml::Table), ConfigError> {
    experiment_of(&table, file)?;
    let experiment = table.remove(EXPERIMENT_KEY);
    let mut origins = BTreeMap::new();
    for arg in overrides {
        let (path, _) = split_override(arg)?;
        if path[0] == EXPERIMENT_KEY {
            return Err(ConfigError::Override {
                arg: arg.clone(),
                reason:
                    "the experiment is the file's own `experiment` key, it cannot be overridden"
                        .into(),
            });
        }
        apply_override(&mut table, T::fields(), arg, file)?;
        origins.insert(path.join("."), arg.clone());
    }
    check_keys(&table, T::fields(), &mut Vec::new(), file, &origins)?;
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
    if let Some(e) = experiment {
        table.insert(EXPERIMENT_KEY.to_string(), e);
    }
    Ok((value, table))
}

/// Parses TOML text (as read from `file`), applies `overrides`, checks keys against `T`'s
/// [`Schema`] and deserialises. Returns the value and the resolved table (file plus overrides).
pub fn parse_toml<T: DeserializeOwned + Schema>(
    text: &str,
    file: &Path,
    overrides: &[String],
) -> Result<(T, toml::Table), ConfigError> {
    from_table(parse_table(text, file)?, file, overrides)
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
    from_table(read_table(path)?, path, overrides)
}

/// Range-check helpers for the experiments' `validate()`.
pub mod check {
    use super::ConfigError;
    use std::fmt;

    /// A [`ConfigError::Invalid`] for `key` (the file is attached later, see
    /// [`ConfigError::in_file`]).
    pub fn invalid(key: &str, value: impl fmt::Display, reason: &str) -> ConfigError {
        ConfigError::Invalid {
            file: None,
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    /// `min ≤ value ≤ max`.
    pub fn range(key: &str, value: usize, min: usize, max: usize) -> Result<(), ConfigError> {
        if value < min || value > max {
            return Err(invalid(key, value, &format!("must lie in {min}..={max}")));
        }
        Ok(())
    }

    /// A finite number > 0.
    pub fn positive_finite(key: &str, value: f64) -> Result<(), ConfigError> {
        if !value.is_finite() || value <= 0.0 {
            return Err(invalid(key, value, "must be a finite number > 0"));
        }
        Ok(())
    }
}
