//! The "DeepBank" of the nonlinear hypernetwork student (spec §4.3): an MLP applied row-wise to
//! normalised embeddings, generating `chunk` parameters per row:
//!
//! ```text
//! h   = LN0(ê)                                  LN over T
//! h   = ELU(LN_{i+1}(h @ W_i + b_i))   i < L    haiku Linear, LN over body_dim
//! gen = h @ head                                 no bias
//! ```
//!
//! Its parameters are named relative to the bank (`ln0.scale`, `ln0.offset`, `lin{i}.w`,
//! `lin{i}.b`, `ln{i+1}.scale`, `ln{i+1}.offset`, `head`); the model maps them into its layout.
//! GPU: all rows of every item run as ONE `[1 × m × ·]` matrix (the bank is shared by every row
//! of every task), so its gradients are plain sums over the rows. With a [`DeepBankTangent`]
//! the program also gets the tangent passes of forward-over-reverse (ê moving, the parameters
//! still): LN tangents, ELU's curvature and the dense layers' tangents, each parameter's
//! gradient tangent summed over the rows like its gradient.

use crate::gpu::error::Result;
use crate::gpu::{Device, Dispatch, Tensor};
use crate::ops::elementwise;
use crate::ops::{Activation, Real};

use super::dense::{activation_backward, activation_forward, linear_backward, linear_forward};
use super::dense_tangent::{DenseTangentIo, ParamTangent};
use super::layernorm::{layernorm_backward, layernorm_forward, LnCache, LnStats, LnTangentIo};
use super::{Dense, DenseBackward, LayerNorm, Param};

/// Shape of one DeepBank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeepBank {
    /// Embedding width T.
    pub templates: usize,
    /// Body width.
    pub body_dim: usize,
    /// Linear layers of the body.
    pub body_layers: usize,
    /// Parameters generated per row.
    pub chunk: usize,
}

/// Resolves a bank-relative parameter name to its binding, given its `[rows × cols]` shape.
pub type ParamFn<'a> = dyn Fn(&str, usize, usize) -> Result<Param> + 'a;

/// Resolves a bank-relative parameter name to where the tangent of its gradient goes (bound like
/// the parameter's gradient, overwritten), given its `[rows × cols]` shape.
pub type GradDotFn<'a> = dyn Fn(&str, usize, usize) -> Result<Tensor> + 'a;

/// The tangent passes of [`DeepBank::program`]: ê moves along `ehat_dot` (the bank's parameters
/// hold still, as the reverse sweep's Hessian-vector products need), shapes as their values.
pub struct DeepBankTangent<'a> {
    /// In: ė̂ `[1 × m × T]`.
    pub ehat_dot: &'a Tensor,
    /// Out: the tangent of ∂L/∂ê.
    pub dehat_dot: &'a Tensor,
    /// Out: ġen `[1 × m × chunk]`.
    pub gen_dot: &'a Tensor,
    /// In: the tangent of ∂L/∂gen.
    pub dgen_dot: &'a Tensor,
    /// Where each parameter's gradient tangent goes.
    pub grad_dot: &'a GradDotFn<'a>,
}

/// Prepared launches of one bank.
#[derive(Debug, Default)]
pub struct DeepBankProgram {
    /// ê → gen.
    pub forward: Vec<Dispatch>,
    /// ∂L/∂gen → ∂L/∂ê and the wanted parameter gradients.
    pub backward: Vec<Dispatch>,
    /// ė̂ → ġen (valid after `forward`); empty without a tangent.
    pub tangent_forward: Vec<Dispatch>,
    /// The tangent of ∂L/∂gen → those of ∂L/∂ê and of the parameter gradients (valid after
    /// `backward` and `tangent_forward`); empty without a tangent.
    pub tangent_backward: Vec<Dispatch>,
}

impl DeepBank {
    fn fan_in(&self, i: usize) -> usize {
        if i == 0 {
            self.templates
        } else {
            self.body_dim
        }
    }

    fn linear(&self, i: usize) -> Dense {
        Dense::new(self.fan_in(i), self.body_dim)
    }

    fn head(&self) -> Dense {
        Dense::new(self.body_dim, self.chunk)
    }

    /// Resolves every parameter of the bank once, through `f(name, rows, cols)`.
    fn bind<P>(&self, f: &dyn Fn(&str, usize, usize) -> Result<P>) -> Result<BankParams<P>> {
        let (t, bd) = (self.templates, self.body_dim);
        let body = (0..self.body_layers)
            .map(|i| {
                Ok(BodyParams {
                    w: f(&format!("lin{i}.w"), self.fan_in(i), bd)?,
                    b: f(&format!("lin{i}.b"), 1, bd)?,
                    scale: f(&format!("ln{}.scale", i + 1), 1, bd)?,
                    offset: f(&format!("ln{}.offset", i + 1), 1, bd)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BankParams {
            ln0: (f("ln0.scale", 1, t)?, f("ln0.offset", 1, t)?),
            body,
            head: f("head", bd, self.chunk)?,
        })
    }

    /// The launches over `m` rows: `ehat`/`dehat` `[1 × m × T]`, `gen`/`dgen` `[1 × m × chunk]`;
    /// with `tangent`, also its tangent passes (every activation and gradient is then kept in a
    /// buffer of its own, which the tangent passes read).
    #[allow(clippy::too_many_arguments)]
    pub fn program(
        &self,
        gpu: &Device,
        param: &ParamFn<'_>,
        ehat: &Tensor,
        dehat: &Tensor,
        gen: &Tensor,
        dgen: &Tensor,
        tangent: Option<&DeepBankTangent<'_>>,
    ) -> Result<DeepBankProgram> {
        let p = self.bind(param)?;
        let (forward, kept) = self.forward(gpu, &p, ehat, gen)?;
        let keep = tangent.is_some();
        let (backward, grads) = self.backward(gpu, &p, &kept, (ehat, dehat), (gen, dgen), keep)?;
        let mut prog = DeepBankProgram {
            forward,
            backward,
            ..DeepBankProgram::default()
        };
        if let Some(t) = tangent {
            let dots = self.bind(t.grad_dot)?;
            let fwd = self.tangent_forward(gpu, &p, &kept, ehat, t)?;
            prog.tangent_forward = fwd.launches;
            let acts = (&kept, &fwd.kept, &grads);
            prog.tangent_backward =
                self.tangent_backward(gpu, (&p, &dots), acts, (ehat, gen, dgen), t)?;
        }
        Ok(prog)
    }

    /// `h[0] = LN0(ê)`, per layer `z = lin(h)`, `u = LN(z)`, `h = ELU(u)`; `gen = h @ head`.
    fn forward(
        &self,
        gpu: &Device,
        p: &Bound,
        ehat: &Tensor,
        gen: &Tensor,
    ) -> Result<(Vec<Dispatch>, Kept)> {
        let (t, bd, m) = (self.templates, self.body_dim, ehat.rows());
        let mut k = Kept {
            h: vec![gpu.zeros(1, m, t)?],
            z: Vec::new(),
            stats: vec![LayerNorm::new(t).stats(gpu, 1, m)?],
        };
        let mut out =
            vec![LayerNorm::new(t).forward(gpu, ehat, &p.ln0.0, &p.ln0.1, &k.h[0], &k.stats[0])?];
        let ln = LayerNorm::new(bd);
        for (i, l) in p.body.iter().enumerate() {
            let (z, u, h) = (
                gpu.zeros(1, m, bd)?,
                gpu.zeros(1, m, bd)?,
                gpu.zeros(1, m, bd)?,
            );
            let st = ln.stats(gpu, 1, m)?;
            out.push(self.linear(i).forward(gpu, &k.h[i], &l.w, Some(&l.b), &z)?);
            out.push(ln.forward(gpu, &z, &l.scale, &l.offset, &u, &st)?);
            out.push(elementwise::activation_forward(
                gpu,
                &u,
                &h,
                Activation::Elu,
            )?);
            k.z.push(z);
            k.h.push(h);
            k.stats.push(st);
        }
        out.push(
            self.head()
                .forward(gpu, &k.h[self.body_layers], &p.head, None, gen)?,
        );
        Ok((out, k))
    }

    /// The forward's mirror: ∂L/∂gen → ∂L/∂ê and the wanted parameter gradients. With `keep`,
    /// every layer's ∂L/∂h, ∂L/∂u and ∂L/∂z get buffers of their own and are returned.
    fn backward(
        &self,
        gpu: &Device,
        p: &Bound,
        k: &Kept,
        (ehat, dehat): (&Tensor, &Tensor),
        (gen, dgen): (&Tensor, &Tensor),
        keep: bool,
    ) -> Result<(Vec<Dispatch>, KeptGrads)> {
        let (t, bd, m) = (self.templates, self.body_dim, ehat.rows());
        let mut g = KeptGrads {
            dh: vec![gpu.zeros(1, m, bd)?],
            du: Vec::new(),
            dz: Vec::new(),
        };
        let feat = &k.h[self.body_layers];
        let io = DenseBackward {
            x: feat,
            y: gen,
            dy: dgen,
            dz: dgen,
            dx: Some(&g.dh[0]),
        };
        let mut out = self.head().backward(gpu, &p.head, None, &io)?;
        let shared = (gpu.zeros(1, m, bd)?, gpu.zeros(1, m, bd)?);
        let ln = LayerNorm::new(bd);
        // Built top-down (dh[0] is ∂L/∂h[L]); reversed at the end to index by layer.
        for (i, l) in p.body.iter().enumerate().rev() {
            let (du, dz) = if keep {
                (gpu.zeros(1, m, bd)?, gpu.zeros(1, m, bd)?)
            } else {
                shared.clone()
            };
            let dh = g.dh.last().expect("∂L/∂h of the layer above").clone();
            out.push(elementwise::activation_backward(
                gpu,
                &dh,
                &k.h[i + 1],
                &du,
                Activation::Elu,
            )?);
            out.extend(ln.backward(
                gpu,
                &k.z[i],
                &l.scale,
                &l.offset,
                &k.stats[i + 1],
                &du,
                &dz,
            )?);
            // ∂L/∂(layer i's input): body width, or T for layer 0 (LN0's output).
            let dx = gpu.zeros(1, m, self.fan_in(i))?;
            let io = DenseBackward {
                x: &k.h[i],
                y: &k.z[i],
                dy: &dz,
                dz: &dz,
                dx: Some(&dx),
            };
            out.extend(self.linear(i).backward(gpu, &l.w, Some(&l.b), &io)?);
            g.dh.push(dx);
            g.du.push(du);
            g.dz.push(dz);
        }
        let ln0 = LayerNorm::new(t);
        let dh0 = g.dh.last().expect("∂L/∂h[0]");
        out.extend(ln0.backward(gpu, ehat, &p.ln0.0, &p.ln0.1, &k.stats[0], dh0, dehat)?);
        g.dh.reverse();
        g.du.reverse();
        g.dz.reverse();
        Ok((out, g))
    }

    /// ė̂ → ḣ[0] = LN0'·ė̂, per layer ż = ḣ@W, u̇ = LN'·ż, ḣ = ELU'(u)·u̇; ġen = ḣ[L]@head.
    fn tangent_forward(
        &self,
        gpu: &Device,
        p: &Bound,
        k: &Kept,
        ehat: &Tensor,
        t: &DeepBankTangent<'_>,
    ) -> Result<TangentForward> {
        let (tt, bd, m) = (self.templates, self.body_dim, ehat.rows());
        let ln0 = LayerNorm::new(tt);
        let mut kd = KeptTangents {
            h_dot: vec![gpu.zeros(1, m, tt)?],
            z_dot: Vec::new(),
            tstats: vec![ln0.tangent_stats(gpu, 1, m)?],
        };
        let io0 = LnTangentIo {
            x: ehat,
            x_dot: t.ehat_dot,
            stats: &k.stats[0],
            tstats: &kd.tstats[0],
        };
        let mut out = vec![ln0.tangent_forward(gpu, &io0, &p.ln0.0, &kd.h_dot[0])?];
        let ln = LayerNorm::new(bd);
        let u_dot = gpu.zeros(1, m, bd)?;
        let still = ParamTangent::default();
        for (i, l) in p.body.iter().enumerate() {
            let (z_dot, h_dot) = (gpu.zeros(1, m, bd)?, gpu.zeros(1, m, bd)?);
            let tstats = ln.tangent_stats(gpu, 1, m)?;
            let io = forward_io(&k.h[i], &kd.h_dot[i], &k.z[i], &z_dot);
            out.extend(
                self.linear(i)
                    .tangent_forward(gpu, &l.w, &still, None, &io)?,
            );
            let ln_io = LnTangentIo {
                x: &k.z[i],
                x_dot: &z_dot,
                stats: &k.stats[i + 1],
                tstats: &tstats,
            };
            out.push(ln.tangent_forward(gpu, &ln_io, &l.scale, &u_dot)?);
            out.push(elementwise::activation_backward(
                gpu,
                &u_dot,
                &k.h[i + 1],
                &h_dot,
                Activation::Elu,
            )?);
            kd.z_dot.push(z_dot);
            kd.h_dot.push(h_dot);
            kd.tstats.push(tstats);
        }
        let l = self.body_layers;
        let io = forward_io(&k.h[l], &kd.h_dot[l], t.gen_dot, t.gen_dot);
        out.extend(
            self.head()
                .tangent_forward(gpu, &p.head, &still, None, &io)?,
        );
        Ok(TangentForward {
            launches: out,
            kept: kd,
        })
    }

    /// The tangent of [`DeepBank::backward`] from the tangent of ∂L/∂gen: the head's, then per
    /// layer (top down) ELU's (with its curvature), LN's and the linear layer's, then LN0's;
    /// every parameter's gradient tangent into `dots`.
    #[allow(clippy::type_complexity)]
    fn tangent_backward(
        &self,
        gpu: &Device,
        (p, dots): (&Bound, &BankParams<Tensor>),
        (k, kd, g): (&Kept, &KeptTangents, &KeptGrads),
        (ehat, gen, dgen): (&Tensor, &Tensor, &Tensor),
        t: &DeepBankTangent<'_>,
    ) -> Result<Vec<Dispatch>> {
        let (bd, m, l) = (self.body_dim, ehat.rows(), self.body_layers);
        let grad_dot = |d: &Tensor| ParamTangent {
            dot: None,
            grad_dot: Some(d.clone()),
        };
        let mut dh_dot = gpu.zeros(1, m, bd)?;
        let io = backward_io(
            (&k.h[l], &kd.h_dot[l]),
            (gen, dgen),
            t.dgen_dot,
            Some(&dh_dot),
        );
        let head_t = grad_dot(&dots.head);
        let mut out = self
            .head()
            .tangent_backward(gpu, &p.head, &head_t, None, &io)?;
        let ln = LayerNorm::new(bd);
        let (du_dot, dz_dot) = (gpu.zeros(1, m, bd)?, gpu.zeros(1, m, bd)?);
        for (i, (lp, ld)) in p.body.iter().zip(&dots.body).enumerate().rev() {
            out.push(elementwise::activation_tangent_backward(
                gpu,
                &dh_dot,
                (&k.h[i + 1], &kd.h_dot[i + 1]),
                &g.dh[i + 1],
                &du_dot,
                Activation::Elu,
            )?);
            let ln_io = LnTangentIo {
                x: &k.z[i],
                x_dot: &kd.z_dot[i],
                stats: &k.stats[i + 1],
                tstats: &kd.tstats[i + 1],
            };
            out.extend(ln.tangent_backward(
                gpu,
                &ln_io,
                (&lp.scale, &grad_dot(&ld.scale)),
                (&lp.offset, &grad_dot(&ld.offset)),
                (&g.du[i], &du_dot),
                &dz_dot,
            )?);
            let below = gpu.zeros(1, m, self.fan_in(i))?;
            let io = backward_io(
                (&k.h[i], &kd.h_dot[i]),
                (&k.z[i], &g.dz[i]),
                &dz_dot,
                Some(&below),
            );
            let (w_t, b_t) = (grad_dot(&ld.w), grad_dot(&ld.b));
            out.extend(self.linear(i).tangent_backward(
                gpu,
                &lp.w,
                &w_t,
                Some((&lp.b, &b_t)),
                &io,
            )?);
            dh_dot = below;
        }
        let ln0 = LayerNorm::new(self.templates);
        let io0 = LnTangentIo {
            x: ehat,
            x_dot: t.ehat_dot,
            stats: &k.stats[0],
            tstats: &kd.tstats[0],
        };
        out.extend(ln0.tangent_backward(
            gpu,
            &io0,
            (&p.ln0.0, &grad_dot(&dots.ln0.0)),
            (&p.ln0.1, &grad_dot(&dots.ln0.1)),
            (&g.dh[0], &dh_dot),
            t.dehat_dot,
        )?);
        Ok(out)
    }
}

/// A linear (identity) layer's forward tangent: ż = ẋ@W into `z_dot` (the parameters hold
/// still); the backward-only fields are unused stand-ins.
fn forward_io<'a>(
    x: &'a Tensor,
    x_dot: &'a Tensor,
    y: &'a Tensor,
    z_dot: &'a Tensor,
) -> DenseTangentIo<'a> {
    DenseTangentIo {
        x,
        x_dot: Some(x_dot),
        y,
        z_dot,
        y_dot: z_dot,
        dz: z_dot,
        dy_dot: z_dot,
        dz_dot: z_dot,
        dx_dot: None,
    }
}

/// A linear (identity) layer's backward tangent: input and its tangent, output and the kept
/// ∂L/∂z, the tangent of ∂L/∂z, and where the tangent of ∂L/∂x goes.
fn backward_io<'a>(
    (x, x_dot): (&'a Tensor, &'a Tensor),
    (y, dz): (&'a Tensor, &'a Tensor),
    dz_dot: &'a Tensor,
    dx_dot: Option<&'a Tensor>,
) -> DenseTangentIo<'a> {
    DenseTangentIo {
        x,
        x_dot: Some(x_dot),
        y,
        z_dot: dz_dot,
        y_dot: dz_dot,
        dz,
        dy_dot: dz_dot,
        dz_dot,
        dx_dot,
    }
}

/// One body layer's parameters (or their gradient tangents): `lin{i}.w`, `lin{i}.b`,
/// `ln{i+1}.scale`, `ln{i+1}.offset`.
struct BodyParams<P> {
    w: P,
    b: P,
    scale: P,
    offset: P,
}

/// Every parameter of a bank, resolved (or where their gradient tangents go).
struct BankParams<P> {
    ln0: (P, P),
    body: Vec<BodyParams<P>>,
    head: P,
}

type Bound = BankParams<Param>;

/// What the forward keeps for the backward: `h[0]` = LN0(ê), `h[i + 1]` = ELU output of layer
/// i, `z[i]` its pre-LN output, `stats` of LN0, LN1, ….
struct Kept {
    h: Vec<Tensor>,
    z: Vec<Tensor>,
    stats: Vec<LnStats>,
}

/// What a kept backward leaves for the backward tangent: `dh[i]` = ∂L/∂h[i] (i = 0..=L),
/// `du[i]`, `dz[i]` = ∂L/∂u, ∂L/∂z of layer i.
struct KeptGrads {
    dh: Vec<Tensor>,
    du: Vec<Tensor>,
    dz: Vec<Tensor>,
}

/// What the forward tangent keeps: ḣ[i], ż[i] and each LN's tangent statistics (LN0 first).
struct KeptTangents {
    h_dot: Vec<Tensor>,
    z_dot: Vec<Tensor>,
    tstats: Vec<Tensor>,
}

struct TangentForward {
    launches: Vec<Dispatch>,
    kept: KeptTangents,
}

// ---------------------------------------------------------------------------------------------
// CPU twin (one item's rows)
// ---------------------------------------------------------------------------------------------

/// Activations of one DeepBank forward.
pub struct DeepBankCache<T> {
    ln0: LnCache<T>,
    /// `h[0]` = LN0(ê), `h[i + 1]` = ELU output of layer i.
    h: Vec<Vec<T>>,
    /// Pre-LN outputs of the linear layers.
    z: Vec<Vec<T>>,
    ln: Vec<LnCache<T>>,
    /// The generated parameters `rows × chunk`.
    pub gen: Vec<T>,
}

impl DeepBank {
    /// Forward on `e` (`rows × T`); `p` resolves bank-relative names to values.
    pub fn forward_cpu<'a, T: Real>(
        &self,
        p: &dyn Fn(&str) -> &'a [T],
        e: &[T],
    ) -> DeepBankCache<T> {
        let (t, bd) = (self.templates, self.body_dim);
        let (h0, ln0) = layernorm_forward(e, p("ln0.scale"), p("ln0.offset"), t);
        let (mut h, mut z, mut ln) = (vec![h0], Vec::new(), Vec::new());
        for i in 0..self.body_layers {
            let zi = linear_forward(
                &h[i],
                p(&format!("lin{i}.w")),
                Some(p(&format!("lin{i}.b"))),
                self.fan_in(i),
                bd,
                T::one(),
            );
            let (u, st) = layernorm_forward(
                &zi,
                p(&format!("ln{}.scale", i + 1)),
                p(&format!("ln{}.offset", i + 1)),
                bd,
            );
            h.push(activation_forward(&u, Activation::Elu));
            z.push(zi);
            ln.push(st);
        }
        let gen = linear_forward(
            &h[self.body_layers],
            p("head"),
            None,
            bd,
            self.chunk,
            T::one(),
        );
        DeepBankCache { ln0, h, z, ln, gen }
    }

    /// Backward from ∂L/∂gen: adds each parameter's gradient through `add(name, grad)` and
    /// returns ∂L/∂ê.
    pub fn backward_cpu<'a, T: Real>(
        &self,
        p: &dyn Fn(&str) -> &'a [T],
        add: &mut dyn FnMut(&str, &[T]),
        e: &[T],
        c: &DeepBankCache<T>,
        dgen: &[T],
    ) -> Vec<T> {
        let (t, bd) = (self.templates, self.body_dim);
        let feat = &c.h[self.body_layers];
        let g = linear_backward(feat, p("head"), dgen, bd, self.chunk, T::one(), true);
        add("head", &g.dw);
        let mut dh = g.dx;
        for i in (0..self.body_layers).rev() {
            let du = activation_backward(&dh, &c.h[i + 1], Activation::Elu);
            let sc = format!("ln{}.scale", i + 1);
            let (dz, dscale, doffset) = layernorm_backward(&du, &c.z[i], p(&sc), &c.ln[i], bd);
            add(&sc, &dscale);
            add(&format!("ln{}.offset", i + 1), &doffset);
            let w = format!("lin{i}.w");
            let g = linear_backward(&c.h[i], p(&w), &dz, self.fan_in(i), bd, T::one(), true);
            add(&w, &g.dw);
            add(&format!("lin{i}.b"), &g.db);
            dh = g.dx;
        }
        let (de, dscale, doffset) = layernorm_backward(&dh, e, p("ln0.scale"), &c.ln0, t);
        add("ln0.scale", &dscale);
        add("ln0.offset", &doffset);
        de
    }
}
