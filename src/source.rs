//! Source files and byte spans.
//!
//! Every AST node, graph node and diagnostic refers to its origin with a [`Span`]: a file id
//! plus a byte range. Files live in a [`SourceMap`] that the whole pipeline shares; a span is
//! only meaningful together with the map that issued its file id. Spans are half-open
//! (`start..end`) and always lie on UTF-8 character boundaries of their file.

use serde::Serialize;
use std::ops::Range;

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Default)]
#[serde(transparent)]
pub struct FileId(pub u32);

/// A byte range in one source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, range: Range<usize>) -> Span {
        Span { file, start: range.start as u32, end: range.end as u32 }
    }
    pub fn range(&self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
    /// The smallest span covering both (same file assumed; otherwise `self`).
    pub fn join(self, other: Span) -> Span {
        if self.file != other.file {
            return self;
        }
        Span { file: self.file, start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// Spans serialize as `"file:start..end"` so that AST dumps stay compact and readable.
impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}:{}..{}", self.file.0, self.start, self.end))
    }
}

#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The name shown in diagnostics (the path as the user gave it).
    pub name: String,
    pub text: String,
}

/// All source files read while compiling one experiment (a variant and its bases).
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> SourceMap {
        SourceMap::default()
    }
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        self.files.push(SourceFile { name: name.into(), text: text.into() });
        FileId(self.files.len() as u32 - 1)
    }
    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }
    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }
}

/// Largest spec or `expc.toml` expc reads (16 MiB): a bigger "spec" is a mistake (or `/dev/zero`).
pub const MAX_SOURCE_BYTES: u64 = 16 << 20;

/// Reads a text file of at most `limit` bytes, refusing anything that is not a regular file:
/// a FIFO would block forever, `/dev/zero` or `/dev/urandom` would never end, a folder cannot be
/// read. The errors are `std::io::Error`s whose text says what the path is and how big it may be.
pub fn read_text_file(path: &std::path::Path, limit: u64) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let not_regular = |meta: &std::fs::Metadata| {
        let what = if meta.is_dir() { "it is a folder" } else { "it is not a regular file (a FIFO, socket or device)" };
        Error::new(ErrorKind::InvalidInput, format!("{what}; expc reads specs and settings only from regular files"))
    };
    // Look before opening: opening a FIFO for reading blocks until a writer appears.
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Never block in open(), even if the path was swapped for a FIFO since we looked.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    let too_big = || Error::new(ErrorKind::InvalidData, format!("it is larger than {} MiB, the most expc reads from such a file", limit >> 20));
    if meta.len() > limit {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_big());
    }
    String::from_utf8(bytes)
        .map_err(|e| Error::new(ErrorKind::InvalidData, format!("it is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to())))
}
