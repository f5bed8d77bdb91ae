//! Soft-target kernels (column statistics, standardised tempered softmax) vs their CPU twins.

mod common;

use hypermod::ops::softmax::{
    column_stats, column_stats_cpu, standardized_softmax, standardized_softmax_cpu,
};

/// f32 unit roundoff.
const U: f64 = f32::EPSILON as f64 / 2.0;

#[test]
fn column_stats_and_softmax_match_cpu_twins_on_random_shapes() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(11);
    for case in 0..24 {
        let batch = if case % 6 == 0 {
            1
        } else {
            common::size(&mut rng, 1, 5)
        };
        let rows = common::size(&mut rng, 1, 90);
        let cols = [1, 2, 3, 8, 13][case % 5];
        let temperature = [0.1f32, 1.0, 0.37][case % 3];
        // Logits of a few units of scale, offset per column like real teacher outputs.
        let x: Vec<f32> = common::uniform(&mut rng, batch * rows * cols)
            .iter()
            .enumerate()
            .map(|(i, v)| 3.0 * v + (i % cols) as f32 * 0.5)
            .collect();
        let gx = if case % 2 == 0 {
            common::padded(gpu, &x, batch, rows, cols)
        } else {
            gpu.upload(&x, batch, rows, cols).unwrap()
        };
        let mean = common::padded(gpu, &vec![f32::NAN; batch * cols], batch, 1, cols);
        let std = gpu.zeros(batch, 1, cols).unwrap();
        let y = common::padded(gpu, &vec![f32::NAN; batch * rows * cols], batch, rows, cols);
        let stats = column_stats(gpu, &gx, &mean, &std).unwrap();
        let soft = standardized_softmax(gpu, &gx, &mean, &std, &y, temperature).unwrap();
        gpu.run(&[&stats, &soft]).unwrap();
        common::assert_gaps_untouched(gpu, &mean, "mean");
        common::assert_gaps_untouched(gpu, &y, "y");
        let (g_mean, g_std, g_y) = (
            gpu.read(&mean).unwrap(),
            gpu.read(&std).unwrap(),
            gpu.read(&y).unwrap(),
        );

        let shape = (batch, rows, cols);
        let x64 = common::widen(&x);
        let (mut w_mean, mut w_std) = (vec![0.0; batch * cols], vec![0.0; batch * cols]);
        column_stats_cpu(&x64, shape, &mut w_mean, &mut w_std);
        let ctx = format!("case {case}: {shape:?} T {temperature}");
        // A serial f32 sum of `rows` terms of magnitude ≤ M errs by ≤ rows·u·M (M ≤ 3 + cols/2);
        // the variance adds one more such sum of squares, and sqrt halves its relative error.
        let m = 3.0 + cols as f64 * 0.5;
        common::assert_close(
            &g_mean,
            &w_mean,
            |_| (rows as f64 + 2.0) * U * m,
            &format!("{ctx} mean"),
        );
        common::assert_close(
            &g_std,
            &w_std,
            |i| (rows as f64 + 4.0) * U * m * m / w_std[i].max(1e-3) + 1e-6,
            &format!("{ctx} std"),
        );
        // The softmax is compared on the GPU's own statistics, isolating its rounding: each scaled
        // logit |z| ≤ Z carries ~4u·|z| error, exp turns it into relative error of that size, and
        // the normalisation adds cols·u.
        let mut want = vec![0.0; batch * rows * cols];
        let (gm, gs) = (common::widen(&g_mean), common::widen(&g_std));
        standardized_softmax_cpu(&x64, shape, &gm, &gs, temperature as f64, &mut want);
        let zmax = x64
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let (b, c) = (i / (rows * cols), i % cols);
                let s = gs[b * cols + c];
                if s > 0.0 {
                    ((v - gm[b * cols + c]) / s / temperature as f64).abs()
                } else {
                    0.0
                }
            })
            .fold(0.0, f64::max);
        common::assert_close(
            &g_y,
            &want,
            |i| (8.0 * zmax + cols as f64 + 8.0) * U * want[i].max(1e-30) * 4.0 + 1e-7,
            &format!("{ctx} y"),
        );
        // Rows are distributions.
        for r in g_y.chunks(cols) {
            let s: f32 = r.iter().sum();
            assert!((s - 1.0).abs() < 1e-5, "{ctx}: row sums to {s}");
        }
    }
}

#[test]
fn soft_target_ops_reject_bad_shapes_and_temperatures() {
    let gpu = gpu_or_skip!();
    let x = gpu.zeros(2, 5, 3).unwrap();
    let mean = gpu.zeros(2, 1, 3).unwrap();
    let std = gpu.zeros(2, 1, 3).unwrap();
    let bad = gpu.zeros(2, 1, 4).unwrap();
    let err = column_stats(gpu, &x, &bad, &std).unwrap_err().to_string();
    assert!(err.contains("[2×1×4]") && err.contains("[2×5×3]"), "{err}");
    let y = gpu.zeros(2, 5, 3).unwrap();
    for t in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert!(
            standardized_softmax(gpu, &x, &mean, &std, &y, t).is_err(),
            "temperature {t}"
        );
    }
    let y_bad = gpu.zeros(2, 4, 3).unwrap();
    let err = standardized_softmax(gpu, &x, &mean, &std, &y_bad, 0.1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("must match"), "{err}");
    let other_batch = gpu.zeros(3, 1, 3).unwrap();
    assert!(column_stats(gpu, &x, &other_batch, &std).is_err());
}
