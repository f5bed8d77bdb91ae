//! The preference gridworld's config sections: `[task]` (the world and its task distribution),
//! `[model]` (the student), `[train]` (the meta-learning loop, shared with the hyperteacher),
//! with the defaults of the official `configs/preference_grid.py` (smonsays/modular-hyperteacher).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::NAME;
use crate::config::check::{invalid, range as check_range};
use crate::config::{experiment_from_table, read_table, ConfigError};
use crate::experiments::hyperteacher::config::task_err;
use crate::experiments::hyperteacher::student::StudentShape;
use crate::experiments::hyperteacher::tasks::{TaskSpace, TaskSupport};
use crate::experiments::hyperteacher::{ModelKind, Support, TrainConfig, TrainParams, MAX_WIDTH};
use crate::ops::preference::{WorldShape, ACTIONS, MAX_FEATURES, MAX_OBJECTS, MAX_PREFERENCES};
use crate::train::episode_twin::MetaGradient;

/// Outer steps when `train.steps_outer` is absent (`steps_outer = 100_000`).
pub const DEFAULT_STEPS_OUTER: usize = 100_000;

/// `[task]`: the world, its preference tasks and the demonstrations per task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskConfig {
    /// Preference modules M (`num_preferences`). Default 8.
    pub preferences: usize,
    /// Object feature types F (`num_features`). Default 8.
    pub features: usize,
    /// Objects per world (`num_objects`). Default 4.
    pub objects: usize,
    /// Most active preference modules per task, K (`num_hot`). Default 3.
    pub max_hot: usize,
    /// Continuous preference weights in [0.5, 1) instead of binary (`continuous_combinations`).
    /// Default true.
    pub continuous: bool,
    /// The expert's discount γ (`discount`). Default 0.9.
    pub discount: f64,
    /// Steps of a demonstration, and the expert's Bellman backups (`timelimit`). Default 8.
    pub horizon: usize,
    /// Which preference combinations are held out (`task_support`). Default `random`.
    pub support: Support,
    /// Fraction held out by the `random` support (`frac_ood`). Default 0.25.
    pub frac_ood: f64,
    /// Support (inner-loop) demonstrations per task (`shots_train`). Default 16.
    pub shots_support: usize,
    /// Query (outer-loss) demonstrations per task (`shots_test`). Default 16.
    pub shots_query: usize,
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig {
            preferences: 8,
            features: 8,
            objects: 4,
            max_hot: 3,
            continuous: true,
            discount: 0.9,
            horizon: 8,
            support: Support::Random,
            frac_ood: 0.25,
            shots_support: 16,
            shots_query: 16,
        }
    }
}

/// `[model]`: the student.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Which student. Default `hnet_linear`.
    pub kind: ModelKind,
    /// Hidden width (`base_model_hidden_dim`). Default per model: 64 (hypernetworks), 512
    /// (ANIL), 368 (MAML).
    pub width: Option<usize>,
    /// Hidden layers (`base_model_num_hidden`). Default per model: 3 (`hnet_linear`, MAML),
    /// 2 (`hnet_deepmlp`), 4 (ANIL).
    pub num_hidden: Option<usize>,
    /// Modules T of the hypernetworks (`num_templates`). Default 32.
    pub templates: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            kind: ModelKind::HnetLinear,
            width: None,
            num_hidden: None,
            templates: 32,
        }
    }
}

/// The preference gridworld experiment (Schug et al. 2024): every key has a default, so an
/// empty file (plus `experiment = "preference"`) is the official `hnet_linear` configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreferenceConfig {
    /// World and task distribution.
    pub task: TaskConfig,
    /// Student model.
    pub model: ModelConfig,
    /// Meta-learning loop (`train.steps_outer` defaults to 100,000 here).
    pub train: TrainConfig,
}

impl PreferenceConfig {
    /// Reads `path`, applies `overrides`, then validates.
    pub fn load(
        path: impl AsRef<Path>,
        overrides: &[String],
    ) -> Result<(Self, toml::Table), ConfigError> {
        let path = path.as_ref();
        Self::from_table(read_table(path)?, path, overrides)
    }

    /// [`PreferenceConfig::load`] of an already parsed table.
    pub fn from_table(
        table: toml::Table,
        path: &Path,
        overrides: &[String],
    ) -> Result<(Self, toml::Table), ConfigError> {
        experiment_from_table(table, path, overrides, NAME, Self::validate)
    }

    /// The world's sizes.
    pub fn world(&self) -> WorldShape {
        WorldShape {
            objects: self.task.objects,
            features: self.task.features,
            preferences: self.task.preferences,
            horizon: self.task.horizon,
        }
    }

    /// The student's kind and sizes, per-model defaults filled in.
    pub fn student(&self) -> StudentShape {
        let kind = self.model.kind;
        let (width, num_hidden) = match kind {
            ModelKind::HnetLinear => (64, 3),
            ModelKind::HnetDeepmlp => (64, 2),
            ModelKind::Anil => (512, 4),
            ModelKind::Maml => (368, 3),
        };
        StudentShape {
            kind,
            input_dim: self.world().obs_dim(),
            output_dim: ACTIONS,
            width: self.model.width.unwrap_or(width),
            num_hidden: self.model.num_hidden.unwrap_or(num_hidden),
            templates: self.model.templates,
        }
    }

    /// Support rows per task: `shots_support` demonstrations of `horizon` rows.
    pub fn support_rows(&self) -> usize {
        self.task.shots_support * self.task.horizon
    }

    /// The training hyperparameters, per-model defaults of `configs/preference_grid.py` filled
    /// in (ANIL's inner minibatch of 64 counts rows, as the official `batch_size` does).
    pub fn train_params(&self) -> TrainParams {
        let full = self.support_rows();
        let (lr_inner, steps_inner, inner_batch, lr_outer, max_grad_norm) = match self.model.kind {
            ModelKind::HnetLinear => (0.1, 10, full, 3e-4, 1.0),
            ModelKind::HnetDeepmlp => (0.1, 10, full, 3e-4, 2.0),
            ModelKind::Anil => (0.01, 100, 64, 3e-4, 2.0),
            ModelKind::Maml => (0.01, 10, full, 1e-3, 2.0),
        };
        self.train.resolve(TrainParams {
            steps_inner,
            inner_batch,
            lr_inner,
            lr_outer,
            wd_outer: 1e-2,
            max_grad_norm,
            meta_gradient: MetaGradient::SecondOrder,
        })
    }

    /// Outer steps: `train.steps_outer`, default [`DEFAULT_STEPS_OUTER`].
    pub fn steps_outer(&self) -> usize {
        self.train.steps_outer.unwrap_or(DEFAULT_STEPS_OUTER)
    }

    /// This config with every per-model default written out, for the run directory's record.
    pub fn with_defaults_filled(&self) -> Self {
        let mut cfg = self.clone();
        let s = self.student();
        cfg.model.width = Some(s.width);
        cfg.model.num_hidden = Some(s.num_hidden);
        cfg.train = self.train.filled(self.train_params(), self.steps_outer());
        cfg
    }

    /// The preference combinations: 1..=K of M modules, one layer.
    pub fn task_space(&self) -> Result<TaskSpace, ConfigError> {
        TaskSpace::new(self.task.preferences, self.task.max_hot, 1).map_err(task_err)
    }

    /// The held-out rule of `[task]`; the random permutation is seeded with `train.seed`.
    pub fn task_support(&self) -> TaskSupport {
        self.task
            .support
            .resolve(self.task.frac_ood, self.train.seed)
    }

    /// Range-checks every value and builds the split once, before any device work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.task;
        check_range("task.preferences", t.preferences, 1, MAX_PREFERENCES)?;
        check_range("task.features", t.features, 1, MAX_FEATURES)?;
        check_range("task.objects", t.objects, 1, MAX_OBJECTS)?;
        check_range(
            "task.horizon",
            t.horizon,
            1,
            crate::ops::preference::MAX_HORIZON,
        )?;
        check_range("task.shots_support", t.shots_support, 1, 1 << 16)?;
        check_range("task.shots_query", t.shots_query, 1, 1 << 16)?;
        if !(t.discount.is_finite() && (0.0..=1.0).contains(&t.discount)) {
            return Err(invalid(
                "task.discount",
                t.discount,
                "must be a number in [0, 1]",
            ));
        }
        if !(t.frac_ood.is_finite() && t.frac_ood > 0.0 && t.frac_ood < 1.0) {
            return Err(invalid(
                "task.frac_ood",
                t.frac_ood,
                "must be a finite number strictly between 0 and 1",
            ));
        }
        if t.max_hot > t.preferences {
            return Err(invalid(
                "task.max_hot",
                t.max_hot,
                &format!(
                    "K must not exceed the number of preferences M = {}",
                    t.preferences
                ),
            ));
        }
        let s = self.student();
        check_range("model.width", s.width, 1, MAX_WIDTH)?;
        check_range("model.num_hidden", s.num_hidden, 1, 64)?;
        check_range("model.templates", s.templates, 1, MAX_WIDTH)?;
        self.train
            .validate(&self.train_params(), self.steps_outer())?;
        let space = self.task_space()?;
        space.split(self.task_support()).map_err(task_err)?;
        Ok(())
    }
}
