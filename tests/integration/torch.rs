//! The PyTorch backend (`src/backend/torch/`) against the native engine.
//!
//! These tests need a Python with torch and numpy: `EXPC_PYTHON`, which `.ci/run` sets to its cached
//! virtual environment (`/root/.cache/expc/venv`, created when missing). Without `EXPC_PYTHON` they
//! use that path when it exists, and otherwise print why they did nothing. No GPU was available
//! where they were written: CUDA is only checked for its error message.
//!
//! Equivalence protocol: the native engine trains 20 steps from its initial weights on fixed
//! batches; the generated train.py starts from the same weights (`--init-from`, an expc checkpoint)
//! and trains on the same batches, dumped by the test (`--batches-from`). The batches are fed
//! rather than drawn because expc's data order and augmentation come from ChaCha streams, which the
//! generated code does not reproduce (it draws its own, with the same rules); feeding them makes
//! augmentation irrelevant to the check (the fed samples are the crops). Dropout uses the engine's
//! own masks (`--same-masks-as-expc`: the SplitMix64 hash of seed, step, layer, sample and element,
//! reproduced in model.py), so dropout is checked exactly, not statistically.

use crate::common::{repo, TempDir};
use expc::run::checkpoint::{self, Tensors};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The interpreter with torch, or `None` (the tests then say so and pass).
fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("EXPC_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let cached = PathBuf::from("/root/.cache/expc/venv/bin/python");
    if cached.exists() {
        return Some(cached);
    }
    eprintln!("note: no EXPC_PYTHON and no /root/.cache/expc/venv: the torch backend tests did nothing");
    None
}

const STEPS: usize = 20;

/// The native engine's losses for `STEPS` steps on random batches of `batch` samples; writes the
/// initial weights and the batches into `dir`.
fn native_losses(path: &Path, dir: &Path, batch: usize) -> (expc::compile::Checked, expc::lower::Plan, Vec<f64>) {
    let c = expc::compile::compile_path(path, &|p: &Path| std::fs::read_to_string(p));
    let checked = c.into_checked().unwrap_or_else(|r| panic!("{}", expc::diagnostic::render(&r.diagnostics, &r.sources, false)));
    let plan = expc::lower::lower(&checked).expect("lowers");
    let exp = &checked.experiment;
    let mut model = expc::run::engine_model::build(&plan, exp, 1, 0).expect("engine");
    checkpoint::save(&dir.join("init.safetensors"), &model.params()).expect("save init");
    let per: usize = plan.input_shape.iter().product();
    let classes = plan.classes();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let (mut inputs, mut labels, mut losses) = (vec![], vec![], vec![]);
    for it in 0..STEPS {
        let x: Vec<f32> = (0..batch * per).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let y: Vec<u32> = (0..batch).map(|_| rng.gen_range(0..classes as u32)).collect();
        let b = expc::data::Batch { inputs: x.clone(), labels: y.clone(), n: batch, epoch: 0, iteration: it as u64, step: it as u64, indices: vec![] };
        let lr = exp.train.policy.rate(exp.train.lr, it as u64, exp.train.iterations);
        losses.push(model.train_step(&b, lr, it as u64).expect("native step"));
        inputs.extend(x);
        labels.extend(y.iter().map(|&l| l as f32));
    }
    let mut t = Tensors::default();
    let mut shape = vec![STEPS, batch];
    shape.extend(&plan.input_shape);
    t.insert("inputs", shape, inputs);
    t.insert("labels", vec![STEPS, batch], labels);
    checkpoint::save(&dir.join("batches.safetensors"), &t).expect("save batches");
    (checked, plan, losses)
}

/// Runs the exported train.py on the dumped batches; `launcher` is `None` for one process or the
/// number of torchrun processes.
fn torch_losses(py: &Path, code: &Path, dir: &Path, nproc: Option<usize>, extra: &[&str]) -> Vec<f64> {
    let mut c = Command::new(py);
    if let Some(n) = nproc {
        c.args(["-m", "torch.distributed.run", "--standalone", &format!("--nproc-per-node={n}")]);
    }
    c.arg(code.join("train.py")).args(["--threads", "1", "--same-masks-as-expc"]);
    c.arg("--init-from").arg(dir.join("init.safetensors"));
    c.arg("--batches-from").arg(dir.join("batches.safetensors"));
    let out_file = dir.join(format!("losses-{}.json", nproc.unwrap_or(1)));
    c.arg("--losses-out").arg(&out_file);
    c.args(extra);
    let out = c.output().expect("python runs");
    assert!(out.status.success(), "train.py failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&std::fs::read_to_string(&out_file).expect("losses written")).expect("losses json")
}

fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1e-12)).fold(0.0, f64::max)
}

fn export(checked: &expc::compile::Checked, plan: &expc::lower::Plan, code: &Path) {
    let e = expc::backend::torch::export(checked, plan, "test", None).unwrap_or_else(|d| panic!("{}", expc::diagnostic::render(&d, &checked.sources, false)));
    expc::backend::torch::write(&e, code).expect("write export");
}

/// Every shipped experiment and the every-op fixtures: the first 20 losses agree within 1e-4.
#[test]
fn torch_losses_equal_the_native_engine_on_every_experiment() {
    let Some(py) = python() else { return };
    let mut files = crate::common::experiment_files();
    files.push(PathBuf::from("tests/fixtures/every_op_image.exp"));
    files.push(PathBuf::from("tests/fixtures/every_op_sequence.exp"));
    let mut report = vec![];
    for f in &files {
        let dir = TempDir::new("torch-eq");
        let c = expc::compile::compile_path(&repo().join(f), &|p: &Path| std::fs::read_to_string(p));
        let batch = c.experiment.as_ref().map(|e| e.data.batch as usize).unwrap_or(4).min(8);
        let (checked, plan, native) = native_losses(&repo().join(f), &dir, batch);
        export(&checked, &plan, &dir.join("code"));
        let torch = torch_losses(&py, &dir.join("code"), &dir, None, &[]);
        let r = max_rel(&native, &torch);
        eprintln!("{}: max relative loss difference over {STEPS} steps {r:.2e} (first loss {:.5})", f.display(), native[0]);
        report.push((f.display().to_string(), r));
    }
    let bad: Vec<_> = report.iter().filter(|(_, r)| !(*r <= 1e-4)).collect();
    assert!(bad.is_empty(), "losses differ by more than 1e-4: {bad:?}");
}
