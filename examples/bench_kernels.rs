//! Kernel micro-benchmark: GFLOP/s of the three convolution GEMMs (forward `y = W·col`, data
//! gradient `dcol = Wᵀ·dy`, weight gradient `dW += dy·colᵀ` over a micro-batch of 4) for the layer
//! shapes of the shipped conv nets, best of 5 × 10 calls, one thread.
//! `cargo run --release --example bench_kernels` (`EXPC_SIMD=avx2` for the AVX2 kernels).
use expc::kernels::matmul::{matmul, MatRef};
use std::time::Instant;

fn time(mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..10 {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / 10.0);
    }
    best
}

fn main() {
    // (name, O, K, HW)
    let shapes = [
        ("quick conv1", 32, 75, 1024),
        ("quick conv2", 32, 800, 256),
        ("quick conv3", 64, 800, 64),
        ("vgg 64", 64, 576, 256),
        ("vgg 128", 128, 1152, 64),
        ("resnet 16", 16, 144, 1024),
        ("resnet 32", 32, 288, 256),
        ("simple c1", 6, 75, 784),
        ("simple c2", 16, 150, 100),
        ("lenet c1", 20, 25, 576),
        ("lenet c2", 50, 500, 64),
    ];
    for (name, o, k, hw) in shapes {
        let w: Vec<f32> = (0..o * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let col: Vec<f32> = (0..k * hw).map(|i| (i % 5) as f32 * 0.1).collect();
        let dy: Vec<f32> = (0..o * hw).map(|i| (i % 3) as f32 * 0.1).collect();
        let mut y = vec![0f32; o * hw];
        let mut dcol = vec![0f32; k * hw];
        let mut dw = vec![0f32; o * k];
        let flops = 2.0 * (o * k * hw) as f64;
        let fwd = time(|| matmul(o, hw, k, MatRef::rm(&w, k), MatRef::rm(&col, hw), &mut y, hw, false));
        let bwd_x = time(|| matmul(k, hw, o, MatRef::tr(&w, k), MatRef::rm(&dy, hw), &mut dcol, hw, false));
        let (dy4, col4) = (dy.repeat(4), col.repeat(4));
        let bwd_w = time(|| expc::kernels::dot_tile::gemm_nt_acc_batched(o, k, hw, 4, &dy4, hw, o * hw, &col4, hw, k * hw, &mut dw, k)) / 4.0;
        println!(
            "{name:12} O={o:4} K={k:5} HW={hw:5}  fwd {:6.1}  dcol {:6.1}  dW {:6.1} GFLOP/s  ({})",
            flops / fwd / 1e9,
            flops / bwd_x / 1e9,
            flops / bwd_w / 1e9,
            expc::kernels::simd().name()
        );
    }
}
