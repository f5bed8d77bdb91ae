//! Element-wise kernels vs their CPU twins on random shapes (odd sizes, batch 1, stride-0
//! broadcast inputs, offset/strided outputs, every activation), plus shape and argument errors.

mod common;

use hypermod::gpu::DeviceError;
use hypermod::gpu::{Device, Tensor};
use hypermod::ops::elementwise::*;
use hypermod::ops::Activation;
use rand::RngExt;

/// f32 unit roundoff.
const U: f64 = f32::EPSILON as f64 / 2.0;

/// An output tensor holding `y0`: NaN-padded at an offset when `padded` (see
/// [`common::padded`]), so a kernel that ignores the output's offset or stride, or writes past
/// its end, is caught; packed otherwise.
fn put_out(
    gpu: &Device,
    y0: &[f32],
    batch: usize,
    rows: usize,
    cols: usize,
    padded: bool,
) -> Tensor {
    if padded {
        common::padded(gpu, y0, batch, rows, cols)
    } else {
        common::put(gpu, y0, batch, rows, cols, false)
    }
}

/// Runs one launch and reads its output back, checking a padded output's gaps too.
fn run_read(
    gpu: &Device,
    d: hypermod::gpu::error::Result<hypermod::gpu::Dispatch>,
    out: &Tensor,
) -> Vec<f32> {
    gpu.run(&[&d.unwrap()]).unwrap();
    if out.offset() > 0 {
        common::assert_gaps_untouched(gpu, out, &format!("{out:?}"));
    }
    gpu.read(out).unwrap()
}

#[test]
fn elementwise_matches_cpu_twins_on_random_shapes() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(7);
    for case in 0..24 {
        let batch = if case % 5 == 0 {
            1
        } else {
            common::size(&mut rng, 1, 5)
        };
        let rows = common::size(&mut rng, 1, 40);
        let cols = if case % 6 == 1 {
            1
        } else {
            common::size(&mut rng, 1, 70)
        };
        let len = rows * cols;
        let act = Activation::ALL[case % 3];
        let share_x = case % 3 == 1;
        let share_b = case % 4 == 2;
        let padded = case % 4 == 3;
        let alpha: f32 = [0.5, -1.75, 3.0][case % 3];
        let ctx = format!(
            "case {case}: batch {batch} {rows}×{cols} {act:?} shared x {share_x} shared b {share_b} padded {padded}"
        );
        let x = common::data(&mut rng, batch, len, share_x);
        let y0 = common::data(&mut rng, batch, len, false);
        let gx = common::put(gpu, &x, batch, rows, cols, share_x);
        let wide = common::widen;

        // Forward. Identity and ReLU are exact; ELU's eˣ − 1 on x ≤ 0 (eˣ ≤ 1) carries the
        // GPU exp error (Vulkan allows 3 + 2|x| ulp, |x| ≤ 1 here) plus the subtraction's
        // rounding: 8u absolute covers both.
        let gy = put_out(gpu, &y0, batch, rows, cols, padded);
        let got = run_read(gpu, activation_forward(gpu, &gx, &gy, act), &gy);
        let mut want = vec![0.0; x.len()];
        activation_forward_cpu(&wide(&x), &mut want, act);
        let tol = if act == Activation::Elu { 8.0 * U } else { 0.0 };
        common::assert_close(&got, &want, |_| tol, &format!("{ctx} forward"));

        // Backward from the GPU's own activation output (it is what training stores), with a
        // possibly broadcast dy. dy·(y + 1) rounds twice: 2u·|dy|(|y| + 1), doubled for margin.
        let act_y = got;
        let dy = common::data(&mut rng, batch, len, share_b);
        let gdy = common::put(gpu, &dy, batch, rows, cols, share_b);
        let gay = gpu.upload(&act_y, batch, rows, cols).unwrap();
        let gdx = put_out(gpu, &y0, batch, rows, cols, padded);
        let got = run_read(gpu, activation_backward(gpu, &gdy, &gay, &gdx, act), &gdx);
        let mut want = vec![0.0; x.len()];
        activation_backward_cpu(&wide(&dy), &wide(&act_y), &mut want, act);
        common::assert_close(
            &got,
            &want,
            |i| 4.0 * U * (dy[i].abs() as f64) * (act_y[i].abs() as f64 + 1.0),
            &format!("{ctx} backward"),
        );

        // The backward's tangent from the same output: its tangent ẏ, dy and ḋy (possibly
        // broadcast). act'·ḋy rounds as the backward; ELU's curvature term ẏ·dy twice more.
        let y_dot = common::uniform(&mut rng, x.len());
        let dy_dot = common::data(&mut rng, batch, len, share_x);
        let g_y_dot = gpu.upload(&y_dot, batch, rows, cols).unwrap();
        let g_dy_dot = common::put(gpu, &dy_dot, batch, rows, cols, share_x);
        let gdx = put_out(gpu, &y0, batch, rows, cols, padded);
        let launch = activation_tangent_backward(gpu, &g_dy_dot, (&gay, &g_y_dot), &gdy, &gdx, act);
        let got = run_read(gpu, launch, &gdx);
        let mut want = vec![0.0; x.len()];
        let (ay, yd) = (wide(&act_y), wide(&y_dot));
        activation_tangent_backward_cpu(&wide(&dy_dot), (&ay, &yd), &wide(&dy), &mut want, act);
        let tol = |i: usize| {
            let (a, y) = (dy_dot[i].abs() as f64, act_y[i].abs() as f64 + 1.0);
            6.0 * U * (a * y + (y_dot[i] * dy[i]).abs() as f64) + 1e-30
        };
        common::assert_close(&got, &want, tol, &format!("{ctx} tangent backward"));

        // Bias add (in place), bias possibly broadcast: one rounding of the sum.
        let bias = common::data(&mut rng, batch, cols, share_b);
        let gb = common::put(gpu, &bias, batch, 1, cols, share_b);
        let gy = put_out(gpu, &y0, batch, rows, cols, padded);
        let got = run_read(gpu, bias_add(gpu, &gy, &gb), &gy);
        let mut want = wide(&y0);
        bias_add_cpu(&mut want, &wide(&bias), cols);
        common::assert_close(
            &got,
            &want,
            |i| 2.0 * U * want[i].abs(),
            &format!("{ctx} bias"),
        );

        // Scale (in place): one rounding.
        let gy = put_out(gpu, &y0, batch, rows, cols, padded);
        let got = run_read(gpu, scale(gpu, &gy, alpha), &gy);
        let mut want = wide(&y0);
        scale_cpu(&mut want, alpha as f64);
        common::assert_close(
            &got,
            &want,
            |i| 2.0 * U * want[i].abs(),
            &format!("{ctx} scale"),
        );

        // axpy: one rounding if fused, two otherwise: 2u(|y| + |αx|).
        let gy = put_out(gpu, &y0, batch, rows, cols, padded);
        let got = run_read(gpu, axpy(gpu, alpha, &gx, &gy), &gy);
        let mut want = wide(&y0);
        axpy_cpu(alpha as f64, &wide(&x), &mut want);
        common::assert_close(
            &got,
            &want,
            |i| 2.0 * U * (y0[i].abs() as f64 + (alpha * x[i]).abs() as f64),
            &format!("{ctx} axpy"),
        );

        // Copy (broadcast x → per-item y, the meta-init case) and fill: exact.
        let gy = put_out(gpu, &y0, batch, rows, cols, padded);
        let got = run_read(gpu, copy(gpu, &gx, &gy), &gy);
        let mut want = vec![0.0; x.len()];
        copy_cpu(&wide(&x), &mut want);
        common::assert_close(&got, &want, |_| 0.0, &format!("{ctx} copy"));

        let value = rng.random_range(-4.0f32..4.0);
        let gy = put_out(gpu, &y0, batch, rows, cols, padded);
        let got = run_read(gpu, fill(gpu, &gy, value), &gy);
        let mut want = wide(&y0);
        fill_cpu(&mut want, value as f64);
        common::assert_close(&got, &want, |_| 0.0, &format!("{ctx} fill"));
    }
}

/// The tangent of the activation backward is the derivative of `backward(dy, act(x))` along
/// (ẋ, ḋy): against dual numbers (exact) and central finite differences in f64, on both sides
/// of every kink (x = 0 takes the ELU branch, as the forward does).
#[test]
fn activation_tangent_backward_is_the_derivative_of_the_backward() {
    use hypermod::ops::dual::Dual;
    let mut rng = common::rng(19);
    for act in Activation::ALL {
        for k in 0..40 {
            let x: f64 = if k == 0 {
                0.0
            } else {
                rng.random_range(-3.0..3.0)
            };
            let (xd, dy, dyd): (f64, f64, f64) = (
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
            );
            let y = act.forward(x);
            let y_dot = act.backward(xd, y); // ẏ = act'(x)·ẋ
            let got = act.tangent_backward(dyd, (y, y_dot), dy);
            let dual = act.backward(Dual::new(dy, dyd), act.forward(Dual::new(x, xd)));
            assert!(
                (got - dual.d).abs() < 1e-12 * (1.0 + got.abs()),
                "{act:?} at x = {x}: {got} vs dual {}",
                dual.d
            );
            let h = 1e-6;
            let f = |s: f64| act.backward(dy + s * dyd, act.forward(x + s * xd));
            // A finite difference across a kink is meaningless: skip points within h of it.
            if x.abs() > 10.0 * h {
                let fd = (f(h) - f(-h)) / (2.0 * h);
                assert!(
                    (got - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                    "{act:?} at x = {x}: {got} vs finite differences {fd}"
                );
            }
        }
    }
}

#[test]
fn fill_overwrites_nan_and_empty_tensors_are_no_ops() {
    let gpu = gpu_or_skip!();
    let y = gpu.upload(&[f32::NAN; 7], 1, 1, 7).unwrap();
    assert_eq!(run_read(gpu, fill(gpu, &y, 2.5), &y), vec![2.5; 7]);
    let e = gpu.zeros(3, 0, 4).unwrap();
    assert!(run_read(gpu, scale(gpu, &e, 2.0), &e).is_empty());
}

#[test]
fn elementwise_rejects_bad_shapes_and_arguments() {
    let gpu = gpu_or_skip!();
    let x = gpu.zeros(2, 3, 4).unwrap();
    let y = gpu.zeros(2, 4, 3).unwrap();
    let err = axpy(gpu, 1.0, &x, &y).unwrap_err().to_string();
    assert!(
        err.contains("axpy") && err.contains("[2×3×4]") && err.contains("[2×4×3]"),
        "{err}"
    );
    let y3 = gpu.zeros(3, 3, 4).unwrap();
    let err = copy(gpu, &x, &y3).unwrap_err().to_string();
    assert!(
        err.contains("different batch sizes") && err.contains("[3×3×4]"),
        "{err}"
    );
    let dx = gpu.zeros(2, 3, 5).unwrap();
    let err = activation_backward(gpu, &x, &x, &dx, Activation::Relu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("activation_backward") && err.contains("[2×3×5]"),
        "{err}"
    );
    let bias = gpu.zeros(2, 1, 3).unwrap();
    let err = bias_add(gpu, &x, &bias).unwrap_err().to_string();
    assert!(
        err.contains("bias [2×1×3]") && err.contains("cols = 4"),
        "{err}"
    );
    let shared = gpu.zeros(1, 3, 4).unwrap().broadcast(2).unwrap();
    let err = activation_forward(gpu, &x, &shared, Activation::Elu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("output y [2×3×4] stride 0") && err.contains("overlap"),
        "{err}"
    );
    let err = scale(gpu, &shared, 2.0).unwrap_err().to_string();
    assert!(err.contains("output x [2×3×4] stride 0"), "{err}");
    assert!(matches!(
        scale(gpu, &x, f32::INFINITY),
        Err(DeviceError::InvalidArgument { .. })
    ));
    assert!(matches!(
        axpy(gpu, f32::NAN, &x, &x),
        Err(DeviceError::InvalidArgument { .. })
    ));
    assert!(matches!(
        fill(gpu, &x, f32::NEG_INFINITY),
        Err(DeviceError::InvalidArgument { .. })
    ));
}
