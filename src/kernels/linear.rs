//! Fully connected layer on the last axis: `y[r, :] = W · x[r, :] + b` for every row `r`
//! (a sample for `[F]` input, a sample×time step for `[T, F]` input).
//! Weight layout is PyTorch's `[out, in]`.
//!
//! Backward: `dW += dyᵀ · x`, `db += Σ_r dy[r, :]`, `dx = dy · W`.

use super::matmul::{matmul, MatRef};
use super::Float;

/// `rows` rows of `fin` inputs → `fout` outputs.
pub fn forward<T: Float>(rows: usize, fin: usize, fout: usize, x: &[T], w: &[T], b: Option<&[T]>, y: &mut [T]) {
    if let Some(b) = b {
        for r in 0..rows {
            y[r * fout..(r + 1) * fout].copy_from_slice(&b[..fout]);
        }
    }
    matmul(rows, fout, fin, MatRef::rm(x, fin), MatRef::tr(w, fin), y, fout, b.is_some());
}

/// Overwrites `dx` (if given), accumulates `dw`, `db`.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Float>(rows: usize, fin: usize, fout: usize, x: &[T], w: &[T], dy: &[T], dx: Option<&mut [T]>, dw: &mut [T], db: Option<&mut [T]>) {
    if let Some(db) = db {
        for r in 0..rows {
            for (d, v) in db[..fout].iter_mut().zip(&dy[r * fout..(r + 1) * fout]) {
                *d += *v;
            }
        }
    }
    matmul(fout, fin, rows, MatRef::tr(dy, fout), MatRef::rm(x, fin), dw, fin, true);
    if let Some(dx) = dx {
        matmul(rows, fin, fout, MatRef::rm(dy, fout), MatRef::rm(w, fin), dx, fin, false);
    }
}
