//! `rnn H`: Elman recurrent layer over T steps (the seed's Problem 1).
//!
//! h_t = tanh(W_xh x_t + W_hh h_{t−1} + b_h), h_0 = 0; input [N, T, F] → output [N, T, H]
//! (every hidden state; follow with `fc C` for the per-step output z_t = softmax(W_hz h_t + b_z)
//! or with `last` to keep h_T). Parameters W_xh [H, F], W_hh [H, H], b_h [H] — shared over
//! time, so their count does not depend on T. Forward MACs per sample: T·F·H + (T−1)·H·H
//! (h_0 = 0: the first step has no W_hh product).

use crate::args::Args;
use crate::param::{Init, ParamSpec, VarianceNorm};
use serde::Serialize;

/// Settings of the weights when the line sets none (`init=`, `lr_mult=`, `decay_mult=`).
pub const DEFAULT_WEIGHT: ParamSpec = ParamSpec { init: Init::Xavier { norm: VarianceNorm::FanIn }, lr_mult: 1.0, decay_mult: 1e+00 };
/// Settings of the bias when the line sets none (`bias_init=`, `bias_lr_mult=`, `bias_decay_mult=`).
pub const DEFAULT_BIAS: ParamSpec = ParamSpec { init: Init::Constant { value: 0.0 }, lr_mult: 1.0, decay_mult: 0e+00 };

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rnn {
    pub hidden: u64,
}

impl Rnn {
    pub fn parse(a: &mut Args) -> Option<Rnn> {
        let v = a.required("hidden size", "rnn 128")?;
        Some(Rnn { hidden: a.as_uint(v, 1)? })
    }
}

use super::shape::{need_rank, Cost, Dims, ParamShapes, ShapeError};

impl Rnn {
    pub fn shape(&self, x: &[u64]) -> Result<Dims, ShapeError> {
        need_rank(x, &[2], "a sequence T×F", "rnn").map_err(|e| e.help("read images row by row with `sequence rows` in `data` and `input 28x28`"))?;
        Ok(vec![x[0], self.hidden])
    }

    pub fn params(&self, x: &[u64]) -> ParamShapes {
        let h = self.hidden;
        ParamShapes { weights: vec![("weight_ih", vec![h, x[1]]), ("weight_hh", vec![h, h])], biases: vec![("bias", vec![h])] }
    }

    /// Per sample over T steps; h_0 = 0, so the first step has no W_hh work in backward.
    pub fn cost(&self, x: &[u64]) -> Cost {
        let (t, f, h) = (x[0], x[1], self.hidden);
        Cost {
            forward_macs: t * f * h + (t - 1) * h * h,
            backward_input_macs: t * f * h,
            backward_weight_macs: t * f * h + (t - 1) * h * h,
            backward_recurrent_macs: (t - 1) * h * h,
            elementwise: t * h,
            kept: t * (f + h),
        }
    }
}
