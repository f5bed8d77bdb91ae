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

/// The mean test MSE of a sweep's finished monolithic runs at one (m, n, p).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EmpiricalPoint {
    /// Input dimension.
    pub m: usize,
    /// Training samples.
    pub n: usize,
    /// The network's parameter count.
    pub p: usize,
    /// Mean test MSE over the finished runs.
    pub test_mse: f64,
    /// Finished runs averaged.
    pub runs: usize,
}

/// Parses a `model.hidden` cell as `runs.csv` writes it (`[64, 64]`).
fn parse_widths(cell: &str) -> Option<Vec<usize>> {
    let inner = cell.trim().strip_prefix('[')?.strip_suffix(']')?;
    inner
        .split(',')
        .map(|w| w.trim())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().ok())
        .collect()
}

/// The monolithic runs of a sine sweep's `runs.csv`, averaged per (m, n, p): rows with
/// `method == monolithic`, leaving out diverged runs and non-finite test MSE. A run's p is its
/// MLP's parameter count from the `model.hidden` grid column where the sweep varies it, else
/// `default_p(m)`.
pub fn empirical(
    table: &RunsTable,
    default_p: impl Fn(usize) -> usize,
) -> Result<Vec<EmpiricalPoint>> {
    let col = |name: &str| table.column(name).map_err(|e| arg_err("runs.csv", e));
    let (method, m_col, n_col, test) = (col("method")?, col("m")?, col("n")?, col("test_mse")?);
    let diverged = table.column("diverged").ok();
    let hidden = table.column("model.hidden").ok();
    let num = |r: usize, c: usize| table.number(r, c).map_err(|e| arg_err("runs.csv", e));
    let mut groups: BTreeMap<(usize, usize, usize), Vec<f64>> = BTreeMap::new();
    for (r, row) in table.rows.iter().enumerate() {
        if row[method] != "monolithic" || diverged.is_some_and(|c| row[c] == "true") {
            continue;
        }
        let mse = num(r, test)?;
        if !mse.is_finite() {
            continue;
        }
        let (m, n) = (num(r, m_col)? as usize, num(r, n_col)? as usize);
        let p = match hidden {
            Some(c) => monolithic_params(
                m,
                &parse_widths(&row[c]).ok_or_else(|| {
                    arg_err(
                        "runs.csv",
                        format!(
                            "run {}: `model.hidden` = `{}` is not a width list",
                            r + 1,
                            row[c]
                        ),
                    )
                })?,
            ),
            None => default_p(m),
        };
        groups.entry((m, n, p)).or_default().push(mse);
    }
    Ok(groups
        .into_iter()
        .map(|((m, n, p), v)| EmpiricalPoint {
            m,
            n,
            p,
            test_mse: v.iter().sum::<f64>() / v.len() as f64,
            runs: v.len(),
        })
        .collect())
}

/// A one-parameter fit of Ω.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Fit {
    /// The fitted Ω.
    pub omega: f64,
    /// Points used (those with a finite, positive theory and empirical loss).
    pub points: usize,
    /// √(mean (ln theory − ln empirical)²) at the fitted Ω.
    pub rms_log_error: f64,
}

/// Σ (ln E\[test\](Ω) − ln empirical)² over the usable points, and their count.
fn log_sse(omega: f64, c: f64, d: usize, points: &[EmpiricalPoint]) -> (f64, usize) {
    let s = Spectrum { omega, c, d };
    let mut acc = (0.0, 0);
    for e in points {
        let t = expected_loss(&s, e.m, e.n, e.p).test;
        if t.is_finite() && t > 0.0 && e.test_mse.is_finite() && e.test_mse > 0.0 {
            acc = (acc.0 + (t.ln() - e.test_mse.ln()).powi(2), acc.1 + 1);
        }
    }
    acc
}

/// The root-mean-square log error of Ω on `points` (`None` when no point is usable).
pub fn rms_log_error(omega: f64, c: f64, d: usize, points: &[EmpiricalPoint]) -> Option<f64> {
    let (sse, k) = log_sse(omega, c, d, points);
    (k > 0).then(|| (sse / k as f64).sqrt())
}

/// Ω minimising Σ (ln E\[test\] − ln empirical test MSE)² over `points` (each at its own m, n, p):
/// the best of a geometric grid on [1.01, 100], refined by golden-section search between its
/// grid neighbours. `None` when no point has a finite theory (e.g. every one at n ≈ p).
pub fn fit_omega(c: f64, d: usize, points: &[EmpiricalPoint]) -> Option<Fit> {
    let (lo, hi, k) = FIT_GRID;
    let grid: Vec<f64> = (0..k)
        .map(|i| lo * (hi / lo).powf(i as f64 / (k - 1) as f64))
        .collect();
    let sse = |w: f64| log_sse(w, c, d, points);
    let used = sse(grid[0]).1;
    if used == 0 {
        return None;
    }
    let best = (0..k)
        .min_by(|&a, &b| sse(grid[a]).0.total_cmp(&sse(grid[b]).0))
        .unwrap_or(0);
    let (mut a, mut b) = (grid[best.saturating_sub(1)], grid[(best + 1).min(k - 1)]);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..60 {
        let (x1, x2) = (b - g * (b - a), a + g * (b - a));
        if sse(x1).0 <= sse(x2).0 {
            b = x2;
        } else {
            a = x1;
        }
    }
    let mid = 0.5 * (a + b);
    let omega = if sse(mid).0 <= sse(grid[best]).0 {
        mid
    } else {
        grid[best]
    };
    Some(Fit {
        omega,
        points: used,
        rms_log_error: rms_log_error(omega, c, d, points).unwrap_or(f64::NAN),
    })
}

/// Where Ω came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OmegaSource {
    /// Given (`--omega`).
    Given,
    /// Fitted to the sweep ([`fit_omega`]).
    Fitted,
    /// [`DEFAULT_OMEGA`] (no sweep, or nothing in it to fit).
    Default,
}

/// What the curves are evaluated for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TheoryOptions {
    /// p of every theory curve but the p curve (default: [`monolithic_params`] of the default
    /// widths, per m), and of the sweep's runs whose widths it does not vary.
    pub p: Option<usize>,
    /// n of the p and m curves (default [`DEFAULT_N`]; the m curve also at 10⁵, or with a sweep
    /// at up to three of its n).
    pub n: Option<usize>,
    /// Ω (default: fitted to the sweep, else [`DEFAULT_OMEGA`]).
    pub omega: Option<f64>,
}

/// The evaluated theory, its Ω, and the empirical points set next to it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Theory {
    /// The spectrum's constants (Ω as used).
    pub spectrum: Spectrum,
    /// Where Ω came from.
    pub omega_source: OmegaSource,
    /// The fit, when Ω was fitted.
    pub fit: Option<Fit>,
    /// √(mean squared log error) of the Ω used on the empirical points, if any.
    pub rms_log_error: Option<f64>,
    /// Every theory point, curve by curve.
    pub curves: Vec<CurvePoint>,
    /// The sweep's monolithic mean test MSE per (m, n, p) (empty without a sweep).
    pub empirical: Vec<EmpiricalPoint>,
    /// The m values of the n and p curves.
    #[serde(skip)]
    ms: Vec<usize>,
    /// The (m, n) of the p curves.
    #[serde(skip)]
    vs_p: Vec<(usize, usize)>,
    /// The n of the m curves.
    #[serde(skip)]
    vs_m: Vec<usize>,
    /// p of the theory curves, per m.
    #[serde(skip)]
    p_given: Option<usize>,
}

impl Theory {
    /// p of the theory's n and m curves at input dimension m.
    pub fn p_of(&self, m: usize) -> usize {
        self.p_given
            .unwrap_or_else(|| monolithic_params(m, &DEFAULT_HIDDEN))
    }
}

fn sorted_unique(v: impl IntoIterator<Item = usize>) -> Vec<usize> {
    v.into_iter().collect::<BTreeSet<_>>().into_iter().collect()
}

/// Evaluates the curves (and, given a sine sweep's `runs.csv`, its monolithic mean test MSE and
/// the Ω fit):
///
/// - loss vs n for each m (the sweep's monolithic m, else 2, 4, 6, 8), p = `opts.p` or the
///   default MLP's parameter count, n from 10² to max(10⁵, 2p);
/// - loss vs p for each m at n = `opts.n` or 1000 (or, where the sweep varies the width, at each
///   of its (m, n)), p from 10² to max(10⁵, 10n);
/// - loss vs m (2…9 and the sweep's m) at n = `opts.n` (else up to three of the sweep's n, else
///   1000 and 10⁵: both sides of the default MLP's threshold n ≈ p ≈ 6.7·10⁴).
pub fn evaluate(opts: &TheoryOptions, sweep: Option<&RunsTable>) -> Result<Theory> {
    if opts.p == Some(0) || opts.n == Some(0) {
        return Err(arg_err("sine-theory", "--p and --n must be at least 1"));
    }
    if let Some(w) = opts.omega {
        if !(w.is_finite() && w > 1.0) {
            return Err(arg_err(
                "sine-theory",
                format!("--omega {w}: Ω must be finite and > 1 (α = Ω^(−m) falls with m)"),
            ));
        }
    }
    let p_given = opts.p;
    let p_of = |m: usize| p_given.unwrap_or_else(|| monolithic_params(m, &DEFAULT_HIDDEN));
    let empirical = match sweep {
        Some(t) => empirical(t, p_of)?,
        None => Vec::new(),
    };
    if sweep.is_some() && empirical.is_empty() {
        return Err(arg_err(
            "sine-theory",
            "the sweep's runs.csv has no finished monolithic run",
        ));
    }
    let (c, d) = (DEFAULT_C, 1);
    let (omega, omega_source, fit) = match (opts.omega, fit_omega(c, d, &empirical)) {
        (Some(w), _) => (w, OmegaSource::Given, None),
        (None, Some(f)) => (f.omega, OmegaSource::Fitted, Some(f)),
        (None, None) => (DEFAULT_OMEGA, OmegaSource::Default, None),
    };
    let spectrum = Spectrum { omega, c, d };
    // The empirical points at the theory's p (the n and m curves) and those of varied widths.
    let at_default: Vec<&EmpiricalPoint> = empirical.iter().filter(|e| e.p == p_of(e.m)).collect();
    let ms = if empirical.is_empty() {
        vec![2, 4, 6, 8]
    } else {
        sorted_unique(empirical.iter().map(|e| e.m))
    };
    let n_fixed = opts.n.unwrap_or(DEFAULT_N);
    let mut widths: BTreeMap<(usize, usize), BTreeSet<usize>> = BTreeMap::new();
    for e in &empirical {
        widths.entry((e.m, e.n)).or_default().insert(e.p);
    }
    let mut vs_p: Vec<(usize, usize)> = widths
        .iter()
        .filter(|(_, ps)| ps.len() > 1)
        .map(|(&k, _)| k)
        .collect();
    if vs_p.is_empty() {
        vs_p = ms.iter().map(|&m| (m, n_fixed)).collect();
    }
    let vs_m = match (opts.n, at_default.is_empty()) {
        (Some(n), _) => vec![n],
        (None, true) => vec![DEFAULT_N, 100_000],
        (None, false) => {
            let ns = sorted_unique(at_default.iter().map(|e| e.n));
            sorted_unique([ns[0], ns[ns.len() / 2], ns[ns.len() - 1]])
        }
    };
    let max_emp_n = empirical.iter().map(|e| e.n).max().unwrap_or(1);
    let min_emp_n = empirical.iter().map(|e| e.n).min().unwrap_or(100);
    let mut curves = Vec::new();
    for &m in &ms {
        let p = p_of(m);
        let hi = 100_000.max(2 * p).max(max_emp_n);
        let mut ns = log_grid(min_emp_n.min(100), hi, 24, &[p.div_ceil(d)]);
        ns.extend(at_default.iter().filter(|e| e.m == m).map(|e| e.n));
        curves.extend(curve_vs_n(&spectrum, m, p, &sorted_unique(ns)));
    }
    for &(m, n) in &vs_p {
        let max_emp_p = empirical.iter().map(|e| e.p).max().unwrap_or(1);
        let min_emp_p = empirical.iter().map(|e| e.p).min().unwrap_or(100);
        let hi = 100_000.max(10 * d * n).max(max_emp_p);
        let mut ps = log_grid(min_emp_p.min(100), hi, 24, &[d * n]);
        ps.extend(
            empirical
                .iter()
                .filter(|e| (e.m, e.n) == (m, n))
                .map(|e| e.p),
        );
        curves.extend(curve_vs_p(&spectrum, m, n, &sorted_unique(ps)));
    }
    let m_values = sorted_unique(M_RANGE.chain(ms.iter().copied()));
    for &n in &vs_m {
        curves.extend(curve_vs_m(&spectrum, n, &m_values, p_of));
    }
    Ok(Theory {
        spectrum,
        omega_source,
        fit,
        rms_log_error: rms_log_error(omega, c, d, &empirical),
        curves,
        empirical,
        ms,
        vs_p,
        vs_m,
        p_given,
    })
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "inf".into()
    }
}

/// `theory_curves.csv`: `curve,x,m,n,p,train,test`, one row per theory point (`curve` is
/// `vs_n`, `vs_p` or `vs_m`; a diverging loss is `inf`).
pub fn curves_csv(theory: &Theory) -> String {
    let mut out = String::from("curve,x,m,n,p,train,test\n");
    for c in &theory.curves {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{}",
            c.curve.name(),
            c.x,
            c.m,
            c.n,
            c.p,
            num(c.train),
            num(c.test)
        );
    }
    out
}

/// Writes `theory_curves.csv` and `theory_fit.json` (Ω, its source, the fit and the empirical
/// points) into `dir` (created if needed); returns their paths.
pub fn write(dir: &Path, theory: &Theory) -> Result<Vec<PathBuf>> {
    create_dir(dir)?;
    let csv = dir.join("theory_curves.csv");
    write_atomic(&csv, curves_csv(theory).as_bytes())?;
    let json = dir.join("theory_fit.json");
    #[derive(Serialize)]
    struct FitFile<'a> {
        model: &'static str,
        spectrum: &'a Spectrum,
        omega_source: OmegaSource,
        fit: Option<Fit>,
        rms_log_error: Option<f64>,
        empirical: &'a [EmpiricalPoint],
    }
    write_json(
        &json,
        &FitFile {
            model: "[inferred] spec §1.3 reconstruction of Boopathy et al. Theorem 1; \
                    overparameterised form: our derivation (whitened min-norm interpolator)",
            spectrum: &theory.spectrum,
            omega_source: theory.omega_source,
            fit: theory.fit,
            rms_log_error: theory.rms_log_error,
            empirical: &theory.empirical,
        },
    )?;
    Ok(vec![csv, json])
}

fn series(name: String, points: impl IntoIterator<Item = (f64, f64)>) -> LineSeries {
    LineSeries {
        name,
        points: points.into_iter().filter(|q| q.1.is_finite()).collect(),
    }
}

/// A theory series of a plot: its name and which curve points it takes.
type Key<'a> = (String, Box<dyn Fn(&CurvePoint) -> bool + 'a>);

/// One test panel (log-log, or log y over m) and one train panel (linear y) of `kind`, a theory
/// series per `keys` entry and the empirical series given.
fn panels(
    theory: &Theory,
    kind: CurveKind,
    caption: &str,
    x_desc: &str,
    x_log: bool,
    keys: &[Key<'_>],
    empirical: Vec<LineSeries>,
) -> [LinePanel; 2] {
    let pts = |f: &dyn Fn(&CurvePoint) -> bool, y: fn(&CurvePoint) -> f64| {
        theory
            .curves
            .iter()
            .filter(|c| c.curve == kind && f(c))
            .map(|c| (c.x, y(c)))
            .collect::<Vec<_>>()
    };
    let mut test: Vec<LineSeries> = keys
        .iter()
        .map(|(name, f)| series(format!("theory {name}"), pts(f.as_ref(), |c| c.test)))
        .collect();
    test.extend(empirical);
    let train = keys
        .iter()
        .map(|(name, f)| series(format!("theory {name}"), pts(f.as_ref(), |c| c.train)))
        .collect();
    let s = &theory.spectrum;
    let omega = match theory.omega_source {
        OmegaSource::Given => format!("Ω = {:.3} (given)", s.omega),
        OmegaSource::Fitted => format!("Ω = {:.3} (fitted)", s.omega),
        OmegaSource::Default => format!("Ω = {:.3} (default)", s.omega),
    };
    [
        LinePanel {
            caption: format!("test, {caption}, {omega}"),
            x_desc: x_desc.into(),
            y_desc: "test MSE / Var(y)".into(),
            x_log,
            y_log: true,
            series: test,
            hline: None,
            legend_left: false,
        },
        LinePanel {
            caption: format!("train, {caption}"),
            x_desc: x_desc.into(),
            y_desc: "train MSE / Var(y)".into(),
            x_log,
            y_log: false,
            series: train,
            hline: None,
            legend_left: false,
        },
    ]
}

/// `theory_vs_n`, `theory_vs_p`, `theory_vs_m` (`.svg` and `.png`) in `dir`: per curve a test
/// panel (log y; diverging points left out) with the sweep's empirical mean test MSE overlaid
/// ("empirical …" next to "theory …"), and a train panel (the sweep records no train loss).
pub fn plot(dir: &Path, theory: &Theory) -> std::result::Result<Vec<PathBuf>, PlotError> {
    let emp = &theory.empirical;
    // Loss vs n: a series per m at the theory's p.
    let keys: Vec<Key> = theory
        .ms
        .iter()
        .map(|&m| {
            (
                format!("m={m}"),
                Box::new(move |c: &CurvePoint| c.m == m) as _,
            )
        })
        .collect();
    let emp_n = theory
        .ms
        .iter()
        .map(|&m| {
            let p = theory.p_of(m);
            series(
                format!("empirical m={m}"),
                emp.iter()
                    .filter(|e| e.m == m && e.p == p)
                    .map(|e| (e.n as f64, e.test_mse)),
            )
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let p_desc = match theory.p_given {
        Some(p) => format!("p = {p}"),
        None => "p = MLP params".into(),
    };
    let mut files = plot_line_panels(
        dir,
        "theory_vs_n",
        &panels(
            theory,
            CurveKind::VsN,
            &p_desc,
            "training samples n",
            true,
            &keys,
            emp_n,
        ),
        2,
    )?;
    // Loss vs p: a series per (m, n).
    let keys: Vec<Key> = theory
        .vs_p
        .iter()
        .map(|&(m, n)| {
            (
                format!("m={m} n={n}"),
                Box::new(move |c: &CurvePoint| c.m == m && c.n == n) as _,
            )
        })
        .collect();
    let emp_p = theory
        .vs_p
        .iter()
        .map(|&(m, n)| {
            series(
                format!("empirical m={m} n={n}"),
                emp.iter()
                    .filter(|e| e.m == m && e.n == n)
                    .map(|e| (e.p as f64, e.test_mse)),
            )
        })
        .filter(|s| s.points.len() > 1)
        .collect();
    files.extend(plot_line_panels(
        dir,
        "theory_vs_p",
        &panels(
            theory,
            CurveKind::VsP,
            "n fixed",
            "model parameters p",
            true,
            &keys,
            emp_p,
        ),
        2,
    )?);
    // Loss vs m: a series per n.
    let keys: Vec<Key> = theory
        .vs_m
        .iter()
        .map(|&n| {
            (
                format!("n={n}"),
                Box::new(move |c: &CurvePoint| c.n == n) as _,
            )
        })
        .collect();
    let emp_m = theory
        .vs_m
        .iter()
        .map(|&n| {
            series(
                format!("empirical n={n}"),
                emp.iter()
                    .filter(|e| e.n == n && e.p == theory.p_of(e.m))
                    .map(|e| (e.m as f64, e.test_mse)),
            )
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    files.extend(plot_line_panels(
        dir,
        "theory_vs_m",
        &panels(
            theory,
            CurveKind::VsM,
            &p_desc,
            "input dimension m",
            false,
            &keys,
            emp_m,
        ),
        2,
    )?);
    Ok(files)
}
