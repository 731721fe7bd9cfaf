//! Flatten: reinterprets each sample's tensor as a vector (`[C,H,W] → [C·H·W]`).
//! Row-major data is unchanged, so forward and backward are copies.

use super::Float;

pub fn copy<T: Float>(src: &[T], dst: &mut [T]) {
    dst.copy_from_slice(src);
}
