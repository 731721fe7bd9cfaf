//! `accuracy [top=K]`: fraction of samples whose label is among the K largest logits.
//! Evaluation only; no gradient.

use crate::spec::args::Args;
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
