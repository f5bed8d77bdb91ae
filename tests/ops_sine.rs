//! The sine task's device sampler vs its CPU twin on random shapes (every fold, drawn and fixed
//! rows, several copies per run, per-run seeds and sizes), the folds' guarantees, the task's
//! exact moments against Monte Carlo, and shape errors.

mod common;

use hypermod::experiments::sine::config::{Projections, SineConfig};
use hypermod::experiments::sine::task::Task;
use hypermod::ops::rng::ItemSeeds;
use hypermod::ops::sine::{sample, sample_cpu, Fold, Rows, SampleSpec, SineShape};

/// A random task of `shape` with training-set size `n` for the run with `seed`.
fn task(shape: SineShape, n: usize, seed: u64, holdout: bool) -> Task {
    let mut cfg = SineConfig::default();
    cfg.task.m = shape.m;
    cfg.task.modules = shape.modules;
    cfg.task.module_dim = shape.dim;
    cfg.task.frequencies = (0..shape.comps).map(|l| 1.0 + 2.0 * l as f64).collect();
    cfg.task.amplitudes = (0..shape.comps).map(|l| 1.0 / (1.0 + l as f64)).collect();
    cfg.task.projections = Projections::Random;
    cfg.task.n_train = n;
    cfg.task.holdout_combination = holdout;
    Task::new(&cfg, seed)
}

fn dot(u: &[f32], x: &[f32]) -> f64 {
    u.iter().zip(x).map(|(&a, &b)| a as f64 * b as f64).sum()
}

#[test]
fn sampler_matches_cpu_twin_on_random_shapes() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(71);
    for case in 0..24 {
        let shape = SineShape {
            m: common::size(&mut rng, if case % 3 == 0 { 2 } else { 1 }, 70),
            modules: common::size(&mut rng, 2, 5),
            dim: common::size(&mut rng, 1, 3),
            comps: common::size(&mut rng, 1, 3),
        };
        let runs = if case % 4 == 0 {
            1
        } else {
            common::size(&mut rng, 2, 4)
        };
        let rows = common::size(&mut rng, 1, 45);
        let (x_rep, y_rep) = (common::size(&mut rng, 1, 3), common::size(&mut rng, 1, 2));
        let fold = match case % 3 {
            0 if shape.m >= 2 => Fold::Inside,
            1 if shape.m >= 2 => Fold::Exclude,
            _ => Fold::None,
        };
        let picked = case % 2 == 0;
        let rows_of = if picked {
            Rows::Pick {
                stream: 1000 + case as u64,
            }
        } else {
            Rows::Fixed { row0: 17 * case }
        };
        let spec = SampleSpec {
            shape,
            rows: rows_of,
            fold,
            sigma: if case % 5 == 0 { 2.0 } else { 1.0 },
            data_stream: 7 + case as u64,
        };
        let seeds: Vec<u64> = (0..runs).map(|r| 31 * case as u64 + r as u64).collect();
        let tasks: Vec<Task> = seeds
            .iter()
            .enumerate()
            .map(|(r, &s)| task(shape, 5 + 97 * r, s, fold != Fold::None))
            .collect();
        let flat: Vec<f32> = tasks.iter().flat_map(|t| t.tensor.clone()).collect();
        let task_t = gpu.upload(&flat, runs, 1, shape.task_len()).unwrap();
        let seeds_t = ItemSeeds::upload(gpu, &seeds).unwrap();
        let x = gpu.zeros(runs * x_rep, rows, shape.m).unwrap();
        let y = gpu.zeros(runs * y_rep, rows, 1).unwrap();
        let d = sample(gpu, &spec, &task_t, &seeds_t, &x, &y).unwrap();
        gpu.run(&[d.dispatch()]).unwrap();
        let (xs, ys) = (gpu.read(&x).unwrap(), gpu.read(&y).unwrap());
        let ctx = format!("case {case} {shape:?} runs {runs} rows {rows} {fold:?} {rows_of:?}");
        for (r, t) in tasks.iter().enumerate() {
            let (want_x, want_y) = sample_cpu(&spec, &t.tensor, seeds[r], rows);
            for c in 0..x_rep {
                let got = &xs[(r * x_rep + c) * rows * shape.m..][..rows * shape.m];
                if fold == Fold::None {
                    // Philox and the polynomial normal are exact: the same bits.
                    assert_eq!(got, &want_x[..], "{ctx}: x of run {r}, copy {c}");
                } else {
                    let want: Vec<f64> = want_x.iter().map(|&v| v as f64).collect();
                    common::assert_close(got, &want, |i| 1e-5 * (1.0 + want[i].abs()), &ctx);
                }
            }
            for c in 0..y_rep {
                let got = &ys[(r * y_rep + c) * rows..][..rows];
                // f32 dot products over m and sines of arguments up to ~|ω|·4σ√b: a few
                // hundred ulps of the unnormalised target, scaled by inv_std.
                let tol = 2e-4 * (1.0 + shape.m as f64 / 16.0) * t.tensor[2] as f64;
                common::assert_close(got, &want_y, |i| tol * (1.0 + want_y[i].abs()), &ctx);
            }
            if picked {
                // Every drawn index lies in [0, n): each row equals that fixed sample.
                let n = t.tensor[0] as usize;
                for row in 0..rows {
                    let idx = hypermod::ops::sine::sample_index(rows_of, seeds[r], n, row);
                    assert!(idx < n, "{ctx}: index {idx} ≥ n = {n}");
                }
            }
        }
    }
}

#[test]
fn folds_keep_the_held_out_combination_out_of_training_and_alone_in_its_set() {
    let gpu = gpu_or_skip!();
    let shape = SineShape {
        m: 5,
        modules: 3,
        dim: 1,
        comps: 2,
    };
    let t = task(shape, 1000, 9, true);
    let (u0, u1) = (t.projection(0), t.projection(shape.dim));
    assert!(dot(u0, u1).abs() < 1e-6, "u_00 ⟂ u_10 for the reflections");
    let task_t = gpu.upload(&t.tensor, 1, 1, shape.task_len()).unwrap();
    let seeds = ItemSeeds::upload(gpu, &[9]).unwrap();
    let rows = 2000;
    for (fold, inside) in [(Fold::Exclude, false), (Fold::Inside, true)] {
        let spec = SampleSpec {
            shape,
            rows: Rows::Fixed { row0: 0 },
            fold,
            sigma: 1.0,
            data_stream: 3,
        };
        let x = gpu.zeros(1, rows, shape.m).unwrap();
        let y = gpu.zeros(1, rows, 1).unwrap();
        let d = sample(gpu, &spec, &task_t, &seeds, &x, &y).unwrap();
        gpu.run(&[d.dispatch()]).unwrap();
        let xs = gpu.read(&x).unwrap();
        let in_region = xs
            .chunks(shape.m)
            .filter(|v| dot(u0, v) > 0.0 && dot(u1, v) > 0.0)
            .count();
        if inside {
            assert_eq!(
                in_region, rows,
                "every sample of the held-out set is inside"
            );
        } else {
            assert_eq!(in_region, 0, "no training sample is inside");
        }
        // Reflections preserve the Gaussian's norm distribution: E‖x‖² = m.
        let norm2 = xs.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / rows as f64;
        assert!(
            (norm2 - shape.m as f64).abs() < 0.4,
            "{fold:?}: E‖x‖² = {norm2}"
        );
    }
}

#[test]
fn targets_have_the_exact_moments_and_unit_variance() {
    // Monte Carlo over 40,000 twin samples: the standard error of the mean is 0.005, of the
    // variance about 0.008 (for near-Gaussian targets); 5 standard errors of slack.
    for (shape, seed) in [
        (
            SineShape {
                m: 4,
                modules: 4,
                dim: 1,
                comps: 3,
            },
            1,
        ),
        (
            SineShape {
                m: 3,
                modules: 2,
                dim: 2,
                comps: 2,
            },
            5,
        ),
    ] {
        let t = task(shape, 1, seed, false);
        let spec = SampleSpec {
            shape,
            rows: Rows::Fixed { row0: 0 },
            fold: Fold::None,
            sigma: 1.0,
            data_stream: 11,
        };
        let (_, y) = sample_cpu(&spec, &t.tensor, seed, 40_000);
        let mean = y.iter().sum::<f64>() / y.len() as f64;
        let var = y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (y.len() - 1) as f64;
        assert!(mean.abs() < 0.03, "{shape:?}: mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "{shape:?}: variance {var}");
    }
}

#[test]
fn sampler_rejects_bad_shapes() {
    let gpu = gpu_or_skip!();
    let shape = SineShape {
        m: 3,
        modules: 2,
        dim: 1,
        comps: 1,
    };
    let t = task(shape, 10, 1, false);
    let task_t = gpu.upload(&t.tensor, 1, 1, shape.task_len()).unwrap();
    let seeds = ItemSeeds::upload(gpu, &[1]).unwrap();
    let spec = SampleSpec {
        shape,
        rows: Rows::Fixed { row0: 0 },
        fold: Fold::None,
        sigma: 1.0,
        data_stream: 0,
    };
    let y = gpu.zeros(1, 4, 1).unwrap();
    let wrong_m = gpu.zeros(1, 4, 4).unwrap();
    assert!(sample(gpu, &spec, &task_t, &seeds, &wrong_m, &y).is_err());
    let x = gpu.zeros(1, 4, 3).unwrap();
    let wrong_rows = gpu.zeros(1, 5, 1).unwrap();
    assert!(sample(gpu, &spec, &task_t, &seeds, &x, &wrong_rows).is_err());
    let bad_sigma = SampleSpec { sigma: 0.0, ..spec };
    assert!(sample(gpu, &bad_sigma, &task_t, &seeds, &x, &y).is_err());
    let huge = SampleSpec {
        rows: Rows::Fixed {
            row0: u32::MAX as usize,
        },
        ..spec
    };
    assert!(sample(gpu, &huge, &task_t, &seeds, &x, &y).is_err());
}
