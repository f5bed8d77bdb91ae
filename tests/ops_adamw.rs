//! AdamW vs its CPU twin over consecutive steps (shared B = 1 and per-item B > 1 state, clipping
//! on/off, weight decay on/off, strided views, learning-rate changes, per-item learning rates and
//! weight decays with per-item schedules), reset, skipping of an item with a non-finite gradient,
//! the first step against optax's closed form, and argument errors (including per-item counts).

mod common;

use rand::RngExt;

use hypermod::gpu::{Gpu, GpuTensor, Step};
use hypermod::ops::adamw::{adamw_per_item_cpu, AdamW, AdamWConfig, AdamWHostState};
use hypermod::Error;

/// f32 machine epsilon (2u). Bounds below count roundings in EPS rather than u: the GPU and the
/// f32 twin each round, so their difference is up to twice either one's error.
const EPS: f64 = f32::EPSILON as f64;

/// Relative error of the clip scale max_norm/‖g‖ between GPU and twin: the GPU's tree sum of n ≤
/// 2000 squares is within γ_28 ≈ 14 EPS of the twin's (exactly rounded) one, halved by the square
/// root, plus sqrt (≤ 3 ulp on Vulkan) and division (≤ 2.5 ulp): ≤ 13 EPS; 32 leaves margin.
const REL_SCALE: f64 = 32.0 * EPS;

/// Relative error of u = m̂ / (sqrt(v̂ + eps_root) + eps) given exact m and v: two bias-correction
/// divisions (2.5 ulp each on GPUs), sqrt (≤ 3 ulp, halving the v̂ error), the eps addition and
/// the final division: ≈ 10 ulp; 16 EPS.
const REL_U: f64 = 16.0 * EPS;

/// A GPU optimiser, its f32 twin, and per-element error bounds propagated step by step.
struct Harness<'g> {
    gpu: &'g Gpu,
    cfg: AdamWConfig,
    shape: (usize, usize, usize),
    params: GpuTensor,
    /// Raw buffer behind `grads` (a strided view with NaN gaps when `strided`).
    grads_raw: GpuTensor,
    strided_grads: bool,
    opt: AdamW,
    /// Per-item learning rates and weight decays the twin uses (mirroring the GPU's tensors).
    lr: Vec<f32>,
    wd: Vec<f32>,
    host_p: Vec<f32>,
    state: AdamWHostState<f32>,
    /// Bounds on |GPU − twin| of p, m, v.
    tol_p: Vec<f64>,
    tol_m: Vec<f64>,
    tol_v: Vec<f64>,
}

/// Logical (item-major) data as a NaN-padded strided view ([`common::padded`]) or packed.
fn place(gpu: &Gpu, host: &[f32], (b, r, c): (usize, usize, usize), strided: bool) -> GpuTensor {
    if strided {
        common::padded(gpu, host, b, r, c)
    } else {
        common::put(gpu, host, b, r, c, false)
    }
}

impl<'g> Harness<'g> {
    fn new(
        gpu: &'g Gpu,
        cfg: AdamWConfig,
        shape: (usize, usize, usize),
        p0: &[f32],
        strided_p: bool,
        strided_g: bool,
    ) -> Self {
        let b = shape.0;
        let (lr, wd) = (vec![cfg.lr; b], vec![cfg.weight_decay; b]);
        Self::with_items(gpu, cfg, shape, p0, (strided_p, strided_g), None, lr, wd)
    }

    /// A harness whose optimiser has per-item `lr` / `wd`: built by `new_per_item` when `per_item`
    /// is `Some(true)`, by `new` followed by the per-item setters when `Some(false)`, by `new`
    /// alone (values taken from `cfg`) when `None`.
    #[allow(clippy::too_many_arguments)]
    fn with_items(
        gpu: &'g Gpu,
        cfg: AdamWConfig,
        shape: (usize, usize, usize),
        p0: &[f32],
        (strided_p, strided_g): (bool, bool),
        per_item: Option<bool>,
        lr: Vec<f32>,
        wd: Vec<f32>,
    ) -> Self {
        let (b, r, c) = shape;
        let params = place(gpu, p0, shape, strided_p);
        let grads = place(gpu, &vec![0.0; p0.len()], shape, strided_g);
        let grads_raw = grads
            .view(0, 1, 1, grads.capacity(), grads.capacity())
            .unwrap();
        let opt = match per_item {
            Some(true) => AdamW::new_per_item(gpu, &params, &grads, cfg, &lr, &wd).unwrap(),
            Some(false) => {
                let opt = AdamW::new(gpu, &params, &grads, cfg).unwrap();
                opt.set_lr_per_item(gpu, &lr).unwrap();
                opt.set_weight_decay_per_item(gpu, &wd).unwrap();
                opt
            }
            None => AdamW::new(gpu, &params, &grads, cfg).unwrap(),
        };
        let len = p0.len();
        Harness {
            gpu,
            cfg,
            shape,
            params,
            grads_raw,
            strided_grads: strided_g,
            opt,
            lr,
            wd,
            host_p: p0.to_vec(),
            state: AdamWHostState::new(b, r * c),
            tol_p: vec![0.0; len],
            tol_m: vec![0.0; len],
            tol_v: vec![0.0; len],
        }
    }

    fn set_lr(&mut self, lr: f32) {
        self.opt.set_lr(self.gpu, lr).unwrap();
        self.lr.fill(lr);
    }

    /// A per-item schedule step: new learning rates and weight decays for every item.
    fn set_items(&mut self, lr: &[f32], wd: &[f32]) {
        self.opt.set_lr_per_item(self.gpu, lr).unwrap();
        self.opt.set_weight_decay_per_item(self.gpu, wd).unwrap();
        self.lr = lr.to_vec();
        self.wd = wd.to_vec();
    }

    /// One step on both sides, and the propagation of the error bounds through it.
    fn step(&mut self, g: &[f32]) {
        let raw = if self.strided_grads {
            let (b, r, c) = self.shape;
            common::padded_buffer(g, b, r, c, common::PAD_OFFSET, common::PAD_GAP)
        } else {
            g.to_vec()
        };
        self.gpu.write(&self.grads_raw, &raw).unwrap();
        let mut s = Step::new(self.gpu);
        self.opt.record_step(&mut s);
        s.finish().unwrap();

        let old_p = self.host_p.clone();
        let old_m = self.state.m.clone();
        let t_before = self.state.t.clone();
        adamw_per_item_cpu(
            &mut self.host_p,
            g,
            &mut self.state,
            &self.cfg,
            &self.lr,
            &self.wd,
        )
        .unwrap();

        let cfg = self.cfg;
        let (b1, b2) = (cfg.b1 as f64, cfg.b2 as f64);
        let n = self.shape.1 * self.shape.2;
        for b in 0..self.shape.0 {
            if self.state.t[b] == t_before[b] {
                continue; // skipped: both sides leave the item bit-for-bit untouched
            }
            let (lr, wd) = (self.lr[b] as f64, self.wd[b] as f64);
            let ss: f64 = g[b * n..(b + 1) * n]
                .iter()
                .map(|&x| (x as f64).powi(2))
                .sum();
            let norm = ss.sqrt();
            let max = cfg.max_grad_norm as f64;
            let scale = if max > 0.0 && norm > max {
                max / norm
            } else {
                1.0
            };
            let rel_s = if max > 0.0 { REL_SCALE } else { 0.0 };
            let t = self.state.t[b] as f64;
            let (bc1, bc2) = (1.0 - b1.powf(t), 1.0 - b2.powf(t));
            for e in b * n..(b + 1) * n {
                let gs = (g[e] as f64 * scale).abs();
                let (m, v) = (self.state.m[e] as f64, self.state.v[e] as f64);
                // m = (1−b1)·g + b1·m: three roundings of terms ≤ b1|m| + (1−b1)|g| (2 EPS
                // each side counted in EPS), the old error contracted by b1, and the clip scale.
                self.tol_m[e] = b1 * self.tol_m[e]
                    + 3.0 * EPS * (b1 * (old_m[e] as f64).abs() + (1.0 - b1) * gs)
                    + (1.0 - b1) * gs * rel_s;
                // v has only non-negative terms: relative roundings, and g² carries 2× the scale's.
                self.tol_v[e] =
                    b2 * self.tol_v[e] + 4.0 * EPS * v + 2.0 * rel_s * (1.0 - b2) * gs * gs;
                let den = (v / bc2 + cfg.eps_root as f64).sqrt() + cfg.eps as f64;
                let u = (m / bc1) / den;
                // u = m̂/den: absolute error of m̂ over den, plus u's relative error from v (halved
                // by the square root) and from the operations themselves.
                let rel_v = if v > 0.0 { self.tol_v[e] / v } else { 0.0 };
                let du = self.tol_m[e] / bc1 / den + u.abs() * (0.5 * rel_v + REL_U);
                let w = old_p[e] as f64;
                // p − lr·(u + wd·p): the old error scaled by |1 − lr·wd|, lr·du, and four roundings.
                self.tol_p[e] = self.tol_p[e] * (1.0 - lr * wd).abs()
                    + lr * du
                    + 2.0
                        * EPS
                        * ((self.host_p[e] as f64).abs() + 2.0 * lr * (u.abs() + wd * w.abs()));
            }
        }
    }

    fn check(&self, ctx: &str) {
        let gpu = self.gpu;
        let tiny = 1e-30; // exact zeros on both sides (e.g. v of an all-zero gradient)
        let got_p = gpu.read(&self.params).unwrap();
        common::assert_close(
            &got_p,
            &common::widen(&self.host_p),
            |i| self.tol_p[i] + tiny,
            &format!("{ctx}: p"),
        );
        let got_m = gpu.read(self.opt.m()).unwrap();
        common::assert_close(
            &got_m,
            &common::widen(&self.state.m),
            |i| self.tol_m[i] + tiny,
            &format!("{ctx}: m"),
        );
        let got_v = gpu.read(self.opt.v()).unwrap();
        common::assert_close(
            &got_v,
            &common::widen(&self.state.v),
            |i| self.tol_v[i] + tiny,
            &format!("{ctx}: v"),
        );
        // The per-item hyper-parameters the GPU used are the twin's, exactly.
        assert_eq!(gpu.read(self.opt.lr()).unwrap(), self.lr, "{ctx}: lr");
        assert_eq!(
            gpu.read(self.opt.weight_decay()).unwrap(),
            self.wd,
            "{ctx}: weight decay"
        );
        // Counters are small integers: exact.
        assert_eq!(
            gpu.read(self.opt.step_count()).unwrap(),
            self.state.t,
            "{ctx}: t"
        );
        assert_eq!(
            gpu.read(self.opt.skipped()).unwrap(),
            self.state.skipped,
            "{ctx}: skipped"
        );
        assert_eq!(
            gpu.read(self.opt.consecutive_skips()).unwrap(),
            self.state.consecutive,
            "{ctx}: consecutive"
        );
    }
}

/// Gradients uniform in [-1, 1), item b scaled by `spread^b` so that with clipping some items clip
/// and others do not.
fn grads(
    rng: &mut rand::rngs::ChaCha8Rng,
    (b, r, c): (usize, usize, usize),
    spread: f32,
) -> Vec<f32> {
    let n = r * c;
    let mut g = common::uniform(rng, b * n);
    for (i, x) in g.iter_mut().enumerate() {
        *x *= spread.powi((i / n) as i32);
    }
    g
}

#[test]
fn adamw_matches_cpu_twin_over_several_steps() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(21);
    for case in 0..24 {
        let batch = if case % 3 == 0 {
            1
        } else {
            common::size(&mut rng, 2, 4)
        };
        let shape = (
            batch,
            common::size(&mut rng, 1, 37),
            common::size(&mut rng, 1, 41),
        );
        let n = shape.1 * shape.2;
        // ‖g‖ of uniform [-1, 1) gradients ≈ sqrt(n/3): clip active around half of that.
        let typical = (n as f32 / 3.0).sqrt();
        let cfg = AdamWConfig {
            lr: [1e-2, 3e-2, 1e-3][case % 3],
            b1: [0.9, 0.8, 0.0, 0.95][case % 4],
            b2: [0.999, 0.99, 0.9][(case / 2) % 3],
            eps: [1e-8, 1e-6][(case / 3) % 2],
            eps_root: [0.0, 1e-10][(case / 5) % 2],
            weight_decay: if case % 2 == 0 { 0.0 } else { 0.05 },
            max_grad_norm: match case % 4 {
                0 => 0.0,           // no clipping
                1 => 1e6,           // clipping configured but inactive
                _ => 0.6 * typical, // active on some items (spread below)
            },
        };
        let p0 = common::uniform(&mut rng, batch * n);
        let mut h = Harness::new(gpu, cfg, shape, &p0, case % 5 == 2, case % 7 == 3);
        let steps = 6;
        for s in 0..steps {
            if s == 3 && case % 3 == 1 {
                h.set_lr(cfg.lr * 0.5); // a schedule
            }
            let g = grads(&mut rng, shape, 0.7);
            h.step(&g);
        }
        h.check(&format!("case {case}: shape {shape:?} {cfg:?}"));
    }
}

/// Distinct per-item learning rates (log-uniform over two decades) and weight decays (item 0
/// without decay).
fn item_hypers(rng: &mut rand::rngs::ChaCha8Rng, batch: usize) -> (Vec<f32>, Vec<f32>) {
    let lr = (0..batch)
        .map(|_| 10f32.powf(rng.random_range(-3.5f32..-1.5)))
        .collect();
    let wd = (0..batch)
        .map(|b| {
            if b == 0 {
                0.0
            } else {
                rng.random_range(0.0f32..0.2)
            }
        })
        .collect();
    (lr, wd)
}

#[test]
fn per_item_lr_and_weight_decay_match_the_twin() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(25);
    for case in 0..24 {
        let batch = if case % 6 == 0 {
            1
        } else {
            common::size(&mut rng, 2, 7)
        };
        // Items up to 1517 elements and totals up to ~10k: several 256-wide workgroups, items
        // straddling workgroup edges, and totals that are no multiple of 256.
        let shape = (
            batch,
            common::size(&mut rng, 1, 37),
            common::size(&mut rng, 1, 41),
        );
        let n = shape.1 * shape.2;
        let cfg = AdamWConfig {
            b1: [0.9, 0.8][case % 2],
            b2: [0.999, 0.99][(case / 2) % 2],
            max_grad_norm: if case % 4 == 3 {
                0.6 * (n as f32 / 3.0).sqrt()
            } else {
                0.0
            },
            ..Default::default()
        };
        let (lr, wd) = item_hypers(&mut rng, batch);
        let p0 = common::uniform(&mut rng, batch * n);
        let layout = (case % 5 == 2, case % 7 == 3);
        let build = Some(case % 2 == 0);
        let mut h = Harness::with_items(gpu, cfg, shape, &p0, layout, build, lr, wd);
        for s in 0..6 {
            if s == 3 {
                // Per-item schedules: every item gets its own new lr and wd.
                let (lr, wd) = item_hypers(&mut rng, batch);
                h.set_items(&lr, &wd);
            }
            h.step(&grads(&mut rng, shape, 0.7));
        }
        h.check(&format!(
            "case {case}: shape {shape:?} lr {:?} wd {:?}",
            h.lr, h.wd
        ));
    }
}

#[test]
fn item_of_a_per_item_batch_equals_a_standalone_optimiser_bitwise() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(26);
    let (batch, r, c) = (5, 7, 45); // 315-element items: workgroups straddle items
    let n = r * c;
    let cfg = AdamWConfig {
        max_grad_norm: 3.0,
        ..Default::default()
    };
    let (lr, wd) = item_hypers(&mut rng, batch);
    let p0 = common::uniform(&mut rng, batch * n);
    let gs: Vec<Vec<f32>> = (0..4)
        .map(|_| grads(&mut rng, (batch, r, c), 1.3))
        .collect();
    let run = |b0: usize, nb: usize| {
        let items = b0 * n..(b0 + nb) * n;
        let p = gpu.upload(&p0[items.clone()], nb, r, c).unwrap();
        let g = gpu.zeros(nb, r, c).unwrap();
        let (l, w) = (&lr[b0..b0 + nb], &wd[b0..b0 + nb]);
        let opt = AdamW::new_per_item(gpu, &p, &g, cfg, l, w).unwrap();
        for step in &gs {
            gpu.write(&g, &step[items.clone()]).unwrap();
            let mut s = Step::new(gpu);
            opt.record_step(&mut s);
            s.finish().unwrap();
        }
        gpu.read(&p).unwrap()
    };
    let all = run(0, batch);
    for b in 0..batch {
        let alone = run(b, 1);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&all[b * n..(b + 1) * n]),
            bits(&alone),
            "item {b} (lr {}, wd {})",
            lr[b],
            wd[b]
        );
    }
}

#[test]
fn per_item_counts_and_values_are_checked() {
    let gpu = gpu_or_skip!();
    let p = gpu.zeros(4, 3, 5).unwrap();
    let g = gpu.zeros(4, 3, 5).unwrap();
    let cfg = AdamWConfig::default();
    let four = [1e-3f32; 4];
    let shape_msg = |r: hypermod::Result<()>, what: &str| match r {
        Err(e @ Error::Shape { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains(&format!("3 values of {what}")) && m.contains("batch of 4"),
                "{m}"
            );
        }
        other => panic!("{what}: expected a shape error, got {other:?}"),
    };
    let new = |lr: &[f32], wd: &[f32]| AdamW::new_per_item(gpu, &p, &g, cfg, lr, wd).map(|_| ());
    shape_msg(new(&four[..3], &four), "lr");
    shape_msg(new(&four, &four[..3]), "weight_decay");
    let opt = AdamW::new_per_item(gpu, &p, &g, cfg, &four, &four).unwrap();
    shape_msg(opt.set_lr_per_item(gpu, &four[..3]), "lr");
    shape_msg(
        opt.set_weight_decay_per_item(gpu, &four[..3]),
        "weight_decay",
    );
    let mut state = AdamWHostState::<f32>::new(4, 15);
    let mut hp = vec![0.0f32; 60];
    shape_msg(
        adamw_per_item_cpu(&mut hp, &[0.0; 60], &mut state, &cfg, &four[..3], &four),
        "lr",
    );
    // Bad values name the item; nothing is written on error.
    let err = opt
        .set_lr_per_item(gpu, &[1e-3, 1e-3, f32::NAN, 1e-3])
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument { .. }) && err.to_string().contains("lr[2] = NaN"),
        "{err}"
    );
    let err = opt
        .set_weight_decay_per_item(gpu, &[0.0, -1.0, 0.0, 0.0])
        .unwrap_err();
    assert!(err.to_string().contains("weight_decay[1] = -1"), "{err}");
    assert_eq!(gpu.read(opt.lr()).unwrap(), four);
    // A single value fills every item.
    opt.set_lr(gpu, 0.25).unwrap();
    opt.set_weight_decay(gpu, 0.5).unwrap();
    assert_eq!(gpu.read(opt.lr()).unwrap(), [0.25; 4]);
    assert_eq!(gpu.read(opt.weight_decay()).unwrap(), [0.5; 4]);
}

#[test]
fn non_finite_gradient_skips_exactly_that_item() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(22);
    let shape = (3, 5, 7);
    let n = 35;
    let cfg = AdamWConfig {
        lr: 1e-2,
        weight_decay: 0.01,
        max_grad_norm: 1.0,
        ..Default::default()
    };
    let p0 = common::uniform(&mut rng, 3 * n);
    let mut h = Harness::new(gpu, cfg, shape, &p0, false, false);
    h.step(&grads(&mut rng, shape, 1.0));
    let after1 = gpu.read(&h.params).unwrap();
    let m1 = gpu.read(h.opt.m()).unwrap();

    let mut g = grads(&mut rng, shape, 1.0);
    g[n + 11] = f32::NAN; // item 1
    h.step(&g);
    let after2 = gpu.read(&h.params).unwrap();
    let m2 = gpu.read(h.opt.m()).unwrap();
    let item = |v: &[f32], b: usize| {
        v[b * n..(b + 1) * n]
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        item(&after2, 1),
        item(&after1, 1),
        "skipped item's params changed"
    );
    assert_eq!(item(&m2, 1), item(&m1, 1), "skipped item's m changed");
    assert_ne!(item(&after2, 0), item(&after1, 0), "item 0 was not updated");
    assert_ne!(item(&after2, 2), item(&after1, 2), "item 2 was not updated");
    assert_eq!(gpu.read(h.opt.skipped()).unwrap(), [0.0, 1.0, 0.0]);
    assert_eq!(
        gpu.read(h.opt.consecutive_skips()).unwrap(),
        [0.0, 1.0, 0.0]
    );
    assert_eq!(gpu.read(h.opt.step_count()).unwrap(), [2.0, 1.0, 2.0]);
    assert!(gpu.read(h.opt.grad_sum_squares()).unwrap()[1].is_nan());
    h.check("after NaN in item 1");

    // +∞ in item 2, item 1 recovers: its consecutive count resets, its total stays.
    let mut g = grads(&mut rng, shape, 1.0);
    g[2 * n] = f32::INFINITY;
    h.step(&g);
    assert_eq!(gpu.read(h.opt.skipped()).unwrap(), [0.0, 1.0, 1.0]);
    assert_eq!(
        gpu.read(h.opt.consecutive_skips()).unwrap(),
        [0.0, 0.0, 1.0]
    );
    assert_eq!(gpu.read(h.opt.step_count()).unwrap(), [3.0, 2.0, 2.0]);
    h.check("after +inf in item 2");
}

#[test]
fn reset_restores_a_fresh_state() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(23);
    for (shape, clip) in [((1, 9, 13), 0.0), ((4, 3, 11), 2.0)] {
        let n = shape.1 * shape.2;
        let cfg = AdamWConfig {
            lr: 2e-2,
            weight_decay: 0.02,
            max_grad_norm: clip,
            ..Default::default()
        };
        let p0 = common::uniform(&mut rng, shape.0 * n);
        let mut h = Harness::new(gpu, cfg, shape, &p0, false, false);
        for s in 0..3 {
            let mut g = grads(&mut rng, shape, 1.0);
            if s == 2 {
                g[0] = f32::NAN; // leaves a total and a consecutive skip on item 0
            }
            h.step(&g);
        }
        let mut s = Step::new(gpu);
        h.opt.record_reset(&mut s);
        s.finish().unwrap();
        h.state.reset();
        let zeros = vec![0.0f32; shape.0 * n];
        assert_eq!(gpu.read(h.opt.m()).unwrap(), zeros);
        assert_eq!(gpu.read(h.opt.v()).unwrap(), zeros);
        assert_eq!(gpu.read(h.opt.step_count()).unwrap(), vec![0.0; shape.0]);
        assert_eq!(
            gpu.read(h.opt.consecutive_skips()).unwrap(),
            vec![0.0; shape.0]
        );
        assert_eq!(
            gpu.read(h.opt.skipped()).unwrap()[0],
            1.0,
            "the total is kept"
        );
        // m and v are exactly 0 on both sides again: only p carries earlier error.
        h.tol_m
            .iter_mut()
            .chain(&mut h.tol_v)
            .for_each(|x| *x = 0.0);
        for _ in 0..2 {
            h.step(&grads(&mut rng, shape, 1.0));
        }
        h.check(&format!("{shape:?} after reset"));
    }
}

#[test]
fn first_step_matches_optax_closed_form() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(24);
    let shape = (2, 6, 9);
    let n = 54;
    let cfg = AdamWConfig {
        lr: 0.1,
        weight_decay: 0.1,
        max_grad_norm: 1.5,
        eps: 1e-3,
        ..Default::default()
    };
    let p0 = common::uniform(&mut rng, 2 * n);
    let g = common::uniform(&mut rng, 2 * n);
    let h = {
        let mut h = Harness::new(gpu, cfg, shape, &p0, false, false);
        h.step(&g);
        h
    };
    let got_p = gpu.read(&h.params).unwrap();
    let got_m = gpu.read(h.opt.m()).unwrap();
    // t = 1: m̂ = g', v̂ = g'² so u = g'/(|g'| + eps), with g' = g·min(1, max/‖g‖) (f64 exact).
    let (mut want_p, mut want_m) = (vec![0.0; 2 * n], vec![0.0; 2 * n]);
    for b in 0..2 {
        let norm = g[b * n..(b + 1) * n]
            .iter()
            .map(|&x| (x as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(norm > 1.5, "the test wants clipping active");
        for e in b * n..(b + 1) * n {
            let gs = g[e] as f64 * 1.5 / norm;
            want_m[e] = 0.1 * gs;
            let u = gs / (gs.abs() + 1e-3);
            want_p[e] = p0[e] as f64 - 0.1 * (u + 0.1 * p0[e] as f64);
        }
    }
    // m: the clip scale (≤ REL_SCALE) plus a few roundings; p: lr·|Δu| with |u| ≤ 1 plus roundings.
    common::assert_close(
        &got_m,
        &want_m,
        |i| (REL_SCALE + 8.0 * EPS) * want_m[i].abs(),
        "m after step 1",
    );
    common::assert_close(
        &got_p,
        &want_p,
        |i| 0.1 * (2.0 * REL_SCALE + REL_U) + 4.0 * EPS * want_p[i].abs().max(1.0),
        "p after step 1",
    );
}

#[test]
fn bad_configs_and_shapes_are_errors() {
    let gpu = gpu_or_skip!();
    let p = gpu.zeros(2, 3, 4).unwrap();
    let g = gpu.zeros(2, 3, 4).unwrap();
    let ok = AdamWConfig::default();
    let bad = [
        ("lr", AdamWConfig { lr: f32::NAN, ..ok }),
        ("lr", AdamWConfig { lr: -1.0, ..ok }),
        ("b1", AdamWConfig { b1: 1.0, ..ok }),
        ("b2", AdamWConfig { b2: -0.1, ..ok }),
        (
            "eps",
            AdamWConfig {
                eps: f32::INFINITY,
                ..ok
            },
        ),
        (
            "eps_root",
            AdamWConfig {
                eps_root: -1e-8,
                ..ok
            },
        ),
        (
            "weight_decay",
            AdamWConfig {
                weight_decay: f32::NAN,
                ..ok
            },
        ),
        (
            "max_grad_norm",
            AdamWConfig {
                max_grad_norm: -1.0,
                ..ok
            },
        ),
    ];
    for (field, cfg) in bad {
        match AdamW::new(gpu, &p, &g, cfg) {
            Err(e @ Error::InvalidArgument { .. }) => {
                assert!(
                    e.to_string().contains(&format!("{field} =")),
                    "{field}: {e}"
                )
            }
            Err(e) => panic!("{field}: wrong error kind {e}"),
            Ok(_) => panic!("{field}: {cfg:?} accepted"),
        }
    }
    let opt = AdamW::new(gpu, &p, &g, ok).unwrap();
    assert!(matches!(
        opt.set_lr(gpu, f32::NAN),
        Err(Error::InvalidArgument { .. })
    ));
    let g_bad = gpu.zeros(2, 3, 5).unwrap();
    let err = AdamW::new(gpu, &p, &g_bad, ok).err().unwrap().to_string();
    assert!(err.contains("[2×3×5]") && err.contains("[2×3×4]"), "{err}");
    let shared = gpu.zeros(1, 3, 4).unwrap().broadcast(2).unwrap();
    let err = AdamW::new(gpu, &shared, &g, ok).err().unwrap().to_string();
    assert!(err.contains("overlap"), "{err}");
    let err = AdamW::new(gpu, &p, &p, ok).err().unwrap().to_string();
    assert!(err.contains("share a buffer"), "{err}");
}
