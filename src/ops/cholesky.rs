//! Cholesky factorisation and solves of symmetric positive definite matrices
//! (`shaders/cholesky.wgsl`): per item, `L = chol(K + ridge·I)`, `α = (K + ridge·I)⁻¹ y` and
//! `quad = Σ_ij y_ij α_ij = tr(yᵀ (K + ridge·I)⁻¹ y)`, plus the solve with an existing factor and
//! the gradient with respect to `K`.
//!
//! Operands are strided batches of row-major matrices: `K`, `L` `[B × n × n]`, right-hand sides
//! `[B × n × r]`, `quad` `[B × 1 × 1]`; every item is independent. `K` is symmetric and only its
//! lower triangle is read, so a caller may keep anything above the diagonal.
//!
//! Failure is per item and never poisons the batch: a pivot that is not positive and finite
//! (`K + ridge·I` not numerically positive definite, or a NaN/∞ input) makes that item's factor,
//! `α` and `quad` all NaN, and every other item gets exactly the bits it gets in a launch of its
//! own. The launchers never panic.
//!
//! Gradients, for a symmetric `K` and the ridge held constant (stop-gradient, also where it is
//! relative to `tr K`): with `A = K + ridge·I`, `w = A⁻¹ ∂ℓ/∂α` and
//! `∂ℓ/∂K = −½ (w αᵀ + α wᵀ)` ([`cholesky_solve_backward`]), the symmetric convention: `dK` is the
//! symmetric matrix with `dℓ = ⟨dK, δK⟩` for every symmetric perturbation `δK`. A caller who stores
//! `K` as independent lower-triangle entries gets `2·dK_ij` for an entry below the diagonal and
//! `dK_ii` on it. `∂α/∂y` is the solve itself: `∂ℓ/∂y = w`.
//!
//! For the quadratic form, `∂quad/∂K = −α αᵀ` (the backward with `∂ℓ/∂α = y`, where `w = α`; no
//! solve is needed: [`cholesky_grad_outer`] with `a = w = α`) and `∂quad/∂y = 2α`.

use crate::gpu::error::{arg_err, shape_err, Result};
use crate::gpu::{grid_1d, Access, Cost, Device, Dispatch, KernelSpec, Shader, Tensor};
use crate::ops::{check_output, common_batch, place, to_u32, Real};

mod native;

/// `shaders/cholesky.wgsl`.
pub static SHADER: Shader = Shader {
    name: "cholesky",
    source: include_str!("../../shaders/cholesky.wgsl"),
    native: native::run,
    params: <Params as crate::gpu::Uniform>::LAYOUT,
};

/// Invocations of the element-wise `outer` kernel.
const WG_OUTER: u32 = 256;

/// Invocations of the one-workgroup-per-item kernels. Row `i` belongs to invocation `i mod WG`,
/// so up to 256 rows (the typical n = 256) every column step is one pass with one row per
/// invocation; small matrices get 64 so most invocations are not idle at each of the ~2n
/// barriers of a launch (64 is two NVIDIA warps, one AMD wave). Both are powers of two for the tree sums and
/// within WebGPU's default of 256 invocations. The choice depends on n only, so an item's bits do
/// not depend on its batch.
fn item_workgroup(n: usize) -> u32 {
    if n <= 64 {
        64
    } else {
        256
    }
}

/// The ridge added to the diagonal of each item: `ridge_b = abs + rel · tr(K_b) / n`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ridge {
    /// Absolute part.
    pub abs: f32,
    /// Part relative to the mean diagonal entry `tr(K_b) / n` (scale-free regularisation).
    pub rel: f32,
}

crate::uniform! {
    #[derive(Default)]
    pub(crate) struct Params {
        pub(crate) n: u32,
        pub(crate) r: u32,
        pub(crate) batch: u32,
        pub(crate) nan_bits: u32,
        pub(crate) ridge_abs: f32,
        pub(crate) ridge_rel: f32,
        pub(crate) in1_off: u32,
        pub(crate) in1_stride: u32,
        pub(crate) in2_off: u32,
        pub(crate) in2_stride: u32,
        pub(crate) out3_off: u32,
        pub(crate) out3_stride: u32,
        pub(crate) out4_off: u32,
        pub(crate) out4_stride: u32,
        pub(crate) _pad: [u32; 2],
    }
}

/// `name shape, …` for error messages.
fn shapes(ts: &[(&str, &Tensor)]) -> String {
    ts.iter()
        .map(|(n, t)| format!("{n} {}", t.shape_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The common batch, `n` from the square `mat` and `r` from `rhs`, after checking that every
/// operand in `ts` is `[· × rows × cols]` as listed (0 in `cols` stands for r).
fn dims(
    op: &'static str,
    mat: &Tensor,
    rhs: &Tensor,
    ts: &[(&str, &Tensor, Dim, Dim)],
) -> Result<(usize, usize, usize)> {
    let all: Vec<(&str, &Tensor)> = ts.iter().map(|(n, t, _, _)| (*n, *t)).collect();
    let batch = common_batch(op, &all)?;
    let (n, r) = (mat.rows(), rhs.cols());
    let want = |d: Dim| match d {
        Dim::N => n,
        Dim::R => r,
        Dim::One => 1,
    };
    let bad = ts
        .iter()
        .any(|(_, t, a, b)| t.rows() != want(*a) || t.cols() != want(*b));
    if mat.cols() != n || bad || n == 0 || r == 0 {
        let expected: Vec<String> = ts
            .iter()
            .map(|(name, _, a, b)| format!("{name} [·×{}×{}]", a.name(), b.name()))
            .collect();
        return Err(shape_err(
            op,
            format!(
                "expected {} with n ≥ 1, r ≥ 1; got {}",
                expected.join(", "),
                shapes(&all)
            ),
        ));
    }
    Ok((batch, n, r))
}

/// A dimension of an operand, for the shape check and its message.
#[derive(Clone, Copy)]
enum Dim {
    N,
    R,
    One,
}

impl Dim {
    fn name(self) -> &'static str {
        match self {
            Dim::N => "n",
            Dim::R => "r",
            Dim::One => "1",
        }
    }
}

/// Offsets and strides of the bound operands (binding 1, 2, 3, 4) in `Params`.
fn params(
    op: &'static str,
    (batch, n, r): (usize, usize, usize),
    ridge: Ridge,
    bound: &[(&str, &Tensor)],
) -> Result<Params> {
    let mut place_of = [(0u32, 0u32); 4];
    for (slot, (name, t)) in place_of.iter_mut().zip(bound) {
        *slot = place(op, name, t)?;
    }
    // Indices inside an item reach n·max(n, r); the shader computes them in u32.
    to_u32(op, "n·n", n * n)?;
    to_u32(op, "n·r", n * r)?;
    Ok(Params {
        n: to_u32(op, "n", n)?,
        r: to_u32(op, "r", r)?,
        batch: to_u32(op, "batch", batch)?,
        nan_bits: f32::NAN.to_bits(),
        ridge_abs: ridge.abs,
        ridge_rel: ridge.rel,
        in1_off: place_of[0].0,
        in1_stride: place_of[0].1,
        in2_off: place_of[1].0,
        in2_stride: place_of[1].1,
        out3_off: place_of[2].0,
        out3_stride: place_of[2].1,
        out4_off: place_of[3].0,
        out4_stride: place_of[3].1,
        _pad: [0; 2],
    })
}

const ACCESS: [Access; 4] = [
    Access::Read,
    Access::Read,
    Access::ReadWrite,
    Access::ReadWrite,
];

/// The solve launch (`solve` or `solve_quad`): `x = (L Lᵀ)⁻¹ b`, `quad = Σ b∘x`.
fn solve_launch(
    gpu: &Device,
    op: &'static str,
    dims: (usize, usize, usize),
    factor: &Tensor,
    b: &Tensor,
    x: &Tensor,
    quad: Option<&Tensor>,
) -> Result<Dispatch> {
    let (batch, n, r) = dims;
    let mut bound = vec![("factor", factor), ("b", b), ("x", x)];
    bound.extend(quad.map(|q| ("quad", q)));
    let p = params(op, dims, Ridge::default(), &bound)?;
    let constants = [("WG", item_workgroup(n) as f64)];
    let (nf, rf, bf) = (n as f64, r as f64, batch as f64);
    let cost = Cost {
        flops: bf * 2.0 * nf * nf * rf,
        bytes: 4.0 * bf * (nf * nf / 2.0 + 2.0 * nf * rf),
    };
    let tensors: Vec<&Tensor> = bound.iter().map(|(_, t)| *t).collect();
    gpu.dispatch(
        &KernelSpec {
            shader: &SHADER,
            entry: if quad.is_some() {
                "solve_quad"
            } else {
                "solve"
            },
            constants: &constants,
            access: &ACCESS[..tensors.len()],
        },
        &p,
        &tensors,
        grid_1d(batch),
        cost,
    )
}

/// The `outer` launch: `dk = −½ (w aᵀ + a wᵀ)`.
fn outer_launch(
    gpu: &Device,
    op: &'static str,
    dims: (usize, usize, usize),
    a: &Tensor,
    w: &Tensor,
    dk: &Tensor,
) -> Result<Dispatch> {
    let (batch, n, r) = dims;
    let total = to_u32(op, "batch·n·n", batch * n * n)?;
    let p = params(
        op,
        dims,
        Ridge::default(),
        &[("a", a), ("w", w), ("dk", dk)],
    )?;
    let constants = [("WG", WG_OUTER as f64)];
    let (nf, rf, bf) = (n as f64, r as f64, batch as f64);
    let cost = Cost {
        flops: bf * 4.0 * nf * nf * rf,
        bytes: 4.0 * bf * (nf * nf + 2.0 * nf * rf),
    };
    gpu.dispatch(
        &KernelSpec {
            shader: &SHADER,
            entry: "outer",
            constants: &constants,
            access: &ACCESS[..3],
        },
        &p,
        &[a, w, dk],
        grid_1d((total as usize).div_ceil(WG_OUTER as usize)),
        cost,
    )
}

/// Prepares, per item, `factor = L = chol(K + ridge·I)` (lower; strict upper written 0),
/// `alpha = (K + ridge·I)⁻¹ y` and, when given, `quad = Σ_ij y_ij α_ij`, for `k`, `factor`
/// `[B × n × n]`, `y`, `alpha` `[B × n × r]` (n, r ≥ 1) and `quad` `[B × 1 × 1]`; `ridge_b =
/// ridge.abs + ridge.rel · tr(K_b)/n`. Only the lower triangle of `k` is read; `k` (and `y`) may be
/// broadcast. An item whose pivot is not positive and finite gets NaN factor, alpha and quad.
///
/// Returns two launches to run in order: the factorisation (one workgroup per item) and the
/// forward + back substitution (one workgroup per item, reading the factor). Two launches rather
/// than one fused kernel because the solve is then the very kernel of
/// [`cholesky_solve_factored`], which learns a failed item from its NaN factor.
#[allow(clippy::too_many_arguments)]
pub fn cholesky_solve(
    gpu: &Device,
    k: &Tensor,
    y: &Tensor,
    factor: &Tensor,
    alpha: &Tensor,
    quad: Option<&Tensor>,
    ridge: Ridge,
) -> Result<Vec<Dispatch>> {
    const OP: &str = "cholesky_solve";
    let mut ts = vec![
        ("k", k, Dim::N, Dim::N),
        ("y", y, Dim::N, Dim::R),
        ("factor", factor, Dim::N, Dim::N),
        ("alpha", alpha, Dim::N, Dim::R),
    ];
    ts.extend(quad.map(|q| ("quad", q, Dim::One, Dim::One)));
    let d = dims(OP, k, y, &ts)?;
    if !(ridge.abs.is_finite() && ridge.rel.is_finite()) {
        return Err(arg_err(OP, format!("ridge {ridge:?} must be finite")));
    }
    check_output(OP, "factor", factor)?;
    check_output(OP, "alpha", alpha)?;
    if let Some(q) = quad {
        check_output(OP, "quad", q)?;
    }
    let (batch, n, _) = d;
    // Binding 2 is unused by `factor`; k stands in (read-only, so it may alias anything read).
    let p = params(OP, d, ridge, &[("k", k), ("k", k), ("factor", factor)])?;
    let constants = [("WG", item_workgroup(n) as f64)];
    let (nf, bf) = (n as f64, batch as f64);
    let factor_launch = gpu.dispatch(
        &KernelSpec {
            shader: &SHADER,
            entry: "factor",
            constants: &constants,
            access: &ACCESS[..3],
        },
        &p,
        &[k, k, factor],
        grid_1d(batch),
        Cost {
            flops: bf * nf * nf * nf / 3.0,
            bytes: 4.0 * bf * (nf * nf / 2.0 + nf * nf),
        },
    )?;
    let solve = solve_launch(gpu, OP, d, factor, y, alpha, quad)?;
    Ok(vec![factor_launch, solve])
}

/// Prepares `x_b = (L_b L_bᵀ)⁻¹ b_b` with an existing lower factor `factor` `[B × n × n]` (only
/// its lower triangle is read; e.g. from [`cholesky_solve`], whose failed items solve to NaN),
/// for `b`, `x` `[B × n × r]`. A factor whose diagonal is not positive and finite gives NaN.
/// `factor` and `b` may be broadcast. One workgroup per item.
pub fn cholesky_solve_factored(
    gpu: &Device,
    factor: &Tensor,
    b: &Tensor,
    x: &Tensor,
) -> Result<Dispatch> {
    const OP: &str = "cholesky_solve_factored";
    let d = dims(
        OP,
        factor,
        b,
        &[
            ("factor", factor, Dim::N, Dim::N),
            ("b", b, Dim::N, Dim::R),
            ("x", x, Dim::N, Dim::R),
        ],
    )?;
    check_output(OP, "x", x)?;
    solve_launch(gpu, OP, d, factor, b, x, None)
}

/// Prepares the gradient of a loss ℓ through `alpha = (K + ridge·I)⁻¹ y` with respect to a
/// symmetric `K`, the ridge held constant: `w = (L Lᵀ)⁻¹ dalpha` into `w_scratch` `[B × n × r]`
/// (it is also `∂ℓ/∂y`), then `dk = −½ (w αᵀ + α wᵀ)` `[B × n × n]`, all n×n entries written
/// (see the module docs for the symmetric convention). `factor` and `alpha` come from
/// [`cholesky_solve`]. Returns the two launches, to run in order.
///
/// For `∂quad/∂K = −α αᵀ` skip the solve: [`cholesky_grad_outer`] with `a = w = alpha`.
pub fn cholesky_solve_backward(
    gpu: &Device,
    factor: &Tensor,
    alpha: &Tensor,
    dalpha: &Tensor,
    w_scratch: &Tensor,
    dk: &Tensor,
) -> Result<Vec<Dispatch>> {
    const OP: &str = "cholesky_solve_backward";
    let d = dims(
        OP,
        factor,
        alpha,
        &[
            ("factor", factor, Dim::N, Dim::N),
            ("alpha", alpha, Dim::N, Dim::R),
            ("dalpha", dalpha, Dim::N, Dim::R),
            ("w_scratch", w_scratch, Dim::N, Dim::R),
            ("dk", dk, Dim::N, Dim::N),
        ],
    )?;
    check_output(OP, "w_scratch", w_scratch)?;
    check_output(OP, "dk", dk)?;
    Ok(vec![
        solve_launch(gpu, OP, d, factor, dalpha, w_scratch, None)?,
        outer_launch(gpu, OP, d, alpha, w_scratch, dk)?,
    ])
}

/// Prepares `dk = −½ (w aᵀ + a wᵀ)` for `a`, `w` `[B × n × r]` and `dk` `[B × n × n]` (one
/// invocation per element of dk): the second launch of [`cholesky_solve_backward`], and on its
/// own `∂quad/∂K = −α αᵀ` with `a = w = alpha`.
pub fn cholesky_grad_outer(gpu: &Device, a: &Tensor, w: &Tensor, dk: &Tensor) -> Result<Dispatch> {
    const OP: &str = "cholesky_grad_outer";
    let d = dims(
        OP,
        dk,
        a,
        &[
            ("a", a, Dim::N, Dim::R),
            ("w", w, Dim::N, Dim::R),
            ("dk", dk, Dim::N, Dim::N),
        ],
    )?;
    check_output(OP, "dk", dk)?;
    outer_launch(gpu, OP, d, a, w, dk)
}

/// Positive and finite: the pivots the factorisation accepts.
fn good<T: Real>(d: T) -> bool {
    d > T::zero() && d.is_finite()
}

/// CPU twin of [`cholesky_solve`] on contiguous host data, any number of items: `k` holds
/// items of n·n values, `y` items of n·r. Returns `(factor, alpha, quad)` (`quad` one value per
/// item); a failed item's three outputs are NaN.
pub fn cholesky_solve_cpu<T: Real>(
    k: &[T],
    y: &[T],
    n: usize,
    r: usize,
    ridge: Ridge,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let nan = T::from_f64(f64::NAN);
    let mut factor = Vec::with_capacity(k.len());
    for kb in k.chunks(n * n) {
        let tr = (0..n).map(|i| kb[i * n + i]).sum::<T>();
        let rho = T::from_f64(ridge.abs as f64)
            + T::from_f64(ridge.rel as f64) * (tr / T::from_f64(n as f64));
        let mut l = vec![T::zero(); n * n];
        let mut ok = true;
        // Left-looking by column, as the shader: s = A_ij − Σ_{k<j} L_ik L_jk.
        for j in 0..n {
            for i in j..n {
                let mut s = kb[i * n + j];
                if i == j {
                    s += rho;
                }
                s = s - (0..j).map(|c| l[i * n + c] * l[j * n + c]).sum::<T>();
                if i == j {
                    ok &= good(s);
                    l[j * n + j] = s.sqrt();
                } else {
                    l[i * n + j] = s / l[j * n + j];
                }
            }
        }
        if !ok {
            l.iter_mut().for_each(|v| *v = nan);
        }
        factor.extend(l);
    }
    let alpha = cholesky_solve_factored_cpu(&factor, y, n, r);
    let quad = y
        .chunks(n * r)
        .zip(alpha.chunks(n * r))
        .map(|(y, a)| y.iter().zip(a).map(|(&u, &v)| u * v).sum::<T>())
        .collect();
    (factor, alpha, quad)
}

/// CPU twin of [`cholesky_solve_factored`]: `x = (L Lᵀ)⁻¹ b` per item (`factor` items of n·n,
/// lower triangle read; `b` items of n·r); NaN for an item whose diagonal is not positive finite.
pub fn cholesky_solve_factored_cpu<T: Real>(factor: &[T], b: &[T], n: usize, r: usize) -> Vec<T> {
    let mut x = b.to_vec();
    for (l, xb) in factor.chunks(n * n).zip(x.chunks_mut(n * r)) {
        if !(0..n).all(|i| good(l[i * n + i])) {
            xb.iter_mut().for_each(|v| *v = T::from_f64(f64::NAN));
            continue;
        }
        for c in 0..r {
            for i in 0..n {
                let s = (0..i).map(|k| l[i * n + k] * xb[k * r + c]).sum::<T>();
                xb[i * r + c] = (xb[i * r + c] - s) / l[i * n + i];
            }
            for i in (0..n).rev() {
                let s = (i + 1..n).map(|k| l[k * n + i] * xb[k * r + c]).sum::<T>();
                xb[i * r + c] = (xb[i * r + c] - s) / l[i * n + i];
            }
        }
    }
    x
}

/// CPU twin of [`cholesky_grad_outer`]: `dk = −½ (w aᵀ + a wᵀ)` per item (`a`, `w` items of n·r).
pub fn cholesky_grad_outer_cpu<T: Real>(a: &[T], w: &[T], n: usize, r: usize) -> Vec<T> {
    let half = T::from_f64(0.5);
    let mut dk = Vec::with_capacity(a.len() / r.max(1) * n);
    for (a, w) in a.chunks(n * r).zip(w.chunks(n * r)) {
        for i in 0..n {
            for j in 0..n {
                let s = (0..r)
                    .map(|c| w[i * r + c] * a[j * r + c] + a[i * r + c] * w[j * r + c])
                    .sum::<T>();
                dk.push(-(half * s));
            }
        }
    }
    dk
}

/// CPU twin of [`cholesky_solve_backward`]: returns `(w, dk)` with `w = (L Lᵀ)⁻¹ dalpha` and
/// `dk = −½ (w αᵀ + α wᵀ)` per item.
pub fn cholesky_solve_backward_cpu<T: Real>(
    factor: &[T],
    alpha: &[T],
    dalpha: &[T],
    n: usize,
    r: usize,
) -> (Vec<T>, Vec<T>) {
    let w = cholesky_solve_factored_cpu(factor, dalpha, n, r);
    let dk = cholesky_grad_outer_cpu(alpha, &w, n, r);
    (w, dk)
}
