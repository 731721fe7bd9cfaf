//! `batchnorm [affine=false] [eps=1e-5] [momentum=0.1]` (alias `bn`): batch normalisation.
//!
//! Per channel c (axis 1): y = γ_c · (x − μ_c)/√(σ²_c + ε) + β_c, with μ, σ² the batch
//! statistics over N×H×W in training and the running averages in evaluation
//! (running ← (1 − momentum)·running + momentum·batch, PyTorch's convention; the variance kept
//! is the unbiased one). γ (`weight`) and β (`bias`) exist only when affine.

use crate::args::Args;
use crate::param::{Init, ParamSpec};
use serde::Serialize;

/// Settings of the γ when the line sets none (`init=`, `lr_mult=`, `decay_mult=`).
pub const DEFAULT_WEIGHT: ParamSpec = ParamSpec { init: Init::Constant { value: 1.0 }, lr_mult: 1.0, decay_mult: 0e+00 };
/// Settings of the bias when the line sets none (`bias_init=`, `bias_lr_mult=`, `bias_decay_mult=`).
pub const DEFAULT_BIAS: ParamSpec = ParamSpec { init: Init::Constant { value: 0.0 }, lr_mult: 1.0, decay_mult: 0e+00 };

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BatchNorm {
    pub affine: bool,
    pub eps: f64,
    pub momentum: f64,
}

impl BatchNorm {
    pub fn parse(a: &mut Args) -> Option<BatchNorm> {
        let affine = a.kw_bool("affine").unwrap_or(true);
        let eps = match a.keyword("eps") {
            Some(v) => {
                let x = a.as_f64(v)?;
                if !(x > 0.0 && x <= 1.0) {
                    a.range_error(v, "`eps` must lie in (0, 1]: it keeps 1/√(σ² + ε) finite for a constant channel");
                    return None;
                }
                x
            }
            None => 1e-5,
        };
        let momentum = a.kw_f64_in("momentum", 0.0, 1.0, false).unwrap_or(0.1);
        Some(BatchNorm { affine, eps, momentum })
    }
}

use super::shape::{count, Cost, Dims, ParamShapes, ShapeError};

impl BatchNorm {
    pub fn shape(&self, x: &[u64]) -> Result<Dims, ShapeError> {
        if x.is_empty() {
            return Err(ShapeError::new("batchnorm needs a channel axis, found a scalar", "no channels"));
        }
        Ok(x.to_vec())
    }

    pub fn params(&self, x: &[u64]) -> ParamShapes {
        if !self.affine {
            return ParamShapes::default();
        }
        ParamShapes { weights: vec![("weight", vec![x[0]])], biases: vec![("bias", vec![x[0]])] }
    }

    pub fn cost(&self, x: &[u64]) -> Cost {
        Cost { elementwise: 4 * count(x), kept: count(x), ..Cost::default() }
    }
}
