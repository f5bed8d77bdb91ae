//! Engine kernels on host arrays, for timing hypermod next to numpy/PyTorch from Python: the
//! arrays are uploaded, one launch runs, the result is read back. Operands follow the engine's
//! batch-axis semantics: a 2-D operand (or a 3-D one with one item) is shared by every item of
//! the batch (stride 0).

use hypermod::gpu::DeviceError;
use hypermod::gpu::{Device, Tensor};
use hypermod::ops::gemm::{gemm, GemmOptions};
use hypermod::ops::Activation;

/// A host operand: its shape and row-major values.
pub type Host = (Vec<usize>, Vec<f32>);

/// One `hypermod.gemm` call.
pub struct GemmCall {
    pub a: Host,
    pub b: Host,
    pub bias: Option<Host>,
    pub c: Option<Host>,
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    pub beta: f32,
    pub activation: String,
}

fn shape_err(detail: String) -> DeviceError {
    DeviceError::Shape { op: "gemm", detail }
}

/// (items, rows, cols) of a 2-D or 3-D operand.
fn dims(name: &str, shape: &[usize]) -> Result<(usize, usize, usize), DeviceError> {
    match *shape {
        [r, c] => Ok((1, r, c)),
        [b, r, c] => Ok((b, r, c)),
        _ => Err(shape_err(format!(
            "{name} must be 2-D or 3-D, got shape {shape:?}"
        ))),
    }
}

/// Uploads `values` as `items × rows × cols`, broadcast to `batch` items when it has one.
fn put(gpu: &Device, name: &str, op: &Host, batch: usize) -> Result<Tensor, DeviceError> {
    let (items, rows, cols) = dims(name, &op.0)?;
    let t = gpu.upload(&op.1, items, rows, cols)?;
    match items {
        1 if batch > 1 => t.broadcast(batch),
        n if n == batch => Ok(t),
        n => Err(shape_err(format!(
            "{name} has {n} items, the batch has {batch} (give one item to share it)"
        ))),
    }
}

fn activation(name: &str) -> Result<Activation, DeviceError> {
    let op = "activation";
    match name.to_lowercase().as_str() {
        "identity" | "none" | "linear" => Ok(Activation::Identity),
        "relu" => Ok(Activation::Relu),
        "elu" => Ok(Activation::Elu),
        other => Err(DeviceError::InvalidArgument {
            op,
            detail: format!("unknown activation '{other}': expected identity, relu or elu"),
        }),
    }
}

impl GemmCall {
    /// Runs the GEMM on `gpu`; returns the output's shape (3-D when A is) and values.
    pub fn run(&self, gpu: &Device) -> Result<(Vec<usize>, Vec<f32>), DeviceError> {
        let (ab, ar, ac) = dims("a", &self.a.0)?;
        let (bb, _, _) = dims("b", &self.b.0)?;
        let batch = ab.max(bb);
        let (m, n) = {
            let (_, br, bc) = dims("b", &self.b.0)?;
            (
                if self.trans_a { ac } else { ar },
                if self.trans_b { br } else { bc },
            )
        };
        let a = put(gpu, "a", &self.a, batch)?;
        let b = put(gpu, "b", &self.b, batch)?;
        let bias = self
            .bias
            .as_ref()
            .map(|op| per_column(gpu, "bias", op, batch))
            .transpose()?;
        let c = gpu.zeros(batch, m, n)?;
        if let Some((shape, v)) = &self.c {
            if v.len() != batch * m * n {
                return Err(shape_err(format!(
                    "c has shape {shape:?}, the output is [{batch}, {m}, {n}]"
                )));
            }
            gpu.write(&c, v)?;
        }
        let opts = GemmOptions {
            trans_a: self.trans_a,
            trans_b: self.trans_b,
            alpha: self.alpha,
            beta: self.beta,
            activation: activation(&self.activation)?,
            tile: None,
        };
        let d = gemm(gpu, &a, &b, bias.as_ref(), &c, &opts)?;
        gpu.run(&[&d])?;
        let out = gpu.read(&c)?;
        let shape = if self.a.0.len() == 3 || self.b.0.len() == 3 {
            vec![batch, m, n]
        } else {
            vec![m, n]
        };
        Ok((shape, out))
    }
}

/// Runs `d` once and reads `out` back with `shape` (the input's, 2-D or 3-D).
fn finish(
    gpu: &Device,
    d: &hypermod::gpu::Dispatch,
    out: &Tensor,
    shape: &[usize],
) -> Result<(Vec<usize>, Vec<f32>), DeviceError> {
    gpu.run(&[d])?;
    Ok((shape.to_vec(), gpu.read(out)?))
}

/// A per-column parameter (γ or β): `[C]` shared by every item, or `[B, C]`.
fn per_column(gpu: &Device, name: &str, op: &Host, batch: usize) -> Result<Tensor, DeviceError> {
    let (shape, v) = op;
    let items = if shape.len() == 1 { 1 } else { shape[0] };
    let row = (vec![items, 1, v.len() / items.max(1)], v.clone());
    put(gpu, name, &row, batch)
}

/// `hypermod.layer_norm`: LayerNorm over the last axis (haiku semantics).
pub fn layer_norm(
    gpu: &Device,
    x: &Host,
    gamma: Option<&Host>,
    beta: Option<&Host>,
    eps: f32,
) -> Result<(Vec<usize>, Vec<f32>), DeviceError> {
    let (batch, rows, cols) = dims("x", &x.0)?;
    let xt = gpu.upload(&x.1, batch, rows, cols)?;
    let g = gamma
        .map(|g| per_column(gpu, "gamma", g, batch))
        .transpose()?;
    let b = beta
        .map(|b| per_column(gpu, "beta", b, batch))
        .transpose()?;
    let (y, mean, rstd) = (
        gpu.zeros(batch, rows, cols)?,
        gpu.zeros(batch, rows, 1)?,
        gpu.zeros(batch, rows, 1)?,
    );
    let d = hypermod::ops::layernorm::layernorm_forward(
        gpu,
        &xt,
        g.as_ref(),
        b.as_ref(),
        &y,
        &mean,
        &rstd,
        eps,
    )?;
    finish(gpu, &d, &y, &x.0)
}

/// `hypermod.activation`: an element-wise activation.
pub fn activation_forward(
    gpu: &Device,
    x: &Host,
    act: &str,
) -> Result<(Vec<usize>, Vec<f32>), DeviceError> {
    let (batch, rows, cols) = dims("x", &x.0)?;
    let xt = gpu.upload(&x.1, batch, rows, cols)?;
    let y = gpu.zeros(batch, rows, cols)?;
    let d = hypermod::ops::elementwise::activation_forward(gpu, &xt, &y, activation(act)?)?;
    finish(gpu, &d, &y, &x.0)
}
