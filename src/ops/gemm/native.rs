//! Native `shaders/gemm.wgsl`: `C[b] = act(α·op(A[b])·op(B[b]) + β·C[b] + bias[b])` through the
//! `gemm` crate (packed, cache-blocked microkernels chosen at run time up to AVX-512).
//!
//! Each item is one `gemm` call on its own pointers and strides, so an item gets the same bits
//! whatever else is in the batch (batch invariance, as on the GPU). Parallelism: many items run
//! one per thread; a few large items are each split over the pool by `gemm` itself, which
//! partitions M and N only, never K, so the bits do not depend on the thread count either.

use rayon::prelude::*;

use super::Params;
use crate::gpu::error::Result;
use crate::native::{item, items_mut, Launch};
use crate::ops::Activation;

/// Below this many multiply-adds an item is not worth splitting over threads.
const SPLIT_ITEM_FMAS: usize = 1 << 18;

/// One item's operands: A, B and bias slices, and C.
struct Item<'a> {
    a: &'a [f32],
    b: &'a [f32],
    bias: Option<&'a [f32]>,
    c: &'a mut [f32],
}

/// Runs one launch of `gemm::main`.
pub(crate) fn run(l: &mut Launch<'_>) -> Result<()> {
    if l.entry != "main" {
        return Err(l.unknown_entry());
    }
    let p: Params = l.params()?;
    let (m, n, k, batch) = (p.m as usize, p.n as usize, p.k as usize, p.batch as usize);
    let shape = Shape {
        m,
        n,
        k,
        trans_a: l.flag("TRANS_A"),
        trans_b: l.flag("TRANS_B"),
        alpha: p.alpha,
        beta: p.beta,
        act: Activation::of_launch(l)?,
    };
    let has_bias = l.flag("HAS_BIAS");
    let (a, b, bias) = (l.read(1)?, l.read(2)?, l.read(3)?);
    let c = l.write(4)?;
    let cs = items_mut(c, p.c_off as usize, p.c_stride as usize, m * n, batch)?;
    let mut items = Vec::with_capacity(cs.len());
    for (i, c) in cs.into_iter().enumerate() {
        items.push(Item {
            a: item(a, p.a_off as usize, p.a_stride as usize, i, m * k)?,
            b: item(b, p.b_off as usize, p.b_stride as usize, i, k * n)?,
            bias: if has_bias {
                Some(item(
                    bias,
                    p.bias_off as usize,
                    p.bias_stride as usize,
                    i,
                    n,
                )?)
            } else {
                None
            },
            c,
        });
    }
    let threads = rayon::current_num_threads();
    if items.len() >= threads || m * n * k < SPLIT_ITEM_FMAS {
        items
            .into_par_iter()
            .for_each(|it| shape.item(it, gemm::Parallelism::None));
    } else {
        for it in items {
            shape.item(it, gemm::Parallelism::Rayon(threads));
        }
    }
    Ok(())
}

/// The per-item problem (the same for every item of a launch).
#[derive(Clone, Copy)]
struct Shape {
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    alpha: f32,
    beta: f32,
    act: Activation,
}

impl Shape {
    fn item(&self, it: Item<'_>, par: gemm::Parallelism) {
        let Shape { m, n, k, .. } = *self;
        if m == 0 || n == 0 {
            return;
        }
        // Row-major storage: A is M×K (K×M when transposed), B is K×N (N×K), C is M×N.
        let (a_rs, a_cs) = if self.trans_a { (1, m) } else { (k, 1) };
        let (b_rs, b_cs) = if self.trans_b { (1, k) } else { (n, 1) };
        let read_c = self.beta != 0.0;
        // SAFETY: the slices were bounds-checked for exactly these extents (A: m·k, B: k·n,
        // C: m·n elements) and C does not alias A or B (the device layer rejects that).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                it.c.as_mut_ptr(),
                1,
                n as isize,
                read_c,
                it.a.as_ptr(),
                a_cs as isize,
                a_rs as isize,
                it.b.as_ptr(),
                b_cs as isize,
                b_rs as isize,
                // gemm computes dst := α_g·dst + β_g·(lhs·rhs): our β scales C, our α the product.
                self.beta,
                self.alpha,
                false,
                false,
                false,
                par,
            );
        }
        if it.bias.is_none() && self.act == Activation::Identity {
            return;
        }
        for row in it.c.chunks_mut(n) {
            if let Some(bias) = it.bias {
                row.iter_mut().zip(bias).for_each(|(v, &b)| *v += b);
            }
            row.iter_mut().for_each(|v| *v = self.act.forward(*v));
        }
    }
}
