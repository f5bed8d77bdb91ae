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
//! of every task), so its gradients are plain sums over the rows.

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuTensor};
use crate::ops::elementwise;
use crate::ops::{Activation, Real};

use super::dense::{activation_backward, activation_forward, linear_backward, linear_forward};
use super::layernorm::{layernorm_backward, layernorm_forward, LnCache, LnStats};
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

/// Prepared launches of one bank.
#[derive(Debug, Default)]
pub struct DeepBankProgram {
    /// ê → gen.
    pub forward: Vec<Dispatch>,
    /// ∂L/∂gen → ∂L/∂ê and the wanted parameter gradients.
    pub backward: Vec<Dispatch>,
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

    /// Resolves every parameter of the bank once.
    fn bind(&self, param: &ParamFn<'_>) -> Result<Bound> {
        let (t, bd) = (self.templates, self.body_dim);
        let body = (0..self.body_layers)
            .map(|i| {
                Ok(BodyParams {
                    w: param(&format!("lin{i}.w"), self.fan_in(i), bd)?,
                    b: param(&format!("lin{i}.b"), 1, bd)?,
                    scale: param(&format!("ln{}.scale", i + 1), 1, bd)?,
                    offset: param(&format!("ln{}.offset", i + 1), 1, bd)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Bound {
            ln0: (param("ln0.scale", 1, t)?, param("ln0.offset", 1, t)?),
            body,
            head: param("head", bd, self.chunk)?,
        })
    }

    /// The launches over `m` rows: `ehat`/`dehat` `[1 × m × T]`, `gen`/`dgen` `[1 × m × chunk]`.
    pub fn program(
        &self,
        gpu: &Gpu,
        param: &ParamFn<'_>,
        ehat: &GpuTensor,
        dehat: &GpuTensor,
        gen: &GpuTensor,
        dgen: &GpuTensor,
    ) -> Result<DeepBankProgram> {
        let p = self.bind(param)?;
        let (forward, kept) = self.forward(gpu, &p, ehat, gen)?;
        let backward = self.backward(gpu, &p, &kept, (ehat, dehat), (gen, dgen))?;
        Ok(DeepBankProgram { forward, backward })
    }

    /// `h[0] = LN0(ê)`, per layer `z = lin(h)`, `u = LN(z)`, `h = ELU(u)`; `gen = h @ head`.
    fn forward(
        &self,
        gpu: &Gpu,
        p: &Bound,
        ehat: &GpuTensor,
        gen: &GpuTensor,
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

    /// The forward's mirror: ∂L/∂gen → ∂L/∂ê and the wanted parameter gradients.
    fn backward(
        &self,
        gpu: &Gpu,
        p: &Bound,
        k: &Kept,
        (ehat, dehat): (&GpuTensor, &GpuTensor),
        (gen, dgen): (&GpuTensor, &GpuTensor),
    ) -> Result<Vec<Dispatch>> {
        let (t, bd, m) = (self.templates, self.body_dim, ehat.rows());
        let mut dh = gpu.zeros(1, m, bd)?;
        let feat = &k.h[self.body_layers];
        let io = DenseBackward {
            x: feat,
            y: gen,
            dy: dgen,
            dz: dgen,
            dx: Some(&dh),
        };
        let mut out = self.head().backward(gpu, &p.head, None, &io)?;
        let (du, dz) = (gpu.zeros(1, m, bd)?, gpu.zeros(1, m, bd)?);
        let ln = LayerNorm::new(bd);
        for (i, l) in p.body.iter().enumerate().rev() {
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
            dh = gpu.zeros(1, m, self.fan_in(i))?;
            let io = DenseBackward {
                x: &k.h[i],
                y: &k.z[i],
                dy: &dz,
                dz: &dz,
                dx: Some(&dh),
            };
            out.extend(self.linear(i).backward(gpu, &l.w, Some(&l.b), &io)?);
        }
        let ln0 = LayerNorm::new(t);
        out.extend(ln0.backward(gpu, ehat, &p.ln0.0, &p.ln0.1, &k.stats[0], &dh, dehat)?);
        Ok(out)
    }
}

/// One body layer's parameters: `lin{i}.w`, `lin{i}.b`, `ln{i+1}.scale`, `ln{i+1}.offset`.
struct BodyParams {
    w: Param,
    b: Param,
    scale: Param,
    offset: Param,
}

/// Every parameter of a bank, resolved.
struct Bound {
    ln0: (Param, Param),
    body: Vec<BodyParams>,
    head: Param,
}

/// What the forward keeps for the backward: `h[0]` = LN0(ê), `h[i + 1]` = ELU output of layer
/// i, `z[i]` its pre-LN output, `stats` of LN0, LN1, ….
struct Kept {
    h: Vec<GpuTensor>,
    z: Vec<GpuTensor>,
    stats: Vec<LnStats>,
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
