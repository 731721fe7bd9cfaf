//! The typed experiment: what a `.exp` file (and the files it extends) means.
//!
//! Produced by [`super::resolve`]; every value is checked and defaulted, repeat blocks are
//! expanded, variants are applied. Spans point at the line each value came from, which may
//! lie in a base file. The graph stage (`crate::graph`) reads `model`; the runner reads
//! `data` and `train`.

use crate::ops::Op;
use crate::param::ParamSpec;
use crate::source::Span;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Experiment {
    pub name: String,
    #[serde(skip)]
    pub name_span: Span,
    pub data: DataSpec,
    pub model: ModelSpec,
    pub train: TrainSpec,
}

// ---- data ------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DataSpec {
    pub dataset: Dataset,
    /// Training batch size.
    pub batch: u64,
    /// Evaluation batch size.
    pub test_batch: u64,
    /// Pixel scale applied first (e.g. 1/255).
    pub scale: f64,
    pub mean: Mean,
    /// Per-channel standard deviation to divide by (after scaling and mean subtraction).
    pub std: Option<Vec<f64>>,
    /// Training-only augmentation.
    pub augment: Augment,
    pub sequence: Option<SequenceMode>,
    pub shuffle: bool,
    /// Training images set aside (seeded) as a validation set: evaluations during training use
    /// it, the best checkpoint is chosen on it, and the test set is read once, at the end (0: none).
    #[serde(skip_serializing_if = "is_zero")]
    pub validation: u64,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Dataset {
    Cifar10,
    Mnist,
    /// Seeded, class-dependent random images, for tests.
    Synthetic {
        shape: Vec<u64>,
        classes: u64,
        train: u64,
        test: u64,
    },
    /// One sub-folder per class; `root` is a key of `[data]` in expc.toml or a path.
    Folder {
        root: String,
        shape: Vec<u64>,
    },
}

impl Dataset {
    /// The per-sample shape the dataset yields before augmentation and sequencing.
    pub fn sample_shape(&self) -> Vec<u64> {
        match self {
            Dataset::Cifar10 => vec![3, 32, 32],
            Dataset::Mnist => vec![1, 28, 28],
            Dataset::Synthetic { shape, .. } | Dataset::Folder { shape, .. } => shape.clone(),
        }
    }
    pub fn classes(&self) -> Option<u64> {
        match self {
            Dataset::Cifar10 | Dataset::Mnist => Some(10),
            Dataset::Synthetic { classes, .. } => Some(*classes),
            Dataset::Folder { .. } => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mean {
    None,
    PerChannel(Vec<f64>),
    /// The mean image of the training set, computed when the data is loaded.
    Image,
}

#[derive(Clone, Debug, PartialEq, Serialize, Default)]
pub struct Augment {
    /// Zero padding on every side before cropping.
    pub pad: u64,
    /// Random crop size (H, W); `None` keeps the padded size.
    pub crop: Option<[u64; 2]>,
    /// Random horizontal flip with probability 1/2.
    pub mirror: bool,
    /// Cutout (H, W): a rectangle zeroed (in the normalised output) around a random pixel, clipped
    /// at the borders; `None`: off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cutout: Option<[u64; 2]>,
    /// Colour jitter strengths in [0, 1] (0: off): each factor is drawn from [1 − v, 1 + v].
    /// Applied to the pixels before normalisation: brightness, then contrast, then saturation.
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub brightness: f64,
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub contrast: f64,
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub saturation: f64,
    /// Random-resized crop: the smallest share of the (padded) image's area a training crop covers,
    /// in (0, 1]; the crop (aspect ratio 3/4 to 4/3) is resized to the output size. `None`: off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resized_crop: Option<f64>,
}

impl Augment {
    /// The colour jitter strengths: brightness, contrast, saturation.
    pub fn jitter(&self) -> [f64; 3] {
        [self.brightness, self.contrast, self.saturation]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SequenceMode {
    /// An image read row by row: H steps of C·W features.
    Rows,
}

// ---- model -----------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelSpec {
    pub layers: Vec<LayerSpec>,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerSpec {
    pub name: String,
    #[serde(flatten)]
    pub op: Op,
    /// Producers of this layer's inputs, by name (resolved to nodes by the graph stage).
    pub inputs: Vec<InputRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<ParamSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bias: Option<ParamSpec>,
    /// `share=NAME`: this layer uses `NAME`'s parameters (resolved and checked by the graph stage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<InputRef>,
    pub device: u32,
    /// The whole line.
    #[serde(skip)]
    pub span: Span,
    /// The label, or the head when unnamed.
    #[serde(skip)]
    pub name_span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct InputRef {
    pub name: String,
    /// Where the name is written; `None` for the implicit "previous layer".
    #[serde(skip)]
    pub span: Option<Span>,
}

// ---- training --------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainSpec {
    pub solver: Solver,
    pub lr: f64,
    pub policy: LrPolicy,
    pub weight_decay: f64,
    pub iterations: u64,
    /// Evaluate every `eval_every` iterations (and at the end) …
    pub eval_every: u64,
    /// … over this many test batches (`None`: the whole test set).
    pub eval_batches: Option<u64>,
    pub seed: u64,
    /// Write a checkpoint every this many iterations (and at the end) …
    pub checkpoint_every: u64,
    /// … keeping the last this many (the best one is kept too).
    pub checkpoint_keep: u64,
    /// Log training loss every this many iterations.
    pub log_every: u64,
    /// Linear warm-up over the first this many iterations, in front of the policy (0: none).
    #[serde(skip_serializing_if = "is_zero")]
    pub warmup: u64,
    /// Caffe's `clip_gradients`: scale the gradients so their global L2 norm is at most this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_gradients: Option<f64>,
    /// Stop when the evaluation metric has not improved for this many evaluations in a row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_stop: Option<EarlyStop>,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Solver {
    Sgd {
        momentum: f64,
    },
    Nesterov {
        momentum: f64,
    },
    Adam {
        beta1: f64,
        beta2: f64,
        eps: f64,
    },
    /// Adam with decoupled weight decay (Loshchilov & Hutter): the decay shrinks the weights
    /// directly instead of entering the moments.
    AdamW {
        beta1: f64,
        beta2: f64,
        eps: f64,
    },
    /// Caffe's AdaGrad: h ← h + g²; W ← W − α·g/(√h + δ).
    AdaGrad {
        delta: f64,
    },
    /// Caffe's RMSProp: h ← ρ·h + (1 − ρ)·g²; W ← W − α·g/(√h + δ).
    RmsProp {
        rms_decay: f64,
        delta: f64,
    },
    /// Caffe's AdaDelta: h ← μh + (1 − μ)g²; u = g·√((h_u + δ)/(h + δ)); h_u ← μh_u + (1 − μ)u²; W ← W − α·u.
    AdaDelta {
        momentum: f64,
        delta: f64,
    },
}

impl Solver {
    /// Values of solver state per parameter (momentum or moments), for the memory estimate.
    pub fn state_per_param(&self) -> u64 {
        match self {
            Solver::Sgd { .. } | Solver::Nesterov { .. } | Solver::AdaGrad { .. } | Solver::RmsProp { .. } => 1,
            Solver::Adam { .. } | Solver::AdamW { .. } | Solver::AdaDelta { .. } => 2,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EarlyStop {
    pub patience: u64,
    pub metric: StopMetric,
}

/// The metric early stopping watches: accuracy (higher is better) or loss (lower is better).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopMetric {
    Accuracy,
    Loss,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

fn is_zero_f64(x: &f64) -> bool {
    *x == 0.0
}

/// Caffe's learning-rate policies (`solver.proto`), with `it` the iteration:
/// fixed: lr; step: lr·γ^⌊it/stepsize⌋; multistep: lr·γ^(number of steps ≤ it);
/// exp: lr·γ^it; inv: lr·(1 + γ·it)^(−power); poly: lr·(1 − it/max_iter)^power;
/// sigmoid: lr/(1 + e^(−γ·(it − stepsize)));
/// cosine (SGDR): min + (lr − min)·½(1 + cos(π·t/T)) with t the iteration within the current cycle
/// of length T (`cycle`, default the whole run; each cycle `cycle_mult` times longer than the last);
/// onecycle (Smith): from lr/div up to lr over the first `pct` of the run (cosine), then down to
/// lr/(div·final_div) (cosine), PyTorch's `OneCycleLR` with `max_lr = lr`.
/// With `warmup=W`, iterations 0..W rise linearly to the policy's first rate (lr·(it + 1)/W) and
/// the policy then runs over the remaining iterations as if they were the whole run.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum LrPolicy {
    Fixed,
    Step { gamma: f64, stepsize: u64 },
    Multistep { gamma: f64, steps: Vec<u64> },
    Exp { gamma: f64 },
    Inv { gamma: f64, power: f64 },
    Poly { power: f64 },
    Sigmoid { gamma: f64, stepsize: u64 },
    Cosine { min: f64, cycle: Option<u64>, cycle_mult: f64 },
    OneCycle { pct: f64, div: f64, final_div: f64 },
}

impl LrPolicy {
    /// The learning rate at iteration `it` (0-based) for base rate `base`.
    pub fn rate(&self, base: f64, it: u64, max_iter: u64) -> f64 {
        let itf = it as f64;
        match self {
            LrPolicy::Fixed => base,
            LrPolicy::Step { gamma, stepsize } => base * gamma.powi((it / stepsize.max(&1)) as i32),
            LrPolicy::Multistep { gamma, steps } => base * gamma.powi(steps.iter().filter(|&&s| it >= s).count() as i32),
            LrPolicy::Exp { gamma } => base * gamma.powf(itf),
            LrPolicy::Inv { gamma, power } => base * (1.0 + gamma * itf).powf(-power),
            LrPolicy::Poly { power } => base * (1.0 - itf / max_iter.max(1) as f64).max(0.0).powf(*power),
            LrPolicy::Sigmoid { gamma, stepsize } => base / (1.0 + (-gamma * (itf - *stepsize as f64)).exp()),
            LrPolicy::Cosine { min, cycle, cycle_mult } => {
                let mut len = cycle.unwrap_or(max_iter).max(1) as f64;
                let mut t = itf;
                while t >= len && *cycle_mult >= 1.0 && cycle.is_some() {
                    t -= len;
                    len *= cycle_mult;
                }
                let t = t.min(len);
                min + (base - min) * 0.5 * (1.0 + (std::f64::consts::PI * t / len).cos())
            }
            LrPolicy::OneCycle { pct, div, final_div } => {
                let total = max_iter.max(1) as f64;
                let up = (pct * total).max(1.0);
                let cos = |from: f64, to: f64, f: f64| to + (from - to) * 0.5 * (1.0 + (std::f64::consts::PI * f.clamp(0.0, 1.0)).cos());
                let start = base / div;
                if itf < up {
                    cos(start, base, itf / up)
                } else {
                    cos(base, start / final_div, (itf - up) / (total - up).max(1.0))
                }
            }
        }
    }

    /// The rate at iteration `it` of a run of `max_iter` iterations with `warmup` warm-up
    /// iterations in front (see the type's documentation).
    pub fn rate_with_warmup(&self, base: f64, it: u64, max_iter: u64, warmup: u64) -> f64 {
        if it < warmup {
            return self.rate(base, 0, max_iter.saturating_sub(warmup)) * (it + 1) as f64 / warmup as f64;
        }
        self.rate(base, it - warmup, max_iter.saturating_sub(warmup))
    }
}
