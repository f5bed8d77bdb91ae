//! An experiment driven step by step from outside the training loop (the Python bindings'
//! `Experiment`, or any embedder): build it from a config, call [`Session::step`] and
//! [`Session::evaluate`], read and write its state by checkpoint name.
//!
//! The steps are the loop's: step `s` trains from the state after `s` steps with the data of
//! (seed, `s`), and evaluating changes no state, so `steps` calls of `step()` and one
//! `evaluate()` give the final metrics `hypermod train` reports for that config, bit for bit on
//! the same device.

use std::collections::BTreeMap;
use std::path::Path;

use crate::checkpoint::{Checkpoint, TensorState};
use crate::error::{Error, Result};
use crate::experiments::hyperteacher::Hyperteacher;
use crate::experiments::sine::Sine;
use crate::experiments::theory::Theory;
use crate::experiments::ExperimentConfig;
use crate::gpu::Gpu;
use crate::train::runner::{Experiment, Schedule};

/// The experiment behind a session.
enum Inner {
    Hyperteacher(Box<Hyperteacher>),
    Theory(Box<Theory>),
    Sine(Box<Sine>),
}

/// One experiment, its device, and how many steps it has trained.
pub struct Session {
    gpu: Gpu,
    inner: Inner,
    schedule: Schedule,
    steps_done: usize,
}

fn json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| Error::InvalidArgument {
        op: "session",
        detail: format!("metrics are not JSON: {e}"),
    })
}

impl Session {
    /// Sets the experiment of `cfg` up on `gpu` (the session owns the device).
    pub fn new(gpu: Gpu, cfg: &ExperimentConfig) -> Result<Session> {
        let (inner, schedule) = match cfg {
            ExperimentConfig::Hyperteacher(c) => {
                c.validate()?;
                let (exp, schedule) = Hyperteacher::new(&gpu, c)?;
                (Inner::Hyperteacher(Box::new(exp)), schedule)
            }
            ExperimentConfig::Theory(c) => {
                let (exp, schedule) = Theory::new(&gpu, std::slice::from_ref(c))?;
                (Inner::Theory(Box::new(exp)), schedule)
            }
            ExperimentConfig::Sine(c) => {
                let (exp, schedule) = Sine::new(&gpu, std::slice::from_ref(c), false)?;
                (Inner::Sine(Box::new(exp)), schedule)
            }
        };
        Ok(Session {
            gpu,
            inner,
            schedule,
            steps_done: 0,
        })
    }

    /// Trains one step and returns its report: `{"step", "train": {...}, "consecutive_skips"}`
    /// (`step` counts the steps done, as in `metrics.jsonl`).
    pub fn step(&mut self) -> Result<serde_json::Value> {
        let (train, consecutive_skips) = match &self.inner {
            Inner::Hyperteacher(e) => {
                let r = e.train_step(&self.gpu, self.steps_done)?;
                (json(&r.metrics)?, r.consecutive_skips)
            }
            Inner::Theory(e) => {
                let r = e.train_step(&self.gpu, self.steps_done)?;
                (json(&r.metrics)?, r.consecutive_skips)
            }
            Inner::Sine(e) => {
                let r = e.train_step(&self.gpu, self.steps_done)?;
                (json(&r.metrics)?, r.consecutive_skips)
            }
        };
        self.steps_done += 1;
        Ok(serde_json::json!({
            "step": self.steps_done,
            "train": train,
            "consecutive_skips": consecutive_skips,
        }))
    }

    /// Every evaluation set's metrics at the current state, by set name.
    pub fn evaluate(&self) -> Result<serde_json::Value> {
        match &self.inner {
            Inner::Hyperteacher(e) => json(&e.evaluate(&self.gpu)?),
            Inner::Theory(e) => json(&e.evaluate(&self.gpu)?),
            Inner::Sine(e) => json(&e.evaluate(&self.gpu)?),
        }
    }

    fn state(&self) -> TensorState<'_> {
        match &self.inner {
            Inner::Hyperteacher(e) => e.state(),
            Inner::Theory(e) => e.state(),
            Inner::Sine(e) => e.state(),
        }
    }

    /// Every tensor an exact resume needs, flat, under its checkpoint name.
    pub fn state_dict(&self) -> Result<BTreeMap<String, Vec<f32>>> {
        let mut ck = Checkpoint::default();
        self.state().save_into(&self.gpu, &mut ck)?;
        Ok(ck.tensors.into_iter().map(|(k, (_, v))| (k, v)).collect())
    }

    /// Overwrites the state from `tensors` (every name of [`Session::state_dict`], same sizes)
    /// and sets the step counter to `steps_done`.
    pub fn load_state_dict(
        &mut self,
        tensors: BTreeMap<String, Vec<f32>>,
        steps_done: usize,
    ) -> Result<()> {
        // Checked here, as argument errors naming the tensor, before anything is written.
        for (name, t) in self.state().entries() {
            let bad = |detail: String| Error::InvalidArgument {
                op: "load_state_dict",
                detail,
            };
            match tensors.get(name) {
                None => return Err(bad(format!("missing tensor `{name}`"))),
                Some(v) if v.len() != t.len() => {
                    return Err(bad(format!(
                        "tensor `{name}` has {} values, the experiment's has {}",
                        v.len(),
                        t.len()
                    )))
                }
                Some(_) => {}
            }
        }
        let ck = Checkpoint {
            tensors: tensors
                .into_iter()
                .map(|(k, v)| (k, (vec![v.len()], v)))
                .collect(),
            metadata: BTreeMap::new(),
        };
        self.state()
            .load_from(&self.gpu, &ck, Path::new("<state dict>"))?;
        self.steps_done = steps_done;
        Ok(())
    }

    /// Steps trained so far.
    pub fn steps_done(&self) -> usize {
        self.steps_done
    }

    /// The config's training schedule (steps, evaluation cadence).
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// The device the session runs on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
}
