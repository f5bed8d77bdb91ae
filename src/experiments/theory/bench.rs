//! `hypermod bench step` for the theory experiment: seconds per outer step (every task's latent
//! inference plus the meta-update) at a config's size.

use serde::Serialize;

use super::{Theory, TheoryConfig};
use crate::bench::{time_steps, StepTimes};
use crate::error::{arg_err, Result};
use crate::gpu::account::AccountReport;
use crate::gpu::Device;
use crate::train::runner::Experiment;

/// Throughput of the theory outer step.
#[derive(Clone, Debug, Serialize)]
pub struct StepBench {
    /// Outer steps timed (after warm-up).
    pub steps: usize,
    /// Median seconds per outer step (wall clock: one submit ending in the loss readback).
    pub median_s: f64,
    /// Outer steps per second (from the median).
    pub steps_per_s: f64,
    /// Inner (latent) steps of all tasks per second.
    pub task_inner_steps_per_s: f64,
    /// Tasks per outer step.
    pub meta_batch: usize,
    /// Inner steps per task.
    pub steps_inner: usize,
    /// Adapter.
    pub adapter: String,
    /// One outer step's dispatches, FLOPs and bytes, and its GPU estimate.
    pub cost: AccountReport,
}

/// Times `steps` outer steps after `warmup` untimed ones.
pub fn bench_step(
    gpu: &Device,
    cfg: &TheoryConfig,
    warmup: usize,
    steps: usize,
) -> Result<StepBench> {
    if steps == 0 {
        return Err(arg_err("bench step", "need at least one timed step"));
    }
    let (exp, _) = Theory::new(gpu, std::slice::from_ref(cfg))?;
    let StepTimes { median_s, cost } =
        time_steps(gpu, warmup, steps, |i| exp.train_step(gpu, i).map(|_| ()))?;
    let tr = &cfg.train;
    Ok(StepBench {
        cost,
        steps,
        median_s,
        steps_per_s: 1.0 / median_s,
        task_inner_steps_per_s: (tr.meta_batch * tr.steps_inner) as f64 / median_s,
        meta_batch: tr.meta_batch,
        steps_inner: tr.steps_inner,
        adapter: gpu.adapter_info().name.clone(),
    })
}
