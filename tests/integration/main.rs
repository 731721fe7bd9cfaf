//! The integration test binary: one module per pipeline stage (see ARCHITECTURE.md).
//! Snapshots live in the top-level `snapshots/` folder.

mod browser;
mod common;
mod engine;
mod errors;
mod fmt;
mod fuzz;
mod hostile;
mod lsp;
mod onnx;
mod parse;
mod pipeline;
mod report;
mod resolve;
mod run;
mod torch;
mod train;
