//! The activation functions of `shaders/activation.wgsl`, shared by the GEMM epilogue and the
//! element-wise kernels, with their CPU twins.

use serde::{Deserialize, Serialize};

use crate::gpu::error::Result;
use crate::native::Launch;
use crate::ops::Real;

/// Point-wise nonlinearity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// y = x
    #[default]
    Identity,
    /// y = max(x, 0)
    Relu,
    /// y = x for x > 0, eˣ − 1 otherwise (α = 1)
    Elu,
}

impl Activation {
    /// All variants, for tests and benchmarks.
    pub const ALL: [Activation; 3] = [Activation::Identity, Activation::Relu, Activation::Elu];

    /// The code `act_forward` / `act_backward` switch on.
    pub fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::Elu => 2,
        }
    }

    /// The activation with shader code `code` (`None` for an unknown code).
    pub fn from_code(code: u32) -> Option<Activation> {
        Activation::ALL.into_iter().find(|a| a.code() == code)
    }

    /// CPU twin of `act_forward`.
    pub fn forward<T: Real>(self, x: T) -> T {
        match self {
            Activation::Identity => x,
            Activation::Relu => x.max(T::zero()),
            Activation::Elu => {
                if x > T::zero() {
                    x
                } else {
                    x.exp() - T::one()
                }
            }
        }
    }

    /// CPU twin of `act_backward`: dL/dx from dL/dy and the output y.
    pub fn backward<T: Real>(self, dy: T, y: T) -> T {
        match self {
            Activation::Identity => dy,
            Activation::Relu => {
                if y > T::zero() {
                    dy
                } else {
                    T::zero()
                }
            }
            Activation::Elu => {
                if y > T::zero() {
                    dy
                } else {
                    dy * (y + T::one())
                }
            }
        }
    }

    /// CPU twin of `act_curvature`: act''(x)/act'(x) from the output y (ELU: 1 where y ≤ 0,
    /// else 0; 0 for ReLU and the identity).
    pub fn curvature<T: Real>(self, y: T) -> T {
        match self {
            Activation::Elu if y <= T::zero() => T::one(),
            _ => T::zero(),
        }
    }

    /// CPU twin of the `apply_tangent` kernel: the tangent of [`Activation::backward`],
    /// `act'(x)·ḋy + act''(x)·ẋ·dy`, from the output y and its tangent ẏ.
    pub fn tangent_backward<T: Real>(self, dy_dot: T, (y, y_dot): (T, T), dy: T) -> T {
        self.backward(dy_dot, y) + self.curvature(y) * y_dot * dy
    }
}

impl Activation {
    /// The `ACT` override constant of a native launch (the WGSL kernels' activation switch).
    pub(crate) fn of_launch(l: &Launch<'_>) -> Result<Activation> {
        let code = l.constant("ACT", 0.0) as u32;
        Activation::from_code(code).ok_or_else(|| l.err(format!("unknown activation code {code}")))
    }
}
