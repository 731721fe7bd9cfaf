//! Register-tiled `C[m×n] += A[m×p] · B[n×p]ᵀ` for long reductions where both operands
//! are row-major with the reduction axis `p` contiguous — the shape of a convolution's
//! weight gradient (`dW[O, K] += dy[O, HW] · col[K, HW]ᵀ`), which a packing GEMM would
//! first have to transpose.
//!
//! f32 on x86-64: one register-tiled kernel written over [`super::lanes::F32Lanes`], instantiated
//! for AVX-512F (4×4 tiles of 16 lanes) and AVX2+FMA (4×3 tiles of 8 lanes). The loop runs over
//! blocks of rows of B (the long operand, a convolution's columns) outermost, so each block stays
//! in L1 while the rows of A stream past it; a batch of sample pairs is reduced into the same
//! accumulators (one horizontal sum per element per call). Other types and machines use a
//! portable 4×3 tile. Partial sums are reduced lane-wise in a fixed order, so results are
//! deterministic per machine and instruction set.

#[cfg(target_arch = "x86_64")]
use super::lanes::{F32Lanes, RowStarts, Strided, Ymm, Zmm};
use super::Float;

#[inline(always)]
fn fmadd<T: Float, const FMA: bool>(a: T, b: T, c: T) -> T {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

#[inline(always)]
fn hsum<T: Float, const L: usize>(v: &[T; L]) -> T {
    let mut s = T::ZERO;
    for x in v {
        s += *x;
    }
    s
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn kernel<T: Float, const L: usize, const FMA: bool>(m: usize, n: usize, p: usize, a: &[T], lda: usize, b: &[T], ldb: usize, c: &mut [T], ldc: usize) {
    let pm = p / L * L;
    let mut i0 = 0;
    while i0 < m {
        let mi = (m - i0).min(4);
        let mut j0 = 0;
        while j0 < n {
            let nj = (n - j0).min(3);
            if mi == 4 && nj == 3 {
                let mut acc = [[[T::ZERO; L]; 3]; 4];
                let ar: [&[T]; 4] = core::array::from_fn(|i| &a[(i0 + i) * lda..(i0 + i) * lda + p]);
                let br: [&[T]; 3] = core::array::from_fn(|j| &b[(j0 + j) * ldb..(j0 + j) * ldb + p]);
                let mut q = 0;
                while q < pm {
                    let av: [[T; L]; 4] = core::array::from_fn(|i| ar[i][q..q + L].try_into().unwrap_or([T::ZERO; L]));
                    let bv: [[T; L]; 3] = core::array::from_fn(|j| br[j][q..q + L].try_into().unwrap_or([T::ZERO; L]));
                    for i in 0..4 {
                        for j in 0..3 {
                            for l in 0..L {
                                acc[i][j][l] = fmadd::<T, FMA>(av[i][l], bv[j][l], acc[i][j][l]);
                            }
                        }
                    }
                    q += L;
                }
                for i in 0..4 {
                    for j in 0..3 {
                        let mut s = hsum(&acc[i][j]);
                        for q in pm..p {
                            s += ar[i][q] * br[j][q];
                        }
                        c[(i0 + i) * ldc + j0 + j] += s;
                    }
                }
            } else {
                for i in 0..mi {
                    for j in 0..nj {
                        let ar = &a[(i0 + i) * lda..(i0 + i) * lda + p];
                        let br = &b[(j0 + j) * ldb..(j0 + j) * ldb + p];
                        let mut acc = [T::ZERO; L];
                        let mut q = 0;
                        while q < pm {
                            for l in 0..L {
                                acc[l] = fmadd::<T, FMA>(ar[q + l], br[q + l], acc[l]);
                            }
                            q += L;
                        }
                        let mut s = hsum(&acc);
                        for q in pm..p {
                            s += ar[q] * br[q];
                        }
                        c[(i0 + i) * ldc + j0 + j] += s;
                    }
                }
            }
            j0 += nj;
        }
        i0 += mi;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel_avx512<T: Float>(m: usize, n: usize, p: usize, a: &[T], lda: usize, b: &[T], ldb: usize, c: &mut [T], ldc: usize) {
    kernel::<T, 16, true>(m, n, p, a, lda, b, ldb, c, ldc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel_avx2<T: Float>(m: usize, n: usize, p: usize, a: &[T], lda: usize, b: &[T], ldb: usize, c: &mut [T], ldc: usize) {
    kernel::<T, 8, true>(m, n, p, a, lda, b, ldb, c, ldc)
}

/// One MR×NR tile of vector accumulators over the whole (batched) reduction, masked tail.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<V: F32Lanes, R: RowStarts, const MR: usize, const NR: usize>(
    pa: *const f32,
    lda: usize,
    pb: *const f32,
    rows: R,
    p: usize,
    c: *mut f32,
    ldc: usize,
    nb: usize,
    a_bs: usize,
    b_bs: usize,
) {
    let pm = p / V::LANES * V::LANES;
    let tail = V::mask(p - pm);
    let mut acc = [[V::zero(); NR]; MR];
    for s in 0..nb {
        let (pa, pb) = (pa.add(s * a_bs), pb.add(s * b_bs));
        let mut q = 0;
        while q < pm {
            let bv: [V; NR] = core::array::from_fn(|j| V::load(pb.add(rows.start(j) + q)));
            for i in 0..MR {
                let av = V::load(pa.add(i * lda + q));
                for j in 0..NR {
                    acc[i][j] = V::fmadd(av, bv[j], acc[i][j]);
                }
            }
            q += V::LANES;
        }
        if pm < p {
            let bv: [V; NR] = core::array::from_fn(|j| V::load_masked(pb.add(rows.start(j) + pm), tail));
            for i in 0..MR {
                let av = V::load_masked(pa.add(i * lda + pm), tail);
                for j in 0..NR {
                    acc[i][j] = V::fmadd(av, bv[j], acc[i][j]);
                }
            }
        }
    }
    for i in 0..MR {
        for j in 0..NR {
            *c.add(i * ldc + j) += acc[i][j].sum();
        }
    }
}

/// All rows of A against NR rows of B: MR-row tiles, then 4-, 2- and 1-row tiles for the rest.
/// The NR rows of B (one block of the long operand) stay in L1 while A streams past them.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn column_block<V: F32Lanes, R: RowStarts, const MR: usize, const NR: usize>(
    m: usize,
    p: usize,
    pa: *const f32,
    lda: usize,
    pb: *const f32,
    rows: R,
    c: *mut f32,
    ldc: usize,
    bat: (usize, usize, usize),
) {
    let (nb, a_bs, b_bs) = bat;
    let mut i = 0;
    while m - i >= MR {
        tile::<V, R, MR, NR>(pa.add(i * lda), lda, pb, rows, p, c.add(i * ldc), ldc, nb, a_bs, b_bs);
        i += MR;
    }
    if MR > 4 && m - i >= 4 {
        tile::<V, R, 4, NR>(pa.add(i * lda), lda, pb, rows, p, c.add(i * ldc), ldc, nb, a_bs, b_bs);
        i += 4;
    }
    if MR > 2 && m - i >= 2 {
        tile::<V, R, 2, NR>(pa.add(i * lda), lda, pb, rows, p, c.add(i * ldc), ldc, nb, a_bs, b_bs);
        i += 2;
    }
    while i < m {
        tile::<V, R, 1, NR>(pa.add(i * lda), lda, pb, rows, p, c.add(i * ldc), ldc, nb, a_bs, b_bs);
        i += 1;
    }
}

/// Blocks of `NR` rows of B (then single rows), each against all rows of A in `MR`-row tiles.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn f32_tiled<V: F32Lanes, R: RowStarts, const MR: usize, const NR: usize>(
    m: usize,
    n: usize,
    p: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    rows: R,
    c: &mut [f32],
    ldc: usize,
    bat: (usize, usize, usize),
) {
    let cp = c.as_mut_ptr();
    let mut j = 0;
    while j + NR <= n {
        let (off, r) = rows.from(j);
        column_block::<V, R, MR, NR>(m, p, a, lda, b.add(off), r, cp.add(j), ldc, bat);
        j += NR;
    }
    while j < n {
        let (off, r) = rows.from(j);
        column_block::<V, R, MR, 1>(m, p, a, lda, b.add(off), r, cp.add(j), ldc, bat);
        j += 1;
    }
}

/// f32 AVX-512 path: 4×4 tiles (measured faster than 6×2, 6×3 and 8×3 on the convolution shapes,
/// `examples/bench_kernels.rs`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn f32_avx512<R: RowStarts>(
    m: usize,
    n: usize,
    p: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    rows: R,
    c: &mut [f32],
    ldc: usize,
    bat: (usize, usize, usize),
) {
    if !m.is_multiple_of(4) && m.is_multiple_of(6) {
        // six rows (the homework net's first convolution) as one strip of 6×3 tiles instead of
        // a 4×4 and a half-empty 2×4 tile
        f32_tiled::<Zmm, R, 6, 3>(m, n, p, a, lda, b, rows, c, ldc, bat)
    } else {
        f32_tiled::<Zmm, R, 4, 4>(m, n, p, a, lda, b, rows, c, ldc, bat)
    }
}

/// f32 AVX2+FMA path: 4×3 tiles (12 accumulators, 3 B vectors and one A vector fill the 16
/// registers).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn f32_avx2<R: RowStarts>(
    m: usize,
    n: usize,
    p: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    rows: R,
    c: &mut [f32],
    ldc: usize,
    bat: (usize, usize, usize),
) {
    f32_tiled::<Ymm, R, 4, 3>(m, n, p, a, lda, b, rows, c, ldc, bat)
}

/// `C[m×n] += A[m×p] · B[n×p]ᵀ`, all row-major with leading dimensions `lda`, `ldb`, `ldc`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_nt_acc<T: Float>(m: usize, n: usize, p: usize, a: &[T], lda: usize, b: &[T], ldb: usize, c: &mut [T], ldc: usize) {
    gemm_nt_acc_batched(m, n, p, 1, a, lda, 0, b, ldb, 0, c, ldc)
}

/// `C[m×n] += Σ_s A_s[m×p] · B_s[n×p]ᵀ` over `nb` pairs, `A_s` at offset `s·a_bs`, `B_s`
/// at `s·b_bs`: the reduction runs over `nb·p` terms with one horizontal sum per element.
#[allow(clippy::too_many_arguments)]
pub fn gemm_nt_acc_batched<T: Float>(
    m: usize,
    n: usize,
    p: usize,
    nb: usize,
    a: &[T],
    lda: usize,
    a_bs: usize,
    b: &[T],
    ldb: usize,
    b_bs: usize,
    c: &mut [T],
    ldc: usize,
) {
    if m == 0 || n == 0 || p == 0 || nb == 0 {
        return;
    }
    assert!(a.len() >= (nb - 1) * a_bs + (m - 1) * lda + p && b.len() >= (nb - 1) * b_bs + (n - 1) * ldb + p && c.len() >= (m - 1) * ldc + n);
    #[cfg(target_arch = "x86_64")]
    {
        use std::any::TypeId;
        if TypeId::of::<T>() == TypeId::of::<f32>() && super::simd() >= super::Simd::Avx2 {
            // SAFETY: T is f32 (same layout); the instruction set was detected (`simd`); bounds
            // checked above.
            unsafe {
                let a = std::slice::from_raw_parts(a.as_ptr() as *const f32, a.len());
                let b = std::slice::from_raw_parts(b.as_ptr() as *const f32, b.len());
                let c = std::slice::from_raw_parts_mut(c.as_mut_ptr() as *mut f32, c.len());
                if super::simd() == super::Simd::Avx512 {
                    return f32_avx512(m, n, p, a.as_ptr(), lda, b.as_ptr(), Strided(ldb), c, ldc, (nb, a_bs, b_bs));
                }
                return f32_avx2(m, n, p, a.as_ptr(), lda, b.as_ptr(), Strided(ldb), c, ldc, (nb, a_bs, b_bs));
            }
        }
    }
    for s in 0..nb {
        let (a, b) = (&a[s * a_bs..], &b[s * b_bs..]);
        #[cfg(target_arch = "x86_64")]
        {
            if super::simd() == super::Simd::Avx512 {
                // SAFETY: the required CPU features were detected at run time (`simd`).
                unsafe { kernel_avx512(m, n, p, a, lda, b, ldb, c, ldc) };
                continue;
            }
            if super::simd() >= super::Simd::Avx2 {
                // SAFETY: as above.
                unsafe { kernel_avx2(m, n, p, a, lda, b, ldb, c, ldc) };
                continue;
            }
        }
        kernel::<T, 8, false>(m, n, p, a, lda, b, ldb, c, ldc)
    }
}

/// `C[m×n] += Σ_s A_s[m×p] · B_sᵀ` over `nb` samples, where row `j` of `B_s` is
/// `b[s·b_bs + rows[j]..][..p]` (an implicit column matrix) and `A_s` is at `s·a_bs` with leading
/// dimension `lda`. SIMD kernels on AVX2 and AVX-512, a portable loop elsewhere (and for f64).
pub fn gemm_nt_acc_rows_batched<T: Float>(
    m: usize,
    n: usize,
    p: usize,
    nb: usize,
    a: &[T],
    lda: usize,
    a_bs: usize,
    b: &[T],
    rows: &[usize],
    b_bs: usize,
    c: &mut [T],
    ldc: usize,
) {
    if m == 0 || n == 0 || p == 0 || nb == 0 {
        return;
    }
    assert!(a.len() >= (nb - 1) * a_bs + (m - 1) * lda + p && rows.len() >= n && c.len() >= (m - 1) * ldc + n, "gemm_nt_acc_rows_batched: operand too small");
    assert!(rows[..n].iter().all(|&r| (nb - 1) * b_bs + r + p <= b.len()), "gemm_nt_acc_rows_batched: a row of B out of bounds");
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && super::simd() >= super::Simd::Avx2 {
        let (ap, bp) = (a.as_ptr() as *const f32, b.as_ptr() as *const f32);
        // SAFETY: T is f32 (same layout); the instruction set was detected; every row of every
        // sample and the extents of A and C were checked above.
        unsafe {
            let c = std::slice::from_raw_parts_mut(c.as_mut_ptr() as *mut f32, c.len());
            let rows = super::lanes::Listed(rows.as_ptr());
            if super::simd() == super::Simd::Avx512 {
                return f32_avx512(m, n, p, ap, lda, bp, rows, c, ldc, (nb, a_bs, b_bs));
            }
            return f32_avx2(m, n, p, ap, lda, bp, rows, c, ldc, (nb, a_bs, b_bs));
        }
    }
    for s in 0..nb {
        for i in 0..m {
            let ar = &a[s * a_bs + i * lda..][..p];
            for j in 0..n {
                let br = &b[s * b_bs + rows[j]..][..p];
                c[i * ldc + j] += ar.iter().zip(br).fold(T::ZERO, |acc, (x, y)| acc + *x * *y);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn f32_matches_naive() {
        for &(m, n, p) in &[(6, 75, 784), (5, 7, 33), (1, 1, 3), (16, 150, 100), (9, 10, 16)] {
            let a: Vec<f32> = (0..m * p).map(|i| ((i * 13) % 17) as f32 - 8.0).collect();
            let b: Vec<f32> = (0..n * p).map(|i| ((i * 7) % 11) as f32 * 0.25).collect();
            let mut c = vec![1.0f32; m * n];
            gemm_nt_acc(m, n, p, &a, p, &b, p, &mut c, n);
            for i in 0..m {
                for j in 0..n {
                    let s: f64 = 1.0 + (0..p).map(|q| a[i * p + q] as f64 * b[j * p + q] as f64).sum::<f64>();
                    assert!((s - c[i * n + j] as f64).abs() < 1e-4 * s.abs().max(1.0), "{m} {n} {p}");
                }
            }
        }
    }
    #[test]
    fn portable_and_avx2_paths_match_naive() {
        let (m, n, p) = (7, 10, 37);
        let a: Vec<f32> = (0..m * p).map(|i| ((i * 13) % 17) as f32 - 8.0).collect();
        let b: Vec<f32> = (0..n * p).map(|i| ((i * 7) % 11) as f32 * 0.25).collect();
        let check = |c: &[f32]| {
            for i in 0..m {
                for j in 0..n {
                    let s: f64 = (0..p).map(|q| a[i * p + q] as f64 * b[j * p + q] as f64).sum();
                    assert!((s - c[i * n + j] as f64).abs() < 1e-3);
                }
            }
        };
        let mut c = vec![0.0f32; m * n];
        kernel::<f32, 8, false>(m, n, p, &a, p, &b, p, &mut c, n);
        check(&c);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            let mut c = vec![0.0f32; m * n];
            // SAFETY: features detected above.
            unsafe { kernel_avx2(m, n, p, &a, p, &b, p, &mut c, n) };
            check(&c);
            let mut c = vec![0.0f32; m * n];
            // SAFETY: as above.
            unsafe { f32_avx2(m, n, p, a.as_ptr(), p, b.as_ptr(), Strided(p), &mut c, n, (1, 0, 0)) };
            check(&c);
        }
    }
    #[test]
    fn batched_matches_naive() {
        let (m, n, p, nb) = (7, 9, 20, 3);
        let a: Vec<f32> = (0..nb * m * p).map(|i| ((i * 13) % 17) as f32 - 8.0).collect();
        let b: Vec<f32> = (0..nb * n * p).map(|i| ((i * 7) % 11) as f32 * 0.25).collect();
        let mut c = vec![0.0f32; m * n];
        gemm_nt_acc_batched(m, n, p, nb, &a, p, m * p, &b, p, n * p, &mut c, n);
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..nb).map(|s| (0..p).map(|q| a[s * m * p + i * p + q] as f64 * b[s * n * p + j * p + q] as f64).sum::<f64>()).sum();
                assert!((s - c[i * n + j] as f64).abs() < 1e-3);
            }
        }
    }
    #[test]
    fn matches_naive() {
        for &(m, n, p) in &[(6, 75, 784), (5, 7, 33), (1, 1, 3), (16, 150, 100)] {
            let a: Vec<f64> = (0..m * p).map(|i| ((i * 13) % 17) as f64 - 8.0).collect();
            let b: Vec<f64> = (0..n * p).map(|i| ((i * 7) % 11) as f64 * 0.25).collect();
            let mut c = vec![1.0; m * n];
            gemm_nt_acc(m, n, p, &a, p, &b, p, &mut c, n);
            for i in 0..m {
                for j in 0..n {
                    let s: f64 = 1.0 + (0..p).map(|q| a[i * p + q] * b[j * p + q]).sum::<f64>();
                    assert!((s - c[i * n + j]).abs() < 1e-9 * s.abs().max(1.0));
                }
            }
        }
    }
}
