//! Validation and lowering of a [`Plan`] into executable ops (`CLayer`s) with resolved
//! geometry, parameter slots, and backward-pass routing.
//!
//! Backward routing invariants:
//! * `requires[l]` — layer l's output gradient is needed (l or an ancestor has params);
//!   layers without it skip backward entirely (e.g. no `dx` for a conv on the data);
//! * `first_writer[l][k]` — in reverse layer order, the first consumer that writes the
//!   gradient of its k-th input's producer *overwrites* that producer's gradient buffer;
//!   later consumers write to scratch and add, so no buffer is ever zeroed per step.

use super::error::EngineError;
use super::plan::{expected_params, infer_out_shape, Init, Input, LayerKind, Plan};
use crate::kernels::activation::Act;
use crate::kernels::conv::ConvGeom;
use crate::kernels::pool::PoolGeom;

#[derive(Clone, Debug)]
pub(crate) enum Op {
    Conv { g: ConvGeom, bias: bool },
    /// Max pooling; `true` when a preceding ReLU was fused in (`y = max(0, max(x))`).
    MaxPool(PoolGeom, bool),
    /// A layer fused into its consumer: no buffers, no work.
    Fused,
    AvgPool(PoolGeom),
    Linear { rows: usize, fin: usize, fout: usize, bias: bool },
    Act(Act),
    BatchNorm { c: usize, sp: usize, eps: f64, momentum: f64, affine: bool },
    Dropout { p: f32 },
    Flatten,
    Add,
    Concat { lens: Vec<usize> },
    Rnn { t: usize, f: usize, h: usize },
    Lstm { t: usize, f: usize, h: usize },
    LastStep { t: usize, h: usize },
    SoftmaxCe { t: usize, c: usize },
}

/// One parameter tensor in the flat parameter vector.
#[derive(Clone, Debug)]
pub struct ParamInfo {
    pub layer: String,
    pub layer_index: usize,
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
    pub len: usize,
    pub init: Init,
    pub lr_mult: f32,
    pub decay_mult: f32,
}

#[derive(Clone, Debug)]
pub(crate) struct CLayer {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<Input>,
    pub in_lens: Vec<usize>,
    pub out_len: usize,
    /// Parameter ids (into `Compiled::params`) in canonical order.
    pub params: Vec<usize>,
    /// `(offset, len)` of each parameter in the flat parameter vector.
    pub pranges: Vec<(usize, usize)>,
    pub requires: bool,
    pub dx_needed: Vec<bool>,
    pub first_writer: Vec<bool>,
}

#[derive(Clone, Debug)]
pub(crate) struct Compiled {
    pub in_len: usize,
    pub layers: Vec<CLayer>,
    pub params: Vec<ParamInfo>,
    pub n_params: usize,
    pub has_bn: bool,
    pub classes: usize,
}

fn perr(layer: &str, msg: impl Into<String>) -> EngineError {
    EngineError::Param { layer: layer.to_string(), msg: msg.into() }
}

pub(crate) fn compile(plan: &Plan) -> Result<Compiled, EngineError> {
    if plan.layers.is_empty() {
        return Err(EngineError::InvalidPlan("plan has no layers".into()));
    }
    if plan.input_shape.is_empty() || plan.input_shape.contains(&0) {
        return Err(EngineError::InvalidPlan(format!("bad input shape {:?}", plan.input_shape)));
    }
    checked_len(&plan.input_shape).ok_or_else(|| EngineError::InvalidPlan("input shape too large".into()))?;
    let mut shapes: Vec<Vec<usize>> = vec![];
    let mut layers: Vec<CLayer> = vec![];
    let mut params: Vec<ParamInfo> = vec![];
    let mut offset = 0usize;
    let nl = plan.layers.len();
    let mut names = std::collections::HashSet::new();
    for (li, l) in plan.layers.iter().enumerate() {
        if !names.insert(l.name.as_str()) {
            return Err(EngineError::InvalidPlan(format!("duplicate layer name `{}`", l.name)));
        }
        let mut ins = vec![];
        for i in &l.inputs {
            match i {
                Input::Data => ins.push(plan.input_shape.clone()),
                Input::Layer(j) if *j < li => ins.push(shapes[*j].clone()),
                Input::Layer(j) => {
                    return Err(EngineError::InvalidPlan(format!(
                        "layer `{}` (#{li}) takes input from layer #{j}, which is not earlier",
                        l.name
                    )))
                }
            }
        }
        let is_loss = matches!(l.kind, LayerKind::SoftmaxCrossEntropy);
        if is_loss != (li == nl - 1) {
            return Err(EngineError::InvalidPlan(format!(
                "the last layer must be the only SoftmaxCrossEntropy (layer `{}`)",
                l.name
            )));
        }
        let out = infer_out_shape(&l.name, &l.kind, &ins)?;
        // sizes (and the kernels' scratch sizes derived from them) must stay far from overflow
        let too_big = |s: &[usize]| checked_len(s).is_none();
        let col_too_big = match &l.kind {
            LayerKind::Conv2d { kernel, .. } => {
                checked_len(&[ins[0][0], kernel[0], kernel[1], out[1], out[2]]).is_none()
            }
            LayerKind::Lstm { hidden } => checked_len(&[ins[0][0], 4, *hidden]).is_none(),
            _ => false,
        };
        if too_big(&out) || col_too_big || l.params.iter().any(|p| too_big(&p.shape)) {
            return Err(EngineError::Shape { layer: l.name.clone(), msg: "tensor too large".into() });
        }
        let declared_ok = if is_loss { l.out_shape.is_empty() || l.out_shape == [1] } else { l.out_shape == out };
        if !declared_ok {
            return Err(EngineError::Shape {
                layer: l.name.clone(),
                msg: format!("declared out_shape {:?}, but inputs {ins:?} give {out:?}", l.out_shape),
            });
        }
        // parameters
        let exp = expected_params(&l.kind, &ins);
        let mut ids = vec![];
        for (pname, pshape) in &exp {
            let found: Vec<_> = l.params.iter().filter(|p| p.name == *pname).collect();
            let p = match found.as_slice() {
                [p] => *p,
                [] => return Err(perr(&l.name, format!("missing parameter `{pname}` {pshape:?}"))),
                _ => return Err(perr(&l.name, format!("parameter `{pname}` given twice"))),
            };
            if &p.shape != pshape {
                return Err(perr(&l.name, format!("parameter `{pname}` has shape {:?}, expected {pshape:?}", p.shape)));
            }
            if !p.lr_mult.is_finite() || !p.decay_mult.is_finite() {
                return Err(perr(&l.name, format!("parameter `{pname}`: non-finite lr/decay multiplier")));
            }
            check_init(&l.name, pname, &p.init)?;
            let len: usize = pshape.iter().product();
            ids.push(params.len());
            params.push(ParamInfo {
                layer: l.name.clone(),
                layer_index: li,
                name: pname.to_string(),
                shape: pshape.clone(),
                offset,
                len,
                init: p.init,
                lr_mult: p.lr_mult,
                decay_mult: p.decay_mult,
            });
            offset += len;
        }
        if let Some(extra) = l.params.iter().find(|p| !exp.iter().any(|(n, _)| *n == p.name)) {
            return Err(perr(&l.name, format!("unexpected parameter `{}`", extra.name)));
        }
        let x = &ins[0];
        let op = match &l.kind {
            LayerKind::Conv2d { out_channels, kernel, stride, padding, dilation, groups, bias } => Op::Conv {
                g: ConvGeom {
                    c: x[0],
                    h: x[1],
                    w: x[2],
                    o: *out_channels,
                    kh: kernel[0],
                    kw: kernel[1],
                    sh: stride[0],
                    sw: stride[1],
                    ph: padding[0],
                    pw: padding[1],
                    dh: dilation[0],
                    dw: dilation[1],
                    groups: *groups,
                    ho: out[1],
                    wo: out[2],
                },
                bias: *bias,
            },
            LayerKind::MaxPool2d { kernel, stride, padding, .. } | LayerKind::AvgPool2d { kernel, stride, padding, .. } => {
                let g = PoolGeom {
                    c: x[0],
                    h: x[1],
                    w: x[2],
                    kh: kernel[0],
                    kw: kernel[1],
                    sh: stride[0],
                    sw: stride[1],
                    ph: padding[0],
                    pw: padding[1],
                    ho: out[1],
                    wo: out[2],
                };
                if x[1] * x[2] > u32::MAX as usize {
                    return Err(EngineError::Config { layer: l.name.clone(), msg: "plane too large".into() });
                }
                if matches!(l.kind, LayerKind::MaxPool2d { .. }) {
                    Op::MaxPool(g, false)
                } else {
                    Op::AvgPool(g)
                }
            }
            LayerKind::Linear { out_features, bias } => Op::Linear {
                rows: if x.len() == 2 { x[0] } else { 1 },
                fin: *x.last().unwrap_or(&1),
                fout: *out_features,
                bias: *bias,
            },
            LayerKind::Relu => Op::Act(Act::Relu),
            LayerKind::LeakyRelu { slope } => Op::Act(Act::LeakyRelu(*slope)),
            LayerKind::Tanh => Op::Act(Act::Tanh),
            LayerKind::Sigmoid => Op::Act(Act::Sigmoid),
            LayerKind::BatchNorm { eps, momentum, affine } => Op::BatchNorm {
                c: x[0],
                sp: x[1..].iter().product(),
                eps: *eps as f64,
                momentum: *momentum as f64,
                affine: *affine,
            },
            LayerKind::Dropout { p } => Op::Dropout { p: *p },
            LayerKind::Flatten => Op::Flatten,
            LayerKind::Add => Op::Add,
            LayerKind::Concat => Op::Concat { lens: ins.iter().map(|s| s.iter().product()).collect() },
            LayerKind::Rnn { hidden } => Op::Rnn { t: x[0], f: x[1], h: *hidden },
            LayerKind::Lstm { hidden } => Op::Lstm { t: x[0], f: x[1], h: *hidden },
            LayerKind::LastStep => Op::LastStep { t: x[0], h: x[1] },
            LayerKind::SoftmaxCrossEntropy => Op::SoftmaxCe {
                t: if x.len() == 2 { x[0] } else { 1 },
                c: *x.last().unwrap_or(&1),
            },
        };
        let out_len = out.iter().product::<usize>();
        shapes.push(out);
        layers.push(CLayer {
            name: l.name.clone(),
            op,
            inputs: l.inputs.clone(),
            in_lens: ins.iter().map(|s| s.iter().product()).collect(),
            out_len,
            pranges: ids.iter().map(|&i| (params[i].offset, params[i].len)).collect(),
            params: ids,
            requires: false,
            dx_needed: vec![],
            first_writer: vec![],
        });
    }
    // fusion: ReLU → MaxPool (sole consumer) becomes one pooling op on the ReLU's input,
    // since max pooling commutes with the monotone ReLU (padding never wins the max).
    for li in 0..nl.saturating_sub(1) {
        if !matches!(layers[li].op, Op::Act(Act::Relu)) || !matches!(layers[li + 1].op, Op::MaxPool(_, false)) {
            continue;
        }
        if layers[li + 1].inputs != [Input::Layer(li)] {
            continue;
        }
        let other = layers.iter().enumerate().any(|(k, l)| k != li + 1 && l.inputs.contains(&Input::Layer(li)));
        if other {
            continue;
        }
        let relu_in = layers[li].inputs.clone();
        if let Op::MaxPool(g, _) = layers[li + 1].op {
            layers[li + 1].op = Op::MaxPool(g, true);
        }
        layers[li + 1].inputs = relu_in;
        layers[li].op = Op::Fused;
        layers[li].inputs = vec![];
        layers[li].in_lens = vec![];
    }
    // backward routing
    for li in 0..nl {
        let from_inputs = layers[li].inputs.iter().any(|i| matches!(i, Input::Layer(j) if layers[*j].requires));
        layers[li].requires = !layers[li].params.is_empty() || from_inputs;
        let dx: Vec<bool> = layers[li].inputs.iter().map(|i| matches!(i, Input::Layer(j) if layers[*j].requires)).collect();
        layers[li].dx_needed = dx;
    }
    let mut consumed = vec![false; nl];
    let mut written = vec![false; nl];
    for li in (0..nl).rev() {
        let mut fw = vec![];
        for (k, i) in layers[li].inputs.clone().iter().enumerate() {
            let mut first = false;
            if let Input::Layer(j) = i {
                consumed[*j] = true;
                if layers[li].dx_needed[k] && !written[*j] {
                    written[*j] = true;
                    first = true;
                }
            }
            fw.push(first);
        }
        layers[li].first_writer = fw;
    }
    if let Some(j) = (0..nl - 1).find(|j| !consumed[*j] && !matches!(layers[*j].op, Op::Fused)) {
        return Err(EngineError::InvalidPlan(format!("output of layer `{}` is never used", layers[j].name)));
    }
    let classes = match layers[nl - 1].op {
        Op::SoftmaxCe { c, .. } => c,
        _ => 0,
    };
    Ok(Compiled {
        in_len: plan.input_shape.iter().product(),
        has_bn: layers.iter().any(|l| matches!(l.op, Op::BatchNorm { .. })),
        layers,
        params,
        n_params: offset,
        classes,
    })
}

/// Element count of a shape if it is below 2³² (every buffer is further multiplied by
/// the batch size, which is also bounded, so no later size computation can overflow).
fn checked_len(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&n| n < 1 << 32)
}

fn check_init(layer: &str, p: &str, init: &Init) -> Result<(), EngineError> {
    let ok = match init {
        Init::Constant(v) => v.is_finite(),
        Init::Uniform { min, max } => min.is_finite() && max.is_finite() && min <= max,
        Init::Gaussian { mean, std } => mean.is_finite() && std.is_finite() && *std >= 0.0,
        Init::Xavier(_) | Init::Msra(_) => true,
    };
    if ok {
        Ok(())
    } else {
        Err(perr(layer, format!("parameter `{p}`: invalid initialiser {init:?}")))
    }
}
