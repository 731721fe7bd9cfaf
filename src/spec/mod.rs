//! Stage 2, resolution: syntax trees → the typed [`Experiment`].
//!
//! Loads the file and its bases (`load`), then gives every command its meaning: settings of
//! `data` and `train` are checked against their tables, model lines become [`LayerSpec`]s with
//! their [`Op`] and parameter settings. All errors of all files are collected; a diagnostic
//! about a value that a variant wrote over a base file carries a label in both files.

pub mod load;
mod model;
mod settings;
pub mod types;

pub use types::*;

use crate::diagnostic::{has_errors, Diagnostic};
use crate::source::{FileId, SourceMap, Span};
use crate::syntax::ast;
use std::path::Path;

/// The result of resolving one experiment: its sources, syntax trees, the typed experiment
/// (when there were no errors) and every diagnostic.
#[derive(Debug)]
pub struct Resolved {
    pub sources: SourceMap,
    pub asts: Vec<(FileId, ast::File)>,
    pub experiment: Option<Experiment>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Resolves the experiment in `path`, reading files with `read`.
pub fn resolve_path(path: &Path, read: load::ReadFn) -> Resolved {
    let mut loader = load::Loader::new(read);
    let doc = loader.load_root(path);
    finish(loader, doc)
}

/// Resolves source text given directly; `extends` paths are relative to `dir`.
pub fn resolve_text(name: &str, text: &str, dir: &Path, read: load::ReadFn) -> Resolved {
    let mut loader = load::Loader::new(read);
    let doc = loader.load_text(name, text.to_string(), dir);
    finish(loader, doc)
}

fn finish(mut loader: load::Loader, doc: Option<load::Doc>) -> Resolved {
    let experiment = doc.and_then(|doc| {
        let (exp, diags) = typed(&doc, &loader.sources);
        loader.diags.extend(diags);
        exp
    });
    let experiment = if has_errors(&loader.diags) { None } else { experiment };
    sort_diagnostics(&mut loader.diags);
    Resolved { sources: loader.sources, asts: loader.asts, experiment, diagnostics: loader.diags }
}

fn typed(doc: &load::Doc, _sources: &SourceMap) -> (Option<Experiment>, Vec<Diagnostic>) {
    let mut diags = vec![];
    let anchor = doc.name.as_ref().map(|n| n.span).or(doc.extends).unwrap_or_default();
    if doc.name.is_none() {
        diags.push(
            Diagnostic::error("E0110", "missing required setting: the experiment's name")
                .primary(Span { end: anchor.start, ..anchor }, "expected `experiment NAME` in this file")
                .help("start the file with a line like `experiment cifar10_baseline`"),
        );
    }
    let data = settings::data(doc.data.as_ref(), anchor, &mut diags);
    let train = settings::train(doc.train.as_ref(), anchor, &mut diags);
    let model = model::model(doc.model.as_ref(), anchor, doc.too_big, &mut diags);
    let exp = match (doc.name.as_ref(), data, train, model) {
        (Some(name), Some(data), Some(train), Some(model)) => Some(Experiment { name: name.name.clone(), name_span: name.span, data, model, train }),
        _ => None,
    };
    (exp, diags)
}

/// Adds a secondary label at `base` to every diagnostic whose primary label lies in another file.
fn mark_override(diags: &mut [Diagnostic], base: Span, message: &str) {
    for d in diags {
        let foreign = d.labels.iter().any(|l| l.primary && l.span.file != base.file);
        if foreign && !d.labels.iter().any(|l| l.span == base) {
            d.labels.push(crate::diagnostic::Label { span: base, message: message.to_string(), primary: false });
        }
    }
}

/// Orders diagnostics as a reader meets them: by file (the root file first), then position.
pub fn sort_diagnostics(diags: &mut [Diagnostic]) {
    let key = |d: &Diagnostic| d.labels.iter().find(|l| l.primary).map(|l| (l.span.file, l.span.start)).unwrap_or_default();
    diags.sort_by_key(key);
}
