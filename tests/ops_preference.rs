//! The compositional-preference gridworld's device demonstrations (`ops::preference`) against
//! their CPU twin, bit for bit (random shapes, strided operands, streams); the expert's values
//! against brute force over every action sequence (f64) and the f32 twin against the f64 one;
//! the environment's invariants over many draws; the draws' frequencies; a hand-checked world;
//! and the launcher's errors.

mod common;

use hypermod::gpu::{Device, DeviceError, Tensor};
use hypermod::ops::preference::{
    argmax_action, demonstrate, demonstrate_cpu, draw_start, is_wall, next_cell, observe_cpu,
    rewards_per_type, step_cpu, value_iteration_cpu, DemoData, DemoOutputs, WorldShape, WorldState,
    ACTIONS, DOWN, FREE_CELLS, FREE_POS, LEFT, NOTHING, RIGHT, SIDE, UP,
};
use hypermod::ops::rng::RngKey;
use rand::RngExt;

/// The device's five outputs for `tasks × demos` demonstrations, each a plain tensor or (when
/// `padded`) a NaN-padded view at an offset with gaps between items.
struct Outs {
    obs: Tensor,
    q: Tensor,
    mask: Tensor,
    returns: Tensor,
    starts: Tensor,
}

impl Outs {
    fn new(
        gpu: &Device,
        rng: &mut rand::rngs::ChaCha8Rng,
        s: WorldShape,
        tasks: usize,
        demos: usize,
        padded: bool,
    ) -> Outs {
        let h = s.horizon;
        let mut make = |rows: usize, cols: usize| {
            if padded {
                let off = common::size(rng, 1, 5);
                let gap = common::size(rng, 1, 3);
                let zeros = vec![0.0; tasks * rows * cols];
                common::padded_at(gpu, &zeros, tasks, rows, cols, off, gap)
            } else {
                gpu.zeros(tasks, rows, cols).unwrap()
            }
        };
        Outs {
            obs: make(demos * h, s.obs_dim()),
            q: make(demos * h, ACTIONS),
            mask: make(demos * h, 1),
            returns: make(demos, 1),
            starts: make(demos, s.start_len()),
        }
    }

    fn view(&self) -> DemoOutputs<'_> {
        DemoOutputs {
            obs: &self.obs,
            q: &self.q,
            mask: &self.mask,
            returns: &self.returns,
            starts: &self.starts,
        }
    }

    /// The outputs read back, in `DemoData`'s packed layout (no actions).
    fn read(&self, gpu: &Device) -> DemoData {
        DemoData {
            obs: gpu.read(&self.obs).unwrap(),
            q: gpu.read(&self.q).unwrap(),
            mask: gpu.read(&self.mask).unwrap(),
            returns: gpu.read(&self.returns).unwrap(),
            starts: gpu.read(&self.starts).unwrap(),
            actions: Vec::new(),
        }
    }
}

/// Asserts two f32 slices hold the same bits, naming the first difference.
fn assert_bits(got: &[f32], want: &[f32], ctx: &str) {
    assert_eq!(got.len(), want.len(), "{ctx}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!("{ctx}: element {i}: got {} want {}", got[i], want[i]);
    }
}

/// The device outputs equal the twin's bit for bit.
fn assert_same(got: &DemoData, want: &DemoData, ctx: &str) {
    assert_bits(&got.starts, &want.starts, &format!("{ctx}: starts"));
    assert_bits(&got.returns, &want.returns, &format!("{ctx}: returns"));
    assert_bits(&got.mask, &want.mask, &format!("{ctx}: mask"));
    assert_bits(&got.q, &want.q, &format!("{ctx}: q"));
    assert_bits(&got.obs, &want.obs, &format!("{ctx}: obs"));
}

fn random_shape(rng: &mut rand::rngs::ChaCha8Rng, max_horizon: usize) -> WorldShape {
    WorldShape {
        objects: common::size(rng, 1, 4),
        features: common::size(rng, 1, 8),
        preferences: common::size(rng, 1, 10),
        horizon: common::size(rng, 1, max_horizon),
    }
}

#[test]
fn device_matches_twin_bitwise_on_random_shapes() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(2024);
    for case in 0..16 {
        let s = random_shape(&mut rng, 9);
        let (m, f) = (s.preferences, s.features);
        let (tasks, demos) = if case == 0 {
            (1, 1)
        } else {
            (common::size(&mut rng, 1, 5), common::size(&mut rng, 1, 5))
        };
        let gamma: f32 = [0.9, 0.5, 1.0, 0.0][case % 4];
        let gamma = if case >= 4 {
            rng.random_range(0.3f32..1.0)
        } else {
            gamma
        };
        // prefs: one per task (plain or padded) or one shared by broadcast.
        let shared_prefs = case % 4 == 1 && tasks > 1;
        let prefs = common::data(&mut rng, tasks, m, shared_prefs);
        let prefs_t = if shared_prefs {
            common::put(gpu, &prefs, tasks, 1, m, true)
        } else {
            common::put_random_padded(gpu, &mut rng, &prefs, (tasks, 1, m), false)
        };
        // basis: batch 1, broadcast to the tasks, or one per task (padded).
        let per_task_basis = case % 3 == 2;
        let basis = common::uniform(&mut rng, if per_task_basis { tasks } else { 1 } * m * f);
        let basis_t = match case % 3 {
            0 => gpu.upload(&basis, 1, m, f).unwrap(),
            1 => common::put(gpu, &common::repeat(&basis, tasks), tasks, m, f, true),
            _ => common::put_random_padded(gpu, &mut rng, &basis, (tasks, m, f), false),
        };
        let padded = case % 2 == 1;
        let outs = Outs::new(gpu, &mut rng, s, tasks, demos, padded);
        let (seed, s1, s2) = (1000 + case as u64, 7 + case as u64, 1 << 40 | case as u64);
        let d = demonstrate(
            gpu,
            s,
            gamma,
            &prefs_t,
            &basis_t,
            &outs.view(),
            RngKey::new(seed, s1),
        )
        .unwrap();
        let ctx = format!("case {case} {s:?} tasks {tasks} demos {demos} γ {gamma}");
        gpu.run(&[d.dispatch()]).unwrap();
        let first = outs.read(gpu);
        let want = demonstrate_cpu(
            s,
            gamma,
            tasks,
            demos,
            &prefs,
            &basis,
            RngKey::new(seed, s1),
        );
        assert_same(&first, &want, &ctx);
        if padded {
            for t in [&outs.obs, &outs.q, &outs.mask, &outs.returns, &outs.starts] {
                common::assert_gaps_untouched(gpu, t, &ctx);
            }
        }
        // Another stream: the twin's data for that stream, different from the first.
        d.set_stream(gpu, s2);
        gpu.run(&[d.dispatch()]).unwrap();
        let second = outs.read(gpu);
        let want2 = demonstrate_cpu(
            s,
            gamma,
            tasks,
            demos,
            &prefs,
            &basis,
            RngKey::new(seed, s2),
        );
        assert_same(&second, &want2, &format!("{ctx}, stream 2"));
        if tasks * demos >= 4 {
            assert_ne!(
                first.starts, second.starts,
                "{ctx}: streams draw different worlds"
            );
        }
        // Back to the first stream: the same bits again.
        d.set_stream(gpu, s1);
        gpu.run(&[d.dispatch()]).unwrap();
        assert_same(&outs.read(gpu), &first, &format!("{ctx}, stream 1 again"));
    }
}

#[test]
fn the_paper_shape_matches_the_twin() {
    // 4 objects, 8 features, 490-float observations, horizon 8, γ = 0.9: the paper's setting.
    let gpu = gpu_or_skip!();
    let s = WorldShape {
        objects: 4,
        features: 8,
        preferences: 8,
        horizon: 8,
    };
    assert_eq!(s.obs_dim(), 490);
    assert_eq!(s.states(), 304);
    let mut rng = common::rng(8);
    let (tasks, demos) = (3, 4);
    let prefs = common::uniform(&mut rng, tasks * s.preferences);
    let basis = common::uniform(&mut rng, s.preferences * s.features);
    let prefs_t = gpu.upload(&prefs, tasks, 1, s.preferences).unwrap();
    let basis_t = gpu.upload(&basis, 1, s.preferences, s.features).unwrap();
    let outs = Outs::new(gpu, &mut rng, s, tasks, demos, false);
    let key = RngKey::new(77, 3);
    let d = demonstrate(gpu, s, 0.9, &prefs_t, &basis_t, &outs.view(), key).unwrap();
    gpu.run(&[d.dispatch()]).unwrap();
    let want = demonstrate_cpu(s, 0.9, tasks, demos, &prefs, &basis, key);
    assert_same(&outs.read(gpu), &want, "paper shape");
}

/// The best discounted sum over every action sequence of `len` steps starting with `first`
/// (NOTHING a plain stay: the episode never ends).
fn brute_force(
    s: WorldShape,
    start: &WorldState,
    first: usize,
    len: usize,
    gamma: f64,
    rewards: &[f64],
) -> f64 {
    let rest = len - 1;
    let mut best = f64::NEG_INFINITY;
    for code in 0..ACTIONS.pow(rest as u32) {
        let mut st = *start;
        let (mut total, mut disc, mut c) = (0.0, 1.0, code);
        for t in 0..len {
            let a = if t == 0 {
                first
            } else {
                let a = c % ACTIONS;
                c /= ACTIONS;
                a
            };
            total += disc * step_cpu(s, &mut st, a, rewards);
            st.done = false;
            disc *= gamma;
        }
        best = best.max(total);
    }
    best
}

#[test]
fn expert_values_are_optimal_by_brute_force() {
    let mut rng = common::rng(6);
    for case in 0..24 {
        let s = random_shape(&mut rng, 6);
        let (m, f) = (s.preferences, s.features);
        let prefs = common::uniform(&mut rng, m);
        let basis = common::uniform(&mut rng, m * f);
        let gamma = rng.random_range(0.5f32..1.0);
        let r32 = rewards_per_type(s, &prefs, &basis);
        let r64 = rewards_per_type(s, &common::widen(&prefs), &common::widen(&basis));
        let start = draw_start(s, RngKey::new(case, 9), case as usize);
        let q64 = value_iteration_cpu(s, gamma as f64, &start, &r64);
        let q32 = value_iteration_cpu(s, gamma, &start, &r32);
        let ctx = format!("case {case} {s:?} γ {gamma}");
        // The start state, and a few others (any agent cell, any availability).
        let mut states = vec![start];
        for _ in 0..3 {
            let mut other = start;
            other.agent = common::size(&mut rng, 0, FREE_CELLS - 1);
            other.available = rng.random_range(0..1u32 << s.objects);
            states.push(other);
        }
        for st in &states {
            let i = st.index(s);
            for a in 0..ACTIONS {
                let want = brute_force(s, st, a, s.horizon, gamma as f64, &r64);
                let got = q64[i * ACTIONS + a];
                assert!(
                    (got - want).abs() <= 1e-12 * (1.0 + want.abs()),
                    "{ctx}: state {st:?} action {a}: value iteration {got}, brute force {want}"
                );
            }
        }
        for (i, (&a, &b)) in q32.iter().zip(&q64).enumerate() {
            assert!(
                (a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{ctx}: Q[{i}] f32 {a} vs f64 {b}"
            );
        }
    }
}

/// Every invariant of one twin batch, re-simulated with the public environment step.
fn check_invariants(
    s: WorldShape,
    demos: usize,
    gamma: f32,
    rewards: &[Vec<f32>],
    data: &DemoData,
) {
    let (h, od, sl, f) = (s.horizon, s.obs_dim(), s.start_len(), s.features);
    let ch = f + 2;
    let mut obs_row = vec![0.0; od];
    for g in 0..rewards.len() * demos {
        let ctx = format!("{s:?} demo {g}");
        let start = &data.starts[g * sl..(g + 1) * sl];
        let mut st = WorldState::from_start(s, start);
        assert_eq!(st.start(s), start, "{ctx}: start round trip");
        let k = s.objects;
        let mut cells: Vec<usize> = st.cells[..k].to_vec();
        cells.push(st.agent);
        cells.sort_unstable();
        cells.dedup();
        assert_eq!(
            cells.len(),
            k + 1,
            "{ctx}: objects and agent on distinct cells {start:?}"
        );
        assert!(
            cells.iter().all(|&c| c < FREE_CELLS),
            "{ctx}: cells {start:?}"
        );
        assert!(
            st.types[..k].iter().all(|&t| t < f),
            "{ctx}: types {start:?}"
        );
        // The rewards this demonstration's task earns.
        let rewards = &rewards[g / demos];
        let q_all = value_iteration_cpu(s, gamma, &st, rewards);
        let mut total = 0.0f32;
        let mut prev_mask = 1.0;
        for t in 0..h {
            let row = g * h + t;
            let obs = &data.obs[row * od..(row + 1) * od];
            let q = &data.q[row * ACTIONS..(row + 1) * ACTIONS];
            let mask = data.mask[row];
            assert!(mask == 0.0 || mask == 1.0, "{ctx}: mask {mask}");
            assert!(mask <= prev_mask, "{ctx}: masks are a prefix of ones");
            if t == 0 {
                assert_eq!(mask, 1.0, "{ctx}: the first row is live");
            }
            prev_mask = mask;
            assert_eq!(mask == 0.0, st.done, "{ctx} row {t}: mask vs done");
            // Channel sums: 30 walls, one agent, one object per available object.
            let sum = |c: usize| (0..SIDE * SIDE).map(|p| obs[p * ch + c]).sum::<f32>();
            assert_eq!(sum(f + 1), 30.0, "{ctx} row {t}: walls");
            assert_eq!(sum(f), 1.0, "{ctx} row {t}: agent");
            let objects: f32 = (0..f).map(sum).sum();
            assert_eq!(
                objects,
                st.available.count_ones() as f32,
                "{ctx} row {t}: available objects"
            );
            observe_cpu(s, &st, &mut obs_row);
            assert_eq!(obs, &obs_row[..], "{ctx} row {t}: observation");
            let i = st.index(s);
            assert_eq!(
                q,
                &q_all[i * ACTIONS..(i + 1) * ACTIONS],
                "{ctx} row {t}: values"
            );
            let a = data.actions[row];
            assert_eq!(a, argmax_action(q), "{ctx} row {t}: greedy action");
            assert!(
                q.iter().all(|&v| v <= q[a]) && q[..a].iter().all(|&v| v < q[a]),
                "{ctx} row {t}: action {a} is the first argmax of {q:?}"
            );
            if !st.done {
                total += step_cpu(s, &mut st, a, rewards);
            }
        }
        assert_eq!(
            total.to_bits(),
            data.returns[g].to_bits(),
            "{ctx}: return vs re-simulation"
        );
    }
}

#[test]
fn environment_invariants_hold_over_many_draws() {
    let mut rng = common::rng(31);
    for case in 0..12 {
        let s = random_shape(&mut rng, 9);
        let (tasks, demos) = (common::size(&mut rng, 1, 4), common::size(&mut rng, 5, 20));
        let (m, f) = (s.preferences, s.features);
        let prefs = common::uniform(&mut rng, tasks * m);
        let basis = common::uniform(&mut rng, m * f);
        let gamma = rng.random_range(0.5f32..1.0);
        let rewards: Vec<Vec<f32>> = (0..tasks)
            .map(|b| rewards_per_type(s, &prefs[b * m..(b + 1) * m], &basis))
            .collect();
        let data = demonstrate_cpu(s, gamma, tasks, demos, &prefs, &basis, RngKey::new(case, 1));
        check_invariants(s, demos, gamma, &rewards, &data);
    }
}

#[test]
fn draws_are_uniform_over_types_and_cells() {
    // 40 tasks × 50 demonstrations; the device's draws (equal to the twin's) when there is one.
    let s = WorldShape {
        objects: 4,
        features: 7,
        preferences: 3,
        horizon: 1,
    };
    let (tasks, demos) = (40, 50);
    let mut rng = common::rng(12);
    let prefs = common::uniform(&mut rng, tasks * s.preferences);
    let basis = common::uniform(&mut rng, s.preferences * s.features);
    let key = RngKey::new(99, 5);
    let twin = demonstrate_cpu(s, 0.9, tasks, demos, &prefs, &basis, key);
    let starts = match common::gpu() {
        Some(gpu) => {
            let prefs_t = gpu.upload(&prefs, tasks, 1, s.preferences).unwrap();
            let basis_t = gpu.upload(&basis, 1, s.preferences, s.features).unwrap();
            let outs = Outs::new(gpu, &mut rng, s, tasks, demos, false);
            let d = demonstrate(gpu, s, 0.9, &prefs_t, &basis_t, &outs.view(), key).unwrap();
            gpu.run(&[d.dispatch()]).unwrap();
            let got = outs.read(gpu);
            assert_same(&got, &twin, "2000 demonstrations");
            got.starts
        }
        None => twin.starts,
    };
    let n = tasks * demos;
    let k = s.objects;
    let (mut types, mut agent, mut objects) = (
        vec![0usize; s.features],
        vec![0usize; FREE_CELLS],
        vec![0usize; FREE_CELLS],
    );
    for st in starts.chunks(s.start_len()) {
        let w = WorldState::from_start(s, st);
        w.types[..k].iter().for_each(|&t| types[t] += 1);
        w.cells[..k].iter().for_each(|&c| objects[c] += 1);
        agent[w.agent] += 1;
    }
    // Binomial counts within 4 standard deviations of their means.
    let check = |what: &str, counts: &[usize], trials: usize, p: f64| {
        let (mean, sd) = (trials as f64 * p, (trials as f64 * p * (1.0 - p)).sqrt());
        for (i, &c) in counts.iter().enumerate() {
            assert!(
                (c as f64 - mean).abs() <= 4.0 * sd,
                "{what} {i}: {c} draws, expected {mean:.1} ± {sd:.1}"
            );
        }
    };
    check("type", &types, n * k, 1.0 / s.features as f64);
    check("agent cell", &agent, n, 1.0 / FREE_CELLS as f64);
    // Each cell holds one of the k objects with probability k/19 (counts over n worlds).
    check("object cell", &objects, n, k as f64 / FREE_CELLS as f64);
}

#[test]
fn the_layout_and_a_hand_checked_world() {
    // Walls, free cells in row-major order, moves.
    assert_eq!((0..SIDE * SIDE).filter(|&p| is_wall(p)).count(), 30);
    assert_eq!(
        FREE_POS,
        [8, 9, 11, 12, 15, 16, 18, 19, 23, 24, 25, 29, 30, 32, 33, 36, 37, 39, 40]
    );
    assert_eq!(next_cell(0, UP), 0, "the top wall");
    assert_eq!(next_cell(0, LEFT), 0, "the left wall");
    assert_eq!(next_cell(0, RIGHT), 1);
    assert_eq!(next_cell(1, RIGHT), 1, "the middle wall");
    assert_eq!(next_cell(5, DOWN), 8, "(2,2) → the corridor (3,2)");
    assert_eq!(next_cell(8, LEFT), 8, "(3,1) is a wall");
    assert_eq!(next_cell(9, UP), 9, "(2,3) is a wall");
    assert_eq!(next_cell(10, DOWN), 13, "(3,4) → (4,4)");
    for c in 0..FREE_CELLS {
        assert_eq!(next_cell(c, NOTHING), c);
    }

    // One object of type 1 right of the agent (cells 0 → 1), worth r = 2; γ = 0.5, H = 3.
    let s = WorldShape {
        objects: 1,
        features: 2,
        preferences: 1,
        horizon: 3,
    };
    let rewards = rewards_per_type(s, &[2.0f32], &[-1.0, 1.0]);
    assert_eq!(rewards, [-1.0, 1.0].map(|b| 2.0 * b));
    let start = WorldState::from_start(s, &[1.0, 1.0, 0.0]);
    let q = value_iteration_cpu(s, 0.5f32, &start, &rewards);
    let i = start.index(s);
    // RIGHT takes it now; staying (NOTHING, UP, LEFT) takes it one step later; DOWN (to (2,1))
    // two steps later, via (2,2).
    assert_eq!(
        &q[i * ACTIONS..(i + 1) * ACTIONS],
        &[1.0, 1.0, 2.0, 0.5, 1.0]
    );
    let mut st = start;
    assert_eq!(argmax_action(&q[i * ACTIONS..(i + 1) * ACTIONS]), RIGHT);
    assert_eq!(step_cpu(s, &mut st, RIGHT, &rewards), 2.0);
    assert_eq!((st.agent, st.available, st.done), (1, 0, false));
    // Nothing is left: every value is 0 and the expert stops.
    let j = st.index(s);
    assert_eq!(&q[j * ACTIONS..(j + 1) * ACTIONS], &[0.0; 5]);
    assert_eq!(step_cpu(s, &mut st, NOTHING, &rewards), 0.0);
    assert!(st.done);
    assert_eq!(
        step_cpu(s, &mut st, LEFT, &rewards),
        0.0,
        "a finished episode stays"
    );
    assert_eq!(st.agent, 1);
    // An object on the agent's own cell is picked up by NOTHING (the `_move` rule).
    let mut on = WorldState::from_start(s, &[0.0, 4.0, 4.0]);
    assert_eq!(step_cpu(s, &mut on, NOTHING, &rewards), -2.0);
    assert_eq!((on.available, on.done), (0, true));
}

#[test]
fn bad_shapes_and_arguments_are_errors() {
    let gpu = gpu_or_skip!();
    let s = WorldShape {
        objects: 2,
        features: 3,
        preferences: 4,
        horizon: 2,
    };
    let (tasks, demos) = (2, 3);
    let mut rng = common::rng(1);
    let prefs = gpu.zeros(tasks, 1, 4).unwrap();
    let basis = gpu.zeros(1, 4, 3).unwrap();
    let outs = Outs::new(gpu, &mut rng, s, tasks, demos, false);
    let key = RngKey::new(1, 2);
    let shape_err = |r: Result<_, DeviceError>, what: &str| match r {
        Err(DeviceError::Shape { .. }) => {}
        Err(e) => panic!("{what}: expected a shape error, got {e}"),
        Ok(_) => panic!("{what}: expected a shape error"),
    };
    let arg_err = |r: Result<_, DeviceError>, what: &str| match r {
        Err(DeviceError::InvalidArgument { .. }) => {}
        Err(e) => panic!("{what}: expected an argument error, got {e}"),
        Ok(_) => panic!("{what}: expected an argument error"),
    };
    assert!(demonstrate(gpu, s, 0.9, &prefs, &basis, &outs.view(), key).is_ok());
    let wrong_prefs = gpu.zeros(tasks, 1, 5).unwrap();
    shape_err(
        demonstrate(gpu, s, 0.9, &wrong_prefs, &basis, &outs.view(), key),
        "prefs of 5",
    );
    let wrong_basis = gpu.zeros(1, 4, 4).unwrap();
    shape_err(
        demonstrate(gpu, s, 0.9, &prefs, &wrong_basis, &outs.view(), key),
        "basis 4 × 4",
    );
    let three_bases = gpu.zeros(3, 4, 3).unwrap();
    shape_err(
        demonstrate(gpu, s, 0.9, &prefs, &three_bases, &outs.view(), key),
        "basis of another batch",
    );
    for (bad, what) in [
        (WorldShape { objects: 5, ..s }, "5 objects"),
        (WorldShape { objects: 0, ..s }, "0 objects"),
        (WorldShape { features: 9, ..s }, "9 features"),
        (
            WorldShape {
                preferences: 17,
                ..s
            },
            "17 preferences",
        ),
        (WorldShape { horizon: 0, ..s }, "horizon 0"),
        (WorldShape { horizon: 65, ..s }, "horizon 65"),
    ] {
        arg_err(
            demonstrate(gpu, bad, 0.9, &prefs, &basis, &outs.view(), key),
            what,
        );
    }
    for gamma in [f32::NAN, -0.1, 1.5] {
        arg_err(
            demonstrate(gpu, s, gamma, &prefs, &basis, &outs.view(), key),
            &format!("γ = {gamma}"),
        );
    }
    // A broadcast output, outputs of other sizes, one buffer bound to two outputs.
    let shared_obs = gpu
        .zeros(1, demos * 2, s.obs_dim())
        .unwrap()
        .broadcast(tasks)
        .unwrap();
    let mut v = outs.view();
    v.obs = &shared_obs;
    shape_err(
        demonstrate(gpu, s, 0.9, &prefs, &basis, &v, key),
        "broadcast obs",
    );
    let short_q = gpu.zeros(tasks, demos * 2 - 1, ACTIONS).unwrap();
    let mut v = outs.view();
    v.q = &short_q;
    shape_err(demonstrate(gpu, s, 0.9, &prefs, &basis, &v, key), "q rows");
    let wide_starts = gpu.zeros(tasks, demos, s.start_len() + 1).unwrap();
    let mut v = outs.view();
    v.starts = &wide_starts;
    shape_err(
        demonstrate(gpu, s, 0.9, &prefs, &basis, &v, key),
        "starts cols",
    );
    let mut v = outs.view();
    v.mask = &outs.returns;
    shape_err(
        demonstrate(gpu, s, 0.9, &prefs, &basis, &v, key),
        "mask rows",
    );
    // An input and an output in one buffer (WebGPU forbids that aliasing).
    let pq = gpu.zeros(1, 1, 4096).unwrap();
    let prefs_in = pq.view(0, tasks, 1, 4, 4).unwrap();
    let q_out = pq
        .view(64, tasks, demos * 2, ACTIONS, demos * 2 * ACTIONS)
        .unwrap();
    let mut v = outs.view();
    v.q = &q_out;
    shape_err(
        demonstrate(gpu, s, 0.9, &prefs_in, &basis, &v, key),
        "prefs and q in one buffer",
    );
}
