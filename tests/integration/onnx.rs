//! `expc export onnx` against the native engine, through onnxruntime.
//!
//! These tests need a Python with numpy, onnx and onnxruntime: `EXPC_PYTHON`, or the virtual
//! environment `.ci/run` keeps at `/root/.cache/expc/venv`. Without either they print why they did
//! nothing. Protocol: for every shipped experiment and both every-op fixtures (RNN and LSTM
//! included), the engine's initial weights with batch-norm running statistics drawn at random
//! (so evaluation-mode batch norm is not the identity) are exported; onnxruntime's logits for
//! random inputs must equal the engine's evaluation forward pass within 1e-5 (relative to the
//! largest logit); `onnx.checker` must accept every model.

use crate::common::{experiment_files, repo, TempDir};
use expc::run::checkpoint::Tensors;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> Option<PathBuf> {
    let py = std::env::var_os("EXPC_PYTHON").map(PathBuf::from).or_else(|| Some(PathBuf::from("/root/.cache/expc/venv/bin/python")).filter(|p| p.exists()));
    if py.is_none() {
        eprintln!("note: no EXPC_PYTHON and no /root/.cache/expc/venv: the ONNX tests did nothing");
    }
    py
}

/// Runs every exported model in `jobs` (model, inputs as raw f32, input shape) with onnxruntime;
/// returns each model's logits, summed over the steps of sequence logits (as the engine's scores).
fn onnxruntime_logits(py: &Path, dir: &Path, jobs: &[(PathBuf, PathBuf, Vec<usize>)]) -> Vec<Vec<f32>> {
    let list: Vec<serde_json::Value> =
        jobs.iter().map(|(m, x, s)| serde_json::json!({"model": m, "inputs": x, "shape": s, "out": m.with_extension("logits")})).collect();
    std::fs::write(dir.join("jobs.json"), serde_json::to_string(&list).unwrap()).unwrap();
    let script = r#"
import json, sys
import numpy as np
import onnx
import onnxruntime as ort
for job in json.load(open(sys.argv[1])):
    onnx.checker.check_model(onnx.load(job["model"]), full_check=True)
    x = np.fromfile(job["inputs"], dtype="<f4").reshape(job["shape"])
    s = ort.InferenceSession(job["model"], providers=["CPUExecutionProvider"])
    logits, probs = s.run(["logits", "probabilities"], {"input": x})
    assert np.allclose(probs.sum(-1), 1, atol=1e-5)
    if logits.ndim == 3:
        logits = logits.sum(1)
    logits.astype("<f4").tofile(job["out"])
"#;
    let out = Command::new(py).arg("-c").arg(script).arg(dir.join("jobs.json")).output().expect("python runs");
    assert!(
        out.status.success(),
        "onnxruntime failed (install with `{} -m pip install onnx onnxruntime`):\n{}",
        py.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    jobs.iter()
        .map(|(m, _, _)| std::fs::read(m.with_extension("logits")).unwrap().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        .collect()
}

#[test]
fn onnx_export_equals_the_engine_on_every_experiment() {
    let Some(py) = python() else { return };
    let dir = TempDir::new("onnx-eq");
    let mut files = experiment_files();
    files.push(PathBuf::from("tests/fixtures/every_op_image.exp"));
    files.push(PathBuf::from("tests/fixtures/every_op_sequence.exp"));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let (mut jobs, mut expected) = (vec![], vec![]);
    for (k, f) in files.iter().enumerate() {
        let c = expc::compile::compile_path(&repo().join(f), &|p: &Path| std::fs::read_to_string(p));
        let checked = c.into_checked().unwrap_or_else(|r| panic!("{}", expc::diagnostic::render(&r.diagnostics, &r.sources, false)));
        let plan = expc::lower::lower(&checked).expect("lowers");
        let mut model = expc::run::engine_model::build(&plan, &checked.experiment, 1, 0).expect("engine");
        let mut params: Tensors = model.params();
        for (name, (_, v)) in params.tensors.iter_mut() {
            if name.ends_with(".running_mean") {
                v.iter_mut().for_each(|x| *x = rng.gen_range(-0.5..0.5));
            } else if name.ends_with(".running_var") {
                v.iter_mut().for_each(|x| *x = rng.gen_range(0.5..2.0));
            }
        }
        model.load_weights(&params).expect("weights load");
        let n = 3;
        let per: usize = plan.input_shape.iter().product();
        let x: Vec<f32> = (0..n * per).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let batch = expc::data::Batch { inputs: x.clone(), labels: vec![0; n], n, epoch: 0, iteration: 0, step: 0, indices: vec![], writer: None };
        let (_, _, scores) = model.scores(&batch).expect("forward");
        let bytes = expc::backend::onnx::export(&plan, &params, &[]).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let (m, xi) = (dir.join(format!("m{k}.onnx")), dir.join(format!("m{k}.input")));
        std::fs::write(&m, bytes).unwrap();
        std::fs::write(&xi, x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
        let mut shape = vec![n];
        shape.extend(&plan.input_shape);
        jobs.push((m, xi, shape));
        expected.push(scores);
    }
    let got = onnxruntime_logits(&py, &dir, &jobs);
    let mut report = vec![];
    for ((f, want), have) in files.iter().zip(&expected).zip(&got) {
        assert_eq!(want.len(), have.len(), "{}", f.display());
        // Relative to the largest logit: some nets start with tiny ones (cifar10_quick's first conv
        // is gaussian(0.0001)), where an absolute bound would check nothing.
        let scale = want.iter().fold(0.0f32, |m, a| m.max(a.abs())).max(f32::MIN_POSITIVE);
        let err = want.iter().zip(have).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max) / scale;
        report.push(format!("{}: {err:.2e}", f.display()));
        assert!(err <= 1e-5, "{}: ONNX differs from the engine by {err:e}\nengine {want:?}\nonnx   {have:?}", f.display());
    }
    eprintln!("{}", report.join("\n"));
}

/// The user's path: train the quick start, `expc export onnx` the run, classify the bundled test
/// digits with onnxruntime after the preprocessing the model's metadata states: its accuracy is
/// `expc eval`'s.
#[test]
fn exported_quickstart_classifies_like_expc_eval() {
    let Some(py) = python() else { return };
    let d = TempDir::new("onnx-cli");
    let expc = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_expc")).args(args).current_dir(repo()).output().expect("expc runs");
        assert!(out.status.success(), "expc {args:?}:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let runs = d.join("runs");
    expc(&["run", "experiments/mnist/lenet_quickstart.exp", "--iterations", "60", "--quiet", "--threads", "1", "--out", runs.to_str().unwrap()]);
    let run = std::fs::read_dir(runs.join("mnist_lenet_quickstart")).unwrap().next().unwrap().unwrap().path();
    let model = d.join("lenet.onnx");
    let said = expc(&["export", "onnx", run.to_str().unwrap(), "-o", model.to_str().unwrap()]);
    assert!(said.contains("opset 17"), "{said}");
    let eval = expc(&["eval", run.to_str().unwrap(), "--out", d.join("eval").to_str().unwrap()]);
    let top1: f64 = eval.split("top-1 ").nth(1).and_then(|s| s.split('%').next()).and_then(|s| s.trim().parse().ok()).expect("top-1 in eval output");
    let script = r#"
import gzip, re, sys
import numpy as np
import onnx
import onnxruntime as ort
model, images, labels = sys.argv[1:4]
meta = {p.key: p.value for p in onnx.load(model).metadata_props}
scale = float(re.match(r"input = pixel \(0\.\.255\) \* ([0-9.e-]+)$", meta["expc.preprocess"]).group(1))
assert meta["expc.classes"].split("\n") == [str(d) for d in range(10)]
x = np.frombuffer(gzip.open(images).read()[16:], dtype=np.uint8).reshape(-1, 1, 28, 28).astype(np.float32) * np.float32(scale)
y = np.frombuffer(gzip.open(labels).read()[8:], dtype=np.uint8)
probs = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(["probabilities"], {"input": x})[0]
print(100.0 * float((probs.argmax(1) == y).mean()))
"#;
    let data = repo().join("data/mnist-small");
    let out = Command::new(&py)
        .arg("-c")
        .arg(script)
        .arg(&model)
        .arg(data.join("t10k-images-idx3-ubyte.gz"))
        .arg(data.join("t10k-labels-idx1-ubyte.gz"))
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let onnx_top1: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    // 1,000 test digits: one digit is 0.1%; eval prints two decimals.
    assert!((onnx_top1 - top1).abs() < 0.01, "onnxruntime {onnx_top1}% vs expc eval {top1}%");
}

#[test]
fn export_onnx_of_a_folder_that_is_no_run_is_refused() {
    let d = TempDir::new("onnx-bad");
    let out = Command::new(env!("CARGO_BIN_EXE_expc")).args(["export", "onnx"]).arg(&*d).arg("-o").arg(d.join("m.onnx")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("E0505") && err.contains("is not a run folder"), "{err}");
    assert!(!d.join("m.onnx").exists());
}
