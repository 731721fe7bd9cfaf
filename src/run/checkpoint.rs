//! Checkpoints in the safetensors format.
//!
//! A checkpoint is two files: `ckpt-NNNNNNN.safetensors` holds the model (tensor names are the
//! spec's layer names: `conv1.weight`, `conv1.bias`, `bn1.running_mean`, …, with PyTorch's layouts,
//! so `torch.nn.Module.load_state_dict(safetensors.torch.load_file(path))` works for a module with
//! the same names), and `ckpt-NNNNNNN.state.safetensors` holds what resuming needs (optimizer
//! state, iteration, data position) in its tensors and metadata. Both are written to a temporary
//! file, synced and renamed, so a crash leaves the previous checkpoint intact.

use super::error::RunError;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensors {
    /// Name → (shape, values), in name order.
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    pub metadata: BTreeMap<String, String>,
}

impl Tensors {
    pub fn insert(&mut self, name: impl Into<String>, shape: Vec<usize>, values: Vec<f32>) {
        self.tensors.insert(name.into(), (shape, values));
    }
    pub fn get(&self, name: &str) -> Option<&(Vec<usize>, Vec<f32>)> {
        self.tensors.get(name)
    }
}

/// Writes `t` to `path` atomically (temporary file, fsync, rename).
pub fn save(path: &Path, t: &Tensors) -> Result<(), RunError> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = t
        .tensors
        .iter()
        .map(|(k, (shape, v))| (k.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect(), shape.clone()))
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(k, b, s)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (k.clone(), v))
                .map_err(|e| RunError::new("E0502", format!("checkpoint tensor `{k}`: {e:?}")))
        })
        .collect::<Result<_, _>>()?;
    let meta: std::collections::HashMap<String, String> = t.metadata.clone().into_iter().collect();
    let data = safetensors::serialize(views, &Some(meta))
        .map_err(|e| RunError::new("E0502", format!("cannot serialize checkpoint: {e:?}")))?;
    let tmp: PathBuf = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| RunError::io(&tmp, "create", e))?;
    f.write_all(&data).and_then(|_| f.sync_all()).map_err(|e| RunError::io(&tmp, "write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| RunError::io(path, "rename into", e))
}

/// Reads a checkpoint written by [`save`] (or any f32 safetensors file).
pub fn load(path: &Path) -> Result<Tensors, RunError> {
    let data = std::fs::read(path).map_err(|e| RunError::io(path, "read", e))?;
    let corrupt = |e: String| {
        RunError::new("E0503", format!("checkpoint `{}` is corrupt: {e}", path.display()))
            .help("resume from an earlier checkpoint in the same folder, or start the run again")
    };
    let st = SafeTensors::deserialize(&data).map_err(|e| corrupt(format!("{e:?}")))?;
    let (_, meta) = SafeTensors::read_metadata(&data).map_err(|e| corrupt(format!("{e:?}")))?;
    let mut out = Tensors::default();
    if let Some(m) = meta.metadata() {
        out.metadata = m.clone().into_iter().collect();
    }
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(corrupt(format!("tensor `{name}` is {:?}, expected F32", view.dtype())));
        }
        let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        out.tensors.insert(name, (view.shape().to_vec(), values));
    }
    Ok(out)
}
