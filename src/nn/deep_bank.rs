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
use super::layernorm::{layernorm_backward, layernorm_forward, LnCache};
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
        let (t, bd, m) = (self.templates, self.body_dim, ehat.rows());
        let ln = |cols: usize| LayerNorm::new(cols);
        let ln_params = |j: usize, cols: usize| -> Result<(Param, Param)> {
            Ok((
                param(&format!("ln{j}.scale"), 1, cols)?,
                param(&format!("ln{j}.offset"), 1, cols)?,
            ))
        };
        let mut p = DeepBankProgram::default();
        // Forward; h[0] = LN0(ê), then per layer z = lin(h), u = LN(z), h = ELU(u).
        let (g0, o0) = ln_params(0, t)?;
        let mut h = vec![gpu.zeros(1, m, t)?];
        let mut z = Vec::new();
        let mut stats = vec![ln(t).stats(gpu, 1, m)?];
        p.forward
            .push(ln(t).forward(gpu, ehat, &g0, &o0, &h[0], &stats[0])?);
        for i in 0..self.body_layers {
            let (w, b) = (
                param(&format!("lin{i}.w"), self.fan_in(i), bd)?,
                param(&format!("lin{i}.b"), 1, bd)?,
            );
            let (g, o) = ln_params(i + 1, bd)?;
            let (zi, u, hi) = (
                gpu.zeros(1, m, bd)?,
                gpu.zeros(1, m, bd)?,
                gpu.zeros(1, m, bd)?,
            );
            let st = ln(bd).stats(gpu, 1, m)?;
            p.forward
                .push(self.linear(i).forward(gpu, &h[i], &w, Some(&b), &zi)?);
            p.forward.push(ln(bd).forward(gpu, &zi, &g, &o, &u, &st)?);
            p.forward.push(elementwise::activation_forward(
                gpu,
                &u,
                &hi,
                Activation::Elu,
            )?);
            z.push(zi);
            h.push(hi);
            stats.push(st);
        }
        let head = param("head", bd, self.chunk)?;
        let head_layer = Dense::new(bd, self.chunk);
        let feat = &h[self.body_layers];
        p.forward
            .push(head_layer.forward(gpu, feat, &head, None, gen)?);

        // Backward, mirroring it.
        let mut dh = gpu.zeros(1, m, bd)?;
        p.backward.extend(head_layer.backward(
            gpu,
            &head,
            None,
            &DenseBackward {
                x: feat,
                y: gen,
                dy: dgen,
                dz: dgen,
                dx: Some(&dh),
            },
        )?);
        let (du, dz) = (gpu.zeros(1, m, bd)?, gpu.zeros(1, m, bd)?);
        for i in (0..self.body_layers).rev() {
            p.backward.push(elementwise::activation_backward(
                gpu,
                &dh,
                &h[i + 1],
                &du,
                Activation::Elu,
            )?);
            let (g, o) = ln_params(i + 1, bd)?;
            p.backward
                .extend(ln(bd).backward(gpu, &z[i], &g, &o, &stats[i + 1], &du, &dz)?);
            let (w, b) = (
                param(&format!("lin{i}.w"), self.fan_in(i), bd)?,
                param(&format!("lin{i}.b"), 1, bd)?,
            );
            // ∂L/∂(layer i's input): body width, or T for layer 0 (LN0's output).
            dh = gpu.zeros(1, m, self.fan_in(i))?;
            let io = DenseBackward {
                x: &h[i],
                y: &z[i],
                dy: &dz,
                dz: &dz,
                dx: Some(&dh),
            };
            p.backward
                .extend(self.linear(i).backward(gpu, &w, Some(&b), &io)?);
        }
        p.backward
            .extend(ln(t).backward(gpu, ehat, &g0, &o0, &stats[0], &dh, dehat)?);
        Ok(p)
    }
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
