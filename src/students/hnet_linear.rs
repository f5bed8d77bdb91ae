//! Linear hypernetwork student `hnet_linear` (spec §4.1, §4.2).
//!
//! Three hypernetworks (input, hidden shared by the hidden→hidden layers, output), each a
//! bias-free bank `B_s ∈ R^{T × chunk_s}`. Task parameters are the embedding rows `e_s`
//! (`rows_s × T`) and an output `fast_bias`. Per slot:
//!
//! ```text
//! ê_s   = e_s · stop_gradient(√T / ‖e_s‖₂)     (row-wise)
//! gen_s = ê_s @ B_s                             (rows_s × chunk_s)
//! logits = target(gen, x) + fast_bias
//! ```

use crate::gpu::error::Result;
use crate::gpu::{Device, Tensor};
use crate::nn::{col_sums_cpu as col_sums, Dense, DenseBackward, DenseTangentIo, ParamTangent};
use crate::ops::elementwise::bias_add;
use crate::ops::reduce;
use crate::ops::Real;

use super::gpu::{
    hypernetwork_program, meta_param, param_range, BankIo, BankProgram, GpuStudent, StudentBuffers,
    StudentProgram, TangentBuffers,
};

use super::{
    embedding_norm_backward, embedding_norm_forward, linear_backward, linear_forward, Grads,
    HnetSlot, Hypernetwork, Init, ParamLayout, ParamSpec, Student, TargetNet, View,
};

/// Config of the linear hypernetwork student.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HnetLinear {
    /// Input features (16).
    pub input_dim: usize,
    /// Target-network width (128).
    pub hidden_dim: usize,
    /// Logits (8).
    pub output_dim: usize,
    /// Target-network hidden layers (3).
    pub num_hidden: usize,
    /// Modules T = ratio · M (4·M in the paper).
    pub num_templates: usize,
}

impl HnetLinear {
    /// The paper's hyperteacher student with `num_templates` = T modules.
    pub fn paper(num_templates: usize) -> Self {
        HnetLinear {
            input_dim: 16,
            hidden_dim: 128,
            output_dim: 8,
            num_hidden: 3,
            num_templates,
        }
    }

    /// The generated target network.
    pub fn target(&self) -> TargetNet {
        TargetNet {
            input_dim: self.input_dim,
            hidden_dim: self.hidden_dim,
            output_dim: self.output_dim,
            num_hidden: self.num_hidden,
        }
    }
}

impl Hypernetwork for HnetLinear {
    fn target_net(&self) -> TargetNet {
        self.target()
    }
    fn templates(&self) -> usize {
        self.num_templates
    }
    #[allow(clippy::type_complexity)]
    fn scaled_pass<T: Real>(
        &self,
        meta: &[T],
        task: &[T],
        x: &[T],
        scales: &[T],
        dlogits: Option<&[T]>,
    ) -> (Vec<T>, Option<(Vec<T>, Vec<T>)>) {
        let t = self.num_templates;
        let layout = self.param_layout();
        let (mv, tv) = (
            View::new("meta", &layout.meta, meta),
            View::new("task", &layout.task, task),
        );
        let target = self.target();
        let slots = target.slots();
        assert_eq!(scales.len(), target.embedding_rows(), "one scale per row");

        // Embedding normalisation, then the bank of each slot.
        let mut ehat = Vec::new();
        let mut gen = Vec::new();
        let mut row = 0;
        for s in &slots {
            let sc = &scales[row..row + s.rows];
            row += s.rows;
            let e = embedding_norm_forward(tv.get(&format!("emb_{}", s.name)), sc, t);
            let bank = mv.get(&format!("bank_{}", s.name));
            gen.push(linear_forward(&e, bank, None, t, s.chunk, T::one()));
            ehat.push(e);
        }
        // Target network plus fast_bias.
        let cache = target.forward(&gen, x);
        let mut logits = cache.acts.last().expect("output layer").clone();
        let fast_bias = tv.get("fast_bias");
        for r in logits.chunks_mut(self.output_dim) {
            for (v, &b) in r.iter_mut().zip(fast_bias) {
                *v += b;
            }
        }
        let Some(dlogits) = dlogits else {
            return (logits, None);
        };
        assert_eq!(dlogits.len(), logits.len(), "dlogits has the wrong length");

        let mut dmeta = Grads::new(&layout.meta);
        let mut dtask = Grads::new(&layout.task);
        dtask.add("fast_bias", &col_sums(dlogits, self.output_dim));
        let dgen = target.backward(&gen, &cache, dlogits);
        let mut row = 0;
        for (i, s) in slots.iter().enumerate() {
            let sc = &scales[row..row + s.rows];
            row += s.rows;
            let bank = mv.get(&format!("bank_{}", s.name));
            let g = linear_backward(&ehat[i], bank, &dgen[i], t, s.chunk, T::one(), true);
            dmeta.add(&format!("bank_{}", s.name), &g.dw);
            dtask.add(
                &format!("emb_{}", s.name),
                &embedding_norm_backward(&g.dx, sc, t),
            );
        }
        (logits, Some((dmeta.buf, dtask.buf)))
    }
}

impl Student for HnetLinear {
    /// META: `bank_{input,hidden,output}` `[T, chunk]` ~ TN(1/√T), then the embedding inits
    /// `emb_{slot}_init` `[rows, T]` ~ U(±√(3/rows)). TASK: `emb_{slot}` `[rows, T]`, then
    /// `fast_bias` `[output_dim]` (zero per task, not meta-learned).
    fn param_layout(&self) -> ParamLayout {
        let t = self.num_templates;
        let slots = self.target().slots();
        let mut meta: Vec<ParamSpec> = slots
            .iter()
            .map(|s| {
                ParamSpec::new(
                    format!("bank_{}", s.name),
                    &[t, s.chunk],
                    Init::TruncatedNormal {
                        std: 1.0 / (t as f64).sqrt(),
                    },
                )
            })
            .collect();
        let mut task = Vec::new();
        super::embedding_specs(&slots, t, &mut meta, &mut task);
        task.push(ParamSpec::new("fast_bias", &[self.output_dim], Init::Zeros));
        ParamLayout { meta, task }
    }

    fn input_dim(&self) -> usize {
        self.input_dim
    }

    fn output_dim(&self) -> usize {
        self.output_dim
    }

    fn forward<T: Real>(&self, meta: &[T], task: &[T], x: &[T]) -> Vec<T> {
        self.forward_with_scales(meta, task, x, &self.embedding_scales(task))
    }

    fn backward<T: Real>(
        &self,
        meta: &[T],
        task: &[T],
        x: &[T],
        dlogits: &[T],
    ) -> (Vec<T>, Vec<T>) {
        self.backward_with_scales(meta, task, x, &self.embedding_scales(task), dlogits)
    }
}

impl GpuStudent for HnetLinear {
    /// Forward: per slot, the embedding rows of every task are normalised (`ê`, keeping the
    /// scales) into a slot-major scratch, then ONE GEMM `[tasks·rows × T] @ B_s` generates that
    /// slot's parameters for all tasks (`GenLayout`); the target net runs batched over tasks
    /// and `fast_bias` is added to the logits.
    ///
    /// Backward: the target backward writes the generated-parameter gradients `dgen`; per slot
    /// ONE GEMM `ê_sᵀ @ dgen_s` with K = tasks·rows sums the bank gradient over tasks straight
    /// into `dmeta`, `dê = dgen_s @ B_sᵀ`, and `de = dê · s` (stop-gradient scale) lands in
    /// `dtask`; `fast_bias`'s gradient is the column sums of `dlogits`; the `*_init` entries of
    /// `dmeta` are zero-filled.
    ///
    /// The program plus its tangent passes: per slot `ė̂ = ė·s`, `ġen = ė̂ @ B_s`, the target
    /// net's tangents ([`crate::nn::Mlp::program_with_tangent`]) and `ż += ḟast_bias`; backward
    /// `d(dê) = d(dgen) @ B_sᵀ`, `H_φθ·θ̇ = ė̂ᵀ@dgen + êᵀ@d(dgen)` summed over tasks into the
    /// bank's entries of `dmeta_dot`, `d(de) = d(dê)·s` and `d(dfast_bias) = Σ_rows d(dlogits)`.
    fn build_program(
        &self,
        gpu: &Device,
        b: &StudentBuffers<'_>,
        tangent: Option<&TangentBuffers<'_>>,
    ) -> Result<StudentProgram> {
        const OP: &str = "hnet_linear";
        let t = self.num_templates;
        let layout = self.param_layout();
        // The bank of a slot: one bias-free dense layer over its rows of every task.
        let bank = |sl: &HnetSlot, io: &BankIo| {
            let layer = Dense::new(t, sl.chunk);
            let name = format!("bank_{}", sl.name);
            let w = meta_param(OP, &layout, b, &name, t, sl.chunk)?;
            let back = DenseBackward {
                x: &io.ehat,
                y: &io.gen,
                dy: &io.dgen,
                dz: &io.dgen,
                dx: Some(&io.dehat),
            };
            let mut p = BankProgram {
                forward: vec![layer.forward(gpu, &io.ehat, &w, None, &io.gen)?],
                backward: layer.backward(gpu, &w, None, &back)?,
                ..BankProgram::default()
            };
            if let Some(bt) = &io.tangent {
                let at = param_range(OP, layout.meta_range(&name), &name)?.start;
                let dm = &bt.dmeta_dot;
                let w_t = ParamTangent {
                    dot: None,
                    grad_dot: Some(dm.view(dm.offset() + at, 1, t, sl.chunk, 0)?),
                };
                let tio = DenseTangentIo {
                    x: &io.ehat,
                    x_dot: Some(&bt.ehat_dot),
                    y: &io.gen,
                    z_dot: &bt.gen_dot,
                    y_dot: &bt.gen_dot,
                    dz: &io.dgen,
                    dy_dot: &bt.dgen_dot,
                    dz_dot: &bt.dgen_dot,
                    dx_dot: Some(&bt.dehat_dot),
                };
                p.tangent_forward = layer.tangent_forward(gpu, &w, &w_t, None, &tio)?;
                p.tangent_backward = layer.tangent_backward(gpu, &w, &w_t, None, &tio)?;
            }
            Ok(p)
        };
        let mut prog = hypernetwork_program(OP, gpu, self, b, tangent, bank)?;
        let fb = param_range(OP, layout.task_range("fast_bias"), "fast_bias")?.start;
        let fb_view = |buf: &Tensor| {
            buf.view(
                buf.offset() + fb,
                b.task.batch(),
                1,
                self.output_dim,
                buf.batch_stride(),
            )
        };
        prog.forward
            .push(bias_add(gpu, b.logits, &fb_view(b.task)?)?);
        prog.backward.insert(
            0,
            reduce::col_sums(gpu, b.dlogits, &fb_view(b.dtask)?, 1.0, 0.0)?,
        );
        if let Some(tb) = tangent {
            prog.tangent_forward
                .push(bias_add(gpu, tb.logits_dot, &fb_view(tb.task_dot)?)?);
            prog.tangent_backward.insert(
                0,
                reduce::col_sums(gpu, tb.dlogits_dot, &fb_view(tb.dtask_dot)?, 1.0, 0.0)?,
            );
        }
        Ok(prog)
    }
}
