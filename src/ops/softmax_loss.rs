//! `softmax_loss [smoothing=ε]` (alias `loss`): softmax cross-entropy against the integer labels.
//!
//! L = −(1/N) Σ_n Σ_c q_c log softmax(z_n)[c] with the target q = (1 − ε)·onehot(y_n) + ε/C (label
//! smoothing; ε = 0, the default, is plain cross-entropy, PyTorch's `label_smoothing`); on a
//! sequence [N, T, C] the mean is also over T (every step predicts the sequence's label). Its
//! input is the logits; the labels come from the data. Output: a scalar.

use super::shape::{count, show, Cost, Dims, ShapeError};
use crate::args::Args;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SoftmaxLoss {
    /// Label smoothing ε in [0, 1).
    #[serde(skip_serializing_if = "is_zero")]
    pub smoothing: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl SoftmaxLoss {
    pub fn parse(a: &mut Args) -> Option<SoftmaxLoss> {
        Some(SoftmaxLoss { smoothing: a.kw_f64_in("smoothing", 0.0, 1.0, true).unwrap_or(0.0) })
    }
}

/// The logits' class count; the output is a scalar.
pub fn shape(x: &[u64]) -> Result<Dims, ShapeError> {
    match x.len() {
        1 | 2 => Ok(vec![]),
        _ => Err(ShapeError::new(format!("softmax_loss expects logits C (or T×C for sequences), found {}", show(x)), "expects logits")
            .help("put an `fc CLASSES` layer before the loss")),
    }
}

pub fn classes(x: &[u64]) -> u64 {
    x.last().copied().unwrap_or(0)
}

pub fn cost(x: &[u64]) -> Cost {
    Cost { elementwise: 3 * count(x), kept: count(x), ..Cost::default() }
}
