//! `concat A B …`: concatenation along the channel axis (axis 1).
//!
//! All inputs must agree on every other axis. No parameters, no MACs (a copy).

use super::shape::{show, Dims, ShapeError};

pub fn shape(ins: &[&[u64]]) -> Result<Dims, ShapeError> {
    let first = ins[0];
    if first.is_empty() {
        return Err(ShapeError::new("concat needs inputs with a channel axis, found a scalar", "no channels"));
    }
    let mut out = first.to_vec();
    for (i, x) in ins.iter().enumerate().skip(1) {
        if x.len() != first.len() || x[1..] != first[1..] {
            return Err(ShapeError::new(
                format!("concat joins along channels, so every other axis must agree: input 1 is {}, input {} is {}", show(first), i + 1, show(x)),
                "shapes differ",
            )
            .code("E0213")
            .input(Some(i))
            .help("pool or crop the branches to the same height and width first"));
        }
        out[0] += x[0];
    }
    Ok(out)
}
