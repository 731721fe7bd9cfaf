//! The `model` section: expanded raw layers → [`LayerSpec`]s.

use super::load::RawLayer;
use super::types::*;
use crate::args::Args;
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::ops::{heads, Op};
use crate::param::{Init, ParamSpec, VarianceNorm};
use crate::source::Span;
use crate::syntax::ast::{Arg, Value, ValueKind};

const PARAM_KEYS: &[&str] = &["init", "bias_init", "lr_mult", "decay_mult", "bias_lr_mult", "bias_decay_mult"];

/// `too_big`: the model section was not expanded because it exceeds the layer limit (E0019,
/// already reported), so its emptiness is no error of its own.
pub fn model(m: Option<&(Span, Vec<RawLayer>)>, anchor: Span, too_big: bool, diags: &mut Vec<Diagnostic>) -> Option<ModelSpec> {
    let Some((header, raw)) = m else {
        diags.push(
            Diagnostic::error("E0110", "missing required section `model`")
                .primary(anchor, "this experiment has no `model` section")
                .help("add a section `model { input 3x32x32; … }`"),
        );
        return None;
    };
    let n0 = diags.len();
    let mut layers: Vec<LayerSpec> = Vec::with_capacity(raw.len());
    // Index of the last layer that a following layer reads by default.
    let mut prev: Option<usize> = None;
    for (i, r) in raw.iter().enumerate() {
        let head = r.cmd.head.name.as_str();
        let what = format!("layer `{}` ({head})", r.name);
        let mut a = Args::new(&r.cmd, what);
        let op = match Op::parse(head, &mut a) {
            Some(op) => op,
            None => {
                diags.push(
                    Diagnostic::error("E0100", format!("unknown layer `{head}`"))
                        .primary(r.cmd.head.span, "unknown layer")
                        .note(format!("layers: {}", heads().join(", ")))
                        .with_help(did_you_mean(head, heads())),
                );
                continue;
            }
        };
        // Parameter settings.
        let (mut weight, mut bias) = (None, None);
        let mut params_ok = true;
        if op.as_ref().is_some_and(|o| o.has_weights() || o.has_bias()) {
            let o = op.as_ref().expect("checked");
            let (w, b) = o.default_params();
            weight = Some(ParamSpec {
                init: a.keyword("init").and_then(|v| init(&mut a, v)).unwrap_or(w.init),
                lr_mult: a.kw_f64("lr_mult").unwrap_or(w.lr_mult),
                decay_mult: a.kw_f64("decay_mult").unwrap_or(w.decay_mult),
            });
            if o.has_bias() {
                bias = Some(ParamSpec {
                    init: a.keyword("bias_init").and_then(|v| init(&mut a, v)).unwrap_or(b.init),
                    lr_mult: a.kw_f64("bias_lr_mult").unwrap_or(b.lr_mult),
                    decay_mult: a.kw_f64("bias_decay_mult").unwrap_or(b.decay_mult),
                });
            }
        } else if let Some(o) = &op {
            for arg in &r.cmd.args {
                if let Arg::Keyword { key, .. } = arg {
                    if PARAM_KEYS.contains(&key.name.as_str()) {
                        a.known(PARAM_KEYS.iter().find(|k| **k == key.name).expect("member"));
                        params_ok = false;
                        let d = Diagnostic::error("E0109", format!("layer `{}` ({}) has no parameters to set `{}` for", r.name, o.kind(), key.name))
                            .primary(key.span, "no parameters")
                            .help("`init`, `lr_mult` and `decay_mult` apply to conv, fc, batchnorm, rnn and lstm layers");
                        a.error(d);
                    }
                }
            }
        }
        // Weight sharing: the parameters are another layer's, so none of their settings apply here.
        let share = match a.keyword("share") {
            None => None,
            Some(v) => match (&v.kind, &op) {
                (ValueKind::Ident(n), Some(Op::Conv(_) | Op::Linear(_) | Op::Rnn(_) | Op::Lstm(_))) => {
                    for arg in &r.cmd.args {
                        if let Arg::Keyword { key, .. } = arg {
                            if let Some(k) = PARAM_KEYS.iter().find(|k| **k == key.name) {
                                params_ok = false;
                                let d = Diagnostic::error("E0117", format!("layer `{}` shares `{n}`'s parameters and cannot set `{k}`", r.name))
                                    .primary(key.span, "a setting of the shared parameters")
                                    .secondary(v.span, format!("the parameters are `{n}`'s"))
                                    .help(format!("set `{k}` on `{n}`, the layer that owns the parameters"));
                                a.error(d);
                            }
                        }
                    }
                    Some(InputRef { name: n.clone(), span: Some(v.span) })
                }
                (ValueKind::Ident(_), Some(o)) => {
                    let d = Diagnostic::error("E0109", format!("layer `{}` ({}) cannot share parameters", r.name, o.kind()))
                        .primary(v.span, if o.has_weights() { "batch norm keeps running statistics of its own" } else { "no parameters" })
                        .help("`share=` applies to conv, fc, rnn and lstm layers");
                    a.error(d);
                    None
                }
                (ValueKind::Ident(_), None) => None,
                _ => {
                    a.type_error(v, "a layer name");
                    None
                }
            },
        };
        let device = a.kw_uint("device", 0).unwrap_or(0) as u32;
        // Inputs.
        let mut inputs = vec![];
        let from = a.keyword("from");
        let named = op.as_ref().is_some_and(|o| o.takes_named_inputs());
        let refs: Vec<&Value> = match from {
            Some(v) => refs_of(v),
            None if named => a.remaining_positionals(),
            None => vec![],
        };
        for v in refs {
            match &v.kind {
                ValueKind::Ident(n) => inputs.push(InputRef { name: n.clone(), span: Some(v.span) }),
                _ => a.type_error(v, "a layer name"),
            }
        }
        // By its head: an `input` line with a bad shape is still the input (its error says why).
        let is_input = matches!(op, Some(Op::Input(_))) || r.cmd.head.name == "input";
        if inputs.is_empty() && !is_input && !named {
            match prev {
                Some(p) => inputs.push(InputRef { name: layers[p].name.clone(), span: None }),
                // An `input` line that had an error of its own is reported there, not again here.
                None if i == 0 || (layers.is_empty() && raw.first().is_none_or(|f| f.cmd.head.name != "input")) => {
                    a.error(
                        Diagnostic::error("E0114", "the model must start with `input SHAPE`")
                            .primary(r.cmd.span, "first layer has no input")
                            .help("add a first line like `input 3x32x32`"),
                    );
                }
                None => {}
            }
        }
        if named && inputs.len() < 2 {
            a.error(
                Diagnostic::error("E0115", format!("`{head}` needs at least two inputs, found {}", inputs.len()))
                    .primary(r.cmd.span, "too few inputs")
                    .help(format!("name them: `{}: {head} branch_a branch_b`", r.name)),
            );
        }
        if is_input && i != 0 {
            a.error(
                Diagnostic::error("E0116", "`input` must be the first layer, and only one")
                    .primary(r.cmd.span, "input here")
                    .help("a model has a single input; use `from=` to read it from several layers"),
            );
        }
        let ok = !a.has_errors();
        let mut ds = a.finish();
        if r.edited {
            // The edit wrote arguments into a base layer: point at the layer too.
            super::mark_override(&mut ds, r.name_span, &format!("layer `{}` is defined here", r.name));
        }
        let ok = ok && ds.is_empty() && params_ok;
        diags.extend(ds);
        let Some(op) = op else { continue };
        if !ok {
            continue;
        }
        let terminal = op.is_terminal();
        layers.push(LayerSpec { name: r.name.clone(), op, inputs, weight, bias, share, device, span: r.cmd.span, name_span: r.name_span });
        if !terminal {
            prev = Some(layers.len() - 1);
        }
    }
    if raw.is_empty() && !too_big {
        diags.push(Diagnostic::error("E0114", "the model is empty").primary(*header, "no layers").help("start with a line like `input 3x32x32`"));
    }
    if diags.len() > n0 {
        return None;
    }
    Some(ModelSpec { layers, span: *header })
}

fn refs_of(v: &Value) -> Vec<&Value> {
    match &v.kind {
        ValueKind::List(items) => items.iter().collect(),
        _ => vec![v],
    }
}

const INITS: &[&str] = &["constant", "uniform", "gaussian", "xavier", "msra"];

/// `constant(0.1)`, `uniform(-0.1, 0.1)`, `gaussian(0.01)` / `gaussian(std=0.01, mean=0)`,
/// `xavier`, `xavier(fan_out)`, `msra`, `msra(average)`.
fn init(a: &mut Args, v: &Value) -> Option<Init> {
    let (name, args): (&str, &[Arg]) = match &v.kind {
        ValueKind::Ident(n) => (n, &[]),
        ValueKind::Call { name, args } => (&name.name, args),
        _ => {
            a.type_error(v, "an initialiser like gaussian(0.01), xavier or msra");
            return None;
        }
    };
    let mut pos = vec![];
    let mut kw = vec![];
    for arg in args {
        match arg {
            Arg::Positional(x) => pos.push(x),
            Arg::Keyword { key, value } => kw.push((key, value)),
        }
    }
    let bad = |a: &mut Args, msg: String, span: Span| {
        let d = Diagnostic::error("E0104", format!("{}: {msg}", a.what)).primary(span, msg.clone());
        a.error(d);
    };
    let num = |a: &mut Args, key: &str, idx: usize| -> Option<Option<f64>> {
        let v = kw.iter().find(|(k, _)| k.name == key).map(|(_, v)| *v).or(pos.get(idx).copied());
        match v {
            Some(v) => a.as_f64(v).map(Some),
            None => Some(None),
        }
    };
    let norm = |a: &mut Args| -> Option<VarianceNorm> {
        let v = kw.iter().find(|(k, _)| k.name == "norm").map(|(_, v)| *v).or(pos.first().copied());
        match v {
            None => Some(VarianceNorm::FanIn),
            Some(v) => match a.as_word(v, &["fan_in", "fan_out", "average"])? {
                "fan_in" => Some(VarianceNorm::FanIn),
                "fan_out" => Some(VarianceNorm::FanOut),
                _ => Some(VarianceNorm::Average),
            },
        }
    };
    for (k, _) in &kw {
        let allowed: &[&str] = match name {
            "constant" => &["value"],
            "uniform" => &["min", "max"],
            "gaussian" => &["std", "mean"],
            _ => &["norm"],
        };
        if !allowed.contains(&k.name.as_str()) {
            let d = Diagnostic::error("E0102", format!("{}: `{name}` has no argument `{}`", a.what, k.name))
                .primary(k.span, "unknown argument")
                .note(format!("`{name}` takes {}", allowed.join(", ")))
                .with_help(did_you_mean(&k.name, allowed.iter().copied()));
            a.error(d);
            return None;
        }
    }
    Some(match name {
        "constant" => Init::Constant { value: num(a, "value", 0)?.unwrap_or(0.0) },
        "uniform" => {
            let min = num(a, "min", 0)?.unwrap_or(-1.0);
            let max = num(a, "max", 1)?.unwrap_or(1.0);
            if min > max {
                bad(a, format!("uniform's min {min} is larger than its max {max}"), v.span);
                return None;
            }
            Init::Uniform { min, max }
        }
        "gaussian" => {
            let std = num(a, "std", 0)?.unwrap_or(0.01);
            if std < 0.0 {
                bad(a, "a standard deviation cannot be negative".into(), v.span);
                return None;
            }
            Init::Gaussian { mean: num(a, "mean", 1)?.unwrap_or(0.0), std }
        }
        "xavier" => Init::Xavier { norm: norm(a)? },
        "msra" => Init::Msra { norm: norm(a)? },
        other => {
            let d = Diagnostic::error("E0107", format!("{}: unknown initialiser `{other}`", a.what))
                .primary(v.span, format!("expected one of {}", INITS.join(", ")))
                .with_help(did_you_mean(other, INITS.iter().copied()));
            a.error(d);
            return None;
        }
    })
}
