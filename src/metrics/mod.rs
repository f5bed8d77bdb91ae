//! Metrics computed on the host from a few read-back values: module decoding (ridge R²).

pub mod r2;
