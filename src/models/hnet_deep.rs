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

use crate::error::Result;
use crate::gpu::{Gpu, GpuTensor};
use crate::ops::elementwise;
use crate::ops::gemm::{gemm, GemmOptions};
use crate::ops::layernorm;
use crate::ops::reduce;
use crate::ops::{Activation, Real};

use super::gpu::{
    check_buffers, param_range, target_program, zero_inits, Embeddings, GenLayout, GpuStudent,
    StudentBuffers, StudentProgram,
};
use super::LN_EPS;

use super::{
    activation_backward, activation_forward, embedding_norm_backward, embedding_norm_forward,
    layernorm_backward, layernorm_forward, linear_backward, linear_forward, Grads, HnetSlot,
    Hypernetwork, Init, LnCache, ParamLayout, ParamSpec, Student, TargetNet, View,
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

/// GPU scratch of one slot's DeepBank body: `m = tasks·rows` rows run through the shared body
/// as ONE batch-1 matrix (the body's parameters are shared by every row of every task, so its
/// meta-gradients are the plain sums over these rows, written straight into `dmeta`).
struct BodyScratch {
    /// `h[0]` = LN0(ê) `[1 × m × T]`, `h[i + 1]` = ELU output of layer i `[1 × m × body]`.
    h: Vec<GpuTensor>,
    /// Pre-LN outputs of the linear layers (the LN backward's input).
    z: Vec<GpuTensor>,
    /// `(mean, rstd)` of LN0, LN1, … (`[1 × m × 1]`).
    stats: Vec<(GpuTensor, GpuTensor)>,
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
    fn program(&self, gpu: &Gpu, b: &StudentBuffers<'_>) -> Result<StudentProgram> {
        const OP: &str = "hnet_deep";
        let (tasks, _) = check_buffers(OP, self, b)?;
        let (t, bd) = (self.num_templates, self.body_dim);
        let eps = LN_EPS as f32;
        let layout = self.param_layout();
        let lay = GenLayout::new(self.target(), tasks);
        let emb = Embeddings::new(gpu, &lay, t)?;
        let gen = gpu.zeros(1, 1, lay.len)?;
        let dgen = gpu.zeros(1, 1, lay.len)?;
        // `(view of meta, view of dmeta)` of a named meta tensor as `[1 × rows × cols]`.
        let param =
            |name: &str, rows: usize, cols: usize| -> Result<(GpuTensor, Option<GpuTensor>)> {
                let at = param_range(OP, layout.meta_range(name), name)?.start;
                let v = |buf: &GpuTensor| buf.view(buf.offset() + at, 1, rows, cols, 0);
                Ok((v(b.meta)?, b.dmeta.map(v).transpose()?))
            };
        let plain = GemmOptions::default();
        let ta = GemmOptions {
            trans_a: true,
            ..plain
        };
        let tb = GemmOptions {
            trans_b: true,
            ..plain
        };

        let mut prog = StudentProgram::default();
        let mut back_banks = Vec::new();
        for (s, sl) in lay.slots().iter().enumerate() {
            let m = tasks * sl.rows;
            let e_name = format!("emb_{}", sl.name);
            let e0 = param_range(OP, layout.task_range(&e_name), &e_name)?.start;
            let p = |n: &str, rows: usize, cols: usize| {
                param(&format!("body_{}.{n}", sl.name), rows, cols)
            };
            let stats = || -> Result<(GpuTensor, GpuTensor)> {
                Ok((gpu.zeros(1, m, 1)?, gpu.zeros(1, m, 1)?))
            };
            let ehat = emb.flat(&emb.ehat, s)?;
            let mut c = BodyScratch {
                h: vec![gpu.zeros(1, m, t)?],
                z: Vec::new(),
                stats: vec![stats()?],
            };
            prog.forward.push(emb.normalize(gpu, b.task, s, e0)?);
            let (g0, _) = p("ln0.scale", 1, t)?;
            let (o0, _) = p("ln0.offset", 1, t)?;
            let (mean, rstd) = &c.stats[0];
            prog.forward.push(layernorm::layernorm_forward(
                gpu,
                &ehat,
                Some(&g0),
                Some(&o0),
                &c.h[0],
                mean,
                rstd,
                eps,
            )?);
            for i in 0..self.body_layers {
                let (w, _) = p(&format!("lin{i}.w"), self.fan_in(i), bd)?;
                let (bias, _) = p(&format!("lin{i}.b"), 1, bd)?;
                let (g, _) = p(&format!("ln{}.scale", i + 1), 1, bd)?;
                let (o, _) = p(&format!("ln{}.offset", i + 1), 1, bd)?;
                let z = gpu.zeros(1, m, bd)?;
                let u = gpu.zeros(1, m, bd)?;
                let h = gpu.zeros(1, m, bd)?;
                let st = stats()?;
                prog.forward
                    .push(gemm(gpu, &c.h[i], &w, Some(&bias), &z, &plain)?);
                prog.forward.push(layernorm::layernorm_forward(
                    gpu,
                    &z,
                    Some(&g),
                    Some(&o),
                    &u,
                    &st.0,
                    &st.1,
                    eps,
                )?);
                prog.forward.push(elementwise::activation_forward(
                    gpu,
                    &u,
                    &h,
                    Activation::Elu,
                )?);
                c.z.push(z);
                c.h.push(h);
                c.stats.push(st);
            }
            let (head, dhead) = param(&format!("head_{}", sl.name), bd, sl.chunk)?;
            let feat = &c.h[self.body_layers];
            let (gen_s, dgen_s) = (lay.slot(&gen, s)?, lay.slot(&dgen, s)?);
            prog.forward
                .push(gemm(gpu, feat, &head, None, &gen_s, &plain)?);

            // Backward of this slot's bank.
            if let Some(dhead) = &dhead {
                back_banks.push(gemm(gpu, feat, &dgen_s, None, dhead, &ta)?);
            }
            let (du, dz) = (gpu.zeros(1, m, bd)?, gpu.zeros(1, m, bd)?);
            let mut dh = gpu.zeros(1, m, bd)?;
            back_banks.push(gemm(gpu, &dgen_s, &head, None, &dh, &tb)?);
            for i in (0..self.body_layers).rev() {
                back_banks.push(elementwise::activation_backward(
                    gpu,
                    &dh,
                    &c.h[i + 1],
                    &du,
                    Activation::Elu,
                )?);
                let (g, dg) = p(&format!("ln{}.scale", i + 1), 1, bd)?;
                let (_, doff) = p(&format!("ln{}.offset", i + 1), 1, bd)?;
                let (mean, rstd) = &c.stats[i + 1];
                back_banks.extend(layernorm::layernorm_backward(
                    gpu,
                    &du,
                    &c.z[i],
                    Some(&g),
                    mean,
                    rstd,
                    &dz,
                    dg.as_ref(),
                    None,
                )?);
                if let Some(doff) = &doff {
                    back_banks.push(reduce::col_sums(gpu, &du, doff, 1.0, 0.0)?);
                }
                let (w, dw) = p(&format!("lin{i}.w"), self.fan_in(i), bd)?;
                let (_, db) = p(&format!("lin{i}.b"), 1, bd)?;
                if let (Some(dw), Some(db)) = (&dw, &db) {
                    back_banks.push(gemm(gpu, &c.h[i], &dz, None, dw, &ta)?);
                    back_banks.push(reduce::col_sums(gpu, &dz, db, 1.0, 0.0)?);
                }
                // dh of layer i's input: body width, or T for layer 0 (then LN0's output).
                dh = gpu.zeros(1, m, self.fan_in(i))?;
                back_banks.push(gemm(gpu, &dz, &w, None, &dh, &tb)?);
            }
            let (dg0, doff0) = (p("ln0.scale", 1, t)?.1, p("ln0.offset", 1, t)?.1);
            let (mean, rstd) = &c.stats[0];
            back_banks.extend(layernorm::layernorm_backward(
                gpu,
                &dh,
                &ehat,
                Some(&g0),
                mean,
                rstd,
                &emb.flat(&emb.dehat, s)?,
                dg0.as_ref(),
                None,
            )?);
            if let Some(doff0) = &doff0 {
                back_banks.push(reduce::col_sums(gpu, &dh, doff0, 1.0, 0.0)?);
            }
            back_banks.push(emb.backward(gpu, b.dtask, s, e0)?);
        }

        let target = target_program(gpu, &lay, &gen, &dgen, b.x, b.logits, b.dlogits)?;
        prog.forward.extend(target.forward);
        prog.backward.extend(target.backward);
        prog.backward.extend(back_banks);
        if let Some(dm) = b.dmeta {
            let first = param_range(OP, layout.meta_range("emb_input_init"), "emb_input_init")?;
            prog.backward
                .push(zero_inits(gpu, dm, first.start, layout.meta_len())?);
        }
        Ok(prog)
    }
}
