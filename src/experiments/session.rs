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
use crate::experiments::registry::SteppedExperiment;
use crate::experiments::ExperimentConfig;
use crate::gpu::Device;
use crate::train::runner::Schedule;

/// One experiment, its device, and how many steps it has trained.
pub struct Session {
    gpu: Device,
    inner: Box<dyn SteppedExperiment>,
    schedule: Schedule,
    steps_done: usize,
}

impl Session {
    /// Sets the experiment of `cfg` up on `gpu` (the session owns the device).
    pub fn new(gpu: Device, cfg: &ExperimentConfig) -> Result<Session> {
        let (inner, schedule) = cfg.session(&gpu)?;
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
        let (train, consecutive_skips) = self.inner.step_json(&self.gpu, self.steps_done)?;
        self.steps_done += 1;
        Ok(serde_json::json!({
            "step": self.steps_done,
            "train": train,
            "consecutive_skips": consecutive_skips,
        }))
    }

    /// Every evaluation set's metrics at the current state, by set name.
    pub fn evaluate(&self) -> Result<serde_json::Value> {
        self.inner.evaluate_json(&self.gpu)
    }

    fn state(&self) -> TensorState<'_> {
        self.inner.tensor_state()
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
    pub fn gpu(&self) -> &Device {
        &self.gpu
    }
}
