//! The `data` and `train` sections: each head is a setting with a fixed argument form.

use super::load::{SettingCmd, SettingSection};
use super::types::*;
use crate::args::Args;
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::source::Span;
use crate::syntax::ast::{Arg, ValueKind};

/// Largest batch the engine takes (2^24 samples).
pub const MAX_BATCH: u64 = 1 << 24;

const DATA_KEYS: &[&str] = &["dataset", "batch", "test_batch", "scale", "mean", "std", "augment", "sequence", "shuffle", "validation"];
const TRAIN_KEYS: &[&str] = &["solver", "lr", "policy", "weight_decay", "iterations", "eval", "seed", "checkpoint", "log", "clip_gradients", "early_stop"];

fn unknown_setting(cmd: &SettingCmd, section: &str, keys: &[&str]) -> Diagnostic {
    let head = cmd.cmd.head.name.as_str();
    let help = match head {
        "momentum" | "beta1" | "beta2" | "nesterov" => Some(format!("`{head}` belongs to the solver: `solver sgd momentum=0.9`")),
        "gamma" | "power" | "stepsize" | "steps" => Some(format!("`{head}` belongs to the policy: `policy step gamma=0.1 stepsize=1000`")),
        "pad" | "crop" | "mirror" => Some("augmentation is one line: `augment pad=4 crop=32x32 mirror`".to_string()),
        "max_iter" | "iters" => Some("write `iterations 10000`".to_string()),
        "test_interval" | "test_iter" => Some("write `eval every=500 batches=100`".to_string()),
        _ => did_you_mean(head, keys.iter().copied()),
    };
    Diagnostic::error("E0101", format!("unknown setting `{head}` in `{section}`"))
        .primary(cmd.cmd.head.span, "unknown setting")
        .note(format!("`{section}` settings: {}", keys.join(", ")))
        .with_help(help)
}

fn missing(section: &str, what: &str, example: &str, at: Span) -> Diagnostic {
    Diagnostic::error("E0110", format!("missing required setting `{section}.{what}`"))
        .primary(at, format!("`{section}` has no `{what}`"))
        .help(format!("add a line `{example}`"))
}

fn missing_section(section: &str, example: &str, at: Span) -> Diagnostic {
    Diagnostic::error("E0110", format!("missing required section `{section}`"))
        .primary(at, format!("this experiment has no `{section}` section"))
        .help(format!("add a section `{example}`"))
}

/// Largest colour-jitter strength: a factor in [0, 2].
pub const MAX_JITTER: f64 = 1.0;

const CUTOUT_HELP: &str =
    "`cutout=N` zeroes an N×N square (`cutout=HxW`: H×W) around a random pixel of each training image; DeVries & Taylor use 16 on 32×32 images";
const RESIZED_CROP_HELP: &str =
    "`resized_crop=S` crops a random area between S and all of each training image (aspect ratio 3/4 to 4/3) and resizes it; torchvision's default is 0.08";

/// Runs `f` and gives the diagnostics it records `help` (where they have none).
fn hinted<T>(a: &mut Args, help: &str, f: impl FnOnce(&mut Args) -> Option<T>) -> Option<T> {
    let n = a.diags.len();
    let r = f(a);
    for d in &mut a.diags[n..] {
        d.help.get_or_insert_with(|| help.to_string());
    }
    r
}

/// Where `augment`'s `key=` value is written (the whole `augment` line when it is not).
fn augment_span(sec: &SettingSection, key: &str) -> Span {
    let Some(c) = sec.cmds.iter().rev().find(|c| c.cmd.head.name == "augment") else { return sec.header };
    c.cmd
        .args
        .iter()
        .find_map(|a| match a {
            Arg::Keyword { key: k, value } if k.name == key => Some(k.span.join(value.span)),
            _ => None,
        })
        .unwrap_or(c.cmd.span)
}

/// The augmentation against the dataset's images: the crop and the cutout fit, saturation has colour.
fn augment_fits(aug: &Augment, dataset: &Dataset, sec: &SettingSection) -> Vec<Diagnostic> {
    let mut diags = vec![];
    let shape = dataset.sample_shape();
    if shape.len() != 3 {
        if aug.saturation > 0.0 {
            diags.push(no_colour(1, dataset, sec));
        }
        return diags;
    }
    let (c, padded) = (shape[0], [shape[1] + 2 * aug.pad, shape[2] + 2 * aug.pad]);
    if let Some(crop) = aug.crop {
        if crop[0] > padded[0] || crop[1] > padded[1] {
            let at = sec.cmds.iter().find(|c| c.cmd.head.name == "augment").map(|c| c.cmd.span).unwrap_or(sec.header);
            diags.push(
                Diagnostic::error("E0106", format!("crop {}x{} is larger than the padded image {}x{}", crop[0], crop[1], padded[0], padded[1]))
                    .primary(at, "crop too large"),
            );
        }
    }
    let out = aug.crop.unwrap_or([shape[1], shape[2]]);
    if let Some(cut) = aug.cutout.filter(|k| k[0] > out[0] || k[1] > out[1]) {
        diags.push(
            Diagnostic::error("E0106", format!("cutout {}x{} is larger than the {}x{} training sample", cut[0], cut[1], out[0], out[1]))
                .primary(augment_span(sec, "cutout"), "cutout too large")
                .help(format!("a cutout hides part of the sample: at most {}x{} here; DeVries & Taylor use 16 on 32×32 images", out[0], out[1])),
        );
    }
    if aug.saturation > 0.0 && c != 3 {
        diags.push(no_colour(c, dataset, sec));
    }
    diags
}

fn no_colour(channels: u64, dataset: &Dataset, sec: &SettingSection) -> Diagnostic {
    let mut d = Diagnostic::error("E0118", format!("`saturation` needs 3 colour channels, but the images have {channels}"))
        .primary(augment_span(sec, "saturation"), "saturation of images without colour");
    if let Some(c) = sec.cmds.iter().rev().find(|c| c.cmd.head.name == "dataset") {
        d = d.secondary(c.cmd.span, format!("{} has {channels} channel{}", dataset_words(dataset), if channels == 1 { "" } else { "s" }));
    }
    d.help("remove `saturation=`; `brightness=` and `contrast=` work on any number of channels")
}

fn dataset_words(d: &Dataset) -> &'static str {
    match d {
        Dataset::Cifar10 => "CIFAR-10",
        Dataset::Mnist => "MNIST",
        Dataset::Synthetic { .. } => "this synthetic data set",
        Dataset::Folder { .. } => "this image folder",
    }
}

/// Runs `f` on an [`Args`] for the command and collects its diagnostics, marking overrides.
fn with_args<T>(c: &SettingCmd, what: String, diags: &mut Vec<Diagnostic>, f: impl FnOnce(&mut Args) -> Option<T>) -> Option<T> {
    let mut a = Args::new(&c.cmd, what);
    let out = f(&mut a);
    let ok = !a.has_errors();
    let mut ds = a.finish();
    if let Some(base) = c.overrides {
        super::mark_override(&mut ds, base, "this base setting is overridden");
    }
    let ok = ok && ds.is_empty();
    diags.extend(ds);
    if ok {
        out
    } else {
        None
    }
}

/// The momentum of `sgd` and `nesterov` when none is given, and of the default solver.
const SGD_MOMENTUM: f64 = 0.9;

pub fn data(sec: Option<&SettingSection>, anchor: Span, diags: &mut Vec<Diagnostic>) -> Option<DataSpec> {
    let Some(sec) = sec else {
        diags.push(missing_section("data", "data { dataset cifar10 }", anchor));
        return None;
    };
    let n0 = diags.len();
    let mut dataset = None;
    let mut spec = DataSpec {
        dataset: Dataset::Cifar10,
        batch: 64,
        test_batch: 0,
        scale: 1.0,
        mean: Mean::None,
        std: None,
        augment: Augment::default(),
        sequence: None,
        shuffle: true,
        validation: 0,
        span: sec.header,
    };
    for c in &sec.cmds {
        let head = c.cmd.head.name.as_str();
        let what = format!("setting `data.{head}`");
        match head {
            "dataset" => {
                dataset = with_args(c, what, diags, |a| {
                    let v = a.required("dataset name", "dataset cifar10")?;
                    match a.as_word(v, &["cifar10", "mnist", "synthetic", "folder"])? {
                        "cifar10" => Some(Dataset::Cifar10),
                        "mnist" => Some(Dataset::Mnist),
                        "synthetic" => {
                            // Every key is read before giving up, so a bad shape does not make
                            // the other keys look unknown.
                            let shape = match a.keyword("shape") {
                                Some(v) => a.as_shape(v),
                                None => Some(vec![3, 32, 32]),
                            };
                            let classes = a.kw_uint("classes", 2).unwrap_or(10);
                            let train = a.kw_uint("train", 1).unwrap_or(1024);
                            let test = a.kw_uint("test", 1).unwrap_or(256);
                            Some(Dataset::Synthetic { shape: shape?, classes, train, test })
                        }
                        _ => {
                            let root = match a.required("folder (a key of [data] in expc.toml, or a path)", "dataset folder \"flowers\" shape=3x64x64") {
                                Some(v) => match &v.kind {
                                    ValueKind::Str(s) | ValueKind::Ident(s) => s.clone(),
                                    _ => {
                                        a.type_error(v, "a string");
                                        return None;
                                    }
                                },
                                None => return None,
                            };
                            let shape = match a.keyword("shape") {
                                Some(v) => a.as_shape(v)?,
                                None => {
                                    let d = Diagnostic::error("E0103", "an image folder needs the image shape")
                                        .primary(a.cmd.span, "`shape=` missing")
                                        .help("write it like `dataset folder \"flowers\" shape=3x64x64`");
                                    a.error(d);
                                    return None;
                                }
                            };
                            Some(Dataset::Folder { root, shape })
                        }
                    }
                })
            }
            "batch" | "test_batch" => {
                if let Some(n) = with_args(c, what, diags, |a| {
                    let v = a.required("batch size", "batch 256")?;
                    let n = a.as_uint(v, 1)?;
                    if n > MAX_BATCH {
                        a.range_error(v, &format!("a batch holds at most {MAX_BATCH} samples (2^24)"));
                        return None;
                    }
                    Some(n)
                }) {
                    if head == "batch" {
                        spec.batch = n
                    } else {
                        spec.test_batch = n
                    }
                }
            }
            "scale" => {
                if let Some(x) = with_args(c, what, diags, |a| {
                    let v = a.required("scale factor", "scale 1/255")?;
                    a.as_f64(v)
                }) {
                    spec.scale = x
                }
            }
            "mean" | "std" => {
                let is_mean = head == "mean";
                let r = with_args(c, what, diags, |a| {
                    let vals = a.remaining_positionals();
                    if vals.is_empty() {
                        let d = Diagnostic::error("E0103", format!("`{head}` needs one value per channel"))
                            .primary(a.cmd.span, "values missing")
                            .help(if is_mean { "write `mean 125.3 123.0 113.9` or `mean image`" } else { "write `std 63.0 62.1 66.7`" });
                        a.error(d);
                        return None;
                    }
                    if is_mean && vals.len() == 1 && matches!(&vals[0].kind, ValueKind::Ident(s) if s == "image") {
                        return Some(None);
                    }
                    let mut out = vec![];
                    for v in vals {
                        let x = a.as_f64(v)?;
                        if !is_mean && x <= 0.0 {
                            a.range_error(v, "a standard deviation must be positive");
                            return None;
                        }
                        out.push(x);
                    }
                    Some(Some(out))
                });
                match (is_mean, r) {
                    (true, Some(None)) => spec.mean = Mean::Image,
                    (true, Some(Some(v))) => spec.mean = Mean::PerChannel(v),
                    (false, Some(v)) => spec.std = v,
                    _ => {}
                }
            }
            "augment" => {
                if let Some(aug) = with_args(c, what, diags, |a| {
                    let mut aug = Augment { pad: a.kw_uint("pad", 0).unwrap_or(0), crop: a.kw_pair("crop", 1), ..Augment::default() };
                    aug.cutout = hinted(a, CUTOUT_HELP, |a| a.kw_pair("cutout", 1));
                    let [b, c, s] = ["brightness", "contrast", "saturation"].map(|key| {
                        hinted(a, &format!("`{key}=V` draws a factor from [1 − V, 1 + V] for each training image (0 is off; 0.2 to 0.4 is usual)"), |a| {
                            a.kw_f64_in(key, 0.0, MAX_JITTER, false)
                        })
                        .unwrap_or(0.0)
                    });
                    (aug.brightness, aug.contrast, aug.saturation) = (b, c, s);
                    aug.resized_crop = hinted(a, RESIZED_CROP_HELP, |a| {
                        let v = a.keyword("resized_crop")?;
                        let x = a.as_f64(v)?;
                        if !(x > 0.0 && x <= 1.0) {
                            a.range_error(v, "`resized_crop` must lie in (0, 1]: the smallest share of the image's area a crop covers");
                            return None;
                        }
                        Some(x)
                    });
                    if let Some(m) = a.kw_bool("mirror") {
                        aug.mirror = m;
                    }
                    for v in a.remaining_positionals() {
                        match a.as_word(v, &["mirror", "none"]) {
                            Some("mirror") => aug.mirror = true,
                            Some(_) => {}
                            None => return None,
                        }
                    }
                    Some(aug)
                }) {
                    spec.augment = aug
                }
            }
            "sequence" => {
                if let Some(s) = with_args(c, what, diags, |a| {
                    let v = a.required("sequence mode", "sequence rows")?;
                    a.as_word(v, &["rows"]).map(|_| SequenceMode::Rows)
                }) {
                    spec.sequence = Some(s)
                }
            }
            "shuffle" => {
                if let Some(b) = with_args(c, what, diags, |a| {
                    let v = a.required("true or false", "shuffle false")?;
                    a.as_bool(v)
                }) {
                    spec.shuffle = b
                }
            }
            "validation" => {
                if let Some(n) = with_args(c, what, diags, |a| {
                    let v = a.required("number of training images to set aside", "validation 5000")?;
                    a.as_uint(v, 1)
                }) {
                    spec.validation = n
                }
            }
            _ => diags.push(unknown_setting(c, "data", DATA_KEYS)),
        }
    }
    if spec.test_batch == 0 {
        spec.test_batch = spec.batch;
    }
    if let Some(d) = &dataset {
        diags.extend(augment_fits(&spec.augment, d, sec));
    }
    match dataset {
        Some(d) => spec.dataset = d,
        None => {
            if !sec.cmds.iter().any(|c| c.cmd.head.name == "dataset") {
                diags.push(missing("data", "dataset", "dataset cifar10", sec.header));
            }
            return None;
        }
    }
    if diags.len() > n0 {
        return None;
    }
    Some(spec)
}

pub fn train(sec: Option<&SettingSection>, anchor: Span, diags: &mut Vec<Diagnostic>) -> Option<TrainSpec> {
    let Some(sec) = sec else {
        diags.push(missing_section("train", "train { lr 0.01; iterations 1000 }", anchor));
        return None;
    };
    let n0 = diags.len();
    let mut lr = None;
    let mut iterations = None;
    let mut spec = TrainSpec {
        solver: Solver::Sgd { momentum: SGD_MOMENTUM },
        lr: 0.0,
        policy: LrPolicy::Fixed,
        weight_decay: 0.0,
        iterations: 0,
        eval_every: 0,
        eval_batches: None,
        seed: 1,
        checkpoint_every: 0,
        checkpoint_keep: 3,
        log_every: 0,
        warmup: 0,
        clip_gradients: None,
        early_stop: None,
        span: sec.header,
    };
    for c in &sec.cmds {
        let head = c.cmd.head.name.as_str();
        let what = format!("setting `train.{head}`");
        match head {
            "solver" => {
                if let Some(s) = with_args(c, what, diags, |a| {
                    let v = a.required("solver name", "solver sgd momentum=0.9")?;
                    let positive = |a: &mut Args, key: &'static str, default: f64| -> Option<f64> {
                        match a.keyword(key) {
                            Some(v) => {
                                let x = a.as_f64(v)?;
                                if !(x > 0.0 && x <= 1.0) {
                                    a.range_error(v, &format!("`{key}` must lie in (0, 1]: it keeps the division by the root mean square finite"));
                                    return None;
                                }
                                Some(x)
                            }
                            None => Some(default),
                        }
                    };
                    match a.as_word(v, &["sgd", "nesterov", "adam", "adamw", "adagrad", "rmsprop", "adadelta"])? {
                        "sgd" => Some(Solver::Sgd { momentum: a.kw_f64_in("momentum", 0.0, 1.0, true).unwrap_or(SGD_MOMENTUM) }),
                        "nesterov" => Some(Solver::Nesterov { momentum: a.kw_f64_in("momentum", 0.0, 1.0, true).unwrap_or(SGD_MOMENTUM) }),
                        "adagrad" => Some(Solver::AdaGrad { delta: positive(a, "delta", 1e-8)? }),
                        "rmsprop" => {
                            Some(Solver::RmsProp { rms_decay: a.kw_f64_in("rms_decay", 0.0, 1.0, true).unwrap_or(0.99), delta: positive(a, "delta", 1e-8)? })
                        }
                        "adadelta" => {
                            Some(Solver::AdaDelta { momentum: a.kw_f64_in("momentum", 0.0, 1.0, true).unwrap_or(0.95), delta: positive(a, "delta", 1e-6)? })
                        }
                        adam => {
                            let beta1 = a.kw_f64_in("beta1", 0.0, 1.0, true).unwrap_or(0.9);
                            let beta2 = a.kw_f64_in("beta2", 0.0, 1.0, true).unwrap_or(0.999);
                            let eps = positive(a, "eps", 1e-8)?;
                            Some(if adam == "adam" { Solver::Adam { beta1, beta2, eps } } else { Solver::AdamW { beta1, beta2, eps } })
                        }
                    }
                }) {
                    spec.solver = s
                }
            }
            "lr" | "weight_decay" => {
                let r = with_args(c, what, diags, |a| {
                    let v = a.required("value", if head == "lr" { "lr 0.01" } else { "weight_decay 5e-4" })?;
                    let x = a.as_f64(v)?;
                    if x < 0.0 || (head == "lr" && x == 0.0) {
                        a.range_error(v, if head == "lr" { "the learning rate must be positive" } else { "weight decay cannot be negative" });
                        return None;
                    }
                    Some(x)
                });
                if head == "lr" {
                    lr = r.or(lr)
                } else if let Some(x) = r {
                    spec.weight_decay = x
                }
            }
            "policy" => {
                if let Some((p, warmup)) = with_args(c, what, diags, |a| {
                    let warmup = a.kw_uint("warmup", 0).unwrap_or(0);
                    Some((policy(a)?, warmup))
                }) {
                    spec.policy = p;
                    spec.warmup = warmup;
                }
            }
            "early_stop" => {
                if let Some(e) = with_args(c, what, diags, |a| {
                    let patience = a.kw_uint("patience", 1);
                    let metric = match a.kw_word("metric", &["accuracy", "loss"]) {
                        Some("loss") => StopMetric::Loss,
                        _ => StopMetric::Accuracy,
                    };
                    if patience.is_none() && !a.has_errors() {
                        let d = Diagnostic::error("E0103", "`early_stop` needs `patience=`: how many evaluations without improvement end the run")
                            .primary(a.cmd.span, "`patience` missing")
                            .help("write it like `early_stop patience=5 metric=accuracy`");
                        a.error(d);
                    }
                    Some(EarlyStop { patience: patience?, metric })
                }) {
                    spec.early_stop = Some(e)
                }
            }
            "clip_gradients" => {
                if let Some(x) = with_args(c, what, diags, |a| {
                    let v = a.required("largest global L2 norm of the gradients", "clip_gradients 10")?;
                    let x = a.as_f64(v)?;
                    if x <= 0.0 {
                        a.range_error(v, "the gradient norm bound must be positive");
                        return None;
                    }
                    Some(x)
                }) {
                    spec.clip_gradients = Some(x)
                }
            }
            "iterations" | "seed" => {
                let r = with_args(c, what, diags, |a| {
                    let v = a.required("value", if head == "seed" { "seed 1" } else { "iterations 10000" })?;
                    a.as_uint(v, if head == "seed" { 0 } else { 1 })
                });
                if head == "seed" {
                    if let Some(s) = r {
                        spec.seed = s
                    }
                } else {
                    iterations = r.or(iterations)
                }
            }
            "eval" => {
                if let Some((every, batches)) = with_args(c, what, diags, |a| Some((a.kw_uint("every", 1), a.kw_uint("batches", 1)))) {
                    spec.eval_every = every.unwrap_or(0);
                    spec.eval_batches = batches;
                }
            }
            "checkpoint" => {
                if let Some((every, keep)) = with_args(c, what, diags, |a| Some((a.kw_uint("every", 1), a.kw_uint("keep", 1)))) {
                    spec.checkpoint_every = every.unwrap_or(0);
                    spec.checkpoint_keep = keep.unwrap_or(3);
                }
            }
            "log" => {
                if let Some(every) = with_args(c, what, diags, |a| Some(a.kw_uint("every", 1))) {
                    spec.log_every = every.unwrap_or(0);
                }
            }
            _ => diags.push(unknown_setting(c, "train", TRAIN_KEYS)),
        }
    }
    let has = |k: &str| sec.cmds.iter().any(|c| c.cmd.head.name == k);
    match lr {
        Some(x) => spec.lr = x,
        None if !has("lr") => diags.push(missing("train", "lr", "lr 0.01", sec.header)),
        None => {}
    }
    match iterations {
        Some(n) => spec.iterations = n,
        None if !has("iterations") => diags.push(missing("train", "iterations", "iterations 10000", sec.header)),
        None => {}
    }
    if spec.eval_every == 0 {
        spec.eval_every = spec.iterations.max(1);
    }
    if spec.checkpoint_every == 0 {
        spec.checkpoint_every = spec.iterations.max(1);
    }
    if spec.log_every == 0 {
        spec.log_every = (spec.iterations / 100).clamp(1, 100);
    }
    if spec.warmup > 0 && spec.iterations > 0 && spec.warmup >= spec.iterations {
        let c = sec.cmds.iter().find(|c| c.cmd.head.name == "policy").map(|c| c.cmd.span).unwrap_or(sec.header);
        diags.push(
            Diagnostic::error(
                "E0106",
                format!("setting `train.policy`: a warm-up of {} iterations leaves none of the {} for the policy", spec.warmup, spec.iterations),
            )
            .primary(c, "warm-up as long as the run")
            .help("shorten `warmup=` (a few percent of `iterations` is usual)"),
        );
    }
    if let LrPolicy::Multistep { steps, .. } = &spec.policy {
        if steps.windows(2).any(|w| w[0] >= w[1]) {
            let c = sec.cmds.iter().find(|c| c.cmd.head.name == "policy").map(|c| c.cmd.span).unwrap_or(sec.header);
            diags.push(
                Diagnostic::error("E0106", "multistep iterations must increase")
                    .primary(c, "steps out of order")
                    .help("list the iterations in increasing order, e.g. `policy multistep 8000 10000 12000 gamma=0.1`"),
            );
        }
    }
    if diags.len() > n0 {
        return None;
    }
    Some(spec)
}

fn policy(a: &mut Args) -> Option<LrPolicy> {
    let v = a.required("policy name", "policy multistep 8000 10000 gamma=0.1")?;
    let name = a.as_word(v, &["fixed", "step", "multistep", "exp", "inv", "poly", "sigmoid", "cosine", "onecycle"])?;
    let need_f = |a: &mut Args, key: &'static str, example: &str| -> Option<f64> {
        let r = a.kw_f64(key);
        if r.is_none() && !a.has_errors() {
            let d = Diagnostic::error("E0103", format!("policy `{name}` needs `{key}=`"))
                .primary(a.cmd.span, format!("`{key}` missing"))
                .help(format!("write it like `{example}`"));
            a.error(d);
        }
        r
    };
    let need_u = |a: &mut Args, key: &'static str, example: &str| -> Option<u64> {
        let r = a.kw_uint(key, 1);
        if r.is_none() && !a.has_errors() {
            let d = Diagnostic::error("E0103", format!("policy `{name}` needs `{key}=`"))
                .primary(a.cmd.span, format!("`{key}` missing"))
                .help(format!("write it like `{example}`"));
            a.error(d);
        }
        r
    };
    Some(match name {
        "fixed" => LrPolicy::Fixed,
        "step" => {
            let g = need_f(a, "gamma", "policy step gamma=0.1 stepsize=10000");
            let s = need_u(a, "stepsize", "policy step gamma=0.1 stepsize=10000");
            LrPolicy::Step { gamma: g?, stepsize: s? }
        }
        "multistep" => {
            let mut steps = vec![];
            for v in a.remaining_positionals() {
                match &v.kind {
                    ValueKind::List(items) => {
                        for i in items {
                            steps.push(a.as_uint(i, 1)?);
                        }
                    }
                    _ => steps.push(a.as_uint(v, 1)?),
                }
            }
            if steps.is_empty() {
                let d = Diagnostic::error("E0103", "policy `multistep` needs the iterations at which to step")
                    .primary(a.cmd.span, "no iterations")
                    .help("write it like `policy multistep 8000 10000 12000 gamma=0.1`");
                a.error(d);
            }
            let g = need_f(a, "gamma", "policy multistep 8000 10000 gamma=0.1");
            LrPolicy::Multistep { gamma: g?, steps }
        }
        "exp" => LrPolicy::Exp { gamma: need_f(a, "gamma", "policy exp gamma=0.9999")? },
        "inv" => {
            let g = need_f(a, "gamma", "policy inv gamma=0.0001 power=0.75");
            let p = need_f(a, "power", "policy inv gamma=0.0001 power=0.75");
            LrPolicy::Inv { gamma: g?, power: p? }
        }
        "poly" => LrPolicy::Poly { power: need_f(a, "power", "policy poly power=0.9")? },
        "sigmoid" => {
            let g = need_f(a, "gamma", "policy sigmoid gamma=-0.001 stepsize=5000");
            let s = need_u(a, "stepsize", "policy sigmoid gamma=-0.001 stepsize=5000");
            LrPolicy::Sigmoid { gamma: g?, stepsize: s? }
        }
        "cosine" => {
            let min = a.kw_f64("min").unwrap_or(0.0);
            let cycle = a.kw_uint("cycle", 1);
            let cycle_mult = a.kw_f64("cycle_mult").unwrap_or(1.0);
            if cycle_mult < 1.0 {
                let d = Diagnostic::error("E0106", "policy `cosine`: `cycle_mult` must be at least 1").primary(a.cmd.span, "cycles cannot shrink");
                a.error(d);
                return None;
            }
            LrPolicy::Cosine { min, cycle, cycle_mult }
        }
        _ => {
            let pct = a.kw_f64_in("pct", 0.0, 1.0, true).unwrap_or(0.3);
            let div = a.kw_f64("div").unwrap_or(25.0);
            let final_div = a.kw_f64("final_div").unwrap_or(1e4);
            if div < 1.0 || final_div < 1.0 {
                let d = Diagnostic::error("E0106", "policy `onecycle`: `div` and `final_div` must be at least 1")
                    .primary(a.cmd.span, "the rate starts and ends below `lr`");
                a.error(d);
                return None;
            }
            LrPolicy::OneCycle { pct, div, final_div }
        }
    })
}
