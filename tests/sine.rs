//! The sine experiment on the device: a run inside a batch gets the bits it gets alone (every
//! method, runs differing in seed, n and learning rate), a diverging run neither stops nor
//! changes its batch, each network's loss gradient against f64 finite differences of a CPU
//! twin, and the kernel initialisation's objective gradient against finite differences.

mod common;

use hypermod::experiments::sine::config::{InitTarget, Method, SineConfig};
use hypermod::experiments::sine::kernel_init::{InitSettings, KernelInit, RESIDUAL_RIDGE};
use hypermod::experiments::sine::net::Network;
use hypermod::experiments::sine::task::Task;
use hypermod::experiments::sine::Sine;
use hypermod::gpu::Device;
use hypermod::nn::mlp_forward;
use hypermod::ops::cholesky::{cholesky_solve_cpu, Ridge};
use hypermod::ops::gemm::gemm_cpu;
use hypermod::ops::rng::ItemSeeds;
use hypermod::ops::sine::{sample, sample_cpu, Fold, Rows, SampleSpec};
use hypermod::train::runner::Experiment;

/// A tiny config of `method`: sizes that are no tile multiples, three network modules.
fn tiny(method: Method) -> SineConfig {
    let mut c = SineConfig::default();
    c.task.m = 3;
    c.task.modules = 2;
    c.task.frequencies = vec![1.0, 3.0];
    c.task.amplitudes = vec![1.0, 0.5];
    c.task.n_train = 50;
    c.model.method = method;
    c.model.hidden = vec![6, 5];
    c.model.modules = 3;
    c.model.module_hidden = vec![5, 4];
    c.kernel_init.steps = 4;
    c.kernel_init.batch = 9;
    c.train.steps = 6;
    c.train.batch = 7;
    c.train.eval_every = 3;
    c.eval.n_valid = 23;
    // Several evaluation chunks (a run's chunks must not depend on its batch).
    c.eval.n_test = 70_000;
    c
}

/// Three runs differing in seed, n and learning rates.
fn three(method: Method) -> Vec<SineConfig> {
    [(1, 50, 1e-3), (2, 200, 3e-3), (3, 13, 1e-3)]
        .into_iter()
        .map(|(seed, n, lr)| {
            let mut c = tiny(method);
            c.train.seed = seed;
            c.task.n_train = n;
            c.train.lr = lr;
            c.kernel_init.lr = 10.0 * lr;
            c
        })
        .collect()
}

/// Trains `cfgs` as one batch for their steps with an evaluation at the end; returns each run's
/// parameters (as bits), its final set metrics and its summary extras, as JSON.
fn train(gpu: &Device, cfgs: &[SineConfig]) -> Vec<(Vec<u32>, serde_json::Value)> {
    let (exp, schedule) = Sine::new(gpu, cfgs, false).unwrap();
    for step in 0..schedule.steps {
        exp.train_step(gpu, step).unwrap();
        if (step + 1) % schedule.eval_every == 0 {
            exp.evaluate(gpu).unwrap();
        }
    }
    let sets = exp.evaluate(gpu).unwrap();
    let extras = exp.summary_extras(gpu).unwrap();
    let params = gpu.read(exp.network().packed.params()).unwrap();
    let per_run = params.len() / cfgs.len();
    (0..cfgs.len())
        .map(|r| {
            let bits = params[r * per_run..(r + 1) * per_run]
                .iter()
                .map(|v| v.to_bits())
                .collect();
            let metrics: serde_json::Value = sets
                .iter()
                .map(|(name, m)| (name.clone(), serde_json::to_value(&m.0[r]).unwrap()))
                .collect::<serde_json::Map<_, _>>()
                .into();
            let mut x = serde_json::to_value(&extras.0[r]).unwrap();
            x["sets"] = metrics;
            (bits, x)
        })
        .collect()
}

#[test]
fn a_run_in_a_batch_gets_the_bits_it_gets_alone() {
    let gpu = gpu_or_skip!();
    for method in [
        Method::Monolithic,
        Method::ModularRandom,
        Method::ModularKernel,
    ] {
        let cfgs = three(method);
        let batch = train(gpu, &cfgs);
        for (r, cfg) in cfgs.iter().enumerate() {
            let alone = train(gpu, std::slice::from_ref(cfg));
            assert_eq!(batch[r].0, alone[0].0, "{method:?} run {r}: parameters");
            assert_eq!(
                batch[r].1, alone[0].1,
                "{method:?} run {r}: metrics and extras"
            );
        }
        // Different runs really differ (the identity is not vacuous).
        assert_ne!(batch[0].0, batch[1].0);
    }
}

#[test]
fn a_diverging_run_is_marked_and_leaves_its_batch_alone() {
    let gpu = gpu_or_skip!();
    let mut cfgs = three(Method::ModularRandom);
    // An absurd learning rate: the first update overflows the outputs, every later gradient
    // is non-finite and skipped.
    cfgs[1].train.lr = 1e30;
    let batch = train(gpu, &cfgs);
    assert_eq!(batch[1].1["diverged"], true, "{}", batch[1].1);
    for r in [0, 2] {
        let alone = train(gpu, std::slice::from_ref(&cfgs[r]));
        assert_eq!(batch[r].0, alone[0].0, "run {r}: parameters");
        assert_eq!(batch[r].1, alone[0].1, "run {r}: metrics");
        assert_eq!(batch[r].1["diverged"], false);
    }
}

/// Run `r`'s twin MSE in f64 from its packed parameters `p`, inputs `x` (the copies the network
/// reads, `copies × B × m`) and targets `y`.
fn twin_loss(cfg: &SineConfig, net: &Network, p: &[f64], x: &[f64], y: &[f64]) -> f64 {
    let (m, b) = (cfg.task.m, y.len());
    let layer_dims =
        |dims: &[usize]| -> Vec<(usize, usize)> { dims.windows(2).map(|w| (w[0], w[1])).collect() };
    // (w, bias) slices of an item's block laid out layer by layer.
    let split = |block: &[f64], dims: &[(usize, usize)], first_bias: bool| {
        let mut at = 0;
        let mut out = Vec::new();
        for (l, &(i, o)) in dims.iter().enumerate() {
            let w = block[at..at + i * o].to_vec();
            at += i * o;
            let has_bias = l > 0 || first_bias;
            let bias = if has_bias {
                let v = block[at..at + o].to_vec();
                at += o;
                v
            } else {
                vec![0.0; o]
            };
            out.push((w, bias));
        }
        out
    };
    let y_hat: Vec<f64> = if net.modular() {
        let bh = net.module_dim;
        let body: Vec<usize> = std::iter::once(bh)
            .chain(cfg.model.module_hidden.iter().copied())
            .chain([1])
            .collect();
        let mut dims = vec![(m, bh)];
        dims.extend(layer_dims(&body));
        let item = p.len() / net.modules;
        let mut sum = vec![0.0; b];
        for i in 0..net.modules {
            let layers = split(&p[i * item..(i + 1) * item], &dims, false);
            let xi = &x[i * b * m..(i + 1) * b * m];
            let mut z = vec![0.0; b * bh];
            let shape = hypermod::ops::gemm::GemmShape {
                batch: 1,
                m: b,
                n: bh,
                k: m,
            };
            gemm_cpu(xi, &layers[0].0, None, &mut z, shape, &Default::default());
            let params: Vec<(&[f64], &[f64])> = layers[1..]
                .iter()
                .map(|(w, c)| (w.as_slice(), c.as_slice()))
                .collect();
            let out = mlp_forward(&body, &params, &z, false, false);
            let o = out.acts.last().unwrap();
            sum.iter_mut().zip(o).for_each(|(s, v)| *s += v);
        }
        let scale = 1.0 / (net.modules as f64).sqrt();
        sum.iter().map(|v| v * scale).collect()
    } else {
        let dims: Vec<usize> = std::iter::once(m)
            .chain(cfg.model.hidden.iter().copied())
            .chain([1])
            .collect();
        let layers = split(p, &layer_dims(&dims), true);
        let params: Vec<(&[f64], &[f64])> = layers
            .iter()
            .map(|(w, c)| (w.as_slice(), c.as_slice()))
            .collect();
        mlp_forward(&dims, &params, x, false, false)
            .acts
            .last()
            .unwrap()
            .clone()
    };
    y_hat
        .iter()
        .zip(y)
        .map(|(a, t)| (a - t).powi(2))
        .sum::<f64>()
        / b as f64
}

#[test]
fn network_gradients_match_finite_differences_of_the_twin() {
    let gpu = gpu_or_skip!();
    for method in [Method::Monolithic, Method::ModularRandom] {
        let cfgs: Vec<SineConfig> = three(method).into_iter().take(2).collect();
        let (exp, _) = Sine::new(gpu, &cfgs, false).unwrap();
        let net = exp.network();
        let (x, y, loss, grads) = exp.probe_gradient(gpu, 0).unwrap();
        let params = gpu.read(net.packed.params()).unwrap();
        let (r, len) = (cfgs.len(), net.run_len());
        let (b, m) = (cfgs[0].train.batch, cfgs[0].task.m);
        let xr = net.x_copies() * b * m;
        for (ri, cfg) in cfgs.iter().enumerate() {
            let p: Vec<f64> = params[ri * len..(ri + 1) * len]
                .iter()
                .map(|&v| v as f64)
                .collect();
            let xi: Vec<f64> = x[ri * xr..(ri + 1) * xr]
                .iter()
                .map(|&v| v as f64)
                .collect();
            let yi: Vec<f64> = y[ri * b..(ri + 1) * b].iter().map(|&v| v as f64).collect();
            let f = |q: &[f64]| twin_loss(cfg, net, q, &xi, &yi);
            let want = f(&p);
            assert!(
                (loss[ri] as f64 - want).abs() < 1e-4 * (1.0 + want),
                "{method:?} run {ri}: device loss {} vs twin {want}",
                loss[ri]
            );
            let numeric = common::fd(1e-6, &p, f);
            let analytic = &grads[ri * len..(ri + 1) * len];
            for (k, (&a, &n)) in analytic.iter().zip(&numeric).enumerate() {
                // f32 device gradient vs an f64 finite difference.
                assert!(
                    (a as f64 - n).abs() <= 2e-4 * (1.0 + n.abs()),
                    "{method:?} run {ri} parameter {k} of {}: device {a} vs fd {n}",
                    r * len
                );
            }
        }
    }
}

#[test]
fn kernel_objective_gradient_matches_finite_differences() {
    check_kernel_objective(InitTarget::Target);
}

/// The same objective on y's residual after its least-squares linear fit (issue 26's first
/// variant): the device's residual (XᵀX solve, then y − Xβ) against the twin's in f64.
#[test]
fn kernel_objective_on_the_linear_residual_matches_finite_differences() {
    check_kernel_objective(InitTarget::LinearResidual);
}

fn check_kernel_objective(target: InitTarget) {
    let gpu = gpu_or_skip!();
    let cfg = tiny(Method::ModularKernel);
    let seeds = [5u64, 6];
    let net = Network::new(gpu, &cfg, seeds.len()).unwrap();
    let (init, _keep) = net.init(gpu, &seeds).unwrap();
    gpu.run(&init.iter().map(|d| d.dispatch()).collect::<Vec<_>>())
        .unwrap();
    let tasks: Vec<Task> = seeds.iter().map(|&s| Task::new(&cfg, s)).collect();
    let shape = tasks[0].shape;
    let flat: Vec<f32> = tasks.iter().flat_map(|t| t.tensor.clone()).collect();
    let task_t = gpu.upload(&flat, seeds.len(), 1, shape.task_len()).unwrap();
    let seeds_t = ItemSeeds::upload(gpu, &seeds).unwrap();
    let (k, bs, m) = (net.modules, cfg.kernel_init.batch, cfg.task.m);
    let x = gpu.zeros(seeds.len() * k, bs, m).unwrap();
    let y = gpu.zeros(seeds.len() * k, bs, 1).unwrap();
    let pick = 99;
    let spec = SampleSpec {
        shape,
        rows: Rows::Pick { stream: pick },
        fold: Fold::None,
        sigma: 1.0,
        data_stream: 1,
    };
    let sampler = sample(gpu, &spec, &task_t, &seeds_t, &x, &y).unwrap();
    let ridge = 1e-2;
    let settings = vec![InitSettings { lr: 0.01, ridge }; seeds.len()];
    let init = KernelInit::new(gpu, &net, sampler, &x, &y, &settings, target).unwrap();
    let (quad, grad) = init.probe(gpu, pick).unwrap();
    let params = gpu.read(net.packed.params()).unwrap();
    let item = net.packed.item_len();
    let bh = net.module_dim;
    let dims: Vec<usize> = std::iter::once(bh)
        .chain(cfg.model.module_hidden.iter().copied())
        .collect();
    for (ri, (task, &seed)) in tasks.iter().zip(&seeds).enumerate() {
        let (xs, ys) = sample_cpu(&spec, &task.tensor, seed, bs);
        let xs: Vec<f64> = xs.iter().map(|&v| v as f64).collect();
        let ys = match target {
            InitTarget::Target => ys,
            InitTarget::LinearResidual => {
                // β = (XᵀX + εI)⁻¹Xᵀy, ε relative to tr(XᵀX)/m as on the device.
                let xtx: Vec<f64> = (0..m * m)
                    .map(|e| (0..bs).map(|s| xs[s * m + e / m] * xs[s * m + e % m]).sum())
                    .collect();
                let xty: Vec<f64> = (0..m)
                    .map(|j| (0..bs).map(|s| xs[s * m + j] * ys[s]).sum())
                    .collect();
                let ridge = Ridge {
                    abs: 0.0,
                    rel: RESIDUAL_RIDGE,
                };
                let (_, beta, _) = cholesky_solve_cpu(&xtx, &xty, m, 1, ridge);
                (0..bs)
                    .map(|s| ys[s] - (0..m).map(|j| xs[s * m + j] * beta[j]).sum::<f64>())
                    .collect()
            }
        };
        let xs = &xs;
        for i in 0..k {
            let block: Vec<f64> = params[(ri * k + i) * item..][..item]
                .iter()
                .map(|&v| v as f64)
                .collect();
            // The hidden layers' (w, b) after the projection, frozen.
            let mut at = m * bh;
            let hidden: Vec<(Vec<f64>, Vec<f64>)> = dims
                .windows(2)
                .map(|w| {
                    let wv = block[at..at + w[0] * w[1]].to_vec();
                    at += w[0] * w[1];
                    let bv = block[at..at + w[1]].to_vec();
                    at += w[1];
                    (wv, bv)
                })
                .collect();
            let features = |u: &[f64]| -> Vec<f64> {
                let z: Vec<f64> = (0..bs)
                    .flat_map(|s| {
                        (0..bh).map(move |c| (0..m).map(|j| xs[s * m + j] * u[j * bh + c]).sum())
                    })
                    .collect();
                let params: Vec<(&[f64], &[f64])> = hidden
                    .iter()
                    .map(|(w, c)| (w.as_slice(), c.as_slice()))
                    .collect();
                mlp_forward(&dims, &params, &z, false, true)
                    .acts
                    .last()
                    .unwrap()
                    .clone()
            };
            let kernel = |a: &[f64]| -> Vec<f64> {
                let h = a.len() / bs;
                (0..bs * bs)
                    .map(|e| {
                        (0..h)
                            .map(|c| a[(e / bs) * h + c] * a[(e % bs) * h + c])
                            .sum()
                    })
                    .collect()
            };
            let u0 = block[..m * bh].to_vec();
            let k0 = kernel(&features(&u0));
            // The ridge is held at its unperturbed value (stop-gradient, as the device).
            let eps = ridge as f64 * (0..bs).map(|d| k0[d * bs + d]).sum::<f64>() / bs as f64;
            let objective = |u: &[f64]| -> f64 {
                let kk = kernel(&features(u));
                let fixed = Ridge {
                    abs: eps as f32,
                    rel: 0.0,
                };
                let (_, _, q) = cholesky_solve_cpu(&kk, &ys, bs, 1, fixed);
                q[0]
            };
            let want = objective(&u0);
            let got = quad[ri * k + i] as f64;
            assert!(
                (got - want).abs() < 2e-3 * want.abs().max(1.0),
                "run {ri} module {i}: objective {got} vs twin {want}"
            );
            let numeric = common::fd(1e-6, &u0, objective);
            let analytic = &grad[(ri * k + i) * m * bh..][..m * bh];
            let scale = numeric.iter().fold(0.0f64, |s, v| s.max(v.abs()));
            for (j, (&a, &n)) in analytic.iter().zip(&numeric).enumerate() {
                assert!(
                    (a as f64 - n).abs() <= 5e-3 * scale + 1e-6,
                    "run {ri} module {i} ∂/∂Û[{j}]: device {a} vs fd {n} (scale {scale})"
                );
            }
        }
    }
}
