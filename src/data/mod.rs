//! The data layer: loaders (CIFAR-10 binary, MNIST idx, image folders, a synthetic generator), preprocessing and
//! training-only augmentation, and seeded, resumable, prefetched batch streams.
//!
//! Flow: a [`DataConfig`] names a [`Source`] and the preprocessing; [`Pipeline::load`] reads the source into two
//! in-memory [`Dataset`]s (train and test, pixels kept as `u8` in CHW order), fits the [`Preprocess`] on the
//! training set, and hands out [`BatchStream`]s of f32 [`Batch`]es.
//!
//! Invariants: nothing here prints or panics on file content or configuration; every failure is a
//! [`DataError`] naming the file. Every batch is a pure function of (config, seed, iteration), so runs are
//! reproducible regardless of thread count and a stream started at iteration `k` yields exactly what an
//! uninterrupted run yields from `k` on.

mod augment;
mod batches;
mod cifar;
mod error;
mod image_folder;
mod jpeg_check;
mod mnist;
mod synthetic;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use augment::{sample_rng, write_sample_with, Augment, Preprocess, SampleParams};
pub use batches::{epoch_order, Batch, BatchStream, SampleWriter, StreamStats, MAX_PREFETCH};
pub use cifar::{load_cifar10, load_cifar10_with, parse_cifar_records, CIFAR10_CLASSES, CIFAR_FILE_RECORDS, CIFAR_RECORD};
pub use error::{DataError, CIFAR_HINT, FOLDER_HINT, MNIST_HINT};
pub use image_folder::{folder_class_names, folder_image_counts, load_folder, read_image};
pub use mnist::{load_idx_pair, load_mnist, parse_idx, read_idx_file, Idx, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, MNIST_FILES};
pub use synthetic::{synthetic, synthetic_split, SyntheticSpec};

/// An in-memory labelled image set. Pixels are `u8`, one image after another, each in CHW order.
///
/// Invariant (checked by [`Dataset::new`]): `images.len() == labels.len() * C * H * W` and every label is
/// below `classes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Vec<u32>,
    /// [channels, height, width] of one image.
    pub shape: [usize; 3],
    pub classes: usize,
    /// Class names in label order (may be empty when the source has none).
    pub class_names: Vec<String>,
    /// Where the data came from (a path or a description), for messages.
    pub origin: PathBuf,
}

impl Dataset {
    /// Builds a data set, checking the invariants.
    pub fn new(images: Vec<u8>, labels: Vec<u32>, shape: [usize; 3], classes: usize, class_names: Vec<String>, origin: PathBuf) -> Result<Dataset, DataError> {
        let per = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let ok_len = per.and_then(|p| p.checked_mul(labels.len())) == Some(images.len());
        if !ok_len || per == Some(0) {
            return Err(DataError::Inconsistent {
                path: origin,
                message: format!(
                    "expected {} labels x {:?} = {:?} pixel bytes, found {}",
                    labels.len(),
                    shape,
                    per.and_then(|p| p.checked_mul(labels.len())),
                    images.len()
                ),
            });
        }
        if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= classes) {
            return Err(DataError::LabelOutOfRange { path: origin, record: i as u64, offset: 0, label: l, classes });
        }
        Ok(Dataset { images, labels, shape, classes, class_names, origin })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes (= values) per image: C*H*W.
    pub fn sample_len(&self) -> usize {
        self.shape[0] * self.shape[1] * self.shape[2]
    }

    /// The pixels of image `i` (CHW). Panics if `i >= len()` (a caller bug, not user input).
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.sample_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// How many samples carry each label.
    pub fn label_histogram(&self) -> Vec<usize> {
        let mut h = vec![0; self.classes];
        for &l in &self.labels {
            h[l as usize] += 1;
        }
        h
    }

    /// The samples at `indices`, in that order (indices past the end are skipped).
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let n = self.sample_len();
        let mut images = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices.iter().filter(|&&i| i < self.len()) {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Dataset { images, labels, ..self.clone_meta() }
    }

    /// The first `n` samples (all of them if there are fewer).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset { images: self.images[..n * self.sample_len()].to_vec(), labels: self.labels[..n].to_vec(), ..self.clone_meta() }
    }

    /// Splits off a seeded, stratified fraction as a test set: per class, `round(fraction * count)` samples
    /// (chosen by a seeded shuffle) go to the second result; order within each part follows the original order.
    pub fn split_fraction(&self, test_fraction: f32, seed: u64) -> Result<(Dataset, Dataset), DataError> {
        use rand::seq::SliceRandom;
        if !(0.0..1.0).contains(&test_fraction) {
            return Err(DataError::config(format!("test fraction must be in [0, 1), found {test_fraction}")));
        }
        let mut is_test = vec![false; self.len()];
        for class in 0..self.classes {
            let mut members: Vec<usize> = (0..self.len()).filter(|&i| self.labels[i] as usize == class).collect();
            let k = (test_fraction as f64 * members.len() as f64).round() as usize;
            let mut rng = sample_rng(seed ^ 0x5EED_5B17, 0, class as u64);
            members.shuffle(&mut rng);
            for &i in &members[..k.min(members.len())] {
                is_test[i] = true;
            }
        }
        let train: Vec<usize> = (0..self.len()).filter(|&i| !is_test[i]).collect();
        let test: Vec<usize> = (0..self.len()).filter(|&i| is_test[i]).collect();
        Ok((self.select(&train), self.select(&test)))
    }

    /// Per-channel mean and standard deviation of `pixel * scale` over the whole set (for "normalise with
    /// statistics of the training set"). Returns zeros / ones for an empty set.
    pub fn channel_mean_std(&self, scale: f32) -> (Vec<f32>, Vec<f32>) {
        let [c, h, w] = self.shape;
        let plane = h * w;
        let mut sum = vec![0f64; c];
        let mut sq = vec![0f64; c];
        for img in self.images.chunks_exact(self.sample_len().max(1)) {
            for ch in 0..c {
                let (mut s, mut q) = (0u64, 0u64);
                for &p in &img[ch * plane..(ch + 1) * plane] {
                    s += p as u64;
                    q += (p as u64) * (p as u64);
                }
                sum[ch] += s as f64;
                sq[ch] += q as f64;
            }
        }
        let count = (self.len() * plane) as f64;
        if count == 0.0 {
            return (vec![0.0; c], vec![1.0; c]);
        }
        let s = scale as f64;
        let mean: Vec<f32> = sum.iter().map(|&v| (v / count * s) as f32).collect();
        let std: Vec<f32> = sum
            .iter()
            .zip(&sq)
            .map(|(&v, &q)| {
                let m = v / count;
                ((q / count - m * m).max(0.0).sqrt() * s) as f32
            })
            .collect();
        (mean, std)
    }

    fn clone_meta(&self) -> Dataset {
        Dataset {
            images: Vec::new(),
            labels: Vec::new(),
            shape: self.shape,
            classes: self.classes,
            class_names: self.class_names.clone(),
            origin: self.origin.clone(),
        }
    }
}

/// A training set and a test set of the same shape and classes.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub train: Dataset,
    pub test: Dataset,
}

/// Where the samples come from. Serialises as e.g. `{"mnist": {"root": "data/mnist-small"}}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// CIFAR-10 binary version: `root/data_batch_{1..5}.bin` (train) and `root/test_batch.bin` (test);
    /// `root/cifar-10-batches-bin/` is also looked in.
    Cifar10 { root: PathBuf },
    /// MNIST idx files (raw or .gz) under their standard names in `root` (train: `train-*`, test: `t10k-*`).
    Mnist { root: PathBuf },
    /// Seeded synthetic images with class-dependent patterns.
    Synthetic(SyntheticSpec),
    /// One sub-folder per class of PNG/JPEG images. If `root/train` and `root/test` exist they are the split;
    /// otherwise `test_fraction` of each class (seeded) becomes the test set. Images must be `shape`
    /// ([C, H, W], C = 1 grey or 3 RGB) unless `resize` is set, in which case they are resized to it.
    Folder { root: PathBuf, shape: [usize; 3], test_fraction: f32, resize: bool },
}

/// Everything the data layer needs to know. It has no defaults of its own: `expc` builds it from the
/// resolved spec (`run::data_config`), whose settings each have one default (`docs/language.md`).
///
/// Preprocessing of a pixel `p` in channel `c` (CHW position `i`): `x = p * scale`, then either
/// `x - mean_image[i]` (when `mean_image`) or `(x - mean[c]) / std[c]` (missing mean = 0, missing std = 1; a
/// one-element vector applies to every channel).
///
/// Serialisable (e.g. to record it in a run directory).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataConfig {
    pub source: Source,
    /// Samples per training batch.
    pub train_batch: usize,
    /// Samples per test batch.
    pub test_batch: usize,
    pub scale: f32,
    pub mean: Option<Vec<f32>>,
    pub std: Option<Vec<f32>>,
    /// Subtract the mean image of the (scaled) training set instead of per-channel mean/std.
    pub mean_image: bool,
    /// Zero padding (in preprocessed units, i.e. zeros after normalisation) on each side before a random crop.
    /// Training only.
    pub pad: usize,
    /// Output height and width; `None` keeps the image size. Training crops at random from the padded image;
    /// test batches take the centre.
    pub crop: Option<[usize; 2]>,
    /// Random horizontal mirror with probability 0.5, training only.
    pub mirror: bool,
    /// Cutout [height, width]: a rectangle of the output zeroed around a uniformly random output pixel,
    /// clipped at the borders. Training only.
    pub cutout: Option<[usize; 2]>,
    /// Colour jitter strengths [brightness, contrast, saturation] in [0, 1] (0 = off): each factor is drawn
    /// from [1 - v, 1 + v] and applied to the pixels before normalisation. Training only.
    pub jitter: [f32; 3],
    /// Random-resized crop: the smallest share of the padded image's area a training window covers, in (0, 1];
    /// the window (aspect ratio 3/4 to 4/3) is resampled bilinearly to the output size. Training only.
    pub resized_crop: Option<f32>,
    /// Present each sample as a sequence: T = height steps of F = channels * width features, layout [T, F].
    pub sequence_rows: bool,
    /// Visit the training set in a new seeded order every epoch (`false`: file order).
    pub shuffle: bool,
    /// Training samples set aside (a seeded choice, kept in file order) as a validation set.
    pub validation: usize,
    pub seed: u64,
    /// Batches prepared ahead of the consumer (bounded channel depth, at least 1).
    pub prefetch: usize,
    /// Threads assembling one batch (1 = only the prefetch thread). Results do not depend on it.
    pub workers: usize,
    /// Drop the last, smaller training batch of each epoch.
    pub drop_last: bool,
    /// Use only the first N training / test samples (after loading, before anything else).
    pub limit_train: Option<usize>,
    pub limit_test: Option<usize>,
}

/// Seeds the choice of validation samples (independent of shuffling and augmentation).
const VALIDATION_SEED: u64 = 0x7A11_DA7E;

/// Loads the train and test parts of a source (no preprocessing, no limits applied).
pub fn load_source(source: &Source, seed: u64) -> Result<Split, DataError> {
    match source {
        Source::Cifar10 { root } => load_cifar10(root),
        Source::Mnist { root } => load_mnist(root),
        Source::Synthetic(spec) => synthetic_split(spec),
        Source::Folder { root, shape, test_fraction, resize } => load_folder(root, *shape, *test_fraction, *resize, seed),
    }
}

/// Loaded data plus its fitted preprocessing: the thing that hands out batch streams. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub train: Arc<Dataset>,
    /// Set aside from the training set by `validation` (already removed from `train`).
    pub validation: Option<Arc<Dataset>>,
    pub test: Arc<Dataset>,
    pub prep: Arc<Preprocess>,
    pub augment: Augment,
    pub config: DataConfig,
    /// Streams leave writing the samples to the consumer ([`Pipeline::deferred_writing`]).
    deferred: bool,
}

impl Pipeline {
    /// Loads the source named by `config` and fits the preprocessing on its training set.
    pub fn load(config: &DataConfig) -> Result<Pipeline, DataError> {
        let split = load_source(&config.source, config.seed)?;
        Pipeline::from_split(config, split)
    }

    /// Builds a pipeline from data already in memory (`config.source` is then only informative).
    pub fn from_split(config: &DataConfig, split: Split) -> Result<Pipeline, DataError> {
        let Split { mut train, mut test } = split;
        if let Some(n) = config.limit_train {
            train = train.take(n);
        }
        if let Some(n) = config.limit_test {
            test = test.take(n);
        }
        if train.shape != test.shape || train.classes != test.classes {
            return Err(DataError::Inconsistent {
                path: train.origin.clone(),
                message: format!(
                    "train and test parts differ: train {:?} with {} classes, test {:?} with {} classes",
                    train.shape, train.classes, test.shape, test.classes
                ),
            });
        }
        if train.is_empty() {
            return Err(DataError::Empty { path: train.origin.clone(), what: "the training set has no samples".into(), hint: String::new() });
        }
        if config.train_batch == 0 || config.test_batch == 0 {
            return Err(DataError::config(format!("batch sizes must be at least 1, found train {} and test {}", config.train_batch, config.test_batch)));
        }
        if config.drop_last && train.len() < config.train_batch {
            return Err(DataError::config(format!("drop_last with {} training samples and batches of {} leaves no batch", train.len(), config.train_batch)));
        }
        let validation = if config.validation > 0 {
            if config.validation >= train.len() {
                return Err(DataError::config(format!(
                    "a validation set of {} leaves none of the {} training samples to train on",
                    config.validation,
                    train.len()
                )));
            }
            use rand::seq::SliceRandom;
            let mut order: Vec<usize> = (0..train.len()).collect();
            order.shuffle(&mut sample_rng(config.seed ^ VALIDATION_SEED, 0, 0));
            let mut held: Vec<usize> = order[..config.validation].to_vec();
            held.sort_unstable();
            let mut is_held = vec![false; train.len()];
            held.iter().for_each(|&i| is_held[i] = true);
            let kept: Vec<usize> = (0..train.len()).filter(|&i| !is_held[i]).collect();
            let v = train.select(&held);
            train = train.select(&kept);
            Some(Arc::new(v))
        } else {
            None
        };
        let prep = Preprocess::fit(config, &train)?;
        let augment = Augment::new(config, train.shape)?;
        Ok(Pipeline { train: Arc::new(train), validation, test: Arc::new(test), prep: Arc::new(prep), augment, config: config.clone(), deferred: false })
    }

    /// The same pipeline, whose streams hand out batches without their inputs: the consumer
    /// writes each sample where and when it needs it ([`Batch::write_sample`]), and the stream's
    /// thread only draws the order, labels and indices. The CPU engine writes the samples on
    /// the worker that computes them, so preprocessing is shared out evenly between the
    /// workers and leaves each sample in the cache of the core that reads it next.
    pub fn deferred_writing(self) -> Pipeline {
        Pipeline { deferred: true, ..self }
    }

    /// The shape of one preprocessed sample: [C, H', W'] or, with `sequence_rows`, [T = H', F = C * W'].
    pub fn sample_shape(&self) -> Vec<usize> {
        self.augment.out_shape(self.config.sequence_rows)
    }

    /// Values per preprocessed sample.
    pub fn sample_len(&self) -> usize {
        self.sample_shape().iter().product()
    }

    pub fn classes(&self) -> usize {
        self.train.classes
    }

    /// Training batches per epoch.
    pub fn steps_per_epoch(&self) -> u64 {
        batches::steps_per_epoch(self.train.len(), self.config.train_batch, self.config.drop_last)
    }

    /// Shuffled, augmented training batches from global iteration `start_iter` (0-based; epoch =
    /// `start_iter / steps_per_epoch()`) on, endlessly. Identical to skipping `start_iter` batches of a stream
    /// started at 0.
    pub fn train_stream(&self, start_iter: u64) -> BatchStream {
        BatchStream::train(self.clone(), start_iter)
    }

    /// The same pipeline evaluating on the validation set instead of the test set (`None` without
    /// `validation`): its `test_stream` reads the validation samples.
    pub fn validation_pipeline(&self) -> Option<Pipeline> {
        let v = self.validation.clone()?;
        Some(Pipeline { test: v, validation: None, ..self.clone() })
    }

    /// Test batches in file order, not augmented (centre crop if `crop` is set), one pass.
    pub fn test_stream(&self) -> BatchStream {
        BatchStream::test(self.clone())
    }

    /// Training set in order, unrandomised (like test batches, `test_batch` per batch), one pass: for measuring
    /// training accuracy.
    pub fn train_eval_stream(&self) -> BatchStream {
        BatchStream::eval_train(self.clone())
    }

    /// One preprocessed training sample exactly as the training stream would produce it in `epoch`.
    /// `out.len()` must be `sample_len()` (panics otherwise: a caller bug, not bad input).
    pub fn train_sample(&self, epoch: u64, index: usize, out: &mut [f32]) {
        augment::write_sample(&self.train, index, &self.prep, &self.augment, Some((self.config.seed, epoch)), self.config.sequence_rows, out)
    }
}

/// Looks for `name` (or `name.gz`, or an alternative spelling) in `root`; first existing wins.
pub(crate) fn find_first(root: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| root.join(n)).find(|p| p.is_file())
}
