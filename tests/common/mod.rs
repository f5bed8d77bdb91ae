//! Shared test helpers: the one way tests obtain the GPU, seeded random data, and comparisons.
#![allow(dead_code)]

pub mod sweep_tables;

use std::io::Write;
use std::sync::OnceLock;

use hypermod::gpu::{Device, DeviceChoice, DeviceOptions, Tensor, DEVICE_ENV};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

static GPU: OnceLock<Option<Device>> = OnceLock::new();
static NATIVE: OnceLock<Device> = OnceLock::new();

/// The device the tests run on: `$HYPERMOD_DEVICE` when set (`.ci/run` runs the suite once on
/// lavapipe and once with `cpu`, the native backend), else `wgpu` — the WGSL kernels on the best
/// adapter (lavapipe in CI), so that a plain `cargo test` checks the kernels and a missing
/// adapter is noticed.
pub fn device_name() -> String {
    match std::env::var(DEVICE_ENV) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => "wgpu".into(),
    }
}

/// The `hypermod` binary, told to use the tests' device.
pub fn hypermod_bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_hypermod"));
    c.env(DEVICE_ENV, device_name());
    c
}

/// The native CPU backend, whatever the tests' device (for native-vs-WGSL comparisons).
pub fn native() -> &'static Device {
    NATIVE.get_or_init(|| Device::native(None).expect("the native backend always opens"))
}

/// The device every test uses (see [`device_name`]; honours `WGPU_BACKEND` and
/// `HYPERMOD_ADAPTER`).
///
/// With `CI=true` a missing adapter fails the test; elsewhere the test is skipped loudly.
pub fn gpu() -> Option<&'static Device> {
    let open = || -> Result<Device, hypermod::gpu::DeviceError> {
        let choice: DeviceChoice = device_name().parse()?;
        Device::open(choice, DeviceOptions::default())
    };
    GPU.get_or_init(|| match open() {
        Ok(g) => {
            let i = g.adapter_info();
            // Written to the stderr handle, not with eprintln!: libtest captures the print macros,
            // and CI logs must show which adapter the GPU tests really ran on.
            let _ = writeln!(
                std::io::stderr(),
                "[hypermod tests] adapter: {} ({:?}, {:?})",
                i.name,
                i.backend,
                i.device_type
            );
            Some(g)
        }
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("CI=true but no GPU adapter is available: {e}");
            }
            let _ = writeln!(
                std::io::stderr(),
                "\n!!!!!!!! [hypermod tests] NO GPU ADAPTER: GPU TESTS SKIPPED !!!!!!!!\n{e}\n"
            );
            None
        }
    })
    .as_ref()
}

/// Obtains the GPU or returns from the test (skip) when there is none outside CI.
#[macro_export]
macro_rules! gpu_or_skip {
    () => {
        match common::gpu() {
            Some(g) => g,
            None => return,
        }
    };
}

/// A seeded portable generator.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `n` values uniform in [-1, 1).
pub fn uniform(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// A size in `lo..=hi`.
pub fn size(rng: &mut ChaCha8Rng, lo: usize, hi: usize) -> usize {
    rng.random_range(lo..=hi)
}

/// Asserts |got − want| ≤ tol[i] element-wise, with a message naming the first mismatch.
pub fn assert_close(got: &[f32], want: &[f64], tol: impl Fn(usize) -> f64, ctx: &str) {
    assert_eq!(got.len(), want.len(), "{ctx}: length");
    let mut worst = (0.0f64, 0usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        let ok = err <= tol(i) || (g.is_nan() && w.is_nan());
        assert!(
            ok,
            "{ctx}: element {i}: got {g}, want {w} (|err| {err:.3e} > tol {:.3e})",
            tol(i)
        );
        if err > worst.0 {
            worst = (err, i);
        }
    }
}

/// Repeats one item `batch` times (the host view of a stride-0 broadcast).
pub fn repeat(item: &[f32], batch: usize) -> Vec<f32> {
    item.iter()
        .copied()
        .cycle()
        .take(item.len() * batch)
        .collect()
}

/// f32 → f64.
pub fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Random logical data for `batch` items of `len` values, uniform in [-1, 1); a `shared`
/// operand is one item repeated `batch` times (drawing only `len` values), the host view of a
/// stride-0 broadcast that [`put`] uploads.
pub fn data(rng: &mut ChaCha8Rng, batch: usize, len: usize, shared: bool) -> Vec<f32> {
    if shared {
        repeat(&uniform(rng, len), batch)
    } else {
        uniform(rng, batch * len)
    }
}

/// Uploads logical host data (`batch` items of `rows × cols`, item-major) as a packed tensor;
/// `shared` uploads only the first item and broadcasts it to `batch` items (stride 0).
pub fn put(
    gpu: &Device,
    host: &[f32],
    batch: usize,
    rows: usize,
    cols: usize,
    shared: bool,
) -> Tensor {
    if shared {
        gpu.upload(&host[..rows * cols], 1, rows, cols)
            .unwrap()
            .broadcast(batch)
            .unwrap()
    } else {
        gpu.upload(host, batch, rows, cols).unwrap()
    }
}

/// `host` as a broadcast of its first item when `shared` ([`put`]), else as a NaN-padded view at
/// a random offset (0..=5) with a random gap (0..=3) between items ([`padded_at`]).
pub fn put_random_padded(
    gpu: &Device,
    rng: &mut ChaCha8Rng,
    host: &[f32],
    (batch, rows, cols): (usize, usize, usize),
    shared: bool,
) -> Tensor {
    if shared {
        return put(gpu, host, batch, rows, cols, true);
    }
    let off = size(rng, 0, 5);
    let gap = size(rng, 0, 3);
    padded_at(gpu, host, batch, rows, cols, off, gap)
}

/// Element offset of the first item of a [`padded`] tensor in its buffer.
pub const PAD_OFFSET: usize = 3;
/// NaN elements between consecutive items of a [`padded`] tensor (its stride is item + gap).
pub const PAD_GAP: usize = 5;

/// The host image of a [`padded_at`] buffer: `offset` NaNs, then each item of `host` followed by
/// `gap` NaNs, then one more stride (item + gap) of NaNs after the last item. Its length is
/// `offset + (batch + 1) · (rows·cols + gap)`.
pub fn padded_buffer(
    host: &[f32],
    batch: usize,
    rows: usize,
    cols: usize,
    offset: usize,
    gap: usize,
) -> Vec<f32> {
    let len = rows * cols;
    assert_eq!(host.len(), batch * len, "padded_buffer: host length");
    let stride = len + gap;
    let mut raw = vec![f32::NAN; offset + (batch + 1) * stride];
    for b in 0..batch {
        let at = offset + b * stride;
        raw[at..at + len].copy_from_slice(&host[b * len..(b + 1) * len]);
    }
    raw
}

/// `host` (`batch` items of `rows × cols`) as a strided view into a bigger NaN-filled buffer:
/// first item at `offset`, `gap` NaN elements between items, a stride's worth of NaN after the
/// last (see [`padded_buffer`]). The whole buffer is `t.view(0, 1, 1, n, n)` with `n` the
/// buffer length.
pub fn padded_at(
    gpu: &Device,
    host: &[f32],
    batch: usize,
    rows: usize,
    cols: usize,
    offset: usize,
    gap: usize,
) -> Tensor {
    let raw = padded_buffer(host, batch, rows, cols, offset, gap);
    let n = raw.len();
    gpu.upload(&raw, 1, 1, n)
        .unwrap()
        .view(offset, batch, rows, cols, rows * cols + gap)
        .unwrap()
}

/// `host` as a NaN-padded strided view: items at [`PAD_OFFSET`], [`PAD_GAP`] NaN elements
/// between items and a NaN stride after the last, NaN everywhere outside the items. A kernel
/// that ignores the tensor's offset or stride reads NaN (inputs) or lands its writes in the
/// padding (outputs, caught by [`assert_gaps_untouched`]), as does one writing past the end.
pub fn padded(gpu: &Device, host: &[f32], batch: usize, rows: usize, cols: usize) -> Tensor {
    padded_at(gpu, host, batch, rows, cols, PAD_OFFSET, PAD_GAP)
}

/// Asserts that the elements of `t`'s buffer outside its items (before the offset, in the gaps
/// between items, after the last) still hold the NaN they were created with: a kernel writing
/// past an edge is caught even where the logical read-back would not show it.
pub fn assert_gaps_untouched(gpu: &Device, t: &Tensor, ctx: &str) {
    let whole = t.view(0, 1, 1, t.capacity(), t.capacity()).unwrap();
    for (k, v) in gpu.read(&whole).unwrap().iter().enumerate() {
        let inside = k >= t.offset() && {
            let r = k - t.offset();
            r / t.batch_stride() < t.batch() && r % t.batch_stride() < t.item_len()
        };
        assert!(
            inside || v.is_nan(),
            "{ctx}: element {k} outside the output was overwritten with {v}"
        );
    }
}

/// Central differences of `f` at `p` with step `h` (f64 gradient checks).
pub fn fd(h: f64, p: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut q = p.to_vec();
    (0..p.len())
        .map(|i| {
            q[i] = p[i] + h;
            let up = f(&q);
            q[i] = p[i] - h;
            let down = f(&q);
            q[i] = p[i];
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// Asserts an analytic f64 gradient matches its finite differences to 1e-6 relative.
pub fn assert_fd(what: &str, analytic: &[f64], numeric: &[f64]) {
    assert_eq!(analytic.len(), numeric.len(), "{what}: lengths");
    for (i, (a, n)) in analytic.iter().zip(numeric).enumerate() {
        assert!(
            (a - n).abs() <= 1e-6 * (1.0 + a.abs()),
            "{what}[{i}]: analytic {a} vs finite difference {n}"
        );
    }
}

/// A run directory's `metrics.jsonl` records without their wall-clock `seconds`.
pub fn metrics_without_times(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

/// What a sweep prints when it trains several runs of one batch key on the tests' device: one
/// batch on a wgpu adapter; on the native backend, one run per core at a time
/// (`hypermod::experiments::run_workers`).
pub fn batch_line() -> &'static str {
    if gpu().is_some_and(|g| g.is_native()) {
        "at a time (one per core of the native backend)"
    } else {
        "as one batch"
    }
}
