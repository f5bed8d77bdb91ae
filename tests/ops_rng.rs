//! Random fills: Philox known answers, GPU bit-identical to the CPU twin on views with offsets and
//! strides (shared and per-item keying), item b of a per-item fill equal to the standalone fill
//! with its seed, key sensitivity, `set_stream`, seed-count errors, and the statistics of each
//! distribution.

mod common;

use hypermod::gpu::DeviceError;
use hypermod::gpu::{Device, Tensor};
use hypermod::ops::rng::{
    fill_cpu, fill_normal, fill_per_item_cpu, fill_truncated_normal, fill_uniform, normal_icdf,
    philox4x32_10, random_bits, Distribution, ItemSeeds, Keying, RngDispatch, RngKey,
};
use rand::RngExt;

const DISTS: [Distribution; 3] = [
    Distribution::Uniform,
    Distribution::Normal,
    Distribution::TruncatedNormal,
];

fn prepare<'k>(
    gpu: &Device,
    dist: Distribution,
    t: &Tensor,
    key: impl Into<Keying<'k>>,
    p0: f32,
    p1: f32,
) -> RngDispatch {
    match dist {
        Distribution::Uniform => fill_uniform(gpu, t, key, p0, p1),
        Distribution::Normal => fill_normal(gpu, t, key, p0, p1),
        Distribution::TruncatedNormal => fill_truncated_normal(gpu, t, key, p0, p1),
    }
    .unwrap()
}

fn run_fill<'k>(
    gpu: &Device,
    dist: Distribution,
    t: &Tensor,
    key: impl Into<Keying<'k>>,
    p0: f32,
    p1: f32,
) -> Vec<f32> {
    let d = prepare(gpu, dist, t, key, p0, p1);
    gpu.run(&[d.dispatch()]).unwrap();
    gpu.read(t).unwrap()
}

fn assert_bitwise(got: &[f32], want: &[f32], ctx: &str) {
    assert_eq!(got.len(), want.len(), "{ctx}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{ctx}: element {i}: GPU {g} ({:#010x}) != CPU {w} ({:#010x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

#[test]
fn philox_matches_random123_known_answers() {
    // Random123 kat_vectors: counter (4 words), key (2 words) → output.
    let kat = [
        (
            [0u32; 4],
            [0u32; 2],
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
        ),
        (
            [u32::MAX; 4],
            [u32::MAX; 2],
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
        ),
        (
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0],
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
        ),
    ];
    for (ctr, key, want) in kat {
        assert_eq!(
            philox4x32_10(ctr, key),
            want,
            "counter {ctr:x?} key {key:x?}"
        );
    }
    // The documented layout: element 4·c + w takes word w of counter (c, 0, stream lo, hi).
    let key = RngKey::new(0x299f31d0_a4093822, 0x03707344_13198a2e);
    let block = philox4x32_10(
        [0x0123_4567, 0, 0x13198a2e, 0x03707344],
        [0xa4093822, 0x299f31d0],
    );
    for w in 0..4 {
        assert_eq!(random_bits(key, 4 * 0x0123_4567 + w), block[w as usize]);
    }
    // And on the GPU: key 0, stream 0, elements 0..3 are the first KAT block.
    let gpu = gpu_or_skip!();
    let t = gpu.zeros(1, 1, 4).unwrap();
    let got = run_fill(gpu, Distribution::Uniform, &t, RngKey::new(0, 0), 0.0, 1.0);
    let want: Vec<f32> = [0x6627e8d5u32, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        .iter()
        .map(|b| (b >> 8) as f32 / 16_777_216.0)
        .collect();
    assert_bitwise(&got, &want, "KAT block on the GPU");
}

/// A random fill case: a view with a random offset and gap between items into a bigger zeroed
/// buffer (returned too, to check the gaps), and the distribution's parameters.
struct Case {
    dist: Distribution,
    big: Tensor,
    t: Tensor,
    p0: f32,
    p1: f32,
}

fn random_case(gpu: &Device, rng: &mut rand::rngs::ChaCha8Rng, case: usize) -> Case {
    let dist = DISTS[case % 3];
    let batch = if case.is_multiple_of(5) {
        1
    } else {
        common::size(rng, 1, 6)
    };
    let (rows, cols) = (common::size(rng, 1, 40), common::size(rng, 1, 40));
    let item = rows * cols;
    let offset = if case.is_multiple_of(2) {
        0
    } else {
        common::size(rng, 1, 50)
    };
    let stride = item
        + if case.is_multiple_of(3) {
            0
        } else {
            common::size(rng, 1, 9)
        };
    let big = gpu.zeros(1, 1, offset + batch * stride + 7).unwrap();
    let t = big.view(offset, batch, rows, cols, stride).unwrap();
    let (p0, p1) = match dist {
        Distribution::Uniform => (
            rng.random_range(-3.0f32..0.0),
            rng.random_range(0.5f32..3.0),
        ),
        _ => (
            rng.random_range(-1.0f32..1.0),
            rng.random_range(0.01f32..2.0),
        ),
    };
    Case {
        dist,
        big,
        t,
        p0,
        p1,
    }
}

/// Asserts that nothing outside the case's view was written (the buffer started at zero).
fn assert_gaps_zero(gpu: &Device, c: &Case, ctx: &str) {
    let (t, all) = (&c.t, gpu.read(&c.big).unwrap());
    for (i, v) in all.iter().enumerate() {
        let r = i.wrapping_sub(t.offset());
        let inside = i >= t.offset()
            && r % t.batch_stride() < t.item_len()
            && r / t.batch_stride() < t.batch();
        assert!(
            inside || *v == 0.0,
            "{ctx}: wrote element {i} outside the view"
        );
    }
}

#[test]
fn gpu_fills_are_bit_identical_to_cpu_twin_on_views() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(7);
    for case in 0..30 {
        let c = random_case(gpu, &mut rng, case);
        let key = RngKey::new(rng.random(), rng.random());
        let got = run_fill(gpu, c.dist, &c.t, key, c.p0, c.p1);
        let want = fill_cpu(c.dist, key, c.t.len(), c.p0, c.p1);
        let ctx = format!(
            "case {case}: {:?} {} {key:?} ({}, {})",
            c.dist,
            c.t.shape_str(),
            c.p0,
            c.p1
        );
        assert_bitwise(&got, &want, &ctx);
        assert_gaps_zero(gpu, &c, &ctx);
    }
}

/// Random seeds, some above 2³² (the high key word matters) and one repeated.
fn random_seeds(rng: &mut rand::rngs::ChaCha8Rng, batch: usize) -> Vec<u64> {
    let mut seeds: Vec<u64> = (0..batch)
        .map(|b| {
            if b % 2 == 0 {
                rng.random_range(0..1000)
            } else {
                rng.random()
            }
        })
        .collect();
    if batch > 2 {
        seeds[batch - 1] = seeds[0];
    }
    seeds
}

#[test]
fn per_item_fills_are_bit_identical_to_cpu_twin_on_views() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(8);
    for case in 0..30 {
        let c = random_case(gpu, &mut rng, case);
        let seeds = ItemSeeds::upload(gpu, &random_seeds(&mut rng, c.t.batch())).unwrap();
        let stream: u64 = rng.random();
        let got = run_fill(
            gpu,
            c.dist,
            &c.t,
            Keying::per_item(&seeds, stream),
            c.p0,
            c.p1,
        );
        let want = fill_per_item_cpu(c.dist, seeds.seeds(), stream, c.t.item_len(), c.p0, c.p1);
        let ctx = format!(
            "case {case}: {:?} {} seeds {:?} stream {stream}",
            c.dist,
            c.t.shape_str(),
            seeds.seeds()
        );
        assert_bitwise(&got, &want, &ctx);
        assert_gaps_zero(gpu, &c, &ctx);
    }
}

#[test]
fn item_of_a_per_item_fill_is_the_standalone_fill_with_its_seed() {
    let gpu = gpu_or_skip!();
    // 8 items of 7×9 = 63 elements: Philox blocks would straddle items in the shared layout.
    let (batch, rows, cols) = (8, 7, 9);
    let n = rows * cols;
    let seeds = ItemSeeds::upload(gpu, &[11, 12, 1 << 40, 3, 11, 99, 7, u64::MAX]).unwrap();
    let batched = gpu.zeros(batch, rows, cols).unwrap();
    let alone = gpu.zeros(1, rows, cols).unwrap();
    for dist in DISTS {
        let d = prepare(gpu, dist, &batched, Keying::per_item(&seeds, 5), 0.5, 2.0);
        for stream in [5u64, 1 << 33] {
            d.set_stream(gpu, stream);
            gpu.run(&[d.dispatch()]).unwrap();
            let all = gpu.read(&batched).unwrap();
            for (b, &seed) in seeds.seeds().iter().enumerate() {
                // The existing shared-key path, batch 1: the reference a standalone run draws.
                let want = run_fill(gpu, dist, &alone, RngKey::new(seed, stream), 0.5, 2.0);
                let ctx = format!("{dist:?} stream {stream} item {b} seed {seed}");
                assert_bitwise(&all[b * n..(b + 1) * n], &want, &ctx);
            }
            // Items with different seeds differ; the repeated seed (items 0 and 4) repeats.
            assert_eq!(
                all[..n],
                all[4 * n..5 * n],
                "{dist:?}: same seed, same item"
            );
            let same = (0..n).filter(|&j| all[j] == all[n + j]).count();
            assert!(same <= 2, "{dist:?}: items 0 and 1 share {same} values");
        }
    }
    // New seeds take effect at the next launch.
    let mut seeds = seeds;
    let d = fill_uniform(gpu, &batched, Keying::per_item(&seeds, 0), 0.0, 1.0).unwrap();
    let new: Vec<u64> = (100..108).collect();
    seeds.set(gpu, &new).unwrap();
    gpu.run(&[d.dispatch()]).unwrap();
    let want = fill_per_item_cpu(Distribution::Uniform, &new, 0, n, 0.0, 1.0);
    assert_bitwise(&gpu.read(&batched).unwrap(), &want, "after ItemSeeds::set");
}

#[test]
fn per_item_seed_counts_are_checked() {
    let gpu = gpu_or_skip!();
    let t = gpu.zeros(4, 2, 3).unwrap();
    let mut seeds = ItemSeeds::upload(gpu, &[1, 2, 3]).unwrap();
    let err = fill_normal(gpu, &t, Keying::per_item(&seeds, 0), 0.0, 1.0).unwrap_err();
    assert!(
        matches!(err, DeviceError::Shape { .. })
            && err.to_string().contains("3 per-item seeds")
            && err.to_string().contains("[4×2×3]"),
        "{err}"
    );
    let err = seeds.set(gpu, &[1, 2]).unwrap_err().to_string();
    assert!(
        err.contains("2 seeds") && err.contains("batch of 3"),
        "{err}"
    );
    assert!(matches!(
        ItemSeeds::upload(gpu, &[]),
        Err(DeviceError::InvalidArgument { .. })
    ));
}

#[test]
fn keys_and_streams_select_sequences() {
    let gpu = gpu_or_skip!();
    let t = gpu.zeros(3, 5, 7).unwrap();
    let k = RngKey::new(42, 3);
    for dist in DISTS {
        let a = run_fill(gpu, dist, &t, k, 0.0, 1.0);
        let again = run_fill(gpu, dist, &t, k, 0.0, 1.0);
        assert_bitwise(&again, &a, "same key twice");
        for other in [
            RngKey::new(43, 3),
            RngKey::new(42, 4),
            RngKey::new(42 << 32, 3),
            RngKey::new(42, 3 << 32),
        ] {
            let b = run_fill(gpu, dist, &t, other, 0.0, 1.0);
            let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
            assert!(
                same <= 2,
                "{dist:?} {other:?} vs {k:?}: {same} equal values"
            );
        }
    }
    // set_stream replays the prepared dispatch with a new stream, no re-preparation.
    let d = fill_normal(gpu, &t, k, 0.5, 2.0).unwrap();
    for step in [0u64, 1, 99, u64::MAX] {
        d.set_stream(gpu, step);
        gpu.run(&[d.dispatch()]).unwrap();
        let want = fill_cpu(
            Distribution::Normal,
            RngKey::new(42, step),
            t.len(),
            0.5,
            2.0,
        );
        assert_bitwise(&gpu.read(&t).unwrap(), &want, &format!("stream {step}"));
    }
}

/// Φ at a few points (from tables, 15 digits).
const PHI: [(f64, f64); 9] = [
    (-3.0, 0.001_349_898_031_630_1),
    (-2.0, 0.022_750_131_948_179_2),
    (-1.0, 0.158_655_253_931_457),
    (-0.5, 0.308_537_538_725_987),
    (0.0, 0.5),
    (0.5, 0.691_462_461_274_013),
    (1.0, 0.841_344_746_068_543),
    (2.0, 0.977_249_868_051_821),
    (3.0, 0.998_650_101_968_370),
];

fn moments(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var)
}

fn ecdf(v: &[f32], z: f64) -> f64 {
    v.iter().filter(|&&x| (x as f64) <= z).count() as f64 / v.len() as f64
}

// Tolerances for n = 200 000 samples: sd(mean) = σ/√n = 0.0022 → 0.01 is 4.5 sd; sd(var) =
// σ²·√(2/n) = 0.0032 → 0.01 is 3 sd; sd of an empirical CDF value ≤ 0.5/√n = 0.0011 → 0.005 is
// 4.5 sd. The seed is fixed, so the test is deterministic; the margins say a correct generator
// passes for almost any seed, and a wrong tail or scale (≥ 0.01 off) fails.
const N: usize = 200_000;

#[test]
fn normal_statistics() {
    let gpu = gpu_or_skip!();
    let t = gpu.zeros(4, 500, 100).unwrap();
    let key = RngKey::new(2024, 17);
    let v = run_fill(gpu, Distribution::Normal, &t, key, 0.0, 1.0);
    assert_bitwise(
        &v,
        &fill_cpu(Distribution::Normal, key, N, 0.0, 1.0),
        "200k normals",
    );
    let (mean, var) = moments(&v);
    assert!(
        mean.abs() < 0.01 && (var - 1.0).abs() < 0.01,
        "mean {mean} var {var}"
    );
    for (z, p) in PHI {
        let e = ecdf(&v, z);
        assert!((e - p).abs() < 0.005, "P(Z ≤ {z}) = {e}, Φ = {p}");
    }
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    assert!((3.5..6.3).contains(&max), "max |z| {max}");
}

#[test]
fn truncated_normal_statistics_and_support() {
    let gpu = gpu_or_skip!();
    let t = gpu.zeros(2, 1000, 100).unwrap();
    let key = RngKey::new(7, 1);
    let (mean0, std) = (0.25f32, 0.5f32);
    let v = run_fill(gpu, Distribution::TruncatedNormal, &t, key, mean0, std);
    assert_bitwise(
        &v,
        &fill_cpu(Distribution::TruncatedNormal, key, N, mean0, std),
        "200k",
    );
    let z: Vec<f32> = v.iter().map(|x| (x - mean0) / std).collect();
    // Support: mean ± 2σ exactly (z clamped to [−2, 2] before the affine map).
    for &x in &v {
        assert!(
            (mean0 - 2.0 * std..=mean0 + 2.0 * std).contains(&x),
            "{x} outside ±2σ"
        );
    }
    // Var of N(0,1) restricted to [−a, a] is 1 − 2aφ(a)/(2Φ(a) − 1); a = 2: φ(2) = 0.0539909665,
    // 2Φ(2) − 1 = 0.9544997361 → 1 − 0.2162593/0.9545 = 0.7737413 (std 0.8796).
    let (mean, var) = moments(&z);
    assert!(
        mean.abs() < 0.01 && (var - 0.773_741_3).abs() < 0.01,
        "mean {mean} var {var}"
    );
    let (lo, span) = (PHI[1].1, PHI[7].1 - PHI[1].1);
    for (zq, p) in &PHI[2..7] {
        let e = ecdf(&z, *zq);
        let want = (p - lo) / span;
        assert!((e - want).abs() < 0.005, "P(Z ≤ {zq}) = {e}, want {want}");
    }
    let edge = z.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    assert!(edge > 1.99, "the tails reach ±2: max |z| {edge}");
}

#[test]
fn uniform_statistics() {
    let gpu = gpu_or_skip!();
    let t = gpu.zeros(1, 400, 500).unwrap();
    let v = run_fill(gpu, Distribution::Uniform, &t, RngKey::new(5, 5), -1.0, 3.0);
    assert!(v.iter().all(|x| (-1.0..3.0).contains(x)));
    let (mean, var) = moments(&v);
    // Uniform on [−1, 3): mean 1, var 16/12; sd(mean) = 0.0026, sd(var) = 0.0042.
    assert!(
        (mean - 1.0).abs() < 0.012 && (var - 16.0 / 12.0).abs() < 0.02,
        "mean {mean} var {var}"
    );
}

#[test]
fn inverse_cdf_is_accurate_and_monotone() {
    // Φ⁻¹ at known points; m = u·2³² − ½.
    let m = |u: f64| (u * 4_294_967_296.0 - 0.5).round() as u32;
    for (z, p) in PHI {
        let got = normal_icdf(m(p)) as f64;
        // The input is quantised to 2⁻³² (|Δz| ≤ 2⁻³²/φ(z) < 2e-7 here) and the polynomial is
        // within 2.4e-7, plus f32 rounding of |z| ≤ 3 (1.2e-7): 6e-7 covers it.
        assert!((got - z).abs() < 6e-7, "Φ⁻¹({p}) = {got}, want {z}");
    }
    assert!((normal_icdf(m(0.975)) as f64 - 1.959_963_984_540_054).abs() < 6e-7);
    // Monotone across every segment boundary (both sides) and on a dense sweep.
    let mut ms: Vec<u32> = (0..32u32)
        .flat_map(|j| (0..4u32).map(move |s| ((4 + s) << j) >> 3))
        .flat_map(|q| [q.saturating_sub(1), q, q + 1])
        .flat_map(|q| [q >> 1, (q >> 1).saturating_sub(1), !(q >> 1)])
        .collect();
    ms.extend((0..100_000u32).map(|i| i.wrapping_mul(42_949)));
    ms.sort_unstable();
    // Neighbouring segments are fitted independently (each within 2.4e-7 of Φ⁻¹) and evaluated in
    // f32, so across a boundary the value may step back by up to twice the fit error plus an
    // ulp; anything larger would be a wrong segment or coefficient.
    let mut worst = 0.0f32;
    for w in ms.windows(2) {
        worst = worst.max(normal_icdf(w[0]) - normal_icdf(w[1]));
    }
    assert!(worst < 8e-7, "Φ⁻¹ steps back by {worst}");
    assert_eq!(normal_icdf(0x7fff_ffff), -normal_icdf(0x8000_0000));
}

#[test]
fn fill_rejects_overlapping_output_and_bad_parameters() {
    let gpu = gpu_or_skip!();
    let shared = gpu.zeros(1, 2, 3).unwrap().broadcast(4).unwrap();
    let err = fill_uniform(gpu, &shared, RngKey::default(), 0.0, 1.0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[4×2×3] stride 0") && err.contains("overlap"),
        "{err}"
    );
    let t = gpu.zeros(1, 2, 3).unwrap();
    assert!(fill_normal(gpu, &t, RngKey::default(), 0.0, f32::NAN).is_err());
}

/// Fills larger than the native backend's parallel chunks (4,096 elements) and its 64-element
/// lane groups, with items that start at indices that are not multiples of 4 (shared keying),
/// are bit-identical to the twin.
#[test]
fn large_fills_across_chunk_and_lane_boundaries_match_the_twin() {
    let gpu = gpu_or_skip!();
    let (batch, rows, cols) = (3, 101, 99); // 9,999 elements per item
    let t = gpu.zeros(batch, rows, cols).unwrap();
    let n = rows * cols;
    for dist in DISTS {
        let key = RngKey::new(77, 1 << 35);
        let got = run_fill(gpu, dist, &t, key, -1.0, 3.0);
        assert_bitwise(
            &got,
            &fill_cpu(dist, key, batch * n, -1.0, 3.0),
            "shared keying",
        );
        let seeds = ItemSeeds::upload(gpu, &[5, 6, 7]).unwrap();
        let got = run_fill(gpu, dist, &t, Keying::per_item(&seeds, 9), -1.0, 3.0);
        let want = fill_per_item_cpu(dist, &[5, 6, 7], 9, n, -1.0, 3.0);
        assert_bitwise(&got, &want, "per-item keying");
    }
}
