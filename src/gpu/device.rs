//! Adapter and device selection: honours `WGPU_BACKEND`, prefers discrete GPUs, can be pinned with
//! `HYPERMOD_ADAPTER=<substring>`, requests WebGPU's default limits ([`requested_limits`]) and
//! the optional features that help (timestamps, subgroups, f16) without requiring any of them.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::gpu::error::{DeviceError, Result};
use crate::gpu::kernels::KernelCache;
use crate::gpu::pool::BufferPool;
use crate::gpu::select::DeviceChoice;
use crate::native::NativeCpu;

/// Environment variable that pins the adapter by a case-insensitive substring of its name.
pub const ADAPTER_ENV: &str = "HYPERMOD_ADAPTER";

/// Environment variable that, set to `adapter`, requests every limit the adapter has instead of
/// WebGPU's defaults ([`DeviceOptions::adapter_limits`]).
pub const LIMITS_ENV: &str = "HYPERMOD_LIMITS";

/// Optional features the engine uses when the adapter offers them.
const WANTED_FEATURES: wgpu::Features = wgpu::Features::TIMESTAMP_QUERY
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
    .union(wgpu::Features::SUBGROUP)
    .union(wgpu::Features::SHADER_F16);

/// Which optional features are switched on for this device.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct FeatureSet {
    /// Pass-level timestamp queries: kernel timings come from the GPU clock.
    pub timestamp_query: bool,
    /// Subgroup built-ins (`subgroupAdd`, shuffles).
    pub subgroup: bool,
    /// `f16` in WGSL.
    pub shader_f16: bool,
}

/// Which optional features [`Device::with_options`] may enable (each only if the adapter has it).
#[derive(Clone, Copy, Debug)]
pub struct DeviceOptions {
    /// Use timestamp queries for kernel timing (wall clock otherwise).
    pub timestamp_query: bool,
    /// Enable subgroup built-ins.
    pub subgroup: bool,
    /// Enable `f16` in shaders.
    pub shader_f16: bool,
    /// Request every limit the adapter has, instead of WebGPU's defaults with the adapter's
    /// buffer sizes ([`requested_limits`]). Off by default (`HYPERMOD_LIMITS=adapter` turns it
    /// on), so that a kernel that needs more than any WebGPU device must offer fails on every
    /// machine, not only on another vendor's driver or in a browser.
    pub adapter_limits: bool,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        DeviceOptions {
            timestamp_query: true,
            subgroup: true,
            shader_f16: true,
            adapter_limits: std::env::var(LIMITS_ENV)
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("adapter")),
        }
    }
}

/// Storage buffers the most demanding kernel binds in one entry point (AdamW's second-order
/// adjoint: weights, gradients, moments, norms, state, the new moments and three adjoints), above
/// WebGPU's default of 8. The one limit the kernels ask above the defaults; `tests/kernel_layouts.rs`
/// checks it against the WGSL, so it is exactly what the kernels need.
pub const KERNEL_STORAGE_BUFFERS: u32 = 10;

/// The limits a device is created with, from the adapter's `adapter` limits: WebGPU's defaults
/// (`wgpu::Limits::default()`), or the downlevel defaults where the adapter falls short of them
/// (wgpu's GL backend), with what the kernels ask above them ([`KERNEL_STORAGE_BUFFERS`]), all
/// clamped to the adapter (a kernel that needs more than an adapter has then fails to compile
/// with an error naming the limit); and the two memory-size limits (largest buffer, largest
/// storage binding) raised to the adapter's, since those bound how much data a run holds, not
/// what a kernel needs, and a browser grants them on request too. `all`: the adapter's own.
pub fn requested_limits(adapter: &wgpu::Limits, all: bool) -> wgpu::Limits {
    if all {
        return adapter.clone();
    }
    let mut base = wgpu::Limits::default();
    if !base.check_limits(adapter) {
        base = wgpu::Limits::downlevel_defaults();
    }
    base.max_storage_buffers_per_shader_stage = base
        .max_storage_buffers_per_shader_stage
        .max(KERNEL_STORAGE_BUFFERS);
    let mut limits = base.or_worse_values_from(adapter);
    limits.max_buffer_size = adapter.max_buffer_size;
    limits.max_storage_buffer_binding_size = adapter.max_storage_buffer_binding_size;
    limits
}

/// A summary of the chosen adapter, printed by `hypermod info` and stored with benchmark results.
#[derive(Clone, Debug, Serialize)]
pub struct AdapterReport {
    /// Adapter name as the driver reports it ("native CPU (…)" on the native backend).
    pub name: String,
    /// Why this device was chosen (`--device` / `HYPERMOD_DEVICE`, auto-detection).
    pub selection: String,
    /// Backend (Vulkan, Metal, Dx12, Gl).
    pub backend: String,
    /// Discrete, integrated, CPU, ...
    pub device_type: String,
    /// Driver name.
    pub driver: String,
    /// Driver version / details.
    pub driver_info: String,
    /// Subgroup size range reported by the adapter.
    pub subgroup_size: (u32, u32),
    /// The limits that matter for compute.
    pub limits: LimitsReport,
    /// Optional features that were enabled.
    pub features: FeatureSet,
}

/// The compute limits hypermod checks against.
#[derive(Clone, Debug, Serialize)]
pub struct LimitsReport {
    /// Largest buffer that can be bound as one storage binding (bytes).
    pub max_storage_buffer_binding_size: u64,
    /// Largest buffer (bytes).
    pub max_buffer_size: u64,
    /// Workgroup shared memory (bytes).
    pub max_compute_workgroup_storage_size: u32,
    /// Invocations per workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Workgroups per grid dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// Storage buffers per shader stage.
    pub max_storage_buffers_per_shader_stage: u32,
}

/// The device hypermod runs on: a wgpu adapter (one device, one queue) or the native CPU
/// backend, with a buffer pool and a kernel cache.
///
/// Create it once with [`Device::new`] and share it (`&Device`) with everything that launches kernels.
/// Models, layers and trainers do not know which backend runs them: a [`crate::gpu::Dispatch`]
/// runs on either, and readback is the same call.
pub struct Device {
    pub(crate) backend: Backend,
    selection: String,
    adapter_info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    features: FeatureSet,
    pub(crate) pool: BufferPool,
    pub(crate) kernels: KernelCache,
    /// Uncaptured wgpu errors (validation during submit etc.), surfaced by the next readback.
    pub(crate) uncaptured: Arc<Mutex<Vec<String>>>,
    /// The open cost account, if any ([`Device::open_account`]).
    pub(crate) account: Mutex<Option<crate::gpu::account::CostAccount>>,
    /// Whether `account` is open: the check every recorded dispatch makes.
    pub(crate) account_open: std::sync::atomic::AtomicBool,
}

/// What executes the kernels.
pub(crate) enum Backend {
    /// WGSL on a wgpu adapter.
    Wgpu {
        device: wgpu::Device,
        queue: wgpu::Queue,
    },
    /// Rust on host memory (`crate::native`).
    Native(NativeCpu),
}

fn device_type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn backend_rank(b: wgpu::Backend) -> u8 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::Gl => 1,
        _ => 2,
    }
}

/// Switches off Mesa's `VK_LAYER_MESA_device_select` implicit Vulkan layer unless the user
/// configured it (`MESA_VK_DEVICE_SELECT`) or chose already (`NODEVICE_SELECT`).
///
/// Why: while enumerating physical devices that layer connects to the Wayland display to find
/// the "default" GPU; on a machine without one (a server, CI, ssh) libwayland then prints
/// `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` to stderr once per
/// enumeration, before any output of the command. hypermod orders adapters itself
/// (`HYPERMOD_ADAPTER`, discrete > integrated > CPU), so the layer adds nothing here.
///
/// It sets an environment variable, so call it at the start of `main`, before any thread is
/// started (the CLI does).
pub fn quiet_display_probes() {
    if std::env::var_os("MESA_VK_DEVICE_SELECT").is_none()
        && std::env::var_os("NODEVICE_SELECT").is_none()
    {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

/// Lists every adapter wgpu can see under the current environment (`WGPU_BACKEND` respected).
pub fn list_adapters() -> Vec<wgpu::AdapterInfo> {
    let (instance, backends) = make_instance();
    pollster::block_on(instance.enumerate_adapters(backends))
        .iter()
        .map(|a| a.get_info())
        .collect()
}

fn make_instance() -> (wgpu::Instance, wgpu::Backends) {
    let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    let backends = desc.backends;
    (wgpu::Instance::new(desc), backends)
}

impl Device {
    /// Picks an adapter and creates the device.
    ///
    /// Order: adapters whose name contains `$HYPERMOD_ADAPTER` (if set), then discrete before
    /// integrated before CPU, then Vulkan/Metal/DX12 before GL.
    pub fn new() -> Result<Device> {
        Self::open(DeviceChoice::from_env()?, DeviceOptions::default())
    }

    /// [`Device::new`] on a wgpu adapter, with options (e.g. optional features switched off, to
    /// exercise the paths a less capable adapter takes).
    pub fn with_options(options: DeviceOptions) -> Result<Device> {
        Self::open(DeviceChoice::Wgpu, options)
    }

    /// Every adapter wgpu enumerates, best first (pin, then device type, then backend).
    pub(crate) fn ranked_adapters() -> Result<Vec<wgpu::Adapter>> {
        let (instance, backends) = make_instance();
        let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
        let env_backend = std::env::var("WGPU_BACKEND").unwrap_or_else(|_| "all".into());
        let found: Vec<String> = adapters
            .iter()
            .map(|a| {
                let i = a.get_info();
                format!("{} ({:?})", i.name, i.backend)
            })
            .collect();
        if let Ok(pin) = std::env::var(ADAPTER_ENV) {
            let pin_lc = pin.to_lowercase();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&pin_lc));
            if adapters.is_empty() {
                return Err(DeviceError::NoAdapter {
                    tried: format!(
                        "WGPU_BACKEND={env_backend}; {ADAPTER_ENV}={pin} matched none of [{}]",
                        found.join(", ")
                    ),
                });
            }
        }
        adapters.sort_by_key(|a| {
            let i = a.get_info();
            (device_type_rank(i.device_type), backend_rank(i.backend))
        });
        if adapters.is_empty() {
            return Err(DeviceError::NoAdapter {
                tried: format!(
                    "WGPU_BACKEND={env_backend}, backends {backends:?}: wgpu enumerated no adapter"
                ),
            });
        }
        Ok(adapters)
    }

    /// Creates the device on a given adapter (used by [`Device::new`]; public for embedding).
    pub fn from_adapter(adapter: wgpu::Adapter, options: DeviceOptions) -> Result<Device> {
        let adapter_info = adapter.get_info();
        let mut wanted = WANTED_FEATURES;
        if !options.timestamp_query {
            wanted.remove(
                wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS,
            );
        }
        if !options.subgroup {
            wanted.remove(wgpu::Features::SUBGROUP);
        }
        if !options.shader_f16 {
            wanted.remove(wgpu::Features::SHADER_F16);
        }
        let required_features = adapter.features() & wanted;
        let limits = requested_limits(&adapter.limits(), options.adapter_limits);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("hypermod"),
            required_features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| DeviceError::RequestDevice {
            adapter: adapter_info.name.clone(),
            message: e.to_string(),
        })?;
        let uncaptured: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("uncaptured wgpu error: {e}");
            sink.lock()
                .expect("error sink poisoned")
                .push(e.to_string());
        }));
        let features = FeatureSet {
            // Inside-encoder timestamps are needed to resolve queries outside passes portably.
            timestamp_query: required_features.contains(wgpu::Features::TIMESTAMP_QUERY),
            subgroup: required_features.contains(wgpu::Features::SUBGROUP),
            shader_f16: required_features.contains(wgpu::Features::SHADER_F16),
        };
        log::info!(
            "hypermod: using '{}' ({:?}, {:?}), features {:?}",
            adapter_info.name,
            adapter_info.backend,
            adapter_info.device_type,
            features
        );
        Ok(Device {
            pool: BufferPool::default(),
            kernels: KernelCache::default(),
            backend: Backend::Wgpu { device, queue },
            selection: format!("wgpu adapter '{}'", adapter_info.name),
            adapter_info,
            limits,
            features,
            uncaptured,
            account: Mutex::default(),
            account_open: Default::default(),
        })
    }

    /// The native CPU backend with `threads` workers (`None`: `$HYPERMOD_THREADS`, else all
    /// cores).
    pub fn native(threads: Option<usize>) -> Result<Device> {
        let cpu = NativeCpu::new(threads)?;
        let name = format!(
            "native CPU ({} threads, {})",
            cpu.threads(),
            crate::native::simd_level()
        );
        let adapter_info = wgpu::AdapterInfo {
            name: name.clone(),
            vendor: 0,
            device: 0,
            device_type: wgpu::DeviceType::Cpu,
            device_pci_bus_id: String::new(),
            driver: "hypermod native".into(),
            driver_info: "gemm 0.19 (runtime SIMD dispatch) + rayon".into(),
            backend: wgpu::Backend::Noop,
            subgroup_min_size: 1,
            subgroup_max_size: 1,
            transient_saves_memory: Some(false),
            limit_bucket: None,
        };
        // Tensors are indexed with u32 element offsets, as on the GPU. The workgroup limits are
        // a desktop GPU's, so that no launcher refuses a WGSL tile choice the native kernels
        // ignore anyway.
        let max_bytes = 4 * u32::MAX as u64;
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: max_bytes,
            max_buffer_size: max_bytes,
            max_compute_workgroup_storage_size: 64 << 10,
            max_compute_invocations_per_workgroup: 1024,
            max_storage_buffers_per_shader_stage: 16,
            ..wgpu::Limits::default()
        };
        Ok(Device {
            pool: BufferPool::default(),
            kernels: KernelCache::default(),
            backend: Backend::Native(cpu),
            selection: name,
            adapter_info,
            limits,
            features: FeatureSet {
                timestamp_query: false,
                subgroup: false,
                shader_f16: false,
            },
            uncaptured: Arc::default(),
            account: Mutex::default(),
            account_open: Default::default(),
        })
    }

    /// True on the native CPU backend.
    pub fn is_native(&self) -> bool {
        matches!(self.backend, Backend::Native(_))
    }

    /// The native backend's worker threads; `None` on a wgpu adapter.
    pub fn native_threads(&self) -> Option<usize> {
        match &self.backend {
            Backend::Native(cpu) => Some(cpu.threads()),
            Backend::Wgpu { .. } => None,
        }
    }

    /// Why this device was chosen (for `hypermod info` and logs).
    pub fn selection(&self) -> &str {
        &self.selection
    }

    pub(crate) fn set_selection(&mut self, why: String) {
        self.selection = why;
    }

    /// The adapter's identity (a synthetic one, of type `Cpu`, on the native backend).
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.adapter_info
    }

    /// The device's limits: what kernels may use ([`requested_limits`]).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Which optional features are on.
    pub fn features(&self) -> FeatureSet {
        self.features
    }

    /// A serialisable summary for `hypermod info` and benchmark records.
    pub fn report(&self) -> AdapterReport {
        let i = &self.adapter_info;
        let l = &self.limits;
        AdapterReport {
            name: i.name.clone(),
            selection: self.selection.clone(),
            backend: if self.is_native() {
                "Native".into()
            } else {
                format!("{:?}", i.backend)
            },
            device_type: format!("{:?}", i.device_type),
            driver: i.driver.clone(),
            driver_info: i.driver_info.clone(),
            subgroup_size: (i.subgroup_min_size, i.subgroup_max_size),
            limits: LimitsReport {
                max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
                max_buffer_size: l.max_buffer_size,
                max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
                max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
                max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
                max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
            },
            features: self.features,
        }
    }

    /// Returns (and clears) wgpu errors raised outside an error scope since the last call.
    pub(crate) fn take_uncaptured(&self, context: &str) -> Result<()> {
        let mut errs = self.uncaptured.lock().expect("error sink poisoned");
        if errs.is_empty() {
            return Ok(());
        }
        let message = errs.join("; ");
        errs.clear();
        Err(DeviceError::Gpu {
            context: context.to_string(),
            message,
        })
    }

    /// Maximum bytes of a single storage binding, the bound every tensor must respect.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }
}
