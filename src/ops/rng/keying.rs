//! How the items of a batched random launch are keyed (see the module docs of
//! [`crate::ops::rng`]): one key for the whole batch, or one seed per item.

use crate::gpu::error::{arg_err, shape_err, Result};
use crate::gpu::{Device, Tensor};
use crate::ops::rng::RngKey;

/// One Philox seed per batch item, on the GPU: a packed `[B×1×2]` tensor of u32 words (low,
/// high) stored as raw bits in the f32 buffer (the kernels bind it as `array<u32>`). Used by
/// [`Keying::PerItem`], so item `b` of a batch of independent runs draws what a standalone run
/// with seed `seeds[b]` draws.
#[derive(Clone, Debug)]
pub struct ItemSeeds {
    tensor: Tensor,
    seeds: Vec<u64>,
}

/// The seeds as the u32 word pairs the kernels read, reinterpreted as f32 bits for upload.
fn words(seeds: &[u64]) -> Vec<f32> {
    seeds
        .iter()
        .flat_map(|&s| [s as u32, (s >> 32) as u32])
        .map(f32::from_bits)
        .collect()
}

impl ItemSeeds {
    /// Uploads one seed per item (at least one).
    pub fn upload(gpu: &Device, seeds: &[u64]) -> Result<ItemSeeds> {
        if seeds.is_empty() {
            return Err(arg_err("ItemSeeds", "at least one seed is needed"));
        }
        let tensor = gpu.upload(&words(seeds), seeds.len(), 1, 2)?;
        Ok(ItemSeeds {
            tensor,
            seeds: seeds.to_vec(),
        })
    }

    /// Replaces the seeds (same count) for the launches of the next submit.
    pub fn set(&mut self, gpu: &Device, seeds: &[u64]) -> Result<()> {
        if seeds.len() != self.seeds.len() {
            return Err(shape_err(
                "ItemSeeds::set",
                format!(
                    "{} seeds given for a batch of {} items",
                    seeds.len(),
                    self.seeds.len()
                ),
            ));
        }
        gpu.write(&self.tensor, &words(seeds))?;
        self.seeds = seeds.to_vec();
        Ok(())
    }

    /// The seeds, item by item.
    pub fn seeds(&self) -> &[u64] {
        &self.seeds
    }

    /// Number of items.
    pub fn batch(&self) -> usize {
        self.seeds.len()
    }

    /// The `[B×1×2]` word tensor the kernels bind.
    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    /// Rejects a launch whose output batch differs from the number of seeds.
    pub(crate) fn check_batch(&self, op: &'static str, out: &Tensor) -> Result<()> {
        if out.batch() != self.batch() {
            return Err(shape_err(
                op,
                format!(
                    "{} per-item seeds given for output {} (one seed per item)",
                    self.batch(),
                    out.shape_str()
                ),
            ));
        }
        Ok(())
    }
}

/// The key of a random fill or gather.
#[derive(Clone, Copy, Debug)]
pub enum Keying<'a> {
    /// One key for the whole batch, indexed by the logical index across the batch: the items
    /// draw different numbers (the tasks of one meta-learning run). A bare [`RngKey`] converts
    /// to this.
    Shared(RngKey),
    /// Item `b` keyed by `seeds.seeds()[b]` and indexed within the item: item `b` draws what a
    /// batch-1 [`Keying::Shared`] launch with key `(seeds[b], stream)` draws (independent runs).
    PerItem {
        /// One seed per item.
        seeds: &'a ItemSeeds,
        /// Counter words 2 and 3, as in [`RngKey::stream`]; change it with `set_stream`.
        stream: u64,
    },
}

impl<'a> Keying<'a> {
    /// [`Keying::PerItem`] with `seeds` and `stream`.
    pub fn per_item(seeds: &'a ItemSeeds, stream: u64) -> Keying<'a> {
        Keying::PerItem { seeds, stream }
    }
}

impl From<RngKey> for Keying<'_> {
    fn from(key: RngKey) -> Self {
        Keying::Shared(key)
    }
}
