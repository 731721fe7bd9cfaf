//! Training-throughput benchmark for the expc engine (see bench/README.md).
//!
//! `cargo run --release --example bench_train -- --net simple|lenet [--bn] [--threads N]
//!  [--batch B] [--warmup W] [--runs R] [--steps S] [--micro M (0 = auto)]`
//! Prints one JSON line: median img/s over R timed runs of S steps each (after W warm-up
//! steps), all run times, final loss, and peak RSS (VmHWM) in MiB.

use expc::engine::{Trainer, TrainerConfig};
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let net: String = arg(&args, "--net", "simple".to_string());
    let bn = args.iter().any(|a| a == "--bn");
    let threads: usize = arg(&args, "--threads", 1);
    let default_batch = if net == "lenet" { 64 } else { 256 };
    let batch: usize = arg(&args, "--batch", default_batch);
    let warmup: usize = arg(&args, "--warmup", 5);
    let runs: usize = arg(&args, "--runs", 5);
    let steps: usize = arg(&args, "--steps", 10);
    let micro: usize = arg(&args, "--micro", 0);
    // The shipped experiments: the homework's simple net (Problem 5) and Caffe's LeNet, each with
    // and without batch norm after every convolution.
    let spec = match (net.as_str(), bn) {
        ("lenet", false) => "experiments/mnist/lenet.exp",
        ("lenet", true) => "experiments/mnist/lenet_batchnorm.exp",
        (_, false) => "experiments/cifar10/baseline.exp",
        (_, true) => "experiments/cifar10/batchnorm.exp",
    };
    let plan = expc::lower::lower_file(std::path::Path::new(spec)).unwrap_or_else(|e| panic!("{spec} compiles: {e}"));
    let cfg = TrainerConfig {
        weight_decay: 0.0,
        solver: expc::spec::Solver::Sgd { momentum: 0.9 },
        clip_gradients: None,
        max_batch: batch,
        threads,
        micro_batch: micro,
    };
    let mut t = Trainer::new(&plan, 1, cfg).expect("valid plan");
    let il = t.network().input_len();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let nb = 4;
    let xs: Vec<Vec<f32>> = (0..nb).map(|_| (0..batch * il).map(|_| rng.gen_range(-1.0f32..1.0)).collect()).collect();
    let ys: Vec<Vec<u32>> = (0..nb).map(|_| (0..batch).map(|_| rng.gen_range(0..10u32)).collect()).collect();
    let mut k = 0;
    let mut loss = 0.0;
    for _ in 0..warmup {
        loss = t.train_step(&xs[k % nb], &ys[k % nb], 0.01).unwrap().loss;
        k += 1;
    }
    let mut rates = vec![];
    for _ in 0..runs {
        let t0 = Instant::now();
        for _ in 0..steps {
            loss = t.train_step(&xs[k % nb], &ys[k % nb], 0.01).unwrap().loss;
            k += 1;
        }
        rates.push((steps * batch) as f64 / t0.elapsed().as_secs_f64());
    }
    let mut sorted = rates.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = sorted[sorted.len() / 2];
    let mem = t.memory_bytes();
    println!(
        "{{\"impl\":\"expc\",\"net\":\"{net}\",\"bn\":{bn},\"threads\":{threads},\"batch\":{batch},\"img_per_s\":{median:.1},\"runs\":{rates:?},\"loss\":{loss},\"peak_rss_mib\":{:.1},\"engine_bytes\":{}}}",
        peak_rss_mib(),
        mem.total()
    );
}
