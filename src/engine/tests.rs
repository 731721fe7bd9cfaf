//! Engine tests: gradient checks over every layer kind, plan validation, determinism,
//! thread-count consistency, solvers.

use super::*;
use crate::lower::{lower_file, lower_text, Plan};
use crate::spec::Solver;

fn shipped(path: &str) -> Plan {
    lower_file(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The homework's simple net (experiments/cifar10/baseline.exp), optionally with batch norm.
fn simple_net(bn: bool) -> Plan {
    shipped(if bn { "experiments/cifar10/batchnorm.exp" } else { "experiments/cifar10/baseline.exp" })
}

/// Caffe's LeNet (experiments/mnist/lenet.exp), optionally with batch norm.
fn lenet(bn: bool) -> Plan {
    shipped(if bn { "experiments/mnist/lenet_batchnorm.exp" } else { "experiments/mnist/lenet.exp" })
}

fn every_kind_image_plan() -> Plan {
    lower_text(
        "every_kind_image.exp",
        "experiment every_kind_image
data { dataset synthetic shape=2x8x8 classes=5 train=16 test=16
  batch 8 }
model {
  input 2x8x8
  conv1: conv 4 3x3 pad=1 groups=2 init=msra
  bn1: batchnorm
  lrelu: leaky_relu 0.1
  mp: maxpool 3 stride=2 pad=1 round=ceil
  conv2: conv 4 2x2 dilation=2 bias=false init=msra
  ap: avgpool 2 stride=1 pad=1
  r: relu
  sum: add r ap
  cat: concat sum ap
  pw: conv 3 1x1 init=msra
  bn2: batchnorm
  r2: relu
  flat: flatten
  fc1: fc 12 init=msra
  th: tanh
  drop: dropout 0.3
  sg: sigmoid
  ge: gelu
  fc2: fc 5 init=msra
  loss: softmax_loss
}
train { lr 0.05
  iterations 1 }
",
    )
    .unwrap()
}

fn every_kind_seq_plan(per_step_loss: bool) -> Plan {
    let head = if per_step_loss { "fc: fc 3 bias=false init=msra" } else { "last: last\n  bn: batchnorm affine=false eps=1e-3\n  fc: fc 3 init=msra" };
    lower_text(
        "every_kind_seq.exp",
        &format!(
            "experiment every_kind_seq
data {{ dataset synthetic shape=5x3 classes=3 train=16 test=16
  batch 8 }}
model {{
  input 5x3
  rnn: rnn 4
  proj: fc 6 init=msra
  lstm: lstm 5
  {head}
  loss: softmax_loss
}}
train {{ lr 0.05
  iterations 1 }}
"
        ),
    )
    .unwrap()
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
    // bn2 → r2 runs as one batch norm with the ReLU fused in (its gradient is checked here).
    let s = schedule::schedule(&plan).unwrap();
    let bn2 = s.layers.iter().position(|l| l.name == "bn2").unwrap();
    assert!(matches!(s.layers[bn2].kernel, schedule::Kernel::BatchNorm { relu: true, .. }));
    assert!(matches!(s.layers[bn2 + 1].kernel, schedule::Kernel::Fused));
    assert!(s.layers[bn2 + 2].inputs == [crate::lower::Producer::Layer(bn2)]);
    let checks = gradcheck(&plan, 3, 7).unwrap();
    assert_eq!(checks.len(), 13);
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
fn plans_count_parameters_and_steps_check_their_inputs() {
    let good = simple_net(false);
    assert_eq!(good.param_count(), 62006);
    assert_eq!(Network::<f32>::new(&good, 0).unwrap().params().len(), 62006);
    // Bad step inputs.
    let mut t = Trainer::new(
        &good,
        0,
        TrainerConfig { weight_decay: 0.0, solver: Solver::Sgd { momentum: 0.9 }, clip_gradients: None, max_batch: 4, threads: 1, micro_batch: 0 },
    )
    .unwrap();
    assert!(t.train_step(&[0.0; 10], &[0], 0.01).is_err());
    assert!(t.train_step(&vec![0.0; 3072], &[10], 0.01).is_err());
    assert!(t.train_step(&vec![0.0; 3072 * 5], &[0; 5], 0.01).is_err());
    assert!(t.train_step(&[], &[], 0.01).is_err());
    // Sizes the engine refuses (far past what the buffers' arithmetic allows).
    let huge = lower_text(
        "huge.exp",
        "experiment huge\ndata { dataset synthetic shape=65536x65536 classes=4 train=1 test=1\n batch 1 }\nmodel {\n input 65536x65536\n fc 4\n loss: softmax_loss\n}\ntrain { lr 0.1\n iterations 1 }\n",
    )
    .unwrap();
    assert!(matches!(Network::<f32>::new(&huge, 0), Err(EngineError::Shape { .. } | EngineError::InvalidPlan(_))));
}

fn data(n: usize, len: usize, classes: u32, seed: u64) -> (Vec<f32>, Vec<u32>) {
    use rand::{Rng, SeedableRng};
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x = (0..n * len).map(|_| r.gen_range(-1.0f32..1.0)).collect();
    let y = (0..n).map(|_| r.gen_range(0..classes)).collect();
    (x, y)
}

fn losses(plan: &Plan, threads: usize, steps: usize, batch: usize) -> Vec<f32> {
    let cfg = TrainerConfig { weight_decay: 5e-4, solver: Solver::Sgd { momentum: 0.9 }, clip_gradients: None, max_batch: batch, threads, micro_batch: 0 };
    let mut t = Trainer::new(plan, 42, cfg).unwrap();
    let il = t.network().input_len();
    (0..steps)
        .map(|s| {
            let (x, y) = data(batch, il, 10, s as u64);
            t.train_step(&x, &y, 0.05).unwrap().loss
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
    let mut p = simple_net(false);
    // MSRA weights (the baseline's gaussian(0.05) learns too slowly for 30 steps).
    for q in p.layers.iter_mut().flat_map(|l| l.params.iter_mut()).filter(|q| q.name == "weight") {
        q.init = crate::param::Init::Msra { norm: crate::param::VarianceNorm::FanIn };
    }
    let (x, y) = data(16, 3072, 10, 1);
    for solver in [
        Solver::Sgd { momentum: 0.9 },
        Solver::Nesterov { momentum: 0.9 },
        Solver::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
        Solver::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
        Solver::AdaGrad { delta: 1e-8 },
        Solver::RmsProp { rms_decay: 0.99, delta: 1e-8 },
        Solver::AdaDelta { momentum: 0.95, delta: 1e-6 },
    ] {
        let lr = match solver {
            Solver::Adam { .. } | Solver::AdamW { .. } | Solver::RmsProp { .. } => 1e-3,
            Solver::AdaGrad { .. } => 1e-2,
            Solver::AdaDelta { .. } => 1.0,
            _ => 0.02,
        };
        let cfg = TrainerConfig { weight_decay: 0.0, solver, clip_gradients: None, max_batch: 16, threads: 2, micro_batch: 0 };
        let mut t = Trainer::new(&p, 1, cfg).unwrap();
        let first = t.train_step(&x, &y, lr).unwrap().loss;
        let mut last = first;
        for _ in 0..30 {
            last = t.train_step(&x, &y, lr).unwrap().loss;
        }
        assert!(last < first * 0.5, "{first} -> {last}");
        let (l, c) = t.evaluate(&x, &y).unwrap();
        assert!(l.is_finite() && c <= 16);
    }
}

#[test]
fn sgd_matches_caffe_formula() {
    // one linear layer, check the update by hand
    let p = lower_text(
        "one_fc.exp",
        "experiment one_fc\ndata { dataset synthetic shape=2 classes=2 train=4 test=4\n batch 1 }\nmodel {\n input 2\n fc: fc 2 init=msra\n loss: softmax_loss\n}\ntrain { lr 0.1\n iterations 1 }\n",
    )
    .unwrap();
    let cfg = TrainerConfig { weight_decay: 0.01, solver: Solver::Sgd { momentum: 0.5 }, clip_gradients: None, max_batch: 1, threads: 1, micro_batch: 0 };
    let mut t = Trainer::new(&p, 3, cfg).unwrap();
    let w0 = t.network().params().to_vec();
    let mut net = Network::<f32>::with_options(&p, 3, NetOptions { backend: Backend::Cpu { threads: 1 }, max_batch: 1, micro_batch: 1 }).unwrap();
    net.forward_backward(&[1.0, -2.0], &[1]).unwrap();
    let g = net.grads().to_vec();
    t.train_step(&[1.0, -2.0], &[1], 0.1).unwrap();
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

/// One step of each adaptive solver on a one-layer net equals its formula (Caffe's form), from
/// zero history; with `clip_gradients` the gradient is first scaled to the bound.
#[test]
fn adaptive_solvers_and_clipping_match_their_formulas() {
    let p = lower_text(
        "one_fc.exp",
        "experiment one_fc\ndata { dataset synthetic shape=2 classes=2 train=4 test=4\n batch 1 }\nmodel {\n input 2\n fc: fc 2 init=msra\n loss: softmax_loss\n}\ntrain { lr 0.1\n iterations 1 }\n",
    )
    .unwrap();
    let (x, y, lr, wd) = ([1.0f32, -2.0], [1u32], 0.1f32, 0.01f32);
    let mut net = Network::<f32>::with_options(&p, 3, NetOptions { backend: Backend::Cpu { threads: 1 }, max_batch: 1, micro_batch: 1 }).unwrap();
    net.forward_backward(&x, &y).unwrap();
    let g = net.grads().to_vec();
    let norm = g.iter().map(|v| v * v).sum::<f32>().sqrt();
    let cases: Vec<(Solver, Option<f64>)> = vec![
        (Solver::AdaGrad { delta: 1e-8 }, None),
        (Solver::RmsProp { rms_decay: 0.9, delta: 1e-8 }, None),
        (Solver::AdaDelta { momentum: 0.95, delta: 1e-6 }, None),
        (Solver::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 }, None),
        (Solver::Sgd { momentum: 0.0 }, Some(0.5 * norm as f64)),
    ];
    for (solver, clip) in cases {
        let cfg = TrainerConfig { weight_decay: wd, solver, clip_gradients: clip, max_batch: 1, threads: 1, micro_batch: 0 };
        let mut t = Trainer::new(&p, 3, cfg).unwrap();
        let w0 = t.network().params().to_vec();
        t.train_step(&x, &y, lr).unwrap();
        let info = t.network().param_info().to_vec();
        let mut checked = 0;
        for pi in &info {
            let (a, dec) = (lr * pi.lr_mult, wd * pi.decay_mult);
            for i in pi.offset..pi.offset + pi.len {
                let (w, gg) = (w0[i], g[i] + dec * w0[i]);
                let expected = match solver {
                    Solver::AdaGrad { delta } => w - a * gg / ((gg * gg).sqrt() + delta as f32),
                    Solver::RmsProp { rms_decay, delta } => w - a * gg / (((1.0 - rms_decay as f32) * gg * gg).sqrt() + delta as f32),
                    Solver::AdaDelta { momentum, delta } => {
                        let h = (1.0 - momentum as f32) * gg * gg;
                        w - a * gg * (delta as f32 / (h + delta as f32)).sqrt()
                    }
                    Solver::AdamW { beta1, beta2, eps } => {
                        // Decoupled decay, then Adam's first step on the plain gradient: m̂/√v̂ = sign(g).
                        let w1 = w - a * dec * w;
                        let (m, v) = ((1.0 - beta1 as f32) * g[i], (1.0 - beta2 as f32) * g[i] * g[i]);
                        let corr = ((1.0 - beta2).sqrt() / (1.0 - beta1)) as f32;
                        w1 - a * corr * m / (v.sqrt() + eps as f32)
                    }
                    _ => w - a * (g[i] * (clip.unwrap() as f32 / norm) + dec * w),
                };
                let got = t.network().params()[i];
                assert!((got - expected).abs() < 1e-6 * expected.abs().max(1.0), "{solver:?}: {got} vs {expected}");
                checked += 1;
            }
        }
        assert_eq!(checked, 6, "fc weight 2×2 and bias 2");
    }
}

/// Each buffer a worker holds has the length the memory model (`WorkerSizes::of`, behind
/// `compile --report`'s engine memory) gives it, buffer by buffer, after training, evaluation
/// (a batch larger than the training batch) and prediction passes: nothing grows while it runs.
/// For f32 and f64 workers, with and without batch norm, images and sequences, 1 and 3 threads.
#[test]
fn worker_buffers_keep_the_lengths_the_memory_model_gives() {
    fn check<T: crate::kernels::Float>(plan: &Plan, threads: usize) {
        let opts = NetOptions { backend: Backend::Cpu { threads }, max_batch: 8, ..NetOptions::default() };
        let mut net = Network::<T>::with_options(plan, 1, opts.clone()).unwrap();
        let (cap, per_worker, mb) = network::worker_caps(&net.schedule, &opts, threads);
        let want = worker::WorkerSizes::of(&net.schedule, cap, per_worker, mb);
        let (len, classes) = (net.input_len(), net.classes() as u32);
        let batch =
            |n: usize| ((0..n * len).map(|i| ((i * 37) % 11) as f32 / 11.0 - 0.5).collect::<Vec<_>>(), (0..n as u32).map(|i| i % classes).collect::<Vec<_>>());
        let (x, y) = batch(8);
        net.forward_backward(&x, &y).unwrap();
        let (x, y) = batch(21);
        net.forward(&x, &y, false).unwrap();
        net.predict(&x, &y).unwrap();
        assert_eq!(net.workers.len(), threads);
        for w in &net.workers {
            assert_eq!(w.sizes(), want);
        }
    }
    for plan in [every_kind_image_plan(), every_kind_seq_plan(false), simple_net(true), lenet(false)] {
        for threads in [1, 3] {
            check::<f32>(&plan, threads);
            check::<f64>(&plan, threads);
        }
    }
}

/// Inputs written on demand by the workers (`Inputs::Written`, what `expc run` passes with the
/// data pipeline's deferred writing) train, evaluate and predict exactly as the same values
/// handed over at once: with and without batch norm (lock-step and micro-batched workers),
/// 1 and 3 threads, evaluation batches larger than the training batch (written in chunks from an
/// offset). Each sample is written exactly once per pass.
#[test]
fn written_inputs_give_the_results_of_the_same_values() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    for plan in [simple_net(false), simple_net(true), every_kind_image_plan()] {
        for threads in [1, 3] {
            let cfg = TrainerConfig { weight_decay: 5e-4, solver: Solver::Sgd { momentum: 0.9 }, clip_gradients: None, max_batch: 7, threads, micro_batch: 2 };
            let (mut a, mut b) = (Trainer::new(&plan, 3, cfg.clone()).unwrap(), Trainer::new(&plan, 3, cfg).unwrap());
            let len = a.network().input_len();
            let classes = a.network().classes() as u32;
            let (x, y) = data(17, len, classes, 5);
            let calls = AtomicUsize::new(0);
            let write = |k: usize, out: &mut [f32]| {
                calls.fetch_add(1, Ordering::Relaxed);
                out.copy_from_slice(&x[k * len..(k + 1) * len]);
            };
            for step in 0..3 {
                let (s, e) = (step * 5, step * 5 + 7);
                let sa = a.train_step_at(&x[s * len..e * len], &y[s..e], step, 0.05).unwrap();
                let sb = b.train_step_at(Inputs::Written { first: 0, write: &write }.range(s, e, len), &y[s..e], step, 0.05).unwrap();
                assert_eq!(sa.loss.to_bits(), sb.loss.to_bits(), "step {step}");
            }
            assert_eq!(calls.swap(0, Ordering::Relaxed), 21);
            assert_eq!(a.network().params(), b.network().params());
            let (la, ca) = a.evaluate(&x, &y).unwrap();
            let (lb, cb) = b.evaluate(Inputs::Written { first: 0, write: &write }, &y).unwrap();
            assert_eq!((la.to_bits(), ca), (lb.to_bits(), cb));
            assert_eq!(calls.swap(0, Ordering::Relaxed), 17);
            let pa = a.predict(&x[len..], &y[1..]).unwrap();
            let pb = b.predict(Inputs::Written { first: 0, write: &write }.range(1, 17, len), &y[1..]).unwrap();
            assert_eq!(pa, pb);
        }
    }
}
