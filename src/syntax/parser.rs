//! pest grammar (`grammar/exp.pest`) → [`ast::File`].
//!
//! pest's `Pair` and `Rule` types never leave this module. Syntax errors become one
//! [`Diagnostic`] (code `E0001`) whose "expected …" list is written in words, not rule names,
//! with a "did you mean" when an unknown top-level word is close to a keyword.

use super::ast::*;
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::source::{FileId, Span};
use pest::iterators::Pair;
use pest::Parser as _;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/exp.pest"]
struct ExpParser;

/// Parses one file. On a syntax error returns the diagnostic for the first error (pest stops there).
pub fn parse(file: FileId, text: &str) -> Result<File, Diagnostic> {
    let mut pairs = ExpParser::parse(Rule::file, text).map_err(|e| syntax_error(file, text, e))?;
    let root = pairs.next().expect("grammar: `file` always yields one pair");
    let cx = Cx { file };
    let span = cx.span(&root);
    let items = root.into_inner().filter(|p| p.as_rule() != Rule::EOI).map(|p| cx.item(p)).collect();
    Ok(File { items, span })
}

struct Cx {
    file: FileId,
}

impl Cx {
    fn span(&self, p: &Pair<Rule>) -> Span {
        let s = p.as_span();
        Span::new(self.file, s.start()..s.end())
    }

    fn item(&self, p: Pair<Rule>) -> Item {
        let span = self.span(&p);
        match p.as_rule() {
            Rule::experiment => {
                let ident = p.into_inner().find(|q| q.as_rule() == Rule::ident).expect("experiment name");
                Item::Experiment(self.ident(ident))
            }
            Rule::extends => {
                let s = p.into_inner().find(|q| q.as_rule() == Rule::string).expect("extends path");
                Item::Extends(self.string(s))
            }
            Rule::section => Item::Section(self.section(p)),
            Rule::set_edit => {
                let mut inner = p.into_inner().filter(|q| q.as_rule() != Rule::kw_set);
                let pattern = self.pattern(inner.next().expect("set pattern"));
                let args = inner.map(|q| self.arg(q)).collect();
                Item::Set(SetEdit { pattern, args, span })
            }
            Rule::insert_edit => {
                let mut inner = p.into_inner().filter(|q| q.as_rule() != Rule::kw_insert);
                let position = match inner.next().expect("insert position").as_str() {
                    "before" => Position::Before,
                    _ => Position::After,
                };
                let pattern = self.pattern(inner.next().expect("insert pattern"));
                let command = self.command(inner.next().expect("insert command"));
                Item::Insert(InsertEdit { position, pattern, command, span })
            }
            Rule::remove_edit => {
                let mut inner = p.into_inner().filter(|q| q.as_rule() != Rule::kw_remove);
                let pattern = self.pattern(inner.next().expect("remove pattern"));
                Item::Remove(RemoveEdit { pattern, span })
            }
            r => unreachable!("grammar: unexpected item {r:?}"),
        }
    }

    fn section(&self, p: Pair<Rule>) -> Section {
        let span = self.span(&p);
        let mut inner = p.into_inner();
        let kind_pair = inner.next().expect("section kind");
        let kind = match kind_pair.as_str() {
            "data" => SectionKind::Data,
            "model" => SectionKind::Model,
            _ => SectionKind::Train,
        };
        Section { kind, kind_span: self.span(&kind_pair), body: inner.map(|q| self.stmt(q)).collect(), span }
    }

    fn stmt(&self, p: Pair<Rule>) -> Stmt {
        match p.as_rule() {
            Rule::repeat => {
                let span = self.span(&p);
                let mut inner = p.into_inner().filter(|q| q.as_rule() != Rule::kw_repeat);
                let count_pair = inner.next().expect("repeat count");
                let count = count_pair.as_str().parse().unwrap_or(u64::MAX);
                let count_span = self.span(&count_pair);
                Stmt::Repeat(Repeat { count, count_span, body: inner.map(|q| self.stmt(q)).collect(), span })
            }
            _ => Stmt::Command(self.command(p)),
        }
    }

    fn command(&self, p: Pair<Rule>) -> Command {
        let span = self.span(&p);
        let mut label = None;
        let mut head = None;
        let mut args = vec![];
        for q in p.into_inner() {
            match q.as_rule() {
                Rule::label => label = Some(self.ident(q.into_inner().next().expect("label ident"))),
                Rule::ident if head.is_none() => head = Some(self.ident(q)),
                _ => args.push(self.arg(q)),
            }
        }
        Command { label, head: head.expect("command head"), args, span }
    }

    fn arg(&self, p: Pair<Rule>) -> Arg {
        if p.as_rule() == Rule::kwarg {
            let mut inner = p.into_inner();
            let key = self.ident(inner.next().expect("kwarg key"));
            let value = self.value(inner.next().expect("kwarg value"));
            Arg::Keyword { key, value }
        } else {
            Arg::Positional(self.value(p))
        }
    }

    fn value(&self, p: Pair<Rule>) -> Value {
        let span = self.span(&p);
        let text = p.as_str();
        let kind = match p.as_rule() {
            Rule::number => {
                let integer = !text.contains(['.', 'e', 'E']);
                ValueKind::Number { text: text.to_string(), value: text.parse().unwrap_or(f64::NAN), integer }
            }
            Rule::fraction => {
                let (a, b) = text.split_once('/').unwrap_or((text, "1"));
                let value = a.parse::<f64>().unwrap_or(f64::NAN) / b.parse::<f64>().unwrap_or(f64::NAN);
                ValueKind::Number { text: text.to_string(), value, integer: false }
            }
            Rule::dims => ValueKind::Dims(text.split('x').map(|d| d.parse().unwrap_or(u64::MAX)).collect()),
            Rule::boolean => ValueKind::Bool(text == "true"),
            Rule::string => ValueKind::Str(unescape(p.into_inner().next().map(|q| q.as_str()).unwrap_or(""))),
            Rule::ident => ValueKind::Ident(text.to_string()),
            Rule::list => ValueKind::List(p.into_inner().map(|q| self.value(q)).collect()),
            Rule::call => {
                let mut inner = p.into_inner();
                let name = self.ident(inner.next().expect("call name"));
                ValueKind::Call { name, args: inner.map(|q| self.arg(q)).collect() }
            }
            r => unreachable!("grammar: unexpected value {r:?}"),
        };
        Value { kind, span }
    }

    fn ident(&self, p: Pair<Rule>) -> Ident {
        Ident { name: p.as_str().to_string(), span: self.span(&p) }
    }

    fn pattern(&self, p: Pair<Rule>) -> Ident {
        self.ident(p)
    }

    fn string(&self, p: Pair<Rule>) -> Str {
        let span = self.span(&p);
        Str { value: unescape(p.into_inner().next().map(|q| q.as_str()).unwrap_or("")), span }
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Escapes a string for printing back inside quotes (inverse of [`unescape`]).
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").replace('\t', "\\t")
}

/// A rule in words, or `None` for rules a user should never hear about.
fn describe(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::experiment | Rule::kw_experiment => "`experiment`",
        Rule::extends | Rule::kw_extends => "`extends`",
        Rule::section | Rule::section_kind => "a section (`data`, `model` or `train`)",
        Rule::set_edit | Rule::kw_set => "`set`",
        Rule::insert_edit | Rule::kw_insert => "`insert`",
        Rule::remove_edit | Rule::kw_remove => "`remove`",
        Rule::repeat | Rule::kw_repeat => "`repeat`",
        Rule::command | Rule::label => "a layer or setting",
        Rule::ident => "a name",
        Rule::kwarg => "`key=value`",
        Rule::call => "a call like gaussian(0.01)",
        Rule::list => "a list `[…]`",
        Rule::dims => "a size like 5x5",
        Rule::fraction | Rule::number => "a number",
        Rule::integer => "a whole number",
        Rule::boolean => "`true` or `false`",
        Rule::string | Rule::string_inner => "a quoted string",
        Rule::position => "`after` or `before`",
        Rule::pattern => "a layer name or pattern like conv*",
        Rule::EOI => "end of file",
        Rule::sep => "end of line",
        _ => return None,
    })
}

/// A name for a character that does not show on screen (or shows as blank), `None` for one that does.
fn invisible_name(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{0}' => "NUL",
        '\u{FEFF}' => "byte order mark",
        '\u{200B}' => "zero-width space",
        '\u{200C}' => "zero-width non-joiner",
        '\u{200D}' => "zero-width joiner",
        '\u{200E}' => "left-to-right mark",
        '\u{200F}' => "right-to-left mark",
        '\u{202A}'..='\u{202E}' => "bidirectional formatting character",
        '\u{2066}'..='\u{2069}' => "bidirectional isolate",
        '\u{2060}' => "word joiner",
        '\u{00A0}' => "no-break space",
        '\u{00AD}' => "soft hyphen",
        c if c.is_control() => "control character",
        c if c.is_whitespace() && c != ' ' && c != '\t' && c != '\n' => "unusual space",
        _ => return None,
    })
}

const TOP_LEVEL_WORDS: &[&str] = &["experiment", "extends", "data", "model", "train", "set", "insert", "remove"];

fn syntax_error(file: FileId, text: &str, e: pest::error::Error<Rule>) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    // The offending token: a word, a single character, or the end of the line / file.
    let rest = &text[pos.min(text.len())..];
    let token_len = match rest.chars().next() {
        None => 0,
        Some(c) if c.is_alphanumeric() || c == '_' => rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.')).unwrap_or(rest.len()),
        Some('\n') | Some('\r') => 0,
        Some(c) => c.len_utf8(),
    };
    let found_text = &rest[..token_len];
    let invisible = rest.chars().next().filter(|c| !matches!(c, '\n' | '\r')).and_then(invisible_name);
    let found = if rest.is_empty() {
        "end of file".to_string()
    } else if rest.starts_with(['\n', '\r']) {
        "end of line".to_string()
    } else if let Some(name) = invisible {
        let c = rest.chars().next().unwrap_or(' ');
        format!("the invisible character U+{:04X} ({name})", c as u32)
    } else {
        format!("`{found_text}`")
    };
    // An invisible character gets a label of its own width, so the caret points at it.
    let token_len = if invisible.is_some() { rest.chars().next().map_or(0, char::len_utf8) } else { token_len };
    let mut expected: Vec<&str> = vec![];
    if let ErrorVariant::ParsingError { positives, .. } = &e.variant {
        for r in positives {
            if let Some(d) = describe(*r) {
                if !expected.contains(&d) {
                    expected.push(d);
                }
            }
        }
    }
    let value_words = ["a list `[…]`", "a size like 5x5", "a number", "`true` or `false`", "a quoted string", "a name"];
    if expected.iter().filter(|w| value_words.contains(w)).count() >= 4 {
        expected.retain(|w| !value_words.contains(w));
        expected.insert(0, "a value (number, size like 5x5, name, string or list)");
    }
    if rest.starts_with('"') && expected.contains(&"a quoted string") {
        return Diagnostic::error("E0002", "unterminated string")
            .primary(Span::new(file, pos..pos + rest.find('\n').unwrap_or(rest.len())), "this string is not closed")
            .help("close it with `\"` on the same line");
    }
    let top_level = expected.iter().any(|w| w.starts_with("a section"));
    if top_level {
        expected = vec!["a section (`data`, `model`, `train`)", "`experiment`, `extends`", "an edit (`set`, `insert`, `remove`)"];
    }
    let expected_words = match expected.len() {
        0 => "end of line".to_string(),
        1 => expected[0].to_string(),
        n => format!("{} or {}", expected[..n - 1].join(", "), expected[n - 1]),
    };
    let span = Span::new(file, pos..pos + token_len);
    if let (Some(name), Some(c)) = (invisible, rest.chars().next()) {
        // The caret under a zero-width character has no width: the label says what is there.
        return Diagnostic::error("E0001", format!("syntax error: expected {expected_words}, found {found}"))
            .primary(span, format!("an invisible U+{:04X} is here", c as u32))
            .help(format!("delete the {name}: it cannot be seen in most editors (copied text often carries one)"));
    }
    let mut d =
        Diagnostic::error("E0001", format!("syntax error: expected {expected_words}, found {found}")).primary(span, format!("expected {expected_words}"));
    if top_level && token_len > 0 {
        if let Some(h) = did_you_mean(found_text, TOP_LEVEL_WORDS.iter().copied()) {
            d = d.help(h);
        }
    } else if found_text == "=" {
        d = d.help("settings are written `name value` (e.g. `lr 0.01`); `key=value` is for named arguments");
    } else if token_len == 0 && rest.is_empty() {
        d = d.help("a `{` may be missing its closing `}`");
    }
    d
}
