//! Argument parsing (clap derive) and the commands. Everything printed is printed here.

mod report;
mod run;
mod torch;

use clap::{Parser, Subcommand, ValueEnum};
use expc::diagnostic::{has_errors, render, Diagnostic};
use expc::source::SourceMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "expc", version, about = "A compiler for declarative deep-learning experiments")]
struct Cli {
    /// When to colour diagnostics.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    color: ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once; `run`'s flags are the largest
enum Command {
    /// Check experiment files: syntax, settings, variants. Exit 1 if any has an error.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Rewrite files in the canonical layout (or, with --check, list those that differ).
    Fmt {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Do not write; exit 1 if a file is not formatted.
        #[arg(long)]
        check: bool,
    },
    /// Check shapes and, with --report, print what the experiment costs: parameters, forward and
    /// backward MACs, memory, gradient paths, recurrent costs, cross-device traffic.
    Compile {
        file: PathBuf,
        /// Print the static report.
        #[arg(long)]
        report: bool,
        #[arg(long, value_enum, default_value_t = report::ReportFormat::Text)]
        format: report::ReportFormat,
        /// Batch size for per-step totals and memory (default: the spec's training batch).
        #[arg(long)]
        batch: Option<u64>,
        /// Write the report to this file instead of standard output (`--format html`: one
        /// self-contained page).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Threads of the native engine's memory estimate (default: what `expc run` uses).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// A run folder's HTML report: the static report plus curves, first-layer filters, summary
    /// and the resolved spec, in one self-contained page.
    Report {
        /// A folder made by `expc run` (it holds run.json and metrics.csv).
        dir: PathBuf,
        /// Where to write the page.
        #[arg(short, long, default_value = "report.html")]
        output: PathBuf,
        /// Batch size for per-step totals and memory (default: the spec's training batch).
        #[arg(long)]
        batch: Option<u64>,
    },
    /// Check the engine's gradients against central finite differences in f64, for every
    /// parameter tensor; exit 1 if any relative error exceeds --tolerance.
    Gradcheck {
        file: PathBuf,
        #[arg(long, default_value_t = 2)]
        batch: usize,
        #[arg(long, default_value_t = 1e-5)]
        tolerance: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Train an experiment: a run folder with metrics, checkpoints, plots and a summary.
    Run(run::RunArgs),
    /// Continue a run from its last checkpoint (after a crash, `kill -9` or Ctrl-C).
    Resume(run::ResumeArgs),
    /// Evaluate a trained model over a whole split: loss, top-1 and top-k accuracy, per-class
    /// accuracy, a confusion matrix (CSV and PNG).
    Eval(run::EvalArgs),
    /// Classify image files with a trained model: the top classes with their probabilities.
    Predict(run::PredictArgs),
    /// Compare finished (or running) runs: a table of best accuracies and one overlay figure.
    Compare {
        /// Run folders (each holds a metrics.csv).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where to write the figure (PNG and SVG next to each other); default: compare.png in the working directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the table as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the experiment as source for another framework (docs/backends.md).
    Export {
        #[command(subcommand)]
        target: ExportTarget,
    },
    /// The language server for editors (LSP over stdin/stdout): diagnostics as you type, hover
    /// with shapes and costs, go to definition, references, completion, formatting, outline.
    Lsp,
    /// Print an intermediate representation.
    Dump {
        #[command(subcommand)]
        what: DumpCommand,
    },
}

#[derive(Subcommand)]
enum ExportTarget {
    /// PyTorch: model.py (checkpoint-compatible nn.Module) and train.py (data, solver, schedule, metrics).
    Torch {
        file: PathBuf,
        /// The folder to write into (created if needed).
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
    },
    /// ONNX (opset 17): the inference graph of a trained run with its weights (docs/backends.md).
    Onnx(run::OnnxArgs),
}

#[derive(Subcommand)]
enum DumpCommand {
    /// The syntax tree of a file, as written (with byte spans).
    Ast {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Yaml)]
        format: Format,
    },
    /// The checked graph: nodes with op, shape and parameters (DOT renders with graphviz).
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = report::GraphFormat::Dot)]
        format: report::GraphFormat,
        /// Unroll recurrent layers over T steps (shared parameters marked).
        #[arg(long, value_name = "T")]
        unroll: Option<u64>,
    },
    /// The resolved experiment: base files applied, defaults filled in, repeats expanded.
    Spec {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Yaml)]
        format: Format,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Yaml,
    Json,
}

pub struct Out {
    color: bool,
}

impl Out {
    /// Prints diagnostics to stderr; returns whether any was an error.
    pub fn diagnostics(&self, diags: &[Diagnostic], sources: &SourceMap) -> bool {
        if !diags.is_empty() {
            eprint!("{}", render(diags, sources, self.color));
        }
        has_errors(diags)
    }
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    let color = match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let out = Out { color };
    match cli.command {
        Command::Check { files } => check(&out, &files),
        Command::Fmt { files, check } => fmt(&out, &files, check),
        Command::Compile { file, report: r, format, batch, output, threads } => report::compile(&out, &file, r, format, batch, output.as_deref(), threads),
        Command::Report { dir, output, batch } => report::run_report(&out, &dir, &output, batch),
        Command::Gradcheck { file, batch, tolerance, seed } => report::gradcheck(&out, &file, batch, tolerance, seed),
        Command::Run(args) => run::run(&out, args),
        Command::Resume(args) => run::resume(&out, args),
        Command::Eval(args) => run::eval(&out, args),
        Command::Predict(args) => run::predict(&out, args),
        Command::Compare { dirs, out: fig, json } => run::compare(&dirs, fig, json),
        Command::Export { target: ExportTarget::Torch { file, out: dir } } => torch::export(&out, &file, &dir),
        Command::Export { target: ExportTarget::Onnx(args) } => run::export_onnx(&out, args),
        Command::Lsp => lsp(),
        Command::Dump { what } => match what {
            DumpCommand::Ast { file, format } => dump_ast(&out, &file, format),
            DumpCommand::Spec { file, format } => dump_spec(&out, &file, format),
            DumpCommand::Graph { file, format, unroll } => report::dump_graph(&out, &file, format, unroll),
        },
    }
}

fn lsp() -> i32 {
    let (conn, io) = lsp_server::Connection::stdio();
    let served = expc::lsp::server::serve(&conn);
    drop(conn);
    let joined = io.join();
    match (served, joined) {
        (Ok(()), Ok(())) => 0,
        (Err(e), _) => {
            eprintln!("error: language server: {e}");
            2
        }
        (_, Err(e)) => {
            eprintln!("error: language server: {e}");
            2
        }
    }
}

pub fn read(p: &Path) -> std::io::Result<String> {
    expc::source::read_text_file(p, expc::source::MAX_SOURCE_BYTES)
}

pub fn print_value<T: serde::Serialize>(v: &T, format: Format) -> i32 {
    let text = match format {
        Format::Json => serde_json::to_string_pretty(v).map(|s| s + "\n").map_err(|e| e.to_string()),
        Format::Yaml => serde_yaml::to_string(v).map_err(|e| e.to_string()),
    };
    match text {
        Ok(t) => {
            print!("{t}");
            0
        }
        Err(e) => {
            eprintln!("error: cannot serialize: {e}");
            2
        }
    }
}

fn check(out: &Out, files: &[PathBuf]) -> i32 {
    let mut failed = 0;
    for f in files {
        let c = expc::compile::compile_path(f, &read);
        if out.diagnostics(&c.diagnostics, &c.sources) || !c.ok() {
            failed += 1;
        } else if let Some(e) = &c.experiment {
            println!("ok: {} ({}, {} layers)", f.display(), e.name, e.model.layers.len());
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} file{} failed", files.len(), if files.len() == 1 { "" } else { "s" });
        1
    } else {
        0
    }
}

fn fmt(out: &Out, files: &[PathBuf], check_only: bool) -> i32 {
    let mut status = 0;
    for f in files {
        let text = match read(f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error[E0010]: cannot read `{}`: {e}", f.display());
                status = 1;
                continue;
            }
        };
        let mut sources = SourceMap::new();
        let id = sources.add(f.display().to_string(), text.clone());
        let ast = match expc::syntax::parse(id, &text) {
            Ok(a) => a,
            Err(d) => {
                out.diagnostics(&[d], &sources);
                status = 1;
                continue;
            }
        };
        let formatted = match expc::syntax::format_checked(&text, &ast) {
            Ok(f) => f,
            Err(why) => {
                eprintln!(
                    "error[E0003]: `expc fmt` would break `{}` ({why}); the file is left unchanged\n  = help: this is a bug in expc; please report it with the file",
                    f.display()
                );
                status = 2;
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        if check_only {
            println!("would reformat {}", f.display());
            status = 1;
        } else if let Err(e) = write_atomic(f, &formatted) {
            eprintln!("error: cannot write `{}`: {e}", f.display());
            status = 1;
        } else {
            println!("formatted {}", f.display());
        }
    }
    status
}

/// Writes through a temporary file and a rename, so a crash never leaves half a file.
/// (`run_folder::write_atomic`: devices and pipes are written directly.)
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    expc::run::run_folder::write_atomic(path, text.as_bytes()).map_err(|e| std::io::Error::other(e.message))
}

fn dump_ast(out: &Out, file: &Path, format: Format) -> i32 {
    let text = match read(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error[E0010]: cannot read `{}`: {e}", file.display());
            return 1;
        }
    };
    let mut sources = SourceMap::new();
    let id = sources.add(file.display().to_string(), text.clone());
    match expc::syntax::parse(id, &text) {
        Ok(ast) => print_value(&ast, format),
        Err(d) => {
            out.diagnostics(&[d], &sources);
            1
        }
    }
}

fn dump_spec(out: &Out, file: &Path, format: Format) -> i32 {
    let r = expc::spec::resolve_path(file, &read);
    if out.diagnostics(&r.diagnostics, &r.sources) {
        return 1;
    }
    match &r.experiment {
        Some(e) => print_value(e, format),
        None => 1,
    }
}
