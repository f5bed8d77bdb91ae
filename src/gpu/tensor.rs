//! `Tensor`: an f32 storage buffer viewed as a batch of row-major matrices.
//!
//! Every tensor has a leading batch axis. Item `b` starts at element `offset + b * batch_stride`;
//! a stride of 0 shares one item across the whole batch (a meta-parameter seen by every task).

use std::fmt;
use std::sync::Arc;

use crate::gpu::device::Backend;
use crate::gpu::error::{shape_err, DeviceError, Result};
use crate::gpu::pool::{PooledBuffer, Storage};
use crate::gpu::Device;

/// A view of `batch` row-major `rows × cols` f32 matrices in one GPU buffer.
#[derive(Clone)]
pub struct Tensor {
    buf: Arc<PooledBuffer>,
    capacity: usize,
    offset: usize,
    batch: usize,
    rows: usize,
    cols: usize,
    batch_stride: usize,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor{}", self.shape_str())
    }
}

impl Tensor {
    /// Number of batch items.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Rows of each item.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Columns of each item (the contiguous axis).
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Elements between consecutive batch items (0 = broadcast).
    pub fn batch_stride(&self) -> usize {
        self.batch_stride
    }
    /// Element offset of item 0 in the buffer.
    pub fn offset(&self) -> usize {
        self.offset
    }
    /// Elements per item.
    pub fn item_len(&self) -> usize {
        self.rows * self.cols
    }
    /// Logical element count (`batch · rows · cols`).
    pub fn len(&self) -> usize {
        self.batch * self.item_len()
    }
    /// True when the view holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// True when items are packed back to back (or there is a single item).
    pub fn is_contiguous(&self) -> bool {
        self.batch <= 1 || self.batch_stride == self.item_len()
    }
    /// The underlying buffer (wgpu or host memory).
    pub(crate) fn storage(&self) -> &Storage {
        self.buf.storage()
    }
    /// Elements the underlying buffer holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    /// `[batch × rows × cols] stride s @offset` for error messages.
    pub fn shape_str(&self) -> String {
        format!(
            "[{}×{}×{}] stride {} @{}",
            self.batch, self.rows, self.cols, self.batch_stride, self.offset
        )
    }
    /// True when both views share a buffer.
    pub fn same_buffer(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.buf, &other.buf)
    }

    /// A new view into the same buffer, bounds-checked against its capacity.
    pub fn view(
        &self,
        offset: usize,
        batch: usize,
        rows: usize,
        cols: usize,
        batch_stride: usize,
    ) -> Result<Tensor> {
        let end = if batch == 0 || rows * cols == 0 {
            offset
        } else {
            offset + (batch - 1) * batch_stride + rows * cols
        };
        if end > self.capacity {
            return Err(shape_err(
                "view",
                format!(
                    "view [{batch}×{rows}×{cols}] stride {batch_stride} @{offset} ends at element {end}, \
                     past the buffer's {} elements",
                    self.capacity
                ),
            ));
        }
        Ok(Tensor {
            buf: self.buf.clone(),
            capacity: self.capacity,
            offset,
            batch,
            rows,
            cols,
            batch_stride,
        })
    }

    /// Item `k` of the batch axis alone (a one-item view into the same buffer).
    pub fn item(&self, k: usize) -> Result<Tensor> {
        if k >= self.batch {
            return Err(shape_err(
                "item",
                format!("item {k} of a batch of {}", self.batch),
            ));
        }
        self.view(
            self.offset + k * self.batch_stride,
            1,
            self.rows,
            self.cols,
            self.batch_stride,
        )
    }

    /// The same single item seen `batch` times (stride 0). Requires a one-item tensor.
    pub fn broadcast(&self, batch: usize) -> Result<Tensor> {
        if self.batch != 1 {
            return Err(shape_err(
                "broadcast",
                format!(
                    "only a batch-1 tensor can be broadcast, got {}",
                    self.shape_str()
                ),
            ));
        }
        self.view(self.offset, batch, self.rows, self.cols, 0)
    }

    /// Same elements, items reshaped to `rows × cols` (item length must match).
    pub fn reshape(&self, rows: usize, cols: usize) -> Result<Tensor> {
        if rows * cols != self.item_len() {
            return Err(shape_err(
                "reshape",
                format!("cannot reshape {} items to {rows}×{cols}", self.shape_str()),
            ));
        }
        let stride = if self.batch_stride == self.item_len() {
            rows * cols
        } else {
            self.batch_stride
        };
        self.view(self.offset, self.batch, rows, cols, stride)
    }

    /// The whole contiguous tensor seen as one item of `1 × len` (for element-wise ops).
    pub fn flat(&self) -> Result<Tensor> {
        if !self.is_contiguous() {
            return Err(shape_err(
                "flat",
                format!("{} is not contiguous", self.shape_str()),
            ));
        }
        self.view(self.offset, 1, 1, self.len(), self.len())
    }
}

fn check_elems(gpu: &Device, what: &str, elems: usize) -> Result<u64> {
    let bytes = (elems.max(1) as u64) * 4;
    let limit = gpu.limits().max_storage_buffer_binding_size;
    if bytes > limit {
        return Err(DeviceError::Limit {
            what: what.to_string(),
            requested: format!("{bytes} bytes ({elems} f32)"),
            limit_name: "max_storage_buffer_binding_size",
            limit: format!("{limit} bytes"),
        });
    }
    let limit = gpu.limits().max_buffer_size;
    if bytes > limit {
        return Err(DeviceError::Limit {
            what: what.to_string(),
            requested: format!("{bytes} bytes ({elems} f32)"),
            limit_name: "max_buffer_size",
            limit: format!("{limit} bytes"),
        });
    }
    Ok(bytes)
}

impl Device {
    /// Allocates a zero-filled contiguous tensor of `batch × rows × cols` from the pool.
    pub fn zeros(&self, batch: usize, rows: usize, cols: usize) -> Result<Tensor> {
        let elems = batch
            .checked_mul(rows)
            .and_then(|x| x.checked_mul(cols))
            .ok_or_else(|| shape_err("zeros", format!("{batch}×{rows}×{cols} overflows")))?;
        let bytes = check_elems(self, &format!("tensor [{batch}×{rows}×{cols}]"), elems)?;
        let buf = self.pool.take(&self.backend, bytes);
        // Pooled buffers keep old contents: clear so every new tensor starts at zero.
        match (&self.backend, buf.storage()) {
            (Backend::Wgpu { device, queue }, Storage::Wgpu(b)) => {
                let mut enc = device.create_command_encoder(&Default::default());
                enc.clear_buffer(b, 0, None);
                queue.submit([enc.finish()]);
            }
            (Backend::Native(cpu), Storage::Host(b)) => cpu.exclusive(|| {
                // SAFETY: exclusive access; the buffer was just taken from the pool.
                unsafe { b.slice_mut() }.fill(0.0)
            }),
            _ => unreachable!("a pool only holds its own backend's buffers"),
        }
        Ok(Tensor {
            buf: Arc::new(buf),
            capacity: (bytes / 4) as usize,
            offset: 0,
            batch,
            rows,
            cols,
            batch_stride: rows * cols,
        })
    }

    /// Uploads `data` (length `batch·rows·cols`) as a new contiguous tensor.
    pub fn upload(&self, data: &[f32], batch: usize, rows: usize, cols: usize) -> Result<Tensor> {
        if data.len() != batch * rows * cols {
            return Err(shape_err(
                "upload",
                format!(
                    "{} values given for shape {batch}×{rows}×{cols}",
                    data.len()
                ),
            ));
        }
        let t = self.zeros(batch, rows, cols)?;
        self.write(&t, data)?;
        Ok(t)
    }

    /// Overwrites a contiguous tensor with `data`.
    pub fn write(&self, t: &Tensor, data: &[f32]) -> Result<()> {
        if !t.is_contiguous() || data.len() != t.len() {
            return Err(shape_err(
                "write",
                format!(
                    "{} values into {} (must be contiguous and equal-sized)",
                    data.len(),
                    t.shape_str()
                ),
            ));
        }
        if data.is_empty() {
            return Ok(());
        }
        match (&self.backend, t.storage()) {
            (Backend::Wgpu { queue, .. }, Storage::Wgpu(b)) => {
                queue.write_buffer(b, (t.offset() * 4) as u64, bytemuck::cast_slice(data))
            }
            (Backend::Native(cpu), Storage::Host(b)) => cpu.exclusive(|| {
                // SAFETY: exclusive access (queue order, like `queue.write_buffer`).
                let host = unsafe { b.slice_mut() };
                host[t.offset()..t.offset() + data.len()].copy_from_slice(data)
            }),
            _ => return Err(foreign_tensor("write", t)),
        }
        Ok(())
    }

    /// Reads a tensor back as `batch·rows·cols` values (strides resolved, broadcasts repeated).
    /// A blocking round trip, for tests and set-up; training steps use [`crate::gpu::Step::read`].
    pub fn read(&self, t: &Tensor) -> Result<Vec<f32>> {
        let span = if t.batch() == 0 {
            0
        } else {
            (t.batch() - 1) * t.batch_stride() + t.item_len()
        };
        let raw = self.read_raw(t.storage(), t.offset(), span)?;
        let mut out = Vec::with_capacity(t.len());
        for b in 0..t.batch() {
            let s = b * t.batch_stride();
            out.extend_from_slice(&raw[s..s + t.item_len()]);
        }
        Ok(out)
    }

    /// Reads `len` f32 starting at element `offset` of a buffer.
    pub(crate) fn read_raw(
        &self,
        storage: &Storage,
        offset: usize,
        len: usize,
    ) -> Result<Vec<f32>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let (device, queue, buffer) = match (&self.backend, storage) {
            (Backend::Wgpu { device, queue }, Storage::Wgpu(b)) => (device, queue, b),
            (Backend::Native(cpu), Storage::Host(b)) => {
                return Ok(cpu.exclusive(|| {
                    // SAFETY: exclusive access.
                    let host = unsafe { b.slice() };
                    host[offset..offset + len].to_vec()
                }));
            }
            _ => {
                return Err(DeviceError::Gpu {
                    context: "read".into(),
                    message: "the tensor belongs to another device".into(),
                })
            }
        };
        let bytes = (len * 4) as u64;
        let staging = self.pool.take_staging(device, bytes);
        let mut enc = device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buffer, (offset * 4) as u64, &staging, 0, bytes);
        let idx = queue.submit([enc.finish()]);
        let out = self.map_staging(&staging, bytes, idx, "read")?;
        self.pool.return_staging(staging);
        Ok(out)
    }

    /// Maps the first `bytes` of a staging buffer after `idx` completes and copies them out.
    pub(crate) fn map_staging(
        &self,
        staging: &wgpu::Buffer,
        bytes: u64,
        idx: wgpu::SubmissionIndex,
        context: &str,
    ) -> Result<Vec<f32>> {
        let (tx, rx) = futures::channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, ..bytes, move |r| {
            let _ = tx.send(r);
        });
        self.wgpu_device()?
            .poll(wgpu::PollType::Wait {
                submission_index: Some(idx),
                timeout: None,
            })
            .map_err(|e| DeviceError::Gpu {
                context: format!("{context}: waiting for the GPU"),
                message: e.to_string(),
            })?;
        pollster::block_on(rx)
            .map_err(|_| DeviceError::Gpu {
                context: context.to_string(),
                message: "map callback dropped".into(),
            })?
            .map_err(|e| DeviceError::Gpu {
                context: format!("{context}: mapping the readback buffer"),
                message: e.to_string(),
            })?;
        let values = {
            let view = staging
                .get_mapped_range(..bytes)
                .map_err(|e| DeviceError::Gpu {
                    context: context.to_string(),
                    message: e.to_string(),
                })?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.unmap();
        self.take_uncaptured(context)?;
        Ok(values)
    }

    /// The wgpu device, or an error naming the native backend (for wgpu-only paths).
    pub(crate) fn wgpu_device(&self) -> Result<&wgpu::Device> {
        match &self.backend {
            Backend::Wgpu { device, .. } => Ok(device),
            Backend::Native(_) => Err(DeviceError::Gpu {
                context: "wgpu".into(),
                message: "the native CPU backend has no wgpu device".into(),
            }),
        }
    }

    /// Bytes held by live tensors, and the peak so far.
    pub fn memory_in_use(&self) -> (u64, u64) {
        (self.pool.live_bytes(), self.pool.peak_bytes())
    }
}

/// The error for a tensor of one device used on another.
pub(crate) fn foreign_tensor(op: &str, t: &Tensor) -> DeviceError {
    DeviceError::Gpu {
        context: op.to_string(),
        message: format!("tensor {} belongs to another device", t.shape_str()),
    }
}
