//! Training runs end to end on synthetic data: artefacts, resume equivalence, divergence,
//! checkpoint round trip, comparison.

use expc::config::{Overrides, Settings};
use expc::run::driver::{self, Quiet};
use expc::run::{checkpoint, compare, engine_model, metrics, session};
use expc::source::SourceMap;
use std::path::Path;

const SPEC: &str = "experiment tiny
data {
  dataset synthetic shape=3x8x8 classes=4 train=256 test=64
  batch 16
  scale 1/255
  augment pad=1 crop=8x8 mirror
}
model {
  input 3x8x8
  conv1: conv 4 3x3 pad=1
  bn1: batchnorm
  relu
  pool1: maxpool 2
  drop: dropout 0.2
  fc1: fc 4
  loss: softmax_loss
  accuracy
}
train {
  solver sgd momentum=0.9
  lr 0.05
  policy step gamma=0.5 stepsize=20
  weight_decay 1e-4
  iterations 40
  eval every=10 batches=2
  log every=10
  checkpoint every=10 keep=2
  seed 3
}
";

use crate::common::TempDir;

fn tmp(name: &str) -> TempDir {
    TempDir::new(&format!("train-{name}"))
}

fn settings(dir: &Path) -> Settings {
    Settings::load(None, dir, &|_| None, &Overrides::default(), &mut SourceMap::new()).expect("settings")
}

/// The checked IR of a spec, trained for `iterations` (as `--iterations` would set them).
fn checked(text: &str, iterations: u64) -> expc::compile::Checked {
    let c = expc::compile::compile_text("tiny.exp", text, Path::new("."), &|p: &Path| std::fs::read_to_string(p));
    let mut c = c.into_checked().unwrap_or_else(|r| panic!("{}", expc::diagnostic::render(&r.diagnostics, &r.sources, false)));
    c.experiment.train.iterations = iterations;
    c
}

fn train(text: &str, dir: &Path, iterations: u64, resuming: bool) -> Result<session::Summary, expc::run::RunError> {
    let c = checked(text, iterations);
    let plan = expc::lower::lower(&c).expect("lowers");
    session::train(&c, &plan, dir, &settings(dir), 2, resuming, None, &mut Quiet)
}

/// Metrics without the timing columns.
/// (iteration, lr, train loss, test loss, test accuracy) of a metrics row.
type LossRow = (u64, f64, Option<f64>, Option<f64>, Option<f64>);

fn losses(dir: &Path) -> Vec<LossRow> {
    metrics::read(&dir.join("metrics.csv")).expect("metrics").into_iter().map(|r| (r.iteration, r.lr, r.train_loss, r.test_loss, r.test_accuracy)).collect()
}

#[test]
fn a_run_writes_every_artefact_and_learns() {
    let d = tmp("artefacts");
    let s = train(SPEC, &d, 40, false).expect("trains");
    for f in ["metrics.csv", "spec.json", "summary.json", "curves.png", "curves.svg", "filters.png", "checkpoints/best.safetensors"] {
        assert!(d.join(f).exists(), "{f} missing");
    }
    let rows = losses(&d);
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [10, 20, 30, 40]);
    assert!(rows[3].2.expect("train loss") < rows[0].2.expect("train loss"), "loss falls: {rows:?}");
    assert!(s.outcome.best_accuracy.expect("evaluated") > 0.5, "{:?}", s.outcome);
    // keep=2: only the newest two checkpoints remain.
    let (it, _, _) = driver::latest_checkpoint(&d).expect("a checkpoint");
    assert_eq!(it, 40);
    assert!(!d.join("checkpoints/ckpt-0000020.safetensors").exists());
    assert!(d.join("checkpoints/ckpt-0000030.safetensors").exists());
    let ckpt = checkpoint::load(&d.join("checkpoints/ckpt-0000040.safetensors")).expect("loads");
    for name in ["conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "fc1.weight", "fc1.bias"] {
        assert!(ckpt.get(name).is_some(), "{name} missing from {:?}", ckpt.tensors.keys().collect::<Vec<_>>());
    }
    assert_eq!(ckpt.get("conv1.weight").expect("w").0, vec![4, 3, 3, 3]);
    assert_eq!(ckpt.get("fc1.weight").expect("w").0, vec![4, 64]);
}

#[test]
fn training_is_deterministic_and_resume_equals_an_uninterrupted_run() {
    let full = tmp("full");
    train(SPEC, &full, 40, false).expect("trains");
    let again = tmp("again");
    train(SPEC, &again, 40, false).expect("trains");
    assert_eq!(losses(&full), losses(&again), "same seed and threads: identical metrics");

    // "Killed" after the checkpoint at 20: a run that stops there, then resumes to 40.
    let cut = tmp("cut");
    train(SPEC, &cut, 20, false).expect("first half");
    // Rows after the checkpoint (as a killed run might have written) are dropped on resume.
    let mut w = metrics::Writer::resume(&cut.join("metrics.csv"), 20).expect("reopen");
    w.write(&metrics::Row { iteration: 25, ..Default::default() }).expect("write");
    drop(w);
    train(SPEC, &cut, 40, true).expect("resumes");
    assert_eq!(losses(&cut), losses(&full), "resumed metrics equal the uninterrupted run's");
    let a = checkpoint::load(&full.join("checkpoints/ckpt-0000040.safetensors")).expect("a");
    let b = checkpoint::load(&cut.join("checkpoints/ckpt-0000040.safetensors")).expect("b");
    assert_eq!(a.tensors, b.tensors, "identical final weights");
    let e = train(SPEC, &cut, 40, true).expect_err("already finished");
    assert_eq!(e.code, "E0533");
}

#[test]
fn divergence_stops_with_the_iteration_and_layer_and_keeps_the_last_checkpoint() {
    // Inputs that overflow to infinity: the loss is NaN at the first step.
    let d = tmp("nan");
    let spec = SPEC.replace("scale 1/255", "scale 3e38").replace("checkpoint every=10 keep=2", "checkpoint every=1 keep=2");
    let e = train(&spec, &d, 40, false).expect_err("diverges");
    assert_eq!(e.code, "E0531", "{e}");
    assert!(e.message.contains("at iteration 1"), "{e}");
    assert!(e.message.contains("layer `"), "names a layer: {e}");
    assert!(e.message.contains("no checkpoint with finite weights"), "{e}");
    assert!(!e.help.as_deref().unwrap_or("").contains("expc resume"), "no resume without a good checkpoint: {e}");
    assert!(d.join("curves.png").exists(), "figures are drawn from what was measured");
}

/// Exploding loss (docs/runs.md, "Divergence"): a huge but finite loss stops the run too, and
/// the checkpoint it names holds finite weights.
#[test]
fn an_exploding_loss_is_divergence_and_names_a_finite_checkpoint() {
    for lr in ["1e8", "1e6"] {
        let d = tmp(&format!("explode-{lr}"));
        let spec = SPEC.replace("lr 0.05", &format!("lr {lr}")).replace("checkpoint every=10 keep=2", "checkpoint every=1 keep=2");
        let e = train(&spec, &d, 40, false).expect_err("diverges");
        assert_eq!(e.code, "E0531", "{e}");
        assert!(e.message.contains("exploded") || e.message.contains("is NaN") || e.message.contains("is inf"), "{e}");
        if let Some((it, model)) = driver::last_good_checkpoint(&d) {
            let t = checkpoint::load(&model).expect("last good checkpoint loads");
            assert!(driver::all_finite(&t), "checkpoint {it} holds only finite values");
            assert!(e.message.contains(&model.display().to_string()), "{e}");
        }
        assert!(d.join("curves.png").exists());
    }
    // The threshold: 1000 × max(ln(classes), first loss).
    assert!((driver::exploding_threshold(10, None) - 1000.0 * 10f64.ln()).abs() < 1e-9);
    assert_eq!(driver::exploding_threshold(10, Some(50.0)), 50_000.0);
    // A normal run is never flagged: the shipped spec trains (covered above) under the rule.
}

#[test]
fn a_checkpoint_restores_identical_predictions() {
    let d = tmp("roundtrip");
    train(SPEC, &d, 20, false).expect("trains");
    let c = checked(SPEC, 20);
    let exp = &c.experiment;
    let plan = expc::lower::lower(&c).expect("lowers");
    let cfg = expc::run::data_source::data_config(&exp.data, &settings(&d), exp.train.seed).expect("config");
    let data = expc::data::Pipeline::load(&cfg).expect("data");
    let (_, model_path, state_path) = driver::latest_checkpoint(&d).expect("checkpoint");
    let (params, state, _) = driver::read_checkpoint(&model_path, &state_path).expect("reads");
    let mut a = engine_model::build(&plan, exp, 1, 0).expect("model");
    let mut b = engine_model::build(&plan, exp, 2, 0).expect("model");
    a.restore(&params, &state).expect("restores");
    b.restore(&params, &state).expect("restores");
    let batch = data.test_stream().next().expect("a test batch");
    let (la, ca) = a.evaluate(&batch).expect("eval");
    let (lb, cb) = b.evaluate(&batch).expect("eval");
    assert_eq!(ca, cb);
    assert!((la - lb).abs() < 1e-4 * la.abs().max(1.0), "{la} vs {lb}");
    assert_eq!(a.params().tensors, params.tensors, "restored tensors read back identically");
}

#[test]
fn compare_tables_two_runs() {
    let a = tmp("cmp-a");
    let b = tmp("cmp-b");
    train(SPEC, &a, 20, false).expect("trains");
    train(&SPEC.replace("weight_decay 1e-4", "weight_decay 0"), &b, 20, false).expect("trains");
    let runs = compare::load(&[a.to_path_buf(), b.to_path_buf()]).expect("loads");
    let table = compare::table(&runs);
    assert_eq!(table.len(), 2);
    assert!(table.iter().all(|l| l.best_accuracy.is_some() && l.iterations == 20));
    let text = compare::render_table(&table);
    assert!(text.starts_with("run"), "{text}");
    assert_eq!(text.lines().count(), 3);
    compare::figure(&runs, &a.join("cmp")).expect("figure");
    assert!(a.join("cmp.png").exists() && a.join("cmp.svg").exists());
    let e = compare::load(&[a.join("nope")]).err().expect("missing run");
    assert_eq!(e.code, "E0505");
}

/// The real thing: `expc run` killed mid-run (abort, as `kill -9`: no cleanup), then `expc resume`.
#[test]
fn expc_resume_after_a_hard_kill_equals_an_uninterrupted_run() {
    let root = tmp("kill");
    std::fs::write(root.join("tiny.exp"), SPEC).expect("write spec");
    let run = |abort: Option<&str>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_expc"));
        c.current_dir(&*root).args(["run", "tiny.exp", "--quiet", "--threads", "2", "--out", "runs"]);
        if let Some(a) = abort {
            c.env("EXPC_TEST_ABORT_AFTER", a);
        }
        let out = c.output().expect("expc runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let dir = text.lines().find_map(|l| l.strip_prefix("run folder: ")).map(|d| root.join(d.trim())).expect("run folder printed");
        (out.status, dir)
    };
    let (status, full) = run(None);
    assert!(status.success());
    let (status, killed) = run(Some("25"));
    assert!(!status.success(), "the aborted run must die");
    assert_eq!(driver::latest_checkpoint(&killed).expect("checkpoint").0, 20);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_expc"))
        .current_dir(&*root)
        .arg("resume")
        .arg(&killed)
        .args(["--quiet", "--threads", "2"])
        .output()
        .expect("resume runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(losses(&killed), losses(&full));
}
