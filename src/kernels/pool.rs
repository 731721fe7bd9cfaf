//! Max and average 2-D pooling with zero padding, floor or ceil output rounding.
//!
//! Output size: floor mode `out = (H + 2p − k)/s + 1`; ceil mode
//! `out = ceil((H + 2p − k)/s) + 1`, then (Caffe/PyTorch rule) `out −= 1` if
//! `(out − 1)·s ≥ H + p`, so the last window always starts inside the input or left pad.
//!
//! Max pool: `y = max` over the window clipped to the input (padding never wins); the
//! argmax (flat index into the input plane, `u32`) is stored so backward scatters
//! `dx[argmax] += dy`. Average pool (Caffe convention): window `[s·o − p, min(s·o − p + k, H + p))`,
//! divisor = that window's size (padding inside `H + p` counts, the part beyond does not),
//! summation over the part inside the input. Backward spreads `dy / divisor` uniformly.
//! A ReLU directly before a max pool is fused by the engine (`max(0, max(x))`), since
//! max pooling commutes with a monotone function.

use super::Float;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub ho: usize,
    pub wo: usize,
}

impl PoolGeom {
    pub fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }
    pub fn out_len(&self) -> usize {
        self.c * self.ho * self.wo
    }
    #[inline]
    fn win(o: usize, s: usize, p: usize, k: usize, len: usize) -> (usize, usize, usize) {
        // returns (start, end) clipped to the input, and the Caffe avg-pool divisor extent
        let start = (o * s) as isize - p as isize;
        let end_pad = (start + k as isize).min((len + p) as isize);
        let ext = (end_pad - start) as usize;
        let s0 = start.max(0) as usize;
        let e0 = (end_pad.min(len as isize)).max(s0 as isize) as usize;
        (s0, e0, ext)
    }
}

/// Max-pool forward; `argmax` has `y.len()` entries.
pub fn max_forward<T: Float>(g: &PoolGeom, n: usize, x: &[T], y: &mut [T], argmax: &mut [u32]) {
    let (ip, op) = (g.h * g.w, g.ho * g.wo);
    if g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0 && 2 * g.ho <= g.h && 2 * g.wo <= g.w {
        // fast path: non-overlapping 2×2 windows fully inside the input
        for pl in 0..n * g.c {
            let xp = &x[pl * ip..(pl + 1) * ip];
            let yp = &mut y[pl * op..(pl + 1) * op];
            let ap = &mut argmax[pl * op..(pl + 1) * op];
            for oy in 0..g.ho {
                let r0 = &xp[2 * oy * g.w..2 * oy * g.w + g.w];
                let r1 = &xp[(2 * oy + 1) * g.w..(2 * oy + 1) * g.w + g.w];
                let yr = &mut yp[oy * g.wo..(oy + 1) * g.wo];
                let ar = &mut ap[oy * g.wo..(oy + 1) * g.wo];
                for ox in 0..g.wo {
                    let (a, b, c, d) = (r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]);
                    // first maximum wins (same tie rule as the general path)
                    let (mut best, mut bi) = (a, (2 * oy * g.w + 2 * ox) as u32);
                    if b > best {
                        best = b;
                        bi += 1;
                    }
                    let base1 = ((2 * oy + 1) * g.w + 2 * ox) as u32;
                    if c > best {
                        best = c;
                        bi = base1;
                    }
                    if d > best {
                        best = d;
                        bi = base1 + 1;
                    }
                    yr[ox] = best;
                    ar[ox] = bi;
                }
            }
        }
        return;
    }
    // General windows (overlapping 3×3/s2 of Caffe's nets, padding, ceil rounding): the running
    // maximum is a select rather than a branch (which the data would mispredict about half the
    // time), and full 3×3 windows are unrolled.
    #[inline(always)]
    fn take<T: Float>(v: T, at: usize, best: &mut T, bi: &mut u32) {
        let gt = v > *best;
        *best = if gt { v } else { *best };
        *bi = if gt { at as u32 } else { *bi };
    }
    for pl in 0..n * g.c {
        let xp = &x[pl * ip..(pl + 1) * ip];
        let yp = &mut y[pl * op..(pl + 1) * op];
        let ap = &mut argmax[pl * op..(pl + 1) * op];
        for oy in 0..g.ho {
            let (y0, y1, _) = PoolGeom::win(oy, g.sh, g.ph, g.kh, g.h);
            let yr = &mut yp[oy * g.wo..(oy + 1) * g.wo];
            let ar = &mut ap[oy * g.wo..(oy + 1) * g.wo];
            for ox in 0..g.wo {
                let (x0, x1, _) = PoolGeom::win(ox, g.sw, g.pw, g.kw, g.w);
                let mut best = T::NEG_INFINITY;
                let mut bi = (y0 * g.w + x0) as u32;
                if y1 - y0 == 3 && x1 - x0 == 3 {
                    for iy in y0..y0 + 3 {
                        let at = iy * g.w + x0;
                        let r: &[T; 3] = xp[at..at + 3].try_into().unwrap_or_else(|_| unreachable!());
                        take(r[0], at, &mut best, &mut bi);
                        take(r[1], at + 1, &mut best, &mut bi);
                        take(r[2], at + 2, &mut best, &mut bi);
                    }
                } else {
                    for iy in y0..y1 {
                        let base = iy * g.w;
                        for (k, &v) in xp[base + x0..base + x1].iter().enumerate() {
                            take(v, base + x0 + k, &mut best, &mut bi);
                        }
                    }
                }
                yr[ox] = best;
                ar[ox] = bi;
            }
        }
    }
}

/// Max-pool backward: overwrites `dx`. With `relu_out = Some(y)` (a ReLU fused before the
/// pool, `y = max(0, max(x))`), gradients flow only where `y > 0`.
pub fn max_backward<T: Float>(g: &PoolGeom, n: usize, dy: &[T], relu_out: Option<&[T]>, argmax: &[u32], dx: &mut [T]) {
    let (ip, op) = (g.h * g.w, g.ho * g.wo);
    dx[..n * g.in_len()].iter_mut().for_each(|v| *v = T::ZERO);
    for pl in 0..n * g.c {
        let dxp = &mut dx[pl * ip..(pl + 1) * ip];
        let r = pl * op..(pl + 1) * op;
        match relu_out {
            None => {
                for (d, a) in dy[r.clone()].iter().zip(&argmax[r]) {
                    dxp[*a as usize] += *d;
                }
            }
            Some(y) => {
                for ((d, a), yv) in dy[r.clone()].iter().zip(&argmax[r.clone()]).zip(&y[r]) {
                    if *yv > T::ZERO {
                        dxp[*a as usize] += *d;
                    }
                }
            }
        }
    }
}

/// Average-pool forward, separably: the column sums over a window's rows (contiguous, they
/// vectorise), then the sum of the window's columns. Allocates a row of scratch per call.
pub fn avg_forward<T: Float>(g: &PoolGeom, n: usize, x: &[T], y: &mut [T]) {
    let (ip, op) = (g.h * g.w, g.ho * g.wo);
    let mut vsum = vec![T::ZERO; g.w];
    for pl in 0..n * g.c {
        let xp = &x[pl * ip..(pl + 1) * ip];
        for oy in 0..g.ho {
            let (y0, y1, ey) = PoolGeom::win(oy, g.sh, g.ph, g.kh, g.h);
            vsum.iter_mut().for_each(|v| *v = T::ZERO);
            for iy in y0..y1 {
                for (v, &xv) in vsum.iter_mut().zip(&xp[iy * g.w..(iy + 1) * g.w]) {
                    *v += xv;
                }
            }
            let yr = &mut y[pl * op + oy * g.wo..pl * op + (oy + 1) * g.wo];
            for (ox, yv) in yr.iter_mut().enumerate() {
                let (x0, x1, ex) = PoolGeom::win(ox, g.sw, g.pw, g.kw, g.w);
                let mut s = T::ZERO;
                for v in &vsum[x0..x1] {
                    s += *v;
                }
                *yv = s / T::from_f64((ey * ex) as f64);
            }
        }
    }
}

/// Average-pool backward: overwrites `dx`. Per output row, the gradient each input column
/// receives from the row's windows, then added to each of the window's rows.
pub fn avg_backward<T: Float>(g: &PoolGeom, n: usize, dy: &[T], dx: &mut [T]) {
    let (ip, op) = (g.h * g.w, g.ho * g.wo);
    dx[..n * g.in_len()].iter_mut().for_each(|v| *v = T::ZERO);
    let mut hsum = vec![T::ZERO; g.w];
    for pl in 0..n * g.c {
        let dxp = &mut dx[pl * ip..(pl + 1) * ip];
        for oy in 0..g.ho {
            let (y0, y1, ey) = PoolGeom::win(oy, g.sh, g.ph, g.kh, g.h);
            hsum.iter_mut().for_each(|v| *v = T::ZERO);
            for ox in 0..g.wo {
                let (x0, x1, ex) = PoolGeom::win(ox, g.sw, g.pw, g.kw, g.w);
                let d = dy[pl * op + oy * g.wo + ox] / T::from_f64((ey * ex) as f64);
                for v in &mut hsum[x0..x1] {
                    *v += d;
                }
            }
            for iy in y0..y1 {
                for (o, &v) in dxp[iy * g.w..(iy + 1) * g.w].iter_mut().zip(&hsum) {
                    *o += v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::pool_out;
    #[test]
    fn out_sizes() {
        assert_eq!(pool_out(28, 2, 2, 0, false), Some(14));
        assert_eq!(pool_out(7, 2, 2, 0, false), Some(3));
        assert_eq!(pool_out(7, 2, 2, 0, true), Some(4));
        assert_eq!(pool_out(6, 3, 2, 1, true), Some(4));
        assert_eq!(pool_out(5, 3, 2, 1, true), Some(3));
        assert_eq!(pool_out(4, 3, 3, 1, true), Some(2));
        assert_eq!(pool_out(3, 3, 1, 3, false), None);
    }
    #[test]
    fn avg_caffe_divisor() {
        // 1x3x3 input, k=2 s=2 p=1 ceil=false -> 2x2 output; corner window divisor 4 (incl pad)
        let g = PoolGeom { c: 1, h: 3, w: 3, kh: 2, kw: 2, sh: 2, sw: 2, ph: 1, pw: 1, ho: 2, wo: 2 };
        let x = [1.0f64; 9];
        let mut y = [0.0; 4];
        avg_forward(&g, 1, &x, &mut y);
        assert_eq!(y, [0.25, 0.5, 0.5, 1.0]);
    }

    /// The max pool equals a direct row-major scan (value and first-maximum index),
    /// on data full of ties, with padding, ceil rounding and overlapping windows.
    #[test]
    fn max_pool_equals_a_direct_scan_with_ties() {
        for &(h, w, k, s, p, ceil) in &[(32, 32, 3, 2, 0, true), (7, 9, 3, 2, 1, true), (6, 5, 2, 1, 1, false), (11, 13, 5, 3, 2, true), (4, 4, 3, 1, 1, false)]
        {
            let (ho, wo) = (pool_out(h, k, s, p, ceil).unwrap(), pool_out(w, k, s, p, ceil).unwrap());
            let g = PoolGeom { c: 2, h, w, kh: k, kw: k, sh: s, sw: s, ph: p, pw: p, ho, wo };
            let x: Vec<f32> = (0..2 * 2 * h * w).map(|i| ((i * 7919) % 5) as f32).collect();
            let (mut y, mut a) = (vec![0.0f32; 2 * g.out_len()], vec![0u32; 2 * g.out_len()]);
            max_forward(&g, 2, &x, &mut y, &mut a);
            for pl in 0..4 {
                let xp = &x[pl * h * w..(pl + 1) * h * w];
                for oy in 0..ho {
                    let (y0, y1, _) = PoolGeom::win(oy, s, p, k, h);
                    for ox in 0..wo {
                        let (x0, x1, _) = PoolGeom::win(ox, s, p, k, w);
                        let (mut best, mut bi) = (f32::NEG_INFINITY, y0 * w + x0);
                        for iy in y0..y1 {
                            for ix in x0..x1 {
                                if xp[iy * w + ix] > best {
                                    best = xp[iy * w + ix];
                                    bi = iy * w + ix;
                                }
                            }
                        }
                        let o = pl * ho * wo + oy * wo + ox;
                        assert_eq!((y[o], a[o] as usize), (best, bi), "{h}x{w} k{k} s{s} p{p} at ({oy}, {ox})");
                    }
                }
            }
        }
    }
}
