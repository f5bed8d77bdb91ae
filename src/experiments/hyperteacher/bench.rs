//! `hypermod bench step`: throughput of the outer step at a config's size.

use serde::Serialize;

use super::config::HyperteacherConfig;
use super::setup::setup;
use super::student::param_counts;
use crate::bench::{time_steps, StepTimes};
use crate::error::{arg_err, Result};
use crate::gpu::account::AccountReport;
use crate::gpu::Device;
use crate::train::episode_twin::MetaGradient;
use crate::train::meta::{data_stream, sample_latents, MetaLearner};

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
    /// Median seconds of the outer step's data generation alone (the task source's program:
    /// teacher forward and targets, or the gridworld's demonstrations), in a submit of its own.
    pub data_s: f64,
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
    cfg.validate()?;
    let s = setup(gpu, cfg)?;
    let p = cfg.train_params();
    let plan = StepPlan {
        pool: &s.pools.train_pool,
        meta_batch: cfg.train.meta_batch,
        seed: cfg.train.seed,
        steps_inner: p.steps_inner,
        meta_gradient: p.meta_gradient,
        params: param_counts(cfg),
    };
    bench_learner(gpu, &s.learner, &plan, warmup, steps)
}

/// What a meta-learning step benchmark draws its tasks from and reports about its student.
pub struct StepPlan<'a> {
    /// The training task latents.
    pub pool: &'a [Vec<f32>],
    /// Tasks per outer step.
    pub meta_batch: usize,
    /// Run seed (the latents' draws).
    pub seed: u64,
    /// Inner steps per task.
    pub steps_inner: usize,
    /// The meta-gradient's order.
    pub meta_gradient: MetaGradient,
    /// Meta and task parameter counts.
    pub params: (usize, usize),
}

/// Times `steps` outer steps of `learner` after `warmup` untimed ones, then its data generation
/// alone as many times.
pub fn bench_learner(
    gpu: &Device,
    learner: &MetaLearner,
    plan: &StepPlan<'_>,
    warmup: usize,
    steps: usize,
) -> Result<StepBench> {
    if steps == 0 {
        return Err(arg_err("bench step", "need at least one timed step"));
    }
    // The latents are drawn outside the timed region, as the training loop's are cheap host work.
    let latents: Vec<_> = (0..=warmup + steps)
        .map(|i| sample_latents(plan.pool, plan.meta_batch, plan.seed, i as u64))
        .collect();
    let StepTimes { median_s, cost } = time_steps(gpu, warmup, steps, |i| {
        learner
            .train_step(gpu, &latents[i], data_stream(0, i as u64))
            .map(|_| ())
    })?;
    let data = time_steps(gpu, warmup, steps, |i| {
        learner.generate_train_data(gpu, &latents[i], data_stream(0, i as u64))
    })?;
    Ok(StepBench {
        cost,
        steps,
        median_s,
        steps_per_s: 1.0 / median_s,
        tasks_per_s: plan.meta_batch as f64 / median_s,
        data_s: data.median_s,
        meta_batch: plan.meta_batch,
        steps_inner: plan.steps_inner,
        params: plan.params,
        meta_gradient: plan.meta_gradient.name(),
        reverse_sweep: learner.sweep_mode().map(|m| m.name()),
        sweep_bytes: learner.sweep_bytes(),
        peak_bytes: gpu.memory_in_use().1,
        adapter: gpu.adapter_info().name.clone(),
    })
}

/// The lines `hypermod bench step` prints for a meta-learning step benchmark.
pub fn report_lines(r: &StepBench) -> Vec<String> {
    let sweep = r.reverse_sweep.map_or(String::new(), |m| format!(" ({m})"));
    let mut lines = vec![
        format!(
            "median {:.4} s/step  →  {:.3} outer steps/s, {:.1} tasks/s (wall clock, median of {})",
            r.median_s, r.steps_per_s, r.tasks_per_s, r.steps
        ),
        format!(
            "data generation alone {:.4} s ({:.1} % of a step)",
            r.data_s,
            100.0 * r.data_s / r.median_s
        ),
        format!(
            "meta-gradient {}; reverse-sweep memory{sweep} {:.1} MiB; peak device memory {:.1} MiB",
            r.meta_gradient,
            r.sweep_bytes as f64 / (1u64 << 20) as f64,
            r.peak_bytes as f64 / (1u64 << 20) as f64
        ),
    ];
    lines.extend(r.cost.lines());
    lines
}
