//! `hypermod teacher-stats`: statistics of the teacher's soft targets over many teachers (seeds),
//! tasks and inputs, to compare the generator with the official one (issue 12, item 6;
//! `benches/peers/teacher_stats.py` computes the same numbers from
//! `metax/data/dataset/teacher.py`).
//!
//! Per teacher seed and task set (in-distribution, OOD) it reports the mean per-sample maximum
//! probability and entropy, their deciles 1, 5 and 9, and the class balance (mean over tasks of
//! the share of inputs whose argmax is the task's most frequent class). Teachers of different
//! seeds differ noticeably, so two generators are compared by the spread of these per-seed
//! figures, not by one teacher. Everything runs on the f64 CPU twin of the teacher
//! ([`teacher_targets_cpu`]), so no device is needed and the figures are the exact ones the GPU
//! reproduces to rounding.

use serde::Serialize;

use super::config::task_err;
use super::config::HyperteacherConfig;
use super::setup::{coefficients, pool};
use crate::error::{arg_err, Result};
use crate::teacher::{
    teacher_inputs_cpu, teacher_targets_cpu, TeacherConfig, TeacherWeights, STATS_INPUTS,
    TARGET_TEMPERATURE,
};
use crate::train::meta::sample_latents;

/// Most tasks × inputs × seeds one call may evaluate (bounds a typo's run time).
pub const MAX_TARGET_SAMPLES: usize = 1 << 26;

/// Target statistics of one task set of one teacher.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SetStats {
    /// Mean over samples of max_c y_c.
    pub mean_max_prob: f64,
    /// Deciles 1, 5 and 9 of max_c y_c.
    pub max_prob_deciles: [f64; 3],
    /// Mean over samples of −Σ_c y_c ln y_c (nats).
    pub mean_entropy: f64,
    /// Deciles 1, 5 and 9 of the entropy.
    pub entropy_deciles: [f64; 3],
    /// Mean over tasks of the share of inputs whose argmax is the task's most frequent class.
    pub majority_class_share: f64,
}

/// The statistics of one teacher seed.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SeedStats {
    /// Teacher (and task split) seed.
    pub seed: u64,
    /// Tasks drawn from the in-distribution (training) pool.
    pub in_dist: SetStats,
    /// Tasks drawn from the held-out pool.
    pub ood: SetStats,
}

/// Mean and sample standard deviation over seeds of one figure.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Spread {
    /// Mean over seeds.
    pub mean: f64,
    /// Sample standard deviation over seeds (0 for one seed).
    pub sd: f64,
}

/// The whole report.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TargetStats {
    /// Tasks per set and seed.
    pub tasks: usize,
    /// Inputs per task.
    pub inputs: usize,
    /// One entry per teacher seed.
    pub seeds: Vec<SeedStats>,
    /// Over seeds, in-distribution: mean max probability, mean entropy, majority-class share.
    pub in_dist: [Spread; 3],
    /// The same for the OOD tasks.
    pub ood: [Spread; 3],
}

/// Statistics of `seeds` consecutive teacher seeds from `cfg.train.seed`, `tasks` tasks of
/// `inputs` inputs each per set.
pub fn target_stats(
    cfg: &HyperteacherConfig,
    seeds: usize,
    tasks: usize,
    inputs: usize,
) -> Result<TargetStats> {
    cfg.validate()?;
    let samples = seeds.saturating_mul(tasks).saturating_mul(inputs);
    if seeds == 0 || tasks == 0 || inputs == 0 || samples > MAX_TARGET_SAMPLES {
        return Err(arg_err(
            "teacher-stats",
            format!(
                "seeds × tasks × inputs = {seeds} × {tasks} × {inputs} must be in \
                 1..={MAX_TARGET_SAMPLES}"
            ),
        ));
    }
    let mut per_seed = Vec::with_capacity(seeds);
    for i in 0..seeds as u64 {
        let mut c = cfg.clone();
        c.train.seed = cfg.train.seed + i;
        per_seed.push(seed_stats(&c, tasks, inputs)?);
    }
    let spread = |f: &dyn Fn(&SeedStats) -> f64| spread(per_seed.iter().map(f));
    Ok(TargetStats {
        tasks,
        inputs,
        in_dist: [
            spread(&|s| s.in_dist.mean_max_prob),
            spread(&|s| s.in_dist.mean_entropy),
            spread(&|s| s.in_dist.majority_class_share),
        ],
        ood: [
            spread(&|s| s.ood.mean_max_prob),
            spread(&|s| s.ood.mean_entropy),
            spread(&|s| s.ood.majority_class_share),
        ],
        seeds: per_seed,
    })
}

fn seed_stats(cfg: &HyperteacherConfig, tasks: usize, inputs: usize) -> Result<SeedStats> {
    let seed = cfg.train.seed;
    let space = cfg.task_space()?;
    let split = space.split(cfg.task_support()).map_err(task_err)?;
    let weights = TeacherWeights::generate(TeacherConfig {
        hidden_dim: cfg.task.hidden_dim,
        num_hidden: cfg.task.layers + 1,
        ..TeacherConfig::paper(cfg.task.modules, cfg.task.chunking, seed)
    })?;
    let out = weights.config.output_dim;
    let x: Vec<f64> = teacher_inputs_cpu(&weights.config, 0, tasks, inputs)?
        .into_iter()
        .map(f64::from)
        .collect();
    let set = |tasks_of_set, salt, counter| -> Result<SetStats> {
        let pool = pool(
            &space,
            tasks_of_set,
            coefficients(cfg.task.continuous, seed, salt),
        )?;
        let z: Vec<f64> = sample_latents(&pool, tasks, seed, counter)
            .into_iter()
            .map(f64::from)
            .collect();
        let y = teacher_targets_cpu(
            &weights,
            &z,
            &x,
            STATS_INPUTS,
            f64::from(TARGET_TEMPERATURE),
        )?;
        Ok(set_stats(&y, tasks, inputs, out))
    };
    Ok(SeedStats {
        seed,
        in_dist: set(&split.train, 1, 1)?,
        ood: set(&split.ood, 2, 2)?,
    })
}

/// The figures of soft targets `y` (`tasks × inputs × classes`).
fn set_stats(y: &[f64], tasks: usize, inputs: usize, classes: usize) -> SetStats {
    let mut max_prob = Vec::with_capacity(tasks * inputs);
    let mut entropy = Vec::with_capacity(tasks * inputs);
    let mut majority = 0.0;
    for task in y.chunks(inputs * classes) {
        let mut counts = vec![0usize; classes];
        for row in task.chunks(classes) {
            let (arg, &p) = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .expect("classes ≥ 1");
            counts[arg] += 1;
            max_prob.push(p);
            entropy.push(
                -row.iter()
                    .filter(|&&q| q > 0.0)
                    .map(|&q| q * q.ln())
                    .sum::<f64>(),
            );
        }
        majority += *counts.iter().max().expect("classes ≥ 1") as f64 / inputs as f64;
    }
    SetStats {
        mean_max_prob: mean(&max_prob),
        max_prob_deciles: deciles(&mut max_prob),
        mean_entropy: mean(&entropy),
        entropy_deciles: deciles(&mut entropy),
        majority_class_share: majority / tasks as f64,
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Deciles 1, 5, 9 (nearest rank).
fn deciles(v: &mut [f64]) -> [f64; 3] {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * v.len() as f64) as usize).min(v.len() - 1)];
    [at(0.1), at(0.5), at(0.9)]
}

fn spread(values: impl Iterator<Item = f64>) -> Spread {
    let v: Vec<f64> = values.collect();
    let m = mean(&v);
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    } else {
        0.0
    };
    Spread { mean: m, sd }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hot_targets_have_max_prob_one_and_zero_entropy() {
        // Two tasks, two inputs, three classes: task 0 always class 1, task 1 classes 0 and 2.
        let y = [0., 1., 0., 0., 1., 0., 1., 0., 0., 0., 0., 1.];
        let s = set_stats(&y, 2, 2, 3);
        assert_eq!(s.mean_max_prob, 1.0);
        assert_eq!(s.mean_entropy, 0.0);
        assert_eq!(s.majority_class_share, 0.75);
    }

    #[test]
    fn uniform_targets_have_entropy_ln_classes() {
        let y = [0.25; 8];
        let s = set_stats(&y, 1, 2, 4);
        assert!((s.mean_entropy - 4f64.ln()).abs() < 1e-12);
        assert_eq!(s.mean_max_prob, 0.25);
    }
}
