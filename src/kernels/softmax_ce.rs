//! Softmax cross-entropy loss (with label smoothing ε) and top-K accuracy.
//!
//! Per sample with logits `z [T, C]` (T = 1 for plain classification) and label `l`:
//! `loss_s = (1/T) Σ_t (logsumexp(z_t) − (1 − ε)·z_t[l] − ε·mean_c z_t[c])`, computed stably by
//! subtracting `max(z_t)`; the target is `q = (1 − ε)·onehot(l) + ε/C`. The batch loss is the mean over the `N` samples of the *whole* batch, so
//! the gradient is `dz_t = (softmax(z_t) − onehot(l)) · scale / T` with `scale = 1/N`.
//! Prediction (for accuracy): the scores `Σ_t z_t[c]`; a sample is correct at top-K when fewer than K
//! classes rank above its label (a class ranks above when its score is larger, or equal with a
//! smaller index: for K = 1 the first maximum wins).

use super::Float;

/// Returns `(Σ_s loss_s as f64, number correct at top-`top`)` over `n` samples; writes `dz` if given.
/// Labels must be `< c` (checked by the engine).
#[allow(clippy::too_many_arguments)]
pub fn forward_backward<T: Float>(
    n: usize,
    t: usize,
    c: usize,
    z: &[T],
    labels: &[u32],
    scale: f64,
    top: usize,
    smoothing: f64,
    mut dz: Option<&mut [T]>,
    probs_tmp: &mut [f64],
) -> (f64, usize) {
    let mut loss = 0.0f64;
    let mut correct = 0usize;
    let g = T::from_f64(scale / t as f64);
    for s in 0..n {
        let l = labels[s] as usize;
        let mut sample_loss = 0.0;
        probs_tmp[..c].iter_mut().for_each(|v| *v = 0.0);
        for step in 0..t {
            let zs = &z[(s * t + step) * c..(s * t + step + 1) * c];
            let mut mx = T::NEG_INFINITY;
            for &v in zs {
                mx = mx.maxf(v);
            }
            let mut se = T::ZERO;
            for &v in zs {
                se += (v - mx).exp();
            }
            let lse = se.ln() + mx;
            if smoothing == 0.0 {
                sample_loss += (lse - zs[l]).to_f64();
            } else {
                let mean = zs.iter().map(|v| v.to_f64()).sum::<f64>() / c as f64;
                sample_loss += lse.to_f64() - (1.0 - smoothing) * zs[l].to_f64() - smoothing * mean;
            }
            for (acc, &v) in probs_tmp[..c].iter_mut().zip(zs) {
                *acc += v.to_f64();
            }
            if let Some(dz) = dz.as_deref_mut() {
                let d = &mut dz[(s * t + step) * c..(s * t + step + 1) * c];
                if smoothing == 0.0 {
                    for (k, (dv, &v)) in d.iter_mut().zip(zs).enumerate() {
                        let p = (v - lse).exp();
                        *dv = if k == l { (p - T::ONE) * g } else { p * g };
                    }
                } else {
                    let (on, off) = (T::from_f64(1.0 - smoothing + smoothing / c as f64), T::from_f64(smoothing / c as f64));
                    for (k, (dv, &v)) in d.iter_mut().zip(zs).enumerate() {
                        let p = (v - lse).exp();
                        *dv = (p - if k == l { on } else { off }) * g;
                    }
                }
            }
        }
        loss += sample_loss / t as f64;
        let label_score = probs_tmp[l];
        let above = (0..c).filter(|&k| probs_tmp[k] > label_score || (probs_tmp[k] == label_score && k < l)).count();
        if above < top {
            correct += 1;
        }
    }
    (loss, correct)
}
