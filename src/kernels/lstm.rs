//! LSTM over sequences `x [T, F]` → all hidden states `y [T, H]`, gates in PyTorch order
//! `i, f, g, o`: `a_t = W_ih x_t + W_hh h_{t−1} + b` (`[4H]`), `i = σ(a_i)`, `f = σ(a_f)`,
//! `g = tanh(a_g)`, `o = σ(a_o)`, `c_t = f ⊙ c_{t−1} + i ⊙ g`, `h_t = o ⊙ tanh(c_t)`,
//! `h_{−1} = c_{−1} = 0`. Parameters: `weight_ih [4H, F]`, `weight_hh [4H, H]`, `bias [4H]`.
//!
//! Saved for backward: activated gates `[n, T, 4H]` and cells `[n, T, H]`.
//! BPTT, t = T−1 … 0, with `dh = dy_t + dh_next`, `τ = tanh(c_t)`:
//! `do = dh·τ`, `dc = dh·o·(1 − τ²) + dc_next`, `di = dc·g`, `dg = dc·i`, `df = dc·c_{t−1}`,
//! `dc_next = dc·f`; pre-activation grads `da_i = di·i(1−i)`, `da_f = df·f(1−f)`,
//! `da_g = dg(1−g²)`, `da_o = do·o(1−o)`; `dh_next = W_hhᵀ da`, `dW_hh += da h_{t−1}ᵀ`;
//! finally `dW_ih += Σ da x_tᵀ`, `db += Σ da`, `dx_t = W_ihᵀ da_t`.

use super::linear;
use super::matmul::{matmul, MatRef};
use super::Float;

#[allow(clippy::too_many_arguments)]
pub fn forward<T: Float>(
    n: usize,
    t: usize,
    f: usize,
    h: usize,
    x: &[T],
    wih: &[T],
    whh: &[T],
    b: &[T],
    y: &mut [T],
    gates: &mut [T],
    cells: &mut [T],
    tmp: &mut [T],
) {
    let g4 = 4 * h;
    linear::forward(n * t, f, g4, x, wih, Some(b), gates);
    for step in 0..t {
        if step > 0 {
            for s in 0..n {
                let src = (s * t + step - 1) * h;
                tmp[s * h..(s + 1) * h].copy_from_slice(&y[src..src + h]);
            }
            matmul(n, g4, h, MatRef::rm(tmp, h), MatRef::tr(whh, h), &mut gates[step * g4..], t * g4, true);
        }
        for s in 0..n {
            let go = (s * t + step) * g4;
            let ho = (s * t + step) * h;
            for k in 0..h {
                let i = gates[go + k].sigmoid();
                let fg = gates[go + h + k].sigmoid();
                let g = gates[go + 2 * h + k].tanh();
                let o = gates[go + 3 * h + k].sigmoid();
                gates[go + k] = i;
                gates[go + h + k] = fg;
                gates[go + 2 * h + k] = g;
                gates[go + 3 * h + k] = o;
                let cp = if step > 0 { cells[ho - h + k] } else { T::ZERO };
                let c = fg * cp + i * g;
                cells[ho + k] = c;
                y[ho + k] = o * c.tanh();
            }
        }
    }
}

/// Workspace: `dgates [n·T·4H]`, `dh [n·H]`, `dc [n·H]`.
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
    gates: &[T],
    cells: &[T],
    dy: &[T],
    dx: Option<&mut [T]>,
    dwih: &mut [T],
    dwhh: &mut [T],
    db: &mut [T],
    dgates: &mut [T],
    dh: &mut [T],
    dc: &mut [T],
) {
    let g4 = 4 * h;
    dh[..n * h].iter_mut().for_each(|v| *v = T::ZERO);
    dc[..n * h].iter_mut().for_each(|v| *v = T::ZERO);
    for step in (0..t).rev() {
        for s in 0..n {
            let go = (s * t + step) * g4;
            let ho = (s * t + step) * h;
            for k in 0..h {
                let (i, fg, g, o) = (gates[go + k], gates[go + h + k], gates[go + 2 * h + k], gates[go + 3 * h + k]);
                let c = cells[ho + k];
                let cp = if step > 0 { cells[ho - h + k] } else { T::ZERO };
                let tc = c.tanh();
                let dht = dy[ho + k] + dh[s * h + k];
                let d_o = dht * tc;
                let dct = dht * o * (T::ONE - tc * tc) + dc[s * h + k];
                let di = dct * g;
                let dg = dct * i;
                let df = dct * cp;
                dc[s * h + k] = dct * fg;
                dgates[go + k] = di * i * (T::ONE - i);
                dgates[go + h + k] = df * fg * (T::ONE - fg);
                dgates[go + 2 * h + k] = dg * (T::ONE - g * g);
                dgates[go + 3 * h + k] = d_o * o * (T::ONE - o);
            }
        }
        if step > 0 {
            let at = MatRef { data: &dgates[step * g4..], rs: t * g4, cs: 1 };
            matmul(n, h, g4, at, MatRef::rm(whh, h), dh, h, false);
            let at_t = MatRef { data: &dgates[step * g4..], rs: 1, cs: t * g4 };
            let hp = MatRef { data: &y[(step - 1) * h..], rs: t * h, cs: 1 };
            matmul(g4, h, n, at_t, hp, dwhh, h, true);
        }
    }
    linear::backward(n * t, f, g4, x, wih, dgates, dx, dwih, Some(db));
}
