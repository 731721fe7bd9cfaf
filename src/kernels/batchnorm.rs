//! Batch normalisation over channel axis 0 of each sample (`[C, …spatial]`), optionally
//! followed by a fused ReLU.
//!
//! Training: `μ_c = mean(x_c)`, `σ²_c = mean((x_c − μ_c)²)` over all `M = N·spatial`
//! values of channel c in the *whole* batch, `x̂ = (x − μ)/sqrt(σ² + eps)`,
//! `y = γ·x̂ + β` (γ = 1, β = 0 without affine), `y ← max(y, 0)` when a ReLU is fused.
//! The statistics take one pass over `x`: each (sample, channel) plane's mean and squared
//! deviations are computed while the plane is in L1 and merged into the channel's
//! `(count, mean, M2)` with Chan et al.'s pairwise update
//! `δ = μ_b − μ_a`, `μ = μ_a + δ·n_b/n`, `M2 = M2_a + M2_b + δ²·n_a·n_b/n`;
//! the engine merges the workers' moments the same way, in worker order.
//! Running statistics (PyTorch convention): `r_μ ← (1 − momentum)·r_μ + momentum·μ`,
//! `r_σ² ← (1 − momentum)·r_σ² + momentum·σ²·M/(M − 1)`.
//! Evaluation: `y = γ·(x − r_μ)/sqrt(r_σ² + eps) + β` (then the fused ReLU).
//!
//! Backward (training): `x̂` is recomputed from the saved input (the same operations as the
//! forward, so bit for bit the same values; no x̂ buffer is kept); with a fused ReLU the output
//! gradient is first masked, `dy ← dy·[γ·x̂ + β > 0]`. Then `dβ = Σ dy`, `dγ = Σ dy·x̂`,
//! `dx = γ/sqrt(σ² + eps) · (dy − Σdy/M − x̂·Σ(dy·x̂)/M)`.
//! Sums run with 16 independent lanes in `T` per plane and are accumulated in f64 in a fixed
//! order, so results are deterministic.

use super::Float;

/// `Σ f(v)` with 16 independent lanes.
#[inline(always)]
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

/// `(Σ a, Σ a·b)` over `(a, b) = f(dy_i, x_i)` with 16 independent lanes.
#[inline(always)]
fn lanes2<T: Float>(dy: &[T], x: &[T], f: impl Fn(T, T) -> (T, T)) -> (T, T) {
    let (mut s1, mut s2) = ([T::ZERO; 16], [T::ZERO; 16]);
    let (mut cd, mut cx) = (dy.chunks_exact(16), x.chunks_exact(16));
    for (d, x) in (&mut cd).zip(&mut cx) {
        for l in 0..16 {
            let (a, b) = f(d[l], x[l]);
            s1[l] += a;
            s2[l] += a * b;
        }
    }
    let (mut r1, mut r2) = (T::ZERO, T::ZERO);
    for (&d, &x) in cd.remainder().iter().zip(cx.remainder()) {
        let (a, b) = f(d, x);
        r1 += a;
        r2 += a * b;
    }
    for l in 0..16 {
        r1 += s1[l];
        r2 += s2[l];
    }
    (r1, r2)
}

/// Per-channel count, mean and sum of squared deviations (`M2`) of some values.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Moments {
    pub count: f64,
    pub mean: f64,
    pub m2: f64,
}

impl Moments {
    /// Chan et al.'s pairwise update: the moments of both sets together.
    pub fn merge(&mut self, b: Moments) {
        if b.count == 0.0 {
            return;
        }
        if self.count == 0.0 {
            *self = b;
            return;
        }
        let n = self.count + b.count;
        let delta = b.mean - self.mean;
        self.mean += delta * b.count / n;
        self.m2 += b.m2 + delta * delta * self.count * b.count / n;
        self.count = n;
    }

    /// The population variance `M2 / count` (0 for no values).
    pub fn variance(&self) -> f64 {
        if self.count > 0.0 {
            self.m2 / self.count
        } else {
            0.0
        }
    }
}

/// Merges into `moments[ch]` the moments of channel `ch` over the `n` samples of `x` (one pass
/// over `x`), plane by plane in sample order: calls over consecutive runs of samples give the
/// bits of one call over all of them.
pub fn partial_moments<T: Float>(n: usize, c: usize, sp: usize, x: &[T], moments: &mut [Moments]) {
    if sp == 0 {
        return;
    }
    super::vectorised(
        #[inline(always)]
        || {
            for s in 0..n {
                for (ch, acc) in moments[..c].iter_mut().enumerate() {
                    let b = (s * c + ch) * sp;
                    let plane = &x[b..b + sp];
                    let mean = lanes(plane, |v| v).to_f64() / sp as f64;
                    let m = T::from_f64(mean);
                    let m2 = lanes(plane, |v| (v - m) * (v - m)).to_f64();
                    acc.merge(Moments { count: sp as f64, mean, m2 });
                }
            }
        },
    )
}

/// What a batch norm applies per channel: `x̂ = (x − mean)·invstd`, `y = γ·x̂ + β` (γ = 1, β = 0
/// when absent), then `max(y, 0)` when `relu` (a fused ReLU).
#[derive(Clone, Copy)]
pub struct Normalization<'a, T> {
    pub mean: &'a [f64],
    pub invstd: &'a [f64],
    pub gamma: Option<&'a [T]>,
    pub beta: Option<&'a [T]>,
    pub relu: bool,
}

/// One channel's map `x̂ = (x − mean)·invstd`, `y = g·x̂ + b`.
#[derive(Clone, Copy)]
struct ChannelMap<T> {
    mean: T,
    invstd: T,
    g: T,
    b: T,
}

impl<T: Float> ChannelMap<T> {
    fn of(ch: usize, nz: &Normalization<'_, T>) -> Self {
        ChannelMap {
            mean: T::from_f64(nz.mean[ch]),
            invstd: T::from_f64(nz.invstd[ch]),
            g: nz.gamma.map_or(T::ONE, |g| g[ch]),
            b: nz.beta.map_or(T::ZERO, |b| b[ch]),
        }
    }

    #[inline(always)]
    fn xhat(&self, x: T) -> T {
        (x - self.mean) * self.invstd
    }

    #[inline(always)]
    fn y(&self, xhat: T) -> T {
        self.g * xhat + self.b
    }
}

/// `y = γ·(x − mean)·invstd + β`, then `max(y, 0)` when `relu`.
pub fn normalize<T: Float>(n: usize, c: usize, sp: usize, x: &[T], nz: &Normalization<'_, T>, y: &mut [T]) {
    super::vectorised(
        #[inline(always)]
        || {
            for s in 0..n {
                for ch in 0..c {
                    let b = (s * c + ch) * sp;
                    let map = ChannelMap::of(ch, nz);
                    let (xs, ys) = (&x[b..b + sp], &mut y[b..b + sp]);
                    if nz.relu {
                        for (yv, &xv) in ys.iter_mut().zip(xs) {
                            let v = map.y(map.xhat(xv));
                            *yv = if v > T::ZERO { v } else { T::ZERO };
                        }
                    } else {
                        for (yv, &xv) in ys.iter_mut().zip(xs) {
                            *yv = map.y(map.xhat(xv));
                        }
                    }
                }
            }
        },
    )
}

/// `sdy[c] += Σ dy_c`, `sdyx[c] += Σ dy_c·x̂_c`, with `dy` masked by the fused ReLU when `relu`.
#[allow(clippy::too_many_arguments)]
pub fn partial_grad_sums<T: Float>(n: usize, c: usize, sp: usize, dy: &[T], x: &[T], nz: &Normalization<'_, T>, sdy: &mut [f64], sdyx: &mut [f64]) {
    super::vectorised(
        #[inline(always)]
        || {
            for s in 0..n {
                for ch in 0..c {
                    let b = (s * c + ch) * sp;
                    let map = ChannelMap::of(ch, nz);
                    let (dys, xs) = (&dy[b..b + sp], &x[b..b + sp]);
                    let (a, bb) = if nz.relu {
                        lanes2(dys, xs, |d, x| {
                            let h = map.xhat(x);
                            (if map.y(h) > T::ZERO { d } else { T::ZERO }, h)
                        })
                    } else {
                        lanes2(dys, xs, |d, x| (d, map.xhat(x)))
                    };
                    sdy[ch] += a.to_f64();
                    sdyx[ch] += bb.to_f64();
                }
            }
        },
    )
}

/// `dx = γ·invstd·(dy − mdy − x̂·mdyx)` with `mdy = Σdy/M`, `mdyx = Σdy·x̂/M` (`dy` masked by
/// the fused ReLU when `relu`).
#[allow(clippy::too_many_arguments)]
pub fn backward_dx<T: Float>(n: usize, c: usize, sp: usize, dy: &[T], x: &[T], nz: &Normalization<'_, T>, mdy: &[f64], mdyx: &[f64], dx: &mut [T]) {
    super::vectorised(
        #[inline(always)]
        || {
            for s in 0..n {
                for ch in 0..c {
                    let b = (s * c + ch) * sp;
                    let map = ChannelMap::of(ch, nz);
                    let k = map.g * map.invstd;
                    let (a, bb) = (T::from_f64(mdy[ch]), T::from_f64(mdyx[ch]));
                    let (dys, xs) = (&dy[b..b + sp], &x[b..b + sp]);
                    if nz.relu {
                        for ((d, &g), &xv) in dx[b..b + sp].iter_mut().zip(dys).zip(xs) {
                            let h = map.xhat(xv);
                            let g = if map.y(h) > T::ZERO { g } else { T::ZERO };
                            *d = k * (g - a - h * bb);
                        }
                    } else {
                        for ((d, &g), &xv) in dx[b..b + sp].iter_mut().zip(dys).zip(xs) {
                            let h = map.xhat(xv);
                            *d = k * (g - a - h * bb);
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_plane_moments_equal_the_two_pass_statistics() {
        // 3 samples × 2 channels × 37 values (not a multiple of the 16 lanes), far from zero mean.
        let (n, c, sp) = (3, 2, 37);
        let x: Vec<f64> = (0..n * c * sp).map(|i| 1000.0 + ((i * 7919) % 101) as f64 * 0.37 - (i % 5) as f64).collect();
        let mut m = vec![Moments::default(); c];
        partial_moments(n, c, sp, &x, &mut m);
        // the same over two runs of samples, one after the other: the same bits
        let mut runs = vec![Moments::default(); c];
        partial_moments(1, c, sp, &x, &mut runs);
        partial_moments(n - 1, c, sp, &x[c * sp..], &mut runs);
        assert_eq!(format!("{runs:?}"), format!("{m:?}"));
        for ch in 0..c {
            let vals: Vec<f64> = (0..n).flat_map(|s| x[(s * c + ch) * sp..(s * c + ch + 1) * sp].to_vec()).collect();
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / vals.len() as f64;
            assert_eq!(m[ch].count, (n * sp) as f64);
            assert!((m[ch].mean - mean).abs() < 1e-9, "channel {ch}: mean {} vs {mean}", m[ch].mean);
            assert!((m[ch].variance() - var).abs() < 1e-9 * var, "channel {ch}: variance {} vs {var}", m[ch].variance());
        }
        // merging in two halves equals merging all at once; an empty side changes nothing
        let mut a = Moments::default();
        a.merge(Moments { count: 2.0, mean: 1.0, m2: 2.0 }); // {0, 2}
        a.merge(Moments { count: 1.0, mean: 4.0, m2: 0.0 }); // {4}
        a.merge(Moments::default());
        assert_eq!((a.count, a.mean), (3.0, 2.0));
        assert!((a.m2 - 8.0).abs() < 1e-12); // (0−2)² + 0 + (4−2)²
    }

    #[test]
    fn fused_relu_masks_output_and_gradient_where_the_normalized_value_is_not_positive() {
        let (n, c, sp) = (1, 1, 4);
        let x = [1.0f64, 2.0, 3.0, 4.0];
        let nz = Normalization { mean: &[2.5], invstd: &[1.0], gamma: None, beta: None, relu: true };
        let mut y = [0.0; 4];
        normalize(n, c, sp, &x, &nz, &mut y);
        assert_eq!(y, [0.0, 0.0, 0.5, 1.5]);
        let dy = [1.0, 1.0, 1.0, 1.0];
        let (mut sdy, mut sdyx) = ([0.0], [0.0]);
        partial_grad_sums(n, c, sp, &dy, &x, &nz, &mut sdy, &mut sdyx);
        assert_eq!((sdy[0], sdyx[0]), (2.0, 2.0)); // only x̂ = 0.5, 1.5 pass the ReLU
        let mut dx = [9.0; 4];
        backward_dx(n, c, sp, &dy, &x, &nz, &[0.5], &[0.5], &mut dx);
        // dx = dy' − 0.5 − x̂·0.5 with dy' = [0, 0, 1, 1], x̂ = [−1.5, −0.5, 0.5, 1.5]
        assert_eq!(dx, [0.25, -0.25, 0.25, -0.25]);
    }
}
