//! GEMM kernel vs its CPU twin on random shapes (odd sizes, batch 1, broadcasts, transposes,
//! every activation, bias, beta), plus shape errors.

mod common;

use hypermod::ops::gemm::{gemm, gemm_cpu, GemmOptions, GemmShape, GemmTile};
use hypermod::ops::Activation;
use rand::RngExt;

/// f32 unit roundoff.
const U: f64 = f32::EPSILON as f64 / 2.0;

#[test]
fn gemm_matches_cpu_twin_on_random_shapes() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(1);
    for case in 0..40 {
        let batch = if case % 5 == 0 {
            1
        } else {
            common::size(&mut rng, 1, 5)
        };
        let (m, n, k) = (
            common::size(&mut rng, 1, 70),
            common::size(&mut rng, 1, 70),
            common::size(&mut rng, 1, 70),
        );
        let opts = GemmOptions {
            trans_a: rng.random(),
            trans_b: rng.random(),
            alpha: [1.0, -0.5, 2.0][case % 3],
            beta: if case % 4 == 1 { 0.75 } else { 0.0 },
            activation: Activation::ALL[case % 3],
            tile: if case % 7 == 3 {
                Some(GemmTile {
                    wg_x: 4,
                    wg_y: 8,
                    bk: 3,
                })
            } else {
                None
            },
        };
        let share_a = case % 6 == 2;
        let share_b = case % 3 == 0;
        let with_bias = case % 2 == 1;
        // Host operands: broadcast ones are one item repeated.
        let a = common::data(&mut rng, batch, m * k, share_a);
        let b = common::data(&mut rng, batch, k * n, share_b);
        let bias = common::data(&mut rng, batch, n, false);
        let c0 = common::data(&mut rng, batch, m * n, false);
        let (ar, ac) = if opts.trans_a { (k, m) } else { (m, k) };
        let (br, bc) = if opts.trans_b { (n, k) } else { (k, n) };
        let ga = common::put(gpu, &a, batch, ar, ac, share_a);
        let gb = common::put(gpu, &b, batch, br, bc, share_b);
        let gbias = gpu.upload(&bias, batch, 1, n).unwrap();
        let gc = gpu.upload(&c0, batch, m, n).unwrap();
        let d = gemm(gpu, &ga, &gb, with_bias.then_some(&gbias), &gc, &opts).unwrap();
        gpu.run(&[&d]).unwrap();
        let got = gpu.read(&gc).unwrap();

        let shape = GemmShape { batch, m, n, k };
        let wide = |v: &[f32]| common::widen(v);
        let mut want = wide(&c0);
        let bias64 = wide(&bias);
        gemm_cpu(
            &wide(&a),
            &wide(&b),
            with_bias.then_some(&bias64[..]),
            &mut want,
            shape,
            &opts,
        );
        // Error bound: |fl(Σ a·b) − Σ a·b| ≤ γ_K Σ|a||b| (γ_K ≈ K·u), plus one rounding each for
        // alpha, beta·C and bias; activations are 1-Lipschitz so the bound carries through.
        let mut mag = wide(&c0).iter().map(|x| x.abs()).collect::<Vec<_>>();
        let abs = |v: &[f32]| v.iter().map(|x| x.abs() as f64).collect::<Vec<_>>();
        let mag_opts = GemmOptions {
            alpha: opts.alpha.abs(),
            beta: opts.beta.abs(),
            activation: Activation::Identity,
            ..opts
        };
        let bias_abs = abs(&bias);
        gemm_cpu(
            &abs(&a),
            &abs(&b),
            with_bias.then_some(&bias_abs[..]),
            &mut mag,
            shape,
            &mag_opts,
        );
        let ctx = format!("case {case}: batch {batch} M {m} N {n} K {k} {opts:?} shareA {share_a} shareB {share_b} bias {with_bias}");
        common::assert_close(
            &got,
            &want,
            |i| 2.0 * (k as f64 + 4.0) * U * mag[i] + 1e-7,
            &ctx,
        );
    }
}

#[test]
fn gemm_rejects_mismatched_shapes_with_named_shapes() {
    let gpu = gpu_or_skip!();
    let a = gpu.zeros(2, 3, 4).unwrap();
    let b = gpu.zeros(2, 5, 6).unwrap();
    let c = gpu.zeros(2, 3, 6).unwrap();
    let err = gemm(gpu, &a, &b, None, &c, &GemmOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("inner dimensions differ (4 vs 5)") && err.contains("[2×3×4]"),
        "{err}"
    );
    let b1 = gpu.zeros(3, 4, 6).unwrap();
    let err = gemm(gpu, &a, &b1, None, &c, &GemmOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("different batch sizes"), "{err}");
    let shared_c = gpu.zeros(1, 3, 6).unwrap().broadcast(2).unwrap();
    let b2 = gpu.zeros(2, 4, 6).unwrap();
    let err = gemm(gpu, &a, &b2, None, &shared_c, &GemmOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("overlap"), "{err}");
    let bad_alpha = GemmOptions {
        alpha: f32::NAN,
        ..Default::default()
    };
    assert!(gemm(gpu, &a, &b2, None, &c, &bad_alpha).is_err());
}

#[test]
fn tensor_past_binding_limit_is_a_clear_error() {
    let gpu = gpu_or_skip!();
    let limit = gpu.limits().max_storage_buffer_binding_size;
    let elems = (limit / 4 + 1) as usize;
    let err = gpu.zeros(1, 1, elems).unwrap_err().to_string();
    assert!(
        err.contains("max_storage_buffer_binding_size") && err.contains(&limit.to_string()),
        "{err}"
    );
}

#[test]
fn tile_table_picks_by_shape_and_covers_every_shape() {
    let t = |wg_x, wg_y| GemmTile { wg_x, wg_y, bk: 16 };
    // Each side independently: ≤ 32 → 8 invocations, larger → 16 (the goldens were pinned with
    // exactly these tiles; a new row must not move an existing shape by accident).
    for (m, n, want) in [
        (1, 1, t(8, 8)),
        (32, 32, t(8, 8)),
        (33, 32, t(8, 16)),
        (32, 33, t(16, 8)),
        (4096, 4096, t(16, 16)),
        (usize::MAX, usize::MAX, t(16, 16)),
    ] {
        assert_eq!(GemmTile::for_shape(m, n), want, "{m}×{n}");
    }
}

#[test]
fn batch_collapse_gives_the_bits_of_separate_items() {
    // A shared B and bias over packed A and C is launched as one [B·M × K] GEMM on wgpu; every
    // item must still get exactly the bits a batch-1 launch gives it.
    let gpu = gpu_or_skip!();
    let mut r = common::rng(31);
    // 6 × 7 = 42 collapsed rows get a different tile (M > 32) than 7 rows alone.
    let (batch, m, k, n) = (6, 7, 37, 45);
    let a = common::uniform(&mut r, batch * m * k);
    let b = common::uniform(&mut r, k * n);
    let bias = common::uniform(&mut r, n);
    let opts = GemmOptions {
        activation: Activation::Elu,
        ..GemmOptions::default()
    };
    let run = |a: &[f32], items: usize| {
        let at = gpu.upload(a, items, m, k).unwrap();
        let bt = gpu.upload(&b, 1, k, n).unwrap().broadcast(items).unwrap();
        let biast = gpu
            .upload(&bias, 1, 1, n)
            .unwrap()
            .broadcast(items)
            .unwrap();
        let c = gpu.zeros(items, m, n).unwrap();
        let d = gemm(gpu, &at, &bt, Some(&biast), &c, &opts).unwrap();
        gpu.run(&[&d]).unwrap();
        gpu.read(&c).unwrap()
    };
    let together = run(&a, batch);
    for i in 0..batch {
        let alone = run(&a[i * m * k..(i + 1) * m * k], 1);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&alone),
            bits(&together[i * m * n..(i + 1) * m * n]),
            "item {i}"
        );
    }
}
