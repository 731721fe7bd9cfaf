//! MNIST (and any u8 idx data): reads idx files, raw or gzip-compressed, found under their standard names.
//!
//! Invariants: the gzip decision is made from the first two bytes (a `.gz` name without gzip content is an
//! error); decompression is bounded by what the header promises plus one byte, so a lying header or a gzip bomb
//! cannot make us allocate more than the file's real content; no input makes this code panic. Images come out
//! as shape [1, rows, cols]; labels must be below 10.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

use super::error::MNIST_HINT;
use super::{DataError, Dataset, Split};

/// Standard file names, [train images, train labels, test images, test labels]; each is also looked for with a
/// `.gz` suffix and with the `.idx3-ubyte` spelling some mirrors use.
pub const MNIST_FILES: [&str; 4] = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// idx magic of a u8 3-d array (images).
pub const IDX_IMAGES_MAGIC: u32 = 2051;
/// idx magic of a u8 1-d array (labels).
pub const IDX_LABELS_MAGIC: u32 = 2049;

const MNIST_CLASSES: usize = 10;
/// Refuse headers promising more than this many bytes (64 GiB): certainly not an image set we can hold.
const MAX_PAYLOAD: u64 = 1 << 36;

/// A parsed idx file: its dimensions and its bytes (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reader wrapper counting the bytes delivered (decompressed bytes, for gzip).
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Parses an idx file held in memory (raw or gzip). `path` is only used in messages.
pub fn parse_idx(bytes: &[u8], path: &Path, expected_magic: u32, hint: &str) -> Result<Idx, DataError> {
    read_idx(bytes, path, expected_magic, hint)
}

/// Reads an idx file (raw or gzip) from disk.
pub fn read_idx_file(path: &Path, expected_magic: u32, hint: &str) -> Result<Idx, DataError> {
    if let Some(e) = DataError::not_regular(path, hint) {
        return Err(e);
    }
    let f = File::open(path).map_err(|e| DataError::io(path, &e, hint))?;
    read_idx(BufReader::with_capacity(1 << 16, f), path, expected_magic, hint)
}

fn read_idx<R: BufRead>(mut reader: R, path: &Path, expected_magic: u32, hint: &str) -> Result<Idx, DataError> {
    let head = reader.fill_buf().map_err(|e| DataError::io(path, &e, hint))?;
    let is_gz = head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
    let named_gz = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    if named_gz && !is_gz {
        let first: Vec<String> = head.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Err(DataError::BadGzip {
            path: path.to_path_buf(),
            decompressed_bytes: 0,
            message: format!("the name ends in .gz but the file does not start with the gzip magic 1f 8b (found [{}])", first.join(" ")),
            hint: hint.into(),
        });
    }
    if is_gz {
        parse_stream(Counting { inner: MultiGzDecoder::new(reader), count: 0 }, path, expected_magic, hint, true)
    } else {
        parse_stream(Counting { inner: reader, count: 0 }, path, expected_magic, hint, false)
    }
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
fn read_upto<R: Read>(r: &mut Counting<R>, buf: &mut [u8], path: &Path, hint: &str, gz: bool) -> Result<usize, DataError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(stream_error(e, r.count, path, hint, gz)),
        }
    }
    Ok(got)
}

fn stream_error(e: std::io::Error, count: u64, path: &Path, hint: &str, gz: bool) -> DataError {
    if gz {
        let message = if e.kind() == std::io::ErrorKind::UnexpectedEof { "the gzip stream ends early (file truncated?)".to_string() } else { e.to_string() };
        DataError::BadGzip { path: path.to_path_buf(), decompressed_bytes: count, message, hint: hint.into() }
    } else {
        DataError::io(path, &e, hint)
    }
}

fn parse_stream<R: Read>(mut r: Counting<R>, path: &Path, expected_magic: u32, hint: &str, gz: bool) -> Result<Idx, DataError> {
    let p = || path.to_path_buf();
    let decomp = if gz { " after decompression" } else { "" };
    let mut magic = [0u8; 4];
    let got = read_upto(&mut r, &mut magic, path, hint, gz)?;
    if got < 4 {
        return Err(DataError::Truncated {
            path: p(),
            layout: format!("an idx header starts with a 4-byte magic number{decomp}"),
            expected_bytes: 4,
            found_bytes: got as u64,
            record: 0,
            offset: 0,
            hint: hint.into(),
        });
    }
    let found = u32::from_be_bytes(magic);
    if found != expected_magic {
        let note = match (expected_magic, found) {
            (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC) => "this is an idx labels file, images were expected",
            (IDX_LABELS_MAGIC, IDX_IMAGES_MAGIC) => "this is an idx images file, labels were expected",
            _ if magic[0] != 0 || magic[1] != 0 => "not an idx file: idx files start with two zero bytes",
            _ if magic[2] != 0x08 => "unsupported idx element type; only unsigned bytes (0x08) are read",
            _ => "unexpected number of dimensions",
        };
        return Err(DataError::BadMagic { path: p(), expected: expected_magic, found, note: note.into(), hint: hint.into() });
    }
    let ndims = (expected_magic & 0xff) as usize;
    let header_len = 4 + 4 * ndims as u64;
    let mut dim_bytes = vec![0u8; 4 * ndims];
    let got = read_upto(&mut r, &mut dim_bytes, path, hint, gz)?;
    if got < dim_bytes.len() {
        return Err(DataError::Truncated {
            path: p(),
            layout: format!("an idx header of 4 + 4 x {ndims} bytes{decomp}"),
            expected_bytes: header_len,
            found_bytes: 4 + got as u64,
            record: 0,
            offset: 4 + got as u64,
            hint: hint.into(),
        });
    }
    let dims: Vec<u64> = dim_bytes.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64).collect();
    if let Some(k) = dims.iter().skip(1).position(|&d| d == 0) {
        return Err(DataError::BadHeader {
            path: p(),
            offset: 8 + 4 * k as u64,
            message: format!("dimension {} is 0; expected a positive size", k + 1),
            hint: hint.into(),
        });
    }
    let record_len: u64 = dims.iter().skip(1).product();
    let payload = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).filter(|&b| b <= MAX_PAYLOAD);
    let Some(payload) = payload else {
        return Err(DataError::BadHeader {
            path: p(),
            offset: 4,
            message: format!("dimensions {dims:?} promise more than {MAX_PAYLOAD} bytes"),
            hint: hint.into(),
        });
    };
    let shape_words = dims.iter().skip(1).map(|d| d.to_string()).collect::<Vec<_>>().join("x");
    let layout = if ndims == 1 {
        format!("{header_len}-byte header + {} one-byte labels{decomp}", dims[0])
    } else {
        format!("{header_len}-byte header + {} records of {shape_words} bytes{decomp}", dims[0])
    };
    // images are read at random while training: on huge pages (see `crate::memory`)
    let mut data = crate::memory::huge_page_vec(payload.min(1 << 26) as usize);
    let res = (&mut r).take(payload).read_to_end(&mut data);
    res.map_err(|e| stream_error(e, r.count, path, hint, gz))?;
    let got = data.len() as u64;
    if got < payload {
        let record = got / record_len.max(1);
        return Err(DataError::Truncated {
            path: p(),
            layout,
            expected_bytes: header_len + payload,
            found_bytes: header_len + got,
            record,
            offset: header_len + record * record_len,
            hint: hint.into(),
        });
    }
    // Anything after the payload means the header and the file disagree; count it (bounded) for the message.
    let res = std::io::copy(&mut (&mut r).take(MAX_PAYLOAD), &mut std::io::sink());
    let extra = res.map_err(|e| stream_error(e, r.count, path, hint, gz))?;
    if extra > 0 {
        return Err(DataError::TrailingBytes {
            path: p(),
            layout,
            expected_bytes: header_len + payload,
            found_bytes: header_len + payload + extra,
            hint: hint.into(),
        });
    }
    Ok(Idx { dims: dims.iter().map(|&d| d as usize).collect(), data })
}

/// Finds one of the standard MNIST files in `root`: `name`, `name.gz`, or the `.idx3-ubyte` spelling.
fn find_mnist_file(root: &Path, name: &str) -> Result<PathBuf, DataError> {
    let alt = name.replacen("-idx", ".idx", 1);
    let candidates = [name.to_string(), format!("{name}.gz"), alt.clone(), format!("{alt}.gz")];
    let names: Vec<&str> = candidates.iter().map(|s| s.as_str()).collect();
    if !root.is_dir() {
        return Err(DataError::Missing { path: root.to_path_buf(), what: "MNIST folder".into(), hint: MNIST_HINT.into() });
    }
    let found = super::find_first(root, &names);
    if found.is_none() {
        if let Some(e) = names.iter().find_map(|n| DataError::not_regular(&root.join(n), MNIST_HINT)) {
            return Err(e);
        }
    }
    found.ok_or_else(|| DataError::Missing { path: root.join(format!("{name}[.gz]")), what: "MNIST file".into(), hint: MNIST_HINT.into() })
}

/// Reads one images file and one labels file into a data set of shape [1, rows, cols], 10 classes.
pub fn load_idx_pair(images: &Path, labels: &Path) -> Result<Dataset, DataError> {
    let img = read_idx_file(images, IDX_IMAGES_MAGIC, MNIST_HINT)?;
    let lab = read_idx_file(labels, IDX_LABELS_MAGIC, MNIST_HINT)?;
    if img.dims[0] != lab.dims[0] {
        return Err(DataError::CountMismatch {
            images: images.to_path_buf(),
            n_images: img.dims[0] as u64,
            labels: labels.to_path_buf(),
            n_labels: lab.dims[0] as u64,
        });
    }
    if let Some(i) = lab.data.iter().position(|&l| l as usize >= MNIST_CLASSES) {
        return Err(DataError::LabelOutOfRange {
            path: labels.to_path_buf(),
            record: i as u64,
            offset: 8 + i as u64,
            label: lab.data[i] as u32,
            classes: MNIST_CLASSES,
        });
    }
    let labels_u32 = lab.data.iter().map(|&l| l as u32).collect();
    let names = (0..MNIST_CLASSES).map(|d| d.to_string()).collect();
    Dataset::new(img.data, labels_u32, [1, img.dims[1], img.dims[2]], MNIST_CLASSES, names, images.to_path_buf())
}

/// Loads MNIST from `root`: train from `train-*`, test from `t10k-*` (raw or .gz).
pub fn load_mnist(root: &Path) -> Result<Split, DataError> {
    let [ti, tl, vi, vl] = MNIST_FILES.map(|n| find_mnist_file(root, n));
    let train = load_idx_pair(&ti?, &tl?)?;
    let test = load_idx_pair(&vi?, &vl?)?;
    if train.shape != test.shape {
        return Err(DataError::Inconsistent {
            path: test.origin.clone(),
            message: format!("test images are {:?}, training images {:?}; expected the same", test.shape, train.shape),
        });
    }
    Ok(Split { train, test })
}
