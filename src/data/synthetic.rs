//! Synthetic, seeded image sets for tests and smoke runs.
//!
//! Each class has a fixed template (a per-channel brightness offset plus a few low-frequency sinusoids, drawn
//! from the seed and the class); each sample is its class template plus per-sample brightness shift and
//! Gaussian pixel noise. So a linear model already separates the classes, a conv net easily does, and noise
//! keeps it from being trivial.
//!
//! Invariants: sample `i` of a split depends only on (spec, split, i); label of sample `i` is `i % classes`
//! (balanced); the training and test sets share templates but use disjoint noise streams.

use rand::Rng;
use rand_distr::StandardNormal;

use super::augment::sample_rng;
use super::{DataError, Dataset, Split};

/// What to generate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SyntheticSpec {
    /// [channels, height, width].
    pub shape: [usize; 3],
    pub classes: usize,
    /// Number of training and test samples.
    pub train: usize,
    pub test: usize,
    pub seed: u64,
    /// Standard deviation of the per-pixel noise, in pixel units (0..255). 30 is a reasonable default.
    pub noise: f32,
}

impl SyntheticSpec {
    /// A spec with noise 30.
    pub fn new(shape: [usize; 3], classes: usize, train: usize, test: usize, seed: u64) -> SyntheticSpec {
        SyntheticSpec { shape, classes, train, test, seed, noise: 30.0 }
    }
}

const TRAIN_STREAM: u64 = 0x7EA1;
const TEST_STREAM: u64 = 0x7E57;

fn templates(spec: &SyntheticSpec) -> Vec<f32> {
    let [c, h, w] = spec.shape;
    let per = c * h * w;
    let mut t = vec![0f32; spec.classes * per];
    for class in 0..spec.classes {
        let mut rng = sample_rng(spec.seed, u64::MAX, class as u64);
        for ch in 0..c {
            let offset: f32 = rng.gen_range(-50.0..50.0);
            let waves: Vec<(f32, f32, f32, f32)> = (0..3)
                .map(|_| (rng.gen_range(0..3) as f32, rng.gen_range(0..3) as f32, rng.gen_range(0.0..std::f32::consts::TAU), rng.gen_range(20.0..45.0)))
                .collect();
            for y in 0..h {
                for x in 0..w {
                    let mut v = 128.0 + offset;
                    for &(fy, fx, phase, amp) in &waves {
                        let a = std::f32::consts::TAU * (fy * y as f32 / h as f32 + fx * x as f32 / w as f32) + phase;
                        v += amp * a.sin();
                    }
                    t[class * per + ch * h * w + y * w + x] = v;
                }
            }
        }
    }
    t
}

fn generate(spec: &SyntheticSpec, templates: &[f32], n: usize, stream: u64) -> Result<Dataset, DataError> {
    let per = spec.shape.iter().product::<usize>();
    let mut images = Vec::with_capacity(n * per);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = i % spec.classes;
        let mut rng = sample_rng(spec.seed ^ stream, 0, i as u64);
        let shift: f32 = rng.gen_range(-15.0..15.0);
        let t = &templates[label * per..(label + 1) * per];
        for &v in t {
            let z: f32 = rng.sample(StandardNormal);
            images.push((v + shift + spec.noise * z).round().clamp(0.0, 255.0) as u8);
        }
        labels.push(label as u32);
    }
    let names = (0..spec.classes).map(|k| format!("class{k}")).collect();
    Dataset::new(images, labels, spec.shape, spec.classes, names, "<synthetic>".into())
}

fn check(spec: &SyntheticSpec) -> Result<(), DataError> {
    let per = spec.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let total = per.and_then(|p| p.checked_mul(spec.train.max(spec.test)));
    if spec.classes == 0 || per.is_none_or(|p| p == 0) || total.is_none_or(|t| t > 1 << 31) {
        return Err(DataError::config(format!(
            "synthetic data needs at least one class and a non-empty shape of sane size; found {} classes, shape \
             {:?}, {} / {} samples",
            spec.classes, spec.shape, spec.train, spec.test
        )));
    }
    if !spec.noise.is_finite() || spec.noise < 0.0 {
        return Err(DataError::config(format!("synthetic noise must be finite and >= 0, found {}", spec.noise)));
    }
    Ok(())
}

/// Generates the training part only.
pub fn synthetic(spec: &SyntheticSpec) -> Result<Dataset, DataError> {
    check(spec)?;
    generate(spec, &templates(spec), spec.train, TRAIN_STREAM)
}

/// Generates training and test parts.
pub fn synthetic_split(spec: &SyntheticSpec) -> Result<Split, DataError> {
    check(spec)?;
    let t = templates(spec);
    Ok(Split { train: generate(spec, &t, spec.train, TRAIN_STREAM)?, test: generate(spec, &t, spec.test, TEST_STREAM)? })
}
