//! `expc run --backend torch`: generate the Python files into `RUN/torch/`, launch them (`python`
//! for one process, `torchrun` for more), relay their progress lines to the same [`Observer`] as the
//! native engine, then draw the figures and write `summary.json` exactly as a native run does.
//!
//! The Python process writes `metrics.csv` (the native columns and number formats) and the
//! checkpoints (the native names) itself, rank 0 only; `RUN/torch/launch.json` records how it was
//! launched, so `expc resume RUN` relaunches it the same way with `--resume`.

use crate::compile::Checked;
use crate::config::Settings;
use crate::lower::Plan;
use crate::run::driver::{Observer, Outcome};
use crate::run::error::RunError;
use crate::run::session::Summary;
use crate::run::{checkpoint, data_source, metrics, plot, run_folder};
use crate::spec::Dataset;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    Cpu,
    Cuda,
}

/// How the Python processes are launched (recorded in `RUN/torch/launch.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Launch {
    pub device: Device,
    /// Processes per node.
    pub nproc: usize,
    pub nnodes: usize,
    /// `HOST:PORT` of the rendezvous (several nodes).
    pub rdzv: Option<String>,
    pub compile: bool,
    /// `bf16` or `fp16` autocast (CUDA).
    pub amp: Option<String>,
    /// Devices of the placements (`--placement cpu,cpu`), model parallel.
    pub placement: Option<String>,
    pub threads: usize,
}

/// The interpreter: `EXPC_PYTHON`, else `python3`.
pub fn python() -> PathBuf {
    std::env::var_os("EXPC_PYTHON").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("python3"))
}

/// What the interpreter has: torch's version, whether CUDA is available and how many devices.
#[derive(Clone, Debug)]
pub struct TorchInfo {
    pub version: String,
    pub cuda: bool,
    pub cuda_devices: usize,
}

const INSTALL: &str = "install PyTorch into a virtual environment and point expc at it: \
`python3 -m venv ~/.cache/expc/venv && ~/.cache/expc/venv/bin/pip install torch numpy pillow`, \
then `export EXPC_PYTHON=~/.cache/expc/venv/bin/python` (GPU wheels: https://pytorch.org/get-started)";

/// Checks that the interpreter runs and imports torch and numpy (E0600).
pub fn probe() -> Result<TorchInfo, RunError> {
    let py = python();
    let out = Command::new(&py)
        .args(["-c", "import numpy, torch; print(torch.__version__, torch.cuda.is_available(), torch.cuda.device_count())"])
        .output()
        .map_err(|e| RunError::new("E0600", format!("cannot start Python `{}`: {e}", py.display())).help(INSTALL))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").trim().to_string();
        return Err(RunError::new("E0600", format!("`{}` cannot import torch and numpy: {last}", py.display())).help(INSTALL));
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let w: Vec<&str> = text.split_whitespace().collect();
    Ok(TorchInfo {
        version: w.first().unwrap_or(&"?").to_string(),
        cuda: w.get(1) == Some(&"True"),
        cuda_devices: w.get(2).and_then(|x| x.parse().ok()).unwrap_or(0),
    })
}

/// Checks a launch against the spec and the machine before anything is written.
pub fn check_launch(launch: &Launch, checked: &Checked, info: &TorchInfo) -> Result<(), RunError> {
    if launch.device == Device::Cuda && !info.cuda {
        return Err(RunError::new("E0601", format!("cuda asked for, not available: torch {} sees no CUDA device", info.version))
            .help("run with `--device cpu`, or install a CUDA build of PyTorch on a machine with an NVIDIA GPU"));
    }
    let world = launch.nproc * launch.nnodes;
    let batch = checked.experiment.data.batch as usize;
    if world == 0 || !batch.is_multiple_of(world) {
        return Err(RunError::new(
            "E0602",
            format!("the batch ({batch}) does not divide over {world} processes ({} per node × {} nodes)", launch.nproc, launch.nnodes),
        )
        .help("choose --nproc (× --nnodes) dividing the batch, or change `batch` (each process takes batch / processes samples)"));
    }
    if launch.nnodes > 1 && launch.rdzv.is_none() {
        return Err(RunError::new("E0603", "--nnodes above 1 needs --rdzv HOST:PORT (the rendezvous every node connects to)"));
    }
    if launch.amp.is_some() && launch.device != Device::Cuda {
        return Err(RunError::new("E0603", "--amp autocasts on CUDA only; add --device cuda"));
    }
    Ok(())
}

/// Generates the Python files of a run into `RUN/torch/` (and expc's synthetic data, when the
/// spec uses it).
pub fn generate(checked: &Checked, plan: &Plan, settings: &Settings, dir: &Path, source: &str) -> Result<PathBuf, RunError> {
    let exp = &checked.experiment;
    let code = dir.join("torch");
    let root = data_root(exp, settings);
    let export = super::export(checked, plan, source, root.as_deref()).map_err(|d| {
        RunError::new("E0310", d.first().map(|d| d.message.clone()).unwrap_or_default()).help("run `expc export torch` for the located diagnostic")
    })?;
    super::write(&export, &code).map_err(|e| RunError::io(&code, "write", e))?;
    if matches!(exp.data.dataset, Dataset::Synthetic { .. }) {
        let config = data_source::data_config(&exp.data, settings, exp.train.seed)?;
        let split = crate::data::load_source(&config.source, config.seed).map_err(|e| RunError::new("E0520", e.to_string()))?;
        super::write_synthetic(&split.train, &split.test, &code).map_err(|e| RunError::new("E0500", format!("synthetic data: {e}")))?;
    }
    Ok(code)
}

/// The data set's folder on this machine, for the default of train.py's `--data-root`.
pub fn data_root(exp: &crate::spec::Experiment, settings: &Settings) -> Option<String> {
    let key = match &exp.data.dataset {
        Dataset::Cifar10 => "cifar10".to_string(),
        Dataset::Mnist => "mnist".to_string(),
        Dataset::Folder { root, .. } => root.clone(),
        Dataset::Synthetic { .. } => return None,
    };
    let p = settings.data_root(&key).map(|p| p.to_path_buf()).or_else(|| matches!(exp.data.dataset, Dataset::Folder { .. }).then(|| PathBuf::from(&key)))?;
    Some(std::fs::canonicalize(&p).unwrap_or(p).display().to_string())
}

/// The command line launching train.py for a run folder.
pub fn command(launch: &Launch, code: &Path, dir: &Path, resuming: bool) -> Command {
    let mut cmd = Command::new(python());
    if launch.nproc * launch.nnodes > 1 {
        cmd.args(["-m", "torch.distributed.run"]);
        cmd.arg(format!("--nproc-per-node={}", launch.nproc));
        match &launch.rdzv {
            Some(r) if launch.nnodes > 1 => {
                cmd.arg(format!("--nnodes={}", launch.nnodes)).arg("--rdzv-backend=c10d").arg(format!("--rdzv-endpoint={r}"));
            }
            _ => {
                cmd.arg("--standalone");
            }
        }
    }
    cmd.arg(code.join("train.py")).arg("--run-dir").arg(dir);
    cmd.arg("--device").arg(if launch.device == Device::Cuda { "cuda" } else { "cpu" });
    cmd.arg("--threads").arg(launch.threads.max(1).to_string());
    if let Some(p) = &launch.placement {
        cmd.arg("--placement").arg(p);
    }
    if launch.compile {
        cmd.arg("--compile");
    }
    if let Some(a) = &launch.amp {
        cmd.arg("--amp").arg(a);
    }
    if resuming {
        cmd.arg("--resume");
    }
    cmd
}

#[derive(Deserialize)]
struct Event {
    event: String,
    #[serde(default)]
    iteration: u64,
    #[serde(default)]
    total: u64,
    #[serde(default)]
    start: u64,
    #[serde(default)]
    loss: Option<f64>,
    #[serde(default)]
    lr: f64,
    #[serde(default)]
    img_per_s: f64,
    #[serde(default)]
    accuracy: f64,
    #[serde(default)]
    path: String,
}

/// Runs (or resumes) a torch run in `dir`, whose files [`generate`] wrote; then the figures and
/// `summary.json` as a native run writes them.
pub fn train(checked: &Checked, dir: &Path, launch: &Launch, resuming: bool, obs: &mut dyn Observer) -> Result<Summary, RunError> {
    let exp = &checked.experiment;
    let code = dir.join("torch");
    let launch_path = code.join("launch.json");
    let text = serde_json::to_string_pretty(launch).map_err(|e| RunError::new("E0500", e.to_string()))?;
    run_folder::write_atomic(&launch_path, text.as_bytes())?;
    let spec_json = serde_json::to_string_pretty(exp).map_err(|e| RunError::new("E0500", e.to_string()))?;
    run_folder::write_atomic(&dir.join("spec.json"), spec_json.as_bytes())?;
    if resuming {
        if let Some((it, _, _)) = crate::run::driver::latest_checkpoint(dir) {
            if it >= exp.train.iterations {
                return Err(RunError::new("E0533", format!("this run already finished its {} iterations", exp.train.iterations))
                    .help("start a new run with `expc run` (add `--iterations N` there for a longer one)"));
            }
        }
    }
    let _ = std::fs::remove_file(dir.join("outcome.json"));
    let mut cmd = command(launch, &code, dir, resuming);
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().map_err(|e| RunError::new("E0600", format!("cannot start `{}`: {e}", python().display())).help(INSTALL))?;
    let mut diverged = None;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let Some(json) = line.strip_prefix("@expc ") else {
                eprintln!("{line}");
                continue;
            };
            let Ok(e) = serde_json::from_str::<Event>(json) else { continue };
            match e.event.as_str() {
                "started" => obs.started(e.total, e.start),
                "step" => obs.step(e.iteration, e.loss.unwrap_or(f64::NAN), e.lr, e.img_per_s),
                "evaluated" => obs.evaluated(e.iteration, e.loss.unwrap_or(f64::NAN), e.accuracy),
                "checkpoint" => obs.checkpoint(e.iteration, Path::new(&e.path)),
                "diverged" => diverged = Some(e.iteration),
                _ => {}
            }
        }
    }
    let status = child.wait().map_err(|e| RunError::new("E0604", format!("waiting for the PyTorch process: {e}")))?;
    let figures = draw(exp, dir);
    if let Some(it) = diverged {
        return Err(RunError::new(
            "E0531",
            format!("training diverged: the loss is not finite at iteration {it} (torch backend); the last good checkpoint is kept"),
        )
        .help("lower `lr`, add warm-up with a gentler `policy`, or check the input scaling (`scale`, `mean`, `std`)"));
    }
    if !status.success() {
        return Err(RunError::new("E0604", format!("the PyTorch process failed ({status}); its messages are above"))
            .help(format!("`expc resume {}` continues from the last checkpoint", dir.display())));
    }
    figures?;
    let outcome_path = dir.join("outcome.json");
    let text = std::fs::read_to_string(&outcome_path).map_err(|e| RunError::io(&outcome_path, "read", e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| RunError::new("E0604", format!("{}: {e}", outcome_path.display())))?;
    let f = |k: &str| v.get(k).and_then(|x| x.as_f64());
    let outcome = Outcome {
        iterations: v.get("iterations").and_then(|x| x.as_u64()).unwrap_or(0),
        best_accuracy: f("best_accuracy"),
        best_iteration: v.get("best_iteration").and_then(|x| x.as_u64()),
        final_accuracy: f("final_accuracy"),
        final_test_loss: f("final_test_loss"),
        final_train_loss: f("final_train_loss"),
        wall_s: f("wall_s").unwrap_or(0.0),
        img_per_s: f("img_per_s").unwrap_or(0.0),
        data_wait_fraction: f("data_wait_fraction").unwrap_or(0.0),
        evaluated_on: "test",
        ..Outcome::default()
    };
    let summary = Summary {
        experiment: exp.name.clone(),
        outcome,
        threads: launch.threads,
        peak_rss_bytes: v.get("peak_rss_bytes").and_then(|x| x.as_u64()),
        engine_bytes: 0,
        estimated_bytes: None,
        simd: None,
        expc_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let mut json = serde_json::to_value(&summary).map_err(|e| RunError::new("E0500", e.to_string()))?;
    if let Some(o) = json.as_object_mut() {
        o.insert("backend".into(), "torch".into());
        o.insert("device".into(), if launch.device == Device::Cuda { "cuda" } else { "cpu" }.into());
        o.insert("processes".into(), (launch.nproc * launch.nnodes).into());
    }
    let text = serde_json::to_string_pretty(&json).map_err(|e| RunError::new("E0500", e.to_string()))?;
    run_folder::write_atomic(&dir.join("summary.json"), text.as_bytes())?;
    Ok(summary)
}

/// Curves from metrics.csv and the first conv layer's filters from the newest checkpoint.
fn draw(exp: &crate::spec::Experiment, dir: &Path) -> Result<(), RunError> {
    let Ok(rows) = metrics::read(&dir.join("metrics.csv")) else { return Ok(()) };
    plot::curves(&[plot::Series { label: exp.name.clone(), rows: &rows, evaluated_on: "test" }], &exp.name, &dir.join("curves"))?;
    let first_conv = exp.model.layers.iter().find(|l| matches!(l.op, crate::ops::Op::Conv(_)));
    if let (Some(conv), Some((_, model, _))) = (first_conv, crate::run::driver::latest_checkpoint(dir)) {
        let params = checkpoint::load(&model)?;
        if let Some((shape, w)) = params.get(&format!("{}.weight", conv.name)) {
            plot::filters(w, shape, &dir.join("filters.png"))?;
        }
    }
    Ok(())
}

/// Whether a run folder holds a torch run (and how it was launched).
pub fn recorded_launch(dir: &Path) -> Option<Launch> {
    let text = std::fs::read_to_string(dir.join("torch").join("launch.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Single-quotes a value for a POSIX shell (`'` becomes `'\''`).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A multi-node sbatch script for a torch run whose files are in `dir` (generated by [`generate`]):
/// one task per node (`srun`), each a `torchrun` that meets the others at the first node of the
/// allocation (c10d rendezvous, port 29500, the job id as rendezvous id). Resource lines come from
/// the launch; every path and value is single-quoted for the shell.
pub fn slurm_script(launch: &Launch, name: &str, dir: &Path) -> String {
    let q = |s: &str| shell_quote(s);
    let run = dir.display().to_string();
    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&format!("#SBATCH --job-name={}\n", q(name)));
    s.push_str(&format!("#SBATCH --nodes={}\n", launch.nnodes));
    s.push_str("#SBATCH --ntasks-per-node=1\n");
    s.push_str(&format!("#SBATCH --cpus-per-task={}\n", launch.nproc * launch.threads.max(1)));
    if launch.device == Device::Cuda {
        s.push_str(&format!("#SBATCH --gpus-per-node={}\n", launch.nproc));
    }
    s.push_str(&format!("#SBATCH --output={}\n", q(&format!("{run}/slurm-%j.out"))));
    s.push_str("set -euo pipefail\n");
    s.push_str(&format!("python=\"${{EXPC_PYTHON:-{}}}\"\n", python().display().to_string().replace(['"', '$', '`', '\\'], "")));
    s.push_str("head=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n");
    let mut args = vec![
        "\"$python\"".to_string(),
        "-m".into(),
        "torch.distributed.run".into(),
        format!("--nnodes={}", launch.nnodes),
        format!("--nproc-per-node={}", launch.nproc),
        "--rdzv-backend=c10d".into(),
        "--rdzv-endpoint=\"$head:29500\"".into(),
        "--rdzv-id=\"$SLURM_JOB_ID\"".into(),
        q(&format!("{run}/torch/train.py")),
        "--run-dir".into(),
        q(&run),
        "--device".into(),
        (if launch.device == Device::Cuda { "cuda" } else { "cpu" }).into(),
        "--threads".into(),
        launch.threads.max(1).to_string(),
    ];
    if let Some(p) = &launch.placement {
        args.extend(["--placement".into(), q(p)]);
    }
    if launch.compile {
        args.push("--compile".into());
    }
    if let Some(a) = &launch.amp {
        args.extend(["--amp".into(), q(a)]);
    }
    s.push_str(&format!("srun {}\n", args.join(" ")));
    s
}
