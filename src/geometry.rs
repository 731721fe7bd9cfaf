//! Output sizes of windowed ops (convolution and pooling), per spatial axis. The one definition
//! used by the language's shape rules (`ops::conv`, `ops::pool`) and by the kernels.
//!
//! conv: ⌊(L + 2p − d(k−1) − 1)/s⌋ + 1;
//! pool, floor: ⌊(L + 2p − k)/s⌋ + 1; ceil (Caffe): ⌈(L + 2p − k)/s⌉ + 1, minus one if the last
//! window would start beyond L + p.

/// Output extent of a convolution along one axis, `None` if the kernel does not fit.
pub fn conv_out(len: usize, k: usize, s: usize, p: usize, d: usize) -> Option<usize> {
    if k == 0 || s == 0 || d == 0 {
        return None;
    }
    let span = d * (k - 1) + 1;
    let padded = len + 2 * p;
    if padded < span {
        return None;
    }
    Some((padded - span) / s + 1)
}

/// Output extent along one axis, `None` for an impossible configuration
/// (zero kernel/stride, padding ≥ kernel, or kernel larger than the padded input).
pub fn pool_out(len: usize, k: usize, s: usize, p: usize, ceil: bool) -> Option<usize> {
    if k == 0 || s == 0 || p >= k || len + 2 * p < k {
        return None;
    }
    let span = len + 2 * p - k;
    let mut out = if ceil { span.div_ceil(s) + 1 } else { span / s + 1 };
    if ceil && out > 1 && (out - 1) * s >= len + p {
        out -= 1;
    }
    Some(out)
}
