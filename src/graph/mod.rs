//! Stage 3, the graph: the resolved model as a petgraph `StableDiGraph`, and its checks.
//!
//! [`build`] makes one node per layer (repeat blocks are already expanded and variants applied
//! by the resolver) and one edge per named or implicit input, keeping the spans of both.
//! [`check`] infers every shape with the op files' rules and computes parameters and costs.
//! Invariants:
//! - The graph is never mutated by analysis: results live in the [`Analysis`] side table,
//!   indexed like [`Graph::nodes`].
//! - `order` is a topological order of all nodes (the graph is acyclic once `build` succeeds).
//! - Every error carries a primary label at the consumer and, for shape errors, a secondary
//!   label at the producer; all errors of a model are reported, not only the first, and a node
//!   downstream of an error is skipped rather than reported again.

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::ops::shape::{show, show_count, Cost, Dims, ParamShapes};
use crate::ops::Op;
use crate::source::Span;
use crate::spec::{DataSpec, Dataset, Experiment, SequenceMode};
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::collections::HashMap;

#[derive(Clone, Debug)]
pub struct Node {
    /// Index into `experiment.model.layers`.
    pub layer: usize,
    pub name: String,
}

#[derive(Clone, Debug)]
pub struct Edge {
    /// Which input of the consumer this edge feeds.
    pub slot: usize,
    /// Where the reference is written (`None` for the implicit "previous layer").
    pub span: Option<Span>,
}

#[derive(Debug)]
pub struct Graph {
    pub g: StableDiGraph<Node, Edge>,
    /// Node of each layer, by layer index.
    pub nodes: Vec<NodeIndex>,
    /// A topological order of the nodes: the spec's order wherever the inputs allow it.
    pub order: Vec<NodeIndex>,
    /// Producers of each layer's inputs in slot order (by layer index), computed once.
    producers: Vec<Vec<NodeIndex>>,
    /// The layer named by each layer's `share=` (by layer index); checked by [`check`].
    pub shares: Vec<Option<usize>>,
}

impl Graph {
    /// The producers of a node's inputs, in slot order.
    pub fn input_slice(&self, n: NodeIndex) -> &[NodeIndex] {
        &self.producers[self.g[n].layer]
    }
}

/// Builds the graph; reports dangling inputs, cycles and unused layers.
pub fn build(exp: &Experiment) -> (Option<Graph>, Vec<Diagnostic>) {
    let layers = &exp.model.layers;
    let mut g = StableDiGraph::new();
    let nodes: Vec<NodeIndex> = layers.iter().enumerate().map(|(i, l)| g.add_node(Node { layer: i, name: l.name.clone() })).collect();
    let by_name: HashMap<&str, usize> = layers.iter().enumerate().map(|(i, l)| (l.name.as_str(), i)).collect();
    let mut diags = vec![];
    for (i, l) in layers.iter().enumerate() {
        for (slot, r) in l.inputs.iter().enumerate() {
            match by_name.get(r.name.as_str()) {
                Some(&j) => {
                    g.add_edge(nodes[j], nodes[i], Edge { slot, span: r.span });
                }
                None => {
                    let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
                    let at = r.span.unwrap_or(l.span);
                    diags.push(
                        Diagnostic::error("E0200", format!("layer `{}` reads `{}`, which is not a layer of this model", l.name, r.name))
                            .primary(at, "no layer has this name")
                            .with_help(did_you_mean(&r.name, names.iter().copied()))
                            .note(format!("layers: {}", crate::spec::load::abbreviate(&names))),
                    );
                }
            }
        }
    }
    // `share=NAME`: resolved here, once; whether the parameters match is `check`'s business.
    let mut shares = vec![None; layers.len()];
    for (i, l) in layers.iter().enumerate() {
        let Some(r) = &l.share else { continue };
        let at = r.span.unwrap_or(l.span);
        match by_name.get(r.name.as_str()) {
            Some(&j) if j == i => diags.push(
                Diagnostic::error("E0204", format!("layer `{}` shares its parameters with itself", l.name))
                    .primary(at, "the layer's own name")
                    .help("name the layer whose parameters this one should use, or remove `share=`"),
            ),
            Some(&j) => shares[i] = Some(j),
            None => {
                let names: Vec<&str> = layers.iter().filter(|x| x.op.has_weights()).map(|x| x.name.as_str()).collect();
                diags.push(
                    Diagnostic::error("E0204", format!("layer `{}` shares the parameters of `{}`, which is not a layer of this model", l.name, r.name))
                        .primary(at, "no layer has this name")
                        .with_help(did_you_mean(&r.name, names.iter().copied()))
                        .note(format!("layers with parameters: {}", crate::spec::load::abbreviate(&names))),
                );
            }
        }
    }
    // Cycles: every strongly connected component with more than one node, or a self loop
    // (looked for only when a topological order does not exist; Kosaraju's algorithm is
    // iterative, so deep models cannot overflow the stack).
    let sccs = if petgraph::algo::toposort(&g, None).is_ok() { vec![] } else { petgraph::algo::kosaraju_scc(&g) };
    for scc in sccs {
        let cyclic = scc.len() > 1 || g.find_edge(scc[0], scc[0]).is_some();
        if !cyclic {
            continue;
        }
        let mut members: Vec<usize> = scc.iter().map(|n| g[*n].layer).collect();
        members.sort();
        let names: Vec<&str> = members.iter().map(|&m| layers[m].name.as_str()).collect();
        let mut d = Diagnostic::error("E0201", format!("the layers {} form a cycle", names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")));
        let mut primary_done = false;
        for &m in &members {
            for e in g.edges_directed(nodes[m], Direction::Incoming) {
                if !scc.contains(&e.source()) {
                    continue;
                }
                let consumer = &layers[m];
                let producer = &layers[g[e.source()].layer];
                let span = e.weight().span.unwrap_or(consumer.name_span);
                let label = format!("`{}` reads `{}`", consumer.name, producer.name);
                d = if primary_done { d.secondary(span, label) } else { d.primary(span, label) };
                primary_done = true;
            }
        }
        diags.push(d.help("a layer can only read layers computed before it; break the cycle by changing one `from=`"));
    }
    if diags.iter().any(|d| d.is_error()) {
        return (None, diags);
    }
    // A topological order that keeps the spec's order wherever the spec allows it (Kahn's
    // algorithm, smallest layer index first): sequential models run, report and number their
    // parameters in the order they are written.
    let mut indegree: Vec<usize> = nodes.iter().map(|&n| g.edges_directed(n, Direction::Incoming).count()).collect();
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..layers.len()).filter(|&i| indegree[i] == 0).map(std::cmp::Reverse).collect();
    let mut order = Vec::with_capacity(layers.len());
    while let Some(std::cmp::Reverse(i)) = ready.pop() {
        order.push(nodes[i]);
        for e in g.edges_directed(nodes[i], Direction::Outgoing) {
            let j = g[e.target()].layer;
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push(std::cmp::Reverse(j));
            }
        }
    }
    if order.len() != layers.len() {
        return (None, diags);
    }
    // Unused layers: nothing they compute reaches a loss or a metric.
    let sinks: Vec<NodeIndex> = nodes.iter().copied().filter(|&n| layers[g[n].layer].op.is_terminal()).collect();
    if sinks.is_empty() {
        diags.push(
            Diagnostic::warning("W0203", "the model has no loss: it can be analysed but not trained")
                .primary(exp.model.span, "no `softmax_loss` in this model")
                .help("end the model with `loss: softmax_loss`"),
        );
    } else {
        let mut used = vec![false; layers.len()];
        let mut stack = sinks.clone();
        while let Some(n) = stack.pop() {
            let i = g[n].layer;
            if used[i] {
                continue;
            }
            used[i] = true;
            stack.extend(g.neighbors_directed(n, Direction::Incoming));
        }
        for (i, l) in layers.iter().enumerate() {
            if !used[i] {
                diags.push(
                    Diagnostic::warning("W0202", format!("layer `{}` is computed but never used", l.name))
                        .primary(l.name_span, "its output reaches no loss or metric")
                        .help("remove it, or read it with `from=` or `add`/`concat`"),
                );
            }
        }
    }
    let producers = nodes
        .iter()
        .map(|&n| {
            let mut e: Vec<(usize, NodeIndex)> = g.edges_directed(n, Direction::Incoming).map(|e| (e.weight().slot, e.source())).collect();
            e.sort();
            e.into_iter().map(|x| x.1).collect()
        })
        .collect();
    (Some(Graph { g, nodes, order, producers, shares }), diags)
}

/// Shapes, parameters and costs of every node (side table, indexed by layer).
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    /// Output shape per layer; `None` where an error upstream left it unknown.
    pub shapes: Vec<Option<Dims>>,
    pub params: Vec<ParamShapes>,
    pub costs: Vec<Cost>,
    /// Whether the layer must propagate a gradient to its inputs (some producer upstream has
    /// parameters). The first parametric layer on the data does not.
    pub needs_input_grad: Vec<bool>,
    /// Whether the layer's output carries a gradient (it or something upstream has parameters).
    pub carries_grad: Vec<bool>,
    /// For a layer with `share=`: the layer that owns the parameters it uses (the end of the
    /// `share=` chain). Such a layer's `params` are the owner's shapes; counts take them once.
    pub param_owner: Vec<Option<usize>>,
}

impl Analysis {
    /// Parameter elements a layer owns: its weights and biases, or 0 when it uses another
    /// layer's (`share=`).
    pub fn owned_params(&self, layer: usize) -> u64 {
        if self.param_owner[layer].is_some() {
            0
        } else {
            self.params[layer].weight_count() + self.params[layer].bias_count()
        }
    }
}

/// What is known about the data before any of it is read: from the spec (built-in datasets), or
/// from a probe of the dataset's folder (class sub-folders, file sizes, headers).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataFacts {
    /// Per sample, after cropping and sequencing: what the model's `input` must declare.
    pub sample_shape: Option<Dims>,
    pub classes: Option<u64>,
    pub train_images: Option<u64>,
    pub test_images: Option<u64>,
    /// Where the facts come from, for messages ("`dataset cifar10`", "folder data/pets with 3 class folders").
    pub origin: String,
}

impl DataFacts {
    /// What the spec alone says about its data.
    pub fn from_spec(d: &DataSpec) -> DataFacts {
        let mut s = d.dataset.sample_shape();
        if s.len() == 3 {
            if let Some([h, w]) = d.augment.crop {
                s[1] = h;
                s[2] = w;
            }
            if d.sequence == Some(SequenceMode::Rows) {
                s = vec![s[1], s[0] * s[2]];
            }
        }
        let (train, test) = match &d.dataset {
            Dataset::Synthetic { train, test, .. } => (Some(*train), Some(*test)),
            _ => (None, None),
        };
        let origin = match (&d.dataset, d.sequence) {
            (_, Some(SequenceMode::Rows)) => "read row by row (`sequence rows`)".to_string(),
            (ds, _) => format!("`dataset {}`{}", dataset_name(ds), if d.augment.crop.is_some() { " cropped by `augment crop=`" } else { "" }),
        };
        DataFacts { sample_shape: Some(s), classes: d.dataset.classes(), train_images: train, test_images: test, origin }
    }
}

/// Infers every shape; reports shape errors with the producer labelled.
pub fn check(exp: &Experiment, graph: &Graph, facts: &DataFacts) -> (Analysis, Vec<Diagnostic>) {
    let layers = &exp.model.layers;
    let n = layers.len();
    let mut a = Analysis {
        shapes: vec![None; n],
        params: vec![ParamShapes::default(); n],
        costs: vec![Cost::default(); n],
        needs_input_grad: vec![false; n],
        carries_grad: vec![false; n],
        param_owner: vec![None; n],
    };
    let mut diags = vec![];
    for &node in &graph.order {
        let i = graph.g[node].layer;
        let l = &layers[i];
        let producers: Vec<usize> = graph.input_slice(node).iter().map(|&p| graph.g[p].layer).collect();
        let ins: Option<Vec<Dims>> = producers.iter().map(|&p| a.shapes[p].clone()).collect();
        let Some(ins) = ins else { continue };
        let refs: Vec<&[u64]> = ins.iter().map(|x| x.as_slice()).collect();
        match l.op.output_shape(&refs) {
            Ok(out) => {
                a.params[i] = l.op.params(&refs);
                a.costs[i] = l.op.cost(&refs, &out);
                let has_params = a.params[i].weight_count() + a.params[i].bias_count() > 0;
                a.needs_input_grad[i] = producers.iter().any(|&p| a.carries_grad[p]);
                a.carries_grad[i] = has_params || a.needs_input_grad[i];
                a.shapes[i] = Some(out);
            }
            Err(e) => {
                let mut d = Diagnostic::error(e.code, format!("layer `{}`: {}", l.name, e.message)).primary(l.span, e.label.clone());
                if let Some(k) = e.input {
                    if let (Some(&p), Some(shape)) = (producers.get(k), ins.get(k)) {
                        d = d.secondary(layers[p].name_span, format!("`{}` produces {}", layers[p].name, show_count(shape)));
                    }
                }
                diags.push(d.with_help(e.help));
            }
        }
    }
    diags.extend(check_sharing(exp, graph, &mut a));
    diags.extend(check_data(exp, &a, facts));
    (a, diags)
}

/// `share=`: follows each chain to the layer that owns the parameters (refusing cycles) and
/// checks that the sharing layer's parameters would have the owner's kind and shapes.
fn check_sharing(exp: &Experiment, graph: &Graph, a: &mut Analysis) -> Vec<Diagnostic> {
    let layers = &exp.model.layers;
    let mut diags = vec![];
    for (i, l) in layers.iter().enumerate() {
        let Some(mut owner) = graph.shares[i] else { continue };
        let at = l.share.as_ref().and_then(|r| r.span).unwrap_or(l.span);
        let mut seen = vec![i];
        while let Some(next) = graph.shares[owner] {
            if seen.contains(&owner) {
                break;
            }
            seen.push(owner);
            owner = next;
        }
        if let Some(start) = seen.iter().position(|&k| k == owner) {
            // Reported once, at the circle's first layer (a layer leading into it says nothing).
            let circle = &seen[start..];
            if circle.iter().min() != Some(&i) {
                continue;
            }
            let names: Vec<String> = circle.iter().map(|&k| format!("`{}`", layers[k].name)).collect();
            diags.push(
                Diagnostic::error("E0204", format!("the layers {} share parameters in a circle: none of them owns any", names.join(", ")))
                    .primary(at, format!("`{}` shares `{}`'s parameters", l.name, layers[graph.shares[i].unwrap_or(i)].name))
                    .help("remove `share=` from the layer that should own the parameters"),
            );
            continue;
        }
        let (mine, theirs) = (&a.params[i], &a.params[owner]);
        let kinds_differ = std::mem::discriminant(&l.op) != std::mem::discriminant(&layers[owner].op);
        if a.shapes[i].is_some() && a.shapes[owner].is_some() && (kinds_differ || mine != theirs) {
            let describe = |p: &ParamShapes| {
                let all: Vec<String> = p.weights.iter().chain(&p.biases).map(|(n, s)| format!("{n} {}", show(s))).collect();
                if all.is_empty() {
                    "no parameters".to_string()
                } else {
                    all.join(", ")
                }
            };
            diags.push(
                Diagnostic::error("E0215", format!("layer `{}` cannot share the parameters of `{}`: they differ", l.name, layers[owner].name))
                    .primary(at, format!("needs {} ({})", describe(mine), l.op.kind()))
                    .secondary(layers[owner].name_span, format!("`{}` has {} ({})", layers[owner].name, describe(theirs), layers[owner].op.kind()))
                    .help("a shared layer must be the same kind of layer with the same sizes, and read inputs with the same channels or features"),
            );
            continue;
        }
        a.param_owner[i] = Some(owner);
    }
    diags
}

/// The model's input and output against the data: sample shape, number of classes, images.
fn check_data(exp: &Experiment, a: &Analysis, facts: &DataFacts) -> Vec<Diagnostic> {
    let layers = &exp.model.layers;
    let mut diags = vec![];
    if let (Some(input), Some(expected)) = (layers.iter().position(|l| matches!(l.op, Op::Input(_))), &facts.sample_shape) {
        if let Some(declared) = &a.shapes[input] {
            if declared != expected {
                diags.push(
                    Diagnostic::error("E0220", format!("the model's input is {} but the data yields {} per sample", show(declared), show(expected)))
                        .primary(layers[input].span, format!("declared {}", show(declared)))
                        .secondary(exp.data.span, format!("{} gives {}", facts.origin, show(expected)))
                        .help(format!("write `input {}`", expected.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("x"))),
                );
            }
        }
    }
    if let Some(classes) = facts.classes {
        for (i, l) in layers.iter().enumerate() {
            if !matches!(l.op, Op::SoftmaxLoss(_)) {
                continue;
            }
            let Some(p) = l.inputs.first().and_then(|r| layers.iter().position(|x| x.name == r.name)) else { continue };
            let Some(logits) = &a.shapes[p] else { continue };
            let c = crate::ops::softmax_loss::classes(logits);
            if c != classes && a.shapes[i].is_some() {
                diags.push(
                    Diagnostic::error("E0221", format!("`{}` gets {c} logits but the data has {}", l.name, plural(classes, "class", "classes")))
                        .primary(l.span, format!("expects {classes} logits"))
                        .secondary(layers[p].name_span, format!("`{}` produces {}", layers[p].name, show_count(logits)))
                        .secondary(exp.data.span, format!("{} has {}", facts.origin, plural(classes, "class", "classes")))
                        .help(format!("make the last layer `fc {classes}`")),
                );
            }
        }
    }
    let validation = exp.data.validation;
    if let Some(n) = facts.train_images.filter(|&n| validation > 0 && validation >= n) {
        diags.push(
            Diagnostic::error("E0222", format!("a validation set of {validation} leaves none of the {n} training images to train on"))
                .primary(exp.data.span, format!("{} has {}", facts.origin, plural(n, "training image", "training images")))
                .help("set aside fewer images with `validation`"),
        );
    }
    let train_images = facts.train_images.map(|n| n.saturating_sub(validation));
    for (what, n, batch) in [("training", train_images, exp.data.batch), ("test", facts.test_images, exp.data.test_batch)] {
        if let Some(n) = n {
            if n == 0 {
                diags.push(
                    Diagnostic::error("E0222", format!("the {what} set is empty"))
                        .primary(exp.data.span, format!("{} has no {what} images", facts.origin))
                        .help("check the dataset folder"),
                );
            } else if batch > n {
                diags.push(
                    Diagnostic::error("E0222", format!("a {what} batch of {batch} is larger than the {what} set ({})", plural(n, "image", "images")))
                        .primary(exp.data.span, format!("{} has {} {what} {}", facts.origin, n, if n == 1 { "image" } else { "images" }))
                        .help(format!("lower `{}` to at most {n}", if what == "test" { "test_batch" } else { "batch" })),
                );
            }
        }
    }
    diags
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn dataset_name(d: &Dataset) -> &'static str {
    match d {
        Dataset::Cifar10 => "cifar10",
        Dataset::Mnist => "mnist",
        Dataset::Synthetic { .. } => "synthetic",
        Dataset::Folder { .. } => "folder",
    }
}
