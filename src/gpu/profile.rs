//! Kernel timing: GPU timestamp queries around one compute pass per iteration when the adapter
//! has them, wall-clock submit-and-wait otherwise. Warm-up first, median reported.

use std::time::Instant;

use serde::Serialize;

use crate::gpu::error::{DeviceError, Result};
use crate::gpu::{Device, Dispatch};

/// How a timing was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimingMethod {
    /// Pass begin/end timestamps on the GPU clock.
    GpuTimestamps,
    /// Host clock around submit + wait (includes submission overhead).
    WallClock,
}

/// Result of timing a sequence of dispatches.
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    /// Median time of one iteration (all dispatches), milliseconds.
    pub median_ms: f64,
    /// Fastest iteration, milliseconds.
    pub min_ms: f64,
    /// Iterations measured (after warm-up).
    pub iters: usize,
    /// Clock used.
    pub method: TimingMethod,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

impl Device {
    /// Times `ds` run back to back: `warmup` untimed iterations, then `iters` timed ones.
    pub fn time(&self, ds: &[&Dispatch], warmup: usize, iters: usize) -> Result<Timing> {
        let iters = iters.max(1);
        for _ in 0..warmup {
            self.run(ds)?;
        }
        let samples = if self.features().timestamp_query {
            self.time_with_timestamps(ds, iters)?
        } else {
            let mut v = Vec::with_capacity(iters);
            for _ in 0..iters {
                let t0 = Instant::now();
                self.run(ds)?;
                v.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            v
        };
        let min_ms = samples.iter().copied().fold(f64::INFINITY, f64::min);
        Ok(Timing {
            median_ms: median(samples),
            min_ms,
            iters,
            method: if self.features().timestamp_query {
                TimingMethod::GpuTimestamps
            } else {
                TimingMethod::WallClock
            },
        })
    }

    fn time_with_timestamps(&self, ds: &[&Dispatch], iters: usize) -> Result<Vec<f64>> {
        // Query sets hold at most 4096 queries: measure in chunks of 1024 iterations.
        let mut out = Vec::with_capacity(iters);
        let crate::gpu::device::Backend::Wgpu { device, queue } = &self.backend else {
            unreachable!("timestamp queries are only enabled on wgpu devices")
        };
        let period = queue.get_timestamp_period() as f64;
        let mut left = iters;
        while left > 0 {
            let n = left.min(1024);
            left -= n;
            let count = (2 * n) as u32;
            let qs = device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("hypermod timing"),
                ty: wgpu::QueryType::Timestamp,
                count,
            });
            let bytes = count as u64 * 8;
            let resolve = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let staging = self.pool.take_staging(device, bytes);
            let mut enc = device.create_command_encoder(&Default::default());
            for i in 0..n as u32 {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("timed"),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: &qs,
                        beginning_of_pass_write_index: Some(2 * i),
                        end_of_pass_write_index: Some(2 * i + 1),
                    }),
                });
                for d in ds {
                    d.record(&mut pass);
                }
            }
            enc.resolve_query_set(&qs, 0..count, &resolve, 0);
            enc.copy_buffer_to_buffer(&resolve, 0, &staging, 0, bytes);
            let idx = queue.submit([enc.finish()]);
            let raw = self.map_staging(&staging, bytes, idx, "timestamp readback")?;
            self.pool.return_staging(staging);
            // Timestamps are u64 ticks; the staging copy comes back as 32-bit words.
            let words: &[u32] = bytemuck::cast_slice(&raw);
            let tick = |q: usize| words[2 * q] as u64 | ((words[2 * q + 1] as u64) << 32);
            for i in 0..n {
                let (a, b) = (tick(2 * i), tick(2 * i + 1));
                if b < a {
                    return Err(DeviceError::Gpu {
                        context: "timestamp readback".into(),
                        message: format!("end tick {b} before begin tick {a}"),
                    });
                }
                out.push((b - a) as f64 * period * 1e-6);
            }
        }
        Ok(out)
    }
}
