//! Reductions vs their CPU twins on random shapes (every axis, odd sizes, batch 1, broadcast and
//! strided inputs, alpha/beta, accumulate), bit-identical reruns, NaN/Inf propagation, shape errors,
//! and the batch-invariant column sums: twin on random shapes, item b == its batch-1 launch bitwise.

mod common;

use hypermod::gpu::{Device, Step, Tensor};
use hypermod::ops::reduce::{
    col_sums, reduce, reduce_cpu, sum_squares, sum_squares_cpu, Reduction,
};

/// f32 unit roundoff.
const U: f64 = f32::EPSILON as f64 / 2.0;

/// Uploads logical `host` (`batch` items of `rows × cols`) as: a stride-0 broadcast of its first
/// item (`layout` 1, [`common::put`]), a NaN-padded strided view with an offset and a gap between
/// items (2, [`common::padded`]), or packed (0).
fn put(
    gpu: &Device,
    host: &[f32],
    (batch, rows, cols): (usize, usize, usize),
    layout: u8,
) -> Tensor {
    match layout {
        2 => common::padded(gpu, host, batch, rows, cols),
        _ => common::put(gpu, host, batch, rows, cols, layout == 1),
    }
}

fn abs64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| x.abs() as f64).collect()
}

#[test]
fn reduce_matches_cpu_twin_on_random_shapes() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(11);
    for case in 0..48 {
        let kind = Reduction::ALL[case % 3];
        let batch = if case % 4 == 0 {
            1
        } else {
            common::size(&mut rng, 2, 7)
        };
        let mut rows = common::size(&mut rng, 1, 70);
        let mut cols = common::size(&mut rng, 1, 70);
        // Long reductions exercise the per-invocation sequential part and wide trees.
        if case % 5 == 4 {
            match kind {
                Reduction::RowSums => cols = common::size(&mut rng, 300, 1500),
                Reduction::ColSums => rows = common::size(&mut rng, 300, 1500),
                Reduction::SumBatch => rows = common::size(&mut rng, 100, 300),
            }
        }
        let shape = (batch, rows, cols);
        let alpha = [1.0f32, -0.5, 2.0][(case / 3) % 3];
        let beta = if case % 4 == 1 { 0.75f32 } else { 0.0 };
        let layout = [0u8, 1, 2][(case / 2) % 3];
        let item = rows * cols;
        let mut x = common::uniform(&mut rng, batch * item);
        if layout == 1 {
            x = common::repeat(&x[..item], batch);
        }
        let gx = put(gpu, &x, shape, layout);
        let (yb, yr, yc) = kind.output_shape(batch, rows, cols);
        // beta = 0 must not read y: NaN there would poison the result.
        let y0 = if beta != 0.0 {
            common::uniform(&mut rng, yb * yr * yc)
        } else {
            vec![f32::NAN; yb * yr * yc]
        };
        let gy = gpu.upload(&y0, yb, yr, yc).unwrap();
        let d = reduce(gpu, &gx, &gy, kind, alpha, beta).unwrap();
        gpu.run(&[&d]).unwrap();
        let got = gpu.read(&gy).unwrap();

        let mut want = common::widen(&y0);
        reduce_cpu(&common::widen(&x), &mut want, shape, kind, alpha, beta);
        let mut mag = abs64(&y0);
        reduce_cpu(&abs64(&x), &mut mag, shape, kind, alpha.abs(), beta.abs());
        let terms = match kind {
            Reduction::SumBatch => batch,
            Reduction::RowSums => cols,
            Reduction::ColSums => rows,
        };
        // Any summation order of n terms satisfies |fl(Σx) − Σx| ≤ γ_{n−1} Σ|x| (γ_k ≈ k·u); two
        // more roundings for alpha·s + beta·y. The twin is f64, so its own error is negligible.
        let ctx = format!(
            "case {case}: {kind:?} x {} alpha {alpha} beta {beta}",
            gx.shape_str()
        );
        common::assert_close(
            &got,
            &want,
            |i| 1.01 * (terms as f64 + 2.0) * U * mag[i],
            &ctx,
        );
    }
}

#[test]
fn batch_invariant_col_sums_match_twin_and_standalone_items() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(15);
    for case in 0..24 {
        let batch = if case % 4 == 0 {
            1
        } else {
            common::size(&mut rng, 2, 9)
        };
        let rows = if case % 5 == 4 {
            common::size(&mut rng, 300, 900)
        } else {
            common::size(&mut rng, 1, 70)
        };
        let cols = common::size(&mut rng, 1, 70);
        let shape = (batch, rows, cols);
        let (alpha, beta) = ([1.0f32, -0.5, 2.0][case % 3], [0.0f32, 0.75][case % 2]);
        let layout = [0u8, 1, 2][(case / 2) % 3];
        let item = rows * cols;
        let mut x = common::uniform(&mut rng, batch * item);
        if layout == 1 {
            x = common::repeat(&x[..item], batch);
        }
        let gx = put(gpu, &x, shape, layout);
        let y0 = common::uniform(&mut rng, batch * cols);
        let gy = gpu.upload(&y0, batch, 1, cols).unwrap();
        let d = col_sums(gpu, &gx, &gy, alpha, beta).unwrap();
        gpu.run(&[&d]).unwrap();
        let got = gpu.read(&gy).unwrap();
        let mut want = common::widen(&y0);
        reduce_cpu(
            &common::widen(&x),
            &mut want,
            shape,
            Reduction::ColSums,
            alpha,
            beta,
        );
        let mut mag = abs64(&y0);
        let (a, b) = (alpha.abs(), beta.abs());
        reduce_cpu(&abs64(&x), &mut mag, shape, Reduction::ColSums, a, b);
        let ctx = format!(
            "case {case}: x {} alpha {alpha} beta {beta}",
            gx.shape_str()
        );
        // The bound of `reduce_matches_cpu_twin_on_random_shapes`.
        common::assert_close(
            &got,
            &want,
            |i| 1.01 * (rows as f64 + 2.0) * U * mag[i],
            &ctx,
        );
        // Each item alone, through the plain col_sums at batch 1: the same bits.
        for b in 0..batch {
            let xb = gpu
                .upload(&x[b * item..(b + 1) * item], 1, rows, cols)
                .unwrap();
            let yb = gpu
                .upload(&y0[b * cols..(b + 1) * cols], 1, 1, cols)
                .unwrap();
            gpu.run(&[&col_sums(gpu, &xb, &yb, alpha, beta).unwrap()])
                .unwrap();
            let alone: Vec<u32> = gpu.read(&yb).unwrap().iter().map(|v| v.to_bits()).collect();
            let mine: Vec<u32> = got[b * cols..(b + 1) * cols]
                .iter()
                .map(|v| v.to_bits())
                .collect();
            assert_eq!(
                mine, alone,
                "{ctx}: item {b} differs from its batch-1 launch"
            );
        }
    }
}

#[test]
fn sum_squares_matches_cpu_twin_and_accumulates() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(12);
    for case in 0..24 {
        let batch = if case % 4 == 0 {
            1
        } else {
            common::size(&mut rng, 2, 5)
        };
        // Up to ~25 000 elements per item: several 4096-element chunks and a ragged last one.
        let big = case % 3 == 1;
        let shape = |rng: &mut _| {
            let r = common::size(rng, 1, if big { 150 } else { 40 });
            let c = common::size(rng, 1, if big { 170 } else { 40 });
            (batch, r, c)
        };
        let layout = [0u8, 1, 2][case % 3];
        let accumulate = case % 2 == 1;
        let mut tensors = Vec::new();
        for _ in 0..if accumulate { 2 } else { 1 } {
            let s = shape(&mut rng);
            let item = s.1 * s.2;
            let mut x = common::uniform(&mut rng, batch * item);
            if layout == 1 {
                x = common::repeat(&x[..item], batch);
            }
            tensors.push((put(gpu, &x, s, layout), x));
        }
        // Not accumulating must not read `out`: start it at NaN.
        let out = gpu.upload(&vec![f32::NAN; batch], batch, 1, 1).unwrap();
        let passes: Vec<_> = tensors
            .iter()
            .enumerate()
            .map(|(i, (t, _))| sum_squares(gpu, t, &out, i > 0).unwrap())
            .collect();
        let mut step = Step::new(gpu);
        for p in &passes {
            p.record(&mut step);
        }
        let slot = step.read(&out).unwrap();
        let got = step.finish().unwrap().get(slot).to_vec();

        let mut want = vec![0.0f64; batch];
        let mut n = 0;
        for (i, (t, x)) in tensors.iter().enumerate() {
            sum_squares_cpu(&common::widen(x), &mut want, i > 0);
            n += t.item_len();
        }
        // All terms are ≥ 0, so Σ|x²| = Σx² and any order of n squares-and-adds is within
        // γ_{n+1}·Σx² (plus one addition per accumulated tensor).
        let ctx = format!(
            "case {case}: {:?}",
            tensors.iter().map(|t| t.0.shape_str()).collect::<Vec<_>>()
        );
        common::assert_close(&got, &want, |i| 1.01 * (n as f64 + 3.0) * U * want[i], &ctx);
    }
}

#[test]
fn sum_squares_of_a_million_element_item_is_accurate() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(13);
    let (batch, n) = (2, (1 << 20) + 3);
    let x = common::uniform(&mut rng, batch * n);
    let gx = gpu.upload(&x, batch, 1, n).unwrap();
    let out = gpu.zeros(batch, 1, 1).unwrap();
    let ss = sum_squares(gpu, &gx, &out, false).unwrap();
    assert_eq!(ss.partials().item_len(), n.div_ceil(4096));
    gpu.run(&ss.dispatches()).unwrap();
    let got = gpu.read(&out).unwrap();
    let mut want = vec![0.0f64; batch];
    sum_squares_cpu(&common::widen(&x), &mut want, false);
    // Depth of the GPU summation tree: 16 sequential terms per invocation + 8 tree levels in
    // pass 1, ceil(257/256) = 2 sequential partials + 8 tree levels in pass 2, + 1 for squaring:
    // error ≤ γ_35 · Σx², far tighter than the generic n·u bound.
    common::assert_close(&got, &want, |i| 35.0 * U * want[i], "1M-element item");
}

#[test]
fn results_are_bit_identical_across_runs() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(14);
    let (b, r, c) = (3, 257, 131);
    let x = common::uniform(&mut rng, b * r * c);
    let gx = gpu.upload(&x, b, r, c).unwrap();
    for kind in Reduction::ALL {
        let (yb, yr, yc) = kind.output_shape(b, r, c);
        let ys = [
            gpu.zeros(yb, yr, yc).unwrap(),
            gpu.zeros(yb, yr, yc).unwrap(),
        ];
        let runs: Vec<Vec<u32>> = ys
            .iter()
            .map(|y| {
                let d = reduce(gpu, &gx, y, kind, 1.0, 0.0).unwrap();
                gpu.run(&[&d]).unwrap();
                gpu.read(y).unwrap().iter().map(|v| v.to_bits()).collect()
            })
            .collect();
        assert_eq!(runs[0], runs[1], "{kind:?} differs between runs");
    }
    let n = 300_001;
    let x = common::uniform(&mut rng, 2 * n);
    let gx = gpu.upload(&x, 2, 1, n).unwrap();
    let out = gpu.zeros(2, 1, 1).unwrap();
    let ss = sum_squares(gpu, &gx, &out, false).unwrap();
    let mut runs = Vec::new();
    for _ in 0..3 {
        gpu.run(&ss.dispatches()).unwrap();
        runs.push(
            gpu.read(&out)
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>(),
        );
    }
    assert!(
        runs.iter().all(|r| *r == runs[0]),
        "sum_squares differs between runs: {runs:?}"
    );
}

#[test]
fn non_finite_inputs_propagate() {
    let gpu = gpu_or_skip!();
    let (b, r, c) = (3, 5, 7);
    for (bad, finite_out) in [
        (f32::NAN, false),
        (f32::INFINITY, true),
        (f32::NEG_INFINITY, true),
    ] {
        let mut x = vec![0.25f32; b * r * c];
        // Item 1, row 2, column 3.
        x[(r + 2) * c + 3] = bad;
        let gx = gpu.upload(&x, b, r, c).unwrap();
        for kind in Reduction::ALL {
            let (yb, yr, yc) = kind.output_shape(b, r, c);
            let y = gpu.zeros(yb, yr, yc).unwrap();
            let d = reduce(gpu, &gx, &y, kind, 1.0, 0.0).unwrap();
            gpu.run(&[&d]).unwrap();
            let got = gpu.read(&y).unwrap();
            let hit = match kind {
                Reduction::SumBatch => 2 * c + 3,
                Reduction::RowSums => r + 2,
                Reduction::ColSums => c + 3,
            };
            for (i, v) in got.iter().enumerate() {
                if i == hit {
                    assert!(
                        !v.is_finite() && (v.is_nan() != finite_out),
                        "{kind:?} {bad}: {v}"
                    );
                    if finite_out {
                        assert_eq!(v.signum(), bad.signum(), "{kind:?}");
                    }
                } else {
                    assert!(v.is_finite(), "{kind:?} {bad}: element {i} = {v}");
                }
            }
        }
        let out = gpu.zeros(b, 1, 1).unwrap();
        let ss = sum_squares(gpu, &gx, &out, false).unwrap();
        gpu.run(&ss.dispatches()).unwrap();
        let got = gpu.read(&out).unwrap();
        assert!(got[0].is_finite() && got[2].is_finite(), "{got:?}");
        if finite_out {
            assert_eq!(got[1], f32::INFINITY, "{bad}");
        } else {
            assert!(got[1].is_nan(), "{bad}: {got:?}");
        }
    }
}

#[test]
fn bad_shapes_are_errors_naming_the_shapes() {
    let gpu = gpu_or_skip!();
    let x = gpu.zeros(2, 3, 4).unwrap();
    let y = gpu.zeros(2, 3, 4).unwrap();
    let err = reduce(gpu, &x, &y, Reduction::SumBatch, 1.0, 0.0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[2×3×4]") && err.contains("needs y [1×3×4]"),
        "{err}"
    );
    let y = gpu.zeros(2, 1, 3).unwrap();
    let err = reduce(gpu, &x, &y, Reduction::RowSums, 1.0, 0.0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("needs y [2×3×1]") && err.contains("[2×1×3]"),
        "{err}"
    );
    let shared = gpu.zeros(1, 1, 4).unwrap().broadcast(2).unwrap();
    let err = reduce(gpu, &x, &shared, Reduction::ColSums, 1.0, 0.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("overlap"), "{err}");
    let y = gpu.zeros(2, 1, 4).unwrap();
    assert!(reduce(gpu, &x, &y, Reduction::ColSums, f32::NAN, 0.0).is_err());
    let out = gpu.zeros(3, 1, 1).unwrap();
    let err = sum_squares(gpu, &x, &out, false).err().unwrap().to_string();
    assert!(
        err.contains("needs out [2×1×1]") && err.contains("[3×1×1]"),
        "{err}"
    );
}
