//! `maxpool K [stride=S] [pad=P] [round=floor|ceil]`, `avgpool …`, `avgpool global`.
//!
//! Max: y = max over the window; avg: y = mean over the window clipped to the padded input
//! (Caffe's convention). Output size per axis, floor: ⌊(H + 2p − k)/s⌋ + 1; ceil (Caffe):
//! ⌈(H + 2p − k)/s⌉ + 1, minus one if the last window would start beyond H + p.
//! The stride defaults to the kernel size. No parameters.

use crate::args::Args;
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

use super::shape::{count, need_rank, show, Cost, Dims, ShapeError};

impl Pool {
    /// The window and stride actually used (global pooling covers the whole input).
    pub fn window(&self, x: &[u64]) -> ([u64; 2], [u64; 2]) {
        match self.kernel {
            Some(k) => (k, self.stride),
            None => ([x[1], x[2]], [1, 1]),
        }
    }

    pub fn shape(&self, x: &[u64]) -> Result<Dims, ShapeError> {
        let name = if self.kind == PoolKind::Max { "maxpool" } else { "avgpool" };
        need_rank(x, &[3], "a C×H×W input", name)?;
        let (k, s) = self.window(x);
        let mut out = vec![x[0]];
        for (axis, dim) in [(0usize, "height"), (1, "width")] {
            let (len, p) = (x[axis + 1], self.padding[axis]);
            if p >= k[axis] {
                return Err(ShapeError::new(format!("{name} padding {p} must be smaller than its window {}", k[axis]), "padding too large")
                    .code("E0214")
                    .input(None));
            }
            match crate::geometry::pool_out(len as usize, k[axis] as usize, s[axis] as usize, p as usize, self.rounding == Rounding::Ceil) {
                Some(o) => out.push(o as u64),
                None => {
                    return Err(ShapeError::new(
                        format!("the {name} window ({} along the {dim}) is larger than its input {} padded to {}", k[axis], show(x), len + 2 * p),
                        "window larger than the input",
                    )
                    .code("E0211")
                    .help("use a smaller window or remove an earlier downsampling layer"))
                }
            }
        }
        Ok(out)
    }

    pub fn cost(&self, x: &[u64], out: &[u64]) -> Cost {
        let (k, _) = self.window(x);
        let kept = if self.kind == PoolKind::Max { count(out) } else { 0 };
        Cost { elementwise: count(out) * k[0] * k[1], kept, ..Cost::default() }
    }
}
