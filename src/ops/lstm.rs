//! `lstm H`: long short-term memory layer over T steps.
//!
//! [i, f, g, o] = [σ, σ, tanh, σ](W_x x_t + W_h h_{t−1} + b); c_t = f⊙c_{t−1} + i⊙g;
//! h_t = o⊙tanh(c_t). Input [N, T, F] → output [N, T, H]. Parameters W_x [4H, F],
//! W_h [4H, H], b [4H]. Forward MACs per sample: T·4H·F + (T−1)·4H·H (h_0 = 0).

use crate::args::Args;
use crate::param::{Init, ParamSpec, VarianceNorm};
use serde::Serialize;

/// Settings of the weights when the line sets none (`init=`, `lr_mult=`, `decay_mult=`).
pub const DEFAULT_WEIGHT: ParamSpec = ParamSpec { init: Init::Xavier { norm: VarianceNorm::FanIn }, lr_mult: 1.0, decay_mult: 1e+00 };
/// Settings of the bias when the line sets none (`bias_init=`, `bias_lr_mult=`, `bias_decay_mult=`).
pub const DEFAULT_BIAS: ParamSpec = ParamSpec { init: Init::Constant { value: 0.0 }, lr_mult: 1.0, decay_mult: 0e+00 };

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Lstm {
    pub hidden: u64,
}

impl Lstm {
    pub fn parse(a: &mut Args) -> Option<Lstm> {
        let v = a.required("hidden size", "lstm 128")?;
        Some(Lstm { hidden: a.as_uint(v, 1)? })
    }
}

use super::shape::{need_rank, Cost, Dims, ParamShapes, ShapeError};

impl Lstm {
    pub fn shape(&self, x: &[u64]) -> Result<Dims, ShapeError> {
        need_rank(x, &[2], "a sequence T×F", "lstm").map_err(|e| e.help("read images row by row with `sequence rows` in `data` and `input 28x28`"))?;
        Ok(vec![x[0], self.hidden])
    }

    pub fn params(&self, x: &[u64]) -> ParamShapes {
        let h = self.hidden;
        ParamShapes { weights: vec![("weight_ih", vec![4 * h, x[1]]), ("weight_hh", vec![4 * h, h])], biases: vec![("bias", vec![4 * h])] }
    }

    pub fn cost(&self, x: &[u64]) -> Cost {
        let (t, f, h) = (x[0], x[1], self.hidden);
        Cost {
            forward_macs: t * 4 * h * f + (t - 1) * 4 * h * h,
            backward_input_macs: t * 4 * h * f,
            backward_weight_macs: t * 4 * h * f + (t - 1) * 4 * h * h,
            backward_recurrent_macs: (t - 1) * 4 * h * h,
            elementwise: t * 10 * h,
            kept: t * (f + 7 * h),
        }
    }
}
