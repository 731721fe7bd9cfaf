//! Stages 3–4: shapes, costs and the static report — snapshots of every experiment, closed
//! forms, rendered shape errors, and agreement with the engine's own MAC counts.

use crate::common::*;
use crate::with_snapshots;
use expc::compile::{compile_path, compile_text, Compilation};
use expc::diagnostic::render;
use proptest::prelude::*;
use std::path::Path;

fn read(p: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(p)
}

fn compile(text: &str) -> Compilation {
    compile_text("main.exp", text, Path::new("."), &read)
}

fn report_of(c: &Compilation, batch: u64) -> expc::report::Report {
    assert!(c.ok(), "{}", render(&c.diagnostics, &c.sources, false));
    let (e, g, a) = (c.experiment.as_ref().unwrap(), c.graph.as_ref().unwrap(), c.analysis.as_ref().unwrap());
    expc::report::report(e, g, a, batch)
}

#[test]
fn report_of_every_experiment() {
    for f in experiment_files() {
        let c = compile_path(&repo().join(&f), &read);
        let exp_batch = c.experiment.as_ref().map(|e| e.data.batch).unwrap_or(1);
        let r = report_of(&c, exp_batch);
        let stem = f.display().to_string().replace(['/', '\\'], "__");
        with_snapshots!({
            insta::assert_snapshot!(format!("report-text@{stem}"), r.text());
            insta::assert_json_snapshot!(format!("report-json@{stem}"), r);
        });
    }
}

#[test]
fn known_parameter_counts() {
    for (file, params) in [("experiments/cifar10/baseline.exp", 62_006), ("experiments/mnist/lenet.exp", 431_080), ("experiments/cifar10/quick.exp", 145_578)] {
        let r = report_of(&compile_path(&repo().join(file), &read), 1);
        assert_eq!(r.totals.params, params, "{file}");
    }
}

fn mlp(d: u64, n: u64, l: u64, c: u64) -> String {
    with_model(&format!("  input {d}\n  repeat {l} {{\n    h: fc {n}\n    relu\n  }}\n  out: fc {c}\n  loss: softmax_loss\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Problem 4.1: d·n + (L−1)·n² + n·c weights, L·n + c biases.
    #[test]
    fn mlp_parameters_match_the_closed_form(d in 1u64..2000, n in 1u64..600, l in 1u64..12, c in 2u64..50) {
        let r = report_of(&compile(&mlp(d, n, l, c).replace("dataset cifar10", &format!("dataset synthetic shape={d} classes={c}"))), 1);
        prop_assert_eq!(r.totals.weights, d * n + (l - 1) * n * n + n * c);
        prop_assert_eq!(r.totals.biases, l * n + c);
        // Forward MACs of an MLP are its weight count; backward skips the first input gradient.
        prop_assert_eq!(r.totals.forward_macs_per_sample, r.totals.weights);
        prop_assert_eq!(r.totals.backward_macs_per_sample, 2 * r.totals.weights - d * n);
    }

    #[test]
    fn conv_parameters_and_macs_match_the_formula(
        c_g in 1u64..5, o_g in 1u64..5, g in 1u64..4, k in 1u64..6, s in 1u64..4, p in 0u64..3, dil in 1u64..3, h in 8u64..40, w in 8u64..40,
    ) {
        let (c, o) = (c_g * g, o_g * g);
        let span = dil * (k - 1) + 1;
        prop_assume!(h + 2 * p >= span && w + 2 * p >= span);
        let text = with_model(&format!("  input {c}x{h}x{w}\n  a: conv {c} 1x1\n  x: conv {o} {k}x{k} stride={s} pad={p} dilation={dil} groups={g}\n  fc 10\n  loss: softmax_loss\n"))
            .replace("dataset cifar10", &format!("dataset synthetic shape={c}x{h}x{w}"));
        let r = report_of(&compile(&text), 1);
        let x = r.layers.iter().find(|l| l.name == "x").unwrap();
        let (ho, wo) = ((h + 2 * p - span) / s + 1, (w + 2 * p - span) / s + 1);
        prop_assert_eq!(&x.output_shape, &vec![o, ho, wo]);
        prop_assert_eq!(x.weights, o * c / g * k * k);
        prop_assert_eq!(x.biases, o);
        let macs = o * ho * wo * (c / g) * k * k;
        prop_assert_eq!(x.forward_macs, macs);
        prop_assert_eq!(x.backward_input_macs, macs);
        prop_assert_eq!(x.backward_weight_macs, macs);
    }

    #[test]
    fn pool_output_sizes_in_floor_and_ceil_modes(h in 1u64..64, k in 1u64..6, s in 1u64..5, p in 0u64..3, ceil in any::<bool>()) {
        prop_assume!(p < k && h + 2 * p >= k);
        let round = if ceil { "ceil" } else { "floor" };
        let text = with_model(&format!("  input 2x{h}x{h}\n  x: maxpool {k} stride={s} pad={p} round={round}\n  fc 10\n  loss: softmax_loss\n"))
            .replace("dataset cifar10", &format!("dataset synthetic shape=2x{h}x{h}"));
        let r = report_of(&compile(&text), 1);
        let x = r.layers.iter().find(|l| l.name == "x").unwrap();
        let span = h + 2 * p - k;
        let mut out = if ceil { span.div_ceil(s) + 1 } else { span / s + 1 };
        if ceil && (out - 1) * s >= h + p { out -= 1; }
        prop_assert_eq!(&x.output_shape, &vec![2, out, out]);
    }
}

#[test]
fn gradient_path_count_matches_its_closed_form() {
    // Widths d-n…n-c with L hidden layers: reverse mode L·… ; all paths c·Σ_{i=1}^{L} i·n^i.
    for (d, n, l, c) in [(5u64, 3u64, 1u64, 2u64), (4, 2, 3, 3), (784, 256, 8, 10)] {
        let r = report_of(&compile(&mlp(d, n, l, c).replace("dataset cifar10", &format!("dataset synthetic shape={d} classes={c}"))), 1);
        let g = r.gradient_paths.expect("a layered net");
        let naive: u128 = (1..=l as u32).map(|i| c as u128 * i as u128 * (n as u128).pow(i)).sum();
        assert_eq!(g.path_enumeration_mults, Some(naive));
        assert_eq!(g.reverse_mode_mults, (l - 1) * n * n + n * c);
        assert_eq!(g.weight_gradient_mults, d * n + (l - 1) * n * n + n * c);
    }
    // Deep enough to overflow 128 bits: log scale only.
    let r = report_of(&compile(&mlp(10, 1000, 14, 10).replace("dataset cifar10", "dataset synthetic shape=10 classes=10")), 1);
    let g = r.gradient_paths.expect("layered");
    assert_eq!(g.path_enumeration_mults, None);
    assert!((g.path_enumeration_log10 - (10f64.log10() + 14f64.log10() + 42.0)).abs() < 0.1, "{}", g.path_enumeration_log10);
}

#[test]
fn recurrent_parameters_do_not_depend_on_the_sequence_length() {
    let rnn = |t: u64| {
        let text = with_model(&format!("  input {t}x28\n  r: rnn 64\n  last\n  fc 10\n  loss: softmax_loss\n"))
            .replace("dataset cifar10", &format!("dataset synthetic shape={t}x28"));
        report_of(&compile(&text), 8)
    };
    let (a, b) = (rnn(10), rnn(40));
    assert_eq!(a.recurrent[0].params, b.recurrent[0].params);
    assert_eq!(a.recurrent[0].params, 64 * 28 + 64 * 64 + 64);
    assert_eq!(a.recurrent[0].forward_macs_per_step, b.recurrent[0].forward_macs_per_step);
    // h_0 = 0: T·F·H + (T−1)·H·H.
    assert_eq!(a.recurrent[0].forward_macs, 10 * 28 * 64 + 9 * 64 * 64);
    assert_eq!(b.recurrent[0].forward_macs, 40 * 28 * 64 + 39 * 64 * 64);
}

#[test]
fn report_macs_agree_with_the_engine() {
    for f in ["experiments/cifar10/baseline.exp", "experiments/mnist/lenet.exp", "experiments/rnn/elman_mnist.exp", "experiments/resnet/resnet_small.exp"] {
        let c = compile_path(&repo().join(f), &read);
        let r = report_of(&c, 4);
        let plan = expc::lower::lower(&c.into_checked().expect("checks")).expect("lowers");
        let net = expc::engine::Network::<f32>::with_options(&plan, 1, expc::engine::NetOptions { max_batch: 4, ..Default::default() }).expect("engine");
        let engine_layers = net.macs(4);
        // Every layer the engine runs is a layer of the report (the plan keeps the spec's names).
        assert_eq!(engine_layers.len(), plan.layers.len(), "{f}");
        let mut compared = 0;
        for m in &engine_layers {
            let row = r.layers.iter().find(|l| l.name == m.layer).unwrap_or_else(|| panic!("{f}: engine layer `{}` is not in the report", m.layer));
            assert_eq!(m.forward, 4 * row.forward_macs, "{f} {} forward", m.layer);
            assert_eq!(m.backward_data + m.backward_weight, 4 * (row.backward_input_macs + row.backward_weight_macs), "{f} {} backward", m.layer);
            compared += 1;
        }
        assert_eq!(compared, plan.layers.len(), "{f}");
    }
}

fn shape_error(body: &str) -> String {
    let c = compile(&with_model(body));
    render(&c.diagnostics, &c.sources, false)
}

fn shape_error_data(data: &str, body: &str) -> String {
    let c = compile(&with_model(body).replace("  dataset cifar10\n", data));
    render(&c.diagnostics, &c.sources, false)
}

#[test]
fn e0200_dangling_input() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  conv1: conv 6 5x5\n  conv2: conv 6 5x5 from=conv_1\n  fc 10\n  loss: softmax_loss\n"), @"
    error[E0200]: layer `conv2` reads `conv_1`, which is not a layer of this model
      ┌─ main.exp:8:26
      │
    8 │   conv2: conv 6 5x5 from=conv_1
      │                          ^^^^^^ no layer has this name
      │
      = note: layers: input, conv1, conv2, conv2.fc, loss
      = help: did you mean `conv1`?
    ");
}

#[test]
fn e0201_cycle() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  a: conv 3 3x3 pad=1 from=c\n  b: conv 3 3x3 pad=1\n  c: add a b\n  fc 10\n  loss: softmax_loss\n"), @"
    error[E0201]: the layers `a`, `b`, `c` form a cycle
      ┌─ main.exp:7:28
      │
    7 │   a: conv 3 3x3 pad=1 from=c
      │                            ^ `a` reads `c`
    8 │   b: conv 3 3x3 pad=1
      │   - `b` reads `a`
    9 │   c: add a b
      │          - - `c` reads `b`
      │          │  
      │          `c` reads `a`
      │
      = help: a layer can only read layers computed before it; break the cycle by changing one `from=`
    ");
}

#[test]
fn e0204_share_names_no_layer() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  conv1: conv 6 3x3 pad=1\n  conv2: conv 6 3x3 pad=1 share=cnv1 from=input\n  sum: add conv1 conv2\n  fc 10\n  loss: softmax_loss\n"), @"
    error[E0204]: layer `conv2` shares the parameters of `cnv1`, which is not a layer of this model
      ┌─ main.exp:8:33
      │
    8 │   conv2: conv 6 3x3 pad=1 share=cnv1 from=input
      │                                 ^^^^ no layer has this name
      │
      = note: layers with parameters: conv1, conv2, sum.fc
      = help: did you mean `conv1`?
    ");
}

#[test]
fn e0204_share_with_itself() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  conv1: conv 6 3x3 pad=1 share=conv1\n  fc 10\n  loss: softmax_loss\n"), @"
    error[E0204]: layer `conv1` shares its parameters with itself
      ┌─ main.exp:7:33
      │
    7 │   conv1: conv 6 3x3 pad=1 share=conv1
      │                                 ^^^^^ the layer's own name
      │
      = help: name the layer whose parameters this one should use, or remove `share=`
    ");
}

#[test]
fn e0204_sharing_in_a_circle() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  a: conv 3 3x3 pad=1 share=b\n  b: conv 3 3x3 pad=1 share=a\n  fc 10\n  loss: softmax_loss\n"), @"
    error[E0204]: the layers `a`, `b` share parameters in a circle: none of them owns any
      ┌─ main.exp:7:29
      │
    7 │   a: conv 3 3x3 pad=1 share=b
      │                             ^ `a` shares `b`'s parameters
      │
      = help: remove `share=` from the layer that should own the parameters
    ");
}

#[test]
fn e0215_shared_parameters_differ() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  conv1: conv 6 5x5\n  conv2: conv 6 3x3 share=conv1\n  fc 10\n  loss: softmax_loss\n"), @"
    error[E0215]: layer `conv2` cannot share the parameters of `conv1`: they differ
      ┌─ main.exp:8:27
      │
    7 │   conv1: conv 6 5x5
      │   ----- `conv1` has weight 6×3×5×5, bias 6 (conv)
    8 │   conv2: conv 6 3x3 share=conv1
      │                           ^^^^^ needs weight 6×6×3×3, bias 6 (conv)
      │
      = help: a shared layer must be the same kind of layer with the same sizes, and read inputs with the same channels or features
    ");
}

#[test]
fn e0215_shared_layer_of_another_kind() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  a: conv 6 1x1\n  b: fc 6 share=a\n  fc 10\n  loss: softmax_loss\n"), @"
    error[E0215]: layer `b` cannot share the parameters of `a`: they differ
      ┌─ main.exp:8:17
      │
    7 │   a: conv 6 1x1
      │   - `a` has weight 6×3×1×1, bias 6 (conv)
    8 │   b: fc 6 share=a
      │                 ^ needs weight 6×6144, bias 6 (fc)
      │
      = help: a shared layer must be the same kind of layer with the same sizes, and read inputs with the same channels or features
    ");
}

/// `share=`: an MLP whose hidden layers all use the second one's n×n weights and n biases counts
/// d·n + n² + n·c weights and 2n + c biases, whatever its depth; the engine allocates as many.
#[test]
fn shared_layers_count_their_parameters_once() {
    for (d, n, l, c) in [(20u64, 8u64, 4u64, 3u64), (7, 5, 2, 10), (3, 30, 6, 2)] {
        let mut body = format!("  input {d}\n  h1: fc {n}\n  relu\n  h2: fc {n}\n  relu\n");
        for k in 3..=l {
            body += &format!("  h{k}: fc {n} share=h2\n  relu\n");
        }
        body += &format!("  out: fc {c}\n  loss: softmax_loss\n");
        let text = with_model(&body).replace("dataset cifar10", &format!("dataset synthetic shape={d} classes={c}"));
        let r = report_of(&compile(&text), 1);
        assert_eq!(r.totals.weights, d * n + n * n + n * c, "L={l}");
        assert_eq!(r.totals.biases, 2 * n + c, "L={l}");
        assert_eq!(r.layers.iter().filter(|x| x.shares.as_deref() == Some("h2")).count() as u64, l - 2);
        // Work is not shared: every layer still multiplies.
        assert_eq!(r.totals.forward_macs_per_sample, d * n + (l - 1) * n * n + n * c);
        let plan = expc::lower::lower_text("t", &text).unwrap();
        assert_eq!(plan.param_count() as u64, r.totals.params);
        let net = expc::engine::Network::<f32>::new(&plan, 0).unwrap();
        assert_eq!(net.params().len() as u64, r.totals.params);
        assert_eq!(r.text().contains("`h3` shares the parameters of `h2` (counted once"), l >= 3, "{}", r.text());
    }
}

#[test]
fn w0202_unused_layer() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  side: conv 6 5x5\n  main: conv 6 5x5 from=input\n  fc 10\n  loss: softmax_loss\n"), @"
    warning[W0202]: layer `side` is computed but never used
      ┌─ main.exp:7:3
      │
    7 │   side: conv 6 5x5
      │   ^^^^ its output reaches no loss or metric
      │
      = help: remove it, or read it with `from=` or `add`/`concat`
    ");
}

#[test]
fn e0210_conv_on_a_vector() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  fc1: fc 100\n  conv1: conv 6 5x5\n  fc 10\n  loss: softmax_loss\n"), @"
    error[E0210]: layer `conv1`: conv expects a C×H×W input, found 100
      ┌─ main.exp:8:3
      │
    7 │   fc1: fc 100
      │   --- `fc1` produces 100
    8 │   conv1: conv 6 5x5
      │   ^^^^^^^^^^^^^^^^^ expects a C×H×W input
    ");
}

#[test]
fn e0211_conv_window_larger_than_input() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  pool1: maxpool 8\n  pool2: maxpool 2\n  conv1: conv 6 5x5\n  fc 10\n  loss: softmax_loss\n"), @"
    error[E0211]: layer `conv1`: the conv window (5 along the height) is larger than its input 3×2×2 padded to 2
      ┌─ main.exp:9:3
      │
    8 │   pool2: maxpool 2
      │   ----- `pool2` produces 3×2×2 = 12
    9 │   conv1: conv 6 5x5
      │   ^^^^^^^^^^^^^^^^^ window larger than the input
      │
      = help: use a smaller kernel, add padding (`pad=`), or remove a pooling layer before it
    ");
}

#[test]
fn e0211_pool_window_larger_than_input() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  conv1: conv 6 5x5 stride=4\n  pool1: maxpool 8\n  fc 10\n  loss: softmax_loss\n"), @"
    error[E0211]: layer `pool1`: the maxpool window (8 along the height) is larger than its input 6×7×7 padded to 7
      ┌─ main.exp:8:3
      │
    7 │   conv1: conv 6 5x5 stride=4
      │   ----- `conv1` produces 6×7×7 = 294
    8 │   pool1: maxpool 8
      │   ^^^^^^^^^^^^^^^^ window larger than the input
      │
      = help: use a smaller window or remove an earlier downsampling layer
    ");
}

#[test]
fn e0212_groups_do_not_divide_channels() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  conv1: conv 6 5x5 groups=2\n  fc 10\n  loss: softmax_loss\n"), @"
    error[E0212]: layer `conv1`: groups=2 must divide the input channels (3) and the output channels (6)
      ┌─ main.exp:7:3
      │
    6 │   input 3x32x32
      │   ----- `input` produces 3×32×32 = 3072
    7 │   conv1: conv 6 5x5 groups=2
      │   ^^^^^^^^^^^^^^^^^^^^^^^^^^ 2 groups
      │
      = help: choose groups dividing both channel counts
    ");
}

#[test]
fn e0213_add_shapes_differ() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  a: conv 16 3x3 pad=1\n  b: conv 16 3x3 stride=2 pad=1 from=a\n  sum: add a b\n  fc 10\n  loss: softmax_loss\n"), @"
    error[E0213]: layer `sum`: add needs inputs of one shape: input 1 is 16×32×32, input 2 is 16×16×16 (they differ in height: 32 vs 16)
      ┌─ main.exp:9:3
      │
    8 │   b: conv 16 3x3 stride=2 pad=1 from=a
      │   - `b` produces 16×16×16 = 4096
    9 │   sum: add a b
      │   ^^^^^^^^^^^^ shapes differ
      │
      = help: a residual join needs a projection (e.g. `conv C 1x1 stride=S`) where the shapes change
    ");
}

#[test]
fn e0213_add_channels_differ() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  a: conv 16 3x3 pad=1\n  b: conv 32 3x3 pad=1 from=a\n  sum: add a b\n  fc 10\n  loss: softmax_loss\n"), @"
    error[E0213]: layer `sum`: add needs inputs of one shape: input 1 is 16×32×32, input 2 is 32×32×32 (they differ in channels: 16 vs 32)
      ┌─ main.exp:9:3
      │
    8 │   b: conv 32 3x3 pad=1 from=a
      │   - `b` produces 32×32×32 = 32768
    9 │   sum: add a b
      │   ^^^^^^^^^^^^ shapes differ
      │
      = help: a residual join needs a projection (e.g. `conv C 1x1 stride=S`) where the shapes change
    ");
}

#[test]
fn e0213_concat_spatial_sizes_differ() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  a: conv 8 3x3 pad=1\n  b: maxpool 2 from=a\n  cat: concat a b\n  fc 10\n  loss: softmax_loss\n"), @"
    error[E0213]: layer `cat`: concat joins along channels, so every other axis must agree: input 1 is 8×32×32, input 2 is 8×16×16
      ┌─ main.exp:9:3
      │
    8 │   b: maxpool 2 from=a
      │   - `b` produces 8×16×16 = 2048
    9 │   cat: concat a b
      │   ^^^^^^^^^^^^^^^ shapes differ
      │
      = help: pool or crop the branches to the same height and width first
    ");
}

#[test]
fn e0214_pool_padding_not_smaller_than_window() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  pool1: maxpool 2 pad=2\n  fc 10\n  loss: softmax_loss\n"), @"
    error[E0214]: layer `pool1`: maxpool padding 2 must be smaller than its window 2
      ┌─ main.exp:7:3
      │
    7 │   pool1: maxpool 2 pad=2
      │   ^^^^^^^^^^^^^^^^^^^^^^ padding too large
    ");
}

#[test]
fn e0210_rnn_on_an_image() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  r: rnn 64\n  last\n  fc 10\n  loss: softmax_loss\n"), @"
    error[E0210]: layer `r`: rnn expects a sequence T×F, found 3×32×32
      ┌─ main.exp:7:3
      │
    6 │   input 3x32x32
      │   ----- `input` produces 3×32×32 = 3072
    7 │   r: rnn 64
      │   ^^^^^^^^^ expects a sequence T×F
      │
      = help: read images row by row with `sequence rows` in `data` and `input 28x28`
    ");
}

#[test]
fn e0210_last_on_a_vector() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  fc1: fc 64\n  last\n  fc 10\n  loss: softmax_loss\n"), @"
    error[E0210]: layer `fc1.last`: last expects a sequence T×H, found 64
      ┌─ main.exp:8:3
      │
    7 │   fc1: fc 64
      │   --- `fc1` produces 64
    8 │   last
      │   ^^^^ expects a sequence T×H
    ");
}

#[test]
fn e0210_loss_on_feature_maps() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  conv1: conv 10 5x5\n  loss: softmax_loss\n"), @"
    error[E0210]: layer `loss`: softmax_loss expects logits C (or T×C for sequences), found 10×28×28
      ┌─ main.exp:8:3
      │
    7 │   conv1: conv 10 5x5
      │   ----- `conv1` produces 10×28×28 = 7840
    8 │   loss: softmax_loss
      │   ^^^^^^^^^^^^^^^^^^ expects logits
      │
      = help: put an `fc CLASSES` layer before the loss
    ");
}

#[test]
fn e0220_input_does_not_match_the_dataset() {
    insta::assert_snapshot!(shape_error_data("  dataset mnist\n", "  input 3x32x32\n  fc 10\n  loss: softmax_loss\n"), @"
    error[E0220]: the model's input is 3×32×32 but the data yields 1×28×28 per sample
      ┌─ main.exp:6:3
      │
    2 │ data {
      │ ---- `dataset mnist` gives 1×28×28
      ·
    6 │   input 3x32x32
      │   ^^^^^^^^^^^^^ declared 3×32×32
      │
      = help: write `input 1x28x28`
    ");
}

#[test]
fn e0220_sequence_input_does_not_match_rows() {
    insta::assert_snapshot!(shape_error_data("  dataset mnist\n  sequence rows\n", "  input 1x28x28\n  r: rnn 32\n  last\n  fc 10\n  loss: softmax_loss\n"), @"
    error[E0220]: the model's input is 1×28×28 but the data yields 28×28 per sample
      ┌─ main.exp:7:3
      │
    2 │ data {
      │ ---- read row by row (`sequence rows`) gives 28×28
      ·
    7 │   input 1x28x28
      │   ^^^^^^^^^^^^^ declared 1×28×28
      │
      = help: write `input 28x28`

    error[E0210]: layer `r`: rnn expects a sequence T×F, found 1×28×28
      ┌─ main.exp:8:3
      │
    7 │   input 1x28x28
      │   ----- `input` produces 1×28×28 = 784
    8 │   r: rnn 32
      │   ^^^^^^^^^ expects a sequence T×F
      │
      = help: read images row by row with `sequence rows` in `data` and `input 28x28`
    ");
}

#[test]
fn e0221_logits_do_not_match_the_classes() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  fc1: fc 100\n  loss: softmax_loss\n"), @"
    error[E0221]: `loss` gets 100 logits but the data has 10 classes
      ┌─ main.exp:8:3
      │
    2 │ data {
      │ ---- `dataset cifar10` has 10 classes
      ·
    7 │   fc1: fc 100
      │   --- `fc1` produces 100
    8 │   loss: softmax_loss
      │   ^^^^^^^^^^^^^^^^^^ expects 10 logits
      │
      = help: make the last layer `fc 10`
    ");
}

#[test]
fn w0203_no_loss() {
    insta::assert_snapshot!(shape_error("  input 3x32x32\n  fc1: fc 10\n"), @"
    warning[W0203]: the model has no loss: it can be analysed but not trained
      ┌─ main.exp:5:1
      │
    5 │ model {
      │ ^^^^^ no `softmax_loss` in this model
      │
      = help: end the model with `loss: softmax_loss`
    ");
}

#[test]
fn all_shape_errors_of_a_model_at_once() {
    let out = shape_error("  input 3x32x32\n  a: conv 6 5x5 groups=4\n  b: conv 6 5x5 from=input\n  c: maxpool 64 from=input\n  d: add b input\n  fc 10 from=b\n  loss: softmax_loss\n");
    assert_eq!(out.matches("error[E021").count(), 3, "{out}");
}

/// The engine's memory model (`compile --report`'s "native engine" section, `estimated_bytes` in
/// summary.json) equals what the engine allocates, for every shipped experiment at 1 and 2
/// threads; evaluation batches larger than the training batch no longer size the buffers.
#[test]
fn engine_memory_estimate_equals_the_engine_allocation() {
    for f in experiment_files() {
        let plan = expc::lower::lower_file(&repo().join(&f)).unwrap();
        let c = compile_path(&repo().join(&f), &read);
        let exp = c.experiment.as_ref().unwrap();
        for threads in [1, 2] {
            let est = expc::run::engine_model::engine_memory(&plan, exp, exp.data.batch, threads).unwrap();
            let model = expc::run::engine_model::build(&plan, exp, threads, 0).unwrap();
            assert_eq!(est.total() as u64, model.engine_bytes(), "{} at {threads} threads: {est:?}", f.display());
        }
    }
}

/// `expc compile --report` prints the engine's memory model at the threads asked for.
#[test]
fn compile_report_states_the_engine_memory() {
    let spec = repo().join("experiments/cifar10/batchnorm.exp");
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_expc")).args(["compile", "--report", "--format", "json", "--threads", "2"]).arg(&spec).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let plan = expc::lower::lower_file(&spec).unwrap();
    let c = compile_path(&spec, &read);
    let exp = c.experiment.as_ref().unwrap();
    let want = expc::run::engine_model::engine_memory(&plan, exp, exp.data.batch, 2).unwrap();
    assert_eq!(j["engine_memory"]["threads"], 2);
    assert_eq!(j["engine_memory"]["total"].as_u64(), Some(want.total() as u64));
    assert_eq!(j["engine_memory"]["activations"].as_u64(), Some(want.activations as u64));
}
