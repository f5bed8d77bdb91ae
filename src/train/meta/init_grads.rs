//! The packed meta tensors seen by name: a view of one meta tensor, and the gradient of the
//! meta-learned initial values of the task parameters (shared by the episode's first-order
//! path and the second-order reverse pass).

use crate::error::{shape_err, Result};
use crate::gpu::{Device, Dispatch, Tensor};
use crate::ops::reduce::sum_batch;
use crate::students::{Init, ParamLayout};

/// For every meta-learned initial value: `dmeta[init] += alpha · Σ_tasks grads[task tensor]`.
pub(in crate::train::meta) fn add_init_grads(
    gpu: &Device,
    layout: &ParamLayout,
    grads: &Tensor,
    dmeta: &Tensor,
    alpha: f32,
) -> Result<Vec<Dispatch>> {
    let (tasks, p) = (grads.batch(), layout.task_len());
    let mut out = Vec::new();
    for spec in &layout.task {
        if let Init::Meta(name) = &spec.init {
            let range = layout
                .task_range(&spec.name)
                .ok_or_else(|| shape_err("meta", format!("no task tensor {}", spec.name)))?;
            let src = grads.view(grads.offset() + range.start, tasks, 1, range.len(), p)?;
            let dst = meta_view(layout, dmeta, name)?;
            out.push(sum_batch(gpu, &src, &dst, alpha, 1.0)?);
        }
    }
    Ok(out)
}

/// `[1 × 1 × numel]` view of a named meta tensor.
pub(in crate::train::meta) fn meta_view(
    layout: &ParamLayout,
    meta: &Tensor,
    name: &str,
) -> Result<Tensor> {
    let r = layout
        .meta_range(name)
        .ok_or_else(|| shape_err("meta", format!("no meta tensor {name}")))?;
    Ok(meta.view(meta.offset() + r.start, 1, 1, r.len(), r.len())?)
}
