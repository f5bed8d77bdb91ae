//! MAML student `learned_init384` (spec §4.5): an MLP whose parameters are ALL adapted in the
//! inner loop, starting from a meta-learned initialisation.
//!
//! ```text
//! logits = MLP(x)     input → hidden × num_hidden → output, ReLU after every layer but the last
//! ```
//!
//! Layers are haiku `Linear` (no 1/√fan_in forward scaling), init TN(1/√fan_in), zero bias. The
//! forward pass reads only the task parameters; the meta parameters are their initial values, so
//! `dmeta` from [`Student::backward`] is all zeros.

use crate::gpu::error::Result;
use crate::gpu::Device;
use crate::ops::Real;

use crate::nn::Mlp;
use crate::ops::Activation;

use super::gpu::{check_buffers, GpuStudent, StudentBuffers, StudentProgram, TangentBuffers};
use super::mlp_gpu::{mlp_program, Group, NamedLayer};

use super::{mlp_backward, mlp_forward, Grads, Init, ParamLayout, ParamSpec, Student, View};

/// Config of the MAML student.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Maml {
    /// Input features (16).
    pub input_dim: usize,
    /// Width (384).
    pub hidden_dim: usize,
    /// Logits (8).
    pub output_dim: usize,
    /// Hidden layers (3).
    pub num_hidden: usize,
}

impl Maml {
    /// The paper's `learned_init384` ("MAML-384").
    pub fn paper() -> Self {
        Maml {
            input_dim: 16,
            hidden_dim: 384,
            output_dim: 8,
            num_hidden: 3,
        }
    }

    /// Layer widths, input first.
    pub fn dims(&self) -> Vec<usize> {
        let mut d = vec![self.input_dim];
        d.extend(std::iter::repeat_n(self.hidden_dim, self.num_hidden));
        d.push(self.output_dim);
        d
    }
}

impl Student for Maml {
    /// META: `init.l{i}.{w,b}` (`[in, out]` ~ TN(1/√in), 0). TASK: `l{i}.{w,b}` (from
    /// `init.l{i}.*`), same shapes and order.
    fn param_layout(&self) -> ParamLayout {
        let dims = self.dims();
        let mut meta = Vec::new();
        let mut task = Vec::new();
        for l in 0..dims.len() - 1 {
            let (fi, fo) = (dims[l], dims[l + 1]);
            let (w, b) = (format!("l{l}.w"), format!("l{l}.b"));
            meta.push(ParamSpec::new(
                format!("init.{w}"),
                &[fi, fo],
                Init::TruncatedNormal {
                    std: 1.0 / (fi as f64).sqrt(),
                },
            ));
            meta.push(ParamSpec::new(format!("init.{b}"), &[fo], Init::Zeros));
            task.push(ParamSpec::new(
                &w,
                &[fi, fo],
                Init::Meta(format!("init.{w}")),
            ));
            task.push(ParamSpec::new(&b, &[fo], Init::Meta(format!("init.{b}"))));
        }
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
        View::new("meta", &layout.meta, meta);
        let tv = View::new("task", &layout.task, task);
        let params = layer_params(&tv, self.num_hidden + 1);
        let mut c = mlp_forward(&self.dims(), &params, x, false, false);
        c.acts.pop().expect("output layer")
    }

    fn backward<T: Real>(
        &self,
        meta: &[T],
        task: &[T],
        x: &[T],
        dlogits: &[T],
    ) -> (Vec<T>, Vec<T>) {
        let layout = self.param_layout();
        View::new("meta", &layout.meta, meta);
        let tv = View::new("task", &layout.task, task);
        let dims = self.dims();
        let params = layer_params(&tv, self.num_hidden + 1);
        let c = mlp_forward(&dims, &params, x, false, false);
        let (grads, _) = mlp_backward(&dims, &params, &c, dlogits, false, false, false);
        let mut dtask = Grads::new(&layout.task);
        for (l, (dw, db)) in grads.iter().enumerate() {
            dtask.add(&format!("l{l}.w"), dw);
            dtask.add(&format!("l{l}.b"), db);
        }
        (Grads::new(&layout.meta).buf, dtask.buf)
    }
}

fn layer_params<'a, T>(tv: &View<'a, T>, layers: usize) -> Vec<(&'a [T], &'a [T])> {
    (0..layers)
        .map(|l| (tv.get(&format!("l{l}.w")), tv.get(&format!("l{l}.b"))))
        .collect()
}

impl GpuStudent for Maml {
    /// Every layer reads the task tensors and writes its gradient per task; `dmeta` (the `init.*`
    /// copies, never read by the forward) is zeroed.
    ///
    /// With a tangent, also its tangent passes ([`crate::nn::Mlp::program_with_tangent`]).
    fn build_program(
        &self,
        gpu: &Device,
        buffers: &StudentBuffers<'_>,
        tangent: Option<&TangentBuffers<'_>>,
    ) -> Result<StudentProgram> {
        let layout = self.param_layout();
        check_buffers("maml", self, buffers)?;
        let dims = self.dims();
        let mlp = Mlp::new(&dims, Activation::Relu, Activation::Identity);
        let names: Vec<NamedLayer> = (0..dims.len() - 1)
            .map(|l| NamedLayer {
                group: Group::Task,
                w: format!("l{l}.w"),
                b: format!("l{l}.b"),
            })
            .collect();
        // All of meta is `init.*`: one fill.
        let all_meta = 0..layout.meta_len();
        mlp_program(
            gpu,
            &layout,
            &mlp,
            &names,
            std::slice::from_ref(&all_meta),
            buffers,
            tangent,
            None,
        )
    }
}
