//! The closed-form expected train and test loss of the spec's reconstruction of Boopathy et al.'s
//! Theorem 1 (`boopathy-modular.md` §1.3), evaluated as curves against n, p and m and set next to
//! a sine sweep's empirical monolithic test MSE (`hypermod sine-theory`).
//!
//! **Everything here is \[inferred\]**: the paper's theorem text was never available; §1.3 is the
//! spec's reconstruction from quoted fragments, and the overparameterised expression below is
//! our own derivation for the same model.
//!
//! # The model
//!
//! - Features: an infinite sequence of independent Gaussian features φ_i ~ N(0, λ_i), i = 1, 2, …
//!   with the spectrum (§1.3) λ_i = c·(i^(−α) − (i+1)^(−α)), α = Ω^(−m). It telescopes:
//!   Σ_i λ_i = c (the target variance), and Tr(Λ₂) = Σ_{i>p} λ_i = c·(p+1)^(−α),
//!   Tr(Λ₁) = Σ_{i≤p} λ_i = c·(1 − (p+1)^(−α)).
//! - Task: y = Σ_i φ_i·θ_i with θ_i iid N(0, 1) drawn once per task; with d outputs, each sample
//!   carries d independent feature vectors (one per output, all with spectrum λ) and the same θ,
//!   so n samples are N = d·n scalar equations, and a sample's loss ‖y − ŷ‖² sums d of them.
//! - Model: the first p features (Λ₁), fitted on the N equations by least squares; Λ₂ (the rest)
//!   act as noise of variance Σ_{i>p} λ_i θ_i², mean Tr(Λ₂). Underparameterised (p < N) the least
//!   squares fit is unique. Overparameterised (p > N) it is the minimum-norm interpolator in the
//!   **whitened** features z_i = φ_i/√λ_i (i ≤ p), i.e. the interpolator of least Σ_i λ_i θ̂_i²
//!   (the minimum Λ₁-weighted norm); this choice is what makes the formula below exact.
//! - Losses: E\[train\] = E (1/n) Σ_samples ‖y − ŷ‖², E\[test\] = E ‖y − ŷ‖² on a fresh sample,
//!   expectations over the features, θ and the fresh sample.
//!
//! # The closed forms
//!
//! With F(N, p) = E‖R†‖²_F for R ∈ ℝ^{N×p} iid N(0, 1) (the Wishart identity, [`wishart_f`]):
//! F = p/(N−p−1) for N > p+1, N/(p−N−1) for p > N+1, +∞ otherwise:
//!
//! - p < N (§1.3, the spec's reconstruction; holds for any Λ₁ and either learner):
//!   E\[test\] = d·Tr(Λ₂)·(1 + F(N, p)), E\[train\] = d·Tr(Λ₂)·(1 − p/N).
//! - p > N (**our derivation**): E\[train\] = 0 and
//!   E\[test\] = d·[Tr(Λ₁)·(1 − N/p) + Tr(Λ₂)·(1 + F(N, p))].
//!
//! Derivation of the second (per output; multiply by d). Write X₁ = Z·Λ₁^{1/2} with Z ∈ ℝ^{N×p}
//! iid N(0, 1), β = Λ₁^{1/2}θ₁ (so E ββᵀ = Λ₁) and ε = X₂θ₂ (independent of Z and β, mean 0,
//! covariance s²·I given θ₂, E s² = Tr(Λ₂)). The whitened minimum-norm fit is β̂ = Z†(Zβ + ε) =
//! Pβ + Z†ε, where P = Z†Z is the projection onto Z's row space. A fresh sample's error is
//! zᵀ(β − β̂) + x₂ᵀθ₂, so E\[test\] = E‖(I − P)β‖² + E\[s²\]·E‖Z†‖²_F + Tr(Λ₂) (cross terms vanish
//! because ε has mean 0). Z's law is rotation invariant, so P is a uniformly random rank-N
//! projection independent of β with E P = (N/p)·I: E‖(I − P)β‖² = Tr((I − E P)Λ₁) =
//! Tr(Λ₁)(1 − N/p) (the bias), and E‖Z†‖²_F = F(N, p) (the variance). Z has full row rank, so the
//! fit interpolates: train = 0. It is the Hastie et al. (2022) bias/variance split, made exact in
//! finite N by the whitening. The plain (unwhitened) minimum-norm interpolator has the same
//! underparameterised losses but a smaller bias on a decaying Λ₁ (it favours the large-λ
//! directions); for it only asymptotic (deterministic-equivalent) forms exist, not used here.
//!
//! # Fitting the sine task
//!
//! The paper's Ω and c are unknown. We take c = Var(y) = 1 (the sine targets are standardised),
//! d = 1, and p = the monolithic MLP's parameter count ([`monolithic_params`]). Ω is either given,
//! or fitted to a sweep's monolithic mean test MSE by least squares in log loss over a grid of Ω
//! refined by golden-section search ([`fit_omega`]), or, without a sweep, [`DEFAULT_OMEGA`].

mod fit;
mod report;

pub use fit::*;
pub use report::*;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{arg_err, Result};
use crate::report::plot::{plot_line_panels, LinePanel, LineSeries, PlotError};
use crate::report::RunsTable;
use crate::run::{create_dir, write_atomic, write_json};

/// Ω when neither given nor fitted (a stated default: α = 2^(−m), so α = 1/4 at m = 2 and
/// 1/512 at m = 9).
pub const DEFAULT_OMEGA: f64 = 2.0;

/// The total target variance c = Σλ_i: the sine targets are standardised to Var(y) = 1.
pub const DEFAULT_C: f64 = 1.0;

/// The monolithic MLP's hidden widths in `configs/sine/default.toml`.
pub const DEFAULT_HIDDEN: [usize; 2] = [256, 256];

/// The training-set size of `configs/sine/default.toml` (the default n of the p and m curves).
pub const DEFAULT_N: usize = 1000;

/// The input dimensions of the m curve (the paper sweeps 2…9).
pub const M_RANGE: std::ops::RangeInclusive<usize> = 2..=9;

/// The Ω grid the fit searches: geometric from 1.01 to 100.
const FIT_GRID: (f64, f64, usize) = (1.01, 100.0, 600);

/// The spectrum's constants: λ_i = c·(i^(−α) − (i+1)^(−α)), α = Ω^(−m), and d outputs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spectrum {
    /// Ω: α = Ω^(−m), so the spectrum flattens (more features matter) as m grows.
    pub omega: f64,
    /// c = Σ_i λ_i, the total target variance.
    pub c: f64,
    /// d, the output dimension (each sample is d scalar equations).
    pub d: usize,
}

/// α = Ω^(−m), the spectrum's decay exponent at input dimension m.
pub fn alpha(omega: f64, m: usize) -> f64 {
    omega.powf(-(m as f64))
}

/// λ_i = c·(i^(−α) − (i+1)^(−α)), i ≥ 1 (1-based).
pub fn eigenvalue(c: f64, alpha: f64, i: usize) -> f64 {
    let i = i as f64;
    c * (i.powf(-alpha) - (i + 1.0).powf(-alpha))
}

/// Tr(Λ₂) = Σ_{i>p} λ_i = c·(p+1)^(−α) (the sum telescopes): the variance the first p features
/// cannot represent.
pub fn tail_trace(c: f64, alpha: f64, p: usize) -> f64 {
    c * (p as f64 + 1.0).powf(-alpha)
}

/// Tr(Λ₁) = Σ_{i≤p} λ_i = c·(1 − (p+1)^(−α)).
pub fn head_trace(c: f64, alpha: f64, p: usize) -> f64 {
    c - tail_trace(c, alpha, p)
}

/// The Wishart identity F(n, p) = E‖R†‖²_F for R ∈ ℝ^{n×p} with iid N(0, 1) entries:
/// p/(n − p − 1) if n > p + 1 (E Tr((RᵀR)⁻¹), an inverse Wishart mean), n/(p − n − 1) if
/// p > n + 1 (E Tr((RRᵀ)⁻¹)), +∞ otherwise (the interpolation threshold). F(n, 0) = 0.
pub fn wishart_f(n: usize, p: usize) -> f64 {
    let (n, p) = (n as f64, p as f64);
    if n > p + 1.0 {
        p / (n - p - 1.0)
    } else if p > n + 1.0 {
        n / (p - n - 1.0)
    } else {
        f64::INFINITY
    }
}

/// An expected train and test loss (per sample, summed over the d outputs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Loss {
    /// E\[train\] = E (1/n) Σ_samples ‖y − ŷ‖².
    pub train: f64,
    /// E\[test\] = E ‖y − ŷ‖² on a fresh sample; +∞ at the interpolation threshold.
    pub test: f64,
}

/// The expected losses for any spectrum, given its traces: `tr1` = Tr(Λ₁) (the p modelled
/// features), `tr2` = Tr(Λ₂) (the rest), d outputs, n samples (N = d·n equations), p features:
///
/// - p < N: test = d·Tr(Λ₂)·(1 + F(N, p)), train = d·Tr(Λ₂)·(1 − p/N) (spec §1.3, \[inferred\]);
/// - p ≥ N: test = d·[Tr(Λ₁)·(1 − N/p) + Tr(Λ₂)·(1 + F(N, p))], train = 0 (our derivation for
///   the whitened minimum-norm interpolator, module docs; +∞ at p ∈ {N, N+1}).
pub fn expected_loss_traces(tr1: f64, tr2: f64, d: usize, n: usize, p: usize) -> Loss {
    let big_n = d * n;
    let f = wishart_f(big_n, p);
    let d = d as f64;
    let (nf, pf) = (big_n as f64, p as f64);
    if p < big_n {
        Loss {
            train: d * tr2 * (1.0 - pf / nf),
            test: d * tr2 * (1.0 + f),
        }
    } else {
        Loss {
            train: 0.0,
            test: d * (tr1 * (1.0 - nf / pf) + tr2 * (1.0 + f)),
        }
    }
}

/// The expected losses of the spectrum `s` at input dimension m, n samples and p features
/// ([`expected_loss_traces`] with Tr(Λ₁), Tr(Λ₂) of α = Ω^(−m)).
pub fn expected_loss(s: &Spectrum, m: usize, n: usize, p: usize) -> Loss {
    let a = alpha(s.omega, m);
    expected_loss_traces(head_trace(s.c, a, p), tail_trace(s.c, a, p), s.d, n, p)
}

/// The parameter count of a ReLU MLP with biases on every layer (`widths` = input, hidden…,
/// output): Σ_l (w_l·w_{l+1} + w_{l+1}).
pub fn mlp_param_count(widths: &[usize]) -> usize {
    widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
}

/// The sine monolithic MLP's parameter count at input dimension m: widths [m, hidden…, 1]
/// (the default `hidden` = [256, 256] gives 256·m + 66,305).
pub fn monolithic_params(m: usize, hidden: &[usize]) -> usize {
    let widths: Vec<usize> = std::iter::once(m)
        .chain(hidden.iter().copied())
        .chain(std::iter::once(1))
        .collect();
    mlp_param_count(&widths)
}

/// Which variable a curve varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum CurveKind {
    /// Loss vs n, m and p fixed.
    VsN,
    /// Loss vs p, m and n fixed.
    VsP,
    /// Loss vs m, n fixed, p per m.
    VsM,
}

impl CurveKind {
    /// The `curve` column's value: `vs_n`, `vs_p` or `vs_m`.
    pub fn name(self) -> &'static str {
        match self {
            CurveKind::VsN => "vs_n",
            CurveKind::VsP => "vs_p",
            CurveKind::VsM => "vs_m",
        }
    }
}

/// One point of a curve: the varied value x (n, p or m) and the expected losses there (+∞ test
/// where F diverges).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CurvePoint {
    /// The curve's kind.
    pub curve: CurveKind,
    /// The varied value (n, p or m).
    pub x: f64,
    /// Input dimension.
    pub m: usize,
    /// Training samples.
    pub n: usize,
    /// Model features (parameters).
    pub p: usize,
    /// Expected train loss.
    pub train: f64,
    /// Expected test loss.
    pub test: f64,
}

fn point(s: &Spectrum, curve: CurveKind, x: f64, m: usize, n: usize, p: usize) -> CurvePoint {
    let l = expected_loss(s, m, n, p);
    CurvePoint {
        curve,
        x,
        m,
        n,
        p,
        train: l.train,
        test: l.test,
    }
}

/// Loss vs n at fixed m and p, one point per n of `ns`.
pub fn curve_vs_n(s: &Spectrum, m: usize, p: usize, ns: &[usize]) -> Vec<CurvePoint> {
    ns.iter()
        .map(|&n| point(s, CurveKind::VsN, n as f64, m, n, p))
        .collect()
}

/// Loss vs p at fixed m and n, one point per p of `ps`.
pub fn curve_vs_p(s: &Spectrum, m: usize, n: usize, ps: &[usize]) -> Vec<CurvePoint> {
    ps.iter()
        .map(|&p| point(s, CurveKind::VsP, p as f64, m, n, p))
        .collect()
}

/// Loss vs m at fixed n, p = `p_of_m(m)` (a network's parameter count depends on m).
pub fn curve_vs_m(
    s: &Spectrum,
    n: usize,
    ms: &[usize],
    p_of_m: impl Fn(usize) -> usize,
) -> Vec<CurvePoint> {
    ms.iter()
        .map(|&m| point(s, CurveKind::VsM, m as f64, m, n, p_of_m(m)))
        .collect()
}

/// Integers from `lo` to `hi` (inclusive, both ≥ 1), `per_decade` per factor 10 on a log scale,
/// plus, around each of `spikes` inside the range, t·(1 ± 2^(−k)) for k = 1…10 and t ± 1…3, so
/// the interpolation spike at t is resolved. Sorted, without duplicates.
pub fn log_grid(lo: usize, hi: usize, per_decade: usize, spikes: &[usize]) -> Vec<usize> {
    let (lo, hi) = (lo.max(1), hi.max(lo.max(1)));
    let mut out = BTreeSet::new();
    let (l0, l1) = ((lo as f64).log10(), (hi as f64).log10());
    let steps = ((l1 - l0) * per_decade as f64).ceil().max(1.0) as usize;
    for k in 0..=steps {
        let v = 10f64.powf(l0 + (l1 - l0) * k as f64 / steps as f64).round() as usize;
        out.insert(v.clamp(lo, hi));
    }
    for &t in spikes {
        let tf = t as f64;
        let mut near: Vec<usize> = (1..=10)
            .flat_map(|k| {
                let e = 0.5f64.powi(k);
                [tf * (1.0 - e), tf * (1.0 + e)]
            })
            .map(|v| v.round() as usize)
            .collect();
        near.extend((1..=3).flat_map(|k| [t.saturating_sub(k), t + k]));
        near.push(t);
        out.extend(near.into_iter().filter(|v| (lo..=hi).contains(v)));
    }
    out.into_iter().collect()
}
