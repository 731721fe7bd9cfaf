//! Element-wise sum of k equally shaped inputs: `y = Σ_i x_i`; backward `dx_i = dy`.
//! The engine copies the first input into `y` and accumulates the rest with [`accumulate`].

use super::Float;

/// `y += x`.
pub fn accumulate<T: Float>(x: &[T], y: &mut [T]) {
    super::vectorised(
        #[inline(always)]
        || y.iter_mut().zip(x).for_each(|(a, b)| *a += *b),
    );
}
