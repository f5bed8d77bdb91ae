//! The ANIL and MAML students on the GPU: an [`Mlp`] whose layers' parameters are bound from the
//! packed buffers by name. A META tensor is shared by the tasks (its gradient, when `dmeta` is
//! given, is summed over them); a TASK tensor is per task (gradient into `dtask`).

use std::ops::Range;

use crate::error::Result;
use crate::gpu::GpuTensor;
use crate::gpu::{Dispatch, Gpu};
use crate::models::gpu::{param_range, StudentBuffers, StudentProgram};
use crate::models::ParamLayout;
use crate::nn::{LayerParams, Mlp, Param};
use crate::ops::elementwise::fill;

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
            let v = |buf: &GpuTensor| buf.view(buf.offset() + r.start, 1, rows, cols, r.len());
            Param::shared(&v(b.meta)?, b.dmeta.map(v).transpose()?.as_ref(), tasks)
        }
        Group::Task => {
            let r = param_range(OP, layout.task_range(name), name)?;
            let v = |buf: &GpuTensor| {
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

/// The forward and backward of `mlp` over all tasks, its layer `l` bound to `names[l]`;
/// `zero_meta` are the `dmeta` ranges no layer writes (`*_init` tensors), zero-filled by the
/// backward.
pub(crate) fn mlp_program(
    gpu: &Gpu,
    layout: &ParamLayout,
    mlp: &Mlp,
    names: &[NamedLayer],
    zero_meta: &[Range<usize>],
    b: &StudentBuffers<'_>,
) -> Result<StudentProgram> {
    let params = mlp
        .layers
        .iter()
        .zip(names)
        .map(|(l, n)| {
            Ok(LayerParams {
                w: bind(layout, b, n.group, &n.w, l.fan_in, l.fan_out)?,
                b: Some(bind(layout, b, n.group, &n.b, 1, l.fan_out)?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let prog = mlp.program(gpu, &params, b.x, b.logits, Some(b.dlogits))?;
    let mut backward: Vec<Dispatch> = Vec::new();
    if let Some(dmeta) = b.dmeta {
        let o = dmeta.offset();
        for r in zero_meta {
            backward.push(fill(
                gpu,
                &dmeta.view(o + r.start, 1, 1, r.len(), r.len())?,
                0.0,
            )?);
        }
    }
    backward.extend(prog.backward);
    Ok(StudentProgram {
        forward: prog.forward,
        backward,
    })
}
