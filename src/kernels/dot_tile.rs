//! Register-tiled `C[m×n] += A[m×p] · B[n×p]ᵀ` for long reductions where both operands
//! are row-major with the reduction axis `p` contiguous — the shape of a convolution's
//! weight gradient (`dW[O, K] += dy[O, HW] · col[K, HW]ᵀ`), which a packing GEMM would
//! first have to transpose.
//!
//! Tiles of 4 rows of A × 3 rows of B keep 12 vector accumulators in registers; each
//! step of `L` lanes loads 7 vectors for 12 fused multiply-adds. Runtime dispatch picks
//! AVX-512 (L = 16) or AVX2+FMA (L = 8) on x86-64, else a portable version. Partial sums
//! are reduced lane-wise in a fixed order, so results are deterministic per machine.

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

/// One MR×NR tile of `__m512` accumulators over the whole reduction (masked tail).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile512<const MR: usize, const NR: usize>(
    pa: *const f32,
    lda: usize,
    pb: *const f32,
    ldb: usize,
    p: usize,
    c: *mut f32,
    ldc: usize,
    nb: usize,
    a_bs: usize,
    b_bs: usize,
) {
    use std::arch::x86_64::*;
    let pm = p / 16 * 16;
    let tail: __mmask16 = ((1u32 << (p - pm)) - 1) as __mmask16;
    let mut acc = [[_mm512_setzero_ps(); NR]; MR];
    for s in 0..nb {
        let (pa, pb) = (pa.add(s * a_bs), pb.add(s * b_bs));
        let mut q = 0;
        while q < pm {
            let bv: [__m512; NR] = core::array::from_fn(|j| _mm512_loadu_ps(pb.add(j * ldb + q)));
            for i in 0..MR {
                let av = _mm512_loadu_ps(pa.add(i * lda + q));
                for j in 0..NR {
                    acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
                }
            }
            q += 16;
        }
        if pm < p {
            let bv: [__m512; NR] = core::array::from_fn(|j| _mm512_maskz_loadu_ps(tail, pb.add(j * ldb + pm)));
            for i in 0..MR {
                let av = _mm512_maskz_loadu_ps(tail, pa.add(i * lda + pm));
                for j in 0..NR {
                    acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
                }
            }
        }
    }
    for i in 0..MR {
        for j in 0..NR {
            *c.add(i * ldc + j) += _mm512_reduce_add_ps(acc[i][j]);
        }
    }
}

/// All columns of an MR-row strip: NR-wide tiles, then 1-wide tiles for the remainder.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn strip512<const MR: usize, const NR: usize>(
    n: usize,
    p: usize,
    pa: *const f32,
    lda: usize,
    pb: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    bat: (usize, usize, usize),
) {
    let (nb, a_bs, b_bs) = bat;
    let mut j = 0;
    while j + NR <= n {
        tile512::<MR, NR>(pa, lda, pb.add(j * ldb), ldb, p, c.add(j), ldc, nb, a_bs, b_bs);
        j += NR;
    }
    while j < n {
        tile512::<MR, 1>(pa, lda, pb.add(j * ldb), ldb, p, c.add(j), ldc, nb, a_bs, b_bs);
        j += 1;
    }
}

/// f32 AVX-512 path: row strips of 6 (×2 columns), 4 (×3), 2 (×4), 1 (×4) — at most 12
/// accumulators, so everything stays in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn f32_avx512(m: usize, n: usize, p: usize, a: &[f32], lda: usize, b: &[f32], ldb: usize, c: &mut [f32], ldc: usize, bat: (usize, usize, usize)) {
    let (ap, bp, cp) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    let mut i = 0;
    while m - i >= 6 {
        strip512::<6, 2>(n, p, ap.add(i * lda), lda, bp, ldb, cp.add(i * ldc), ldc, bat);
        i += 6;
    }
    if m - i >= 4 {
        strip512::<4, 3>(n, p, ap.add(i * lda), lda, bp, ldb, cp.add(i * ldc), ldc, bat);
        i += 4;
    }
    if m - i >= 2 {
        strip512::<2, 4>(n, p, ap.add(i * lda), lda, bp, ldb, cp.add(i * ldc), ldc, bat);
        i += 2;
    }
    if m - i >= 1 {
        strip512::<1, 4>(n, p, ap.add(i * lda), lda, bp, ldb, cp.add(i * ldc), ldc, bat);
    }
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
        if TypeId::of::<T>() == TypeId::of::<f32>() && super::simd() == super::Simd::Avx512 {
            // SAFETY: T is f32 (same layout); AVX-512F was detected; bounds checked above.
            unsafe {
                let a = std::slice::from_raw_parts(a.as_ptr() as *const f32, a.len());
                let b = std::slice::from_raw_parts(b.as_ptr() as *const f32, b.len());
                let c = std::slice::from_raw_parts_mut(c.as_mut_ptr() as *mut f32, c.len());
                return f32_avx512(m, n, p, a, lda, b, ldb, c, ldc, (nb, a_bs, b_bs));
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
