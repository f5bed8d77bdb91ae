//! The device layer: backend and adapter selection, tensors, the buffer pool, the pipeline cache,
//! per-step command recording and timing. Nothing outside this module touches raw wgpu buffers;
//! the same calls run on a wgpu adapter or on the native CPU backend (`crate::native`).

pub mod account;
mod device;
pub mod error;
mod kernels;
mod pool;
mod profile;
mod select;
mod step;
mod tensor;
mod uniform;

pub use device::{
    list_adapters, quiet_display_probes, requested_limits, AdapterReport, Device, DeviceOptions,
    FeatureSet, LimitsReport, ADAPTER_ENV, KERNEL_STORAGE_BUFFERS, LIMITS_ENV,
};
pub use error::DeviceError;
pub use kernels::{grid_1d, Access, Cost, Dispatch, KernelSpec, Shader};
pub use profile::{Timing, TimingMethod};
pub use select::{DeviceChoice, DEVICE_ENV};
pub use step::{ReadSlot, Readback, Step};
pub use tensor::Tensor;
pub use uniform::{Uniform, UniformField, UniformLayout};

/// The former name of [`Device`], which is the native CPU backend as much as a GPU.
#[deprecated(since = "0.1.0", note = "renamed `Device`")]
pub type Gpu = Device;
/// The former name of [`Tensor`].
#[deprecated(since = "0.1.0", note = "renamed `Tensor`")]
pub type GpuTensor = Tensor;
/// The former name of [`DeviceOptions`].
#[deprecated(since = "0.1.0", note = "renamed `DeviceOptions`")]
pub type GpuOptions = DeviceOptions;
