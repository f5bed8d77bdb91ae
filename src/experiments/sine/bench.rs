//! `hypermod bench sweep`: what a sweep's scheduling buys a sine sweep. R runs of one config
//! (seeds 1..=R, training-set sizes cycling over the sample-complexity grid) train end to end —
//! kernel initialisation, training, every evaluation — once as a sweep trains them (ONE batch
//! on a GPU; on the native backend one run per core at a time, see
//! [`crate::experiments::run_workers`]) and, for the first few, one after another on the whole
//! device; the report gives both throughputs in runs/s, their ratio, and whether run 1's results
//! came out bit-identical both ways (they must).

use std::time::Instant;

use serde::Serialize;

use super::{Sine, SineConfig};
use crate::error::{arg_err, Result};
use crate::experiments::run_workers::{native_workers, on_workers};
use crate::gpu::Device;
use crate::train::runner::Experiment;

/// The training-set sizes the benchmark's runs cycle through (the default sweep's grid).
pub const N_GRID: [usize; 9] = [100, 237, 562, 1334, 3162, 7499, 17783, 42170, 100_000];

/// The result, as printed and written by `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct SweepBench {
    /// The method.
    pub method: String,
    /// Input dimension.
    pub m: usize,
    /// Runs trained as a sweep trains them.
    pub runs: usize,
    /// How: `one batch`, or `N at a time` (native backend, one run per core).
    pub scheme: String,
    /// Training steps per run.
    pub steps: usize,
    /// Wall-clock seconds of the runs as a sweep trains them (set-up, kernel initialisation,
    /// training, evaluations).
    pub batched_s: f64,
    /// Wall-clock seconds of the sampled runs one after another.
    pub sequential_s: f64,
    /// Runs timed one after another (the first ones of the batch).
    pub sequential_sampled_runs: usize,
    /// Runs per second, batched.
    pub batched_runs_per_s: f64,
    /// Runs per second, one run after another.
    pub sequential_runs_per_s: f64,
    /// `batched_runs_per_s / sequential_runs_per_s`.
    pub speedup: f64,
    /// Run 1's results are bit-identical batched and alone.
    pub identical: bool,
    /// Adapter name.
    pub adapter: String,
}

/// The benchmark's R run configs.
pub fn bench_configs(cfg: &SineConfig, runs: usize) -> Vec<SineConfig> {
    (0..runs)
        .map(|k| {
            let mut c = cfg.clone();
            c.train.seed = k as u64 + 1;
            c.task.n_train = N_GRID[k % N_GRID.len()];
            c
        })
        .collect()
}

/// Trains `cfgs` as one batch end to end (evaluating on the config's cadence) and returns the
/// seconds and run 1's summary fields as JSON.
fn time_batch(gpu: &Device, cfgs: &[SineConfig]) -> Result<(f64, String)> {
    let t = Instant::now();
    let (exp, schedule) = Sine::new(gpu, cfgs, false)?;
    exp.evaluate(gpu)?;
    for step in 0..schedule.steps {
        exp.train_step(gpu, step)?;
        if (step + 1) % schedule.eval_every == 0 || step + 1 == schedule.steps {
            exp.evaluate(gpu)?;
        }
    }
    let extras = exp.summary_extras(gpu)?;
    let first = serde_json::to_string(&extras.0[0]).unwrap_or_default();
    Ok((t.elapsed().as_secs_f64(), first))
}

/// Runs the measurement (see the module docs): `runs` batched, the first `sequential` alone.
pub fn bench_sweep(
    gpu: &Device,
    cfg: &SineConfig,
    runs: usize,
    sequential: usize,
) -> Result<SweepBench> {
    if runs == 0 || sequential == 0 {
        return Err(arg_err(
            "bench sweep",
            "--runs and --sequential must be ≥ 1",
        ));
    }
    cfg.validate()?;
    let cfgs = bench_configs(cfg, runs);
    let (scheme, batched_s, batched_first) = match native_workers(gpu) {
        Some(workers) if runs > 1 => {
            let t = Instant::now();
            let each = on_workers(workers, runs, |device, k| {
                time_batch(device, std::slice::from_ref(&cfgs[k]))
            })?;
            let first = each
                .into_iter()
                .next()
                .flatten()
                .map(|(_, f)| f)
                .unwrap_or_default();
            let at_once = workers.min(runs);
            (
                format!("{at_once} at a time"),
                t.elapsed().as_secs_f64(),
                first,
            )
        }
        _ => {
            let (s, first) = time_batch(gpu, &cfgs)?;
            ("one batch".to_string(), s, first)
        }
    };
    let sampled = sequential.min(runs);
    let mut sequential_s = 0.0;
    let mut alone_first = String::new();
    for (k, c) in cfgs.iter().take(sampled).enumerate() {
        let (s, first) = time_batch(gpu, std::slice::from_ref(c))?;
        sequential_s += s;
        if k == 0 {
            alone_first = first;
        }
    }
    let batched_runs_per_s = runs as f64 / batched_s;
    let sequential_runs_per_s = sampled as f64 / sequential_s;
    Ok(SweepBench {
        method: cfg.model.method.name().to_string(),
        m: cfg.task.m,
        runs,
        scheme,
        steps: cfg.train.steps,
        batched_s,
        sequential_s,
        sequential_sampled_runs: sampled,
        batched_runs_per_s,
        sequential_runs_per_s,
        speedup: batched_runs_per_s / sequential_runs_per_s,
        identical: batched_first == alone_first,
        adapter: gpu.adapter_info().name.clone(),
    })
}
