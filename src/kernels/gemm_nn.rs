//! AVX-512 f32 kernel for `C[m×n] = (acc ? C : 0) + A[m×k] · B[k×n]` where B and C are
//! row-major (n contiguous) and A has arbitrary strides (so `Wᵀ`, `dyᵀ` are free).
//!
//! Register tile: MR rows of A (broadcast scalars) × NV vectors of 16 columns of B, at most
//! 12 accumulators; the last vector of a row strip is masked. Used by [`super::matmul`]
//! when the CPU has AVX-512F; the `gemm` crate (AVX2 on stable Rust, with packing) handles
//! everything else.

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
