//! `add A B …`: element-wise sum of two or more tensors of the same shape (residual joins).
//!
//! y = Σ_k x_k. Cost: (k − 1) additions per element, counted as zero MACs.

use super::shape::{count, show, Cost, Dims, ShapeError};

pub fn shape(ins: &[&[u64]]) -> Result<Dims, ShapeError> {
    let first = ins[0];
    for (i, x) in ins.iter().enumerate().skip(1) {
        if *x != first {
            let axis = if x.len() != first.len() {
                "rank".to_string()
            } else {
                let a = (0..x.len()).find(|&a| x[a] != first[a]).unwrap_or(0);
                let names: &[&str] = match x.len() {
                    3 => &["channels", "height", "width"],
                    2 => &["steps", "features"],
                    _ => &["features"],
                };
                format!("{}: {} vs {}", names.get(a).copied().unwrap_or("an axis"), first[a], x[a])
            };
            return Err(ShapeError::new(
                format!("add needs inputs of one shape: input 1 is {}, input {} is {} (they differ in {axis})", show(first), i + 1, show(x)),
                "shapes differ",
            )
            .code("E0213")
            .input(Some(i))
            .help("a residual join needs a projection (e.g. `conv C 1x1 stride=S`) where the shapes change"));
        }
    }
    Ok(first.to_vec())
}

pub fn cost(ins: &[&[u64]]) -> Cost {
    Cost { elementwise: count(ins[0]) * (ins.len() as u64 - 1), ..Cost::default() }
}
