//! The hyperteacher's teacher: weights and inputs bit-identical on CPU and GPU, GPU logits against
//! the f64 CPU twin (chunking on and off), and configuration errors.

mod common;

use hypermod::experiments::hyperteacher::tasks::{Coefficients, TaskSpace};
use hypermod::gpu::Device;
use hypermod::gpu::Step;
use hypermod::teacher::{
    teacher_inputs_cpu, teacher_logits_cpu, teacher_targets_cpu, TeacherConfig, TeacherError,
    TeacherForward, TeacherTargets, TeacherWeights, TeacherWeightsGpu, STATS_INPUTS,
    TARGET_TEMPERATURE, WEIGHT_STREAM_BASE,
};

fn assert_bitwise(got: &[f32], want: &[f32], ctx: &str) {
    assert_eq!(got.len(), want.len(), "{ctx}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "{ctx}: element {i}: GPU {g} != CPU {w}"
        );
    }
}

/// The paper's teacher (M = 4) and a small odd-sized one (L = 3), each with and without chunking.
fn configs() -> Vec<TeacherConfig> {
    let odd = |chunking| TeacherConfig {
        input_dim: 5,
        hidden_dim: 7,
        output_dim: 3,
        num_hidden: 4,
        modules: 3,
        chunking,
        seed: 99,
    };
    vec![
        TeacherConfig::paper(4, false, 2023),
        TeacherConfig::paper(4, true, 2023),
        odd(false),
        odd(true),
    ]
}

#[test]
fn weights_bitwise_equal_cpu_and_gpu() {
    let gpu = gpu_or_skip!();
    for c in configs() {
        let cpu = TeacherWeights::generate(c).unwrap();
        let g = TeacherWeightsGpu::generate(gpu, c).unwrap();
        let ctx = format!("{c:?}");
        assert_bitwise(
            &gpu.read(&g.w_in).unwrap(),
            &cpu.w_in,
            &format!("w_in {ctx}"),
        );
        assert_bitwise(
            &gpu.read(&g.w_out).unwrap(),
            &cpu.w_out,
            &format!("w_out {ctx}"),
        );
        assert_bitwise(
            &gpu.read(&g.theta).unwrap(),
            &cpu.theta,
            &format!("theta {ctx}"),
        );
        let (rows, cols) = c.theta_shape();
        assert_eq!(cpu.theta.len(), rows * cols);
        // TruncatedNormal(1): support [−2, 2].
        assert!(
            cpu.theta.iter().all(|v| v.abs() <= 2.0),
            "{ctx}: theta range"
        );
    }
    // Distinct tensors and seeds give distinct draws.
    let a = TeacherWeights::generate(TeacherConfig::paper(4, false, 1)).unwrap();
    let b = TeacherWeights::generate(TeacherConfig::paper(4, false, 2)).unwrap();
    assert_ne!(a.w_in, b.w_in);
    assert_ne!(a.w_in[..256], a.theta[..256]);
}

/// Latents of `tasks` tasks: binary tasks of the space when it is the paper's (K = 2), else
/// continuous-looking values from the test rng.
fn latents(c: &TeacherConfig, tasks: usize) -> Vec<f32> {
    let space = TaskSpace::new(c.modules, 2.min(c.modules), c.layers()).unwrap();
    let all = space.tasks();
    let picked: Vec<_> = all
        .iter()
        .step_by(all.len() / tasks)
        .take(tasks)
        .cloned()
        .collect();
    space
        .latents(&picked, Coefficients::Continuous { seed: 5 })
        .unwrap()
}

fn forward(
    gpu: &Device,
    c: TeacherConfig,
    tasks: usize,
    n: usize,
    step: u64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let w = TeacherWeightsGpu::generate(gpu, c).unwrap();
    let f = TeacherForward::new(gpu, &w, tasks, n).unwrap();
    let z = latents(&c, tasks);
    f.set_latents(gpu, &z).unwrap();
    f.set_step(gpu, step).unwrap();
    f.run(gpu).unwrap();
    (
        z,
        gpu.read(f.inputs()).unwrap(),
        gpu.read(f.logits()).unwrap(),
    )
}

#[test]
fn inputs_bitwise_equal_twin_and_follow_the_step() {
    let gpu = gpu_or_skip!();
    let c = TeacherConfig::paper(4, false, 2023);
    let w = TeacherWeightsGpu::generate(gpu, c).unwrap();
    let f = TeacherForward::new(gpu, &w, 3, 21).unwrap();
    f.set_latents(gpu, &latents(&c, 3)).unwrap();
    let mut previous = Vec::new();
    for step in [0, 1, 12345, WEIGHT_STREAM_BASE - 1] {
        f.set_step(gpu, step).unwrap();
        f.run(gpu).unwrap();
        let got = gpu.read(f.inputs()).unwrap();
        let want = teacher_inputs_cpu(&c, step, 3, 21).unwrap();
        assert_bitwise(&got, &want, &format!("inputs at step {step}"));
        assert!(got.iter().all(|v| (-1.0..1.0).contains(v)));
        assert_ne!(got, previous, "step {step} repeats the previous inputs");
        previous = got;
    }
}

/// Tolerance: every layer is an f32 dot product of k ≤ 32 unit-scale terms (|weights| ≤ 2,
/// |x| < 1, latents ≤ 1), whose rounding error is ≤ k·2⁻²⁴·Σ|aᵢbᵢ| ≈ 2e-6 relative to the
/// magnitudes involved. Five chained products (hypernetwork + 4 layers), each scaled by 1/√fan_in
/// and followed by 1-Lipschitz ReLUs, keep the propagated error within a few times that; 1e-4
/// relative to the largest logit (and at least 1e-4 absolute) leaves a 10× margin over what f32
/// summation can produce, yet a wrong scale, layer or offset changes logits by O(0.1–1).
fn check_logits(gpu: &Device, c: TeacherConfig, tasks: usize, n: usize) {
    let (z, x, got) = forward(gpu, c, tasks, n, 7);
    let weights = TeacherWeights::generate(c).unwrap();
    let want = teacher_logits_cpu(&weights, &common::widen(&z), &common::widen(&x)).unwrap();
    assert_eq!(want.len(), tasks * n * c.output_dim);
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    common::assert_close(&got, &want, |_| 1e-4 * scale, &format!("logits {c:?}"));
    // The logits differ across tasks: the generated layers reach the output.
    let item = n * c.output_dim;
    assert!(
        want[..item]
            .iter()
            .zip(&want[item..2 * item])
            .any(|(a, b)| (a - b).abs() > 1e-3),
        "{c:?}: tasks 0 and 1 give the same logits"
    );
}

#[test]
fn logits_match_cpu_twin_chunking_off() {
    let gpu = gpu_or_skip!();
    check_logits(gpu, TeacherConfig::paper(4, false, 2023), 5, 20);
    check_logits(gpu, configs()[2], 3, 9);
}

#[test]
fn logits_match_cpu_twin_chunking_on() {
    let gpu = gpu_or_skip!();
    check_logits(gpu, TeacherConfig::paper(4, true, 2023), 5, 20);
    check_logits(gpu, configs()[3], 3, 9);
}

#[test]
fn single_task_single_input() {
    let gpu = gpu_or_skip!();
    for chunking in [false, true] {
        let c = TeacherConfig::paper(3, chunking, 1);
        let (z, x, got) = forward(gpu, c, 1, 1, 0);
        let want = teacher_logits_cpu(
            &TeacherWeights::generate(c).unwrap(),
            &common::widen(&z),
            &common::widen(&x),
        )
        .unwrap();
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        common::assert_close(&got, &want, |_| 1e-4 * scale, "batch 1");
    }
}

#[test]
fn invalid_configs_and_shapes_are_errors() {
    let ok = TeacherConfig::paper(4, false, 0);
    let invalid = |c: TeacherConfig, field: &str| {
        let e = TeacherWeights::generate(c).unwrap_err();
        assert!(
            matches!(e, TeacherError::InvalidConfig { field: f, .. } if f == field),
            "{c:?}: {e}"
        );
        assert!(e.to_string().contains(field), "{e}");
    };
    invalid(TeacherConfig { modules: 0, ..ok }, "modules");
    invalid(TeacherConfig { input_dim: 0, ..ok }, "input_dim");
    invalid(
        TeacherConfig {
            output_dim: 0,
            ..ok
        },
        "output_dim",
    );
    invalid(
        TeacherConfig {
            num_hidden: 1,
            ..ok
        },
        "num_hidden",
    );
    invalid(
        TeacherConfig {
            num_hidden: 0,
            ..ok
        },
        "num_hidden",
    );
    invalid(
        TeacherConfig {
            hidden_dim: 1 << 20,
            ..ok
        },
        "hidden_dim",
    );
    invalid(
        TeacherConfig {
            hidden_dim: usize::MAX,
            ..ok
        },
        "hidden_dim",
    );

    assert!(matches!(
        ok.input_key(WEIGHT_STREAM_BASE),
        Err(TeacherError::ReservedStream { .. })
    ));
    let w = TeacherWeights::generate(ok).unwrap();
    let e = teacher_logits_cpu(&w, &[0.0f64; 7], &[]).unwrap_err();
    assert!(e.to_string().contains("L·M = 8"), "{e}");
    let e = teacher_logits_cpu(&w, &[0.0f64; 16], &[0.0; 17]).unwrap_err();
    assert!(e.to_string().contains("x holds 17"), "{e}");

    let gpu = gpu_or_skip!();
    let g = TeacherWeightsGpu::generate(gpu, ok).unwrap();
    assert!(matches!(
        TeacherForward::new(gpu, &g, 0, 4),
        Err(TeacherError::Shape(_))
    ));
    let f = TeacherForward::new(gpu, &g, 2, 4).unwrap();
    let e = f.set_latents(gpu, &[0.0; 15]).unwrap_err();
    assert!(e.to_string().contains("15"), "{e}");
    assert!(matches!(
        f.set_step(gpu, u64::MAX),
        Err(TeacherError::ReservedStream { .. })
    ));
}

/// Soft targets (spec §3.2) against the f64 twin. Logits carry ~1e-6 relative f32 error; the
/// z-scoring divides by σ (O(1) here) and the temperature multiplies by 10, so scaled logits err
/// by ~1e-4 and the softmax probabilities by at most that (|∂y/∂z| ≤ 1/4 per unit): 2e-3 absolute
/// is a 10× margin, while a wrong mean, std or temperature moves probabilities by O(0.1).
#[test]
fn soft_targets_match_cpu_twin() {
    let gpu = gpu_or_skip!();
    for chunking in [false, true] {
        let c = TeacherConfig::paper(4, chunking, 2021);
        let (tasks, n) = (4, 20);
        let w = TeacherWeightsGpu::generate(gpu, c).unwrap();
        let f = TeacherForward::new(gpu, &w, tasks, n).unwrap();
        let t = TeacherTargets::new(gpu, &w, &f, STATS_INPUTS, TARGET_TEMPERATURE).unwrap();
        let z = latents(&c, tasks);
        f.set_latents(gpu, &z).unwrap();
        f.set_step(gpu, 3).unwrap();
        let mut step = Step::new(gpu);
        f.record(&mut step);
        t.record(&mut step);
        let slot = step.read(t.targets()).unwrap();
        let got = step.finish().unwrap().get(slot).to_vec();
        let x = gpu.read(f.inputs()).unwrap();
        let weights = TeacherWeights::generate(c).unwrap();
        let want = teacher_targets_cpu(
            &weights,
            &common::widen(&z),
            &common::widen(&x),
            STATS_INPUTS,
            TARGET_TEMPERATURE as f64,
        )
        .unwrap();
        common::assert_close(
            &got,
            &want,
            |_| 2e-3,
            &format!("targets chunking {chunking}"),
        );
        for row in got.chunks(c.output_dim) {
            let s: f32 = row.iter().sum();
            assert!((s - 1.0).abs() < 1e-5, "row sums to {s}");
        }
        // T = 0.1 makes the targets confident: most rows put over half their mass on one class.
        let confident = got
            .chunks(c.output_dim)
            .filter(|r| r.iter().any(|&p| p > 0.5))
            .count();
        assert!(confident * 2 > tasks * n, "only {confident} confident rows");
        // The per-task statistics standardise each unit: the means differ across tasks.
        let mean = gpu.read(t.mean()).unwrap();
        assert!(mean[..c.output_dim] != mean[c.output_dim..2 * c.output_dim]);
    }
}
