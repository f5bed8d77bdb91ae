//! The device layer: readback through `Step`, views and broadcasts, the buffer pool, aliasing and
//! limit errors, timing.

mod common;

use hypermod::gpu::{Device, DeviceOptions, Step, TimingMethod};
use hypermod::ops::gemm::{gemm, GemmOptions};

#[test]
fn step_reads_back_only_registered_tensors_in_one_submit() {
    let gpu = gpu_or_skip!();
    let a = gpu.upload(&[1.0, 2.0, 3.0, 4.0], 1, 2, 2).unwrap();
    let b = gpu.upload(&[1.0, 0.0, 0.0, 1.0], 1, 2, 2).unwrap();
    let c = gpu.zeros(1, 2, 2).unwrap();
    let d = gemm(
        gpu,
        &a,
        &b,
        None,
        &c,
        &GemmOptions {
            alpha: 2.0,
            ..Default::default()
        },
    )
    .unwrap();
    let mut step = Step::new(gpu);
    step.run(&d);
    let first = step.read(&c).unwrap();
    let second = step.read(&a.view(1, 1, 1, 2, 2).unwrap()).unwrap();
    let out = step.finish().unwrap();
    assert_eq!(out.get(first), &[2.0, 4.0, 6.0, 8.0]);
    assert_eq!(out.get(second), &[2.0, 3.0]);
    assert_eq!(out.scalar(second), 2.0);
}

#[test]
fn views_broadcasts_and_reshapes_are_checked() {
    let gpu = gpu_or_skip!();
    let t = gpu
        .upload(&(0..12).map(|x| x as f32).collect::<Vec<_>>(), 2, 2, 3)
        .unwrap();
    assert_eq!(
        gpu.read(&t.view(6, 1, 2, 3, 6).unwrap()).unwrap(),
        vec![6.0, 7.0, 8.0, 9.0, 10.0, 11.0]
    );
    let one = t.view(0, 1, 1, 3, 3).unwrap().broadcast(3).unwrap();
    assert_eq!(
        gpu.read(&one).unwrap(),
        vec![0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 0.0, 1.0, 2.0]
    );
    assert!(t.broadcast(2).unwrap_err().to_string().contains("batch-1"));
    let err = t.view(7, 1, 2, 3, 0).unwrap_err().to_string();
    assert!(err.contains("past the buffer's 12 elements"), "{err}");
    assert_eq!(t.reshape(3, 2).unwrap().rows(), 3);
    assert!(t.reshape(4, 2).is_err());
    assert!(gpu
        .upload(&[1.0; 5], 1, 2, 3)
        .unwrap_err()
        .to_string()
        .contains("5 values"));
}

#[test]
fn freed_buffers_are_reused_and_come_back_zeroed() {
    let gpu = gpu_or_skip!();
    let t = gpu.upload(&[7.0; 1021], 1, 1, 1021).unwrap();
    let (live, _) = gpu.memory_in_use();
    drop(t);
    let (after_drop, _) = gpu.memory_in_use();
    assert!(
        after_drop + 1021 * 4 <= live + 1021 * 4 && after_drop < live + 1,
        "live {live} → {after_drop}"
    );
    let again = gpu.zeros(1, 1, 1021).unwrap();
    assert!(gpu.read(&again).unwrap().iter().all(|&x| x == 0.0));
}

#[test]
fn aliasing_a_written_buffer_is_rejected() {
    let gpu = gpu_or_skip!();
    let buf = gpu.zeros(1, 8, 8).unwrap();
    let a = buf.view(0, 1, 2, 2, 4).unwrap();
    let c = buf.view(32, 1, 2, 2, 4).unwrap();
    let err = gemm(gpu, &a, &a, None, &c, &GemmOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("share a buffer that the kernel writes"),
        "{err}"
    );
}

#[test]
fn grid_past_the_workgroup_limit_is_a_clear_error() {
    let gpu = gpu_or_skip!();
    let max = gpu.limits().max_compute_workgroups_per_dimension as usize;
    // One row, max+1 column tiles of 64 (the tile for N > 32): the grid's x dimension exceeds the limit.
    let n = (max + 1) * 64;
    let a = gpu.zeros(1, 1, 1).unwrap();
    let b = gpu.zeros(1, 1, n).unwrap();
    let c = gpu.zeros(1, 1, n).unwrap();
    let err = gemm(gpu, &a, &b, None, &c, &GemmOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("max_compute_workgroups_per_dimension"),
        "{err}"
    );
}

#[test]
fn timing_reports_positive_medians() {
    let gpu = gpu_or_skip!();
    let a = gpu.zeros(2, 16, 16).unwrap();
    let c = gpu.zeros(2, 16, 16).unwrap();
    let d = gemm(gpu, &a, &a, None, &c, &GemmOptions::default()).unwrap();
    let t = gpu.time(&[&d], 1, 5).unwrap();
    assert!(
        t.median_ms > 0.0 && t.min_ms <= t.median_ms && t.iters == 5,
        "{t:?}"
    );
}

#[test]
fn engine_works_without_optional_features_and_times_by_wall_clock() {
    let _ = gpu_or_skip!();
    // A second device with every optional feature off: the path of adapters that lack them.
    let bare = Device::with_options(DeviceOptions {
        timestamp_query: false,
        subgroup: false,
        shader_f16: false,
        adapter_limits: false,
    })
    .unwrap();
    let f = bare.features();
    assert!(!f.timestamp_query && !f.subgroup && !f.shader_f16, "{f:?}");
    let a = bare.upload(&[1.0, 2.0, 3.0, 4.0], 1, 2, 2).unwrap();
    let c = bare.zeros(1, 2, 2).unwrap();
    let d = gemm(&bare, &a, &a, None, &c, &GemmOptions::default()).unwrap();
    let t = bare.time(&[&d], 1, 3).unwrap();
    assert_eq!(t.method, TimingMethod::WallClock);
    assert!(t.median_ms > 0.0);
    assert_eq!(bare.read(&c).unwrap(), vec![7.0, 10.0, 15.0, 22.0]);
}

hypermod::uniform! {
    /// Four words, like no family's `Params`.
    struct NotSoftmaxParams {
        rows: u32,
        cols: u32,
        _pad: [u32; 2],
    }
}

#[test]
fn dispatch_refuses_parameters_of_another_layout() {
    use hypermod::gpu::{Access, Cost, KernelSpec};
    let gpu = gpu_or_skip!();
    let x = gpu.zeros(1, 2, 2).unwrap();
    let y = gpu.zeros(1, 1, 2).unwrap();
    let z = gpu.zeros(1, 1, 2).unwrap();
    let spec = KernelSpec {
        shader: &hypermod::ops::softmax::SHADER,
        entry: "column_stats",
        constants: &[("WG", 64.0)],
        access: &[Access::Read, Access::ReadWrite, Access::ReadWrite],
    };
    let params = NotSoftmaxParams {
        rows: 2,
        cols: 2,
        _pad: [0; 2],
    };
    let err = gpu
        .dispatch(&spec, &params, &[&x, &y, &z], [1, 1, 1], Cost::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`NotSoftmaxParams` are not the shader's `Params` layout"),
        "{err}"
    );
}

/// The device every test runs on asks for no more than a WebGPU device must offer (or, on
/// wgpu's GL backend, than the downlevel defaults), but for the two buffer sizes and the storage
/// buffers the kernels declare they need: every kernel test therefore runs under the limits of
/// the most modest device, and a kernel that needs more fails here.
#[test]
fn the_device_requests_webgpu_default_limits() {
    let gpu = gpu_or_skip!();
    if gpu.is_native() {
        return; // the native backend has no wgpu limits to request
    }
    let mut l = gpu.limits().clone();
    let defaults = wgpu::Limits::default();
    l.max_buffer_size = defaults.max_buffer_size;
    l.max_storage_buffer_binding_size = defaults.max_storage_buffer_binding_size;
    assert_eq!(
        l.max_storage_buffers_per_shader_stage,
        hypermod::gpu::KERNEL_STORAGE_BUFFERS
    );
    l.max_storage_buffers_per_shader_stage = defaults.max_storage_buffers_per_shader_stage;
    assert!(
        l.check_limits(&defaults) || l.check_limits(&wgpu::Limits::downlevel_defaults()),
        "{l:?}"
    );
    assert_eq!(
        gpu.limits().max_compute_workgroup_storage_size,
        defaults.max_compute_workgroup_storage_size,
        "{l:?}"
    );
}

#[test]
fn requested_limits_are_webgpu_defaults_with_the_adapters_buffer_sizes() {
    use hypermod::gpu::requested_limits;
    // A generous adapter: WebGPU's defaults, its buffer sizes.
    let big = wgpu::Limits {
        max_buffer_size: 1 << 40,
        max_storage_buffer_binding_size: 1 << 36,
        ..wgpu::Limits::default()
    }
    .or_better_values_from(&wgpu::Limits {
        max_compute_workgroup_storage_size: 65536,
        max_compute_invocations_per_workgroup: 1024,
        max_storage_buffers_per_shader_stage: 64,
        ..wgpu::Limits::default()
    });
    let got = requested_limits(&big, false);
    assert_eq!(got.max_compute_workgroup_storage_size, 16384);
    assert_eq!(got.max_compute_invocations_per_workgroup, 256);
    // WebGPU's 8, raised to what the kernels declare.
    assert_eq!(
        got.max_storage_buffers_per_shader_stage,
        hypermod::gpu::KERNEL_STORAGE_BUFFERS
    );
    assert_eq!(got.max_buffer_size, 1 << 40);
    assert_eq!(got.max_storage_buffer_binding_size, 1 << 36);
    assert_eq!(requested_limits(&big, true), big, "all: the adapter's own");
    // An adapter short of the defaults (GL): the downlevel defaults, never above the adapter.
    // Six storage buffers per stage (WebGPU's default: 8), and fewer invocations per workgroup
    // than even the downlevel defaults.
    let down = wgpu::Limits::downlevel_defaults();
    let weak = wgpu::Limits {
        max_storage_buffers_per_shader_stage: 6,
        max_compute_invocations_per_workgroup: 128,
        ..wgpu::Limits::default()
    };
    let got = requested_limits(&weak, false);
    assert!(got.check_limits(&weak), "{got:?}");
    assert_eq!(
        got.max_storage_buffers_per_shader_stage, 6,
        "never above the adapter"
    );
    assert_eq!(got.max_compute_invocations_per_workgroup, 128);
    assert_eq!(
        got.max_compute_workgroup_storage_size,
        down.max_compute_workgroup_storage_size
    );
    assert_eq!(got.max_buffer_size, weak.max_buffer_size);
}
