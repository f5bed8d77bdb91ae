//! Buffer pool: every tensor buffer is created here and returned here when its last view drops,
//! so a training loop that frees and re-allocates same-sized tensors never asks the driver again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::gpu::device::Backend;
use crate::native::HostBuffer;

/// Usage of every tensor buffer: bindable as storage, copyable both ways (upload, readback).
pub(crate) const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// The memory of one tensor buffer: on the GPU, or host memory of the native backend.
pub(crate) enum Storage {
    Wgpu(wgpu::Buffer),
    Host(Arc<HostBuffer>),
}

impl Storage {
    /// The wgpu buffer; `None` on the native backend.
    pub(crate) fn wgpu(&self) -> Option<&wgpu::Buffer> {
        match self {
            Storage::Wgpu(b) => Some(b),
            Storage::Host(_) => None,
        }
    }

    /// The host buffer; `None` on a wgpu device.
    pub(crate) fn host(&self) -> Option<&Arc<HostBuffer>> {
        match self {
            Storage::Host(b) => Some(b),
            Storage::Wgpu(_) => None,
        }
    }
}

#[derive(Default)]
struct FreeLists {
    by_size: HashMap<u64, Vec<Storage>>,
    staging: Vec<wgpu::Buffer>,
}

/// The arena behind all [`crate::gpu::Tensor`]s of one device.
#[derive(Default)]
pub(crate) struct BufferPool {
    free: Arc<Mutex<FreeLists>>,
    live_bytes: Arc<AtomicU64>,
    peak_bytes: AtomicU64,
}

/// A storage buffer that goes back to its pool's free list when dropped.
pub(crate) struct PooledBuffer {
    buffer: Option<Storage>,
    size: u64,
    free: Arc<Mutex<FreeLists>>,
    live_bytes: Arc<AtomicU64>,
}

impl PooledBuffer {
    pub(crate) fn storage(&self) -> &Storage {
        self.buffer.as_ref().expect("buffer present until drop")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            self.live_bytes.fetch_sub(self.size, Ordering::Relaxed);
            if let Ok(mut f) = self.free.lock() {
                f.by_size.entry(self.size).or_default().push(b);
            }
        }
    }
}

impl BufferPool {
    /// Returns a buffer of exactly `size` bytes (a multiple of 4), reusing a freed one when possible.
    /// Contents are unspecified; callers clear or overwrite it.
    pub(crate) fn take(&self, backend: &Backend, size: u64) -> PooledBuffer {
        let reused = self
            .free
            .lock()
            .ok()
            .and_then(|mut f| f.by_size.get_mut(&size).and_then(Vec::pop));
        let buffer = reused.unwrap_or_else(|| match backend {
            Backend::Wgpu { device, .. } => {
                Storage::Wgpu(device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("hypermod tensor"),
                    size,
                    usage: TENSOR_USAGE,
                    mapped_at_creation: false,
                }))
            }
            Backend::Native(_) => Storage::Host(Arc::new(HostBuffer::zeroed((size / 4) as usize))),
        });
        let live = self.live_bytes.fetch_add(size, Ordering::Relaxed) + size;
        self.peak_bytes.fetch_max(live, Ordering::Relaxed);
        PooledBuffer {
            buffer: Some(buffer),
            size,
            free: self.free.clone(),
            live_bytes: self.live_bytes.clone(),
        }
    }

    /// A `MAP_READ` staging buffer of at least `size` bytes, reused across steps.
    pub(crate) fn take_staging(&self, device: &wgpu::Device, size: u64) -> wgpu::Buffer {
        let mut f = self.free.lock().expect("pool poisoned");
        if let Some(i) = f.staging.iter().position(|b| b.size() >= size) {
            return f.staging.swap_remove(i);
        }
        drop(f);
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("hypermod readback"),
            size: size.next_power_of_two().max(256),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Gives an unmapped staging buffer back.
    pub(crate) fn return_staging(&self, buffer: wgpu::Buffer) {
        if let Ok(mut f) = self.free.lock() {
            f.staging.push(buffer);
        }
    }

    /// Bytes currently held by live tensors.
    pub(crate) fn live_bytes(&self) -> u64 {
        self.live_bytes.load(Ordering::Relaxed)
    }

    /// Highest `live_bytes` seen.
    pub(crate) fn peak_bytes(&self) -> u64 {
        self.peak_bytes.load(Ordering::Relaxed)
    }
}
