//! Independent runs on the native CPU backend: one run per core at a time instead of one batch.
//!
//! On a GPU the batch axis is what fills the device: R runs share every dispatch. On the native
//! backend it is not: a CPU runs the small per-run GEMMs no faster stacked (measured with `bench
//! sweep`: a batch of sine runs trains at 0.87-0.95× the runs' speed one after another, on one
//! thread or two), while T independent runs keep T cores busy with no synchronisation between
//! them. So on the native backend with T threads a sweep's batch trains as T workers, each with
//! its own one-thread native device, each taking the next run. Every run ends with the bits it
//! has alone: the native kernels' bits depend neither on the thread count nor on the batch
//! (`tests/native_backend.rs`), and a run's directory is the one it writes alone
//! (`tests/batch_members.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::Result;
use crate::gpu::Device;

/// How many runs train at the same time on `gpu` by [`on_workers`]: its threads on the native
/// backend, `None` on a GPU (which trains a batch as one).
pub fn native_workers(gpu: &Device) -> Option<usize> {
    gpu.native_threads()
}

/// Calls `f(device, k)` for every `k` in `0..n` on `workers` threads, each with its own
/// one-thread native device, each taking the next `k` in order; returns the results in `k`
/// order, or the first error (by `k`) once every started run has finished.
pub fn on_workers<T: Send>(
    workers: usize,
    n: usize,
    f: impl Fn(&Device, usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<T>>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, n.max(1)) {
            s.spawn(|| {
                let device = match Device::native(Some(1)) {
                    Ok(d) => d,
                    Err(e) => {
                        let k = next.fetch_add(1, Ordering::SeqCst);
                        if k < n {
                            results.lock().unwrap_or_else(|p| p.into_inner())[k] =
                                Some(Err(e.into()));
                        }
                        return;
                    }
                };
                loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    if k >= n {
                        return;
                    }
                    let r = f(&device, k);
                    results.lock().unwrap_or_else(|p| p.into_inner())[k] = Some(r);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut out = Vec::with_capacity(n);
    for (k, r) in results.into_iter().enumerate() {
        match r {
            Some(r) => out.push(r?),
            None => {
                return Err(crate::error::arg_err(
                    "workers",
                    format!("run {k} was never started (a worker could not open its device)"),
                ))
            }
        }
    }
    Ok(out)
}
