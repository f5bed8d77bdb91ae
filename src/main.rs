//! The `hypermod` command line: `info`, `train`, `sweep`, `plot` and `bench`. Configs name their
//! experiment (`experiment = "..."`); the commands read it first and dispatch on it.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use hypermod::bench::{kernel_cases, run_cases, table_row, BenchReport, BenchSize};
use hypermod::experiments::hyperteacher::HyperteacherConfig;
use hypermod::experiments::sine::SineConfig;
use hypermod::experiments::ExperimentConfig;
use hypermod::gpu::{list_adapters, Gpu};
use hypermod::sweep::Shard;

#[derive(Parser)]
#[command(
    name = "hypermod",
    version,
    about = "GPU training engine for modular and hypernetwork learning"
)]
struct Cli {
    /// Where kernels run: auto (a real GPU if wgpu finds one, else the native CPU backend),
    /// gpu, cpu (native), lavapipe (the WGSL kernels on a software adapter) or wgpu (best
    /// adapter of any kind). Also `HYPERMOD_DEVICE`.
    #[arg(long, global = true, value_name = "DEVICE")]
    device: Option<String>,
    /// Threads of the native CPU backend (default: all cores). Also `HYPERMOD_THREADS`.
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the selected device and why it was chosen, its limits and optional features (and
    /// every wgpu adapter seen).
    Info {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Train an experiment from a TOML config (see configs/; its `experiment` key picks it).
    Train {
        /// The config file (not with --resume).
        #[arg(required_unless_present = "resume", conflicts_with = "resume")]
        config: Option<PathBuf>,
        /// Continue the run in this directory from its last checkpoint (exact resume).
        #[arg(long, value_name = "RUN_DIR", conflicts_with = "set")]
        resume: Option<PathBuf>,
        /// Override a config value, e.g. `--set train.steps_outer=500` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Run directory (default: runs/<config name>-<unix time>).
        #[arg(long, conflicts_with = "resume")]
        out: Option<PathBuf>,
        /// Replace the run in --out if it holds one (refused otherwise).
        #[arg(long, conflicts_with = "resume")]
        overwrite: bool,
    },
    /// Run a sweep (grid × seeds over a base config); one row per run in `runs.csv`.
    ///
    /// `hypermod sweep FILE --out DIR` runs the sweep; with `--shard I/N` only the I-th of N
    /// contiguous slices of its runs (one task of a job array, see tools/slurm_sweep.sh).
    /// `hypermod sweep merge OUT DIR...` merges the shard directories into OUT as if the sweep
    /// had run unsharded. A sweep file named `merge` must be given as a path (`./merge`).
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        disable_help_subcommand = true,
        override_usage = "hypermod sweep [OPTIONS] <SWEEP>\n       hypermod sweep merge <OUT> <DIRS>..."
    )]
    Sweep {
        /// Merge shard directories instead of running a sweep.
        #[command(subcommand)]
        action: Option<SweepCommand>,
        /// The sweep file (see configs/hyperteacher/sweeps/).
        #[arg(required = true)]
        sweep: Option<PathBuf>,
        /// Sweep directory (default: runs/<sweep name>-<unix time>, with `-shard-I` for a
        /// shard). A sweep run again into its own directory continues there.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Run into --out even if it holds a run or another sweep, running every run again.
        #[arg(long)]
        overwrite: bool,
        /// Run only shard I of N (0 ≤ I < N): the runs ⌊I·len/N⌋ .. ⌊(I+1)·len/N⌋ of the sweep's
        /// run list, a contiguous block (runs that batch together stay together). Run
        /// directories keep their global index; --out records the shard (shard.json) and
        /// refuses another. Join the shards with `hypermod sweep merge`.
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<Shard>,
    },
    /// Plot a run directory (learning curves) or a sweep directory (every run plus sweep.svg/png).
    Plot {
        /// A run directory (has metrics.jsonl) or a sweep directory (has runs.csv).
        dir: PathBuf,
    },
    /// The sine experiment's theory curves: the closed-form expected train / test loss of the
    /// spec's reconstruction of Boopathy et al.'s Theorem 1 (and our overparameterised form) vs
    /// n, p and m, with a sine sweep's monolithic test MSE overlaid and Ω fitted to it.
    SineTheory {
        /// Output directory: theory_curves.csv, theory_fit.json, theory_vs_{n,p,m}.{svg,png}.
        #[arg(long)]
        out: PathBuf,
        /// A sine sweep directory (its runs.csv): overlay its monolithic mean test MSE and fit Ω.
        #[arg(long, value_name = "SWEEP_DIR")]
        sweep: Option<PathBuf>,
        /// Model parameters p (default: the default monolithic MLP's [m,256,256,1] count per m).
        #[arg(long)]
        p: Option<usize>,
        /// Training samples n of the p and m curves (default 1000, or the sweep's).
        #[arg(long)]
        n: Option<usize>,
        /// The spectrum's Ω, α = Ω^(−m) (default: fitted to --sweep, else 2).
        #[arg(long)]
        omega: Option<f64>,
    },
    /// Statistics of a hyperteacher config's soft targets (per-sample max probability, entropy,
    /// class balance) over many teacher seeds, tasks and inputs: to compare with the official
    /// generator (benches/peers/teacher_stats.py) or to see how hard a task family is.
    TeacherStats {
        /// A hyperteacher config (its [task] section and train.seed, the first teacher seed).
        config: PathBuf,
        /// Override a config value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Teacher seeds: train.seed, train.seed + 1, ...
        #[arg(long, default_value_t = 16)]
        seeds: usize,
        /// Tasks per set (in-distribution and OOD) and seed.
        #[arg(long, default_value_t = 256)]
        tasks: usize,
        /// Inputs per task.
        #[arg(long, default_value_t = 256)]
        inputs: usize,
        /// Also write the report (every seed's figures) as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand)]
enum SweepCommand {
    /// Merge the shard directories of one sweep (`hypermod sweep FILE --shard I/N`) into OUT as
    /// if the sweep had run unsharded there: every run directory (hard-linked, else copied),
    /// then sweep.toml, runs.csv and summary.md. Refuses shards of different sweeps and lists
    /// the runs no shard finished.
    Merge {
        /// The merged sweep directory (new, or one holding this sweep: runs it holds finished
        /// are kept).
        out: PathBuf,
        /// The shard directories (e.g. OUT_ROOT/shard-*).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
}

/// `--shard I/N`, with the library's message for a bad value.
fn parse_shard(s: &str) -> std::result::Result<Shard, String> {
    s.parse::<Shard>().map_err(|e| e.to_string())
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Time training steps of an experiment config (hyperteacher: outer steps/s and tasks/s).
    Step {
        /// The experiment config (e.g. configs/hyperteacher/hnet_linear.toml).
        config: PathBuf,
        /// Override a config value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Timed outer steps (median reported).
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Untimed warm-up steps.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Also write the result as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Train R sine runs of a config end to end as one batch and the first few one after
    /// another: runs/s of both, their ratio, and a bitwise check of run 1 (seeds 1..=R, n cycling
    /// over the sample-complexity grid).
    Sweep {
        /// A sine config (e.g. configs/sine/default.toml).
        config: PathBuf,
        /// Override a config value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Runs in the batch.
        #[arg(long, default_value_t = 108)]
        runs: usize,
        /// Runs timed one after another (the first ones of the batch).
        #[arg(long, default_value_t = 4)]
        sequential: usize,
        /// Also write the result as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Train B independent MLP regression runs as one batch and one after another: run-steps/s
    /// of both, their ratio, and a bitwise check that a run gives the same numbers both ways.
    Runs {
        /// Independent runs B.
        #[arg(long, default_value_t = 16)]
        runs: usize,
        /// Timed steps per run.
        #[arg(long, default_value_t = 50)]
        steps: usize,
        /// Untimed warm-up steps per run.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Hidden width of the two-hidden-layer student (input 16, output 1).
        #[arg(long, default_value_t = 64)]
        width: usize,
        /// Samples per step and run.
        #[arg(long, default_value_t = 128)]
        samples: usize,
        /// Also write the result as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Time every kernel on a table of shapes; prints ms, GFLOP/s and GB/s.
    Kernels {
        /// Also write the records as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Table of shapes (default: full on a GPU, quick on a CPU adapter).
        #[arg(long, value_enum)]
        size: Option<BenchSize>,
        /// Timed iterations per case (median reported).
        #[arg(long, default_value_t = 20)]
        iters: usize,
        /// Untimed warm-up iterations per case.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Only cases whose kernel name contains this.
        #[arg(long)]
        filter: Option<String>,
    },
}

fn main() {
    // First, while the process has one thread: keeps display-server probes off stderr.
    hypermod::gpu::quiet_display_probes();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    // Every part of the engine opens its device with `Gpu::new()`, which reads these; setting
    // them here, before any thread starts, is what makes the flags reach all of them.
    if let Some(d) = &cli.device {
        std::env::set_var(hypermod::gpu::DEVICE_ENV, d);
    }
    if let Some(t) = cli.threads {
        std::env::set_var(hypermod::native::THREADS_ENV, t.to_string());
    }
    stop_on_ctrl_c();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        let interrupted = e
            .downcast_ref::<hypermod::Error>()
            .is_some_and(|e| matches!(e, hypermod::Error::Interrupted { .. }));
        // 130 = killed by SIGINT, as shells report it; the checkpoint is written.
        std::process::exit(if interrupted { 130 } else { 1 });
    }
}

/// Set by the first Ctrl-C: the training loop stops after the current step with a checkpoint.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// First Ctrl-C: finish the current step, write a checkpoint, exit 130 (resumable); a second one
/// exits at once (losing only what the last checkpoint does not hold).
fn stop_on_ctrl_c() {
    let installed = ctrlc::set_handler(|| {
        if STOP.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after the current step (Ctrl-C again to abort)");
    });
    if let Err(e) = installed {
        log::warn!("Ctrl-C will kill runs without a final checkpoint: {e}");
    }
}

/// Runs `f` with the training loop asking [`STOP`] after every step.
fn stoppable<R>(f: impl FnOnce() -> R) -> R {
    hypermod::train::interrupt::with_check(|| STOP.load(std::sync::atomic::Ordering::SeqCst), f)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Info { json } => info(json),
        Command::Train {
            config,
            resume,
            set,
            out,
            overwrite,
        } => match (config, resume) {
            (_, Some(dir)) => resume_run(dir),
            (Some(config), None) => train(config, set, out, overwrite),
            (None, None) => anyhow::bail!("give a config file or --resume RUN_DIR"),
        },
        Command::Sweep {
            action: Some(SweepCommand::Merge { out, dirs }),
            ..
        } => {
            let csv = hypermod::sweep::merge(&out, &dirs)?;
            println!(
                "merged {} shard directories → {}",
                dirs.len(),
                out.display()
            );
            println!("wrote {}", csv.display());
            Ok(())
        }
        Command::Sweep {
            action: None,
            sweep,
            out,
            overwrite,
            shard,
        } => {
            // clap requires the file whenever there is no subcommand.
            let sweep = sweep.context("give a sweep file")?;
            run_sweep(sweep, out, overwrite, shard)
        }
        Command::SineTheory {
            out,
            sweep,
            p,
            n,
            omega,
        } => sine_theory(out, sweep, p, n, omega),
        Command::Plot { dir } => {
            for f in hypermod::experiments::plot_dir(&dir)? {
                println!("wrote {}", f.display());
            }
            Ok(())
        }
        Command::TeacherStats {
            config,
            set,
            seeds,
            tasks,
            inputs,
            json,
        } => teacher_stats(config, set, seeds, tasks, inputs, json),
        Command::Bench {
            what:
                BenchCommand::Step {
                    config,
                    set,
                    steps,
                    warmup,
                    json,
                },
        } => bench_step(config, set, steps, warmup, json),
        Command::Bench {
            what:
                BenchCommand::Runs {
                    runs,
                    steps,
                    warmup,
                    width,
                    samples,
                    json,
                },
        } => {
            let spec = hypermod::train::supervised::RunsBenchSpec {
                runs,
                steps,
                warmup,
                mlp: hypermod::train::supervised::MlpSpec {
                    widths: vec![16, width, width, 1],
                },
                data: hypermod::train::supervised::DataSpec {
                    samples_per_step: samples,
                    teacher_hidden: vec![width],
                },
            };
            bench_runs(spec, json)
        }
        Command::Bench {
            what:
                BenchCommand::Sweep {
                    config,
                    set,
                    runs,
                    sequential,
                    json,
                },
        } => bench_sweep(config, set, runs, sequential, json),
        Command::Bench {
            what:
                BenchCommand::Kernels {
                    json,
                    size,
                    iters,
                    warmup,
                    filter,
                },
        } => bench_kernels(json, size, iters, warmup, filter),
    }
}

/// `runs/<file stem>-<unix time>`, the default run or sweep directory.
fn default_out(config: &std::path::Path) -> PathBuf {
    let stem = config.file_stem().and_then(|s| s.to_str()).unwrap_or("run");
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PathBuf::from("runs").join(format!("{stem}-{secs}"))
}

fn run_sweep(
    sweep: PathBuf,
    out: Option<PathBuf>,
    overwrite: bool,
    shard: Option<Shard>,
) -> Result<()> {
    // Expanding validates every run's config before any GPU work starts.
    let (_, runs) = hypermod::sweep::expand(&sweep)?;
    let out = out.unwrap_or_else(|| match shard {
        // Shards started in the same second must not share a directory.
        Some(s) => {
            let mut d = default_out(&sweep).into_os_string();
            d.push(format!("-shard-{}", s.index));
            PathBuf::from(d)
        }
        None => default_out(&sweep),
    });
    hypermod::sweep::check_shard_dir(&sweep, &out, overwrite, shard)?;
    let gpu = Gpu::new()?;
    match shard {
        None => println!(
            "hypermod sweep {}: {} runs on {} → {}",
            sweep.display(),
            runs.len(),
            gpu.adapter_info().name,
            out.display()
        ),
        Some(s) => {
            let r = s.runs(runs.len());
            let which = if r.is_empty() {
                "no runs".to_string()
            } else {
                format!("runs {:03} to {:03}", r.start, r.end - 1)
            };
            println!(
                "hypermod sweep {}, shard {s}: {} of {} runs ({which}) on {} → {}",
                sweep.display(),
                r.len(),
                runs.len(),
                gpu.adapter_info().name,
                out.display()
            );
        }
    }
    let csv = stoppable(|| hypermod::sweep::run_sweep_shard(&gpu, &sweep, &out, overwrite, shard))?;
    match csv {
        Some(csv) => println!("wrote {}", csv.display()),
        None => println!("shard without runs (more shards than the sweep's runs): nothing to run"),
    }
    Ok(())
}

fn train(config: PathBuf, set: Vec<String>, out: Option<PathBuf>, overwrite: bool) -> Result<()> {
    // Config errors are reported before any GPU work starts, and so is a run in the way.
    let (cfg, table) = ExperimentConfig::load(&config, &set)?;
    let out = out.unwrap_or_else(|| default_out(&config));
    hypermod::run::check_fresh_run_dir(&out, overwrite)?;
    let resolved = toml::to_string(&table).context("serialising the resolved config")?;
    let gpu = Gpu::new()?;
    println!(
        "hypermod train {} on {}: {} → {}",
        config.display(),
        gpu.adapter_info().name,
        cfg.describe(),
        out.display()
    );
    let s = stoppable(|| cfg.train(&gpu, &resolved, &out, overwrite))?;
    println!("{}", s.json());
    Ok(())
}

fn resume_run(dir: PathBuf) -> Result<()> {
    let gpu = Gpu::new()?;
    println!(
        "hypermod train --resume {} on {}",
        dir.display(),
        gpu.adapter_info().name
    );
    let s = stoppable(|| hypermod::experiments::resume(&gpu, &dir))?;
    println!("{}", s.json());
    Ok(())
}

/// `hypermod sine-theory`: evaluates, writes and plots the sine theory curves.
fn sine_theory(
    out: PathBuf,
    sweep: Option<PathBuf>,
    p: Option<usize>,
    n: Option<usize>,
    omega: Option<f64>,
) -> Result<()> {
    use hypermod::experiments::sine::theory_curve as tc;
    let table = match &sweep {
        Some(dir) => Some(hypermod::report::RunsTable::read(&dir.join("runs.csv"))?),
        None => None,
    };
    let theory = tc::evaluate(&tc::TheoryOptions { p, n, omega }, table.as_ref())?;
    let s = theory.spectrum;
    match (theory.omega_source, theory.fit) {
        (tc::OmegaSource::Fitted, Some(f)) => println!(
            "Ω = {:.4} fitted to {} empirical monolithic points (rms log error {:.3}); c = {}, d = {}",
            s.omega, f.points, f.rms_log_error, s.c, s.d
        ),
        (source, _) => println!(
            "Ω = {:.4} ({}); c = {}, d = {}{}",
            s.omega,
            match source {
                tc::OmegaSource::Given => "given",
                _ => "default: no sweep to fit",
            },
            s.c,
            s.d,
            theory
                .rms_log_error
                .map_or(String::new(), |e| format!("; rms log error on the sweep {e:.3}"))
        ),
    }
    for f in tc::write(&out, &theory)? {
        println!("wrote {}", f.display());
    }
    for f in tc::plot(&out, &theory)? {
        println!("wrote {}", f.display());
    }
    Ok(())
}

fn bench_runs(
    spec: hypermod::train::supervised::RunsBenchSpec,
    json: Option<PathBuf>,
) -> Result<()> {
    let gpu = Gpu::new()?;
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
fn finish_identity_bench<T: serde::Serialize>(
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

fn bench_sweep(
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
    let gpu = Gpu::new()?;
    println!(
        "hypermod bench sweep {} on {}: {}, {runs} runs as one batch, {sequential} alone",
        config.display(),
        gpu.adapter_info().name,
        cfg.describe()
    );
    let r = hypermod::experiments::sine::bench::bench_sweep(&gpu, c, runs, sequential)?;
    println!(
        "batched {:.2} runs/s ({:.1} s for {}), one at a time {:.3} runs/s ({:.1} s for {}): {:.1}× ; run 1 identical: {}",
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

fn teacher_stats(
    config: PathBuf,
    set: Vec<String>,
    seeds: usize,
    tasks: usize,
    inputs: usize,
    json: Option<PathBuf>,
) -> Result<()> {
    let (cfg, _) = ExperimentConfig::load(&config, &set)?;
    let Some(c) = cfg.get::<HyperteacherConfig>() else {
        anyhow::bail!(
            "{}: teacher-stats needs a hyperteacher config, not {}",
            config.display(),
            cfg.describe()
        );
    };
    use hypermod::experiments::hyperteacher::target_stats::target_stats;
    let r = target_stats(c, seeds, tasks, inputs)?;
    println!(
        "soft targets of {} (M = {}, K = {}, support {:?}): {seeds} teacher seeds from {}, \
         {tasks} tasks × {inputs} inputs per set; mean ± sd over seeds",
        config.display(),
        c.task.modules,
        c.task.max_hot,
        c.task.support,
        c.train.seed
    );
    for (name, s) in [("in-distribution", &r.in_dist), ("ood", &r.ood)] {
        println!(
            "{name:>16}: max prob {:.4} ± {:.4}  entropy {:.4} ± {:.4} nats  majority class {:.4} ± {:.4}",
            s[0].mean, s[0].sd, s[1].mean, s[1].sd, s[2].mean, s[2].sd
        );
    }
    if let Some(path) = json {
        hypermod::run::write_json(&path, &r)?;
    }
    Ok(())
}

fn bench_step(
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
    let gpu = Gpu::new()?;
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

fn info(json: bool) -> Result<()> {
    let gpu = Gpu::new()?;
    let r = gpu.report();
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("hypermod {}", env!("CARGO_PKG_VERSION"));
    println!("device:       {}", r.name);
    println!("chosen:       {}", r.selection);
    println!("backend:      {}", r.backend);
    println!("device type:  {}", r.device_type);
    println!("driver:       {} ({})", r.driver, r.driver_info);
    println!(
        "subgroups:    {}..{} invocations",
        r.subgroup_size.0, r.subgroup_size.1
    );
    let l = &r.limits;
    println!("limits:");
    println!(
        "  max_storage_buffer_binding_size      {} MiB",
        l.max_storage_buffer_binding_size >> 20
    );
    println!(
        "  max_buffer_size                      {} MiB",
        l.max_buffer_size >> 20
    );
    println!(
        "  max_compute_workgroup_storage_size   {} KiB",
        l.max_compute_workgroup_storage_size >> 10
    );
    println!(
        "  max_compute_invocations_per_workgroup {}",
        l.max_compute_invocations_per_workgroup
    );
    println!(
        "  max_compute_workgroups_per_dimension {}",
        l.max_compute_workgroups_per_dimension
    );
    println!(
        "  max_storage_buffers_per_shader_stage {}",
        l.max_storage_buffers_per_shader_stage
    );
    let on = |b: bool| if b { "on" } else { "off" };
    println!("features:");
    println!("  timestamp_query  {}", on(r.features.timestamp_query));
    println!("  subgroup         {}", on(r.features.subgroup));
    println!("  shader_f16       {}", on(r.features.shader_f16));
    let all = list_adapters();
    println!("wgpu adapters seen ({}):", all.len());
    for a in all {
        println!("  {} ({:?}, {:?})", a.name, a.backend, a.device_type);
    }
    Ok(())
}

fn bench_kernels(
    json: Option<PathBuf>,
    size: Option<BenchSize>,
    iters: usize,
    warmup: usize,
    filter: Option<String>,
) -> Result<()> {
    let gpu = Gpu::new()?;
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
