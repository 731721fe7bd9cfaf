//! Scheduling a lowered [`Plan`] into executable kernels (`ScheduledLayer`s) with resolved
//! geometry, parameter slots, and backward-pass routing.
//!
//! The plan comes from the checked IR: shapes, parameter shapes and attributes were validated
//! by the front end (`ops::<op>`), so this module only re-states them as debug assertions.
//! What it adds is the engine's own: kernel geometry, ReLU → max-pool fusion, buffer lengths and
//! backward routing.
//!
//! Backward routing invariants:
//! * `requires[l]` — layer l's output gradient is needed (l or an ancestor has params);
//!   layers without it skip backward entirely (e.g. no `dx` for a conv on the data);
//! * `first_writer[l][k]` — in reverse layer order, the first consumer that writes the
//!   gradient of its k-th input's producer *overwrites* that producer's gradient buffer;
//!   later consumers write to scratch and add, so no buffer is ever zeroed per step.

use super::error::EngineError;
use crate::kernels::conv::ConvGeom;
use crate::kernels::conv_implicit::{Implicit, ImplicitInputGrad};
use crate::kernels::pool::PoolGeom;
use crate::lower::{Plan, Producer};
use crate::ops::activation::Activation;
use crate::ops::pool::PoolKind;
use crate::ops::Op;
use crate::param::Init;

#[derive(Clone, Debug)]
pub(crate) enum Kernel {
    Conv {
        g: ConvGeom,
        bias: bool,
        /// The implicit-GEMM layout when it is the faster path (stride 1, SIMD machine), else im2col.
        implicit: Option<Implicit>,
        /// The input gradient as an implicit-GEMM convolution, else `dcol = Wᵀ·dy` and col2im.
        implicit_dx: Option<Box<ImplicitInputGrad>>,
    },
    /// Max pooling; `true` when a preceding ReLU was fused in (`y = max(0, max(x))`).
    MaxPool(PoolGeom, bool),
    /// A layer fused into its consumer: no buffers, no work.
    Fused,
    AvgPool(PoolGeom),
    Linear {
        rows: usize,
        fin: usize,
        fout: usize,
        bias: bool,
    },
    Act(Activation),
    BatchNorm {
        c: usize,
        sp: usize,
        eps: f64,
        momentum: f64,
        affine: bool,
        /// A following ReLU fused in: the layer outputs `max(0, y)` and masks its gradient.
        relu: bool,
    },
    Dropout {
        p: f32,
    },
    Flatten,
    Add,
    Concat {
        lens: Vec<usize>,
    },
    Rnn {
        t: usize,
        f: usize,
        h: usize,
    },
    Lstm {
        t: usize,
        f: usize,
        h: usize,
    },
    LastStep {
        t: usize,
        h: usize,
    },
    /// Softmax cross-entropy; accuracy counts a label among the `top` highest scores.
    SoftmaxCe {
        t: usize,
        c: usize,
        top: usize,
        smoothing: f64,
    },
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
pub(crate) struct ScheduledLayer {
    pub name: String,
    pub kernel: Kernel,
    pub inputs: Vec<Producer>,
    pub in_lens: Vec<usize>,
    pub out_len: usize,
    /// Parameter ids (into `Schedule::params`) in the plan's order.
    pub params: Vec<usize>,
    /// `(offset, len)` of each parameter in the flat parameter vector.
    pub param_ranges: Vec<(usize, usize)>,
    pub requires: bool,
    pub dx_needed: Vec<bool>,
    pub first_writer: Vec<bool>,
}

#[derive(Clone, Debug)]
pub(crate) struct Schedule {
    pub in_len: usize,
    pub layers: Vec<ScheduledLayer>,
    pub params: Vec<ParamInfo>,
    pub n_params: usize,
    pub has_bn: bool,
    pub classes: usize,
}

/// The kernel of a plan layer (`x` its first input shape, `out` its output shape).
fn kernel(op: &Op, ins: &[Vec<usize>], out: &[usize], top: usize) -> Result<Kernel, String> {
    let x = &ins[0];
    let u = |v: u64| v as usize;
    Ok(match op {
        Op::Conv(c) => {
            let g = ConvGeom {
                c: x[0],
                h: x[1],
                w: x[2],
                o: u(c.out_channels),
                kh: u(c.kernel[0]),
                kw: u(c.kernel[1]),
                sh: u(c.stride[0]),
                sw: u(c.stride[1]),
                ph: u(c.padding[0]),
                pw: u(c.padding[1]),
                dh: u(c.dilation[0]),
                dw: u(c.dilation[1]),
                groups: u(c.groups),
                ho: out[1],
                wo: out[2],
            };
            Kernel::Conv { g, bias: c.bias, implicit: Implicit::plan(&g), implicit_dx: ImplicitInputGrad::plan(&g).map(Box::new) }
        }
        Op::Pool(p) => {
            let x64: Vec<u64> = x.iter().map(|&d| d as u64).collect();
            let (k, s) = p.window(&x64);
            let g = PoolGeom {
                c: x[0],
                h: x[1],
                w: x[2],
                kh: u(k[0]),
                kw: u(k[1]),
                sh: u(s[0]),
                sw: u(s[1]),
                ph: u(p.padding[0]),
                pw: u(p.padding[1]),
                ho: out[1],
                wo: out[2],
            };
            if x[1] * x[2] > u32::MAX as usize {
                return Err("pooling plane too large".into());
            }
            match p.kind {
                PoolKind::Max => Kernel::MaxPool(g, false),
                PoolKind::Avg => Kernel::AvgPool(g),
            }
        }
        Op::Linear(l) => Kernel::Linear {
            rows: if x.len() == 2 { x[0] } else { 1 },
            fin: if x.len() == 2 { x[1] } else { x.iter().product() },
            fout: u(l.out_features),
            bias: l.bias,
        },
        Op::Activation(a) => Kernel::Act(a.clone()),
        Op::BatchNorm(b) => Kernel::BatchNorm { c: x[0], sp: x[1..].iter().product(), eps: b.eps, momentum: b.momentum, affine: b.affine, relu: false },
        Op::Dropout(d) => Kernel::Dropout { p: d.p as f32 },
        Op::Flatten => Kernel::Flatten,
        Op::Add => Kernel::Add,
        Op::Concat => Kernel::Concat { lens: ins.iter().map(|s| s.iter().product()).collect() },
        Op::Rnn(r) => Kernel::Rnn { t: x[0], f: x[1], h: u(r.hidden) },
        Op::Lstm(r) => Kernel::Lstm { t: x[0], f: x[1], h: u(r.hidden) },
        Op::Last => Kernel::LastStep { t: x[0], h: x[1] },
        Op::SoftmaxLoss(s) => Kernel::SoftmaxCe { t: if x.len() == 2 { x[0] } else { 1 }, c: *x.last().unwrap_or(&1), top, smoothing: s.smoothing },
        Op::Input(_) | Op::Accuracy(_) => return Err(format!("`{}` is not a layer of a lowered plan", op.kind())),
    })
}

pub(crate) fn schedule(plan: &Plan) -> Result<Schedule, EngineError> {
    let invalid = |m: String| EngineError::InvalidPlan(m);
    if plan.layers.is_empty() {
        return Err(invalid("plan has no layers".into()));
    }
    if plan.input_shape.is_empty() || plan.input_shape.contains(&0) {
        return Err(invalid(format!("bad input shape {:?}", plan.input_shape)));
    }
    checked_len(&plan.input_shape).ok_or_else(|| invalid("input shape too large".into()))?;
    let mut layers: Vec<ScheduledLayer> = vec![];
    let mut params: Vec<ParamInfo> = vec![];
    let mut offset = 0usize;
    let nl = plan.layers.len();
    for (li, l) in plan.layers.iter().enumerate() {
        let ins = &l.input_shapes;
        let out = &l.out_shape;
        debug_assert_eq!(l.inputs.len(), ins.len(), "layer `{}`: one shape per input", l.name);
        debug_assert!(
            l.inputs.iter().all(|p| matches!(p, Producer::Data) || matches!(p, Producer::Layer(j) if *j < li)),
            "layer `{}` reads a later layer",
            l.name
        );
        debug_assert!(
            {
                let ins64: Vec<Vec<u64>> = ins.iter().map(|s| s.iter().map(|&d| d as u64).collect()).collect();
                let refs: Vec<&[u64]> = ins64.iter().map(|v| v.as_slice()).collect();
                l.op.output_shape(&refs).map(|o| o.iter().map(|&d| d as usize).collect::<Vec<_>>()).as_ref() == Ok(out)
            },
            "layer `{}`: the plan's output shape is the op's",
            l.name
        );
        debug_assert_eq!(matches!(l.op, Op::SoftmaxLoss(_)), li == nl - 1, "the loss is last and only last");
        // Sizes (and the kernels' scratch sizes derived from them) must stay far from overflow.
        let too_big = |s: &[usize]| checked_len(s).is_none();
        let col_too_big = match &l.op {
            Op::Conv(c) => checked_len(&[ins[0][0], c.kernel[0] as usize, c.kernel[1] as usize, out[1], out[2]]).is_none(),
            Op::Lstm(r) => checked_len(&[ins[0][0], 4, r.hidden as usize]).is_none(),
            _ => false,
        };
        if too_big(out) || ins.iter().any(|s| too_big(s)) || col_too_big || l.params.iter().any(|p| too_big(&p.shape)) {
            return Err(EngineError::Shape { layer: l.name.clone(), msg: "tensor too large for the engine (2³² elements per sample at most)".into() });
        }
        let mut ids = vec![];
        if let Some(owner) = l.shares {
            // `share=`: the owner's tensors (same shapes, checked by `check`); gradients add up in them.
            let theirs: &ScheduledLayer =
                layers.get(owner).filter(|_| owner < li).ok_or_else(|| invalid(format!("layer `{}` shares a later layer", l.name)))?;
            let same = theirs.params.len() == l.params.len() && theirs.params.iter().zip(&l.params).all(|(&id, p)| params[id].shape == p.shape);
            if !same {
                return Err(invalid(format!("layer `{}` shares tensors of other shapes", l.name)));
            }
            ids = theirs.params.clone();
        }
        for p in l.params.iter().filter(|_| l.shares.is_none()) {
            let len: usize = p.shape.iter().product();
            ids.push(params.len());
            params.push(ParamInfo {
                layer: l.name.clone(),
                layer_index: li,
                name: p.name.to_string(),
                shape: p.shape.clone(),
                offset,
                len,
                init: p.init,
                lr_mult: p.lr_mult as f32,
                decay_mult: p.decay_mult as f32,
            });
            offset += len;
        }
        let kernel = kernel(&l.op, ins, out, plan.accuracy_top.max(1)).map_err(|m| EngineError::Config { layer: l.name.clone(), msg: m })?;
        layers.push(ScheduledLayer {
            name: l.name.clone(),
            kernel,
            inputs: l.inputs.clone(),
            in_lens: ins.iter().map(|s| s.iter().product()).collect(),
            out_len: out.iter().product::<usize>(),
            param_ranges: ids.iter().map(|&i| (params[i].offset, params[i].len)).collect(),
            params: ids,
            requires: false,
            dx_needed: vec![],
            first_writer: vec![],
        });
    }
    // fusion: ReLU → MaxPool (sole consumer) becomes one pooling op on the ReLU's input,
    // since max pooling commutes with the monotone ReLU (padding never wins the max).
    for li in 0..nl.saturating_sub(1) {
        if !matches!(layers[li].kernel, Kernel::Act(Activation::Relu)) || !matches!(layers[li + 1].kernel, Kernel::MaxPool(_, false)) {
            continue;
        }
        if !only_reader_is_next(&layers, li) {
            continue;
        }
        let relu_in = layers[li].inputs.clone();
        if let Kernel::MaxPool(g, _) = layers[li + 1].kernel {
            layers[li + 1].kernel = Kernel::MaxPool(g, true);
        }
        layers[li + 1].inputs = relu_in;
        layers[li].kernel = Kernel::Fused;
        layers[li].inputs = vec![];
        layers[li].in_lens = vec![];
    }
    // fusion: BatchNorm → ReLU (its sole consumer) becomes one batch norm whose output is the
    // ReLU's; the ReLU's consumers read the batch norm instead.
    for li in 0..nl.saturating_sub(1) {
        if !matches!(layers[li].kernel, Kernel::BatchNorm { relu: false, .. }) || !matches!(layers[li + 1].kernel, Kernel::Act(Activation::Relu)) {
            continue;
        }
        if !only_reader_is_next(&layers, li) {
            continue;
        }
        if let Kernel::BatchNorm { relu, .. } = &mut layers[li].kernel {
            *relu = true;
        }
        for l in layers.iter_mut() {
            for i in l.inputs.iter_mut() {
                if *i == Producer::Layer(li + 1) {
                    *i = Producer::Layer(li);
                }
            }
        }
        layers[li + 1].kernel = Kernel::Fused;
        layers[li + 1].inputs = vec![];
        layers[li + 1].in_lens = vec![];
    }
    // backward routing
    for li in 0..nl {
        let from_inputs = layers[li].inputs.iter().any(|i| matches!(i, Producer::Layer(j) if layers[*j].requires));
        layers[li].requires = !layers[li].params.is_empty() || from_inputs;
        let dx: Vec<bool> = layers[li].inputs.iter().map(|i| matches!(i, Producer::Layer(j) if layers[*j].requires)).collect();
        layers[li].dx_needed = dx;
    }
    let mut consumed = vec![false; nl];
    let mut written = vec![false; nl];
    for li in (0..nl).rev() {
        let mut fw = vec![];
        for (k, i) in layers[li].inputs.clone().iter().enumerate() {
            let mut first = false;
            if let Producer::Layer(j) = i {
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
    if let Some(j) = (0..nl - 1).find(|j| !consumed[*j] && !matches!(layers[*j].kernel, Kernel::Fused)) {
        return Err(EngineError::InvalidPlan(format!("output of layer `{}` is never used", layers[j].name)));
    }
    let classes = match layers[nl - 1].kernel {
        Kernel::SoftmaxCe { c, .. } => c,
        _ => 0,
    };
    Ok(Schedule {
        in_len: plan.input_shape.iter().product(),
        has_bn: layers.iter().any(|l| matches!(l.kernel, Kernel::BatchNorm { .. })),
        layers,
        params,
        n_params: offset,
        classes,
    })
}

/// Whether layer `li + 1` reads layer `li` alone and no other layer reads `li` (so the two can fuse).
fn only_reader_is_next(layers: &[ScheduledLayer], li: usize) -> bool {
    layers[li + 1].inputs == [Producer::Layer(li)] && !layers.iter().enumerate().any(|(k, l)| k != li + 1 && l.inputs.contains(&Producer::Layer(li)))
}

/// Element count of a shape if it is below 2³² (every buffer is further multiplied by
/// the batch size, which is also bounded, so no later size computation can overflow).
fn checked_len(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&n| n < 1 << 32)
}
