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
//! Each (sample, channel) plane is summed with 16 independent lanes in `T` (vectorisable),
//! and plane sums are accumulated in f64; the order is fixed, so results are deterministic.

use super::Float;

/// `Σ f(v)` with 16 independent lanes.
#[inline]
fn lanes<T: Float>(v: &[T], f: impl Fn(T) -> T) -> T {
    let mut acc = [T::ZERO; 16];
    let mut ch = v.chunks_exact(16);
    for c in &mut ch {
        for l in 0..16 {
            acc[l] += f(c[l]);
        }
    }
    let mut s = T::ZERO;
    for r in ch.remainder() {
        s += f(*r);
    }
    for a in acc {
        s += a;
    }
    s
}

/// `(Σ a, Σ a·b)` with 16 independent lanes.
#[inline]
fn lanes2<T: Float>(a: &[T], b: &[T]) -> (T, T) {
    let (mut s1, mut s2) = ([T::ZERO; 16], [T::ZERO; 16]);
    let n = a.len().min(b.len()) / 16 * 16;
    for (ca, cb) in a[..n].chunks_exact(16).zip(b[..n].chunks_exact(16)) {
        for l in 0..16 {
            s1[l] += ca[l];
            s2[l] += ca[l] * cb[l];
        }
    }
    let (mut r1, mut r2) = (T::ZERO, T::ZERO);
    for (x, y) in a[n..].iter().zip(&b[n..]) {
        r1 += *x;
        r2 += *x * *y;
    }
    for l in 0..16 {
        r1 += s1[l];
        r2 += s2[l];
    }
    (r1, r2)
}

/// `sums[c] += Σ x_c` over `n` samples.
pub fn partial_sum<T: Float>(n: usize, c: usize, sp: usize, x: &[T], sums: &mut [f64]) {
    for s in 0..n {
        for ch in 0..c {
            let b = (s * c + ch) * sp;
            sums[ch] += lanes(&x[b..b + sp], |v| v).to_f64();
        }
    }
}

/// `sums[c] += Σ (x_c − mean_c)²`.
pub fn partial_sqdev<T: Float>(n: usize, c: usize, sp: usize, x: &[T], mean: &[f64], sums: &mut [f64]) {
    for s in 0..n {
        for ch in 0..c {
            let b = (s * c + ch) * sp;
            let m = T::from_f64(mean[ch]);
            sums[ch] += lanes(&x[b..b + sp], |v| (v - m) * (v - m)).to_f64();
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
    super::vectorised(
        #[inline(always)]
        || {
            for s in 0..n {
                for ch in 0..c {
                    let b = (s * c + ch) * sp;
                    let (m, is) = (T::from_f64(mean[ch]), T::from_f64(invstd[ch]));
                    let g = gamma.map_or(T::ONE, |g| g[ch]);
                    let be = beta.map_or(T::ZERO, |b| b[ch]);
                    let (xs, ys) = (&x[b..b + sp], &mut y[b..b + sp]);
                    match xhat.as_deref_mut() {
                        Some(xh_buf) => {
                            for ((yv, xh), &xv) in ys.iter_mut().zip(&mut xh_buf[b..b + sp]).zip(xs) {
                                let h = (xv - m) * is;
                                *xh = h;
                                *yv = g * h + be;
                            }
                        }
                        None => {
                            for (yv, &xv) in ys.iter_mut().zip(xs) {
                                *yv = g * ((xv - m) * is) + be;
                            }
                        }
                    }
                }
            }
        },
    )
}

/// `sdy[c] += Σ dy_c`, `sdyx[c] += Σ dy_c·x̂_c`.
pub fn partial_grad_sums<T: Float>(n: usize, c: usize, sp: usize, dy: &[T], xhat: &[T], sdy: &mut [f64], sdyx: &mut [f64]) {
    for s in 0..n {
        for ch in 0..c {
            let b = (s * c + ch) * sp;
            let (a, bb) = lanes2(&dy[b..b + sp], &xhat[b..b + sp]);
            sdy[ch] += a.to_f64();
            sdyx[ch] += bb.to_f64();
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
    super::vectorised(
        #[inline(always)]
        || {
            for s in 0..n {
                for ch in 0..c {
                    let b = (s * c + ch) * sp;
                    let g = gamma.map_or(T::ONE, |g| g[ch]);
                    let k = g * T::from_f64(invstd[ch]);
                    let (a, bb) = (T::from_f64(mdy[ch]), T::from_f64(mdyx[ch]));
                    for ((d, &g), &h) in dx[b..b + sp].iter_mut().zip(&dy[b..b + sp]).zip(&xhat[b..b + sp]) {
                        *d = k * (g - a - h * bb);
                    }
                }
            }
        },
    )
}
