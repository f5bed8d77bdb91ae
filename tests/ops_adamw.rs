//! AdamW vs its CPU twin over consecutive steps (shared B = 1 and per-item B > 1 state, clipping
//! on/off, weight decay on/off, strided views, learning-rate changes), reset, skipping of an item
//! with a non-finite gradient, the first step against optax's closed form, and argument errors.

mod common;

use hypermod::gpu::{Gpu, GpuTensor, Step};
use hypermod::ops::adamw::{adamw_cpu, AdamW, AdamWConfig, AdamWHostState};
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
        let (b, r, c) = shape;
        let params = place(gpu, p0, shape, strided_p);
        let grads = place(gpu, &vec![0.0; p0.len()], shape, strided_g);
        let grads_raw = grads
            .view(0, 1, 1, grads.capacity(), grads.capacity())
            .unwrap();
        let opt = AdamW::new(gpu, &params, &grads, cfg).unwrap();
        let len = p0.len();
        Harness {
            gpu,
            cfg,
            shape,
            params,
            grads_raw,
            strided_grads: strided_g,
            opt,
            host_p: p0.to_vec(),
            state: AdamWHostState::new(b, r * c),
            tol_p: vec![0.0; len],
            tol_m: vec![0.0; len],
            tol_v: vec![0.0; len],
        }
    }

    fn set_lr(&mut self, lr: f32) {
        self.opt.set_lr(self.gpu, lr).unwrap();
        self.cfg.lr = lr;
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
        adamw_cpu(&mut self.host_p, g, &mut self.state, &self.cfg);

        let cfg = self.cfg;
        let (b1, b2) = (cfg.b1 as f64, cfg.b2 as f64);
        let (lr, wd) = (cfg.lr as f64, cfg.weight_decay as f64);
        let n = self.shape.1 * self.shape.2;
        for b in 0..self.shape.0 {
            if self.state.t[b] == t_before[b] {
                continue; // skipped: both sides leave the item bit-for-bit untouched
            }
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
