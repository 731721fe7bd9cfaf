//! `fc OUT [bias=false]` (alias `linear`): fully connected layer.
//!
//! y[n,o] = b[o] + Σ_i W[o,i] · x[n,i]; on a sequence [N,T,F] it applies to every step.
//! A multi-axis input (C×H×W) is flattened first, as Caffe's InnerProduct does.
//! Weight shape [O, I], bias [O]. Forward MACs per sample: I·O (times T for sequences).

use crate::args::Args;
use crate::param::{Init, ParamSpec, VarianceNorm};
use serde::Serialize;

/// Settings of the weights when the line sets none (`init=`, `lr_mult=`, `decay_mult=`).
pub const DEFAULT_WEIGHT: ParamSpec = ParamSpec { init: Init::Xavier { norm: VarianceNorm::FanIn }, lr_mult: 1.0, decay_mult: 1e+00 };
/// Settings of the bias when the line sets none (`bias_init=`, `bias_lr_mult=`, `bias_decay_mult=`).
pub const DEFAULT_BIAS: ParamSpec = ParamSpec { init: Init::Constant { value: 0.0 }, lr_mult: 1.0, decay_mult: 0e+00 };

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Linear {
    pub out_features: u64,
    pub bias: bool,
}

impl Linear {
    pub fn parse(a: &mut Args) -> Option<Linear> {
        let out = a.required("number of outputs", "fc 10").and_then(|v| a.as_uint(v, 1));
        let bias = a.kw_bool("bias").unwrap_or(true);
        Some(Linear { out_features: out?, bias })
    }
}

use super::shape::{count, Cost, Dims, ParamShapes, ShapeError};

impl Linear {
    /// (rows, features in): 1 row for vectors and flattened images, T rows for sequences.
    fn geometry(x: &[u64]) -> (u64, u64) {
        match x.len() {
            2 => (x[0], x[1]),
            _ => (1, count(x)),
        }
    }

    pub fn shape(&self, x: &[u64]) -> Result<Dims, ShapeError> {
        match x.len() {
            0 => Err(ShapeError::new("fc expects a vector, an image or a sequence, found a scalar", "no features")),
            2 => Ok(vec![x[0], self.out_features]),
            _ => Ok(vec![self.out_features]),
        }
    }

    pub fn params(&self, x: &[u64]) -> ParamShapes {
        let (_, fin) = Self::geometry(x);
        ParamShapes {
            weights: vec![("weight", vec![self.out_features, fin])],
            biases: if self.bias { vec![("bias", vec![self.out_features])] } else { vec![] },
        }
    }

    pub fn cost(&self, x: &[u64]) -> Cost {
        let (rows, fin) = Self::geometry(x);
        let macs = rows * fin * self.out_features;
        Cost { forward_macs: macs, backward_input_macs: macs, backward_weight_macs: macs, kept: count(x), ..Cost::default() }
    }
}
