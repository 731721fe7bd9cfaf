//! Stride-1 convolution as a GEMM that reads the zero-padded input in place ("implicit im2col"),
//! used instead of [`super::conv`]'s im2col path where it pays (see [`Implicit::plan`]).
//!
//! With the input zero-padded to `Hp × Wp` (`Hp = H + 2ph`, `Wp = W + 2pw`; no copy when there
//! is no padding), row `(c, i, j)` of the column matrix, read `Wp` wide, is the padded input from
//! offset `c·Hp·Wp + i·dh·Wp + j·dw` on. So the forward pass is
//! `Y'[o, n] = Σ_{c,i,j} W[o, c, i, j] · Xp[off(c, i, j) + n]` for `n < (Ho−1)·Wp + Wo`, and
//! `y[o, oy, ox] = Y'[o, oy·Wp + ox] + b[o]` (the `Wp − Wo` columns between output rows are
//! computed and dropped). The weight gradient is the same product transposed,
//! `dW[o, (c,i,j)] += Σ_n dY'[o, n] · Xp[off(c, i, j) + n]`, with `dY'` the output gradient laid
//! out `Wp` wide and zero between rows. The input gradient stays on the column path
//! (`dcol = Wᵀ·dy`, col2im). No column matrix is written or kept: per sample the work buffers
//! hold `C·Hp·Wp` (padded input) and `O·((Ho−1)·Wp + Wo)` (wide output) values instead of
//! `C·kh·kw·Ho·Wo`.

use super::conv::{copy_short, lane_sum, zero_short, ConvGeom};
use super::dot_tile::gemm_nt_acc_rows_batched;
use super::gemm_nn::{gemm_nn_rows, RowLayout};
use super::Float;

/// The implicit-GEMM layout of one convolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Implicit {
    /// Padded input height and width.
    pub hp: usize,
    pub wp: usize,
    /// Columns of the wide output: `(Ho−1)·Wp + Wo`.
    pub wide: usize,
    /// Start of each column-matrix row `(c, i, j)` in the padded input (weight order).
    rows: Vec<usize>,
}

impl Implicit {
    /// The layout, when the convolution is stride 1, ungrouped, not pointwise, the machine has the
    /// SIMD kernels (AVX2 or AVX-512; elsewhere im2col and the `gemm` crate are faster), and the
    /// wide output wastes at most a quarter of the work (`wide ≤ 1.25·Ho·Wo`: a 3×3/pad 1
    /// convolution on 8×8 computes 78 columns for 64, a 5×5/pad 2 one on 8×8 92, which is
    /// left to im2col).
    pub fn plan(g: &ConvGeom) -> Option<Implicit> {
        if g.sh != 1 || g.sw != 1 || g.groups != 1 || g.is_pointwise() || g.ho == 0 || g.wo == 0 || super::simd() < super::Simd::Avx2 {
            return None;
        }
        let im = Implicit::layout(g);
        (4 * im.wide <= 5 * g.ho * g.wo).then_some(im)
    }
    /// The layout of a stride-1, ungrouped convolution with a non-empty output, whatever it costs.
    fn layout(g: &ConvGeom) -> Implicit {
        let (hp, wp) = (g.h + 2 * g.ph, g.w + 2 * g.pw);
        let wide = (g.ho - 1) * wp + g.wo;
        let mut rows = Vec::with_capacity(g.kg());
        for c in 0..g.c {
            for i in 0..g.kh {
                for j in 0..g.kw {
                    rows.push(c * hp * wp + i * g.dh * wp + j * g.dw);
                }
            }
        }
        Implicit { hp, wp, wide, rows }
    }
    /// Elements of one sample's padded input (0 when unpadded: the input is read directly).
    pub fn padded_len(&self, g: &ConvGeom) -> usize {
        if g.ph == 0 && g.pw == 0 {
            0
        } else {
            g.c * self.hp * self.wp
        }
    }
    /// Whether [`backward_params`] computes the weight gradient transposed (output channels as
    /// the lanes of AVX-512 vectors: a multiple of 16 of them).
    pub fn transposed_weight_grad(&self, g: &ConvGeom) -> bool {
        super::simd() == super::Simd::Avx512 && g.o.is_multiple_of(16)
    }
    /// Elements of the transposed weight gradient ([`Implicit::transposed_weight_grad`]), else 0.
    pub fn dwt_len(&self, g: &ConvGeom) -> usize {
        if self.transposed_weight_grad(g) {
            g.o * g.kg()
        } else {
            0
        }
    }
    /// Elements of one sample's wide output (or wide output gradient).
    pub fn wide_len(&self, g: &ConvGeom) -> usize {
        g.o * self.wide
    }
}

/// Writes `n` samples of `x` zero-padded into `xp` (`padded_len` each).
fn pad<T: Float>(g: &ConvGeom, im: &Implicit, n: usize, x: &[T], xp: &mut [T]) {
    let (pl, il) = (im.padded_len(g), g.in_len());
    for s in 0..n {
        let xs = &x[s * il..][..il];
        let ps = &mut xp[s * pl..][..pl];
        for c in 0..g.c {
            let plane = &mut ps[c * im.hp * im.wp..][..im.hp * im.wp];
            zero_short(&mut plane[..g.ph * im.wp]);
            zero_short(&mut plane[(g.ph + g.h) * im.wp..]);
            for r in 0..g.h {
                let row = &mut plane[(g.ph + r) * im.wp..][..im.wp];
                zero_short(&mut row[..g.pw]);
                copy_short(&mut row[g.pw..g.pw + g.w], &xs[c * g.h * g.w + r * g.w..][..g.w]);
                zero_short(&mut row[g.pw + g.w..]);
            }
        }
    }
}

/// The padded input of `n` samples: `x` itself when unpadded, else written into `xp`.
fn padded<'a, T: Float>(g: &ConvGeom, im: &Implicit, n: usize, x: &'a [T], xp: &'a mut [T]) -> (&'a [T], usize) {
    if im.padded_len(g) == 0 {
        (x, g.in_len())
    } else {
        pad(g, im, n, x, xp);
        (&xp[..n * im.padded_len(g)], im.padded_len(g))
    }
}

/// Forward over `n` samples. `xp` holds `n·padded_len`, `wide` one sample's `wide_len`. (One
/// GEMM per output row straight into `y` avoids the compaction but was measured slower: tiles
/// of `Wo` columns are too narrow.)
#[allow(clippy::too_many_arguments)]
pub fn forward<T: Float>(g: &ConvGeom, im: &Implicit, n: usize, x: &[T], w: &[T], b: Option<&[T]>, y: &mut [T], xp: &mut [T], wide: &mut [T]) {
    let (ol, hw, kg) = (g.out_len(), g.ho * g.wo, g.kg());
    let (xp, stride) = padded(g, im, n, x, xp);
    let wide = &mut wide[..im.wide_len(g)];
    for s in 0..n {
        gemm_nn_rows(g.o, im.wide, kg, w, RowLayout::Dense(kg), &xp[s * stride..], RowLayout::Listed(&im.rows), wide, im.wide, false);
        let ys = &mut y[s * ol..][..ol];
        for o in 0..g.o {
            let bo = b.map_or(T::ZERO, |b| b[o]);
            for r in 0..g.ho {
                let src = &wide[o * im.wide + r * im.wp..][..g.wo];
                for (d, v) in ys[o * hw + r * g.wo..][..g.wo].iter_mut().zip(src) {
                    *d = *v + bo;
                }
            }
        }
    }
}

/// Weight and bias gradients over `n` samples (accumulated into `dw`, `db`). `xp` holds
/// `n·padded_len`, `wide` `n·wide_len`, `dwt` (transposed path) `O·C·kh·kw`.
///
/// Two ways to the same sums: when the output channels fill whole AVX-512 vectors
/// ([`Implicit::transposed_weight_grad`]) `dWᵀ[(c,i,j), o] = Σ_n Xp[off(c,i,j) + n] · dY'ᵀ[n, o]`, a
/// GEMM whose vector lanes are output channels (24 accumulators, no horizontal sums), then added
/// into `dw` transposed; otherwise dot products along `n` (`dot_tile`).
#[allow(clippy::too_many_arguments)]
pub fn backward_params<T: Float>(
    g: &ConvGeom,
    im: &Implicit,
    n: usize,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    db: Option<&mut [T]>,
    xp: &mut [T],
    wide: &mut [T],
    dwt: &mut [T],
) {
    let (ol, hw, wl) = (g.out_len(), g.ho * g.wo, im.wide_len(g));
    if let Some(db) = db {
        for s in 0..n {
            for o in 0..g.o {
                db[o] += lane_sum(&dy[s * ol + o * hw..][..hw]);
            }
        }
    }
    let wide = &mut wide[..n * wl];
    if im.transposed_weight_grad(g) {
        // dY'ᵀ: per sample `wide × O`, zero in the rows between output rows
        for s in 0..n {
            let dst = &mut wide[s * wl..][..wl];
            for r in 0..g.ho {
                for q in 0..im.wp.min(im.wide - r * im.wp) {
                    let row = &mut dst[(r * im.wp + q) * g.o..][..g.o];
                    if q < g.wo {
                        for (o, v) in row.iter_mut().enumerate() {
                            *v = dy[s * ol + o * hw + r * g.wo + q];
                        }
                    } else {
                        zero_short(row);
                    }
                }
            }
        }
        let kg = g.kg();
        let (xp, stride) = padded(g, im, n, x, xp);
        let dwt = &mut dwt[..kg * g.o];
        for s in 0..n {
            gemm_nn_rows(kg, g.o, im.wide, &xp[s * stride..], RowLayout::Listed(&im.rows), &wide[s * wl..], RowLayout::Dense(g.o), dwt, g.o, s > 0);
        }
        for o in 0..g.o {
            for (k, d) in dw[o * kg..(o + 1) * kg].iter_mut().enumerate() {
                *d += dwt[k * g.o + o];
            }
        }
        return;
    }
    // dY': the output gradient Wp wide, zero in the columns between output rows
    for s in 0..n {
        for o in 0..g.o {
            let dst = &mut wide[s * wl + o * im.wide..][..im.wide];
            for r in 0..g.ho {
                copy_short(&mut dst[r * im.wp..][..g.wo], &dy[s * ol + o * hw + r * g.wo..][..g.wo]);
                if r + 1 < g.ho {
                    zero_short(&mut dst[r * im.wp + g.wo..][..im.wp - g.wo]);
                }
            }
        }
    }
    let (xp, stride) = padded(g, im, n, x, xp);
    gemm_nt_acc_rows_batched(g.o, g.kg(), im.wide, n, wide, im.wide, wl, xp, &im.rows, stride, dw, g.kg());
}

/// The input gradient of a stride-1 convolution, as a convolution too: with `i' = kh−1−i`,
/// `dx[c, y, x] = Σ_{o,i',j'} W[o, c, kh−1−i', kw−1−j'] · dyp[o, y + i'·dh, x + j'·dw]`, where
/// `dyp` is the output gradient zero-padded by `dh(kh−1) − ph` (and `dw(kw−1) − pw`): the forward
/// implicit GEMM on `dy` with the transposed, flipped kernel. Replaces `dcol = Wᵀ·dy` and col2im
/// (which adds every one of the `kh·kw` column rows back into `dx`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImplicitInputGrad {
    /// The convolution `dy → dx`: `O` input channels, `C` output channels, `Ho × Wo → H × W`.
    pub g: ConvGeom,
    pub im: Implicit,
}

impl ImplicitInputGrad {
    /// When the forward convolution is stride 1 and ungrouped, its padding at most `dh(kh−1)`
    /// (so the gradient's padding is not negative), and [`Implicit::plan`] accepts the gradient's
    /// convolution.
    pub fn plan(g: &ConvGeom) -> Option<ImplicitInputGrad> {
        if g.sh != 1 || g.sw != 1 || g.groups != 1 || g.kh == 0 || g.kw == 0 {
            return None;
        }
        let qh = (g.dh * (g.kh - 1)).checked_sub(g.ph)?;
        let qw = (g.dw * (g.kw - 1)).checked_sub(g.pw)?;
        let gd =
            ConvGeom { c: g.o, h: g.ho, w: g.wo, o: g.c, kh: g.kh, kw: g.kw, sh: 1, sw: 1, ph: qh, pw: qw, dh: g.dh, dw: g.dw, groups: 1, ho: g.h, wo: g.w };
        Implicit::plan(&gd).map(|im| ImplicitInputGrad { g: gd, im })
    }
    /// Elements of the transposed, flipped kernel.
    pub fn weights_len(&self) -> usize {
        self.g.o * self.g.kg()
    }
}

/// Input gradient over `n` samples (overwrites `dx`). `w` is the forward kernel `[O, C, kh, kw]`;
/// `flipped` holds `weights_len`, `xp` `n·padded_len` and `wide` one `wide_len` of the gradient's
/// convolution.
#[allow(clippy::too_many_arguments)]
pub fn backward_input<T: Float>(gi: &ImplicitInputGrad, n: usize, w: &[T], dy: &[T], dx: &mut [T], flipped: &mut [T], xp: &mut [T], wide: &mut [T]) {
    let g = &gi.g; // g.c = forward O, g.o = forward C
    let (kh, kw) = (g.kh, g.kw);
    for c in 0..g.o {
        for o in 0..g.c {
            for i in 0..kh {
                for j in 0..kw {
                    flipped[((c * g.c + o) * kh + i) * kw + j] = w[((o * g.o + c) * kh + (kh - 1 - i)) * kw + (kw - 1 - j)];
                }
            }
        }
    }
    forward(g, &gi.im, n, dy, &flipped[..gi.weights_len()], None, dx, xp, wide);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::conv_out;

    fn geom(c: usize, h: usize, w: usize, o: usize, k: usize, p: usize, d: usize) -> ConvGeom {
        let ho = conv_out(h, k, 1, p, d).expect("fits");
        let wo = conv_out(w, k, 1, p, d).expect("fits");
        ConvGeom { c, h, w, o, kh: k, kw: k, sh: 1, sw: 1, ph: p, pw: p, dh: d, dw: d, groups: 1, ho, wo }
    }

    /// Forward and parameter gradients equal the im2col path's, in f32 (the SIMD kernels where the
    /// CPU has them) and f64 (portable loops), for padded, unpadded and dilated geometries.
    #[test]
    fn implicit_equals_the_column_path() {
        for g in
            [geom(3, 12, 12, 5, 3, 1, 1), geom(4, 10, 10, 7, 5, 2, 1), geom(2, 9, 11, 3, 3, 0, 1), geom(3, 12, 12, 4, 3, 2, 2), geom(17, 16, 16, 33, 3, 1, 1)]
        {
            let im = Implicit::layout(&g);
            let n = 3;
            let x: Vec<f64> = (0..n * g.in_len()).map(|i| ((i * 37) % 23) as f64 / 11.0 - 1.0).collect();
            let w: Vec<f64> = (0..g.o * g.kg()).map(|i| ((i * 13) % 19) as f64 / 9.0 - 1.0).collect();
            let b: Vec<f64> = (0..g.o).map(|i| i as f64 * 0.1).collect();
            let dy: Vec<f64> = (0..n * g.out_len()).map(|i| ((i * 7) % 29) as f64 / 14.0 - 1.0).collect();
            // reference: the column path in f64
            let mut y_ref = vec![0.0; n * g.out_len()];
            let mut col = vec![0.0; g.col_len()];
            super::super::conv::forward(&g, n, &x, &w, Some(&b), &mut y_ref, &mut col);
            let (mut dw_ref, mut db_ref) = (vec![0.5; w.len()], vec![0.5; g.o]);
            let mut dcol = vec![0.0; g.col_len()];
            super::super::conv::backward(&g, n, &x, &w, &dy, None, &mut dw_ref, Some(&mut db_ref), &mut col, &mut dcol, false);
            fn run<T: Float>(g: &ConvGeom, im: &Implicit, n: usize, x: &[f64], w: &[f64], b: &[f64], dy: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
                let cv = |v: &[f64]| v.iter().map(|&a| T::from_f64(a)).collect::<Vec<T>>();
                let (x, w, b, dy) = (cv(x), cv(w), cv(b), cv(dy));
                let mut y = vec![T::ZERO; n * g.out_len()];
                let mut xp = vec![T::from_f64(9.0); n * im.padded_len(g)]; // garbage: must be overwritten
                let mut wide = vec![T::from_f64(9.0); n * im.wide_len(g)];
                forward(g, im, 1, &x, &w, Some(&b), &mut y[..g.out_len()], &mut xp, &mut wide);
                forward(g, im, n - 1, &x[g.in_len()..], &w, Some(&b), &mut y[g.out_len()..], &mut xp, &mut wide);
                let (mut dw, mut db) = (vec![T::from_f64(0.5); w.len()], vec![T::from_f64(0.5); g.o]);
                backward_params(g, im, n, &x, &dy, &mut dw, Some(&mut db), &mut xp, &mut wide, &mut vec![T::ZERO; im.dwt_len(g)]);
                let back = |v: Vec<T>| v.into_iter().map(|a| a.to_f64()).collect::<Vec<f64>>();
                (back(y), back(dw), back(db))
            }
            for (name, (y, dw, db), tol) in [("f64", run::<f64>(&g, &im, n, &x, &w, &b, &dy), 1e-9), ("f32", run::<f32>(&g, &im, n, &x, &w, &b, &dy), 1e-4)] {
                for (what, got, want) in [("y", &y, &y_ref), ("dw", &dw, &dw_ref), ("db", &db, &db_ref)] {
                    for (k, (a, e)) in got.iter().zip(want.iter()).enumerate() {
                        assert!((a - e).abs() <= tol * e.abs().max(1.0), "{name} {what}[{k}] {a} vs {e} for {g:?}");
                    }
                }
            }
        }
    }

    /// The input gradient equals the column path's (`dcol = Wᵀ·dy`, col2im), f32 and f64.
    #[test]
    fn implicit_input_gradient_equals_the_column_path() {
        for g in
            [geom(3, 12, 12, 5, 3, 1, 1), geom(4, 16, 16, 7, 5, 2, 1), geom(2, 9, 11, 3, 3, 0, 1), geom(3, 16, 16, 4, 3, 2, 2), geom(17, 16, 16, 33, 3, 1, 1)]
        {
            let qh = g.dh * (g.kh - 1) - g.ph;
            let gd = ConvGeom {
                c: g.o,
                h: g.ho,
                w: g.wo,
                o: g.c,
                kh: g.kh,
                kw: g.kw,
                sh: 1,
                sw: 1,
                ph: qh,
                pw: qh,
                dh: g.dh,
                dw: g.dw,
                groups: 1,
                ho: g.h,
                wo: g.w,
            };
            let gi = ImplicitInputGrad { g: gd, im: Implicit::layout(&gd) };
            let n = 2;
            let w: Vec<f64> = (0..g.o * g.kg()).map(|i| ((i * 13) % 19) as f64 / 9.0 - 1.0).collect();
            let dy: Vec<f64> = (0..n * g.out_len()).map(|i| ((i * 7) % 29) as f64 / 14.0 - 1.0).collect();
            let mut want = vec![0.0; n * g.in_len()];
            let mut dcol = vec![0.0; g.col_len()];
            super::super::conv::backward_input(&g, n, &w, &dy, &mut want, &mut dcol);
            fn run<T: Float>(gi: &ImplicitInputGrad, n: usize, w: &[f64], dy: &[f64], il: usize) -> Vec<f64> {
                let cv = |v: &[f64]| v.iter().map(|&a| T::from_f64(a)).collect::<Vec<T>>();
                let (w, dy) = (cv(w), cv(dy));
                let mut dx = vec![T::from_f64(7.0); n * il];
                let mut flipped = vec![T::ZERO; gi.weights_len()];
                let mut xp = vec![T::from_f64(9.0); n * gi.im.padded_len(&gi.g)];
                let mut wide = vec![T::from_f64(9.0); gi.im.wide_len(&gi.g)];
                backward_input(gi, n, &w, &dy, &mut dx, &mut flipped, &mut xp, &mut wide);
                dx.into_iter().map(|a| a.to_f64()).collect()
            }
            for (name, got, tol) in [("f64", run::<f64>(&gi, n, &w, &dy, g.in_len()), 1e-9), ("f32", run::<f32>(&gi, n, &w, &dy, g.in_len()), 1e-4)] {
                for (k, (a, e)) in got.iter().zip(&want).enumerate() {
                    assert!((a - e).abs() <= tol * e.abs().max(1.0), "{name} dx[{k}] {a} vs {e} for {g:?}");
                }
            }
        }
        // padding above dh(kh−1) leaves a negative gradient padding: declined
        assert_eq!(ImplicitInputGrad::plan(&geom(3, 12, 12, 5, 3, 3, 1)), None);
    }

    #[test]
    fn plan_declines_strided_grouped_and_wasteful_geometries() {
        if crate::kernels::simd() < crate::kernels::Simd::Avx2 {
            assert_eq!(Implicit::plan(&geom(3, 32, 32, 8, 3, 1, 1)), None);
            return;
        }
        assert!(Implicit::plan(&geom(3, 32, 32, 8, 3, 1, 1)).is_some());
        assert_eq!(Implicit::plan(&geom(3, 8, 8, 8, 5, 2, 1)), None, "5×5 pad 2 on 8×8: 92 columns for 64");
        let mut strided = geom(3, 32, 32, 8, 3, 1, 1);
        strided.sh = 2;
        assert_eq!(Implicit::plan(&strided), None);
        let mut grouped = geom(4, 32, 32, 8, 3, 1, 1);
        grouped.groups = 2;
        assert_eq!(Implicit::plan(&grouped), None);
    }
}
