//! The training loop of `expc run` and `expc resume`, independent of the engine behind it.
//!
//! Invariants:
//! - Iteration `k` (0-based) trains on the data stream's batch `k` at the policy's rate for `k`;
//!   so a run resumed from a checkpoint taken after `k` iterations replays exactly the batches
//!   and rates an uninterrupted run would have used.
//! - A checkpoint is written after the iteration whose number (1-based) is a multiple of
//!   `checkpoint_every`, and after the last; the model file and the state file are each atomic.
//!   The last `keep` checkpoints and the best one (by test accuracy) are kept.
//! - A non-finite loss or gradient stops the run at once: no checkpoint is written from the bad
//!   state, the metrics so far stay on disk, and the error names the iteration and the first
//!   layer where a non-finite value appeared.
//! - The library prints nothing: progress goes to an [`Observer`].

use super::checkpoint::{self, Tensors};
use super::error::RunError;
use super::metrics::{self, Row};
use crate::data::{Batch, Pipeline};
use crate::spec::TrainSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the loop needs from an engine.
pub trait Model {
    /// One optimisation step on a batch at learning rate `lr` and iteration `it`; returns the loss.
    fn train_step(&mut self, batch: &Batch, lr: f64, it: u64) -> Result<f64, RunError>;
    /// Sum of per-sample losses and number of correct top-1 predictions on a batch (no update).
    fn evaluate(&mut self, batch: &Batch) -> Result<(f64, u64), RunError>;
    /// Like `evaluate`, plus each sample's class scores (`[n, classes]`).
    fn scores(&mut self, batch: &Batch) -> Result<(f64, u64, Vec<f32>), RunError>;
    /// Loads a model file's tensors (weights and running statistics) without solver state.
    fn load_weights(&mut self, params: &Tensors) -> Result<(), RunError>;
    /// The model's tensors by PyTorch-style name (`conv1.weight`, `bn1.running_mean`, …).
    fn params(&self) -> Tensors;
    /// Optimizer state needed to resume.
    fn train_state(&self) -> Tensors;
    /// Restores both.
    fn restore(&mut self, params: &Tensors, state: &Tensors) -> Result<(), RunError>;
    /// After a non-finite loss: the first layer (in forward order) whose output or gradient holds a NaN or Inf.
    fn first_nonfinite(&self) -> Option<String>;
}

/// Progress reports (the CLI draws a progress bar from them).
pub trait Observer {
    fn started(&mut self, _total: u64, _start: u64) {}
    /// After every iteration (`logged`: a metrics row was written, `loss` is then its mean).
    fn step(&mut self, _it: u64, _loss: f64, _lr: f64, _img_per_s: f64) {}
    /// After every iteration: progress only (the bar's position and estimate).
    fn advanced(&mut self, _it: u64) {}
    fn evaluated(&mut self, _it: u64, _loss: f64, _accuracy: f64) {}
    fn checkpoint(&mut self, _it: u64, _path: &Path) {}
    /// Something the user should know that does not stop the run (e.g. a damaged checkpoint
    /// skipped on resume).
    fn warning(&mut self, _message: &str) {}
}

pub struct Quiet;
impl Observer for Quiet {}

/// Saved in the state file's metadata; what resuming needs besides tensors.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    pub iteration: u64,
    pub elapsed_s: f64,
    pub best_accuracy: Option<f64>,
    pub best_iteration: Option<u64>,
    pub images: u64,
    /// The loss of the run's first step: the reference of the exploding-loss rule.
    #[serde(default)]
    pub first_loss: Option<f64>,
    /// Training losses since the last metrics row (sum and count), so that a run resumed between
    /// two rows logs the same averages as an uninterrupted one.
    #[serde(default)]
    pub pending_loss: (f64, u64),
    /// Early stopping: the best evaluation loss so far and the evaluations since the watched
    /// metric last improved.
    #[serde(default)]
    pub best_loss: Option<f64>,
    #[serde(default)]
    pub stale_evaluations: u64,
}

/// The exploding-loss rule (docs/runs.md, "Divergence"): a finite loss above
/// `EXPLODING_FACTOR × max(ln(classes), first loss of the run)` counts as divergence. A classifier
/// that guesses starts near ln(classes); a thousand times that means the logits differ by
/// thousands, which only a blown-up network produces.
pub const EXPLODING_FACTOR: f64 = 1000.0;

/// The loss above which [`EXPLODING_FACTOR`] calls training diverged.
pub fn exploding_threshold(classes: usize, first_loss: Option<f64>) -> f64 {
    let chance = (classes.max(2) as f64).ln();
    EXPLODING_FACTOR * first_loss.filter(|l| l.is_finite()).unwrap_or(chance).max(chance)
}

#[derive(Clone, Debug, Serialize, Default)]
pub struct Outcome {
    pub iterations: u64,
    pub best_accuracy: Option<f64>,
    pub best_iteration: Option<u64>,
    pub final_accuracy: Option<f64>,
    pub final_test_loss: Option<f64>,
    pub final_train_loss: Option<f64>,
    pub wall_s: f64,
    /// Training images per second over the whole run (this session), loading included.
    pub img_per_s: f64,
    /// Share of training time the engine waited for data.
    pub data_wait_fraction: f64,
    /// Set when a Ctrl-C or SIGTERM stopped the run early (after a checkpoint at this iteration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted_at: Option<u64>,
    /// Set when early stopping ended the run (after a checkpoint at this iteration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_early_at: Option<u64>,
    /// What the evaluations during training read: `test`, or `validation` (then `best_accuracy`
    /// and the `test_*` columns of metrics.csv are validation values).
    pub evaluated_on: &'static str,
    /// With a validation set: the best checkpoint evaluated once on the test set at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_accuracy_of_best: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_loss_of_best: Option<f64>,
}

pub struct Loop<'a> {
    pub train: &'a TrainSpec,
    pub data: &'a Pipeline,
    pub dir: &'a Path,
    /// Evaluate over at most this many test batches (`None`: all).
    pub eval_batches: Option<u64>,
    /// Stop after this many iterations in total (overrides the spec's, e.g. `--iterations`).
    pub iterations: u64,
    /// Testing aid: abort the process (as `kill -9` would) right after this iteration.
    pub abort_after: Option<u64>,
}

pub fn checkpoint_name(it: u64) -> String {
    format!("ckpt-{it:07}")
}

/// The newest complete checkpoint in a run folder: (iteration, model path, state path).
pub fn latest_checkpoint(dir: &Path) -> Option<(u64, PathBuf, PathBuf)> {
    checkpoints(dir).into_iter().next()
}

/// Every complete checkpoint (model and state file) in a run folder, newest first.
pub fn checkpoints(dir: &Path) -> Vec<(u64, PathBuf, PathBuf)> {
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir(dir.join("checkpoints")) else { return out };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(num) = name.strip_prefix("ckpt-").and_then(|s| s.strip_suffix(".state.safetensors")) else { continue };
        let Ok(it) = num.parse::<u64>() else { continue };
        let model = dir.join("checkpoints").join(format!("{}.safetensors", checkpoint_name(it)));
        if model.exists() {
            out.push((it, model, e.path()));
        }
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.0));
    out
}

/// Removes what a crash can leave in `checkpoints/`: temporary files, and model files whose
/// state file was never written (an incomplete checkpoint). Returns the removed paths.
pub fn clean_incomplete(dir: &Path) -> Vec<PathBuf> {
    let ckpt = dir.join("checkpoints");
    let mut removed = vec![];
    let Ok(entries) = std::fs::read_dir(&ckpt) else { return removed };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let orphan = name
            .strip_prefix("ckpt-")
            .and_then(|s| s.strip_suffix(".safetensors"))
            .filter(|s| !s.ends_with(".state"))
            .is_some_and(|num| !ckpt.join(format!("ckpt-{num}.state.safetensors")).exists());
        let temporary = name.ends_with(".tmp");
        if (orphan || temporary) && std::fs::remove_file(e.path()).is_ok() {
            removed.push(e.path());
        }
    }
    removed
}

/// Whether every value of every tensor is finite.
pub fn all_finite(t: &Tensors) -> bool {
    t.tensors.values().all(|(_, v)| v.iter().all(|x| x.is_finite()))
}

/// The newest checkpoint whose weights are all finite, for divergence messages.
pub fn last_good_checkpoint(dir: &Path) -> Option<(u64, PathBuf)> {
    checkpoints(dir).into_iter().find_map(|(it, model, _)| {
        let t = checkpoint::load_verified(&model).ok()?;
        all_finite(&t).then_some((it, model))
    })
}

fn diverged(what: String, place: String, dir: &Path) -> RunError {
    let (kept, help) = match last_good_checkpoint(dir) {
        Some((i, p)) => (
            format!("the last good checkpoint (iteration {i}, all weights finite) is {}", p.display()),
            "lower `lr`, add warm-up with a gentler `policy`, or check the input scaling (`scale`, `mean`, `std`); then start a new run with `expc run`",
        ),
        None => (
            "no checkpoint with finite weights was written before it".to_string(),
            "lower `lr`, add warm-up with a gentler `policy`, or check the input scaling (`scale`, `mean`, `std`), and start again with `expc run`",
        ),
    };
    RunError::new("E0531", format!("training diverged: {what}{place}; {kept}")).help(help)
}

impl Loop<'_> {
    /// Runs from `start` (0, or a checkpoint's iteration) to the end.
    pub fn run(&self, model: &mut dyn Model, start: Option<Progress>, obs: &mut dyn Observer) -> Result<Outcome, RunError> {
        let total = self.iterations;
        let ckpt_dir = self.dir.join("checkpoints");
        std::fs::create_dir_all(&ckpt_dir).map_err(|e| RunError::io(&ckpt_dir, "create", e))?;
        let metrics_path = self.dir.join("metrics.csv");
        let mut progress = start.clone().unwrap_or(Progress {
            iteration: 0,
            elapsed_s: 0.0,
            best_accuracy: None,
            best_iteration: None,
            images: 0,
            first_loss: None,
            pending_loss: (0.0, 0),
            best_loss: None,
            stale_evaluations: 0,
        });
        // With a validation set, evaluations during training read it; the test set is read once,
        // at the end, with the best checkpoint.
        let validation = self.data.validation_pipeline();
        let eval_data = validation.as_ref().unwrap_or(self.data);
        let evaluated_on = if validation.is_some() { "validation" } else { "test" };
        let classes = self.data.classes();
        let mut out = Outcome { evaluated_on, ..Outcome::default() };
        let mut writer = match &start {
            Some(p) => metrics::Writer::resume(&metrics_path, p.iteration)?,
            None => metrics::Writer::create(&metrics_path)?,
        };
        let mut events = super::tensorboard::EventWriter::create(self.dir, start.as_ref().map(|p| p.iteration))?;
        if start.is_none() {
            events.hyper_parameters(&hyper_parameters(self.train, self.data))?;
        }
        let steps_per_epoch = self.data.steps_per_epoch().max(1) as f64;
        let t0 = Instant::now();
        let elapsed0 = progress.elapsed_s;
        let mut stream = self.data.train_stream(progress.iteration);
        obs.started(total, progress.iteration);
        let (mut loss_sum, mut loss_n) = progress.pending_loss;
        let (mut images_since, mut since) = (0u64, Instant::now());

        let mut last_eval: Option<(f64, f64)> = None;
        let mut images_session = 0u64;
        for it in progress.iteration..total {
            let batch = stream.next().ok_or_else(|| RunError::new("E0530", "the training data stream ended unexpectedly"))?;
            let lr = self.train.policy.rate_with_warmup(self.train.lr, it, self.train.iterations, self.train.warmup);
            let loss = model.train_step(&batch, lr, it)?;
            if !loss.is_finite() {
                let place = model.first_nonfinite().map(|l| format!(", first in layer `{l}`")).unwrap_or_default();
                return Err(diverged(format!("the loss is {loss} at iteration {}", it + 1), place, self.dir));
            }
            if progress.first_loss.is_none() {
                progress.first_loss = Some(loss);
            }
            let limit = exploding_threshold(classes, progress.first_loss);
            if loss > limit {
                return Err(diverged(
                    format!(
                        "the loss exploded to {loss:.4e} at iteration {} (above {limit:.4e}, {EXPLODING_FACTOR} times the larger of ln({classes}) and the first loss)",
                        it + 1
                    ),
                    String::new(),
                    self.dir,
                ));
            }
            loss_sum += loss;
            loss_n += 1;
            images_since += batch.n as u64;
            images_session += batch.n as u64;
            progress.images += batch.n as u64;
            stream.recycle(batch);
            let done = it + 1;
            let is_last = done == total;
            let log_now = done % self.train.log_every == 0 || is_last;
            let eval_now = done % self.train.eval_every == 0 || is_last;
            let ckpt_now = done % self.train.checkpoint_every == 0 || is_last;
            if log_now || eval_now {
                let rate = images_since as f64 / since.elapsed().as_secs_f64().max(1e-9);
                let mut row = Row {
                    iteration: done,
                    epoch: done as f64 / steps_per_epoch,
                    lr,
                    train_loss: (loss_n > 0).then(|| loss_sum / loss_n as f64),
                    elapsed_s: elapsed0 + t0.elapsed().as_secs_f64(),
                    img_per_s: Some(rate),
                    ..Row::default()
                };
                obs.step(done, row.train_loss.unwrap_or(loss), lr, rate);
                out.final_train_loss = row.train_loss;
                if eval_now {
                    let (l, a) = self.evaluate_on(model, eval_data)?;
                    row.test_loss = Some(l);
                    row.test_accuracy = Some(a);
                    last_eval = Some((l, a));
                    let better_accuracy = progress.best_accuracy.is_none_or(|b| a > b);
                    let better_loss = progress.best_loss.is_none_or(|b| l < b);
                    if better_accuracy {
                        progress.best_accuracy = Some(a);
                        progress.best_iteration = Some(done);
                        // The best model is kept when it is found, not only at checkpoint times.
                        self.save_best(model, done)?;
                    }
                    if better_loss {
                        progress.best_loss = Some(l);
                    }
                    let improved = match self.train.early_stop.map(|e| e.metric) {
                        Some(crate::spec::StopMetric::Loss) => better_loss,
                        _ => better_accuracy,
                    };
                    progress.stale_evaluations = if improved { 0 } else { progress.stale_evaluations + 1 };
                    obs.evaluated(done, l, a);
                }
                writer.write(&row)?;
                events.row(&row)?;
                loss_sum = 0.0;
                loss_n = 0;
                images_since = 0;
                since = Instant::now();
            }
            obs.advanced(done);
            let interrupted = !is_last && super::interrupt::requested();
            let patience_spent = !is_last && eval_now && self.train.early_stop.is_some_and(|e| progress.stale_evaluations >= e.patience);
            if ckpt_now || interrupted || patience_spent {
                progress.iteration = done;
                progress.elapsed_s = elapsed0 + t0.elapsed().as_secs_f64();
                progress.pending_loss = (loss_sum, loss_n);
                let p = self.save(model, &progress)?;
                obs.checkpoint(done, &p);
            }
            if self.abort_after == Some(done) {
                std::process::abort();
            }
            if interrupted {
                out.interrupted_at = Some(done);
                break;
            }
            if patience_spent {
                out.stopped_early_at = Some(done);
                obs.warning(&format!(
                    "early stopping at iteration {done}: no better validation/test {} in {} evaluations",
                    if self.train.early_stop.is_some_and(|e| e.metric == crate::spec::StopMetric::Loss) { "loss" } else { "accuracy" },
                    progress.stale_evaluations
                ));
                break;
            }
        }
        let wall = t0.elapsed().as_secs_f64();
        let stats = stream.stats();
        out.iterations = out.interrupted_at.or(out.stopped_early_at).unwrap_or(total);
        if validation.is_some() && out.interrupted_at.is_none() {
            // The best checkpoint (chosen on validation), evaluated once on the test set.
            let best = self.dir.join("checkpoints").join("best.safetensors");
            if let Ok(tensors) = checkpoint::load_verified(&best) {
                model.load_weights(&tensors)?;
                let (l, a) = self.evaluate_on(model, self.data)?;
                out.test_loss_of_best = Some(l);
                out.test_accuracy_of_best = Some(a);
            }
        }
        out.best_accuracy = progress.best_accuracy;
        out.best_iteration = progress.best_iteration;
        out.final_test_loss = last_eval.map(|e| e.0);
        out.final_accuracy = last_eval.map(|e| e.1);
        out.wall_s = elapsed0 + wall;
        out.img_per_s = images_session as f64 / wall.max(1e-9);
        out.data_wait_fraction = stats.wait_ns as f64 * 1e-9 / wall.max(1e-9);
        Ok(out)
    }

    /// Mean loss and accuracy over the configured evaluation batches of `data` (its test stream).
    fn evaluate_on(&self, model: &mut dyn Model, data: &Pipeline) -> Result<(f64, f64), RunError> {
        let limit = self.eval_batches.unwrap_or(u64::MAX) as usize;
        let (mut loss, mut correct, mut n) = (0.0, 0u64, 0u64);
        for b in data.test_stream().take(limit) {
            let (l, c) = model.evaluate(&b)?;
            loss += l;
            correct += c;
            n += b.n as u64;
        }
        if n == 0 {
            return Err(RunError::new("E0532", "the test set is empty: nothing to evaluate on"));
        }
        Ok((loss / n as f64, correct as f64 / n as f64))
    }

    fn save(&self, model: &dyn Model, progress: &Progress) -> Result<PathBuf, RunError> {
        let dir = self.dir.join("checkpoints");
        let name = checkpoint_name(progress.iteration);
        let model_path = dir.join(format!("{name}.safetensors"));
        let state_path = dir.join(format!("{name}.state.safetensors"));
        let mut params = model.params();
        if !all_finite(&params) {
            let place = model.first_nonfinite().map(|l| format!(", first in layer `{l}`")).unwrap_or_default();
            return Err(diverged(format!("the weights are not finite at iteration {}", progress.iteration), place, self.dir));
        }
        params.metadata.insert("iteration".into(), progress.iteration.to_string());
        checkpoint::save(&model_path, &params)?;
        let mut state = model.train_state();
        state.metadata.insert("progress".into(), serde_json::to_string(progress).unwrap_or_default());
        // The state file is written last: its presence marks a complete checkpoint.
        checkpoint::save(&state_path, &state)?;
        self.rotate(&dir)?;
        Ok(model_path)
    }

    /// Writes `best.safetensors`: the model just evaluated as the best so far.
    fn save_best(&self, model: &dyn Model, iteration: u64) -> Result<(), RunError> {
        let mut params = model.params();
        if !all_finite(&params) {
            return Ok(());
        }
        params.metadata.insert("iteration".into(), iteration.to_string());
        checkpoint::save(&self.dir.join("checkpoints").join("best.safetensors"), &params)
    }

    /// Keeps the newest `checkpoint_keep` checkpoints.
    fn rotate(&self, dir: &Path) -> Result<(), RunError> {
        let mut its: Vec<u64> = std::fs::read_dir(dir)
            .map_err(|e| RunError::io(dir, "list", e))?
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_prefix("ckpt-")?.strip_suffix(".state.safetensors")?.parse().ok()
            })
            .collect();
        its.sort_unstable();
        let keep = self.train.checkpoint_keep.max(1) as usize;
        for it in its.iter().take(its.len().saturating_sub(keep)) {
            let name = checkpoint_name(*it);
            let _ = std::fs::remove_file(dir.join(format!("{name}.state.safetensors")));
            let _ = std::fs::remove_file(dir.join(format!("{name}.safetensors")));
        }
        Ok(())
    }
}

/// The training settings and batch size, as `(name, value)` for TensorBoard.
fn hyper_parameters(train: &TrainSpec, data: &Pipeline) -> Vec<(String, String)> {
    let mut out = vec![("batch".to_string(), data.config.train_batch.to_string())];
    if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(train) {
        for (k, v) in m {
            out.push((k, v.to_string()));
        }
    }
    out
}

/// Reads a checkpoint's tensors and progress.
pub fn read_checkpoint(model_path: &Path, state_path: &Path) -> Result<(Tensors, Tensors, Progress), RunError> {
    let params = checkpoint::load_verified(model_path)?;
    let state = checkpoint::load_verified(state_path)?;
    let progress = state
        .metadata
        .get("progress")
        .and_then(|p| serde_json::from_str(p).ok())
        .ok_or_else(|| RunError::new("E0503", format!("checkpoint `{}` has no progress record", state_path.display())))?;
    Ok((params, state, progress))
}
