//! Preprocessing (u8 pixels to normalised f32) and training-only augmentation (zero padding + random crop or
//! random-resized crop, horizontal mirror, colour jitter, cutout), plus the sequence view (rows as time steps).
//!
//! Invariants: the random choices for a training sample come from [`sample_rng`]`(seed, epoch, index)` only
//! (index = the sample's position in the training set), so the same seed, epoch and index give the same
//! [`SampleParams`] whatever thread or batch produces it. They are drawn in a fixed order: the window (crop
//! position, or the resized crop's area, aspect ratio and position), the mirror, the jitter factors of the
//! settings that are on, the cutout centre; a setting that is off draws nothing, so adding one leaves the
//! others' streams as they were. Padding and cutout are zero in the *output* (normalised) space. Colour jitter
//! works on the whole source image in pixel space [0, 255] before normalisation: brightness (x·b), then
//! contrast (blend with the image's mean grey level), then saturation (blend with each pixel's grey,
//! 0.299 R + 0.587 G + 0.114 B), clamped to [0, 255] after each; the pixels stay fractional (not rounded).
//! Test samples are never randomised: no mirror, jitter or cutout, and a centre crop when the crop size differs
//! from the image. Output layout is CHW, or [T = rows, F = channels x width] with `sequence_rows` (row `t`
//! holds channel 0's row `t`, then channel 1's, ...; for one channel this is the same memory as CHW).

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

/// Largest pad, crop or cutout side accepted.
const MAX_SIDE: usize = 1 << 16;

/// Largest colour-jitter strength accepted (a factor in [0, 2]); the spec refuses more (`spec::settings`).
pub const MAX_JITTER: f32 = 1.0;

/// The aspect ratios (width / height) of a random-resized crop, as torchvision's `RandomResizedCrop`.
const RATIO: [f64; 2] = [3.0 / 4.0, 4.0 / 3.0];

/// Attempts at an area and aspect ratio that fit before the resized crop falls back to the centre.
const RESIZED_CROP_ATTEMPTS: usize = 10;

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

/// A pixel level's value in mean/std mode, `(level·scale − mean) / std`: the one formula behind the
/// table, fractional (jittered) levels and the vectorised rows, so all give the same bits.
#[inline(always)]
fn normalised(level: f32, scale: f32, mean: f32, std: f32) -> f32 {
    (level * scale - mean) / std
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
                    *v = normalised(p as f32, config.scale, mean[ch], std[ch]);
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

    /// The value of a fractional pixel level (after colour jitter): the same formula as [`Self::value`], so
    /// a whole level gives exactly the same value.
    #[inline]
    pub fn value_of(&self, c: usize, i: usize, pixel: f32) -> f32 {
        match &self.mean_image {
            Some(m) => pixel * self.scale - m[i],
            None => normalised(pixel, self.scale, self.mean[c], self.std[c]),
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
    /// Cutout [height, width] (training only).
    pub cutout: Option<[usize; 2]>,
    /// Colour jitter strengths [brightness, contrast, saturation], 0 = off (training only).
    pub jitter: [f32; 3],
    /// Random-resized crop: the smallest share of the padded image's area (training only).
    pub resized_crop: Option<f32>,
}

/// The random choices for one training sample, or the fixed view of a test sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleParams {
    /// The source window [top, left, height, width] in image coordinates (negative = in the padding). It is the
    /// output size, copied, except with a random-resized crop, which resamples it bilinearly to the output size.
    pub window: [isize; 4],
    /// Mirror the output horizontally.
    pub flip: bool,
    /// Brightness, contrast and saturation factors, applied in that order (1 = unchanged).
    pub jitter: [f32; 3],
    /// The centre [row, column] of the cutout in output coordinates.
    pub cutout: Option<[usize; 2]>,
}

impl Augment {
    /// Checks `config`'s augmentation settings against the image shape.
    pub fn new(config: &DataConfig, in_shape: [usize; 3]) -> Result<Augment, DataError> {
        let [c, h, w] = in_shape;
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
        if let Some(k) = config.cutout.filter(|k| k[0] == 0 || k[1] == 0 || k[0] > MAX_SIDE || k[1] > MAX_SIDE) {
            return Err(DataError::config(format!("cutout {}x{} must be at least 1x1 and at most {MAX_SIDE} on each side", k[0], k[1])));
        }
        if let Some(v) = config.jitter.iter().find(|v| !(0.0..=MAX_JITTER).contains(*v)) {
            return Err(DataError::config(format!("colour jitter strengths must lie in [0, {MAX_JITTER}], found {v}")));
        }
        if config.jitter[2] > 0.0 && c != 3 {
            return Err(DataError::config(format!("saturation needs 3 colour channels, the images have {c}")));
        }
        if let Some(s) = config.resized_crop.filter(|s| !(*s > 0.0 && *s <= 1.0)) {
            return Err(DataError::config(format!("resized_crop (the smallest share of the area) must lie in (0, 1], found {s}")));
        }
        Ok(Augment {
            in_shape,
            pad: config.pad,
            out_hw,
            mirror: config.mirror,
            cutout: config.cutout,
            jitter: config.jitter,
            resized_crop: config.resized_crop,
        })
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

    /// The random choices for training sample `index` in `epoch` (see the module's invariants for their order).
    pub fn train_params(&self, seed: u64, epoch: u64, index: u64) -> SampleParams {
        let [_, h, w] = self.in_shape;
        let [oh, ow] = self.out_hw;
        let pad = self.pad as isize;
        let mut rng = sample_rng(seed, epoch, index);
        let window = match self.resized_crop {
            None => {
                let oy = rng.gen_range(0..=h + 2 * self.pad - oh) as isize - pad;
                let ox = rng.gen_range(0..=w + 2 * self.pad - ow) as isize - pad;
                [oy, ox, oh as isize, ow as isize]
            }
            Some(min_scale) => {
                let [top, left, wh, ww] = resized_window(&mut rng, h + 2 * self.pad, w + 2 * self.pad, min_scale);
                [top as isize - pad, left as isize - pad, wh as isize, ww as isize]
            }
        };
        let flip = rng.gen_bool(0.5) && self.mirror;
        let mut jitter = [1.0f32; 3];
        for (f, &v) in jitter.iter_mut().zip(&self.jitter) {
            if v > 0.0 {
                *f = rng.gen_range((1.0 - v).max(0.0)..=1.0 + v);
            }
        }
        let cutout = self.cutout.map(|_| [rng.gen_range(0..oh), rng.gen_range(0..ow)]);
        SampleParams { window, flip, jitter, cutout }
    }

    /// The deterministic view of test samples: the centre crop, nothing else.
    pub fn test_params(&self) -> SampleParams {
        let [_, h, w] = self.in_shape;
        let [oh, ow] = self.out_hw;
        let top = (h as isize - oh as isize).div_euclid(2);
        let left = (w as isize - ow as isize).div_euclid(2);
        SampleParams { window: [top, left, oh as isize, ow as isize], flip: false, jitter: [1.0; 3], cutout: None }
    }
}

/// torchvision's `RandomResizedCrop.get_params` on a `ph` x `pw` image: an area share in [min_scale, 1] and a
/// log-uniform aspect ratio in [3/4, 4/3] until the window fits (at most 10 attempts), then a uniform position;
/// otherwise the whole image, its aspect ratio clamped to [3/4, 4/3], centred. Returns [top, left, h, w].
fn resized_window(rng: &mut ChaCha8Rng, ph: usize, pw: usize, min_scale: f32) -> [usize; 4] {
    let area = ph as f64 * pw as f64;
    let log_ratio = RATIO[0].ln()..=RATIO[1].ln();
    for _ in 0..RESIZED_CROP_ATTEMPTS {
        let target = area * rng.gen_range(min_scale as f64..=1.0);
        let ratio = rng.gen_range(log_ratio.clone()).exp();
        let ww = (target * ratio).sqrt().round() as usize;
        let wh = (target / ratio).sqrt().round() as usize;
        if (1..=pw).contains(&ww) && (1..=ph).contains(&wh) {
            return [rng.gen_range(0..=ph - wh), rng.gen_range(0..=pw - ww), wh, ww];
        }
    }
    let in_ratio = pw as f64 / ph as f64;
    let (wh, ww) = if in_ratio < RATIO[0] {
        ((pw as f64 / RATIO[0]).round() as usize, pw)
    } else if in_ratio > RATIO[1] {
        (ph, (ph as f64 * RATIO[1]).round() as usize)
    } else {
        (ph, pw)
    };
    let (wh, ww) = (wh.clamp(1, ph), ww.clamp(1, pw));
    [(ph - wh) / 2, (pw - ww) / 2, wh, ww]
}

/// Writes preprocessed sample `index` of `ds` into `out` (length = product of the output shape). `train` =
/// `Some((seed, epoch))` randomises (see [`Augment::train_params`]); `None` takes the deterministic test view.
pub fn write_sample(ds: &Dataset, index: usize, prep: &Preprocess, aug: &Augment, train: Option<(u64, u64)>, sequence_rows: bool, out: &mut [f32]) {
    let params = match train {
        Some((seed, epoch)) => aug.train_params(seed, epoch, index as u64),
        None => aug.test_params(),
    };
    write_sample_with(ds, index, prep, aug, &params, sequence_rows, out)
}

/// [`write_sample`] with the random choices given: colour jitter on the source pixels, the window copied or
/// resampled (and mirrored) into the output, then the cutout zeroed. `params.window` must lie within the padded
/// image and `params.cutout` within the output (as [`Augment::train_params`] draws them).
pub fn write_sample_with(ds: &Dataset, index: usize, prep: &Preprocess, aug: &Augment, params: &SampleParams, sequence_rows: bool, out: &mut [f32]) {
    let img = ds.image(index);
    let geometry = Geometry { shape: ds.shape, out_hw: aug.out_hw, window: params.window, flip: params.flip, sequence_rows };
    let scale = prep.scale;
    // One pair of closures per normalisation, so the per-value work has no test of which: `value`
    // for a single value, `row` for a run of a row. The common case (mean/std, no jitter) writes
    // rows with an arithmetic loop the compiler vectorises, run in AVX2 code where the machine has
    // it (the table's formula, so the same bits); the others write rows value by value.
    crate::kernels::vectorised(
        #[inline(always)]
        || {
            if params.jitter == [1.0; 3] {
                match &prep.mean_image {
                    None => geometry.write(
                        out,
                        |c, i| prep.lut[c][img[i] as usize],
                        |c, start, flip, dst| {
                            let (m, sd) = (prep.mean[c], prep.std[c]);
                            let src = &img[start..start + dst.len()];
                            if flip {
                                dst.iter_mut().zip(src.iter().rev()).for_each(|(d, &p)| *d = normalised(p as f32, scale, m, sd));
                            } else {
                                dst.iter_mut().zip(src).for_each(|(d, &p)| *d = normalised(p as f32, scale, m, sd));
                            }
                        },
                    ),
                    Some(mi) => {
                        let value = |_, i: usize| img[i] as f32 * scale - mi[i];
                        geometry.write(out, value, row_of(value))
                    }
                }
            } else {
                let pixels = jitter_pixels(img, ds.shape, params.jitter);
                let value = |c, i: usize| prep.value_of(c, i, pixels[i]);
                geometry.write(out, value, row_of(value));
            }
        },
    );
    if let (Some([cy, cx]), Some([kh, kw])) = (params.cutout, aug.cutout) {
        let [c, _, _] = ds.shape;
        let [oh, ow] = aug.out_hw;
        let rows = cy.saturating_sub(kh / 2)..(cy + kh - kh / 2).min(oh);
        let cols = cx.saturating_sub(kw / 2)..(cx + kw - kw / 2).min(ow);
        for ch in 0..c {
            for y in rows.clone() {
                let base = geometry.row_start(ch, y);
                out[base + cols.start..base + cols.end].fill(0.0);
            }
        }
    }
}

/// Colour jitter of one CHW image in pixel space (see the module's invariants): the fractional pixel levels.
pub fn jitter_pixels(img: &[u8], shape: [usize; 3], [brightness, contrast, saturation]: [f32; 3]) -> Vec<f32> {
    let [c, h, w] = shape;
    let n = h * w;
    let mut px: Vec<f32> = img.iter().map(|&p| p as f32).collect();
    let blend = |x: f32, other: f32, factor: f32| (factor * x + (1.0 - factor) * other).clamp(0.0, 255.0);
    if brightness != 1.0 {
        px.iter_mut().for_each(|x| *x = blend(*x, 0.0, brightness));
    }
    if contrast != 1.0 {
        let mean = if c == 3 {
            (0..n).map(|i| 0.299 * px[i] as f64 + 0.587 * px[n + i] as f64 + 0.114 * px[2 * n + i] as f64).sum::<f64>() / n.max(1) as f64
        } else {
            px.iter().map(|&x| x as f64).sum::<f64>() / px.len().max(1) as f64
        } as f32;
        px.iter_mut().for_each(|x| *x = blend(*x, mean, contrast));
    }
    if saturation != 1.0 && c == 3 {
        for i in 0..n {
            let grey = 0.299 * px[i] + 0.587 * px[n + i] + 0.114 * px[2 * n + i];
            for ch in 0..3 {
                px[ch * n + i] = blend(px[ch * n + i], grey, saturation);
            }
        }
    }
    px
}

/// A `row` for [`Geometry::write`] that writes value by value: `dst[k] = value(c, start + k)`, or
/// `value(c, start + len − 1 − k)` when `flip`.
#[inline(always)]
fn row_of(value: impl Fn(usize, usize) -> f32) -> impl Fn(usize, usize, bool, &mut [f32]) {
    move |c, start, flip, dst| {
        let last = dst.len().saturating_sub(1);
        for (k, d) in dst.iter_mut().enumerate() {
            *d = value(c, start + if flip { last - k } else { k });
        }
    }
}

/// Where the output's values come from: a window of the (padded) image, copied or resampled, maybe mirrored.
struct Geometry {
    shape: [usize; 3],
    out_hw: [usize; 2],
    window: [isize; 4],
    flip: bool,
    sequence_rows: bool,
}

impl Geometry {
    /// Index in the output of channel `ch`, row `y`, column 0.
    #[inline]
    fn row_start(&self, ch: usize, y: usize) -> usize {
        let [c, _, _] = self.shape;
        let [oh, ow] = self.out_hw;
        if self.sequence_rows {
            y * c * ow + ch * ow
        } else {
            (ch * oh + y) * ow
        }
    }

    /// Fills `out`; `value(c, i)` is the normalised value at CHW position `i` (channel `c`) of the source image,
    /// `row(c, i, flip, dst)` writes the values from position `i` on into `dst` (backwards when `flip`).
    #[inline(always)]
    fn write(&self, out: &mut [f32], value: impl Fn(usize, usize) -> f32, row: impl Fn(usize, usize, bool, &mut [f32])) {
        let [c, h, w] = self.shape;
        let [oh, ow] = self.out_hw;
        let [top, left, wh, ww] = self.window;
        if wh == oh as isize && ww == ow as isize {
            // Output column x reads source column left + x (mirrored: left + ow − 1 − x); the columns
            // inside the image are one run [lo, hi), the rest is padding (zero).
            let (lo, hi) = if self.flip {
                ((left + ow as isize - w as isize).max(0), (left + ow as isize).min(ow as isize))
            } else {
                ((-left).max(0), (w as isize - left).min(ow as isize))
            };
            let (lo, hi) = (lo.max(0) as usize, hi.max(lo).max(0) as usize);
            for ch in 0..c {
                for y in 0..oh {
                    let sy = top + y as isize;
                    let base = self.row_start(ch, y);
                    let dst = &mut out[base..base + ow];
                    if sy < 0 || sy as usize >= h || lo >= hi {
                        dst.fill(0.0);
                        continue;
                    }
                    let src_row = (ch * h + sy as usize) * w;
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
                    // the source columns of the run, in increasing order
                    let first = if self.flip { left + ow as isize - hi as isize } else { left + lo as isize };
                    row(ch, src_row + first as usize, self.flip, &mut dst[lo..hi]);
                }
            }
            return;
        }
        // Bilinear resampling with half-pixel centres (PyTorch's `align_corners=False`), neighbours clamped to
        // the window: (source index 0, index 1, weight of index 1) per output row and column.
        let taps = |start: isize, len: isize, n: usize| -> Vec<(isize, isize, f32)> {
            let step = len as f64 / n as f64;
            (0..n)
                .map(|o| {
                    let s = ((o as f64 + 0.5) * step - 0.5).max(0.0);
                    let i0 = (s.floor() as isize).min(len - 1);
                    let i1 = (i0 + 1).min(len - 1);
                    (start + i0, start + i1, (s - i0 as f64) as f32)
                })
                .collect()
        };
        let rows = taps(top, wh, oh);
        let cols = taps(left, ww, ow);
        let at = |ch: usize, y: isize, x: isize| -> f32 {
            if y >= 0 && (y as usize) < h && x >= 0 && (x as usize) < w {
                value(ch, (ch * h + y as usize) * w + x as usize)
            } else {
                0.0
            }
        };
        for ch in 0..c {
            for (y, &(y0, y1, fy)) in rows.iter().enumerate() {
                let base = self.row_start(ch, y);
                for (x, d) in out[base..base + ow].iter_mut().enumerate() {
                    let (x0, x1, fx) = cols[if self.flip { ow - 1 - x } else { x }];
                    let upper = (1.0 - fx) * at(ch, y0, x0) + fx * at(ch, y0, x1);
                    let lower = (1.0 - fx) * at(ch, y1, x0) + fx * at(ch, y1, x1);
                    *d = (1.0 - fy) * upper + fy * lower;
                }
            }
        }
    }
}
