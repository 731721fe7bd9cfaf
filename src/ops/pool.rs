//! `maxpool K [stride=S] [pad=P] [round=floor|ceil]`, `avgpool …`, `avgpool global`.
//!
//! Max: y = max over the window; avg: y = mean over the window clipped to the padded input
//! (Caffe's convention). Output size per axis, floor: ⌊(H + 2p − k)/s⌋ + 1; ceil (Caffe):
//! ⌈(H + 2p − k)/s⌉ + 1, minus one if the last window would start beyond H + p.
//! The stride defaults to the kernel size. No parameters.

use crate::spec::args::Args;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    Max,
    Avg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    Floor,
    Ceil,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pool {
    pub kind: PoolKind,
    /// `None` for global pooling (the window is the whole input).
    pub kernel: Option<[u64; 2]>,
    pub stride: [u64; 2],
    pub padding: [u64; 2],
    pub rounding: Rounding,
}

impl Pool {
    pub fn parse(kind: PoolKind, a: &mut Args) -> Option<Pool> {
        let example = if kind == PoolKind::Max { "maxpool 2" } else { "avgpool 2" };
        let k = a.required("window size", example)?;
        let kernel = match &k.kind {
            crate::syntax::ast::ValueKind::Ident(w) if w == "global" => None,
            _ => Some(a.as_pair(k, 1)?),
        };
        let stride = a.kw_pair("stride", 1).or(kernel).unwrap_or([1, 1]);
        let padding = a.kw_pair("pad", 0).unwrap_or([0, 0]);
        let rounding = match a.kw_word("round", &["floor", "ceil"]) {
            Some("ceil") => Rounding::Ceil,
            _ => Rounding::Floor,
        };
        Some(Pool { kind, kernel, stride, padding, rounding })
    }
}
