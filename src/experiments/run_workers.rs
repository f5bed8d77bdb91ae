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

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::gpu::Device;
use crate::train::interrupt;

/// How many runs train at the same time on `gpu` by [`on_workers`]: its threads on the native
/// backend, `None` on a GPU (which trains a batch as one).
pub fn native_workers(gpu: &Device) -> Option<usize> {
    gpu.native_threads()
}

/// Calls `f(device, k)` for every `k` in `0..n` on `workers` threads, each with its own
/// one-thread native device, each taking the next `k` in order; returns the results in `k`
/// order, or the first error (by `k`) once every started run has finished.
///
/// A stop asked of the calling thread ([`crate::train::interrupt`]: Ctrl-C on the CLI, a
/// `KeyboardInterrupt` in Python) reaches the workers: the runs in progress stop after their
/// current step with a checkpoint (`Error::Interrupted`), and no new run starts. A run that never
/// started is `None`.
pub fn on_workers<T: Send>(
    workers: usize,
    n: usize,
    f: impl Fn(&Device, usize) -> Result<T> + Sync,
) -> Result<Vec<Option<T>>> {
    let next = AtomicUsize::new(0);
    let stop = Arc::new(AtomicBool::new(false));
    let running = AtomicUsize::new(workers.clamp(1, n.max(1)));
    let results: Mutex<Vec<Option<Result<T>>>> = Mutex::new((0..n).map(|_| None).collect());
    let store = |k: usize, r: Result<T>| {
        results.lock().unwrap_or_else(|p| p.into_inner())[k] = Some(r);
    };
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, n.max(1)) {
            let stop = stop.clone();
            let (next, running, store, f) = (&next, &running, &store, &f);
            s.spawn(move || {
                let flag = stop.clone();
                interrupt::with_check(
                    move || flag.load(Ordering::SeqCst),
                    || match Device::native(Some(1)) {
                        Ok(device) => loop {
                            if stop.load(Ordering::SeqCst) {
                                break;
                            }
                            let k = next.fetch_add(1, Ordering::SeqCst);
                            if k >= n {
                                break;
                            }
                            store(k, f(&device, k));
                        },
                        Err(e) => {
                            let k = next.fetch_add(1, Ordering::SeqCst);
                            if k < n {
                                store(k, Err(e.into()));
                            }
                        }
                    },
                );
                running.fetch_sub(1, Ordering::SeqCst);
            });
        }
        // The stop check is the calling thread's own: ask it here and pass it on.
        while running.load(Ordering::SeqCst) > 0 {
            if interrupt::requested() {
                stop.store(true, Ordering::SeqCst);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut out = Vec::with_capacity(n);
    for r in results {
        out.push(match r {
            Some(r) => Some(r?),
            None => None,
        });
    }
    if !stop.load(Ordering::SeqCst) && out.iter().any(Option::is_none) {
        return Err(crate::error::arg_err(
            "workers",
            "a worker could not open its native device, so some runs never started",
        ));
    }
    Ok(out)
}
