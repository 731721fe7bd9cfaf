//! Element-wise sum of k equally shaped inputs: `y = Σ_i x_i`; backward `dx_i = dy`.

use super::Float;

/// `y = x_0 + x_1 + …` (overwrites `y`).
pub fn forward<T: Float>(xs: &[&[T]], y: &mut [T]) {
    y.copy_from_slice(&xs[0][..y.len()]);
    for x in &xs[1..] {
        y.iter_mut().zip(x.iter()).for_each(|(a, b)| *a += *b);
    }
}
