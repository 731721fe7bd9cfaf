//! Concatenation along per-sample axis 0. Each input i contributes a contiguous block of
//! `len_i` elements per sample (axis 0 is outermost), so
//! `y[s] = [x_0[s] ‖ x_1[s] ‖ …]`; backward slices `dy[s]` back into the `dx_i[s]`.

use super::Float;

/// `lens[i]` is the per-sample length of input i.
pub fn forward<T: Float>(n: usize, xs: &[&[T]], lens: &[usize], y: &mut [T]) {
    let total: usize = lens.iter().sum();
    for s in 0..n {
        let mut off = s * total;
        for (x, &l) in xs.iter().zip(lens) {
            y[off..off + l].copy_from_slice(&x[s * l..(s + 1) * l]);
            off += l;
        }
    }
}

/// Extracts the gradient of input `which` into `dx` (overwrites).
pub fn backward_one<T: Float>(n: usize, dy: &[T], lens: &[usize], which: usize, dx: &mut [T]) {
    let total: usize = lens.iter().sum();
    let start: usize = lens[..which].iter().sum();
    let l = lens[which];
    for s in 0..n {
        dx[s * l..(s + 1) * l].copy_from_slice(&dy[s * total + start..s * total + start + l]);
    }
}
