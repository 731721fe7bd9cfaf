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

/// Metadata key of a checkpoint's checksum: CRC-32 (hex) of every tensor's name, shape and
/// bytes and of every other metadata entry, in name order.
pub const CHECKSUM_KEY: &str = "expc.crc32";

/// The checksum [`save`] stores and [`load`] verifies.
pub fn checksum(t: &Tensors) -> String {
    let mut h = crc32fast::Hasher::new();
    for (name, (shape, values)) in &t.tensors {
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(&(shape.len() as u64).to_le_bytes());
        for d in shape {
            h.update(&(*d as u64).to_le_bytes());
        }
        h.update(&(values.len() as u64).to_le_bytes());
        for v in values {
            h.update(&v.to_le_bytes());
        }
    }
    for (k, v) in t.metadata.iter().filter(|(k, _)| *k != CHECKSUM_KEY) {
        for s in [k, v] {
            h.update(&(s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
    }
    format!("{:08x}", h.finalize())
}

/// Writes `t` to `path` atomically (temporary file, fsync, rename), with its checksum in the
/// metadata.
pub fn save(path: &Path, t: &Tensors) -> Result<(), RunError> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> =
        t.tensors.iter().map(|(k, (shape, v))| (k.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect(), shape.clone())).collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(k, b, s)| {
            TensorView::new(Dtype::F32, s.clone(), b).map(|v| (k.clone(), v)).map_err(|e| RunError::new("E0502", format!("checkpoint tensor `{k}`: {e:?}")))
        })
        .collect::<Result<_, _>>()?;
    let mut meta: std::collections::HashMap<String, String> = t.metadata.clone().into_iter().collect();
    meta.insert(CHECKSUM_KEY.into(), checksum(t));
    let data = safetensors::serialize(views, &Some(meta)).map_err(|e| RunError::new("E0502", format!("cannot serialize checkpoint: {e:?}")))?;
    let tmp: PathBuf = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| RunError::io(&tmp, "create", e))?;
    f.write_all(&data).and_then(|_| f.sync_all()).map_err(|e| RunError::io(&tmp, "write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| RunError::io(path, "rename into", e))
}

/// Reads a checkpoint written by [`save`] (or any f32 safetensors file), verifying its checksum
/// when it has one.
pub fn load(path: &Path) -> Result<Tensors, RunError> {
    load_checked(path, false)
}

/// Reads a checkpoint of a run folder: the checksum must be there and match. (Damage can hit
/// the metadata's key names too; a file of a run folder without its checksum is damaged.)
pub fn load_verified(path: &Path) -> Result<Tensors, RunError> {
    load_checked(path, true)
}

fn load_checked(path: &Path, require_checksum: bool) -> Result<Tensors, RunError> {
    let meta = std::fs::metadata(path).map_err(|e| RunError::io(path, "read", e))?;
    if !meta.is_file() {
        return Err(RunError::new("E0503", format!("checkpoint `{}` is not a regular file", path.display())));
    }
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
    // Files written by expc carry a checksum (and `iteration` or `progress` metadata); other
    // safetensors files are taken as they are.
    match out.metadata.remove(CHECKSUM_KEY) {
        Some(stored) => {
            let actual = checksum(&out);
            if stored != actual {
                return Err(corrupt(format!("its checksum is {actual}, but {stored} was stored: the file was damaged after it was written")));
            }
        }
        None if require_checksum || out.metadata.contains_key("iteration") || out.metadata.contains_key("progress") => {
            return Err(corrupt(format!("its checksum (`{CHECKSUM_KEY}` in the metadata) is missing")));
        }
        None => {}
    }
    Ok(out)
}
