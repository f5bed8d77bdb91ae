//! How a layer's parameter is bound to a batch of `items`: SHARED by every item (one tensor seen
//! with batch stride 0; its gradient is the sum over the items) or PER ITEM (batch stride > 0;
//! one gradient per item).
//!
//! Meta-learning binds the meta-parameters shared and the fast weights per item (task); a batch
//! of independent runs binds everything per item. Layers read the binding to pick the gradient
//! kernel: a shared gradient is ONE GEMM over the rows of all items (`K = items·n`), a per-item
//! one a batched GEMM.

use crate::gpu::error::{shape_err, Result};
use crate::gpu::Tensor;

/// Whether a parameter is shared by the items of a batch or owned by each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// One tensor for all items (batch stride 0); gradient summed over items into `[1 × r × c]`.
    Shared,
    /// One tensor per item; gradient per item `[items × r × c]`.
    PerItem,
}

/// A parameter tensor bound for a batch, and where its gradient goes (`None`: not wanted, e.g.
/// the meta-parameters during the inner loop).
#[derive(Clone, Debug)]
pub struct Param {
    /// `[items × rows × cols]` (batch stride 0 when shared).
    pub value: Tensor,
    /// `[1 × rows × cols]` (shared) or `[items × rows × cols]` (per item).
    pub grad: Option<Tensor>,
    /// How `value` and `grad` relate to the batch.
    pub binding: Binding,
}

impl Param {
    /// A parameter shared by `items`: `value` and `grad` are single `[1 × r × c]` tensors.
    pub fn shared(value: &Tensor, grad: Option<&Tensor>, items: usize) -> Result<Param> {
        check_single("shared parameter", value)?;
        if let Some(g) = grad {
            check_single("shared parameter gradient", g)?;
            same_item_shape(value, g)?;
        }
        Ok(Param {
            value: value.broadcast(items)?,
            grad: grad.cloned(),
            binding: Binding::Shared,
        })
    }

    /// A parameter owned by each item: `value` and `grad` are `[items × r × c]`.
    pub fn per_item(value: &Tensor, grad: Option<&Tensor>) -> Result<Param> {
        if let Some(g) = grad {
            same_item_shape(value, g)?;
            if g.batch() != value.batch() {
                return Err(shape_err(
                    "per-item parameter",
                    format!(
                        "value {} and gradient {} must have the same batch",
                        value.shape_str(),
                        g.shape_str()
                    ),
                ));
            }
        }
        Ok(Param {
            value: value.clone(),
            grad: grad.cloned(),
            binding: Binding::PerItem,
        })
    }

    /// Items of the batch the parameter is bound for.
    pub fn items(&self) -> usize {
        self.value.batch()
    }
}

fn check_single(what: &'static str, t: &Tensor) -> Result<()> {
    if t.batch() == 1 {
        return Ok(());
    }
    Err(shape_err(
        what,
        format!("must be a single item [1 × r × c], got {}", t.shape_str()),
    ))
}

fn same_item_shape(value: &Tensor, grad: &Tensor) -> Result<()> {
    if (value.rows(), value.cols()) == (grad.rows(), grad.cols()) {
        return Ok(());
    }
    Err(shape_err(
        "parameter",
        format!(
            "gradient {} must have the rows and columns of the value {}",
            grad.shape_str(),
            value.shape_str()
        ),
    ))
}

/// A contiguous `[items × n × cols]` tensor seen as `[1 × items·n × cols]`: the rows of every item
/// as one matrix, so that `Xᵀ·dZ` over them sums the per-item products in one GEMM.
pub(crate) fn rows_of_all_items(t: &Tensor) -> Result<Tensor> {
    if !t.is_contiguous() {
        return Err(shape_err(
            "shared-parameter gradient",
            format!(
                "summing over items needs contiguous rows, got {}",
                t.shape_str()
            ),
        ));
    }
    let rows = t.batch() * t.rows();
    t.view(t.offset(), 1, rows, t.cols(), rows * t.cols())
}
