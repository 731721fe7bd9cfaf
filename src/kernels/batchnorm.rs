//! Batch normalisation over channel axis 0 of each sample (`[C, …spatial]`).
//!
//! Training: `μ_c = mean(x_c)`, `σ²_c = mean((x_c − μ_c)²)` over all `M = N·spatial`
//! values of channel c in the *whole* batch (the engine reduces the partial sums
//! computed here across threads, in a fixed order), `x̂ = (x − μ)/sqrt(σ² + eps)`,
//! `y = γ·x̂ + β` (γ = 1, β = 0 without affine). Running statistics (PyTorch convention):
//! `r_μ ← (1 − momentum)·r_μ + momentum·μ`, `r_σ² ← (1 − momentum)·r_σ² + momentum·σ²·M/(M − 1)`.
//! Evaluation: `y = γ·(x − r_μ)/sqrt(r_σ² + eps) + β`.
//!
//! Backward (training): `dβ = Σ dy`, `dγ = Σ dy·x̂`,
//! `dx = γ/sqrt(σ² + eps) · (dy − Σdy/M − x̂·Σ(dy·x̂)/M)`.
//! Partial sums are accumulated in f64 for accuracy and order-independence of rounding
//! within a thread.

use super::Float;

/// `sums[c] += Σ x_c` over `n` samples.
pub fn partial_sum<T: Float>(n: usize, c: usize, sp: usize, x: &[T], sums: &mut [f64]) {
    for s in 0..n {
        for ch in 0..c {
            let b = (s * c + ch) * sp;
            let mut a = 0.0f64;
            for v in &x[b..b + sp] {
                a += v.to_f64();
            }
            sums[ch] += a;
        }
    }
}

/// `sums[c] += Σ (x_c − mean_c)²`.
pub fn partial_sqdev<T: Float>(n: usize, c: usize, sp: usize, x: &[T], mean: &[f64], sums: &mut [f64]) {
    for s in 0..n {
        for ch in 0..c {
            let b = (s * c + ch) * sp;
            let m = mean[ch];
            let mut a = 0.0f64;
            for v in &x[b..b + sp] {
                let d = v.to_f64() - m;
                a += d * d;
            }
            sums[ch] += a;
        }
    }
}

/// `x̂ = (x − mean)·invstd`, `y = γ·x̂ + β`. `xhat` may be `None` (evaluation).
#[allow(clippy::too_many_arguments)]
pub fn normalize<T: Float>(
    n: usize,
    c: usize,
    sp: usize,
    x: &[T],
    mean: &[f64],
    invstd: &[f64],
    gamma: Option<&[T]>,
    beta: Option<&[T]>,
    mut xhat: Option<&mut [T]>,
    y: &mut [T],
) {
    for s in 0..n {
        for ch in 0..c {
            let b = (s * c + ch) * sp;
            let (m, is) = (T::from_f64(mean[ch]), T::from_f64(invstd[ch]));
            let g = gamma.map_or(T::ONE, |g| g[ch]);
            let be = beta.map_or(T::ZERO, |b| b[ch]);
            for i in b..b + sp {
                let xh = (x[i] - m) * is;
                if let Some(xh_buf) = xhat.as_deref_mut() {
                    xh_buf[i] = xh;
                }
                y[i] = g * xh + be;
            }
        }
    }
}

/// `sdy[c] += Σ dy_c`, `sdyx[c] += Σ dy_c·x̂_c`.
pub fn partial_grad_sums<T: Float>(
    n: usize,
    c: usize,
    sp: usize,
    dy: &[T],
    xhat: &[T],
    sdy: &mut [f64],
    sdyx: &mut [f64],
) {
    for s in 0..n {
        for ch in 0..c {
            let b = (s * c + ch) * sp;
            let (mut a, mut bb) = (0.0f64, 0.0f64);
            for i in b..b + sp {
                let d = dy[i].to_f64();
                a += d;
                bb += d * xhat[i].to_f64();
            }
            sdy[ch] += a;
            sdyx[ch] += bb;
        }
    }
}

/// `dx = γ·invstd·(dy − mdy − x̂·mdyx)` with `mdy = Σdy/M`, `mdyx = Σdy·x̂/M`.
#[allow(clippy::too_many_arguments)]
pub fn backward_dx<T: Float>(
    n: usize,
    c: usize,
    sp: usize,
    dy: &[T],
    xhat: &[T],
    gamma: Option<&[T]>,
    invstd: &[f64],
    mdy: &[f64],
    mdyx: &[f64],
    dx: &mut [T],
) {
    for s in 0..n {
        for ch in 0..c {
            let b = (s * c + ch) * sp;
            let g = gamma.map_or(T::ONE, |g| g[ch]);
            let k = g * T::from_f64(invstd[ch]);
            let (a, bb) = (T::from_f64(mdy[ch]), T::from_f64(mdyx[ch]));
            for i in b..b + sp {
                dx[i] = k * (dy[i] - a - xhat[i] * bb);
            }
        }
    }
}
