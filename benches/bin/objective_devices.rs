//! One pass of the logistic objective on the CPU and on each usable GPU, over the same seeded
//! f32 matrix: best of several passes, as GB/s of matrix read. Prints markdown table rows (the
//! CUDA row says why it is missing when no GPU is usable). Used by `benches/gpu.sh`.
//!
//! `objective_devices [ROWS] [COLS]` (default 3,200,000 × 64: the 4M × 64 benchmark's train rows)

use std::time::Instant;

use trainyard_benches::objective_data;
use trainyard_kernels::cuda;
use trainyard_kernels::logistic::{Cpu, LossGrad, Problem};

fn best_pass(objective: &mut dyn LossGrad, beta: &[f64], cols: usize) -> Result<f64, cuda::CudaError> {
    let mut grad = vec![0.0; cols];
    // The first pass warms caches and, on a GPU, the JIT-compiled module.
    objective.loss_grad(beta, 0.1, &mut grad)?;
    let mut best = f64::INFINITY;
    for _ in 0..10 {
        let t = Instant::now();
        objective.loss_grad(beta, 0.1, &mut grad)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().ok());
    let rows = args.next().flatten().unwrap_or(3_200_000);
    let cols = args.next().flatten().unwrap_or(64);
    let (x, y, beta) = objective_data(rows, cols);
    let p = Problem::dense(&x, rows, cols, &y, None);
    let gb = (rows * cols * 4) as f64 / 1e9;

    let cpu = best_pass(&mut Cpu::new(p), &beta, cols).unwrap_or(f64::NAN);
    println!(
        "| objective pass {rows} x {cols} | cpu ({} threads) | {:.4} s | {:.1} GB/s | 1.00x |",
        rayon::current_num_threads(),
        cpu,
        gb / cpu
    );
    match cuda::probe().and_then(|n| {
        cuda::nvrtc_available()?;
        Ok(n)
    }) {
        Err(why) => println!("| objective pass {rows} x {cols} | cuda | not run: {why} | | |"),
        Ok(n) => {
            for ordinal in 0..n {
                match cuda::logistic::Objective::new(ordinal, &p)
                    .and_then(|mut g| best_pass(&mut g, &beta, cols))
                {
                    Ok(t) => println!(
                        "| objective pass {rows} x {cols} | cuda:{ordinal} | {t:.4} s | {:.1} GB/s | {:.2}x |",
                        gb / t,
                        cpu / t
                    ),
                    Err(e) => {
                        println!("| objective pass {rows} x {cols} | cuda:{ordinal} | failed: {e} | | |")
                    }
                }
            }
        }
    }
}
