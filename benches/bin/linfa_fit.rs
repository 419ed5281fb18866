//! Fits linfa-logistic on exactly the design matrix trainyard builds for a job spec (same rows,
//! same standardization), for the peer comparison. Prints JSON: fit seconds, coefficients,
//! intercept.
//!
//! `cargo run --release -p trainyard-benches --bin linfa_fit -- SPEC`

use std::time::Instant;

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use trainyard::dataset;
use trainyard::features::Pipeline;
use trainyard::spec::CheckedSpec;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spec = std::env::args().nth(1).ok_or("usage: linfa_fit SPEC")?;
    let checked = CheckedSpec::from_file(std::path::Path::new(&spec), &[])?;
    let s = &checked.spec;
    let data = dataset::load(&checked)?;
    let pipeline = Pipeline::fit_spec(&data.train.frame, &s.features)?;
    let x = pipeline.transform(&data.train.frame)?;
    let features = Array2::from_shape_vec((x.rows, x.cols), x.data.iter().map(|&v| f64::from(v)).collect())?;
    let targets: Array1<usize> = data.train.labels.iter().map(|&v| v as usize).collect();
    let logistic = s.logistic().ok_or("linfa_fit needs a spec with a logistic model")?;
    let t = Instant::now();
    let model = LogisticRegression::default()
        .alpha(logistic.l2)
        // linfa's tolerance is on the gradient of the summed objective; trainyard's on the mean.
        .gradient_tolerance(logistic.tol * x.rows as f64)
        .max_iterations(u64::from(logistic.max_iter))
        .fit(&Dataset::new(features, targets))?;
    let seconds = t.elapsed().as_secs_f64();
    // linfa makes the majority class its positive class; report coefficients for label 1.
    let flip = if data.train.positives() * 2 < data.train.len() { -1.0 } else { 1.0 };
    let coef: Vec<f64> = model.params().iter().map(|v| v * flip).collect();
    println!(
        "{}",
        serde_json::json!({"fit_seconds": seconds, "coef": coef, "intercept": model.intercept() * flip})
    );
    Ok(())
}
