//! The spec's `data` section plus the machine's dataset roots → the data layer's configuration.

use super::error::RunError;
use crate::config::Settings;
use crate::data::{DataConfig, Source, SyntheticSpec};
use crate::spec::{DataSpec, Dataset, Mean, SequenceMode};

fn root_missing(name: &str) -> RunError {
    let extra = if name == "cifar10" {
        " (the official binary version: data_batch_1..5.bin and test_batch.bin)"
    } else if name == "mnist" {
        " (the four idx files, raw or .gz; the repository ships 5,000 digits in data/mnist-small)"
    } else {
        ""
    };
    RunError::new("E0520", format!("no folder is configured for dataset `{name}`{extra}")).help(format!(
        "add `{name} = \"PATH\"` under [data] in expc.toml, pass `--data {name}=PATH`, or set EXPC_DATA_{}",
        name.to_uppercase()
    ))
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
            Source::Folder { root: path, shape: shape3, test_fraction: 0.1, resize: false }
        }
    };
    let mut c = DataConfig::new(source);
    c.train_batch = spec.batch as usize;
    c.test_batch = spec.test_batch as usize;
    c.scale = spec.scale as f32;
    match &spec.mean {
        Mean::None => {}
        Mean::PerChannel(m) => c.mean = Some(m.iter().map(|&x| x as f32).collect()),
        Mean::Image => c.mean_image = true,
    }
    c.std = spec.std.as_ref().map(|s| s.iter().map(|&x| x as f32).collect());
    c.pad = spec.augment.pad as usize;
    c.crop = spec.augment.crop.map(|[h, w]| [h as usize, w as usize]);
    c.mirror = spec.augment.mirror;
    c.sequence_rows = spec.sequence == Some(SequenceMode::Rows);
    c.seed = seed;
    Ok(c)
}
