//! The data loader alone: assembles training batches of CIFAR-10 (the homework's preprocessing, and
//! with `pad=4 crop mirror`) on its thread with nothing else running, and prints the time per image.
//! Usage: cargo run --release --example bench_loader -- CIFAR10_DIR [BATCHES]
use expc::data::{DataConfig, Pipeline, Source};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(root) = args.next() else {
        eprintln!("usage: bench_loader CIFAR10_DIR [BATCHES]");
        std::process::exit(2);
    };
    let batches: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(400);
    for augment in [false, true] {
        let config = DataConfig {
            source: Source::Cifar10 { root: root.clone().into() },
            train_batch: 256,
            test_batch: 100,
            scale: 1.0 / 255.0,
            mean: Some(vec![0.4914, 0.4822, 0.4465]),
            std: Some(vec![0.2470, 0.2435, 0.2616]),
            mean_image: false,
            pad: if augment { 4 } else { 0 },
            crop: augment.then_some([32, 32]),
            mirror: augment,
            cutout: None,
            jitter: [0.0; 3],
            resized_crop: None,
            sequence_rows: false,
            shuffle: true,
            validation: 0,
            seed: 1,
            prefetch: 4,
            workers: 1,
            drop_last: false,
            limit_train: None,
            limit_test: None,
        };
        let p = match Pipeline::load(&config) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
        let mut s = p.train_stream(0);
        for _ in 0..batches {
            let b = s.next().expect("batch");
            s.recycle(b);
        }
        let st = s.stats();
        println!("augment {augment}: {:.2} µs per image ({} batches of 256)", st.produce_ns as f64 / 1e3 / (st.batches as f64 * 256.0), st.batches);
    }
}
