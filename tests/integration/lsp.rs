//! The language server: the pure analysis (diagnostics, hover, definition, references,
//! completion, formatting, outline) called directly, the JSON-RPC loop in memory, and the real
//! `expc lsp` binary driven over stdio with Content-Length framing.

use crate::common::*;
use expc::lsp::{analyze, format, Analysis};
use lsp_types::{Position, Url};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn read(p: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(p)
}

fn uri(p: &Path) -> Url {
    Url::from_file_path(p).expect("absolute path")
}

fn open(path: &Path, text: &str) -> Analysis {
    analyze(&uri(path), text, &read)
}

/// The position of the `n`-th occurrence (0-based) of `needle` in `text`, plus `shift` chars.
fn pos_of(text: &str, needle: &str, shift: u32) -> Position {
    let at = text.find(needle).unwrap_or_else(|| panic!("`{needle}` in text"));
    let before = &text[..at];
    let line = before.matches('\n').count() as u32;
    let col = before.rsplit('\n').next().unwrap_or("").encode_utf16().count() as u32;
    Position { line, character: col + shift }
}

fn hover_text(a: &Analysis, p: Position) -> String {
    match a.hover(p).map(|h| h.contents) {
        Some(lsp_types::HoverContents::Markup(m)) => m.value,
        other => panic!("no markup hover: {other:?}"),
    }
}

#[test]
fn diagnostics_are_checks_with_the_right_range() {
    let d = TempDir::new("lsp-diag");
    let text = with_model("  input 3x32x32\n  conv1: conv 6 5x5\n  fc1: fc 10 from=conv9\n  loss: softmax_loss");
    let a = open(&d.join("main.exp"), &text);
    let diags = a.diagnostics();
    assert_eq!(diags.len(), 1, "{diags:#?}");
    let e = &diags[0];
    assert_eq!(e.code, Some(lsp_types::NumberOrString::String("E0200".into())));
    // `conv9` on line 8 (0-based 7), after `  fc1: fc 10 from=`.
    assert_eq!(e.range.start, Position { line: 7, character: 18 });
    assert_eq!(e.range.end, Position { line: 7, character: 23 });
    assert!(e.message.contains("did you mean `conv1`?"), "{}", e.message);
    let rel = e.related_information.as_ref().expect("labels as related information");
    assert_eq!(rel[0].message, "no layer has this name");
}

#[test]
fn shape_error_has_the_producer_as_related_information() {
    let d = TempDir::new("lsp-shape");
    let text = with_model("  input 3x32x32\n  conv1: conv 6 5x5\n  sum: add conv1 input\n  fc: fc 10\n  loss: softmax_loss");
    let a = open(&d.join("main.exp"), &text);
    let diags = a.diagnostics();
    assert!(!diags.is_empty());
    let e = &diags[0];
    assert_eq!(e.range.start.line, 7, "{e:#?}");
    let rel = e.related_information.as_ref().expect("related");
    assert!(rel.iter().any(|r| r.message.contains("produces")), "{rel:#?}");
}

#[test]
fn errors_in_a_base_file_show_on_the_extends_line() {
    let d = TempDir::new("lsp-base");
    let base = with_model("  input 3x32x32\n  conv1: conv 6 5x5 strde=2\n  fc1: fc 10\n  loss: softmax_loss");
    std::fs::write(d.join("base.exp"), &base).unwrap();
    let text = "experiment v\nextends \"base.exp\"\ntrain { lr 0.1 }\n";
    let a = open(&d.join("v.exp"), text);
    let diags = a.diagnostics();
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].range.start.line, 1);
    assert!(diags[0].message.starts_with("base.exp:7:"), "{}", diags[0].message);
    let rel = diags[0].related_information.as_ref().expect("related");
    assert!(rel[0].location.uri.path().ends_with("/base.exp"));
    assert_eq!(rel[0].location.range.start, Position { line: 6, character: 20 });
}

#[test]
fn utf16_positions_after_non_ascii_text() {
    let d = TempDir::new("lsp-utf16");
    // `é` is 2 bytes and 1 UTF-16 unit; `𝕏` is 4 bytes and 2 units.
    let text =
        with_model("  input 3x32x32 # é𝕏\n  c: conv 6 5x5\n  fc1: fc 10 from=nope # é\n  loss: softmax_loss").replace("experiment t", "experiment t # 𝕏𝕏");
    let a = open(&d.join("main.exp"), &text);
    let diags = a.diagnostics();
    assert_eq!(diags[0].range.start, Position { line: 7, character: 18 });
    // A line with non-ASCII before the name: `# é𝕏` is comment; put a name after one.
    let text2 =
        "experiment t\n# é𝕏 x\ndata { dataset cifar10 }\nmodel {\n  input 3x32x32; fc 10 from=zz\n  loss: softmax_loss\n}\ntrain { lr 0.1; iterations 1 }\n";
    let a2 = open(&d.join("two.exp"), text2);
    let e = &a2.diagnostics()[0];
    assert_eq!(e.range.start, Position { line: 4, character: 28 });
    let idx = expc::lsp::text::LineIndex::new("é𝕏ab\n");
    assert_eq!(idx.position("é𝕏ab\n", 6), Position { line: 0, character: 3 });
    assert_eq!(idx.offset("é𝕏ab\n", Position { line: 0, character: 3 }), 6);
    assert_eq!(idx.offset("é𝕏ab\n", Position { line: 0, character: 99 }), 8);
    assert_eq!(idx.offset("é𝕏ab\n", Position { line: 7, character: 0 }), 9);
}

#[test]
fn hover_on_a_layer_shows_shape_params_macs_and_producer() {
    let path = repo().join("experiments/cifar10/baseline.exp");
    let text = std::fs::read_to_string(&path).unwrap();
    let a = open(&path, &text);
    assert!(a.diagnostics().is_empty());
    let h = hover_text(&a, pos_of(&text, "conv2: conv", 9));
    assert!(h.contains("`conv2`") && h.contains("N×16×10×10"), "{h}");
    assert!(h.contains("parameters: 2,416 (2,400 weights + 16 biases)"), "{h}");
    assert!(h.contains("forward: 240,000 MACs"), "{h}");
    assert!(h.contains("reads: `pool1` (N×6×14×14)"), "{h}");
    // On the head: the op's doc line and its arguments too.
    assert!(h.contains("2-D convolution") && h.contains("`stride=`"), "{h}");
    // A setting's doc.
    let h = hover_text(&a, pos_of(&text, "weight_decay 5e-4", 2));
    assert!(h.contains("L2 weight decay"), "{h}");
    let h = hover_text(&a, pos_of(&text, "  batch 256\n", 9));
    assert!(h.contains("training batch size"), "{h}");
    // An unlabelled line.
    let h = hover_text(&a, pos_of(&text, "  accuracy", 4));
    assert!(h.contains("`accuracy`") && h.contains("fraction of samples"), "{h}");
}

#[test]
fn hover_in_a_variant_shows_inserted_layers() {
    let path = repo().join("experiments/cifar10/batchnorm.exp");
    let text = std::fs::read_to_string(&path).unwrap();
    let a = open(&path, &text);
    let h = hover_text(&a, pos_of(&text, "conv*: batchnorm", 9));
    assert!(h.contains("`conv1.batchnorm`") && h.contains("N×6×28×28") && h.contains("makes 2 layers"), "{h}");
    let h = hover_text(&a, pos_of(&text, "conv*", 1));
    assert!(h.contains("`conv1`, `conv2`"), "{h}");
}

#[test]
fn definition_of_references_extends_and_patterns() {
    let path = repo().join("experiments/cifar10/msra_fc.exp");
    let text = std::fs::read_to_string(&path).unwrap();
    let a = open(&path, &text);
    let base = repo().join("experiments/cifar10/baseline.exp");
    let base_text = std::fs::read_to_string(&base).unwrap();
    // `set fc*` → the three fc layers in the base file.
    let locs = a.definition(pos_of(&text, "fc*", 1));
    assert_eq!(locs.len(), 3, "{locs:#?}");
    assert_eq!(locs[0].uri, uri(&base));
    assert_eq!(locs[0].range.start, pos_of(&base_text, "fc1:", 0));
    // `extends "baseline.exp"` → the base file.
    let locs = a.definition(pos_of(&text, "baseline.exp", 2));
    assert_eq!(locs[0].uri, uri(&base));
    // `remove`: the layer is gone from the result, found in the base alone.
    let d = TempDir::new("lsp-def");
    std::fs::write(d.join("b.exp"), with_model("  input 3x32x32\n  fc1: fc 10\n  drop: dropout 0.5\n  loss: softmax_loss")).unwrap();
    let v = "experiment v\nextends \"b.exp\"\nremove drop\n";
    let a = open(&d.join("v.exp"), v);
    let locs = a.definition(pos_of(v, "drop", 1));
    assert_eq!(locs.len(), 1, "{locs:#?}");
    assert_eq!(locs[0].range.start, Position { line: 7, character: 2 });
}

#[test]
fn definition_and_references_of_layer_names() {
    let path = repo().join("experiments/resnet/resnet_small.exp");
    let text = std::fs::read_to_string(&path).unwrap();
    let a = open(&path, &text);
    // `from=sum_2.relu` → the unlabelled relu after `sum` (the line in the repeat body).
    let locs = a.definition(pos_of(&text, "from=sum_2.relu", 6));
    assert_eq!(locs.len(), 1);
    assert_eq!(locs[0].range.start, pos_of(&text, "relu\n  }", 0));
    // `add bn_b in`: `bn_b` is the same iteration's label; `in` the layer before the repeat.
    let locs = a.definition(pos_of(&text, "add bn_b in", 5));
    assert_eq!(locs[0].range.start, pos_of(&text, "bn_b: batchnorm", 0));
    // `in`: the layer before the repeat (first iteration) and the body's last line (the others).
    let locs = a.definition(pos_of(&text, "bn_b in", 6));
    assert_eq!(locs.len(), 2, "{locs:#?}");
    assert_eq!(locs[0].range.start, pos_of(&text, "relu\n  repeat", 0));
    assert_eq!(locs[1].range.start, pos_of(&text, "relu\n  }", 0));
    // `join: add down2bn proj` → `proj:` ; references of `proj` include its label.
    let locs = a.definition(pos_of(&text, "down2bn proj", 9));
    assert_eq!(locs[0].range.start, pos_of(&text, "proj: conv", 0));
    let refs = a.references(pos_of(&text, "proj: conv", 1), true);
    assert_eq!(refs.len(), 2, "{refs:#?}");
}

#[test]
fn completion_of_heads_keys_settings_and_layer_names() {
    let d = TempDir::new("lsp-complete");
    let text = "experiment t\ndata {\n  dataset cifar10\n  \n}\nmodel {\n  input 3x32x32\n  conv1: conv 6 5x5 \n  fc1: fc 10 from=\n  c\n  loss: softmax_loss\n}\ntrain { lr 0.1; iterations 1 }\n\n";
    let a = open(&d.join("main.exp"), text);
    let labels = |p: Position| a.completion(p).into_iter().map(|i| i.label).collect::<Vec<_>>();
    let l = labels(Position { line: 3, character: 2 });
    assert!(l.contains(&"batch".to_string()) && l.contains(&"augment".to_string()), "{l:?}");
    let l = labels(Position { line: 7, character: 20 });
    assert!(l.contains(&"stride=".to_string()) && l.contains(&"init=".to_string()) && l.contains(&"from=".to_string()), "{l:?}");
    let l = labels(Position { line: 8, character: 18 });
    assert!(l.contains(&"conv1".to_string()) && l.contains(&"input".to_string()), "{l:?}");
    let l = labels(Position { line: 9, character: 3 });
    assert!(l.contains(&"conv".to_string()) && l.contains(&"maxpool".to_string()) && l.contains(&"repeat".to_string()), "{l:?}");
    let l = labels(Position { line: 13, character: 0 });
    assert!(l.contains(&"extends".to_string()) && l.contains(&"insert".to_string()), "{l:?}");
    // Works while the file does not parse.
    let broken = "experiment t\nmodel {\n  input 3x32x32\n  a: conv 6 5x5\n  b: add a \n  ((((\n}\n";
    let a = open(&d.join("broken.exp"), broken);
    let l: Vec<String> = a.completion(Position { line: 4, character: 11 }).into_iter().map(|i| i.label).collect();
    assert!(l.contains(&"a".to_string()), "{l:?}");
}

#[test]
fn formatting_and_outline() {
    let text = "experiment   t\ndata {   dataset cifar10 }\nmodel {\ninput 3x32x32\n  c1:   conv 6 5x5\n  repeat 2 {\n fc 10\n }\n  loss: softmax_loss\n}\n";
    let edits = format(text).expect("parses");
    assert_eq!(edits.len(), 1);
    let again = format(&edits[0].new_text).expect("parses");
    assert!(again.is_empty(), "formatted text is stable");
    assert!(format("model {").is_none());
    let d = TempDir::new("lsp-outline");
    let a = open(&d.join("o.exp"), text);
    let syms = a.symbols();
    let names: Vec<&str> = syms.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["t", "data", "model"]);
    let model: Vec<&str> = syms[2].children.as_ref().unwrap().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(model, ["input", "c1", "repeat 2", "loss"]);
}

/// Re-analysis of a 1,000-layer file (the whole pipeline: parse, resolve, graph, shapes).
#[test]
fn reanalysis_of_a_thousand_layers_is_fast() {
    let mut body = String::from("  input 256\n");
    for i in 0..998 {
        body.push_str(&format!("  l{i}: fc 256\n"));
    }
    body.push_str("  loss: softmax_loss");
    let text = with_model(&body).replace("dataset cifar10", "dataset synthetic shape=256 classes=256");
    let d = TempDir::new("lsp-speed");
    let path = d.join("big.exp");
    let a = open(&path, &text);
    assert!(a.diagnostics().is_empty(), "{:#?}", a.diagnostics());
    let mut times = vec![];
    for k in 0..9 {
        let edited = text.replace("l500: fc 256", &format!("l500: fc {}", 256 + k));
        let t = Instant::now();
        let a = open(&path, &edited);
        let _ = a.diagnostics();
        times.push(t.elapsed());
    }
    times.sort();
    let (fastest, median) = (times[0], times[4]);
    eprintln!("re-analysis of 1,000 layers: fastest {fastest:?}, median {median:?} (test profile)");
    // The target is 50 ms; the test profile (opt-level 1) measures 5–13 ms on 2 cores. The
    // fastest of 9 is asserted: the rest of the suite runs in parallel on the same cores.
    assert!(fastest < Duration::from_millis(50), "{fastest:?}");
    // Queries on the big file: hover on layer 500, completion after `from=`, the outline.
    let p = pos_of(&text, "l500: fc", 6);
    let t = Instant::now();
    let h = hover_text(&a, p);
    let hover = t.elapsed();
    assert!(h.contains("`l500`") && h.contains("reads: `l499`"), "{h}");
    let t = Instant::now();
    let symbols = a.symbols();
    let rest = t.elapsed();
    assert_eq!(symbols.len(), 4);
    // Completion while the line being typed does not parse: names read from the text.
    let typing = text.replace("l500: fc 256", "l500: fc 256 from=");
    let b = open(&path, &typing);
    let t = Instant::now();
    let items = b.completion(pos_of(&typing, "from=", 5));
    let rest = rest + t.elapsed();
    assert!(items.len() > 990, "{}", items.len());
    eprintln!("hover {hover:?}, completion + outline {rest:?}");
    assert!(hover + rest < Duration::from_millis(50), "{hover:?} {rest:?}");
}

// ---- JSON-RPC ------------------------------------------------------------------------------

fn send(w: &mut impl Write, v: &Value) {
    let body = v.to_string();
    write!(w, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    w.flush().unwrap();
}

fn recv(r: &mut impl BufRead) -> Value {
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "server closed stdout");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("Content-Length: ") {
            len = n.parse().unwrap();
        }
    }
    let mut buf = vec![0; len];
    r.read_exact(&mut buf).unwrap();
    serde_json::from_slice(&buf).unwrap()
}

/// Reads messages until the response to `id` (notifications before it are kept in `seen`).
fn response(r: &mut impl BufRead, id: u64, seen: &mut Vec<Value>) -> Value {
    loop {
        let m = recv(r);
        if m.get("id") == Some(&json!(id)) && m.get("method").is_none() {
            return m;
        }
        seen.push(m);
    }
}

fn diagnostics_for_uri(r: &mut impl BufRead, uri: &str, seen: &mut Vec<Value>) -> Value {
    if let Some(i) = seen.iter().position(|m| m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri) {
        return seen.remove(i);
    }
    loop {
        let m = recv(r);
        if m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri {
            return m;
        }
        seen.push(m);
    }
}

/// The real binary over stdio: initialize, didOpen with an error, hover, definition into the
/// base file, completion, formatting, shutdown.
#[test]
fn expc_lsp_over_stdio() {
    let d = TempDir::new("lsp-stdio");
    std::fs::write(d.join("base.exp"), with_model("  input 3x32x32\n  conv1: conv 6 5x5\n  fc1: fc 10\n  loss: softmax_loss")).unwrap();
    let vpath = d.join("v.exp");
    let vuri = uri(&vpath).to_string();
    let buri = uri(&std::fs::canonicalize(d.join("base.exp")).unwrap()).to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_expc"))
        .arg("lsp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("expc lsp starts");
    let mut w = child.stdin.take().unwrap();
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let mut seen = vec![];
    send(&mut w, &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}, "processId": null, "rootUri": null}}));
    let init = response(&mut r, 1, &mut seen);
    assert_eq!(init["result"]["capabilities"]["hoverProvider"], true, "{init}");
    send(&mut w, &json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}));
    // A shape error: fc1 takes 10 → loss expects 10 classes; make conv too big instead.
    let bad = "experiment v\nextends \"base.exp\"\nset conv1 dilation=10\n";
    send(
        &mut w,
        &json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {"uri": vuri, "languageId": "exp", "version": 1, "text": bad}}}),
    );
    let diags = diagnostics_for_uri(&mut r, &vuri, &mut seen);
    let list = diags["params"]["diagnostics"].as_array().unwrap().clone();
    assert!(!list.is_empty(), "{diags}");
    // The shape error is in the base file's conv1 line: shown on the `extends` line, with the
    // base file's place as related information.
    assert_eq!(list[0]["range"]["start"], json!({"line": 1, "character": 8}), "{diags}");
    assert!(list[0]["relatedInformation"].as_array().unwrap().iter().any(|r| r["location"]["uri"] == buri), "{diags}");
    // Fixed as the user types: a second change replaces the text; diagnostics clear.
    let good = "experiment v\nextends \"base.exp\"\nset conv1 stride=1\ninsert after conv1: relu\n";
    send(
        &mut w,
        &json!({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {"textDocument": {"uri": vuri, "version": 2}, "contentChanges": [{"text": good}]}}),
    );
    let diags = diagnostics_for_uri(&mut r, &vuri, &mut seen);
    assert_eq!(diags["params"]["diagnostics"], json!([]), "{diags}");
    // An error on a line of the document itself: range of the unknown key.
    let typo = "experiment v\nextends \"base.exp\"\nset conv1 strde=1\ninsert after conv1: relu\n";
    send(
        &mut w,
        &json!({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {"textDocument": {"uri": vuri, "version": 3}, "contentChanges": [{"text": typo}]}}),
    );
    let diags = diagnostics_for_uri(&mut r, &vuri, &mut seen);
    let first = &diags["params"]["diagnostics"][0];
    assert_eq!(first["range"]["start"], json!({"line": 2, "character": 10}), "{diags}");
    assert_eq!(first["code"], "E0102");
    send(
        &mut w,
        &json!({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {"textDocument": {"uri": vuri, "version": 4}, "contentChanges": [{"text": good}]}}),
    );
    // Hover on the inserted layer: its shape and cost.
    send(
        &mut w,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "textDocument/hover", "params": {"textDocument": {"uri": vuri}, "position": {"line": 3, "character": 21}}}),
    );
    let hover = response(&mut r, 2, &mut seen);
    let h = hover["result"]["contents"]["value"].as_str().unwrap();
    assert!(h.contains("`conv1.relu`") && h.contains("N×6×28×28") && h.contains("reads: `conv1`"), "{hover}");
    // Definition: `set conv1` → conv1 in the base file.
    send(
        &mut w,
        &json!({"jsonrpc": "2.0", "id": 3, "method": "textDocument/definition", "params": {"textDocument": {"uri": vuri}, "position": {"line": 2, "character": 6}}}),
    );
    let def = response(&mut r, 3, &mut seen);
    assert_eq!(def["result"][0]["uri"], buri, "{def}");
    assert_eq!(def["result"][0]["range"]["start"], json!({"line": 6, "character": 2}), "{def}");
    // Completion after `set conv1 ` offers argument keys.
    send(
        &mut w,
        &json!({"jsonrpc": "2.0", "id": 4, "method": "textDocument/completion", "params": {"textDocument": {"uri": vuri}, "position": {"line": 2, "character": 10}}}),
    );
    let comp = response(&mut r, 4, &mut seen);
    let labels: Vec<&str> = comp["result"].as_array().unwrap().iter().map(|i| i["label"].as_str().unwrap()).collect();
    assert!(labels.contains(&"stride=") && labels.contains(&"init="), "{labels:?}");
    // Formatting.
    let messy = "experiment   v\nextends \"base.exp\"\nset conv1 stride=1\ninsert after conv1 :   relu\n";
    send(
        &mut w,
        &json!({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {"textDocument": {"uri": vuri, "version": 5}, "contentChanges": [{"text": messy}]}}),
    );
    send(
        &mut w,
        &json!({"jsonrpc": "2.0", "id": 5, "method": "textDocument/formatting", "params": {"textDocument": {"uri": vuri}, "options": {"tabSize": 2, "insertSpaces": true}}}),
    );
    let fmt = response(&mut r, 5, &mut seen);
    assert_eq!(fmt["result"][0]["newText"], good, "{fmt}");
    send(&mut w, &json!({"jsonrpc": "2.0", "id": 6, "method": "shutdown", "params": null}));
    let _ = response(&mut r, 6, &mut seen);
    send(&mut w, &json!({"jsonrpc": "2.0", "method": "exit", "params": null}));
    drop(w);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// The loop in memory: only the latest of several queued changes is analysed and published.
#[test]
fn queued_changes_publish_the_latest_text() {
    let (server, client) = lsp_server::Connection::memory();
    let t = std::thread::spawn(move || expc::lsp::server::serve(&server).map_err(|e| e.to_string()));
    let req = |id: i32, method: &str, params: Value| lsp_server::Message::Request(lsp_server::Request { id: id.into(), method: method.into(), params });
    let not = |method: &str, params: Value| lsp_server::Message::Notification(lsp_server::Notification { method: method.into(), params });
    client.sender.send(req(1, "initialize", json!({"capabilities": {}}))).unwrap();
    let _ = client.receiver.recv().unwrap();
    client.sender.send(not("initialized", json!({}))).unwrap();
    let d = TempDir::new("lsp-mem");
    let u = uri(&d.join("m.exp")).to_string();
    let text = |k: u32| with_model(&format!("  input 3x32x32\n  fc1: fc {k}\n  loss: softmax_loss"));
    client.sender.send(not("textDocument/didOpen", json!({"textDocument": {"uri": u, "languageId": "exp", "version": 1, "text": text(3)}}))).unwrap();
    for v in 2..30 {
        client
            .sender
            .send(not("textDocument/didChange", json!({"textDocument": {"uri": u, "version": v}, "contentChanges": [{"text": text(v as u32)}]})))
            .unwrap();
    }
    client.sender.send(not("textDocument/didChange", json!({"textDocument": {"uri": u, "version": 30}, "contentChanges": [{"text": text(10)}]}))).unwrap();
    client.sender.send(req(2, "shutdown", Value::Null)).unwrap();
    let mut last = None;
    loop {
        match client.receiver.recv_timeout(Duration::from_secs(30)).expect("server answers") {
            lsp_server::Message::Notification(n) if n.method == "textDocument/publishDiagnostics" => last = Some(n.params),
            lsp_server::Message::Response(r) if r.id == 2.into() => break,
            _ => {}
        }
    }
    client.sender.send(not("exit", Value::Null)).unwrap();
    t.join().unwrap().unwrap();
    // The last text has 10 logits for CIFAR-10's 10 classes: no error.
    assert_eq!(last.expect("published")["diagnostics"], json!([]));
}

// ---- no input makes the server's analysis panic ---------------------------------------------

/// Every query at every position of `text` (a few per line and a few past the ends).
fn query_everywhere(dir: &Path, text: &str) {
    let a = open(&dir.join("f.exp"), text);
    let _ = a.diagnostics();
    let _ = a.symbols();
    let _ = format(text);
    let lines = text.split('\n').count() as u32;
    for line in 0..=lines {
        for character in [0, 1, 2, 3, 5, 8, 13, 21, 34, 200] {
            let p = Position { line, character };
            let _ = a.hover(p);
            let _ = a.definition(p);
            let _ = a.references(p, true);
            let _ = a.completion(p);
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..proptest::prelude::ProptestConfig::default() })]

    #[test]
    fn lsp_queries_never_panic_on_token_soup(tokens in proptest::collection::vec(0..SPEC_TOKENS.len(), 0..50)) {
        let d = TempDir::new("lsp-fuzz");
        std::fs::write(d.join("base.exp"), with_model("  input 3x32x32\n  conv1: conv 6 5x5\n  fc1: fc 10\n  loss: softmax_loss")).unwrap();
        let text: String = tokens.iter().map(|&i| SPEC_TOKENS[i]).collect::<Vec<_>>().join(" ");
        query_everywhere(&d, &text);
    }

    #[test]
    fn lsp_queries_never_panic_on_mutated_experiments(file in 0usize..64, cuts in proptest::collection::vec((0usize..4000, 0usize..20, 0..SPEC_TOKENS.len()), 1..5)) {
        let files: Vec<std::path::PathBuf> = experiment_files();
        let path = repo().join(&files[file % files.len()]);
        let mut text = std::fs::read_to_string(&path).unwrap();
        for (at, len, tok) in cuts {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) { at -= 1; }
            let mut end = (at + len).min(text.len());
            while !text.is_char_boundary(end) { end -= 1; }
            text.replace_range(at..end, SPEC_TOKENS[tok]);
        }
        // Analysed as the file itself, so that `extends` finds the real bases.
        let a = analyze(&uri(&path), &text, &read);
        let _ = a.diagnostics();
        let _ = a.symbols();
        for line in 0..(text.split('\n').count() as u32 + 1) {
            for character in [0, 2, 4, 7, 12, 20, 99] {
                let p = Position { line, character };
                let _ = (a.hover(p), a.definition(p), a.references(p, false), a.completion(p));
            }
        }
    }
}

#[test]
fn share_targets_have_a_definition_and_the_hover_says_whose_parameters() {
    let d = TempDir::new("lsp-share");
    let text = with_model("  input 3x32x32\n  left: conv 6 3x3 pad=1\n  right: conv 6 3x3 pad=2 dilation=2 share=left from=input\n  both: add left right\n  fc 10\n  loss: softmax_loss");
    let a = open(&d.join("s.exp"), &text);
    let locs = a.definition(pos_of(&text, "share=left", 7));
    assert_eq!(locs.len(), 1, "{locs:#?}");
    assert_eq!(locs[0].range.start, pos_of(&text, "left: conv", 0));
    let h = hover_text(&a, pos_of(&text, "right: conv", 1));
    assert!(h.contains("parameters: those of `left` (168, counted there)"), "{h}");
    assert!(h.contains("forward: "), "{h}");
}
