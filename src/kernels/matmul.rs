//! Strided matrix multiply: expc's own f32 kernels on AVX-512 and AVX2 (`gemm_nn`, `dot_tile`),
//! the `gemm` crate otherwise (f64, other CPUs).
//!
//! `C[m×n] = (accumulate ? C : 0) + A[m×k] · B[k×n]`, where every operand is described
//! by a slice plus a row stride and a column stride (so transposes are free). `C` has
//! column stride 1. Bounds are checked once per call (cheap) before the unsafe call, so
//! a wrong stride is caught as an engine bug instead of corrupting memory. Always runs
//! single-threaded: the engine parallelises across batch slices, not inside a GEMM.

use super::Float;

/// A read-only strided matrix view.
#[derive(Clone, Copy)]
pub struct MatRef<'a, T> {
    pub data: &'a [T],
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// Row-major view with leading dimension `ld`.
    pub fn rm(data: &'a [T], ld: usize) -> Self {
        MatRef { data, rs: ld, cs: 1 }
    }
    /// Transposed view of a row-major matrix with leading dimension `ld`.
    pub fn tr(data: &'a [T], ld: usize) -> Self {
        MatRef { data, rs: 1, cs: ld }
    }
}

thread_local! {
    /// Test hook: route every product through the `gemm` crate.
    static FORCE_GEMM_CRATE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[inline]
fn need(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// `C = (acc ? C : 0) + A·B` with `C` row-major, leading dimension `ldc`.
pub fn matmul<T: Float>(m: usize, n: usize, k: usize, a: MatRef<'_, T>, b: MatRef<'_, T>, c: &mut [T], ldc: usize, accumulate: bool) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(c.len() >= need(m, n, ldc, 1), "matmul: C too small");
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * ldc..i * ldc + n].iter_mut().for_each(|v| *v = T::ZERO);
            }
        }
        return;
    }
    assert!(a.data.len() >= need(m, k, a.rs, a.cs), "matmul: A too small");
    assert!(b.data.len() >= need(k, n, b.rs, b.cs), "matmul: B too small");
    #[cfg(target_arch = "x86_64")]
    {
        use std::any::TypeId;
        if TypeId::of::<T>() == TypeId::of::<f32>() && !FORCE_GEMM_CRATE.with(|f| f.get()) && super::simd() >= super::Simd::Avx2 {
            if b.cs == 1 {
                let kernel = if super::simd() == super::Simd::Avx512 { super::gemm_nn::gemm_nn_f32 } else { super::gemm_nn::gemm_nn_f32_avx2 };
                // SAFETY: T is f32; the kernel's instruction set was detected (`simd`); extents
                // checked above.
                unsafe {
                    kernel(
                        m,
                        n,
                        k,
                        a.data.as_ptr() as *const f32,
                        super::gemm_nn::Strided(a.rs),
                        a.cs,
                        b.data.as_ptr() as *const f32,
                        super::gemm_nn::Strided(b.rs),
                        c.as_mut_ptr() as *mut f32,
                        ldc,
                        accumulate,
                    );
                }
                return;
            }
            if a.cs == 1 && b.rs == 1 && k >= 16 {
                // NT form: C += A[m×k] · (Bᵀ[n×k])ᵀ, both with k contiguous
                if !accumulate {
                    for i in 0..m {
                        c[i * ldc..i * ldc + n].iter_mut().for_each(|v| *v = T::ZERO);
                    }
                }
                super::dot_tile::gemm_nt_acc(m, n, k, a.data, a.rs, b.data, b.cs, c, ldc);
                return;
            }
        }
    }
    // SAFETY: all accessed offsets were bounds-checked above; T is f32 or f64 (sealed).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn check_f32(m: usize, n: usize, k: usize, tr_a: bool, tr_b: bool, acc: bool) {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 13) % 17) as f32 * 0.125 - 1.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 7) % 11) as f32 * 0.25 - 1.0).collect();
        let am = if tr_a { MatRef::tr(&a, m) } else { MatRef::rm(&a, k) };
        let bm = if tr_b { MatRef::tr(&b, k) } else { MatRef::rm(&b, n) };
        let mut c = vec![0.5f32; m * n];
        matmul(m, n, k, am, bm, &mut c, n, acc);
        for i in 0..m {
            for j in 0..n {
                let mut s = if acc { 0.5f64 } else { 0.0 };
                for p in 0..k {
                    let av = if tr_a { a[p * m + i] } else { a[i * k + p] };
                    let bv = if tr_b { b[j * k + p] } else { b[p * n + j] };
                    s += av as f64 * bv as f64;
                }
                assert!((s - c[i * n + j] as f64).abs() < 1e-4 * s.abs().max(1.0), "{m} {n} {k} {tr_a} {tr_b} {acc}");
            }
        }
    }

    #[test]
    fn f32_paths_match_naive() {
        // own AVX-512 kernels (where available), then the `gemm` crate for the same shapes
        for force in [false, true] {
            FORCE_GEMM_CRATE.with(|f| f.set(force));
            for &(m, n, k) in &[(6, 784, 75), (16, 100, 150), (7, 33, 5), (1, 1, 1), (13, 16, 20), (2, 500, 800), (5, 17, 16)] {
                for tr_a in [false, true] {
                    for tr_b in [false, true] {
                        for acc in [false, true] {
                            check_f32(m, n, k, tr_a, tr_b, acc);
                        }
                    }
                }
            }
        }
        FORCE_GEMM_CRATE.with(|f| f.set(false));
    }

    #[test]
    fn matches_naive() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| i as f64 * 0.5 - 2.0).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64).sin()).collect();
        let mut c = vec![1.0; m * n];
        matmul(m, n, k, MatRef::rm(&a, k), MatRef::rm(&b, n), &mut c, n, true);
        for i in 0..m {
            for j in 0..n {
                let mut s = 1.0;
                for p in 0..k {
                    s += a[i * k + p] * b[p * n + j];
                }
                assert!((s - c[i * n + j]).abs() < 1e-12);
            }
        }
        // transposed A: A^T where stored a is [k, m]
        let at: Vec<f64> = (0..k * m).map(|i| i as f64).collect();
        let mut c2 = vec![0.0; m * n];
        matmul(m, n, k, MatRef::tr(&at, m), MatRef::rm(&b, n), &mut c2, n, false);
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k).map(|p| at[p * m + i] * b[p * n + j]).sum();
                assert!((s - c2[i * n + j]).abs() < 1e-12);
            }
        }
    }
}
