//! Reading a command's arguments with diagnostics.
//!
//! [`Args`] wraps one [`Command`]: getters take positional values in order and keyword
//! values by key, check their types and ranges, and record a diagnostic for every problem
//! instead of stopping. [`Args::finish`] reports what nobody asked for (unknown keys, with a
//! "did you mean"; extra positional values). All errors of a command come out together.

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::syntax::ast::{Arg, Command, Value, ValueKind};

pub struct Args<'a> {
    pub cmd: &'a Command,
    /// What the command is, for messages: "layer `conv1` (conv)", "setting `lr`".
    pub what: String,
    positional: Vec<&'a Value>,
    next_positional: usize,
    used_keys: Vec<bool>,
    known_keys: Vec<&'static str>,
    pub diags: Vec<Diagnostic>,
}

impl<'a> Args<'a> {
    pub fn new(cmd: &'a Command, what: impl Into<String>) -> Args<'a> {
        let positional = cmd.positionals().collect();
        let used_keys = vec![false; cmd.args.len()];
        Args { cmd, what: what.into(), positional, next_positional: 0, used_keys, known_keys: vec![], diags: vec![] }
    }

    pub fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    pub fn has_errors(&self) -> bool {
        !self.diags.is_empty()
    }

    /// The next positional value, if any.
    pub fn next_positional(&mut self) -> Option<&'a Value> {
        let v = self.positional.get(self.next_positional).copied();
        if v.is_some() {
            self.next_positional += 1;
        }
        v
    }

    pub fn remaining_positionals(&mut self) -> Vec<&'a Value> {
        let rest = self.positional[self.next_positional..].to_vec();
        self.next_positional = self.positional.len();
        rest
    }

    /// A required positional value described as `name` ("out channels").
    pub fn required(&mut self, name: &str, example: &str) -> Option<&'a Value> {
        let v = self.next_positional();
        if v.is_none() {
            let d = Diagnostic::error("E0103", format!("{} is missing its {name}", self.what))
                .primary(self.cmd.span, format!("{name} missing"))
                .help(format!("write it like `{example}`"));
            self.error(d);
        }
        v
    }

    /// Looks up `key=value` (also marks it as known, for "did you mean").
    pub fn keyword(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known_keys.push(key);
        let mut found = None;
        for (i, a) in self.cmd.args.iter().enumerate() {
            if let Arg::Keyword { key: k, value } = a {
                if k.name == key {
                    if found.is_some() {
                        let d = Diagnostic::error("E0105", format!("`{key}` is given twice")).primary(k.span, "given again here").help("remove one of them");
                        self.diags.push(d);
                    }
                    self.used_keys[i] = true;
                    found = Some(value);
                }
            }
        }
        found
    }

    /// Declares a key as known without reading it (read elsewhere).
    pub fn known(&mut self, key: &'static str) {
        self.known_keys.push(key);
        for (i, a) in self.cmd.args.iter().enumerate() {
            if let Arg::Keyword { key: k, .. } = a {
                if k.name == key {
                    self.used_keys[i] = true;
                }
            }
        }
    }

    pub fn type_error(&mut self, v: &Value, expected: &str) {
        let d = Diagnostic::error("E0104", format!("{} expects {expected} here, found {}", self.what, v.kind.describe()))
            .primary(v.span, format!("expected {expected}"));
        self.error(d);
    }

    pub fn range_error(&mut self, v: &Value, msg: &str) {
        let d = Diagnostic::error("E0106", format!("{}: {msg}", self.what)).primary(v.span, msg.to_string());
        self.error(d);
    }

    // ---- typed conversions -------------------------------------------------------------

    pub fn as_uint(&mut self, v: &Value, min: u64) -> Option<u64> {
        match &v.kind {
            ValueKind::Number { value, integer: true, .. } if *value >= 0.0 && *value <= u32::MAX as f64 => {
                let n = *value as u64;
                if n < min {
                    self.range_error(v, &format!("must be at least {min}"));
                    return None;
                }
                Some(n)
            }
            ValueKind::Number { value, integer: true, .. } => {
                if *value < 0.0 {
                    self.range_error(v, &format!("must be at least {min}"));
                } else {
                    self.range_error(v, &format!("must be at most {}", u32::MAX));
                }
                None
            }
            _ => {
                self.type_error(v, if min > 0 { "a positive whole number" } else { "a whole number" });
                None
            }
        }
    }

    /// A number. Every number ends up in 32-bit floating point, so one beyond ±3.4e38 (or an
    /// infinity or NaN written as `1e999`, `1/0`, `0/0`) is out of range, not of the wrong type.
    pub fn as_f64(&mut self, v: &Value) -> Option<f64> {
        match &v.kind {
            ValueKind::Number { value, .. } if value.is_finite() && value.abs() <= f32::MAX as f64 => Some(*value),
            ValueKind::Number { text, value, .. } => {
                let why = if value.is_nan() {
                    format!("`{text}` is not a number (0/0 is undefined)")
                } else if text.contains('/') && value.is_infinite() {
                    format!("`{text}` divides by zero")
                } else {
                    format!("`{text}` is too large: numbers must lie within ±3.4e38 (expc computes in 32-bit floats)")
                };
                self.range_error(v, &why);
                None
            }
            _ => {
                self.type_error(v, "a number");
                None
            }
        }
    }

    pub fn as_bool(&mut self, v: &Value) -> Option<bool> {
        match &v.kind {
            ValueKind::Bool(b) => Some(*b),
            _ => {
                self.type_error(v, "`true` or `false`");
                None
            }
        }
    }

    /// A pair like `5x5` or a single whole number `5` meaning `5x5`.
    pub fn as_pair(&mut self, v: &Value, min: u64) -> Option<[u64; 2]> {
        match &v.kind {
            ValueKind::Dims(d) if d.len() == 2 => {
                if d.iter().any(|&x| x < min || x > u32::MAX as u64) {
                    self.range_error(v, &format!("each size must be at least {min}"));
                    return None;
                }
                Some([d[0], d[1]])
            }
            ValueKind::Number { integer: true, .. } => self.as_uint(v, min).map(|n| [n, n]),
            _ => {
                self.type_error(v, "a size like 3 or 3x3");
                None
            }
        }
    }

    /// A shape like `3x32x32` or a single whole number.
    pub fn as_shape(&mut self, v: &Value) -> Option<Vec<u64>> {
        match &v.kind {
            ValueKind::Dims(d) if d.iter().all(|&x| x >= 1 && x <= u32::MAX as u64) => Some(d.clone()),
            ValueKind::Dims(d) => {
                let bad = d.iter().position(|&x| x == 0 || x > u32::MAX as u64).unwrap_or(0);
                let msg = if d[bad] == 0 {
                    format!("dimension {} of the shape is 0; every dimension must be at least 1", bad + 1)
                } else {
                    format!("dimension {} of the shape is larger than {}", bad + 1, u32::MAX)
                };
                self.range_error(v, &msg);
                None
            }
            ValueKind::Number { integer: true, value, .. } if *value >= 1.0 && *value <= u32::MAX as f64 => Some(vec![*value as u64]),
            ValueKind::Number { integer: true, .. } => {
                self.range_error(v, &format!("a shape's dimensions must lie in 1..={}", u32::MAX));
                None
            }
            _ => {
                self.type_error(v, "a shape like 3x32x32");
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub fn as_word(&mut self, v: &Value, words: &[&'static str]) -> Option<&'static str> {
        match &v.kind {
            ValueKind::Ident(s) => {
                if let Some(w) = words.iter().find(|w| **w == s) {
                    return Some(w);
                }
                let d = Diagnostic::error("E0107", format!("{}: unknown value `{s}`", self.what))
                    .primary(v.span, format!("expected one of {}", words.join(", ")))
                    .with_help(did_you_mean(s, words.iter().copied()));
                self.error(d);
                None
            }
            _ => {
                self.type_error(v, &format!("one of {}", words.join(", ")));
                None
            }
        }
    }

    // ---- keyword helpers -----------------------------------------------------------------

    pub fn kw_uint(&mut self, key: &'static str, min: u64) -> Option<u64> {
        let v = self.keyword(key)?;
        self.as_uint(v, min)
    }
    pub fn kw_f64(&mut self, key: &'static str) -> Option<f64> {
        let v = self.keyword(key)?;
        self.as_f64(v)
    }
    pub fn kw_bool(&mut self, key: &'static str) -> Option<bool> {
        let v = self.keyword(key)?;
        self.as_bool(v)
    }
    pub fn kw_pair(&mut self, key: &'static str, min: u64) -> Option<[u64; 2]> {
        let v = self.keyword(key)?;
        self.as_pair(v, min)
    }
    pub fn kw_word(&mut self, key: &'static str, words: &[&'static str]) -> Option<&'static str> {
        let v = self.keyword(key)?;
        self.as_word(v, words)
    }
    /// A number in `[lo, hi]` (or `[lo, hi)` when `hi_open`).
    pub fn kw_f64_in(&mut self, key: &'static str, lo: f64, hi: f64, hi_open: bool) -> Option<f64> {
        let v = self.keyword(key)?;
        let x = self.as_f64(v)?;
        if x < lo || x > hi || (hi_open && x == hi) {
            let close = if hi_open { ")" } else { "]" };
            self.range_error(v, &format!("`{key}` must lie in [{lo}, {hi}{close}"));
            return None;
        }
        Some(x)
    }

    /// Reports unknown keywords and unused positional values. Returns the collected diagnostics.
    pub fn finish(mut self) -> Vec<Diagnostic> {
        for (i, a) in self.cmd.args.iter().enumerate() {
            if let Arg::Keyword { key, .. } = a {
                if !self.used_keys[i] {
                    let mut known = self.known_keys.clone();
                    known.sort();
                    known.dedup();
                    let list = if known.is_empty() { "it takes no named arguments".to_string() } else { format!("known: {}", known.join(", ")) };
                    let d = Diagnostic::error("E0102", format!("{}: unknown argument `{}`", self.what, key.name))
                        .primary(key.span, "unknown argument")
                        .note(list)
                        .with_help(did_you_mean(&key.name, known.iter().copied()));
                    self.diags.push(d);
                }
            }
        }
        if self.next_positional < self.positional.len() {
            let extra = &self.positional[self.next_positional..];
            let span = extra[0].span.join(extra[extra.len() - 1].span);
            let d = Diagnostic::error("E0108", format!("{}: {} unexpected value{}", self.what, extra.len(), if extra.len() > 1 { "s" } else { "" }))
                .primary(span, "not expected here")
                .help("named arguments are written `key=value`");
            self.diags.push(d);
        }
        self.diags
    }
}
