//! Stage: lowering the checked IR to a [`Plan`], the one form every backend consumes.
//!
//! `lower` reads what `check` produced ([`crate::compile::Checked`]: the experiment, its graph and
//! the analysis side table) and never resolves a name, sorts the graph or infers a shape again:
//! producers come from the graph, shapes and parameter shapes from the analysis, attributes from
//! the op itself ([`crate::ops::Op`]), initialisers from the resolved layer (whose defaults the op
//! file states).
//!
//! Invariants of a plan:
//! - Layers appear in the graph's topological order, restricted to the layers that feed the loss
//!   (unused branches, already warned about by `check`, are dropped); the loss is last and is the
//!   only `softmax_loss`.
//! - `inputs` of layer `i` are [`Producer::Data`] or `Producer::Layer(j)` with `j < i`;
//!   `input_shapes`/`out_shape` are per sample (no batch axis) and equal the op's shape rule.
//! - An `fc` on a C×H×W input reads it flattened (Caffe's InnerProduct); the plan keeps the
//!   rank-3 input shape and the `[out, C·H·W]` weight, and backends read the buffer as a vector.
//! - Parameter names are the op file's (PyTorch's): `weight`, `bias`, `weight_ih`, `weight_hh`.
//! - Layers tied by `share=` form a group; the group's first layer in plan order owns the
//!   tensors (with the initialisers and multipliers of the layer the spec's chain ends at) and
//!   every other member's [`PlanLayer::shares`] points back at it.
//! - `accuracy` layers are not layers of the plan: they become [`Plan::accuracy_top`], measured by
//!   the backend on the loss's logits (lowering refuses an `accuracy` reading other logits).

use crate::compile::Checked;
use crate::diagnostic::Diagnostic;
use crate::ops::Op;
use crate::param::Init;
use crate::source::Span;
use petgraph::stable_graph::NodeIndex;

/// What a layer reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Producer {
    /// The network input (one sample of [`Plan::input_shape`]).
    Data,
    /// The output of an earlier layer (index into [`Plan::layers`]).
    Layer(usize),
}

/// One parameter tensor of a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanParam {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub init: Init,
    pub lr_mult: f64,
    pub decay_mult: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PlanLayer {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<Producer>,
    pub input_shapes: Vec<Vec<usize>>,
    pub out_shape: Vec<usize>,
    /// The layer's parameter tensors (for a layer that shares, the shapes of the tensors it uses).
    pub params: Vec<PlanParam>,
    /// `share=`: the earlier layer (index into [`Plan::layers`]) whose parameters this layer uses;
    /// that layer owns them, this one adds its gradients to them.
    pub shares: Option<usize>,
    /// The `device=` placement (model parallelism).
    pub device: u32,
    /// The layer's line in the spec.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Per-sample input shape: `[C, H, W]`, `[F]` or `[T, F]`.
    pub input_shape: Vec<usize>,
    pub layers: Vec<PlanLayer>,
    /// `K` of the accuracy reported as `test_accuracy` (the model's first `accuracy` layer; 1
    /// when it has none).
    pub accuracy_top: usize,
}

impl Plan {
    /// The number of classes of the loss's logits.
    pub fn classes(&self) -> usize {
        self.layers.last().and_then(|l| l.input_shapes.first()).and_then(|s| s.last().copied()).unwrap_or(0)
    }

    /// Total number of parameter elements (shared tensors once).
    pub fn param_count(&self) -> usize {
        self.layers.iter().filter(|l| l.shares.is_none()).flat_map(|l| &l.params).map(|p| p.shape.iter().product::<usize>()).sum()
    }
}

fn dims(d: &[u64]) -> Vec<usize> {
    d.iter().map(|&x| x as usize).collect()
}

/// Lowers a checked experiment. Errors (a model that can be analysed but not trained) are
/// located at the layer they concern.
pub fn lower(checked: &Checked) -> Result<Plan, Vec<Diagnostic>> {
    let (exp, graph, analysis) = (&checked.experiment, &checked.graph, &checked.analysis);
    let layers = &exp.model.layers;
    let losses: Vec<usize> = (0..layers.len()).filter(|&i| matches!(layers[i].op, Op::SoftmaxLoss(_))).collect();
    let loss = match losses.as_slice() {
        [one] => *one,
        [] => {
            return Err(vec![Diagnostic::error("E0301", "the model has no loss: nothing to train")
                .primary(exp.model.span, "no `softmax_loss` layer in this model")
                .help("end the model with `loss: softmax_loss`")])
        }
        [first, second, ..] => {
            return Err(vec![Diagnostic::error("E0302", "the engine trains one loss per model")
                .primary(layers[*second].span, "second loss")
                .secondary(layers[*first].span, "first loss")
                .help("keep one `softmax_loss`; read other heads with `accuracy` or remove them")])
        }
    };
    let producer_of = |i: usize| graph.input_slice(graph.nodes[i]).iter().map(|&n: &NodeIndex| graph.g[n].layer).collect::<Vec<_>>();
    let logits = producer_of(loss).first().copied();
    // Accuracy heads: measured on the loss's logits.
    let mut accuracy_top = None;
    let mut diags = vec![];
    for (i, l) in layers.iter().enumerate() {
        if let Op::Accuracy(a) = &l.op {
            if producer_of(i).first().copied() != logits {
                diags.push(
                    Diagnostic::error("E0303", format!("`{}` reads other logits than the loss", l.name))
                        .primary(l.span, "accuracy of a different layer")
                        .secondary(layers[loss].span, "the loss")
                        .help("backends measure accuracy on the loss's logits: read the same layer as the loss (`from=`)"),
                );
            }
            accuracy_top.get_or_insert(a.top as usize);
        }
    }
    // Layers the loss depends on, in the graph's topological order.
    let mut needed = vec![false; layers.len()];
    let mut stack = vec![loss];
    while let Some(i) = stack.pop() {
        if !std::mem::replace(&mut needed[i], true) {
            stack.extend(producer_of(i));
        }
    }
    let inputs: Vec<usize> = (0..layers.len()).filter(|&i| needed[i] && matches!(layers[i].op, Op::Input(_))).collect();
    let input = match inputs.as_slice() {
        [one] => *one,
        [] => {
            diags.push(Diagnostic::error("E0114", "the model has no `input` layer").primary(exp.model.span, "model here"));
            return Err(diags);
        }
        [_, second, ..] => {
            diags.push(
                Diagnostic::error("E0304", "the loss depends on two `input` layers; the data has one input")
                    .primary(layers[*second].span, "second input")
                    .secondary(layers[inputs[0]].span, "first input"),
            );
            return Err(diags);
        }
    };
    if !diags.is_empty() {
        return Err(diags);
    }
    let shape_of = |i: usize| analysis.shapes[i].as_deref().map(dims).unwrap_or_default();
    let mut plan = Plan { input_shape: shape_of(input), layers: vec![], accuracy_top: accuracy_top.unwrap_or(1) };
    let mut index: Vec<Option<Producer>> = vec![None; layers.len()];
    index[input] = Some(Producer::Data);
    // Owner of each sharing group in the plan, keyed by the spec layer its `share=` chain ends at.
    let mut group_owner: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    for &node in &graph.order {
        let i = graph.g[node].layer;
        if !needed[i] || i == input {
            continue;
        }
        let l = &layers[i];
        let producers = producer_of(i);
        let inputs = producers.iter().map(|&p| index[p].expect("topological order: producers come first")).collect();
        let input_shapes = producers.iter().map(|&p| shape_of(p)).collect();
        let shapes = &analysis.params[i];
        let mut params = vec![];
        // Settings of the tensors: the owning layer's (the end of a `share=` chain).
        let root = analysis.param_owner[i].unwrap_or(i);
        let shares = group_owner.get(&root).copied();
        let settings = &layers[root];
        for (tensors, spec) in [(&shapes.weights, &settings.weight), (&shapes.biases, &settings.bias)] {
            for (name, shape) in tensors {
                let spec = spec.as_ref().expect("the resolver fills parameter settings of every op with parameters");
                params.push(PlanParam { name, shape: dims(shape), init: spec.init, lr_mult: spec.lr_mult, decay_mult: spec.decay_mult });
            }
        }
        plan.layers.push(PlanLayer {
            name: l.name.clone(),
            op: l.op.clone(),
            inputs,
            input_shapes,
            out_shape: shape_of(i),
            params,
            shares,
            device: l.device,
            span: l.span,
        });
        index[i] = Some(Producer::Layer(plan.layers.len() - 1));
        if !plan.layers[plan.layers.len() - 1].params.is_empty() {
            group_owner.entry(root).or_insert(plan.layers.len() - 1);
        }
    }
    Ok(plan)
}

/// Compiles spec text (no `extends`) and lowers it: the plan of a net written inline, for tests,
/// benchmarks and examples. Errors are the rendered diagnostics.
pub fn lower_text(name: &str, text: &str) -> Result<Plan, String> {
    let no_files = |p: &std::path::Path| Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("{} (inline spec)", p.display())));
    let c = crate::compile::compile_text(name, text, std::path::Path::new("."), &no_files);
    let checked = c.into_checked().map_err(|r| crate::diagnostic::render(&r.diagnostics, &r.sources, false))?;
    lower(&checked).map_err(|d| crate::diagnostic::render(&d, &checked.sources, false))
}

/// Compiles the spec in `path` (with its `extends` chain) and lowers it; errors are the rendered
/// diagnostics. For benchmarks and tests that need the plan of a shipped experiment.
pub fn lower_file(path: &std::path::Path) -> Result<Plan, String> {
    let c = crate::compile::compile_path(path, &|p: &std::path::Path| std::fs::read_to_string(p));
    let checked = c.into_checked().map_err(|r| crate::diagnostic::render(&r.diagnostics, &r.sources, false))?;
    lower(&checked).map_err(|d| crate::diagnostic::render(&d, &checked.sources, false))
}
