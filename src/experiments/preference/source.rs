//! The preference gridworld as a meta-learning task source: a task is a preference vector; its
//! support and query rows are expert demonstrations generated on the device each episode
//! ([`crate::ops::preference::demonstrate`]): observations, the expert's Q values as targets, and
//! masks (rows after the expert chose NOTHING weigh 0) under the masked ½-squared error of the
//! official `SquaredErrorMasked`.

use crate::error::Result;
use crate::gpu::{Device, Step, Tensor};
use crate::ops::loss::RowLoss;
use crate::ops::preference::{demonstrate, DemoOutputs, WorldShape, ACTIONS};
use crate::ops::rng::{fill_normal, RngDispatch, RngKey};
use crate::train::task_source::{TaskBatch, TaskLoss, TaskSource};

/// Stream of the preference basis draw: apart from every other use of the run seed.
const BASIS_STREAM: u64 = 0x6261_7369_7300_0000; // "basis"
/// Seed tag of the demonstrations' draws.
const DEMO_SEED_TAG: u64 = 0x6465_6d6f_7300_0000; // "demos"

/// The world, its reward basis `B ~ N(0, 1)^{M×F}` (drawn once from the run seed, as the
/// official `preference_basis` is from the environment seed) and the expert's discount.
pub struct PreferenceSource {
    shape: WorldShape,
    gamma: f32,
    basis: Tensor,
    seed: u64,
}

impl PreferenceSource {
    /// The world of `shape` for run `seed`.
    pub fn new(gpu: &Device, shape: WorldShape, gamma: f32, seed: u64) -> Result<Self> {
        let basis = gpu.zeros(1, shape.preferences, shape.features)?;
        let draw = fill_normal(gpu, &basis, RngKey::new(seed, BASIS_STREAM), 0.0, 1.0)?;
        gpu.run(&[draw.dispatch()])?;
        Ok(PreferenceSource {
            shape,
            gamma,
            basis,
            seed,
        })
    }

    /// The reward basis, `[1 × M × F]`.
    pub fn basis(&self) -> &Tensor {
        &self.basis
    }

    /// The key the demonstrations of data stream `stream` are drawn with (for the twin,
    /// [`crate::ops::preference::demonstrate_cpu`]).
    pub fn demo_key(&self, stream: u64) -> RngKey {
        RngKey::new(self.seed ^ DEMO_SEED_TAG, stream)
    }
}

impl TaskSource for PreferenceSource {
    fn input_dim(&self) -> usize {
        self.shape.obs_dim()
    }
    fn output_dim(&self) -> usize {
        ACTIONS
    }
    fn latent_len(&self) -> usize {
        self.shape.preferences
    }
    fn loss(&self) -> TaskLoss {
        TaskLoss::Masked(RowLoss::HalfSquared)
    }
    fn rows_per_unit(&self) -> usize {
        self.shape.horizon
    }
    fn batch(
        &self,
        gpu: &Device,
        tasks: usize,
        support: usize,
        query: usize,
    ) -> Result<Box<dyn TaskBatch>> {
        let (demos, h) = (support + query, self.shape.horizon);
        let prefs = gpu.zeros(tasks, 1, self.shape.preferences)?;
        let obs = gpu.zeros(tasks, demos * h, self.shape.obs_dim())?;
        let q = gpu.zeros(tasks, demos * h, ACTIONS)?;
        let mask = gpu.zeros(tasks, demos * h, 1)?;
        let returns = gpu.zeros(tasks, demos, 1)?;
        let starts = gpu.zeros(tasks, demos, self.shape.start_len())?;
        let out = DemoOutputs {
            obs: &obs,
            q: &q,
            mask: &mask,
            returns: &returns,
            starts: &starts,
        };
        let key = self.demo_key(0);
        let draw = demonstrate(
            gpu,
            self.shape,
            self.gamma,
            &prefs,
            &self.basis.broadcast(tasks)?,
            &out,
            key,
        )?;
        Ok(Box::new(PreferenceBatch {
            prefs,
            obs,
            q,
            mask,
            returns,
            starts,
            draw,
        }))
    }
}

/// One episode size's demonstrations.
pub struct PreferenceBatch {
    prefs: Tensor,
    obs: Tensor,
    q: Tensor,
    mask: Tensor,
    returns: Tensor,
    starts: Tensor,
    draw: RngDispatch,
}

impl PreferenceBatch {
    /// The expert's undiscounted return of every demonstration, `[tasks × demos × 1]`.
    pub fn returns(&self) -> &Tensor {
        &self.returns
    }
    /// Every demonstration's start state, `[tasks × demos × (2·objects + 1)]`.
    pub fn starts(&self) -> &Tensor {
        &self.starts
    }
}

impl TaskBatch for PreferenceBatch {
    fn set_tasks(&self, gpu: &Device, latents: &[f32], stream: u64) -> Result<()> {
        if latents.len() != self.prefs.len() {
            return Err(crate::error::arg_err(
                "preference",
                format!(
                    "{} preference values for {} tasks of {}",
                    latents.len(),
                    self.prefs.batch(),
                    self.prefs.cols()
                ),
            ));
        }
        gpu.write(&self.prefs, latents)?;
        self.draw.set_stream(gpu, stream);
        Ok(())
    }
    fn record(&self, step: &mut Step<'_>) {
        step.run(self.draw.dispatch());
    }
    fn inputs(&self) -> &Tensor {
        &self.obs
    }
    fn targets(&self) -> &Tensor {
        &self.q
    }
    fn weights(&self) -> Option<&Tensor> {
        Some(&self.mask)
    }
}
