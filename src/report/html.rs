//! The static report as one self-contained HTML page (`expc compile --report --format html`),
//! and the same page with what a run measured (`expc report RUN_DIR`).
//!
//! Everything is inline — styles, the sorting script, the graph as SVG, the filter image as a
//! data URI — so the file works offline and can be mailed around. The graph is laid out by
//! `layout-rs` (a layered, Sugiyama-style layout): nodes are coloured by device, every edge is
//! labelled with the shape it carries, and edges between devices are drawn red and labelled
//! with their bytes per step.

use super::{bytes, human, Report};
use crate::graph::{Analysis, Graph};
use crate::ops::shape::show;
use crate::ops::shape::thousands;
use crate::spec::Experiment;
use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::style::{LineStyleKind, StyleAttr};
use layout::std_shapes::render::get_shape_size;
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;
use std::fmt::Write as _;

/// Fill colours of devices 0, 1, 2, … (pale, so the text stays readable).
const DEVICE_FILLS: &[&str] = &["#dbeafe", "#fde68a", "#bbf7d0", "#fbcfe8", "#ddd6fe", "#fed7aa", "#a5f3fc", "#e5e7eb"];

/// Graphs larger than this are not drawn (the layout is super-linear); the table still is.
pub const MAX_DRAWN_LAYERS: usize = 400;

/// `(iteration, train_loss, test_loss, test_accuracy)` of one row of `metrics.csv`.
pub type MetricRow = (u64, Option<f64>, Option<f64>, Option<f64>);

/// A named line of a chart: `(name, colour, points)`.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

/// What a run measured, for `expc report RUN_DIR`.
#[derive(Clone, Debug, Default)]
pub struct RunExtras {
    /// The run folder, as given.
    pub dir: String,
    /// The rows of `metrics.csv`.
    pub metrics: Vec<MetricRow>,
    /// `filters.png`.
    pub filters_png: Option<Vec<u8>>,
    /// `summary.json`.
    pub summary: Option<serde_json::Value>,
    /// The resolved experiment (`spec.json`), pretty-printed.
    pub spec: Option<String>,
    /// The source files the run was compiled from (`run.json`), by name.
    pub sources: Vec<(String, String)>,
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn shape_text(s: &[u64]) -> String {
    if s.is_empty() {
        "scalar".into()
    } else {
        format!("N×{}", show(s))
    }
}

/// The graph as SVG, laid out by `layout-rs`; `Err` says why it is not drawn (too large, or the
/// layout failed).
pub fn graph_svg(exp: &Experiment, graph: &Graph, a: &Analysis, r: &Report) -> Result<String, String> {
    let layers = &exp.model.layers;
    if layers.is_empty() || layers.len() > MAX_DRAWN_LAYERS {
        return Err(format!("The graph has {} layers; graphs of more than {MAX_DRAWN_LAYERS} are not drawn.", layers.len()));
    }
    // layout-rs checks its own invariants with assertions, and a few DAGs trip them in its
    // edge-straightening pass: then the graph is placed again without that pass.
    for skip_optimisation in [false, true] {
        let drawn = quietly(|| {
            let mut vg = visual_graph(exp, graph, a, r);
            let mut svg = SVGWriter::new();
            vg.do_it(false, skip_optimisation, skip_optimisation, &mut svg);
            svg.finalize()
        });
        if let Some(svg) = drawn {
            return Ok(svg);
        }
    }
    Err("The graph could not be laid out; the table below has every layer.".to_string())
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic into `None` without printing it (other threads' panics, and this
/// thread's outside `quietly`, go to the previous hook as before).
fn quietly<T>(f: impl FnOnce() -> T) -> Option<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info)
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok();
    QUIET.with(|q| q.set(false));
    out
}

/// One box per layer (coloured by device), one arrow per input labelled with its shape.
fn visual_graph(exp: &Experiment, graph: &Graph, a: &Analysis, r: &Report) -> VisualGraph {
    let layers = &exp.model.layers;
    let multi = r.devices.is_some();
    let mut vg = VisualGraph::new(Orientation::TopToBottom);
    let mut handles = vec![None; layers.len()];
    for &node in &graph.order {
        let i = graph.g[node].layer;
        let l = &layers[i];
        let mut label = format!("{}\n{} · {}", l.name, l.op.kind(), a.shapes[i].as_deref().map(shape_text).unwrap_or_else(|| "?".into()));
        let params = a.owned_params(i);
        if let Some(o) = a.param_owner[i] {
            let _ = write!(label, "\nshares {}", layers[o].name);
        } else if params > 0 {
            let _ = write!(label, "\n{} params", human(params));
        }
        if multi {
            let _ = write!(label, "\ndevice {}", l.device);
        }
        let fill = DEVICE_FILLS[l.device as usize % DEVICE_FILLS.len()];
        let shape = ShapeKind::Box(label);
        let look = StyleAttr::new(Color::fast("#334155"), 1, Some(Color::fast(fill)), 6, 13);
        let size = get_shape_size(Orientation::TopToBottom, &shape, 13, false);
        let props = format!("class=\"node\" data-layer=\"{}\"", esc(&l.name));
        handles[i] = Some(vg.add_node(Element::create_with_properties(shape, look, Orientation::TopToBottom, size, props)));
    }
    for &node in &graph.order {
        let i = graph.g[node].layer;
        for &p in graph.input_slice(node) {
            let j = graph.g[p].layer;
            let (Some(from), Some(to)) = (handles[j], handles[i]) else { continue };
            let shape = a.shapes[j].as_deref().map(shape_text).unwrap_or_else(|| "?".into());
            let cross = layers[j].device != layers[i].device;
            let (text, look, props) = if cross {
                let e = r.devices.as_ref().and_then(|d| d.edges.iter().find(|e| e.from == layers[j].name && e.to == layers[i].name));
                let b = e.map(|e| format!("\n{} fwd, {} bwd", bytes(e.forward_bytes), bytes(e.backward_bytes))).unwrap_or_default();
                (
                    format!("{shape}{b}\ndevice {} → {}", layers[j].device, layers[i].device),
                    StyleAttr::new(Color::fast("#dc2626"), 3, None, 0, 11),
                    "class=\"edge cross\"",
                )
            } else {
                (shape, StyleAttr::new(Color::fast("#64748b"), 1, None, 0, 11), "class=\"edge\"")
            };
            let arrow = Arrow {
                start: LineEndKind::None,
                end: LineEndKind::Arrow,
                line_style: if cross { LineStyleKind::Dashed } else { LineStyleKind::Normal },
                text,
                look,
                properties: Some(props.to_string()),
                src_port: None,
                dst_port: None,
            };
            vg.add_edge(arrow, from, to);
        }
    }
    vg
}

fn bar_cell(value: u64, max: u64, text: String, class: &str) -> String {
    let pct = if max > 0 { 100.0 * value as f64 / max as f64 } else { 0.0 };
    format!("<td class=\"num\" data-v=\"{value}\"><div class=\"bar {class}\" style=\"width:{pct:.1}%\"></div><span>{text}</span></td>")
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#0f172a;background:#f8fafc}
header{background:#0f172a;color:#f8fafc;padding:14px 24px}header h1{margin:0;font-size:20px}header p{margin:2px 0 0;color:#cbd5e1}
main{padding:8px 24px 40px;max-width:1500px}section{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:12px 16px;margin:14px 0}
h2{font-size:16px;margin:0 0 8px}table{border-collapse:collapse;width:100%}th,td{padding:3px 8px;border-bottom:1px solid #f1f5f9;text-align:left;white-space:nowrap}
th{background:#f1f5f9;position:sticky;top:0}th.sort{cursor:pointer}th.sort:after{content:" ⇅";color:#94a3b8}
td.num{text-align:right;position:relative;min-width:90px}td.num span{position:relative}
.bar{position:absolute;left:0;top:3px;bottom:3px;border-radius:2px;opacity:.35}.params{background:#2563eb}.fwd{background:#16a34a}.bwd{background:#ea580c}.kept{background:#9333ea}
.graph{overflow:auto;max-height:760px;border:1px solid #e2e8f0;border-radius:6px;background:#fff}.graph svg{display:block;margin:auto}
.graph text{font-family:ui-sans-serif,system-ui,sans-serif;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}.node{cursor:pointer}.node:hover rect{stroke:#0f172a;stroke-width:3}tr.hl td{background:#fef9c3}
.totals{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:8px}.kv small{font-weight:normal;color:#475569}.kv{background:#f8fafc;border-radius:6px;padding:8px}.kv b{display:block;font-size:18px}
.mem{display:flex;height:26px;border-radius:4px;overflow:hidden;margin:6px 0}.mem div{height:100%}
.legend span{display:inline-block;margin-right:14px}.sw{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:middle;margin-right:4px}
#layers{overflow:auto;max-height:900px}
pre{background:#f1f5f9;padding:8px;border-radius:6px;overflow:auto;max-height:420px}ul.conv{color:#475569;margin:0;padding-left:18px}
"#;

const SCRIPT: &str = r#"
(function(){
  function sortTable(th){
    var table=th.closest('table'),body=table.tBodies[0],idx=Array.prototype.indexOf.call(th.parentNode.children,th);
    var asc=th.getAttribute('data-dir')!=='asc';th.setAttribute('data-dir',asc?'asc':'desc');
    var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){
      var x=a.cells[idx],y=b.cells[idx];var xv=x.getAttribute('data-v'),yv=y.getAttribute('data-v');
      var c=(xv!==null&&yv!==null)?(parseFloat(xv)-parseFloat(yv)):x.textContent.localeCompare(y.textContent);
      return asc?c:-c;});
    rows.forEach(function(r){body.appendChild(r);});
  }
  document.querySelectorAll('th.sort').forEach(function(th){th.addEventListener('click',function(){sortTable(th);});});
  document.querySelectorAll('.node').forEach(function(n){
    n.addEventListener('click',function(){
      var name=n.getAttribute('data-layer');
      document.querySelectorAll('tr.hl').forEach(function(r){r.classList.remove('hl');});
      var row=document.querySelector('tr[data-layer="'+CSS.escape(name)+'"]');
      if(row){row.classList.add('hl');row.scrollIntoView({block:'center'});}
    });
  });
  window.expcReportReady=true;
})();
"#;

/// The report page; `run` adds curves, filters, summary and the resolved spec.
pub fn html(exp: &Experiment, graph: &Graph, a: &Analysis, r: &Report, run: Option<&RunExtras>) -> String {
    let mut s = String::new();
    let title = match run {
        Some(x) => format!("{} — run {}", r.experiment, x.dir),
        None => format!("{} — static report", r.experiment),
    };
    let _ = write!(s, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{}</title><style>{STYLE}</style></head><body>", esc(&title));
    let t = &r.totals;
    let _ = write!(
        s,
        "<header><h1>{}</h1><p>{} layers · {} parameters · {} FLOPs per training step at batch {} · generated by expc {}</p></header><main>",
        esc(&title),
        r.layers.len(),
        human(t.params),
        human(t.flops_per_step),
        r.batch,
        env!("CARGO_PKG_VERSION")
    );
    if let Some(x) = run {
        run_sections(&mut s, x);
    }
    // Totals.
    let _ = write!(s, "<section id=\"totals\"><h2>Totals</h2><div class=\"totals\">");
    for (k, v) in [
        ("parameters", format!("{} <small>{} w + {} b</small>", group(t.params), group(t.weights), group(t.biases))),
        ("forward MACs / sample", group(t.forward_macs_per_sample)),
        ("backward MACs / sample", group(t.backward_macs_per_sample)),
        (&*format!("FLOPs / step (batch {})", r.batch), human(t.flops_per_step)),
        ("elementwise ops / sample", group(t.elementwise_ops_per_sample)),
        (&*format!("training memory (batch {})", r.batch), bytes(r.memory.total)),
    ] {
        let _ = write!(s, "<div class=\"kv\">{}<b>{v}</b></div>", esc(k));
    }
    let _ = write!(s, "</div>");
    // Memory breakdown: a stacked bar and its legend.
    let m = &r.memory;
    let parts = [
        ("parameters", m.parameters, "#2563eb"),
        ("gradients", m.gradients, "#0891b2"),
        ("solver state", m.optimizer_state, "#16a34a"),
        ("activations kept", m.activations, "#9333ea"),
        ("workspace", m.workspace, "#ea580c"),
    ];
    let _ = write!(s, "<h2 style=\"margin-top:12px\">Memory at batch {}: {}</h2><div class=\"mem\">", r.batch, bytes(m.total));
    for (name, b, c) in parts {
        let pct = if m.total > 0 { 100.0 * b as f64 / m.total as f64 } else { 0.0 };
        let _ = write!(s, "<div title=\"{name}: {}\" style=\"width:{pct:.2}%;background:{c}\"></div>", bytes(b));
    }
    let _ = write!(s, "</div><div class=\"legend\">");
    for (name, b, c) in parts {
        let pct = if m.total > 0 { 100.0 * b as f64 / m.total as f64 } else { 0.0 };
        let _ = write!(s, "<span><i class=\"sw\" style=\"background:{c}\"></i>{name} {} ({pct:.1}%)</span>", bytes(b));
    }
    let _ = write!(s, "</div></section>");
    // The graph, and the per-layer table beside it.
    let _ = write!(s, "<div class=\"cols\"><section id=\"graph\"><h2>Graph</h2>");
    if r.devices.is_some() {
        let _ = write!(s, "<p class=\"legend\">");
        let mut devs: Vec<u32> = exp.model.layers.iter().map(|l| l.device).collect();
        devs.sort();
        devs.dedup();
        for d in devs {
            let _ = write!(s, "<span><i class=\"sw\" style=\"background:{}\"></i>device {d}</span>", DEVICE_FILLS[d as usize % DEVICE_FILLS.len()]);
        }
        let _ = write!(s, "<span><i class=\"sw\" style=\"background:#dc2626\"></i>cross-device edge (bytes per step at batch {})</span></p>", r.batch);
    }
    match graph_svg(exp, graph, a, r) {
        Ok(svg) => {
            let _ = write!(
                s,
                "<div class=\"graph\">{svg}</div><p class=\"legend\">Edges are labelled with the shape they carry; click a node to find its row below.</p>"
            );
        }
        Err(why) => {
            let _ = write!(s, "<p id=\"no-graph\">{}</p>", esc(&why));
        }
    }
    let _ = write!(s, "</section>");
    // The per-layer table.
    let max = |f: &dyn Fn(&super::LayerRow) -> u64| r.layers.iter().map(f).max().unwrap_or(0);
    let (mp, mf, mb, mk) =
        (max(&|x| x.params), max(&|x| x.forward_macs), max(&|x| x.backward_input_macs + x.backward_weight_macs), max(&|x| x.activations_kept));
    let multi = r.devices.is_some();
    let _ = write!(s, "<section id=\"layers\"><h2>Layers (per sample; click a column to sort)</h2><table id=\"layer-table\"><thead><tr><th class=\"sort\">#</th><th class=\"sort\">layer</th><th class=\"sort\">op</th><th>output</th>{}<th class=\"sort\">parameters</th><th class=\"sort\">forward MACs</th><th class=\"sort\">backward MACs</th><th class=\"sort\">kept</th></tr></thead><tbody>", if multi { "<th class=\"sort\">device</th>" } else { "" });
    for (k, row) in r.layers.iter().enumerate() {
        let bwd = row.backward_input_macs + row.backward_weight_macs;
        let dev = if multi { format!("<td class=\"num\" data-v=\"{0}\">{0}</td>", row.device) } else { String::new() };
        let _ = write!(
            s,
            "<tr data-layer=\"{}\"><td class=\"num\" data-v=\"{k}\">{k}</td><td>{}</td><td>{}</td><td>{}</td>{dev}{}{}{}{}</tr>",
            esc(&row.name),
            esc(&row.name),
            esc(&row.op),
            shape_text(&row.output_shape),
            bar_cell(row.params, mp, row.shares.as_deref().map(|o| format!("= {}", esc(o))).unwrap_or_else(|| group(row.params)), "params"),
            bar_cell(row.forward_macs, mf, group(row.forward_macs), "fwd"),
            bar_cell(bwd, mb, group(bwd), "bwd"),
            bar_cell(row.activations_kept, mk, group(row.activations_kept), "kept"),
        );
    }
    let _ = write!(s, "</tbody></table></section></div>");
    // Gradient paths.
    if let Some(g) = &r.gradient_paths {
        let widths = g.widths.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("–");
        let naive_log = g.path_enumeration_log10;
        let reverse_log = (g.reverse_mode_mults.max(1) as f64).log10();
        let weight_log = (g.weight_gradient_mults.max(1) as f64).log10();
        let top = naive_log.max(reverse_log).max(weight_log).max(1.0);
        let naive = match g.path_enumeration_mults {
            Some(n) => format!("{} (10^{naive_log:.1})", thousands(n)),
            None => format!("about 10^{naive_log:.1} (beyond 128 bits)"),
        };
        let _ = write!(s, "<section id=\"gradients\"><h2>Gradients of a layered net (widths {widths})</h2><p>Multiplications to get every gradient: reverse mode (backpropagation) against summing over every path. Bars on a log scale.</p><table><tbody>");
        for (name, text, lg, class) in [
            ("weight gradients (both methods)", group(g.weight_gradient_mults), weight_log, "params"),
            ("unit gradients, reverse mode", group(g.reverse_mode_mults), reverse_log, "fwd"),
            ("unit gradients, all paths", naive, naive_log, "bwd"),
        ] {
            let pct = 100.0 * lg / top;
            let _ = write!(s, "<tr><td>{name}</td><td class=\"num\" style=\"width:60%\"><div class=\"bar {class}\" style=\"width:{pct:.1}%\"></div><span>{text}</span></td></tr>");
        }
        let _ = write!(s, "</tbody></table></section>");
    }
    // Recurrent layers.
    if !r.recurrent.is_empty() {
        let _ = write!(s, "<section id=\"recurrent\"><h2>Recurrent layers (parameters shared over time)</h2><table><thead><tr><th>layer</th><th>T</th><th>parameters</th><th>forward MACs / step</th><th>forward MACs</th><th>backward MACs</th><th>BPTT memory</th></tr></thead><tbody>");
        for x in &r.recurrent {
            let _ = write!(
                s,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&x.name),
                x.steps,
                group(x.params),
                group(x.forward_macs_per_step),
                group(x.forward_macs),
                group(x.backward_macs),
                bytes(x.bptt_bytes)
            );
        }
        let _ = write!(s, "</tbody></table></section>");
    }
    // Devices.
    if let Some(d) = &r.devices {
        let _ = write!(s, "<section id=\"devices\"><h2>Cross-device traffic per step at batch {}</h2><table><thead><tr><th>edge</th><th>devices</th><th>forward</th><th>backward</th></tr></thead><tbody>", r.batch);
        for e in &d.edges {
            let _ = write!(
                s,
                "<tr><td>{} → {}</td><td>{} → {}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&e.from),
                esc(&e.to),
                e.from_device,
                e.to_device,
                bytes(e.forward_bytes),
                bytes(e.backward_bytes)
            );
        }
        let _ = write!(s, "</tbody></table><ul>");
        for w in &d.waits {
            let _ = write!(s, "<li>{}</li>", esc(w));
        }
        let _ = write!(s, "</ul></section>");
    }
    let _ = write!(s, "<section id=\"conventions\"><h2>Conventions</h2><ul class=\"conv\">");
    for c in &r.conventions {
        let _ = write!(s, "<li>{}</li>", esc(c));
    }
    let _ = write!(s, "</ul></section>");
    if let Some(x) = run {
        if let Some(spec) = &x.spec {
            let _ = write!(s, "<section id=\"spec\"><h2>Resolved spec</h2><pre>{}</pre></section>", esc(spec));
        }
        for (name, text) in &x.sources {
            let _ = write!(s, "<section class=\"source\"><h2>Source: {}</h2><pre>{}</pre></section>", esc(name), esc(text));
        }
    }
    let _ = writeln!(s, "</main><script>{SCRIPT}</script></body></html>");
    s
}

fn run_sections(s: &mut String, x: &RunExtras) {
    if let Some(sum) = &x.summary {
        let _ = write!(s, "<section id=\"summary\"><h2>Summary</h2><div class=\"totals\">");
        if let Some(obj) = sum.as_object() {
            for (k, v) in obj {
                let v = match v {
                    serde_json::Value::Number(n) => n
                        .as_f64()
                        .map(|f| if f.fract() == 0.0 && f.abs() < 1e15 { format!("{f:.0}") } else { format!("{f:.4}") })
                        .unwrap_or_else(|| n.to_string()),
                    serde_json::Value::String(t) => t.clone(),
                    other => other.to_string(),
                };
                let _ = write!(s, "<div class=\"kv\">{}<b>{}</b></div>", esc(k), esc(&v));
            }
        }
        let _ = write!(s, "</div></section>");
    }
    if !x.metrics.is_empty() {
        let _ = write!(s, "<section id=\"curves\"><h2>Curves</h2><div style=\"display:flex;gap:16px;flex-wrap:wrap\">");
        let series = |f: &dyn Fn(&MetricRow) -> Option<f64>| -> Vec<(f64, f64)> {
            x.metrics.iter().filter_map(|m| f(m).filter(|v| v.is_finite()).map(|v| (m.0 as f64, v))).collect()
        };
        // Both charts span the whole run; accuracy is drawn on 0–1.
        let xs = (x.metrics.iter().map(|m| m.0).min().unwrap_or(0) as f64, x.metrics.iter().map(|m| m.0).max().unwrap_or(1) as f64);
        s.push_str(&chart("loss", &[("train loss", "#2563eb", series(&|m| m.1)), ("test loss", "#ea580c", series(&|m| m.2))], xs, None));
        s.push_str(&chart("test accuracy", &[("test accuracy", "#16a34a", series(&|m| m.3))], xs, Some((0.0, 1.0))));
        let _ = write!(s, "</div></section>");
    }
    if let Some(png) = &x.filters_png {
        let _ = write!(s, "<section id=\"filters\"><h2>First-layer filters</h2><img alt=\"filters of the first conv layer\" style=\"image-rendering:pixelated;max-width:100%;min-width:320px\" src=\"data:image/png;base64,{}\"></section>", base64(png));
    }
}

/// A line chart as inline SVG (iterations on x).
fn chart(title: &str, series: &[Series], (x0, x1): (f64, f64), y_range: Option<(f64, f64)>) -> String {
    let (w, h, pad) = (560.0, 300.0, 44.0);
    let pts: Vec<(f64, f64)> = series.iter().flat_map(|s| s.2.iter().copied()).collect();
    if pts.is_empty() {
        return String::new();
    }
    let (y0, y1) = y_range.unwrap_or_else(|| {
        let (lo, hi) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        if (hi - lo).abs() < 1e-12 {
            (lo - 0.5, hi + 0.5)
        } else {
            (lo.min(0.0), hi)
        }
    });
    let x1 = if x1 <= x0 { x0 + 1.0 } else { x1 };
    let sx = |x: f64| pad + (x - x0) / (x1 - x0) * (w - 2.0 * pad);
    let sy = |y: f64| h - pad - (y - y0) / (y1 - y0) * (h - 2.0 * pad);
    let mut s = format!("<svg class=\"chart\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\"><text x=\"{pad}\" y=\"16\" font-weight=\"bold\">{}</text>", esc(title));
    let _ = write!(
        s,
        "<line x1=\"{pad}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#94a3b8\"/><line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{0}\" stroke=\"#94a3b8\"/>",
        h - pad,
        w - pad
    );
    for k in 0..=4 {
        let y = y0 + (y1 - y0) * k as f64 / 4.0;
        let _ = write!(s, "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>", pad - 4.0, sy(y) + 4.0, fmt_tick(y));
        let x = x0 + (x1 - x0) * k as f64 / 4.0;
        let _ = write!(s, "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>", sx(x), h - pad + 14.0, x.round());
    }
    let _ = write!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">iteration</text>", w / 2.0, h - 8.0);
    for (k, (name, color, data)) in series.iter().enumerate() {
        if data.is_empty() {
            continue;
        }
        let path: Vec<String> = data.iter().map(|p| format!("{:.1},{:.1}", sx(p.0), sy(p.1))).collect();
        let _ = write!(s, "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>", path.join(" "));
        // Sparse series (evaluations) get a marker per measurement.
        if data.len() <= 40 {
            for p in data {
                let _ = write!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{color}\"/>", sx(p.0), sy(p.1));
            }
        }
        let _ = write!(s, "<text x=\"{}\" y=\"{}\" fill=\"{color}\" text-anchor=\"end\">{}</text>", w - pad, 16.0 + 13.0 * k as f64, esc(name));
    }
    s.push_str("</svg>");
    s
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 1000.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn group(n: u64) -> String {
    thousands(n as u128)
}

/// Standard base64 with padding (for the data URI of an image).
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { A[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { A[n as usize & 63] as char } else { '=' });
    }
    out
}
