//! Random row gathers (`shaders/gather.wgsl`): minibatches drawn with replacement, e.g. the
//! inner-loop minibatches of the spec §5.1 (`inner_batch` points of the support set per step).
//!
//! Destination row `i` of item `b` copies source row `j = bits mod R`, with the counter layouts
//! of [`crate::ops::rng`] (Philox shared via `shaders/philox.wgsl`) applied to row indices:
//!
//! - shared key ([`Keying::Shared`], a bare [`RngKey`]): `bits = random_bits(key, b·Rd + i)`,
//!   one draw over the whole batch (the tasks of one run);
//! - per item ([`Keying::PerItem`]): `bits = random_bits((seeds[b], stream), i)`, so item `b`
//!   picks the rows a batch-1 gather with key `(seeds[b], stream)` picks (independent runs).
//!
//! Two gathers with the same keying and shapes pick the same rows (inputs and their targets),
//! and the host regenerates the choice with [`gather_rows_cpu`] / [`gather_rows_per_item_cpu`].
//!
//! # Modulo bias
//! `bits mod R` over 32 uniform bits favours the first `2³² mod R` rows by a relative
//! `≤ R / 2³²` (≤ 6·10⁻⁸ for R ≤ 256): negligible here, and zero when R is a power of two.

use crate::gpu::error::{shape_err, Result};
use crate::gpu::{grid_1d, Access, Cost, Device, KernelSpec, Shader, Tensor};
use crate::ops::rng::{random_bits, ItemSeeds, Keying, RngDispatch, RngKey};
use crate::ops::to_u32;

mod native;

/// `shaders/gather.wgsl` after the shared Philox of `shaders/philox.wgsl`.
pub static SHADER: Shader = Shader {
    name: "gather",
    source: concat!(
        include_str!("../../shaders/philox.wgsl"),
        include_str!("../../shaders/gather.wgsl")
    ),
    native: native::run,
    params: <Params as crate::gpu::Uniform>::LAYOUT,
};

/// Invocations per workgroup; each copies one destination row.
const WG: u32 = 64;

crate::uniform! {
    #[derive(Debug)]
    pub(crate) struct Params {
        pub(crate) batch: u32,
        pub(crate) rows: u32,
        pub(crate) cols: u32,
        pub(crate) rows_dst: u32,
        pub(crate) src_off: u32,
        pub(crate) src_stride: u32,
        pub(crate) dst_off: u32,
        pub(crate) dst_stride: u32,
        pub(crate) seed_lo: u32,
        pub(crate) seed_hi: u32,
        pub(crate) stream_lo: u32,
        pub(crate) stream_hi: u32,
    }
}

/// A prepared random gather: an [`RngDispatch`] (`set_stream` replays it with a new stream).
pub type RngGather = RngDispatch;

/// Prepares `dst[b, i, :] ← src[b, j, :]` for `src` `[B×R×C]` (any view, broadcast included)
/// and `dst` `[B×Rd×C]` (Rd may exceed R: rows are drawn with replacement), `j` drawn as the
/// module docs say for `key`: an [`RngKey`] or [`Keying::per_item`].
pub fn gather_rows<'k>(
    gpu: &Device,
    src: &Tensor,
    dst: &Tensor,
    key: impl Into<Keying<'k>>,
) -> Result<RngGather> {
    const OP: &str = "gather_rows";
    let (params, seeds) = prepare(OP, src, dst, (src, dst), key.into())?;
    let out_rows = dst.batch() * dst.rows();
    let cost = Cost {
        flops: 0.0,
        bytes: 8.0 * dst.len() as f64,
    };
    let grid = grid_1d(out_rows.div_ceil(WG as usize));
    launch(gpu, "main", &params, [src, dst], seeds, grid, cost)
}

/// Prepares the gather's adjoint: `acc[b, j, :] += Σ_{i : j(i) = j} g[b, i, :]` for the
/// gradient `g` `[B×Rd×C]` of a gather's destination and the accumulator `acc` `[B×R×C]`
/// shaped as its source, with the gather's `key` (so the same rows). Each accumulator row sums
/// its contributions in increasing `i`, so the result is deterministic; repeated rows add up.
pub fn scatter_add_rows<'k>(
    gpu: &Device,
    g: &Tensor,
    acc: &Tensor,
    key: impl Into<Keying<'k>>,
) -> Result<RngGather> {
    const OP: &str = "scatter_add_rows";
    let (params, seeds) = prepare(OP, acc, g, (g, acc), key.into())?;
    let cost = Cost {
        flops: g.len() as f64,
        bytes: 12.0 * g.len() as f64,
    };
    launch(
        gpu,
        "scatter_add",
        &params,
        [g, acc],
        seeds,
        grid_1d(g.batch()),
        cost,
    )
}

/// Checks a gather's `rows` (`[B×R×C]`, its source) against its `picks` (`[B×Rd×C]`) and
/// builds its parameters: `src_*` place the launch's `read` operand, `dst_*` its written `out`
/// (the gather reads `rows` and writes `picks`; the scatter the reverse).
fn prepare<'k>(
    op: &'static str,
    rows: &Tensor,
    picks: &Tensor,
    (read, out): (&Tensor, &Tensor),
    key: Keying<'k>,
) -> Result<(Params, Option<&'k ItemSeeds>)> {
    let (key, seeds) = match key {
        Keying::Shared(k) => (k, None),
        Keying::PerItem { seeds, stream } => {
            seeds.check_batch(op, picks)?;
            (RngKey::new(0, stream), Some(seeds))
        }
    };
    if rows.batch() != picks.batch() || rows.cols() != picks.cols() || rows.rows() == 0 {
        return Err(shape_err(
            op,
            format!(
                "rows {} and picks {} need the same batch and columns and rows at least one row",
                rows.shape_str(),
                picks.shape_str()
            ),
        ));
    }
    if out.batch() > 1 && out.batch_stride() < out.item_len() {
        return Err(shape_err(
            op,
            format!(
                "output {} has batch stride smaller than its item, so items would overlap",
                out.shape_str()
            ),
        ));
    }
    to_u32(op, "destination rows", picks.batch() * picks.rows())?;
    let params = Params {
        batch: to_u32(op, "batch", picks.batch())?,
        rows: to_u32(op, "rows", rows.rows())?,
        cols: to_u32(op, "columns", rows.cols())?,
        rows_dst: to_u32(op, "rows", picks.rows())?,
        src_off: to_u32(op, "offset", read.offset())?,
        src_stride: to_u32(op, "batch stride", read.batch_stride())?,
        dst_off: to_u32(op, "offset", out.offset())?,
        dst_stride: to_u32(op, "batch stride", out.batch_stride())?,
        seed_lo: key.seed as u32,
        seed_hi: (key.seed >> 32) as u32,
        stream_lo: key.stream as u32,
        stream_hi: (key.stream >> 32) as u32,
    };
    Ok((params, seeds))
}

/// One launch of `entry` reading `io[0]` and writing `io[1]`.
fn launch(
    gpu: &Device,
    entry: &'static str,
    params: &Params,
    io: [&Tensor; 2],
    seeds: Option<&ItemSeeds>,
    grid: [u32; 3],
    cost: Cost,
) -> Result<RngGather> {
    let per_item = if seeds.is_some() { 1.0 } else { 0.0 };
    let spec = KernelSpec {
        shader: &SHADER,
        entry,
        constants: &[("WG", WG as f64), ("PER_ITEM", per_item)],
        access: &[Access::Read, Access::ReadWrite, Access::Read],
    };
    // A shared gather reads no seeds: the read operand stands in for the unused binding.
    let seeds_t = seeds.map_or(io[0], |s| s.tensor());
    let dispatch = gpu.dispatch(&spec, params, &[io[0], io[1], seeds_t], grid, cost)?;
    Ok(RngDispatch::new(
        dispatch,
        params,
        std::mem::offset_of!(Params, stream_lo),
    ))
}

/// CPU twin of a shared-key gather: `rows_dst` rows per item from logical contiguous `src`
/// (`batch · rows · cols`), exactly as the GPU does.
pub fn gather_rows_cpu<T: Copy>(
    src: &[T],
    batch: usize,
    rows: usize,
    cols: usize,
    rows_dst: usize,
    key: RngKey,
) -> Vec<T> {
    let mut out = Vec::with_capacity(batch * rows_dst * cols);
    for b in 0..batch {
        for i in 0..rows_dst {
            let j = random_bits(key, (b * rows_dst + i) as u32) as usize % rows;
            let s = (b * rows + j) * cols;
            out.extend_from_slice(&src[s..s + cols]);
        }
    }
    out
}

/// CPU twin of a shared-key [`scatter_add_rows`]: adds `g` (logical contiguous,
/// `batch · rows_dst · cols`) into `acc` (`batch · rows · cols`) row by row in increasing `i`.
pub fn scatter_add_rows_cpu<T: Copy + std::ops::AddAssign>(
    g: &[T],
    acc: &mut [T],
    (batch, rows, cols, rows_dst): (usize, usize, usize, usize),
    key: RngKey,
) {
    for b in 0..batch {
        for i in 0..rows_dst {
            let j = random_bits(key, (b * rows_dst + i) as u32) as usize % rows;
            let (s, d) = ((b * rows_dst + i) * cols, (b * rows + j) * cols);
            for c in 0..cols {
                acc[d + c] += g[s + c];
            }
        }
    }
}

/// CPU twin of a per-item gather ([`Keying::PerItem`]): item `b` of logical contiguous `src`
/// (`seeds.len() · rows · cols`) is [`gather_rows_cpu`] of that item alone with key
/// `(seeds[b], stream)`.
pub fn gather_rows_per_item_cpu<T: Copy>(
    src: &[T],
    rows: usize,
    cols: usize,
    rows_dst: usize,
    seeds: &[u64],
    stream: u64,
) -> Vec<T> {
    let item = rows * cols;
    seeds
        .iter()
        .enumerate()
        .flat_map(|(b, &seed)| {
            let key = RngKey::new(seed, stream);
            gather_rows_cpu(&src[b * item..(b + 1) * item], 1, rows, cols, rows_dst, key)
        })
        .collect()
}
