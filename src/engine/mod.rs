//! Execution engine: runs a lowered [`Plan`] on the CPU.
//!
//! * [`crate::lower::Plan`] — what it runs: the lowered, checked graph (shared with every backend).
//! * [`Network`] — validated plan + parameters + preallocated buffers; generic over
//!   the scalar ([`crate::kernels::Float`]: f32 for training, f64 for gradient checks).
//! * [`Trainer`] — Caffe-style solvers (SGD, Nesterov, Adam); the learning rate of each step is the caller's.
//! * [`gradcheck`] — finite-difference verification of every parameter gradient.
//!
//! Determinism: the same plan, seed and thread count give bit-identical results.

pub mod error;
pub mod gradcheck;
pub mod init;
pub mod network;
pub mod schedule;
pub mod trainer;
mod worker;

pub use error::EngineError;
pub use gradcheck::{gradcheck, TensorCheck};
pub use network::{Backend, Inputs, LayerMacs, MemoryReport, NetOptions, Network, PassStats};
pub use schedule::ParamInfo;
pub use trainer::{StepStats, Trainer, TrainerConfig};

#[cfg(test)]
mod tests;
