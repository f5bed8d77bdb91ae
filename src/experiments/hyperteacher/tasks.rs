//! Task latents and task splits of the hyperteacher experiment (Schug et al. 2024, spec §2).
//!
//! The teacher has M modules and L generated layers. A task chooses, for every generated layer,
//! between 1 and K of the M modules ([`Task`]); its latent z is an L×M matrix, stored row-major
//! (one row of M entries per layer), which the teacher's linear hypernetwork maps to the weights
//! of its hidden layers. [`TaskSpace`] enumerates every task, [`TaskSpace::split`] divides them
//! into training (in-distribution) and out-of-distribution (OOD) tasks, and
//! [`TaskSpace::latents`] turns tasks into the latent batch the GPU consumes.
//!
//! # Evaluation sets
//!
//! The paper evaluates on four kinds of task set, each drawn with fresh inputs:
//! - `valid` and `test`: **in-distribution** tasks, drawn from [`TaskSplit::train`] (the tasks are
//!   the training tasks; only the data is new);
//! - `ood`: drawn from [`TaskSplit::ood`];
//! - `ood_k` for each k of [`TaskSpace::hotness_levels`]: for k ≤ K the OOD tasks with exactly k
//!   active modules in every layer ([`TaskSpace::ood_with_hotness`]); for k > K fresh random
//!   k-hot tasks ([`TaskSpace::random_k_hot`]), all novel since training never exceeds K.
//!
//! Seeded draws use ChaCha8, so they are reproducible for a seed but do not reproduce the JAX
//! permutations of the reference code.

use std::collections::HashSet;

use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use thiserror::Error;

/// Most latent entries (tasks × L × M) a [`TaskSpace`] may hold. Splits enumerate every task, so
/// the bound turns a typo in M or K into an error instead of gigabytes of allocation; the largest
/// space of the paper's sweeps (M = 16, K = 2, L = 2: 18,496 tasks × 32 entries) is far below it.
pub const MAX_TASK_ENTRIES: u128 = 1 << 26;

/// Why a task space, split or task set could not be built.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TaskError {
    /// M, K or L out of range.
    #[error("invalid task space (M = {modules}, K = {max_hot}, L = {layers}): {reason}")]
    InvalidSpace {
        /// Modules per layer (M).
        modules: usize,
        /// Most active modules per layer (K).
        max_hot: usize,
        /// Generated layers (L).
        layers: usize,
        /// Which bound was violated.
        reason: &'static str,
    },
    /// The space is too large to enumerate.
    #[error(
        "task space (M = {modules}, K = {max_hot}, L = {layers}) would need {entries} latent \
         entries to enumerate (tasks × L × M), more than the limit of {limit}"
    )]
    TooManyTasks {
        /// Modules per layer (M).
        modules: usize,
        /// Most active modules per layer (K).
        max_hot: usize,
        /// Generated layers (L).
        layers: usize,
        /// Latent entries of the full enumeration (saturated at `u128::MAX`).
        entries: u128,
        /// [`MAX_TASK_ENTRIES`].
        limit: u128,
    },
    /// The split is not defined for this space.
    #[error("task_support `{support}` {requirement} (got M = {modules}, K = {max_hot})")]
    UnsupportedSplit {
        /// The split's name.
        support: &'static str,
        /// What the split needs.
        requirement: &'static str,
        /// Modules per layer (M).
        modules: usize,
        /// Most active modules per layer (K).
        max_hot: usize,
    },
    /// `frac_ood` of the random split outside [0, 1].
    #[error("frac_ood must be a finite number in [0, 1], got {frac_ood}")]
    InvalidFraction {
        /// The fraction given.
        frac_ood: f64,
    },
    /// The split would leave one side empty, so training or OOD evaluation would have no task.
    #[error("task_support `{support}` leaves no {side} task (of {total})")]
    EmptySplit {
        /// The split's name.
        support: &'static str,
        /// `"training"` or `"OOD"`.
        side: &'static str,
        /// Number of tasks in the space.
        total: usize,
    },
    /// A hotness level outside what the requested task set can hold.
    #[error("invalid hotness k = {k}: {reason}")]
    InvalidHotness {
        /// The hotness asked for.
        k: usize,
        /// Which range it had to lie in, and why.
        reason: String,
    },
    /// A task whose shape (M or L) differs from the space it was given to.
    #[error("task {index} has M = {modules}, L = {layers}, but the space has M = {space_modules}, L = {space_layers}")]
    ForeignTask {
        /// Position of the task in the slice.
        index: usize,
        /// The task's modules per layer.
        modules: usize,
        /// The task's layer count.
        layers: usize,
        /// The space's modules per layer.
        space_modules: usize,
        /// The space's layer count.
        space_layers: usize,
    },
}

/// One task: the active modules of every generated layer.
///
/// Only a [`TaskSpace`] makes tasks, so every layer holds at least one module, in ascending order
/// without repeats, each below M.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Task {
    modules: usize,
    active: Vec<Vec<usize>>,
}

impl Task {
    /// Active modules of each layer, ascending.
    pub fn active(&self) -> &[Vec<usize>] {
        &self.active
    }

    /// Modules per layer (M).
    pub fn modules(&self) -> usize {
        self.modules
    }

    /// Generated layers (L).
    pub fn layers(&self) -> usize {
        self.active.len()
    }

    /// True when every layer has exactly `k` active modules.
    pub fn has_hotness(&self, k: usize) -> bool {
        self.active.iter().all(|layer| layer.len() == k)
    }

    /// The binary latent: L·M entries, row-major per layer, 1 on active modules and 0 elsewhere.
    pub fn latent(&self) -> Vec<f32> {
        let mut z = vec![0.0; self.active.len() * self.modules];
        self.fill_latent(&mut z, None);
        z
    }

    /// Writes the latent into `z` (L·M zeros). With a generator the active entries get the
    /// continuous coefficients of spec §2.2, otherwise 1.
    fn fill_latent(&self, z: &mut [f32], mut rng: Option<&mut ChaCha8Rng>) {
        for (layer, row) in self.active.iter().zip(z.chunks_mut(self.modules)) {
            match rng.as_deref_mut() {
                None => layer.iter().for_each(|&m| row[m] = 1.0),
                Some(rng) => {
                    // The reference normalises per layer (its sum runs over the module axis of
                    // the L×M latent), so this does too.
                    let w = simplex_coefficients(rng, layer.len());
                    for (&m, &wm) in layer.iter().zip(&w) {
                        row[m] = wm as f32;
                    }
                }
            }
        }
    }
}

/// The continuous coefficients of `count` active modules (spec §2.2): w ~ Exp(1) each, then
/// w / (Σw + 1), uniform on the simplex (Willms 2021), shifted into [0.5, 1). The shift keeps
/// active modules clearly active: without it a small weight would act like an extra zero and
/// make tasks sparser than their support says.
pub fn simplex_coefficients(rng: &mut ChaCha8Rng, count: usize) -> Vec<f64> {
    let w: Vec<f64> = (0..count)
        .map(|_| -(1.0 - rng.random::<f64>()).ln())
        .collect();
    let norm = w.iter().sum::<f64>() + 1.0;
    w.iter().map(|wm| 0.5 * wm / norm + 0.5).collect()
}

/// How the active entries of a latent are valued (spec §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coefficients {
    /// Exactly 1 (the hyperteacher default, `continuous_combinations = False`).
    Binary,
    /// Random in [0.5, 1): per layer w ~ Exp(1) on the active entries, z = 0.5·w/(Σw + 1) + 0.5.
    /// Drawn afresh for every task of a batch from a generator seeded with `seed`.
    Continuous {
        /// Seed of the generator.
        seed: u64,
    },
}

/// Which tasks are in-distribution and which are held out (`task_support`, spec §2.5).
///
/// The reference's `dense` (requires K = M) and `diagonal` (sliding windows plus one-hots)
/// supports are not implemented: no experiment of the paper's sweeps uses them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TaskSupport {
    /// A seeded random permutation of all tasks; the last ⌊frac_ood·N⌋ are OOD.
    Random {
        /// Fraction of the N tasks held out.
        frac_ood: f64,
        /// Seed of the permutation.
        seed: u64,
    },
    /// OOD: every task in which the last module (M−1) is active in the last layer, so that
    /// module is never seen in that layer during training (violates compositional support).
    NonCompositional,
    /// Training: tasks whose every layer is a one-hot {i}, a pair {i, i+1 mod M} or a pair
    /// {i, i+2 mod M} (3M options per layer), whose modules co-occur in one connected structure.
    /// OOD: the complement of connected ∪ disconnected, the same set as for
    /// [`TaskSupport::Disconnected`]. Requires K = 2, M even and M > 4.
    Connected,
    /// Training: tasks using only modules {0 … M/2−1} in all layers, or only {M/2 … M−1}, and
    /// one-hot in all layers or two-hot in all layers. OOD: the complement of
    /// connected ∪ disconnected. Requires K = 2, M even and M > 4.
    Disconnected,
}

impl TaskSupport {
    /// The reference code's name of the split.
    pub fn name(&self) -> &'static str {
        match self {
            TaskSupport::Random { .. } => "random",
            TaskSupport::NonCompositional => "non_compositional",
            TaskSupport::Connected => "connected",
            TaskSupport::Disconnected => "disconnected",
        }
    }
}

/// The tasks of a space divided by a [`TaskSupport`].
///
/// For `connected` and `disconnected` the two lists need not cover the space: tasks of the other
/// support that are not in this one belong to neither side.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSplit {
    /// In-distribution tasks: training, and the `valid` / `test` evaluation sets (fresh data).
    pub train: Vec<Task>,
    /// Held-out tasks: the `ood` evaluation set.
    pub ood: Vec<Task>,
}

/// The hyperteacher's task space: M modules, at most K active per layer, L generated layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskSpace {
    modules: usize,
    max_hot: usize,
    layers: usize,
}

impl TaskSpace {
    /// Validates 1 ≤ K ≤ M and L ≥ 1, and that the full enumeration stays below
    /// [`MAX_TASK_ENTRIES`].
    pub fn new(modules: usize, max_hot: usize, layers: usize) -> Result<Self, TaskError> {
        let invalid = |reason| TaskError::InvalidSpace {
            modules,
            max_hot,
            layers,
            reason,
        };
        if modules == 0 {
            return Err(invalid("needs at least one module (M ≥ 1)"));
        }
        if layers == 0 {
            return Err(invalid("needs at least one generated layer (L ≥ 1)"));
        }
        if max_hot == 0 || max_hot > modules {
            return Err(invalid("max_hot must lie in 1..=M"));
        }
        let entries = Self::entries(modules, max_hot, layers);
        if entries > MAX_TASK_ENTRIES {
            return Err(TaskError::TooManyTasks {
                modules,
                max_hot,
                layers,
                entries,
                limit: MAX_TASK_ENTRIES,
            });
        }
        Ok(TaskSpace {
            modules,
            max_hot,
            layers,
        })
    }

    /// Latent entries of the full enumeration, saturated at `u128::MAX`. Computed without
    /// enumerating, and stopping early, so absurd arguments cannot overflow or loop long.
    fn entries(modules: usize, max_hot: usize, layers: usize) -> u128 {
        let m = modules as u128;
        // Σ_{k=1..K} C(M, k), with C(M, k) = C(M, k−1)·(M−k+1)/k exact at every step.
        let mut per_layer: u128 = 0;
        let mut binom: u128 = 1;
        for k in 1..=max_hot as u128 {
            binom = match binom.checked_mul(m - k + 1) {
                Some(b) => b / k,
                None => return u128::MAX,
            };
            per_layer = per_layer.saturating_add(binom);
        }
        let mut entries = m.saturating_mul(layers as u128);
        for _ in 0..layers {
            if entries > MAX_TASK_ENTRIES {
                break;
            }
            entries = entries.saturating_mul(per_layer);
        }
        entries
    }

    /// Modules per layer (M).
    pub fn modules(&self) -> usize {
        self.modules
    }

    /// Most active modules per layer (K).
    pub fn max_hot(&self) -> usize {
        self.max_hot
    }

    /// Generated layers (L).
    pub fn layers(&self) -> usize {
        self.layers
    }

    /// Length of one latent, L·M.
    pub fn latent_len(&self) -> usize {
        self.layers * self.modules
    }

    /// Every per-layer choice of active modules: for k = 1 … K, each k-subset of the M modules,
    /// ascending inside, listed by k and then lexicographically (`[0], [1], …, [0, 1], [0, 2], …`).
    pub fn layer_combinations(&self) -> Vec<Vec<usize>> {
        let m = self.modules;
        let mut out = Vec::new();
        for k in 1..=self.max_hot {
            let mut combo: Vec<usize> = (0..k).collect();
            loop {
                out.push(combo.clone());
                // Advance the rightmost position that still has room, then pack the rest
                // tightly after it: the next combination in lexicographic order.
                let Some(i) = (0..k).rev().find(|&i| combo[i] < m - k + i) else {
                    break;
                };
                combo[i] += 1;
                for j in i + 1..k {
                    combo[j] = combo[j - 1] + 1;
                }
            }
        }
        out
    }

    /// Number of tasks, (Σ_{k=1..K} C(M, k))^L.
    pub fn num_tasks(&self) -> usize {
        self.layer_combinations().len().pow(self.layers as u32)
    }

    /// Every task: the Cartesian product of [`TaskSpace::layer_combinations`] over the layers,
    /// with the last layer varying fastest (the order of Python's `itertools.product`).
    pub fn tasks(&self) -> Vec<Task> {
        let combos = self.layer_combinations();
        let n = combos.len().pow(self.layers as u32);
        (0..n)
            .map(|id| {
                let mut rest = id;
                let mut active = vec![Vec::new(); self.layers];
                for layer in active.iter_mut().rev() {
                    *layer = combos[rest % combos.len()].clone();
                    rest /= combos.len();
                }
                Task {
                    modules: self.modules,
                    active,
                }
            })
            .collect()
    }

    /// Divides the tasks into training and OOD tasks. Fails when the split is undefined for this
    /// space or would leave either side empty.
    ///
    /// The `random` OOD list is in permuted order; every other list keeps the order of
    /// [`TaskSpace::tasks`].
    pub fn split(&self, support: TaskSupport) -> Result<TaskSplit, TaskError> {
        let mut all = self.tasks();
        let total = all.len();
        let (train, ood) = match support {
            TaskSupport::Random { frac_ood, seed } => {
                if !(0.0..=1.0).contains(&frac_ood) {
                    return Err(TaskError::InvalidFraction { frac_ood });
                }
                let num_ood = (total as f64 * frac_ood).floor() as usize;
                all.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
                let ood = all.split_off(total - num_ood);
                (all, ood)
            }
            TaskSupport::NonCompositional => {
                let last = self.modules - 1;
                all.into_iter()
                    .partition(|t| !t.active[self.layers - 1].contains(&last))
            }
            TaskSupport::Connected | TaskSupport::Disconnected => {
                if self.max_hot != 2 || !self.modules.is_multiple_of(2) || self.modules <= 4 {
                    return Err(TaskError::UnsupportedSplit {
                        support: support.name(),
                        requirement: "needs K = 2, M even and M > 4",
                        modules: self.modules,
                        max_hot: self.max_hot,
                    });
                }
                let options = self.connected_options();
                let connected = |t: &Task| t.active.iter().all(|l| options.contains(l));
                let in_dist = |t: &Task| match support {
                    TaskSupport::Connected => connected(t),
                    _ => self.is_disconnected(t),
                };
                let ood = all
                    .iter()
                    .filter(|t| !connected(t) && !self.is_disconnected(t))
                    .cloned()
                    .collect();
                (all.into_iter().filter(in_dist).collect(), ood)
            }
        };
        let empty = |side| TaskError::EmptySplit {
            support: support.name(),
            side,
            total,
        };
        if train.is_empty() {
            return Err(empty("training"));
        }
        if ood.is_empty() {
            return Err(empty("OOD"));
        }
        Ok(TaskSplit { train, ood })
    }

    /// The 3M per-layer options of the connected support: one-hots and the pairs
    /// {i, i+1 mod M}, {i, i+2 mod M}, each ascending.
    fn connected_options(&self) -> HashSet<Vec<usize>> {
        let m = self.modules;
        (0..m)
            .flat_map(|i| {
                let pair = |j: usize| {
                    let (a, b) = (i.min(j), i.max(j));
                    vec![a, b]
                };
                [vec![i], pair((i + 1) % m), pair((i + 2) % m)]
            })
            .collect()
    }

    /// All layers within one half of the modules, and all one-hot or all two-hot.
    fn is_disconnected(&self, task: &Task) -> bool {
        let half = self.modules / 2;
        let mut modules = task.active.iter().flatten();
        let one_half = modules.clone().all(|&m| m < half) || modules.all(|&m| m >= half);
        one_half && (task.has_hotness(1) || task.has_hotness(2))
    }

    /// The hotness levels of the `ood_k` evaluation sets: the powers of two up to M.
    pub fn hotness_levels(&self) -> Vec<usize> {
        std::iter::successors(Some(1usize), |k| k.checked_mul(2))
            .take_while(|&k| k <= self.modules)
            .collect()
    }

    /// The `ood_k` set for 1 ≤ k ≤ K: the OOD tasks of `split` with exactly k active modules in
    /// every layer, in split order. It can be empty (every all-one-hot task is connected, so the
    /// connected/disconnected OOD set has none); the caller decides whether to skip it.
    pub fn ood_with_hotness(&self, split: &TaskSplit, k: usize) -> Result<Vec<Task>, TaskError> {
        if k == 0 || k > self.max_hot {
            return Err(TaskError::InvalidHotness {
                k,
                reason: format!(
                    "the OOD tasks of a split have 1..={} active modules per layer; \
                     use random_k_hot for k > K",
                    self.max_hot
                ),
            });
        }
        Ok(split
            .ood
            .iter()
            .filter(|t| t.has_hotness(k))
            .cloned()
            .collect())
    }

    /// The `ood_k` set for K < k ≤ M: `count` tasks, each layer an independent uniformly random
    /// k-subset of the modules, drawn from a generator seeded with `seed`. They are all novel,
    /// since no training task has more than K active modules in a layer.
    pub fn random_k_hot(&self, k: usize, count: usize, seed: u64) -> Result<Vec<Task>, TaskError> {
        if k <= self.max_hot || k > self.modules {
            return Err(TaskError::InvalidHotness {
                k,
                reason: format!(
                    "random k-hot tasks need K < k ≤ M ({} < k ≤ {}); for k ≤ K use \
                     ood_with_hotness, whose tasks are guaranteed to be held out",
                    self.max_hot, self.modules
                ),
            });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Ok((0..count)
            .map(|_| Task {
                modules: self.modules,
                active: (0..self.layers)
                    .map(|_| {
                        let mut layer =
                            rand::seq::index::sample(&mut rng, self.modules, k).into_vec();
                        layer.sort_unstable();
                        layer
                    })
                    .collect(),
            })
            .collect())
    }

    /// The latents of `tasks` as one row-major batch of `tasks.len()` × L·M entries, ready to
    /// upload. Fails if a task comes from a space of another shape.
    pub fn latents(
        &self,
        tasks: &[Task],
        coefficients: Coefficients,
    ) -> Result<Vec<f32>, TaskError> {
        if let Some((index, t)) = tasks
            .iter()
            .enumerate()
            .find(|(_, t)| t.modules != self.modules || t.layers() != self.layers)
        {
            return Err(TaskError::ForeignTask {
                index,
                modules: t.modules,
                layers: t.layers(),
                space_modules: self.modules,
                space_layers: self.layers,
            });
        }
        let mut rng = match coefficients {
            Coefficients::Binary => None,
            Coefficients::Continuous { seed } => Some(ChaCha8Rng::seed_from_u64(seed)),
        };
        let mut z = vec![0.0; tasks.len() * self.latent_len()];
        for (t, row) in tasks.iter().zip(z.chunks_mut(self.latent_len())) {
            t.fill_latent(row, rng.as_mut());
        }
        Ok(z)
    }
}
