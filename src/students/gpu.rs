//! The GPU side of the students: a [`GpuStudent`] prepares, for fixed tensors, the batched
//! forward and backward launches of all tasks of a meta-batch at once. Meta parameters are one
//! packed buffer shared by every task; task parameters are one packed item per task.
//!
//! The meta-learning loop ([`crate::train`]) owns the tensors and builds one program per data
//! split it needs (support set for the inner loop, query set for the meta-gradient).

use crate::gpu::error::{arg_err, shape_err, Result};
use crate::gpu::{Device, Dispatch, Tensor};
use crate::nn::{
    EmbeddingNorm, LayerParams, LayerTangent, Mlp, MlpProgram, MlpTangent, Param, ParamTangent,
};
use crate::ops::elementwise::fill;
use crate::ops::Activation;
use crate::students::{HnetSlot, ParamLayout, Student, TargetNet};

/// The tensors one program is bound to. Shapes (`tasks` = batch of the task tensors):
/// - `meta`: `[1 × 1 × meta_len]` (packed in [`crate::students::ParamLayout::meta`] order);
/// - `task`: `[tasks × 1 × task_len]` (packed in `ParamLayout::task` order);
/// - `x`: `[tasks × n × input_dim]` (may be a strided view, e.g. the first `n` rows of a larger
///   per-task sample buffer);
/// - `logits`, `dlogits`: `[tasks × n × output_dim]`, contiguous;
/// - `dtask`: `[tasks × 1 × task_len]`;
/// - `dmeta`: `[1 × 1 × meta_len]` or `None` (inner loop: no meta-gradient needed).
#[derive(Clone, Copy, Debug)]
pub struct StudentBuffers<'a> {
    /// Meta parameters.
    pub meta: &'a Tensor,
    /// Task parameters.
    pub task: &'a Tensor,
    /// Inputs.
    pub x: &'a Tensor,
    /// Forward output.
    pub logits: &'a Tensor,
    /// Backward input: ∂L/∂logits, where L = Σ_t L_t (each task's loss already scaled as wanted).
    pub dlogits: &'a Tensor,
    /// Backward output: ∂L/∂task_t per task (overwritten).
    pub dtask: &'a Tensor,
    /// Backward output: ∂L/∂meta summed over tasks (overwritten), when wanted.
    pub dmeta: Option<&'a Tensor>,
}

/// Prepared launches of one student on one set of buffers.
#[derive(Debug, Default)]
pub struct StudentProgram {
    /// Writes `logits` from `meta`, `task`, `x` (and keeps what the backward needs).
    pub forward: Vec<Dispatch>,
    /// Writes `dtask` (and `dmeta`) from `dlogits`; valid after `forward` ran on the same values.
    pub backward: Vec<Dispatch>,
    /// Second-order programs only: writes `logits_dot` from `task_dot` (valid after `forward`).
    pub tangent_forward: Vec<Dispatch>,
    /// Second-order programs only: writes `dtask_dot` and `dmeta_dot` from `dlogits_dot`
    /// (valid after `backward` and `tangent_forward`).
    pub tangent_backward: Vec<Dispatch>,
}

/// The tangent tensors of a second-order program ([`GpuStudent::hvp_program`]): with the
/// support loss L(θ, φ) and a direction θ̇ of the task parameters (φ̇ = 0), forward-over-reverse
/// gives the two Hessian-vector products the reverse sweep needs. Shapes as the matching
/// [`StudentBuffers`] (`logits_dot`, `dlogits_dot` contiguous).
#[derive(Clone, Copy, Debug)]
pub struct TangentBuffers<'a> {
    /// θ̇ per task.
    pub task_dot: &'a Tensor,
    /// Out: the logits' tangent ż.
    pub logits_dot: &'a Tensor,
    /// In: the tangent of ∂L/∂logits (the loss HVP of ż, [`crate::ops::loss::kl_tangent`]).
    pub dlogits_dot: &'a Tensor,
    /// Out: `H_θθ·θ̇` per task (overwritten).
    pub dtask_dot: &'a Tensor,
    /// Out: `Σ_tasks H_φθ·θ̇` (overwritten; the `*_init` entries zero).
    pub dmeta_dot: &'a Tensor,
}

/// A student that runs on the GPU. Its CPU twin ([`Student::forward`] / [`Student::backward`])
/// defines what the program must compute, task by task; `dmeta` entries of `*_init` tensors are
/// zero here too (their first-order meta-gradient is added by the meta-learning loop).
pub trait GpuStudent: Student {
    /// Prepares the program for `buffers` (allocating any scratch it needs) and, with
    /// `tangent`, its tangent passes; a student without device tangents returns
    /// [`no_tangents`]'s error for a tangent.
    fn build_program(
        &self,
        gpu: &Device,
        buffers: &StudentBuffers<'_>,
        tangent: Option<&TangentBuffers<'_>>,
    ) -> Result<StudentProgram>;

    /// For a student whose lowest layers are meta-parameters the inner loop does not train
    /// (ANIL's body): how it runs on features fixed for the whole inner loop. The
    /// meta-learning loop then computes the support set's features once per episode, adapts
    /// on them, and (second order) routes the body's mixed term through one backward at the
    /// end of the reverse sweep. `None` (the default): every inner step runs the whole student.
    fn fixed_features(&self) -> Option<&dyn FixedFeatures> {
        None
    }

    /// The program for `buffers`.
    fn program(&self, gpu: &Device, buffers: &StudentBuffers<'_>) -> Result<StudentProgram> {
        self.build_program(gpu, buffers, None)
    }

    /// The program for `buffers` (no `dmeta`: the inner loop's) together with its tangent
    /// passes ([`TangentBuffers`]), for second-order meta-gradients.
    fn hvp_program(
        &self,
        gpu: &Device,
        buffers: &StudentBuffers<'_>,
        tangent: &TangentBuffers<'_>,
    ) -> Result<StudentProgram> {
        self.build_program(gpu, buffers, Some(tangent))
    }
}

/// A student split into a fixed feature map (meta-parameters only, not trained by the inner loop)
/// and the adapted part that reads its features ([`GpuStudent::fixed_features`]). The split must
/// compute what the whole student's program computes: `head(features(x))`.
pub trait FixedFeatures {
    /// Features per sample.
    fn feature_dim(&self) -> usize;

    /// The feature map over all tasks: `features` `[tasks × n × feature_dim]` from `x`
    /// `[tasks × n × input_dim]`. With `grad = (dfeatures, dmeta)`, also its backward: the
    /// meta-gradient of `⟨features, dfeatures⟩`, summed over tasks into `dmeta`'s entries of
    /// the tensors it reads (overwritten; the others untouched).
    fn feature_program(
        &self,
        gpu: &Device,
        meta: &Tensor,
        x: &Tensor,
        features: &Tensor,
        grad: Option<(&Tensor, &Tensor)>,
    ) -> Result<StudentProgram>;

    /// The adapted part: `buffers.x` holds features (`[tasks × n × feature_dim]`) and
    /// `buffers.dmeta` is `None`. With `tangent`, its tangent passes and, in the second
    /// tensor, the tangent of ∂L/∂features (through which the feature map's mixed term flows).
    fn head_program(
        &self,
        gpu: &Device,
        buffers: &StudentBuffers<'_>,
        tangent: Option<(&TangentBuffers<'_>, &Tensor)>,
    ) -> Result<StudentProgram>;
}

/// The error of a student asked for tangent passes it does not have on the device.
pub fn no_tangents(student: &str) -> crate::gpu::DeviceError {
    arg_err(
        "second-order meta-gradient",
        format!(
            "{student} has no device tangent passes yet; use meta_gradient = \"first_order\" \
             (its f64 twin computes the exact second-order gradient)"
        ),
    )
}

/// Checks a second-order program's tangent tensors against its buffers.
pub(crate) fn check_tangent(
    op: &'static str,
    layout: &ParamLayout,
    b: &StudentBuffers<'_>,
    t: &TangentBuffers<'_>,
) -> Result<()> {
    let shape = |x: &Tensor| (x.batch(), x.rows(), x.cols());
    let want = [
        ("task_dot", t.task_dot, shape(b.task), false),
        ("logits_dot", t.logits_dot, shape(b.logits), true),
        ("dlogits_dot", t.dlogits_dot, shape(b.logits), true),
        ("dtask_dot", t.dtask_dot, shape(b.task), false),
        ("dmeta_dot", t.dmeta_dot, (1, 1, layout.meta_len()), false),
    ];
    for (name, x, w, contiguous) in want {
        if shape(x) != w || (contiguous && !x.is_contiguous()) || b.dmeta.is_some() {
            return Err(shape_err(
                op,
                format!(
                    "{name} must be [{}×{}×{}]{} and the program without dmeta, got {}",
                    w.0,
                    w.1,
                    w.2,
                    if contiguous { ", contiguous" } else { "" },
                    x.shape_str()
                ),
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Shared pieces of the hypernetwork students' programs
// ---------------------------------------------------------------------------------------------

/// Checks the shapes of `b` against `student` and returns `(tasks, n)`; the error names the
/// first tensor that does not fit, what it must be and what it is.
pub(crate) fn check_buffers<S: Student>(
    op: &'static str,
    student: &S,
    b: &StudentBuffers<'_>,
) -> Result<(usize, usize)> {
    let layout = student.param_layout();
    let (tasks, n) = (b.task.batch(), b.x.rows());
    let (i, o) = (student.input_dim(), student.output_dim());
    let shape = |t: &Tensor| (t.batch(), t.rows(), t.cols());
    let mut want = vec![
        ("meta", b.meta, (1, 1, layout.meta_len())),
        ("task", b.task, (tasks, 1, layout.task_len())),
        ("x", b.x, (tasks, n, i)),
        ("logits", b.logits, (tasks, n, o)),
        ("dlogits", b.dlogits, (tasks, n, o)),
        ("dtask", b.dtask, (tasks, 1, layout.task_len())),
    ];
    want.extend(b.dmeta.map(|d| ("dmeta", d, (1, 1, layout.meta_len()))));
    for (name, t, (wb, wr, wc)) in want {
        if shape(t) != (wb, wr, wc) || tasks == 0 || n == 0 {
            return Err(shape_err(
                op,
                format!(
                    "{name} must be [{wb}×{wr}×{wc}] (tasks from task {}, n from x {}; both ≥ 1), \
                     got {}",
                    b.task.shape_str(),
                    b.x.shape_str(),
                    t.shape_str()
                ),
            ));
        }
    }
    for (name, t) in [("logits", b.logits), ("dlogits", b.dlogits)] {
        if !t.is_contiguous() {
            return Err(shape_err(
                op,
                format!("{name} {} must be contiguous", t.shape_str()),
            ));
        }
    }
    Ok((tasks, n))
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

    /// The embedding normalisation scratch for these slots' rows of every task.
    pub(crate) fn embeddings(&self, gpu: &Device, t: usize) -> Result<EmbeddingNorm> {
        let rows: Vec<usize> = self.slots.iter().map(|s| s.rows).collect();
        EmbeddingNorm::new(gpu, self.tasks, &rows, t)
    }

    /// Slot `s` of `buf` (a `GenLayout::len` buffer) as `[1 × tasks·rows × chunk]`.
    pub(crate) fn slot(&self, buf: &Tensor, s: usize) -> Result<Tensor> {
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
    pub(crate) fn layer(&self, buf: &Tensor, l: usize) -> Result<(Tensor, Tensor)> {
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

/// The generated target network (spec §4.1) over all tasks: an [`Mlp`] of reparametrised layers
/// (ReLU but after the last) whose weights and biases are PER TASK, views into `gen`, with their
/// gradients in the same places of `dgen` (every entry overwritten by the backward). With
/// `tangent`, the generated parameters' directions are the same views of `tangent.gen_dot`
/// and their gradient tangents those of `tangent.dgen_dot`.
#[allow(clippy::too_many_arguments)]
fn target_program(
    gpu: &Device,
    lay: &GenLayout,
    gen: &Tensor,
    dgen: &Tensor,
    x: &Tensor,
    out: &Tensor,
    dout: &Tensor,
    tangent: Option<(&GenTangent, &TangentBuffers<'_>)>,
) -> Result<MlpProgram> {
    let dims = lay.target.dims();
    let mlp = Mlp::new(&dims, Activation::Relu, Activation::Identity).reparametrized();
    let params = (0..dims.len() - 1)
        .map(|l| {
            let ((w, b), (dw, db)) = (lay.layer(gen, l)?, lay.layer(dgen, l)?);
            Ok(LayerParams {
                w: Param::per_item(&w, Some(&dw))?,
                b: Some(Param::per_item(&b, Some(&db))?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let Some((gt, tb)) = tangent else {
        return mlp.program(gpu, &params, x, out, Some(dout));
    };
    let layers = (0..dims.len() - 1)
        .map(|l| {
            let ((w, b), (dw, db)) = (lay.layer(&gt.gen_dot, l)?, lay.layer(&gt.dgen_dot, l)?);
            let pt = |dot: Tensor, grad_dot: Tensor| ParamTangent {
                dot: Some(dot),
                grad_dot: Some(grad_dot),
            };
            Ok(LayerTangent {
                w: pt(w, dw),
                b: pt(b, db),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let t = MlpTangent {
        layers: &layers,
        x_dot: None,
        out_dot: tb.logits_dot,
        dout_dot: tb.dlogits_dot,
        dx_dot: None,
    };
    mlp.program_with_tangent(gpu, &params, x, out, dout, &t)
}

/// The generated parameters' directions and gradient tangents (`GenLayout::len` each).
struct GenTangent {
    gen_dot: Tensor,
    dgen_dot: Tensor,
}

/// A named meta tensor as a parameter shared by the rows it is applied to (`[1 × rows × cols]`
/// views of `meta` and, when the program computes meta-gradients, of `dmeta`).
pub(crate) fn meta_param(
    op: &'static str,
    layout: &ParamLayout,
    b: &StudentBuffers<'_>,
    name: &str,
    rows: usize,
    cols: usize,
) -> Result<Param> {
    let at = param_range(op, layout.meta_range(name), name)?.start;
    let v = |buf: &Tensor| buf.view(buf.offset() + at, 1, rows, cols, 0);
    Param::shared(&v(b.meta)?, b.dmeta.map(v).transpose()?.as_ref(), 1)
}

/// The tensors one slot's bank reads and writes: `ehat`/`dehat` `[1 × tasks·rows × T]`,
/// `gen`/`dgen` `[1 × tasks·rows × chunk]` (slot-major, every task's rows as one matrix), and
/// in a second-order program their tangents.
pub(crate) struct BankIo {
    pub(crate) ehat: Tensor,
    pub(crate) dehat: Tensor,
    pub(crate) gen: Tensor,
    pub(crate) dgen: Tensor,
    pub(crate) tangent: Option<BankTangentIo>,
}

/// The tangents of [`BankIo`] (same shapes) and the bank's meta-gradient tangent `dmeta_dot`.
pub(crate) struct BankTangentIo {
    pub(crate) ehat_dot: Tensor,
    pub(crate) dehat_dot: Tensor,
    pub(crate) gen_dot: Tensor,
    pub(crate) dgen_dot: Tensor,
    pub(crate) dmeta_dot: Tensor,
}

/// The launches of one slot's bank: as [`StudentProgram`]'s, for the bank alone.
#[derive(Default)]
pub(crate) struct BankProgram {
    pub(crate) forward: Vec<Dispatch>,
    pub(crate) backward: Vec<Dispatch>,
    pub(crate) tangent_forward: Vec<Dispatch>,
    pub(crate) tangent_backward: Vec<Dispatch>,
}

/// The program both hypernetwork students share (spec §4.1–4.3): per slot, the embedding rows of
/// every task are normalised into a slot-major scratch, `bank` generates that slot's target
/// parameters for all tasks at once (and backpropagates into ∂L/∂ê), `de = dê · s` lands in
/// `dtask`; the target net runs batched over tasks; the `*_init` entries of `dmeta` (from
/// `emb_input_init` on) are zero-filled. With `tangent`, every piece also gets its tangent
/// passes (the frozen scale makes `ė̂ = ė · s`), and `bank` is handed [`BankTangentIo`].
pub(crate) fn hypernetwork_program<S, F>(
    op: &'static str,
    gpu: &Device,
    student: &S,
    b: &StudentBuffers<'_>,
    tangent: Option<&TangentBuffers<'_>>,
    mut bank: F,
) -> Result<StudentProgram>
where
    S: crate::students::Hypernetwork,
    F: FnMut(&HnetSlot, &BankIo) -> Result<BankProgram>,
{
    let (tasks, _) = check_buffers(op, student, b)?;
    if let Some(t) = tangent {
        check_tangent(op, &student.param_layout(), b, t)?;
    }
    let layout = student.param_layout();
    let lay = GenLayout::new(student.target_net(), tasks);
    let emb = lay.embeddings(gpu, student.templates())?;
    let gen = gpu.zeros(1, 1, lay.len)?;
    let dgen = gpu.zeros(1, 1, lay.len)?;
    let gen_t = match tangent {
        Some(_) => Some(GenTangent {
            gen_dot: gpu.zeros(1, 1, lay.len)?,
            dgen_dot: gpu.zeros(1, 1, lay.len)?,
        }),
        None => None,
    };
    let mut prog = StudentProgram::default();
    let (mut back_banks, mut tangent_back_banks) = (Vec::new(), Vec::new());
    for (s, sl) in lay.slots().iter().enumerate() {
        let e_name = format!("emb_{}", sl.name);
        let e0 = param_range(op, layout.task_range(&e_name), &e_name)?.start;
        let bank_tangent = match (tangent, &gen_t) {
            (Some(t), Some(g)) => Some(BankTangentIo {
                ehat_dot: emb.flat(&emb.ehat_dot, s)?,
                dehat_dot: emb.flat(&emb.dehat_dot, s)?,
                gen_dot: lay.slot(&g.gen_dot, s)?,
                dgen_dot: lay.slot(&g.dgen_dot, s)?,
                dmeta_dot: t.dmeta_dot.clone(),
            }),
            _ => None,
        };
        let io = BankIo {
            ehat: emb.flat(&emb.ehat, s)?,
            dehat: emb.flat(&emb.dehat, s)?,
            gen: lay.slot(&gen, s)?,
            dgen: lay.slot(&dgen, s)?,
            tangent: bank_tangent,
        };
        let bp = bank(sl, &io)?;
        prog.forward.push(emb.forward(gpu, b.task, s, e0)?);
        prog.forward.extend(bp.forward);
        back_banks.extend(bp.backward);
        back_banks.push(emb.backward(gpu, b.dtask, s, e0)?);
        if let Some(t) = tangent {
            prog.tangent_forward
                .push(emb.tangent(gpu, t.task_dot, s, e0)?);
            prog.tangent_forward.extend(bp.tangent_forward);
            tangent_back_banks.extend(bp.tangent_backward);
            tangent_back_banks.push(emb.tangent_backward(gpu, t.dtask_dot, s, e0)?);
        }
    }
    let target_t = gen_t.as_ref().zip(tangent);
    let target = target_program(gpu, &lay, &gen, &dgen, b.x, b.logits, b.dlogits, target_t)?;
    prog.forward.extend(target.forward);
    prog.backward.extend(target.backward);
    prog.backward.extend(back_banks);
    prog.tangent_forward.extend(target.tangent_forward);
    prog.tangent_backward.extend(target.tangent_backward);
    prog.tangent_backward.extend(tangent_back_banks);
    let first = param_range(op, layout.meta_range("emb_input_init"), "emb_input_init")?;
    if let Some(dm) = b.dmeta {
        prog.backward
            .push(zero_inits(gpu, dm, first.start, layout.meta_len())?);
    }
    if let Some(t) = tangent {
        prog.tangent_backward.push(zero_inits(
            gpu,
            t.dmeta_dot,
            first.start,
            layout.meta_len(),
        )?);
    }
    Ok(prog)
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
fn zero_inits(gpu: &Device, dmeta: &Tensor, first: usize, meta_len: usize) -> Result<Dispatch> {
    let len = meta_len - first;
    fill(
        gpu,
        &dmeta.view(dmeta.offset() + first, 1, 1, len, len)?,
        0.0,
    )
}
