//! Stage: lowering a checked experiment to the engine's [`Plan`].
//!
//! Invariants of the produced plan:
//! - Layers appear in a topological order and only the layers that feed the loss are kept
//!   (`accuracy` is computed by the engine from the loss layer's logits; unused branches, already
//!   warned about by the check stage, are dropped). The loss layer is last.
//! - An `fc` on a C×H×W input reads it flattened (Caffe's InnerProduct): an explicit `Flatten`
//!   named `<fc>.flatten_input` is inserted before it.
//! - Parameter names follow the engine (`weight`, `bias`, `gamma`, `beta`, `weight_ih`, `weight_hh`)
//!   with the spec's initialisers and multipliers; out shapes come from the engine's own shape
//!   rules, so a plan that lowers is a plan the engine accepts.

use crate::diagnostic::Diagnostic;
use crate::engine::plan::{expected_params, infer_out_shape, Init as EInit, Input, Layer, LayerKind, ParamSpec as EParam, Plan, VarianceNorm as ENorm};
use crate::ops::activation::Activation;
use crate::ops::pool::{PoolKind, Rounding};
use crate::ops::Op;
use crate::spec::{Experiment, Init, LayerSpec, ParamSpec, VarianceNorm};
use std::collections::HashMap;

fn err(layer: &LayerSpec, msg: String) -> Diagnostic {
    Diagnostic::error("E0300", format!("layer `{}` cannot be lowered: {msg}", layer.name)).primary(layer.span, "this layer")
}

fn init(i: &Init) -> EInit {
    let norm = |n: &VarianceNorm| match n {
        VarianceNorm::FanIn => ENorm::FanIn,
        VarianceNorm::FanOut => ENorm::FanOut,
        VarianceNorm::Average => ENorm::Average,
    };
    match i {
        Init::Constant { value } => EInit::Constant(*value as f32),
        Init::Uniform { min, max } => EInit::Uniform { min: *min as f32, max: *max as f32 },
        Init::Gaussian { mean, std } => EInit::Gaussian { mean: *mean as f32, std: *std as f32 },
        Init::Xavier { norm: n } => EInit::Xavier(norm(n)),
        Init::Msra { norm: n } => EInit::Msra(norm(n)),
    }
}

fn param(name: &str, shape: Vec<usize>, spec: Option<&ParamSpec>) -> EParam {
    let (i, lr, decay) = match spec {
        Some(p) => (init(&p.init), p.lr_mult as f32, p.decay_mult as f32),
        None => (EInit::Constant(0.0), 1.0, 0.0),
    };
    EParam { name: name.to_string(), shape, init: i, lr_mult: lr, decay_mult: decay }
}

fn kind(l: &LayerSpec, input: &[usize]) -> Result<Option<LayerKind>, String> {
    let u = |x: u64| x as usize;
    let pair = |p: [u64; 2]| [u(p[0]), u(p[1])];
    Ok(Some(match &l.op {
        Op::Input(_) | Op::Accuracy(_) => return Ok(None),
        Op::Conv(c) => LayerKind::Conv2d {
            out_channels: u(c.out_channels),
            kernel: pair(c.kernel),
            stride: pair(c.stride),
            padding: pair(c.padding),
            dilation: pair(c.dilation),
            groups: u(c.groups),
            bias: c.bias,
        },
        Op::Pool(p) => {
            let (kernel, stride) = match p.kernel {
                Some(k) => (pair(k), pair(p.stride)),
                None if input.len() == 3 => ([input[1], input[2]], [1, 1]),
                None => return Err(format!("global pooling needs a C×H×W input, found {input:?}")),
            };
            let (padding, ceil) = (pair(p.padding), p.rounding == Rounding::Ceil);
            match p.kind {
                PoolKind::Max => LayerKind::MaxPool2d { kernel, stride, padding, ceil },
                PoolKind::Avg => LayerKind::AvgPool2d { kernel, stride, padding, ceil },
            }
        }
        Op::Linear(f) => LayerKind::Linear { out_features: u(f.out_features), bias: f.bias },
        Op::Activation(Activation::Relu) => LayerKind::Relu,
        Op::Activation(Activation::LeakyRelu { slope }) => LayerKind::LeakyRelu { slope: *slope as f32 },
        Op::Activation(Activation::Tanh) => LayerKind::Tanh,
        Op::Activation(Activation::Sigmoid) => LayerKind::Sigmoid,
        Op::BatchNorm(b) => LayerKind::BatchNorm { eps: b.eps as f32, momentum: b.momentum as f32, affine: b.affine },
        Op::Dropout(d) => LayerKind::Dropout { p: d.p as f32 },
        Op::Flatten => LayerKind::Flatten,
        Op::Add => LayerKind::Add,
        Op::Concat => LayerKind::Concat,
        Op::Rnn(r) => LayerKind::Rnn { hidden: u(r.hidden) },
        Op::Lstm(r) => LayerKind::Lstm { hidden: u(r.hidden) },
        Op::Last => LayerKind::LastStep,
        Op::SoftmaxLoss => LayerKind::SoftmaxCrossEntropy,
    }))
}

/// Lowers the experiment's model. Errors are reported against the layer's line.
pub fn lower(exp: &Experiment) -> Result<Plan, Vec<Diagnostic>> {
    let layers = &exp.model.layers;
    let by_name: HashMap<&str, usize> = layers.iter().enumerate().map(|(i, l)| (l.name.as_str(), i)).collect();
    let Some(input) = layers.iter().find(|l| matches!(l.op, Op::Input(_))) else {
        return Err(vec![Diagnostic::error("E0114", "the model has no `input` layer").primary(exp.model.span, "model here")]);
    };
    let input_shape: Vec<usize> = match &input.op {
        Op::Input(i) => i.shape.iter().map(|&d| d as usize).collect(),
        _ => unreachable!("found by its op"),
    };
    let losses: Vec<usize> = layers.iter().enumerate().filter(|(_, l)| matches!(l.op, Op::SoftmaxLoss)).map(|(i, _)| i).collect();
    let loss = match losses.as_slice() {
        [one] => *one,
        [] => {
            return Err(vec![Diagnostic::error("E0301", "the model has no loss: nothing to train")
                .primary(exp.model.span, "no `softmax_loss` layer in this model")
                .help("end the model with `loss: softmax_loss`")])
        }
        [_, second, ..] => {
            return Err(vec![Diagnostic::error("E0302", "the engine trains one loss per model")
                .primary(layers[*second].span, "second loss")
                .secondary(layers[losses[0]].span, "first loss")])
        }
    };
    // Layers the loss depends on (depth-first from the loss), in a topological order.
    let mut order = vec![];
    let mut state = vec![0u8; layers.len()]; // 0 new, 1 on stack, 2 done
    let mut stack = vec![(loss, false)];
    while let Some((i, expanded)) = stack.pop() {
        if expanded {
            state[i] = 2;
            order.push(i);
            continue;
        }
        if state[i] != 0 {
            if state[i] == 1 {
                return Err(vec![err(&layers[i], "its inputs form a cycle".into())]);
            }
            continue;
        }
        state[i] = 1;
        stack.push((i, true));
        for r in layers[i].inputs.iter().rev() {
            match by_name.get(r.name.as_str()) {
                Some(&j) if state[j] == 1 => return Err(vec![err(&layers[i], format!("input `{}` forms a cycle", r.name))]),
                Some(&j) => stack.push((j, false)),
                None => return Err(vec![err(&layers[i], format!("unknown input `{}`", r.name))]),
            }
        }
    }
    let mut plan = Plan { input_shape: input_shape.clone(), layers: vec![] };
    // Spec index → (plan input, per-sample shape).
    let mut produced: HashMap<usize, (Input, Vec<usize>)> = HashMap::new();
    let mut diags = vec![];
    for &i in &order {
        let l = &layers[i];
        if matches!(l.op, Op::Input(_)) {
            produced.insert(i, (Input::Data, input_shape.clone()));
            continue;
        }
        let ins: Vec<(Input, Vec<usize>)> = l.inputs.iter().map(|r| produced[&by_name[r.name.as_str()]].clone()).collect();
        let mut inputs: Vec<Input> = ins.iter().map(|x| x.0).collect();
        let mut shapes: Vec<Vec<usize>> = ins.iter().map(|x| x.1.clone()).collect();
        let k = match kind(l, &shapes[0]) {
            Ok(Some(k)) => k,
            Ok(None) => continue,
            Err(m) => {
                diags.push(err(l, m));
                break;
            }
        };
        if matches!(k, LayerKind::Linear { .. }) && shapes[0].len() == 3 {
            let flat = vec![shapes[0].iter().product()];
            plan.layers.push(Layer {
                name: format!("{}.flatten_input", l.name),
                kind: LayerKind::Flatten,
                inputs: inputs.clone(),
                out_shape: flat.clone(),
                params: vec![],
            });
            inputs = vec![Input::Layer(plan.layers.len() - 1)];
            shapes = vec![flat];
        }
        let out = match infer_out_shape(&l.name, &k, &shapes) {
            Ok(o) => o,
            Err(e) => {
                diags.push(err(l, e.to_string()));
                break;
            }
        };
        let params = expected_params(&k, &shapes)
            .into_iter()
            .map(|(n, s)| {
                let spec = match n {
                    "weight" | "gamma" | "weight_ih" | "weight_hh" => l.weight.as_ref(),
                    _ => l.bias.as_ref(),
                };
                param(n, s, spec)
            })
            .collect();
        plan.layers.push(Layer { name: l.name.clone(), kind: k, inputs, out_shape: out.clone(), params });
        produced.insert(i, (Input::Layer(plan.layers.len() - 1), out));
    }
    if diags.is_empty() {
        Ok(plan)
    } else {
        Err(diags)
    }
}
