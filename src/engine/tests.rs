//! Engine tests: gradient checks over every layer kind, plan validation, determinism,
//! thread-count consistency, solvers.

use super::*;
use crate::engine::plan::{lenet, simple_net};

fn every_kind_image_plan() -> Plan {
    let mut b = PlanBuilder::new(&[2, 8, 8]);
    let c1 = b.layer_from(
        "conv1",
        LayerKind::Conv2d { out_channels: 4, kernel: [3, 3], stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 2, bias: true },
        vec![Input::Data],
    );
    let bn = b.layer_from("bn1", LayerKind::BatchNorm { eps: 1e-5, momentum: 0.1, affine: true }, vec![Input::Layer(c1)]);
    let lr = b.layer_from("lrelu", LayerKind::LeakyRelu { slope: 0.1 }, vec![Input::Layer(bn)]);
    let mp = b.layer_from(
        "mp",
        LayerKind::MaxPool2d { kernel: [3, 3], stride: [2, 2], padding: [1, 1], ceil: true },
        vec![Input::Layer(lr)],
    );
    let c2 = b.layer_from(
        "conv2",
        LayerKind::Conv2d { out_channels: 4, kernel: [2, 2], stride: [1, 1], padding: [0, 0], dilation: [2, 2], groups: 1, bias: false },
        vec![Input::Layer(mp)],
    );
    let ap = b.layer_from(
        "ap",
        LayerKind::AvgPool2d { kernel: [2, 2], stride: [1, 1], padding: [1, 1], ceil: false },
        vec![Input::Layer(c2)],
    );
    let r = b.layer_from("relu", LayerKind::Relu, vec![Input::Layer(ap)]);
    let add = b.layer_from("add", LayerKind::Add, vec![Input::Layer(r), Input::Layer(ap)]);
    let cat = b.layer_from("cat", LayerKind::Concat, vec![Input::Layer(add), Input::Layer(ap)]);
    let pw = b.layer_from(
        "pw",
        LayerKind::Conv2d { out_channels: 3, kernel: [1, 1], stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1, bias: true },
        vec![Input::Layer(cat)],
    );
    let fl = b.layer_from("flat", LayerKind::Flatten, vec![Input::Layer(pw)]);
    let fc1 = b.layer_from("fc1", LayerKind::Linear { out_features: 12, bias: true }, vec![Input::Layer(fl)]);
    let th = b.layer_from("tanh", LayerKind::Tanh, vec![Input::Layer(fc1)]);
    let dr = b.layer_from("drop", LayerKind::Dropout { p: 0.3 }, vec![Input::Layer(th)]);
    let sg = b.layer_from("sig", LayerKind::Sigmoid, vec![Input::Layer(dr)]);
    let fc2 = b.layer_from("fc2", LayerKind::Linear { out_features: 5, bias: true }, vec![Input::Layer(sg)]);
    b.layer_from("loss", LayerKind::SoftmaxCrossEntropy, vec![Input::Layer(fc2)]);
    b.build().unwrap()
}

fn every_kind_seq_plan(per_step_loss: bool) -> Plan {
    let mut b = PlanBuilder::new(&[5, 3]);
    let r = b.layer_from("rnn", LayerKind::Rnn { hidden: 4 }, vec![Input::Data]);
    let l = b.layer_from("proj", LayerKind::Linear { out_features: 6, bias: true }, vec![Input::Layer(r)]);
    let ls = b.layer_from("lstm", LayerKind::Lstm { hidden: 5 }, vec![Input::Layer(l)]);
    if per_step_loss {
        let fc = b.layer_from("fc", LayerKind::Linear { out_features: 3, bias: false }, vec![Input::Layer(ls)]);
        b.layer_from("loss", LayerKind::SoftmaxCrossEntropy, vec![Input::Layer(fc)]);
    } else {
        let last = b.layer_from("last", LayerKind::LastStep, vec![Input::Layer(ls)]);
        let bn = b.layer_from("bn", LayerKind::BatchNorm { eps: 1e-3, momentum: 0.1, affine: false }, vec![Input::Layer(last)]);
        let fc = b.layer_from("fc", LayerKind::Linear { out_features: 3, bias: true }, vec![Input::Layer(bn)]);
        b.layer_from("loss", LayerKind::SoftmaxCrossEntropy, vec![Input::Layer(fc)]);
    }
    b.build().unwrap()
}

fn assert_checks(checks: &[TensorCheck]) {
    assert!(!checks.is_empty());
    for c in checks {
        assert!(c.checked > 0);
        assert!(c.max_rel_err < 1e-5, "gradcheck failed: {c:?}");
    }
}

#[test]
fn gradcheck_every_image_kind() {
    let plan = every_kind_image_plan();
    let checks = gradcheck(&plan, 3, 7).unwrap();
    assert_eq!(checks.len(), 11);
    eprintln!("{checks:#?}");
    assert_checks(&checks);
}

#[test]
fn gradcheck_sequences() {
    assert_checks(&gradcheck(&every_kind_seq_plan(false), 4, 3).unwrap());
    assert_checks(&gradcheck(&every_kind_seq_plan(true), 3, 5).unwrap());
}

#[test]
fn gradcheck_benchmark_nets() {
    let mut p = simple_net(true);
    // keep it small: 2 samples
    assert_checks(&gradcheck(&p, 2, 1).unwrap());
    p = lenet(false);
    assert_checks(&gradcheck(&p, 2, 2).unwrap());
}

#[test]
fn plan_roundtrips_through_json() {
    let p = every_kind_image_plan();
    let s = serde_json::to_string(&p).unwrap();
    let q: Plan = serde_json::from_str(&s).unwrap();
    assert_eq!(p, q);
}

#[test]
fn bad_plans_are_errors() {
    let good = simple_net(false);
    assert!(good.validate().is_ok());
    assert_eq!(good.param_count().unwrap(), 62006);
    let mut p = good.clone();
    p.layers[0].out_shape = vec![6, 27, 28];
    assert!(matches!(Network::<f32>::new(&p, 0), Err(EngineError::Shape { .. })));
    let mut p = good.clone();
    p.layers[0].params[0].shape = vec![6, 3, 5, 4];
    assert!(matches!(Network::<f32>::new(&p, 0), Err(EngineError::Param { .. })));
    let mut p = good.clone();
    p.layers[0].params.pop();
    assert!(matches!(Network::<f32>::new(&p, 0), Err(EngineError::Param { .. })));
    let mut p = good.clone();
    p.layers[1].inputs = vec![Input::Layer(5)];
    assert!(matches!(Network::<f32>::new(&p, 0), Err(EngineError::InvalidPlan(_))));
    let mut p = good.clone();
    p.layers.pop();
    assert!(Network::<f32>::new(&p, 0).is_err());
    let mut p = good.clone();
    p.layers[0].kind = LayerKind::Conv2d { out_channels: 6, kernel: [50, 5], stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1, bias: true };
    assert!(Network::<f32>::new(&p, 0).is_err());
    let mut p = good.clone();
    p.layers[2].kind = LayerKind::MaxPool2d { kernel: [2, 2], stride: [0, 2], padding: [0, 0], ceil: false };
    assert!(Network::<f32>::new(&p, 0).is_err());
    let p = PlanBuilder::new(&[1 << 20, 1 << 20]).push("fc", LayerKind::Linear { out_features: 4, bias: true }).loss().build();
    assert!(p.is_err() || Network::<f32>::new(&p.unwrap(), 0).is_err());
    let p = Plan { input_shape: vec![3], layers: vec![] };
    assert!(Network::<f32>::new(&p, 0).is_err());
    // dropout p out of range
    let b = PlanBuilder::new(&[4]).push("d", LayerKind::Dropout { p: 1.5 });
    assert!(b.build().is_err());
    // bad step inputs
    let mut t = Trainer::new(&good, 0, TrainerConfig { max_batch: 4, ..Default::default() }).unwrap();
    assert!(t.train_step(&[0.0; 10], &[0]).is_err());
    assert!(t.train_step(&vec![0.0; 3072], &[10]).is_err());
    assert!(t.train_step(&vec![0.0; 3072 * 5], &[0; 5]).is_err());
    assert!(t.train_step(&[], &[]).is_err());
}

fn data(n: usize, len: usize, classes: u32, seed: u64) -> (Vec<f32>, Vec<u32>) {
    use rand::{Rng, SeedableRng};
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x = (0..n * len).map(|_| r.gen_range(-1.0f32..1.0)).collect();
    let y = (0..n).map(|_| r.gen_range(0..classes)).collect();
    (x, y)
}

fn losses(plan: &Plan, threads: usize, steps: usize, batch: usize) -> Vec<f32> {
    let cfg = TrainerConfig { threads, max_batch: batch, base_lr: 0.05, weight_decay: 5e-4, ..Default::default() };
    let mut t = Trainer::new(plan, 42, cfg).unwrap();
    let il = t.network().input_len();
    (0..steps)
        .map(|s| {
            let (x, y) = data(batch, il, 10, s as u64);
            t.train_step(&x, &y).unwrap().loss
        })
        .collect()
}

#[test]
fn deterministic_for_same_threads() {
    for bn in [false, true] {
        let p = simple_net(bn);
        let a = losses(&p, 2, 4, 10);
        let b = losses(&p, 2, 4, 10);
        assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        // and thread count changes only rounding
        let c = losses(&p, 1, 4, 10);
        for (x, y) in a.iter().zip(&c) {
            assert!((x - y).abs() < 1e-4 * x.abs().max(1.0), "{a:?} vs {c:?}");
        }
    }
}

#[test]
fn threads_agree_on_gradients_with_every_kind() {
    let p = every_kind_image_plan();
    let mk = |t: usize, mb: usize| {
        let o = NetOptions { backend: Backend::Cpu { threads: t }, max_batch: 7, micro_batch: mb };
        Network::<f64>::with_options(&p, 3, o).unwrap()
    };
    let (x, y) = data(7, 128, 5, 9);
    let mut a = mk(1, 7);
    let mut b = mk(2, 1);
    let sa = a.forward_backward(&x, &y).unwrap();
    let sb = b.forward_backward(&x, &y).unwrap();
    assert!((sa.loss - sb.loss).abs() < 1e-12);
    for (g, h) in a.grads().iter().zip(b.grads()) {
        assert!((g - h).abs() < 1e-10);
    }
    // sequence nets, with BN (chunked lock-step) and without (micro-batches, deferred linear)
    for p in [every_kind_seq_plan(false), every_kind_seq_plan(true)] {
        let mk = |t: usize, mb: usize| {
            let o = NetOptions { backend: Backend::Cpu { threads: t }, max_batch: 7, micro_batch: mb };
            Network::<f64>::with_options(&p, 3, o).unwrap()
        };
        let (x, y) = data(7, 15, 3, 9);
        let (mut a, mut b) = (mk(1, 7), mk(2, 2));
        let sa = a.forward_backward(&x, &y).unwrap();
        let sb = b.forward_backward(&x, &y).unwrap();
        assert!((sa.loss - sb.loss).abs() < 1e-12);
        for (g, h) in a.grads().iter().zip(b.grads()) {
            assert!((g - h).abs() < 1e-10);
        }
    }
    // no-BN net: micro-batch 1 vs whole
    let p = every_kind_seq_plan(true);
    let mk = |t: usize, mb: usize| {
        let o = NetOptions { backend: Backend::Cpu { threads: t }, max_batch: 7, micro_batch: mb };
        Network::<f64>::with_options(&p, 3, o).unwrap()
    };
    let (x, y) = data(7, 15, 3, 9);
    let (mut a, mut b) = (mk(1, 7), mk(2, 2));
    let sa = a.forward_backward(&x, &y).unwrap();
    let sb = b.forward_backward(&x, &y).unwrap();
    assert!((sa.loss - sb.loss).abs() < 1e-12);
    for (g, h) in a.grads().iter().zip(b.grads()) {
        assert!((g - h).abs() < 1e-10);
    }
}

#[test]
fn training_reduces_loss_all_solvers() {
    let p = simple_net(false);
    let (x, y) = data(16, 3072, 10, 1);
    for solver in [Solver::Sgd { momentum: 0.9 }, Solver::Nesterov { momentum: 0.9 }, Solver::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 }] {
        let lr = if matches!(solver, Solver::Adam { .. }) { 1e-3 } else { 0.02 };
        let cfg = TrainerConfig { solver, base_lr: lr, threads: 2, max_batch: 16, ..Default::default() };
        let mut t = Trainer::new(&p, 1, cfg).unwrap();
        let first = t.train_step(&x, &y).unwrap().loss;
        let mut last = first;
        for _ in 0..30 {
            last = t.train_step(&x, &y).unwrap().loss;
        }
        assert!(last < first * 0.5, "{first} -> {last}");
        let (l, c) = t.evaluate(&x, &y).unwrap();
        assert!(l.is_finite() && c <= 16);
    }
}

#[test]
fn sgd_matches_caffe_formula() {
    // one linear layer, check the update by hand
    let p = PlanBuilder::new(&[2]).linear("fc", 2).loss().build().unwrap();
    let cfg = TrainerConfig { base_lr: 0.1, weight_decay: 0.01, solver: Solver::Sgd { momentum: 0.5 }, max_batch: 1, ..Default::default() };
    let mut t = Trainer::new(&p, 3, cfg).unwrap();
    let w0 = t.network().params().to_vec();
    let mut net = Network::<f32>::with_options(&p, 3, NetOptions { backend: Backend::Cpu { threads: 1 }, max_batch: 1, micro_batch: 1 }).unwrap();
    net.forward_backward(&[1.0, -2.0], &[1]).unwrap();
    let g = net.grads().to_vec();
    t.train_step(&[1.0, -2.0], &[1]).unwrap();
    let info = t.network().param_info().to_vec();
    for pi in &info {
        for i in pi.offset..pi.offset + pi.len {
            let v = 0.1 * pi.lr_mult * (g[i] + 0.01 * pi.decay_mult * w0[i]);
            assert!((t.network().params()[i] - (w0[i] - v)).abs() < 1e-7);
        }
    }
}

#[test]
fn memory_and_macs() {
    let p = simple_net(false);
    let net = Network::<f32>::with_options(&p, 0, NetOptions { backend: Backend::Cpu { threads: 2 }, max_batch: 256, micro_batch: 2 }).unwrap();
    let m = net.memory_bytes();
    let np: usize = net.params().len();
    assert_eq!(np, 6 * 75 + 6 + 16 * 150 + 16 + 400 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10);
    assert_eq!(m.params, np * 4);
    assert_eq!(m.grads, np * 4 * 3);
    assert!(m.activations > 0 && m.workspace > 0);
    let macs = net.macs(256);
    assert_eq!(macs[0].forward, 256 * 6 * 28 * 28 * 75);
    assert_eq!(macs[0].backward_data, 0); // data input: no input gradient
    assert_eq!(macs[0].backward_weight, 256 * 6 * 28 * 28 * 75);
    let c2 = macs.iter().find(|m| m.layer == "conv2").unwrap();
    assert_eq!(c2.backward_data, 256 * 16 * 10 * 10 * 150);
    let f1 = macs.iter().find(|m| m.layer == "fc1").unwrap();
    assert_eq!(f1.forward, 256 * 400 * 120);
}

#[test]
fn same_seed_same_weights_f32_f64() {
    let p = lenet(true);
    let a = Network::<f32>::new(&p, 11).unwrap();
    let b = Network::<f64>::new(&p, 11).unwrap();
    let c = Network::<f32>::new(&p, 12).unwrap();
    assert!(a.params().iter().zip(b.params()).all(|(x, y)| *x as f64 == *y));
    assert_ne!(a.params(), c.params());
}
