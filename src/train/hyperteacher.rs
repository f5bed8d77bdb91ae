//! The hyperteacher experiment (Schug et al. 2024): builds the teacher, the task split, the
//! student and the meta-learner from a [`HyperteacherConfig`], trains, evaluates every
//! `eval_every` steps on valid / test / ood / ood_k, keeps the best-by-valid state, decodes the
//! teacher's modules from the adapted task parameters, and writes the run directory:
//! `config.toml` (resolved), `metrics.jsonl` (one record per evaluation) and `summary.json`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::config::{HyperteacherConfig, ModelKind};
use crate::error::{arg_err, Result};
use crate::gpu::Gpu;
use crate::metrics::r2::decoder_r2;
use crate::models::gpu::GpuStudent;
use crate::models::{Anil, HnetDeep, HnetLinear, Maml};
use crate::run::{write_atomic, write_json};
use crate::tasks::hyperteacher::{Coefficients, Task, TaskSpace, TaskSplit};
use crate::tasks::teacher::{TeacherConfig, TeacherWeightsGpu};
use crate::train::meta::{data_stream, sample_latents, EpisodeMetrics, MetaConfig, MetaLearner};

/// Module decoding is skipped above this many task parameters (MAML adapts 305k: a 1,024-task
/// design matrix would not fit the host's memory, and the reference's CG fit is meaningless there).
pub const MAX_DECODER_DIM: usize = 16_384;

/// One evaluation set: its name and task latents (fixed for the run).
struct EvalSet {
    name: String,
    latents: Vec<f32>,
}

/// Metrics of every evaluation set, by name.
type SetMetrics = BTreeMap<String, EpisodeMetrics>;

/// One `metrics.jsonl` record.
#[derive(Serialize)]
struct Record<'a> {
    step: usize,
    seconds: f64,
    train: EpisodeMetrics,
    sets: &'a BTreeMap<String, EpisodeMetrics>,
    skipped_steps: f64,
}

/// What `hypermod train` writes to `summary.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Summary {
    /// Metrics of every evaluation set at the last step.
    pub r#final: BTreeMap<String, EpisodeMetrics>,
    /// Metrics at the best-by-valid step.
    pub best: BTreeMap<String, EpisodeMetrics>,
    /// Step of the best mean valid loss.
    pub best_step: usize,
    /// Outer steps run.
    pub steps: usize,
    /// Wall-clock seconds of training and evaluation.
    pub seconds: f64,
    /// Outer steps skipped because the meta-gradient was non-finite.
    pub skipped_steps: f64,
    /// Decoder R² (test → ood), `None` when skipped.
    pub decoder_r2: Option<DecoderR2>,
    /// Adapter the run used.
    pub adapter: String,
}

/// Module-decoding R² per (layer, module) and its mean.
#[derive(Debug, Serialize, Deserialize)]
pub struct DecoderR2 {
    /// Mean over the coordinates with a defined R².
    pub mean: f64,
    /// `per_module[l][m]`.
    pub per_module: Vec<Vec<Option<f64>>>,
}

/// Runs the experiment described by `cfg` and writes `out`. `resolved` is the config as loaded
/// (with `--set` overrides), stored verbatim.
pub fn run(gpu: &Gpu, cfg: &HyperteacherConfig, resolved: &str, out: &Path) -> Result<Summary> {
    cfg.validate()
        .map_err(|e| arg_err("config", e.to_string()))?;
    std::fs::create_dir_all(out).map_err(|e| crate::Error::Io {
        path: out.display().to_string(),
        message: e.to_string(),
    })?;
    write_atomic(&out.join("config.toml"), resolved.as_bytes())?;
    write_run_info(gpu, out)?;
    with_student(
        cfg,
        RunStudent {
            gpu,
            cfg,
            out,
            resume: false,
        },
    )
}

/// Continues the run in `dir` from its last checkpoint, with the config stored there. Exact: the
/// data of every step is a function of (seed, step), so the resumed run ends with the same
/// numbers (bitwise, on the same device) as an uninterrupted one.
pub fn resume(gpu: &Gpu, dir: &Path) -> Result<Summary> {
    let path = dir.join("config.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| crate::Error::Io {
        path: path.display().to_string(),
        message: format!("not a run directory: {e}"),
    })?;
    let (cfg, _) = crate::config::parse_toml::<HyperteacherConfig>(&text, &path, &[])
        .map_err(|e| arg_err("config", e.to_string()))?;
    cfg.validate()
        .map_err(|e| arg_err("config", e.to_string()))?;
    if !dir.join(CHECKPOINT).exists() {
        return Err(arg_err(
            "resume",
            format!("{} has no {CHECKPOINT}", dir.display()),
        ));
    }
    with_student(
        &cfg,
        RunStudent {
            gpu,
            cfg: &cfg,
            out: dir,
            resume: true,
        },
    )
}

/// `run.json`: hypermod version, the adapter, when the run started and its command line, so a
/// run can be compared with others weeks later.
fn write_run_info(gpu: &Gpu, out: &Path) -> Result<()> {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let info = serde_json::json!({
        "hypermod_version": env!("CARGO_PKG_VERSION"),
        "adapter": gpu.report(),
        "started_unix": started,
        "command": std::env::args().collect::<Vec<_>>(),
    });
    write_json(&out.join("run.json"), &info)
}

/// File name of a run's latest checkpoint.
pub const CHECKPOINT: &str = "checkpoint.safetensors";

/// Something to do with the config's student, whatever its type (the students' CPU twins are
/// generic, so they cannot be trait objects).
trait StudentTask {
    type Out;
    fn call<S: GpuStudent>(self, student: &S) -> Self::Out;
}

/// Builds the config's student (width and T = ratio·M from the config) and hands it to `task`.
fn with_student<W: StudentTask>(cfg: &HyperteacherConfig, task: W) -> W::Out {
    let t = cfg.task.modules * cfg.model.ratio_templates;
    let width = cfg.width();
    match cfg.model.kind {
        ModelKind::HnetLinear => task.call(&HnetLinear {
            hidden_dim: width,
            ..HnetLinear::paper(t)
        }),
        ModelKind::HnetDeepmlp => task.call(&HnetDeep {
            hidden_dim: width,
            ..HnetDeep::paper(t)
        }),
        ModelKind::Anil => task.call(&Anil {
            hidden_dim: width,
            ..Anil::paper()
        }),
        ModelKind::Maml => task.call(&Maml {
            hidden_dim: width,
            ..Maml::paper()
        }),
    }
}

struct RunStudent<'a> {
    gpu: &'a Gpu,
    cfg: &'a HyperteacherConfig,
    out: &'a Path,
    resume: bool,
}

impl StudentTask for RunStudent<'_> {
    type Out = Result<Summary>;
    fn call<S: GpuStudent>(self, student: &S) -> Result<Summary> {
        run_with(self.gpu, self.cfg, student, self.out, self.resume)
    }
}

fn pool(space: &TaskSpace, tasks: &[Task], coefficients: Coefficients) -> Result<Vec<Vec<f32>>> {
    let flat = space
        .latents(tasks, coefficients)
        .map_err(|e| arg_err("tasks", e.to_string()))?;
    Ok(flat
        .chunks(space.latent_len())
        .map(<[f32]>::to_vec)
        .collect())
}

/// The coefficients of the latents of one task pool (`salt` separates the pools' draws).
fn coefficients(cfg: &HyperteacherConfig, salt: u64) -> Coefficients {
    if cfg.task.continuous {
        Coefficients::Continuous {
            seed: cfg.train.seed ^ salt,
        }
    } else {
        Coefficients::Binary
    }
}

/// What training and benchmarking share: the task split, the pools of task latents, and the
/// meta-learner (teacher, student, episodes, optimisers) on the GPU.
struct Prepared {
    space: TaskSpace,
    split: TaskSplit,
    train_pool: Vec<Vec<f32>>,
    ood_pool: Vec<Vec<f32>>,
    learner: MetaLearner,
}

fn prepare<S: GpuStudent>(gpu: &Gpu, cfg: &HyperteacherConfig, student: &S) -> Result<Prepared> {
    let tp = cfg.train_params();
    let tr = &cfg.train;
    let space = cfg
        .task_space()
        .map_err(|e| arg_err("config", e.to_string()))?;
    let split = space
        .split(cfg.task_support())
        .map_err(|e| arg_err("config", e.to_string()))?;
    let train_pool = pool(&space, &split.train, coefficients(cfg, 1))?;
    let ood_pool = pool(&space, &split.ood, coefficients(cfg, 2))?;
    let teacher_cfg = TeacherConfig {
        hidden_dim: cfg.task.hidden_dim,
        num_hidden: cfg.task.layers + 1,
        ..TeacherConfig::paper(cfg.task.modules, cfg.task.chunking, tr.seed)
    };
    let weights = TeacherWeightsGpu::generate(gpu, teacher_cfg)
        .map_err(|e| arg_err("teacher", e.to_string()))?;
    let meta_cfg = MetaConfig {
        seed: tr.seed,
        shots_support: cfg.task.shots_support,
        inner_batch: tp.inner_batch,
        shots_query: cfg.task.shots_query,
        steps_inner: tp.steps_inner,
        inner: MetaConfig::inner_adamw(tp.lr_inner as f32),
        outer: MetaConfig::outer_adamw(
            tp.lr_outer as f32,
            tp.wd_outer as f32,
            tp.max_grad_norm as f32,
        ),
    };
    let eval_batch = tr.eval_tasks.min(tr.meta_batch.max(64));
    let learner = MetaLearner::new(gpu, student, &weights, tr.meta_batch, eval_batch, meta_cfg)?;
    Ok(Prepared {
        space,
        split,
        train_pool,
        ood_pool,
        learner,
    })
}

fn run_with<S: GpuStudent>(
    gpu: &Gpu,
    cfg: &HyperteacherConfig,
    student: &S,
    out: &Path,
    resume: bool,
) -> Result<Summary> {
    let started = Instant::now();
    let tr = &cfg.train;
    let Prepared {
        space,
        split,
        train_pool,
        ood_pool,
        learner,
    } = prepare(gpu, cfg, student)?;
    let coeff = |salt: u64| coefficients(cfg, salt);

    // Evaluation sets, fixed for the whole run (same tasks and data at every evaluation).
    let ll = space.latent_len();
    let sample =
        |p: &[Vec<f32>], salt: u64| sample_latents(p, tr.eval_tasks, tr.seed ^ 0xE7A1, salt);
    let mut sets = vec![
        EvalSet {
            name: "valid".into(),
            latents: sample(&train_pool, 1),
        },
        EvalSet {
            name: "test".into(),
            latents: sample(&train_pool, 2),
        },
        EvalSet {
            name: "ood".into(),
            latents: sample(&ood_pool, 3),
        },
    ];
    for k in space.hotness_levels() {
        let tasks = if k <= space.max_hot() {
            space.ood_with_hotness(&split, k)
        } else {
            space.random_k_hot(k, tr.eval_tasks, tr.seed ^ k as u64)
        }
        .map_err(|e| arg_err("tasks", e.to_string()))?;
        if tasks.is_empty() {
            continue;
        }
        let p = pool(&space, &tasks, coeff(10 + k as u64))?;
        sets.push(EvalSet {
            name: format!("ood_k{k}"),
            latents: sample(&p, 10 + k as u64),
        });
    }

    let evaluate = |keep: &[&str]| -> Result<(SetMetrics, BTreeMap<String, Vec<f32>>)> {
        let mut metrics = BTreeMap::new();
        let mut params = BTreeMap::new();
        for (i, s) in sets.iter().enumerate() {
            let want = keep.contains(&s.name.as_str());
            let (m, p) =
                learner.evaluate(gpu, &s.latents, ll, data_stream(1 + i as u8, 0), want)?;
            metrics.insert(s.name.clone(), m);
            if want {
                params.insert(s.name.clone(), p);
            }
        }
        Ok((metrics, params))
    };

    let mut st = if resume {
        let st = LoopState::load(gpu, &learner, &out.join(CHECKPOINT))?;
        write_atomic(&out.join("metrics.jsonl"), st.log.as_bytes())?;
        println!("resuming {} at step {}", out.display(), st.step);
        st
    } else {
        LoopState::default()
    };
    let first = if resume { st.step + 1 } else { 0 };
    let bar = progress_bar(tr.steps_outer as u64);
    bar.set_position(st.step as u64);
    let mut last_report = Instant::now();
    // Step 0 is an evaluation of the initial state; steps 1..=steps_outer train first.
    for done in first..=tr.steps_outer {
        if done > 0 {
            let step = done - 1;
            let latents = sample_latents(&train_pool, tr.meta_batch, tr.seed, step as u64);
            let inject = tr.inject_nan_steps.contains(&done);
            let (m, consecutive) =
                learner.train_step_with(gpu, &latents, data_stream(0, step as u64), inject)?;
            st.train = m;
            if consecutive as usize >= tr.max_consecutive_skips {
                st.step = done;
                st.save(gpu, &learner, &out.join(CHECKPOINT), started)?;
                bar.finish_and_clear();
                return Err(arg_err(
                    "train",
                    format!(
                        "stopped at step {done}: {consecutive} consecutive outer steps had a non-finite \
                         meta-gradient (each skipped on the GPU, parameters untouched). The checkpoint \
                         {} holds the state at step {done}; lower the learning rates or clip, then \
                         `hypermod train --resume {}`",
                        out.join(CHECKPOINT).display(),
                        out.display()
                    ),
                ));
            }
            bar.set_message(format!("loss {:.4} acc {:.3}", m.loss, m.acc));
            bar.inc(1);
            if bar.is_hidden() && last_report.elapsed().as_secs() >= 10 {
                // Not a terminal (CI, nohup): a plain line every 10 s instead of a bar.
                println!(
                    "step {done}/{}: loss {:.4} acc {:.3}",
                    tr.steps_outer, m.loss, m.acc
                );
                last_report = Instant::now();
            }
        }
        if done % tr.eval_every == 0 || done == tr.steps_outer {
            let (m, _) = evaluate(&[])?;
            let rec = Record {
                step: done,
                seconds: st.seconds + started.elapsed().as_secs_f64(),
                train: st.train,
                sets: &m,
                skipped_steps: skipped_steps(gpu, &learner)?,
            };
            st.log.push_str(
                &serde_json::to_string(&rec).map_err(|e| arg_err("metrics", e.to_string()))?,
            );
            st.log.push('\n');
            write_atomic(&out.join("metrics.jsonl"), st.log.as_bytes())?;
            let valid = m["valid"].loss;
            if st.best_step.is_none() || valid < st.best_valid {
                learner.save_best(gpu)?;
                (st.best_valid, st.best_step, st.best) = (valid, Some(done), m.clone());
            }
            let t = st.train;
            bar.suspend(|| {
                println!(
                    "step {done:>7}  train {:.4}/{:.3} (support {:.4})  valid {:.4}/{:.3}  ood {:.4}/{:.3}",
                    t.loss, t.acc, t.support_loss, m["valid"].loss, m["valid"].acc, m["ood"].loss, m["ood"].acc
                )
            });
            st.last = m;
            st.step = done;
            st.save(gpu, &learner, &out.join(CHECKPOINT), started)?;
        }
    }
    bar.finish_and_clear();

    // Module decoding at the final state: fit on in-distribution (test) tasks, score on OOD.
    let dim = learner.layout().task_len();
    let decoder = if dim <= MAX_DECODER_DIM {
        let (_, params) = evaluate(&["test", "ood"])?;
        let find = |n: &str| {
            sets.iter()
                .find(|s| s.name == n)
                .map(|s| s.latents.as_slice())
                .unwrap_or(&[])
        };
        let r2 = decoder_r2(
            &params["test"],
            find("test"),
            &params["ood"],
            find("ood"),
            dim,
            ll,
        );
        let defined: Vec<f64> = r2.iter().flatten().copied().collect();
        Some(DecoderR2 {
            mean: defined.iter().sum::<f64>() / defined.len().max(1) as f64,
            per_module: r2
                .chunks(space.modules())
                .map(<[Option<f64>]>::to_vec)
                .collect(),
        })
    } else {
        None
    };
    let (best_step, best_m, last) = (st.best_step.unwrap_or(0), st.best, st.last);
    let summary = Summary {
        r#final: last,
        best: best_m,
        best_step,
        steps: tr.steps_outer,
        seconds: st.seconds + started.elapsed().as_secs_f64(),
        skipped_steps: skipped_steps(gpu, &learner)?,
        decoder_r2: decoder,
        adapter: gpu.adapter_info().name.clone(),
    };
    write_json(&out.join("summary.json"), &summary)?;
    Ok(summary)
}

/// Host-side progress of a run, saved with every checkpoint next to the GPU state.
#[derive(Default)]
struct LoopState {
    /// Last completed (and evaluated) outer step.
    step: usize,
    /// Metrics of the last training step.
    train: EpisodeMetrics,
    /// Metrics of the last evaluation.
    last: SetMetrics,
    /// Best mean valid loss so far, its step and metrics.
    best_valid: f64,
    best_step: Option<usize>,
    best: SetMetrics,
    /// `metrics.jsonl` so far.
    log: String,
    /// Seconds spent before this process (earlier, interrupted runs).
    seconds: f64,
}

impl LoopState {
    fn save(&self, gpu: &Gpu, learner: &MetaLearner, path: &Path, started: Instant) -> Result<()> {
        let mut ck = Checkpoint::default();
        for (name, t) in learner.state() {
            ck.tensors
                .insert(name.to_string(), (vec![t.len()], gpu.read(t)?));
        }
        let m = &mut ck.metadata;
        m.insert("step".into(), self.step.to_string());
        m.insert("train".into(), to_json(&self.train));
        m.insert("last".into(), to_json(&self.last));
        m.insert("best_valid".into(), self.best_valid.to_string());
        m.insert(
            "best_step".into(),
            self.best_step.map_or(String::new(), |s| s.to_string()),
        );
        m.insert("best".into(), to_json(&self.best));
        m.insert("metrics_jsonl".into(), self.log.clone());
        m.insert(
            "seconds".into(),
            (self.seconds + started.elapsed().as_secs_f64()).to_string(),
        );
        m.insert("hypermod_version".into(), env!("CARGO_PKG_VERSION").into());
        ck.save(path)
    }

    fn load(gpu: &Gpu, learner: &MetaLearner, path: &Path) -> Result<LoopState> {
        let ck = Checkpoint::load(path)?;
        let bad = |what: &str| crate::Error::Io {
            path: path.display().to_string(),
            message: format!("corrupt checkpoint field `{what}`"),
        };
        for (name, t) in learner.state() {
            let (_, values) = ck.tensors.get(name).ok_or_else(|| bad(name))?;
            if values.len() != t.len() {
                return Err(crate::Error::Io {
                    path: path.display().to_string(),
                    message: format!(
                        "tensor {name} has {} values, the run's model needs {} (different config?)",
                        values.len(),
                        t.len()
                    ),
                });
            }
            gpu.write(t, values)?;
        }
        let parse = |k: &str| -> Result<serde_json::Value> {
            serde_json::from_str(ck.meta(k, path)?).map_err(|_| bad(k))
        };
        let sets = |k: &str| -> Result<SetMetrics> {
            serde_json::from_value(parse(k)?).map_err(|_| bad(k))
        };
        let best_step = ck.meta("best_step", path)?;
        Ok(LoopState {
            step: ck.meta("step", path)?.parse().map_err(|_| bad("step"))?,
            train: serde_json::from_value(parse("train")?).map_err(|_| bad("train"))?,
            last: sets("last")?,
            best_valid: ck
                .meta("best_valid", path)?
                .parse()
                .map_err(|_| bad("best_valid"))?,
            best_step: if best_step.is_empty() {
                None
            } else {
                Some(best_step.parse().map_err(|_| bad("best_step"))?)
            },
            best: sets("best")?,
            log: ck.meta("metrics_jsonl", path)?.to_string(),
            seconds: ck
                .meta("seconds", path)?
                .parse()
                .map_err(|_| bad("seconds"))?,
        })
    }
}

/// JSON text of a metric value stored as checkpoint metadata (these types always serialise).
fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn skipped_steps(gpu: &Gpu, learner: &MetaLearner) -> Result<f64> {
    Ok(gpu
        .read(learner.outer_optimizer().skipped())?
        .first()
        .copied()
        .unwrap_or(0.0) as f64)
}

fn progress_bar(len: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}, {per_sec}] {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// The student's parameter counts for a config (meta, task), without touching the GPU.
pub fn param_counts(cfg: &HyperteacherConfig) -> (usize, usize) {
    struct Counts;
    impl StudentTask for Counts {
        type Out = (usize, usize);
        fn call<S: GpuStudent>(self, student: &S) -> (usize, usize) {
            let l = student.param_layout();
            (l.meta_len(), l.task_len())
        }
    }
    with_student(cfg, Counts)
}

/// Throughput of the outer step at a config's size (`hypermod bench step`).
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
    /// Adapter.
    pub adapter: String,
}

/// Times `steps` outer steps after `warmup` untimed ones. Wall clock per step is the honest
/// figure here: a step is one submit ending in the loss readback, so nothing overlaps it.
pub fn bench_step(
    gpu: &Gpu,
    cfg: &HyperteacherConfig,
    warmup: usize,
    steps: usize,
) -> Result<StepBench> {
    struct Bench<'a> {
        gpu: &'a Gpu,
        cfg: &'a HyperteacherConfig,
        warmup: usize,
        steps: usize,
    }
    impl StudentTask for Bench<'_> {
        type Out = Result<Vec<f64>>;
        fn call<S: GpuStudent>(self, student: &S) -> Result<Vec<f64>> {
            let p = prepare(self.gpu, self.cfg, student)?;
            let tr = &self.cfg.train;
            let mut times = Vec::with_capacity(self.steps);
            for i in 0..self.warmup + self.steps {
                let latents = sample_latents(&p.train_pool, tr.meta_batch, tr.seed, i as u64);
                let t0 = Instant::now();
                p.learner
                    .train_step(self.gpu, &latents, data_stream(0, i as u64))?;
                if i >= self.warmup {
                    times.push(t0.elapsed().as_secs_f64());
                }
            }
            Ok(times)
        }
    }
    if steps == 0 {
        return Err(arg_err("bench step", "need at least one timed step"));
    }
    cfg.validate()
        .map_err(|e| arg_err("config", e.to_string()))?;
    let mut times = with_student(
        cfg,
        Bench {
            gpu,
            cfg,
            warmup,
            steps,
        },
    )?;
    times.sort_by(f64::total_cmp);
    let median_s = times[times.len() / 2];
    Ok(StepBench {
        steps,
        median_s,
        steps_per_s: 1.0 / median_s,
        tasks_per_s: cfg.train.meta_batch as f64 / median_s,
        meta_batch: cfg.train.meta_batch,
        steps_inner: cfg.train_params().steps_inner,
        params: param_counts(cfg),
        adapter: gpu.adapter_info().name.clone(),
    })
}
