//! Checkpoints in safetensors format (readable from Python with `safetensors.numpy.load_file`):
//! named f32 tensors plus string metadata, written atomically.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use safetensors::SafeTensorError;

use crate::error::{file_err, Error, Result};
use crate::gpu::{Device, Tensor};
use crate::run::write_atomic;

/// Named f32 tensors (flat, with their shape) and string metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// Tensor name → (shape, values).
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    /// Free-form metadata (step, best-by-valid bookkeeping, metrics log).
    pub metadata: BTreeMap<String, String>,
}

fn err(path: &Path, message: impl ToString) -> Error {
    Error::Io {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn st_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(SafeTensorError) -> Error + 'a {
    move |source| Error::Safetensors {
        path: path.to_path_buf(),
        what,
        source: Box::new(source),
    }
}

impl Checkpoint {
    /// Writes the checkpoint atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(n, (shape, v))| (n.clone(), shape.clone(), bytemuck::cast_slice(v).to_vec()))
            .collect();
        let views = bytes
            .iter()
            .map(|(n, shape, b)| {
                Ok((
                    n.clone(),
                    TensorView::new(Dtype::F32, shape.clone(), b)
                        .map_err(st_err(path, "cannot encode a tensor"))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let meta: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        let data = safetensors::serialize(views, Some(meta))
            .map_err(st_err(path, "cannot encode the checkpoint"))?;
        write_atomic(path, &data)
    }

    /// Reads a checkpoint; a missing, truncated or foreign file is an error naming the path.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let data = std::fs::read(path).map_err(file_err("read", path))?;
        let st = SafeTensors::deserialize(&data)
            .map_err(st_err(path, "not a safetensors checkpoint"))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(err(
                    path,
                    format!("tensor {name} is {:?}, expected F32", view.dtype()),
                ));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            tensors.insert(name, (view.shape().to_vec(), values));
        }
        let (_, meta) = SafeTensors::read_metadata(&data)
            .map_err(st_err(path, "not a safetensors checkpoint"))?;
        let metadata = meta
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        Ok(Checkpoint { tensors, metadata })
    }

    /// A metadata entry, or an error naming the missing key.
    pub fn meta(&self, key: &str, path: &Path) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| err(path, format!("checkpoint lacks `{key}`")))
    }
}

/// The GPU tensors of one stateful part (an optimiser, a learner, an experiment) under their
/// checkpoint names. Each part lists its own; an owner nests its parts' lists under a prefix, so
/// the checkpoint's entries are assembled where the state lives, not in the training loop.
#[derive(Default)]
pub struct TensorState<'a> {
    entries: Vec<(String, &'a Tensor)>,
}

impl<'a> TensorState<'a> {
    /// An empty list.
    pub fn new() -> Self {
        TensorState::default()
    }

    /// Adds `tensor` as `name`.
    pub fn with(mut self, name: impl Into<String>, tensor: &'a Tensor) -> Self {
        self.entries.push((name.into(), tensor));
        self
    }

    /// Adds every entry of `part` as `prefix.name`.
    pub fn nest(mut self, prefix: &str, part: TensorState<'a>) -> Self {
        for (name, t) in part.entries {
            self.entries.push((format!("{prefix}.{name}"), t));
        }
        self
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[(String, &'a Tensor)] {
        &self.entries
    }

    /// Reads every tensor from the GPU into `ck` (flat, shape `[len]`).
    pub fn save_into(&self, gpu: &Device, ck: &mut Checkpoint) -> Result<()> {
        for (name, t) in &self.entries {
            ck.tensors
                .insert(name.clone(), (vec![t.len()], gpu.read(t)?));
        }
        Ok(())
    }

    /// Writes every tensor back from `ck` (read from `path`), refusing a missing entry or one of
    /// another length (a checkpoint of a different config).
    pub fn load_from(&self, gpu: &Device, ck: &Checkpoint, path: &Path) -> Result<()> {
        for (name, t) in &self.entries {
            let (_, values) = ck
                .tensors
                .get(name)
                .ok_or_else(|| err(path, format!("corrupt checkpoint field `{name}`")))?;
            if values.len() != t.len() {
                return Err(err(
                    path,
                    format!(
                        "tensor {name} has {} values, the run's model needs {} (different config?)",
                        values.len(),
                        t.len()
                    ),
                ));
            }
            gpu.write(t, values)?;
        }
        Ok(())
    }
}

/// The optimiser's checkpoint: it lists its own state. Here rather than in `ops/adamw.rs` so the
/// kernel layer knows nothing of checkpoint files.
impl crate::ops::adamw::AdamW {
    /// Everything an exact resume needs: the moments, the step count and the skip counters,
    /// named `m`, `v`, `t`, `skipped`, `consecutive_skips`.
    pub fn state(&self) -> TensorState<'_> {
        TensorState::new()
            .with("m", self.m())
            .with("v", self.v())
            .with("t", self.step_count())
            .with("skipped", self.skipped())
            .with("consecutive_skips", self.consecutive_skips())
    }

    /// Restores [`AdamW::state`](crate::ops::adamw::AdamW::state) from a checkpoint read from `path` (un-prefixed names).
    pub fn load_state(&self, gpu: &Device, ck: &Checkpoint, path: &std::path::Path) -> Result<()> {
        self.state().load_from(gpu, ck, path)
    }
}
