//! The GPU side of the students: a [`GpuStudent`] prepares, for fixed tensors, the batched
//! forward and backward launches of all tasks of a meta-batch at once. Meta parameters are one
//! packed buffer shared by every task; task parameters are one packed item per task.
//!
//! The meta-learning loop ([`crate::train`]) owns the tensors and builds one program per data
//! split it needs (support set for the inner loop, query set for the meta-gradient).

use crate::error::{shape_err, Result};
use crate::gpu::{Dispatch, Gpu, GpuTensor};
use crate::models::{HnetSlot, Student, TargetNet};
use crate::ops::elementwise::{activation_backward, fill};
use crate::ops::embnorm::{embedding_normalize, scale_rows};
use crate::ops::gemm::{gemm, GemmOptions};
use crate::ops::reduce::col_sums;
use crate::ops::Activation;

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

// ---------------------------------------------------------------------------------------------
// Shared pieces of the hypernetwork students' programs
// ---------------------------------------------------------------------------------------------

/// Checks the shapes of `b` against `student` and returns `(tasks, n)`.
pub(crate) fn check_buffers<S: Student>(
    op: &'static str,
    student: &S,
    b: &StudentBuffers<'_>,
) -> Result<(usize, usize)> {
    let layout = student.param_layout();
    let (tasks, n) = (b.task.batch(), b.x.rows());
    let (i, o) = (student.input_dim(), student.output_dim());
    let dims = |t: &GpuTensor, bt: usize, r: usize, c: usize| {
        t.batch() == bt && t.rows() == r && t.cols() == c
    };
    let contiguous = |t: &GpuTensor| t.is_contiguous();
    let mut ok = tasks >= 1
        && n >= 1
        && dims(b.meta, 1, 1, layout.meta_len())
        && dims(b.task, tasks, 1, layout.task_len())
        && dims(b.x, tasks, n, i)
        && dims(b.logits, tasks, n, o)
        && dims(b.dlogits, tasks, n, o)
        && dims(b.dtask, tasks, 1, layout.task_len())
        && contiguous(b.logits)
        && contiguous(b.dlogits);
    if let Some(dm) = b.dmeta {
        ok &= dims(dm, 1, 1, layout.meta_len());
    }
    if ok {
        return Ok((tasks, n));
    }
    Err(shape_err(
        op,
        format!(
            "want meta [1×1×{ml}], task/dtask [B×1×{tl}], x [B×n×{i}], logits/dlogits [B×n×{o}] \
             contiguous, dmeta [1×1×{ml}] (B, n ≥ 1); got meta {}, task {}, x {}, logits {}, \
             dlogits {}, dtask {}, dmeta {}",
            b.meta.shape_str(),
            b.task.shape_str(),
            b.x.shape_str(),
            b.logits.shape_str(),
            b.dlogits.shape_str(),
            b.dtask.shape_str(),
            b.dmeta.map_or("none".to_string(), |t| t.shape_str()),
            ml = layout.meta_len(),
            tl = layout.task_len(),
        ),
    ))
}

/// Where the generated target-net parameters of all tasks live in one buffer: slot-major, then
/// task, then row (`[slot][task][row][chunk]`), so that each slot's rows of every task form one
/// contiguous `[tasks·rows × chunk]` matrix (one GEMM per bank generates them all, and one GEMM
/// with K = tasks·rows sums the bank gradient over tasks).
pub(crate) struct GenLayout {
    target: TargetNet,
    slots: Vec<HnetSlot>,
    /// Element offset of each slot's block.
    base: Vec<usize>,
    tasks: usize,
    /// Total elements.
    pub(crate) len: usize,
}

impl GenLayout {
    pub(crate) fn new(target: TargetNet, tasks: usize) -> GenLayout {
        let slots = target.slots();
        let mut base = Vec::new();
        let mut len = 0;
        for s in &slots {
            base.push(len);
            len += tasks * s.rows * s.chunk;
        }
        GenLayout {
            target,
            slots,
            base,
            tasks,
            len,
        }
    }

    /// The slots (input, hidden, output).
    pub(crate) fn slots(&self) -> &[HnetSlot] {
        &self.slots
    }

    /// Slot `s` of `buf` (a `GenLayout::len` buffer) as `[1 × tasks·rows × chunk]`.
    pub(crate) fn slot(&self, buf: &GpuTensor, s: usize) -> Result<GpuTensor> {
        let sl = self.slots[s];
        let len = self.tasks * sl.rows * sl.chunk;
        buf.view(
            buf.offset() + self.base[s],
            1,
            self.tasks * sl.rows,
            sl.chunk,
            len,
        )
    }

    /// `(w [tasks × fan_in × fan_out], b [tasks × 1 × fan_out])` of target layer `l` in `buf`.
    pub(crate) fn layer(&self, buf: &GpuTensor, l: usize) -> Result<(GpuTensor, GpuTensor)> {
        let dims = self.target.dims();
        let (fi, fo) = (dims[l], dims[l + 1]);
        let (s, r) = self.target.source(l, self.slots.len());
        let sl = self.slots[s];
        let stride = sl.rows * sl.chunk;
        let at = buf.offset() + self.base[s] + r * sl.chunk;
        Ok((
            buf.view(at, self.tasks, fi, fo, stride)?,
            buf.view(at + fi * fo, self.tasks, 1, fo, stride)?,
        ))
    }
}

/// Batched launches of the generated target network (spec §4.1) over all tasks: layer `l` is
/// one GEMM over tasks with the per-task generated weights, `1/√fan_in` as alpha, the generated
/// bias and ReLU in the epilogue. The hidden activations are kept for the backward, whose ReLU
/// derivative is taken from them.
pub(crate) struct TargetProgram {
    pub(crate) forward: Vec<Dispatch>,
    pub(crate) backward: Vec<Dispatch>,
}

/// Builds the target network's forward (`x` → `out`, reading `gen`) and backward (`dout` →
/// `dgen`, same layout as `gen`, every entry overwritten) for `tasks` tasks of `n` samples.
#[allow(clippy::too_many_arguments)]
pub(crate) fn target_program(
    gpu: &Gpu,
    lay: &GenLayout,
    gen: &GpuTensor,
    dgen: &GpuTensor,
    x: &GpuTensor,
    out: &GpuTensor,
    dout: &GpuTensor,
) -> Result<TargetProgram> {
    let dims = lay.target.dims();
    let nl = dims.len() - 1;
    let (tasks, n, h) = (lay.tasks, x.rows(), lay.target.hidden_dim);
    let acts: Vec<GpuTensor> = (0..nl - 1)
        .map(|_| gpu.zeros(tasks, n, h))
        .collect::<Result<_>>()?;
    let (dz, dh) = (gpu.zeros(tasks, n, h)?, gpu.zeros(tasks, n, h)?);
    let input = |l: usize| if l == 0 { x } else { &acts[l - 1] };
    let alpha = |l: usize| 1.0 / (dims[l] as f32).sqrt();
    let mut p = TargetProgram {
        forward: Vec::new(),
        backward: Vec::new(),
    };
    for l in 0..nl {
        let (w, b) = lay.layer(gen, l)?;
        // The hidden layers write their kept activations, the last one the output.
        let (c, activation) = match acts.get(l) {
            Some(a) => (a, Activation::Relu),
            None => (out, Activation::Identity),
        };
        let opts = GemmOptions {
            alpha: alpha(l),
            activation,
            ..GemmOptions::default()
        };
        p.forward.push(gemm(gpu, input(l), &w, Some(&b), c, &opts)?);
    }
    for l in (0..nl).rev() {
        let dzl = if l + 1 == nl {
            dout
        } else {
            p.backward.push(activation_backward(
                gpu,
                &dh,
                &acts[l],
                &dz,
                Activation::Relu,
            )?);
            &dz
        };
        let (dw, db) = lay.layer(dgen, l)?;
        let opts = GemmOptions {
            trans_a: true,
            alpha: alpha(l),
            ..GemmOptions::default()
        };
        p.backward.push(gemm(gpu, input(l), dzl, None, &dw, &opts)?);
        p.backward.push(col_sums(gpu, dzl, &db, 1.0, 0.0)?);
        if l > 0 {
            let (w, _) = lay.layer(gen, l)?;
            let opts = GemmOptions {
                trans_b: true,
                alpha: alpha(l),
                ..GemmOptions::default()
            };
            p.backward.push(gemm(gpu, dzl, &w, None, &dh, &opts)?);
        }
    }
    Ok(p)
}

/// The normalised embeddings ê of every task (spec §4.2), their gradient and the frozen scales,
/// slot-major like [`GenLayout`] (`[slot][task][row][T]`), so each slot's rows of all tasks are
/// one contiguous `[tasks·rows × T]` matrix.
pub(crate) struct Embeddings {
    tasks: usize,
    t: usize,
    slots: Vec<HnetSlot>,
    /// First slot-major row of each slot.
    row0: Vec<usize>,
    /// ê.
    pub(crate) ehat: GpuTensor,
    /// ∂L/∂ê (written by the student's bank backward).
    pub(crate) dehat: GpuTensor,
    scales: GpuTensor,
}

impl Embeddings {
    pub(crate) fn new(gpu: &Gpu, lay: &GenLayout, t: usize) -> Result<Embeddings> {
        let tasks = lay.tasks;
        let mut row0 = Vec::new();
        let mut rows = 0;
        for s in lay.slots() {
            row0.push(rows);
            rows += tasks * s.rows;
        }
        Ok(Embeddings {
            tasks,
            t,
            slots: lay.slots().to_vec(),
            row0,
            ehat: gpu.zeros(1, rows, t)?,
            dehat: gpu.zeros(1, rows, t)?,
            scales: gpu.zeros(1, rows, 1)?,
        })
    }

    /// Slot `s` of `buf` (`ehat` or `dehat`) as `[1 × tasks·rows × T]`.
    pub(crate) fn flat(&self, buf: &GpuTensor, s: usize) -> Result<GpuTensor> {
        let m = self.tasks * self.slots[s].rows;
        buf.view(self.row0[s] * self.t, 1, m, self.t, 0)
    }

    /// Slot `s` of a scratch `buf` with `cols` values per row as `[tasks × rows × cols]`.
    fn per_task(&self, buf: &GpuTensor, s: usize, cols: usize) -> Result<GpuTensor> {
        let r = self.slots[s].rows;
        buf.view(self.row0[s] * cols, self.tasks, r, cols, r * cols)
    }

    /// Slot `s`'s embedding rows `[tasks × rows × T]` inside a packed task buffer (`task` or
    /// `dtask`) whose embedding tensor starts at element `start` of each item.
    fn in_task(&self, buf: &GpuTensor, s: usize, start: usize) -> Result<GpuTensor> {
        let r = self.slots[s].rows;
        buf.view(
            buf.offset() + start,
            self.tasks,
            r,
            self.t,
            buf.batch_stride(),
        )
    }

    /// ê and the scales of slot `s` from the task parameters.
    pub(crate) fn normalize(
        &self,
        gpu: &Gpu,
        task: &GpuTensor,
        s: usize,
        start: usize,
    ) -> Result<Dispatch> {
        embedding_normalize(
            gpu,
            &self.in_task(task, s, start)?,
            &self.per_task(&self.ehat, s, self.t)?,
            &self.per_task(&self.scales, s, 1)?,
        )
    }

    /// `de = dê · s` of slot `s` into the task gradient (stop-gradient on the scale).
    pub(crate) fn backward(
        &self,
        gpu: &Gpu,
        dtask: &GpuTensor,
        s: usize,
        start: usize,
    ) -> Result<Dispatch> {
        scale_rows(
            gpu,
            &self.per_task(&self.dehat, s, self.t)?,
            &self.per_task(&self.scales, s, 1)?,
            &self.in_task(dtask, s, start)?,
        )
    }
}

/// Range of the named tensor in a layout group, or a shape error naming it.
pub(crate) fn param_range(
    op: &'static str,
    r: Option<std::ops::Range<usize>>,
    name: &str,
) -> Result<std::ops::Range<usize>> {
    r.ok_or_else(|| shape_err(op, format!("the parameter layout lacks {name}")))
}

/// Zero-fills the `*_init` meta tensors of `dmeta`, which follow every other meta tensor
/// (`first` is the first of them): the forward never reads them.
pub(crate) fn zero_inits(
    gpu: &Gpu,
    dmeta: &GpuTensor,
    first: usize,
    meta_len: usize,
) -> Result<Dispatch> {
    let len = meta_len - first;
    fill(
        gpu,
        &dmeta.view(dmeta.offset() + first, 1, 1, len, len)?,
        0.0,
    )
}
