//! Random row gathers: GPU bit-identical to the CPU twin on many shapes (odd rows, more and fewer
//! destination rows than source rows, batch 1, padded/strided and broadcast views) with shared and
//! per-item keying, item b of a per-item gather equal to the standalone gather with its seed,
//! paired gathers with one key pick the same rows, `set_stream` changes the draw, bad shapes and
//! seed counts are named. The scatter-add (the gather's adjoint): bit-identical to its twin
//! (both add each row's contributions in increasing order), per-item keying as for the gather,
//! and ⟨gather(x), g⟩ = ⟨x, scatter(g)⟩.
//!
//! Tolerance: none. A gather copies f32 values, so the GPU must match the twin bit for bit.

mod common;

use common::{assert_gaps_untouched, data, padded, put, rng, size};
use hypermod::gpu::Device;
use hypermod::ops::gather::{
    gather_rows, gather_rows_cpu, gather_rows_per_item_cpu, scatter_add_rows, scatter_add_rows_cpu,
};
use hypermod::ops::rng::{ItemSeeds, Keying, RngKey};
use rand::RngExt;

fn assert_bitwise(got: &[f32], want: &[f32], ctx: &str) {
    assert_eq!(got.len(), want.len(), "{ctx}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{ctx}: element {i}: GPU {g} != CPU {w}"
        );
    }
}

/// Gathers on the GPU (source layout per `mode`: 0 packed, 1 padded and strided, 2 broadcast;
/// the destination is padded so writes past its rows are caught) and returns the logical result.
#[allow(clippy::too_many_arguments)]
fn gpu_gather<'k>(
    gpu: &Device,
    host: &[f32],
    b: usize,
    r: usize,
    c: usize,
    rd: usize,
    mode: u32,
    key: impl Into<Keying<'k>>,
) -> Vec<f32> {
    let src = match mode {
        0 => put(gpu, host, b, r, c, false),
        1 => padded(gpu, host, b, r, c),
        _ => put(gpu, host, b, r, c, true),
    };
    let dst = padded(gpu, &vec![0.0; b * rd * c], b, rd, c);
    let g = gather_rows(gpu, &src, &dst, key).unwrap();
    gpu.run(&[g.dispatch()]).unwrap();
    assert_gaps_untouched(gpu, &dst, "gather dst");
    gpu.read(&dst).unwrap()
}

/// Scatter-adds `g` (`[b × rd × c]`, padded) into an accumulator holding `acc` (`[b × r × c]`,
/// padded so writes outside its rows are caught) and returns the accumulator.
#[allow(clippy::too_many_arguments)]
fn gpu_scatter<'k>(
    gpu: &Device,
    g: &[f32],
    acc: &[f32],
    (b, r, c, rd): (usize, usize, usize, usize),
    key: impl Into<Keying<'k>>,
) -> Vec<f32> {
    let (gt, at) = (padded(gpu, g, b, rd, c), padded(gpu, acc, b, r, c));
    let s = scatter_add_rows(gpu, &gt, &at, key).unwrap();
    gpu.run(&[s.dispatch()]).unwrap();
    assert_gaps_untouched(gpu, &at, "scatter accumulator");
    gpu.read(&at).unwrap()
}

#[test]
fn scatter_add_matches_cpu_twin_bitwise() {
    let gpu = gpu_or_skip!();
    let mut g = rng(21);
    for case in 0..20 {
        let b = if case % 5 == 0 { 1 } else { size(&mut g, 1, 6) };
        let r = if case % 4 == 1 {
            1
        } else {
            size(&mut g, 1, 40)
        };
        // Columns and picked rows past the workgroup (64): chunks and column loops.
        let c = if case % 3 == 0 {
            size(&mut g, 65, 150)
        } else {
            size(&mut g, 1, 9)
        };
        let rd = if case % 2 == 0 {
            size(&mut g, 65, 300)
        } else {
            size(&mut g, 1, 2 * r + 1)
        };
        let key = RngKey::new(g.random(), g.random());
        let (gr, acc) = (
            data(&mut g, b, rd * c, false),
            data(&mut g, b, r * c, false),
        );
        let got = gpu_scatter(gpu, &gr, &acc, (b, r, c, rd), key);
        let mut want = acc.clone();
        scatter_add_rows_cpu(&gr, &mut want, (b, r, c, rd), key);
        let ctx = format!("case {case}: {rd} picks of [{b}×{r}×{c}]");
        assert_bitwise(&got, &want, &ctx);
    }
}

/// The scatter is the gather's adjoint (f64 twins), and a per-item scatter's item is the
/// standalone scatter with its seed.
#[test]
fn scatter_add_is_the_gathers_adjoint_and_keys_per_item() {
    let (b, r, c, rd) = (3, 7, 4, 19);
    let mut g = rng(22);
    let x: Vec<f64> = (0..b * r * c).map(|_| g.random_range(-1.0..1.0)).collect();
    let y: Vec<f64> = (0..b * rd * c).map(|_| g.random_range(-1.0..1.0)).collect();
    let key = RngKey::new(3, 9);
    let gathered = gather_rows_cpu(&x, b, r, c, rd, key);
    let mut scattered = vec![0.0; x.len()];
    scatter_add_rows_cpu(&y, &mut scattered, (b, r, c, rd), key);
    let lhs: f64 = gathered.iter().zip(&y).map(|(a, b)| a * b).sum();
    let rhs: f64 = x.iter().zip(&scattered).map(|(a, b)| a * b).sum();
    assert!(
        (lhs - rhs).abs() < 1e-12 * lhs.abs().max(1.0),
        "{lhs} vs {rhs}"
    );

    let gpu = gpu_or_skip!();
    let seeds = ItemSeeds::upload(gpu, &[5, 1 << 40, 7]).unwrap();
    let (gr, acc) = (
        data(&mut g, b, rd * c, false),
        data(&mut g, b, r * c, false),
    );
    let all = gpu_scatter(gpu, &gr, &acc, (b, r, c, rd), Keying::per_item(&seeds, 11));
    for (i, &seed) in seeds.seeds().iter().enumerate() {
        let gi = &gr[i * rd * c..(i + 1) * rd * c];
        let ai = &acc[i * r * c..(i + 1) * r * c];
        let alone = gpu_scatter(gpu, gi, ai, (1, r, c, rd), RngKey::new(seed, 11));
        assert_bitwise(
            &all[i * r * c..(i + 1) * r * c],
            &alone,
            &format!("item {i}"),
        );
    }
}

#[test]
fn gather_matches_cpu_twin_bitwise() {
    let gpu = gpu_or_skip!();
    let mut g = rng(1);
    for case in 0..24 {
        let b = if case % 6 == 0 { 1 } else { size(&mut g, 1, 9) };
        let r = if case % 4 == 1 {
            1
        } else {
            size(&mut g, 1, 37)
        };
        let c = size(&mut g, 1, 7);
        // Fewer, equal and more destination rows than source rows (with replacement).
        let rd = match case % 3 {
            0 => size(&mut g, 1, r + 1),
            1 => r,
            _ => r + size(&mut g, 1, 40),
        };
        let mode = case % 3;
        let key = RngKey::new(g.random(), g.random());
        let host = data(&mut g, b, r * c, mode == 2);
        let got = gpu_gather(gpu, &host, b, r, c, rd, mode, key);
        let want = gather_rows_cpu(&host, b, r, c, rd, key);
        assert_bitwise(
            &got,
            &want,
            &format!("case {case}: [{b}×{r}×{c}] → {rd} rows, mode {mode}"),
        );
    }
}

#[test]
fn per_item_gather_matches_cpu_twin_bitwise() {
    let gpu = gpu_or_skip!();
    let mut g = rng(3);
    for case in 0..24 {
        let b = if case % 6 == 0 { 1 } else { size(&mut g, 1, 9) };
        let r = if case % 4 == 1 {
            1
        } else {
            size(&mut g, 1, 37)
        };
        let c = size(&mut g, 1, 7);
        let rd = match case % 3 {
            0 => size(&mut g, 1, r + 1),
            1 => r,
            _ => r + size(&mut g, 1, 40),
        };
        let mode = case % 3;
        // Seeds above and below 2³², and a repeat (same seed, same rows).
        let mut seeds: Vec<u64> = (0..b).map(|_| g.random()).collect();
        seeds[b - 1] = if b > 2 {
            seeds[0]
        } else {
            g.random_range(0..100)
        };
        let seeds = ItemSeeds::upload(gpu, &seeds).unwrap();
        let stream = g.random();
        let host = data(&mut g, b, r * c, mode == 2);
        let got = gpu_gather(
            gpu,
            &host,
            b,
            r,
            c,
            rd,
            mode,
            Keying::per_item(&seeds, stream),
        );
        let want = gather_rows_per_item_cpu(&host, r, c, rd, seeds.seeds(), stream);
        assert_bitwise(
            &got,
            &want,
            &format!("case {case}: [{b}×{r}×{c}] → {rd} rows, mode {mode}, per item"),
        );
    }
}

#[test]
fn item_of_a_per_item_gather_is_the_standalone_gather_with_its_seed() {
    let gpu = gpu_or_skip!();
    let (b, r, c, rd) = (8, 23, 3, 9);
    let mut g = rng(4);
    let host = data(&mut g, b, r * c, false);
    let seeds = ItemSeeds::upload(gpu, &[5, 6, 7, 8, 1 << 36, 10, 11, 12]).unwrap();
    for stream in [0u64, 77] {
        let all = gpu_gather(gpu, &host, b, r, c, rd, 1, Keying::per_item(&seeds, stream));
        for (i, &seed) in seeds.seeds().iter().enumerate() {
            let item = &host[i * r * c..(i + 1) * r * c];
            // The shared-key path, batch 1: what a standalone run with this seed gathers.
            let alone = gpu_gather(gpu, item, 1, r, c, rd, 0, RngKey::new(seed, stream));
            let n = rd * c;
            assert_bitwise(
                &all[i * n..(i + 1) * n],
                &alone,
                &format!("stream {stream} item {i} seed {seed}"),
            );
        }
    }
}

#[test]
fn inputs_and_targets_with_one_key_pick_the_same_rows() {
    let gpu = gpu_or_skip!();
    let (b, r, rd) = (3, 16, 4);
    // Row j of item b holds its own index in both tensors (different widths), so the picked
    // indices can be read back and compared.
    let tag = |c: usize| -> Vec<f32> {
        (0..b * r)
            .flat_map(|n| std::iter::repeat_n(n as f32, c))
            .collect()
    };
    let key = RngKey::new(5, 9);
    let x = gpu_gather(gpu, &tag(3), b, r, 3, rd, 1, key);
    let y = gpu_gather(gpu, &tag(2), b, r, 2, rd, 0, key);
    let rows = |v: &[f32], c: usize| v.chunks(c).map(|ch| ch[0]).collect::<Vec<_>>();
    assert_eq!(rows(&x, 3), rows(&y, 2));
    // Each item draws from its own rows.
    for (n, &v) in rows(&x, 3).iter().enumerate() {
        assert_eq!(v as usize / r, n / rd, "row {n} came from another item");
    }
}

#[test]
fn set_stream_changes_the_draw_and_matches_the_twin() {
    let gpu = gpu_or_skip!();
    let (b, r, c, rd) = (4, 64, 2, 16);
    let mut g = rng(2);
    let host = data(&mut g, b, r * c, false);
    let src = put(gpu, &host, b, r, c, false);
    let dst = gpu.zeros(b, rd, c).unwrap();
    let gather = gather_rows(gpu, &src, &dst, RngKey::new(3, 0)).unwrap();
    let mut draws = Vec::new();
    for stream in [0u64, 1, 1 << 40] {
        gather.set_stream(gpu, stream);
        gpu.run(&[gather.dispatch()]).unwrap();
        let got = gpu.read(&dst).unwrap();
        let want = gather_rows_cpu(&host, b, r, c, rd, RngKey::new(3, stream));
        assert_bitwise(&got, &want, &format!("stream {stream}"));
        draws.push(got);
    }
    assert_ne!(draws[0], draws[1]);
    assert_ne!(draws[1], draws[2]);
}

#[test]
fn bad_shapes_are_rejected_with_their_shapes() {
    let gpu = gpu_or_skip!();
    let src = gpu.zeros(2, 5, 3).unwrap();
    let key = RngKey::default();
    let err = gather_rows(gpu, &src, &gpu.zeros(2, 4, 2).unwrap(), key)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[2×5×3]") && err.contains("[2×4×2]"), "{err}");
    let err = gather_rows(gpu, &src, &gpu.zeros(3, 4, 3).unwrap(), key)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[3×4×3]"), "{err}");
    let seeds = ItemSeeds::upload(gpu, &[1, 2, 3]).unwrap();
    let err = gather_rows(
        gpu,
        &src,
        &gpu.zeros(2, 4, 3).unwrap(),
        Keying::per_item(&seeds, 0),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("3 per-item seeds") && err.contains("[2×4×3]"),
        "{err}"
    );
    let shared = gpu.zeros(1, 4, 3).unwrap().broadcast(2).unwrap();
    let err = gather_rows(gpu, &src, &shared, key)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[2×4×3] stride 0") && err.contains("overlap"),
        "{err}"
    );
}
