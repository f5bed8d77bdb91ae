//! # hypermod
//!
//! A GPU training engine for modular and hypernetwork learning research: hand-written WGSL
//! compute kernels on wgpu, a thin Rust layer that owns buffers and records one command encoder
//! per training step, and a native CPU backend that runs the same programs on host memory
//! (BLAS-class GEMM, rayon over the batch axis) on machines without a GPU.
//!
//! Every tensor carries a leading batch axis (tasks of a meta-batch, runs of a sweep); every
//! kernel is strided-batched over it, and a batch stride of 0 shares one item across the batch.
//!
//! ```no_run
//! use hypermod::gpu::{Device, Step};
//! use hypermod::ops::gemm::{gemm, GemmOptions};
//!
//! # fn main() -> hypermod::Result<()> {
//! let gpu = Device::new()?;
//! // 8 tasks, each multiplying its own 4×3 matrix by one shared 3×2 matrix.
//! let a = gpu.upload(&[1.0; 8 * 4 * 3], 8, 4, 3)?;
//! let w = gpu.upload(&[0.5; 3 * 2], 1, 3, 2)?.broadcast(8)?;
//! let c = gpu.zeros(8, 4, 2)?;
//! let mm = gemm(&gpu, &a, &w, None, &c, &GemmOptions::default())?;
//! let mut step = Step::new(&gpu);
//! step.run(&mm);
//! let slot = step.read(&c)?;
//! let out = step.finish()?;
//! assert_eq!(out.get(slot)[0], 1.5);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod experiments;
pub mod fs;
pub mod gpu;
pub mod metrics;
pub mod native;
pub mod nn;
pub mod ops;
pub mod report;
pub mod run;
pub mod students;
pub mod sweep;
pub mod teacher;
pub mod train;

pub use error::{Error, Result};
