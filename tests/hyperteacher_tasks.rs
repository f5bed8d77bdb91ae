//! Hyperteacher task space and splits (CPU only): the counts of spec §2.3 and §2.5, enumeration
//! order, split properties, OOD-by-hotness sets, continuous coefficients and validation errors.

use std::collections::HashSet;

use hypermod::experiments::hyperteacher::tasks::{
    Coefficients, Task, TaskError, TaskSpace, TaskSplit, TaskSupport,
};

fn space(m: usize, k: usize) -> TaskSpace {
    TaskSpace::new(m, k, 2).unwrap()
}

fn random(frac_ood: f64, seed: u64) -> TaskSupport {
    TaskSupport::Random { frac_ood, seed }
}

fn set(tasks: &[Task]) -> HashSet<&Task> {
    tasks.iter().collect()
}

/// No task on both sides, no duplicates, and every task belongs to the space.
fn check_disjoint(space: &TaskSpace, split: &TaskSplit) {
    let all = space.tasks();
    let all = set(&all);
    let (train, ood) = (set(&split.train), set(&split.ood));
    assert_eq!(train.len(), split.train.len(), "duplicate training task");
    assert_eq!(ood.len(), split.ood.len(), "duplicate OOD task");
    assert!(train.is_disjoint(&ood), "a task is both training and OOD");
    assert!(train.iter().chain(&ood).all(|t| all.contains(t)));
}

#[test]
fn counts_of_table_2_3() {
    for (m, per_layer, total, ood) in [
        (4, 10, 100, 25),
        (8, 36, 1_296, 324),
        (16, 136, 18_496, 4_624),
    ] {
        let s = space(m, 2);
        assert_eq!(s.layer_combinations().len(), per_layer, "M = {m}");
        assert_eq!(s.num_tasks(), total, "M = {m}");
        assert_eq!(s.tasks().len(), total, "M = {m}");
        assert_eq!(s.latent_len(), 2 * m);
        let split = s.split(random(0.25, 2023)).unwrap();
        assert_eq!((split.train.len(), split.ood.len()), (total - ood, ood));
        check_disjoint(&s, &split);
        // Random covers the space.
        assert_eq!(split.train.len() + split.ood.len(), total);
    }
}

#[test]
fn enumeration_order() {
    let s = space(4, 2);
    let combos = s.layer_combinations();
    let expected: Vec<Vec<usize>> = vec![
        vec![0],
        vec![1],
        vec![2],
        vec![3],
        vec![0, 1],
        vec![0, 2],
        vec![0, 3],
        vec![1, 2],
        vec![1, 3],
        vec![2, 3],
    ];
    assert_eq!(combos, expected);
    // Last layer fastest, like itertools.product.
    let tasks = s.tasks();
    assert_eq!(tasks[0].active(), &[vec![0], vec![0]]);
    assert_eq!(tasks[1].active(), &[vec![0], vec![1]]);
    assert_eq!(tasks[10].active(), &[vec![1], vec![0]]);
    assert_eq!(tasks[99].active(), &[vec![2, 3], vec![2, 3]]);
    // Three layers and K = 3: count and ordering carry over.
    let s = TaskSpace::new(5, 3, 3).unwrap();
    assert_eq!(s.layer_combinations().len(), 5 + 10 + 10);
    assert_eq!(s.tasks().len(), 25usize.pow(3));
    assert_eq!(s.layer_combinations()[15], vec![0, 1, 2]);
    assert_eq!(s.layer_combinations()[24], vec![2, 3, 4]);
}

#[test]
fn every_latent_is_valid() {
    for (m, k, l) in [(4, 2, 2), (8, 2, 2), (6, 3, 1), (5, 5, 3)] {
        let s = TaskSpace::new(m, k, l).unwrap();
        let tasks = s.tasks();
        let z = s.latents(&tasks, Coefficients::Binary).unwrap();
        assert_eq!(z.len(), tasks.len() * l * m);
        for (t, zt) in tasks.iter().zip(z.chunks(l * m)) {
            assert_eq!(t.latent(), zt);
            for (layer, row) in t.active().iter().zip(zt.chunks(m)) {
                assert!(row.iter().all(|&v| v == 0.0 || v == 1.0));
                let ones = row.iter().filter(|&&v| v == 1.0).count();
                assert!((1..=k).contains(&ones), "{ones} active of K = {k}");
                assert_eq!(ones, layer.len());
                assert!(layer.iter().all(|&i| row[i] == 1.0));
            }
        }
        // All latents distinct.
        let distinct: HashSet<Vec<u32>> = z
            .chunks(l * m)
            .map(|c| c.iter().map(|v| v.to_bits()).collect())
            .collect();
        assert_eq!(distinct.len(), tasks.len());
    }
}

#[test]
fn random_split_is_seeded() {
    let s = space(8, 2);
    let a = s.split(random(0.25, 7)).unwrap();
    let b = s.split(random(0.25, 7)).unwrap();
    let c = s.split(random(0.25, 8)).unwrap();
    assert_eq!(a, b);
    assert_ne!(set(&a.ood), set(&c.ood));
    // Floor of frac_ood · N.
    let d = s.split(random(0.3, 1)).unwrap();
    assert_eq!(d.ood.len(), 388); // ⌊0.3 · 1296⌋ = ⌊388.8⌋
    check_disjoint(&s, &d);
}

#[test]
fn non_compositional_split() {
    let s = space(8, 2);
    let split = s.split(TaskSupport::NonCompositional).unwrap();
    assert_eq!((split.train.len(), split.ood.len()), (1_008, 288));
    check_disjoint(&s, &split);
    // Latent entry of module M−1 in the last layer: 1 exactly on the OOD side.
    let last = 2 * 8 - 1;
    assert!(split.ood.iter().all(|t| t.latent()[last] == 1.0));
    assert!(split.train.iter().all(|t| t.latent()[last] == 0.0));
}

/// Connected per-layer option, checked from its definition rather than the library's set.
fn is_connected_layer(layer: &[usize], m: usize) -> bool {
    match *layer {
        [_] => true,
        [a, b] => {
            let d = b - a;
            d == 1 || d == 2 || d == m - 1 || d == m - 2
        }
        _ => false,
    }
}

fn is_disconnected_task(t: &Task, m: usize) -> bool {
    let flat: Vec<usize> = t.active().iter().flatten().copied().collect();
    let half = flat.iter().all(|&i| i < m / 2) || flat.iter().all(|&i| i >= m / 2);
    half && (t.has_hotness(1) || t.has_hotness(2))
}

#[test]
fn connected_and_disconnected_splits() {
    let m = 8;
    let s = space(m, 2);
    let conn = s.split(TaskSupport::Connected).unwrap();
    let disc = s.split(TaskSupport::Disconnected).unwrap();
    assert_eq!(conn.train.len(), 576);
    assert_eq!(disc.train.len(), 104);
    assert_eq!(conn.ood.len(), 698);
    assert_eq!(conn.ood, disc.ood, "both supports share one OOD set");
    check_disjoint(&s, &conn);
    check_disjoint(&s, &disc);
    let both = set(&conn.train).intersection(&set(&disc.train)).count();
    assert_eq!(both, 82);
    assert_eq!(576 + 104 - both + 698, s.num_tasks());
    assert!(conn
        .train
        .iter()
        .all(|t| t.active().iter().all(|l| is_connected_layer(l, m))));
    assert!(disc.train.iter().all(|t| is_disconnected_task(t, m)));
    for t in &conn.ood {
        let connected = t.active().iter().all(|l| is_connected_layer(l, m));
        assert!(!connected && !is_disconnected_task(t, m));
    }
    // M = 6 is the smallest supported space: 18 options per layer.
    let s6 = space(6, 2);
    assert_eq!(
        s6.split(TaskSupport::Connected).unwrap().train.len(),
        18 * 18
    );
}

#[test]
fn hotness_sets() {
    assert_eq!(space(4, 2).hotness_levels(), vec![1, 2, 4]);
    assert_eq!(space(8, 2).hotness_levels(), vec![1, 2, 4, 8]);
    assert_eq!(space(6, 2).hotness_levels(), vec![1, 2, 4]);
    assert_eq!(TaskSpace::new(1, 1, 2).unwrap().hotness_levels(), vec![1]);

    let s = space(8, 2);
    let split = s.split(random(0.25, 3)).unwrap();
    let ood = set(&split.ood);
    let mut sizes = 0;
    for k in 1..=2 {
        let set_k = s.ood_with_hotness(&split, k).unwrap();
        assert!(!set_k.is_empty());
        assert!(set_k.iter().all(|t| t.has_hotness(k) && ood.contains(t)));
        let expected = split.ood.iter().filter(|t| t.has_hotness(k)).count();
        assert_eq!(set_k.len(), expected);
        sizes += set_k.len();
    }
    let mixed = split
        .ood
        .iter()
        .filter(|t| t.active()[0].len() != t.active()[1].len())
        .count();
    assert_eq!(sizes + mixed, split.ood.len());
    // Every all-one-hot task is connected, so the shared OOD set has no 1-hot tasks.
    let conn = s.split(TaskSupport::Connected).unwrap();
    assert!(s.ood_with_hotness(&conn, 1).unwrap().is_empty());
    assert!(!s.ood_with_hotness(&conn, 2).unwrap().is_empty());

    let all = s.tasks();
    let all = set(&all);
    for k in [4, 8] {
        let fresh = s.random_k_hot(k, 200, 11).unwrap();
        assert_eq!(fresh.len(), 200);
        for t in &fresh {
            assert!(t.has_hotness(k));
            assert_eq!((t.modules(), t.layers()), (8, 2));
            for layer in t.active() {
                assert!(layer.windows(2).all(|w| w[0] < w[1]));
                assert!(layer.iter().all(|&i| i < 8));
            }
            assert!(!all.contains(t));
        }
        assert_eq!(fresh, s.random_k_hot(k, 200, 11).unwrap());
        let z = s.latents(&fresh, Coefficients::Binary).unwrap();
        assert_eq!(z.iter().filter(|&&v| v == 1.0).count(), 200 * 2 * k);
    }
    assert_ne!(
        s.random_k_hot(4, 50, 1).unwrap(),
        s.random_k_hot(4, 50, 2).unwrap()
    );
    // Every module shows up in random 4-hot layers.
    let seen: HashSet<usize> = s
        .random_k_hot(4, 50, 1)
        .unwrap()
        .iter()
        .flat_map(|t| t.active().iter().flatten().copied().collect::<Vec<_>>())
        .collect();
    assert_eq!(seen.len(), 8);
}

#[test]
fn continuous_coefficients() {
    let s = space(8, 2);
    let tasks = s.tasks();
    let z = s
        .latents(&tasks, Coefficients::Continuous { seed: 5 })
        .unwrap();
    for (t, zt) in tasks.iter().zip(z.chunks(16)) {
        for (layer, row) in t.active().iter().zip(zt.chunks(8)) {
            for (i, &v) in row.iter().enumerate() {
                if layer.contains(&i) {
                    assert!((0.5..1.0).contains(&v), "active entry {v}");
                } else {
                    assert_eq!(v, 0.0);
                }
            }
            // Σ w/(Σw + 1) over the layer lies in [0, 1).
            let simplex: f32 = layer.iter().map(|&i| 2.0 * row[i] - 1.0).sum();
            assert!((0.0..1.0 + 1e-6).contains(&simplex), "{simplex}");
        }
    }
    assert_eq!(
        z,
        s.latents(&tasks, Coefficients::Continuous { seed: 5 })
            .unwrap()
    );
    assert_ne!(
        z,
        s.latents(&tasks, Coefficients::Continuous { seed: 6 })
            .unwrap()
    );
    // Not degenerate: one-hot entries 0.5 + 0.5·w/(w + 1) average 0.5 + 0.5·E[w/(w+1)] ≈ 0.70.
    let one_hot: Vec<f32> = tasks
        .iter()
        .zip(z.chunks(16))
        .filter(|(t, _)| t.has_hotness(1))
        .flat_map(|(t, zt)| vec![zt[t.active()[0][0]], zt[8 + t.active()[1][0]]])
        .collect();
    let mean = one_hot.iter().sum::<f32>() / one_hot.len() as f32;
    assert!((0.66..0.74).contains(&mean), "mean {mean}");
}

fn err_text<T: std::fmt::Debug>(r: Result<T, TaskError>) -> (TaskError, String) {
    let e = r.unwrap_err();
    let text = e.to_string();
    (e, text)
}

#[test]
fn validation_errors() {
    let (e, t) = err_text(TaskSpace::new(0, 0, 2));
    assert!(matches!(e, TaskError::InvalidSpace { .. }));
    assert!(t.contains("M ≥ 1"), "{t}");
    let (_, t) = err_text(TaskSpace::new(4, 2, 0));
    assert!(t.contains("L ≥ 1"), "{t}");
    let (_, t) = err_text(TaskSpace::new(4, 5, 2));
    assert!(
        t.contains("max_hot must lie in 1..=M") && t.contains("K = 5"),
        "{t}"
    );
    let (_, t) = err_text(TaskSpace::new(4, 0, 2));
    assert!(t.contains("max_hot must lie in 1..=M"), "{t}");
    let (e, t) = err_text(TaskSpace::new(64, 4, 2));
    assert!(matches!(e, TaskError::TooManyTasks { .. }));
    assert!(t.contains("more than the limit"), "{t}");
    // Absurd sizes are rejected without overflow or a long loop.
    for (m, k, l) in [(usize::MAX, 3, 2), (1, 1, usize::MAX), (1000, 1000, 1000)] {
        assert!(matches!(
            TaskSpace::new(m, k, l),
            Err(TaskError::TooManyTasks { .. })
        ));
    }

    for (m, k) in [(4, 2), (7, 2), (8, 3), (8, 1)] {
        for support in [TaskSupport::Connected, TaskSupport::Disconnected] {
            let (e, t) = err_text(space(m, k).split(support));
            assert!(matches!(e, TaskError::UnsupportedSplit { .. }));
            assert!(t.contains("needs K = 2, M even and M > 4"), "{t}");
            assert!(t.contains(support.name()), "{t}");
        }
    }

    let s = space(4, 2);
    for frac in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
        let (e, t) = err_text(s.split(random(frac, 0)));
        assert!(matches!(e, TaskError::InvalidFraction { .. }));
        assert!(
            t.contains("frac_ood must be a finite number in [0, 1]"),
            "{t}"
        );
    }
    let (_, t) = err_text(s.split(random(0.0, 0)));
    assert_eq!(t, "task_support `random` leaves no OOD task (of 100)");
    let (_, t) = err_text(s.split(random(0.005, 0)));
    assert!(t.contains("no OOD task"), "{t}");
    let (_, t) = err_text(s.split(random(1.0, 0)));
    assert_eq!(t, "task_support `random` leaves no training task (of 100)");
    let (_, t) = err_text(
        TaskSpace::new(1, 1, 1)
            .unwrap()
            .split(TaskSupport::NonCompositional),
    );
    assert_eq!(
        t,
        "task_support `non_compositional` leaves no training task (of 1)"
    );

    let split = s.split(random(0.25, 0)).unwrap();
    for k in [0, 3, 4] {
        let (e, t) = err_text(s.ood_with_hotness(&split, k));
        assert!(matches!(e, TaskError::InvalidHotness { .. }));
        assert!(t.contains("use random_k_hot for k > K"), "{t}");
    }
    for k in [0, 1, 2, 5] {
        let (_, t) = err_text(s.random_k_hot(k, 1, 0));
        assert!(t.contains("need K < k ≤ M (2 < k ≤ 4)"), "{t}");
    }

    let other = space(8, 2).tasks();
    let (e, t) = err_text(s.latents(&other[..3], Coefficients::Binary));
    assert!(matches!(e, TaskError::ForeignTask { index: 0, .. }));
    assert!(t.contains("M = 8") && t.contains("space has M = 4"), "{t}");
}
