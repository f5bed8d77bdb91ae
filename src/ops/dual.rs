//! Forward-mode dual numbers `v + d·ε` (ε² = 0) over f64, a [`Real`] for the CPU twins.
//!
//! Every twin is generic over [`Real`], so running one on `Dual` numbers differentiates it
//! exactly (to f64 rounding) along the tangent seeded in its inputs. Two uses, both in the
//! second-order meta-gradient reference ([`crate::train::episode_twin`]):
//! - a student's BACKWARD run on duals whose task parameters carry a tangent `v` returns, in the
//!   tangent part of its gradients, the Hessian-vector products `H_θθ·v` and `H_φθ·v`
//!   (forward-over-reverse, Pearlmutter's R-operator);
//! - a whole episode (inner loop included) run on duals whose meta-parameters carry a direction
//!   `d` gives the exact directional meta-derivative `⟨∇φ L, d⟩`, an independent check of the
//!   reverse sweep that needs no finite-difference step.
//!
//! Comparisons look at the value only (a ReLU's mask, a max), as JAX's `custom_jvp`s do.

use std::cmp::Ordering;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

use super::Real;

/// `v + d·ε`: a value and its derivative along one direction.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dual {
    /// The value.
    pub v: f64,
    /// Its derivative along the seeded direction.
    pub d: f64,
}

impl Dual {
    /// A value with a tangent.
    pub fn new(v: f64, d: f64) -> Dual {
        Dual { v, d }
    }

    /// Seeds `values` with the tangent `dirs` (same length).
    pub fn seed(values: &[f64], dirs: &[f64]) -> Vec<Dual> {
        assert_eq!(values.len(), dirs.len(), "one tangent per value");
        values
            .iter()
            .zip(dirs)
            .map(|(&v, &d)| Dual { v, d })
            .collect()
    }

    /// Constants (zero tangent).
    pub fn constants(values: &[f64]) -> Vec<Dual> {
        values.iter().map(|&v| Dual { v, d: 0.0 }).collect()
    }

    /// The values of `xs`.
    pub fn values(xs: &[Dual]) -> Vec<f64> {
        xs.iter().map(|x| x.v).collect()
    }

    /// The tangents of `xs`.
    pub fn tangents(xs: &[Dual]) -> Vec<f64> {
        xs.iter().map(|x| x.d).collect()
    }
}

impl PartialEq for Dual {
    fn eq(&self, o: &Dual) -> bool {
        self.v == o.v
    }
}

impl PartialOrd for Dual {
    fn partial_cmp(&self, o: &Dual) -> Option<Ordering> {
        self.v.partial_cmp(&o.v)
    }
}

impl Add for Dual {
    type Output = Dual;
    fn add(self, o: Dual) -> Dual {
        Dual::new(self.v + o.v, self.d + o.d)
    }
}

impl Sub for Dual {
    type Output = Dual;
    fn sub(self, o: Dual) -> Dual {
        Dual::new(self.v - o.v, self.d - o.d)
    }
}

impl Mul for Dual {
    type Output = Dual;
    fn mul(self, o: Dual) -> Dual {
        Dual::new(self.v * o.v, self.d * o.v + self.v * o.d)
    }
}

impl Div for Dual {
    type Output = Dual;
    fn div(self, o: Dual) -> Dual {
        let q = self.v / o.v;
        Dual::new(q, (self.d - q * o.d) / o.v)
    }
}

impl Neg for Dual {
    type Output = Dual;
    fn neg(self) -> Dual {
        Dual::new(-self.v, -self.d)
    }
}

impl AddAssign for Dual {
    fn add_assign(&mut self, o: Dual) {
        *self = *self + o;
    }
}

impl std::iter::Sum for Dual {
    fn sum<I: Iterator<Item = Dual>>(it: I) -> Dual {
        it.fold(Dual::default(), |a, b| a + b)
    }
}

impl Real for Dual {
    fn from_f64(x: f64) -> Self {
        Dual::new(x, 0.0)
    }
    /// The value (the tangent is dropped: callers converting to f64 leave the differentiated
    /// computation).
    fn to_f64(self) -> f64 {
        self.v
    }
    fn exp(self) -> Self {
        let e = self.v.exp();
        Dual::new(e, e * self.d)
    }
    fn ln(self) -> Self {
        Dual::new(self.v.ln(), self.d / self.v)
    }
    fn sqrt(self) -> Self {
        // jnp.sqrt's derivative, 0.5/√x (∞ at 0, as in the reference).
        let r = self.v.sqrt();
        Dual::new(r, 0.5 * self.d / r)
    }
    fn max(self, o: Self) -> Self {
        if o.v > self.v {
            o
        } else {
            self
        }
    }
    fn is_finite(self) -> bool {
        self.v.is_finite() && self.d.is_finite()
    }
    fn detach(self) -> Self {
        Dual::new(self.v, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f(x) = √(x·eˣ) / ln(1 + x²): the dual's tangent against a central difference.
    #[test]
    fn derivatives_match_finite_differences() {
        let f = |x: Dual| {
            let one = Dual::from_f64(1.0);
            (x * x.exp()).sqrt() / (one + x * x).ln() - x.max(Dual::from_f64(0.7))
        };
        for &x in &[0.3, 0.9, 1.7, 2.5] {
            let d = f(Dual::new(x, 1.0)).d;
            let h = 1e-6;
            let fd = (f(Dual::from_f64(x + h)).v - f(Dual::from_f64(x - h)).v) / (2.0 * h);
            assert!(
                (d - fd).abs() < 1e-7 * (1.0 + fd.abs()),
                "x {x}: {d} vs {fd}"
            );
        }
        assert_eq!(Dual::new(2.0, 3.0).detach().d, 0.0);
    }
}
