//! `expc compile --report` and `expc dump graph`.

use super::{print_value, read, Format, Out};
use clap::ValueEnum;
use expc::compile::{compile_path, Compilation};
use expc::ops::shape::show;
use expc::ops::Op;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    /// One self-contained page: the graph as SVG, the sortable per-layer table, memory.
    Html,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Yaml,
    Json,
}

fn checked(out: &Out, file: &Path) -> Result<Compilation, i32> {
    let c = compile_path(file, &read);
    if out.diagnostics(&c.diagnostics, &c.sources) || !c.ok() {
        return Err(1);
    }
    Ok(c)
}

pub fn compile(out: &Out, file: &Path, report: bool, format: ReportFormat, batch: Option<u64>, output: Option<&Path>, threads: Option<usize>) -> i32 {
    let c = match checked(out, file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(exp) = &c.experiment else { return 1 };
    if !report {
        println!("ok: {} ({} layers, shapes checked)", file.display(), exp.model.layers.len());
        return 0;
    }
    let threads = match super::run::threads_setting(out, file, threads) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let Ok(checked) = c.into_checked() else { return 1 };
    let (exp, g, a) = (&checked.experiment, &checked.graph, &checked.analysis);
    let mut r = expc::report::report(exp, g, a, batch.unwrap_or(exp.data.batch));
    // The native engine's own model: only for experiments it can train (one loss, one input).
    if let Ok(plan) = expc::lower::lower(&checked) {
        if let Ok(m) = expc::run::engine_model::engine_memory(&plan, exp, r.batch, threads) {
            r.engine_memory = Some(expc::report::EngineMemory {
                threads: threads as u64,
                bytes: expc::report::Memory {
                    parameters: m.params as u64,
                    gradients: m.grads as u64,
                    optimizer_state: m.optimizer_state as u64,
                    activations: m.activations as u64,
                    workspace: m.workspace as u64,
                    total: m.total() as u64,
                },
            });
        }
    }
    let text = match format {
        ReportFormat::Text => r.text(),
        ReportFormat::Json => match serde_json::to_string_pretty(&r) {
            Ok(t) => t + "\n",
            Err(e) => {
                eprintln!("error: cannot serialize: {e}");
                return 2;
            }
        },
        ReportFormat::Html => expc::report::html::html(exp, g, a, &r, None),
    };
    emit(&text, output)
}

/// Prints `text`, or writes it to `output`.
fn emit(text: &str, output: Option<&Path>) -> i32 {
    match output {
        None => {
            print!("{text}");
            0
        }
        Some(p) => match super::write_atomic(p, text) {
            Ok(()) => {
                eprintln!("wrote {}", p.display());
                0
            }
            Err(e) => {
                eprintln!("error[E0550]: cannot write `{}`: {e}", p.display());
                1
            }
        },
    }
}

/// `expc report RUN_DIR`: the static report of the run's recorded sources and what it measured.
pub fn run_report(out: &Out, dir: &Path, output: &Path, batch: Option<u64>) -> i32 {
    use expc::run::run_folder::RunRecord;
    let record = match RunRecord::load(dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let c = record.compile(&|d: &expc::spec::DataSpec| Ok(expc::graph::DataFacts::from_spec(d)));
    if out.diagnostics(&c.diagnostics, &c.sources) || !c.ok() {
        return 1;
    }
    let (Some(exp), Some(g), Some(a)) = (&c.experiment, &c.graph, &c.analysis) else { return 1 };
    let r = expc::report::report(exp, g, a, batch.unwrap_or(exp.data.batch));
    let metrics = match expc::run::metrics::read(&dir.join("metrics.csv")) {
        Ok(rows) => rows.iter().map(|m| (m.iteration, m.train_loss, m.test_loss, m.test_accuracy)).collect(),
        Err(e) => {
            eprintln!("warning: no curves: {e}");
            vec![]
        }
    };
    let spec = std::fs::read_to_string(dir.join("spec.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| serde_yaml::to_string(&v).ok());
    let extras = expc::report::html::RunExtras {
        dir: dir.display().to_string(),
        metrics,
        filters_png: std::fs::read(dir.join("filters.png")).ok(),
        summary: std::fs::read_to_string(dir.join("summary.json")).ok().and_then(|t| serde_json::from_str(&t).ok()),
        spec,
        sources: record.sources.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    };
    emit(&expc::report::html::html(exp, g, a, &r, Some(&extras)), Some(output))
}

#[derive(Serialize)]
struct GraphDump {
    experiment: String,
    nodes: Vec<NodeDump>,
}

#[derive(Serialize)]
struct NodeDump {
    name: String,
    op: String,
    shape: Vec<u64>,
    params: u64,
    device: u32,
    inputs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shares_parameters_with: Option<String>,
}

pub fn dump_graph(out: &Out, file: &Path, format: GraphFormat, unroll: Option<u64>) -> i32 {
    let c = match checked(out, file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (Some(exp), Some(g), Some(a)) = (&c.experiment, &c.graph, &c.analysis) else { return 1 };
    let layers = &exp.model.layers;
    let mut nodes = vec![];
    // With --unroll, a recurrent layer's consumers read its last step.
    let mut renamed: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for &n in &g.order {
        let i = g.g[n].layer;
        let l = &layers[i];
        let inputs: Vec<String> = g
            .input_slice(n)
            .iter()
            .map(|&p| {
                let name = &layers[g.g[p].layer].name;
                renamed.get(name).cloned().unwrap_or_else(|| name.clone())
            })
            .collect();
        let shape = a.shapes[i].clone().unwrap_or_default();
        let params = a.owned_params(i);
        let recurrent = matches!(l.op, Op::Rnn(_) | Op::Lstm(_));
        match (unroll, recurrent) {
            (Some(t), true) => {
                // One node per time step; step t reads x_t and h_{t-1}; parameters shared.
                let hidden = shape.last().copied().unwrap_or(0);
                renamed.insert(l.name.clone(), format!("{}@{}", l.name, t.max(1)));
                for step in 1..=t.max(1) {
                    // The input sequence's step `step` (an edge label in DOT).
                    let mut ins: Vec<String> = inputs.iter().map(|x| format!("{x}[t={step}]")).collect();
                    if step > 1 {
                        ins.push(format!("{}@{}", l.name, step - 1));
                    }
                    nodes.push(NodeDump {
                        name: format!("{}@{step}", l.name),
                        op: l.op.kind().to_string(),
                        shape: vec![hidden],
                        params: if step == 1 { params } else { 0 },
                        device: l.device,
                        inputs: ins,
                        step: Some(step),
                        shares_parameters_with: (step > 1).then(|| format!("{}@1", l.name)),
                    });
                }
            }
            _ => nodes.push(NodeDump {
                name: l.name.clone(),
                op: l.op.kind().to_string(),
                shape,
                params,
                device: l.device,
                inputs,
                step: None,
                shares_parameters_with: None,
            }),
        }
    }
    let dump = GraphDump { experiment: exp.name.clone(), nodes };
    match format {
        GraphFormat::Yaml => print_value(&dump, Format::Yaml),
        GraphFormat::Json => print_value(&dump, Format::Json),
        GraphFormat::Dot => {
            print!("{}", dot(&dump));
            0
        }
    }
}

fn dot(d: &GraphDump) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut s = String::new();
    let _ = writeln!(s, "digraph \"{}\" {{", esc(&d.experiment));
    let _ = writeln!(s, "  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\", fontsize=10];");
    let names: std::collections::HashSet<&str> = d.nodes.iter().map(|n| n.name.as_str()).collect();
    for n in &d.nodes {
        let shape = if n.shape.is_empty() { "scalar".to_string() } else { format!("N×{}", show(&n.shape)) };
        let mut label = format!("{}\\n{} · {}", esc(&n.name), n.op, shape);
        if n.params > 0 {
            let _ = write!(label, "\\n{} params", n.params);
        }
        if let Some(w) = &n.shares_parameters_with {
            let _ = write!(label, "\\nshares parameters with {}", esc(w));
        }
        let style = if n.shares_parameters_with.is_some() { ", style=dashed" } else { "" };
        let color = if n.device > 0 { format!(", color=\"/set19/{}\"", (n.device % 9) + 1) } else { String::new() };
        let _ = writeln!(s, "  \"{}\" [label=\"{label}\"{style}{color}];", esc(&n.name));
        for i in &n.inputs {
            match i.split_once("[t=") {
                // A step of an input sequence: an edge from the sequence, labelled x_t.
                Some((seq, step)) if names.contains(seq) => {
                    let _ = writeln!(s, "  \"{}\" -> \"{}\" [label=\"x_{}\"];", esc(seq), esc(&n.name), step.trim_end_matches(']'));
                }
                _ => {
                    let _ = writeln!(s, "  \"{}\" -> \"{}\";", esc(i), esc(&n.name));
                }
            }
        }
    }
    s.push_str("}\n");
    s
}

pub fn gradcheck(out: &Out, file: &Path, batch: usize, tolerance: f64, seed: u64) -> i32 {
    use expc::diagnostic::Diagnostic;
    let bad = if !(tolerance.is_finite() && tolerance > 0.0) {
        Some(Diagnostic::error("E0031", format!("--tolerance {tolerance}: not a positive number")).help("e.g. --tolerance 1e-5 (the default)"))
    } else if batch == 0 {
        Some(Diagnostic::error("E0031", "--batch 0: a gradient check needs at least one sample").help("e.g. --batch 2 (the default)"))
    } else {
        None
    };
    if let Some(d) = bad {
        out.diagnostics(&[d], &expc::source::SourceMap::new());
        return 1;
    }
    let c = match checked(out, file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Ok(c) = c.into_checked() else { return 1 };
    let plan = match expc::lower::lower(&c) {
        Ok(p) => p,
        Err(d) => {
            out.diagnostics(&d, &c.sources);
            return 1;
        }
    };
    let checks = match expc::engine::gradcheck(&plan, batch, seed) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error[E0534]: engine: {e}");
            return 1;
        }
    };
    let width = checks.iter().map(|t| t.layer.len() + t.param.len() + 1).max().unwrap_or(10);
    println!("{:<width$}  {:>8}  {:>14}", "tensor", "checked", "max rel error");
    let mut worst = 0.0f64;
    for t in &checks {
        let name = format!("{}.{}", t.layer, t.param);
        let flag = if t.max_rel_err > tolerance { "  FAIL" } else { "" };
        println!("{name:<width$}  {:>8}  {:>14.3e}{flag}", t.checked, t.max_rel_err);
        worst = worst.max(t.max_rel_err);
    }
    println!("worst relative error {worst:.3e} over {} tensors (tolerance {tolerance:e}, batch {batch}, f64)", checks.len());
    i32::from(worst > tolerance || checks.is_empty())
}
