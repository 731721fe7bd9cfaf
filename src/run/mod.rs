//! Stage: training runs — run folders, metrics, checkpoints, plots, comparisons, sweeps.

pub mod checkpoint;
pub mod compare;
pub mod data_source;
pub mod driver;
pub mod engine_model;
pub mod error;
pub mod evaluation;
pub mod interrupt;
pub mod metrics;
pub mod plot;
pub mod run_folder;
pub mod session;
pub mod sweep;
pub mod tensorboard;

pub use error::RunError;
