//! Teacher latents of the theory experiment (spec §7.3, `SparseData`): training tasks drawn
//! uniformly from the run's task list, and the evaluation families, every h-hot combination of
//! the M modules for h = 1..M, always with continuous weights.
//!
//! - discrete: the task's k-hot vector divided by its L2 norm, √k;
//! - continuous: Exp-simplex weights on the active modules, shifted into [0.5, 1) (§2.2).
//!
//! Draws are keyed by (seed, purpose, counter) through ChaCha8, so step `s` of a run gets the
//! same tasks alone or in a batch of runs, and on resume.

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use super::task_list::TaskList;
use crate::experiments::hyperteacher::tasks::simplex_coefficients;

/// How active modules are weighted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weighting {
    /// k-hot / √k.
    Discrete,
    /// Exp-simplex weights in [0.5, 1).
    Continuous,
}

/// A family of task supports to draw latents from.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    /// Its name: `train`, or `h1` … `hM` for the h-hot combinations.
    pub name: String,
    /// The supports (active modules of each task).
    pub supports: Vec<Vec<usize>>,
    /// Weighting of the active modules.
    pub weighting: Weighting,
}

impl Family {
    /// The training tasks of `list`.
    pub fn training(list: &TaskList, continuous: bool) -> Family {
        Family {
            name: "train".into(),
            supports: list.tasks().collect(),
            weighting: if continuous {
                Weighting::Continuous
            } else {
                Weighting::Discrete
            },
        }
    }

    /// Every `h`-hot combination of `modules` modules, continuously weighted.
    pub fn h_hot(modules: usize, h: usize) -> Family {
        Family {
            name: format!("h{h}"),
            supports: combinations(modules, h),
            weighting: Weighting::Continuous,
        }
    }

    /// `count` latents (`count × modules`, row-major), tasks drawn uniformly with replacement
    /// (as `jax.random.choice`) by a generator keyed with `(seed, stream)`.
    pub fn sample(&self, modules: usize, count: usize, seed: u64, stream: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut out = vec![0.0f32; count * modules];
        for row in out.chunks_mut(modules) {
            let support = &self.supports[rng.random_range(0..self.supports.len())];
            let values = match self.weighting {
                Weighting::Discrete => vec![1.0 / (support.len() as f64).sqrt(); support.len()],
                Weighting::Continuous => simplex_coefficients(&mut rng, support.len()),
            };
            for (&m, v) in support.iter().zip(values) {
                row[m] = v as f32;
            }
        }
        out
    }
}

/// The `h`-subsets of `0..n` in lexicographic order (`itertools.combinations`).
pub fn combinations(n: usize, h: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut pick: Vec<usize> = (0..h).collect();
    if h == 0 || h > n {
        return out;
    }
    loop {
        out.push(pick.clone());
        // Advance the rightmost index that can still move, then reset the ones after it.
        let Some(i) = (0..h).rev().find(|&i| pick[i] < n - h + i) else {
            return out;
        };
        pick[i] += 1;
        for j in i + 1..h {
            pick[j] = pick[j - 1] + 1;
        }
    }
}

/// The evaluation families of a run: its training tasks, then h = 1..M.
pub fn eval_families(list: &TaskList, continuous: bool) -> Vec<Family> {
    let m = list.modules();
    std::iter::once(Family::training(list, continuous))
        .chain((1..=m).map(|h| Family::h_hot(m, h)))
        .collect()
}
