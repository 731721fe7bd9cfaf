//! `compile()`: the front half of the pipeline in one call — resolve, build the graph, check
//! shapes and the data — with every diagnostic of every stage, ordered by file and position.
//!
//! Every command that needs a model (`check`, `compile --report`, `run`, `resume`, `gradcheck`,
//! sweeps) goes through here, so they all print exactly the same diagnostics before anything
//! else happens. A successful compilation becomes a [`Checked`], the typed and checked IR that
//! later stages ([`crate::report`], [`crate::lower`]) consume without resolving names again.

use crate::diagnostic::{has_errors, Diagnostic};
use crate::graph::{self, Analysis, DataFacts, Graph};
use crate::source::SourceMap;
use crate::spec::{self, load::ReadFn, DataSpec, Experiment, Resolved};
use std::path::Path;

/// What can be known about a spec's data before reading it (from the spec alone, or by a probe
/// that looks at the dataset's folder: see `run::data_facts`).
pub type DataProbe<'a> = &'a dyn Fn(&DataSpec) -> Result<DataFacts, Diagnostic>;

#[derive(Debug)]
pub struct Compilation {
    pub sources: SourceMap,
    pub experiment: Option<Experiment>,
    pub graph: Option<Graph>,
    pub analysis: Option<Analysis>,
    pub diagnostics: Vec<Diagnostic>,
}

/// A compilation without errors: the experiment, its graph and the analysis side table.
#[derive(Debug)]
pub struct Checked {
    pub sources: SourceMap,
    pub experiment: Experiment,
    pub graph: Graph,
    pub analysis: Analysis,
    /// Warnings (there are no errors).
    pub warnings: Vec<Diagnostic>,
}

/// A compilation with errors: every diagnostic, and the files to render them against.
#[derive(Debug)]
pub struct Rejected {
    pub sources: SourceMap,
    pub diagnostics: Vec<Diagnostic>,
}

impl Compilation {
    pub fn ok(&self) -> bool {
        !has_errors(&self.diagnostics) && self.analysis.is_some()
    }

    /// The checked IR, or every diagnostic when there were errors.
    pub fn into_checked(self) -> Result<Checked, Rejected> {
        match (self.experiment, self.graph, self.analysis) {
            (Some(experiment), Some(graph), Some(analysis)) if !has_errors(&self.diagnostics) => {
                Ok(Checked { sources: self.sources, experiment, graph, analysis, warnings: self.diagnostics })
            }
            _ => Err(Rejected { sources: self.sources, diagnostics: self.diagnostics }),
        }
    }
}

/// Compiles the spec in `path`; the data is known from the spec alone.
pub fn compile_path(path: &Path, read: ReadFn) -> Compilation {
    finish(spec::resolve_path(path, read), &|d: &DataSpec| Ok(DataFacts::from_spec(d)))
}

/// Compiles source text given directly (`extends` paths relative to `dir`).
pub fn compile_text(name: &str, text: &str, dir: &Path, read: ReadFn) -> Compilation {
    finish(spec::resolve_text(name, text, dir, read), &|d: &DataSpec| Ok(DataFacts::from_spec(d)))
}

/// Runs the graph stages on a resolved experiment; `probe` says what the data is.
pub fn finish(r: Resolved, probe: DataProbe) -> Compilation {
    let mut diags = r.diagnostics;
    let (mut graph, mut analysis) = (None, None);
    if let Some(exp) = &r.experiment {
        let (g, d) = graph::build(exp);
        diags.extend(d);
        if let Some(g) = g {
            let facts = probe(&exp.data).unwrap_or_else(|d| {
                diags.push(d);
                DataFacts::from_spec(&exp.data)
            });
            let (a, d) = graph::check(exp, &g, &facts);
            diags.extend(d);
            analysis = Some(a);
            graph = Some(g);
        }
    }
    spec::sort_diagnostics(&mut diags);
    Compilation { sources: r.sources, experiment: r.experiment, graph, analysis, diagnostics: diags }
}
