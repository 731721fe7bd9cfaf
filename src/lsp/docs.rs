//! One-line documentation of op heads, settings and keywords, for hover and completion.
//!
//! An op's doc is the first `//!` line of its op file (`src/ops/<op>.rs`), so the editor shows
//! exactly what the op file says; settings and keywords follow `docs/language.md`.

use crate::ops::activation::Activation;

const OPS: &[(&str, &str)] = &[
    ("accuracy", include_str!("../ops/accuracy.rs")),
    ("activation", include_str!("../ops/activation.rs")),
    ("batchnorm", include_str!("../ops/batchnorm.rs")),
    ("concat", include_str!("../ops/concat.rs")),
    ("conv", include_str!("../ops/conv.rs")),
    ("dropout", include_str!("../ops/dropout.rs")),
    ("add", include_str!("../ops/elementwise_add.rs")),
    ("flatten", include_str!("../ops/flatten.rs")),
    ("input", include_str!("../ops/input.rs")),
    ("last", include_str!("../ops/last.rs")),
    ("fc", include_str!("../ops/linear.rs")),
    ("lstm", include_str!("../ops/lstm.rs")),
    ("pool", include_str!("../ops/pool.rs")),
    ("rnn", include_str!("../ops/rnn.rs")),
    ("softmax_loss", include_str!("../ops/softmax_loss.rs")),
];

/// Arguments every layer takes.
pub const COMMON_KEYS: &[&str] = &["from", "device"];
/// Arguments of layers with parameters.
pub const PARAM_KEYS: &[&str] = &["init", "bias_init", "lr_mult", "decay_mult", "bias_lr_mult", "bias_decay_mult"];

fn op_file(head: &str) -> Option<&'static str> {
    let key = match head {
        "maxpool" | "avgpool" => "pool",
        "linear" => "fc",
        "bn" => "batchnorm",
        "loss" => "softmax_loss",
        h if Activation::HEADS.contains(&h) => "activation",
        h => h,
    };
    OPS.iter().find(|(k, _)| *k == key).map(|(_, src)| *src)
}

/// The first line of an op file's `//!` header, e.g. "`conv OUT K×K [stride=S] …`: 2-D convolution."
pub fn op_doc(head: &str) -> Option<String> {
    let src = op_file(head)?;
    let line = src.lines().find_map(|l| l.strip_prefix("//!"))?;
    Some(line.trim().to_string())
}

/// The keyword arguments a layer head takes (besides `from=` and `device=`).
pub fn op_keys(head: &str) -> &'static [&'static str] {
    match head {
        "conv" => &["stride", "pad", "dilation", "groups", "bias"],
        "maxpool" | "avgpool" => &["stride", "pad", "round"],
        "fc" | "linear" => &["bias"],
        "batchnorm" | "bn" => &["affine", "eps", "momentum"],
        "accuracy" => &["top"],
        _ => &[],
    }
}

/// Whether the head makes a layer with parameters (takes `init=`, `lr_mult=`, …).
pub fn op_has_params(head: &str) -> bool {
    matches!(head, "conv" | "fc" | "linear" | "batchnorm" | "bn" | "rnn" | "lstm")
}

/// `(setting, doc)` of the `data` section.
pub const DATA_SETTINGS: &[(&str, &str)] = &[
    ("dataset", "`dataset cifar10 | mnist | synthetic shape= classes= train= test= | folder \"KEY\" shape=`: the data (required)"),
    ("batch", "`batch N`: training batch size (default 64)"),
    ("test_batch", "`test_batch N`: evaluation batch size (default: `batch`)"),
    ("scale", "`scale X`: multiply pixels by X first, e.g. `1/255` (default 1)"),
    ("mean", "`mean M1 M2 M3` / `mean image`: subtract a per-channel mean (after scaling) / the training set's mean image"),
    ("std", "`std S1 S2 S3`: then divide by a per-channel standard deviation"),
    (
        "augment",
        "`augment pad=N crop=HxW mirror cutout=K brightness=B contrast=C saturation=S resized_crop=A`: training only: zero padding, random crop (or a random-resized crop of at least A of the area), random horizontal flip, colour jitter (factors in [1 − v, 1 + v]), a K×K square zeroed",
    ),
    ("sequence", "`sequence rows`: read each image row by row: H steps of C·W features"),
    ("shuffle", "`shuffle false`: keep the training set in file order (default true)"),
];

/// `(setting, doc)` of the `train` section.
pub const TRAIN_SETTINGS: &[(&str, &str)] = &[
    ("solver", "`solver sgd momentum=M | nesterov momentum=M | adam beta1= beta2= eps=` (default `sgd momentum=0.9`)"),
    ("lr", "`lr X`: base learning rate (required)"),
    ("policy", "`policy fixed | step gamma= stepsize= | multistep I1 I2 … gamma= | exp gamma= | inv gamma= power= | poly power= | sigmoid gamma= stepsize=`: learning-rate schedule (default fixed)"),
    ("weight_decay", "`weight_decay X`: L2 weight decay (default 0)"),
    ("iterations", "`iterations N`: training iterations (required)"),
    ("eval", "`eval every=N batches=B`: evaluate every N iterations over B test batches (default: at the end, whole test set)"),
    ("seed", "`seed N`: random seed for initialisation, shuffling, augmentation, dropout (default 1)"),
    ("checkpoint", "`checkpoint every=N keep=K`: checkpoint interval and how many to keep (default: at the end, 3)"),
    ("log", "`log every=N`: training-loss logging interval (default iterations/100)"),
];

/// Keyword arguments of settings, for completion.
pub fn setting_keys(head: &str) -> &'static [&'static str] {
    match head {
        "dataset" => &["shape", "classes", "train", "test"],
        "augment" => &["pad", "crop", "mirror", "cutout", "brightness", "contrast", "saturation", "resized_crop"],
        "solver" => &["momentum", "beta1", "beta2", "eps"],
        "policy" => &["gamma", "stepsize", "power"],
        "eval" => &["every", "batches"],
        "checkpoint" => &["every", "keep"],
        "log" => &["every"],
        _ => &[],
    }
}

/// `(keyword, doc)` of the top level.
pub const TOP_LEVEL: &[(&str, &str)] = &[
    ("experiment", "`experiment NAME`: the experiment's name (required in every file)"),
    ("extends", "`extends \"FILE\"`: start from another experiment (path relative to this file)"),
    ("data", "`data { … }`: the dataset and its preprocessing"),
    ("model", "`model { … }`: the network, one layer a line (a variant's `model` replaces the base's)"),
    ("train", "`train { … }`: solver, learning rate and schedule"),
    ("set", "`set PATTERN key=value…`: change arguments of every layer whose name matches"),
    ("insert", "`insert after|before PATTERN: LAYER`: add a layer next to every match"),
    ("remove", "`remove PATTERN`: drop every matching layer"),
    ("repeat", "`repeat N { … }`: the body written N times; labels get `_1`, `_2`, …; `in` names the layer before the iteration"),
];

pub fn setting_doc(section: &str, head: &str) -> Option<&'static str> {
    let table = match section {
        "data" => DATA_SETTINGS,
        "train" => TRAIN_SETTINGS,
        _ => TOP_LEVEL,
    };
    table.iter().find(|(k, _)| *k == head).map(|(_, d)| *d)
}

/// Docs of keyword arguments of layers, for hover on `key=`.
pub fn key_doc(key: &str) -> Option<&'static str> {
    Some(match key {
        "from" => "`from=NAME` or `from=[A, B]`: read other layers instead of the previous one",
        "device" => "`device=N`: the device this layer runs on (model-parallel analysis)",
        "init" | "bias_init" => "`constant(V)`, `uniform(MIN, MAX)`, `gaussian(STD)`, `gaussian(std=S, mean=M)`, `xavier`, `msra` (Caffe's `variance_norm` as `xavier(fan_out)`, `msra(average)`)",
        "lr_mult" | "bias_lr_mult" => "learning-rate multiplier of the weights / biases (default 1)",
        "decay_mult" | "bias_decay_mult" => "weight-decay multiplier of the weights / biases (biases default 0)",
        "stride" => "`stride=N` or `HxW` (pooling: default K)",
        "pad" => "`pad=N` or `HxW`: zero padding",
        "dilation" => "`dilation=N` or `HxW`",
        "groups" => "`groups=G`: grouped convolution",
        "bias" => "`bias=false`: no bias tensor",
        "round" => "`round=floor|ceil`: output size rounding (Caffe: ceil, PyTorch: floor, the default)",
        "affine" => "`affine=false`: no learned scale and shift",
        "eps" => "`eps=1e-5`: added to the variance",
        "momentum" => "`momentum=0.1`: running-average update rate",
        "top" => "`top=K`: a sample counts when its label is among the K highest logits",
        _ => return None,
    })
}
