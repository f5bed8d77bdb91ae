//! Batched GEMM with bias and activation epilogue (`shaders/gemm.wgsl`):
//! `C[b] = act(α · op(A[b]) · op(B[b]) + β · C[b] + bias[b])`.

use crate::gpu::error::{arg_err, shape_err, Result};
use crate::gpu::{Access, Cost, Device, Dispatch, KernelSpec, Shader, Tensor};
use crate::ops::{check_output, common_batch, place, to_u32, Activation, Real};

mod native;

/// `shaders/gemm.wgsl` with the shared activation functions prepended.
pub static SHADER: Shader = Shader {
    name: "gemm",
    source: concat!(
        include_str!("../../shaders/activation.wgsl"),
        include_str!("../../shaders/gemm.wgsl")
    ),
    native: native::run,
    params: <Params as crate::gpu::Uniform>::LAYOUT,
};

/// Workgroup shape of the GEMM kernel: a `(4·wg_y) × (4·wg_x)` tile of C per workgroup, K staged
/// `bk` at a time. Exposed so benchmarks (and a later autotuner) can choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmTile {
    /// Invocations along N.
    pub wg_x: u32,
    /// Invocations along M.
    pub wg_y: u32,
    /// Depth of one K slab.
    pub bk: u32,
}

impl GemmTile {
    /// Rows of C per workgroup.
    pub fn tile_m(self) -> u32 {
        self.wg_y * 4
    }
    /// Columns of C per workgroup.
    pub fn tile_n(self) -> u32 {
        self.wg_x * 4
    }
    /// The tile for a C of `m × n` (after batch collapse): the first row of [`TILE_TABLE`]
    /// whose bounds hold.
    pub fn for_shape(m: usize, n: usize) -> GemmTile {
        TILE_TABLE
            .iter()
            .find(|(max_m, max_n, _)| m <= *max_m && n <= *max_n)
            .map_or(TILE_TABLE[TILE_TABLE.len() - 1].2, |row| row.2)
    }
}

const fn tile(wg_x: u32, wg_y: u32) -> GemmTile {
    GemmTile { wg_x, wg_y, bk: 16 }
}

/// Shape-keyed tiles, `(max M, max N, tile)`, first match wins: a side of at most 32 gets 8
/// invocations (a 32-wide tile) so small per-task matrices do not leave most of a workgroup
/// idle; larger sides get 16 (64-wide tiles). Measured only on lavapipe so far; the rows to add
/// for large GPUs (vec4 loads, subgroup tiles) wait for `hypermod bench kernels` on one.
pub const TILE_TABLE: &[(usize, usize, GemmTile)] = &[
    (32, 32, tile(8, 8)),
    (32, usize::MAX, tile(16, 8)),
    (usize::MAX, 32, tile(8, 16)),
    (usize::MAX, usize::MAX, tile(16, 16)),
];

impl GemmTile {
    /// Invocations of one workgroup.
    pub fn invocations(self) -> u32 {
        self.wg_x * self.wg_y
    }
}

/// Options of one GEMM launch.
#[derive(Clone, Copy, Debug)]
pub struct GemmOptions {
    /// Use Aᵀ (A stored K×M).
    pub trans_a: bool,
    /// Use Bᵀ (B stored N×K).
    pub trans_b: bool,
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of the previous C (0 = overwrite; C is then not read).
    pub beta: f32,
    /// Epilogue nonlinearity.
    pub activation: Activation,
    /// Workgroup tile; `None` picks one from the shape.
    pub tile: Option<GemmTile>,
}

impl Default for GemmOptions {
    fn default() -> Self {
        GemmOptions {
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
            activation: Activation::Identity,
            tile: None,
        }
    }
}

crate::uniform! {
    pub(crate) struct Params {
        pub(crate) m: u32,
        pub(crate) n: u32,
        pub(crate) k: u32,
        pub(crate) batch: u32,
        pub(crate) a_off: u32,
        pub(crate) a_stride: u32,
        pub(crate) b_off: u32,
        pub(crate) b_stride: u32,
        pub(crate) c_off: u32,
        pub(crate) c_stride: u32,
        pub(crate) bias_off: u32,
        pub(crate) bias_stride: u32,
        pub(crate) alpha: f32,
        pub(crate) beta: f32,
        pub(crate) _pad: [u32; 2],
    }
}

/// Problem size of a GEMM: (batch, M, N, K).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmShape {
    /// Batch items.
    pub batch: usize,
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
}

/// Infers and checks the GEMM shape from the operands.
pub fn gemm_shape(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    opts: &GemmOptions,
) -> Result<GemmShape> {
    const OP: &str = "gemm";
    let mut ops = vec![("A", a), ("B", b), ("C", c)];
    if let Some(bias) = bias {
        ops.push(("bias", bias));
    }
    let batch = common_batch(OP, &ops)?;
    let (m, ka) = if opts.trans_a {
        (a.cols(), a.rows())
    } else {
        (a.rows(), a.cols())
    };
    let (kb, n) = if opts.trans_b {
        (b.cols(), b.rows())
    } else {
        (b.rows(), b.cols())
    };
    let describe = || {
        format!(
            "A {}{} · B {}{} → C {}",
            a.shape_str(),
            if opts.trans_a { "ᵀ" } else { "" },
            b.shape_str(),
            if opts.trans_b { "ᵀ" } else { "" },
            c.shape_str()
        )
    };
    if ka != kb {
        return Err(shape_err(
            OP,
            format!("inner dimensions differ ({ka} vs {kb}): {}", describe()),
        ));
    }
    if c.rows() != m || c.cols() != n {
        return Err(shape_err(OP, format!("C must be {m}×{n}: {}", describe())));
    }
    if let Some(bias) = bias {
        if bias.item_len() != n {
            return Err(shape_err(
                OP,
                format!(
                    "bias {} must hold N = {n} values per item",
                    bias.shape_str()
                ),
            ));
        }
    }
    check_output(OP, "C", c)?;
    Ok(GemmShape { batch, m, n, k: ka })
}

/// The operands of a batch that is one GEMM in disguise, seen as that GEMM (candle's
/// `check_batch_collapse`): when B (and the bias) are shared by every item and A and C are packed
/// item after item, `B × [M × K]·[K × N]` is `[B·M × K]·[K × N]`. On the GPU that fills tiles a
/// small per-item M would leave mostly empty, and it moves no bits: every C element still sums
/// its K products in the same order. Not on the native backend, where each item is its own
/// `gemm` call so that its bits cannot depend on the rest of the batch.
struct Collapsed {
    a: Tensor,
    b: Tensor,
    bias: Option<Tensor>,
    c: Tensor,
    shape: GemmShape,
}

fn check_batch_collapse(
    gpu: &Device,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    s: GemmShape,
    opts: &GemmOptions,
) -> Result<Option<Collapsed>> {
    let shared = |t: &Tensor| t.batch_stride() == 0;
    let packed = |t: &Tensor| t.batch_stride() == t.item_len();
    if gpu.is_native()
        || s.batch < 2
        || opts.trans_a
        || opts.tile.is_some()
        || !shared(b)
        || !bias.is_none_or(shared)
        || !packed(a)
        || !packed(c)
    {
        return Ok(None);
    }
    let rows = s.batch * s.m;
    let one = |t: &Tensor| t.view(t.offset(), 1, t.rows(), t.cols(), t.item_len());
    Ok(Some(Collapsed {
        a: a.view(a.offset(), 1, rows, s.k, rows * s.k)?,
        b: one(b)?,
        bias: bias.map(one).transpose()?,
        c: c.view(c.offset(), 1, rows, s.n, rows * s.n)?,
        shape: GemmShape {
            batch: 1,
            m: rows,
            ..s
        },
    }))
}

/// Prepares `C = act(α·op(A)·op(B) + β·C + bias)` over the batch.
pub fn gemm(
    gpu: &Device,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    opts: &GemmOptions,
) -> Result<Dispatch> {
    let s = gemm_shape(a, b, bias, c, opts)?;
    match check_batch_collapse(gpu, a, b, bias, c, s, opts)? {
        Some(one) => launch(
            gpu,
            &one.a,
            &one.b,
            one.bias.as_ref(),
            &one.c,
            one.shape,
            opts,
        ),
        None => launch(gpu, a, b, bias, c, s, opts),
    }
}

/// Builds the launch of a checked GEMM problem.
fn launch(
    gpu: &Device,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    s: GemmShape,
    opts: &GemmOptions,
) -> Result<Dispatch> {
    const OP: &str = "gemm";
    if !opts.alpha.is_finite() || !opts.beta.is_finite() {
        return Err(arg_err(
            OP,
            format!("alpha {} and beta {} must be finite", opts.alpha, opts.beta),
        ));
    }
    let tile = opts.tile.unwrap_or_else(|| GemmTile::for_shape(s.m, s.n));
    let invocations = tile.invocations();
    if invocations == 0
        || invocations > gpu.limits().max_compute_invocations_per_workgroup
        || tile.bk == 0
    {
        return Err(arg_err(
            OP,
            format!(
                "tile {tile:?} needs {invocations} invocations (device max {})",
                gpu.limits().max_compute_invocations_per_workgroup
            ),
        ));
    }
    let shared = 4 * tile.bk * (tile.tile_m() + tile.tile_n());
    if shared > gpu.limits().max_compute_workgroup_storage_size {
        return Err(crate::gpu::DeviceError::Limit {
            what: format!("gemm tile {tile:?}"),
            requested: format!("{shared} bytes of workgroup memory"),
            limit_name: "max_compute_workgroup_storage_size",
            limit: format!("{} bytes", gpu.limits().max_compute_workgroup_storage_size),
        });
    }
    let (a_off, a_stride) = place(OP, "A", a)?;
    let (b_off, b_stride) = place(OP, "B", b)?;
    let (c_off, c_stride) = place(OP, "C", c)?;
    let (bias_off, bias_stride) = match bias {
        Some(t) => place(OP, "bias", t)?,
        None => (0, 0),
    };
    let params = Params {
        m: to_u32(OP, "M", s.m)?,
        n: to_u32(OP, "N", s.n)?,
        k: to_u32(OP, "K", s.k)?,
        batch: to_u32(OP, "batch", s.batch)?,
        a_off,
        a_stride,
        b_off,
        b_stride,
        c_off,
        c_stride,
        bias_off,
        bias_stride,
        alpha: opts.alpha,
        beta: opts.beta,
        _pad: [0; 2],
    };
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let constants = [
        ("WG_X", tile.wg_x as f64),
        ("WG_Y", tile.wg_y as f64),
        ("BK", tile.bk as f64),
        ("TRANS_A", flag(opts.trans_a)),
        ("TRANS_B", flag(opts.trans_b)),
        ("HAS_BIAS", flag(bias.is_some())),
        ("ACT", opts.activation.code() as f64),
    ];
    let spec = KernelSpec {
        shader: &SHADER,
        entry: "main",
        constants: &constants,
        access: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
    };
    let workgroups = [
        s.n.div_ceil(tile.tile_n() as usize) as u32,
        s.m.div_ceil(tile.tile_m() as usize) as u32,
        s.batch as u32,
    ];
    let (bs, m, n, k) = (s.batch as f64, s.m as f64, s.n as f64, s.k as f64);
    let unique = |t: &Tensor, len: f64| if t.batch_stride() == 0 { len } else { bs * len };
    let cost = Cost {
        flops: 2.0 * bs * m * n * k,
        bytes: 4.0
            * (unique(a, m * k)
                + unique(b, k * n)
                + bs * m * n * if opts.beta != 0.0 { 2.0 } else { 1.0 }),
    };
    // Without a bias, A stands in for the unused bias binding (read-only, never read).
    let bias_t = bias.unwrap_or(a);
    gpu.dispatch(&spec, &params, &[a, b, bias_t, c], workgroups, cost)
}

/// CPU twin of [`gemm()`] on logical contiguous data (`a`: batch·(rows·cols of A), etc.).
pub fn gemm_cpu<T: Real>(
    a: &[T],
    b: &[T],
    bias: Option<&[T]>,
    c: &mut [T],
    shape: GemmShape,
    opts: &GemmOptions,
) {
    let GemmShape { batch, m, n, k } = shape;
    let alpha = T::from_f64(opts.alpha as f64);
    let beta = T::from_f64(opts.beta as f64);
    for bi in 0..batch {
        let (ab, bb, cb) = (bi * m * k, bi * k * n, bi * m * n);
        for i in 0..m {
            for j in 0..n {
                let mut acc = T::zero();
                for l in 0..k {
                    let av = if opts.trans_a {
                        a[ab + l * m + i]
                    } else {
                        a[ab + i * k + l]
                    };
                    let bv = if opts.trans_b {
                        b[bb + j * k + l]
                    } else {
                        b[bb + l * n + j]
                    };
                    acc += av * bv;
                }
                let mut v = alpha * acc;
                if opts.beta != 0.0 {
                    v += beta * c[cb + i * n + j];
                }
                if let Some(bias) = bias {
                    v += bias[bi * n + j];
                }
                c[cb + i * n + j] = opts.activation.forward(v);
            }
        }
    }
}
