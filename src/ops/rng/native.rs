//! Native `shaders/rng.wgsl`: counter-based Philox fills, bit-identical to the kernel and to the
//! CPU twin because every value comes from the twin's own functions
//! ([`philox4x32_10`], [`value`]).
//!
//! A value depends only on its logical index and key, never on where the work is split, so the
//! items (and, inside an item, fixed chunks of [`CHUNK`] elements) are filled in parallel. The
//! polynomial table of binding 2 is the twin's `NORMAL_TABLE`, which the launcher always uploads,
//! so it is not read here.

use rayon::prelude::*;

use super::{philox4x32_10, value, Distribution, Params, TRUNC_P_LO};
use crate::gpu::error::Result;
use crate::native::{items_mut, Launch};

/// Elements per parallel task inside one item.
const CHUNK: usize = 4096;

/// Philox blocks computed side by side (structure of arrays, so the rounds vectorise).
const LANES: usize = 16;

/// [`philox4x32_10`] of the blocks `first..first + LANES` (counter words `[block, 0, stream]`),
/// word-major: `out[w][j]` is word `w` of block `first + j`. The same integer operations as the
/// twin, so the same bits.
fn philox_lanes(first: u32, stream: [u32; 2], key: [u32; 2]) -> [[u32; LANES]; 4] {
    let mut c0: [u32; LANES] = std::array::from_fn(|j| first.wrapping_add(j as u32));
    let (mut c1, mut c2, mut c3) = ([0u32; LANES], [stream[0]; LANES], [stream[1]; LANES]);
    let mut k = key;
    for _ in 0..10 {
        for j in 0..LANES {
            let m0 = 0xD251_1F53u64 * c0[j] as u64;
            let m1 = 0xCD9E_8D57u64 * c2[j] as u64;
            c0[j] = (m1 >> 32) as u32 ^ c1[j] ^ k[0];
            c1[j] = m1 as u32;
            c2[j] = (m0 >> 32) as u32 ^ c3[j] ^ k[1];
            c3[j] = m0 as u32;
        }
        k = [
            k[0].wrapping_add(0x9E37_79B9),
            k[1].wrapping_add(0xBB67_AE85),
        ];
    }
    [c0, c1, c2, c3]
}

/// What decides every value of a launch except the key and the index.
#[derive(Clone, Copy)]
struct Draw {
    dist: Distribution,
    /// Counter words 2 and 3.
    stream: [u32; 2],
    a: f32,
    s: f32,
}

impl Draw {
    /// Writes the values of logical indices `start..start + out.len()` under `key`, one Philox
    /// block per 4 indices (index `i` takes word `i % 4` of block `i / 4`): whole groups of
    /// [`LANES`] blocks through the lane-parallel Philox, the unaligned head and tail one by one.
    fn span(&self, out: &mut [f32], start: u32, key: [u32; 2]) {
        let head = ((4 - start % 4) % 4).min(out.len() as u32) as usize;
        let (first, rest) = out.split_at_mut(head);
        self.scalar_span(first, start, key);
        let group = 4 * LANES;
        let whole = rest.len() / group * group;
        let (body, tail) = rest.split_at_mut(whole);
        let body_start = start + head as u32;
        for (g, chunk) in body.chunks_exact_mut(group).enumerate() {
            let block = (body_start as usize / 4 + g * LANES) as u32;
            let words = philox_lanes(block, self.stream, key);
            for (j, quad) in chunk.chunks_exact_mut(4).enumerate() {
                for (w, o) in quad.iter_mut().enumerate() {
                    *o = value(self.dist, words[w][j], self.a, self.s);
                }
            }
        }
        self.scalar_span(tail, body_start + whole as u32, key);
    }

    /// [`Draw::span`] one index at a time (the twin's order of operations).
    fn scalar_span(&self, out: &mut [f32], start: u32, key: [u32; 2]) {
        let mut block: Option<(u32, [u32; 4])> = None;
        for (k, o) in out.iter_mut().enumerate() {
            let i = start + k as u32;
            let words = match block {
                Some((c, w)) if c == i / 4 => w,
                _ => {
                    let w = philox4x32_10([i / 4, 0, self.stream[0], self.stream[1]], key);
                    block = Some((i / 4, w));
                    w
                }
            };
            *o = value(self.dist, words[(i % 4) as usize], self.a, self.s);
        }
    }

    /// Fills one item whose element 0 has logical index `start`, in chunks of [`CHUNK`].
    fn item(&self, out: &mut [f32], start: usize, key: [u32; 2]) {
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| self.span(chunk, (start + c * CHUNK) as u32, key));
    }
}

/// Runs one launch of `rng::main` (shared or per-item keying, any distribution).
pub(crate) fn run(l: &mut Launch<'_>) -> Result<()> {
    if l.entry != "main" {
        return Err(l.unknown_entry());
    }
    let p: Params = l.params()?;
    let draw = Draw {
        dist: distribution(l)?,
        stream: [p.stream_lo, p.stream_hi],
        a: p.a,
        s: p.s,
    };
    let item_len = p.item_len as usize;
    if item_len == 0 {
        return Err(l.err("item length 0".into()));
    }
    let (off, stride) = (p.out_off as usize, p.out_stride as usize);
    if l.flag("PER_ITEM") {
        let blocks_per_item = item_len.div_ceil(4);
        let batch = p.blocks as usize / blocks_per_item;
        if batch * blocks_per_item != p.blocks as usize {
            return Err(l.err(format!(
                "{} Philox blocks are not whole items of {blocks_per_item} blocks",
                p.blocks
            )));
        }
        let seeds = l.read(3)?;
        let words = seeds.get(..2 * batch).ok_or_else(|| {
            l.err(format!(
                "{} seed words for a batch of {batch} items",
                seeds.len()
            ))
        })?;
        let out = l.write(1)?;
        let items = items_mut(out, off, stride, item_len, batch)?;
        items
            .into_par_iter()
            .zip(words.par_chunks(2))
            .for_each(|(item, w)| draw.item(item, 0, [w[0].to_bits(), w[1].to_bits()]));
    } else {
        let len = p.len as usize;
        let batch = len / item_len;
        if batch * item_len != len || p.blocks as usize != len.div_ceil(4) {
            return Err(l.err(format!(
                "{len} elements in {} Philox blocks are not whole items of {item_len}",
                p.blocks
            )));
        }
        let key = [p.seed_lo, p.seed_hi];
        let out = l.write(1)?;
        let items = items_mut(out, off, stride, item_len, batch)?;
        items
            .into_par_iter()
            .enumerate()
            .for_each(|(b, item)| draw.item(item, b * item_len, key));
    }
    Ok(())
}

/// The `DIST` override constant as a [`Distribution`]; the truncated normal's `P_LO` must be the
/// twin's [`TRUNC_P_LO`] (the only value the launcher sets).
fn distribution(l: &Launch<'_>) -> Result<Distribution> {
    let code = l.constant("DIST", 0.0) as u32;
    let p_lo = l.constant("P_LO", TRUNC_P_LO as f64);
    match code {
        0 => Ok(Distribution::Uniform),
        1 => Ok(Distribution::Normal),
        2 if p_lo == TRUNC_P_LO as f64 => Ok(Distribution::TruncatedNormal),
        2 => Err(l.err(format!("P_LO = {p_lo}, the native fill has {TRUNC_P_LO}"))),
        _ => Err(l.err(format!("unknown distribution code {code}"))),
    }
}
