//! Embedding normalisation and row scaling vs their CPU twins on random shapes (odd sizes,
//! batch 1, strided NaN-padded operands, a broadcast input for the scaling), shape errors.

mod common;

use hypermod::ops::embnorm::{
    embedding_normalize, embedding_normalize_cpu, scale_rows, scale_rows_cpu,
};

/// f32 unit roundoff.
const U: f64 = f32::EPSILON as f64 / 2.0;

#[test]
fn embnorm_matches_cpu_twin_on_random_shapes() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(41);
    for case in 0..24 {
        let batch = if case % 4 == 0 {
            1
        } else {
            common::size(&mut rng, 2, 9)
        };
        let rows = common::size(&mut rng, 1, 13);
        let cols = common::size(&mut rng, 1, 70);
        let ctx = format!("case {case} [{batch}×{rows}×{cols}]");
        let e = common::uniform(&mut rng, batch * rows * cols);
        let e64 = common::widen(&e);
        let (want_hat, want_s) = embedding_normalize_cpu(&e64, cols);

        let padded = case % 2 == 1;
        let et = if padded {
            common::padded(gpu, &e, batch, rows, cols)
        } else {
            gpu.upload(&e, batch, rows, cols).unwrap()
        };
        let nan = vec![f32::NAN; batch * rows * cols];
        let ht = common::padded(gpu, &nan, batch, rows, cols);
        let st = common::padded(gpu, &vec![f32::NAN; batch * rows], batch, rows, 1);
        let d = embedding_normalize(gpu, &et, &ht, &st).unwrap();
        gpu.run(&[&d]).unwrap();
        // s = √C / √(Σ e²): the f32 sum of C squares has relative error ≤ C·u (sequential
        // recursive summation of positive terms), the square roots and division add ≤ 3u, so
        // |Δs| ≤ (C/2 + 3)·u·s plus slack; ê = e·s inherits that relative bound times |ê|.
        let rel = |c: usize| (c as f64 / 2.0 + 4.0) * U * 2.0;
        let s_got = gpu.read(&st).unwrap();
        common::assert_close(&s_got, &want_s, |i| rel(cols) * want_s[i].abs(), &ctx);
        let h_got = gpu.read(&ht).unwrap();
        common::assert_close(&h_got, &want_hat, |i| rel(cols) * want_hat[i].abs(), &ctx);
        common::assert_gaps_untouched(gpu, &ht, &ctx);
        common::assert_gaps_untouched(gpu, &st, &ctx);

        // Row scaling (backward): one rounding per element, exact up to u relative. The input is
        // a broadcast in every third case (a shared operand seen by all items).
        let shared = case % 3 == 0;
        let x = common::data(&mut rng, batch, rows * cols, shared);
        let xt = common::put(gpu, &x, batch, rows, cols, shared);
        let s: Vec<f32> = common::uniform(&mut rng, batch * rows);
        let sgpu = gpu.upload(&s, batch, rows, 1).unwrap();
        let yt = common::padded(gpu, &nan, batch, rows, cols);
        let d = scale_rows(gpu, &xt, &sgpu, &yt).unwrap();
        gpu.run(&[&d]).unwrap();
        let want = scale_rows_cpu(&common::widen(&x), &common::widen(&s), cols);
        common::assert_close(&gpu.read(&yt).unwrap(), &want, |i| U * want[i].abs(), &ctx);
        common::assert_gaps_untouched(gpu, &yt, &ctx);
    }
}

#[test]
fn embnorm_rejects_bad_shapes_naming_them() {
    let gpu = gpu_or_skip!();
    let e = gpu.zeros(2, 3, 4).unwrap();
    let h = gpu.zeros(2, 3, 5).unwrap();
    let s = gpu.zeros(2, 3, 1).unwrap();
    let err = embedding_normalize(gpu, &e, &h, &s)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[2×3×4]") && err.contains("[2×3×5]"), "{err}");
    let s_bad = gpu.zeros(2, 2, 1).unwrap();
    let h = gpu.zeros(2, 3, 4).unwrap();
    let err = scale_rows(gpu, &e, &s_bad, &h).unwrap_err().to_string();
    assert!(err.contains("[2×2×1]"), "{err}");
    let s1 = gpu.zeros(1, 3, 1).unwrap();
    let err = embedding_normalize(gpu, &e, &h, &s1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("batch"), "{err}");
}

#[test]
fn normalize_columns_matches_cpu_twin_on_random_shapes() {
    use hypermod::ops::embnorm::{normalize_columns, normalize_columns_cpu};
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(43);
    for case in 0..22 {
        let batch = if case % 4 == 0 {
            1
        } else {
            common::size(&mut rng, 2, 9)
        };
        let rows = common::size(&mut rng, 1, 70);
        let cols = common::size(&mut rng, 1, 5);
        let ctx = format!("case {case} [{batch}×{rows}×{cols}]");
        let x = common::uniform(&mut rng, batch * rows * cols);
        let (want, want_s) = normalize_columns_cpu(&common::widen(&x), rows, cols);
        let xt = if case % 2 == 1 {
            common::padded(gpu, &x, batch, rows, cols)
        } else {
            gpu.upload(&x, batch, rows, cols).unwrap()
        };
        let yt = common::padded(gpu, &vec![f32::NAN; x.len()], batch, rows, cols);
        let st = common::padded(gpu, &vec![f32::NAN; batch * cols], batch, 1, cols);
        let d = normalize_columns(gpu, &xt, &yt, &st).unwrap();
        gpu.run(&[&d]).unwrap();
        // As for the row normalisation, with the column length R in place of C.
        let rel = (rows as f64 / 2.0 + 4.0) * U * 2.0;
        let got = gpu.read(&yt).unwrap();
        common::assert_close(&got, &want, |i| rel * want[i].abs(), &ctx);
        let s = gpu.read(&st).unwrap();
        common::assert_close(&s, &want_s, |i| rel * want_s[i].abs(), &ctx);
        common::assert_gaps_untouched(gpu, &yt, &ctx);
        common::assert_gaps_untouched(gpu, &st, &ctx);
    }
    let x = gpu.zeros(2, 3, 4).unwrap();
    let y = gpu.zeros(2, 3, 4).unwrap();
    let wrong = gpu.zeros(2, 3, 1).unwrap();
    assert!(normalize_columns(gpu, &x, &y, &wrong).is_err());
}
