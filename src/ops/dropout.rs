//! `dropout P`: inverted dropout.
//!
//! Training: y = x · m / (1 − p), m ~ Bernoulli(1 − p) per element; evaluation: y = x.
//! Shape-preserving, no parameters.

use crate::args::Args;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Dropout {
    pub p: f64,
}

impl Dropout {
    pub fn parse(a: &mut Args) -> Option<Dropout> {
        let v = a.required("drop probability", "dropout 0.5")?;
        let p = a.as_f64(v)?;
        if !(0.0..1.0).contains(&p) {
            a.range_error(v, "the drop probability must lie in [0, 1)");
            return None;
        }
        Some(Dropout { p })
    }
}

impl Dropout {
    pub fn cost(&self, x: &[u64]) -> super::shape::Cost {
        let n = super::shape::count(x);
        super::shape::Cost { elementwise: n, kept: n, ..Default::default() }
    }
}
