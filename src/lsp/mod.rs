//! The language server (`expc lsp`): diagnostics, hover, go to definition, references,
//! completion, formatting and the outline of `.exp` files.
//!
//! The logic is pure: [`analyze`] compiles a document's text exactly as `expc check` does
//! (resolve → graph → check, every diagnostic) and keeps the syntax trees of every file it
//! read; [`Analysis`] answers position queries from that. [`server`] is the thin JSON-RPC loop
//! (`lsp-server`) around it: it keeps the open documents, re-analyses only the latest text of
//! each (changes queued behind each other are coalesced), and re-checks the documents that
//! extend a file when that file changes. Positions are UTF-16 code units ([`text::LineIndex`]).

mod analysis;
pub mod docs;
pub mod server;
pub mod text;

pub use analysis::{analyze, format, uri_path, Analysis};
