//! L2-regularized binary logistic regression: checked parameters → [`fit`] → [`LogisticModel`].
//!
//! Minimizes Σᵢ sᵢ·logloss(yᵢ, σ(xᵢ·β + b)) + (l2/2)·‖β‖² (the intercept b is not penalized),
//! so `l2 = 1/C` reproduces scikit-learn's `LogisticRegression(C=C)`. The solver works on that
//! objective divided by Σᵢ sᵢ (the same minimizer, better-scaled numbers), which is also what
//! `tol` refers to, as in scikit-learn.
//!
//! The design is the numeric block plus categorical codes ([`Design`]); the coefficients have
//! the one-hot layout. L-BFGS is preconditioned by the Hessian's diagonal at the starting
//! point (every row at the base rate p₀: p₀(1−p₀)·Σᵢ sᵢx̃ᵢⱼ² + l2, one pass over the data),
//! which makes one-hot problems, whose slot curvatures range over the level counts, converge in
//! tens of passes instead of hundreds.

use serde::{Deserialize, Serialize};
use trainyard_kernels::cuda::{self, CudaError};
use trainyard_kernels::logistic::{self as kernel, LossGrad, Problem};
use trainyard_kernels::softmax::{self, SoftmaxLossGrad};

use crate::device::Device;
use crate::f64_tensors;
use crate::features::Design;
use crate::progress::{Reporter, Update};
use crate::solver::{self, Stop};
use crate::spec::{ClassWeight, LogisticSpec};
use crate::{Error, Result};

/// A fitted model.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticModel {
    /// One coefficient per design-matrix column.
    pub coef: Vec<f64>,
    /// The intercept.
    pub intercept: f64,
}

/// Tensor names in `model.safetensors`: coefficients (f64, `[width]` for binary models,
/// `[classes, width]` for multinomial ones, one per one-hot design column in `pipeline.names`
/// order) and intercepts (f64, `[1]` or `[classes]`).
pub const TENSORS: [&str; 2] = [COEF, INTERCEPT];
const COEF: &str = "coef";
const INTERCEPT: &str = "intercept";

impl LogisticModel {
    /// The bytes of `model.safetensors`.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        f64_tensors::to_bytes(&[
            (COEF, vec![self.coef.len()], &self.coef),
            (INTERCEPT, vec![1], &[self.intercept]),
        ])
    }

    /// A model from `model.safetensors` bytes over a design of `width` columns; `what` names
    /// the file in errors.
    pub fn from_bytes(bytes: &[u8], width: usize, what: &str) -> Result<LogisticModel> {
        let (coef, intercept) = read_tensors(bytes, what)?;
        if coef.len() != width || intercept.len() != 1 {
            return Err(Error::data(format!(
                "{what}: {} coefficients for {width} design columns",
                coef.len()
            )));
        }
        Ok(LogisticModel { coef, intercept: intercept[0] })
    }

    /// Probabilities for every row of `x`.
    pub fn predict_proba(&self, x: &Design) -> Vec<f64> {
        let mut out = vec![0.0; x.rows()];
        kernel::predict_proba(&x.view(), &self.coef, self.intercept, &mut out);
        out
    }
}

/// A fitted multinomial model: K classes, class-major coefficients as scikit-learn's `coef_`.
#[derive(Debug, Clone, PartialEq)]
pub struct SoftmaxModel {
    /// K.
    pub classes: usize,
    /// `classes × width` coefficients, class after class, each in the one-hot layout.
    pub coef: Vec<f64>,
    /// One intercept per class.
    pub intercept: Vec<f64>,
}

impl SoftmaxModel {
    /// The bytes of `model.safetensors`.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let width = self.coef.len() / self.classes;
        f64_tensors::to_bytes(&[
            (COEF, vec![self.classes, width], &self.coef),
            (INTERCEPT, vec![self.classes], &self.intercept),
        ])
    }

    /// A model of `classes` classes from `model.safetensors` bytes over a design of `width`
    /// columns; `what` names the file in errors.
    pub fn from_bytes(bytes: &[u8], classes: usize, width: usize, what: &str) -> Result<SoftmaxModel> {
        let (coef, intercept) = read_tensors(bytes, what)?;
        if coef.len() != classes * width || intercept.len() != classes {
            return Err(Error::data(format!(
                "{what}: {} coefficients and {} intercepts for {classes} classes of {width} design columns",
                coef.len(),
                intercept.len()
            )));
        }
        Ok(SoftmaxModel { classes, coef, intercept })
    }

    /// Row-major `rows × classes` probabilities for every row of `x`.
    pub fn predict_proba(&self, x: &Design) -> Vec<f64> {
        let mut out = vec![0.0; x.rows() * self.classes];
        softmax::predict_proba(&x.view(), &self.coef, &self.intercept, &mut out);
        out
    }
}

fn read_tensors(bytes: &[u8], what: &str) -> Result<(Vec<f64>, Vec<f64>)> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| Error::data(format!("{what}: {e}")))?;
    let path = std::path::Path::new(what);
    Ok((f64_tensors::read(&st, COEF, path)?, f64_tensors::read(&st, INTERCEPT, path)?))
}

/// The `model:` lines of `inspect` for a logistic model: hyperparameters, the fit, and the
/// largest coefficients (of every class, named by `classes`, for a multinomial model).
pub fn describe(
    h: &LogisticSpec,
    f: &FitReport,
    coef: &[&[f64]],
    classes: &[serde_json::Value],
    pipeline: &crate::features::Pipeline,
    s: &mut String,
) {
    use std::fmt::Write as _;
    let multinomial =
        if coef.len() > 1 { format!(", multinomial over {} classes", coef.len()) } else { String::new() };
    let _ = writeln!(
        s,
        "\nmodel: logistic (l2 {}, tol {}, max_iter {}, class_weight {}){multinomial}, {} design columns",
        h.l2,
        h.tol,
        h.max_iter,
        if h.class_weight.is_some() { "balanced" } else { "none" },
        pipeline.width()
    );
    let _ = writeln!(
        s,
        "  fit: {} iterations, {} passes over the data, objective {:.6}, converged {} ({:?})",
        f.iterations, f.objective_passes, f.final_objective, f.converged, f.stop
    );
    let _ = writeln!(s, "  largest coefficients (standardized features):");
    for (c, j, v) in largest(coef, 5) {
        let class =
            classes.get(c).map(|v| format!("  (class {})", crate::label::class_name(v))).unwrap_or_default();
        let _ = writeln!(s, "    {:>9.4}  {}{class}", v, pipeline.names[j]);
    }
}

/// The `n` coefficients of largest magnitude over the rows of `coef` (one row, or one per
/// class): (row, design column, value), largest first.
pub fn largest(coef: &[&[f64]], n: usize) -> Vec<(usize, usize, f64)> {
    let mut top: Vec<(usize, usize, f64)> = coef
        .iter()
        .enumerate()
        .flat_map(|(c, row)| row.iter().enumerate().map(move |(j, &v)| (c, j, v)))
        .collect();
    top.sort_by(|a, b| b.2.abs().total_cmp(&a.2.abs()));
    top.truncate(n);
    top
}

/// How the fit went; recorded in `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// L-BFGS iterations.
    pub iterations: u32,
    /// Objective evaluations, each one pass over the training matrix.
    pub objective_passes: u32,
    /// Final objective: Σ weighted log loss + (l2/2)‖β‖².
    pub final_objective: f64,
    /// Final max |gradient component| of the objective divided by the total weight.
    pub final_gradient: f64,
    /// Whether a convergence criterion was met (false: `max_iter` or a failed line search).
    pub converged: bool,
    /// Which rule stopped the solver.
    pub stop: Stop,
}

/// Fits on the design `x` with labels `y` (0/1) and optional sample weights, on this machine's
/// cores.
pub fn fit(
    x: &Design,
    y: &[f32],
    weights: Option<&[f32]>,
    spec: &LogisticSpec,
) -> (LogisticModel, FitReport) {
    fit_anchored(x, y, weights, spec, None)
}

/// [`fit`] with the penalty (l2/2)·(‖β − anchor.β‖² + (b − anchor.b)²) and the solver started
/// at `anchor` when there is one: a group's model shrunk toward the generic model. Without an anchor it is
/// [`fit`].
pub fn fit_anchored(
    x: &Design,
    y: &[f32],
    weights: Option<&[f32]>,
    spec: &LogisticSpec,
    anchor: Option<&LogisticModel>,
) -> (LogisticModel, FitReport) {
    fit_from(x, y, weights, spec, anchor, anchor)
}

/// [`fit_anchored`] with the solver started at `start` (default: the anchor, else the base
/// rate): a warm start from a nearby solution, e.g. the previous strength of a path, or the
/// group's own fit when its cross-validation folds are refitted.
pub fn fit_from(
    x: &Design,
    y: &[f32],
    weights: Option<&[f32]>,
    spec: &LogisticSpec,
    anchor: Option<&LogisticModel>,
    start: Option<&LogisticModel>,
) -> (LogisticModel, FitReport) {
    let weights = effective_weights(y, weights, spec.class_weight == Some(ClassWeight::Balanced), 2);
    let problem = Problem { design: x.view(), y, weights: weights.as_deref() };
    let ends = Ends { anchor, start };
    match solve(&mut kernel::Cpu::new(problem), &problem, spec, ends, &Reporter::default()) {
        Ok(fitted) => fitted,
        Err(e) => unreachable!("the CPU objective cannot fail: {e}"),
    }
}

/// [`fit`] with the objective on `device`: the same solver, the passes over the data on the GPU
/// when it is one. A GPU failure during the fit is an internal error (exit 1, retried).
pub fn fit_on(
    device: Device,
    x: &Design,
    y: &[f32],
    weights: Option<&[f32]>,
    spec: &LogisticSpec,
    progress: &Reporter,
) -> Result<(LogisticModel, FitReport)> {
    let fitted = match device {
        Device::Cpu => {
            let weights = effective_weights(y, weights, spec.class_weight == Some(ClassWeight::Balanced), 2);
            let problem = Problem { design: x.view(), y, weights: weights.as_deref() };
            match solve(&mut kernel::Cpu::new(problem), &problem, spec, Ends::default(), progress) {
                Ok(fitted) => fitted,
                Err(e) => unreachable!("the CPU objective cannot fail: {e}"),
            }
        }
        Device::Cuda(ordinal) => {
            let weights = effective_weights(y, weights, spec.class_weight == Some(ClassWeight::Balanced), 2);
            let problem = Problem { design: x.view(), y, weights: weights.as_deref() };
            let mut gpu = cuda::logistic::Objective::new(ordinal, &problem).map_err(|e| {
                Error::Internal(format!("setting up the logistic objective on cuda:{ordinal}: {e}"))
            })?;
            solve(&mut gpu, &problem, spec, Ends::default(), progress)
                .map_err(|e| Error::Internal(format!("fitting on cuda:{ordinal}: {e}")))?
        }
    };
    refuse_non_finite(&fitted.1, fitted.0.coef.iter().chain([&fitted.0.intercept]))?;
    Ok(fitted)
}

/// The design matrix is checked finite before the fit, so this is a guard, not a path users
/// take: a model fitted from a NaN objective must never be written as a run.
fn refuse_non_finite<'a>(report: &FitReport, mut values: impl Iterator<Item = &'a f64>) -> Result<()> {
    if report.stop == Stop::NonFinite || !values.all(|v| v.is_finite()) {
        return Err(Error::data(format!(
            "model.logistic: the objective became {} after {} iterations; no run was written \
             (check the features and weights for extreme values)",
            report.final_objective, report.iterations
        )));
    }
    Ok(())
}

/// Fits the multinomial model Σᵢ sᵢ·(−log softmax(xᵢW + b)_{yᵢ}) + (l2/2)·‖W‖² (intercepts
/// not penalized, as scikit-learn's multinomial lbfgs) on labels `y` holding class indices
/// `0..classes`, with the objective on `device` (a GPU failure during the fit is an internal
/// error, exit 1).
pub fn fit_multinomial(
    device: Device,
    x: &Design,
    y: &[f32],
    weights: Option<&[f32]>,
    classes: usize,
    spec: &LogisticSpec,
    progress: &Reporter,
) -> Result<(SoftmaxModel, FitReport)> {
    let weights = effective_weights(y, weights, spec.class_weight == Some(ClassWeight::Balanced), classes);
    let problem = softmax::Problem { design: x.view(), classes, y, weights: weights.as_deref() };
    let fitted = match device {
        Device::Cpu => match solve_multinomial(&mut softmax::Cpu::new(problem), &problem, spec, progress) {
            Ok(fitted) => fitted,
            Err(e) => unreachable!("the CPU objective cannot fail: {e}"),
        },
        Device::Cuda(ordinal) => {
            let mut gpu = cuda::softmax::Objective::new(ordinal, &problem).map_err(|e| {
                Error::Internal(format!("setting up the multinomial objective on cuda:{ordinal}: {e}"))
            })?;
            solve_multinomial(&mut gpu, &problem, spec, progress)
                .map_err(|e| Error::Internal(format!("fitting on cuda:{ordinal}: {e}")))?
        }
    };
    refuse_non_finite(&fitted.1, fitted.0.coef.iter().chain(&fitted.0.intercept))?;
    Ok(fitted)
}

/// L-BFGS over the multinomial objective: θ = [W (class-major), b], the objective divided by
/// the total weight as in [`solve`], preconditioned by the Hessian's diagonal where every row
/// has the class shares as its probabilities (p_c(1−p_c)·Σᵢ sᵢx̃ᵢⱼ² + l2).
fn solve_multinomial(
    objective: &mut dyn SoftmaxLossGrad,
    problem: &softmax::Problem<'_>,
    spec: &LogisticSpec,
    progress: &Reporter,
) -> Result<(SoftmaxModel, FitReport), CudaError> {
    let (k, d) = (problem.classes, problem.design.width());
    let mut share = vec![0f64; k];
    for (i, &c) in problem.y.iter().enumerate() {
        share[c as usize] += problem.weights.map_or(1.0, |w| f64::from(w[i]));
    }
    let total = share.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    share.iter_mut().for_each(|s| *s = (*s / total).clamp(1e-12, 1.0));
    let l2 = spec.l2;
    let (mut grad_w, mut grad_b) = (vec![0.0; k * d], vec![0.0; k]);
    let mut failure = None;
    let mut passes = 0usize;
    let mut f = |theta: &[f64], grad: &mut [f64]| -> f64 {
        let (w, b) = theta.split_at(k * d);
        let loss = match objective.loss_grad(w, b, &mut grad_w, &mut grad_b) {
            Ok(v) => v,
            Err(e) => {
                failure.get_or_insert(e);
                grad.iter_mut().for_each(|g| *g = f64::NAN);
                return f64::NAN;
            }
        };
        let penalty = 0.5 * l2 * w.iter().map(|v| v * v).sum::<f64>();
        for j in 0..k * d {
            grad[j] = (grad_w[j] + l2 * w[j]) / total;
        }
        for c in 0..k {
            grad[k * d + c] = grad_b[c] / total;
        }
        passes += 1;
        report_pass(progress, passes, spec.max_iter, (loss + penalty) / total);
        (loss + penalty) / total
    };
    // Start from the class shares: W = 0 and b = their logs (centred) is the best constant
    // model.
    let mut theta0 = vec![0.0; k * d + k];
    let mean_log = share.iter().map(|s| s.ln()).sum::<f64>() / k as f64;
    for c in 0..k {
        theta0[k * d + c] = share[c].ln() - mean_log;
    }
    let mut moments = vec![0.0; d];
    let rows_weight = softmax::second_moments(problem, &mut moments);
    let mut diag = vec![0.0; k * d + k];
    for c in 0..k {
        let curvature = share[c] * (1.0 - share[c]);
        for j in 0..d {
            diag[c * d + j] = (curvature * moments[j] + l2) / total;
        }
        diag[k * d + c] = curvature * rows_weight / total;
    }
    let (theta, report) = minimize(&mut f, theta0, &diag, spec, total, progress);
    if let Some(e) = failure {
        return Err(e);
    }
    let mut coef = theta;
    let intercept = coef.split_off(k * d);
    Ok((SoftmaxModel { classes: k, coef, intercept }, report))
}

/// What the penalty pulls toward (zero without an anchor) and where the solver starts (the base
/// rate without a start).
#[derive(Debug, Clone, Copy, Default)]
struct Ends<'a> {
    anchor: Option<&'a LogisticModel>,
    start: Option<&'a LogisticModel>,
}

/// L-BFGS over `objective`, which evaluates `problem` wherever its data lives; with an anchor,
/// the penalty pulls β and the intercept toward the anchor's.
fn solve(
    objective: &mut dyn LossGrad,
    problem: &Problem<'_>,
    spec: &LogisticSpec,
    Ends { anchor, start }: Ends<'_>,
    progress: &Reporter,
) -> Result<(LogisticModel, FitReport), CudaError> {
    let (x_rows, y, weights) = (problem.design.rows, problem.y, problem.weights);
    let total: f64 = match weights {
        Some(w) => w.iter().map(|&v| f64::from(v)).sum(),
        None => x_rows as f64,
    };
    let total = total.max(f64::MIN_POSITIVE);
    let positive: f64 = match weights {
        Some(w) => w.iter().zip(y).map(|(&wi, &yi)| f64::from(wi * yi)).sum(),
        None => y.iter().map(|&v| f64::from(v)).sum(),
    };
    let d = problem.width();
    let l2 = spec.l2;
    let zeros = vec![0.0; d];
    let center: &[f64] = anchor.map_or(&zeros, |a| &a.coef);
    let mut grad_beta = vec![0.0; d];
    let mut failure = None;
    let mut passes = 0usize;
    let mut f = |theta: &[f64], grad: &mut [f64]| -> f64 {
        let (beta, b) = (&theta[..d], theta[d]);
        let (loss, g0) = match objective.loss_grad(beta, b, &mut grad_beta) {
            Ok(v) => v,
            Err(e) => {
                // The solver treats a NaN value as a failed step and stops; the error is
                // reported below.
                failure.get_or_insert(e);
                grad.iter_mut().for_each(|g| *g = f64::NAN);
                return f64::NAN;
            }
        };
        let mut penalty = 0.5 * l2 * beta.iter().zip(center).map(|(v, c)| (v - c) * (v - c)).sum::<f64>();
        for j in 0..d {
            grad[j] = (grad_beta[j] + l2 * (beta[j] - center[j])) / total;
        }
        grad[d] = g0 / total;
        // Anchored, the intercept is pulled toward the anchor's too: a group with two positives
        // would otherwise take a free intercept to whatever its train rows say (minus infinity
        // with none), and score its next positive with a loss of 30.
        if let Some(a) = anchor {
            penalty += 0.5 * l2 * (b - a.intercept) * (b - a.intercept);
            grad[d] += l2 * (b - a.intercept) / total;
        }
        passes += 1;
        report_pass(progress, passes, spec.max_iter, (loss + penalty) / total);
        (loss + penalty) / total
    };
    // Start from the base rate: β = 0 and b = its log-odds is the best constant model, so the
    // solver's first steps go to the features, not to the intercept.
    let rate = (positive / total).clamp(1e-12, 1.0 - 1e-12);
    let mut theta0 = vec![0.0; d + 1];
    theta0[d] = (rate / (1.0 - rate)).ln();
    if let Some(a) = start {
        theta0[..d].copy_from_slice(&a.coef);
        theta0[d] = a.intercept;
    }
    let mut diag = vec![0.0; d + 1];
    let curvature = rate * (1.0 - rate);
    diag[d] = (curvature * kernel::second_moments(problem, &mut diag[..d])
        + if anchor.is_some() { l2 } else { 0.0 })
        / total;
    for v in &mut diag[..d] {
        *v = (curvature * *v + l2) / total;
    }
    let (theta, report) = minimize(&mut f, theta0, &diag, spec, total, progress);
    if let Some(e) = failure {
        return Err(e);
    }
    let intercept = theta[d];
    let mut coef = theta;
    coef.truncate(d);
    Ok((LogisticModel { coef, intercept }, report))
}

/// L-BFGS from `theta0`, preconditioned by `diag`, on an objective divided by `total`: the
/// solution and the fit report (the final objective scaled back by `total`).
fn minimize(
    f: &mut dyn solver::Objective,
    theta0: Vec<f64>,
    diag: &[f64],
    spec: &LogisticSpec,
    total: f64,
    progress: &Reporter,
) -> (Vec<f64>, FitReport) {
    let opts = solver::Options { max_iter: spec.max_iter, gtol: spec.tol, ..Default::default() };
    let sol = solver::minimize_preconditioned(f, theta0, &opts, Some(diag));
    // The count is complete: a bar can clear its line.
    report_pass(progress, sol.evaluations as usize, 0, sol.value);
    let report = FitReport {
        iterations: sol.iterations,
        objective_passes: sol.evaluations,
        final_objective: sol.value * total,
        final_gradient: sol.grad_max,
        converged: sol.converged(),
        stop: sol.stop,
    };
    (sol.x, report)
}

/// `passes` objective passes done, of at most about `max_iter` (L-BFGS takes one or a few per
/// iteration and usually stops long before, so the total is a bound, not a forecast); with
/// `max_iter` 0, the fit is over.
fn report_pass(progress: &Reporter, passes: usize, max_iter: u32, objective: f64) {
    let total = if max_iter == 0 { passes } else { (max_iter as usize).max(passes + 1) };
    progress.report(&Update {
        phase: "fit",
        label: "logistic objective passes".into(),
        done: passes,
        total,
        loss: Some(objective),
    });
}

/// Sample weights times `balanced` class weights (n / (K·n_k) for class k, from row counts, as
/// scikit-learn's `compute_class_weight`); `y` holds class indices (0/1 when binary). `None`
/// when every row weighs 1.
pub(crate) fn effective_weights(
    y: &[f32],
    weights: Option<&[f32]>,
    balanced: bool,
    classes: usize,
) -> Option<Vec<f32>> {
    if !balanced {
        return weights.map(<[f32]>::to_vec);
    }
    let n = y.len() as f64;
    let mut counts = vec![0f64; classes];
    for &v in y {
        counts[v as usize] += 1.0;
    }
    let factor: Vec<f32> = counts.iter().map(|&nk| (n / (classes as f64 * nk.max(1.0))) as f32).collect();
    Some(
        y.iter()
            .enumerate()
            .map(|(i, &yi)| {
                let c = factor[yi as usize];
                weights.map_or(c, |w| w[i] * c)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Matrix;

    fn dense(m: Matrix) -> Design {
        Design { numeric: m, ..Design::default() }
    }

    /// Noisy labels from a known linear model on seeded data.
    fn data(rows: usize, seed: u64) -> (Design, Vec<f32>) {
        let true_beta = [1.5, -2.0, 0.0, 0.5];
        let mut s = seed;
        let mut u = || {
            s = crate::random::mix64(s.wrapping_add(1));
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut x = Vec::with_capacity(rows * 4);
        let mut y = Vec::with_capacity(rows);
        for _ in 0..rows {
            let row: Vec<f64> = (0..4).map(|_| 2.0 * u() - 1.0).collect();
            let z: f64 = row.iter().zip(&true_beta).map(|(a, b)| a * b).sum::<f64>() - 0.5;
            y.push(if u() < 1.0 / (1.0 + (-z).exp()) { 1.0 } else { 0.0 });
            x.extend(row.iter().map(|&v| v as f32));
        }
        (dense(Matrix { data: x, rows, cols: 4 }), y)
    }

    /// A fraud-like problem: two numeric columns and a merchant column with a few very common
    /// and many rare levels, each with its own effect.
    fn coded(rows: usize, levels: usize, seed: u64) -> (Design, Vec<f32>) {
        let mut s = seed;
        let mut u = || {
            s = crate::random::mix64(s.wrapping_add(1));
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let effect: Vec<f64> = (0..levels).map(|l| ((l as f64) * 0.37).sin() * 1.5).collect();
        let (mut x, mut codes, mut y) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rows {
            let (a, b) = (2.0 * u() - 1.0, 2.0 * u() - 1.0);
            // Zipf-like: level frequencies fall off as 1 / rank.
            let level = (((levels as f64 + 1.0).powf(u()) - 1.0) as usize).min(levels - 1);
            let z = 1.2 * a - 0.8 * b + effect[level] - 2.0;
            y.push(if u() < 1.0 / (1.0 + (-z).exp()) { 1.0 } else { 0.0 });
            x.extend([a as f32, b as f32]);
            codes.push(level as u32);
        }
        // The last slot is "other", unused here, as a level under the count threshold would be.
        (Design { numeric: Matrix { data: x, rows, cols: 2 }, codes, slots: vec![levels + 1] }, y)
    }

    #[test]
    fn reaches_the_optimum_where_the_gradient_vanishes() {
        let (x, y) = data(3000, 1);
        let spec = LogisticSpec { l2: 2.0, tol: 1e-9, ..Default::default() };
        let (m, r) = fit(&x, &y, None, &spec);
        assert!(r.converged, "{r:?}");
        // First-order optimality, checked with the independent reference kernel.
        let p = Problem { design: x.view(), y: &y, weights: None };
        let mut g = vec![0.0; 4];
        let (_, g0) = kernel::loss_grad_reference(&p, &m.coef, m.intercept, &mut g);
        for (gj, bj) in g.iter().zip(&m.coef) {
            assert!((gj + 2.0 * bj).abs() / 3000.0 < 1e-8, "{gj} {bj}");
        }
        assert!(g0.abs() / 3000.0 < 1e-8);
        // And it recovers the generating model roughly.
        assert!((m.coef[0] - 1.5).abs() < 0.3 && (m.coef[1] + 2.0).abs() < 0.3, "{:?}", m.coef);
    }

    #[test]
    fn a_high_cardinality_categorical_converges_in_few_passes_to_the_one_hot_optimum() {
        let (x, y) = coded(40_000, 800, 5);
        let spec = LogisticSpec { tol: 1e-6, max_iter: 500, ..Default::default() };
        let (m, r) = fit(&x, &y, None, &spec);
        assert!(r.converged, "{r:?}");
        assert!(r.objective_passes <= 60, "{r:?}");
        // The same problem as a dense one-hot matrix: the same optimum (checked by first-order
        // optimality with the reference kernel, which expands the rows itself).
        let p = Problem { design: x.view(), y: &y, weights: None };
        let mut g = vec![0.0; x.width()];
        let (_, g0) = kernel::loss_grad_reference(&p, &m.coef, m.intercept, &mut g);
        let worst = g
            .iter()
            .zip(&m.coef)
            .map(|(gj, bj)| (gj + bj).abs() / 40_000.0)
            .fold(g0.abs() / 40_000.0, f64::max);
        assert!(worst <= 1.01e-6, "max |gradient| / n = {worst}");
    }

    #[test]
    fn integer_weights_equal_repeated_rows() {
        let (x, y) = data(500, 2);
        let w: Vec<f32> = (0..500).map(|i| (i % 3) as f32).collect();
        let mut rep = Vec::new();
        let mut rep_y = Vec::new();
        for (i, &yi) in y.iter().enumerate() {
            for _ in 0..(i % 3) {
                rep.push(i);
                rep_y.push(yi);
            }
        }
        let rep = x.gather(&rep);
        let spec = LogisticSpec { tol: 1e-10, ..Default::default() };
        let (a, _) = fit(&x, &y, Some(&w), &spec);
        let (b, _) = fit(&rep, &rep_y, None, &spec);
        for (u, v) in a.coef.iter().zip(&b.coef) {
            assert!((u - v).abs() < 1e-6, "{u} {v}");
        }
    }

    #[test]
    fn balanced_class_weights_shift_the_intercept_up_for_a_rare_class() {
        let (x, mut y) = data(2000, 3);
        // Make positives rare.
        for (i, v) in y.iter_mut().enumerate() {
            if i % 5 != 0 {
                *v = 0.0;
            }
        }
        let plain = fit(&x, &y, None, &LogisticSpec::default()).0;
        let balanced = fit(
            &x,
            &y,
            None,
            &LogisticSpec { class_weight: Some(ClassWeight::Balanced), ..Default::default() },
        )
        .0;
        assert!(balanced.intercept > plain.intercept + 0.5, "{} vs {}", balanced.intercept, plain.intercept);
    }

    #[test]
    fn max_iter_is_reported_not_an_error() {
        let (x, y) = data(500, 4);
        let (_, r) = fit(&x, &y, None, &LogisticSpec { max_iter: 1, tol: 1e-12, ..Default::default() });
        assert_eq!((r.iterations, r.converged, r.stop), (1, false, Stop::MaxIter));
    }
}
