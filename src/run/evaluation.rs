//! Using a trained model: `expc eval` (loss, top-1/top-k accuracy, per-class accuracy and a
//! confusion matrix over a whole split) and `expc predict` (the top classes of image files).
//!
//! Both read a run folder's model file (`best.safetensors` by default, or any checkpoint) into
//! the engine built from the run's recorded, re-compiled spec, and preprocess data exactly as the
//! run's evaluations did (scaling, mean/std or mean image, the centre crop).

use super::checkpoint::{self, Tensors};
use super::driver::latest_checkpoint;
use super::engine_model;
use super::error::RunError;
use crate::compile::Checked;
use crate::config::Settings;
use crate::data::{Batch, DataError, Pipeline, Split as DataSplit};
use crate::lower::Plan;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Which part of the data an evaluation reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Test,
    /// The `validation N` images set aside from the training set.
    Validation,
    Train,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClassAccuracy {
    pub class: String,
    pub samples: u64,
    pub correct: u64,
    pub accuracy: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    pub experiment: String,
    pub checkpoint: PathBuf,
    pub split: Split,
    pub samples: u64,
    pub loss: f64,
    pub top1: f64,
    /// `k` and the top-k accuracy.
    pub top_k: (usize, f64),
    pub per_class: Vec<ClassAccuracy>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
    pub class_names: Vec<String>,
}

/// A model file and the run folder it belongs to, from what the user named: a run folder (its
/// `best.safetensors`, else its newest checkpoint) or a checkpoint file inside one.
pub fn locate_model(path: &Path) -> Result<(PathBuf, PathBuf), RunError> {
    let not_a_run = |p: &Path| {
        RunError::new("E0505", format!("`{}` is not a run folder nor a checkpoint inside one", p.display()))
            .help("name a folder made by `expc run` (it holds run.json) or a file in its checkpoints/")
    };
    if path.is_dir() {
        if !path.join("run.json").is_file() {
            return Err(not_a_run(path));
        }
        let best = path.join("checkpoints").join("best.safetensors");
        if best.is_file() {
            return Ok((path.to_path_buf(), best));
        }
        return match latest_checkpoint(path) {
            Some((_, model, _)) => Ok((path.to_path_buf(), model)),
            None => Err(RunError::new("E0505", format!("the run folder `{}` has no checkpoint yet", path.display()))
                .help("train it (or `expc resume` it) until a checkpoint is written")),
        };
    }
    let dir = path.parent().and_then(Path::parent).filter(|d| d.join("run.json").is_file()).ok_or_else(|| not_a_run(path))?;
    if !path.is_file() {
        return Err(not_a_run(path));
    }
    Ok((dir.to_path_buf(), path.to_path_buf()))
}

fn data_err(e: DataError) -> RunError {
    let mut r = RunError::new("E0520", e.to_string());
    if let Some(p) = e.path() {
        r.message = format!("{} (reading `{}`)", r.message, p.display());
    }
    r
}

/// The class names of the run's data, `0`, `1`, … where it has none.
fn class_names(data: &Pipeline, classes: usize) -> Vec<String> {
    let names = &data.train.class_names;
    if names.len() == classes {
        names.clone()
    } else {
        (0..classes).map(|c| c.to_string()).collect()
    }
}

fn load_model(checked: &Checked, plan: &Plan, model_file: &Path, threads: usize) -> Result<Box<dyn engine_model::EngineModel>, RunError> {
    let mut model = engine_model::build(plan, &checked.experiment, threads, 0)?;
    let tensors: Tensors = checkpoint::load_verified(model_file)?;
    model.load_weights(&tensors)?;
    Ok(model)
}

/// Evaluates a model file over a whole split; `top` is the k of the top-k accuracy.
pub fn evaluate(
    checked: &Checked,
    plan: &Plan,
    settings: &Settings,
    model_file: &Path,
    split: Split,
    top: usize,
    threads: usize,
) -> Result<Evaluation, RunError> {
    let exp = &checked.experiment;
    let config = super::data_source::data_config(&exp.data, settings, exp.train.seed)?;
    let data = Pipeline::load(&config).map_err(data_err)?.deferred_writing();
    let mut model = load_model(checked, plan, model_file, threads)?;
    let classes = plan.classes();
    let top = top.clamp(1, classes.max(1));
    let mut confusion = vec![vec![0u64; classes]; classes];
    let (mut loss, mut samples, mut in_top_k) = (0.0, 0u64, 0u64);
    let batches: Box<dyn Iterator<Item = Batch>> = match split {
        Split::Test => Box::new(data.test_stream()),
        Split::Validation => match data.validation_pipeline() {
            Some(v) => Box::new(v.test_stream()),
            None => {
                return Err(
                    RunError::new("E0532", "this run has no validation set").help("add `validation N` to its `data` section, or evaluate `--split test`")
                )
            }
        },
        Split::Train => Box::new(data.train_eval_stream()),
    };
    for b in batches {
        let (l, _, scores) = model.scores(&b)?;
        loss += l;
        for (s, &label) in b.labels.iter().enumerate() {
            let row = &scores[s * classes..(s + 1) * classes];
            let label = label as usize;
            // Ranks as the accuracy does: ties go to the smaller class index.
            let above = (0..classes).filter(|&k| row[k] > row[label] || (row[k] == row[label] && k < label)).count();
            in_top_k += u64::from(above < top);
            let predicted = (0..classes).fold(0, |best, k| if row[k] > row[best] { k } else { best });
            confusion[label][predicted] += 1;
        }
        samples += b.n as u64;
    }
    if samples == 0 {
        return Err(RunError::new("E0532", "the split is empty: nothing to evaluate on"));
    }
    let names = class_names(&data, classes);
    let per_class = (0..classes)
        .map(|c| {
            let total: u64 = confusion[c].iter().sum();
            ClassAccuracy {
                class: names[c].clone(),
                samples: total,
                correct: confusion[c][c],
                accuracy: if total > 0 { confusion[c][c] as f64 / total as f64 } else { 0.0 },
            }
        })
        .collect();
    let correct: u64 = (0..classes).map(|c| confusion[c][c]).sum();
    Ok(Evaluation {
        experiment: exp.name.clone(),
        checkpoint: model_file.to_path_buf(),
        split,
        samples,
        loss: loss / samples as f64,
        top1: correct as f64 / samples as f64,
        top_k: (top, in_top_k as f64 / samples as f64),
        per_class,
        confusion,
        class_names: names,
    })
}

/// Writes `eval.json`, `confusion.csv` and `confusion.png` into `dir`; returns their paths.
pub fn write_evaluation(dir: &Path, e: &Evaluation) -> Result<Vec<PathBuf>, RunError> {
    std::fs::create_dir_all(dir).map_err(|err| RunError::io(dir, "create", err))?;
    let json = dir.join("eval.json");
    let text = serde_json::to_string_pretty(e).map_err(|err| RunError::new("E0500", err.to_string()))?;
    super::run_folder::write_atomic(&json, text.as_bytes())?;
    let csv = dir.join("confusion.csv");
    let quote = |s: &str| if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() };
    let mut t = format!("true\\predicted,{}\n", e.class_names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(","));
    for (c, row) in e.confusion.iter().enumerate() {
        t.push_str(&format!("{},{}\n", quote(&e.class_names[c]), row.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")));
    }
    super::run_folder::write_atomic(&csv, t.as_bytes())?;
    let png = dir.join("confusion.png");
    super::plot::confusion(
        &e.confusion,
        &e.class_names,
        &format!("{} — {:?} split, top-1 {:.2}% (rows: true class, columns: predicted)", e.experiment, e.split, 100.0 * e.top1),
        &png,
    )?;
    Ok(vec![json, csv, png])
}

/// The top classes of one image.
#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub image: PathBuf,
    /// `(class name, softmax probability)`, most likely first.
    pub top: Vec<(String, f64)>,
}

/// Classifies image files with a model file of a run whose data are images (C×H×W input).
pub fn predict(checked: &Checked, plan: &Plan, settings: &Settings, model_file: &Path, images: &[PathBuf], top: usize) -> Result<Vec<Prediction>, RunError> {
    let exp = &checked.experiment;
    let config = super::data_source::data_config(&exp.data, settings, exp.train.seed)?;
    let shape = match config.source {
        crate::data::Source::Folder { shape, .. } => shape,
        _ => {
            let s = exp.data.dataset.sample_shape();
            match s.as_slice() {
                [c, h, w] => [*c as usize, *h as usize, *w as usize],
                _ => return Err(RunError::new("E0522", "`expc predict` classifies images; this run's data are not images")),
            }
        }
    };
    if exp.data.sequence.is_some() {
        return Err(RunError::new("E0522", "`expc predict` classifies images; this run reads its images as sequences (`sequence rows`)")
            .help("use `expc eval` on the run instead"));
    }
    let mut bytes = vec![];
    for p in images {
        crate::data::read_image(p, shape, true, &mut bytes).map_err(data_err)?;
    }
    let given =
        crate::data::Dataset::new(bytes, vec![0; images.len()], shape, plan.classes().max(1), vec![], PathBuf::from("the images given")).map_err(data_err)?;
    // The mean image needs the training set; per-channel statistics need nothing.
    let (split, names) = if config.mean_image {
        let mut s = crate::data::load_source(&config.source, config.seed).map_err(data_err)?;
        let names = s.train.class_names.clone();
        s.test = given;
        (s, names)
    } else {
        let names = class_names_of_source(&config.source);
        (DataSplit { train: given.clone(), test: given }, names)
    };
    let data = Pipeline::from_split(&config, split).map_err(data_err)?;
    let mut model = load_model(checked, plan, model_file, settings.threads.0)?;
    let classes = plan.classes();
    let names = if names.len() == classes { names } else { (0..classes).map(|c| c.to_string()).collect() };
    let mut out = vec![];
    for b in data.test_stream() {
        let (_, _, scores) = model.scores(&b)?;
        for s in 0..b.n {
            let row = &scores[s * classes..(s + 1) * classes];
            let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let exp_sum: f64 = row.iter().map(|&z| (z as f64 - max).exp()).sum();
            let mut ranked: Vec<(String, f64)> = row.iter().enumerate().map(|(k, &z)| (names[k].clone(), (z as f64 - max).exp() / exp_sum)).collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
            ranked.truncate(top.max(1));
            out.push(Prediction { image: images[out.len()].clone(), top: ranked });
        }
    }
    Ok(out)
}

/// Class names known without reading the data: CIFAR-10's, MNIST's digits, an image folder's
/// sub-folders.
fn class_names_of_source(source: &crate::data::Source) -> Vec<String> {
    match source {
        crate::data::Source::Cifar10 { .. } => crate::data::CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
        crate::data::Source::Mnist { .. } => (0..10).map(|d| d.to_string()).collect(),
        crate::data::Source::Folder { root, .. } => crate::data::folder_class_names(root).unwrap_or_default(),
        crate::data::Source::Synthetic(_) => vec![],
    }
}

/// Where `expc eval` writes by default: `RUN_DIR/eval-<split>-<checkpoint stem>/`.
pub fn default_output(run_dir: &Path, model_file: &Path, split: Split) -> PathBuf {
    let stem = model_file.file_name().and_then(|n| n.to_str()).unwrap_or("model").trim_end_matches(".safetensors").to_string();
    let split = match split {
        Split::Test => "test",
        Split::Validation => "validation",
        Split::Train => "train",
    };
    run_dir.join(format!("eval-{split}-{stem}"))
}

/// The ONNX model (see [`crate::backend::onnx`]) of a model file: its tensors, checked against
/// the plan, and metadata saying how to feed it — the input layout, the preprocessing that turns
/// pixels into the input's values, and the class names where they are known without the data.
pub fn onnx_model(checked: &Checked, plan: &Plan, settings: &Settings, model_file: &Path) -> Result<Vec<u8>, RunError> {
    // Checksums here; names and shapes against the plan in the exporter.
    let tensors: Tensors = checkpoint::load_verified(model_file)?;
    let exp = &checked.experiment;
    let d = &exp.data;
    let list = |v: &[f64]| v.iter().map(|x| format!("{x}")).collect::<Vec<_>>().join(", ");
    let mut preprocess = format!("input = pixel (0..255) * {}", d.scale);
    match &d.mean {
        crate::spec::Mean::PerChannel(m) => preprocess += &format!(" - mean[c], mean = [{}]", list(m)),
        crate::spec::Mean::Image => preprocess += " - the training set's mean image (mean_image; not stored here)",
        crate::spec::Mean::None => {}
    }
    if let Some(s) = &d.std {
        preprocess += &format!(", then / std[c], std = [{}]", list(s));
    }
    let layout = match (plan.input_shape.len(), d.sequence.is_some()) {
        (3, _) => "N x C x H x W (channels first, RGB order as in the training data)",
        (2, true) => "N x T x F: image rows as time steps (`sequence rows`)",
        (2, false) => "N x T x F",
        _ => "N x F",
    };
    let mut meta = vec![
        ("expc.experiment".to_string(), exp.name.clone()),
        ("expc.checkpoint".to_string(), model_file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()),
        ("expc.input".to_string(), layout.to_string()),
        ("expc.preprocess".to_string(), preprocess),
        ("expc.outputs".to_string(), "logits; probabilities = softmax(logits) over the last axis".to_string()),
    ];
    let names = super::data_source::data_config(d, settings, exp.train.seed).map(|c| class_names_of_source(&c.source)).unwrap_or_default();
    if names.len() == plan.classes() {
        meta.push(("expc.classes".to_string(), names.join("\n")));
    }
    crate::backend::onnx::export(plan, &tensors, &meta).map_err(|e| RunError::new("E0503", format!("`{}`: {e}", model_file.display())))
}
