//! Errors reported by the engine. Every invalid plan or input is reported through
//! [`EngineError`]; the engine never panics on user input.

use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub enum EngineError {
    /// The plan is structurally invalid (bad input reference, empty, loss not last, …).
    InvalidPlan(String),
    /// A layer's declared `out_shape` or an input shape does not match what its kind requires.
    Shape { layer: String, msg: String },
    /// A parameter is missing, unknown, duplicated, or has the wrong shape.
    Param { layer: String, msg: String },
    /// A layer hyper-parameter is invalid (zero kernel, p ∉ [0,1), …).
    Config { layer: String, msg: String },
    /// Bad arguments to a step: batch size, input length, label range.
    Input(String),
    /// Invalid trainer/solver configuration.
    Solver(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::InvalidPlan(m) => write!(f, "invalid plan: {m}"),
            EngineError::Shape { layer, msg } => write!(f, "layer `{layer}`: shape error: {msg}"),
            EngineError::Param { layer, msg } => write!(f, "layer `{layer}`: parameter error: {msg}"),
            EngineError::Config { layer, msg } => write!(f, "layer `{layer}`: invalid configuration: {msg}"),
            EngineError::Input(m) => write!(f, "invalid step input: {m}"),
            EngineError::Solver(m) => write!(f, "invalid solver configuration: {m}"),
        }
    }
}

impl std::error::Error for EngineError {}
