//! Preprocessing (u8 pixels to normalised f32) and training-only augmentation (zero padding + random crop,
//! horizontal mirror), plus the sequence view (rows as time steps).
//!
//! Invariants: the random choices for a training sample come from [`sample_rng`]`(seed, epoch, index)` only
//! (index = the sample's position in the training set), so the same seed, epoch and index give the same crop
//! and mirror whatever thread or batch produces it. Padding is zero in the *output* (normalised) space. Test
//! samples are never randomised: no mirror, and a centre crop when the crop size differs from the image. Output
//! layout is CHW, or [T = rows, F = channels x width] with `sequence_rows` (row `t` holds channel 0's row `t`,
//! then channel 1's, ...; for one channel this is the same memory as CHW).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{DataConfig, DataError, Dataset};

/// The random generator for one (seed, epoch, index) triple: independent streams for every triple.
pub fn sample_rng(seed: u64, epoch: u64, index: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[0..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&epoch.to_le_bytes());
    key[16..24].copy_from_slice(&index.to_le_bytes());
    key[24..32].copy_from_slice(&0x6578_7063_6461_7461u64.to_le_bytes()); // "expcdata"
    ChaCha8Rng::from_seed(key)
}

/// Largest pad or crop side accepted.
const MAX_SIDE: usize = 1 << 16;

/// Pixel-to-value mapping fitted on the training set.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    pub shape: [usize; 3],
    pub scale: f32,
    /// Per-channel mean and standard deviation (length C) used when there is no mean image.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Mean of `pixel * scale` over the training set, CHW, when `mean_image` was asked for.
    pub mean_image: Option<Vec<f32>>,
    /// Per channel, the value of each of the 256 pixel levels (mean/std mode).
    lut: Vec<[f32; 256]>,
}

fn per_channel(v: &Option<Vec<f32>>, c: usize, default: f32, what: &str) -> Result<Vec<f32>, DataError> {
    match v {
        None => Ok(vec![default; c]),
        Some(v) if v.len() == 1 => Ok(vec![v[0]; c]),
        Some(v) if v.len() == c => Ok(v.clone()),
        Some(v) => Err(DataError::config(format!("{what} has {} values; expected 1 or {c} (one per channel)", v.len()))),
    }
}

impl Preprocess {
    /// Checks the normalisation settings of `config` and fits them on `train`.
    pub fn fit(config: &DataConfig, train: &Dataset) -> Result<Preprocess, DataError> {
        let c = train.shape[0];
        if !config.scale.is_finite() || config.scale == 0.0 {
            return Err(DataError::config(format!("scale must be finite and non-zero, found {}", config.scale)));
        }
        if config.mean_image && (config.mean.is_some() || config.std.is_some()) {
            return Err(DataError::config("mean_image replaces mean/std; set one or the other"));
        }
        let mean = per_channel(&config.mean, c, 0.0, "mean")?;
        let std = per_channel(&config.std, c, 1.0, "std")?;
        if let Some(bad) = mean.iter().chain(&std).find(|v| !v.is_finite()) {
            return Err(DataError::config(format!("mean and std must be finite, found {bad}")));
        }
        if let Some(bad) = std.iter().find(|&&s| s <= 0.0) {
            return Err(DataError::config(format!("std must be positive, found {bad}")));
        }
        let mean_image = config.mean_image.then(|| {
            let n = train.sample_len();
            let mut sum = vec![0u64; n];
            for img in train.images.chunks_exact(n) {
                for (s, &p) in sum.iter_mut().zip(img) {
                    *s += p as u64;
                }
            }
            let count = train.len().max(1) as f64;
            sum.iter().map(|&s| (s as f64 / count * config.scale as f64) as f32).collect()
        });
        let lut = (0..c)
            .map(|ch| {
                let mut t = [0f32; 256];
                for (p, v) in t.iter_mut().enumerate() {
                    *v = (p as f32 * config.scale - mean[ch]) / std[ch];
                }
                t
            })
            .collect();
        Ok(Preprocess { shape: train.shape, scale: config.scale, mean, std, mean_image, lut })
    }

    /// The value of `pixel` at channel `c`, CHW position `i` of an image.
    #[inline]
    pub fn value(&self, c: usize, i: usize, pixel: u8) -> f32 {
        match &self.mean_image {
            Some(m) => pixel as f32 * self.scale - m[i],
            None => self.lut[c][pixel as usize],
        }
    }
}

/// Geometry of the output samples and the training-time randomisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Augment {
    /// Input image shape [C, H, W].
    pub in_shape: [usize; 3],
    /// Zero padding on each side before the random crop (training only).
    pub pad: usize,
    /// Output [height, width].
    pub out_hw: [usize; 2],
    /// Random horizontal mirror (training only).
    pub mirror: bool,
}

impl Augment {
    /// Checks `config`'s pad / crop / mirror against the image shape.
    pub fn new(config: &DataConfig, in_shape: [usize; 3]) -> Result<Augment, DataError> {
        let [_, h, w] = in_shape;
        if config.pad > MAX_SIDE || config.crop.is_some_and(|c| c[0] > MAX_SIDE || c[1] > MAX_SIDE) {
            return Err(DataError::config(format!("pad {} and crop {:?} must be at most {MAX_SIDE}", config.pad, config.crop)));
        }
        let out_hw = config.crop.unwrap_or([h, w]);
        let (ph, pw) = (h.saturating_add(2 * config.pad), w.saturating_add(2 * config.pad));
        if out_hw[0] == 0 || out_hw[1] == 0 || out_hw[0] > ph || out_hw[1] > pw {
            return Err(DataError::config(format!(
                "crop {}x{} (height x width) must be non-empty and fit the {}x{} image padded by {} on each side",
                out_hw[0], out_hw[1], h, w, config.pad
            )));
        }
        Ok(Augment { in_shape, pad: config.pad, out_hw, mirror: config.mirror })
    }

    /// Output sample shape: [C, H', W'], or [H', C * W'] for sequences.
    pub fn out_shape(&self, sequence_rows: bool) -> Vec<usize> {
        let [c, _, _] = self.in_shape;
        let [oh, ow] = self.out_hw;
        if sequence_rows {
            vec![oh, c * ow]
        } else {
            vec![c, oh, ow]
        }
    }

    /// Top-left corner of the crop in image coordinates (negative = in the padding) and whether to mirror, for
    /// training sample `index` in `epoch`.
    pub fn train_params(&self, seed: u64, epoch: u64, index: u64) -> (isize, isize, bool) {
        let [_, h, w] = self.in_shape;
        let [oh, ow] = self.out_hw;
        let mut rng = sample_rng(seed, epoch, index);
        let oy = rng.gen_range(0..=h + 2 * self.pad - oh) as isize - self.pad as isize;
        let ox = rng.gen_range(0..=w + 2 * self.pad - ow) as isize - self.pad as isize;
        let flip = rng.gen_bool(0.5) && self.mirror;
        (oy, ox, flip)
    }

    /// Top-left corner of the centre crop used for test samples.
    pub fn test_params(&self) -> (isize, isize, bool) {
        let [_, h, w] = self.in_shape;
        let [oh, ow] = self.out_hw;
        ((h as isize - oh as isize).div_euclid(2), (w as isize - ow as isize).div_euclid(2), false)
    }
}

/// Writes preprocessed sample `index` of `ds` into `out` (length = product of the output shape). `train` =
/// `Some((seed, epoch))` randomises (crop position, mirror); `None` takes the deterministic test view.
pub fn write_sample(ds: &Dataset, index: usize, prep: &Preprocess, aug: &Augment, train: Option<(u64, u64)>, sequence_rows: bool, out: &mut [f32]) {
    let [c, h, w] = ds.shape;
    let [oh, ow] = aug.out_hw;
    let (oy, ox, flip) = match train {
        Some((seed, epoch)) => aug.train_params(seed, epoch, index as u64),
        None => aug.test_params(),
    };
    let img = ds.image(index);
    for ch in 0..c {
        for y in 0..oh {
            let sy = oy + y as isize;
            let row_ok = sy >= 0 && (sy as usize) < h;
            let base = if sequence_rows { y * c * ow + ch * ow } else { (ch * oh + y) * ow };
            let dst = &mut out[base..base + ow];
            if !row_ok {
                dst.fill(0.0);
                continue;
            }
            let src_row = (ch * h + sy as usize) * w;
            for (x, d) in dst.iter_mut().enumerate() {
                let sx = ox + if flip { (ow - 1 - x) as isize } else { x as isize };
                *d = if sx >= 0 && (sx as usize) < w {
                    let i = src_row + sx as usize;
                    prep.value(ch, i, img[i])
                } else {
                    0.0
                };
            }
        }
    }
}
