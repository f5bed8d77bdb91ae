//! Errors of the device layer and everything built directly on it (`native`, `gpu`, `ops`, `nn`,
//! `students`): adapters, limits, shapes and arguments of kernels and layers. They know nothing of
//! runs, configs or experiments; the crate's [`crate::Error`] wraps them (`Error::Device`).

use thiserror::Error;

/// What can go wrong on a device, in a kernel launcher or in a layer.
#[derive(Debug, Error)]
pub enum DeviceError {
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
    /// An argument outside its valid range (non-finite scale, zero size, ...).
    #[error("invalid argument to {op}: {detail}")]
    InvalidArgument {
        /// The op that rejected its argument.
        op: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// Result alias of the device layer.
pub type Result<T, E = DeviceError> = std::result::Result<T, E>;

/// Shorthand for a [`DeviceError::Shape`].
pub(crate) fn shape_err(op: &'static str, detail: impl Into<String>) -> DeviceError {
    DeviceError::Shape {
        op,
        detail: detail.into(),
    }
}

/// Shorthand for a [`DeviceError::InvalidArgument`].
pub(crate) fn arg_err(op: &'static str, detail: impl Into<String>) -> DeviceError {
    DeviceError::InvalidArgument {
        op,
        detail: detail.into(),
    }
}
