//! linfa-logistic, an independent implementation of the same objective (Σ log loss +
//! (alpha/2)·‖β‖², intercept unpenalized), reaches the same coefficients as trainyard's solver.

#![allow(clippy::unwrap_used)]

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use trainyard::features::{Design, Matrix};
use trainyard::logistic;
use trainyard::spec::LogisticSpec;

/// Seeded rows with correlated features; labels from a known model whose positives are the
/// majority (linfa takes the majority class as its positive class).
fn data(rows: usize, cols: usize) -> (Vec<f32>, Vec<f32>) {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut u = move || {
        s = trainyard::split::mix64(s);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut x = Vec::with_capacity(rows * cols);
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let common = u() - 0.5;
        let row: Vec<f64> = (0..cols).map(|j| 2.0 * (u() - 0.5) + common * (j % 3) as f64).collect();
        let z = 0.8 + row.iter().enumerate().map(|(j, v)| v * (j as f64 - 2.0) * 0.7).sum::<f64>();
        y.push(if u() < 1.0 / (1.0 + (-z).exp()) { 1.0 } else { 0.0 });
        x.extend(row.iter().map(|&v| v as f32));
    }
    (x, y)
}

#[test]
fn coefficients_match_linfa_logistic() {
    let (rows, cols) = (3000, 6);
    let (x, y) = data(rows, cols);
    assert!(y.iter().sum::<f32>() > rows as f32 / 2.0, "positives must be the majority");
    for l2 in [0.1, 1.0, 10.0] {
        let spec = LogisticSpec { l2, tol: 1e-10, max_iter: 1000, ..Default::default() };
        let (ours, report) = logistic::fit(
            &Design { numeric: Matrix { data: x.clone(), rows, cols }, ..Design::default() },
            &y,
            None,
            &spec,
        );
        assert!(report.converged);

        let features =
            Array2::from_shape_vec((rows, cols), x.iter().map(|&v| f64::from(v)).collect()).unwrap();
        let targets: Array1<usize> = y.iter().map(|&v| v as usize).collect();
        let theirs = LogisticRegression::default()
            .alpha(l2)
            .gradient_tolerance(1e-10)
            .max_iterations(1000)
            .fit(&Dataset::new(features, targets))
            .unwrap();
        for (a, b) in ours.coef.iter().zip(theirs.params()) {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "l2 {l2}: {a} vs {b}");
        }
        assert!((ours.intercept - theirs.intercept()).abs() <= 1e-4, "l2 {l2}: intercepts");
    }
}
