//! 2-D convolution (cross-correlation) via im2col + GEMM, with stride, zero padding,
//! dilation and groups.
//!
//! Forward, per sample and group `g` (`Cg = C/groups`, `Og = O/groups`):
//! `y[o, oy, ox] = b[o] + Σ_{c<Cg, i<kh, j<kw} W[o, c, i, j] · x[g·Cg + c, oy·sh − ph + i·dh, ox·sw − pw + j·dw]`
//! (out-of-range input positions read as 0), with `Ho = (H + 2ph − dh(kh−1) − 1)/sh + 1`.
//! Weight layout is PyTorch's `[O, C/groups, kh, kw]`.
//!
//! Backward: `dW_g += dy_g · col_gᵀ`, `db[o] += Σ dy[o,·]`, `dx = col2im(W_gᵀ · dy_g)`.
//! The column buffer holds one sample: `[C·kh·kw, Ho·Wo]` (rows ordered channel, ki, kj,
//! so group `g` owns a contiguous block of `Cg·kh·kw` rows). A 1×1, stride-1, unpadded
//! convolution skips im2col and multiplies the input directly.

use super::dot_tile::{gemm_nt_acc, gemm_nt_acc_batched};
#[cfg(target_arch = "x86_64")]
use super::lanes::{F32Lanes, Ymm, Zmm};
use super::matmul::{matmul, MatRef};
use super::Float;

/// Static geometry of one convolution layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub dh: usize,
    pub dw: usize,
    pub groups: usize,
    pub ho: usize,
    pub wo: usize,
}

impl ConvGeom {
    /// Reduction length per group: `C/groups · kh · kw`.
    pub fn kg(&self) -> usize {
        self.c / self.groups * self.kh * self.kw
    }
    pub fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }
    pub fn out_len(&self) -> usize {
        self.o * self.ho * self.wo
    }
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.sh == 1 && self.sw == 1 && self.ph == 0 && self.pw == 0
    }
    /// Column-buffer length for one sample (0 for pointwise convolutions).
    pub fn col_len(&self) -> usize {
        if self.is_pointwise() {
            0
        } else {
            self.c * self.kh * self.kw * self.ho * self.wo
        }
    }
    /// Multiply-accumulates of the forward pass for one sample.
    pub fn macs_per_sample(&self) -> u64 {
        (self.o * self.ho * self.wo * self.kg()) as u64
    }
}

/// Zeroes a short row (portable path).
pub(crate) fn zero_short<T: Float>(dst: &mut [T]) {
    let mut d8 = dst.chunks_exact_mut(8);
    for d in &mut d8 {
        let d: &mut [T; 8] = d.try_into().unwrap_or_else(|_| unreachable!());
        *d = [T::ZERO; 8];
    }
    for v in d8.into_remainder() {
        *v = T::ZERO;
    }
}

/// Copies a short row without a `memcpy` call (call overhead dominates for ~10–30
/// elements): 8-wide array moves, then a 4-wide one, then up to 3 scalars.
#[inline(always)]
pub(crate) fn copy_short<T: Float>(dst: &mut [T], src: &[T]) {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    let mut d8 = dst.chunks_exact_mut(8);
    let mut s8 = src.chunks_exact(8);
    for (d, s) in (&mut d8).zip(&mut s8) {
        let s: [T; 8] = s.try_into().unwrap_or([T::ZERO; 8]);
        let d: &mut [T; 8] = d.try_into().unwrap_or_else(|_| unreachable!());
        *d = s;
    }
    let (dr, sr) = (d8.into_remainder(), s8.remainder());
    let mut i = 0;
    if dr.len() >= 4 {
        let s: [T; 4] = sr[..4].try_into().unwrap_or([T::ZERO; 4]);
        let d: &mut [T; 4] = (&mut dr[..4]).try_into().unwrap_or_else(|_| unreachable!());
        *d = s;
        i = 4;
    }
    match dr.len() - i {
        3 => {
            dr[i] = sr[i];
            dr[i + 1] = sr[i + 1];
            dr[i + 2] = sr[i + 2];
        }
        2 => {
            dr[i] = sr[i];
            dr[i + 1] = sr[i + 1];
        }
        1 => dr[i] = sr[i],
        _ => {}
    }
}

/// Sum with 16 independent partial sums (vectorisable, fixed order → deterministic).
#[inline]
pub fn lane_sum<T: Float>(v: &[T]) -> T {
    let mut acc = [T::ZERO; 16];
    let mut ch = v.chunks_exact(16);
    for c in &mut ch {
        for l in 0..16 {
            acc[l] += c[l];
        }
    }
    let mut s = T::ZERO;
    for r in ch.remainder() {
        s += *r;
    }
    for a in acc {
        s += a;
    }
    s
}

/// im2col for stride 1 without padding, f32 AVX-512: each output row is copied with
/// 16-wide (masked) loads and stores.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn im2col_s1_avx512(g: &ConvGeom, x: &[f32], col: &mut [f32]) {
    use std::arch::x86_64::*;
    let hw = g.ho * g.wo;
    assert!(x.len() >= g.c * g.h * g.w && col.len() >= g.c * g.kh * g.kw * hw);
    assert!((g.ho - 1 + (g.kh - 1) * g.dh) < g.h && (g.wo - 1 + (g.kw - 1) * g.dw) < g.w);
    let nblk = g.wo.div_ceil(16);
    let rem = g.wo - 16 * (nblk - 1);
    let last: __mmask16 = if rem == 16 { 0xFFFF } else { ((1u32 << rem) - 1) as __mmask16 };
    let xp = x.as_ptr();
    let cp = col.as_mut_ptr();
    let mut row = 0;
    for c in 0..g.c {
        for i in 0..g.kh {
            for j in 0..g.kw {
                let dst = cp.add(row * hw);
                for oy in 0..g.ho {
                    let src = xp.add(c * g.h * g.w + (oy + i * g.dh) * g.w + j * g.dw);
                    let d = dst.add(oy * g.wo);
                    // variable masks keep LLVM from turning this into a `memcpy` call
                    for b in 0..nblk {
                        let m = if b + 1 == nblk { last } else { 0xFFFF };
                        _mm512_mask_storeu_ps(d.add(16 * b), m, _mm512_maskz_loadu_ps(m, src.add(16 * b)));
                    }
                }
                row += 1;
            }
        }
    }
}

/// im2col for stride 1 with zero padding, f32 SIMD (written once over [`F32Lanes`]): each output
/// row is one masked load (the lanes inside the input; masked-off lanes read nothing and become 0)
/// and one masked store per vector of columns, so padding costs no separate fill and no row is a
/// `memcpy` call.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn im2col_s1_padded<V: F32Lanes>(g: &ConvGeom, x: &[f32], col: &mut [f32]) {
    let (hw, l) = (g.ho * g.wo, V::LANES);
    assert!(x.len() >= g.c * g.h * g.w && col.len() >= g.c * g.kh * g.kw * hw && g.sh == 1 && g.sw == 1);
    let nblk = g.wo.div_ceil(l);
    // Lanes of block b whose column ox has lo <= ox < hi.
    let lanes = |lo: usize, hi: usize, b: usize| V::mask_between(lo.saturating_sub(l * b).min(l), hi.saturating_sub(l * b).min(l));
    let xp = x.as_ptr();
    let cp = col.as_mut_ptr();
    let mut row = 0;
    for c in 0..g.c {
        for i in 0..g.kh {
            for j in 0..g.kw {
                // Columns ox with 0 <= ox + xoff < w read the input.
                let xoff = (j * g.dw) as isize - g.pw as isize;
                let lo = (-xoff).clamp(0, g.wo as isize) as usize;
                let hi = (g.w as isize - xoff).clamp(lo as isize, g.wo as isize) as usize;
                let dst = cp.add(row * hw);
                for oy in 0..g.ho {
                    let d = dst.add(oy * g.wo);
                    let iy = (oy + i * g.dh) as isize - g.ph as isize;
                    if iy < 0 || iy >= g.h as isize {
                        for b in 0..nblk {
                            V::store_masked(d.add(l * b), lanes(0, g.wo, b), V::zero());
                        }
                        continue;
                    }
                    // May point before the row (or the buffer): only lanes in [lo, hi) are read.
                    let src = xp.wrapping_offset((c * g.h * g.w) as isize + iy * g.w as isize + xoff);
                    for b in 0..nblk {
                        let v = V::load_masked(src.wrapping_add(l * b), lanes(lo, hi, b));
                        V::store_masked(d.add(l * b), lanes(0, g.wo, b), v);
                    }
                }
                row += 1;
            }
        }
    }
}

/// [`im2col_s1_padded`] with 16 columns per masked load and store.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn im2col_s1_padded_avx512(g: &ConvGeom, x: &[f32], col: &mut [f32]) {
    im2col_s1_padded::<Zmm>(g, x, col)
}

/// [`im2col_s1_padded`] with 8 columns per masked load and store.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn im2col_s1_padded_avx2(g: &ConvGeom, x: &[f32], col: &mut [f32]) {
    im2col_s1_padded::<Ymm>(g, x, col)
}

/// Unfolds one sample `x [C,H,W]` into `col [C·kh·kw, Ho·Wo]`.
pub fn im2col<T: Float>(g: &ConvGeom, x: &[T], col: &mut [T]) {
    let hw = g.ho * g.wo;
    let col = &mut col[..g.c * g.kh * g.kw * hw];
    #[cfg(target_arch = "x86_64")]
    {
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
            && g.sh == 1
            && g.sw == 1
            && (g.ph > 0 || g.pw > 0)
            && super::simd() >= super::Simd::Avx2
        {
            // SAFETY: T is f32; the instruction set was detected (`simd`); rows stay inside `col`
            // (C·kh·kw rows of Ho·Wo), and only lanes inside the input are loaded.
            unsafe {
                let xs = std::slice::from_raw_parts(x.as_ptr() as *const f32, x.len());
                let cs = std::slice::from_raw_parts_mut(col.as_mut_ptr() as *mut f32, col.len());
                if super::simd() == super::Simd::Avx512 {
                    im2col_s1_padded_avx512(g, xs, cs);
                } else {
                    im2col_s1_padded_avx2(g, xs, cs);
                }
            }
            return;
        }
    }
    if g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 {
        #[cfg(target_arch = "x86_64")]
        {
            if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && super::simd() == super::Simd::Avx512 {
                // SAFETY: T is f32; AVX-512F detected; every row copy stays inside x and col
                // (the window is inside the input in this branch and col has C·kh·kw·hw elements).
                unsafe {
                    let xs = std::slice::from_raw_parts(x.as_ptr() as *const f32, x.len());
                    let cs = std::slice::from_raw_parts_mut(col.as_mut_ptr() as *mut f32, col.len());
                    im2col_s1_avx512(g, xs, cs);
                }
                return;
            }
        }
        // fast path: every window is inside the input
        let mut row = 0;
        for c in 0..g.c {
            let xc = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
            for i in 0..g.kh {
                for j in 0..g.kw {
                    let dst = &mut col[row * hw..(row + 1) * hw];
                    for oy in 0..g.ho {
                        let s = (oy + i * g.dh) * g.w + j * g.dw;
                        let src = &xc[s..s + g.wo];
                        copy_short(&mut dst[oy * g.wo..(oy + 1) * g.wo], src);
                    }
                    row += 1;
                }
            }
        }
        return;
    }
    let mut row = 0;
    for c in 0..g.c {
        let xc = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let dst = &mut col[row * hw..(row + 1) * hw];
                let xoff = (j * g.dw) as isize - g.pw as isize;
                for oy in 0..g.ho {
                    let iy = (oy * g.sh + i * g.dh) as isize - g.ph as isize;
                    let drow = &mut dst[oy * g.wo..(oy + 1) * g.wo];
                    if iy < 0 || iy >= g.h as isize {
                        zero_short(drow);
                        continue;
                    }
                    let xr = &xc[iy as usize * g.w..(iy as usize + 1) * g.w];
                    if g.sw == 1 {
                        // valid ox range: 0 <= ox + xoff < w (short rows: no memcpy/memset calls)
                        let lo = (-xoff).clamp(0, g.wo as isize) as usize;
                        let hi = (g.w as isize - xoff).clamp(lo as isize, g.wo as isize) as usize;
                        zero_short(&mut drow[..lo]);
                        if hi > lo {
                            let s = (lo as isize + xoff) as usize;
                            copy_short(&mut drow[lo..hi], &xr[s..s + hi - lo]);
                        }
                        zero_short(&mut drow[hi..]);
                    } else {
                        for (ox, d) in drow.iter_mut().enumerate() {
                            let ix = (ox * g.sw) as isize + xoff;
                            *d = if ix >= 0 && ix < g.w as isize { xr[ix as usize] } else { T::ZERO };
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// Folds `col [C·kh·kw, Ho·Wo]` back into `dx [C,H,W]` (overwrites `dx`).
pub fn col2im<T: Float>(g: &ConvGeom, col: &[T], dx: &mut [T]) {
    dx.iter_mut().for_each(|v| *v = T::ZERO);
    let hw = g.ho * g.wo;
    let mut row = 0;
    for c in 0..g.c {
        let xc = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let src = &col[row * hw..(row + 1) * hw];
                let xoff = (j * g.dw) as isize - g.pw as isize;
                for oy in 0..g.ho {
                    let iy = (oy * g.sh + i * g.dh) as isize - g.ph as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let xr = &mut xc[iy as usize * g.w..(iy as usize + 1) * g.w];
                    let srow = &src[oy * g.wo..(oy + 1) * g.wo];
                    if g.sw == 1 {
                        let lo = (-xoff).clamp(0, g.wo as isize) as usize;
                        let hi = (g.w as isize - xoff).clamp(lo as isize, g.wo as isize) as usize;
                        if hi > lo {
                            let s = (lo as isize + xoff) as usize;
                            for (d, v) in xr[s..s + hi - lo].iter_mut().zip(&srow[lo..hi]) {
                                *d += *v;
                            }
                        }
                    } else {
                        for (ox, v) in srow.iter().enumerate() {
                            let ix = (ox * g.sw) as isize + xoff;
                            if ix >= 0 && ix < g.w as isize {
                                xr[ix as usize] += *v;
                            }
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// Forward over `n` samples. `col` must hold `g.col_len()` elements; if it holds
/// `n·g.col_len()`, every sample's columns are kept (sample s at `s·col_len`) so that
/// [`backward`] can reuse them (`cols_kept = true`).
pub fn forward<T: Float>(g: &ConvGeom, n: usize, x: &[T], w: &[T], b: Option<&[T]>, y: &mut [T], col: &mut [T]) {
    let keep = col.len() >= n * g.col_len();
    let (il, ol, hw, kg) = (g.in_len(), g.out_len(), g.ho * g.wo, g.kg());
    let og = g.o / g.groups;
    for s in 0..n {
        let xs = &x[s * il..(s + 1) * il];
        let ys = &mut y[s * ol..(s + 1) * ol];
        let cl = g.col_len();
        let src: &[T] = if g.is_pointwise() {
            xs
        } else {
            let cs = if keep { &mut col[s * cl..(s + 1) * cl] } else { &mut col[..cl] };
            im2col(g, xs, cs);
            cs
        };
        if let Some(b) = b {
            for o in 0..g.o {
                ys[o * hw..(o + 1) * hw].iter_mut().for_each(|v| *v = b[o]);
            }
        }
        for gi in 0..g.groups {
            matmul(og, hw, kg, MatRef::rm(&w[gi * og * kg..], kg), MatRef::rm(&src[gi * kg * hw..], hw), &mut ys[gi * og * hw..], hw, b.is_some());
        }
    }
}

/// Backward over `n` samples: overwrites `dx` (if requested), accumulates `dw`, `db`.
/// `col` must hold `g.col_len()` elements; `dcol` too (only used when `dx` is requested
/// and the convolution is not pointwise). With `cols_kept`, `col` holds the columns of all
/// `n` samples from [`forward`] and im2col is not recomputed.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Float>(
    g: &ConvGeom,
    n: usize,
    x: &[T],
    w: &[T],
    dy: &[T],
    mut dx: Option<&mut [T]>,
    dw: &mut [T],
    db: Option<&mut [T]>,
    col: &mut [T],
    dcol: &mut [T],
    cols_kept: bool,
) {
    let (il, ol, hw, kg) = (g.in_len(), g.out_len(), g.ho * g.wo, g.kg());
    let og = g.o / g.groups;
    if let Some(db) = db {
        for s in 0..n {
            let dys = &dy[s * ol..(s + 1) * ol];
            for o in 0..g.o {
                db[o] += lane_sum(&dys[o * hw..(o + 1) * hw]);
            }
        }
    }
    let cl = g.col_len();
    let batched = cols_kept && !g.is_pointwise();
    if batched {
        // weight gradient of all samples at once: reduction over n·Ho·Wo
        for gi in 0..g.groups {
            gemm_nt_acc_batched(og, kg, hw, n, &dy[gi * og * hw..], hw, ol, &col[gi * kg * hw..], hw, cl, &mut dw[gi * og * kg..], kg);
        }
    }
    for s in 0..n {
        let xs = &x[s * il..(s + 1) * il];
        let dys = &dy[s * ol..(s + 1) * ol];
        let src: &[T] = if g.is_pointwise() {
            xs
        } else if cols_kept {
            &col[s * cl..(s + 1) * cl]
        } else {
            im2col(g, xs, col);
            &col[..cl]
        };
        for gi in (0..g.groups).filter(|_| !batched) {
            // dW_g[og, kg] += dy_g[og, hw] · src_g[kg, hw]^T (long reduction over hw)
            gemm_nt_acc(og, kg, hw, &dys[gi * og * hw..], hw, &src[gi * kg * hw..], hw, &mut dw[gi * og * kg..], kg);
        }
        if let Some(dx) = dx.as_deref_mut() {
            input_grad(g, w, dys, &mut dx[s * il..(s + 1) * il], dcol);
        }
    }
}

/// The input gradient of one sample: `dcol_g = W_gᵀ · dy_g`, then col2im (pointwise: straight
/// into `dx`).
fn input_grad<T: Float>(g: &ConvGeom, w: &[T], dys: &[T], dxs: &mut [T], dcol: &mut [T]) {
    let (hw, kg, og) = (g.ho * g.wo, g.kg(), g.o / g.groups);
    let target: &mut [T] = if g.is_pointwise() { &mut *dxs } else { &mut *dcol };
    for gi in 0..g.groups {
        // dcol_g[kg, hw] = W_g[og, kg]^T · dy_g[og, hw]
        matmul(kg, hw, og, MatRef::tr(&w[gi * og * kg..], kg), MatRef::rm(&dys[gi * og * hw..], hw), &mut target[gi * kg * hw..], hw, false);
    }
    if !g.is_pointwise() {
        col2im(g, dcol, dxs);
    }
}

/// Input gradient only, over `n` samples (overwrites `dx`; `dcol` holds `g.col_len()`), for
/// convolutions whose parameter gradients are computed elsewhere ([`super::conv_implicit`]).
pub fn backward_input<T: Float>(g: &ConvGeom, n: usize, w: &[T], dy: &[T], dx: &mut [T], dcol: &mut [T]) {
    let (il, ol) = (g.in_len(), g.out_len());
    for s in 0..n {
        input_grad(g, w, &dy[s * ol..(s + 1) * ol], &mut dx[s * il..(s + 1) * il], dcol);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::conv_out;

    fn naive(g: &ConvGeom, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; g.out_len()];
        let (cg, og) = (g.c / g.groups, g.o / g.groups);
        for o in 0..g.o {
            let gi = o / og;
            for oy in 0..g.ho {
                for ox in 0..g.wo {
                    let mut s = b[o];
                    for c in 0..cg {
                        for i in 0..g.kh {
                            for j in 0..g.kw {
                                let iy = (oy * g.sh + i * g.dh) as isize - g.ph as isize;
                                let ix = (ox * g.sw + j * g.dw) as isize - g.pw as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                                    s += w[((o * cg + c) * g.kh + i) * g.kw + j] * x[((gi * cg + c) * g.h + iy as usize) * g.w + ix as usize];
                                }
                            }
                        }
                    }
                    y[(o * g.ho + oy) * g.wo + ox] = s;
                }
            }
        }
        y
    }

    #[test]
    fn f32_fast_paths_match_naive() {
        // stride 1, no padding: AVX-512 im2col and own GEMMs on f32
        for &(c, h, w, o, k) in &[(3, 32, 32, 6, 5), (2, 9, 21, 4, 3), (5, 6, 37, 7, 2)] {
            let (ho, wo) = (h - k + 1, w - k + 1);
            let g = ConvGeom { c, h, w, o, kh: k, kw: k, sh: 1, sw: 1, ph: 0, pw: 0, dh: 1, dw: 1, groups: 1, ho, wo };
            let x: Vec<f64> = (0..2 * c * h * w).map(|i| ((i * 7) % 11) as f64 * 0.25 - 1.0).collect();
            let wt: Vec<f64> = (0..o * g.kg()).map(|i| ((i * 3) % 5) as f64 * 0.1 - 0.2).collect();
            let b: Vec<f64> = (0..o).map(|i| i as f64 * 0.5).collect();
            let xf: Vec<f32> = x.iter().map(|v| *v as f32).collect();
            let wf: Vec<f32> = wt.iter().map(|v| *v as f32).collect();
            let bf: Vec<f32> = b.iter().map(|v| *v as f32).collect();
            let mut y = vec![0.0f32; 2 * g.out_len()];
            let mut col = vec![0.0f32; 2 * g.col_len()];
            forward(&g, 2, &xf, &wf, Some(&bf), &mut y, &mut col);
            for s in 0..2 {
                let r = naive(&g, &x[s * g.in_len()..(s + 1) * g.in_len()], &wt, &b);
                for (a, b) in y[s * g.out_len()..(s + 1) * g.out_len()].iter().zip(&r) {
                    assert!((*a as f64 - b).abs() < 1e-4, "{a} vs {b}");
                }
            }
            // backward with kept columns equals backward with recomputed columns
            let dy: Vec<f32> = (0..2 * g.out_len()).map(|i| ((i * 5) % 7) as f32 * 0.1 - 0.3).collect();
            let (mut dw1, mut dw2) = (vec![0.0f32; wf.len()], vec![0.0f32; wf.len()]);
            let (mut db1, mut db2) = (vec![0.0f32; o], vec![0.0f32; o]);
            let (mut dx1, mut dx2) = (vec![0.0f32; xf.len()], vec![0.0f32; xf.len()]);
            let mut dcol = vec![0.0f32; g.col_len()];
            backward(&g, 2, &xf, &wf, &dy, Some(&mut dx1), &mut dw1, Some(&mut db1), &mut col, &mut dcol, true);
            let mut col1 = vec![0.0f32; g.col_len()];
            backward(&g, 2, &xf, &wf, &dy, Some(&mut dx2), &mut dw2, Some(&mut db2), &mut col1, &mut dcol, false);
            for (a, b) in dw1.iter().zip(&dw2).chain(db1.iter().zip(&db2)).chain(dx1.iter().zip(&dx2)) {
                assert!((a - b).abs() < 1e-3 * b.abs().max(1.0));
            }
        }
    }

    /// The masked AVX-512 and AVX2 im2col of padded stride-1 convolutions equal the portable
    /// one (run on f64, which never takes a SIMD path), border and all-padding rows included.
    #[test]
    fn padded_simd_im2col_equals_the_portable_one() {
        for &(c, h, w, k, p, d) in &[(2, 5, 5, 3, 1, 1), (3, 8, 37, 5, 2, 1), (1, 4, 19, 3, 3, 1), (2, 9, 16, 3, 2, 2), (1, 1, 3, 3, 1, 1), (2, 6, 40, 7, 3, 1)]
        {
            let (ho, wo) = (conv_out(h, k, 1, p, d).unwrap(), conv_out(w, k, 1, p, d).unwrap());
            let g = ConvGeom { c, h, w, o: 1, kh: k, kw: k, sh: 1, sw: 1, ph: p, pw: p, dh: d, dw: d, groups: 1, ho, wo };
            let x: Vec<f64> = (0..c * h * w).map(|i| i as f64 + 1.0).collect();
            let mut want = vec![f64::NAN; g.col_len()];
            im2col(&g, &x, &mut want);
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let mut got = vec![f32::NAN; g.col_len()];
            im2col(&g, &xf, &mut got);
            assert!(got.iter().zip(&want).all(|(a, b)| *a as f64 == *b), "dispatched path, {c}x{h}x{w} k{k} p{p} d{d}");
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") {
                    let mut got = vec![f32::NAN; g.col_len()];
                    // SAFETY: AVX2 detected.
                    unsafe { im2col_s1_padded_avx2(&g, &xf, &mut got) };
                    assert!(got.iter().zip(&want).all(|(a, b)| *a as f64 == *b), "avx2, {c}x{h}x{w} k{k} p{p} d{d}");
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    let mut got = vec![f32::NAN; g.col_len()];
                    // SAFETY: AVX-512F detected.
                    unsafe { im2col_s1_padded_avx512(&g, &xf, &mut got) };
                    assert!(got.iter().zip(&want).all(|(a, b)| *a as f64 == *b), "avx512, {c}x{h}x{w} k{k} p{p} d{d}");
                }
            }
        }
    }

    #[test]
    fn forward_matches_naive() {
        for &(sh, ph, dh, groups) in &[(1, 0, 1, 1), (2, 1, 1, 2), (1, 2, 2, 1), (3, 1, 1, 4)] {
            let (c, h, w, o, k) = (4, 7, 6, 8, 3);
            let ho = conv_out(h, k, sh, ph, dh).unwrap();
            let wo = conv_out(w, k, sh, ph, dh).unwrap();
            let g = ConvGeom { c, h, w, o, kh: k, kw: k, sh, sw: sh, ph, pw: ph, dh, dw: dh, groups, ho, wo };
            let x: Vec<f64> = (0..c * h * w).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
            let wt: Vec<f64> = (0..o * g.kg()).map(|i| ((i * 3) % 5) as f64 * 0.1).collect();
            let b: Vec<f64> = (0..o).map(|i| i as f64).collect();
            let mut y = vec![0.0; g.out_len()];
            let mut col = vec![0.0; g.col_len()];
            forward(&g, 1, &x, &wt, Some(&b), &mut y, &mut col);
            let r = naive(&g, &x, &wt, &b);
            for (a, b) in y.iter().zip(&r) {
                assert!((a - b).abs() < 1e-9);
            }
        }
    }
}
