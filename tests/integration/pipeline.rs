//! Stage: the whole pipeline as `expc run` drives it — every command that trains prints exactly
//! `check`'s diagnostics, located, before a run folder exists or a byte of data is read; and every
//! documented setting reaches the run.

use crate::common::TempDir;
use std::path::Path;
use std::process::Command;

const BASE: &str = "experiment u
data {
  dataset synthetic shape=3x8x8 classes=4 train=64 test=32
  batch 16
  scale 1/255
}
model {
  input 3x8x8
  conv1: conv 8 3x3 pad=1
  relu
  fc1: fc 4
  loss: softmax_loss
}
train {
  lr 0.01
  iterations 5
}
";

/// Runs `expc ARGS` in `dir`; returns (exit code, stdout, stderr).
fn expc_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_expc")).current_dir(dir).args(args).output().expect("expc runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `expc run spec.exp` on `text` in a fresh folder: what it printed on stderr, after checking that
/// it failed, that `expc check` prints the same and that no run folder was created.
fn run_rejected(text: &str) -> String {
    run_rejected_with(text, true)
}

/// `same_as_check`: false for errors about the data itself, which `check` (independent of the
/// machine's datasets) does not see.
fn run_rejected_with(text: &str, same_as_check: bool) -> String {
    let d = TempDir::new("pipeline-rejected");
    std::fs::write(d.join("spec.exp"), text).expect("write spec");
    make_image_folders(&d);
    let (code, _, run_err) = expc_in(&d, &["run", "spec.exp", "--out", "runs", "--quiet"]);
    assert_eq!(code, 1, "{run_err}");
    assert!(!d.join("runs").exists(), "no run folder is created for a rejected spec");
    let (_, _, check_err) = expc_in(&d, &["check", "spec.exp"]);
    assert!(!same_as_check || check_err.starts_with(&run_err), "run prints exactly check's diagnostics:\nrun:\n{run_err}\ncheck:\n{check_err}");
    run_err
}

/// `three/` has 3 class folders, `one/` has 1; each class holds ten 8×8 RGB images (one goes to the test set).
fn make_image_folders(d: &Path) {
    for (root, classes) in [("three", 3), ("one", 1)] {
        for c in 0..classes {
            let dir = d.join(root).join(format!("class{c}"));
            std::fs::create_dir_all(&dir).expect("mkdir");
            for i in 0..10u8 {
                let img = image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 30, y as u8 * 30, 40 * c as u8 + i]));
                img.save(dir.join(format!("{i}.png"))).expect("png");
            }
        }
    }
}

#[test]
fn run_reports_a_cycle_located() {
    insta::assert_snapshot!(run_rejected(&BASE.replace("conv1: conv 8 3x3 pad=1", "conv1: conv 8 3x3 pad=1 from=fc1")), @"
    error[E0201]: the layers `conv1`, `conv1.relu`, `fc1` form a cycle
       ┌─ spec.exp:9:32
       │
     9 │   conv1: conv 8 3x3 pad=1 from=fc1
       │                                ^^^ `conv1` reads `fc1`
    10 │   relu
       │   ---- `conv1.relu` reads `conv1`
    11 │   fc1: fc 4
       │   --- `fc1` reads `conv1.relu`
       │
       = help: a layer can only read layers computed before it; break the cycle by changing one `from=`
    ");
}

#[test]
fn run_reports_a_self_reference_located() {
    insta::assert_snapshot!(run_rejected(&BASE.replace("fc1: fc 4", "fc1: fc 4 from=fc1")), @"
    error[E0201]: the layers `fc1` form a cycle
       ┌─ spec.exp:11:18
       │
    11 │   fc1: fc 4 from=fc1
       │                  ^^^ `fc1` reads `fc1`
       │
       = help: a layer can only read layers computed before it; break the cycle by changing one `from=`
    ");
}

#[test]
fn run_reports_groups_that_do_not_divide_the_channels() {
    insta::assert_snapshot!(run_rejected(&BASE.replace("conv1: conv 8 3x3 pad=1", "conv1: conv 8 3x3 pad=1 groups=2")), @"
    error[E0212]: layer `conv1`: groups=2 must divide the input channels (3) and the output channels (8)
      ┌─ spec.exp:9:3
      │
    8 │   input 3x8x8
      │   ----- `input` produces 3×8×8 = 192
    9 │   conv1: conv 8 3x3 pad=1 groups=2
      │   ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^ 2 groups
      │
      = help: choose groups dividing both channel counts
    ");
}

#[test]
fn run_reports_a_kernel_larger_than_its_input() {
    insta::assert_snapshot!(run_rejected(&BASE.replace("conv1: conv 8 3x3 pad=1", "conv1: conv 8 9x9")), @"
    error[E0211]: layer `conv1`: the conv window (9 along the height) is larger than its input 3×8×8 padded to 8
      ┌─ spec.exp:9:3
      │
    8 │   input 3x8x8
      │   ----- `input` produces 3×8×8 = 192
    9 │   conv1: conv 8 9x9
      │   ^^^^^^^^^^^^^^^^^ window larger than the input
      │
      = help: use a smaller kernel, add padding (`pad=`), or remove a pooling layer before it
    ");
}

#[test]
fn run_reports_global_pooling_of_a_vector() {
    let text = BASE.replace("conv1: conv 8 3x3 pad=1", "conv1: fc 8").replace("  fc1: fc 4", "  gap: avgpool global\n  fc1: fc 4");
    insta::assert_snapshot!(run_rejected(&text), @"
    error[E0210]: layer `gap`: avgpool expects a C×H×W input, found 8
       ┌─ spec.exp:11:3
       │
    10 │   relu
       │   ---- `conv1.relu` produces 8
    11 │   gap: avgpool global
       │   ^^^^^^^^^^^^^^^^^^^ expects a C×H×W input
    ");
}

#[test]
fn run_reports_a_loss_on_feature_maps() {
    insta::assert_snapshot!(run_rejected(&BASE.replace("  fc1: fc 4\n", "")), @"
    error[E0210]: layer `loss`: softmax_loss expects logits C (or T×C for sequences), found 8×8×8
       ┌─ spec.exp:11:3
       │
    10 │   relu
       │   ---- `conv1.relu` produces 8×8×8 = 512
    11 │   loss: softmax_loss
       │   ^^^^^^^^^^^^^^^^^^ expects logits
       │
       = help: put an `fc CLASSES` layer before the loss
    ");
}

#[test]
fn run_reports_batchnorm_eps_zero() {
    insta::assert_snapshot!(run_rejected(&BASE.replace("  relu\n", "  batchnorm eps=0\n  relu\n")), @"
    error[E0106]: layer `conv1.batchnorm` (batchnorm): `eps` must lie in (0, 1]: it keeps 1/√(σ² + ε) finite for a constant channel
       ┌─ spec.exp:10:17
       │
    10 │   batchnorm eps=0
       │                 ^ `eps` must lie in (0, 1]: it keeps 1/√(σ² + ε) finite for a constant channel
    ");
}

#[test]
fn run_checks_the_classes_of_an_image_folder_before_training() {
    let three = BASE.replace("dataset synthetic shape=3x8x8 classes=4 train=64 test=32", "dataset folder \"three\" shape=3x8x8").replace("batch 16", "batch 2");
    insta::assert_snapshot!(run_rejected_with(&three.replace("fc1: fc 4", "fc1: fc 2"), false), @"
    error[E0221]: `loss` gets 2 logits but the data has 3 classes
       ┌─ spec.exp:12:3
       │
     2 │ data {
       │ ---- the image folder `three` has 3 classes
       ·
    11 │   fc1: fc 2
       │   --- `fc1` produces 2
    12 │   loss: softmax_loss
       │   ^^^^^^^^^^^^^^^^^^ expects 3 logits
       │
       = help: make the last layer `fc 3`
    ");
    let one = BASE
        .replace("dataset synthetic shape=3x8x8 classes=4 train=64 test=32", "dataset folder \"one\" shape=3x8x8")
        .replace("batch 16", "batch 2\n  test_batch 1");
    insta::assert_snapshot!(run_rejected_with(&one.replace("fc1: fc 4", "fc1: fc 2"), false), @"
    error[E0221]: `loss` gets 2 logits but the data has 1 class
       ┌─ spec.exp:13:3
       │
     2 │ data {
       │ ---- the image folder `one` has 1 class
       ·
    12 │   fc1: fc 2
       │   --- `fc1` produces 2
    13 │   loss: softmax_loss
       │   ^^^^^^^^^^^^^^^^^^ expects 1 logits
       │
       = help: make the last layer `fc 1`
    ");
}

#[test]
fn run_reports_a_missing_image_folder_before_creating_a_run_folder() {
    let text = BASE.replace("dataset synthetic shape=3x8x8 classes=4 train=64 test=32", "dataset folder \"nowhere\" shape=3x8x8");
    insta::assert_snapshot!(run_rejected_with(&text, false), @"
    error[E0520]: the image folder `nowhere` does not exist
      ┌─ spec.exp:2:1
      │
    2 │ data {
      │ ^^^^ the dataset of this experiment
      │
      = help: an image folder holds one sub-folder per class (ROOT/<class>/*.png), or train/ and test/ with one per class; give its path, or a key of [data] in expc.toml (`--data nowhere=PATH` on the command line)
    ");
}

#[test]
fn run_reports_an_accuracy_on_other_logits() {
    let text = BASE.replace("  fc1: fc 4\n", "  f0: fc 4\n  fc1: fc 4\n").replace("  loss: softmax_loss\n", "  loss: softmax_loss\n  acc: accuracy from=f0\n");
    let d = TempDir::new("pipeline-acc");
    std::fs::write(d.join("spec.exp"), text).expect("write");
    // `check` accepts it (the model can be analysed); training refuses it, located.
    assert_eq!(expc_in(&d, &["check", "spec.exp"]).0, 0);
    let (code, _, err) = expc_in(&d, &["run", "spec.exp", "--out", "runs"]);
    assert_eq!(code, 1);
    assert!(!d.join("runs").exists());
    insta::assert_snapshot!(err, @"
    error[E0303]: `acc` reads other logits than the loss
       ┌─ spec.exp:14:3
       │
    13 │   loss: softmax_loss
       │   ------------------ the loss
    14 │   acc: accuracy from=f0
       │   ^^^^^^^^^^^^^^^^^^^^^ accuracy of a different layer
       │
       = help: backends measure accuracy on the loss's logits: read the same layer as the loss (`from=`)
    ");
}

// ---- every documented setting reaches the run ------------------------------------------------

/// Trains `text` (with extra `expc run` arguments) and returns the metrics rows as
/// (iteration, lr, train_loss, test_loss, test_accuracy) strings.
fn trained_rows(text: &str, args: &[&str]) -> Vec<Vec<String>> {
    let d = TempDir::new("pipeline-settings");
    std::fs::write(d.join("spec.exp"), text).expect("write");
    let mut all = vec!["run", "spec.exp", "--out", "runs", "--quiet", "--threads", "1"];
    all.extend_from_slice(args);
    let (code, out, err) = expc_in(&d, &all);
    assert_eq!(code, 0, "{err}");
    let dir = out.lines().find_map(|l| l.strip_prefix("run folder: ")).expect("prints its run folder");
    metrics_rows(&d.join(dir.trim()))
}

/// A run folder's metrics rows as (iteration, lr, train_loss, test_loss, test_accuracy) strings.
fn metrics_rows(dir: &Path) -> Vec<Vec<String>> {
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).expect("metrics.csv");
    // Columns: iteration, epoch, lr, train_loss, test_loss, test_accuracy, … (epoch dropped).
    csv.lines().skip(1).map(|l| l.split(',').take(6).enumerate().filter(|(i, _)| *i != 1).map(|(_, v)| v.to_string()).collect()).collect()
}

fn column(rows: &[Vec<String>], k: usize) -> Vec<String> {
    rows.iter().map(|r| r[k].clone()).collect()
}

#[test]
fn shuffle_changes_the_order_of_training_samples() {
    let text = BASE.replace("iterations 5", "iterations 8\n  log every=1");
    let shuffled = trained_rows(&text, &[]);
    let in_order = trained_rows(&text.replace("batch 16", "batch 16\n  shuffle false"), &[]);
    assert_eq!(shuffled.len(), 8);
    assert_eq!(in_order.len(), 8);
    assert_ne!(column(&shuffled, 2), column(&in_order, 2), "shuffle false trains on other batches");
    // The same spec twice: identical.
    assert_eq!(column(&in_order, 2), column(&trained_rows(&text.replace("batch 16", "batch 16\n  shuffle false"), &[]), 2));
}

#[test]
fn accuracy_top_k_is_measured() {
    // An untrained net (tiny lr) on 4 classes: top-4 is always right, top-1 is not.
    let text = BASE.replace("lr 0.01", "lr 1e-9").replace("iterations 5", "iterations 2");
    let acc = |k: u32| -> f64 {
        let rows = trained_rows(&text.replace("  loss: softmax_loss\n", &format!("  loss: softmax_loss\n  accuracy top={k}\n")), &[]);
        rows.last().expect("a row")[4].parse().expect("an accuracy")
    };
    let (a1, a2, a4) = (acc(1), acc(2), acc(4));
    assert_eq!(a4, 1.0);
    assert!(a1 < a2 && a2 < a4, "top-1 {a1} < top-2 {a2} < top-4 {a4}");
}

#[test]
fn test_batch_sets_how_much_an_evaluation_reads() {
    let text = BASE.replace("iterations 5", "iterations 4\n  eval every=4 batches=1");
    let small = trained_rows(&text.replace("batch 16", "batch 16\n  test_batch 4"), &[]);
    let large = trained_rows(&text.replace("batch 16", "batch 16\n  test_batch 32"), &[]);
    assert_eq!(column(&small, 1), column(&large, 1), "training is the same");
    assert_ne!(column(&small, 3), column(&large, 3), "one batch of 4 vs one batch of 32 test images");
}

#[test]
fn log_every_sets_the_metrics_rows() {
    let rows = trained_rows(&BASE.replace("iterations 5", "iterations 6\n  log every=2"), &[]);
    assert_eq!(column(&rows, 0), ["2", "4", "6"]);
}

#[test]
fn cutout_colour_jitter_and_resized_crop_reach_the_run_and_repeat_exactly() {
    let text = BASE.replace("iterations 5", "iterations 10000\n  log every=1");
    let plain = trained_rows(&text, &["--iterations", "6"]);
    let all = "augment pad=1 crop=8x8 mirror cutout=4 brightness=0.3 contrast=0.3 saturation=0.3 resized_crop=0.3";
    let augmented = text.replace("scale 1/255", &format!("scale 1/255\n  {all}"));
    let rows = trained_rows(&augmented, &["--iterations", "6"]);
    assert_eq!(column(&rows, 0), ["1", "2", "3", "4", "5", "6"]);
    assert!(column(&rows, 2).iter().all(|l| l.parse::<f64>().is_ok_and(f64::is_finite)), "{rows:?}");
    assert!(rows.last().expect("rows")[4].parse::<f64>().is_ok(), "a test accuracy at the end: {rows:?}");
    assert_eq!(column(&rows, 2), column(&trained_rows(&augmented, &["--iterations", "6"]), 2), "the same spec trains the same");
    // Each setting alone trains on other samples than no augmentation.
    for one in ["cutout=4", "brightness=0.3", "contrast=0.3", "saturation=0.3", "resized_crop=0.3"] {
        let rows = trained_rows(&text.replace("scale 1/255", &format!("scale 1/255\n  augment {one}")), &["--iterations", "3"]);
        assert_ne!(column(&rows, 2), column(&plain, 2)[..3], "{one}");
    }
    // An image folder: random-resized crops of 6x6 for training, the centre 6x6 for evaluation.
    let d = TempDir::new("pipeline-folder-augment");
    make_image_folders(&d);
    let folder = text
        .replace(
            "dataset synthetic shape=3x8x8 classes=4 train=64 test=32",
            "dataset folder \"three\" shape=3x8x8\n  augment crop=6x6 resized_crop=0.08 mirror brightness=0.4 cutout=2",
        )
        .replace("batch 16", "batch 3")
        .replace("input 3x8x8", "input 3x6x6")
        .replace("fc1: fc 4", "fc1: fc 3");
    std::fs::write(d.join("spec.exp"), folder).expect("write");
    let (code, out, err) = expc_in(&d, &["run", "spec.exp", "--out", "runs", "--quiet", "--threads", "1", "--iterations", "4"]);
    assert_eq!(code, 0, "{err}");
    let dir = out.lines().find_map(|l| l.strip_prefix("run folder: ")).expect("prints its run folder");
    let rows = metrics_rows(&d.join(dir.trim()));
    assert_eq!(column(&rows, 0), ["1", "2", "3", "4"]);
    assert!(rows.last().expect("rows")[4].parse::<f64>().is_ok(), "{rows:?}");
}

#[test]
fn iterations_flag_drives_every_policy_and_the_default_log_interval() {
    // Policies in Caffe's form; `poly` decays to 0 at the run's last iteration, so it must use
    // `--iterations`, not the spec's 10000.
    let policies = [
        ("fixed", 0.01),
        ("step gamma=0.5 stepsize=4", 0.01 * 0.25),
        ("multistep 3 6 gamma=0.1", 0.01 * 0.01),
        ("exp gamma=0.9", 0.01 * 0.9f64.powi(9)),
        ("inv gamma=0.1 power=0.5", 0.01 * (1.0f64 + 0.9).powf(-0.5)),
        ("poly power=2", 0.01 * (1.0f64 - 9.0 / 10.0).powi(2)),
        ("sigmoid gamma=0.5 stepsize=5", 0.01 / (1.0 + (-0.5f64 * 4.0).exp())),
    ];
    for (policy, last_lr) in policies {
        let text = BASE.replace("iterations 5", &format!("iterations 10000\n  policy {policy}"));
        let rows = trained_rows(&text, &["--iterations", "10"]);
        // The default log interval follows the run's iterations (every iteration for 10).
        assert_eq!(rows.len(), 10, "{policy}");
        assert_eq!(rows.last().expect("rows")[0], "10", "{policy}");
        let lr: f64 = rows.last().expect("rows")[1].parse().expect("lr");
        assert!((lr - last_lr).abs() <= 1e-9 * last_lr.max(1e-12) + 1e-15, "{policy}: lr {lr} at the last iteration, expected {last_lr}");
    }
}

#[test]
fn iterations_zero_is_refused() {
    let d = TempDir::new("pipeline-zero");
    std::fs::write(d.join("spec.exp"), BASE).expect("write");
    let (code, _, err) = expc_in(&d, &["run", "spec.exp", "--iterations", "0", "--out", "runs"]);
    assert_eq!(code, 1);
    assert!(err.contains("--iterations 0"), "{err}");
    assert!(!d.join("runs").exists());
}

#[test]
#[cfg(unix)]
fn ctrl_c_stops_after_a_checkpoint_and_resume_finishes_the_run() {
    use std::io::BufRead;
    let d = TempDir::new("pipeline-interrupt");
    let text = BASE.replace("iterations 5", "iterations 400\n  log every=7\n  checkpoint every=1000");
    std::fs::write(d.join("spec.exp"), &text).expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_expc"))
        .current_dir(&*d)
        .args(["run", "spec.exp", "--out", "runs", "--quiet", "--threads", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("run folder line");
    let dir = d.join(line.trim().strip_prefix("run folder: ").expect("run folder"));
    // Wait for training to start (the first metrics row), then press Ctrl-C once.
    let t = std::time::Instant::now();
    while std::fs::read_to_string(dir.join("metrics.csv")).map_or(true, |m| m.lines().count() < 2) && t.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SAFETY: sends a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        println!("the run finished before the signal arrived; nothing to check");
        return;
    }
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted after iteration") && err.contains("expc resume"), "{err}");
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary.json")).expect("json");
    let at = summary["interrupted_at"].as_u64().expect("summary records the interruption");
    assert!(at < 400);
    assert!(dir.join("curves.png").exists(), "figures are drawn");
    assert!(dir.join(format!("checkpoints/ckpt-{at:07}.safetensors")).exists(), "a checkpoint at iteration {at}");
    // Resume finishes the run; its metrics equal an uninterrupted run's.
    let (code, _, err) = expc_in(&d, &["resume", dir.to_str().expect("utf-8"), "--quiet", "--threads", "1"]);
    assert_eq!(code, 0, "{err}");
    let full = trained_rows(&text, &[]);
    let resumed = metrics_rows(&dir);
    assert_eq!(column(&resumed, 0), column(&full, 0));
    assert_eq!(column(&resumed, 2), column(&full, 2), "train losses equal an uninterrupted run's");
}

#[test]
fn a_sweep_over_one_section_draws_its_figure_in_a_fresh_folder_and_reports_failed_members() {
    let d = TempDir::new("pipeline-sweep");
    // Unscaled pixels (no `scale`): lr 10 blows the loss up, lr 0.001 trains.
    let text = BASE.replace("  scale 1/255\n", "");
    std::fs::write(d.join("spec.exp"), text).expect("write");
    let (code, out, err) = expc_in(
        &d,
        &["run", "spec.exp", "--sweep", "train.lr=10,0.001", "--sweep", "train.weight_decay=0,5e-4", "--out", "fresh/out", "--quiet", "--jobs", "1"],
    );
    assert_eq!(code, 1, "a failed member fails the sweep:\n{err}");
    assert!(err.contains("sweep: 2 of 4 runs failed: lr10_weight_decay0, lr10_weight_decay5em4"), "{err}");
    assert!(!err.contains("E0014"), "two settings of one section make one block: {err}");
    let figure = out.lines().find_map(|l| l.strip_prefix("figure: ")).unwrap_or_else(|| panic!("a figure of the two good runs:\n{out}\n{err}"));
    assert!(d.join(figure).exists());
    let (code, _, err) = expc_in(&d, &["run", "spec.exp", "--sweep", "train.lr=0.001,0.0001", "--out", "fresh2", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("sweep: all 2 runs done"), "{err}");
}

/// The Python with torch/tensorboard/onnxruntime that CI prepares (`EXPC_PYTHON`, else the cached
/// venv `.ci/run` creates), if it has `module`.
pub fn python_with(module: &str) -> Option<std::path::PathBuf> {
    let python = std::env::var_os("EXPC_PYTHON").map(std::path::PathBuf::from).unwrap_or_else(|| "/root/.cache/expc/venv/bin/python".into());
    let ok = Command::new(&python).args(["-c", &format!("import {module}")]).output().map(|o| o.status.success()).unwrap_or(false);
    ok.then_some(python)
}

#[test]
fn tensorboard_reads_the_event_file_of_a_run() {
    let d = TempDir::new("pipeline-tensorboard");
    let text = BASE.replace("iterations 5", "iterations 6\n  log every=2\n  eval every=3");
    std::fs::write(d.join("spec.exp"), &text).expect("write");
    let (code, out, err) = expc_in(&d, &["run", "spec.exp", "--out", "runs", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let dir = d.join(out.lines().find_map(|l| l.strip_prefix("run folder: ")).expect("run folder").trim());
    let events: Vec<_> =
        std::fs::read_dir(&dir).expect("ls").flatten().filter(|e| e.file_name().to_string_lossy().starts_with("events.out.tfevents.")).collect();
    assert_eq!(events.len(), 1, "one event file beside metrics.csv");
    let Some(python) = python_with("tensorboard") else {
        println!("skipped the read-back: no Python with the `tensorboard` package (set EXPC_PYTHON, or run .ci/run once)");
        return;
    };
    let script = r#"
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
ea = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "tensors": 0})
ea.Reload()
for t in sorted(ea.Tags()["scalars"]):
    print(t, " ".join(str(e.step) for e in ea.Scalars(t)))
print("hparams", b"| lr | 0.01 |" in ea.Tensors("hparams")[0].tensor_proto.string_val[0])
"#;
    let o = Command::new(python).args(["-c", script]).arg(&dir).output().expect("python runs");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        text.trim(),
        "img_per_s 2 3 4 6\nlr 2 3 4 6\ntest/accuracy 3 6\ntest/loss 3 6\ntrain/loss 2 3 4 6\nhparams True",
        "the scalars of every metrics row and the hyper-parameters"
    );
}

#[test]
fn eval_and_predict_use_a_trained_model_with_its_class_names() {
    let d = TempDir::new("pipeline-eval");
    make_image_folders(&d);
    let text = BASE
        .replace("dataset synthetic shape=3x8x8 classes=4 train=64 test=32", "dataset folder \"three\" shape=3x8x8")
        .replace("batch 16", "batch 2")
        .replace("fc1: fc 4", "fc1: fc 3")
        .replace("iterations 5", "iterations 30");
    std::fs::write(d.join("spec.exp"), text).expect("write");
    let (code, out, err) = expc_in(&d, &["run", "spec.exp", "--out", "runs", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let dir = out.lines().find_map(|l| l.strip_prefix("run folder: ")).expect("run folder").trim().to_string();
    let (code, out, err) = expc_in(&d, &["eval", &dir, "--top", "2"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("top-2"), "{out}");
    for class in ["class0", "class1", "class2"] {
        assert!(out.contains(class), "per-class accuracy names {class}:\n{out}");
    }
    let eval_dir = d.join(&dir).join("eval-test-best");
    let e: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(eval_dir.join("eval.json")).expect("eval.json")).expect("json");
    let confusion = e["confusion"].as_array().expect("matrix");
    assert_eq!(confusion.len(), 3);
    let total: u64 = confusion.iter().flat_map(|r| r.as_array().expect("row")).map(|v| v.as_u64().expect("count")).sum();
    assert_eq!(total, e["samples"].as_u64().expect("samples"), "every test sample is counted once");
    assert!(std::fs::read_to_string(eval_dir.join("confusion.csv")).expect("csv").starts_with("true\\predicted,class0,class1,class2\n"));
    assert!(std::fs::metadata(eval_dir.join("confusion.png")).expect("png").len() > 1000);
    let image = d.join("three/class1/0.png");
    let (code, out, err) = expc_in(&d, &["predict", &format!("{dir}/checkpoints/best.safetensors"), image.to_str().expect("utf-8"), "--json"]);
    assert_eq!(code, 0, "{err}");
    let p: serde_json::Value = serde_json::from_str(&out).expect("json");
    let top = p[0]["top"].as_array().expect("top classes");
    assert_eq!(top.len(), 3);
    let probabilities: f64 = top.iter().map(|c| c[1].as_f64().expect("probability")).sum();
    assert!((probabilities - 1.0).abs() < 1e-5, "three of three classes: probabilities sum to 1");
    assert!(top.iter().all(|c| c[0].as_str().expect("name").starts_with("class")));
    // Not a run: a clear error.
    let (code, _, err) = expc_in(&d, &["eval", "three"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a run folder"), "{err}");
}

#[test]
fn validation_early_stopping_and_the_final_test_of_the_best_checkpoint() {
    let d = TempDir::new("pipeline-validation");
    // An untrained net (tiny lr): the validation accuracy never improves after the first
    // evaluation, so `patience=2` stops the run at the third evaluation.
    let text = BASE
        .replace("batch 16", "batch 16\n  validation 16")
        .replace("lr 0.01", "lr 1e-9")
        .replace("iterations 5", "iterations 100\n  eval every=2\n  early_stop patience=2 metric=accuracy");
    std::fs::write(d.join("spec.exp"), &text).expect("write");
    let (code, out, err) = expc_in(&d, &["run", "spec.exp", "--out", "runs", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("early stopping at iteration 6"), "{err}");
    assert!(out.contains("the best checkpoint (chosen on validation) on the test set"), "{out}");
    let dir = d.join(out.lines().find_map(|l| l.strip_prefix("run folder: ")).expect("run folder").trim());
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary")).expect("json");
    assert_eq!(s["stopped_early_at"], 6);
    assert_eq!(s["iterations"], 6);
    assert_eq!(s["evaluated_on"], "validation");
    assert!(s["test_accuracy_of_best"].as_f64().is_some(), "{s}");
    // A validation set as large as the training set is refused before training.
    let bad = text.replace("validation 16", "validation 64");
    std::fs::write(d.join("bad.exp"), bad).expect("write");
    let (code, _, err) = expc_in(&d, &["run", "bad.exp", "--out", "runs2"]);
    assert_eq!(code, 1);
    assert!(err.contains("E0222") && err.contains("validation set of 64"), "{err}");
    assert!(!d.join("runs2").exists());
}

/// A net whose activations cannot fit (batch norm makes each thread hold its whole share of the
/// batch: 512 channels of 224×224 for 2,048 samples, terabytes) is refused before a run folder
/// exists, with the breakdown.
#[test]
fn run_refuses_a_spec_that_will_not_fit_in_memory() {
    if expc::run::engine_model::available_memory().is_none() {
        eprintln!("note: /proc/meminfo unreadable here: the memory check is off, nothing to test");
        return;
    }
    let text = "experiment huge\ndata {\n  dataset synthetic shape=3x224x224 classes=10 train=4096 test=16\n  batch 4096\n  test_batch 16\n}\nmodel {\n  input 3x224x224\n  conv 512 3x3 pad=1\n  batchnorm\n  relu\n  conv 512 3x3 pad=1\n  avgpool global\n  fc 10\n  loss: softmax_loss\n}\ntrain {\n  lr 0.01\n  iterations 1\n}\n";
    let err = run_rejected_with(text, false);
    assert!(err.contains("error[E0535]: `huge` needs about") && err.contains("GiB available"), "{err}");
    assert!(err.contains("lower `batch`"), "{err}");
}
