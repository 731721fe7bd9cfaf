//! Stage 1, parsing: text → [`ast::File`] (see `ARCHITECTURE.md`).

pub mod ast;
mod fmt;
mod parser;

pub use fmt::{format, format_checked, without_spans};
pub use parser::{escape, parse};
