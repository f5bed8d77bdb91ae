//! The native CPU backend: every kernel family executed by Rust on host memory, with the same
//! semantics as its WGSL kernel (the CPU twin in `ops/` is the specification of both).
//!
//! A native launch sees exactly what a WGSL launch sees: the entry point, the override constants
//! and the bytes of the uniform `Params` struct, and the storage bindings `1..` as f32 slices. So
//! every launcher in `ops/` and every layer, model and trainer above it runs unchanged on either
//! backend; a [`crate::gpu::Dispatch`] just carries a native kernel function instead of a wgpu
//! pipeline.
//!
//! Determinism: work is partitioned by the shape of the launch (items, rows, output elements),
//! never by the number of threads, and every reduction runs in a fixed serial order inside one
//! partition. So the same launch gives the same bits with 1 thread or 16 (tested).
//!
//! No `f32::mul_add` in kernel loops: in a portable build (no `-C target-cpu`) it is a libm call
//! per element. Products and sums stay unfused, as in the CPU twins; the GEMM reaches FMA and
//! AVX-512 through the `gemm` crate's run-time dispatch.

use std::cell::UnsafeCell;
use std::sync::Mutex;

use crate::gpu::error::{DeviceError, Result};
use crate::gpu::Access;

/// A native kernel family: runs one launch of one of its entry points.
pub type Kernel = fn(&mut Launch<'_>) -> Result<()>;

/// Environment variable: threads of the native backend (default: all cores).
pub const THREADS_ENV: &str = "HYPERMOD_THREADS";

/// Host memory of one tensor buffer.
///
/// Access goes through [`NativeCpu::exclusive`]: launches, uploads and readbacks of one device
/// are serialised like submissions to one GPU queue, and within a launch the device layer has
/// already rejected a buffer bound twice when either binding writes it. Under those two rules no
/// element is written while anything else reads or writes it.
pub(crate) struct HostBuffer {
    data: UnsafeCell<Box<[f32]>>,
}

// SAFETY: all access is serialised by `NativeCpu::exclusive` (see the type's docs).
unsafe impl Sync for HostBuffer {}
// SAFETY: the buffer owns plain f32 data.
unsafe impl Send for HostBuffer {}

impl HostBuffer {
    pub(crate) fn zeroed(len: usize) -> HostBuffer {
        HostBuffer {
            data: UnsafeCell::new(vec![0.0; len].into_boxed_slice()),
        }
    }

    /// # Safety
    /// The caller holds [`NativeCpu::exclusive`] and no `&mut` to this buffer is live.
    pub(crate) unsafe fn slice(&self) -> &[f32] {
        &*self.data.get()
    }

    /// # Safety
    /// The caller holds [`NativeCpu::exclusive`] and no other reference to this buffer is live.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice_mut(&self) -> &mut [f32] {
        &mut *self.data.get()
    }
}

/// The native device: a fixed-size thread pool and the lock that serialises its work.
pub(crate) struct NativeCpu {
    pool: rayon::ThreadPool,
    threads: usize,
    queue: Mutex<()>,
}

impl NativeCpu {
    /// A native device with `threads` workers (`None`: `$HYPERMOD_THREADS`, else all cores).
    pub(crate) fn new(threads: Option<usize>) -> Result<NativeCpu> {
        let threads = match threads {
            Some(t) => t,
            None => threads_from_env()?,
        }
        .max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("hypermod-cpu-{i}"))
            .build()
            .map_err(|e| DeviceError::Gpu {
                context: "starting the native CPU backend's threads".into(),
                message: e.to_string(),
            })?;
        Ok(NativeCpu {
            pool,
            threads,
            queue: Mutex::new(()),
        })
    }

    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` with exclusive access to every host buffer of this device, inside its pool.
    pub(crate) fn exclusive<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let _guard = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        self.pool.install(f)
    }
}

fn threads_from_env() -> Result<usize> {
    match std::env::var(THREADS_ENV) {
        Err(_) => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&t| t > 0)
            .ok_or_else(|| DeviceError::InvalidArgument {
                op: "native backend",
                detail: format!("{THREADS_ENV}={v:?} is not a positive thread count"),
            }),
    }
}

/// Which SIMD level the GEMM reaches on this CPU, detected at run time.
pub(crate) fn simd_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "AVX-512";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "AVX2+FMA";
        }
        "SSE2"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "NEON"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "scalar"
    }
}

/// One storage binding as a kernel sees it.
enum Slot<'a> {
    Read(&'a [f32]),
    Write(Option<&'a mut [f32]>),
}

/// Everything one native launch sees: entry point, override constants, uniform parameters and
/// storage bindings (numbered from 1, as in WGSL).
pub struct Launch<'a> {
    label: &'a str,
    /// The entry point.
    pub entry: &'static str,
    constants: &'a [(&'static str, f64)],
    params: &'a [u8],
    slots: Vec<Slot<'a>>,
}

impl<'a> Launch<'a> {
    /// Builds a launch. `buffers[i]` is binding `i + 1`; the caller guarantees the exclusivity
    /// rules of [`HostBuffer`].
    ///
    /// # Safety
    /// Must be called inside [`NativeCpu::exclusive`], with no buffer written by one binding and
    /// bound by another.
    pub(crate) unsafe fn new(
        label: &'a str,
        entry: &'static str,
        constants: &'a [(&'static str, f64)],
        params: &'a [u8],
        buffers: &'a [(std::sync::Arc<HostBuffer>, Access)],
    ) -> Launch<'a> {
        let slots = buffers
            .iter()
            .map(|(b, a)| match a {
                Access::Read => Slot::Read(b.slice()),
                Access::ReadWrite => Slot::Write(Some(b.slice_mut())),
            })
            .collect();
        Launch {
            label,
            entry,
            constants,
            params,
            slots,
        }
    }

    /// The uniform parameters, decoded as the family's `Params` struct.
    pub fn params<P: bytemuck::Pod>(&self) -> Result<P> {
        let n = std::mem::size_of::<P>();
        if self.params.len() < n {
            return Err(self.err(format!(
                "{} parameter bytes, the kernel's Params needs {n}",
                self.params.len()
            )));
        }
        Ok(bytemuck::pod_read_unaligned(&self.params[..n]))
    }

    /// An override constant, or the shader's default when the launcher did not set it.
    pub fn constant(&self, name: &str, default: f64) -> f64 {
        self.constants
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(default, |(_, v)| *v)
    }

    /// A boolean override constant.
    pub fn flag(&self, name: &str) -> bool {
        self.constant(name, 0.0) != 0.0
    }

    /// Read-only binding `binding` (numbered from 1). A read-write binding is only reachable
    /// through [`Launch::write`] (its `&mut` reads too).
    pub fn read(&self, binding: usize) -> Result<&'a [f32]> {
        match self.slots.get(binding.wrapping_sub(1)) {
            Some(Slot::Read(s)) => Ok(s),
            _ => Err(self.err(format!("binding {binding} is not a read binding"))),
        }
    }

    /// Read-write binding `binding`, taken once per launch.
    pub fn write(&mut self, binding: usize) -> Result<&'a mut [f32]> {
        let label = self.label;
        match self.slots.get_mut(binding.wrapping_sub(1)) {
            Some(Slot::Write(s)) => s.take().ok_or_else(|| DeviceError::Gpu {
                context: format!("native {label}"),
                message: format!("binding {binding} taken twice"),
            }),
            _ => Err(self.err(format!("binding {binding} is not a read-write binding"))),
        }
    }

    /// An error naming this launch.
    pub fn err(&self, message: String) -> DeviceError {
        DeviceError::Gpu {
            context: format!("native {}", self.label),
            message,
        }
    }

    /// The error for an entry point this family does not have.
    pub fn unknown_entry(&self) -> DeviceError {
        self.err(format!("no native entry point '{}'", self.entry))
    }
}

/// Splits `buf` into `batch` disjoint mutable item slices of `len` elements, item `b` starting
/// at `off + b·stride` (a batch-1 output may have any stride). Bounds and overlap are checked.
pub fn items_mut(
    buf: &mut [f32],
    off: usize,
    stride: usize,
    len: usize,
    batch: usize,
) -> Result<Vec<&mut [f32]>> {
    let bad = |m: String| DeviceError::Gpu {
        context: "native output".into(),
        message: m,
    };
    if batch == 0 || len == 0 {
        return Ok(Vec::new());
    }
    if batch > 1 && stride < len {
        return Err(bad(format!(
            "items of {len} elements at stride {stride} overlap"
        )));
    }
    let end = off + (batch - 1) * stride + len;
    if end > buf.len() {
        return Err(bad(format!(
            "items end at element {end}, past the buffer's {}",
            buf.len()
        )));
    }
    let mut out = Vec::with_capacity(batch);
    let mut rest = &mut buf[off..end];
    for b in 0..batch {
        let (item, tail) = rest.split_at_mut(len);
        out.push(item);
        if b + 1 < batch {
            rest = &mut tail[stride - len..];
        } else {
            rest = tail;
        }
    }
    let _ = rest;
    Ok(out)
}

/// The `len` elements of each of `batch` input items (offset `off`, batch stride `stride`;
/// 0 = one item shared by the batch), bounds-checked: the read-side twin of [`items_mut`].
pub fn items(
    buf: &[f32],
    off: usize,
    stride: usize,
    len: usize,
    batch: usize,
) -> Result<Vec<&[f32]>> {
    (0..batch).map(|b| item(buf, off, stride, b, len)).collect()
}

/// The `len` elements of input item `b` (offset `off`, batch stride `stride`; 0 = shared), with
/// a bounds check instead of a panic.
pub fn item(buf: &[f32], off: usize, stride: usize, b: usize, len: usize) -> Result<&[f32]> {
    let start = off + b * stride;
    buf.get(start..start + len).ok_or_else(|| DeviceError::Gpu {
        context: "native input".into(),
        message: format!(
            "item {b} [{start}..{}] is past the buffer's {} elements",
            start + len,
            buf.len()
        ),
    })
}

/// The `batch·rows` rows of `cols` elements of a strided batch, row `b·rows + r` at
/// `off + b·stride + r·cols`. Zero-width rows are empty slices, one per row, as the kernel
/// still visits them (and writes their statistics).
pub(crate) fn rows_mut(
    buf: &mut [f32],
    off: usize,
    stride: usize,
    (batch, rows, cols): (usize, usize, usize),
) -> Result<Vec<&mut [f32]>> {
    if cols == 0 {
        return Ok((0..batch * rows).map(|_| <&mut [f32]>::default()).collect());
    }
    let items = items_mut(buf, off, stride, rows * cols, batch)?;
    Ok(items
        .into_iter()
        .flat_map(|it| it.chunks_mut(cols))
        .collect())
}

/// Read-only counterpart of [`rows_mut`] (stride 0 = every item shares one).
pub(crate) fn rows(
    buf: &[f32],
    off: usize,
    stride: usize,
    (batch, rows, cols): (usize, usize, usize),
) -> Result<Vec<&[f32]>> {
    if cols == 0 {
        return Ok(vec![&[][..]; batch * rows]);
    }
    let mut out = Vec::with_capacity(batch * rows);
    for b in 0..batch {
        let it = item(buf, off, stride, b, rows * cols)?;
        out.extend((0..rows).map(|r| &it[r * cols..(r + 1) * cols]));
    }
    Ok(out)
}

/// Per-item γ (or β) slices when `present`, else `None` for every item.
pub(crate) fn per_item(
    buf: &[f32],
    present: bool,
    off: u32,
    stride: u32,
    batch: usize,
    cols: usize,
) -> Result<Vec<Option<&[f32]>>> {
    (0..batch)
        .map(|b| {
            present
                .then(|| item(buf, off as usize, stride as usize, b, cols))
                .transpose()
        })
        .collect()
}

/// The shaders' workgroup tree over `acc`, seen as lanes of `width` values: lane `i` += lane
/// `i + s` for `s = lanes/2, lanes/4, …, 1`. The sums end in the first lane. A power-of-two lane
/// count adds every lane (the shaders only use those).
pub(crate) fn tree(acc: &mut [f32], width: usize) {
    let mut s = acc.len() / width.max(1) / 2;
    while s > 0 {
        let (lo, hi) = acc.split_at_mut(s * width);
        lo.iter_mut()
            .zip(&hi[..s * width])
            .for_each(|(a, &b)| *a += b);
        s /= 2;
    }
}
