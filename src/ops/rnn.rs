//! `rnn H`: Elman recurrent layer over T steps (the seed's Problem 1).
//!
//! h_t = tanh(W_xh x_t + W_hh h_{t−1} + b_h), h_0 = 0; input [N, T, F] → output [N, T, H]
//! (every hidden state; follow with `fc C` for the per-step output z_t = softmax(W_hz h_t + b_z)
//! or with `last` to keep h_T). Parameters W_xh [H, F], W_hh [H, H], b_h [H] — shared over
//! time, so their count does not depend on T. Forward MACs per sample: T·(F·H + H·H).

use crate::spec::args::Args;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rnn {
    pub hidden: u64,
}

impl Rnn {
    pub fn parse(a: &mut Args) -> Option<Rnn> {
        let v = a.required("hidden size", "rnn 128")?;
        Some(Rnn { hidden: a.as_uint(v, 1)? })
    }
}
