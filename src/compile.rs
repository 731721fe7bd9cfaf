//! `compile()`: the front half of the pipeline in one call — resolve, build the graph, check
//! shapes — with every diagnostic of every stage, ordered by file and position.

use crate::diagnostic::{has_errors, Diagnostic};
use crate::graph::{self, Analysis, Graph};
use crate::source::SourceMap;
use crate::spec::{self, load::ReadFn, Experiment, Resolved};
use std::path::Path;

#[derive(Debug)]
pub struct Compilation {
    pub sources: SourceMap,
    pub experiment: Option<Experiment>,
    pub graph: Option<Graph>,
    pub analysis: Option<Analysis>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Compilation {
    pub fn ok(&self) -> bool {
        !has_errors(&self.diagnostics) && self.analysis.is_some()
    }
}

pub fn compile_path(path: &Path, read: ReadFn) -> Compilation {
    finish(spec::resolve_path(path, read))
}

pub fn compile_text(name: &str, text: &str, dir: &Path, read: ReadFn) -> Compilation {
    finish(spec::resolve_text(name, text, dir, read))
}

/// Runs the graph stages on a resolved experiment.
pub fn finish(r: Resolved) -> Compilation {
    let mut diags = r.diagnostics;
    let (mut graph, mut analysis) = (None, None);
    if let Some(exp) = &r.experiment {
        let (g, d) = graph::lower(exp);
        diags.extend(d);
        if let Some(g) = g {
            let (a, d) = graph::check(exp, &g);
            diags.extend(d);
            analysis = Some(a);
            graph = Some(g);
        }
    }
    spec::sort_diagnostics(&mut diags);
    Compilation { sources: r.sources, experiment: r.experiment, graph, analysis, diagnostics: diags }
}
