//! Reading a file and the files it `extends`, merging them into one untyped document.
//!
//! Invariants of a [`Doc`]:
//! - `data` and `train` hold at most one command per head; a variant's command replaces the
//!   base's and remembers the replaced command's span (`overrides`) for two-file messages.
//! - `model` is fully expanded: repeat blocks unrolled, every layer named, references inside
//!   repeat bodies rewritten to the iteration's names. A variant's `model { … }` replaces the
//!   base model; `set`/`insert`/`remove` edit the expanded layers in order.
//! - Extends chains are acyclic (a cycle is reported with a label in every file of the cycle).

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::source::{FileId, SourceMap, Span};
use crate::syntax::ast::{self, Arg, Command, Item, Position, SectionKind, Stmt, Value, ValueKind};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Upper bound on expanded layers, so a typo like `repeat 1000000000` is an error, not an OOM.
pub const MAX_LAYERS: usize = 1_000_000;

/// Deepest `extends` chain: a spec, its base, the base's base, … (64 files).
pub const MAX_EXTENDS_DEPTH: usize = 64;

#[derive(Clone, Debug)]
pub struct SettingCmd {
    pub cmd: Command,
    /// The base file's command that this one replaced.
    pub overrides: Option<Span>,
}

#[derive(Clone, Debug)]
pub struct SettingSection {
    pub header: Span,
    pub cmds: Vec<SettingCmd>,
}

#[derive(Clone, Debug)]
pub struct RawLayer {
    pub name: String,
    pub name_span: Span,
    pub cmd: Command,
    /// Set when a variant edited this layer: the span of the layer in its own file.
    pub edited: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Doc {
    pub name: Option<ast::Ident>,
    pub data: Option<SettingSection>,
    pub train: Option<SettingSection>,
    pub model: Option<(Span, Vec<RawLayer>)>,
    /// The `extends` line of the outermost file, if any.
    pub extends: Option<Span>,
    /// The model was not expanded: it exceeds [`MAX_LAYERS`] (E0019 reported).
    pub too_big: bool,
}

pub type ReadFn<'a> = &'a dyn Fn(&Path) -> std::io::Result<String>;

pub struct Loader<'a> {
    pub sources: SourceMap,
    pub diags: Vec<Diagnostic>,
    pub asts: Vec<(FileId, ast::File)>,
    read: ReadFn<'a>,
}

struct Visit {
    path: PathBuf,
    extends_span: Option<Span>,
}

impl<'a> Loader<'a> {
    pub fn new(read: ReadFn<'a>) -> Loader<'a> {
        Loader { sources: SourceMap::new(), diags: vec![], asts: vec![], read }
    }

    /// Loads `path` as the root file. `None` when it could not be read or parsed.
    pub fn load_root(&mut self, path: &Path) -> Option<Doc> {
        self.load(path, None, &mut vec![])
    }

    /// Loads source text given directly (e.g. from stdin or tests), with `name` for messages
    /// and `dir` for resolving `extends`.
    pub fn load_text(&mut self, name: &str, text: String, dir: &Path) -> Option<Doc> {
        let file = self.sources.add(name, text.clone());
        self.load_parsed(file, &text, dir, &mut vec![Visit { path: dir.join(name), extends_span: None }])
    }

    fn load(&mut self, path: &Path, via: Option<Span>, stack: &mut Vec<Visit>) -> Option<Doc> {
        let text = match (self.read)(path) {
            Ok(t) => t,
            Err(e) => {
                let mut d = Diagnostic::error("E0010", format!("cannot read `{}`: {e}", path.display()));
                if let Some(s) = via {
                    d = d.primary(s, "extended here");
                }
                self.diags.push(d.help("check the path; `extends` paths are relative to the file that names them"));
                return None;
            }
        };
        let file = self.sources.add(path.display().to_string(), text.clone());
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        stack.push(Visit { path: canonical(path), extends_span: via });
        let doc = self.load_parsed(file, &text, &dir, stack);
        stack.pop();
        doc
    }

    fn load_parsed(&mut self, file: FileId, text: &str, dir: &Path, stack: &mut Vec<Visit>) -> Option<Doc> {
        let parsed = match crate::syntax::parse(file, text) {
            Ok(f) => f,
            Err(d) => {
                self.diags.push(d);
                return None;
            }
        };

        // 1. The base, if any.
        let mut doc = Doc::default();
        let mut seen_extends: Option<Span> = None;
        for item in &parsed.items {
            if let Item::Extends(p) = item {
                if let Some(first) = seen_extends {
                    self.diags.push(
                        Diagnostic::error("E0011", "a file can extend only one base").primary(p.span, "second `extends`").secondary(first, "first `extends`"),
                    );
                    continue;
                }
                seen_extends = Some(p.span);
                if stack.len() >= MAX_EXTENDS_DEPTH {
                    self.diags.push(
                        Diagnostic::error("E0021", format!("`extends` chain deeper than {MAX_EXTENDS_DEPTH} files"))
                            .primary(p.span, format!("file {} of the chain extends yet another base", stack.len()))
                            .help("a variant extends a baseline; chains this long are a mistake (or a generated cycle through different paths)"),
                    );
                    return None;
                }
                let base_path = dir.join(&p.value);
                let canon = canonical(&base_path);
                if let Some(pos) = stack.iter().position(|v| v.path == canon) {
                    let mut d =
                        Diagnostic::error("E0012", format!("`extends` cycle: `{}` extends itself", p.value)).primary(p.span, "this `extends` closes the cycle");
                    for v in &stack[pos + 1..] {
                        if let Some(s) = v.extends_span {
                            d = d.secondary(s, "which is extended here");
                        }
                    }
                    self.diags.push(d.help("a variant extends a baseline; the baseline must not extend the variant"));
                    return None;
                }
                doc = self.load(&base_path, Some(p.span), stack)?;
            }
        }
        doc.extends = seen_extends;

        // 2. This file's own items, in order.
        let mut own_name: Option<Span> = None;
        let mut own_sections: HashMap<&'static str, Span> = HashMap::new();
        for item in &parsed.items {
            match item {
                Item::Experiment(name) => {
                    if let Some(first) = own_name {
                        self.diags
                            .push(Diagnostic::error("E0013", "the experiment is named twice").primary(name.span, "second name").secondary(first, "first name"));
                    }
                    own_name = Some(name.span);
                    doc.name = Some(name.clone());
                }
                Item::Extends(_) => {}
                Item::Section(s) => {
                    let key = s.kind.as_str();
                    if let Some(&first) = own_sections.get(key) {
                        self.diags.push(
                            Diagnostic::error("E0014", format!("`{key}` section given twice"))
                                .primary(s.kind_span, "second section")
                                .secondary(first, "first section")
                                .help("merge the two sections into one"),
                        );
                        continue;
                    }
                    own_sections.insert(key, s.kind_span);
                    match s.kind {
                        SectionKind::Data => doc.data = Some(self.merge_settings(doc.data.take(), s)),
                        SectionKind::Train => doc.train = Some(self.merge_settings(doc.train.take(), s)),
                        SectionKind::Model => {
                            let mut layers = vec![];
                            doc.too_big = !self.check_size(&s.body);
                            if !doc.too_big {
                                let mut cx = ExpandCx::default();
                                self.expand(&s.body, &mut layers, &mut cx, "", &HashMap::new());
                            }
                            doc.model = Some((s.kind_span, layers));
                        }
                    }
                }
                Item::Set(e) => self.edit(&mut doc, &e.pattern, e.span, |this, layers, idx| {
                    for i in idx {
                        let l = &mut layers[i];
                        for a in &e.args {
                            if let Arg::Keyword { key, .. } = a {
                                l.cmd.args.retain(|b| !matches!(b, Arg::Keyword { key: k, .. } if k.name == key.name));
                            }
                            l.cmd.args.push(a.clone());
                        }
                        l.edited = true;
                    }
                    let _ = this;
                }),
                Item::Insert(e) => self.edit(&mut doc, &e.pattern, e.span, |this, layers, idx| {
                    let mut taken: HashSet<String> = layers.iter().map(|l| l.name.clone()).collect();
                    let mut next = HashMap::new();
                    for (shift, i) in idx.into_iter().enumerate() {
                        let at = i + shift;
                        let anchor = layers[at].name.clone();
                        let leaf = e.command.label.as_ref().map_or(e.command.head.name.as_str(), |l| l.name.as_str());
                        let name = unique(&mut taken, &mut next, format!("{anchor}.{leaf}"));
                        let name_span = e.command.label.as_ref().map_or(e.command.head.span, |l| l.span);
                        let layer = RawLayer { name, name_span, cmd: e.command.clone(), edited: false };
                        let pos = if e.position == Position::After { at + 1 } else { at };
                        layers.insert(pos, layer);
                    }
                    let _ = this;
                }),
                Item::Remove(e) => self.edit(&mut doc, &e.pattern, e.span, |_, layers, idx| {
                    let drop: HashSet<usize> = idx.into_iter().collect();
                    let mut i = 0;
                    layers.retain(|_| {
                        i += 1;
                        !drop.contains(&(i - 1))
                    });
                }),
            }
        }
        self.asts.push((file, parsed));
        Some(doc)
    }

    fn edit(&mut self, doc: &mut Doc, pattern: &ast::Ident, span: Span, apply: impl FnOnce(&mut Self, &mut Vec<RawLayer>, Vec<usize>)) {
        let Some((_, layers)) = doc.model.as_mut() else {
            self.diags.push(
                Diagnostic::error("E0015", "this edit has no model to change")
                    .primary(span, "no `model` section here or in a base file")
                    .help("add `extends \"baseline.exp\"` or a `model { … }` section"),
            );
            return;
        };
        let idx: Vec<usize> = layers.iter().enumerate().filter(|(_, l)| glob_match(&pattern.name, &l.name)).map(|(i, _)| i).collect();
        if idx.is_empty() {
            let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
            let d = Diagnostic::error("E0016", format!("`{}` matches no layer", pattern.name))
                .primary(pattern.span, "no layer has this name")
                .note(format!("layers: {}", abbreviate(&names)))
                .with_help(did_you_mean(&pattern.name, names.iter().copied()));
            self.diags.push(d);
            return;
        }
        let mut owned = std::mem::take(layers);
        apply(self, &mut owned, idx);
        *layers = owned;
    }

    fn merge_settings(&mut self, base: Option<SettingSection>, s: &ast::Section) -> SettingSection {
        let from_base = base.is_some();
        let mut out = base.unwrap_or(SettingSection { header: s.kind_span, cmds: vec![] });
        let mut own: HashMap<String, Span> = HashMap::new();
        for stmt in &s.body {
            let cmd = match stmt {
                Stmt::Command(c) => c,
                Stmt::Repeat(r) => {
                    self.diags.push(
                        Diagnostic::error("E0017", format!("`repeat` is only allowed in `model`, not in `{}`", s.kind.as_str()))
                            .primary(Span { end: r.count_span.end, ..r.span }, "repeat block here"),
                    );
                    continue;
                }
            };
            if let Some(label) = &cmd.label {
                self.diags.push(
                    Diagnostic::error("E0018", "settings take no `name:` label").primary(label.span, "label here").help(format!("write `{} …`", cmd.head.name)),
                );
            }
            if let Some(&first) = own.get(&cmd.head.name) {
                self.diags.push(
                    Diagnostic::error("E0112", format!("`{}` is set twice in `{}`", cmd.head.name, s.kind.as_str()))
                        .primary(cmd.head.span, "set again here")
                        .secondary(first, "first set here")
                        .help("keep one of the two lines"),
                );
                continue;
            }
            own.insert(cmd.head.name.clone(), cmd.head.span);
            if let Some(existing) = out.cmds.iter_mut().find(|c| c.cmd.head.name == cmd.head.name) {
                let overrides = if from_base { Some(existing.cmd.span) } else { None };
                *existing = SettingCmd { cmd: cmd.clone(), overrides };
            } else {
                out.cmds.push(SettingCmd { cmd: cmd.clone(), overrides: None });
            }
        }
        out
    }

    /// Reports E0019 (without expanding anything) when a model body expands to more than
    /// [`MAX_LAYERS`] layers; labels the statement at which the count passes the limit.
    fn check_size(&mut self, body: &[Stmt]) -> bool {
        let mut total = 0u64;
        for stmt in body {
            let n = match stmt {
                Stmt::Command(_) => 1,
                Stmt::Repeat(r) if r.count == 0 || r.count > MAX_LAYERS as u64 => continue,
                Stmt::Repeat(r) => r.count.saturating_mul(expanded_size(&r.body)),
            };
            total = total.saturating_add(n);
            if total > MAX_LAYERS as u64 {
                let (span, label) = match stmt {
                    Stmt::Repeat(r) if n > MAX_LAYERS as u64 && r.body.iter().any(|s| matches!(s, Stmt::Repeat(_))) => {
                        (Span { end: r.count_span.end, ..r.span }, format!("these nested repeats expand to {} layers", big(n)))
                    }
                    Stmt::Repeat(r) => (Span { end: r.count_span.end, ..r.span }, format!("this repeat expands to {} layers", big(n))),
                    Stmt::Command(c) => (c.span, format!("layer {} of the model", big(total))),
                };
                self.diags.push(
                    Diagnostic::error("E0019", format!("the model expands to more than {MAX_LAYERS} layers"))
                        .primary(span, label)
                        .help("check the counts of `repeat` blocks"),
                );
                return false;
            }
        }
        true
    }

    fn expand(&mut self, body: &[Stmt], out: &mut Vec<RawLayer>, cx: &mut ExpandCx, suffix: &str, subst: &HashMap<String, String>) {
        for stmt in body {
            if cx.overflow {
                return;
            }
            match stmt {
                Stmt::Command(c) => {
                    if out.len() >= MAX_LAYERS {
                        self.diags.push(
                            Diagnostic::error("E0019", format!("the model expands to more than {MAX_LAYERS} layers"))
                                .primary(c.span, "expansion stopped here")
                                .help("check the counts of `repeat` blocks"),
                        );
                        cx.overflow = true;
                        return;
                    }
                    let mut cmd = c.clone();
                    rewrite_refs(&mut cmd, subst);
                    let (name, name_span) = match &c.label {
                        Some(l) => {
                            let name = format!("{}{suffix}", l.name);
                            if let Some(&first) = cx.explicit.get(&name) {
                                self.diags.push(
                                    Diagnostic::error("E0113", format!("duplicate layer name `{name}`"))
                                        .primary(l.span, "named again here")
                                        .secondary(first, "first named here")
                                        .help("give each layer its own name"),
                                );
                            }
                            cx.explicit.insert(name.clone(), l.span);
                            cx.last_explicit = Some(name.clone());
                            (name, l.span)
                        }
                        None => {
                            let base = match &cx.last_explicit {
                                Some(b) => format!("{b}.{}", c.head.name),
                                None => c.head.name.clone(),
                            };
                            (unique(&mut cx.taken, &mut cx.next, base), c.head.span)
                        }
                    };
                    cx.taken.insert(name.clone());
                    out.push(RawLayer { name, name_span, cmd, edited: false });
                }
                Stmt::Repeat(r) => {
                    if r.count == 0 || r.count > MAX_LAYERS as u64 {
                        self.diags.push(
                            Diagnostic::error("E0020", format!("repeat count must be between 1 and {MAX_LAYERS}")).primary(r.count_span, "invalid count"),
                        );
                        continue;
                    }
                    let labels: Vec<String> = r
                        .body
                        .iter()
                        .filter_map(|s| match s {
                            Stmt::Command(c) => c.label.as_ref().map(|l| l.name.clone()),
                            Stmt::Repeat(_) => None,
                        })
                        .collect();
                    for i in 1..=r.count {
                        let inner_suffix = format!("{suffix}_{i}");
                        let mut inner = subst.clone();
                        for l in &labels {
                            inner.insert(l.clone(), format!("{l}{inner_suffix}"));
                        }
                        if let Some(prev) = out.last() {
                            inner.insert("in".to_string(), prev.name.clone());
                        }
                        self.expand(&r.body, out, cx, &inner_suffix, &inner);
                        if cx.overflow {
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// `1234567` → `1,234,567`; saturated counts read "more than 18,446,744,073,709,551,614".
fn big(n: u64) -> String {
    let out = crate::ops::shape::thousands(n as u128);
    if n == u64::MAX {
        format!("more than {out}")
    } else {
        out
    }
}

#[derive(Default)]
struct ExpandCx {
    explicit: HashMap<String, Span>,
    taken: HashSet<String>,
    next: HashMap<String, u64>,
    last_explicit: Option<String>,
    overflow: bool,
}

/// `base`, or `base2`, `base3`, … — the first name not taken. `next` remembers, per base, where
/// to continue, so naming n unlabelled layers of one kind is linear, not quadratic.
fn unique(taken: &mut HashSet<String>, next: &mut HashMap<String, u64>, base: String) -> String {
    if taken.insert(base.clone()) {
        return base;
    }
    let k = next.entry(base.clone()).or_insert(2);
    loop {
        let name = format!("{base}{k}");
        *k += 1;
        if taken.insert(name.clone()) {
            return name;
        }
    }
}

/// How many layers `body` expands to (saturating), computed without expanding it.
fn expanded_size(body: &[Stmt]) -> u64 {
    body.iter()
        .map(|s| match s {
            Stmt::Command(_) => 1,
            Stmt::Repeat(r) => r.count.saturating_mul(expanded_size(&r.body)),
        })
        .fold(0u64, u64::saturating_add)
}

/// Rewrites layer references inside a repeat body: `from=x` and the inputs of `add`/`concat`.
fn rewrite_refs(cmd: &mut Command, subst: &HashMap<String, String>) {
    if subst.is_empty() {
        return;
    }
    let named_inputs = matches!(cmd.head.name.as_str(), "add" | "concat");
    for a in &mut cmd.args {
        match a {
            Arg::Keyword { key, value } if key.name == "from" => rewrite_value(value, subst),
            Arg::Positional(v) if named_inputs => rewrite_value(v, subst),
            _ => {}
        }
    }
}

fn rewrite_value(v: &mut Value, subst: &HashMap<String, String>) {
    match &mut v.kind {
        ValueKind::Ident(name) => {
            if let Some(n) = subst.get(name) {
                *name = n.clone();
            }
        }
        ValueKind::List(items) => items.iter_mut().for_each(|i| rewrite_value(i, subst)),
        _ => {}
    }
}

/// `*` matches any run of characters except `.`, `?` any one character except `.`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (n.first().is_some_and(|&c| c != b'.') && go(p, &n[1..])),
            (Some(b'?'), Some(&c)) if c != b'.' => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

pub fn abbreviate(names: &[&str]) -> String {
    if names.len() <= 12 {
        names.join(", ")
    } else {
        format!("{}, … ({} in all)", names[..12].join(", "), names.len())
    }
}
