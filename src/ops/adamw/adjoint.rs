//! The adjoint of one AdamW step on the device ([`AdamW::vjp`]): the inner optimiser run
//! backwards for second-order meta-gradients. Its specification is the twin
//! [`adamw_vjp_cpu`](super::adamw_vjp_cpu).

use super::{AdamW, Params, SHADER, WG};
use crate::gpu::error::{arg_err, shape_err, Result};
use crate::gpu::{grid_1d, Access, Cost, Device, Dispatch, KernelSpec, Tensor};
use crate::ops::{check_output, place};

/// The tensors of one AdamW step's adjoint ([`AdamW::vjp`]), all `[B × R × C]` like the
/// optimiser's params, each with any offset and stride (the outputs not broadcast). Every output
/// needs a buffer of its own, shared with no other operand: the device layer rejects a buffer
/// bound twice when one binding writes it, views at different offsets included.
pub struct AdamWVjpIo<'a> {
    /// The gradient the step used (read).
    pub g: &'a Tensor,
    /// The first moment the step wrote (read).
    pub m_new: &'a Tensor,
    /// The second moment the step wrote (read).
    pub v_new: &'a Tensor,
    /// In: θ̄′, the adjoint of the step's new params; out: `(1 − lr·wd)·θ̄′`, the explicit part
    /// of θ̄ (the caller adds `H·ḡ`).
    pub theta_bar: &'a Tensor,
    /// In: m̄′; out: m̄, the adjoint of the moment the step read.
    pub m_bar: &'a Tensor,
    /// In: v̄′; out: v̄.
    pub v_bar: &'a Tensor,
    /// Out: ḡ, the adjoint of the step's gradient.
    pub g_bar: &'a Tensor,
}

impl AdamWVjpIo<'_> {
    /// Every operand with its name and whether the kernel writes it.
    fn operands(&self) -> [(&'static str, &Tensor, bool); 7] {
        [
            ("g", self.g, false),
            ("m_new", self.m_new, false),
            ("v_new", self.v_new, false),
            ("theta_bar", self.theta_bar, true),
            ("m_bar", self.m_bar, true),
            ("v_bar", self.v_bar, true),
            ("g_bar", self.g_bar, true),
        ]
    }
}

const VJP_OP: &str = "AdamW::vjp";

/// Second-order meta-gradients: the optimiser step run backwards.
impl AdamW {
    /// Prepares the adjoint of inner step `t` (1-based: the count of the step whose adjoint this
    /// is), element by element as [`adamw_vjp_cpu`](super::adamw_vjp_cpu): reads `io.g`, `io.m_new`, `io.v_new`,
    /// updates `io.theta_bar`, `io.m_bar`, `io.v_bar` in place and writes `io.g_bar`. A reverse
    /// pass over T inner steps prepares T dispatches (t is a launch parameter, so each replays
    /// with no write). Each item's learning rate and weight decay are read from this optimiser's
    /// state when the dispatch runs, so they must still be the ones the step used.
    ///
    /// Errors: [`crate::gpu::DeviceError::InvalidArgument`] for an optimiser that clips (`max_grad_norm >
    /// 0`: clipping has no adjoint here) or `t = 0`; [`crate::gpu::DeviceError::Shape`] naming the shapes
    /// when an operand's shape differs from the params', an output is broadcast or an output
    /// shares a buffer with another operand.
    pub fn vjp(&self, gpu: &Device, t: u32, io: &AdamWVjpIo<'_>) -> Result<Dispatch> {
        if self.cfg.max_grad_norm > 0.0 {
            return Err(arg_err(
                VJP_OP,
                format!(
                    "max_grad_norm = {} > 0: gradient clipping has no adjoint here (use an \
                     optimiser without clipping in the inner loop)",
                    self.cfg.max_grad_norm
                ),
            ));
        }
        if t == 0 {
            return Err(arg_err(
                VJP_OP,
                "t = 0: t is the 1-based count of the step whose adjoint this is",
            ));
        }
        let ops = io.operands();
        self.check_vjp_shapes(&ops)?;
        check_distinct(VJP_OP, &ops)?;
        let (b, n) = (self.m.batch(), self.m.item_len());
        let at = |name: &str, x: &Tensor| place(VJP_OP, name, x);
        let ((w_off, w_stride), (g_off, g_stride)) =
            (at("theta_bar", io.theta_bar)?, at("g", io.g)?);
        let ((mn_off, mn_stride), (vn_off, vn_stride)) =
            (at("m_new", io.m_new)?, at("v_new", io.v_new)?);
        let ((mb_off, mb_stride), (vb_off, vb_stride)) =
            (at("m_bar", io.m_bar)?, at("v_bar", io.v_bar)?);
        let (gb_off, gb_stride) = at("g_bar", io.g_bar)?;
        let params = Params {
            w_off,
            w_stride,
            g_off,
            g_stride,
            t,
            mn_off,
            mn_stride,
            vn_off,
            vn_stride,
            mb_off,
            mb_stride,
            vb_off,
            vb_stride,
            gb_off,
            gb_stride,
            ..Params::base(b, n, &self.cfg)?
        };
        use Access::{Read, ReadWrite};
        let spec = KernelSpec {
            shader: &SHADER,
            entry: "vjp",
            constants: &[],
            // Bindings 3 and 4 (moments, sum of squares) are unused by `vjp`: g stands in,
            // read-only, so it may alias anything read. The state is read_write in the shader.
            access: &[
                ReadWrite, Read, Read, Read, ReadWrite, Read, Read, ReadWrite, ReadWrite, ReadWrite,
            ],
        };
        let tensors = [
            io.theta_bar,
            io.g,
            io.g,
            io.g,
            &self.state,
            io.m_new,
            io.v_new,
            io.m_bar,
            io.v_bar,
            io.g_bar,
        ];
        let total = (b * n) as f64;
        let cost = Cost {
            flops: 30.0 * total,
            // Read g, m′, v′, θ̄′, m̄′, v̄′; write θ̄, m̄, v̄, ḡ.
            bytes: 4.0 * 10.0 * total,
        };
        gpu.dispatch(
            &spec,
            &params,
            &tensors,
            grid_1d((b * n).div_ceil(WG)),
            cost,
        )
    }

    /// Checks that every operand of [`AdamW::vjp`] has the params' shape and no output is
    /// broadcast.
    fn check_vjp_shapes(&self, ops: &[(&'static str, &Tensor, bool)]) -> Result<()> {
        let want = (self.m.batch(), self.m.rows(), self.m.cols());
        for &(name, x, written) in ops {
            if (x.batch(), x.rows(), x.cols()) != want {
                let shapes: Vec<String> = ops
                    .iter()
                    .map(|(n, x, _)| format!("{n} {}", x.shape_str()))
                    .collect();
                return Err(shape_err(
                    VJP_OP,
                    format!(
                        "{name} must have the params' shape [{}×{}×{}]: {}",
                        want.0,
                        want.1,
                        want.2,
                        shapes.join(", ")
                    ),
                ));
            }
            if written {
                check_output(VJP_OP, name, x)?;
            }
        }
        Ok(())
    }
}

/// Rejects two operands on one buffer when one of them is written, naming both (the device
/// layer would too, but by binding number).
fn check_distinct(op: &'static str, ops: &[(&'static str, &Tensor, bool)]) -> Result<()> {
    for (i, &(a, x, wa)) in ops.iter().enumerate() {
        for &(b, y, wb) in &ops[i + 1..] {
            if (wa || wb) && x.same_buffer(y) {
                return Err(shape_err(
                    op,
                    format!(
                        "{a} {} and {b} {} share a buffer that the kernel writes: give each \
                         output a buffer of its own",
                        x.shape_str(),
                        y.shape_str()
                    ),
                ));
            }
        }
    }
    Ok(())
}
