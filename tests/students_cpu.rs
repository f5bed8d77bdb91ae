//! CPU twins of the four students: parameter counts against spec table 4.8, layouts, and every
//! backward against central finite differences of forward∘KL loss in f64 on tiny sizes. For the
//! hypernetworks the embedding gradient follows the stop-gradient on the normalisation scale:
//! it matches finite differences with the scale frozen, and not with the scale live.

mod common;

use hypermod::ops::loss::{kl_divergence_cpu, LossShape};
use hypermod::students::{
    Anil, HnetDeep, HnetLinear, Hypernetwork, Init, Maml, ParamLayout, Student,
};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

fn rand_vec(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// Soft targets: softmax of random logits per row.
fn targets(rng: &mut ChaCha8Rng, n: usize, c: usize) -> Vec<f64> {
    let z = rand_vec(rng, n * c);
    z.chunks(c)
        .flat_map(|r| {
            let e: Vec<f64> = r.iter().map(|v| (2.0 * v).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(move |v| v / s)
        })
        .collect()
}

fn kl(logits: &[f64], y: &[f64], c: usize, grad: Option<&mut [f64]>) -> f64 {
    let shape = LossShape {
        batch: 1,
        rows: logits.len() / c,
        cols: c,
    };
    let mut loss = [0.0];
    kl_divergence_cpu(logits, y, shape, &mut loss, grad, 1.0);
    loss[0]
}

/// Random parameters; LayerNorm scales near 1 so the check is well conditioned.
fn random_params(rng: &mut ChaCha8Rng, layout: &ParamLayout) -> (Vec<f64>, Vec<f64>) {
    let fill = |rng: &mut ChaCha8Rng, specs: &[hypermod::students::ParamSpec]| {
        specs
            .iter()
            .flat_map(|s| {
                let v = rand_vec(rng, s.numel());
                let ones = s.init == Init::Ones;
                v.into_iter()
                    .map(move |x| if ones { 1.0 + 0.3 * x } else { x })
            })
            .collect::<Vec<f64>>()
    };
    (fill(rng, &layout.meta), fill(rng, &layout.task))
}

const H: f64 = 1e-5;

struct Case {
    meta: Vec<f64>,
    task: Vec<f64>,
    x: Vec<f64>,
    y: Vec<f64>,
}

fn case<S: Student>(s: &S, seed: u64, n: usize) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (meta, task) = random_params(&mut rng, &s.param_layout());
    let x = rand_vec(&mut rng, n * s.input_dim());
    let y = targets(&mut rng, n, s.output_dim());
    Case { meta, task, x, y }
}

/// Analytic (dmeta, dtask) of the KL loss.
fn analytic<S: Student>(s: &S, c: &Case) -> (Vec<f64>, Vec<f64>) {
    let logits = s.forward(&c.meta, &c.task, &c.x);
    assert_eq!(logits.len(), c.y.len());
    let mut dl = vec![0.0; logits.len()];
    kl(&logits, &c.y, s.output_dim(), Some(&mut dl));
    s.backward(&c.meta, &c.task, &c.x, &dl)
}

/// Checks dmeta entirely and the task entries in `task_range` against plain finite differences.
fn check_plain<S: Student>(s: &S, c: &Case, task_fd: bool) -> (Vec<f64>, Vec<f64>) {
    let (dmeta, dtask) = analytic(s, c);
    let o = s.output_dim();
    let fm = common::fd(H, &c.meta, |m| {
        kl(&s.forward(m, &c.task, &c.x), &c.y, o, None)
    });
    common::assert_fd("dmeta", &dmeta, &fm);
    if task_fd {
        let ft = common::fd(H, &c.task, |t| {
            kl(&s.forward(&c.meta, t, &c.x), &c.y, o, None)
        });
        common::assert_fd("dtask", &dtask, &ft);
    }
    (dmeta, dtask)
}

fn layout_sanity(l: &ParamLayout) {
    let mut names: Vec<&str> = l
        .meta
        .iter()
        .chain(&l.task)
        .map(|s| s.name.as_str())
        .collect();
    let n = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), n, "parameter names are unique");
    for s in &l.task {
        if let Init::Meta(m) = &s.init {
            let r = l.meta_range(m).expect("Init::Meta names a meta tensor");
            assert_eq!(r.len(), s.numel(), "{} and {m} have one size", s.name);
        }
    }
}

#[test]
fn parameter_counts_match_spec_table_4_8() {
    let check = |l: ParamLayout, meta: usize, task: usize, what: &str| {
        layout_sanity(&l);
        assert_eq!((l.meta_len(), l.task_len()), (meta, task), "{what}");
    };
    for (t, meta, task) in [(16, 315_584, 72), (32, 631_168, 136), (64, 1_262_336, 264)] {
        check(
            HnetLinear::paper(t).param_layout(),
            meta,
            task,
            "hnet_linear",
        );
    }
    for (t, meta, task) in [(16, 643_104, 64), (32, 644_800, 128), (64, 648_192, 256)] {
        check(
            HnetDeep::paper(t).param_layout(),
            meta,
            task,
            "hnet_deepmlp",
        );
    }
    check(Anil::paper().param_layout(), 538_120, 4_104, "anil512");
    check(Maml::paper().param_layout(), 305_288, 305_288, "MAML-384");
}

#[test]
fn parameter_count_decomposition() {
    // hnet_linear: meta = T·C + T·R, task = T·R + output; hnet_deepmlp: meta = 32·C +
    // 3·(34T + 3456) + T·R, task = T·R (spec §4.8).
    let c = 2_176 + 16_512 + 1_032;
    for t in [8, 16, 32, 64] {
        let l = HnetLinear::paper(t).param_layout();
        assert_eq!(l.meta_len(), t * c + t * 4);
        assert_eq!(l.task_len(), t * 4 + 8);
        let d = HnetDeep::paper(t).param_layout();
        assert_eq!(d.meta_len(), 32 * c + 3 * (34 * t + 3_456) + t * 4);
        assert_eq!(d.task_len(), t * 4);
    }
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

/// Finite differences of the loss over the task buffer with the normalisation scales frozen at
/// their value for `c.task`.
fn frozen_task_fd(
    c: &Case,
    o: usize,
    scales: &[f64],
    fwd: impl Fn(&[f64], &[f64], &[f64], &[f64]) -> Vec<f64>,
) -> Vec<f64> {
    common::fd(H, &c.task, |t| {
        kl(&fwd(&c.meta, t, &c.x, scales), &c.y, o, None)
    })
}

#[test]
fn hnet_linear_backward_matches_finite_differences() {
    for (seed, nh) in [(1, 3), (2, 1), (3, 2)] {
        let s = tiny_linear(nh);
        let c = case(&s, seed, 4);
        let (_, dtask) = check_plain(&s, &c, false);
        let scales = s.embedding_scales(&c.task);
        let ft = frozen_task_fd(&c, 4, &scales, |m, t, x, sc| {
            s.forward_with_scales(m, t, x, sc)
        });
        common::assert_fd("dtask (scale frozen)", &dtask, &ft);
        // fast_bias is a plain output bias: its gradient needs no freezing.
        let fb = s.param_layout().task_range("fast_bias").unwrap();
        let live = common::fd(H, &c.task, |t| {
            kl(&s.forward(&c.meta, t, &c.x), &c.y, 4, None)
        });
        common::assert_fd("dfast_bias", &dtask[fb.clone()], &live[fb]);
    }
}

#[test]
fn hnet_linear_embedding_gradient_is_stop_gradient() {
    let s = tiny_linear(3);
    let c = case(&s, 7, 4);
    let (_, dtask) = analytic(&s, &c);
    let layout = s.param_layout();
    let live = common::fd(H, &c.task, |t| {
        kl(&s.forward(&c.meta, t, &c.x), &c.y, 4, None)
    });
    let t = s.num_templates;
    let mut max_diff: f64 = 0.0;
    for name in ["emb_input", "emb_hidden", "emb_output"] {
        let r = layout.task_range(name).unwrap();
        for ((e, a), n) in c.task[r.clone()]
            .chunks(t)
            .zip(dtask[r.clone()].chunks(t))
            .zip(live[r].chunks(t))
        {
            // The live loss is invariant to the row's norm: its gradient is orthogonal to e.
            let dot = |g: &[f64]| g.iter().zip(e).map(|(g, e)| g * e).sum::<f64>();
            assert!(
                dot(n).abs() < 1e-7,
                "{name}: live gradient ⟂ e, got {}",
                dot(n)
            );
            // The stop-gradient one is not: it keeps the radial component.
            let na = a.iter().map(|v| v * v).sum::<f64>().sqrt();
            assert!(
                dot(a).abs() > 1e-3 * na,
                "{name}: stop-gradient has a radial part"
            );
            // Removing the radial component of the analytic gradient gives the live one.
            let e2: f64 = e.iter().map(|v| v * v).sum();
            let k = dot(a) / e2;
            let proj: Vec<f64> = a.iter().zip(e).map(|(av, ev)| av - k * ev).collect();
            common::assert_fd("projected", &proj, n);
            for (a, n) in a.iter().zip(n) {
                max_diff = max_diff.max((a - n).abs());
            }
        }
    }
    assert!(
        max_diff > 1e-4,
        "with the scale live the finite differences must differ from the analytic gradient"
    );
}

#[test]
fn hnet_deep_backward_matches_finite_differences() {
    for (seed, nh) in [(11, 3), (12, 1), (13, 2)] {
        let s = tiny_deep(nh);
        let c = case(&s, seed, 4);
        let (_, dtask) = check_plain(&s, &c, false);
        let scales = s.embedding_scales(&c.task);
        let ft = frozen_task_fd(&c, 4, &scales, |m, t, x, sc| {
            s.forward_with_scales(m, t, x, sc)
        });
        common::assert_fd("dtask (scale frozen)", &dtask, &ft);
        // LN0 makes the DeepBank (nearly, up to its eps) invariant to the norm of ê, so here the
        // stop-gradient and the live gradient coincide to within the eps effect.
        let live = common::fd(H, &c.task, |t| {
            kl(&s.forward(&c.meta, t, &c.x), &c.y, 4, None)
        });
        for (a, n) in dtask.iter().zip(&live) {
            assert!((a - n).abs() < 1e-4 * (1.0 + a.abs()), "live {n} vs {a}");
        }
    }
}

#[test]
fn paper_sized_body_is_checked_too() {
    // The paper's DeepBank shape (4 body layers) on a tiny target network.
    let s = HnetDeep {
        body_layers: 4,
        body_dim: 4,
        ..tiny_deep(3)
    };
    let c = case(&s, 21, 3);
    let (_, dtask) = check_plain(&s, &c, false);
    let scales = s.embedding_scales(&c.task);
    let ft = frozen_task_fd(&c, 4, &scales, |m, t, x, sc| {
        s.forward_with_scales(m, t, x, sc)
    });
    common::assert_fd("dtask (scale frozen)", &dtask, &ft);
}

#[test]
fn anil_backward_matches_finite_differences() {
    for (seed, nh) in [(31, 3), (32, 1)] {
        let s = Anil {
            input_dim: 3,
            hidden_dim: 5,
            output_dim: 4,
            num_hidden: nh,
        };
        let c = case(&s, seed, 4);
        let (dmeta, _) = check_plain(&s, &c, true);
        let l = s.param_layout();
        for n in ["head_init.w", "head_init.b"] {
            assert!(dmeta[l.meta_range(n).unwrap()].iter().all(|&v| v == 0.0));
        }
    }
}

#[test]
fn maml_backward_matches_finite_differences() {
    for (seed, nh) in [(41, 3), (42, 1)] {
        let s = Maml {
            input_dim: 3,
            hidden_dim: 5,
            output_dim: 4,
            num_hidden: nh,
        };
        let c = case(&s, seed, 4);
        let (dmeta, _) = check_plain(&s, &c, true);
        assert!(dmeta.iter().all(|&v| v == 0.0));
    }
}

#[test]
fn f32_twin_agrees_with_f64() {
    let s = tiny_linear(3);
    let c = case(&s, 51, 4);
    let to32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let l64 = s.forward(&c.meta, &c.task, &c.x);
    let l32 = s.forward(&to32(&c.meta), &to32(&c.task), &to32(&c.x));
    for (a, b) in l64.iter().zip(&l32) {
        assert!((a - *b as f64).abs() < 1e-4 * (1.0 + a.abs()));
    }
}
