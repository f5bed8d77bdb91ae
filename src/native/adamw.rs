//! Native `shaders/adamw.wgsl`: `prepare` (per item: skip decision, counters, clip scale, bias
//! corrections), `update` (per element, with its item's coefficients) and `reset`.
//!
//! The state tensor holds 9 blocks of `B` values (t, skipped, consecutive, apply, clip scale,
//! 1 − b1ᵗ, 1 − b2ᵗ, lr, wd; see the shader). `update` computes in the twin's operation order
//! with plain f32 `+ − × ÷ √` (no fused multiply-add), so the bits match the CPU twin given the
//! same sum of squares. Items are independent; inside an item fixed chunks run in parallel.

use rayon::prelude::*;

use crate::error::Result;
use crate::native::{item, items_mut, Launch};
use crate::ops::adamw::{powi, Params};

/// Elements per parallel task of `update`.
const CHUNK: usize = 4096;

/// Runs one launch of an AdamW entry point (bindings: 1 weights, 2 grads, 3 moments, 4 sum of
/// squares, 5 state).
pub(crate) fn run(l: &mut Launch<'_>) -> Result<()> {
    let p: Params = l.params()?;
    match l.entry {
        "prepare" => prepare(l, &p),
        "update" => update(l, &p),
        "reset" => reset(l, &p),
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
