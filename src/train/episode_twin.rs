//! The f64 reference of one meta-learning episode and its exact meta-gradient (second-order:
//! through the unrolled inner AdamW loop, moments included, as `jax.grad` of metax's
//! `outer_loss` with `first_order = False`; or first-order, as with `first_order = True`).
//!
//! An episode of ONE task, as a function of the meta-parameters φ:
//!
//! ```text
//! θ₀ = init(φ)                          task tensors: copies of their `*_init` meta tensor, or constants
//! for t = 1..S:                         fresh AdamW state (m = v = 0, count 0)
//!     g_t = ∇θ L_in(θ_{t−1}, φ; B_t)    KL on the support set or its minibatch B_t
//!     θ_t = AdamW(θ_{t−1}, g_t, t)      optax adamw, eps_root inside the square root
//! L(φ) = L_out(θ_S, φ)                  KL on the query set
//! ```
//!
//! Values held under `stop_gradient` in the reference (a hypernetwork's embedding normalisation
//! scales) are constants of the derivative at every order. [`TwinStudent::frozen`] returns them,
//! [`Real::detach`]ed, and an episode can REPLAY the ones recorded in another episode: the
//! derivative of the replaying episode is then an ordinary derivative, which finite differences
//! can check.
//!
//! Three ways to differentiate it, each checking the others in the tests:
//! - [`meta_gradient`]: the reverse sweep the device runs (t = S..1: the AdamW adjoint
//!   [`adamw_vjp_cpu`], then θ̄ += H_θθ·ḡ and φ̄ += H_φθ·ḡ, both from ONE student backward run on
//!   [`Dual`] numbers with tangent ḡ on θ — forward-over-reverse); then φ̄_init += θ̄₀;
//! - [`directional_derivative`]: the whole episode run on duals with a direction on φ (exact);
//! - central finite differences of [`episode_loss`] with the stop-gradient values replayed.

use crate::ops::adamw::{adamw_cpu, adamw_vjp_cpu, AdamWConfig, AdamWHostState};
use crate::ops::dual::Dual;
use crate::ops::loss::{kl_divergence_cpu, masked_loss_cpu, LossShape, RowLoss};
use crate::ops::Real;
use crate::students::{HnetDeep, HnetLinear, Hypernetwork, Init, ParamLayout, Student};

use crate::students::{Anil, Maml};

/// How the meta-gradient treats the inner loop (`train.meta_gradient`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetaGradient {
    /// Through the unrolled inner loop: Hessian-vector products and the AdamW adjoint (the
    /// paper's algorithm).
    SecondOrder,
    /// The inner gradients under `stop_gradient` (metax `first_order = True`): the adapted
    /// parameters depend on their initial value only through the weight decay, so
    /// ∂θ_S/∂θ₀ = (1 − lr·wd)^S.
    FirstOrder,
}

impl MetaGradient {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            MetaGradient::SecondOrder => "second_order",
            MetaGradient::FirstOrder => "first_order",
        }
    }
}

/// A student as the episode twin sees it: the forward and backward with the stop-gradient values
/// given (so an episode can freeze them).
pub trait TwinStudent: Student {
    /// The values under `stop_gradient` at task parameters `task` (a hypernetwork's embedding
    /// scales, detached; empty for the others).
    fn frozen<T: Real>(&self, task: &[T]) -> Vec<T>;
    /// Logits with the stop-gradient values `frozen`.
    fn forward_frozen<T: Real>(&self, meta: &[T], task: &[T], x: &[T], frozen: &[T]) -> Vec<T>;
    /// `(dmeta, dtask)` with the stop-gradient values `frozen`.
    fn backward_frozen<T: Real>(
        &self,
        meta: &[T],
        task: &[T],
        x: &[T],
        frozen: &[T],
        dlogits: &[T],
    ) -> (Vec<T>, Vec<T>);
}

macro_rules! twin_hypernetwork {
    ($($s:ty),*) => {$(
        impl TwinStudent for $s {
            fn frozen<T: Real>(&self, task: &[T]) -> Vec<T> {
                self.embedding_scales(task)
            }
            fn forward_frozen<T: Real>(&self, meta: &[T], task: &[T], x: &[T], f: &[T]) -> Vec<T> {
                self.forward_with_scales(meta, task, x, f)
            }
            fn backward_frozen<T: Real>(
                &self, meta: &[T], task: &[T], x: &[T], f: &[T], dl: &[T],
            ) -> (Vec<T>, Vec<T>) {
                self.backward_with_scales(meta, task, x, f, dl)
            }
        }
    )*};
}

macro_rules! twin_plain {
    ($($s:ty),*) => {$(
        impl TwinStudent for $s {
            fn frozen<T: Real>(&self, _task: &[T]) -> Vec<T> {
                Vec::new()
            }
            fn forward_frozen<T: Real>(&self, meta: &[T], task: &[T], x: &[T], _f: &[T]) -> Vec<T> {
                self.forward(meta, task, x)
            }
            fn backward_frozen<T: Real>(
                &self, meta: &[T], task: &[T], x: &[T], _f: &[T], dl: &[T],
            ) -> (Vec<T>, Vec<T>) {
                self.backward(meta, task, x, dl)
            }
        }
    )*};
}

twin_hypernetwork!(HnetLinear, HnetDeep);
twin_plain!(Anil, Maml);

/// One task's data: support and query inputs (`rows × input_dim`) and soft targets
/// (`rows × output_dim`), and each inner step's minibatch as support row indices (empty: every
/// step sees the whole support set).
#[derive(Clone, Debug)]
pub struct TaskData {
    /// Support inputs.
    pub support_x: Vec<f64>,
    /// Support targets.
    pub support_y: Vec<f64>,
    /// Query inputs.
    pub query_x: Vec<f64>,
    /// Query targets.
    pub query_y: Vec<f64>,
    /// Per inner step, the support rows it trains on (with replacement); empty for full batch.
    pub minibatches: Vec<Vec<usize>>,
    /// A masked loss: the row loss and the support and query rows' weights; `None`: the
    /// soft-label KL over every row (the hyperteacher's).
    pub masked: Option<MaskedRows>,
}

/// A task's row weights under a masked row loss ([`crate::train::task_source::TaskLoss::Masked`]).
#[derive(Clone, Debug)]
pub struct MaskedRows {
    /// The per-row loss.
    pub loss: RowLoss,
    /// One weight per support row.
    pub support_w: Vec<f64>,
    /// One weight per query row.
    pub query_w: Vec<f64>,
}

/// The inner loop: `steps` AdamW steps with `adam` (no clipping).
#[derive(Clone, Copy, Debug)]
pub struct InnerLoop {
    /// S.
    pub steps: usize,
    /// The inner optimiser (spec §5.1).
    pub adam: AdamWConfig,
}

/// What the forward pass of an episode keeps for the reverse sweep, per inner step t (index
/// t − 1): θ_{t−1}, g_t, the moments m′_t, v′_t the step wrote, its stop-gradient values; and
/// those of the query pass (last entry of `frozen`).
#[derive(Default)]
struct Trace {
    theta: Vec<Vec<f64>>,
    grad: Vec<Vec<f64>>,
    m: Vec<Vec<f64>>,
    v: Vec<Vec<f64>>,
    frozen: Vec<Vec<f64>>,
    final_theta: Vec<f64>,
}

/// θ₀ from the meta-parameters: each task tensor is a copy of its `*_init` meta tensor, or a
/// constant (the layout's [`Init`]).
pub fn initial_task<T: Real>(layout: &ParamLayout, meta: &[T]) -> Vec<T> {
    let mut task = Vec::with_capacity(layout.task_len());
    for spec in &layout.task {
        match &spec.init {
            Init::Meta(name) => {
                let r = layout.meta_range(name).expect("the layout names its init");
                task.extend_from_slice(&meta[r]);
            }
            Init::Ones => task.extend(std::iter::repeat_n(T::one(), spec.numel())),
            _ => task.extend(std::iter::repeat_n(T::zero(), spec.numel())),
        }
    }
    task
}

/// Rows `idx` of a row-major matrix with `cols` columns.
fn rows<T: Copy>(m: &[T], cols: usize, idx: &[usize]) -> Vec<T> {
    idx.iter()
        .flat_map(|&r| m[r * cols..(r + 1) * cols].iter().copied())
        .collect()
}

/// Inputs, targets and (masked loss) row weights of inner step `t` (0-based).
fn step_batch<T: Real>(
    student: &impl Student,
    data: &TaskData,
    t: usize,
) -> (Vec<T>, Vec<T>, Option<Vec<T>>) {
    let (din, dout) = (student.input_dim(), student.output_dim());
    let lift = |v: Vec<f64>| v.into_iter().map(T::from_f64).collect::<Vec<T>>();
    let w = data.masked.as_ref().map(|m| &m.support_w);
    match data.minibatches.get(t).filter(|b| !b.is_empty()) {
        Some(b) => (
            lift(rows(&data.support_x, din, b)),
            lift(rows(&data.support_y, dout, b)),
            w.map(|w| lift(rows(w, 1, b))),
        ),
        None => (
            lift(data.support_x.clone()),
            lift(data.support_y.clone()),
            w.map(|w| lift(w.clone())),
        ),
    }
}

/// The task's loss over the rows and its gradient w.r.t. the logits (scale 1, as the device's
/// per-task inner and query losses before the 1/tasks of the meta-batch mean): the mean KL, or
/// the masked row loss with weights `w`.
fn loss<T: Real>(
    data: &TaskData,
    logits: &[T],
    y: &[T],
    w: Option<&[T]>,
    cols: usize,
) -> (T, Vec<T>) {
    let shape = LossShape {
        batch: 1,
        rows: logits.len() / cols,
        cols,
    };
    let (mut l, mut grad) = ([T::zero()], vec![T::zero(); logits.len()]);
    match (&data.masked, w) {
        (Some(m), Some(w)) => masked_loss_cpu(
            Some(m.loss),
            logits,
            y,
            w,
            shape,
            &mut l,
            Some(&mut grad),
            T::one(),
        ),
        _ => kl_divergence_cpu(logits, y, shape, &mut l, Some(&mut grad), T::one()),
    }
    (l[0], grad)
}

/// The stop-gradient values of pass `i`: replayed from `replay` when given, else computed.
fn frozen_at<S: TwinStudent, T: Real>(
    student: &S,
    task: &[T],
    replay: Option<&[Vec<f64>]>,
    i: usize,
) -> Vec<T> {
    match replay {
        Some(r) => r[i].iter().map(|&v| T::from_f64(v)).collect(),
        None => student.frozen(task),
    }
}

/// The query loss of the episode at `meta` (any [`Real`]: f64 for finite differences, [`Dual`]
/// for forward mode), replaying the stop-gradient values of `replay` (one entry per inner step,
/// then the query's) when given. Also returns the values it used.
pub fn episode_loss<S: TwinStudent, T: Real>(
    student: &S,
    meta: &[T],
    data: &TaskData,
    inner: &InnerLoop,
    replay: Option<&[Vec<f64>]>,
) -> (T, Vec<Vec<f64>>) {
    let mut trace = Trace::default();
    let loss = run_episode(student, meta, data, inner, replay, &mut trace);
    (loss, trace.frozen)
}

/// The forward pass: the query loss, with what the reverse sweep needs in `tr` (as f64).
fn run_episode<S: TwinStudent, T: Real>(
    student: &S,
    meta: &[T],
    data: &TaskData,
    inner: &InnerLoop,
    replay: Option<&[Vec<f64>]>,
    tr: &mut Trace,
) -> T {
    let f64s = |v: &[T]| v.iter().map(|x| x.to_f64()).collect::<Vec<f64>>();
    let lift = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
    let dout = student.output_dim();
    let mut theta = initial_task(&student.param_layout(), meta);
    let mut adam = AdamWHostState::new(1, theta.len());
    for t in 0..inner.steps {
        let (x, y, w) = step_batch::<T>(student, data, t);
        let f = frozen_at(student, &theta, replay, t);
        let logits = student.forward_frozen(meta, &theta, &x, &f);
        let (_, dl) = loss(data, &logits, &y, w.as_deref(), dout);
        let (_, g) = student.backward_frozen(meta, &theta, &x, &f, &dl);
        tr.theta.push(f64s(&theta));
        adamw_cpu(&mut theta, &g, &mut adam, &inner.adam);
        tr.grad.push(f64s(&g));
        tr.m.push(f64s(&adam.m));
        tr.v.push(f64s(&adam.v));
        tr.frozen.push(f64s(&f));
    }
    let f = frozen_at(student, &theta, replay, inner.steps);
    tr.frozen.push(f64s(&f));
    tr.final_theta = f64s(&theta);
    let logits = student.forward_frozen(meta, &theta, &lift(&data.query_x), &f);
    let w = data.masked.as_ref().map(|m| lift(&m.query_w));
    loss(data, &logits, &lift(&data.query_y), w.as_deref(), dout).0
}

/// `(H_φθ·dir, H_θθ·dir)` of the inner loss at (`meta`, `theta`) on step `t`'s batch, with the
/// stop-gradient values `frozen`: the tangent of one backward run on duals.
#[allow(clippy::too_many_arguments)]
fn hvp<S: TwinStudent>(
    student: &S,
    meta: &[f64],
    theta: &[f64],
    dir: &[f64],
    frozen: &[f64],
    data: &TaskData,
    t: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (x, y, w) = step_batch::<Dual>(student, data, t);
    let (m, th, f) = (
        Dual::constants(meta),
        Dual::seed(theta, dir),
        Dual::constants(frozen),
    );
    let logits = student.forward_frozen(&m, &th, &x, &f);
    let (_, dl) = loss(data, &logits, &y, w.as_deref(), student.output_dim());
    let (dm, dt) = student.backward_frozen(&m, &th, &x, &f, &dl);
    (Dual::tangents(&dm), Dual::tangents(&dt))
}

/// The episode's query loss and its meta-gradient ∂L/∂φ (packed like `meta`), by the reverse
/// sweep the device runs (module docs).
pub fn meta_gradient<S: TwinStudent>(
    student: &S,
    meta: &[f64],
    data: &TaskData,
    inner: &InnerLoop,
    order: MetaGradient,
) -> (f64, Vec<f64>) {
    assert_eq!(
        inner.adam.max_grad_norm, 0.0,
        "the inner loop does not clip"
    );
    let layout = student.param_layout();
    let mut tr = Trace::default();
    run_episode(student, meta, data, inner, None, &mut tr);
    let dout = student.output_dim();
    let f = &tr.frozen[inner.steps];
    let logits = student.forward_frozen(meta, &tr.final_theta, &data.query_x, f);
    let w = data.masked.as_ref().map(|m| m.query_w.as_slice());
    let (loss, dl) = loss(data, &logits, &data.query_y, w, dout);
    let (mut dmeta, mut a) = student.backward_frozen(meta, &tr.final_theta, &data.query_x, f, &dl);
    let n = a.len();
    let (lr, wd) = ([inner.adam.lr], [inner.adam.weight_decay]);
    match order {
        MetaGradient::FirstOrder => {
            let keep = 1.0 - inner.adam.lr as f64 * inner.adam.weight_decay as f64;
            a.iter_mut()
                .for_each(|x| *x *= keep.powi(inner.steps as i32));
        }
        MetaGradient::SecondOrder => {
            let (mut mbar, mut vbar, mut gbar) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            for t in (0..inner.steps).rev() {
                adamw_vjp_cpu(
                    &inner.adam,
                    &lr,
                    &wd,
                    t as u32 + 1,
                    &tr.grad[t],
                    &tr.m[t],
                    &tr.v[t],
                    &mut a,
                    &mut mbar,
                    &mut vbar,
                    &mut gbar,
                );
                let (hm, ht) = hvp(student, meta, &tr.theta[t], &gbar, &tr.frozen[t], data, t);
                a.iter_mut().zip(&ht).for_each(|(x, h)| *x += h);
                dmeta.iter_mut().zip(&hm).for_each(|(x, h)| *x += h);
            }
        }
    }
    add_init_adjoint(&layout, &a, &mut dmeta);
    (loss, dmeta)
}

/// φ̄_init += θ̄₀ for every task tensor whose initial value is a meta tensor.
pub fn add_init_adjoint(layout: &ParamLayout, theta_bar: &[f64], dmeta: &mut [f64]) {
    for spec in &layout.task {
        if let Init::Meta(name) = &spec.init {
            let (src, dst) = (
                layout.task_range(&spec.name).expect("listed"),
                layout.meta_range(name).expect("the layout names its init"),
            );
            for (d, s) in dmeta[dst].iter_mut().zip(&theta_bar[src]) {
                *d += s;
            }
        }
    }
}

/// The exact directional derivative `⟨∂L/∂φ, dir⟩` of the episode (second-order), by running it
/// on dual numbers.
pub fn directional_derivative<S: TwinStudent>(
    student: &S,
    meta: &[f64],
    dir: &[f64],
    data: &TaskData,
    inner: &InnerLoop,
) -> f64 {
    let meta = Dual::seed(meta, dir);
    run_episode(student, &meta, data, inner, None, &mut Trace::default()).d
}
