//! Module identification by linear decoding (Schug et al. spec §6.2): for each teacher latent
//! coordinate (layer l, module m) a ridge regression from the adapted task parameters, fitted on
//! in-distribution tasks and scored by R² on out-of-distribution tasks.
//!
//! As in the reference: λ = 1 on every coefficient including the intercept column, solved by at
//! most 10 conjugate-gradient iterations from w = 0 (so the fit is deliberately approximate).

/// Ridge penalty of the reference decoder.
pub const LAMBDA: f64 = 1.0;
/// Conjugate-gradient iterations of the reference decoder.
pub const CG_ITERS: usize = 10;

/// Rows of features, with an appended intercept column of ones when `intercept`.
struct Design<'a> {
    x: &'a [f32],
    rows: usize,
    dim: usize,
    intercept: bool,
}

impl Design<'_> {
    fn cols(&self) -> usize {
        self.dim + usize::from(self.intercept)
    }
    fn at(&self, i: usize, j: usize) -> f64 {
        if j == self.dim {
            1.0
        } else {
            self.x[i * self.dim + j] as f64
        }
    }
    /// X·w.
    fn mul(&self, w: &[f64]) -> Vec<f64> {
        (0..self.rows)
            .map(|i| (0..self.cols()).map(|j| self.at(i, j) * w[j]).sum())
            .collect()
    }
    /// Xᵀ·v.
    fn mul_t(&self, v: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.cols()];
        for (i, &vi) in v.iter().enumerate() {
            for (j, o) in out.iter_mut().enumerate() {
                *o += self.at(i, j) * vi;
            }
        }
        out
    }
}

/// Solves (XᵀX + λI) w = Xᵀy approximately by `iters` CG steps from 0.
fn ridge_cg(d: &Design<'_>, y: &[f64], lambda: f64, iters: usize) -> Vec<f64> {
    let apply = |v: &[f64]| -> Vec<f64> {
        let xv = d.mul(v);
        d.mul_t(&xv)
            .iter()
            .zip(v)
            .map(|(a, b)| a + lambda * b)
            .collect()
    };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut w = vec![0.0; d.cols()];
    let mut r = d.mul_t(y);
    let mut p = r.clone();
    let mut rr = dot(&r, &r);
    for _ in 0..iters {
        if rr <= f64::MIN_POSITIVE {
            break;
        }
        let ap = apply(&p);
        let alpha = rr / dot(&p, &ap);
        for j in 0..w.len() {
            w[j] += alpha * p[j];
            r[j] -= alpha * ap[j];
        }
        let rr_new = dot(&r, &r);
        let beta = rr_new / rr;
        rr = rr_new;
        for j in 0..p.len() {
            p[j] = r[j] + beta * p[j];
        }
    }
    w
}

/// A ridge regression solved like the reference's `RidgeRegression`: at most `iters` CG steps
/// from w = 0 on `(XᵀX + λI) w = Xᵀy`, the penalty on every coefficient (intercept included).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ridge {
    /// The penalty λ.
    pub lambda: f64,
    /// Whether a column of ones is appended.
    pub intercept: bool,
    /// CG iterations.
    pub iters: usize,
}

/// A ridge fit of one target and its R² on a test set.
#[derive(Clone, Debug, PartialEq)]
pub struct RidgeFit {
    /// Coefficients (`dim`, plus the intercept last when fitted with one).
    pub weights: Vec<f64>,
    /// R² on the test set; `None` when the test target is constant.
    pub r2: Option<f64>,
}

impl Ridge {
    /// Fits target column `c` of `fit_y` (`n_fit × k`) from `fit_x` (`n_fit × dim`) and scores
    /// it on `test_x`/`test_y`.
    #[allow(clippy::too_many_arguments)]
    pub fn fit_score(
        &self,
        fit_x: &[f32],
        fit_y: &[f32],
        test_x: &[f32],
        test_y: &[f32],
        dim: usize,
        k: usize,
        c: usize,
    ) -> RidgeFit {
        let (n_fit, n_test) = (fit_y.len() / k.max(1), test_y.len() / k.max(1));
        let design = |x, rows| Design {
            x,
            rows,
            dim,
            intercept: self.intercept,
        };
        let (fit, test) = (design(fit_x, n_fit), design(test_x, n_test));
        let y: Vec<f64> = (0..n_fit).map(|i| fit_y[i * k + c] as f64).collect();
        let weights = ridge_cg(&fit, &y, self.lambda, self.iters);
        let pred = test.mul(&weights);
        let truth: Vec<f64> = (0..n_test).map(|i| test_y[i * k + c] as f64).collect();
        let mean = truth.iter().sum::<f64>() / n_test.max(1) as f64;
        let ss_tot: f64 = truth.iter().map(|t| (t - mean) * (t - mean)).sum();
        let ss_res: f64 = truth
            .iter()
            .zip(&pred)
            .map(|(t, p)| (t - p) * (t - p))
            .sum();
        RidgeFit {
            weights,
            r2: (ss_tot > 0.0).then(|| 1.0 - ss_res / ss_tot),
        }
    }
}

/// The hyperteacher decoder's ridge (spec §6.2).
pub const DECODER: Ridge = Ridge {
    lambda: LAMBDA,
    intercept: true,
    iters: CG_ITERS,
};

/// R² of every latent coordinate: `fit_x` (`n_fit × dim`) with latents `fit_z` (`n_fit × k`),
/// scored on `test_x`/`test_z`. A coordinate constant over the test set has no defined R² and
/// gives `None`.
pub fn decoder_r2(
    fit_x: &[f32],
    fit_z: &[f32],
    test_x: &[f32],
    test_z: &[f32],
    dim: usize,
    k: usize,
) -> Vec<Option<f64>> {
    (0..k)
        .map(|c| {
            DECODER
                .fit_score(fit_x, fit_z, test_x, test_z, dim, k, c)
                .r2
        })
        .collect()
}
