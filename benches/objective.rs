//! The fused logistic objective: one pass over a row-major f32 matrix. Throughput is reported as
//! bytes of matrix read per second, to compare with the machine's memory bandwidth.
//!
//! `cargo bench -p trainyard-benches --bench objective`
//!
//! On a machine with a usable GPU the same sizes run on CUDA too (group
//! `logistic_loss_grad_cuda`, the matrix already resident on the device, each pass ending with
//! its gradient back on the host); elsewhere that group is skipped with a line saying why.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use trainyard_kernels::cuda;
use trainyard_kernels::logistic::{LossGrad, Problem, loss_grad, predict_proba};

/// Seeded data, built outside the timed closure.
fn data(rows: usize, cols: usize) -> (Vec<f32>, Vec<f32>, Vec<f64>) {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let x = (0..rows * cols).map(|_| next()).collect();
    let y = (0..rows).map(|_| if next() > 0.45 { 1.0 } else { 0.0 }).collect();
    let beta = (0..cols).map(|j| (j as f64 * 0.37).sin() * 0.1).collect();
    (x, y, beta)
}

fn objective(c: &mut Criterion) {
    let mut group = c.benchmark_group("logistic_loss_grad");
    for (rows, cols) in [(100_000, 32), (1_000_000, 32), (250_000, 128)] {
        let (x, y, beta) = data(rows, cols);
        let p = Problem { x: &x, rows, cols, y: &y, weights: None };
        let mut grad = vec![0.0; cols];
        group.throughput(Throughput::Bytes((rows * cols * 4) as u64));
        group.bench_with_input(BenchmarkId::from_parameter(format!("{rows}x{cols}")), &p, |b, p| {
            b.iter(|| loss_grad(p, &beta, 0.1, &mut grad))
        });
    }
    group.finish();

    match cuda::probe().and_then(|_| cuda::nvrtc_available()) {
        Err(why) => eprintln!("logistic_loss_grad_cuda: skipped, no usable GPU: {why}"),
        Ok(()) => {
            let mut group = c.benchmark_group("logistic_loss_grad_cuda");
            for (rows, cols) in [(100_000, 32), (1_000_000, 32), (250_000, 128), (3_200_000, 64)] {
                let (x, y, beta) = data(rows, cols);
                let p = Problem { x: &x, rows, cols, y: &y, weights: None };
                let mut gpu = match cuda::logistic::Objective::new(0, &p) {
                    Ok(g) => g,
                    Err(e) => {
                        eprintln!("logistic_loss_grad_cuda {rows}x{cols}: skipped: {e}");
                        continue;
                    }
                };
                let mut grad = vec![0.0; cols];
                group.throughput(Throughput::Bytes((rows * cols * 4) as u64));
                group.bench_function(BenchmarkId::from_parameter(format!("{rows}x{cols}")), |b| {
                    b.iter(|| gpu.loss_grad(&beta, 0.1, &mut grad).expect("a CUDA pass"))
                });
            }
            group.finish();
        }
    }

    let mut group = c.benchmark_group("logistic_predict_proba");
    let (rows, cols) = (1_000_000, 32);
    let (x, _, beta) = data(rows, cols);
    let mut out = vec![0.0; rows];
    group.throughput(Throughput::Bytes((rows * cols * 4) as u64));
    group.bench_function(format!("{rows}x{cols}"), |b| {
        b.iter(|| predict_proba(&x, cols, &beta, 0.1, &mut out))
    });
    group.finish();
}

criterion_group!(benches, objective);
criterion_main!(benches);
