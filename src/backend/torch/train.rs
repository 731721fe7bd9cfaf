//! `train.py`: the spec's data pipeline, initialisers, solver, lr policy, evaluation cadence,
//! checkpoints and metrics, assembled from the sections of `train_template.py` that the spec uses.

use super::model::placements;
use super::names::{py_docstring_text, py_f, py_str};
use crate::lower::Plan;
use crate::param::{Init, VarianceNorm};
use crate::spec::{Dataset, Experiment, LrPolicy, Mean, Solver};
use std::fmt::Write;

const TEMPLATE: &str = include_str!("train_template.py");

/// The template's section `name` (from its `#@ name` line to the next).
fn section(name: &str) -> &'static str {
    let marker = format!("#@ {name}\n");
    let start = TEMPLATE.find(&marker).map(|i| i + marker.len()).unwrap_or_else(|| panic!("train_template.py has no section {name}"));
    let end = TEMPLATE[start..].find("\n#@ ").map(|i| start + i + 1).unwrap_or(TEMPLATE.len());
    &TEMPLATE[start..end]
}

fn norm(n: VarianceNorm) -> &'static str {
    match n {
        VarianceNorm::FanIn => "\"fan_in\"",
        VarianceNorm::FanOut => "\"fan_out\"",
        VarianceNorm::Average => "\"average\"",
    }
}

fn filler(init: &Init) -> (String, &'static str) {
    match init {
        Init::Constant { value } => (format!("constant({})", py_f(*value)), "fill_constant"),
        Init::Uniform { min, max } => (format!("uniform({}, {})", py_f(*min), py_f(*max)), "fill_uniform"),
        Init::Gaussian { mean, std } => (format!("gaussian({}, {})", py_f(*mean), py_f(*std)), "fill_gaussian"),
        Init::Xavier { norm: n } => (format!("xavier({})", norm(*n)), "fill_xavier"),
        Init::Msra { norm: n } => (format!("msra({})", norm(*n)), "fill_msra"),
    }
}

fn floats(v: &[f64], c: usize) -> String {
    let v: Vec<f64> = if v.len() == 1 { vec![v[0]; c] } else { v.to_vec() };
    format!("np.array([{}], dtype=np.float32)", v.iter().map(|x| py_f(*x)).collect::<Vec<_>>().join(", "))
}

/// The policy's rate at iteration `t` of a run of `T` iterations (after any warm-up), as a Python
/// expression (`spec::LrPolicy::rate`).
fn policy_expr(p: &LrPolicy) -> String {
    match p {
        LrPolicy::Fixed => "BASE_LR".into(),
        LrPolicy::Step { gamma, stepsize } => format!("BASE_LR * {} ** (t // {stepsize})", py_f(*gamma)),
        LrPolicy::Multistep { gamma, steps } => {
            let s: Vec<String> = steps.iter().map(|x| x.to_string()).collect();
            let tuple = if s.len() == 1 { format!("({},)", s[0]) } else { format!("({})", s.join(", ")) };
            format!("BASE_LR * {} ** sum(t >= s for s in {tuple})", py_f(*gamma))
        }
        LrPolicy::Exp { gamma } => format!("BASE_LR * {} ** t", py_f(*gamma)),
        LrPolicy::Inv { gamma, power } => format!("BASE_LR * (1 + {} * t) ** -{}", py_f(*gamma), py_f(*power)),
        LrPolicy::Poly { power } => format!("BASE_LR * max(0.0, 1 - t / max(T, 1)) ** {}", py_f(*power)),
        LrPolicy::Sigmoid { gamma, stepsize } => format!("BASE_LR / (1 + math.exp(-{} * (t - {stepsize})))", py_f(*gamma)),
        LrPolicy::Cosine { min, cycle, cycle_mult } => {
            format!("cosine_rate(t, T, {}, {}, {})", py_f(*min), cycle.map(|c| c.to_string()).unwrap_or_else(|| "None".into()), py_f(*cycle_mult))
        }
        LrPolicy::OneCycle { pct, div, final_div } => format!("one_cycle_rate(t, T, {}, {}, {})", py_f(*pct), py_f(*div), py_f(*final_div)),
    }
}

/// The body of `policy(it)`: the warm-up in front of the policy (`spec::LrPolicy::rate_with_warmup`).
fn policy(p: &LrPolicy, warmup: u64) -> String {
    let rate = format!("(lambda t, T: {})", policy_expr(p));
    if warmup == 0 {
        format!("{rate}(it, ITERATIONS)")
    } else {
        format!("{rate}(0, ITERATIONS - {warmup}) * (it + 1) / {warmup} if it < {warmup} else {rate}(it - {warmup}, ITERATIONS - {warmup})")
    }
}

/// Writes train.py. `data_root`: the data set's folder on this machine when known (the default of
/// `--data-root`); synthetic data lives next to train.py.
pub fn train_py(exp: &Experiment, plan: &Plan, header: &str, input_device: u32, data_root: Option<&str>) -> String {
    let (d, t) = (&exp.data, &exp.train);
    let shape = d.dataset.sample_shape();
    let shape3: Vec<u64> = match shape.as_slice() {
        [c, h, w] => vec![*c, *h, *w],
        [h, w] => vec![1, *h, *w],
        [f] => vec![1, 1, *f],
        _ => vec![1, 1, 1],
    };
    let channels = shape3[0] as usize;
    let mut s = String::new();
    let _ = writeln!(s, "\"\"\"{}", py_docstring_text(header));
    s.push_str(
        "\nTrains the model of model.py as expc would: the spec's data pipeline, initialisers, solver (Caffe's\n\
         form, per-parameter lr and decay multipliers), lr policy, evaluation, checkpoints and metrics.csv.\n\
         One process: `python train.py --run-dir DIR`; data parallel: `torchrun --nproc-per-node N train.py ...`.\n\"\"\"\n\n",
    );
    s.push_str(section("imports"));
    // Constants.
    s.push_str("\n# The spec's settings.\n");
    let _ = writeln!(s, "SEED = {}", t.seed);
    let _ = writeln!(s, "BATCH = {}", d.batch);
    let _ = writeln!(s, "TEST_BATCH = {}", d.test_batch);
    let _ = writeln!(s, "ITERATIONS = {}", t.iterations);
    let _ = writeln!(s, "BASE_LR = {}", py_f(t.lr));
    let _ = writeln!(s, "WEIGHT_DECAY = {}", py_f(t.weight_decay));
    match t.solver {
        Solver::Sgd { momentum } | Solver::Nesterov { momentum } => {
            let _ = writeln!(s, "MOMENTUM = {}", py_f(momentum));
        }
        Solver::Adam { beta1, beta2, eps } | Solver::AdamW { beta1, beta2, eps } => {
            let _ = writeln!(s, "BETA1, BETA2, EPS = {}, {}, {}", py_f(beta1), py_f(beta2), py_f(eps));
            let _ = writeln!(s, "DECOUPLED_DECAY = {}", if matches!(t.solver, Solver::AdamW { .. }) { "True  # AdamW" } else { "False" });
        }
        Solver::AdaGrad { delta } => {
            let _ = writeln!(s, "DELTA = {}", py_f(delta));
        }
        Solver::RmsProp { rms_decay, delta } => {
            let _ = writeln!(s, "RMS_DECAY, DELTA = {}, {}", py_f(rms_decay), py_f(delta));
        }
        Solver::AdaDelta { momentum, delta } => {
            let _ = writeln!(s, "MOMENTUM, DELTA = {}, {}", py_f(momentum), py_f(delta));
        }
    }
    let _ = writeln!(s, "CLIP_GRADIENTS = {}", t.clip_gradients.map(py_f).unwrap_or_else(|| "None".into()));
    let smoothing = match plan.layers.last().map(|l| &l.op) {
        Some(crate::ops::Op::SoftmaxLoss(l)) => l.smoothing,
        _ => 0.0,
    };
    let _ = writeln!(s, "LABEL_SMOOTHING = {}", py_f(smoothing));
    let _ = writeln!(s, "LOG_EVERY = {}", t.log_every);
    let _ = writeln!(s, "EVAL_EVERY = {}", t.eval_every);
    let _ = writeln!(s, "EVAL_BATCHES = {}", t.eval_batches.map(|b| b.to_string()).unwrap_or_else(|| "None  # the whole test set".into()));
    let _ = writeln!(s, "CHECKPOINT_EVERY = {}", t.checkpoint_every);
    let _ = writeln!(s, "CHECKPOINT_KEEP = {}", t.checkpoint_keep.max(1));
    let _ = writeln!(s, "ACCURACY_TOP = {}", plan.accuracy_top);
    let input: Vec<String> = plan.input_shape.iter().map(|x| x.to_string()).collect();
    let _ = writeln!(s, "INPUT_SHAPE = ({}{})", input.join(", "), if input.len() == 1 { "," } else { "" });
    let _ = writeln!(s, "PLACEMENTS = {}", placements(plan, input_device));
    let _ = writeln!(s, "INPUT_DEVICE = {input_device}");
    let _ = writeln!(s, "SCALE = {}", py_f(d.scale));
    match &d.mean {
        Mean::PerChannel(m) => {
            let _ = writeln!(s, "MEAN = {}", floats(m, channels));
        }
        Mean::Image => s.push_str("MEAN_IMAGE = None  # fitted on the training set\n"),
        Mean::None => {}
    }
    if let Some(sd) = &d.std {
        let _ = writeln!(s, "STD = {}", floats(sd, channels));
    }
    let aug = &d.augment;
    let augmenting = aug.pad > 0 || aug.crop.is_some() || aug.mirror || aug.cutout.is_some() || aug.resized_crop.is_some();
    let jittering = aug.jitter().iter().any(|&v| v > 0.0);
    if augmenting {
        let crop = aug.crop.unwrap_or([shape3[1], shape3[2]]);
        let _ = writeln!(s, "PAD = {}", aug.pad);
        let _ = writeln!(s, "CROP = ({}, {})", crop[0], crop[1]);
        let _ = writeln!(s, "MIRROR = {}", if aug.mirror { "True" } else { "False" });
        if let Some([h, w]) = aug.cutout {
            let _ = writeln!(s, "CUTOUT = ({h}, {w})");
        }
        if let Some(min) = aug.resized_crop {
            let _ = writeln!(s, "RESIZED_CROP = {}  # the smallest share of the padded image's area", py_f(min));
        }
    }
    if jittering {
        let [b, c, sat] = aug.jitter();
        let _ = writeln!(s, "JITTER = ({}, {}, {})  # brightness, contrast, saturation", py_f(b), py_f(c), py_f(sat));
    }
    let root = match &d.dataset {
        Dataset::Synthetic { .. } => "os.path.dirname(os.path.abspath(__file__))".to_string(),
        _ => data_root.map(py_str).unwrap_or_else(|| "None".into()),
    };
    let _ = writeln!(s, "DATA_ROOT = {root}");
    // Data.
    let loader = match &d.dataset {
        Dataset::Cifar10 => section("data_cifar10").to_string(),
        Dataset::Mnist => section("data_mnist").to_string(),
        Dataset::Synthetic { .. } => section("data_synthetic").to_string(),
        Dataset::Folder { .. } => section("data_folder").replace("{{SHAPE}}", &format!("({}, {}, {})", shape3[0], shape3[1], shape3[2])),
    };
    s.push_str(&loader);
    match (&d.mean, &d.std) {
        (Mean::Image, _) => s.push_str(section("preprocess_image")),
        (Mean::PerChannel(_), Some(_)) => s.push_str(section("preprocess_channels")),
        (Mean::PerChannel(_), None) => s.push_str(
            "\n\ndef preprocess(images):\n    \"\"\"u8 pixels [N, C, H, W] -> float32: x * scale - mean[c].\"\"\"\n    return images.astype(np.float32) * np.float32(SCALE) - MEAN[None, :, None, None]\n",
        ),
        (Mean::None, Some(_)) => s.push_str(
            "\n\ndef preprocess(images):\n    \"\"\"u8 pixels [N, C, H, W] -> float32: x * scale / std[c].\"\"\"\n    return images.astype(np.float32) * np.float32(SCALE) / STD[None, :, None, None]\n",
        ),
        (Mean::None, None) => s.push_str("\n\ndef preprocess(images):\n    \"\"\"u8 pixels [N, C, H, W] -> float32: x * scale.\"\"\"\n    return images.astype(np.float32) * np.float32(SCALE)\n"),
    }
    if augmenting {
        let crop = aug.crop.unwrap_or([shape3[1], shape3[2]]);
        let window = if aug.resized_crop.is_some() {
            "        top, left, wh, ww = resized_window(rng, h + 2 * PAD, w + 2 * PAD)\n        sample = resize(padded[k, :, top : top + wh, left : left + ww], oh, ow)\n"
        } else {
            "        top = rng.integers(0, h + 2 * PAD - oh + 1)\n        left = rng.integers(0, w + 2 * PAD - ow + 1)\n        sample = padded[k, :, top : top + oh, left : left + ow]\n"
        };
        let mut what = vec![format!("pad {} zeros (after normalisation)", aug.pad)];
        what.push(match aug.resized_crop {
            Some(min) => format!("random-resized crop (area share {}..1, aspect ratio 3/4..4/3) to {}x{}", py_f(min), crop[0], crop[1]),
            None => format!("random crop {}x{}", crop[0], crop[1]),
        });
        if aug.mirror {
            what.push("random mirror".into());
        }
        if let Some([h, w]) = aug.cutout {
            what.push(format!("cutout {h}x{w} (zeros, clipped at the borders)"));
        }
        let a = section("augment")
            .replace("{{WHAT}}", &what.join(", "))
            .replace("{{WINDOW}}", window)
            .replace("{{CUTOUT}}", if aug.cutout.is_some() { "        cut(out[k], int(rng.integers(0, oh)), int(rng.integers(0, ow)))\n" } else { "" });
        s.push_str(&a);
        if aug.resized_crop.is_some() {
            s.push_str(section("resized_crop"));
        }
        if aug.cutout.is_some() {
            s.push_str(section("cutout"));
        }
    }
    if jittering {
        s.push_str(section("jitter"));
    }
    let order = if d.shuffle {
        "        \"\"\"A new seeded order every epoch (expc's rule; its generator differs).\"\"\"\n        return np.random.default_rng([SEED, epoch, 0x5348]).permutation(len(self.train_labels))\n"
    } else {
        "        \"\"\"File order (`shuffle false`).\"\"\"\n        return np.arange(len(self.train_labels))\n"
    };
    let fit = if matches!(d.mean, Mean::Image) {
        "        global MEAN_IMAGE\n        MEAN_IMAGE = (self.train_images.sum(0, dtype=np.uint64) / len(self.train_labels) * float(np.float32(SCALE))).astype(np.float32)\n"
    } else {
        ""
    };
    let batches = section("batches")
        .replace("{{INPUT_SHAPE}}", &format!("[N, {}]", input.join(", ")))
        .replace(
            "{{SEQUENCE}}",
            if d.sequence.is_some() && channels > 1 {
                "    # `sequence rows`: step t holds row t of channel 0, then of channel 1, ...\n    x = x.transpose(0, 2, 1, 3)\n"
            } else {
                ""
            },
        )
        .replace("{{FIT_MEAN_IMAGE}}", fit)
        .replace("{{ORDER}}", order)
        .replace("{{JITTER_TRAIN}}", if jittering { "jitter(self.train_images[indices], indices, epoch)" } else { "self.train_images[indices]" })
        .replace("{{AUGMENT_TRAIN}}", if augmenting { "        x = augment(x, indices, epoch)\n" } else { "" })
        .replace("{{AUGMENT_TEST}}", if aug.crop.is_some() { "            x = centre(x)\n" } else { "" });
    s.push_str(&batches);
    // Initialisers and the parameter table.
    let mut kinds: Vec<&str> = vec![];
    let mut table = String::new();
    for l in plan.layers.iter().filter(|l| l.shares.is_none()) {
        for p in &l.params {
            let (f, kind) = filler(&p.init);
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
            let name = crate::run::engine_model::checkpoint_name(&l.op, &l.name, p.name);
            let _ = writeln!(table, "    {}: ({f}, {}, {}),", py_str(&name), py_f(p.lr_mult), py_f(p.decay_mult));
        }
    }
    if kinds.iter().any(|k| *k == "fill_xavier" || *k == "fill_msra") {
        s.push_str(section("fillers"));
    }
    for k in ["fill_constant", "fill_uniform", "fill_gaussian", "fill_xavier", "fill_msra"] {
        if kinds.contains(&k) {
            s.push_str(section(k));
        }
    }
    s.push_str(&section("params_head").replace("{{PARAMS}}", &table));
    s.push_str(section("solver_base"));
    s.push_str(section(match t.solver {
        Solver::Sgd { .. } => "solver_sgd",
        Solver::Nesterov { .. } => "solver_nesterov",
        Solver::Adam { .. } | Solver::AdamW { .. } => "solver_adam",
        Solver::AdaGrad { .. } => "solver_adagrad",
        Solver::RmsProp { .. } => "solver_rmsprop",
        Solver::AdaDelta { .. } => "solver_adadelta",
    }));
    if matches!(t.policy, LrPolicy::Cosine { .. }) {
        s.push_str(section("policy_cosine"));
    }
    if matches!(t.policy, LrPolicy::OneCycle { .. }) {
        s.push_str(section("policy_one_cycle"));
    }
    s.push_str(section("loss"));
    let new_model = if placements(plan, input_device) > 1 { "Net(devices)" } else { "Net().to(devices[0])" };
    let step_seed = if plan.layers.iter().any(|l| matches!(l.op, crate::ops::Op::Dropout(_))) {
        "        # Dropout masks are a function of (seed, iteration, rank), so a resumed run repeats them;\n\
         \x20       # --same-masks-as-expc uses the native engine's masks instead.\n\
         \x20       torch.manual_seed((SEED * 1_000_003 + it) * 1_009 + rank)\n\
         \x20       model.same_masks_as_expc = (SEED, it, first) if args.same_masks_as_expc else None\n"
    } else {
        ""
    };
    s.push_str(&section("main").replace("{{NEW_MODEL}}", new_model).replace("{{LR_POLICY}}", &policy(&t.policy, t.warmup)).replace("{{STEP_SEED}}", step_seed));
    s
}
