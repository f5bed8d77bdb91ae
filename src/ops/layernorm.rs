//! LayerNorm over the last axis (`shaders/layernorm.wgsl`), haiku semantics: for each row of
//! `x [batch × rows × cols]`, `y = (x − μ)·rstd·γ + β` with `rstd = 1/√(var + eps)` and the biased
//! variance. The forward saves `mean` and `rstd` (`[batch × rows × 1]`) for the backward.

use crate::gpu::error::{arg_err, shape_err, Result};
use crate::gpu::{grid_1d, Access, Cost, Device, Dispatch, KernelSpec, Shader, Tensor};
use crate::ops::{check_output, common_batch, place, to_u32, Real};

mod native;

/// `shaders/layernorm.wgsl` with `layernorm_common.wgsl` (reductions, γ) prepended.
pub static SHADER: Shader = Shader {
    name: "layernorm",
    source: concat!(
        include_str!("../../shaders/layernorm_common.wgsl"),
        include_str!("../../shaders/layernorm.wgsl")
    ),
    native: native::run,
    params: <Params as crate::gpu::Uniform>::LAYOUT,
};

/// haiku's default `eps`.
pub const DEFAULT_EPS: f32 = 1e-5;

/// Invocations per workgroup of the column-parallel dγ/dβ kernel, and the most a row kernel uses.
pub const WG: u32 = 256;

/// Invocations of the row kernels (one workgroup per row; a power of two for the tree reduction):
/// narrow rows get narrow workgroups so most invocations are not idle at every barrier.
pub(crate) fn row_workgroup(cols: usize) -> u32 {
    (cols.next_power_of_two() as u32).clamp(32, WG)
}

crate::uniform! {
    #[derive(Default)]
    pub(crate) struct Params {
        pub(crate) batch: u32,
        pub(crate) rows: u32,
        pub(crate) cols: u32,
        pub(crate) eps: f32,
        pub(crate) x_off: u32,
        pub(crate) x_stride: u32,
        pub(crate) g_off: u32,
        pub(crate) g_stride: u32,
        pub(crate) in3_off: u32,
        pub(crate) in3_stride: u32,
        pub(crate) out4_off: u32,
        pub(crate) out4_stride: u32,
        pub(crate) m_off: u32,
        pub(crate) m_stride: u32,
        pub(crate) r_off: u32,
        pub(crate) r_stride: u32,
        pub(crate) out7_off: u32,
        pub(crate) out7_stride: u32,
        pub(crate) _pad: [u32; 2],
    }
}

/// Checks that `t` is `[batch × rows × cols]`, naming `what` and the input shape otherwise.
pub(crate) fn expect(
    op: &'static str,
    what: &str,
    t: &Tensor,
    x: &Tensor,
    rows: usize,
    cols: usize,
) -> Result<()> {
    if t.rows() * t.cols() != rows * cols || (rows > 1 && t.rows() != rows) {
        return Err(shape_err(
            op,
            format!(
                "{what} {} must be {rows}×{cols} per item for x {}",
                t.shape_str(),
                x.shape_str()
            ),
        ));
    }
    Ok(())
}

/// Shared shape checks; returns the launch grid of one workgroup per row.
fn rows_grid(op: &'static str, x: &Tensor) -> Result<[u32; 3]> {
    to_u32(op, "batch·rows", x.batch() * x.rows())?;
    Ok(grid_1d(x.batch() * x.rows()))
}

/// Prepares the forward pass: `y = (x − μ)·rstd·γ + β` per row, writing `mean` and `rstd`.
/// `gamma`/`beta` hold `cols` values per item (`[batch × 1 × cols]`, or broadcast).
#[allow(clippy::too_many_arguments)]
pub fn layernorm_forward(
    gpu: &Device,
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    y: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    eps: f32,
) -> Result<Dispatch> {
    const OP: &str = "layernorm_forward";
    let mut ops = vec![("x", x), ("y", y), ("mean", mean), ("rstd", rstd)];
    ops.extend(gamma.map(|g| ("gamma", g)));
    ops.extend(beta.map(|b| ("beta", b)));
    common_batch(OP, &ops)?;
    let (rows, cols) = (x.rows(), x.cols());
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(arg_err(OP, format!("eps {eps} must be finite and ≥ 0")));
    }
    expect(OP, "y", y, x, rows, cols)?;
    expect(OP, "mean", mean, x, rows, 1)?;
    expect(OP, "rstd", rstd, x, rows, 1)?;
    for (n, t) in [("gamma", gamma), ("beta", beta)] {
        if let Some(t) = t {
            expect(OP, n, t, x, 1, cols)?;
        }
    }
    for (n, t) in [("y", y), ("mean", mean), ("rstd", rstd)] {
        check_output(OP, n, t)?;
    }
    let grid = rows_grid(OP, x)?;
    let (x_off, x_stride) = place(OP, "x", x)?;
    let (g_off, g_stride) = gamma.map_or(Ok((0, 0)), |t| place(OP, "gamma", t))?;
    let (in3_off, in3_stride) = beta.map_or(Ok((0, 0)), |t| place(OP, "beta", t))?;
    let (out4_off, out4_stride) = place(OP, "y", y)?;
    let (m_off, m_stride) = place(OP, "mean", mean)?;
    let (r_off, r_stride) = place(OP, "rstd", rstd)?;
    let params = Params {
        batch: to_u32(OP, "batch", x.batch())?,
        rows: to_u32(OP, "rows", rows)?,
        cols: to_u32(OP, "cols", cols)?,
        eps,
        x_off,
        x_stride,
        g_off,
        g_stride,
        in3_off,
        in3_stride,
        out4_off,
        out4_stride,
        m_off,
        m_stride,
        r_off,
        r_stride,
        ..Default::default()
    };
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let constants = [
        ("WG", row_workgroup(cols) as f64),
        ("HAS_GAMMA", flag(gamma.is_some())),
        ("HAS_BETA", flag(beta.is_some())),
    ];
    let spec = KernelSpec {
        shader: &SHADER,
        entry: "forward",
        constants: &constants,
        access: &[
            Access::Read,
            Access::Read,
            Access::Read,
            Access::ReadWrite,
            Access::ReadWrite,
            Access::ReadWrite,
        ],
    };
    let n = x.len() as f64;
    let cost = Cost {
        flops: 8.0 * n,
        bytes: 4.0 * (2.0 * n + 2.0 * (x.batch() * rows) as f64),
    };
    // Absent γ/β: x stands in for their read-only bindings (never read).
    gpu.dispatch(
        &spec,
        &params,
        &[x, gamma.unwrap_or(x), beta.unwrap_or(x), y, mean, rstd],
        grid,
        cost,
    )
}

/// Prepares the backward pass from `dy`, `x`, `γ` and the forward's `mean`/`rstd`:
/// `dx` (full formula), and per item `dγ = Σ_rows dy·x̂`, `dβ = Σ_rows dy` (`[batch × 1 × cols]`,
/// summed over rows in order; a caller with shared γ/β sums them over the batch). Returns the
/// launches (independent of each other): dx first, then dγ/dβ when either is asked for.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward(
    gpu: &Device,
    dy: &Tensor,
    x: &Tensor,
    gamma: Option<&Tensor>,
    mean: &Tensor,
    rstd: &Tensor,
    dx: &Tensor,
    dgamma: Option<&Tensor>,
    dbeta: Option<&Tensor>,
) -> Result<Vec<Dispatch>> {
    const OP: &str = "layernorm_backward";
    let mut ops = vec![
        ("dy", dy),
        ("x", x),
        ("mean", mean),
        ("rstd", rstd),
        ("dx", dx),
    ];
    ops.extend(gamma.map(|g| ("gamma", g)));
    ops.extend(dgamma.map(|g| ("dgamma", g)));
    ops.extend(dbeta.map(|b| ("dbeta", b)));
    let batch = common_batch(OP, &ops)?;
    let (rows, cols) = (x.rows(), x.cols());
    expect(OP, "dy", dy, x, rows, cols)?;
    expect(OP, "dx", dx, x, rows, cols)?;
    expect(OP, "mean", mean, x, rows, 1)?;
    expect(OP, "rstd", rstd, x, rows, 1)?;
    for (n, t) in [("gamma", gamma), ("dgamma", dgamma), ("dbeta", dbeta)] {
        if let Some(t) = t {
            expect(OP, n, t, x, 1, cols)?;
        }
    }
    check_output(OP, "dx", dx)?;
    for (n, t) in [("dgamma", dgamma), ("dbeta", dbeta)] {
        if let Some(t) = t {
            check_output(OP, n, t)?;
        }
    }
    let grid = rows_grid(OP, x)?;
    let (x_off, x_stride) = place(OP, "x", x)?;
    let (g_off, g_stride) = gamma.map_or(Ok((0, 0)), |t| place(OP, "gamma", t))?;
    let (in3_off, in3_stride) = place(OP, "dy", dy)?;
    let (m_off, m_stride) = place(OP, "mean", mean)?;
    let (r_off, r_stride) = place(OP, "rstd", rstd)?;
    let base = Params {
        batch: to_u32(OP, "batch", batch)?,
        rows: to_u32(OP, "rows", rows)?,
        cols: to_u32(OP, "cols", cols)?,
        x_off,
        x_stride,
        g_off,
        g_stride,
        in3_off,
        in3_stride,
        m_off,
        m_stride,
        r_off,
        r_stride,
        ..Default::default()
    };
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    // mean/rstd bind read_write: the module declares them so for the forward (see the shader).
    let access = [
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
    ];
    let n = x.len() as f64;
    let (dx_off, dx_stride) = place(OP, "dx", dx)?;
    let constants = [
        ("WG", row_workgroup(cols) as f64),
        ("HAS_GAMMA", flag(gamma.is_some())),
    ];
    let dx_launch = gpu.dispatch(
        &KernelSpec {
            shader: &SHADER,
            entry: "backward",
            constants: &constants,
            access: &access,
        },
        &Params {
            out4_off: dx_off,
            out4_stride: dx_stride,
            ..base
        },
        &[x, gamma.unwrap_or(x), dy, dx, mean, rstd],
        grid,
        Cost {
            flops: 14.0 * n,
            bytes: 4.0 * 3.0 * n,
        },
    )?;
    let mut out = vec![dx_launch];
    if dgamma.is_some() || dbeta.is_some() {
        // A missing output's read_write binding takes the other output (never written; the two
        // cannot share a buffer, so with only one requested the other slot gets `dx`).
        let (g_t, b_t) = match (dgamma, dbeta) {
            (Some(g), Some(b)) => (g, b),
            (Some(g), None) => (g, dx),
            (None, Some(b)) => (dx, b),
            (None, None) => unreachable!("checked above"),
        };
        let (out4_off, out4_stride) = place(OP, "dgamma", g_t)?;
        let (out7_off, out7_stride) = place(OP, "dbeta", b_t)?;
        let constants = [
            ("WG", WG as f64),
            ("HAS_DGAMMA", flag(dgamma.is_some())),
            ("HAS_BETA", flag(dbeta.is_some())),
        ];
        let mut access7 = access.to_vec();
        access7.push(Access::ReadWrite);
        out.push(gpu.dispatch(
            &KernelSpec {
                shader: &SHADER,
                entry: "dparams",
                constants: &constants,
                access: &access7,
            },
            &Params {
                out4_off,
                out4_stride,
                out7_off,
                out7_stride,
                ..base
            },
            &[x, x, dy, g_t, mean, rstd, b_t],
            grid_1d((batch * cols).div_ceil(WG as usize)),
            Cost {
                flops: 5.0 * n,
                bytes: 4.0 * 2.0 * n,
            },
        )?);
    }
    Ok(out)
}

/// CPU twin of [`layernorm_forward`] on logical contiguous data: `x`, `y` are `batch·rows·cols`,
/// `gamma`/`beta` `batch·cols` (a shared one repeated), `mean`/`rstd` `batch·rows`.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_forward_cpu<T: Real>(
    x: &[T],
    gamma: Option<&[T]>,
    beta: Option<&[T]>,
    rows: usize,
    cols: usize,
    eps: T,
    y: &mut [T],
    mean: &mut [T],
    rstd: &mut [T],
) {
    let n = T::from_f64(cols as f64);
    for (row, xr) in x.chunks(cols).enumerate() {
        let item = row / rows;
        let mu = xr.iter().copied().sum::<T>() / n;
        let var = xr.iter().map(|&v| (v - mu) * (v - mu)).sum::<T>() / n;
        let rs = T::one() / (var + eps).sqrt();
        for (c, &v) in xr.iter().enumerate() {
            let g = gamma.map_or(T::one(), |g| g[item * cols + c]);
            let b = beta.map_or(T::zero(), |b| b[item * cols + c]);
            y[row * cols + c] = (v - mu) * rs * g + b;
        }
        mean[row] = mu;
        rstd[row] = rs;
    }
}

/// CPU twin of [`layernorm_backward`] (layouts as in [`layernorm_forward_cpu`]; `dgamma`/`dbeta`
/// are `batch·cols`).
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward_cpu<T: Real>(
    dy: &[T],
    x: &[T],
    gamma: Option<&[T]>,
    mean: &[T],
    rstd: &[T],
    rows: usize,
    cols: usize,
    dx: &mut [T],
    mut dgamma: Option<&mut [T]>,
    mut dbeta: Option<&mut [T]>,
) {
    let n = T::from_f64(cols as f64);
    for d in [dgamma.as_deref_mut(), dbeta.as_deref_mut()]
        .into_iter()
        .flatten()
    {
        d.iter_mut().for_each(|v| *v = T::zero());
    }
    for (row, xr) in x.chunks(cols).enumerate() {
        let item = row / rows;
        let (mu, rs) = (mean[row], rstd[row]);
        let at = |c: usize| row * cols + c;
        let g = |c: usize| dy[at(c)] * gamma.map_or(T::one(), |g| g[item * cols + c]);
        let xh = |c: usize| (xr[c] - mu) * rs;
        let sg = (0..cols).map(g).sum::<T>() / n;
        let sgx = (0..cols).map(|c| g(c) * xh(c)).sum::<T>() / n;
        for c in 0..cols {
            dx[at(c)] = rs * (g(c) - sg - xh(c) * sgx);
            if let Some(d) = dgamma.as_deref_mut() {
                d[item * cols + c] += dy[at(c)] * xh(c);
            }
            if let Some(d) = dbeta.as_deref_mut() {
                d[item * cols + c] += dy[at(c)];
            }
        }
    }
}
