//! `input C×H×W` (or `input T×F` for sequences, `input F` for vectors): the data node.
//!
//! Output shape: `[N, …shape]`, N the symbolic batch. No parameters, no cost.

use crate::args::Args;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Input {
    pub shape: Vec<u64>,
}

impl Input {
    pub fn parse(a: &mut Args) -> Option<Input> {
        let v = a.required("shape", "input 3x32x32")?;
        let shape = a.as_shape(v)?;
        if shape.len() > 3 {
            a.range_error(v, "an input has at most 3 axes (C×H×W) besides the batch");
            return None;
        }
        Some(Input { shape })
    }
}

impl Input {
    pub fn shape(&self) -> super::shape::Dims {
        self.shape.clone()
    }
}
