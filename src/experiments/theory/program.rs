//! The theory experiment on the GPU: R independent runs × T tasks each, in one set of
//! dispatches. Every run has its own teacher, student and seeds; tasks of a run share the run's
//! weights. Two views of one buffer make that work with plain per-item GEMMs:
//!
//! - per task (`R·T` items): the inputs, hidden layers and generated weights;
//! - per run (`R` items, the run's tasks stacked as rows): the hypernetwork GEMM `E·H`
//!   (`[T × M]·[M × inputs·hidden]`) and the readout `[T·n × hidden]·[hidden × outputs]`,
//!   whose weight gradients are thereby summed over the run's tasks.
//!
//! One [`Episode`] is a set of tasks with its buffers and prepared launches: the teacher's
//! generated weights, `steps_inner` Adam steps on the student latents ê (fresh inputs each step,
//! ê starting from the run's constant initial latent), then a query pass on fresh inputs whose
//! backward (ê held fixed: first order) writes the meta-gradient of the run's mean ½·MSE.

use crate::error::Result;
use crate::gpu::error::Result as DeviceResult;
use crate::gpu::{Device, Dispatch, Tensor};
use crate::nn::{Dense, DenseBackward, Param};
use crate::ops::adamw::{AdamW, AdamWConfig};
use crate::ops::elementwise::copy;
use crate::ops::loss::mse;
use crate::ops::rng::{fill_uniform, ItemSeeds, Keying, RngDispatch};
use crate::ops::Activation;

use super::net::NetShape;

/// Inputs are uniform on [−√3, √3] (unit variance), as `UniformData`.
pub const INPUT_BOUND: f32 = 1.732_050_8;

/// The parameters of R runs: teachers (fixed) and students (meta-learned), each packed per run
/// as `[H | W₂]` ([`NetShape::param_len`]).
pub struct Nets {
    /// Runs in the batch.
    pub runs: usize,
    /// Teacher sizes.
    pub teacher_shape: NetShape,
    /// Student sizes.
    pub student_shape: NetShape,
    /// `[R × 1 × teacher len]`.
    pub teacher: Tensor,
    /// `[R × 1 × student len]`.
    pub student: Tensor,
    /// The meta-gradient, shaped like `student`.
    pub student_grad: Tensor,
    /// One data seed per run (inputs are drawn per run, so a run draws what it draws alone).
    pub seeds: ItemSeeds,
}

/// `H` of every run: `[R × M × inputs·hidden]`.
fn hnet_view(t: &Tensor, s: NetShape) -> DeviceResult<Tensor> {
    t.view(
        t.offset(),
        t.batch(),
        s.modules,
        s.generated_len(),
        t.batch_stride(),
    )
}

/// `W₂` of every run: `[R × hidden × outputs]`.
fn readout_view(t: &Tensor, s: NetShape) -> DeviceResult<Tensor> {
    t.view(
        t.offset() + s.hnet_len(),
        t.batch(),
        s.hidden,
        s.outputs,
        t.batch_stride(),
    )
}

/// A per-task tensor `[R·T × n × c]` seen per run, `[R × T·n × c]`.
fn per_run(t: &Tensor, runs: usize) -> DeviceResult<Tensor> {
    let rows = t.batch() / runs * t.rows();
    t.view(t.offset(), runs, rows, t.cols(), rows * t.cols())
}

/// Per-run generated weights `[R × T × inputs·hidden]` seen per task, `[R·T × inputs × hidden]`.
fn per_task_weights(t: &Tensor, s: NetShape) -> DeviceResult<Tensor> {
    let items = t.batch() * t.rows();
    t.view(t.offset(), items, s.inputs, s.hidden, s.generated_len())
}

/// The activations of one forward/backward over `n` inputs per task.
struct Pass {
    x: Tensor,
    teacher_hidden: Tensor,
    y: Tensor,
    hidden: Tensor,
    d_hidden: Tensor,
    dz: Tensor,
    y_hat: Tensor,
    dy_hat: Tensor,
    loss: Tensor,
}

impl Pass {
    fn new(gpu: &Device, nets: &Nets, items: usize, n: usize) -> Result<Pass> {
        let (t, s) = (nets.teacher_shape, nets.student_shape);
        Ok(Pass {
            x: gpu.zeros(items, n, t.inputs)?,
            teacher_hidden: gpu.zeros(items, n, t.hidden)?,
            y: gpu.zeros(items, n, t.outputs)?,
            hidden: gpu.zeros(items, n, s.hidden)?,
            d_hidden: gpu.zeros(items, n, s.hidden)?,
            dz: gpu.zeros(items, n, s.hidden)?,
            y_hat: gpu.zeros(items, n, s.outputs)?,
            dy_hat: gpu.zeros(items, n, s.outputs)?,
            loss: gpu.zeros(items, 1, 1)?,
        })
    }
}

/// Episode sizes: tasks per run, inputs per inner step, inputs of the query pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpisodeSize {
    /// Tasks per run.
    pub tasks: usize,
    /// Inputs per task per inner step.
    pub inner_inputs: usize,
    /// Inputs per task of the query pass.
    pub query_inputs: usize,
    /// Inner Adam steps.
    pub steps_inner: usize,
}

impl EpisodeSize {
    /// Bytes of GPU memory an episode of `runs` runs allocates (activations dominate).
    pub fn bytes(&self, runs: usize, t: NetShape, s: NetShape) -> usize {
        let per_input = t.inputs + t.hidden + 2 * t.outputs + 3 * s.hidden + s.outputs;
        let rows = self.inner_inputs + self.query_inputs;
        let latent = 3 * s.modules + t.modules + t.generated_len() + 2 * s.generated_len();
        4 * runs * self.tasks * (rows * per_input + latent)
    }
}

/// One meta-batch of tasks per run with every launch of its episode prepared.
pub struct Episode {
    size: EpisodeSize,
    /// Teacher latents `[R × T × M]`, written by the host.
    pub latents: Tensor,
    /// Inferred student latents ê `[R × T × M̂]` (the inner loop's result).
    pub inferred: Tensor,
    inner: Pass,
    query: Pass,
    inner_inputs: Vec<RngDispatch>,
    query_inputs: RngDispatch,
    begin: Vec<Dispatch>,
    inner_steps: Vec<Vec<Dispatch>>,
    query_forward: Vec<Dispatch>,
    query_backward: Vec<Dispatch>,
    adam: AdamW,
}

impl Episode {
    /// Allocates and prepares an episode of `size` for `nets`; `init` is every run's constant
    /// initial latent (`R · M̂` values), `lr` every run's inner Adam learning rate.
    pub fn new(
        gpu: &Device,
        nets: &Nets,
        size: EpisodeSize,
        init: &[f32],
        lr: &[f32],
    ) -> Result<Self> {
        let (r, tt) = (nets.runs, size.tasks);
        let (t, s) = (nets.teacher_shape, nets.student_shape);
        let items = r * tt;
        let latents = gpu.zeros(r, tt, t.modules)?;
        let teacher_generated = gpu.zeros(r, tt, t.generated_len())?;
        let inferred = gpu.zeros(r, tt, s.modules)?;
        let d_inferred = gpu.zeros(r, tt, s.modules)?;
        let student_generated = gpu.zeros(r, tt, s.generated_len())?;
        let d_generated = gpu.zeros(r, tt, s.generated_len())?;
        let tiled: Vec<f32> = init
            .chunks(s.modules)
            .flat_map(|run| run.iter().copied().cycle().take(tt * s.modules))
            .collect();
        let init_t = gpu.upload(&tiled, r, tt, s.modules)?;
        let inner = Pass::new(gpu, nets, items, size.inner_inputs)?;
        let query = Pass::new(gpu, nets, items, size.query_inputs)?;
        let per_item_latents = |t: &Tensor| t.view(t.offset(), items, 1, s.modules, s.modules);
        // Adam is AdamW without weight decay; one learning rate per task, its run's.
        let adam_cfg = AdamWConfig {
            weight_decay: 0.0,
            ..AdamWConfig::default()
        };
        let task_lr: Vec<f32> = lr.iter().flat_map(|&l| vec![l; tt]).collect();
        let adam = AdamW::new_per_item(
            gpu,
            &per_item_latents(&inferred)?,
            &per_item_latents(&d_inferred)?,
            adam_cfg,
            &task_lr,
            &vec![0.0; items],
        )?;
        let generated = [&teacher_generated, &student_generated];
        let hnet_t = Dense::new(t.modules, t.generated_len());
        let begin = vec![
            copy(gpu, &init_t, &inferred)?,
            hnet_t.forward(
                gpu,
                &latents,
                &Param::per_item(&hnet_view(&nets.teacher, t)?, None)?,
                None,
                &teacher_generated,
            )?,
        ];
        let fill = |pass: &Pass| {
            let x = per_run(&pass.x, r)?;
            fill_uniform(
                gpu,
                &x,
                Keying::per_item(&nets.seeds, 0),
                -INPUT_BOUND,
                INPUT_BOUND,
            )
        };
        let mut inner_inputs = Vec::with_capacity(size.steps_inner);
        let mut inner_steps = Vec::with_capacity(size.steps_inner);
        for _ in 0..size.steps_inner {
            let rng = fill(&inner)?;
            let mut ds = forward(gpu, nets, generated, &inferred, &inner, 1.0)?;
            ds.extend(backward(
                gpu,
                nets,
                &inferred,
                &student_generated,
                &d_generated,
                &inner,
                Target::Latents(&d_inferred),
            )?);
            inner_inputs.push(rng);
            inner_steps.push(ds);
        }
        let query_inputs = fill(&query)?;
        let query_forward = forward(gpu, nets, generated, &inferred, &query, 1.0 / tt as f32)?;
        let query_backward = backward(
            gpu,
            nets,
            &inferred,
            &student_generated,
            &d_generated,
            &query,
            Target::Meta,
        )?;
        Ok(Episode {
            size,
            latents,
            inferred,
            inner,
            query,
            inner_inputs,
            query_inputs,
            begin,
            inner_steps,
            query_forward,
            query_backward,
            adam,
        })
    }

    /// The episode's sizes.
    pub fn size(&self) -> EpisodeSize {
        self.size
    }

    /// Gives the inputs of inner step `i` the stream `stream(i)` and the query inputs
    /// `stream(steps_inner)` (written before the episode's submit).
    pub fn set_streams(&self, gpu: &Device, stream: impl Fn(usize) -> u64) {
        for (i, rng) in self.inner_inputs.iter().enumerate() {
            rng.set_stream(gpu, stream(i));
        }
        self.query_inputs
            .set_stream(gpu, stream(self.size.steps_inner));
    }

    /// Records latent inference and the query forward (per-task losses in `query_loss`).
    pub fn record_inference(&self, step: &mut crate::gpu::Step<'_>) {
        step.run_all(&self.begin);
        self.adam.record_reset(step);
        for (rng, ds) in self.inner_inputs.iter().zip(&self.inner_steps) {
            step.run(rng.dispatch());
            step.run_all(ds);
            self.adam.record_step(step);
        }
        step.run(self.query_inputs.dispatch());
        step.run_all(&self.query_forward);
    }

    /// Records the query backward: the first-order meta-gradient into `Nets::student_grad`.
    pub fn record_meta_gradient(&self, step: &mut crate::gpu::Step<'_>) {
        step.run_all(&self.query_backward);
    }

    /// Per-task MSE (not halved) of the query pass `[R·T × 1 × 1]`.
    pub fn query_loss(&self) -> &Tensor {
        &self.query.loss
    }

    /// Per-task MSE (not halved) of the last inner step `[R·T × 1 × 1]`.
    pub fn inner_loss(&self) -> &Tensor {
        &self.inner.loss
    }

    /// Teacher outputs of the query pass `[R·T × n × outputs]`.
    pub fn query_targets(&self) -> &Tensor {
        &self.query.y
    }

    /// Student outputs of the query pass `[R·T × n × outputs]`.
    pub fn query_outputs(&self) -> &Tensor {
        &self.query.y_hat
    }

    /// The inputs the last inner step drew `[R·T × n × inputs]` (tests).
    pub fn inner_x(&self) -> &Tensor {
        &self.inner.x
    }
}

/// Teacher and student forward over `pass` (`generated`: the teacher's and the student's
/// generated-weight buffers), then the per-task MSE with gradient scale `½ · task_weight`: the
/// loss kernel's MSE gradient is `2(ŷ − y)/(n·outputs)`, so this is ∂(½·MSE)/∂ŷ per task
/// (`task_weight` 1, the inner loss) or of the run's mean over tasks (1/T, the query loss).
fn forward(
    gpu: &Device,
    nets: &Nets,
    generated: [&Tensor; 2],
    inferred: &Tensor,
    pass: &Pass,
    task_weight: f32,
) -> Result<Vec<Dispatch>> {
    let (r, s) = (nets.runs, nets.student_shape);
    // The teacher's weights are generated once per episode (`begin`); the student's follow ê.
    let student_hnet = Param::per_item(&hnet_view(&nets.student, s)?, None)?;
    let mut ds = vec![Dense::new(s.modules, s.generated_len()).forward(
        gpu,
        inferred,
        &student_hnet,
        None,
        generated[1],
    )?];
    let nets_of = [
        (
            nets.teacher_shape,
            &nets.teacher,
            &pass.teacher_hidden,
            &pass.y,
        ),
        (s, &nets.student, &pass.hidden, &pass.y_hat),
    ];
    for ((shape, params, hidden, out), generated) in nets_of.into_iter().zip(generated) {
        let wg = Param::per_item(&per_task_weights(generated, shape)?, None)?;
        ds.push(hidden_layer(shape).forward(gpu, &pass.x, &wg, None, hidden)?);
        let w2 = Param::per_item(&readout_view(params, shape)?, None)?;
        let head = Dense::new(shape.hidden, shape.outputs);
        ds.push(head.forward(gpu, &per_run(hidden, r)?, &w2, None, &per_run(out, r)?)?);
    }
    ds.push(mse(
        gpu,
        &pass.y_hat,
        &pass.y,
        &pass.loss,
        Some(&pass.dy_hat),
        0.5 * task_weight,
    )?);
    Ok(ds)
}

fn hidden_layer(s: NetShape) -> Dense {
    Dense::new(s.inputs, s.hidden)
        .with_activation(Activation::Relu)
        .with_scale(s.hidden_scale())
}

/// Where the student backward ends.
enum Target<'a> {
    /// ∂L/∂ê (the inner loop); the meta-parameters get no gradient.
    Latents(&'a Tensor),
    /// ∂L/∂[H | W₂] into `Nets::student_grad` (summed over the run's tasks); ê is fixed.
    Meta,
}

fn backward(
    gpu: &Device,
    nets: &Nets,
    inferred: &Tensor,
    generated: &Tensor,
    d_generated: &Tensor,
    pass: &Pass,
    target: Target<'_>,
) -> Result<Vec<Dispatch>> {
    let (r, s) = (nets.runs, nets.student_shape);
    let meta = matches!(target, Target::Meta);
    let grad = |view: Tensor| meta.then_some(view);
    let dw2 = grad(readout_view(&nets.student_grad, s)?);
    let dh = grad(hnet_view(&nets.student_grad, s)?);
    let mut ds = Dense::new(s.hidden, s.outputs).backward(
        gpu,
        &Param::per_item(&readout_view(&nets.student, s)?, dw2.as_ref())?,
        None,
        &DenseBackward {
            x: &per_run(&pass.hidden, r)?,
            y: &per_run(&pass.y_hat, r)?,
            dy: &per_run(&pass.dy_hat, r)?,
            dz: &per_run(&pass.dy_hat, r)?,
            dx: Some(&per_run(&pass.d_hidden, r)?),
        },
    )?;
    ds.extend(hidden_layer(s).backward(
        gpu,
        &Param::per_item(
            &per_task_weights(generated, s)?,
            Some(&per_task_weights(d_generated, s)?),
        )?,
        None,
        &DenseBackward {
            x: &pass.x,
            y: &pass.hidden,
            dy: &pass.d_hidden,
            dz: &pass.dz,
            dx: None,
        },
    )?);
    let d_latents = match target {
        Target::Latents(d) => Some(d),
        Target::Meta => None,
    };
    ds.extend(Dense::new(s.modules, s.generated_len()).backward(
        gpu,
        &Param::per_item(&hnet_view(&nets.student, s)?, dh.as_ref())?,
        None,
        &DenseBackward {
            x: inferred,
            y: generated,
            dy: d_generated,
            dz: d_generated,
            dx: d_latents,
        },
    )?);
    Ok(ds)
}
