//! The ANIL and MAML students on the GPU: an [`Mlp`] whose layers' parameters are bound from the
//! packed buffers by name. A META tensor is shared by the tasks (its gradient, when `dmeta` is
//! given, is summed over them); a TASK tensor is per task (gradient into `dtask`).

use std::ops::Range;

use crate::gpu::error::Result;
use crate::gpu::Tensor;
use crate::gpu::{Device, Dispatch};
use crate::nn::{LayerParams, LayerTangent, Mlp, MlpTangent, Param, ParamTangent};
use crate::ops::elementwise::fill;
use crate::students::gpu::{
    check_tangent, param_range, StudentBuffers, StudentProgram, TangentBuffers,
};
use crate::students::ParamLayout;

const OP: &str = "student program";

/// Where a layer's parameters live, and where their gradients go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    /// Meta tensors: shared by the tasks, gradient summed over them into `dmeta` (when given).
    Meta,
    /// Task tensors: one per task, gradient per task into `dtask`.
    Task,
}

/// The layout names of one layer's `w` and `b`, and their group.
pub(crate) struct NamedLayer {
    pub group: Group,
    pub w: String,
    pub b: String,
}

/// `[tasks × rows × cols]` binding of the tensor `name` of `group`.
fn bind(
    layout: &ParamLayout,
    b: &StudentBuffers<'_>,
    group: Group,
    name: &str,
    rows: usize,
    cols: usize,
) -> Result<Param> {
    let tasks = b.task.batch();
    match group {
        Group::Meta => {
            let r = param_range(OP, layout.meta_range(name), name)?;
            let v = |buf: &Tensor| buf.view(buf.offset() + r.start, 1, rows, cols, r.len());
            Param::shared(&v(b.meta)?, b.dmeta.map(v).transpose()?.as_ref(), tasks)
        }
        Group::Task => {
            let r = param_range(OP, layout.task_range(name), name)?;
            let v = |buf: &Tensor| {
                buf.view(
                    buf.offset() + r.start,
                    tasks,
                    rows,
                    cols,
                    buf.batch_stride(),
                )
            };
            Param::per_item(&v(b.task)?, Some(&v(b.dtask)?))
        }
    }
}

/// The tangent of the tensor `name` of `group` in a second-order program: a task tensor moves
/// along `task_dot` (its gradient tangent into `dtask_dot`); a meta tensor holds still and its
/// gradient tangent is the mixed term `H_φθ·θ̇`, summed over tasks into `dmeta_dot`.
fn bind_tangent(
    layout: &ParamLayout,
    t: &TangentBuffers<'_>,
    group: Group,
    name: &str,
    rows: usize,
    cols: usize,
) -> Result<ParamTangent> {
    Ok(match group {
        Group::Meta => {
            let r = param_range(OP, layout.meta_range(name), name)?;
            let g = t.dmeta_dot;
            ParamTangent {
                dot: None,
                grad_dot: Some(g.view(g.offset() + r.start, 1, rows, cols, r.len())?),
            }
        }
        Group::Task => {
            let r = param_range(OP, layout.task_range(name), name)?;
            let v = |buf: &Tensor| {
                let stride = buf.batch_stride();
                buf.view(buf.offset() + r.start, buf.batch(), rows, cols, stride)
            };
            ParamTangent {
                dot: Some(v(t.task_dot)?),
                grad_dot: Some(v(t.dtask_dot)?),
            }
        }
    })
}

/// Zero-fills the `zero_meta` ranges of `dmeta`.
fn zero_ranges(gpu: &Device, dmeta: &Tensor, zero_meta: &[Range<usize>]) -> Result<Vec<Dispatch>> {
    let o = dmeta.offset();
    zero_meta
        .iter()
        .map(|r| fill(gpu, &dmeta.view(o + r.start, 1, 1, r.len(), r.len())?, 0.0))
        .collect()
}

/// The forward and backward of `mlp` over all tasks, its layer `l` bound to `names[l]`;
/// `zero_meta` are the `dmeta` ranges no layer writes (`*_init` tensors), zero-filled by the
/// backward. With `tangent` (a second-order program), also the tangent passes, whose
/// `dmeta_dot` gets the same zero-fill, and with `dx_dot` the tangent of ∂L/∂x.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mlp_program(
    gpu: &Device,
    layout: &ParamLayout,
    mlp: &Mlp,
    names: &[NamedLayer],
    zero_meta: &[Range<usize>],
    b: &StudentBuffers<'_>,
    tangent: Option<&TangentBuffers<'_>>,
    dx_dot: Option<&Tensor>,
) -> Result<StudentProgram> {
    let layers = mlp.layers.iter().zip(names);
    let params = layers
        .clone()
        .map(|(l, n)| {
            Ok(LayerParams {
                w: bind(layout, b, n.group, &n.w, l.fan_in, l.fan_out)?,
                b: Some(bind(layout, b, n.group, &n.b, 1, l.fan_out)?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let prog = match tangent {
        None => mlp.program(gpu, &params, b.x, b.logits, Some(b.dlogits))?,
        Some(t) => {
            check_tangent(OP, layout, b, t)?;
            let lts = layers
                .map(|(l, n)| {
                    Ok(LayerTangent {
                        w: bind_tangent(layout, t, n.group, &n.w, l.fan_in, l.fan_out)?,
                        b: bind_tangent(layout, t, n.group, &n.b, 1, l.fan_out)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let mt = MlpTangent {
                layers: &lts,
                x_dot: None,
                out_dot: t.logits_dot,
                dout_dot: t.dlogits_dot,
                dx_dot,
            };
            mlp.program_with_tangent(gpu, &params, b.x, b.logits, b.dlogits, &mt)?
        }
    };
    let mut backward = match b.dmeta {
        Some(dmeta) => zero_ranges(gpu, dmeta, zero_meta)?,
        None => Vec::new(),
    };
    backward.extend(prog.backward);
    let mut tangent_backward = match tangent {
        Some(t) => zero_ranges(gpu, t.dmeta_dot, zero_meta)?,
        None => Vec::new(),
    };
    tangent_backward.extend(prog.tangent_backward);
    Ok(StudentProgram {
        forward: prog.forward,
        backward,
        tangent_forward: prog.tangent_forward,
        tangent_backward,
    })
}
