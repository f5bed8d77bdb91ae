//! Nonlinear hypernetwork student `hnet_deepmlp` (spec §4.1, §4.3).
//!
//! As [`super::HnetLinear`], but each bank is a "DeepBank" applied row-wise to the normalised
//! embeddings, and there is no fast_bias:
//!
//! ```text
//! ê_s   = e_s · stop_gradient(√T / ‖e_s‖₂)
//! h     = LN0(ê_s)                                   LN over T
//! h     = ELU(LN_{i+1}(h @ W_i + b_i))   i = 0..L    haiku Linear, LN over body_dim
//! gen_s = h @ head_s                                  no bias
//! logits = target(gen, x)
//! ```

use crate::gpu::error::Result;
use crate::gpu::{Device, Tensor};
use crate::nn::{DeepBank, DeepBankCache, DeepBankTangent, Param};
use crate::ops::Real;

use super::gpu::{
    hypernetwork_program, meta_param, param_range, BankIo, BankProgram, GpuStudent, StudentBuffers,
    StudentProgram, TangentBuffers,
};

use super::{
    embedding_norm_backward, embedding_norm_forward, Grads, HnetSlot, Hypernetwork, Init,
    ParamLayout, ParamSpec, Student, TargetNet, View,
};

/// Config of the nonlinear hypernetwork student.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HnetDeep {
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
    /// Width of the DeepBank body (32).
    pub body_dim: usize,
    /// Linear layers in the DeepBank body before the head (4).
    pub body_layers: usize,
}

impl HnetDeep {
    /// The paper's hyperteacher student with `num_templates` = T modules.
    pub fn paper(num_templates: usize) -> Self {
        HnetDeep {
            input_dim: 16,
            hidden_dim: 128,
            output_dim: 8,
            num_hidden: 3,
            num_templates,
            body_dim: 32,
            body_layers: 4,
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

    fn fan_in(&self, i: usize) -> usize {
        if i == 0 {
            self.num_templates
        } else {
            self.body_dim
        }
    }

    /// The DeepBank of slot `s`.
    fn bank(&self, s: &HnetSlot) -> DeepBank {
        DeepBank {
            templates: self.num_templates,
            body_dim: self.body_dim,
            body_layers: self.body_layers,
            chunk: s.chunk,
        }
    }
}

/// The layout name of a bank-relative parameter of slot `slot` (`head` → `head_{slot}`, the
/// body's `x` → `body_{slot}.x`).
fn bank_param_name(slot: &str, rel: &str) -> String {
    if rel == "head" {
        format!("head_{slot}")
    } else {
        format!("body_{slot}.{rel}")
    }
}

impl Hypernetwork for HnetDeep {
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

        let mut ehat = Vec::new();
        let mut caches: Vec<DeepBankCache<T>> = Vec::new();
        let mut row = 0;
        for s in &slots {
            let sc = &scales[row..row + s.rows];
            row += s.rows;
            let e = embedding_norm_forward(tv.get(&format!("emb_{}", s.name)), sc, t);
            let p = |rel: &str| mv.get(&bank_param_name(s.name, rel));
            caches.push(self.bank(s).forward_cpu(&p, &e));
            ehat.push(e);
        }
        let gen: Vec<Vec<T>> = caches.iter().map(|c| c.gen.clone()).collect();
        let cache = target.forward(&gen, x);
        let logits = cache.acts.last().expect("output layer").clone();
        let Some(dlogits) = dlogits else {
            return (logits, None);
        };
        assert_eq!(dlogits.len(), logits.len(), "dlogits has the wrong length");

        let mut dmeta = Grads::new(&layout.meta);
        let mut dtask = Grads::new(&layout.task);
        let dgen = target.backward(&gen, &cache, dlogits);
        let mut row = 0;
        for (i, s) in slots.iter().enumerate() {
            let sc = &scales[row..row + s.rows];
            row += s.rows;
            let p = |rel: &str| mv.get(&bank_param_name(s.name, rel));
            let mut add = |rel: &str, g: &[T]| dmeta.add(&bank_param_name(s.name, rel), g);
            let dehat = self
                .bank(s)
                .backward_cpu(&p, &mut add, &ehat[i], &caches[i], &dgen[i]);
            dtask.add(
                &format!("emb_{}", s.name),
                &embedding_norm_backward(&dehat, sc, t),
            );
        }
        (logits, Some((dmeta.buf, dtask.buf)))
    }
}

impl Student for HnetDeep {
    /// META, per slot (input, hidden, output): `body_{slot}.ln0.{scale,offset}` `[T]`, then for
    /// i in 0..body_layers `body_{slot}.lin{i}.{w,b}` (`[fan_in, body_dim]` ~ TN(1/√fan_in), 0)
    /// and `body_{slot}.ln{i+1}.{scale,offset}` `[body_dim]` (1, 0), then `head_{slot}`
    /// `[body_dim, chunk]` ~ TN(1/√body_dim); then `emb_{slot}_init` `[rows, T]` ~
    /// U(±√(3/rows)). TASK: `emb_{slot}` `[rows, T]`.
    fn param_layout(&self) -> ParamLayout {
        let (t, bd) = (self.num_templates, self.body_dim);
        let slots = self.target().slots();
        let mut meta = Vec::new();
        let tn = |fan: usize| Init::TruncatedNormal {
            std: 1.0 / (fan as f64).sqrt(),
        };
        for s in &slots {
            let n = |x: &str| format!("body_{}.{x}", s.name);
            meta.push(ParamSpec::new(n("ln0.scale"), &[t], Init::Ones));
            meta.push(ParamSpec::new(n("ln0.offset"), &[t], Init::Zeros));
            for i in 0..self.body_layers {
                let fi = self.fan_in(i);
                meta.push(ParamSpec::new(n(&format!("lin{i}.w")), &[fi, bd], tn(fi)));
                meta.push(ParamSpec::new(n(&format!("lin{i}.b")), &[bd], Init::Zeros));
                meta.push(ParamSpec::new(
                    n(&format!("ln{}.scale", i + 1)),
                    &[bd],
                    Init::Ones,
                ));
                meta.push(ParamSpec::new(
                    n(&format!("ln{}.offset", i + 1)),
                    &[bd],
                    Init::Zeros,
                ));
            }
            meta.push(ParamSpec::new(
                format!("head_{}", s.name),
                &[bd, s.chunk],
                tn(bd),
            ));
        }
        let mut task = Vec::new();
        super::embedding_specs(&slots, t, &mut meta, &mut task);
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

impl GpuStudent for HnetDeep {
    /// Per slot: ê of every task's rows (slot-major, as for [`super::HnetLinear`]), then the
    /// DeepBank body over all `tasks·rows` rows at once (LN0, then `body_layers` × GEMM with
    /// bias epilogue, LN, ELU), and ONE head GEMM generating the slot's parameters of all tasks;
    /// the target net runs batched over tasks. The backward mirrors it: head and body gradients
    /// summed over all rows (K = tasks·rows GEMMs and per-column LN sums) into `dmeta`, ELU
    /// derivatives from the stored outputs, `de = dê · s` into `dtask`; `*_init` entries zero.
    /// An LN offset's gradient is the column sums of the LN's upstream gradient, computed by
    /// `col_sums`: the LN backward cannot write dγ and dβ into the same (`dmeta`) buffer.
    ///
    /// With `tangent`, the tangent passes of forward-over-reverse: `ė̂ = ė·s`, the bank's
    /// tangents ([`DeepBank::program`] with a [`DeepBankTangent`]: LN tangents, ELU's curvature,
    /// the dense layers' tangents) and the target net's; every bank parameter's mixed term
    /// `H_φθ·θ̇` (summed over rows) lands in its entries of `dmeta_dot`.
    fn build_program(
        &self,
        gpu: &Device,
        b: &StudentBuffers<'_>,
        tangent: Option<&TangentBuffers<'_>>,
    ) -> Result<StudentProgram> {
        const OP: &str = "hnet_deep";
        let layout = self.param_layout();
        let bank = |sl: &HnetSlot, io: &BankIo| {
            let param = |rel: &str, rows: usize, cols: usize| -> Result<Param> {
                meta_param(OP, &layout, b, &bank_param_name(sl.name, rel), rows, cols)
            };
            let grad_dot = |rel: &str, rows: usize, cols: usize| -> Result<Tensor> {
                let dm = &io.tangent.as_ref().expect("a tangent program").dmeta_dot;
                let name = bank_param_name(sl.name, rel);
                let at = param_range(OP, layout.meta_range(&name), &name)?.start;
                dm.view(dm.offset() + at, 1, rows, cols, 0)
            };
            let bank_t = io.tangent.as_ref().map(|t| DeepBankTangent {
                ehat_dot: &t.ehat_dot,
                dehat_dot: &t.dehat_dot,
                gen_dot: &t.gen_dot,
                dgen_dot: &t.dgen_dot,
                grad_dot: &grad_dot,
            });
            let p = self.bank(sl).program(
                gpu,
                &param,
                &io.ehat,
                &io.dehat,
                &io.gen,
                &io.dgen,
                bank_t.as_ref(),
            )?;
            Ok(BankProgram {
                forward: p.forward,
                backward: p.backward,
                tangent_forward: p.tangent_forward,
                tangent_backward: p.tangent_backward,
            })
        };
        hypernetwork_program(OP, gpu, self, b, tangent, bank)
    }
}
