//! Seeded parameter initialisation (Caffe fillers).
//!
//! Each parameter tensor `i` draws from its own ChaCha8 stream (`seed`, stream `i`), so
//! the same plan and seed give the same weights regardless of scalar type or threads.
//! Values are drawn in f32 and then converted, so an f64 network matches an f32 one.
//! Fans (Caffe `filler.hpp`): `fan_in = count / shape[0]`, `fan_out = count / shape[1]`
//! (`count` when the tensor is 1-D); Xavier: `U(±sqrt(3/n))`, MSRA: `N(0, sqrt(2/n))`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::param::{Init, VarianceNorm};

pub(crate) fn fans(shape: &[usize]) -> (f64, f64) {
    let count: usize = shape.iter().product();
    let fan_in = count / shape.first().copied().unwrap_or(1).max(1);
    let fan_out = count / shape.get(1).copied().unwrap_or(1).max(1);
    (fan_in as f64, fan_out as f64)
}

fn norm_n(shape: &[usize], v: VarianceNorm) -> f64 {
    let (fi, fo) = fans(shape);
    let n = match v {
        VarianceNorm::FanIn => fi,
        VarianceNorm::FanOut => fo,
        VarianceNorm::Average => (fi + fo) / 2.0,
    };
    n.max(1.0)
}

/// Fills `out` according to `init`; `stream` selects the independent random stream.
pub(crate) fn fill(init: &Init, shape: &[usize], seed: u64, stream: u64, out: &mut [f32]) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    match *init {
        Init::Constant { value } => out.iter_mut().for_each(|v| *v = value as f32),
        Init::Uniform { min, max } => {
            let (min, max) = (min as f32, max as f32);
            out.iter_mut().for_each(|v| *v = if max > min { rng.gen_range(min..max) } else { min })
        }
        Init::Gaussian { mean, std } => {
            let (mean, std) = (mean as f32, std as f32);
            let d = Normal::new(mean, std.max(0.0)).unwrap_or_else(|_| Normal::new(mean, 0.0).expect("std 0 is valid"));
            out.iter_mut().for_each(|v| *v = d.sample(&mut rng));
        }
        Init::Xavier { norm: vn } => {
            let a = (3.0 / norm_n(shape, vn)).sqrt() as f32;
            out.iter_mut().for_each(|v| *v = rng.gen_range(-a..a));
        }
        Init::Msra { norm: vn } => {
            let std = (2.0 / norm_n(shape, vn)).sqrt() as f32;
            let d = Normal::new(0.0f32, std).expect("positive std");
            out.iter_mut().for_each(|v| *v = d.sample(&mut rng));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn caffe_fans() {
        assert_eq!(fans(&[16, 6, 5, 5]), (150.0, 400.0));
        assert_eq!(fans(&[10, 84]), (84.0, 10.0));
        let mut a = vec![0.0; 1000];
        fill(&Init::Xavier { norm: VarianceNorm::FanIn }, &[10, 100], 1, 0, &mut a);
        let lim = (3.0f32 / 100.0).sqrt();
        assert!(a.iter().all(|v| v.abs() <= lim));
        let mut b = vec![0.0; 1000];
        fill(&Init::Xavier { norm: VarianceNorm::FanIn }, &[10, 100], 1, 0, &mut b);
        assert_eq!(a, b);
        fill(&Init::Xavier { norm: VarianceNorm::FanIn }, &[10, 100], 1, 1, &mut b);
        assert_ne!(a, b);
    }
}
