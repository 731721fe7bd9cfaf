//! `model.py`: the plan as an `nn.Module` whose parameter names are expc's checkpoint names.
//!
//! Layers with parameters or buffers (conv, fc, batch norm, rnn, lstm) are submodules named after
//! the layer (nested along dots, see [`super::names`]); the other ops are written inline in
//! `forward` with `torch.nn.functional`. A layer's output gets a local variable named after it,
//! except in chains, where `x` flows from one layer to the only one reading it.

use super::names::{attr_path, is_identifier, local, py_docstring_text, py_f, py_str};
use crate::lower::{Plan, PlanLayer, Producer};
use crate::ops::activation::Activation;
use crate::ops::pool::{PoolKind, Rounding};
use crate::ops::Op;
use crate::run::engine_model::checkpoint_name;
use std::fmt::Write;

/// What model.py needs besides the plan.
pub struct ModelInfo<'a> {
    pub header: &'a str,
    /// The `input` layer's device.
    pub input_device: u32,
    pub seed: u64,
}

/// Whether a layer is a submodule (holds parameters or buffers).
pub fn is_module(op: &Op) -> bool {
    matches!(op, Op::Conv(_) | Op::Linear(_) | Op::BatchNorm(_) | Op::Rnn(_) | Op::Lstm(_))
}

/// The number of placements (`device=` values) the model uses: 1 + the largest.
pub fn placements(plan: &Plan, input_device: u32) -> usize {
    plan.layers.iter().map(|l| l.device).chain([input_device]).max().unwrap_or(0) as usize + 1
}

fn constructor(l: &PlanLayer) -> String {
    let x = l.input_shapes.first().cloned().unwrap_or_default();
    match &l.op {
        Op::Conv(c) => {
            let mut s = format!("nn.Conv2d({}, {}, kernel_size={}", x[0], c.out_channels, pair(c.kernel));
            if c.stride != [1, 1] {
                let _ = write!(s, ", stride={}", pair(c.stride));
            }
            if c.padding != [0, 0] {
                let _ = write!(s, ", padding={}", pair(c.padding));
            }
            if c.dilation != [1, 1] {
                let _ = write!(s, ", dilation={}", pair(c.dilation));
            }
            if c.groups != 1 {
                let _ = write!(s, ", groups={}", c.groups);
            }
            if !c.bias {
                s.push_str(", bias=False");
            }
            s + ")"
        }
        Op::Linear(f) => {
            let fin = if x.len() == 2 { x[1] } else { x.iter().product() };
            format!("nn.Linear({fin}, {}{})", f.out_features, if f.bias { "" } else { ", bias=False" })
        }
        Op::BatchNorm(b) => {
            let kind = if x.len() == 3 { "BatchNorm2d" } else { "BatchNorm1d" };
            let mut s = format!("nn.{kind}({}", x[0]);
            if b.eps != 1e-5 {
                let _ = write!(s, ", eps={}", py_f(b.eps));
            }
            if b.momentum != 0.1 {
                let _ = write!(s, ", momentum={}", py_f(b.momentum));
            }
            if !b.affine {
                s.push_str(", affine=False");
            }
            s + ")"
        }
        Op::Rnn(r) => format!("nn.RNN({}, {}, batch_first=True)", x[1], r.hidden),
        Op::Lstm(r) => format!("nn.LSTM({}, {}, batch_first=True)", x[1], r.hidden),
        _ => String::new(),
    }
}

fn pair(p: [u64; 2]) -> String {
    if p[0] == p[1] {
        p[0].to_string()
    } else {
        format!("({}, {})", p[0], p[1])
    }
}

/// The expression computing layer `l` from its input expressions.
fn expression(l: &PlanLayer, index: usize, ins: &[String], module: &str) -> String {
    let x = ins.first().cloned().unwrap_or_default();
    let in_shape = l.input_shapes.first().cloned().unwrap_or_default();
    match &l.op {
        Op::Conv(_) | Op::BatchNorm(_) => format!("{module}({x})"),
        Op::Linear(_) if in_shape.len() == 3 => format!("{module}(torch.flatten({x}, 1))"),
        Op::Linear(_) => format!("{module}({x})"),
        Op::Rnn(_) | Op::Lstm(_) => format!("{module}({x})[0]"),
        Op::Activation(a) => match a {
            Activation::Relu => format!("F.relu({x})"),
            Activation::LeakyRelu { slope } => format!("F.leaky_relu({x}, {})", py_f(*slope)),
            Activation::Tanh => format!("torch.tanh({x})"),
            Activation::Sigmoid => format!("torch.sigmoid({x})"),
            Activation::Gelu => format!("F.gelu({x})"),
            Activation::Silu => format!("F.silu({x})"),
        },
        Op::Pool(p) => {
            let f = if p.kind == PoolKind::Max { "max_pool2d" } else { "avg_pool2d" };
            match p.kernel {
                None => {
                    let f = if p.kind == PoolKind::Max { "adaptive_max_pool2d" } else { "adaptive_avg_pool2d" };
                    format!("F.{f}({x}, 1)")
                }
                Some(k) => {
                    let mut s = format!("F.{f}({x}, {}", pair(k));
                    if p.stride != k || p.padding != [0, 0] || p.rounding == Rounding::Ceil {
                        let _ = write!(s, ", stride={}", pair(p.stride));
                    }
                    if p.padding != [0, 0] {
                        let _ = write!(s, ", padding={}", pair(p.padding));
                    }
                    if p.rounding == Rounding::Ceil {
                        s.push_str(", ceil_mode=True");
                    }
                    s + ")"
                }
            }
        }
        Op::Dropout(d) => format!("self.dropout({x}, {}, layer={index})", py_f(d.p)),
        Op::Flatten => format!("torch.flatten({x}, 1)"),
        Op::Add => ins.join(" + "),
        Op::Concat => format!("torch.cat([{}], dim=1)", ins.join(", ")),
        Op::Last => format!("{x}[:, -1]"),
        Op::SoftmaxLoss(_) | Op::Accuracy(_) | Op::Input(_) => x,
    }
}

const DROPOUT: &str = r#"
    def dropout(self, x, p, layer):
        """Inverted dropout; with `same_masks_as_expc` set, the native engine's masks."""
        if not self.training or p == 0.0:
            return x
        if self.same_masks_as_expc is None:
            return F.dropout(x, p, True)
        seed, step, first = self.same_masks_as_expc
        mask = expc_dropout_mask(seed, step, layer, first, x.shape, p)
        return x * mask.to(x.device)
"#;

const DROPOUT_MASK: &str = r#"

def splitmix64(z):
    """SplitMix64 on uint64 arrays (wrapping arithmetic)."""
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def expc_dropout_mask(seed, step, layer, first, shape, p):
    """The native engine's dropout mask: a pure function of (seed, step, layer, sample, element)."""
    with np.errstate(over="ignore"):
        u = lambda v: np.asarray(v, dtype=np.uint64)
        key = splitmix64(u(seed) ^ splitmix64(u(step))) ^ splitmix64(u(layer) + u(0x5EED))
        n, per_sample = shape[0], int(np.prod(shape[1:]))
        samples = splitmix64(u(np.arange(first, first + n)))
        sample_keys = splitmix64(key ^ samples)[:, None]
        r = splitmix64(sample_keys + u(np.arange(per_sample))[None, :]) >> np.uint64(11)
    p32 = float(np.float32(p))
    threshold = np.uint64(int(p32 * float(1 << 53)))
    scale = np.float32(1.0 / (1.0 - p32))
    mask = np.where(r < threshold, np.float32(0.0), scale).astype(np.float32)
    return torch.from_numpy(mask.reshape(shape))
"#;

/// Writes model.py.
pub fn model_py(plan: &Plan, info: &ModelInfo) -> String {
    let devices = placements(plan, info.input_device);
    let multi = devices > 1;
    let has_dropout = plan.layers.iter().any(|l| matches!(l.op, Op::Dropout(_)));
    let recurrent = plan.layers.iter().any(|l| matches!(l.op, Op::Rnn(_) | Op::Lstm(_)));
    let mut s = String::new();
    let _ = writeln!(s, "\"\"\"{}", py_docstring_text(info.header));
    s.push_str(
        "\nThe network as an nn.Module. Submodule and parameter names equal expc's checkpoint names, so an\n\
         expc checkpoint loads with `load_expc_checkpoint(model, path)` (or `load_state_dict`) and a\n\
         state dict saved from this module is an expc checkpoint.\n",
    );
    if recurrent {
        s.push_str(
            "\nRecurrent layers: expc keeps one bias per layer; it is `bias_ih_l0`, and `bias_hh_l0` stays zero\n\
             (it is frozen: requires_grad=False).\n",
        );
    }
    if multi {
        s.push_str("\nModel parallel: `devices[k]` runs the layers placed with `device=k`; tensors move between\ndevices exactly at the edges `expc compile --report` lists as cross-device.\n");
    }
    s.push_str("\"\"\"\n\n");
    if has_dropout {
        s.push_str("import numpy as np\n");
    }
    s.push_str("import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n");
    if has_dropout {
        s.push_str(DROPOUT_MASK);
    }
    s.push_str("\n\nclass Net(nn.Module):\n");
    if multi {
        let default: Vec<String> = (0..devices).map(|_| "\"cpu\"".to_string()).collect();
        let _ = writeln!(s, "    def __init__(self, devices=({})):", default.join(", "));
        s.push_str("        super().__init__()\n        self.devices = [torch.device(d) for d in devices]\n");
    } else {
        s.push_str("    def __init__(self):\n        super().__init__()\n");
    }
    if has_dropout {
        s.push_str("        self.same_masks_as_expc = None  # (seed, step, first sample) or None\n");
    }
    // Submodules, with containers for dotted names whose prefix is not a module.
    let mut defined: Vec<String> = vec![];
    for l in plan.layers.iter().filter(|l| is_module(&l.op)) {
        let segs: Vec<&str> = l.name.split('.').collect();
        for k in 1..segs.len() {
            let prefix = segs[..k].join(".");
            if !defined.contains(&prefix) && !plan.layers.iter().any(|o| o.name == prefix && is_module(&o.op)) {
                let _ = writeln!(s, "        {}  # holds `{prefix}.…`", assign(&prefix, "nn.Module()"));
                defined.push(prefix);
            }
        }
        let mut ctor = constructor(l);
        if multi {
            ctor = format!("{ctor}.to(self.devices[{}])", l.device);
        }
        let _ = writeln!(s, "        {}", assign(&l.name, &ctor));
        if matches!(l.op, Op::Rnn(_) | Op::Lstm(_)) {
            let m = attr_path("self", &l.name);
            let _ = writeln!(s, "        nn.init.zeros_({m}.bias_hh_l0)\n        {m}.bias_hh_l0.requires_grad_(False)");
        }
        defined.push(l.name.clone());
    }
    // `share=`: the sharing module's tensors are the owner's Parameters (named_parameters() lists
    // them once, under the owner's name; SHARED keeps them out of checkpoints).
    let mut shared = vec![];
    for l in &plan.layers {
        let Some(owner) = l.shares.and_then(|o| plan.layers.get(o)) else { continue };
        // Recurrent layers also hold the frozen, zero `bias_hh_l0` (see the module docstring).
        let frozen = matches!(l.op, Op::Rnn(_) | Op::Lstm(_)).then(|| (format!("{}.bias_hh_l0", l.name), format!("{}.bias_hh_l0", owner.name)));
        let names = l.params.iter().map(|p| (checkpoint_name(&l.op, &l.name, p.name), checkpoint_name(&owner.op, &owner.name, p.name)));
        for (mine, theirs) in names.chain(frozen) {
            let attr = |n: &str| {
                let (module, tensor) = n.rsplit_once('.').unwrap_or(("", n));
                (attr_path("self", module), tensor.to_string())
            };
            let ((m, t), (om, ot)) = (attr(&mine), attr(&theirs));
            let _ = writeln!(s, "        setattr({m}, {}, getattr({om}, {}))  # `{}` shares `{}`", py_str(&t), py_str(&ot), l.name, owner.name);
            shared.push(format!("{}: {}", py_str(&mine), py_str(&theirs)));
        }
    }
    if !shared.is_empty() {
        let _ = writeln!(s, "\n    # Tensors of layers with `share=`: sharer's name -> owner's name.\n    SHARED = {{{}}}", shared.join(", "));
    }
    // forward
    s.push_str("\n    def forward(self, x):\n");
    let n = plan.layers.len();
    let loss = n - 1;
    let consumers = |p: Producer| -> Vec<usize> { (0..loss).filter(|&j| plan.layers[j].inputs.contains(&p)).collect() };
    let mut taken = vec![];
    let mut var: Vec<String> = vec![String::new(); n];
    let data_var = if consumers(Producer::Data) == [0] && plan.layers[0].inputs.len() == 1 {
        "x".to_string()
    } else {
        s.push_str("        data = x\n");
        "data".to_string()
    };
    let device_of = |p: &Producer| match p {
        Producer::Data => info.input_device,
        Producer::Layer(j) => plan.layers[*j].device,
    };
    for (i, l) in plan.layers.iter().enumerate().take(loss) {
        let ins: Vec<String> = l
            .inputs
            .iter()
            .map(|p| {
                let v = match p {
                    Producer::Data => data_var.clone(),
                    Producer::Layer(j) => var[*j].clone(),
                };
                if multi && device_of(p) != l.device {
                    format!("{v}.to(self.devices[{}])", l.device)
                } else {
                    v
                }
            })
            .collect();
        let chained = i + 1 < loss && consumers(Producer::Layer(i)) == [i + 1] && plan.layers[i + 1].inputs.len() == 1;
        let out = if chained || i + 1 == loss { "x".to_string() } else { local(&l.name, &mut taken) };
        let e = expression(l, i, &ins, &attr_path("self", &l.name));
        let _ = writeln!(s, "        {out} = {e}  # {}", l.name);
        var[i] = out;
    }
    let logits = match plan.layers[loss].inputs.first() {
        Some(Producer::Layer(j)) => var[*j].clone(),
        _ => data_var.clone(),
    };
    let _ = writeln!(s, "        return {logits}");
    if has_dropout {
        s.push_str(DROPOUT);
    }
    s.push_str(LOADER);
    if recurrent {
        s.push_str(LOADER_RECURRENT);
    }
    s.push_str(LOADER_END);
    let _ = info.seed;
    s
}

/// `self.a.b = ctor`, or `add_module` where a name segment is not a Python identifier.
fn assign(name: &str, ctor: &str) -> String {
    let (parent, last) = match name.rsplit_once('.') {
        Some((p, l)) => (attr_path("self", p), l),
        None => ("self".to_string(), name),
    };
    if is_identifier(last) {
        format!("{parent}.{last} = {ctor}")
    } else {
        format!("{parent}.add_module({}, {ctor})", py_str(last))
    }
}

const LOADER: &str = r#"

def load_expc_checkpoint(model, path):
    """Loads an expc checkpoint (safetensors) into `model`."""
    from safetensors_io import load_tensors

    state = load_tensors(path)
"#;

const LOADER_RECURRENT: &str = r#"    for name in [k for k in state if k.endswith(".bias_hh_l0")]:
        # expc keeps one bias per recurrent layer: fold a second one into the first.
        ih = name[: -len("bias_hh_l0")] + "bias_ih_l0"
        state[ih] = state[ih] + state[name]
        state[name] = torch.zeros_like(state[name])
"#;

const LOADER_END: &str = r#"    missing, unexpected = model.load_state_dict(state, strict=False)
    shared = getattr(model, "SHARED", {})
    missing = [k for k in missing if not k.endswith("num_batches_tracked") and k not in shared]
    if missing or unexpected:
        raise KeyError(f"checkpoint {path}: missing {missing}, unexpected {unexpected}")
"#;
