//! Diagnostics: the one error type every stage reports with.
//!
//! A [`Diagnostic`] has a severity, a stable code (`E0101`, registered in [`crate::error_codes`] and
//! documented in `docs/errors.md`), a
//! message, labelled spans (one primary, any number of secondary, possibly in different
//! files), notes and an optional help line. Stages collect diagnostics instead of stopping at
//! the first, and never format them: rendering happens once, at the boundary, in
//! [`render`], with codespan-reporting (colour only when the caller asks for it).

use crate::source::{SourceMap, Span};
use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Label {
    pub span: Span,
    pub message: String,
    pub primary: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub labels: Vec<Label>,
    pub notes: Vec<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Diagnostic {
        debug_assert!(crate::error_codes::is_registered(code), "diagnostic code {code} is not in error_codes::ERROR_CODES");
        Diagnostic { severity: Severity::Error, code, message: message.into(), labels: vec![], notes: vec![], help: None }
    }
    pub fn warning(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, message) }
    }
    /// The primary label: where the problem is.
    pub fn primary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label { span, message: message.into(), primary: true });
        self
    }
    /// A secondary label: context, e.g. the producer of a tensor or the base file's line.
    pub fn secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label { span, message: message.into(), primary: false });
        self
    }
    pub fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }
    pub fn with_help(mut self, help: Option<String>) -> Diagnostic {
        if help.is_some() {
            self.help = help;
        }
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(Diagnostic::is_error)
}

/// "did you mean `x`?" for the closest candidate (Jaro–Winkler ≥ 0.8 or edit distance ≤ 2).
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let jw = strsim::jaro_winkler(word, c);
        let lev = strsim::levenshtein(word, c);
        let ok = jw >= 0.8 || (lev <= 2 && lev < c.len().max(word.len()));
        if ok && best.is_none_or(|(s, _)| jw > s) {
            best = Some((jw, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Renders diagnostics as a compiler would print them: `error[E0101]: …`, then
/// `file:line:col`, the source line with the span underlined, labels, notes and help.
pub fn render(diags: &[Diagnostic], sources: &SourceMap, color: bool) -> String {
    let mut files = SimpleFiles::new();
    for f in sources.files() {
        files.add(f.name.clone(), f.text.clone());
    }
    let config = term::Config::default();
    let mut out: Vec<u8> = Vec::new();
    for d in diags {
        let mut cd = match d.severity {
            Severity::Error => cs::Diagnostic::error(),
            Severity::Warning => cs::Diagnostic::warning(),
        }
        .with_code(d.code)
        .with_message(&d.message);
        cd = cd.with_labels(
            d.labels
                .iter()
                .filter(|l| sources.get(l.span.file).is_some())
                .map(|l| {
                    let style = if l.primary { cs::LabelStyle::Primary } else { cs::LabelStyle::Secondary };
                    cs::Label::new(style, l.span.file.0 as usize, l.span.range()).with_message(&l.message)
                })
                .collect(),
        );
        let mut notes: Vec<String> = d.notes.iter().map(|n| format!("note: {n}")).collect();
        if let Some(h) = &d.help {
            notes.push(format!("help: {h}"));
        }
        cd = cd.with_notes(notes);
        if color {
            let mut w = term::termcolor::Ansi::new(&mut out);
            let _ = term::emit(&mut w, &config, &files, &cd);
        } else {
            let mut w = term::termcolor::NoColor::new(&mut out);
            let _ = term::emit(&mut w, &config, &files, &cd);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
