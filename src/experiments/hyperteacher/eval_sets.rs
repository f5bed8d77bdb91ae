//! The evaluation sets, fixed for the whole run (same tasks and data at every evaluation):
//! `valid` and `test` from the training tasks, `ood` from the held-out ones, and `ood_k<k>` per
//! hotness level (held-out tasks with k active modules; random k-hot tasks for k > K).

use super::config::task_err;
use super::setup::{coefficients, pool, Pools};
use crate::error::Result;
use crate::experiments::meta_run::EvalSet;
use crate::train::meta::sample_latents;

/// What the sets are drawn with (resolved from `[train]` and `[task]`).
pub(crate) struct EvalPlan {
    /// Tasks per set.
    pub tasks: usize,
    /// Run seed.
    pub seed: u64,
    /// Continuous task coefficients.
    pub continuous: bool,
}

/// The sets in evaluation order (the order fixes each set's data stream).
pub(crate) fn eval_sets(s: &Pools, plan: &EvalPlan) -> Result<Vec<EvalSet>> {
    let sample =
        |p: &[Vec<f32>], salt: u64| sample_latents(p, plan.tasks, plan.seed ^ 0xE7A1, salt);
    let set = |name: &str, latents| EvalSet {
        name: name.into(),
        latents,
    };
    let mut sets = vec![
        set("valid", sample(&s.train_pool, 1)),
        set("test", sample(&s.train_pool, 2)),
        set("ood", sample(&s.ood_pool, 3)),
    ];
    for k in s.space.hotness_levels() {
        let tasks = if k <= s.space.max_hot() {
            s.space.ood_with_hotness(&s.split, k)
        } else {
            s.space.random_k_hot(k, plan.tasks, plan.seed ^ k as u64)
        }
        .map_err(task_err)?;
        if tasks.is_empty() {
            continue;
        }
        let salt = 10 + k as u64;
        let p = pool(
            &s.space,
            &tasks,
            coefficients(plan.continuous, plan.seed, salt),
        )?;
        sets.push(set(&format!("ood_k{k}"), sample(&p, salt)));
    }
    Ok(sets)
}
