//! The f64 episode twin's meta-gradient (`train::episode_twin`), for every student and S = 0, 1,
//! 2 and 10 inner steps (full batch and minibatches): the reverse sweep (AdamW adjoint + dual
//! Hessian-vector products) against (a) the exact forward-mode derivative of the whole episode
//! on dual numbers and (b) central finite differences of the episode loss with the
//! stop-gradient values replayed. First-order mode against its closed form. The same for the
//! masked row losses of demonstration data (half squared error, cross-entropy; rows past an
//! episode's end weighted 0).

use hypermod::ops::adamw::AdamWConfig;
use hypermod::ops::loss::RowLoss;
use hypermod::students::{Anil, HnetDeep, HnetLinear, Init, Maml, ParamLayout, Student};
use hypermod::train::episode_twin::{
    directional_derivative, episode_loss, meta_gradient, InnerLoop, MaskedRows, MetaGradient,
    TaskData, TwinStudent,
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
        masked: None,
    }
}

/// Row weights of demonstrations of `len` rows: a prefix of ones per demonstration, at least
/// one row long.
fn prefix_masks(rng: &mut ChaCha8Rng, rows: usize, len: usize) -> Vec<f64> {
    let mut w = vec![0.0; rows];
    for demo in w.chunks_mut(len) {
        let keep = rng.random_range(1..=demo.len());
        demo[..keep].fill(1.0);
    }
    w
}

/// [`data`] under a masked row loss: regression targets for the squared error, and masks.
fn masked_data<S: Student>(
    s: &S,
    rng: &mut ChaCha8Rng,
    steps: usize,
    batch: Option<usize>,
    loss: RowLoss,
) -> TaskData {
    let mut d = data(s, rng, steps, batch);
    let o = s.output_dim();
    if loss == RowLoss::HalfSquared {
        d.support_y = rand_vec(rng, d.support_y.len(), 2.0);
        d.query_y = rand_vec(rng, d.query_y.len(), 2.0);
    }
    d.masked = Some(MaskedRows {
        loss,
        support_w: prefix_masks(rng, d.support_y.len() / o, 3),
        query_w: prefix_masks(rng, d.query_y.len() / o, 3),
    });
    d
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
    check_loss(name, s, steps, batch, None)
}

/// [`check`] under the KL (`None`) or a masked row loss.
fn check_loss<S: TwinStudent>(
    name: &str,
    s: &S,
    steps: usize,
    batch: Option<usize>,
    masked: Option<RowLoss>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed + steps as u64);
    let layout = s.param_layout();
    let meta = random_meta(&mut rng, &layout);
    let d = match masked {
        Some(loss) => masked_data(s, &mut rng, steps, batch, loss),
        None => data(s, &mut rng, steps, batch),
    };
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
        // The squared error's larger, unbounded gradients put more inner-step gradients near
        // AdamW's steep region (|g| ~ √eps_root, where the first step's g/√(g² + eps_root)
        // turns), where central differences lose digits; forward mode above is the exact check.
        let fd_tol = if masked.is_some() { 1e-4 } else { 1e-5 };
        assert!(
            (rev - fd).abs() <= fd_tol * scale,
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

#[test]
fn masked_losses_meta_gradients() {
    for loss in [RowLoss::HalfSquared, RowLoss::CrossEntropy] {
        for steps in [0, 1, 3] {
            let l = Some(loss);
            check_loss(
                &format!("hnet_linear {loss:?}"),
                &hnet_linear(),
                steps,
                None,
                l,
            );
            check_loss(
                &format!("hnet_deepmlp {loss:?}"),
                &hnet_deep(),
                steps,
                None,
                l,
            );
            check_loss(&format!("anil {loss:?}"), &anil(), steps, Some(4), l);
            check_loss(&format!("maml {loss:?}"), &maml(), steps, None, l);
        }
    }
}

/// A masked row changes nothing: the meta-gradient with a masked row's data perturbed equals the
/// one without.
#[test]
fn masked_rows_do_not_reach_the_meta_gradient() {
    let s = hnet_linear();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let meta = random_meta(&mut rng, &s.param_layout());
    let d = masked_data(&s, &mut rng, 3, None, RowLoss::HalfSquared);
    let m = d.masked.clone().unwrap();
    let (i, o) = (s.input_dim(), s.output_dim());
    let mut e = d.clone();
    for (r, w) in m.support_w.iter().enumerate() {
        if *w == 0.0 {
            e.support_x[r * i..(r + 1) * i]
                .iter_mut()
                .for_each(|v| *v += 0.5);
            e.support_y[r * o..(r + 1) * o]
                .iter_mut()
                .for_each(|v| *v -= 3.0);
        }
    }
    for (r, w) in m.query_w.iter().enumerate() {
        if *w == 0.0 {
            e.query_y[r * o..(r + 1) * o]
                .iter_mut()
                .for_each(|v| *v += 7.0);
        }
    }
    assert!(m.support_w.contains(&0.0) && m.query_w.contains(&0.0));
    let inner = inner(3);
    for order in [MetaGradient::FirstOrder, MetaGradient::SecondOrder] {
        let (la, a) = meta_gradient(&s, &meta, &d, &inner, order);
        let (lb, b) = meta_gradient(&s, &meta, &e, &inner, order);
        assert_eq!((la, &a), (lb, &b), "{order:?}");
    }
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
