//! Independent supervised runs on the batch axis: `B` MLP regressions (each with its own seed,
//! learning rate and weight decay) trained in the same dispatches, item `b` being run `b`.
//!
//! Each run regresses a random teacher MLP of its own: per step, inputs `x ~ U[−1, 1)` are drawn,
//! the teacher gives the targets, and the student takes one AdamW step on the mean squared error.
//! Everything a run draws uses per-item keying ([`Keying::PerItem`]) with the run's seed, and
//! every kernel computes an item in an order fixed by the item's shape, so a run trains to the
//! same bits alone (`B = 1`) or at any position of any batch: a sweep over seeds and learning
//! rates is one training loop.
//!
//! Random streams (counter words 2–3) are `purpose · 2⁴⁸ + index`: student initialisation
//! (index `2l` weight, `2l + 1` bias of layer `l`), teacher weights (same), data (index = step).
//!
//! One training step is one [`Step`]: one encoder, one submit, one readback of the `B` losses.

mod bench;

pub use bench::{bench_runs, RunsBench, RunsBenchSpec};

use crate::error::{arg_err, Result};
use crate::gpu::{Device, Dispatch, Step, Tensor};
use crate::nn::PackedMlp;
use crate::ops::adamw::{AdamW, AdamWConfig};
use crate::ops::loss::mse;
use crate::ops::rng::{fill_uniform, ItemSeeds, Keying, RngDispatch};

/// Stream purposes (the high 16 bits of the stream).
const STUDENT_INIT: u64 = 1 << 48;
const TEACHER_INIT: u64 = 2 << 48;
const DATA: u64 = 3 << 48;

/// Weight scale of the teacher relative to `1/sqrt(fan_in)`: keeps its outputs at O(1) through
/// ReLU layers (which halve the variance) and the truncated normal (variance 0.77).
const TEACHER_GAIN: f32 = 2.0;

/// One independent run: its seed (initialisation, teacher and data) and optimiser settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunSpec {
    /// Philox seed of everything the run draws.
    pub seed: u64,
    /// AdamW learning rate (finite, ≥ 0).
    pub lr: f32,
    /// AdamW decoupled weight decay (finite, ≥ 0).
    pub weight_decay: f32,
}

/// The student MLP: `widths = [input, hidden…, output]`, ReLU after every hidden layer.
#[derive(Clone, Debug, PartialEq)]
pub struct MlpSpec {
    /// Layer widths, at least two, all > 0.
    pub widths: Vec<usize>,
}

/// The data every run sees.
#[derive(Clone, Debug, PartialEq)]
pub struct DataSpec {
    /// Samples per training step (the rows of each run's minibatch).
    pub samples_per_step: usize,
    /// Hidden widths of the teacher; its input and output widths are the student's.
    pub teacher_hidden: Vec<usize>,
}

/// The per-step training losses of one run (the loss of the parameters before that step's
/// update, on that step's minibatch).
#[derive(Clone, Debug, PartialEq)]
pub struct RunCurve {
    /// The run.
    pub run: RunSpec,
    /// One mean squared error per step, in order.
    pub losses: Vec<f32>,
}

/// `B` independent regression runs whose parameters, data and optimiser state are items of
/// one batch (see the module docs).
pub struct SupervisedRuns {
    runs: Vec<RunSpec>,
    student: PackedMlp,
    data: RngDispatch,
    /// Teacher forward, student forward, loss and gradient, backward, in order.
    dispatches: Vec<Dispatch>,
    loss: Tensor,
    opt: AdamW,
    step: u64,
}

impl SupervisedRuns {
    /// Builds the runs and initialises students and teachers on the GPU from the runs' seeds.
    /// Bad specs are [`crate::Error::InvalidArgument`] naming the field.
    pub fn new(
        gpu: &Device,
        runs: &[RunSpec],
        mlp: &MlpSpec,
        data: &DataSpec,
    ) -> Result<SupervisedRuns> {
        validate(runs, mlp, data)?;
        let (b, n) = (runs.len(), data.samples_per_step);
        let w = &mlp.widths;
        let seeds = ItemSeeds::upload(gpu, &runs.iter().map(|r| r.seed).collect::<Vec<_>>())?;
        let student = PackedMlp::relu(gpu, b, w)?;
        let teacher_widths: Vec<usize> = std::iter::once(w[0])
            .chain(data.teacher_hidden.iter().copied())
            .chain(std::iter::once(w[w.len() - 1]))
            .collect();
        let teacher = PackedMlp::relu(gpu, b, &teacher_widths)?;
        let mut init = student.init(gpu, &seeds, STUDENT_INIT, 1.0)?;
        init.extend(teacher.init(gpu, &seeds, TEACHER_INIT, TEACHER_GAIN)?);
        gpu.run(&init.iter().map(|d| d.dispatch()).collect::<Vec<_>>())?;

        let x = gpu.zeros(b, n, w[0])?;
        let data_fill = fill_uniform(gpu, &x, Keying::per_item(&seeds, DATA), -1.0, 1.0)?;
        // The dispatches hold every tensor they bind (teacher, seeds, activations) alive.
        let out = |cols: usize| gpu.zeros(b, n, cols);
        let (t_out, s_out, dout) = (
            out(w[w.len() - 1])?,
            out(w[w.len() - 1])?,
            out(w[w.len() - 1])?,
        );
        let t_prog = teacher.program(gpu, &x, &t_out, None)?;
        let s_prog = student.program(gpu, &x, &s_out, Some(&dout))?;
        let loss = gpu.zeros(b, 1, 1)?;
        let loss_d = mse(gpu, &s_out, &t_out, &loss, Some(&dout), 1.0)?;
        let lr: Vec<f32> = runs.iter().map(|r| r.lr).collect();
        let wd: Vec<f32> = runs.iter().map(|r| r.weight_decay).collect();
        let cfg = AdamWConfig {
            max_grad_norm: 0.0,
            ..AdamWConfig::default()
        };
        let opt = AdamW::new_per_item(gpu, student.params(), student.grads(), cfg, &lr, &wd)?;
        let mut dispatches = t_prog.forward;
        dispatches.extend(s_prog.forward);
        dispatches.push(loss_d);
        dispatches.extend(s_prog.backward);
        Ok(SupervisedRuns {
            runs: runs.to_vec(),
            student,
            data: data_fill,
            dispatches,
            loss,
            opt,
            step: 0,
        })
    }

    /// Trains every run for `steps` more steps (one submit and one readback each) and returns
    /// each run's losses of these steps, in the order of the specs.
    pub fn train(&mut self, gpu: &Device, steps: usize) -> Result<Vec<RunCurve>> {
        let mut curves: Vec<RunCurve> = self
            .runs
            .iter()
            .map(|&run| RunCurve {
                run,
                losses: Vec::with_capacity(steps),
            })
            .collect();
        for _ in 0..steps {
            self.data.set_stream(gpu, DATA + self.step);
            let mut s = Step::new(gpu);
            s.run(self.data.dispatch());
            s.run_all(&self.dispatches);
            self.opt.record_step(&mut s);
            let slot = s.read(&self.loss)?;
            let back = s.finish()?;
            for (c, &l) in curves.iter_mut().zip(back.get(slot)) {
                c.losses.push(l);
            }
            self.step += 1;
        }
        Ok(curves)
    }

    /// Each run's student parameters (all layers packed: per layer the `fan_in × fan_out` weight,
    /// row-major, then the bias), in the order of the specs.
    pub fn params(&self, gpu: &Device) -> Result<Vec<Vec<f32>>> {
        let p = self.student.params();
        let all = gpu.read(p)?;
        Ok(all.chunks(p.item_len()).map(<[f32]>::to_vec).collect())
    }

    /// Steps trained so far.
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// The runs, in batch order.
    pub fn runs(&self) -> &[RunSpec] {
        &self.runs
    }

    /// The optimiser of all runs (per-item learning rates: [`AdamW::set_lr_per_item`]).
    pub fn optimizer(&self) -> &AdamW {
        &self.opt
    }
}

/// Checks the specs before any GPU work.
fn validate(runs: &[RunSpec], mlp: &MlpSpec, data: &DataSpec) -> Result<()> {
    const OP: &str = "SupervisedRuns";
    if runs.is_empty() {
        return Err(arg_err(OP, "at least one run is needed"));
    }
    if mlp.widths.len() < 2 || mlp.widths.contains(&0) {
        return Err(arg_err(
            OP,
            format!(
                "MlpSpec.widths = {:?} needs ≥ 2 widths, all > 0",
                mlp.widths
            ),
        ));
    }
    if data.samples_per_step == 0 || data.teacher_hidden.contains(&0) {
        return Err(arg_err(
            OP,
            format!("DataSpec needs samples_per_step > 0 and teacher widths > 0: {data:?}"),
        ));
    }
    // AdamW validates lr and weight decay per run, naming the run's index.
    Ok(())
}
