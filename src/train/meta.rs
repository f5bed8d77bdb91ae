//! Meta-learning on the GPU (Schug et al. spec §5): every task of a meta-batch is adapted in
//! parallel by an inner AdamW loop on its support set (fresh optimiser state per task), then the
//! query loss at the adapted parameters gives the meta-gradient: second order through the
//! unrolled inner loop (`ReverseSweep`, the paper's algorithm) or first order (metax
//! `first_order = True`: d(adapted)/d(initial) = (1 − lr·wd)^S for the meta-learned initial
//! values). A student with [`crate::models::gpu::FixedFeatures`] (ANIL) adapts on its support
//! set's features, computed once per episode. One command encoder per outer step; the host
//! reads back only the losses and accuracies.

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use std::path::Path;

use crate::checkpoint::{Checkpoint, TensorState};
use crate::error::{arg_err, shape_err, Result};
use crate::gpu::{Dispatch, Gpu, GpuTensor, Step};
use crate::models::gpu::{GpuStudent, StudentBuffers, StudentProgram, TangentBuffers};
use crate::models::{Init, ParamLayout, ParamSpec};
use crate::ops::adamw::{AdamW, AdamWConfig, AdamWVjpIo};
use crate::ops::elementwise::{axpy, copy, fill};
use crate::ops::gather::{gather_rows, gather_rows_cpu, scatter_add_rows, RngGather};
use crate::ops::loss::{accuracy, kl_divergence, kl_tangent};
use crate::ops::reduce::sum_batch;
use crate::ops::rng::{fill_truncated_normal, fill_uniform, RngKey};
use crate::tasks::teacher::{
    TeacherForward, TeacherTargets, TeacherWeightsGpu, STATS_INPUTS, TARGET_TEMPERATURE,
};
use crate::train::episode_twin::MetaGradient;

/// Inner-loop and outer-loop settings of a [`MetaLearner`].
#[derive(Clone, Copy, Debug)]
pub struct MetaConfig {
    /// Run seed (parameter initialisation; the teacher has its own).
    pub seed: u64,
    /// Support samples per task.
    pub shots_support: usize,
    /// Support points per inner step: `shots_support` adapts on the whole support set; any
    /// other count draws a fresh minibatch of that many points per step, with replacement
    /// (spec §5.1).
    pub inner_batch: usize,
    /// Query samples per task.
    pub shots_query: usize,
    /// Inner AdamW steps.
    pub steps_inner: usize,
    /// Inner AdamW (spec §5.1: b1 0.9, b2 0.999, eps 1e-8, eps_root = f32 eps, wd 1e-4).
    pub inner: AdamWConfig,
    /// Outer AdamW with global-norm clipping (spec §5.2).
    pub outer: AdamWConfig,
    /// Whether the meta-gradient flows through the inner loop (`train.meta_gradient`).
    pub meta_gradient: MetaGradient,
}

impl MetaConfig {
    /// The inner optimiser of spec §5.1 with learning rate `lr`.
    pub fn inner_adamw(lr: f32) -> AdamWConfig {
        AdamWConfig {
            lr,
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
            eps_root: f32::EPSILON,
            weight_decay: 1e-4,
            max_grad_norm: 0.0,
        }
    }

    /// The outer optimiser of spec §5.2.
    pub fn outer_adamw(lr: f32, weight_decay: f32, max_grad_norm: f32) -> AdamWConfig {
        AdamWConfig {
            lr,
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
            eps_root: 0.0,
            weight_decay,
            max_grad_norm,
        }
    }
}

/// Losses and accuracies of one episode (mean over its tasks).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpisodeMetrics {
    /// Query KL after adaptation.
    pub loss: f64,
    /// Query accuracy after adaptation.
    pub acc: f64,
    /// Support KL at the last inner step (before its update): how well the inner loop fits.
    pub support_loss: f64,
}

/// One train episode's meta-gradient and the data it saw ([`MetaLearner::episode_gradient`]).
#[derive(Clone, Debug)]
pub struct EpisodeGradient {
    /// Mean query loss.
    pub loss: f64,
    /// ∂(mean query loss)/∂meta, packed like the meta parameters.
    pub dmeta: Vec<f32>,
    /// Every task's inputs `[tasks × (support + query) × input_dim]`, support rows first.
    pub inputs: Vec<f32>,
    /// Their soft targets `[tasks × (support + query) × output_dim]`.
    pub targets: Vec<f32>,
    /// The meta parameters the gradient was taken at.
    pub meta: Vec<f32>,
    /// Per task, per inner step, the support rows its minibatch drew (empty: full batch).
    pub minibatches: Vec<Vec<Vec<usize>>>,
}

/// Everything one meta-batch size needs: teacher data, task parameters, programs, inner loop.
/// The train episode also produces the meta-gradient; evaluation episodes only adapt and score.
struct Episode {
    tasks: usize,
    teacher: TeacherForward,
    targets: TeacherTargets,
    task: GpuTensor,
    loss: GpuTensor,
    acc: GpuTensor,
    support_loss: GpuTensor,
    init: Vec<Dispatch>,
    /// A student with fixed features: their forward on the support inputs, once per episode.
    features: Vec<Dispatch>,
    inner_opt: AdamW,
    inner: Vec<Dispatch>,
    /// Per inner step, the gathers of its support minibatch (inputs or features, targets; one
    /// key each step); empty on the full-batch path.
    minibatch: Vec<[RngGather; 2]>,
    /// Second order with fixed features on minibatches: per inner step, the scatter of the
    /// features' cotangent back onto the support rows its minibatch drew (the gather's key).
    scatter: Vec<RngGather>,
    query: Vec<Dispatch>,
    /// The train episode's reverse sweep through the inner loop (second order only).
    sweep: Option<ReverseSweep>,
    steps_inner: usize,
    shots_support: usize,
    inner_batch: usize,
    seed: u64,
}

/// What the second-order meta-gradient adds to a train episode (spec second-order.md §3–§4):
/// the forward keeps θ_{t−1} and the moments m′_t, v′_t of every inner step; after the query
/// backward, the sweep runs t = S..1: restore θ_{t−1}, replay step t's minibatch and recompute
/// g_t (the same launches, so bitwise the same values), the AdamW adjoint (θ̄ ← (1 − lr·wd)·θ̄,
/// m̄, v̄, ḡ), then ONE forward-over-reverse pass with direction ḡ for θ̄ += H_θθ·ḡ and
/// φ̄ += H_φθ·ḡ; finally φ̄_init += Σ_tasks θ̄₀. Recomputing g_t trades one support
/// forward/backward per step for not storing S gradients: the history holds 3·S·tasks·P floats.
struct ReverseSweep {
    /// Per inner step: copy θ_{t−1} out before the step, m′_t and v′_t after it.
    save_theta: Vec<Dispatch>,
    save_moments: Vec<[Dispatch; 2]>,
    /// Per inner step: copy θ_{t−1} back into the task parameters.
    restore: Vec<Dispatch>,
    /// θ̄_S = ∂L/∂θ_S (the query backward's dtask), m̄ = v̄ = 0.
    start: Vec<Dispatch>,
    /// Per inner step t (index t − 1): the AdamW adjoint of step t.
    vjp: Vec<Dispatch>,
    /// ż, its loss tangent, the tangent backward, and the two accumulations.
    hvp: Vec<Dispatch>,
    /// φ̄_init += Σ_tasks θ̄₀.
    finish: Vec<Dispatch>,
    /// Bytes of the history (θ, m′, v′ of every step) and the sweep's scratch.
    bytes: u64,
}

impl Episode {
    /// Records an episode of `tasks` tasks. With `dmeta`, the query pass also accumulates the
    /// (first-order) meta-gradient into it; without, the episode only adapts and scores.
    #[allow(clippy::too_many_arguments)]
    fn new<S: GpuStudent>(
        gpu: &Gpu,
        student: &S,
        layout: &ParamLayout,
        weights: &TeacherWeightsGpu,
        meta: &GpuTensor,
        dmeta: Option<&GpuTensor>,
        tasks: usize,
        cfg: &MetaConfig,
    ) -> Result<Episode> {
        let (ns, nq) = (cfg.shots_support, cfg.shots_query);
        let n = ns + nq;
        let teacher = TeacherForward::new(gpu, weights, tasks, n)?;
        let targets =
            TeacherTargets::new(gpu, weights, &teacher, STATS_INPUTS, TARGET_TEMPERATURE)?;
        let (din, dout) = (student.input_dim(), student.output_dim());
        // Support rows are the first `ns` samples of every task, query rows the last `nq`.
        let split = |t: &GpuTensor, cols: usize, first: bool| {
            let (off, rows) = if first { (0, ns) } else { (ns * cols, nq) };
            t.view(t.offset() + off, tasks, rows, cols, n * cols)
        };
        let (xs, xq) = (
            split(teacher.inputs(), din, true)?,
            split(teacher.inputs(), din, false)?,
        );
        let (ys, yq) = (
            split(targets.targets(), dout, true)?,
            split(targets.targets(), dout, false)?,
        );
        // A student with fixed features adapts on them: the inner loop reads the support set's
        // features (computed once per episode) instead of its inputs.
        let fixed = student.fixed_features();
        let support_x = xs.clone();
        let (xs, din) = match fixed {
            Some(f) => (gpu.zeros(tasks, ns, f.feature_dim())?, f.feature_dim()),
            None => (xs, din),
        };
        let support_in = xs.clone();
        // Minibatched inner loop: each step first gathers `inner_batch` support points (with
        // replacement) into buffers of their own, which the support program and loss read.
        let ib = cfg.inner_batch;
        let mut minibatch = Vec::new();
        let (xs, ys) = if ib == ns {
            (xs, ys)
        } else {
            let (xb, yb) = (gpu.zeros(tasks, ib, din)?, gpu.zeros(tasks, ib, dout)?);
            for _ in 0..cfg.steps_inner {
                // The stream is set per episode by `set_minibatch_streams`.
                let key = RngKey::new(minibatch_seed(cfg.seed), 0);
                minibatch.push([
                    gather_rows(gpu, &xs, &xb, key)?,
                    gather_rows(gpu, &ys, &yb, key)?,
                ]);
            }
            (xb, yb)
        };
        let p = layout.task_len();
        let task = gpu.zeros(tasks, 1, p)?;
        let dtask = gpu.zeros(tasks, 1, p)?;
        let (logits_s, dlogits_s) = (gpu.zeros(tasks, ib, dout)?, gpu.zeros(tasks, ib, dout)?);
        let (logits_q, dlogits_q) = (gpu.zeros(tasks, nq, dout)?, gpu.zeros(tasks, nq, dout)?);
        let loss = gpu.zeros(tasks, 1, 1)?;
        let acc = gpu.zeros(tasks, 1, 1)?;
        let support_buffers = StudentBuffers {
            meta,
            task: &task,
            x: &xs,
            logits: &logits_s,
            dlogits: &dlogits_s,
            dtask: &dtask,
            dmeta: None,
        };
        let second_order = dmeta.is_some() && cfg.meta_gradient == MetaGradient::SecondOrder;
        // Second order: the support program with its tangent passes (the same forward and
        // backward launches, on kept buffers) and the sweep's scratch.
        let tangents = if second_order {
            let feature_rows = fixed.map(|f| (ns, f.feature_dim()));
            Some(SweepScratch::new(
                gpu,
                (tasks, ib, dout, p),
                layout.meta_len(),
                feature_rows,
            )?)
        } else {
            None
        };
        let support: StudentProgram = match (fixed, &tangents) {
            (Some(f), Some(sc)) => {
                let fs = sc.features.as_ref().expect("feature scratch");
                f.head_program(gpu, &support_buffers, Some((&sc.buffers(), &fs.dfeat_dot)))?
            }
            (Some(f), None) => f.head_program(gpu, &support_buffers, None)?,
            (None, Some(sc)) => student.hvp_program(gpu, &support_buffers, &sc.buffers())?,
            (None, None) => student.program(gpu, &support_buffers)?,
        };
        // The features of the support inputs; second order also builds their backward, which
        // the sweep runs once at the end on the accumulated cotangent.
        let feature_program = match fixed {
            Some(f) => {
                let grad = tangents
                    .as_ref()
                    .and_then(|sc| sc.features.as_ref())
                    .map(|fs| (&fs.feat_bar, &fs.dbody));
                Some(f.feature_program(gpu, meta, &support_x, &support_in, grad)?)
            }
            None => None,
        };
        let (feature_forward, mut feature_backward) =
            feature_program.map(|p| (p.forward, p.backward)).unzip();
        let query: StudentProgram = student.program(
            gpu,
            &StudentBuffers {
                meta,
                task: &task,
                x: &xq,
                logits: &logits_q,
                dlogits: &dlogits_q,
                dtask: &dtask,
                dmeta,
            },
        )?;
        let inner_opt = AdamW::new(gpu, &task, &dtask, cfg.inner)?;

        // Fresh task parameters: copies of their meta-learned initial values, or constants.
        let mut init = Vec::new();
        for spec in &layout.task {
            let range = layout
                .task_range(&spec.name)
                .ok_or_else(|| shape_err("meta", format!("no task tensor {}", spec.name)))?;
            let dst = task.view(range.start, tasks, 1, range.len(), p)?;
            init.push(match &spec.init {
                Init::Meta(name) => {
                    let src = meta_view(layout, meta, name)?;
                    copy(gpu, &src.broadcast(tasks)?, &dst)?
                }
                Init::Zeros => fill(gpu, &dst, 0.0)?,
                Init::Ones => fill(gpu, &dst, 1.0)?,
                other => {
                    return Err(arg_err(
                        "meta",
                        format!("task tensor {} has a random init {other:?}", spec.name),
                    ))
                }
            });
        }

        // Inner loop body: support forward, per-task KL gradient, backward, AdamW on task params.
        let (tangent_forward, tangent_backward) =
            (support.tangent_forward, support.tangent_backward);
        let mut inner = support.forward;
        let loss_s = gpu.zeros(tasks, 1, 1)?;
        inner.push(kl_divergence(
            gpu,
            &logits_s,
            &ys,
            &loss_s,
            Some(&dlogits_s),
            1.0,
        )?);
        inner.extend(support.backward);

        // Query: loss and accuracy; with a meta-gradient, the backward of the mean query loss
        // plus, for every meta-learned initial value, Σ_t ∂L/∂task_t (first order: the adapted
        // parameters move one-for-one with their initial value).
        let mut query_ds = query.forward;
        let scale = 1.0 / tasks as f32;
        let grad = dmeta.map(|_| &dlogits_q);
        query_ds.push(kl_divergence(gpu, &logits_q, &yq, &loss, grad, scale)?);
        query_ds.push(accuracy(gpu, &logits_q, &yq, &acc)?);
        let mut sweep = None;
        let mut scatter = Vec::new();
        if let Some(dmeta) = dmeta {
            query_ds.extend(query.backward);
            match tangents {
                Some(sc) => {
                    let parts = SweepParts {
                        layout,
                        task: &task,
                        dtask: &dtask,
                        dmeta,
                        logits: &logits_s,
                        targets: &ys,
                        inner_opt: &inner_opt,
                        tangent_forward,
                        tangent_backward,
                        feature_backward: feature_backward.take(),
                        minibatched: !minibatch.is_empty(),
                    };
                    // Fixed features on minibatches: each step's cotangent goes back onto the
                    // support rows it drew (the same key as the step's gathers).
                    if let (Some(fs), false) = (&sc.features, minibatch.is_empty()) {
                        for _ in 0..cfg.steps_inner {
                            let key = RngKey::new(minibatch_seed(cfg.seed), 0);
                            scatter.push(scatter_add_rows(gpu, &fs.dfeat_dot, &fs.feat_bar, key)?);
                        }
                    }
                    sweep = Some(ReverseSweep::new(gpu, sc, parts, cfg.steps_inner)?);
                }
                None => {
                    // First order (metax `first_order = True`): θ_S moves with θ₀ only through
                    // the decoupled weight decay, ∂θ_S/∂θ₀ = (1 − lr·wd)^S.
                    let decay = first_order_decay(&cfg.inner, cfg.steps_inner);
                    query_ds.extend(add_init_grads(gpu, layout, &dtask, dmeta, decay)?);
                }
            }
        }
        Ok(Episode {
            tasks,
            teacher,
            targets,
            task,
            loss,
            acc,
            support_loss: loss_s,
            init,
            features: feature_forward.unwrap_or_default(),
            inner_opt,
            inner,
            minibatch,
            scatter,
            query: query_ds,
            sweep,
            steps_inner: cfg.steps_inner,
            shots_support: ns,
            inner_batch: ib,
            seed: cfg.seed,
        })
    }

    /// Records data generation, adaptation and the query pass (and, second order, the reverse
    /// sweep through the inner loop).
    fn record(&self, step: &mut Step<'_>) {
        self.teacher.record(step);
        self.targets.record(step);
        step.run_all(&self.features);
        step.run_all(&self.init);
        self.inner_opt.record_reset(step);
        for i in 0..self.steps_inner {
            self.record_gradient(step, i);
            if let Some(sw) = &self.sweep {
                step.run(&sw.save_theta[i]);
            }
            self.inner_opt.record_step(step);
            if let Some(sw) = &self.sweep {
                step.run_all(&sw.save_moments[i]);
            }
        }
        step.run_all(&self.query);
        if let Some(sw) = &self.sweep {
            step.run_all(&sw.start);
            for i in (0..self.steps_inner).rev() {
                step.run(&sw.restore[i]);
                self.record_gradient(step, i);
                step.run(&sw.vjp[i]);
                step.run_all(&sw.hvp);
                if let Some(s) = self.scatter.get(i) {
                    step.run(s);
                }
            }
            step.run_all(&sw.finish);
        }
    }

    /// Inner step `i`'s minibatch (if any) and support gradient at the current task parameters.
    fn record_gradient(&self, step: &mut Step<'_>, i: usize) {
        if let Some([x, y]) = self.minibatch.get(i) {
            step.run(x);
            step.run(y);
        }
        step.run_all(&self.inner);
    }

    /// Per task, per inner step, the support rows the minibatch gathers of data stream `stream`
    /// draw (their CPU twin on row indices); empty on the full-batch path.
    fn minibatch_rows(&self, stream: u64) -> Vec<Vec<Vec<usize>>> {
        let mut rows = vec![Vec::new(); self.tasks];
        if self.minibatch.is_empty() {
            return rows;
        }
        let index: Vec<usize> = (0..self.tasks)
            .flat_map(|_| 0..self.shots_support)
            .collect();
        for i in 0..self.steps_inner {
            let key = RngKey::new(minibatch_seed(self.seed), minibatch_stream(stream, i));
            let (n, b) = (self.shots_support, self.inner_batch);
            let drawn = gather_rows_cpu(&index, self.tasks, n, 1, b, key);
            for (t, r) in rows.iter_mut().enumerate() {
                r.push(drawn[t * b..(t + 1) * b].to_vec());
            }
        }
        rows
    }

    /// Sets the episode's task latents and data stream.
    fn set_tasks(&self, gpu: &Gpu, latents: &[f32], stream: u64) -> Result<()> {
        self.teacher.set_latents(gpu, latents)?;
        self.teacher.set_step(gpu, stream)?;
        self.set_minibatch_streams(gpu, stream);
        Ok(())
    }

    /// Gives every inner step's minibatch gathers the stream [`minibatch_stream`]`(stream, i)`
    /// (written before the episode's single submit; no-op on the full-batch path).
    fn set_minibatch_streams(&self, gpu: &Gpu, stream: u64) {
        for (i, pair) in self.minibatch.iter().enumerate() {
            for g in pair.iter().chain(self.scatter.get(i)) {
                g.set_stream(gpu, minibatch_stream(stream, i));
            }
        }
    }
}

/// The tangent tensors of the second-order support program and the sweep's adjoints, all
/// `[tasks × 1 × P]` but the logits' (`[tasks × batch × out]`) and the meta-gradient's.
struct SweepScratch {
    g_bar: GpuTensor,
    logits_dot: GpuTensor,
    dlogits_dot: GpuTensor,
    dtask_dot: GpuTensor,
    dmeta_dot: GpuTensor,
    theta_bar: GpuTensor,
    m_bar: GpuTensor,
    v_bar: GpuTensor,
    /// A student with fixed features: where their mixed term collects.
    features: Option<FeatureScratch>,
}

/// The fixed features' part of the sweep: each step's tangent of ∂L/∂features (`dfeat_dot`,
/// `[tasks × batch × dim]`) is added onto the support rows it came from (`feat_bar`,
/// `[tasks × support × dim]`); at the end ONE backward of the feature map turns `feat_bar` into
/// the feature map's meta-gradient (`dbody`, meta-sized), added to the meta-gradient.
struct FeatureScratch {
    dfeat_dot: GpuTensor,
    feat_bar: GpuTensor,
    dbody: GpuTensor,
}

impl SweepScratch {
    /// Scratch for `(tasks, batch, out, P)`, `m` meta parameters and, for fixed features,
    /// `(support rows, feature dim)`.
    fn new(
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
    fn buffers(&self) -> TangentBuffers<'_> {
        TangentBuffers {
            task_dot: &self.g_bar,
            logits_dot: &self.logits_dot,
            dlogits_dot: &self.dlogits_dot,
            dtask_dot: &self.dtask_dot,
            dmeta_dot: &self.dmeta_dot,
        }
    }

    fn bytes(&self) -> u64 {
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
struct SweepParts<'a> {
    layout: &'a ParamLayout,
    task: &'a GpuTensor,
    dtask: &'a GpuTensor,
    dmeta: &'a GpuTensor,
    logits: &'a GpuTensor,
    targets: &'a GpuTensor,
    inner_opt: &'a AdamW,
    tangent_forward: Vec<Dispatch>,
    tangent_backward: Vec<Dispatch>,
    /// Fixed features: the feature map's backward from the scratch's `feat_bar` into `dbody`.
    feature_backward: Option<Vec<Dispatch>>,
    /// Whether the inner steps draw minibatches (then the episode scatters each step's
    /// feature cotangent; on the full batch the sweep adds it).
    minibatched: bool,
}

impl ReverseSweep {
    fn new(gpu: &Gpu, sc: SweepScratch, parts: SweepParts<'_>, steps: usize) -> Result<Self> {
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

/// `(1 − lr·wd)^steps` in f32: how θ_S moves with θ₀ when the inner gradients are constants.
fn first_order_decay(inner: &AdamWConfig, steps: usize) -> f32 {
    (1.0 - inner.lr * inner.weight_decay).powi(steps as i32)
}

/// For every meta-learned initial value: `dmeta[init] += alpha · Σ_tasks grads[task tensor]`.
fn add_init_grads(
    gpu: &Gpu,
    layout: &ParamLayout,
    grads: &GpuTensor,
    dmeta: &GpuTensor,
    alpha: f32,
) -> Result<Vec<Dispatch>> {
    let (tasks, p) = (grads.batch(), layout.task_len());
    let mut out = Vec::new();
    for spec in &layout.task {
        if let Init::Meta(name) = &spec.init {
            let range = layout
                .task_range(&spec.name)
                .ok_or_else(|| shape_err("meta", format!("no task tensor {}", spec.name)))?;
            let src = grads.view(grads.offset() + range.start, tasks, 1, range.len(), p)?;
            let dst = meta_view(layout, dmeta, name)?;
            out.push(sum_batch(gpu, &src, &dst, alpha, 1.0)?);
        }
    }
    Ok(out)
}

/// Philox seed of the inner minibatch draws: the run seed with a tag, so the draws are
/// independent of the meta initialisation (same seed, streams 2⁶² + i).
fn minibatch_seed(seed: u64) -> u64 {
    seed ^ 0x6d69_6e69_6261_7463 // "minibatc"
}

/// Stream of inner step `i`'s minibatch in the episode with data stream `stream`: a bijective
/// mix (splitmix64's finaliser) of the episode stream xor the step, so distinct (episode, step)
/// pairs collide only if two mixed streams differ in their low ~20 bits alone (probability
/// ~2⁻⁴⁴ per pair).
fn minibatch_stream(stream: u64, i: usize) -> u64 {
    let mut z = stream;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) ^ i as u64
}

/// `[1 × 1 × numel]` view of a named meta tensor.
fn meta_view(layout: &ParamLayout, meta: &GpuTensor, name: &str) -> Result<GpuTensor> {
    let r = layout
        .meta_range(name)
        .ok_or_else(|| shape_err("meta", format!("no meta tensor {name}")))?;
    meta.view(meta.offset() + r.start, 1, 1, r.len(), r.len())
}

/// Data streams of the teacher's inputs: the purpose in the top byte keeps the training steps,
/// each evaluation set and repeated evaluations apart (all below the teacher's reserved 2⁶³).
pub fn data_stream(purpose: u8, counter: u64) -> u64 {
    debug_assert!(purpose < 0x80);
    ((purpose as u64) << 56) | (counter & ((1 << 56) - 1))
}

/// A student, its meta parameters and outer optimiser, a training episode and an evaluation
/// episode, sharing one teacher.
pub struct MetaLearner {
    layout: ParamLayout,
    meta: GpuTensor,
    dmeta: GpuTensor,
    best_meta: GpuTensor,
    save_best: Dispatch,
    restore_best: Dispatch,
    outer_opt: AdamW,
    train: Episode,
    eval: Episode,
    zero_dmeta: Dispatch,
    inject_nan: Dispatch,
}

impl MetaLearner {
    /// Builds everything and initialises the meta parameters from the layout's initialisers,
    /// drawn with the engine's RNG keyed by `(cfg.seed, tensor index)`.
    pub fn new<S: GpuStudent>(
        gpu: &Gpu,
        student: &S,
        weights: &TeacherWeightsGpu,
        meta_batch: usize,
        eval_batch: usize,
        cfg: MetaConfig,
    ) -> Result<MetaLearner> {
        if meta_batch == 0
            || eval_batch == 0
            || cfg.shots_support == 0
            || cfg.shots_query == 0
            || cfg.inner_batch == 0
        {
            return Err(arg_err(
                "meta",
                "meta batch, eval batch, shots and inner batch must be positive",
            ));
        }
        let layout = student.param_layout();
        let m = layout.meta_len();
        let meta = gpu.zeros(1, 1, m)?;
        init_meta(gpu, &layout.meta, &meta, cfg.seed)?;
        let dmeta = gpu.zeros(1, 1, m)?;
        let best_meta = gpu.zeros(1, 1, m)?;
        let save_best = copy(gpu, &meta, &best_meta)?;
        let restore_best = copy(gpu, &best_meta, &meta)?;
        let zero_dmeta = fill(gpu, &dmeta, 0.0)?;
        // Fault injection (tests of the non-finite guard): copies a NaN into the meta-gradient.
        let nan = gpu.upload(&[f32::NAN], 1, 1, 1)?;
        let inject_nan = copy(gpu, &nan, &dmeta.view(dmeta.offset(), 1, 1, 1, 1)?)?;
        let outer_opt = AdamW::new(gpu, &meta, &dmeta, cfg.outer)?;
        let train = Episode::new(
            gpu,
            student,
            &layout,
            weights,
            &meta,
            Some(&dmeta),
            meta_batch,
            &cfg,
        )?;
        let eval = Episode::new(
            gpu, student, &layout, weights, &meta, None, eval_batch, &cfg,
        )?;
        Ok(MetaLearner {
            layout,
            meta,
            dmeta,
            best_meta,
            save_best,
            restore_best,
            outer_opt,
            train,
            eval,
            zero_dmeta,
            inject_nan,
        })
    }

    /// One outer step on the given task latents (`meta_batch × L·M`) with data stream `stream`:
    /// adapt, meta-gradient, clipped AdamW (skipped on the GPU if non-finite). Returns the mean
    /// query loss and accuracy before the update.
    pub fn train_step(&self, gpu: &Gpu, latents: &[f32], stream: u64) -> Result<EpisodeMetrics> {
        self.train_step_with(gpu, latents, stream, false)
            .map(|(m, _)| m)
    }

    /// [`MetaLearner::train_step`], optionally with a NaN injected into the meta-gradient (to
    /// test the non-finite guard); also returns the outer optimiser's consecutive-skip count.
    pub fn train_step_with(
        &self,
        gpu: &Gpu,
        latents: &[f32],
        stream: u64,
        inject_nan: bool,
    ) -> Result<(EpisodeMetrics, u32)> {
        self.train.set_tasks(gpu, latents, stream)?;
        let mut step = Step::new(gpu);
        step.run(&self.zero_dmeta);
        self.train.record(&mut step);
        if inject_nan {
            step.run(&self.inject_nan);
        }
        self.outer_opt.record_step(&mut step);
        let (l, a) = (step.read(&self.train.loss)?, step.read(&self.train.acc)?);
        let s = step.read(&self.train.support_loss)?;
        let c = step.read(self.outer_opt.consecutive_skips())?;
        let out = step.finish()?;
        Ok((
            mean_metrics(out.get(l), out.get(a), out.get(s)),
            out.scalar(c) as u32,
        ))
    }

    /// The meta-gradient of one train episode on the given task latents and data stream,
    /// without updating anything: for checking it against the f64 episode twin
    /// ([`crate::train::episode_twin::meta_gradient`]) on the same data, which it returns too.
    pub fn episode_gradient(
        &self,
        gpu: &Gpu,
        latents: &[f32],
        stream: u64,
    ) -> Result<EpisodeGradient> {
        self.train.set_tasks(gpu, latents, stream)?;
        let mut step = Step::new(gpu);
        step.run(&self.zero_dmeta);
        self.train.record(&mut step);
        let slots = [
            step.read(&self.train.loss)?,
            step.read(&self.dmeta)?,
            step.read(self.train.teacher.inputs())?,
            step.read(self.train.targets.targets())?,
            step.read(&self.meta)?,
        ];
        let out = step.finish()?;
        let [loss, dmeta, inputs, targets, meta] = slots.map(|s| out.get(s).to_vec());
        let minibatches = self.train.minibatch_rows(stream);
        Ok(EpisodeGradient {
            minibatches,
            loss: loss.iter().map(|&v| v as f64).sum::<f64>() / loss.len().max(1) as f64,
            dmeta,
            inputs,
            targets,
            meta,
        })
    }

    /// Bytes the second-order reverse sweep holds on the device (its history and scratch; 0 at
    /// first order).
    pub fn sweep_bytes(&self) -> u64 {
        self.train.sweep.as_ref().map_or(0, |s| s.bytes)
    }

    /// Every tensor that a checkpoint must hold to continue exactly: meta parameters, the
    /// best-by-valid copy, and the outer optimiser's state and counters (as `outer.*`).
    pub fn state(&self) -> TensorState<'_> {
        TensorState::new()
            .with("meta", &self.meta)
            .with("best_meta", &self.best_meta)
            .nest("outer", self.outer_opt.state())
    }

    /// Restores [`MetaLearner::state`] from a checkpoint read from `path`.
    pub fn load_state(&self, gpu: &Gpu, ck: &Checkpoint, path: &Path) -> Result<()> {
        self.state().load_from(gpu, ck, path)
    }

    /// Skipped outer steps so far (non-finite meta-gradients), read from the GPU.
    pub fn skipped_steps(&self, gpu: &Gpu) -> Result<f64> {
        Ok(gpu
            .read(self.outer_opt.skipped())?
            .first()
            .copied()
            .unwrap_or(0.0) as f64)
    }

    /// Adapts `latents.len() / (L·M)` tasks (a multiple of nothing: the last chunk is padded by
    /// repeating tasks, whose results are dropped) and returns the mean query metrics and, when
    /// asked, every task's adapted parameters (`tasks × task_len`, for module decoding).
    pub fn evaluate(
        &self,
        gpu: &Gpu,
        latents: &[f32],
        latent_len: usize,
        stream: u64,
        keep_params: bool,
    ) -> Result<(EpisodeMetrics, Vec<f32>)> {
        let n_tasks = latents.len() / latent_len.max(1);
        if n_tasks == 0 {
            return Err(arg_err("evaluate", "no tasks to evaluate"));
        }
        let b = self.eval.tasks;
        let (mut loss_sum, mut acc_sum, mut support_sum) = (0.0, 0.0, 0.0);
        let mut params = Vec::new();
        for (chunk_i, start) in (0..n_tasks).step_by(b).enumerate() {
            let used = b.min(n_tasks - start);
            let mut chunk: Vec<f32> =
                latents[start * latent_len..(start + used) * latent_len].to_vec();
            while chunk.len() < b * latent_len {
                let fill_from = chunk[..latent_len].to_vec();
                chunk.extend(fill_from);
            }
            self.eval
                .set_tasks(gpu, &chunk, stream.wrapping_add(chunk_i as u64))?;
            let mut step = Step::new(gpu);
            self.eval.record(&mut step);
            let (l, a) = (step.read(&self.eval.loss)?, step.read(&self.eval.acc)?);
            let s = step.read(&self.eval.support_loss)?;
            let p = if keep_params {
                Some(step.read(&self.eval.task)?)
            } else {
                None
            };
            let out = step.finish()?;
            loss_sum += out.get(l)[..used].iter().map(|&v| v as f64).sum::<f64>();
            acc_sum += out.get(a)[..used].iter().map(|&v| v as f64).sum::<f64>();
            support_sum += out.get(s)[..used].iter().map(|&v| v as f64).sum::<f64>();
            if let Some(p) = p {
                params.extend_from_slice(&out.get(p)[..used * self.layout.task_len()]);
            }
        }
        Ok((
            EpisodeMetrics {
                loss: loss_sum / n_tasks as f64,
                acc: acc_sum / n_tasks as f64,
                support_loss: support_sum / n_tasks as f64,
            },
            params,
        ))
    }

    /// Copies the current meta parameters into the best-so-far slot.
    pub fn save_best(&self, gpu: &Gpu) -> Result<()> {
        gpu.run(&[&self.save_best])
    }

    /// Replaces the current meta parameters by the best-so-far slot.
    pub fn restore_best(&self, gpu: &Gpu) -> Result<()> {
        gpu.run(&[&self.restore_best])
    }

    /// The packed meta parameters.
    pub fn meta(&self) -> &GpuTensor {
        &self.meta
    }
    /// The best-by-valid meta parameters (as last saved).
    pub fn best_meta(&self) -> &GpuTensor {
        &self.best_meta
    }
    /// The student's parameter layout.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }
    /// Outer optimiser (its skip counters, step count).
    pub fn outer_optimizer(&self) -> &AdamW {
        &self.outer_opt
    }
}

fn mean_metrics(loss: &[f32], acc: &[f32], support: &[f32]) -> EpisodeMetrics {
    let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64;
    EpisodeMetrics {
        loss: mean(loss),
        acc: mean(acc),
        support_loss: mean(support),
    }
}

/// Draws every meta tensor from its initialiser, keyed by `(seed, index in the layout)`.
fn init_meta(gpu: &Gpu, specs: &[ParamSpec], meta: &GpuTensor, seed: u64) -> Result<()> {
    let mut off = 0;
    let mut ds = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let t = meta.view(meta.offset() + off, 1, 1, s.numel(), s.numel())?;
        off += s.numel();
        let key = RngKey::new(seed, (1 << 62) + i as u64);
        ds.push(match s.init {
            Init::Zeros => fill(gpu, &t, 0.0)?,
            Init::Ones => fill(gpu, &t, 1.0)?,
            Init::TruncatedNormal { std } => {
                fill_truncated_normal(gpu, &t, key, 0.0, std as f32)?.into_dispatch()
            }
            Init::Uniform { limit } => {
                fill_uniform(gpu, &t, key, -limit as f32, limit as f32)?.into_dispatch()
            }
            Init::Meta(ref name) => {
                return Err(arg_err(
                    "init",
                    format!("meta tensor {} cannot copy meta tensor {name}", s.name),
                ))
            }
        });
    }
    let refs: Vec<&Dispatch> = ds.iter().collect();
    gpu.run(&refs)
}

/// Samples `count` task latents with replacement from `pool` (each `latent_len` long), seeded.
pub fn sample_latents(pool: &[Vec<f32>], count: usize, seed: u64, counter: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ counter.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut out = Vec::with_capacity(count * pool.first().map_or(0, Vec::len));
    for _ in 0..count {
        out.extend_from_slice(&pool[rng.random_range(0..pool.len())]);
    }
    out
}
