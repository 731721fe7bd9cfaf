//! CPU compute kernels, forward and backward, generic over [`Float`] (f32 and f64).
//!
//! Conventions shared by every kernel:
//! * tensors are dense row-major slices; a batch of `n` samples is `n` consecutive
//!   per-sample blocks (NCHW for images, `[T, F]` for sequences);
//! * forward kernels overwrite their outputs;
//! * backward kernels *overwrite* input gradients (`dx`) and *accumulate* (`+=`) into
//!   parameter gradients (`dw`, `db`), so a caller can sum over micro-batches;
//! * kernels never allocate except where documented, and never print. Slice-length
//!   mismatches are engine bugs and are caught by assertions (the engine validates
//!   user plans before calling any kernel).

// Kernels index several arrays in lock-step and take many scalar arguments by design.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

pub mod activation;
pub mod add;
pub mod batchnorm;
pub mod concat;
pub mod conv;
pub mod conv_implicit;
pub mod dot_tile;
pub mod dropout;
pub mod flatten;
pub mod gemm_nn;
mod lanes;
pub mod linear;
pub mod lstm;
pub mod matmul;
pub mod pool;
pub mod rnn;
pub mod softmax_ce;

/// The instruction set the kernels dispatch to, detected once per process: AVX-512F (register
/// tiles of 16 lanes, the hand-written GEMM and im2col), AVX2+FMA (8-lane tiles, the `gemm`
/// crate's own AVX2 kernels), or portable code. `EXPC_SIMD=avx2` or `EXPC_SIMD=portable` caps it
/// (to measure the paths of smaller machines on a bigger one); a cap above what the CPU has is
/// ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Simd {
    Portable,
    Avx2,
    Avx512,
}

impl Simd {
    pub fn name(self) -> &'static str {
        match self {
            Simd::Portable => "portable",
            Simd::Avx2 => "avx2+fma",
            Simd::Avx512 => "avx512f",
        }
    }
}

/// See [`Simd`].
pub fn simd() -> Simd {
    static DETECTED: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
    *DETECTED.get_or_init(|| {
        #[allow(unused_mut)]
        let mut have = Simd::Portable;
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                have = Simd::Avx2;
                if std::arch::is_x86_feature_detected!("avx512f") {
                    have = Simd::Avx512;
                }
            }
        }
        let cap = match std::env::var("EXPC_SIMD").ok().as_deref() {
            Some("portable") => Simd::Portable,
            Some("avx2") => Simd::Avx2,
            _ => Simd::Avx512,
        };
        have.min(cap)
    })
}

/// Runs `f` inside a function compiled for AVX2+FMA when the machine has it, so that the
/// auto-vectorised element-wise loops `f` inlines (ReLU, sums) use 256-bit registers instead of
/// the SSE2 baseline; elsewhere `f` runs as it is. Pass closures marked `#[inline(always)]`:
/// a closure that is not inlined is compiled for the baseline and gains nothing.
#[inline(always)]
pub(crate) fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if simd() >= Simd::Avx2 {
            // SAFETY: AVX2 and FMA were detected (`simd`).
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// Whether every value of `v` is finite (no NaN, no infinity): blocks of 1,024 values checked
/// without an early exit inside a block, so the check compiles to vector compares (the step's
/// divergence checks scan every parameter and gradient).
pub fn all_finite<T: Float>(v: &[T]) -> bool {
    vectorised(
        #[inline(always)]
        || v.chunks(1024).all(|block| block.iter().fold(true, |ok, x| ok & x.to_f64().is_finite())),
    )
}

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// Scalar type of a network: `f32` for training, `f64` for gradient checks.
/// Sealed: the `gemm` crate only supports these two real types.
pub trait Float:
    sealed::Sealed
    + Copy
    + Send
    + Sync
    + Default
    + Debug
    + PartialOrd
    + PartialEq
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
{
    const ZERO: Self;
    const ONE: Self;
    const NEG_INFINITY: Self;
    fn from_f64(v: f64) -> Self;
    fn from_f32(v: f32) -> Self;
    fn to_f64(self) -> f64;
    fn to_f32(self) -> f32;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn tanh(self) -> Self;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    /// Fused multiply-add `self·a + b` (only used where the CPU has FMA).
    fn mul_add(self, a: Self, b: Self) -> Self;
    #[inline]
    fn maxf(self, o: Self) -> Self {
        if o > self {
            o
        } else {
            self
        }
    }
    /// Numerically stable logistic function.
    #[inline]
    fn sigmoid(self) -> Self {
        if self >= Self::ZERO {
            Self::ONE / (Self::ONE + (-self).exp())
        } else {
            let e = self.exp();
            e / (Self::ONE + e)
        }
    }
}

macro_rules! impl_float {
    ($t:ty) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn from_f32(v: f32) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn to_f32(self) -> f32 {
                self as f32
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                <$t>::mul_add(self, a, b)
            }
        }
    };
}
impl_float!(f32);
impl_float!(f64);

#[cfg(test)]
mod finite_tests {
    use super::all_finite;

    /// A NaN or an infinity anywhere (first block, last value, a short last block) is found; huge
    /// finite values and subnormals are finite.
    #[test]
    fn all_finite_finds_every_non_finite_value() {
        fn check<T: super::Float>() {
            let mut v = vec![T::from_f64(1e30); 2500];
            v[7] = T::from_f64(f64::MIN_POSITIVE);
            assert!(all_finite(&v) && all_finite::<T>(&[]));
            for at in [0, 1023, 1024, 2499] {
                for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                    let mut w = v.clone();
                    w[at] = T::from_f64(bad);
                    assert!(!all_finite(&w), "{bad} at {at}");
                }
            }
        }
        check::<f32>();
        check::<f64>();
    }
}
