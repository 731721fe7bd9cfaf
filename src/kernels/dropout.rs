//! Inverted dropout. Training: `y = x · m / (1 − p)` with `m ~ Bernoulli(1 − p)`;
//! evaluation (or `p = 0`): `y = x`. Backward: `dx = dy · m / (1 − p)`.
//!
//! The mask is a pure function of `(seed, step, layer, global sample index, element)`
//! via a SplitMix64 hash, so it does not depend on how the batch is split across threads
//! (determinism) and is reproducible for a fixed step (gradient checks use a fixed mask).
//! The stored mask holds the scale factor (`0` or `1/(1−p)`) per element.

use super::Float;

#[inline]
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `mask` for samples `first_sample .. first_sample + n` (per-sample length `len`)
/// and applies it: `y = x · mask`.
#[allow(clippy::too_many_arguments)]
pub fn forward_train<T: Float>(p: f32, key: u64, first_sample: usize, n: usize, len: usize, x: &[T], y: &mut [T], mask: &mut [T]) {
    let scale = T::from_f64(1.0 / (1.0 - p as f64));
    let thresh = (p as f64 * (1u64 << 53) as f64) as u64;
    for s in 0..n {
        let sk = splitmix64(key ^ splitmix64((first_sample + s) as u64));
        for i in 0..len {
            let r = splitmix64(sk.wrapping_add(i as u64)) >> 11;
            let k = s * len + i;
            mask[k] = if r < thresh { T::ZERO } else { scale };
            y[k] = x[k] * mask[k];
        }
    }
}

pub fn backward<T: Float>(dy: &[T], mask: &[T], dx: &mut [T]) {
    for ((d, &g), &m) in dx.iter_mut().zip(dy).zip(mask) {
        *d = g * m;
    }
}
