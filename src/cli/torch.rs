//! `expc export torch FILE -o DIR` and the torch side of `expc run --backend torch` / `expc resume`.

use super::Out;
use expc::backend::torch::{self as tb, runner};
use expc::config::{Overrides, Settings};
use expc::run::driver::Observer;
use expc::run::RunError;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

fn fail(e: RunError) -> i32 {
    let d: expc::diagnostic::Diagnostic = e.into();
    eprint!("{}", expc::diagnostic::render(&[d], &expc::source::SourceMap::new(), std::io::stderr().is_terminal()));
    1
}

/// `expc export torch FILE -o DIR`.
pub fn export(out: &Out, file: &Path, dir: &Path) -> i32 {
    let c = expc::compile::compile_path(file, &super::read);
    if out.diagnostics(&c.diagnostics, &c.sources) {
        return 1;
    }
    let Ok(checked) = c.into_checked() else { return 1 };
    let plan = match expc::lower::lower(&checked) {
        Ok(p) => p,
        Err(d) => {
            out.diagnostics(&d, &checked.sources);
            return 1;
        }
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let mut sources = expc::source::SourceMap::new();
    let settings = match Settings::load(Some(file), &cwd, &|k| std::env::var(k).ok(), &Overrides::default(), &mut sources) {
        Ok(s) => s,
        Err(d) => {
            out.diagnostics(&d, &sources);
            return 1;
        }
    };
    let root = runner::data_root(&checked.experiment, &settings);
    let export = match tb::export(&checked, &plan, &file.display().to_string(), root.as_deref()) {
        Ok(e) => e,
        Err(d) => {
            out.diagnostics(&d, &checked.sources);
            return 1;
        }
    };
    if let Err(e) = tb::write(&export, dir) {
        return fail(RunError::io(dir, "write", e));
    }
    if matches!(checked.experiment.data.dataset, expc::spec::Dataset::Synthetic { .. }) {
        let exp = &checked.experiment;
        let result = expc::run::data_source::data_config(&exp.data, &settings, exp.train.seed)
            .and_then(|c| expc::data::load_source(&c.source, c.seed).map_err(|e| RunError::new("E0520", e.to_string())))
            .and_then(|s| tb::write_synthetic(&s.train, &s.test, dir).map_err(|e| RunError::new("E0500", e)));
        if let Err(e) = result {
            return fail(e);
        }
    }
    for (name, _) in &export.files {
        println!("wrote {}", dir.join(name).display());
    }
    println!("train with: python {} --run-dir RUN_FOLDER", dir.join("train.py").display());
    0
}

/// Probes Python and checks the launch (before a run folder exists).
/// With `emit` (a job script for another machine) Python is not probed here and the rendezvous is
/// the script's.
pub fn prepare(checked: &expc::compile::Checked, launch: &runner::Launch, emit: bool) -> Result<(), RunError> {
    if emit {
        let elsewhere = runner::TorchInfo { version: String::new(), cuda: true, cuda_devices: 0 };
        let with_rdzv = runner::Launch { rdzv: Some("$head:29500".into()), ..launch.clone() };
        return runner::check_launch(&with_rdzv, checked, &elsewhere);
    }
    let info = runner::probe()?;
    runner::check_launch(launch, checked, &info)
}

/// Generates and trains (or resumes) a torch run in `dir`.
#[allow(clippy::too_many_arguments)]
pub fn execute(
    checked: &expc::compile::Checked,
    plan: &expc::lower::Plan,
    settings: &Settings,
    dir: &Path,
    launch: &runner::Launch,
    resuming: bool,
    source: &str,
    obs: &mut dyn Observer,
) -> Result<expc::run::session::Summary, RunError> {
    if !resuming || !dir.join("torch").join("train.py").exists() {
        runner::generate(checked, plan, settings, dir, source)?;
    }
    runner::train(checked, dir, launch, resuming, obs)
}

/// `expc run FILE --backend torch --emit slurm`: the run folder with its generated code, and an
/// sbatch script next to it that trains it on `--nnodes` nodes.
pub fn emit_slurm(checked: &expc::compile::Checked, plan: &expc::lower::Plan, settings: &Settings, dir: &Path, launch: &runner::Launch, source: &str) -> i32 {
    if let Err(e) = runner::generate(checked, plan, settings, dir, source) {
        return fail(e);
    }
    let text = serde_json::to_string_pretty(launch).unwrap_or_default();
    if let Err(e) = expc::run::run_folder::write_atomic(&dir.join("torch").join("launch.json"), text.as_bytes()) {
        return fail(e);
    }
    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let script = runner::slurm_script(launch, &checked.experiment.name, &abs);
    let path = dir.join("torch").join("job.sbatch");
    if let Err(e) = expc::run::run_folder::write_atomic(&path, script.as_bytes()) {
        return fail(e);
    }
    println!("wrote {}; submit it with `sbatch {}`", path.display(), path.display());
    0
}
