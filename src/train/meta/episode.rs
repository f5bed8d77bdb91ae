//! One episode of the meta-learning loop for a fixed number of tasks: teacher data, task
//! parameters fresh from their initial values, the inner AdamW loop (on inputs, or on fixed
//! features), the query pass and, for the train episode at second order, the reverse sweep.

use crate::error::{arg_err, shape_err, Result};
use crate::gpu::{Dispatch, Gpu, GpuTensor, Step};
use crate::models::gpu::{GpuStudent, StudentBuffers, StudentProgram};
use crate::models::{Init, ParamLayout};
use crate::ops::adamw::{AdamW, AdamWConfig};
use crate::ops::elementwise::{copy, fill};
use crate::ops::gather::{gather_rows, gather_rows_cpu, scatter_add_rows, RngGather};
use crate::ops::loss::{accuracy, kl_divergence};
use crate::ops::reduce::sum_batch;
use crate::ops::rng::RngKey;
use crate::tasks::teacher::{
    TeacherForward, TeacherTargets, TeacherWeightsGpu, STATS_INPUTS, TARGET_TEMPERATURE,
};
use crate::train::episode_twin::MetaGradient;

use super::sweep::{ReverseSweep, SweepParts, SweepScratch};
use super::MetaConfig;

/// Everything one meta-batch size needs: teacher data, task parameters, programs, inner loop.
/// The train episode also produces the meta-gradient; evaluation episodes only adapt and score.
pub(super) struct Episode {
    pub(super) tasks: usize,
    pub(super) teacher: TeacherForward,
    pub(super) targets: TeacherTargets,
    pub(super) task: GpuTensor,
    pub(super) loss: GpuTensor,
    pub(super) acc: GpuTensor,
    pub(super) support_loss: GpuTensor,
    pub(super) init: Vec<Dispatch>,
    /// A student with fixed features: their forward on the support inputs, once per episode.
    pub(super) features: Vec<Dispatch>,
    pub(super) inner_opt: AdamW,
    pub(super) inner: Vec<Dispatch>,
    /// Per inner step, the gathers of its support minibatch (inputs or features, targets; one
    /// key each step); empty on the full-batch path.
    pub(super) minibatch: Vec<[RngGather; 2]>,
    /// Second order with fixed features on minibatches: per inner step, the scatter of the
    /// features' cotangent back onto the support rows its minibatch drew (the gather's key).
    pub(super) scatter: Vec<RngGather>,
    pub(super) query: Vec<Dispatch>,
    /// The train episode's reverse sweep through the inner loop (second order only).
    pub(super) sweep: Option<ReverseSweep>,
    pub(super) steps_inner: usize,
    pub(super) shots_support: usize,
    pub(super) inner_batch: usize,
    pub(super) seed: u64,
}

impl Episode {
    /// Records an episode of `tasks` tasks. With `dmeta`, the query pass also accumulates the
    /// (first-order) meta-gradient into it; without, the episode only adapts and scores.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new<S: GpuStudent>(
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
    pub(super) fn record(&self, step: &mut Step<'_>) {
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
    pub(super) fn record_gradient(&self, step: &mut Step<'_>, i: usize) {
        if let Some([x, y]) = self.minibatch.get(i) {
            step.run(x);
            step.run(y);
        }
        step.run_all(&self.inner);
    }

    /// Per task, per inner step, the support rows the minibatch gathers of data stream `stream`
    /// draw (their CPU twin on row indices); empty on the full-batch path.
    pub(super) fn minibatch_rows(&self, stream: u64) -> Vec<Vec<Vec<usize>>> {
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
    pub(super) fn set_tasks(&self, gpu: &Gpu, latents: &[f32], stream: u64) -> Result<()> {
        self.teacher.set_latents(gpu, latents)?;
        self.teacher.set_step(gpu, stream)?;
        self.set_minibatch_streams(gpu, stream);
        Ok(())
    }

    /// Gives every inner step's minibatch gathers the stream [`minibatch_stream`]`(stream, i)`
    /// (written before the episode's single submit; no-op on the full-batch path).
    pub(super) fn set_minibatch_streams(&self, gpu: &Gpu, stream: u64) {
        for (i, pair) in self.minibatch.iter().enumerate() {
            for g in pair.iter().chain(self.scatter.get(i)) {
                g.set_stream(gpu, minibatch_stream(stream, i));
            }
        }
    }
}

/// `(1 − lr·wd)^steps` in f32: how θ_S moves with θ₀ when the inner gradients are constants.
pub(super) fn first_order_decay(inner: &AdamWConfig, steps: usize) -> f32 {
    (1.0 - inner.lr * inner.weight_decay).powi(steps as i32)
}

/// For every meta-learned initial value: `dmeta[init] += alpha · Σ_tasks grads[task tensor]`.
pub(super) fn add_init_grads(
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
pub(super) fn minibatch_seed(seed: u64) -> u64 {
    seed ^ 0x6d69_6e69_6261_7463 // "minibatc"
}

/// Stream of inner step `i`'s minibatch in the episode with data stream `stream`: a bijective
/// mix (splitmix64's finaliser) of the episode stream xor the step, so distinct (episode, step)
/// pairs collide only if two mixed streams differ in their low ~20 bits alone (probability
/// ~2⁻⁴⁴ per pair).
pub(super) fn minibatch_stream(stream: u64, i: usize) -> u64 {
    let mut z = stream;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) ^ i as u64
}

/// `[1 × 1 × numel]` view of a named meta tensor.
pub(super) fn meta_view(layout: &ParamLayout, meta: &GpuTensor, name: &str) -> Result<GpuTensor> {
    let r = layout
        .meta_range(name)
        .ok_or_else(|| shape_err("meta", format!("no meta tensor {name}")))?;
    meta.view(meta.offset() + r.start, 1, 1, r.len(), r.len())
}
