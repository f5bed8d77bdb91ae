//! The theory metrics of `run_theory.py` (spec §7.4), computed on the host in f64 from the
//! read-back latents, outputs and weights of one run:
//!
//! - losses: ½·MSE, relative per sample, relative over the population;
//! - latent R²: ridge (λ = 0.01, no intercept, 10 CG steps) from the inferred student latents ê
//!   to each teacher coordinate, `train_vs_ood` (fit on the training tasks) and `ood_vs_ood`;
//!   the ridge weights give F (`M × M̂`, e ≈ F ê);
//! - template alignment: student modules mapped into the teacher basis by pinv(F), columns
//!   (hidden units) normalised over inputs, best-matching student unit per teacher unit;
//! - generated-weight alignment: the same cosine between the generated hidden weights of each
//!   task, with the unit matching shared by all tasks (`avr`) or chosen per task (`max`).

use serde::{Deserialize, Serialize};

use super::net::NetShape;
use crate::metrics::r2::Ridge;

/// The latent decoder of `run_theory.py`.
pub const LATENT_RIDGE: Ridge = Ridge {
    lambda: 0.01,
    intercept: false,
    iters: 10,
};

/// One run's metrics on one evaluation family (or, with the set-only fields absent, of one
/// training step).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TheoryMetrics {
    /// ½·mean((y − ŷ)²) (the training step: the outer query loss).
    pub loss: f64,
    /// The training step's ½·MSE after the last inner step (support loss).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_loss: Option<f64>,
    /// ½·mean over samples of mean_o (y − ŷ)² / mean_o y²; absent when a sample's teacher
    /// output is exactly 0 (every hidden unit off: the reference reports inf).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rel_loss_sample: Option<f64>,
    /// ½·mean((y − ŷ)²) / mean(y²).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rel_loss_population: Option<f64>,
    /// Latent R², fitted on the training tasks, mean over teacher coordinates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r2_train_vs_ood: Option<f64>,
    /// Latent R², fitted and scored on this family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r2_ood_vs_ood: Option<f64>,
    /// Template alignment with F fitted on the training tasks (mean over modules and units).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_alignment: Option<f64>,
    /// Template alignment with F fitted on this family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_alignment_ood: Option<f64>,
    /// Generated-weight alignment, one unit matching for all tasks (mean over teacher units).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gen_avr_alignment: Option<f64>,
    /// Generated-weight alignment, matching per task (mean over teacher units).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gen_max_alignment: Option<f64>,
}

/// The three losses of teacher outputs `y` and student outputs `y_hat` (`samples × outputs`).
pub fn losses(y: &[f32], y_hat: &[f32], outputs: usize) -> (f64, f64, f64) {
    let (mut se, mut sy, mut rel) = (0.0, 0.0, 0.0);
    for (t, p) in y.chunks(outputs).zip(y_hat.chunks(outputs)) {
        let e: f64 = t
            .iter()
            .zip(p)
            .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
            .sum();
        let q: f64 = t.iter().map(|&a| (a as f64).powi(2)).sum();
        se += e;
        sy += q;
        rel += e / q;
    }
    let (n, samples) = (y.len() as f64, (y.len() / outputs) as f64);
    (0.5 * se / n, 0.5 * rel / samples, 0.5 * se / sy)
}

/// Latent R² of every teacher coordinate and F (`modules × student modules`): ridge from
/// `fit_hat` (`n × M̂`) to `fit` (`n × M`), scored on `test_hat` / `test`.
pub fn latent_r2(
    fit_hat: &[f32],
    fit: &[f32],
    test_hat: &[f32],
    test: &[f32],
    modules: usize,
    student_modules: usize,
) -> (Option<f64>, Vec<f64>) {
    let mut f = Vec::with_capacity(modules * student_modules);
    let mut r2 = Vec::with_capacity(modules);
    for c in 0..modules {
        let fit = LATENT_RIDGE.fit_score(fit_hat, fit, test_hat, test, student_modules, modules, c);
        f.extend(fit.weights);
        r2.extend(fit.r2);
    }
    let mean = (r2.len() == modules).then(|| r2.iter().sum::<f64>() / modules as f64);
    (mean, f)
}

/// Moore–Penrose pseudo-inverse of `a` (`m × n`, row-major) as `n × m`, through the symmetric
/// eigendecomposition of the smaller Gram matrix (singular values below
/// `10·max(m, n)·ε_f32·σ_max` count as zero, jax's default cut-off in f32).
pub fn pinv(a: &[f64], m: usize, n: usize) -> Vec<f64> {
    // With G = A·Aᵀ (m ≤ n) or Aᵀ·A: pinv(A) = Aᵀ·G⁺ or G⁺·Aᵀ.
    let wide = m <= n;
    let k = m.min(n);
    let at = |i: usize, j: usize| a[i * n + j];
    let mut g = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..k {
            g[i * k + j] = if wide {
                (0..n).map(|l| at(i, l) * at(j, l)).sum()
            } else {
                (0..m).map(|l| at(l, i) * at(l, j)).sum()
            };
        }
    }
    let (values, vectors) = jacobi_eigen(g, k);
    let top = values.iter().cloned().fold(0.0, f64::max);
    let cut = (10.0 * m.max(n) as f64 * f32::EPSILON as f64).powi(2) * top;
    let mut g_plus = vec![0.0; k * k];
    for (e, &lambda) in values.iter().enumerate() {
        if lambda > cut && lambda > 0.0 {
            for i in 0..k {
                for j in 0..k {
                    g_plus[i * k + j] += vectors[i * k + e] * vectors[j * k + e] / lambda;
                }
            }
        }
    }
    let mut out = vec![0.0; n * m];
    for i in 0..n {
        for j in 0..m {
            out[i * m + j] = if wide {
                (0..m).map(|l| at(l, i) * g_plus[l * m + j]).sum()
            } else {
                (0..n).map(|l| g_plus[i * n + l] * at(j, l)).sum()
            };
        }
    }
    out
}

/// Eigenvalues and eigenvectors (columns of a row-major `k × k`) of a symmetric matrix by cyclic
/// Jacobi rotations.
fn jacobi_eigen(mut a: Vec<f64>, k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; k * k];
    (0..k).for_each(|i| v[i * k + i] = 1.0);
    for _sweep in 0..100 {
        let off: f64 = (0..k)
            .flat_map(|i| (0..k).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * k + j].powi(2))
            .sum();
        let diag: f64 = (0..k).map(|i| a[i * k + i].powi(2)).sum();
        if off <= 1e-30 * diag.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..k {
            for q in p + 1..k {
                let apq = a[p * k + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * k + q] - a[p * k + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let (c, s) = (1.0 / (t * t + 1.0).sqrt(), t / (t * t + 1.0).sqrt());
                for r in 0..k {
                    let (arp, arq) = (a[r * k + p], a[r * k + q]);
                    a[r * k + p] = c * arp - s * arq;
                    a[r * k + q] = s * arp + c * arq;
                }
                for r in 0..k {
                    let (apr, aqr) = (a[p * k + r], a[q * k + r]);
                    a[p * k + r] = c * apr - s * aqr;
                    a[q * k + r] = s * apr + c * aqr;
                }
                for r in 0..k {
                    let (vrp, vrq) = (v[r * k + p], v[r * k + q]);
                    v[r * k + p] = c * vrp - s * vrq;
                    v[r * k + q] = s * vrp + c * vrq;
                }
            }
        }
    }
    ((0..k).map(|i| a[i * k + i]).collect(), v)
}

/// Normalises every column (hidden unit) of each `inputs × hidden` block to unit L2 norm.
fn normalise_columns(w: &mut [f64], inputs: usize, hidden: usize) {
    for block in w.chunks_mut(inputs * hidden) {
        for o in 0..hidden {
            let norm = (0..inputs)
                .map(|i| block[i * hidden + o].powi(2))
                .sum::<f64>()
                .sqrt();
            if norm > 0.0 {
                (0..inputs).for_each(|i| block[i * hidden + o] /= norm);
            }
        }
    }
}

/// Cosines between the columns of teacher block `a` (`inputs × h`) and student block `b`
/// (`inputs × ĥ`), as `h × ĥ`.
fn cosines(a: &[f64], b: &[f64], inputs: usize, h: usize, hs: usize) -> Vec<f64> {
    let mut c = vec![0.0; h * hs];
    for i in 0..inputs {
        for o in 0..h {
            let ai = a[i * h + o];
            for (big_o, co) in c[o * hs..(o + 1) * hs].iter_mut().enumerate() {
                *co += ai * b[i * hs + big_o];
            }
        }
    }
    c
}

/// `Σ_m coeffs[m] · blocks[m]` over `len`-sized blocks.
fn combine(coeffs: impl Iterator<Item = f64>, blocks: &[f32], len: usize) -> Vec<f64> {
    let mut out = vec![0.0; len];
    for (c, block) in coeffs.zip(blocks.chunks(len)) {
        for (o, &b) in out.iter_mut().zip(block) {
            *o += c * b as f64;
        }
    }
    out
}

/// Template alignment (mean over teacher modules and units of the best student-unit cosine):
/// `teacher_h` (`M × inputs·h`), `student_h` (`M̂ × inputs·ĥ`), F (`M × M̂`).
pub fn template_alignment(
    teacher_h: &[f32],
    student_h: &[f32],
    f: &[f64],
    t: NetShape,
    s: NetShape,
) -> f64 {
    let f_pinv = pinv(f, t.modules, s.modules); // M̂ × M
    let mut total = 0.0;
    for m in 0..t.modules {
        let coeffs = (0..s.modules).map(|big_t| f_pinv[big_t * t.modules + m]);
        let mut mapped = combine(coeffs, student_h, s.generated_len());
        normalise_columns(&mut mapped, s.inputs, s.hidden);
        let block = &teacher_h[m * t.generated_len()..(m + 1) * t.generated_len()];
        let mut teacher: Vec<f64> = block.iter().map(|&v| v as f64).collect();
        normalise_columns(&mut teacher, t.inputs, t.hidden);
        let c = cosines(&teacher, &mapped, t.inputs, t.hidden, s.hidden);
        total += c
            .chunks(s.hidden)
            .map(|row| row.iter().cloned().fold(f64::MIN, f64::max))
            .sum::<f64>();
    }
    total / (t.modules * t.hidden) as f64
}

/// Generated-weight alignment `(avr, max)` over tasks with teacher latents `e` (`n × M`) and
/// inferred student latents `e_hat` (`n × M̂`).
pub fn generated_alignment(
    teacher_h: &[f32],
    student_h: &[f32],
    e: &[f32],
    e_hat: &[f32],
    t: NetShape,
    s: NetShape,
) -> (f64, f64) {
    let n = e.len() / t.modules;
    let mut mean_c = vec![0.0; t.hidden * s.hidden];
    let mut best_per_task = vec![0.0; t.hidden];
    for b in 0..n {
        let eb = &e[b * t.modules..(b + 1) * t.modules];
        let ebh = &e_hat[b * s.modules..(b + 1) * s.modules];
        let mut w = combine(eb.iter().map(|&v| v as f64), teacher_h, t.generated_len());
        let mut w_hat = combine(ebh.iter().map(|&v| v as f64), student_h, s.generated_len());
        normalise_columns(&mut w, t.inputs, t.hidden);
        normalise_columns(&mut w_hat, s.inputs, s.hidden);
        let c = cosines(&w, &w_hat, t.inputs, t.hidden, s.hidden);
        mean_c
            .iter_mut()
            .zip(&c)
            .for_each(|(m, v)| *m += v / n as f64);
        for (o, row) in c.chunks(s.hidden).enumerate() {
            best_per_task[o] += row.iter().cloned().fold(f64::MIN, f64::max) / n as f64;
        }
    }
    let avr = mean_c
        .chunks(s.hidden)
        .map(|row| row.iter().cloned().fold(f64::MIN, f64::max))
        .sum::<f64>()
        / t.hidden as f64;
    let max = best_per_task.iter().sum::<f64>() / t.hidden as f64;
    (avr, max)
}
