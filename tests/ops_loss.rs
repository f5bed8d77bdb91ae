//! Loss kernels (cross-entropy, KL, MSE with gradients; accuracy) vs their CPU twins on random
//! shapes (cols 1 and non-powers of two, rows past the workgroup size, batch 1, broadcast
//! targets, one-hot and soft targets, logits up to ±80), the twins' gradients vs central finite
//! differences in f64, and shape errors. The KL gradient's tangent (`kl_tangent`) vs its twin
//! on random shapes and layouts, the twin vs central differences of the gradient, and its errors.

mod common;

use hypermod::gpu::DeviceError;
use hypermod::gpu::{Device, Tensor};
use hypermod::ops::loss::*;
use rand::rngs::ChaCha8Rng;
use rand::RngExt;

/// f32 unit roundoff.
const U: f64 = f32::EPSILON as f64 / 2.0;

/// A NaN-filled, NaN-padded output of `batch × rows × cols` (see [`common::padded`]), so
/// ignoring the output's offset or stride, writing past its end, or leaving an element unwritten
/// shows.
fn out(gpu: &Device, batch: usize, rows: usize, cols: usize) -> Tensor {
    common::padded(gpu, &vec![f32::NAN; batch * rows * cols], batch, rows, cols)
}

/// Random targets: one-hot rows or soft rows (softmax of random scores, some entries exactly 0
/// so KL's 0·log 0 = 0 is exercised). `shared` repeats one item.
fn targets(rng: &mut ChaCha8Rng, s: LossShape, one_hot: bool, shared: bool) -> Vec<f32> {
    let items = if shared { 1 } else { s.batch };
    let mut t = vec![0.0f32; items * s.rows * s.cols];
    for row in t.chunks_mut(s.cols) {
        if one_hot {
            row[rng.random_range(0..s.cols)] = 1.0;
        } else {
            for v in row.iter_mut() {
                *v = if rng.random_range(0.0..1.0) < 0.2 {
                    0.0
                } else {
                    (3.0 * rng.random_range(-1.0f32..1.0)).exp()
                };
            }
            let sum: f32 = row.iter().sum();
            if sum == 0.0 {
                row[0] = 1.0;
            } else {
                row.iter_mut().for_each(|v| *v /= sum);
            }
        }
    }
    if shared {
        common::repeat(&t, s.batch)
    } else {
        t
    }
}

/// Per item, the mean over rows of Σ_c |y_c| (1 + |z_c − max z| + |log softmax_c| + |log y_c|):
/// the magnitude the rounding errors of a softmax loss scale with.
fn softmax_magnitude(z: &[f32], y: &[f32], s: LossShape) -> Vec<f64> {
    let mut mag = vec![0.0; s.batch];
    for (i, (zr, yr)) in z.chunks(s.cols).zip(y.chunks(s.cols)).enumerate() {
        let m = zr.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
        let log_s = zr.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
        let row: f64 = zr
            .iter()
            .zip(yr)
            .map(|(&zc, &yc)| {
                let x = zc as f64 - m;
                let ly = if yc > 0.0 {
                    (yc as f64).ln().abs()
                } else {
                    0.0
                };
                (yc as f64).abs() * (1.0 + x.abs() + (x - log_s).abs() + ly)
            })
            .sum();
        mag[i / s.rows] += row / s.rows as f64;
    }
    mag
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Which {
    Ce,
    Kl,
    Mse,
}

fn launch(
    gpu: &Device,
    w: Which,
    z: &Tensor,
    t: &Tensor,
    l: &Tensor,
    g: Option<&Tensor>,
    scale: f32,
) -> hypermod::gpu::error::Result<hypermod::gpu::Dispatch> {
    match w {
        Which::Ce => softmax_cross_entropy(gpu, z, t, l, g, scale),
        Which::Kl => kl_divergence(gpu, z, t, l, g, scale),
        Which::Mse => mse(gpu, z, t, l, g, scale),
    }
}

fn twin(
    w: Which,
    z: &[f64],
    t: &[f64],
    s: LossShape,
    l: &mut [f64],
    g: Option<&mut [f64]>,
    scale: f64,
) {
    match w {
        Which::Ce => softmax_cross_entropy_cpu(z, t, s, l, g, scale),
        Which::Kl => kl_divergence_cpu(z, t, s, l, g, scale),
        Which::Mse => mse_cpu(z, t, s, l, g, scale),
    }
}

/// How one loss launch is set up.
struct Case<'a> {
    s: LossShape,
    /// Targets uploaded as one broadcast item.
    shared_t: bool,
    with_grad: bool,
    ctx: &'a str,
}

/// Runs one loss on the GPU and checks value and gradient against the f64 twin.
fn check(gpu: &Device, w: Which, z: &[f32], t: &[f32], case: &Case) {
    let &Case {
        s,
        shared_t,
        with_grad,
        ctx,
    } = case;
    let scale = 0.5f32;
    let gz = common::put(gpu, z, s.batch, s.rows, s.cols, false);
    let gt = common::put(gpu, t, s.batch, s.rows, s.cols, shared_t);
    let gl = out(gpu, s.batch, 1, 1);
    let gg = out(gpu, s.batch, s.rows, s.cols);
    let d = launch(gpu, w, &gz, &gt, &gl, with_grad.then_some(&gg), scale).unwrap();
    gpu.run(&[&d]).unwrap();
    let got_l = gpu.read(&gl).unwrap();
    common::assert_gaps_untouched(gpu, &gl, &format!("{ctx} {w:?} loss"));
    common::assert_gaps_untouched(gpu, &gg, &format!("{ctx} {w:?} grad"));

    let mut want_l = vec![0.0; s.batch];
    let mut want_g = vec![0.0; z.len()];
    let (z64, t64) = (common::widen(z), common::widen(t));
    twin(
        w,
        &z64,
        &t64,
        s,
        &mut want_l,
        Some(&mut want_g),
        scale as f64,
    );
    let (rows, cols) = (s.rows as f64, s.cols as f64);
    let ctx = format!("{ctx} {w:?}");
    match w {
        Which::Ce | Which::Kl => {
            // log softmax_c = (z_c − m) − log Σ exp(z − m): the subtraction rounds at u·|z − m|;
            // the sum of cols exps (each within a few ulps; Vulkan allows (3 + 2|x|) ulp, but
            // eˣ(3 + 2|x|) ≤ 3 for x ≤ 0 so the sum is off by ≤ (3 + cols)u relative) and its log
            // (3 ulp, or 2⁻²¹ ≈ 8u absolute near 1) add ≤ (cols + 12)u absolute; weighting by y
            // and summing cols terms, then averaging rows row values, adds (cols + rows)u of the
            // magnitudes. 2u(cols + rows + 24)·magnitude bounds all of it.
            let mag = softmax_magnitude(z, t, s);
            common::assert_close(
                &got_l,
                &want_l,
                |i| 2.0 * U * (cols + rows + 24.0) * mag[i],
                &format!("{ctx} loss"),
            );
        }
        Which::Mse => {
            // Non-negative terms: per-row fma chain (cols roundings), rows-long sum, × 1/(rows·cols):
            // relative error ≤ (cols + rows + 2)u, doubled.
            common::assert_close(
                &got_l,
                &want_l,
                |i| 2.0 * U * (cols + rows + 4.0) * want_l[i],
                &format!("{ctx} loss"),
            );
        }
    }
    if with_grad {
        let got_g = gpu.read(&gg).unwrap();
        let gs = scale as f64 / rows;
        match w {
            Which::Ce | Which::Kl => {
                // softmax_c · Σy − y_c: exp(log softmax) carries the log-softmax error above
                // ((cols + 12)u absolute, e^x|x| ≤ 1 tames the |z − m| part) times softmax ≤ 1,
                // the exp's own 3u, and the Σy product and subtraction a few u.
                let tsum: Vec<f64> = t
                    .chunks(s.cols)
                    .map(|r| r.iter().map(|&v| v.abs() as f64).sum())
                    .collect();
                common::assert_close(
                    &got_g,
                    &want_g,
                    |i| gs * 2.0 * U * (cols + 24.0) * (1.0 + tsum[i / s.cols]),
                    &format!("{ctx} grad"),
                );
            }
            Which::Mse => {
                // 2·scale/(rows·cols) (2 host roundings) · (z − y) (1) and the product (1).
                common::assert_close(
                    &got_g,
                    &want_g,
                    |i| 8.0 * U * want_g[i].abs(),
                    &format!("{ctx} grad"),
                );
            }
        }
    }
}

#[test]
fn losses_match_cpu_twins_on_random_shapes() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(11);
    for case in 0..24 {
        let batch = if case % 5 == 0 {
            1
        } else {
            common::size(&mut rng, 1, 5)
        };
        // Rows past the 64-wide workgroup make an invocation sum more than one row.
        let rows = if case % 6 == 1 {
            common::size(&mut rng, 65, 70)
        } else {
            common::size(&mut rng, 1, 40)
        };
        let cols = match case % 8 {
            0 => 1,
            3 => 2,
            _ => common::size(&mut rng, 3, 37),
        };
        let s = LossShape { batch, rows, cols };
        let spread = [1.0f32, 8.0, 80.0][case % 3];
        let z: Vec<f32> = common::uniform(&mut rng, batch * rows * cols)
            .iter()
            .map(|v| v * spread)
            .collect();
        let one_hot = case % 2 == 0;
        let shared_t = case % 4 == 1;
        let with_grad = case % 7 != 4;
        let t = targets(&mut rng, s, one_hot, shared_t);
        let ctx = format!("case {case}: {s:?} spread {spread} one-hot {one_hot} shared targets {shared_t} grad {with_grad}");
        let c = Case {
            s,
            shared_t,
            with_grad,
            ctx: &ctx,
        };
        check(gpu, Which::Ce, &z, &t, &c);
        check(gpu, Which::Kl, &z, &t, &c);
        // MSE against dense random targets (regression).
        let y = common::data(&mut rng, batch, rows * cols, shared_t);
        check(gpu, Which::Mse, &z, &y, &c);

        // Accuracy: argmax comparisons on identical f32 inputs are exact; acc = count · (1/rows)
        // rounds twice on the GPU: 2u relative, doubled.
        let gz = common::put(gpu, &z, s.batch, s.rows, s.cols, false);
        let gt = common::put(gpu, &t, s.batch, s.rows, s.cols, shared_t);
        let ga = out(gpu, batch, 1, 1);
        gpu.run(&[&accuracy(gpu, &gz, &gt, &ga).unwrap()]).unwrap();
        common::assert_gaps_untouched(gpu, &ga, &format!("{ctx} accuracy"));
        let got = gpu.read(&ga).unwrap();
        let mut want = vec![0.0; batch];
        accuracy_cpu(&common::widen(&z), &common::widen(&t), s, &mut want);
        common::assert_close(
            &got,
            &want,
            |i| 4.0 * U * want[i],
            &format!("{ctx} accuracy"),
        );
    }
}

#[test]
fn extreme_logits_stay_finite_and_exact() {
    let gpu = gpu_or_skip!();
    // Row 0: the target sits on the smallest logit (loss ≈ 160), row 1 on the largest (≈ 0),
    // row 2: three-way tie at +80 with a soft target. A naive exp(80) ≈ 5.5e34 per term would
    // overflow the sum; the max-shifted form stays exact.
    let s = LossShape {
        batch: 1,
        rows: 3,
        cols: 4,
    };
    let z = [
        80.0, -80.0, 0.0, 80.0, 80.0, -80.0, 0.0, 80.0, 80.0, 80.0, -80.0, 80.0,
    ];
    let t = [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.25, 0.25, 0.0, 0.5];
    for w in [Which::Ce, Which::Kl] {
        let c = Case {
            s,
            shared_t: false,
            with_grad: true,
            ctx: "extreme",
        };
        check(gpu, w, &z, &t, &c);
    }
    let mut want = [0.0f64];
    softmax_cross_entropy_cpu(
        &common::widen(&z),
        &common::widen(&t),
        s,
        &mut want,
        None,
        1.0,
    );
    let row0 = 160.0 + 2f64.ln();
    let row1 = 2f64.ln();
    let row2 = 3f64.ln();
    assert!(
        (want[0] - (row0 + row1 + row2) / 3.0).abs() < 1e-9,
        "{want:?}"
    );
}

#[test]
fn accuracy_breaks_ties_towards_the_lowest_index() {
    let gpu = gpu_or_skip!();
    let s = LossShape {
        batch: 2,
        rows: 2,
        cols: 3,
    };
    // Item 0: logits tie between 0 and 2 (→ 0) vs target 0 (hit); tie 1/2 (→ 1) vs target 2 (miss).
    // Item 1: all equal (→ 0) vs a target tie 0/1 (→ 0, hit); argmax 2 vs target 2 (hit).
    let z = [1.0, 0.0, 1.0, 0.0, 2.0, 2.0, 5.0, 5.0, 5.0, 0.0, 0.0, 3.0];
    let t = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.0, 0.0, 0.0, 1.0];
    let (gz, gt, ga) = (
        common::put(gpu, &z, s.batch, s.rows, s.cols, false),
        common::put(gpu, &t, s.batch, s.rows, s.cols, false),
        out(gpu, 2, 1, 1),
    );
    gpu.run(&[&accuracy(gpu, &gz, &gt, &ga).unwrap()]).unwrap();
    assert_eq!(gpu.read(&ga).unwrap(), vec![0.5, 1.0]);
    let mut want = [0.0f64; 2];
    accuracy_cpu(&common::widen(&z), &common::widen(&t), s, &mut want);
    assert_eq!(want, [0.5, 1.0]);
}

#[test]
fn twin_gradients_match_central_differences_in_f64() {
    let mut rng = common::rng(3);
    let s = LossShape {
        batch: 2,
        rows: 3,
        cols: 5,
    };
    let n = s.batch * s.rows * s.cols;
    let z = common::widen(
        &common::uniform(&mut rng, n)
            .iter()
            .map(|v| 3.0 * v)
            .collect::<Vec<_>>(),
    );
    let soft = common::widen(&targets(&mut rng, s, false, false));
    let dense = common::widen(&common::uniform(&mut rng, n));
    let scale = 0.25;
    for (w, t) in [(Which::Ce, &soft), (Which::Kl, &soft), (Which::Mse, &dense)] {
        let mut l = vec![0.0; s.batch];
        let mut g = vec![0.0; n];
        twin(w, &z, t, s, &mut l, Some(&mut g), scale);
        let h = 1e-5;
        for i in 0..n {
            let item = i / (s.rows * s.cols);
            let at = |d: f64| {
                let mut zp = z.clone();
                zp[i] += d;
                let mut lp = vec![0.0; s.batch];
                twin(w, &zp, t, s, &mut lp, None, scale);
                lp[item]
            };
            let fd = scale * (at(h) - at(-h)) / (2.0 * h);
            // Central differences: O(h²) truncation (≈ 1e-10 here) plus ~1e-16/h cancellation.
            assert!(
                (fd - g[i]).abs() < 1e-8,
                "{w:?} element {i}: twin {} vs finite difference {fd}",
                g[i]
            );
            // The other items' losses do not depend on this item's logits.
            let other = 1 - item;
            let mut zp = z.clone();
            zp[i] += 0.1;
            let mut lp = vec![0.0; s.batch];
            twin(w, &zp, t, s, &mut lp, None, scale);
            assert_eq!(lp[other], l[other]);
        }
    }
}

#[test]
fn loss_rejects_bad_shapes_and_arguments() {
    let gpu = gpu_or_skip!();
    let z = gpu.zeros(2, 3, 4).unwrap();
    let t = gpu.zeros(2, 3, 5).unwrap();
    let l = gpu.zeros(2, 1, 1).unwrap();
    let err = softmax_cross_entropy(gpu, &z, &t, &l, None, 1.0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("softmax_cross_entropy")
            && err.contains("logits [2×3×4]")
            && err.contains("targets [2×3×5]"),
        "{err}"
    );
    let g = gpu.zeros(2, 4, 3).unwrap();
    let err = kl_divergence(gpu, &z, &z.clone(), &l, Some(&g), 1.0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("grad must have the logits' shape") && err.contains("grad [2×4×3]"),
        "{err}"
    );
    let l2 = gpu.zeros(2, 1, 2).unwrap();
    let err = mse(gpu, &z, &z.clone(), &l2, None, 1.0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("loss must be [batch×1×1]") && err.contains("loss [2×1×2]"),
        "{err}"
    );
    let l3 = gpu.zeros(3, 1, 1).unwrap();
    let err = accuracy(gpu, &z, &z.clone(), &l3).unwrap_err().to_string();
    assert!(
        err.contains("different batch sizes") && err.contains("[3×1×1]"),
        "{err}"
    );
    let shared_l = gpu.zeros(1, 1, 1).unwrap().broadcast(2).unwrap();
    let err = mse(gpu, &z, &z.clone(), &shared_l, None, 1.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("overlap"), "{err}");
    let e = gpu.zeros(2, 0, 4).unwrap();
    let err = softmax_cross_entropy(gpu, &e, &e.clone(), &l, None, 1.0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("at least one row") && err.contains("[2×0×4]"),
        "{err}"
    );
    assert!(matches!(
        softmax_cross_entropy(
            gpu,
            &z,
            &z.clone(),
            &l,
            Some(&g.reshape(3, 4).unwrap()),
            f32::NAN
        ),
        Err(DeviceError::InvalidArgument { .. })
    ));
}

#[test]
fn repeated_launches_are_bitwise_identical() {
    let gpu = gpu_or_skip!();
    // Fixed reduction order: the same inputs give the same bits, launch after launch.
    let mut rng = common::rng(5);
    let s = LossShape {
        batch: 3,
        rows: 70,
        cols: 9,
    };
    let z = common::uniform(&mut rng, 3 * 70 * 9);
    let t = targets(&mut rng, s, false, false);
    let (gz, gt) = (
        common::put(gpu, &z, s.batch, s.rows, s.cols, false),
        common::put(gpu, &t, s.batch, s.rows, s.cols, false),
    );
    let (gl, gg) = (out(gpu, 3, 1, 1), out(gpu, 3, 70, 9));
    let d = kl_divergence(gpu, &gz, &gt, &gl, Some(&gg), 1.0).unwrap();
    let mut first = None;
    for _ in 0..3 {
        gpu.run(&[&d]).unwrap();
        let bits: Vec<u32> = [gpu.read(&gl).unwrap(), gpu.read(&gg).unwrap()]
            .concat()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(*first.get_or_insert_with(|| bits.clone()), bits);
    }
}

/// Soft or one-hot targets whose rows are scaled by 0.5–1.5 in about a third of the cases, so
/// that Σy ≠ 1 and the tangent's Σy factor shows.
fn scaled_targets(rng: &mut ChaCha8Rng, s: LossShape, one_hot: bool, shared: bool) -> Vec<f32> {
    let mut t = targets(rng, s, one_hot, shared);
    if rng.random_range(0..3) == 0 {
        let f = rng.random_range(0.5f32..1.5);
        t.iter_mut().for_each(|v| *v *= f);
    }
    t
}

/// Per element, the bound on |f32 kernel − exact| of `kl_tangent`'s `k·(p_c·dz_c − p_c·(p·dz))`,
/// `k = scale·Σy/rows`: p carries the log-softmax error of the gradient test (≤ 2u(cols + 24)
/// relative, the exp's own included, plus 2u·|z − m| for the exp's argument), p·dz sums cols products (cols·u of Σp|dz|), k rounds
/// (cols + 2)u (Σy of non-negative terms, the host's scale); the products and the difference a
/// few u. Flushed or denormal probabilities (< 2⁻¹²⁶) add their absolute size.
fn tangent_bounds(z: &[f32], y: &[f32], dz: &[f32], s: LossShape, scale: f64) -> Vec<f64> {
    let cols = s.cols as f64;
    let rel_p = 2.0 * U * (cols + 24.0);
    let tiny = 4.0 * f32::MIN_POSITIVE as f64;
    let mut tol = vec![0.0; z.len()];
    let rows = z
        .chunks(s.cols)
        .zip(y.chunks(s.cols))
        .zip(dz.chunks(s.cols));
    for (r, ((zr, yr), dr)) in rows.enumerate() {
        let m = zr.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
        let p: Vec<f64> = zr.iter().map(|&v| (v as f64 - m).exp()).collect();
        let sum: f64 = p.iter().sum();
        let p: Vec<f64> = p.iter().map(|v| v / sum).collect();
        let k = scale * yr.iter().map(|&v| v as f64).sum::<f64>() / s.rows as f64;
        let pdz: f64 = p.iter().zip(dr).map(|(p, &d)| p * (d as f64).abs()).sum();
        for c in 0..s.cols {
            // exp(z − m − log s) amplifies the rounding of its argument by |z − m|: with logits
            // spread over ±80, a probability near e⁻⁷⁵ is only good to ~75u relative.
            let rel_p = rel_p + 2.0 * U * (zr[c] as f64 - m).abs();
            let pd = p[c] * (dr[c] as f64).abs();
            tol[r * s.cols + c] = k.abs()
                * ((rel_p + (cols + 8.0) * U) * (pd + p[c] * pdz)
                    + p[c] * (rel_p + (cols + 2.0) * U) * pdz
                    + tiny * (1.0 + pdz + (dr[c] as f64).abs()));
        }
    }
    tol
}

#[test]
fn kl_tangent_matches_cpu_twin_on_random_shapes() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(13);
    for case in 0..24 {
        let batch = if case % 5 == 0 {
            1
        } else {
            common::size(&mut rng, 1, 5)
        };
        // Rows past the 64-wide workgroup make an invocation handle more than one row.
        let rows = if case % 6 == 1 {
            common::size(&mut rng, 65, 130)
        } else {
            common::size(&mut rng, 1, 40)
        };
        let cols = match case % 8 {
            0 => 1,
            3 => 2,
            5 => 257,
            _ => common::size(&mut rng, 3, 37),
        };
        let s = LossShape { batch, rows, cols };
        let n = batch * rows * cols;
        let spread = [1.0f32, 8.0, 80.0][case % 3];
        let z: Vec<f32> = common::uniform(&mut rng, n)
            .iter()
            .map(|v| v * spread)
            .collect();
        let (one_hot, shared_t, shared_d) = (case % 2 == 0, case % 4 == 1, case % 7 == 3);
        let t = scaled_targets(&mut rng, s, one_hot, shared_t);
        let dz = common::data(&mut rng, batch, rows * cols, shared_d);
        let strided = case % 3 == 2;
        let input = |v: &[f32], shared: bool| {
            if strided && !shared {
                common::padded(gpu, v, batch, rows, cols)
            } else {
                common::put(gpu, v, batch, rows, cols, shared)
            }
        };
        let (gz, gt, gd) = (input(&z, false), input(&t, shared_t), input(&dz, shared_d));
        let go = out(gpu, batch, rows, cols);
        let scale = 0.5f32;
        let d = kl_tangent(gpu, &gz, &gt, &gd, &go, scale).unwrap();
        gpu.run(&[&d]).unwrap();
        let ctx = format!(
            "case {case}: {s:?} spread {spread} one-hot {one_hot} shared targets {shared_t} \
             shared dz {shared_d} strided {strided}"
        );
        common::assert_gaps_untouched(gpu, &go, &ctx);
        let got = gpu.read(&go).unwrap();
        let mut want = vec![0.0; n];
        let w = common::widen;
        kl_tangent_cpu(&w(&z), &w(&t), &w(&dz), s, &mut want, scale as f64);
        let tol = tangent_bounds(&z, &t, &dz, s, scale as f64);
        common::assert_close(&got, &want, |i| tol[i], &ctx);
    }
}

#[test]
fn kl_tangent_twin_matches_central_differences_of_the_gradient() {
    let mut rng = common::rng(14);
    for (batch, rows, cols, spread) in [(2, 3, 5, 3.0f32), (1, 4, 1, 1.0), (3, 2, 9, 8.0)] {
        let s = LossShape { batch, rows, cols };
        let n = batch * rows * cols;
        let z = common::widen(
            &common::uniform(&mut rng, n)
                .iter()
                .map(|v| spread * v)
                .collect::<Vec<_>>(),
        );
        let mut t = common::widen(&targets(&mut rng, s, false, false));
        t.iter_mut().take(cols).for_each(|v| *v *= 0.7); // one row with Σy ≠ 1
        let dz = common::widen(&common::uniform(&mut rng, n));
        let scale = 0.25;
        let mut tangent = vec![0.0; n];
        kl_tangent_cpu(&z, &t, &dz, s, &mut tangent, scale);
        let grad_at = |step: f64| {
            let zs: Vec<f64> = z.iter().zip(&dz).map(|(z, d)| z + step * d).collect();
            let (mut l, mut g) = (vec![0.0; batch], vec![0.0; n]);
            kl_divergence_cpu(&zs, &t, s, &mut l, Some(&mut g), scale);
            g
        };
        let h = 1e-5;
        let (up, down) = (grad_at(h), grad_at(-h));
        for i in 0..n {
            let fd = (up[i] - down[i]) / (2.0 * h);
            // O(h²) truncation (≈ 1e-10 at these logits) plus ~1e-16/h cancellation.
            assert!(
                (fd - tangent[i]).abs() < 1e-8,
                "{s:?} element {i}: twin {} vs finite difference {fd}",
                tangent[i]
            );
        }
    }
}

#[test]
fn kl_tangent_rejects_bad_shapes_and_arguments() {
    let gpu = gpu_or_skip!();
    let z = || gpu.zeros(2, 3, 4).unwrap();
    let (logits, t, dz, o) = (z(), z(), z(), z());
    assert!(kl_tangent(gpu, &logits, &t, &dz, &o, 1.0).is_ok());
    let shape_err =
        |r: hypermod::gpu::error::Result<hypermod::gpu::Dispatch>, what: &[&str]| match r {
            Err(e @ DeviceError::Shape { .. }) => {
                let m = e.to_string();
                assert!(what.iter().all(|w| m.contains(w)), "{m}");
            }
            other => panic!("{what:?}: expected a shape error, got {other:?}"),
        };
    let wide = gpu.zeros(2, 3, 5).unwrap();
    shape_err(
        kl_tangent(gpu, &logits, &t, &wide, &o, 1.0),
        &[
            "kl_tangent",
            "dz must have the logits' shape",
            "dz [2×3×5]",
            "logits [2×3×4]",
        ],
    );
    shape_err(
        kl_tangent(gpu, &logits, &t, &dz, &wide, 1.0),
        &["out must have the logits' shape", "out [2×3×5]"],
    );
    shape_err(
        kl_tangent(gpu, &logits, &wide, &dz, &o, 1.0),
        &["targets must have the logits' shape"],
    );
    let three = gpu.zeros(3, 3, 4).unwrap();
    shape_err(
        kl_tangent(gpu, &logits, &t, &three, &o, 1.0),
        &["different batch sizes", "dz [3×3×4]"],
    );
    let shared = gpu.zeros(1, 3, 4).unwrap().broadcast(2).unwrap();
    shape_err(
        kl_tangent(gpu, &logits, &t, &dz, &shared, 1.0),
        &["out", "overlap"],
    );
    // Broadcast inputs are fine; an output on an input's buffer is not.
    assert!(kl_tangent(gpu, &logits, &shared, &shared, &o, 1.0).is_ok());
    shape_err(
        kl_tangent(gpu, &logits, &t, &dz, &dz, 1.0),
        &["share a buffer"],
    );
    let e = gpu.zeros(2, 0, 4).unwrap();
    shape_err(
        kl_tangent(
            gpu,
            &e,
            &e.clone(),
            &e.clone(),
            &gpu.zeros(2, 0, 4).unwrap(),
            1.0,
        ),
        &["at least one row"],
    );
    assert!(matches!(
        kl_tangent(gpu, &logits, &t, &dz, &o, f32::INFINITY),
        Err(DeviceError::InvalidArgument { .. })
    ));
}
