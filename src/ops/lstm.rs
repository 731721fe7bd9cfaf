//! `lstm H`: long short-term memory layer over T steps.
//!
//! [i, f, g, o] = [σ, σ, tanh, σ](W_x x_t + W_h h_{t−1} + b); c_t = f⊙c_{t−1} + i⊙g;
//! h_t = o⊙tanh(c_t). Input [N, T, F] → output [N, T, H]. Parameters W_x [4H, F],
//! W_h [4H, H], b [4H]. Forward MACs per sample: T·4H·(F + H).

use crate::spec::args::Args;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Lstm {
    pub hidden: u64,
}

impl Lstm {
    pub fn parse(a: &mut Args) -> Option<Lstm> {
        let v = a.required("hidden size", "lstm 128")?;
        Some(Lstm { hidden: a.as_uint(v, 1)? })
    }
}
