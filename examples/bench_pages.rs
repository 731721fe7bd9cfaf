//! Random image reads on 4 KiB against 2 MiB pages: what `src/memory.rs` is for. Writes randomly
//! chosen 3,072-byte "images" out of a 150 MB buffer as normalised f32 values (as the data
//! pipeline does), optionally touching `POLLUTE_KIB` of other memory between images as a
//! training step does, and prints the time per image for a buffer with and without the
//! huge-page advice (`memory::huge_page_vec`).
//! Usage: cargo run --release --example bench_pages [-- POLLUTE_KIB ...]   (default: 0 4096)
use std::time::Instant;

fn per_image_us(huge: bool, pollute_kib: usize) -> f64 {
    const PER: usize = 3072;
    const N: usize = 50_000;
    let mut images: Vec<u8> = if huge { expc::memory::huge_page_vec(N * PER) } else { Vec::with_capacity(N * PER) };
    images.extend((0..N * PER).map(|i| (i * 7) as u8));
    let mut other = vec![0f32; pollute_kib * 256];
    let mut out = vec![0f32; PER];
    let (mut x, mut spent, mut check) = (12345u64, 0u128, 0f32);
    let reads = 100_000;
    for _ in 0..reads {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x % N as u64) as usize;
        let t = Instant::now();
        for (d, &p) in out.iter_mut().zip(&images[i * PER..(i + 1) * PER]) {
            *d = (p as f32 / 255.0 - 0.5) / 0.25;
        }
        spent += t.elapsed().as_nanos();
        check += out[17];
        other.iter_mut().for_each(|v| *v += 1.0);
    }
    std::hint::black_box((check, &other));
    spent as f64 / 1e3 / reads as f64
}

fn main() {
    let pollute: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let pollute = if pollute.is_empty() { vec![0, 4096] } else { pollute };
    for kib in pollute {
        let small = per_image_us(false, kib);
        let huge = per_image_us(true, kib);
        println!("{kib} KiB touched between images: {small:.2} µs per image on 4 KiB pages, {huge:.2} µs with the huge-page advice");
    }
}
