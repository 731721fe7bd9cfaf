//! Front-end benchmark: parse + resolve + graph + shape check + report for generated specs of
//! 1k, 10k and 100k layers (a flat file and a `repeat` block). Median of several runs.
//!
//!     cargo run --release --example bench_compile

use std::path::Path;
use std::time::Instant;

fn flat(layers: usize) -> String {
    let mut s = String::from("experiment big\ndata {\n  dataset synthetic shape=64 classes=10\n}\nmodel {\n  input 64\n");
    for i in 0..(layers - 3) / 2 {
        s.push_str(&format!("  fc{i}: fc 64\n  relu\n"));
    }
    s.push_str("  out: fc 10\n  loss: softmax_loss\n}\ntrain {\n  lr 0.1\n  iterations 1\n}\n");
    s
}

fn repeated(layers: usize) -> String {
    format!(
        "experiment big\ndata {{\n  dataset synthetic shape=64 classes=10\n}}\nmodel {{\n  input 64\n  repeat {} {{\n    h: fc 64\n    relu\n  }}\n  out: fc 10\n  loss: softmax_loss\n}}\ntrain {{\n  lr 0.1\n  iterations 1\n}}\n",
        (layers - 3) / 2
    )
}

fn time(text: &str) -> (f64, usize) {
    let read = |_: &Path| Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no files"));
    let mut times = vec![];
    let mut n = 0;
    for _ in 0..7 {
        let t = Instant::now();
        let c = expc::compile::compile_text("big.exp", text, Path::new("."), &read);
        assert!(c.ok(), "{:?}", c.diagnostics.first());
        let r = expc::report::report(c.experiment.as_ref().unwrap(), c.graph.as_ref().unwrap(), c.analysis.as_ref().unwrap(), 64);
        n = r.layers.len();
        std::hint::black_box(r.text());
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (times[times.len() / 2], n)
}

fn main() {
    println!("{:>8}  {:>8}  {:>12}  {:>12}  {:>14}", "layers", "form", "median ms", "µs/layer", "report rows");
    for layers in [1_000, 10_000, 100_000] {
        for (form, text) in [("flat", flat(layers)), ("repeat", repeated(layers))] {
            let (ms, rows) = time(&text);
            println!("{layers:>8}  {form:>8}  {ms:>12.2}  {:>12.2}  {rows:>14}", ms * 1e3 / layers as f64);
        }
    }
}
