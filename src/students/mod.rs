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
//! The layers themselves (dense, MLP, LayerNorm, embedding normalisation, banks) are in
//! [`crate::nn`]; a student is a composition of them.

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

use crate::ops::Real;

// The layers' CPU twins live with their GPU launches in `nn`; re-exported for the students.
pub use crate::nn::{
    activation_backward, activation_forward, embedding_norm_backward, embedding_norm_forward,
    embedding_scales, layernorm_backward, layernorm_forward, linear_backward, linear_forward,
    matmul, mlp_backward, mlp_forward, LayerGrads, LinearGrads, LnCache, MlpCache, LN_EPS,
};

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

/// The embedding tensors of a hypernetwork student (spec §4.2), one per slot: the meta-learned
/// initial value `emb_{slot}_init` `[rows, T]` ~ U(±√(3/rows)) (appended to `meta`) and the
/// task tensor `emb_{slot}` that starts from it (appended to `task`).
pub(crate) fn embedding_specs(
    slots: &[HnetSlot],
    t: usize,
    meta: &mut Vec<ParamSpec>,
    task: &mut Vec<ParamSpec>,
) {
    for s in slots {
        let init = format!("emb_{}_init", s.name);
        let limit = (3.0 / s.rows as f64).sqrt();
        meta.push(ParamSpec::new(&init, &[s.rows, t], Init::Uniform { limit }));
        task.push(ParamSpec::new(
            format!("emb_{}", s.name),
            &[s.rows, t],
            Init::Meta(init),
        ));
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
