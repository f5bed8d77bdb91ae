//! AdamW vs its CPU twin over consecutive steps (shared B = 1 and per-item B > 1 state, clipping
//! on/off, weight decay on/off, strided views, learning-rate changes, per-item learning rates and
//! weight decays with per-item schedules), reset, skipping of an item with a non-finite gradient,
//! the first step against optax's closed form, and argument errors (including per-item counts).
//! The adjoint of one step (`AdamW::vjp`) vs its twin on random shapes, steps and layouts, the
//! twin vs central differences of the f64 step, and the adjoint's argument errors.

mod common;

use rand::RngExt;

use hypermod::gpu::DeviceError;
use hypermod::gpu::{Device, Step, Tensor};
use hypermod::ops::adamw::{
    adamw_per_item_cpu, adamw_vjp_cpu, AdamW, AdamWConfig, AdamWHostState, AdamWVjpIo,
};

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
    gpu: &'g Device,
    cfg: AdamWConfig,
    shape: (usize, usize, usize),
    params: Tensor,
    /// Raw buffer behind `grads` (a strided view with NaN gaps when `strided`).
    grads_raw: Tensor,
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
fn place(gpu: &Device, host: &[f32], (b, r, c): (usize, usize, usize), strided: bool) -> Tensor {
    if strided {
        common::padded(gpu, host, b, r, c)
    } else {
        common::put(gpu, host, b, r, c, false)
    }
}

impl<'g> Harness<'g> {
    fn new(
        gpu: &'g Device,
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
        gpu: &'g Device,
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
    let shape_msg = |r: hypermod::gpu::error::Result<()>, what: &str| match r {
        Err(e @ DeviceError::Shape { .. }) => {
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
        matches!(err, DeviceError::InvalidArgument { .. })
            && err.to_string().contains("lr[2] = NaN"),
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
            Err(e @ DeviceError::InvalidArgument { .. }) => {
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
        Err(DeviceError::InvalidArgument { .. })
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

/// The moments and gradient one step saw and wrote, and the adjoints coming back into it, as
/// logical (item-major) host data: what [`AdamW::vjp`] and [`adamw_vjp_cpu`] take.
struct VjpData {
    g: Vec<f32>,
    m_new: Vec<f32>,
    v_new: Vec<f32>,
    theta_bar: Vec<f32>,
    m_bar: Vec<f32>,
    v_bar: Vec<f32>,
}

/// Gradients in [-1, 1) with about one element in six tiny (|g| ≈ √eps_root, or 1e-5 without
/// eps_root: v′ then sits at the square root's knee), moments of a previous step consistent
/// with them (none at t = 1: a fresh state), and adjoints in [-1, 1).
fn vjp_data(rng: &mut rand::rngs::ChaCha8Rng, len: usize, cfg: &AdamWConfig, t: u32) -> VjpData {
    let tiny = cfg.eps_root.max(1e-10).sqrt();
    let (b1, b2) = (cfg.b1, cfg.b2);
    let (mut g, mut m_new, mut v_new) = (vec![0.0; len], vec![0.0; len], vec![0.0; len]);
    for e in 0..len {
        let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        let scale = if rng.random_range(0..6) == 0 {
            tiny
        } else {
            1.0
        };
        g[e] = sign * scale * rng.random_range(0.05f32..1.0);
        let (m, v) = if t == 1 {
            (0.0, 0.0)
        } else {
            let m = scale * rng.random_range(-0.5f32..0.5);
            (m, scale * scale * rng.random_range(0.0f32..0.3))
        };
        m_new[e] = (1.0 - b1) * g[e] + b1 * m;
        v_new[e] = (1.0 - b2) * (g[e] * g[e]) + b2 * v;
    }
    VjpData {
        g,
        m_new,
        v_new,
        theta_bar: common::uniform(rng, len),
        m_bar: common::uniform(rng, len),
        v_bar: common::uniform(rng, len),
    }
}

/// Relative error of `1 − bᵗ` in f32: `powi`'s multiplies, tracked as the algorithm runs (a
/// squaring doubles its operand's relative error, so bᵗ carries up to ≈ (t − 1)·u), amplified
/// by bᵗ/(1 − bᵗ) in the subtraction, which rounds once more.
fn rel_bias_correction(b: f64, t: u32) -> f64 {
    let (mut r, mut sq, mut e) = (None, 0.0, t);
    loop {
        if e & 1 == 1 {
            // The first multiply, by r = 1, is exact.
            r = Some(r.map_or(sq, |r: f64| r + sq + U32));
        }
        e >>= 1;
        if e == 0 {
            break;
        }
        sq = 2.0 * sq + U32;
    }
    let bt = b.powi(t as i32);
    r.unwrap_or(0.0) * bt / (1.0 - bt) + U32
}

/// f32 unit roundoff; the GPU's `+ − ×` are correctly rounded (Vulkan, GL).
const U32: f64 = EPS / 2.0;
/// Division: 2.5 ulp on Vulkan and GL, an ulp being ≤ EPS relative.
const DIV: f64 = 2.5 * EPS;
/// Square root: inherited from 1/inversesqrt (2 ulp + a 2.5 ulp division).
const SQRT: f64 = 5.0 * EPS;

/// Per element, bounds on |f32 kernel − exact| of θ̄, m̄, v̄, ḡ, propagating each operation's
/// relative error through the twin's formulas (the f64 twin's own error is negligible). `e` is
/// the element, `lr`, `wd` its item's values.
fn vjp_bounds(cfg: &AdamWConfig, t: u32, d: &VjpData, e: usize, lr: f64, wd: f64) -> [f64; 4] {
    let (b1, b2) = (cfg.b1 as f64, cfg.b2 as f64);
    let (eps, eps_root) = (cfg.eps as f64, cfg.eps_root as f64);
    let (rel_bc1, rel_bc2) = (rel_bias_correction(b1, t), rel_bias_correction(b2, t));
    let (bc1, bc2) = (1.0 - b1.powi(t as i32), 1.0 - b2.powi(t as i32));
    let w = |v: &[f32]| v[e] as f64;
    let (a, g, m_bar, v_bar) = (w(&d.theta_bar), w(&d.g), w(&d.m_bar), w(&d.v_bar));
    let dd = (w(&d.v_new) / bc2 + eps_root).sqrt();
    let den = dd + eps;
    let u = (w(&d.m_new) / bc1) / den;
    // √(v′/bc2 + eps_root): positive terms, so relative errors add and the root halves them.
    let rel_d = (rel_bc2 + DIV + U32) / 2.0 + SQRT;
    let rel_den = rel_d + U32;
    let rel_u = rel_bc1 + rel_den + 2.0 * DIV;
    let big_a = lr * a / (bc1 * den);
    let rel_a = rel_bc1 + rel_den + 2.0 * U32 + DIV;
    let big_b = lr * a * u / (2.0 * dd * den * bc2);
    let rel_b = rel_u + rel_d + rel_den + rel_bc2 + 4.0 * U32 + DIV;
    let (big_m, big_v) = (m_bar - big_a, v_bar + big_b);
    // The sums M = m̄′ − A and V = v̄′ + B round once on top of their terms' errors.
    let err_m = rel_a * big_a.abs() + U32 * (m_bar.abs() + big_a.abs());
    let err_v = rel_b * big_b.abs() + U32 * (v_bar.abs() + big_b.abs());
    let err_theta = U32 * (lr * wd + 2.0 * (1.0 - lr * wd).abs()) * a.abs();
    let err_mb = b1 * err_m + U32 * b1 * big_m.abs();
    let err_vb = b2 * err_v + U32 * b2 * big_v.abs();
    // ḡ = (1−b1)·M + 2(1−b2)·g·V: each 1 − b rounds at most once, the products and the sum once.
    let (t1, t2) = (
        (1.0 - b1) * big_m.abs(),
        2.0 * (1.0 - b2) * g.abs() * big_v.abs(),
    );
    let err_g =
        (1.0 - b1) * err_m + 2.0 * (1.0 - b2) * g.abs() * err_v + U32 * (3.0 * t1 + 4.0 * t2);
    [err_theta, err_mb, err_vb, err_g]
}

#[test]
fn vjp_matches_cpu_twin_on_random_shapes() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(27);
    // Item lengths 1, 7, 257 (one past a 256-wide workgroup), 1000 and random ones.
    let fixed = [(1, 1), (1, 7), (1, 257), (4, 250)];
    for case in 0..28 {
        let batch = if case % 4 == 0 {
            1
        } else {
            common::size(&mut rng, 2, 5)
        };
        let (r, c) = match fixed.get(case % 6) {
            Some(&rc) => rc,
            None => (common::size(&mut rng, 1, 37), common::size(&mut rng, 1, 41)),
        };
        let shape = (batch, r, c);
        let t = [1u32, 2, 10, 100, 3, 37, 1000][case % 7];
        let cfg = AdamWConfig {
            b1: [0.9, 0.8, 0.0][case % 3],
            b2: [0.999, 0.99][(case / 3) % 2],
            eps: [1e-8, 1e-6][(case / 2) % 2],
            eps_root: [0.0, 1e-10, 1e-8][(case / 4) % 3],
            ..Default::default()
        };
        let (lr, wd) = item_hypers(&mut rng, batch);
        let params = gpu.zeros(batch, r, c).unwrap();
        let grads = gpu.zeros(batch, r, c).unwrap();
        let opt = AdamW::new_per_item(gpu, &params, &grads, cfg, &lr, &wd).unwrap();
        let n = r * c;
        let d = vjp_data(&mut rng, batch * n, &cfg, t);
        let (strided_in, strided_out) = (case % 5 == 2, case % 3 == 1);
        // Inputs are read only: as views of one buffer they may share it.
        let (g, m_new, v_new) = if case % 6 == 5 {
            let all = [d.g.clone(), d.m_new.clone(), d.v_new.clone()].concat();
            let buf = gpu.upload(&all, 1, 1, all.len()).unwrap();
            let at = |k: usize| buf.view(k * batch * n, batch, r, c, n).unwrap();
            (at(0), at(1), at(2))
        } else {
            let put = |v: &[f32]| place(gpu, v, shape, strided_in);
            (put(&d.g), put(&d.m_new), put(&d.v_new))
        };
        let put = |v: &[f32]| place(gpu, v, shape, strided_out);
        let (theta_bar, m_bar, v_bar) = (put(&d.theta_bar), put(&d.m_bar), put(&d.v_bar));
        let g_bar = put(&vec![f32::NAN; batch * n]);
        let io = AdamWVjpIo {
            g: &g,
            m_new: &m_new,
            v_new: &v_new,
            theta_bar: &theta_bar,
            m_bar: &m_bar,
            v_bar: &v_bar,
            g_bar: &g_bar,
        };
        gpu.run(&[&opt.vjp(gpu, t, &io).unwrap()]).unwrap();

        let w = common::widen;
        let (mut want_t, mut want_m) = (w(&d.theta_bar), w(&d.m_bar));
        let (mut want_v, mut want_g) = (w(&d.v_bar), vec![0.0; batch * n]);
        adamw_vjp_cpu(
            &cfg,
            &lr,
            &wd,
            t,
            &w(&d.g),
            &w(&d.m_new),
            &w(&d.v_new),
            &mut want_t,
            &mut want_m,
            &mut want_v,
            &mut want_g,
        );
        let bounds: Vec<[f64; 4]> = (0..batch * n)
            .map(|e| vjp_bounds(&cfg, t, &d, e, lr[e / n] as f64, wd[e / n] as f64))
            .collect();
        let ctx = format!("case {case}: shape {shape:?} t {t} {cfg:?} lr {lr:?} wd {wd:?}");
        let outs = [
            ("theta_bar", &theta_bar, &want_t),
            ("m_bar", &m_bar, &want_m),
            ("v_bar", &v_bar, &want_v),
            ("g_bar", &g_bar, &want_g),
        ];
        for (k, (name, x, want)) in outs.into_iter().enumerate() {
            let got = gpu.read(x).unwrap();
            let ctx = format!("{ctx}: {name}");
            common::assert_close(&got, want, |e| bounds[e][k] + 1e-30, &ctx);
            if strided_out {
                common::assert_gaps_untouched(gpu, x, &ctx);
            }
        }
    }
}

/// The step's outputs θ′, m′, v′ as a function of its inputs, in f64 (no clipping, item `b`
/// with `lr[b]`, `wd[b]`, every item at step `t`).
fn step_f64(
    cfg: &AdamWConfig,
    (lr, wd): (&[f32], &[f32]),
    t: u32,
    [theta, m, v, g]: [&[f64]; 4],
) -> [Vec<f64>; 3] {
    let batch = lr.len();
    let mut state = AdamWHostState::<f64>::new(batch, theta.len() / batch);
    state.m = m.to_vec();
    state.v = v.to_vec();
    state.t = vec![(t - 1) as f64; batch];
    let mut p = theta.to_vec();
    adamw_per_item_cpu(&mut p, g, &mut state, cfg, lr, wd).unwrap();
    assert!(state.t.iter().all(|&x| x == t as f64), "no step skipped");
    [p, state.m, state.v]
}

#[test]
fn vjp_twin_matches_central_differences_in_f64() {
    let mut rng = common::rng(28);
    let (batch, n) = (3, 7);
    let len = batch * n;
    for (t, eps_root) in [(1u32, 0.0f32), (2, 1e-10), (10, 1e-8)] {
        let cfg = AdamWConfig {
            b1: 0.9,
            b2: 0.99,
            eps: 1e-6,
            eps_root,
            ..Default::default()
        };
        let (lr, wd) = item_hypers(&mut rng, batch);
        let lr: Vec<f32> = lr.iter().map(|x| x * 10.0).collect(); // adjoints well above FD noise
        let d = vjp_data(&mut rng, len, &cfg, 1);
        // The previous step's moments (fresh at t = 1) and params.
        let (m, v): (Vec<f64>, Vec<f64>) = if t == 1 {
            (vec![0.0; len], vec![0.0; len])
        } else {
            (0..len)
                .map(|e| {
                    let s = (d.g[e] as f64).abs();
                    (
                        s * rng.random_range(-1.0..1.0),
                        s * s * rng.random_range(0.1..1.0),
                    )
                })
                .unzip()
        };
        let theta = common::widen(&common::uniform(&mut rng, len));
        let g = common::widen(&d.g);
        let x = [theta, m, v, g];
        let [_, m_new, v_new] = step_f64(&cfg, (&lr, &wd), t, [&x[0], &x[1], &x[2], &x[3]]);
        let bars = [
            common::widen(&d.theta_bar),
            common::widen(&d.m_bar),
            common::widen(&d.v_bar),
        ];
        // ⟨θ̄′, θ′⟩ + ⟨m̄′, m′⟩ + ⟨v̄′, v′⟩ over the elements `at`.
        let objective = |x: &[Vec<f64>; 4], at: &dyn Fn(usize) -> bool| {
            let out = step_f64(&cfg, (&lr, &wd), t, [&x[0], &x[1], &x[2], &x[3]]);
            (0..len)
                .filter(|&e| at(e))
                .map(|e| (0..3).map(|k| bars[k][e] * out[k][e]).sum::<f64>())
                .sum::<f64>()
        };
        let [mut theta_bar, mut m_bar, mut v_bar] = bars.clone();
        let mut g_bar = vec![0.0; len];
        adamw_vjp_cpu(
            &cfg,
            &lr,
            &wd,
            t,
            &x[3],
            &m_new,
            &v_new,
            &mut theta_bar,
            &mut m_bar,
            &mut v_bar,
            &mut g_bar,
        );
        let adj = [theta_bar, m_bar, v_bar, g_bar];
        // Directions scaled to each input's size, so that the step h stays relative (v′ ± h·δv
        // stays positive; tiny gradients are perturbed at their own scale).
        let scale = |k: usize, e: usize| match k {
            0 => 1.0,
            1 => x[1][e].abs() + x[3][e].abs(),
            // ≈ v′: v′ = (1 − b2)·g² + b2·v is what the square root sees.
            2 => 0.5 * (x[2][e] + (1.0 - cfg.b2 as f64) * x[3][e] * x[3][e]),
            _ => 0.5 * x[3][e].abs(),
        };
        let h = 1e-5;
        let directional = |dir: &[Vec<f64>; 4], at: &dyn Fn(usize) -> bool| {
            let shifted = |s: f64| -> [Vec<f64>; 4] {
                std::array::from_fn(|k| (0..len).map(|e| x[k][e] + s * dir[k][e]).collect())
            };
            (objective(&shifted(h), at) - objective(&shifted(-h), at)) / (2.0 * h)
        };
        // One random direction in all four inputs, as the adjoint's defining identity.
        let dir: [Vec<f64>; 4] = std::array::from_fn(|k| {
            (0..len)
                .map(|e| scale(k, e) * rng.random_range(-1.0..1.0))
                .collect()
        });
        let terms: Vec<f64> = (0..4)
            .flat_map(|k| (0..len).map(move |e| (k, e)))
            .map(|(k, e)| adj[k][e] * dir[k][e])
            .collect();
        let analytic: f64 = terms.iter().sum();
        let mag: f64 = terms.iter().map(|v| v.abs()).sum();
        let fd = directional(&dir, &|_| true);
        assert!(
            (fd - analytic).abs() <= 1e-7 * mag,
            "t {t}: adjoint {analytic} vs finite difference {fd}"
        );
        // Then every element and input alone (the step is element-wise): no error can hide
        // behind larger terms, including the tiny-gradient elements'.
        for k in 0..4 {
            for e in 0..len {
                let mut dir: [Vec<f64>; 4] = std::array::from_fn(|_| vec![0.0; len]);
                dir[k][e] = scale(k, e);
                let analytic = adj[k][e] * scale(k, e);
                let fd = directional(&dir, &|i| i == e);
                // O(h²) truncation at relative steps, ~1e-16/h cancellation on O(1) objectives.
                assert!(
                    (fd - analytic).abs() <= 1e-7 * analytic.abs() + 1e-9,
                    "t {t}: input {k} element {e} (g {}): adjoint {analytic} vs finite \
                     difference {fd}",
                    x[3][e]
                );
            }
        }
    }
}

#[test]
fn vjp_rejects_clipping_step_zero_and_bad_operands() {
    let gpu = gpu_or_skip!();
    let (b, r, c) = (2, 3, 4);
    let p = gpu.zeros(b, r, c).unwrap();
    let g = gpu.zeros(b, r, c).unwrap();
    let opt = AdamW::new(gpu, &p, &g, AdamWConfig::default()).unwrap();
    let z = || gpu.zeros(b, r, c).unwrap();
    let (x1, x2, x3, x4, x5, x6, x7) = (z(), z(), z(), z(), z(), z(), z());
    let io = AdamWVjpIo {
        g: &x1,
        m_new: &x2,
        v_new: &x3,
        theta_bar: &x4,
        m_bar: &x5,
        v_bar: &x6,
        g_bar: &x7,
    };
    assert!(opt.vjp(gpu, 3, &io).is_ok());
    let arg = |r: hypermod::gpu::error::Result<hypermod::gpu::Dispatch>, what: &str| match r {
        Err(e @ DeviceError::InvalidArgument { .. }) => {
            assert!(e.to_string().contains(what), "{e}")
        }
        other => panic!("{what}: expected an argument error, got {other:?}"),
    };
    let shape = |r: hypermod::gpu::error::Result<hypermod::gpu::Dispatch>, what: &[&str]| match r {
        Err(e @ DeviceError::Shape { .. }) => {
            let m = e.to_string();
            assert!(what.iter().all(|w| m.contains(w)), "{m}");
        }
        other => panic!("{what:?}: expected a shape error, got {other:?}"),
    };
    arg(opt.vjp(gpu, 0, &io), "t = 0");
    let clipping = AdamWConfig {
        max_grad_norm: 1.0,
        ..Default::default()
    };
    let clipped = AdamW::new(gpu, &p, &g, clipping).unwrap();
    arg(clipped.vjp(gpu, 1, &io), "max_grad_norm = 1");
    // A shape other than the params' names it and every operand.
    let wide = gpu.zeros(b, r, c + 1).unwrap();
    shape(
        opt.vjp(gpu, 1, &AdamWVjpIo { v_bar: &wide, ..io }),
        &["v_bar must have the params' shape [2×3×4]", "v_bar [2×3×5]"],
    );
    let three = gpu.zeros(3, r, c).unwrap();
    shape(
        opt.vjp(
            gpu,
            1,
            &AdamWVjpIo {
                m_new: &three,
                ..io
            },
        ),
        &["m_new", "[3×3×4]"],
    );
    // A broadcast output; a broadcast input is fine.
    let one = gpu.zeros(1, r, c).unwrap().broadcast(b).unwrap();
    shape(
        opt.vjp(gpu, 1, &AdamWVjpIo { g_bar: &one, ..io }),
        &["g_bar", "overlap"],
    );
    assert!(opt.vjp(gpu, 1, &AdamWVjpIo { g: &one, ..io }).is_ok());
    // Outputs as views of one buffer share it: rejected, naming both.
    let big = gpu.zeros(1, 1, 2 * b * r * c).unwrap();
    let (lo, hi) = (
        big.view(0, b, r, c, r * c).unwrap(),
        big.view(b * r * c, b, r, c, r * c).unwrap(),
    );
    shape(
        opt.vjp(
            gpu,
            1,
            &AdamWVjpIo {
                m_bar: &lo,
                v_bar: &hi,
                ..io
            },
        ),
        &["m_bar", "v_bar", "share a buffer"],
    );
    // An input on an output's buffer, and one tensor as both input and output.
    shape(
        opt.vjp(
            gpu,
            1,
            &AdamWVjpIo {
                g: &lo,
                theta_bar: &hi,
                ..io
            },
        ),
        &["g", "theta_bar", "share a buffer"],
    );
    shape(
        opt.vjp(gpu, 1, &AdamWVjpIo { g_bar: &x1, ..io }),
        &["g [2×3×4]", "g_bar", "share a buffer"],
    );
}
