//! The engine's lowering target: a [`Plan`] is a topologically ordered list of layers
//! with per-sample shapes (no batch axis) and parameter specifications.
//!
//! Invariants checked by [`crate::engine::Network::new`] (violations are
//! [`EngineError`]s, never panics):
//! * `layers[i].inputs` only reference [`Input::Data`] or earlier layers `Layer(j)`, `j < i`;
//! * every layer's `out_shape` equals [`infer_out_shape`] of its kind and input shapes;
//! * every layer's `params` are exactly the names/shapes of [`expected_params`] (any order);
//! * the last layer is the only [`LayerKind::SoftmaxCrossEntropy`], and every other
//!   layer's output is consumed by some later layer.
//!
//! Shape conventions: images `[C, H, W]`, vectors `[F]`, sequences `[T, F]`. Parameter
//! layouts follow PyTorch (conv weight `[O, C/groups, kh, kw]`, linear weight `[out, in]`,
//! batch-norm `gamma`/`beta` `[C]`, RNN `weight_ih [H, F]`, `weight_hh [H, H]`, `bias [H]`,
//! LSTM the same with `4H` rows in gate order i, f, g, o).
//! [`PlanBuilder`] builds valid plans with default parameter specs (used by tests,
//! benchmarks, and available to the front end).

use serde::{Deserialize, Serialize};

use super::error::EngineError;
use crate::kernels::conv::conv_out;
use crate::kernels::pool::pool_out;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Per-sample input shape: `[C, H, W]`, `[F]`, or `[T, F]`.
    pub input_shape: Vec<usize>,
    pub layers: Vec<Layer>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub name: String,
    pub kind: LayerKind,
    pub inputs: Vec<Input>,
    /// Per-sample output shape (`[]` or `[1]` for the loss layer).
    pub out_shape: Vec<usize>,
    pub params: Vec<ParamSpec>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// The network input (one sample of `Plan::input_shape`).
    Data,
    /// The output of an earlier layer (index into `Plan::layers`).
    Layer(usize),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// `"weight" | "bias" | "gamma" | "beta" | "weight_ih" | "weight_hh"`.
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
    pub lr_mult: f32,
    pub decay_mult: f32,
}

/// Parameter initialisers (Caffe fillers). Fans follow Caffe's `filler.hpp`:
/// `fan_in = count / shape[0]`, `fan_out = count / shape[1]` (`= count` for 1-D shapes).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Init {
    Constant(f32),
    Uniform { min: f32, max: f32 },
    Gaussian { mean: f32, std: f32 },
    /// Uniform in `±sqrt(3/n)`.
    Xavier(VarianceNorm),
    /// Gaussian with std `sqrt(2/n)`.
    Msra(VarianceNorm),
}

/// Which fan `n` an initialiser uses; `Average = (fan_in + fan_out)/2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VarianceNorm {
    FanIn,
    FanOut,
    Average,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LayerKind {
    Conv2d {
        out_channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
        bias: bool,
    },
    MaxPool2d { kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2], ceil: bool },
    AvgPool2d { kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2], ceil: bool },
    /// On `[F]` input; on `[T, F]` applies per time step.
    Linear { out_features: usize, bias: bool },
    Relu,
    LeakyRelu { slope: f32 },
    Tanh,
    Sigmoid,
    /// Per channel (axis 0 of the per-sample shape). PyTorch momentum convention.
    BatchNorm { eps: f32, momentum: f32, affine: bool },
    Dropout { p: f32 },
    Flatten,
    /// Element-wise sum of ≥ 2 equally shaped inputs.
    Add,
    /// Concatenation of ≥ 1 inputs along per-sample axis 0.
    Concat,
    /// Elman RNN `[T, F] → [T, H]`.
    Rnn { hidden: usize },
    /// LSTM `[T, F] → [T, H]`.
    Lstm { hidden: usize },
    /// `[T, H] → [H]`.
    LastStep,
    /// Last layer: logits `[C]` or `[T, C]` → mean loss over the batch.
    SoftmaxCrossEntropy,
}

impl Plan {
    /// Checks every invariant that [`crate::engine::Network::new`] checks, without
    /// allocating any buffers.
    pub fn validate(&self) -> Result<(), EngineError> {
        super::compile::compile(self).map(|_| ())
    }

    /// Total number of parameter elements (after validation).
    pub fn param_count(&self) -> Result<usize, EngineError> {
        super::compile::compile(self).map(|c| c.n_params)
    }
}

impl LayerKind {
    /// Number of inputs the kind accepts: `(min, max)`.
    pub fn arity(&self) -> (usize, usize) {
        match self {
            LayerKind::Add => (2, usize::MAX),
            LayerKind::Concat => (1, usize::MAX),
            _ => (1, 1),
        }
    }
}

fn shape_err(layer: &str, msg: impl Into<String>) -> EngineError {
    EngineError::Shape { layer: layer.to_string(), msg: msg.into() }
}
fn cfg_err(layer: &str, msg: impl Into<String>) -> EngineError {
    EngineError::Config { layer: layer.to_string(), msg: msg.into() }
}

/// Per-sample output shape of `kind` applied to inputs of the given shapes.
pub fn infer_out_shape(name: &str, kind: &LayerKind, ins: &[Vec<usize>]) -> Result<Vec<usize>, EngineError> {
    let (lo, hi) = kind.arity();
    if ins.len() < lo || ins.len() > hi {
        return Err(shape_err(name, format!("expects {lo}..{} inputs, got {}", if hi == usize::MAX { "n".into() } else { hi.to_string() }, ins.len())));
    }
    if ins.iter().any(|s| s.contains(&0)) {
        return Err(shape_err(name, "input shape has a zero extent"));
    }
    let x = &ins[0];
    let need_rank = |r: usize, what: &str| -> Result<(), EngineError> {
        if x.len() != r {
            Err(shape_err(name, format!("expects {what} input, got shape {x:?}")))
        } else {
            Ok(())
        }
    };
    Ok(match kind {
        LayerKind::Conv2d { out_channels, kernel, stride, padding, dilation, groups, .. } => {
            need_rank(3, "[C,H,W]")?;
            if *groups == 0 || *out_channels == 0 || !x[0].is_multiple_of(*groups) || !out_channels.is_multiple_of(*groups) {
                return Err(cfg_err(name, format!("groups {groups} must divide in channels {} and out channels {out_channels}", x[0])));
            }
            let ho = conv_out(x[1], kernel[0], stride[0], padding[0], dilation[0]);
            let wo = conv_out(x[2], kernel[1], stride[1], padding[1], dilation[1]);
            match (ho, wo) {
                (Some(ho), Some(wo)) => vec![*out_channels, ho, wo],
                _ => return Err(cfg_err(name, format!("kernel {kernel:?} (stride {stride:?}, dilation {dilation:?}, padding {padding:?}) does not fit input {x:?}"))),
            }
        }
        LayerKind::MaxPool2d { kernel, stride, padding, ceil } | LayerKind::AvgPool2d { kernel, stride, padding, ceil } => {
            need_rank(3, "[C,H,W]")?;
            let ho = pool_out(x[1], kernel[0], stride[0], padding[0], *ceil);
            let wo = pool_out(x[2], kernel[1], stride[1], padding[1], *ceil);
            match (ho, wo) {
                (Some(ho), Some(wo)) => vec![x[0], ho, wo],
                _ => return Err(cfg_err(name, format!("pool kernel {kernel:?} stride {stride:?} padding {padding:?} invalid for input {x:?} (need padding < kernel ≤ padded input)"))),
            }
        }
        LayerKind::Linear { out_features, .. } => {
            if *out_features == 0 {
                return Err(cfg_err(name, "out_features must be > 0"));
            }
            match x.len() {
                1 => vec![*out_features],
                2 => vec![x[0], *out_features],
                _ => return Err(shape_err(name, format!("expects [F] or [T,F] input, got {x:?}"))),
            }
        }
        LayerKind::Relu | LayerKind::Tanh | LayerKind::Sigmoid => x.clone(),
        LayerKind::LeakyRelu { slope } => {
            if !slope.is_finite() {
                return Err(cfg_err(name, "slope must be finite"));
            }
            x.clone()
        }
        LayerKind::BatchNorm { eps, momentum, .. } => {
            if x.is_empty() {
                return Err(shape_err(name, "batch norm needs a channel axis"));
            }
            if !eps.is_finite() || *eps <= 0.0 || !(0.0..=1.0).contains(momentum) {
                return Err(cfg_err(name, "need eps > 0 and momentum in [0,1]"));
            }
            x.clone()
        }
        LayerKind::Dropout { p } => {
            if !(0.0..1.0).contains(p) {
                return Err(cfg_err(name, format!("dropout p = {p} not in [0,1)")));
            }
            x.clone()
        }
        LayerKind::Flatten => vec![x.iter().product()],
        LayerKind::Add => {
            if ins.iter().any(|s| s != x) {
                return Err(shape_err(name, format!("add inputs differ in shape: {ins:?}")));
            }
            x.clone()
        }
        LayerKind::Concat => {
            if x.is_empty() || ins.iter().any(|s| s.len() != x.len() || s[1..] != x[1..]) {
                return Err(shape_err(name, format!("concat inputs must agree except on axis 0: {ins:?}")));
            }
            let mut o = x.clone();
            o[0] = ins.iter().map(|s| s[0]).sum();
            o
        }
        LayerKind::Rnn { hidden } | LayerKind::Lstm { hidden } => {
            need_rank(2, "[T,F]")?;
            if *hidden == 0 {
                return Err(cfg_err(name, "hidden must be > 0"));
            }
            vec![x[0], *hidden]
        }
        LayerKind::LastStep => {
            need_rank(2, "[T,H]")?;
            vec![x[1]]
        }
        LayerKind::SoftmaxCrossEntropy => {
            if x.is_empty() || x.len() > 2 {
                return Err(shape_err(name, format!("expects logits [C] or [T,C], got {x:?}")));
            }
            vec![]
        }
    })
}

/// Parameter names and shapes required by `kind` on inputs of the given shapes, in the
/// engine's canonical order. Assumes the shapes passed [`infer_out_shape`].
pub fn expected_params(kind: &LayerKind, ins: &[Vec<usize>]) -> Vec<(&'static str, Vec<usize>)> {
    let x = &ins[0];
    match kind {
        LayerKind::Conv2d { out_channels, kernel, groups, bias, .. } => {
            let mut v = vec![("weight", vec![*out_channels, x[0] / groups, kernel[0], kernel[1]])];
            if *bias {
                v.push(("bias", vec![*out_channels]));
            }
            v
        }
        LayerKind::Linear { out_features, bias } => {
            let mut v = vec![("weight", vec![*out_features, *x.last().unwrap_or(&0)])];
            if *bias {
                v.push(("bias", vec![*out_features]));
            }
            v
        }
        LayerKind::BatchNorm { affine: true, .. } => vec![("gamma", vec![x[0]]), ("beta", vec![x[0]])],
        LayerKind::Rnn { hidden } => vec![
            ("weight_ih", vec![*hidden, x[1]]),
            ("weight_hh", vec![*hidden, *hidden]),
            ("bias", vec![*hidden]),
        ],
        LayerKind::Lstm { hidden } => vec![
            ("weight_ih", vec![4 * hidden, x[1]]),
            ("weight_hh", vec![4 * hidden, *hidden]),
            ("bias", vec![4 * hidden]),
        ],
        _ => vec![],
    }
}

/// Default initialiser for a parameter: weights MSRA(fan-in) for conv/linear,
/// Xavier(fan-in)-uniform for recurrent weights, gamma = 1, biases/beta = 0.
pub fn default_param(kind: &LayerKind, name: &str, shape: Vec<usize>) -> ParamSpec {
    let init = match (kind, name) {
        (_, "bias") | (_, "beta") => Init::Constant(0.0),
        (_, "gamma") => Init::Constant(1.0),
        (LayerKind::Rnn { .. } | LayerKind::Lstm { .. }, _) => Init::Xavier(VarianceNorm::FanIn),
        _ => Init::Msra(VarianceNorm::FanIn),
    };
    let decay_mult = if name == "weight" || name.starts_with("weight_") { 1.0 } else { 0.0 };
    ParamSpec { name: name.to_string(), shape, init, lr_mult: 1.0, decay_mult }
}

/// Convenience builder producing valid plans (shapes inferred, default parameters).
/// Each `add`-style call appends a layer whose input is the previous layer (or data).
#[derive(Clone, Debug)]
pub struct PlanBuilder {
    plan: Plan,
    shapes: Vec<Vec<usize>>,
    error: Option<EngineError>,
}

impl PlanBuilder {
    pub fn new(input_shape: &[usize]) -> Self {
        PlanBuilder { plan: Plan { input_shape: input_shape.to_vec(), layers: vec![] }, shapes: vec![], error: None }
    }
    /// Index the next layer will get.
    pub fn next_index(&self) -> usize {
        self.plan.layers.len()
    }
    /// The most recent layer (or data if none).
    pub fn last(&self) -> Input {
        if self.plan.layers.is_empty() {
            Input::Data
        } else {
            Input::Layer(self.plan.layers.len() - 1)
        }
    }
    /// Appends a layer with explicit inputs; returns its index.
    pub fn layer_from(&mut self, name: &str, kind: LayerKind, inputs: Vec<Input>) -> usize {
        let idx = self.plan.layers.len();
        if self.error.is_some() {
            return idx;
        }
        let mut ins = vec![];
        for i in &inputs {
            match i {
                Input::Data => ins.push(self.plan.input_shape.clone()),
                Input::Layer(j) if *j < idx => ins.push(self.shapes[*j].clone()),
                _ => {
                    self.error = Some(EngineError::InvalidPlan(format!("layer {name}: bad input {i:?}")));
                    return idx;
                }
            }
        }
        match infer_out_shape(name, &kind, &ins) {
            Ok(out) => {
                let params = expected_params(&kind, &ins).into_iter().map(|(n, s)| default_param(&kind, n, s)).collect();
                self.shapes.push(out.clone());
                self.plan.layers.push(Layer { name: name.to_string(), kind, inputs, out_shape: out, params });
            }
            Err(e) => self.error = Some(e),
        }
        idx
    }
    /// Appends a layer fed by the previous layer.
    pub fn push(mut self, name: &str, kind: LayerKind) -> Self {
        let last = self.last();
        self.layer_from(name, kind, vec![last]);
        self
    }
    pub fn conv(self, name: &str, out: usize, k: usize, stride: usize, pad: usize) -> Self {
        self.push(
            name,
            LayerKind::Conv2d { out_channels: out, kernel: [k, k], stride: [stride, stride], padding: [pad, pad], dilation: [1, 1], groups: 1, bias: true },
        )
    }
    pub fn max_pool(self, name: &str, k: usize, s: usize) -> Self {
        self.push(name, LayerKind::MaxPool2d { kernel: [k, k], stride: [s, s], padding: [0, 0], ceil: false })
    }
    pub fn linear(self, name: &str, out: usize) -> Self {
        self.push(name, LayerKind::Linear { out_features: out, bias: true })
    }
    pub fn relu(self, name: &str) -> Self {
        self.push(name, LayerKind::Relu)
    }
    pub fn batch_norm(self, name: &str) -> Self {
        self.push(name, LayerKind::BatchNorm { eps: 1e-5, momentum: 0.1, affine: true })
    }
    pub fn flatten(self, name: &str) -> Self {
        self.push(name, LayerKind::Flatten)
    }
    pub fn loss(self) -> Self {
        self.push("loss", LayerKind::SoftmaxCrossEntropy)
    }
    /// Mutable access to the plan under construction (e.g. to change inits).
    pub fn plan_mut(&mut self) -> &mut Plan {
        &mut self.plan
    }
    pub fn build(self) -> Result<Plan, EngineError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.plan),
        }
    }
}

/// The benchmark net: conv6@5→relu→maxpool2→conv16@5→relu→maxpool2→fc120→relu→fc84→relu→fc10
/// on `3×32×32`, optionally with batch norm after every conv.
pub fn simple_net(bn: bool) -> Plan {
    let mut b = PlanBuilder::new(&[3, 32, 32]).conv("conv1", 6, 5, 1, 0);
    if bn {
        b = b.batch_norm("bn1");
    }
    b = b.relu("relu1").max_pool("pool1", 2, 2).conv("conv2", 16, 5, 1, 0);
    if bn {
        b = b.batch_norm("bn2");
    }
    b.relu("relu2")
        .max_pool("pool2", 2, 2)
        .flatten("flat")
        .linear("fc1", 120)
        .relu("relu3")
        .linear("fc2", 84)
        .relu("relu4")
        .linear("fc3", 10)
        .loss()
        .build()
        .expect("static plan is valid")
}

/// LeNet-MNIST: conv20@5→maxpool2→conv50@5→maxpool2→fc500→relu→fc10 on `1×28×28`,
/// optionally with batch norm after every conv.
pub fn lenet(bn: bool) -> Plan {
    let mut b = PlanBuilder::new(&[1, 28, 28]).conv("conv1", 20, 5, 1, 0);
    if bn {
        b = b.batch_norm("bn1");
    }
    b = b.max_pool("pool1", 2, 2).conv("conv2", 50, 5, 1, 0);
    if bn {
        b = b.batch_norm("bn2");
    }
    b.max_pool("pool2", 2, 2)
        .flatten("flat")
        .linear("fc1", 500)
        .relu("relu1")
        .linear("fc2", 10)
        .loss()
        .build()
        .expect("static plan is valid")
}
