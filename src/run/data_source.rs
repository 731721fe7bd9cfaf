//! The spec's `data` section plus the machine's dataset roots → the data layer's configuration.

use super::error::RunError;
use crate::config::Settings;
use crate::data::{DataConfig, Source, SyntheticSpec};
use crate::diagnostic::Diagnostic;
use crate::graph::DataFacts;
use crate::spec::{DataSpec, Dataset, Mean, SequenceMode};

/// The share of each class an image folder without train/ and test/ gives to the test set.
pub const FOLDER_TEST_FRACTION: f32 = 0.1;

/// Batches the loader thread prepares ahead of training.
const PREFETCH: usize = 3;

fn root_missing(name: &str) -> RunError {
    let extra = if name == "cifar10" {
        " (the official binary version: data_batch_1..5.bin and test_batch.bin)"
    } else if name == "mnist" {
        " (the four idx files, raw or .gz; the repository ships 5,000 digits in data/mnist-small)"
    } else {
        ""
    };
    RunError::new("E0520", format!("no folder is configured for dataset `{name}`{extra}"))
        .help(format!("add `{name} = \"PATH\"` under [data] in expc.toml, pass `--data {name}=PATH`, or set EXPC_DATA_{}", name.to_uppercase()))
}

pub fn data_config(spec: &DataSpec, settings: &Settings, seed: u64) -> Result<DataConfig, RunError> {
    let source = match &spec.dataset {
        Dataset::Cifar10 => Source::Cifar10 { root: settings.data_root("cifar10").ok_or_else(|| root_missing("cifar10"))?.to_path_buf() },
        Dataset::Mnist => Source::Mnist { root: settings.data_root("mnist").ok_or_else(|| root_missing("mnist"))?.to_path_buf() },
        Dataset::Synthetic { shape, classes, train, test } => {
            let s: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            let shape3 = match s.as_slice() {
                [c, h, w] => [*c, *h, *w],
                [h, w] => [1, *h, *w],
                [f] => [1, 1, *f],
                _ => [1, 1, 1],
            };
            Source::Synthetic(SyntheticSpec { shape: shape3, classes: *classes as usize, train: *train as usize, test: *test as usize, seed, noise: 30.0 })
        }
        Dataset::Folder { root, shape } => {
            let path = settings.data_root(root).map(|p| p.to_path_buf()).unwrap_or_else(|| root.into());
            let s: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            let shape3 = match s.as_slice() {
                [c, h, w] => [*c, *h, *w],
                [h, w] => [1, *h, *w],
                _ => return Err(RunError::new("E0521", format!("an image folder needs a C×H×W shape, got {shape:?}"))),
            };
            Source::Folder { root: path, shape: shape3, test_fraction: FOLDER_TEST_FRACTION, resize: false }
        }
    };
    Ok(DataConfig {
        source,
        train_batch: spec.batch as usize,
        test_batch: spec.test_batch as usize,
        scale: spec.scale as f32,
        mean: match &spec.mean {
            Mean::PerChannel(m) => Some(m.iter().map(|&x| x as f32).collect()),
            Mean::None | Mean::Image => None,
        },
        std: spec.std.as_ref().map(|s| s.iter().map(|&x| x as f32).collect()),
        mean_image: spec.mean == Mean::Image,
        pad: spec.augment.pad as usize,
        crop: spec.augment.crop.map(|[h, w]| [h as usize, w as usize]),
        mirror: spec.augment.mirror,
        cutout: spec.augment.cutout.map(|[h, w]| [h as usize, w as usize]),
        jitter: spec.augment.jitter().map(|v| v as f32),
        resized_crop: spec.augment.resized_crop.map(|s| s as f32),
        sequence_rows: spec.sequence == Some(SequenceMode::Rows),
        shuffle: spec.shuffle,
        validation: spec.validation as usize,
        seed,
        // Machine settings, not experiment settings: how many batches are prepared ahead, by how
        // many threads (results do not depend on either).
        prefetch: PREFETCH,
        workers: 1,
        drop_last: false,
        limit_train: None,
        limit_test: None,
    })
}

/// What the data is, known before any of it is read: the spec's facts, the dataset root checked
/// to exist, and for an image folder its classes (the sub-folder names). `compile` checks these
/// against the model (E0220, E0221, E0222) in the same pass as every other check.
pub fn data_facts(spec: &DataSpec, settings: &Settings) -> Result<DataFacts, Diagnostic> {
    let mut facts = DataFacts::from_spec(spec);
    let located = |e: RunError| {
        let mut d = Diagnostic::error(e.code, e.message).primary(spec.span, "the dataset of this experiment");
        if let Some(h) = e.help {
            d = d.help(h);
        }
        d
    };
    match &spec.dataset {
        Dataset::Cifar10 | Dataset::Mnist => {
            let name = if spec.dataset == Dataset::Cifar10 { "cifar10" } else { "mnist" };
            let root = settings.data_root(name).ok_or_else(|| located(root_missing(name)))?;
            if !root.is_dir() {
                return Err(located(
                    RunError::new("E0520", format!("the folder `{}` configured for dataset `{name}` does not exist", root.display()))
                        .help(format!("fix `{name} = \"…\"` under [data] in expc.toml, or pass `--data {name}=PATH`")),
                ));
            }
        }
        Dataset::Folder { root, .. } => {
            let path = settings.data_root(root).map(|p| p.to_path_buf()).unwrap_or_else(|| root.into());
            let layout = "an image folder holds one sub-folder per class (ROOT/<class>/*.png), or train/ and test/ with one per class";
            if !path.is_dir() {
                return Err(located(
                    RunError::new("E0520", format!("the image folder `{}` does not exist", path.display()))
                        .help(format!("{layout}; give its path, or a key of [data] in expc.toml (`--data {root}=PATH` on the command line)")),
                ));
            }
            let classes = crate::data::folder_class_names(&path)
                .map_err(|_| located(RunError::new("E0520", format!("the image folder `{}` has no class sub-folders", path.display())).help(layout)))?;
            facts.classes = Some(classes.len() as u64);
            if let Ok((train, test)) = crate::data::folder_image_counts(&path, FOLDER_TEST_FRACTION) {
                facts.train_images = Some(train);
                facts.test_images = Some(test);
            }
            facts.origin = format!("the image folder `{}`", path.display());
        }
        Dataset::Synthetic { .. } => {}
    }
    Ok(facts)
}
