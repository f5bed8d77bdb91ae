//! Batched GPU forward and backward of the plain (haiku `Linear`, bias, ReLU) MLPs of the ANIL
//! and MAML students, over all tasks of a meta-batch at once.
//!
//! Each layer is ONE batched GEMM over the tasks, its weights a view into the packed parameter
//! buffers: a meta tensor is broadcast (batch stride 0), a task tensor is seen with the task
//! buffer's batch stride. Bias and ReLU run in the GEMM epilogue, and every layer output is kept,
//! because the ReLU backward is taken from outputs.
//!
//! Gradients of a shared (broadcast) weight are summed over the tasks inside one GEMM: the
//! per-task layer inputs `[tasks × n × fan_in]` are contiguous, so they are the same memory as
//! `[1 × tasks·n × fan_in]`, and `Xᵀ·dZ` over those rows is the sum of the per-task products.
//! Per-task weights get batched GEMMs straight into their `dtask` views.

use std::ops::Range;

use crate::error::{shape_err, Result};
use crate::gpu::{Dispatch, Gpu, GpuTensor};
use crate::models::gpu::StudentBuffers;
use crate::models::ParamLayout;
use crate::ops::elementwise::{activation_backward, copy, fill};
use crate::ops::gemm::{gemm, GemmOptions};
use crate::ops::reduce::col_sums;
use crate::ops::Activation;

const OP: &str = "student program";

/// Where a layer's parameters live, and where their gradients go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    /// Meta tensors: shared by the tasks, gradient summed over them into `dmeta` (when given).
    Meta,
    /// Task tensors: one per task, gradient per task into `dtask`.
    Task,
}

/// One dense layer `y = act(x @ w + b)` of an MLP student.
#[derive(Clone, Debug)]
pub(crate) struct Dense {
    /// Parameter group of `w` and `b`.
    pub group: Group,
    /// Name of `w` (`[fan_in, fan_out]`) in its group's layout.
    pub w: String,
    /// Name of `b` (`[fan_out]`).
    pub b: String,
    /// Input features.
    pub fan_in: usize,
    /// Output features.
    pub fan_out: usize,
    /// ReLU after the layer (else identity).
    pub relu: bool,
}

/// Checks the buffers against the layout and the student's sizes; returns `(tasks, n)`.
pub(crate) fn check_buffers(
    layout: &ParamLayout,
    input_dim: usize,
    output_dim: usize,
    b: &StudentBuffers<'_>,
) -> Result<(usize, usize)> {
    let (tasks, n) = (b.x.batch(), b.x.rows());
    let shape = |t: &GpuTensor| (t.batch(), t.rows(), t.cols());
    let mut want = vec![
        ("meta", b.meta, (1, 1, layout.meta_len())),
        ("task", b.task, (tasks, 1, layout.task_len())),
        ("x", b.x, (tasks, n, input_dim)),
        ("logits", b.logits, (tasks, n, output_dim)),
        ("dlogits", b.dlogits, (tasks, n, output_dim)),
        ("dtask", b.dtask, (tasks, 1, layout.task_len())),
    ];
    if let Some(dmeta) = b.dmeta {
        want.push(("dmeta", dmeta, (1, 1, layout.meta_len())));
    }
    for (name, t, (wb, wr, wc)) in want {
        if shape(t) != (wb, wr, wc) {
            return Err(shape_err(
                OP,
                format!(
                    "{name} must be [{wb}×{wr}×{wc}] (tasks and n from x {}), got {}",
                    b.x.shape_str(),
                    t.shape_str()
                ),
            ));
        }
    }
    for (name, t) in [("logits", b.logits), ("dlogits", b.dlogits)] {
        if !t.is_contiguous() {
            return Err(shape_err(
                OP,
                format!("{name} {} must be contiguous", t.shape_str()),
            ));
        }
    }
    Ok((tasks, n))
}

fn range(found: Option<Range<usize>>, name: &str) -> Result<Range<usize>> {
    found.ok_or_else(|| shape_err(OP, format!("the layout has no parameter {name}")))
}

/// `[tasks × rows × cols]` view of the tensor `name` in a packed buffer of `group` (`meta` is
/// broadcast; `task` keeps its batch stride).
fn param_view(
    layout: &ParamLayout,
    buf: &GpuTensor,
    group: Group,
    name: &str,
    tasks: usize,
    rows: usize,
    cols: usize,
) -> Result<GpuTensor> {
    match group {
        Group::Meta => {
            let r = range(layout.meta_range(name), name)?;
            buf.view(buf.offset() + r.start, 1, rows, cols, rows * cols)?
                .broadcast(tasks)
        }
        Group::Task => {
            let r = range(layout.task_range(name), name)?;
            buf.view(
                buf.offset() + r.start,
                tasks,
                rows,
                cols,
                buf.batch_stride(),
            )
        }
    }
}

/// A contiguous `[tasks × n × cols]` tensor seen as `[1 × tasks·n × cols]`.
fn rows_of_all_tasks(t: &GpuTensor) -> Result<GpuTensor> {
    let rows = t.batch() * t.rows();
    t.view(t.offset(), 1, rows, t.cols(), rows * t.cols())
}

/// The forward and backward launches of an MLP over all tasks; `zero_meta` are the `dmeta`
/// ranges no layer writes (`*_init` tensors), filled with zeros by the backward.
pub(crate) fn mlp_program(
    gpu: &Gpu,
    layout: &ParamLayout,
    layers: &[Dense],
    zero_meta: &[Range<usize>],
    b: &StudentBuffers<'_>,
    tasks: usize,
    n: usize,
) -> Result<(Vec<Dispatch>, Vec<Dispatch>)> {
    let nl = layers.len();
    // acts[0] = x, acts[l + 1] = output of layer l (the last one is `logits`).
    let mut acts = vec![b.x.clone()];
    for l in &layers[..nl - 1] {
        acts.push(gpu.zeros(tasks, n, l.fan_out)?);
    }
    acts.push(b.logits.clone());

    let weights = |l: &Dense| -> Result<(GpuTensor, GpuTensor)> {
        let buf = match l.group {
            Group::Meta => b.meta,
            Group::Task => b.task,
        };
        Ok((
            param_view(layout, buf, l.group, &l.w, tasks, l.fan_in, l.fan_out)?,
            param_view(layout, buf, l.group, &l.b, tasks, 1, l.fan_out)?,
        ))
    };
    let act = |l: &Dense| {
        if l.relu {
            Activation::Relu
        } else {
            Activation::Identity
        }
    };

    let mut forward = Vec::with_capacity(nl);
    for (i, l) in layers.iter().enumerate() {
        let (w, bias) = weights(l)?;
        let opts = GemmOptions {
            activation: act(l),
            ..GemmOptions::default()
        };
        forward.push(gemm(gpu, &acts[i], &w, Some(&bias), &acts[i + 1], &opts)?);
    }

    // Gradient destinations; meta layers have none in the inner loop (no `dmeta`).
    let grads = |l: &Dense| -> Result<Option<(GpuTensor, GpuTensor)>> {
        match (l.group, b.dmeta) {
            (Group::Meta, None) => Ok(None),
            (Group::Meta, Some(dmeta)) => {
                let r = |name: &str| range(layout.meta_range(name), name);
                let (rw, rb) = (r(&l.w)?, r(&l.b)?);
                let o = dmeta.offset();
                Ok(Some((
                    dmeta.view(o + rw.start, 1, l.fan_in, l.fan_out, rw.len())?,
                    dmeta.view(o + rb.start, 1, 1, l.fan_out, rb.len())?,
                )))
            }
            (Group::Task, _) => Ok(Some((
                param_view(
                    layout,
                    b.dtask,
                    Group::Task,
                    &l.w,
                    tasks,
                    l.fan_in,
                    l.fan_out,
                )?,
                param_view(layout, b.dtask, Group::Task, &l.b, tasks, 1, l.fan_out)?,
            ))),
        }
    };
    let dests = layers.iter().map(grads).collect::<Result<Vec<_>>>()?;

    let mut backward = Vec::new();
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
    // Backpropagate only down to the lowest layer that has a gradient to write.
    let Some(lowest) = dests.iter().position(Option::is_some) else {
        return Ok((forward, backward));
    };
    // A shared layer-0 weight sums over the rows of x, which must then be contiguous; a strided
    // x (e.g. the first n rows of a larger sample buffer) is copied first.
    if layers[0].group == Group::Meta && dests[0].is_some() && !b.x.is_contiguous() {
        let xc = gpu.zeros(tasks, n, layers[0].fan_in)?;
        backward.push(copy(gpu, b.x, &xc)?);
        acts[0] = xc;
    }
    // Gradient scratch: two buffers per width, so that a dispatch never writes the buffer it
    // reads (dL/d(output) → dL/d(pre-activation) → dL/d(input)).
    let mut scratch: Vec<[GpuTensor; 2]> = Vec::new();
    let mut pick = |cols: usize, avoid: &GpuTensor| -> Result<GpuTensor> {
        let pair = match scratch.iter().position(|p| p[0].cols() == cols) {
            Some(i) => &scratch[i],
            None => {
                scratch.push([gpu.zeros(tasks, n, cols)?, gpu.zeros(tasks, n, cols)?]);
                &scratch[scratch.len() - 1]
            }
        };
        Ok(pair[usize::from(pair[0].same_buffer(avoid))].clone())
    };
    let mut dy = b.dlogits.clone();
    for i in (lowest..nl).rev() {
        let l = &layers[i];
        let dz = if l.relu {
            let dz = pick(l.fan_out, &dy)?;
            backward.push(activation_backward(
                gpu,
                &dy,
                &acts[i + 1],
                &dz,
                Activation::Relu,
            )?);
            dz
        } else {
            dy.clone()
        };
        if let Some((dw, db)) = &dests[i] {
            let opts = GemmOptions {
                trans_a: true,
                ..GemmOptions::default()
            };
            if l.group == Group::Meta {
                let (x_all, dz_all) = (rows_of_all_tasks(&acts[i])?, rows_of_all_tasks(&dz)?);
                backward.push(gemm(gpu, &x_all, &dz_all, None, dw, &opts)?);
                backward.push(col_sums(gpu, &dz_all, db, 1.0, 0.0)?);
            } else {
                backward.push(gemm(gpu, &acts[i], &dz, None, dw, &opts)?);
                backward.push(col_sums(gpu, &dz, db, 1.0, 0.0)?);
            }
        }
        if i > lowest {
            let (w, _) = weights(l)?;
            let dx = pick(l.fan_in, &dz)?;
            let opts = GemmOptions {
                trans_b: true,
                ..GemmOptions::default()
            };
            backward.push(gemm(gpu, &dz, &w, None, &dx, &opts)?);
            dy = dx;
        }
    }
    Ok((forward, backward))
}
