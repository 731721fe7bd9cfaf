//! The commands around training runs: `run` (with `--set`, `--sweep`, `--emit slurm`), `resume`
//! and `compare`. A progress bar is drawn on a terminal; `--quiet` (or a pipe) prints one line per
//! evaluation instead.

use super::Out;
use clap::{Args, ValueEnum};
use expc::compile;
use expc::config::{Overrides, Settings};
use expc::lower::Plan;
use expc::run::compare as cmp;
use expc::run::data_source::data_facts;
use expc::run::driver::Observer;
use expc::run::run_folder::{self, RunRecord};
use expc::run::{sweep, RunError};
use expc::spec::DataSpec;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct RunArgs {
    /// The experiment file.
    file: PathBuf,
    /// Folder for run folders (default from expc.toml, else runs/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override a setting: train.lr=0.1, data.batch=128, model.fc*.init=msra (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Train for this many iterations instead of the spec's.
    #[arg(long)]
    iterations: Option<u64>,
    /// Run every combination of values: --sweep train.lr=0.1,0.01 (repeatable).
    #[arg(long = "sweep", value_name = "KEY=V1,V2,...")]
    sweeps: Vec<String>,
    /// With --sweep: write a job script for a cluster scheduler instead of running here.
    #[arg(long, value_enum)]
    emit: Option<Emit>,
    /// With --sweep: runs at the same time (default: cores / threads).
    #[arg(long)]
    jobs: Option<usize>,
    /// Training backend: the native engine, or PyTorch through generated code (docs/backends.md).
    #[arg(long, value_enum, default_value_t = RunBackend::Native)]
    backend: RunBackend,
    #[command(flatten)]
    torch: TorchArgs,
    #[command(flatten)]
    machine: MachineArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunBackend {
    /// expc's own CPU engine.
    #[value(alias = "cpu")]
    Native,
    /// Generated PyTorch code, run with python or torchrun.
    Torch,
}

/// Settings of `--backend torch`.
#[derive(Args, Clone)]
pub struct TorchArgs {
    /// With --backend torch: where to train.
    #[arg(long, value_enum, default_value_t = TorchDevice::Cpu)]
    device: TorchDevice,
    /// With --backend torch: processes per node (data parallel, torchrun).
    #[arg(long, default_value_t = 1)]
    nproc: usize,
    /// With --backend torch: nodes (needs --rdzv).
    #[arg(long, default_value_t = 1)]
    nnodes: usize,
    /// With --backend torch: the rendezvous HOST:PORT of a multi-node run.
    #[arg(long, value_name = "HOST:PORT")]
    rdzv: Option<String>,
    /// With --backend torch: devices of the model's placements (`device=` 0, 1, …), e.g. cpu,cpu.
    #[arg(long, value_name = "DEV,DEV")]
    placement: Option<String>,
    /// With --backend torch: torch.compile the model.
    #[arg(long)]
    compile: bool,
    /// With --backend torch: autocast to bf16 or fp16 (CUDA).
    #[arg(long, value_name = "bf16|fp16")]
    amp: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TorchDevice {
    Cpu,
    Cuda,
}

impl TorchArgs {
    fn launch(&self, threads: usize) -> expc::backend::torch::runner::Launch {
        use expc::backend::torch::runner::{Device, Launch};
        Launch {
            device: if self.device == TorchDevice::Cuda { Device::Cuda } else { Device::Cpu },
            nproc: self.nproc,
            nnodes: self.nnodes,
            rdzv: self.rdzv.clone(),
            compile: self.compile,
            amp: self.amp.clone(),
            placement: self.placement.clone(),
            threads,
        }
    }
}

#[derive(Args)]
pub struct ResumeArgs {
    /// The run folder to continue.
    dir: PathBuf,
    #[command(flatten)]
    machine: MachineArgs,
}

#[derive(Args)]
pub struct EvalArgs {
    /// A run folder (its best.safetensors, else its newest checkpoint) or a checkpoint file in one.
    model: PathBuf,
    /// The split to evaluate.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    split: SplitArg,
    /// k of the top-k accuracy (default: the spec's `accuracy top=`, else 5).
    #[arg(long)]
    top: Option<usize>,
    /// Folder for eval.json, confusion.csv and confusion.png (default: RUN/eval-SPLIT-CHECKPOINT/).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    machine: MachineArgs,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SplitArg {
    Test,
    Validation,
    Train,
}

#[derive(Args)]
pub struct PredictArgs {
    /// A run folder or a checkpoint file in one.
    model: PathBuf,
    /// Image files (PNG or JPEG), resized to the model's input when they differ.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    machine: MachineArgs,
}

#[derive(Args)]
pub struct OnnxArgs {
    /// A run folder (its best.safetensors, else its newest checkpoint) or a checkpoint file in one.
    model: PathBuf,
    /// The ONNX file to write.
    #[arg(short = 'o', long = "out")]
    out: PathBuf,
    #[command(flatten)]
    machine: MachineArgs,
}

#[derive(Args, Clone)]
pub struct MachineArgs {
    /// Training threads (default from expc.toml / EXPC_THREADS, else all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Dataset root: --data mnist=PATH (repeatable).
    #[arg(long = "data", value_name = "NAME=PATH")]
    data: Vec<String>,
    /// No progress bar: one line per evaluation.
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Emit {
    Slurm,
}

fn fail(e: RunError) -> i32 {
    let d: expc::diagnostic::Diagnostic = e.into();
    eprint!("{}", expc::diagnostic::render(&[d], &expc::source::SourceMap::new(), std::io::stderr().is_terminal()));
    1
}

/// The threads `expc run FILE` would use (`--threads`, else expc.toml / EXPC_THREADS, else all
/// cores).
pub fn threads_setting(out: &Out, spec: &Path, threads: Option<usize>) -> Result<usize, i32> {
    let m = MachineArgs { threads, data: vec![], quiet: true };
    settings(out, Some(spec), &m, None).map(|s| s.threads.0)
}

fn settings(out: &Out, spec: Option<&Path>, m: &MachineArgs, out_dir: Option<PathBuf>) -> Result<Settings, i32> {
    let mut flags = Overrides { out: out_dir, threads: m.threads, ..Default::default() };
    for d in &m.data {
        match d.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => flags.data.push((k.to_string(), PathBuf::from(v))),
            _ => {
                eprintln!("error: cannot read `--data {d}`: write NAME=PATH, e.g. --data mnist=data/mnist-small");
                return Err(1);
            }
        }
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let mut sources = expc::source::SourceMap::new();
    Settings::load(spec, &cwd, &|k| std::env::var(k).ok(), &flags, &mut sources).map_err(|d| {
        out.diagnostics(&d, &sources);
        1
    })
}

/// A progress bar on a terminal, plain lines otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    name: String,
}

impl Progress {
    fn new(name: &str, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            // Hidden until training starts and its length is known (no `0/0` bar while loading).
            let b = ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::hidden());
            b.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b.set_prefix(name.to_string());
            b
        });
        Progress { bar, name: name.to_string() }
    }
    fn println(&self, line: String) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }
}

impl Observer for Progress {
    fn started(&mut self, total: u64, start: u64) {
        if let Some(b) = &self.bar {
            b.set_length(total);
            b.set_position(start);
            b.reset_eta();
            b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            // Redraw (and re-estimate the time left) at least once a second, between log rows too.
            b.enable_steady_tick(std::time::Duration::from_secs(1));
        } else {
            eprintln!("{}: training from iteration {start} to {total}", self.name);
        }
    }
    fn step(&mut self, it: u64, loss: f64, lr: f64, img_per_s: f64) {
        if let Some(b) = &self.bar {
            b.set_position(it);
            b.set_message(format!("loss {loss:.4} lr {lr:.2e} {img_per_s:.0} img/s"));
        }
    }
    fn advanced(&mut self, it: u64) {
        if let Some(b) = &self.bar {
            b.set_position(it);
        }
    }
    fn warning(&mut self, message: &str) {
        self.println(format!("warning: {message}"));
    }
    fn evaluated(&mut self, it: u64, loss: f64, accuracy: f64) {
        self.println(format!("{}: iteration {it}: test loss {loss:.4}, test accuracy {:.2}%", self.name, 100.0 * accuracy));
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

pub fn run(out: &Out, args: RunArgs) -> i32 {
    if args.iterations == Some(0) {
        return fail(
            RunError::new("E0511", "`--iterations 0`: a run needs at least one iteration")
                .help("pass a positive count, e.g. `--iterations 100`, or leave it out to train for the spec's `iterations`"),
        );
    }
    if !args.sweeps.is_empty() {
        return run_sweep(out, args);
    }
    if args.emit.is_some() && args.backend != RunBackend::Torch {
        eprintln!("error: --emit goes with --sweep (a job array of the sweep's runs) or with --backend torch (a multi-node torchrun job)");
        return 1;
    }
    let mut assignments = vec![];
    for s in &args.sets {
        match sweep::parse_assignment(s) {
            Ok(a) => assignments.push(a),
            Err(e) => return fail(e),
        }
    }
    let settings = match settings(out, Some(&args.file), &args.machine, args.out.clone()) {
        Ok(s) => s,
        Err(c) => return c,
    };
    // The file itself, or a generated variant of it for --set and --iterations (so that every
    // default derived from a setting, e.g. `log every` from `iterations`, follows it).
    let (root, root_dir, text) = if assignments.is_empty() && args.iterations.is_none() {
        match read_spec(&args.file) {
            Ok(t) => (args.file.display().to_string(), args.file.parent().map(Path::to_path_buf).unwrap_or_default(), t),
            Err(e) => return fail(e),
        }
    } else {
        let base = expc::spec::resolve_path(&args.file, &super::read);
        let Some(e) = base.experiment else {
            out.diagnostics(&base.diagnostics, &base.sources);
            return 1;
        };
        let abs = std::fs::canonicalize(&args.file).unwrap_or(args.file.clone());
        let name = if assignments.is_empty() { e.name.clone() } else { format!("{}_{}", e.name, sweep::suffix(&assignments)) };
        let mut all = assignments.clone();
        if let Some(n) = args.iterations {
            all.push(sweep::Assignment { key: "train.iterations".into(), value: n.to_string() });
        }
        ("<command line>".to_string(), std::env::current_dir().unwrap_or_default(), sweep::variant_text(&abs, &name, &all))
    };
    // Everything is checked (spec, shapes, the data against the model) and lowered before a
    // run folder exists or a byte of data is read.
    let probe = |d: &DataSpec| data_facts(d, &settings);
    let compilation = compile::finish(expc::spec::resolve_text(&root, &text, &root_dir, &super::read), &probe);
    let (checked, plan) = match check_and_lower(out, compilation) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let exp = &checked.experiment;
    let launch = (args.backend == RunBackend::Torch).then(|| args.torch.launch((settings.threads.0 / (args.torch.nproc.max(1))).max(1)));
    if let Some(l) = &launch {
        if let Err(e) = super::torch::prepare(&checked, l, args.emit.is_some()) {
            return fail(e);
        }
    }
    if launch.is_none() {
        let available = expc::run::engine_model::available_memory();
        if let Err(e) = expc::run::engine_model::check_memory_fits(&plan, exp, settings.threads.0, available) {
            return fail(e);
        }
    }
    let dir = match run_folder::create_run_dir(&settings.out.0, &exp.name) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let record = RunRecord {
        version: run_folder::RECORD_VERSION,
        expc_version: env!("CARGO_PKG_VERSION").to_string(),
        experiment: exp.name.clone(),
        root,
        root_dir,
        sources: checked.sources.files().iter().map(|f| (f.name.clone(), f.text.clone())).collect(),
        assignments: args.sets.clone(),
        iterations: exp.train.iterations,
        threads: settings.threads.0,
        created: run_folder::timestamp_now(),
    };
    if let Err(e) = record.save(&dir) {
        let _ = std::fs::remove_dir_all(&dir);
        return fail(e);
    }
    println!("run folder: {}", dir.display());
    if let (Some(Emit::Slurm), Some(l)) = (args.emit, &launch) {
        return super::torch::emit_slurm(&checked, &plan, &settings, &dir, l, &record.root);
    }
    execute(&checked, &plan, &record, &dir, &settings, args.machine.quiet, false, launch.as_ref())
}

fn read_spec(path: &Path) -> Result<String, RunError> {
    super::read(path).map_err(|e| RunError::io(path, "read", e))
}

/// Prints the compilation's diagnostics (warnings too, exactly as `expc check` does) and lowers
/// it; exit code 1 when either has errors.
fn check_and_lower(out: &Out, compilation: compile::Compilation) -> Result<(compile::Checked, Plan), i32> {
    if out.diagnostics(&compilation.diagnostics, &compilation.sources) {
        return Err(1);
    }
    let checked = compilation.into_checked().map_err(|_| 1)?;
    match expc::lower::lower(&checked) {
        Ok(plan) => Ok((checked, plan)),
        Err(d) => {
            out.diagnostics(&d, &checked.sources);
            Err(1)
        }
    }
}

pub fn resume(out: &Out, args: ResumeArgs) -> i32 {
    let record = match RunRecord::load(&args.dir) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let settings = match settings(out, None, &args.machine, None) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let probe = |d: &DataSpec| data_facts(d, &settings);
    let (checked, plan) = match check_and_lower(out, record.compile(&probe)) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let launch = expc::backend::torch::runner::recorded_launch(&args.dir);
    if let Some(l) = &launch {
        if let Err(e) = super::torch::prepare(&checked, l, false) {
            return fail(e);
        }
    }
    println!("run folder: {}", args.dir.display());
    execute(&checked, &plan, &record, &args.dir, &settings, args.machine.quiet, true, launch.as_ref())
}

#[allow(clippy::too_many_arguments)]
fn execute(
    checked: &compile::Checked,
    plan: &Plan,
    record: &RunRecord,
    dir: &Path,
    settings: &Settings,
    quiet: bool,
    resuming: bool,
    launch: Option<&expc::backend::torch::runner::Launch>,
) -> i32 {
    let exp = &checked.experiment;
    let threads = if resuming { settings.threads.0.min(record.threads).max(1) } else { settings.threads.0 };
    if resuming && threads != record.threads {
        eprintln!("note: resuming with {threads} threads (the run started with {}); results stay identical only with the same count", record.threads);
    }
    let mut progress = Progress::new(&exp.name, quiet);
    // The first Ctrl-C or SIGTERM stops after the current step with a checkpoint; a second one at once.
    expc::run::interrupt::install();
    // Testing aid (documented in docs/runs.md): abort like `kill -9` after iteration N.
    let abort_after = std::env::var("EXPC_TEST_ABORT_AFTER").ok().and_then(|v| v.parse().ok());
    let result = match launch {
        Some(l) => super::torch::execute(checked, plan, settings, dir, l, resuming, &record.root, &mut progress),
        None => expc::run::session::train(checked, plan, dir, settings, threads, resuming, abort_after, &mut progress),
    };
    match result {
        Ok(summary) if summary.outcome.interrupted_at.is_some() => {
            drop(progress);
            let at = summary.outcome.interrupted_at.unwrap_or(0);
            eprintln!(
                "{}: interrupted after iteration {at} of {}; a checkpoint, the metrics, the figures and summary.json are written",
                exp.name, exp.train.iterations
            );
            eprintln!("continue with: expc resume {}", dir.display());
            130
        }
        Ok(summary) => {
            drop(progress);
            let pct = |x: Option<f64>| x.map(|a| format!("{:.2}%", 100.0 * a)).unwrap_or_else(|| "-".into());
            println!(
                "{}: best test accuracy {} at iteration {}, final {} ({:.1} s, {:.0} img/s)",
                exp.name,
                pct(summary.outcome.best_accuracy),
                summary.outcome.best_iteration.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
                pct(summary.outcome.final_accuracy),
                summary.outcome.wall_s,
                summary.outcome.img_per_s
            );
            if let (Some(a), Some(l)) = (summary.outcome.test_accuracy_of_best, summary.outcome.test_loss_of_best) {
                println!("{}: the best checkpoint (chosen on validation) on the test set: accuracy {}, loss {l:.4}", exp.name, pct(Some(a)));
            }
            println!("summary: {}", dir.join("summary.json").display());
            0
        }
        Err(e) => {
            drop(progress);
            // Resuming repeats a divergence exactly, a locked or finished folder is not ours, and
            // with no intact checkpoint left the same command fails the same way.
            let resumable = !matches!(e.code, "E0531" | "E0506" | "E0533" | "E0503");
            fail(e);
            if dir.join("metrics.csv").exists() && !resumable {
                eprintln!("run folder: {} (metrics so far are in metrics.csv)", dir.display());
            } else if dir.join("metrics.csv").exists() {
                eprintln!(
                    "run folder: {} (metrics so far are in metrics.csv; `expc resume {}` continues from the last checkpoint)",
                    dir.display(),
                    dir.display()
                );
            } else if !resuming {
                // Nothing was trained: leave no empty run folder behind.
                let _ = std::fs::remove_dir_all(dir);
            }
            1
        }
    }
}

fn run_sweep(out: &Out, args: RunArgs) -> i32 {
    let mut sweeps = vec![];
    for s in &args.sweeps {
        match sweep::parse_sweep(s) {
            Ok(x) => sweeps.push(x),
            Err(e) => return fail(e),
        }
    }
    let combos = sweep::combinations(&sweeps);
    let settings = match settings(out, Some(&args.file), &args.machine, args.out.clone()) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let base = expc::spec::resolve_path(&args.file, &super::read);
    let Some(exp) = base.experiment else {
        out.diagnostics(&base.diagnostics, &base.sources);
        return 1;
    };
    // Check (and lower) every combination before running any.
    let probe = |d: &DataSpec| data_facts(d, &settings);
    let abs = std::fs::canonicalize(&args.file).unwrap_or(args.file.clone());
    for c in &combos {
        let mut all: Vec<sweep::Assignment> = args.sets.iter().filter_map(|s| sweep::parse_assignment(s).ok()).collect();
        all.extend(c.iter().cloned());
        if let Some(n) = args.iterations {
            all.push(sweep::Assignment { key: "train.iterations".into(), value: n.to_string() });
        }
        let text = sweep::variant_text(&abs, &format!("{}_{}", exp.name, sweep::suffix(c)), &all);
        let r = expc::spec::resolve_text("<command line>", &text, Path::new("."), &super::read);
        if let Err(code) = check_and_lower(out, compile::finish(r, &probe)) {
            return code;
        }
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let jobs = args.jobs.unwrap_or((cores / settings.threads.0.max(1)).max(1)).max(1);
    let per_run_threads = if args.machine.threads.is_some() { settings.threads.0 } else { (cores / jobs).max(1) };
    if let Some(Emit::Slurm) = args.emit {
        let mut extra = vec![];
        if let Some(n) = args.iterations {
            extra.extend(["--iterations".to_string(), n.to_string()]);
        }
        for d in &args.machine.data {
            extra.extend(["--data".to_string(), d.clone()]);
        }
        for s in &args.sets {
            extra.extend(["--set".to_string(), s.clone()]);
        }
        let script = match sweep::slurm_script(&args.file, &exp.name, &settings.out.0, &combos, per_run_threads, &extra) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        let path = settings.out.0.join(format!("{}-sweep.sbatch", exp.name));
        if let Err(e) = std::fs::create_dir_all(&settings.out.0).map_err(|e| RunError::io(&settings.out.0, "create", e)) {
            return fail(e);
        }
        if let Err(e) = run_folder::write_atomic(&path, script.as_bytes()) {
            return fail(e);
        }
        println!("wrote {} ({} runs); submit it with `sbatch {}`", path.display(), combos.len(), path.display());
        return 0;
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail(RunError::new("E0540", format!("cannot find the expc executable: {e}"))),
    };
    eprintln!("sweep: {} runs, {jobs} at a time, {per_run_threads} threads each", combos.len());
    let mut dirs = vec![];
    let mut failed: Vec<String> = vec![];
    for chunk in combos.chunks(jobs) {
        let children: Vec<_> = chunk
            .iter()
            .map(|c| {
                let mut cmd = std::process::Command::new(&exe);
                cmd.arg("run").arg(&args.file).arg("--quiet").arg("--threads").arg(per_run_threads.to_string());
                cmd.arg("--out").arg(&settings.out.0);
                if let Some(n) = args.iterations {
                    cmd.arg("--iterations").arg(n.to_string());
                }
                for d in &args.machine.data {
                    cmd.arg("--data").arg(d);
                }
                for s in &args.sets {
                    cmd.arg("--set").arg(s);
                }
                for a in c {
                    cmd.arg("--set").arg(format!("{}={}", a.key, a.value));
                }
                cmd.stdout(std::process::Stdio::piped());
                (sweep::suffix(c), cmd.spawn())
            })
            .collect();
        for (label, child) in children {
            match child.and_then(|c| c.wait_with_output()) {
                Ok(o) if o.status.success() => {
                    let text = String::from_utf8_lossy(&o.stdout);
                    if let Some(d) = text.lines().find_map(|l| l.strip_prefix("run folder: ")) {
                        dirs.push(PathBuf::from(d.trim()));
                    }
                    eprintln!("sweep: {label} done");
                }
                Ok(o) => {
                    eprintln!("sweep: {label} failed ({})", o.status);
                    failed.push(label);
                }
                Err(e) => {
                    eprintln!("sweep: {label} could not start: {e}");
                    failed.push(label);
                }
            }
        }
    }
    let mut comparison_ok = true;
    if !dirs.is_empty() {
        let folder = settings.out.0.join(&exp.name);
        let stem = folder.join(format!("sweep-{}", run_folder::timestamp_now()));
        let drawn = std::fs::create_dir_all(&folder).map_err(|e| RunError::io(&folder, "create", e)).and_then(|()| cmp::load(&dirs)).and_then(|runs| {
            print!("{}", cmp::render_table(&cmp::table(&runs)));
            cmp::figure(&runs, &stem)
        });
        match drawn {
            Ok(()) => println!("figure: {}", stem.with_extension("png").display()),
            Err(e) => {
                comparison_ok = false;
                fail(e);
            }
        }
    }
    if failed.is_empty() && comparison_ok {
        eprintln!("sweep: all {} runs done", combos.len());
        return 0;
    }
    if !failed.is_empty() {
        eprintln!("sweep: {} of {} runs failed: {} (their run folders and errors are above)", failed.len(), combos.len(), failed.join(", "));
    }
    1
}

pub fn compare(dirs: &[PathBuf], figure: Option<PathBuf>, json: bool) -> i32 {
    let runs = match cmp::load(dirs) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let lines = cmp::table(&runs);
    let stem = figure.unwrap_or_else(|| PathBuf::from("compare.png")).with_extension("");
    if let Err(e) = cmp::figure(&runs, &stem) {
        return fail(e);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&lines).unwrap_or_default());
    } else {
        print!("{}", cmp::render_table(&lines));
        println!("figure: {} and {}", stem.with_extension("png").display(), stem.with_extension("svg").display());
    }
    0
}

/// The checked experiment and plan of the run a model file belongs to.
fn compiled_run(out: &Out, model: &Path, machine: &MachineArgs) -> Result<(PathBuf, PathBuf, Settings, compile::Checked, Plan), i32> {
    let (dir, file) = expc::run::evaluation::locate_model(model).map_err(fail)?;
    let record = RunRecord::load(&dir).map_err(fail)?;
    let settings = settings(out, None, machine, None)?;
    let probe = |d: &DataSpec| data_facts(d, &settings);
    let (checked, plan) = check_and_lower(out, record.compile(&probe))?;
    Ok((dir, file, settings, checked, plan))
}

pub fn eval(out: &Out, args: EvalArgs) -> i32 {
    let (dir, file, settings, checked, plan) = match compiled_run(out, &args.model, &args.machine) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let split = match args.split {
        SplitArg::Test => expc::run::evaluation::Split::Test,
        SplitArg::Validation => expc::run::evaluation::Split::Validation,
        SplitArg::Train => expc::run::evaluation::Split::Train,
    };
    let top = args.top.unwrap_or(if plan.accuracy_top > 1 { plan.accuracy_top } else { 5 });
    let e = match expc::run::evaluation::evaluate(&checked, &plan, &settings, &file, split, top, settings.threads.0) {
        Ok(e) => e,
        Err(err) => return fail(err),
    };
    let folder = args.out.unwrap_or_else(|| expc::run::evaluation::default_output(&dir, &file, split));
    let files = match expc::run::evaluation::write_evaluation(&folder, &e) {
        Ok(f) => f,
        Err(err) => return fail(err),
    };
    println!("{}: {} on {} {:?} samples", e.experiment, file.display(), e.samples, e.split);
    println!("loss {:.4}   top-1 {:.2}%   top-{} {:.2}%", e.loss, 100.0 * e.top1, e.top_k.0, 100.0 * e.top_k.1);
    let width = e.per_class.iter().map(|c| c.class.chars().count()).max().unwrap_or(5).max(5);
    println!("{:<width$}  {:>8}  {:>8}", "class", "samples", "accuracy");
    for c in &e.per_class {
        println!("{:<width$}  {:>8}  {:>7.2}%", c.class, c.samples, 100.0 * c.accuracy);
    }
    for f in files {
        println!("wrote {}", f.display());
    }
    0
}

pub fn export_onnx(out: &Out, args: OnnxArgs) -> i32 {
    // Only the spec's own facts: exporting needs the weights, not the data.
    let (dir, file) = match expc::run::evaluation::locate_model(&args.model) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let record = match RunRecord::load(&dir) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let settings = match settings(out, None, &args.machine, None) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (checked, plan) = match check_and_lower(out, record.compile(&|d: &DataSpec| Ok(expc::graph::DataFacts::from_spec(d)))) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let bytes = match expc::run::evaluation::onnx_model(&checked, &plan, &settings, &file) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    if let Err(e) = expc::run::run_folder::write_atomic(&args.out, &bytes) {
        return fail(e);
    }
    println!("wrote {} ({} bytes, opset {}) from {}", args.out.display(), bytes.len(), expc::backend::onnx::OPSET, file.display());
    0
}

pub fn predict(out: &Out, args: PredictArgs) -> i32 {
    let (_, file, settings, checked, plan) = match compiled_run(out, &args.model, &args.machine) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let predictions = match expc::run::evaluation::predict(&checked, &plan, &settings, &file, &args.images, args.top) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&predictions).unwrap_or_default());
        return 0;
    }
    for p in &predictions {
        let top: Vec<String> = p.top.iter().map(|(c, pr)| format!("{c} {:.1}%", 100.0 * pr)).collect();
        println!("{}: {}", p.image.display(), top.join(", "));
    }
    0
}
