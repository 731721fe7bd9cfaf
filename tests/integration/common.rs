//! Helpers shared by the stage modules.

use expc::diagnostic::render;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Runs `$body` with insta writing snapshots to the top-level `snapshots/` folder.
#[macro_export]
macro_rules! with_snapshots {
    ($body:block) => {{
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots"));
        settings.set_prepend_module_to_snapshot(false);
        settings.bind(|| $body)
    }};
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.exp` file under `experiments/`, sorted, relative to the repository root.
pub fn experiment_files() -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![repo().join("experiments")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("experiments/ exists") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "exp") {
                out.push(p.strip_prefix(repo()).expect("under repo").to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Resolves `main.exp` from an in-memory set of files and renders every diagnostic
/// (no colour), as `expc check` would print it.
pub fn diagnostics_for(files: &[(&str, &str)]) -> String {
    let map: HashMap<PathBuf, String> = files.iter().map(|(n, t)| (PathBuf::from(n), t.to_string())).collect();
    let read = |p: &Path| map.get(p).cloned().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory"));
    let r = expc::spec::resolve_path(Path::new(files[0].0), &read);
    render(&r.diagnostics, &r.sources, false)
}

/// A valid experiment with `model` replaced by the given body lines.
pub fn with_model(body: &str) -> String {
    format!("experiment t\ndata {{\n  dataset cifar10\n}}\nmodel {{\n{body}\n}}\ntrain {{\n  lr 0.01\n  iterations 10\n}}\n")
}

/// A fresh folder under the system's temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("expc-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        TempDir(d)
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Tokens of the spec language and some hostile ones, for the fuzzers of the parser, the resolver,
/// `fmt` and the language server (token soup, mutations of real files).
pub const SPEC_TOKENS: &[&str] = &[
    "experiment",
    "extends",
    "data",
    "model",
    "train",
    "set",
    "insert",
    "after",
    "remove",
    "repeat",
    "{",
    "}",
    ":",
    "=",
    "(",
    ")",
    "[",
    "]",
    ",",
    ";",
    "\n",
    " ",
    "#c\n",
    "\"s\"",
    "\"a.exp\"",
    "conv",
    "fc",
    "relu",
    "add",
    "in",
    "input",
    "3x32x32",
    "5x5",
    "0",
    "1",
    "-1",
    "1e-4",
    "1/0",
    "0/0",
    "99999999999999999999",
    "true",
    "x",
    "conv*",
    "from",
    "init",
    "gaussian",
    "msra",
    "lr",
    "iterations",
    "dataset",
    "cifar10",
    "batch",
    "policy",
    "multistep",
    "é",
    "\\",
    "\"base.exp\"",
    "2",
    "a",
    "𝕏",
    "\t",
];
