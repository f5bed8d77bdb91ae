//! Shared test helpers: the one way tests obtain the GPU, seeded random data, and comparisons.
#![allow(dead_code)]

use std::sync::OnceLock;

use hypermod::gpu::Gpu;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

static GPU: OnceLock<Option<Gpu>> = OnceLock::new();

/// The device every test uses (honours `WGPU_BACKEND` and `HYPERMOD_ADAPTER`).
///
/// With `CI=true` a missing adapter fails the test; elsewhere the test is skipped loudly.
pub fn gpu() -> Option<&'static Gpu> {
    GPU.get_or_init(|| match Gpu::new() {
        Ok(g) => {
            let i = g.adapter_info();
            eprintln!(
                "[hypermod tests] adapter: {} ({:?}, {:?})",
                i.name, i.backend, i.device_type
            );
            Some(g)
        }
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("CI=true but no GPU adapter is available: {e}");
            }
            eprintln!(
                "\n!!!!!!!! [hypermod tests] NO GPU ADAPTER: GPU TESTS SKIPPED !!!!!!!!\n{e}\n"
            );
            None
        }
    })
    .as_ref()
}

/// Obtains the GPU or returns from the test (skip) when there is none outside CI.
#[macro_export]
macro_rules! gpu_or_skip {
    () => {
        match common::gpu() {
            Some(g) => g,
            None => return,
        }
    };
}

/// A seeded portable generator.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `n` values uniform in [-1, 1).
pub fn uniform(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// A size in `lo..=hi`.
pub fn size(rng: &mut ChaCha8Rng, lo: usize, hi: usize) -> usize {
    rng.random_range(lo..=hi)
}

/// Asserts |got − want| ≤ tol[i] element-wise, with a message naming the first mismatch.
pub fn assert_close(got: &[f32], want: &[f64], tol: impl Fn(usize) -> f64, ctx: &str) {
    assert_eq!(got.len(), want.len(), "{ctx}: length");
    let mut worst = (0.0f64, 0usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        let ok = err <= tol(i) || (g.is_nan() && w.is_nan());
        assert!(
            ok,
            "{ctx}: element {i}: got {g}, want {w} (|err| {err:.3e} > tol {:.3e})",
            tol(i)
        );
        if err > worst.0 {
            worst = (err, i);
        }
    }
}

/// Repeats one item `batch` times (the host view of a stride-0 broadcast).
pub fn repeat(item: &[f32], batch: usize) -> Vec<f32> {
    item.iter()
        .copied()
        .cycle()
        .take(item.len() * batch)
        .collect()
}

/// f32 → f64.
pub fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}
