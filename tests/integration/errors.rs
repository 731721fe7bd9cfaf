//! Every front-end error, rendered as the user sees it (inline snapshots).
//! Each case is a small file set; `main.exp` is the file being checked.

use crate::common::*;

const BASE: &str = "experiment base\ndata {\n  dataset cifar10\n  batch 256\n}\nmodel {\n  input 3x32x32\n  conv1: conv 6 5x5\n  relu\n  fc1: fc 10\n  loss: softmax_loss\n}\ntrain {\n  lr 0.01\n  iterations 100\n}\n";

fn one(text: &str) -> String {
    diagnostics_for(&[("main.exp", text)])
}

fn model(body: &str) -> String {
    one(&with_model(body))
}

fn variant(text: &str) -> String {
    diagnostics_for(&[("main.exp", text), ("base.exp", BASE)])
}

#[test]
fn e0001_missing_closing_brace() {
    insta::assert_snapshot!(one("experiment x\nmodel {\n  input 3x32x32\n"), @"
    error[E0001]: syntax error: expected a layer or setting or `repeat`, found end of file
      ┌─ main.exp:4:1
      │
    4 │ 
      │ ^ expected a layer or setting or `repeat`
      │
      = help: a `{` may be missing its closing `}`
    ");
}

#[test]
fn e0001_argument_without_value() {
    insta::assert_snapshot!(model("  input 3x32x32\n  conv1: conv 6 5x5 stride=\n"), @"
    error[E0001]: syntax error: expected a value (number, size like 5x5, name, string or list), found end of line
      ┌─ main.exp:7:28
      │
    7 │   conv1: conv 6 5x5 stride=
      │                            ^ expected a value (number, size like 5x5, name, string or list)
    ");
}

#[test]
fn e0001_misspelt_section() {
    insta::assert_snapshot!(one("experiment x\nmodle {\n}\n"), @"
    error[E0001]: syntax error: expected a section (`data`, `model`, `train`), `experiment`, `extends` or an edit (`set`, `insert`, `remove`), found `modle`
      ┌─ main.exp:2:1
      │
    2 │ modle {
      │ ^^^^^ expected a section (`data`, `model`, `train`), `experiment`, `extends` or an edit (`set`, `insert`, `remove`)
      │
      = help: did you mean `model`?
    ");
}

#[test]
fn e0001_equals_in_setting() {
    insta::assert_snapshot!(one("experiment x\ntrain {\n  lr = 0.1\n}\n"), @"
    error[E0001]: syntax error: expected a value (number, size like 5x5, name, string or list), found `=`
      ┌─ main.exp:3:6
      │
    3 │   lr = 0.1
      │      ^ expected a value (number, size like 5x5, name, string or list)
      │
      = help: settings are written `name value` (e.g. `lr 0.01`); `key=value` is for named arguments
    ");
}

#[test]
fn e0001_unterminated_string() {
    insta::assert_snapshot!(one("experiment x\nextends \"base.exp\n"), @r#"
    error[E0002]: unterminated string
      ┌─ main.exp:2:9
      │
    2 │ extends "base.exp
      │         ^^^^^^^^^ this string is not closed
      │
      = help: close it with `"` on the same line
    "#);
}

#[test]
fn e0001_label_without_layer() {
    insta::assert_snapshot!(model("  input 3x32x32\n  conv1:\n"), @"
    error[E0001]: syntax error: expected a name, found end of line
      ┌─ main.exp:7:9
      │
    7 │   conv1:
      │         ^ expected a name
    ");
}

#[test]
fn e0100_unknown_layer() {
    insta::assert_snapshot!(model("  input 3x32x32\n  conv1: convolution 6 5x5\n"), @"
    error[E0100]: unknown layer `convolution`
      ┌─ main.exp:7:10
      │
    7 │   conv1: convolution 6 5x5
      │          ^^^^^^^^^^^ unknown layer
      │
      = note: layers: input, conv, maxpool, avgpool, fc, linear, relu, leaky_relu, tanh, sigmoid, gelu, silu, batchnorm, bn, dropout, flatten, add, concat, rnn, lstm, last, softmax_loss, loss, accuracy
      = help: did you mean `conv`?
    ");
}

#[test]
fn e0101_unknown_setting_with_hint() {
    insta::assert_snapshot!(one("experiment x\ndata { dataset mnist }\nmodel { input 1x28x28 }\ntrain {\n  lr 0.1\n  iterations 10\n  momentum 0.9\n}\n"), @"
    error[E0101]: unknown setting `momentum` in `train`
      ┌─ main.exp:7:3
      │
    7 │   momentum 0.9
      │   ^^^^^^^^ unknown setting
      │
      = note: `train` settings: solver, lr, policy, weight_decay, iterations, eval, seed, checkpoint, log, clip_gradients, early_stop
      = help: `momentum` belongs to the solver: `solver sgd momentum=0.9`
    ");
}

#[test]
fn e0101_misspelt_setting() {
    insta::assert_snapshot!(one("experiment x\ndata {\n  dataset mnist\n  bacth 64\n}\nmodel { input 1x28x28 }\ntrain {\n  lr 0.1\n  iterations 10\n}\n"), @"
    error[E0101]: unknown setting `bacth` in `data`
      ┌─ main.exp:4:3
      │
    4 │   bacth 64
      │   ^^^^^ unknown setting
      │
      = note: `data` settings: dataset, batch, test_batch, scale, mean, std, augment, sequence, shuffle, validation
      = help: did you mean `batch`?
    ");
}

#[test]
fn e0102_unknown_argument() {
    insta::assert_snapshot!(model("  input 3x32x32\n  conv1: conv 6 5x5 strde=2\n"), @"
    error[E0102]: layer `conv1` (conv): unknown argument `strde`
      ┌─ main.exp:7:21
      │
    7 │   conv1: conv 6 5x5 strde=2
      │                     ^^^^^ unknown argument
      │
      = note: known: bias, bias_decay_mult, bias_init, bias_lr_mult, decay_mult, device, dilation, from, groups, init, lr_mult, pad, share, stride
      = help: did you mean `stride`?
    ");
}

#[test]
fn e0103_missing_positional() {
    insta::assert_snapshot!(model("  input 3x32x32\n  conv1: conv\n"), @"
    error[E0103]: layer `conv1` (conv) is missing its number of output channels
      ┌─ main.exp:7:3
      │
    7 │   conv1: conv
      │   ^^^^^^^^^^^ number of output channels missing
      │
      = help: write it like `conv 16 5x5`

    error[E0103]: layer `conv1` (conv) is missing its kernel size
      ┌─ main.exp:7:3
      │
    7 │   conv1: conv
      │   ^^^^^^^^^^^ kernel size missing
      │
      = help: write it like `conv 16 5x5`
    ");
}

#[test]
fn e0104_bad_argument_type() {
    insta::assert_snapshot!(model("  input 3x32x32\n  conv1: conv 6.5 5x5 pad=same\n"), @"
    error[E0104]: layer `conv1` (conv) expects a positive whole number here, found a number
      ┌─ main.exp:7:15
      │
    7 │   conv1: conv 6.5 5x5 pad=same
      │               ^^^ expected a positive whole number

    error[E0104]: layer `conv1` (conv) expects a size like 3 or 3x3 here, found a name
      ┌─ main.exp:7:27
      │
    7 │   conv1: conv 6.5 5x5 pad=same
      │                           ^^^^ expected a size like 3 or 3x3
    ");
}

#[test]
fn e0105_argument_twice() {
    insta::assert_snapshot!(model("  input 3x32x32\n  conv1: conv 6 5x5 pad=1 pad=2\n"), @"
    error[E0105]: `pad` is given twice
      ┌─ main.exp:7:27
      │
    7 │   conv1: conv 6 5x5 pad=1 pad=2
      │                           ^^^ given again here
      │
      = help: remove one of them
    ");
}

#[test]
fn e0106_dropout_out_of_range() {
    insta::assert_snapshot!(model("  input 3x32x32\n  dropout 1.5\n"), @"
    error[E0106]: layer `dropout` (dropout): the drop probability must lie in [0, 1)
      ┌─ main.exp:7:11
      │
    7 │   dropout 1.5
      │           ^^^ the drop probability must lie in [0, 1)
    ");
}

#[test]
fn e0106_multistep_out_of_order() {
    insta::assert_snapshot!(one("experiment x\ndata { dataset mnist }\nmodel { input 1x28x28 }\ntrain {\n  lr 0.1\n  iterations 10\n  policy multistep 8000 6000 gamma=0.1\n}\n"), @"
    error[E0106]: multistep iterations must increase
      ┌─ main.exp:7:3
      │
    7 │   policy multistep 8000 6000 gamma=0.1
      │   ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^ steps out of order
      │
      = help: list the iterations in increasing order, e.g. `policy multistep 8000 10000 12000 gamma=0.1`
    ");
}

#[test]
fn e0103_policy_missing_gamma() {
    insta::assert_snapshot!(one("experiment x\ndata { dataset mnist }\nmodel { input 1x28x28 }\ntrain {\n  lr 0.1\n  iterations 10\n  policy inv power=0.75\n}\n"), @"
    error[E0103]: policy `inv` needs `gamma=`
      ┌─ main.exp:7:3
      │
    7 │   policy inv power=0.75
      │   ^^^^^^^^^^^^^^^^^^^^^ `gamma` missing
      │
      = help: write it like `policy inv gamma=0.0001 power=0.75`
    ");
}

#[test]
fn e0107_unknown_word_value() {
    insta::assert_snapshot!(model("  input 3x32x32\n  pool1: maxpool 3 stride=2 round=cell\n"), @"
    error[E0107]: layer `pool1` (maxpool): unknown value `cell`
      ┌─ main.exp:7:35
      │
    7 │   pool1: maxpool 3 stride=2 round=cell
      │                                   ^^^^ expected one of floor, ceil
      │
      = help: did you mean `ceil`?
    ");
}

#[test]
fn e0107_unknown_initialiser() {
    insta::assert_snapshot!(model("  input 3x32x32\n  fc1: fc 10 init=gausian(0.01)\n"), @"
    error[E0107]: layer `fc1` (fc): unknown initialiser `gausian`
      ┌─ main.exp:7:19
      │
    7 │   fc1: fc 10 init=gausian(0.01)
      │                   ^^^^^^^^^^^^^ expected one of constant, uniform, gaussian, xavier, msra
      │
      = help: did you mean `gaussian`?
    ");
}

#[test]
fn e0108_extra_values() {
    insta::assert_snapshot!(model("  input 3x32x32\n  fc1: fc 10 20\n"), @"
    error[E0108]: layer `fc1` (fc): 1 unexpected value
      ┌─ main.exp:7:14
      │
    7 │   fc1: fc 10 20
      │              ^^ not expected here
      │
      = help: named arguments are written `key=value`
    ");
}

#[test]
fn e0109_init_on_layer_without_parameters() {
    insta::assert_snapshot!(model("  input 3x32x32\n  relu init=msra\n"), @"
    error[E0109]: layer `relu` (relu) has no parameters to set `init` for
      ┌─ main.exp:7:8
      │
    7 │   relu init=msra
      │        ^^^^ no parameters
      │
      = help: `init`, `lr_mult` and `decay_mult` apply to conv, fc, batchnorm, rnn and lstm layers
    ");
}

#[test]
fn e0110_missing_required_settings() {
    insta::assert_snapshot!(one("experiment x\ndata {\n  batch 64\n}\nmodel { input 1x28x28 }\ntrain {\n  seed 3\n}\n"), @"
    error[E0110]: missing required setting `data.dataset`
      ┌─ main.exp:2:1
      │
    2 │ data {
      │ ^^^^ `data` has no `dataset`
      │
      = help: add a line `dataset cifar10`

    error[E0110]: missing required setting `train.lr`
      ┌─ main.exp:6:1
      │
    6 │ train {
      │ ^^^^^ `train` has no `lr`
      │
      = help: add a line `lr 0.01`

    error[E0110]: missing required setting `train.iterations`
      ┌─ main.exp:6:1
      │
    6 │ train {
      │ ^^^^^ `train` has no `iterations`
      │
      = help: add a line `iterations 10000`
    ");
}

#[test]
fn e0110_missing_experiment_name() {
    insta::assert_snapshot!(one("data { dataset mnist }\nmodel { input 1x28x28 }\ntrain {\n  lr 0.1\n  iterations 10\n}\n"), @"
    error[E0110]: missing required setting: the experiment's name
      ┌─ main.exp:1:1
      │
    1 │ data { dataset mnist }
      │ ^ expected `experiment NAME` in this file
      │
      = help: start the file with a line like `experiment cifar10_baseline`
    ");
}

#[test]
fn e0112_setting_twice() {
    insta::assert_snapshot!(one("experiment x\ndata {\n  dataset mnist\n  batch 64\n  batch 128\n}\nmodel { input 1x28x28 }\ntrain {\n  lr 0.1\n  iterations 10\n}\n"), @"
    error[E0112]: `batch` is set twice in `data`
      ┌─ main.exp:5:3
      │
    4 │   batch 64
      │   ----- first set here
    5 │   batch 128
      │   ^^^^^ set again here
      │
      = help: keep one of the two lines
    ");
}

#[test]
fn e0113_duplicate_layer_name() {
    insta::assert_snapshot!(model("  input 3x32x32\n  conv1: conv 6 5x5\n  conv1: conv 16 5x5\n"), @"
    error[E0113]: duplicate layer name `conv1`
      ┌─ main.exp:8:3
      │
    7 │   conv1: conv 6 5x5
      │   ----- first named here
    8 │   conv1: conv 16 5x5
      │   ^^^^^ named again here
      │
      = help: give each layer its own name
    ");
}

#[test]
fn e0114_model_without_input() {
    insta::assert_snapshot!(model("  conv1: conv 6 5x5\n"), @"
    error[E0114]: the model must start with `input SHAPE`
      ┌─ main.exp:6:3
      │
    6 │   conv1: conv 6 5x5
      │   ^^^^^^^^^^^^^^^^^ first layer has no input
      │
      = help: add a first line like `input 3x32x32`
    ");
}

#[test]
fn e0115_add_with_one_input() {
    insta::assert_snapshot!(model("  input 3x32x32\n  a: conv 6 3x3 pad=1\n  sum: add a\n"), @"
    error[E0115]: `add` needs at least two inputs, found 1
      ┌─ main.exp:8:3
      │
    8 │   sum: add a
      │   ^^^^^^^^^^ too few inputs
      │
      = help: name them: `sum: add branch_a branch_b`
    ");
}

#[test]
fn e0010_missing_base_file() {
    insta::assert_snapshot!(one("experiment x\nextends \"nowhere.exp\"\n"), @r#"
    error[E0010]: cannot read `nowhere.exp`: No such file or directory
      ┌─ main.exp:2:9
      │
    2 │ extends "nowhere.exp"
      │         ^^^^^^^^^^^^^ extended here
      │
      = help: check the path; `extends` paths are relative to the file that names them
    "#);
}

#[test]
fn e0012_extends_cycle() {
    let out = diagnostics_for(&[
        ("main.exp", "experiment a\nextends \"b.exp\"\n"),
        ("b.exp", "experiment b\nextends \"c.exp\"\n"),
        ("c.exp", "experiment c\nextends \"main.exp\"\n"),
    ]);
    insta::assert_snapshot!(out, @r#"
    error[E0012]: `extends` cycle: `main.exp` extends itself
      ┌─ c.exp:2:9
      │
    2 │ extends "main.exp"
      │         ^^^^^^^^^^ this `extends` closes the cycle
      │
      ┌─ main.exp:2:9
      │
    2 │ extends "b.exp"
      │         ------- which is extended here
      │
      ┌─ b.exp:2:9
      │
    2 │ extends "c.exp"
      │         ------- which is extended here
      │
      = help: a variant extends a baseline; the baseline must not extend the variant
    "#);
}

#[test]
fn e0016_edit_matches_nothing() {
    insta::assert_snapshot!(variant("experiment v\nextends \"base.exp\"\nset fc2 init=msra\n"), @"
    error[E0016]: `fc2` matches no layer
      ┌─ main.exp:3:5
      │
    3 │ set fc2 init=msra
      │     ^^^ no layer has this name
      │
      = note: layers: input, conv1, conv1.relu, fc1, loss
      = help: did you mean `fc1`?
    ");
}

#[test]
fn e0104_override_type_mismatch_in_both_files() {
    insta::assert_snapshot!(variant("experiment v\nextends \"base.exp\"\ntrain { lr fast }\n"), @"
    error[E0104]: setting `train.lr` expects a number here, found a name
       ┌─ main.exp:3:12
       │
     3 │ train { lr fast }
       │            ^^^^ expected a number
       │
       ┌─ base.exp:14:3
       │
    14 │   lr 0.01
       │   ------- this base setting is overridden
    ");
}

#[test]
fn e0102_override_unknown_key_in_both_files() {
    insta::assert_snapshot!(variant("experiment v\nextends \"base.exp\"\nset conv1 stirde=2\n"), @"
    error[E0102]: layer `conv1` (conv): unknown argument `stirde`
      ┌─ main.exp:3:11
      │
    3 │ set conv1 stirde=2
      │           ^^^^^^ unknown argument
      │
      ┌─ base.exp:8:3
      │
    8 │   conv1: conv 6 5x5
      │   ----- layer `conv1` is defined here
      │
      = note: known: bias, bias_decay_mult, bias_init, bias_lr_mult, decay_mult, device, dilation, from, groups, init, lr_mult, pad, share, stride
      = help: did you mean `stride`?
    ");
}

#[test]
fn e0101_override_unknown_setting() {
    insta::assert_snapshot!(variant("experiment v\nextends \"base.exp\"\ndata { augmnt pad=4 }\n"), @"
    error[E0101]: unknown setting `augmnt` in `data`
      ┌─ main.exp:3:8
      │
    3 │ data { augmnt pad=4 }
      │        ^^^^^^ unknown setting
      │
      = note: `data` settings: dataset, batch, test_batch, scale, mean, std, augment, sequence, shuffle, validation
      = help: did you mean `augment`?
    ");
}

#[test]
fn e0017_repeat_outside_model() {
    insta::assert_snapshot!(one("experiment x\ntrain {\n  repeat 2 {\n    lr 0.1\n  }\n}\n"), @"
    error[E0110]: missing required section `data`
      ┌─ main.exp:1:12
      │
    1 │ experiment x
      │            ^ this experiment has no `data` section
      │
      = help: add a section `data { dataset cifar10 }`

    error[E0110]: missing required section `model`
      ┌─ main.exp:1:12
      │
    1 │ experiment x
      │            ^ this experiment has no `model` section
      │
      = help: add a section `model { input 3x32x32; … }`

    error[E0110]: missing required setting `train.lr`
      ┌─ main.exp:2:1
      │
    2 │ train {
      │ ^^^^^ `train` has no `lr`
      │
      = help: add a line `lr 0.01`

    error[E0110]: missing required setting `train.iterations`
      ┌─ main.exp:2:1
      │
    2 │ train {
      │ ^^^^^ `train` has no `iterations`
      │
      = help: add a line `iterations 10000`

    error[E0017]: `repeat` is only allowed in `model`, not in `train`
      ┌─ main.exp:3:3
      │
    3 │   repeat 2 {
      │   ^^^^^^^^ repeat block here
    ");
}

#[test]
fn e0106_crop_larger_than_image() {
    insta::assert_snapshot!(one("experiment x\ndata {\n  dataset cifar10\n  augment pad=0 crop=40x40\n}\nmodel { input 3x32x32 }\ntrain {\n  lr 0.1\n  iterations 10\n}\n"), @"
    error[E0106]: crop 40x40 is larger than the padded image 32x32
      ┌─ main.exp:4:3
      │
    4 │   augment pad=0 crop=40x40
      │   ^^^^^^^^^^^^^^^^^^^^^^^^ crop too large
    ");
}

fn augment(line: &str, dataset: &str) -> String {
    one(&format!("experiment x\ndata {{\n  dataset {dataset}\n  augment {line}\n}}\nmodel {{ input 3x32x32 }}\ntrain {{\n  lr 0.1\n  iterations 10\n}}\n"))
}

#[test]
fn e0106_augment_values_out_of_range() {
    insta::assert_snapshot!(augment("cutout=0 brightness=1.5 contrast=-0.2 saturation=0/0 resized_crop=0", "cifar10"), @"
    error[E0106]: setting `data.augment`: must be at least 1
      ┌─ main.exp:4:18
      │
    4 │   augment cutout=0 brightness=1.5 contrast=-0.2 saturation=0/0 resized_crop=0
      │                  ^ must be at least 1
      │
      = help: `cutout=N` zeroes an N×N square (`cutout=HxW`: H×W) around a random pixel of each training image; DeVries & Taylor use 16 on 32×32 images

    error[E0106]: setting `data.augment`: `brightness` must lie in [0, 1]
      ┌─ main.exp:4:31
      │
    4 │   augment cutout=0 brightness=1.5 contrast=-0.2 saturation=0/0 resized_crop=0
      │                               ^^^ `brightness` must lie in [0, 1]
      │
      = help: `brightness=V` draws a factor from [1 − V, 1 + V] for each training image (0 is off; 0.2 to 0.4 is usual)

    error[E0106]: setting `data.augment`: `contrast` must lie in [0, 1]
      ┌─ main.exp:4:44
      │
    4 │   augment cutout=0 brightness=1.5 contrast=-0.2 saturation=0/0 resized_crop=0
      │                                            ^^^^ `contrast` must lie in [0, 1]
      │
      = help: `contrast=V` draws a factor from [1 − V, 1 + V] for each training image (0 is off; 0.2 to 0.4 is usual)

    error[E0106]: setting `data.augment`: `0/0` is not a number (0/0 is undefined)
      ┌─ main.exp:4:60
      │
    4 │   augment cutout=0 brightness=1.5 contrast=-0.2 saturation=0/0 resized_crop=0
      │                                                            ^^^ `0/0` is not a number (0/0 is undefined)
      │
      = help: `saturation=V` draws a factor from [1 − V, 1 + V] for each training image (0 is off; 0.2 to 0.4 is usual)

    error[E0106]: setting `data.augment`: `resized_crop` must lie in (0, 1]: the smallest share of the image's area a crop covers
      ┌─ main.exp:4:77
      │
    4 │   augment cutout=0 brightness=1.5 contrast=-0.2 saturation=0/0 resized_crop=0
      │                                                                             ^ `resized_crop` must lie in (0, 1]: the smallest share of the image's area a crop covers
      │
      = help: `resized_crop=S` crops a random area between S and all of each training image (aspect ratio 3/4 to 4/3) and resizes it; torchvision's default is 0.08
    ");
    insta::assert_snapshot!(augment("resized_crop=1.5 cutout=-4", "cifar10"), @"
    error[E0106]: setting `data.augment`: `resized_crop` must lie in (0, 1]: the smallest share of the image's area a crop covers
      ┌─ main.exp:4:24
      │
    4 │   augment resized_crop=1.5 cutout=-4
      │                        ^^^ `resized_crop` must lie in (0, 1]: the smallest share of the image's area a crop covers
      │
      = help: `resized_crop=S` crops a random area between S and all of each training image (aspect ratio 3/4 to 4/3) and resizes it; torchvision's default is 0.08

    error[E0106]: setting `data.augment`: must be at least 1
      ┌─ main.exp:4:35
      │
    4 │   augment resized_crop=1.5 cutout=-4
      │                                   ^^ must be at least 1
      │
      = help: `cutout=N` zeroes an N×N square (`cutout=HxW`: H×W) around a random pixel of each training image; DeVries & Taylor use 16 on 32×32 images
    ");
}

#[test]
fn e0104_augment_value_of_the_wrong_type() {
    insta::assert_snapshot!(augment("cutout=large brightness=high", "cifar10"), @"
    error[E0104]: setting `data.augment` expects a size like 3 or 3x3 here, found a name
      ┌─ main.exp:4:18
      │
    4 │   augment cutout=large brightness=high
      │                  ^^^^^ expected a size like 3 or 3x3
      │
      = help: `cutout=N` zeroes an N×N square (`cutout=HxW`: H×W) around a random pixel of each training image; DeVries & Taylor use 16 on 32×32 images

    error[E0104]: setting `data.augment` expects a number here, found a name
      ┌─ main.exp:4:35
      │
    4 │   augment cutout=large brightness=high
      │                                   ^^^^ expected a number
      │
      = help: `brightness=V` draws a factor from [1 − V, 1 + V] for each training image (0 is off; 0.2 to 0.4 is usual)
    ");
}

#[test]
fn e0106_cutout_larger_than_the_sample() {
    insta::assert_snapshot!(augment("pad=4 crop=28x28 cutout=30x8", "cifar10"), @"
    error[E0106]: cutout 30x8 is larger than the 28x28 training sample
      ┌─ main.exp:4:28
      │
    4 │   augment pad=4 crop=28x28 cutout=30x8
      │                            ^^^^^^^^^^^ cutout too large
      │
      = help: a cutout hides part of the sample: at most 28x28 here; DeVries & Taylor use 16 on 32×32 images
    ");
}

#[test]
fn e0118_saturation_on_grey_images() {
    insta::assert_snapshot!(augment("mirror brightness=0.2 saturation=0.3", "mnist"), @"
    error[E0118]: `saturation` needs 3 colour channels, but the images have 1
      ┌─ main.exp:4:33
      │
    3 │   dataset mnist
      │   ------------- MNIST has 1 channel
    4 │   augment mirror brightness=0.2 saturation=0.3
      │                                 ^^^^^^^^^^^^^^ saturation of images without colour
      │
      = help: remove `saturation=`; `brightness=` and `contrast=` work on any number of channels
    ");
    // The dataset in the base file, the augmentation in the variant.
    let base = BASE.replace("dataset cifar10", "dataset synthetic shape=1x32x32 classes=10");
    insta::assert_snapshot!(diagnostics_for(&[("main.exp", "experiment v\nextends \"base.exp\"\ndata { augment saturation=0.4 }\n"), ("base.exp", &base)]), @"
    error[E0118]: `saturation` needs 3 colour channels, but the images have 1
      ┌─ main.exp:3:16
      │
    3 │ data { augment saturation=0.4 }
      │                ^^^^^^^^^^^^^^ saturation of images without colour
      │
      ┌─ base.exp:3:3
      │
    3 │   dataset synthetic shape=1x32x32 classes=10
      │   ------------------------------------------ this synthetic data set has 1 channel
      │
      = help: remove `saturation=`; `brightness=` and `contrast=` work on any number of channels
    ");
}

#[test]
fn e0030_bad_toml_setting() {
    let dir = std::env::temp_dir().join(format!("expc-badtoml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("expc.toml"), "[run]\nthreds = 2\n").expect("write");
    let mut sources = expc::source::SourceMap::new();
    let err = expc::config::Settings::load(None, &dir, &|_| None, &Default::default(), &mut sources).expect_err("bad key");
    let text = expc::diagnostic::render(&err, &sources, false).replace(&dir.display().to_string(), "DIR");
    std::fs::remove_dir_all(&dir).ok();
    insta::assert_snapshot!(text, @"
    error[E0030]: bad setting in DIR/expc.toml: unknown field `threds`, expected one of `out`, `threads`, `backend`
      ┌─ DIR/expc.toml:2:1
      │
    2 │ threds = 2
      │ ^^^^^^ here
      │
      = note: expc.toml has two tables: [data] (dataset roots) and [run] (out, threads, backend)
      = help: did you mean `threads`?
    ");
}

#[test]
fn all_errors_of_a_file_are_reported_at_once() {
    let out = model("  input 3x32x32\n  conv1: conv 6 5x5 strde=2\n  relu init=msra\n  fc1: fc ten\n  pool: maxpul 2\n");
    assert_eq!(out.matches("error[").count(), 4, "{out}");
}

/// Every code in a string literal `"E1234"` / `"W1234"` of the sources under `dir`.
fn codes_used_in(dir: &std::path::Path, out: &mut std::collections::BTreeSet<String>) {
    for e in std::fs::read_dir(dir).expect("src/") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            codes_used_in(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("error_codes.rs") {
            let text = std::fs::read_to_string(&p).expect("read");
            let b = text.as_bytes();
            for i in 0..b.len().saturating_sub(6) {
                if b[i] == b'"' && (b[i + 1] == b'E' || b[i + 1] == b'W') && b[i + 2..i + 6].iter().all(u8::is_ascii_digit) && b[i + 6] == b'"' {
                    out.insert(text[i + 1..i + 6].to_string());
                }
            }
        }
    }
}

#[test]
fn the_code_registry_and_docs_errors_md_agree() {
    let registry: std::collections::BTreeSet<String> = expc::error_codes::ERROR_CODES.iter().map(|(c, _)| c.to_string()).collect();
    let docs = std::fs::read_to_string(crate::common::repo().join("docs/errors.md")).expect("docs/errors.md");
    let documented: std::collections::BTreeSet<String> = docs
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(' ').next())
        .filter(|c| c.len() == 5 && (c.starts_with('E') || c.starts_with('W')) && c[1..].bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
        .collect();
    assert!(registry.len() > 50, "the registry lists every code ({} found)", registry.len());
    let undocumented: Vec<_> = registry.difference(&documented).collect();
    let unregistered: Vec<_> = documented.difference(&registry).collect();
    assert!(undocumented.is_empty(), "registered but not in docs/errors.md: {undocumented:?}");
    assert!(unregistered.is_empty(), "in docs/errors.md but not registered: {unregistered:?}");
    let mut used = std::collections::BTreeSet::new();
    codes_used_in(&crate::common::repo().join("src"), &mut used);
    assert!(used.len() > 50, "the scan finds the codes of the sources ({} found)", used.len());
    let unknown: Vec<_> = used.difference(&registry).collect();
    assert!(unknown.is_empty(), "used in src/ but not registered: {unknown:?}");
}

#[test]
fn e0001_invisible_character_names_its_code_point() {
    // The source line shows the character itself; it is made visible here for the snapshot.
    insta::assert_snapshot!(one(&with_model("  input 3x32x32\n  fc\u{200b} 10")).replace('\u{200b}', "<ZWSP>"), @r#"
    error[E0001]: syntax error: expected a value (number, size like 5x5, name, string or list), found the invisible character U+200B (zero-width space)
      ┌─ main.exp:7:5
      │
    7 │   fc<ZWSP> 10
      │      an invisible U+200B is here
      │
      = help: delete the zero-width space: it cannot be seen in most editors (copied text often carries one)
    "#);
}

#[test]
fn e0106_numbers_out_of_range_are_not_type_errors() {
    insta::assert_snapshot!(one("experiment x\ndata {\n  dataset cifar10\n  scale 1/0\n}\nmodel {\n  input 3x32x32\n}\ntrain {\n  lr 1e309\n  iterations 10\n}\n"), @r#"
    error[E0106]: setting `data.scale`: `1/0` divides by zero
      ┌─ main.exp:4:9
      │
    4 │   scale 1/0
      │         ^^^ `1/0` divides by zero

    error[E0106]: setting `train.lr`: `1e309` is too large: numbers must lie within ±3.4e38 (expc computes in 32-bit floats)
       ┌─ main.exp:10:6
       │
    10 │   lr 1e309
       │      ^^^^^ `1e309` is too large: numbers must lie within ±3.4e38 (expc computes in 32-bit floats)
    "#);
}

#[test]
fn e0019_counts_repeats_before_expanding() {
    insta::assert_snapshot!(one(&with_model("  input 3x32x32\n  repeat 1000 {\n    repeat 1001 {\n      relu\n    }\n  }")), @r#"
    error[E0019]: the model expands to more than 1000000 layers
      ┌─ main.exp:7:3
      │
    7 │   repeat 1000 {
      │   ^^^^^^^^^^^ these nested repeats expand to 1,001,000 layers
      │
      = help: check the counts of `repeat` blocks
    "#);
}

#[test]
fn e0021_deep_extends_chain() {
    let files: Vec<(String, String)> = (0..70).map(|i| (format!("f{i}.exp"), format!("experiment f{i}\nextends \"f{}.exp\"\n", i + 1))).collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let out = diagnostics_for(&refs);
    assert!(out.starts_with("error[E0021]: `extends` chain deeper than 64 files"), "{out}");
    assert!(out.contains("f63.exp:2:9"), "{out}");
}

#[test]
fn e0117_share_with_its_own_initialiser() {
    insta::assert_snapshot!(model("  input 3x32x32\n  a: conv 6 3x3 pad=1\n  b: conv 6 3x3 pad=1 share=a init=msra\n"), @"
    error[E0117]: layer `b` shares `a`'s parameters and cannot set `init`
      ┌─ main.exp:8:31
      │
    8 │   b: conv 6 3x3 pad=1 share=a init=msra
      │                             - ^^^^ a setting of the shared parameters
      │                             │  
      │                             the parameters are `a`'s
      │
      = help: set `init` on `a`, the layer that owns the parameters
    ");
}

#[test]
fn e0109_share_on_a_layer_without_parameters() {
    insta::assert_snapshot!(model("  input 3x32x32\n  a: conv 6 3x3 pad=1\n  r: relu share=a\n"), @"
    error[E0109]: layer `r` (relu) cannot share parameters
      ┌─ main.exp:8:17
      │
    8 │   r: relu share=a
      │                 ^ no parameters
      │
      = help: `share=` applies to conv, fc, rnn and lstm layers
    ");
}

#[test]
fn e0109_share_on_batch_norm() {
    insta::assert_snapshot!(model("  input 3x32x32\n  a: batchnorm\n  b: batchnorm share=a\n"), @"
    error[E0109]: layer `b` (batchnorm) cannot share parameters
      ┌─ main.exp:8:22
      │
    8 │   b: batchnorm share=a
      │                      ^ batch norm keeps running statistics of its own
      │
      = help: `share=` applies to conv, fc, rnn and lstm layers
    ");
}
