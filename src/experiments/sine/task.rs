//! One run's sine task (spec §2.4, reconstructed): the true projections `u_ik`, each module's
//! sine components, and the exact mean and variance of the raw target, so that targets have
//! mean 0 and variance 1 under the training distribution x ~ N(0, I).
//!
//! Module `i`, component `l`: `a_l·sin(ω_l·w_ilᵀ(U_iᵀx) + ψ_il)`, with `ψ_il ~ U[0, 2π)` and
//! `w_il` a random unit vector of ℝ^b (1 when b = 1). Everything is drawn on the host from the
//! run's seed with the engine's Philox (a few hundred numbers), stored as f32 and uploaded; the
//! device then draws the data (`ops::sine`).
//!
//! The moments are closed-form: each argument `A_c = g_cᵀx + ψ_c`, `g_c = ω_c·U_i·w_c`, is
//! Gaussian, `E sin A_c = sin ψ_c·e^{−|g_c|²/2}` and
//! `E sin A_c sin A_d = ½(cos(ψ_c − ψ_d)·e^{−|g_c − g_d|²/2} − cos(ψ_c + ψ_d)·e^{−|g_c + g_d|²/2})`.

use super::config::{Projections, SineConfig};
use crate::ops::rng::{fill_cpu, Distribution, RngKey};
use crate::ops::sine::SineShape;

/// Stream of the task's own draws (projections, phases, component directions).
const TASK_STREAM: u64 = 0x51_0000_0000_0000;

/// One run's task: the task tensor the kernel reads and the projections in f64.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    /// Its sizes.
    pub shape: SineShape,
    /// The `[1 × task_len]` tensor of `ops::sine` (n, mean, inv_std, projections, components).
    pub tensor: Vec<f32>,
}

/// Scales `v` to unit norm (in f64, then rounded).
fn unit(v: &mut [f32]) {
    let norm = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    v.iter_mut().for_each(|x| *x = (*x as f64 / norm) as f32);
}

/// Removes from `v` its components along the (unit) rows `basis`, then normalises it.
fn orthogonalise(v: &mut [f32], basis: &[&[f32]]) {
    for b in basis {
        let d: f64 = v.iter().zip(*b).map(|(&x, &y)| x as f64 * y as f64).sum();
        v.iter_mut()
            .zip(*b)
            .for_each(|(x, &y)| *x = (*x as f64 - d * y as f64) as f32);
    }
    unit(v);
}

impl Task {
    /// The task of `cfg` for the run with `seed` (n = `cfg.task.n_train`).
    pub fn new(cfg: &SineConfig, seed: u64) -> Task {
        let t = &cfg.task;
        let shape = SineShape {
            m: t.m,
            modules: t.modules,
            dim: t.module_dim,
            comps: t.frequencies.len(),
        };
        let draw = |k: u64, len: usize, dist| {
            fill_cpu(dist, RngKey::new(seed, TASK_STREAM + k), len, 0.0, 1.0)
        };
        let rows = shape.modules * shape.dim;
        let mut u = draw(0, rows * shape.m, Distribution::Normal);
        for r in 0..rows {
            let (done, rest) = u.split_at_mut(r * shape.m);
            let row = &mut rest[..shape.m];
            let basis: Vec<&[f32]> = match t.projections {
                Projections::Orthonormal => done.chunks(shape.m).collect(),
                // The held-out combination's reflections need u_00 ⟂ u_10.
                Projections::Random if t.holdout_combination && r == shape.dim => {
                    vec![&done[..shape.m]]
                }
                Projections::Random => Vec::new(),
            };
            if basis.is_empty() {
                unit(row);
            } else {
                orthogonalise(row, &basis);
            }
        }
        let phases = fill_cpu(
            Distribution::Uniform,
            RngKey::new(seed, TASK_STREAM + 1),
            shape.modules * shape.comps,
            0.0,
            std::f32::consts::TAU,
        );
        let dirs = draw(
            2,
            shape.modules * shape.comps * shape.dim,
            Distribution::Normal,
        );
        let mut tensor = vec![t.n_train as f32, 0.0, 1.0, 0.0];
        tensor.extend(&u);
        for i in 0..shape.modules {
            for l in 0..shape.comps {
                let c = i * shape.comps + l;
                tensor.extend([t.amplitudes[l] as f32, t.frequencies[l] as f32, phases[c]]);
                let mut w = dirs[c * shape.dim..(c + 1) * shape.dim].to_vec();
                if shape.dim == 1 {
                    w[0] = 1.0;
                } else {
                    unit(&mut w);
                }
                tensor.extend(w);
            }
        }
        let mut task = Task { shape, tensor };
        let (mean, var) = task.raw_moments();
        task.tensor[1] = mean as f32;
        task.tensor[2] = (1.0 / var.sqrt()) as f32;
        task
    }

    /// Projection row `k` (module `k / b`, input `k % b`), unit norm.
    pub fn projection(&self, k: usize) -> &[f32] {
        let m = self.shape.m;
        &self.tensor[4 + k * m..4 + (k + 1) * m]
    }

    /// Each component's `(a, g, ψ)`: amplitude, the argument's direction `g = ω·U_i·w` in ℝ^m,
    /// phase (from the f32 values the kernel reads).
    fn components(&self) -> Vec<(f64, Vec<f64>, f64)> {
        let s = self.shape;
        let mut out = Vec::new();
        for i in 0..s.modules {
            for l in 0..s.comps {
                let c = &self.tensor[s.comp_at(i, l)..];
                let mut g = vec![0.0; s.m];
                for k in 0..s.dim {
                    let u = self.projection(i * s.dim + k);
                    let w = c[1] as f64 * c[3 + k] as f64;
                    g.iter_mut().zip(u).for_each(|(g, &u)| *g += w * u as f64);
                }
                out.push((c[0] as f64, g, c[2] as f64));
            }
        }
        out
    }

    /// Mean and variance of the raw target `(1/√K)·Σ a·sin(gᵀx + ψ)` under x ~ N(0, I).
    pub fn raw_moments(&self) -> (f64, f64) {
        let comps = self.components();
        let sq = |a: &[f64], b: &[f64], sign: f64| -> f64 {
            a.iter().zip(b).map(|(x, y)| (x + sign * y).powi(2)).sum()
        };
        let e_sin: Vec<f64> = comps
            .iter()
            .map(|(_, g, psi)| psi.sin() * (-0.5 * sq(g, g, 0.0)).exp())
            .collect();
        let k = self.shape.modules as f64;
        let mean = comps
            .iter()
            .zip(&e_sin)
            .map(|((a, ..), e)| a * e)
            .sum::<f64>()
            / k.sqrt();
        let mut var = 0.0;
        for (c, (ac, gc, pc)) in comps.iter().enumerate() {
            for (d, (ad, gd, pd)) in comps.iter().enumerate() {
                let e2 = 0.5
                    * ((pc - pd).cos() * (-0.5 * sq(gc, gd, -1.0)).exp()
                        - (pc + pd).cos() * (-0.5 * sq(gc, gd, 1.0)).exp());
                var += ac * ad * (e2 - e_sin[c] * e_sin[d]);
            }
        }
        (mean, var / k)
    }
}

/// Module recovery: the mean over true modules `j` of `max_i` over network modules of the
/// alignment of their subspaces — `|cos(u_j, û_i)|` when b = b̂ = 1; in general the root mean
/// square of the cosines of the principal angles between span(U_j) and span(Û_i), i.e.
/// `‖Q_jᵀ Q̂_i‖_F / √min(b, b̂)` with orthonormal bases `Q`.
///
/// `truth` holds the true rows (K·b rows of m), `learned` the network's projections item by item
/// (K̂ items of `m × b̂`, row-major: column `c` is projection vector `c`).
pub fn recovery(truth: &[f32], b: usize, learned: &[f32], b_net: usize, m: usize) -> f64 {
    let basis = |vectors: Vec<Vec<f64>>| -> Vec<Vec<f64>> {
        let mut q: Vec<Vec<f64>> = Vec::new();
        for mut v in vectors {
            for e in &q {
                let d: f64 = v.iter().zip(e).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(e).for_each(|(a, b)| *a -= d * b);
            }
            let n = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            if n > 1e-12 {
                q.push(v.into_iter().map(|a| a / n).collect());
            }
        }
        q
    };
    let truths: Vec<Vec<Vec<f64>>> = truth
        .chunks(b * m)
        .map(|rows| {
            basis(
                rows.chunks(m)
                    .map(|r| r.iter().map(|&x| x as f64).collect())
                    .collect(),
            )
        })
        .collect();
    let nets: Vec<Vec<Vec<f64>>> = learned
        .chunks(m * b_net)
        .map(|item| {
            basis(
                (0..b_net)
                    .map(|c| (0..m).map(|r| item[r * b_net + c] as f64).collect())
                    .collect(),
            )
        })
        .collect();
    let align = |q: &[Vec<f64>], p: &[Vec<f64>]| -> f64 {
        let dims = q.len().min(p.len());
        if dims == 0 {
            return 0.0;
        }
        let f2: f64 = q
            .iter()
            .flat_map(|a| {
                p.iter()
                    .map(move |c| a.iter().zip(c).map(|(x, y)| x * y).sum::<f64>())
            })
            .map(|d| d * d)
            .sum();
        (f2 / dims as f64).sqrt()
    };
    let total: f64 = truths
        .iter()
        .map(|q| nets.iter().map(|p| align(q, p)).fold(0.0, f64::max))
        .sum();
    total / truths.len() as f64
}
