//! `expc fmt`: the canonical layout of a file.
//!
//! One statement a line, two spaces of indent per block, single spaces between arguments,
//! a blank line between top-level sections, at most one blank line kept where the author left
//! some. Comments are not in the AST, so they are re-read from the source text and put back
//! before (own-line comments) or after (trailing comments) the statement they belong to.
//! Invariants: `parse(format(x)) == parse(x)` modulo spans, and `format` is idempotent.

use super::ast::*;
use super::parser::escape;

struct Comment {
    pos: usize,
    text: String,
    own_line: bool,
}

fn scan_comments(text: &str) -> Vec<Comment> {
    let mut out = vec![];
    let mut line_start = 0;
    let mut in_string = false;
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        match c {
            '\n' => {
                line_start = i + 1;
                in_string = false;
            }
            '\\' if in_string => {
                iter.next();
            }
            '"' => in_string = !in_string,
            '#' if !in_string => {
                let end = text[i..].find('\n').map_or(text.len(), |e| i + e);
                let own_line = text[line_start..i].trim().is_empty();
                out.push(Comment { pos: i, text: text[i..end].trim_end().to_string(), own_line });
                while iter.peek().is_some_and(|&(j, _)| j < end) {
                    iter.next();
                }
            }
            _ => {}
        }
    }
    out
}

struct Printer<'a> {
    src: &'a str,
    comments: Vec<Comment>,
    next_comment: usize,
    out: String,
    last_end: usize,
}

impl Printer<'_> {
    fn blank_line_before(&self, pos: usize) -> bool {
        let gap = self.src.get(self.last_end..pos).unwrap_or("");
        // Only the part before the first comment counts, comments carry their own gaps.
        gap.split('#').next().unwrap_or("").matches('\n').count() >= 2
    }

    /// Emits own-line comments that come before `pos`, at the given indent.
    fn comments_before(&mut self, pos: usize, indent: usize) {
        while let Some(c) = self.comments.get(self.next_comment) {
            if c.pos >= pos {
                break;
            }
            if !self.out.is_empty() && self.blank_line_before(c.pos) && !self.out.ends_with("{\n") {
                self.out.push('\n');
            }
            let text = c.text.clone();
            let (own, cpos) = (c.own_line, c.pos);
            if own || self.out.is_empty() {
                self.push_line(indent, &text);
            } else {
                // A trailing comment after something we already printed (e.g. after `{`).
                if self.out.ends_with('\n') {
                    self.out.pop();
                }
                self.out.push_str("  ");
                self.out.push_str(&text);
                self.out.push('\n');
            }
            self.last_end = cpos + text.len();
            self.next_comment += 1;
        }
    }

    /// Emits a trailing comment that sits on the same line as `end`.
    fn trailing_comment(&mut self, end: usize) {
        let line_end = self.src[end..].find('\n').map_or(self.src.len(), |e| end + e);
        if let Some(c) = self.comments.get(self.next_comment) {
            if c.pos >= end && c.pos < line_end && !c.own_line {
                if self.out.ends_with('\n') {
                    self.out.pop();
                }
                self.out.push_str("  ");
                self.out.push_str(&c.text.clone());
                self.out.push('\n');
                self.last_end = line_end;
                self.next_comment += 1;
                return;
            }
        }
        self.last_end = end;
    }

    fn push_line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn statement(&mut self, start: usize, end: usize, indent: usize, text: &str, keep_blank: bool) {
        self.comments_before(start, indent);
        if keep_blank && self.blank_line_before(start) && !self.out.ends_with("{\n") && !self.out.is_empty() {
            self.out.push('\n');
        }
        self.push_line(indent, text);
        self.trailing_comment(end);
    }

    /// A `header { … }` block. Top-level sections (`force_blank`) always follow a blank line,
    /// put before their leading comments; nested blocks keep one only where the author had one.
    fn block(&mut self, header: String, start: usize, body: &[Stmt], close: usize, indent: usize, force_blank: bool) {
        let can_blank = |out: &String| !out.is_empty() && !out.ends_with("{\n") && !out.ends_with("\n\n");
        if force_blank && can_blank(&self.out) {
            self.out.push('\n');
        }
        self.comments_before(start, indent);
        if !force_blank && can_blank(&self.out) && self.blank_line_before(start) {
            self.out.push('\n');
        }
        self.push_line(indent, &format!("{header} {{"));
        // A comment on the header line stays there.
        let header_end = self.src[start..].find('{').map_or(start, |i| start + i + 1);
        self.trailing_comment(header_end);
        for stmt in body {
            match stmt {
                Stmt::Command(c) => self.statement(c.span.start as usize, c.span.end as usize, indent + 1, &command(c), true),
                Stmt::Repeat(r) => self.block(format!("repeat {}", r.count), r.span.start as usize, &r.body, r.span.end as usize - 1, indent + 1, false),
            }
        }
        self.comments_before(close, indent + 1);
        self.push_line(indent, "}");
        self.trailing_comment(close + 1);
    }
}

/// The canonical text of `file`, whose source is `src`.
///
/// Line ends are `\n` in the output. A source with `\r\n` or lone `\r` line ends (both are line
/// ends to the grammar) is first rewritten with `\n` and parsed again, so that comments end where
/// the grammar ends them.
pub fn format(src: &str, file: &File) -> String {
    if src.contains('\r') {
        let unix = src.replace("\r\n", "\n").replace('\r', "\n");
        if let Ok(ast) = super::parse(crate::source::FileId(0), &unix) {
            return format_lf(&unix, &ast);
        }
    }
    format_lf(src, file)
}

/// [`format`], checked: the output must parse to the same syntax tree as the input (spans
/// aside). `Err` holds the reason when it does not; the caller then keeps the file as it is.
pub fn format_checked(src: &str, file: &File) -> Result<String, String> {
    let out = format(src, file);
    let again = super::parse(crate::source::FileId(0), &out).map_err(|d| format!("the formatted text does not parse: {}", d.message))?;
    if without_spans(file) != without_spans(&again) {
        return Err("the formatted text means something else than the original".into());
    }
    Ok(out)
}

/// The syntax tree as JSON without any span, to compare two trees by meaning.
pub fn without_spans(file: &File) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, _| k != "span" && !k.ends_with("_span"));
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(file).unwrap_or_default();
    strip(&mut v);
    v
}

fn format_lf(src: &str, file: &File) -> String {
    let mut p = Printer { src, comments: scan_comments(src), next_comment: 0, out: String::new(), last_end: 0 };
    let mut prev_was_section = false;
    for item in &file.items {
        match item {
            Item::Section(s) if one_liner(src, s) => {
                let Stmt::Command(c) = &s.body[0] else { unreachable!("one_liner checks for a command") };
                let text = format!("{} {{ {} }}", s.kind.as_str(), command(c));
                p.statement(s.span.start as usize, s.span.end as usize, 0, &text, true);
                prev_was_section = false;
            }
            Item::Section(s) => {
                p.block(s.kind.as_str().to_string(), s.span.start as usize, &s.body, s.span.end as usize - 1, 0, true);
                prev_was_section = true;
            }
            other => {
                let (span, text) = match other {
                    Item::Experiment(name) => (name.span, format!("experiment {}", name.name)),
                    Item::Extends(path) => (path.span, format!("extends \"{}\"", escape(&path.value))),
                    Item::Set(e) => (e.span, format!("set {} {}", e.pattern.name, args(&e.args, " "))),
                    Item::Insert(e) => (
                        e.span,
                        format!("insert {} {}: {}", if e.position == Position::After { "after" } else { "before" }, e.pattern.name, command(&e.command)),
                    ),
                    Item::Remove(e) => (e.span, format!("remove {}", e.pattern.name)),
                    Item::Section(_) => unreachable!(),
                };
                // Statement spans of `experiment`/`extends` cover only the name: start at the line.
                let start = src[..span.start as usize].rfind('\n').map_or(0, |i| i + 1);
                let start = start + (src[start..].len() - src[start..].trim_start().len());
                if prev_was_section && !p.out.ends_with("\n\n") {
                    p.comments_before(start, 0);
                    if !p.out.ends_with("\n\n") {
                        p.out.push('\n');
                    }
                }
                p.statement(start, span.end as usize, 0, &text, true);
                prev_was_section = false;
            }
        }
    }
    p.comments_before(src.len() + 1, 0);
    p.out
}

/// A section holding a single command and no comment is written on one line:
/// `train { weight_decay 0 }`, the typical line of a variant.
fn one_liner(src: &str, s: &Section) -> bool {
    s.body.len() == 1 && matches!(s.body[0], Stmt::Command(_)) && !src.get(s.span.range()).unwrap_or("#").contains('#')
}

fn command(c: &Command) -> String {
    let mut s = String::new();
    if let Some(l) = &c.label {
        s.push_str(&l.name);
        s.push_str(": ");
    }
    s.push_str(&c.head.name);
    if !c.args.is_empty() {
        s.push(' ');
        s.push_str(&args(&c.args, " "));
    }
    s
}

fn args(args: &[Arg], sep: &str) -> String {
    args.iter()
        .map(|a| match a {
            Arg::Positional(v) => value(v),
            Arg::Keyword { key, value: v } => format!("{}={}", key.name, value(v)),
        })
        .collect::<Vec<_>>()
        .join(sep)
}

fn value(v: &Value) -> String {
    match &v.kind {
        ValueKind::Number { text, .. } => text.clone(),
        ValueKind::Dims(d) => d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("x"),
        ValueKind::Bool(b) => b.to_string(),
        ValueKind::Str(s) => format!("\"{}\"", escape(s)),
        ValueKind::Ident(s) => s.clone(),
        ValueKind::List(items) => format!("[{}]", items.iter().map(value).collect::<Vec<_>>().join(", ")),
        ValueKind::Call { name, args: a } => format!("{}({})", name.name, args(a, ", ")),
    }
}
