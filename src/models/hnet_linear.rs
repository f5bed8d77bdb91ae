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

use crate::ops::Real;

use super::{
    col_sums, embedding_norm_backward, embedding_norm_forward, embedding_scales, linear_backward,
    linear_forward, Grads, Init, ParamLayout, ParamSpec, Student, TargetNet, View,
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

    /// The normalisation scales √T/‖e_r‖ of every embedding row, in task-layout order (input
    /// row, hidden rows, output row).
    pub fn embedding_scales<T: Real>(&self, task: &[T]) -> Vec<T> {
        let layout = self.param_layout();
        let tv = View::new("task", &layout.task, task);
        self.target()
            .slots()
            .iter()
            .flat_map(|s| embedding_scales(tv.get(&format!("emb_{}", s.name)), self.num_templates))
            .collect()
    }

    /// Forward with given normalisation scales (one per embedding row, as from
    /// [`Self::embedding_scales`]); [`Student::forward`] uses the scales of `task` itself.
    /// Freezing them gives the function whose gradient [`Student::backward`] returns.
    pub fn forward_with_scales<T: Real>(
        &self,
        meta: &[T],
        task: &[T],
        x: &[T],
        scales: &[T],
    ) -> Vec<T> {
        self.pass(meta, task, x, scales, None).0
    }

    /// Backward with given normalisation scales (see [`Self::forward_with_scales`]).
    pub fn backward_with_scales<T: Real>(
        &self,
        meta: &[T],
        task: &[T],
        x: &[T],
        scales: &[T],
        dlogits: &[T],
    ) -> (Vec<T>, Vec<T>) {
        let (_, g) = self.pass(meta, task, x, scales, Some(dlogits));
        g.expect("gradients requested")
    }

    /// Forward, and backward when `dlogits` is given.
    #[allow(clippy::type_complexity)]
    fn pass<T: Real>(
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
        for s in &slots {
            let init = format!("emb_{}_init", s.name);
            meta.push(ParamSpec::new(
                &init,
                &[s.rows, t],
                Init::Uniform {
                    limit: (3.0 / s.rows as f64).sqrt(),
                },
            ));
            task.push(ParamSpec::new(
                format!("emb_{}", s.name),
                &[s.rows, t],
                Init::Meta(init),
            ));
        }
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
