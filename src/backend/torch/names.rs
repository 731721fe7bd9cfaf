//! Python names for the spec's layer names.
//!
//! Layer names may hold dots (`conv1.relu`, `conv1.batchnorm`): a checkpoint tensor
//! `conv1.batchnorm.weight` is the `weight` of the submodule `batchnorm` of the module `conv1`, so
//! model.py nests modules along the dots, exactly as `load_state_dict` expects.

const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif", "else", "except", "finally", "for",
    "from", "global", "if", "import", "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield", "match",
    "case", "type",
];

/// Whether `s` can be written as a Python attribute (`self.s`).
pub fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch == '_' || ch.is_ascii_alphabetic()) && c.all(|ch| ch == '_' || ch.is_ascii_alphanumeric()) && !KEYWORDS.contains(&s)
}

/// A Python string literal (double quotes, escaped).
pub fn py_str(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text for the inside of a `"""` docstring: backslashes and quotes escaped, control characters as
/// `\xNN`, so no value can close the docstring or form an escape Python rejects (`\N`, `\x4`).
pub fn py_docstring_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The expression reaching the module of a dotted layer name from `root` (`self.conv1.batchnorm`,
/// or `getattr(self, "x-y")` for segments that are not identifiers).
pub fn attr_path(root: &str, name: &str) -> String {
    let mut e = root.to_string();
    for seg in name.split('.') {
        if is_identifier(seg) {
            e = format!("{e}.{seg}");
        } else {
            e = format!("getattr({e}, {})", py_str(seg));
        }
    }
    e
}

/// A local variable name for a layer's output: the layer name with dots as underscores, made a valid
/// identifier and distinct from `taken`.
pub fn local(name: &str, taken: &mut Vec<String>) -> String {
    let mut v: String = name.chars().map(|c| if c == '_' || c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if v.is_empty() || v.starts_with(|c: char| c.is_ascii_digit()) {
        v = format!("l_{v}");
    }
    const RESERVED: &[&str] = &[
        "self", "x", "F", "torch", "nn", "np", "data", "sum", "max", "min", "abs", "all", "any", "input", "id", "len", "list", "dict", "map", "filter",
        "range", "round", "pow", "iter", "next", "object", "print", "set", "str", "int", "float", "bool", "tuple", "zip", "slice", "type", "format", "hash",
        "super",
    ];
    while !is_identifier(&v) || RESERVED.contains(&v.as_str()) || taken.contains(&v) {
        v.push('_');
    }
    taken.push(v.clone());
    v
}

/// A float as Python source (always with a decimal point or exponent).
pub fn py_f(x: f64) -> String {
    if x.is_nan() {
        return "float(\"nan\")".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "float(\"inf\")".into() } else { "-float(\"inf\")".into() };
    }
    let s = format!("{x:?}");
    if s.contains('.') || s.contains('e') || s.contains("inf") {
        s
    } else {
        format!("{s}.0")
    }
}
