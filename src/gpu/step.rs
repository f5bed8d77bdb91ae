//! [`Step`]: one command encoder per training step. Dispatches are recorded into one compute
//! pass; [`Step::finish`] submits once and reads back only the tensors registered with
//! [`Step::read`], in a single copy-and-map round trip.

use crate::error::{shape_err, Result};
use crate::gpu::{Dispatch, Gpu, GpuTensor};

/// Handle to a value registered for readback; index into [`Readback`].
#[derive(Clone, Copy, Debug)]
pub struct ReadSlot {
    start: usize,
    len: usize,
}

/// Values read back at the end of a step.
#[derive(Debug)]
pub struct Readback {
    values: Vec<f32>,
}

impl Readback {
    /// The values of one registered tensor.
    pub fn get(&self, slot: ReadSlot) -> &[f32] {
        &self.values[slot.start..slot.start + slot.len]
    }
    /// The first value of a slot (for scalars).
    pub fn scalar(&self, slot: ReadSlot) -> f32 {
        self.values[slot.start]
    }
}

/// A training step being recorded.
pub struct Step<'g> {
    gpu: &'g Gpu,
    encoder: wgpu::CommandEncoder,
    pass: Option<wgpu::ComputePass<'static>>,
    reads: Vec<GpuTensor>,
    read_len: usize,
}

impl<'g> Step<'g> {
    /// Opens a new command encoder.
    pub fn new(gpu: &'g Gpu) -> Step<'g> {
        let encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("step"),
            });
        Step {
            gpu,
            encoder,
            pass: None,
            reads: Vec::new(),
            read_len: 0,
        }
    }

    /// Records one dispatch.
    pub fn run(&mut self, d: &Dispatch) {
        let pass = self.pass.get_or_insert_with(|| {
            self.encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("step"),
                    timestamp_writes: None,
                })
                .forget_lifetime()
        });
        d.record(pass);
    }

    /// Records dispatches in order.
    pub fn run_all<'d>(&mut self, ds: impl IntoIterator<Item = &'d Dispatch>) {
        for d in ds {
            self.run(d);
        }
    }

    /// Registers a contiguous tensor to be read back when the step finishes (after all dispatches).
    pub fn read(&mut self, t: &GpuTensor) -> Result<ReadSlot> {
        if !t.is_contiguous() {
            return Err(shape_err(
                "Step::read",
                format!("{} is not contiguous", t.shape_str()),
            ));
        }
        let slot = ReadSlot {
            start: self.read_len,
            len: t.len(),
        };
        self.read_len += t.len();
        self.reads.push(t.clone());
        Ok(slot)
    }

    /// Submits the step without waiting (nothing registered for readback is read).
    pub fn submit(mut self) -> wgpu::SubmissionIndex {
        drop(self.pass.take());
        self.gpu.queue.submit([self.encoder.finish()])
    }

    /// Submits the step, waits for it and returns the registered values.
    pub fn finish(mut self) -> Result<Readback> {
        drop(self.pass.take());
        if self.read_len == 0 {
            let idx = self.gpu.queue.submit([self.encoder.finish()]);
            self.gpu
                .device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(idx),
                    timeout: None,
                })
                .map_err(|e| crate::Error::Gpu {
                    context: "step".into(),
                    message: e.to_string(),
                })?;
            self.gpu.take_uncaptured("step")?;
            return Ok(Readback { values: Vec::new() });
        }
        let bytes = (self.read_len * 4) as u64;
        let staging = self.gpu.pool.take_staging(&self.gpu.device, bytes);
        let mut at = 0u64;
        for t in &self.reads {
            let n = (t.len() * 4) as u64;
            if n > 0 {
                self.encoder.copy_buffer_to_buffer(
                    t.buffer(),
                    (t.offset() * 4) as u64,
                    &staging,
                    at,
                    n,
                );
            }
            at += n;
        }
        let idx = self.gpu.queue.submit([self.encoder.finish()]);
        let values = self.gpu.map_staging(&staging, bytes, idx, "step readback");
        self.gpu.pool.return_staging(staging);
        Ok(Readback { values: values? })
    }
}

impl Gpu {
    /// Runs dispatches in one submit and waits (tests, set-up code).
    pub fn run(&self, ds: &[&Dispatch]) -> Result<()> {
        let mut s = Step::new(self);
        s.run_all(ds.iter().copied());
        s.finish().map(|_| ())
    }
}
