//! The syntax tree of one `.exp` file, exactly as written.
//!
//! The tree is deliberately generic: a section is a list of [`Command`]s (`label: head args`),
//! and nothing here knows which heads or keys exist — the resolver (`crate::spec`) gives the
//! commands their meaning. Every node carries the [`Span`] of the text it came from, so any
//! later stage can point back at the line. Numbers keep their source text so that `expc fmt`
//! prints them as the user wrote them.

use crate::source::Span;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct File {
    pub items: Vec<Item>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Item {
    Experiment(Ident),
    Extends(Str),
    Section(Section),
    Set(SetEdit),
    Insert(InsertEdit),
    Remove(RemoveEdit),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionKind {
    Data,
    Model,
    Train,
}

impl SectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SectionKind::Data => "data",
            SectionKind::Model => "model",
            SectionKind::Train => "train",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Section {
    pub kind: SectionKind,
    pub kind_span: Span,
    pub body: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stmt {
    Command(Command),
    Repeat(Repeat),
}

/// `repeat N { … }`: the body applied N times in sequence.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Repeat {
    pub count: u64,
    pub count_span: Span,
    pub body: Vec<Stmt>,
    pub span: Span,
}

/// One line: `[label:] head arg arg key=value …`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Command {
    pub label: Option<Ident>,
    pub head: Ident,
    pub args: Vec<Arg>,
    pub span: Span,
}

impl Command {
    pub fn positionals(&self) -> impl Iterator<Item = &Value> {
        self.args.iter().filter_map(|a| match a {
            Arg::Positional(v) => Some(v),
            Arg::Keyword { .. } => None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arg {
    Positional(Value),
    Keyword { key: Ident, value: Value },
}

impl Arg {
    pub fn span(&self) -> Span {
        match self {
            Arg::Positional(v) => v.span,
            Arg::Keyword { key, value } => key.span.join(value.span),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Str {
    pub value: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    /// A number as written (`256`, `0.9`, `1e-4`, `1/255`) and its value.
    Number {
        text: String,
        value: f64,
        integer: bool,
    },
    /// `5x5`, `3x32x32`.
    Dims(Vec<u64>),
    Bool(bool),
    Str(String),
    Ident(String),
    List(Vec<Value>),
    /// `gaussian(0.01)`, `msra(fan_out)`.
    Call {
        name: Ident,
        args: Vec<Arg>,
    },
}

impl ValueKind {
    /// What kind of value this is, in words, for "expected …, found …" messages.
    pub fn describe(&self) -> &'static str {
        match self {
            ValueKind::Number { integer: true, .. } => "an integer",
            ValueKind::Number { .. } => "a number",
            ValueKind::Dims(_) => "a size like 5x5",
            ValueKind::Bool(_) => "a boolean",
            ValueKind::Str(_) => "a string",
            ValueKind::Ident(_) => "a name",
            ValueKind::List(_) => "a list",
            ValueKind::Call { .. } => "a call like gaussian(0.01)",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    After,
    Before,
}

/// `set PATTERN key=value …`: override arguments of every model layer the pattern matches.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SetEdit {
    pub pattern: Ident,
    pub args: Vec<Arg>,
    pub span: Span,
}

/// `insert after|before PATTERN: command`: add a layer next to every match.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InsertEdit {
    pub position: Position,
    pub pattern: Ident,
    pub command: Command,
    pub span: Span,
}

/// `remove PATTERN`: drop every matching layer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RemoveEdit {
    pub pattern: Ident,
    pub span: Span,
}
