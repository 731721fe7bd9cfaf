//! CIFAR-10, binary version: `data_batch_1.bin` .. `data_batch_5.bin` (training, in that order) and
//! `test_batch.bin`, each a sequence of 3073-byte records (1 label byte, then 1024 red, 1024 green, 1024 blue
//! bytes, row-major 32x32).
//!
//! Invariants: each file holds exactly 10,000 records (a file cut at a record boundary is refused, naming
//! the first missing record); a file whose size is not a positive multiple of 3073 is refused before it is read (naming the
//! incomplete record and its offset); labels must be below 10; records keep file order; the pixel planes are
//! already CHW, so they are copied as they are. No input makes this code panic.

use std::path::{Path, PathBuf};

use super::error::CIFAR_HINT;
use super::{DataError, Dataset, Split};

/// Bytes per record: one label byte and 3 x 32 x 32 pixel bytes.
pub const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;

/// Class names in label order (also in `batches.meta.txt`).
pub const CIFAR10_CLASSES: [&str; 10] = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

const TRAIN_FILES: [&str; 5] = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
const TEST_FILE: &str = "test_batch.bin";

fn truncated(path: &Path, len: u64) -> DataError {
    let complete = len / CIFAR_RECORD as u64;
    DataError::Truncated {
        path: path.to_path_buf(),
        layout: format!("a whole number of {CIFAR_RECORD}-byte records"),
        expected_bytes: (complete + 1) * CIFAR_RECORD as u64,
        found_bytes: len,
        record: complete,
        offset: complete * CIFAR_RECORD as u64,
        hint: CIFAR_HINT.into(),
    }
}

/// Appends the records in `bytes` (the content of `path`) to `images` (CHW planes) and `labels`.
pub fn parse_cifar_records(bytes: &[u8], path: &Path, images: &mut Vec<u8>, labels: &mut Vec<u32>) -> Result<(), DataError> {
    if bytes.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
            what: format!("file is empty; expected {CIFAR_RECORD}-byte records"),
            hint: CIFAR_HINT.into(),
        });
    }
    if !bytes.len().is_multiple_of(CIFAR_RECORD) {
        return Err(truncated(path, bytes.len() as u64));
    }
    let n = bytes.len() / CIFAR_RECORD;
    images.reserve(n * (CIFAR_RECORD - 1));
    labels.reserve(n);
    for (i, rec) in bytes.chunks_exact(CIFAR_RECORD).enumerate() {
        let label = rec[0] as u32;
        if label as usize >= CIFAR10_CLASSES.len() {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                record: i as u64,
                offset: (i * CIFAR_RECORD) as u64,
                label,
                classes: CIFAR10_CLASSES.len(),
            });
        }
        labels.push(label);
        images.extend_from_slice(&rec[1..]);
    }
    Ok(())
}

/// Reads the batch file at `path` into `buf` (written over; one buffer serves every file, so its
/// pages are faulted in once).
fn read_file(path: &Path, buf: &mut Vec<u8>) -> Result<(), DataError> {
    if let Some(e) = DataError::not_regular(path, CIFAR_HINT) {
        return Err(e);
    }
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, &e, CIFAR_HINT))?;
    if !meta.is_file() {
        return Err(DataError::Missing { path: path.to_path_buf(), what: "CIFAR-10 batch file".into(), hint: CIFAR_HINT.into() });
    }
    if meta.len() % CIFAR_RECORD as u64 != 0 {
        return Err(truncated(path, meta.len()));
    }
    use std::io::Read;
    buf.clear();
    if buf.capacity() < meta.len() as usize {
        *buf = crate::memory::huge_page_vec(meta.len() as usize);
    }
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, &e, CIFAR_HINT))?;
    file.read_to_end(buf).map_err(|e| DataError::io(path, &e, CIFAR_HINT))?;
    Ok(())
}

fn load_files(paths: &[PathBuf], names: &[String], records_per_file: usize) -> Result<Dataset, DataError> {
    // read at random while training: on huge pages (see `crate::memory`)
    let mut images = crate::memory::huge_page_vec(paths.len().saturating_mul(records_per_file).saturating_mul(CIFAR_RECORD - 1));
    let mut labels = Vec::new();
    let mut bytes = Vec::new();
    for p in paths {
        read_file(p, &mut bytes)?;
        let expected = (records_per_file * CIFAR_RECORD) as u64;
        let found = bytes.len() as u64;
        let layout = format!("{records_per_file} records of {CIFAR_RECORD} bytes");
        // Cut exactly at a record boundary, the file still parses: only its size tells.
        if found < expected {
            let complete = found / CIFAR_RECORD as u64;
            return Err(DataError::Truncated {
                path: p.clone(),
                layout,
                expected_bytes: expected,
                found_bytes: found,
                record: complete,
                offset: complete * CIFAR_RECORD as u64,
                hint: CIFAR_HINT.into(),
            });
        }
        if found > expected {
            return Err(DataError::TrailingBytes { path: p.clone(), layout, expected_bytes: expected, found_bytes: found, hint: CIFAR_HINT.into() });
        }
        parse_cifar_records(&bytes, p, &mut images, &mut labels)?;
    }
    let origin = paths.first().cloned().unwrap_or_default();
    Dataset::new(images, labels, [3, 32, 32], CIFAR10_CLASSES.len(), names.to_vec(), origin)
}

/// The folder holding the batch files: `root` itself or `root/cifar-10-batches-bin`.
fn batches_dir(root: &Path) -> Result<PathBuf, DataError> {
    if root.join(TRAIN_FILES[0]).is_file() || root.join(TEST_FILE).is_file() {
        return Ok(root.to_path_buf());
    }
    let sub = root.join("cifar-10-batches-bin");
    if sub.join(TRAIN_FILES[0]).is_file() {
        return Ok(sub);
    }
    let (path, what) = if root.is_dir() { (root.join(TRAIN_FILES[0]), "CIFAR-10 batch file") } else { (root.to_path_buf(), "CIFAR-10 folder") };
    Err(DataError::Missing { path, what: what.into(), hint: CIFAR_HINT.into() })
}

/// Records in each official CIFAR-10 batch file.
pub const CIFAR_FILE_RECORDS: usize = 10_000;

/// Loads CIFAR-10 (binary version) from `root`: 5 training batches and the test batch, all required,
/// each holding exactly [`CIFAR_FILE_RECORDS`] records.
pub fn load_cifar10(root: &Path) -> Result<Split, DataError> {
    load_cifar10_with(root, CIFAR_FILE_RECORDS)
}

/// [`load_cifar10`] with another number of records per file (small copies for tests).
pub fn load_cifar10_with(root: &Path, records_per_file: usize) -> Result<Split, DataError> {
    let dir = batches_dir(root)?;
    let names = class_names(&dir);
    let train_paths: Vec<PathBuf> = TRAIN_FILES.iter().map(|f| dir.join(f)).collect();
    if let Some(p) = train_paths.iter().chain([dir.join(TEST_FILE)].iter()).find(|p| !p.is_file()) {
        if let Some(e) = DataError::not_regular(p, CIFAR_HINT) {
            return Err(e);
        }
        return Err(DataError::Missing { path: p.clone(), what: "CIFAR-10 batch file".into(), hint: CIFAR_HINT.into() });
    }
    let train = load_files(&train_paths, &names, records_per_file)?;
    let test = load_files(&[dir.join(TEST_FILE)], &names, records_per_file)?;
    Ok(Split { train, test })
}

/// Class names from `batches.meta.txt` when it holds at least 10 non-empty lines, otherwise the standard ones.
fn class_names(dir: &Path) -> Vec<String> {
    let from_file = crate::source::read_text_file(&dir.join("batches.meta.txt"), 1 << 20)
        .ok()
        .map(|s| s.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect::<Vec<_>>());
    match from_file {
        Some(v) if v.len() >= CIFAR10_CLASSES.len() => v.into_iter().take(CIFAR10_CLASSES.len()).collect(),
        _ => CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
    }
}
