//! `hypermod bench kernels | step | runs | sweep`: the benchmark commands and their tables.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use hypermod::bench::{kernel_cases, run_cases, table_row, BenchReport, BenchSize};
use hypermod::experiments::sine::SineConfig;
use hypermod::experiments::ExperimentConfig;
use hypermod::gpu::Device;

pub(crate) fn bench_runs(
    spec: hypermod::train::supervised::RunsBenchSpec,
    json: Option<PathBuf>,
) -> Result<()> {
    let gpu = Device::new()?;
    println!(
        "hypermod bench runs on {}: {} runs × {} steps, MLP {:?}, {} samples/step",
        gpu.adapter_info().name,
        spec.runs,
        spec.steps,
        spec.mlp.widths,
        spec.data.samples_per_step
    );
    let r = hypermod::train::supervised::bench_runs(&gpu, &spec)?;
    println!(
        "batched     {:>9.3} s  {:>10.1} run-steps/s\nsequential  {:>9.3} s  {:>10.1} run-steps/s\n\
         speedup {:.2}×; run 1 bit-identical batched and alone: {}",
        r.batched_s,
        r.batched_run_steps_per_s,
        r.sequential_s,
        r.sequential_run_steps_per_s,
        r.speedup,
        r.identical
    );
    finish_identity_bench(json, &r, r.identical)
}

/// Writes a batch-vs-alone benchmark's JSON (when asked) and fails unless run 1 came out
/// bit-identical both ways.
pub(crate) fn finish_identity_bench<T: serde::Serialize>(
    json: Option<PathBuf>,
    report: &T,
    identical: bool,
) -> Result<()> {
    if let Some(path) = json {
        hypermod::run::write_json(&path, report)?;
    }
    anyhow::ensure!(
        identical,
        "run 1 differs between the batch and its standalone run"
    );
    Ok(())
}

pub(crate) fn bench_sweep(
    config: PathBuf,
    set: Vec<String>,
    runs: usize,
    sequential: usize,
    json: Option<PathBuf>,
) -> Result<()> {
    let (cfg, _) = ExperimentConfig::load(&config, &set)?;
    let Some(c) = cfg.get::<SineConfig>() else {
        anyhow::bail!(
            "{}: `bench sweep` measures sine runs; use `hypermod bench step` for {} configs",
            config.display(),
            cfg.kind().name()
        );
    };
    let gpu = Device::new()?;
    println!(
        "hypermod bench sweep {} on {}: {}, {runs} runs as a sweep trains them, {sequential} alone",
        config.display(),
        gpu.adapter_info().name,
        cfg.describe()
    );
    let r = hypermod::experiments::sine::bench::bench_sweep(&gpu, c, runs, sequential)?;
    println!(
        "as a sweep ({}) {:.3} runs/s ({:.1} s for {}), one at a time {:.3} runs/s ({:.1} s for {}): {:.2}× ; run 1 identical: {}",
        r.scheme,
        r.batched_runs_per_s,
        r.batched_s,
        r.runs,
        r.sequential_runs_per_s,
        r.sequential_s,
        r.sequential_sampled_runs,
        r.speedup,
        r.identical
    );
    finish_identity_bench(json, &r, r.identical)
}

pub(crate) fn bench_step(
    config: PathBuf,
    set: Vec<String>,
    steps: usize,
    warmup: usize,
    json: Option<PathBuf>,
) -> Result<()> {
    let (cfg, _) = ExperimentConfig::load(&config, &set)?;
    let shape = cfg
        .bench_step_shape()
        .with_context(|| format!("{}", config.display()))?;
    let gpu = Device::new()?;
    println!(
        "hypermod bench step {} on {}: {}, {shape}",
        config.display(),
        gpu.adapter_info().name,
        cfg.describe(),
    );
    let r = cfg.bench_step(&gpu, warmup, steps)?;
    for line in &r.lines {
        println!("{line}");
    }
    if let Some(path) = json {
        hypermod::run::write_json(&path, &r.json)?;
    }
    Ok(())
}

pub(crate) fn bench_kernels(
    json: Option<PathBuf>,
    size: Option<BenchSize>,
    iters: usize,
    warmup: usize,
    filter: Option<String>,
) -> Result<()> {
    let gpu = Device::new()?;
    let is_cpu = gpu.adapter_info().device_type == wgpu::DeviceType::Cpu;
    let size = size.unwrap_or(if is_cpu {
        BenchSize::Quick
    } else {
        BenchSize::Full
    });
    if gpu.is_native() {
        eprintln!(
            "note: {}: figures are this CPU's, not a GPU's",
            gpu.adapter_info().name
        );
    } else if is_cpu {
        eprintln!(
            "note: '{}' is a CPU adapter: figures say nothing about GPU performance",
            gpu.adapter_info().name
        );
    }
    let mut cases = kernel_cases(size);
    if let Some(f) = &filter {
        cases.retain(|c| c.kernel.contains(f.as_str()));
    }
    let method = if gpu.features().timestamp_query {
        "GPU timestamp queries"
    } else if gpu.is_native() {
        "wall clock (native CPU backend)"
    } else {
        "wall clock (no timestamp queries)"
    };
    let info = gpu.adapter_info();
    println!(
        "hypermod bench kernels on {} ({:?}), {size:?} table, median of {iters} after {warmup} warm-up, timed with {method}",
        info.name, info.backend
    );
    println!("{}", table_row(None));
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(cases.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let records = run_cases(&gpu, &cases, warmup, iters, |r| {
        bar.suspend(|| println!("{}", table_row(Some(r))));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    if let Some(path) = json {
        let report = BenchReport {
            version: env!("CARGO_PKG_VERSION"),
            adapter: gpu.report(),
            size,
            records,
        };
        hypermod::run::write_json(&path, &report)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
