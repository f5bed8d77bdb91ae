//! The hyperteacher experiment's config sections: `[task]`, `[model]`, `[train]`, their spec
//! defaults (the official smonsays/modular-hyperteacher `configs/hyperteacher.py`) and `validate()`, which runs before
//! any GPU work.

use crate::train::episode_twin::MetaGradient;
use crate::train::meta::SweepMode;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::tasks::{TaskError, TaskSpace, TaskSupport};
use super::NAME;
use crate::config::check::{
    invalid, positive_finite as check_positive_finite, range as check_range,
};
use crate::config::{experiment_from_table, read_table, ConfigError};

/// Largest network width or teacher hidden size accepted (a guard against typos, far above the
/// paper's 512).
pub const MAX_WIDTH: usize = 1 << 16;
/// Largest per-task shot count, meta-batch or evaluation-set size accepted (typo guard).
pub const MAX_BATCH: usize = 1 << 20;

/// Which tasks are in-distribution and which are held out (spec §2.5, `task_support`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Support {
    /// Random permutation; the last ⌊frac_ood·N⌋ tasks are OOD.
    Random,
    /// OOD: every task with the last module active in the last layer.
    NonCompositional,
    /// Connected support (needs K = 2, M even, M > 4).
    Connected,
    /// Disconnected support (needs K = 2, M even, M > 4).
    Disconnected,
}

impl Support {
    /// The task split rule: `random` holds out `frac_ood` of the tasks by a permutation seeded
    /// with `seed`.
    pub fn resolve(self, frac_ood: f64, seed: u64) -> TaskSupport {
        match self {
            Support::Random => TaskSupport::Random { frac_ood, seed },
            Support::NonCompositional => TaskSupport::NonCompositional,
            Support::Connected => TaskSupport::Connected,
            Support::Disconnected => TaskSupport::Disconnected,
        }
    }
}

/// The student model (spec §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Linear hypernetwork (§4.2).
    HnetLinear,
    /// Nonlinear ("DeepBank") hypernetwork (§4.3).
    HnetDeepmlp,
    /// ANIL, `anil512` (§4.4).
    Anil,
    /// MAML with a learned initialisation, `learned_init384` (§4.5).
    Maml,
}

impl ModelKind {
    /// The model's default hidden width: 128 for the hypernetworks' target network (§4.1),
    /// 512 for ANIL (§4.4), 384 for MAML (§4.5).
    pub fn default_width(self) -> usize {
        match self {
            ModelKind::HnetLinear | ModelKind::HnetDeepmlp => 128,
            ModelKind::Anil => 512,
            ModelKind::Maml => 384,
        }
    }

    /// The per-model training hyperparameters of spec §5.3, with a full-batch inner loop of
    /// `shots_support` points where the table says "full".
    pub fn default_train(self, shots_support: usize) -> TrainParams {
        let (lr_inner, steps_inner, inner_batch, lr_outer, wd_outer, max_grad_norm) = match self {
            ModelKind::HnetLinear => (0.3, 10, shots_support, 1e-3, 1e-2, 1.0),
            ModelKind::HnetDeepmlp => (0.3, 10, shots_support, 3e-3, 1e-2, 1.0),
            ModelKind::Anil => (0.03, 100, 64, 1e-3, 1e-4, 2.0),
            ModelKind::Maml => (0.01, 10, shots_support, 1e-3, 1e-4, 2.0),
        };
        // Second order is the paper's algorithm, for every student.
        let meta_gradient = MetaGradient::SecondOrder;
        TrainParams {
            steps_inner,
            inner_batch,
            lr_inner,
            lr_outer,
            wd_outer,
            max_grad_norm,
            meta_gradient,
        }
    }
}

/// The per-model training hyperparameters after defaults are filled in (spec §5.3).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainParams {
    /// Inner-loop AdamW steps per task.
    pub steps_inner: usize,
    /// Support points per inner step (equal to `shots_support` for full batch).
    pub inner_batch: usize,
    /// Inner-loop AdamW learning rate.
    pub lr_inner: f64,
    /// Outer-loop AdamW learning rate.
    pub lr_outer: f64,
    /// Outer-loop decoupled weight decay.
    pub wd_outer: f64,
    /// Global-norm clip of the meta-gradient.
    pub max_grad_norm: f64,
    /// Through the inner loop (second order) or not.
    pub meta_gradient: MetaGradient,
}

/// `[task]`: the teacher and its task distribution (spec §1.1, §2, §3.4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskConfig {
    /// Teacher modules per layer, M (`num_experts`). Default 4 (`configs/hyperteacher.py`,
    /// spec §1.1); the main sweeps use 8.
    pub modules: usize,
    /// Most active modules per generated layer, K (`num_hot`). Default 2 (§1.1). Must be ≤ M.
    pub max_hot: usize,
    /// Generated teacher layers, L. Default 2 (§1.1: `hidden_0`, `hidden_1`).
    pub layers: usize,
    /// Teacher hidden width in units (`dataset_hidden_dim`). Default 32 (§1.1).
    pub hidden_dim: usize,
    /// Whether the teacher shares one module bank across layers. Default false (§1.1, §1.2).
    pub chunking: bool,
    /// Continuous task coefficients in [0.5, 1) instead of binary. Default false (§2.2).
    pub continuous: bool,
    /// Which tasks are held out (`task_support`). Default `random` (§2.5).
    pub support: Support,
    /// Fraction of tasks held out by the `random` support, in (0, 1). Default 0.25 (§2.3).
    pub frac_ood: f64,
    /// Support (inner-loop) samples per task (`shots_train`). Default 256 (§3.4).
    pub shots_support: usize,
    /// Query (outer-loss) samples per task (`shots_test`). Default 256 (§3.4).
    pub shots_query: usize,
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig {
            modules: 4,
            max_hot: 2,
            layers: 2,
            hidden_dim: 32,
            chunking: false,
            continuous: false,
            support: Support::Random,
            frac_ood: 0.25,
            shots_support: 256,
            shots_query: 256,
        }
    }
}

/// `[model]`: the student (spec §4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Which student. Default `hnet_linear` (§4.2).
    pub kind: ModelKind,
    /// Hidden width in units. Default per model ([`ModelKind::default_width`]): 128 (§4.1),
    /// 512 for ANIL (§4.4), 384 for MAML (§4.5).
    pub width: Option<usize>,
    /// Student modules per teacher module, T / M (`ratio_templates_experts`). Default 4 (§4.2);
    /// used by the hypernetworks only.
    pub ratio_templates: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            kind: ModelKind::HnetLinear,
            width: None,
            ratio_templates: 4,
        }
    }
}

/// `[train]`: the meta-learning loop (spec §5). Keys left out take the per-model defaults of
/// §5.3 ([`ModelKind::default_train`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Run seed: teacher, split permutation, initialisation and data. Default 2023 (§1.1).
    pub seed: u64,
    /// Outer (meta) steps. Default per experiment: 200,000 for the hyperteacher (§5.2), 100,000
    /// for the preference gridworld (`configs/preference_grid.py`).
    pub steps_outer: Option<usize>,
    /// Tasks per outer step. Default 128 (§5.2).
    pub meta_batch: usize,
    /// Inner AdamW steps per task. Default per model: 10, or 100 for ANIL (§5.3).
    pub steps_inner: Option<usize>,
    /// Support points per inner step, drawn with replacement. Default per model: the full
    /// support set, or 64 for ANIL (§5.1, §5.3).
    pub inner_batch: Option<usize>,
    /// Inner AdamW learning rate. Default per model: 0.3, 0.3, 0.03 (ANIL), 0.01 (MAML) (§5.3).
    pub lr_inner: Option<f64>,
    /// Outer AdamW learning rate. Default per model: 1e-3, or 3e-3 for `hnet_deepmlp` (§5.3).
    pub lr_outer: Option<f64>,
    /// Outer decoupled weight decay. Default per model: 1e-2 (hypernetworks), 1e-4 (§5.3).
    pub wd_outer: Option<f64>,
    /// Global-norm clip of the meta-gradient. Default per model: 1.0 (hypernetworks), 2.0
    /// (§5.3).
    pub max_grad_norm: Option<f64>,
    /// `"second_order"` (through the unrolled inner AdamW loop, the paper's algorithm) or
    /// `"first_order"` (metax `first_order = True`). Default: second order (the paper's).
    pub meta_gradient: Option<MetaGradient>,
    /// How the second-order reverse sweep gets each inner step's activations back:
    /// `"recompute"` (replay each step: least memory), `"store"` (one support program per
    /// inner step, kept until the sweep: no replay) or `"auto"` (store when the extra memory
    /// fits `sweep_memory_mib`, else recompute). All three give the same bits. Default
    /// `"recompute"`: on the native backend storing saved only ~9 % of a step for ~3× the
    /// peak memory (hnet_linear, 16 tasks; docs/hyperteacher.md).
    pub reverse_sweep: SweepMode,
    /// The most device memory, in MiB, `reverse_sweep = "auto"` may spend on stored steps.
    /// Default 1024.
    pub sweep_memory_mib: u64,
    /// Outer steps between evaluations. Default 1,000 (not in the spec; an engine choice).
    pub eval_every: usize,
    /// Tasks per evaluation set (valid, test, ood, ood_k). Default 1,024 (§3.4).
    pub eval_tasks: usize,
    /// Consecutive outer steps with a non-finite meta-gradient (each skipped on the GPU) after
    /// which the run stops with a checkpoint. Default 10 (an engine choice; the reference applies
    /// a second consecutive non-finite step instead, spec §5.2).
    pub max_consecutive_skips: usize,
    /// Fault injection for tests: outer steps (1-based) whose meta-gradient is made NaN.
    /// Default empty.
    pub inject_nan_steps: Vec<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 2023,
            steps_outer: None,
            meta_batch: 128,
            steps_inner: None,
            inner_batch: None,
            lr_inner: None,
            lr_outer: None,
            wd_outer: None,
            max_grad_norm: None,
            meta_gradient: None,
            reverse_sweep: SweepMode::Recompute,
            sweep_memory_mib: 1024,
            eval_every: 1_000,
            eval_tasks: 1_024,
            max_consecutive_skips: 10,
            inject_nan_steps: Vec::new(),
        }
    }
}

impl TrainConfig {
    /// The training hyperparameters: this section's values, `defaults` (the experiment's
    /// per-model table) where a key is absent.
    pub fn resolve(&self, d: TrainParams) -> TrainParams {
        TrainParams {
            steps_inner: self.steps_inner.unwrap_or(d.steps_inner),
            inner_batch: self.inner_batch.unwrap_or(d.inner_batch),
            lr_inner: self.lr_inner.unwrap_or(d.lr_inner),
            lr_outer: self.lr_outer.unwrap_or(d.lr_outer),
            wd_outer: self.wd_outer.unwrap_or(d.wd_outer),
            max_grad_norm: self.max_grad_norm.unwrap_or(d.max_grad_norm),
            meta_gradient: self.meta_gradient.unwrap_or(d.meta_gradient),
        }
    }

    /// This section with the resolved parameters `p` and outer steps written out.
    pub fn filled(&self, p: TrainParams, steps_outer: usize) -> TrainConfig {
        TrainConfig {
            steps_outer: Some(steps_outer),
            steps_inner: Some(p.steps_inner),
            inner_batch: Some(p.inner_batch),
            lr_inner: Some(p.lr_inner),
            lr_outer: Some(p.lr_outer),
            wd_outer: Some(p.wd_outer),
            max_grad_norm: Some(p.max_grad_norm),
            meta_gradient: Some(p.meta_gradient),
            ..self.clone()
        }
    }

    /// Range-checks the section with its resolved parameters `p`: positive sizes (typo guard
    /// [`MAX_BATCH`]), finite positive learning rates and clip norm, finite non-negative weight
    /// decay.
    pub fn validate(&self, p: &TrainParams, steps_outer: usize) -> Result<(), ConfigError> {
        check_range("train.steps_outer", steps_outer, 1, usize::MAX)?;
        check_range("train.meta_batch", self.meta_batch, 1, MAX_BATCH)?;
        check_range("train.steps_inner", p.steps_inner, 1, 1 << 20)?;
        check_range("train.inner_batch", p.inner_batch, 1, MAX_BATCH)?;
        check_positive_finite("train.lr_inner", p.lr_inner)?;
        check_positive_finite("train.lr_outer", p.lr_outer)?;
        check_positive_finite("train.max_grad_norm", p.max_grad_norm)?;
        if !(p.wd_outer.is_finite() && p.wd_outer >= 0.0) {
            return Err(invalid(
                "train.wd_outer",
                p.wd_outer,
                "must be a finite number ≥ 0",
            ));
        }
        check_range("train.eval_every", self.eval_every, 1, usize::MAX)?;
        check_range("train.eval_tasks", self.eval_tasks, 1, MAX_BATCH)?;
        check_range(
            "train.max_consecutive_skips",
            self.max_consecutive_skips,
            1,
            usize::MAX,
        )
    }
}

/// A hyperteacher few-shot meta-learning experiment (spec §1–§5). Every key has a default, so an
/// empty file is the reference configuration (`configs/hyperteacher.py`, M = 4, `hnet_linear`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HyperteacherConfig {
    /// Teacher and task distribution.
    pub task: TaskConfig,
    /// Student model.
    pub model: ModelConfig,
    /// Meta-learning loop.
    pub train: TrainConfig,
}

impl HyperteacherConfig {
    /// Reads `path`, applies `overrides`, then [`HyperteacherConfig::validate`]; validation
    /// errors name the file. The file's `experiment` key may be absent here (the caller chose
    /// this experiment), but must not name another one.
    pub fn load(
        path: impl AsRef<Path>,
        overrides: &[String],
    ) -> Result<(Self, toml::Table), ConfigError> {
        let path = path.as_ref();
        Self::from_table(read_table(path)?, path, overrides)
    }

    /// [`HyperteacherConfig::load`] of an already parsed table.
    pub fn from_table(
        table: toml::Table,
        path: &Path,
        overrides: &[String],
    ) -> Result<(Self, toml::Table), ConfigError> {
        experiment_from_table(table, path, overrides, NAME, Self::validate)
    }

    /// The student's hidden width, the model default when `[model] width` is absent.
    pub fn width(&self) -> usize {
        self.model
            .width
            .unwrap_or_else(|| self.model.kind.default_width())
    }

    /// The training hyperparameters with the per-model defaults of spec §5.3 filled in.
    pub fn train_params(&self) -> TrainParams {
        self.train
            .resolve(self.model.kind.default_train(self.task.shots_support))
    }

    /// Outer steps: `train.steps_outer`, default 200,000.
    pub fn steps_outer(&self) -> usize {
        self.train.steps_outer.unwrap_or(200_000)
    }

    /// This config with every per-model default written out, for the run directory's record.
    pub fn with_defaults_filled(&self) -> Self {
        let mut cfg = self.clone();
        cfg.model.width = Some(self.width());
        cfg.train = self.train.filled(self.train_params(), self.steps_outer());
        cfg
    }

    /// The task space of `[task]` (validates 1 ≤ K ≤ M, L ≥ 1 and the enumeration size).
    pub fn task_space(&self) -> Result<TaskSpace, ConfigError> {
        TaskSpace::new(self.task.modules, self.task.max_hot, self.task.layers).map_err(task_err)
    }

    /// The [`TaskSupport`] of `[task]`; the random permutation is seeded with `train.seed`.
    pub fn task_support(&self) -> TaskSupport {
        self.task
            .support
            .resolve(self.task.frac_ood, self.train.seed)
    }

    /// Range-checks every value and builds the task split once, so an impossible experiment
    /// fails before any GPU work: positive sizes (with typo guards [`MAX_WIDTH`] and
    /// [`MAX_BATCH`]), finite positive learning rates and clip norm, finite non-negative weight
    /// decay, 0 < frac_ood < 1, K ≤ M, and a split that leaves both training and OOD tasks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.task;
        check_range("task.hidden_dim", t.hidden_dim, 1, MAX_WIDTH)?;
        check_range("task.shots_support", t.shots_support, 1, MAX_BATCH)?;
        check_range("task.shots_query", t.shots_query, 1, MAX_BATCH)?;
        if !(t.frac_ood.is_finite() && t.frac_ood > 0.0 && t.frac_ood < 1.0) {
            return Err(invalid(
                "task.frac_ood",
                t.frac_ood,
                "must be a finite number strictly between 0 and 1",
            ));
        }
        if t.max_hot > t.modules {
            return Err(invalid(
                "task.max_hot",
                t.max_hot,
                &format!(
                    "K must not exceed the number of modules M = {} (task.modules)",
                    t.modules
                ),
            ));
        }

        let m = &self.model;
        check_range("model.width", self.width(), 1, MAX_WIDTH)?;
        check_range("model.ratio_templates", m.ratio_templates, 1, 1024)?;
        if matches!(m.kind, ModelKind::HnetLinear | ModelKind::HnetDeepmlp) {
            let templates = m.ratio_templates.saturating_mul(t.modules);
            if templates > MAX_WIDTH {
                return Err(invalid(
                    "model.ratio_templates",
                    m.ratio_templates,
                    &format!(
                        "ratio_templates × M = {templates} student modules exceeds {MAX_WIDTH}"
                    ),
                ));
            }
        }

        self.train
            .validate(&self.train_params(), self.steps_outer())?;

        // Last, as it enumerates the task space: K ≤ M, size, and a split with both sides.
        let space = self.task_space()?;
        space.split(self.task_support()).map_err(task_err)?;
        Ok(())
    }
}

/// The `[task]` section's error for an impossible task space or split (also raised after
/// validation, where the task space is used: a [`TaskError`] is always the config's fault).
pub(crate) fn task_err(e: TaskError) -> ConfigError {
    ConfigError::Section {
        file: None,
        section: "task",
        source: Box::new(e),
    }
}
