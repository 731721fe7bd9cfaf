//! `DataError`: every way loading a data set can fail.
//!
//! Invariants: every variant that concerns a file names that file; the messages say what was expected, what
//! was found and where (byte offset or record number), and, where the data could be missing or damaged, how
//! to get it (the `hint` fields, filled in by the loader that knows the source). The type is `Clone` and
//! `PartialEq` so tests can compare errors; I/O errors are therefore kept as their kind and text.

use std::fmt;
use std::path::{Path, PathBuf};

/// How to get MNIST, appended to MNIST errors.
pub const MNIST_HINT: &str = "MNIST needs the four official idx files (train-images-idx3-ubyte, \
train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, raw or .gz) in one folder: use the \
bundled data/mnist-small, copy the official files (e.g. from shared/data/mnist), or set data.mnist in expc.toml";

/// How to get CIFAR-10, appended to CIFAR-10 errors.
pub const CIFAR_HINT: &str = "CIFAR-10 needs the official binary version: download cifar-10-binary.tar.gz from \
https://www.cs.toronto.edu/~kriz/cifar.html and unpack it; its folder cifar-10-batches-bin/ holds \
data_batch_1.bin .. data_batch_5.bin and test_batch.bin (10,000 records of 3,073 bytes each). \
Point data.cifar10 in expc.toml (or --data cifar10=DIR) at that folder or the one above it";

/// How to lay out an image folder, appended to image-folder errors.
pub const FOLDER_HINT: &str = "an image folder holds one sub-folder per class (ROOT/<class>/*.png|jpg), or \
ROOT/train/<class>/... and ROOT/test/<class>/...; class names are sorted to give labels 0, 1, ...";

/// Everything that can go wrong while loading or configuring data.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DataError {
    /// A file or folder the source needs does not exist.
    Missing { path: PathBuf, what: String, hint: String },
    /// The operating system refused to read a file or folder.
    Io { path: PathBuf, kind: std::io::ErrorKind, message: String, hint: String },
    /// The file has fewer bytes than its header (or record size) requires.
    Truncated {
        path: PathBuf,
        /// What the file should hold, in words ("10000 records of 3073 bytes").
        layout: String,
        expected_bytes: u64,
        found_bytes: u64,
        /// The first record that is incomplete and its byte offset in the (decompressed) file.
        record: u64,
        offset: u64,
        hint: String,
    },
    /// The file has more bytes than its header says.
    TrailingBytes { path: PathBuf, layout: String, expected_bytes: u64, found_bytes: u64, hint: String },
    /// The first four bytes are not the magic number of the expected file type.
    BadMagic { path: PathBuf, expected: u32, found: u32, note: String, hint: String },
    /// A header field is impossible (zero or absurd dimensions, unsupported element type).
    BadHeader { path: PathBuf, offset: u64, message: String, hint: String },
    /// The file starts like gzip (or is named `.gz`) but does not decompress.
    BadGzip { path: PathBuf, decompressed_bytes: u64, message: String, hint: String },
    /// A label is not below the number of classes.
    LabelOutOfRange { path: PathBuf, record: u64, offset: u64, label: u32, classes: usize },
    /// An images file and its labels file disagree on the number of samples.
    CountMismatch { images: PathBuf, n_images: u64, labels: PathBuf, n_labels: u64 },
    /// An image in an image folder has the wrong size or channel count.
    ImageSize { path: PathBuf, expected: [usize; 3], found_w: u32, found_h: u32, hint: String },
    /// An image in an image folder could not be decoded.
    ImageDecode { path: PathBuf, message: String },
    /// A source produced no samples (or no classes) where some are needed.
    Empty { path: PathBuf, what: String, hint: String },
    /// Train and test parts of a source disagree (shape or classes).
    Inconsistent { path: PathBuf, message: String },
    /// The `DataConfig` is not usable (zero batch size, crop larger than the padded image, ...).
    Config { message: String },
}

impl DataError {
    /// Builds an `Io` error from a `std::io::Error` on `path`.
    pub fn io(path: &Path, e: &std::io::Error, hint: &str) -> DataError {
        if e.kind() == std::io::ErrorKind::NotFound {
            return DataError::Missing { path: path.to_path_buf(), what: "file".into(), hint: hint.into() };
        }
        DataError::Io { path: path.to_path_buf(), kind: e.kind(), message: e.to_string(), hint: hint.into() }
    }

    /// `Some` error when `path` exists but is not a regular file (a folder, FIFO, socket or
    /// device): reading it would fail, block forever or never end.
    pub fn not_regular(path: &Path, hint: &str) -> Option<DataError> {
        let meta = std::fs::metadata(path).ok()?;
        if meta.is_file() {
            return None;
        }
        let what = if meta.is_dir() { "it is a folder, not a file" } else { "it is not a regular file (a FIFO, socket or device)" };
        Some(DataError::Io { path: path.to_path_buf(), kind: std::io::ErrorKind::InvalidInput, message: what.into(), hint: hint.into() })
    }

    /// A configuration error.
    pub fn config(message: impl Into<String>) -> DataError {
        DataError::Config { message: message.into() }
    }

    /// The file this error is about, if any (for `CountMismatch`, the images file).
    pub fn path(&self) -> Option<&Path> {
        use DataError::*;
        match self {
            Missing { path, .. }
            | Io { path, .. }
            | Truncated { path, .. }
            | TrailingBytes { path, .. }
            | BadMagic { path, .. }
            | BadHeader { path, .. }
            | BadGzip { path, .. }
            | LabelOutOfRange { path, .. }
            | ImageSize { path, .. }
            | ImageDecode { path, .. }
            | Empty { path, .. }
            | Inconsistent { path, .. } => Some(path),
            CountMismatch { images, .. } => Some(images),
            Config { .. } => None,
        }
    }
}

fn hint(f: &mut fmt::Formatter<'_>, hint: &str) -> fmt::Result {
    if hint.is_empty() {
        Ok(())
    } else {
        write!(f, "\n  hint: {hint}")
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DataError::*;
        match self {
            Missing { path, what, hint: h } => {
                write!(f, "{}: {what} not found", path.display())?;
                hint(f, h)
            }
            Io { path, message, hint: h, .. } => {
                write!(f, "{}: cannot read: {message}", path.display())?;
                hint(f, h)
            }
            Truncated { path, layout, expected_bytes, found_bytes, record, offset, hint: h } => {
                write!(
                    f,
                    "{}: truncated: expected {expected_bytes} bytes ({layout}), found {found_bytes}; \
                     record {record} (at byte offset {offset}) is incomplete",
                    path.display()
                )?;
                hint(f, h)
            }
            TrailingBytes { path, layout, expected_bytes, found_bytes, hint: h } => {
                write!(
                    f,
                    "{}: expected {expected_bytes} bytes ({layout}), found {found_bytes}: {} unexpected bytes \
                     from byte offset {expected_bytes}",
                    path.display(),
                    found_bytes.saturating_sub(*expected_bytes)
                )?;
                hint(f, h)
            }
            BadMagic { path, expected, found, note, hint: h } => {
                write!(
                    f,
                    "{}: bad magic number at byte offset 0: expected {expected} (0x{expected:08x}), found {found} \
                     (0x{found:08x})",
                    path.display()
                )?;
                if !note.is_empty() {
                    write!(f, " ({note})")?;
                }
                hint(f, h)
            }
            BadHeader { path, offset, message, hint: h } => {
                write!(f, "{}: bad header at byte offset {offset}: {message}", path.display())?;
                hint(f, h)
            }
            BadGzip { path, decompressed_bytes, message, hint: h } => {
                write!(f, "{}: bad gzip data after {decompressed_bytes} decompressed bytes: {message}", path.display())?;
                hint(f, h)
            }
            LabelOutOfRange { path, record, offset, label, classes } => write!(
                f,
                "{}: label out of range in record {record} (byte offset {offset}): expected 0..{}, found {label}",
                path.display(),
                classes.saturating_sub(1)
            ),
            CountMismatch { images, n_images, labels, n_labels } => {
                write!(f, "{} holds {n_images} images but {} holds {n_labels} labels; expected the same count", images.display(), labels.display())
            }
            ImageSize { path, expected, found_w, found_h, hint: h } => {
                write!(
                    f,
                    "{}: image size differs: expected {}x{} (width x height, {} channel{}), found {found_w}x{found_h}",
                    path.display(),
                    expected[2],
                    expected[1],
                    expected[0],
                    if expected[0] == 1 { "" } else { "s" }
                )?;
                hint(f, h)
            }
            ImageDecode { path, message } => write!(f, "{}: cannot decode image: {message}", path.display()),
            Empty { path, what, hint: h } => {
                write!(f, "{}: {what}", path.display())?;
                hint(f, h)
            }
            Inconsistent { path, message } => write!(f, "{}: {message}", path.display()),
            Config { message } => write!(f, "data configuration: {message}"),
        }
    }
}

impl std::error::Error for DataError {}
