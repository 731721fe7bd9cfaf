//! Finite-difference gradient check of a plan in f64.
//!
//! The plan is instantiated as `Network<f64>` (one thread, so batch norm sees the whole
//! batch), fed deterministic inputs `U(−1, 1)` and labels, in training mode with a fixed
//! dropout mask (step 0). For every parameter tensor, every element (tensors ≤ 64
//! elements) or a deterministic sample of 48 elements is perturbed by ±ε (ε = 1e-6) and
//! `num = (L(w+ε) − L(w−ε)) / 2ε` is compared with the analytic gradient:
//! `rel = |a − num| / max(|a| + |num|, 1e-4)` (the floor keeps gradients that are zero by
//! symmetry from producing meaningless ratios).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::error::EngineError;
use super::network::{Backend, NetOptions, Network};
use crate::lower::Plan;

#[derive(Clone, Debug, PartialEq)]
pub struct TensorCheck {
    pub layer: String,
    pub param: String,
    pub max_rel_err: f64,
    pub checked: usize,
}

pub fn gradcheck(plan: &Plan, batch: usize, seed: u64) -> Result<Vec<TensorCheck>, EngineError> {
    let opts = NetOptions { backend: Backend::Cpu { threads: 1 }, max_batch: batch.max(1), micro_batch: batch.max(1) };
    let mut net: Network<f64> = Network::with_options(plan, seed, opts)?;
    net.set_step(0);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xC0FFEE);
    let inputs: Vec<f32> = (0..batch * net.input_len()).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let classes = net.classes().max(1) as u32;
    let labels: Vec<u32> = (0..batch).map(|_| rng.gen_range(0..classes)).collect();
    net.forward_backward(&inputs, &labels)?;
    let analytic = net.grads().to_vec();
    let eps = 1e-6;
    let mut out = vec![];
    for p in net.param_info().to_vec() {
        let idx: Vec<usize> = if p.len <= 64 { (0..p.len).collect() } else { (0..48).map(|_| rng.gen_range(0..p.len)).collect() };
        let mut worst = 0.0f64;
        for &i in &idx {
            let k = p.offset + i;
            let orig = net.params()[k];
            net.params_mut()[k] = orig + eps;
            let lp = net.forward(&inputs, &labels, true)?.loss;
            net.params_mut()[k] = orig - eps;
            let lm = net.forward(&inputs, &labels, true)?.loss;
            net.params_mut()[k] = orig;
            let num = (lp - lm) / (2.0 * eps);
            let a = analytic[k];
            let rel = (a - num).abs() / (a.abs() + num.abs()).max(1e-4);
            worst = worst.max(rel);
        }
        out.push(TensorCheck { layer: p.layer.clone(), param: p.name.clone(), max_rel_err: worst, checked: idx.len() });
    }
    Ok(out)
}
