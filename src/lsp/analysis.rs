//! One analysed document: the text, its compilation (exactly `expc check`'s) and the syntax
//! trees of every file it read, with pure functions from a position to editor results.

use super::docs;
use super::text::LineIndex;
use crate::compile::{self, Compilation};
use crate::graph::DataFacts;
use crate::ops::shape::show;
use crate::source::{FileId, Span};
use crate::spec::load::{glob_match, ReadFn};
use crate::spec::{self, DataSpec};
use crate::syntax::ast::{self, Arg, Command, Item, SectionKind, Stmt, ValueKind};
use lsp_types as lsp;
use lsp_types::{Position, Url};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A document and everything expc knows about it.
#[derive(Debug)]
pub struct Analysis {
    pub uri: Url,
    pub text: String,
    pub index: LineIndex,
    pub compilation: Compilation,
    /// The syntax trees of the files that parsed (the document is `FileId(0)`).
    asts: Vec<(FileId, ast::File)>,
}

const ROOT: FileId = FileId(0);

/// The path a document URI stands for (an untitled document: a name in the working directory).
pub fn uri_path(uri: &Url) -> PathBuf {
    if let Ok(p) = uri.to_file_path() {
        return p;
    }
    let name = uri.path().rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or("untitled.exp");
    std::env::current_dir().unwrap_or_default().join(name)
}

/// Compiles `text` as the document `uri` (its bases read with `read`): the same stages and the
/// same diagnostics as `expc check`.
pub fn analyze(uri: &Url, text: &str, read: ReadFn) -> Analysis {
    let path = uri_path(uri);
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let resolved = spec::resolve_text(&path.display().to_string(), text, &dir, read);
    let asts = resolved.asts.clone();
    let compilation = compile::finish(resolved, &|d: &DataSpec| Ok(DataFacts::from_spec(d)));
    Analysis { uri: uri.clone(), text: text.to_string(), index: LineIndex::new(text), compilation, asts }
}

/// What the cursor is on.
enum Found<'a> {
    Extends(&'a ast::Str),
    Pattern(&'a ast::Ident),
    /// A layer or setting line's head word; `section` is `None` at the top level.
    Head(Option<SectionKind>, &'a Command),
    Key(Option<SectionKind>, &'a Command, &'a ast::Ident),
    /// A layer name read by a command (`from=`, `share=`, `add`/`concat` inputs).
    Ref(NameRef<'a>),
    /// `in` inside a repeat body: the layer before the iteration.
    In(Vec<Span>),
    Label(&'a ast::Ident),
    /// Anywhere else on a command.
    Line(Option<SectionKind>, &'a Command),
    Keyword(&'static str),
    /// A key of a `set` edit.
    SetKey(&'a ast::Ident),
}

fn contains(s: Span, offset: usize) -> bool {
    (s.start as usize) <= offset && offset <= s.end as usize
}

/// The span that names a command's layer: its label, or its head.
fn name_span(c: &Command) -> Span {
    c.label.as_ref().map_or(c.head.span, |l| l.span)
}

/// The last command written in a body (looking into a trailing repeat).
fn last_command(body: &[Stmt]) -> Option<&Command> {
    match body.last()? {
        Stmt::Command(c) => Some(c),
        Stmt::Repeat(r) => last_command(&r.body),
    }
}

/// A layer name written as a value (`from=NAME`, `add A B`).
#[derive(Clone, Copy, Debug)]
struct NameRef<'a> {
    name: &'a str,
    span: Span,
}

/// Calls `f` on every layer-name reference of a command.
fn for_each_ref<'a>(c: &'a Command, f: &mut dyn FnMut(NameRef<'a>)) {
    let named_inputs = matches!(c.head.name.as_str(), "add" | "concat");
    for a in &c.args {
        let v = match a {
            Arg::Keyword { key, value } if key.name == "from" || key.name == "share" => value,
            Arg::Positional(v) if named_inputs => v,
            _ => continue,
        };
        visit_names(v, f);
    }
}

/// The names of a value: a name, or the names of a list.
fn visit_names<'a>(v: &'a ast::Value, f: &mut dyn FnMut(NameRef<'a>)) {
    match &v.kind {
        ValueKind::Ident(name) => f(NameRef { name, span: v.span }),
        ValueKind::List(items) => items.iter().for_each(|i| visit_names(i, f)),
        _ => {}
    }
}

impl Analysis {
    fn ast(&self, file: FileId) -> Option<&ast::File> {
        self.asts.iter().find(|(f, _)| *f == file).map(|(_, a)| a)
    }

    fn root(&self) -> Option<&ast::File> {
        self.ast(ROOT)
    }

    pub fn offset(&self, pos: Position) -> usize {
        self.index.offset(&self.text, pos)
    }

    /// The URI of a file of this compilation.
    pub fn file_uri(&self, file: FileId) -> Option<Url> {
        if file == ROOT {
            return Some(self.uri.clone());
        }
        let name = &self.compilation.sources.get(file)?.name;
        let p = PathBuf::from(name);
        let p = std::fs::canonicalize(&p).unwrap_or(p);
        let p = if p.is_absolute() { p } else { std::env::current_dir().ok()?.join(p) };
        Url::from_file_path(p).ok()
    }

    /// The editor range of a span in any file of this compilation.
    pub fn span_range(&self, span: Span) -> Option<lsp::Range> {
        let text = &self.compilation.sources.get(span.file)?.text;
        if span.file == ROOT {
            return Some(self.index.range(text, span.range()));
        }
        Some(LineIndex::new(text).range(text, span.range()))
    }

    pub fn location(&self, span: Span) -> Option<lsp::Location> {
        Some(lsp::Location { uri: self.file_uri(span.file)?, range: self.span_range(span)? })
    }

    /// Paths of the other files this document read (its `extends` chain).
    pub fn dependencies(&self) -> Vec<PathBuf> {
        let files = self.compilation.sources.files();
        files.iter().skip(1).map(|f| std::fs::canonicalize(&f.name).unwrap_or_else(|_| PathBuf::from(&f.name))).collect()
    }

    fn extends_span(&self) -> Option<Span> {
        self.root()?.items.iter().find_map(|i| match i {
            Item::Extends(s) => Some(s.span),
            _ => None,
        })
    }

    // ---- diagnostics -------------------------------------------------------------------------

    /// `expc check`'s diagnostics as LSP diagnostics of this document. One located in a base
    /// file is shown on the `extends` line, with its real place as related information.
    pub fn diagnostics(&self) -> Vec<lsp::Diagnostic> {
        let mut out = vec![];
        for d in &self.compilation.diagnostics {
            let primary = d.labels.iter().find(|l| l.primary);
            let mut message = d.message.clone();
            let range = match primary {
                Some(l) if l.span.file == ROOT => self.span_range(l.span),
                Some(l) => {
                    let name = self.compilation.sources.get(l.span.file).map(|f| f.name.clone()).unwrap_or_default();
                    let short = Path::new(&name).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or(name);
                    if let Some(r) = self.span_range(l.span) {
                        message = format!("{short}:{}:{}: {message}", r.start.line + 1, r.start.character + 1);
                    }
                    self.extends_span().and_then(|s| self.span_range(s))
                }
                None => None,
            };
            let range = range.unwrap_or_default();
            for n in &d.notes {
                message.push_str(&format!("\nnote: {n}"));
            }
            if let Some(h) = &d.help {
                message.push_str(&format!("\nhelp: {h}"));
            }
            let related: Vec<lsp::DiagnosticRelatedInformation> = d
                .labels
                .iter()
                .filter(|l| !l.message.is_empty())
                .filter_map(|l| Some(lsp::DiagnosticRelatedInformation { location: self.location(l.span)?, message: l.message.clone() }))
                .collect();
            out.push(lsp::Diagnostic {
                range,
                severity: Some(if d.is_error() { lsp::DiagnosticSeverity::ERROR } else { lsp::DiagnosticSeverity::WARNING }),
                code: Some(lsp::NumberOrString::String(d.code.to_string())),
                source: Some("expc".to_string()),
                message,
                related_information: if related.is_empty() { None } else { Some(related) },
                ..Default::default()
            });
        }
        out
    }

    // ---- what is at a position ---------------------------------------------------------------

    fn find(&self, offset: usize) -> Option<Found<'_>> {
        let root = self.root()?;
        for item in &root.items {
            match item {
                Item::Experiment(i) if contains(i.span, offset) => return Some(Found::Keyword("experiment")),
                Item::Extends(s) if contains(s.span, offset) => return Some(Found::Extends(s)),
                Item::Section(s) if contains(s.span, offset) => {
                    if contains(s.kind_span, offset) {
                        return Some(Found::Keyword(match s.kind {
                            SectionKind::Data => "data",
                            SectionKind::Model => "model",
                            SectionKind::Train => "train",
                        }));
                    }
                    return find_in_body(&s.body, s.kind, offset, None, vec![]);
                }
                Item::Set(e) if contains(e.span, offset) => {
                    if contains(e.pattern.span, offset) {
                        return Some(Found::Pattern(&e.pattern));
                    }
                    for a in &e.args {
                        if let Arg::Keyword { key, value } = a {
                            if contains(key.span, offset) {
                                return Some(Found::SetKey(key));
                            }
                            let mut hit = None;
                            if key.name == "from" {
                                visit_names(value, &mut |i| {
                                    if contains(i.span, offset) {
                                        hit = Some(i)
                                    }
                                });
                            }
                            if let Some(i) = hit {
                                return Some(Found::Ref(i));
                            }
                        }
                    }
                    return Some(Found::Keyword("set"));
                }
                Item::Insert(e) if contains(e.span, offset) => {
                    if contains(e.pattern.span, offset) {
                        return Some(Found::Pattern(&e.pattern));
                    }
                    if contains(e.command.span, offset) {
                        return find_in_command(&e.command, Some(SectionKind::Model), offset, vec![]);
                    }
                    return Some(Found::Keyword("insert"));
                }
                Item::Remove(e) if contains(e.span, offset) => {
                    if contains(e.pattern.span, offset) {
                        return Some(Found::Pattern(&e.pattern));
                    }
                    return Some(Found::Keyword("remove"));
                }
                _ => {}
            }
        }
        None
    }

    // ---- hover -------------------------------------------------------------------------------

    pub fn hover(&self, pos: Position) -> Option<lsp::Hover> {
        let offset = self.offset(pos);
        let found = self.find(offset)?;
        let text = match found {
            Found::Head(Some(SectionKind::Model), c) => {
                let mut s = self.layer_hover(offset, c).unwrap_or_default();
                if let Some(d) = docs::op_doc(&c.head.name) {
                    if !s.is_empty() {
                        s.push_str("\n\n---\n\n");
                    }
                    s.push_str(&d);
                    s.push_str(&op_args(&c.head.name));
                }
                s
            }
            Found::Head(Some(section), c) => docs::setting_doc(section.as_str(), &c.head.name)?.to_string(),
            Found::Head(None, _) => return None,
            Found::Key(section, c, key) => match section {
                Some(SectionKind::Model) => {
                    let mut s = docs::key_doc(&key.name).map(|d| format!("`{}=`: {d}", key.name)).unwrap_or_default();
                    if let Some(l) = self.layer_hover(offset, c) {
                        s = if s.is_empty() { l } else { format!("{l}\n\n---\n\n{s}") };
                    }
                    s
                }
                _ => return None,
            },
            Found::Line(Some(SectionKind::Model), c) => self.layer_hover(offset, c)?,
            Found::Label(_) => self.layer_hover(offset, self.command_at(offset)?)?,
            Found::Ref(r) => {
                let span = self.resolve_name(r.name, offset)?;
                self.layer_summary(self.layer_by_name_span(span)?)
            }
            Found::SetKey(key) => format!("`{}=`: {}", key.name, docs::key_doc(&key.name)?),
            Found::Keyword(k) => docs::setting_doc("", k)?.to_string(),
            Found::Pattern(p) => {
                let names = self.matching_layers(&p.name);
                if names.is_empty() {
                    format!("`{}` matches no layer", p.name)
                } else {
                    format!("`{}` matches {}", p.name, names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "))
                }
            }
            Found::Extends(s) => format!("extends `{}`", s.value),
            Found::In(_) => "`in`: the layer before this iteration of the repeat block".to_string(),
            Found::Line(Some(section), c) => docs::setting_doc(section.as_str(), &c.head.name)?.to_string(),
            Found::Line(None, _) => return None,
        };
        if text.is_empty() {
            return None;
        }
        Some(lsp::Hover { contents: lsp::HoverContents::Markup(lsp::MarkupContent { kind: lsp::MarkupKind::Markdown, value: text }), range: None })
    }

    /// The model command (in the document) whose line contains `offset`.
    fn command_at(&self, offset: usize) -> Option<&Command> {
        let root = self.root()?;
        for item in &root.items {
            match item {
                Item::Section(s) if s.kind == SectionKind::Model && contains(s.span, offset) => {
                    return command_in(&s.body, offset);
                }
                Item::Insert(e) if contains(e.command.span, offset) => return Some(&e.command),
                _ => {}
            }
        }
        None
    }

    /// The layers made from the command at `offset` (several for a repeat body or an insert).
    fn layers_of(&self, c: &Command) -> Vec<usize> {
        let Some(exp) = &self.compilation.experiment else { return vec![] };
        exp.model.layers.iter().enumerate().filter(|(_, l)| l.span == c.span).map(|(i, _)| i).collect()
    }

    fn layer_hover(&self, _offset: usize, c: &Command) -> Option<String> {
        let layers = self.layers_of(c);
        let first = *layers.first()?;
        let mut s = self.layer_summary(first);
        if layers.len() > 1 {
            let exp = self.compilation.experiment.as_ref()?;
            let names: Vec<&str> = layers.iter().map(|&i| exp.model.layers[i].name.as_str()).collect();
            s.push_str(&format!("\n\nthis line makes {} layers: {}", layers.len(), crate::spec::load::abbreviate(&names)));
        }
        Some(s)
    }

    /// Output shape, parameters, forward/backward MACs and producers of a layer, as
    /// `compile --report` counts them.
    pub fn layer_summary(&self, i: usize) -> String {
        let c = &self.compilation;
        let (Some(exp), Some(graph)) = (&c.experiment, &c.graph) else { return String::new() };
        let l = &exp.model.layers[i];
        let mut s = format!("**`{}`** · `{}`", l.name, l.op.kind());
        let Some(a) = &c.analysis else { return s };
        let shape = |j: usize| match &a.shapes[j] {
            Some(x) if x.is_empty() => "scalar".to_string(),
            Some(x) => format!("N×{}", show(x)),
            None => "unknown (an error upstream)".to_string(),
        };
        s.push_str(&format!(" → `{}`\n\n", shape(i)));
        let p = &a.params[i];
        let cost = a.costs[i];
        let has_params = p.weight_count() + p.bias_count() > 0;
        let bwd_in = if a.needs_input_grad[i] { cost.backward_input_macs } else { 0 };
        let bwd_w = if has_params { cost.backward_weight_macs + cost.backward_recurrent_macs } else { 0 };
        if a.shapes[i].is_some() {
            match a.param_owner[i] {
                Some(o) => s.push_str(&format!(
                    "- parameters: those of `{}` ({}, counted there)\n",
                    exp.model.layers[o].name,
                    group(p.weight_count() + p.bias_count())
                )),
                None => s.push_str(&format!(
                    "- parameters: {} ({} weights + {} biases)\n",
                    group(p.weight_count() + p.bias_count()),
                    group(p.weight_count()),
                    group(p.bias_count())
                )),
            }
            s.push_str(&format!(
                "- forward: {} MACs per sample\n- backward: {} MACs per sample (input gradient {}, weight gradient {})\n",
                group(cost.forward_macs),
                group(bwd_in + bwd_w),
                group(bwd_in),
                group(bwd_w)
            ));
            if cost.elementwise > 0 {
                s.push_str(&format!("- elementwise: {} ops per sample\n", group(cost.elementwise)));
            }
        }
        let node = graph.nodes[i];
        let producers: Vec<String> = graph
            .input_slice(node)
            .iter()
            .map(|&p| {
                let j = graph.g[p].layer;
                format!("`{}` ({})", exp.model.layers[j].name, shape(j))
            })
            .collect();
        if !producers.is_empty() {
            s.push_str(&format!("- reads: {}\n", producers.join(", ")));
        }
        if exp.model.layers.iter().any(|x| x.device != l.device) {
            s.push_str(&format!("- device: {}\n", l.device));
        }
        s.trim_end().to_string()
    }

    fn layer_by_name_span(&self, span: Span) -> Option<usize> {
        let exp = self.compilation.experiment.as_ref()?;
        exp.model.layers.iter().position(|l| l.name_span == span)
    }

    /// Names of the layers a pattern matches (in the resolved experiment).
    fn matching_layers(&self, pattern: &str) -> Vec<String> {
        let Some(exp) = &self.compilation.experiment else { return vec![] };
        exp.model.layers.iter().filter(|l| glob_match(pattern, &l.name)).map(|l| l.name.clone()).collect()
    }

    // ---- definition and references -----------------------------------------------------------

    /// Where a layer name read at `offset` is defined: a label in the same repeat body, a layer
    /// of the resolved model (possibly in a base file), or a label in any file.
    fn resolve_name(&self, name: &str, offset: usize) -> Option<Span> {
        if let Some(root) = self.root() {
            for item in &root.items {
                if let Item::Section(s) = item {
                    if let Some(span) = label_in_enclosing_repeat(&s.body, offset, name) {
                        return Some(span);
                    }
                }
            }
        }
        if let Some(exp) = &self.compilation.experiment {
            if let Some(l) = exp.model.layers.iter().find(|l| l.name == name) {
                return Some(l.name_span);
            }
        }
        self.labels().into_iter().find(|l| l.name == name).map(|l| l.span)
    }

    /// Every label of every file (the document's first).
    fn labels(&self) -> Vec<&ast::Ident> {
        let mut out = vec![];
        for (_, f) in &self.asts {
            for item in &f.items {
                match item {
                    Item::Section(s) if s.kind == SectionKind::Model => walk_commands(&s.body, &mut |c| out.extend(c.label.as_ref())),
                    Item::Insert(e) => out.extend(e.command.label.as_ref()),
                    _ => {}
                }
            }
        }
        out
    }

    pub fn definition(&self, pos: Position) -> Vec<lsp::Location> {
        let offset = self.offset(pos);
        let Some(found) = self.find(offset) else { return vec![] };
        match found {
            Found::Extends(s) => {
                let dir = uri_path(&self.uri).parent().map(Path::to_path_buf).unwrap_or_default();
                let p = dir.join(&s.value);
                let p = std::fs::canonicalize(&p).unwrap_or(p);
                Url::from_file_path(p).ok().map(|uri| lsp::Location { uri, range: lsp::Range::default() }).into_iter().collect()
            }
            Found::Ref(i) => self.resolve_name(i.name, offset).and_then(|s| self.location(s)).into_iter().collect(),
            Found::In(spans) => spans.into_iter().filter_map(|s| self.location(s)).collect(),
            Found::Label(l) => self.location(l.span).into_iter().collect(),
            Found::Pattern(p) => self.pattern_definitions(&p.name),
            _ => vec![],
        }
    }

    /// The layers a `set`/`insert`/`remove` pattern changes, where they are defined: in the
    /// resolved experiment, or (for `remove`, whose layers are gone) in the base file alone.
    fn pattern_definitions(&self, pattern: &str) -> Vec<lsp::Location> {
        let mut out: Vec<lsp::Location> = vec![];
        if let Some(exp) = &self.compilation.experiment {
            out.extend(exp.model.layers.iter().filter(|l| glob_match(pattern, &l.name)).filter_map(|l| self.location(l.name_span)));
        }
        if out.is_empty() {
            // Names as the base file alone defines them: resolve every base of the chain.
            for (file, _) in self.asts.iter().filter(|(f, _)| *f != ROOT) {
                let Some(src) = self.compilation.sources.get(*file) else { continue };
                let read = |p: &Path| std::fs::read_to_string(p);
                let r = spec::resolve_path(Path::new(&src.name), &read);
                if let Some(exp) = &r.experiment {
                    for l in exp.model.layers.iter().filter(|l| glob_match(pattern, &l.name)) {
                        let text = r.sources.get(l.name_span.file).map(|f| f.text.as_str()).unwrap_or_default();
                        let name = r.sources.get(l.name_span.file).map(|f| f.name.clone()).unwrap_or_default();
                        let p = PathBuf::from(&name);
                        let p = std::fs::canonicalize(&p).unwrap_or(p);
                        if let Ok(uri) = Url::from_file_path(p) {
                            out.push(lsp::Location { uri, range: LineIndex::new(text).range(text, l.name_span.range()) });
                        }
                    }
                }
                if !out.is_empty() {
                    break;
                }
            }
        }
        out
    }

    /// Every place a layer name is defined or read, in the document and its bases (patterns of
    /// `set`/`insert`/`remove` that match it included).
    pub fn references(&self, pos: Position, include_declaration: bool) -> Vec<lsp::Location> {
        let offset = self.offset(pos);
        let name = match self.find(offset) {
            Some(Found::Ref(i)) => i.name.to_string(),
            Some(Found::Label(i)) => i.name.clone(),
            Some(Found::Line(Some(SectionKind::Model), c)) | Some(Found::Head(Some(SectionKind::Model), c)) => {
                match self.layers_of(c).first().and_then(|&i| self.compilation.experiment.as_ref().map(|e| e.model.layers[i].name.clone())) {
                    Some(n) => n,
                    None => return vec![],
                }
            }
            _ => return vec![],
        };
        let mut spans: Vec<Span> = vec![];
        for (_, f) in &self.asts {
            for item in &f.items {
                match item {
                    Item::Section(s) if s.kind == SectionKind::Model => walk_commands(&s.body, &mut |c| {
                        if include_declaration {
                            spans.extend(c.label.as_ref().filter(|l| l.name == name).map(|l| l.span));
                        }
                        for_each_ref(c, &mut |i| {
                            if i.name == name {
                                spans.push(i.span)
                            }
                        });
                    }),
                    Item::Set(e) if glob_match(&e.pattern.name, &name) => spans.push(e.pattern.span),
                    Item::Insert(e) => {
                        if glob_match(&e.pattern.name, &name) {
                            spans.push(e.pattern.span);
                        }
                        for_each_ref(&e.command, &mut |i| {
                            if i.name == name {
                                spans.push(i.span)
                            }
                        });
                    }
                    Item::Remove(e) if glob_match(&e.pattern.name, &name) => spans.push(e.pattern.span),
                    _ => {}
                }
            }
        }
        if include_declaration {
            if let Some(exp) = &self.compilation.experiment {
                spans.extend(exp.model.layers.iter().filter(|l| l.name == name).map(|l| l.name_span));
            }
        }
        spans.sort_by_key(|s| (s.file, s.start));
        spans.dedup();
        spans.into_iter().filter_map(|s| self.location(s)).collect()
    }

    // ---- completion --------------------------------------------------------------------------

    /// Names of the layers a reference may name here.
    fn layer_names(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = self.labels().into_iter().map(|l| l.name.clone()).collect();
        if let Some(exp) = &self.compilation.experiment {
            names.extend(exp.model.layers.iter().map(|l| l.name.clone()));
        }
        if self.root().is_none() {
            // The text does not parse (the line being typed): labels read from the text.
            for line in self.text.lines() {
                let Some(code) = strip_comment(line) else { continue };
                for stmt in code.split(';') {
                    let stmt = stmt.trim().trim_start_matches('{').trim();
                    if let Some((label, rest)) = stmt.split_once(':') {
                        let ok = label.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
                            && label.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.');
                        if ok && !rest.trim().is_empty() {
                            names.insert(label.to_string());
                        }
                    } else if stmt.split_whitespace().next() == Some("input") {
                        names.insert("input".to_string());
                    }
                }
            }
        }
        names.into_iter().collect()
    }

    pub fn completion(&self, pos: Position) -> Vec<lsp::CompletionItem> {
        let offset = self.offset(pos);
        let cx = context(&self.text, offset);
        let partial_start = offset - cx.partial.len();
        let range = self.index.range(&self.text, partial_start..offset);
        let item = |label: &str, kind: lsp::CompletionItemKind, detail: Option<String>| lsp::CompletionItem {
            label: label.to_string(),
            kind: Some(kind),
            detail,
            text_edit: Some(lsp::CompletionTextEdit::Edit(lsp::TextEdit { range, new_text: label.to_string() })),
            ..Default::default()
        };
        let layers = |out: &mut Vec<lsp::CompletionItem>| {
            for n in self.layer_names() {
                out.push(item(&n, lsp::CompletionItemKind::VARIABLE, Some("layer".into())));
            }
            if cx.in_repeat {
                out.push(item("in", lsp::CompletionItemKind::KEYWORD, Some("the layer before this iteration".into())));
            }
        };
        let keys = |out: &mut Vec<lsp::CompletionItem>, keys: &mut dyn Iterator<Item = &&'static str>| {
            for k in keys {
                out.push(item(&format!("{k}="), lsp::CompletionItemKind::PROPERTY, docs::key_doc(k).map(str::to_string)));
            }
        };
        let mut out = vec![];
        match cx.kind {
            Ctx::None => {}
            Ctx::TopLevel => {
                for (k, d) in docs::TOP_LEVEL.iter().filter(|(k, _)| *k != "repeat") {
                    out.push(item(k, lsp::CompletionItemKind::KEYWORD, Some(d.to_string())));
                }
            }
            Ctx::Position => {
                for k in ["after", "before"] {
                    out.push(item(k, lsp::CompletionItemKind::KEYWORD, None));
                }
            }
            Ctx::Pattern => layers(&mut out),
            Ctx::Head(section) => match section {
                SectionKind::Model => {
                    for h in crate::ops::heads() {
                        out.push(item(h, lsp::CompletionItemKind::FUNCTION, docs::op_doc(h)));
                    }
                    out.push(item("repeat", lsp::CompletionItemKind::KEYWORD, docs::setting_doc("", "repeat").map(str::to_string)));
                }
                SectionKind::Data | SectionKind::Train => {
                    let table = if section == SectionKind::Data { docs::DATA_SETTINGS } else { docs::TRAIN_SETTINGS };
                    for (k, d) in table {
                        out.push(item(k, lsp::CompletionItemKind::PROPERTY, Some(d.to_string())));
                    }
                }
            },
            Ctx::LayerRef => layers(&mut out),
            Ctx::Args { section, head, first_value } => match section {
                SectionKind::Model => {
                    if matches!(head.as_str(), "add" | "concat") {
                        layers(&mut out);
                    }
                    let params: &[&'static str] = if docs::op_has_params(&head) || head == "set" { docs::PARAM_KEYS } else { &[] };
                    let own: Vec<&'static str> = if head == "set" {
                        ["conv", "maxpool", "fc", "batchnorm", "accuracy"].iter().flat_map(|h| docs::op_keys(h).iter().copied()).collect()
                    } else {
                        docs::op_keys(&head).to_vec()
                    };
                    let mut all: BTreeSet<&'static str> = own.into_iter().collect();
                    all.extend(docs::COMMON_KEYS.iter().copied());
                    all.extend(params.iter().copied());
                    keys(&mut out, &mut all.iter());
                }
                SectionKind::Data | SectionKind::Train => {
                    let words: &[&str] = match (head.as_str(), first_value) {
                        ("dataset", true) => &["cifar10", "mnist", "synthetic", "folder"],
                        ("solver", true) => &["sgd", "nesterov", "adam"],
                        ("policy", true) => &["fixed", "step", "multistep", "exp", "inv", "poly", "sigmoid"],
                        ("sequence", true) => &["rows"],
                        ("shuffle", true) => &["true", "false"],
                        ("mean", true) => &["image"],
                        ("augment", _) => &["mirror"],
                        _ => &[],
                    };
                    for w in words {
                        out.push(item(w, lsp::CompletionItemKind::VALUE, None));
                    }
                    keys(&mut out, &mut docs::setting_keys(&head).iter());
                }
            },
            Ctx::Value(key) => {
                let words: &[&str] = match key.as_str() {
                    "init" | "bias_init" => &["xavier", "msra", "gaussian(0.01)", "constant(0)", "uniform(-0.1, 0.1)"],
                    "round" => &["floor", "ceil"],
                    "bias" | "affine" | "mirror" => &["true", "false"],
                    _ => &[],
                };
                for w in words {
                    out.push(item(w, lsp::CompletionItemKind::VALUE, None));
                }
            }
        }
        out
    }

    // ---- outline -----------------------------------------------------------------------------

    /// The outline: the name, `extends`, the sections with their settings and layers, edits.
    #[allow(deprecated)] // `DocumentSymbol::deprecated` must be written out
    pub fn symbols(&self) -> Vec<lsp::DocumentSymbol> {
        let Some(root) = self.root() else { return vec![] };
        let r = |s: Span| self.index.range(&self.text, s.range());
        let sym = |name: String, detail: Option<String>, kind: lsp::SymbolKind, range: Span, sel: Span, children: Option<Vec<lsp::DocumentSymbol>>| {
            lsp::DocumentSymbol {
                name: if name.is_empty() { "?".into() } else { name },
                detail,
                kind,
                tags: None,
                deprecated: None,
                range: r(range),
                selection_range: r(sel),
                children,
            }
        };
        fn body(
            stmts: &[Stmt],
            model: bool,
            out: &mut Vec<lsp::DocumentSymbol>,
            mk: &dyn Fn(&Command, bool) -> lsp::DocumentSymbol,
            rep: &dyn Fn(&ast::Repeat, Vec<lsp::DocumentSymbol>) -> lsp::DocumentSymbol,
        ) {
            for s in stmts {
                match s {
                    Stmt::Command(c) => out.push(mk(c, model)),
                    Stmt::Repeat(rp) => {
                        let mut children = vec![];
                        body(&rp.body, model, &mut children, mk, rep);
                        out.push(rep(rp, children));
                    }
                }
            }
        }
        let mk = |c: &Command, model: bool| {
            let line = &self.text[c.span.range()];
            let (name, detail) = match (&c.label, model) {
                (Some(l), _) => (l.name.clone(), line[(l.span.end - c.span.start) as usize..].trim_start_matches(':').trim().to_string()),
                (None, _) => (c.head.name.clone(), line[(c.head.span.end - c.span.start) as usize..].trim().to_string()),
            };
            let kind = if model { lsp::SymbolKind::FUNCTION } else { lsp::SymbolKind::PROPERTY };
            sym(name, (!detail.is_empty()).then_some(detail), kind, c.span, name_span(c), None)
        };
        let rep = |rp: &ast::Repeat, children: Vec<lsp::DocumentSymbol>| {
            sym(format!("repeat {}", rp.count), None, lsp::SymbolKind::ARRAY, rp.span, rp.count_span, Some(children))
        };
        let mut out = vec![];
        for item in &root.items {
            match item {
                Item::Experiment(i) => out.push(sym(i.name.clone(), Some("experiment".into()), lsp::SymbolKind::MODULE, i.span, i.span, None)),
                Item::Extends(s) => out.push(sym(format!("extends \"{}\"", s.value), None, lsp::SymbolKind::FILE, s.span, s.span, None)),
                Item::Section(s) => {
                    let mut children = vec![];
                    body(&s.body, s.kind == SectionKind::Model, &mut children, &mk, &rep);
                    out.push(sym(s.kind.as_str().to_string(), None, lsp::SymbolKind::NAMESPACE, s.span, s.kind_span, Some(children)));
                }
                Item::Set(e) => out.push(sym(format!("set {}", e.pattern.name), None, lsp::SymbolKind::EVENT, e.span, e.pattern.span, None)),
                Item::Insert(e) => {
                    let pos = match e.position {
                        ast::Position::After => "after",
                        ast::Position::Before => "before",
                    };
                    out.push(sym(
                        format!("insert {pos} {}", e.pattern.name),
                        None,
                        lsp::SymbolKind::EVENT,
                        e.span,
                        e.pattern.span,
                        Some(vec![mk(&e.command, true)]),
                    ));
                }
                Item::Remove(e) => out.push(sym(format!("remove {}", e.pattern.name), None, lsp::SymbolKind::EVENT, e.span, e.pattern.span, None)),
            }
        }
        out
    }
}

/// `expc fmt` as one edit replacing the document; `None` when the text does not parse, an
/// empty list when it is already formatted.
pub fn format(text: &str) -> Option<Vec<lsp::TextEdit>> {
    let ast = crate::syntax::parse(ROOT, text).ok()?;
    let formatted = crate::syntax::format(text, &ast);
    if formatted == text {
        return Some(vec![]);
    }
    let index = LineIndex::new(text);
    Some(vec![lsp::TextEdit { range: lsp::Range { start: Position::default(), end: index.end(text) }, new_text: formatted }])
}

fn op_args(head: &str) -> String {
    let mut keys: Vec<&str> = docs::op_keys(head).to_vec();
    if docs::op_has_params(head) {
        keys.extend_from_slice(docs::PARAM_KEYS);
    }
    keys.extend_from_slice(docs::COMMON_KEYS);
    format!("\n\narguments: {}", keys.iter().map(|k| format!("`{k}=`")).collect::<Vec<_>>().join(", "))
}

/// 1234567 → "1,234,567".
fn group(n: u64) -> String {
    crate::ops::shape::thousands(n as u128)
}

fn walk_commands<'a>(body: &'a [Stmt], f: &mut dyn FnMut(&'a Command)) {
    for s in body {
        match s {
            Stmt::Command(c) => f(c),
            Stmt::Repeat(r) => walk_commands(&r.body, f),
        }
    }
}

fn command_in(body: &[Stmt], offset: usize) -> Option<&Command> {
    for s in body {
        match s {
            Stmt::Command(c) if contains(c.span, offset) => return Some(c),
            Stmt::Repeat(r) if contains(r.span, offset) => return command_in(&r.body, offset),
            _ => {}
        }
    }
    None
}

/// A label named `name` in the innermost repeat body around `offset` (references inside a
/// repeat body name the same iteration's layers).
fn label_in_enclosing_repeat(body: &[Stmt], offset: usize, name: &str) -> Option<Span> {
    for s in body {
        if let Stmt::Repeat(r) = s {
            if contains(r.span, offset) {
                if let Some(found) = label_in_enclosing_repeat(&r.body, offset, name) {
                    return Some(found);
                }
                let mut hit = None;
                walk_commands(&r.body, &mut |c| {
                    if hit.is_none() {
                        hit = c.label.as_ref().filter(|l| l.name == name).map(|l| l.span);
                    }
                });
                return hit;
            }
        }
    }
    None
}

/// `prev`: the layer written before `body`; `in_targets`: what `in` names inside `body`.
fn find_in_body(body: &[Stmt], kind: SectionKind, offset: usize, prev: Option<Span>, in_targets: Vec<Span>) -> Option<Found<'_>> {
    let mut prev = prev;
    for s in body {
        match s {
            Stmt::Command(c) => {
                if contains(c.span, offset) {
                    return find_in_command(c, Some(kind), offset, in_targets);
                }
                prev = Some(name_span(c));
            }
            Stmt::Repeat(r) => {
                if contains(r.span, offset) {
                    if contains(r.count_span, offset) || offset < r.count_span.start as usize {
                        return Some(Found::Keyword("repeat"));
                    }
                    // `in`: the layer before the block (first iteration), then the body's last.
                    let mut targets: Vec<Span> = prev.into_iter().collect();
                    if r.count > 1 {
                        targets.extend(last_command(&r.body).map(name_span));
                    }
                    return find_in_body(&r.body, kind, offset, prev, targets).or(Some(Found::Keyword("repeat")));
                }
                prev = last_command(&r.body).map(name_span).or(prev);
            }
        }
    }
    None
}

fn find_in_command(c: &Command, section: Option<SectionKind>, offset: usize, in_targets: Vec<Span>) -> Option<Found<'_>> {
    if let Some(l) = &c.label {
        if contains(l.span, offset) {
            return Some(Found::Label(l));
        }
    }
    if contains(c.head.span, offset) {
        return Some(Found::Head(section, c));
    }
    let mut hit = None;
    for_each_ref(c, &mut |i| {
        if contains(i.span, offset) {
            hit = Some(i);
        }
    });
    if let Some(i) = hit {
        if i.name == "in" {
            return Some(Found::In(in_targets));
        }
        return Some(Found::Ref(i));
    }
    for a in &c.args {
        if let Arg::Keyword { key, .. } = a {
            if contains(key.span, offset) {
                return Some(Found::Key(section, c, key));
            }
        }
    }
    Some(Found::Line(section, c))
}

// ---- completion context (from the text alone: it works while the file does not parse) -------

#[derive(Debug, PartialEq)]
enum Ctx {
    None,
    TopLevel,
    /// After `insert`.
    Position,
    /// The pattern of `set`, `insert after`, `remove`.
    Pattern,
    Head(SectionKind),
    LayerRef,
    Args {
        section: SectionKind,
        head: String,
        first_value: bool,
    },
    Value(String),
}

struct Context {
    kind: Ctx,
    partial: String,
    in_repeat: bool,
}

fn strip_comment(line: &str) -> Option<&str> {
    let mut in_str = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_str = !in_str,
            '#' if !in_str => return Some(&line[..i]),
            _ => {}
        }
    }
    if in_str {
        None
    } else {
        Some(line)
    }
}

fn context(text: &str, offset: usize) -> Context {
    let offset = (0..=offset.min(text.len())).rev().find(|&o| text.is_char_boundary(o)).unwrap_or(0);
    let before = &text[..offset];
    // Sections and repeat blocks open before the cursor.
    let mut stack: Vec<String> = vec![];
    let line_start = before.rfind(['\n', ';']).map_or(0, |i| i + 1);
    for line in before[..line_start].split(['\n', ';']) {
        let Some(code) = strip_comment(line) else { continue };
        let mut word = String::new();
        let mut last_word = String::new();
        for ch in code.chars() {
            match ch {
                '{' => stack.push(std::mem::take(&mut last_word)),
                '}' => {
                    stack.pop();
                }
                c if c.is_alphanumeric() || c == '_' => word.push(c),
                _ => {
                    if !word.is_empty() {
                        last_word = std::mem::take(&mut word);
                    }
                }
            }
            if ch.is_whitespace() && !word.is_empty() {
                last_word = std::mem::take(&mut word);
            }
        }
    }
    let section = stack.first().and_then(|s| match s.as_str() {
        "data" => Some(SectionKind::Data),
        "model" => Some(SectionKind::Model),
        "train" => Some(SectionKind::Train),
        _ => None,
    });
    let in_repeat = stack.len() > 1;
    let line = &before[line_start..];
    let none = Context { kind: Ctx::None, partial: String::new(), in_repeat };
    let Some(code) = strip_comment(line) else { return none };
    if code.contains('#') || code.len() != line.len() {
        return none;
    }
    // A brace opened on this line: what follows it starts a new statement.
    let code = code.rsplit('{').next().unwrap_or(code);
    let partial_start = code.rfind(|c: char| c.is_whitespace() || c == '=' || c == '[' || c == ',' || c == ':' || c == '(').map_or(0, |i| i + 1);
    let partial = code[partial_start..].to_string();
    let head_part = &code[..partial_start];
    let kind = match section {
        None if stack.is_empty() => {
            let words: Vec<&str> = head_part.split_whitespace().collect();
            match words.first().copied() {
                None => Ctx::TopLevel,
                Some("set") if words.len() == 1 => Ctx::Pattern,
                Some("set") => Ctx::Args { section: SectionKind::Model, head: "set".into(), first_value: false },
                Some("remove") if words.len() == 1 => Ctx::Pattern,
                Some("insert") if words.len() == 1 => Ctx::Position,
                Some("insert") if words.len() == 2 && !head_part.contains(':') => Ctx::Pattern,
                Some("insert") => {
                    let after = code.split_once(':').map_or("", |x| x.1);
                    line_ctx(SectionKind::Model, after, &partial)
                }
                _ => Ctx::None,
            }
        }
        None => Ctx::None,
        Some(s) => line_ctx(s, code, &partial),
    };
    Context { kind, partial, in_repeat }
}

/// The context inside one statement of a section (label already allowed).
fn line_ctx(section: SectionKind, code: &str, partial: &str) -> Ctx {
    // Drop a `label:` prefix.
    let code = match code.split_once(':') {
        Some((l, rest)) if !l.trim().is_empty() && l.trim().chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.') => rest,
        _ => code,
    };
    let before_partial = code.strip_suffix(partial).unwrap_or(code);
    let words: Vec<&str> = before_partial.split_whitespace().collect();
    let Some(head) = words.first() else { return Ctx::Head(section) };
    let head = head.to_string();
    // Inside `from=` or `from=[…`.
    let tail = before_partial.trim_end();
    if let Some(i) = tail.rfind("from=") {
        let after = &tail[i + 5..];
        if after.is_empty() || (after.starts_with('[') && !after.contains(']')) {
            return Ctx::LayerRef;
        }
    }
    if let Some(key) = tail.strip_suffix('=').and_then(|t| t.rsplit(|c: char| c.is_whitespace()).next()) {
        return Ctx::Value(key.to_string());
    }
    Ctx::Args { section, head, first_value: words.len() == 1 }
}
