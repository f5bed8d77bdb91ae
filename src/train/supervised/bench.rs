//! `hypermod bench runs`: what the batch axis buys a sweep. `B` independent regression runs
//! (seeds 1..=B, learning rates spread over a decade) train once as ONE batch and once one after
//! another; the report gives both throughputs in run-steps per second, their ratio, and whether
//! run 1's losses came out bit-identical both ways (they must: see [`super`]).

use std::time::Instant;

use serde::Serialize;

use super::{DataSpec, MlpSpec, RunSpec, SupervisedRuns};
use crate::error::{arg_err, Result};
use crate::gpu::Device;

/// Sizes of one `bench runs` measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct RunsBenchSpec {
    /// Independent runs `B`.
    pub runs: usize,
    /// Timed training steps per run.
    pub steps: usize,
    /// Untimed warm-up steps per run.
    pub warmup: usize,
    /// The student MLP.
    pub mlp: MlpSpec,
    /// Samples per step and teacher.
    pub data: DataSpec,
}

/// The result, as printed and written by `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct RunsBench {
    /// Independent runs.
    pub runs: usize,
    /// Timed steps per run.
    pub steps: usize,
    /// Wall-clock seconds of the batched timed steps.
    pub batched_s: f64,
    /// Wall-clock seconds of the timed steps of all runs one after another.
    pub sequential_s: f64,
    /// Run-steps per second, batched.
    pub batched_run_steps_per_s: f64,
    /// Run-steps per second, one run after another.
    pub sequential_run_steps_per_s: f64,
    /// `sequential_s / batched_s`.
    pub speedup: f64,
    /// Run 1's per-step losses are bit-identical batched and alone.
    pub identical: bool,
    /// Adapter name.
    pub adapter: String,
}

/// The `B` run specs of the benchmark: seed `k`, learning rate from 1e-3 to 1e-2 log-spaced.
fn run_specs(b: usize) -> Vec<RunSpec> {
    (0..b)
        .map(|k| RunSpec {
            seed: k as u64 + 1,
            lr: 1e-3 * 10f32.powf(k as f32 / b.max(2).saturating_sub(1) as f32),
            weight_decay: 1e-4,
        })
        .collect()
}

/// Warms up, then times `steps` steps; returns the seconds and run 1's timed losses.
fn time_runs(gpu: &Device, runs: &[RunSpec], spec: &RunsBenchSpec) -> Result<(f64, Vec<u32>)> {
    let mut r = SupervisedRuns::new(gpu, runs, &spec.mlp, &spec.data)?;
    r.train(gpu, spec.warmup)?;
    let t = Instant::now();
    let curves = r.train(gpu, spec.steps)?;
    let first = curves[0].losses.iter().map(|l| l.to_bits()).collect();
    Ok((t.elapsed().as_secs_f64(), first))
}

/// Runs the measurement (see the module docs).
pub fn bench_runs(gpu: &Device, spec: &RunsBenchSpec) -> Result<RunsBench> {
    if spec.runs == 0 || spec.steps == 0 {
        return Err(arg_err("bench runs", "--runs and --steps must be ≥ 1"));
    }
    let runs = run_specs(spec.runs);
    let (batched_s, batched_first) = time_runs(gpu, &runs, spec)?;
    let mut sequential_s = 0.0;
    let mut alone_first = Vec::new();
    for (k, run) in runs.iter().enumerate() {
        let (s, first) = time_runs(gpu, std::slice::from_ref(run), spec)?;
        sequential_s += s;
        if k == 0 {
            alone_first = first;
        }
    }
    let run_steps = (spec.runs * spec.steps) as f64;
    Ok(RunsBench {
        runs: spec.runs,
        steps: spec.steps,
        batched_s,
        sequential_s,
        batched_run_steps_per_s: run_steps / batched_s,
        sequential_run_steps_per_s: run_steps / sequential_s,
        speedup: sequential_s / batched_s,
        identical: batched_first == alone_first,
        adapter: gpu.adapter_info().name.clone(),
    })
}
