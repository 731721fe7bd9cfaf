//! expc: a compiler for declarative deep-learning experiments.
//!
//! Stages (see `ARCHITECTURE.md`): [`syntax::parse`] text → AST; [`spec`] resolution (extends,
//! variants, typing) → [`spec::Experiment`]; the graph, checks and reports build on it.
//! The library never prints and never panics on user input; the `expc` binary is a thin
//! layer over it.

pub mod args;
pub mod backend;
pub mod compile;
pub mod config;
pub mod data;
pub mod diagnostic;
pub mod engine;
pub mod error_codes;
pub mod geometry;
pub mod graph;
pub mod kernels;
pub mod lower;
pub mod lsp;
pub mod memory;
pub mod ops;
pub mod param;
pub mod report;
pub mod run;
pub mod source;
pub mod spec;
pub mod syntax;
