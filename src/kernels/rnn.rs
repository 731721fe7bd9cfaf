//! Elman RNN over sequences `x [T, F]` → all hidden states `y [T, H]`:
//! `h_t = tanh(W_ih x_t + W_hh h_{t−1} + b)`, `h_{−1} = 0`.
//! Parameters: `weight_ih [H, F]`, `weight_hh [H, H]`, `bias [H]` (PyTorch layout; a
//! PyTorch `nn.RNN` checkpoint has `bias_ih + bias_hh = bias`).
//!
//! Backpropagation through time, for t = T−1 … 0:
//! `a_t = (dy_t + dh_t) ⊙ (1 − h_t²)`, `dh_{t−1} = W_hhᵀ a_t`, `dW_hh += a_t h_{t−1}ᵀ`;
//! then `dW_ih += Σ a_t x_tᵀ`, `db += Σ a_t`, `dx_t = W_ihᵀ a_t`.
//! Batched: the input projection is one GEMM over all `n·T` rows; the recurrence is one
//! GEMM per step over the `n` samples (rows strided by `T·H`).

use super::linear;
use super::matmul::{matmul, MatRef};
use super::Float;

/// Workspace elements needed for `n` samples: `tmp [n·H]`.
pub fn forward_ws(n: usize, h: usize) -> usize {
    n * h
}

#[allow(clippy::too_many_arguments)]
pub fn forward<T: Float>(n: usize, t: usize, f: usize, h: usize, x: &[T], wih: &[T], whh: &[T], b: &[T], y: &mut [T], tmp: &mut [T]) {
    linear::forward(n * t, f, h, x, wih, Some(b), y);
    for step in 0..t {
        if step > 0 {
            for s in 0..n {
                let src = (s * t + step - 1) * h;
                tmp[s * h..(s + 1) * h].copy_from_slice(&y[src..src + h]);
            }
            matmul(n, h, h, MatRef::rm(tmp, h), MatRef::tr(whh, h), &mut y[step * h..], t * h, true);
        }
        for s in 0..n {
            let o = (s * t + step) * h;
            y[o..o + h].iter_mut().for_each(|v| *v = v.tanh());
        }
    }
}

/// Workspace: `da [n·T·H]` and `dh [n·H]`.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Float>(
    n: usize,
    t: usize,
    f: usize,
    h: usize,
    x: &[T],
    wih: &[T],
    whh: &[T],
    y: &[T],
    dy: &[T],
    dx: Option<&mut [T]>,
    dwih: &mut [T],
    dwhh: &mut [T],
    db: &mut [T],
    da: &mut [T],
    dh: &mut [T],
) {
    dh[..n * h].iter_mut().for_each(|v| *v = T::ZERO);
    for step in (0..t).rev() {
        for s in 0..n {
            let o = (s * t + step) * h;
            for k in 0..h {
                let hv = y[o + k];
                da[o + k] = (dy[o + k] + dh[s * h + k]) * (T::ONE - hv * hv);
            }
        }
        if step > 0 {
            let at = MatRef { data: &da[step * h..], rs: t * h, cs: 1 };
            matmul(n, h, h, at, MatRef::rm(whh, h), dh, h, false);
            let at_t = MatRef { data: &da[step * h..], rs: 1, cs: t * h };
            let hp = MatRef { data: &y[(step - 1) * h..], rs: t * h, cs: 1 };
            matmul(h, h, n, at_t, hp, dwhh, h, true);
        }
    }
    linear::backward(n * t, f, h, x, wih, da, dx, dwih, Some(db));
}
