//! The crate's error: runs, configs, checkpoints, experiments. It wraps the device layer's
//! [`DeviceError`] (`Error::Device`) and the errors of the config loader, the teacher and the
//! runs table; nothing below it (`gpu`, `ops`, `nn`, `students`, `teacher`) imports it. The CLI
//! wraps it in `anyhow` at the edge.

use std::path::PathBuf;

use thiserror::Error;

use crate::gpu::DeviceError;

/// Everything that can go wrong inside the engine.
#[derive(Debug, Error)]
pub enum Error {
    /// A device, kernel or layer error ([`DeviceError`]).
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Reading or writing a file failed for a reason of the engine's own (a corrupt checkpoint,
    /// a file that is not what it should be).
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The operating system refused to read or write a file.
    #[error("cannot {action} {}", path.display())]
    File {
        /// `read`, `write`, `create directory`, ...
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A JSON artefact (summary, metrics record) could not be written or read back.
    #[error("{}: not the JSON hypermod writes", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's or serialiser's error.
        source: serde_json::Error,
    },
    /// A resolved config could not be written back as TOML.
    #[error("cannot write the resolved config as TOML")]
    TomlWrite(#[from] toml::ser::Error),
    /// A safetensors checkpoint could not be encoded or decoded.
    #[error("{}: {what}", path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What was being done (`not a safetensors checkpoint`, ...).
        what: &'static str,
        /// The safetensors error (boxed: it is large).
        source: Box<safetensors::SafeTensorError>,
    },
    /// A config file could not be loaded or is invalid (boxed: it is large).
    #[error(transparent)]
    Config(Box<crate::config::ConfigError>),
    /// The teacher rejected its configuration or data (boxed: it can hold an [`enum@Error`]).
    #[error(transparent)]
    Teacher(Box<crate::teacher::TeacherError>),
    /// `runs.csv` could not be read or written.
    #[error(transparent)]
    RunsTable(#[from] crate::report::RunsTableError),
    /// The run stopped: too many consecutive outer steps had a non-finite meta-gradient.
    #[error(
        "stopped at step {step}: {consecutive} consecutive outer steps had a non-finite \
         meta-gradient (each skipped on the GPU, parameters untouched). The checkpoint {} holds \
         the state at step {step}; lower the learning rates or clip, then \
         `hypermod train --resume {}`",
        checkpoint.display(),
        dir.display()
    )]
    NonFinite {
        /// The step after which the run stopped (its state is in the checkpoint).
        step: usize,
        /// Consecutive skipped steps.
        consecutive: u32,
        /// The checkpoint written.
        checkpoint: PathBuf,
        /// The run directory.
        dir: PathBuf,
    },
    /// The run was asked to stop (see [`crate::train::interrupt`]) and left a checkpoint.
    #[error(
        "interrupted after step {step}; checkpoint written, continue with `hypermod train --resume {}`",
        dir.display()
    )]
    Interrupted {
        /// The last step trained (its state is in the checkpoint).
        step: usize,
        /// The run directory.
        dir: PathBuf,
    },
    /// A run or sweep directory would be overwritten.
    #[error("{} already holds {what}; {hint}", dir.display())]
    RunExists {
        /// The directory.
        dir: PathBuf,
        /// `a run (config.toml, checkpoint)`, `another sweep`, ...
        what: String,
        /// What to do instead.
        hint: String,
    },
    /// Another live process is writing this run or sweep directory ([`crate::run::lock_dir`]).
    #[error(
        "{} is in use by another hypermod process ({holder}); wait for it to finish or stop it \
         (two writers would interleave their files)",
        dir.display()
    )]
    DirInUse {
        /// The directory.
        dir: PathBuf,
        /// Who holds it: pid, host and command line.
        holder: String,
    },
    /// A sweep file given where an experiment config belongs, or the other way round (`train`
    /// and `sweep` both take a TOML file).
    #[error(
        "{} is {is}, not {expected}: run `hypermod {command} {}`{}",
        file.display(),
        file.display(),
        hint(also)
    )]
    WrongFile {
        /// The file.
        file: PathBuf,
        /// What it is: `a sweep file (it has \`seeds\`)`.
        is: String,
        /// What the command takes.
        expected: &'static str,
        /// The command that takes it.
        command: &'static str,
        /// What else would do.
        also: Option<String>,
    },
    /// A config names no experiment, or one hypermod does not know.
    #[error("{}: {problem}; known experiments: {}{}", file.display(), known.join(", "), hint(suggestion))]
    Experiment {
        /// The config file.
        file: PathBuf,
        /// `no top-level \`experiment\` key`, `unknown experiment \`x\``.
        problem: String,
        /// Every experiment hypermod knows.
        known: &'static [&'static str],
        /// The closest known name, or a hint for old configs.
        suggestion: Option<String>,
    },
    /// The experiment has no evaluation set of this name (it is not among its `eval_sets`).
    #[error("no evaluation set `{name}` (the experiment evaluates {})", known.join(", "))]
    NoSuchSet {
        /// The set asked for.
        name: String,
        /// The sets the experiment evaluates.
        known: Vec<String>,
    },
    /// An argument outside its valid range (non-finite scale, zero size, ...).
    #[error("invalid argument to {op}: {detail}")]
    InvalidArgument {
        /// The op that rejected its argument.
        op: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for a [`DeviceError::Shape`] raised above the device layer.
pub(crate) fn shape_err(op: &'static str, detail: impl Into<String>) -> Error {
    Error::Device(crate::gpu::error::shape_err(op, detail))
}

/// Shorthand for an [`Error::InvalidArgument`].
pub(crate) fn arg_err(op: &'static str, detail: impl Into<String>) -> Error {
    Error::InvalidArgument {
        op,
        detail: detail.into(),
    }
}

fn hint(s: &Option<String>) -> String {
    s.as_ref().map(|s| format!("; {s}")).unwrap_or_default()
}

impl From<crate::config::ConfigError> for Error {
    fn from(e: crate::config::ConfigError) -> Error {
        Error::Config(Box::new(e))
    }
}

impl From<crate::teacher::TeacherError> for Error {
    fn from(e: crate::teacher::TeacherError) -> Error {
        match e {
            // A GPU error passed through the teacher is the engine's own.
            crate::teacher::TeacherError::Gpu(e) => Error::Device(e),
            other => Error::Teacher(Box::new(other)),
        }
    }
}

/// An error and its causes, one after the other (`message: cause: cause`), the way the CLI
/// prints it. Every error type here says its own part only, so nothing repeats.
pub fn report(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Shorthand for an [`Error::File`].
pub(crate) fn file_err<'a>(
    action: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::File {
        action,
        path: path.to_path_buf(),
        source,
    }
}
