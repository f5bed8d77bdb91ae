//! THE training loop every experiment runs: evaluation cadence, best-by-selection bookkeeping,
//! the non-finite guard, a checkpoint at every evaluation with exact resume, `metrics.jsonl`,
//! progress, and `summary.json`. An experiment plugs in through [`Experiment`]; the loop knows
//! nothing of tasks, models or configs.
//!
//! Step 0 is an evaluation of the initial state; steps 1..=`steps` train first. A run killed at
//! any moment resumes from its last checkpoint to the same numbers, bit for bit on the same
//! device, provided the experiment's step `s` is a function of (its seed, `s`) and its state.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::checkpoint::TensorState;
use crate::error::{Error, Result};
use crate::gpu::Device;
use crate::run::{write_atomic, write_json};
use crate::train::loop_state::LoopState;
use crate::train::progress::Progress;
use crate::train::runs::PerRun;

/// File name of a run's latest checkpoint.
pub const CHECKPOINT: &str = "checkpoint.safetensors";

pub use crate::train::loop_state::SetMetrics;

/// What one training step reports to the loop.
#[derive(Clone, Copy, Debug)]
pub struct StepReport<M> {
    /// The step's training metrics.
    pub metrics: M,
    /// Consecutive steps (this one included) whose update was skipped as non-finite; 0 when
    /// this step's update was applied.
    pub consecutive_skips: u32,
}

/// An experiment as the loop sees it. Plain methods on the experiment's own struct, which holds
/// its resolved config parts, data and model; nothing here reads a config.
pub trait Experiment {
    /// Metrics of one training step or of one evaluation set (written to `metrics.jsonl`,
    /// `summary.json` and the checkpoint).
    type Metrics: Clone + Default + Serialize + DeserializeOwned;
    /// The experiment's own `summary.json` fields (e.g. decoder R²), written after the loop's.
    type Extras: Serialize + DeserializeOwned;

    /// Training step `step` (0-based): the update from the state after `step` steps.
    fn train_step(&self, gpu: &Device, step: usize) -> Result<StepReport<Self::Metrics>>;
    /// The names of the evaluation sets, in evaluation order.
    fn eval_sets(&self) -> Vec<String>;
    /// Every evaluation set's metrics at the current state.
    fn evaluate(&self, gpu: &Device) -> Result<SetMetrics<Self::Metrics>>;
    /// The evaluation set whose [`Experiment::score`] picks the best state (e.g. `valid`).
    fn selection_set(&self) -> &str;
    /// A set's score; lower is better (e.g. its loss). For a batch of runs, the batch's (e.g.
    /// the mean, for progress lines); selection uses [`Experiment::run_scores`].
    fn score(metrics: &Self::Metrics) -> f64;
    /// Each run's selection score in a set's metrics, one per run the experiment trains (one for
    /// a single run): every run of a batch keeps its own best step, as if it trained alone.
    fn run_scores(metrics: &Self::Metrics) -> Vec<f64> {
        vec![Self::score(metrics)]
    }
    /// Copies run `run`'s part of `current` into `best` (all of it for a single run).
    fn keep_run(best: &mut Self::Metrics, current: &Self::Metrics, run: usize) {
        let _ = run;
        best.clone_from(current);
    }
    /// Keeps the current state of the runs `runs` (indices into
    /// [`Experiment::run_scores`]) as their best so far.
    fn save_best(&self, gpu: &Device, runs: &[usize]) -> Result<()>;
    /// Steps skipped so far because the update was non-finite.
    fn skipped_steps(&self, gpu: &Device) -> Result<f64>;
    /// Every GPU tensor an exact resume needs, under its checkpoint name.
    fn state(&self) -> TensorState<'_>;
    /// The progress message of a training step (`loss 0.1234 acc 0.567`).
    fn describe_step(metrics: &Self::Metrics) -> String;
    /// The line printed at an evaluation, after `step N  `: the last training step's metrics
    /// (`None` at step 0, before any training step) and every set's.
    fn describe_eval(train: Option<&Self::Metrics>, sets: &SetMetrics<Self::Metrics>) -> String;
    /// The experiment's `summary.json` fields, computed at the final state.
    fn summary_extras(&self, gpu: &Device) -> Result<Self::Extras>;
}

/// The loop's own settings, resolved from the experiment's config.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Training steps.
    pub steps: usize,
    /// Steps between evaluations (the last step is always evaluated).
    pub eval_every: usize,
    /// Consecutive non-finite steps after which the run stops with a checkpoint.
    pub max_consecutive_skips: usize,
}

/// Where and how a run goes.
#[derive(Clone, Debug)]
pub struct RunPlan {
    /// The run directory (already holding `config.toml`).
    pub dir: PathBuf,
    /// Continue from the checkpoint in `dir`.
    pub resume: bool,
    /// When the command started (set-up time counts into `seconds`).
    pub started: Instant,
}

/// `summary.json`: the loop's fields, then the experiment's.
#[derive(Debug, Serialize, Deserialize)]
pub struct Summary<M, X> {
    /// Metrics of every evaluation set at the last step.
    pub r#final: SetMetrics<M>,
    /// Metrics at the best step (by the selection set's score; each run's own in a batch).
    pub best: SetMetrics<M>,
    /// Step of the best score, per run (a plain number for a single run).
    pub best_step: PerRun<usize>,
    /// Steps run.
    pub steps: usize,
    /// Wall-clock seconds of set-up, training and evaluation (all processes of the run).
    pub seconds: f64,
    /// Steps skipped because the update was non-finite.
    pub skipped_steps: f64,
    /// The experiment's own fields.
    #[serde(flatten)]
    pub extras: X,
    /// Adapter the run used.
    pub adapter: String,
}

/// One `metrics.jsonl` record.
#[derive(Serialize)]
struct Record<'a, M> {
    step: usize,
    seconds: f64,
    train: &'a M,
    sets: &'a SetMetrics<M>,
    skipped_steps: f64,
}

/// Trains `exp` by `schedule` into `plan.dir` and writes `summary.json`.
pub fn train<E: Experiment>(
    gpu: &Device,
    exp: &E,
    schedule: &Schedule,
    plan: &RunPlan,
) -> Result<Summary<E::Metrics, E::Extras>> {
    let mut st = start(gpu, exp, plan)?;
    let first = if plan.resume { st.step + 1 } else { 0 };
    let mut progress = Progress::new(schedule.steps, st.step);
    for done in first..=schedule.steps {
        if done > 0 {
            train_one(gpu, exp, schedule, plan, &mut st, done, &mut progress)?;
        }
        if done % schedule.eval_every == 0 || done == schedule.steps {
            evaluate(gpu, exp, plan, &mut st, done, &progress)?;
        }
    }
    progress.finish();
    let summary = summarise(gpu, exp, schedule, plan, st)?;
    write_json(&plan.dir.join("summary.json"), &summary)?;
    Ok(summary)
}

/// A fresh state, or the checkpoint's (restoring the experiment's tensors and the log).
fn start<E: Experiment>(gpu: &Device, exp: &E, plan: &RunPlan) -> Result<LoopState<E::Metrics>> {
    // An experiment that does not evaluate its own selection set is refused before any step.
    let sets = exp.eval_sets();
    if !sets.iter().any(|s| s == exp.selection_set()) {
        return Err(Error::NoSuchSet {
            name: exp.selection_set().to_string(),
            known: sets,
        });
    }
    if !plan.resume {
        return Ok(LoopState::default());
    }
    let st = LoopState::load(gpu, &exp.state(), &plan.dir.join(CHECKPOINT))?;
    write_atomic(&plan.dir.join("metrics.jsonl"), st.log.as_bytes())?;
    println!("resuming {} at step {}", plan.dir.display(), st.step);
    Ok(st)
}

/// Training step `done − 1`; stops the run with a checkpoint after too many non-finite steps or
/// when an embedder asks it to ([`crate::train::interrupt`]).
fn train_one<E: Experiment>(
    gpu: &Device,
    exp: &E,
    schedule: &Schedule,
    plan: &RunPlan,
    st: &mut LoopState<E::Metrics>,
    done: usize,
    progress: &mut Progress,
) -> Result<()> {
    let report = exp.train_step(gpu, done - 1)?;
    st.train = report.metrics;
    if report.consecutive_skips as usize >= schedule.max_consecutive_skips {
        st.step = done;
        let checkpoint = plan.dir.join(CHECKPOINT);
        st.save(gpu, &exp.state(), &checkpoint, plan.started)?;
        progress.finish();
        return Err(Error::NonFinite {
            step: done,
            consecutive: report.consecutive_skips,
            checkpoint,
            dir: plan.dir.clone(),
        });
    }
    progress.step(done, E::describe_step(&st.train));
    if crate::train::interrupt::requested() {
        st.step = done;
        st.save(gpu, &exp.state(), &plan.dir.join(CHECKPOINT), plan.started)?;
        progress.finish();
        return Err(Error::Interrupted {
            step: done,
            dir: plan.dir.clone(),
        });
    }
    Ok(())
}

/// Evaluates at step `done`: a `metrics.jsonl` record, the best state, a line, a checkpoint.
fn evaluate<E: Experiment>(
    gpu: &Device,
    exp: &E,
    plan: &RunPlan,
    st: &mut LoopState<E::Metrics>,
    done: usize,
    progress: &Progress,
) -> Result<()> {
    let sets = exp.evaluate(gpu)?;
    let record = Record {
        step: done,
        seconds: st.seconds + plan.started.elapsed().as_secs_f64(),
        train: &st.train,
        sets: &sets,
        skipped_steps: exp.skipped_steps(gpu)?,
    };
    let log_path = plan.dir.join("metrics.jsonl");
    let line = serde_json::to_string(&record).map_err(|source| Error::Json {
        path: log_path.clone(),
        source,
    })?;
    st.log.push_str(&line);
    st.log.push('\n');
    write_atomic(&log_path, st.log.as_bytes())?;
    let scores = selection_scores(exp, &sets)?;
    keep_best(gpu, exp, st, &sets, &scores, done)?;
    progress.println(&format!(
        "step {done:>7}  {}",
        E::describe_eval((done > 0).then_some(&st.train), &sets)
    ));
    st.last = sets;
    st.step = done;
    st.save(gpu, &exp.state(), &plan.dir.join(CHECKPOINT), plan.started)
}

/// The selection set's score per run; a typed error when the experiment did not evaluate that
/// set.
fn selection_scores<E: Experiment>(exp: &E, sets: &SetMetrics<E::Metrics>) -> Result<Vec<f64>> {
    let name = exp.selection_set();
    sets.get(name)
        .map(E::run_scores)
        .ok_or_else(|| Error::NoSuchSet {
            name: name.to_string(),
            known: sets.keys().cloned().collect(),
        })
}

/// Keeps, for every run whose score improved at step `done` (all at the first evaluation), the
/// current state and metrics as its best: each run of a batch selects on its own score, so a
/// run's best step does not depend on the runs it trained beside.
fn keep_best<E: Experiment>(
    gpu: &Device,
    exp: &E,
    st: &mut LoopState<E::Metrics>,
    sets: &SetMetrics<E::Metrics>,
    scores: &[f64],
    done: usize,
) -> Result<()> {
    if st.best_step.is_empty() {
        let all: Vec<usize> = (0..scores.len()).collect();
        exp.save_best(gpu, &all)?;
        st.best_score = scores.to_vec();
        st.best_step = vec![done; scores.len()];
        st.best = sets.clone();
        return Ok(());
    }
    if scores.len() != st.best_score.len() {
        return Err(Error::InvalidArgument {
            op: "train",
            detail: format!(
                "the selection set scored {} runs, the run's best holds {}",
                scores.len(),
                st.best_score.len()
            ),
        });
    }
    let improved: Vec<usize> = (0..scores.len())
        .filter(|&k| scores[k] < st.best_score[k])
        .collect();
    if improved.is_empty() {
        return Ok(());
    }
    exp.save_best(gpu, &improved)?;
    for &k in &improved {
        st.best_score[k] = scores[k];
        st.best_step[k] = done;
        for (name, m) in sets {
            match st.best.get_mut(name) {
                Some(best) => E::keep_run(best, m, k),
                None => {
                    st.best.insert(name.clone(), m.clone());
                }
            }
        }
    }
    Ok(())
}

fn summarise<E: Experiment>(
    gpu: &Device,
    exp: &E,
    schedule: &Schedule,
    plan: &RunPlan,
    st: LoopState<E::Metrics>,
) -> Result<Summary<E::Metrics, E::Extras>> {
    Ok(Summary {
        extras: exp.summary_extras(gpu)?,
        r#final: st.last,
        best: st.best,
        best_step: PerRun(st.best_step),
        steps: schedule.steps,
        seconds: st.seconds + plan.started.elapsed().as_secs_f64(),
        skipped_steps: exp.skipped_steps(gpu)?,
        adapter: gpu.adapter_info().name.clone(),
    })
}

/// [`train`] into `dir`, fresh or (`resume`) from its checkpoint, timed from now.
pub fn train_in<E: Experiment>(
    gpu: &Device,
    exp: &E,
    schedule: &Schedule,
    dir: &Path,
    resume: bool,
) -> Result<Summary<E::Metrics, E::Extras>> {
    let plan = RunPlan {
        dir: dir.to_path_buf(),
        resume,
        started: Instant::now(),
    };
    train(gpu, exp, schedule, &plan)
}

/// Refuses `--resume` of a directory without a checkpoint.
pub fn check_resumable(dir: &Path) -> Result<()> {
    if dir.join(CHECKPOINT).exists() {
        return Ok(());
    }
    Err(Error::InvalidArgument {
        op: "resume",
        detail: format!("{} has no {CHECKPOINT}", dir.display()),
    })
}
