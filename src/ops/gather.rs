//! Random row gathers (`shaders/gather.wgsl`): minibatches drawn with replacement, e.g. the
//! inner-loop minibatches of the spec §5.1 (`inner_batch` points of the support set per step).
//!
//! Destination row `i` of item `b` copies source row `j = random_bits(key, b·Rd + i) mod R`
//! (the counter layout of [`crate::ops::rng`], Philox shared via `shaders/philox.wgsl`), so two
//! gathers with the same key and shapes pick the same rows (inputs and their targets), and the
//! host regenerates the choice with [`gather_rows_cpu`].
//!
//! # Modulo bias
//! `bits mod R` over 32 uniform bits favours the first `2³² mod R` rows by a relative
//! `≤ R / 2³²` (≤ 6·10⁻⁸ for R ≤ 256): negligible here, and zero when R is a power of two.

use crate::error::{shape_err, Result};
use crate::gpu::{grid_1d, Access, Cost, Gpu, GpuTensor, KernelSpec, Shader};
use crate::ops::rng::{random_bits, RngDispatch, RngKey};
use crate::ops::to_u32;

/// `shaders/gather.wgsl` after the shared Philox of `shaders/philox.wgsl`.
pub static SHADER: Shader = Shader {
    name: "gather",
    source: concat!(
        include_str!("../../shaders/philox.wgsl"),
        include_str!("../../shaders/gather.wgsl")
    ),
};

/// Invocations per workgroup; each copies one destination row.
const WG: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    rows: u32,
    cols: u32,
    rows_dst: u32,
    src_off: u32,
    src_stride: u32,
    dst_off: u32,
    dst_stride: u32,
    seed_lo: u32,
    seed_hi: u32,
    stream_lo: u32,
    stream_hi: u32,
}

/// A prepared random gather: an [`RngDispatch`] (`set_stream` replays it with a new stream).
pub type RngGather = RngDispatch;

/// Prepares `dst[b, i, :] ← src[b, j, :]`, `j = random_bits(key, b·Rd + i) mod R` for `src`
/// `[B×R×C]` (any view, broadcast included) and `dst` `[B×Rd×C]` (Rd may exceed R: rows are
/// drawn with replacement).
pub fn gather_rows(gpu: &Gpu, src: &GpuTensor, dst: &GpuTensor, key: RngKey) -> Result<RngGather> {
    const OP: &str = "gather_rows";
    if src.batch() != dst.batch() || src.cols() != dst.cols() || src.rows() == 0 {
        return Err(shape_err(
            OP,
            format!(
                "src {} and dst {} need the same batch and columns and src at least one row",
                src.shape_str(),
                dst.shape_str()
            ),
        ));
    }
    if dst.batch() > 1 && dst.batch_stride() < dst.item_len() {
        return Err(shape_err(
            OP,
            format!(
                "dst {} has batch stride smaller than its item, so items would overlap",
                dst.shape_str()
            ),
        ));
    }
    let out_rows = to_u32(OP, "destination rows", dst.batch() * dst.rows())?;
    let params = Params {
        batch: to_u32(OP, "batch", dst.batch())?,
        rows: to_u32(OP, "rows", src.rows())?,
        cols: to_u32(OP, "columns", src.cols())?,
        rows_dst: to_u32(OP, "rows", dst.rows())?,
        src_off: to_u32(OP, "offset", src.offset())?,
        src_stride: to_u32(OP, "batch stride", src.batch_stride())?,
        dst_off: to_u32(OP, "offset", dst.offset())?,
        dst_stride: to_u32(OP, "batch stride", dst.batch_stride())?,
        seed_lo: key.seed as u32,
        seed_hi: (key.seed >> 32) as u32,
        stream_lo: key.stream as u32,
        stream_hi: (key.stream >> 32) as u32,
    };
    let spec = KernelSpec {
        shader: &SHADER,
        entry: "main",
        constants: &[("WG", WG as f64)],
        access: &[Access::Read, Access::ReadWrite],
    };
    let cost = Cost {
        flops: 0.0,
        bytes: 8.0 * dst.len() as f64,
    };
    let dispatch = gpu.dispatch(
        &spec,
        &params,
        &[src, dst],
        grid_1d((out_rows as usize).div_ceil(WG as usize)),
        cost,
    )?;
    Ok(RngDispatch::new(
        dispatch,
        &params,
        std::mem::offset_of!(Params, stream_lo),
    ))
}

/// CPU twin: gathers `rows_dst` rows per item from logical contiguous `src`
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
