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

use crate::ops::{Activation, Real};

use super::{
    activation_backward, activation_forward, embedding_norm_backward, embedding_norm_forward,
    embedding_scales, layernorm_backward, layernorm_forward, linear_backward, linear_forward,
    Grads, HnetSlot, Init, LnCache, ParamLayout, ParamSpec, Student, TargetNet, View,
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

/// Activations of one DeepBank body forward.
struct BodyCache<T> {
    ln0: LnCache<T>,
    /// `h[0]` = LN0(ê), `h[i + 1]` = ELU output of layer i.
    h: Vec<Vec<T>>,
    /// Pre-LN outputs of the linear layers.
    z: Vec<Vec<T>>,
    ln: Vec<LnCache<T>>,
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

    /// The normalisation scales √T/‖e_r‖ of every embedding row, in task-layout order.
    pub fn embedding_scales<T: Real>(&self, task: &[T]) -> Vec<T> {
        let layout = self.param_layout();
        let tv = View::new("task", &layout.task, task);
        self.target()
            .slots()
            .iter()
            .flat_map(|s| embedding_scales(tv.get(&format!("emb_{}", s.name)), self.num_templates))
            .collect()
    }

    /// Forward with given (frozen) normalisation scales, one per embedding row.
    pub fn forward_with_scales<T: Real>(
        &self,
        meta: &[T],
        task: &[T],
        x: &[T],
        scales: &[T],
    ) -> Vec<T> {
        self.pass(meta, task, x, scales, None).0
    }

    /// Backward with given normalisation scales.
    pub fn backward_with_scales<T: Real>(
        &self,
        meta: &[T],
        task: &[T],
        x: &[T],
        scales: &[T],
        dlogits: &[T],
    ) -> (Vec<T>, Vec<T>) {
        self.pass(meta, task, x, scales, Some(dlogits))
            .1
            .expect("gradients requested")
    }

    /// DeepBank body forward on `e` (`rows × T`).
    fn body_forward<T: Real>(&self, mv: &View<'_, T>, s: &HnetSlot, e: &[T]) -> BodyCache<T> {
        let p = |n: &str| mv.get(&format!("body_{}.{n}", s.name));
        let (h0, ln0) = layernorm_forward(e, p("ln0.scale"), p("ln0.offset"), self.num_templates);
        let mut c = BodyCache {
            ln0,
            h: vec![h0],
            z: Vec::new(),
            ln: Vec::new(),
        };
        for i in 0..self.body_layers {
            let z = linear_forward(
                &c.h[i],
                p(&format!("lin{i}.w")),
                Some(p(&format!("lin{i}.b"))),
                self.fan_in(i),
                self.body_dim,
                T::one(),
            );
            let (u, ln) = layernorm_forward(
                &z,
                p(&format!("ln{}.scale", i + 1)),
                p(&format!("ln{}.offset", i + 1)),
                self.body_dim,
            );
            c.h.push(activation_forward(&u, Activation::Elu));
            c.z.push(z);
            c.ln.push(ln);
        }
        c
    }

    /// DeepBank body backward from dL/d(body output); accumulates into `dmeta`, returns dL/dê.
    fn body_backward<T: Real>(
        &self,
        mv: &View<'_, T>,
        s: &HnetSlot,
        e: &[T],
        c: &BodyCache<T>,
        dout: &[T],
        dmeta: &mut Grads<'_, T>,
    ) -> Vec<T> {
        let name = |n: &str| format!("body_{}.{n}", s.name);
        let p = |n: &str| mv.get(&name(n));
        let mut dh = dout.to_vec();
        for i in (0..self.body_layers).rev() {
            let du = activation_backward(&dh, &c.h[i + 1], Activation::Elu);
            let sc = format!("ln{}.scale", i + 1);
            let (dz, dscale, doffset) =
                layernorm_backward(&du, &c.z[i], p(&sc), &c.ln[i], self.body_dim);
            dmeta.add(&name(&sc), &dscale);
            dmeta.add(&name(&format!("ln{}.offset", i + 1)), &doffset);
            let w = format!("lin{i}.w");
            let g = linear_backward(
                &c.h[i],
                p(&w),
                &dz,
                self.fan_in(i),
                self.body_dim,
                T::one(),
                true,
            );
            dmeta.add(&name(&w), &g.dw);
            dmeta.add(&name(&format!("lin{i}.b")), &g.db);
            dh = g.dx;
        }
        let (de, dscale, doffset) =
            layernorm_backward(&dh, e, p("ln0.scale"), &c.ln0, self.num_templates);
        dmeta.add(&name("ln0.scale"), &dscale);
        dmeta.add(&name("ln0.offset"), &doffset);
        de
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

        let mut ehat = Vec::new();
        let mut bodies = Vec::new();
        let mut gen = Vec::new();
        let mut row = 0;
        for s in &slots {
            let sc = &scales[row..row + s.rows];
            row += s.rows;
            let e = embedding_norm_forward(tv.get(&format!("emb_{}", s.name)), sc, t);
            let body = self.body_forward(&mv, s, &e);
            let head = mv.get(&format!("head_{}", s.name));
            let feat = body.h.last().expect("body output");
            gen.push(linear_forward(
                feat,
                head,
                None,
                self.body_dim,
                s.chunk,
                T::one(),
            ));
            ehat.push(e);
            bodies.push(body);
        }
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
            let head = format!("head_{}", s.name);
            let feat = bodies[i].h.last().expect("body output");
            let g = linear_backward(
                feat,
                mv.get(&head),
                &dgen[i],
                self.body_dim,
                s.chunk,
                T::one(),
                true,
            );
            dmeta.add(&head, &g.dw);
            let dehat = self.body_backward(&mv, s, &ehat[i], &bodies[i], &g.dx, &mut dmeta);
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
