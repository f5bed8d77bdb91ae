//! Deterministic reductions (`shaders/reduce.wgsl`): sums over the batch, the columns or the rows
//! of a batched tensor (gradients of shared weights and biases), and the two-pass sum of squares
//! behind global gradient norms.
//!
//! All of them are one kernel entry, `reduce_axis`, launched with different strides. The summation
//! order depends only on the shapes (per-invocation sequential sums, then a pairwise tree in
//! workgroup memory; no atomics), so the same input gives bit-identical output on every run.
//! NaN and ±∞ propagate: a non-finite term makes its sum non-finite.
//!
//! # Batch invariance
//! Independent runs on the batch axis need item `b` of a batch to get the bits a batch-1 launch on
//! that item gives. Every reduction here partitions an item's terms by the item's shape alone:
//! row sums and the sum-of-squares passes by construction, the column sums because their
//! workgroup is sized from one item's `C` outputs (sizing it from all `B·C` outputs would change
//! the number of partial sums per output, hence the order of the additions, with `B`).

use crate::gpu::error::{arg_err, shape_err, Result};
use crate::gpu::{grid_1d, Access, Cost, Device, Dispatch, KernelSpec, Shader, Step, Tensor};
use crate::ops::{check_output, place, to_u32, Real};

mod native;

/// `shaders/reduce.wgsl`.
pub static SHADER: Shader = Shader {
    name: "reduce",
    source: include_str!("../../shaders/reduce.wgsl"),
    native: native::run,
    params: <Params as crate::gpu::Uniform>::LAYOUT,
};

/// Which axis of `x [B×R×C]` a [`reduce`] sums over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// `y [1×R×C] = Σ_b x[b]`: the gradient of a weight shared by the batch.
    SumBatch,
    /// `y [B×R×1]`: the sum of each row (over the columns).
    RowSums,
    /// `y [B×1×C]`: the sum of each column (over the rows): a bias gradient.
    ColSums,
}

impl Reduction {
    /// All variants, for tests and benchmarks.
    pub const ALL: [Reduction; 3] = [Reduction::SumBatch, Reduction::RowSums, Reduction::ColSums];

    /// `(batch, rows, cols)` of the output for an input of that shape.
    pub fn output_shape(self, batch: usize, rows: usize, cols: usize) -> (usize, usize, usize) {
        match self {
            Reduction::SumBatch => (1, rows, cols),
            Reduction::RowSums => (batch, rows, 1),
            Reduction::ColSums => (batch, 1, cols),
        }
    }
}

crate::uniform! {
    pub(crate) struct Params {
        pub(crate) n_out: u32,
        pub(crate) per_item: u32,
        pub(crate) n_red: u32,
        pub(crate) limit: u32,
        pub(crate) j_step: u32,
        pub(crate) k_step: u32,
        pub(crate) x_off: u32,
        pub(crate) x_stride: u32,
        pub(crate) y_off: u32,
        pub(crate) y_stride: u32,
        pub(crate) alpha: f32,
        pub(crate) beta: f32,
    }
}

/// Elements of one sum-of-squares pass-1 partial: 16 terms per invocation of a 256-wide workgroup,
/// so pass 2 has few partials even for items of millions of elements.
const CHUNK: usize = 4096;

/// A reduction expressed as strides (see the header of `shaders/reduce.wgsl`).
struct Plan {
    batch_out: usize,
    per_item: usize,
    n_red: usize,
    limit: u32,
    j_step: usize,
    k_step: usize,
    /// True when consecutive terms are adjacent in memory (row sums); otherwise consecutive
    /// outputs are (`j_step == 1`), and the workgroup spreads along the outputs instead.
    contiguous_terms: bool,
    square: bool,
    /// Size the workgroup from one item's outputs rather than the batch's (see the module docs).
    batch_invariant: bool,
}

/// Workgroup shape `(WG_X outputs, WG_Y partials)`, both powers of two, at most `cap` invocations.
/// Depends on the shape only, which keeps the summation order fixed.
fn workgroup_shape(cap: u32, n_out: usize, n_red: usize, contiguous_terms: bool) -> (u32, u32) {
    let pow2 = |n: usize, max: u32| n.max(1).next_power_of_two().min(max as usize) as u32;
    if contiguous_terms {
        let wy = pow2(n_red, cap);
        (pow2(n_out, cap / wy), wy)
    } else {
        // 64 adjacent outputs keep loads coalesced; the rest of the workgroup splits the terms.
        let wx = pow2(n_out, cap.min(64));
        (wx, pow2(n_red, cap / wx))
    }
}

fn launch(
    gpu: &Device,
    op: &'static str,
    x: &Tensor,
    y: &Tensor,
    plan: &Plan,
    alpha: f32,
    beta: f32,
) -> Result<Dispatch> {
    if !alpha.is_finite() || !beta.is_finite() {
        return Err(arg_err(
            op,
            format!("alpha {alpha} and beta {beta} must be finite"),
        ));
    }
    let n_out = plan.batch_out * plan.per_item;
    let (x_off, x_stride) = place(op, "x", x)?;
    let (y_off, y_stride) = place(op, "y", y)?;
    let params = Params {
        n_out: to_u32(op, "outputs", n_out)?,
        per_item: to_u32(op, "outputs per item", plan.per_item)?,
        n_red: to_u32(op, "terms per output", plan.n_red)?,
        limit: plan.limit,
        j_step: to_u32(op, "output step", plan.j_step)?,
        k_step: to_u32(op, "term step", plan.k_step)?,
        x_off,
        x_stride,
        y_off,
        y_stride,
        alpha,
        beta,
    };
    // The largest power of two the device allows, at most 256 (WebGPU's guaranteed minimum).
    let max_inv = gpu.limits().max_compute_invocations_per_workgroup.min(256);
    let cap = 1u32 << (31 - max_inv.max(1).leading_zeros());
    let shape_outputs = if plan.batch_invariant {
        plan.per_item
    } else {
        n_out
    };
    let (wg_x, wg_y) = workgroup_shape(cap, shape_outputs, plan.n_red, plan.contiguous_terms);
    let constants = [
        ("WG_X", wg_x as f64),
        ("WG_Y", wg_y as f64),
        ("SQUARE", if plan.square { 1.0 } else { 0.0 }),
    ];
    let spec = KernelSpec {
        shader: &SHADER,
        entry: "reduce_axis",
        constants: &constants,
        access: &[Access::Read, Access::ReadWrite],
    };
    let terms = (n_out * plan.n_red) as f64;
    let y_traffic = if beta != 0.0 { 2.0 } else { 1.0 };
    let cost = Cost {
        flops: terms * if plan.square { 2.0 } else { 1.0 },
        bytes: 4.0 * (terms + y_traffic * n_out as f64),
    };
    let groups = n_out.div_ceil(wg_x as usize);
    gpu.dispatch(&spec, &params, &[x, y], grid_1d(groups), cost)
}

/// Prepares `y = alpha · Σ x + beta · y` over the axis `kind` picks (see [`Reduction`]).
/// `beta == 0` does not read `y`. `y` must have the shape [`Reduction::output_shape`] gives.
pub fn reduce(
    gpu: &Device,
    x: &Tensor,
    y: &Tensor,
    kind: Reduction,
    alpha: f32,
    beta: f32,
) -> Result<Dispatch> {
    const OP: &str = "reduce";
    let (b, r, c) = (x.batch(), x.rows(), x.cols());
    let want = kind.output_shape(b, r, c);
    if (y.batch(), y.rows(), y.cols()) != want {
        return Err(shape_err(
            OP,
            format!(
                "{kind:?} of x {} needs y [{}×{}×{}], got y {}",
                x.shape_str(),
                want.0,
                want.1,
                want.2,
                y.shape_str()
            ),
        ));
    }
    check_output(OP, "y", y)?;
    let plan = match kind {
        Reduction::SumBatch => Plan {
            batch_out: 1,
            per_item: r * c,
            n_red: b,
            limit: u32::MAX,
            j_step: 1,
            k_step: x.batch_stride(),
            contiguous_terms: false,
            square: false,
            batch_invariant: false,
        },
        Reduction::RowSums => Plan {
            batch_out: b,
            per_item: r,
            n_red: c,
            limit: u32::MAX,
            j_step: c,
            k_step: 1,
            contiguous_terms: true,
            square: false,
            batch_invariant: false,
        },
        Reduction::ColSums => col_sums_plan((b, r, c)),
    };
    launch(gpu, OP, x, y, &plan, alpha, beta)
}

/// `y [1×R×C] = alpha · Σ_b x[b] + beta · y` for `x [B×R×C]`.
pub fn sum_batch(gpu: &Device, x: &Tensor, y: &Tensor, alpha: f32, beta: f32) -> Result<Dispatch> {
    reduce(gpu, x, y, Reduction::SumBatch, alpha, beta)
}

/// `y [B×R×1] = alpha · (sum of each row of x) + beta · y` for `x [B×R×C]`.
pub fn row_sums(gpu: &Device, x: &Tensor, y: &Tensor, alpha: f32, beta: f32) -> Result<Dispatch> {
    reduce(gpu, x, y, Reduction::RowSums, alpha, beta)
}

/// `y [B×1×C] = alpha · (sum of each column of x) + beta · y` for `x [B×R×C]` (bias gradient).
pub fn col_sums(gpu: &Device, x: &Tensor, y: &Tensor, alpha: f32, beta: f32) -> Result<Dispatch> {
    reduce(gpu, x, y, Reduction::ColSums, alpha, beta)
}

/// The plan of the column sums of `x [B×R×C]`: C outputs per item, R terms each, C apart.
fn col_sums_plan((b, r, c): (usize, usize, usize)) -> Plan {
    Plan {
        batch_out: b,
        per_item: c,
        n_red: r,
        limit: u32::MAX,
        j_step: 1,
        k_step: c,
        contiguous_terms: false,
        square: false,
        // The workgroup is sized from one item's C outputs: see "Batch invariance" above.
        batch_invariant: true,
    }
}

/// Per-item `Σ x²` in two passes: pass 1 writes one partial per 4096-element chunk of each item to
/// a scratch tensor this struct owns, pass 2 sums each item's partials in a fixed order. Memory
/// and per-invocation work stay bounded for items of millions of elements.
///
/// Record [`SumSquares::dispatches`] in order (or call [`SumSquares::record`]).
pub struct SumSquares {
    /// `[B×1×P]` partials of pass 1, kept alive for the dispatches that bind it.
    partials: Tensor,
    passes: [Dispatch; 2],
}

impl SumSquares {
    /// Pass 1 (partials) then pass 2 (per-item totals); record them in this order.
    pub fn dispatches(&self) -> [&Dispatch; 2] {
        [&self.passes[0], &self.passes[1]]
    }
    /// Records both passes into a step.
    pub fn record(&self, step: &mut Step<'_>) {
        step.run_all(self.dispatches());
    }
    /// The pass-1 scratch tensor `[B×1×P]` (one partial per chunk of each item).
    pub fn partials(&self) -> &Tensor {
        &self.partials
    }
}

/// Prepares `out[b] = Σ x[b]²` over each whole item of `x [B×R×C]`, into `out [B×1×1]`.
///
/// With `accumulate` the pass adds instead (`out[b] += Σ x[b]²`), so the squared global norm of a
/// model whose parameters live in several tensors is one `accumulate = false` launch for the first
/// tensor followed by `accumulate = true` launches for the others, all into the same `out`, recorded
/// in that order.
pub fn sum_squares(gpu: &Device, x: &Tensor, out: &Tensor, accumulate: bool) -> Result<SumSquares> {
    const OP: &str = "sum_squares";
    let b = x.batch();
    if out.batch() != b || out.item_len() != 1 {
        return Err(shape_err(
            OP,
            format!(
                "x {} needs out [{b}×1×1], got out {}",
                x.shape_str(),
                out.shape_str()
            ),
        ));
    }
    check_output(OP, "out", out)?;
    let n = x.item_len();
    let chunks = n.div_ceil(CHUNK);
    let partials = gpu.zeros(b, 1, chunks)?;
    let pass1 = launch(
        gpu,
        OP,
        x,
        &partials,
        &Plan {
            batch_out: b,
            per_item: chunks,
            n_red: CHUNK,
            limit: to_u32(OP, "item length", n)?,
            j_step: CHUNK,
            k_step: 1,
            contiguous_terms: true,
            square: true,
            batch_invariant: false,
        },
        1.0,
        0.0,
    )?;
    let pass2 = launch(
        gpu,
        OP,
        &partials,
        out,
        &Plan {
            batch_out: b,
            per_item: 1,
            n_red: chunks,
            limit: u32::MAX,
            j_step: 0,
            k_step: 1,
            contiguous_terms: true,
            square: false,
            batch_invariant: false,
        },
        1.0,
        if accumulate { 1.0 } else { 0.0 },
    )?;
    Ok(SumSquares {
        partials,
        passes: [pass1, pass2],
    })
}

/// CPU twin of [`reduce`] on logical contiguous `x` (`batch·rows·cols`) and `y` (output shape).
/// Sums sequentially in `T` (the GPU uses a tree: compare with a tolerance).
pub fn reduce_cpu<T: Real>(
    x: &[T],
    y: &mut [T],
    (batch, rows, cols): (usize, usize, usize),
    kind: Reduction,
    alpha: f32,
    beta: f32,
) {
    let (alpha, beta_t) = (T::from_f64(alpha as f64), T::from_f64(beta as f64));
    let at = |b: usize, r: usize, c: usize| x[(b * rows + r) * cols + c];
    let (outer, inner, terms) = match kind {
        Reduction::SumBatch => (1, rows * cols, batch),
        Reduction::RowSums => (batch, rows, cols),
        Reduction::ColSums => (batch, cols, rows),
    };
    for o in 0..outer {
        for j in 0..inner {
            let mut acc = T::zero();
            for k in 0..terms {
                acc += match kind {
                    Reduction::SumBatch => at(k, j / cols, j % cols),
                    Reduction::RowSums => at(o, j, k),
                    Reduction::ColSums => at(o, k, j),
                };
            }
            let idx = o * inner + j;
            let mut v = alpha * acc;
            if beta != 0.0 {
                v += beta_t * y[idx];
            }
            y[idx] = v;
        }
    }
}

/// CPU twin of [`sum_squares`]: `out[b] (+)= Σ x[b]²` over items of `x.len() / out.len()` values.
pub fn sum_squares_cpu<T: Real>(x: &[T], out: &mut [T], accumulate: bool) {
    if out.is_empty() {
        return;
    }
    let n = x.len() / out.len();
    for (b, o) in out.iter_mut().enumerate() {
        let s: T = x[b * n..(b + 1) * n].iter().map(|&v| v * v).sum();
        *o = if accumulate { *o + s } else { s };
    }
}
