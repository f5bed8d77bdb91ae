//! `hypermod bench step`: throughput of the outer step at a config's size.

use serde::Serialize;

use super::config::HyperteacherConfig;
use super::setup::setup;
use super::student::param_counts;
use crate::bench::{time_steps, StepTimes};
use crate::error::{arg_err, Result};
use crate::gpu::account::AccountReport;
use crate::gpu::Device;
use crate::train::meta::{data_stream, sample_latents};

/// Throughput of the outer step at a config's size.
#[derive(Clone, Debug, Serialize)]
pub struct StepBench {
    /// Outer steps timed (after warm-up).
    pub steps: usize,
    /// Median seconds per outer step (wall clock: submit, GPU work and the loss readback).
    pub median_s: f64,
    /// Outer steps per second (from the median).
    pub steps_per_s: f64,
    /// Tasks adapted and meta-differentiated per second.
    pub tasks_per_s: f64,
    /// Tasks per outer step.
    pub meta_batch: usize,
    /// Inner steps per task.
    pub steps_inner: usize,
    /// Meta and task parameter counts.
    pub params: (usize, usize),
    /// `second_order` or `first_order`.
    pub meta_gradient: &'static str,
    /// How the second-order reverse sweep got each step's activations back: `store` or
    /// `recompute` (`train.reverse_sweep`, `auto` resolved); `None` at first order.
    pub reverse_sweep: Option<&'static str>,
    /// Device bytes the second-order reverse sweep holds (its θ, m′, v′ history and scratch,
    /// and when it stores, every step's support program).
    pub sweep_bytes: u64,
    /// Peak bytes held by live device tensors over set-up and the timed steps (the process's
    /// whole device footprint: teacher, student, episodes, sweep, evaluation buffers).
    pub peak_bytes: u64,
    /// Adapter.
    pub adapter: String,
    /// One outer step's dispatches, FLOPs and bytes, and its GPU estimate.
    pub cost: AccountReport,
}

/// Times `steps` outer steps after `warmup` untimed ones. Wall clock per step is the honest
/// figure here: a step is one submit ending in the loss readback, so nothing overlaps it.
pub fn bench_step(
    gpu: &Device,
    cfg: &HyperteacherConfig,
    warmup: usize,
    steps: usize,
) -> Result<StepBench> {
    if steps == 0 {
        return Err(arg_err("bench step", "need at least one timed step"));
    }
    cfg.validate()?;
    let s = setup(gpu, cfg)?;
    let tr = &cfg.train;
    // The latents are drawn outside the timed region, as the training loop's are cheap host work.
    let latents: Vec<_> = (0..=warmup + steps)
        .map(|i| sample_latents(&s.pools.train_pool, tr.meta_batch, tr.seed, i as u64))
        .collect();
    let StepTimes { median_s, cost } = time_steps(gpu, warmup, steps, |i| {
        s.learner
            .train_step(gpu, &latents[i], data_stream(0, i as u64))
            .map(|_| ())
    })?;
    Ok(StepBench {
        cost,
        steps,
        median_s,
        steps_per_s: 1.0 / median_s,
        tasks_per_s: tr.meta_batch as f64 / median_s,
        meta_batch: tr.meta_batch,
        steps_inner: cfg.train_params().steps_inner,
        params: param_counts(cfg),
        meta_gradient: cfg.train_params().meta_gradient.name(),
        reverse_sweep: s.learner.sweep_mode().map(|m| m.name()),
        sweep_bytes: s.learner.sweep_bytes(),
        peak_bytes: gpu.memory_in_use().1,
        adapter: gpu.adapter_info().name.clone(),
    })
}
