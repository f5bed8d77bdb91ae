//! One episode of the meta-learning loop for a fixed number of tasks: the task source's data, task
//! parameters fresh from their initial values, the inner AdamW loop (on inputs, or on fixed
//! features), the query pass and, for the train episode at second order, the reverse sweep.

use crate::error::Result;
use crate::gpu::{Device, Dispatch, Step, Tensor};
use crate::ops::adamw::{AdamW, AdamWConfig};
use crate::ops::gather::{gather_rows_cpu, RngGather};
use crate::ops::rng::RngKey;
use crate::students::gpu::{GpuStudent, StudentBuffers, StudentProgram};
use crate::train::task_source::{TaskBatch, TaskLoss};

use super::reverse::{ReversePass, ReverseProgram, ReverseScratch};

mod build;

/// Everything one meta-batch size needs: task data, task parameters, programs, inner loop.
/// The train episode also produces the meta-gradient; evaluation episodes only adapt and score.
pub(super) struct Episode {
    pub(super) tasks: usize,
    /// The task source's program: every task's support and query rows.
    pub(super) data: Box<dyn TaskBatch>,
    pub(super) task: Tensor,
    pub(super) loss: Tensor,
    pub(super) acc: Tensor,
    /// The support loss of the last inner step, copied out before the reverse sweep replays
    /// (and overwrites) the step losses.
    pub(super) support_loss: Tensor,
    keep_support_loss: Dispatch,
    pub(super) init: Vec<Dispatch>,
    /// A student with fixed features: their forward on the support inputs, once per episode.
    pub(super) features: Vec<Dispatch>,
    pub(super) inner_opt: AdamW,
    /// The support pass: one for every inner step, or (second order, store mode) one per step.
    pub(super) steps: Vec<SupportStep>,
    /// Per inner step, the gathers of its support minibatch (inputs or features, targets, row
    /// weights; one key each step) into its support pass's buffers; empty on the full-batch
    /// path.
    pub(super) minibatch: Vec<Vec<RngGather>>,
    /// Second order with fixed features on minibatches: per inner step, the scatter of the
    /// features' cotangent back onto the support rows its minibatch drew (the gather's key).
    pub(super) scatter: Vec<RngGather>,
    pub(super) query: Vec<Dispatch>,
    /// The train episode's reverse sweep through the inner loop (second order only).
    pub(super) sweep: Option<ReversePass>,
    pub(super) steps_inner: usize,
    /// Support rows per task.
    pub(super) shots_support: usize,
    pub(super) inner_batch: usize,
    pub(super) seed: u64,
}

impl Episode {
    /// Records data generation, adaptation and the query pass (and, second order, the reverse
    /// sweep through the inner loop).
    pub(super) fn record(&self, step: &mut Step<'_>) {
        self.data.record(step);
        step.run_all(&self.features);
        step.run_all(&self.init);
        self.inner_opt.record_reset(step);
        for i in 0..self.steps_inner {
            self.record_gradient(step, i);
            if let Some(sw) = &self.sweep {
                step.run(&sw.save_theta[i]);
                if let Some(g) = sw.save_grad.get(i) {
                    step.run(g);
                }
            }
            self.inner_opt.record_step(step);
            if let Some(sw) = &self.sweep {
                step.run_all(&sw.save_moments[i]);
            }
        }
        step.run(&self.keep_support_loss);
        step.run_all(&self.query);
        if let Some(sw) = &self.sweep {
            step.run_all(&sw.start);
            for i in (0..self.steps_inner).rev() {
                step.run(&sw.restore[i]);
                if !sw.stores() {
                    self.record_gradient(step, i);
                }
                step.run(&sw.vjp[i]);
                step.run_all(sw.hvp(i));
                if let Some(s) = self.scatter.get(i) {
                    step.run(s);
                }
            }
            step.run_all(&sw.finish);
        }
    }

    /// Inner step `i`'s minibatch (if any) and support gradient at the current task parameters.
    pub(super) fn record_gradient(&self, step: &mut Step<'_>, i: usize) {
        if let Some(gathers) = self.minibatch.get(i) {
            for g in gathers {
                step.run(g);
            }
        }
        step.run_all(&self.steps[i.min(self.steps.len() - 1)].launches);
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
    pub(super) fn set_tasks(&self, gpu: &Device, latents: &[f32], stream: u64) -> Result<()> {
        self.data.set_tasks(gpu, latents, stream)?;
        self.set_minibatch_streams(gpu, stream);
        Ok(())
    }

    /// Gives every inner step's minibatch gathers the stream [`minibatch_stream`]`(stream, i)`
    /// (written before the episode's single submit; no-op on the full-batch path).
    pub(super) fn set_minibatch_streams(&self, gpu: &Device, stream: u64) {
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

/// The tensors every support pass shares: parameters, their gradient, the support loss.
pub(super) struct SupportIo<'a> {
    pub(super) meta: &'a Tensor,
    pub(super) task: &'a Tensor,
    pub(super) dtask: &'a Tensor,
    pub(super) loss: &'a Tensor,
    pub(super) task_loss: TaskLoss,
}

/// One support pass on buffers of its own: the rows it reads (`x`, `y` and the row weights `w`
/// of a masked loss: the support set, or a minibatch gathered into them), its logits, its
/// launches (forward, per-task loss gradient, backward into `dtask`) and, at second order, its
/// tangent passes.
pub(super) struct SupportStep {
    pub(super) x: Tensor,
    pub(super) y: Tensor,
    pub(super) w: Option<Tensor>,
    logits: Tensor,
    pub(super) launches: Vec<Dispatch>,
    tangent_forward: Vec<Dispatch>,
    tangent_backward: Vec<Dispatch>,
}

impl SupportStep {
    /// Builds the pass on `(x, y)`; with `tangents`, its tangent passes too. A student with
    /// fixed features runs its head on them (`x` holds features).
    fn new<S: GpuStudent>(
        gpu: &Device,
        student: &S,
        io: &SupportIo<'_>,
        (x, y, w): (Tensor, Tensor, Option<Tensor>),
        tangents: Option<&ReverseScratch>,
    ) -> Result<SupportStep> {
        let (tasks, rows, dout) = (io.task.batch(), x.rows(), student.output_dim());
        let (logits, dlogits) = (gpu.zeros(tasks, rows, dout)?, gpu.zeros(tasks, rows, dout)?);
        let b = StudentBuffers {
            meta: io.meta,
            task: io.task,
            x: &x,
            logits: &logits,
            dlogits: &dlogits,
            dtask: io.dtask,
            dmeta: None,
        };
        let prog: StudentProgram = match (student.fixed_features(), tangents) {
            (Some(f), Some(sc)) => {
                let fs = sc.features.as_ref().expect("feature scratch");
                f.head_program(gpu, &b, Some((&sc.buffers(), &fs.dfeat_dot)))?
            }
            (Some(f), None) => f.head_program(gpu, &b, None)?,
            (None, Some(sc)) => student.hvp_program(gpu, &b, &sc.buffers())?,
            (None, None) => student.program(gpu, &b)?,
        };
        let mut launches = prog.forward;
        launches.push(io.task_loss.value_grad(
            gpu,
            (&logits, &y, w.as_ref()),
            io.loss,
            Some(&dlogits),
            1.0,
        )?);
        launches.extend(prog.backward);
        Ok(SupportStep {
            x,
            y,
            w,
            logits,
            launches,
            tangent_forward: prog.tangent_forward,
            tangent_backward: prog.tangent_backward,
        })
    }

    /// Its part in the reverse sweep (the tangent passes move there).
    fn sweep_program(&mut self) -> ReverseProgram<'_> {
        ReverseProgram {
            logits: &self.logits,
            targets: &self.y,
            weights: self.w.as_ref(),
            tangent_forward: std::mem::take(&mut self.tangent_forward),
            tangent_backward: std::mem::take(&mut self.tangent_backward),
        }
    }
}
