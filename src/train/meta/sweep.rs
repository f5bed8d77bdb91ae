//! The second-order reverse sweep through an episode's inner loop (spec second-order.md §3–§4):
//! the θ, m′, v′ history, the AdamW adjoint and one forward-over-reverse pass per inner step.

use crate::error::{arg_err, Result};
use crate::gpu::{Dispatch, Gpu, GpuTensor};
use crate::models::gpu::TangentBuffers;
use crate::models::ParamLayout;
use crate::ops::adamw::{AdamW, AdamWVjpIo};
use crate::ops::elementwise::{axpy, copy, fill};
use crate::ops::loss::kl_tangent;

use super::episode::add_init_grads;

/// What the second-order meta-gradient adds to a train episode (spec second-order.md §3–§4):
/// the forward keeps θ_{t−1} and the moments m′_t, v′_t of every inner step; after the query
/// backward, the sweep runs t = S..1: restore θ_{t−1}, replay step t's minibatch and recompute
/// g_t (the same launches, so bitwise the same values), the AdamW adjoint (θ̄ ← (1 − lr·wd)·θ̄,
/// m̄, v̄, ḡ), then ONE forward-over-reverse pass with direction ḡ for θ̄ += H_θθ·ḡ and
/// φ̄ += H_φθ·ḡ; finally φ̄_init += Σ_tasks θ̄₀. Recomputing g_t trades one support
/// forward/backward per step for not storing S gradients: the history holds 3·S·tasks·P floats.
pub(super) struct ReverseSweep {
    /// Per inner step: copy θ_{t−1} out before the step, m′_t and v′_t after it.
    pub(super) save_theta: Vec<Dispatch>,
    pub(super) save_moments: Vec<[Dispatch; 2]>,
    /// Per inner step: copy θ_{t−1} back into the task parameters.
    pub(super) restore: Vec<Dispatch>,
    /// θ̄_S = ∂L/∂θ_S (the query backward's dtask), m̄ = v̄ = 0.
    pub(super) start: Vec<Dispatch>,
    /// Per inner step t (index t − 1): the AdamW adjoint of step t.
    pub(super) vjp: Vec<Dispatch>,
    /// ż, its loss tangent, the tangent backward, and the two accumulations.
    pub(super) hvp: Vec<Dispatch>,
    /// φ̄_init += Σ_tasks θ̄₀.
    pub(super) finish: Vec<Dispatch>,
    /// Bytes of the history (θ, m′, v′ of every step) and the sweep's scratch.
    pub(super) bytes: u64,
}

/// The tangent tensors of the second-order support program and the sweep's adjoints, all
/// `[tasks × 1 × P]` but the logits' (`[tasks × batch × out]`) and the meta-gradient's.
pub(super) struct SweepScratch {
    pub(super) g_bar: GpuTensor,
    pub(super) logits_dot: GpuTensor,
    pub(super) dlogits_dot: GpuTensor,
    pub(super) dtask_dot: GpuTensor,
    pub(super) dmeta_dot: GpuTensor,
    pub(super) theta_bar: GpuTensor,
    pub(super) m_bar: GpuTensor,
    pub(super) v_bar: GpuTensor,
    /// A student with fixed features: where their mixed term collects.
    pub(super) features: Option<FeatureScratch>,
}

/// The fixed features' part of the sweep: each step's tangent of ∂L/∂features (`dfeat_dot`,
/// `[tasks × batch × dim]`) is added onto the support rows it came from (`feat_bar`,
/// `[tasks × support × dim]`); at the end ONE backward of the feature map turns `feat_bar` into
/// the feature map's meta-gradient (`dbody`, meta-sized), added to the meta-gradient.
pub(super) struct FeatureScratch {
    pub(super) dfeat_dot: GpuTensor,
    pub(super) feat_bar: GpuTensor,
    pub(super) dbody: GpuTensor,
}

impl SweepScratch {
    /// Scratch for `(tasks, batch, out, P)`, `m` meta parameters and, for fixed features,
    /// `(support rows, feature dim)`.
    pub(super) fn new(
        gpu: &Gpu,
        (tasks, batch, out, p): (usize, usize, usize, usize),
        m: usize,
        feature_rows: Option<(usize, usize)>,
    ) -> Result<SweepScratch> {
        let task = || gpu.zeros(tasks, 1, p);
        let features = match feature_rows {
            Some((rows, dim)) => Some(FeatureScratch {
                dfeat_dot: gpu.zeros(tasks, batch, dim)?,
                feat_bar: gpu.zeros(tasks, rows, dim)?,
                dbody: gpu.zeros(1, 1, m)?,
            }),
            None => None,
        };
        Ok(SweepScratch {
            g_bar: task()?,
            logits_dot: gpu.zeros(tasks, batch, out)?,
            dlogits_dot: gpu.zeros(tasks, batch, out)?,
            dtask_dot: task()?,
            dmeta_dot: gpu.zeros(1, 1, m)?,
            theta_bar: task()?,
            m_bar: task()?,
            v_bar: task()?,
            features,
        })
    }

    /// The support program's tangents: the direction is ḡ, what the AdamW adjoint writes.
    pub(super) fn buffers(&self) -> TangentBuffers<'_> {
        TangentBuffers {
            task_dot: &self.g_bar,
            logits_dot: &self.logits_dot,
            dlogits_dot: &self.dlogits_dot,
            dtask_dot: &self.dtask_dot,
            dmeta_dot: &self.dmeta_dot,
        }
    }

    pub(super) fn bytes(&self) -> u64 {
        let t = [
            &self.g_bar,
            &self.logits_dot,
            &self.dlogits_dot,
            &self.dtask_dot,
            &self.dmeta_dot,
            &self.theta_bar,
            &self.m_bar,
            &self.v_bar,
        ];
        let f = self.features.iter();
        let f = f.flat_map(|f| [&f.dfeat_dot, &f.feat_bar, &f.dbody]);
        t.into_iter().chain(f).map(|x| 4 * x.len() as u64).sum()
    }
}

/// The train episode's pieces the reverse sweep is built on.
pub(super) struct SweepParts<'a> {
    pub(super) layout: &'a ParamLayout,
    pub(super) task: &'a GpuTensor,
    pub(super) dtask: &'a GpuTensor,
    pub(super) dmeta: &'a GpuTensor,
    pub(super) logits: &'a GpuTensor,
    pub(super) targets: &'a GpuTensor,
    pub(super) inner_opt: &'a AdamW,
    pub(super) tangent_forward: Vec<Dispatch>,
    pub(super) tangent_backward: Vec<Dispatch>,
    /// Fixed features: the feature map's backward from the scratch's `feat_bar` into `dbody`.
    pub(super) feature_backward: Option<Vec<Dispatch>>,
    /// Whether the inner steps draw minibatches (then the episode scatters each step's
    /// feature cotangent; on the full batch the sweep adds it).
    pub(super) minibatched: bool,
}

impl ReverseSweep {
    pub(super) fn new(
        gpu: &Gpu,
        sc: SweepScratch,
        parts: SweepParts<'_>,
        steps: usize,
    ) -> Result<Self> {
        let SweepParts {
            layout,
            task,
            dtask,
            dmeta,
            logits,
            targets,
            inner_opt,
            tangent_forward,
            tangent_backward,
            feature_backward,
            minibatched,
        } = parts;
        let (tasks, p) = (task.batch(), layout.task_len());
        let mut sw = ReverseSweep {
            save_theta: Vec::new(),
            save_moments: Vec::new(),
            restore: Vec::new(),
            start: vec![
                copy(gpu, dtask, &sc.theta_bar)?,
                fill(gpu, &sc.m_bar, 0.0)?,
                fill(gpu, &sc.v_bar, 0.0)?,
            ],
            vjp: Vec::new(),
            hvp: tangent_forward,
            finish: add_init_grads(gpu, layout, &sc.theta_bar, dmeta, 1.0)?,
            bytes: sc.bytes(),
        };
        for t in 1..=steps {
            let (theta, m, v) = (
                gpu.zeros(tasks, 1, p)?,
                gpu.zeros(tasks, 1, p)?,
                gpu.zeros(tasks, 1, p)?,
            );
            sw.bytes += 3 * 4 * (tasks * p) as u64;
            sw.save_theta.push(copy(gpu, task, &theta)?);
            sw.save_moments.push([
                copy(gpu, &inner_opt.m().clone(), &m)?,
                copy(gpu, &inner_opt.v().clone(), &v)?,
            ]);
            sw.restore.push(copy(gpu, &theta, task)?);
            let io = AdamWVjpIo {
                g: dtask,
                m_new: &m,
                v_new: &v,
                theta_bar: &sc.theta_bar,
                m_bar: &sc.m_bar,
                v_bar: &sc.v_bar,
                g_bar: &sc.g_bar,
            };
            let step = u32::try_from(t).map_err(|_| arg_err("meta", "too many inner steps"))?;
            sw.vjp.push(inner_opt.vjp(gpu, step, &io)?);
        }
        // The inner loss of each task has grad_scale 1 (as in the inner loop).
        sw.hvp.push(kl_tangent(
            gpu,
            logits,
            targets,
            &sc.logits_dot,
            &sc.dlogits_dot,
            1.0,
        )?);
        sw.hvp.extend(tangent_backward);
        sw.hvp.push(axpy(gpu, 1.0, &sc.dtask_dot, &sc.theta_bar)?);
        match (&sc.features, feature_backward) {
            // The mixed term reaches the feature map only through the features: collect their
            // cotangent over the steps (on minibatches the episode scatters it per step), then
            // one backward at the end. The rest of the student has no meta-parameters but the
            // initial values, whose meta-gradient is θ̄₀ below.
            (Some(fs), Some(backward)) => {
                sw.start.push(fill(gpu, &fs.feat_bar, 0.0)?);
                if !minibatched {
                    sw.hvp.push(axpy(gpu, 1.0, &fs.dfeat_dot, &fs.feat_bar)?);
                }
                sw.finish.extend(backward);
                sw.finish.push(axpy(gpu, 1.0, &fs.dbody, dmeta)?);
            }
            _ => sw.hvp.push(axpy(gpu, 1.0, &sc.dmeta_dot, dmeta)?),
        }
        Ok(sw)
    }
}
