//! Shader modules and pipelines, compiled once and cached by (shader, entry, override constants),
//! and [`Dispatch`]: one prepared kernel launch (pipeline + bind group + parameters).
//!
//! Binding convention shared by every WGSL file: `@binding(0)` is a uniform `Params` struct
//! (shapes, strides, offsets, scalars); `@binding(1..)` are `array<f32>` storage buffers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use crate::gpu::device::Backend;
use crate::gpu::error::{shape_err, DeviceError, Result};
use crate::gpu::{Device, Tensor, Uniform};
use crate::native::{HostBuffer, Launch};

/// A WGSL source file, compiled into one shader module per device.
#[derive(Debug)]
pub struct Shader {
    /// File stem, used as the cache key and in labels.
    pub name: &'static str,
    /// WGSL text (`include_str!` of `shaders/<name>.wgsl`).
    pub source: &'static str,
    /// The same family on the native CPU backend (its `ops/<name>/native.rs`).
    pub native: crate::native::Kernel,
    /// The layout of the family's uniform `Params` (the Rust declaration's; checked against the
    /// WGSL struct by `tests/kernel_layouts.rs`).
    pub params: crate::gpu::UniformLayout,
}

/// How a kernel uses a storage binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `var<storage, read>`
    Read,
    /// `var<storage, read_write>`
    ReadWrite,
}

/// Which compiled variant of a kernel to launch.
#[derive(Clone, Debug)]
pub struct KernelSpec<'a> {
    /// The WGSL file.
    pub shader: &'static Shader,
    /// Entry point name.
    pub entry: &'static str,
    /// Override constants (`override NAME: T = ...;`), exactly those the shader declares.
    pub constants: &'a [(&'static str, f64)],
    /// Access of bindings `1..=n`.
    pub access: &'a [Access],
}

/// Work done by one launch, for GFLOP/s and GB/s in benchmarks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    /// Floating-point operations (a multiply-add counts 2).
    pub flops: f64,
    /// Bytes that must cross the memory bus at least once (reads + writes).
    pub bytes: f64,
}

/// A prepared kernel launch. Record it into a [`crate::gpu::Step`] as many times as needed; the
/// steady-state training loop replays prepared dispatches and allocates nothing.
pub struct Dispatch {
    label: String,
    launch: Prepared,
    workgroups: [u32; 3],
    cost: Cost,
    // The bound tensors: holding them keeps their buffers out of the pool's free lists for as
    // long as the bind group may be replayed (a freed buffer could otherwise be handed to a new
    // tensor while this dispatch still reads or writes it).
    _bound: Vec<Tensor>,
}

/// A launch prepared for one backend.
enum Prepared {
    Wgpu {
        pipeline: Arc<wgpu::ComputePipeline>,
        bind_group: wgpu::BindGroup,
        params: wgpu::Buffer,
    },
    Native(Arc<NativeDispatch>),
}

/// A native launch: the family's kernel, its variant, its parameters and its buffers. Steps
/// queue it and run it at submit, so parameter writes made before the submit apply, as they do
/// to a recorded wgpu dispatch.
pub(crate) struct NativeDispatch {
    label: String,
    kernel: crate::native::Kernel,
    entry: &'static str,
    constants: Vec<(&'static str, f64)>,
    params: Mutex<Vec<u8>>,
    buffers: Vec<(Arc<HostBuffer>, Access)>,
    empty: bool,
}

impl NativeDispatch {
    /// Runs the launch. The caller holds the device's `NativeCpu::exclusive`.
    pub(crate) fn execute(&self) -> Result<()> {
        if self.empty {
            return Ok(());
        }
        let params = self
            .params
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // SAFETY: called under `NativeCpu::exclusive`, and `Device::dispatch` rejected every
        // buffer bound twice where one binding writes it.
        let mut launch = unsafe {
            Launch::new(
                &self.label,
                self.entry,
                &self.constants,
                &params,
                &self.buffers,
            )
        };
        (self.kernel)(&mut launch)
    }
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dispatch({} {:?})", self.label, self.workgroups)
    }
}

impl Dispatch {
    /// Kernel name and variant.
    pub fn label(&self) -> &str {
        &self.label
    }
    /// The workgroup grid.
    pub fn workgroups(&self) -> [u32; 3] {
        self.workgroups
    }
    /// Modelled work of one launch.
    pub fn cost(&self) -> Cost {
        self.cost
    }
    /// Replaces the uniform parameters (e.g. a step counter) before the next submit.
    pub fn set_params<P: bytemuck::Pod>(&self, gpu: &Device, params: &P) {
        self.set_param_bytes(gpu, bytemuck::bytes_of(params));
    }
    /// [`Dispatch::set_params`] from the raw bytes of the parameter struct.
    pub fn set_param_bytes(&self, gpu: &Device, bytes: &[u8]) {
        match (&self.launch, &gpu.backend) {
            (Prepared::Wgpu { params, .. }, Backend::Wgpu { queue, .. }) => {
                queue.write_buffer(params, 0, &padded_bytes(bytes))
            }
            (Prepared::Native(n), _) => {
                *n.params.lock().unwrap_or_else(|p| p.into_inner()) = padded_bytes(bytes)
            }
            (Prepared::Wgpu { .. }, Backend::Native(_)) => {
                log::error!("{}: a wgpu dispatch given the native device", self.label)
            }
        }
    }
    /// Records the launch into an open compute pass (a no-op for a native dispatch).
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        let Prepared::Wgpu {
            pipeline,
            bind_group,
            ..
        } = &self.launch
        else {
            return;
        };
        if self.workgroups.contains(&0) {
            return;
        }
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, bind_group, &[]);
        pass.dispatch_workgroups(self.workgroups[0], self.workgroups[1], self.workgroups[2]);
    }

    /// The native launch, when this dispatch was prepared on the native backend.
    pub(crate) fn native(&self) -> Option<&Arc<NativeDispatch>> {
        match &self.launch {
            Prepared::Native(n) => Some(n),
            Prepared::Wgpu { .. } => None,
        }
    }
}

fn padded_bytes(b: &[u8]) -> Vec<u8> {
    let mut v = b.to_vec();
    v.resize(b.len().div_ceil(16).max(1) * 16, 0);
    v
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct PipelineKey {
    shader: &'static str,
    entry: &'static str,
    constants: Vec<(&'static str, u64)>,
    access: Vec<Access>,
}

struct CachedPipeline {
    pipeline: Arc<wgpu::ComputePipeline>,
    layout: wgpu::BindGroupLayout,
}

/// Compiled shader modules and pipelines of one device.
#[derive(Default)]
pub(crate) struct KernelCache {
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<CachedPipeline>>>,
}

impl KernelCache {
    /// Number of distinct pipelines compiled so far.
    pub(crate) fn len(&self) -> usize {
        self.pipelines.lock().map(|p| p.len()).unwrap_or(0)
    }
}

fn gpu_err(context: String, e: wgpu::Error) -> DeviceError {
    DeviceError::Gpu {
        context,
        message: e.to_string(),
    }
}

impl Device {
    fn pipeline(&self, spec: &KernelSpec<'_>) -> Result<Arc<CachedPipeline>> {
        let key = PipelineKey {
            shader: spec.shader.name,
            entry: spec.entry,
            constants: spec
                .constants
                .iter()
                .map(|(n, v)| (*n, v.to_bits()))
                .collect(),
            access: spec.access.to_vec(),
        };
        if let Some(p) = self
            .kernels
            .pipelines
            .lock()
            .expect("cache poisoned")
            .get(&key)
        {
            return Ok(p.clone());
        }
        let device = self.wgpu_device()?;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = {
            let mut modules = self.kernels.modules.lock().expect("cache poisoned");
            modules
                .entry(spec.shader.name)
                .or_insert_with(|| {
                    device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(spec.shader.name),
                        source: wgpu::ShaderSource::Wgsl(spec.shader.source.into()),
                    })
                })
                .clone()
        };
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        for (i, a) in spec.access.iter().enumerate() {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i as u32 + 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: *a == Access::Read,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let label = format!("{}::{}", spec.shader.name, spec.entry);
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(&label),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(&label),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(spec.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: spec.constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            // A broken module must not stay cached.
            self.kernels
                .modules
                .lock()
                .expect("cache poisoned")
                .remove(spec.shader.name);
            return Err(gpu_err(
                format!("compiling {label} {:?}", spec.constants),
                e,
            ));
        }
        let cached = Arc::new(CachedPipeline {
            pipeline: Arc::new(pipeline),
            layout,
        });
        self.kernels
            .pipelines
            .lock()
            .expect("cache poisoned")
            .insert(key, cached.clone());
        Ok(cached)
    }

    /// Prepares a launch of `spec` with uniform `params` and storage `tensors` (bindings 1..).
    ///
    /// Checks the grid against `max_compute_workgroups_per_dimension` and rejects a buffer bound
    /// twice when one of the bindings writes it (WebGPU forbids that aliasing).
    pub fn dispatch<P: Uniform>(
        &self,
        spec: &KernelSpec<'_>,
        params: &P,
        tensors: &[&Tensor],
        workgroups: [u32; 3],
        cost: Cost,
    ) -> Result<Dispatch> {
        let label = format!("{}::{}", spec.shader.name, spec.entry);
        if P::LAYOUT != spec.shader.params {
            return Err(shape_err(
                "dispatch",
                format!(
                    "{label}: parameters `{}` are not the shader's `{}` layout",
                    P::LAYOUT.name,
                    spec.shader.params.name
                ),
            ));
        }
        if tensors.len() != spec.access.len() {
            return Err(shape_err(
                "dispatch",
                format!(
                    "{label} takes {} buffers, {} given",
                    spec.access.len(),
                    tensors.len()
                ),
            ));
        }
        for (i, a) in tensors.iter().enumerate() {
            for (j, b) in tensors.iter().enumerate().skip(i + 1) {
                let writes =
                    spec.access[i] == Access::ReadWrite || spec.access[j] == Access::ReadWrite;
                if writes && a.same_buffer(b) {
                    return Err(shape_err(
                        "dispatch",
                        format!(
                            "{label}: operands {i} {} and {j} {} share a buffer that the kernel writes",
                            a.shape_str(),
                            b.shape_str()
                        ),
                    ));
                }
            }
        }
        let max = self.limits().max_compute_workgroups_per_dimension;
        if let Some(&w) = workgroups.iter().find(|&&w| w > max) {
            return Err(DeviceError::Limit {
                what: format!("{label} grid {workgroups:?}"),
                requested: format!("{w} workgroups in one dimension"),
                limit_name: "max_compute_workgroups_per_dimension",
                limit: max.to_string(),
            });
        }
        let bound: Vec<Tensor> = tensors.iter().map(|&t| t.clone()).collect();
        if let Backend::Native(_) = &self.backend {
            let buffers = tensors
                .iter()
                .zip(spec.access)
                .map(|(t, a)| match t.storage().host() {
                    Some(b) => Ok((b.clone(), *a)),
                    None => Err(crate::gpu::tensor::foreign_tensor("dispatch", t)),
                })
                .collect::<Result<Vec<_>>>()?;
            let native = NativeDispatch {
                label: label.clone(),
                kernel: spec.shader.native,
                entry: spec.entry,
                constants: spec.constants.to_vec(),
                params: Mutex::new(padded_bytes(bytemuck::bytes_of(params))),
                buffers,
                empty: workgroups.contains(&0),
            };
            return Ok(Dispatch {
                label,
                launch: Prepared::Native(Arc::new(native)),
                workgroups,
                cost,
                _bound: bound,
            });
        }
        let cached = self.pipeline(spec)?;
        let device = self.wgpu_device()?;
        let params_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(&label),
            contents: &padded_bytes(bytemuck::bytes_of(params)),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: params_buf.as_entire_binding(),
        }];
        for (i, t) in tensors.iter().enumerate() {
            let buffer = t
                .storage()
                .wgpu()
                .ok_or_else(|| crate::gpu::tensor::foreign_tensor("dispatch", t))?;
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: buffer.as_entire_binding(),
            });
        }
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&label),
            layout: &cached.layout,
            entries: &entries,
        });
        Ok(Dispatch {
            label,
            launch: Prepared::Wgpu {
                pipeline: cached.pipeline.clone(),
                bind_group,
                params: params_buf,
            },
            workgroups,
            cost,
            _bound: bound,
        })
    }

    /// Number of distinct compiled pipelines (for diagnostics).
    pub fn pipeline_count(&self) -> usize {
        self.kernels.len()
    }
}

/// Splits `groups` workgroups over x and y so that neither exceeds 65535 (the portable limit);
/// kernels recover the linear index as `wid.x + wid.y * nwg.x`.
pub fn grid_1d(groups: usize) -> [u32; 3] {
    const MAX: usize = 65535;
    if groups <= MAX {
        [groups as u32, 1, 1]
    } else {
        [MAX as u32, groups.div_ceil(MAX) as u32, 1]
    }
}
