//! The operators of the language, one file each.
//!
//! Each op file holds, in one place, what the op *is*: its attributes and how they are read
//! from a layer line (`parse`), and — added by the graph stage — its output shape from its
//! input shapes, its parameter shapes and its cost. The [`Op`] enum is the vocabulary shared
//! by the resolver, the graph, the report and the engine's lowering.

pub mod accuracy;
pub mod activation;
pub mod batchnorm;
pub mod concat;
pub mod conv;
pub mod dropout;
pub mod elementwise_add;
pub mod flatten;
pub mod input;
pub mod last;
pub mod linear;
pub mod lstm;
pub mod pool;
pub mod rnn;
pub mod shape;
pub mod softmax_loss;

use crate::args::Args;
use crate::param::ParamSpec;
use serde::Serialize;
use shape::{count, Cost, Dims, ParamShapes, ShapeError};

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Input(input::Input),
    Conv(conv::Conv),
    Pool(pool::Pool),
    Linear(linear::Linear),
    Activation(activation::Activation),
    BatchNorm(batchnorm::BatchNorm),
    Dropout(dropout::Dropout),
    Flatten,
    Add,
    Concat,
    Rnn(rnn::Rnn),
    Lstm(lstm::Lstm),
    Last,
    SoftmaxLoss(softmax_loss::SoftmaxLoss),
    Accuracy(accuracy::Accuracy),
}

/// The layer heads a model line may start with, for "did you mean" and completion.
pub fn heads() -> Vec<&'static str> {
    let mut h = vec!["input", "conv", "maxpool", "avgpool", "fc", "linear"];
    h.extend_from_slice(activation::Activation::HEADS);
    h.extend_from_slice(&["batchnorm", "bn", "dropout", "flatten", "add", "concat", "rnn", "lstm", "last", "softmax_loss", "loss", "accuracy"]);
    h
}

impl Op {
    /// Reads the op named by `head` from its arguments; `None` when the head is unknown
    /// (the caller reports that) or the arguments had errors (recorded in `args`).
    pub fn parse(head: &str, a: &mut Args) -> Option<Option<Op>> {
        Some(match head {
            "input" => input::Input::parse(a).map(Op::Input),
            "conv" => conv::Conv::parse(a).map(Op::Conv),
            "maxpool" => pool::Pool::parse(pool::PoolKind::Max, a).map(Op::Pool),
            "avgpool" => pool::Pool::parse(pool::PoolKind::Avg, a).map(Op::Pool),
            "fc" | "linear" => linear::Linear::parse(a).map(Op::Linear),
            h if activation::Activation::HEADS.contains(&h) => activation::Activation::parse(h, a).map(Op::Activation),
            "batchnorm" | "bn" => batchnorm::BatchNorm::parse(a).map(Op::BatchNorm),
            "dropout" => dropout::Dropout::parse(a).map(Op::Dropout),
            "flatten" => Some(Op::Flatten),
            "add" => Some(Op::Add),
            "concat" => Some(Op::Concat),
            "rnn" => rnn::Rnn::parse(a).map(Op::Rnn),
            "lstm" => lstm::Lstm::parse(a).map(Op::Lstm),
            "last" => Some(Op::Last),
            "softmax_loss" | "loss" => softmax_loss::SoftmaxLoss::parse(a).map(Op::SoftmaxLoss),
            "accuracy" => accuracy::Accuracy::parse(a).map(Op::Accuracy),
            _ => return None,
        })
    }

    /// The canonical head word, used in auto-generated layer names and reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input(_) => "input",
            Op::Conv(_) => "conv",
            Op::Pool(p) => match p.kind {
                pool::PoolKind::Max => "maxpool",
                pool::PoolKind::Avg => "avgpool",
            },
            Op::Linear(_) => "fc",
            Op::Activation(a) => a.name(),
            Op::BatchNorm(_) => "batchnorm",
            Op::Dropout(_) => "dropout",
            Op::Flatten => "flatten",
            Op::Add => "add",
            Op::Concat => "concat",
            Op::Rnn(_) => "rnn",
            Op::Lstm(_) => "lstm",
            Op::Last => "last",
            Op::SoftmaxLoss(_) => "softmax_loss",
            Op::Accuracy(_) => "accuracy",
        }
    }

    /// Whether the op has a weight tensor (and so takes `init=`, `lr_mult=`, …).
    pub fn has_weights(&self) -> bool {
        matches!(self, Op::Conv(_) | Op::Linear(_) | Op::Rnn(_) | Op::Lstm(_)) || matches!(self, Op::BatchNorm(b) if b.affine)
    }

    /// Whether the op has a bias tensor.
    pub fn has_bias(&self) -> bool {
        match self {
            Op::Conv(c) => c.bias,
            Op::Linear(l) => l.bias,
            Op::Rnn(_) | Op::Lstm(_) => true,
            Op::BatchNorm(b) => b.affine,
            _ => false,
        }
    }

    /// The settings of the weight tensors and of the bias tensors when the layer line sets none:
    /// each op file states its own (`DEFAULT_WEIGHT`, `DEFAULT_BIAS`).
    pub fn default_params(&self) -> (ParamSpec, ParamSpec) {
        match self {
            Op::BatchNorm(_) => (batchnorm::DEFAULT_WEIGHT, batchnorm::DEFAULT_BIAS),
            Op::Conv(_) => (conv::DEFAULT_WEIGHT, conv::DEFAULT_BIAS),
            Op::Rnn(_) => (rnn::DEFAULT_WEIGHT, rnn::DEFAULT_BIAS),
            Op::Lstm(_) => (lstm::DEFAULT_WEIGHT, lstm::DEFAULT_BIAS),
            _ => (linear::DEFAULT_WEIGHT, linear::DEFAULT_BIAS),
        }
    }

    /// Ops whose positional names are their inputs (`add a b`).
    pub fn takes_named_inputs(&self) -> bool {
        matches!(self, Op::Add | Op::Concat)
    }

    /// Loss and metric heads read the logits: a layer after them still continues from the
    /// layer before them, and they are not "the previous layer" of what follows.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Op::SoftmaxLoss(_) | Op::Accuracy(_))
    }
}

/// Shape rules, parameters and costs, dispatched to the op files.
impl Op {
    /// The per-sample output shape from the per-sample input shapes (callers pass as many
    /// inputs as the layer names; `input` takes none).
    pub fn output_shape(&self, ins: &[&[u64]]) -> Result<Dims, ShapeError> {
        let x = ins.first().copied().unwrap_or(&[]);
        match self {
            Op::Input(i) => Ok(i.shape()),
            Op::Conv(c) => c.shape(x),
            Op::Pool(p) => p.shape(x),
            Op::Linear(l) => l.shape(x),
            Op::Activation(_) | Op::Dropout(_) => Ok(x.to_vec()),
            Op::BatchNorm(b) => b.shape(x),
            Op::Flatten => Ok(flatten::shape(x)),
            Op::Add => elementwise_add::shape(ins),
            Op::Concat => concat::shape(ins),
            Op::Rnn(r) => r.shape(x),
            Op::Lstm(l) => l.shape(x),
            Op::Last => last::shape(x),
            Op::SoftmaxLoss(_) => softmax_loss::shape(x),
            Op::Accuracy(a) => a.shape(x),
        }
    }

    /// Parameter tensors for these inputs (valid once [`Op::output_shape`] accepted them).
    pub fn params(&self, ins: &[&[u64]]) -> ParamShapes {
        let x = ins.first().copied().unwrap_or(&[]);
        match self {
            Op::Conv(c) => c.params(x),
            Op::Linear(l) => l.params(x),
            Op::BatchNorm(b) => b.params(x),
            Op::Rnn(r) => r.params(x),
            Op::Lstm(l) => l.params(x),
            _ => ParamShapes::default(),
        }
    }

    /// Work per sample (valid once [`Op::output_shape`] accepted the inputs).
    pub fn cost(&self, ins: &[&[u64]], out: &[u64]) -> Cost {
        let x = ins.first().copied().unwrap_or(&[]);
        match self {
            Op::Conv(c) => c.cost(x, out),
            Op::Pool(p) => p.cost(x, out),
            Op::Linear(l) => l.cost(x),
            Op::Activation(a) => a.cost(x),
            Op::BatchNorm(b) => b.cost(x),
            Op::Dropout(d) => d.cost(x),
            Op::Add => elementwise_add::cost(ins),
            Op::Rnn(r) => r.cost(x),
            Op::Lstm(l) => l.cost(x),
            Op::SoftmaxLoss(_) => softmax_loss::cost(x),
            Op::Accuracy(_) => Cost { elementwise: count(x), ..Cost::default() },
            Op::Input(_) | Op::Flatten | Op::Concat | Op::Last => Cost::default(),
        }
    }
}
