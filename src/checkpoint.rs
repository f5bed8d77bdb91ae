//! Checkpoints in safetensors format (readable from Python with `safetensors.numpy.load_file`):
//! named f32 tensors plus string metadata, written atomically.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};
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
                    TensorView::new(Dtype::F32, shape.clone(), b).map_err(|e| err(path, e))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let meta: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        let data = safetensors::serialize(views, Some(meta)).map_err(|e| err(path, e))?;
        write_atomic(path, &data)
    }

    /// Reads a checkpoint; a missing, truncated or foreign file is an error naming the path.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let data = std::fs::read(path).map_err(|e| err(path, e))?;
        let st = SafeTensors::deserialize(&data)
            .map_err(|e| err(path, format!("not a safetensors checkpoint: {e}")))?;
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
        let (_, meta) = SafeTensors::read_metadata(&data).map_err(|e| err(path, e))?;
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
