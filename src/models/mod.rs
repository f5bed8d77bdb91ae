//! The four student models of Schug et al. 2024 on the hyperteacher (spec §4): parameter layouts
//! and CPU twins (generic over [`Real`], so gradient checks run in f64).
//!
//! Every student exposes
//! - a plain config struct with a `paper` constructor for the paper's sizes;
//! - [`Student::param_layout`]: named tensors split into META parameters (outer optimiser) and
//!   TASK parameters (inner loop), each group packed into one contiguous buffer in layout order;
//! - [`Student::forward`] / [`Student::backward`] for ONE task: `x` is `n × input_dim`
//!   row-major, logits `n × output_dim`; `backward` returns `(dmeta, dtask)` with the layout of
//!   the meta and task buffers.
//!
//! Meta tensors named `*_init` hold the meta-learned initial value of a task tensor (the task
//! tensor's [`Init::Meta`] names it). The forward pass never reads them, so their entries of
//! `dmeta` are zero: their meta-gradient flows through the inner loop, which is not part of a
//! single forward/backward.
//!
//! The layer functions below (linear, activation, LayerNorm, embedding normalisation, MLP) each
//! have a separate forward and backward so that tangent / second-order versions can mirror them.

pub mod anil;
pub mod gpu;
pub mod hnet_deep;
pub mod hnet_linear;
pub mod maml;
mod mlp_gpu;

pub use anil::Anil;
pub use hnet_deep::HnetDeep;
pub use hnet_linear::HnetLinear;
pub use maml::Maml;

use std::ops::Range;

use crate::ops::elementwise::{activation_backward_cpu, activation_forward_cpu};
use crate::ops::gemm::{gemm_cpu, GemmOptions, GemmShape};
use crate::ops::layernorm::{layernorm_backward_cpu, layernorm_forward_cpu};
use crate::ops::{Activation, Real};

/// LayerNorm epsilon of the reference (haiku, spec §0.5).
pub const LN_EPS: f64 = 1e-5;

/// How a tensor is initialised (haiku conventions, spec §0.5).
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// haiku `TruncatedNormal(std)`: std·N(0, 1) truncated to ±2·std, no rescaling.
    TruncatedNormal {
        /// σ.
        std: f64,
    },
    /// Uniform on [−limit, limit].
    Uniform {
        /// Half-width.
        limit: f64,
    },
    /// A copy of the named META tensor (the meta-learned initial value of a task tensor).
    Meta(String),
}

/// One named parameter tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// Unique name within the model.
    pub name: String,
    /// Shape, row-major (weights are `[in, out]`, haiku layout).
    pub shape: Vec<usize>,
    /// Initialiser.
    pub init: Init,
}

impl ParamSpec {
    /// A tensor spec.
    pub fn new(name: impl Into<String>, shape: &[usize], init: Init) -> Self {
        ParamSpec {
            name: name.into(),
            shape: shape.to_vec(),
            init,
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The parameters of a student, split by optimiser; each group is packed in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamLayout {
    /// Meta-learned parameters (outer loop).
    pub meta: Vec<ParamSpec>,
    /// Task-specific parameters (inner loop).
    pub task: Vec<ParamSpec>,
}

fn range_of(specs: &[ParamSpec], name: &str) -> Option<Range<usize>> {
    let mut off = 0;
    for s in specs {
        if s.name == name {
            return Some(off..off + s.numel());
        }
        off += s.numel();
    }
    None
}

impl ParamLayout {
    /// Length of the packed meta buffer.
    pub fn meta_len(&self) -> usize {
        self.meta.iter().map(ParamSpec::numel).sum()
    }

    /// Length of the packed task buffer.
    pub fn task_len(&self) -> usize {
        self.task.iter().map(ParamSpec::numel).sum()
    }

    /// Range of a meta tensor in the packed meta buffer.
    pub fn meta_range(&self, name: &str) -> Option<Range<usize>> {
        range_of(&self.meta, name)
    }

    /// Range of a task tensor in the packed task buffer.
    pub fn task_range(&self, name: &str) -> Option<Range<usize>> {
        range_of(&self.task, name)
    }
}

/// A student model: layout plus CPU twins of forward and backward for one task.
pub trait Student {
    /// Named parameter tensors, split into meta and task groups.
    fn param_layout(&self) -> ParamLayout;
    /// Features per input sample.
    fn input_dim(&self) -> usize;
    /// Logits per sample.
    fn output_dim(&self) -> usize;
    /// Logits (`n × output_dim`) of the inputs `x` (`n × input_dim`).
    fn forward<T: Real>(&self, meta: &[T], task: &[T], x: &[T]) -> Vec<T>;
    /// `(dmeta, dtask)` from the gradient of a loss w.r.t. the logits.
    fn backward<T: Real>(&self, meta: &[T], task: &[T], x: &[T], dlogits: &[T])
        -> (Vec<T>, Vec<T>);
}

/// What the two hypernetwork students share: embedding rows normalised to norm √T with the
/// scale outside the gradient (spec §4.2). Implementors provide the scaled pass; the scales and
/// the frozen-scale forward/backward come from here.
pub trait Hypernetwork: Student {
    /// The generated target network.
    fn target_net(&self) -> TargetNet;
    /// Modules T.
    fn templates(&self) -> usize;
    /// Forward with frozen normalisation scales (one per embedding row), and the backward
    /// `(dmeta, dtask)` when `dlogits` is given.
    #[allow(clippy::type_complexity)]
    fn scaled_pass<T: Real>(
        &self,
        meta: &[T],
        task: &[T],
        x: &[T],
        scales: &[T],
        dlogits: Option<&[T]>,
    ) -> (Vec<T>, Option<(Vec<T>, Vec<T>)>);

    /// The normalisation scales √T/‖e_r‖ of every embedding row, in task-layout order (input
    /// row, hidden rows, output row).
    fn embedding_scales<T: Real>(&self, task: &[T]) -> Vec<T> {
        let layout = self.param_layout();
        let tv = View::new("task", &layout.task, task);
        self.target_net()
            .slots()
            .iter()
            .flat_map(|s| embedding_scales(tv.get(&format!("emb_{}", s.name)), self.templates()))
            .collect()
    }

    /// Forward with given normalisation scales (as from [`Hypernetwork::embedding_scales`]);
    /// [`Student::forward`] uses the scales of `task` itself. Freezing them gives the function
    /// whose gradient [`Student::backward`] returns.
    fn forward_with_scales<T: Real>(
        &self,
        meta: &[T],
        task: &[T],
        x: &[T],
        scales: &[T],
    ) -> Vec<T> {
        self.scaled_pass(meta, task, x, scales, None).0
    }

    /// Backward with given normalisation scales (see [`Hypernetwork::forward_with_scales`]).
    fn backward_with_scales<T: Real>(
        &self,
        meta: &[T],
        task: &[T],
        x: &[T],
        scales: &[T],
        dlogits: &[T],
    ) -> (Vec<T>, Vec<T>) {
        self.scaled_pass(meta, task, x, scales, Some(dlogits))
            .1
            .expect("gradients requested")
    }
}

/// Read access to a packed parameter buffer by name.
pub(crate) struct View<'a, T> {
    specs: &'a [ParamSpec],
    buf: &'a [T],
}

impl<'a, T> View<'a, T> {
    pub(crate) fn new(what: &str, specs: &'a [ParamSpec], buf: &'a [T]) -> Self {
        let len: usize = specs.iter().map(ParamSpec::numel).sum();
        assert_eq!(buf.len(), len, "{what} buffer has the wrong length");
        View { specs, buf }
    }

    pub(crate) fn get(&self, name: &str) -> &'a [T] {
        let r = range_of(self.specs, name).unwrap_or_else(|| panic!("no parameter {name}"));
        &self.buf[r]
    }
}

/// A zeroed gradient buffer with write access by name.
pub(crate) struct Grads<'a, T> {
    specs: &'a [ParamSpec],
    pub(crate) buf: Vec<T>,
}

impl<'a, T: Real> Grads<'a, T> {
    pub(crate) fn new(specs: &'a [ParamSpec]) -> Self {
        let len = specs.iter().map(ParamSpec::numel).sum();
        Grads {
            specs,
            buf: vec![T::zero(); len],
        }
    }

    /// Adds `g` into the gradient of `name`.
    pub(crate) fn add(&mut self, name: &str, g: &[T]) {
        let r = range_of(self.specs, name).unwrap_or_else(|| panic!("no parameter {name}"));
        assert_eq!(r.len(), g.len(), "gradient of {name} has the wrong length");
        for (d, &v) in self.buf[r].iter_mut().zip(g) {
            *d += v;
        }
    }
}

/// Number of samples in `x` with `cols` features each.
pub(crate) fn rows_of<T>(x: &[T], cols: usize) -> usize {
    assert!(
        cols > 0 && x.len().is_multiple_of(cols),
        "input length {} is not a multiple of {cols}",
        x.len()
    );
    x.len() / cols
}

// ---------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------

/// `op(A) @ op(B)` through [`gemm_cpu`]: `op(A)` is `m × k`, `op(B)` is `k × n`.
#[allow(clippy::too_many_arguments)]
pub fn matmul<T: Real>(
    a: &[T],
    b: &[T],
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
) -> Vec<T> {
    let mut c = vec![T::zero(); m * n];
    gemm_cpu(
        a,
        b,
        None,
        &mut c,
        GemmShape { batch: 1, m, n, k },
        &GemmOptions {
            trans_a,
            trans_b,
            ..GemmOptions::default()
        },
    );
    c
}

/// Linear layer `y = scale · (x @ w) + b`: `x` is `n × fan_in`, `w` `fan_in × fan_out`, `b`
/// `fan_out`. `scale` is 1 for haiku `Linear`, 1/√fan_in for `ReparametrizedLinear`.
pub fn linear_forward<T: Real>(
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    fan_in: usize,
    fan_out: usize,
    scale: T,
) -> Vec<T> {
    let n = rows_of(x, fan_in);
    let mut y = matmul(x, w, n, fan_out, fan_in, false, false);
    for row in y.chunks_mut(fan_out) {
        for (j, v) in row.iter_mut().enumerate() {
            *v = scale * *v + b.map_or(T::zero(), |b| b[j]);
        }
    }
    y
}

/// Gradients of a linear layer.
#[derive(Clone, Debug)]
pub struct LinearGrads<T> {
    /// dL/dx (`n × fan_in`); empty unless requested.
    pub dx: Vec<T>,
    /// dL/dw (`fan_in × fan_out`).
    pub dw: Vec<T>,
    /// dL/db (`fan_out`).
    pub db: Vec<T>,
}

/// Backward of [`linear_forward`] from `dy` (`n × fan_out`).
pub fn linear_backward<T: Real>(
    x: &[T],
    w: &[T],
    dy: &[T],
    fan_in: usize,
    fan_out: usize,
    scale: T,
    need_dx: bool,
) -> LinearGrads<T> {
    let n = rows_of(x, fan_in);
    let mut dw = matmul(x, dy, fan_in, fan_out, n, true, false);
    dw.iter_mut().for_each(|v| *v = scale * *v);
    let dx = if need_dx {
        let mut dx = matmul(dy, w, n, fan_in, fan_out, false, true);
        dx.iter_mut().for_each(|v| *v = scale * *v);
        dx
    } else {
        Vec::new()
    };
    let db = col_sums(dy, fan_out);
    LinearGrads { dx, dw, db }
}

/// Point-wise activation.
pub fn activation_forward<T: Real>(x: &[T], act: Activation) -> Vec<T> {
    let mut y = vec![T::zero(); x.len()];
    activation_forward_cpu(x, &mut y, act);
    y
}

/// Backward of [`activation_forward`] from `dy` and the forward output `y`.
pub fn activation_backward<T: Real>(dy: &[T], y: &[T], act: Activation) -> Vec<T> {
    let mut dx = vec![T::zero(); dy.len()];
    activation_backward_cpu(dy, y, &mut dx, act);
    dx
}

/// Row statistics a LayerNorm forward keeps for its backward.
#[derive(Clone, Debug)]
pub struct LnCache<T> {
    /// Row means.
    pub mean: Vec<T>,
    /// Row 1/√(var + eps).
    pub rstd: Vec<T>,
}

/// LayerNorm over the `cols` features of each row with learnable scale and offset (eps 1e-5).
pub fn layernorm_forward<T: Real>(
    x: &[T],
    scale: &[T],
    offset: &[T],
    cols: usize,
) -> (Vec<T>, LnCache<T>) {
    let rows = rows_of(x, cols);
    let mut y = vec![T::zero(); x.len()];
    let mut mean = vec![T::zero(); rows];
    let mut rstd = vec![T::zero(); rows];
    layernorm_forward_cpu(
        x,
        Some(scale),
        Some(offset),
        rows,
        cols,
        T::from_f64(LN_EPS),
        &mut y,
        &mut mean,
        &mut rstd,
    );
    (y, LnCache { mean, rstd })
}

/// Backward of [`layernorm_forward`]: `(dx, dscale, doffset)`.
pub fn layernorm_backward<T: Real>(
    dy: &[T],
    x: &[T],
    scale: &[T],
    cache: &LnCache<T>,
    cols: usize,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let rows = rows_of(x, cols);
    let mut dx = vec![T::zero(); x.len()];
    let mut dscale = vec![T::zero(); cols];
    let mut doffset = vec![T::zero(); cols];
    layernorm_backward_cpu(
        dy,
        x,
        Some(scale),
        &cache.mean,
        &cache.rstd,
        rows,
        cols,
        &mut dx,
        Some(&mut dscale),
        Some(&mut doffset),
    );
    (dx, dscale, doffset)
}

/// Row scales √T / ‖e_r‖₂ of the embedding normalisation (spec §4.2); `e` is `rows × t`.
pub fn embedding_scales<T: Real>(e: &[T], t: usize) -> Vec<T> {
    let sqrt_t = T::from_f64(t as f64).sqrt();
    e.chunks(t)
        .map(|r| sqrt_t / r.iter().map(|&v| v * v).sum::<T>().sqrt())
        .collect()
}

/// ê = e · s row-wise, with the scales `s` from [`embedding_scales`] (or frozen ones).
pub fn embedding_norm_forward<T: Real>(e: &[T], scales: &[T], t: usize) -> Vec<T> {
    e.chunks(t)
        .zip(scales)
        .flat_map(|(r, &s)| r.iter().map(move |&v| v * s))
        .collect()
}

/// Backward of [`embedding_norm_forward`] with `stop_gradient` on the scale: de = dê · s.
pub fn embedding_norm_backward<T: Real>(dehat: &[T], scales: &[T], t: usize) -> Vec<T> {
    embedding_norm_forward(dehat, scales, t)
}

// ---------------------------------------------------------------------------------------------
// MLPs
// ---------------------------------------------------------------------------------------------

/// Activations of an MLP forward: `acts[0]` is the input, `acts[l + 1]` the output of layer l.
#[derive(Clone, Debug)]
pub struct MlpCache<T> {
    /// Layer inputs and outputs.
    pub acts: Vec<Vec<T>>,
}

/// An MLP with biases: `dims` are the layer widths (input first), ReLU after every layer except
/// the last unless `relu_last`; `reparam` scales each layer by 1/√fan_in (`ReparametrizedLinear`).
/// `params[l]` = (w `[in, out]`, b).
pub fn mlp_forward<T: Real>(
    dims: &[usize],
    params: &[(&[T], &[T])],
    x: &[T],
    reparam: bool,
    relu_last: bool,
) -> MlpCache<T> {
    let nl = dims.len() - 1;
    assert_eq!(params.len(), nl, "MLP needs one (w, b) per layer");
    let mut acts = vec![x.to_vec()];
    for (l, &(w, b)) in params.iter().enumerate() {
        let (fi, fo) = (dims[l], dims[l + 1]);
        let z = linear_forward(&acts[l], w, Some(b), fi, fo, layer_scale(fi, reparam));
        let act = if l + 1 < nl || relu_last {
            Activation::Relu
        } else {
            Activation::Identity
        };
        acts.push(activation_forward(&z, act));
    }
    MlpCache { acts }
}

fn layer_scale<T: Real>(fan_in: usize, reparam: bool) -> T {
    if reparam {
        T::one() / T::from_f64(fan_in as f64).sqrt()
    } else {
        T::one()
    }
}

/// Per-layer `(dw, db)` of an MLP.
pub type LayerGrads<T> = Vec<(Vec<T>, Vec<T>)>;

/// Backward of [`mlp_forward`] from the gradient of its output: per-layer `(dw, db)` and dL/dx
/// (empty unless `need_dx`).
pub fn mlp_backward<T: Real>(
    dims: &[usize],
    params: &[(&[T], &[T])],
    cache: &MlpCache<T>,
    dout: &[T],
    reparam: bool,
    relu_last: bool,
    need_dx: bool,
) -> (LayerGrads<T>, Vec<T>) {
    let nl = dims.len() - 1;
    let mut grads = vec![(Vec::new(), Vec::new()); nl];
    let mut dy = dout.to_vec();
    for l in (0..nl).rev() {
        let (fi, fo) = (dims[l], dims[l + 1]);
        let act = if l + 1 < nl || relu_last {
            Activation::Relu
        } else {
            Activation::Identity
        };
        let dz = activation_backward(&dy, &cache.acts[l + 1], act);
        let g = linear_backward(
            &cache.acts[l],
            params[l].0,
            &dz,
            fi,
            fo,
            layer_scale(fi, reparam),
            l > 0 || need_dx,
        );
        grads[l] = (g.dw, g.db);
        dy = g.dx;
    }
    (grads, if need_dx { dy } else { Vec::new() })
}

// ---------------------------------------------------------------------------------------------
// The target network of the hypernetwork students (spec §4.1)
// ---------------------------------------------------------------------------------------------

/// One hypernetwork of a hypernetwork student: it generates `rows` chunks of `chunk` parameters
/// (one per target layer it serves), each chunk `w [fan_in, fan_out]` row-major then `b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HnetSlot {
    /// "input", "hidden" or "output".
    pub name: &'static str,
    /// Embedding rows = target layers served.
    pub rows: usize,
    /// Parameters generated per row.
    pub chunk: usize,
}

/// The generated MLP `input_dim → hidden_dim × num_hidden → output_dim`: `ReparametrizedLinear`
/// layers with bias, ReLU after every layer but the last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetNet {
    /// Input features (16).
    pub input_dim: usize,
    /// Hidden width (128).
    pub hidden_dim: usize,
    /// Logits (8).
    pub output_dim: usize,
    /// Hidden layers (3): the input layer plus `num_hidden − 1` hidden→hidden layers.
    pub num_hidden: usize,
}

impl TargetNet {
    /// Layer widths, input first.
    pub fn dims(&self) -> Vec<usize> {
        assert!(self.num_hidden >= 1, "num_hidden must be at least 1");
        let mut d = vec![self.input_dim];
        d.extend(std::iter::repeat_n(self.hidden_dim, self.num_hidden));
        d.push(self.output_dim);
        d
    }

    /// The hypernetworks: input (1 row), hidden (`num_hidden − 1` rows sharing one bank; absent
    /// when 0), output (1 row).
    pub fn slots(&self) -> Vec<HnetSlot> {
        let (i, h, o) = (self.input_dim, self.hidden_dim, self.output_dim);
        let mut s = vec![HnetSlot {
            name: "input",
            rows: 1,
            chunk: i * h + h,
        }];
        if self.num_hidden > 1 {
            s.push(HnetSlot {
                name: "hidden",
                rows: self.num_hidden - 1,
                chunk: h * h + h,
            });
        }
        s.push(HnetSlot {
            name: "output",
            rows: 1,
            chunk: h * o + o,
        });
        s
    }

    /// Total embedding rows R.
    pub fn embedding_rows(&self) -> usize {
        self.num_hidden + 1
    }

    /// (slot index, row) that generates target layer `l`.
    fn source(&self, l: usize, nslots: usize) -> (usize, usize) {
        if l == 0 {
            (0, 0)
        } else if l == self.num_hidden {
            (nslots - 1, 0)
        } else {
            (1, l - 1)
        }
    }

    /// Splits the generated tensors (`gen[s]` is `rows_s × chunk_s`) into per-layer (w, b).
    pub fn layer_params<'a, T>(&self, gen: &'a [Vec<T>]) -> Vec<(&'a [T], &'a [T])> {
        let dims = self.dims();
        (0..dims.len() - 1)
            .map(|l| {
                let (s, r) = self.source(l, gen.len());
                let nw = dims[l] * dims[l + 1];
                let chunk = nw + dims[l + 1];
                let c = &gen[s][r * chunk..(r + 1) * chunk];
                (&c[..nw], &c[nw..])
            })
            .collect()
    }

    /// Forward with generated parameters.
    pub fn forward<T: Real>(&self, gen: &[Vec<T>], x: &[T]) -> MlpCache<T> {
        mlp_forward(&self.dims(), &self.layer_params(gen), x, true, false)
    }

    /// Backward: gradients w.r.t. the generated tensors (same layout as `gen`).
    pub fn backward<T: Real>(
        &self,
        gen: &[Vec<T>],
        cache: &MlpCache<T>,
        dlogits: &[T],
    ) -> Vec<Vec<T>> {
        let dims = self.dims();
        let (grads, _) = mlp_backward(
            &dims,
            &self.layer_params(gen),
            cache,
            dlogits,
            true,
            false,
            false,
        );
        let mut dgen: Vec<Vec<T>> = gen.iter().map(|g| vec![T::zero(); g.len()]).collect();
        for (l, (dw, db)) in grads.into_iter().enumerate() {
            let (s, r) = self.source(l, gen.len());
            let chunk = dw.len() + db.len();
            let dst = &mut dgen[s][r * chunk..(r + 1) * chunk];
            dst[..dw.len()].copy_from_slice(&dw);
            dst[dw.len()..].copy_from_slice(&db);
        }
        dgen
    }
}

/// Column sums of `dy` (`n × cols`): the gradient of a bias added to every row.
pub(crate) fn col_sums<T: Real>(dy: &[T], cols: usize) -> Vec<T> {
    let mut s = vec![T::zero(); cols];
    for row in dy.chunks(cols) {
        for (d, &v) in s.iter_mut().zip(row) {
            *d += v;
        }
    }
    s
}
