//! `fc OUT [bias=false]` (alias `linear`): fully connected layer.
//!
//! y[n,o] = b[o] + Σ_i W[o,i] · x[n,i]; on a sequence [N,T,F] it applies to every step.
//! A multi-axis input (C×H×W) is flattened first, as Caffe's InnerProduct does.
//! Weight shape [O, I], bias [O]. Forward MACs per sample: I·O (times T for sequences).

use crate::spec::args::Args;
use serde::Serialize;

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
