//! One training session of `expc run` / `expc resume`: load the data, build the engine, restore
//! the last checkpoint when resuming, run the loop, then write the figures and `summary.json`.
//! Whatever happens, the figures are drawn from the metrics that exist.

use super::driver::{self, Loop, Observer, Outcome};
use super::error::RunError;
use super::{data_source, engine_model, metrics, plot, run_folder};
use crate::compile::Checked;
use crate::config::Settings;
use crate::data::Pipeline;
use crate::lower::Plan;
use crate::spec::Experiment;
use serde::Serialize;
use std::path::Path;

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub experiment: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub threads: usize,
    /// Peak resident memory of the process (data set included).
    pub peak_rss_bytes: Option<u64>,
    /// Bytes the engine allocated for training (parameters, gradients, optimizer state,
    /// activations, workspace), measured.
    pub engine_bytes: u64,
    /// The engine's memory model's estimate of the same, made before allocating (as
    /// `compile --report` prints it).
    pub estimated_bytes: Option<u64>,
    /// The instruction set the engine's kernels ran on (`avx512f`, `avx2+fma`, `portable`; see
    /// `kernels::Simd`); absent for other backends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simd: Option<&'static str>,
    pub expc_version: String,
}

/// Trains a checked, lowered experiment into `dir` (the spec's `iterations`; `--iterations` is a
/// setting like any other, applied before compilation).
#[allow(clippy::too_many_arguments)]
pub fn train(
    checked: &Checked,
    plan: &Plan,
    dir: &Path,
    settings: &Settings,
    threads: usize,
    resuming: bool,
    abort_after: Option<u64>,
    obs: &mut dyn Observer,
) -> Result<Summary, RunError> {
    let exp = &checked.experiment;
    let iterations = exp.train.iterations;
    // One process per run folder: a second `expc resume` stops here, before touching anything.
    let _lock = run_folder::RunLock::acquire(dir)?;
    let config = data_source::data_config(&exp.data, settings, exp.train.seed)?;
    let pipeline = Pipeline::load(&config).map_err(|e| {
        let mut r = RunError::new("E0520", e.to_string());
        if let Some(p) = e.path() {
            r.message = format!("{} (reading `{}`)", r.message, p.display());
        }
        r.help("check the dataset root in expc.toml ([data]), --data NAME=PATH or EXPC_DATA_<NAME>")
    })?;
    // The engine's workers write the samples they compute (see `Pipeline::deferred_writing`).
    let pipeline = pipeline.deferred_writing();
    let mut model = engine_model::build(plan, exp, threads, 0)?;
    let spec_json = serde_json::to_string_pretty(exp).map_err(|e| RunError::new("E0500", e.to_string()))?;
    run_folder::write_atomic(&dir.join("spec.json"), spec_json.as_bytes())?;
    let estimated = engine_model::engine_memory(plan, exp, exp.data.batch, threads).ok().map(|m| m.total() as u64);
    let start = if resuming { restore_newest_good(dir, model.as_mut(), obs)? } else { None };
    if start.as_ref().is_some_and(|p| p.iteration >= iterations) {
        return Err(RunError::new("E0533", format!("this run already finished its {iterations} iterations"))
            .help("start a new run with `expc run` (add `--iterations N` there for a longer one)"));
    }
    let lp = Loop { train: &exp.train, data: &pipeline, dir, eval_batches: exp.train.eval_batches, iterations, abort_after };
    let result = lp.run(model.as_mut(), start, obs);
    // Figures from whatever the run wrote, also when it failed.
    let figures = draw(exp, dir, model.as_ref());
    let outcome = result?;
    figures?;
    let summary = Summary {
        experiment: exp.name.clone(),
        outcome,
        threads,
        peak_rss_bytes: run_folder::peak_rss_bytes(),
        engine_bytes: model.engine_bytes(),
        estimated_bytes: estimated,
        simd: Some(crate::kernels::simd().name()),
        expc_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let text = serde_json::to_string_pretty(&summary).map_err(|e| RunError::new("E0500", e.to_string()))?;
    run_folder::write_atomic(&dir.join("summary.json"), text.as_bytes())?;
    Ok(summary)
}

/// Restores the newest checkpoint that is intact (checksums match, weights finite, tensors fit
/// the model), setting damaged newer ones aside as `*.corrupt` with a warning; removes
/// incomplete checkpoints first. `None` when the folder has no checkpoint at all.
fn restore_newest_good(dir: &Path, model: &mut dyn engine_model::EngineModel, obs: &mut dyn Observer) -> Result<Option<driver::Progress>, RunError> {
    for p in driver::clean_incomplete(dir) {
        obs.warning(&format!("removed the incomplete checkpoint file {}", p.display()));
    }
    let all = driver::checkpoints(dir);
    let mut last_error = None;
    for (it, m, s) in &all {
        let restored = driver::read_checkpoint(m, s).and_then(|(params, state, progress)| {
            if !driver::all_finite(&params) {
                return Err(RunError::new("E0503", format!("checkpoint `{}` holds weights that are not finite", m.display())));
            }
            model.restore(&params, &state)?;
            Ok(progress)
        });
        match restored {
            Ok(progress) => return Ok(Some(progress)),
            Err(e) => {
                for p in [m, s] {
                    let _ = std::fs::rename(p, p.with_extension("safetensors.corrupt"));
                }
                obs.warning(&format!("skipping the damaged checkpoint of iteration {it} (set aside as *.corrupt): {}", e.message));
                last_error = Some(e);
            }
        }
    }
    match last_error {
        None => Ok(None),
        Some(e) => {
            Err(RunError::new("E0503", format!("no intact checkpoint is left in `{}` ({} damaged); the last problem: {}", dir.display(), all.len(), e.message))
                .help("start the run again with `expc run` (the damaged files are kept as *.corrupt)"))
        }
    }
}

fn draw(exp: &Experiment, dir: &Path, model: &dyn engine_model::EngineModel) -> Result<(), RunError> {
    let rows = metrics::read(&dir.join("metrics.csv"))?;
    plot::curves(
        &[plot::Series { label: exp.name.clone(), rows: &rows, evaluated_on: if exp.data.validation > 0 { "validation" } else { "test" } }],
        &exp.name,
        &dir.join("curves"),
    )?;
    let first_conv = exp.model.layers.iter().find(|l| matches!(l.op, crate::ops::Op::Conv(_)));
    if let Some(conv) = first_conv {
        let params = model.params();
        if let Some((shape, w)) = params.get(&format!("{}.weight", conv.name)) {
            plot::filters(w, shape, &dir.join("filters.png"))?;
        }
    }
    Ok(())
}
