//! Kernel families. Each file holds the GPU launcher(s) for one WGSL file and the CPU twin that
//! defines what the kernel must compute (tests compare the two on many random shapes).
//!
//! Conventions shared by every launcher:
//! - operands are [`Tensor`]s with a leading batch axis; every operand of one launch has the
//!   same `batch` (use [`Tensor::broadcast`] for a matrix shared by all items);
//! - outputs must not be broadcast views (items would race on the same memory);
//! - launchers validate shapes and return [`crate::gpu::DeviceError::Shape`] naming them, never panic;
//! - CPU twins take logical, contiguous host data (`batch · rows · cols`, broadcasts repeated)
//!   and are generic over [`Real`] so model gradient checks can run them in f64.

pub mod activation;
pub mod adamw;
pub mod cholesky;
pub mod dual;
pub mod elementwise;
pub mod embnorm;
pub mod gather;
pub mod gemm;
pub mod layernorm;
pub mod layernorm_tangent;
pub mod loss;
pub mod preference;
pub mod reduce;
pub mod rng;
pub mod sine;
pub mod softmax;

use crate::gpu::error::{shape_err, Result};
use crate::gpu::Tensor;

pub use activation::Activation;

/// Every kernel family's shader, once: the list the layout test (`tests/kernel_layouts.rs`)
/// checks against the WGSL files. A new family adds its `SHADER` here.
pub const SHADERS: &[&crate::gpu::Shader] = &[
    &adamw::SHADER,
    &cholesky::SHADER,
    &elementwise::SHADER,
    &embnorm::SHADER,
    &gather::SHADER,
    &gemm::SHADER,
    &layernorm::SHADER,
    &layernorm_tangent::SHADER,
    &loss::SHADER,
    &preference::SHADER,
    &reduce::SHADER,
    &rng::SHADER,
    &sine::SHADER,
    &softmax::SHADER,
];

/// Scalar type of the CPU twins: f32 (to match the GPU) or f64 (for finite-difference checks).
pub trait Real:
    Copy
    + PartialOrd
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
    + std::iter::Sum
{
    /// Converts from f64.
    fn from_f64(x: f64) -> Self;
    /// Converts to f64.
    fn to_f64(self) -> f64;
    /// e^x.
    fn exp(self) -> Self;
    /// ln x.
    fn ln(self) -> Self;
    /// √x.
    fn sqrt(self) -> Self;
    /// max(self, other).
    fn max(self, other: Self) -> Self;
    /// True unless NaN or ±∞.
    fn is_finite(self) -> bool;
    /// The same value with no derivative: `jax.lax.stop_gradient` for the forward-mode
    /// [`dual::Dual`] numbers, the identity for plain floats.
    fn detach(self) -> Self {
        self
    }
    /// 0.
    fn zero() -> Self {
        Self::from_f64(0.0)
    }
    /// 1.
    fn one() -> Self {
        Self::from_f64(1.0)
    }
}

macro_rules! impl_real {
    ($t:ty) => {
        impl Real for $t {
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
        }
    };
}
impl_real!(f32);
impl_real!(f64);

/// Checks that all operands share one batch size and returns it.
pub(crate) fn common_batch(op: &'static str, ts: &[(&str, &Tensor)]) -> Result<usize> {
    let b = ts.first().map(|(_, t)| t.batch()).unwrap_or(1);
    if ts.iter().any(|(_, t)| t.batch() != b) {
        let shapes: Vec<String> = ts
            .iter()
            .map(|(n, t)| format!("{n} {}", t.shape_str()))
            .collect();
        return Err(shape_err(
            op,
            format!(
                "operands have different batch sizes: {} (broadcast shared operands with .broadcast(batch))",
                shapes.join(", ")
            ),
        ));
    }
    Ok(b)
}

/// Rejects a broadcast (stride-0) output with more than one item.
pub(crate) fn check_output(op: &'static str, name: &str, t: &Tensor) -> Result<()> {
    if t.batch() > 1 && t.batch_stride() < t.item_len() {
        return Err(shape_err(
            op,
            format!(
                "output {name} {} has batch stride smaller than its item, so items would overlap",
                t.shape_str()
            ),
        ));
    }
    Ok(())
}

/// Converts a size to the u32 the kernels index with, or a shape error.
pub(crate) fn to_u32(op: &'static str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| shape_err(op, format!("{what} = {v} does not fit in u32")))
}

/// Offset, stride pair of an operand as u32.
pub(crate) fn place(op: &'static str, name: &str, t: &Tensor) -> Result<(u32, u32)> {
    Ok((
        to_u32(op, name, t.offset())?,
        to_u32(op, name, t.batch_stride())?,
    ))
}
