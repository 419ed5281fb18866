//! The fused logistic objective: one pass over a row-major f32 matrix. Throughput is reported as
//! bytes of matrix read per second, to compare with the machine's memory bandwidth.
//!
//! `cargo bench -p trainyard-benches --bench objective` (group `softmax_loss_grad`: the
//! multinomial objective, 10 classes).
//!
//! On a machine with a usable GPU the same sizes run on CUDA too (group
//! `logistic_loss_grad_cuda`, the matrix already resident on the device, each pass ending with
//! its gradient back on the host); elsewhere that group is skipped with a line saying why.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use trainyard_benches::objective_data;
use trainyard_kernels::cuda;
use trainyard_kernels::logistic::{LossGrad, Problem, loss_grad, predict_proba};
use trainyard_kernels::softmax;

fn objective(c: &mut Criterion) {
    let mut group = c.benchmark_group("logistic_loss_grad");
    for (rows, cols) in [(100_000, 32), (1_000_000, 32), (250_000, 128)] {
        let (x, y, beta) = objective_data(rows, cols);
        let p = Problem::dense(&x, rows, cols, &y, None);
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
                let (x, y, beta) = objective_data(rows, cols);
                let p = Problem::dense(&x, rows, cols, &y, None);
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

    // The multinomial objective: K = 10 classes over the same rows; bytes are still the
    // matrix's, so the throughput compares with the bandwidth floor of one read of it.
    let mut group = c.benchmark_group("softmax_loss_grad");
    let (rows, cols, k) = (1_000_000, 32, 10);
    let (x, _, _) = objective_data(rows, cols);
    let y: Vec<f32> = (0..rows).map(|i| (i % k) as f32).collect();
    let coef: Vec<f64> = (0..k * cols).map(|j| ((j * 7919) % 97) as f64 / 97.0 - 0.5).collect();
    let intercept = vec![0.0; k];
    let p = softmax::Problem {
        design: Problem::dense(&x, rows, cols, &[], None).design,
        classes: k,
        y: &y,
        weights: None,
    };
    let (mut grad, mut grad_b) = (vec![0.0; k * cols], vec![0.0; k]);
    group.throughput(Throughput::Bytes((rows * cols * 4) as u64));
    group.bench_function(format!("{rows}x{cols}x{k}"), |b| {
        b.iter(|| softmax::loss_grad(&p, &coef, &intercept, &mut grad, &mut grad_b))
    });
    group.finish();

    let mut group = c.benchmark_group("logistic_predict_proba");
    let (rows, cols) = (1_000_000, 32);
    let (x, _, beta) = objective_data(rows, cols);
    let mut out = vec![0.0; rows];
    group.throughput(Throughput::Bytes((rows * cols * 4) as u64));
    group.bench_function(format!("{rows}x{cols}"), |b| {
        let d = Problem::dense(&x, rows, cols, &[], None).design;
        b.iter(|| predict_proba(&d, &beta, 0.1, &mut out))
    });
    group.finish();
}

criterion_group!(benches, objective);
criterion_main!(benches);
