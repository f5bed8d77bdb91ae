//! Native `shaders/cholesky.wgsl`: `factor`, `solve`, `solve_quad` and `outer`.
//!
//! Items run in parallel (one task per item, never split by thread count), each serially in a
//! fixed order, so the bits depend on the launch's shape only.
//!
//! The factorisation is right-looking by panels of 16 columns, so its inner loops are
//! elementwise `W_ik −= L_ij·L_kj` over contiguous rows: every entry subtracts its products one at
//! a time in increasing j, and the vectoriser can widen those loops without changing any bit. The
//! panel is transposed into a scratch (its column steps become contiguous loops over rows), and
//! the trailing update runs in 4-row × 16-column blocks held in registers across the panel's 16
//! columns (one load of the panel feeds four rows). The shader computes each entry as
//! `A_ij − Σ_k L_ik L_jk` instead: close, not bit-identical.
//!
//! The kernels are compiled once per x86 SIMD level (AVX-512, AVX2, baseline) and picked at run
//! time. Rust never reassociates or fuses float operations, so every level performs the same
//! operations in the same order and gives the same bits; the level only sets the vector width.

use rayon::prelude::*;

use super::Params;
use crate::gpu::error::Result;
use crate::native::{items, items_mut, Launch};

/// Lanes of the partial sums of the solve's dot products (fixed: part of the result's
/// definition).
const LANES: usize = 8;

/// Runs one launch of a cholesky entry point.
pub(crate) fn run(l: &mut Launch<'_>) -> Result<()> {
    let p: Params = l.params()?;
    match l.entry {
        "factor" => factor(l, &p),
        "solve" => solve(l, &p, false),
        "solve_quad" => solve(l, &p, true),
        "outer" => outer(l, &p),
        _ => Err(l.unknown_entry()),
    }
}

fn factor(l: &mut Launch<'_>, p: &Params) -> Result<()> {
    let (n, batch) = (p.n as usize, p.batch as usize);
    if n == 0 || batch == 0 {
        return Ok(());
    }
    let k = items(
        l.read(1)?,
        p.in1_off as usize,
        p.in1_stride as usize,
        n * n,
        batch,
    )?;
    let f = items_mut(
        l.write(3)?,
        p.out3_off as usize,
        p.out3_stride as usize,
        n * n,
        batch,
    )?;
    let (abs, rel) = (p.ridge_abs, p.ridge_rel);
    // Per-task scratch (see `factor_body`: reusing it across items changes no bit).
    let ld = n.div_ceil(simd::NB) * simd::NB;
    let rows = n.div_ceil(simd::MR) * simd::MR;
    k.into_par_iter().zip(f).for_each_init(
        || (vec![0.0f32; rows * ld], vec![0.0f32; simd::NB * ld]),
        |(w, c), (k, f)| simd::factor_item(k, f, n, abs, rel, w, c),
    );
    Ok(())
}

fn solve(l: &mut Launch<'_>, p: &Params, with_quad: bool) -> Result<()> {
    let (n, r, batch) = (p.n as usize, p.r as usize, p.batch as usize);
    if n == 0 || r == 0 || batch == 0 {
        return Ok(());
    }
    let f = items(
        l.read(1)?,
        p.in1_off as usize,
        p.in1_stride as usize,
        n * n,
        batch,
    )?;
    let b = items(
        l.read(2)?,
        p.in2_off as usize,
        p.in2_stride as usize,
        n * r,
        batch,
    )?;
    let x = items_mut(
        l.write(3)?,
        p.out3_off as usize,
        p.out3_stride as usize,
        n * r,
        batch,
    )?;
    let quads: Vec<Option<&mut [f32]>> = if with_quad {
        let q = l.write(4)?;
        items_mut(q, p.out4_off as usize, p.out4_stride as usize, 1, batch)?
            .into_iter()
            .map(Some)
            .collect()
    } else {
        (0..batch).map(|_| None).collect()
    };
    f.into_par_iter()
        .zip(b)
        .zip(x)
        .zip(quads)
        .for_each(|(((f, b), x), q)| {
            let quad = simd::solve_item(f, b, x, n, r);
            if let Some(q) = q {
                q[0] = quad;
            }
        });
    Ok(())
}

fn outer(l: &mut Launch<'_>, p: &Params) -> Result<()> {
    let (n, r, batch) = (p.n as usize, p.r as usize, p.batch as usize);
    if n == 0 || batch == 0 {
        return Ok(());
    }
    let a = items(
        l.read(1)?,
        p.in1_off as usize,
        p.in1_stride as usize,
        n * r,
        batch,
    )?;
    let w = items(
        l.read(2)?,
        p.in2_off as usize,
        p.in2_stride as usize,
        n * r,
        batch,
    )?;
    let dk = items_mut(
        l.write(3)?,
        p.out3_off as usize,
        p.out3_stride as usize,
        n * n,
        batch,
    )?;
    a.into_par_iter().zip(w).zip(dk).for_each_init(
        || vec![0.0f32; 2 * n * r],
        |cols, ((a, w), dk)| outer_item(a, w, dk, n, r, cols),
    );
    Ok(())
}

/// `dk = −½ (w aᵀ + a wᵀ)`, row by row: `cols` gets a and w column-major, so each row of dk is
/// built from contiguous vectors (r passes of a vectorised loop), each entry summing its r terms
/// in order. Entry (j, i) adds the same two products as (i, j), swapped, and float addition
/// commutes, so dk is exactly symmetric.
fn outer_item(a: &[f32], w: &[f32], dk: &mut [f32], n: usize, r: usize, cols: &mut [f32]) {
    let (at, wt) = cols.split_at_mut(n * r);
    for j in 0..n {
        for c in 0..r {
            at[c * n + j] = a[j * r + c];
            wt[c * n + j] = w[j * r + c];
        }
    }
    for (i, row) in dk.chunks_exact_mut(n).enumerate() {
        row.iter_mut().for_each(|v| *v = 0.0);
        for c in 0..r {
            let (wic, aic) = (w[i * r + c], a[i * r + c]);
            let (ac, wc) = (&at[c * n..(c + 1) * n], &wt[c * n..(c + 1) * n]);
            for ((o, &aj), &wj) in row.iter_mut().zip(ac).zip(wc) {
                *o += wic * aj + aic * wj;
            }
        }
        row.iter_mut().for_each(|v| *v *= -0.5);
    }
}

/// Positive and finite, as the shader's `good_pivot`.
fn good(d: f32) -> bool {
    d > 0.0 && d.is_finite()
}

/// The kernels, written once as `#[inline(always)]` bodies and instantiated per SIMD level.
mod simd {
    use super::{good, LANES};

    /// Lanes-wide partial sums of `a·b` (equal lengths), then a fixed pairwise tree over the lanes
    /// and the tail added last.
    #[inline(always)]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0.0f32; LANES];
        let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        let tail: f32 = ca
            .remainder()
            .iter()
            .zip(cb.remainder())
            .fold(0.0, |s, (&x, &y)| s + x * y);
        for (x, y) in ca.zip(cb) {
            for l in 0..LANES {
                acc[l] += x[l] * y[l];
            }
        }
        lanes_sum(acc) + tail
    }

    #[inline(always)]
    fn lanes_sum(a: [f32; LANES]) -> f32 {
        ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
    }

    /// Columns per panel of the right-looking factorisation, and the width of the trailing
    /// update's column chunks: panels start at multiples of NB, so chunks start at a panel edge.
    pub(super) const NB: usize = 16;
    /// Rows per trailing-update block: MR × NB accumulators (8 AVX or 4 AVX-512 registers)
    /// share each load of the panel.
    pub(super) const MR: usize = 4;

    /// `W[i0 + r][kc..kc + NB] -= Σ_q L_{i0+r, jb+q} · L_{kc.., jb+q}` for the MR rows, q ascending,
    /// each element `x -= l·y` unfused: elementwise, so any vector width gives the same bits.
    #[inline(always)]
    fn trailing_block(w: &mut [f32], ld: usize, c: &[f32], i0: usize, kc: usize, width: usize) {
        let mut acc = [[0.0f32; NB]; MR];
        for (r, a) in acc.iter_mut().enumerate() {
            a.copy_from_slice(&w[(i0 + r) * ld + kc..(i0 + r) * ld + kc + NB]);
        }
        for cq in c.chunks_exact(ld).take(width) {
            let y: &[f32; NB] = cq[kc..kc + NB].try_into().unwrap();
            let l: &[f32; MR] = cq[i0..i0 + MR].try_into().unwrap();
            for (a, &l) in acc.iter_mut().zip(l) {
                for (x, &y) in a.iter_mut().zip(y) {
                    *x -= l * y;
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            w[(i0 + r) * ld + kc..(i0 + r) * ld + kc + NB].copy_from_slice(a);
        }
    }

    /// Copies the lower part of panel columns `jb..jb + width` of `w` into `c` (transposed), or
    /// back when `!into`. Rows past the panel's top corner are whole NB-wide copies.
    #[inline(always)]
    fn transpose_panel(
        w: &mut [f32],
        c: &mut [f32],
        ld: usize,
        jb: usize,
        width: usize,
        n: usize,
        into: bool,
    ) {
        for i in jb..n {
            let m = width.min(i + 1 - jb);
            let wr = &mut w[i * ld + jb..i * ld + jb + m];
            for (q, x) in wr.iter_mut().enumerate() {
                let y = &mut c[q * ld + i];
                if into {
                    *y = *x
                } else {
                    *x = *y
                }
            }
        }
    }

    /// `f = chol(k + ridge·I)` for one item, right-looking by panels of NB columns; all NaN on
    /// a bad pivot. `w`: the working matrix, ⌈n/MR⌉·MR rows `ld = ⌈n/NB⌉·NB` apart; `c`: NB rows
    /// of `ld`, the current panel transposed (`c[q·ld + i] = L_{i, jb+q}`). What they hold on
    /// entry does not matter: the lower triangle of `w` is overwritten first, and anything else
    /// in either only reaches the upper triangle and padding of `w`, which are never read.
    #[inline(always)]
    fn factor_body(
        k: &[f32],
        f: &mut [f32],
        n: usize,
        abs: f32,
        rel: f32,
        w: &mut [f32],
        c: &mut [f32],
    ) {
        let ld = n.div_ceil(NB) * NB;
        let tr: f32 = (0..n).map(|i| k[i * n + i]).sum();
        let ridge = abs + rel * (tr / n as f32);
        for i in 0..n {
            let (src, dst) = (&k[i * n..(i + 1) * n], &mut w[i * ld..(i + 1) * ld]);
            dst[..=i].copy_from_slice(&src[..=i]);
            dst[i] += ridge;
        }
        let mut jb = 0;
        while jb < n {
            let je = (jb + NB).min(n);
            let width = je - jb;
            // The panel, transposed so every step below is a contiguous loop over rows i.
            transpose_panel(w, c, ld, jb, width, n, true);
            for q in 0..width {
                let j = jb + q;
                let (done, rest) = c.split_at_mut((q + 1) * ld);
                let cq = &mut done[q * ld..];
                let d = cq[j];
                if !good(d) {
                    f.iter_mut().for_each(|v| *v = f32::NAN);
                    return;
                }
                let ljj = d.sqrt();
                cq[j] = ljj;
                cq[j + 1..n].iter_mut().for_each(|v| *v /= ljj);
                // The rest of the panel: W_ik -= L_ij L_kj for j < k < je, i ≥ k.
                for q2 in q + 1..width {
                    let kk = jb + q2;
                    let m = cq[kk];
                    let dst = &mut rest[(q2 - q - 1) * ld..(q2 - q) * ld];
                    for (x, &l) in dst[kk..n].iter_mut().zip(&cq[kk..n]) {
                        *x -= l * m;
                    }
                }
            }
            transpose_panel(w, c, ld, jb, width, n, false);
            // The trailing matrix: W_ik -= L_ij L_kj for the panel's j in order, k ≥ je, in
            // MR × NB blocks (past a row's diagonal a block lands in its upper triangle or in the
            // padding rows, which nothing reads).
            let mut i0 = je;
            while i0 < n {
                let mut kc = je;
                while kc < (i0 + MR).min(n) {
                    trailing_block(w, ld, c, i0, kc, width);
                    kc += NB;
                }
                i0 += MR;
            }
            jb = je;
        }
        for (i, (out, row)) in f.chunks_exact_mut(n).zip(w.chunks_exact(ld)).enumerate() {
            out[..=i].copy_from_slice(&row[..=i]);
            out[i + 1..].iter_mut().for_each(|v| *v = 0.0);
        }
    }

    /// `x = (L Lᵀ)⁻¹ b` for one item; returns Σ b∘x. NaN when the diagonal is not positive finite.
    #[inline(always)]
    fn solve_body(l: &[f32], b: &[f32], x: &mut [f32], n: usize, r: usize) -> f32 {
        if !(0..n).all(|i| good(l[i * n + i])) {
            x.iter_mut().for_each(|v| *v = f32::NAN);
            return f32::NAN;
        }
        // One right-hand side at a time, contiguous: forward as dot products over rows of L,
        // backward as axpys along rows of L (column j of Lᵀ), both over contiguous prefixes.
        let mut z = vec![0.0f32; n];
        for c in 0..r {
            for i in 0..n {
                let li = &l[i * n..i * n + i];
                z[i] = (b[i * r + c] - dot(li, &z[..i])) / l[i * n + i];
            }
            for j in (0..n).rev() {
                let xj = z[j] / l[j * n + j];
                z[j] = xj;
                for (zi, &lji) in z[..j].iter_mut().zip(&l[j * n..j * n + j]) {
                    *zi -= lji * xj;
                }
            }
            for i in 0..n {
                x[i * r + c] = z[i];
            }
        }
        b.iter().zip(x.iter()).fold(0.0, |s, (&u, &v)| s + u * v)
    }

    /// Generates a dispatcher `$name` over the SIMD levels of one `#[inline(always)]` body.
    macro_rules! multiversion {
        ($name:ident, $body:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
            pub(super) fn $name($($arg: $ty),*) -> $ret {
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f")]
                    unsafe fn v4($($arg: $ty),*) -> $ret {
                        $body($($arg),*)
                    }
                    #[target_feature(enable = "avx2")]
                    unsafe fn v3($($arg: $ty),*) -> $ret {
                        $body($($arg),*)
                    }
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        // SAFETY: the CPU has the feature the function is compiled for.
                        return unsafe { v4($($arg),*) };
                    }
                    if std::arch::is_x86_feature_detected!("avx2") {
                        // SAFETY: as above.
                        return unsafe { v3($($arg),*) };
                    }
                }
                $body($($arg),*)
            }
        };
    }

    multiversion!(factor_item, factor_body, (k: &[f32], f: &mut [f32], n: usize, abs: f32, rel: f32, w: &mut [f32], c: &mut [f32]) -> ());
    multiversion!(solve_item, solve_body, (l: &[f32], b: &[f32], x: &mut [f32], n: usize, r: usize) -> f32);
}
