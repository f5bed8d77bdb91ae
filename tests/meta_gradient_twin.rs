//! The f64 episode twin's meta-gradient (`train::episode_twin`), for every student and S = 0, 1,
//! 2 and 10 inner steps (full batch and minibatches): the reverse sweep (AdamW adjoint + dual
//! Hessian-vector products) against (a) the exact forward-mode derivative of the whole episode
//! on dual numbers and (b) central finite differences of the episode loss with the
//! stop-gradient values replayed. First-order mode against its closed form.

use hypermod::ops::adamw::AdamWConfig;
use hypermod::students::{Anil, HnetDeep, HnetLinear, Init, Maml, ParamLayout, Student};
use hypermod::train::episode_twin::{
    directional_derivative, episode_loss, meta_gradient, InnerLoop, MetaGradient, TaskData,
    TwinStudent,
};
use hypermod::train::meta::MetaConfig;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

fn rand_vec(rng: &mut ChaCha8Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|_| scale * rng.random_range(-1.0..1.0))
        .collect()
}

/// Soft targets: softmax of random logits per row.
fn targets(rng: &mut ChaCha8Rng, n: usize, c: usize) -> Vec<f64> {
    rand_vec(rng, n * c, 2.0)
        .chunks(c)
        .flat_map(|r| {
            let e: Vec<f64> = r.iter().map(|v| v.exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(move |v| v / s)
        })
        .collect()
}

/// Random meta-parameters (LayerNorm scales near 1).
fn random_meta(rng: &mut ChaCha8Rng, layout: &ParamLayout) -> Vec<f64> {
    layout
        .meta
        .iter()
        .flat_map(|s| {
            let v = rand_vec(rng, s.numel(), 1.0);
            let ones = s.init == Init::Ones;
            v.into_iter()
                .map(move |x| if ones { 1.0 + 0.3 * x } else { x })
        })
        .collect()
}

fn data<S: Student>(s: &S, rng: &mut ChaCha8Rng, steps: usize, batch: Option<usize>) -> TaskData {
    let (ns, nq, i, o) = (6, 5, s.input_dim(), s.output_dim());
    let minibatches = match batch {
        Some(b) => (0..steps)
            .map(|_| (0..b).map(|_| rng.random_range(0..ns)).collect())
            .collect(),
        None => Vec::new(),
    };
    TaskData {
        support_x: rand_vec(rng, ns * i, 1.0),
        support_y: targets(rng, ns, o),
        query_x: rand_vec(rng, nq * i, 1.0),
        query_y: targets(rng, nq, o),
        minibatches,
    }
}

/// The spec's inner AdamW at a learning rate that moves the fast weights visibly, with a weight
/// decay large enough that its term in the adjoint matters.
fn inner(steps: usize) -> InnerLoop {
    InnerLoop {
        steps,
        adam: AdamWConfig {
            weight_decay: 0.01,
            ..MetaConfig::inner_adamw(0.1)
        },
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Checks the reverse sweep of `s` along three random directions.
fn check<S: TwinStudent>(name: &str, s: &S, steps: usize, batch: Option<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed + steps as u64);
    let layout = s.param_layout();
    let meta = random_meta(&mut rng, &layout);
    let d = data(s, &mut rng, steps, batch);
    let inner = inner(steps);
    let (loss, grad) = meta_gradient(s, &meta, &d, &inner, MetaGradient::SecondOrder);
    let (loss_fwd, frozen) = episode_loss(s, &meta, &d, &inner, None);
    assert_eq!(loss, loss_fwd, "{name} S={steps}: one forward pass");
    assert!(
        grad.iter().all(|g| g.is_finite()),
        "{name}: finite gradient"
    );
    for k in 0..3 {
        let dir = rand_vec(&mut rng, meta.len(), 1.0);
        let rev = dot(&grad, &dir);
        let exact = directional_derivative(s, &meta, &dir, &d, &inner);
        let scale = rev.abs().max(exact.abs()).max(1e-6);
        assert!(
            (rev - exact).abs() <= 1e-9 * scale,
            "{name} S={steps} dir {k}: reverse sweep {rev:e} vs forward mode {exact:e}"
        );
        let h = 1e-6;
        let at = |sign: f64| {
            let m: Vec<f64> = meta
                .iter()
                .zip(&dir)
                .map(|(m, v)| m + sign * h * v)
                .collect();
            episode_loss(s, &m, &d, &inner, Some(&frozen)).0
        };
        let fd = (at(1.0) - at(-1.0)) / (2.0 * h);
        assert!(
            (rev - fd).abs() <= 1e-5 * scale,
            "{name} S={steps} dir {k}: reverse sweep {rev:e} vs finite differences {fd:e}"
        );
    }
}

fn check_all<S: TwinStudent>(name: &str, s: &S, batch: Option<usize>) {
    for steps in [0, 1, 2, 10] {
        check(name, s, steps, batch);
    }
}

fn hnet_linear() -> HnetLinear {
    HnetLinear {
        input_dim: 3,
        hidden_dim: 5,
        output_dim: 3,
        num_hidden: 2,
        num_templates: 3,
    }
}

fn hnet_deep() -> HnetDeep {
    HnetDeep {
        input_dim: 3,
        hidden_dim: 4,
        output_dim: 3,
        num_hidden: 2,
        num_templates: 3,
        body_dim: 4,
        body_layers: 2,
    }
}

fn anil() -> Anil {
    Anil {
        input_dim: 3,
        hidden_dim: 5,
        output_dim: 3,
        num_hidden: 2,
    }
}

fn maml() -> Maml {
    Maml {
        input_dim: 3,
        hidden_dim: 5,
        output_dim: 3,
        num_hidden: 2,
    }
}

#[test]
fn hnet_linear_meta_gradient() {
    check_all("hnet_linear", &hnet_linear(), None);
}

#[test]
fn hnet_deepmlp_meta_gradient() {
    check_all("hnet_deepmlp", &hnet_deep(), None);
}

#[test]
fn anil_meta_gradient_with_minibatches() {
    check_all("anil", &anil(), Some(4));
}

#[test]
fn maml_meta_gradient() {
    check_all("maml", &maml(), None);
    check("maml minibatched", &maml(), 10, Some(3));
}

/// The inner loop's contribution is real: at S = 10 the second-order gradient differs from the
/// first-order one; with no inner step they coincide.
#[test]
fn first_order_is_the_stop_gradient_limit() {
    let s = hnet_linear();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let layout = s.param_layout();
    let meta = random_meta(&mut rng, &layout);
    let d = data(&s, &mut rng, 10, None);
    let inner = inner(10);
    let (_, first) = meta_gradient(&s, &meta, &d, &inner, MetaGradient::FirstOrder);
    let (_, second) = meta_gradient(&s, &meta, &d, &inner, MetaGradient::SecondOrder);
    let diff: f64 = first.iter().zip(&second).map(|(a, b)| (a - b).abs()).sum();
    assert!(diff > 1e-3 * second.iter().map(|g| g.abs()).sum::<f64>());
    // With no inner steps the two orders coincide: the direct gradient plus θ̄₀.
    let none = InnerLoop { steps: 0, ..inner };
    let (_, a) = meta_gradient(&s, &meta, &d, &none, MetaGradient::FirstOrder);
    let (_, b) = meta_gradient(&s, &meta, &d, &none, MetaGradient::SecondOrder);
    assert_eq!(a, b);
}
