//! Measures this machine's memory read bandwidth the way the fused objective reads the design
//! matrix: every thread streams through its share of a large f32 buffer. Prints GB/s as JSON.
//!
//! `cargo run --release -p trainyard-benches --bin bandwidth -- [MiB]`

use rayon::prelude::*;
use std::time::Instant;

fn main() {
    let mib: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1024);
    let n = mib * 1024 * 1024 / 4;
    let data: Vec<f32> = (0..n).map(|i| (i % 97) as f32).collect();
    let mut best = f64::INFINITY;
    let mut sink = 0.0f32;
    for _ in 0..7 {
        let t = Instant::now();
        // Eight independent lanes per chunk so the sum is bound by memory, not by add latency.
        let s: f32 = data
            .par_chunks(1 << 16)
            .map(|c| {
                let mut acc = [0f32; 8];
                for x in c.chunks_exact(8) {
                    for k in 0..8 {
                        acc[k] += x[k];
                    }
                }
                acc.iter().sum::<f32>()
            })
            .sum();
        best = best.min(t.elapsed().as_secs_f64());
        sink += s;
    }
    let gbps = (n * 4) as f64 / best / 1e9;
    println!(
        "{{\"bytes\": {}, \"seconds\": {best}, \"gb_per_s\": {gbps}, \"threads\": {}, \"checksum\": {sink}}}",
        n * 4,
        rayon::current_num_threads()
    );
}
