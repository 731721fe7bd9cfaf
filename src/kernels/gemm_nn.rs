//! AVX-512 f32 kernel for `C[m×n] = (acc ? C : 0) + A[m×k] · B[k×n]` where B and C are
//! row-major (n contiguous) and A has arbitrary strides (so `Wᵀ`, `dyᵀ` are free).
//!
//! Register tile: MR rows of A (broadcast scalars) × NV vectors of 16 columns of B, at most
//! 12 accumulators; the last vector of a row strip is masked. Used by [`super::matmul`]
//! when the CPU has AVX-512F; [`gemm_nn_f32_avx2`] is the same tiling with 8-lane vectors
//! (6 × 2 accumulators of the 16 ymm registers) for AVX2+FMA machines.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const MR: usize, const NV: usize>(
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    last: __mmask16,
    accumulate: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    for p in 0..k {
        let bp = b.add(p * ldb);
        let bv: [__m512; NV] =
            core::array::from_fn(|v| if v + 1 == NV { _mm512_maskz_loadu_ps(last, bp.add(16 * v)) } else { _mm512_loadu_ps(bp.add(16 * v)) });
        for i in 0..MR {
            let av = _mm512_set1_ps(*a.add(i * a_rs + p * a_cs));
            for v in 0..NV {
                acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
            }
        }
    }
    for i in 0..MR {
        let cp = c.add(i * ldc);
        for v in 0..NV {
            let m = if v + 1 == NV { last } else { 0xFFFF };
            let r = if accumulate { _mm512_add_ps(acc[i][v], _mm512_maskz_loadu_ps(m, cp.add(16 * v))) } else { acc[i][v] };
            _mm512_mask_storeu_ps(cp.add(16 * v), m, r);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn strip<const MR: usize>(
    n: usize,
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    // NV = 2 (32 columns) per tile when MR ≤ 6
    let mut j = 0;
    while j + 32 <= n {
        tile::<MR, 2>(k, a, a_rs, a_cs, b.add(j), ldb, c.add(j), ldc, 0xFFFF, accumulate);
        j += 32;
    }
    let rem = n - j;
    if rem > 16 {
        let mask = ((1u32 << (rem - 16)) - 1) as __mmask16;
        tile::<MR, 2>(k, a, a_rs, a_cs, b.add(j), ldb, c.add(j), ldc, mask, accumulate);
    } else if rem > 0 {
        let mask = if rem == 16 { 0xFFFF } else { ((1u32 << rem) - 1) as __mmask16 };
        tile::<MR, 1>(k, a, a_rs, a_cs, b.add(j), ldb, c.add(j), ldc, mask, accumulate);
    }
}

/// # Safety
/// Caller guarantees AVX-512F and that all indexed elements are in bounds:
/// A: `(m−1)·a_rs + (k−1)·a_cs`, B: `(k−1)·ldb + n − 1`, C: `(m−1)·ldc + n − 1`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_nn_f32(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let mut i = 0;
    while m - i >= 6 {
        strip::<6>(n, k, a.add(i * a_rs), a_rs, a_cs, b, ldb, c.add(i * ldc), ldc, accumulate);
        i += 6;
    }
    match m - i {
        5 => strip::<5>(n, k, a.add(i * a_rs), a_rs, a_cs, b, ldb, c.add(i * ldc), ldc, accumulate),
        4 => strip::<4>(n, k, a.add(i * a_rs), a_rs, a_cs, b, ldb, c.add(i * ldc), ldc, accumulate),
        3 => strip::<3>(n, k, a.add(i * a_rs), a_rs, a_cs, b, ldb, c.add(i * ldc), ldc, accumulate),
        2 => strip::<2>(n, k, a.add(i * a_rs), a_rs, a_cs, b, ldb, c.add(i * ldc), ldc, accumulate),
        1 => strip::<1>(n, k, a.add(i * a_rs), a_rs, a_cs, b, ldb, c.add(i * ldc), ldc, accumulate),
        _ => {}
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_avx2<const MR: usize, const NV: usize>(
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    last: __m256i,
    accumulate: bool,
) {
    let all = _mm256_set1_epi32(-1);
    let mut acc = [[_mm256_setzero_ps(); NV]; MR];
    for p in 0..k {
        let bp = b.add(p * ldb);
        let bv: [__m256; NV] = core::array::from_fn(|v| if v + 1 == NV { _mm256_maskload_ps(bp.add(8 * v), last) } else { _mm256_loadu_ps(bp.add(8 * v)) });
        for i in 0..MR {
            let av = _mm256_set1_ps(*a.add(i * a_rs + p * a_cs));
            for v in 0..NV {
                acc[i][v] = _mm256_fmadd_ps(av, bv[v], acc[i][v]);
            }
        }
    }
    for i in 0..MR {
        let cp = c.add(i * ldc);
        for v in 0..NV {
            let m = if v + 1 == NV { last } else { all };
            let r = if accumulate { _mm256_add_ps(acc[i][v], _mm256_maskload_ps(cp.add(8 * v), m)) } else { acc[i][v] };
            _mm256_maskstore_ps(cp.add(8 * v), m, r);
        }
    }
}

/// Lanes `0..n` (n ≤ 8) of an AVX2 mask.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn first_lanes(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn strip_avx2<const MR: usize>(
    n: usize,
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    // NV = 2 (16 columns) per tile
    let all = _mm256_set1_epi32(-1);
    let mut j = 0;
    while j + 16 <= n {
        tile_avx2::<MR, 2>(k, a, a_rs, a_cs, b.add(j), ldb, c.add(j), ldc, all, accumulate);
        j += 16;
    }
    let rem = n - j;
    if rem > 8 {
        tile_avx2::<MR, 2>(k, a, a_rs, a_cs, b.add(j), ldb, c.add(j), ldc, first_lanes(rem - 8), accumulate);
    } else if rem > 0 {
        tile_avx2::<MR, 1>(k, a, a_rs, a_cs, b.add(j), ldb, c.add(j), ldc, first_lanes(rem), accumulate);
    }
}

/// [`gemm_nn_f32`] on AVX2+FMA.
///
/// # Safety
/// Caller guarantees AVX2 and FMA and the bounds of [`gemm_nn_f32`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_nn_f32_avx2(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let mut i = 0;
    while m - i >= 6 {
        strip_avx2::<6>(n, k, a.add(i * a_rs), a_rs, a_cs, b, ldb, c.add(i * ldc), ldc, accumulate);
        i += 6;
    }
    match m - i {
        5 => strip_avx2::<5>(n, k, a.add(i * a_rs), a_rs, a_cs, b, ldb, c.add(i * ldc), ldc, accumulate),
        4 => strip_avx2::<4>(n, k, a.add(i * a_rs), a_rs, a_cs, b, ldb, c.add(i * ldc), ldc, accumulate),
        3 => strip_avx2::<3>(n, k, a.add(i * a_rs), a_rs, a_cs, b, ldb, c.add(i * ldc), ldc, accumulate),
        2 => strip_avx2::<2>(n, k, a.add(i * a_rs), a_rs, a_cs, b, ldb, c.add(i * ldc), ldc, accumulate),
        1 => strip_avx2::<1>(n, k, a.add(i * a_rs), a_rs, a_cs, b, ldb, c.add(i * ldc), ldc, accumulate),
        _ => {}
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    type Kernel = unsafe fn(usize, usize, usize, *const f32, usize, usize, *const f32, usize, *mut f32, usize, bool);

    /// Both kernels against an f64 reference, with transposed A, ragged edges and accumulation.
    #[test]
    fn avx512_and_avx2_kernels_equal_the_reference() {
        for &(m, n, k) in &[(1, 1, 1), (6, 16, 3), (7, 17, 5), (13, 40, 9), (5, 8, 64), (12, 33, 2)] {
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
                        unsafe { f(m, n, k, a.as_ptr(), a_rs, a_cs, b.as_ptr(), n, c.as_mut_ptr(), n, acc) };
                        for (x, y) in c.iter().zip(&want) {
                            assert!((*x as f64 - y).abs() < 1e-4 * y.abs().max(1.0), "{name} {m}x{n}x{k} acc={acc} a_cs={a_cs}");
                        }
                    }
                }
            }
        }
    }
}
