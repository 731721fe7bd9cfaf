//! `expc export onnx`: the inference graph of a lowered [`Plan`] with trained weights, as an ONNX
//! model (opset 17, IR version 8), written without any ONNX library ([`proto`] is the wire format).
//!
//! The graph reads `input` (`[batch, …]`, the plan's per-sample shape: preprocessed values, as
//! the engine sees them; the model's `metadata_props` say how pixels become values) and returns
//! `logits` (the loss's input) and `probabilities` (their softmax over the last axis). It
//! computes exactly the engine's evaluation forward pass:
//! - conv → `Conv`; fc → `Gemm` (`Flatten` first on images), or `MatMul` + `Add` per time step;
//! - batch norm → `BatchNormalization` with the running statistics (γ = 1, β = 0 without affine);
//! - max pool → `MaxPool`, average pool → `AveragePool` without counting padding, times a
//!   constant map `inside / divisor` where expc's (Caffe's) divisor differs (windows reaching
//!   into the padding); ceil rounding becomes extra end padding; global pools → `Global…Pool`;
//! - gelu = x·½(1 + erf(x/√2)), silu = x·σ(x); dropout is the identity;
//! - rnn/lstm → ONNX `RNN`/`LSTM` (time-major, so transposed around it; LSTM gates reordered
//!   from PyTorch's i,f,g,o to ONNX's i,o,f,c); `last` → `Gather` of the last step.
//!
//! Layers with `share=` read the owner's tensors; every tensor is stored once.

pub mod proto;

use crate::lower::{Plan, PlanLayer, Producer};
use crate::ops::activation::Activation;
use crate::ops::pool::PoolKind;
use crate::ops::Op;
use crate::run::checkpoint::Tensors;
use crate::run::engine_model::checkpoint_name;
use proto::Message;

pub const OPSET: i64 = 17;
const IR_VERSION: i64 = 8;

// onnx.proto enums.
const FLOAT: i64 = 1;
const INT64: i64 = 7;
const ATTR_FLOAT: i64 = 1;
const ATTR_INT: i64 = 2;
const ATTR_INTS: i64 = 7;

enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
}

/// The graph being built: nodes, initialisers, and a counter for fresh value names.
#[derive(Default)]
struct Builder {
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    /// Names of the initialisers, each written once.
    stored: std::collections::HashSet<String>,
    fresh: usize,
}

impl Builder {
    fn node(&mut self, op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<(&str, Attr)>) {
        let mut n = Message::new();
        for i in inputs {
            n.string(1, i);
        }
        for o in outputs {
            n.string(2, o);
        }
        n.string(3, &format!("{op}_{}", self.nodes.len()));
        n.string(4, op);
        for (name, a) in attrs {
            let mut m = Message::new();
            m.string(1, name);
            match a {
                Attr::Int(v) => m.int(3, v).int(20, ATTR_INT),
                Attr::Ints(v) => m.ints(8, &v).int(20, ATTR_INTS),
                Attr::Float(v) => m.float(2, v).int(20, ATTR_FLOAT),
            };
            n.message(5, &m);
        }
        self.nodes.push(n);
    }

    /// A value name not used before, derived from `base`.
    fn value(&mut self, base: &str) -> String {
        self.fresh += 1;
        format!("{base}/{}", self.fresh)
    }

    fn tensor(&mut self, name: &str, dims: &[usize], values: &[f32]) {
        if !self.stored.insert(name.to_string()) {
            return;
        }
        let mut t = Message::new();
        t.ints(1, &dims.iter().map(|&d| d as i64).collect::<Vec<_>>()).int(2, FLOAT).string(8, name);
        t.bytes(9, &values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
        self.initializers.push(t);
    }

    fn int_tensor(&mut self, name: &str, dims: &[usize], values: &[i64]) {
        let mut t = Message::new();
        t.ints(1, &dims.iter().map(|&d| d as i64).collect::<Vec<_>>()).int(2, INT64).string(8, name);
        t.bytes(9, &values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
        self.initializers.push(t);
    }

    /// A fresh scalar constant.
    fn scalar(&mut self, base: &str, v: f32) -> String {
        let name = self.value(base);
        self.tensor(&name, &[], &[v]);
        name
    }
}

fn value_info(name: &str, dims: &[Dim]) -> Message {
    let mut shape = Message::new();
    for d in dims {
        let mut dim = Message::new();
        match d {
            Dim::Batch => dim.string(2, "batch"),
            Dim::Fixed(v) => dim.int(1, *v as i64),
        };
        shape.message(1, &dim);
    }
    let mut tensor = Message::new();
    tensor.int(1, FLOAT).message(2, &shape);
    let mut ty = Message::new();
    ty.message(1, &tensor);
    let mut v = Message::new();
    v.string(1, name).message(2, &ty);
    v
}

enum Dim {
    Batch,
    Fixed(usize),
}

fn batch_dims(shape: &[usize]) -> Vec<Dim> {
    std::iter::once(Dim::Batch).chain(shape.iter().map(|&d| Dim::Fixed(d))).collect()
}

/// Why a plan and its weights cannot be exported.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxError(pub String);

impl std::fmt::Display for OnnxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Exports `plan` with the tensors of a checkpoint (checkpoint names, as `expc run` writes them);
/// `metadata` becomes the model's `metadata_props`. Returns the serialized ModelProto.
pub fn export(plan: &Plan, weights: &Tensors, metadata: &[(String, String)]) -> Result<Vec<u8>, OnnxError> {
    let mut b = Builder::default();
    let n = plan.layers.len();
    let mut values: Vec<String> = vec![String::new(); n];
    let input = "input".to_string();
    let name_of = |values: &Vec<String>, p: &Producer| match p {
        Producer::Data => input.clone(),
        Producer::Layer(j) => values[*j].clone(),
    };
    // A checkpoint tensor, added as an initialiser once (shared layers read the owner's).
    let mut param = |b: &mut Builder, l: &PlanLayer, p: &str| -> Result<(String, Vec<usize>, Vec<f32>), OnnxError> {
        let owner = l.shares.and_then(|o| plan.layers.get(o)).unwrap_or(l);
        let name = checkpoint_name(&owner.op, &owner.name, p);
        let (shape, data) = weights.get(&name).cloned().ok_or_else(|| OnnxError(format!("the checkpoint has no tensor `{name}`")))?;
        let wanted = owner.params.iter().find(|q| q.name == p).map(|q| q.shape.clone()).unwrap_or_default();
        if shape != wanted || shape.iter().product::<usize>() != data.len() {
            return Err(OnnxError(format!("tensor `{name}` has shape {shape:?} ({} values); the model needs {wanted:?}", data.len())));
        }
        b.tensor(&name, &shape, &data);
        Ok((name, shape, data))
    };
    let mut logits = None;
    for (i, l) in plan.layers.iter().enumerate() {
        let ins: Vec<String> = l.inputs.iter().map(|p| name_of(&values, p)).collect();
        let x = ins.first().cloned().unwrap_or_else(|| input.clone());
        let xs = l.input_shapes.first().cloned().unwrap_or_default();
        let out = l.name.clone();
        match &l.op {
            Op::Conv(c) => {
                let (w, _, _) = param(&mut b, l, "weight")?;
                let mut inputs = vec![x.as_str(), w.as_str()];
                let bias = if c.bias { Some(param(&mut b, l, "bias")?.0) } else { None };
                if let Some(bn) = &bias {
                    inputs.push(bn);
                }
                let i64s = |v: [u64; 2]| v.iter().map(|&d| d as i64).collect::<Vec<_>>();
                b.node(
                    "Conv",
                    &inputs,
                    &[&out],
                    vec![
                        ("kernel_shape", Attr::Ints(i64s(c.kernel))),
                        ("strides", Attr::Ints(i64s(c.stride))),
                        ("pads", Attr::Ints(vec![c.padding[0] as i64, c.padding[1] as i64, c.padding[0] as i64, c.padding[1] as i64])),
                        ("dilations", Attr::Ints(i64s(c.dilation))),
                        ("group", Attr::Int(c.groups as i64)),
                    ],
                );
            }
            Op::Pool(p) => pool(&mut b, p, &xs, &l.out_shape, &x, &out),
            Op::Linear(f) => {
                let (w, _, _) = param(&mut b, l, "weight")?;
                let bias = if f.bias { Some(param(&mut b, l, "bias")?.0) } else { None };
                if xs.len() == 2 {
                    // Per time step: [N, T, F] · Wᵀ + b.
                    let wt = b.value(&format!("{}.weight_t", l.name));
                    b.node("Transpose", &[&w], &[&wt], vec![("perm", Attr::Ints(vec![1, 0]))]);
                    match bias {
                        Some(bias) => {
                            let mm = b.value(&out);
                            b.node("MatMul", &[&x, &wt], &[&mm], vec![]);
                            b.node("Add", &[&mm, &bias], &[&out], vec![]);
                        }
                        None => b.node("MatMul", &[&x, &wt], &[&out], vec![]),
                    }
                } else {
                    let flat = if xs.len() == 1 {
                        x.clone()
                    } else {
                        let v = b.value(&format!("{}.flat", l.name));
                        b.node("Flatten", &[&x], &[&v], vec![("axis", Attr::Int(1))]);
                        v
                    };
                    let mut inputs = vec![flat.as_str(), w.as_str()];
                    if let Some(bn) = &bias {
                        inputs.push(bn);
                    }
                    b.node("Gemm", &inputs, &[&out], vec![("transB", Attr::Int(1))]);
                }
            }
            Op::Activation(a) => match a {
                Activation::Relu => b.node("Relu", &[&x], &[&out], vec![]),
                Activation::LeakyRelu { slope } => b.node("LeakyRelu", &[&x], &[&out], vec![("alpha", Attr::Float(*slope as f32))]),
                Activation::Tanh => b.node("Tanh", &[&x], &[&out], vec![]),
                Activation::Sigmoid => b.node("Sigmoid", &[&x], &[&out], vec![]),
                Activation::Silu => {
                    let s = b.value(&out);
                    b.node("Sigmoid", &[&x], &[&s], vec![]);
                    b.node("Mul", &[&x, &s], &[&out], vec![]);
                }
                Activation::Gelu => {
                    let (r2, one, half) = (b.scalar("sqrt2", std::f32::consts::SQRT_2), b.scalar("one", 1.0), b.scalar("half", 0.5));
                    let (d, e, p, m) = (b.value(&out), b.value(&out), b.value(&out), b.value(&out));
                    b.node("Div", &[&x, &r2], &[&d], vec![]);
                    b.node("Erf", &[&d], &[&e], vec![]);
                    b.node("Add", &[&e, &one], &[&p], vec![]);
                    b.node("Mul", &[&x, &p], &[&m], vec![]);
                    b.node("Mul", &[&m, &half], &[&out], vec![]);
                }
            },
            Op::BatchNorm(bn) => {
                let c = xs.first().copied().unwrap_or(0);
                let (scale, bias) = if bn.affine {
                    (param(&mut b, l, "weight")?.0, param(&mut b, l, "bias")?.0)
                } else {
                    let (s, z) = (b.value(&format!("{}.ones", l.name)), b.value(&format!("{}.zeros", l.name)));
                    b.tensor(&s, &[c], &vec![1.0; c]);
                    b.tensor(&z, &[c], &vec![0.0; c]);
                    (s, z)
                };
                let stat = |b: &mut Builder, what: &str| -> Result<String, OnnxError> {
                    let name = format!("{}.{what}", l.name);
                    let (shape, data) = weights.get(&name).ok_or_else(|| OnnxError(format!("the checkpoint has no tensor `{name}`")))?;
                    if data.len() != c {
                        return Err(OnnxError(format!("tensor `{name}` has {} values for {c} channels", data.len())));
                    }
                    b.tensor(&name, shape, data);
                    Ok(name)
                };
                let (mean, var) = (stat(&mut b, "running_mean")?, stat(&mut b, "running_var")?);
                b.node("BatchNormalization", &[&x, &scale, &bias, &mean, &var], &[&out], vec![("epsilon", Attr::Float(bn.eps as f32))]);
            }
            Op::Dropout(_) => {
                values[i] = x;
                continue;
            }
            Op::Flatten => b.node("Flatten", &[&x], &[&out], vec![("axis", Attr::Int(1))]),
            Op::Add => {
                let refs: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
                b.node("Sum", &refs, &[&out], vec![]);
            }
            Op::Concat => {
                let refs: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
                b.node("Concat", &refs, &[&out], vec![("axis", Attr::Int(1))]);
            }
            Op::Rnn(_) | Op::Lstm(_) => recurrent(&mut b, &mut param, weights, plan, l, &x, &out)?,
            Op::Last => {
                let t = xs.first().copied().unwrap_or(1);
                let idx = b.value(&format!("{}.index", l.name));
                b.int_tensor(&idx, &[], &[t as i64 - 1]);
                b.node("Gather", &[&x, &idx], &[&out], vec![("axis", Attr::Int(1))]);
            }
            Op::SoftmaxLoss(_) => {
                b.node("Identity", &[&x], &["logits"], vec![]);
                b.node("Softmax", &[&x], &["probabilities"], vec![("axis", Attr::Int(-1))]);
                logits = Some(xs.clone());
                values[i] = "logits".into();
                continue;
            }
            Op::Input(_) | Op::Accuracy(_) => return Err(OnnxError(format!("`{}` is not a layer of a lowered plan", l.op.kind()))),
        }
        values[i] = out;
    }
    let logits = logits.ok_or_else(|| OnnxError("the plan has no loss, so no logits to export".into()))?;
    let mut graph = Message::new();
    for node in &b.nodes {
        graph.message(1, node);
    }
    graph.string(2, "expc");
    for t in &b.initializers {
        graph.message(5, t);
    }
    graph.message(11, &value_info("input", &batch_dims(&plan.input_shape)));
    graph.message(12, &value_info("logits", &batch_dims(&logits)));
    graph.message(12, &value_info("probabilities", &batch_dims(&logits)));
    let mut model = Message::new();
    model.int(1, IR_VERSION).string(2, "expc").string(3, env!("CARGO_PKG_VERSION"));
    model.message(7, &graph);
    let mut opset = Message::new();
    opset.string(1, "").int(2, OPSET);
    model.message(8, &opset);
    for (k, v) in metadata {
        let mut e = Message::new();
        e.string(1, k).string(2, v);
        model.message(14, &e);
    }
    Ok(model.into_bytes())
}

/// The layer whose tensors `l` uses (itself unless it has `share=`).
fn owner_name(plan: &Plan, l: &PlanLayer) -> String {
    l.shares.and_then(|o| plan.layers.get(o)).unwrap_or(l).name.clone()
}

/// Pooling as expc computes it (see the module header).
fn pool(b: &mut Builder, p: &crate::ops::pool::Pool, xs: &[usize], out_shape: &[usize], x: &str, out: &str) {
    let x64: Vec<u64> = xs.iter().map(|&d| d as u64).collect();
    let (k, s) = p.window(&x64);
    let (k, s) = ([k[0] as usize, k[1] as usize], [s[0] as usize, s[1] as usize]);
    let pad = [p.padding[0] as usize, p.padding[1] as usize];
    let (h, w, ho, wo) = (xs[1], xs[2], out_shape[1], out_shape[2]);
    if p.kernel.is_none() && pad == [0, 0] {
        b.node(if p.kind == PoolKind::Max { "GlobalMaxPool" } else { "GlobalAveragePool" }, &[x], &[out], vec![]);
        return;
    }
    // End padding that makes floor rounding give expc's output size (ceil mode reaches further).
    let end = |axis: usize, len: usize, o: usize| ((o - 1) * s[axis] + k[axis]).saturating_sub(len + pad[axis]).max(pad[axis]);
    let pads = vec![pad[0] as i64, pad[1] as i64, end(0, h, ho) as i64, end(1, w, wo) as i64];
    let attrs = || {
        vec![
            ("kernel_shape", Attr::Ints(vec![k[0] as i64, k[1] as i64])),
            ("strides", Attr::Ints(vec![s[0] as i64, s[1] as i64])),
            ("pads", Attr::Ints(pads.clone())),
        ]
    };
    if p.kind == PoolKind::Max {
        b.node("MaxPool", &[x], &[out], attrs());
        return;
    }
    // expc's divisor: the window clipped to [−p, len + p); ONNX (count_include_pad=0) divides by
    // the part inside the input. The ratio is a constant map over output positions.
    let extent = |axis: usize, o: usize, len: usize| {
        let start = (o * s[axis]) as isize - pad[axis] as isize;
        let end_pad = (start + k[axis] as isize).min((len + pad[axis]) as isize);
        let inside = (end_pad.min(len as isize) - start.max(0)).max(0) as f32;
        (inside, (end_pad - start) as f32)
    };
    let mut factor = Vec::with_capacity(ho * wo);
    for oy in 0..ho {
        for ox in 0..wo {
            let ((iy, dy), (ix, dx)) = (extent(0, oy, h), extent(1, ox, w));
            factor.push(iy * ix / (dy * dx));
        }
    }
    let mut a = attrs();
    a.push(("count_include_pad", Attr::Int(0)));
    if factor.iter().all(|&f| f == 1.0) {
        b.node("AveragePool", &[x], &[out], a);
    } else {
        let (avg, f) = (b.value(out), b.value(&format!("{out}.divisor")));
        b.node("AveragePool", &[x], &[&avg], a);
        b.tensor(&f, &[1, 1, ho, wo], &factor);
        b.node("Mul", &[&avg, &f], &[out], vec![]);
    }
}

type ParamFn<'a> = dyn FnMut(&mut Builder, &PlanLayer, &str) -> Result<(String, Vec<usize>, Vec<f32>), OnnxError> + 'a;

/// `rnn`/`lstm` over `[N, T, F]`: ONNX's time-major `RNN`/`LSTM` between two transposes.
fn recurrent(b: &mut Builder, param: &mut ParamFn<'_>, weights: &Tensors, plan: &Plan, l: &PlanLayer, x: &str, out: &str) -> Result<(), OnnxError> {
    let (h, lstm) = match &l.op {
        Op::Rnn(r) => (r.hidden as usize, false),
        Op::Lstm(r) => (r.hidden as usize, true),
        other => return Err(OnnxError(format!("`{}` is not recurrent", other.kind()))),
    };
    let base = owner_name(plan, l);
    let (_, wshape, wih) = param(b, l, "weight_ih")?;
    let (_, _, whh) = param(b, l, "weight_hh")?;
    let (_, _, bias) = param(b, l, "bias")?;
    let gates = if lstm { 4 } else { 1 };
    let f = wshape.get(1).copied().unwrap_or(0);
    // PyTorch's gate blocks i, f, g, o → ONNX's i, o, f, c.
    let order: &[usize] = if lstm { &[0, 3, 1, 2] } else { &[0] };
    let reorder = |m: &[f32], cols: usize| -> Vec<f32> { order.iter().flat_map(|&g| m[g * h * cols..(g + 1) * h * cols].iter().copied()).collect() };
    // Named after the owner of the tensors, so layers that share them share these too.
    let (wn, rn, bn) = (format!("{base}.onnx_W"), format!("{base}.onnx_R"), format!("{base}.onnx_B"));
    b.tensor(&wn, &[1, gates * h, f], &reorder(&wih, f));
    b.tensor(&rn, &[1, gates * h, h], &reorder(&whh, h));
    // Wb is expc's one bias; Rb is a checkpoint's `bias_hh_l0` (zero in expc's and the torch
    // backend's own, which keep it frozen), as the engine folds it in when loading.
    let mut bb = reorder(&bias, 1);
    match weights.get(&format!("{base}.bias_hh_l0")).filter(|(_, v)| v.len() == gates * h) {
        Some((_, hh)) => bb.extend(reorder(hh, 1)),
        None => bb.extend(std::iter::repeat_n(0.0, gates * h)),
    }
    b.tensor(&bn, &[1, 2 * gates * h], &bb);
    let (tm, y, sq, axes) = (b.value(out), b.value(out), b.value(out), b.value(&format!("{out}.axes")));
    b.node("Transpose", &[x], &[&tm], vec![("perm", Attr::Ints(vec![1, 0, 2]))]);
    b.node(if lstm { "LSTM" } else { "RNN" }, &[&tm, &wn, &rn, &bn], &[&y], vec![("hidden_size", Attr::Int(h as i64))]);
    b.int_tensor(&axes, &[1], &[1]);
    b.node("Squeeze", &[&y, &axes], &[&sq], vec![]);
    b.node("Transpose", &[&sq], &[out], vec![("perm", Attr::Ints(vec![1, 0, 2]))]);
    Ok(())
}
