//! What every few-shot meta-learning experiment (the hyperteacher, the gridworlds) does once its
//! config is resolved: a [`MetaLearner`] on the experiment's task source, the pool of training
//! task latents the outer steps sample from, the fixed evaluation sets, and module decoding of
//! the adapted parameters. The experiments differ in their data, configs and columns, not here.

use crate::error::Result;
use crate::experiments::hyperteacher::decoder::{decode, Adapted, DecoderR2, MAX_DECODER_DIM};
use crate::gpu::Device;
use crate::train::meta::{data_stream, sample_latents, EpisodeMetrics, MetaLearner};
use crate::train::runner::{SetMetrics, StepReport};

/// One evaluation set: its name and task latents (fixed for the whole run).
pub struct EvalSet {
    /// `valid`, `test`, `ood`, `ood_k<k>`.
    pub name: String,
    /// `tasks × latent_len`.
    pub latents: Vec<f32>,
}

/// A meta-learning run: learner, training pool, evaluation sets and the settings its steps need.
pub struct MetaRun {
    /// The student and its optimisers on the experiment's task source.
    pub learner: MetaLearner,
    /// Training task latents, one vector per task; each outer step samples `meta_batch`.
    pub train_pool: Vec<Vec<f32>>,
    /// The evaluation sets, in evaluation order (which fixes each one's data stream).
    pub sets: Vec<EvalSet>,
    /// Floats per task latent (L·M).
    pub latent_len: usize,
    /// Modules per latent layer (M), for the decoder's per-module R².
    pub modules: usize,
    /// Tasks per outer step.
    pub meta_batch: usize,
    /// Run seed (the latents' sampling).
    pub seed: u64,
    /// Fault injection: outer steps (1-based) whose meta-gradient is made NaN.
    pub inject_nan_steps: Vec<usize>,
}

impl MetaRun {
    /// One outer step on `meta_batch` latents drawn from the training pool.
    pub fn train_step(&self, gpu: &Device, step: usize) -> Result<StepReport<EpisodeMetrics>> {
        let latents = sample_latents(&self.train_pool, self.meta_batch, self.seed, step as u64);
        // `inject_nan_steps` counts steps from 1.
        let inject = self.inject_nan_steps.contains(&(step + 1));
        let (metrics, consecutive_skips) =
            self.learner
                .train_step_with(gpu, &latents, data_stream(0, step as u64), inject)?;
        Ok(StepReport {
            metrics,
            consecutive_skips,
        })
    }

    /// The sets' names, in evaluation order.
    pub fn eval_sets(&self) -> Vec<String> {
        self.sets.iter().map(|s| s.name.clone()).collect()
    }

    /// Every set's metrics.
    pub fn evaluate(&self, gpu: &Device) -> Result<SetMetrics<EpisodeMetrics>> {
        let mut metrics = SetMetrics::new();
        for i in 0..self.sets.len() {
            metrics.insert(
                self.sets[i].name.clone(),
                self.evaluate_set(gpu, i, false)?.0,
            );
        }
        Ok(metrics)
    }

    /// Adapts and scores set `i` (its data stream is fixed by its index); with `keep`, also
    /// returns every task's adapted parameters.
    pub fn evaluate_set(
        &self,
        gpu: &Device,
        i: usize,
        keep: bool,
    ) -> Result<(EpisodeMetrics, Vec<f32>)> {
        let s = &self.sets[i];
        self.learner
            .evaluate(gpu, &s.latents, self.latent_len, self.set_stream(i), keep)
    }

    /// The data stream of evaluation set `i` (the same at every evaluation).
    pub fn set_stream(&self, i: usize) -> u64 {
        data_stream(1 + i as u8, 0)
    }

    /// The adapted parameters and latents of the set named `name`, if the run has it.
    fn adapted(&self, gpu: &Device, name: &str) -> Result<Option<(Vec<f32>, &[f32])>> {
        let Some(i) = self.sets.iter().position(|s| s.name == name) else {
            return Ok(None);
        };
        let (_, params) = self.evaluate_set(gpu, i, true)?;
        Ok(Some((params, &self.sets[i].latents)))
    }

    /// Module decoding at the current state: a ridge decoder from adapted parameters to task
    /// latents fitted on in-distribution (test) tasks, scored on OOD ones; `None` above
    /// [`MAX_DECODER_DIM`] task parameters or without both sets.
    pub fn decoder_r2(&self, gpu: &Device) -> Result<Option<DecoderR2>> {
        let dim = self.learner.layout().task_len();
        if dim > MAX_DECODER_DIM {
            return Ok(None);
        }
        let (Some(fit), Some(ood)) = (self.adapted(gpu, "test")?, self.adapted(gpu, "ood")?) else {
            return Ok(None);
        };
        let (fit, ood) = (
            Adapted {
                params: &fit.0,
                latents: fit.1,
            },
            Adapted {
                params: &ood.0,
                latents: ood.1,
            },
        );
        Ok(Some(decode(fit, ood, dim, self.latent_len, self.modules)))
    }
}
