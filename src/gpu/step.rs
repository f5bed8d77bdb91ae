//! [`Step`]: one command encoder per training step. Dispatches are recorded into one compute
//! pass; [`Step::finish`] submits once and reads back only the tensors registered with
//! [`Step::read`], in a single copy-and-map round trip.

use std::sync::Arc;

use crate::gpu::device::Backend;
use crate::gpu::error::{shape_err, Result};
use crate::gpu::kernels::NativeDispatch;
use crate::gpu::{Device, Dispatch, Tensor};

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
    gpu: &'g Device,
    recording: Recording,
    reads: Vec<Tensor>,
    read_len: usize,
}

/// What a step records into. (One per step, so the size difference between the variants is not
/// worth a box.)
#[allow(clippy::large_enum_variant)]
enum Recording {
    Wgpu {
        encoder: wgpu::CommandEncoder,
        pass: Option<wgpu::ComputePass<'static>>,
    },
    /// Native launches in order, run at submit (as a GPU runs a command buffer).
    Native(Vec<Arc<NativeDispatch>>),
}

impl<'g> Step<'g> {
    /// Opens a new command encoder.
    pub fn new(gpu: &'g Device) -> Step<'g> {
        let recording = match &gpu.backend {
            Backend::Wgpu { device, .. } => Recording::Wgpu {
                encoder: device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("step"),
                }),
                pass: None,
            },
            Backend::Native(_) => Recording::Native(Vec::new()),
        };
        Step {
            gpu,
            recording,
            reads: Vec::new(),
            read_len: 0,
        }
    }

    /// Records one dispatch.
    pub fn run(&mut self, d: &Dispatch) {
        self.gpu.count(d.label(), d.cost());
        match &mut self.recording {
            Recording::Wgpu { encoder, pass } => {
                let pass = pass.get_or_insert_with(|| {
                    encoder
                        .begin_compute_pass(&wgpu::ComputePassDescriptor {
                            label: Some("step"),
                            timestamp_writes: None,
                        })
                        .forget_lifetime()
                });
                d.record(pass);
            }
            Recording::Native(queue) => match d.native() {
                Some(n) => queue.push(n.clone()),
                None => log::error!(
                    "{}: a wgpu dispatch recorded on the native device",
                    d.label()
                ),
            },
        }
    }

    /// Records dispatches in order.
    pub fn run_all<'d>(&mut self, ds: impl IntoIterator<Item = &'d Dispatch>) {
        for d in ds {
            self.run(d);
        }
    }

    /// Registers a contiguous tensor to be read back when the step finishes (after all dispatches).
    pub fn read(&mut self, t: &Tensor) -> Result<ReadSlot> {
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

    /// Submits the step without waiting for it (nothing registered for readback is read). On
    /// the native backend the work runs before this returns.
    pub fn submit(self) -> Result<()> {
        self.execute(false).map(|_| ())
    }

    /// Submits the step, waits for it and returns the registered values.
    pub fn finish(self) -> Result<Readback> {
        self.execute(true)
    }

    fn execute(self, wait: bool) -> Result<Readback> {
        let Step {
            gpu,
            recording,
            reads,
            read_len,
        } = self;
        match (recording, &gpu.backend) {
            (Recording::Native(queue), Backend::Native(cpu)) => cpu.exclusive(|| {
                for d in &queue {
                    d.execute()?;
                }
                let mut values = Vec::with_capacity(read_len);
                for t in &reads {
                    let host = t
                        .storage()
                        .host()
                        .ok_or_else(|| crate::gpu::tensor::foreign_tensor("step readback", t))?;
                    // SAFETY: inside `exclusive`, after every launch of the step.
                    values.extend_from_slice(unsafe { &host.slice()[t.offset()..][..t.len()] });
                }
                Ok(Readback { values })
            }),
            (Recording::Wgpu { encoder, pass }, Backend::Wgpu { device, queue }) => {
                drop(pass);
                finish_wgpu(gpu, device, queue, encoder, &reads, read_len, wait)
            }
            _ => unreachable!("a step records for its own device"),
        }
    }
}

fn finish_wgpu(
    gpu: &Device,
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    mut encoder: wgpu::CommandEncoder,
    reads: &[Tensor],
    read_len: usize,
    wait: bool,
) -> Result<Readback> {
    if !wait {
        queue.submit([encoder.finish()]);
        return Ok(Readback { values: Vec::new() });
    }
    if read_len == 0 {
        let idx = queue.submit([encoder.finish()]);
        device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(idx),
                timeout: None,
            })
            .map_err(|e| crate::gpu::DeviceError::Gpu {
                context: "step".into(),
                message: e.to_string(),
            })?;
        gpu.take_uncaptured("step")?;
        return Ok(Readback { values: Vec::new() });
    }
    let bytes = (read_len * 4) as u64;
    let staging = gpu.pool.take_staging(device, bytes);
    let mut at = 0u64;
    for t in reads {
        let n = (t.len() * 4) as u64;
        if n > 0 {
            let buffer = t
                .storage()
                .wgpu()
                .ok_or_else(|| crate::gpu::tensor::foreign_tensor("step readback", t))?;
            encoder.copy_buffer_to_buffer(buffer, (t.offset() * 4) as u64, &staging, at, n);
        }
        at += n;
    }
    let idx = queue.submit([encoder.finish()]);
    let values = gpu.map_staging(&staging, bytes, idx, "step readback");
    gpu.pool.return_staging(staging);
    Ok(Readback { values: values? })
}

impl Device {
    /// Runs dispatches in one submit and waits (tests, set-up code).
    pub fn run(&self, ds: &[&Dispatch]) -> Result<()> {
        let mut s = Step::new(self);
        s.run_all(ds.iter().copied());
        s.finish().map(|_| ())
    }
}
