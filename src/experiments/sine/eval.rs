//! The sine experiment's evaluation sets: valid and test from the training distribution, the
//! wide OOD set and the held-out combination, each drawn from its own fixed data stream chunk by
//! chunk (chunks sized per RUN, never by the batch, so a run's sums are the same alone or in any
//! batch) and scored in one submit.

use super::config::SineConfig;
use super::net::Network;
use crate::error::Result;
use crate::gpu::{Device, Dispatch, Step, Tensor};
use crate::ops::loss::mse;
use crate::ops::rng::ItemSeeds;
use crate::ops::sine::{sample, Fold, Rows, SampleSpec, SineSample, SineShape};

/// The evaluation sets' data streams (high byte 0x02..0x05; the training streams, 0x01 and
/// 0x11–0x12, are in `mod.rs`).
const VALID_DATA: u64 = 0x02 << 56;
const TEST_DATA: u64 = 0x03 << 56;
const OOD_DATA: u64 = 0x04 << 56;
const COMBINATION_DATA: u64 = 0x05 << 56;

/// Most floats one run's widest activation may hold in an evaluation chunk. Chunks are sized
/// per RUN, never by the batch, so a run's evaluation sums the same rows in the same chunks
/// alone or in any batch (bit-identical metrics).
pub(super) const CHUNK_FLOATS: usize = 1 << 19;

/// The sample settings of a set: fold, input scale, data stream.
pub(super) fn set_spec(
    shape: SineShape,
    fold: Fold,
    sigma: f32,
    data_stream: u64,
    rows: Rows,
) -> SampleSpec {
    SampleSpec {
        shape,
        rows,
        fold,
        sigma,
        data_stream,
    }
}

/// Rows of one evaluation chunk of `n` samples for a run whose widest activation is `width`.
fn chunk_rows(n: usize, width: usize) -> usize {
    (CHUNK_FLOATS / width.max(1)).max(64).min(n).max(1)
}

/// One chunk of an evaluation set: its samples, which forward program (by chunk size) sees
/// them, and its loss launch.
struct Chunk {
    sample: SineSample,
    forward: usize,
    loss: Dispatch,
}

/// An evaluation set, evaluated chunk by chunk with one forward program per chunk size.
pub(super) struct EvalSet {
    pub(super) name: &'static str,
    chunks: Vec<Chunk>,
    forwards: Vec<Vec<Dispatch>>,
    /// `[chunks·R × 1 × 1]`: chunk c's per-run MSE at rows `c·R..`.
    loss: Tensor,
    /// Rows of each chunk.
    rows: Vec<usize>,
}

impl EvalSet {
    /// The evaluation sets of `cfg`: valid and test from the training distribution, the wide
    /// OOD set, and the held-out combination when the task holds one out.
    pub(super) fn all(
        gpu: &Device,
        cfg: &SineConfig,
        net: &Network,
        task_t: &Tensor,
        seeds: &ItemSeeds,
        train_fold: Fold,
    ) -> Result<Vec<EvalSet>> {
        let e = &cfg.eval;
        let mut defs = vec![
            ("valid", e.n_valid, VALID_DATA, train_fold, 1.0),
            ("test", e.n_test, TEST_DATA, train_fold, 1.0),
            ("ood", e.n_test, OOD_DATA, Fold::None, e.ood_scale as f32),
        ];
        if cfg.task.holdout_combination {
            defs.push((
                "ood_combination",
                e.n_test,
                COMBINATION_DATA,
                Fold::Inside,
                1.0,
            ));
        }
        let shape = SineShape {
            m: cfg.task.m,
            modules: cfg.task.modules,
            dim: cfg.task.module_dim,
            comps: cfg.task.frequencies.len(),
        };
        let r = net.runs;
        let widest = net.x_copies()
            * cfg
                .task
                .m
                .max(cfg.model.hidden.iter().copied().max().unwrap_or(1))
                .max(cfg.model.module_hidden.iter().copied().max().unwrap_or(1));
        defs.into_iter()
            .map(|(name, n, stream, fold, sigma)| {
                let c = chunk_rows(n, widest);
                let rows: Vec<usize> = (0..n.div_ceil(c)).map(|i| c.min(n - i * c)).collect();
                let loss = gpu.zeros(rows.len() * r, 1, 1)?;
                let mut sizes: Vec<usize> = rows.clone();
                sizes.dedup();
                let mut forwards = Vec::new();
                let mut buffers = Vec::new();
                for &size in &sizes {
                    let x = gpu.zeros(r * net.x_copies(), size, cfg.task.m)?;
                    let y = gpu.zeros(r, size, 1)?;
                    let y_hat = gpu.zeros(r, size, 1)?;
                    forwards.push(net.program(gpu, &x, &y_hat, None)?.forward);
                    buffers.push((x, y, y_hat));
                }
                let mut chunks = Vec::new();
                for (i, &size) in rows.iter().enumerate() {
                    let forward = sizes.iter().position(|&s| s == size).expect("a chunk size");
                    let (x, y, y_hat) = &buffers[forward];
                    let spec = set_spec(shape, fold, sigma, stream, Rows::Fixed { row0: i * c });
                    chunks.push(Chunk {
                        sample: sample(gpu, &spec, task_t, seeds, x, y)?,
                        forward,
                        loss: mse(gpu, y_hat, y, &loss.view(i * r, r, 1, 1, 1)?, None, 1.0)?,
                    });
                }
                Ok(EvalSet {
                    name,
                    chunks,
                    forwards,
                    loss,
                    rows,
                })
            })
            .collect()
    }

    /// Every set's per-run MSE, in one submit.
    pub(super) fn mse_of_all(gpu: &Device, sets: &[EvalSet], r: usize) -> Result<Vec<Vec<f64>>> {
        let mut step = Step::new(gpu);
        let mut slots = Vec::new();
        for set in sets {
            for chunk in &set.chunks {
                step.run(chunk.sample.dispatch());
                step.run_all(&set.forwards[chunk.forward]);
                step.run(&chunk.loss);
            }
            slots.push(step.read(&set.loss)?);
        }
        let out = step.finish()?;
        Ok(sets
            .iter()
            .zip(slots)
            .map(|(set, slot)| {
                let v = out.get(slot);
                let n: usize = set.rows.iter().sum();
                (0..r)
                    .map(|ri| {
                        set.rows
                            .iter()
                            .enumerate()
                            .map(|(c, &rows)| v[c * r + ri] as f64 * rows as f64)
                            .sum::<f64>()
                            / n as f64
                    })
                    .collect()
            })
            .collect())
    }
}
