//! Stage 4, the static report (`expc compile --report`): what the experiment costs before any
//! data is read — parameters, forward and backward work, memory, gradient-path counts,
//! recurrent costs and cross-device traffic.
//!
//! Conventions (printed in the report's header and in `docs/report.md`):
//! - One MAC is one multiply-add. Layer rows are **per sample** (the batch `N` is symbolic);
//!   totals are given per sample and for one training step at batch B.
//! - Backward work is split into the input gradient and the weight gradient. The input gradient
//!   is not computed where nothing upstream has parameters (the first conv on the data).
//! - Pooling, activations, batch norm, dropout, `add` and softmax do no multiply-adds; their work
//!   is the separate `elementwise` column (see `ops::shape`).
//! - FLOPs per training step = 2 × (forward + backward MACs) × B.
//! - Memory is f32: parameters, gradients, solver state (momentum, AdaGrad, RMSProp: 1×; Adam, AdamW,
//!   AdaDelta: 2× the parameters),
//!   activations kept for backward × B, and the largest im2col workspace of one sample.

pub mod html;

use crate::graph::{Analysis, Graph};
use crate::ops::shape::show;
use crate::ops::Op;
use crate::spec::Experiment;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const SCHEMA_VERSION: u32 = 1;

pub const CONVENTIONS: &[&str] = &[
    "1 MAC = one multiply-add; layer rows are per sample (batch N symbolic), totals per sample and per step at batch B",
    "backward = input gradient + weight gradient (+ recurrent BPTT); no input gradient where nothing upstream has parameters",
    "pooling, activations, batch norm, dropout, add and softmax count 0 MACs; their work is the `elementwise` column",
    "FLOPs per training step = 2 x (forward + backward MACs) x B",
    "memory in f32 bytes: parameters + gradients + solver state + activations kept for backward x B + largest im2col of one sample",
];

#[derive(Clone, Debug, Serialize)]
pub struct LayerRow {
    pub name: String,
    pub op: String,
    /// Per-sample output shape (the batch axis omitted).
    pub output_shape: Vec<u64>,
    pub weights: u64,
    pub biases: u64,
    pub params: u64,
    pub forward_macs: u64,
    pub backward_input_macs: u64,
    pub backward_weight_macs: u64,
    pub elementwise_ops: u64,
    pub activations_kept: u64,
    pub device: u32,
    /// `share=`: the layer whose parameters this one uses (its weights and biases count 0 here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shares: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    pub weights: u64,
    pub biases: u64,
    pub params: u64,
    pub forward_macs_per_sample: u64,
    pub backward_macs_per_sample: u64,
    pub forward_macs: u64,
    pub backward_macs: u64,
    pub flops_per_step: u64,
    pub elementwise_ops_per_sample: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Memory {
    pub parameters: u64,
    pub gradients: u64,
    pub optimizer_state: u64,
    pub activations: u64,
    pub workspace: u64,
    pub total: u64,
}

/// What the native engine allocates to train at the report's batch (its memory model, computed
/// from the lowered plan without allocating; `expc run` records it beside the measured bytes).
/// `bytes.gradients` holds the reduced gradient and one accumulator per thread; `activations`,
/// per thread, the samples it holds at once (a micro-batch, or its whole share of the batch with
/// batch norm), their outputs, gradients and saved tensors.
#[derive(Clone, Debug, Serialize)]
pub struct EngineMemory {
    pub threads: u64,
    #[serde(flatten)]
    pub bytes: Memory,
}

/// Problem 4.3: multiplications to get every gradient of a layered net.
#[derive(Clone, Debug, Serialize)]
pub struct GradientPaths {
    /// Widths along the chain: inputs, each hidden layer, outputs.
    pub widths: Vec<u64>,
    pub weight_gradient_mults: u64,
    /// Reverse mode: one Wᵀδ product per layer boundary.
    pub reverse_mode_mults: u64,
    /// Summing over every path from each unit to every output, k multiplications for a path of
    /// k edges; exact while it fits in 128 bits.
    pub path_enumeration_mults: Option<u128>,
    pub path_enumeration_log10: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RecurrentRow {
    pub name: String,
    pub steps: u64,
    pub params: u64,
    pub forward_macs_per_step: u64,
    pub forward_macs: u64,
    pub backward_macs: u64,
    /// Activations kept for backpropagation through time, at batch B, bytes.
    pub bptt_bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct CrossEdge {
    pub from: String,
    pub to: String,
    pub from_device: u32,
    pub to_device: u32,
    pub forward_bytes: u64,
    pub backward_bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DevicePair {
    pub from_device: u32,
    pub to_device: u32,
    pub forward_bytes: u64,
    pub backward_bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Devices {
    pub edges: Vec<CrossEdge>,
    /// Layers that must wait for another device's output (forward) or gradient (backward).
    pub waits: Vec<String>,
    pub pairs: Vec<DevicePair>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub experiment: String,
    pub batch: u64,
    pub conventions: Vec<String>,
    pub layers: Vec<LayerRow>,
    pub totals: Totals,
    pub memory: Memory,
    /// Set by callers that lowered the experiment (`expc compile --report`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_memory: Option<EngineMemory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gradient_paths: Option<GradientPaths>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recurrent: Vec<RecurrentRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<Devices>,
}

const F32: u64 = 4;

/// Builds the report of a checked experiment at batch `batch`.
pub fn report(exp: &Experiment, graph: &Graph, a: &Analysis, batch: u64) -> Report {
    let layers = &exp.model.layers;
    let mut rows = vec![];
    let mut workspace = 0u64;
    for &node in &graph.order {
        let i = graph.g[node].layer;
        let l = &layers[i];
        let c = a.costs[i];
        let p = &a.params[i];
        let owner = a.param_owner[i];
        let bwd_in = if a.needs_input_grad[i] { c.backward_input_macs } else { 0 };
        let has_params = p.weight_count() + p.bias_count() > 0;
        let bwd_w = if has_params { c.backward_weight_macs + c.backward_recurrent_macs } else { 0 };
        if let Op::Conv(conv) = &l.op {
            if let Some(out) = &a.shapes[i] {
                let ins = graph.input_slice(node);
                if let Some(x) = ins.first().and_then(|&n| a.shapes[graph.g[n].layer].as_ref()) {
                    let col = x[0] / conv.groups.max(1) * conv.kernel[0] * conv.kernel[1] * out[1] * out[2];
                    workspace = workspace.max(col * F32);
                }
            }
        }
        rows.push(LayerRow {
            name: l.name.clone(),
            op: l.op.kind().to_string(),
            output_shape: a.shapes[i].clone().unwrap_or_default(),
            weights: if owner.is_some() { 0 } else { p.weight_count() },
            biases: if owner.is_some() { 0 } else { p.bias_count() },
            params: a.owned_params(i),
            forward_macs: c.forward_macs,
            backward_input_macs: bwd_in,
            backward_weight_macs: bwd_w,
            elementwise_ops: c.elementwise,
            activations_kept: if a.carries_grad[i] || a.needs_input_grad[i] { c.kept } else { 0 },
            device: l.device,
            shares: owner.map(|o| layers[o].name.clone()),
        });
    }
    let sum = |f: &dyn Fn(&LayerRow) -> u64| rows.iter().map(f).sum::<u64>();
    let (weights, biases) = (sum(&|r| r.weights), sum(&|r| r.biases));
    let fwd = sum(&|r| r.forward_macs);
    let bwd = sum(&|r| r.backward_input_macs + r.backward_weight_macs);
    let params = weights + biases;
    let totals = Totals {
        weights,
        biases,
        params,
        forward_macs_per_sample: fwd,
        backward_macs_per_sample: bwd,
        forward_macs: fwd * batch,
        backward_macs: bwd * batch,
        flops_per_step: 2 * (fwd + bwd) * batch,
        elementwise_ops_per_sample: sum(&|r| r.elementwise_ops),
    };
    let state = exp.train.solver.state_per_param();
    let activations = sum(&|r| r.activations_kept) * batch * F32;
    let memory = Memory {
        parameters: params * F32,
        gradients: params * F32,
        optimizer_state: state * params * F32,
        activations,
        workspace,
        total: (2 + state) * params * F32 + activations + workspace,
    };
    Report {
        schema_version: SCHEMA_VERSION,
        experiment: exp.name.clone(),
        batch,
        conventions: CONVENTIONS.iter().map(|s| s.to_string()).collect(),
        gradient_paths: gradient_paths(exp, graph, a),
        recurrent: recurrent(exp, graph, a, batch),
        devices: devices(exp, graph, a, batch),
        layers: rows,
        totals,
        memory,
        engine_memory: None,
    }
}

/// For a chain of fully connected layers (activations and flattening in between allowed).
fn gradient_paths(exp: &Experiment, graph: &Graph, a: &Analysis) -> Option<GradientPaths> {
    let layers = &exp.model.layers;
    let mut widths: Vec<u64> = vec![];
    for &node in &graph.order {
        let i = graph.g[node].layer;
        let l = &layers[i];
        if graph.input_slice(node).len() > 1 {
            return None;
        }
        match &l.op {
            Op::Linear(f) => {
                let x = a.shapes[graph.g[graph.input_slice(node)[0]].layer].as_ref()?;
                if x.len() == 2 {
                    return None;
                }
                if widths.is_empty() {
                    widths.push(x.iter().product());
                }
                widths.push(f.out_features);
            }
            Op::Input(_) | Op::Activation(_) | Op::Flatten | Op::Dropout(_) | Op::SoftmaxLoss(_) | Op::Accuracy(_) => {}
            _ => return None,
        }
    }
    if widths.len() < 3 {
        return None;
    }
    let k = widths.len() - 1; // weight layers
    let weight_gradient_mults: u64 = (0..k).map(|j| widths[j] * widths[j + 1]).sum();
    // δ of every hidden layer: Wᵀδ through each boundary but the first (no input gradient).
    let reverse_mode_mults: u64 = (1..k).map(|j| widths[j] * widths[j + 1]).sum();
    // Hidden layer j (1..k-1): each of its units has Π_{m>j} widths[m] paths to the outputs, each
    // of k - j edges. Suffix products and suffix log-sums keep this linear in the depth.
    let mut suffix_log = vec![0.0f64; widths.len() + 1];
    let mut suffix_prod: Vec<Option<u128>> = vec![Some(1); widths.len() + 1];
    for m in (0..widths.len()).rev() {
        suffix_log[m] = suffix_log[m + 1] + (widths[m] as f64).log10();
        suffix_prod[m] = suffix_prod[m + 1].and_then(|p| p.checked_mul(widths[m] as u128));
    }
    let mut exact: Option<u128> = Some(0);
    let mut log_terms = vec![];
    for j in 1..k {
        let edges = (k - j) as u128;
        // widths[j] units × Π_{m>j} widths[m] paths each = Π_{m≥j} widths[m].
        let paths = suffix_prod[j];
        exact = exact.and_then(|e| paths.and_then(|p| p.checked_mul(edges)).and_then(|t| e.checked_add(t)));
        log_terms.push(suffix_log[j] + (edges as f64).log10());
    }
    let max = log_terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let log10 = max + log_terms.iter().map(|t| 10f64.powf(t - max)).sum::<f64>().log10();
    Some(GradientPaths { widths, weight_gradient_mults, reverse_mode_mults, path_enumeration_mults: exact, path_enumeration_log10: log10 })
}

fn recurrent(exp: &Experiment, graph: &Graph, a: &Analysis, batch: u64) -> Vec<RecurrentRow> {
    let layers = &exp.model.layers;
    let mut out = vec![];
    for &node in &graph.order {
        let i = graph.g[node].layer;
        if !matches!(layers[i].op, Op::Rnn(_) | Op::Lstm(_)) {
            continue;
        }
        let Some(x) = graph.input_slice(node).first().and_then(|&n| a.shapes[graph.g[n].layer].clone()) else { continue };
        let c = a.costs[i];
        let steps = x[0];
        let bwd_in = if a.needs_input_grad[i] { c.backward_input_macs } else { 0 };
        out.push(RecurrentRow {
            name: layers[i].name.clone(),
            steps,
            params: a.owned_params(i),
            // A full step: every input and recurrent weight once (the first step has no h_0 product).
            forward_macs_per_step: a.params[i].weight_count(),
            forward_macs: c.forward_macs,
            backward_macs: bwd_in + c.backward_weight_macs + c.backward_recurrent_macs,
            bptt_bytes: c.kept * batch * F32,
        });
    }
    out
}

fn devices(exp: &Experiment, graph: &Graph, a: &Analysis, batch: u64) -> Option<Devices> {
    let layers = &exp.model.layers;
    if layers.iter().all(|l| l.device == layers[0].device) {
        return None;
    }
    let mut edges = vec![];
    let mut waits = vec![];
    let mut pairs: BTreeMap<(u32, u32), (u64, u64)> = BTreeMap::new();
    for &node in &graph.order {
        let i = graph.g[node].layer;
        let to = &layers[i];
        for p in graph.input_slice(node) {
            let j = graph.g[*p].layer;
            let from = &layers[j];
            if from.device == to.device {
                continue;
            }
            let elems = a.shapes[j].as_deref().map(crate::ops::shape::count).unwrap_or(0);
            let fwd = elems * batch * F32;
            let bwd = if a.needs_input_grad[i] { fwd } else { 0 };
            edges.push(CrossEdge {
                from: from.name.clone(),
                to: to.name.clone(),
                from_device: from.device,
                to_device: to.device,
                forward_bytes: fwd,
                backward_bytes: bwd,
            });
            waits.push(format!(
                "`{}` (device {}) waits for `{}` from device {} in the forward pass{}",
                to.name,
                to.device,
                from.name,
                from.device,
                if bwd > 0 { format!("; `{}` (device {}) waits for its gradient in the backward pass", from.name, from.device) } else { String::new() }
            ));
            let e = pairs.entry((from.device.min(to.device), from.device.max(to.device))).or_default();
            e.0 += fwd;
            e.1 += bwd;
        }
    }
    let pairs = pairs.into_iter().map(|((a, b), (f, w))| DevicePair { from_device: a, to_device: b, forward_bytes: f, backward_bytes: w }).collect();
    Some(Devices { edges, waits, pairs })
}

// ---- text rendering -------------------------------------------------------------------------

/// 12,345,678 → "12.3M"; small numbers as they are.
pub fn human(n: u64) -> String {
    let f = n as f64;
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}K", f / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}M", f / 1e6),
        _ => format!("{:.2}G", f / 1e9),
    }
}

pub fn bytes(n: u64) -> String {
    let f = n as f64;
    if n < 1024 * 1024 {
        format!("{:.1} KiB", f / 1024.0)
    } else if n < 1024 * 1024 * 1024 {
        format!("{:.2} MiB", f / 1048576.0)
    } else {
        format!("{:.2} GiB", f / 1073741824.0)
    }
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>], left: usize) {
    let widths: Vec<usize> =
        (0..header.len()).map(|c| rows.iter().map(|r| r[c].chars().count()).chain([header[c].chars().count()]).max().unwrap_or(0)).collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(c, x)| if c < left { format!("{x:<w$}", w = widths[c]) } else { format!("{x:>w$}", w = widths[c]) })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let _ = writeln!(out, "{}", line(header.iter().map(|s| s.to_string()).collect()));
    let _ = writeln!(out, "{}", "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
    for r in rows {
        let _ = writeln!(out, "{}", line(r.clone()));
    }
}

/// The breakdown of a memory total, one line per part with its share (and which dominates).
fn memory_lines(s: &mut String, m: &Memory, activations: &str, mark_dominant: bool) {
    let parts = [
        ("parameters", m.parameters),
        ("gradients", m.gradients),
        ("solver state", m.optimizer_state),
        (activations, m.activations),
        ("workspace", m.workspace),
    ];
    let max = parts.iter().map(|p| p.1).max().unwrap_or(0);
    for (name, b) in parts {
        let pct = if m.total > 0 { 100.0 * b as f64 / m.total as f64 } else { 0.0 };
        let mark = if mark_dominant && b == max && b > 0 { "  <- dominates" } else { "" };
        let _ = writeln!(s, "  {name:<17} {:>12}  {pct:5.1}%{mark}", bytes(b));
    }
}

impl Report {
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{} — static report at batch {}", self.experiment, self.batch);
        for c in &self.conventions {
            let _ = writeln!(s, "  · {c}");
        }
        let _ = writeln!(s);
        let multi_device = self.devices.is_some();
        let mut header = vec!["layer", "op", "output", "weights", "biases", "fwd MACs", "bwd input", "bwd weight", "elementwise", "kept"];
        if multi_device {
            header.push("device");
        }
        let rows: Vec<Vec<String>> = self
            .layers
            .iter()
            .map(|r| {
                let mut v = vec![
                    r.name.clone(),
                    r.op.clone(),
                    if r.output_shape.is_empty() { "scalar".into() } else { format!("N×{}", show(&r.output_shape)) },
                    match &r.shares {
                        Some(o) => format!("= {o}"),
                        None => r.weights.to_string(),
                    },
                    if r.shares.is_some() { "-".into() } else { r.biases.to_string() },
                    r.forward_macs.to_string(),
                    r.backward_input_macs.to_string(),
                    r.backward_weight_macs.to_string(),
                    r.elementwise_ops.to_string(),
                    r.activations_kept.to_string(),
                ];
                if multi_device {
                    v.push(r.device.to_string());
                }
                v
            })
            .collect();
        table(&mut s, &header, &rows, 3);
        let t = &self.totals;
        let _ = writeln!(s);
        let _ = writeln!(s, "parameters        {} ({} weights + {} biases)", t.params, t.weights, t.biases);
        for r in self.layers.iter().filter(|r| r.shares.is_some()) {
            let _ = writeln!(
                s,
                "  `{}` shares the parameters of `{}` (counted once, with `{0}`'s gradients added to them)",
                r.name,
                r.shares.as_deref().unwrap_or("")
            );
        }
        let _ = writeln!(s, "forward           {} MACs per sample, {} per step", t.forward_macs_per_sample, human(t.forward_macs));
        let _ = writeln!(s, "backward          {} MACs per sample, {} per step", t.backward_macs_per_sample, human(t.backward_macs));
        let _ = writeln!(s, "training step     {} FLOPs at batch {}", human(t.flops_per_step), self.batch);
        let _ = writeln!(s, "elementwise       {} ops per sample (forward)", t.elementwise_ops_per_sample);
        let m = &self.memory;
        let _ = writeln!(s);
        let _ = writeln!(s, "training memory at batch {} (the whole batch at once, any framework): {}", self.batch, bytes(m.total));
        memory_lines(&mut s, m, "activations kept", true);
        if let Some(e) = &self.engine_memory {
            let _ = writeln!(s);
            let _ = writeln!(s, "native engine at batch {}, {} threads (what `expc run` allocates): {}", self.batch, e.threads, bytes(e.bytes.total));
            memory_lines(&mut s, &e.bytes, "activations", false);
        }
        if let Some(g) = &self.gradient_paths {
            let _ = writeln!(s);
            let _ = writeln!(s, "gradients of a layered net (widths {}):", g.widths.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("-"));
            let _ = writeln!(s, "  weight gradients                {} multiplications (both methods)", g.weight_gradient_mults);
            let _ = writeln!(s, "  unit gradients, reverse mode    {} multiplications", g.reverse_mode_mults);
            let naive = match g.path_enumeration_mults {
                Some(n) => format!("{n} multiplications (10^{:.1})", g.path_enumeration_log10),
                None => format!("about 10^{:.1} multiplications (beyond 128 bits)", g.path_enumeration_log10),
            };
            let _ = writeln!(s, "  unit gradients, all paths       {naive}");
        }
        if !self.recurrent.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(s, "recurrent layers (parameters shared over time):");
            let rows: Vec<Vec<String>> = self
                .recurrent
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        r.steps.to_string(),
                        r.params.to_string(),
                        r.forward_macs_per_step.to_string(),
                        r.forward_macs.to_string(),
                        r.backward_macs.to_string(),
                        bytes(r.bptt_bytes),
                    ]
                })
                .collect();
            table(&mut s, &["layer", "T", "params", "fwd MACs/step", "fwd MACs", "bwd MACs", "BPTT memory"], &rows, 1);
        }
        if let Some(d) = &self.devices {
            let _ = writeln!(s);
            let _ = writeln!(s, "cross-device traffic per iteration at batch {}:", self.batch);
            let rows: Vec<Vec<String>> = d
                .edges
                .iter()
                .map(|e| {
                    vec![format!("{} -> {}", e.from, e.to), format!("{} -> {}", e.from_device, e.to_device), bytes(e.forward_bytes), bytes(e.backward_bytes)]
                })
                .collect();
            table(&mut s, &["edge", "devices", "forward", "backward"], &rows, 2);
            for p in &d.pairs {
                let _ =
                    writeln!(s, "  devices {} <-> {}: {} forward, {} backward", p.from_device, p.to_device, bytes(p.forward_bytes), bytes(p.backward_bytes));
            }
            for w in &d.waits {
                let _ = writeln!(s, "  {w}");
            }
        }
        s
    }
}
