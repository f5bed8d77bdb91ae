//! Native `shaders/adamw.wgsl`: `prepare` (per item: skip decision, counters, clip scale, bias
//! corrections), `update` (per element, with its item's coefficients), `reset` and `vjp` (the
//! adjoint of one step, per element, in the twin's operation order).
//!
//! The state tensor holds 9 blocks of `B` values (t, skipped, consecutive, apply, clip scale,
//! 1 − b1ᵗ, 1 − b2ᵗ, lr, wd; see the shader). `update` computes in the twin's operation order
//! with plain f32 `+ − × ÷ √` (no fused multiply-add), so the bits match the CPU twin given the
//! same sum of squares. Items are independent; inside an item fixed chunks run in parallel.

use rayon::prelude::*;

use super::{powi, Params};
use crate::gpu::error::Result;
use crate::native::{item, items, items_mut, Launch};

/// Elements per parallel task of `update`.
const CHUNK: usize = 4096;

/// Runs one launch of an AdamW entry point (bindings: 1 weights, 2 grads, 3 moments, 4 sum of
/// squares, 5 state; `vjp`: 1 θ̄, 2 g, 5 state, 6 m′, 7 v′, 8 m̄, 9 v̄, 10 ḡ).
pub(crate) fn run(l: &mut Launch<'_>) -> Result<()> {
    let p: Params = l.params()?;
    match l.entry {
        "prepare" => prepare(l, &p),
        "update" => update(l, &p),
        "reset" => reset(l, &p),
        "vjp" => vjp(l, &p),
        _ => Err(l.unknown_entry()),
    }
}

/// The first `blocks · B` values of the state binding, or an error.
fn state<'a>(l: &mut Launch<'a>, blocks: usize, nb: usize) -> Result<&'a mut [f32]> {
    let state = l.write(5)?;
    let len = state.len();
    state.get_mut(..blocks * nb).ok_or_else(|| {
        l.err(format!(
            "state of {len} values, {blocks} blocks of {nb} needed"
        ))
    })
}

/// Per item: if `Σ g²` is finite, `t += 1`, consecutive = 0, apply = 1 and the clip scale and
/// bias corrections for the new `t`; otherwise both skip counters `+= 1` and apply = 0.
fn prepare(l: &mut Launch<'_>, p: &Params) -> Result<()> {
    let nb = p.batch as usize;
    let sumsq = l.read(4)?;
    let sumsq = sumsq
        .get(..nb)
        .ok_or_else(|| l.err(format!("{} sums of squares for {nb} items", sumsq.len())))?;
    let st = state(l, 7, nb)?;
    for (b, &s) in sumsq.iter().enumerate() {
        if s.is_finite() {
            let t = st[b] + 1.0;
            st[b] = t;
            st[2 * nb + b] = 0.0;
            st[3 * nb + b] = 1.0;
            let norm = s.sqrt();
            let clip = p.max_norm > 0.0 && norm > p.max_norm;
            st[4 * nb + b] = if clip { p.max_norm / norm } else { 1.0 };
            st[5 * nb + b] = 1.0 - powi(p.b1, t as u32);
            st[6 * nb + b] = 1.0 - powi(p.b2, t as u32);
        } else {
            st[nb + b] += 1.0;
            st[2 * nb + b] += 1.0;
            st[3 * nb + b] = 0.0;
        }
    }
    Ok(())
}

/// One item's coefficients, as `prepare` left them in the state.
#[derive(Clone, Copy)]
struct Coefs {
    scale: f32,
    bc1: f32,
    bc2: f32,
    lr: f32,
    wd: f32,
}

/// Per element of every item whose apply flag is set: clipped gradient, moments, weight.
fn update(l: &mut Launch<'_>, p: &Params) -> Result<()> {
    let (nb, n) = (p.batch as usize, p.n as usize);
    let total = nb * n;
    if total == 0 {
        return Ok(());
    }
    let st = state(l, 9, nb)?;
    let grads = l.read(2)?;
    let moments = l.write(3)?;
    let mlen = moments.len();
    let (m, v) = moments
        .get_mut(..2 * total)
        .ok_or_else(|| l.err(format!("{mlen} moments, 2·{total} needed")))?
        .split_at_mut(total);
    let ws = items_mut(l.write(1)?, p.w_off as usize, p.w_stride as usize, n, nb)?;
    let mut items = Vec::with_capacity(nb);
    for (b, ((w, m), v)) in ws
        .into_iter()
        .zip(m.chunks_mut(n))
        .zip(v.chunks_mut(n))
        .enumerate()
    {
        if st[3 * nb + b] == 0.0 {
            continue;
        }
        let g = item(grads, p.g_off as usize, p.g_stride as usize, b, n)?;
        let at = |k: usize| st[k * nb + b];
        let c = Coefs {
            scale: at(4),
            bc1: at(5),
            bc2: at(6),
            lr: at(7),
            wd: at(8),
        };
        items.push((c, w, m, v, g));
    }
    items.into_par_iter().for_each(|(c, w, m, v, g)| {
        w.par_chunks_mut(CHUNK)
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .zip(g.par_chunks(CHUNK))
            .for_each(|(((w, m), v), g)| chunk(p, c, w, m, v, g));
    });
    Ok(())
}

/// The update of one chunk, in the shader's (and optax's) operation order.
fn chunk(p: &Params, c: Coefs, w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
    let (b1, b2) = (p.b1, p.b2);
    for (((w, m), v), &g) in w.iter_mut().zip(m).zip(v).zip(g) {
        let g = g * c.scale;
        let mi = (1.0 - b1) * g + b1 * *m;
        let vi = (1.0 - b2) * (g * g) + b2 * *v;
        *m = mi;
        *v = vi;
        let u = (mi / c.bc1) / ((vi / c.bc2 + p.eps_root).sqrt() + p.eps);
        *w -= c.lr * (u + c.wd * *w);
    }
}

/// Zeroes m, v, t and the consecutive-skip counter (the total skip count is kept).
fn reset(l: &mut Launch<'_>, p: &Params) -> Result<()> {
    let (nb, n) = (p.batch as usize, p.n as usize);
    let total = nb * n;
    let moments = l.write(3)?;
    let mlen = moments.len();
    moments
        .get_mut(..2 * total)
        .ok_or_else(|| l.err(format!("{mlen} moments, 2·{total} needed")))?
        .par_chunks_mut(CHUNK)
        .for_each(|c| c.fill(0.0));
    let st = state(l, 3, nb)?;
    st[..nb].fill(0.0);
    st[2 * nb..].fill(0.0);
    Ok(())
}

/// The adjoint's outputs of one chunk (θ̄, m̄, v̄ in/out, ḡ out) and what the step saw and wrote
/// (g, m′, v′).
struct VjpChunk<'a> {
    theta: &'a mut [f32],
    m: &'a mut [f32],
    v: &'a mut [f32],
    g_bar: &'a mut [f32],
    g: &'a [f32],
    m_new: &'a [f32],
    v_new: &'a [f32],
}

/// Per element of every item: the adjoint of step `p.t`, each item with its own lr and wd from
/// the state. Elementwise, so items and fixed chunks run in parallel with no effect on the bits.
fn vjp(l: &mut Launch<'_>, p: &Params) -> Result<()> {
    let (nb, n) = (p.batch as usize, p.n as usize);
    if nb * n == 0 {
        return Ok(());
    }
    let st = state(l, 9, nb)?;
    let input = |k: usize, off: u32, stride: u32| -> Result<Vec<&[f32]>> {
        items(l.read(k)?, off as usize, stride as usize, n, nb)
    };
    let g = input(2, p.g_off, p.g_stride)?;
    let m_new = input(6, p.mn_off, p.mn_stride)?;
    let v_new = input(7, p.vn_off, p.vn_stride)?;
    let mut output = |k: usize, off: u32, stride: u32| -> Result<Vec<&mut [f32]>> {
        items_mut(l.write(k)?, off as usize, stride as usize, n, nb)
    };
    let theta = output(1, p.w_off, p.w_stride)?;
    let m = output(8, p.mb_off, p.mb_stride)?;
    let v = output(9, p.vb_off, p.vb_stride)?;
    let g_bar = output(10, p.gb_off, p.gb_stride)?;
    let (bc1, bc2) = (1.0 - powi(p.b1, p.t), 1.0 - powi(p.b2, p.t));
    let mut chunks = Vec::with_capacity(nb * n.div_ceil(CHUNK));
    let outs = theta.into_iter().zip(m).zip(v).zip(g_bar);
    let ins = g.into_iter().zip(m_new).zip(v_new);
    for (b, ((((theta, m), v), g_bar), ((g, m_new), v_new))) in outs.zip(ins).enumerate() {
        let c = Coefs {
            scale: 1.0, // no clipping in a step with an adjoint
            bc1,
            bc2,
            lr: st[7 * nb + b],
            wd: st[8 * nb + b],
        };
        let outs = theta
            .chunks_mut(CHUNK)
            .zip(m.chunks_mut(CHUNK))
            .zip(v.chunks_mut(CHUNK))
            .zip(g_bar.chunks_mut(CHUNK));
        let ins = g
            .chunks(CHUNK)
            .zip(m_new.chunks(CHUNK))
            .zip(v_new.chunks(CHUNK));
        for ((((theta, m), v), g_bar), ((g, m_new), v_new)) in outs.zip(ins) {
            let chunk = VjpChunk {
                theta,
                m,
                v,
                g_bar,
                g,
                m_new,
                v_new,
            };
            chunks.push((c, chunk));
        }
    }
    chunks
        .into_par_iter()
        .for_each(|(c, chunk)| vjp_chunk(p, c, chunk));
    Ok(())
}

/// The adjoint of one chunk, in the shader's (and the CPU twin's) operation order.
fn vjp_chunk(p: &Params, c: Coefs, x: VjpChunk<'_>) {
    let (b1, b2) = (p.b1, p.b2);
    let outs = x.theta.iter_mut().zip(x.m).zip(x.v).zip(x.g_bar);
    let ins = x.g.iter().zip(x.m_new).zip(x.v_new);
    for ((((theta, m), v), g_bar), ((&g, &m_new), &v_new)) in outs.zip(ins) {
        let a = *theta;
        let d = (v_new / c.bc2 + p.eps_root).sqrt();
        let den = d + p.eps;
        let u = (m_new / c.bc1) / den;
        let big_m = *m - c.lr * a / (c.bc1 * den);
        let big_v = *v + c.lr * a * u / (2.0 * d * den * c.bc2);
        *theta = (1.0 - c.lr * c.wd) * a;
        *m = b1 * big_m;
        *v = b2 * big_v;
        *g_bar = (1.0 - b1) * big_m + 2.0 * (1.0 - b2) * g * big_v;
    }
}
