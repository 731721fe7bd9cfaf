//! Concatenation along per-sample axis 0. Input i contributes a contiguous block of
//! `len_i` elements per sample (axis 0 is outermost), so `y[s] = [x_0[s] ‖ x_1[s] ‖ …]`
//! with per-sample output length `total = Σ len_i`; backward slices `dy[s]` back.

use super::Float;

/// Copies input `x` (per-sample length `len`) into `y` at per-sample offset `start`.
pub fn forward_part<T: Float>(n: usize, x: &[T], len: usize, start: usize, total: usize, y: &mut [T]) {
    for s in 0..n {
        y[s * total + start..s * total + start + len].copy_from_slice(&x[s * len..(s + 1) * len]);
    }
}

/// Extracts the gradient of the input at per-sample offset `start` into `dx` (overwrites).
pub fn backward_part<T: Float>(n: usize, dy: &[T], len: usize, start: usize, total: usize, dx: &mut [T]) {
    for s in 0..n {
        dx[s * len..(s + 1) * len].copy_from_slice(&dy[s * total + start..s * total + start + len]);
    }
}
