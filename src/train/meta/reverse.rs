//! The second-order reverse sweep through an episode's inner loop (spec second-order.md §3–§4):
//! the θ, m′, v′ history, the AdamW adjoint and one forward-over-reverse pass per inner step.

use crate::error::{arg_err, Result};
use crate::gpu::{Device, Dispatch, Tensor};
use crate::ops::adamw::{AdamW, AdamWVjpIo};
use crate::ops::elementwise::{axpy, copy, fill};
use crate::students::gpu::TangentBuffers;
use crate::students::ParamLayout;
use crate::train::task_source::TaskLoss;

use super::init_grads::add_init_grads;

/// What the second-order meta-gradient adds to a train episode (spec second-order.md §3–§4):
/// the forward keeps θ_{t−1} and the moments m′_t, v′_t of every inner step; after the query
/// backward, the sweep runs t = S..1: restore θ_{t−1}, get step t's activations back, the AdamW
/// adjoint (θ̄ ← (1 − lr·wd)·θ̄, m̄, v̄, ḡ), then ONE forward-over-reverse pass with direction ḡ
/// for θ̄ += H_θθ·ḡ and φ̄ += H_φθ·ḡ; finally φ̄_init += Σ_tasks θ̄₀. The activations come back
/// one of two ways ([`crate::train::meta::SweepMode`]):
/// - recompute: replay step t's minibatch and support pass (the same launches, so bitwise the
///   same values), one program for every step; the history holds 3·S·tasks·P floats;
/// - store: every step has its own support program, whose kept activations (and g_t) survive
///   until the sweep; no replay, S times the program's memory.
pub(super) struct ReversePass {
    /// Per inner step: copy θ_{t−1} out before the step, m′_t and v′_t after it.
    pub(super) save_theta: Vec<Dispatch>,
    pub(super) save_moments: Vec<[Dispatch; 2]>,
    /// Store mode: per inner step, copy g_t out after the step's backward (empty: recompute).
    pub(super) save_grad: Vec<Dispatch>,
    /// Per inner step: copy θ_{t−1} back into the task parameters.
    pub(super) restore: Vec<Dispatch>,
    /// θ̄_S = ∂L/∂θ_S (the query backward's dtask), m̄ = v̄ = 0.
    pub(super) start: Vec<Dispatch>,
    /// Per inner step t (index t − 1): the AdamW adjoint of step t.
    pub(super) vjp: Vec<Dispatch>,
    /// Per support program (one, or one per step in store mode): ż, its loss tangent, the
    /// tangent backward, and the accumulations.
    pub(super) hvp: Vec<Vec<Dispatch>>,
    /// φ̄_init += Σ_tasks θ̄₀.
    pub(super) finish: Vec<Dispatch>,
    /// Bytes of the history (θ, m′, v′ of every step; g_t when stored) and the sweep's scratch.
    pub(super) bytes: u64,
}

impl ReversePass {
    /// Whether step t's activations are stored (else the episode recomputes them).
    pub(super) fn stores(&self) -> bool {
        !self.save_grad.is_empty()
    }

    /// The forward-over-reverse launches of inner step `i`.
    pub(super) fn hvp(&self, i: usize) -> &[Dispatch] {
        &self.hvp[i.min(self.hvp.len() - 1)]
    }
}

/// The tangent tensors of the second-order support program and the sweep's adjoints, all
/// `[tasks × 1 × P]` but the logits' (`[tasks × batch × out]`) and the meta-gradient's.
pub(super) struct ReverseScratch {
    pub(super) g_bar: Tensor,
    pub(super) logits_dot: Tensor,
    pub(super) dlogits_dot: Tensor,
    pub(super) dtask_dot: Tensor,
    pub(super) dmeta_dot: Tensor,
    pub(super) theta_bar: Tensor,
    pub(super) m_bar: Tensor,
    pub(super) v_bar: Tensor,
    /// A student with fixed features: where their mixed term collects.
    pub(super) features: Option<FeatureScratch>,
}

/// The fixed features' part of the sweep: each step's tangent of ∂L/∂features (`dfeat_dot`,
/// `[tasks × batch × dim]`) is added onto the support rows it came from (`feat_bar`,
/// `[tasks × support × dim]`); at the end ONE backward of the feature map turns `feat_bar` into
/// the feature map's meta-gradient (`dbody`, meta-sized), added to the meta-gradient.
pub(super) struct FeatureScratch {
    pub(super) dfeat_dot: Tensor,
    pub(super) feat_bar: Tensor,
    pub(super) dbody: Tensor,
}

impl ReverseScratch {
    /// Scratch for `(tasks, batch, out, P)`, `m` meta parameters and, for fixed features,
    /// `(support rows, feature dim)`.
    pub(super) fn new(
        gpu: &Device,
        (tasks, batch, out, p): (usize, usize, usize, usize),
        m: usize,
        feature_rows: Option<(usize, usize)>,
    ) -> Result<ReverseScratch> {
        let task = || gpu.zeros(tasks, 1, p);
        let features = match feature_rows {
            Some((rows, dim)) => Some(FeatureScratch {
                dfeat_dot: gpu.zeros(tasks, batch, dim)?,
                feat_bar: gpu.zeros(tasks, rows, dim)?,
                dbody: gpu.zeros(1, 1, m)?,
            }),
            None => None,
        };
        Ok(ReverseScratch {
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

/// One support program's part in the sweep: its logits and targets (for the loss tangent) and
/// its tangent passes.
pub(super) struct ReverseProgram<'a> {
    pub(super) logits: &'a Tensor,
    pub(super) targets: &'a Tensor,
    /// Row weights of a masked loss.
    pub(super) weights: Option<&'a Tensor>,
    pub(super) tangent_forward: Vec<Dispatch>,
    pub(super) tangent_backward: Vec<Dispatch>,
}

/// The train episode's pieces the reverse sweep is built on.
pub(super) struct ReverseParts<'a> {
    pub(super) layout: &'a ParamLayout,
    pub(super) task: &'a Tensor,
    pub(super) dtask: &'a Tensor,
    pub(super) dmeta: &'a Tensor,
    pub(super) inner_opt: &'a AdamW,
    /// One support program for every step (recompute), or one per step (store).
    pub(super) programs: Vec<ReverseProgram<'a>>,
    /// Fixed features: the feature map's backward from the scratch's `feat_bar` into `dbody`.
    pub(super) feature_backward: Option<Vec<Dispatch>>,
    /// Whether the inner steps draw minibatches (then the episode scatters each step's
    /// feature cotangent; on the full batch the sweep adds it).
    pub(super) minibatched: bool,
    /// The inner loss, whose gradient's tangent each step needs.
    pub(super) loss: TaskLoss,
}

impl ReversePass {
    pub(super) fn new(
        gpu: &Device,
        sc: ReverseScratch,
        parts: ReverseParts<'_>,
        steps: usize,
    ) -> Result<Self> {
        let ReverseParts {
            layout,
            task,
            dtask,
            dmeta,
            inner_opt,
            programs,
            feature_backward,
            minibatched,
            loss,
        } = parts;
        let (tasks, p) = (task.batch(), layout.task_len());
        let store = programs.len() > 1;
        let mut sw = ReversePass {
            save_theta: Vec::new(),
            save_moments: Vec::new(),
            save_grad: Vec::new(),
            restore: Vec::new(),
            start: vec![
                copy(gpu, dtask, &sc.theta_bar)?,
                fill(gpu, &sc.m_bar, 0.0)?,
                fill(gpu, &sc.v_bar, 0.0)?,
            ],
            vjp: Vec::new(),
            hvp: Vec::new(),
            finish: add_init_grads(gpu, layout, &sc.theta_bar, dmeta, 1.0)?,
            bytes: sc.bytes(),
        };
        for t in 1..=steps {
            let history = 3 + usize::from(store);
            let (theta, m, v) = (
                gpu.zeros(tasks, 1, p)?,
                gpu.zeros(tasks, 1, p)?,
                gpu.zeros(tasks, 1, p)?,
            );
            sw.bytes += (history * 4 * tasks * p) as u64;
            sw.save_theta.push(copy(gpu, task, &theta)?);
            sw.save_moments.push([
                copy(gpu, &inner_opt.m().clone(), &m)?,
                copy(gpu, &inner_opt.v().clone(), &v)?,
            ]);
            sw.restore.push(copy(gpu, &theta, task)?);
            // Recompute: the replayed step leaves g_t in dtask; store: its saved copy.
            let g = if store {
                let g = gpu.zeros(tasks, 1, p)?;
                sw.save_grad.push(copy(gpu, dtask, &g)?);
                g
            } else {
                dtask.clone()
            };
            let io = AdamWVjpIo {
                g: &g,
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
        // The mixed term of a student with fixed features reaches the feature map only through
        // the features: collect their cotangent over the steps (on minibatches the episode
        // scatters it per step), then one backward at the end. The rest of the student has no
        // meta-parameters but the initial values, whose meta-gradient is θ̄₀.
        let features = match (&sc.features, feature_backward) {
            (Some(fs), Some(backward)) => {
                sw.start.push(fill(gpu, &fs.feat_bar, 0.0)?);
                sw.finish.extend(backward);
                sw.finish.push(axpy(gpu, 1.0, &fs.dbody, dmeta)?);
                Some(fs)
            }
            _ => None,
        };
        for prog in programs {
            // The inner loss of each task has grad_scale 1 (as in the inner loop).
            let mut hvp = prog.tangent_forward;
            hvp.push(loss.tangent(
                gpu,
                (prog.logits, prog.targets, prog.weights),
                &sc.logits_dot,
                &sc.dlogits_dot,
                1.0,
            )?);
            hvp.extend(prog.tangent_backward);
            hvp.push(axpy(gpu, 1.0, &sc.dtask_dot, &sc.theta_bar)?);
            match features {
                Some(fs) if !minibatched => hvp.push(axpy(gpu, 1.0, &fs.dfeat_dot, &fs.feat_bar)?),
                Some(_) => {}
                None => hvp.push(axpy(gpu, 1.0, &sc.dmeta_dot, dmeta)?),
            }
            sw.hvp.push(hvp);
        }
        Ok(sw)
    }
}
