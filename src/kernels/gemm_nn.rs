//! `C[m×n] = (acc ? C : 0) + A[m×k] · B[k×n]` for f32, where B and C are row-major (n
//! contiguous) and A has arbitrary strides (so `Wᵀ`, `dyᵀ` are free).
//!
//! One kernel written over [`super::lanes::F32Lanes`], instantiated for AVX-512F
//! ([`gemm_nn_f32`], 16 lanes) and AVX2+FMA ([`gemm_nn_f32_avx2`], 8 lanes). Register tile: MR = 6
//! rows of A (broadcast scalars) × 2 vectors of columns of B, 12 accumulators (the last vector of
//! a row masked). Loop order: blocks of `KC` steps of the reduction, then tiles of columns, then
//! row strips, so the `KC`×`2·LANES` block of B a tile reads stays in L1 while every row strip of
//! A passes over it (a convolution's column matrix is far larger than L1: 800×256 floats in
//! cifar10_quick). Partial products of later blocks are added to C.

#[cfg(target_arch = "x86_64")]
use super::lanes::{F32Lanes, Ymm, Zmm};
#[cfg(target_arch = "x86_64")]
pub(crate) use super::lanes::{Listed, RowStarts, Strided};

/// Reduction steps per block: `KC` rows × 32 columns of B are 32 KiB for AVX-512 (L1 is 32–48 KiB).
const KC: usize = 256;

#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<V: F32Lanes, RA: RowStarts, R: RowStarts, const MR: usize, const NV: usize>(
    k: usize,
    a: *const f32,
    arows: RA,
    a_cs: usize,
    b: *const f32,
    rows: R,
    c: *mut f32,
    ldc: usize,
    last: V::Mask,
    accumulate: bool,
) {
    let mut acc = [[V::zero(); NV]; MR];
    for p in 0..k {
        let bp = b.add(rows.start(p));
        let bv: [V; NV] = core::array::from_fn(|v| if v + 1 == NV { V::load_masked(bp.add(V::LANES * v), last) } else { V::load(bp.add(V::LANES * v)) });
        for i in 0..MR {
            let av = V::splat(*a.add(arows.start(i) + p * a_cs));
            for v in 0..NV {
                acc[i][v] = V::fmadd(av, bv[v], acc[i][v]);
            }
        }
    }
    for i in 0..MR {
        let cp = c.add(i * ldc);
        for v in 0..NV {
            let r = if accumulate {
                V::add(acc[i][v], if v + 1 == NV { V::load_masked(cp.add(V::LANES * v), last) } else { V::load(cp.add(V::LANES * v)) })
            } else {
                acc[i][v]
            };
            if v + 1 == NV {
                V::store_masked(cp.add(V::LANES * v), last, r)
            } else {
                V::store(cp.add(V::LANES * v), r)
            }
        }
    }
}

/// One tile of columns (`NV` vectors, the last masked by `last`) for all `m` rows: strips of
/// 6 rows, then one strip of the remaining 1–5.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn column_tile<V: F32Lanes, RA: RowStarts, R: RowStarts, const MR: usize, const NV: usize>(
    m: usize,
    k: usize,
    a: *const f32,
    arows: RA,
    a_cs: usize,
    b: *const f32,
    rows: R,
    c: *mut f32,
    ldc: usize,
    last: V::Mask,
    accumulate: bool,
) {
    let mut i = 0;
    while m - i >= MR {
        let (off, ar) = arows.from(i);
        tile::<V, RA, R, MR, NV>(k, a.add(off), ar, a_cs, b, rows, c.add(i * ldc), ldc, last, accumulate);
        i += MR;
    }
    let (off, arows) = arows.from(i);
    let (a, c) = (a.add(off), c.add(i * ldc));
    match m - i {
        0 => {}
        1 => tile::<V, RA, R, 1, NV>(k, a, arows, a_cs, b, rows, c, ldc, last, accumulate),
        2 => tile::<V, RA, R, 2, NV>(k, a, arows, a_cs, b, rows, c, ldc, last, accumulate),
        3 => tile::<V, RA, R, 3, NV>(k, a, arows, a_cs, b, rows, c, ldc, last, accumulate),
        4 => tile::<V, RA, R, 4, NV>(k, a, arows, a_cs, b, rows, c, ldc, last, accumulate),
        5 => tile::<V, RA, R, 5, NV>(k, a, arows, a_cs, b, rows, c, ldc, last, accumulate),
        6 => tile::<V, RA, R, 6, NV>(k, a, arows, a_cs, b, rows, c, ldc, last, accumulate),
        7 => tile::<V, RA, R, 7, NV>(k, a, arows, a_cs, b, rows, c, ldc, last, accumulate),
        r => {
            tile::<V, RA, R, 4, NV>(k, a, arows, a_cs, b, rows, c, ldc, last, accumulate);
            let (o4, a4) = arows.from(4);
            tile::<V, RA, R, 4, NV>(k, a.add(o4), a4, a_cs, b, rows, c.add(4 * ldc), ldc, last, accumulate);
            let (o8, a8) = arows.from(8);
            column_tile::<V, RA, R, 4, NV>(r - 8, k, a.add(o8), a8, a_cs, b, rows, c.add(8 * ldc), ldc, last, accumulate);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm<V: F32Lanes, RA: RowStarts, R: RowStarts, const MR: usize, const NV: usize>(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    arows: RA,
    a_cs: usize,
    b: *const f32,
    rows: R,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let l = V::LANES;
    let mut p0 = 0;
    while p0 < k {
        let kc = (k - p0).min(KC);
        let (b_off, rows) = rows.from(p0);
        let (a, b) = (a.add(p0 * a_cs), b.add(b_off));
        let acc = accumulate || p0 > 0;
        let mut j = 0;
        while j + NV * l <= n {
            column_tile::<V, RA, R, MR, NV>(m, kc, a, arows, a_cs, b.add(j), rows, c.add(j), ldc, V::mask(l), acc);
            j += NV * l;
        }
        // the last 1..NV·l columns: whole vectors, the last one masked
        let rem = n - j;
        let last = V::mask(if rem == 0 { 0 } else { rem - (rem - 1) / l * l });
        match rem.div_ceil(l) {
            0 => {}
            1 => column_tile::<V, RA, R, MR, 1>(m, kc, a, arows, a_cs, b.add(j), rows, c.add(j), ldc, last, acc),
            2 => column_tile::<V, RA, R, MR, 2>(m, kc, a, arows, a_cs, b.add(j), rows, c.add(j), ldc, last, acc),
            3 => column_tile::<V, RA, R, MR, 3>(m, kc, a, arows, a_cs, b.add(j), rows, c.add(j), ldc, last, acc),
            _ => column_tile::<V, RA, R, MR, 4>(m, kc, a, arows, a_cs, b.add(j), rows, c.add(j), ldc, last, acc),
        }
        p0 += kc;
    }
}

/// # Safety
/// Caller guarantees AVX-512F and that all indexed elements are in bounds:
/// A: `arows.start(i) + (k−1)·a_cs` for every `i < m`, B: `rows.start(p) + n − 1` for every `p < k`, C: `(m−1)·ldc + n − 1`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_nn_f32<RA: RowStarts, R: RowStarts>(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    arows: RA,
    a_cs: usize,
    b: *const f32,
    rows: R,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    // 24 accumulators of the 32 registers: 6×4 vectors when a row fits in 64 columns, else 8×3
    // (measured on the convolution shapes, `examples/bench_kernels.rs`)
    if n <= 64 {
        gemm::<Zmm, _, _, 6, 4>(m, n, k, a, arows, a_cs, b, rows, c, ldc, accumulate)
    } else {
        gemm::<Zmm, _, _, 8, 3>(m, n, k, a, arows, a_cs, b, rows, c, ldc, accumulate)
    }
}

/// [`gemm_nn_f32`] on AVX2+FMA.
///
/// # Safety
/// Caller guarantees AVX2 and FMA and the bounds of [`gemm_nn_f32`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_nn_f32_avx2<RA: RowStarts, R: RowStarts>(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    arows: RA,
    a_cs: usize,
    b: *const f32,
    rows: R,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    gemm::<Ymm, _, _, 6, 2>(m, n, k, a, arows, a_cs, b, rows, c, ldc, accumulate)
}

/// Where each row of a GEMM operand starts: every `ld` elements (a dense row-major matrix), or at
/// listed offsets (the rows of an implicit column matrix, see `conv_implicit`).
#[derive(Clone, Copy, Debug)]
pub enum RowLayout<'a> {
    Dense(usize),
    Listed(&'a [usize]),
}

impl RowLayout<'_> {
    fn start(&self, r: usize) -> usize {
        match self {
            RowLayout::Dense(ld) => r * ld,
            RowLayout::Listed(t) => t[r],
        }
    }
    /// Whether `rows` rows of `len` elements each lie inside `extent` elements.
    fn fits(&self, rows: usize, len: usize, extent: usize) -> bool {
        match self {
            RowLayout::Dense(ld) => rows == 0 || (rows - 1) * ld + len <= extent,
            RowLayout::Listed(t) => t.len() >= rows && t[..rows].iter().all(|&r| r + len <= extent),
        }
    }
}

/// `C[m×n] = (acc ? C : 0) + A[m×k] · B[k×n]` with C row-major and the rows of A and B laid out as
/// `a_rows`, `b_rows` say (each row contiguous): the GEMMs of implicit-GEMM convolutions (B listed
/// for the forward pass, A listed for the transposed weight gradient). The SIMD kernels on AVX2
/// and AVX-512, a portable loop elsewhere (and for f64).
#[allow(clippy::too_many_arguments)]
pub fn gemm_nn_rows<T: super::Float>(
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    a_rows: RowLayout,
    b: &[T],
    b_rows: RowLayout,
    c: &mut [T],
    ldc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(c.len() >= (m - 1) * ldc + n, "gemm_nn_rows: C too small");
    assert!(a_rows.fits(m, k, a.len()) && b_rows.fits(k, n, b.len()), "gemm_nn_rows: a row of A or B out of bounds");
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && super::simd() >= super::Simd::Avx2 && k > 0 {
        /// # Safety
        /// AVX2+FMA (AVX-512F when `simd()` says so) and the bounds checked by the caller.
        unsafe fn run<RA: RowStarts, RB: RowStarts>(
            m: usize,
            n: usize,
            k: usize,
            a: *const f32,
            ra: RA,
            b: *const f32,
            rb: RB,
            c: *mut f32,
            ldc: usize,
            acc: bool,
        ) {
            if super::simd() == super::Simd::Avx512 {
                gemm_nn_f32(m, n, k, a, ra, 1, b, rb, c, ldc, acc)
            } else {
                gemm_nn_f32_avx2(m, n, k, a, ra, 1, b, rb, c, ldc, acc)
            }
        }
        let (ap, bp, cp) = (a.as_ptr() as *const f32, b.as_ptr() as *const f32, c.as_mut_ptr() as *mut f32);
        // SAFETY: T is f32; the instruction set was detected; every row of A and B and the extent
        // of C were checked above; the row tables outlive the call.
        unsafe {
            match (a_rows, b_rows) {
                (RowLayout::Dense(la), RowLayout::Dense(lb)) => run(m, n, k, ap, Strided(la), bp, Strided(lb), cp, ldc, accumulate),
                (RowLayout::Dense(la), RowLayout::Listed(tb)) => run(m, n, k, ap, Strided(la), bp, Listed(tb.as_ptr()), cp, ldc, accumulate),
                (RowLayout::Listed(ta), RowLayout::Dense(lb)) => run(m, n, k, ap, Listed(ta.as_ptr()), bp, Strided(lb), cp, ldc, accumulate),
                (RowLayout::Listed(ta), RowLayout::Listed(tb)) => run(m, n, k, ap, Listed(ta.as_ptr()), bp, Listed(tb.as_ptr()), cp, ldc, accumulate),
            }
        }
        return;
    }
    for i in 0..m {
        let ci = &mut c[i * ldc..i * ldc + n];
        if !accumulate {
            ci.iter_mut().for_each(|v| *v = T::ZERO);
        }
        let ai = &a[a_rows.start(i)..][..k];
        for (p, &av) in ai.iter().enumerate() {
            for (cv, bv) in ci.iter_mut().zip(&b[b_rows.start(p)..][..n]) {
                *cv += av * *bv;
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::Strided;
    type Kernel = unsafe fn(usize, usize, usize, *const f32, Strided, usize, *const f32, Strided, *mut f32, usize, bool);

    /// Both kernels against an f64 reference, with transposed A, ragged edges and accumulation.
    #[test]
    fn avx512_and_avx2_kernels_equal_the_reference() {
        for &(m, n, k) in &[(1, 1, 1), (6, 16, 3), (7, 17, 5), (13, 40, 9), (5, 8, 64), (12, 33, 2), (7, 40, 300), (3, 20, 600), (13, 70, 257)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 13) % 17) as f32 * 0.125 - 1.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 7) % 11) as f32 * 0.25 - 1.0).collect();
            for (a_rs, a_cs) in [(k, 1), (1, m)] {
                for acc in [false, true] {
                    let mut want = vec![0.5f64; m * n];
                    for i in 0..m {
                        for j in 0..n {
                            let s: f64 = (0..k).map(|p| a[i * a_rs + p * a_cs] as f64 * b[p * n + j] as f64).sum();
                            want[i * n + j] = if acc { 0.5 + s } else { s };
                        }
                    }
                    let mut kernels: Vec<(&str, Kernel)> = vec![];
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        kernels.push(("avx512", super::gemm_nn_f32));
                    }
                    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                        kernels.push(("avx2", super::gemm_nn_f32_avx2));
                    }
                    for (name, f) in kernels {
                        let mut c = vec![0.5f32; m * n];
                        // SAFETY: the feature was detected; extents match the slices.
                        unsafe { f(m, n, k, a.as_ptr(), Strided(a_rs), a_cs, b.as_ptr(), Strided(n), c.as_mut_ptr(), n, acc) };
                        for (x, y) in c.iter().zip(&want) {
                            assert!((*x as f64 - y).abs() < 1e-4 * y.abs().max(1.0), "{name} {m}x{n}x{k} acc={acc} a_cs={a_cs}");
                        }
                    }
                }
            }
        }
    }
}
