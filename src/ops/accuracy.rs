//! `accuracy [top=K]`: fraction of samples whose label is among the K largest logits.
//! Evaluation only; no gradient.

use crate::args::Args;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Accuracy {
    pub top: u64,
}

impl Accuracy {
    pub fn parse(a: &mut Args) -> Option<Accuracy> {
        Some(Accuracy { top: a.kw_uint("top", 1).unwrap_or(1) })
    }
}

use super::shape::{Dims, ShapeError};

impl Accuracy {
    /// Reads logits like the loss; `top` must not exceed the number of classes.
    pub fn shape(&self, x: &[u64]) -> Result<Dims, ShapeError> {
        let out = super::softmax_loss::shape(x)?;
        let classes = super::softmax_loss::classes(x);
        if self.top > classes {
            return Err(ShapeError::new(
                format!("`accuracy top={}` asks for more classes than the {classes} logits it reads", self.top),
                format!("top={} of {classes}", self.top),
            )
            .help(format!("use `top=` between 1 and {classes}")));
        }
        Ok(out)
    }
}
