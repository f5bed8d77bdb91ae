//! The theory experiment's config sections `[task]`, `[student]`, `[train]` with the defaults of
//! the authors' `run_theory.py` (spec `schug-hyperteacher.md` §5.4, §7.3) and `validate()`, which
//! runs before any GPU work.
//!
//! One difference in spelling: `run_theory.py` trains `train_step × n_task` outer steps
//! (10,000 × 6 = 60,000 by default); here `train.steps` is that product itself.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::task_list::{Label, TaskList};
use super::NAME;
use crate::config::check::{invalid, positive_finite, range};
use crate::config::{experiment_from_table, ConfigError};

/// Largest size of any one dimension (modules, units, inputs, tasks) accepted: a typo guard.
pub const MAX_DIM: usize = 1 << 16;
/// Most teacher modules: the evaluation families enumerate every h-hot combination.
pub const MAX_MODULES: usize = 16;

/// `[task]`: the teacher MultitaskNet and its training tasks (§7.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskConfig {
    /// Teacher modules M (`n_task`). Default 6.
    pub modules: usize,
    /// Input features (`n_input`). Default 16.
    pub inputs: usize,
    /// Teacher hidden units (`n_hidden`). Default 16.
    pub hidden: usize,
    /// Outputs (`n_output`). Default 4.
    pub outputs: usize,
    /// Training tasks in the authors' `manual_task` syntax (`"0,1;1,2"`). Default the two
    /// disjoint triangles `"0,1;1,2;2,0;3,4;4,5;5,3"` (doomed), as `run_theory.py`.
    pub task_list: String,
    /// Continuous (simplex-weighted) training latents instead of k-hot / √k
    /// (`continuous_combinations`). Default true. Evaluation latents are always continuous.
    pub continuous: bool,
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig {
            modules: 6,
            inputs: 16,
            hidden: 16,
            outputs: 4,
            task_list: "0,1;1,2;2,0;3,4;4,5;5,3".into(),
            continuous: true,
        }
    }
}

/// `[student]`: a MultitaskNet wider than the teacher by integer factors (§7.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StudentConfig {
    /// Student hidden units per teacher hidden unit (`n_hidden_student_factor`). Default 2.
    pub hidden_factor: usize,
    /// Student modules per teacher module (`n_task_student_factor`). Default 2.
    pub module_factor: usize,
}

impl Default for StudentConfig {
    fn default() -> Self {
        StudentConfig {
            hidden_factor: 2,
            module_factor: 2,
        }
    }
}

/// `[train]`: inner latent inference and the outer first-order meta-update (§5.4, §7.4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Run seed: teacher, student init, shared initial latent, tasks and inputs. Default 42.
    pub seed: u64,
    /// Outer steps (`train_step · n_task`). Default 60,000.
    pub steps: usize,
    /// Tasks per outer step (`meta_batch_size`). Default 64.
    pub meta_batch: usize,
    /// Fresh inputs per task per inner step and per outer query (`batch_size`). Default 256.
    pub inputs: usize,
    /// Inner Adam steps inferring each task's latent (`inner_step`). Default 300.
    pub steps_inner: usize,
    /// Inner Adam learning rate (`inner_learning_rate`). Default 0.003.
    pub lr_inner: f64,
    /// Outer AdamW peak learning rate (`learning_rate`). Default 1e-3.
    pub lr: f64,
    /// Final learning rate of the cosine decay as a fraction of `lr` (`cosine_alpha`).
    /// Default 0.001.
    pub cosine_alpha: f64,
    /// Outer AdamW decoupled weight decay (`weight_decay`). Default 0.
    pub weight_decay: f64,
    /// Outer steps between evaluations (`log_every`). Default 1,000.
    pub eval_every: usize,
    /// Tasks per evaluation set (`eval_meta_batch_size`). Default 512.
    pub eval_tasks: usize,
    /// Inputs per task for the evaluation losses (`eval_batch_size`; latent inference still
    /// uses `inputs` per inner step, as the reference). Default 1,024.
    pub eval_inputs: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 42,
            steps: 60_000,
            meta_batch: 64,
            inputs: 256,
            steps_inner: 300,
            lr_inner: 0.003,
            lr: 1e-3,
            cosine_alpha: 0.001,
            weight_decay: 0.0,
            eval_every: 1_000,
            eval_tasks: 512,
            eval_inputs: 1_024,
        }
    }
}

/// A theory-verification run (§7.3). Every key has a default, so an empty file (plus the
/// `experiment` key) is `run_theory.py` run without a sweep.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TheoryConfig {
    /// Teacher and training tasks.
    pub task: TaskConfig,
    /// Student widths.
    pub student: StudentConfig,
    /// Training and evaluation.
    pub train: TrainConfig,
}

impl TheoryConfig {
    /// Applies `overrides` to an already parsed table, then [`TheoryConfig::validate`]; errors
    /// name `path`. The table's `experiment` key, if present, must be this experiment's.
    pub fn from_table(
        table: toml::Table,
        path: &Path,
        overrides: &[String],
    ) -> Result<(Self, toml::Table), ConfigError> {
        experiment_from_table(table, path, overrides, NAME, Self::validate)
    }

    /// Checks every value before any GPU work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.task;
        range("task.modules", t.modules, 1, MAX_MODULES)?;
        for (key, v) in [
            ("task.inputs", t.inputs),
            ("task.hidden", t.hidden),
            ("task.outputs", t.outputs),
        ] {
            range(key, v, 1, MAX_DIM)?;
        }
        self.task_list()?;
        let s = &self.student;
        range("student.hidden_factor", s.hidden_factor, 1, 256)?;
        range("student.module_factor", s.module_factor, 1, 256)?;
        range(
            "student hidden units (task.hidden · student.hidden_factor)",
            self.student_hidden(),
            1,
            MAX_DIM,
        )?;
        let r = &self.train;
        range("train.steps", r.steps, 1, usize::MAX)?;
        for (key, v) in [
            ("train.meta_batch", r.meta_batch),
            ("train.inputs", r.inputs),
            ("train.steps_inner", r.steps_inner),
            ("train.eval_tasks", r.eval_tasks),
            ("train.eval_inputs", r.eval_inputs),
        ] {
            range(key, v, 1, MAX_DIM)?;
        }
        range("train.eval_every", r.eval_every, 1, usize::MAX)?;
        positive_finite("train.lr_inner", r.lr_inner)?;
        positive_finite("train.lr", r.lr)?;
        if !(0.0..=1.0).contains(&r.cosine_alpha) {
            return Err(invalid(
                "train.cosine_alpha",
                r.cosine_alpha,
                "must lie in [0, 1]",
            ));
        }
        if !r.weight_decay.is_finite() || r.weight_decay < 0.0 {
            return Err(invalid(
                "train.weight_decay",
                r.weight_decay,
                "must be a finite number ≥ 0",
            ));
        }
        Ok(())
    }

    /// The parsed training task list.
    pub fn task_list(&self) -> Result<TaskList, ConfigError> {
        TaskList::parse(&self.task.task_list, self.task.modules)
            .map_err(|e| invalid("task.task_list", &self.task.task_list, &e.to_string()))
    }

    /// The spec's annotation of the training task list (§7.2).
    pub fn label(&self) -> Result<Label, ConfigError> {
        Ok(self.task_list()?.label(self.task.continuous))
    }

    /// Student hidden units ĥ.
    pub fn student_hidden(&self) -> usize {
        self.task.hidden * self.student.hidden_factor
    }

    /// Student modules M̂.
    pub fn student_modules(&self) -> usize {
        self.task.modules * self.student.module_factor
    }

    /// The outer learning rate of step `step` (0-based): optax's `cosine_decay_schedule(lr,
    /// steps, alpha)`, `lr·((1 − α)·½(1 + cos(π·t/T)) + α)` with `t = min(step, T)`.
    pub fn lr_at(&self, step: usize) -> f64 {
        let r = &self.train;
        let t = step.min(r.steps) as f64 / r.steps as f64;
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * t).cos());
        r.lr * ((1.0 - r.cosine_alpha) * cosine + r.cosine_alpha)
    }
}
