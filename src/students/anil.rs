//! ANIL student `anil512` (spec §4.4): a meta-learned body, frozen in the inner loop, and a
//! task-specific linear head whose initial value is meta-learned.
//!
//! ```text
//! h      = ReLU(... ReLU(ReLU(x @ W0 + b0) @ W1 + b1) ...)     num_hidden layers, ReLU after all
//! logits = h @ head.w + head.b
//! ```
//!
//! Layers are haiku `Linear` (no 1/√fan_in forward scaling), init TN(1/√fan_in), zero bias.

use crate::gpu::error::Result;
use crate::gpu::{Device, Tensor};
use crate::ops::Real;

use crate::nn::Mlp;
use crate::ops::Activation;

use super::gpu::{
    check_buffers, FixedFeatures, GpuStudent, StudentBuffers, StudentProgram, TangentBuffers,
};
use super::mlp_gpu::{mlp_program, Group, NamedLayer};

use super::{
    linear_backward, linear_forward, mlp_backward, mlp_forward, Grads, Init, ParamLayout,
    ParamSpec, Student, View,
};

/// Config of the ANIL student.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anil {
    /// Input features (16).
    pub input_dim: usize,
    /// Body width (512).
    pub hidden_dim: usize,
    /// Logits (8).
    pub output_dim: usize,
    /// Body layers (3).
    pub num_hidden: usize,
}

impl Anil {
    /// The paper's `anil512`.
    pub fn paper() -> Self {
        Anil {
            input_dim: 16,
            hidden_dim: 512,
            output_dim: 8,
            num_hidden: 3,
        }
    }

    /// Body layer widths, input first.
    pub fn body_dims(&self) -> Vec<usize> {
        let mut d = vec![self.input_dim];
        d.extend(std::iter::repeat_n(self.hidden_dim, self.num_hidden));
        d
    }
}

impl Student for Anil {
    /// META: `body.l{i}.{w,b}` (`[in, out]` ~ TN(1/√in), 0), then `head_init.{w,b}`
    /// (`[hidden, out]` ~ TN(1/√hidden), 0). TASK: `head.{w,b}` (from `head_init.*`).
    fn param_layout(&self) -> ParamLayout {
        let dims = self.body_dims();
        let tn = |fan: usize| Init::TruncatedNormal {
            std: 1.0 / (fan as f64).sqrt(),
        };
        let mut meta = Vec::new();
        for l in 0..dims.len() - 1 {
            meta.push(ParamSpec::new(
                format!("body.l{l}.w"),
                &[dims[l], dims[l + 1]],
                tn(dims[l]),
            ));
            meta.push(ParamSpec::new(
                format!("body.l{l}.b"),
                &[dims[l + 1]],
                Init::Zeros,
            ));
        }
        let (h, o) = (self.hidden_dim, self.output_dim);
        meta.push(ParamSpec::new("head_init.w", &[h, o], tn(h)));
        meta.push(ParamSpec::new("head_init.b", &[o], Init::Zeros));
        let task = vec![
            ParamSpec::new("head.w", &[h, o], Init::Meta("head_init.w".into())),
            ParamSpec::new("head.b", &[o], Init::Meta("head_init.b".into())),
        ];
        ParamLayout { meta, task }
    }

    fn input_dim(&self) -> usize {
        self.input_dim
    }

    fn output_dim(&self) -> usize {
        self.output_dim
    }

    fn forward<T: Real>(&self, meta: &[T], task: &[T], x: &[T]) -> Vec<T> {
        let layout = self.param_layout();
        let (mv, tv) = (
            View::new("meta", &layout.meta, meta),
            View::new("task", &layout.task, task),
        );
        let params = body_params(&mv, self.num_hidden);
        let body = mlp_forward(&self.body_dims(), &params, x, false, true);
        let h = body.acts.last().expect("body output");
        linear_forward(
            h,
            tv.get("head.w"),
            Some(tv.get("head.b")),
            self.hidden_dim,
            self.output_dim,
            T::one(),
        )
    }

    fn backward<T: Real>(
        &self,
        meta: &[T],
        task: &[T],
        x: &[T],
        dlogits: &[T],
    ) -> (Vec<T>, Vec<T>) {
        let layout = self.param_layout();
        let (mv, tv) = (
            View::new("meta", &layout.meta, meta),
            View::new("task", &layout.task, task),
        );
        let dims = self.body_dims();
        let params = body_params(&mv, self.num_hidden);
        let body = mlp_forward(&dims, &params, x, false, true);
        let h = body.acts.last().expect("body output");
        let g = linear_backward(
            h,
            tv.get("head.w"),
            dlogits,
            self.hidden_dim,
            self.output_dim,
            T::one(),
            true,
        );
        let mut dtask = Grads::new(&layout.task);
        dtask.add("head.w", &g.dw);
        dtask.add("head.b", &g.db);
        let (grads, _) = mlp_backward(&dims, &params, &body, &g.dx, false, true, false);
        let mut dmeta = Grads::new(&layout.meta);
        for (l, (dw, db)) in grads.iter().enumerate() {
            dmeta.add(&format!("body.l{l}.w"), dw);
            dmeta.add(&format!("body.l{l}.b"), db);
        }
        (dmeta.buf, dtask.buf)
    }
}

fn body_params<'a, T>(mv: &View<'a, T>, layers: usize) -> Vec<(&'a [T], &'a [T])> {
    (0..layers)
        .map(|l| {
            (
                mv.get(&format!("body.l{l}.w")),
                mv.get(&format!("body.l{l}.b")),
            )
        })
        .collect()
}

impl Anil {
    /// The body's layers, bound to `body.l{i}.*` (shared by the tasks).
    fn body_layers(&self) -> Vec<NamedLayer> {
        (0..self.num_hidden)
            .map(|l| NamedLayer {
                group: Group::Meta,
                w: format!("body.l{l}.w"),
                b: format!("body.l{l}.b"),
            })
            .collect()
    }

    /// The head, bound to the task's `head.*`.
    fn head_layer(&self) -> NamedLayer {
        NamedLayer {
            group: Group::Task,
            w: "head.w".into(),
            b: "head.b".into(),
        }
    }

    /// The `dmeta` ranges no layer writes: the head's meta-learned initial value.
    fn zero_meta(&self, layout: &ParamLayout) -> Vec<std::ops::Range<usize>> {
        ["head_init.w", "head_init.b"]
            .iter()
            .filter_map(|name| layout.meta_range(name))
            .collect()
    }
}

/// ANIL's body is meta-learned and frozen in the inner loop: its features of the support set
/// are fixed for the whole loop (the notes' fixed-features saving).
impl FixedFeatures for Anil {
    fn feature_dim(&self) -> usize {
        self.hidden_dim
    }

    /// The body (ReLU after every layer) over all tasks; its backward writes the body's
    /// entries of `dmeta`. `StudentBuffers` wants task tensors: the body reads none, so the
    /// features stand in for them (only their batch is looked at).
    fn feature_program(
        &self,
        gpu: &Device,
        meta: &Tensor,
        x: &Tensor,
        features: &Tensor,
        grad: Option<(&Tensor, &Tensor)>,
    ) -> Result<StudentProgram> {
        let layout = self.param_layout();
        let mlp = Mlp::new(&self.body_dims(), Activation::Relu, Activation::Relu);
        let (dfeatures, dmeta) = match grad {
            Some((d, m)) => (d, Some(m)),
            None => (features, None),
        };
        let b = StudentBuffers {
            meta,
            task: features,
            x,
            logits: features,
            dlogits: dfeatures,
            dtask: features,
            dmeta,
        };
        let mut p = mlp_program(gpu, &layout, &mlp, &self.body_layers(), &[], &b, None, None)?;
        if grad.is_none() {
            p.backward.clear();
        }
        Ok(p)
    }

    fn head_program(
        &self,
        gpu: &Device,
        buffers: &StudentBuffers<'_>,
        tangent: Option<(&TangentBuffers<'_>, &Tensor)>,
    ) -> Result<StudentProgram> {
        let layout = self.param_layout();
        let head = Mlp::new(
            &[self.hidden_dim, self.output_dim],
            Activation::Identity,
            Activation::Identity,
        );
        let zero = self.zero_meta(&layout);
        let (t, dx_dot) = (tangent.map(|t| t.0), tangent.map(|t| t.1));
        let names = [self.head_layer()];
        mlp_program(gpu, &layout, &head, &names, &zero, buffers, t, dx_dot)
    }
}

impl GpuStudent for Anil {
    /// Body layers read the broadcast meta tensors and, with `dmeta`, write their gradient summed
    /// over the tasks; the head is per task. `head_init.*` entries of `dmeta` are zeroed. Without
    /// `dmeta` the backward stops at the head.
    ///
    /// With a tangent, also its tangent passes ([`crate::nn::Mlp::program_with_tangent`]).
    fn build_program(
        &self,
        gpu: &Device,
        buffers: &StudentBuffers<'_>,
        tangent: Option<&TangentBuffers<'_>>,
    ) -> Result<StudentProgram> {
        let layout = self.param_layout();
        check_buffers("anil", self, buffers)?;
        let mut dims = self.body_dims();
        dims.push(self.output_dim);
        // ReLU after every body layer; the head is linear.
        let mlp = Mlp::new(&dims, Activation::Relu, Activation::Identity);
        let mut names = self.body_layers();
        names.push(self.head_layer());
        let zero = self.zero_meta(&layout);
        mlp_program(gpu, &layout, &mlp, &names, &zero, buffers, tangent, None)
    }

    fn fixed_features(&self) -> Option<&dyn FixedFeatures> {
        Some(self)
    }
}
