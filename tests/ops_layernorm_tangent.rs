//! LayerNorm tangent passes (forward-over-reverse): the twins against the exact derivative of
//! the LayerNorm twins on dual numbers and against central finite differences in f64; then the
//! device against the twins on random shapes (γ absent, per item or broadcast; cols 1, odd,
//! and wider than a workgroup; NaN-padded views with offsets), plus shape errors.

mod common;

use hypermod::ops::dual::Dual;
use hypermod::ops::layernorm::{
    layernorm_backward_cpu, layernorm_forward, layernorm_forward_cpu, DEFAULT_EPS, WG,
};
use hypermod::ops::layernorm_tangent::{
    layernorm_tangent_backward, layernorm_tangent_backward_cpu, layernorm_tangent_forward,
    layernorm_tangent_forward_cpu, LnTangentHost, LnTangentInputs,
};
use rand::RngExt;

const EPS: f64 = 1e-5;

fn rand64(rng: &mut rand::rngs::ChaCha8Rng, n: usize, scale: f64, shift: f64) -> Vec<f64> {
    (0..n)
        .map(|_| scale * rng.random_range(-1.0..1.0) + shift)
        .collect()
}

/// The LayerNorm twin's forward `(y, mean, rstd)` and backward `(dx, dγ, dβ)` on any `Real`.
#[allow(clippy::type_complexity)]
fn ln_twin<T: hypermod::ops::Real>(
    x: &[T],
    gamma: Option<&[T]>,
    dy: &[T],
    rows: usize,
    cols: usize,
) -> (Vec<T>, Vec<T>, Vec<T>, Vec<T>, Vec<T>) {
    let nrows = x.len() / cols;
    let (mut y, mut m, mut r) = (
        vec![T::zero(); x.len()],
        vec![T::zero(); nrows],
        vec![T::zero(); nrows],
    );
    let eps = T::from_f64(EPS);
    layernorm_forward_cpu(x, gamma, None, rows, cols, eps, &mut y, &mut m, &mut r);
    let mut dx = vec![T::zero(); x.len()];
    let nitems = nrows / rows;
    let (mut dg, mut db) = (
        vec![T::zero(); nitems * cols],
        vec![T::zero(); nitems * cols],
    );
    layernorm_backward_cpu(
        dy,
        x,
        gamma,
        &m,
        &r,
        rows,
        cols,
        &mut dx,
        Some(&mut dg),
        Some(&mut db),
    );
    (y, m, r, dx, dg)
}

/// The twins' `(ẏ, ḋx, ḋγ)` along (ẋ, ḋy) in f64.
fn tangent_twin(
    x: &[f64],
    x_dot: &[f64],
    gamma: Option<&[f64]>,
    (dy, dy_dot): (&[f64], &[f64]),
    rows: usize,
    cols: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (_, mean, rstd, _, _) = ln_twin(x, gamma, dy, rows, cols);
    let h = LnTangentHost {
        x,
        x_dot,
        gamma,
        mean: &mean,
        rstd: &rstd,
        rows,
        cols,
    };
    let (y_dot, ts) = layernorm_tangent_forward_cpu(&h);
    let (dx_dot, dg_dot) = layernorm_tangent_backward_cpu(&h, &ts, dy, dy_dot);
    (y_dot, dx_dot, dg_dot)
}

fn assert_near(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

#[test]
fn tangent_twins_are_the_derivative_of_the_layernorm_twins() {
    let mut rng = common::rng(23);
    for (batch, rows, cols, affine) in [
        (1, 1, 1, true),
        (1, 3, 4, true),
        (2, 2, 7, false),
        (3, 1, 2, true),
        (2, 4, 33, true),
    ] {
        let n = batch * rows * cols;
        let x = rand64(&mut rng, n, 2.0, 0.3);
        let x_dot = rand64(&mut rng, n, 1.0, 0.0);
        let gamma = rand64(&mut rng, batch * cols, 0.5, 1.0);
        let (dy, dy_dot) = (rand64(&mut rng, n, 1.0, 0.0), rand64(&mut rng, n, 1.0, 0.0));
        let g = affine.then_some(&gamma[..]);
        let ctx = format!("{batch}×{rows}×{cols} affine {affine}");
        let (y_dot, dx_dot, dg_dot) = tangent_twin(&x, &x_dot, g, (&dy, &dy_dot), rows, cols);

        // Exact: the LayerNorm twins on duals seeded with (ẋ, ḋy); γ holds still.
        let (xs, dys) = (Dual::seed(&x, &x_dot), Dual::seed(&dy, &dy_dot));
        let gs = Dual::constants(&gamma);
        let (yd, _, _, dxd, dgd) = ln_twin(&xs, affine.then_some(&gs[..]), &dys, rows, cols);
        assert_near(&format!("{ctx} ẏ"), &y_dot, &Dual::tangents(&yd), 1e-12);
        assert_near(&format!("{ctx} ḋx"), &dx_dot, &Dual::tangents(&dxd), 1e-12);
        assert_near(&format!("{ctx} ḋγ"), &dg_dot, &Dual::tangents(&dgd), 1e-12);

        // Central finite differences of the f64 twins along the same direction.
        let h = 1e-6;
        let at = |s: f64| {
            let xs: Vec<f64> = x.iter().zip(&x_dot).map(|(v, d)| v + s * d).collect();
            let dys: Vec<f64> = dy.iter().zip(&dy_dot).map(|(v, d)| v + s * d).collect();
            ln_twin(&xs, g, &dys, rows, cols)
        };
        let (p, m) = (at(h), at(-h));
        let fd = |a: &[f64], b: &[f64]| -> Vec<f64> {
            a.iter().zip(b).map(|(a, b)| (a - b) / (2.0 * h)).collect()
        };
        assert_near(&format!("{ctx} ẏ fd"), &y_dot, &fd(&p.0, &m.0), 1e-6);
        assert_near(&format!("{ctx} ḋx fd"), &dx_dot, &fd(&p.3, &m.3), 1e-6);
        assert_near(&format!("{ctx} ḋγ fd"), &dg_dot, &fd(&p.4, &m.4), 1e-6);
    }
}

#[test]
fn gpu_tangents_match_twins_on_random_shapes() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(29);
    let wg = WG as usize;
    for case in 0..24 {
        let batch = if case % 4 == 0 {
            1
        } else {
            common::size(&mut rng, 1, 4)
        };
        let rows = common::size(&mut rng, 1, 9);
        let cols = match case % 5 {
            0 => 1,
            1 => common::size(&mut rng, wg + 1, 3 * wg + 7) | 1,
            _ => common::size(&mut rng, 2, 60),
        };
        let (has_g, share_g, want_dg) = (case % 3 != 2, case % 2 == 0, case % 5 != 3);
        let shape = (batch, rows, cols);
        let n = batch * rows * cols;
        let x: Vec<f32> = common::uniform(&mut rng, n)
            .iter()
            .enumerate()
            .map(|(i, v)| 1.5 * v + ((i / cols) % 3) as f32)
            .collect();
        let gamma: Vec<f32> = common::data(&mut rng, batch, cols, share_g)
            .iter()
            .map(|v| 1.0 + 0.5 * v)
            .collect();
        let (x_dot, dy, dy_dot) = (
            common::uniform(&mut rng, n),
            common::uniform(&mut rng, n),
            common::uniform(&mut rng, n),
        );
        let gx = common::put_random_padded(gpu, &mut rng, &x, shape, false);
        let gg = common::put_random_padded(gpu, &mut rng, &gamma, (batch, 1, cols), share_g);
        let gxd = common::put_random_padded(gpu, &mut rng, &x_dot, shape, false);
        let gdy = common::put_random_padded(gpu, &mut rng, &dy, shape, false);
        let gdyd = common::put_random_padded(gpu, &mut rng, &dy_dot, shape, false);
        let (mean, rstd) = (
            gpu.zeros(batch, rows, 1).unwrap(),
            gpu.zeros(batch, rows, 1).unwrap(),
        );
        let tstats = gpu.zeros(batch, rows, 2).unwrap();
        let y = gpu.zeros(batch, rows, cols).unwrap();
        let y_dot = common::padded(gpu, &vec![0.0; n], batch, rows, cols);
        let dx_dot = common::padded(gpu, &vec![0.0; n], batch, rows, cols);
        let dg_dot = gpu.zeros(batch, 1, cols).unwrap();
        let gamma_t = has_g.then_some(&gg);
        let fwd = layernorm_forward(gpu, &gx, gamma_t, None, &y, &mean, &rstd, DEFAULT_EPS);
        let inputs = LnTangentInputs {
            x: &gx,
            x_dot: &gxd,
            gamma: gamma_t,
            mean: &mean,
            rstd: &rstd,
            tstats: &tstats,
        };
        let tf = layernorm_tangent_forward(gpu, &inputs, &y_dot).unwrap();
        let dg = want_dg.then_some(&dg_dot);
        let tb = layernorm_tangent_backward(gpu, &inputs, (&gdy, &gdyd), &dx_dot, dg).unwrap();
        let mut all = vec![fwd.unwrap(), tf];
        all.extend(tb);
        gpu.run(&all.iter().collect::<Vec<_>>()).unwrap();
        let ctx = format!(
            "case {case}: x {} γ {has_g} (shared {share_g})",
            gx.shape_str()
        );
        for t in [&y_dot, &dx_dot] {
            common::assert_gaps_untouched(gpu, t, &ctx);
        }

        // The twins fed the device's statistics, so only the tangents' own rounding differs.
        let w = common::widen;
        let (m64, r64, g64) = (
            w(&gpu.read(&mean).unwrap()),
            w(&gpu.read(&rstd).unwrap()),
            w(&gamma),
        );
        let (x64, xd64) = (w(&x), w(&x_dot));
        let h = LnTangentHost {
            x: &x64,
            x_dot: &xd64,
            gamma: has_g.then_some(&g64[..]),
            mean: &m64,
            rstd: &r64,
            rows,
            cols,
        };
        let (want_yd, want_ts) = layernorm_tangent_forward_cpu(&h);
        let ts64 = w(&gpu.read(&tstats).unwrap());
        let (want_dxd, want_dgd) = layernorm_tangent_backward_cpu(&h, &ts64, &w(&dy), &w(&dy_dot));
        // Each output is a few O(1)-sized terms per element (|x̂|, |ẋ|, |γ| ≤ ~3, r ≤ ~3) and
        // row sums of ceil(cols/WG) + log2(WG) roundings: d·u times a term scale of ~100 per
        // factor of r bounds them; a wrong term is off by O(1).
        let d = (cols.div_ceil(wg) + 10) as f64 * f32::EPSILON as f64;
        let row_r = |i: usize| r64[i / cols];
        common::assert_close(
            &gpu.read(&tstats).unwrap(),
            &want_ts,
            |_| 20.0 * d,
            &format!("{ctx} tstats"),
        );
        common::assert_close(
            &gpu.read(&y_dot).unwrap(),
            &want_yd,
            |i| 50.0 * d * row_r(i),
            &format!("{ctx} ẏ"),
        );
        common::assert_close(
            &gpu.read(&dx_dot).unwrap(),
            &want_dxd,
            |i| 200.0 * d * row_r(i) * row_r(i),
            &format!("{ctx} ḋx"),
        );
        if want_dg {
            let rmax = r64.iter().cloned().fold(0.0, f64::max);
            common::assert_close(
                &gpu.read(&dg_dot).unwrap(),
                &want_dgd,
                |_| 50.0 * (rows + 10) as f64 * f32::EPSILON as f64 * rmax,
                &format!("{ctx} ḋγ"),
            );
        }
    }
}

#[test]
fn tangents_reject_bad_shapes_naming_them() {
    let gpu = gpu_or_skip!();
    let x = gpu.zeros(2, 3, 5).unwrap();
    let xd = gpu.zeros(2, 3, 5).unwrap();
    let (m, r) = (gpu.zeros(2, 3, 1).unwrap(), gpu.zeros(2, 3, 1).unwrap());
    let ts = gpu.zeros(2, 3, 2).unwrap();
    let out = gpu.zeros(2, 3, 5).unwrap();
    let ok = LnTangentInputs {
        x: &x,
        x_dot: &xd,
        gamma: None,
        mean: &m,
        rstd: &r,
        tstats: &ts,
    };
    let bad_ts = gpu.zeros(2, 3, 1).unwrap();
    let inputs = LnTangentInputs {
        tstats: &bad_ts,
        ..ok
    };
    let err = layernorm_tangent_forward(gpu, &inputs, &out)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tstats [2×3×1]") && err.contains("x [2×3×5]"),
        "{err}"
    );
    let bad_xd = gpu.zeros(2, 3, 4).unwrap();
    let inputs = LnTangentInputs {
        x_dot: &bad_xd,
        ..ok
    };
    let err = layernorm_tangent_forward(gpu, &inputs, &out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("x_dot [2×3×4]"), "{err}");
    let (dy, dyd) = (gpu.zeros(2, 3, 5).unwrap(), gpu.zeros(2, 3, 5).unwrap());
    let bad_dg = gpu.zeros(2, 1, 4).unwrap();
    let err = layernorm_tangent_backward(gpu, &ok, (&dy, &dyd), &out, Some(&bad_dg))
        .unwrap_err()
        .to_string();
    assert!(err.contains("dgamma_dot [2×1×4]"), "{err}");
    let wrong_batch = gpu.zeros(1, 3, 5).unwrap();
    let err = layernorm_tangent_backward(gpu, &ok, (&wrong_batch, &dyd), &out, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("batch"), "{err}");
}
