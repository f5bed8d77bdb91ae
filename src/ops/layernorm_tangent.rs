//! Tangent (JVP) passes of LayerNorm (`shaders/layernorm_tangent.wgsl`), for Hessian-vector
//! products by forward-over-reverse: the input moves along `ẋ`, γ and β hold still. Per row, with
//! the forward's saved `mean`/`rstd` (r) and `x̂ = (x − μ)·r`:
//!
//! ```text
//! tm = mean(ẋ), tp = mean(x̂·ẋ),  x̂̇ = r·(ẋ − tm − x̂·tp)
//! forward:   ẏ = γ·x̂̇                                     (writes tstats = (tm, tp) per row)
//! backward:  ḋx = −r·tp·dx + r·(ġ − mean ġ − x̂̇·c − x̂·ċ)   g = dy·γ, ġ = ḋy·γ,
//!            dx = r·(g − mean g − x̂·c), c = mean(g·x̂),  ċ = mean(ġ·x̂ + g·x̂̇)
//!            ḋγ = Σ_rows (ḋy·x̂ + dy·x̂̇)                    per item, rows in order
//! ```
//!
//! `ḋβ = Σ_rows ḋy` is a plain column sum ([`crate::ops::reduce::col_sums`]). `tstats` is
//! `[batch × rows × 2]`; the forward tangent writes it, the backward tangent reads it.

use crate::gpu::error::Result;
use crate::gpu::{grid_1d, Access, Cost, Device, Dispatch, KernelSpec, Shader, Tensor};
use crate::ops::layernorm::{expect, row_workgroup, WG};
use crate::ops::{check_output, common_batch, place, to_u32, Real};

mod native;

/// `shaders/layernorm_tangent.wgsl` with `layernorm_common.wgsl` (reductions, γ) prepended.
pub static SHADER: Shader = Shader {
    name: "layernorm_tangent",
    source: concat!(
        include_str!("../../shaders/layernorm_common.wgsl"),
        include_str!("../../shaders/layernorm_tangent.wgsl")
    ),
    native: native::run,
    params: <Params as crate::gpu::Uniform>::LAYOUT,
};

crate::uniform! {
    #[derive(Default)]
    pub(crate) struct Params {
        pub(crate) batch: u32,
        pub(crate) rows: u32,
        pub(crate) cols: u32,
        pub(crate) _pad0: u32,
        pub(crate) x_off: u32,
        pub(crate) x_stride: u32,
        pub(crate) g_off: u32,
        pub(crate) g_stride: u32,
        pub(crate) xd_off: u32,
        pub(crate) xd_stride: u32,
        pub(crate) dy_off: u32,
        pub(crate) dy_stride: u32,
        pub(crate) dyd_off: u32,
        pub(crate) dyd_stride: u32,
        pub(crate) m_off: u32,
        pub(crate) m_stride: u32,
        pub(crate) r_off: u32,
        pub(crate) r_stride: u32,
        pub(crate) out_off: u32,
        pub(crate) out_stride: u32,
        pub(crate) ts_off: u32,
        pub(crate) ts_stride: u32,
        pub(crate) _pad: [u32; 2],
    }
}

/// What both tangent passes read: the forward's input and statistics, the input's tangent, γ,
/// and the per-row tangent statistics (written by the forward tangent, read by the backward).
#[derive(Clone, Copy, Debug)]
pub struct LnTangentInputs<'a> {
    /// The forward's input `[batch × rows × cols]`.
    pub x: &'a Tensor,
    /// Its tangent ẋ (same shape).
    pub x_dot: &'a Tensor,
    /// γ, `cols` per item (`[batch × 1 × cols]` or a broadcast), or `None` for γ = 1.
    pub gamma: Option<&'a Tensor>,
    /// The forward's row means `[batch × rows × 1]`.
    pub mean: &'a Tensor,
    /// The forward's row 1/√(var + eps) `[batch × rows × 1]`.
    pub rstd: &'a Tensor,
    /// `(mean(ẋ), mean(x̂·ẋ))` per row, `[batch × rows × 2]`.
    pub tstats: &'a Tensor,
}

/// Which entry point.
#[derive(Clone, Copy, PartialEq)]
enum Entry {
    Forward,
    Backward,
    Dparams,
}

impl LnTangentInputs<'_> {
    /// Shape checks shared by both passes, plus `(name, tensor)` operands that must match `x`.
    fn check(&self, op: &'static str, like_x: &[(&str, &Tensor)]) -> Result<usize> {
        let mut ops = vec![
            ("x", self.x),
            ("x_dot", self.x_dot),
            ("mean", self.mean),
            ("rstd", self.rstd),
            ("tstats", self.tstats),
        ];
        ops.extend(self.gamma.map(|g| ("gamma", g)));
        ops.extend_from_slice(like_x);
        let batch = common_batch(op, &ops)?;
        let (rows, cols) = (self.x.rows(), self.x.cols());
        let want = |name: &str, t: &Tensor, r: usize, c: usize| expect(op, name, t, self.x, r, c);
        want("x_dot", self.x_dot, rows, cols)?;
        want("mean", self.mean, rows, 1)?;
        want("rstd", self.rstd, rows, 1)?;
        want("tstats", self.tstats, rows, 2)?;
        if let Some(g) = self.gamma {
            want("gamma", g, 1, cols)?;
        }
        for (name, t) in like_x {
            want(name, t, rows, cols)?;
        }
        to_u32(op, "batch·rows", batch * rows)?;
        Ok(batch)
    }

    /// One launch of `entry` writing `out` (`dy`/`dy_dot` absent for the forward).
    fn launch(
        &self,
        gpu: &Device,
        op: &'static str,
        entry: Entry,
        grads: Option<(&Tensor, &Tensor)>,
        out: &Tensor,
    ) -> Result<Dispatch> {
        let (batch, rows, cols) = (self.x.batch(), self.x.rows(), self.x.cols());
        let (dy, dy_dot) = grads.unwrap_or((self.x, self.x));
        let pl = |name: &str, t: &Tensor| place(op, name, t);
        let (x_off, x_stride) = pl("x", self.x)?;
        let (g_off, g_stride) = self.gamma.map_or(Ok((0, 0)), |g| pl("gamma", g))?;
        let (xd_off, xd_stride) = pl("x_dot", self.x_dot)?;
        let (dy_off, dy_stride) = pl("dy", dy)?;
        let (dyd_off, dyd_stride) = pl("dy_dot", dy_dot)?;
        let (m_off, m_stride) = pl("mean", self.mean)?;
        let (r_off, r_stride) = pl("rstd", self.rstd)?;
        let (out_off, out_stride) = pl("out", out)?;
        let (ts_off, ts_stride) = pl("tstats", self.tstats)?;
        let params = Params {
            batch: to_u32(op, "batch", batch)?,
            rows: to_u32(op, "rows", rows)?,
            cols: to_u32(op, "cols", cols)?,
            x_off,
            x_stride,
            g_off,
            g_stride,
            xd_off,
            xd_stride,
            dy_off,
            dy_stride,
            dyd_off,
            dyd_stride,
            m_off,
            m_stride,
            r_off,
            r_stride,
            out_off,
            out_stride,
            ts_off,
            ts_stride,
            ..Default::default()
        };
        let (name, wg, grid) = match entry {
            Entry::Forward => ("forward", row_workgroup(cols), grid_1d(batch * rows)),
            Entry::Backward => ("backward", row_workgroup(cols), grid_1d(batch * rows)),
            Entry::Dparams => ("dparams", WG, grid_1d((batch * cols).div_ceil(WG as usize))),
        };
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let constants = [("WG", wg as f64), ("HAS_GAMMA", flag(self.gamma.is_some()))];
        let mut access = [Access::Read; 9];
        access[7] = Access::ReadWrite;
        access[8] = Access::ReadWrite;
        let n = self.x.len() as f64;
        let reads = if entry == Entry::Forward { 2.0 } else { 4.0 };
        let cost = Cost {
            flops: if entry == Entry::Forward { 10.0 } else { 24.0 } * n,
            bytes: 4.0 * (reads + 1.0) * n,
        };
        // Absent γ (and the forward's dy, ḋy) bind x as a stand-in; the kernel never reads them.
        let tensors = [
            self.x,
            self.gamma.unwrap_or(self.x),
            self.x_dot,
            dy,
            dy_dot,
            self.mean,
            self.rstd,
            out,
            self.tstats,
        ];
        let spec = KernelSpec {
            shader: &SHADER,
            entry: name,
            constants: &constants,
            access: &access,
        };
        gpu.dispatch(&spec, &params, &tensors, grid, cost)
    }
}

/// Prepares the forward tangent: `ẏ = γ·x̂̇` per row, writing `inputs.tstats` for the backward
/// tangent.
pub fn layernorm_tangent_forward(
    gpu: &Device,
    inputs: &LnTangentInputs<'_>,
    y_dot: &Tensor,
) -> Result<Dispatch> {
    const OP: &str = "layernorm_tangent_forward";
    inputs.check(OP, &[("y_dot", y_dot)])?;
    check_output(OP, "y_dot", y_dot)?;
    check_output(OP, "tstats", inputs.tstats)?;
    inputs.launch(gpu, OP, Entry::Forward, None, y_dot)
}

/// Prepares the backward tangent from the backward's `dy` and its tangent `dy_dot`: `dx_dot`
/// (the tangent of ∂L/∂x) and, when asked, `dgamma_dot` (`[batch × 1 × cols]`, the tangent of
/// ∂L/∂γ summed over rows). Valid after [`layernorm_tangent_forward`] wrote `inputs.tstats`.
/// Returns the launches (independent of each other).
pub fn layernorm_tangent_backward(
    gpu: &Device,
    inputs: &LnTangentInputs<'_>,
    (dy, dy_dot): (&Tensor, &Tensor),
    dx_dot: &Tensor,
    dgamma_dot: Option<&Tensor>,
) -> Result<Vec<Dispatch>> {
    const OP: &str = "layernorm_tangent_backward";
    inputs.check(OP, &[("dy", dy), ("dy_dot", dy_dot), ("dx_dot", dx_dot)])?;
    check_output(OP, "dx_dot", dx_dot)?;
    let grads = Some((dy, dy_dot));
    let mut out = vec![inputs.launch(gpu, OP, Entry::Backward, grads, dx_dot)?];
    if let Some(dg) = dgamma_dot {
        common_batch(OP, &[("x", inputs.x), ("dgamma_dot", dg)])?;
        expect(OP, "dgamma_dot", dg, inputs.x, 1, inputs.x.cols())?;
        check_output(OP, "dgamma_dot", dg)?;
        out.push(inputs.launch(gpu, OP, Entry::Dparams, grads, dg)?);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// One row's math, shared by the CPU twins and the native backend (generic over `Real`)
// ---------------------------------------------------------------------------------------------

/// One row of a LayerNorm's tangent: the forward's input and statistics, the input's tangent and
/// γ (`None` for γ = 1).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TangentRow<'a, T> {
    pub(crate) x: &'a [T],
    pub(crate) x_dot: &'a [T],
    pub(crate) gamma: Option<&'a [T]>,
    pub(crate) mean: T,
    pub(crate) rstd: T,
}

impl<T: Real> TangentRow<'_, T> {
    fn gamma(&self, c: usize) -> T {
        self.gamma.map_or(T::one(), |g| g[c])
    }

    fn xhat(&self, c: usize) -> T {
        (self.x[c] - self.mean) * self.rstd
    }

    /// x̂̇ of element `c` from the row's tangent statistics.
    fn xhat_dot(&self, c: usize, (tm, tp): (T, T)) -> T {
        self.rstd * (self.x_dot[c] - tm - self.xhat(c) * tp)
    }

    /// Writes `ẏ = γ·x̂̇` and returns the row's `(tm, tp)`, summed over the columns in order.
    pub(crate) fn forward(&self, y_dot: &mut [T]) -> (T, T) {
        let n = T::from_f64(self.x.len() as f64);
        let (mut tm, mut tp) = (T::zero(), T::zero());
        for (c, &xd) in self.x_dot.iter().enumerate() {
            tm += xd;
            tp += self.xhat(c) * xd;
        }
        let ts = (tm / n, tp / n);
        for (c, y) in y_dot.iter_mut().enumerate() {
            *y = self.gamma(c) * self.xhat_dot(c, ts);
        }
        ts
    }

    /// Writes the tangent of ∂L/∂x from `dy`, its tangent `dy_dot` and the row's `ts`.
    pub(crate) fn backward(&self, ts: (T, T), dy: &[T], dy_dot: &[T], dx_dot: &mut [T]) {
        let n = T::from_f64(self.x.len() as f64);
        let g = |c: usize| dy[c] * self.gamma(c);
        let gd = |c: usize| dy_dot[c] * self.gamma(c);
        let mut s = [T::zero(); 4];
        for c in 0..self.x.len() {
            let xh = self.xhat(c);
            s[0] += g(c);
            s[1] += g(c) * xh;
            s[2] += gd(c);
            s[3] += gd(c) * xh + g(c) * self.xhat_dot(c, ts);
        }
        let [sg, sc, sgd, scd] = s.map(|v| v / n);
        let r = self.rstd;
        for (c, out) in dx_dot.iter_mut().enumerate() {
            let xh = self.xhat(c);
            let dx = r * (g(c) - sg - xh * sc);
            let rest = gd(c) - sgd - self.xhat_dot(c, ts) * sc - xh * scd;
            *out = r * rest - r * ts.1 * dx;
        }
    }

    /// Adds this row's `ḋy·x̂ + dy·x̂̇` to `dgamma_dot` (column by column).
    pub(crate) fn add_dgamma_dot(&self, ts: (T, T), dy: &[T], dy_dot: &[T], dgamma_dot: &mut [T]) {
        for (c, d) in dgamma_dot.iter_mut().enumerate() {
            *d += dy_dot[c] * self.xhat(c) + dy[c] * self.xhat_dot(c, ts);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CPU twins (logical contiguous data, layouts as in `layernorm_forward_cpu`; tstats `batch·rows·2`)
// ---------------------------------------------------------------------------------------------

/// The host data of one LayerNorm's tangent, as [`LnTangentInputs`] with `rows` per item.
#[derive(Clone, Copy, Debug)]
pub struct LnTangentHost<'a, T> {
    /// Input.
    pub x: &'a [T],
    /// Its tangent.
    pub x_dot: &'a [T],
    /// γ per item (`batch·cols`), or `None`.
    pub gamma: Option<&'a [T]>,
    /// Row means.
    pub mean: &'a [T],
    /// Row 1/√(var + eps).
    pub rstd: &'a [T],
    /// Rows per item.
    pub rows: usize,
    /// Features per row.
    pub cols: usize,
}

impl<'a, T: Real> LnTangentHost<'a, T> {
    fn row(&self, row: usize) -> TangentRow<'a, T> {
        let (cols, item) = (self.cols, row / self.rows.max(1));
        let span = row * cols..(row + 1) * cols;
        TangentRow {
            x: &self.x[span.clone()],
            x_dot: &self.x_dot[span],
            gamma: self.gamma.map(|g| &g[item * cols..(item + 1) * cols]),
            mean: self.mean[row],
            rstd: self.rstd[row],
        }
    }

    fn nrows(&self) -> usize {
        self.mean.len()
    }
}

/// CPU twin of [`layernorm_tangent_forward`]: `(ẏ, tstats)`.
pub fn layernorm_tangent_forward_cpu<T: Real>(h: &LnTangentHost<'_, T>) -> (Vec<T>, Vec<T>) {
    let mut y_dot = vec![T::zero(); h.x.len()];
    let mut tstats = vec![T::zero(); 2 * h.nrows()];
    for row in 0..h.nrows() {
        let cols = row * h.cols..(row + 1) * h.cols;
        let (tm, tp) = h.row(row).forward(&mut y_dot[cols]);
        tstats[2 * row] = tm;
        tstats[2 * row + 1] = tp;
    }
    (y_dot, tstats)
}

/// CPU twin of [`layernorm_tangent_backward`]: `(ḋx, ḋγ)` (`ḋγ` is `batch·cols`), given the
/// forward tangent's `tstats`.
pub fn layernorm_tangent_backward_cpu<T: Real>(
    h: &LnTangentHost<'_, T>,
    tstats: &[T],
    dy: &[T],
    dy_dot: &[T],
) -> (Vec<T>, Vec<T>) {
    let cols = h.cols;
    let mut dx_dot = vec![T::zero(); h.x.len()];
    let mut dgamma_dot = vec![T::zero(); (h.nrows() / h.rows.max(1)) * cols];
    for row in 0..h.nrows() {
        let ts = (tstats[2 * row], tstats[2 * row + 1]);
        let span = row * cols..(row + 1) * cols;
        let (dy, dy_dot) = (&dy[span.clone()], &dy_dot[span.clone()]);
        let r = h.row(row);
        r.backward(ts, dy, dy_dot, &mut dx_dot[span]);
        let item = row / h.rows.max(1);
        r.add_dgamma_dot(
            ts,
            dy,
            dy_dot,
            &mut dgamma_dot[item * cols..(item + 1) * cols],
        );
    }
    (dx_dot, dgamma_dot)
}
