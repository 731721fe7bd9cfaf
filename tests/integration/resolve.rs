//! Stage 2: the resolved experiment of every file (variants applied), snapshotted,
//! plus the semantics of names, repeats and edits.

use crate::common::*;
use crate::with_snapshots;
use expc::ops::Op;
use expc::param::{Init, VarianceNorm};
use expc::spec::LrPolicy;
use std::path::Path;

fn read(p: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(p)
}

fn resolve(path: &str) -> expc::spec::Experiment {
    let r = expc::spec::resolve_path(&repo().join(path), &read);
    assert!(r.diagnostics.is_empty(), "{path}: {}", expc::diagnostic::render(&r.diagnostics, &r.sources, false));
    r.experiment.expect("resolves")
}

#[test]
fn spec_of_every_experiment() {
    for f in experiment_files() {
        let e = resolve(f.to_str().expect("utf-8 path"));
        let name = format!("spec@{}", f.display().to_string().replace(['/', '\\'], "__"));
        with_snapshots!({
            insta::assert_yaml_snapshot!(name, e);
        });
    }
}

#[test]
fn variants_change_only_what_they_say() {
    let base = resolve("experiments/cifar10/baseline.exp");
    let no_wd = resolve("experiments/cifar10/no_weight_decay.exp");
    assert_eq!(no_wd.train.weight_decay, 0.0);
    assert_eq!(base.train.weight_decay, 5e-4);
    let json = |v: &dyn erased::Ser| v.json();
    assert_eq!(json(&no_wd.model), json(&base.model), "same model (spans aside)");
    assert_eq!(json(&no_wd.data), json(&base.data));
    assert_eq!(no_wd.train.policy, base.train.policy);

    let msra = resolve("experiments/cifar10/msra_fc.exp");
    for l in &msra.model.layers {
        let w = l.weight.as_ref().map(|w| w.init);
        if l.name.starts_with("fc") && !l.name.contains('.') {
            assert_eq!(w, Some(Init::Msra { norm: VarianceNorm::FanIn }), "{}", l.name);
        } else if l.name.starts_with("conv") && !l.name.contains('.') {
            assert_eq!(w, Some(Init::Gaussian { mean: 0.0, std: 0.05 }), "{}", l.name);
        }
    }

    let bn = resolve("experiments/cifar10/batchnorm.exp");
    let names: Vec<&str> = bn.model.layers.iter().map(|l| l.name.as_str()).collect();
    let i = names.iter().position(|n| *n == "conv1.batchnorm").expect("bn inserted after conv1");
    assert_eq!(names[i - 1], "conv1");
    assert_eq!(bn.model.layers[i + 1].inputs[0].name, "conv1.batchnorm", "relu now reads the batch norm");
    assert!(names.contains(&"conv2.batchnorm"));
    assert_eq!(bn.model.layers.len(), base.model.layers.len() + 2);

    let aug = resolve("experiments/cifar10/augment.exp");
    assert_eq!(aug.data.augment.pad, 4);
    assert_eq!(aug.data.augment.crop, Some([32, 32]));
    assert_eq!(aug.data.batch, base.data.batch);
}

#[test]
fn caffe_recipes_are_read_as_written() {
    let lenet = resolve("experiments/mnist/lenet.exp");
    assert_eq!(lenet.train.policy, LrPolicy::Inv { gamma: 1e-4, power: 0.75 });
    assert_eq!(lenet.data.batch, 64);
    let quick = resolve("experiments/cifar10/quick.exp");
    let pool1 = quick.model.layers.iter().find(|l| l.name == "pool1").expect("pool1");
    match &pool1.op {
        Op::Pool(p) => assert_eq!(p.rounding, expc::ops::pool::Rounding::Ceil),
        other => panic!("pool1 is {other:?}"),
    }
    // Caffe's multistep advances once per crossed step.
    let p = LrPolicy::Multistep { gamma: 0.1, steps: vec![4000] };
    assert_eq!(p.rate(0.001, 3999, 5000), 0.001);
    assert!((p.rate(0.001, 4000, 5000) - 0.0001).abs() < 1e-12);
}

#[test]
fn cosine_onecycle_and_warmup_follow_their_closed_forms() {
    use std::f64::consts::PI;
    let cos = LrPolicy::Cosine { min: 0.0, cycle: None, cycle_mult: 1.0 };
    assert_eq!(cos.rate(0.1, 0, 100), 0.1);
    assert!((cos.rate(0.1, 50, 100) - 0.05).abs() < 1e-12);
    assert!((cos.rate(0.1, 25, 100) - 0.1 * 0.5 * (1.0 + (PI / 4.0).cos())).abs() < 1e-12);
    // Restarts: cycles of 10, then 20.
    let sgdr = LrPolicy::Cosine { min: 0.01, cycle: Some(10), cycle_mult: 2.0 };
    assert_eq!(sgdr.rate(0.1, 10, 100), 0.1);
    assert!((sgdr.rate(0.1, 20, 100) - (0.01 + 0.09 * 0.5 * (1.0 + (PI * 10.0 / 20.0).cos()))).abs() < 1e-12);
    assert_eq!(sgdr.rate(0.1, 30, 100), 0.1);
    // One-cycle: from lr/25 up to lr at 30%, down to lr/25/1e4 at the end.
    let one = LrPolicy::OneCycle { pct: 0.3, div: 25.0, final_div: 1e4 };
    assert!((one.rate(1.0, 0, 100) - 0.04).abs() < 1e-12);
    assert!((one.rate(1.0, 30, 100) - 1.0).abs() < 1e-12);
    assert!((one.rate(1.0, 100, 100) - 0.04 / 1e4).abs() < 1e-12);
    // Warm-up: linear to the policy's first rate, then the policy over the rest of the run.
    assert!((cos.rate_with_warmup(0.1, 0, 110, 10) - 0.01).abs() < 1e-12);
    assert!((cos.rate_with_warmup(0.1, 9, 110, 10) - 0.1).abs() < 1e-12);
    assert!((cos.rate_with_warmup(0.1, 60, 110, 10) - 0.05).abs() < 1e-12);
}

#[test]
fn new_solvers_schedules_and_regularisers_resolve() {
    let text = "experiment t\ndata {\n  dataset cifar10\n}\nmodel {\n  input 3x32x32\n  fc 10\n  loss: softmax_loss smoothing=0.1\n}\ntrain {\n  solver rmsprop rms_decay=0.9\n  lr 0.01\n  policy cosine warmup=50 min=0.001\n  clip_gradients 5\n  iterations 1000\n}\n";
    let r = expc::spec::resolve_text("t.exp", text, std::path::Path::new("."), &|p: &std::path::Path| std::fs::read_to_string(p));
    assert!(r.diagnostics.is_empty(), "{}", expc::diagnostic::render(&r.diagnostics, &r.sources, false));
    let e = r.experiment.expect("resolves");
    assert_eq!(e.train.solver, expc::spec::Solver::RmsProp { rms_decay: 0.9, delta: 1e-8 });
    assert_eq!(e.train.policy, LrPolicy::Cosine { min: 0.001, cycle: None, cycle_mult: 1.0 });
    assert_eq!(e.train.warmup, 50);
    assert_eq!(e.train.clip_gradients, Some(5.0));
    let loss = e.model.layers.iter().find(|l| l.name == "loss").expect("loss");
    assert_eq!(loss.op, Op::SoftmaxLoss(expc::ops::softmax_loss::SoftmaxLoss { smoothing: 0.1 }));
    // A warm-up as long as the run is an error.
    let bad = text.replace("warmup=50", "warmup=1000");
    let r = expc::spec::resolve_text("t.exp", &bad, std::path::Path::new("."), &|p: &std::path::Path| std::fs::read_to_string(p));
    assert!(r.diagnostics.iter().any(|d| d.code == "E0106" && d.message.contains("warm-up")), "{:?}", r.diagnostics);
}

#[test]
fn repeat_blocks_name_each_iteration_and_rewrite_references() {
    let e = resolve("experiments/resnet/resnet_small.exp");
    let get = |n: &str| e.model.layers.iter().find(|l| l.name == n).unwrap_or_else(|| panic!("no layer {n}"));
    let inputs = |n: &str| get(n).inputs.iter().map(|i| i.name.clone()).collect::<Vec<_>>();
    assert_eq!(inputs("sum_1"), ["bn_b_1", "stem.relu"]);
    assert_eq!(inputs("sum_2"), ["bn_b_2", "sum_1.relu"]);
    assert_eq!(inputs("a_2"), ["sum_1.relu"]);
    let mlp = resolve("experiments/mlp/deep_mlp.exp");
    let hidden = mlp.model.layers.iter().filter(|l| l.name.starts_with("hidden_") && !l.name.contains('.')).count();
    assert_eq!(hidden, 8);
}

#[test]
fn loss_and_accuracy_read_the_logits() {
    let e = resolve("experiments/cifar10/baseline.exp");
    let acc = e.model.layers.iter().find(|l| matches!(l.op, Op::Accuracy(_))).expect("accuracy");
    assert_eq!(acc.inputs[0].name, "fc3");
}

#[test]
fn machine_settings_precedence() {
    let dir = std::env::temp_dir().join(format!("expc-config-{}", std::process::id()));
    let spec_dir = dir.join("specs");
    std::fs::create_dir_all(&spec_dir).expect("mkdir");
    std::fs::write(dir.join("expc.toml"), "[data]\nmnist = \"cwd-mnist\"\ncifar10 = \"cwd-cifar\"\n[run]\nthreads = 3\nout = \"cwd-runs\"\n").expect("write");
    std::fs::write(spec_dir.join("expc.toml"), "[data]\nmnist = \"spec-mnist\"\n[run]\nthreads = 5\n").expect("write");
    let spec = spec_dir.join("x.exp");
    let env = |k: &str| (k == "EXPC_OUT").then(|| "env-runs".to_string());
    let flags = expc::config::Overrides { threads: Some(7), ..Default::default() };
    let mut sources = expc::source::SourceMap::new();
    let s = expc::config::Settings::load(Some(&spec), &dir, &env, &flags, &mut sources).expect("loads");
    assert_eq!(s.data_root("mnist"), Some(spec_dir.join("spec-mnist").as_path()), "next to the spec beats cwd");
    assert_eq!(s.data_root("cifar10"), Some(dir.join("cwd-cifar").as_path()), "cwd fills in the rest");
    assert_eq!(s.out.0, Path::new("env-runs"), "environment beats files");
    assert_eq!(s.threads.0, 7, "flags beat everything");
    std::fs::remove_dir_all(&dir).ok();
}

mod erased {
    /// Serialized form, which leaves spans out: compares values across files.
    pub trait Ser {
        fn json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("serializes")
        }
    }
}

/// Issue 21: `solver sgd` with no argument has the same momentum as no `solver` line (0.9, as
/// docs/language.md says); `momentum=0` still gives plain SGD.
#[test]
fn sgd_without_momentum_argument_has_the_default_momentum() {
    let spec = |solver: &str| {
        format!("experiment t\ndata {{\n  dataset cifar10\n}}\nmodel {{\n  input 3x32x32\n  fc 10\n  loss: softmax_loss\n}}\ntrain {{\n{solver}  lr 0.01\n  iterations 10\n}}\n")
    };
    let solver_of = |text: String| {
        let r = expc::spec::resolve_text("t.exp", &text, std::path::Path::new("."), &|p: &std::path::Path| std::fs::read_to_string(p));
        assert!(r.diagnostics.is_empty(), "{}", expc::diagnostic::render(&r.diagnostics, &r.sources, false));
        r.experiment.expect("resolves").train.solver
    };
    let none = solver_of(spec(""));
    assert_eq!(none, expc::spec::Solver::Sgd { momentum: 0.9 });
    assert_eq!(solver_of(spec("  solver sgd\n")), none);
    assert_eq!(solver_of(spec("  solver sgd momentum=0\n")), expc::spec::Solver::Sgd { momentum: 0.0 });
}
