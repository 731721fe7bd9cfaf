//! Machine settings: what does not belong in a portable spec.
//!
//! Dataset roots, the output folder, the thread count and the backend live in `expc.toml`.
//! Precedence, highest first:
//! 1. command-line flags (`--out`, `--threads`, `--backend`, `--data NAME=PATH`);
//! 2. environment variables (`EXPC_OUT`, `EXPC_THREADS`, `EXPC_BACKEND`, `EXPC_DATA_<NAME>`);
//! 3. `expc.toml` next to the spec file;
//! 4. `expc.toml` in the working directory;
//! 5. defaults (`runs/`, all cores, `cpu`, no dataset roots).
//!
//! Relative paths in an `expc.toml` are relative to the folder that holds it. Unknown keys and
//! wrongly typed values are errors with the file, line and column.

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::source::{SourceMap, Span};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    data: BTreeMap<String, PathBuf>,
    #[serde(default)]
    run: RunTable,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunTable {
    out: Option<PathBuf>,
    threads: Option<usize>,
    backend: Option<Backend>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Cpu,
    Cuda,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Backend, String> {
        match s {
            "cpu" => Ok(Backend::Cpu),
            "cuda" => Ok(Backend::Cuda),
            _ => Err(format!("unknown backend `{s}` (expected cpu or cuda)")),
        }
    }
}

/// Where a setting's value came from, for `expc config` and error messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(String),
    Flag,
}

#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Dataset roots by dataset name (`cifar10`, `mnist`) or image-folder key.
    pub data: BTreeMap<String, (PathBuf, Origin)>,
    pub out: (PathBuf, Origin),
    pub threads: (usize, Origin),
    pub backend: (Backend, Origin),
}

/// Values given on the command line.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub out: Option<PathBuf>,
    pub threads: Option<usize>,
    pub backend: Option<Backend>,
    pub data: Vec<(String, PathBuf)>,
}

const DATA_KEYS_HINT: &str = "[data] maps dataset names to folders, e.g. `mnist = \"data/mnist-small\"`";

impl Settings {
    /// Loads settings for a spec at `spec_path` (may be `None`), with `cwd` the working
    /// directory and `env` a lookup of environment variables.
    pub fn load(
        spec_path: Option<&Path>,
        cwd: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        flags: &Overrides,
        sources: &mut SourceMap,
    ) -> Result<Settings, Vec<Diagnostic>> {
        let default_threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let mut s = Settings {
            data: BTreeMap::new(),
            out: (PathBuf::from("runs"), Origin::Default),
            threads: (default_threads, Origin::Default),
            backend: (Backend::Cpu, Origin::Default),
        };
        let mut diags = vec![];
        // Lowest precedence first: cwd, then next to the spec.
        let mut files = vec![cwd.join("expc.toml")];
        if let Some(dir) = spec_path.and_then(Path::parent) {
            let p = if dir.as_os_str().is_empty() { cwd.join("expc.toml") } else { dir.join("expc.toml") };
            if canonical(&p) != canonical(&files[0]) {
                files.push(p);
            }
        }
        for path in files {
            let text = match crate::source::read_text_file(&path, crate::source::MAX_SOURCE_BYTES) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    diags.push(
                        Diagnostic::error("E0030", format!("cannot read `{}`: {e}", path.display())).help("make expc.toml a regular text file, or remove it"),
                    );
                    continue;
                }
            };
            let file = sources.add(path.display().to_string(), text.clone());
            let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            match toml::from_str::<FileConfig>(&text) {
                Ok(fc) => {
                    for (k, v) in fc.data {
                        s.data.insert(k, (base.join(v), Origin::File(path.clone())));
                    }
                    if let Some(o) = fc.run.out {
                        s.out = (base.join(o), Origin::File(path.clone()));
                    }
                    if let Some(t) = fc.run.threads {
                        match thread_count(t) {
                            Ok(n) => s.threads = (n, Origin::File(path.clone())),
                            Err(why) => diags
                                .push(Diagnostic::error("E0030", format!("bad setting in {}: `threads = {t}`: {why}", path.display())).help(threads_help())),
                        }
                    }
                    if let Some(b) = fc.run.backend {
                        s.backend = (b, Origin::File(path.clone()));
                    }
                }
                Err(e) => {
                    let span = e.span().map(|r| Span::new(file, r)).unwrap_or(Span::new(file, 0..0));
                    let msg = e.message().to_string();
                    let mut d = Diagnostic::error("E0030", format!("bad setting in {}: {msg}", path.display()))
                        .primary(span, "here")
                        .note("expc.toml has two tables: [data] (dataset roots) and [run] (out, threads, backend)");
                    if let Some(word) = msg.split('`').nth(1) {
                        d = d.with_help(did_you_mean(word, ["data", "run", "out", "threads", "backend"]));
                    }
                    if msg.contains("data") {
                        d = d.note(DATA_KEYS_HINT);
                    }
                    diags.push(d);
                }
            }
        }
        // Environment.
        if let Some(v) = env("EXPC_OUT") {
            s.out = (PathBuf::from(v), Origin::Env("EXPC_OUT".into()));
        }
        if let Some(v) = env("EXPC_THREADS") {
            match v.parse::<usize>().map_err(|_| "not a whole number".to_string()).and_then(thread_count) {
                Ok(n) => s.threads = (n, Origin::Env("EXPC_THREADS".into())),
                Err(why) => diags.push(Diagnostic::error("E0031", format!("EXPC_THREADS=`{v}`: {why}")).help("unset it or set e.g. EXPC_THREADS=2")),
            }
        }
        if let Some(v) = env("EXPC_BACKEND") {
            match v.parse::<Backend>() {
                Ok(b) => s.backend = (b, Origin::Env("EXPC_BACKEND".into())),
                Err(e) => diags.push(Diagnostic::error("E0031", format!("EXPC_BACKEND: {e}"))),
            }
        }
        for name in ["cifar10", "mnist"] {
            let var = format!("EXPC_DATA_{}", name.to_uppercase());
            if let Some(v) = env(&var) {
                s.data.insert(name.to_string(), (PathBuf::from(v), Origin::Env(var)));
            }
        }
        // Flags.
        if let Some(o) = &flags.out {
            s.out = (o.clone(), Origin::Flag);
        }
        if let Some(t) = flags.threads {
            match thread_count(t) {
                Ok(n) => s.threads = (n, Origin::Flag),
                Err(why) => diags.push(Diagnostic::error("E0031", format!("--threads {t}: {why}")).help(threads_help())),
            }
        }
        if let Some(b) = flags.backend {
            s.backend = (b, Origin::Flag);
        }
        for (k, v) in &flags.data {
            s.data.insert(k.clone(), (v.clone(), Origin::Flag));
        }
        if diags.is_empty() {
            Ok(s)
        } else {
            Err(diags)
        }
    }

    /// The root folder for a dataset name or image-folder key, if configured.
    pub fn data_root(&self, name: &str) -> Option<&Path> {
        self.data.get(name).map(|(p, _)| p.as_path())
    }
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The most training threads expc accepts from a flag, `EXPC_THREADS` or `expc.toml`.
pub const MAX_THREADS: usize = 1024;

fn threads_help() -> String {
    format!("give a thread count from 1 to {MAX_THREADS}, e.g. `threads = 2` (the default is every core)")
}

/// One rule for a thread count wherever it comes from: 1 to [`MAX_THREADS`].
fn thread_count(n: usize) -> Result<usize, String> {
    match n {
        0 => Err("a run needs at least one thread".into()),
        n if n > MAX_THREADS => Err(format!("more than {MAX_THREADS} threads")),
        n => Ok(n),
    }
}
