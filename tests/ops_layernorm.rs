//! LayerNorm: the backward twin against central finite differences of the forward twin (f64),
//! then both GPU passes vs the twins on random shapes (affine on/off, broadcast γ/β, odd cols
//! including 1 and > the workgroup size, views with offsets), plus shape errors.

mod common;

use hypermod::ops::layernorm::{
    layernorm_backward, layernorm_backward_cpu, layernorm_forward, layernorm_forward_cpu,
    DEFAULT_EPS, WG,
};
use rand::RngExt;

/// f32 unit roundoff.
const U: f64 = f32::EPSILON as f64 / 2.0;

fn rand64(rng: &mut rand::rngs::ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

#[test]
fn backward_twin_matches_finite_differences() {
    let mut rng = common::rng(3);
    for (batch, rows, cols, affine) in [
        (1, 1, 1, true),
        (2, 3, 4, true),
        (1, 2, 7, false),
        (3, 1, 2, true),
        (2, 2, 5, true),
    ] {
        let x: Vec<f64> = rand64(&mut rng, batch * rows * cols)
            .iter()
            .map(|v| 2.0 * v + 0.3)
            .collect();
        let g: Vec<f64> = rand64(&mut rng, batch * cols)
            .iter()
            .map(|v| 1.0 + 0.5 * v)
            .collect();
        let b = rand64(&mut rng, batch * cols);
        let w = rand64(&mut rng, x.len()); // the loss is Σ w·y, so dy = w
        let eps = 1e-5;
        let loss = |x: &[f64], g: &[f64], b: &[f64]| {
            let (mut y, mut m, mut r) = (
                vec![0.0; x.len()],
                vec![0.0; batch * rows],
                vec![0.0; batch * rows],
            );
            let (gg, bb) = if affine {
                (Some(g), Some(b))
            } else {
                (None, None)
            };
            layernorm_forward_cpu(x, gg, bb, rows, cols, eps, &mut y, &mut m, &mut r);
            y.iter().zip(&w).map(|(y, w)| y * w).sum::<f64>()
        };
        let (mut y, mut m, mut r) = (
            vec![0.0; x.len()],
            vec![0.0; batch * rows],
            vec![0.0; batch * rows],
        );
        let gg = affine.then_some(&g[..]);
        layernorm_forward_cpu(
            &x,
            gg,
            affine.then_some(&b[..]),
            rows,
            cols,
            eps,
            &mut y,
            &mut m,
            &mut r,
        );
        let mut dx = vec![0.0; x.len()];
        let (mut dg, mut db) = (vec![0.0; g.len()], vec![0.0; b.len()]);
        layernorm_backward_cpu(
            &w,
            &x,
            gg,
            &m,
            &r,
            rows,
            cols,
            &mut dx,
            Some(&mut dg),
            Some(&mut db),
        );
        // Central differences: truncation O(h²·f''') ≈ 1e-10 and cancellation ≈ 1e-16/h ≈ 1e-10
        // for h = 1e-6; 1e-6 (relative to 1 + |grad|) leaves a wide margin yet catches any
        // wrong term (those are O(1)).
        let h = 1e-6;
        let check = |name: &str, v: &[f64], grad: &[f64], f: &dyn Fn(&[f64]) -> f64| {
            for i in 0..v.len() {
                let (mut p, mut q) = (v.to_vec(), v.to_vec());
                p[i] += h;
                q[i] -= h;
                let fd = (f(&p) - f(&q)) / (2.0 * h);
                assert!(
                    (fd - grad[i]).abs() < 1e-6 * (1.0 + fd.abs()),
                    "{name}[{i}] ({batch}×{rows}×{cols} affine {affine}): fd {fd} vs {}",
                    grad[i]
                );
            }
        };
        check("dx", &x, &dx, &|x| loss(x, &g, &b));
        if affine {
            check("dgamma", &g, &dg, &|g| loss(&x, g, &b));
            check("dbeta", &b, &db, &|b| loss(&x, &g, b));
        }
    }
}

#[test]
fn gpu_matches_twin_on_random_shapes() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(11);
    let wg = WG as usize;
    for case in 0..30 {
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
        let (has_g, has_b) = (case % 3 != 2, case % 3 == 0 || case % 7 == 1);
        let (share_g, share_b) = (case % 2 == 0, case % 4 == 1);
        let n = batch * rows * cols;
        // Rows with an offset make the mean matter; scale keeps rstd away from 1.
        let x: Vec<f32> = common::uniform(&mut rng, n)
            .iter()
            .enumerate()
            .map(|(i, v)| 1.5 * v + ((i / cols) % 3) as f32)
            .collect();
        let g = common::data(&mut rng, batch, cols, share_g);
        let b = common::data(&mut rng, batch, cols, share_b);
        let dy = common::uniform(&mut rng, n);
        let gx = common::put_random_padded(gpu, &mut rng, &x, (batch, rows, cols), false);
        let gg = common::put_random_padded(gpu, &mut rng, &g, (batch, 1, cols), share_g);
        let gb = common::put_random_padded(gpu, &mut rng, &b, (batch, 1, cols), share_b);
        let gdy = common::put_random_padded(gpu, &mut rng, &dy, (batch, rows, cols), false);
        let y = gpu.zeros(batch, rows, cols).unwrap();
        let mean = gpu.zeros(batch, rows, 1).unwrap();
        let rstd = gpu.zeros(batch, rows, 1).unwrap();
        let dx = gpu.zeros(batch, rows, cols).unwrap();
        let dg = gpu.zeros(batch, 1, cols).unwrap();
        let db = gpu.zeros(batch, 1, cols).unwrap();
        let gam = has_g.then_some(&gg);
        let fwd = layernorm_forward(
            gpu,
            &gx,
            gam,
            has_b.then_some(&gb),
            &y,
            &mean,
            &rstd,
            DEFAULT_EPS,
        )
        .unwrap();
        gpu.run(&[&fwd]).unwrap();
        let want_dg = case % 6 != 5;
        let want_db = case % 5 != 3;
        let bwd = layernorm_backward(
            gpu,
            &gdy,
            &gx,
            gam,
            &mean,
            &rstd,
            &dx,
            want_dg.then_some(&dg),
            want_db.then_some(&db),
        )
        .unwrap();
        gpu.run(&bwd.iter().collect::<Vec<_>>()).unwrap();

        let ctx = format!(
            "case {case}: x {} affine γ {has_g} (shared {share_g}) β {has_b} (shared {share_b})",
            gx.shape_str()
        );
        let w = common::widen;
        let (g64, b64) = (w(&g), w(&b));
        let (mut ry, mut rm, mut rr) = (
            vec![0.0; n],
            vec![0.0; batch * rows],
            vec![0.0; batch * rows],
        );
        layernorm_forward_cpu(
            &w(&x),
            has_g.then_some(&g64[..]),
            has_b.then_some(&b64[..]),
            rows,
            cols,
            DEFAULT_EPS as f64,
            &mut ry,
            &mut rm,
            &mut rr,
        );
        // Rounding model: each sum is ceil(cols/WG) sequential adds then log2(WG) tree levels, so
        // |error| ≤ d·u·Σ|terms| with d = ceil(cols/WG) + 8 (+ a few for the surrounding ops).
        let d = cols.div_ceil(wg) as f64 + 12.0;
        let gm = |i: usize| {
            if has_g {
                g[(i / (rows * cols)) * cols + i % cols].abs() as f64
            } else {
                1.0
            }
        };
        let bm = |i: usize| {
            if has_b {
                b[(i / (rows * cols)) * cols + i % cols].abs() as f64
            } else {
                0.0
            }
        };
        let absmean = |row: usize| {
            x[row * cols..(row + 1) * cols]
                .iter()
                .map(|v| v.abs() as f64)
                .sum::<f64>()
                / cols as f64
        };
        // mean: d·u·mean|x|. rstd: relative error of the variance (d·u plus the mean error squared,
        // negligible) halved by the root, plus the GPU's sqrt and division (a few ulp): 2d·u.
        common::assert_close(
            &gpu.read(&mean).unwrap(),
            &rm,
            |r| 2.0 * d * U * absmean(r) + 1e-30,
            &format!("{ctx} mean"),
        );
        common::assert_close(
            &gpu.read(&rstd).unwrap(),
            &rr,
            |r| 2.0 * d * U * rr[r],
            &format!("{ctx} rstd"),
        );
        // y = (x − μ)·rstd·γ + β: |γ|·rstd·|δμ| + |γ·x̂|·|δrstd/rstd| + rounding of β's add.
        let tol_y = |i: usize| {
            let row = i / cols;
            let xh = (x[i] as f64 - rm[row]).abs() * rr[row];
            2.0 * (gm(i) * rr[row] * d * U * absmean(row) + gm(i) * xh * 2.0 * d * U + bm(i) * U)
                + 1e-7
        };
        common::assert_close(&gpu.read(&y).unwrap(), &ry, tol_y, &format!("{ctx} y"));

        // Backward twin fed the GPU's mean/rstd, so only the backward's own rounding differs.
        let (gm32, gr32) = (w(&gpu.read(&mean).unwrap()), w(&gpu.read(&rstd).unwrap()));
        let (mut rdx, mut rdg, mut rdb) = (
            vec![0.0; n],
            vec![0.0; batch * cols],
            vec![0.0; batch * cols],
        );
        layernorm_backward_cpu(
            &w(&dy),
            &w(&x),
            has_g.then_some(&g64[..]),
            &gm32,
            &gr32,
            rows,
            cols,
            &mut rdx,
            Some(&mut rdg),
            Some(&mut rdb),
        );
        // dx = rstd·(g − mean g − x̂·mean(g·x̂)): each term's error is d·u times its magnitude
        // (the means via the sums, x̂ via 3 roundings), scaled by rstd.
        let tol_dx = |i: usize| {
            let row = i / cols;
            let xh = (x[i] as f64 - gm32[row]).abs() * gr32[row];
            let gi = |c: usize| dy[row * cols + c].abs() as f64 * gm(row / rows * rows * cols + c);
            let sg = (0..cols).map(gi).sum::<f64>() / cols as f64;
            let sgx = (0..cols)
                .map(|c| gi(c) * (x[row * cols + c] as f64 - gm32[row]).abs() * gr32[row])
                .sum::<f64>()
                / cols as f64;
            4.0 * d * U * gr32[row] * (gi(i % cols) + sg + xh * sgx + sgx) + 1e-7
        };
        common::assert_close(&gpu.read(&dx).unwrap(), &rdx, tol_dx, &format!("{ctx} dx"));
        // dγ, dβ: sequential sums over `rows` terms in the same order: (rows + 4)·u·Σ|terms|.
        let colsum = |i: usize, f: &dyn Fn(usize) -> f64| {
            (0..rows)
                .map(|r| f((i / cols) * rows * cols + r * cols + i % cols))
                .sum::<f64>()
        };
        if want_dg {
            let t = |i: usize| {
                2.0 * (rows as f64 + 4.0)
                    * U
                    * colsum(i, &|j| {
                        (dy[j] as f64 * (x[j] as f64 - gm32[j / cols]) * gr32[j / cols]).abs()
                    })
                    + 1e-7
            };
            common::assert_close(&gpu.read(&dg).unwrap(), &rdg, t, &format!("{ctx} dgamma"));
        }
        if want_db {
            let t = |i: usize| 2.0 * (rows as f64 + 1.0) * U * colsum(i, &|j| dy[j].abs() as f64);
            common::assert_close(&gpu.read(&db).unwrap(), &rdb, t, &format!("{ctx} dbeta"));
        }
    }
}

#[test]
fn layernorm_rejects_bad_shapes_with_named_shapes() {
    let gpu = gpu_or_skip!();
    let x = gpu.zeros(2, 3, 5).unwrap();
    let y = gpu.zeros(2, 3, 5).unwrap();
    let m = gpu.zeros(2, 3, 1).unwrap();
    let r = gpu.zeros(2, 3, 1).unwrap();
    let bad_g = gpu.zeros(2, 1, 4).unwrap();
    let err = layernorm_forward(gpu, &x, Some(&bad_g), None, &y, &m, &r, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gamma [2×1×4]") && err.contains("x [2×3×5]"),
        "{err}"
    );
    let bad_m = gpu.zeros(2, 1, 3).unwrap();
    let err = layernorm_forward(gpu, &x, None, None, &y, &bad_m, &r, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("mean [2×1×3]"), "{err}");
    let bad_dx = gpu.zeros(2, 3, 6).unwrap();
    let err = layernorm_backward(gpu, &y, &x, None, &m, &r, &bad_dx, None, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("dx [2×3×6]"), "{err}");
    let shared_dg = gpu.zeros(1, 1, 5).unwrap().broadcast(2).unwrap();
    let err = layernorm_backward(
        gpu,
        &y,
        &x,
        None,
        &m,
        &r,
        &y.clone(),
        Some(&shared_dg),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("overlap"), "{err}");
    assert!(layernorm_forward(gpu, &x, None, None, &y, &m, &r, f32::NAN).is_err());
}
