//! `softmax_loss` (alias `loss`): softmax cross-entropy against the integer labels.
//!
//! L = −(1/N) Σ_n log softmax(z_n)[y_n]; on a sequence [N, T, C] the mean is also over T
//! (every step predicts the sequence's label). Its input is the logits; the labels come from
//! the data. Output: a scalar.

use super::shape::{count, show, Cost, Dims, ShapeError};

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
