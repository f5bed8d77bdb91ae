//! Sharding a sweep (`--shard I/N`) and merging the shard directories back into one.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{arg_err, Error, Result};
use crate::run::read_json;

/// The file that marks a sweep directory as one shard of a sweep ([`ShardRecord`]).
pub(super) const SHARD_FILE: &str = "shard.json";

/// One of `count` contiguous slices of a sweep's run list (`--shard index/count`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which slice, `0 ≤ index < count`.
    pub index: usize,
    /// How many slices.
    pub count: usize,
}

impl Shard {
    /// Shard `index` of `count`; refused unless `0 ≤ index < count`.
    pub fn new(index: usize, count: usize) -> Result<Shard> {
        if count == 0 {
            return Err(arg_err(
                "--shard",
                format!("`{index}/{count}`: the count N of I/N must be at least 1"),
            ));
        }
        if index >= count {
            return Err(arg_err(
                "--shard",
                format!(
                    "`{index}/{count}`: the index I of I/N must be below the count N \
                     (0 ≤ I < N; the shards of N = {count} are 0/{count} to {}/{count})",
                    count - 1
                ),
            ));
        }
        Ok(Shard { index, count })
    }

    /// The global indices of this shard's runs in a sweep of `len` runs ([`shard_range`]).
    pub fn runs(self, len: usize) -> Range<usize> {
        shard_range(len, self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = Error;

    /// Parses `I/N`, e.g. `0/4`.
    fn from_str(s: &str) -> Result<Shard> {
        let bad = || {
            arg_err(
                "--shard",
                format!("`{s}` is not I/N (shard I of N, 0 ≤ I < N, e.g. 0/4)"),
            )
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index = i.trim().parse().map_err(|_| bad())?;
        let count = n.trim().parse().map_err(|_| bad())?;
        Shard::new(index, count)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The runs of shard `index` of `count` in a run list of `len`: the contiguous block
/// `⌊index·len/count⌋ .. ⌊(index+1)·len/count⌋`. The blocks of `index = 0..count` cover
/// `0..len` in order, each run once, and differ in length by at most one; contiguous blocks keep
/// consecutive runs that train as one batch together except at the `count − 1` boundaries.
/// `count` must be at least 1 and `index` below it (see [`Shard::new`]).
pub fn shard_range(len: usize, index: usize, count: usize) -> Range<usize> {
    // In u128: index · len cannot overflow.
    let at = |i: usize| (i as u128 * len as u128 / count.max(1) as u128) as usize;
    at(index)..at(index + 1)
}

/// A shard directory's `shard.json`: which shard of which sweep it holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// The shard's index I.
    pub index: usize,
    /// The shard count N.
    pub count: usize,
    /// The global indices of its runs (the `NNN` of their directories).
    pub runs: Vec<usize>,
    /// Runs in the whole sweep.
    pub total: usize,
    /// The sweep file it ran (absolute where it could be resolved): [`merge`](super::merge) resolves the base
    /// configs of the directory's `sweep.toml` relative to it.
    pub sweep: PathBuf,
}

impl ShardRecord {
    /// The shard it records.
    pub fn shard(&self) -> Shard {
        Shard {
            index: self.index,
            count: self.count,
        }
    }
}

/// `dir/shard.json`, or `None` when `dir` is not a shard directory.
pub(super) fn read_shard(dir: &Path) -> Result<Option<ShardRecord>> {
    let path = dir.join(SHARD_FILE);
    if path.exists() {
        read_json(&path).map(Some)
    } else {
        Ok(None)
    }
}
