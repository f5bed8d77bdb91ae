//! Where a meta-learner's tasks come from. A [`TaskSource`] builds, for an episode of a given
//! number of tasks, a [`TaskBatch`]: the device program that fills every task's support and query
//! rows (inputs, targets and, for sources with variable-length data, row weights) from the
//! tasks' host-side description (their latents) and a data stream, inside the outer step's one
//! submit. The meta-learner ([`crate::train::meta::MetaLearner`]) knows nothing else of the data:
//! the hyperteacher ([`TeacherSource`]) is one source, the gridworlds' demonstrations another.
//!
//! The source also names its loss ([`TaskLoss`]), which the episode applies to the support rows
//! (inner loop), to the query rows (meta-gradient, metrics) and, at second order, whose gradient
//! tangent it takes in the reverse sweep.

use crate::error::{arg_err, Result};
use crate::gpu::{Device, Dispatch, Step, Tensor};
use crate::ops::loss::{
    accuracy, kl_divergence, kl_tangent, masked_accuracy, masked_loss, masked_tangent, RowLoss,
};
use crate::teacher::{
    TeacherForward, TeacherTargets, TeacherWeightsGpu, STATS_INPUTS, TARGET_TEMPERATURE,
};

/// The loss a task source's rows are scored with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskLoss {
    /// Soft-label KL, the mean over every row (the hyperteacher's; no row weights).
    Kl,
    /// A row loss averaged over each task's rows with the source's row weights (0/1 masks):
    /// `Σ_r w_r·ℓ_r / Σ_r w_r`, the official code's masked reductions.
    Masked(RowLoss),
}

impl TaskLoss {
    /// Whether the source must provide row weights.
    pub fn weighted(self) -> bool {
        matches!(self, TaskLoss::Masked(_))
    }

    /// Whether an accuracy (argmax agreement) is defined.
    pub fn classifies(self) -> bool {
        match self {
            TaskLoss::Kl => true,
            TaskLoss::Masked(r) => r.classifies(),
        }
    }

    fn weights(self, weights: Option<&Tensor>) -> Result<Option<&Tensor>> {
        match (self, weights) {
            (TaskLoss::Kl, _) => Ok(None),
            (TaskLoss::Masked(_), Some(w)) => Ok(Some(w)),
            (TaskLoss::Masked(_), None) => Err(arg_err(
                "task loss",
                "a masked loss needs the source's row weights",
            )),
        }
    }

    /// Per-task loss of `logits` against `targets` into `loss`, and `grad_scale·∂loss/∂logits`
    /// into `grad` when given.
    pub fn value_grad(
        self,
        gpu: &Device,
        (logits, targets, weights): (&Tensor, &Tensor, Option<&Tensor>),
        loss: &Tensor,
        grad: Option<&Tensor>,
        grad_scale: f32,
    ) -> Result<Dispatch> {
        Ok(match (self, self.weights(weights)?) {
            (TaskLoss::Masked(r), Some(w)) => {
                masked_loss(gpu, r, logits, targets, w, loss, grad, grad_scale)?
            }
            _ => kl_divergence(gpu, logits, targets, loss, grad, grad_scale)?,
        })
    }

    /// The tangent of [`TaskLoss::value_grad`]'s gradient along `dz` (a loss HVP) into `out`.
    pub fn tangent(
        self,
        gpu: &Device,
        (logits, targets, weights): (&Tensor, &Tensor, Option<&Tensor>),
        dz: &Tensor,
        out: &Tensor,
        grad_scale: f32,
    ) -> Result<Dispatch> {
        Ok(match (self, self.weights(weights)?) {
            (TaskLoss::Masked(r), Some(w)) => {
                masked_tangent(gpu, r, logits, targets, w, dz, out, grad_scale)?
            }
            _ => kl_tangent(gpu, logits, targets, dz, out, grad_scale)?,
        })
    }

    /// Per-task accuracy into `acc`, for a loss that classifies (else none).
    pub fn accuracy(
        self,
        gpu: &Device,
        (logits, targets, weights): (&Tensor, &Tensor, Option<&Tensor>),
        acc: &Tensor,
    ) -> Result<Option<Dispatch>> {
        if !self.classifies() {
            return Ok(None);
        }
        Ok(Some(match self.weights(weights)? {
            Some(w) => masked_accuracy(gpu, logits, targets, w, acc)?,
            None => accuracy(gpu, logits, targets, acc)?,
        }))
    }
}

/// A source of meta-learning tasks: builds the device program of an episode's data.
pub trait TaskSource {
    /// Columns of a row's input.
    fn input_dim(&self) -> usize;
    /// Columns of a row's target (the student's outputs).
    fn output_dim(&self) -> usize;
    /// Floats of one task's host-side description ([`TaskBatch::set_tasks`]).
    fn latent_len(&self) -> usize;
    /// The loss its rows are scored with.
    fn loss(&self) -> TaskLoss;
    /// The program that fills `tasks` tasks of `support + query` rows each: support rows first.
    /// `support` and `query` count the source's units (samples, or whole demonstrations of
    /// [`TaskSource::rows_per_unit`] rows each).
    fn batch(
        &self,
        gpu: &Device,
        tasks: usize,
        support: usize,
        query: usize,
    ) -> Result<Box<dyn TaskBatch>>;
    /// Rows one unit of support or query data holds: 1 for samples, a demonstration's length
    /// for demonstrations.
    fn rows_per_unit(&self) -> usize {
        1
    }
}

/// One episode size's data program ([`TaskSource::batch`]).
pub trait TaskBatch: Send + Sync {
    /// Uploads the tasks' descriptions (`tasks × latent_len`) and selects the data stream of the
    /// next [`TaskBatch::record`].
    fn set_tasks(&self, gpu: &Device, latents: &[f32], stream: u64) -> Result<()>;
    /// Records the data generation into the step.
    fn record(&self, step: &mut Step<'_>);
    /// `[tasks × rows × input_dim]`, support rows first.
    fn inputs(&self) -> &Tensor;
    /// `[tasks × rows × output_dim]`.
    fn targets(&self) -> &Tensor;
    /// `[tasks × rows × 1]` row weights, for a [`TaskLoss::Masked`] source.
    fn weights(&self) -> Option<&Tensor> {
        None
    }
}

/// The hyperteacher (Schug et al.): inputs uniform in [−1, 1], soft targets from the teacher
/// network whose hidden weights its hypernetwork generates from the task latents.
pub struct TeacherSource<'a> {
    weights: &'a TeacherWeightsGpu,
}

impl<'a> TeacherSource<'a> {
    /// The source of the teacher with these weights.
    pub fn new(weights: &'a TeacherWeightsGpu) -> TeacherSource<'a> {
        TeacherSource { weights }
    }
}

impl TaskSource for TeacherSource<'_> {
    fn input_dim(&self) -> usize {
        self.weights.config.input_dim
    }
    fn output_dim(&self) -> usize {
        self.weights.config.output_dim
    }
    fn latent_len(&self) -> usize {
        self.weights.config.latent_len()
    }
    fn loss(&self) -> TaskLoss {
        TaskLoss::Kl
    }
    fn batch(
        &self,
        gpu: &Device,
        tasks: usize,
        support: usize,
        query: usize,
    ) -> Result<Box<dyn TaskBatch>> {
        let forward = TeacherForward::new(gpu, self.weights, tasks, support + query)?;
        let targets = TeacherTargets::new(
            gpu,
            self.weights,
            &forward,
            STATS_INPUTS,
            TARGET_TEMPERATURE,
        )?;
        Ok(Box::new(TeacherBatch { forward, targets }))
    }
}

/// The teacher's forward pass and soft targets for one episode size.
struct TeacherBatch {
    forward: TeacherForward,
    targets: TeacherTargets,
}

impl TaskBatch for TeacherBatch {
    fn set_tasks(&self, gpu: &Device, latents: &[f32], stream: u64) -> Result<()> {
        self.forward.set_latents(gpu, latents)?;
        self.forward.set_step(gpu, stream)?;
        Ok(())
    }
    fn record(&self, step: &mut Step<'_>) {
        self.forward.record(step);
        self.targets.record(step);
    }
    fn inputs(&self) -> &Tensor {
        self.forward.inputs()
    }
    fn targets(&self) -> &Tensor {
        self.targets.targets()
    }
}
