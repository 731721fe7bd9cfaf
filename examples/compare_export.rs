//! Exports a small network's initial weights, a fixed data set and the losses of the
//! first 20 expc training steps to `bench/out/compare.json`, for bench/torch_compare.py.
//!
//! Net: conv4@3 (pad 1) → batch norm → relu → maxpool2 → conv6@3 → relu → avgpool2 →
//! flatten → fc10 on 3×8×8, batch 8, SGD momentum 0.9, lr 0.05, weight decay 1e-3
//! (weights only, Caffe decay_mult convention), 2 threads.

use expc::engine::{Trainer, TrainerConfig};
use rand::{Rng, SeedableRng};

fn main() {
    let spec = "experiment compare_export
data { dataset synthetic shape=3x8x8 classes=10 train=64 test=64 }
model {
  input 3x8x8
  conv1: conv 4 3x3 pad=1 init=msra
  bn1: batchnorm
  relu
  pool1: maxpool 2
  conv2: conv 6 3x3 pad=1 init=msra
  relu
  pool2: avgpool 2
  fc: fc 10 init=msra
  loss: softmax_loss
}
train { lr 0.05\n iterations 20 }
";
    let plan = expc::lower::lower_text("compare_export.exp", spec).unwrap_or_else(|e| panic!("the comparison net compiles: {e}"));
    let (batch, steps) = (8usize, 20usize);
    let cfg = TrainerConfig {
        weight_decay: 1e-3,
        solver: expc::spec::Solver::Sgd { momentum: 0.9 },
        clip_gradients: None,
        max_batch: batch,
        threads: 2,
        micro_batch: 0,
    };
    let mut t = Trainer::new(&plan, 5, cfg).expect("valid");
    let params: Vec<serde_json::Value> = t
        .network()
        .param_info()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            serde_json::json!({"layer": p.layer, "name": p.name, "shape": p.shape, "decay_mult": p.decay_mult,
                               "lr_mult": p.lr_mult, "data": t.network().param_f32(i).unwrap_or_default()})
        })
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let il = t.network().input_len();
    let xs: Vec<Vec<f32>> = (0..steps).map(|_| (0..batch * il).map(|_| rng.gen_range(-1.0f32..1.0)).collect()).collect();
    let ys: Vec<Vec<u32>> = (0..steps).map(|_| (0..batch).map(|_| rng.gen_range(0..10u32)).collect()).collect();
    let losses: Vec<f32> = (0..steps).map(|s| t.train_step(&xs[s], &ys[s], 0.05).expect("step").loss).collect();
    let out = serde_json::json!({"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3, "batch": batch,
        "params": params, "inputs": xs, "labels": ys, "losses": losses});
    std::fs::create_dir_all("bench/out").expect("mkdir");
    std::fs::write("bench/out/compare.json", out.to_string()).expect("write");
    println!("wrote bench/out/compare.json ({steps} losses, first {:.6}, last {:.6})", losses[0], losses[steps - 1]);
}
