//! Cholesky factor + solve, factored solve and backward vs their f64 CPU twins on random shapes
//! (n from 1 to 257 across workgroup-size edges, batch 1, r up to 3, absolute and relative
//! ridges, NaN-padded strided outputs, broadcast inputs, garbage above K's diagonal), the twin's
//! gradients vs central finite differences, per-item failure isolation, more items than one grid
//! dimension holds, shape errors, determinism, and (ignored) the native timing.

mod common;

use hypermod::gpu::{Device, Dispatch, Tensor};
use hypermod::ops::cholesky::{
    cholesky_grad_outer, cholesky_grad_outer_cpu, cholesky_solve, cholesky_solve_backward,
    cholesky_solve_backward_cpu, cholesky_solve_cpu, cholesky_solve_factored,
    cholesky_solve_factored_cpu, Ridge,
};
use rand::rngs::ChaCha8Rng;

/// f32 unit roundoff.
const U: f64 = f32::EPSILON as f64 / 2.0;

/// Matrix orders across the workgroup edges (64 and 256 invocations, one row each).
const ORDERS: [usize; 9] = [1, 2, 7, 33, 64, 65, 129, 200, 257];

/// One SPD item `K = A Aᵀ/n + δ I` (A uniform in [-1, 1), exact in f64, then rounded once), so
/// λ_min ≥ δ. Returned with the rigorous condition bound `(‖K‖_∞ + ρ)/(δ + ρ)` for ridge ρ ≥ 0
/// (λ_max ≤ ‖K‖_∞ for a symmetric matrix). With `junk_upper` the strict upper triangle is
/// replaced by NaN: the kernels must read the lower triangle only.
fn spd(rng: &mut ChaCha8Rng, n: usize, delta: f64, junk_upper: bool) -> Vec<f32> {
    let a = common::widen(&common::uniform(rng, n * n));
    let mut k = vec![0.0f32; n * n];
    for i in 0..n {
        for j in 0..n {
            let s: f64 = (0..n).map(|c| a[i * n + c] * a[j * n + c]).sum();
            let v = s / n as f64 + if i == j { delta } else { 0.0 };
            k[i * n + j] = if junk_upper && j > i {
                f32::NAN
            } else {
                v as f32
            };
        }
    }
    k
}

/// The condition bound of one item of `spd` (lower triangle read) with ridge ρ.
fn cond_bound(k: &[f32], n: usize, delta: f64, rho: f64) -> f64 {
    let at = |i: usize, j: usize| k[i.max(j) * n + i.min(j)] as f64;
    let norm_inf = (0..n)
        .map(|i| (0..n).map(|j| at(i, j).abs()).sum::<f64>())
        .fold(0.0, f64::max);
    (norm_inf + rho) / (delta + rho)
}

/// Relative error bound of Cholesky solves in f32: the computed factor satisfies
/// L̃L̃ᵀ = A + ΔA and the computed solution (A + ΔA')x̃ = b with |ΔA|, |ΔA'| ≤ γ_{3n+1}|L̃||L̃ᵀ|
/// (Higham, Accuracy and Stability, Thm 10.3/10.4), and ‖|L||Lᵀ|‖₂ ≤ n‖A‖₂ in the worst case but
/// ≈ ‖A‖₂ for these well-conditioned matrices; so ‖Δx‖/‖x‖ ≲ κ·(3n + 1)·u, and the factor's
/// first-order perturbation bound (Sun 1991) is of the same form, ‖ΔL‖/‖L‖ ≲ κ·‖ΔA‖/‖A‖. Factor 4
/// of slack for the trace/ridge rounding, the f32 ridge and fused multiply-adds on the GPU.
fn rel_bound(n: usize, cond: f64) -> f64 {
    4.0 * (3.0 * n as f64 + 1.0) * U * cond
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// Per-item normwise tolerance: `rel[item] · max |want of that item|`.
fn item_tol(want: &[f64], per_item: usize, rel: &[f64]) -> Vec<f64> {
    want.chunks(per_item)
        .zip(rel)
        .flat_map(|(w, &r)| std::iter::repeat_n(r * max_abs(w), w.len()))
        .collect()
}

fn nan_out(gpu: &Device, batch: usize, rows: usize, cols: usize) -> Tensor {
    common::padded(gpu, &vec![f32::NAN; batch * rows * cols], batch, rows, cols)
}

fn run(gpu: &Device, ds: &[Dispatch]) {
    gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
}

#[test]
fn cholesky_solve_matches_f64_twin_on_random_shapes() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(71);
    for case in 0..26 {
        let n = match ORDERS.get(case) {
            Some(&n) => n,
            None => 2 * common::size(&mut rng, 0, 70) + 1,
        };
        let batch = match case % 4 {
            0 => 1,
            _ if n > 128 => common::size(&mut rng, 2, 3),
            _ => common::size(&mut rng, 2, 6),
        };
        let r = common::size(&mut rng, 1, 3);
        let ridge = match case % 3 {
            0 => Ridge { abs: 0.0, rel: 0.0 },
            1 => Ridge {
                abs: 0.01,
                rel: 0.0,
            },
            _ => Ridge {
                abs: 0.02,
                rel: 0.05,
            },
        };
        let shared_k = case % 5 == 2;
        let delta = 0.05;
        let ctx = format!("case {case} [{batch}×{n}×{n}] r {r} {ridge:?} shared K {shared_k}");
        let k: Vec<f32> = if shared_k {
            common::repeat(&spd(&mut rng, n, delta, case % 2 == 0), batch)
        } else {
            (0..batch)
                .flat_map(|_| spd(&mut rng, n, delta, case % 2 == 0))
                .collect()
        };
        let y = common::data(&mut rng, batch, n * r, case % 7 == 3);
        let (want_l, want_a, want_q) =
            cholesky_solve_cpu(&common::widen(&k), &common::widen(&y), n, r, ridge);
        // assert_close accepts NaN = NaN; SPD items must not fail in the twin.
        assert!(want_a.iter().chain(&want_q).all(|v| v.is_finite()), "{ctx}");

        let kt = if shared_k || case % 2 == 0 {
            common::put(gpu, &k, batch, n, n, shared_k)
        } else {
            common::padded(gpu, &k, batch, n, n)
        };
        let yt = common::put(gpu, &y, batch, n, r, case % 7 == 3);
        let (lt, at, qt) = (
            nan_out(gpu, batch, n, n),
            nan_out(gpu, batch, n, r),
            nan_out(gpu, batch, 1, 1),
        );
        run(
            gpu,
            &cholesky_solve(gpu, &kt, &yt, &lt, &at, Some(&qt), ridge).unwrap(),
        );

        let rel: Vec<f64> = k
            .chunks(n * n)
            .map(|kb| {
                let tr: f64 = (0..n).map(|i| kb[i * n + i] as f64).sum();
                let rho = ridge.abs as f64 + ridge.rel as f64 * tr / n as f64;
                rel_bound(n, cond_bound(kb, n, delta, rho))
            })
            .collect();
        let tol_l = item_tol(&want_l, n * n, &rel);
        common::assert_close(&gpu.read(&lt).unwrap(), &want_l, |i| tol_l[i], &ctx);
        let tol_a = item_tol(&want_a, n * r, &rel);
        common::assert_close(&gpu.read(&at).unwrap(), &want_a, |i| tol_a[i], &ctx);
        // quad = Σ y∘α: each |Δα_ij| ≤ tol_a plus the f32 sum of n·r products (≤ n·r·u·Σ|y∘α|).
        let yw = common::widen(&y);
        let tol_q: Vec<f64> = (0..batch)
            .map(|b| {
                let (ys, aa) = (&yw[b * n * r..(b + 1) * n * r], &want_a[b * n * r..]);
                let sy: f64 = ys.iter().map(|v| v.abs()).sum();
                let sya: f64 = ys.iter().zip(aa).map(|(u, v)| (u * v).abs()).sum();
                sy * tol_a[b * n * r] + 2.0 * (n * r) as f64 * U * sya
            })
            .collect();
        common::assert_close(&gpu.read(&qt).unwrap(), &want_q, |i| tol_q[i], &ctx);
        for t in [&lt, &at, &qt] {
            common::assert_gaps_untouched(gpu, t, &ctx);
        }
        if case % 2 == 1 {
            // Without quad: the same factor and alpha, bit for bit.
            let (l2, a2) = (
                gpu.zeros(batch, n, n).unwrap(),
                gpu.zeros(batch, n, r).unwrap(),
            );
            run(
                gpu,
                &cholesky_solve(gpu, &kt, &yt, &l2, &a2, None, ridge).unwrap(),
            );
            assert_eq!(bits(gpu, &l2), bits(gpu, &lt), "{ctx}: factor without quad");
            assert_eq!(bits(gpu, &a2), bits(gpu, &at), "{ctx}: alpha without quad");
        }
    }
}

/// The bits of a tensor's logical elements.
fn bits(gpu: &Device, t: &Tensor) -> Vec<u32> {
    gpu.read(t).unwrap().iter().map(|v| v.to_bits()).collect()
}

/// Factors of random SPD items, rounded to f32 (what a caller holds), and their condition bounds.
fn factors(rng: &mut ChaCha8Rng, batch: usize, n: usize, delta: f64) -> (Vec<f32>, Vec<f64>) {
    let k: Vec<f32> = (0..batch).flat_map(|_| spd(rng, n, delta, false)).collect();
    let (l, _, _) = cholesky_solve_cpu(
        &common::widen(&k),
        &vec![0.0; batch * n],
        n,
        1,
        Ridge::default(),
    );
    let cond = k
        .chunks(n * n)
        .map(|kb| cond_bound(kb, n, delta, 0.0))
        .collect();
    (l.iter().map(|&v| v as f32).collect(), cond)
}

#[test]
fn cholesky_factored_solve_and_backward_match_twin() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(72);
    for case in 0..22 {
        let n = match ORDERS.get(case) {
            Some(&n) => n,
            None => common::size(&mut rng, 1, 140),
        };
        let batch = if case % 4 == 0 {
            1
        } else {
            common::size(&mut rng, 2, if n > 128 { 3 } else { 5 })
        };
        let r = common::size(&mut rng, 1, 3);
        let ctx = format!("case {case} [{batch}×{n}×{n}] r {r}");
        let shared_l = case % 5 == 1;
        let (l, cond) = if shared_l {
            let (l, c) = factors(&mut rng, 1, n, 0.05);
            (common::repeat(&l, batch), vec![c[0]; batch])
        } else {
            factors(&mut rng, batch, n, 0.05)
        };
        let lw = common::widen(&l);
        let rel: Vec<f64> = cond.iter().map(|&c| rel_bound(n, c)).collect();
        let lt = common::put(gpu, &l, batch, n, n, shared_l);

        // Factored solve (b strided and NaN-padded around its items).
        let b = common::uniform(&mut rng, batch * n * r);
        let want_x = cholesky_solve_factored_cpu(&lw, &common::widen(&b), n, r);
        let bt = common::padded(gpu, &b, batch, n, r);
        let xt = nan_out(gpu, batch, n, r);
        run(gpu, &[cholesky_solve_factored(gpu, &lt, &bt, &xt).unwrap()]);
        let tol_x = item_tol(&want_x, n * r, &rel);
        common::assert_close(&gpu.read(&xt).unwrap(), &want_x, |i| tol_x[i], &ctx);
        common::assert_gaps_untouched(gpu, &xt, &ctx);

        // Backward: w as the solve; dk = −½(wαᵀ + αwᵀ) inherits |Δw| ≤ tol_w: per entry
        // ≤ r·max|α|·tol_w (2r terms, halved), plus the roundings of the sum of 2r products,
        // ≤ γ_{2r+1}·½Σ(|wα| + |αw|) ≤ (2r + 1)·r·u·max|w|·max|α|.
        let alpha = common::uniform(&mut rng, batch * n * r);
        let dalpha = common::uniform(&mut rng, batch * n * r);
        let (aw, dw) = (common::widen(&alpha), common::widen(&dalpha));
        let (want_w, want_dk) = cholesky_solve_backward_cpu(&lw, &aw, &dw, n, r);
        let at = common::padded(gpu, &alpha, batch, n, r);
        let dat = gpu.upload(&dalpha, batch, n, r).unwrap();
        let (wt, dkt) = (nan_out(gpu, batch, n, r), nan_out(gpu, batch, n, n));
        run(
            gpu,
            &cholesky_solve_backward(gpu, &lt, &at, &dat, &wt, &dkt).unwrap(),
        );
        let tol_w = item_tol(&want_w, n * r, &rel);
        common::assert_close(&gpu.read(&wt).unwrap(), &want_w, |i| tol_w[i], &ctx);
        let tol_dk: Vec<f64> = (0..batch)
            .flat_map(|b| {
                let s = b * n * r..(b + 1) * n * r;
                let (ma, mw) = (max_abs(&aw[s.clone()]), max_abs(&want_w[s]));
                let rf = r as f64;
                let t = rf * ma * tol_w[b * n * r] + (2.0 * rf + 1.0) * rf * U * ma * mw;
                std::iter::repeat_n(t, n * n)
            })
            .collect();
        common::assert_close(&gpu.read(&dkt).unwrap(), &want_dk, |i| tol_dk[i], &ctx);
        common::assert_gaps_untouched(gpu, &wt, &ctx);
        common::assert_gaps_untouched(gpu, &dkt, &ctx);

        // The outer product alone (∂quad/∂K = −ααᵀ with a = w = α), against exact f64.
        let qt = nan_out(gpu, batch, n, n);
        run(gpu, &[cholesky_grad_outer(gpu, &at, &at, &qt).unwrap()]);
        let want_q = cholesky_grad_outer_cpu(&aw, &aw, n, r);
        // Entries of α are ≤ 1: |Δ| ≤ γ_{2r+1}·½Σ_c 2|α_ic α_jc| ≤ (2r + 1)·r·u.
        let tol = (2.0 * r as f64 + 1.1) * r as f64 * U;
        common::assert_close(&gpu.read(&qt).unwrap(), &want_q, |_| tol, &ctx);
    }
}

/// `f(K)` for a finite-difference probe of the twin: the loss as a function of the lower
/// triangle (the kernels read no other entry).
fn alpha_of(k: &[f64], y: &[f64], n: usize, r: usize, ridge: Ridge) -> Vec<f64> {
    cholesky_solve_cpu(k, y, n, r, ridge).1
}

#[test]
fn cholesky_twin_gradients_match_finite_differences() {
    let mut rng = common::rng(73);
    for &(n, r) in &[(1, 1), (3, 2), (6, 1), (9, 3)] {
        let k = common::widen(&spd(&mut rng, n, 0.3, false));
        let y = common::widen(&common::uniform(&mut rng, n * r));
        let c = common::widen(&common::uniform(&mut rng, n * r));
        // The ridge is a stop-gradient constant; rel = 0 so the finite differences do not see
        // it move with tr K.
        let ridge = Ridge { abs: 0.1, rel: 0.0 };
        let (l, alpha, quad) = cholesky_solve_cpu(&k, &y, n, r, ridge);
        let lin = |a: &[f64]| a.iter().zip(&c).map(|(u, v)| u * v).sum::<f64>();
        let (w, dk) = cholesky_solve_backward_cpu(&l, &alpha, &c, n, r);
        // The symmetric convention: dk symmetric, and a lower entry K_ij (i > j) stands for both
        // K_ij and K_ji, so ∂ℓ/∂K_ij(lower storage) = 2 dk_ij below the diagonal, dk_ii on it.
        let lower: Vec<usize> = (0..n)
            .flat_map(|i| (0..=i).map(move |j| i * n + j))
            .collect();
        let as_lower = |g: &[f64]| -> Vec<f64> {
            lower
                .iter()
                .map(|&e| if e / n == e % n { g[e] } else { 2.0 * g[e] })
                .collect()
        };
        for i in 0..n {
            for j in 0..n {
                assert_eq!(dk[i * n + j], dk[j * n + i], "n {n}: dk symmetric");
            }
        }
        let probe = |f: &dyn Fn(&[f64]) -> f64| {
            let base: Vec<f64> = lower.iter().map(|&e| k[e]).collect();
            common::fd(1e-5, &base, |p| {
                let mut kk = k.clone();
                for (&e, &v) in lower.iter().zip(p) {
                    kk[e] = v;
                }
                f(&kk)
            })
        };
        let fd_lin = probe(&|kk| lin(&alpha_of(kk, &y, n, r, ridge)));
        common::assert_fd(&format!("n {n} r {r}: ∂(c·α)/∂K"), &as_lower(&dk), &fd_lin);
        // quad: ∂quad/∂K = −ααᵀ, the outer kernel with a = w = α.
        let dq = cholesky_grad_outer_cpu(&alpha, &alpha, n, r);
        let fd_q = probe(&|kk| cholesky_solve_cpu(kk, &y, n, r, ridge).2[0]);
        common::assert_fd(&format!("n {n} r {r}: ∂quad/∂K"), &as_lower(&dq), &fd_q);
        for (a, b) in dq.iter().zip(&dk) {
            assert!(a.is_finite() && b.is_finite());
        }
        // ∂(c·α)/∂y = w and ∂quad/∂y = 2α.
        let fd_y = common::fd(1e-5, &y, |yy| lin(&alpha_of(&k, yy, n, r, ridge)));
        common::assert_fd(&format!("n {n} r {r}: ∂(c·α)/∂y"), &w, &fd_y);
        let fd_qy = common::fd(1e-5, &y, |yy| cholesky_solve_cpu(&k, yy, n, r, ridge).2[0]);
        let two_alpha: Vec<f64> = alpha.iter().map(|a| 2.0 * a).collect();
        common::assert_fd(&format!("n {n} r {r}: ∂quad/∂y"), &two_alpha, &fd_qy);
        assert!(quad[0] > 0.0, "quad of an SPD system is positive");
    }
}

#[test]
fn cholesky_failed_item_is_nan_and_isolated() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(74);
    for &n in &[2, 33, 70] {
        let r = 2;
        let good = |rng: &mut ChaCha8Rng| spd(rng, n, 0.05, false);
        let mut items: Vec<Vec<f32>> = Vec::new();
        let mut fails = Vec::new();
        for kind in 0..8 {
            let mut k = good(&mut rng);
            let fail = kind % 2 == 1;
            match kind {
                1 => (0..n).for_each(|i| k[i * n + i] = -k[i * n + i]), // negative diagonal
                3 => k[(n - 1) * n] = f32::NAN,                         // NaN below the diagonal
                5 => k[(n - 1) * n + n - 1] = f32::INFINITY,            // ∞ pivot
                7 => {
                    // Positive diagonal, indefinite: the second pivot is 1 − 4 < 0.
                    k.iter_mut().for_each(|v| *v = 0.0);
                    (0..n).for_each(|i| k[i * n + i] = 1.0);
                    k[n] = 2.0;
                }
                _ => {}
            }
            items.push(k);
            fails.push(fail);
        }
        let batch = items.len();
        let k: Vec<f32> = items.concat();
        let y = common::uniform(&mut rng, batch * n * r);
        let ridge = Ridge { abs: 0.0, rel: 0.0 };
        let ctx = format!("n {n}");
        let kt = gpu.upload(&k, batch, n, n).unwrap();
        let yt = gpu.upload(&y, batch, n, r).unwrap();
        let (lt, at, qt) = (
            gpu.zeros(batch, n, n).unwrap(),
            gpu.zeros(batch, n, r).unwrap(),
            gpu.zeros(batch, 1, 1).unwrap(),
        );
        run(
            gpu,
            &cholesky_solve(gpu, &kt, &yt, &lt, &at, Some(&qt), ridge).unwrap(),
        );
        let (l, a, q) = (
            gpu.read(&lt).unwrap(),
            gpu.read(&at).unwrap(),
            gpu.read(&qt).unwrap(),
        );
        let (want_l, want_a, want_q) =
            cholesky_solve_cpu(&common::widen(&k), &common::widen(&y), n, r, ridge);
        // The factored solve with the failed factors: NaN there too.
        let xt = gpu.zeros(batch, n, r).unwrap();
        run(gpu, &[cholesky_solve_factored(gpu, &lt, &yt, &xt).unwrap()]);
        let x = gpu.read(&xt).unwrap();
        for (b, &fail) in fails.iter().enumerate() {
            let (ls, rs) = (b * n * n..(b + 1) * n * n, b * n * r..(b + 1) * n * r);
            if fail {
                assert!(q[b].is_nan() && want_q[b].is_nan(), "{ctx} item {b}: quad");
                for v in a[rs.clone()].iter().chain(&l[ls.clone()]).chain(&x[rs]) {
                    assert!(v.is_nan(), "{ctx} item {b}: {v} where NaN is due");
                }
                assert!(want_a[b * n * r].is_nan() && want_l[b * n * n].is_nan());
                continue;
            }
            // A good item: the bits it gets alone, and the twin's values.
            let one = |t: &[f32], len: usize| gpu.upload(&t[b * len..(b + 1) * len], 1, n, len / n);
            let (k1, y1) = (one(&k, n * n).unwrap(), one(&y, n * r).unwrap());
            let (l1, a1, q1) = (
                gpu.zeros(1, n, n).unwrap(),
                gpu.zeros(1, n, r).unwrap(),
                gpu.zeros(1, 1, 1).unwrap(),
            );
            run(
                gpu,
                &cholesky_solve(gpu, &k1, &y1, &l1, &a1, Some(&q1), ridge).unwrap(),
            );
            let to_bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                to_bits(&l[ls.clone()]),
                bits(gpu, &l1),
                "{ctx} item {b}: factor"
            );
            assert_eq!(
                to_bits(&a[rs.clone()]),
                bits(gpu, &a1),
                "{ctx} item {b}: alpha"
            );
            assert_eq!(q[b].to_bits(), bits(gpu, &q1)[0], "{ctx} item {b}: quad");
            let kb = &k[ls.clone()];
            let tol = rel_bound(n, cond_bound(kb, n, 0.05, 0.0)) * max_abs(&want_a[rs.clone()]);
            common::assert_close(&a[rs.clone()], &want_a[rs], |_| tol, &ctx);
        }
    }
}

#[test]
fn cholesky_more_items_than_one_grid_dimension() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(75);
    let (batch, n, r) = (65_600, 2, 1);
    // Diagonally dominant 2×2 items [[3 + u, v], [v, 3 + w]], |u|, |v|, |w| < 1: by Gershgorin
    // λ ∈ (1, 5), so κ < 5 and |α| < √2.
    let mut k = common::uniform(&mut rng, batch * n * n);
    for kb in k.chunks_mut(4) {
        kb[0] += 3.0;
        kb[2] = kb[1];
        kb[3] += 3.0;
    }
    let y = common::uniform(&mut rng, batch * n * r);
    let ridge = Ridge { abs: 0.0, rel: 0.1 };
    let (kt, yt) = (
        gpu.upload(&k, batch, n, n).unwrap(),
        gpu.upload(&y, batch, n, r).unwrap(),
    );
    let (lt, at) = (
        gpu.zeros(batch, n, n).unwrap(),
        gpu.zeros(batch, n, r).unwrap(),
    );
    let ds = cholesky_solve(gpu, &kt, &yt, &lt, &at, None, ridge).unwrap();
    assert!(ds[0].workgroups()[1] > 1, "{:?}", ds[0].workgroups());
    run(gpu, &ds);
    let (_, want, _) = cholesky_solve_cpu(&common::widen(&k), &common::widen(&y), n, r, ridge);
    // rel_bound(2, 5) ≈ 140u relative, on values below √2.
    let tol = rel_bound(n, 5.0) * 1.5;
    common::assert_close(&gpu.read(&at).unwrap(), &want, |_| tol, "65600 items");
}

#[test]
fn cholesky_launches_are_deterministic() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(76);
    let (batch, n, r) = (3, 129, 2);
    let k: Vec<f32> = (0..batch)
        .flat_map(|_| spd(&mut rng, n, 0.05, false))
        .collect();
    let y = common::uniform(&mut rng, batch * n * r);
    let kt = gpu.upload(&k, batch, n, n).unwrap();
    let yt = gpu.upload(&y, batch, n, r).unwrap();
    let ridge = Ridge {
        abs: 0.01,
        rel: 0.01,
    };
    let once = || {
        let (lt, at, qt) = (
            gpu.zeros(batch, n, n).unwrap(),
            gpu.zeros(batch, n, r).unwrap(),
            gpu.zeros(batch, 1, 1).unwrap(),
        );
        run(
            gpu,
            &cholesky_solve(gpu, &kt, &yt, &lt, &at, Some(&qt), ridge).unwrap(),
        );
        let (wt, dkt) = (
            gpu.zeros(batch, n, r).unwrap(),
            gpu.zeros(batch, n, n).unwrap(),
        );
        run(
            gpu,
            &cholesky_solve_backward(gpu, &lt, &at, &yt, &wt, &dkt).unwrap(),
        );
        [&lt, &at, &qt, &wt, &dkt].map(|t| bits(gpu, t))
    };
    assert_eq!(once(), once());
}

/// The native backend partitions by item only: 1, 2 or 3 threads give the same bits, and an
/// item inside a batch gets the bits it gets alone (checked on every device by the failure test).
#[test]
fn cholesky_native_bits_do_not_depend_on_threads() {
    let mut rng = common::rng(78);
    let (batch, n, r) = (5, 70, 2);
    let k: Vec<f32> = (0..batch)
        .flat_map(|_| spd(&mut rng, n, 0.05, false))
        .collect();
    let y = common::uniform(&mut rng, batch * n * r);
    let ridge = Ridge {
        abs: 0.01,
        rel: 0.02,
    };
    let outputs = |threads: usize| {
        let gpu = Device::native(Some(threads)).unwrap();
        let kt = gpu.upload(&k, batch, n, n).unwrap();
        let yt = gpu.upload(&y, batch, n, r).unwrap();
        let z = |c| gpu.zeros(batch, n, c).unwrap();
        let (lt, at, qt, wt, dkt) = (z(n), z(r), gpu.zeros(batch, 1, 1).unwrap(), z(r), z(n));
        run(
            &gpu,
            &cholesky_solve(&gpu, &kt, &yt, &lt, &at, Some(&qt), ridge).unwrap(),
        );
        run(
            &gpu,
            &cholesky_solve_backward(&gpu, &lt, &at, &yt, &wt, &dkt).unwrap(),
        );
        [&lt, &at, &qt, &wt, &dkt].map(|t| bits(&gpu, t))
    };
    let one = outputs(1);
    assert_eq!(one, outputs(2));
    assert_eq!(one, outputs(3));
}

#[test]
fn cholesky_rejects_bad_shapes_naming_them() {
    let gpu = gpu_or_skip!();
    let z = |b, r, c| gpu.zeros(b, r, c).unwrap();
    let (k, y, l, a, q) = (z(2, 4, 4), z(2, 4, 3), z(2, 4, 4), z(2, 4, 3), z(2, 1, 1));
    let none = Ridge::default();
    let err = |e: Result<Vec<Dispatch>, hypermod::gpu::DeviceError>| e.unwrap_err().to_string();
    let e = err(cholesky_solve(gpu, &z(2, 4, 5), &y, &l, &a, Some(&q), none));
    assert!(e.contains("[2×4×5]") && e.contains("k "), "{e}");
    let e = err(cholesky_solve(gpu, &k, &z(2, 5, 3), &l, &a, None, none));
    assert!(e.contains("[2×5×3]"), "{e}");
    let e = err(cholesky_solve(gpu, &k, &y, &l, &z(2, 4, 2), None, none));
    assert!(e.contains("[2×4×2]") && e.contains("alpha"), "{e}");
    let e = err(cholesky_solve(gpu, &k, &y, &z(2, 3, 3), &a, None, none));
    assert!(e.contains("[2×3×3]"), "{e}");
    let e = err(cholesky_solve(gpu, &k, &y, &l, &a, Some(&z(2, 1, 2)), none));
    assert!(e.contains("[2×1×2]") && e.contains("quad"), "{e}");
    let e = err(cholesky_solve(gpu, &k, &y, &l, &a, Some(&z(3, 1, 1)), none));
    assert!(e.contains("batch"), "{e}");
    let e = err(cholesky_solve(
        gpu,
        &k,
        &z(2, 4, 0),
        &l,
        &z(2, 4, 0),
        None,
        none,
    ));
    assert!(e.contains("r ≥ 1"), "{e}");
    let shared = z(1, 4, 4).broadcast(2).unwrap();
    let e = err(cholesky_solve(gpu, &k, &y, &shared, &a, None, none));
    assert!(e.contains("factor") && e.contains("overlap"), "{e}");
    let bad_ridge = Ridge {
        abs: f32::NAN,
        rel: 0.0,
    };
    assert!(cholesky_solve(gpu, &k, &y, &l, &a, None, bad_ridge).is_err());
    // Operands written by a launch may not share a buffer with another operand.
    assert!(cholesky_solve(gpu, &k, &y, &l, &y, None, none).is_err());

    let e = cholesky_solve_factored(gpu, &l, &y, &z(2, 3, 3))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[2×3×3]") && e.contains("x "), "{e}");
    let e = cholesky_solve_factored(gpu, &z(2, 4, 3), &y, &a)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[2×4×3]"), "{e}");
    let e = err(cholesky_solve_backward(
        gpu,
        &l,
        &a,
        &y,
        &z(2, 4, 3),
        &z(2, 4, 3),
    ));
    assert!(e.contains("dk") && e.contains("[2×4×3]"), "{e}");
    let e = err(cholesky_solve_backward(
        gpu,
        &l,
        &a,
        &z(1, 4, 3),
        &z(2, 4, 3),
        &l,
    ));
    assert!(e.contains("batch"), "{e}");
    let e = cholesky_grad_outer(gpu, &a, &z(2, 4, 2), &l)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[2×4×2]"), "{e}");
}
