//! The theory experiment (Schug et al. §7): the batched GPU program against its CPU twin, the
//! twin's gradients against finite differences, the metrics, and runs inside a batch.

mod common;

use hypermod::experiments::theory::metrics::{
    generated_alignment, latent_r2, losses, pinv, template_alignment,
};
use hypermod::experiments::theory::net::{backward_cpu, forward_cpu, half_mse_cpu, NetShape};
use hypermod::experiments::theory::{train_latents, train_stream, Theory, TheoryConfig};
use hypermod::ops::adamw::{adamw_cpu, AdamWConfig, AdamWHostState};
use hypermod::ops::rng::{fill_per_item_cpu, Distribution};
use hypermod::train::runner::Experiment;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

fn tiny(seed: u64, task_list: &str, continuous: bool) -> TheoryConfig {
    let mut c = TheoryConfig::default();
    c.task.modules = 3;
    c.task.inputs = 5;
    c.task.hidden = 3;
    c.task.outputs = 2;
    c.task.task_list = task_list.into();
    c.task.continuous = continuous;
    c.train.seed = seed;
    c.train.steps = 10;
    c.train.meta_batch = 3;
    c.train.inputs = 7;
    c.train.steps_inner = 2;
    c.train.eval_tasks = 5;
    c.train.eval_inputs = 9;
    c
}

#[test]
fn inner_inputs_are_the_per_run_philox_draws() {
    let Some(gpu) = common::gpu() else { return };
    let cfgs = [tiny(3, "0,1;1,2", true), tiny(8, "0;1;2", false)];
    let (exp, _) = Theory::new(gpu, &cfgs).unwrap();
    exp.train_step(gpu, 4).unwrap();
    let x = gpu.read(exp.train_episode().inner_x()).unwrap();
    let item = 3 * 7 * 5;
    let bound = 3f32.sqrt();
    let want = fill_per_item_cpu(
        Distribution::Uniform,
        &[3, 8],
        train_stream(4, 2, 1),
        item,
        -bound,
        bound,
    );
    assert_eq!(x.len(), want.len());
    let max = x
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(max < 1e-6, "max diff {max}");
}

fn shapes(c: &TheoryConfig) -> (NetShape, NetShape) {
    let t = NetShape {
        modules: c.task.modules,
        inputs: c.task.inputs,
        hidden: c.task.hidden,
        outputs: c.task.outputs,
    };
    let s = NetShape {
        modules: c.student_modules(),
        hidden: c.student_hidden(),
        ..t
    };
    (t, s)
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// One training step of one run on the host in f64: (inferred latents, meta-gradient).
fn twin_step(
    c: &TheoryConfig,
    step: usize,
    teacher: &[f32],
    student: &[f32],
    init: &[f32],
) -> (Vec<f64>, Vec<f64>) {
    let (ts, ss) = shapes(c);
    let (tasks, n, k) = (c.train.meta_batch, c.train.inputs, c.train.steps_inner);
    let e = f64s(&train_latents(c, step).unwrap());
    let (teacher, student) = (f64s(teacher), f64s(student));
    let mut e_hat: Vec<f64> = (0..tasks).flat_map(|_| f64s(init)).collect();
    let mut adam = AdamWHostState::<f64>::new(tasks, ss.modules);
    let adam_cfg = AdamWConfig {
        lr: c.train.lr_inner as f32,
        weight_decay: 0.0,
        ..AdamWConfig::default()
    };
    let bound = 3f32.sqrt();
    let x_of = |i: usize| {
        let len = tasks * n * ts.inputs;
        let x = fill_per_item_cpu(
            Distribution::Uniform,
            &[c.train.seed],
            train_stream(step, k, i),
            len,
            -bound,
            bound,
        );
        f64s(&x)
    };
    let task = |v: &[f64], t: usize, len: usize| v[t * len..(t + 1) * len].to_vec();
    // Task t's gradients of ½·MSE (scaled by `weight`) on inputs x at latents e_hat.
    let grads = |x: &[f64], e_hat: &[f64], t: usize, weight: f64| {
        let xt = task(x, t, n * ts.inputs);
        let y = forward_cpu(ts, &teacher, &task(&e, t, ts.modules), &xt).y;
        let et = task(e_hat, t, ss.modules);
        let cache = forward_cpu(ss, &student, &et, &xt);
        let (_, dy) = half_mse_cpu(&cache.y, &y);
        let dy: Vec<f64> = dy.iter().map(|d| d * weight).collect();
        backward_cpu(ss, &student, &et, &xt, &cache, &dy)
    };
    for i in 0..k {
        let x = x_of(i);
        let de: Vec<f64> = (0..tasks)
            .flat_map(|t| grads(&x, &e_hat, t, 1.0).de)
            .collect();
        adamw_cpu(&mut e_hat, &de, &mut adam, &adam_cfg);
    }
    let x = x_of(k);
    let mut grad = vec![0.0; ss.param_len()];
    for t in 0..tasks {
        let g = grads(&x, &e_hat, t, 1.0 / tasks as f64);
        for (acc, v) in grad.iter_mut().zip(g.dh.iter().chain(&g.dw2)) {
            *acc += v;
        }
    }
    (e_hat, grad)
}

fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (*g as f64 - w).abs();
        assert!(
            err <= tol * scale,
            "{what}[{i}]: GPU {g} vs twin {w} (err {err:.3e}, scale {scale:.3e})"
        );
    }
}

/// A training step of two runs of different seeds, task lists and weighting gives every run's
/// inferred latents and meta-gradient of the f64 twin (several shapes, none a tile multiple).
#[test]
fn train_step_matches_the_twin() {
    let Some(gpu) = common::gpu() else { return };
    for (step, (hf, mf, inputs, hidden)) in [(1, 1, 5, 3), (2, 2, 7, 4), (1, 3, 3, 5)]
        .into_iter()
        .enumerate()
    {
        let cfgs: Vec<TheoryConfig> = [(3, "0,1;1,2", true), (8, "0;1;2;0,2", false)]
            .into_iter()
            .map(|(seed, list, cont)| {
                let mut c = tiny(seed, list, cont);
                c.student.hidden_factor = hf;
                c.student.module_factor = mf;
                c.task.inputs = inputs;
                c.task.hidden = hidden;
                c.train.steps_inner = 3;
                c
            })
            .collect();
        let (exp, _) = Theory::new(gpu, &cfgs).unwrap();
        let (_, ss) = shapes(&cfgs[0]);
        let student = gpu.read(&exp.nets().student).unwrap();
        exp.train_step(gpu, step).unwrap();
        let inferred = gpu.read(&exp.train_episode().inferred).unwrap();
        let grad = gpu.read(&exp.nets().student_grad).unwrap();
        for (r, c) in cfgs.iter().enumerate() {
            let len = ss.param_len();
            let (e_hat, g) = twin_step(
                c,
                step,
                exp.teacher(r),
                &student[r * len..(r + 1) * len],
                exp.initial_latent(r),
            );
            let per_run = c.train.meta_batch * ss.modules;
            let what = format!("run {r}, factors {hf}/{mf}");
            assert_close(
                &format!("{what}: ê"),
                &inferred[r * per_run..(r + 1) * per_run],
                &e_hat,
                2e-4,
            );
            assert_close(
                &format!("{what}: meta-gradient"),
                &grad[r * len..(r + 1) * len],
                &g,
                2e-4,
            );
        }
    }
}

/// The twin's backward against central differences in f64 (latent, hypernetwork, readout).
#[test]
fn twin_gradients_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for (modules, inputs, hidden, outputs, n) in [(3, 4, 5, 2, 6), (2, 3, 2, 3, 4), (4, 2, 3, 1, 5)]
    {
        let s = NetShape {
            modules,
            inputs,
            hidden,
            outputs,
        };
        let mut v = |len: usize| -> Vec<f64> {
            (0..len).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect()
        };
        let params = v(s.param_len());
        let e = v(modules);
        let x = v(n * inputs);
        let target = v(n * outputs);
        let loss = |p: &[f64], e: &[f64]| half_mse_cpu(&forward_cpu(s, p, e, &x).y, &target).0;
        let cache = forward_cpu(s, &params, &e, &x);
        let (_, dy) = half_mse_cpu(&cache.y, &target);
        let g = backward_cpu(s, &params, &e, &x, &cache, &dy);
        let h = 1e-6;
        let check = |what: &str, analytic: f64, plus: f64, minus: f64| {
            let fd = (plus - minus) / (2.0 * h);
            assert!(
                (analytic - fd).abs() <= 1e-6 * (1.0 + fd.abs()),
                "{what}: analytic {analytic} vs finite difference {fd}"
            );
        };
        for i in 0..modules {
            let (mut ep, mut em) = (e.clone(), e.clone());
            ep[i] += h;
            em[i] -= h;
            check("∂L/∂e", g.de[i], loss(&params, &ep), loss(&params, &em));
        }
        let analytic: Vec<f64> = g.dh.iter().chain(&g.dw2).copied().collect();
        for (i, &a) in analytic.iter().enumerate() {
            let (mut pp, mut pm) = (params.clone(), params.clone());
            pp[i] += h;
            pm[i] -= h;
            check("∂L/∂[H | W₂]", a, loss(&pp, &e), loss(&pm, &e));
        }
    }
}

/// A run trained inside a batch of runs ends with the bits it ends with alone.
#[test]
fn a_run_in_a_batch_equals_the_run_alone() {
    let Some(gpu) = common::gpu() else { return };
    let a = tiny(11, "0,1;1,2;2,0", true);
    let mut b = tiny(12, "0;1;2", false);
    b.train.lr = 3e-3;
    b.train.weight_decay = 1e-3;
    b.train.lr_inner = 0.01;
    let train = |cfgs: &[TheoryConfig]| {
        let (exp, _) = Theory::new(gpu, cfgs).unwrap();
        for s in 0..3 {
            exp.train_step(gpu, s).unwrap();
        }
        let sets = exp.evaluate(gpu).unwrap();
        (gpu.read(&exp.nets().student).unwrap(), sets)
    };
    let (alone, alone_sets) = train(std::slice::from_ref(&a));
    let (batch, batch_sets) = train(&[b, a]);
    let len = alone.len();
    assert_eq!(
        &batch[len..],
        &alone[..],
        "run a's parameters alone vs second in a batch"
    );
    for (name, m) in &alone_sets {
        assert_eq!(m.0[0], batch_sets[name].0[1], "set {name}");
    }
}

/// The metrics on known answers: a student equal to the teacher aligns perfectly, a latent
/// decoded exactly has R² 1, the pseudo-inverse satisfies the Penrose conditions.
#[test]
fn metrics_on_known_answers() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let s = NetShape {
        modules: 3,
        inputs: 4,
        hidden: 5,
        outputs: 2,
    };
    let h: Vec<f32> = (0..s.hnet_len())
        .map(|_| rng.random::<f32>() - 0.5)
        .collect();
    let e: Vec<f32> = (0..40 * 3).map(|_| rng.random::<f32>()).collect();
    let identity = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
    assert!((template_alignment(&h, &h, &identity, s, s) - 1.0).abs() < 1e-9);
    let (avr, max) = generated_alignment(&h, &h, &e, &e, s, s);
    assert!(
        (avr - 1.0).abs() < 1e-9 && (max - 1.0).abs() < 1e-9,
        "{avr} {max}"
    );
    let (r2, f) = latent_r2(&e, &e, &e, &e, 3, 3);
    assert!(r2.unwrap() > 0.999, "R² {r2:?}");
    for (i, v) in f.iter().enumerate() {
        assert!((v - identity[i]).abs() < 1e-2, "F {f:?}");
    }
    // A student whose modules are a permutation of the teacher's, scaled: F is the inverse map.
    let (l, rel_s, rel_p) = losses(&[1.0, 2.0, 0.0, 2.0], &[1.0, 1.0, 1.0, 2.0], 2);
    assert!((l - 0.25).abs() < 1e-12);
    assert!((rel_s - 0.5 * (0.2 + 0.25) / 2.0).abs() < 1e-12, "{rel_s}");
    assert!((rel_p - 0.5 * 0.5 / 2.25).abs() < 1e-12, "{rel_p}");
    for (m, n, rank) in [(2, 5, 2), (4, 3, 3), (3, 6, 2), (5, 5, 5)] {
        let left: Vec<f64> = (0..m * rank).map(|_| rng.random::<f64>() - 0.5).collect();
        let right: Vec<f64> = (0..rank * n).map(|_| rng.random::<f64>() - 0.5).collect();
        let a: Vec<f64> = (0..m * n)
            .map(|ij| {
                (0..rank)
                    .map(|q| left[ij / n * rank + q] * right[q * n + ij % n])
                    .sum()
            })
            .collect();
        let p = pinv(&a, m, n);
        let mul = |x: &[f64], y: &[f64], r: usize, k: usize, c: usize| -> Vec<f64> {
            (0..r * c)
                .map(|ij| (0..k).map(|q| x[ij / c * k + q] * y[q * c + ij % c]).sum())
                .collect()
        };
        let apa = mul(&mul(&a, &p, m, n, m), &a, m, m, n);
        let pap = mul(&mul(&p, &a, n, m, n), &p, n, n, m);
        let err = |x: &[f64], y: &[f64]| {
            x.iter()
                .zip(y)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max)
        };
        assert!(err(&apa, &a) < 1e-9, "A·A⁺·A ≠ A for {m}×{n} rank {rank}");
        assert!(err(&pap, &p) < 1e-6, "A⁺·A·A⁺ ≠ A⁺ for {m}×{n} rank {rank}");
    }
}

/// One run's metrics serialise as a plain object, several as `{"runs": [...]}`; both read back.
#[test]
fn per_run_values_round_trip_as_one_object_or_a_runs_list() {
    use hypermod::experiments::theory::{PerRun, TheoryMetrics};
    let m = |loss| TheoryMetrics {
        loss,
        r2_train_vs_ood: Some(0.5),
        ..TheoryMetrics::default()
    };
    let one = PerRun(vec![m(1.0)]);
    let text = serde_json::to_string(&one).unwrap();
    assert!(text.starts_with("{\"loss\":1.0"), "{text}");
    assert_eq!(
        serde_json::from_str::<PerRun<TheoryMetrics>>(&text).unwrap(),
        one
    );
    let two = PerRun(vec![m(1.0), m(2.0)]);
    let text = serde_json::to_string(&two).unwrap();
    assert!(text.starts_with("{\"runs\":["), "{text}");
    assert_eq!(
        serde_json::from_str::<PerRun<TheoryMetrics>>(&text).unwrap(),
        two
    );
    let empty = serde_json::to_string(&PerRun::<TheoryMetrics>(vec![])).unwrap();
    assert_eq!(
        empty,
        serde_json::to_string(&TheoryMetrics::default()).unwrap()
    );
}
