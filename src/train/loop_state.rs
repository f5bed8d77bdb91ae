//! The host side of a run's progress, saved in every checkpoint next to the experiment's GPU
//! state: step, last metrics, best-by-selection bookkeeping, the metrics log and the time spent.

use std::collections::BTreeMap;

use std::path::Path;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::checkpoint::{Checkpoint, TensorState};
use crate::error::{Error, Result};
use crate::gpu::Device;

/// Metrics of every evaluation set, by set name.
pub type SetMetrics<M> = BTreeMap<String, M>;

/// Host-side progress of a run (`M`: the experiment's metrics of one set).
pub struct LoopState<M> {
    /// Last completed (and evaluated) step.
    pub step: usize,
    /// Metrics of the last training step.
    pub train: M,
    /// Metrics of the last evaluation.
    pub last: SetMetrics<M>,
    /// Best selection score so far per run (lower is better); empty before the first
    /// evaluation.
    pub best_score: Vec<f64>,
    /// Step of each run's best score; empty before the first evaluation.
    pub best_step: Vec<usize>,
    /// Metrics of every set at the best step (each run's own, for a batch of runs).
    pub best: SetMetrics<M>,
    /// `metrics.jsonl` so far.
    pub log: String,
    /// Seconds spent before this process (earlier, interrupted runs).
    pub seconds: f64,
}

impl<M: Default> Default for LoopState<M> {
    fn default() -> Self {
        LoopState {
            step: 0,
            train: M::default(),
            last: SetMetrics::new(),
            best_score: Vec::new(),
            best_step: Vec::new(),
            best: SetMetrics::new(),
            log: String::new(),
            seconds: 0.0,
        }
    }
}

/// JSON text of a metric value stored as checkpoint metadata (these types always serialise).
fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Per-run values as checkpoint metadata: comma-separated, so a single run's value reads as
/// in every checkpoint before batches selected per run (`0.25`, `40`; empty before the first
/// evaluation), and `f64`'s text round-trips exactly (`inf` and `NaN` included).
fn join<T: ToString>(values: &[T]) -> String {
    values
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// [`join`]'s values back.
fn split<T: std::str::FromStr>(text: &str) -> std::result::Result<Vec<T>, T::Err> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',').map(str::parse).collect()
}

impl<M: Serialize + DeserializeOwned> LoopState<M> {
    /// Writes `state` (the experiment's tensors) and this progress to the checkpoint at `path`.
    /// The metadata keys are those of every checkpoint so far (`best_valid` holds the best
    /// selection score), so older run directories still resume.
    pub fn save(
        &self,
        gpu: &Device,
        state: &TensorState<'_>,
        path: &Path,
        started: Instant,
    ) -> Result<()> {
        let mut ck = Checkpoint::default();
        state.save_into(gpu, &mut ck)?;
        let m = &mut ck.metadata;
        m.insert("step".into(), self.step.to_string());
        m.insert("train".into(), to_json(&self.train));
        m.insert("last".into(), to_json(&self.last));
        m.insert("best_valid".into(), join(&self.best_score));
        m.insert("best_step".into(), join(&self.best_step));
        m.insert("best".into(), to_json(&self.best));
        m.insert("metrics_jsonl".into(), self.log.clone());
        m.insert(
            "seconds".into(),
            (self.seconds + started.elapsed().as_secs_f64()).to_string(),
        );
        m.insert("hypermod_version".into(), env!("CARGO_PKG_VERSION").into());
        ck.save(path)
    }

    /// Restores `state` from the checkpoint at `path` and returns the progress stored with it.
    pub fn load(gpu: &Device, state: &TensorState<'_>, path: &Path) -> Result<Self> {
        let ck = Checkpoint::load(path)?;
        state.load_from(gpu, &ck, path)?;
        let bad = |what: &str| Error::Io {
            path: path.display().to_string(),
            message: format!("corrupt checkpoint field `{what}`"),
        };
        let json = |k: &str| -> Result<serde_json::Value> {
            serde_json::from_str(ck.meta(k, path)?).map_err(|_| bad(k))
        };
        let typed = |k: &str| -> Result<_> { json(k) };
        let number = |k: &str| -> Result<f64> { ck.meta(k, path)?.parse().map_err(|_| bad(k)) };
        Ok(LoopState {
            step: ck.meta("step", path)?.parse().map_err(|_| bad("step"))?,
            train: serde_json::from_value(typed("train")?).map_err(|_| bad("train"))?,
            last: serde_json::from_value(typed("last")?).map_err(|_| bad("last"))?,
            best_score: split(ck.meta("best_valid", path)?).map_err(|_| bad("best_valid"))?,
            best_step: split(ck.meta("best_step", path)?).map_err(|_| bad("best_step"))?,
            best: serde_json::from_value(typed("best")?).map_err(|_| bad("best"))?,
            log: ck.meta("metrics_jsonl", path)?.to_string(),
            seconds: number("seconds")?,
        })
    }
}
