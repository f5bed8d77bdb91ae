//! Building an [`Episode`]: [`Episode::new`] as the list of its steps, each a method of
//! [`Builder`] that allocates the step's tensors and records its dispatches.

use crate::error::{arg_err, shape_err, Result};
use crate::gpu::{Device, Dispatch, Tensor};
use crate::ops::adamw::AdamW;
use crate::ops::elementwise::{copy, fill};
use crate::ops::gather::{gather_rows, scatter_add_rows, RngGather};
use crate::ops::rng::RngKey;
use crate::students::gpu::{GpuStudent, StudentBuffers, StudentProgram};
use crate::students::{Init, ParamLayout};
use crate::train::episode_twin::MetaGradient;
use crate::train::task_source::{TaskBatch, TaskLoss, TaskSource};

use super::{first_order_decay, minibatch_seed, Episode, SupportIo, SupportStep};
use crate::train::meta::init_grads::{add_init_grads, meta_view};
use crate::train::meta::reverse::{ReverseParts, ReversePass, ReverseScratch};
use crate::train::meta::{MetaConfig, SweepMode};

impl Episode {
    /// Records an episode of `tasks` tasks. With `dmeta`, the query pass also accumulates the
    /// (first-order) meta-gradient into it; without, the episode only adapts and scores.
    ///
    /// The steps keep the order they had inline: each allocates from the device's buffer pool
    /// (which hands freed buffers back last in, first out), so reordering them would change
    /// which buffers the episode gets. Every tensor a step returns lives until `new` returns, as
    /// its local did, so no buffer goes back to the pool earlier than before.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::train::meta) fn new<S: GpuStudent>(
        gpu: &Device,
        student: &S,
        layout: &ParamLayout,
        source: &dyn TaskSource,
        meta: &Tensor,
        dmeta: Option<&Tensor>,
        tasks: usize,
        cfg: &MetaConfig,
    ) -> Result<Episode> {
        let rpu = source.rows_per_unit();
        let b = Builder {
            gpu,
            student,
            layout,
            meta,
            dmeta,
            tasks,
            cfg,
            loss: source.loss(),
            ns: cfg.shots_support * rpu,
            nq: cfg.shots_query * rpu,
        };
        if student.input_dim() != source.input_dim() || student.output_dim() != source.output_dim()
        {
            return Err(shape_err(
                "meta",
                format!(
                    "the student maps {} inputs to {} outputs, its tasks have {} and {}",
                    student.input_dim(),
                    student.output_dim(),
                    source.input_dim(),
                    source.output_dim()
                ),
            ));
        }
        if b.inner_batch() == 0 {
            return Err(arg_err("meta", "the inner batch must be positive"));
        }
        let data = b.source_data(source)?;
        let bufs = b.allocate()?;
        let tangents = b.sweep_scratch()?;
        let mut inner = b.inner_loop(&data, &bufs, tangents.as_ref())?;
        let query = b.query_program(&data, &bufs)?;
        let inner_opt = AdamW::new(gpu, &bufs.task, &bufs.dtask, cfg.inner)?;
        let init = b.init_task_params(&bufs.task)?;
        let mut query_ds = b.score_query(query.forward, &data, &bufs)?;
        let (sweep, scatter) = match dmeta {
            Some(dmeta) => {
                // With a meta-gradient, the backward of the mean query loss follows the scores.
                query_ds.extend(query.backward);
                b.meta_gradient(
                    dmeta,
                    &mut query_ds,
                    tangents,
                    &mut inner,
                    &inner_opt,
                    &bufs,
                )?
            }
            None => (None, Vec::new()),
        };
        Ok(Episode {
            tasks,
            data: data.batch,
            task: bufs.task,
            loss: bufs.loss,
            acc: bufs.acc,
            keep_support_loss: copy(gpu, &bufs.loss_s, &bufs.support_loss)?,
            support_loss: bufs.support_loss,
            init,
            features: inner.feature_forward.unwrap_or_default(),
            inner_opt,
            steps: inner.steps,
            minibatch: inner.minibatch,
            scatter,
            query: query_ds,
            sweep,
            steps_inner: cfg.steps_inner,
            shots_support: b.ns,
            inner_batch: b.inner_batch(),
            seed: cfg.seed,
        })
    }
}

/// What every step of [`Episode::new`] reads: the device, the student and its meta-parameters
/// (and their gradient, for the train episode), the episode's task count and the config.
struct Builder<'a, S> {
    gpu: &'a Device,
    student: &'a S,
    layout: &'a ParamLayout,
    meta: &'a Tensor,
    dmeta: Option<&'a Tensor>,
    tasks: usize,
    cfg: &'a MetaConfig,
    /// The source's loss.
    loss: TaskLoss,
    /// Support and query rows per task.
    ns: usize,
    nq: usize,
}

/// The episode's data: the source's rows, split into support and query rows.
struct EpisodeData {
    batch: Box<dyn TaskBatch>,
    /// The support inputs.
    support_x: Tensor,
    /// What the inner loop adapts on: the support inputs, or (a student with fixed features)
    /// the buffer their features are written into.
    xs: Tensor,
    ys: Tensor,
    /// Row weights of the support and query rows (a masked loss).
    ws: Option<Tensor>,
    wq: Option<Tensor>,
    xq: Tensor,
    yq: Tensor,
    /// Columns of `xs`.
    din: usize,
}

/// The tensors the episode computes into.
struct EpisodeBuffers {
    task: Tensor,
    dtask: Tensor,
    logits_q: Tensor,
    dlogits_q: Tensor,
    loss: Tensor,
    acc: Tensor,
    /// Every support pass's loss (per task).
    loss_s: Tensor,
    support_loss: Tensor,
}

/// The inner loop's passes, as [`Builder::inner_loop`] builds them.
struct InnerLoop {
    steps: Vec<SupportStep>,
    /// The bytes the support passes beyond the first hold (store mode; else 0).
    stored_bytes: u64,
    minibatch: Vec<Vec<RngGather>>,
    /// A student with fixed features: the forward of their program.
    feature_forward: Option<Vec<Dispatch>>,
    /// The backward of the features' program; the reverse sweep takes it.
    feature_backward: Option<Vec<Dispatch>>,
}

impl<S: GpuStudent> Builder<'_, S> {
    /// Whether this episode builds the second-order meta-gradient (only the train episode can).
    fn second_order(&self) -> bool {
        self.dmeta.is_some() && self.cfg.meta_gradient == MetaGradient::SecondOrder
    }

    /// Support rows per inner step: all of them (the full batch), or a minibatch.
    fn inner_batch(&self) -> usize {
        self.cfg.inner_batch
    }

    /// The source's program for the episode's rows, and their views as support and query rows.
    fn source_data(&self, source: &dyn TaskSource) -> Result<EpisodeData> {
        let (gpu, student, tasks) = (self.gpu, self.student, self.tasks);
        let (ns, nq) = (self.ns, self.nq);
        let n = ns + nq;
        let batch = source.batch(gpu, tasks, self.cfg.shots_support, self.cfg.shots_query)?;
        let (din, dout) = (student.input_dim(), student.output_dim());
        // Support rows are the first `ns` samples of every task, query rows the last `nq`.
        let split = |t: &Tensor, cols: usize, first: bool| {
            let (off, rows) = if first { (0, ns) } else { (ns * cols, nq) };
            t.view(t.offset() + off, tasks, rows, cols, n * cols)
        };
        let (xs, xq) = (
            split(batch.inputs(), din, true)?,
            split(batch.inputs(), din, false)?,
        );
        let (ys, yq) = (
            split(batch.targets(), dout, true)?,
            split(batch.targets(), dout, false)?,
        );
        let (ws, wq) = match (self.loss.weighted(), batch.weights()) {
            (false, _) => (None, None),
            (true, Some(w)) => (Some(split(w, 1, true)?), Some(split(w, 1, false)?)),
            (true, None) => {
                return Err(arg_err(
                    "meta",
                    "the task source's loss is masked but it gives no row weights",
                ))
            }
        };
        // A student with fixed features adapts on them: the inner loop reads the support set's
        // features (computed once per episode) instead of its inputs.
        let fixed = student.fixed_features();
        let support_x = xs.clone();
        let (xs, din) = match fixed {
            Some(f) => (gpu.zeros(tasks, ns, f.feature_dim())?, f.feature_dim()),
            None => (xs, din),
        };
        Ok(EpisodeData {
            batch,
            support_x,
            xs,
            ys,
            ws,
            wq,
            xq,
            yq,
            din,
        })
    }

    /// Allocates the task parameters and their gradient, the query logits and their gradient,
    /// the scores and the support loss.
    fn allocate(&self) -> Result<EpisodeBuffers> {
        let (gpu, tasks) = (self.gpu, self.tasks);
        let (nq, dout) = (self.nq, self.student.output_dim());
        let p = self.layout.task_len();
        let task = gpu.zeros(tasks, 1, p)?;
        let dtask = gpu.zeros(tasks, 1, p)?;
        let (logits_q, dlogits_q) = (gpu.zeros(tasks, nq, dout)?, gpu.zeros(tasks, nq, dout)?);
        let loss = gpu.zeros(tasks, 1, 1)?;
        let acc = gpu.zeros(tasks, 1, 1)?;
        let (loss_s, support_loss) = (gpu.zeros(tasks, 1, 1)?, gpu.zeros(tasks, 1, 1)?);
        Ok(EpisodeBuffers {
            task,
            dtask,
            logits_q,
            dlogits_q,
            loss,
            acc,
            loss_s,
            support_loss,
        })
    }

    /// Second order: the support program with its tangent passes (the same forward and
    /// backward launches, on kept buffers) and the sweep's scratch.
    fn sweep_scratch(&self) -> Result<Option<ReverseScratch>> {
        let (ns, ib, p) = (self.ns, self.inner_batch(), self.layout.task_len());
        let dout = self.student.output_dim();
        let tangents = if self.second_order() {
            let feature_rows = self.student.fixed_features().map(|f| (ns, f.feature_dim()));
            Some(ReverseScratch::new(
                self.gpu,
                (self.tasks, ib, dout, p),
                self.layout.meta_len(),
                feature_rows,
            )?)
        } else {
            None
        };
        Ok(tangents)
    }

    /// The inner loop's passes: the support passes, their minibatch gathers and the fixed
    /// features' program.
    fn inner_loop(
        &self,
        data: &EpisodeData,
        bufs: &EpisodeBuffers,
        tangents: Option<&ReverseScratch>,
    ) -> Result<InnerLoop> {
        let (steps, stored_bytes) = self.support_steps(data, bufs, tangents)?;
        let minibatch = self.minibatch_gathers(data, &steps)?;
        let (feature_forward, feature_backward) = self
            .feature_program(data, tangents)?
            .map(|p| (p.forward, p.backward))
            .unzip();
        Ok(InnerLoop {
            steps,
            stored_bytes,
            minibatch,
            feature_forward,
            feature_backward,
        })
    }

    /// The support passes (one, or in store mode one per inner step) and the bytes the ones
    /// beyond the first hold. Minibatched, each reads `inner_batch` support points gathered
    /// (with replacement) into buffers of its own; on the full batch, the support set.
    fn support_steps(
        &self,
        data: &EpisodeData,
        bufs: &EpisodeBuffers,
        tangents: Option<&ReverseScratch>,
    ) -> Result<(Vec<SupportStep>, u64)> {
        let (gpu, tasks, cfg) = (self.gpu, self.tasks, self.cfg);
        let (ns, ib, p) = (self.ns, self.inner_batch(), self.layout.task_len());
        let (xs, ys, din, dout) = (&data.xs, &data.ys, data.din, self.student.output_dim());
        let ws = data.ws.as_ref();
        let rows = |gpu: &Device| -> Result<(Tensor, Tensor, Option<Tensor>)> {
            if ib == ns {
                Ok((xs.clone(), ys.clone(), ws.cloned()))
            } else {
                let w = match ws {
                    Some(_) => Some(gpu.zeros(tasks, ib, 1)?),
                    None => None,
                };
                Ok((gpu.zeros(tasks, ib, din)?, gpu.zeros(tasks, ib, dout)?, w))
            }
        };
        let io = SupportIo {
            meta: self.meta,
            task: &bufs.task,
            dtask: &bufs.dtask,
            loss: &bufs.loss_s,
            task_loss: self.loss,
        };
        let build = |gpu: &Device| SupportStep::new(gpu, self.student, &io, rows(gpu)?, tangents);
        // Store mode keeps one support pass per step: measure what one costs.
        let before = gpu.memory_in_use().0;
        let mut steps = vec![build(gpu)?];
        let per_step = gpu.memory_in_use().0.saturating_sub(before) + (4 * tasks * p) as u64;
        let extra = per_step * cfg.steps_inner.saturating_sub(1) as u64;
        let store = self.second_order()
            && cfg.steps_inner > 1
            && match cfg.sweep {
                SweepMode::Store => true,
                SweepMode::Recompute => false,
                SweepMode::Auto => extra <= cfg.sweep_memory,
            };
        let before = gpu.memory_in_use().0;
        if store {
            for _ in 1..cfg.steps_inner {
                steps.push(build(gpu)?);
            }
        }
        let stored_bytes = gpu.memory_in_use().0.saturating_sub(before);
        Ok((steps, stored_bytes))
    }

    /// Per inner step, the gathers of its support minibatch into its support pass's buffers;
    /// none on the full batch.
    fn minibatch_gathers(
        &self,
        data: &EpisodeData,
        steps: &[SupportStep],
    ) -> Result<Vec<Vec<RngGather>>> {
        let cfg = self.cfg;
        let mut minibatch = Vec::new();
        if self.inner_batch() != self.ns {
            for i in 0..cfg.steps_inner {
                // The stream is set per episode by `set_minibatch_streams`.
                let key = RngKey::new(minibatch_seed(cfg.seed), 0);
                let st = &steps[i.min(steps.len() - 1)];
                let mut gathers = vec![
                    gather_rows(self.gpu, &data.xs, &st.x, key)?,
                    gather_rows(self.gpu, &data.ys, &st.y, key)?,
                ];
                // Row weights travel with their rows (the same key draws the same rows).
                if let (Some(ws), Some(w)) = (&data.ws, &st.w) {
                    gathers.push(gather_rows(self.gpu, ws, w, key)?);
                }
                minibatch.push(gathers);
            }
        }
        Ok(minibatch)
    }

    /// A student with fixed features: the program of the support inputs' features; second order
    /// also builds their backward, which the sweep runs once at the end on the accumulated
    /// cotangent.
    fn feature_program(
        &self,
        data: &EpisodeData,
        tangents: Option<&ReverseScratch>,
    ) -> Result<Option<StudentProgram>> {
        let feature_program = match self.student.fixed_features() {
            Some(f) => {
                let grad = tangents
                    .and_then(|sc| sc.features.as_ref())
                    .map(|fs| (&fs.feat_bar, &fs.dbody));
                Some(f.feature_program(self.gpu, self.meta, &data.support_x, &data.xs, grad)?)
            }
            None => None,
        };
        Ok(feature_program)
    }

    /// The student's program on the query rows; its backward accumulates into `dmeta`, if any.
    fn query_program(&self, data: &EpisodeData, bufs: &EpisodeBuffers) -> Result<StudentProgram> {
        Ok(self.student.program(
            self.gpu,
            &StudentBuffers {
                meta: self.meta,
                task: &bufs.task,
                x: &data.xq,
                logits: &bufs.logits_q,
                dlogits: &bufs.dlogits_q,
                dtask: &bufs.dtask,
                dmeta: self.dmeta,
            },
        )?)
    }

    /// Fresh task parameters: copies of their meta-learned initial values, or constants.
    fn init_task_params(&self, task: &Tensor) -> Result<Vec<Dispatch>> {
        let (gpu, layout, tasks) = (self.gpu, self.layout, self.tasks);
        let p = layout.task_len();
        let mut init = Vec::new();
        for spec in &layout.task {
            let range = layout
                .task_range(&spec.name)
                .ok_or_else(|| shape_err("meta", format!("no task tensor {}", spec.name)))?;
            let dst = task.view(range.start, tasks, 1, range.len(), p)?;
            init.push(match &spec.init {
                Init::Meta(name) => {
                    let src = meta_view(layout, self.meta, name)?;
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
        Ok(init)
    }

    /// Query: the query program's `forward`, then loss and accuracy. With a meta-gradient, the
    /// backward of the mean query loss follows ([`Builder::meta_gradient`]).
    fn score_query(
        &self,
        forward: Vec<Dispatch>,
        data: &EpisodeData,
        bufs: &EpisodeBuffers,
    ) -> Result<Vec<Dispatch>> {
        let mut query_ds = forward;
        let scale = 1.0 / self.tasks as f32;
        let grad = self.dmeta.map(|_| &bufs.dlogits_q);
        let rows = (&bufs.logits_q, &data.yq, data.wq.as_ref());
        query_ds.push(
            self.loss
                .value_grad(self.gpu, rows, &bufs.loss, grad, scale)?,
        );
        query_ds.extend(self.loss.accuracy(self.gpu, rows, &bufs.acc)?);
        Ok(query_ds)
    }

    /// After the query backward, for every meta-learned initial value, Σ_t ∂L/∂task_t into
    /// `dmeta`: second order, through the reverse sweep over the inner loop (returned, with the
    /// scatters of fixed features on minibatches); first order (the adapted parameters move
    /// one-for-one with their initial value), appended to `query_ds`.
    fn meta_gradient(
        &self,
        dmeta: &Tensor,
        query_ds: &mut Vec<Dispatch>,
        tangents: Option<ReverseScratch>,
        inner: &mut InnerLoop,
        inner_opt: &AdamW,
        bufs: &EpisodeBuffers,
    ) -> Result<(Option<ReversePass>, Vec<RngGather>)> {
        let cfg = self.cfg;
        let mut scatter = Vec::new();
        match tangents {
            Some(sc) => {
                let programs = inner
                    .steps
                    .iter_mut()
                    .map(SupportStep::sweep_program)
                    .collect();
                let parts = ReverseParts {
                    layout: self.layout,
                    task: &bufs.task,
                    dtask: &bufs.dtask,
                    dmeta,
                    inner_opt,
                    programs,
                    feature_backward: inner.feature_backward.take(),
                    minibatched: !inner.minibatch.is_empty(),
                    loss: self.loss,
                };
                // Fixed features on minibatches: each step's cotangent goes back onto the
                // support rows it drew (the same key as the step's gathers).
                if let (Some(fs), false) = (&sc.features, inner.minibatch.is_empty()) {
                    for _ in 0..cfg.steps_inner {
                        let key = RngKey::new(minibatch_seed(cfg.seed), 0);
                        let s = scatter_add_rows(self.gpu, &fs.dfeat_dot, &fs.feat_bar, key)?;
                        scatter.push(s);
                    }
                }
                let mut sw = ReversePass::new(self.gpu, sc, parts, cfg.steps_inner)?;
                sw.bytes += inner.stored_bytes;
                Ok((Some(sw), scatter))
            }
            None => {
                // First order (metax `first_order = True`): θ_S moves with θ₀ only through
                // the decoupled weight decay, ∂θ_S/∂θ₀ = (1 − lr·wd)^S.
                let decay = first_order_decay(&cfg.inner, cfg.steps_inner);
                query_ds.extend(add_init_grads(
                    self.gpu,
                    self.layout,
                    &bufs.dtask,
                    dmeta,
                    decay,
                )?);
                Ok((None, scatter))
            }
        }
    }
}
