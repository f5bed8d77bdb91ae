//! GPU programs of the hypernetwork students vs their CPU twins (run per task in f64): logits,
//! per-task `dtask` and the task-summed `dmeta`, for tasks ∈ {1, 3}, n ∈ {1, 7}, tiny target
//! nets with 1–3 hidden layers and one paper-ish size; strided `x` views; outputs start as NaN
//! so every entry the program must write is checked to be written.

mod common;

use hypermod::gpu::{Device, Tensor};
use hypermod::students::gpu::{GpuStudent, StudentBuffers};
use hypermod::students::{HnetDeep, HnetLinear, Student};

/// f32 unit roundoff.
const U: f64 = f32::EPSILON as f64 / 2.0;

/// Tolerance of one output tensor: `REL · max|want|` plus `REL · |want_i|`.
///
/// Every entry is a chain of f32 dot products: ê (T terms), the generated weights (T terms), the
/// target layers (≤ 32 terms each, ≤ 4 layers) and their backward (≤ 32 terms, or n = 7 for the
/// weight gradients, tasks·rows ≤ 12 for the banks). A dot product of K terms has error ≤ K·u
/// relative to Σ|terms|; summed along the chain that is ≤ ~300·u ≈ 2e-5 relative to the
/// magnitudes flowing through, which cancellation can make larger than |want_i| itself, so the
/// bound is taken relative to the tensor's largest entry (same order as those magnitudes for
/// these O(1) random inputs), with a 10× margin for the products of magnitudes along the chain.
/// hnet_deep's DeepBank adds ≤ 5 LayerNorms and GEMMs of ≤ 16 terms per row; its LNs see O(1)
/// variances (rstd ≈ 1), so they add O(cols·u) each and the same bound holds. A 0.1% change of
/// one scale (the mutation checks) already exceeds it.
const REL: f64 = 3000.0 * U;

fn tol(want: &[f64]) -> impl Fn(usize) -> f64 + '_ {
    let max = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    move |i| REL * (max + want[i].abs())
}

struct Case {
    tasks: usize,
    n: usize,
    strided_x: bool,
    with_dmeta: bool,
}

/// Runs `student`'s program on random data and compares it with the CPU twin.
fn check<S: GpuStudent>(gpu: &Device, student: &S, case: &Case, seed: u64, ctx: &str) {
    let Case {
        tasks,
        n,
        strided_x,
        with_dmeta,
    } = *case;
    let mut rng = common::rng(seed);
    let layout = student.param_layout();
    let (ml, tl) = (layout.meta_len(), layout.task_len());
    let (i, o) = (student.input_dim(), student.output_dim());
    let meta = common::uniform(&mut rng, ml);
    let task = common::uniform(&mut rng, tasks * tl);
    let x = common::uniform(&mut rng, tasks * n * i);
    let dlogits = common::uniform(&mut rng, tasks * n * o);

    let meta_t = gpu.upload(&meta, 1, 1, ml).unwrap();
    let task_t = gpu.upload(&task, tasks, 1, tl).unwrap();
    let x_t = if strided_x {
        common::padded(gpu, &x, tasks, n, i)
    } else {
        gpu.upload(&x, tasks, n, i).unwrap()
    };
    let nan = |len: usize| vec![f32::NAN; len];
    let logits_t = gpu.upload(&nan(tasks * n * o), tasks, n, o).unwrap();
    let dlogits_t = gpu.upload(&dlogits, tasks, n, o).unwrap();
    let dtask_t = gpu.upload(&nan(tasks * tl), tasks, 1, tl).unwrap();
    let dmeta_t: Tensor = gpu.upload(&nan(ml), 1, 1, ml).unwrap();
    let buffers = StudentBuffers {
        meta: &meta_t,
        task: &task_t,
        x: &x_t,
        logits: &logits_t,
        dlogits: &dlogits_t,
        dtask: &dtask_t,
        dmeta: with_dmeta.then_some(&dmeta_t),
    };
    let prog = student.program(gpu, &buffers).unwrap();
    let all: Vec<_> = prog.forward.iter().chain(&prog.backward).collect();
    gpu.run(&all).unwrap();

    let meta64 = common::widen(&meta);
    let mut want_logits = Vec::new();
    let mut want_dtask = Vec::new();
    let mut want_dmeta = vec![0.0f64; ml];
    for t in 0..tasks {
        let tk = common::widen(&task[t * tl..(t + 1) * tl]);
        let xt = common::widen(&x[t * n * i..(t + 1) * n * i]);
        let dl = common::widen(&dlogits[t * n * o..(t + 1) * n * o]);
        want_logits.extend(student.forward(&meta64, &tk, &xt));
        let (dm, dt) = student.backward(&meta64, &tk, &xt, &dl);
        want_dtask.extend(dt);
        want_dmeta.iter_mut().zip(&dm).for_each(|(a, b)| *a += b);
    }
    let got = gpu.read(&logits_t).unwrap();
    common::assert_close(
        &got,
        &want_logits,
        tol(&want_logits),
        &format!("{ctx} logits"),
    );
    let got = gpu.read(&dtask_t).unwrap();
    common::assert_close(&got, &want_dtask, tol(&want_dtask), &format!("{ctx} dtask"));
    let got = gpu.read(&dmeta_t).unwrap();
    if with_dmeta {
        common::assert_close(&got, &want_dmeta, tol(&want_dmeta), &format!("{ctx} dmeta"));
    } else {
        assert!(got.iter().all(|v| v.is_nan()), "{ctx}: dmeta written");
    }
}

/// tasks ∈ {1, 3} × n ∈ {1, 7}, strided x and the inner-loop variant (no dmeta) mixed in.
fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (k, (tasks, n)) in [(1, 1), (1, 7), (3, 1), (3, 7)].into_iter().enumerate() {
        v.push(Case {
            tasks,
            n,
            strided_x: k % 2 == 1,
            with_dmeta: k != 2,
        });
    }
    v
}

fn tiny_linear(num_hidden: usize) -> HnetLinear {
    HnetLinear {
        input_dim: 3,
        hidden_dim: 5,
        output_dim: 4,
        num_hidden,
        num_templates: 3,
    }
}

#[test]
fn hnet_linear_program_matches_cpu_twin_tiny() {
    let gpu = gpu_or_skip!();
    for nh in 1..=3 {
        for (k, case) in cases().iter().enumerate() {
            let ctx = format!("hnet_linear nh {nh} tasks {} n {}", case.tasks, case.n);
            check(
                gpu,
                &tiny_linear(nh),
                case,
                100 + 10 * nh as u64 + k as u64,
                &ctx,
            );
        }
    }
}

#[test]
fn hnet_linear_program_matches_cpu_twin_paperish() {
    let gpu = gpu_or_skip!();
    let s = HnetLinear {
        input_dim: 16,
        hidden_dim: 32,
        output_dim: 8,
        num_hidden: 3,
        num_templates: 8,
    };
    for (k, case) in cases().iter().enumerate() {
        let ctx = format!("hnet_linear paperish tasks {} n {}", case.tasks, case.n);
        check(gpu, &s, case, 200 + k as u64, &ctx);
    }
}

#[test]
fn hnet_linear_program_rejects_bad_shapes() {
    let gpu = gpu_or_skip!();
    let s = tiny_linear(2);
    let layout = s.param_layout();
    let (ml, tl) = (layout.meta_len(), layout.task_len());
    let meta = gpu.zeros(1, 1, ml).unwrap();
    let task = gpu.zeros(2, 1, tl).unwrap();
    let x = gpu.zeros(2, 5, 4).unwrap(); // input_dim is 3
    let logits = gpu.zeros(2, 5, 4).unwrap();
    let dtask = gpu.zeros(2, 1, tl).unwrap();
    let b = StudentBuffers {
        meta: &meta,
        task: &task,
        x: &x,
        logits: &logits,
        dlogits: &logits,
        dtask: &dtask,
        dmeta: None,
    };
    let err = s.program(gpu, &b).unwrap_err().to_string();
    assert!(err.contains("x [2×5×4]"), "{err}");
}

fn tiny_deep(num_hidden: usize) -> HnetDeep {
    HnetDeep {
        input_dim: 3,
        hidden_dim: 5,
        output_dim: 4,
        num_hidden,
        num_templates: 3,
        body_dim: 6,
        body_layers: 2,
    }
}

#[test]
fn hnet_deep_program_matches_cpu_twin_tiny() {
    let gpu = gpu_or_skip!();
    for nh in 1..=3 {
        for (k, case) in cases().iter().enumerate() {
            let ctx = format!("hnet_deep nh {nh} tasks {} n {}", case.tasks, case.n);
            check(
                gpu,
                &tiny_deep(nh),
                case,
                300 + 10 * nh as u64 + k as u64,
                &ctx,
            );
        }
    }
}

#[test]
fn hnet_deep_program_matches_cpu_twin_paperish() {
    let gpu = gpu_or_skip!();
    let s = HnetDeep {
        input_dim: 16,
        hidden_dim: 32,
        output_dim: 8,
        num_hidden: 3,
        num_templates: 8,
        body_dim: 16,
        body_layers: 4,
    };
    for (k, case) in cases().iter().enumerate() {
        let ctx = format!("hnet_deep paperish tasks {} n {}", case.tasks, case.n);
        check(gpu, &s, case, 400 + k as u64, &ctx);
    }
}
