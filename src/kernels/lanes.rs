//! f32 SIMD vectors behind one trait, so that a register-tiled kernel is written once and
//! instantiated for AVX-512F (`Zmm`, 16 lanes, mask registers) and AVX2+FMA (`Ymm`, 8 lanes,
//! vector masks). Every method is `#[inline(always)]` and only valid inside a function compiled
//! with the matching `#[target_feature]` (the caller's safety contract).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// One vector of `LANES` f32 values.
#[cfg(target_arch = "x86_64")]
pub(crate) trait F32Lanes: Copy {
    const LANES: usize;
    /// Selects the first `n` lanes (`n ≤ LANES`) for masked loads and stores.
    type Mask: Copy;
    unsafe fn zero() -> Self;
    unsafe fn mask(n: usize) -> Self::Mask;
    /// Selects lanes `lo..hi` (`lo ≤ hi ≤ LANES`).
    unsafe fn mask_between(lo: usize, hi: usize) -> Self::Mask;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn load_masked(p: *const f32, m: Self::Mask) -> Self;
    unsafe fn store(p: *mut f32, v: Self);
    unsafe fn store_masked(p: *mut f32, m: Self::Mask, v: Self);
    unsafe fn splat(x: f32) -> Self;
    /// `a · b + c`, one rounding.
    unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self;
    unsafe fn add(a: Self, b: Self) -> Self;
    /// Sum of the lanes.
    unsafe fn sum(self) -> f32;
}

/// AVX-512F: `__m512`.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Zmm(__m512);

#[cfg(target_arch = "x86_64")]
impl F32Lanes for Zmm {
    const LANES: usize = 16;
    type Mask = __mmask16;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Zmm(_mm512_setzero_ps())
    }
    #[inline(always)]
    unsafe fn mask(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }
    #[inline(always)]
    unsafe fn mask_between(lo: usize, hi: usize) -> __mmask16 {
        Self::mask(hi) & !Self::mask(lo)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Zmm(_mm512_loadu_ps(p))
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: __mmask16) -> Self {
        Zmm(_mm512_maskz_loadu_ps(m, p))
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        _mm512_storeu_ps(p, v.0)
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: __mmask16, v: Self) {
        _mm512_mask_storeu_ps(p, m, v.0)
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Zmm(_mm512_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self {
        Zmm(_mm512_fmadd_ps(a.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        Zmm(_mm512_add_ps(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        _mm512_reduce_add_ps(self.0)
    }
}

/// AVX2+FMA: `__m256`, masks as vectors of all-ones / zero lanes.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Ymm(__m256);

#[cfg(target_arch = "x86_64")]
impl F32Lanes for Ymm {
    const LANES: usize = 8;
    type Mask = __m256i;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Ymm(_mm256_setzero_ps())
    }
    #[inline(always)]
    unsafe fn mask(n: usize) -> __m256i {
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
    }
    #[inline(always)]
    unsafe fn mask_between(lo: usize, hi: usize) -> __m256i {
        _mm256_andnot_si256(Self::mask(lo), Self::mask(hi))
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Ymm(_mm256_loadu_ps(p))
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: __m256i) -> Self {
        Ymm(_mm256_maskload_ps(p, m))
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        _mm256_storeu_ps(p, v.0)
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: __m256i, v: Self) {
        _mm256_maskstore_ps(p, m, v.0)
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Ymm(_mm256_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self {
        Ymm(_mm256_fmadd_ps(a.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        Ymm(_mm256_add_ps(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        let q = _mm_add_ps(_mm256_castps256_ps128(self.0), _mm256_extractf128_ps(self.0, 1));
        let d = _mm_add_ps(q, _mm_movehl_ps(q, q));
        _mm_cvtss_f32(_mm_add_ss(d, _mm_shuffle_ps(d, d, 1)))
    }
}

/// Where the rows of a kernel's long operand start, in elements from its base pointer: evenly
/// strided (a dense row-major matrix) or listed in a table (the rows of an implicit column
/// matrix: row `(c, i, j)` of a stride-1 convolution starts at the input offset of channel `c`,
/// row `i`, column `j` of the zero-padded input, see [`super::conv`]).
pub(crate) trait RowStarts: Copy {
    /// Start of row `r`.
    unsafe fn start(self, r: usize) -> usize;
    /// The rows from `r0` on: (offset of the new base, row starts relative to it).
    unsafe fn from(self, r0: usize) -> (usize, Self);
}

/// Row `r` starts at `r · stride`.
#[derive(Clone, Copy)]
pub(crate) struct Strided(pub usize);

impl RowStarts for Strided {
    #[inline(always)]
    unsafe fn start(self, r: usize) -> usize {
        r * self.0
    }
    #[inline(always)]
    unsafe fn from(self, r0: usize) -> (usize, Self) {
        (r0 * self.0, self)
    }
}

/// Row `r` starts at `table[r]` (the caller keeps the table alive and long enough).
#[derive(Clone, Copy)]
pub(crate) struct Listed(pub *const usize);

impl RowStarts for Listed {
    #[inline(always)]
    unsafe fn start(self, r: usize) -> usize {
        *self.0.add(r)
    }
    #[inline(always)]
    unsafe fn from(self, r0: usize) -> (usize, Self) {
        (0, Listed(self.0.add(r0)))
    }
}
