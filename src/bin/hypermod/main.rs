//! The `hypermod` command line: `info`, `train`, `sweep`, `plot` and `bench`. Configs name their
//! experiment (`experiment = "..."`); the commands read it first and dispatch on it.

mod bench;
mod info;
mod runs;
mod studies;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use hypermod::bench::BenchSize;
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
    /// Print this command line's reference in Markdown (docs/cli.md is its output).
    #[command(hide = true)]
    CliReference,
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
    /// Train R sine runs of a config end to end as a sweep trains them (one batch on a GPU; one
    /// run per core at a time on the native backend) and the first few one after another:
    /// runs/s of both, their ratio, and a bitwise check of run 1 (seeds 1..=R, n cycling over the
    /// sample-complexity grid).
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

/// Restores the default action of SIGPIPE, which Rust's runtime ignores: with it ignored, a
/// closed stdout (`hypermod info | head -1`) makes the next print panic. With the default, the
/// process ends quietly with the conventional status (killed by SIGPIPE, 141 in a shell), as
/// other Unix tools do.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first in `main`, before any other thread exists; SIG_DFL is a valid action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() {
    restore_sigpipe();
    // First, while the process has one thread: keeps display-server probes off stderr.
    hypermod::gpu::quiet_display_probes();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    // Every part of the engine opens its device with `Device::new()`, which reads these; setting
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

/// The whole command line in Markdown, from clap's own definitions: one section per command
/// (hidden ones left out) with its long help. `docs/cli.md` is this text, and
/// `tests/cli_reference.rs` fails when the two disagree, so the reference cannot drift.
fn cli_reference() -> String {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: &str, out: &mut String) {
        if cmd.is_hide_set() || cmd.get_name() == "help" {
            return;
        }
        let help = cmd.clone().render_long_help().to_string();
        out.push_str(&format!(
            "\n## `{path}`\n\n```text\n{}\n```\n",
            help.trim_end()
        ));
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = String::from(
        "# Command-line reference\n\nGenerated from the command line's own definitions by \
         `hypermod cli-reference > docs/cli.md`; `tests/cli_reference.rs` fails when this page \
         and the command line disagree. Every command also takes `--device` and `--threads`.\n",
    );
    walk(&cmd, "hypermod", &mut out);
    out
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Info { json } => info::info(json),
        Command::CliReference => {
            print!("{}", cli_reference());
            Ok(())
        }
        Command::Train {
            config,
            resume,
            set,
            out,
            overwrite,
        } => match (config, resume) {
            (_, Some(dir)) => runs::resume_run(dir),
            (Some(config), None) => runs::train(config, set, out, overwrite),
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
            runs::run_sweep(sweep, out, overwrite, shard)
        }
        Command::SineTheory {
            out,
            sweep,
            p,
            n,
            omega,
        } => studies::sine_theory(out, sweep, p, n, omega),
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
        } => studies::teacher_stats(config, set, seeds, tasks, inputs, json),
        Command::Bench {
            what:
                BenchCommand::Step {
                    config,
                    set,
                    steps,
                    warmup,
                    json,
                },
        } => bench::bench_step(config, set, steps, warmup, json),
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
            bench::bench_runs(spec, json)
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
        } => bench::bench_sweep(config, set, runs, sequential, json),
        Command::Bench {
            what:
                BenchCommand::Kernels {
                    json,
                    size,
                    iters,
                    warmup,
                    filter,
                },
        } => bench::bench_kernels(json, size, iters, warmup, filter),
    }
}
