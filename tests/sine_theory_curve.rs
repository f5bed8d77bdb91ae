//! The sine theory curves (`experiments::sine::theory_curve`): the closed forms against a Monte
//! Carlo simulation of exactly the model they describe, the Wishart identity alone, the fit of Ω,
//! the sweep reader and the `sine-theory` command.
//!
//! The simulation: features φ_i = √λ_i·g_i (g_i iid N(0, 1)) with the spectrum truncated at
//! `TOTAL` features, θ iid N(0, 1) per draw, y = Σ φ_i θ_i (d outputs: d independent feature
//! rows per sample, one θ), the model's first p features fitted by least squares / minimum-norm
//! interpolation through a dense f64 pseudo-inverse written here (normal equations + Cholesky).
//! A draw's test loss is its exact conditional expectation over a fresh sample,
//! d·(Σ_{i≤p} λ_i (θ_i − θ̂_i)² + Σ_{i>p} λ_i θ_i²); the closed forms are checked to lie within
//! 4 standard errors of the mean over the draws.

use hypermod::experiments::sine::theory_curve::{
    self as tc, eigenvalue, expected_loss, expected_loss_traces, head_trace, monolithic_params,
    tail_trace, wishart_f, CurveKind, EmpiricalPoint, OmegaSource, Spectrum, TheoryOptions,
};
use hypermod::report::RunsTable;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

/// Features simulated (the spectrum's truncation; the closed forms get the truncated traces).
const TOTAL: usize = 80;

struct Normal(ChaCha8Rng);

impl Normal {
    fn new(seed: u64) -> Normal {
        Normal(ChaCha8Rng::seed_from_u64(seed))
    }
    /// One N(0, 1) draw (Box–Muller).
    fn sample(&mut self) -> f64 {
        let u1: f64 = 1.0 - self.0.random::<f64>(); // (0, 1]
        let u2: f64 = self.0.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// A dense row-major f64 matrix.
#[derive(Clone, Debug)]
struct Mat {
    r: usize,
    c: usize,
    a: Vec<f64>,
}

impl Mat {
    fn zeros(r: usize, c: usize) -> Mat {
        Mat {
            r,
            c,
            a: vec![0.0; r * c],
        }
    }
    fn at(&self, i: usize, j: usize) -> f64 {
        self.a[i * self.c + j]
    }
    fn set(&mut self, i: usize, j: usize, v: f64) {
        self.a[i * self.c + j] = v;
    }
    fn t(&self) -> Mat {
        let mut o = Mat::zeros(self.c, self.r);
        for i in 0..self.r {
            for j in 0..self.c {
                o.set(j, i, self.at(i, j));
            }
        }
        o
    }
    fn mul(&self, b: &Mat) -> Mat {
        assert_eq!(self.c, b.r);
        let mut o = Mat::zeros(self.r, b.c);
        for i in 0..self.r {
            for k in 0..self.c {
                let x = self.at(i, k);
                for j in 0..b.c {
                    o.a[i * b.c + j] += x * b.at(k, j);
                }
            }
        }
        o
    }
    fn frob2(&self) -> f64 {
        self.a.iter().map(|v| v * v).sum()
    }
    fn max_abs_diff(&self, b: &Mat) -> f64 {
        self.a
            .iter()
            .zip(&b.a)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }
}

/// The Cholesky factor L (lower, row-major k×k) of the SPD matrix `g`.
fn cholesky(g: &Mat) -> Mat {
    let k = g.r;
    let mut l = Mat::zeros(k, k);
    for j in 0..k {
        let mut d = g.at(j, j);
        for t in 0..j {
            d -= l.at(j, t) * l.at(j, t);
        }
        assert!(d > 0.0, "Gram matrix not positive definite");
        let d = d.sqrt();
        l.set(j, j, d);
        for i in j + 1..k {
            let mut v = g.at(i, j);
            for t in 0..j {
                v -= l.at(i, t) * l.at(j, t);
            }
            l.set(i, j, v / d);
        }
    }
    l
}

/// G⁻¹·B for G = L·Lᵀ (forward then backward substitution, column by column).
fn chol_solve(l: &Mat, b: &Mat) -> Mat {
    let k = l.r;
    let mut x = b.clone();
    for col in 0..b.c {
        for i in 0..k {
            let mut v = x.at(i, col);
            for t in 0..i {
                v -= l.at(i, t) * x.at(t, col);
            }
            x.set(i, col, v / l.at(i, i));
        }
        for i in (0..k).rev() {
            let mut v = x.at(i, col);
            for t in i + 1..k {
                v -= l.at(t, i) * x.at(t, col);
            }
            x.set(i, col, v / l.at(i, i));
        }
    }
    x
}

/// The Moore–Penrose pseudo-inverse of a full-rank `a`: (AᵀA)⁻¹Aᵀ when tall (least squares),
/// Aᵀ(AAᵀ)⁻¹ = ((Aᵀ)†)ᵀ when wide (minimum norm).
fn pinv(a: &Mat) -> Mat {
    if a.r < a.c {
        return pinv(&a.t()).t();
    }
    let at = a.t();
    chol_solve(&cholesky(&at.mul(a)), &at)
}

fn gaussian(rng: &mut Normal, r: usize, c: usize) -> Mat {
    Mat {
        r,
        c,
        a: (0..r * c).map(|_| rng.sample()).collect(),
    }
}

/// Mean and standard error.
fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

#[test]
fn the_pseudo_inverse_satisfies_the_moore_penrose_conditions() {
    let mut rng = Normal::new(7);
    for (r, c) in [(7, 4), (4, 7), (9, 6)] {
        let a = gaussian(&mut rng, r, c);
        let p = pinv(&a);
        assert_eq!((p.r, p.c), (c, r));
        let (ap, pa) = (a.mul(&p), p.mul(&a));
        assert!(ap.mul(&a).max_abs_diff(&a) < 1e-9, "A A⁺ A = A ({r}×{c})");
        assert!(pa.mul(&p).max_abs_diff(&p) < 1e-9, "A⁺ A A⁺ = A⁺ ({r}×{c})");
        assert!(ap.t().max_abs_diff(&ap) < 1e-9, "A A⁺ symmetric ({r}×{c})");
        assert!(pa.t().max_abs_diff(&pa) < 1e-9, "A⁺ A symmetric ({r}×{c})");
    }
}

#[test]
fn the_wishart_identity_matches_monte_carlo() {
    assert_eq!(wishart_f(20, 10), 10.0 / 9.0);
    assert_eq!(wishart_f(10, 20), 10.0 / 9.0);
    assert_eq!(wishart_f(50, 0), 0.0);
    for (n, p) in [(10, 10), (10, 11), (11, 10), (10, 9), (9, 10)] {
        assert!(wishart_f(n, p).is_infinite(), "F({n}, {p})");
    }
    let draws = 10_000;
    let cases = [(20, 10), (10, 20), (36, 28), (8, 15)];
    let results: Vec<(usize, usize, f64, f64)> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .enumerate()
            .map(|(k, &(n, p))| {
                s.spawn(move || {
                    let mut rng = Normal::new(100 + k as u64);
                    let v: Vec<f64> = (0..draws)
                        .map(|_| pinv(&gaussian(&mut rng, n, p)).frob2())
                        .collect();
                    let (mean, se) = mean_se(&v);
                    (n, p, mean, se)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (n, p, mean, se) in results {
        let f = wishart_f(n, p);
        println!(
            "F({n},{p}): closed form {f:.5}, Monte Carlo {mean:.5} ± {se:.5} ({:+.2} SE)",
            (mean - f) / se
        );
        assert!((mean - f).abs() < 4.0 * se, "F({n},{p})");
        // The check has power: the asymptotic min(n,p)/|n − p| (no −1) is rejected.
        let naive = n.min(p) as f64 / (n as f64 - p as f64).abs();
        if (n, p) == (20, 10) || (n, p) == (10, 20) {
            assert!((mean - naive).abs() > 4.0 * se, "F({n},{p}) vs {naive}");
        }
    }
}

/// How the simulated model fits its p features when p > N.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Learner {
    /// Minimum-norm in the whitened features φ_i/√λ_i (what the closed form describes).
    Whitened,
    /// Plain minimum-norm in the raw features.
    Plain,
}

/// One draw of the model: (train loss, conditional expected test loss).
fn draw(
    rng: &mut Normal,
    lambda: &[f64],
    d: usize,
    n: usize,
    p: usize,
    learner: Learner,
) -> (f64, f64) {
    let big_n = d * n;
    let theta: Vec<f64> = (0..lambda.len()).map(|_| rng.sample()).collect();
    let mut x1 = Mat::zeros(big_n, p);
    let mut y = Mat::zeros(big_n, 1);
    for r in 0..big_n {
        let mut yr = 0.0;
        for (i, (&l, &t)) in lambda.iter().zip(&theta).enumerate() {
            let phi = l.sqrt() * rng.sample();
            yr += phi * t;
            if i < p {
                x1.set(r, i, phi);
            }
        }
        y.set(r, 0, yr);
    }
    let theta_hat: Vec<f64> = match learner {
        Learner::Plain => pinv(&x1).mul(&y).a,
        Learner::Whitened => {
            let mut z = x1.clone();
            for r in 0..big_n {
                for (i, l) in lambda[..p].iter().enumerate() {
                    z.set(r, i, x1.at(r, i) / l.sqrt());
                }
            }
            let beta = pinv(&z).mul(&y).a;
            beta.iter().zip(lambda).map(|(b, l)| b / l.sqrt()).collect()
        }
    };
    let fitted = x1.mul(&Mat {
        r: p,
        c: 1,
        a: theta_hat.clone(),
    });
    let train = (0..big_n)
        .map(|r| (y.at(r, 0) - fitted.at(r, 0)).powi(2))
        .sum::<f64>()
        / n as f64;
    let test = d as f64
        * lambda
            .iter()
            .enumerate()
            .map(|(i, &l)| {
                let err = if i < p {
                    theta[i] - theta_hat[i]
                } else {
                    theta[i]
                };
                l * err * err
            })
            .sum::<f64>();
    (train, test)
}

/// The truncated spectrum λ_1…λ_TOTAL of c = 1, α.
fn spectrum(alpha: f64) -> Vec<f64> {
    (1..=TOTAL).map(|i| eigenvalue(1.0, alpha, i)).collect()
}

struct McResult {
    d: usize,
    n: usize,
    p: usize,
    train: (f64, f64),
    test: (f64, f64),
}

fn monte_carlo(
    alpha: f64,
    cases: &[(usize, usize, usize)],
    draws: usize,
    learner: Learner,
    seed: u64,
) -> Vec<McResult> {
    let lambda = spectrum(alpha);
    std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .enumerate()
            .map(|(k, &(d, n, p))| {
                let lambda = &lambda;
                s.spawn(move || {
                    let mut rng = Normal::new(seed + k as u64);
                    let (tr, te): (Vec<f64>, Vec<f64>) = (0..draws)
                        .map(|_| draw(&mut rng, lambda, d, n, p, learner))
                        .unzip();
                    McResult {
                        d,
                        n,
                        p,
                        train: mean_se(&tr),
                        test: mean_se(&te),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn the_spectrum_telescopes() {
    for alpha in [0.05, 0.5, 1.0] {
        for p in [0, 1, 10, 79] {
            let head: f64 = (1..=p).map(|i| eigenvalue(1.3, alpha, i)).sum();
            assert!(
                (head - head_trace(1.3, alpha, p)).abs() < 1e-12,
                "α {alpha} p {p}"
            );
            let tail: f64 = (p + 1..=TOTAL).map(|i| eigenvalue(1.3, alpha, i)).sum();
            let want = tail_trace(1.3, alpha, p) - tail_trace(1.3, alpha, TOTAL);
            assert!((tail - want).abs() < 1e-12, "α {alpha} p {p}");
        }
        assert_eq!(tail_trace(1.3, alpha, 0), 1.3);
    }
    assert_eq!(tc::alpha(2.0, 3), 0.125);
    // α falls with m: the spectrum flattens, Tr(Λ₂) grows.
    assert!(tail_trace(1.0, tc::alpha(2.0, 8), 1000) > tail_trace(1.0, tc::alpha(2.0, 2), 1000));
}

#[test]
fn the_closed_forms_match_monte_carlo_on_both_sides_of_the_threshold() {
    let alpha = 0.5;
    let lambda = spectrum(alpha);
    // (d, n, p): underparameterised (p < dn), then overparameterised (p > dn), |dn − p| ≥ 10.
    let cases = [
        (1, 40, 10),
        (1, 30, 20),
        (2, 15, 10),
        (1, 12, 40),
        (1, 20, 30),
        (2, 6, 30),
    ];
    let results = monte_carlo(alpha, &cases, 10_000, Learner::Whitened, 1000);
    for r in results {
        let tr1: f64 = lambda[..r.p].iter().sum();
        let tr2: f64 = lambda[r.p..].iter().sum();
        let want = expected_loss_traces(tr1, tr2, r.d, r.n, r.p);
        let side = if r.p < r.d * r.n { "under" } else { "over" };
        println!(
            "d={} n={} p={} ({side}): test {:.5} vs MC {:.5} ± {:.5} ({:+.2} SE); \
             train {:.5} vs MC {:.5} ± {:.5}",
            r.d,
            r.n,
            r.p,
            want.test,
            r.test.0,
            r.test.1,
            (r.test.0 - want.test) / r.test.1,
            want.train,
            r.train.0,
            r.train.1
        );
        assert!(
            (r.test.0 - want.test).abs() < 4.0 * r.test.1,
            "test, d={} n={} p={}",
            r.d,
            r.n,
            r.p
        );
        if side == "over" {
            assert_eq!(want.train, 0.0);
            assert!(r.train.0 < 1e-12, "an interpolator has no train loss");
        } else {
            assert!(
                (r.train.0 - want.train).abs() < 4.0 * r.train.1,
                "train, d={} n={} p={}",
                r.d,
                r.n,
                r.p
            );
        }
    }
}

#[test]
fn the_learner_matters_only_when_overparameterised() {
    // A steep spectrum (α = 1): the plain minimum-norm interpolator favours the large-λ
    // features, so its bias is well below the whitened one's Tr(Λ₁)(1 − N/p) — the Monte Carlo
    // separates the two learners; underparameterised both give the same unique fit.
    let alpha = 1.0;
    let lambda = spectrum(alpha);
    let cases = [(1, 30, 10), (1, 10, 40)];
    let plain = monte_carlo(alpha, &cases, 4000, Learner::Plain, 2000);
    let whitened = monte_carlo(alpha, &cases, 4000, Learner::Whitened, 2000);
    for (pl, wh) in plain.iter().zip(&whitened) {
        let tr1: f64 = lambda[..pl.p].iter().sum();
        let tr2: f64 = lambda[pl.p..].iter().sum();
        let want = expected_loss_traces(tr1, tr2, 1, pl.n, pl.p);
        println!(
            "α=1 n={} p={}: closed form {:.5}, whitened MC {:.5} ± {:.5}, plain MC {:.5} ± {:.5}",
            pl.n, pl.p, want.test, wh.test.0, wh.test.1, pl.test.0, pl.test.1
        );
        assert!((wh.test.0 - want.test).abs() < 4.0 * wh.test.1);
        if pl.p < pl.n {
            // Same seeds, same data, the same unique least-squares fit.
            assert!((pl.test.0 - wh.test.0).abs() < 1e-9 * wh.test.0);
            assert!((pl.test.0 - want.test).abs() < 4.0 * pl.test.1);
        } else {
            assert!(pl.test.0 < want.test - 10.0 * pl.test.1);
        }
    }
}

#[test]
fn the_losses_meet_at_the_threshold_and_match_the_spec_underparameterised() {
    let s = Spectrum {
        omega: 2.0,
        c: 1.0,
        d: 1,
    };
    let (m, p) = (4, 500);
    let a = tc::alpha(2.0, m);
    let under = expected_loss(&s, m, 2000, p);
    let tr2 = tail_trace(1.0, a, p);
    assert!((under.test - tr2 * (1.0 + 500.0 / 1499.0)).abs() < 1e-12);
    assert!((under.train - tr2 * (1.0 - 500.0 / 2000.0)).abs() < 1e-12);
    let over = expected_loss(&s, m, 100, p);
    let want = head_trace(1.0, a, p) * (1.0 - 0.2) + tr2 * (1.0 + 100.0 / 399.0);
    assert!((over.test - want).abs() < 1e-12);
    assert_eq!(over.train, 0.0);
    for n in [p - 1, p, p + 1] {
        assert!(expected_loss(&s, m, n, p).test.is_infinite(), "n = {n}");
    }
    // d outputs: n samples are d·n equations and a sample's loss sums d of them.
    let s2 = Spectrum { d: 2, ..s };
    let l2 = expected_loss(&s2, m, 1000, p);
    assert!((l2.test - 2.0 * under.test).abs() < 1e-12);
}

#[test]
fn the_monolithic_parameter_count_is_the_networks() {
    let gpu = hypermod::gpu::Device::native(None).expect("native backend");
    for (m, hidden) in [(2, vec![256, 256]), (4, vec![256, 256]), (9, vec![16, 32])] {
        let widths: Vec<usize> = std::iter::once(m)
            .chain(hidden.iter().copied())
            .chain([1])
            .collect();
        let net = hypermod::nn::PackedMlp::relu(&gpu, 1, &widths).unwrap();
        assert_eq!(monolithic_params(m, &hidden), net.item_len(), "{widths:?}");
    }
    assert_eq!(monolithic_params(4, &tc::DEFAULT_HIDDEN), 67_329);
}

/// A sine sweep's `runs.csv` in memory: grid keys, seed, run, then the experiment's columns.
fn table(rows: &[(&str, &str, usize, usize, f64, bool)]) -> RunsTable {
    RunsTable {
        header: [
            "model.hidden",
            "seed",
            "run",
            "method",
            "m",
            "n",
            "test_mse",
            "diverged",
        ]
        .map(String::from)
        .to_vec(),
        rows: rows
            .iter()
            .enumerate()
            .map(|(i, &(hidden, method, m, n, mse, diverged))| {
                vec![
                    hidden.to_string(),
                    "1".into(),
                    format!("{i:03}"),
                    method.into(),
                    m.to_string(),
                    n.to_string(),
                    format!("{mse}"),
                    diverged.to_string(),
                ]
            })
            .collect(),
    }
}

#[test]
fn the_sweep_reader_keeps_finished_monolithic_runs_per_width() {
    let t = table(&[
        ("[16, 16]", "monolithic", 4, 1000, 0.4, false),
        ("[16, 16]", "monolithic", 4, 1000, 0.6, false),
        ("[16, 16]", "monolithic", 4, 1000, 9.0, true),
        ("[16, 16]", "modular_kernel", 4, 1000, 0.1, false),
        ("[32, 32]", "monolithic", 4, 1000, 0.3, false),
    ]);
    let e = tc::empirical(&t, |_| unreachable!("the widths are in the table")).unwrap();
    let p16 = monolithic_params(4, &[16, 16]);
    let p32 = monolithic_params(4, &[32, 32]);
    assert_eq!(e.len(), 2);
    assert_eq!((e[0].p, e[0].runs), (p16, 2));
    assert!((e[0].test_mse - 0.5).abs() < 1e-12);
    assert_eq!((e[1].p, e[1].runs), (p32, 1));
    let mut bad = t.clone();
    bad.rows[0][0] = "wide".into();
    assert!(tc::empirical(&bad, |_| 1).is_err());
}

#[test]
fn the_fit_recovers_omega_from_its_own_curves() {
    // Empirical points made from the theory at Ω = 3 (m = 2, 3, 4; p = 300 per run, both
    // sides of the threshold): the fit finds Ω = 3 again.
    let truth = Spectrum {
        omega: 3.0,
        c: 1.0,
        d: 1,
    };
    let mut rows = Vec::new();
    for m in [2, 3, 4] {
        for n in [100, 200, 1000, 5000] {
            let t = expected_loss(&truth, m, n, 300).test;
            rows.push(("", "monolithic", m, n, t, false));
        }
    }
    let mut t = table(&rows);
    // No width column: every run has p = --p.
    for r in &mut t.rows {
        r.remove(0);
    }
    t.header.remove(0);
    let th = tc::evaluate(
        &TheoryOptions {
            p: Some(300),
            n: Some(1000),
            omega: None,
        },
        Some(&t),
    )
    .unwrap();
    assert_eq!(th.omega_source, OmegaSource::Fitted);
    let fit = th.fit.unwrap();
    assert_eq!(fit.points, 12);
    assert!((fit.omega - 3.0).abs() < 1e-3, "fitted Ω {}", fit.omega);
    assert!(fit.rms_log_error < 1e-3);
    // A wrong Ω fits worse.
    let pts: Vec<EmpiricalPoint> = th.empirical.clone();
    assert!(tc::rms_log_error(2.0, 1.0, 1, &pts).unwrap() > 0.01);
    // The empirical series sit on the theory's own curve points.
    for e in &th.empirical {
        assert!(th
            .curves
            .iter()
            .any(|c| c.curve == CurveKind::VsN && c.m == e.m && c.n == e.n && c.p == 300));
    }
}

#[test]
fn bad_options_are_refused() {
    for opts in [
        TheoryOptions {
            omega: Some(1.0),
            ..Default::default()
        },
        TheoryOptions {
            omega: Some(f64::NAN),
            ..Default::default()
        },
        TheoryOptions {
            p: Some(0),
            ..Default::default()
        },
    ] {
        assert!(tc::evaluate(&opts, None).is_err(), "{opts:?}");
    }
    let only_modular = table(&[("[16, 16]", "modular_kernel", 4, 1000, 0.1, false)]);
    assert!(tc::evaluate(&TheoryOptions::default(), Some(&only_modular)).is_err());
}

#[test]
fn the_command_writes_the_curves_and_the_plots() {
    let dir = std::env::temp_dir().join(format!("hypermod-sine-theory-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // A width sweep's runs.csv (the `loss vs p` curve) for --sweep.
    let sweep = dir.join("sweep");
    std::fs::create_dir_all(&sweep).unwrap();
    table(&[
        ("[16, 16]", "monolithic", 4, 1000, 0.8, false),
        ("[64, 64]", "monolithic", 4, 1000, 0.6, false),
        ("[256, 256]", "monolithic", 4, 1000, 0.5, false),
    ])
    .write(&sweep.join("runs.csv"))
    .unwrap();
    for (args, fitted) in [
        (vec![], false),
        (vec!["--sweep", sweep.to_str().unwrap()], true),
    ] {
        let out = dir.join(if fitted { "fitted" } else { "plain" });
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_hypermod"))
            .env("HYPERMOD_DEVICE", "cpu")
            .args(["sine-theory", "--out", out.to_str().unwrap()])
            .args(&args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(stdout.contains("fitted to 3 empirical"), fitted, "{stdout}");
        let csv = std::fs::read_to_string(out.join("theory_curves.csv")).unwrap();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("curve,x,m,n,p,train,test"));
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        for curve in ["vs_n", "vs_p", "vs_m"] {
            assert!(rows.iter().any(|r| r[0] == curve), "{curve}");
        }
        // The threshold n = p of the default MLP (m = 4 → p = 67,329) is on the n grid.
        assert!(rows
            .iter()
            .any(|r| r[0] == "vs_n" && r[3] == "67329" && r[4] == "67329" && r[6] == "inf"));
        for stem in ["theory_vs_n", "theory_vs_p", "theory_vs_m"] {
            for ext in ["svg", "png"] {
                let f = out.join(format!("{stem}.{ext}"));
                assert!(
                    std::fs::metadata(&f).unwrap().len() > 1000,
                    "{}",
                    f.display()
                );
            }
        }
        assert!(out.join("theory_fit.json").exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
