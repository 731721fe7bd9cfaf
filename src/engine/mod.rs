//! Execution engine: runs a lowered [`Plan`] on the CPU.
//!
//! * [`plan`] — the lowering target the front end produces (serde-serialisable).
//! * [`Network`] — validated plan + parameters + preallocated buffers; generic over
//!   the scalar ([`crate::kernels::Float`]: f32 for training, f64 for gradient checks).
//! * [`Trainer`] — Caffe-style solvers (SGD, Nesterov, Adam) and learning-rate policies.
//! * [`gradcheck`] — finite-difference verification of every parameter gradient.
//!
//! Determinism: the same plan, seed and thread count give bit-identical results.

pub mod compile;
pub mod error;
pub mod gradcheck;
pub mod init;
pub mod network;
pub mod plan;
pub mod trainer;
mod worker;

pub use compile::ParamInfo;
pub use error::EngineError;
pub use gradcheck::{gradcheck, TensorCheck};
pub use network::{Backend, LayerMacs, MemoryReport, NetOptions, Network, PassStats};
pub use plan::{Init, Input, Layer, LayerKind, ParamSpec, Plan, PlanBuilder, VarianceNorm};
pub use trainer::{LrPolicy, Solver, StepStats, Trainer, TrainerConfig};

#[cfg(test)]
mod tests;
