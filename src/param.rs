//! Parameter tensors' settings: how a tensor is initialised (Caffe's fillers) and its learning-rate
//! and weight-decay multipliers. One definition, used by the language (`init=`, `lr_mult=`), the op
//! files (each op's default initialisers), the lowering and every backend.
//!
//! Fans follow Caffe's `filler.hpp`: `fan_in = count / shape[0]`, `fan_out = count / shape[1]`
//! (`= count` for 1-D shapes); `Average = (fan_in + fan_out) / 2`.

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParamSpec {
    pub init: Init,
    pub lr_mult: f64,
    pub decay_mult: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "fn", rename_all = "snake_case")]
pub enum Init {
    Constant {
        value: f64,
    },
    Uniform {
        min: f64,
        max: f64,
    },
    Gaussian {
        mean: f64,
        std: f64,
    },
    /// Uniform ±√(3/n), n chosen by `norm` (Caffe's XavierFiller).
    Xavier {
        norm: VarianceNorm,
    },
    /// Normal with std √(2/n), n chosen by `norm` (Caffe's MSRAFiller).
    Msra {
        norm: VarianceNorm,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VarianceNorm {
    FanIn,
    FanOut,
    Average,
}
