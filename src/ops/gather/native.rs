//! Native `shaders/gather.wgsl`: `main`, destination row `i` of item `b` copies source row
//! `j = bits mod R`, the bits drawn with the Philox twin of [`crate::ops::rng`] under the same
//! counter layouts (shared key: index `b·Rd + i`; per item: index `i`, key `seeds[b]`), so the
//! rows picked are bit-identical to the shader's and the CPU twin's. Rows run in parallel.
//! `scatter_add`, the adjoint: items in parallel, each adding its rows in increasing `i` (the
//! shader's order, so the same bits).

use rayon::prelude::*;

use super::Params;
use crate::gpu::error::Result;
use crate::native::rows_mut;
use crate::native::{item, items_mut, Launch};
use crate::ops::rng::{random_bits, RngKey};

/// Runs one launch of `gather::main` or `gather::scatter_add`.
pub(crate) fn run(l: &mut Launch<'_>) -> Result<()> {
    let scatter = match l.entry {
        "main" => false,
        "scatter_add" => true,
        _ => return Err(l.unknown_entry()),
    };
    let p: Params = l.params()?;
    let (batch, nrows, cols, rd) = (
        p.batch as usize,
        p.rows as usize,
        p.cols as usize,
        p.rows_dst as usize,
    );
    if batch == 0 || rd == 0 || cols == 0 {
        return Ok(());
    }
    if nrows == 0 {
        return Err(l.err("a gather needs at least one source row".into()));
    }
    let shared = RngKey::new(
        u64::from(p.seed_hi) << 32 | u64::from(p.seed_lo),
        u64::from(p.stream_hi) << 32 | u64::from(p.stream_lo),
    );
    // Per item: (key, whether the index is item-local). Seeds are u32 words stored as f32 bits.
    let keys = if l.flag("PER_ITEM") {
        let words = l.read(3)?;
        (0..batch)
            .map(|b| {
                let w = item(words, 2 * b, 0, 0, 2)?;
                let seed = u64::from(w[1].to_bits()) << 32 | u64::from(w[0].to_bits());
                Ok((RngKey::new(seed, shared.stream), true))
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        vec![(shared, false); batch]
    };
    let pick = |b: usize, i: usize| {
        let (key, local) = keys[b];
        let idx = if local { i } else { b * rd + i };
        random_bits(key, idx as u32) as usize % nrows
    };
    // The read operand: the source rows (gather) or the gradient of the picks (scatter).
    let read_rows = if scatter { rd } else { nrows };
    let src = l.read(1)?;
    let srcs = (0..batch)
        .map(|b| {
            item(
                src,
                p.src_off as usize,
                p.src_stride as usize,
                b,
                read_rows * cols,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let dst = l.write(2)?;
    if scatter {
        let accs = items_mut(
            dst,
            p.dst_off as usize,
            p.dst_stride as usize,
            nrows * cols,
            batch,
        )?;
        accs.into_par_iter().enumerate().for_each(|(b, acc)| {
            for i in 0..rd {
                let j = pick(b, i);
                let g = &srcs[b][i * cols..(i + 1) * cols];
                let a = &mut acc[j * cols..(j + 1) * cols];
                a.iter_mut().zip(g).for_each(|(a, &g)| *a += g);
            }
        });
        return Ok(());
    }
    let dsts = rows_mut(
        dst,
        p.dst_off as usize,
        p.dst_stride as usize,
        (batch, rd, cols),
    )?;
    dsts.into_par_iter().enumerate().for_each(|(n, d)| {
        let j = pick(n / rd, n % rd);
        d.copy_from_slice(&srcs[n / rd][j * cols..(j + 1) * cols]);
    });
    Ok(())
}
