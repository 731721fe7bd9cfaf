//! The bridge from the run loop to the execution engine (filled in when the engine lands).

use super::driver::Model;
use super::error::RunError;
use crate::data::Pipeline;
use crate::spec::Experiment;

pub trait EngineModel: Model {
    fn engine_bytes(&self) -> u64;
}

pub fn build(_exp: &Experiment, _data: &Pipeline, _threads: usize) -> Result<Box<dyn EngineModel>, RunError> {
    Err(RunError::new("E0599", "the execution engine is not available in this build"))
}

pub fn estimated_bytes(_exp: &Experiment) -> Option<u64> {
    None
}
