//! The GPU side of the students: a [`GpuStudent`] prepares, for fixed tensors, the batched
//! forward and backward launches of all tasks of a meta-batch at once. Meta parameters are one
//! packed buffer shared by every task; task parameters are one packed item per task.
//!
//! The meta-learning loop ([`crate::train`]) owns the tensors and builds one program per data
//! split it needs (support set for the inner loop, query set for the meta-gradient).

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuTensor};
use crate::models::Student;

/// The tensors one program is bound to. Shapes (`tasks` = batch of the task tensors):
/// - `meta`: `[1 × 1 × meta_len]` (packed in [`crate::models::ParamLayout::meta`] order);
/// - `task`: `[tasks × 1 × task_len]` (packed in `ParamLayout::task` order);
/// - `x`: `[tasks × n × input_dim]` (may be a strided view, e.g. the first `n` rows of a larger
///   per-task sample buffer);
/// - `logits`, `dlogits`: `[tasks × n × output_dim]`, contiguous;
/// - `dtask`: `[tasks × 1 × task_len]`;
/// - `dmeta`: `[1 × 1 × meta_len]` or `None` (inner loop: no meta-gradient needed).
#[derive(Clone, Copy, Debug)]
pub struct StudentBuffers<'a> {
    /// Meta parameters.
    pub meta: &'a GpuTensor,
    /// Task parameters.
    pub task: &'a GpuTensor,
    /// Inputs.
    pub x: &'a GpuTensor,
    /// Forward output.
    pub logits: &'a GpuTensor,
    /// Backward input: ∂L/∂logits, where L = Σ_t L_t (each task's loss already scaled as wanted).
    pub dlogits: &'a GpuTensor,
    /// Backward output: ∂L/∂task_t per task (overwritten).
    pub dtask: &'a GpuTensor,
    /// Backward output: ∂L/∂meta summed over tasks (overwritten), when wanted.
    pub dmeta: Option<&'a GpuTensor>,
}

/// Prepared launches of one student on one set of buffers.
#[derive(Debug, Default)]
pub struct StudentProgram {
    /// Writes `logits` from `meta`, `task`, `x` (and keeps what the backward needs).
    pub forward: Vec<Dispatch>,
    /// Writes `dtask` (and `dmeta`) from `dlogits`; valid after `forward` ran on the same values.
    pub backward: Vec<Dispatch>,
}

/// A student that runs on the GPU. Its CPU twin ([`Student::forward`] / [`Student::backward`])
/// defines what the program must compute, task by task; `dmeta` entries of `*_init` tensors are
/// zero here too (their first-order meta-gradient is added by the meta-learning loop).
pub trait GpuStudent: Student {
    /// Prepares the program for `buffers` (allocating any scratch it needs).
    fn program(&self, gpu: &Gpu, buffers: &StudentBuffers<'_>) -> Result<StudentProgram>;
}
