//! expc: a compiler for declarative deep-learning experiments.
//!
//! The library never prints and never panics on user input; the `expc` binary is a thin layer over it.

pub mod data;
pub mod engine;
pub mod kernels;
