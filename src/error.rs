//! Typed errors of the library. The CLI wraps them in `anyhow` at the edge.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong inside the engine.
#[derive(Debug, Error)]
pub enum Error {
    /// No adapter could be found (or none matched `HYPERMOD_ADAPTER`).
    #[error(
        "no GPU adapter found ({tried}).\n\
         hypermod needs a WebGPU-capable adapter (Vulkan, Metal, DX12 or OpenGL ES 3.1+).\n\
         On a machine without a GPU install Mesa's CPU Vulkan driver (lavapipe):\n    \
         sudo apt-get install mesa-vulkan-drivers libvulkan1\n\
         and select it with WGPU_BACKEND=vulkan. Run `hypermod info` to list what wgpu sees."
    )]
    NoAdapter {
        /// Which backends / filters were tried.
        tried: String,
    },
    /// The adapter refused to create a device.
    #[error("could not create a device on adapter '{adapter}': {message}")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// The driver's message.
        message: String,
    },
    /// Operands of an op do not fit together.
    #[error("shape error in {op}: {detail}")]
    Shape {
        /// The op that rejected its operands.
        op: &'static str,
        /// Which shapes were given and what was expected.
        detail: String,
    },
    /// A buffer or dispatch would exceed a device limit.
    #[error("{what} needs {requested} but the device limit `{limit_name}` is {limit}")]
    Limit {
        /// What was being created.
        what: String,
        /// The size asked for (with unit).
        requested: String,
        /// The wgpu limit's name.
        limit_name: &'static str,
        /// The limit's value (with unit).
        limit: String,
    },
    /// The adapter lacks a feature the requested operation needs.
    #[error("the adapter '{adapter}' lacks {feature}, which {needed_by} needs")]
    MissingFeature {
        /// Adapter name.
        adapter: String,
        /// The missing wgpu feature.
        feature: &'static str,
        /// What needed it.
        needed_by: String,
    },
    /// A validation / out-of-memory / internal error reported by wgpu.
    #[error("GPU error in {context}: {message}")]
    Gpu {
        /// What the engine was doing.
        context: String,
        /// wgpu's description.
        message: String,
    },
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
    /// The experiment's task space or split is impossible.
    #[error(transparent)]
    Task(#[from] crate::experiments::hyperteacher::tasks::TaskError),
    /// The teacher rejected its configuration or data (boxed: it can hold an [`enum@Error`]).
    #[error(transparent)]
    Teacher(Box<crate::tasks::teacher::TeacherError>),
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

/// Shorthand for a [`Error::Shape`].
pub(crate) fn shape_err(op: &'static str, detail: impl Into<String>) -> Error {
    Error::Shape {
        op,
        detail: detail.into(),
    }
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

impl From<crate::tasks::teacher::TeacherError> for Error {
    fn from(e: crate::tasks::teacher::TeacherError) -> Error {
        match e {
            // A GPU error passed through the teacher is the engine's own.
            crate::tasks::teacher::TeacherError::Gpu(e) => e,
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
