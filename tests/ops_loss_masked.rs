//! The row-weighted (masked) losses — cross-entropy, KL and the half squared error, their
//! gradients, their gradients' tangents and the weighted accuracy — vs their CPU twins on random
//! shapes (rows past the workgroup, one column, broadcast targets, strided operands, all-masked
//! items, NaN in masked rows), the twins vs central differences in f64, and shape errors.

mod common;

use hypermod::gpu::{Device, DeviceError, Tensor};
use hypermod::ops::loss::*;
use rand::rngs::ChaCha8Rng;
use rand::RngExt;

const U: f64 = f32::EPSILON as f64 / 2.0;
const LOSSES: [RowLoss; 3] = [RowLoss::CrossEntropy, RowLoss::Kl, RowLoss::HalfSquared];

fn out(gpu: &Device, batch: usize, rows: usize, cols: usize) -> Tensor {
    common::padded(gpu, &vec![f32::NAN; batch * rows * cols], batch, rows, cols)
}

/// Row weights: masks that are a prefix of ones (demonstrations), random 0/1, an all-zero item,
/// or positive non-binary weights.
fn weights(rng: &mut ChaCha8Rng, batch: usize, rows: usize, case: usize) -> Vec<f32> {
    let mut w = vec![0.0f32; batch * rows];
    for (b, item) in w.chunks_mut(rows).enumerate() {
        match (case + b) % 4 {
            0 => {
                let len = rng.random_range(1..=rows);
                item[..len].fill(1.0);
            }
            1 => item.iter_mut().for_each(|v| {
                *v = if rng.random_range(0..3) == 0 {
                    0.0
                } else {
                    1.0
                }
            }),
            2 if b > 0 => {} // all masked
            _ => item
                .iter_mut()
                .for_each(|v| *v = rng.random_range(0.25f32..2.0)),
        }
    }
    w
}

/// Targets for a row loss: probability rows (one-hot or soft) for the softmax losses, any
/// values for the squared error.
fn targets(rng: &mut ChaCha8Rng, loss: RowLoss, n: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; n];
    for row in t.chunks_mut(cols) {
        match loss {
            RowLoss::HalfSquared => row
                .iter_mut()
                .for_each(|v| *v = rng.random_range(-3.0f32..3.0)),
            _ if rng.random_range(0..2) == 0 => row[rng.random_range(0..cols)] = 1.0,
            _ => {
                row.iter_mut()
                    .for_each(|v| *v = rng.random_range(0.0f32..1.0));
                let s: f32 = row.iter().sum();
                row.iter_mut().for_each(|v| *v /= s.max(1e-3));
            }
        }
    }
    t
}

/// Masked rows' logits become NaN: the kernels must not read them into anything.
fn poison(z: &mut [f32], w: &[f32], cols: usize) {
    for (r, row) in z.chunks_mut(cols).enumerate() {
        if w[r] == 0.0 {
            row.fill(f32::NAN);
        }
    }
}

#[test]
fn masked_losses_match_cpu_twins_on_random_shapes() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(41);
    for case in 0..30 {
        let loss_kind = LOSSES[case % 3];
        let batch = common::size(&mut rng, 1, 5);
        let rows = if case % 5 == 1 {
            common::size(&mut rng, 65, 140)
        } else {
            common::size(&mut rng, 1, 40)
        };
        let cols = if case % 7 == 0 {
            1
        } else {
            common::size(&mut rng, 2, 11)
        };
        let s = LossShape { batch, rows, cols };
        let n = batch * rows * cols;
        let w = weights(&mut rng, batch, rows, case);
        let mut z: Vec<f32> = common::uniform(&mut rng, n)
            .iter()
            .map(|v| 4.0 * v)
            .collect();
        let t = targets(&mut rng, loss_kind, n, cols);
        let mut want_l = vec![0.0; batch];
        let mut want_g = vec![0.0; n];
        let mut want_a = vec![0.0; batch];
        let w64 = common::widen;
        masked_loss_cpu(
            Some(loss_kind),
            &w64(&z),
            &w64(&t),
            &w64(&w),
            s,
            &mut want_l,
            Some(&mut want_g),
            0.5,
        );
        masked_loss_cpu(
            None,
            &w64(&z),
            &w64(&t),
            &w64(&w),
            s,
            &mut want_a,
            None,
            1.0,
        );
        poison(&mut z, &w, cols);
        let strided = case % 3 == 2;
        let input = |v: &[f32], rows: usize, cols: usize| {
            if strided {
                common::padded(gpu, v, batch, rows, cols)
            } else {
                common::put(gpu, v, batch, rows, cols, false)
            }
        };
        let (gz, gt, gw) = (
            input(&z, rows, cols),
            input(&t, rows, cols),
            input(&w, rows, 1),
        );
        let (gl, gg, ga, gv) = (
            out(gpu, batch, 1, 1),
            out(gpu, batch, rows, cols),
            out(gpu, batch, 1, 1),
            out(gpu, batch, 1, 1),
        );
        let ds = [
            masked_loss(gpu, loss_kind, &gz, &gt, &gw, &gl, Some(&gg), 0.5).unwrap(),
            masked_loss(gpu, loss_kind, &gz, &gt, &gw, &gv, None, 0.5).unwrap(),
            masked_accuracy(gpu, &gz, &gt, &gw, &ga).unwrap(),
        ];
        gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
        let ctx = format!("case {case}: {loss_kind:?} {s:?} strided {strided}");
        for t in [&gl, &gg, &ga, &gv] {
            common::assert_gaps_untouched(gpu, t, &ctx);
        }
        let (got_l, got_v) = (gpu.read(&gl).unwrap(), gpu.read(&gv).unwrap());
        assert_eq!(got_l, got_v, "{ctx}: value and value_grad disagree");
        let tol = 8.0 * U * (rows + cols + 24) as f64;
        common::assert_close(
            &got_l,
            &want_l,
            |i| tol * (1.0 + want_l[i].abs()),
            &format!("{ctx} loss"),
        );
        let got_g = gpu.read(&gg).unwrap();
        common::assert_close(
            &got_g,
            &want_g,
            |i| tol * (1e-3 + want_g[i].abs()),
            &format!("{ctx} grad"),
        );
        for (i, g) in got_g.iter().enumerate() {
            if w[i / cols] == 0.0 {
                assert_eq!(*g, 0.0, "{ctx}: masked row {} has gradient {g}", i / cols);
            }
        }
        if loss_kind.classifies() {
            let got_a = gpu.read(&ga).unwrap();
            common::assert_close(&got_a, &want_a, |_| 1e-6, &format!("{ctx} accuracy"));
        }
        // An all-masked item contributes nothing: value 0.
        for b in 0..batch {
            if w[b * rows..(b + 1) * rows].iter().all(|&v| v == 0.0) {
                assert_eq!(got_l[b], 0.0, "{ctx}: all-masked item {b}");
            }
        }
    }
}

#[test]
fn masked_tangents_match_cpu_twin_on_random_shapes() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(42);
    for case in 0..24 {
        let loss_kind = LOSSES[case % 3];
        let batch = common::size(&mut rng, 1, 4);
        let rows = if case % 4 == 1 {
            common::size(&mut rng, 65, 100)
        } else {
            common::size(&mut rng, 1, 30)
        };
        let cols = common::size(&mut rng, 1, 9);
        let s = LossShape { batch, rows, cols };
        let n = batch * rows * cols;
        let w = weights(&mut rng, batch, rows, case);
        let mut z: Vec<f32> = common::uniform(&mut rng, n)
            .iter()
            .map(|v| 4.0 * v)
            .collect();
        let t = targets(&mut rng, loss_kind, n, cols);
        let dz = common::uniform(&mut rng, n);
        let mut want = vec![0.0; n];
        let w64 = common::widen;
        masked_tangent_cpu(
            loss_kind,
            &w64(&z),
            &w64(&t),
            &w64(&w),
            &w64(&dz),
            s,
            &mut want,
            0.5,
        );
        poison(&mut z, &w, cols);
        let strided = case % 2 == 1;
        let input = |v: &[f32], cols: usize| {
            if strided {
                common::padded(gpu, v, batch, rows, cols)
            } else {
                common::put(gpu, v, batch, rows, cols, false)
            }
        };
        let go = out(gpu, batch, rows, cols);
        let d = masked_tangent(
            gpu,
            loss_kind,
            &input(&z, cols),
            &input(&t, cols),
            &input(&w, 1),
            &input(&dz, cols),
            &go,
            0.5,
        )
        .unwrap();
        gpu.run(&[&d]).unwrap();
        let ctx = format!("case {case}: {loss_kind:?} {s:?} strided {strided}");
        common::assert_gaps_untouched(gpu, &go, &ctx);
        let got = gpu.read(&go).unwrap();
        let tol = 8.0 * U * (rows + cols + 24) as f64;
        common::assert_close(&got, &want, |i| tol * (1e-3 + want[i].abs()), &ctx);
    }
}

#[test]
fn masked_twins_match_central_differences_in_f64() {
    let mut rng = common::rng(43);
    for case in 0..12 {
        let loss_kind = LOSSES[case % 3];
        let s = LossShape {
            batch: 2,
            rows: common::size(&mut rng, 1, 6),
            cols: common::size(&mut rng, 1, 5),
        };
        let n = s.batch * s.rows * s.cols;
        let w = common::widen(&weights(&mut rng, s.batch, s.rows, case));
        let z: Vec<f64> = common::widen(&common::uniform(&mut rng, n))
            .iter()
            .map(|v| 2.0 * v)
            .collect();
        let t = common::widen(&targets(&mut rng, loss_kind, n, s.cols));
        let dz = common::widen(&common::uniform(&mut rng, n));
        let scale = 0.7;
        // The scaled sum of the items' losses, and its gradient.
        let total = |z: &[f64]| {
            let mut l = vec![0.0; s.batch];
            masked_loss_cpu(Some(loss_kind), z, &t, &w, s, &mut l, None, 1.0);
            scale * l.iter().sum::<f64>()
        };
        let grad = |z: &[f64]| {
            let (mut l, mut g) = (vec![0.0; s.batch], vec![0.0; n]);
            masked_loss_cpu(Some(loss_kind), z, &t, &w, s, &mut l, Some(&mut g), scale);
            g
        };
        let ctx = format!("case {case}: {loss_kind:?} {s:?}");
        common::assert_fd(
            &format!("{ctx} gradient"),
            &grad(&z),
            &common::fd(1e-6, &z, total),
        );
        // Tangent = directional derivative of the gradient along dz.
        let h = 1e-6;
        let at = |sign: f64| -> Vec<f64> {
            let zz: Vec<f64> = z.iter().zip(&dz).map(|(a, d)| a + sign * h * d).collect();
            grad(&zz)
        };
        let (gp, gm) = (at(1.0), at(-1.0));
        let numeric: Vec<f64> = gp
            .iter()
            .zip(&gm)
            .map(|(a, b)| (a - b) / (2.0 * h))
            .collect();
        let mut analytic = vec![0.0; n];
        masked_tangent_cpu(loss_kind, &z, &t, &w, &dz, s, &mut analytic, scale);
        common::assert_fd(&format!("{ctx} tangent"), &analytic, &numeric);
    }
}

#[test]
fn masked_losses_reject_bad_weights() {
    let gpu = common::native();
    let z = gpu.zeros(2, 3, 4).unwrap();
    let t = gpu.zeros(2, 3, 4).unwrap();
    let l = gpu.zeros(2, 1, 1).unwrap();
    for (what, w) in [
        ("columns", gpu.zeros(2, 3, 2).unwrap()),
        ("rows", gpu.zeros(2, 4, 1).unwrap()),
        ("batch", gpu.zeros(1, 3, 1).unwrap()),
    ] {
        let e = masked_loss(gpu, RowLoss::HalfSquared, &z, &t, &w, &l, None, 1.0).unwrap_err();
        assert!(
            matches!(e, DeviceError::Shape { .. }) && e.to_string().contains("row weights"),
            "{what}: {e}"
        );
        let e = masked_tangent(gpu, RowLoss::Kl, &z, &t, &w, &z, &t, 1.0).unwrap_err();
        assert!(e.to_string().contains("row weights"), "{what}: {e}");
    }
    let w = gpu.zeros(2, 3, 1).unwrap();
    let e = masked_loss(gpu, RowLoss::Kl, &z, &t, &w, &l, None, f32::NAN).unwrap_err();
    assert!(e.to_string().contains("finite"), "{e}");
}
